//! Accounts driven through the server: isolation, stream and service
//! imports across accounts, refused imports, limits, monitoring, reload.

use std::time::Duration;

use super::*;

const CONF: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a}, {user: a2, password: a}]
    exports: [
      {stream: "x.>", accounts: [B]}
      {service: "req.>"}
      {service: "str.>", response_type: stream, threshold: "10s"}
    ]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [
      {stream: {account: A, subject: "x.>"}, prefix: "p"}
      {stream: {account: A, subject: "x.y"}, to: "mapped"}
      {service: {account: A, subject: "req.x"}, to: "local"}
      {service: {account: A, subject: "str.>"}}
    ]
  }
  C: { users: [{user: c, password: c}], limits: { max_connections: 1, max_subs: 1, max_payload: 10 } }
}
authorization { users: [{user: g, password: g}] }
"#;

fn opts(text: &str) -> Options {
    let map = crate::conf::parse(text, "t.conf", &crate::conf::MemSource::new()).unwrap();
    let mut o = Options::default();
    let problems = crate::config::file::apply(&map, &mut o, &mut Default::default());
    assert!(problems.errors.is_empty(), "{problems:?}");
    o
}

fn login(h: &mut Harness, user: &str) -> ConnId {
    let id = h.client(&format!(
        r#"{{"user":"{user}","pass":"{}","headers":true,"no_responders":true,"verbose":false}}"#,
        &user[..1]
    ));
    h.send(id, "PING\r\n");
    assert_eq!(h.out(id), "PONG\r\n");
    id
}

fn sub(h: &mut Harness, id: ConnId, subs: &str) {
    h.send(id, &format!("{subs}PING\r\n"));
    assert_eq!(h.out(id), "PONG\r\n");
}

/// The reply subject of the one message in `out`.
fn reply_of(out: &str) -> String {
    out.split("\r\n")
        .next()
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .to_string()
}

#[test]
fn accounts_are_isolated() {
    let mut h = Harness::new(opts(CONF));
    let (a, b, g) = (login(&mut h, "a"), login(&mut h, "b"), login(&mut h, "g"));
    for id in [a, b, g] {
        sub(&mut h, id, "SUB iso 1\r\n");
    }
    h.send(a, "PUB iso 2\r\nhi\r\n");
    assert_eq!(h.out(a), "MSG iso 1 2\r\nhi\r\n");
    assert_eq!(h.out(b), "");
    assert_eq!(h.out(g), "");
    h.send(g, "PUB iso 2\r\nhi\r\n");
    assert_eq!(h.out(g), "MSG iso 1 2\r\nhi\r\n");
    assert_eq!(h.out(a), "");
    // A second user of A shares its subject space.
    let a2 = login(&mut h, "a2");
    h.send(a2, "PUB iso 2\r\nhi\r\n");
    assert_eq!(h.out(a), "MSG iso 1 2\r\nhi\r\n");
}

#[test]
fn stream_imports_with_prefix_and_to() {
    let mut h = Harness::new(opts(CONF));
    let (a, b) = (login(&mut h, "a"), login(&mut h, "b"));
    sub(
        &mut h,
        b,
        "SUB p.> 1\r\nSUB mapped 2\r\nSUB x.> 3\r\nSUB p.x.z 4\r\n",
    );
    h.send(a, "PUB x.y 2\r\nhi\r\n");
    let got = h.out(b);
    assert!(got.contains("MSG p.x.y 1 2\r\nhi\r\n"), "{got}");
    assert!(got.contains("MSG mapped 2 2\r\nhi\r\n"), "{got}");
    assert!(!got.contains(" 3 "), "B's own x.> is not A's: {got}");
    assert!(!got.contains(" 4 "), "{got}");
    h.send(a, "PUB x.z 1\r\nz\r\n");
    let got = h.out(b);
    assert!(
        got.contains("MSG p.x.z 1 1\r\nz\r\n") && got.contains("MSG p.x.z 4 1\r\nz\r\n"),
        "{got}"
    );
    // Publishing on the imported subject in B does not reach A.
    sub(&mut h, a, "SUB > 9\r\n");
    h.send(b, "PUB p.x.y 1\r\nq\r\n");
    assert_eq!(h.out(a), "");
    assert_eq!(h.out(b), "MSG p.x.y 1 1\r\nq\r\n");
    // Unsubscribing removes the shadow.
    sub(&mut h, b, "UNSUB 1\r\nUNSUB 2\r\nUNSUB 4\r\n");
    h.send(a, "PUB x.y 2\r\nhi\r\n");
    assert_eq!(h.out(b), "");
    h.send(a, "PING\r\n");
    let _ = h.out(a);
}

