//! The durable publish path: a message on a stream's subject gets its
//! sequence, is checked against the `Nats-*` expectations and the limits,
//! is queued for the end-of-event append, and is acknowledged once a
//! completion reports it durable.

use std::collections::VecDeque;

use natrix_storage::Msg;
use natrix_storage::ops::{Completion, Done, StorageOp};
use serde::Serialize;

use super::config::Discard;
use super::counter::{self, Counted, Incr, Tally};
use super::error::ApiError;
use super::{Pending, StreamId, go_json, origin_headers};
use crate::proto::headers::Headers;
use crate::server::system::InternalMsg;
use crate::server::{AccountId, LogLevel, Server};

/// A publish waiting for the sync that covers it.
#[derive(Debug)]
pub(crate) struct PendingAck {
    pub seq: u64,
    pub account: AccountId,
    pub reply: Box<[u8]>,
    pub note: AckNote,
}

/// What a positive acknowledgement says besides the stream and sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AckNote {
    Plain,
    /// The message was a duplicate of the one at the sequence.
    Duplicate,
    /// A counter stream's new total on the subject.
    Total(String),
    /// The commit of an atomic batch: its id and how many messages it
    /// stored.
    Batch {
        id: String,
        count: u64,
    },
}

/// What the checks decided about a publish.
enum Verdict {
    /// A duplicate of the message at this sequence.
    Duplicate(u64),
    /// To be stored; on a counter stream, as the message its increment
    /// makes.
    Store(Option<Counted>),
}

/// A republished copy: its subject, headers and payload.
pub(crate) type Copy = (Box<[u8]>, Vec<u8>, Vec<u8>);

/// The `Nats-Msg-Id`s stored within the duplicate window.
#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    seqs: crate::FastMap<String, u64>,
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

    /// Forgets the ids of messages after `last_seq` (a failed write:
    /// they were never stored, so a retry must be stored, not deduped).
    pub(crate) fn forget_after(&mut self, last_seq: u64) {
        self.seqs.retain(|_, seq| *seq <= last_seq);
        let seqs = &self.seqs;
        self.order.retain(|(_, id)| seqs.contains_key(id));
    }

    pub(crate) fn insert(&mut self, id: String, seq: u64, now_ns: u64) {
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
    #[serde(skip_serializing_if = "Option::is_none")]
    val: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

/// Headers nats-server reads on a publish to a stream.
const MSG_ID: &[u8] = b"Nats-Msg-Id";
const EXPECTED_STREAM: &[u8] = b"Nats-Expected-Stream";
const EXPECTED_LAST_SEQ: &[u8] = b"Nats-Expected-Last-Sequence";
const EXPECTED_LAST_MSG_ID: &[u8] = b"Nats-Expected-Last-Msg-Id";
const EXPECTED_LAST_SUBJECT_SEQ: &[u8] = b"Nats-Expected-Last-Subject-Sequence";
const EXPECTED_LAST_SUBJECT_SEQ_SUBJECT: &[u8] = b"Nats-Expected-Last-Subject-Sequence-Subject";
const ROLLUP: &[u8] = b"Nats-Rollup";
/// Headers natrix does not act on yet: a publish carrying one is refused
/// rather than stored without the check or effect it asks for.
/// (`Nats-Required-Api-Level` is stored as it came: nats-server checks it
/// only on batch publishes. A `Nats-Batch-Id` reaches here empty, which
/// is no batch, or on a batch's checked messages.)
const NOT_YET: [&[u8]; 1] = [b"Nats-Schedule"];

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).trim().to_string()
}

