//! JetStream consumers on one server: a cursor over a stream that delivers
//! its messages to clients (pushed to a deliver subject, or pulled with
//! `CONSUMER.MSG.NEXT`) and tracks their acknowledgements.
//!
//! - **Only what is durable is delivered.** A consumer reads the stream
//!   through storage operations, and never past the stream's durable
//!   sequence: a message a power cut could take back is never seen by a
//!   client.
//! - **One read at a time.** A consumer with demand (waiting pull
//!   requests, or a push target with interest) and room under
//!   `max_ack_pending` asks storage for the next batch of matching
//!   messages, redeliveries first; more waits for that read.
//! - **Progress is durable.** Delivered and acknowledged sequences and
//!   the pending set are saved (`SaveConsumer`) at the end of each event
//!   that changed them, one write per consumer per storage batch; an
//!   acknowledgement with a reply (a "double ack") is answered once its
//!   save is on disk. After a crash, what was pending is redelivered once
//!   its ack wait passes, and what was delivered after the last save is
//!   delivered again: at least once, never lost.
//! - **Timers.** Each consumer has one timer in the server's table: the
//!   earliest of its redelivery deadlines, pull request expiries,
//!   heartbeats and inactivity deadline.

mod ack;
pub(crate) mod api;
pub(crate) mod config;
mod deliver;
mod pace;
mod partition;
mod priority;
mod reset;
mod retention;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use natrix_storage::ops::StorageOp;
use serde::{Deserialize, Serialize};

use super::{Pending, StreamId};
use crate::server::{AccountId, Server, SubId};
use crate::time::Instant;
use config::{AckPolicy, ConsumerConfig};

/// A consumer's index in [`super::JetStream::consumers`].
pub(crate) type ConsumerId = u32;

/// Messages asked of storage per read.
const READ_BATCH: usize = 256;
/// Bytes asked of storage per read, at most (one message at least).
const READ_BYTES: u64 = 4 << 20;
/// Deliveries without acknowledgements are saved at most this late.
const LAZY_SAVE: Duration = Duration::from_secs(1);
/// A push consumer without interest looks again this often.
const INTEREST_POLL: Duration = Duration::from_millis(250);

/// A consumer and a stream sequence, as `delivered` and `ack_floor` print
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seqs {
    pub consumer_seq: u64,
    pub stream_seq: u64,
}

/// A delivered message waiting for its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Outstanding {
    /// The consumer sequence of its last delivery.
    pub consumer_seq: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
    /// When it was last delivered (wall clock, for the ack token).
    pub delivered_unix_nanos: u64,
}

/// A pull request waiting for messages.
#[derive(Debug, Clone)]
pub(crate) struct PullRequest {
    pub reply: Box<[u8]>,
    /// Messages still wanted.
    pub batch: u64,
    /// Bytes still allowed (0: no limit).
    pub max_bytes: u64,
    pub limited_bytes: bool,
    pub expires: Option<Instant>,
    pub no_wait: bool,
    pub heartbeat: Option<Duration>,
    pub next_heartbeat: Option<Instant>,
    pub delivered: u64,
    /// Its priority group fields (JSON requests only).
    pub group: Option<Box<PullGroup>>,
    /// The id of the connection that sent it (0: unknown).
    pub member: u64,
}

/// A pull request's priority group fields, as nats-server reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct PullGroup {
    pub group: String,
    /// Overflow: served only once this many messages are pending...
    pub min_pending: i64,
    /// ... or this many are delivered and not acknowledged.
    pub min_ack_pending: i64,
    /// Pinned client: the pin id the client was given.
    pub id: String,
    /// Prioritized: 0 (first) to 9.
    pub priority: i64,
}

impl PullRequest {
    /// Its priority (prioritized consumers), lowest first; none last.
    pub(crate) fn priority(&self) -> i64 {
        self.group.as_ref().map_or(i64::MAX, |g| g.priority)
    }

    /// The pin id it carries, if any.
    pub(crate) fn pin_id(&self) -> &str {
        self.group.as_ref().map_or("", |g| g.id.as_str())
    }
}

/// The client a pinned-client consumer serves, until it goes quiet.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    pub id: String,
    pub group: String,
    pub since_unix_nanos: u64,
    /// Unpinned at this instant unless a request with the pin comes.
    pub expires: Instant,
}

