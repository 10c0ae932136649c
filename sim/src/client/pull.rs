//! The JetStream consumer workload of the client that pulls: it creates a
//! durable pull consumer with explicit acks once the stream exists, pulls
//! with `CONSUMER.MSG.NEXT` (a batch and an expiry), records every
//! delivery, and acks a seeded part of them with a double ack (a reply
//! the server answers once the ack is durable), NAKs some and leaves the
//! rest for redelivery. After the faults heal it acks everything.

use std::collections::BTreeMap;

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use super::{MsgIds, Output, SimClient};
use crate::history::{Ev, History, JsDelivery, ReadOf};

/// The durable consumer of every JetStream seed's stream.
pub const JS_CONSUMER: &str = "C";
/// A consumer-create request unanswered this long is sent again.
const CREATE_RETRY_NS: u64 = 1_000_000_000;
/// Messages asked per pull request after the faults: the whole backlog
/// (the consumer's default `max_ack_pending`).
const QUIET_BATCH: u64 = 1000;

/// How a client that pulls works, drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullPlan {
    /// The stream and its durable consumer.
    pub stream: &'static str,
    pub consumer: &'static str,
    /// The consumer's ack wait: an unacknowledged delivery comes again
    /// after it.
    pub ack_wait_ns: u64,
    /// A pull request goes out this often, expiring after as long.
    pub pull_every_ns: u64,
    /// Messages asked per pull request.
    pub batch: u64,
    /// Percent of deliveries acked (with a double ack) while faults last.
    pub ack_pct: u32,
    /// Percent NAKed (redelivered at once); the rest are left to time out.
    pub nak_pct: u32,
    /// Percent of the acks held back until the next pull request (a
    /// client that acks after processing): by then the connection, or
    /// the server lifetime, may be another one.
    pub late_pct: u32,
    /// The consumer's `max_ack_pending` (none: the server's default).
    pub max_ack_pending: Option<u64>,
    /// The consumer's `max_deliver` (none: unlimited).
    pub max_deliver: Option<u64>,
}

impl PullPlan {
    /// A plan for stream `S`'s consumer `C`.
    pub fn draw(rng: &mut ChaCha8Rng) -> PullPlan {
        let mut pick = |options: &[u64]| options[(rng.next_u32() as usize) % options.len()];
        PullPlan {
            stream: super::JS_STREAM,
            consumer: JS_CONSUMER,
            ack_wait_ns: pick(&[1_000_000_000, 2_000_000_000]),
            pull_every_ns: pick(&[200_000_000, 500_000_000]),
            batch: pick(&[1, 4, 16, 64]),
            ack_pct: pick(&[100, 80, 50]) as u32,
            nak_pct: pick(&[0, 10, 30]) as u32,
            late_pct: pick(&[0, 25, 100]) as u32,
            max_ack_pending: None,
            max_deliver: None,
        }
    }

    /// One limit in three seeds in four: a small `max_ack_pending` (in
    /// half of them) or a small `max_deliver`; never both (a message
    /// dropped after its last delivery leaves the pending set unseen by
    /// the client, so the `max_ack_pending` checker could not count it).
    pub fn draw_limits(&mut self, rng: &mut ChaCha8Rng) {
        let n = rng.next_u32();
        match n % 4 {
            0 | 1 => self.max_ack_pending = Some([4, 8, 16][(n / 4 % 3) as usize]),
            2 => self.max_deliver = Some([2, 3, 5][(n / 4 % 3) as usize]),
            _ => {}
        }
    }

    fn create_body(&self) -> String {
        let max_ack_pending = self
            .max_ack_pending
            .map(|n| format!(",\"max_ack_pending\":{n}"))
            .unwrap_or_default();
        let max_deliver = self.max_deliver.map_or(-1, |n| n as i64);
        format!(
            "{{\"stream_name\":\"{}\",\"config\":{{\"durable_name\":\"{}\",\"ack_policy\":\"explicit\",\"ack_wait\":{},\"max_deliver\":{max_deliver}{max_ack_pending}}}}}",
            self.stream, self.consumer, self.ack_wait_ns
        )
    }
}

