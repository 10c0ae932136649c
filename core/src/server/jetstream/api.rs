//! The `$JS.API` requests natrix serves, answered as nats-server answers
//! them: the response type first, then the error or the result, in Go's
//! field order. A subject no handler serves gets no answer at all, as from
//! nats-server.

use natrix_storage::ops::{Completion, Done, Read, StorageOp};
use natrix_storage::{Purge, StoreError};
use serde::{Deserialize, Serialize};

use super::config::{Storage, StreamConfig, subjects_collide};
use super::error::ApiError;
use super::{Pending, StreamId, go_json};
use crate::server::system::InternalMsg;
use crate::server::{AccountId, Server};
use crate::time::rfc3339_nanos;

/// Stream info lists at most this many subjects per page.
const SUBJECTS_LIMIT: usize = 100_000;

#[derive(Deserialize, Default)]
#[serde(default)]
struct InfoRequest {
    deleted_details: bool,
    subjects_filter: String,
    offset: usize,
}

/// NAMES answers at most this many per page, LIST this many.
const NAMES_LIMIT: usize = 1024;
const LIST_LIMIT: usize = 256;

pub(super) const TYPE_PREFIX: &str = "io.nats.jetstream.api.v1.";

/// Go's zero time, which nats-server prints for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub(crate) fn go_time(unix_nanos: u64) -> String {
    if unix_nanos == 0 {
        ZERO_TIME.to_string()
    } else {
        rfc3339_nanos(unix_nanos)
    }
}

/// A response: its type, an error if any, then the rest.
#[derive(Serialize)]
struct Response<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ApiError>,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
pub(super) struct StateJson {
    messages: u64,
    bytes: u64,
    first_seq: u64,
    first_ts: String,
    last_seq: u64,
    last_ts: String,
    #[serde(skip_serializing_if = "is_zero")]
    num_subjects: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    subjects: Option<std::collections::BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "is_zero")]
    num_deleted: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<Vec<u64>>,
    pub(super) consumer_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct Cluster {
    leader: String,
}

#[derive(Serialize)]
struct StreamInfo<'a> {
    /// As stored, with the response's version and level stamps.
    config: std::borrow::Cow<'a, StreamConfig>,
    created: String,
    state: StateJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<Cluster>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<super::source::SourceInfo>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<super::source::SourceInfo>,
    ts: String,
}

#[derive(Serialize)]
struct Paged<T: Serialize> {
    total: usize,
    offset: usize,
    limit: usize,
    #[serde(flatten)]
    body: T,
}

#[derive(Serialize)]
struct CreateBody<'a> {
    #[serde(flatten)]
    info: StreamInfo<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    did_create: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListRequest {
    offset: usize,
    subject: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PurgeRequest {
    filter: String,
    seq: u64,
    keep: u64,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MsgGetRequest {
    seq: u64,
    last_by_subj: String,
    next_by_subj: String,
    /// The direct get's batch fields, which `MSG.GET` shares with it
    /// and refuses.
    batch: i64,
    max_bytes: i64,
    /// The first message at or after this time (not with a subject yet).
    start_time: Option<String>,
    /// Known, not served: a request with only these is refused as one
    /// without a sequence or subject.
    #[allow(dead_code)]
    multi_last: Vec<String>,
    #[allow(dead_code)]
    up_to_seq: u64,
    #[allow(dead_code)]
    up_to_time: Option<String>,
    no_hdr: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MsgDeleteRequest {
    seq: u64,
    no_erase: bool,
}

#[derive(Serialize)]
struct StoredMsg {
    subject: String,
    seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    hdrs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    time: String,
}

#[derive(Serialize)]
struct AccountLimits {
    max_memory: i64,
    max_storage: i64,
    max_streams: i64,
    max_consumers: i64,
    max_ack_pending: i64,
    memory_max_stream_bytes: i64,
    storage_max_stream_bytes: i64,
    max_bytes_required: bool,
}

#[derive(Serialize)]
struct ApiStats {
    level: i64,
    total: u64,
    errors: u64,
}

#[derive(Serialize)]
struct AccountInfo {
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    streams: usize,
    consumers: usize,
    limits: AccountLimits,
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
    api: ApiStats,
}

/// Whether a request body is empty (nats-server's `isEmptyRequest`: no
/// bytes, `{}`, or `null`).
fn is_empty_request(body: &[u8]) -> bool {
    let t = body.trim_ascii();
    t.is_empty() || t == b"{}" || t == b"null"
}

impl Server {
    /// What unknown fields in a `$JS.API` request body get: refused, as
    /// by nats-server, unless `jetstream { strict: false }`.
    pub(crate) fn api_fields(&self) -> Fields<'static> {
        self.api_fields_except(&[])
    }

    /// `api_fields`, tolerating the top-level fields `except`.
    pub(crate) fn api_fields_except<'a>(&self, except: &'a [&'a str]) -> Fields<'a> {
        match &self.opts.jetstream {
            Some(o) if !o.strict => Fields::Ignore,
            _ => Fields::Refuse { except },
        }
    }

    /// Parses a `$JS.API` request body that may be empty.
    pub(crate) fn parse<T: for<'de> Deserialize<'de> + Default>(
        &self,
        body: &[u8],
    ) -> Result<T, ApiError> {
        if is_empty_request(body) {
            return Ok(T::default());
        }
        go_json_fields(body, self.api_fields())
    }
}

/// Decodes JSON as Go's decoder does for the fields natrix reads: a `null`
/// leaves the field at its zero value (clients send `null` for unset
/// structs and lists), and unknown fields are ignored.
/// 10025 for JSON that does not parse, in Go's words where clients see
/// them most (an empty or truncated body, a body that is not JSON at all).
fn syntax_error(body: &[u8], e: &serde_json::Error) -> ApiError {
    let text = if e.is_eof() {
        "unexpected end of JSON input".to_string()
    } else {
        match body.trim_ascii_start().first() {
            Some(&c) if !b"{[\"-0123456789tfn".contains(&c) => {
                format!(
                    "invalid character {} looking for beginning of value",
                    go_quote(c)
                )
            }
            _ => return ApiError::invalid_json(e),
        }
    };
    ApiError::new(400, 10025, format!("invalid JSON: {text}"))
}

/// A byte as Go's JSON errors quote a character: `'x'`.
fn go_quote(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        c if c.is_ascii_graphic() => format!("'{}'", c as char),
        c => format!("'\\x{c:02x}'"),
    }
}

pub(crate) fn from_go_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    go_json_fields(body, Fields::Ignore)
}

/// What a request body's fields that natrix does not know get.
#[derive(Clone, Copy)]
pub(crate) enum Fields<'a> {
    /// Ignored (pull requests and direct gets, which nats-server reads
    /// leniently; every API request with `jetstream { strict: false }`).
    Ignore,
    /// Refused with 10025, as nats-server refuses them with its default
    /// `strict` JetStream option, except these top-level ones.
    Refuse { except: &'a [&'a str] },
}

