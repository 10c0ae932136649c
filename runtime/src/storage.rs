//! The storage thread: where the runtime executes the storage operations
//! the core emits.
//!
//! One `std::thread` named `natrix-storage` owns a natrix-storage
//! [`Executor`] over the real filesystem. The driver submits
//! [`StorageOp`]s through a [`StorageThread`] (never blocking: the queue is
//! a channel) and receives [`Completion`]s on a tokio channel, so the core
//! task can `select!` on them beside its sockets and timers.
//!
//! The thread takes everything queued at once and runs it as one batch
//! (`Executor::execute_batch`): every `Sync` of a stream in the batch is
//! served by one fsync, so the longer an fsync takes, the more publishes the
//! next one covers — group commit without a timer. The completions of a
//! batch are sent when the whole batch is done.
//!
//! Bounds: a batch takes at most [`MAX_BATCH_OPS`] operations (plus the
//! rest of a group submitted together), and the queues hold no more than
//! the operations the core has in flight, which the core limits.

use natrix_storage::ops::{Completion, StorageOp};
use natrix_storage::{Executor, FileBackend, FsDisk};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// A batch stops taking single operations once it holds this many.
pub const MAX_BATCH_OPS: usize = 1024;

/// The directory under the storage root that holds one directory per stream.
pub const STREAMS_DIR: &str = "streams";

/// What the driver hands the thread: one operation, or a group that must
/// land in the same batch (and so share its fsyncs).
enum Work {
    One(StorageOp),
    Group(Vec<StorageOp>),
}

/// Counters the thread publishes after each batch, before its completions.
#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    ops: AtomicU64,
    fsyncs: AtomicU64,
}

/// What the thread has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StorageStats {
    pub batches: u64,
    pub ops: u64,
    /// fsyncs taken for `Sync` operations: at most one per stream per batch.
    pub fsyncs: u64,
}

