//! natrix-runtime: the production driver around `natrix-core`, and the
//! `natrix` binary.
//!
//! It owns everything the core must not touch: sockets (a tokio listener,
//! one reader and one writer task per connection, vectored writes), the
//! clock (passed into the core as `Now`), OS randomness (one seed at start),
//! signals, the pid and ports files, logging in nats-server's format, the
//! nats-server-compatible command line, and the disk (the storage thread
//! that executes the core's storage operations).
//!
//! What it is not: a place for decisions. Protocol handling, limits, routing
//! and timeouts live in the core; this crate only carries bytes and time in
//! and actions out.

pub mod cli;
pub mod config_file;
mod conn_io;
pub mod driver;
pub mod jetstream;
pub mod logger;
pub mod memory;
pub mod monitor;
pub mod signal;
pub mod storage;
pub mod tls;