/// `from_go_json`, with `fields` deciding what unknown fields get.
pub(crate) fn go_json_fields<T: for<'de> Deserialize<'de>>(
    body: &[u8],
    fields: Fields<'_>,
) -> Result<T, ApiError> {
    fn drop_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(drop_nulls);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
            _ => {}
        }
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| syntax_error(body, &e))?;
    drop_nulls(&mut v);
    let Fields::Refuse { except } = fields else {
        return serde_json::from_value(v).map_err(|e| ApiError::invalid_json(&e));
    };
    let mut unknown: Option<String> = None;
    let parsed = serde_ignored::deserialize(v, |path| {
        let field = match &path {
            serde_ignored::Path::Map { parent, key } => {
                if matches!(parent, serde_ignored::Path::Root) && except.contains(&key.as_str()) {
                    return;
                }
                key.clone()
            }
            other => other.to_string(),
        };
        unknown.get_or_insert(field);
    });
    match (parsed, unknown) {
        // Go's decoder names the field alone, wherever it is nested.
        (_, Some(field)) => Err(ApiError::new(
            400,
            10025,
            format!("invalid JSON: json: unknown field {}", go_string(&field)),
        )),
        (Ok(t), None) => Ok(t),
        (Err(e), None) => Err(ApiError::invalid_json(&e)),
    }
}

/// `s` quoted as Go's `%q` quotes it (for the printable field names
/// JSON keys are; anything else escaped as JSON escapes it).
fn go_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

impl Server {
    /// A request on `$JS.API.>` (or the domain's prefix).
    pub(crate) fn api_request(&mut self, m: &InternalMsg) {
        let Some(reply) = m.reply.clone() else {
            return; // nats-server ignores a request without a reply
        };
        let subject = String::from_utf8_lossy(&m.subject).into_owned();
        let Some(rest) = api_suffix(&subject) else {
            return;
        };
        let tokens: Vec<&str> = rest.split('.').collect();
        let (account, body) = (m.account, m.body());
        if super::level::refused(&m.payload[..m.header_len])
            && self.refuse_request_level(account, &reply, &tokens)
        {
            return;
        }
        if !self.account_has_jetstream(account) {
            if let Some(kind) = response_kind(&tokens) {
                self.jetstream.api_total += 1;
                let e = ApiError::new(503, 10039, "JetStream not enabled for account".into());
                self.fail(account, &reply, kind, &e);
            }
            return;
        }
        match tokens.as_slice() {
            ["INFO"] => self.account_info(account, &reply),
            ["STREAM", "CREATE", name] => self.stream_create(account, &reply, name, body, false),
            ["STREAM", "UPDATE", name] => self.stream_create(account, &reply, name, body, true),
            ["STREAM", "INFO", name] => self.stream_info(account, &reply, name, body),
            ["STREAM", "NAMES"] => self.stream_names(account, &reply, body, false),
            ["STREAM", "LIST"] => self.stream_names(account, &reply, body, true),
            ["STREAM", "DELETE", name] => self.stream_delete(account, &reply, name),
            ["STREAM", "PURGE", name] => self.stream_purge(account, &reply, name, body),
            ["STREAM", "MSG", "GET", name] => self.msg_get(account, &reply, name, body),
            ["STREAM", "MSG", "DELETE", name] => self.msg_delete(account, &reply, name, body),
            ["STREAM", "SNAPSHOT", name] => {
                self.stream_snapshot(account, &reply, name, body, m.from)
            }
            ["STREAM", "RESTORE", name] => self.stream_restore(account, &reply, name, body, m.from),
            ["CONSUMER", ..] => {
                if !self.consumer_request(account, &reply, &tokens, body, m.from) {
                    return;
                }
            }
            ["DIRECT", "GET", name] => self.direct_get(m, &reply, name, None),
            ["DIRECT", "GET", name, rest @ ..] => {
                let last = rest.join(".");
                self.direct_get(m, &reply, name, Some(last));
                return; // direct gets are not API calls in the account's counts
            }
            _ => return,
        }
        if matches!(tokens.as_slice(), ["DIRECT", ..]) {
            return;
        }
        self.jetstream.api_total += 1;
    }

