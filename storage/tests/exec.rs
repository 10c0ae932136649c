//! The executor: operations in, completions out, group commit, and what
//! disk failures look like from the core's side.

use crate::common;

use common::msg;
use natrix_storage::ops::{Done, OpId, Read, StorageOp};
use natrix_storage::{
    DiskErrorKind, Executor, FileBackend, MemBackend, Purge, SimDisk, SimDiskConfig, Store,
    StoreError, StreamConfig,
};

fn open(id: u64) -> StorageOp {
    StorageOp::Open {
        id: OpId(id),
        stream: "orders".into(),
        config: StreamConfig::default(),
    }
}

fn append(id: u64, seq: u64) -> StorageOp {
    StorageOp::Append {
        id: OpId(id),
        stream: "orders".into(),
        msgs: vec![msg(seq, "orders.new", 100)],
    }
}

fn sync(id: u64) -> StorageOp {
    StorageOp::Sync {
        id: OpId(id),
        stream: "orders".into(),
    }
}

#[test]
fn one_fsync_serves_every_sync_in_a_batch() {
    let disk = SimDisk::with_seed(1);
    let mut exec = Executor::new(FileBackend::new("streams", || disk.clone()));
    let opened = exec.execute(open(1));
    assert!(matches!(opened.result, Ok(Done::Opened { .. })));
    let mut ops = Vec::new();
    for seq in 1..=64 {
        ops.push(append(100 + seq, seq));
        ops.push(sync(1000 + seq));
    }
    let mut out = Vec::new();
    let fsyncs = exec.fsyncs();
    exec.execute_batch(ops, &mut out);
    assert_eq!(
        exec.fsyncs() - fsyncs,
        1,
        "group commit: one fsync for 64 syncs"
    );
    assert_eq!(out.len(), 128);
    for c in &out {
        assert!(c.result.is_ok(), "{c:?}");
        if c.id.0 >= 1000 {
            assert_eq!(
                c.durable_seq, 64,
                "a sync completion covers every append before it"
            );
        }
    }
    // Appends complete before they are durable: their completions say so.
    let c = exec.execute(append(2000, 65));
    assert_eq!((c.id, c.durable_seq), (OpId(2000), 64));
    assert_eq!(exec.execute(sync(2001)).durable_seq, 65);
}

#[test]
fn completions_carry_results() {
    let mut exec = Executor::new(MemBackend::default());
    let _ = exec.execute(open(1));
    for seq in 1..=3 {
        let _ = exec.execute(append(seq + 1, seq));
    }
    let read = |id, read| StorageOp::Read {
        id: OpId(id),
        stream: "orders".into(),
        read,
    };
    let c = exec.execute(read(10, Read::LastBySubject("orders.new".into())));
    assert!(matches!(c.result, Ok(Done::Read(Some(ref m))) if m.seq == 3));
    let c = exec.execute(read(
        11,
        Read::Next {
            from_seq: 2,
            filter: Some("orders.*".into()),
        },
    ));
    assert!(matches!(c.result, Ok(Done::Read(Some(ref m))) if m.seq == 2));
    // Message n is stored at n ms: the first at or after 1.5 ms is 2.
    let c = exec.execute(read(
        13,
        Read::AtTime {
            unix_nanos: 1_500_000,
        },
    ));
    assert!(matches!(c.result, Ok(Done::Read(Some(ref m))) if m.seq == 2));
    let c = exec.execute(read(
        14,
        Read::AtTime {
            unix_nanos: 3_000_001,
        },
    ));
    assert!(matches!(c.result, Ok(Done::Read(None))));
    let c = exec.execute(StorageOp::Purge {
        id: OpId(12),
        stream: "orders".into(),
        purge: Purge::default(),
    });
    assert_eq!(c.result, Ok(Done::Purged(3)));
    let c = exec.execute(StorageOp::Sync {
        id: OpId(13),
        stream: "nope".into(),
    });
    assert_eq!(c.result, Err(StoreError::NoStream));
    let c = exec.execute(StorageOp::Open {
        id: OpId(14),
        stream: "../etc".into(),
        config: StreamConfig::default(),
    });
    assert!(matches!(c.result, Err(StoreError::Invalid(_))));
}

