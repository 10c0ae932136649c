//! `natrix-sim`: run many seeds, or replay one.
//!
//! ```text
//! natrix-sim run --seeds 0..10000 [--jobs N] [--recheck K] [--no-faults] [--planted N]
//! natrix-sim replay --seed N [--trace] [--no-faults] [--planted N]
//! natrix-sim invariants
//! ```

use std::io::Write;
use std::process::ExitCode;

use natrix_sim::check::INVARIANTS;
use natrix_sim::run::{SeedResult, run_many, run_seed};
use natrix_sim::seed::{parse_range, parse_seed};
use natrix_sim::turmoil_sim::run_seed_turmoil;
use natrix_sim::world::Config;

const USAGE: &str = "usage:
  natrix-sim run --seeds A..B [--jobs N] [--recheck K] [--no-faults] [--planted N] [--turmoil]
  natrix-sim replay --seed N [--trace] [--no-faults] [--planted N] [--turmoil]
  natrix-sim invariants
--turmoil runs the production driver under turmoil instead of the lock-step
harness (slower; covers the driver). Seeds are u64s or 40-hex commit hashes. --planted N asks the core to duplicate
every Nth delivery (needs the planted-bugs feature) to show the checkers bite.";

struct Args {
    cmd: String,
    seeds: Option<String>,
    seed: Option<String>,
    jobs: usize,
    recheck: u64,
    trace: bool,
    faults: bool,
    planted: u64,
    turmoil: bool,
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
        planted: 0,
        turmoil: false,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--seeds" => a.seeds = Some(value()?),
            "--seed" => a.seed = Some(value()?),
            "--jobs" => a.jobs = value()?.parse().map_err(|_| "bad --jobs")?,
            "--recheck" => a.recheck = value()?.parse().map_err(|_| "bad --recheck")?,
            "--planted" => a.planted = value()?.parse().map_err(|_| "bad --planted")?,
            "--trace" => a.trace = true,
            "--no-faults" => a.faults = false,
            "--turmoil" => a.turmoil = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    if a.planted > 0 && a.turmoil {
        return Err("--planted applies to the lock-step harness".into());
    }
    if a.planted > 0 && !cfg!(feature = "planted-bugs") {
        return Err("--planted needs natrix-sim built with --features planted-bugs".into());
    }
    Ok(a)
}

fn config(seed: u64, a: &Args) -> Config {
    let mut c = Config::new(seed);
    c.faults = a.faults;
    c.planted_duplicate_one_in = a.planted;
    c
}

fn flags(a: &Args) -> String {
    let mut f = String::new();
    if !a.faults {
        f.push_str(" --no-faults");
    }
    if a.planted > 0 {
        f.push_str(&format!(" --planted {}", a.planted));
    }
    if a.turmoil {
        f.push_str(" --turmoil");
    }
    f
}

fn run_one(seed: u64, a: &Args, trace: bool) -> SeedResult {
    if a.turmoil {
        return run_seed_turmoil(seed, a.faults, trace);
    }
    let mut cfg = config(seed, a);
    cfg.trace = trace;
    run_seed(cfg)
}

fn features(a: &Args) -> &'static str {
    if a.planted > 0 {
        " --features planted-bugs"
    } else {
        ""
    }
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
        "invariants" => {
            for (name, what) in INVARIANTS {
                println!("{name:<22} {what}");
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
        "cargo run -p natrix-sim --release{} -- run --seeds {text}{}",
        features(a),
        flags(a)
    );
    #[allow(clippy::disallowed_methods)] // wall time only for the throughput figure
    let started = std::time::Instant::now();
    let progress = |done: u64, total: u64, failed: usize| {
        if done.is_multiple_of(50) || done == total {
            eprint!("\r{done}/{total} seeds, {failed} failed");
            let _ = std::io::stderr().flush();
        }
    };
    let sum = run_many(
        seeds,
        a.jobs,
        a.recheck,
        &|s| run_one(s, a, false),
        &progress,
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
            "  replay: cargo run -p natrix-sim --release{} -- replay --seed {} --trace{}",
            features(a),
            r.seed,
            flags(a)
        );
    }
    for s in &sum.nondeterministic {
        println!("NONDETERMINISTIC seed {s}: two runs gave different trace hashes");
    }
    if sum.failures.is_empty() && sum.nondeterministic.is_empty() {
        println!("all {} seeds passed", sum.seeds);
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
        "cargo run -p natrix-sim --release{} -- replay --seed {text} --trace{}",
        features(a),
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
