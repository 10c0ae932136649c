//! Per-message TTLs (`Nats-TTL`) and subject delete markers, as nats-server
//! 2.11+ has them.
//!
//! - **When.** A message published with a TTL to a stream that allows them
//!   is due `ttl` after it was stored. The core keeps every due time in one
//!   ordered set and one timer (`JsTtl`) for the earliest; the store keeps
//!   nothing but the header. After a restart the headers of the messages
//!   that can still be due are read back ([`StorageOp::RecentHeaders`]), as
//!   the duplicate window is.
//! - **Max age.** In a stream that allows TTLs the core applies `max_age`
//!   itself, not the store: a message whose TTL is `never` outlives it, and
//!   a removal may leave a marker. Each tick reads the oldest messages from
//!   where the last scan stopped (below it only `never` messages remain).
//! - **Markers.** With `subject_delete_marker_ttl`, a message removed by
//!   age or TTL that was the last of its subject is followed by an empty
//!   message on that subject with `Nats-Marker-Reason: MaxAge`, a `Nats-TTL`
//!   of the marker TTL and `Nats-Rollup: sub`, nats-server's exact header
//!   block. Markers themselves go without leaving one.
//! - **Removal.** The core decides; the store executes a `Delete`.

use std::collections::BTreeSet;
use std::time::Duration;

use natrix_storage::Msg;
use natrix_storage::ops::{Completion, Done, Read, StorageOp};

use super::config::StreamConfig;
use super::error::ApiError;
use super::{Pending, StreamId};
use crate::server::Server;
use crate::server::system::InternalMsg;
use crate::server::timers::ServerTimer;

/// The per-message TTL header.
const TTL: &[u8] = b"Nats-TTL";
/// Why a marker was left.
const MARKER_REASON: &[u8] = b"Nats-Marker-Reason";
/// Key-value purges count as markers too: no marker follows them.
const KV_OPERATION: &[u8] = b"KV-Operation";

/// Messages an age scan reads at once, and their bytes at most.
const SCAN_MSGS: usize = 256;
const SCAN_BYTES: u64 = 1 << 20;
/// The TTL timer is never armed further than this; it re-arms when it fires.
const TIMER_MAX: Duration = Duration::from_secs(24 * 3600);
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// What a `Nats-TTL` value asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsgTtl {
    /// `never`: the message outlives the stream's max age.
    Never,
    /// Removed this many seconds after it was stored.
    Secs(u64),
}

/// Parses a `Nats-TTL` value as nats-server 2.15 does: a Go duration of at
/// least one second (`30s`, `1h30m`, truncated to whole seconds), a whole
/// number of seconds, or `never` (any case). `Ok(None)`: no TTL (an empty
/// value, or a number that comes out as zero). `Err`: invalid (10165).
pub(crate) fn parse_ttl(value: &[u8]) -> Result<Option<MsgTtl>, ()> {
    let Ok(value) = std::str::from_utf8(value) else {
        return Err(());
    };
    if value.is_empty() {
        return Ok(None);
    }
    if value.eq_ignore_ascii_case("never") {
        return Ok(Some(MsgTtl::Never));
    }
    if let Some(nanos) = go_duration_nanos(value) {
        if nanos < NANOS_PER_SEC as i64 {
            return Err(());
        }
        return Ok(Some(MsgTtl::Secs(nanos as u64 / NANOS_PER_SEC)));
    }
    // Digits only, wrapping like Go's int64 arithmetic: a negative
    // result is invalid, zero means no TTL.
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let n = value.bytes().fold(0i64, |n, d| {
        n.wrapping_mul(10).wrapping_add(i64::from(d - b'0'))
    });
    match n {
        n if n < 0 => Err(()),
        0 => Ok(None),
        n => Ok(Some(MsgTtl::Secs(n as u64))),
    }
}

/// Go's `time.ParseDuration`, in nanoseconds; `None` where Go errs.
fn go_duration_nanos(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let whole_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let whole = &rest[..whole_len];
        rest = &rest[whole_len..];
        let mut fraction = "";
        if let Some(after) = rest.strip_prefix('.') {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            fraction = &after[..n];
            rest = &after[n..];
        }
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(unit)?)?;
        let (mut part, mut scale) = (0u128, 1u128);
        for d in fraction.bytes().take(20) {
            part = part * 10 + u128::from(d - b'0');
            scale *= 10;
        }
        total += part * unit / scale;
        if total > i64::MAX as u128 {
            return None;
        }
    }
    let total = total as i64;
    Some(if negative { -total } else { total })
}