#[test]
fn service_import_request_and_singleton_reply() {
    let mut h = Harness::new(opts(CONF));
    let (a, b) = (login(&mut h, "a"), login(&mut h, "b"));
    sub(&mut h, a, "SUB req.> 1\r\n");
    sub(&mut h, b, "SUB _INBOX.> 2\r\n");
    h.send(b, "PUB local _INBOX.r1 3\r\nreq\r\n");
    let req = h.out(a);
    let reply = reply_of(&req);
    assert!(reply.starts_with("_R_.") && reply.len() == 17, "{req}");
    let rtt = h.server.conns[b.0].rtt.unwrap().as_nanos();
    let header = format!("NATS/1.0\r\nNats-Request-Info: {{\"acc\":\"B\",\"rtt\":{rtt}}}\r\n\r\n");
    assert_eq!(
        req,
        format!(
            "HMSG req.x 1 {reply} {} {}\r\n{header}req\r\n",
            header.len(),
            header.len() + 3
        )
    );
    // The first response reaches the requester; a second is dropped.
    h.send(
        a,
        &format!("PUB {reply} 3\r\none\r\nPUB {reply} 3\r\ntwo\r\n"),
    );
    assert_eq!(h.out(b), "MSG _INBOX.r1 2 3\r\none\r\n");
    // The same prefix serves every request of the account.
    h.send(b, "PUB local _INBOX.r2 1\r\nx\r\n");
    let second = reply_of(&h.out(a));
    assert_eq!(second[..11], reply[..11]);
    assert_ne!(second, reply);
    // No responder in A: the import took it, so no 503 (as nats-server).
    sub(&mut h, a, "UNSUB 1\r\n");
    h.send(b, "PUB local _INBOX.r3 1\r\nx\r\n");
    assert_eq!(h.out(b), "");
    // Without an import, B's request to A's subject gets a 503.
    h.send(b, "PUB req.x _INBOX.r4 1\r\nx\r\n");
    assert_eq!(
        h.out(b),
        "HMSG _INBOX.r4 2 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    );
}

#[test]
fn stream_responses_last_until_the_threshold() {
    let mut h = Harness::new(opts(CONF));
    let (a, b) = (login(&mut h, "a"), login(&mut h, "b"));
    sub(&mut h, a, "SUB str.> 1\r\n");
    sub(&mut h, b, "SUB _INBOX.> 2\r\n");
    h.send(
        b,
        "HPUB str.q _INBOX.r 18 19\r\nNATS/1.0\r\nK: v\r\n\r\nq\r\n",
    );
    let req = h.out(a);
    assert!(
        req.contains("NATS/1.0\r\nK: v\r\nNats-Request-Info: {\"acc\":\"B\""),
        "{req}"
    );
    let reply = reply_of(&req);
    h.send(
        a,
        &format!("PUB {reply} 3\r\none\r\nPUB {reply} 3\r\ntwo\r\n"),
    );
    assert_eq!(
        h.out(b),
        "MSG _INBOX.r 2 3\r\none\r\nMSG _INBOX.r 2 3\r\ntwo\r\n"
    );
    h.advance(Duration::from_secs(11));
    let _ = h.out(b);
    h.send(a, &format!("PUB {reply} 5\r\nlate!\r\n"));
    assert_eq!(h.out(b), "");
}

#[test]
fn limits_of_an_account() {
    let mut h = Harness::new(opts(CONF));
    let c = h.client(r#"{"user":"c","pass":"c","verbose":false}"#);
    assert_eq!(h.server.conns[c.0].max_payload, Some(10));
    h.send(c, "PING\r\n");
    let _ = h.out(c);
    h.send(c, "SUB a 1\r\nSUB b 2\r\nPING\r\n");
    assert_eq!(
        h.out(c),
        "-ERR 'maximum subscriptions exceeded'\r\nPONG\r\n"
    );
    // A second client of C is one too many.
    let c2 = h.client(r#"{"user":"c","pass":"c"}"#);
    assert!(
        h.closed
            .contains(&(c2, CloseReason::MaxAccountConnectionsExceeded, true))
    );
    h.send(c, "PUB a 11\r\n01234567890\r\n");
    assert_eq!(h.out(c), "-ERR 'Maximum Payload Violation'\r\n");
}

#[test]
fn first_pong_carries_the_account_payload_limit() {
    let mut h = Harness::new(opts(CONF));
    let id = h.client(r#"{"user":"c","pass":"c"}"#);
    h.send(id, "PING\r\n");
    let out = h.out(id);
    assert!(
        out.starts_with("PONG\r\nINFO {") && out.contains("\"max_payload\":10,"),
        "{out}"
    );
    h.send(id, "PING\r\n");
    assert_eq!(h.out(id), "PONG\r\n");
}

#[test]
fn monitoring_shows_accounts() {
    let mut h = Harness::new(opts(CONF));
    let (_a, _b) = (login(&mut h, "a"), login(&mut h, "b"));
    let get = |h: &mut Harness, path: &str, q: &str| {
        let r = h
            .server
            .monitor(now_at(h.now_ns), path, q, &ProcessInfo::default());
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap_or_default()
    };
    let v = get(&mut h, "/accountz", "");
    assert_eq!(v["system_account"], "$SYS");
    assert_eq!(
        v["accounts"],
        serde_json::json!(["$G", "A", "B", "C", "$SYS"])
    );
    let v = get(&mut h, "/accountz", "acc=B");
    assert_eq!(v["account_detail"]["client_connections"], 1);
    assert_eq!(v["account_detail"]["imports"][0]["local_subject"], "p.x.>");
    let v = get(&mut h, "/accstatz", "");
    let names: Vec<&str> = v["account_statz"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["acc"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B"]);
    let v = get(&mut h, "/connz", "auth=true&acc=B");
    assert_eq!(v["connections"][0]["account"], "B");
    assert_eq!(v["connections"].as_array().unwrap().len(), 1);
}

#[test]
fn reload_moves_clients_to_their_new_accounts() {
    let mut h = Harness::new(opts(CONF));
    let (a, b) = (login(&mut h, "a"), login(&mut h, "b"));
    sub(&mut h, b, "SUB p.> 1\r\nSUB shared 2\r\n");
    // B now lives in A's account, and the import is gone.
    let moved = CONF.replace("users: [{user: b, password: b}]", "").replace(
        "users: [{user: a, password: a}, {user: a2, password: a}]",
        "users: [{user: a, password: a}, {user: a2, password: a}, {user: b, password: b}]",
    );
    h.reload(h.now_ns, opts(&moved)).unwrap();
    h.drain();
    assert!(h.logs.iter().any(|l| l == "Reloaded: accounts"));
    h.send(a, "PUB shared 2\r\nhi\r\nPUB x.y 1\r\nz\r\n");
    assert_eq!(h.out(b), "MSG shared 2 2\r\nhi\r\n");
}
