//! Atomic batch publish (`allow_atomic`): messages carrying
//! `Nats-Batch-Id` and `Nats-Batch-Sequence` are staged in the core,
//! unseen by the stream, until the one carrying `Nats-Batch-Commit`
//! arrives; then the whole batch is checked and, only if every message
//! passes, given its sequences and appended as one storage operation.
//! A batch left without a message for [`BATCH_IDLE`] is dropped.
//!
//! Staged messages are held in memory, bounded by the batch limits
//! below and by [`STAGED_BYTES_MAX`] across the server.

use std::collections::BTreeMap;
use std::time::Duration;

use super::StreamId;
use super::error::ApiError;
use super::publish::AckNote;
use crate::proto::headers::Headers;
use crate::server::Server;
use crate::server::system::InternalMsg;
use crate::server::timers::ServerTimer;
use crate::time::Instant;

pub(super) const BATCH_ID: &[u8] = b"Nats-Batch-Id";
pub(super) const BATCH_SEQUENCE: &[u8] = b"Nats-Batch-Sequence";
pub(super) const BATCH_COMMIT: &[u8] = b"Nats-Batch-Commit";

/// nats-server's limits: the id's length, messages in a batch, open
/// batches per stream and per server, and the idle time before an open
/// batch is dropped.
pub(crate) const BATCH_ID_MAX: usize = 64;
pub(crate) const BATCH_MSGS_MAX: u64 = 1000;
pub(crate) const OPEN_PER_STREAM_MAX: usize = 50;
pub(crate) const OPEN_TOTAL_MAX: usize = 1000;
pub(crate) const BATCH_IDLE: Duration = Duration::from_secs(10);
/// natrix's own bound on what all open batches hold (nats-server stages
/// them in files): past it a batch is refused as incomplete.
pub(crate) const STAGED_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Headers nats-server's atomic batches refuse.
const UNSUPPORTED: [&str; 1] = ["Nats-Expected-Last-Msg-Id"];

/// A committed batch waiting for the store's last sequences of the
/// subjects its messages check (`Nats-Expected-Last-Subject-Sequence`).
#[derive(Debug)]
pub(crate) struct WaitingCommit {
    batch_id: String,
    staged: Vec<InternalMsg>,
    reply: Option<Box<[u8]>>,
    /// The store's answers so far, by subject.
    answers: BTreeMap<String, u64>,
    reads_left: usize,
    failed: Option<String>,
}

/// The open batches of every stream.
#[derive(Debug, Default)]
pub(crate) struct Batches {
    open: BTreeMap<(StreamId, String), Batch>,
    staged_bytes: usize,
}

#[derive(Debug)]
struct Batch {
    staged: Vec<InternalMsg>,
    idle_until: Instant,
}

impl Batches {
    /// Drops a removed stream's batches.
    pub(crate) fn forget(&mut self, id: StreamId) {
        let gone: Vec<_> = self
            .open
            .range((id, String::new())..)
            .take_while(|(k, _)| k.0 == id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.discard(&key);
        }
    }

    fn discard(&mut self, key: &(StreamId, String)) -> Option<Batch> {
        let b = self.open.remove(key)?;
        self.staged_bytes -= staged_bytes(&b.staged);
        Some(b)
    }

    fn open_on(&self, id: StreamId) -> usize {
        self.open
            .range((id, String::new())..)
            .take_while(|(k, _)| k.0 == id)
            .count()
    }
}

fn staged_bytes(staged: &[InternalMsg]) -> usize {
    staged.iter().map(|m| m.payload.len()).sum()
}

/// How a message says it belongs to a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BatchPart {
    pub id: String,
    /// `None` when missing or not a number.
    pub seq: Option<u64>,
    pub commit: Commit,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) enum Commit {
    No,
    /// `1`: this message ends the batch.
    Last,
    /// `eob`: the batch ends before this message, which is not stored.
    EndOfBatch,
    Invalid,
}

/// The batch a message's headers put it in, if any (an empty id is none).
pub(crate) fn batch_part(m: &InternalMsg) -> Option<BatchPart> {
    if m.header_len == 0 {
        return None;
    }
    let h = Headers::parse(&m.payload[..m.header_len]).ok()?;
    let id = String::from_utf8_lossy(h.get(BATCH_ID)?).trim().to_string();
    if id.is_empty() {
        return None;
    }
    let seq = h.get(BATCH_SEQUENCE).and_then(parse_digits);
    let commit = match h.get(BATCH_COMMIT).map(|v| v.trim_ascii()) {
        None => Commit::No,
        Some(b"1") => Commit::Last,
        Some(b"eob") => Commit::EndOfBatch,
        Some(_) => Commit::Invalid,
    };
    Some(BatchPart { id, seq, commit })
}

