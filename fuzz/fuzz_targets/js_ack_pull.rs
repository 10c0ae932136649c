//! Acknowledgements and pull requests from a client into a whole `Server`
//! whose stream already holds messages and whose pull consumer has
//! delivered some of them: arbitrary payloads published to the ack
//! subjects of real deliveries (and to ack subjects with fuzzer-chosen
//! tokens), and arbitrary JSON bodies of `$JS.API.CONSUMER.MSG.NEXT`
//! requests (and of `+NXT` acks), with time passing between them so
//! redeliveries, `max_deliver`, expiries and heartbeats run. Snapshots
//! and restores too: snapshot requests with arbitrary bodies and sizes,
//! their pieces acknowledged or not, and restores fed arbitrary bytes or
//! a real snapshot's bytes with one of them changed. The core's own
//! assertions are on; it must never panic.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natrix_core::proto::client;
use natrix_core::proto::server_ops::{ServerOp, ServerOpParser};
use natrix_core::server::{Action, ConnId, Event, Listener};
use natrix_core::time::{Instant, Now};
use natrix_core::{Options, Server};
use natrix_storage::{Executor, MemBackend};

#[derive(Arbitrary, Debug)]
enum Op {
    /// `body` to the ack subject of delivery `which` (of those seen so
    /// far), with or without a reply.
    Ack { which: u8, body: Vec<u8>, reply: bool },
    /// `body` to an ack subject made of these tokens (a v1 subject with
    /// five numbers, or more tokens as a v2 subject has).
    AckTokens { tokens: Vec<u64>, consumer: u8, body: Vec<u8> },
    /// A pull request with this body, to one of the consumers.
    Pull { consumer: u8, body: Vec<u8> },
    /// Time passes (redeliveries, expiries, heartbeats).
    Tick { millis: u16 },
    /// One more message in the stream.
    Publish { subject: bool },
    /// A snapshot of S: this body, or (empty) a valid one with pieces of
    /// 1 KiB and up.
    Snapshot { body: Vec<u8>, chunk: u16 },
    /// Every snapshot piece seen so far is acknowledged.
    SnapshotAck,
    /// A restore of R: this body, or (empty) a valid one.
    Restore { body: Vec<u8> },
    /// A piece to the last restore: these bytes, or (empty) the snapshot's
    /// bytes from `from` with the byte at `flip` changed; with a reply or
    /// not.
    Piece { bytes: Vec<u8>, from: u16, flip: u16, reply: bool },
    /// The empty piece that ends a restore.
    PieceEnd,
}

