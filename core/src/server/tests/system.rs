//! The system account's services and events, driven through the server.

use std::time::Duration;

use super::*;

const CONF: &str = r#"
accounts {
  SYS: { users: [{user: sys, password: sys}] }
  APP: { users: [{user: app, password: app}] }
}
system_account: SYS
"#;

fn opts() -> Options {
    let map = crate::conf::parse(CONF, "t.conf", &crate::conf::MemSource::new()).unwrap();
    let mut o = Options::default();
    let problems = crate::config::file::apply(&map, &mut o, &mut Default::default());
    assert!(problems.errors.is_empty(), "{problems:?}");
    o.server_name = "n1".into();
    o
}

fn login(h: &mut Harness, user: &str, pass: &str) -> ConnId {
    let id = h.client(&format!(
        r#"{{"user":"{user}","pass":"{pass}","headers":true,"no_responders":true,"verbose":false,"name":"t","lang":"rust","version":"1"}}"#
    ));
    h.send(id, "PING\r\n");
    let _ = h.out(id);
    id
}

/// Every `MSG` in `out`: subject and payload.
fn messages(out: &str) -> Vec<(String, serde_json::Value)> {
    let mut found = Vec::new();
    let mut rest = out;
    while let Some(at) = rest.find("MSG ") {
        rest = &rest[at..];
        let line_end = rest.find("\r\n").unwrap();
        let parts: Vec<&str> = rest[..line_end].split(' ').collect();
        let size: usize = parts.last().unwrap().parse().unwrap();
        let body = &rest[line_end + 2..line_end + 2 + size];
        found.push((parts[1].to_string(), serde_json::from_str(body).unwrap()));
        rest = &rest[line_end + 2 + size..];
    }
    found
}

fn request(h: &mut Harness, sys: ConnId, subject: &str, body: &str) -> Vec<serde_json::Value> {
    h.send(
        sys,
        &format!(
            "PUB {subject} _INBOX.r {}\r\n{body}\r\nPING\r\n",
            body.len()
        ),
    );
    messages(&h.out(sys))
        .into_iter()
        .filter(|(s, _)| s == "_INBOX.r")
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn server_ping_answers_with_statsz() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    let _app = login(&mut h, "app", "app");
    h.send(sys, "SUB _INBOX.r 1\r\n");
    let r = request(&mut h, sys, "$SYS.REQ.SERVER.PING", "");
    assert_eq!(r.len(), 1);
    let server = &r[0]["server"];
    assert_eq!(server["name"], "n1");
    assert_eq!(server["id"], h.server.server_id());
    assert_eq!(server["ver"], "2.9.10");
    assert_eq!(server["jetstream"], false);
    assert!(server["seq"].as_u64().unwrap() >= 1);
    let statsz = &r[0]["statsz"];
    assert_eq!(statsz["connections"], 2);
    assert_eq!(statsz["active_accounts"], 2);
    assert_eq!(statsz["active_servers"], 1);
    // The same by id, and as PING.STATSZ.
    let id = h.server.server_id().to_string();
    for subject in [
        format!("$SYS.REQ.SERVER.{id}.STATSZ"),
        "$SYS.REQ.SERVER.PING.STATSZ".into(),
    ] {
        let r = request(&mut h, sys, &subject, "");
        assert_eq!(r.len(), 1, "{subject}");
        assert!(r[0]["statsz"].is_object());
    }
    // Another server's id is not ours: nobody answers (503).
    h.send(
        sys,
        "PUB $SYS.REQ.SERVER.NOTME.VARZ _INBOX.r 0\r\n\r\nPING\r\n",
    );
    assert!(h.out(sys).contains("NATS/1.0 503"));
}

