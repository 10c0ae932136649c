//! Stream metadata through the executor: `SaveMeta` and `ListStreams` on
//! the simulated disk, the real one and in memory; memory streams; and a
//! crash at every write point of a workload that saves metadata, after
//! which every completed save is there, whole.

#![allow(clippy::disallowed_methods)] // a temp dir for the real-disk test

mod common;

use common::msg;
use natrix_storage::ops::{Completion, Done, OpId, StorageOp};
use natrix_storage::{
    Backend, Executor, FileBackend, MemBackend, MetaError, SimDisk, SimDiskConfig, StoreError,
    StoredStream, StreamConfig,
};
use std::collections::BTreeMap;

fn open(id: u64, stream: &str, memory: bool) -> StorageOp {
    StorageOp::Open {
        id: OpId(id),
        stream: stream.into(),
        config: StreamConfig {
            memory,
            ..StreamConfig::default()
        },
    }
}

fn save(id: u64, stream: &str, meta: &[u8]) -> StorageOp {
    StorageOp::SaveMeta {
        id: OpId(id),
        stream: stream.into(),
        meta: meta.to_vec(),
    }
}

fn append(id: u64, stream: &str, seq: u64) -> StorageOp {
    StorageOp::Append {
        id: OpId(id),
        stream: stream.into(),
        msgs: vec![msg(seq, "orders.new", 40)],
    }
}

fn sync(id: u64, stream: &str) -> StorageOp {
    StorageOp::Sync {
        id: OpId(id),
        stream: stream.into(),
    }
}

fn list<B: Backend>(exec: &mut Executor<B>) -> Vec<StoredStream> {
    let c = exec.execute(StorageOp::ListStreams { id: OpId(999) });
    assert_eq!((c.stream.as_str(), c.durable_seq), ("", 0), "{c:?}");
    match c.result {
        Ok(Done::Streams(streams)) => streams,
        other => panic!("ListStreams returned {other:?}"),
    }
}

fn stored(name: &str, meta: Result<&[u8], MetaError>) -> StoredStream {
    StoredStream {
        name: name.into(),
        meta: meta.map(<[u8]>::to_vec),
    }
}

type SimExecutor = Executor<FileBackend<SimDisk, Box<dyn FnMut() -> SimDisk>>>;

fn sim_executor(disk: &SimDisk) -> SimExecutor {
    let disk = disk.clone();
    let make_disk: Box<dyn FnMut() -> SimDisk> = Box::new(move || disk.clone());
    Executor::new(FileBackend::new("data/streams", make_disk))
}

fn ok(c: Completion) -> Done {
    c.result
        .unwrap_or_else(|e| panic!("op {:?} failed: {e:?}", c.id))
}

/// Saves and lists through any backend; `restart` gives a fresh executor
/// over the same storage, or `None` if nothing outlives the executor.
fn saves_and_lists<B: Backend>(
    mut exec: Executor<B>,
    mut restart: impl FnMut() -> Option<Executor<B>>,
) {
    assert_eq!(list(&mut exec), vec![]);
    assert!(matches!(
        ok(exec.execute(open(1, "acct.opened", false))),
        Done::Opened { .. }
    ));
    // Metadata before the stream is ever opened: its place is made.
    assert_eq!(
        ok(exec.execute(save(2, "acct.saved", b"one"))),
        Done::MetaSaved
    );
    assert_eq!(
        ok(exec.execute(save(3, "acct.twice", b"first, longer"))),
        Done::MetaSaved
    );
    assert_eq!(
        ok(exec.execute(save(4, "acct.twice", b"second"))),
        Done::MetaSaved
    );
    // Opening a stream keeps its metadata.
    let _ = ok(exec.execute(open(5, "acct.twice", false)));
    let expected = vec![
        stored("acct.opened", Err(MetaError::Missing)),
        stored("acct.saved", Ok(b"one")),
        stored("acct.twice", Ok(b"second")),
    ];
    assert_eq!(list(&mut exec), expected);
    let c = exec.execute(StorageOp::Remove {
        id: OpId(6),
        stream: "acct.saved".into(),
    });
    assert_eq!(c.result, Ok(Done::Removed));
    let expected = vec![expected[0].clone(), expected[2].clone()];
    assert_eq!(list(&mut exec), expected);
    drop(exec);
    if let Some(mut exec) = restart() {
        assert_eq!(list(&mut exec), expected, "after a restart");
        let _ = ok(exec.execute(open(7, "acct.twice", false)));
        assert_eq!(list(&mut exec), expected, "after reopening");
    }
}