/// Whole seconds as Go prints a `time.Duration`: `45s`, `5m0s`, `1h1m1s`.
fn go_duration_text(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A header's value as nats-server reads the ones it adds in 2.11+
/// (`sliceHeader`): the first line whose key is exactly `key`, the value
/// after the spaces that follow the `:`, up to the line's end (trailing
/// blanks kept, so that `3 ` is no number of seconds).
pub(crate) fn go_header<'a>(block: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut lines = block.split(|&b| b == b'\n').skip(1);
    lines.find_map(|line| {
        let line = line.strip_suffix(b"\r")?;
        let value = line.strip_prefix(key)?.strip_prefix(b":")?;
        let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
        Some(&value[start..])
    })
}

/// The TTL a header block carries, if valid.
fn header_ttl(headers: &[u8]) -> Option<MsgTtl> {
    parse_ttl(go_header(headers, TTL)?).ok().flatten()
}

/// Whether a stored message is a delete marker (nats-server's
/// `isSubjectDeleteMarker`): no marker is left when one goes.
fn is_marker(headers: &[u8]) -> bool {
    go_header(headers, MARKER_REASON).is_some_and(|v| !v.is_empty())
        || go_header(headers, KV_OPERATION) == Some(b"PURGE")
}

/// The marker TTL in whole seconds, zero without markers.
fn marker_secs(config: &StreamConfig) -> u64 {
    u64::try_from(config.subject_delete_marker_ttl).unwrap_or(0) / NANOS_PER_SEC
}

/// A publish's `Nats-TTL` where the stream does not allow TTLs: 10166
/// for a TTL (`never` included); an invalid value is left to
/// [`check_value`], which nats-server applies later.
pub(crate) fn check_allowed(headers: &[u8], config: &StreamConfig) -> Result<(), ApiError> {
    match go_header(headers, TTL).map(parse_ttl) {
        Some(Ok(Some(_))) if !config.allow_msg_ttl => Err(ApiError::new(
            400,
            10166,
            "per-message TTL is disabled".into(),
        )),
        _ => Ok(()),
    }
}

/// A publish's `Nats-TTL` value: 10165 unless valid.
pub(crate) fn check_value(headers: &[u8]) -> Result<(), ApiError> {
    match go_header(headers, TTL).map(parse_ttl) {
        Some(Err(())) => Err(ApiError::new(400, 10165, "invalid per-message TTL".into())),
        _ => Ok(()),
    }
}

/// The TTL in seconds a message is stored with (`None`: it does not
/// expire by TTL). With markers, a TTL shorter than the marker TTL is
/// raised to it (unless a subject keeps one message), and the header is
/// rewritten so (last, in whole seconds), as nats-server does: else a
/// marker could outlive what it marks.
pub(crate) fn stored_ttl(config: &StreamConfig, headers: &mut Vec<u8>) -> Option<u64> {
    if !config.allow_msg_ttl || headers.is_empty() {
        return None;
    }
    let MsgTtl::Secs(secs) = header_ttl(headers)? else {
        return None;
    };
    let floor = marker_secs(config);
    if floor == 0 || secs >= floor || config.max_msgs_per_subject == 1 {
        return Some(secs);
    }
    *headers = with_ttl(headers, floor);
    Some(floor)
}

