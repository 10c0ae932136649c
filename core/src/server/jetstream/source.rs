//! Mirrors and sources on one server.
//!
//! A stream with a `mirror` copies another stream of its account message
//! for message, keeping the origin's sequences and times; a stream with
//! `sources` stores the messages of other streams as new messages of its
//! own, each with a `Nats-Stream-Source` header that says where it came
//! from, as nats-server 2.15 writes it.
//!
//! Each mirror or source is a *feed*: it reads its origin through storage
//! (`ReadBatch`, as a consumer does) from its position on, never past what
//! the origin holds durably, and hands what it read to the destination's
//! own publish path (appended at the end of the event, synced, limits and
//! retention as for any publish). A feed reads again when its origin's
//! durable sequence moves, and when its destination has drained what it
//! was handed, so new messages flow at once without a polling timer.
//!
//! Nothing extra is saved: after a restart a mirror continues after its
//! own last sequence, and a source after the newest message of the
//! destination whose `Nats-Stream-Source` names it (the destination's
//! headers are read back through `RecentHeaders`).
//!
//! Not served: `external` (another account or domain) and `consumer`
//! (durable source consumers) are refused at create.

use natrix_storage::Msg;
use natrix_storage::ops::{Completion, Done, StorageOp};
use serde::{Deserialize, Serialize};

use super::config::{StreamConfig, SubjectTransform, subjects_collide};
use super::error::ApiError;
use super::{Pending, StreamId};
use crate::mapping::Transform;
use crate::server::system::InternalMsg;
use crate::server::{AccountId, LogLevel, Server};

/// The header a sourced message carries.
const SOURCE_HEADER: &str = "Nats-Stream-Source";
/// One read of a feed: at most this many messages, this many bytes.
const READ_MSGS_MAX: usize = 256;
const READ_BYTES_MAX: u64 = 1 << 20;
/// A feed waits while its destination has this many messages not yet
/// appended.
const INFLIGHT_MAX: u64 = 1024;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A `mirror` or one of `sources`, in nats-server's JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamSource {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub opt_start_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// A durable source consumer (nats-server 2.12): refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<serde_json::Value>,
}

/// `external`: a stream behind another API prefix (refused).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExternalStream {
    #[serde(default)]
    pub api: String,
    #[serde(default)]
    pub deliver: String,
}

impl StreamSource {
    /// The filter and destination parts of nats-server's index name: the
    /// filter (or `>`) and `>` without transforms, else the transforms'
    /// sources and destinations, each joined by a form feed.
    fn index_parts(&self) -> (String, String) {
        let or_all = |s: &str| {
            if s.is_empty() {
                ">".to_string()
            } else {
                s.to_string()
            }
        };
        if self.subject_transforms.is_empty() {
            return (or_all(&self.filter_subject), ">".into());
        }
        let sources: Vec<String> = self
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.src))
            .collect();
        let dests: Vec<String> = self
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.dest))
            .collect();
        (sources.join("\u{c}"), dests.join("\u{c}"))
    }

    /// What tells two sources apart: the stream and the index parts.
    fn index_name(&self) -> String {
        let (filter, dest) = self.index_parts();
        format!("{} {filter} {dest}", self.name)
    }

    /// The subjects read from the origin (none: all of them).
    fn filters(&self) -> Vec<String> {
        if !self.filter_subject.is_empty() {
            return vec![self.filter_subject.clone()];
        }
        let filters: Vec<String> = self
            .subject_transforms
            .iter()
            .map(|t| {
                if t.src.is_empty() {
                    ">".into()
                } else {
                    t.src.clone()
                }
            })
            .collect();
        if filters.iter().any(|f| f == ">") {
            return Vec::new();
        }
        filters
    }

    /// The transforms with a destination (one without only filters).
    fn transforms(&self) -> Vec<Transform> {
        self.subject_transforms
            .iter()
            .filter(|t| !t.dest.is_empty())
            .filter_map(|t| t.compile().ok())
            .collect()
    }

    fn start_time_unix_nanos(&self) -> Option<u64> {
        self.opt_start_time
            .as_deref()
            .and_then(crate::time::parse_rfc3339_nanos)
    }

    /// The checks that need no other stream: names, filters and
    /// transforms, what is not served; the start time in Go's format.
    fn check(&mut self, mirror: bool) -> Result<(), ApiError> {
        if self.external.is_some() {
            return Err(ApiError::invalid_config(
                "natrix does not support external (other account or domain) mirrors and sources yet",
            ));
        }
        if self.consumer.is_some() {
            return Err(if mirror {
                ApiError::new(
                    400,
                    10213,
                    "stream mirror consumer config is invalid".into(),
                )
            } else {
                ApiError::new(
                    400,
                    10215,
                    "stream source consumer config is invalid".into(),
                )
            });
        }
        if !super::config::is_valid_name(&self.name) {
            return Err(if mirror {
                ApiError::new(400, 10142, "mirrored stream name is invalid".into())
            } else {
                ApiError::new(400, 10141, "sourced stream name is invalid".into())
            });
        }
        if let Some(text) = &self.opt_start_time {
            let Some(at) = crate::time::parse_rfc3339_nanos(text) else {
                return Err(ApiError::new(
                    400,
                    10025,
                    format!("invalid JSON: parsing time {text:?} as RFC 3339"),
                ));
            };
            self.opt_start_time = Some(crate::time::rfc3339_nanos(at));
        }
        if !self.filter_subject.is_empty() && !self.subject_transforms.is_empty() {
            return Err(if mirror {
                ApiError::new(400, 10150, "mirror with multiple subject transforms cannot also have a single subject filter".into())
            } else {
                ApiError::new(400, 10144, "source with multiple subject transforms cannot also have a single subject filter".into())
            });
        }
        let (code_source, code_dest, code_overlap, what) = if mirror {
            (10151, 10154, 10152, "mirror")
        } else {
            (10145, 10146, 10147, "source")
        };
        for t in &self.subject_transforms {
            if !t.src.is_empty() && !crate::subject::is_valid_subject(t.src.as_bytes()) {
                return Err(ApiError::new(
                    400,
                    code_source,
                    format!("{what} transform source: invalid subject {}", t.src),
                ));
            }
            if !t.dest.is_empty()
                && let Err(e) = t.compile()
            {
                return Err(ApiError::new(
                    400,
                    code_dest,
                    format!("{what} transform: {}", e.0),
                ));
            }
        }
        for (i, a) in self.subject_transforms.iter().enumerate() {
            for b in &self.subject_transforms[i + 1..] {
                if subjects_collide(&a.src, &b.src) {
                    let text = if mirror {
                        "mirror subject filters can not overlap"
                    } else {
                        "source filters can not overlap"
                    };
                    return Err(ApiError::new(400, code_overlap, text.into()));
                }
            }
        }
        if !self.filter_subject.is_empty()
            && !crate::subject::is_valid_subject(self.filter_subject.as_bytes())
        {
            return Err(ApiError::new(
                400,
                code_source,
                format!(
                    "{what} transform source: invalid subject {}",
                    self.filter_subject
                ),
            ));
        }
        Ok(())
    }
}

