//! `natrix-sim`: run many seeds, or replay one.
//!
//! ```text
//! natrix-sim run --seeds 0..10000 [--jobs N] [--recheck K] [--no-faults] [--mutation NAME] [--turmoil | --cluster] [--pending-checks]
//! natrix-sim replay --seed N [--trace] [--no-faults] [--mutation NAME] [--turmoil | --cluster] [--pending-checks]
//! natrix-sim mutations [--seeds 0..200]
//! natrix-sim invariants
//! ```

use std::io::Write;
use std::process::ExitCode;

use natrix_core::config::Mutation;
use natrix_sim::check::INVARIANTS;
use natrix_sim::cluster::run_seed_cluster;
use natrix_sim::mutation::{self, CLUSTER_SUITE, Planted, SUITE};
use natrix_sim::run::{SeedResult, run_many, run_seed};
use natrix_sim::seed::{parse_range, parse_seed};
use natrix_sim::turmoil_sim::run_seed_turmoil;
use natrix_sim::world::Config;

const USAGE: &str = "usage:
  natrix-sim run --seeds A..B [--jobs N] [--recheck K] [--no-faults] [--mutation NAME] [--turmoil | --cluster] [--pending-checks]
  natrix-sim replay --seed N [--trace] [--no-faults] [--mutation NAME] [--turmoil | --cluster] [--pending-checks]
  natrix-sim mutations [--seeds A..B] [--jobs N]
  natrix-sim invariants
--turmoil runs the production driver under turmoil instead of the lock-step
harness (slower; covers the driver); --cluster runs the cluster world (two
to four servers over routes; a plain run also runs every second seed there).
Seeds are u64s or 40-hex commit hashes.
--mutation NAME plants a bug in the core (test-only) to show the checkers
bite; `mutations` hunts every planted bug over seeds 0..200 and fails if one
survives. --pending-checks (run, replay) also checks the invariants natrix
does not keep yet (see `invariants`).";

