//! The typed server configuration: [`Options`] for the core, and
//! [`ProcessOptions`] for what only the driver acts on (files, logging, the
//! monitoring listener). The runtime fills both from a configuration file
//! ([`file::apply`], nats.conf or TOML) and then from command-line flags,
//! which win, as in nats-server. The core only reads them.

mod authorization;
pub mod file;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::auth::Auth;

/// Settings the driver acts on: the process's files, its log and the
/// monitoring listener. Plain data: the core performs none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    /// `pid_file`, `-P`: the process id is written here (removed on exit).
    pub pid_file: Option<String>,
    /// `ports_file_dir`: `<exe>_<pid>.ports` is written here.
    pub ports_file_dir: Option<String>,
    /// `log_file`, `-l`: log here instead of stderr.
    pub log_file: Option<String>,
    /// `logtime`, `-T`: timestamps in log lines.
    pub log_time: bool,
    /// `log_size_limit`: rotate the log file past this many bytes (0: never).
    pub log_size_limit: u64,
    /// `http: host:port`: the monitoring host (default: the client host).
    pub http_host: Option<String>,
    /// `http_port`, `-m`: HTTP monitoring port (0: a free one; `None`: off).
    pub http_port: Option<u16>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            pid_file: None,
            ports_file_dir: None,
            log_file: None,
            log_time: true,
            log_size_limit: 0,
            http_host: None,
            http_port: None,
        }
    }
}

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
    /// `no_auth_user`: clients that send no credentials are this user (from
    /// the users list).
    pub no_auth_user: String,
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
            no_auth_user: String::new(),
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

impl Options {
    /// Whether `INFO` says `auth_required`: auth is on and clients without
    /// credentials are not taken as the `no_auth_user`.
    pub fn advertises_auth(&self) -> bool {
        self.auth.required() && self.no_auth_user.is_empty()
    }

    /// Checks settings that only make sense together, as nats-server does
    /// before starting (and before reloading).
    pub fn validate(&self) -> Result<(), String> {
        if self.no_auth_user.is_empty() {
            return Ok(());
        }
        match &self.auth {
            Auth::Users(u) if u.by_name.contains_key(&self.no_auth_user) => Ok(()),
            Auth::Users(u) if !u.by_name.is_empty() => Err(format!(
                "no_auth_user: \"{}\" not present as user in authorization block or account configuration",
                self.no_auth_user
            )),
            _ => Err(format!(
                "no_auth_user: \"{}\" present, but users are not defined",
                self.no_auth_user
            )),
        }
    }
}