    /// Answers in `account` with `{"type":…, "error"?:…, …body}`.
    pub(crate) fn api_respond<T: Serialize>(
        &mut self,
        account: AccountId,
        reply: &[u8],
        kind: &str,
        error: Option<&ApiError>,
        body: T,
    ) {
        if error.is_some() {
            self.jetstream.api_errors += 1;
        }
        let json = go_json(&Response {
            kind: format!("{TYPE_PREFIX}{kind}_response"),
            error,
            body,
        });
        self.publish_as_server(account, reply, None, &json);
    }

    /// A successful response's bytes.
    pub(super) fn response_json<T: Serialize>(&self, kind: &str, body: T) -> Vec<u8> {
        go_json(&Response {
            kind: format!("{TYPE_PREFIX}{kind}_response"),
            error: None,
            body,
        })
    }

    /// Sends `json` once the stream's disk holds what was just changed
    /// (a delete or a purge is acknowledged only once it is durable too).
    fn answer_after_sync(&mut self, key: &str, account: AccountId, reply: &[u8], json: Vec<u8>) {
        let op = self.next_op(Pending::Respond {
            account,
            reply: reply.into(),
            json,
        });
        self.storage(StorageOp::Sync {
            id: op,
            stream: key.to_string(),
        });
    }

    pub(crate) fn fail(&mut self, account: AccountId, reply: &[u8], kind: &str, e: &ApiError) {
        self.api_respond(account, reply, kind, Some(e), Empty {});
    }

    pub(super) fn stream_id(&self, account: AccountId, name: &str) -> Option<StreamId> {
        self.jetstream
            .by_name
            .get(&(account, name.to_string()))
            .copied()
    }

    fn account_info(&mut self, account: AccountId, reply: &[u8]) {
        let (mut memory, mut storage, mut streams, mut consumers) = (0, 0, 0, 0);
        for (_, s) in self
            .jetstream
            .streams
            .iter()
            .filter(|(_, s)| s.account == account)
        {
            streams += 1;
            consumers += s.consumers.len();
            match s.config.storage {
                Storage::Memory => memory += s.state.bytes,
                Storage::File => storage += s.state.bytes,
            }
        }
        let info = AccountInfo {
            memory,
            storage,
            reserved_memory: 0,
            reserved_storage: 0,
            streams,
            consumers,
            limits: {
                let l = self.js_limits(account);
                AccountLimits {
                    max_memory: l.max_memory,
                    max_storage: l.max_store,
                    max_streams: l.max_streams,
                    max_consumers: l.max_consumers,
                    max_ack_pending: l.max_ack_pending,
                    memory_max_stream_bytes: l.memory_max_stream_bytes,
                    storage_max_stream_bytes: l.store_max_stream_bytes,
                    max_bytes_required: l.max_bytes_required,
                }
            },
            domain: self.domain(),
            api: ApiStats {
                level: super::level::API_LEVEL,
                total: self.jetstream.api_total,
                errors: self.jetstream.api_errors,
            },
        };
        self.api_respond(account, reply, "account_info", None, info);
    }

    /// The account's JetStream limits (unlimited unless configured).
    pub(super) fn js_limits(&self, account: AccountId) -> crate::account::JetStreamLimits {
        self.accounts[account.0 as usize]
            .config
            .as_ref()
            .map(|c| c.jetstream_limits)
            .unwrap_or_default()
    }

    /// Why the account's limits refuse a new stream, if they do: its
    /// count, a required or too large `max_bytes`, or the storage the
    /// account's streams already reserve (nats-server's checks).
    pub(super) fn account_limits_refuse(
        &self,
        account: AccountId,
        config: &StreamConfig,
    ) -> Option<ApiError> {
        let l = self.js_limits(account);
        let mine = || {
            self.jetstream
                .streams
                .iter()
                .map(|(_, s)| s)
                .filter(move |s| s.account == account)
        };
        if l.max_streams > 0 && mine().count() as i64 >= l.max_streams {
            return Some(ApiError::new(
                400,
                10027,
                "maximum number of streams reached".into(),
            ));
        }
        if l.max_bytes_required && config.max_bytes <= 0 {
            return Some(ApiError::new(
                400,
                10113,
                "account requires a stream config to have max bytes set".into(),
            ));
        }
        let memory = config.storage == Storage::Memory;
        let (per_stream, total) = if memory {
            (l.memory_max_stream_bytes, l.max_memory)
        } else {
            (l.store_max_stream_bytes, l.max_store)
        };
        if per_stream > 0 && config.max_bytes > per_stream {
            return Some(ApiError::new(
                400,
                10122,
                "stream max bytes exceeds account limit max stream bytes".into(),
            ));
        }
        if total >= 0 {
            let reserved: i64 = mine()
                .filter(|s| (s.config.storage == Storage::Memory) == memory)
                .map(|s| s.config.max_bytes.max(0))
                .sum();
            if reserved + config.max_bytes.max(1) > total {
                return Some(if memory {
                    ApiError::new(500, 10028, "insufficient memory resources available".into())
                } else {
                    ApiError::new(
                        500,
                        10047,
                        "insufficient storage resources available".into(),
                    )
                });
            }
        }
        None
    }

