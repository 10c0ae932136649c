//! Stream snapshots and restores, in nats-server 2.15's format, so that a
//! backup taken from either server restores into the other.
//!
//! - **Snapshot** (`$JS.API.STREAM.SNAPSHOT.<s>`): the answer carries the
//!   stream's configuration and state; then the stream goes to the
//!   requester's `deliver_subject` as an archive ([`archive`]: the state,
//!   each consumer, every message) in S2 framing ([`s2`]), cut into
//!   `chunk_size` pieces. Each full piece asks for an acknowledgement on
//!   `$JS.SNAPSHOT.ACK.<s>.<token>.<len>.<n>`; at most `window_size` bytes
//!   of pieces wait for theirs, and 5 s without one ends the snapshot
//!   with `408 No Flow Response`. The last piece asks for none, and an
//!   empty message ends it (`204` once a full piece went). Messages are
//!   read from the store in batches as the window opens: a snapshot of any
//!   size holds a few MiB at most. What is appended after the snapshot
//!   began is not in it.
//! - **Restore** (`$JS.API.STREAM.RESTORE.<s>` with `{config, state}`):
//!   the answer names a `deliver_subject`; the requester sends the
//!   snapshot's bytes there, each piece a request answered once its
//!   messages are appended, and an empty request to end. The messages go
//!   into a fresh store under the stream's key (sequences, times and
//!   headers kept; the gaps between them deleted), then its consumers and
//!   metadata are saved and synced, and the stream is loaded as start-up
//!   loads one: only then does it exist, and the last request is answered
//!   with its info. 5 s without a piece drops the restore, and a failed
//!   restore leaves nothing behind.
//!
//! What this is not: cluster-aware (each server snapshots its own
//! streams), or a reader of nats-server's older tar format.

mod advisory;
mod archive;
mod s2;

use std::collections::BTreeMap;
use std::time::Duration;

use natrix_storage::ops::{Completion, Done, StorageOp};
use natrix_storage::{Msg, Purge};
use serde::{Deserialize, Serialize};

use super::api::{Fields, go_json_fields};
use super::config::{StreamConfig, subjects_collide};
use super::consumer::config::ConsumerConfig;
use super::consumer::{Outstanding, SavedConsumer, Seqs};
use super::error::ApiError;
use super::{Pending, StreamId, StreamMeta, storage_key};
use crate::server::system::{InternalMsg, Service};
use crate::server::timers::TimerKey;
use crate::server::{AccountId, Server, SubId};

/// A snapshot or restore that hears nothing for this long ends.
const IDLE: Duration = Duration::from_secs(5);
/// The archive is framed in pieces of this many bytes (S2's block size).
const FRAME_BYTES: usize = 64 * 1024;
/// One store read of a snapshot takes at most this much.
const READ_BYTES: u64 = 1024 * 1024;
const READ_MSGS: usize = 10_000;
/// One restore piece decompresses to at most this much.
const PIECE_PLAIN_MAX: usize = 256 * 1024 * 1024;

/// Snapshots and restores in progress, by job number.
#[derive(Debug, Default)]
pub(crate) struct Transfers {
    next: u32,
    snapshots: BTreeMap<u32, Snapshot>,
    restores: BTreeMap<u32, Restore>,
    /// Restored streams being loaded, with the restore that waits.
    loading: BTreeMap<StreamId, Restore>,
}

#[derive(Debug)]
struct Snapshot {
    account: AccountId,
    asker: advisory::Asker,
    key: String,
    deliver: Box<[u8]>,
    ack_prefix: String,
    sub: SubId,
    chunk: usize,
    /// Full pieces that may wait for their acknowledgement at once.
    window: usize,
    in_flight: usize,
    full_sent: u64,
    /// Archive bytes not framed yet, and framed bytes not sent yet (from
    /// `framed_at`).
    archive: Vec<u8>,
    framed: Vec<u8>,
    framed_at: usize,
    next_seq: u64,
    last_seq: u64,
    reading: bool,
    read_all: bool,
}

#[derive(Debug)]
struct Restore {
    account: AccountId,
    asker: advisory::Asker,
    /// Bytes of the backup received.
    bytes: u64,
    key: String,
    config: StreamConfig,
    /// Where the pieces come (until the restore ends).
    sub: Option<SubId>,
    /// The last request, answered once the stream is loaded.
    reply: Option<Box<[u8]>>,
    frames: s2::FrameDecoder,
    archive: archive::Reader,
    /// `state.json`'s first and last sequence, once read.
    seqs: Option<(u64, u64)>,
    consumers: Vec<(String, Vec<u8>)>,
    /// The last message sequence appended.
    last_seq: u64,
    /// The last piece came: later ones are answered and ignored.
    ending: bool,
}

