//! Simulated storage: the storage operations the core emits, executed by
//! the real natrix-storage [`Executor`] and file store over a [`SimDisk`],
//! with the timing the storage thread's would have — and worse — drawn
//! from the seed.
//!
//! An operation waits in a queue until a batch runs it (a seeded delay after
//! the first queued operation; sometimes a batch takes only a prefix of the
//! queue, so group commit is exercised with small batches too). A batch
//! runs through `Executor::execute_batch`, exactly as the runtime's
//! `natrix-storage` thread runs it; then each completion waits its own
//! seeded delay before it is delivered. So completions of different streams
//! arrive in a seeded order, but those of one stream arrive in the order
//! the executor produced them (submission order, except that a batch's
//! syncs finish at the end of the batch). A completion's `durable_seq` is
//! read when its batch runs, so it never arrives before the completion of
//! the sync that made that sequence durable.
//!
//! [`SimStorage::crash`] is power loss: queued operations and undelivered
//! completions die with the process, the disk keeps what [`SimDisk::crash`]
//! keeps (synced bytes, a seeded prefix of unsynced writes, the next one
//! torn), and the streams that were open are recovered.
//!
//! Time is an argument (`now_ns`, simulated nanoseconds); nothing here
//! reads a clock.

use natrix_storage::ops::{Completion, Done, OpId, Read, StorageOp};
use natrix_storage::{
    Executor, FileBackend, FileStore, Msg, RecoveryReport, SimDisk, SimDiskConfig, StoreError,
    StreamConfig, StreamState, StreamStore,
};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;
use std::collections::{BTreeMap, VecDeque};

/// The directory on the simulated disk that holds one directory per stream
/// (the runtime's is `streams/` under its storage root too).
pub const STREAMS_DIR: &str = "streams";

/// How slow and how unfair simulated storage is.
#[derive(Clone, Debug)]
pub struct SimStorageConfig {
    /// Longest wait from a submission (into an empty queue) to the batch
    /// that runs it.
    pub batch_delay_max_ns: u64,
    /// Longest wait from a batch to the delivery of one of its completions.
    pub completion_delay_max_ns: u64,
    /// Chance that a batch runs only a seeded prefix of the queue.
    pub split_batch_per_million: u32,
    /// Chance that a batch stops just before its first `Sync` (a storage
    /// thread that reports appends before it fsyncs): appends complete
    /// and the sync waits for the next batch.
    pub sync_apart_per_million: u32,
    /// The simulated disk's faults. Its `seed` is replaced by one drawn from
    /// the storage's seed.
    pub disk: SimDiskConfig,
}

impl Default for SimStorageConfig {
    fn default() -> Self {
        SimStorageConfig {
            batch_delay_max_ns: 200_000,
            completion_delay_max_ns: 2_000_000,
            split_batch_per_million: 200_000,
            sync_apart_per_million: 0,
            disk: SimDiskConfig::default(),
        }
    }
}

/// A stream brought back after a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub stream: String,
    pub result: Result<(StreamState, RecoveryReport), StoreError>,
}

type SimBackend = FileBackend<SimDisk, Box<dyn FnMut() -> SimDisk>>;

/// The storage executor of one simulated server.
pub struct SimStorage {
    config: SimStorageConfig,
    rng: ChaCha8Rng,
    disk: SimDisk,
    exec: Executor<SimBackend>,
    /// Submitted, not yet run.
    queue: VecDeque<StorageOp>,
    /// When the next batch runs (set while `queue` is not empty).
    batch_at_ns: Option<u64>,
    /// Run, not yet delivered: by delivery time, then production order.
    in_flight: BTreeMap<(u64, u64), Completion>,
    produced: u64,
    /// Each stream's latest delivery time so far: a later completion of the
    /// stream is never delivered before it.
    stream_ready_ns: BTreeMap<String, u64>,
    /// Streams opened and not removed since, with their configs, for
    /// recovery (kept across process restarts).
    open: BTreeMap<String, StreamConfig>,
    /// fsyncs of executors before the last crash.
    fsyncs_before: u64,
}

