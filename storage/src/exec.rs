//! The executor: runs storage operations against a set of streams and
//! returns their completions. The runtime runs one on its storage thread;
//! the simulator runs one over the simulated disk.
//!
//! Group commit lives here: within one batch, every `Sync` of a stream is
//! served by a single fsync, taken after the batch's other operations on
//! that stream, so a burst of publishes costs one fsync. Likewise, of the
//! saves and removals of one consumer in a batch only the last runs: a
//! consumer acknowledged many times costs one write.

pub use crate::backend::{Backend, FileBackend, MemBackend, StreamStore, valid_stream_name};
use crate::consumer::MAX_CONSUMER_BYTES;
use crate::msg::{Msg, StoreError};
use crate::ops::{Completion, Done, OpId, Read, StorageOp};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};

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
    /// share one fsync; a consumer's saves and removals wait for its last
    /// one in the batch, which alone runs, and complete just before it
    /// with its result. Completions are pushed onto `out`, not in op order.
    pub fn execute_batch(
        &mut self,
        ops: impl IntoIterator<Item = StorageOp>,
        out: &mut Vec<Completion>,
    ) {
        let ops: Vec<StorageOp> = ops.into_iter().collect();
        let replaced = replaced_consumer_ops(&ops);
        let mut waiting = Waiting::default();
        for (op, replaced) in ops.into_iter().zip(replaced) {
            match op {
                StorageOp::Sync { id, stream } => waiting.syncs.entry(stream).or_default().push(id),
                op if replaced => waiting.for_consumer(&op),
                op => self.run_in_batch(op, &mut waiting, out),
            }
        }
        for (stream, ids) in waiting.syncs {
            self.sync_for(&stream, ids, out);
        }
    }

    /// Runs an op of a batch that no later one replaces, after the syncs
    /// it must not pass, and completes the consumer ops it replaced.
    fn run_in_batch(&mut self, op: StorageOp, waiting: &mut Waiting, out: &mut Vec<Completion>) {
        let barrier = matches!(
            op,
            StorageOp::Open { .. }
                | StorageOp::Remove { .. }
                | StorageOp::Truncate { .. }
                | StorageOp::SaveMeta { .. }
                | StorageOp::SaveConsumer { .. }
                | StorageOp::RemoveConsumer { .. }
        );
        if barrier && let Some(ids) = waiting.syncs.remove(op.stream()) {
            self.sync_for(op.stream(), ids, out);
        }
        let replaced = consumer_op(&op)
            .and_then(|((stream, consumer), _)| {
                let key = (stream.to_string(), consumer.to_string());
                waiting.consumers.remove(&key)
            })
            .unwrap_or_default();
        let completion = self.execute(op);
        for (id, done) in replaced {
            let result = completion.result.clone().map(|_| done);
            out.push(self.complete(id, &completion.stream, result));
        }
        out.push(completion);
    }

    fn sync_for(&mut self, stream: &str, ids: Vec<OpId>, out: &mut Vec<Completion>) {
        let result = self.sync(stream);
        for id in ids {
            out.push(self.complete(id, stream, result.clone()));
        }
    }

    fn sync(&mut self, stream: &str) -> Result<Done, StoreError> {
        let store = self.streams.get_mut(stream).ok_or(StoreError::NoStream)?;
        // A memory stream has nothing to sync: everything it holds is as
        // durable as it will ever be.
        if !store.config().memory {
            self.fsyncs += 1;
        }
        store.sync().map(|_| Done::Synced)
    }

    fn run(&mut self, op: StorageOp) -> Result<Done, StoreError> {
        match op {
            StorageOp::Open { stream, config, .. } => {
                check_name(&stream)?;
                self.streams.remove(&stream);
                let (store, report) = self.backend.open(&stream, config)?;
                let state = store.state();
                self.streams.insert(stream, store);
                Ok(Done::Opened { state, report })
            }
            StorageOp::Remove { stream, .. } => {
                check_name(&stream)?;
                self.streams.remove(&stream);
                self.backend.remove(&stream)?;
                Ok(Done::Removed)
            }
            StorageOp::SaveMeta { stream, meta, .. } => {
                check_name(&stream)?;
                self.backend.save_meta(&stream, &meta)?;
                Ok(Done::MetaSaved)
            }
            StorageOp::SaveConsumer {
                stream,
                consumer,
                state,
                ..
            } => {
                check_name(&stream)?;
                self.backend.save_consumer(&stream, &consumer, &state)?;
                Ok(Done::ConsumerSaved)
            }
            StorageOp::RemoveConsumer {
                stream, consumer, ..
            } => {
                check_name(&stream)?;
                self.backend.remove_consumer(&stream, &consumer)?;
                Ok(Done::ConsumerRemoved)
            }
            StorageOp::ListStreams { .. } => Ok(Done::Streams(self.backend.list()?)),
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

/// What a batch holds back: each stream's syncs, and each consumer's
/// saves and removals that a later one replaces, with what they complete
/// with.
#[derive(Default)]
struct Waiting {
    syncs: BTreeMap<String, Vec<OpId>>,
    consumers: BTreeMap<(String, String), Vec<(OpId, Done)>>,
}

impl Waiting {
    fn for_consumer(&mut self, op: &StorageOp) {
        if let Some(((stream, consumer), done)) = consumer_op(op) {
            let key = (stream.to_string(), consumer.to_string());
            self.consumers.entry(key).or_default().push((op.id(), done));
        }
    }
}

/// The consumer a save or removal is for, and what it completes with; not
/// a save too large to store, which fails alone.
fn consumer_op(op: &StorageOp) -> Option<((&str, &str), Done)> {
    match op {
        StorageOp::SaveConsumer {
            stream,
            consumer,
            state,
            ..
        } if state.len() <= MAX_CONSUMER_BYTES => {
            Some(((stream.as_str(), consumer.as_str()), Done::ConsumerSaved))
        }
        StorageOp::RemoveConsumer {
            stream, consumer, ..
        } => Some(((stream.as_str(), consumer.as_str()), Done::ConsumerRemoved)),
        _ => None,
    }
}

/// Which ops of a batch a later save or removal of the same consumer
/// replaces: only the last one of each consumer runs.
fn replaced_consumer_ops(ops: &[StorageOp]) -> Vec<bool> {
    let mut later: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut replaced = vec![false; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        if let Some((key, _)) = consumer_op(op) {
            replaced[i] = !later.insert(key);
        }
    }
    replaced
}

/// Stream names become directory names: refuse any other before it is used.
fn check_name(stream: &str) -> Result<(), StoreError> {
    if valid_stream_name(stream) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("stream name {stream:?}")))
    }
}

