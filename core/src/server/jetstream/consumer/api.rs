//! The consumer requests of the `$JS.API`: CREATE (every subject form),
//! INFO, NAMES, LIST, DELETE, PAUSE and MSG.NEXT, answered as nats-server
//! answers them.

use natrix_storage::ops::{Completion, Done, StorageOp};
use serde::{Deserialize, Serialize};

use super::super::api::{from_go_json, go_json_fields, go_time};
use super::super::error::ApiError;
use super::super::{Pending, StreamId};
use super::config::{ConsumerConfig, DeliverPolicy, INACTIVE_DEFAULT_NS};
use super::{ConsumerId, PullRequest};
use crate::server::{AccountId, Server};

const NAMES_LIMIT: usize = 1024;
const LIST_LIMIT: usize = 256;
/// Longest consumer name.
const NAME_MAX: usize = 255;

#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateRequest {
    stream_name: String,
    config: Option<ConsumerConfig>,
    action: String,
    /// nats-server's "refuse what would be adjusted": known, so that
    /// strict parsing takes it; natrix's consumer checks adjust nothing
    /// it would refuse, so it changes no answer.
    #[allow(dead_code)]
    pedantic: bool,
}

#[derive(Serialize)]
struct SeqInfo {
    consumer_seq: u64,
    stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_active: Option<String>,
}

/// `ConsumerInfo` in nats-server's field order.
#[derive(Serialize)]
pub(crate) struct ConsumerInfo {
    stream_name: String,
    name: String,
    created: String,
    config: ConsumerConfig,
    delivered: SeqInfo,
    ack_floor: SeqInfo,
    num_ack_pending: usize,
    num_redelivered: usize,
    num_waiting: usize,
    num_pending: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    push_bound: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    paused: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pause_remaining: u64,
    ts: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    priority_groups: Vec<GroupState>,
}

