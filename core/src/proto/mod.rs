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
pub use parser::{Limits, Op, ParseError, Parser, Pub};
pub use server_ops::{ServerOp, ServerOpParser};