    pub(crate) fn domain(&self) -> String {
        self.opts
            .jetstream
            .as_ref()
            .map(|j| j.domain.clone())
            .unwrap_or_default()
    }

    /// A stream's state as its info shows it.
    pub(super) fn state_json(&self, id: StreamId) -> StateJson {
        let s = &self.jetstream.streams[id as usize];
        let st = &s.state;
        let (first_seq, num_deleted) = if st.msgs == 0 {
            (if st.last_seq == 0 { 0 } else { st.last_seq + 1 }, 0)
        } else {
            (
                st.first_seq,
                (st.last_seq + 1 - st.first_seq).saturating_sub(st.msgs),
            )
        };
        StateJson {
            messages: st.msgs,
            bytes: st.bytes,
            first_seq,
            first_ts: go_time(st.first_ts_unix_nanos),
            last_seq: st.last_seq,
            last_ts: go_time(st.last_ts_unix_nanos),
            num_subjects: st.num_subjects,
            subjects: None,
            num_deleted,
            deleted: None,
            consumer_count: s.consumers.len() as u64,
        }
    }

    /// A stream's info as `STREAM.CREATE` answers it.
    pub(super) fn created_json(&self, id: StreamId) -> Vec<u8> {
        self.response_json("stream_create", self.info_of(id, false))
    }

