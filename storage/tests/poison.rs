//! A failed fsync poisons the store: after it the kernel may have dropped
//! the dirty pages (the simulated disk does, and then lets a retried fsync
//! succeed), so the store refuses every later write and sync, however
//! often it is retried, and never reports more durable than before. Only
//! reopening — recovery from what actually reached the disk — brings it
//! back, and what that recovery then calls durable survives a crash.

use crate::common;

use common::{dump, msg};
use natrix_storage::{DiskErrorKind, FileStore, Purge, SimDisk, Store, StoreError, StreamConfig};

fn config() -> StreamConfig {
    StreamConfig {
        block_size_bytes: 4096,
        ..StreamConfig::default()
    }
}

#[test]
fn after_a_failed_fsync_every_retry_fails_until_reopened() {
    let mut refused = 0;
    for seed in 0..40 {
        let disk = SimDisk::with_seed(seed);
        let (mut store, _) = FileStore::open(disk.clone(), "s", config()).unwrap();
        for seq in 1..=20 {
            store.append(&[msg(seq, "a.b", 100)]).unwrap();
        }
        assert_eq!(store.sync().unwrap(), 20);
        for seq in 21..=40 {
            store.append(&[msg(seq, "a.b", 100)]).unwrap();
        }
        // (Rolling to a new block may have synced some of them.)
        let durable = store.durable_seq();
        disk.fail_next(DiskErrorKind::Io);
        assert!(store.sync().is_err(), "seed {seed}: the fsync failed");
        for attempt in 0..10 {
            let seq = 41 + attempt;
            let tries = [
                store.sync().map(|_| ()),
                store.append(&[msg(seq, "a.b", 10)]).map(|_| ()),
                store.delete(5).map(|_| ()),
                store.purge(&Purge::default()).map(|_| ()),
                store.truncate(30).map(|_| ()),
                store.compact().map(|_| ()),
            ];
            for t in tries {
                assert_eq!(t, Err(StoreError::Failed), "seed {seed} attempt {attempt}");
                refused += 1;
            }
            assert_eq!(
                store.durable_seq(),
                durable,
                "seed {seed}: durability never moves"
            );
        }
        drop(store.close());
        // Reopened in the same process, the page cache still shows all 40
        // messages, some of them only in pages the fsync dropped: recovery
        // writes them again before it syncs, so what it serves is durable.
        let (mut store, _) = FileStore::open(disk.clone(), "s", config()).unwrap();
        let recovered = dump(&mut store);
        assert_eq!(recovered.state.last_seq, 40, "seed {seed}");
        assert_eq!(store.durable_seq(), 40);
        drop(store.close());
        disk.crash();
        let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
        assert_eq!(
            dump(&mut store),
            recovered,
            "seed {seed}: recovery called it durable, the crash lost it ({report:?})"
        );
    }
    eprintln!("{refused} retries after a failed fsync, every one refused");
}