#[test]
fn metadata_is_saved_listed_and_removed_on_the_simulated_disk() {
    let disk = SimDisk::with_seed(1);
    saves_and_lists(sim_executor(&disk), || {
        disk.crash();
        Some(sim_executor(&disk))
    });
}

#[test]
fn metadata_is_saved_listed_and_removed_in_memory() {
    saves_and_lists(Executor::new(MemBackend::default()), || None);
}

#[cfg(feature = "fs")]
#[test]
fn metadata_is_saved_listed_and_removed_on_the_real_disk() {
    let root = std::env::temp_dir().join(format!("natrix-storage-meta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let executor = || {
        let root = root.clone();
        Executor::new(FileBackend::new("streams", move || {
            natrix_storage::FsDisk::new(root.clone())
        }))
    };
    saves_and_lists(executor(), || Some(executor()));
    assert!(
        root.join("streams/acct.twice/meta").is_file()
            && !root.join("streams/acct.twice/meta.new").exists(),
        "the meta file is in the stream's directory, the new one renamed over it"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_damaged_meta_file_is_reported_not_returned() {
    let disk = SimDisk::with_seed(2);
    let mut exec = sim_executor(&disk);
    let _ = ok(exec.execute(save(1, "good", b"config of good")));
    let _ = ok(exec.execute(save(2, "bad", b"config of bad")));
    disk.flip_bit("data/streams/bad/meta", 17, 0x10);
    let streams = list(&mut exec);
    assert_eq!(streams[1], stored("good", Ok(b"config of good")));
    assert_eq!(streams[0].name, "bad");
    assert!(
        matches!(streams[0].meta, Err(MetaError::Damaged(_))),
        "{streams:?}"
    );
    // Saving again repairs it.
    let _ = ok(exec.execute(save(3, "bad", b"config of bad, again")));
    assert_eq!(
        list(&mut exec)[0],
        stored("bad", Ok(b"config of bad, again"))
    );
}

#[test]
fn a_save_waits_for_the_syncs_before_it_in_a_batch() {
    let disk = SimDisk::with_seed(3);
    let mut exec = sim_executor(&disk);
    let _ = ok(exec.execute(open(1, "s", false)));
    let mut out = Vec::new();
    exec.execute_batch(
        [
            append(2, "s", 1),
            sync(3, "s"),
            save(4, "s", b"m"),
            sync(5, "s"),
        ],
        &mut out,
    );
    let order: Vec<u64> = out.iter().map(|c| c.id.0).collect();
    assert_eq!(
        order,
        [2, 3, 4, 5],
        "the first sync is served before the save"
    );
    assert!(out.iter().all(|c| c.result.is_ok()), "{out:?}");
    assert_eq!(out[2].durable_seq, 1);
}

#[test]
fn stream_names_are_checked_before_they_become_paths() {
    let disk = SimDisk::with_seed(4);
    let mut exec = sim_executor(&disk);
    for bad in ["", ".", "..", "../x", "a/b", ".hidden"] {
        for op in [
            save(1, bad, b"m"),
            open(2, bad, false),
            StorageOp::Remove {
                id: OpId(3),
                stream: bad.into(),
            },
        ] {
            let c = exec.execute(op);
            assert!(matches!(c.result, Err(StoreError::Invalid(_))), "{c:?}");
        }
    }
    assert!(disk.files().is_empty(), "{:?}", disk.files());
    let _ = ok(exec.execute(save(4, "%24G.KV_x%2Ey", b"m")));
    assert_eq!(list(&mut exec), vec![stored("%24G.KV_x%2Ey", Ok(b"m"))]);
}

#[test]
fn a_memory_stream_is_listed_after_a_restart_and_comes_back_empty() {
    let disk = SimDisk::with_seed(5);
    let mut exec = sim_executor(&disk);
    let _ = ok(exec.execute(open(1, "mem", true)));
    let _ = ok(exec.execute(save(2, "mem", b"memory config")));
    for seq in 1..=5 {
        let _ = ok(exec.execute(append(10 + seq, "mem", seq)));
    }
    let fsyncs = exec.fsyncs();
    let c = exec.execute(sync(20, "mem"));
    assert_eq!((c.result, c.durable_seq), (Ok(Done::Synced), 5));
    assert_eq!(exec.fsyncs(), fsyncs, "a memory stream takes no fsync");
    let c = exec.execute(StorageOp::Read {
        id: OpId(21),
        stream: "mem".into(),
        read: natrix_storage::ops::Read::Seq(3),
    });
    assert!(matches!(c.result, Ok(Done::Read(Some(ref m))) if m.seq == 3));
    assert_eq!(
        disk.files(),
        vec!["data/streams/mem/meta".to_string()],
        "no block file for a memory stream"
    );
    drop(exec);
    disk.crash();
    let mut exec = sim_executor(&disk);
    assert_eq!(list(&mut exec), vec![stored("mem", Ok(b"memory config"))]);
    match ok(exec.execute(open(22, "mem", true))) {
        Done::Opened { state, .. } => assert_eq!(state.msgs, 0, "{state:?}"),
        other => panic!("{other:?}"),
    }
}

/// What one run saw complete, and what failed or was in flight when it
/// crashed.
#[derive(Default)]
struct Saves {
    /// Each stream's newest completed save.
    completed: BTreeMap<String, Vec<u8>>,
    /// Saves that failed (or were cut short by the crash) since the
    /// stream's newest completed one: any of them may have reached the disk.
    failed: BTreeMap<String, Vec<Vec<u8>>>,
    /// Streams an operation created (a directory may survive without meta).
    touched: Vec<String>,
}

const STREAMS: [&str; 3] = ["a", "acct%2E1.b", "c"];

/// A seeded workload: opens (file and memory streams), saves of metadata,
/// some of them over earlier ones and larger than a page, appends and
/// syncs between them.
fn workload(seed: u64, len: usize) -> Vec<StorageOp> {
    let mut rng = natrix_storage::rng::SplitMix64::new(seed);
    let mut ops = Vec::new();
    let mut seqs = [0u64; 3];
    for i in 0..len {
        let s = rng.below(3) as usize;
        let id = i as u64 + 1;
        ops.push(match rng.below(6) {
            0 => open(id, STREAMS[s], s == 2),
            1 | 2 => {
                let bytes = 1 + rng.below(1500) as usize;
                save(id, STREAMS[s], &vec![(seed as u8) ^ id as u8; bytes])
            }
            3 | 4 => {
                seqs[s] += 1;
                append(id, STREAMS[s], seqs[s])
            }
            _ => sync(id, STREAMS[s]),
        });
    }
    ops
}

/// Runs the workload until the disk halts (the process died there).
fn run_until_crash(disk: &SimDisk, ops: &[StorageOp]) -> Saves {
    let mut exec = sim_executor(disk);
    let mut saves = Saves::default();
    for op in ops {
        let result = exec.execute(op.clone()).result;
        match op {
            StorageOp::SaveMeta { stream, meta, .. } => {
                saves.touched.push(stream.clone());
                if result.is_ok() {
                    saves.completed.insert(stream.clone(), meta.clone());
                    saves.failed.remove(stream);
                } else {
                    let failed = saves.failed.entry(stream.clone()).or_default();
                    failed.push(meta.clone());
                }
            }
            StorageOp::Open { stream, .. } => saves.touched.push(stream.clone()),
            _ => {}
        }
        // Ops on a stream that was never opened fail; a halted disk fails all.
        if result.is_err() && disk_halted(disk) {
            break;
        }
    }
    saves
}

fn disk_halted(disk: &SimDisk) -> bool {
    let mut probe = disk.clone();
    natrix_storage::Disk::list(&mut probe, "").is_err()
}

/// What the crashes inside saves left. The halted write never happens, so
/// the directory sync that makes a rename durable is always the last step
/// a crashed save did not take: it keeps the old meta. The new one would
/// be allowed too.
#[derive(Default)]
struct Outcomes {
    points: u64,
    old_kept: u64,
    new_kept: u64,
}

fn check_listing(disk: &SimDisk, saves: &Saves, outcomes: &mut Outcomes, context: &str) {
    let mut exec = sim_executor(disk);
    let listed = list(&mut exec);
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "{context}: listed in name order");
    for s in &listed {
        assert!(
            saves.touched.contains(&s.name),
            "{context}: {} was never created",
            s.name
        );
        let failed = saves.failed.get(&s.name).cloned().unwrap_or_default();
        match (&s.meta, saves.completed.get(&s.name)) {
            (Ok(meta), completed) if Some(meta) == completed => {
                outcomes.old_kept += u64::from(!failed.is_empty());
            }
            (Ok(meta), _) if failed.contains(meta) => outcomes.new_kept += 1,
            (Err(MetaError::Missing), None) => {}
            (got, completed) => panic!(
                "{context}: {} has {:?} bytes, completed save {:?}, failed saves {:?}",
                s.name,
                got.as_ref().map(Vec::len),
                completed.map(Vec::len),
                failed.iter().map(Vec::len).collect::<Vec<_>>()
            ),
        }
    }
    for name in saves.completed.keys() {
        assert!(
            names.contains(&name.as_str()),
            "{context}: {name} saved, then lost"
        );
    }
    // It keeps working: a save after recovery survives the next crash.
    let _ = ok(exec.execute(save(1000, "c", b"after recovery")));
    drop(exec);
    disk.crash();
    let listed = list(&mut sim_executor(disk));
    assert!(
        listed.contains(&stored("c", Ok(b"after recovery"))),
        "{context}: {listed:?}"
    );
}

#[test]
fn a_crash_at_every_write_point_keeps_each_meta_old_or_new_and_whole() {
    let mut outcomes = Outcomes::default();
    for seed in 0..40 {
        let ops = workload(seed, 24);
        let probe = SimDisk::with_seed(seed);
        let full = run_until_crash(&probe, &ops);
        assert!(full.failed.is_empty(), "seed {seed}: no fault, no failure");
        let points = probe.mutations();
        for point in 1..=points {
            let disk = SimDisk::with_seed(seed ^ point.rotate_left(17));
            disk.halt_after(point);
            let saves = run_until_crash(&disk, &ops);
            disk.crash();
            let context = format!("seed {seed} crash at write {point}");
            check_listing(&disk, &saves, &mut outcomes, &context);
            outcomes.points += 1;
        }
        // And a power loss after the whole workload, with no halt.
        probe.crash();
        check_listing(&probe, &full, &mut outcomes, &format!("seed {seed}"));
    }
    eprintln!(
        "{} crash points; a crash inside a save kept the old meta {} times, the new one {}",
        outcomes.points, outcomes.old_kept, outcomes.new_kept
    );
    assert!(outcomes.points > 1000, "only {} points", outcomes.points);
    assert!(
        outcomes.old_kept > 500,
        "crashes must land inside saves that replace a meta"
    );
}

#[test]
fn random_io_errors_never_damage_a_meta_or_lose_a_completed_save() {
    let (mut failed_saves, mut outcomes) = (0, Outcomes::default());
    for seed in 0..150 {
        let disk = SimDisk::new(SimDiskConfig {
            seed,
            io_error_per_million: 40_000,
            ..SimDiskConfig::default()
        });
        let ops = workload(seed, 24);
        let saves = run_until_crash(&disk, &ops);
        failed_saves += saves.failed.values().map(Vec::len).sum::<usize>();
        disk.set_config(SimDiskConfig {
            seed,
            ..SimDiskConfig::default()
        });
        disk.crash();
        check_listing(&disk, &saves, &mut outcomes, &format!("seed {seed}"));
    }
    eprintln!(
        "{failed_saves} saves failed; after the crash {} streams kept the completed meta, {} a failed save's",
        outcomes.old_kept, outcomes.new_kept
    );
    assert!(failed_saves > 30, "only {failed_saves} saves failed");
}
