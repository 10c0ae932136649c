//! JetStream on one server: streams, their `$JS.API`, and the durable
//! publish path.
//!
//! - **Plumbing.** With JetStream on, the internal client (see the system
//!   module) subscribes to `$JS.API.>` in every account but the system
//!   account (and to `$JS.<domain>.API.>` with a domain), and to each
//!   stream's subjects in the stream's account. Requests and publishes are
//!   served at the end of the event that brought them, like the system
//!   services.
//! - **Storage.** The core never touches a disk: it emits
//!   [`Action::Storage`](super::Action::Storage) operations with ids it
//!   chose, and the driver (or the simulator) answers each with a
//!   completion ([`Server::on_storage`]). A stream's operations run in the
//!   order emitted. Each completion carries the stream's state and its
//!   durable sequence.
//! - **Durability.** A publish gets its sequence here, is appended with the
//!   other publishes of the same event, and one `Sync` per stream follows
//!   them. Its PubAck is sent only once a completion reports the stream
//!   durable up to its sequence: nothing is acknowledged that a power cut
//!   could take back.
//! - **Start.** Streams are found on disk ([`StorageOp::ListStreams`]) and
//!   reopened before any request or publish is served; what arrives
//!   before that waits.

mod api;
mod batch;
mod batch_tail;
pub(crate) mod config;
pub(crate) mod consumer;
mod counter;
mod direct;
mod error;
mod level;
pub(crate) mod monitor;
mod publish;
pub(crate) mod snapshot;
pub(crate) mod source;
mod ttl;

use std::collections::{BTreeMap, VecDeque};

use natrix_storage::meta::MetaError;
use natrix_storage::ops::{Completion, Done, OpId, StorageOp};
use natrix_storage::{Msg, StreamState};
use serde::Serialize;

use super::system::{InternalMsg, Service};
use super::{AccountId, LogLevel, Server, SubId};
use config::StreamConfig;

/// How often streams with a max age are asked to drop what is too old.
const EXPIRE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A stream's index in [`JetStream::streams`].
pub(crate) type StreamId = u32;

/// What the core keeps of one stream.
#[derive(Debug)]
pub(crate) struct Stream {
    pub account: AccountId,
    pub config: StreamConfig,
    pub created_unix_nanos: u64,
    /// The storage key: account and name, percent-encoded, joined by `.`.
    pub key: String,
    /// The state as the last completion reported it.
    pub state: StreamState,
    /// The last sequence given out (appends in flight included).
    pub last_seq: u64,
    /// Messages given a sequence whose append has not completed, and their
    /// bytes (for `discard: new`).
    pub inflight_msgs: u64,
    pub inflight_bytes: u64,
    /// Messages of this event, appended together at its end.
    pub queued: Vec<Msg>,
    /// Publishes waiting for the sync that covers them, by sequence.
    pub acks: natrix_storage::commit::AckOutbox<publish::PendingAck>,
    /// Every message up to here is on disk.
    pub durable_seq: u64,
    /// The internal subscriptions on the stream's subjects.
    pub subs: Vec<SubId>,
    /// Set while the store is unusable (a write failed): the stream is
    /// reopened from disk, and publishes are refused until it is back.
    pub failed: bool,
    /// The compiled `subject_transform`, if any.
    pub transform: Option<crate::mapping::Transform>,
    /// The compiled `republish` transform, if any.
    pub republish: Option<crate::mapping::Transform>,
    /// Republish: each subject's last sequence, as far as known (looked up
    /// in the store the first time; forgotten when messages are removed).
    pub last_by_subject: crate::FastMap<String, u64>,
    /// Discard new per subject: the store's count of messages on the first
    /// parked publish's subject, read after every append before it; taken
    /// by that publish's checks.
    pub subject_count: Option<(String, u64)>,
    /// Counter streams: each subject's tally (counter.rs). Forgotten
    /// with `last_by_subject`.
    pub counters: counter::Counters,
    /// Republished messages waiting, like acknowledgements, for the sync
    /// that covers them: by sequence, the subject and the message.
    pub republish_queue: natrix_storage::commit::AckOutbox<publish::Copy>,
    /// Roll-up purges of the queued messages, run after their append.
    pub rollups: Vec<natrix_storage::Purge>,
    /// Publishes waiting behind one whose check needs the store (a
    /// `Nats-Expected-Last-Subject-Sequence`), in arrival order.
    pub parked: VecDeque<InternalMsg>,
    /// A committed atomic batch waiting for the store's last sequences of
    /// the subjects it checks; publishes after it are parked (batch.rs).
    pub batch_waiting: Option<batch::WaitingCommit>,
    /// `Nats-Msg-Id`s seen within the duplicate window.
    pub dedupe: publish::Dedupe,
    pub last_msg_id: Option<String>,
    /// Its consumers, by name.
    pub consumers: BTreeMap<String, consumer::ConsumerId>,
    /// Interest retention: everything below this was asked to go.
    pub swept_below: u64,
}

