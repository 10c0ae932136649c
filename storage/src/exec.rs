//! The executor: runs storage operations against a set of streams and
//! returns their completions. The runtime runs one on its storage thread;
//! the simulator runs one over the simulated disk.
//!
//! Group commit lives here: within one batch, every `Sync` of a stream is
//! served by a single fsync, taken after the batch's other operations on
//! that stream, so a burst of publishes costs one fsync.

use crate::disk::{Disk, join};
use crate::file::FileStore;
use crate::mem::MemStore;
use crate::msg::{RecoveryReport, StoreError, StreamConfig};
use crate::ops::{Completion, Done, OpId, Read, StorageOp};
use crate::store::Store;
use std::collections::BTreeMap;

/// Where streams live: opens and removes them.
pub trait Backend {
    type Store: Store;
    fn open(
        &mut self,
        stream: &str,
        config: StreamConfig,
    ) -> Result<(Self::Store, RecoveryReport), StoreError>;
    fn remove(&mut self, stream: &str) -> Result<(), StoreError>;
}

/// Streams in memory.
#[derive(Default)]
pub struct MemBackend;

impl Backend for MemBackend {
    type Store = MemStore;
    fn open(
        &mut self,
        _stream: &str,
        config: StreamConfig,
    ) -> Result<(MemStore, RecoveryReport), StoreError> {
        Ok((MemStore::new(config), RecoveryReport::default()))
    }
    fn remove(&mut self, _stream: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Streams as directories `root_dir/<stream>` on a disk; `make_disk`
/// gives each stream its own handle (a clone for the simulated disk, a
/// fresh `FsDisk` on the same root for the real one).
pub struct FileBackend<D, F> {
    pub root_dir: String,
    pub make_disk: F,
    _disk: std::marker::PhantomData<D>,
}

impl<D: Disk, F: FnMut() -> D> FileBackend<D, F> {
    pub fn new(root_dir: &str, make_disk: F) -> Self {
        FileBackend {
            root_dir: root_dir.to_string(),
            make_disk,
            _disk: std::marker::PhantomData,
        }
    }
}

/// Stream names become directory names: keep them to a safe alphabet
/// (the core percent-encodes an account and a stream name and joins them
/// with a dot), and never `.`, `..` or a hidden name.
fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'%'))
}

impl<D: Disk, F: FnMut() -> D> Backend for FileBackend<D, F> {
    type Store = FileStore<D>;
    fn open(
        &mut self,
        stream: &str,
        config: StreamConfig,
    ) -> Result<(FileStore<D>, RecoveryReport), StoreError> {
        let dir = join(&self.root_dir, stream);
        let mut disk = (self.make_disk)();
        disk.create_dir(&dir)?;
        // Both new names must be durable: the stream's and the root's.
        disk.sync_dir(&self.root_dir)?;
        let parent = self.root_dir.rsplit_once('/').map_or("", |(p, _)| p);
        disk.sync_dir(parent)?;
        FileStore::open(disk, &dir, config)
    }
    fn remove(&mut self, stream: &str) -> Result<(), StoreError> {
        let mut disk = (self.make_disk)();
        disk.remove_dir(&join(&self.root_dir, stream))?;
        disk.sync_dir(&self.root_dir)?;
        Ok(())
    }
}

pub struct Executor<B: Backend> {
    backend: B,
    streams: BTreeMap<String, B::Store>,
    fsyncs: u64,
}

impl<B: Backend> Executor<B> {
    pub fn new(backend: B) -> Self {
        Executor {
            backend,
            streams: BTreeMap::new(),
            fsyncs: 0,
        }
    }

    /// Sync calls made so far (what group commit saves).
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    pub fn store(&mut self, stream: &str) -> Option<&mut B::Store> {
        self.streams.get_mut(stream)
    }

    fn complete(&self, id: OpId, stream: &str, result: Result<Done, StoreError>) -> Completion {
        Completion {
            id,
            stream: stream.to_string(),
            durable_seq: self.streams.get(stream).map_or(0, |s| s.durable_seq()),
            state: self
                .streams
                .get(stream)
                .map(Store::state)
                .unwrap_or_default(),
            result,
        }
    }

