//! The server, driven directly: every op, every `-ERR`, timers and limits.

use std::time::Duration;

use super::*;
use crate::auth::Auth;

mod accounts;
mod auth;
mod consumer_limits;
mod consumers;
mod early_ops;
mod jetstream;
mod ops;
mod partitions;
mod priority_groups;
mod system;

/// A monitoring request: status and body.
fn http(h: &mut Harness, path: &str, query: &str) -> (u16, String) {
    let r = h
        .server
        .monitor(now_at(h.now_ns), path, query, &ProcessInfo::default());
    h.drain();
    // The driver logs what the endpoint warns of.
    h.logs.extend(r.warning);
    (r.status, String::from_utf8(r.body).unwrap())
}

struct Harness {
    server: Server,
    now_ns: u64,
    closed: Vec<(ConnId, CloseReason, bool)>,
    logs: Vec<String>,
    paused: Vec<(ConnId, Instant)>,
    resumed: Vec<ConnId>,
    stopped_accepting: bool,
    exited: bool,
    /// The answers to reloads.
    reloaded: Vec<Option<String>>,
    storage: Vec<natrix_storage::ops::StorageOp>,
    /// The server's own subscriptions (system account services).
    internal_subs: usize,
    /// `Transmit` and `StartTls`, in the order they came.
    wire: Vec<(ConnId, &'static str)>,
}

fn now_at(ns: u64) -> Now {
    Now::new(Instant::from_nanos(ns), 1_700_000_000_000_000_000 + ns)
}

impl Harness {
    fn new(opts: Options) -> Self {
        Self::seeded(opts, 7)
    }