/// A request waiting for a storage completion.
#[derive(Debug)]
enum Pending {
    /// `STREAM.CREATE` or `STREAM.UPDATE`, answered once the stream is
    /// open and its metadata saved.
    Created {
        stream: StreamId,
        reply: Option<Box<[u8]>>,
        update: bool,
    },
    /// An append of `msgs` messages of `bytes` bytes.
    Appended {
        stream: StreamId,
        msgs: u64,
        bytes: u64,
    },
    /// A sync: acknowledgements follow `durable_seq`.
    Synced { stream: StreamId },
    /// The store's last sequence on a subject, for the first parked
    /// publish of the stream.
    SubjectChecked { stream: StreamId, subject: String },
    /// The store's count of messages on a subject, for the first parked
    /// publish of a stream that discards new messages per subject.
    SubjectCounted { stream: StreamId, subject: String },
    /// The store's last sequence on a subject a committed batch checks.
    BatchSubject { stream: StreamId, subject: String },
    /// A counter subject's last message, for a sourced increment: read
    /// when the tallies were at `epoch`.
    TallyRead {
        stream: StreamId,
        subject: String,
        epoch: u64,
    },
    /// The stream was reopened after a failed write.
    Reopened { stream: StreamId },
    MsgGet {
        account: AccountId,
        reply: Box<[u8]>,
        /// `no_hdr`: the message without its headers.
        no_headers: bool,
    },
    /// `MSG.GET` with `start_time` and `next_by_subj`: the first message
    /// at or after the time, whose sequence the next on the subject is
    /// read from (in the stream stored under `stream`).
    MsgGetAtTime {
        account: AccountId,
        reply: Box<[u8]>,
        no_headers: bool,
        stream: String,
        next_by_subj: String,
    },
    /// `STREAM.INFO` with subject or deleted details.
    InfoDetails {
        account: AccountId,
        reply: Box<[u8]>,
        stream: StreamId,
        offset: usize,
    },
    MsgDelete {
        account: AccountId,
        reply: Box<[u8]>,
    },
    DirectGet {
        account: AccountId,
        reply: Box<[u8]>,
        stream: String,
    },
    /// A batch or multi-last direct get (`up_to`: multi-last's bound).
    DirectBatch {
        account: AccountId,
        reply: Box<[u8]>,
        stream: String,
        up_to: Option<u64>,
    },
    /// An interest stream lost a consumer: its subjects, to drop those
    /// no consumer left wants.
    InterestSubjects { stream: StreamId },
    /// A direct get with a time: the sequence it falls at.
    DirectAtTime {
        account: AccountId,
        reply: Box<[u8]>,
        stream: String,
        req: Box<direct::DirectGetRequest>,
        what: direct::AtTimeFor,
    },
    Purge {
        account: AccountId,
        reply: Box<[u8]>,
    },
    Removed {
        account: AccountId,
        reply: Box<[u8]>,
    },
    /// Sends `json` once the sync this waits for is done.
    Respond {
        account: AccountId,
        reply: Box<[u8]>,
        json: Vec<u8>,
    },
    /// Start-up: the streams found on disk.
    Listed,
    /// Start-up: a stream found on disk is open again; its consumers
    /// come back with it.
    Recovered {
        stream: StreamId,
        consumers: Vec<natrix_storage::meta::StoredConsumer>,
    },
    /// Start-up: the headers of the messages within the stream's
    /// duplicate window, to remember their `Nats-Msg-Id`s again.
    RecentIds { stream: StreamId },
    /// Start-up: the last message of a stream with atomic batches, to
    /// find a batch a crash cut short (batch.rs).
    BatchTail { stream: StreamId },
    /// Start-up: that batch removed.
    BatchCut { stream: StreamId },
    /// A consumer's batch read.
    ConsumerRead {
        consumer: consumer::ConsumerId,
        key: (String, String),
    },
    /// A consumer's read of one message to redeliver.
    ConsumerRedeliver {
        consumer: consumer::ConsumerId,
        key: (String, String),
        seq: u64,
    },
    /// A new consumer's last messages per subject (`last`,
    /// `last_per_subject`), up to the stream's durable sequence.
    ConsumerPositioned {
        consumer: consumer::ConsumerId,
        key: (String, String),
        reply: Box<[u8]>,
        up_to: u64,
    },
    /// A new consumer's first message at its start time (`by_start_time`).
    ConsumerAtTime {
        consumer: consumer::ConsumerId,
        key: (String, String),
        reply: Box<[u8]>,
        /// For a `RESET` to this sequence: the start time's sequence is
        /// the lowest it may go to.
        reset: Option<u64>,
    },
    /// The count of a consumer's pending messages.
    ConsumerCount {
        consumer: consumer::ConsumerId,
        key: (String, String),
        then: consumer::api::AfterCount,
    },
    /// A new consumer is saved: answer its create.
    ConsumerCreated {
        consumer: consumer::ConsumerId,
        key: (String, String),
        reply: Box<[u8]>,
    },
    /// A consumer's progress is saved: answer the double acks it holds.
    ConsumerSaved {
        consumer: consumer::ConsumerId,
        account: AccountId,
        replies: Vec<Box<[u8]>>,
    },
    /// A deleted consumer's file is gone.
    ConsumerRemoved {
        account: AccountId,
        reply: Box<[u8]>,
    },
    /// A step towards a TTL or max-age removal, or a marker (ttl.rs).
    Ttl(ttl::Step),
    /// A mirror's or source's read (source.rs).
    Source(source::Step),
    /// Nothing to do when it completes (metadata saves, removals of
    /// leftovers).
    Quiet,
    /// A store read of a snapshot (its job).
    SnapshotRead { job: u32 },
    /// A storage step of a restore.
    Restore {
        job: u32,
        step: snapshot::RestoreStep,
    },
}