/// What the core keeps of one consumer.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub stream: StreamId,
    pub account: AccountId,
    pub stream_name: String,
    pub name: String,
    /// The stream's storage key and the consumer's name: completions for a
    /// consumer that was deleted (and its slot reused) are told apart.
    pub key: (String, String),
    pub config: ConsumerConfig,
    pub created_unix_nanos: u64,
    /// The next stream sequence to read.
    pub next_seq: u64,
    pub delivered: Seqs,
    pub last_active_unix_nanos: u64,
    pub ack_floor: Seqs,
    /// Delivered, not yet acknowledged: by stream sequence.
    pub pending: BTreeMap<u64, Outstanding>,
    /// Redelivery deadlines of the pending messages.
    pub deadlines: Deadlines,
    /// Pending messages due for redelivery, lowest sequence first.
    pub redeliver: BTreeSet<u64>,
    /// Messages read at creation to be delivered first
    /// (`last_per_subject`), and the count still to come after them.
    pub preloaded: VecDeque<natrix_storage::Msg>,
    /// Matching messages after the last one read, as storage last counted.
    pub num_pending: u64,
    /// A storage read is in flight.
    pub reading: bool,
    /// Created and positioned: it may deliver.
    pub ready: bool,
    pub waiting: VecDeque<PullRequest>,
    /// Internal subscriptions: acks, and flow control replies.
    pub subs: Vec<SubId>,
    /// Push: the last delivery or heartbeat, for idle heartbeats.
    pub last_sent: Instant,
    /// Push flow control: the reply of the outstanding request, and bytes
    /// delivered since it was sent.
    pub fc_outstanding: Option<String>,
    pub fc_bytes: u64,
    pub fc_sent: u64,
    /// When it last had interest or activity (for `inactive_threshold`).
    pub last_activity: Instant,
    /// Its state changed since it was last saved.
    pub dirty: bool,
    /// Double acks answered once the state that holds them is saved.
    pub ack_replies: Vec<Box<[u8]>>,
    pub paused_until_unix_nanos: u64,
    /// When it last took an acknowledgement (not saved: after a restart
    /// info shows none until the next one, as nats-server).
    pub last_ack_unix_nanos: u64,
    /// When deliveries not saved yet are to be saved.
    pub save_at: Option<Instant>,
    /// The pinned client (pinned-client consumers).
    pub pin: Option<Pin>,
    /// The stream's last sequence when `num_pending` was counted: what
    /// came after may add to it.
    pub counted_to: u64,
    /// The read in flight is for a position a reset left: its messages
    /// are dropped.
    pub discard_read: bool,
    /// A key-partitioned group's state.
    pub parts: Option<Box<partition::Partitioning>>,
    /// Replay at the original pace, and the rate limit.
    pub pacing: pace::Pacing,
}

/// Redelivery deadlines, by time and by stream sequence (each set,
/// moved or cleared in logarithmic time).
#[derive(Debug, Default)]
pub(crate) struct Deadlines {
    by_time: BTreeSet<(Instant, u64)>,
    by_seq: BTreeMap<u64, Instant>,
}

impl Deadlines {
    pub(crate) fn set(&mut self, seq: u64, at: Instant) {
        if let Some(old) = self.by_seq.insert(seq, at) {
            self.by_time.remove(&(old, seq));
        }
        self.by_time.insert((at, seq));
    }

    pub(crate) fn clear(&mut self, seq: u64) {
        if let Some(old) = self.by_seq.remove(&seq) {
            self.by_time.remove(&(old, seq));
        }
    }

    /// Clears every deadline below `seq`.
    pub(crate) fn clear_below(&mut self, seq: u64) {
        let below: Vec<u64> = self.by_seq.range(..seq).map(|(&s, _)| s).collect();
        for s in below {
            self.clear(s);
        }
    }

    pub(crate) fn first(&self) -> Option<Instant> {
        self.by_time.first().map(|&(at, _)| at)
    }

    /// The sequence of the earliest deadline at or before `now`, cleared.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<u64> {
        let &(at, seq) = self.by_time.first()?;
        if at > now {
            return None;
        }
        self.clear(seq);
        Some(seq)
    }
}