struct Args {
    cmd: String,
    seeds: Option<String>,
    seed: Option<String>,
    jobs: usize,
    recheck: u64,
    trace: bool,
    faults: bool,
    mutation: Option<Planted>,
    turmoil: bool,
    cluster: bool,
    pending_checks: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or(USAGE)?;
    let mut a = Args {
        cmd,
        seeds: None,
        seed: None,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        recheck: 10,
        trace: false,
        faults: true,
        mutation: None,
        turmoil: false,
        cluster: false,
        pending_checks: false,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => a.seeds = Some(value()?),
            "--seed" => a.seed = Some(value()?),
            "--jobs" => a.jobs = value()?.parse().map_err(|_| "bad --jobs")?,
            "--recheck" => a.recheck = value()?.parse().map_err(|_| "bad --recheck")?,
            "--mutation" => {
                let planted = mutation::by_name(&value()?)?;
                // The routes' bugs live in the cluster world.
                a.cluster |= mutation::in_cluster(&planted);
                a.mutation = Some(planted);
            }
            "--trace" => a.trace = true,
            "--no-faults" => a.faults = false,
            "--turmoil" => a.turmoil = true,
            "--cluster" => a.cluster = true,
            "--pending-checks" => a.pending_checks = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn flags(a: &Args) -> String {
    let mut f = String::new();
    if !a.faults {
        f.push_str(" --no-faults");
    }
    if let Some(p) = a.mutation {
        f.push_str(&format!(" --mutation {}", p.bug.name()));
    }
    if a.turmoil {
        f.push_str(" --turmoil");
    }
    if a.cluster {
        f.push_str(" --cluster");
    }
    if a.pending_checks {
        f.push_str(" --pending-checks");
    }
    f
}

fn run_one(seed: u64, a: &Args, trace: bool) -> SeedResult {
    let mutation = a.mutation.map(|p| p.mutation());
    if a.turmoil {
        return run_seed_turmoil(seed, a.faults, trace, mutation);
    }
    let mut cfg = Config::new(seed);
    cfg.faults = a.faults;
    cfg.trace = trace;
    cfg.mutation = mutation;
    cfg.pending_checks = a.pending_checks;
    if a.cluster {
        return run_seed_cluster(cfg);
    }
    run_seed(cfg)
}

fn run_lock_step(seed: u64, faults: bool, trace: bool, mutation: Option<Mutation>) -> SeedResult {
    let mut cfg = Config::new(seed);
    cfg.faults = faults;
    cfg.trace = trace;
    cfg.mutation = mutation;
    run_seed(cfg)
}

fn run_cluster(seed: u64, mutation: Option<Mutation>) -> SeedResult {
    let mut cfg = Config::new(seed);
    cfg.mutation = mutation;
    run_seed_cluster(cfg)
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match a.cmd.as_str() {
        "run" => cmd_run(&a),
        "replay" => cmd_replay(&a),
        "mutations" => cmd_mutations(&a),
        "invariants" => {
            for (name, what) in INVARIANTS {
                println!("{name:<22} {what}");
            }
            for (name, what) in natrix_sim::check_cluster::INVARIANTS {
                println!("{name:<22} (cluster world) {what}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn cmd_run(a: &Args) -> ExitCode {
    let Some(text) = &a.seeds else {
        eprintln!("run needs --seeds A..B\n{USAGE}");
        return ExitCode::from(2);
    };
    let seeds = match parse_range(text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "cargo run -p natrix-sim --release -- run --seeds {text}{}",
        flags(a)
    );
    let progress = |done: u64, total: u64, failed: usize| {
        if done.is_multiple_of(50) || done == total {
            eprint!("\r{done}/{total} seeds, {failed} failed");
            let _ = std::io::stderr().flush();
        }
    };
    let n = seeds.end - seeds.start;
    let mut passed = run_and_report(a, n, &|i| seeds.start + i, false, &progress);
    // Plain runs also run every second seed of the range in the cluster
    // world (a seed there costs about half again a lock-step one).
    if !a.turmoil && !a.cluster {
        println!("the cluster world, every {CLUSTER_EVERY}nd seed:");
        let every = |i: u64| seeds.start + i * CLUSTER_EVERY;
        let count = n.div_ceil(CLUSTER_EVERY);
        passed &= run_and_report(a, count, &every, true, &progress);
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// In plain runs, the cluster world runs one seed in this many.
const CLUSTER_EVERY: u64 = 2;

/// Runs `count` seeds (the `i`th is `seed(i)`), in the cluster world with
/// `cluster`, and prints the figures and every failure with its replay
/// command. Whether all passed.
fn run_and_report(
    a: &Args,
    count: u64,
    seed: &(dyn Fn(u64) -> u64 + Sync),
    cluster: bool,
    progress: &(dyn Fn(u64, u64, usize) + Sync),
) -> bool {
    let mut a2 = Args {
        cmd: a.cmd.clone(),
        seeds: None,
        seed: None,
        ..*a
    };
    a2.cluster |= cluster;
    let a = &a2;
    #[allow(clippy::disallowed_methods)] // wall time only for the throughput figure
    let started = std::time::Instant::now();
    let sum = run_many(
        0..count,
        a.jobs,
        a.recheck,
        &|i| run_one(seed(i), a, false),
        progress,
    );
    eprintln!();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {secs:.1} s ({:.0} seeds/min, {:.0} simulated deliveries/s, {} steps)",
        sum.seeds,
        sum.seeds as f64 * 60.0 / secs,
        sum.messages as f64 / secs,
        sum.steps
    );
    let counts: Vec<String> = sum
        .counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    println!("events: {}", counts.join(", "));
    for r in &sum.failures {
        let first = &r.violations[0];
        println!(
            "FAIL seed {}: {} ({}) [{} violations]",
            r.seed,
            first.invariant,
            first.detail,
            r.violations.len()
        );
        println!(
            "  replay: cargo run -p natrix-sim --release -- replay --seed {} --trace{}",
            r.seed,
            flags(a)
        );
    }
    for s in &sum.nondeterministic {
        println!(
            "NONDETERMINISTIC seed {}: two runs gave different trace hashes",
            seed(*s)
        );
    }
    let passed = sum.failures.is_empty() && sum.nondeterministic.is_empty();
    if passed {
        println!("all {} seeds passed", sum.seeds);
    }
    passed
}

fn cmd_replay(a: &Args) -> ExitCode {
    let Some(text) = &a.seed else {
        eprintln!("replay needs --seed N\n{USAGE}");
        return ExitCode::from(2);
    };
    let seed = match parse_seed(text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "cargo run -p natrix-sim --release -- replay --seed {text} --trace{}",
        flags(a)
    );
    let r = run_one(seed, a, a.trace);
    for line in &r.trace {
        println!("{line}");
    }
    println!(
        "seed {seed}: {} steps, {:.3} s simulated, {} deliveries, trace hash {:016x}",
        r.steps,
        r.sim_ns as f64 / 1e9,
        r.messages,
        r.trace_hash
    );
    if r.violations.is_empty() {
        println!("passed");
        ExitCode::SUCCESS
    } else {
        for v in &r.violations {
            println!("VIOLATION {}: {}", v.invariant, v.detail);
        }
        ExitCode::from(1)
    }
}

/// Hunts every planted bug: the first seed that catches it, the invariant
/// that fired and the replay command; fails if any bug survives the bound
/// or does not replay identically.
fn cmd_mutations(a: &Args) -> ExitCode {
    let text = a.seeds.as_deref().unwrap_or("0..200");
    let seeds = match parse_range(text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!("cargo run -p natrix-sim --release -- mutations --seeds {text}");
    let run = |seed: u64, m: Mutation| run_lock_step(seed, true, false, Some(m));
    let run_in_cluster = |seed: u64, m: Mutation| run_cluster(seed, Some(m));
    let mut survivors = 0;
    for planted in SUITE.into_iter().chain(CLUSTER_SUITE) {
        let name = planted.bug.name();
        let cluster = mutation::in_cluster(&planted);
        let runner: &(dyn Fn(u64, Mutation) -> SeedResult + Sync) =
            if cluster { &run_in_cluster } else { &run };
        let hunt = mutation::hunt(planted, seeds.clone(), a.jobs, runner);
        let Some(r) = &hunt.caught else {
            survivors += 1;
            println!(
                "SURVIVED {name} (1 in {}): no seed in {text} broke {}",
                planted.one_in,
                planted.caught_by.join(" or ")
            );
            continue;
        };
        let fired = r
            .violations
            .iter()
            .find(|v| planted.caught_by.contains(&v.invariant))
            .expect("caught means one of its invariants fired");
        let replay = if hunt.replays {
            "replays identically"
        } else {
            survivors += 1;
            "DOES NOT REPLAY"
        };
        println!(
            "caught {name} (1 in {}) at seed {}: {} ({}); {replay}",
            planted.one_in, r.seed, fired.invariant, fired.detail
        );
        println!(
            "  replay: cargo run -p natrix-sim --release -- replay --seed {} --trace --mutation {name}{}",
            r.seed,
            if cluster { " --cluster" } else { "" }
        );
    }
    if survivors == 0 {
        println!(
            "all {} planted bugs caught",
            SUITE.len() + CLUSTER_SUITE.len()
        );
        ExitCode::SUCCESS
    } else {
        println!("{survivors} planted bugs survived or did not replay");
        ExitCode::from(1)
    }
}