/// JetStream's part of the server.
#[derive(Debug, Default)]
pub(crate) struct JetStream {
    pub enabled: bool,
    pub streams: slab::Slab<Stream>,
    pub consumers: slab::Slab<consumer::Consumer>,
    /// Consumers whose progress changed during this event.
    dirty_consumers: Vec<consumer::ConsumerId>,
    /// Interest streams to sweep at the end of this event.
    swept: Vec<StreamId>,
    /// Streams by account and name, and by storage key.
    pub by_name: BTreeMap<(AccountId, String), StreamId>,
    by_key: BTreeMap<String, StreamId>,
    next_op: u64,
    pending: crate::FastMap<OpId, Pending>,
    /// Streams that queued appends during this event.
    dirty: Vec<StreamId>,
    /// Streams appended to since the last timed sync (`sync_interval`).
    unsynced: std::collections::BTreeSet<StreamId>,
    /// Start-up has found and reopened every stream on disk.
    ready: bool,
    /// Start-up operations still outstanding.
    recovering: usize,
    /// What arrived before start-up was done, served in order after it.
    waiting: VecDeque<(Service, InternalMsg)>,
    /// API requests served, and those answered with an error.
    pub api_total: u64,
    pub api_errors: u64,
    /// Messages with a TTL, by when they are due.
    pub ttls: ttl::Ttls,
    /// Open atomic batches (batch.rs).
    pub batches: batch::Batches,
    /// Mirrors and sources, by destination stream (source.rs).
    pub sourcing: source::Sourcing,
    /// Snapshots and restores in progress (snapshot/).
    pub transfers: snapshot::Transfers,
}

