//! Structure-aware sequences of client operations from several connections
//! through a whole `Server`: connects, subs (plain, wildcard, queue), pubs
//! with and without headers and replies, unsubs, pings, timers and closes.
//! JetStream is on, its storage operations run by the memory executor: API
//! requests with arbitrary bodies (consumer requests and pulls among them),
//! stream publishes with arbitrary `Nats-*` headers, and acknowledgements
//! with arbitrary payloads. The core's own assertions are on; the books must
//! balance at every step.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natrix_core::proto::client;
use natrix_core::server::{Action, ConnId, Event, Listener};
use natrix_core::time::{Instant, Now};
use natrix_core::{Options, Server};
use natrix_storage::{Executor, MemBackend};

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
    /// A `$JS.API` request: which one, on which stream, with what body.
    JsApi { conn: u8, api: u8, stream: u8, body: Vec<u8> },
    /// A publish to a stream's subject with `Nats-*` headers.
    JsPub { conn: u8, stream: u8, header: u8, value: Vec<u8>, reply: bool },
    /// An acknowledgement (of a known kind, or arbitrary bytes) to a
    /// consumer's ack subject, with or without a reply.
    JsAck { conn: u8, stream: u8, seq: u8, delivered: u8, kind: u8, body: Vec<u8>, reply: bool },
}

