//! The JetStream workload of a simulated client: creating the stream,
//! publishing to it with reply subjects (some with `Nats-Msg-Id`s, some
//! of them retries), and recording every PubAck with the exact bytes it
//! acknowledges.

use std::collections::BTreeMap;

use natrix_core::proto::client as enc;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use super::pull::{PullPlan, PullState};
use super::streams::{KvPlan, StreamsState};
use super::{MsgIds, SimClient};
use crate::history::{Ev, History, JsAck, MsgId, digest};

/// The JetStream stream of every JetStream seed, and the subjects its
/// publishers use (it captures `js.>`).
pub const JS_STREAM: &str = "S";
pub const JS_SUBJECTS: [&str; 3] = ["js.1", "js.2", "js.x.y"];
/// A stream-create request unanswered this long is sent again (the answer
/// may have died with a connection or a server).
const JS_CREATE_RETRY_NS: u64 = 1_000_000_000;

/// A client's part in the JetStream workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsPlan {
    /// Creates the stream at start, and again until the server answers.
    pub creator: bool,
    /// Publishes to the stream's subjects with a reply subject this often.
    pub publish_every_ns: Option<u64>,
    /// Percent of publishes that carry a `Nats-Msg-Id` (a third of those
    /// repeat the previous id: a retry the server must deduplicate).
    pub msg_id_pct: u32,
    /// The durable pull consumers it creates and pulls from: stream `S`'s
    /// (the stream's creator, in half the seeds), the work queue's.
    pub pulls: Vec<PullPlan>,
    /// Further streams it creates (the creator): name and request body.
    pub streams: Vec<(&'static str, String)>,
    /// Publishes to the work-queue stream this often.
    pub work_every_ns: Option<u64>,
    /// Its part in the key-value workload.
    pub kv: Option<KvPlan>,
    /// Stream `S` compresses what it stores (the creator creates it so).
    pub compress: bool,
    /// When the creator backs stream `S` up and restores it (`backup`).
    pub backup_at_ns: Option<u64>,
}

impl JsPlan {
    pub fn draw(rng: &mut ChaCha8Rng, creator: bool) -> JsPlan {
        let publishes = rng.next_u32().is_multiple_of(3) || creator;
        JsPlan {
            creator,
            publish_every_ns: publishes
                .then(|| 50_000_000 + u64::from(rng.next_u32() % 300) * 1_000_000),
            msg_id_pct: [0, 30, 100][(rng.next_u32() % 3) as usize],
            pulls: Vec::new(),
            streams: Vec::new(),
            work_every_ns: None,
            kv: None,
            compress: false,
            backup_at_ns: None,
        }
    }
}

/// A JetStream publish waiting for its acknowledgement.
#[derive(Debug)]
pub(super) struct JsSent {
    pub(super) msg: MsgId,
    pub(super) subject: String,
    pub(super) msg_id: Option<String>,
    pub(super) headers: Vec<u8>,
    pub(super) payload: Vec<u8>,
}

/// What a JetStream client keeps between its publishes and their answers.
pub(super) struct JsState {
    rng: ChaCha8Rng,
    /// The streams that exist (the creator got a successful answer).
    created: Vec<&'static str>,
    create_sent_at: BTreeMap<&'static str, u64>,
    next_pub_at: u64,
    /// Publishes waiting for their PubAck, by reply subject. Kept across
    /// reconnects: the inbox is renewed, and a late ack still arrives.
    pub(super) waiting: BTreeMap<String, JsSent>,
    /// Reply subjects of the create requests sent, with their stream.
    creates: BTreeMap<String, &'static str>,
    next_msg_id: u64,
    last_msg_id: Option<String>,
    /// The consumer workloads (clients that pull only).
    pub(super) pulls: Vec<PullState>,
    /// The work-queue and key-value workloads.
    pub(super) streams: StreamsState,
    /// The partitioned group's workload (its members only).
    pub(super) part: Option<super::partition::PartState>,
    /// The priority group's workload (its members only).
    pub(super) prio: Option<super::priority::PrioState>,
    /// The backup workload (the creator, in some seeds).
    pub(super) backup: Option<super::backup::BackupState>,
}

/// The generators of a client's JetStream workloads, each apart so that
/// a new one never shifts the others.
pub struct JsRngs {
    pub js: ChaCha8Rng,
    /// One per consumer the client pulls from, in its plan's order.
    pub pulls: Vec<ChaCha8Rng>,
    /// The work-queue and key-value workloads.
    pub streams: ChaCha8Rng,
}

