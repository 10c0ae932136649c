//! Structure-aware sequences of client operations from several connections
//! through a whole `Server`: connects, subs (plain, wildcard, queue), pubs
//! with and without headers and replies, unsubs, pings, timers and closes.
//! The core's own assertions are on; the books must balance at every step.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natrix_core::proto::client;
use natrix_core::server::{Action, ConnId, Event, Listener};
use natrix_core::time::{Instant, Now};
use natrix_core::{Options, Server};

#[derive(Arbitrary, Debug)]
enum Op {
    Connect { conn: u8, verbose: bool, echo: bool, headers: bool, no_responders: bool },
    Sub { conn: u8, subject: u8, queue: bool, sid: u8 },
    Unsub { conn: u8, sid: u8, max: Option<u8> },
    Pub { conn: u8, subject: u8, reply: Option<u8>, len: u8, headers: bool },
    Ping { conn: u8 },
    Raw { conn: u8, bytes: Vec<u8> },
    Drain { conn: u8, written: bool },
    Tick { millis: u16 },
    Close { conn: u8 },
    Accept,
}

const SUBJECTS: [&[u8]; 8] = [b"foo", b"foo.bar", b"foo.*", b"foo.>", b">", b"_INBOX.x.*", b"a..b", b"bar"];
const REPLIES: [&[u8]; 3] = [b"_INBOX.x.1", b"_R_.x", b"reply"];

fuzz_target!(|ops: Vec<Op>| {
    let opts = Options { max_pending: 2048, max_subscriptions: 5, max_connections: 6, ..Options::default() };
    let mut now = 0u64;
    let at = |ns: u64| Now::new(Instant::from_nanos(ns), ns);
    let mut server = Server::new(opts, 1, at(0));
    let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let mut conns: Vec<ConnId> = Vec::new();
    let mut closing: Vec<ConnId> = Vec::new();
    let mut buf = Vec::new();
    let accept = |server: &mut Server, now: u64| {
        let conn = server.next_conn_id();
        server.handle(at(now), Event::Accepted { conn, listener: Listener::Client, peer });
        conn
    };
    for _ in 0..3 {
        conns.push(accept(&mut server, now));
    }
    for op in ops.into_iter().take(200) {
        let pick = |i: u8, conns: &[ConnId]| conns.get(usize::from(i) % conns.len().max(1)).copied();
        buf.clear();
        let target = match op {
            Op::Accept => {
                conns.push(accept(&mut server, now));
                None
            }
            Op::Connect { conn, verbose, echo, headers, no_responders } => {
                let json = format!("{{\"verbose\":{verbose},\"pedantic\":false,\"echo\":{echo},\"headers\":{headers},\"no_responders\":{no_responders}}}");
                client::connect(&mut buf, &json);
                pick(conn, &conns)
            }
            Op::Sub { conn, subject, queue, sid } => {
                let q: Option<&[u8]> = if queue { Some(b"q") } else { None };
                client::subscribe(&mut buf, SUBJECTS[usize::from(subject) % SUBJECTS.len()], q, sid.to_string().as_bytes());
                pick(conn, &conns)
            }
            Op::Unsub { conn, sid, max } => {
                client::unsubscribe(&mut buf, sid.to_string().as_bytes(), max.map(u64::from));
                pick(conn, &conns)
            }
            Op::Pub { conn, subject, reply, len, headers } => {
                let s = SUBJECTS[usize::from(subject) % SUBJECTS.len()];
                let r = reply.map(|r| REPLIES[usize::from(r) % REPLIES.len()]);
                let body = vec![b'x'; usize::from(len)];
                if headers {
                    client::hpublish(&mut buf, s, r, b"NATS/1.0\r\nA: b\r\n\r\n", &body);
                } else {
                    client::publish(&mut buf, s, r, &body);
                }
                pick(conn, &conns)
            }
            Op::Ping { conn } => {
                buf.extend_from_slice(client::PING);
                pick(conn, &conns)
            }
            Op::Raw { conn, bytes } => {
                buf.extend_from_slice(&bytes);
                pick(conn, &conns)
            }
            Op::Drain { conn, written } => {
                if let Some(id) = pick(conn, &conns) {
                    let mut out = Vec::new();
                    server.take_outbound(id, &mut out);
                    if written && !out.is_empty() {
                        server.handle(at(now), Event::Written { conn: id, bytes: out.len() });
                    }
                }
                None
            }
            Op::Tick { millis } => {
                now += u64::from(millis) * 1_000_000;
                server.handle(at(now), Event::Tick);
                None
            }
            Op::Close { conn } => {
                if let Some(id) = pick(conn, &conns) {
                    server.handle(at(now), Event::Closed { conn: id });
                    conns.retain(|c| *c != id);
                    closing.retain(|c| *c != id);
                }
                None
            }
        };
        if let Some(id) = target {
            server.handle(at(now), Event::Received { conn: id, bytes: &buf });
        }
        while let Some(a) = server.poll_action() {
            if let Action::Close { conn, .. } = a {
                assert!(!closing.contains(&conn), "closed twice");
                closing.push(conn);
            }
        }
        // Closed connections stay until the driver reports them gone.
        for id in std::mem::take(&mut closing) {
            server.handle(at(now), Event::Closed { conn: id });
            conns.retain(|c| *c != id);
        }
        assert_eq!(server.num_connections(), conns.len());
        // Every open connection has a ping timer. (With none open the
        // server may still have its own: the system account's statsz.)
        if !conns.is_empty() {
            assert!(server.next_deadline().is_some(), "open connections have timers");
        }
    }
});
