//! The system account over NATS against the `natrix` binary and
//! nats-server 2.9.10 started with the same configuration file: a user of
//! the system account watches the connection and authentication events and
//! makes the `$SYS.REQ` monitoring requests; the envelopes' keys and the
//! values both servers must agree on are compared line by line.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use natrix_tests::{ServerProcess, natrix_bin};
use serde_json::Value;

const CONF: &str = r#"
server_name: sys-test
accounts {
  SYS: { users: [{user: sys, password: sys}] }
  APP: { users: [{user: a, password: a}] }
}
system_account: SYS
"#;

fn dir(name: &str) -> PathBuf {
    natrix_tests::test_dir("sys", name)
}

async fn connect(server: &ServerProcess, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .name("sys-test-client")
        .connect(server.url())
        .await
        .unwrap()
}

fn keys(v: &Value) -> String {
    let set: BTreeSet<&str> = v
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    format!("{set:?}")
}

/// A request's answer: the JSON, or what happened instead.
async fn ask(client: &async_nats::Client, subject: &str, body: &str) -> Result<Value, String> {
    let request = client.request(subject.to_string(), body.to_string().into());
    match tokio::time::timeout(Duration::from_millis(700), request).await {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(format!("{:?}", e.kind())),
        Ok(Ok(m)) => Ok(serde_json::from_slice(&m.payload).unwrap()),
    }
}

