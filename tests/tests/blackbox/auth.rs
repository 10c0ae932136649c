//! Authentication and permissions against the `natrix` binary, side by
//! side with nats-server 2.9.10 started with the same configuration file:
//! users with plain and bcrypt passwords, nkey users, tokens,
//! no_auth_user, publish/subscribe allow and deny (queues included),
//! allow_responses, and what `/connz?auth=true` shows. Both servers must
//! give the official Rust client the same experience.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use natrix_tests::{ServerProcess, free_port, natrix_bin, within};

use crate::synced;

/// "s3cret" at bcrypt cost 4.
const BCRYPT_S3CRET: &str = "$2a$04$yutFx9GuG/.lsV/T.nrXUeSzG4EtN7BWkYWf1.ojufD3m/I0Mqqpy";
/// "tok3n" at bcrypt cost 4.
const BCRYPT_TOK3N: &str = "$2a$04$oZMiqUE22suyhhrCBuWd/O7eDpYer9Xfjx3ggObM8OGglkPNaAaZS";

fn reference() -> Option<PathBuf> {
    natrix_tests::reference_or_skip()
}

fn dir(name: &str) -> PathBuf {
    natrix_tests::test_dir("auth", name)
}

fn nkey_user() -> nkeys::KeyPair {
    nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [5; 32]).unwrap()
}

fn users_conf(path: &Path) {
    let conf = format!(
        r#"
no_auth_user: guest
authorization {{
  default_permissions: {{ subscribe: {{ deny: ["secret.>"] }} }}
  users: [
    {{ user: admin, password: "{BCRYPT_S3CRET}" }}
    {{ user: alice, password: a, permissions: {{
        publish: {{ allow: ["foo.>", "req"], deny: ["foo.secret"] }}
        subscribe: {{ allow: ["foo.*", "_INBOX.>", "jobs v1"] }}
    }} }}
    {{ user: svc, password: s, permissions: {{ subscribe: "req", allow_responses: true }} }}
    {{ user: guest, password: g }}
    {{ nkey: {}, permissions: {{ publish: ["nk.>"] }} }}
  ]
}}
"#,
        nkey_user().public_key()
    );
    std::fs::write(path, conf).unwrap();
}

/// A client whose server errors are collected.
async fn connect(
    url: &str,
    opts: async_nats::ConnectOptions,
) -> Result<
    (
        async_nats::Client,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ),
    String,
> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let connecting = opts
        .max_reconnects(0)
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = e {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(url);
    let client = within("connect", connecting)
        .await
        .map_err(|e| e.kind().to_string())?;
    Ok((client, rx))
}

/// Errors the server sent since the last call.
async fn errors_of(
    client: &async_nats::Client,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Vec<String> {
    within("flush", client.flush()).await.unwrap();
    // Until none has come for 300 ms (the server answers in microseconds;
    // a loaded machine may hold an answer back for a while).
    let mut out = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        out.push(e);
    }
    out
}

fn user(name: &str, pass: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_user_and_password(name.into(), pass.into())
}

fn authorized_users(port: u16) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /connz?auth=true HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut names: Vec<String> = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["authorized_user"].as_str().unwrap_or("-").to_string())
        .collect();
    names.sort();
    names
}