    fn info_of(&self, id: StreamId, cluster: bool) -> StreamInfo<'_> {
        let (mirror, sources) = self.sourcing_info(id);
        let s = &self.jetstream.streams[id as usize];
        let mut config = std::borrow::Cow::Borrowed(&s.config);
        config.to_mut().metadata = super::level::stamps::shown(&s.config.metadata);
        StreamInfo {
            config,
            created: go_time(s.created_unix_nanos),
            state: self.state_json(id),
            cluster: cluster.then(|| Cluster {
                leader: self.info.server_name.clone(),
            }),
            mirror,
            sources,
            ts: go_time(self.now.unix_nanos),
        }
    }

    fn stream_create(
        &mut self,
        account: AccountId,
        reply: &[u8],
        name: &str,
        body: &[u8],
        update: bool,
    ) {
        let kind = if update {
            "stream_update"
        } else {
            "stream_create"
        };
        let body: &[u8] = if body.trim_ascii().is_empty() {
            b"{}"
        } else {
            body
        };
        // The request is the configuration and `pedantic`.
        let config: StreamConfig = match go_json_fields(body, self.api_fields_except(&["pedantic"]))
        {
            Ok(c) => c,
            Err(e) => return self.fail(account, reply, kind, &e),
        };
        if config.name != name {
            return self.fail(account, reply, kind, &ApiError::name_mismatch());
        }
        #[derive(Deserialize, Default)]
        struct Pedantic {
            #[serde(default)]
            pedantic: bool,
        }
        let pedantic = from_go_json::<Pedantic>(body).is_ok_and(|p| p.pedantic);
        let mut config = match config.checked_as(pedantic) {
            Ok(c) => c,
            Err(e) => return self.fail(account, reply, kind, &e),
        };
        if config.num_replicas > 1 {
            return self.fail(account, reply, kind, &ApiError::replicas_not_supported());
        }
        let existing = self.stream_id(account, name);
        // The level a configuration needs is stamped at create and kept
        // by updates, as nats-server keeps it.
        let stamps = super::level::stamps::REQUIRED_LEVEL;
        match existing.filter(|_| update) {
            Some(id) => {
                super::level::stamps::drop_response_stamps(&mut config.metadata);
                match self.jetstream.streams[id as usize]
                    .config
                    .metadata
                    .get(stamps)
                {
                    Some(level) => config.metadata.insert(stamps.into(), level.clone()),
                    None => config.metadata.remove(stamps),
                };
            }
            None => {
                let level = config.required_api_level();
                super::level::stamps::require(&mut config.metadata, level);
            }
        }
        if let Err(e) = self.check_sourcing(account, existing, &mut config) {
            return self.fail(account, reply, kind, &e); // source.rs
        }
        let overlap = self.jetstream.streams.iter().any(|(k, s)| {
            s.account == account
                && Some(k as StreamId) != existing
                && s.config
                    .subjects
                    .iter()
                    .any(|a| config.subjects.iter().any(|b| subjects_collide(a, b)))
        });
        match (existing, update) {
            (None, true) => {
                return self.fail(account, reply, kind, &ApiError::stream_not_found());
            }
            (Some(id), false) => {
                let same = self.jetstream.streams[id as usize]
                    .config
                    .same_apart_from_stamps(&config);
                if !same {
                    return self.fail(account, reply, kind, &ApiError::name_in_use());
                }
                let info = self.info_of(id, false);
                let json = go_json(&Response {
                    kind: format!("{TYPE_PREFIX}{kind}_response"),
                    error: None,
                    body: CreateBody {
                        info,
                        did_create: true,
                    },
                });
                self.publish_as_server(account, reply, None, &json);
                return;
            }
            (Some(id), true) => {
                let old = &self.jetstream.streams[id as usize].config;
                if let Some(why) = old.update_refused(&config) {
                    return self.fail(account, reply, kind, &ApiError::invalid_config(why));
                }
            }
            (None, false) if self.restoring(account, name) => {
                return self.fail(account, reply, kind, &ApiError::name_in_use());
            }
            (None, false) => {}
        }
        if overlap {
            return self.fail(account, reply, kind, &ApiError::subjects_overlap());
        }
        if existing.is_none()
            && let Some(e) = self.account_limits_refuse(account, &config)
        {
            return self.fail(account, reply, kind, &e);
        }
        let id = match existing {
            Some(id) => {
                // What the stream took so far is appended under the old
                // limits, before the store reopens with the new ones.
                self.flush_stream(id);
                self.unsubscribe_stream(id);
                self.jetstream.streams[id as usize].config = config;
                self.compile_transform(id);
                id
            }
            None => self.add_stream(account, config, self.now.unix_nanos),
        };
        let s = &self.jetstream.streams[id as usize];
        let (key, store) = (s.key.clone(), s.config.store_config());
        let first_seq = s.config.first_seq;
        let op = self.next_op(Pending::Created {
            stream: id,
            reply: None,
            update,
        });
        self.storage(StorageOp::Open {
            id: op,
            stream: key.clone(),
            config: store,
        });
        if !update && first_seq > 1 {
            // A new stream starting at `first_seq`: its first sequence
            // moves there, durably, before it is answered for.
            let purge = self.next_op(Pending::Quiet);
            self.storage(StorageOp::Purge {
                id: purge,
                stream: key.clone(),
                purge: Purge {
                    below_seq: Some(first_seq),
                    ..Purge::default()
                },
            });
            let sync = self.next_op(Pending::Quiet);
            self.storage(StorageOp::Sync {
                id: sync,
                stream: key,
            });
            self.jetstream.streams[id as usize].last_seq = first_seq - 1;
        }
        // The answer waits for the metadata to be on disk.
        self.save_meta(
            id,
            Pending::Created {
                stream: id,
                reply: Some(reply.into()),
                update,
            },
        );
    }

    /// A create or update step completed: the open (`reply` is `None`), or
    /// the metadata save, after which the stream is answered for and
    /// takes messages.
    pub(super) fn created(
        &mut self,
        id: StreamId,
        reply: Option<Box<[u8]>>,
        update: bool,
        c: &Completion,
    ) {
        let kind = if update {
            "stream_update"
        } else {
            "stream_create"
        };
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        let account = s.account;
        if let Ok(Done::Opened { state, .. }) = &c.result
            && !update
        {
            s.last_seq = s.last_seq.max(state.last_seq);
            s.durable_seq = s.durable_seq.max(state.last_seq);
        }
        if let Err(e) = &c.result {
            // The stream cannot be stored: it does not exist (a failed
            // update leaves the old configuration on disk, and the stream
            // is reopened with it at the next start).
            let e = ApiError::store_failed(&e.to_string());
            if !update && reply.is_some() {
                self.forget_stream(id);
            }
            if let Some(reply) = reply {
                self.fail(account, &reply, kind, &e);
            }
            return;
        }
        let Some(reply) = reply else {
            return;
        };
        self.subscribe_stream(id);
        self.arm_expire();
        // Its own mirror or sources, and those waiting for it (source.rs).
        self.start_sourcing(id);
        self.sourcing_stream_changed(id);
        let name = self.jetstream.streams[id as usize].config.name.clone();
        self.stream_advisory(account, &name, if update { "modify" } else { "create" });
        let mut info = self.info_of(id, false);
        super::source::as_just_created(&mut info.mirror, &mut info.sources);
        let json = go_json(&Response {
            kind: format!("{TYPE_PREFIX}{kind}_response"),
            error: None,
            body: CreateBody {
                info,
                did_create: !update,
            },
        });
        self.publish_as_server(account, &reply, None, &json);
    }

    fn stream_info(&mut self, account: AccountId, reply: &[u8], name: &str, body: &[u8]) {
        let kind = "stream_info";
        let fail_paged = |s: &mut Server, e: &ApiError| {
            let body = Paged {
                total: 0,
                offset: 0,
                limit: 0,
                body: Empty {},
            };
            s.api_respond(account, reply, kind, Some(e), body);
        };
        let req = match self.parse::<InfoRequest>(body) {
            Ok(r) => r,
            Err(e) => return fail_paged(self, &e),
        };
        let Some(id) = self.stream_id(account, name) else {
            return fail_paged(self, &ApiError::stream_not_found());
        };
        if req.deleted_details || !req.subjects_filter.is_empty() {
            // The details are the store's: ask it, answer on completion.
            let key = self.jetstream.streams[id as usize].key.clone();
            let subjects_filter =
                (!req.subjects_filter.is_empty()).then(|| req.subjects_filter.clone());
            let op = self.next_op(Pending::InfoDetails {
                account,
                reply: reply.into(),
                stream: id,
                offset: req.offset,
            });
            self.storage(StorageOp::Details {
                id: op,
                stream: key,
                subjects_filter,
                deleted: req.deleted_details,
            });
            return;
        }
        self.send_info(account, reply, id, None, None, (0, 0, 0));
    }

    /// Stream info with the details the store gave, if asked for.
    fn send_info(
        &mut self,
        account: AccountId,
        reply: &[u8],
        id: StreamId,
        subjects: Option<std::collections::BTreeMap<String, u64>>,
        deleted: Option<Vec<u64>>,
        (total, offset, limit): (usize, usize, usize),
    ) {
        let mut info = self.info_of(id, true);
        info.state.subjects = subjects;
        info.state.deleted = deleted;
        let json = go_json(&Response {
            kind: format!("{TYPE_PREFIX}stream_info_response"),
            error: None,
            body: Paged {
                total,
                offset,
                limit,
                body: info,
            },
        });
        self.publish_as_server(account, reply, None, &json);
    }

    pub(super) fn info_details(
        &mut self,
        account: AccountId,
        reply: &[u8],
        id: StreamId,
        offset: usize,
        c: &Completion,
    ) {
        if !self.jetstream.streams.contains(id as usize) {
            let e = ApiError::stream_not_found();
            let body = Paged {
                total: 0,
                offset: 0,
                limit: 0,
                body: Empty {},
            };
            return self.api_respond(account, reply, "stream_info", Some(&e), body);
        }
        let (subjects, deleted) = match &c.result {
            Ok(Done::Details { subjects, deleted }) => (subjects.clone(), deleted.clone()),
            _ => (Vec::new(), Vec::new()),
        };
        let wanted_subjects = matches!(&c.result, Ok(Done::Details { .. })) && !subjects.is_empty();
        let total = subjects.len();
        let offset = offset.min(total);
        let page: std::collections::BTreeMap<String, u64> = subjects
            .into_iter()
            .skip(offset)
            .take(SUBJECTS_LIMIT)
            .collect();
        let paging = if wanted_subjects {
            (total, offset, SUBJECTS_LIMIT)
        } else {
            (0, 0, 0)
        };
        let deleted = (!deleted.is_empty()).then_some(deleted);
        let subjects = wanted_subjects.then_some(page);
        self.send_info(account, reply, id, subjects, deleted, paging);
    }

    fn stream_names(&mut self, account: AccountId, reply: &[u8], body: &[u8], list: bool) {
        let (kind, limit) = if list {
            ("stream_list", LIST_LIMIT)
        } else {
            ("stream_names", NAMES_LIMIT)
        };
        let req: ListRequest = match self.parse(body) {
            Ok(r) => r,
            Err(e) => {
                #[derive(Serialize)]
                struct NoStreams {
                    streams: Option<()>,
                }
                let body = Paged {
                    total: 0,
                    offset: 0,
                    limit: 0,
                    body: NoStreams { streams: None },
                };
                return self.api_respond(account, reply, kind, Some(&e), body);
            }
        };
        let mut ids: Vec<(String, StreamId)> = self
            .jetstream
            .by_name
            .range((account, String::new())..)
            .take_while(|((a, _), _)| *a == account)
            .filter(|(_, id)| {
                req.subject.is_empty()
                    || self.jetstream.streams[**id as usize]
                        .config
                        .subjects
                        .iter()
                        .any(|s| subjects_collide(s, &req.subject))
            })
            .map(|((_, n), id)| (n.clone(), *id))
            .collect();
        ids.sort();
        let total = ids.len();
        let offset = req.offset.min(total);
        let page = &ids[offset..(offset + limit).min(total)];
        if list {
            #[derive(Serialize)]
            struct List<'a> {
                streams: Vec<StreamInfo<'a>>,
            }
            let streams = page
                .iter()
                .map(|(_, id)| self.info_of(*id, false))
                .collect();
            let json = go_json(&Response {
                kind: format!("{TYPE_PREFIX}{kind}_response"),
                error: None,
                body: Paged {
                    total,
                    offset,
                    limit,
                    body: List { streams },
                },
            });
            self.publish_as_server(account, reply, None, &json);
        } else {
            #[derive(Serialize)]
            struct Names {
                streams: Option<Vec<String>>,
            }
            let names: Vec<String> = page.iter().map(|(n, _)| n.clone()).collect();
            let body = Paged {
                total,
                offset,
                limit,
                body: Names {
                    streams: (!names.is_empty()).then_some(names),
                },
            };
            self.api_respond(account, reply, kind, None, body);
        }
    }

    fn stream_delete(&mut self, account: AccountId, reply: &[u8], name: &str) {
        let Some(id) = self.stream_id(account, name) else {
            return self.fail(
                account,
                reply,
                "stream_delete",
                &ApiError::stream_not_found(),
            );
        };
        let key = self.jetstream.streams[id as usize].key.clone();
        // Publishes waiting for a sync will never be acknowledged.
        let acks = self.jetstream.streams[id as usize].acks.release(u64::MAX);
        let e = ApiError::stream_not_found();
        for ack in acks {
            self.send_pub_ack(
                ack.account,
                &ack.reply,
                name,
                0,
                Some(&e),
                super::publish::AckNote::Plain,
            );
        }
        self.forget_stream(id);
        self.stream_advisory(account, name, "delete");
        let op = self.next_op(Pending::Removed {
            account,
            reply: reply.into(),
        });
        self.storage(StorageOp::Remove {
            id: op,
            stream: key,
        });
    }

    pub(super) fn stream_removed(&mut self, account: AccountId, reply: &[u8], c: &Completion) {
        let kind = "stream_delete";
        match &c.result {
            Ok(_) => {
                #[derive(Serialize)]
                struct Success {
                    success: bool,
                }
                self.api_respond(account, reply, kind, None, Success { success: true });
            }
            Err(e) => self.fail(
                account,
                reply,
                kind,
                &ApiError::store_failed(&e.to_string()),
            ),
        }
    }

    fn stream_purge(&mut self, account: AccountId, reply: &[u8], name: &str, body: &[u8]) {
        let kind = "stream_purge";
        let fail = |s: &mut Server, e: &ApiError| {
            #[derive(Serialize)]
            struct Purged {
                purged: u64,
            }
            s.api_respond(account, reply, kind, Some(e), Purged { purged: 0 });
        };
        let req: PurgeRequest = match self.parse(body) {
            Ok(r) => r,
            Err(e) => return fail(self, &e),
        };
        if req.seq > 0 && req.keep > 0 {
            return fail(self, &ApiError::bad_request());
        }
        let Some(id) = self.stream_id(account, name) else {
            return fail(self, &ApiError::stream_not_found());
        };
        // Counter totals are read again once the purge is asked for.
        self.jetstream.streams[id as usize].counters.clear();
        let s = &self.jetstream.streams[id as usize];
        if s.config.sealed {
            return fail(self, &ApiError::sealed());
        }
        if s.config.deny_purge {
            return fail(self, &ApiError::purge_denied());
        }
        let key = s.key.clone();
        let purge = Purge {
            filter: (!req.filter.is_empty()).then_some(req.filter),
            below_seq: (req.seq > 0).then_some(req.seq),
            keep: (req.keep > 0).then_some(req.keep),
        };
        let op = self.next_op(Pending::Purge {
            account,
            reply: reply.into(),
        });
        self.storage(StorageOp::Purge {
            id: op,
            stream: key,
            purge,
        });
    }

    pub(super) fn purged(&mut self, account: AccountId, reply: &[u8], c: &Completion) {
        #[derive(Serialize)]
        struct Purged {
            success: bool,
            purged: u64,
        }
        match &c.result {
            Ok(Done::Purged(n)) => {
                let body = Purged {
                    success: true,
                    purged: *n,
                };
                let json = self.response_json("stream_purge", body);
                self.answer_after_sync(&c.stream, account, reply, json);
            }
            other => {
                let e = ApiError::new(500, 10110, describe(other));
                #[derive(Serialize)]
                struct Failed {
                    purged: u64,
                }
                self.api_respond(
                    account,
                    reply,
                    "stream_purge",
                    Some(&e),
                    Failed { purged: 0 },
                );
            }
        }
    }

    fn msg_get(&mut self, account: AccountId, reply: &[u8], name: &str, body: &[u8]) {
        let kind = "stream_msg_get";
        let req: MsgGetRequest = match self.parse(body) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, kind, &e),
        };
        // A batch is the direct get's, not this one's.
        if req.batch > 0 || req.max_bytes > 0 {
            return self.fail(account, reply, kind, &ApiError::bad_request());
        }
        let Some(id) = self.stream_id(account, name) else {
            return self.fail(account, reply, kind, &ApiError::stream_not_found());
        };
        let start_time = req.start_time.as_deref().map(|t| {
            // (Before 1970 is before every message.)
            crate::time::parse_rfc3339_nanos(t).unwrap_or(0)
        });
        let read = match (
            req.seq,
            req.last_by_subj.as_str(),
            req.next_by_subj.as_str(),
        ) {
            // The first message at or after a time.
            (0, "", "") if let Some(unix_nanos) = start_time => Read::AtTime { unix_nanos },
            // The first on a subject from there: the time's sequence first.
            (0, "", next) if let Some(unix_nanos) = start_time => {
                let stream = self.jetstream.streams[id as usize].key.clone();
                let op = self.next_op(Pending::MsgGetAtTime {
                    account,
                    reply: reply.into(),
                    no_headers: req.no_hdr,
                    stream: stream.clone(),
                    next_by_subj: next.to_string(),
                });
                return self.storage(StorageOp::Read {
                    id: op,
                    stream,
                    read: Read::AtTime { unix_nanos },
                });
            }
            _ if start_time.is_some() => {
                return self.fail(account, reply, kind, &ApiError::bad_request());
            }
            (seq, "", "") if seq > 0 => Read::Seq(seq),
            (0, last, "") if !last.is_empty() => self.last_read(last.to_string()),
            (seq, "", next) if !next.is_empty() => Read::Next {
                from_seq: seq.max(1),
                filter: Some(next.to_string()),
            },
            _ => return self.fail(account, reply, kind, &ApiError::bad_request()),
        };
        let key = self.jetstream.streams[id as usize].key.clone();
        let op = self.next_op(Pending::MsgGet {
            account,
            reply: reply.into(),
            no_headers: req.no_hdr,
        });
        self.storage(StorageOp::Read {
            id: op,
            stream: key,
            read,
        });
    }

    /// The first message at or after a `MSG.GET`'s `start_time` was read:
    /// the next on its subject from there is the answer (none at or after
    /// the time: no message).
    pub(super) fn msg_get_from_time(
        &mut self,
        account: AccountId,
        reply: &[u8],
        no_headers: bool,
        stream: String,
        next_by_subj: String,
        c: &Completion,
    ) {
        let from_seq = match &c.result {
            Ok(Done::Read(Some(m))) => m.seq,
            _ => return self.msg_got(account, reply, no_headers, c),
        };
        let op = self.next_op(Pending::MsgGet {
            account,
            reply: reply.into(),
            no_headers,
        });
        self.storage(StorageOp::Read {
            id: op,
            stream,
            read: Read::Next {
                from_seq,
                filter: Some(next_by_subj),
            },
        });
    }

    pub(super) fn msg_got(
        &mut self,
        account: AccountId,
        reply: &[u8],
        no_headers: bool,
        c: &Completion,
    ) {
        let kind = "stream_msg_get";
        match &c.result {
            Ok(Done::Read(Some(m))) => {
                #[derive(Serialize)]
                struct Message {
                    message: StoredMsg,
                }
                let b64 = data_encoding::BASE64;
                let message = StoredMsg {
                    subject: m.subject.clone(),
                    seq: m.seq,
                    hdrs: (!m.headers.is_empty() && !no_headers).then(|| b64.encode(&m.headers)),
                    data: (!m.payload.is_empty()).then(|| b64.encode(&m.payload)),
                    time: go_time(m.ts_unix_nanos),
                };
                self.api_respond(account, reply, kind, None, Message { message });
            }
            Ok(Done::Read(None)) => self.fail(account, reply, kind, &ApiError::no_message_found()),
            other => {
                // nats-server answers every failed read so; the log says why.
                let line = format!("JetStream read failed: {}", describe(other));
                self.log(crate::server::LogLevel::Warn, line);
                self.fail(account, reply, kind, &ApiError::no_message_found());
            }
        }
    }

    fn msg_delete(&mut self, account: AccountId, reply: &[u8], name: &str, body: &[u8]) {
        let kind = "stream_msg_delete";
        let req: MsgDeleteRequest = match self.parse(body) {
            Ok(r) => r,
            Err(e) => return self.fail(account, reply, kind, &e),
        };
        let _ = req.no_erase;
        let Some(id) = self.stream_id(account, name) else {
            return self.fail(account, reply, kind, &ApiError::stream_not_found());
        };
        // The subject's total may have been the deleted message's.
        self.jetstream.streams[id as usize].counters.clear();
        let s = &self.jetstream.streams[id as usize];
        if s.config.sealed {
            return self.fail(account, reply, kind, &ApiError::sealed());
        }
        if s.config.deny_delete {
            return self.fail(account, reply, kind, &ApiError::delete_denied());
        }
        if req.seq == 0 || req.seq > s.last_seq {
            let e = ApiError::msg_delete_failed("stream store EOF");
            return self.fail(account, reply, kind, &e);
        }
        let key = s.key.clone();
        let op = self.next_op(Pending::MsgDelete {
            account,
            reply: reply.into(),
        });
        self.storage(StorageOp::Delete {
            id: op,
            stream: key,
            seq: req.seq,
        });
    }

    pub(super) fn msg_deleted(&mut self, account: AccountId, reply: &[u8], c: &Completion) {
        let kind = "stream_msg_delete";
        match &c.result {
            Ok(Done::Deleted(true)) => {
                #[derive(Serialize)]
                struct Success {
                    success: bool,
                }
                let json = self.response_json(kind, Success { success: true });
                self.answer_after_sync(&c.stream, account, reply, json);
            }
            Ok(Done::Deleted(false)) => {
                let e = ApiError::msg_delete_failed("no message found");
                self.fail(account, reply, kind, &e);
            }
            other => {
                let e = ApiError::msg_delete_failed(&describe(other));
                self.fail(account, reply, kind, &e);
            }
        }
    }
}

