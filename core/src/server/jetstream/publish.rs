//! The durable publish path: a message on a stream's subject gets its
//! sequence, is checked against the `Nats-*` expectations and the limits,
//! is queued for the end-of-event append, and is acknowledged once a
//! completion reports it durable.

use std::collections::{BTreeMap, VecDeque};

use natrix_storage::Msg;
use natrix_storage::ops::{Completion, Done, StorageOp};
use serde::Serialize;

use super::config::Discard;
use super::error::ApiError;
use super::{Pending, StreamId, go_json};
use crate::proto::headers::Headers;
use crate::server::system::InternalMsg;
use crate::server::{AccountId, LogLevel, Server};

/// A publish waiting for the sync that covers it.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub seq: u64,
    pub account: AccountId,
    pub reply: Box<[u8]>,
    pub duplicate: bool,
}

/// The `Nats-Msg-Id`s stored within the duplicate window.
#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    seqs: BTreeMap<String, u64>,
    /// In the order stored: when, and which id.
    order: VecDeque<(u64, String)>,
}

impl Dedupe {
    /// Forgets ids stored more than `window_ns` before `now_ns`.
    fn expire(&mut self, now_ns: u64, window_ns: u64) {
        while let Some((at, _)) = self.order.front() {
            if at.saturating_add(window_ns) > now_ns {
                break;
            }
            let (_, id) = self.order.pop_front().expect("a front exists");
            self.seqs.remove(&id);
        }
    }

    fn insert(&mut self, id: String, seq: u64, now_ns: u64) {
        self.seqs.insert(id.clone(), seq);
        self.order.push_back((now_ns, id));
    }
}

/// A publish acknowledgement (`PubAck`), in nats-server's field order.
#[derive(Serialize)]
struct PubAck<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ApiError>,
    stream: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    seq: u64,
}

/// Headers nats-server reads on a publish to a stream.
const MSG_ID: &[u8] = b"Nats-Msg-Id";
const EXPECTED_STREAM: &[u8] = b"Nats-Expected-Stream";
const EXPECTED_LAST_SEQ: &[u8] = b"Nats-Expected-Last-Sequence";
const EXPECTED_LAST_MSG_ID: &[u8] = b"Nats-Expected-Last-Msg-Id";
/// Headers natrix does not act on yet: a publish carrying one is refused
/// rather than stored without the check or effect it asks for.
const NOT_YET: [&[u8]; 8] = [
    b"Nats-Expected-Last-Subject-Sequence",
    b"Nats-Rollup",
    b"Nats-TTL",
    b"Nats-Incr",
    b"Nats-Batch-Id",
    b"Nats-Schedule",
    b"Nats-Required-Api-Level",
    b"Nats-Expected-Last-Subject-Sequence-Subject",
];

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).trim().to_string()
}

impl Server {
    /// A message published on one of stream `id`'s subjects.
    pub(crate) fn stream_publish(&mut self, id: StreamId, m: &InternalMsg) {
        let Some(s) = self.jetstream.streams.get(id as usize) else {
            return; // deleted in this same event
        };
        let reply = m.reply.clone().filter(|_| !s.config.no_ack);
        let account = m.account;
        match self.check_publish(id, m) {
            Ok(Some(dup_seq)) => {
                if let Some(reply) = reply {
                    self.queue_ack(id, dup_seq, account, reply, true);
                }
            }
            Ok(None) => {
                let now = self.now.unix_nanos;
                let s = &mut self.jetstream.streams[id as usize];
                s.last_seq += 1;
                let seq = s.last_seq;
                let headers = m.payload[..m.header_len].to_vec();
                let msg = Msg {
                    seq,
                    ts_unix_nanos: now,
                    subject: String::from_utf8_lossy(&m.subject).into_owned(),
                    headers,
                    payload: m.body().to_vec(),
                };
                s.inflight_msgs += 1;
                s.inflight_bytes += msg.size_bytes();
                s.queued.push(msg);
                if let Some(msg_id) = msg_id(m) {
                    let window = u64::try_from(s.config.duplicate_window).unwrap_or(0);
                    s.dedupe.expire(now, window);
                    s.dedupe.insert(msg_id.clone(), seq, now);
                    s.last_msg_id = Some(msg_id);
                }
                if !self.jetstream.dirty.contains(&id) {
                    self.jetstream.dirty.push(id);
                }
                if let Some(reply) = reply {
                    self.queue_ack(id, seq, account, reply, false);
                }
            }
            Err(e) => {
                if let Some(reply) = reply {
                    let name = self.jetstream.streams[id as usize].config.name.clone();
                    self.send_pub_ack(account, &reply, &name, 0, Some(&e), false);
                }
            }
        }
    }