/// `{s}` is replaced by the stream.
const APIS: [&str; 19] = [
    "INFO", "STREAM.CREATE.{s}", "STREAM.UPDATE.{s}", "STREAM.INFO.{s}", "STREAM.NAMES", "STREAM.LIST",
    "STREAM.DELETE.{s}", "STREAM.PURGE.{s}", "STREAM.MSG.GET.{s}", "STREAM.MSG.DELETE.{s}", "DIRECT.GET.{s}",
    "CONSUMER.CREATE.{s}", "CONSUMER.CREATE.{s}.C", "CONSUMER.INFO.{s}.C", "CONSUMER.NAMES.{s}",
    "CONSUMER.LIST.{s}", "CONSUMER.DELETE.{s}.C", "CONSUMER.MSG.NEXT.{s}.C", "CONSUMER.PAUSE.{s}.C",
];
/// Consumer bodies that make consumers exist, mixed with the fuzzer's own.
const CONSUMERS: [&str; 3] = [
    r#"{"stream_name":"S","config":{"durable_name":"C","ack_policy":"explicit","ack_wait":100000000,"max_deliver":3}}"#,
    r#"{"stream_name":"T","config":{"name":"C","deliver_subject":"_INBOX.x.push","flow_control":true,"idle_heartbeat":100000000}}"#,
    r#"{"stream_name":"S","config":{"durable_name":"C","ack_policy":"all","deliver_policy":"last_per_subject","filter_subject":"js.s.>"}}"#,
];
const ACKS: [&[u8]; 7] = [b"+ACK", b"", b"-NAK", b"-NAK {\"delay\":50000000}", b"+WPI", b"+TERM why", b"+NXT 2"];
/// Pull request bodies, mixed with the fuzzer's own.
const PULLS: [&str; 3] = [r#"{"batch":2,"expires":200000000}"#, r#"{"batch":5,"no_wait":true}"#, "3"];
const STREAMS: [&str; 3] = ["S", "T", "x.y"];
const JS_HEADERS: [&str; 8] = [
    "Nats-Msg-Id", "Nats-Expected-Stream", "Nats-Expected-Last-Sequence", "Nats-Expected-Last-Msg-Id",
    "Nats-Expected-Last-Subject-Sequence", "Nats-Rollup", "Nats-TTL", "Nats-Expected-Last-Subject-Sequence-Subject",
];
/// Bodies that make streams exist, mixed with the fuzzer's own.
const CONFIGS: [&str; 3] = [
    r#"{"name":"S","subjects":["foo","js.s.>"],"max_msgs":3,"discard":"new","allow_rollup_hdrs":true}"#,
    r#"{"name":"T","subjects":["js.t"],"storage":"memory","max_age":1000000000,"allow_direct":true}"#,
    r#"{"name":"S","subjects":["js.s.>"],"max_msgs_per_subject":2}"#,
];

const SUBJECTS: [&[u8]; 8] = [b"foo", b"foo.bar", b"foo.*", b"foo.>", b">", b"_INBOX.x.*", b"a..b", b"bar"];
const REPLIES: [&[u8]; 3] = [b"_INBOX.x.1", b"_R_.x", b"reply"];

fuzz_target!(|ops: Vec<Op>| {
    let opts = Options {
        max_pending: 2048,
        max_subscriptions: 5,
        max_connections: 6,
        jetstream: Some(natrix_core::config::JetStreamOptions::default()),
        ..Options::default()
    };
    let mut storage = Executor::new(MemBackend::default());
    let mut done = Vec::new();
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
            Op::JsApi { conn, api, stream, body } => {
                let api = APIS[usize::from(api) % APIS.len()];
                let stream = STREAMS[usize::from(stream) % STREAMS.len()];
                let subject = format!("$JS.API.{}", api.replace("{s}", stream));
                let body = match body.first() {
                    Some(&b) if b < 3 && api == "STREAM.CREATE.{s}" => CONFIGS[usize::from(b)].as_bytes().to_vec(),
                    Some(&b) if b < 3 && api.starts_with("CONSUMER.CREATE.") => CONSUMERS[usize::from(b)].as_bytes().to_vec(),
                    Some(&b) if b < 3 && api.starts_with("CONSUMER.MSG.NEXT.") => PULLS[usize::from(b)].as_bytes().to_vec(),
                    _ => body,
                };
                client::publish(&mut buf, subject.as_bytes(), Some(b"_INBOX.x.1"), &body);
                pick(conn, &conns)
            }
            Op::JsPub { conn, stream, header, value, reply } => {
                let subject: &[u8] = [b"foo".as_slice(), b"js.s.a", b"js.t"][usize::from(stream) % 3];
                let name = JS_HEADERS[usize::from(header) % JS_HEADERS.len()];
                let value: Vec<u8> = value.into_iter().filter(|b| !b"\r\n".contains(b)).collect();
                let mut headers = format!("NATS/1.0\r\n{name}: ").into_bytes();
                headers.extend_from_slice(&value);
                headers.extend_from_slice(b"\r\n\r\n");
                let r: Option<&[u8]> = if reply { Some(b"_INBOX.x.2") } else { None };
                client::hpublish(&mut buf, subject, r, &headers, b"payload");
                pick(conn, &conns)
            }
            Op::JsAck { conn, stream, seq, delivered, kind, body, reply } => {
                let stream = STREAMS[usize::from(stream) % STREAMS.len()];
                let subject = format!("$JS.ACK.{stream}.C.{delivered}.{seq}.{seq}.0.0");
                let body = ACKS.get(usize::from(kind)).map_or(body, |a| a.to_vec());
                let r: Option<&[u8]> = if reply { Some(b"_INBOX.x.3") } else { None };
                client::publish(&mut buf, subject.as_bytes(), r, &body);
                pick(conn, &conns)
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
        // Storage runs what the server asks, and its completions go back
        // in, until the server asks for nothing more.
        loop {
            let mut ops = Vec::new();
            while let Some(a) = server.poll_action() {
                match a {
                    Action::Close { conn, .. } => {
                        assert!(!closing.contains(&conn), "closed twice");
                        closing.push(conn);
                    }
                    Action::Storage(op) => ops.push(op),
                    _ => {}
                }
            }
            if ops.is_empty() {
                break;
            }
            storage.execute_batch(ops, &mut done);
            for c in done.drain(..) {
                server.handle(at(now), Event::Storage(&c));
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
