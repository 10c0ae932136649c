//! Key-partitioned consumer groups (natrix's own; nats-server has none):
//! the members of one durable pull consumer share its stream the way a
//! Kafka consumer group shares a topic's partitions.
//!
//! A pull consumer with explicit acks becomes a group when its metadata
//! says `"natrix.partitions": "<N>"` (and, optionally,
//! `"natrix.partition_key": "<i>,<j>"`, the 1-based subject tokens that
//! make a message's key; the whole subject when absent). A message's
//! partition is `{{partition(N, …)}}`'s: FNV-1a of the key tokens, modulo
//! N. nats-server ignores the metadata: the same consumer there is an
//! ordinary shared one.
//!
//! - **Members** are the client connections that pull from it. One joins
//!   with its first pull request and leaves when its connection closes or
//!   it has had no request waiting, nor a delivery, for the consumer's
//!   `ack_wait` (so what it holds has had its ack wait).
//! - **Owners.** Each partition belongs to one member, chosen by
//!   rendezvous hashing over the members: a join or a leave moves only
//!   the partitions that must move.
//! - **One at a time, in order.** A partition has at most one message out
//!   (delivered and not acknowledged, or waiting for its owner to pull);
//!   its later messages wait behind it, in stream order. So a key's
//!   messages reach its owner in order, a redelivery comes before
//!   anything after it, and when ownership moves, the new owner gets
//!   nothing of the partition until the old owner's message is acked (or
//!   its ack wait passes and it is redelivered to the new owner).
//!   Parallelism is the number of partitions.
//! - What waits counts against `max_ack_pending`, which bounds how far the
//!   consumer reads ahead of a slow member.

use std::collections::{BTreeMap, BTreeSet};

use natrix_storage::Msg;

use super::config::{AckPolicy, ConsumerConfig};
use super::{ConsumerId, Outstanding};
use crate::FastMap;
use crate::server::{ConnId, Server};
use crate::time::Instant;

/// The metadata key that makes a consumer a partitioned group.
pub(crate) const PARTITIONS: &str = "natrix.partitions";
/// The metadata key naming the subject tokens of a message's key.
pub(crate) const PARTITION_KEY: &str = "natrix.partition_key";
const PARTITIONS_MAX: u32 = 4096;

/// A partitioned consumer's groupings and members.
#[derive(Debug, Default)]
pub(crate) struct Partitioning {
    pub count: u32,
    /// 0-based subject token indexes of the key (none: the subject).
    pub key_tokens: Vec<usize>,
    /// Members by connection id.
    pub members: BTreeMap<u64, Member>,
    /// Each partition's message out: delivered and unacknowledged, or
    /// waiting (in `redeliver`) for its owner.
    pub head: FastMap<u32, u64>,
    /// Messages behind their partition's head: `(partition, seq)`.
    pub parked: BTreeSet<(u32, u64)>,
    /// The partition of each pending message whose subject was read.
    pub of: FastMap<u64, u32>,
    /// The member each message out was delivered to.
    pub holder: FastMap<u64, u64>,
    /// Messages no longer pending since the last look.
    pub settled: Vec<u64>,
    /// The planted bug, if any (mutation suite only).
    pub planted: Option<crate::config::PlantedBug>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    pub conn: ConnId,
    /// Its last pull request, or the last delivery to it: what it holds
    /// keeps its ack wait's grace.
    pub last_request: Instant,
}

impl Partitioning {
    /// The partitioning `config` asks for, or why it cannot have it.
    pub(crate) fn from_config(config: &ConsumerConfig) -> Result<Option<Self>, String> {
        let Some(count) = config.metadata.get(PARTITIONS) else {
            return Ok(None);
        };
        let count: u32 = match count.trim().parse() {
            Ok(n) if (1..=PARTITIONS_MAX).contains(&n) => n,
            _ => {
                return Err(format!(
                    "{PARTITIONS} must be a number of partitions from 1 to {PARTITIONS_MAX}"
                ));
            }
        };
        if config.is_push() || config.ack_policy != AckPolicy::Explicit {
            return Err("a partitioned consumer is a pull consumer with explicit acks".into());
        }
        if config.priority_policy != super::config::PriorityPolicy::None {
            return Err("a partitioned consumer has no priority policy".into());
        }
        let mut key_tokens = Vec::new();
        if let Some(key) = config.metadata.get(PARTITION_KEY) {
            for t in key.split(',') {
                match t.trim().parse::<usize>() {
                    Ok(n) if n >= 1 => key_tokens.push(n - 1),
                    _ => {
                        return Err(format!(
                            "{PARTITION_KEY} must list subject token positions from 1, as \"2\" or \"1,3\""
                        ));
                    }
                }
            }
        }
        Ok(Some(Partitioning {
            count,
            key_tokens,
            ..Default::default()
        }))
    }