impl SimClient {
    /// Gives the client a part in the JetStream workload, with its own
    /// generator (so the rest of its workload draws as before), and the
    /// consumer workload's generator when its plan pulls.
    pub fn join_jetstream(&mut self, plan: JsPlan, rngs: JsRngs) {
        let pulls = plan
            .pulls
            .iter()
            .cloned()
            .zip(rngs.pulls)
            .map(|(p, rng)| {
                let read_back = p.stream == super::streams::WORK_STREAM;
                PullState::new(p, rng, read_back)
            })
            .collect();
        let backup = plan.backup_at_ns.map(super::backup::BackupState::new);
        self.plan.js = Some(plan);
        self.js = Some(JsState {
            rng: rngs.js,
            created: Vec::new(),
            create_sent_at: BTreeMap::new(),
            next_pub_at: 0,
            waiting: BTreeMap::new(),
            creates: BTreeMap::new(),
            next_msg_id: 0,
            last_msg_id: None,
            pulls,
            streams: StreamsState::new(rngs.streams),
            part: None,
            prio: None,
            backup,
        });
    }

    /// The JetStream workload's due work: the stream's creation (until
    /// answered) and publishes with reply subjects. Returns when it next
    /// has something to do.
    pub(super) fn js_work(
        &mut self,
        now: u64,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
        quiet: bool,
    ) -> Option<u64> {
        let plan = self.plan.js.clone()?;
        let js = self.js.as_mut()?;
        for pull in &mut js.pulls {
            pull.quiet = quiet;
        }
        if let Some(part) = js.part.as_mut() {
            part.quiet = quiet;
        }
        if let Some(prio) = js.prio.as_mut() {
            prio.quiet = quiet;
        }
        let mut next = None;
        let mut soonest = |at: u64| next = Some(next.map_or(at, |n: u64| n.min(at)));
        if plan.creator {
            let compression = if plan.compress { "s2" } else { "none" };
            let stream_body = format!(
                "{{\"name\":\"{JS_STREAM}\",\"subjects\":[\"js.>\"],\"compression\":\"{compression}\"}}"
            );
            let streams = std::iter::once((JS_STREAM, stream_body)).chain(plan.streams.clone());
            for (name, body) in streams {
                if let Some(at) = self.create_stream(now, name, &body, send, ids, hist) {
                    soonest(at);
                }
            }
        }
        for k in 0..plan.pulls.len() {
            let stream = plan.pulls[k].stream;
            // Only the creator waits for its stream; the others try (and
            // try again after an error).
            let created = !plan.creator || self.js_state().created.contains(&stream);
            if let Some(at) = self.pull_work(k, now, created, send, ids, hist) {
                soonest(at);
            }
        }
        let created = !plan.creator || self.js_state().created.contains(&JS_STREAM);
        if let Some(at) = self.part_work(now, created, send, ids, hist) {
            soonest(at);
        }
        if let Some(at) = self.prio_work(now, created, send, ids, hist) {
            soonest(at);
        }
        if let Some(at) = self.backup_work(now, created, send, ids, hist) {
            soonest(at);
        }
        // After the faults, publishes stop; the consumer goes on.
        if let Some(every) = plan.publish_every_ns.filter(|_| !quiet) {
            let js = self.js_state();
            if now >= js.next_pub_at {
                js.next_pub_at = now + every;
                self.js_publish(now, &plan, send, ids, hist);
            }
            let at = self.js_state().next_pub_at;
            soonest(at);
        }
        if !quiet && let Some(at) = self.streams_work(now, &plan, send, ids, hist) {
            soonest(at);
        }
        next
    }