/// What a client that pulls keeps between its requests and their
/// answers (one per consumer it pulls from).
pub(super) struct PullState {
    pub(super) plan: PullPlan,
    rng: ChaCha8Rng,
    /// The consumer exists (a create got a successful answer).
    created: bool,
    create_sent_at: Option<u64>,
    /// Reply subjects of the create requests sent.
    creates: Vec<String>,
    next_pull_at: u64,
    /// Double acks waiting for their answer: reply subject -> stream seq.
    acks: BTreeMap<String, u64>,
    /// Acks held back until the next pull: (ack subject, stream seq).
    late: Vec<(String, u64)>,
    /// Faults are over: ack everything.
    pub(super) quiet: bool,
    /// Read every acked message back by its sequence once the ack is
    /// answered (a work queue's: it must be gone).
    read_back: bool,
}

impl PullState {
    pub(super) fn new(plan: PullPlan, rng: ChaCha8Rng, read_back: bool) -> PullState {
        PullState {
            plan,
            rng,
            created: false,
            create_sent_at: None,
            creates: Vec::new(),
            next_pull_at: 0,
            acks: BTreeMap::new(),
            late: Vec::new(),
            quiet: false,
            read_back,
        }
    }
}

/// The stream sequence, delivery count and consumer sequence of a
/// `$JS.ACK` reply subject, the form natrix sends:
/// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`.
pub(super) fn ack_token(reply: &str) -> Option<(u64, u64, u64)> {
    let tokens: Vec<&str> = reply.split('.').collect();
    if tokens.len() != 9 {
        return None;
    }
    Some((
        tokens[5].parse().ok()?,
        tokens[4].parse().ok()?,
        tokens[6].parse().ok()?,
    ))
}

impl SimClient {
    fn pull_state(&mut self, k: usize) -> Option<&mut PullState> {
        self.js.as_mut()?.pulls.get_mut(k)
    }

    /// The consumer's creation once its stream exists (until answered),
    /// and pull requests, for the `k`th consumer the client pulls from.
    /// Returns when it next has something to do.
    pub(super) fn pull_work(
        &mut self,
        k: usize,
        now: u64,
        stream_created: bool,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<u64> {
        let pull = self.pull_state(k)?;
        let (stream, consumer) = (pull.plan.stream, pull.plan.consumer);
        if !stream_created {
            return None;
        }
        if !pull.created {
            let due = pull.create_sent_at.map_or(now, |t| t + CREATE_RETRY_NS);
            if now < due {
                return Some(due);
            }
            pull.create_sent_at = Some(now);
            let body = pull.plan.create_body();
            let reply = self.new_inbox();
            self.pull_state(k)?.creates.push(reply.clone());
            let subject = format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}");
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
            return Some(now + CREATE_RETRY_NS);
        }
        if now >= pull.next_pull_at {
            for (ack, seq) in std::mem::take(&mut pull.late) {
                self.double_ack(k, now, &ack, seq, send, ids, hist);
            }
            let pull = self.pull_state(k)?;
            let every = pull.plan.pull_every_ns;
            pull.next_pull_at = now + every;
            let batch = if pull.quiet {
                QUIET_BATCH
            } else {
                pull.plan.batch
            };
            let body = format!("{{\"batch\":{batch},\"expires\":{every}}}");
            let reply = self.new_inbox();
            let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
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
        }
        Some(self.pull_state(k)?.next_pull_at)
    }