/// nats-server's checks of `mirror` and `sources` that need no other
/// stream (`checkStreamCfg`), run before the subjects are defaulted.
pub(crate) fn check_config(config: &mut StreamConfig) -> Result<(), ApiError> {
    if let Some(m) = &mut config.mirror {
        if config.first_seq > 0 {
            return Err(ApiError::new(
                400,
                10143,
                "stream mirrors can not have first sequence configured".into(),
            ));
        }
        if !config.subjects.is_empty() {
            return Err(ApiError::new(
                400,
                10034,
                "stream mirrors can not contain subjects".into(),
            ));
        }
        if !config.sources.is_empty() {
            return Err(ApiError::new(
                400,
                10031,
                "stream mirrors can not also contain other sources".into(),
            ));
        }
        if config.allow_msg_counter {
            return Err(ApiError::new(
                400,
                10173,
                "stream mirrors can not also calculate counters".into(),
            ));
        }
        m.check(true)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &mut config.sources {
        s.check(false)?;
        if !seen.insert(s.index_name()) {
            return Err(ApiError::new(
                400,
                10140,
                "duplicate source configuration detected".into(),
            ));
        }
    }
    Ok(())
}

/// nats-server's 8-character hash of `text` (`getHash`): the first bytes
/// of its SHA-256, each as a base-62 digit.
pub(crate) fn short_hash(text: &str) -> String {
    use sha2::Digest;
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let sum = sha2::Sha256::digest(text.as_bytes());
    sum[..8]
        .iter()
        .map(|b| DIGITS[(b % 62) as usize] as char)
        .collect()
}

/// A stream's identity as its sourced messages name it: the hash of when
/// it was created.
fn identity(created_unix_nanos: u64) -> String {
    short_hash(&crate::time::rfc3339_nanos(created_unix_nanos))
}

/// One mirror or source of a stream, and how far it has come.
#[derive(Debug)]
struct Feed {
    config: StreamSource,
    /// The index name's filter and destination parts (header fields).
    index: (String, String),
    filters: Vec<String>,
    transforms: Vec<Transform>,
    /// The origin sequence to read from next (0: not known yet).
    next_seq: u64,
    /// The last origin sequence taken ("seq" in stream info).
    last_seq: u64,
    /// Origin messages after the last taken (matching the filters).
    lag: u64,
    reading: bool,
    /// When the feed last heard from its origin.
    heard: Option<crate::time::Instant>,
    /// The last refusal logged, so that a retried one is logged once.
    refused: Option<String>,
    /// Origin messages stored before this time are passed over (until
    /// one is taken).
    start_time: Option<u64>,
    /// When the origin read last was created: another origin of the same
    /// name (deleted and created again) is sourced from its start.
    origin_created_unix_nanos: u64,
}

impl Feed {
    fn new(config: &StreamSource) -> Self {
        Feed {
            index: config.index_parts(),
            filters: config.filters(),
            transforms: config.transforms(),
            config: config.clone(),
            next_seq: 0,
            last_seq: 0,
            lag: 0,
            reading: false,
            heard: None,
            refused: None,
            start_time: None,
            origin_created_unix_nanos: 0,
        }
    }

    /// Where the feed starts without a recovered position: the
    /// configured sequence, else the configured time, and never before
    /// the destination's last message when the destination has lost its
    /// first messages (nats-server's rules).
    fn start(&mut self, dest: &natrix_storage::StreamState) {
        self.next_seq = self.config.opt_start_seq.max(1);
        if self.config.opt_start_seq > 0 {
            return;
        }
        let dest_last = (dest.first_seq > 1 || dest.msgs == 0 && dest.last_seq > 0)
            .then_some(dest.last_ts_unix_nanos)
            .filter(|&t| t > 0);
        self.start_time = match (self.config.start_time_unix_nanos(), dest_last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The feeds of one destination stream.
#[derive(Debug)]
pub(crate) struct Feeds {
    /// The destination's storage key (its slot may be reused).
    key: String,
    mirror: bool,
    feeds: Vec<Feed>,
    /// Changes with every reconfiguration: older reads are dropped.
    generation: u64,
    /// A write of the destination failed: what was handed to it may be
    /// lost, so positions are found again once it is reopened.
    restart: bool,
}

/// Every stream's feeds, by destination.
#[derive(Debug, Default)]
pub(crate) struct Sourcing {
    by_stream: std::collections::BTreeMap<StreamId, Feeds>,
    generation: u64,
}

/// A storage step of a feed.
#[derive(Debug)]
pub(crate) enum Step {
    /// The destination's headers, to find where its sources stopped.
    Recovered { stream: StreamId, generation: u64 },
    /// A batch read from an origin for feed `feed`.
    Read {
        stream: StreamId,
        generation: u64,
        feed: usize,
    },
}

/// `mirror` / `sources` in stream info (`StreamSourceInfo`), in
/// nats-server 2.15.1's field order.
#[derive(Serialize)]
pub(crate) struct SourceInfo {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    external: Option<ExternalStream>,
    lag: u64,
    #[serde(skip_serializing_if = "is_zero")]
    seq: u64,
    active: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
    #[serde(skip_serializing_if = "String::is_empty")]
    filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subject_transforms: Vec<SubjectTransform>,
}

/// `mirror` and `sources` as a create or update answer shows them
/// (nats-server 2.15.1): before any feed has tried its origin, so with no
/// error, and a mirror without its filter and transforms.
pub(crate) fn as_just_created(mirror: &mut Option<SourceInfo>, sources: &mut [SourceInfo]) {
    if let Some(m) = mirror {
        m.error = None;
        m.filter_subject.clear();
        m.subject_transforms.clear();
    }
    for s in sources {
        s.error = None;
    }
}

/// A sourced message's headers: its own, less any earlier
/// `Nats-Stream-Source` and the `Nats-Expected-*` and `Nats-Batch-*`
/// headers (not to be checked again), then `Nats-Stream-Source: <value>`.
fn sourced_headers(own: &[u8], value: &str) -> Vec<u8> {
    let mut out = b"NATS/1.0\r\n".to_vec();
    let block = own.strip_suffix(b"\r\n\r\n").unwrap_or(own);
    for line in block.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let key = line.split(|&b| b == b':').next().unwrap_or(b"");
        let dropped = key == SOURCE_HEADER.as_bytes()
            || key.starts_with(b"Nats-Expected-")
            || key.starts_with(b"Nats-Batch-");
        if line.is_empty() || dropped {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("{SOURCE_HEADER}: {value}\r\n\r\n").as_bytes());
    out
}

/// A message's subject in the destination: the first of the feed's
/// transforms that matches, then the destination's own
/// `subject_transform` (nats-server applies it to every message stored).
fn transformed(feed: &[Transform], own: Option<&Transform>, subject: &str) -> Vec<u8> {
    let applies = |t: &&Transform, s: &[u8]| crate::subject::matches(t.source().as_bytes(), s);
    let subject = subject.as_bytes();
    let subject = match feed.iter().find(|t| applies(t, subject)) {
        Some(t) => t.apply(subject),
        None => subject.to_vec(),
    };
    match own.filter(|t| applies(t, &subject)) {
        Some(t) => t.apply(&subject),
        None => subject,
    }
}

/// The origin stream and subject of a sourced message: the first and
/// fifth words of its `Nats-Stream-Source` (the subject it is stored
/// under where the fifth is missing).
pub(crate) fn origin_of(headers: &[u8], subject: &[u8]) -> (String, String) {
    let value = super::ttl::go_header(headers, SOURCE_HEADER.as_bytes()).unwrap_or_default();
    let value = String::from_utf8_lossy(value);
    let words: Vec<&str> = value.split(' ').collect();
    let origin_subject = match words.get(4) {
        Some(s) => s.to_string(),
        None => String::from_utf8_lossy(subject).into_owned(),
    };
    (words[0].to_string(), origin_subject)
}

/// The index name and origin sequence a `Nats-Stream-Source` value names,
/// (`<stream> <seq> <filter> <dest> <subject> [<identity>]`).
/// and the origin's identity, if written.
fn parse_source_header(value: &str) -> Option<(String, u64, Option<&str>)> {
    let fields: Vec<&str> = value.split(' ').collect();
    if fields.len() < 4 {
        return None;
    }
    let seq = fields[1].parse().ok()?;
    let index = format!("{} {} {}", fields[0], fields[2], fields[3]);
    Some((index, seq, fields.get(5).copied()))
}

/// Whether a header block names a source: only sources may write one
/// (a client's would mislead where a source resumes after a restart).
pub(crate) fn carries_source_header(headers: &[u8]) -> bool {
    !headers.is_empty()
        && crate::proto::headers::Headers::parse(headers)
            .is_ok_and(|h| h.get(SOURCE_HEADER.as_bytes()).is_some())
}

impl Server {
    /// A client's publish with `Nats-Stream-Source` is refused (10227), as
    /// by nats-server.
    pub(super) fn refuse_source_header(&mut self, id: StreamId, m: &InternalMsg) {
        let s = &self.jetstream.streams[id as usize];
        if let Some(reply) = m.reply.as_deref().filter(|_| !s.config.no_ack) {
            let name = s.config.name.clone();
            let e = ApiError::new(
                400,
                10227,
                "message stream source header is not allowed".into(),
            );
            self.send_pub_ack(
                m.account,
                reply,
                &name,
                0,
                Some(&e),
                super::publish::AckNote::Plain,
            );
        }
    }

    /// The checks of `mirror` and `sources` that look at other streams:
    /// a mirror cannot change, no cycle, message sizes, and a mirror
    /// inherits its origin's direct gets (nats-server's rules).
    pub(super) fn check_sourcing(
        &self,
        account: AccountId,
        existing: Option<StreamId>,
        config: &mut StreamConfig,
    ) -> Result<(), ApiError> {
        if let Some(id) = existing {
            let old = &self.jetstream.streams[id as usize].config;
            if old.mirror != config.mirror {
                return Err(ApiError::new(
                    400,
                    10055,
                    "stream mirror configuration can not be updated".into(),
                ));
            }
        }
        let origin = |name: &str| {
            self.stream_id(account, name)
                .map(|id| &self.jetstream.streams[id as usize].config)
        };
        if let Some(m) = &config.mirror
            && let Some(o) = origin(&m.name)
        {
            if config.max_msg_size > 0 && o.max_msg_size > 0 && config.max_msg_size < o.max_msg_size
            {
                return Err(ApiError::new(
                    400,
                    10030,
                    "stream mirror must have max message size >= source".into(),
                ));
            }
            config.mirror_direct = o.allow_direct;
        }
        for s in &config.sources {
            if let Some(o) = origin(&s.name)
                && config.max_msg_size > 0
                && o.max_msg_size > 0
                && config.max_msg_size < o.max_msg_size
            {
                return Err(ApiError::new(
                    400,
                    10046,
                    "stream source must have max message size >= target".into(),
                ));
            }
        }
        // A walk over what the new configuration sources and mirrors.
        // Breadth first, as nats-server walks (which also calls two paths
        // to one origin a cycle).
        let mut to_visit = std::collections::VecDeque::from([config.clone()]);
        let mut visited = std::collections::BTreeSet::new();
        while let Some(c) = to_visit.pop_front() {
            visited.insert(c.name.clone());
            for s in &c.sources {
                if visited.contains(&s.name) {
                    let overlaps = s.filter_subject.is_empty()
                        || c.subjects
                            .iter()
                            .any(|x| subjects_collide(x, &s.filter_subject));
                    if overlaps {
                        return Err(ApiError::invalid_config("detected cycle"));
                    }
                } else if let Some(o) = origin(&s.name) {
                    to_visit.push_back(o.clone());
                }
            }
            if let Some(m) = &c.mirror {
                if visited.contains(&m.name) {
                    return Err(ApiError::invalid_config("detected cycle"));
                }
                if let Some(o) = origin(&m.name) {
                    to_visit.push_back(o.clone());
                }
            }
        }
        Ok(())
    }

    /// (Re)starts stream `id`'s feeds after a create, an update or a
    /// restart; feeds an update keeps go on from where they were, the
    /// others find their position in the stream's own messages.
    pub(crate) fn start_sourcing(&mut self, id: StreamId) {
        self.start_feeds(id, true);
    }

    /// Starts stream `id`'s feeds, keeping the positions of those whose
    /// configuration is unchanged when `keep`.
    fn start_feeds(&mut self, id: StreamId, keep: bool) {
        let Some(s) = self.jetstream.streams.get(id as usize) else {
            return;
        };
        let state = s.state.clone();
        let configs: Vec<StreamSource> = s
            .config
            .mirror
            .iter()
            .chain(&s.config.sources)
            .cloned()
            .collect();
        let mirror = s.config.mirror.is_some();
        let (key, last_seq, msgs) = (s.key.clone(), s.state.last_seq, s.state.msgs);
        let old = self.jetstream.sourcing.by_stream.remove(&id);
        if configs.is_empty() {
            return;
        }
        let mut old = old
            .filter(|o| o.key == key && keep)
            .map(|o| o.feeds)
            .unwrap_or_default();
        let mut feeds = Vec::new();
        for config in &configs {
            let kept = old
                .iter()
                .position(|f| f.config == *config && f.next_seq > 0)
                .map(|i| old.swap_remove(i));
            let mut feed = kept.unwrap_or_else(|| Feed::new(config));
            feed.reading = false;
            feeds.push(feed);
        }
        if mirror && feeds[0].next_seq == 0 {
            // A mirror goes on after its own last message.
            if last_seq > 0 {
                feeds[0].next_seq = last_seq + 1;
                feeds[0].last_seq = last_seq;
            } else {
                feeds[0].start(&state);
            }
        }
        let unknown = feeds.iter().any(|f| f.next_seq == 0);
        self.jetstream.sourcing.generation += 1;
        let generation = self.jetstream.sourcing.generation;
        self.jetstream.sourcing.by_stream.insert(
            id,
            Feeds {
                key: key.clone(),
                mirror,
                feeds,
                generation,
                restart: false,
            },
        );
        if unknown && msgs > 0 {
            let op = self.next_op(Pending::Source(Step::Recovered {
                stream: id,
                generation,
            }));
            self.storage(StorageOp::RecentHeaders {
                id: op,
                stream: key,
                since_unix_nanos: 0,
            });
            return;
        }
        if let Some(f) = self.jetstream.sourcing.by_stream.get_mut(&id) {
            for feed in f.feeds.iter_mut().filter(|f| f.next_seq == 0) {
                feed.start(&state);
            }
        }
        self.pump(id);
    }

    /// Starts the feeds of every stream (after start-up reopened them all).
    pub(crate) fn start_all_sourcing(&mut self) {
        let ids: Vec<StreamId> = self
            .jetstream
            .streams
            .iter()
            .filter(|(_, s)| s.config.mirror.is_some() || !s.config.sources.is_empty())
            .map(|(k, _)| k as StreamId)
            .collect();
        for id in ids {
            self.start_sourcing(id);
        }
    }

    /// Stream `id` is gone: its feeds go with it.
    pub(crate) fn forget_sourcing(&mut self, id: StreamId) {
        self.jetstream.sourcing.by_stream.remove(&id);
    }

    /// A completion of stream `id` changed what it holds: feeds reading
    /// from it may read on, and its own feeds may hand it more.
    pub(crate) fn sourcing_stream_changed(&mut self, id: StreamId) {
        if self.jetstream.sourcing.by_stream.is_empty() {
            return;
        }
        let Some(s) = self.jetstream.streams.get(id as usize) else {
            return;
        };
        let (account, name) = (s.account, s.config.name.clone());
        let readers: Vec<StreamId> = self
            .jetstream
            .sourcing
            .by_stream
            .iter()
            .filter(|&(&dest, f)| {
                dest == id
                    || (self
                        .jetstream
                        .streams
                        .get(dest as usize)
                        .is_some_and(|d| d.account == account)
                        && f.feeds.iter().any(|feed| feed.config.name == name))
            })
            .map(|(&dest, _)| dest)
            .collect();
        for dest in readers {
            self.pump(dest);
        }
    }

    /// Reads for each feed of stream `id` that is idle and has something
    /// to read.
    fn pump(&mut self, id: StreamId) {
        let Some(dest) = self.jetstream.streams.get(id as usize) else {
            return;
        };
        let Some(feeds) = self.jetstream.sourcing.by_stream.get_mut(&id) else {
            return;
        };
        if dest.failed {
            feeds.restart = true;
            return;
        }
        if feeds.restart {
            return self.start_feeds(id, false);
        }
        if dest.inflight_msgs >= INFLIGHT_MAX || !dest.parked.is_empty() {
            return;
        }
        let (account, generation) = (dest.account, feeds.generation);
        let mirror = feeds.mirror;
        let mut reads = Vec::new();
        for (i, feed) in feeds.feeds.iter_mut().enumerate() {
            if feed.reading || feed.next_seq == 0 {
                continue;
            }
            let (by_name, streams) = (&self.jetstream.by_name, &self.jetstream.streams);
            let origin = by_name
                .get(&(account, feed.config.name.clone()))
                .map(|&o| &streams[o as usize])
                .filter(|o| !o.failed);
            if let Some(o) = origin {
                let created = o.created_unix_nanos;
                if !mirror
                    && feed.origin_created_unix_nanos != 0
                    && feed.origin_created_unix_nanos != created
                {
                    feed.last_seq = 0;
                    feed.start(&dest.state);
                }
                feed.origin_created_unix_nanos = created;
            }
            if let Some(origin) = origin.filter(|o| o.durable_seq >= feed.next_seq) {
                feed.reading = true;
                reads.push((i, origin.key.clone(), feed.next_seq, feed.filters.clone()));
            }
        }
        for (i, origin, from_seq, filters) in reads {
            let op = self.next_op(Pending::Source(Step::Read {
                stream: id,
                generation,
                feed: i,
            }));
            self.storage(StorageOp::ReadBatch {
                id: op,
                stream: origin,
                from_seq,
                filters,
                max_msgs: READ_MSGS_MAX,
                max_bytes: READ_BYTES_MAX,
            });
        }
    }

    /// A feed's storage step completed.
    pub(super) fn sourcing_step(&mut self, step: Step, c: &Completion) {
        match step {
            Step::Recovered { stream, generation } => self.sources_recovered(stream, generation, c),
            Step::Read {
                stream,
                generation,
                feed,
            } => self.feed_read(stream, generation, feed, c),
        }
    }

    fn current_feeds(&mut self, id: StreamId, generation: u64) -> Option<&mut Feeds> {
        let key = &self.jetstream.streams.get(id as usize)?.key;
        self.jetstream
            .sourcing
            .by_stream
            .get_mut(&id)
            .filter(|f| f.generation == generation && f.key == *key)
    }

    /// The destination's headers, newest first: each feed without a
    /// position goes on after the newest message that names it.
    fn sources_recovered(&mut self, id: StreamId, generation: u64, c: &Completion) {
        let Some(feeds) = self.current_feeds(id, generation) else {
            return;
        };
        let origins: Vec<String> = feeds.feeds.iter().map(|f| f.config.name.clone()).collect();
        if let Ok(Done::RecentHeaders(recent)) = &c.result {
            // A header written from an origin since deleted and created
            // again (another identity) says the feed starts over.
            let account = self.jetstream.streams[id as usize].account;
            let identities: Vec<Option<String>> = origins
                .iter()
                .map(|name| {
                    let o = self.stream_id(account, name)?;
                    Some(identity(
                        self.jetstream.streams[o as usize].created_unix_nanos,
                    ))
                })
                .collect();
            let feeds = self
                .jetstream
                .sourcing
                .by_stream
                .get_mut(&id)
                .expect("checked above");
            let names: Vec<String> = feeds.feeds.iter().map(|f| f.config.index_name()).collect();
            let mut found: Vec<bool> = feeds.feeds.iter().map(|f| f.next_seq > 0).collect();
            for (_, _, headers) in recent {
                if found.iter().all(|&f| f) {
                    break;
                }
                let Ok(h) = crate::proto::headers::Headers::parse(headers) else {
                    continue;
                };
                let Some(value) = h.get(SOURCE_HEADER.as_bytes()) else {
                    continue;
                };
                let value = String::from_utf8_lossy(value);
                let Some((index, seq, ident)) = parse_source_header(&value) else {
                    continue;
                };
                for (i, feed) in feeds.feeds.iter_mut().enumerate() {
                    if found[i] || names[i] != index {
                        continue;
                    }
                    found[i] = true;
                    let recreated = matches!((ident, &identities[i]), (Some(a), Some(b)) if a != b);
                    if !recreated {
                        feed.next_seq = seq + 1;
                        feed.last_seq = seq;
                    }
                }
            }
        }
        let state = self.jetstream.streams[id as usize].state.clone();
        let Some(feeds) = self.current_feeds(id, generation) else {
            return;
        };
        for feed in feeds.feeds.iter_mut().filter(|f| f.next_seq == 0) {
            feed.start(&state);
        }
        self.pump(id);
    }

    /// A feed's batch: what its origin holds durably goes to the
    /// destination, until the destination refuses one (tried again at
    /// the next wake).
    fn feed_read(&mut self, id: StreamId, generation: u64, index: usize, c: &Completion) {
        let now = self.now.instant;
        let Some(feeds) = self.current_feeds(id, generation) else {
            return;
        };
        let mirror = feeds.mirror;
        let feed = &mut feeds.feeds[index];
        feed.reading = false;
        let Ok(Done::Batch { msgs, pending }) = &c.result else {
            // The origin went away or failed: tried again when it changes.
            return;
        };
        feed.heard = Some(now);
        let (durable, start_time) = (c.durable_seq, feed.start_time);
        let mut next = feed.next_seq;
        let (mut stopped, mut beyond, mut untaken, mut took) = (false, false, 0u64, false);
        for m in msgs {
            if stopped || m.seq > durable {
                beyond |= m.seq > durable;
                untaken += 1;
                continue;
            }
            if start_time.is_some_and(|at| m.ts_unix_nanos < at) {
                next = m.seq + 1;
                continue;
            }
            let taken = if mirror {
                self.store_mirrored(id, index, m)
            } else {
                self.store_sourced(id, index, m)
            };
            if taken {
                (next, took) = (m.seq + 1, true);
            } else {
                stopped = true;
                untaken += 1;
            }
        }
        let Some(feeds) = self.current_feeds(id, generation) else {
            return;
        };
        let feed = &mut feeds.feeds[index];
        if !stopped && (*pending == 0 || beyond) {
            // Every matching message up to what the origin held durably
            // was in the batch.
            next = next.max(durable + 1);
        }
        if took {
            feed.start_time = None;
        }
        feed.next_seq = next;
        feed.lag = pending + untaken;
        if !stopped {
            self.pump(id);
        }
    }

    /// Stores an origin message in a mirror, under its own sequence and
    /// time.
    fn store_mirrored(&mut self, id: StreamId, index: usize, m: &Msg) -> bool {
        let s = &mut self.jetstream.streams[id as usize];
        let feeds = self
            .jetstream
            .sourcing
            .by_stream
            .get_mut(&id)
            .expect("a feed read");
        if s.failed {
            feeds.restart = true;
            return false;
        }
        let feed = &mut feeds.feeds[index];
        feed.last_seq = m.seq;
        if m.seq <= s.last_seq {
            return true; // already here
        }
        let mut msg = m.clone();
        let subject = transformed(&feed.transforms, s.transform.as_ref(), &m.subject);
        msg.subject = String::from_utf8_lossy(&subject).into_owned();
        s.last_seq = msg.seq;
        s.inflight_msgs += 1;
        s.inflight_bytes += msg.size_bytes();
        s.queued.push(msg);
        if !self.jetstream.dirty.contains(&id) {
            self.jetstream.dirty.push(id);
        }
        true
    }

    /// Publishes an origin message in a sourcing stream with its
    /// `Nats-Stream-Source` header; false if the stream refused it.
    fn store_sourced(&mut self, id: StreamId, index: usize, m: &Msg) -> bool {
        let dest = &self.jetstream.streams[id as usize];
        if dest.failed {
            if let Some(f) = self.jetstream.sourcing.by_stream.get_mut(&id) {
                f.restart = true;
            }
            return false;
        }
        if !dest.parked.is_empty() {
            return false;
        }
        let account = dest.account;
        let feeds = &self.jetstream.sourcing.by_stream[&id];
        let feed = &feeds.feeds[index];
        let ident = self
            .stream_id(account, &feed.config.name)
            .map(|o| identity(self.jetstream.streams[o as usize].created_unix_nanos))
            .unwrap_or_default();
        let mut value = format!(
            "{} {} {} {} {}",
            feed.config.name, m.seq, feed.index.0, feed.index.1, m.subject
        );
        if !ident.is_empty() {
            value.push(' ');
            value.push_str(&ident);
        }
        let headers = sourced_headers(&m.headers, &value);
        let own = dest.transform.as_ref();
        let subject = transformed(&feed.transforms, own, &m.subject);
        let msg = InternalMsg {
            account,
            subject: subject.into(),
            reply: None,
            header_len: headers.len(),
            payload: [&headers[..], &m.payload[..]].concat().into(),
            from: None,
        };
        if let Some(subject) = self.tally_missing(id, &msg) {
            // Taken again once the subject's tally is known.
            self.read_tally(id, subject);
            return false;
        }
        let refused = self.store_publish(id, &msg, None);
        let feed = &mut self
            .jetstream
            .sourcing
            .by_stream
            .get_mut(&id)
            .expect("a feed read")
            .feeds[index];
        match refused {
            None => {
                feed.last_seq = m.seq;
                feed.refused = None;
                true
            }
            Some(e) => {
                let first = feed.refused.as_deref() != Some(&e.description);
                feed.refused = Some(e.description.clone());
                if first {
                    let name = self.jetstream.streams[id as usize].config.name.clone();
                    let line = format!(
                        "Error processing inbound source {value:?} for stream {name:?}: {} (retried when the stream changes)",
                        e.description
                    );
                    self.log(LogLevel::Warn, line);
                }
                false
            }
        }
    }

    /// The subject of a sourced increment whose tally a counter stream
    /// must read first, if it must.
    fn tally_missing(&self, id: StreamId, m: &InternalMsg) -> Option<String> {
        let dest = &self.jetstream.streams[id as usize];
        let headers = &m.payload[..m.header_len];
        let counts = dest.config.allow_msg_counter
            && super::counter::check_incr(headers, m.body(), &dest.config, true)
                .is_ok_and(|incr| incr == super::counter::Incr::Verbatim);
        let subject = String::from_utf8_lossy(&m.subject).into_owned();
        (counts && !dest.counters.contains(&subject)).then_some(subject)
    }

    /// Reads a counter subject's last message, after every append asked
    /// for so far.
    fn read_tally(&mut self, id: StreamId, subject: String) {
        self.flush_stream(id);
        let s = &self.jetstream.streams[id as usize];
        let (key, epoch) = (s.key.clone(), s.counters.epoch());
        let op = self.next_op(Pending::TallyRead {
            stream: id,
            subject: subject.clone(),
            epoch,
        });
        self.storage(StorageOp::Read {
            id: op,
            stream: key,
            read: natrix_storage::ops::Read::LastBySubject(subject),
        });
    }

    /// A sourced increment's tally was read: kept (unless newer is
    /// known), and the feeds go on.
    pub(super) fn tally_read(&mut self, id: StreamId, subject: String, epoch: u64, c: &Completion) {
        let Ok(Done::Read(last)) = &c.result else {
            return; // tried again when the stream changes
        };
        let Some(s) = self.jetstream.streams.get_mut(id as usize) else {
            return;
        };
        let tally = super::publish::tally_of(last.as_ref());
        s.counters.insert_read(subject, tally, epoch);
        self.pump(id);
    }

    /// Stream info's `mirror` and `sources`, if the stream has either.
    pub(super) fn sourcing_info(&self, id: StreamId) -> (Option<SourceInfo>, Vec<SourceInfo>) {
        let s = &self.jetstream.streams[id as usize];
        let feeds = self
            .jetstream
            .sourcing
            .by_stream
            .get(&id)
            .filter(|f| f.key == s.key);
        let configs = s.config.mirror.iter().chain(&s.config.sources);
        let mut infos: Vec<SourceInfo> = configs
            .enumerate()
            .map(|(i, config)| {
                let feed = feeds
                    .and_then(|f| f.feeds.get(i))
                    .filter(|f| f.config == *config);
                let missing = self.stream_id(s.account, &config.name).is_none();
                let heard = feed.and_then(|f| f.heard);
                // A feed that has read everything its origin holds is
                // told of the next message at once: in contact now (where
                // nats-server's would have heard a heartbeat within 1 s).
                let caught_up = !missing
                    && feed.is_some_and(|f| {
                        !f.reading
                            && self.stream_id(s.account, &config.name).is_some_and(|o| {
                                f.next_seq > self.jetstream.streams[o as usize].durable_seq
                            })
                    });
                SourceInfo {
                    name: config.name.clone(),
                    external: config.external.clone(),
                    lag: feed.map_or(0, |f| f.lag),
                    seq: if s.config.mirror.is_some() {
                        0
                    } else {
                        feed.map_or(0, |f| f.last_seq)
                    },
                    active: heard.map_or(-1, |at| {
                        if caught_up {
                            return 0;
                        }
                        i64::try_from(self.now.instant.since(at).as_nanos()).unwrap_or(i64::MAX)
                    }),
                    error: missing.then(ApiError::stream_not_found),
                    filter_subject: config.filter_subject.clone(),
                    subject_transforms: config.subject_transforms.clone(),
                }
            })
            .collect();
        if s.config.mirror.is_some() {
            (Some(infos.remove(0)), Vec::new())
        } else {
            (None, infos)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_hash_is_nats_servers() {
        // What nats-server 2.15.1 wrote for an origin created at this time.
        assert_eq!(short_hash("2026-12-07T01:34:18.758326361Z"), "PrXXFhN5");
    }

    #[test]
    fn index_names_are_nats_servers() {
        let plain = StreamSource {
            name: "O".into(),
            ..StreamSource::default()
        };
        assert_eq!(plain.index_name(), "O > >");
        let filtered = StreamSource {
            filter_subject: "o.a".into(),
            ..plain.clone()
        };
        assert_eq!(filtered.index_name(), "O o.a >");
        let transformed = StreamSource {
            subject_transforms: vec![
                SubjectTransform {
                    src: "o.b".into(),
                    dest: "sb.b".into(),
                },
                SubjectTransform {
                    src: "o.c".into(),
                    dest: String::new(),
                },
            ],
            ..plain
        };
        assert_eq!(transformed.index_name(), "O o.b\u{c}o.c sb.b\u{c}>");
        assert_eq!(transformed.filters(), ["o.b", "o.c"]);
    }

    #[test]
    fn a_sourced_message_drops_what_must_not_be_checked_again() {
        let own = b"NATS/1.0\r\nX-H: 1\r\nNats-Expected-Last-Sequence: 4\r\nNats-Stream-Source: A 1 > > a\r\nNats-Msg-Id: m\r\n\r\n";
        let h = sourced_headers(own, "O 4 o.b sb.b o.b PrXXFhN5");
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "NATS/1.0\r\nX-H: 1\r\nNats-Msg-Id: m\r\nNats-Stream-Source: O 4 o.b sb.b o.b PrXXFhN5\r\n\r\n"
        );
        assert_eq!(
            sourced_headers(b"", "O 1 > > o.a"),
            b"NATS/1.0\r\nNats-Stream-Source: O 1 > > o.a\r\n\r\n"
        );
    }

    #[test]
    fn source_headers_parse_back_to_their_index_name() {
        assert_eq!(
            parse_source_header("O 4 o.b sb.b o.b PrXXFhN5"),
            Some(("O o.b sb.b".into(), 4, Some("PrXXFhN5")))
        );
        assert_eq!(parse_source_header("O 4 >"), None);
        assert_eq!(parse_source_header("O x > > a"), None);
    }

    #[test]
    fn mirrors_and_sources_are_checked_as_nats_server_checks_them() {
        let check = |json: &str| {
            let mut c: StreamConfig = serde_json::from_str(json).unwrap();
            check_config(&mut c).err().map(|e| e.err_code)
        };
        assert_eq!(check(r#"{"name":"M","mirror":{"name":"O"}}"#), None);
        assert_eq!(
            check(r#"{"name":"M","subjects":["m"],"mirror":{"name":"O"}}"#),
            Some(10034)
        );
        assert_eq!(
            check(r#"{"name":"M","mirror":{"name":"O"},"sources":[{"name":"O"}]}"#),
            Some(10031)
        );
        assert_eq!(
            check(r#"{"name":"M","first_seq":5,"mirror":{"name":"O"}}"#),
            Some(10143)
        );
        assert_eq!(
            check(r#"{"name":"S","sources":[{"name":"O"},{"name":"O"}]}"#),
            Some(10140)
        );
        assert_eq!(
            check(
                r#"{"name":"S","sources":[{"name":"O","filter_subject":"a","subject_transforms":[{"src":"a","dest":"b"}]}]}"#
            ),
            Some(10144)
        );
        assert_eq!(
            check(r#"{"name":"S","sources":[{"name":"O.x"}]}"#),
            Some(10141)
        );
        assert_eq!(
            check(
                r#"{"name":"S","sources":[{"name":"O","external":{"api":"$JS.x.API","deliver":""}}]}"#
            ),
            Some(10052)
        );
        let mut c: StreamConfig = serde_json::from_str(
            r#"{"name":"S","sources":[{"name":"O","opt_start_time":"2020-01-01T00:00:00.000Z"}]}"#,
        )
        .unwrap();
        check_config(&mut c).unwrap();
        assert_eq!(
            c.sources[0].opt_start_time.as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
    }
}
