//! The errors of the `$JS.API`: an HTTP-like code, nats-server's error
//! code (which clients match on) and its exact description.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ApiError {
    pub code: u16,
    pub err_code: u16,
    pub description: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, err_code: u16, description: String) -> Self {
        ApiError {
            code,
            err_code,
            description,
        }
    }

    pub(crate) fn bad_request() -> Self {
        Self::new(400, 10003, "bad request".into())
    }

    /// 10025: the body is not the JSON the request needs.
    pub(crate) fn invalid_json(err: &serde_json::Error) -> Self {
        Self::new(400, 10025, format!("invalid JSON: {err}"))
    }

    /// 10052: the stream configuration is refused, for `text`.
    pub(crate) fn invalid_config(text: &str) -> Self {
        Self::new(500, 10052, text.into())
    }

    pub(crate) fn stream_not_found() -> Self {
        Self::new(404, 10059, "stream not found".into())
    }

    pub(crate) fn name_mismatch() -> Self {
        Self::new(
            400,
            10056,
            "stream name in subject does not match request".into(),
        )
    }

    pub(crate) fn name_in_use() -> Self {
        Self::new(
            400,
            10058,
            "stream name already in use with a different configuration".into(),
        )
    }

    pub(crate) fn subjects_overlap() -> Self {
        Self::new(
            400,
            10065,
            "subjects overlap with an existing stream".into(),
        )
    }

    pub(crate) fn replicas_not_supported() -> Self {
        Self::new(
            500,
            10074,
            "replicas > 1 not supported in non-clustered mode".into(),
        )
    }

    pub(crate) fn consumer_not_found() -> Self {
        Self::new(404, 10014, "consumer not found".into())
    }

    pub(crate) fn no_message_found() -> Self {
        Self::new(404, 10037, "no message found".into())
    }

    /// 10077: the store refused or failed a write.
    pub(crate) fn store_failed(text: &str) -> Self {
        Self::new(503, 10077, text.into())
    }

    pub(crate) fn message_too_large() -> Self {
        Self::new(400, 10054, "message size exceeds maximum allowed".into())
    }

    pub(crate) fn stream_mismatch() -> Self {
        Self::new(400, 10060, "expected stream does not match".into())
    }

    pub(crate) fn wrong_last_sequence(seq: u64) -> Self {
        Self::new(400, 10071, format!("wrong last sequence: {seq}"))
    }

    pub(crate) fn wrong_last_msg_id(id: &str) -> Self {
        Self::new(400, 10070, format!("wrong last msg ID: {id}"))
    }

    pub(crate) fn sealed() -> Self {
        Self::new(400, 10109, "invalid operation on sealed stream".into())
    }

    pub(crate) fn purge_denied() -> Self {
        Self::new(500, 10110, "stream purge not permitted".into())
    }

    pub(crate) fn delete_denied() -> Self {
        Self::msg_delete_failed("message delete not permitted")
    }

    pub(crate) fn temporarily_unavailable() -> Self {
        Self::new(
            503,
            10008,
            "JetStream system temporarily unavailable".into(),
        )
    }

    /// 10057: a message delete failed, for `text`.
    pub(crate) fn msg_delete_failed(text: &str) -> Self {
        Self::new(500, 10057, text.into())
    }

    /// 10111: a roll-up was refused, for `text`.
    pub(crate) fn rollup_failed(text: &str) -> Self {
        Self::new(500, 10111, text.into())
    }
}
