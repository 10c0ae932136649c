//! The advisories of snapshots and restores, as nats-server publishes
//! them in the stream's account: `$JS.EVENT.ADVISORY.STREAM.<event>.<s>`
//! for `SNAPSHOT_CREATE`, `SNAPSHOT_COMPLETE`, `RESTORE_CREATE` and
//! `RESTORE_COMPLETE`, each built only when a client listens.

use serde::Serialize;

use crate::server::{AccountId, Server};

/// Who asked, and when: what the complete advisories repeat.
#[derive(Debug, Clone)]
pub(super) struct Asker {
    pub stream: String,
    pub client: Option<serde_json::Value>,
    pub start_unix_nanos: u64,
}

#[derive(Serialize)]
struct Created<'a, S: Serialize> {
    stream: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<S>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
}

#[derive(Serialize)]
struct Completed<'a> {
    stream: &'a str,
    start: String,
    end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl Server {
    /// `SNAPSHOT_CREATE` (with the stream's state) or `RESTORE_CREATE`
    /// (without).
    pub(super) fn transfer_created<S: Serialize>(
        &mut self,
        account: AccountId,
        event: &str,
        asker: &Asker,
        state: Option<S>,
    ) {
        let subject = format!("$JS.EVENT.ADVISORY.STREAM.{event}.{}", asker.stream);
        let kind = event.to_ascii_lowercase();
        let body = Created {
            stream: &asker.stream,
            state,
            client: asker.client.as_ref(),
            domain: self.domain(),
        };
        self.advise(account, &subject, &kind, body);
    }

    /// `SNAPSHOT_COMPLETE` (with the error, if it failed) or
    /// `RESTORE_COMPLETE` (with the bytes received).
    pub(super) fn transfer_completed(
        &mut self,
        account: AccountId,
        event: &str,
        asker: &Asker,
        bytes: Option<u64>,
        error: Option<&str>,
    ) {
        let subject = format!("$JS.EVENT.ADVISORY.STREAM.{event}.{}", asker.stream);
        let kind = event.to_ascii_lowercase();
        let body = Completed {
            stream: &asker.stream,
            start: crate::time::rfc3339_nanos(asker.start_unix_nanos),
            end: crate::time::rfc3339_nanos(self.now.unix_nanos),
            bytes,
            client: asker.client.as_ref(),
            domain: self.domain(),
            error,
        };
        self.advise(account, &subject, &kind, body);
    }
}