    /// Creates stream `name` with `body` until a successful answer comes.
    /// Returns when to send the request again, if it is still unanswered.
    fn create_stream(
        &mut self,
        now: u64,
        name: &'static str,
        body: &str,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<u64> {
        let js = self.js_state();
        if js.created.contains(&name) {
            return None;
        }
        let due = js
            .create_sent_at
            .get(name)
            .map_or(now, |t| t + JS_CREATE_RETRY_NS);
        if now < due {
            return Some(due);
        }
        js.create_sent_at.insert(name, now);
        let reply = self.new_inbox();
        self.js_state().creates.insert(reply.clone(), name);
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        self.record_publish(
            now,
            &subject,
            Some(reply),
            None,
            body.as_bytes(),
            send,
            ids,
            hist,
        );
        Some(now + JS_CREATE_RETRY_NS)
    }

    pub(super) fn js_state(&mut self) -> &mut JsState {
        self.js
            .as_mut()
            .expect("only JetStream clients do JetStream work")
    }

    /// One publish to the stream's subjects, with a reply subject and
    /// sometimes a `Nats-Msg-Id` (a third of the time the previous one).
    fn js_publish(
        &mut self,
        now: u64,
        plan: &JsPlan,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let client = self.id;
        let js = self.js_state();
        let subject = JS_SUBJECTS[(js.rng.next_u32() as usize) % JS_SUBJECTS.len()];
        // The partitioned group's members publish keyed messages instead.
        let keyed = self.keyed_subject();
        let subject = keyed.as_deref().unwrap_or(subject);
        let js = self.js_state();
        let msg_id =
            (js.rng.next_u32() % 100 < plan.msg_id_pct).then(|| match js.last_msg_id.clone() {
                Some(last) if js.rng.next_u32().is_multiple_of(3) => last,
                _ => {
                    js.next_msg_id += 1;
                    format!("c{client}-{}", js.next_msg_id)
                }
            });
        if msg_id.is_some() {
            js.last_msg_id = msg_id.clone();
        }
        let pad = (js.rng.next_u32() % 64) as usize;
        let msg = ids.allocate();
        let mut payload = format!("m{msg}:").into_bytes();
        payload.resize(payload.len() + pad, b'j');
        let headers = msg_id
            .as_ref()
            .map(|id| format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n\r\n").into_bytes());
        let reply = self.new_inbox();
        self.js_state().waiting.insert(
            reply.clone(),
            JsSent {
                msg,
                subject: subject.to_string(),
                msg_id,
                headers: headers.clone().unwrap_or_default(),
                payload: payload.clone(),
            },
        );
        self.record_publish_as(
            now,
            msg,
            subject,
            Some(reply),
            headers.as_deref(),
            &payload,
            send,
            hist,
        );
    }

    /// Encodes a publish of exactly these bytes and records it under a
    /// fresh message id.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_publish(
        &mut self,
        now: u64,
        subject: &str,
        reply: Option<String>,
        headers: Option<&[u8]>,
        payload: &[u8],
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let msg = ids.allocate();
        self.record_publish_as(now, msg, subject, reply, headers, payload, send, hist);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_publish_as(
        &mut self,
        now: u64,
        msg: MsgId,
        subject: &str,
        reply: Option<String>,
        headers: Option<&[u8]>,
        payload: &[u8],
        send: &mut Vec<u8>,
        hist: &mut History,
    ) {
        let seq = {
            let s = self.seqs.entry(subject.to_string()).or_insert(0);
            *s += 1;
            *s
        };
        let r = reply.as_deref().map(str::as_bytes);
        match headers {
            Some(h) => enc::hpublish(send, subject.as_bytes(), r, h, payload),
            None => enc::publish(send, subject.as_bytes(), r, payload),
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
                complete: true,
                final_round: false,
                digest: digest(headers, payload),
                denied: !self.plan.perms.may_publish(subject),
            },
        );
    }

    /// A message on the inbox that may answer a JetStream request: a
    /// create response or a PubAck.
    pub(super) fn js_answer(
        &mut self,
        now: u64,
        subject: &str,
        headers: Option<&[u8]>,
        payload: &[u8],
        hist: &mut History,
    ) {
        let client = self.id;
        let Some(js) = self.js.as_mut() else {
            return;
        };
        if js
            .streams
            .read_answer(now, client, subject, headers, payload, hist)
        {
            return;
        }
        let create = js.creates.get(subject).copied();
        if create.is_none() && !js.waiting.contains_key(subject) {
            return;
        }
        let Ok(answer) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let error = answer.get("error").map(|e| e.to_string());
        if let Some(name) = create {
            match error {
                None if !js.created.contains(&name) => js.created.push(name),
                None => {}
                Some(text) => hist.push(now, Ev::JsError { client, text }),
            }
            return;
        }
        let Some(sent) = js.waiting.remove(subject) else {
            return;
        };
        if let Some(text) = error {
            hist.push(now, Ev::JsError { client, text });
            return;
        }
        let (Some(stream), Some(seq)) = (
            answer.get("stream").and_then(|s| s.as_str()),
            answer.get("seq").and_then(serde_json::Value::as_u64),
        ) else {
            let text = format!("a PubAck without stream or seq: {answer}");
            hist.push(now, Ev::JsError { client, text });
            return;
        };
        let duplicate = answer.get("duplicate").and_then(serde_json::Value::as_bool) == Some(true);
        let ack = JsAck {
            client,
            msg: sent.msg,
            stream: stream.to_string(),
            seq,
            duplicate,
            subject: sent.subject,
            msg_id: sent.msg_id,
            headers: sent.headers,
            payload: sent.payload,
        };
        hist.push(now, Ev::JsAck(Box::new(ack)));
    }
}