/// The step of a restore a storage operation belongs to.
#[derive(Debug)]
pub(super) enum RestoreStep {
    /// The stale store removed, or the fresh one opened.
    Prepared,
    /// A piece's messages appended: answer the piece.
    Appended { reply: Box<[u8]> },
    /// A consumer's or the metadata's save.
    Saved,
    /// The final sync: load the stream and answer `reply`.
    Synced { reply: Box<[u8]>, meta: Vec<u8> },
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SnapshotRequest {
    deliver_subject: String,
    no_consumers: bool,
    chunk_size: i64,
    window_size: i64,
    /// Accepted and ignored: every record natrix reads is checked.
    #[allow(dead_code)]
    jsck: bool,
}

#[derive(Serialize)]
struct SnapshotResponse<'a> {
    config: &'a StreamConfig,
    state: super::api::StateJson,
}

#[derive(Deserialize)]
struct RestoreRequest {
    /// Its name may be left out: the subject's is taken.
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    #[allow(dead_code)]
    state: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct RestoreResponse<'a> {
    deliver_subject: &'a str,
}

/// A consumer as a snapshot holds it.
#[derive(Serialize, Deserialize)]
struct ArchivedConsumer {
    config: ConsumerConfig,
    state: ArchivedState,
}

#[derive(Serialize, Deserialize, Default)]
struct ArchivedState {
    #[serde(default)]
    delivered: Seqs,
    #[serde(default)]
    ack_floor: Seqs,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pending: BTreeMap<u64, ArchivedPending>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    redelivered: BTreeMap<u64, u64>,
}

/// A pending message: nats-server writes these two with Go's field names.
#[derive(Serialize, Deserialize)]
struct ArchivedPending {
    /// The consumer sequence of its last delivery.
    #[serde(rename = "Sequence", default)]
    sequence: u64,
    /// When it was last delivered, in nanoseconds.
    #[serde(rename = "Timestamp", default)]
    ts: i64,
}

/// What `state.json` tells a restore.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ArchivedStreamState {
    first_seq: u64,
    last_seq: u64,
    consumer_count: u64,
}

fn restore_failed(why: &str) -> ApiError {
    ApiError::new(500, 10062, format!("restore failed: {why}"))
}