impl SimStorage {
    /// Storage whose every choice (timing and the disk's) comes from
    /// `seed` through the `"storage"` sub-seeds.
    pub fn new(seed: u64, config: SimStorageConfig) -> SimStorage {
        let disk = SimDisk::new(SimDiskConfig {
            seed: crate::seed::sub_seed(seed, "storage", 1),
            ..config.disk.clone()
        });
        SimStorage {
            rng: crate::seed::rng(seed, "storage", 0),
            exec: executor(&disk),
            disk,
            config,
            queue: VecDeque::new(),
            batch_at_ns: None,
            in_flight: BTreeMap::new(),
            produced: 0,
            stream_ready_ns: BTreeMap::new(),
            open: BTreeMap::new(),
            fsyncs_before: 0,
        }
    }

    /// Queues an operation; its completion comes out of a later `poll`.
    pub fn submit(&mut self, now_ns: u64, op: StorageOp) {
        self.queue.push_back(op);
        if self.batch_at_ns.is_none() {
            let delay = self.draw(self.config.batch_delay_max_ns);
            self.batch_at_ns = Some(now_ns + delay);
        }
    }

    /// Runs every batch due by `now_ns` and returns the completions due by
    /// then, in delivery order.
    pub fn poll(&mut self, now_ns: u64) -> Vec<Completion> {
        let mut out = Vec::new();
        loop {
            let batch = self.batch_at_ns.filter(|&at| at <= now_ns);
            let ready = self.in_flight.keys().next().map(|&(at, _)| at);
            match (batch, ready) {
                // What was due before the batch is delivered before it runs.
                (Some(batch_at), Some(ready_at)) if ready_at < batch_at => self.deliver(&mut out),
                (Some(batch_at), _) => self.run_batch(batch_at),
                (None, Some(ready_at)) if ready_at <= now_ns => self.deliver(&mut out),
                _ => break,
            }
        }
        out
    }

    /// When `poll` next has something to do.
    pub fn next_ready_ns(&self) -> Option<u64> {
        let ready = self.in_flight.keys().next().map(|&(at, _)| at);
        match (self.batch_at_ns, ready) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Operations submitted and not yet delivered.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Power loss. Queued operations and undelivered completions are lost
    /// with the process; the disk keeps what survives its crash; every
    /// stream that was open is opened again, as a restarted server would.
    pub fn crash(&mut self) -> Vec<Recovered> {
        self.queue.clear();
        self.batch_at_ns = None;
        self.in_flight.clear();
        self.stream_ready_ns.clear();
        self.fsyncs_before += self.exec.fsyncs();
        self.disk.crash();
        self.exec = executor(&self.disk);
        let mut recovered = Vec::new();
        for (stream, config) in self.open.clone() {
            let done = self.exec.execute(StorageOp::Open {
                id: OpId(0),
                stream: stream.clone(),
                config,
            });
            let result = done.result.and_then(|done| match done {
                Done::Opened { state, report } => Ok((state, report)),
                other => Err(StoreError::Invalid(format!("open returned {other:?}"))),
            });
            recovered.push(Recovered { stream, result });
        }
        self.forget_closed();
        recovered
    }

    /// A process restart without power loss: queued operations and
    /// undelivered completions die with the process and the executor
    /// starts empty, but the disk keeps every write (the page cache
    /// outlives the process). The restarted server opens its streams; a
    /// crash before it has done so still reopens them (for checkers).
    pub fn restart(&mut self) {
        self.queue.clear();
        self.batch_at_ns = None;
        self.in_flight.clear();
        self.stream_ready_ns.clear();
        self.fsyncs_before += self.exec.fsyncs();
        self.exec = executor(&self.disk);
    }

    /// The message at `seq` of an open stream, read straight through the
    /// executor (not the queue), for checkers: `None` when the stream is
    /// not open, the message is gone or the read failed.
    pub fn read(&mut self, stream: &str, seq: u64) -> Option<Msg> {
        let done = self.exec.execute(StorageOp::Read {
            id: OpId(0),
            stream: stream.to_string(),
            read: Read::Seq(seq),
        });
        match done.result {
            Ok(Done::Read(msg)) => msg,
            _ => None,
        }
    }

    /// A stream's store as it is now, for checkers (which may read it
    /// without going through the queue).
    pub fn store(&mut self, stream: &str) -> Option<&mut FileStore<SimDisk>> {
        self.exec.store(stream).and_then(StreamStore::file_mut)
    }

    /// The simulated disk, for checkers and for injecting faults.
    pub fn disk(&self) -> &SimDisk {
        &self.disk
    }

    /// fsyncs taken for `Sync` operations, across crashes.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs_before + self.exec.fsyncs()
    }

