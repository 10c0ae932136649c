//! The work-queue and key-value workloads: publishes to a work-queue
//! stream (pulled by several clients through one consumer, see `pull`),
//! puts to a key-value stream (one message kept per subject, or a short
//! history), reads of its keys' latest revisions by every client in the
//! account, and the reads by sequence that show a work item is gone once
//! its ack is answered.

use std::collections::BTreeSet;

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use super::js::{JsPlan, JsSent};
use super::{MsgIds, SimClient};
use crate::history::{ClientId, Ev, History, ReadAnswer, ReadOf};

/// The work-queue stream (it captures `wq.>`) and its one consumer.
pub const WORK_STREAM: &str = "W";
pub const WORK_CONSUMER: &str = "WC";
const WORK_SUBJECTS: [&str; 2] = ["wq.1", "wq.2"];
/// The key-value stream (it captures `kv.>`) and its keys.
pub const KV_STREAM: &str = "K";
pub const KV_KEYS: [&str; 3] = ["kv.k1", "kv.k2", "kv.k3"];

/// The request body that creates the work-queue stream.
pub fn work_stream_body() -> String {
    format!("{{\"name\":\"{WORK_STREAM}\",\"subjects\":[\"wq.>\"],\"retention\":\"workqueue\"}}")
}

/// The request body that creates the key-value stream, keeping `history`
/// revisions of each key.
pub fn kv_stream_body(history: u64) -> String {
    format!(
        "{{\"name\":\"{KV_STREAM}\",\"subjects\":[\"kv.>\"],\"max_msgs_per_subject\":{history},\"allow_direct\":true}}"
    )
}

/// A client's part in the key-value workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPlan {
    /// Puts a new revision of a key this often (the writer).
    pub put_every_ns: Option<u64>,
    /// Reads a key's latest revision this often.
    pub read_every_ns: u64,
}

impl KvPlan {
    pub fn draw(rng: &mut ChaCha8Rng, writer: bool) -> KvPlan {
        KvPlan {
            put_every_ns: writer.then(|| 40_000_000 + u64::from(rng.next_u32() % 160) * 1_000_000),
            read_every_ns: 40_000_000 + u64::from(rng.next_u32() % 260) * 1_000_000,
        }
    }
}

/// What the work-queue and key-value workloads keep.
pub(super) struct StreamsState {
    rng: ChaCha8Rng,
    next_work_at: u64,
    next_put_at: u64,
    next_read_at: u64,
    /// Reads waiting for their answer, by reply subject.
    reads: BTreeSet<String>,
    /// A read found the stream: direct gets may go too. (Before, nobody
    /// answers them and the server's no-responders status would reach
    /// every subscriber of the reply subject, not only this client.)
    stream_seen: bool,
}

impl StreamsState {
    pub(super) fn new(rng: ChaCha8Rng) -> StreamsState {
        StreamsState {
            rng,
            next_work_at: 0,
            next_put_at: 0,
            next_read_at: 0,
            reads: BTreeSet::new(),
            stream_seen: false,
        }
    }

    /// An answer to one of the client's reads: recorded. Returns whether
    /// it was one.
    pub(super) fn read_answer(
        &mut self,
        now: u64,
        client: ClientId,
        subject: &str,
        headers: Option<&[u8]>,
        payload: &[u8],
        hist: &mut History,
    ) -> bool {
        if !self.reads.remove(subject) {
            return false;
        }
        let answer = match headers {
            Some(h) => direct_answer(h),
            None => msg_get_answer(payload),
        };
        self.stream_seen |= answer != ReadAnswer::Other;
        let reply = subject.to_string();
        hist.push(
            now,
            Ev::JsReadAnswer {
                client,
                reply,
                answer,
            },
        );
        true
    }
}

/// A direct get's answer: the message (its sequence in `Nats-Sequence`),
/// or a status line.
fn direct_answer(headers: &[u8]) -> ReadAnswer {
    let text = String::from_utf8_lossy(headers);
    if text.starts_with("NATS/1.0 404") {
        return ReadAnswer::NotFound;
    }
    text.split("\r\n")
        .find_map(|l| l.strip_prefix("Nats-Sequence:"))
        .and_then(|v| v.trim().parse().ok())
        .map_or(ReadAnswer::Other, ReadAnswer::Found)
}

/// A `STREAM.MSG.GET` answer: `{"message":{"seq":…}}`, or an error
/// (`10037`: no message found).
fn msg_get_answer(payload: &[u8]) -> ReadAnswer {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return ReadAnswer::Other;
    };
    if let Some(seq) = v
        .pointer("/message/seq")
        .and_then(serde_json::Value::as_u64)
    {
        return ReadAnswer::Found(seq);
    }
    match v
        .pointer("/error/err_code")
        .and_then(serde_json::Value::as_u64)
    {
        Some(10037) => ReadAnswer::NotFound,
        _ => ReadAnswer::Other,
    }
}

