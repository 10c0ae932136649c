//! The values a store holds and reports: messages, limits, state, errors.

use crate::disk::DiskError;
use std::fmt;

/// A stored message. The stream sequence is chosen by the caller (the
/// core); the store only insists that it grows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub seq: u64,
    pub ts_unix_nanos: u64,
    pub subject: String,
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Msg {
    /// Bytes the message counts against `max_bytes`: its record size.
    pub fn size_bytes(&self) -> u64 {
        crate::record::msg_record_bytes(&self.subject, &self.headers, &self.payload)
    }
}

/// A stream's limits and file layout. `None` means unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    pub max_msgs: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_age_ms: Option<u64>,
    pub max_msgs_per_subject: Option<u64>,
    /// A block file is sealed and a new one started past this size.
    pub block_size_bytes: u64,
    /// Keep the messages in memory (lost at restart, by design); the
    /// stream's directory and metadata are on disk all the same.
    pub memory: bool,
    /// Write each message's headers and payload compressed (Snappy) when
    /// that makes its record smaller. Only new records: what is on disk
    /// stays as written, and reads take either. The memory store ignores it.
    pub compress: bool,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_msgs: None,
            max_bytes: None,
            max_age_ms: None,
            max_msgs_per_subject: None,
            block_size_bytes: 16 * 1024 * 1024,
            memory: false,
            compress: false,
        }
    }
}

/// What a stream holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    pub msgs: u64,
    pub bytes: u64,
    /// The lowest live sequence, or `last_seq + 1` when empty.
    pub first_seq: u64,
    pub last_seq: u64,
    pub num_subjects: u64,
    /// When the first and the last live message were stored (0: empty).
    pub first_ts_unix_nanos: u64,
    pub last_ts_unix_nanos: u64,
}

/// One subject's messages in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubjectState {
    pub msgs: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

/// Which messages a purge removes (nats-server's `PurgeEx`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purge {
    /// Only messages on subjects matching this filter (wildcards allowed).
    pub filter: Option<String>,
    /// Only messages below this sequence; past the end it moves the stream's
    /// first sequence forward.
    pub below_seq: Option<u64>,
    /// Keep this many of the newest (matching) messages.
    pub keep: Option<u64>,
}

/// A stretch of the log whose bytes failed their checksum: these sequences
/// are never served, and are reported instead. `block`, `offset` and
/// `bytes` are 0 when a read reports a range found at start-up. An empty
/// range (`first_seq > last_seq`) means the bad bytes lay between two
/// consecutive messages: no message was lost, but a delete may have been.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// Sequences that may have been stored there (inclusive).
    pub first_seq: u64,
    pub last_seq: u64,
    pub block: u32,
    pub offset: u64,
    pub bytes: u64,
}

/// A torn tail cut off the last block at start-up: the end of a write the
/// crash interrupted. Only sequences after `after_seq` can have been lost,
/// and only unsynced ones unless the disk lied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub block: u32,
    pub offset: u64,
    pub bytes: u64,
    pub after_seq: u64,
}

/// What opening a stream found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub blocks: u32,
    pub torn_tail: Option<TornTail>,
    pub corruption: Vec<Corruption>,
    /// Blocks whose index was missing or disagreed with the block, and was rebuilt.
    pub indexes_rebuilt: Vec<u32>,
    /// Leftover files of an interrupted compaction, removed.
    pub leftovers_removed: u32,
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The bytes for these sequences failed their checksum.
    Corrupt(Corruption),
    /// The disk failed; the operation did not happen. A failed sync leaves
    /// the store [`StoreError::Failed`] until it is reopened.
    Disk(DiskError),
    /// An earlier sync failed: what is durable is unknown until recovery.
    Failed,
    /// An append's sequence does not follow the stream's last sequence.
    SeqNotAfter { seq: u64, last_seq: u64 },
    /// A message too large or malformed to store (empty or long subject).
    Invalid(String),
    /// No such stream (executor).
    NoStream,
}

impl From<DiskError> for StoreError {
    fn from(e: DiskError) -> Self {
        StoreError::Disk(e)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for StoreError {}
