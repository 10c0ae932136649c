//! Simulated NATS clients: they speak the real protocol (through the core's
//! client encoders and server-op parser), follow a workload drawn from the
//! seed, reconnect after losing the server, and record what they see.

use std::collections::{BTreeMap, VecDeque};

use natrix_core::proto::client as enc;
use natrix_core::proto::{ServerOp, ServerOpParser};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::history::{ClientId, Ev, History, MsgId, digest};

mod backup;
mod js;
mod partition;
mod priority;
mod pull;
mod streams;

pub use backup::RESTORED_STREAM;
use js::JsState;
pub use js::{JS_STREAM, JS_SUBJECTS, JsPlan, JsRngs};
pub use partition::{GROUP, join_group};
pub use priority::{PRIORITY_CONSUMER, join_priority_group};
pub use pull::{JS_CONSUMER, PullPlan};
pub use streams::{
    KV_KEYS, KV_STREAM, KvPlan, WORK_CONSUMER, WORK_STREAM, kv_stream_body, work_stream_body,
};

/// Subjects publishers use, and patterns subscribers pick from.
pub const SUBJECTS: [&str; 5] = ["a.1", "a.2", "b.1", "b.x.y", "c"];
pub const PATTERNS: [&str; 8] = ["a.1", "a.*", "a.>", "b.>", "*.1", ">", "c", "b.x.*"];
pub const SERVICE: &str = "svc.echo";
pub const NO_SERVICE: &str = "svc.none";
/// The first unsubscribe waits for the workload to get going.
const FIRST_UNSUB_NS: u64 = 500_000_000;

/// One planned subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubPlan {
    pub pattern: String,
    pub queue: Option<String>,
    /// Auto-unsubscribe after this many messages.
    pub max: Option<u64>,
}

/// A client's user and what its permissions deny (seeds with users only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Perms {
    /// Connect as user `u<id>` (the seed configured users).
    pub login: bool,
    /// The user's account (`None`: the global account).
    pub account: Option<&'static str>,
    /// A subject the user may not publish to.
    pub publish_deny: Option<&'static str>,
    /// A subject the user may not receive (its wildcard subscriptions
    /// cover it, so the server must filter it at delivery).
    pub subscribe_deny: Option<&'static str>,
}

impl Perms {
    /// Whether the user may publish to `subject`.
    pub fn may_publish(&self, subject: &str) -> bool {
        self.publish_deny != Some(subject)
    }

    /// Whether the user may receive messages on `subject`.
    pub fn may_receive(&self, subject: &str) -> bool {
        self.subscribe_deny != Some(subject)
    }
}

/// What a client does, drawn from the seed.
#[derive(Debug, Clone)]
pub struct Plan {
    pub echo: bool,
    pub publish_every_ns: Option<u64>,
    pub payload_max: usize,
    pub subs: Vec<SubPlan>,
    pub requests_every_ns: Option<u64>,
    /// Answer requests on `SERVICE`, in this queue group if any.
    pub responder: Option<Option<String>>,
    /// Unsubscribe one subscription (and later subscribe it again) this often.
    pub unsub_every_ns: Option<u64>,
    /// Set by the world when the seed configures users.
    pub perms: Perms,
    /// The client's part in the JetStream workload (JetStream seeds only).
    pub js: Option<JsPlan>,
}