    fn seeded(opts: Options, seed: u64) -> Self {
        let server = Server::new(opts, seed, now_at(0));
        Harness {
            internal_subs: server.num_subscriptions(),
            server,
            now_ns: 0,
            closed: Vec::new(),
            logs: Vec::new(),
            paused: Vec::new(),
            resumed: Vec::new(),
            stopped_accepting: false,
            exited: false,
            reloaded: Vec::new(),
            storage: Vec::new(),
            wire: Vec::new(),
        }
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    fn drain(&mut self) {
        while let Some(a) = self.server.poll_action() {
            match a {
                Action::Close {
                    conn,
                    reason,
                    flush,
                } => self.closed.push((conn, reason, flush)),
                Action::Log { message, .. } => self.logs.push(message),
                Action::Pause { conn, until } => self.paused.push((conn, until)),
                Action::Resume { conn } => self.resumed.push(conn),
                Action::Transmit { conn } => self.wire.push((conn, "transmit")),
                Action::StartTls { conn } => self.wire.push((conn, "start tls")),
                Action::StopAccepting => self.stopped_accepting = true,
                Action::Exit => self.exited = true,
                Action::Reloaded { error } => self.reloaded.push(error),
                Action::Storage(op) => self.storage.push(op),
                Action::Dial { .. } => unreachable!("a server without routes dials nothing"),
            }
        }
    }

    /// A new connection at `ns`, its actions drained but its INFO left.
    fn accept_at(&mut self, ns: u64) -> ConnId {
        let conn = self.server.next_conn_id();
        let (listener, peer) = (Listener::Client, Self::peer());
        let accepted = Event::Accepted {
            conn,
            listener,
            peer,
        };
        self.server.handle(now_at(ns), accepted);
        self.drain();
        conn
    }

    /// Applies new options at `ns`: the server's answer.
    fn reload(&mut self, ns: u64, options: Options) -> Result<(), String> {
        self.server
            .handle(now_at(ns), Event::Reload { options: &options });
        self.drain();
        match self.reloaded.pop().expect("a reload is answered") {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Enters lame duck mode at `ns`.
    fn lame_duck(&mut self, ns: u64) {
        self.server.handle(now_at(ns), Event::LameDuck);
        self.drain();
    }

    /// A new connection; its INFO is consumed.
    fn accept(&mut self) -> ConnId {
        let id = self.accept_at(self.now_ns);
        let info = self.out(id);
        assert!(
            info.starts_with("INFO {") && info.ends_with("} \r\n"),
            "{info}"
        );
        id
    }

    fn client(&mut self, connect: &str) -> ConnId {
        let id = self.accept();
        self.send(id, &format!("CONNECT {connect}\r\n"));
        let _ = self.out(id);
        id
    }

    fn send(&mut self, id: ConnId, data: &str) {
        self.send_bytes(id, data.as_bytes());
    }

    fn send_bytes(&mut self, id: ConnId, data: &[u8]) {
        self.server.handle(
            now_at(self.now_ns),
            Event::Received {
                conn: id,
                bytes: data,
            },
        );
        self.drain();
    }

    fn out(&mut self, id: ConnId) -> String {
        let mut buf = Vec::new();
        self.server.take_outbound(id, &mut buf);
        let n = buf.len();
        if n > 0 {
            self.server
                .handle(now_at(self.now_ns), Event::Written { conn: id, bytes: n });
            self.drain();
        }
        String::from_utf8(buf).unwrap()
    }

    fn advance(&mut self, d: Duration) {
        self.now_ns += d.as_nanos() as u64;
        self.server.handle(now_at(self.now_ns), Event::Tick);
        self.drain();
    }

    fn close_reason(&self, id: ConnId) -> Option<CloseReason> {
        self.closed.iter().find(|c| c.0 == id).map(|c| c.1)
    }
}

fn quiet() -> &'static str {
    r#"{"verbose":false,"pedantic":false,"headers":true,"no_responders":true}"#
}

#[test]
fn info_fields() {
    let mut h = Harness::new(Options::default());
    let id = h.accept_at(0);
    let info = h.out(id);
    let json: serde_json::Value =
        serde_json::from_str(info.trim_start_matches("INFO ").trim_end()).unwrap();
    assert_eq!(json["version"], "2.9.10");
    assert_eq!(json["proto"], 1);
    assert_eq!(json["headers"], true);
    assert_eq!(json["max_payload"], 1048576);
    assert_eq!(json["client_id"], 1);
    assert_eq!(json["client_ip"], "127.0.0.1");
    assert_eq!(json["natrix_version"], crate::VERSION);
    assert!(json.get("auth_required").is_none());
    let id = json["server_id"].as_str().unwrap();
    assert_eq!(id.len(), 56);
    assert!(id.starts_with('N'));
    // The same seed gives the same server id.
    let again = Server::new(Options::default(), 7, now_at(0));
    assert_eq!(again.server_id(), id);
}

#[test]
fn verbose_acks_every_op() {
    let mut h = Harness::new(Options::default());
    let id = h.accept();
    h.send(
        id,
        "CONNECT {}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nUNSUB 99\r\nPING\r\n",
    );
    assert_eq!(
        h.out(id),
        "+OK\r\n+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\n+OK\r\n+OK\r\nPONG\r\n"
    );
}

#[test]
fn pub_sub_wildcards_and_size_token() {
    let mut h = Harness::new(Options::default());
    let s = h.client(quiet());
    let p = h.client(quiet());
    h.send(s, "SUB foo.* 1\r\nSUB foo.> 2\r\nSUB bar 3\r\n");
    h.send(
        p,
        "PUB foo.bar reply 05\r\nhello\r\nPUB foo.a.b 0\r\n\r\nPUB foo 1\r\nx\r\n",
    );
    let out = h.out(s);
    assert!(out.contains("MSG foo.bar 1 reply 05\r\nhello\r\n"), "{out}");
    assert!(out.contains("MSG foo.bar 2 reply 05\r\nhello\r\n"), "{out}");
    assert!(out.ends_with("MSG foo.a.b 2 0\r\n\r\n"), "{out}");
    assert_eq!(out.matches("MSG").count(), 3);
}

#[test]
fn echo_off_skips_own_messages() {
    let mut h = Harness::new(Options::default());
    let a = h.client(r#"{"verbose":false,"echo":false}"#);
    h.send(a, "SUB foo 1\r\nPUB foo 1\r\nx\r\nPING\r\n");
    assert_eq!(h.out(a), "PONG\r\n");
}

#[test]
fn queue_groups_deliver_to_one_member() {
    let mut seen = [0usize; 2];
    for seed in 0..20 {
        let mut h = Harness::seeded(Options::default(), seed);
        let m1 = h.client(quiet());
        let m2 = h.client(quiet());
        let plain = h.client(quiet());
        let p = h.client(quiet());
        h.send(m1, "SUB work q 1\r\n");
        h.send(m2, "SUB work q 1\r\n");
        h.send(plain, "SUB work 1\r\n");
        for _ in 0..10 {
            h.send(p, "PUB work 1\r\nx\r\n");
        }
        let (a, b) = (
            h.out(m1).matches("MSG").count(),
            h.out(m2).matches("MSG").count(),
        );
        assert_eq!(a + b, 10);
        assert_eq!(h.out(plain).matches("MSG").count(), 10);
        seen[0] += a;
        seen[1] += b;
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "both members get messages: {seen:?}"
    );
}

#[test]
fn same_seed_same_choices() {
    let run = |seed| {
        let mut h = Harness::seeded(Options::default(), seed);
        let m: Vec<ConnId> = (0..3).map(|_| h.client(quiet())).collect();
        for &c in &m {
            h.send(c, "SUB w g 1\r\n");
        }
        let p = h.client(quiet());
        for _ in 0..30 {
            h.send(p, "PUB w 1\r\nx\r\n");
        }
        m.iter()
            .map(|&c| h.out(c).matches("MSG").count())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(3), run(3));
}

#[test]
fn headers_and_stripping() {
    let mut h = Harness::new(Options::default());
    let hs = h.client(quiet());
    let plain = h.client(r#"{"verbose":false}"#);
    let p = h.client(quiet());
    h.send(hs, "SUB h 1\r\n");
    h.send(plain, "SUB h 1\r\n");
    h.send(p, "HPUB h 19 21\r\nNATS/1.0\r\nA: bc\r\n\r\nhi\r\n");
    assert_eq!(
        h.out(hs),
        "HMSG h 1 19 21\r\nNATS/1.0\r\nA: bc\r\n\r\nhi\r\n"
    );
    assert_eq!(h.out(plain), "MSG h 1 2\r\nhi\r\n");
    // HPUB from a client that did not ask for headers: closed, no -ERR.
    h.send(plain, "HPUB h 12 12\r\nNATS/1.0\r\n\r\n\r\n");
    assert_eq!(h.out(plain), "");
    assert_eq!(h.close_reason(plain), Some(CloseReason::ProtocolViolation));
}

#[test]
fn no_responders() {
    let mut h = Harness::new(Options::default());
    let r = h.client(quiet());
    h.send(r, "SUB _INBOX.abc.* 7\r\nPUB svc _INBOX.abc.1 2\r\nhi\r\n");
    assert_eq!(
        h.out(r),
        "HMSG _INBOX.abc.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
    );
    // Without no_responders, nothing.
    let q = h.client(r#"{"verbose":false,"headers":true}"#);
    h.send(q, "SUB _INBOX.x 1\r\nPUB svc _INBOX.x 0\r\n\r\n");
    assert_eq!(h.out(q), "");
    // With a responder, the request is delivered instead.
    let svc = h.client(quiet());
    h.send(svc, "SUB svc 1\r\n");
    h.send(r, "PUB svc _INBOX.abc.2 0\r\n\r\n");
    assert_eq!(h.out(r), "");
    assert_eq!(h.out(svc), "MSG svc 1 _INBOX.abc.2 0\r\n\r\n");
}

#[test]
fn auto_unsubscribe() {
    let mut h = Harness::new(Options::default());
    let s = h.client(quiet());
    h.send(s, "SUB foo 1\r\nUNSUB 1 2\r\n");
    for _ in 0..5 {
        h.send(s, "PUB foo 1\r\nx\r\n");
    }
    assert_eq!(h.out(s).matches("MSG").count(), 2);
    assert_eq!(h.server.num_subscriptions(), h.internal_subs);
    // A max at or below what was delivered unsubscribes now.
    h.send(
        s,
        "SUB bar 2\r\nPUB bar 1\r\nx\r\nUNSUB 2 1\r\nPUB bar 1\r\nx\r\n",
    );
    assert_eq!(h.out(s).matches("MSG").count(), 1);
    assert_eq!(h.server.num_subscriptions(), h.internal_subs);
}

#[test]
fn sid_reuse_and_invalid_subjects() {
    let mut h = Harness::new(Options::default());
    let s = h.client(r#"{"verbose":true}"#);
    h.send(s, "SUB foo 1\r\nSUB a..b 1\r\n");
    assert_eq!(
        h.out(s),
        "+OK\r\n+OK\r\n",
        "an existing sid is not re-checked"
    );
    h.send(s, "SUB a..b 2\r\nSUB foo.>.bar 3\r\nSUB .x 4\r\n");
    assert_eq!(h.out(s), "-ERR 'Invalid Subject'\r\n".repeat(3));
    assert!(h.close_reason(s).is_none());
}

#[test]
fn pedantic_and_reserved_subjects() {
    let mut h = Harness::new(Options::default());
    let c = h.client(r#"{"verbose":false,"pedantic":true}"#);
    h.send(c, "SUB foo.* 1\r\nPUB foo.* 1\r\nx\r\n");
    assert_eq!(
        h.out(c),
        "-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 1\r\nx\r\n"
    );
    h.send(
        c,
        "PUB _GR_.x 0\r\n\r\nPUB a _R_.x 0\r\n\r\nPUB a $JS.ACK.x 0\r\n\r\n",
    );
    assert_eq!(
        h.out(c),
        "-ERR 'Permissions Violation for Publish to \"_GR_.x\"'\r\n\
         -ERR 'Permissions Violation for Publish with Reply of \"_R_.x\"'\r\n\
         -ERR 'Permissions Violation for Publish with Reply of \"$JS.ACK.x\"'\r\n"
    );
    h.send(c, "SUB foo _sys_ 9\r\n");
    assert_eq!(
        h.out(c),
        "-ERR 'Permissions Violation for Subscription to \"foo\" using queue \"_sys_\"'\r\n"
    );
    assert!(h.close_reason(c).is_none());
}

#[test]
fn errors_that_close() {
    let cases: &[(&str, &str, CloseReason)] = &[
        (
            "FOO\r\n",
            "-ERR 'Unknown Protocol Operation'\r\n",
            CloseReason::ProtocolViolation,
        ),
        (
            "PUB foo 5\r\nhelloXX",
            "-ERR 'Unknown Protocol Operation'\r\n",
            CloseReason::ProtocolViolation,
        ),
        (
            "PUB foo 2000000\r\n",
            "-ERR 'Maximum Payload Violation'\r\n",
            CloseReason::MaxPayloadExceeded,
        ),
        ("PUB foo\r\n", "", CloseReason::ProtocolViolation),
        ("SUB foo\r\n", "", CloseReason::ProtocolViolation),
        ("CONNECT {bad\r\n", "", CloseReason::ProtocolViolation),
        (
            "CONNECT {\"protocol\":2}\r\n",
            "-ERR 'invalid client protocol'\r\n",
            CloseReason::BadClientProtocolVersion,
        ),
        (
            "CONNECT {\"no_responders\":true}\r\n",
            "-ERR 'no responders requires headers support'\r\n",
            CloseReason::NoRespondersRequiresHeaders,
        ),
        (
            "CONNECT {\"account\":\"A\"}\r\n",
            "-ERR 'Authorization Violation'\r\n",
            CloseReason::AuthenticationViolation,
        ),
        ("-ERR 'x'\r\n", "", CloseReason::ParseError),
        ("INFO x\r\n", "", CloseReason::ProtocolViolation),
    ];
    for (input, want, reason) in cases {
        let mut h = Harness::new(Options::default());
        let c = h.accept();
        h.send(c, input);
        assert_eq!(&h.out(c), want, "{input}");
        assert_eq!(h.close_reason(c), Some(*reason), "{input}");
        // Nothing more is accepted after the close.
        h.send(c, "PING\r\n");
        assert_eq!(h.out(c), "");
    }
    let mut h = Harness::new(Options::default());
    let c = h.accept();
    let long = format!("SUB {} 1\r\n", "a".repeat(5000));
    h.send(c, &long);
    assert_eq!(h.out(c), "-ERR 'maximum control line exceeded'\r\n");
    assert_eq!(h.close_reason(c), Some(CloseReason::MaxControlLineExceeded));
}

#[test]
fn accepted_quietly() {
    let mut h = Harness::new(Options::default());
    let c = h.client(r#"{"verbose":false}"#);
    h.send(
        c,
        "+OK\r\nINFO {}\r\nPONG\r\nHMSG foo 1 5 5\r\n\r\nPING\r\n",
    );
    assert_eq!(h.out(c), "PONG\r\n");
    assert!(h.close_reason(c).is_none());
}

#[test]
fn user_password_auth() {
    let opts = Options {
        auth: Auth::UserPassword {
            user: "u".into(),
            password: "p".into(),
        },
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let id = h.accept_at(0);
    assert!(h.out(id).contains("\"auth_required\":true"));
    h.send(
        id,
        "CONNECT {\"verbose\":false,\"user\":\"u\",\"pass\":\"p\"}\r\nPING\r\n",
    );
    assert_eq!(h.out(id), "PONG\r\n");
    let bad = h.accept();
    h.send(bad, "CONNECT {\"user\":\"u\",\"pass\":\"x\"}\r\n");
    assert_eq!(h.out(bad), "-ERR 'Authorization Violation'\r\n");
    assert_eq!(
        h.close_reason(bad),
        Some(CloseReason::AuthenticationViolation)
    );
    let early = h.accept();
    h.send(early, "PUB foo 0\r\n\r\n");
    assert_eq!(h.out(early), "-ERR 'Authorization Violation'\r\n");
    let slow = h.accept();
    h.advance(Duration::from_millis(1999));
    assert!(h.close_reason(slow).is_none());
    h.advance(Duration::from_millis(2));
    assert_eq!(h.out(slow), "-ERR 'Authentication Timeout'\r\n");
    assert_eq!(
        h.close_reason(slow),
        Some(CloseReason::AuthenticationTimeout)
    );
    // The one that authenticated is unaffected.
    assert!(h.close_reason(id).is_none());
}

#[test]
fn token_auth() {
    let opts = Options {
        auth: Auth::Token("s3cret".into()),
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let ok = h.accept();
    h.send(
        ok,
        "CONNECT {\"verbose\":false,\"auth_token\":\"s3cret\"}\r\nPING\r\n",
    );
    assert_eq!(h.out(ok), "PONG\r\n");
    let bad = h.accept();
    h.send(bad, "CONNECT {\"auth_token\":\"nope\"}\r\n");
    assert_eq!(h.out(bad), "-ERR 'Authorization Violation'\r\n");
}

#[test]
fn early_rtt_ping_then_stale_connection() {
    let opts = Options {
        ping_interval: Duration::from_secs(10),
        ping_max: 2,
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let idle = h.accept();
    let c = h.client(quiet());
    h.advance(Duration::from_millis(1900));
    assert_eq!(h.out(c), "");
    h.advance(Duration::from_millis(500));
    assert_eq!(
        h.out(c),
        "PING\r\n",
        "the first ping comes 2s (+20% at most) after CONNECT"
    );
    assert_eq!(h.out(idle), "", "without CONNECT, no early ping");
    h.send(c, "PONG\r\n");
    // Afterwards, pings every interval once idle; two unanswered make it stale.
    h.advance(Duration::from_secs(11));
    assert_eq!(h.out(c), "PING\r\n");
    h.advance(Duration::from_secs(10));
    assert_eq!(h.out(c), "PING\r\n");
    h.advance(Duration::from_secs(10));
    assert_eq!(h.out(c), "-ERR 'Stale Connection'\r\n");
    assert_eq!(h.close_reason(c), Some(CloseReason::StaleConnection));
}

#[test]
fn slow_consumer_is_closed_without_err() {
    let opts = Options {
        max_pending: 1024,
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let s = h.client(quiet());
    let p = h.client(quiet());
    h.send(s, "SUB foo 1\r\n");
    let body = "x".repeat(300);
    for _ in 0..5 {
        h.send(p, &format!("PUB foo 300\r\n{body}\r\n"));
    }
    let closed = h.closed.iter().find(|c| c.0 == s).copied();
    assert_eq!(
        closed,
        Some((s, CloseReason::SlowConsumerPendingBytes, false))
    );
    assert_eq!(h.server.stats().slow_consumers, 1);
    assert!(h.close_reason(p).is_none(), "the publisher is unaffected");
}

#[test]
fn a_publisher_feeding_a_lagging_subscriber_is_paused_then_resumed() {
    let opts = Options {
        max_pending: 10_000,
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let s = h.client(quiet());
    let p = h.client(quiet());
    h.send(s, "SUB foo 1\r\n");
    let body = "x".repeat(1000);
    for _ in 0..4 {
        h.send(p, &format!("PUB foo 1000\r\n{body}\r\n"));
    }
    assert!(h.paused.is_empty(), "under half the limit: no stall");
    h.send(p, &format!("PUB foo 1000\r\n{body}\r\n"));
    h.send(p, &format!("PUB foo 1000\r\n{body}\r\n"));
    let &(who, until) = h
        .paused
        .first()
        .expect("over half: the publisher is paused");
    assert_eq!(who, p);
    let stall = until.since(Instant::from_nanos(h.now_ns));
    assert!(
        stall >= Duration::from_millis(100) && stall <= Duration::from_secs(1),
        "{stall:?}"
    );
    assert!(h.close_reason(s).is_none(), "the subscriber is not cut");
    // The subscriber drains: the publisher may read again.
    let _ = h.out(s);
    assert_eq!(h.resumed, vec![p]);
}

#[test]
fn a_publisher_is_paused_briefly_at_the_flow_control_mark_long_before_half_the_limit() {
    let mut h = Harness::new(Options::default());
    let s = h.client(quiet());
    let p = h.client(quiet());
    h.send(s, "SUB foo 1\r\n");
    let body = "x".repeat(1_000_000);
    let mark = super::deliver::FLOW_CONTROL_BYTES;
    assert!(mark < Options::default().max_pending / 2);
    let mut sent = 0u64;
    while sent <= mark {
        assert!(h.paused.is_empty(), "under the mark: no pause ({sent} B)");
        h.send(p, &format!("PUB foo 1000000\r\n{body}\r\n"));
        sent += 1_000_000;
    }
    let &(who, until) = h.paused.first().expect("over the mark: paused");
    assert_eq!(who, p);
    let stall = until.since(Instant::from_nanos(h.now_ns));
    assert_eq!(stall, super::deliver::FLOW_CONTROL_STALL);
    assert!(h.close_reason(s).is_none(), "the subscriber is not cut");
    let _ = h.out(s);
    assert_eq!(h.resumed, vec![p], "drained: the publisher reads again");
}

#[test]
fn quiet_frees_the_outbound_buffers_of_drained_connections_only() {
    let mut h = Harness::new(Options::default());
    let drained = h.client(quiet());
    let behind = h.client(quiet());
    // A drained connection holding a large spare, as after a burst.
    let _ = h.out(drained);
    h.server.conns[drained.0].out = Vec::with_capacity(1 << 20);
    // One with bytes still queued keeps them.
    h.server.conns[behind.0].out.extend_from_slice(b"PING\r\n");
    h.server.handle(now_at(h.now_ns), Event::Quiet);
    assert_eq!(h.server.conns[drained.0].out.capacity(), 0);
    assert_eq!(h.server.conns[behind.0].out, b"PING\r\n");
}

#[test]
fn write_deadline_closes_a_stuck_reader() {
    let opts = Options {
        write_deadline: Duration::from_secs(1),
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let s = h.client(quiet());
    h.send(s, "SUB foo 1\r\nPUB foo 1\r\nx\r\n");
    let mut buf = Vec::new();
    h.server.take_outbound(s, &mut buf); // taken, never reported written
    h.advance(Duration::from_millis(1500));
    assert_eq!(
        h.close_reason(s),
        Some(CloseReason::SlowConsumerWriteDeadline)
    );
}

#[test]
fn limits_on_connections_and_subscriptions() {
    let opts = Options {
        max_connections: 1,
        max_subscriptions: 2,
        ..Options::default()
    };
    let mut h = Harness::new(opts);
    let a = h.client(quiet());
    let id = h.accept_at(0);
    h.drain();
    let out = h.out(id);
    assert!(
        out.starts_with("INFO ") && out.ends_with("-ERR 'maximum connections exceeded'\r\n"),
        "{out}"
    );
    assert_eq!(
        h.close_reason(id),
        Some(CloseReason::MaxConnectionsExceeded)
    );
    h.send(a, "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\n");
    assert_eq!(h.out(a), "-ERR 'maximum subscriptions exceeded'\r\n");
    assert!(h.close_reason(a).is_none());
}

#[test]
fn flushing_a_closing_connection_arms_no_timer() {
    // Found by the simulation: the driver flushes a connection the core is
    // closing; the write deadline it armed outlived the connection and
    // fired on a removed slot.
    let mut h = Harness::new(Options {
        no_system_account: true,
        ..Options::default()
    });
    let c = h.client(quiet());
    h.send(c, "SUB foo 1\r\nPUB foo 1\r\nx\r\nFOO\r\n");
    assert_eq!(h.close_reason(c), Some(CloseReason::ProtocolViolation));
    let mut buf = Vec::new();
    h.server.take_outbound(c, &mut buf);
    assert!(!buf.is_empty());
    h.server.handle(now_at(0), Event::Closed { conn: c });
    assert_eq!(h.server.next_deadline(), None);
    h.advance(Duration::from_secs(60));
}

#[test]
fn closing_removes_subscriptions() {
    let mut h = Harness::new(Options::default());
    let s = h.client(quiet());
    h.send(s, "SUB foo 1\r\nSUB bar q 2\r\n");
    assert_eq!(h.server.num_subscriptions(), h.internal_subs + 2);
    h.server.handle(now_at(0), Event::Closed { conn: s });
    assert_eq!(h.server.num_subscriptions(), h.internal_subs);
    assert_eq!(h.server.num_connections(), 0);
}

#[test]
fn any_split_gives_the_same_replies() {
    let session: &[u8] = b"CONNECT {\"verbose\":true,\"headers\":true,\"no_responders\":true}\r\nSUB foo.* 1\r\nSUB _INBOX.> 2\r\nPUB foo.bar 5\r\nhello\r\nHPUB foo.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPUB none _INBOX.1 0\r\n\r\nUNSUB 1\r\nPUB foo.bar 1\r\nx\r\nPING\r\n";
    let run = |chunks: &[&[u8]]| {
        let mut h = Harness::new(Options::default());
        let c = h.accept();
        for ch in chunks {
            h.send_bytes(c, ch);
        }
        h.out(c)
    };
    let whole = run(&[session]);
    assert!(whole.ends_with("PONG\r\n"), "{whole}");
    for i in 0..=session.len() {
        let (a, b) = session.split_at(i);
        assert_eq!(run(&[a, b]), whole, "split at {i}");
    }
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that combine into valid, invalid and half-valid protocol.
    fn fragment() -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(vec![
            &b"CONNECT {\"verbose\":true,\"headers\":true,\"no_responders\":true}\r\n"[..],
            b"CONNECT {\"echo\":false,\"pedantic\":true}\r\n",
            b"CONNECT ",
            b"SUB foo 1\r\n",
            b"SUB foo.* q 2\r\n",
            b"SUB > 3\r\n",
            b"SUB _INBOX.> 4\r\n",
            b"UNSUB 1 2\r\n",
            b"UNSUB 2\r\n",
            b"PUB foo 5\r\nhello\r\n",
            b"PUB foo.bar _INBOX.x 0\r\n\r\n",
            b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
            b"HMSG a 1 2 3\r\n\r\n",
            b"PING\r\n",
            b"PONG\r\n",
            b"+OK\r\n",
            b"INFO {}\r\n",
            b"PUB ",
            b"SUB",
            b"\r\n",
            b"\n",
            b" ",
            b"\t",
            b"5",
            b"foo",
            b"*",
            b">",
            b"..",
            b"\r",
            b"x",
            b"-ERR 'e'\r\n",
            b"MSG a 1 0\r\n\r\n",
        ])
        .prop_map(<[u8]>::to_vec)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any mix of fragments from three connections, split anywhere, never
        /// panics, and leaves the server's books consistent.
        #[test]
        fn never_panics(
            script in prop::collection::vec((0usize..3, prop::collection::vec(fragment(), 1..6), any::<prop::sample::Index>()), 1..40),
            ticks in prop::collection::vec(0u64..3_000, 0..5),
        ) {
            let opts = Options { max_pending: 4096, max_subscriptions: 3, ..Options::default() };
            let mut h = Harness::new(opts);
            let conns: Vec<ConnId> = (0..3).map(|_| h.accept()).collect();
            for (i, (who, frags, cut)) in script.iter().enumerate() {
                let bytes = frags.concat();
                let at = cut.index(bytes.len() + 1);
                h.send_bytes(conns[*who], &bytes[..at]);
                h.send_bytes(conns[*who], &bytes[at..]);
                let _ = h.out(conns[(i + 1) % 3]);
                if let Some(ms) = ticks.get(i) {
                    h.advance(Duration::from_millis(*ms));
                }
            }
            let live: usize = conns.iter().filter(|c| h.close_reason(**c).is_none()).count();
            prop_assert_eq!(h.server.num_connections(), live);
            let subs_in_conns: usize = h.server.conns.iter().map(|(_, c)| c.subs.len()).sum();
            prop_assert_eq!(subs_in_conns, h.server.num_subscriptions());
            let in_sublists: usize = h.server.accounts.iter().map(|a| a.sublist.count() as usize).sum();
            prop_assert_eq!(in_sublists, h.server.num_subscriptions());
        }
    }
}

mod tls;
