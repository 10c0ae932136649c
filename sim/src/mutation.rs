//! The mutation suite: bugs planted in the core at run time (never by a
//! cargo feature), each with the invariants that prove its checkers bite.
//! A mutation survives when no seed within the bound catches it.

use natrix_core::config::{Mutation, PlantedBug};

use crate::run::{SeedResult, run_many};

/// One planted bug, how often it strikes, and which invariants must catch it.
#[derive(Debug, Clone, Copy)]
pub struct Planted {
    pub bug: PlantedBug,
    /// Strikes on every `one_in`th delivery (1: every time it can).
    pub one_in: u64,
    /// At least one of these must fire for the bug to count as caught.
    pub caught_by: &'static [&'static str],
}

impl Planted {
    pub fn mutation(&self) -> Mutation {
        Mutation {
            bug: self.bug,
            one_in: self.one_in,
        }
    }
}

/// Every planted bug of the suite.
pub const SUITE: [Planted; 29] = [
    Planted {
        bug: PlantedBug::DropDelivery,
        one_in: 100,
        caught_by: &["no-silent-gaps", "final-delivery"],
    },
    Planted {
        bug: PlantedBug::Duplicate,
        one_in: 100,
        caught_by: &["no-duplicates", "queue-at-most-once"],
    },
    Planted {
        bug: PlantedBug::Reorder,
        one_in: 10,
        caught_by: &["publisher-order"],
    },
    Planted {
        bug: PlantedBug::WrongQueueMember,
        one_in: 10,
        caught_by: &["queue-at-most-once", "final-delivery"],
    },
    Planted {
        bug: PlantedBug::FlipPayloadByte,
        one_in: 100,
        caught_by: &["intact-payload"],
    },
    Planted {
        bug: PlantedBug::DeliverAfterUnsubscribe,
        one_in: 1,
        caught_by: &["no-delivery-after-unsubscribe"],
    },
    Planted {
        bug: PlantedBug::DropReply,
        one_in: 50,
        caught_by: &["same-reply"],
    },
    Planted {
        bug: PlantedBug::LeakDenied,
        one_in: 1,
        caught_by: &["permitted-delivery"],
    },
    Planted {
        bug: PlantedBug::DenyWithoutError,
        one_in: 1,
        caught_by: &["expected-errors"],
    },
    Planted {
        bug: PlantedBug::CrossAccount,
        one_in: 1,
        caught_by: &["account-isolation"],
    },
    Planted {
        bug: PlantedBug::AckBeforeSync,
        one_in: 1,
        caught_by: &["acked-durable", "no-duplicate-acks"],
    },
    Planted {
        bug: PlantedBug::SnapshotSkips,
        one_in: 1,
        caught_by: &["restore-faithful"],
    },
    Planted {
        bug: PlantedBug::ForgetDedupe,
        one_in: 1,
        caught_by: &["dedupe-across-restarts"],
    },
    Planted {
        bug: PlantedBug::LoseAckFloor,
        one_in: 1,
        caught_by: &["consumer-no-redelivery-after-durable-ack"],
    },
    Planted {
        bug: PlantedBug::RedeliverAcked,
        one_in: 1,
        caught_by: &[
            "consumer-no-redelivery-after-durable-ack",
            "workqueue-no-redelivery-after-ack",
        ],
    },
    Planted {
        bug: PlantedBug::SkipOnRedelivery,
        one_in: 1,
        caught_by: &["consumer-at-least-once"],
    },
    Planted {
        bug: PlantedBug::DeliverUndurable,
        one_in: 1,
        caught_by: &["consumer-delivered-durable"],
    },
    Planted {
        bug: PlantedBug::IgnoreMaxAckPending,
        one_in: 1,
        caught_by: &["consumer-max-ack-pending"],
    },
    Planted {
        bug: PlantedBug::IgnoreMaxDeliver,
        one_in: 1,
        caught_by: &["consumer-max-deliver"],
    },
    Planted {
        bug: PlantedBug::KeepAckedWork,
        one_in: 1,
        caught_by: &["workqueue-gone-after-ack"],
    },
    Planted {
        bug: PlantedBug::StaleLastRead,
        one_in: 1,
        caught_by: &["kv-read-latest"],
    },
    // The partitioned group (`check_partition`).
    Planted {
        bug: PlantedBug::PartitionSkipHead,
        one_in: 1,
        caught_by: &["partition-order"],
    },
    Planted {
        bug: PlantedBug::PartitionEagerLeave,
        one_in: 1,
        caught_by: &["partition-one-owner"],
    },
    Planted {
        bug: PlantedBug::PartitionStall,
        one_in: 1,
        caught_by: &["partition-at-least-once"],
    },
    // The priority group (`check_priority`).
    Planted {
        bug: PlantedBug::PinMismatchServed,
        one_in: 1,
        caught_by: &["pinned-one-client"],
    },
    Planted {
        bug: PlantedBug::PinNotRenewed,
        one_in: 1,
        caught_by: &["pinned-until-timeout"],
    },
    Planted {
        bug: PlantedBug::IgnoreMinPending,
        one_in: 1,
        caught_by: &["overflow-min-pending"],
    },
    Planted {
        bug: PlantedBug::DropUnservable,
        one_in: 1,
        caught_by: &["priority-at-least-once"],
    },
    Planted {
        bug: PlantedBug::UnservableToBack,
        one_in: 1,
        caught_by: &["priority-order"],
    },
];

