//! The JetStream API level (nats-server 2.11+): the level natrix claims in
//! `$JS.API.INFO`, and the `Nats-Required-Api-Level` header a request can
//! carry to be refused by a server below it.
//!
//! natrix claims level 1, the level of nats-server 2.11's stream features:
//! per-message TTLs and subject delete markers, and the batch and
//! multi-last direct gets. Of level 2 (2.12: counters, atomic batches,
//! schedules, async persistence) it has counters and atomic batches.

use super::error::ApiError;
use crate::server::{AccountId, Server};

/// The API level natrix serves.
pub(crate) const API_LEVEL: i64 = 1;

pub(crate) const REQUIRED_API_LEVEL: &[u8] = b"Nats-Required-Api-Level";

/// Whether a request's header block asks for a level above natrix's, or
/// for one that is not a number (nats-server's `errorOnRequiredApiLevel`).
pub(crate) fn refused(headers: &[u8]) -> bool {
    match super::ttl::go_header(headers, REQUIRED_API_LEVEL) {
        None | Some(b"") => false,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .is_none_or(|level| level > API_LEVEL),
    }
}

/// 10185, as a `412` in the API.
pub(crate) fn required_level() -> ApiError {
    ApiError::new(412, 10185, "JetStream minimum api level required".into())
}

impl Server {
    /// Refuses a request that requires a higher API level, as nats-server
    /// does before anything else: an API request with its kind's error,
    /// a direct get with a `412` status (only where a stream serves
    /// direct gets). False if nothing serves the subject.
    pub(crate) fn refuse_request_level(
        &mut self,
        account: AccountId,
        reply: &[u8],
        tokens: &[&str],
    ) -> bool {
        if let ["DIRECT", "GET", name, ..] = tokens {
            let serves = self
                .stream_id(account, name)
                .is_some_and(|id| self.jetstream.streams[id as usize].config.allow_direct);
            if serves {
                self.refuse_direct_api_level(account, reply);
            }
            return serves;
        }
        let Some(kind) = super::api::response_kind(tokens) else {
            return false;
        };
        self.jetstream.api_total += 1;
        self.refuse_api_level(account, reply, kind);
        true
    }

    /// Refuses an API request of response kind `kind` that requires a
    /// higher API level.
    fn refuse_api_level(&mut self, account: AccountId, reply: &[u8], kind: &str) {
        // The empty fields nats-server prints after the error, by kind.
        let rest = match kind {
            "stream_info" => r#","total":0,"offset":0,"limit":0"#,
            "stream_names" => r#","total":0,"offset":0,"limit":0,"streams":null"#,
            "stream_list" => r#","total":0,"offset":0,"limit":0,"streams":[]"#,
            "stream_purge" => r#","purged":0"#,
            _ => "",
        };
        let error = String::from_utf8(super::go_json(&required_level())).expect("JSON is UTF-8");
        let json = format!(
            r#"{{"type":"io.nats.jetstream.api.v1.{kind}_response","error":{error}{rest}}}"#
        );
        self.jetstream.api_errors += 1;
        self.publish_as_server(account, reply, None, json.as_bytes());
    }

    /// Refuses a direct get that requires a higher API level.
    fn refuse_direct_api_level(&mut self, account: AccountId, reply: &[u8]) {
        let status = b"NATS/1.0 412 Required Api Level\r\n\r\n";
        self.publish_as_server(account, reply, Some(status), b"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_above_natrixs_or_not_a_number_is_refused() {
        let with = |v: &str| format!("NATS/1.0\r\nNats-Required-Api-Level: {v}\r\n\r\n");
        for (value, want) in [
            ("0", false),
            ("1", false),
            ("+1", false),
            ("-3", false),
            ("2", true),
            ("99", true),
            ("abc", true),
            ("1.0", true),
            ("1 ", true),
        ] {
            assert_eq!(refused(with(value).as_bytes()), want, "{value:?}");
        }
        assert!(!refused(b"NATS/1.0\r\nNats-Required-Api-Level:\r\n\r\n"));
        assert!(!refused(b"NATS/1.0\r\nOther: 9\r\n\r\n"));
        assert!(!refused(b"NATS/1.0\r\nnats-required-api-level: 9\r\n\r\n"));
        assert!(!refused(b""));
    }
}

/// The metadata nats-server 2.11+ stamps on stream and consumer
/// configurations: the API level a configuration needs (kept with it)
/// and the server's version and level (added to each response).
pub(crate) mod stamps {
    use std::collections::BTreeMap;

    pub(crate) const REQUIRED_LEVEL: &str = "_nats.req.level";
    const VERSION: &str = "_nats.ver";
    const LEVEL: &str = "_nats.level";

    /// Drops what a response added: a client may send a configuration
    /// back as it read it.
    pub(crate) fn drop_response_stamps(metadata: &mut BTreeMap<String, String>) {
        metadata.remove(VERSION);
        metadata.remove(LEVEL);
    }

    /// Keeps `level` as the level the configuration needs.
    pub(crate) fn require(metadata: &mut BTreeMap<String, String>, level: i64) {
        drop_response_stamps(metadata);
        metadata.insert(REQUIRED_LEVEL.into(), level.to_string());
    }

    /// `metadata` as a response shows it: with the version natrix
    /// answers as (INFO's) and its API level.
    pub(crate) fn shown(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut shown = metadata.clone();
        shown.insert(VERSION.into(), crate::COMPAT_VERSION.into());
        shown.insert(LEVEL.into(), super::API_LEVEL.to_string());
        shown
    }

    /// Whether two configurations are the same but for the stamps in
    /// their `metadata`.
    pub(crate) fn same_but_stamps<T: Clone + PartialEq>(
        a: &T,
        b: &T,
        metadata: impl Fn(&mut T) -> &mut BTreeMap<String, String>,
    ) -> bool {
        let (mut a, mut b) = (a.clone(), b.clone());
        let (ma, mb) = (
            std::mem::take(metadata(&mut a)),
            std::mem::take(metadata(&mut b)),
        );
        a == b && same_unstamped(&ma, &mb)
    }

    /// Whether two metadata maps are the same but for the stamps.
    fn same_unstamped(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
        let unstamped = |m: &BTreeMap<String, String>| {
            m.iter()
                .filter(|(k, _)| ![REQUIRED_LEVEL, VERSION, LEVEL].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        unstamped(a) == unstamped(b)
    }
}