impl Server {
    /// A message published on one of stream `id`'s subjects. Messages
    /// are handled in arrival order: while one waits for a check against
    /// the store, those after it wait too.
    pub(crate) fn stream_publish(&mut self, id: StreamId, mut m: InternalMsg) {
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return; // deleted in this same event
        };
        // The transform comes before everything else: checks, limits and
        // the stored message see the new subject.
        if let Some(t) = &s.transform
            && crate::subject::matches(t.source().as_bytes(), &m.subject)
        {
            m.subject = t.apply(&m.subject).into();
        }
        if super::source::carries_source_header(&m.payload[..m.header_len]) {
            return self.refuse_source_header(id, &m); // source.rs
        }
        let s = &mut self.jetstream.streams[id as usize];
        if !s.parked.is_empty() || s.batch_waiting.is_some() {
            s.parked.push_back(m);
            return;
        }
        if let Some(part) = super::batch::batch_part(&m) {
            return self.batch_publish(id, m, part); // batch.rs
        }
        match lookup(s, &m) {
            Lookup::None => _ = self.store_publish(id, &m, None),
            Lookup::Known(last) => _ = self.store_publish(id, &m, Some(last)),
            Lookup::Ask(subject) => {
                s.parked.push_back(m);
                self.check_subject(id, subject);
            }
            Lookup::Count(subject) => {
                s.parked.push_back(m);
                self.count_subject(id, subject);
            }
        }
    }

    /// Asks the store how many messages `subject` holds, after every
    /// append asked for so far (discard new per subject).
    fn count_subject(&mut self, id: StreamId, subject: String) {
        self.flush_stream(id);
        let key = self.jetstream.streams[id as usize].key.clone();
        let op = self.next_op(Pending::SubjectCounted {
            stream: id,
            subject: subject.clone(),
        });
        self.storage(StorageOp::Details {
            id: op,
            stream: key,
            subjects_filter: Some(subject),
            deleted: false,
        });
    }

    /// The store counted the first parked publish's subject: its checks
    /// take the count, then the parked publishes go on.
    pub(crate) fn subject_counted(&mut self, id: StreamId, subject: String, c: &Completion) {
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        match &c.result {
            Ok(Done::Details { subjects, .. }) => {
                let n = subjects
                    .iter()
                    .find(|(x, _)| *x == subject)
                    .map_or(0, |&(_, n)| n);
                s.subject_count = Some((subject, n));
            }
            other => {
                let e = match other {
                    Err(e) => e.to_string(),
                    Ok(other) => format!("unexpected storage result {other:?}"),
                };
                if let Some(first) = s.parked.pop_front() {
                    self.refuse_parked(id, &first, &e);
                }
            }
        }
        self.drain_parked(id);
    }

    /// Asks the store for the last sequence on `subject`, after every
    /// append asked for so far.
    fn check_subject(&mut self, id: StreamId, subject: String) {
        self.flush_stream(id);
        let key = self.jetstream.streams[id as usize].key.clone();
        let op = self.next_op(Pending::SubjectChecked {
            stream: id,
            subject: subject.clone(),
        });
        self.storage(StorageOp::Read {
            id: op,
            stream: key,
            read: natrix_storage::ops::Read::LastBySubject(subject),
        });
    }

    /// The store answered the check the first parked message waits for:
    /// handle it, then the messages after it, up to the next that needs a
    /// check.
    pub(crate) fn subject_checked(&mut self, id: StreamId, subject: String, c: &Completion) {
        let last = match &c.result {
            Ok(Done::Read(m)) => Ok(m.as_ref()),
            Ok(other) => Err(format!("unexpected storage result {other:?}")),
            Err(e) => Err(e.to_string()),
        };
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        let Some(first) = s.parked.pop_front() else {
            return;
        };
        match last {
            Ok(last) => {
                let seq = last.map_or(0, |m| m.seq);
                if crate::subject::is_literal(subject.as_bytes()) {
                    if s.config.allow_msg_counter {
                        s.counters.insert(subject.clone(), tally_of(last));
                    }
                    remember_last(s, subject, seq);
                }
                _ = self.store_publish(id, &first, Some(seq));
            }
            Err(e) => self.refuse_parked(id, &first, &e),
        }
        self.drain_parked(id);
    }

    /// The store read a parked publish waited for failed: it is refused
    /// with the store's error.
    fn refuse_parked(&mut self, id: StreamId, m: &InternalMsg, error: &str) {
        let name = self.jetstream.streams[id as usize].config.name.clone();
        if let Some(reply) = m.reply.as_deref() {
            let e = ApiError::store_failed(error);
            self.send_pub_ack(m.account, reply, &name, 0, Some(&e), AckNote::Plain);
        }
    }

    /// Handles the parked publishes in order, up to the next that needs
    /// a store read.
    pub(super) fn drain_parked(&mut self, id: StreamId) {
        while let Some(s) = self.jetstream.streams.get_mut(id as usize) {
            if s.batch_waiting.is_some() {
                break;
            }
            let Some(next) = s.parked.pop_front() else {
                break;
            };
            if let Some(part) = super::batch::batch_part(&next) {
                self.batch_publish(id, next, part);
                continue;
            }
            match lookup(s, &next) {
                Lookup::None => _ = self.store_publish(id, &next, None),
                Lookup::Known(last) => _ = self.store_publish(id, &next, Some(last)),
                Lookup::Ask(subject) => {
                    s.parked.push_front(next);
                    self.check_subject(id, subject);
                    break;
                }
                Lookup::Count(subject) => {
                    s.parked.push_front(next);
                    self.count_subject(id, subject);
                    break;
                }
            }
        }
    }

    /// Checks and stores one message (`last_subject_seq`: the store's
    /// answer for the subject check, when the message asked for one);
    /// the error it was refused with, if it was (sources retry on it).
    pub(super) fn store_publish(
        &mut self,
        id: StreamId,
        m: &InternalMsg,
        last_subject_seq: Option<u64>,
    ) -> Option<ApiError> {
        self.store_noted(id, m, last_subject_seq, None)
    }

    /// Stores a message of a checked atomic batch; the commit's
    /// acknowledgement says `note`.
    pub(super) fn store_batch_msg(
        &mut self,
        id: StreamId,
        m: &InternalMsg,
        note: Option<AckNote>,
    ) -> Option<ApiError> {
        self.store_noted(id, m, None, note)
    }

    /// The checks alone: whether the message is a duplicate, or why it
    /// would be refused.
    pub(super) fn check_message(
        &mut self,
        id: StreamId,
        m: &InternalMsg,
        last_subject_seq: Option<u64>,
    ) -> Result<bool, ApiError> {
        self.check_publish(id, m, last_subject_seq)
            .map(|v| matches!(v, Verdict::Duplicate(_)))
    }

    fn store_noted(
        &mut self,
        id: StreamId,
        m: &InternalMsg,
        last_subject_seq: Option<u64>,
        batch_note: Option<AckNote>,
    ) -> Option<ApiError> {
        let s = self.jetstream.streams.get(id as usize)?;
        let reply = m.reply.clone().filter(|_| !s.config.no_ack);
        let account = m.account;
        match self.check_publish(id, m, last_subject_seq) {
            Ok(Verdict::Duplicate(dup_seq)) => {
                if let Some(reply) = reply {
                    self.queue_ack(id, dup_seq, account, reply, AckNote::Duplicate);
                }
            }
            Ok(Verdict::Store(counted)) => {
                let now = self.now.unix_nanos;
                let s = &mut self.jetstream.streams[id as usize];
                s.last_seq += 1;
                let seq = s.last_seq;
                let headers = m.payload[..m.header_len].to_vec();
                let mut msg = Msg {
                    seq,
                    ts_unix_nanos: now,
                    subject: String::from_utf8_lossy(&m.subject).into_owned(),
                    headers,
                    payload: m.body().to_vec(),
                };
                let counter_rewrote = counted.is_some();
                let note = match counted {
                    Some(counted) => {
                        (msg.headers, msg.payload) = (counted.headers, counted.body);
                        let note = AckNote::Total(counted.total.to_string());
                        remember_tally(s, &msg.subject, counted.tally);
                        note
                    }
                    None => batch_note.unwrap_or(AckNote::Plain),
                };
                let ttl = super::ttl::stored_ttl(&s.config, &mut msg.headers);
                // A republished copy shows the headers as stored.
                let ttl_rewrote = ttl.is_some() && msg.headers[..] != m.payload[..m.header_len];
                let rewritten = (counter_rewrote || ttl_rewrote).then(|| InternalMsg {
                    payload: [&msg.headers[..], &msg.payload[..]].concat().into(),
                    header_len: msg.headers.len(),
                    subject: m.subject.clone(),
                    reply: None,
                    account,
                    from: None,
                });
                s.inflight_msgs += 1;
                s.inflight_bytes += msg.size_bytes();
                let rollup = rollup(m);
                let subject = msg.subject.clone();
                let prev = s.last_by_subject.get(&subject).copied();
                if let Some(last) = s.last_by_subject.get_mut(&subject) {
                    *last = seq;
                }
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
                if let Some(all) = rollup {
                    // Everything older on the subject (or in the stream)
                    // goes with this message's append, under its sync.
                    s.rollups.push(natrix_storage::Purge {
                        filter: (!all).then_some(subject),
                        below_seq: Some(seq),
                        keep: None,
                    });
                }
                if let Some(secs) = ttl {
                    self.schedule_ttl(id, seq, now, secs);
                }
                let prev = prev.or(last_subject_seq).unwrap_or(0);
                // Planted bug (mutation suite only): consumers get it before it is durable.
                if self.planted(crate::config::PlantedBug::DeliverUndurable) {
                    self.deliver_undurable(id);
                }
                self.queue_republish(id, (seq, prev), now, rewritten.as_ref().unwrap_or(m));
                if let Some(reply) = reply {
                    self.queue_ack(id, seq, account, reply, note);
                }
            }
            Err(e) => {
                if let Some(reply) = reply {
                    let name = self.jetstream.streams[id as usize].config.name.clone();
                    self.send_pub_ack(account, &reply, &name, 0, Some(&e), AckNote::Plain);
                }
                return Some(e);
            }
        }
        None
    }

    /// What nats-server checks before it stores a message, in its order.
    fn check_publish(
        &mut self,
        id: StreamId,
        m: &InternalMsg,
        last_subject_seq: Option<u64>,
    ) -> Result<Verdict, ApiError> {
        let now = self.now.unix_nanos;
        let s = &mut self.jetstream.streams[id as usize];
        // The subject's count read for this publish (discard new per
        // subject), taken whatever the outcome: the next publish counts
        // again.
        let subject_count = s.subject_count.take();
        if s.failed {
            return Err(ApiError::temporarily_unavailable());
        }
        if s.config.sealed {
            return Err(ApiError::sealed());
        }
        let own = &m.payload[..m.header_len];
        let sourced = super::source::carries_source_header(own);
        let incr = counter::check_incr(own, m.body(), &s.config, sourced)?;
        // An increment's size is checked on the message it makes.
        let counted = matches!(incr, Incr::Apply(_));
        if !counted && s.config.max_msg_size > 0 && m.payload.len() as i64 > s.config.max_msg_size {
            return Err(ApiError::message_too_large());
        }
        if m.header_len > 0 {
            let headers = Headers::parse(&m.payload[..m.header_len]).ok();
            if let Some(h) = headers {
                if let Some(msg_id) = h.get(MSG_ID).map(text).filter(|t| !t.is_empty()) {
                    let window = u64::try_from(s.config.duplicate_window).unwrap_or(0);
                    s.dedupe.expire(now, window);
                    if let Some(&seq) = s.dedupe.seqs.get(&msg_id) {
                        return Ok(Verdict::Duplicate(seq));
                    }
                }
                if let Some(name) = h.get(EXPECTED_STREAM).map(text)
                    && !name.is_empty()
                    && name != s.config.name
                {
                    return Err(ApiError::stream_mismatch());
                }
                super::ttl::check_allowed(&m.payload[..m.header_len], &s.config)?;
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
                if let (Some(want), Some(last)) =
                    (h.get(EXPECTED_LAST_SUBJECT_SEQ).map(text), last_subject_seq)
                    && let Ok(want) = want.parse::<u64>()
                    && want != last
                {
                    return Err(ApiError::wrong_last_sequence(last));
                }
                if let Some(value) = h.get(ROLLUP).map(text) {
                    if !s.config.allow_rollup_hdrs || s.config.deny_purge {
                        return Err(ApiError::rollup_failed("rollup not permitted"));
                    }
                    if value != "sub" && value != "all" {
                        return Err(ApiError::rollup_failed(&format!(
                            "rollup value invalid: {value:?}"
                        )));
                    }
                }
                super::ttl::check_value(&m.payload[..m.header_len])?;
                if let Some(name) = NOT_YET.iter().find(|n| h.get(n).is_some()) {
                    return Err(ApiError::store_failed(&format!(
                        "natrix does not support the {} header yet",
                        String::from_utf8_lossy(name)
                    )));
                }
            }
        }
        let account = s.account;
        let memory = s.config.storage == super::config::Storage::Memory;
        let l = self.js_limits(account);
        let limit = if memory { l.max_memory } else { l.max_store };
        if limit >= 0 {
            let used: u64 = self
                .jetstream
                .streams
                .iter()
                .map(|(_, t)| t)
                .filter(|t| {
                    t.account == account
                        && (t.config.storage == super::config::Storage::Memory) == memory
                })
                .map(|t| t.state.bytes + t.inflight_bytes)
                .sum();
            if used as i64 + m.payload.len() as i64 > limit {
                return Err(ApiError::new(
                    400,
                    10002,
                    "resource limits exceeded for account".into(),
                ));
            }
        }
        let s = &mut self.jetstream.streams[id as usize];
        // The subject holds its most already: the message replaces its
        // oldest, so the stream does not grow.
        let at_subject_limit = subject_count.is_some_and(|(subject, n)| {
            subject.as_bytes() == &m.subject[..]
                && n >= s.config.max_msgs_per_subject.unsigned_abs()
        });
        if at_subject_limit && s.config.discard_new_per_subject && rollup(m).is_none() {
            return Err(ApiError::store_failed(
                "maximum messages per subject exceeded",
            ));
        }
        if s.config.discard == Discard::New && !at_subject_limit {
            if at_stream_limit(s, m, Limit::Msgs) {
                return Err(ApiError::store_failed("maximum messages exceeded"));
            }
            if at_stream_limit(s, m, Limit::Bytes) {
                return Err(ApiError::store_failed("maximum bytes exceeded"));
            }
        }
        if !s.config.allow_msg_counter {
            return Ok(Verdict::Store(None));
        }
        let counted = match incr {
            Incr::None => return Err(counter::incr_missing()),
            Incr::Apply(incr) => counter::count_local(self.tally(id, m)?, &incr, own),
            Incr::Verbatim => {
                let origin = super::source::origin_of(own, &m.subject);
                let origin = (origin.0.as_str(), origin.1.as_str());
                counter::count_sourced(self.tally(id, m)?, origin, own, m.body())
                    .ok_or_else(counter::counter_broken)?
            }
        };
        let size = counted.headers.len() + counted.body.len();
        let too_large = |max: i64| max > 0 && size as i64 > max;
        let s = &self.jetstream.streams[id as usize];
        if too_large(s.config.max_msg_size) || too_large(i64::from(self.opts.max_payload)) {
            return Err(ApiError::message_too_large());
        }
        Ok(Verdict::Store(Some(counted)))
    }

    /// The tally of the message's subject, as the lookup before the
    /// checks (or the source feed) read it.
    fn tally(&self, id: StreamId, m: &InternalMsg) -> Result<&Tally, ApiError> {
        let s = &self.jetstream.streams[id as usize];
        match s.counters.get(&String::from_utf8_lossy(&m.subject)) {
            Some(Some(tally)) => Ok(tally),
            Some(None) => Err(counter::counter_broken()),
            None => Err(ApiError::store_failed("counter total not loaded")),
        }
    }

    fn queue_ack(
        &mut self,
        id: StreamId,
        seq: u64,
        account: AccountId,
        reply: Box<[u8]>,
        note: AckNote,
    ) {
        let s = &mut self.jetstream.streams[id as usize];
        s.acks.hold(
            seq,
            PendingAck {
                seq,
                account,
                reply,
                note,
            },
        );
        self.release_acks(id);
    }

    /// Holds the republished copy of message `seq` until it is durable
    /// (nats-server sends it at once; natrix republishes only what it
    /// would acknowledge).
    pub(super) fn queue_republish(
        &mut self,
        id: StreamId,
        (seq, last): (u64, u64),
        at: u64,
        m: &InternalMsg,
    ) {
        let s = &mut self.jetstream.streams[id as usize];
        let Some(t) = &s.republish else {
            return;
        };
        if !crate::subject::matches(t.source().as_bytes(), &m.subject) {
            return;
        }
        // The copy names the subject's sequence before this one; from now
        // on the subject's last is known.
        let subject = String::from_utf8_lossy(&m.subject).into_owned();
        let dest: Box<[u8]> = t.apply(&m.subject).into();
        remember_last(s, subject.clone(), seq);
        let body = m.body();
        let headers_only = s.config.republish.as_ref().is_some_and(|r| r.headers_only);
        let mut extra = format!("Nats-Last-Sequence: {last}\r\n");
        if headers_only {
            extra.push_str(&format!("Nats-Msg-Size: {}\r\n", body.len()));
        }
        let own = &m.payload[..m.header_len];
        let headers = origin_headers(own, &s.config.name, (&subject, seq, at), &extra);
        let payload = if headers_only {
            Vec::new()
        } else {
            body.to_vec()
        };
        s.republish_queue.hold(seq, (dest, headers, payload));
    }

    /// Sends the acknowledgements (and republished copies) the stream's
    /// durable sequence covers.
    pub(crate) fn release_acks(&mut self, id: StreamId) {
        let s = &mut self.jetstream.streams[id as usize];
        let account = s.account;
        let copies = s.republish_queue.release(s.durable_seq);
        for (subject, headers, payload) in copies {
            self.publish_as_server(account, &subject, Some(&headers), &payload);
        }
        let s = &mut self.jetstream.streams[id as usize];
        let ready = s.acks.release(s.durable_seq);
        if ready.is_empty() {
            return;
        }
        let name = s.config.name.clone();
        for ack in ready {
            self.send_pub_ack(ack.account, &ack.reply, &name, ack.seq, None, ack.note);
        }
    }

    pub(crate) fn send_pub_ack(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        seq: u64,
        error: Option<&ApiError>,
        note: AckNote,
    ) {
        let domain = self
            .opts
            .jetstream
            .as_ref()
            .map(|j| j.domain.clone())
            .unwrap_or_default();
        let val = match &note {
            AckNote::Total(total) => Some(total.as_str()),
            _ => None,
        };
        let (batch, count) = match &note {
            AckNote::Batch { id, count } => (Some(id.as_str()), Some(*count)),
            _ => (None, None),
        };
        let mut body = go_json(&PubAck {
            error,
            stream,
            domain: &domain,
            seq,
            val,
            batch,
            count,
        });
        if note == AckNote::Duplicate {
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
        let acks = s.acks.release(u64::MAX);
        // Copies of messages that may not be stored are never sent.
        let _ = s.republish_queue.release(u64::MAX);
        let config = s.config.store_config();
        let line = format!("JetStream failed to store a message on stream {name:?}: {error}");
        self.log(LogLevel::Error, line);
        let e = ApiError::store_failed(error);
        for ack in acks {
            self.send_pub_ack(ack.account, &ack.reply, &name, 0, Some(&e), AckNote::Plain);
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
                s.dedupe.forget_after(state.last_seq);
                s.last_by_subject.clear();
                // Totals given to publishes that failed were never stored.
                s.counters.clear();
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

/// The subject whose last sequence the message expects, if it expects one
/// (`Nats-Expected-Last-Subject-Sequence`, on its own subject unless
/// `…-Subject` names another).
pub(super) fn subject_check(m: &InternalMsg) -> Option<String> {
    if m.header_len == 0 {
        return None;
    }
    let h = Headers::parse(&m.payload[..m.header_len]).ok()?;
    h.get(EXPECTED_LAST_SUBJECT_SEQ)?;
    let subject = h
        .get(EXPECTED_LAST_SUBJECT_SEQ_SUBJECT)
        .map(text)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| String::from_utf8_lossy(&m.subject).into_owned());
    Some(subject)
}

/// What handling a message needs to know about its subject's last
/// sequence first.
enum Lookup {
    None,
    /// Known already (a subject seen before and nothing removed since).
    Known(u64),
    /// To be read from the store.
    Ask(String),
    /// The subject's count of messages, to be read from the store first.
    Count(String),
}

/// Whether a publish must know how many messages its subject holds:
/// discard new per subject (a roll-up passes: it makes room itself).
/// It also must with `discard: new` when the stream is full: a subject
/// at its own limit still takes the message, as its oldest goes (a full
/// key-value bucket still takes an update of a key at its history).
fn counts_subject(s: &super::Stream, m: &InternalMsg) -> bool {
    s.config.discard == Discard::New
        && s.config.max_msgs_per_subject > 0
        && ((s.config.discard_new_per_subject && rollup(m).is_none())
            || at_stream_limit(s, m, Limit::Msgs)
            || at_stream_limit(s, m, Limit::Bytes))
}

#[derive(Clone, Copy)]
enum Limit {
    Msgs,
    Bytes,
}

/// Whether the stream, appends in flight included, has no room for `m`
/// under its `max_msgs` or its `max_bytes`.
fn at_stream_limit(s: &super::Stream, m: &InternalMsg, limit: Limit) -> bool {
    match limit {
        Limit::Msgs => {
            s.config.max_msgs > 0 && s.state.msgs + s.inflight_msgs >= s.config.max_msgs as u64
        }
        Limit::Bytes => {
            s.config.max_bytes > 0
                && s.state.bytes + s.inflight_bytes + m.payload.len() as u64
                    > s.config.max_bytes as u64
        }
    }
}

/// Subjects whose last sequence a stream remembers, at most; past it the
/// memory starts over (and the store is asked again).
const LAST_BY_SUBJECT_MAX: usize = 100_000;

/// Keeps a subject's new tally for the increments after it, unless a
/// stream-wide limit may remove the subject's last message with the
/// append (the tally must then be read back from the store).
fn remember_tally(s: &mut super::Stream, subject: &str, tally: Option<Tally>) {
    if s.config.max_msgs > 0 || s.config.max_bytes > 0 {
        s.counters.remove(subject);
        return;
    }
    s.counters.insert(subject.to_owned(), tally);
}

/// The tally a subject's last message (if any) holds: nothing counted
/// without one.
pub(super) fn tally_of(last: Option<&natrix_storage::Msg>) -> Option<Tally> {
    last.map_or(Some(Tally::default()), |m| {
        counter::stored_tally(&m.headers, &m.payload)
    })
}

pub(super) fn remember_last(s: &mut super::Stream, subject: String, seq: u64) {
    if s.last_by_subject.len() >= LAST_BY_SUBJECT_MAX && !s.last_by_subject.contains_key(&subject) {
        s.last_by_subject.clear();
    }
    s.last_by_subject.insert(subject, seq);
}

/// Whether the message needs its subject's last sequence: for a
/// subject-sequence check (`Nats-Expected-Last-Subject-Sequence`), or to
/// republish it (`Nats-Last-Sequence`); or, an increment, the subject's
/// counter total.
fn lookup(s: &super::Stream, m: &InternalMsg) -> Lookup {
    if counts_subject(s, m)
        && s.subject_count
            .as_ref()
            .is_none_or(|(subject, _)| subject.as_bytes() != &m.subject[..])
    {
        return Lookup::Count(String::from_utf8_lossy(&m.subject).into_owned());
    }
    if s.config.allow_msg_counter
        && m.header_len > 0
        && counter::check_incr(&m.payload[..m.header_len], m.body(), &s.config, false)
            .is_ok_and(|incr| matches!(incr, Incr::Apply(_)))
    {
        let subject = String::from_utf8_lossy(&m.subject).into_owned();
        if !s.counters.contains(&subject) {
            return Lookup::Ask(subject);
        }
    }
    let subject = match subject_check(m) {
        Some(subject) => subject,
        None => match &s.republish {
            Some(t) if crate::subject::matches(t.source().as_bytes(), &m.subject) => {
                String::from_utf8_lossy(&m.subject).into_owned()
            }
            _ => return Lookup::None,
        },
    };
    match s.last_by_subject.get(&subject) {
        Some(&last) => Lookup::Known(last),
        None => Lookup::Ask(subject),
    }
}

/// `Nats-Rollup`: `Some(true)` for `all`, `Some(false)` for `sub`.
fn rollup(m: &InternalMsg) -> Option<bool> {
    if m.header_len == 0 {
        return None;
    }
    let h = Headers::parse(&m.payload[..m.header_len]).ok()?;
    match text(h.get(ROLLUP)?).as_str() {
        "all" => Some(true),
        "sub" => Some(false),
        _ => None,
    }
}

fn msg_id(m: &InternalMsg) -> Option<String> {
    if m.header_len == 0 {
        return None;
    }
    header_msg_id(&m.payload[..m.header_len])
}

/// The `Nats-Msg-Id` of a header block, if it has one.
pub(crate) fn header_msg_id(headers: &[u8]) -> Option<String> {
    let h = Headers::parse(headers).ok()?;
    h.get(MSG_ID).map(text).filter(|t| !t.is_empty())
}