#[test]
fn monitoring_requests_carry_the_endpoints_data_in_an_envelope() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    let app = login(&mut h, "app", "app");
    h.send(app, "SUB foo 1\r\nPING\r\n");
    let _ = h.out(app);
    h.send(sys, "SUB _INBOX.r 1\r\n");
    let r = request(
        &mut h,
        sys,
        "$SYS.REQ.SERVER.PING.CONNZ",
        r#"{"subscriptions":true,"acc":"APP"}"#,
    );
    let data = &r[0]["data"];
    assert_eq!(data["num_connections"], 1);
    assert_eq!(data["connections"][0]["subscriptions_list"][0], "foo");
    let r = request(&mut h, sys, "$SYS.REQ.SERVER.PING.VARZ", "");
    assert_eq!(r[0]["data"]["server_name"], "n1");
    assert_eq!(r[0]["data"]["connections"], 2);
    let r = request(&mut h, sys, "$SYS.REQ.SERVER.PING.HEALTHZ", "");
    assert_eq!(r[0]["data"]["status"], "ok");
    let r = request(
        &mut h,
        sys,
        "$SYS.REQ.SERVER.PING.ACCOUNTZ",
        r#"{"account":"APP"}"#,
    );
    assert_eq!(r[0]["data"]["account_detail"]["client_connections"], 1);
    for x in ["ROUTEZ", "GATEWAYZ", "LEAFZ", "JSZ", "SUBSZ"] {
        let r = request(&mut h, sys, &format!("$SYS.REQ.SERVER.PING.{x}"), "");
        assert!(r[0]["data"]["server_id"].is_string(), "{x}");
    }
    // Bad options: Go's decoding error (400), or the endpoint's (500).
    let r = request(
        &mut h,
        sys,
        "$SYS.REQ.SERVER.PING.CONNZ",
        r#"{"subscriptions":"x"}"#,
    );
    assert_eq!(r[0]["error"]["code"], 400);
    assert!(r[0].get("data").is_none());
    let r = request(
        &mut h,
        sys,
        "$SYS.REQ.SERVER.PING.CONNZ",
        r#"{"sort":"bogus"}"#,
    );
    assert_eq!(r[0]["error"]["code"], 500);
    assert_eq!(
        r[0]["error"]["description"],
        "invalid sorting option: bogus"
    );
    assert!(r[0]["data"].is_null());
    // A request for another server gets no answer, and no 503 either.
    h.send(
        sys,
        "PUB $SYS.REQ.SERVER.PING.VARZ _INBOX.r 21\r\n{\"server_name\":\"zzz\"}\r\nPING\r\n",
    );
    assert_eq!(h.out(sys), "PONG\r\n");
}

#[test]
fn account_requests_answer_for_that_account() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    let app = login(&mut h, "app", "app");
    h.send(app, "SUB foo 1\r\nPING\r\n");
    let _ = h.out(app);
    h.send(sys, "SUB _INBOX.r 1\r\n");
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.CONNZ", "");
    assert_eq!(r[0]["data"]["num_connections"], 1);
    // The account's own subscription, and the three imports every account
    // has of the system account's services.
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.SUBSZ", "");
    let mut subjects: Vec<&str> = r[0]["data"]["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subject"].as_str().unwrap())
        .collect();
    subjects.sort_unstable();
    assert_eq!(
        subjects,
        [
            "$SYS.REQ.ACCOUNT.PING.CONNZ",
            "$SYS.REQ.ACCOUNT.PING.STATZ",
            "$SYS.REQ.SERVER.PING.CONNZ",
            "foo"
        ]
    );
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.INFO", "");
    assert_eq!(r[0]["data"]["account_name"], "APP");
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.NOPE.INFO", "");
    assert_eq!(r[0]["error"]["description"], "Account NOPE does not exist");
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.STATZ", "");
    assert_eq!(r[0]["data"]["account_statz"][0]["conns"], 1);
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.PING.STATZ", "");
    let accs: Vec<&str> = r[0]["data"]["account_statz"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["acc"].as_str().unwrap())
        .collect();
    assert_eq!(accs, ["SYS", "APP"]);
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.JSZ", "");
    assert_eq!(r[0]["error"]["description"], "jetstream not enabled");
}

#[test]
fn other_accounts_do_not_reach_the_services() {
    let mut h = Harness::new(opts());
    let app = login(&mut h, "app", "app");
    h.send(
        app,
        "SUB _INBOX.r 1\r\nPUB $SYS.REQ.SERVER.PING _INBOX.r 0\r\n\r\nPING\r\n",
    );
    assert!(h.out(app).contains("NATS/1.0 503"));
}