impl SimClient {
    /// The work-queue publishes and the key-value puts and reads that are
    /// due (while the faults last). Returns when next one is.
    pub(super) fn streams_work(
        &mut self,
        now: u64,
        plan: &JsPlan,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut soonest = |at: u64| next = Some(next.map_or(at, |n| n.min(at)));
        if let Some(every) = plan.work_every_ns {
            let st = &mut self.js_state().streams;
            if now >= st.next_work_at {
                st.next_work_at = now + every;
                let subject = WORK_SUBJECTS[(st.rng.next_u32() as usize) % WORK_SUBJECTS.len()];
                self.stream_publish(now, subject, send, ids, hist);
            }
            soonest(self.js_state().streams.next_work_at);
        }
        let Some(kv) = &plan.kv else {
            return next;
        };
        if let Some(every) = kv.put_every_ns {
            let st = &mut self.js_state().streams;
            if now >= st.next_put_at {
                st.next_put_at = now + every;
                let key = KV_KEYS[(st.rng.next_u32() as usize) % KV_KEYS.len()];
                self.stream_publish(now, key, send, ids, hist);
            }
            soonest(self.js_state().streams.next_put_at);
        }
        let st = &mut self.js_state().streams;
        if now >= st.next_read_at {
            st.next_read_at = now + kv.read_every_ns;
            let key = KV_KEYS[(st.rng.next_u32() as usize) % KV_KEYS.len()];
            self.js_read(
                now,
                KV_STREAM,
                ReadOf::LastOf(key.to_string()),
                send,
                ids,
                hist,
            );
        }
        soonest(self.js_state().streams.next_read_at);
        next
    }

    /// A publish to a work-queue or key-value subject with a reply: its
    /// PubAck is recorded like the stream `S` ones, under its own stream.
    fn stream_publish(
        &mut self,
        now: u64,
        subject: &str,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let msg = ids.allocate();
        let payload = format!("m{msg}:").into_bytes();
        let reply = self.new_inbox();
        self.js_state().waiting.insert(
            reply.clone(),
            JsSent {
                msg,
                subject: subject.to_string(),
                msg_id: None,
                headers: Vec::new(),
                payload: payload.clone(),
            },
        );
        self.record_publish_as(now, msg, subject, Some(reply), None, &payload, send, hist);
    }

    /// Reads a message of `stream` (by sequence, or the last on a
    /// subject), by `STREAM.MSG.GET` or (for the last on a subject, half
    /// the time once a read found the stream) by `DIRECT.GET`, and
    /// records the read.
    pub(super) fn js_read(
        &mut self,
        now: u64,
        stream: &'static str,
        of: ReadOf,
        send: &mut Vec<u8>,
        ids: &mut MsgIds,
        hist: &mut History,
    ) {
        let reply = self.new_inbox();
        let st = &mut self.js_state().streams;
        let direct = st.rng.next_u32().is_multiple_of(2) && st.stream_seen;
        let (subject, body) = match &of {
            ReadOf::LastOf(key) if direct => {
                (format!("$JS.API.DIRECT.GET.{stream}.{key}"), String::new())
            }
            ReadOf::LastOf(key) => (
                format!("$JS.API.STREAM.MSG.GET.{stream}"),
                format!("{{\"last_by_subj\":\"{key}\"}}"),
            ),
            ReadOf::Seq(seq) => (
                format!("$JS.API.STREAM.MSG.GET.{stream}"),
                format!("{{\"seq\":{seq}}}"),
            ),
        };
        self.js_state().streams.reads.insert(reply.clone());
        let client = self.id;
        hist.push(
            now,
            Ev::JsRead {
                client,
                stream,
                of,
                reply: reply.clone(),
            },
        );
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_answers_name_the_sequence_found_or_its_absence() {
        let found =
            b"NATS/1.0\r\nNats-Stream: K\r\nNats-Subject: kv.k1\r\nNats-Sequence: 7\r\n\r\n";
        assert_eq!(direct_answer(found), ReadAnswer::Found(7));
        assert_eq!(
            direct_answer(b"NATS/1.0 404 Message Not Found\r\n\r\n"),
            ReadAnswer::NotFound
        );
        assert_eq!(
            direct_answer(b"NATS/1.0 408 Bad Request\r\n\r\n"),
            ReadAnswer::Other
        );
        let got = br#"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"kv.k1","seq":9}}"#;
        assert_eq!(msg_get_answer(got), ReadAnswer::Found(9));
        let none = br#"{"error":{"code":404,"err_code":10037,"description":"no message found"}}"#;
        assert_eq!(msg_get_answer(none), ReadAnswer::NotFound);
        let no_stream =
            br#"{"error":{"code":404,"err_code":10059,"description":"stream not found"}}"#;
        assert_eq!(msg_get_answer(no_stream), ReadAnswer::Other);
    }
}