/// A decimal number of digits only (no sign), as nats-server reads it.
pub(super) fn parse_digits(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn incomplete() -> ApiError {
    ApiError::new(400, 10176, "atomic publish batch is incomplete".into())
}

fn too_large() -> ApiError {
    ApiError::new(
        400,
        10199,
        format!("atomic publish batch is too large: {BATCH_MSGS_MAX}"),
    )
}

fn unsupported(header: &str) -> ApiError {
    ApiError::new(
        400,
        10177,
        format!("atomic publish unsupported header used: {header}"),
    )
}

fn duplicate_id() -> ApiError {
    ApiError::new(
        400,
        10201,
        "atomic publish batch contains duplicate message id".into(),
    )
}

/// Its size as nats-server counts it: an `eob` message is no message.
fn size_of(seq: u64, commit: Commit) -> u64 {
    if commit == Commit::EndOfBatch {
        seq.saturating_sub(1)
    } else {
        seq
    }
}

impl Server {
    /// A message of batch `part` on stream `id` (its subject transformed).
    pub(crate) fn batch_publish(&mut self, id: StreamId, m: InternalMsg, part: BatchPart) {
        let Some(s) = self.jetstream.streams.get(id as usize) else {
            return;
        };
        let reply = m.reply.clone().filter(|_| !s.config.no_ack);
        let account = m.account;
        match self.stage(id, m, part) {
            Ok(None) => {
                if let Some(reply) = reply {
                    // Staged: an empty answer, as nats-server gives.
                    self.publish_as_server(account, &reply, None, b"");
                }
            }
            Ok(Some((batch_id, staged))) => self.commit_batch(id, batch_id, staged, reply),
            Err((e, account)) => {
                if let Some(reply) = reply {
                    let name = self.jetstream.streams[id as usize].config.name.clone();
                    self.send_pub_ack(account, &reply, &name, 0, Some(&e), AckNote::Plain);
                }
            }
        }
    }

    /// Stages the message; the whole batch when it commits.
    #[allow(clippy::type_complexity)]
    fn stage(
        &mut self,
        id: StreamId,
        m: InternalMsg,
        part: BatchPart,
    ) -> Result<Option<(String, Vec<InternalMsg>)>, (ApiError, crate::server::AccountId)> {
        let account = m.account;
        let s = &self.jetstream.streams[id as usize];
        let fail = |e| Err((e, account));
        if s.config.sealed {
            return fail(ApiError::sealed());
        }
        if s.config.max_msg_size > 0 && m.payload.len() as i64 > s.config.max_msg_size {
            return fail(ApiError::message_too_large());
        }
        if !s.config.allow_atomic {
            return fail(ApiError::new(
                400,
                10174,
                "atomic publish is disabled".into(),
            ));
        }
        if part.id.len() > BATCH_ID_MAX {
            return fail(ApiError::new(
                400,
                10179,
                "atomic publish batch ID is invalid".into(),
            ));
        }
        let Some(seq) = part.seq else {
            return fail(ApiError::new(
                400,
                10175,
                "atomic publish sequence is missing".into(),
            ));
        };
        let key = (id, part.id);
        let batches = &mut self.jetstream.batches;
        if !batches.open.contains_key(&key) {
            if seq != 1 {
                if size_of(seq, part.commit) > BATCH_MSGS_MAX {
                    return fail(too_large());
                }
                return fail(incomplete());
            }
            if batches.open_on(id) >= OPEN_PER_STREAM_MAX || batches.open.len() >= OPEN_TOTAL_MAX {
                return fail(ApiError::new(
                    429,
                    10210,
                    "atomic publish too many inflight".into(),
                ));
            }
            let idle_until = self.now.instant;
            batches.open.insert(
                key.clone(),
                Batch {
                    staged: Vec::new(),
                    idle_until,
                },
            );
        }
        if part.commit == Commit::Invalid {
            batches.discard(&key);
            return fail(ApiError::new(
                400,
                10200,
                "atomic publish batch commit is invalid".into(),
            ));
        }
        // The level a batch message requires is checked, and the header
        // is not stored.
        let mut m = m;
        if m.header_len > 0 && super::level::refused(&m.payload[..m.header_len]) {
            batches.discard(&key);
            self.arm_batch_timer();
            return fail(super::level::required_level());
        }
        let level = super::level::REQUIRED_API_LEVEL;
        if m.header_len > 0
            && super::ttl::go_header(&m.payload[..m.header_len], level)
                .is_some_and(|v| !v.is_empty())
        {
            m = without_header(m, level);
        }
        let b = batches.open.get_mut(&key).expect("opened above");
        let next = b.staged.len() as u64 + 1;
        if seq != next || (seq == 1 && part.commit == Commit::EndOfBatch) {
            batches.discard(&key);
            self.arm_batch_timer();
            return fail(incomplete());
        }
        if size_of(seq, part.commit) > BATCH_MSGS_MAX {
            batches.discard(&key);
            self.arm_batch_timer();
            return fail(too_large());
        }
        if part.commit != Commit::EndOfBatch {
            if batches.staged_bytes + m.payload.len() > STAGED_BYTES_MAX {
                batches.discard(&key);
                self.arm_batch_timer();
                return fail(incomplete());
            }
            batches.staged_bytes += m.payload.len();
            let b = batches.open.get_mut(&key).expect("opened above");
            b.staged.push(m);
        }
        if part.commit == Commit::No {
            let b = batches.open.get_mut(&key).expect("opened above");
            b.idle_until = self.now.instant + BATCH_IDLE;
            self.arm_batch_timer();
            return Ok(None);
        }
        let b = batches.discard(&key).expect("opened above");
        self.arm_batch_timer();
        let mut staged = b.staged;
        if part.commit == Commit::EndOfBatch
            && let Some(last) = staged.last_mut()
        {
            // The last stored message says it ends the batch.
            *last = with_commit_header(last);
        }
        Ok(Some((key.1, staged)))
    }

    /// Checks every staged message as it would be checked in its place
    /// in the stream, then stores them all, or refuses them all.
    fn commit_batch(
        &mut self,
        id: StreamId,
        batch_id: String,
        staged: Vec<InternalMsg>,
        reply: Option<Box<[u8]>>,
    ) {
        let waiting = WaitingCommit {
            batch_id,
            staged,
            reply,
            answers: BTreeMap::new(),
            reads_left: 0,
            failed: None,
        };
        self.try_commit(id, waiting);
    }

    /// Commits the batch if the last sequence of every subject it checks
    /// is known; else asks the store, and waits (publishes after it are
    /// parked meanwhile).
    fn try_commit(&mut self, id: StreamId, mut w: WaitingCommit) {
        let unknown = self.unknown_subjects(id, &w);
        if !unknown.is_empty() {
            self.flush_stream(id);
            let key = self.jetstream.streams[id as usize].key.clone();
            w.reads_left = unknown.len();
            for subject in unknown {
                let pending = super::Pending::BatchSubject {
                    stream: id,
                    subject: subject.clone(),
                };
                let op = self.next_op(pending);
                self.storage(natrix_storage::ops::StorageOp::Read {
                    id: op,
                    stream: key.clone(),
                    read: natrix_storage::ops::Read::LastBySubject(subject),
                });
            }
            self.jetstream.streams[id as usize].batch_waiting = Some(w);
            return;
        }
        let lasts = self.subject_lasts(id, &w);
        self.commit_checked(id, w, &lasts);
    }

    /// The subjects the batch checks whose last sequence is not known
    /// (those an earlier message of the batch writes need none).
    fn unknown_subjects(&self, id: StreamId, w: &WaitingCommit) -> Vec<String> {
        let s = &self.jetstream.streams[id as usize];
        let mut unknown: Vec<String> = Vec::new();
        for (i, m) in w.staged.iter().enumerate() {
            let Some(subject) = super::publish::subject_check(m) else {
                continue;
            };
            let written = w.staged[..i]
                .iter()
                .any(|e| *e.subject == *subject.as_bytes());
            let known =
                s.last_by_subject.contains_key(&subject) || w.answers.contains_key(&subject);
            if !written && !known && !unknown.contains(&subject) {
                unknown.push(subject);
            }
        }
        unknown
    }

    /// For each staged message, the last sequence of the subject it checks
    /// (`None`: no check, or a subject an earlier message writes).
    fn subject_lasts(&self, id: StreamId, w: &WaitingCommit) -> Vec<Option<u64>> {
        let s = &self.jetstream.streams[id as usize];
        w.staged
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let subject = super::publish::subject_check(m)?;
                if w.staged[..i]
                    .iter()
                    .any(|e| *e.subject == *subject.as_bytes())
                {
                    return None;
                }
                s.last_by_subject
                    .get(&subject)
                    .or(w.answers.get(&subject))
                    .copied()
            })
            .collect()
    }

    /// The store answered one of a waiting batch's subjects.
    pub(crate) fn batch_subject_read(
        &mut self,
        id: StreamId,
        subject: String,
        c: &natrix_storage::ops::Completion,
    ) {
        let Some(w) = self.jetstream.streams[id as usize].batch_waiting.as_mut() else {
            return;
        };
        match &c.result {
            Ok(natrix_storage::ops::Done::Read(m)) => {
                w.answers.insert(subject, m.as_ref().map_or(0, |m| m.seq));
            }
            Ok(other) => w.failed = Some(format!("unexpected storage result {other:?}")),
            Err(e) => w.failed = Some(e.to_string()),
        }
        w.reads_left -= 1;
        if w.reads_left > 0 {
            return;
        }
        let s = &mut self.jetstream.streams[id as usize];
        let w = s.batch_waiting.take().expect("waiting above");
        match w.failed.clone() {
            Some(e) => {
                let account = w.staged.last().map_or(s.account, |m| m.account);
                let name = s.config.name.clone();
                if let Some(reply) = &w.reply {
                    let e = ApiError::store_failed(&e);
                    self.send_pub_ack(account, reply, &name, 0, Some(&e), AckNote::Plain);
                }
            }
            None => self.try_commit(id, w),
        }
        self.drain_parked(id);
    }

    /// Checks the batch (`lasts`: each message's subject check answer) and
    /// stores it, or answers why not.
    fn commit_checked(&mut self, id: StreamId, w: WaitingCommit, lasts: &[Option<u64>]) {
        let WaitingCommit {
            batch_id,
            staged,
            reply,
            ..
        } = w;
        let account = staged
            .last()
            .map_or(self.jetstream.streams[id as usize].account, |m| m.account);
        if let Err(e) = self.check_batch(id, &staged, lasts) {
            if let Some(reply) = reply {
                let name = self.jetstream.streams[id as usize].config.name.clone();
                self.send_pub_ack(account, &reply, &name, 0, Some(&e), AckNote::Plain);
            }
            return;
        }
        let count = staged.len() as u64;
        let last = staged.len().saturating_sub(1);
        for (i, mut m) in staged.into_iter().enumerate() {
            // Only the commit is answered, once the whole batch is synced
            // (one append: its sync covers every message).
            m.reply = None;
            if i < last {
                self.store_checked(id, &m, None);
            } else {
                let note = AckNote::Batch {
                    id: batch_id.clone(),
                    count,
                };
                m.reply = reply.clone();
                self.store_checked(id, &m, Some(note));
            }
        }
    }

    /// Stores a message of a checked batch.
    fn store_checked(&mut self, id: StreamId, m: &InternalMsg, note: Option<AckNote>) {
        if let Some(e) = self.store_batch_msg(id, m, note) {
            // The checks before ran the same checks on the same state.
            self.log(
                crate::server::LogLevel::Error,
                format!("atomic batch message refused after its batch was checked: {e:?}"),
            );
        }
    }

    /// nats-server's checks of each message of a committing batch, on the
    /// stream as it will be when the messages before it are stored.
    fn check_batch(
        &mut self,
        id: StreamId,
        staged: &[InternalMsg],
        lasts: &[Option<u64>],
    ) -> Result<(), ApiError> {
        let s = &self.jetstream.streams[id as usize];
        if s.config.allow_msg_counter {
            return Err(unsupported("Nats-Incr"));
        }
        let (last_seq, msgs, bytes) = (s.last_seq, s.inflight_msgs, s.inflight_bytes);
        let mut ids = std::collections::BTreeSet::new();
        let mut added_bytes = 0;
        let mut result = Ok(());
        for (i, m) in staged.iter().enumerate() {
            let headers = Headers::parse(&m.payload[..m.header_len]).ok();
            if let Some(h) = &headers
                && let Some(name) = UNSUPPORTED.iter().find(|n| {
                    h.get(n.as_bytes())
                        .is_some_and(|v| !v.trim_ascii().is_empty())
                })
            {
                result = Err(unsupported(name));
                break;
            }
            if let Some(msg_id) = super::publish::header_msg_id(&m.payload[..m.header_len])
                && !ids.insert(msg_id)
            {
                result = Err(duplicate_id());
                break;
            }
            let s = &mut self.jetstream.streams[id as usize];
            s.last_seq = last_seq + i as u64;
            s.inflight_msgs = msgs + i as u64;
            s.inflight_bytes = bytes + added_bytes;
            let last = lasts.get(i).copied().flatten();
            let verdict = self.check_message(id, m, last);
            let s = &mut self.jetstream.streams[id as usize];
            (s.last_seq, s.inflight_msgs, s.inflight_bytes) = (last_seq, msgs, bytes);
            match verdict {
                // Only the first message may expect a last sequence.
                Ok(false) if i > 0 && expects_last_seq(headers.as_ref()) => {
                    result = Err(ApiError::new(400, 10164, "wrong last sequence".into()));
                    break;
                }
                // A subject an earlier message of the batch writes cannot
                // be checked.
                Ok(false) if last.is_none() && super::publish::subject_check(m).is_some() => {
                    result = Err(ApiError::new(400, 10164, "wrong last sequence".into()));
                    break;
                }
                Ok(false) => added_bytes += m.payload.len() as u64,
                Ok(true) => {
                    result = Err(duplicate_id());
                    break;
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        result
    }

    /// Arms the batch timer for the batch idle the longest (or disarms it).
    fn arm_batch_timer(&mut self) {
        let at = self
            .jetstream
            .batches
            .open
            .values()
            .map(|b| b.idle_until)
            .min();
        self.set_server_deadline(ServerTimer::JsBatch, at);
    }

    /// Drops the batches idle too long.
    pub(crate) fn batch_timer(&mut self) {
        let now = self.now.instant;
        let idle: Vec<_> = self
            .jetstream
            .batches
            .open
            .iter()
            .filter(|(_, b)| b.idle_until <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in idle {
            self.jetstream.batches.discard(&key);
        }
        self.arm_batch_timer();
    }
}

/// Whether the headers carry a `Nats-Expected-Last-Sequence` (a number).
fn expects_last_seq(headers: Option<&Headers>) -> bool {
    headers
        .and_then(|h| h.get(b"Nats-Expected-Last-Sequence"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| v.trim().parse::<u64>().is_ok())
}

/// The message without the header lines named `name` (exactly).
fn without_header(m: InternalMsg, name: &[u8]) -> InternalMsg {
    let headers = &m.payload[..m.header_len];
    let named =
        |line: &[u8]| line.len() > name.len() && line.starts_with(name) && line[name.len()] == b':';
    if !headers.split(|&b| b == b'\n').any(named) {
        return m;
    }
    let mut new = Vec::with_capacity(m.payload.len());
    for line in headers.split_inclusive(|&b| b == b'\n') {
        if !named(line) {
            new.extend_from_slice(line);
        }
    }
    let header_len = new.len();
    new.extend_from_slice(m.body());
    InternalMsg {
        payload: new.into(),
        header_len,
        ..m
    }
}

/// The message with `Nats-Batch-Commit: 1` added to its headers.
fn with_commit_header(m: &InternalMsg) -> InternalMsg {
    let headers = &m.payload[..m.header_len];
    // A header block ends with an empty line; the new header goes before it.
    let cut = headers.len().saturating_sub(2);
    let mut new = Vec::with_capacity(m.payload.len() + 24);
    new.extend_from_slice(&headers[..cut]);
    new.extend_from_slice(b"Nats-Batch-Commit: 1\r\n\r\n");
    let header_len = new.len();
    new.extend_from_slice(m.body());
    InternalMsg {
        account: m.account,
        subject: m.subject.clone(),
        reply: None,
        payload: new.into(),
        header_len,
        from: m.from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_digits_only() {
        assert_eq!(parse_digits(b"01"), Some(1));
        assert_eq!(parse_digits(b" 7 "), Some(7));
        assert_eq!(parse_digits(b"+1"), None);
        assert_eq!(parse_digits(b"-1"), None);
        assert_eq!(parse_digits(b""), None);
        assert_eq!(parse_digits(b"99999999999999999999999"), None);
        assert_eq!(parse_digits(b"\xff"), None);
    }

    #[test]
    fn a_header_is_removed_by_its_exact_name() {
        let block = "NATS/1.0\r\nA: 1\r\nNats-Required-Api-Level: 1\r\nNats-Required-Api-Level-X: 2\r\n\r\n";
        let payload = format!("{block}body");
        let m = InternalMsg {
            account: crate::server::AccountId(0),
            subject: b"s".to_vec().into(),
            reply: None,
            payload: payload.into_bytes().into(),
            header_len: block.len(),
            from: None,
        };
        let m = without_header(m, b"Nats-Required-Api-Level");
        let expected = "NATS/1.0\r\nA: 1\r\nNats-Required-Api-Level-X: 2\r\n\r\n";
        assert_eq!(&m.payload[..m.header_len], expected.as_bytes());
        assert_eq!(m.body(), b"body");
    }

    #[test]
    fn an_eob_commit_is_not_counted() {
        assert_eq!(size_of(1001, Commit::EndOfBatch), 1000);
        assert_eq!(size_of(1001, Commit::Last), 1001);
        assert_eq!(size_of(0, Commit::EndOfBatch), 0);
    }
}