fn run_on<S: Store>(store: &mut S, op: StorageOp) -> Result<Done, StoreError> {
    Ok(match op {
        StorageOp::Append { msgs, .. } => Done::Appended(store.append(&msgs)?),
        StorageOp::Read { read, .. } => Done::Read(match read {
            Read::Seq(seq) => store.get(seq)?,
            Read::Next { from_seq, filter } => store.next_matching(from_seq, filter.as_deref())?,
            Read::LastBySubject(subject) => store.last_by_subject(&subject)?,
            Read::AtTime { unix_nanos } => match store.first_seq_at_time(unix_nanos) {
                Some(seq) => store.get(seq)?,
                None => None,
            },
        }),
        StorageOp::Delete { seq, .. } => Done::Deleted(store.delete(seq)?),
        StorageOp::Purge { purge, .. } => Done::Purged(store.purge(&purge)?),
        StorageOp::Truncate { last_seq, .. } => Done::Truncated(store.truncate(last_seq)?),
        StorageOp::Expire { now_unix_nanos, .. } => Done::Expired(store.expire(now_unix_nanos)?),
        StorageOp::Compact { .. } => Done::Compacted(store.compact()?),
        StorageOp::Scrub { .. } => Done::Scrubbed(store.scrub()?),
        StorageOp::Details {
            subjects_filter,
            deleted,
            ..
        } => Done::Details {
            subjects: subjects_filter.map_or_else(Vec::new, |f| store.subjects_matching(&f)),
            deleted: if deleted {
                store.interior_deleted()
            } else {
                Vec::new()
            },
        },
        StorageOp::ReadBatch {
            from_seq,
            filters,
            max_msgs,
            max_bytes,
            ..
        } => {
            let one = (filters.len() == 1).then(|| filters[0].as_str());
            let mut msgs: Vec<Msg> = Vec::new();
            let (mut next, mut bytes) = (from_seq.max(1), 0u64);
            store.sequential(true);
            let read = (|| {
                while msgs.len() < max_msgs && (max_bytes == 0 || bytes < max_bytes) {
                    let found = if filters.len() > 1 {
                        store.next_matching_any(next, &filters)?
                    } else {
                        store.next_matching(next, one)?
                    };
                    let Some(m) = found else {
                        break;
                    };
                    next = m.seq + 1;
                    bytes += m.size_bytes();
                    msgs.push(m);
                }
                Ok::<(), StoreError>(())
            })();
            store.sequential(false);
            read?;
            // With nothing read (none asked, or none left), what matches
            // from `from_seq` on: a count.
            let after = msgs.last().map_or(from_seq.max(1), |m| m.seq + 1);
            let pending = if filters.len() > 1 {
                store.count_matching_any(after, &filters)
            } else {
                store.count_matching_from(after, one)
            };
            Done::Batch { msgs, pending }
        }
        StorageOp::LastPerSubject {
            filters,
            up_to_seq,
            max_msgs,
            ..
        } => {
            let mut msgs = Vec::new();
            for seq in store.last_per_subject(&filters, up_to_seq) {
                if msgs.len() >= max_msgs {
                    break;
                }
                if let Some(m) = store.get(seq)? {
                    msgs.push(m);
                }
            }
            Done::Batch { msgs, pending: 0 }
        }
        StorageOp::RecentHeaders {
            since_unix_nanos, ..
        } => {
            let state = store.state();
            let mut found = Vec::new();
            let mut seq = state.last_seq;
            while seq >= state.first_seq && seq > 0 {
                // A damaged message is skipped: the window is best effort,
                // what is stored is not.
                if let Ok(Some(m)) = store.get(seq) {
                    if m.ts_unix_nanos < since_unix_nanos {
                        break;
                    }
                    if !m.headers.is_empty() {
                        found.push((m.seq, m.ts_unix_nanos, m.headers));
                    }
                }
                seq -= 1;
            }
            Done::RecentHeaders(found)
        }
        StorageOp::Open { .. }
        | StorageOp::Remove { .. }
        | StorageOp::Sync { .. }
        | StorageOp::SaveMeta { .. }
        | StorageOp::SaveConsumer { .. }
        | StorageOp::RemoveConsumer { .. }
        | StorageOp::ListStreams { .. } => {
            return Err(StoreError::Invalid("handled by the executor".into()));
        }
    })
}