#[test]
fn connect_disconnect_and_auth_errors_are_published() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    h.send(sys, "SUB $SYS.> 1\r\nPING\r\n");
    let _ = h.out(sys);
    let app = login(&mut h, "app", "app");
    h.send(app, "PUB x 2\r\nhi\r\nPING\r\n");
    let _ = h.out(app);
    h.server
        .handle(now_at(h.now_ns), Event::Closed { conn: app });
    h.drain();
    let bad = h.accept();
    h.send(bad, r#"CONNECT {"user":"app","pass":"nope"}"#);
    h.send(bad, "\r\n");
    let events = messages(&h.out(sys));
    let subjects: Vec<&str> = events.iter().map(|(s, _)| s.as_str()).collect();
    let id = h.server.server_id().to_string();
    assert_eq!(
        subjects,
        [
            "$SYS.ACCOUNT.APP.CONNECT".to_string(),
            "$SYS.ACCOUNT.APP.DISCONNECT".to_string(),
            format!("$SYS.SERVER.{id}.CLIENT.AUTH.ERR"),
        ]
    );
    let connect = &events[0].1;
    assert_eq!(connect["type"], "io.nats.server.advisory.v1.client_connect");
    assert_eq!(connect["id"].as_str().unwrap().len(), 22);
    assert_eq!(connect["client"]["acc"], "APP");
    assert_eq!(connect["client"]["user"], "app");
    assert_eq!(connect["client"]["kind"], "Client");
    assert!(connect["client"].get("stop").is_none());
    let disconnect = &events[1].1;
    assert_eq!(
        disconnect["type"],
        "io.nats.server.advisory.v1.client_disconnect"
    );
    assert_eq!(disconnect["reason"], "Client Closed");
    assert_eq!(disconnect["sent"]["msgs"], 1);
    assert_eq!(disconnect["sent"]["bytes"], 2);
    assert!(disconnect["client"]["stop"].is_string());
    let auth = &events[2].1;
    assert_eq!(auth["reason"], "Authentication Failure");
    assert_eq!(auth["client"]["acc"], "$G");
    assert!(
        events[1].1["server"]["seq"].as_u64() > events[0].1["server"]["seq"].as_u64(),
        "seq counts up"
    );
}

#[test]
fn statsz_goes_out_periodically_backing_off_to_thirty_seconds() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    h.send(sys, "SUB $SYS.SERVER.*.STATSZ 1\r\nPING\r\n");
    let _ = h.out(sys);
    let mut at = Vec::new();
    for _ in 0..500 {
        h.advance(Duration::from_millis(250));
        if !messages(&h.out(sys)).is_empty() {
            at.push(h.now_ns / 1_000_000);
        }
        if at.len() == 9 {
            break;
        }
    }
    // 250 ms, then gaps of 0.5, 1, 2, 4, 8, 16, 30, 30 s.
    let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(at[0], 250);
    assert_eq!(gaps, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
}

