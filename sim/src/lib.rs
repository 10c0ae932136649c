//! natrix-sim: deterministic simulation of natrix.
//!
//! A run is a pure function of one `u64` seed. The seed draws the workload
//! (simulated clients speaking the real NATS protocol), the fault mix
//! (partitions, one-way holds, latency spikes, client crashes mid-message,
//! slow readers, server restarts) and every random choice of the network and
//! of the core itself. The lock-step harness steps the real `natrix-core`
//! `Server` and the clients through simulated time with an in-memory
//! network; checkers read the recorded history and name every broken
//! invariant. A failing seed replays exactly, with a readable trace.
//! `phases` is what the lock-step and turmoil harnesses share (setup,
//! phases, checking); `mutation` plants bugs in the core at run time and
//! proves every checker catches one.
//!
//! What it is not: a load test or a model of TCP's internals. Bytes on a
//! live connection arrive in order and intact; only faults natrix claims to
//! survive are injected. In half the seeds the server runs JetStream:
//! `storage` executes its storage operations over the simulated disk with
//! seeded delays, reordering and power losses, and `check_js` checks that
//! every acknowledged publish is on that disk. `cluster` runs two to four
//! servers of one cluster over in-memory routes, with partitions between
//! servers and server restarts, and `check_cluster` checks that they form
//! a full mesh, agree on each other's interest and forward one hop.

pub mod check;
pub mod check_backup;
pub mod check_cluster;
pub mod check_consumer;
pub mod check_js;
pub mod check_limits;
pub mod check_partition;
pub mod check_priority;
pub mod check_streams;
pub mod client;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod mutation;
pub mod phases;
pub mod run;
pub mod seed;
pub mod storage;
pub mod turmoil_sim;
pub mod world;
