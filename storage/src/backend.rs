//! Where streams live: the [`Backend`] the executor opens, removes and
//! lists streams through, and keeps their metadata and their consumers'
//! states in. [`FileBackend`]
//! keeps every stream as a directory on a [`Disk`] (a memory stream too:
//! its messages live in a [`MemStore`], its directory and metadata on
//! disk); [`MemBackend`] keeps everything in memory.

use crate::consumer::{self, CONSUMERS_DIR, StoredConsumer};
use crate::disk::{Disk, join};
use crate::file::FileStore;
use crate::mem::MemStore;
use crate::meta::{self, MetaError, StoredStream};
use crate::msg::SubjectState;
use crate::msg::{Corruption, Msg, Purge, RecoveryReport, StoreError, StreamConfig, StreamState};
use crate::store::{Appended, Store};
use std::collections::{BTreeMap, BTreeSet};

/// Where streams live: opens, removes and lists them, and keeps their
/// metadata and their consumers' states.
pub trait Backend {
    type Store: Store;
    /// Opens (or creates) a stream. Its metadata, if saved, is kept.
    fn open(
        &mut self,
        stream: &str,
        config: StreamConfig,
    ) -> Result<(Self::Store, RecoveryReport), StoreError>;
    /// Deletes the stream with its messages, metadata and consumers.
    fn remove(&mut self, stream: &str) -> Result<(), StoreError>;
    /// Replaces the stream's metadata atomically and durably, creating the
    /// stream's place if it has none yet (the stream need not be open).
    fn save_meta(&mut self, stream: &str, meta: &[u8]) -> Result<(), StoreError>;
    /// Replaces a consumer's state atomically and durably, creating the
    /// stream's place if it has none yet.
    fn save_consumer(
        &mut self,
        stream: &str,
        consumer: &str,
        state: &[u8],
    ) -> Result<(), StoreError>;
    /// Deletes a consumer's state durably; one never saved is removed too.
    fn remove_consumer(&mut self, stream: &str, consumer: &str) -> Result<(), StoreError>;
    /// Every stream there is, sorted by name, with its metadata and
    /// consumers.
    fn list(&mut self) -> Result<Vec<StoredStream>, StoreError>;
}

/// Stream names become directory names. The core percent-encodes every
/// byte outside `[A-Za-z0-9_-]` and joins account and stream with `.`, so
/// `.` and `%` are allowed too, but never as a name a directory walk
/// treats specially (`.`, `..`, or hidden).
pub fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'%'))
}

/// Streams in memory; their metadata and consumers too, for the
/// executor's life.
#[derive(Default)]
pub struct MemBackend {
    /// Every stream opened or given metadata or a consumer.
    streams: BTreeMap<String, MemStream>,
}

#[derive(Default)]
struct MemStream {
    meta: Option<Vec<u8>>,
    consumers: BTreeMap<String, Vec<u8>>,
}

