//! Crash at every write point: run a workload on the simulated disk, let
//! the process die at the n-th mutating disk call, lose what the disk may
//! lose, reopen, and check that the store is exactly the model's state at
//! some point no earlier than the last sync — nothing synced lost, nothing
//! corrupt or invented served — and that it keeps working after.

use crate::common;

use common::{Dump, Op, apply, dump, model_steps, open_sim, small_blocks, workload};
use natrix_storage::{MemStore, SimDisk, Store};

struct Run {
    /// Model states in order; the store may recover to any from `durable`.
    states: Vec<Dump>,
    durable: usize,
    crashed: bool,
    /// Bytes compaction gave back: crash points inside compactions count.
    compacted_bytes: u64,
}

fn run_until_crash(disk: &SimDisk, ops: &[Op], limits: bool) -> Run {
    let config = small_blocks(limits);
    let mut model = MemStore::new(config.clone());
    let mut run = Run {
        states: vec![dump(&mut model)],
        durable: 0,
        crashed: false,
        compacted_bytes: 0,
    };
    let mut store = match natrix_storage::FileStore::open(disk.clone(), "streams/s", config) {
        Ok((store, _)) => store,
        Err(_) => {
            run.crashed = true;
            return run;
        }
    };
    for op in ops {
        let before = run.states.len() - 1;
        let blocks = store.block_count();
        let result = match op {
            Op::Compact => store.compact().map(|n| run.compacted_bytes += n),
            op => apply(&mut store, op),
        };
        run.states.extend(model_steps(&mut model, op));
        if result.is_err() {
            run.crashed = true;
            return run;
        }
        if matches!(op, Op::Sync) {
            run.durable = run.states.len() - 1;
        } else if store.block_count() > blocks {
            // Rolling to a new block synced everything written before.
            run.durable = run.durable.max(before);
        }
        assert_eq!(
            dump(&mut store),
            run.states[run.states.len() - 1],
            "store and model agree before any crash"
        );
    }
    run
}

fn check_recovery(disk: &SimDisk, run: &Run, limits: bool, context: &str) {
    let config = small_blocks(limits);
    let (mut store, report) = open_sim(disk, &config);
    assert!(
        report.corruption.is_empty(),
        "{context}: a crash is not corruption: {report:?}"
    );
    let got = dump(&mut store);
    let matched = run.states[run.durable..].iter().position(|s| *s == got);
    assert!(
        matched.is_some(),
        "{context}: recovered state is no state since the last sync\n got {}\n candidates:\n{}\n faults {:?}\n report {report:?}",
        got.summary(),
        run.states[run.durable..]
            .iter()
            .map(|s| format!("  {}", s.summary()))
            .collect::<Vec<_>>()
            .join("\n"),
        disk.faults()
    );
    // It keeps working: append, sync, crash again, and nothing synced is lost.
    let next = got.state.last_seq + 1;
    store
        .append(&[common::msg(next, "after.crash", 10)])
        .unwrap();
    store.sync().unwrap();
    let expected = dump(&mut store);
    drop(store);
    disk.crash();
    let (mut store, _) = open_sim(disk, &config);
    assert_eq!(
        dump(&mut store),
        expected,
        "{context}: synced after recovery, then lost"
    );
}

/// Returns the crash points walked and the bytes the workload compacted.
fn crash_everywhere(seed: u64, limits: bool) -> (u64, u64) {
    let ops = workload(seed, 40);
    let probe = SimDisk::with_seed(seed);
    let full = run_until_crash(&probe, &ops, limits);
    assert!(!full.crashed);
    let points = probe.mutations();
    for point in 1..=points {
        let disk = SimDisk::with_seed(seed ^ point.rotate_left(17));
        disk.halt_after(point);
        let run = run_until_crash(&disk, &ops, limits);
        disk.crash();
        check_recovery(
            &disk,
            &run,
            limits,
            &format!("seed {seed} crash at write {point}"),
        );
    }
    (points, full.compacted_bytes)
}

#[test]
fn crash_at_every_write_point() {
    let (mut points, mut compacted_bytes) = (0, 0);
    for seed in 0..24 {
        let (p, c) = crash_everywhere(seed, false);
        points += p;
        compacted_bytes += c;
    }
    eprintln!("{points} crash points exercised, {compacted_bytes} bytes compacted");
    assert!(
        compacted_bytes > 0,
        "the workloads compact, so crashes land inside compactions"
    );
    assert!(points > 500, "only {points} crash points exercised");
}

#[test]
fn crash_at_every_write_point_with_limits() {
    let mut points = 0;
    for seed in 100..112 {
        points += crash_everywhere(seed, true).0;
    }
    eprintln!("{points} crash points exercised with limits");
    assert!(points > 300, "only {points} crash points exercised");
}

#[test]
fn a_crash_without_a_halt_loses_only_unsynced_writes() {
    for seed in 0..200 {
        let disk = SimDisk::with_seed(seed);
        let ops = workload(seed, 30);
        eprintln!("seed {seed}: {ops:?}");
        let run = run_until_crash(&disk, &ops, false);
        disk.crash();
        check_recovery(&disk, &run, false, &format!("seed {seed}"));
    }
}

/// The disk after a workload and a power loss, rebuilt the same from the
/// seed every time.
fn crashed(seed: u64, ops: &[Op]) -> (SimDisk, Run) {
    let disk = SimDisk::with_seed(seed);
    let run = run_until_crash(&disk, ops, false);
    disk.crash();
    (disk, run)
}

/// Crash at every mutating step of recovery itself, then recover again:
/// nothing synced is lost, nothing unwritten appears. Returns the points.
fn crash_during_recovery(seed: u64) -> u64 {
    let ops = workload(seed, 30);
    let (probe, _) = crashed(seed, &ops);
    let before = probe.mutations();
    drop(open_sim(&probe, &small_blocks(false)));
    let points = probe.mutations() - before;
    for point in 1..=points {
        let (disk, run) = crashed(seed, &ops);
        disk.halt_after(point);
        let interrupted =
            natrix_storage::FileStore::open(disk.clone(), "streams/s", small_blocks(false));
        drop(interrupted);
        disk.crash();
        // And once more inside the second recovery, at a seeded step.
        if point % 3 == 0 {
            disk.halt_after(1 + (seed + point) % points);
            drop(natrix_storage::FileStore::open(
                disk.clone(),
                "streams/s",
                small_blocks(false),
            ));
            disk.crash();
        }
        check_recovery(
            &disk,
            &run,
            false,
            &format!("seed {seed} crash at recovery step {point}"),
        );
    }
    points
}

#[test]
fn crash_at_every_step_of_recovery() {
    let mut points = 0;
    for seed in 200..240 {
        points += crash_during_recovery(seed);
    }
    eprintln!("{points} crash points inside recovery exercised");
    assert!(points > 150, "only {points} crash points inside recovery");
}
