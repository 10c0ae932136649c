//! natrix-storage is natrix's durable message log. It executes the storage
//! operations the core emits ([`ops`]) over a [`Disk`]: a file store that
//! keeps each stream as an append-only log of block files whose every
//! record carries a crc32c, with an index per sealed block for fast
//! start-up, per-subject state, deletes, purges, limits and compaction; and
//! a memory store behind the same [`Store`] interface, which memory streams
//! use and the file store is tested against. Beside its messages, each
//! stream's directory keeps its metadata (opaque bytes the core
//! serialises), replaced atomically and checksummed, so that start-up can
//! list the streams there are ([`meta`]), and its consumers' states, kept
//! the same way ([`consumer`]). Durability is explicit: an
//! append reaches the page cache, a sync covers every append before it, and
//! every completion says which sequence is durable. Recovery cuts a torn
//! tail and reports corruption with its sequence range; bad bytes are never
//! served. It is not a decision maker: sequences, acknowledgements and
//! retention policy belong to the core, and it holds no clock, spawns no
//! thread and touches the real filesystem only in `disk::FsDisk` (behind
//! the default `fs` feature), so the simulator can run it over [`SimDisk`],
//! which loses, tears and corrupts writes on purpose, from a seed.

mod backend;
pub mod commit;
pub mod consumer;
pub mod disk;
pub mod exec;
pub mod file;
pub mod fuzzing;
pub mod mem;
pub mod meta;
pub mod msg;
pub mod ops;
pub mod record;
pub mod rng;
mod state;
pub mod store;
mod subject;

pub use consumer::StoredConsumer;
#[cfg(feature = "fs")]
pub use disk::FsDisk;
pub use disk::{Disk, DiskError, DiskErrorKind, FileId, SimDisk, SimDiskConfig};
pub use exec::{Backend, Executor, FileBackend, MemBackend, StreamStore};
pub use file::FileStore;
pub use mem::MemStore;
pub use meta::{MetaError, StoredStream};
pub use msg::{
    Corruption, Msg, Purge, RecoveryReport, StoreError, StreamConfig, StreamState, SubjectState,
    TornTail,
};
pub use store::{Appended, Store};
