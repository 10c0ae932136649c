//! The typed server configuration. The runtime fills it from command-line
//! flags (and, with the configuration work, from `nats.conf` or TOML); the
//! core only reads it.

use std::time::Duration;

use crate::auth::Auth;

/// Server options with nats-server's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `server_name`; empty means the server id.
    pub server_name: String,
    /// Client listen host and port, as advertised in INFO.
    pub host: String,
    pub port: u16,
    pub max_payload: u32,
    pub max_pending: u64,
    pub max_control_line: u32,
    pub max_connections: usize,
    /// Per-connection subscription limit; 0 is unlimited.
    pub max_subscriptions: u32,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub write_deadline: Duration,
    pub auth_timeout: Duration,
    /// Lame duck mode closes clients over this long, grace period included.
    pub lame_duck_duration: Duration,
    /// Lame duck mode waits this long before closing the first client.
    pub lame_duck_grace_period: Duration,
    pub auth: Auth,
    pub no_header_support: bool,
    /// Closed connections remembered for monitoring (`max_closed_clients`).
    pub max_closed_clients: usize,
    pub disable_sublist_cache: bool,
    /// Emit debug and trace log actions (`-D`, `-V`).
    pub debug: bool,
    pub trace: bool,
    /// Message payloads in trace lines are cut at this many bytes (0: whole).
    pub max_traced_msg_len: usize,
    /// Test-only: duplicate every Nth delivery (0: never). Exists only with
    /// the `planted-bugs` feature, for proving the simulation's checkers.
    #[cfg(feature = "planted-bugs")]
    pub planted_duplicate_one_in: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_name: String::new(),
            host: "0.0.0.0".into(),
            port: 4222,
            max_payload: 1024 * 1024,
            max_pending: 64 * 1024 * 1024,
            max_control_line: 4096,
            max_connections: 64 * 1024,
            max_subscriptions: 0,
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            write_deadline: Duration::from_secs(10),
            auth_timeout: Duration::from_secs(2),
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            auth: Auth::None,
            no_header_support: false,
            max_closed_clients: 10_000,
            disable_sublist_cache: false,
            debug: false,
            trace: false,
            max_traced_msg_len: 0,
            #[cfg(feature = "planted-bugs")]
            planted_duplicate_one_in: 0,
        }
    }
}
