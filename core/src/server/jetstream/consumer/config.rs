//! A consumer's configuration as the `$JS.API` speaks it: nats-server's
//! JSON names and field order, the defaults it fills in, and the checks
//! `CONSUMER.CREATE` applies (with their exact error codes).

use serde::{Deserialize, Serialize};

use super::super::config::{Retention, StreamConfig, is_valid_name};
use super::super::error::ApiError;
use crate::subject;

/// An explicit or "all" ack waits this long before redelivery by default.
pub(crate) const ACK_WAIT_DEFAULT_NS: i64 = 30_000_000_000;
/// Pull requests a consumer queues by default.
pub(crate) const MAX_WAITING_DEFAULT: i64 = 512;
/// Outstanding acks a consumer allows by default.
pub(crate) const MAX_ACK_PENDING_DEFAULT: i64 = 1000;
/// An ephemeral consumer without interest goes after this long by default.
pub(crate) const INACTIVE_DEFAULT_NS: i64 = 5_000_000_000;
const HEARTBEAT_MIN_NS: i64 = 100_000_000;
const DESCRIPTION_MAX: usize = 4 * 1024;
const METADATA_MAX: usize = 128 * 1024;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i64) -> bool {
    *n == 0
}
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DeliverPolicy {
    #[default]
    All,
    Last,
    New,
    #[serde(rename = "by_start_sequence")]
    ByStartSequence,
    #[serde(rename = "by_start_time")]
    ByStartTime,
    #[serde(rename = "last_per_subject")]
    LastPerSubject,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AckPolicy {
    #[default]
    None,
    All,
    Explicit,
    FlowControl,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReplayPolicy {
    #[default]
    Instant,
    Original,
}

/// `ConsumerConfig` with nats-server's JSON names, in its field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ConsumerConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub durable_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub deliver_policy: DeliverPolicy,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub opt_start_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    pub ack_policy: AckPolicy,
    #[serde(skip_serializing_if = "is_zero")]
    pub ack_wait: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_deliver: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<i64>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    pub replay_policy: ReplayPolicy,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub rate_limit_bps: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sample_freq: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_waiting: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub flow_control: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub headers_only: bool,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_batch: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_expires: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_bytes: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub idle_heartbeat: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_false")]
    pub mem_storage: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub direct: bool,
    /// Set on the consumers a stream's sources read through.
    #[serde(skip_serializing_if = "is_false")]
    pub sourcing: bool,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_until: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    #[serde(skip_serializing_if = "PriorityPolicy::is_none")]
    pub priority_policy: PriorityPolicy,
    /// How long a pinned client keeps its pin without a new request
    /// (nanoseconds; nats-server's `PinnedTTL`).
    #[serde(skip_serializing_if = "is_zero")]
    pub priority_timeout: i64,
}

/// Which of a consumer's waiting pull requests gets the next message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PriorityPolicy {
    /// In arrival order, one message each in turn.
    #[default]
    None,
    /// Only requests whose `min_pending`/`min_ack_pending` the consumer
    /// has reached (or that set neither).
    Overflow,
    /// Only the pinned client's requests (the `Nats-Pin-Id` it was given),
    /// until it makes none for `priority_timeout` or is unpinned.
    PinnedClient,
    /// Lower `priority` first (0 to 9), in turn within one priority.
    Prioritized,
}

impl PriorityPolicy {
    fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

/// nats-server's pin lifetime when `priority_timeout` is not set.
pub(crate) const PINNED_TTL_DEFAULT_NS: i64 = 120_000_000_000;

/// A priority group name: 1 to 16 of `A-Z a-z 0-9 / _ = -`.
pub(crate) fn is_valid_group_name(name: &str) -> bool {
    (1..=16).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'=' | b'-'))
}

fn invalid_policy(text: String) -> ApiError {
    ApiError::new(400, 10094, text)
}

/// nats-server's words for a bad priority group name (10162).
pub(crate) const INVALID_GROUP_NAME: &str =
    "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters";

