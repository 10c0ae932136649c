//! A stream's configuration as the `$JS.API` speaks it: the JSON nats-server
//! takes and returns (field names, field order, defaults), and the checks
//! `STREAM.CREATE` and `STREAM.UPDATE` apply before anything is stored.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::subject;

/// Longest stream name nats-server accepts.
pub(crate) const NAME_MAX: usize = 255;
/// Longest description.
const DESCRIPTION_MAX: usize = 4 * 1024;
/// The duplicate window when none is asked for: two minutes.
pub(crate) const DUPLICATE_WINDOW_DEFAULT_NS: i64 = 120_000_000_000;
/// Neither the duplicate window nor max age may be shorter than 100 ms.
const WINDOW_MIN_NS: i64 = 100_000_000;
const REPLICAS_MAX: i64 = 5;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &i64) -> bool {
    *n == 0
}
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// `consumer_limits`: kept and echoed; consumers apply them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConsumerLimits {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inactive_threshold: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_ack_pending: i64,
}

/// `subject_transform`: subjects matching `src` are stored as `dest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubjectTransform {
    #[serde(default)]
    pub src: String,
    #[serde(default)]
    pub dest: String,
}

impl SubjectTransform {
    /// The transform, with an empty source meaning every subject.
    pub(crate) fn compile(
        &self,
    ) -> Result<crate::mapping::Transform, crate::mapping::MappingError> {
        let src = if self.src.is_empty() { ">" } else { &self.src };
        crate::mapping::Transform::new(src, &self.dest)
    }
}

/// `republish`: once stored, messages on `src` are published again on
/// `dest` with where they are stored in headers (only the headers with
/// `headers_only`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Republish {
    #[serde(default)]
    pub src: String,
    pub dest: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_only: bool,
}

/// `StreamConfig` with nats-server's JSON names, in its field order (the
/// order responses print them in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub max_consumers: i64,
    #[serde(default)]
    pub max_msgs: i64,
    #[serde(default)]
    pub max_bytes: i64,
    #[serde(default)]
    pub max_age: i64,
    #[serde(default)]
    pub max_msgs_per_subject: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_msg_size: i64,
    #[serde(default)]
    pub discard: Discard,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub num_replicas: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_ack: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duplicate_window: i64,
    /// Where a clustered server would put the stream; one server keeps
    /// it as asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// The stream this one mirrors, and the streams it sources (see
    /// `source.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<super::source::StreamSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<super::source::StreamSource>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub first_seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<Republish>,
    #[serde(default)]
    pub allow_direct: bool,
    #[serde(default)]
    pub mirror_direct: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub discard_new_per_subject: bool,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub deny_delete: bool,
    #[serde(default)]
    pub deny_purge: bool,
    #[serde(default)]
    pub allow_rollup_hdrs: bool,
    #[serde(default)]
    pub consumer_limits: ConsumerLimits,
    #[serde(default)]
    pub allow_msg_ttl: bool,
    /// How long a marker left where age or a TTL removed a subject's last
    /// message lives, in nanoseconds (0: no markers).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subject_delete_marker_ttl: i64,
    /// Distributed counters: publishes carry `Nats-Incr` (counter.rs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_msg_counter: bool,
    /// Atomic batch publish (batch.rs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_atomic: bool,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// What natrix does not do yet; a request that sets one is refused
    /// rather than half served.
    #[serde(default, skip_serializing)]
    pub allow_msg_schedules: bool,
    /// `"default"` (every write synced before its ack: natrix's only
    /// mode) or `"async"` (not served).
    #[serde(default, skip_serializing)]
    pub persist_mode: String,
    #[serde(default, skip_serializing)]
    pub allow_batched: bool,
}

/// `placement`: the cluster and server tags a stream asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Placement {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preferred: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Retention {
    #[default]
    Limits,
    Interest,
    #[serde(rename = "workqueue")]
    WorkQueue,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Discard {
    #[default]
    Old,
    New,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Storage {
    #[default]
    File,
    Memory,
}

/// How a file stream stores messages: `s2` compresses each message's
/// headers and payload (natrix writes Snappy, the block format S2 extends)
/// where that makes it smaller. A memory stream keeps the setting and
/// ignores it, as nats-server does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Compression {
    #[default]
    None,
    S2,
}

