//! The cluster world under test: seeds pass, runs replay exactly, and the
//! planted bugs of routes, leaf nodes and gateways are caught by their
//! invariants.

use natrix_core::config::PlantedBug;
use natrix_sim::cluster::run_seed_cluster;
use natrix_sim::mutation::CLUSTER_SUITE;
use natrix_sim::world::Config;

#[test]
fn cluster_seeds_pass_with_and_without_faults() {
    let mut delivering = 0;
    for seed in 0..100 {
        let r = run_seed_cluster(Config::new(seed));
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        delivering += usize::from(r.messages > 0);
    }
    assert!(delivering > 80, "only {delivering} of 100 seeds delivered");
    for seed in 0..30 {
        let mut c = Config::new(seed);
        c.faults = false;
        let r = run_seed_cluster(c);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn a_member_dialed_back_after_a_restart_is_gossiped_to_the_others() {
    // Seed 30654 restarts S1 while S3 is cut off from everyone; S0 dials
    // S3 back, and only that route's gossip can bring S1 and S3 together.
    let r = run_seed_cluster(Config::new(30654));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

#[test]
fn cluster_runs_are_deterministic() {
    for seed in [0, 7, u64::MAX] {
        let a = run_seed_cluster(Config::new(seed));
        let b = run_seed_cluster(Config::new(seed));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.steps, b.steps);
    }
    let mut traced = Config::new(7);
    traced.trace = true;
    let t = run_seed_cluster(traced);
    assert!(t.trace.iter().any(|l| l.contains("final round")));
    assert_eq!(
        t.trace_hash,
        run_seed_cluster(Config::new(7)).trace_hash,
        "tracing does not change the run"
    );
}

#[test]
fn the_peers_planted_bugs_are_caught() {
    for planted in CLUSTER_SUITE {
        assert!(PlantedBug::CLUSTER.contains(&planted.bug));
        // (`mutations` in scripts/test hunts them up to seed 200.)
        let caught = (0..50).find(|&seed| {
            let mut c = Config::new(seed);
            c.mutation = Some(planted.mutation());
            run_seed_cluster(c)
                .violations
                .iter()
                .any(|v| planted.caught_by.contains(&v.invariant))
        });
        assert!(
            caught.is_some(),
            "{} survived seeds 0..50",
            planted.bug.name()
        );
    }
}