#[test]
fn a_removed_stream_is_gone_after_a_crash() {
    let disk = SimDisk::with_seed(2);
    let mut exec = Executor::new(FileBackend::new("streams", || disk.clone()));
    let _ = exec.execute(open(1));
    let _ = exec.execute(append(2, 1));
    let _ = exec.execute(sync(3));
    let c = exec.execute(StorageOp::Remove {
        id: OpId(4),
        stream: "orders".into(),
    });
    assert_eq!(c.result, Ok(Done::Removed));
    disk.crash();
    let mut exec = Executor::new(FileBackend::new("streams", || disk.clone()));
    let c = exec.execute(open(5));
    assert!(
        matches!(c.result, Ok(Done::Opened { ref state, .. }) if state.msgs == 0),
        "{c:?}"
    );
}

#[test]
fn a_full_disk_fails_the_append_and_nothing_else() {
    let disk = SimDisk::new(SimDiskConfig {
        seed: 3,
        capacity_bytes: Some(4096),
        ..SimDiskConfig::default()
    });
    let mut exec = Executor::new(FileBackend::new("streams", || disk.clone()));
    let _ = exec.execute(open(1));
    let mut seq = 1;
    let full = loop {
        let c = exec.execute(append(10 + seq, seq));
        match c.result {
            Ok(_) => seq += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(full, StoreError::Disk(ref e) if e.kind == DiskErrorKind::NoSpace),
        "{full:?}"
    );
    let store = exec.store("orders").unwrap();
    assert_eq!(
        store.state().last_seq,
        seq - 1,
        "the failed append left no trace"
    );
    // The store keeps serving reads and syncs what it has.
    assert_eq!(store.get(1).unwrap().unwrap().seq, 1);
    assert_eq!(store.sync().unwrap(), seq - 1);
    disk.crash();
    let (mut store, _) = common::open_sim_at(&disk, "streams/orders", &StreamConfig::default());
    assert_eq!(store.state().last_seq, seq - 1);
    assert_eq!(store.get(seq - 1).unwrap().unwrap().seq, seq - 1);
}

#[test]
fn a_failed_fsync_fails_the_store_until_it_is_reopened() {
    let disk = SimDisk::with_seed(4);
    let (mut store, _) = common::open_sim_at(&disk, "s", &StreamConfig::default());
    store.append(&[msg(1, "a", 10)]).unwrap();
    store.sync().unwrap();
    store.append(&[msg(2, "a", 10)]).unwrap();
    disk.fail_next(DiskErrorKind::Io);
    assert!(matches!(store.sync(), Err(StoreError::Disk(_))));
    assert_eq!(store.durable_seq(), 1, "nothing new is claimed durable");
    // After a failed fsync the page cache may have dropped the writes:
    // the store refuses to pretend otherwise.
    assert_eq!(store.sync(), Err(StoreError::Failed));
    assert_eq!(store.append(&[msg(3, "a", 1)]), Err(StoreError::Failed));
    drop(store);
    disk.crash();
    let (mut store, _) = common::open_sim_at(&disk, "s", &StreamConfig::default());
    assert!(store.state().last_seq >= 1);
    assert_eq!(store.get(1).unwrap().unwrap().seq, 1);
    store
        .append(&[msg(store.state().last_seq + 1, "a", 1)])
        .unwrap();
}

#[test]
fn random_io_errors_never_lose_synced_messages() {
    for seed in 0..100 {
        let disk = SimDisk::new(SimDiskConfig {
            seed,
            io_error_per_million: 50_000,
            ..SimDiskConfig::default()
        });
        let config = common::small_blocks(false);
        let Ok((mut store, _)) = natrix_storage::FileStore::open(disk.clone(), "s", config.clone())
        else {
            continue;
        };
        let mut durable = Vec::new();
        let mut appended = Vec::new();
        for seq in 1..=60u64 {
            let m = msg(seq, "a", (seq as usize * 13) % 150);
            if store.append(std::slice::from_ref(&m)).is_ok() {
                appended.push(m);
            }
            if seq % 5 == 0 {
                match store.sync() {
                    Ok(d) => durable.extend(appended.drain(..).filter(|m| m.seq <= d)),
                    Err(StoreError::Failed) => break,
                    Err(_) => {}
                }
            }
        }
        drop(store);
        disk.set_config(SimDiskConfig {
            seed,
            ..SimDiskConfig::default()
        });
        disk.crash();
        let (mut store, report) =
            natrix_storage::FileStore::open(disk.clone(), "s", config).unwrap();
        assert!(report.corruption.is_empty(), "seed {seed}: {report:?}");
        for m in &durable {
            assert_eq!(
                store.get(m.seq).unwrap().as_ref(),
                Some(m),
                "seed {seed}: synced message lost"
            );
        }
    }
}

/// A batch read walks the stream with reads ahead of it: what it returns
/// is what reading each message alone returns, across block boundaries,
/// around deleted messages and for messages larger than a read ahead.
#[test]
fn batch_reads_return_what_single_reads_return() {
    let disk = SimDisk::with_seed(7);
    let mut exec = Executor::new(FileBackend::new("streams", || disk.clone()));
    let config = StreamConfig {
        block_size_bytes: 256 * 1024,
        ..StreamConfig::default()
    };
    let opened = exec.execute(StorageOp::Open {
        id: OpId(1),
        stream: "orders".into(),
        config,
    });
    assert!(matches!(opened.result, Ok(Done::Opened { .. })));
    // Small messages, some larger than a read ahead, over several blocks.
    let sizes = |seq: u64| match seq % 17 {
        0 => 100_000,
        5 => 3_000,
        _ => 40 + (seq as usize * 7) % 300,
    };
    let msgs: Vec<_> = (1..=300)
        .map(|seq| {
            msg(
                seq,
                if seq % 3 == 0 {
                    "orders.paid"
                } else {
                    "orders.new"
                },
                sizes(seq),
            )
        })
        .collect();
    let appended = exec.execute(StorageOp::Append {
        id: OpId(2),
        stream: "orders".into(),
        msgs,
    });
    assert!(appended.result.is_ok(), "{appended:?}");
    for seq in [4, 50, 51, 200] {
        let deleted = exec.execute(StorageOp::Delete {
            id: OpId(10 + seq),
            stream: "orders".into(),
            seq,
        });
        assert!(deleted.result.is_ok(), "{deleted:?}");
    }
    let batch = |exec: &mut Executor<_>, from_seq, filter: &str| {
        let c = exec.execute(StorageOp::ReadBatch {
            id: OpId(500),
            stream: "orders".into(),
            from_seq,
            filters: vec![filter.to_string()],
            max_msgs: 1000,
            max_bytes: 0,
        });
        match c.result {
            Ok(Done::Batch { msgs, .. }) => msgs,
            other => panic!("{other:?}"),
        }
    };
    for (from_seq, filter) in [(1, ">"), (37, ">"), (1, "orders.paid")] {
        let got = batch(&mut exec, from_seq, filter);
        let mut want = Vec::new();
        for seq in from_seq..=300 {
            let c = exec.execute(StorageOp::Read {
                id: OpId(600),
                stream: "orders".into(),
                read: Read::Seq(seq),
            });
            if let Ok(Done::Read(Some(m))) = c.result
                && (filter == ">" || m.subject == filter)
            {
                want.push(m);
            }
        }
        assert!(!want.is_empty());
        assert_eq!(got, want, "from {from_seq}, filter {filter}");
    }
}