impl<'de> Deserialize<'de> for Compression {
    /// Exactly `"none"` or `"s2"`; anything else in nats-server's words.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "none" => Ok(Compression::None),
            "s2" => Ok(Compression::S2),
            _ => Err(serde::de::Error::custom("unknown compression algorithm")),
        }
    }
}

/// A name nats-server takes for a stream (or consumer): not empty, no
/// whitespace, no `.`, `*`, `>`, `/` or `\`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .bytes()
            .any(|b| b.is_ascii_whitespace() || matches!(b, b'.' | b'*' | b'>' | b'/' | b'\\'))
}

/// Whether some subject matches both `a` and `b` (nats-server's
/// `SubjectsCollide`).
pub(crate) fn subjects_collide(a: &str, b: &str) -> bool {
    let (mut ta, mut tb) = (a.split('.'), b.split('.'));
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) => {
                if x != y && x != "*" && y != "*" {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn invalid(text: &str) -> ApiError {
    ApiError::invalid_config(text)
}

impl StreamConfig {
    /// The JetStream API level this configuration needs (nats-server's
    /// `_nats.req.level`).
    pub(crate) fn required_api_level(&self) -> i64 {
        let mut level = 0;
        if self.allow_msg_ttl || self.subject_delete_marker_ttl > 0 {
            level = 1;
        }
        if self.allow_msg_counter
            || self.allow_atomic
            || self.allow_msg_schedules
            || self.persist_mode == "async"
        {
            level = 2;
        }
        if self.allow_batched {
            level = 4;
        }
        level
    }

    /// Equal but for the metadata stamps (a stream created before they
    /// were kept is the same stream).
    pub(crate) fn same_apart_from_stamps(&self, other: &StreamConfig) -> bool {
        super::level::stamps::same_but_stamps(self, other, |c| &mut c.metadata)
    }

    /// [`checked_as`](Self::checked_as) without `pedantic`.
    #[cfg(test)]
    pub(crate) fn checked(self) -> Result<StreamConfig, ApiError> {
        self.checked_as(false)
    }

    /// The configuration with nats-server's defaults filled in, or why it
    /// cannot be a stream (`checkStreamCfg`); with `pedantic` (the
    /// request's flag), what would be adjusted is refused instead.
    pub(crate) fn checked_as(mut self, pedantic: bool) -> Result<StreamConfig, ApiError> {
        if !is_valid_name(&self.name) {
            return Err(invalid(
                "stream name is required and can not contain '.', '*', '>'",
            ));
        }
        if self.name.len() > NAME_MAX {
            return Err(invalid(&format!(
                "stream name is too long, maximum allowed is {NAME_MAX}"
            )));
        }
        if self.description.len() > DESCRIPTION_MAX {
            return Err(invalid(&format!(
                "stream description is too long, maximum allowed is {DESCRIPTION_MAX}"
            )));
        }
        // nats-server checks counters before it turns TTLs on for markers.
        if let Some(why) = super::counter::config_refused(&self) {
            return Err(invalid(why));
        }
        self.check_delete_markers(pedantic)?;
        if self.allow_atomic && self.mirror.is_some() {
            return Err(ApiError::new(
                400,
                10198,
                "stream mirrors can not also use atomic publishing".into(),
            ));
        }
        if self.allow_msg_schedules
            || self.allow_batched
            || !matches!(self.persist_mode.as_str(), "" | "default")
        {
            return Err(invalid(
                "natrix does not support this stream option yet (fast batches, schedules, async persistence)",
            ));
        }
        if let Some(t) = &self.subject_transform {
            if !t.src.is_empty() && !subject::is_valid_subject(t.src.as_bytes()) {
                return Err(ApiError::new(
                    400,
                    10155,
                    format!("stream transform source: invalid subject {}", t.src),
                ));
            }
            if let Err(e) = t.compile() {
                return Err(ApiError::new(
                    400,
                    10156,
                    format!("stream transform: {}", e.0),
                ));
            }
        }
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        if self.num_replicas > REPLICAS_MAX {
            return Err(invalid(&format!("maximum replicas is {REPLICAS_MAX}")));
        }
        if self.num_replicas < 0 {
            return Err(ApiError::new(
                400,
                10133,
                "replicas count cannot be negative".into(),
            ));
        }
        for limit in [
            &mut self.max_msgs,
            &mut self.max_msgs_per_subject,
            &mut self.max_bytes,
            &mut self.max_msg_size,
            &mut self.max_consumers,
        ] {
            if *limit <= 0 {
                *limit = -1;
            }
        }
        if self.max_age < 0 {
            return Err(invalid("max age needs to be >= 100ms"));
        }
        // Mirrors and sourcing streams keep no duplicate window unless
        // asked (nats-server's rule).
        if self.duplicate_window == 0 && self.mirror.is_none() && self.sources.is_empty() {
            self.duplicate_window =
                if self.max_age != 0 && self.max_age < DUPLICATE_WINDOW_DEFAULT_NS {
                    self.max_age
                } else {
                    DUPLICATE_WINDOW_DEFAULT_NS
                };
        }
        if self.max_age > 0 && self.max_age < WINDOW_MIN_NS {
            return Err(invalid("max age needs to be >= 100ms"));
        }
        if self.duplicate_window < 0 {
            return Err(invalid("duplicates window can not be negative"));
        }
        if self.max_age != 0 && self.duplicate_window > self.max_age {
            return Err(invalid("duplicates window can not be larger then max age"));
        }
        if self.duplicate_window > 0 && self.duplicate_window < WINDOW_MIN_NS {
            return Err(invalid("duplicates window needs to be >= 100ms"));
        }
        if self.deny_purge && self.allow_rollup_hdrs {
            return Err(invalid("roll-ups require the purge permission"));
        }
        if self.discard_new_per_subject {
            if self.discard != Discard::New {
                return Err(invalid(
                    "discard new per subject requires discard new policy to be set",
                ));
            }
            if self.max_msgs_per_subject <= 0 {
                return Err(invalid(
                    "discard new per subject requires max msgs per subject > 0",
                ));
            }
        }
        super::source::check_config(&mut self)?;
        if self.subjects.is_empty() && self.mirror.is_none() && self.sources.is_empty() {
            self.subjects.push(self.name.clone());
        }
        if let Some(r) = &mut self.republish {
            if r.src.is_empty() {
                r.src = ">".into();
            }
            if self.subjects.iter().any(|s| subjects_collide(&r.dest, s)) {
                return Err(invalid(
                    "stream configuration for republish destination forms a cycle",
                ));
            }
            if crate::mapping::Transform::new(&r.src, &r.dest).is_err() {
                return Err(invalid(&format!(
                    "stream configuration for republish with transform from '{}' to '{}' not valid",
                    r.src, r.dest
                )));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.subjects {
            if !seen.insert(s.as_str()) {
                return Err(invalid("duplicate subjects detected"));
            }
            if subject::is_subset_match(s.as_bytes(), b"$JS.API.>") {
                return Err(invalid("subjects overlap with jetstream api"));
            }
            if !subject::is_valid_subject(s.as_bytes()) {
                return Err(invalid("invalid subject"));
            }
        }
        for (i, a) in self.subjects.iter().enumerate() {
            for b in &self.subjects[i + 1..] {
                if subjects_collide(a, b) {
                    return Err(invalid("subjects overlap"));
                }
            }
        }
        Ok(self)
    }

    /// `subject_delete_marker_ttl`: at least a second; markers need TTLs
    /// and roll-ups, which are turned on (off pedantic), and are not for
    /// mirrors.
    fn check_delete_markers(&mut self, pedantic: bool) -> Result<(), ApiError> {
        if self.subject_delete_marker_ttl < 0 {
            return Err(invalid("subject delete marker TTL must not be negative"));
        }
        if self.subject_delete_marker_ttl == 0 {
            return Ok(());
        }
        if self.subject_delete_marker_ttl < 1_000_000_000 {
            return Err(invalid(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        if !self.allow_msg_ttl {
            if pedantic {
                return Err(invalid(
                    "subject delete marker cannot be set if message TTLs are disabled",
                ));
            }
            self.allow_msg_ttl = true;
        }
        if !self.allow_rollup_hdrs {
            if pedantic {
                return Err(invalid(
                    "subject delete marker cannot be set if roll-ups are disabled",
                ));
            }
            (self.allow_rollup_hdrs, self.deny_purge) = (true, false);
        }
        if self.mirror.is_some() {
            return Err(invalid("subject delete markers forbidden on mirrors"));
        }
        Ok(())
    }

    /// Why `new` cannot replace `self` (`STREAM.UPDATE`), if it cannot.
    pub(crate) fn update_refused(&self, new: &StreamConfig) -> Option<&'static str> {
        if new.storage != self.storage {
            return Some("stream configuration update can not change storage type");
        }
        if new.retention != self.retention {
            return Some("stream configuration update can not change retention policy");
        }
        if new.num_replicas != self.num_replicas {
            return Some("stream configuration update can not change replicas");
        }
        if self.sealed && !new.sealed {
            return Some("stream configuration update can not unseal a sealed stream");
        }
        if self.deny_delete && !new.deny_delete {
            return Some("stream configuration update can not cancel deny message deletes");
        }
        if self.deny_purge && !new.deny_purge {
            return Some("stream configuration update can not cancel deny purge");
        }
        if self.allow_msg_ttl && !new.allow_msg_ttl {
            return Some("message TTL status can not be disabled");
        }
        if self.allow_msg_counter != new.allow_msg_counter {
            return Some("stream configuration update can not change message counter setting");
        }
        None
    }

    /// The limits the store enforces.
    pub(crate) fn store_config(&self) -> natrix_storage::StreamConfig {
        let positive = |n: i64| u64::try_from(n).ok().filter(|&n| n > 0);
        natrix_storage::StreamConfig {
            max_msgs: positive(self.max_msgs),
            max_bytes: positive(self.max_bytes),
            // Where TTLs are allowed the core applies max age itself (a
            // `never` TTL outlives it, a removal may leave a marker).
            max_age_ms: positive(self.max_age / 1_000_000).filter(|_| !self.allow_msg_ttl),
            max_msgs_per_subject: positive(self.max_msgs_per_subject),
            memory: self.storage == Storage::Memory,
            compress: self.compression == Compression::S2,
            ..natrix_storage::StreamConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> StreamConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_are_filled_in_as_nats_server_does() {
        let c = parse(r#"{"name":"MINI","max_msgs":-5}"#).checked().unwrap();
        assert_eq!(c.subjects, ["MINI"]);
        assert_eq!((c.max_msgs, c.max_bytes, c.max_msg_size), (-1, -1, -1));
        assert_eq!(c.duplicate_window, DUPLICATE_WINDOW_DEFAULT_NS);
        assert_eq!(c.num_replicas, 1);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"name":"MINI","subjects":["MINI"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false}"#
        );
    }

    /// nats-server 2.15.1's text for a counter stream with markers (the
    /// counter check comes before markers turn TTLs on), less metadata.
    #[test]
    fn counters_show_after_ttls_as_in_nats_server() {
        let c = parse(
            r#"{"name":"E2b","subjects":["e2b"],"allow_msg_counter":true,"subject_delete_marker_ttl":5000000000}"#,
        )
        .checked()
        .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"name":"E2b","subjects":["e2b"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":true,"subject_delete_marker_ttl":5000000000,"allow_msg_counter":true}"#
        );
    }

    #[test]
    fn a_short_max_age_bounds_the_duplicate_window() {
        let c = parse(r#"{"name":"A","max_age":1000000000}"#)
            .checked()
            .unwrap();
        assert_eq!(c.duplicate_window, 1_000_000_000);
        let e = parse(r#"{"name":"A","max_age":-1}"#).checked().unwrap_err();
        assert_eq!(e.description, "max age needs to be >= 100ms");
    }

    #[test]
    fn bad_names_and_subjects_are_refused() {
        for name in ["", "a.b", "a*", "a>", "a b", "a/b"] {
            let e = StreamConfig {
                name: name.into(),
                ..parse("{}")
            }
            .checked()
            .unwrap_err();
            assert_eq!(e.err_code, 10052, "{name}");
        }
        let e = parse(r#"{"name":"A","subjects":["a.>","a.b"]}"#)
            .checked()
            .unwrap_err();
        assert_eq!(e.description, "subjects overlap");
        let e = parse(r#"{"name":"A","subjects":["$JS.API.x"]}"#)
            .checked()
            .unwrap_err();
        assert_eq!(e.description, "subjects overlap with jetstream api");
    }

    #[test]
    fn subjects_collide_when_one_subject_matches_both() {
        assert!(subjects_collide("orders.>", "orders.new"));
        assert!(subjects_collide("a.*.c", "a.b.*"));
        assert!(subjects_collide("a.b", "a.b"));
        assert!(!subjects_collide("a.b", "a.c"));
        assert!(!subjects_collide("a.>", "a"));
        assert!(!subjects_collide("a.*", "a.b.c"));
        assert!(subjects_collide(">", "x.y"));
    }
}