    /// What nats-server checks before it stores a message: `Ok(Some(seq))`
    /// for a duplicate of `seq`, `Ok(None)` to store it.
    fn check_publish(&mut self, id: StreamId, m: &InternalMsg) -> Result<Option<u64>, ApiError> {
        let now = self.now.unix_nanos;
        let s = &mut self.jetstream.streams[id as usize];
        if s.failed {
            return Err(ApiError::temporarily_unavailable());
        }
        if s.config.sealed {
            return Err(ApiError::sealed());
        }
        if s.config.max_msg_size > 0 && m.payload.len() as i64 > s.config.max_msg_size {
            return Err(ApiError::message_too_large());
        }
        if m.header_len > 0 {
            let headers = Headers::parse(&m.payload[..m.header_len]).ok();
            if let Some(h) = headers {
                if let Some(msg_id) = h.get(MSG_ID).map(text).filter(|t| !t.is_empty()) {
                    let window = u64::try_from(s.config.duplicate_window).unwrap_or(0);
                    s.dedupe.expire(now, window);
                    if let Some(&seq) = s.dedupe.seqs.get(&msg_id) {
                        return Ok(Some(seq));
                    }
                }
                if let Some(name) = h.get(EXPECTED_STREAM).map(text)
                    && !name.is_empty()
                    && name != s.config.name
                {
                    return Err(ApiError::stream_mismatch());
                }
                if let Some(seq) = h.get(EXPECTED_LAST_SEQ).map(text)
                    && let Ok(seq) = seq.parse::<u64>()
                    && seq != s.last_seq
                {
                    return Err(ApiError::wrong_last_sequence(s.last_seq));
                }
                if let Some(last) = h.get(EXPECTED_LAST_MSG_ID).map(text)
                    && !last.is_empty()
                    && Some(&last) != s.last_msg_id.as_ref()
                {
                    let current = s.last_msg_id.clone().unwrap_or_default();
                    return Err(ApiError::wrong_last_msg_id(&current));
                }
                if let Some(name) = NOT_YET.iter().find(|n| h.get(n).is_some()) {
                    return Err(ApiError::store_failed(&format!(
                        "natrix does not support the {} header yet",
                        String::from_utf8_lossy(name)
                    )));
                }
            }
        }
        if s.config.discard == Discard::New {
            let msgs = s.state.msgs + s.inflight_msgs;
            if s.config.max_msgs > 0 && msgs >= s.config.max_msgs as u64 {
                return Err(ApiError::store_failed("maximum messages exceeded"));
            }
            let bytes = s.state.bytes + s.inflight_bytes;
            if s.config.max_bytes > 0 && bytes + m.payload.len() as u64 > s.config.max_bytes as u64
            {
                return Err(ApiError::store_failed("maximum bytes exceeded"));
            }
        }
        Ok(None)
    }

    fn queue_ack(
        &mut self,
        id: StreamId,
        seq: u64,
        account: AccountId,
        reply: Box<[u8]>,
        duplicate: bool,
    ) {
        let s = &mut self.jetstream.streams[id as usize];
        s.acks.push_back(PendingAck {
            seq,
            account,
            reply,
            duplicate,
        });
        self.release_acks(id);
    }

    /// Sends the acknowledgements the stream's durable sequence covers.
    pub(crate) fn release_acks(&mut self, id: StreamId) {
        loop {
            let s = &mut self.jetstream.streams[id as usize];
            let covered = s.acks.front().is_some_and(|a| a.seq <= s.durable_seq);
            if !covered {
                return;
            }
            let ack = s.acks.pop_front().expect("a front exists");
            let name = s.config.name.clone();
            self.send_pub_ack(ack.account, &ack.reply, &name, ack.seq, None, ack.duplicate);
        }
    }

    pub(crate) fn send_pub_ack(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        seq: u64,
        error: Option<&ApiError>,
        duplicate: bool,
    ) {
        let domain = self
            .opts
            .jetstream
            .as_ref()
            .map(|j| j.domain.clone())
            .unwrap_or_default();
        let mut body = go_json(&PubAck {
            error,
            stream,
            domain: &domain,
            seq,
        });
        if duplicate {
            // nats-server writes this one field with a space.
            body.pop();
            body.extend_from_slice(b",\"duplicate\": true}");
        }
        self.publish_as_server(account, reply, None, &body);
    }

    /// A write of stream `id` failed: nothing not yet acknowledged will be,
    /// and the stream is reopened from what its disk really holds.
    pub(crate) fn write_failed(&mut self, id: StreamId, error: &str) {
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        if s.failed {
            return;
        }
        s.failed = true;
        let (name, key) = (s.config.name.clone(), s.key.clone());
        let acks = std::mem::take(&mut s.acks);
        let config = s.config.store_config();
        let line = format!("JetStream failed to store a message on stream {name:?}: {error}");
        self.log(LogLevel::Error, line);
        let e = ApiError::store_failed(error);
        for ack in acks {
            self.send_pub_ack(ack.account, &ack.reply, &name, 0, Some(&e), false);
        }
        let op = self.next_op(Pending::Reopened { stream: id });
        self.storage(StorageOp::Open {
            id: op,
            stream: key,
            config,
        });
    }

    pub(crate) fn reopened(&mut self, id: StreamId, c: &Completion) {
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        match &c.result {
            Ok(Done::Opened { state, .. }) => {
                s.last_seq = state.last_seq;
                s.durable_seq = state.last_seq;
                s.failed = false;
                let line = format!("JetStream stream {:?} reopened", s.config.name);
                self.log(LogLevel::Warn, line);
            }
            _ => {
                // Still failing: try again on the next failed write or
                // restart; publishes are refused meanwhile.
                let line = format!("JetStream could not reopen stream {:?}", s.config.name);
                self.log(LogLevel::Error, line);
            }
        }
    }
}

fn msg_id(m: &InternalMsg) -> Option<String> {
    if m.header_len == 0 {
        return None;
    }
    let h = Headers::parse(&m.payload[..m.header_len]).ok()?;
    h.get(MSG_ID).map(text).filter(|t| !t.is_empty())
}
