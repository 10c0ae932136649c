//! Stream metadata and consumer states through the executor: `SaveMeta`,
//! `SaveConsumer`, `RemoveConsumer` and `ListStreams` on the simulated
//! disk, the real one and in memory; memory streams; consumer saves
//! coalesced in a batch; and a crash at every write point of a workload
//! that saves metadata, and of consumer saves, after which every completed
//! save is there, whole.

#![allow(clippy::disallowed_methods)] // a temp dir for the real-disk test

use crate::common;

use common::msg;
use natrix_storage::ops::{Completion, Done, OpId, StorageOp};
use natrix_storage::{
    Backend, Executor, FileBackend, MemBackend, MetaError, SimDisk, SimDiskConfig, StoreError,
    StoredConsumer, StoredStream, StreamConfig,
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
        consumers: Vec::new(),
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

// Consumers.

fn save_consumer(id: u64, stream: &str, consumer: &str, state: &[u8]) -> StorageOp {
    StorageOp::SaveConsumer {
        id: OpId(id),
        stream: stream.into(),
        consumer: consumer.into(),
        state: state.to_vec(),
    }
}

fn remove_consumer(id: u64, stream: &str, consumer: &str) -> StorageOp {
    StorageOp::RemoveConsumer {
        id: OpId(id),
        stream: stream.into(),
        consumer: consumer.into(),
    }
}

/// The consumers `ListStreams` shows for `stream` (none if it is not listed).
fn consumers_of<B: Backend>(exec: &mut Executor<B>, stream: &str) -> Vec<StoredConsumer> {
    list(exec)
        .into_iter()
        .find(|s| s.name == stream)
        .map_or_else(Vec::new, |s| s.consumers)
}

fn consumer(name: &str, state: &[u8]) -> StoredConsumer {
    StoredConsumer {
        name: name.into(),
        state: Ok(state.to_vec()),
    }
}

fn run_batch<B: Backend>(exec: &mut Executor<B>, ops: Vec<StorageOp>) -> Vec<Completion> {
    let mut out = Vec::new();
    exec.execute_batch(ops, &mut out);
    out
}

/// Saves, replaces and removes consumers through any backend; `restart`
/// as in [`saves_and_lists`].
fn consumers_are_kept<B: Backend>(
    mut exec: Executor<B>,
    mut restart: impl FnMut() -> Option<Executor<B>>,
) {
    let _ = ok(exec.execute(open(1, "acct.s", false)));
    let _ = ok(exec.execute(save(2, "acct.s", b"stream config")));
    assert_eq!(
        ok(exec.execute(save_consumer(3, "acct.s", "worker", b"first, longer"))),
        Done::ConsumerSaved
    );
    let _ = ok(exec.execute(save_consumer(4, "acct.s", "worker", b"second")));
    let _ = ok(exec.execute(save_consumer(5, "acct.s", "a.b c", b"dotted")));
    let _ = ok(exec.execute(save_consumer(6, "acct.s", "gone", b"soon")));
    assert_eq!(
        ok(exec.execute(remove_consumer(7, "acct.s", "gone"))),
        Done::ConsumerRemoved
    );
    for stream in ["acct.s", "acct.never"] {
        assert_eq!(
            ok(exec.execute(remove_consumer(8, stream, "never saved"))),
            Done::ConsumerRemoved,
            "{stream}"
        );
    }
    // A consumer before its stream was ever opened: its place is made.
    let _ = ok(exec.execute(save_consumer(9, "acct.new", "c", b"early")));
    // A stream's removal takes its consumers with it.
    let _ = ok(exec.execute(save_consumer(10, "acct.doomed", "c", b"x")));
    let c = exec.execute(StorageOp::Remove {
        id: OpId(11),
        stream: "acct.doomed".into(),
    });
    assert_eq!(c.result, Ok(Done::Removed));
    let expected = vec![
        StoredStream {
            consumers: vec![consumer("c", b"early")],
            ..stored("acct.new", Err(MetaError::Missing))
        },
        StoredStream {
            consumers: vec![consumer("a.b c", b"dotted"), consumer("worker", b"second")],
            ..stored("acct.s", Ok(b"stream config"))
        },
    ];
    assert_eq!(list(&mut exec), expected);
    drop(exec);
    if let Some(mut exec) = restart() {
        assert_eq!(list(&mut exec), expected, "after a restart");
        // Opening, compacting and scrubbing a stream leave its consumers.
        let small_blocks = StreamConfig {
            block_size_bytes: 256,
            ..StreamConfig::default()
        };
        let c = exec.execute(StorageOp::Open {
            id: OpId(12),
            stream: "acct.s".into(),
            config: small_blocks,
        });
        assert!(c.result.is_ok(), "{c:?}");
        for seq in 1..=20 {
            let _ = ok(exec.execute(append(100 + seq, "acct.s", seq)));
            if seq < 20 {
                let _ = ok(exec.execute(StorageOp::Delete {
                    id: OpId(200 + seq),
                    stream: "acct.s".into(),
                    seq,
                }));
            }
        }
        let reclaimed = ok(exec.execute(StorageOp::Compact {
            id: OpId(13),
            stream: "acct.s".into(),
        }));
        assert!(matches!(reclaimed, Done::Compacted(1..)), "{reclaimed:?}");
        let _ = ok(exec.execute(StorageOp::Scrub {
            id: OpId(14),
            stream: "acct.s".into(),
        }));
        assert_eq!(list(&mut exec), expected, "after reopening");
    }
}

#[test]
fn consumers_are_saved_listed_and_removed_on_the_simulated_disk() {
    let disk = SimDisk::with_seed(11);
    consumers_are_kept(sim_executor(&disk), || {
        disk.crash();
        Some(sim_executor(&disk))
    });
    assert!(
        !disk
            .files()
            .iter()
            .any(|f| f.contains("doomed") || f.ends_with(".new")),
        "{:?}",
        disk.files()
    );
}

#[test]
fn consumers_are_saved_listed_and_removed_in_memory() {
    consumers_are_kept(Executor::new(MemBackend::default()), || None);
}

#[cfg(feature = "fs")]
#[test]
fn consumers_are_saved_listed_and_removed_on_the_real_disk() {
    let root =
        std::env::temp_dir().join(format!("natrix-storage-consumers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let executor = || {
        let root = root.clone();
        Executor::new(FileBackend::new("streams", move || {
            natrix_storage::FsDisk::new(root.clone())
        }))
    };
    consumers_are_kept(executor(), || Some(executor()));
    let dir = root.join("streams/acct.s/consumers");
    assert!(dir.join("worker").is_file() && dir.join("a%2Eb%20c").is_file());
    assert!(!dir.join("worker.new").exists() && !root.join("streams/acct.doomed").exists());
    let _ = std::fs::remove_dir_all(&root);
}

/// Disk mutations (writes, syncs, renames) a batch costs.
fn mutations_of(disk: &SimDisk, exec: &mut SimExecutor, ops: Vec<StorageOp>) -> u64 {
    let before = disk.mutations();
    let out = run_batch(exec, ops);
    assert!(out.iter().all(|c| c.result.is_ok()), "{out:?}");
    disk.mutations() - before
}

#[test]
fn a_consumers_saves_in_one_batch_cost_one_write() {
    let disk = SimDisk::with_seed(12);
    let mut exec = sim_executor(&disk);
    // The first save also makes the directories.
    let _ = ok(exec.execute(save_consumer(1, "s", "a", b"0")));
    let one = mutations_of(&disk, &mut exec, vec![save_consumer(2, "s", "a", b"1")]);
    let many: Vec<StorageOp> = (3..13)
        .map(|id| save_consumer(id, "s", "a", format!("state {id}").as_bytes()))
        .collect();
    assert_eq!(
        mutations_of(&disk, &mut exec, many),
        one,
        "ten saves of one consumer write once"
    );
    let two_consumers = vec![
        save_consumer(13, "s", "a", b"a1"),
        save_consumer(14, "s", "b", b"b1"),
        save_consumer(15, "s", "a", b"a2"),
        save_consumer(16, "s", "b", b"b2"),
        save_consumer(17, "t", "a", b"ta"),
    ];
    let cost = mutations_of(&disk, &mut exec, two_consumers);
    // Stream t's first save also makes its directories durable: the root
    // and its parent synced for the stream's, the stream's for its
    // consumers'.
    assert_eq!(cost, 3 * one + 3, "each consumer written once");
    assert_eq!(
        consumers_of(&mut exec, "s"),
        [consumer("a", b"a2"), consumer("b", b"b2")]
    );
    disk.crash();
    let mut exec = sim_executor(&disk);
    assert_eq!(
        consumers_of(&mut exec, "s"),
        [consumer("a", b"a2"), consumer("b", b"b2")]
    );
    assert_eq!(consumers_of(&mut exec, "t"), [consumer("a", b"ta")]);
}

#[test]
fn a_coalesced_batch_completes_every_op_in_order_with_the_last_ones_result() {
    let disk = SimDisk::with_seed(13);
    let mut exec = sim_executor(&disk);
    let _ = ok(exec.execute(open(1, "s", false)));
    let out = run_batch(
        &mut exec,
        vec![
            save_consumer(2, "s", "c", b"1"),
            append(3, "s", 1),
            sync(4, "s"),
            save_consumer(5, "s", "c", b"2"),
            remove_consumer(6, "s", "c"),
            save_consumer(7, "s", "c", b"3"),
            sync(8, "s"),
        ],
    );
    let order: Vec<u64> = out.iter().map(|c| c.id.0).collect();
    assert_eq!(
        order,
        [3, 4, 2, 5, 6, 7, 8],
        "the sync before the save that runs is served first; the consumer's ops complete in op order"
    );
    let results: Vec<_> = out.iter().map(|c| c.result.clone()).collect();
    assert_eq!(
        results,
        [
            Ok(Done::Appended(natrix_storage::Appended {
                last_seq: 1,
                removed: 0
            })),
            Ok(Done::Synced),
            Ok(Done::ConsumerSaved),
            Ok(Done::ConsumerSaved),
            Ok(Done::ConsumerRemoved),
            Ok(Done::ConsumerSaved),
            Ok(Done::Synced),
        ]
    );
    assert!(
        out[1..]
            .iter()
            .all(|c| c.stream == "s" && c.durable_seq == 1),
        "{out:?}"
    );
    assert_eq!(consumers_of(&mut exec, "s"), [consumer("c", b"3")]);

    // When the save that runs fails, so does every save it replaced.
    disk.fail_next(natrix_storage::DiskErrorKind::Io);
    let out = run_batch(
        &mut exec,
        vec![
            save_consumer(9, "s", "c", b"4"),
            save_consumer(10, "s", "c", b"5"),
        ],
    );
    assert_eq!(out.iter().map(|c| c.id.0).collect::<Vec<_>>(), [9, 10]);
    assert!(out.iter().all(|c| c.result.is_err()), "{out:?}");
    assert_eq!(consumers_of(&mut exec, "s"), [consumer("c", b"3")]);
}

#[test]
fn a_removal_in_a_batch_wins_over_earlier_saves_and_loses_to_later_ones() {
    for backend_on_disk in [true, false] {
        let disk = SimDisk::with_seed(14);
        let run = |ops: Vec<StorageOp>| -> Vec<StoredConsumer> {
            let check = |out: Vec<Completion>| {
                assert!(out.iter().all(|c| c.result.is_ok()), "{out:?}");
            };
            if backend_on_disk {
                let mut exec = sim_executor(&disk);
                check(run_batch(&mut exec, ops));
                drop(exec);
                disk.crash();
                consumers_of(&mut sim_executor(&disk), "s")
            } else {
                let mut exec = Executor::new(MemBackend::default());
                check(run_batch(&mut exec, ops));
                consumers_of(&mut exec, "s")
            }
        };
        let saved_then_removed = run(vec![
            save_consumer(1, "s", "c", b"old"),
            save_consumer(2, "s", "d", b"kept"),
            save_consumer(3, "s", "c", b"new"),
            remove_consumer(4, "s", "c"),
        ]);
        assert_eq!(saved_then_removed, [consumer("d", b"kept")]);
        let removed_then_saved = run(vec![
            remove_consumer(5, "s", "d"),
            save_consumer(6, "s", "d", b"again"),
        ]);
        assert_eq!(removed_then_saved, [consumer("d", b"again")]);
    }
}

#[test]
fn a_damaged_consumer_file_is_reported_not_returned() {
    let disk = SimDisk::with_seed(15);
    let mut exec = sim_executor(&disk);
    let _ = ok(exec.execute(save_consumer(1, "s", "bad", b"state of bad")));
    let _ = ok(exec.execute(save_consumer(2, "s", "good", b"state of good")));
    disk.flip_bit("data/streams/s/consumers/bad", 20, 0x01);
    let found = consumers_of(&mut exec, "s");
    assert_eq!(found[1], consumer("good", b"state of good"));
    assert_eq!(found[0].name, "bad");
    assert!(
        matches!(found[0].state, Err(MetaError::Damaged(_))),
        "{found:?}"
    );
    // A cut file, and one with a meta file's magic, are damage too.
    let mut cut = disk.pristine("data/streams/s/consumers/good").unwrap();
    cut.pop();
    disk.put_file("data/streams/s/consumers/cut", &cut);
    let mut as_meta = disk.pristine("data/streams/s/consumers/good").unwrap();
    as_meta[..8].copy_from_slice(natrix_storage::meta::META_MAGIC);
    disk.put_file("data/streams/s/consumers/meta", &as_meta);
    let found = consumers_of(&mut exec, "s");
    for damaged in [&found[1], &found[3]] {
        assert!(
            matches!(damaged.state, Err(MetaError::Damaged(_))),
            "{found:?}"
        );
    }
    // Saving again repairs it.
    let _ = ok(exec.execute(save_consumer(3, "s", "bad", b"state of bad, again")));
    assert_eq!(
        consumers_of(&mut exec, "s")[0],
        consumer("bad", b"state of bad, again")
    );
}

#[test]
fn hostile_consumer_names_stay_in_their_directory_or_are_refused() {
    let disk = SimDisk::with_seed(16);
    let mut exec = sim_executor(&disk);
    let long = "n".repeat(251);
    let names = [
        "../x",
        "a/b",
        "..",
        ".",
        "x.new",
        "meta",
        "00000001.blk",
        "%2F",
        "\0",
        &long,
    ];
    for (i, name) in names.iter().enumerate() {
        let c = exec.execute(save_consumer(i as u64, "s", name, name.as_bytes()));
        assert_eq!(c.result, Ok(Done::ConsumerSaved), "{name:?}");
    }
    let mut expected: Vec<StoredConsumer> =
        names.iter().map(|n| consumer(n, n.as_bytes())).collect();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(consumers_of(&mut exec, "s"), expected);
    assert!(
        disk.files()
            .iter()
            .all(|f| f.starts_with("data/streams/s/consumers/") && !f[25..].contains(['/', '.'])),
        "{:?}",
        disk.files()
    );
    // The stream itself opens as an empty stream beside them.
    match ok(exec.execute(open(50, "s", false))) {
        Done::Opened { state, report } => {
            assert_eq!((state.msgs, report.leftovers_removed), (0, 0));
        }
        other => panic!("{other:?}"),
    }
    let too_long = "n".repeat(252);
    for bad in ["", &too_long, &"/".repeat(84)] {
        for op in [
            save_consumer(60, "s", bad, b"x"),
            remove_consumer(61, "s", bad),
        ] {
            let c = exec.execute(op);
            assert!(matches!(c.result, Err(StoreError::Invalid(_))), "{c:?}");
        }
    }
    for bad_stream in ["", "..", "../x", "a/b"] {
        for op in [
            save_consumer(62, bad_stream, "c", b"x"),
            remove_consumer(63, bad_stream, "c"),
        ] {
            let c = exec.execute(op);
            assert!(matches!(c.result, Err(StoreError::Invalid(_))), "{c:?}");
        }
    }
    // Too large a state fails alone, before anything is written, even in
    // a batch with other saves of the same consumer.
    let before = disk.files();
    let too_big = vec![0; natrix_storage::consumer::MAX_CONSUMER_BYTES + 1];
    let c = exec.execute(save_consumer(64, "big", "c", &too_big));
    assert!(matches!(c.result, Err(StoreError::Invalid(_))), "{c:?}");
    assert_eq!(disk.files(), before);
    let out = run_batch(
        &mut exec,
        vec![
            save_consumer(65, "s", "meta", b"small"),
            save_consumer(66, "s", "meta", &too_big),
        ],
    );
    let results: Vec<bool> = out.iter().map(|c| c.result.is_ok()).collect();
    assert_eq!(results, [true, false], "{out:?}");
    assert_eq!(out[1].id, OpId(66));
    assert!(consumers_of(&mut exec, "s").contains(&consumer("meta", b"small")));
    let mut mem = Executor::new(MemBackend::default());
    let c = mem.execute(save_consumer(67, "s", "", b"x"));
    assert!(matches!(c.result, Err(StoreError::Invalid(_))), "{c:?}");
}

#[test]
fn a_crash_at_every_write_point_of_consumer_saves_keeps_each_old_or_new() {
    let (mut points, mut old_kept, mut new_kept) = (0, 0, 0);
    let batch = || {
        vec![
            save_consumer(10, "s", "a", &[0xa1; 700]),
            save_consumer(11, "s", "b", b"b1"),
            save_consumer(12, "s", "a", &[0xa2; 1300]),
            remove_consumer(13, "s", "gone"),
            save_consumer(14, "s", "new", b"n1"),
        ]
    };
    let old = [
        consumer("a", &[0xa0; 900]),
        consumer("b", b"b0"),
        consumer("gone", b"g0"),
    ];
    for seed in 0..30 {
        let setup = |disk: &SimDisk| {
            let mut exec = sim_executor(disk);
            let _ = ok(exec.execute(open(1, "s", false)));
            for (i, c) in old.iter().enumerate() {
                let state = c.state.clone().unwrap();
                let _ = ok(exec.execute(save_consumer(2 + i as u64, "s", &c.name, &state)));
            }
        };
        let probe = SimDisk::with_seed(seed);
        setup(&probe);
        let start = probe.mutations();
        let _ = run_batch(&mut sim_executor(&probe), batch());
        let batch_points = probe.mutations() - start;
        for point in 1..=batch_points {
            let disk = SimDisk::with_seed(seed ^ point.rotate_left(23));
            setup(&disk);
            disk.halt_after(point);
            let out = run_batch(&mut sim_executor(&disk), batch());
            let completed: Vec<OpId> = out
                .iter()
                .filter(|c| c.result.is_ok())
                .map(|c| c.id)
                .collect();
            disk.crash();
            let found = consumers_of(&mut sim_executor(&disk), "s");
            let context = format!("seed {seed} crash at write {point}: {found:?}");
            let get = |name: &str| {
                found
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| c.state.clone())
            };
            let check = |name: &str, old: Option<&[u8]>, new: Option<&[u8]>, done: u64| {
                let got = get(name).map(|s| s.expect("never damaged"));
                let (is_old, is_new) = (got.as_deref() == old, got.as_deref() == new);
                assert!(is_old || is_new, "{context}: {name}");
                if completed.contains(&OpId(done)) {
                    assert!(is_new, "{context}: {name} completed, then lost");
                }
                (is_old && !is_new, is_new && !is_old)
            };
            for (name, old, new, done) in [
                ("a", Some(&[0xa0; 900][..]), Some(&[0xa2; 1300][..]), 12),
                ("b", Some(&b"b0"[..]), Some(&b"b1"[..]), 11),
                ("gone", Some(&b"g0"[..]), None, 13),
                ("new", None, Some(&b"n1"[..]), 14),
            ] {
                let (o, n) = check(name, old, new, done);
                old_kept += u64::from(o);
                new_kept += u64::from(n);
            }
            assert!(
                get("a").is_none_or(|s| s != Ok(vec![0xa1; 700])),
                "{context}: a replaced save reached the disk"
            );
            points += 1;
        }
    }
    eprintln!("{points} crash points; {old_kept} consumers kept the old state, {new_kept} the new");
    assert!(points > 300 && old_kept > 100 && new_kept > 100);
}

#[test]
fn random_io_errors_never_damage_a_consumer_or_lose_a_completed_save_or_removal() {
    const CONSUMERS: [&str; 3] = ["a", "b.c", "d"];
    let (mut failed_ops, mut batches_coalesced) = (0, 0);
    for seed in 0..150 {
        let disk = SimDisk::new(SimDiskConfig {
            seed,
            io_error_per_million: 40_000,
            ..SimDiskConfig::default()
        });
        let mut rng = natrix_storage::rng::SplitMix64::new(seed);
        let mut exec = sim_executor(&disk);
        // Per consumer: the last completed state (`None`: removed), and
        // what failed since, any of which may have reached the disk.
        let mut completed: BTreeMap<&str, Option<Vec<u8>>> = BTreeMap::new();
        let mut failed: BTreeMap<&str, Vec<Option<Vec<u8>>>> = BTreeMap::new();
        let mut id = 0;
        for _ in 0..10 {
            let mut batch = Vec::new();
            let mut wanted: BTreeMap<OpId, (&str, Option<Vec<u8>>)> = BTreeMap::new();
            for _ in 0..1 + rng.below(5) {
                id += 1;
                let name = CONSUMERS[rng.below(3) as usize];
                let state =
                    (rng.below(5) < 3).then(|| vec![id as u8; 1 + rng.below(1500) as usize]);
                batch.push(match &state {
                    Some(state) => save_consumer(id, "s", name, state),
                    None => remove_consumer(id, "s", name),
                });
                wanted.insert(OpId(id), (name, state));
            }
            let names: Vec<&str> = wanted.values().map(|(n, _)| *n).collect();
            let mut unique = names.clone();
            unique.sort_unstable();
            unique.dedup();
            batches_coalesced += u64::from(unique.len() < names.len());
            for c in run_batch(&mut exec, batch) {
                let (name, state) = wanted[&c.id].clone();
                if c.result.is_ok() {
                    completed.insert(name, state);
                    failed.remove(name);
                } else {
                    failed_ops += 1;
                    failed.entry(name).or_default().push(state);
                }
            }
        }
        drop(exec);
        disk.set_config(SimDiskConfig {
            seed,
            ..SimDiskConfig::default()
        });
        disk.crash();
        let found = consumers_of(&mut sim_executor(&disk), "s");
        for name in CONSUMERS {
            let got = found
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.state.clone().expect("never damaged"));
            let last = completed.get(name).cloned().flatten();
            let may = failed.get(name).cloned().unwrap_or_default();
            assert!(
                got == last || may.contains(&got),
                "seed {seed}: {name} has {:?} bytes, completed {:?}, failed {:?}",
                got.as_ref().map(Vec::len),
                last.as_ref().map(Vec::len),
                may.iter()
                    .map(|s| s.as_ref().map(Vec::len))
                    .collect::<Vec<_>>()
            );
        }
    }
    eprintln!("{failed_ops} consumer ops failed; {batches_coalesced} batches coalesced");
    assert!(failed_ops > 100 && batches_coalesced > 200);
}

#[test]
fn a_removal_that_finds_nothing_still_makes_the_absence_durable() {
    let disk = SimDisk::with_seed(17);
    let mut exec = sim_executor(&disk);
    let _ = ok(exec.execute(save_consumer(1, "s", "c", b"state")));
    // An earlier removal took the name, then failed before its sync.
    natrix_storage::Disk::remove(&mut disk.clone(), "data/streams/s/consumers/c").unwrap();
    assert_eq!(
        ok(exec.execute(remove_consumer(2, "s", "c"))),
        Done::ConsumerRemoved
    );
    drop(exec);
    disk.crash();
    assert_eq!(consumers_of(&mut sim_executor(&disk), "s"), []);
}
