//! Helpers shared by the storage tests: messages, a whole-store dump to
//! compare stores by, and random operations to drive them with.

#![allow(dead_code)]

use natrix_storage::{FileStore, SimDisk};
use natrix_storage::{Msg, Purge, Store, StoreError, StreamConfig, StreamState};

pub const SUBJECTS: [&str; 5] = ["orders.new", "orders.paid", "kv.a", "kv.b", "metrics.cpu.1"];

pub fn msg(seq: u64, subject: &str, payload_bytes: usize) -> Msg {
    Msg {
        seq,
        ts_unix_nanos: seq * 1_000_000,
        subject: subject.to_string(),
        headers: if seq.is_multiple_of(3) {
            b"NATS/1.0\r\nk: v\r\n\r\n".to_vec()
        } else {
            Vec::new()
        },
        // Every fourth payload compresses well; the rest hardly at all.
        payload: (0..payload_bytes)
            .map(|i| match seq % 4 {
                0 => (i / 16) as u8,
                _ => (seq as usize * 31 + i) as u8,
            })
            .collect(),
    }
}

/// Everything a store shows: state, every message, each subject's state.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Dump {
    pub state: StreamState,
    pub msgs: Vec<Msg>,
    pub subjects: Vec<(String, natrix_storage::SubjectState)>,
}

pub fn dump<S: Store + ?Sized>(store: &mut S) -> Dump {
    let state = store.state();
    let mut msgs = Vec::new();
    let mut seq = state.first_seq;
    loop {
        match store.next_matching(seq, None) {
            Ok(Some(m)) => {
                seq = m.seq + 1;
                msgs.push(m);
            }
            Ok(None) => break,
            Err(e) => panic!("dump read failed at {seq}: {e:?}"),
        }
    }
    let subjects = SUBJECTS
        .iter()
        .filter_map(|s| store.subject_state(s).map(|st| (s.to_string(), st)))
        .collect();
    Dump {
        state,
        msgs,
        subjects,
    }
}

impl Dump {
    /// A short form for failure messages.
    pub fn summary(&self) -> String {
        let seqs: Vec<String> = self
            .msgs
            .iter()
            .map(|m| format!("{}:{}", m.seq, m.payload.len()))
            .collect();
        format!("{:?} [{}]", self.state, seqs.join(" "))
    }
}

/// One step of a random workload.
#[derive(Clone, Debug)]
pub enum Op {
    /// Messages: (subject index, payload bytes).
    Append(Vec<(usize, usize)>),
    /// Delete the n-th live message (mod count).
    Delete(usize),
    Purge(Purge),
    /// Truncate this many sequences off the end.
    Truncate(u64),
    /// Expire at the timestamp of this sequence.
    Expire(u64),
    Compact,
    Sync,
}

/// Applies `op`; `next_seq` is the next append's sequence. Returns the
/// states seen after each record it wrote (an append batch is one write of
/// several records, any prefix of which a crash may keep).
pub fn apply<S: Store + ?Sized>(store: &mut S, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Append(batch) => {
            let mut seq = store.state().last_seq + 1;
            let msgs: Vec<Msg> = batch
                .iter()
                .map(|&(s, n)| {
                    let m = msg(seq, SUBJECTS[s % SUBJECTS.len()], n);
                    seq += 1;
                    m
                })
                .collect();
            store.append(&msgs).map(|_| ())
        }
        Op::Delete(n) => {
            let st = store.state();
            if st.msgs == 0 {
                return Ok(());
            }
            let mut seq = st.first_seq;
            for _ in 0..(*n as u64 % st.msgs) {
                match store.next_matching(seq + 1, None)? {
                    Some(m) => seq = m.seq,
                    None => break,
                }
            }
            store.delete(seq).map(|_| ())
        }
        Op::Purge(p) => store.purge(p).map(|_| ()),
        Op::Truncate(back) => {
            let last = store.state().last_seq;
            store.truncate(last.saturating_sub(*back)).map(|_| ())
        }
        Op::Expire(seq) => store.expire(seq * 1_000_000).map(|_| ()),
        Op::Compact => store.compact().map(|_| ()),
        Op::Sync => store.sync().map(|_| ()),
    }
}