/// What clients see of a server started with the users configuration.
async fn users_scenario(bin: &Path, conf: &Path) -> Vec<String> {
    let http = free_port();
    let server = ServerProcess::start(
        bin,
        &["-c", conf.to_str().unwrap(), "-m", &http.to_string()],
    );
    let url = server.url();
    let mut seen = Vec::new();
    // Passwords: plain and bcrypt, right and wrong.
    for (name, pass) in [
        ("alice", "a"),
        ("alice", "x"),
        ("admin", "s3cret"),
        ("admin", BCRYPT_S3CRET),
        ("nobody", "a"),
    ] {
        let ok = connect(&url, user(name, pass)).await.map(|_| ());
        seen.push(format!("{name}/{pass}: {ok:?}"));
    }
    // nkey users sign the nonce; a key that is not configured is refused.
    let seed = nkey_user().seed().unwrap();
    let (nk, mut nk_errs) = connect(&url, async_nats::ConnectOptions::with_nkey(seed))
        .await
        .unwrap();
    nk.publish("nk.a", "x".into()).await.unwrap();
    nk.publish("other", "x".into()).await.unwrap();
    seen.push(format!(
        "nkey publish: {:?}",
        errors_of(&nk, &mut nk_errs).await
    ));
    let stranger = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [6; 32]).unwrap();
    let refused = connect(
        &url,
        async_nats::ConnectOptions::with_nkey(stranger.seed().unwrap()),
    )
    .await
    .map(|_| ());
    seen.push(format!("unknown nkey: {refused:?}"));
    // Publish permissions: refused, and the connection stays open.
    let (admin, _) = connect(&url, user("admin", "s3cret")).await.unwrap();
    let mut all = admin.subscribe(">").await.unwrap();
    synced(&admin).await;
    let (alice, mut alice_errs) = connect(&url, user("alice", "a")).await.unwrap();
    for subject in ["foo.ok", "foo.secret", "bar"] {
        alice.publish(subject, "x".into()).await.unwrap();
    }
    seen.push(format!(
        "alice publish: {:?}",
        errors_of(&alice, &mut alice_errs).await
    ));
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), all.next()).await {
        if !m.subject.starts_with("_INBOX.") {
            got.push(m.subject.to_string());
        }
    }
    seen.push(format!("admin saw: {got:?}"));
    // Nothing else may match the request below: a message that reaches
    // any subscriber gets no "no responders" status, so a request that
    // came before the service's subscription would wait for ever.
    all.unsubscribe().await.unwrap();
    synced(&admin).await;
    // Subscribe permissions, queue groups included.
    let _a = alice.subscribe("foo.x").await.unwrap();
    let _b = alice.subscribe("bar").await.unwrap();
    let _c = alice.queue_subscribe("jobs", "v1".into()).await.unwrap();
    let _d = alice.queue_subscribe("jobs", "v2".into()).await.unwrap();
    let _e = alice.subscribe("jobs").await.unwrap();
    seen.push(format!(
        "alice subscribe: {:?}",
        errors_of(&alice, &mut alice_errs).await
    ));
    // allow_responses: the service may answer a request it received, once.
    let (svc, mut svc_errs) = connect(&url, user("svc", "s")).await.unwrap();
    let mut requests = svc.subscribe("req").await.unwrap();
    // (The service may publish nothing but replies, so it cannot sync: a
    // request that finds no responder yet, told so, is sent again.)
    within("svc flush", svc.flush()).await.unwrap();
    // (Kept open to the end, so that `/connz` lists it on either server
    // whatever the timing.)
    let _svc_kept = svc.clone();
    let responder = tokio::spawn(async move {
        let m = within("svc: the request", requests.next()).await.unwrap();
        let reply = m.reply.unwrap();
        svc.publish(reply.clone(), "pong".into()).await.unwrap();
        svc.publish(reply.clone(), "again".into()).await.unwrap();
        svc.publish("elsewhere", "x".into()).await.unwrap();
        // The inbox is random: name it by its role.
        let errs = errors_of(&svc, &mut svc_errs).await;
        errs.into_iter()
            .map(|e| e.replace(reply.as_str(), "<reply>"))
            .collect::<Vec<_>>()
    });
    let mut tries = 0;
    let answer = loop {
        match alice.request("req", "ping".into()).await {
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders && tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other.map(|m| m.payload),
        }
    };
    seen.push(format!("request: {answer:?}"));
    seen.push(format!(
        "svc publish: {:?}",
        within("the responder", responder).await.unwrap()
    ));
    // no_auth_user: no credentials, the guest's (default) permissions.
    let (guest, mut guest_errs) = connect(&url, async_nats::ConnectOptions::new())
        .await
        .unwrap();
    seen.push(format!(
        "guest auth_required: {}",
        guest.server_info().auth_required
    ));
    let _s = guest.subscribe("secret.x").await.unwrap();
    let _t = guest.subscribe("open").await.unwrap();
    seen.push(format!(
        "guest subscribe: {:?}",
        errors_of(&guest, &mut guest_errs).await
    ));
    seen.push(format!("connz users: {:?}", authorized_users(http)));
    drop(server);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_nkeys_and_permissions_as_nats_server() {
    let d = dir("users");
    let conf = d.join("users.conf");
    users_conf(&conf);
    let ours = users_scenario(&natrix_bin(), &conf).await;
    let joined = ours.join("\n");
    for wanted in [
        "alice/a: Ok(())",
        "alice/x: Err(",
        "admin/s3cret: Ok(())",
        "nkey publish: [\"nats: Permissions Violation for Publish to \\\"other\\\"\"]",
        "admin saw: [\"foo.ok\"]",
        "request: Ok(b\"pong\")",
        "guest auth_required: false",
    ] {
        assert!(joined.contains(wanted), "{wanted} in\n{joined}");
    }
    if let Some(r) = reference() {
        let theirs = users_scenario(&r, &conf).await;
        assert_eq!(ours, theirs);
    }
    let _ = std::fs::remove_dir_all(&d);
}

async fn token_scenario(bin: &Path, conf: &Path) -> Vec<String> {
    let server = ServerProcess::start(bin, &["-c", conf.to_str().unwrap()]);
    let mut seen = Vec::new();
    for token in ["tok3n", "nope", ""] {
        let ok = connect(
            &server.url(),
            async_nats::ConnectOptions::with_token(token.into()),
        )
        .await
        .map(|(c, _)| c.server_info().auth_required);
        seen.push(format!("{token}: {ok:?}"));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_bcrypt_tokens_as_nats_server() {
    let d = dir("token");
    for (name, token) in [("plain", "tok3n"), ("bcrypt", BCRYPT_TOK3N)] {
        let conf = d.join(format!("{name}.conf"));
        std::fs::write(&conf, format!("authorization {{ token: \"{token}\" }}\n")).unwrap();
        let ours = token_scenario(&natrix_bin(), &conf).await;
        assert_eq!(ours[0], "tok3n: Ok(true)", "{name}: {ours:?}");
        assert!(ours[1].starts_with("nope: Err("), "{name}: {ours:?}");
        if let Some(r) = reference() {
            assert_eq!(ours, token_scenario(&r, &conf).await, "{name}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