impl Plan {
    pub fn draw(rng: &mut ChaCha8Rng) -> Plan {
        let pick = |rng: &mut ChaCha8Rng, n: usize| (rng.next_u32() as usize) % n;
        let chance = |rng: &mut ChaCha8Rng, pct: u32| rng.next_u32() % 100 < pct;
        let mut subs = Vec::new();
        for _ in 0..pick(rng, 4) {
            let queue = chance(rng, 30).then(|| format!("q{}", pick(rng, 2)));
            let max = chance(rng, 15).then(|| 1 + (rng.next_u32() % 20) as u64);
            subs.push(SubPlan {
                pattern: PATTERNS[pick(rng, PATTERNS.len())].to_string(),
                queue,
                max,
            });
        }
        let responder = chance(rng, 35).then(|| chance(rng, 50).then(|| "workers".to_string()));
        Plan {
            echo: !chance(rng, 20),
            publish_every_ns: chance(rng, 60)
                .then(|| 5_000_000 + u64::from(rng.next_u32() % 100) * 1_000_000),
            payload_max: [0, 16, 256, 4096][pick(rng, 4)],
            subs,
            requests_every_ns: chance(rng, 30)
                .then(|| 50_000_000 + u64::from(rng.next_u32() % 200) * 1_000_000),
            responder,
            unsub_every_ns: chance(rng, 40)
                .then(|| 100_000_000 + u64::from(rng.next_u32() % 900) * 1_000_000),
            perms: Perms::default(),
            js: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PingKind {
    Settle,
    Flush,
    /// Sent right behind `UNSUB sid`.
    Unsub(u32),
}

#[derive(Debug)]
struct Conn {
    link: usize,
    parser: ServerOpParser,
    got_info: bool,
    subs: BTreeMap<u32, SubPlan>,
    pings: VecDeque<PingKind>,
    inbox_sid: Option<u32>,
}

/// What the world should do after a client acted.
#[derive(Debug, Default)]
pub struct Output {
    pub send: Vec<u8>,
}

/// A simulated client.
pub struct SimClient {
    pub id: ClientId,
    pub plan: Plan,
    /// Workload choices (subjects, payload sizes, headers, unsubscribes).
    pub rng: ChaCha8Rng,
    /// Reconnect backoffs, apart so that faults never shift the workload.
    backoff: ChaCha8Rng,
    pub epoch: u32,
    conn: Option<Conn>,
    /// When to open the next connection, while disconnected.
    pub reconnect_at: Option<u64>,
    pub next_pub_at: u64,
    pub next_req_at: u64,
    pub next_unsub_at: u64,
    /// A subscription unsubscribed mid-run, to subscribe again next time.
    unsubscribed: Option<SubPlan>,
    /// The PING sent after connecting was answered: subscriptions are in.
    pub settled: bool,
    next_sid: u32,
    seqs: BTreeMap<String, u64>,
    next_inbox: u64,
    /// Subscriptions with a max are not renewed after a reconnect.
    used_limited: bool,
    /// When the outstanding settle PING was sent.
    settle_sent_at: Option<u64>,
    /// The JetStream workload's state (clients with a `JsPlan`).
    js: Option<JsState>,
    /// The server lifetime (restarts so far) that accepted the current
    /// connection, set by the world (recorded with consumer deliveries).
    pub lifetime: u32,
}

/// Ids for messages, shared by all clients of a run.
#[derive(Debug, Default)]
pub struct MsgIds {
    next: MsgId,
}

impl MsgIds {
    pub fn allocate(&mut self) -> MsgId {
        self.next += 1;
        self.next
    }
}

impl SimClient {
    pub fn new(id: ClientId, plan: Plan, rng: ChaCha8Rng, backoff: ChaCha8Rng) -> Self {
        SimClient {
            id,
            plan,
            rng,
            backoff,
            next_unsub_at: FIRST_UNSUB_NS,
            unsubscribed: None,
            epoch: 0,
            conn: None,
            reconnect_at: Some(0),
            next_pub_at: 0,
            next_req_at: 0,
            settled: false,
            next_sid: 0,
            seqs: BTreeMap::new(),
            next_inbox: 0,
            used_limited: false,
            settle_sent_at: None,
            js: None,
            lifetime: 0,
        }
    }

    pub fn link(&self) -> Option<usize> {
        self.conn.as_ref().map(|c| c.link)
    }

    /// Whether the client pulls from a JetStream consumer.
    pub fn pulls(&self) -> bool {
        self.plan.js.as_ref().is_some_and(|js| !js.pulls.is_empty())
    }

    /// The plan of the consumer of `stream` the client pulls from, if any.
    pub fn pull_plan(&self, stream: &str) -> Option<&PullPlan> {
        let js = self.plan.js.as_ref()?;
        js.pulls.iter().find(|p| p.stream == stream)
    }

    pub fn is_connected(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.got_info)
    }

    /// A new connection on `link` (the server's INFO is on its way).
    pub fn opened(&mut self, link: usize) {
        self.epoch += 1;
        self.settled = false;
        self.seqs.clear();
        self.unsubscribed = None;
        self.reconnect_at = None;
        self.conn = Some(Conn {
            link,
            parser: ServerOpParser::new(),
            got_info: false,
            subs: BTreeMap::new(),
            pings: VecDeque::new(),
            inbox_sid: None,
        });
    }

    /// The connection ended.
    pub fn lost(&mut self, now: u64, crashed: bool, hist: &mut History) {
        self.settle_sent_at = None;
        if self.conn.take().is_some() {
            hist.push(
                now,
                Ev::Disconnected {
                    client: self.id,
                    epoch: self.epoch,
                    crashed,
                },
            );
            self.settled = false;
            let backoff = 20_000_000 + u64::from(self.backoff.next_u32() % 200) * 1_000_000;
            self.reconnect_at = Some(now + backoff);
        }
    }

    /// A connection attempt found no listener: try again after a backoff.
    pub fn refused(&mut self, now: u64) {
        let backoff = 20_000_000 + u64::from(self.backoff.next_u32() % 200) * 1_000_000;
        self.reconnect_at = Some(now + backoff);
    }

    /// Bytes from the server.
    pub fn on_bytes(
        &mut self,
        now: u64,
        bytes: &[u8],
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Output {
        let mut out = Output::default();
        let Some(mut conn) = self.conn.take() else {
            return out;
        };
        let mut ops: Vec<Owned> = Vec::new();
        let parsed = conn.parser.parse(bytes, |op| ops.push(Owned::from(op)));
        if let Err(e) = parsed {
            hist.push(
                now,
                Ev::Err {
                    client: self.id,
                    epoch: self.epoch,
                    text: format!("client parse error: {}", e.0),
                },
            );
        }
        for op in ops {
            self.on_op(now, &mut conn, op, ids, hist, &mut out);
        }
        self.conn = Some(conn);
        out
    }

    fn on_op(
        &mut self,
        now: u64,
        conn: &mut Conn,
        op: Owned,
        ids: &mut MsgIds,
        hist: &mut History,
        out: &mut Output,
    ) {
        match op {
            Owned::Info => {
                if !conn.got_info {
                    conn.got_info = true;
                    hist.push(
                        now,
                        Ev::Connected {
                            client: self.id,
                            epoch: self.epoch,
                        },
                    );
                    self.handshake(now, conn, hist, out);
                }
            }
            Owned::Ping => out.send.extend_from_slice(enc::PONG),
            Owned::Pong => match conn.pings.pop_front() {
                Some(PingKind::Settle) if conn.pings.iter().all(|p| *p != PingKind::Settle) => {
                    self.settled = true;
                    self.settle_sent_at = None;
                }
                Some(PingKind::Unsub(sid)) => hist.push(
                    now,
                    Ev::Unsubscribed {
                        client: self.id,
                        epoch: self.epoch,
                        sid,
                    },
                ),
                _ => {}
            },
            Owned::Ok => {}
            Owned::Err(text) => hist.push(
                now,
                Ev::Err {
                    client: self.id,
                    epoch: self.epoch,
                    text,
                },
            ),
            Owned::Msg {
                subject,
                sid,
                reply,
                headers,
                payload,
            } => {
                let no_responders = headers
                    .as_deref()
                    .is_some_and(|h| h.starts_with(b"NATS/1.0 503"));
                // A JetStream consumer's delivery (its reply is an ack
                // subject) and a direct get's answer (its headers say
                // where it is stored) are stored copies, not the publish
                // itself.
                let stored_copy = reply.as_deref().is_some_and(|r| r.starts_with(b"$JS.ACK."))
                    || headers
                        .as_deref()
                        .is_some_and(|h| h.windows(15).any(|w| w == b"Nats-Sequence: "));
                let (msg, answers) = if stored_copy {
                    (None, None)
                } else {
                    decode_payload(&payload)
                };
                let digest = digest(headers.as_deref(), &payload);
                let sid: u32 = std::str::from_utf8(&sid)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX);
                let subject = String::from_utf8_lossy(&subject).into_owned();
                let reply_s = reply
                    .as_ref()
                    .map(|r| String::from_utf8_lossy(r).into_owned());
                hist.push(
                    now,
                    Ev::Recv {
                        client: self.id,
                        epoch: self.epoch,
                        sid,
                        subject: subject.clone(),
                        reply: reply_s.clone(),
                        msg,
                        answers,
                        no_responders,
                        digest,
                    },
                );
                // Responders answer requests on the service subject.
                if subject == SERVICE
                    && self.plan.responder.is_some()
                    && let (Some(r), Some(m)) = (reply_s.as_deref(), msg)
                {
                    let body = format!("a{m}");
                    enc::publish(&mut out.send, r.as_bytes(), None, body.as_bytes());
                }
                // The consumer's deliveries and answers come to the inbox;
                // what is not one of them may answer a JetStream request.
                let pulled = conn.inbox_sid == Some(sid)
                    && !no_responders
                    && self.pull_answer(
                        now,
                        &subject,
                        reply_s.as_deref(),
                        headers.as_deref(),
                        &payload,
                        ids,
                        hist,
                        out,
                    );
                // The partitioned group's members have an inbox of their own.
                let grouped = !pulled
                    && self.js.as_ref().and_then(|js| js.part.as_ref()?.sid) == Some(sid)
                    && self.part_answer(
                        now,
                        &subject,
                        reply_s.as_deref(),
                        headers.as_deref(),
                        &payload,
                        ids,
                        hist,
                        out,
                    );
                // So have the priority group's.
                let prioritized = !pulled
                    && !grouped
                    && self.js.as_ref().and_then(|js| js.prio.as_ref()?.sid) == Some(sid)
                    && self.prio_answer(
                        now,
                        &subject,
                        reply_s.as_deref(),
                        headers.as_deref(),
                        &payload,
                        ids,
                        hist,
                        out,
                    );
                let backed = !no_responders
                    && !pulled
                    && !grouped
                    && !prioritized
                    && self.backup_answer(
                        now,
                        &subject,
                        reply_s.as_deref(),
                        headers.as_deref(),
                        &payload,
                        ids,
                        hist,
                        out,
                    );
                if !no_responders && !pulled && !grouped && !prioritized && !backed {
                    self.js_answer(now, &subject, headers.as_deref(), &payload, hist);
                }
            }
        }
    }

    fn handshake(&mut self, now: u64, conn: &mut Conn, hist: &mut History, out: &mut Output) {
        let login = if self.plan.perms.login {
            format!(",\"user\":\"u{}\",\"pass\":\"p\"", self.id)
        } else {
            String::new()
        };
        let json = format!(
            "{{\"verbose\":false,\"pedantic\":false,\"echo\":{},\"headers\":true,\"no_responders\":true,\"protocol\":1,\"name\":\"sim-{}\"{login}}}",
            self.plan.echo, self.id
        );
        enc::connect(&mut out.send, &json);
        let mut subs: Vec<SubPlan> = self.plan.subs.clone();
        if self.used_limited {
            subs.retain(|s| s.max.is_none());
        }
        if let Some(q) = &self.plan.responder {
            subs.push(SubPlan {
                pattern: SERVICE.to_string(),
                queue: q.clone(),
                max: None,
            });
        }
        for s in subs {
            self.subscribe(now, conn, s, hist, out);
        }
        if self.plan.requests_every_ns.is_some() || self.js.is_some() {
            let pattern = format!("_INBOX.c{}.*", self.id);
            let sid = self.subscribe(
                now,
                conn,
                SubPlan {
                    pattern,
                    queue: None,
                    max: None,
                },
                hist,
                out,
            );
            conn.inbox_sid = Some(sid);
        }
        self.part_subscribe(now, conn, hist, out);
        self.prio_subscribe(now, conn, hist, out);
        self.used_limited = true;
        out.send.extend_from_slice(enc::PING);
        conn.pings.push_back(PingKind::Settle);
        self.settle_sent_at = Some(now);
    }

    /// After faults heal: prove the connection is alive with a fresh round
    /// trip before counting this client as settled (a connection the server
    /// closed during a partition looks alive until its EOF arrives).
    pub fn resettle(&mut self, now: u64) -> Vec<u8> {
        let Some(conn) = self.conn.as_mut() else {
            return Vec::new();
        };
        if !conn.got_info {
            return Vec::new();
        }
        self.settled = false;
        conn.pings.push_back(PingKind::Settle);
        self.settle_sent_at = Some(now);
        enc::PING.to_vec()
    }

    /// A settle PING unanswered this long means the connection is dead (a
    /// real client's ping timeout): drop it and reconnect.
    pub fn is_stale(&self, now: u64) -> bool {
        self.conn.is_some()
            && self
                .settle_sent_at
                .is_some_and(|t| now.saturating_sub(t) > 3_000_000_000)
    }

    fn subscribe(
        &mut self,
        now: u64,
        conn: &mut Conn,
        s: SubPlan,
        hist: &mut History,
        out: &mut Output,
    ) -> u32 {
        self.next_sid += 1;
        let sid = self.next_sid;
        let sid_text = sid.to_string();
        enc::subscribe(
            &mut out.send,
            s.pattern.as_bytes(),
            s.queue.as_deref().map(str::as_bytes),
            sid_text.as_bytes(),
        );
        if let Some(m) = s.max {
            enc::unsubscribe(&mut out.send, sid_text.as_bytes(), Some(m));
        }
        hist.push(
            now,
            Ev::Sub {
                client: self.id,
                epoch: self.epoch,
                sid,
                pattern: s.pattern.clone(),
                queue: s.queue.clone(),
                max: s.max,
            },
        );
        conn.subs.insert(sid, s);
        sid
    }
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    pub subject: &'a str,
    pub reply: Option<String>,
    /// Part of the final round (checked for delivery).
    pub final_round: bool,
    /// False for a publish the caller will cut short (a crash mid-message).
    pub complete: bool,
}

impl<'a> Publish<'a> {
    pub fn to(subject: &'a str) -> Self {
        Publish {
            subject,
            reply: None,
            final_round: false,
            complete: true,
        }
    }
}

impl SimClient {
    /// Encodes one publish and records it.
    pub fn publish(
        &mut self,
        now: u64,
        p: Publish<'_>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Vec<u8> {
        let Publish {
            subject,
            reply,
            final_round,
            complete,
        } = p;
        let msg = ids.allocate();
        let seq = {
            let s = self.seqs.entry(subject.to_string()).or_insert(0);
            *s += 1;
            *s
        };
        let pad = if self.plan.payload_max == 0 {
            0
        } else {
            (self.rng.next_u32() as usize) % self.plan.payload_max
        };
        let mut body = format!("m{msg}:").into_bytes();
        body.resize(body.len() + pad, b'x');
        let mut out = Vec::new();
        let headers: &[u8] = b"NATS/1.0\r\nSim: 1\r\n\r\n";
        let with_headers = self.rng.next_u32().is_multiple_of(4);
        let digest = digest(with_headers.then_some(headers), &body);
        if with_headers {
            enc::hpublish(
                &mut out,
                subject.as_bytes(),
                reply.as_deref().map(str::as_bytes),
                headers,
                &body,
            );
        } else {
            enc::publish(
                &mut out,
                subject.as_bytes(),
                reply.as_deref().map(str::as_bytes),
                &body,
            );
        }
        hist.push(
            now,
            Ev::Pub {
                client: self.id,
                epoch: self.epoch,
                msg,
                subject: subject.to_string(),
                seq,
                reply,
                complete,
                final_round,
                digest,
                denied: !self.plan.perms.may_publish(subject),
            },
        );
        out
    }

    /// Regular work: publishes and requests that are due. Returns the bytes
    /// to send and when to wake next.
    pub fn work(
        &mut self,
        now: u64,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> (Vec<u8>, Option<u64>) {
        let mut send = Vec::new();
        if !self.is_connected() {
            return (send, None);
        }
        if let Some(every) = self.plan.publish_every_ns
            && now >= self.next_pub_at
        {
            let subject = SUBJECTS[(self.rng.next_u32() as usize) % SUBJECTS.len()];
            send.extend(self.publish(now, Publish::to(subject), ids, hist));
            self.next_pub_at = now + every;
        }
        if let Some(every) = self.plan.requests_every_ns
            && now >= self.next_req_at
        {
            {
                let target = if self.rng.next_u32().is_multiple_of(5) {
                    NO_SERVICE
                } else {
                    SERVICE
                };
                let reply = self.new_inbox();
                let p = Publish {
                    reply: Some(reply),
                    ..Publish::to(target)
                };
                send.extend(self.publish(now, p, ids, hist));
                self.next_req_at = now + every;
            }
        }
        if let Some(every) = self.plan.unsub_every_ns
            && now >= self.next_unsub_at
        {
            send.extend(self.unsubscribe_or_resubscribe(now, hist));
            self.next_unsub_at = now + every;
        }
        let js_next = self.js_work(now, &mut send, ids, hist, false);
        let next = [
            self.plan.publish_every_ns.map(|_| self.next_pub_at),
            self.plan.requests_every_ns.map(|_| self.next_req_at),
            self.plan.unsub_every_ns.map(|_| self.next_unsub_at),
            js_next,
        ]
        .into_iter()
        .flatten()
        .min();
        (send, next)
    }

    /// Work after the faults heal: the JetStream consumer workload goes on
    /// (pulling, and acking everything), nothing else does.
    pub fn quiet_work(
        &mut self,
        now: u64,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> (Vec<u8>, Option<u64>) {
        let mut send = Vec::new();
        if !self.is_connected() || self.js.is_none() {
            return (send, None);
        }
        let next = self.js_work(now, &mut send, ids, hist, true);
        (send, next)
    }

    /// The final round: one message per subject from publishers, one request
    /// to a service and one to nobody from requesters, then a PING.
    pub fn final_round(&mut self, now: u64, ids: &mut MsgIds, hist: &mut History) -> Vec<u8> {
        let mut send = Vec::new();
        if self.plan.publish_every_ns.is_some() {
            for s in SUBJECTS {
                let p = Publish {
                    final_round: true,
                    ..Publish::to(s)
                };
                send.extend(self.publish(now, p, ids, hist));
            }
        }
        if self.plan.requests_every_ns.is_some() {
            for target in [SERVICE, NO_SERVICE] {
                let reply = self.new_inbox();
                let p = Publish {
                    reply: Some(reply),
                    final_round: true,
                    ..Publish::to(target)
                };
                send.extend(self.publish(now, p, ids, hist));
            }
        }
        if !send.is_empty() {
            send.extend(self.flush());
        }
        send
    }

    /// A publish the client dies while sending: the whole frame, recorded as
    /// incomplete (the caller sends only part of it). None if not connected.
    pub fn crash_frame(
        &mut self,
        now: u64,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<Vec<u8>> {
        if !self.is_connected() {
            return None;
        }
        let subject = SUBJECTS[(self.rng.next_u32() as usize) % SUBJECTS.len()];
        Some(self.publish(
            now,
            Publish {
                complete: false,
                ..Publish::to(subject)
            },
            ids,
            hist,
        ))
    }

    /// Unsubscribes one plain or queue subscription of the plan, with a
    /// PING behind it whose PONG shows the server processed the UNSUB; or
    /// subscribes again the one unsubscribed last time.
    fn unsubscribe_or_resubscribe(&mut self, now: u64, hist: &mut History) -> Vec<u8> {
        let mut out = Output::default();
        let Some(mut conn) = self.conn.take() else {
            return out.send;
        };
        if let Some(plan) = self.unsubscribed.take() {
            self.subscribe(now, &mut conn, plan, hist, &mut out);
        } else {
            let candidates: Vec<u32> = conn
                .subs
                .iter()
                .filter(|(_, s)| s.max.is_none() && s.pattern != SERVICE)
                .filter(|(sid, _)| Some(**sid) != conn.inbox_sid)
                .map(|(sid, _)| *sid)
                .collect();
            if !candidates.is_empty() {
                let sid = candidates[(self.rng.next_u32() as usize) % candidates.len()];
                self.unsubscribed = conn.subs.remove(&sid);
                enc::unsubscribe(&mut out.send, sid.to_string().as_bytes(), None);
                out.send.extend_from_slice(enc::PING);
                conn.pings.push_back(PingKind::Unsub(sid));
                hist.push(
                    now,
                    Ev::Unsub {
                        client: self.id,
                        epoch: self.epoch,
                        sid,
                    },
                );
            }
        }
        self.conn = Some(conn);
        out.send
    }

    pub fn new_inbox(&mut self) -> String {
        self.next_inbox += 1;
        format!("_INBOX.c{}.{}", self.id, self.next_inbox)
    }

    /// A PING whose PONG confirms everything sent before it was processed.
    pub fn flush(&mut self) -> Vec<u8> {
        if let Some(c) = self.conn.as_mut() {
            c.pings.push_back(PingKind::Flush);
        }
        enc::PING.to_vec()
    }

    /// The live subscriptions of the current connection.
    pub fn live_subs(&self) -> Vec<(u32, SubPlan)> {
        self.conn
            .as_ref()
            .map(|c| c.subs.iter().map(|(k, v)| (*k, v.clone())).collect())
            .unwrap_or_default()
    }
}

/// A server op, owned (the parser lends it only inside its callback).
enum Owned {
    Info,
    Msg {
        subject: Vec<u8>,
        sid: Vec<u8>,
        reply: Option<Vec<u8>>,
        headers: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Ping,
    Pong,
    Ok,
    Err(String),
}

impl From<ServerOp<'_>> for Owned {
    fn from(op: ServerOp<'_>) -> Self {
        match op {
            ServerOp::Info(_) => Owned::Info,
            ServerOp::Msg {
                subject,
                sid,
                reply,
                headers,
                payload,
            } => Owned::Msg {
                subject: subject.to_vec(),
                sid: sid.to_vec(),
                reply: reply.map(<[u8]>::to_vec),
                headers: headers.map(<[u8]>::to_vec),
                payload: payload.to_vec(),
            },
            ServerOp::Ping => Owned::Ping,
            ServerOp::Pong => Owned::Pong,
            ServerOp::Ok => Owned::Ok,
            ServerOp::Err(t) => Owned::Err(String::from_utf8_lossy(t).into_owned()),
        }
    }
}

/// `m<id>:…` is a message, `a<id>` a reply to request `<id>`.
fn decode_payload(p: &[u8]) -> (Option<MsgId>, Option<MsgId>) {
    let num = |b: &[u8]| -> Option<MsgId> {
        let end = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        std::str::from_utf8(&b[..end]).ok()?.parse().ok()
    };
    match p.first() {
        Some(b'm') => (num(&p[1..]), None),
        Some(b'a') => (None, num(&p[1..])),
        _ => (None, None),
    }
}
