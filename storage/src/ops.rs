//! The storage operations the core emits and the completions it gets back.
//!
//! The core never touches a disk: it emits a [`StorageOp`] with an
//! [`OpId`] it chose, and later receives a [`Completion`] with that id.
//! Completions may arrive late and out of order (the simulator reorders
//! them on purpose); every one says which sequence of its stream is
//! durable, and a publish is acknowledged only once that covers it.

use crate::meta::StoredStream;
use crate::msg::{Corruption, Msg, Purge, RecoveryReport, StoreError, StreamConfig, StreamState};
use crate::store::Appended;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

/// Which message a read wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    Seq(u64),
    /// The first message at or after `from_seq` on a matching subject.
    Next {
        from_seq: u64,
        filter: Option<String>,
    },
    /// The newest message on a subject.
    LastBySubject(String),
    /// The first message stored at or after this wall-clock time.
    AtTime {
        unix_nanos: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageOp {
    /// Opens (or creates) a stream, recovering it from disk.
    Open {
        id: OpId,
        stream: String,
        config: StreamConfig,
    },
    /// Appends messages; completes when they reach the page cache.
    Append {
        id: OpId,
        stream: String,
        msgs: Vec<Msg>,
    },
    /// Makes every earlier append of the stream durable.
    Sync {
        id: OpId,
        stream: String,
    },
    Read {
        id: OpId,
        stream: String,
        read: Read,
    },
    Delete {
        id: OpId,
        stream: String,
        seq: u64,
    },
    Purge {
        id: OpId,
        stream: String,
        purge: Purge,
    },
    /// Drops every message after `last_seq`.
    Truncate {
        id: OpId,
        stream: String,
        last_seq: u64,
    },
    /// Applies `max_age_ms` at this wall-clock time.
    Expire {
        id: OpId,
        stream: String,
        now_unix_nanos: u64,
    },
    Compact {
        id: OpId,
        stream: String,
    },
    /// What stream info shows on request: the subjects matching
    /// `subjects_filter` with their counts, and the deleted sequences.
    Details {
        id: OpId,
        stream: String,
        subjects_filter: Option<String>,
        deleted: bool,
    },
    /// The headers of the messages stored at or after this wall-clock
    /// time, newest first (the core rebuilds its duplicate window from
    /// them after a restart). Messages without headers are left out.
    RecentHeaders {
        id: OpId,
        stream: String,
        since_unix_nanos: u64,
    },
    /// Up to `max_msgs` messages from `from_seq` on (matching one of
    /// `filters`; none: every message),
    /// stopping once `max_bytes` of stored records are reached (one
    /// message at least), and how many matching ones remain after them.
    ReadBatch {
        id: OpId,
        stream: String,
        from_seq: u64,
        filters: Vec<String>,
        max_msgs: usize,
        max_bytes: u64,
    },
    /// The last message (at or below `up_to_seq`) of each subject matching
    /// one of `filters`, in sequence order, at most `max_msgs`.
    LastPerSubject {
        id: OpId,
        stream: String,
        filters: Vec<String>,
        up_to_seq: u64,
        max_msgs: usize,
    },
    /// Reads every record back to find damage before a read needs it.
    Scrub {
        id: OpId,
        stream: String,
    },
    /// Deletes the stream and its files, its metadata and consumers
    /// included.
    Remove {
        id: OpId,
        stream: String,
    },
    /// Replaces the stream's metadata (opaque bytes, at most 1 MiB)
    /// atomically and durably: when it completes, a restart finds these
    /// bytes; if it fails or a crash interrupts it, a restart finds the
    /// old bytes or these, never a mix. The stream need not be open; its
    /// directory is created if it has none. Earlier syncs of the stream
    /// in the same batch are served first.
    SaveMeta {
        id: OpId,
        stream: String,
        meta: Vec<u8>,
    },
    /// Replaces a consumer's saved state (opaque bytes, at most 16 MiB:
    /// its configuration and progress) atomically and durably, with the
    /// guarantees of `SaveMeta`; its directory is made as `SaveMeta`'s.
    /// Earlier syncs of the stream in the same batch are served first.
    /// Group commit: of the `SaveConsumer`s and `RemoveConsumer`s of one
    /// consumer in a batch, only the last runs; each earlier one completes
    /// once that one has run, with its result (as if it had been written
    /// and then replaced).
    SaveConsumer {
        id: OpId,
        stream: String,
        consumer: String,
        state: Vec<u8>,
    },
    /// Deletes a consumer's saved state durably (one never saved is
    /// removed too). Ordered and coalesced like `SaveConsumer`: a save
    /// earlier in the batch does not bring it back, a later one does.
    RemoveConsumer {
        id: OpId,
        stream: String,
        consumer: String,
    },
    /// Every stream in storage, sorted by name, with its metadata and its
    /// consumers; opens none of them. Its completion's `stream` is empty
    /// and its `durable_seq` 0.
    ListStreams {
        id: OpId,
    },
}

impl StorageOp {
    pub fn id(&self) -> OpId {
        match self {
            StorageOp::Open { id, .. }
            | StorageOp::Append { id, .. }
            | StorageOp::Sync { id, .. }
            | StorageOp::Read { id, .. }
            | StorageOp::Delete { id, .. }
            | StorageOp::Purge { id, .. }
            | StorageOp::Truncate { id, .. }
            | StorageOp::Expire { id, .. }
            | StorageOp::Compact { id, .. }
            | StorageOp::Scrub { id, .. }
            | StorageOp::Details { id, .. }
            | StorageOp::RecentHeaders { id, .. }
            | StorageOp::ReadBatch { id, .. }
            | StorageOp::LastPerSubject { id, .. }
            | StorageOp::Remove { id, .. }
            | StorageOp::SaveMeta { id, .. }
            | StorageOp::SaveConsumer { id, .. }
            | StorageOp::RemoveConsumer { id, .. }
            | StorageOp::ListStreams { id } => *id,
        }
    }

    pub fn stream(&self) -> &str {
        match self {
            StorageOp::Open { stream, .. }
            | StorageOp::Append { stream, .. }
            | StorageOp::Sync { stream, .. }
            | StorageOp::Read { stream, .. }
            | StorageOp::Delete { stream, .. }
            | StorageOp::Purge { stream, .. }
            | StorageOp::Truncate { stream, .. }
            | StorageOp::Expire { stream, .. }
            | StorageOp::Compact { stream, .. }
            | StorageOp::Scrub { stream, .. }
            | StorageOp::Details { stream, .. }
            | StorageOp::RecentHeaders { stream, .. }
            | StorageOp::ReadBatch { stream, .. }
            | StorageOp::LastPerSubject { stream, .. }
            | StorageOp::Remove { stream, .. }
            | StorageOp::SaveMeta { stream, .. }
            | StorageOp::SaveConsumer { stream, .. }
            | StorageOp::RemoveConsumer { stream, .. } => stream,
            StorageOp::ListStreams { .. } => "",
        }
    }
}

/// What a successful operation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Opened {
        state: StreamState,
        report: RecoveryReport,
    },
    Appended(Appended),
    Synced,
    Read(Option<Msg>),
    Deleted(bool),
    Purged(u64),
    Truncated(u64),
    Expired(u64),
    /// Bytes reclaimed.
    Compacted(u64),
    Scrubbed(Vec<Corruption>),
    Details {
        subjects: Vec<(String, u64)>,
        deleted: Vec<u64>,
    },
    /// Messages read in a batch, and how many matching ones come after.
    Batch {
        msgs: Vec<Msg>,
        pending: u64,
    },
    /// `(seq, stored at, headers)` of recent messages with headers,
    /// newest first.
    RecentHeaders(Vec<(u64, u64, Vec<u8>)>),
    Removed,
    MetaSaved,
    ConsumerSaved,
    ConsumerRemoved,
    /// What `ListStreams` found: a stream whose metadata is
    /// `Err(MetaError::Missing)` was opened but never given metadata;
    /// `Err(MetaError::Damaged(_))` failed its checksum (so may a
    /// consumer's state).
    Streams(Vec<StoredStream>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Completion {
    pub id: OpId,
    pub stream: String,
    /// Every message of the stream up to this sequence is durable; acks up
    /// to here may be released.
    pub durable_seq: u64,
    /// What the stream holds after the operation (empty when it has no
    /// open store), so the core can answer stream info without asking.
    pub state: StreamState,
    pub result: Result<Done, StoreError>,
}