/// A stream config with small blocks, so workloads roll and compact.
pub fn small_blocks(limits: bool) -> StreamConfig {
    StreamConfig {
        block_size_bytes: 1024,
        max_msgs_per_subject: limits.then_some(6),
        max_msgs: limits.then_some(40),
        max_bytes: None,
        max_age_ms: limits.then_some(200),
        memory: false,
        // Stores that compress where it helps: packed records among plain
        // ones in every workload.
        compress: true,
    }
}

pub fn open_sim(
    disk: &SimDisk,
    config: &StreamConfig,
) -> (FileStore<SimDisk>, natrix_storage::RecoveryReport) {
    FileStore::open(disk.clone(), "streams/s", config.clone()).expect("open")
}

pub mod strategy {
    use super::Op;
    use natrix_storage::Purge;
    use proptest::prelude::*;

    fn purge() -> impl Strategy<Value = Purge> {
        (
            proptest::option::of(prop_oneof![
                Just("orders.new".to_string()),
                Just("orders.*".to_string()),
                Just("kv.>".to_string()),
            ]),
            0u8..3,
            0u64..40,
        )
            .prop_map(|(filter, which, n)| Purge {
                filter,
                below_seq: (which == 1).then_some(n),
                keep: (which == 2).then_some(n % 5),
            })
    }

    pub fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => proptest::collection::vec((0usize..5, 0usize..300), 1..6).prop_map(Op::Append),
            2 => (0usize..50).prop_map(Op::Delete),
            1 => purge().prop_map(Op::Purge),
            1 => (0u64..4).prop_map(Op::Truncate),
            1 => (0u64..60).prop_map(Op::Expire),
            1 => Just(Op::Compact),
            3 => Just(Op::Sync),
        ]
    }
}

/// Applies `op` to the model, returning the state after each record the
/// file store would write for it (an append batch is one write of several
/// records, and a crash may keep any prefix of them).
pub fn model_steps(model: &mut natrix_storage::MemStore, op: &Op) -> Vec<Dump> {
    match op {
        Op::Append(batch) => batch
            .iter()
            .map(|one| {
                apply(model, &Op::Append(vec![*one])).expect("model append");
                dump(model)
            })
            .collect(),
        Op::Sync | Op::Compact => Vec::new(),
        op => {
            // The model refuses what the store refuses (a contradictory purge).
            let _ = apply(model, op);
            vec![dump(model)]
        }
    }
}

/// A deterministic workload drawn from a seed.
pub fn workload(seed: u64, len: usize) -> Vec<Op> {
    let mut rng = natrix_storage::rng::SplitMix64::new(seed);
    (0..len)
        .map(|_| match rng.below(16) {
            0..=6 => Op::Append(
                (0..1 + rng.below(4))
                    .map(|_| (rng.below(5) as usize, rng.below(200) as usize))
                    .collect(),
            ),
            7 | 8 => Op::Delete(rng.below(30) as usize),
            9 => Op::Purge(Purge {
                filter: (rng.below(2) == 0).then(|| "orders.*".to_string()),
                keep: Some(rng.below(4)),
                below_seq: None,
            }),
            10 => Op::Truncate(rng.below(3)),
            11 => Op::Expire(rng.below(40)),
            12 => Op::Compact,
            _ => Op::Sync,
        })
        .collect()
}

pub fn open_sim_at(
    disk: &SimDisk,
    dir: &str,
    config: &StreamConfig,
) -> (FileStore<SimDisk>, natrix_storage::RecoveryReport) {
    FileStore::open(disk.clone(), dir, config.clone()).expect("open")
}