/// What is saved of a consumer: its configuration and progress.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SavedConsumer {
    pub created_unix_nanos: u64,
    pub config: ConsumerConfig,
    pub delivered: Seqs,
    pub ack_floor: Seqs,
    /// `(stream seq, outstanding)` of every pending message.
    pub pending: Vec<(u64, Outstanding)>,
    pub last_active_unix_nanos: u64,
}

impl Consumer {
    /// Whether acks are tracked.
    pub(crate) fn acks(&self) -> bool {
        self.config.ack_policy != AckPolicy::None
    }

    /// Room under `max_ack_pending`.
    pub(crate) fn room(&self) -> u64 {
        if !self.acks() || self.config.max_ack_pending <= 0 {
            return u64::MAX;
        }
        (self.config.max_ack_pending as u64).saturating_sub(self.pending.len() as u64)
    }

    pub(crate) fn num_redelivered(&self) -> usize {
        self.pending.values().filter(|o| o.deliveries > 1).count()
    }

    /// The ack floor follows the first pending message (or everything
    /// delivered when none is pending).
    pub(crate) fn update_ack_floor(&mut self) {
        self.ack_floor = match self.pending.iter().next() {
            Some((&seq, o)) => Seqs {
                consumer_seq: o
                    .consumer_seq
                    .saturating_sub(1)
                    .max(self.ack_floor.consumer_seq),
                stream_seq: seq.saturating_sub(1).max(self.ack_floor.stream_seq),
            },
            None => self.delivered,
        };
    }

    fn saved(&self) -> SavedConsumer {
        SavedConsumer {
            created_unix_nanos: self.created_unix_nanos,
            config: self.config.clone(),
            delivered: self.delivered,
            ack_floor: self.ack_floor,
            pending: self.pending.iter().map(|(&s, &o)| (s, o)).collect(),
            last_active_unix_nanos: self.last_active_unix_nanos,
        }
    }

    /// Whether its progress lives on disk.
    pub(crate) fn persisted(&self, memory_stream: bool) -> bool {
        !memory_stream && !self.config.mem_storage
    }
}

impl Server {
    /// Registers a consumer of stream `stream` (not positioned yet).
    pub(crate) fn add_consumer(
        &mut self,
        stream: StreamId,
        config: ConsumerConfig,
        name: String,
        created_unix_nanos: u64,
    ) -> ConsumerId {
        let s = &self.jetstream.streams[stream as usize];
        let now = self.now.instant;
        let mut parts = partition::Partitioning::from_config(&config)
            .ok()
            .flatten()
            .map(Box::new);
        // Planted bugs (mutation suite only) the group acts on itself.
        if let Some(p) = parts.as_mut() {
            p.planted = self.opts.mutation.as_ref().map(|m| m.bug);
        }
        let c = Consumer {
            stream,
            account: s.account,
            stream_name: s.config.name.clone(),
            key: (s.key.clone(), name.clone()),
            name: name.clone(),
            config,
            created_unix_nanos,
            next_seq: 1,
            delivered: Seqs::default(),
            last_active_unix_nanos: 0,
            ack_floor: Seqs::default(),
            pending: BTreeMap::new(),
            deadlines: Deadlines::default(),
            redeliver: BTreeSet::new(),
            preloaded: VecDeque::new(),
            num_pending: 0,
            reading: false,
            ready: false,
            waiting: VecDeque::new(),
            subs: Vec::new(),
            last_sent: now,
            fc_outstanding: None,
            fc_bytes: 0,
            fc_sent: 0,
            last_activity: now,
            dirty: false,
            ack_replies: Vec::new(),
            paused_until_unix_nanos: 0,
            last_ack_unix_nanos: 0,
            save_at: None,
            pin: None,
            counted_to: 0,
            discard_read: false,
            parts,
            pacing: pace::Pacing {
                // Catching up replays up to the stream's last message.
                replay_to: s.last_seq,
                ..Default::default()
            },
        };
        let id = self.jetstream.consumers.insert(c) as ConsumerId;
        self.jetstream.streams[stream as usize]
            .consumers
            .insert(name, id);
        self.subscribe_consumer(id);
        id
    }