const CONSUMERS: [&str; 2] = ["C", "W"];
/// A durable pull consumer with limits that make timers run, and one on
/// the work-queue stream (whose acks delete).
const SETUP: [(&str, &str); 4] = [
    ("$JS.API.STREAM.CREATE.S", r#"{"name":"S","subjects":["js.>"],"storage":"memory"}"#),
    (
        "$JS.API.CONSUMER.CREATE.S.C",
        r#"{"stream_name":"S","config":{"durable_name":"C","ack_policy":"explicit","ack_wait":50000000,"max_deliver":3,"max_ack_pending":4,"backoff":[10000000,30000000]}}"#,
    ),
    ("$JS.API.STREAM.CREATE.W", r#"{"name":"W","subjects":["wq.>"],"retention":"workqueue"}"#),
    (
        "$JS.API.CONSUMER.CREATE.W.W",
        r#"{"stream_name":"W","config":{"durable_name":"W","ack_policy":"explicit","ack_wait":50000000}}"#,
    ),
];

fn at(ns: u64) -> Now {
    Now::new(Instant::from_nanos(ns), 1_700_000_000_000_000_000 + ns)
}

/// A server, its storage and the one client connection the fuzzer drives.
struct Rig {
    server: Server,
    storage: Executor<MemBackend>,
    conn: ConnId,
    now: u64,
    parser: ServerOpParser,
    /// The ack subjects of the deliveries seen so far.
    acks: Vec<Vec<u8>>,
    /// The snapshot bytes seen so far, and the pieces' ack subjects.
    snapshot: Vec<u8>,
    snapshot_acks: Vec<Vec<u8>>,
    /// Where the last restore takes its pieces.
    restore_to: Option<Vec<u8>>,
}

impl Rig {
    fn new() -> Rig {
        let opts = Options {
            jetstream: Some(natrix_core::config::JetStreamOptions::default()),
            ..Options::default()
        };
        let mut server = Server::new(opts, 1, at(0));
        let conn = server.next_conn_id();
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("an address");
        server.handle(at(0), Event::Accepted { conn, listener: Listener::Client, peer });
        let mut rig = Rig {
            server,
            storage: Executor::new(MemBackend::default()),
            conn,
            now: 0,
            parser: ServerOpParser::new(),
            acks: Vec::new(),
            snapshot: Vec::new(),
            snapshot_acks: Vec::new(),
            restore_to: None,
        };
        let mut buf = Vec::new();
        client::connect(&mut buf, r#"{"verbose":false,"pedantic":false,"headers":true,"no_responders":true}"#);
        client::subscribe(&mut buf, b"_INBOX.>", None, b"1");
        for (subject, body) in SETUP {
            client::publish(&mut buf, subject.as_bytes(), Some(b"_INBOX.api"), body.as_bytes());
        }
        for i in 0..6 {
            let subject: &[u8] = if i % 2 == 0 { b"js.a" } else { b"wq.a" };
            client::publish(&mut buf, subject, Some(b"_INBOX.puback"), format!("m{i}").as_bytes());
        }
        for consumer in CONSUMERS {
            let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{consumer}", stream_of(consumer));
            client::publish(&mut buf, subject.as_bytes(), Some(b"_INBOX.pull"), br#"{"batch":3,"expires":100000000}"#);
        }
        rig.send(&buf);
        rig
    }

    /// Bytes from the client, then storage runs what the server asked
    /// until it asks for nothing more; the deliveries' ack subjects are
    /// kept.
    fn send(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.server.handle(at(self.now), Event::Received { conn: self.conn, bytes });
        }
        self.settle();
    }

    fn tick(&mut self, millis: u16) {
        self.now += u64::from(millis) * 1_000_000;
        self.server.handle(at(self.now), Event::Tick);
        self.settle();
    }

    fn settle(&mut self) {
        let mut done = Vec::new();
        loop {
            let mut ops = Vec::new();
            while let Some(a) = self.server.poll_action() {
                if let Action::Storage(op) = a {
                    ops.push(op);
                }
            }
            if ops.is_empty() {
                break;
            }
            self.storage.execute_batch(ops, &mut done);
            for c in done.drain(..) {
                self.server.handle(at(self.now), Event::Storage(&c));
            }
        }
        let mut out = Vec::new();
        self.server.take_outbound(self.conn, &mut out);
        let (acks, snapshot) = (&mut self.acks, &mut self.snapshot);
        let (snapshot_acks, restore_to) = (&mut self.snapshot_acks, &mut self.restore_to);
        let _ = self.parser.parse(&out, |op| {
            let ServerOp::Msg { subject, reply, payload, .. } = op else {
                return;
            };
            match reply {
                Some(r) if r.starts_with(b"$JS.ACK.") && acks.len() < 64 => acks.push(r.to_vec()),
                Some(r) if r.starts_with(b"$JS.SNAPSHOT.ACK.") && snapshot_acks.len() < 256 => {
                    snapshot_acks.push(r.to_vec());
                }
                _ => {}
            }
            if subject == b"_INBOX.snap" && snapshot.len() < 1 << 20 {
                snapshot.extend_from_slice(payload);
            }
            if subject == b"_INBOX.restore"
                && let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload)
                && let Some(d) = v["deliver_subject"].as_str().filter(|d| !d.is_empty())
            {
                *restore_to = Some(d.as_bytes().to_vec());
            }
        });
    }
}

fn stream_of(consumer: &str) -> &'static str {
    if consumer == "W" { "W" } else { "S" }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut rig = Rig::new();
    let mut buf = Vec::new();
    for op in ops.into_iter().take(64) {
        buf.clear();
        match op {
            Op::Ack { which, body, reply } => {
                let Some(subject) = rig.acks.get(usize::from(which) % rig.acks.len().max(1)).cloned() else {
                    continue;
                };
                let r: Option<&[u8]> = if reply { Some(b"_INBOX.ack") } else { None };
                client::publish(&mut buf, &subject, r, &body);
            }
            Op::AckTokens { tokens, consumer, body } => {
                let consumer = CONSUMERS[usize::from(consumer) % CONSUMERS.len()];
                let mut subject = format!("$JS.ACK.{}.{consumer}", stream_of(consumer));
                for t in tokens.iter().take(12) {
                    subject.push_str(&format!(".{t}"));
                }
                client::publish(&mut buf, subject.as_bytes(), Some(b"_INBOX.ack"), &body);
            }
            Op::Pull { consumer, body } => {
                let consumer = CONSUMERS[usize::from(consumer) % CONSUMERS.len()];
                let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{}.{consumer}", stream_of(consumer));
                client::publish(&mut buf, subject.as_bytes(), Some(b"_INBOX.pull"), &body);
            }
            Op::Tick { millis } => {
                rig.tick(millis);
                continue;
            }
            Op::Publish { subject } => {
                let s: &[u8] = if subject { b"js.b" } else { b"wq.b" };
                client::publish(&mut buf, s, Some(b"_INBOX.puback"), b"more");
            }
            Op::Snapshot { body, chunk } => {
                let valid = format!(r#"{{"deliver_subject":"_INBOX.snap","chunk_size":{},"window_size":4096}}"#, 1024 + u32::from(chunk));
                let body = if body.is_empty() { valid.into_bytes() } else { body };
                rig.snapshot.clear();
                client::publish(&mut buf, b"$JS.API.STREAM.SNAPSHOT.S", Some(b"_INBOX.api"), &body);
            }
            Op::SnapshotAck => {
                for subject in std::mem::take(&mut rig.snapshot_acks) {
                    client::publish(&mut buf, &subject, None, b"");
                }
            }
            Op::Restore { body } => {
                let valid = br#"{"config":{"name":"R","subjects":["r.>"]}}"#;
                let body = if body.is_empty() { valid.to_vec() } else { body };
                client::publish(&mut buf, b"$JS.API.STREAM.RESTORE.R", Some(b"_INBOX.restore"), &body);
            }
            Op::Piece { bytes, from, flip, reply } => {
                let Some(to) = rig.restore_to.clone() else {
                    continue;
                };
                let bytes = if bytes.is_empty() {
                    let mut b = rig.snapshot.get(usize::from(from)..).unwrap_or_default().to_vec();
                    if let Some(x) = b.get_mut(usize::from(flip)) {
                        *x ^= 0x5a;
                    }
                    b
                } else {
                    bytes
                };
                let r: Option<&[u8]> = if reply { Some(b"_INBOX.piece") } else { None };
                client::publish(&mut buf, &to, r, &bytes);
            }
            Op::PieceEnd => {
                let Some(to) = rig.restore_to.clone() else {
                    continue;
                };
                client::publish(&mut buf, &to, Some(b"_INBOX.piece"), b"");
            }
        }
        rig.send(&buf);
    }
});