/// Percent-encodes everything but `[A-Za-z0-9_-]`, so that the storage key
/// is a safe directory name and `.` can join account and stream.
fn encode_key_part(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

pub(crate) fn storage_key(account: &str, stream: &str) -> String {
    let mut key = String::new();
    encode_key_part(account, &mut key);
    key.push('.');
    encode_key_part(stream, &mut key);
    key
}

/// JSON as nats-server's Go encoder writes it: compact, with `<`, `>` and
/// `&` escaped (they can only occur inside strings).
pub(crate) fn go_json<T: Serialize>(value: &T) -> Vec<u8> {
    let s = serde_json::to_string(value).expect("API values serialize");
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// The header block of a stored message served or republished: its own
/// headers (`own`, a whole block or empty), then where it is stored
/// (`Nats-Stream`, `Nats-Subject`, `Nats-Sequence`, `Nats-Time-Stamp`),
/// then `extra` (whole header lines), as nats-server 2.15 orders them.
pub(crate) fn origin_headers(
    own: &[u8],
    stream: &str,
    (subject, seq, ts_unix_nanos): (&str, u64, u64),
    extra: &str,
) -> Vec<u8> {
    let mut headers = match own.strip_suffix(b"\r\n\r\n") {
        Some(lines) if !lines.is_empty() => [lines, b"\r\n"].concat(),
        _ => b"NATS/1.0\r\n".to_vec(),
    };
    let added = format!(
        "Nats-Stream: {stream}\r\nNats-Subject: {subject}\r\nNats-Sequence: {seq}\r\nNats-Time-Stamp: {}\r\n{extra}\r\n",
        crate::time::rfc3339_nanos(ts_unix_nanos),
    );
    headers.extend_from_slice(added.as_bytes());
    headers
}

/// What is saved beside a stream's messages so that it comes back after a
/// restart: its configuration and when it was created.
#[derive(Debug, Serialize, serde::Deserialize)]
struct StreamMeta {
    account: String,
    created_unix_nanos: u64,
    config: StreamConfig,
}

impl Server {
    /// Turns JetStream on if configured: subscribes the API in every
    /// account but the system account, and looks for streams on disk.
    /// Called after the internal client is installed (at start and after a
    /// reload rebuilt the accounts).
    pub(crate) fn install_jetstream(&mut self) {
        if self.opts.jetstream.is_none() {
            return;
        }
        let Some(client) = self.system.client else {
            self.log(
                LogLevel::Error,
                "JetStream needs the system account: JetStream is off".into(),
            );
            return;
        };
        let first = !self.jetstream.enabled;
        self.jetstream.enabled = true;
        self.info.jetstream = true;
        let domain = self
            .opts
            .jetstream
            .as_ref()
            .map(|j| j.domain.clone())
            .unwrap_or_default();
        let accounts: Vec<AccountId> = (0..self.accounts.len())
            .map(|i| AccountId(i as u32))
            .filter(|&a| Some(a) != self.system_account)
            .collect();
        for account in accounts {
            self.internal_subscribe_next(client, account, "$JS.API.>", Service::JsApi);
            if !domain.is_empty() {
                let subject = format!("$JS.{domain}.API.>");
                self.internal_subscribe_next(client, account, &subject, Service::JsApi);
            }
        }
        // A reload drops the internal client's subscriptions: the
        // streams' come back here.
        let ids: Vec<StreamId> = self
            .jetstream
            .streams
            .iter()
            .map(|(k, _)| k as u32)
            .collect();
        for id in ids {
            self.jetstream.streams[id as usize].subs.clear();
            self.subscribe_stream(id);
        }
        self.resubscribe_consumers();
        if first {
            self.jetstream.recovering = 1;
            let id = self.next_op(Pending::Listed);
            self.actions
                .push_back(super::Action::Storage(StorageOp::ListStreams { id }));
        }
    }

    fn next_op(&mut self, pending: Pending) -> OpId {
        self.jetstream.next_op += 1;
        let id = OpId(self.jetstream.next_op);
        self.jetstream.pending.insert(id, pending);
        id
    }

    fn storage(&mut self, op: StorageOp) {
        self.actions.push_back(super::Action::Storage(op));
    }

    /// Subscribes the internal client to a stream's subjects.
    fn subscribe_stream(&mut self, id: StreamId) {
        let Some(client) = self.system.client else {
            return;
        };
        let s = &self.jetstream.streams[id as usize];
        let (account, subjects) = (s.account, s.config.subjects.clone());
        let mut subs = Vec::new();
        for subject in subjects {
            subs.push(self.internal_subscribe_next(
                client,
                account,
                &subject,
                Service::JsStream(id),
            ));
        }
        self.jetstream.streams[id as usize].subs = subs;
    }

    fn unsubscribe_stream(&mut self, id: StreamId) {
        let subs = std::mem::take(&mut self.jetstream.streams[id as usize].subs);
        for h in subs {
            self.internal_unsubscribe(h);
        }
    }

    /// A message for JetStream (a request on the API, or a publish to a
    /// stream), served at the end of the event.
    pub(crate) fn serve_jetstream(&mut self, service: Service, m: InternalMsg) {
        if !self.jetstream.ready {
            self.jetstream.waiting.push_back((service, m));
            return;
        }
        match service {
            Service::JsApi => self.api_request(&m),
            Service::JsStream(id) => self.stream_publish(id, m),
            Service::JsAck(id) => self.consumer_ack(id, &m),
            Service::JsFlow(id) => self.flow_control_reply(id, &m.subject),
            Service::JsSnapshotAck(job) => self.snapshot_ack(job),
            Service::JsRestore(job) => self.restore_chunk(job, &m),
            _ => unreachable!("only JetStream services come here"),
        }
    }

    /// Appends what this event queued, one `Append` and one `Sync` per
    /// stream (called at the end of every event).
    pub(crate) fn flush_jetstream(&mut self) {
        let dirty = std::mem::take(&mut self.jetstream.dirty);
        for id in dirty {
            self.flush_stream(id);
        }
        self.save_consumers();
        self.sweep_interest();
    }

    /// Emits the `Append` and `Sync` of what stream `id` has queued.
    pub(crate) fn flush_stream(&mut self, id: StreamId) {
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        let msgs = std::mem::take(&mut s.queued);
        if msgs.is_empty() {
            return;
        }
        let rollups = std::mem::take(&mut s.rollups);
        // On an interest stream, what no consumer wants is not kept (its
        // sequence is used, as in nats-server).
        let mut unwanted = Vec::new();
        if s.config.retention == config::Retention::Interest {
            self.retention_changed(id);
            unwanted = msgs
                .iter()
                .filter(|m| !self.wanted_by_a_consumer(id, m.subject.as_bytes()))
                .map(|m| m.seq)
                .collect();
        }
        let s = &mut self.jetstream.streams[id as usize];
        let key = s.key.clone();
        let count = msgs.len() as u64;
        let bytes = msgs.iter().map(Msg::size_bytes).sum();
        let append = self.next_op(Pending::Appended {
            stream: id,
            msgs: count,
            bytes,
        });
        self.storage(StorageOp::Append {
            id: append,
            stream: key.clone(),
            msgs,
        });
        for purge in rollups {
            let op = self.next_op(Pending::Quiet);
            self.storage(StorageOp::Purge {
                id: op,
                stream: key.clone(),
                purge,
            });
        }
        for seq in unwanted {
            self.retention_delete(id, seq);
        }
        if self.sync_interval().is_some() {
            // The lazier trade: acknowledged once appended, synced on the
            // timer.
            self.jetstream.unsynced.insert(id);
            self.arm_sync();
            return;
        }
        let sync = self.next_op(Pending::Synced { stream: id });
        self.storage(StorageOp::Sync {
            id: sync,
            stream: key,
        });
    }

    /// `sync_interval` when the operator chose it over syncing every
    /// acknowledged write.
    fn sync_interval(&self) -> Option<std::time::Duration> {
        self.opts.jetstream.as_ref().and_then(|j| j.sync_interval)
    }

    fn arm_sync(&mut self) {
        let key = super::timers::TimerKey::Server(super::timers::ServerTimer::JsSync);
        if let Some(every) = self.sync_interval()
            && self.timers.get(key).is_none()
        {
            let at = self.now.instant + every;
            self.set_server_deadline(super::timers::ServerTimer::JsSync, Some(at));
        }
    }

    /// Syncs every stream written since the last sync (`sync_interval`).
    pub(crate) fn sync_timer(&mut self) {
        let due = std::mem::take(&mut self.jetstream.unsynced);
        for id in due {
            let Some(s) = self.jetstream.streams.get(id as usize) else {
                continue;
            };
            let key = s.key.clone();
            let op = self.next_op(Pending::Synced { stream: id });
            self.storage(StorageOp::Sync {
                id: op,
                stream: key,
            });
        }
    }

    /// A storage operation completed.
    pub(crate) fn on_storage(&mut self, c: &Completion) {
        let Some(pending) = self.jetstream.pending.remove(&c.id) else {
            let line = format!("Unexpected storage completion {:?}", c.id);
            self.log(LogLevel::Error, line);
            return;
        };
        // Every completion of a stream says how far it is durable and what
        // it holds now.
        if let Some(&id) = self.jetstream.by_key.get(&c.stream) {
            let s = &mut self.jetstream.streams[id as usize];
            let removed = matches!(
                c.result,
                Ok(Done::Purged(_) | Done::Deleted(true) | Done::Expired(1..))
            ) || matches!(c.result, Ok(Done::Appended(a)) if a.removed > 0);
            if removed {
                s.last_by_subject.clear();
                s.counters.clear();
            }
            let durable_before = s.durable_seq;
            let first_before = s.state.first_seq;
            if !matches!(pending, Pending::Removed { .. }) {
                s.state = c.state.clone();
                s.durable_seq = s.durable_seq.max(c.durable_seq);
            }
            let moved = s.durable_seq > durable_before;
            let first_after = s.state.first_seq;
            self.release_acks(id);
            if first_after > first_before {
                self.consumers_skip_to(id, first_after);
            }
            if moved {
                self.kick_consumers(id);
            }
            self.sourcing_stream_changed(id); // source.rs
        }
        // A stream's slot may hold another stream by now (deleted, and its
        // id given to a new one): its completions are not the new one's.
        let stream_of = |p: &Pending| match p {
            Pending::Created { stream, .. }
            | Pending::Appended { stream, .. }
            | Pending::Synced { stream }
            | Pending::Reopened { stream }
            | Pending::SubjectChecked { stream, .. }
            | Pending::SubjectCounted { stream, .. }
            | Pending::BatchSubject { stream, .. }
            | Pending::TallyRead { stream, .. }
            | Pending::InterestSubjects { stream }
            | Pending::InfoDetails { stream, .. }
            | Pending::Recovered { stream, .. }
            | Pending::RecentIds { stream }
            | Pending::BatchTail { stream }
            | Pending::BatchCut { stream } => Some(*stream),
            Pending::Ttl(step) => Some(step.stream()),
            _ => None,
        };
        // Likewise a consumer's.
        let consumer_of = |p: &Pending| match p {
            Pending::ConsumerRead { consumer, key, .. }
            | Pending::ConsumerRedeliver { consumer, key, .. }
            | Pending::ConsumerPositioned { consumer, key, .. }
            | Pending::ConsumerAtTime { consumer, key, .. }
            | Pending::ConsumerCount { consumer, key, .. }
            | Pending::ConsumerCreated { consumer, key, .. } => Some((*consumer, key.clone())),
            _ => None,
        };
        if let Some((id, key)) = consumer_of(&pending)
            && !self.consumer_is(id, &key)
        {
            return;
        }
        if let Some(id) = stream_of(&pending)
            && self
                .jetstream
                .streams
                .get(id as usize)
                .is_none_or(|s| s.key != c.stream)
        {
            match pending {
                Pending::Recovered { .. }
                | Pending::RecentIds { .. }
                | Pending::BatchTail { .. }
                | Pending::BatchCut { .. } => {
                    self.jetstream.recovering -= 1;
                    self.check_ready();
                }
                Pending::Ttl(step) if step.holds_start() => {
                    self.jetstream.recovering -= 1;
                    self.check_ready();
                }
                // A request about a stream deleted meanwhile goes
                // unanswered, as one that raced the delete would.
                _ => {}
            }
            return;
        }
        match pending {
            Pending::Created {
                stream,
                reply,
                update,
            } => self.created(stream, reply, update, c),
            Pending::Appended {
                stream,
                msgs,
                bytes,
            } => {
                let planted = self.planted(crate::config::PlantedBug::AckBeforeSync);
                let lazy = self.sync_interval().is_some();
                if let Some(s) = self.jetstream.streams.get_mut(stream as usize) {
                    s.inflight_msgs = s.inflight_msgs.saturating_sub(msgs);
                    s.inflight_bytes = s.inflight_bytes.saturating_sub(bytes);
                    if (planted || lazy) && c.result.is_ok() {
                        // What is in the page cache is acknowledged: the
                        // operator's choice with `sync_interval`, and the
                        // simulation's planted bug otherwise.
                        s.durable_seq = s.durable_seq.max(c.state.last_seq);
                        self.release_acks(stream);
                    }
                }
                if let Err(e) = &c.result {
                    self.write_failed(stream, &e.to_string());
                }
            }
            Pending::Synced { stream } => {
                if let Err(e) = &c.result {
                    self.write_failed(stream, &e.to_string());
                }
            }
            Pending::Reopened { stream } => self.reopened(stream, c),
            Pending::SubjectChecked { stream, subject } => self.subject_checked(stream, subject, c),
            Pending::SubjectCounted { stream, subject } => self.subject_counted(stream, subject, c),
            Pending::BatchSubject { stream, subject } => {
                self.batch_subject_read(stream, subject, c)
            }
            Pending::TallyRead {
                stream,
                subject,
                epoch,
            } => self.tally_read(stream, subject, epoch, c), // source.rs
            Pending::MsgGet {
                account,
                reply,
                no_headers,
            } => self.msg_got(account, &reply, no_headers, c),
            Pending::MsgGetAtTime {
                account,
                reply,
                no_headers,
                stream,
                next_by_subj,
            } => self.msg_get_from_time(account, &reply, no_headers, stream, next_by_subj, c),
            Pending::InfoDetails {
                account,
                reply,
                stream,
                offset,
            } => self.info_details(account, &reply, stream, offset, c),
            Pending::MsgDelete { account, reply } => self.msg_deleted(account, &reply, c),
            Pending::DirectGet {
                account,
                reply,
                stream,
            } => self.direct_got(account, &reply, &stream, c),
            Pending::DirectBatch {
                account,
                reply,
                stream,
                up_to,
            } => self.direct_batch_got(account, &reply, &stream, up_to, c),
            Pending::InterestSubjects { stream } => self.drop_unwanted_subjects(stream, c),
            Pending::DirectAtTime {
                account,
                reply,
                stream,
                req,
                what,
            } => self.direct_at_time(account, &reply, &stream, *req, what, c),
            Pending::Purge { account, reply } => self.purged(account, &reply, c),
            Pending::Removed { account, reply } => self.stream_removed(account, &reply, c),
            Pending::Respond {
                account,
                reply,
                json,
            } => match &c.result {
                Ok(_) => self.publish_as_server(account, &reply, None, &json),
                Err(e) => {
                    let line = format!("JetStream sync failed on {}: {e}", c.stream);
                    self.log(LogLevel::Error, line);
                }
            },
            Pending::Listed => self.listed(c),
            Pending::Recovered { stream, consumers } => self.recovered(stream, consumers, c),
            Pending::RecentIds { stream } => self.recent_ids(stream, c),
            Pending::BatchTail { stream } => self.batch_tail_read(stream, c),
            Pending::BatchCut { stream } => self.batch_cut(stream, c),
            Pending::ConsumerRead { consumer, .. } => self.consumer_read(consumer, c),
            Pending::ConsumerRedeliver { consumer, seq, .. } => {
                self.consumer_redelivered(consumer, seq, c)
            }
            Pending::ConsumerPositioned {
                consumer,
                reply,
                up_to,
                ..
            } => self.consumer_positioned(consumer, reply, up_to, c),
            Pending::ConsumerAtTime {
                consumer,
                reply,
                reset: None,
                ..
            } => self.consumer_at_time(consumer, reply, c),
            Pending::ConsumerAtTime {
                consumer,
                reply,
                reset: Some(seq),
                ..
            } => self.reset_past_start_time(consumer, &reply, seq, c),
            Pending::ConsumerCount { consumer, then, .. } => {
                self.consumer_counted(consumer, then, c)
            }
            Pending::ConsumerCreated {
                consumer, reply, ..
            } => match &c.result {
                Ok(_) => self.consumer_created(consumer, &reply),
                Err(e) => self.consumer_create_failed(consumer, &reply, &e.to_string()),
            },
            Pending::ConsumerSaved {
                consumer,
                account,
                replies,
            } => match &c.result {
                Ok(_) => {
                    for r in replies {
                        self.publish_as_server(account, &r, None, b"");
                    }
                }
                Err(e) => {
                    let line = format!(
                        "JetStream could not save consumer {consumer} of {}: {e}",
                        c.stream
                    );
                    self.log(LogLevel::Error, line);
                }
            },
            Pending::ConsumerRemoved { account, reply } => {
                self.consumer_removed(account, &reply, c)
            }
            Pending::Ttl(step) => self.ttl_step(step, c),
            Pending::SnapshotRead { job } => self.snapshot_read(job, c),
            Pending::Restore { job, step } => self.restore_step(job, step, c),
            Pending::Source(step) => self.sourcing_step(step, c),
            Pending::Quiet => {
                if let Err(e) = &c.result {
                    let line = format!("JetStream storage error on {}: {e}", c.stream);
                    self.log(LogLevel::Error, line);
                }
            }
        }
    }

    /// The streams found on disk: reopen each, then serve what waited.
    fn listed(&mut self, c: &Completion) {
        self.jetstream.recovering -= 1;
        match &c.result {
            Ok(Done::Streams(found)) => {
                for stored in found.clone() {
                    match stored.meta {
                        Ok(meta) => {
                            self.recover_stream(&stored.name, Some(&meta), stored.consumers);
                        }
                        Err(MetaError::Missing) => {
                            self.recover_stream(&stored.name, None, Vec::new());
                        }
                        Err(e) => {
                            // Its messages may be intact: leave the files
                            // for an operator, and serve nothing from them.
                            let line = format!(
                                "JetStream cannot read the metadata of stream directory {}: {e:?}; the stream is not loaded",
                                stored.name
                            );
                            self.log(LogLevel::Error, line);
                        }
                    }
                }
            }
            Ok(other) => unreachable!("a listing completes with streams, not {other:?}"),
            Err(e) => {
                let line = format!("JetStream could not list its streams: {e}");
                self.log(LogLevel::Error, line);
            }
        }
        self.check_ready();
    }

    /// Loads a stream found on disk (or just restored to it): the stream
    /// it registers, or none if it removes the directory instead.
    fn recover_stream(
        &mut self,
        key: &str,
        meta: Option<&[u8]>,
        consumers: Vec<natrix_storage::meta::StoredConsumer>,
    ) -> Option<StreamId> {
        let meta: Option<StreamMeta> = meta.and_then(|m| serde_json::from_slice(m).ok());
        let account = meta
            .as_ref()
            .and_then(|m| self.account_id(&m.account))
            .filter(|_| true);
        let (Some(meta), Some(account)) = (meta, account) else {
            // A stream created but never described (a crash between its
            // open and its metadata), or of an account that is gone: its
            // creation was never acknowledged, so it goes.
            let line = format!("JetStream removes the unknown stream directory {key}");
            self.log(LogLevel::Warn, line);
            let id = self.next_op(Pending::Quiet);
            self.storage(StorageOp::Remove {
                id,
                stream: key.to_string(),
            });
            return None;
        };
        let id = self.add_stream(account, meta.config, meta.created_unix_nanos);
        self.jetstream.recovering += 1;
        let config = self.jetstream.streams[id as usize].config.store_config();
        let op = self.next_op(Pending::Recovered {
            stream: id,
            consumers,
        });
        self.storage(StorageOp::Open {
            id: op,
            stream: key.to_string(),
            config,
        });
        Some(id)
    }

    fn recovered(
        &mut self,
        id: StreamId,
        consumers: Vec<natrix_storage::meta::StoredConsumer>,
        c: &Completion,
    ) {
        self.jetstream.recovering -= 1;
        match &c.result {
            Ok(Done::Opened { state, report }) => {
                let s = &mut self.jetstream.streams[id as usize];
                s.last_seq = state.last_seq;
                let (name, msgs) = (s.config.name.clone(), state.msgs);
                let line = format!("  Restored {msgs} messages for stream {name:?}");
                self.log(LogLevel::Info, line);
                if !report.corruption.is_empty() {
                    let line = format!(
                        "Stream {name:?} has corrupt messages, never served: {:?}",
                        report.corruption
                    );
                    self.log(LogLevel::Error, line);
                }
                self.subscribe_stream(id);
                self.rebuild_dedupe(id);
                for stored in consumers {
                    match stored.state {
                        Ok(bytes) => self.recover_consumer(id, &stored.name, &bytes),
                        Err(e) => {
                            let line = format!(
                                "JetStream cannot read consumer {:?} of stream {name:?}: {e:?}; it is not loaded",
                                stored.name
                            );
                            self.log(LogLevel::Error, line);
                        }
                    }
                }
                self.rebuild_ttls(id);
                self.check_batch_tail(id); // batch_tail.rs
                self.restore_loaded(id, true); // snapshot/
            }
            Ok(other) => unreachable!("an open completes with its state, not {other:?}"),
            Err(e) => {
                let name = self.jetstream.streams[id as usize].config.name.clone();
                let line = format!("Error recreating stream {name:?}: {e}");
                self.log(LogLevel::Warn, line);
                self.restore_loaded(id, false); // snapshot/
                self.forget_stream(id);
            }
        }
        self.check_ready();
    }

    /// Arms the max-age timer if some stream has a max age and it is not
    /// armed yet.
    pub(crate) fn arm_expire(&mut self) {
        let key = super::timers::TimerKey::Server(super::timers::ServerTimer::JsExpire);
        let needed = self
            .jetstream
            .streams
            .iter()
            .any(|(_, s)| s.config.max_age > 0);
        if needed && self.timers.get(key).is_none() {
            let at = self.now.instant + EXPIRE_EVERY;
            self.set_server_deadline(super::timers::ServerTimer::JsExpire, Some(at));
        }
    }

    /// Asks the store of every stream with a max age to remove what is
    /// older (the store keeps each message's time).
    pub(crate) fn expire_timer(&mut self) {
        let due: Vec<String> = self
            .jetstream
            .streams
            .iter()
            .filter(|(_, s)| s.config.max_age > 0 && !s.failed && !s.config.allow_msg_ttl)
            .map(|(_, s)| s.key.clone())
            .collect();
        // Streams that allow TTLs have their max age applied by the core.
        self.scan_ages();
        let now = self.now.unix_nanos;
        for key in due {
            let id = self.next_op(Pending::Quiet);
            self.storage(StorageOp::Expire {
                id,
                stream: key,
                now_unix_nanos: now,
            });
        }
        self.arm_expire();
    }

    /// Asks for the headers of the messages within the duplicate window,
    /// so that a publisher retrying across the restart is still deduped;
    /// start-up waits for them.
    fn rebuild_dedupe(&mut self, id: StreamId) {
        let s = &self.jetstream.streams[id as usize];
        let window = u64::try_from(s.config.duplicate_window).unwrap_or(0);
        if window == 0 || s.state.msgs == 0 {
            return;
        }
        if self.planted(crate::config::PlantedBug::ForgetDedupe) {
            return;
        }
        let key = s.key.clone();
        self.jetstream.recovering += 1;
        let op = self.next_op(Pending::RecentIds { stream: id });
        self.storage(StorageOp::RecentHeaders {
            id: op,
            stream: key,
            since_unix_nanos: self.now.unix_nanos.saturating_sub(window),
        });
    }

    fn recent_ids(&mut self, id: StreamId, c: &Completion) {
        self.jetstream.recovering -= 1;
        if let (Ok(Done::RecentHeaders(recent)), Some(s)) =
            (&c.result, self.jetstream.streams.get_mut(id as usize))
        {
            // Oldest first, so the window expires them in order; the
            // newest id is the stream's last.
            for (seq, at, headers) in recent.iter().rev() {
                if let Some(msg_id) = publish::header_msg_id(headers) {
                    s.dedupe.insert(msg_id.clone(), *seq, *at);
                    if *seq == s.state.last_seq {
                        s.last_msg_id = Some(msg_id);
                    }
                }
            }
        }
        self.check_ready();
    }

    fn check_ready(&mut self) {
        if self.jetstream.recovering > 0 || self.jetstream.ready {
            return;
        }
        self.jetstream.ready = true;
        self.arm_expire();
        self.start_all_sourcing(); // source.rs
        let waiting = std::mem::take(&mut self.jetstream.waiting);
        for (service, m) in waiting {
            self.serve_jetstream(service, m);
        }
        self.flush_jetstream();
    }

    /// Registers a stream (not yet open, not yet subscribed).
    fn add_stream(
        &mut self,
        account: AccountId,
        config: StreamConfig,
        created_unix_nanos: u64,
    ) -> StreamId {
        let key = storage_key(&self.accounts[account.0 as usize].name, &config.name);
        let name = config.name.clone();
        let id = self.jetstream.streams.insert(Stream {
            account,
            config,
            created_unix_nanos,
            key,
            state: StreamState::default(),
            last_seq: 0,
            inflight_msgs: 0,
            inflight_bytes: 0,
            queued: Vec::new(),
            acks: natrix_storage::commit::AckOutbox::new(usize::MAX),
            durable_seq: 0,
            subs: Vec::new(),
            failed: false,
            parked: VecDeque::new(),
            batch_waiting: None,
            rollups: Vec::new(),
            transform: None,
            republish: None,
            last_by_subject: crate::FastMap::default(),
            subject_count: None,
            counters: counter::Counters::default(),
            republish_queue: natrix_storage::commit::AckOutbox::new(usize::MAX),
            dedupe: publish::Dedupe::default(),
            last_msg_id: None,
            consumers: BTreeMap::new(),
            swept_below: 0,
        }) as StreamId;
        self.jetstream.by_name.insert((account, name), id);
        let key = self.jetstream.streams[id as usize].key.clone();
        self.jetstream.by_key.insert(key, id);
        self.compile_transform(id);
        id
    }

    /// Compiles the stream's subject transform (checked at create).
    pub(crate) fn compile_transform(&mut self, id: StreamId) {
        let s = &mut self.jetstream.streams[id as usize];
        s.transform = s
            .config
            .subject_transform
            .as_ref()
            .and_then(|t| t.compile().ok());
        s.republish = s
            .config
            .republish
            .as_ref()
            .and_then(|r| crate::mapping::Transform::new(&r.src, &r.dest).ok());
        s.last_by_subject.clear();
        s.counters.clear();
    }

    /// Drops a stream from the core (its files are the caller's business).
    fn forget_stream(&mut self, id: StreamId) {
        self.unsubscribe_stream(id);
        self.forget_consumers_of(id);
        let s = self.jetstream.streams.remove(id as usize);
        self.jetstream
            .by_name
            .remove(&(s.account, s.config.name.clone()));
        self.jetstream.by_key.remove(&s.key);
        self.jetstream.dirty.retain(|&d| d != id);
        self.jetstream.unsynced.remove(&id);
        self.jetstream.ttls.forget(id);
        self.jetstream.batches.forget(id);
        self.forget_sourcing(id); // source.rs
    }

    /// Saves a stream's metadata (after its open).
    fn save_meta(&mut self, id: StreamId, pending: Pending) {
        let s = &self.jetstream.streams[id as usize];
        let meta = StreamMeta {
            account: self.accounts[s.account.0 as usize].name.clone(),
            created_unix_nanos: s.created_unix_nanos,
            config: s.config.clone(),
        };
        let (key, meta) = (
            s.key.clone(),
            serde_json::to_vec(&meta).expect("meta is JSON"),
        );
        let op = self.next_op(pending);
        self.storage(StorageOp::SaveMeta {
            id: op,
            stream: key,
            meta,
        });
    }

    /// `$JS.EVENT.ADVISORY.STREAM.<CREATED|UPDATED|DELETED>.<s>` in the
    /// stream's account, when someone listens.
    pub(crate) fn stream_advisory(&mut self, account: AccountId, stream: &str, action: &str) {
        let event = match action {
            "create" => "CREATED",
            "modify" => "UPDATED",
            _ => "DELETED",
        };
        let subject = format!("$JS.EVENT.ADVISORY.STREAM.{event}.{stream}");
        #[derive(Serialize)]
        struct Action<'a> {
            stream: &'a str,
            action: &'a str,
            #[serde(skip_serializing_if = "String::is_empty")]
            domain: String,
        }
        let domain = self.domain();
        let body = Action {
            stream,
            action,
            domain,
        };
        self.advise(account, &subject, "stream_action", body);
    }

    /// Publishes a JetStream advisory on `subject` in `account` when a
    /// client listens: `{"type":"io.nats.jetstream.advisory.v1.<kind>",
    /// "id", "timestamp", …body}`, in nats-server's field order.
    pub(crate) fn advise<T: Serialize>(
        &mut self,
        account: AccountId,
        subject: &str,
        kind: &str,
        body: T,
    ) {
        if !self.has_client_interest(account, subject.as_bytes()) {
            return;
        }
        #[derive(Serialize)]
        struct Advisory<T: Serialize> {
            #[serde(rename = "type")]
            kind: String,
            id: String,
            timestamp: String,
            #[serde(flatten)]
            body: T,
        }
        let json = go_json(&Advisory {
            kind: format!("io.nats.jetstream.advisory.v1.{kind}"),
            id: self.event_id(),
            timestamp: crate::time::rfc3339_nanos(self.now.unix_nanos),
            body,
        });
        self.publish_as_server(account, subject.as_bytes(), None, &json);
    }

    /// Publishes `body` (with `headers`, if any) as the server in
    /// `account`: API responses, acknowledgements, direct gets.
    pub(crate) fn publish_as_server(
        &mut self,
        account: AccountId,
        subject: &[u8],
        headers: Option<&[u8]>,
        body: &[u8],
    ) {
        self.publish_shown(account, subject, None, headers, body, None);
    }

    /// Publishes as the server, with a reply, and (for consumer
    /// deliveries) shown to subscribers under `shown` rather than the
    /// subject it is routed by, as nats-server shows a delivery under its
    /// stream subject.
    pub(crate) fn publish_shown(
        &mut self,
        account: AccountId,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&[u8]>,
        body: &[u8],
        shown: Option<&[u8]>,
    ) {
        let Some(client) = self.system.client else {
            return;
        };
        // Built in buffers kept between publishes (taken, so that a
        // publish made while this one is routed gets its own).
        let mut payload = std::mem::take(&mut self.scratch.payload);
        payload.clear();
        let header_len = headers.map_or(0, |h| h.len());
        if let Some(h) = headers {
            payload.extend_from_slice(h);
        }
        payload.extend_from_slice(body);
        let mut size = itoa::Buffer::new();
        let mut hlen = itoa::Buffer::new();
        let p = crate::proto::Pub {
            subject,
            reply,
            size_token: size.format(payload.len()).as_bytes(),
            header: headers.map(|_| (header_len, hlen.format(header_len).as_bytes())),
            payload: &payload,
        };
        let shown = shown.map(|s| {
            let mut buf = std::mem::take(&mut self.scratch.shown);
            buf.clear();
            buf.extend_from_slice(s);
            buf
        });
        let outer = std::mem::replace(&mut self.shown_subject, shown);
        self.route(client, account, &p, &mut super::accounts::Route::default());
        if let Some(buf) = std::mem::replace(&mut self.shown_subject, outer) {
            self.scratch.shown = buf;
        }
        // A large message's buffer is not kept: memory follows the load.
        if payload.capacity() <= super::SCRATCH_KEEP_BYTES {
            self.scratch.payload = payload;
        }
    }
}