    fn subscribe_consumer(&mut self, id: ConsumerId) {
        let Some(client) = self.system.client else {
            return;
        };
        let c = &self.jetstream.consumers[id as usize];
        let account = c.account;
        let acks = format!("$JS.ACK.{}.{}.>", c.stream_name, c.name);
        let fc = c
            .config
            .flow_control
            .then(|| format!("$JS.FC.{}.{}.*", c.stream_name, c.name));
        // A consumer that takes no acks has no ack subscription: an ack
        // sent to it finds no responder, as with nats-server.
        let mut subs = Vec::new();
        if c.acks() {
            subs.push(self.internal_subscribe_next(
                client,
                account,
                &acks,
                crate::server::system::Service::JsAck(id),
            ));
        }
        if let Some(fc) = fc {
            subs.push(self.internal_subscribe_next(
                client,
                account,
                &fc,
                crate::server::system::Service::JsFlow(id),
            ));
        }
        self.jetstream.consumers[id as usize].subs = subs;
    }

    /// Subscribes every consumer again (after a reload dropped the
    /// internal client's subscriptions).
    pub(crate) fn resubscribe_consumers(&mut self) {
        let ids: Vec<ConsumerId> = self
            .jetstream
            .consumers
            .iter()
            .map(|(k, _)| k as ConsumerId)
            .collect();
        for id in ids {
            self.jetstream.consumers[id as usize].subs.clear();
            self.subscribe_consumer(id);
        }
    }

    /// Drops a consumer from the core (its file is the caller's business).
    pub(crate) fn forget_consumer(&mut self, id: ConsumerId) {
        let Some(c) = self.jetstream.consumers.try_remove(id as usize) else {
            return;
        };
        for h in c.subs {
            self.internal_unsubscribe(h);
        }
        if let Some(s) = self.jetstream.streams.get_mut(c.stream as usize)
            && s.key == c.key.0
        {
            s.consumers.remove(&c.name);
        }
        self.timers
            .set(crate::server::timers::TimerKey::Consumer(id), None);
        self.jetstream.dirty_consumers.retain(|&d| d != id);
    }

    /// Deletes a consumer: its subscriptions, its pull requests (told
    /// `409 Consumer Deleted`), and its file.
    pub(super) fn delete_consumer(&mut self, id: ConsumerId, pending: Pending) {
        let c = &mut self.jetstream.consumers[id as usize];
        let waiting = std::mem::take(&mut c.waiting);
        let (account, key, stream) = (c.account, c.key.clone(), c.stream);
        for w in waiting {
            self.pull_status(account, &w.reply, "409 Consumer Deleted", None);
        }
        self.forget_consumer(id);
        if self.jetstream.streams.contains(stream as usize) {
            self.retention_changed(stream);
            self.interest_lost(stream);
        }
        let op = self.next_op(pending);
        self.storage(StorageOp::RemoveConsumer {
            id: op,
            stream: key.0,
            consumer: key.1,
        });
    }

    /// Saves the progress of every consumer changed during this event
    /// (called at its end).
    pub(crate) fn save_consumers(&mut self) {
        let dirty = std::mem::take(&mut self.jetstream.dirty_consumers);
        for id in dirty {
            let Some(c) = self.jetstream.consumers.get_mut(id as usize) else {
                continue;
            };
            if !c.dirty {
                continue;
            }
            c.dirty = false;
            let memory = self.jetstream.streams[c.stream as usize].config.storage
                == super::config::Storage::Memory;
            let replies = std::mem::take(&mut c.ack_replies);
            if !c.persisted(memory) {
                let account = c.account;
                for r in replies {
                    self.publish_as_server(account, &r, None, b"");
                }
                continue;
            }
            let state = serde_json::to_vec(&c.saved()).expect("consumer state is JSON");
            let (key, account) = (c.key.clone(), c.account);
            let op = self.next_op(Pending::ConsumerSaved {
                consumer: id,
                account,
                replies,
            });
            self.storage(StorageOp::SaveConsumer {
                id: op,
                stream: key.0,
                consumer: key.1,
                state,
            });
        }
    }

    /// Marks a consumer's progress for saving at the end of the event.
    pub(crate) fn consumer_changed(&mut self, id: ConsumerId) {
        let c = &mut self.jetstream.consumers[id as usize];
        c.save_at = None;
        if !c.dirty {
            c.dirty = true;
            self.jetstream.dirty_consumers.push(id);
        }
    }