    /// Runs one operation now (a `Sync` included).
    pub fn execute(&mut self, op: StorageOp) -> Completion {
        let (id, stream) = (op.id(), op.stream().to_string());
        let result = self.run(op);
        self.complete(id, &stream, result)
    }

    /// Runs a batch with group commit: each stream's `Sync`s wait for the
    /// end of the batch (or for an operation that must not pass them) and
    /// share one fsync. Completions are pushed onto `out`, not in op order.
    pub fn execute_batch(
        &mut self,
        ops: impl IntoIterator<Item = StorageOp>,
        out: &mut Vec<Completion>,
    ) {
        let mut waiting: BTreeMap<String, Vec<OpId>> = BTreeMap::new();
        for op in ops {
            match op {
                StorageOp::Sync { id, stream } => waiting.entry(stream).or_default().push(id),
                op => {
                    let barrier = matches!(
                        op,
                        StorageOp::Open { .. }
                            | StorageOp::Remove { .. }
                            | StorageOp::Truncate { .. }
                    );
                    if barrier && let Some(ids) = waiting.remove(op.stream()) {
                        self.sync_for(op.stream(), ids, out);
                    }
                    out.push(self.execute(op));
                }
            }
        }
        for (stream, ids) in waiting {
            self.sync_for(&stream, ids, out);
        }
    }

    fn sync_for(&mut self, stream: &str, ids: Vec<OpId>, out: &mut Vec<Completion>) {
        let result = self.sync(stream);
        for id in ids {
            out.push(self.complete(id, stream, result.clone()));
        }
    }

    fn sync(&mut self, stream: &str) -> Result<Done, StoreError> {
        let store = self.streams.get_mut(stream).ok_or(StoreError::NoStream)?;
        self.fsyncs += 1;
        store.sync().map(|_| Done::Synced)
    }

    fn run(&mut self, op: StorageOp) -> Result<Done, StoreError> {
        match op {
            StorageOp::Open { stream, config, .. } => {
                if !valid_stream_name(&stream) {
                    return Err(StoreError::Invalid(format!("stream name {stream:?}")));
                }
                self.streams.remove(&stream);
                let (store, report) = self.backend.open(&stream, config)?;
                let state = store.state();
                self.streams.insert(stream, store);
                Ok(Done::Opened { state, report })
            }
            StorageOp::Remove { stream, .. } => {
                self.streams.remove(&stream);
                self.backend.remove(&stream)?;
                Ok(Done::Removed)
            }
            StorageOp::Sync { stream, .. } => self.sync(&stream),
            op => {
                let store = self
                    .streams
                    .get_mut(op.stream())
                    .ok_or(StoreError::NoStream)?;
                run_on(store, op)
            }
        }
    }
}

fn run_on<S: Store>(store: &mut S, op: StorageOp) -> Result<Done, StoreError> {
    Ok(match op {
        StorageOp::Append { msgs, .. } => Done::Appended(store.append(&msgs)?),
        StorageOp::Read { read, .. } => Done::Read(match read {
            Read::Seq(seq) => store.get(seq)?,
            Read::Next { from_seq, filter } => store.next_matching(from_seq, filter.as_deref())?,
            Read::LastBySubject(subject) => store.last_by_subject(&subject)?,
        }),
        StorageOp::Delete { seq, .. } => Done::Deleted(store.delete(seq)?),
        StorageOp::Purge { purge, .. } => Done::Purged(store.purge(&purge)?),
        StorageOp::Truncate { last_seq, .. } => Done::Truncated(store.truncate(last_seq)?),
        StorageOp::Expire { now_unix_nanos, .. } => Done::Expired(store.expire(now_unix_nanos)?),
        StorageOp::Compact { .. } => Done::Compacted(store.compact()?),
        StorageOp::Scrub { .. } => Done::Scrubbed(store.scrub()?),
        StorageOp::Open { .. } | StorageOp::Remove { .. } | StorageOp::Sync { .. } => {
            return Err(StoreError::Invalid("handled by the executor".into()));
        }
    })
}
