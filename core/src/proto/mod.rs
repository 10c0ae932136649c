//! The NATS client protocol: a resumable zero-copy parser, the client's
//! `CONNECT` options, the server's `INFO`, and encoders for what the server
//! sends.

pub mod client;
pub mod connect;
pub mod encode;
pub mod headers;
pub mod info;
pub mod parser;
pub mod server_ops;

pub use connect::ConnectOptions;
pub use headers::Headers;
pub use info::ServerInfo;
pub use parser::{Limits, Op, ParseError, Parser, Pub, Routed};
pub use server_ops::{ServerOp, ServerOpParser};

/// Trims spaces and tabs from both ends.
pub(crate) fn trim_blank(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t'))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &b[start..end]
}