    fn run_batch(&mut self, at_ns: u64) {
        let mut take = self.queue.len();
        if take > 1 && self.chance(self.config.split_batch_per_million) {
            take = 1 + self.draw(take as u64 - 2) as usize;
        }
        // Drawn only when configured, so other configs draw as before.
        if self.config.sync_apart_per_million > 0
            && self.chance(self.config.sync_apart_per_million)
            && let Some(first_sync) = self
                .queue
                .iter()
                .take(take)
                .position(|op| matches!(op, StorageOp::Sync { .. }))
            && first_sync > 0
        {
            take = first_sync;
        }
        let ops: Vec<StorageOp> = self.queue.drain(..take).collect();
        // Opens and removals, to keep `open` up to date once they ran.
        let mut closing: BTreeMap<OpId, (String, bool)> = BTreeMap::new();
        for op in &ops {
            match op {
                StorageOp::Open { id, stream, config } => {
                    self.open.insert(stream.clone(), config.clone());
                    closing.insert(*id, (stream.clone(), true));
                }
                StorageOp::Remove { id, stream } => {
                    closing.insert(*id, (stream.clone(), false));
                }
                _ => {}
            }
        }
        let mut done = Vec::with_capacity(ops.len());
        self.exec.execute_batch(ops, &mut done);
        for c in &done {
            if let Some((stream, open)) = closing.get(&c.id)
                && c.result.is_err() == *open
            {
                // An open that failed, or a removal that succeeded.
                self.open.remove(stream);
            }
        }
        for completion in done {
            let delay = self.draw(self.config.completion_delay_max_ns);
            let earliest = self.stream_ready_ns.get(&completion.stream).copied();
            let ready_at = (at_ns + delay).max(earliest.unwrap_or(0));
            self.stream_ready_ns
                .insert(completion.stream.clone(), ready_at);
            self.in_flight.insert((ready_at, self.produced), completion);
            self.produced += 1;
        }
        self.batch_at_ns = if self.queue.is_empty() {
            None
        } else {
            Some(at_ns + self.draw(self.config.batch_delay_max_ns))
        };
    }

    fn deliver(&mut self, out: &mut Vec<Completion>) {
        if let Some((_, completion)) = self.in_flight.pop_first() {
            out.push(completion);
        }
    }

    /// Drops the configs of streams the executor no longer has open (after
    /// a crash: those that failed to open again).
    fn forget_closed(&mut self) {
        let streams: Vec<String> = self.open.keys().cloned().collect();
        for stream in streams {
            if self.exec.store(&stream).is_none() {
                self.open.remove(&stream);
            }
        }
    }

    /// A number in `0..=max`.
    fn draw(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.rng.next_u64() % n,
            None => self.rng.next_u64(),
        }
    }

    fn chance(&mut self, per_million: u32) -> bool {
        self.rng.next_u32() % 1_000_000 < per_million
    }
}

fn executor(disk: &SimDisk) -> Executor<SimBackend> {
    let disk = disk.clone();
    let make_disk: Box<dyn FnMut() -> SimDisk> = Box::new(move || disk.clone());
    Executor::new(FileBackend::new(STREAMS_DIR, make_disk))
}
