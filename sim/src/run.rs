//! Running seeds: one at a time (replay) or many in parallel.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::check::Violation;
use crate::world::{Config, World};

/// The result of one seed.
#[derive(Debug)]
pub struct SeedResult {
    pub seed: u64,
    pub violations: Vec<Violation>,
    pub trace_hash: u64,
    pub steps: u64,
    pub sim_ns: u64,
    pub messages: u64,
    pub trace: Vec<String>,
    pub counts: std::collections::BTreeMap<&'static str, u64>,
}

/// Runs one seed and checks it.
pub fn run_seed(cfg: Config) -> SeedResult {
    let seed = cfg.seed;
    crate::phases::result(seed, World::new(cfg).run(), Vec::new())
}

/// Totals over many seeds.
#[derive(Debug, Default)]
pub struct Summary {
    pub seeds: u64,
    pub failures: Vec<SeedResult>,
    pub nondeterministic: Vec<u64>,
    pub messages: u64,
    pub steps: u64,
    /// Events over all seeds: server closes by reason, faults by kind.
    pub counts: std::collections::BTreeMap<&'static str, u64>,
}

/// Runs `seeds` on `jobs` threads; `run` runs and checks one seed.
/// `recheck` seeds (the first ones) run twice to check determinism.
/// `progress` is called after each seed with (done, total, failures).
pub fn run_many(
    seeds: std::ops::Range<u64>,
    jobs: usize,
    recheck: u64,
    run: &(dyn Fn(u64) -> SeedResult + Sync),
    progress: &(dyn Fn(u64, u64, usize) + Sync),
) -> Summary {
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let failed = AtomicUsize::new(0);
    let total = seeds.end - seeds.start;
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let r = run(seed);
                    let twice = (seed - seeds.start < recheck).then(|| run(seed).trace_hash);
                    let mut sum = summary.lock().expect("no panics while holding the lock");
                    sum.seeds += 1;
                    sum.messages += r.messages;
                    sum.steps += r.steps;
                    for (k, n) in &r.counts {
                        *sum.counts.entry(k).or_default() += n;
                    }
                    if twice.is_some_and(|h| h != r.trace_hash) {
                        sum.nondeterministic.push(seed);
                    }
                    if !r.violations.is_empty() {
                        failed.fetch_add(1, Ordering::Relaxed);
                        sum.failures.push(r);
                    }
                    drop(sum);
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(d, total, failed.load(Ordering::Relaxed));
                }
            });
        }
    });
    let mut sum = summary.into_inner().expect("threads joined");
    sum.failures.sort_by_key(|r| r.seed);
    sum.nondeterministic.sort_unstable();
    sum
}