impl Server {
    /// A token as unique as nats-server's NUID: 22 letters and digits.
    fn transfer_token(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..22)
            .map(|_| ALPHABET[self.random_below(ALPHABET.len())] as char)
            .collect()
    }

    fn next_transfer(&mut self) -> u32 {
        let t = &mut self.jetstream.transfers;
        t.next = t.next.wrapping_add(1);
        t.next
    }

    fn arm_transfer(&mut self, job: u32, on: bool) {
        let at = on.then(|| self.now.instant + IDLE);
        self.timers.set(TimerKey::Transfer(job), at);
    }

    /// `$JS.API.STREAM.SNAPSHOT.<name>`.
    pub(super) fn stream_snapshot(
        &mut self,
        account: AccountId,
        reply: &[u8],
        name: &str,
        body: &[u8],
        from: Option<crate::server::ConnId>,
    ) {
        const KIND: &str = "stream_snapshot";
        let trimmed = body.trim_ascii();
        if trimmed.is_empty() || trimmed == b"{}" {
            return self.fail(
                account,
                reply,
                KIND,
                &ApiError::new(400, 10003, "bad request".into()),
            );
        }
        let Some(id) = self.stream_id(account, name) else {
            return self.fail(account, reply, KIND, &ApiError::stream_not_found());
        };
        let req: SnapshotRequest = match go_json_fields(body, Fields::Ignore) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, KIND, &e),
        };
        let deliver = req.deliver_subject.as_bytes();
        if !crate::subject::is_valid_literal_subject(deliver) {
            let e = ApiError::new(400, 10015, "deliver subject not valid".into());
            return self.fail(account, reply, KIND, &e);
        }
        let chunk = match req.chunk_size {
            n if n <= 0 => 128 * 1024,
            n => (n as usize).clamp(1024, 1024 * 1024),
        };
        let window = match req.window_size {
            n if n <= 0 => 8 * 1024 * 1024,
            n => (n as usize).clamp(1024, 32 * 1024 * 1024),
        }
        .max(chunk);
        let s = &self.jetstream.streams[id as usize];
        let json = self.response_json(
            KIND,
            SnapshotResponse {
                config: &s.config,
                state: self.state_json(id),
            },
        );
        self.publish_as_server(account, reply, None, &json);
        let asker = self.asker(name, from);
        self.transfer_created(
            account,
            "SNAPSHOT_CREATE",
            &asker,
            Some(self.state_json(id)),
        );
        let s = &self.jetstream.streams[id as usize];
        let key = s.key.clone();
        let (first_seq, last_seq) = (s.state.first_seq, s.state.last_seq);
        let mut archived = archive::MAGIC.to_vec();
        let mut state = self.state_json(id);
        let consumers: Vec<u32> = if req.no_consumers {
            state.consumer_count = 0;
            Vec::new()
        } else {
            s.consumers.values().copied().collect()
        };
        let state = serde_json::to_vec(&state).expect("a state is JSON");
        archive::put_entry(&mut archived, "state.json", 0, 0, b"", &state);
        for c in consumers {
            let (name, json) = self.archived_consumer(c, last_seq);
            archive::put_entry(
                &mut archived,
                &format!("consumers/{name}"),
                0,
                0,
                b"",
                &json,
            );
        }
        if last_seq < first_seq.max(1) {
            // Nothing to read: the archive ends here.
            archive::put_end(&mut archived);
        }
        let job = self.next_transfer();
        let ack_prefix = format!("$JS.SNAPSHOT.ACK.{name}.{}", self.transfer_token());
        let client = self
            .system
            .client
            .expect("JetStream runs with the internal client");
        let sub = self.internal_subscribe_next(
            client,
            account,
            &format!("{ack_prefix}.>"),
            Service::JsSnapshotAck(job),
        );
        self.jetstream.transfers.snapshots.insert(
            job,
            Snapshot {
                account,
                asker,
                key,
                deliver: deliver.into(),
                ack_prefix,
                sub,
                chunk,
                window: (window / chunk).max(1),
                in_flight: 0,
                full_sent: 0,
                archive: archived,
                framed: Vec::new(),
                framed_at: 0,
                next_seq: first_seq.max(1),
                last_seq,
                reading: false,
                read_all: last_seq < first_seq.max(1),
            },
        );
        self.snapshot_step(job);
    }

    /// A consumer's name and its entry in a snapshot, with the stream
    /// sequences in its state at most `last_seq`, as nats-server writes it.
    fn archived_consumer(&self, id: u32, last_seq: u64) -> (String, Vec<u8>) {
        let c = &self.jetstream.consumers[id as usize];
        let cap = |s: Seqs| Seqs {
            consumer_seq: s.consumer_seq,
            stream_seq: s.stream_seq.min(last_seq),
        };
        let state = ArchivedState {
            delivered: cap(c.delivered),
            ack_floor: cap(c.ack_floor),
            pending: c
                .pending
                .iter()
                .filter(|&(&seq, _)| seq <= last_seq)
                .map(|(&seq, o)| {
                    let p = ArchivedPending {
                        sequence: o.consumer_seq,
                        ts: o.delivered_unix_nanos as i64,
                    };
                    (seq, p)
                })
                .collect(),
            redelivered: c
                .pending
                .iter()
                .filter(|&(&seq, o)| seq <= last_seq && o.deliveries > 1)
                .map(|(&seq, o)| (seq, o.deliveries - 1))
                .collect(),
        };
        let json = serde_json::to_vec(&ArchivedConsumer {
            config: c.config.clone(),
            state,
        })
        .expect("a consumer is JSON");
        (c.name.clone(), json)
    }

    /// Frames, sends and reads what the window allows.
    fn snapshot_step(&mut self, job: u32) {
        let Some(s) = self.jetstream.transfers.snapshots.get_mut(&job) else {
            return;
        };
        // Frame whole blocks, and the rest once the archive is complete.
        while s.archive.len() >= FRAME_BYTES || (s.read_all && !s.archive.is_empty()) {
            let n = s.archive.len().min(FRAME_BYTES);
            let framed = s2::encode_frames(&s.archive[..n]);
            // One stream identifier, at the start.
            let skip = if s.framed.is_empty() && s.framed_at == 0 {
                0
            } else {
                s2::IDENTIFIER_BYTES
            };
            s.framed.extend_from_slice(&framed[skip..]);
            s.archive.drain(..n);
        }
        let mut sends: Vec<(Vec<u8>, Option<String>)> = Vec::new();
        while s.framed.len() - s.framed_at >= s.chunk && s.in_flight < s.window {
            let piece = s.framed[s.framed_at..s.framed_at + s.chunk].to_vec();
            s.framed_at += s.chunk;
            s.in_flight += 1;
            s.full_sent += 1;
            let reply = format!("{}.{}.{}", s.ack_prefix, s.chunk, s.full_sent);
            sends.push((piece, Some(reply)));
        }
        if s.framed_at > 4 * s.chunk {
            s.framed.drain(..s.framed_at);
            s.framed_at = 0;
        }
        let unsent = s.framed.len() - s.framed_at;
        let done = s.read_all && s.archive.is_empty() && unsent < s.chunk;
        if done && unsent > 0 {
            sends.push((s.framed[s.framed_at..].to_vec(), None));
            s.framed_at = s.framed.len();
        }
        let read =
            !done && !s.reading && !s.read_all && unsent + s.archive.len() < s.chunk * s.window;
        let read = read.then(|| {
            s.reading = true;
            (s.key.clone(), s.next_seq)
        });
        let (account, deliver, waiting) = (s.account, s.deliver.clone(), s.in_flight > 0);
        for (piece, reply) in sends {
            self.publish_shown(
                account,
                &deliver,
                reply.as_deref().map(str::as_bytes),
                None,
                &piece,
                None,
            );
        }
        if done {
            return self.snapshot_end(job, None);
        }
        self.arm_transfer(job, waiting);
        if let Some((key, from_seq)) = read {
            let op = self.next_op(Pending::SnapshotRead { job });
            self.storage(StorageOp::ReadBatch {
                id: op,
                stream: key,
                from_seq,
                filters: Vec::new(),
                max_msgs: READ_MSGS,
                max_bytes: READ_BYTES,
            });
        }
    }

    /// A store read of a snapshot completed.
    pub(super) fn snapshot_read(&mut self, job: u32, c: &Completion) {
        let Some(s) = self.jetstream.transfers.snapshots.get_mut(&job) else {
            return;
        };
        s.reading = false;
        let msgs = match &c.result {
            Ok(Done::Batch { msgs, .. }) => msgs,
            Ok(other) => unreachable!("a batch read completes with messages, not {other:?}"),
            Err(e) => {
                let status = format!("500 {e}");
                return self.snapshot_end(job, Some(&status));
            }
        };
        // Planted bug (mutation suite only): some messages are left out.
        let skips = self.planted(crate::config::PlantedBug::SnapshotSkips);
        let s = self
            .jetstream
            .transfers
            .snapshots
            .get_mut(&job)
            .expect("looked up above");
        for m in msgs
            .iter()
            .filter(|m| m.seq <= s.last_seq && !(skips && m.seq % 5 == 2))
        {
            archive::put_entry(
                &mut s.archive,
                &m.subject,
                m.ts_unix_nanos as i64,
                m.seq,
                &m.headers,
                &m.payload,
            );
        }
        match msgs.last() {
            Some(m) if m.seq < s.last_seq => s.next_seq = m.seq + 1,
            _ => {
                s.read_all = true;
                archive::put_end(&mut s.archive);
            }
        }
        self.snapshot_step(job);
    }

    /// A piece of a snapshot was acknowledged.
    pub(crate) fn snapshot_ack(&mut self, job: u32) {
        if let Some(s) = self.jetstream.transfers.snapshots.get_mut(&job) {
            s.in_flight = s.in_flight.saturating_sub(1);
            self.snapshot_step(job);
        }
    }

    /// Ends a snapshot: the empty message (with `status` if it failed).
    fn snapshot_end(&mut self, job: u32, status: Option<&str>) {
        let Some(s) = self.jetstream.transfers.snapshots.remove(&job) else {
            return;
        };
        self.internal_unsubscribe(s.sub);
        self.arm_transfer(job, false);
        let headers = match status {
            Some(status) => Some(format!("NATS/1.0 {status}\r\n\r\n")),
            None if s.full_sent > 0 => Some("NATS/1.0 204\r\n\r\n".to_string()),
            None => None,
        };
        self.publish_as_server(
            s.account,
            &s.deliver,
            headers.as_deref().map(str::as_bytes),
            b"",
        );
        let error = status.map(|s| match s {
            "408 No Flow Response" => "no flow response".to_string(),
            other => other.trim_start_matches("500 ").to_string(),
        });
        self.transfer_completed(
            s.account,
            "SNAPSHOT_COMPLETE",
            &s.asker,
            None,
            error.as_deref(),
        );
    }

    /// A snapshot or restore heard nothing for too long.
    pub(crate) fn transfer_timer(&mut self, job: u32) {
        if self.jetstream.transfers.snapshots.contains_key(&job) {
            self.snapshot_end(job, Some("408 No Flow Response"));
        } else if self.jetstream.transfers.restores.contains_key(&job) {
            // A stalled restore ends without an advisory, as nats-server's.
            if let Some(r) = self.restore_close(job) {
                self.remove_restored(&r.key);
            }
        }
    }

    /// Who asked for a transfer of `stream`: the advisories' fields.
    fn asker(&self, stream: &str, from: Option<crate::server::ConnId>) -> advisory::Asker {
        advisory::Asker {
            stream: stream.to_string(),
            client: from.and_then(|c| self.client_info_json(c)),
            start_unix_nanos: self.now.unix_nanos,
        }
    }

    /// `$JS.API.STREAM.RESTORE.<name>`.
    pub(super) fn stream_restore(
        &mut self,
        account: AccountId,
        reply: &[u8],
        name: &str,
        body: &[u8],
        from: Option<crate::server::ConnId>,
    ) {
        let fail = |server: &mut Self, e: &ApiError| {
            server.api_respond(
                account,
                reply,
                "stream_restore",
                Some(e),
                RestoreResponse {
                    deliver_subject: "",
                },
            );
        };
        let trimmed = body.trim_ascii();
        if trimmed.is_empty() || trimmed == b"{}" {
            return fail(self, &ApiError::new(400, 10003, "bad request".into()));
        }
        let req: RestoreRequest = match go_json_fields(body, self.api_fields()) {
            Ok(r) => r,
            Err(e) => return fail(self, &e),
        };
        let mut config = req.config.unwrap_or_else(|| serde_json::json!({}));
        if let Some(object) = config.as_object_mut() {
            let unnamed = object
                .get("name")
                .and_then(|n| n.as_str())
                .is_none_or(str::is_empty);
            if unnamed {
                object.insert("name".into(), name.into());
            }
        }
        let config: StreamConfig =
            match go_json_fields(config.to_string().as_bytes(), self.api_fields()) {
                Ok(c) => c,
                Err(e) => return fail(self, &e),
            };
        if config.name != name {
            return fail(self, &ApiError::name_mismatch());
        }
        let mut config = match config.checked_as(false) {
            Ok(c) => c,
            Err(e) => return fail(self, &e),
        };
        if config.num_replicas > 1 {
            return fail(self, &ApiError::replicas_not_supported());
        }
        if self.stream_id(account, name).is_some() || self.restoring(account, name) {
            return fail(self, &name_taken());
        }
        let level = config.required_api_level();
        super::level::stamps::require(&mut config.metadata, level);
        if let Err(e) = self.check_sourcing(account, None, &mut config) {
            return fail(self, &e);
        }
        if let Some(e) = self.restore_conflict(account, &config) {
            return fail(self, &e);
        }
        if let Some(e) = self.account_limits_refuse(account, &config) {
            return fail(self, &e);
        }
        let asker = self.asker(name, from);
        let job = self.next_transfer();
        let deliver = format!("$JS.SNAPSHOT.RESTORE.{name}.{}", self.transfer_token());
        let client = self
            .system
            .client
            .expect("JetStream runs with the internal client");
        let sub = self.internal_subscribe_next(client, account, &deliver, Service::JsRestore(job));
        let key = storage_key(&self.accounts[account.0 as usize].name, name);
        // Whatever an abandoned restore left under this key goes first.
        let prepared = || Pending::Restore {
            job,
            step: RestoreStep::Prepared,
        };
        let (remove, open) = (self.next_op(prepared()), self.next_op(prepared()));
        self.storage(StorageOp::Remove {
            id: remove,
            stream: key.clone(),
        });
        self.storage(StorageOp::Open {
            id: open,
            stream: key.clone(),
            config: config.store_config(),
        });
        self.jetstream.transfers.restores.insert(
            job,
            Restore {
                account,
                asker: asker.clone(),
                bytes: 0,
                key,
                config,
                sub: Some(sub),
                reply: None,
                frames: s2::FrameDecoder::new(),
                archive: archive::Reader::default(),
                seqs: None,
                consumers: Vec::new(),
                last_seq: 0,
                ending: false,
            },
        );
        self.arm_transfer(job, true);
        self.transfer_created::<()>(account, "RESTORE_CREATE", &asker, None);
        self.api_respond(
            account,
            reply,
            "stream_restore",
            None,
            RestoreResponse {
                deliver_subject: &deliver,
            },
        );
    }

    /// Whether a restore of this stream is in progress.
    pub(super) fn restoring(&self, account: AccountId, name: &str) -> bool {
        self.jetstream
            .transfers
            .restores
            .values()
            .any(|r| r.account == account && r.config.name == name)
    }

    /// Why a restored stream could not join the account now, if it
    /// could not.
    fn restore_conflict(&self, account: AccountId, config: &StreamConfig) -> Option<ApiError> {
        let overlap = self.jetstream.streams.iter().any(|(_, s)| {
            s.account == account
                && s.config
                    .subjects
                    .iter()
                    .any(|a| config.subjects.iter().any(|b| subjects_collide(a, b)))
        });
        overlap.then(ApiError::subjects_overlap)
    }

    /// A piece of a restore arrived.
    pub(crate) fn restore_chunk(&mut self, job: u32, m: &InternalMsg) {
        let Some(r) = self.jetstream.transfers.restores.get_mut(&job) else {
            return;
        };
        if r.ending {
            if let Some(reply) = &m.reply {
                let account = r.account;
                self.publish_as_server(account, reply, None, b"");
            }
            return;
        }
        let Some(reply) = m.reply.clone() else {
            // Every piece must be a request: the restore is dropped.
            return self.restore_abandon(job);
        };
        self.arm_transfer(job, true);
        if let Some(r) = self.jetstream.transfers.restores.get_mut(&job) {
            r.bytes += m.body().len() as u64;
        }
        if m.body().is_empty() {
            return self.restore_finish(job, reply);
        }
        match self.restore_take(job, m.body()) {
            Ok(msgs) if msgs.is_empty() => {
                let account = self.jetstream.transfers.restores[&job].account;
                self.publish_as_server(account, &reply, None, b"");
            }
            Ok(msgs) => {
                let key = self.jetstream.transfers.restores[&job].key.clone();
                let op = self.next_op(Pending::Restore {
                    job,
                    step: RestoreStep::Appended { reply },
                });
                self.storage(StorageOp::Append {
                    id: op,
                    stream: key,
                    msgs,
                });
            }
            Err(e) => self.restore_fail(job, &reply, &e),
        }
    }

    /// Decodes a piece: the messages it completes.
    fn restore_take(&mut self, job: u32, bytes: &[u8]) -> Result<Vec<Msg>, ApiError> {
        let r = self
            .jetstream
            .transfers
            .restores
            .get_mut(&job)
            .expect("a restore in progress");
        // Fed in small slices, so that what one slice decompresses to (at
        // most one S2 block, 4 MiB) is bounded, and a piece's total too.
        let (mut plain, mut total) = (Vec::new(), 0usize);
        let mut msgs = Vec::new();
        for slice in bytes.chunks(4096) {
            plain.clear();
            r.frames
                .push(slice, &mut plain)
                .map_err(|e| restore_failed(e.0))?;
            total += plain.len();
            if total > PIECE_PLAIN_MAX {
                return Err(restore_failed("a piece decompresses to more than 256 MiB"));
            }
            r.archive.push(&plain);
            while let Some(entry) = r.archive.next().map_err(|e| restore_failed(&e.0))? {
                if entry.is_end() {
                    break;
                }
                let Some((first_seq, last_seq)) = r.seqs else {
                    if entry.name != "state.json" {
                        return Err(restore_failed("expected state.json first"));
                    }
                    let state: ArchivedStreamState = serde_json::from_slice(&entry.payload)
                        .map_err(|e| restore_failed(&format!("error in state.json: {e}")))?;
                    r.seqs = Some((state.first_seq, state.last_seq));
                    let _ = state.consumer_count;
                    continue;
                };
                // Consumers come before any message, at sequence 0, with a
                // name a consumer may have; a message on `consumers/x` is a
                // message.
                if let Some(name) = entry.name.strip_prefix("consumers/")
                    && entry.seq == 0
                    && r.last_seq == 0
                    && msgs.is_empty()
                {
                    if !super::config::is_valid_name(name) {
                        return Err(restore_failed(&format!("invalid consumer name {name:?}")));
                    }
                    let saved = restored_consumer(&entry.payload, self.now.unix_nanos)
                        .map_err(|e| restore_failed(&format!("consumer {name}: {e}")))?;
                    r.consumers.push((name.to_string(), saved));
                    continue;
                }
                if entry.seq <= r.last_seq || entry.seq < first_seq {
                    let why = format!("message sequence {} out of order", entry.seq);
                    return Err(restore_failed(&why));
                }
                if entry.seq > last_seq {
                    continue;
                }
                r.last_seq = entry.seq;
                msgs.push(Msg {
                    seq: entry.seq,
                    ts_unix_nanos: u64::try_from(entry.ts).unwrap_or(0),
                    subject: entry.name,
                    headers: entry.header,
                    payload: entry.payload,
                });
            }
        }
        Ok(msgs)
    }

    /// The empty piece: every message is in; save the rest, sync, load.
    fn restore_finish(&mut self, job: u32, reply: Box<[u8]>) {
        let r = self
            .jetstream
            .transfers
            .restores
            .get_mut(&job)
            .expect("a restore in progress");
        let complete = r.archive.ended() && r.frames.at_boundary();
        let Some((_, last_seq)) = r.seqs.filter(|_| complete) else {
            let why = if r.frames.at_boundary() {
                "EOF"
            } else {
                "unexpected EOF"
            };
            return self.restore_fail(job, &reply, &restore_failed(why));
        };
        r.ending = true;
        let (key, appended) = (r.key.clone(), r.last_seq);
        let consumers = r.consumers.clone();
        let meta = serde_json::to_vec(&StreamMeta {
            account: self.accounts[r.account.0 as usize].name.clone(),
            created_unix_nanos: self.now.unix_nanos,
            config: r.config.clone(),
        })
        .expect("meta is JSON");
        let saved = |server: &mut Self| {
            server.next_op(Pending::Restore {
                job,
                step: RestoreStep::Saved,
            })
        };
        if appended == 0 && last_seq > 0 {
            // No message: the stream starts after the snapshot's last.
            let id = saved(self);
            let purge = Purge {
                below_seq: Some(last_seq + 1),
                ..Purge::default()
            };
            self.storage(StorageOp::Purge {
                id,
                stream: key.clone(),
                purge,
            });
        } else if appended < last_seq {
            // Sequences deleted at the end still count: a message put at
            // the last one and deleted again leaves the store there.
            let id = saved(self);
            let subject = "_natrix.restore.end".to_string();
            let msgs = vec![Msg {
                seq: last_seq,
                ts_unix_nanos: 0,
                subject,
                headers: Vec::new(),
                payload: Vec::new(),
            }];
            self.storage(StorageOp::Append {
                id,
                stream: key.clone(),
                msgs,
            });
            let id = saved(self);
            self.storage(StorageOp::Delete {
                id,
                stream: key.clone(),
                seq: last_seq,
            });
        }
        for (consumer, state) in consumers {
            let id = saved(self);
            self.storage(StorageOp::SaveConsumer {
                id,
                stream: key.clone(),
                consumer,
                state,
            });
        }
        let id = saved(self);
        self.storage(StorageOp::SaveMeta {
            id,
            stream: key.clone(),
            meta: meta.clone(),
        });
        let id = self.next_op(Pending::Restore {
            job,
            step: RestoreStep::Synced { reply, meta },
        });
        self.storage(StorageOp::Sync { id, stream: key });
    }

    /// A storage step of a restore completed.
    pub(super) fn restore_step(&mut self, job: u32, step: RestoreStep, c: &Completion) {
        let Some(r) = self.jetstream.transfers.restores.get(&job) else {
            return;
        };
        let account = r.account;
        if let (Err(e), false) = (&c.result, matches!(step, RestoreStep::Prepared)) {
            let why = e.to_string();
            return match step {
                RestoreStep::Appended { reply } | RestoreStep::Synced { reply, .. } => {
                    self.restore_fail(job, &reply, &restore_failed(&why))
                }
                _ => self.restore_drop(job, &why),
            };
        }
        match step {
            RestoreStep::Prepared | RestoreStep::Saved => {}
            RestoreStep::Appended { reply } => self.publish_as_server(account, &reply, None, b""),
            RestoreStep::Synced { reply, meta } => self.restore_load(job, reply, &meta),
        }
    }

    /// Everything is on disk: the stream joins the account, as start-up
    /// loads one, unless its name or subjects were taken meanwhile.
    fn restore_load(&mut self, job: u32, reply: Box<[u8]>, meta: &[u8]) {
        let Some(r) = self.jetstream.transfers.restores.get(&job) else {
            return;
        };
        let refused = if self.stream_id(r.account, &r.config.name).is_some() {
            Some(name_taken())
        } else {
            self.restore_conflict(r.account, &r.config).map(|e| {
                restore_failed(&format!(
                    "error adding stream: {} ({})",
                    e.description, e.err_code
                ))
            })
        };
        if let Some(e) = refused {
            return self.restore_fail(job, &reply, &e);
        }
        let Some(mut r) = self.restore_close(job) else {
            return;
        };
        let consumers = std::mem::take(&mut r.consumers)
            .into_iter()
            .map(|(name, state)| natrix_storage::meta::StoredConsumer {
                name,
                state: Ok(state),
            })
            .collect();
        match self.recover_stream(&r.key, Some(meta), consumers) {
            Some(id) => {
                r.reply = Some(reply);
                self.jetstream.transfers.loading.insert(id, r);
            }
            None => {
                self.remove_restored(&r.key);
                let e = restore_failed("did not create a stream");
                self.api_respond(r.account, &reply, "stream_create", Some(&e), EmptyBody {});
            }
        }
    }

    /// A restored stream was loaded (`ok`) or could not be.
    pub(super) fn restore_loaded(&mut self, id: StreamId, ok: bool) {
        let Some(r) = self.jetstream.transfers.loading.remove(&id) else {
            return;
        };
        let reply = r.reply.expect("a loading restore waits with its reply");
        if ok {
            self.stream_advisory(r.account, &r.config.name, "create");
            // A restored mirror or sourcing stream reads its origins from
            // where its messages say it stopped, as after a restart.
            if r.config.mirror.is_some() || !r.config.sources.is_empty() {
                self.start_sourcing(id);
            }
        }
        self.transfer_completed(r.account, "RESTORE_COMPLETE", &r.asker, Some(r.bytes), None);
        if ok {
            let json = self.created_json(id);
            self.publish_as_server(r.account, &reply, None, &json);
        } else {
            let e = restore_failed("did not create a stream");
            self.api_respond(r.account, &reply, "stream_create", Some(&e), EmptyBody {});
        }
    }

    /// Ends a restore job: no more pieces, no timer.
    fn restore_close(&mut self, job: u32) -> Option<Restore> {
        let mut r = self.jetstream.transfers.restores.remove(&job)?;
        if let Some(sub) = r.sub.take() {
            self.internal_unsubscribe(sub);
        }
        self.arm_transfer(job, false);
        Some(r)
    }

    /// A restore failed: `reply` hears why, and nothing of it stays.
    fn restore_fail(&mut self, job: u32, reply: &[u8], e: &ApiError) {
        let Some(r) = self.restore_close(job) else {
            return;
        };
        self.remove_restored(&r.key);
        self.transfer_completed(r.account, "RESTORE_COMPLETE", &r.asker, Some(r.bytes), None);
        self.api_respond(r.account, reply, "stream_create", Some(e), EmptyBody {});
    }

    /// A restore's store failed where no request waits: dropped, logged.
    fn restore_drop(&mut self, job: u32, why: &str) {
        let key = self
            .jetstream
            .transfers
            .restores
            .get(&job)
            .map(|r| r.key.clone());
        let line = format!(
            "JetStream restore into {} failed: {why}",
            key.unwrap_or_default()
        );
        self.log(crate::server::LogLevel::Warn, line);
        self.restore_abandon(job);
    }

    /// A restore broke the protocol or its store failed: dropped without
    /// an answer.
    fn restore_abandon(&mut self, job: u32) {
        if let Some(r) = self.restore_close(job) {
            self.remove_restored(&r.key);
            self.transfer_completed(r.account, "RESTORE_COMPLETE", &r.asker, Some(r.bytes), None);
        }
    }

    fn remove_restored(&mut self, key: &str) {
        let id = self.next_op(Pending::Quiet);
        self.storage(StorageOp::Remove {
            id,
            stream: key.to_string(),
        });
    }
}

#[derive(Serialize)]
struct EmptyBody {}

fn name_taken() -> ApiError {
    ApiError::new(
        400,
        10130,
        "stream name already in use, cannot restore".into(),
    )
}

/// A snapshot's consumer entry as natrix saves a consumer.
fn restored_consumer(json: &[u8], now_unix_nanos: u64) -> Result<Vec<u8>, serde_json::Error> {
    let a: ArchivedConsumer = serde_json::from_slice(json)?;
    let pending = a
        .state
        .pending
        .iter()
        .map(|(&seq, p)| {
            let again = a.state.redelivered.get(&seq).copied().unwrap_or(0);
            let o = Outstanding {
                consumer_seq: p.sequence,
                deliveries: again + 1,
                delivered_unix_nanos: u64::try_from(p.ts).unwrap_or(0),
            };
            (seq, o)
        })
        .collect();
    serde_json::to_vec(&SavedConsumer {
        created_unix_nanos: now_unix_nanos,
        config: a.config,
        delivered: a.state.delivered,
        ack_floor: a.state.ack_floor,
        pending,
        last_active_unix_nanos: 0,
    })
}