/// The bugs planted in routes, leaf nodes and gateways, hunted in the
/// cluster world (`cluster`): a single server never meets them.
pub const CLUSTER_SUITE: [Planted; 11] = [
    Planted {
        bug: PlantedBug::ForwardRoutedToRoute,
        // Not every time: a message bounced on every hop never stops.
        one_in: 10,
        caught_by: &["one-hop", "no-duplicates"],
    },
    Planted {
        bug: PlantedBug::DropRouteUnsub,
        one_in: 1,
        caught_by: &["interest-converges"],
    },
    Planted {
        bug: PlantedBug::QueueTwiceAcrossServers,
        one_in: 1,
        caught_by: &["queue-at-most-once"],
    },
    Planted {
        bug: PlantedBug::EchoToLeaf,
        // Not every time: a message echoed on both ends never stops.
        one_in: 10,
        caught_by: &["no-loop", "no-duplicates"],
    },
    Planted {
        bug: PlantedBug::LeafToldOwnInterest,
        one_in: 1,
        // Its own `$LDS.` subject comes back: a loop, and the leaf node
        // stays away.
        caught_by: &["interest-converges", "joined"],
    },
    Planted {
        bug: PlantedBug::GatewayToGateway,
        one_in: 10,
        caught_by: &["one-hop", "no-loop", "no-duplicates"],
    },
    Planted {
        bug: PlantedBug::DropGatewayUnsub,
        one_in: 1,
        caught_by: &["interest-converges"],
    },
    Planted {
        bug: PlantedBug::IgnoreLeafDeny,
        one_in: 1,
        caught_by: &["leaf-deny"],
    },
    Planted {
        bug: PlantedBug::IgnoreGatewayGossip,
        one_in: 1,
        caught_by: &["joined"],
    },
    Planted {
        bug: PlantedBug::IgnoreRouteExport,
        one_in: 1,
        caught_by: &["route-deny"],
    },
    Planted {
        bug: PlantedBug::HubInterestToRoutes,
        one_in: 1,
        caught_by: &["final-delivery"],
    },
];

/// Whether a planted bug is hunted in the cluster world.
pub fn in_cluster(planted: &Planted) -> bool {
    PlantedBug::CLUSTER.contains(&planted.bug)
}

/// The suite's entry for a bug named on the command line.
pub fn by_name(name: &str) -> Result<Planted, String> {
    let all = || SUITE.iter().chain(CLUSTER_SUITE.iter());
    let names: Vec<&str> = all().map(|p| p.bug.name()).collect();
    all()
        .find(|p| p.bug.name() == name)
        .copied()
        .ok_or_else(|| format!("no mutation {name:?}; one of: {}", names.join(", ")))
}

/// What hunting one mutation found.
#[derive(Debug)]
pub struct Hunt {
    pub planted: Planted,
    /// The first seed whose violations include one of `caught_by`.
    pub caught: Option<SeedResult>,
    /// Whether running the catching seed again failed identically.
    pub replays: bool,
}

/// Runs `seeds` with `planted` in the core and finds the first seed that
/// catches it (by one of its own invariants), then replays that seed.
pub fn hunt(
    planted: Planted,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    run: &(dyn Fn(u64, Mutation) -> SeedResult + Sync),
) -> Hunt {
    let m = planted.mutation();
    let catches = |r: &SeedResult| {
        r.violations
            .iter()
            .any(|v| planted.caught_by.contains(&v.invariant))
    };
    // Seeds run in order, a few per thread at a time, so the hunt stops
    // soon after the first seed that catches the bug.
    let chunk = 4 * jobs.max(1) as u64;
    let mut caught = None;
    let mut start = seeds.start;
    while caught.is_none() && start < seeds.end {
        let end = (start + chunk).min(seeds.end);
        let sum = run_many(start..end, jobs, 0, &|s| run(s, m), &|_, _, _| {});
        caught = sum.failures.into_iter().find(|r| catches(r));
        start = end;
    }
    let replays = caught.as_ref().is_some_and(|r| {
        let again = run(r.seed, m);
        again.violations == r.violations && again.trace_hash == r.trace_hash
    });
    Hunt {
        planted,
        caught,
        replays,
    }
}
