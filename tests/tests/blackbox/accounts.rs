//! Accounts against the `natrix` binary started with a configuration file,
//! and nats-server 2.9.10 with the same file: what clients of each account
//! see (isolation, stream imports, service requests across accounts,
//! refused imports and account limits) must be the same.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use natrix_tests::{ServerProcess, natrix_bin};

const CONF: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [
      {stream: "x.>", accounts: [B]}
      {service: "req.>"}
      {service: "str.>", response_type: stream}
    ]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [
      {stream: {account: A, subject: "x.>"}, prefix: "p"}
      {service: {account: A, subject: "req.x"}, to: "local"}
      {service: {account: A, subject: "str.>"}}
    ]
  }
  C: {
    users: [{user: c, password: c}]
    limits: { max_connections: 1 }
  }
}
"#;

fn dir(name: &str) -> PathBuf {
    natrix_tests::test_dir("acc", name)
}

async fn connect(server: &ServerProcess, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .connect(server.url())
        .await
        .unwrap()
}

async fn next(sub: &mut async_nats::Subscriber) -> Option<async_nats::Message> {
    tokio::time::timeout(Duration::from_millis(300), sub.next())
        .await
        .ok()
        .flatten()
}

/// What the clients of A, B and C see, as lines.
async fn scenario(server: &ServerProcess) -> Vec<String> {
    let mut seen = Vec::new();
    let a = connect(server, "a").await;
    let b = connect(server, "b").await;
    // Isolation: B does not see A's plain subjects.
    let mut b_all = b.subscribe(">").await.unwrap();
    let mut a_req = a.subscribe("req.>").await.unwrap();
    let a_str = a.subscribe("str.>").await.unwrap();
    crate::synced(&b).await;
    crate::synced(&a).await;
    a.publish("private", "hidden".into()).await.unwrap();
    a.publish("x.y", "streamed".into()).await.unwrap();
    crate::synced(&a).await;
    while let Some(m) = next(&mut b_all).await {
        // (Not B's own sync message.)
        if !m.subject.starts_with("_INBOX.") {
            seen.push(format!("b got {} {:?}", m.subject, m.payload));
        }
    }
    // A service request from B is answered by A once.
    let responder = tokio::spawn(async move {
        let req = natrix_tests::within("a: the request", a_req.next())
            .await
            .unwrap();
        let reply = req.reply.clone().unwrap();
        let info = req
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Request-Info"))
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        let line = format!(
            "a got {} reply starts _R_: {} info acc B: {}",
            req.subject,
            reply.starts_with("_R_."),
            info.starts_with("{\"acc\":\"B\"")
        );
        (line, reply, a_req, a_str)
    });
    let answer = {
        let b2 = b.clone();
        tokio::spawn(async move { b2.request("local", "ask".into()).await })
    };
    let (line, reply, _a_req, mut a_str) = natrix_tests::within("the responder", responder)
        .await
        .unwrap();
    seen.push(line);
    a.publish(reply.clone(), "one".into()).await.unwrap();
    a.publish(reply, "two".into()).await.unwrap();
    a.flush().await.unwrap();
    let got = answer.await.unwrap().unwrap();
    seen.push(format!("b answer {:?}", got.payload));
    // A stream service: several responses reach the requester.
    let inbox = b.new_inbox();
    let mut replies = b.subscribe(inbox.clone()).await.unwrap();
    b.publish_with_reply("str.q", inbox, "s".into())
        .await
        .unwrap();
    b.flush().await.unwrap();
    let req = natrix_tests::within("a: the stream request", a_str.next())
        .await
        .unwrap();
    for part in ["r1", "r2"] {
        a.publish(req.reply.clone().unwrap(), part.into())
            .await
            .unwrap();
    }
    crate::synced(&a).await;
    while let Some(m) = next(&mut replies).await {
        seen.push(format!("b stream response {:?}", m.payload));
    }
    // B asks A directly, without an import: no responders (B's own `>`
    // would otherwise take the request, and no status would come).
    b_all.unsubscribe().await.unwrap();
    crate::synced(&b).await;
    let direct = b.request("req.y", "x".into()).await;
    seen.push(format!(
        "b direct request: {:?}",
        direct.map(|_| ()).map_err(|e| e.kind())
    ));
    // C allows one connection.
    let c1 = connect(server, "c").await;
    let c2 = async_nats::ConnectOptions::with_user_and_password("c".into(), "c".into())
        .max_reconnects(0)
        .connect(server.url())
        .await;
    seen.push(format!("second c connects: {}", c2.is_ok()));
    if let Ok(c2) = c2 {
        let r = c2.flush().await;
        seen.push(format!("second c flushes: {}", r.is_ok()));
    }
    drop(c1);
    seen
}

#[tokio::test]
async fn accounts_behave_as_on_nats_server() {
    let d = dir("run");
    let f = d.join("nats.conf");
    std::fs::write(&f, CONF).unwrap();
    let conf = f.to_str().unwrap();
    let ours = ServerProcess::natrix(&["-c", conf]);
    let got = scenario(&ours).await;
    assert!(
        got.contains(&"b got p.x.y b\"streamed\"".to_string()),
        "{got:?}"
    );
    assert!(!got.iter().any(|l| l.contains("hidden")), "{got:?}");
    assert!(got.contains(&"b answer b\"one\"".to_string()), "{got:?}");
    assert!(
        got.contains(&"b stream response b\"r2\"".to_string()),
        "{got:?}"
    );
    drop(ours);
    if let Some(r) = natrix_tests::reference_bin() {
        let theirs = ServerProcess::start(&r, &["-c", conf]);
        assert_eq!(scenario(&theirs).await, got);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// `<bin> -t -c <file>`, stderr without the program prefix.
fn check(bin: &std::path::Path, file: &std::path::Path) -> String {
    natrix_tests::check_config(bin, file).1
}

#[test]
fn refused_imports_are_reported_as_nats_server_reports_them() {
    let d = dir("refused");
    let files = [
        (
            "unexported.conf",
            "port: 4222\naccounts {\n  A: { users: [{user: a, password: a}], exports: [{stream: \"x.>\", accounts: [B]}] }\n  B: { imports: [\n      {stream: {account: A, subject: \"y.>\"}, prefix: \"p\"}\n      {service: {account: A, subject: \"req.x\"}, to: \"local\"}\n      {stream: {account: C, subject: \"y.>\"}}\n  ] }\n}\n",
        ),
        (
            "cycle.conf",
            "port: 4222\naccounts {\n A: {exports: [{service: \"q\"}], imports: [{service: {account: B, subject: \"q\"}}]}\n B: {exports: [{service: \"q\"}], imports: [{service: {account: A, subject: \"q\"}}]}\n}\n",
        ),
        (
            "not-approved.conf",
            "port: 4222\naccounts {\n A: {exports: [{stream: \"s\", accounts: [B]}]}\n B: {}\n C: {imports: [{stream: {account: A, subject: \"s\"}}]}\n}\n",
        ),
    ];
    // (The accounts key is not on line 1: natrix numbers columns on line 1
    // from 1, nats-server from 0, for every error.)
    for (name, text) in files {
        let f = d.join(name);
        std::fs::write(&f, text).unwrap();
        let ours = check(&natrix_bin(), &f);
        assert!(ours.contains("Error adding"), "{name}: {ours}");
        if let Some(r) = natrix_tests::reference_bin() {
            assert_eq!(ours, check(&r, &f), "{name}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