/// The response type of an API subject natrix serves (`None`: no answer).
pub(super) fn response_kind(tokens: &[&str]) -> Option<&'static str> {
    Some(match tokens {
        ["INFO"] => "account_info",
        ["STREAM", "CREATE", _] => "stream_create",
        ["STREAM", "UPDATE", _] => "stream_update",
        ["STREAM", "INFO", _] => "stream_info",
        ["STREAM", "NAMES"] => "stream_names",
        ["STREAM", "LIST"] => "stream_list",
        ["STREAM", "DELETE", _] => "stream_delete",
        ["STREAM", "PURGE", _] => "stream_purge",
        ["STREAM", "MSG", "GET", _] => "stream_msg_get",
        ["STREAM", "MSG", "DELETE", _] => "stream_msg_delete",
        ["STREAM", "SNAPSHOT", _] => "stream_snapshot",
        ["STREAM", "RESTORE", _] => "stream_restore",
        ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", "CREATE", ..] => "consumer_create",
        ["CONSUMER", "INFO", _, _] => "consumer_info",
        ["CONSUMER", "NAMES", _] => "consumer_names",
        ["CONSUMER", "LIST", _] => "consumer_list",
        ["CONSUMER", "DELETE", _, _] => "consumer_delete",
        ["CONSUMER", "PAUSE", _, _] => "consumer_pause",
        _ => return None,
    })
}

/// The text of an unexpected storage result.
fn describe(result: &Result<Done, StoreError>) -> String {
    match result {
        Ok(done) => format!("unexpected storage result {done:?}"),
        Err(e) => e.to_string(),
    }
}

/// The API subject after `$JS.API.` or `$JS.<domain>.API.`.
fn api_suffix(subject: &str) -> Option<&str> {
    if let Some(rest) = subject.strip_prefix("$JS.API.") {
        return Some(rest);
    }
    let rest = subject.strip_prefix("$JS.")?;
    let (_domain, rest) = rest.split_once('.')?;
    rest.strip_prefix("API.")
}