    /// A message on the client's inbox for one of its consumers: a
    /// delivery (recorded, then acked, NAKed or left), the answer to a
    /// double ack, or the answer to a create. Returns whether it was one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn pull_answer(
        &mut self,
        now: u64,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
        ids: &mut MsgIds,
        hist: &mut History,
        out: &mut Output,
    ) -> bool {
        let n = self.js.as_ref().map_or(0, |js| js.pulls.len());
        (0..n)
            .any(|k| self.pull_answer_of(k, now, subject, reply, headers, payload, ids, hist, out))
    }

    #[allow(clippy::too_many_arguments)]
    fn pull_answer_of(
        &mut self,
        k: usize,
        now: u64,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
        ids: &mut MsgIds,
        hist: &mut History,
        out: &mut Output,
    ) -> bool {
        let (client, epoch, lifetime) = (self.id, self.epoch, self.lifetime);
        let Some(pull) = self.pull_state(k) else {
            return false;
        };
        let stream = pull.plan.stream;
        if let Some(seq) = pull.acks.remove(subject) {
            let read_back = pull.read_back;
            let reply = subject.to_string();
            hist.push(
                now,
                Ev::JsConsumerAcked {
                    client,
                    lifetime,
                    stream,
                    seq,
                    reply,
                },
            );
            if read_back {
                self.js_read(now, stream, ReadOf::Seq(seq), &mut out.send, ids, hist);
            }
            return true;
        }
        if pull.creates.iter().any(|r| r == subject) {
            let answer = serde_json::from_slice::<serde_json::Value>(payload).ok();
            match answer.as_ref().and_then(|a| a.get("error")) {
                Some(e) => {
                    let text = e.to_string();
                    hist.push(now, Ev::JsError { client, text });
                }
                None if answer.is_some() => pull.created = true,
                None => {}
            }
            return true;
        }
        let prefix = format!("$JS.ACK.{stream}.{}.", pull.plan.consumer);
        let Some((ack, (seq, deliveries, consumer_seq))) = reply
            .filter(|r| r.starts_with(&prefix))
            .and_then(|r| Some((r, ack_token(r)?)))
        else {
            return false;
        };
        hist.push(
            now,
            Ev::JsDelivery(Box::new(JsDelivery {
                client,
                epoch,
                stream,
                lifetime,
                seq,
                deliveries,
                consumer_seq,
                subject: subject.to_string(),
                headers: headers.unwrap_or_default().to_vec(),
                payload: payload.to_vec(),
            })),
        );
        let roll = pull.rng.next_u32() % 100;
        let late = pull.rng.next_u32() % 100 < pull.plan.late_pct;
        let (ack_pct, nak_pct, quiet) = (pull.plan.ack_pct, pull.plan.nak_pct, pull.quiet);
        if quiet || roll < ack_pct {
            if late && !quiet {
                pull.late.push((ack.to_string(), seq));
            } else {
                self.double_ack(k, now, ack, seq, &mut out.send, ids, hist);
            }
        } else if roll < ack_pct + nak_pct {
            self.record_publish(now, ack, None, None, b"-NAK", &mut out.send, ids, hist);
        }
        true
    }
}

impl SimClient {
    /// Sends a double ack of `seq` to its ack subject `ack`, recorded
    /// with the reply subject its answer will come to.
    #[allow(clippy::too_many_arguments)]
    fn double_ack(
        &mut self,
        k: usize,
        now: u64,
        ack: &str,
        seq: u64,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let reply = self.new_inbox();
        let Some(pull) = self.pull_state(k) else {
            return;
        };
        pull.acks.insert(reply.clone(), seq);
        let stream = pull.plan.stream;
        let r = Some(reply.clone());
        self.record_publish(now, ack, r, None, b"+ACK", send, ids, hist);
        let (client, epoch) = (self.id, self.epoch);
        hist.push(
            now,
            Ev::JsConsumerAck {
                client,
                epoch,
                stream,
                seq,
                reply,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_subject_names_the_stream_sequence_and_the_delivery_count() {
        assert_eq!(
            ack_token("$JS.ACK.S.C.2.17.40.1700000000000000000.3"),
            Some((17, 2, 40))
        );
        assert_eq!(ack_token("$JS.ACK.S.C.2.17"), None);
        assert_eq!(ack_token("$JS.ACK.S.C.x.17.40.1.3"), None);
    }
}
