//! Operations driven through the server: lame duck mode, protocol trace
//! lines, monitoring parameters and base path, reload, subject mappings.

use std::time::Duration;

use super::*;
use crate::auth::Auth;

#[test]
fn lame_duck_informs_then_closes_clients_over_the_duration_then_exits() {
    let opts = Options {
        lame_duck_duration: Duration::from_secs(30),
        lame_duck_grace_period: Duration::from_secs(10),
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    // Three clients that read async INFO (protocol 1, first PONG sent), one
    // speaking protocol 0 and one that has not pinged yet.
    let proto1 = r#"{"verbose":false,"protocol":1}"#;
    let mut ready = Vec::new();
    for _ in 0..3 {
        let id = h.client(proto1);
        h.send(id, "PING\r\n");
        assert_eq!(h.out(id), "PONG\r\n");
        ready.push(id);
    }
    let old = h.client(r#"{"verbose":false,"protocol":0}"#);
    h.send(old, "PING\r\n");
    let _ = h.out(old);
    let fresh = h.client(proto1);
    h.lame_duck(h.now_ns);
    h.drain();
    assert!(h.stopped_accepting);
    assert!(
        h.logs
            .iter()
            .any(|l| l == "Entering lame duck mode, stop accepting new clients")
    );
    for &id in &ready {
        let info = h.out(id);
        let json: serde_json::Value =
            serde_json::from_str(info.trim_start_matches("INFO ").trim_end()).unwrap();
        assert_eq!(json["ldm"], true, "{info}");
        assert_eq!(json["client_id"], h.server.conns[id.0].cid);
    }
    assert_eq!(h.out(old), "");
    assert_eq!(h.out(fresh), "");
    // A second signal changes nothing.
    h.lame_duck(h.now_ns);
    h.drain();
    assert_eq!(h.out(ready[0]), "");
    // Nothing closes during the grace period.
    h.advance(Duration::from_millis(9_999));
    assert!(h.closed.is_empty());
    // Then one client at a time, each step between half a second and a
    // second (20 s over 5 clients, capped at 1 s).
    h.advance(Duration::from_millis(1));
    assert_eq!(h.closed.len(), 1);
    assert!(h.logs.iter().any(|l| l == "Closing existing clients"));
    let mut last = h.now_ns;
    while !h.exited {
        let at = h.server.next_deadline().expect("a close is scheduled");
        let step = at.as_nanos() - last;
        assert!(
            (500_000_000..1_000_000_000).contains(&step),
            "step {step} ns"
        );
        h.advance(Duration::from_nanos(at.as_nanos() - h.now_ns));
        last = h.now_ns;
    }
    assert_eq!(h.closed.len(), 5);
    assert!(
        h.closed
            .iter()
            .all(|&(_, r, flush)| r == CloseReason::ServerShutdown && flush)
    );
    // A connection accepted before the listener closed is not served.
    let late = h.accept_at(h.now_ns);
    h.drain();
    assert_eq!(h.close_reason(late), Some(CloseReason::ServerShutdown));
}

#[test]
fn lame_duck_skips_clients_that_left_and_exits_at_once_when_empty() {
    let mut h = Harness::new(Options::default());
    let a = h.client(quiet());
    let b = h.client(quiet());
    h.lame_duck(0);
    h.drain();
    h.server.handle(now_at(0), Event::Closed { conn: a });
    h.drain();
    h.advance(Duration::from_secs(10));
    // `a` left on its own: `b` is the only close, and the last.
    assert_eq!(h.closed.iter().map(|c| c.0).collect::<Vec<_>>(), vec![b]);
    assert!(h.exited);

    let mut empty = Harness::new(Options::default());
    empty.lame_duck(0);
    empty.drain();
    assert!(empty.stopped_accepting && empty.exited);
    assert_eq!(empty.server.next_deadline(), None);
}

#[test]
fn trace_lines_match_nats_server() {
    let opts = Options {
        trace: true,
        max_traced_msg_len: 4,
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let id = h.accept();
    h.send(
        id,
        "CONNECT {\"verbose\":true,\"headers\":true}\r\nSUB foo 1\r\nPUB foo 9\r\nhello\u{e9}\u{1}x\r\nPUB foo 2\r\nhi\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nab\r\nPING\r\n",
    );
    let _ = h.out(id);
    h.server.handle(now_at(0), Event::Closed { conn: id });
    h.drain();
    let lines: Vec<&str> = h
        .logs
        .iter()
        .map(|l| l.split_once(" - cid:1 - ").unwrap().1)
        .collect();
    assert_eq!(
        lines,
        [
            "<<- [CONNECT {\"verbose\":true,\"headers\":true}]",
            "->> [OK]",
            "<<- [SUB foo 1]",
            "->> [OK]",
            "<<- [PUB foo 9]",
            "<<- MSG_PAYLOAD: [\"hell...\"]",
            "->> [OK]",
            "->> [MSG foo 1 9]",
            "<<- [PUB foo 2]",
            "<<- MSG_PAYLOAD: [\"hi\"]",
            "->> [OK]",
            "->> [MSG foo 1 2]",
            "<<- [HPUB foo 12 14]",
            "<<- MSG_PAYLOAD: [\"NATS...\"]",
            "->> [OK]",
            "->> [HMSG foo 1 12 14]",
            "<<- [PING]",
            "->> [PONG]",
            "<-> [DELSUB 1]",
        ]
    );
}

#[test]
fn go_quote_follows_go() {
    use super::client::go_quote;
    assert_eq!(go_quote(b"hi"), "\"hi\"");
    assert_eq!(
        go_quote("a\"\\\n\r\t\u{7}\u{1}\u{7f}é".as_bytes()),
        "\"a\\\"\\\\\\n\\r\\t\\a\\x01\\x7fé\""
    );
    assert_eq!(go_quote(b"\xff\xc3"), "\"\\xff\\xc3\"");
    assert_eq!(go_quote("\u{85}".as_bytes()), "\"\\u0085\"");
}

#[test]
fn monitoring_parameters_are_decoded_as_nats_server_does() {
    let mut h = Harness::new(Options::default());
    let a = h.client(quiet());
    h.send(a, "SUB foo 1\r\nSUB bar 2\r\n");
    let b = h.client(quiet());
    h.send(b, "SUB foo 1\r\n");
    h.server.handle(now_at(0), Event::Closed { conn: b });
    h.drain();
    let bad = [
        (
            "/connz",
            "subs=maybe",
            "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "/connz",
            "offset=x",
            "Error decoding int for 'offset': strconv.Atoi: parsing \"x\": invalid syntax",
        ),
        (
            "/connz",
            "limit=99999999999999999999",
            "Error decoding int for 'limit': strconv.Atoi: parsing \"99999999999999999999\": value out of range",
        ),
        (
            "/connz",
            "cid=-1",
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
        (
            "/connz",
            "cid=%2B1",
            "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"+1\": invalid syntax",
        ),
        ("/connz", "state=gone", "Error decoding state for gone"),
        ("/connz", "sort=size", "invalid sorting option: size"),
        (
            "/connz",
            "sort=stop",
            "sort by stop only valid on closed connections",
        ),
        (
            "/connz",
            "sort=reason&state=all",
            "sort by reason only valid on closed connections",
        ),
        (
            "/subsz",
            "test=foo.*",
            "invalid test subject, must be valid publish subject: foo.*",
        ),
        (
            "/healthz",
            "js-enabled-only=yes",
            "Error decoding boolean for 'js-enabled-only': strconv.ParseBool: parsing \"yes\": invalid syntax",
        ),
        (
            "/jsz",
            "streams=%7Bx%7D",
            "Error decoding boolean for 'streams': strconv.ParseBool: parsing \"{x}\": invalid syntax",
        ),
    ];
    for (path, query, text) in bad {
        assert_eq!(
            http(&mut h, path, query),
            (400, text.to_string()),
            "{path}?{query}"
        );
    }
    for q in ["js-enabled-only=true", "js-server-only=1", "js-enabled=T"] {
        let (status, body) = http(&mut h, "/healthz", q);
        assert_eq!((status, body.contains("\"ok\"")), (200, true), "{q}");
    }
    assert!(h.logs.iter().any(|l| l.contains("js-enabled deprecated")));
    // Good values: cid picks one connection, subs=detail counts as subs,
    // closed connections sort by stop, offset/limit clamp.
    let (status, body) = http(&mut h, "/connz", "cid=1&subs=detail&limit=-3&offset=-1");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["limit"].as_u64(), v["offset"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        v["connections"][0]["subscriptions_list"],
        serde_json::json!(["bar", "foo"])
    );
    let (status, body) = http(&mut h, "/connz", "state=closed&sort=stop");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["connections"][0]["cid"], 2);
    let (status, body) = http(&mut h, "/subsz", "subs=1&test=foo");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["total"].as_u64()), (200, Some(1)));
}

#[test]
fn reload_applies_what_may_change_and_refuses_the_rest() {
    let mut h = Harness::new(Options::default());
    let a = h.client(quiet());
    let b = h.client(quiet());
    // Refused: nothing changes.
    let host = Options {
        host: "127.0.0.1".into(),
        ..Options::default()
    };
    assert_eq!(
        h.reload(0, host),
        Err("config reload not supported for Host: old=0.0.0.0, new=127.0.0.1".into())
    );
    let pending = Options {
        max_pending: 1,
        ..Options::default()
    };
    assert_eq!(
        h.reload(0, pending),
        Err("config reload not supported for MaxPending: old=67108864, new=1".into())
    );
    assert_eq!(h.server.options(), &Options::default());
    // Accepted: a token now, and one connection at most.
    let new = Options {
        auth: Auth::Token("t".into()),
        max_payload: 1000,
        ping_interval: Duration::from_secs(30),
        ..Options::default()
    };
    h.reload(0, new).unwrap();
    h.drain();
    assert_eq!(
        h.logs[h.logs.len() - 6..],
        [
            "Reloaded: authorization token",
            "Reloaded: max_payload = 1000",
            "Reloaded: ping_interval = 30s",
            "127.0.0.1:50000 - cid:1 - authentication error",
            "127.0.0.1:50000 - cid:2 - authentication error",
            "Reloaded server configuration",
        ]
    );
    // Both clients connected without a token: both are refused now.
    for id in [a, b] {
        assert_eq!(h.out(id), "-ERR 'Authorization Violation'\r\n");
        assert_eq!(
            h.close_reason(id),
            Some(CloseReason::AuthenticationViolation)
        );
    }
    // New connections see the new INFO and must authenticate.
    let c = h.accept_at(0);
    let info = h.out(c);
    assert!(info.contains("\"auth_required\":true") && info.contains("\"max_payload\":1000"));
    h.send(
        c,
        "CONNECT {\"auth_token\":\"t\",\"verbose\":false}\r\nPING\r\n",
    );
    assert_eq!(h.out(c), "PONG\r\n");
    let d = h.client(r#"{"auth_token":"t","verbose":false}"#);
    // Lowering max_connections closes the newest clients.
    let fewer = Options {
        auth: Auth::Token("t".into()),
        max_payload: 1000,
        ping_interval: Duration::from_secs(30),
        max_connections: 1,
        ..Options::default()
    };
    h.reload(0, fewer).unwrap();
    h.drain();
    assert_eq!(h.out(d), "-ERR 'maximum connections exceeded'\r\n");
    assert_eq!(h.close_reason(d), Some(CloseReason::MaxConnectionsExceeded));
    assert_eq!(h.close_reason(c), None);
    assert!(
        h.logs
            .iter()
            .any(|l| l == "Closed 1 connections to fall within max_connections")
    );
}

#[test]
fn monitoring_under_a_base_path() {
    let opts = Options {
        http_base_path: "nats/./mon/".into(),
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    assert_eq!(http(&mut h, "/nats/mon/varz", "").0, 200);
    assert_eq!(http(&mut h, "/nats/mon/healthz/", "").0, 200);
    assert_eq!(http(&mut h, "/nats/mon", "").0, 200);
    assert_eq!(http(&mut h, "/varz", "").0, 404);
    assert_eq!(http(&mut h, "/nats/monvarz", "").0, 404);
    let (_, body) = http(&mut h, "/nats/mon/varz", "");
    assert!(
        body.contains("\"http_base_path\": \"nats/./mon/\""),
        "{body}"
    );
}

#[test]
fn mappings_rewrite_the_published_subject() {
    use crate::mapping::{MapDest, Mapping, Mappings};
    let mut mappings = Mappings::default();
    let d = |s: &str, w: u8| MapDest {
        subject: s.into(),
        weight: w,
    };
    mappings.add(Mapping::new("orders.*", &[d("svc.orders.$1", 100)]).unwrap());
    mappings.add(Mapping::new("split", &[d("left", 50), d("right", 50)]).unwrap());
    let opts = Options {
        mappings,
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let s = h.client(quiet());
    h.send(
        s,
        "SUB svc.orders.* 1\r\nSUB orders.* 2\r\nSUB left 3\r\nSUB right 4\r\n",
    );
    let p = h.client(quiet());
    h.send(p, "PUB orders.eu 2\r\nhi\r\n");
    // Delivered under the mapped subject only.
    assert_eq!(h.out(s), "MSG svc.orders.eu 1 2\r\nhi\r\n");
    for _ in 0..1000 {
        h.send(p, "PUB split 0\r\n\r\n");
    }
    let out = h.out(s);
    let (l, r) = (
        out.matches("MSG left").count(),
        out.matches("MSG right").count(),
    );
    assert_eq!(l + r, 1000);
    assert!((400..600).contains(&l), "{l} left of 1000");
}
