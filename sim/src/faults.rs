//! The fault model. Each seed draws its own mix (swarm testing): which kinds
//! of fault are on, how many, and how hard — then when and where each
//! strikes. Only faults core NATS claims to survive are injected: the
//! network may delay, hold and cut connections and the server may restart,
//! but bytes on a live connection are never corrupted or reordered (TCP).

use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::history::ClientId;

/// One scheduled fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Hold traffic between a client and the server (both ways, or one way)
    /// for a while, then release it: a partition.
    Partition {
        client: ClientId,
        to_server: bool,
        to_client: bool,
        for_ns: u64,
    },
    /// Delay everything a client sends or receives by this much, for a while.
    LatencySpike {
        client: ClientId,
        extra_ns: u64,
        for_ns: u64,
    },
    /// The client dies part-way through sending a message.
    Crash { client: ClientId },
    /// The client stops reading for a while (the server must not feed it
    /// partial data: it either catches up or is closed as a slow consumer).
    SlowReader { client: ClientId, for_ns: u64 },
    /// The server process restarts, losing every connection; with
    /// `lame_duck`, it first drains in lame duck mode (stops accepting,
    /// closes its clients gradually) and restarts when that is done. With
    /// `power_loss`, the machine loses power as the process goes: the disk
    /// keeps only what was synced (plus a seeded prefix of the rest, the
    /// next write torn); without, the disk keeps every write.
    Restart { lame_duck: bool, power_loss: bool },
}

/// Which faults a seed turns on, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultMix {
    pub partitions: u32,
    pub one_way: bool,
    pub spikes: u32,
    pub crashes: u32,
    pub slow_readers: u32,
    pub restarts: u32,
    /// Per-chunk network latency is drawn up to this.
    pub latency_max_ns: u64,
}

impl FaultMix {
    pub fn draw(rng: &mut ChaCha8Rng) -> FaultMix {
        let on = |rng: &mut ChaCha8Rng| rng.next_u32().is_multiple_of(2);
        let count =
            |rng: &mut ChaCha8Rng, max: u32| if on(rng) { 1 + rng.next_u32() % max } else { 0 };
        FaultMix {
            partitions: count(rng, 4),
            one_way: on(rng),
            spikes: count(rng, 4),
            crashes: count(rng, 3),
            slow_readers: count(rng, 3),
            restarts: if rng.next_u32().is_multiple_of(4) {
                1
            } else {
                0
            },
            latency_max_ns: [100_000, 1_000_000, 5_000_000, 20_000_000]
                [(rng.next_u32() % 4) as usize],
        }
    }

    pub fn none() -> FaultMix {
        FaultMix {
            partitions: 0,
            one_way: false,
            spikes: 0,
            crashes: 0,
            slow_readers: 0,
            restarts: 0,
            latency_max_ns: 1_000_000,
        }
    }

    /// Places the mix's faults in time over `[0, phase_ns)`.
    pub fn schedule(
        &self,
        rng: &mut ChaCha8Rng,
        clients: usize,
        phase_ns: u64,
    ) -> Vec<(u64, Fault)> {
        let mut out = Vec::new();
        let when = |rng: &mut ChaCha8Rng| u64::from(rng.next_u32()) % phase_ns;
        let who = |rng: &mut ChaCha8Rng| (rng.next_u32() as usize) % clients;
        let dur =
            |rng: &mut ChaCha8Rng, max_ms: u32| u64::from(50 + rng.next_u32() % max_ms) * 1_000_000;
        for _ in 0..self.partitions {
            let (to_server, to_client) = if self.one_way {
                if rng.next_u32().is_multiple_of(2) {
                    (true, false)
                } else {
                    (false, true)
                }
            } else {
                (true, true)
            };
            let f = Fault::Partition {
                client: who(rng),
                to_server,
                to_client,
                for_ns: dur(rng, 6000),
            };
            out.push((when(rng), f));
        }
        for _ in 0..self.spikes {
            let f = Fault::LatencySpike {
                client: who(rng),
                extra_ns: dur(rng, 800),
                for_ns: dur(rng, 2000),
            };
            out.push((when(rng), f));
        }
        for _ in 0..self.crashes {
            out.push((when(rng), Fault::Crash { client: who(rng) }));
        }
        for _ in 0..self.slow_readers {
            out.push((
                when(rng),
                Fault::SlowReader {
                    client: who(rng),
                    for_ns: dur(rng, 5000),
                },
            ));
        }
        for _ in 0..self.restarts {
            let lame_duck = rng.next_u32().is_multiple_of(2);
            let at = when(rng);
            // Drawn last, so the rest of the schedule stays as it was.
            let power_loss = rng.next_u32().is_multiple_of(2);
            out.push((
                at,
                Fault::Restart {
                    lame_duck,
                    power_loss,
                },
            ));
        }
        out.sort_by_key(|(t, _)| *t);
        out
    }
}