impl Backend for MemBackend {
    type Store = MemStore;
    fn open(
        &mut self,
        stream: &str,
        config: StreamConfig,
    ) -> Result<(MemStore, RecoveryReport), StoreError> {
        self.streams.entry(stream.to_string()).or_default();
        Ok((MemStore::new(config), RecoveryReport::default()))
    }
    fn remove(&mut self, stream: &str) -> Result<(), StoreError> {
        self.streams.remove(stream);
        Ok(())
    }
    fn save_meta(&mut self, stream: &str, meta: &[u8]) -> Result<(), StoreError> {
        self.streams.entry(stream.to_string()).or_default().meta = Some(meta.to_vec());
        Ok(())
    }
    fn save_consumer(
        &mut self,
        stream: &str,
        consumer: &str,
        state: &[u8],
    ) -> Result<(), StoreError> {
        // The same names and sizes as on disk, so tests in memory refuse
        // what a disk would.
        consumer::check_save(consumer, state)?;
        let stream = self.streams.entry(stream.to_string()).or_default();
        stream
            .consumers
            .insert(consumer.to_string(), state.to_vec());
        Ok(())
    }
    fn remove_consumer(&mut self, stream: &str, consumer: &str) -> Result<(), StoreError> {
        consumer::file_name(consumer)?;
        if let Some(stream) = self.streams.get_mut(stream) {
            stream.consumers.remove(consumer);
        }
        Ok(())
    }
    fn list(&mut self) -> Result<Vec<StoredStream>, StoreError> {
        Ok(self
            .streams
            .iter()
            .map(|(name, stream)| StoredStream {
                name: name.clone(),
                meta: stream.meta.clone().ok_or(MetaError::Missing),
                consumers: stream
                    .consumers
                    .iter()
                    .map(|(name, state)| StoredConsumer {
                        name: name.clone(),
                        state: Ok(state.clone()),
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Streams as directories `root_dir/<stream>` on a disk; `make_disk`
/// gives each stream its own handle (a clone for the simulated disk, a
/// fresh `FsDisk` on the same root for the real one).
pub struct FileBackend<D, F> {
    pub root_dir: String,
    pub make_disk: F,
    /// Streams whose consumers' directory this backend made durable: a
    /// consumer save, frequent, then costs no directory syncs but its own.
    consumer_dirs: BTreeSet<String>,
    _disk: std::marker::PhantomData<D>,
}

impl<D: Disk, F: FnMut() -> D> FileBackend<D, F> {
    pub fn new(root_dir: &str, make_disk: F) -> Self {
        FileBackend {
            root_dir: root_dir.to_string(),
            make_disk,
            consumer_dirs: BTreeSet::new(),
            _disk: std::marker::PhantomData,
        }
    }

    /// Creates the stream's directory, durably: both new names, the
    /// stream's and the root's, need their parent synced.
    fn make_stream_dir(&self, disk: &mut D, stream: &str) -> Result<String, StoreError> {
        let dir = join(&self.root_dir, stream);
        disk.create_dir(&dir)?;
        disk.sync_dir(&self.root_dir)?;
        let parent = self.root_dir.rsplit_once('/').map_or("", |(p, _)| p);
        disk.sync_dir(parent)?;
        Ok(dir)
    }

    /// The stream's directory, with a consumers' directory made durable
    /// in it (once per stream for this backend's life).
    fn make_consumers_dir(&mut self, disk: &mut D, stream: &str) -> Result<String, StoreError> {
        if self.consumer_dirs.contains(stream) {
            return Ok(join(&self.root_dir, stream));
        }
        let dir = self.make_stream_dir(disk, stream)?;
        disk.create_dir(&join(&dir, CONSUMERS_DIR))?;
        disk.sync_dir(&dir)?;
        self.consumer_dirs.insert(stream.to_string());
        Ok(dir)
    }
}

impl<D: Disk, F: FnMut() -> D> Backend for FileBackend<D, F> {
    type Store = StreamStore<D>;
    fn open(
        &mut self,
        stream: &str,
        config: StreamConfig,
    ) -> Result<(StreamStore<D>, RecoveryReport), StoreError> {
        let mut disk = (self.make_disk)();
        let dir = self.make_stream_dir(&mut disk, stream)?;
        if config.memory {
            return Ok((
                StreamStore::Memory(MemStore::new(config)),
                RecoveryReport::default(),
            ));
        }
        let (store, report) = FileStore::open(disk, &dir, config)?;
        Ok((StreamStore::File(store), report))
    }
    fn remove(&mut self, stream: &str) -> Result<(), StoreError> {
        let mut disk = (self.make_disk)();
        self.consumer_dirs.remove(stream);
        disk.remove_dir(&join(&self.root_dir, stream))?;
        disk.sync_dir(&self.root_dir)?;
        Ok(())
    }
    fn save_meta(&mut self, stream: &str, meta: &[u8]) -> Result<(), StoreError> {
        let mut disk = (self.make_disk)();
        let dir = self.make_stream_dir(&mut disk, stream)?;
        meta::write_meta(&mut disk, &dir, meta)
    }
    fn save_consumer(
        &mut self,
        stream: &str,
        consumer: &str,
        state: &[u8],
    ) -> Result<(), StoreError> {
        consumer::check_save(consumer, state)?;
        let mut disk = (self.make_disk)();
        let dir = self.make_consumers_dir(&mut disk, stream)?;
        consumer::write_consumer(&mut disk, &dir, consumer, state)
    }
    fn remove_consumer(&mut self, stream: &str, consumer: &str) -> Result<(), StoreError> {
        let mut disk = (self.make_disk)();
        consumer::remove_consumer(&mut disk, &join(&self.root_dir, stream), consumer)
    }
    fn list(&mut self) -> Result<Vec<StoredStream>, StoreError> {
        let mut disk = (self.make_disk)();
        let names = disk.list(&self.root_dir)?;
        let mut streams = Vec::with_capacity(names.len());
        for name in names.into_iter().filter(|name| valid_stream_name(name)) {
            let dir = join(&self.root_dir, &name);
            let meta = meta::read_meta(&mut disk, &dir);
            let consumers = consumer::read_consumers(&mut disk, &dir)?;
            streams.push(StoredStream {
                name,
                meta,
                consumers,
            });
        }
        Ok(streams)
    }
}

/// A stream of a [`FileBackend`]: on disk, or in memory (a memory stream,
/// whose messages are lost at restart by design).
pub enum StreamStore<D: Disk> {
    File(FileStore<D>),
    Memory(MemStore),
}

impl<D: Disk> StreamStore<D> {
    /// The file store, unless this is a memory stream.
    pub fn file_mut(&mut self) -> Option<&mut FileStore<D>> {
        match self {
            StreamStore::File(store) => Some(store),
            StreamStore::Memory(_) => None,
        }
    }
}

/// Calls the same method on whichever store it is.
macro_rules! either {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            StreamStore::File($store) => $call,
            StreamStore::Memory($store) => $call,
        }
    };
}

impl<D: Disk> Store for StreamStore<D> {
    fn config(&self) -> &StreamConfig {
        either!(self, s => s.config())
    }
    fn append(&mut self, msgs: &[Msg]) -> Result<Appended, StoreError> {
        either!(self, s => s.append(msgs))
    }
    fn sync(&mut self) -> Result<u64, StoreError> {
        either!(self, s => s.sync())
    }
    fn durable_seq(&self) -> u64 {
        either!(self, s => s.durable_seq())
    }
    fn get(&mut self, seq: u64) -> Result<Option<Msg>, StoreError> {
        either!(self, s => s.get(seq))
    }
    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: Option<&str>,
    ) -> Result<Option<Msg>, StoreError> {
        either!(self, s => s.next_matching(from_seq, filter))
    }
    fn next_matching_any(
        &mut self,
        from_seq: u64,
        filters: &[String],
    ) -> Result<Option<Msg>, StoreError> {
        either!(self, s => s.next_matching_any(from_seq, filters))
    }
    fn sequential(&mut self, on: bool) {
        either!(self, s => s.sequential(on))
    }
    fn count_matching_any(&self, from_seq: u64, filters: &[String]) -> u64 {
        either!(self, s => s.count_matching_any(from_seq, filters))
    }
    fn last_by_subject(&mut self, subject: &str) -> Result<Option<Msg>, StoreError> {
        either!(self, s => s.last_by_subject(subject))
    }
    fn delete(&mut self, seq: u64) -> Result<bool, StoreError> {
        either!(self, s => s.delete(seq))
    }
    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        either!(self, s => s.purge(purge))
    }
    fn truncate(&mut self, last_seq: u64) -> Result<u64, StoreError> {
        either!(self, s => s.truncate(last_seq))
    }
    fn expire(&mut self, now_unix_nanos: u64) -> Result<u64, StoreError> {
        either!(self, s => s.expire(now_unix_nanos))
    }
    fn compact(&mut self) -> Result<u64, StoreError> {
        either!(self, s => s.compact())
    }
    fn scrub(&mut self) -> Result<Vec<Corruption>, StoreError> {
        either!(self, s => s.scrub())
    }
    fn state(&self) -> StreamState {
        either!(self, s => s.state())
    }
    fn subject_state(&self, subject: &str) -> Option<SubjectState> {
        either!(self, s => s.subject_state(subject))
    }
    fn subjects_matching(&self, filter: &str) -> Vec<(String, u64)> {
        either!(self, s => s.subjects_matching(filter))
    }
    fn interior_deleted(&self) -> Vec<u64> {
        either!(self, s => s.interior_deleted())
    }
    fn first_seq_at_time(&self, unix_nanos: u64) -> Option<u64> {
        either!(self, s => s.first_seq_at_time(unix_nanos))
    }
    fn count_matching_from(&self, from_seq: u64, filter: Option<&str>) -> u64 {
        either!(self, s => s.count_matching_from(from_seq, filter))
    }
    fn last_per_subject(&self, filters: &[String], up_to_seq: u64) -> Vec<u64> {
        either!(self, s => s.last_per_subject(filters, up_to_seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_take_the_cores_encoding_and_nothing_a_path_could_abuse() {
        for good in [
            "orders",
            "A-z_09",
            "%24G.orders",
            "acct%2Eone.str%20eam",
            "a.",
            "a..b",
            &"x".repeat(255),
        ] {
            assert!(valid_stream_name(good), "{good:?} refused");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "..%2F",
            "a/b",
            "../etc",
            "a\\b",
            "a b",
            "a\0b",
            "caf\u{e9}",
            "a*",
            "a>",
            &"x".repeat(256),
        ] {
            assert!(!valid_stream_name(bad), "{bad:?} accepted");
        }
    }
}