    /// Marks a consumer's deliveries for saving within
    /// [`LAZY_SAVE`]: nothing is lost if a crash comes first (what was
    /// delivered after the last save is delivered again), so deliveries
    /// alone do not cost a write each; acknowledgements do.
    pub(crate) fn consumer_progressed(&mut self, id: ConsumerId) {
        let now = self.now.instant;
        let c = &mut self.jetstream.consumers[id as usize];
        if !c.dirty && c.save_at.is_none() {
            c.save_at = Some(now + LAZY_SAVE);
        }
    }

    /// A consumer found on disk with its stream: back with its progress.
    pub(crate) fn recover_consumer(&mut self, stream: StreamId, name: &str, bytes: &[u8]) {
        let mut saved: SavedConsumer = match serde_json::from_slice(bytes) {
            Ok(s) => s,
            Err(e) => {
                let line =
                    format!("JetStream cannot read consumer {name:?}: {e}; it is not loaded");
                self.log(crate::server::LogLevel::Error, line);
                return;
            }
        };
        // Planted bug (mutation suite only): the saved progress is lost.
        if self.planted(crate::config::PlantedBug::LoseAckFloor) {
            (saved.delivered, saved.ack_floor, saved.pending) = Default::default();
        }
        let id = self.add_consumer(
            stream,
            saved.config,
            name.to_string(),
            saved.created_unix_nanos,
        );
        let ack_wait = self.jetstream.consumers[id as usize].ack_wait();
        let now = self.now.instant;
        let c = &mut self.jetstream.consumers[id as usize];
        c.delivered = saved.delivered;
        c.ack_floor = saved.ack_floor;
        c.last_active_unix_nanos = saved.last_active_unix_nanos;
        c.next_seq = saved.delivered.stream_seq + 1;
        if c.parts.is_some() {
            // A group reads ahead: what it read is pending (or was acked
            // once delivered), so reading resumes after the last of it,
            // never again as new.
            let read = saved.pending.iter().map(|(seq, _)| *seq).max().unwrap_or(0);
            c.next_seq = c.next_seq.max(read + 1);
        }
        for (seq, o) in saved.pending {
            c.pending.insert(seq, o);
            if c.parts.is_some() {
                // Read again at once, in order, to learn their partitions
                // before anything newer is delivered.
                c.redeliver.insert(seq);
            } else {
                c.deadlines.set(seq, now + ack_wait);
            }
        }
        c.ready = true;
        self.arm_consumer(id);
    }

    /// Removes stream `stream`'s consumers from the core.
    pub(crate) fn forget_consumers_of(&mut self, stream: StreamId) {
        let ids: Vec<ConsumerId> = self.jetstream.streams[stream as usize]
            .consumers
            .values()
            .copied()
            .collect();
        for id in ids {
            let c = &mut self.jetstream.consumers[id as usize];
            let (account, waiting) = (c.account, std::mem::take(&mut c.waiting));
            for w in waiting {
                self.pull_status(account, &w.reply, "409 Consumer Deleted", None);
            }
            self.forget_consumer(id);
        }
    }

    /// Whether a completion for consumer `id` is still its own.
    pub(crate) fn consumer_is(&self, id: ConsumerId, key: &(String, String)) -> bool {
        self.jetstream
            .consumers
            .get(id as usize)
            .is_some_and(|c| &c.key == key)
    }
}

impl Consumer {
    /// How long a delivery waits for its ack before redelivery.
    pub(crate) fn ack_wait(&self) -> Duration {
        Duration::from_nanos(self.config.ack_wait.max(0) as u64)
    }

    /// The redelivery delay after the `deliveries`-th delivery
    /// (`backoff`, its last value repeating, or `ack_wait`).
    pub(crate) fn redelivery_delay(&self, deliveries: u64) -> Duration {
        if self.config.backoff.is_empty() {
            return self.ack_wait();
        }
        let i = (deliveries.saturating_sub(1) as usize).min(self.config.backoff.len() - 1);
        Duration::from_nanos(self.config.backoff[i].max(0) as u64)
    }
}