fn bad(err_code: u16, text: &str) -> ApiError {
    ApiError::new(400, err_code, text.into())
}

impl ConsumerConfig {
    /// Whether it is a push consumer.
    pub(crate) fn is_push(&self) -> bool {
        !self.deliver_subject.is_empty()
    }

    /// Its filters (`filter_subject` or `filter_subjects`), none for all.
    pub(crate) fn filters(&self) -> Vec<String> {
        if !self.filter_subject.is_empty() {
            vec![self.filter_subject.clone()]
        } else {
            self.filter_subjects.clone()
        }
    }

    /// `opt_start_time` as wall-clock nanoseconds.
    pub(crate) fn start_time(&self) -> Option<u64> {
        self.opt_start_time
            .as_deref()
            .and_then(crate::time::parse_rfc3339_nanos)
    }

    /// Whether a stored subject passes the filters.
    pub(crate) fn wants(&self, subject: &[u8]) -> bool {
        if !self.filter_subject.is_empty() {
            return subject::matches(self.filter_subject.as_bytes(), subject);
        }
        self.filter_subjects.is_empty()
            || self
                .filter_subjects
                .iter()
                .any(|f| subject::matches(f.as_bytes(), subject))
    }

    /// The configuration with nats-server's defaults filled in
    /// (`setConsumerConfigDefaults`) and checked against its stream
    /// (`checkConsumerCfg`).
    pub(crate) fn checked(mut self, stream: &StreamConfig) -> Result<ConsumerConfig, ApiError> {
        if self.max_deliver == 0 || self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        self.max_waiting = self.max_waiting.max(0);
        if self.max_ack_pending < -1 {
            self.max_ack_pending = -1;
        }
        self.max_batch = self.max_batch.max(0);
        self.max_expires = self.max_expires.max(0);
        self.max_bytes = self.max_bytes.max(0);
        self.idle_heartbeat = self.idle_heartbeat.max(0);
        self.inactive_threshold = self.inactive_threshold.max(0);
        if !self.is_push() && self.max_waiting == 0 {
            self.max_waiting = MAX_WAITING_DEFAULT;
        }
        let acks = matches!(self.ack_policy, AckPolicy::Explicit | AckPolicy::All);
        if self.ack_wait == 0 && acks {
            self.ack_wait = ACK_WAIT_DEFAULT_NS;
        }
        if let Some(&first) = self.backoff.first() {
            self.ack_wait = first;
        }
        if self.max_ack_pending == 0 {
            self.max_ack_pending = stream.consumer_limits.max_ack_pending;
        }
        if self.inactive_threshold == 0 {
            self.inactive_threshold = stream.consumer_limits.inactive_threshold;
        }
        if self.priority_timeout < 0 {
            self.priority_timeout = 0;
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout == 0 {
            self.priority_timeout = PINNED_TTL_DEFAULT_NS;
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            self.max_ack_pending = MAX_ACK_PENDING_DEFAULT;
        }
        self.check(stream)?;
        Ok(self)
    }

    fn check(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        let names = "can not contain '.', '*', '>', '\\', '/'";
        if !self.name.is_empty() && !is_valid_name(&self.name) {
            return Err(ApiError::invalid_config(&format!("consumer name {names}")));
        }
        if !self.durable_name.is_empty() && !is_valid_name(&self.durable_name) {
            return Err(ApiError::invalid_config(&format!(
                "consumer durable name {names}"
            )));
        }
        if self.num_replicas > 0 && self.num_replicas > stream.num_replicas {
            return Err(bad(
                10126,
                "consumer config replica count exceeds parent stream",
            ));
        }
        if self.num_replicas < 0 {
            return Err(bad(10133, "replicas count cannot be negative"));
        }
        if self.backoff.iter().any(|&b| b < 0) {
            return Err(bad(10184, "consumer backoff needs to be positive"));
        }
        if self.ack_wait < 0 {
            return Err(bad(10183, "consumer ack wait needs to be positive"));
        }
        if self.ack_policy == AckPolicy::FlowControl {
            return Err(ApiError::invalid_config(
                "flow control ack policy is not supported",
            ));
        }
        let backoffs = self.backoff.len() as i64;
        if backoffs > 0 && self.max_deliver != -1 && backoffs > self.max_deliver {
            return Err(bad(
                10116,
                "max deliver is required to be > length of backoff values",
            ));
        }
        if self.description.len() > DESCRIPTION_MAX {
            return Err(ApiError::new(
                400,
                10107,
                format!("consumer description is too long, maximum allowed is {DESCRIPTION_MAX}"),
            ));
        }
        if self.is_push() {
            let d = self.deliver_subject.as_bytes();
            if !subject::is_literal(d) {
                return Err(bad(10079, "consumer deliver subject has wildcards"));
            }
            if !subject::is_valid_subject(d) {
                return Err(bad(10112, "invalid push consumer deliver subject"));
            }
            if stream
                .subjects
                .iter()
                .any(|s| subject::matches(s.as_bytes(), d))
            {
                return Err(bad(10081, "consumer deliver subject forms a cycle"));
            }
            if self.max_waiting != 0 {
                return Err(bad(10080, "consumer in push mode can not set max waiting"));
            }
            if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
                return Err(bad(
                    10082,
                    "consumer requires ack policy for max ack pending",
                ));
            }
            if self.idle_heartbeat > 0 && self.idle_heartbeat < HEARTBEAT_MIN_NS {
                return Err(bad(10083, "consumer idle heartbeat needs to be >= 100ms"));
            }
        } else {
            if self.ack_policy == AckPolicy::None && stream.retention == Retention::WorkQueue {
                return Err(bad(
                    10084,
                    "consumer in pull mode requires explicit ack policy on workqueue stream",
                ));
            }
            if self.rate_limit_bps > 0 {
                return Err(bad(
                    10086,
                    "consumer in pull mode can not have rate limit set",
                ));
            }
            if self.idle_heartbeat > 0 {
                return Err(bad(
                    10088,
                    "consumer idle heartbeat requires a push based consumer",
                ));
            }
            if self.flow_control {
                return Err(bad(
                    10089,
                    "consumer flow control requires a push based consumer",
                ));
            }
            if self.max_expires != 0 && self.max_expires < 1_000_000 {
                return Err(bad(
                    10115,
                    "consumer max request expires needs to be >= 1ms",
                ));
            }
        }
        if self.direct {
            return Err(ApiError::invalid_config(
                "direct consumers are not supported",
            ));
        }
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(bad(
                10136,
                "consumer cannot have both FilterSubject and FilterSubjects specified",
            ));
        }
        if !self.filter_subject.is_empty()
            && !subject::is_valid_subject(self.filter_subject.as_bytes())
        {
            return Err(ApiError::invalid_config("invalid subject"));
        }
        if self.filter_subjects.iter().any(String::is_empty) {
            return Err(bad(
                10139,
                "consumer filter in FilterSubjects cannot be empty",
            ));
        }
        let filters = self.filters();
        for (i, f) in filters.iter().enumerate() {
            if !subject::is_valid_subject(f.as_bytes()) {
                return Err(ApiError::invalid_config("invalid subject"));
            }
            let overlaps = filters
                .iter()
                .enumerate()
                .any(|(j, g)| j != i && subject::is_subset_match(f.as_bytes(), g.as_bytes()));
            if overlaps {
                return Err(bad(10138, "consumer subject filters cannot overlap"));
            }
        }
        self.check_start()?;
        if !self.sample_freq.is_empty() {
            let n = self.sample_freq.trim_end_matches('%');
            if n.parse::<u32>().is_err() {
                return Err(ApiError::new(
                    400,
                    10095,
                    format!(
                        "failed to parse consumer sampling configuration: strconv.Atoi: parsing {n:?}: invalid syntax"
                    ),
                ));
            }
        }
        if self.flow_control && self.idle_heartbeat == 0 {
            return Err(bad(
                10108,
                "consumer with flow control also needs heartbeats",
            ));
        }
        if !self.durable_name.is_empty() && !self.name.is_empty() && self.name != self.durable_name
        {
            return Err(bad(
                10132,
                "Consumer Durable and Name have to be equal if both are provided",
            ));
        }
        let metadata: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if metadata > METADATA_MAX {
            return Err(bad(
                10135,
                "consumer metadata exceeds maximum size of 128KB",
            ));
        }
        self.check_priority()?;
        if let Err(why) = super::partition::Partitioning::from_config(self) {
            return Err(invalid_policy(why));
        }
        if self.deliver_policy == DeliverPolicy::ByStartTime && self.start_time().is_none() {
            return Err(invalid_policy(
                "consumer delivery policy is deliver by start time, but optional start time is not a time".into(),
            ));
        }
        Ok(())
    }

    /// nats-server's priority group rules, with its codes.
    fn check_priority(&self) -> Result<(), ApiError> {
        if self.priority_policy == PriorityPolicy::None {
            if !self.priority_groups.is_empty() {
                return Err(bad(
                    10196,
                    "consumer can not have priority groups when policy is none",
                ));
            }
            if self.priority_timeout > 0 {
                return Err(bad(
                    10197,
                    "PinnedTTL cannot be set when PriorityPolicy is none",
                ));
            }
            return Ok(());
        }
        if self.is_push() {
            return Err(bad(
                10178,
                "priority groups can not be used with push consumers",
            ));
        }
        if self.priority_groups.is_empty() {
            return Err(bad(
                10159,
                "Setting PriorityPolicy requires at least one PriorityGroup to be set",
            ));
        }
        for group in &self.priority_groups {
            if group.is_empty() {
                return Err(bad(10161, "Group name cannot be an empty string"));
            }
            if !is_valid_group_name(group) {
                return Err(bad(10162, INVALID_GROUP_NAME));
            }
        }
        Ok(())
    }

    fn check_start(&self) -> Result<(), ApiError> {
        let start = |dp: &str, what: &str| {
            invalid_policy(format!(
                "consumer delivery policy is deliver {dp}, but optional start {what} is also set"
            ))
        };
        let not_set = |dp: &str, what: &str| {
            invalid_policy(format!(
                "consumer delivery policy is deliver {dp}, but optional {what} is not set"
            ))
        };
        let (seq, time) = (self.opt_start_seq > 0, self.opt_start_time.is_some());
        let name = match self.deliver_policy {
            DeliverPolicy::All => "all",
            DeliverPolicy::Last => "last",
            DeliverPolicy::LastPerSubject => "last per subject",
            DeliverPolicy::New => "new",
            DeliverPolicy::ByStartSequence => {
                if !seq {
                    return Err(not_set("by start sequence", "start sequence"));
                }
                if time {
                    return Err(start("by start sequence", "time"));
                }
                return Ok(());
            }
            DeliverPolicy::ByStartTime => {
                if !time {
                    return Err(not_set("by start time", "start time"));
                }
                if seq {
                    return Err(start("by start time", "start sequence"));
                }
                return Ok(());
            }
        };
        if seq {
            return Err(start(name, "sequence"));
        }
        if time {
            return Err(start(name, "time"));
        }
        if self.deliver_policy == DeliverPolicy::LastPerSubject && self.filters().is_empty() {
            return Err(not_set("last per subject", "filter subject"));
        }
        Ok(())
    }

    /// Why `new` cannot replace this configuration, if it cannot
    /// (nats-server's `checkNewConsumerConfig`).
    /// The JetStream API level this configuration needs (nats-server's
    /// `_nats.req.level`): pausing and priority groups are 2.11's.
    pub(crate) fn required_api_level(&self) -> i64 {
        let paused = self
            .pause_until
            .as_deref()
            .is_some_and(|t| !t.is_empty() && !t.starts_with("0001-01-01"));
        let priority = self.priority_policy != PriorityPolicy::None
            || self.priority_timeout != 0
            || !self.priority_groups.is_empty();
        i64::from(paused || priority)
    }

    /// Equal but for the metadata stamps.
    pub(crate) fn same_apart_from_stamps(&self, other: &ConsumerConfig) -> bool {
        crate::server::jetstream::level::stamps::same_but_stamps(self, other, |c| &mut c.metadata)
    }

    pub(crate) fn update_refused(&self, new: &ConsumerConfig) -> Option<String> {
        if self == new {
            return None;
        }
        let what = if self.deliver_policy != new.deliver_policy {
            "deliver policy can not be updated"
        } else if self.opt_start_seq != new.opt_start_seq {
            "start sequence can not be updated"
        } else if self.opt_start_time != new.opt_start_time {
            "start time can not be updated"
        } else if self.ack_policy != new.ack_policy {
            "ack policy can not be updated"
        } else if self.replay_policy != new.replay_policy {
            "replay policy can not be updated"
        } else if self.idle_heartbeat != new.idle_heartbeat {
            "heart beats can not be updated"
        } else if self.flow_control != new.flow_control {
            "flow control can not be updated"
        } else if self.is_push() != new.is_push() {
            if self.is_push() {
                "can not update push consumer to pull based"
            } else {
                "can not update pull consumer to push based"
            }
        } else if self.max_waiting != new.max_waiting {
            "max waiting can not be updated"
        } else if [
            super::partition::PARTITIONS,
            super::partition::PARTITION_KEY,
        ]
        .iter()
        .any(|k| self.metadata.get(*k) != new.metadata.get(*k))
        {
            "partitioning can not be updated"
        } else {
            return None;
        };
        Some(what.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamConfig {
        serde_json::from_str::<StreamConfig>(r#"{"name":"S","subjects":["s.>"]}"#)
            .unwrap()
            .checked()
            .unwrap()
    }

    fn check(json: &str) -> Result<ConsumerConfig, ApiError> {
        serde_json::from_str::<ConsumerConfig>(json)
            .unwrap()
            .checked(&stream())
    }

    #[test]
    fn defaults_are_nats_servers() {
        let c = check(r#"{"durable_name":"D","ack_policy":"explicit"}"#).unwrap();
        let json = String::from_utf8(crate::server::jetstream::go_json(&c)).unwrap();
        assert_eq!(
            json,
            r#"{"durable_name":"D","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0}"#
        );
        let push = check(r#"{"deliver_subject":"in"}"#).unwrap();
        assert_eq!(push.max_waiting, 0);
        assert_eq!(push.ack_wait, 0);
        assert_eq!(push.max_ack_pending, 0);
    }

    #[test]
    fn refusals_carry_nats_servers_codes() {
        let code = |json: &str| check(json).unwrap_err().err_code;
        assert_eq!(code(r#"{"deliver_subject":"s.x"}"#), 10081);
        assert_eq!(code(r#"{"deliver_subject":"a.*"}"#), 10079);
        assert_eq!(
            code(r#"{"deliver_subject":"in","idle_heartbeat":1000}"#),
            10083
        );
        assert_eq!(
            code(r#"{"deliver_subject":"in","flow_control":true}"#),
            10108
        );
        assert_eq!(code(r#"{"idle_heartbeat":1000000000}"#), 10088);
        assert_eq!(code(r#"{"filter_subjects":["s.a","s.*"]}"#), 10138);
        assert_eq!(
            code(r#"{"ack_policy":"explicit","backoff":[1,2,3],"max_deliver":2}"#),
            10116
        );
        assert_eq!(code(r#"{"deliver_policy":"by_start_sequence"}"#), 10094);
        assert_eq!(code(r#"{"deliver_policy":"last_per_subject"}"#), 10094);
        assert_eq!(code(r#"{"durable_name":"a.b"}"#), 10052);
        assert_eq!(code(r#"{"durable_name":"A","name":"B"}"#), 10132);
        assert!(check(r#"{"filter_subject":"s.a"}"#).is_ok());
        assert!(check(r#"{"filter_subjects":["s.a","s.b"]}"#).is_ok());
    }
}