/// A priority group's state in consumer info (the first group only, as
/// nats-server shows it).
#[derive(Serialize)]
struct GroupState {
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pinned_client_id: String,
    pinned_ts: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextRequest {
    batch: i64,
    expires: i64,
    no_wait: bool,
    max_bytes: i64,
    idle_heartbeat: i64,
    /// Present on every JSON request, as nats-server reads them.
    #[serde(flatten)]
    group: Option<super::PullGroup>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListRequest {
    offset: usize,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PauseRequest {
    pause_until: Option<String>,
}

/// What a pending-count chain does when it is done.
#[derive(Debug)]
pub(crate) enum AfterCount {
    /// Answer a create (saving the consumer first when it persists).
    Created { reply: Box<[u8]> },
    /// Answer a reset (to this stream sequence).
    Reset { reply: Box<[u8]>, seq: u64 },
    /// Answer an info request.
    Info { reply: Box<[u8]> },
}

impl Server {
    /// `CONSUMER.*` requests; `tokens` follow `$JS.API.`.
    pub(crate) fn consumer_request(
        &mut self,
        account: AccountId,
        reply: &[u8],
        tokens: &[&str],
        body: &[u8],
        from: Option<crate::server::ConnId>,
    ) -> bool {
        match tokens {
            ["CONSUMER", "CREATE", stream] => {
                self.consumer_create(account, reply, stream, None, None, body)
            }
            ["CONSUMER", "CREATE", stream, name] => {
                self.consumer_create(account, reply, stream, Some(name), None, body)
            }
            ["CONSUMER", "CREATE", stream, name, filter @ ..] => {
                let filter = filter.join(".");
                self.consumer_create(account, reply, stream, Some(name), Some(filter), body)
            }
            ["CONSUMER", "DURABLE", "CREATE", stream, name] => {
                self.consumer_durable_create(account, reply, stream, name, body)
            }
            ["CONSUMER", "INFO", stream, name] => self.consumer_info(account, reply, stream, name),
            ["CONSUMER", "NAMES", stream] => {
                self.consumer_names(account, reply, stream, body, false)
            }
            ["CONSUMER", "LIST", stream] => self.consumer_names(account, reply, stream, body, true),
            ["CONSUMER", "DELETE", stream, name] => {
                self.consumer_delete(account, reply, stream, name)
            }
            ["CONSUMER", "PAUSE", stream, name] => {
                self.consumer_pause(account, reply, stream, name, body)
            }
            ["CONSUMER", "UNPIN", stream, name] => {
                self.consumer_unpin(account, reply, stream, name, body)
            }
            ["CONSUMER", "RESET", stream, name] => {
                self.consumer_reset(account, reply, stream, name, body)
            }
            ["CONSUMER", "MSG", "NEXT", stream, name] => {
                match self.consumer_id(account, stream, name) {
                    Some(id) => self.pull_request(id, reply, body, from),
                    None => {
                        // The consumer's own subscription answers pulls:
                        // without it, the requester hears nobody.
                        let subject = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}");
                        self.no_responders_to(from, reply, &subject);
                    }
                }
                return false; // pulls are not counted as API calls
            }
            _ => return false,
        }
        true
    }

    pub(crate) fn consumer_id(
        &self,
        account: AccountId,
        stream: &str,
        name: &str,
    ) -> Option<ConsumerId> {
        let s = self.stream_id(account, stream)?;
        self.jetstream.streams[s as usize]
            .consumers
            .get(name)
            .copied()
    }

    fn consumer_durable_create(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        name: &str,
        body: &[u8],
    ) {
        const KIND: &str = "consumer_create";
        let req: CreateRequest = match go_json_fields(body, self.api_fields()) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, KIND, &e),
        };
        if req.stream_name != stream {
            return self.fail(account, reply, KIND, &ApiError::name_mismatch());
        }
        let durable = req.config.as_ref().map_or("", |c| c.durable_name.as_str());
        if durable.is_empty() {
            let e = ApiError::new(
                400,
                10018,
                "consumer expected to be durable but a durable name was not set".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        if durable != name {
            let e = ApiError::new(
                400,
                10017,
                "consumer name in subject does not match durable name in request".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        let mut req = req;
        if let Some(c) = req.config.as_mut() {
            c.name = name.to_string();
        }
        self.create_checked(account, reply, req);
    }

    fn consumer_create(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        name: Option<&str>,
        filter: Option<String>,
        body: &[u8],
    ) {
        const KIND: &str = "consumer_create";
        let mut req: CreateRequest = match go_json_fields(body, self.api_fields()) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, KIND, &e),
        };
        if req.stream_name != stream {
            return self.fail(account, reply, KIND, &ApiError::name_mismatch());
        }
        let legacy_ephemeral = name.is_none();
        let config = req.config.get_or_insert_with(ConsumerConfig::default);
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| config.name.clone());
        if name.contains(['\\', '/']) {
            let e = ApiError::new(
                400,
                10127,
                "Consumer name can not contain path separators".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        if let Some(filter) = &filter {
            if !config.filter_subjects.is_empty() {
                let e = ApiError::new(
                    400,
                    10137,
                    "consumer with multiple subject filters cannot use subject based API".into(),
                );
                return self.fail(account, reply, KIND, &e);
            }
            if &config.filter_subject != filter {
                let e = ApiError::new(
                    400,
                    10131,
                    "Consumer create request did not match filtered subject from create subject"
                        .into(),
                );
                return self.fail(account, reply, KIND, &e);
            }
        }
        if !config.durable_name.is_empty() && config.durable_name != name && !legacy_ephemeral {
            let e = ApiError::new(
                400,
                10017,
                "consumer name in subject does not match durable name in request".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        if legacy_ephemeral && !config.durable_name.is_empty() {
            let e = ApiError::new(
                400,
                10020,
                "consumer expected to be ephemeral but a durable name was set in request".into(),
            );
            return self.fail(account, reply, KIND, &e);
        }
        config.name = name;
        self.create_checked(account, reply, req);
    }

    /// A create request whose subject and body agree.
    fn create_checked(&mut self, account: AccountId, reply: &[u8], req: CreateRequest) {
        const KIND: &str = "consumer_create";
        let Some(config) = req.config else {
            let e = ApiError::new(400, 10078, "consumer config required".into());
            return self.fail(account, reply, KIND, &e);
        };
        if config.num_replicas > 1 {
            return self.fail(account, reply, KIND, &ApiError::replicas_not_supported());
        }
        let Some(stream) = self.stream_id(account, &req.stream_name) else {
            return self.fail(account, reply, KIND, &ApiError::stream_not_found());
        };
        let s = &self.jetstream.streams[stream as usize];
        let mut config = match config.checked(&s.config) {
            Ok(c) => c,
            Err(e) => return self.fail(account, reply, KIND, &e),
        };
        let level = config.required_api_level();
        super::super::level::stamps::require(&mut config.metadata, level);
        if config.name.len() > NAME_MAX {
            let e = ApiError::new(
                400,
                10102,
                format!("consumer name is too long, maximum allowed is {NAME_MAX}"),
            );
            return self.fail(account, reply, KIND, &e);
        }
        let action = req.action.as_str();
        if let Some(e) = self.work_queue_refuses(stream, &config) {
            return self.fail(account, reply, KIND, &e);
        }
        if !config.name.is_empty()
            && let Some(&existing) = s.consumers.get(&config.name)
        {
            let c = &self.jetstream.consumers[existing as usize];
            if c.config.same_apart_from_stamps(&config) {
                return self.respond_consumer(existing, reply, "consumer_create");
            }
            if action == "create" {
                let e = ApiError::new(400, 10148, "consumer already exists".into());
                return self.fail(account, reply, KIND, &e);
            }
            if let Some(why) = c.config.update_refused(&config) {
                return self.fail(account, reply, KIND, &ApiError::new(500, 10012, why));
            }
            let c = &mut self.jetstream.consumers[existing as usize];
            c.config = config;
            self.consumer_changed(existing);
            self.save_consumers();
            return self.respond_consumer(existing, reply, "consumer_create");
        }
        if action == "update" {
            let e = ApiError::new(400, 10149, "consumer does not exist".into());
            return self.fail(account, reply, KIND, &e);
        }
        // An ephemeral goes after 5 s without interest unless told
        // otherwise. Set after the comparison above, as nats-server does:
        // an identical create of a named ephemeral is "already exists".
        if config.durable_name.is_empty() && config.inactive_threshold == 0 {
            config.inactive_threshold = INACTIVE_DEFAULT_NS;
        }
        let s = &self.jetstream.streams[stream as usize];
        if s.config.max_consumers > 0 && s.consumers.len() as i64 >= s.config.max_consumers {
            let e = ApiError::new(400, 10026, "maximum consumers limit reached".into());
            return self.fail(account, reply, KIND, &e);
        }
        let name = if config.name.is_empty() {
            let mut n = self.event_id();
            n.truncate(8);
            n
        } else {
            config.name.clone()
        };
        let id = self.add_consumer(stream, config, name, self.now.unix_nanos);
        self.position_consumer(id, reply.into());
    }

    /// Why a work-queue stream refuses this consumer, if it does: acks must
    /// be explicit, delivery must start at the beginning, and no two
    /// consumers may want the same message.
    fn work_queue_refuses(&self, stream: StreamId, config: &ConsumerConfig) -> Option<ApiError> {
        let s = &self.jetstream.streams[stream as usize];
        if s.config.retention != super::super::config::Retention::WorkQueue {
            return None;
        }
        if config.ack_policy != super::config::AckPolicy::Explicit {
            return Some(ApiError::new(
                400,
                10098,
                "workqueue stream requires explicit ack".into(),
            ));
        }
        let others: Vec<&ConsumerConfig> = s
            .consumers
            .iter()
            .filter(|(name, _)| **name != config.name)
            .map(|(_, &id)| &self.jetstream.consumers[id as usize].config)
            .collect();
        if !others.is_empty() {
            let mine = config.filters();
            if mine.is_empty() {
                return Some(ApiError::new(
                    400,
                    10099,
                    "multiple non-filtered consumers not allowed on workqueue stream".into(),
                ));
            }
            let overlaps = others.iter().any(|o| {
                let theirs = o.filters();
                theirs.is_empty()
                    || theirs.iter().any(|t| {
                        mine.iter()
                            .any(|m| super::super::config::subjects_collide(m, t))
                    })
            });
            if overlaps {
                return Some(ApiError::new(
                    400,
                    10100,
                    "filtered consumer not unique on workqueue stream".into(),
                ));
            }
        }
        if config.deliver_policy != DeliverPolicy::All {
            return Some(ApiError::new(
                400,
                10101,
                "consumer must be deliver all on workqueue stream".into(),
            ));
        }
        None
    }

    /// Places a new consumer's cursor by its deliver policy, then counts
    /// what is pending and answers the create.
    fn position_consumer(&mut self, id: ConsumerId, reply: Box<[u8]>) {
        let c = &self.jetstream.consumers[id as usize];
        let s = &self.jetstream.streams[c.stream as usize];
        let (first, last, durable) = (s.state.first_seq, s.last_seq, s.durable_seq);
        let key = c.key.clone();
        match c.config.deliver_policy {
            DeliverPolicy::Last | DeliverPolicy::LastPerSubject => {
                let mut filters = c.config.filters();
                if filters.is_empty() {
                    filters.push(">".into());
                }
                let op = self.next_op(Pending::ConsumerPositioned {
                    consumer: id,
                    key: key.clone(),
                    reply,
                    up_to: durable,
                });
                self.storage(StorageOp::LastPerSubject {
                    id: op,
                    stream: key.0,
                    filters,
                    up_to_seq: durable,
                    max_msgs: usize::MAX,
                });
            }
            DeliverPolicy::ByStartTime => {
                let unix_nanos = c.config.start_time().unwrap_or(0);
                let op = self.next_op(Pending::ConsumerAtTime {
                    consumer: id,
                    key: key.clone(),
                    reply,
                    reset: None,
                });
                self.storage(StorageOp::Read {
                    id: op,
                    stream: key.0,
                    read: natrix_storage::ops::Read::AtTime { unix_nanos },
                });
            }
            _ => {
                let c = &mut self.jetstream.consumers[id as usize];
                c.next_seq = c.start_seq(first, last);
                c.delivered.stream_seq = c.next_seq.saturating_sub(1);
                c.ack_floor.stream_seq = c.delivered.stream_seq;
                self.count_pending(id, AfterCount::Created { reply });
            }
        }
    }

    /// The last messages per subject are known: `last` starts at the
    /// newest, `last_per_subject` delivers them all first.
    pub(crate) fn consumer_positioned(
        &mut self,
        id: ConsumerId,
        reply: Box<[u8]>,
        up_to: u64,
        done: &Completion,
    ) {
        let mut msgs = match &done.result {
            Ok(Done::Batch { msgs, .. }) => msgs.clone(),
            _ => Vec::new(),
        };
        msgs.sort_by_key(|m| m.seq);
        let c = &mut self.jetstream.consumers[id as usize];
        if c.config.deliver_policy == DeliverPolicy::Last {
            c.next_seq = msgs.last().map_or(up_to + 1, |m| m.seq);
        } else {
            c.next_seq = up_to + 1;
            c.preloaded = msgs.into();
        }
        c.delivered.stream_seq = c
            .preloaded
            .front()
            .map_or(c.next_seq, |m| m.seq)
            .saturating_sub(1);
        c.ack_floor.stream_seq = c.delivered.stream_seq;
        self.count_pending(id, AfterCount::Created { reply });
    }

    /// A `by_start_time` consumer's first message is found (or none is
    /// that late: it starts after the stream's last).
    pub(crate) fn consumer_at_time(&mut self, id: ConsumerId, reply: Box<[u8]>, done: &Completion) {
        let c = &mut self.jetstream.consumers[id as usize];
        let last = self.jetstream.streams[c.stream as usize].last_seq;
        c.next_seq = match &done.result {
            Ok(Done::Read(Some(m))) => m.seq,
            _ => last + 1,
        };
        c.delivered.stream_seq = c.next_seq.saturating_sub(1);
        c.ack_floor.stream_seq = c.delivered.stream_seq;
        self.count_pending(id, AfterCount::Created { reply });
    }

    /// Counts the messages pending for consumer `id`: those matching its
    /// filters from its cursor on.
    pub(crate) fn count_pending(&mut self, id: ConsumerId, then: AfterCount) {
        let c = &self.jetstream.consumers[id as usize];
        let (key, from_seq, filters) = (c.key.clone(), c.next_seq, c.config.filters());
        let op = self.next_op(Pending::ConsumerCount {
            consumer: id,
            key: key.clone(),
            then,
        });
        self.storage(StorageOp::ReadBatch {
            id: op,
            stream: key.0,
            from_seq,
            filters,
            max_msgs: 0,
            max_bytes: 0,
        });
    }

    /// The count is in: answer what waited for it.
    pub(crate) fn consumer_counted(&mut self, id: ConsumerId, then: AfterCount, done: &Completion) {
        let sum = match &done.result {
            Ok(Done::Batch { pending, .. }) => *pending,
            _ => 0,
        };
        let c = &mut self.jetstream.consumers[id as usize];
        c.num_pending = sum;
        c.counted_to = done.state.last_seq;
        match then {
            AfterCount::Reset { reply, seq } => self.respond_reset(id, &reply, seq),
            AfterCount::Info { reply } => self.respond_consumer(id, &reply, "consumer_info"),
            AfterCount::Created { reply } => {
                let memory = self.jetstream.streams[c.stream as usize].config.storage
                    == super::super::config::Storage::Memory;
                if !c.persisted(memory) {
                    return self.consumer_created(id, &reply);
                }
                let state = serde_json::to_vec(&c.saved()).expect("consumer state is JSON");
                let key = c.key.clone();
                let op = self.next_op(Pending::ConsumerCreated {
                    consumer: id,
                    key: key.clone(),
                    reply,
                });
                self.storage(StorageOp::SaveConsumer {
                    id: op,
                    stream: key.0,
                    consumer: key.1,
                    state,
                });
            }
        }
    }

    /// A new consumer is saved (or needs no saving): answer, announce,
    /// and start delivering.
    pub(crate) fn consumer_created(&mut self, id: ConsumerId, reply: &[u8]) {
        let c = &mut self.jetstream.consumers[id as usize];
        c.ready = true;
        let (account, stream, name) = (c.account, c.stream_name.clone(), c.name.clone());
        self.respond_consumer(id, reply, "consumer_create");
        self.consumer_advisory(account, &stream, &name, "create");
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// A consumer's save at create failed: it is not created.
    pub(crate) fn consumer_create_failed(&mut self, id: ConsumerId, reply: &[u8], e: &str) {
        let account = self.jetstream.consumers[id as usize].account;
        self.forget_consumer(id);
        let e = ApiError::new(
            500,
            10104,
            format!("error creating store for consumer: {e}"),
        );
        self.fail(account, reply, "consumer_create", &e);
    }

    pub(crate) fn consumer_info_json(&self, id: ConsumerId) -> ConsumerInfo {
        let c = &self.jetstream.consumers[id as usize];
        let last = |n: u64| (n > 0).then(|| go_time(n));
        let now = self.now.unix_nanos;
        let paused = c.paused_until_unix_nanos > now;
        ConsumerInfo {
            stream_name: c.stream_name.clone(),
            name: c.name.clone(),
            created: go_time(c.created_unix_nanos),
            config: ConsumerConfig {
                metadata: super::super::level::stamps::shown(&c.config.metadata),
                ..c.config.clone()
            },
            delivered: SeqInfo {
                consumer_seq: c.delivered.consumer_seq,
                stream_seq: c.delivered.stream_seq,
                last_active: last(c.last_active_unix_nanos),
            },
            ack_floor: SeqInfo {
                consumer_seq: c.ack_floor.consumer_seq,
                stream_seq: c.ack_floor.stream_seq,
                last_active: last(c.last_ack_unix_nanos),
            },
            // Messages of a partitioned group waiting for their turn are
            // pending but not delivered.
            num_ack_pending: if c.parts.is_some() {
                c.pending.values().filter(|o| o.deliveries > 0).count()
            } else {
                c.pending.len()
            },
            num_redelivered: c.num_redelivered(),
            num_waiting: c.waiting.len(),
            num_pending: c.num_pending + c.preloaded.len() as u64,
            push_bound: false,
            paused,
            pause_remaining: if paused {
                c.paused_until_unix_nanos - now
            } else {
                0
            },
            ts: go_time(now),
            priority_groups: c
                .config
                .priority_groups
                .first()
                .map(|group| GroupState {
                    group: group.clone(),
                    pinned_client_id: c.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                    pinned_ts: go_time(c.pin.as_ref().map_or(0, |p| p.since_unix_nanos)),
                })
                .into_iter()
                .collect(),
        }
    }

    fn respond_consumer(&mut self, id: ConsumerId, reply: &[u8], kind: &str) {
        let account = self.jetstream.consumers[id as usize].account;
        let mut info = self.consumer_info_json(id);
        let c = &self.jetstream.consumers[id as usize];
        if c.config.is_push() {
            let to = c.config.deliver_subject.clone();
            info.push_bound = self.has_client_interest(account, to.as_bytes());
        }
        self.api_respond(account, reply, kind, None, info);
    }

    fn consumer_info(&mut self, account: AccountId, reply: &[u8], stream: &str, name: &str) {
        if self.stream_id(account, stream).is_none() {
            return self.fail(
                account,
                reply,
                "consumer_info",
                &ApiError::stream_not_found(),
            );
        }
        let Some(id) = self.consumer_id(account, stream, name) else {
            return self.fail(
                account,
                reply,
                "consumer_info",
                &ApiError::consumer_not_found(),
            );
        };
        self.count_pending(
            id,
            AfterCount::Info {
                reply: reply.into(),
            },
        );
    }

    fn consumer_names(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        body: &[u8],
        list: bool,
    ) {
        let kind = if list {
            "consumer_list"
        } else {
            "consumer_names"
        };
        let req: ListRequest = match self.parse(body) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, kind, &e),
        };
        let Some(sid) = self.stream_id(account, stream) else {
            return self.fail(account, reply, kind, &ApiError::stream_not_found());
        };
        let all: Vec<(String, ConsumerId)> = self.jetstream.streams[sid as usize]
            .consumers
            .iter()
            .map(|(n, &id)| (n.clone(), id))
            .collect();
        let total = all.len();
        let limit = if list { LIST_LIMIT } else { NAMES_LIMIT };
        let page = all.iter().skip(req.offset).take(limit);
        if list {
            #[derive(Serialize)]
            struct Body {
                total: usize,
                offset: usize,
                limit: usize,
                consumers: Vec<ConsumerInfo>,
            }
            let consumers = page.map(|&(_, id)| self.consumer_info_json(id)).collect();
            let body = Body {
                total,
                offset: req.offset,
                limit,
                consumers,
            };
            self.api_respond(account, reply, kind, None, body);
        } else {
            #[derive(Serialize)]
            struct Body {
                total: usize,
                offset: usize,
                limit: usize,
                consumers: Vec<String>,
            }
            let consumers = page.map(|(n, _)| n.clone()).collect();
            let body = Body {
                total,
                offset: req.offset,
                limit,
                consumers,
            };
            self.api_respond(account, reply, kind, None, body);
        }
    }

    fn consumer_delete(&mut self, account: AccountId, reply: &[u8], stream: &str, name: &str) {
        const KIND: &str = "consumer_delete";
        if self.stream_id(account, stream).is_none() {
            return self.fail(account, reply, KIND, &ApiError::stream_not_found());
        }
        let Some(id) = self.consumer_id(account, stream, name) else {
            return self.fail(account, reply, KIND, &ApiError::consumer_not_found());
        };
        self.delete_consumer(
            id,
            Pending::ConsumerRemoved {
                account,
                reply: reply.into(),
            },
        );
        self.consumer_advisory(account, stream, name, "delete");
    }

    /// The file of a deleted consumer is gone: `{"success":true}`.
    pub(crate) fn consumer_removed(&mut self, account: AccountId, reply: &[u8], done: &Completion) {
        const KIND: &str = "consumer_delete";
        match &done.result {
            Ok(_) => {
                #[derive(Serialize)]
                struct Body {
                    success: bool,
                }
                self.api_respond(account, reply, KIND, None, Body { success: true });
            }
            Err(e) => {
                let e = ApiError::new(500, 10012, e.to_string());
                self.fail(account, reply, KIND, &e);
            }
        }
    }

    fn consumer_pause(
        &mut self,
        account: AccountId,
        reply: &[u8],
        stream: &str,
        name: &str,
        body: &[u8],
    ) {
        const KIND: &str = "consumer_pause";
        let req: PauseRequest = match self.parse(body) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, KIND, &e),
        };
        if self.stream_id(account, stream).is_none() {
            return self.fail(account, reply, KIND, &ApiError::stream_not_found());
        }
        let Some(id) = self.consumer_id(account, stream, name) else {
            return self.fail(account, reply, KIND, &ApiError::consumer_not_found());
        };
        let until = req
            .pause_until
            .as_deref()
            .and_then(crate::time::parse_rfc3339_nanos)
            .unwrap_or(0);
        let now = self.now.unix_nanos;
        let c = &mut self.jetstream.consumers[id as usize];
        c.paused_until_unix_nanos = until;
        c.config.pause_until = (until > now).then(|| go_time(until));
        self.consumer_changed(id);
        #[derive(Serialize)]
        struct Body {
            paused: bool,
            pause_until: String,
            #[serde(skip_serializing_if = "is_zero")]
            pause_remaining: u64,
        }
        let paused = until > now;
        let body = Body {
            paused,
            pause_until: go_time(until),
            pause_remaining: if paused { until - now } else { 0 },
        };
        self.api_respond(account, reply, KIND, None, body);
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// `CONSUMER.MSG.NEXT` (or `+NXT`): a pull request for consumer `id`.
    pub(crate) fn pull_request(
        &mut self,
        id: ConsumerId,
        reply: &[u8],
        body: &[u8],
        from: Option<crate::server::ConnId>,
    ) {
        let c = &self.jetstream.consumers[id as usize];
        let account = c.account;
        if c.config.is_push() {
            return self.pull_status(account, reply, "409 Consumer is push based", None);
        }
        let t = body.trim_ascii();
        let req = if t.is_empty() {
            NextRequest {
                batch: 1,
                ..Default::default()
            }
        } else if t.iter().all(u8::is_ascii_digit) {
            let batch = std::str::from_utf8(t)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            NextRequest {
                batch,
                ..Default::default()
            }
        } else {
            match from_go_json::<NextRequest>(t) {
                Ok(r) => r,
                Err(_) => return self.pull_status(account, reply, "400 Bad Request", None),
            }
        };
        let batch = req.batch.max(1) as u64;
        let cfg = &c.config;
        if cfg.max_batch > 0 && batch > cfg.max_batch as u64 {
            let s = format!("409 Exceeded MaxRequestBatch of {}", cfg.max_batch);
            return self.pull_status(account, reply, &s, None);
        }
        if cfg.max_expires > 0 && req.expires > cfg.max_expires {
            let d =
                crate::time::go_duration(std::time::Duration::from_nanos(cfg.max_expires as u64));
            let s = format!("409 Exceeded MaxRequestExpires of {d}");
            return self.pull_status(account, reply, &s, None);
        }
        if cfg.max_bytes > 0 && req.max_bytes > cfg.max_bytes {
            let s = format!("409 Exceeded MaxRequestMaxBytes of {}", cfg.max_bytes);
            return self.pull_status(account, reply, &s, None);
        }
        if req.idle_heartbeat > 0 && (req.expires <= 0 || req.idle_heartbeat > req.expires / 2) {
            return self.pull_status(
                account,
                reply,
                "400 Bad Request - heartbeat value too large",
                None,
            );
        }
        if let Some(g) = &req.group
            && let Some(refusal) = self.group_refusal(id, g)
        {
            return self.pull_status(account, reply, &refusal, None);
        }
        let c = &self.jetstream.consumers[id as usize];
        let cfg = &c.config;
        if cfg.max_waiting > 0 && c.waiting.len() as i64 >= cfg.max_waiting {
            if req.idle_heartbeat > 0 {
                return; // nats-server says nothing to a heartbeating request here
            }
            return self.pull_status(account, reply, "409 Exceeded MaxWaiting", None);
        }
        let now = self.now.instant;
        let heartbeat = (req.idle_heartbeat > 0)
            .then(|| std::time::Duration::from_nanos(req.idle_heartbeat as u64));
        let request = PullRequest {
            reply: reply.into(),
            batch,
            max_bytes: req.max_bytes.max(0) as u64,
            limited_bytes: req.max_bytes > 0,
            expires: (req.expires > 0)
                .then(|| now + std::time::Duration::from_nanos(req.expires as u64)),
            // With an expiry, "no wait" waits like any request.
            no_wait: req.no_wait && req.expires <= 0,
            heartbeat,
            next_heartbeat: heartbeat.map(|h| now + h),
            delivered: 0,
            group: req.group.map(Box::new),
            member: 0,
        };
        let mut request = request;
        if self.jetstream.consumers[id as usize].parts.is_some() {
            request.member = self.partition_member_seen(id, from);
        }
        let c = &mut self.jetstream.consumers[id as usize];
        c.last_activity = now;
        c.queue_request(request);
        self.kick_consumer(id);
        self.arm_consumer(id);
    }

    /// `$JS.EVENT.ADVISORY.CONSUMER.<CREATED|DELETED>.<s>.<c>`.
    pub(crate) fn consumer_advisory(
        &mut self,
        account: AccountId,
        stream: &str,
        consumer: &str,
        action: &str,
    ) {
        let event = if action == "create" {
            "CREATED"
        } else {
            "DELETED"
        };
        let subject = format!("$JS.EVENT.ADVISORY.CONSUMER.{event}.{stream}.{consumer}");
        #[derive(Serialize)]
        struct Action<'a> {
            stream: &'a str,
            consumer: &'a str,
            action: &'a str,
            #[serde(skip_serializing_if = "String::is_empty")]
            domain: String,
        }
        let domain = self.domain();
        let body = Action {
            stream,
            consumer,
            action,
            domain,
        };
        self.advise(account, &subject, "consumer_action", body);
    }
}
