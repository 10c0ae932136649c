//! The one interface both stores implement. The file store is tested
//! against the memory store through it, and the executor drives either.

use crate::msg::{Corruption, Msg, Purge, StoreError, StreamConfig, StreamState, SubjectState};

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub last_seq: u64,
    /// Messages the limits pushed out to make room.
    pub removed: u64,
}

pub trait Store {
    fn config(&self) -> &StreamConfig;

    /// Stores messages in order; each sequence must exceed the last. When
    /// this returns they are in the page cache, not yet durable.
    fn append(&mut self, msgs: &[Msg]) -> Result<Appended, StoreError>;

    /// Makes every earlier append durable (one fsync for all of them) and
    /// returns the durable sequence.
    fn sync(&mut self) -> Result<u64, StoreError>;

    /// Every message with a sequence up to this one survives a crash.
    fn durable_seq(&self) -> u64;

    /// The message at `seq`; `Ok(None)` if there is none (deleted or never
    /// stored), `Err(Corrupt)` if its bytes are bad.
    fn get(&mut self, seq: u64) -> Result<Option<Msg>, StoreError>;

    /// The first message at or after `from_seq` whose subject matches.
    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: Option<&str>,
    ) -> Result<Option<Msg>, StoreError>;

    /// The first message at or after `from_seq` whose subject matches one
    /// of `filters` (two or more; `next_matching` serves one or none).
    fn next_matching_any(
        &mut self,
        from_seq: u64,
        filters: &[String],
    ) -> Result<Option<Msg>, StoreError>;

    /// How many messages at or after `from_seq` match one of `filters`.
    fn count_matching_any(&self, from_seq: u64, filters: &[String]) -> u64;

    /// Between `sequential(true)` and `sequential(false)` the store is
    /// only read, in ascending order: it may read ahead. Nothing may be
    /// written in between.
    fn sequential(&mut self, _on: bool) {}

    /// The newest message on a subject (key-value reads).
    fn last_by_subject(&mut self, subject: &str) -> Result<Option<Msg>, StoreError>;

    /// Deletes one message; false if it was not there.
    fn delete(&mut self, seq: u64) -> Result<bool, StoreError>;

    /// Returns how many messages the purge removed.
    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError>;

    /// Removes every message after `last_seq`, which becomes the last
    /// sequence (Raft log truncation). Returns how many were removed.
    fn truncate(&mut self, last_seq: u64) -> Result<u64, StoreError>;

    /// Removes messages older than `max_age_ms` at this wall-clock time.
    fn expire(&mut self, now_unix_nanos: u64) -> Result<u64, StoreError>;

    /// Reclaims the space of deleted messages; returns bytes reclaimed.
    fn compact(&mut self) -> Result<u64, StoreError>;

    /// Reads every stored record back and reports the damage found, which
    /// start-up reports from then on.
    fn scrub(&mut self) -> Result<Vec<Corruption>, StoreError>;

    fn state(&self) -> StreamState;

    fn subject_state(&self, subject: &str) -> Option<SubjectState>;

    /// Each subject matching `filter` with its message count, by subject.
    fn subjects_matching(&self, filter: &str) -> Vec<(String, u64)>;

    /// The gone sequences between the first and last live message.
    fn interior_deleted(&self) -> Vec<u64>;

    /// The first live message stored at or after `unix_nanos`.
    fn first_seq_at_time(&self, unix_nanos: u64) -> Option<u64>;

    /// How many live messages at or after `from_seq` match `filter`.
    fn count_matching_from(&self, from_seq: u64, filter: Option<&str>) -> u64;

    /// The last sequence (at or below `up_to_seq`) of each subject matching
    /// one of `filters`, in sequence order.
    fn last_per_subject(&self, filters: &[String], up_to_seq: u64) -> Vec<u64>;
}

/// Checks what every store refuses, before anything is written.
pub(crate) fn validate(msgs: &[Msg], mut last_seq: u64) -> Result<(), StoreError> {
    for m in msgs {
        if m.seq <= last_seq {
            return Err(StoreError::SeqNotAfter {
                seq: m.seq,
                last_seq,
            });
        }
        if m.subject.is_empty() || m.subject.len() > u16::MAX as usize {
            return Err(StoreError::Invalid("subject empty or over 64 KiB".into()));
        }
        if m.size_bytes() > crate::record::MAX_BODY_BYTES as u64 {
            return Err(StoreError::Invalid("message over 128 MiB".into()));
        }
        last_seq = m.seq;
    }
    Ok(())
}