/// The driver's side of the storage thread. Dropping it (or calling
/// [`StorageThread::shutdown`]) lets the thread finish everything already
/// submitted, send those completions, and exit; both wait for that.
pub struct StorageThread {
    work: Option<mpsc::Sender<Work>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl StorageThread {
    /// Starts the thread with streams under `root_dir/streams/`. Returns
    /// the handle and the channel the completions arrive on.
    pub fn spawn(
        root_dir: impl Into<PathBuf>,
    ) -> io::Result<(StorageThread, UnboundedReceiver<Completion>)> {
        let root_dir = root_dir.into();
        std::fs::create_dir_all(&root_dir)?;
        let (work_tx, work_rx) = mpsc::channel();
        let (done_tx, done_rx) = unbounded_channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("natrix-storage".into())
            .spawn(move || run(root_dir, work_rx, done_tx, &thread_counters))?;
        let handle = StorageThread {
            work: Some(work_tx),
            thread: Some(thread),
            counters,
        };
        Ok((handle, done_rx))
    }

    /// Queues one operation; its completion arrives on the channel.
    pub fn submit(&self, op: StorageOp) {
        self.send(Work::One(op));
    }

    /// Queues operations that are executed in one batch, so all their
    /// `Sync`s of a stream share one fsync (what the driver submits after
    /// one round of core input).
    pub fn submit_all(&self, ops: impl IntoIterator<Item = StorageOp>) {
        let ops: Vec<StorageOp> = ops.into_iter().collect();
        if !ops.is_empty() {
            self.send(Work::Group(ops));
        }
    }

    fn send(&self, work: Work) {
        let sent = self.work.as_ref().map(|tx| tx.send(work));
        // The thread only exits once this sender is gone, unless it
        // panicked: then no completion will ever come, and the driver must
        // hear of it rather than wait for acks forever.
        assert!(
            matches!(sent, Some(Ok(()))),
            "the natrix-storage thread has died"
        );
    }

    pub fn stats(&self) -> StorageStats {
        let c = &self.counters;
        StorageStats {
            batches: c.batches.load(Ordering::Acquire),
            ops: c.ops.load(Ordering::Acquire),
            fsyncs: c.fsyncs.load(Ordering::Acquire),
        }
    }

    /// Finishes every submitted operation, then stops the thread. Err if
    /// the thread panicked.
    pub fn shutdown(mut self) -> std::thread::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> std::thread::Result<()> {
        // Closing the queue is the signal: the thread drains what is left,
        // then its `recv` fails.
        drop(self.work.take());
        match self.thread.take() {
            Some(thread) => thread.join(),
            None => Ok(()),
        }
    }
}

impl Drop for StorageThread {
    fn drop(&mut self) {
        // A panic on the thread has already been printed; nothing more to
        // say from a destructor.
        let _ = self.stop();
    }
}

/// The thread's loop: wait for work, take everything queued, run it as
/// one batch, send the completions.
fn run(
    root_dir: PathBuf,
    work: mpsc::Receiver<Work>,
    done: UnboundedSender<Completion>,
    counters: &Counters,
) {
    let disk_root = root_dir.clone();
    let backend = FileBackend::new(STREAMS_DIR, move || FsDisk::new(disk_root.clone()));
    let mut exec = Executor::new(backend);
    let mut batch = Vec::new();
    let mut completions = Vec::new();
    while let Ok(first) = work.recv() {
        take(first, &mut batch);
        while batch.len() < MAX_BATCH_OPS {
            match work.try_recv() {
                Ok(next) => take(next, &mut batch),
                Err(_) => break,
            }
        }
        let ops = batch.len() as u64;
        exec.execute_batch(batch.drain(..), &mut completions);
        counters.batches.fetch_add(1, Ordering::AcqRel);
        counters.ops.fetch_add(ops, Ordering::AcqRel);
        counters.fsyncs.store(exec.fsyncs(), Ordering::Release);
        for completion in completions.drain(..) {
            // A driver that stopped listening still gets its writes done.
            let _ = done.send(completion);
        }
    }
}

fn take(work: Work, batch: &mut Vec<StorageOp>) {
    match work {
        Work::One(op) => batch.push(op),
        Work::Group(ops) => batch.extend(ops),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natrix_storage::ops::{Done, OpId, Read};
    use natrix_storage::{Msg, StreamConfig};

    /// A directory under the temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "natrix-storage-thread-{name}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn msg(seq: u64) -> Msg {
        Msg {
            seq,
            ts_unix_nanos: seq * 1_000,
            subject: format!("orders.{}", seq % 3),
            headers: Vec::new(),
            payload: format!("order {seq}").into_bytes(),
        }
    }

    fn open(id: u64, stream: &str) -> StorageOp {
        StorageOp::Open {
            id: OpId(id),
            stream: stream.into(),
            config: StreamConfig::default(),
        }
    }

    fn append(id: u64, stream: &str, seq: u64) -> StorageOp {
        StorageOp::Append {
            id: OpId(id),
            stream: stream.into(),
            msgs: vec![msg(seq)],
        }
    }

    fn sync(id: u64, stream: &str) -> StorageOp {
        StorageOp::Sync {
            id: OpId(id),
            stream: stream.into(),
        }
    }

    fn recv(rx: &mut UnboundedReceiver<Completion>) -> Completion {
        rx.blocking_recv()
            .expect("the storage thread sends a completion")
    }

    fn opened_msgs(c: &Completion) -> u64 {
        match &c.result {
            Ok(Done::Opened { state, .. }) => state.msgs,
            other => panic!("open failed: {other:?}"),
        }
    }

    #[test]
    fn a_sync_makes_the_appends_before_it_durable() {
        let dir = TempDir::new("sync");
        let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
        storage.submit(open(1, "orders"));
        assert_eq!(opened_msgs(&recv(&mut rx)), 0);
        for seq in 1..=10 {
            storage.submit(append(100 + seq, "orders", seq));
        }
        storage.submit(sync(200, "orders"));
        let mut synced = None;
        for _ in 0..11 {
            let c = recv(&mut rx);
            assert!(c.result.is_ok(), "{c:?}");
            if c.id == OpId(200) {
                assert_eq!(c.result, Ok(Done::Synced));
                synced = Some(c.durable_seq);
            } else {
                assert!(matches!(c.result, Ok(Done::Appended(_))), "{c:?}");
            }
        }
        assert_eq!(synced, Some(10), "the sync covers all ten appends");
        storage.shutdown().unwrap();
    }

    #[test]
    fn syncs_submitted_together_cost_one_fsync_per_stream() {
        let dir = TempDir::new("group");
        let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
        storage.submit_all([open(1, "a"), open(2, "b")]);
        for _ in 0..2 {
            assert_eq!(opened_msgs(&recv(&mut rx)), 0);
        }
        let before = storage.stats();
        let mut ops = Vec::new();
        for seq in 1..=64 {
            for (i, stream) in ["a", "b"].into_iter().enumerate() {
                let id = 1000 * (i as u64 + 1) + 2 * seq;
                ops.push(append(id, stream, seq));
                ops.push(sync(id + 1, stream));
            }
        }
        storage.submit_all(ops);
        let mut syncs = 0;
        for _ in 0..256 {
            let c = recv(&mut rx);
            assert!(c.result.is_ok(), "{c:?}");
            if c.result == Ok(Done::Synced) {
                assert_eq!(c.durable_seq, 64, "{c:?}");
                syncs += 1;
            }
        }
        assert_eq!(syncs, 128);
        let after = storage.stats();
        assert_eq!(after.fsyncs - before.fsyncs, 2, "one fsync per stream");
        assert_eq!(after.batches - before.batches, 1);
        assert_eq!(after.ops - before.ops, 256);
    }

    #[test]
    fn data_survives_stopping_the_thread_and_reopening() {
        let dir = TempDir::new("recover");
        {
            let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
            storage.submit(open(1, "orders"));
            assert_eq!(opened_msgs(&recv(&mut rx)), 0);
            storage.submit_all((1..=100).map(|seq| append(seq + 1, "orders", seq)));
            storage.submit(sync(500, "orders"));
            let last = (0..101).map(|_| recv(&mut rx)).last().unwrap();
            assert_eq!((last.id, last.durable_seq), (OpId(500), 100));
        } // dropped: the thread stops
        let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
        storage.submit(open(1, "orders"));
        assert_eq!(opened_msgs(&recv(&mut rx)), 100);
        storage.submit(StorageOp::Read {
            id: OpId(2),
            stream: "orders".into(),
            read: Read::Seq(42),
        });
        let c = recv(&mut rx);
        assert_eq!(c.result, Ok(Done::Read(Some(msg(42)))));
        assert_eq!(c.durable_seq, 100);
    }

    #[test]
    fn shutdown_finishes_queued_work() {
        let dir = TempDir::new("shutdown");
        let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
        storage.submit(open(1, "orders"));
        for seq in 1..=200 {
            storage.submit(append(seq + 1, "orders", seq));
        }
        storage.submit(sync(1000, "orders"));
        storage.shutdown().unwrap();
        // The thread is gone; every completion is already in the channel.
        let mut got = Vec::new();
        while let Ok(c) = rx.try_recv() {
            assert!(c.result.is_ok(), "{c:?}");
            got.push(c);
        }
        assert_eq!(got.len(), 202);
        let synced = got.iter().find(|c| c.id == OpId(1000)).unwrap();
        assert_eq!(synced.durable_seq, 200);
        assert!(rx.try_recv().is_err(), "the channel is closed");

        let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
        storage.submit(open(1, "orders"));
        assert_eq!(opened_msgs(&recv(&mut rx)), 200);
    }

    #[test]
    fn errors_come_back_as_completions() {
        let dir = TempDir::new("errors");
        let (storage, mut rx) = StorageThread::spawn(&dir.0).unwrap();
        storage.submit(sync(1, "missing"));
        let c = recv(&mut rx);
        assert_eq!(c.result, Err(natrix_storage::StoreError::NoStream));
        storage.submit(open(2, "../escape"));
        assert!(recv(&mut rx).result.is_err());
    }
}
