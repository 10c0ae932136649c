//! `jetstream` and the top-level `store_dir` of a configuration file, with
//! nats-server's spellings (`jetstream: enabled`, `max_mem`, `"10G"`), its
//! checks and its error texts.
//!
//! nats-server keeps "JetStream on" apart from its settings: a file may give
//! a store directory and limits and leave JetStream off (`enabled: false`,
//! or a top-level `store_dir` alone), and `-js` then turns it on with them.
//! [`FileJetStream`] carries both until the whole file is read.

use std::time::Duration;

use super::JetStreamOptions;
use crate::conf::{ConfError, Entry, Field, Value, Warning};

/// Keys of nats-server's `jetstream {}` that natrix does not implement yet,
/// with the feature they belong to.
const NOT_YET: &[(&[&str], &str)] = &[
    (
        &[
            "key",
            "ek",
            "encryption_key",
            "prev_key",
            "prev_ek",
            "prev_encryption_key",
            "cipher",
        ],
        "encryption at rest",
    ),
    (&["tpm"], "encryption keys held in a TPM"),
    (&["strict"], "a choice of JetStream API strictness"),
    (&["limits"], "server-wide JetStream API limits"),
    (&["extension_hint"], "leaf nodes"),
    (
        &[
            "unique_tag",
            "max_outstanding_catchup",
            "meta_compact",
            "meta_compact_size",
            "meta_compact_sync",
        ],
        "clustering",
    ),
    (
        &["max_buffered_size", "max_buffered_msgs"],
        "stream ingest buffer limits",
    ),
    (
        &["request_queue_limit", "info_queue_limit"],
        "JetStream API queue limits",
    ),
    (&["max_concurrent_io"], "a limit on concurrent disk I/O"),
];

/// What the file says about JetStream so far.
#[derive(Debug, Default)]
pub(super) struct FileJetStream {
    /// `jetstream: enabled`, `jetstream {}` without `enabled: false`.
    pub enabled: bool,
    pub settings: JetStreamOptions,
    /// Any JetStream key was seen (settings worth keeping while off).
    pub seen: bool,
}

impl FileJetStream {
    /// The top-level `store_dir`: nats-server accepts it beside (not as
    /// well as) the block's own.
    pub fn top_level_store_dir(&mut self, entry: &Entry) -> Result<(), ConfError> {
        self.seen = true;
        self.set_store_dir(entry)
    }

    fn set_store_dir(&mut self, entry: &Entry) -> Result<(), ConfError> {
        if !self.settings.store_dir.is_empty() {
            return Err(ConfError::at(
                &entry.key_pos,
                "Duplicate 'store_dir' configuration".to_string(),
            ));
        }
        self.settings.store_dir = entry.field().as_str()?.to_string();
        Ok(())
    }

    /// `jetstream: <bool>`, `jetstream: enabled|disabled`, or the block.
    /// As in nats-server, the first error that stops the block leaves
    /// JetStream as it was; unknown keys are reported and skipped.
    pub fn block(
        &mut self,
        entry: &Entry,
        errors: &mut Vec<ConfError>,
        warnings: &mut Vec<Warning>,
    ) {
        self.seen = true;
        let result = match &entry.value.value {
            Value::Bool(on) => Ok(*on),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "enabled" | "enable" => Ok(true),
                "disabled" | "disable" => Ok(false),
                _ => Err(ConfError::at(
                    &entry.key_pos,
                    format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                )),
            },
            Value::Map(m) => m.iter().try_fold(true, |enable, e| {
                self.block_key(e, enable, errors, warnings)
            }),
            other => Err(ConfError::at(
                &entry.key_pos,
                format!(
                    "Expected map, bool or string to define JetStream, got {}",
                    go_type(other)
                ),
            )),
        };
        match result {
            Ok(on) => self.enabled = on,
            Err(e) => errors.push(e),
        }
    }

    /// One key of the block; `enable` is what the block says so far.
    fn block_key(
        &mut self,
        e: &Entry,
        enable: bool,
        errors: &mut Vec<ConfError>,
        warnings: &mut Vec<Warning>,
    ) -> Result<bool, ConfError> {
        let f = e.field();
        match e.key.to_ascii_lowercase().as_str() {
            "store" | "store_dir" | "storedir" => self.set_store_dir(e)?,
            "max_memory_store" | "max_mem_store" | "max_mem" => {
                self.settings.max_memory_store = storage_size(&f)
                    .map_err(|why| ConfError::at(&e.key_pos, format!("max_mem_store {why}")))?;
            }
            "max_file_store" | "max_file" => {
                self.settings.max_file_store = storage_size(&f)
                    .map_err(|why| ConfError::at(&e.key_pos, format!("max_file_store {why}")))?;
            }
            "domain" => self.settings.domain = f.as_str()?.to_string(),
            "strict" => self.settings.strict = f.as_bool()?,
            "enable" | "enabled" => return f.as_bool(),
            "sync" | "sync_interval" => match sync_interval(&f, warnings) {
                Ok(interval) => self.settings.sync_interval = interval,
                // nats-server notes a bad duration and reads on.
                Err(err) => errors.push(err),
            },
            k => {
                if let Some((_, feature)) = NOT_YET.iter().find(|(keys, _)| keys.contains(&k)) {
                    errors.push(super::file::not_yet(e, feature));
                } else if !e.used_as_variable {
                    errors.push(ConfError::at(
                        &e.key_pos,
                        format!("unknown field {:?}", e.key),
                    ));
                }
            }
        }
        Ok(enable)
    }
}

/// `sync_interval`: `"always"` (natrix's default: every write is synced
/// before it is acknowledged) or a duration between syncs. A zero duration
/// leaves no time between a write and its sync: `always`.
fn sync_interval(
    f: &Field<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<Duration>, ConfError> {
    if let Value::String(s) = f.value
        && s.eq_ignore_ascii_case("always")
    {
        return Ok(None);
    }
    let interval = f.as_duration(warnings)?;
    Ok(Some(interval).filter(|d| !d.is_zero()))
}

/// A store size: an integer (the lexer has applied `MB`-style suffixes
/// already), or a string of digits and one of `K`, `M`, `G`, `T` (powers of
/// 1024), as nats-server reads `max_memory_store` and `max_file_store`. A
/// negative size lets the server choose. Err: nats-server's reason.
pub(super) fn storage_size(f: &Field<'_>) -> Result<i64, String> {
    let s = match f.value {
        Value::Integer(n) => return Ok(*n),
        Value::String(s) => s.as_str(),
        _ => return Err("must be int64 or string".to_string()),
    };
    let Some(last) = s.chars().last() else {
        return Ok(0);
    };
    let prefix = &s[..s.len() - last.len_utf8()];
    let n: i64 = prefix.parse().map_err(|e: std::num::ParseIntError| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        format!("strconv.ParseInt: parsing {prefix:?}: {why}")
    })?;
    let shift = match last {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        _ => return Err("sizes defined as strings must end in K, M, G, T".to_string()),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} does not fit in 64 bits"))
}

/// The Go type nats-server names in its messages for a value.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Integer(_) => "int64",
        Value::Float(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Datetime(_) => "time.Time",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
    }
}