#[test]
fn without_a_system_account_nothing_answers() {
    let mut o = opts();
    o.system_account = None;
    o.no_system_account = true;
    o.accounts.retain(|a| a.name != "SYS");
    o.auth = Auth::None;
    let mut h = Harness::new(o);
    assert_eq!(h.server.next_deadline(), None);
    let c = h.client(r#"{"headers":true,"no_responders":true,"verbose":false}"#);
    h.send(
        c,
        "SUB _INBOX.r 1\r\nPUB $SYS.REQ.SERVER.PING _INBOX.r 0\r\n\r\nPING\r\n",
    );
    assert!(h.out(c).contains("NATS/1.0 503"));
}

/// The services are subscriptions of the server's internal client, counted
/// as nats-server counts its own: 40 in the system account and three
/// imports in every other account.
#[test]
fn services_are_internal_subscriptions() {
    let mut h = Harness::new(opts());
    // $G, SYS and APP: 40 + 3 + 3.
    assert_eq!(h.internal_subs, 46);
    let (_, varz) = http(&mut h, "/varz", "");
    let varz: serde_json::Value = serde_json::from_str(&varz).unwrap();
    assert_eq!(varz["subscriptions"], 46);
    let (_, detail) = http(&mut h, "/accountz", "acc=APP");
    let detail: serde_json::Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(
        detail["account_detail"]["sublist_stats"]["num_subscriptions"],
        3
    );
    // No client listens: connz lists none of the server's own.
    let (_, connz) = http(&mut h, "/connz", "");
    let connz: serde_json::Value = serde_json::from_str(&connz).unwrap();
    assert_eq!(connz["num_connections"], 0);
    // Without a system account there is no internal client.
    let o = Options {
        no_system_account: true,
        ..Options::default()
    };
    assert_eq!(Harness::new(o).internal_subs, 0);
}

/// Every account can ask about itself through the imports nats-server
/// gives it, and the answer comes back into that account.
#[test]
fn every_account_imports_its_own_connz_and_statz() {
    let mut h = Harness::new(opts());
    // A client of another account, which APP's answers leave out.
    let _sys = login(&mut h, "sys", "sys");
    let app = login(&mut h, "app", "app");
    h.send(app, "SUB _INBOX.r 1\r\nSUB foo 2\r\nPING\r\n");
    let _ = h.out(app);
    for subject in ["$SYS.REQ.ACCOUNT.PING.CONNZ", "$SYS.REQ.SERVER.PING.CONNZ"] {
        let r = request(&mut h, app, subject, "");
        assert_eq!(r.len(), 1, "{subject}");
        assert_eq!(r[0]["data"]["num_connections"], 1, "{subject}");
        let conn = &r[0]["data"]["connections"][0];
        assert_eq!(conn["subscriptions"], 2, "{subject}");
    }
    let r = request(&mut h, app, "$SYS.REQ.ACCOUNT.PING.STATZ", "");
    let statz = r[0]["data"]["account_statz"].as_array().unwrap();
    assert_eq!(statz.len(), 1);
    assert_eq!(statz[0]["acc"], "APP");
    // Only those three: the system account's other services stay its own.
    h.send(
        app,
        "PUB $SYS.REQ.SERVER.PING.VARZ _INBOX.r 0\r\n\r\nPING\r\n",
    );
    assert!(
        h.out(app)
            .starts_with("HMSG _INBOX.r 1 16 16\r\nNATS/1.0 503")
    );
    // The internal subscriptions count what they took, as nats-server's do.
    let (_, subsz) = http(&mut h, "/subsz", "subs=1&acc=APP");
    let subsz: serde_json::Value = serde_json::from_str(&subsz).unwrap();
    let taken: u64 = subsz["subscriptions_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["subject"].as_str().unwrap().starts_with("$SYS"))
        .map(|s| s["msgs"].as_u64().unwrap())
        .sum();
    assert_eq!(taken, 3);
}

/// `$SYS.DEBUG.SUBSCRIBERS` counts a subject's subscribers in the
/// requester's account; `$SYS.REQ.ACCOUNT.<acc>.CONNS` reports an account
/// with local connections.
#[test]
fn debug_subscribers_and_account_conns() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    let app = login(&mut h, "app", "app");
    h.send(app, "SUB foo 1\r\nPING\r\n");
    let _ = h.out(app);
    h.send(
        sys,
        "SUB _INBOX.r 1\r\nSUB foo 2\r\nSUB foo q 3\r\nSUB foo.* 4\r\n",
    );
    for (body, n) in [
        ("foo", "2"),
        ("foo q", "1"),
        ("foo.bar", "1"),
        ("foo.>", "1"),
        ("nope", "0"),
    ] {
        h.send(
            sys,
            &format!(
                "PUB $SYS.DEBUG.SUBSCRIBERS _INBOX.r {}\r\n{body}\r\nPING\r\n",
                body.len()
            ),
        );
        let out = h.out(sys);
        assert!(
            out.contains(&format!("MSG _INBOX.r 1 {}\r\n{n}\r\n", n.len())),
            "{body}: {out}"
        );
    }
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.CONNS", "");
    assert_eq!(
        r[0]["type"],
        "io.nats.server.advisory.v1.account_connections"
    );
    assert_eq!(
        (r[0]["acc"].as_str(), r[0]["conns"].as_u64()),
        (Some("APP"), Some(1))
    );
    assert_eq!(r[0]["server"]["name"], "n1");
    // An account with no connections gets no answer.
    assert!(request(&mut h, sys, "$SYS.REQ.ACCOUNT.$G.CONNS", "").is_empty());
}

/// The other servers' subjects have a subscriber (no 503) and no answer;
/// a JWT update without operator mode is refused with the reason.
#[test]
fn cluster_subjects_listen_and_claims_updates_are_refused() {
    let mut h = Harness::new(opts());
    let sys = login(&mut h, "sys", "sys");
    h.send(sys, "SUB _INBOX.r 1\r\n");
    h.send(sys, "PUB $SYS.REQ.ACCOUNT.NSUBS _INBOX.r 0\r\n\r\nPING\r\n");
    assert_eq!(h.out(sys), "PONG\r\n");
    let r = request(&mut h, sys, "$SYS.REQ.ACCOUNT.APP.CLAIMS.UPDATE", "");
    assert_eq!(
        r[0]["error"]["description"],
        "jwt update error - request body is empty"
    );
    let r = request(&mut h, sys, "$SYS.ACCOUNT.APP.CLAIMS.UPDATE", "x");
    assert_eq!(
        r[0]["error"]["description"],
        "jwt update resulted in error - expected 3 chunks"
    );
    assert_eq!(r[0]["error"]["account"], "APP");
}

/// One timer table: the statsz schedule is a server timer beside the
/// connections' own, and lame duck mode stops it.
#[test]
fn statsz_and_lame_duck_share_the_timer_table() {
    let mut h = Harness::new(opts());
    assert_eq!(
        h.server.next_deadline(),
        Some(Instant::from_nanos(250_000_000))
    );
    h.advance(Duration::from_millis(250));
    assert_eq!(
        h.server.next_deadline(),
        Some(Instant::from_nanos(750_000_000))
    );
    h.lame_duck(h.now_ns);
    // No clients: lame duck exits at once, and statsz is off.
    assert!(h.exited);
    assert_eq!(h.server.next_deadline(), None);
}
