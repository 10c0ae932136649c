//! natrix-core: the sans-IO state machine at the heart of natrix.
//!
//! Everything the server *decides* lives here: the NATS client protocol
//! (parsing and encoding), subject validation, the subscription trie, the
//! server's connection lifecycle, delivery, limits, authentication and (as they
//! land) clustering, accounts and JetStream. It is fed [`Event`]s with the
//! current time passed in ([`time::Now`]) and answers with [`Action`]s and
//! outbound bytes that the driver writes.
//!
//! What it is not: it performs no I/O, reads no clock, draws no OS randomness
//! and starts no threads. Sockets, files, timers and TLS belong to the driver
//! (`natrix-runtime` in production, `natrix-sim` in simulation). This is
//! enforced by clippy's `disallowed-methods`/`disallowed-types` (see
//! `core/clippy.toml`) and by the `purity` test, so the same code can be run,
//! crashed and replayed deterministically from a seed.

#![forbid(unsafe_code)]
#![recursion_limit = "256"]
// The core writes nothing itself: what it has to say is an `Action::Log`.
#![cfg_attr(
    not(test),
    deny(clippy::print_stdout, clippy::print_stderr, clippy::dbg_macro)
)]

pub mod account;
pub mod auth;
pub mod bytes;
pub mod conf;
pub mod config;
pub mod mapping;
pub mod proto;
pub mod server;
pub mod subject;
pub mod sublist;
pub mod time;

pub use config::Options;
pub use server::{Action, CloseReason, ConnId, Event, Server};
pub use time::{Instant, Now};

/// The nats-server release whose client-visible behaviour natrix implements.
/// Clients gate features on the INFO `version` field, so it is raised only
/// when the newer behaviour has landed.
pub const COMPAT_VERSION: &str = "2.9.10";

/// natrix's own version, sent in INFO as `natrix_version` and printed by
/// `natrix --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Deterministic hash maps: a fixed hasher, so iteration order is the same on
/// every run and every machine.
pub type FastMap<K, V> = hashbrown::HashMap<K, V, rustc_hash::FxBuildHasher>;