/// What the system account user sees, as lines.
async fn scenario(server: &ServerProcess) -> Vec<String> {
    let mut seen = Vec::new();
    let sys = connect(server, "sys").await;
    let mut connects = sys.subscribe("$SYS.ACCOUNT.*.CONNECT").await.unwrap();
    let mut disconnects = sys.subscribe("$SYS.ACCOUNT.*.DISCONNECT").await.unwrap();
    let mut auth_errors = sys
        .subscribe("$SYS.SERVER.*.CLIENT.AUTH.ERR")
        .await
        .unwrap();
    crate::synced(&sys).await;
    let app = connect(server, "a").await;
    let _foo = app.subscribe("foo").await.unwrap();
    app.publish("x", "hi".into()).await.unwrap();
    app.flush().await.unwrap();

    // Monitoring requests.
    let ping = ask(&sys, "$SYS.REQ.SERVER.PING", "").await.unwrap();
    let server_keys = keys(&ping["server"]);
    seen.push(format!("server keys {server_keys}"));
    seen.push(format!("server name {}", ping["server"]["name"]));
    seen.push(format!("server ver {}", ping["server"]["ver"]));
    seen.push(format!("statsz keys {}", keys(&ping["statsz"])));
    for k in [
        "connections",
        "total_connections",
        "active_accounts",
        "active_servers",
    ] {
        seen.push(format!("statsz {k} {}", ping["statsz"][k]));
    }
    let id = ping["server"]["id"].as_str().unwrap().to_string();
    let by_id = ask(&sys, &format!("$SYS.REQ.SERVER.{id}.STATSZ"), "")
        .await
        .unwrap();
    seen.push(format!("statsz by id {}", by_id["statsz"]["connections"]));

    let varz = ask(&sys, "$SYS.REQ.SERVER.PING.VARZ", "").await.unwrap();
    seen.push(format!("varz envelope {}", keys(&varz)));
    for k in ["server_name", "connections", "system_account", "version"] {
        seen.push(format!("varz {k} {}", varz["data"][k]));
    }
    let connz = ask(
        &sys,
        "$SYS.REQ.SERVER.PING.CONNZ",
        r#"{"subscriptions":true,"acc":"APP"}"#,
    )
    .await
    .unwrap();
    let data = &connz["data"];
    seen.push(format!("connz keys {}", keys(data)));
    seen.push(format!("connz num_connections {}", data["num_connections"]));
    let conn = &data["connections"][0];
    for k in ["name", "subscriptions_list", "in_msgs", "in_bytes"] {
        seen.push(format!("connz conn {k} {}", conn[k]));
    }
    let subsz = ask(
        &sys,
        "$SYS.REQ.SERVER.PING.SUBSZ",
        r#"{"subscriptions":true,"test":"foo"}"#,
    )
    .await
    .unwrap();
    let list = &subsz["data"]["subscriptions_list"];
    seen.push(format!("subsz total {}", subsz["data"]["total"]));
    seen.push(format!(
        "subsz first {} {}",
        list[0]["account"], list[0]["subject"]
    ));
    let accountz = ask(
        &sys,
        "$SYS.REQ.SERVER.PING.ACCOUNTZ",
        r#"{"account":"APP"}"#,
    )
    .await
    .unwrap();
    let detail = &accountz["data"]["account_detail"];
    seen.push(format!(
        "accountz {} {} {}",
        accountz["data"]["system_account"], detail["account_name"], detail["client_connections"]
    ));
    for x in ["ROUTEZ", "GATEWAYZ", "LEAFZ", "JSZ", "HEALTHZ"] {
        let r = ask(&sys, &format!("$SYS.REQ.SERVER.PING.{x}"), "")
            .await
            .unwrap();
        seen.push(format!("{x} data keys {}", keys(&r["data"])));
    }
    for (subject, body) in [
        ("$SYS.REQ.SERVER.PING.CONNZ", r#"{"subscriptions":"x"}"#),
        ("$SYS.REQ.SERVER.PING.CONNZ", r#"{"sort":"bogus"}"#),
        ("$SYS.REQ.SERVER.PING.ACCOUNTZ", r#"{"account":"NOPE"}"#),
        ("$SYS.REQ.ACCOUNT.APP.JSZ", ""),
    ] {
        let r = ask(&sys, subject, body).await.unwrap();
        seen.push(format!(
            "{subject} {body} -> keys {} error {}",
            keys(&r),
            r["error"]
        ));
    }
    let filtered = ask(
        &sys,
        "$SYS.REQ.SERVER.PING.VARZ",
        r#"{"server_name":"zzz"}"#,
    )
    .await;
    seen.push(format!("filtered {filtered:?}"));
    let idz = ask(&sys, "$SYS.REQ.SERVER.PING.IDZ", "").await;
    seen.push(format!("IDZ {idz:?}"));

    // Per-account requests.
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.CONNZ", "").await.unwrap();
    seen.push(format!("account connz {}", r["data"]["num_connections"]));
    // nats-server also lists its system imports (`$SYS.REQ...`) there.
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.SUBSZ", "").await.unwrap();
    let subjects: Vec<&str> = r["data"]["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["subject"].as_str())
        .filter(|s| !s.starts_with("$SYS."))
        .collect();
    seen.push(format!("account subsz {subjects:?}"));
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.INFO", "").await.unwrap();
    seen.push(format!("account info {}", r["data"]["account_name"]));
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.STATZ", "").await.unwrap();
    let stat = &r["data"]["account_statz"][0];
    seen.push(format!(
        "account statz keys {} {} {}",
        keys(stat),
        stat["acc"],
        stat["conns"]
    ));
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.PING.STATZ", "").await.unwrap();
    let accs: BTreeSet<String> = r["data"]["account_statz"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["acc"].to_string())
        .collect();
    seen.push(format!("account ping statz {accs:?}"));

    // Events: the client leaves, then someone fails to log in.
    app.drain().await.unwrap();
    let failed = async_nats::ConnectOptions::with_user_and_password("a".into(), "wrong".into())
        .connect(server.url())
        .await;
    assert!(failed.is_err());
    let event = |m: Option<async_nats::Message>| -> Value {
        serde_json::from_slice(&m.expect("an event").payload).unwrap()
    };
    let within = Duration::from_secs(2);
    // nats-server publishes events from its own send loop, so the system
    // user's own CONNECT may arrive after that subscription: skip it.
    let connect = loop {
        let e = event(tokio::time::timeout(within, connects.next()).await.unwrap());
        if e["client"]["acc"] != "SYS" {
            break e;
        }
    };
    let disconnect = event(
        tokio::time::timeout(within, disconnects.next())
            .await
            .unwrap(),
    );
    let auth = event(
        tokio::time::timeout(within, auth_errors.next())
            .await
            .unwrap(),
    );
    for (what, e) in [
        ("connect", &connect),
        ("disconnect", &disconnect),
        ("auth", &auth),
    ] {
        seen.push(format!("{what} keys {} type {}", keys(e), e["type"]));
        seen.push(format!("{what} server keys {}", keys(&e["server"])));
        let c = &e["client"];
        // `rtt` is left out when zero, which depends on timing.
        let mut client_keys = keys(c);
        client_keys = client_keys.replace("\"rtt\", ", "");
        seen.push(format!("{what} client keys {client_keys}"));
        for k in ["acc", "user", "name", "lang", "kind", "client_type"] {
            seen.push(format!("{what} client {k} {}", c[k]));
        }
    }
    seen.push(format!(
        "disconnect reason {} sent {} received {}",
        disconnect["reason"], disconnect["sent"], disconnect["received"]
    ));
    seen.push(format!("auth reason {}", auth["reason"]));
    seen.push(format!(
        "same client {}",
        connect["client"]["id"] == disconnect["client"]["id"]
    ));
    // The server's own subscriptions count as nats-server counts its own.
    let ping = ask(&sys, "$SYS.REQ.SERVER.PING", "").await.unwrap();
    seen.push(format!(
        "statsz subscriptions {}",
        ping["statsz"]["subscriptions"]
    ));
    let varz = ask(&sys, "$SYS.REQ.SERVER.PING.VARZ", "").await.unwrap();
    seen.push(format!(
        "varz subscriptions {}",
        varz["data"]["subscriptions"]
    ));
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.SUBSZ", "").await.unwrap();
    let mut subjects: Vec<&str> = r["data"]["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["subject"].as_str())
        .collect();
    subjects.sort_unstable();
    seen.push(format!("account subsz with imports {subjects:?}"));
    // Every account asks about itself through its imports.
    let app = self::connect(server, "a").await;
    for subject in [
        "$SYS.REQ.ACCOUNT.PING.CONNZ",
        "$SYS.REQ.SERVER.PING.CONNZ",
        "$SYS.REQ.ACCOUNT.PING.STATZ",
    ] {
        let r = ask(&app, subject, "").await.unwrap();
        let data = &r["data"];
        seen.push(format!(
            "APP asks {subject}: keys {} connections {} statz {}",
            keys(&r),
            data["num_connections"],
            data["account_statz"][0]["acc"]
        ));
    }
    let r = ask(&app, "$SYS.REQ.SERVER.PING.VARZ", "").await;
    seen.push(format!("APP asks varz {r:?}"));
    // The smaller services.
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.CONNS", "").await.unwrap();
    seen.push(format!(
        "account conns keys {} type {} conns {}",
        keys(&r),
        r["type"],
        r["conns"]
    ));
    for body in ["$SYS.ACCOUNT.APP.CONNECT", "$SYS.ACCOUNT.*.CONNECT", "nope"] {
        let r = ask(&sys, "$SYS.DEBUG.SUBSCRIBERS", body).await;
        seen.push(format!("debug subscribers {body} {r:?}"));
    }
    let r = ask(&sys, "$SYS.REQ.ACCOUNT.NSUBS", "").await;
    seen.push(format!("nsubs {r:?}"));
    for body in ["", "x"] {
        let r = ask(&sys, "$SYS.REQ.ACCOUNT.APP.CLAIMS.UPDATE", body)
            .await
            .unwrap();
        seen.push(format!("claims update {body:?} {}", r["error"]));
    }

    seen
}

#[tokio::test]
async fn system_account_services_and_events_match_nats_server() {
    let d = dir("run");
    let f = d.join("nats.conf");
    std::fs::write(&f, CONF).unwrap();
    let conf = f.to_str().unwrap();
    let _ = natrix_bin();
    let ours = ServerProcess::natrix(&["-c", conf]);
    let got = scenario(&ours).await;
    for expected in [
        "server name \"sys-test\"",
        "statsz connections 2",
        "connz num_connections 1",
        "connz conn subscriptions_list [\"foo\"]",
        "IDZ Err(\"NoResponders\")",
        "filtered Err(\"no answer\")",
        "disconnect reason \"Client Closed\" sent {\"bytes\":2,\"msgs\":1} received {\"bytes\":0,\"msgs\":0}",
        "auth reason \"Authentication Failure\"",
        "same client true",
    ] {
        assert!(got.iter().any(|l| l == expected), "{expected} in {got:#?}");
    }
    drop(ours);
    if let Some(r) = natrix_tests::reference_bin() {
        let theirs = ServerProcess::start(&r, &["-c", conf]);
        let want = scenario(&theirs).await;
        let differ: Vec<(&String, &String)> =
            got.iter().zip(&want).filter(|(a, b)| a != b).collect();
        assert!(
            differ.is_empty() && got.len() == want.len(),
            "natrix vs nats-server: {differ:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}