/// `headers` without its `Nats-TTL` lines, then `Nats-TTL: <secs>`.
fn with_ttl(headers: &[u8], secs: u64) -> Vec<u8> {
    let body = headers.strip_suffix(b"\r\n\r\n").unwrap_or(headers);
    let mut out = Vec::with_capacity(headers.len() + 16);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if i > 0 && line.strip_prefix(TTL).is_some_and(|v| v.starts_with(b":")) {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Nats-TTL: {secs}\r\n\r\n").as_bytes());
    out
}

/// Where a stream is in the core-driven max-age removal.
#[derive(Debug, Default, Clone, Copy)]
struct AgeScan {
    /// The first sequence not looked at yet: below it, only messages that
    /// never expire are left.
    from_seq: u64,
    /// A read is in flight.
    busy: bool,
}

/// Every message with a TTL still to come due, and the age scans.
#[derive(Debug, Default)]
pub(crate) struct Ttls {
    /// `(due at, unix nanos; stream; sequence)`, earliest first.
    due: BTreeSet<(u64, StreamId, u64)>,
    scans: crate::FastMap<StreamId, AgeScan>,
    /// Subjects being checked for a marker.
    checks: crate::FastMap<(StreamId, String), Check>,
}

impl Ttls {
    /// Forgets a stream that is gone (its slot may be reused).
    pub(crate) fn forget(&mut self, id: StreamId) {
        self.due.retain(|&(_, s, _)| s != id);
        self.scans.remove(&id);
        self.checks.retain(|(s, _), _| *s != id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.due.len()
    }
}

/// A subject whose last message may have gone.
#[derive(Debug, Default)]
struct Check {
    /// Reads of the subject's last message in flight.
    reads: u32,
    /// One of them found it empty and left the marker (two removals on a
    /// subject leave one marker).
    marked: bool,
    /// The newest sequence removed: the marker's `Nats-Last-Sequence`
    /// where it is republished.
    removed_seq: u64,
}

/// A storage operation on the way to a removal or a marker.
#[derive(Debug)]
pub(crate) enum Step {
    /// Start-up: the headers of the messages whose TTL may still come due.
    Recover { stream: StreamId },
    /// A TTL came due in a stream with markers: the message, for its
    /// subject.
    Due { stream: StreamId, seq: u64 },
    /// The oldest messages of a stream whose max age the core applies.
    AgeScan { stream: StreamId },
    /// A message was deleted by age or TTL; if it was its subject's last,
    /// a marker follows.
    Deleted {
        stream: StreamId,
        subject: String,
        seq: u64,
    },
    /// Whether the subject holds a message still.
    SubjectLeft { stream: StreamId, subject: String },
}

impl Step {
    pub(crate) fn stream(&self) -> StreamId {
        match self {
            Step::Recover { stream }
            | Step::Due { stream, .. }
            | Step::AgeScan { stream }
            | Step::Deleted { stream, .. }
            | Step::SubjectLeft { stream, .. } => *stream,
        }
    }

    /// Start-up waits for this step.
    pub(crate) fn holds_start(&self) -> bool {
        matches!(self, Step::Recover { .. })
    }
}

impl Server {
    /// Remembers that message `seq`, stored at `stored_unix_nanos`, is due
    /// `secs` later.
    pub(crate) fn schedule_ttl(
        &mut self,
        id: StreamId,
        seq: u64,
        stored_unix_nanos: u64,
        secs: u64,
    ) {
        let at = stored_unix_nanos.saturating_add(secs.saturating_mul(NANOS_PER_SEC));
        self.jetstream.ttls.due.insert((at, id, seq));
        self.arm_ttl();
    }

    /// Arms the TTL timer for the earliest due message (or disarms it).
    fn arm_ttl(&mut self) {
        let at = self.jetstream.ttls.due.first().map(|&(at, _, _)| {
            let wait = Duration::from_nanos(at.saturating_sub(self.now.unix_nanos));
            self.now.instant + wait.min(TIMER_MAX)
        });
        self.set_server_deadline(ServerTimer::JsTtl, at);
    }

    /// Removes the messages whose TTL has come.
    pub(crate) fn ttl_timer(&mut self) {
        let now = self.now.unix_nanos;
        let mut retry = Vec::new();
        while let Some(&(at, id, seq)) = self.jetstream.ttls.due.first() {
            if at > now {
                break;
            }
            self.jetstream.ttls.due.pop_first();
            let Some(s) = self.jetstream.streams.get(id as usize) else {
                continue;
            };
            if s.failed {
                // Tried again once the stream is back.
                retry.push((now + NANOS_PER_SEC, id, seq));
                continue;
            }
            let key = s.key.clone();
            if marker_secs(&s.config) > 0 {
                let op = self.next_op(Pending::Ttl(Step::Due { stream: id, seq }));
                self.storage(StorageOp::Read {
                    id: op,
                    stream: key,
                    read: Read::Seq(seq),
                });
            } else {
                let op = self.next_op(Pending::Quiet);
                self.storage(StorageOp::Delete {
                    id: op,
                    stream: key,
                    seq,
                });
            }
        }
        self.jetstream.ttls.due.extend(retry);
        self.arm_ttl();
    }

    /// Start-up: asks for the headers of the messages whose TTL may still
    /// come due (all of them, or those younger than the max age), and
    /// holds start-up until they are back.
    pub(crate) fn rebuild_ttls(&mut self, id: StreamId) {
        let s = &self.jetstream.streams[id as usize];
        if !s.config.allow_msg_ttl || s.state.msgs == 0 {
            return;
        }
        let max_age = u64::try_from(s.config.max_age).unwrap_or(0);
        let since = if max_age > 0 {
            self.now.unix_nanos.saturating_sub(max_age)
        } else {
            0
        };
        let key = s.key.clone();
        self.jetstream.recovering += 1;
        let op = self.next_op(Pending::Ttl(Step::Recover { stream: id }));
        self.storage(StorageOp::RecentHeaders {
            id: op,
            stream: key,
            since_unix_nanos: since,
        });
    }

    /// Asks each stream that allows TTLs and has a max age for its oldest
    /// messages (the JsExpire tick; the store applies max age to the
    /// others).
    pub(crate) fn scan_ages(&mut self) {
        let due: Vec<StreamId> = self
            .jetstream
            .streams
            .iter()
            .filter(|(_, s)| s.config.allow_msg_ttl && s.config.max_age > 0 && !s.failed)
            .map(|(k, _)| k as StreamId)
            .collect();
        for id in due {
            let scan = self.jetstream.ttls.scans.entry(id).or_default();
            if !scan.busy {
                self.read_oldest(id);
            }
        }
    }

    fn read_oldest(&mut self, id: StreamId) {
        let s = &self.jetstream.streams[id as usize];
        let key = s.key.clone();
        let first = s.state.first_seq;
        let scan = self.jetstream.ttls.scans.entry(id).or_default();
        scan.busy = true;
        let from_seq = scan.from_seq.max(first);
        let op = self.next_op(Pending::Ttl(Step::AgeScan { stream: id }));
        self.storage(StorageOp::ReadBatch {
            id: op,
            stream: key,
            from_seq,
            filters: Vec::new(),
            max_msgs: SCAN_MSGS,
            max_bytes: SCAN_BYTES,
        });
    }

    /// A storage step of a removal completed.
    pub(crate) fn ttl_step(&mut self, step: Step, c: &Completion) {
        match step {
            Step::Recover { stream } => self.ttls_recovered(stream, c),
            Step::Due { stream, seq } => {
                if let Ok(Done::Read(Some(m))) = &c.result
                    && m.seq == seq
                {
                    self.remove_expired(stream, m);
                }
            }
            Step::AgeScan { stream } => self.ages_scanned(stream, c),
            Step::Deleted {
                stream,
                subject,
                seq,
            } => {
                if matches!(c.result, Ok(Done::Deleted(true))) {
                    // Publishes queued in this event go first: a subject
                    // they fill again gets no marker.
                    self.flush_stream(stream);
                    let key = self.jetstream.streams[stream as usize].key.clone();
                    let read = Read::LastBySubject(subject.clone());
                    let check = (stream, subject.clone());
                    let check = self.jetstream.ttls.checks.entry(check).or_default();
                    check.reads += 1;
                    check.removed_seq = check.removed_seq.max(seq);
                    let op = self.next_op(Pending::Ttl(Step::SubjectLeft { stream, subject }));
                    self.storage(StorageOp::Read {
                        id: op,
                        stream: key,
                        read,
                    });
                }
            }
            Step::SubjectLeft { stream, subject } => {
                let empty = matches!(c.result, Ok(Done::Read(None)));
                let checks = &mut self.jetstream.ttls.checks;
                let key = (stream, subject);
                let Some(check) = checks.get_mut(&key) else {
                    return;
                };
                check.reads -= 1;
                let mark = empty && !check.marked;
                check.marked |= mark;
                let removed_seq = check.removed_seq;
                if check.reads == 0 {
                    checks.remove(&key);
                }
                if mark {
                    self.store_marker(stream, key.1, removed_seq);
                }
            }
        }
    }

    fn ttls_recovered(&mut self, id: StreamId, c: &Completion) {
        self.jetstream.recovering -= 1;
        if let Ok(Done::RecentHeaders(recent)) = &c.result {
            for (seq, at, headers) in recent {
                if let Some(MsgTtl::Secs(secs)) = header_ttl(headers) {
                    self.schedule_ttl(id, *seq, *at, secs);
                }
            }
        }
        self.check_ready();
    }

    /// The oldest messages of a stream: those past the max age go (but
    /// those that never expire), and the scan goes on while the whole
    /// batch was old.
    fn ages_scanned(&mut self, id: StreamId, c: &Completion) {
        let s = &self.jetstream.streams[id as usize];
        let max_age = u64::try_from(s.config.max_age).unwrap_or(0);
        let cutoff = self.now.unix_nanos.saturating_sub(max_age);
        let scan = self.jetstream.ttls.scans.entry(id).or_default();
        scan.busy = false;
        let Ok(Done::Batch { msgs, pending }) = &c.result else {
            return;
        };
        let mut old = Vec::new();
        let mut all_old = max_age > 0;
        for m in msgs {
            if m.ts_unix_nanos > cutoff {
                all_old = false;
                break;
            }
            scan.from_seq = m.seq + 1;
            if header_ttl(&m.headers) != Some(MsgTtl::Never) {
                old.push(m);
            }
        }
        let more = all_old && *pending > 0;
        for m in old {
            self.remove_expired(id, m);
        }
        if more {
            self.read_oldest(id);
        }
    }

    /// Deletes a message past its age or TTL; with markers, finds out
    /// whether it was the last of its subject.
    fn remove_expired(&mut self, id: StreamId, m: &Msg) {
        let s = &self.jetstream.streams[id as usize];
        let key = s.key.clone();
        let pending = if marker_secs(&s.config) > 0 && !is_marker(&m.headers) {
            Pending::Ttl(Step::Deleted {
                stream: id,
                subject: m.subject.clone(),
                seq: m.seq,
            })
        } else {
            Pending::Quiet
        };
        let op = self.next_op(pending);
        self.storage(StorageOp::Delete {
            id: op,
            stream: key,
            seq: m.seq,
        });
    }

    /// Stores the marker of a subject whose last message (`removed_seq`)
    /// went by age or TTL, like a publish (appended at the end of the
    /// event, republished) but with no one to acknowledge.
    fn store_marker(&mut self, id: StreamId, subject: String, removed_seq: u64) {
        let now = self.now.unix_nanos;
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        let secs = marker_secs(&s.config);
        if secs == 0 || s.failed || s.config.sealed {
            return;
        }
        let headers = format!(
            "NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: {}\r\nNats-Rollup: sub\r\n\r\n",
            go_duration_text(secs)
        );
        s.last_seq += 1;
        let seq = s.last_seq;
        let msg = Msg {
            seq,
            ts_unix_nanos: now,
            subject,
            headers: headers.into_bytes(),
            payload: Vec::new(),
        };
        s.inflight_msgs += 1;
        s.inflight_bytes += msg.size_bytes();
        if let Some(last) = s.last_by_subject.get_mut(&msg.subject) {
            *last = seq;
        }
        // A marker holds no total: an increment after it reads the store.
        s.counters.remove(&msg.subject);
        let copy = InternalMsg {
            account: s.account,
            subject: msg.subject.as_bytes().into(),
            reply: None,
            payload: msg.headers.clone().into(),
            header_len: msg.headers.len(),
            from: None,
        };
        s.queued.push(msg);
        if !self.jetstream.dirty.contains(&id) {
            self.jetstream.dirty.push(id);
        }
        self.schedule_ttl(id, seq, now, secs);
        self.queue_republish(id, (seq, removed_seq), now, &copy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_values_parse_as_nats_server_parses_them() {
        let secs = |n| Ok(Some(MsgTtl::Secs(n)));
        for (value, want) in [
            ("1s", secs(1)),
            ("5m", secs(300)),
            ("1h30m", secs(5400)),
            ("1.5s", secs(1)),
            ("1000ms", secs(1)),
            ("1m1s", secs(61)),
            ("2", secs(2)),
            ("never", Ok(Some(MsgTtl::Never))),
            ("NEVER", Ok(Some(MsgTtl::Never))),
            ("", Ok(None)),
            ("00", Ok(None)),
            ("18446744073709551616", Ok(None)),
            ("0", Err(())),
            ("0s", Err(())),
            ("500ms", Err(())),
            ("1us", Err(())),
            ("-1", Err(())),
            ("-5", Err(())),
            ("-5s", Err(())),
            ("+5", Err(())),
            ("abc", Err(())),
            ("1d", Err(())),
            ("2.5", Err(())),
            ("0x10", Err(())),
            ("1e3", Err(())),
            (".s", Err(())),
        ] {
            assert_eq!(parse_ttl(value.as_bytes()), want, "{value:?}");
        }
    }

    #[test]
    fn marker_ttls_print_as_go_durations() {
        assert_eq!(go_duration_text(1), "1s");
        assert_eq!(go_duration_text(300), "5m0s");
        assert_eq!(go_duration_text(3661), "1h1m1s");
        assert_eq!(go_duration_text(7200), "2h0m0s");
    }

    #[test]
    fn a_short_ttl_is_raised_to_the_marker_ttl_in_the_header() {
        let config: StreamConfig = serde_json::from_str(
            r#"{"name":"S","allow_msg_ttl":true,"subject_delete_marker_ttl":5000000000}"#,
        )
        .unwrap();
        let mut headers = b"NATS/1.0\r\nNats-TTL: 1s\r\nNats-Msg-Id: q\r\n\r\n".to_vec();
        assert_eq!(stored_ttl(&config, &mut headers), Some(5));
        assert_eq!(
            headers,
            b"NATS/1.0\r\nNats-Msg-Id: q\r\nNats-TTL: 5\r\n\r\n"
        );
        let mut long = b"NATS/1.0\r\nNats-TTL: 1m\r\n\r\n".to_vec();
        assert_eq!(stored_ttl(&config, &mut long), Some(60));
        assert_eq!(long, b"NATS/1.0\r\nNats-TTL: 1m\r\n\r\n");
        let mut never = b"NATS/1.0\r\nNats-TTL: never\r\n\r\n".to_vec();
        assert_eq!(stored_ttl(&config, &mut never), None);
        // A subject that keeps one message needs no floor.
        let one = StreamConfig {
            max_msgs_per_subject: 1,
            ..config
        };
        let mut short = b"NATS/1.0\r\nNats-TTL: 2\r\n\r\n".to_vec();
        assert_eq!(stored_ttl(&one, &mut short), Some(2));
        assert_eq!(short, b"NATS/1.0\r\nNats-TTL: 2\r\n\r\n");
    }

    #[test]
    fn markers_and_kv_purges_leave_no_marker() {
        assert!(is_marker(
            b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1s\r\n\r\n"
        ));
        assert!(is_marker(b"NATS/1.0\r\nKV-Operation: PURGE\r\n\r\n"));
        assert!(!is_marker(b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"));
        assert!(!is_marker(b""));
    }

    #[test]
    fn headers_are_read_as_nats_server_reads_them() {
        let block = b"NATS/1.0\r\nnats-ttl: 9\r\nNats-TTL:  3 \r\nNats-TTL: 4\r\n\r\n";
        // Exact key, the first one, leading spaces skipped, trailing kept.
        assert_eq!(go_header(block, TTL), Some(&b"3 "[..]));
        assert_eq!(parse_ttl(b"3 "), Err(()));
        assert_eq!(go_header(b"NATS/1.0\r\nX-Nats-TTL: 1\r\n\r\n", TTL), None);
        assert_eq!(go_header(b"NATS/1.0\r\nNats-TTLX: 1\r\n\r\n", TTL), None);
        assert_eq!(
            go_header(b"NATS/1.0\r\nNats-TTL:\r\n\r\n", TTL),
            Some(&b""[..])
        );
        assert_eq!(go_header(b"", TTL), None);
    }
}