    /// Message subject `subject`'s partition.
    pub(crate) fn partition(&self, subject: &[u8]) -> u32 {
        let hash = if self.key_tokens.is_empty() {
            crate::mapping::fnv1a32(subject)
        } else {
            let tokens: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
            let mut key = Vec::new();
            for &i in &self.key_tokens {
                if let Some(t) = tokens.get(i) {
                    key.extend_from_slice(t);
                }
            }
            crate::mapping::fnv1a32(&key)
        };
        hash % self.count
    }

    /// Partition `p`'s owner: the member ranking highest for it.
    pub(crate) fn owner(&self, p: u32) -> Option<u64> {
        self.members
            .keys()
            .copied()
            .max_by_key(|&member| rank(p, member))
    }
}

/// Rendezvous weight of `member` for partition `p` (splitmix64).
fn rank(p: u32, member: u64) -> u64 {
    let mut z = (u64::from(p) << 32 ^ member).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Where a message read for a partitioned consumer goes.
pub(crate) enum Taken {
    /// Deliver it now (its owner has a request at the front).
    Deliver,
    /// It waits: behind its partition's head, or for its owner to pull.
    Waits,
}

impl super::Consumer {
    /// Removes `seq` from the pending set; its partition moves on.
    pub(crate) fn unpend(&mut self, seq: u64) -> Option<Outstanding> {
        let o = self.pending.remove(&seq);
        if o.is_some()
            && let Some(parts) = &mut self.parts
        {
            parts.settled.push(seq);
        }
        o
    }

    /// Whether connection `member` owns partition `p`.
    fn owns(&self, member: u64, p: u32) -> bool {
        self.parts
            .as_ref()
            .is_some_and(|parts| parts.owner(p) == Some(member))
    }

    /// Brings the first waiting request of partition `p`'s owner to the
    /// front; false when its owner has none.
    pub(crate) fn front_owner_request(&mut self, p: u32) -> bool {
        let Some(at) = self.waiting.iter().position(|w| self.owns(w.member, p)) else {
            return false;
        };
        if at > 0 {
            let w = self.waiting.remove(at).expect("position is in range");
            self.waiting.push_front(w);
        }
        true
    }

    /// Whether the owner of `seq`'s partition (if known) has a request
    /// waiting: a redelivery worth reading now.
    pub(crate) fn redelivery_ready(&self, seq: u64) -> bool {
        let Some(parts) = &self.parts else {
            return true;
        };
        let Some(&p) = parts.of.get(&seq) else {
            return true; // read it to learn its partition
        };
        let Some(owner) = parts.owner(p) else {
            return false;
        };
        self.waiting.iter().any(|w| w.member == owner)
    }

    /// A message read from the stream (first time: `first`): whether it is
    /// delivered now or waits. Messages that wait are pending (with no
    /// delivery yet), holding the ack floor below them.
    pub(crate) fn take(&mut self, m: &Msg, first: bool) -> Taken {
        let parts = self.parts.as_mut().expect("a partitioned consumer");
        let p = parts.partition(m.subject.as_bytes());
        parts.of.insert(m.seq, p);
        let skip_head = parts.planted == Some(crate::config::PlantedBug::PartitionSkipHead);
        match parts.head.get(&p).copied() {
            Some(head) if head != m.seq && !skip_head => {
                // Behind the partition's head.
                parts.parked.insert((p, m.seq));
                self.redeliver.remove(&m.seq);
                if first {
                    self.pending.insert(m.seq, waiting());
                }
                return Taken::Waits;
            }
            Some(_) => {}
            None => {
                parts.head.insert(p, m.seq);
            }
        }
        if self.front_owner_request(p) {
            return Taken::Deliver;
        }
        // The head waits for its owner to pull.
        if first {
            self.pending.insert(m.seq, waiting());
        }
        self.redeliver.insert(m.seq);
        Taken::Waits
    }

    /// Moves every partition past the messages settled since the last
    /// look: the next one parked behind becomes its head.
    pub(crate) fn settle_partitions(&mut self) {
        let Some(parts) = &mut self.parts else {
            return;
        };
        for seq in std::mem::take(&mut parts.settled) {
            parts.holder.remove(&seq);
            let Some(p) = parts.of.remove(&seq) else {
                continue;
            };
            parts.parked.remove(&(p, seq));
            if parts.head.get(&p) != Some(&seq) {
                continue;
            }
            parts.head.remove(&p);
            let next = parts.parked.range((p, 0)..=(p, u64::MAX)).next().copied();
            if let Some((p, next)) = next {
                parts.parked.remove(&(p, next));
                parts.head.insert(p, next);
                if parts.planted != Some(crate::config::PlantedBug::PartitionStall) {
                    self.redeliver.insert(next);
                }
            }
        }
    }

    /// Forgets every grouping (a reset starts over).
    pub(crate) fn clear_partitions(&mut self) {
        if let Some(parts) = &mut self.parts {
            let members = std::mem::take(&mut parts.members);
            **parts = Partitioning {
                count: parts.count,
                key_tokens: std::mem::take(&mut parts.key_tokens),
                members,
                planted: parts.planted,
                ..Default::default()
            };
        }
    }
}

/// A pending entry for a message not delivered yet.
fn waiting() -> Outstanding {
    Outstanding {
        consumer_seq: 0,
        deliveries: 0,
        delivered_unix_nanos: 0,
    }
}

impl Server {
    /// A pull request from connection `from` makes it a member of
    /// partitioned consumer `id` (or keeps it one).
    pub(crate) fn partition_member_seen(&mut self, id: ConsumerId, from: Option<ConnId>) -> u64 {
        let Some(conn) = from else {
            return 0;
        };
        let cid = self.conns.get(conn.0).map_or(0, |c| c.cid);
        let now = self.now.instant;
        let c = &mut self.jetstream.consumers[id as usize];
        if let Some(parts) = &mut c.parts {
            parts.members.insert(
                cid,
                Member {
                    conn,
                    last_request: now,
                },
            );
        }
        cid
    }

    /// Drops the members of partitioned consumer `id` whose connection is
    /// gone, or that have had no request waiting for `ack_wait`; what they
    /// held is redelivered to the new owners at once.
    pub(crate) fn partition_members_check(&mut self, id: ConsumerId) {
        let now = self.now.instant;
        let c = &self.jetstream.consumers[id as usize];
        let Some(parts) = &c.parts else {
            return;
        };
        let quiet = c.ack_wait();
        let eager = self.planted(crate::config::PlantedBug::PartitionEagerLeave);
        let gone: Vec<u64> = parts
            .members
            .iter()
            .filter(|&(&cid, m)| {
                let open = self
                    .conns
                    .get(m.conn.0)
                    .is_some_and(|conn| conn.cid == cid && !conn.closing);
                let pulling = c.waiting.iter().any(|w| w.member == cid);
                !open || (!pulling && (eager || now >= m.last_request + quiet))
            })
            .map(|(&cid, _)| cid)
            .collect();
        if gone.is_empty() {
            return;
        }
        let c = &mut self.jetstream.consumers[id as usize];
        c.waiting.retain(|w| !gone.contains(&w.member));
        let parts = c.parts.as_mut().expect("checked above");
        let mut held = Vec::new();
        for cid in &gone {
            parts.members.remove(cid);
        }
        parts.holder.retain(|&seq, member| {
            if gone.contains(member) {
                held.push(seq);
                false
            } else {
                true
            }
        });
        for seq in held {
            c.deadlines.clear(seq);
            c.redeliver.insert(seq);
        }
        self.kick_consumer(id);
    }
}
