//! The typed server configuration: [`Options`] for the core, and
//! [`ProcessOptions`] for what only the driver acts on (files, logging, the
//! monitoring listener). The runtime fills both from a configuration file
//! ([`file::apply`], nats.conf or TOML) and then from command-line flags,
//! which win, as in nats-server. The core only reads them.

mod accounts;
mod authorization;
pub mod cluster;
pub mod file;
pub mod gateway;
mod jetstream;
pub mod leafnodes;
#[cfg(test)]
mod tests;
mod tls;

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
    /// `syslog`, `-s`: log to the local syslog daemon.
    pub syslog: bool,
    /// `remote_syslog`, `-r`: log to this syslog server (`udp://host:514`).
    pub remote_syslog: Option<String>,
    /// `http: host:port`: the monitoring host (default: the client host).
    pub http_host: Option<String>,
    /// `http_port`, `-m`: HTTP monitoring port (0: a free one; `None`: off).
    pub http_port: Option<u16>,
    /// `https_port`, `https`, `-ms`: the same endpoints over TLS, with the
    /// certificate of the `tls {}` block (0: a free one; `None`: off).
    pub https_port: Option<u16>,
    /// JetStream settings the file gives while leaving JetStream off
    /// (`jetstream { enabled: false ... }`, or a top-level `store_dir`
    /// alone): `-js` turns JetStream on with them, as in nats-server.
    pub jetstream_off: Option<JetStreamOptions>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            pid_file: None,
            ports_file_dir: None,
            log_file: None,
            log_time: true,
            log_size_limit: 0,
            syslog: false,
            remote_syslog: None,
            http_host: None,
            http_port: None,
            https_port: None,
            jetstream_off: None,
        }
    }
}

/// nats-server's TLS handshake timeout when `tls { timeout }` is not set.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

/// TLS for client connections. Plain data: the driver loads the files and
/// runs the handshake; the core advertises TLS in `INFO`, asks the driver
/// to start the handshake and times it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificate chain and private key of the server.
    pub cert_file: String,
    pub key_file: String,
    /// PEM certificates of the authorities that sign client certificates.
    pub ca_file: Option<String>,
    /// Require a client certificate signed by `ca_file` (`verify`,
    /// `--tlsverify`); advertised as `tls_verify` in `INFO`.
    pub verify: bool,
    /// `verify_and_map`: verify, and take the user a client is from its
    /// certificate (its email, DNS and URI names, then its subject) instead
    /// of the credentials in `CONNECT`.
    pub map: bool,
    /// A handshake not done this long after accept closes the connection.
    pub timeout: Duration,
    /// Handshake before sending `INFO` (nats-server 2.11's client
    /// `handshake_first`), for clients that start TLS at once.
    pub handshake_first: bool,
    /// `insecure`: a server dialing a peer does not check the peer's
    /// certificate (its chain and name). No effect on what is accepted.
    pub insecure: bool,
    /// Where the settings came from (`file:line:col` of the `tls` block,
    /// or empty for flags), to place errors found loading the files.
    pub origin: String,
}

impl TlsOptions {
    /// Certificates and key from these files, no client verification,
    /// nats-server's defaults otherwise.
    pub fn new(cert_file: impl Into<String>, key_file: impl Into<String>) -> Self {
        TlsOptions {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            ca_file: None,
            verify: false,
            map: false,
            timeout: DEFAULT_TLS_TIMEOUT,
            handshake_first: false,
            insecure: false,
            origin: String::new(),
        }
    }
}

/// `jetstream {}`: where streams live and how much they may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamOptions {
    /// `store_dir`, `-sd`: the directory that holds `jetstream/`. Empty
    /// means the system's temporary directory, as in nats-server.
    pub store_dir: String,
    /// `max_memory_store` in bytes; -1 lets the runtime choose (nats-server:
    /// three quarters of the system's memory).
    pub max_memory_store: i64,
    /// `max_file_store` in bytes; -1 lets the runtime choose (nats-server:
    /// the free space of the store's disk, up to 1 TB).
    pub max_file_store: i64,
    /// `domain`: the API is also served on `$JS.<domain>.API.>`.
    pub domain: String,
    /// `sync_interval`: `None` (natrix's default, and `always`) syncs every
    /// write before it is acknowledged; `Some(d)` acknowledges writes once
    /// they reach the page cache and syncs every `d`, nats-server's
    /// default trade (2 minutes there): faster, and a power cut loses up
    /// to `d` of acknowledged messages.
    pub sync_interval: Option<Duration>,
    /// `strict` (on unless set false): `$JS.API` requests with fields
    /// nats-server does not know are refused (10025), as nats-server
    /// refuses them; off, such fields are ignored.
    pub strict: bool,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            store_dir: String::new(),
            max_memory_store: -1,
            max_file_store: -1,
            domain: String::new(),
            sync_interval: None,
            strict: true,
        }
    }
}

impl JetStreamOptions {
    /// nats-server's checks at start: the domain names the API subjects
    /// `$JS.<domain>.API.>`, so it must fit in one subject token.
    pub fn validate(&self) -> Result<(), String> {
        if self.domain.is_empty() {
            return Ok(());
        }
        let api = format!("$JS.{}.API.>", self.domain);
        if !crate::subject::is_valid_subject(api.as_bytes()) {
            return Err(format!(
                "invalid domain name: derived {api:?} is not a valid subject"
            ));
        }
        if self.domain.contains(['.', '*', '>']) {
            return Err("invalid domain name: may not contain ., * or >".to_string());
        }
        Ok(())
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
    /// `authorization { timeout }`; `None` is nats-server's default: 2 s,
    /// or the TLS handshake timeout plus one second when TLS is on.
    pub auth_timeout: Option<Duration>,
    /// Lame duck mode closes clients over this long, grace period included.
    pub lame_duck_duration: Duration,
    /// Lame duck mode waits this long before closing the first client.
    pub lame_duck_grace_period: Duration,
    pub auth: Auth,
    /// `tls {}`, `--tls*`: TLS for client connections (`None`: plaintext).
    pub tls: Option<TlsOptions>,
    /// `no_auth_user`: clients that send no credentials are this user (from
    /// the users list).
    pub no_auth_user: String,
    pub no_header_support: bool,
    /// Closed connections remembered for monitoring (`max_closed_clients`).
    pub max_closed_clients: usize,
    pub disable_sublist_cache: bool,
    /// The configured accounts (`accounts {}`), without `$G`.
    pub accounts: Vec<crate::account::AccountConfig>,
    /// `system_account`: the account of the system's own subjects (`None`:
    /// `$SYS`, created unless configured or turned off).
    pub system_account: Option<String>,
    /// `no_system_account`: no `$SYS` account is created.
    pub no_system_account: bool,
    /// Subject mappings of the global account (`mappings {}`).
    pub mappings: crate::mapping::Mappings,
    /// Monitoring endpoints are served under this path (`http_base_path`).
    pub http_base_path: String,
    /// Emit debug and trace log actions (`-D`, `-V`).
    pub debug: bool,
    pub trace: bool,
    /// Message payloads in trace lines are cut at this many bytes (0: whole).
    pub max_traced_msg_len: usize,
    /// `jetstream {}`, `-js`, `-sd`: JetStream on this server (`None`: off).
    pub jetstream: Option<JetStreamOptions>,
    /// `cluster {}`, `--cluster`, `--routes`: routes to the other servers
    /// of a cluster (`None`: a server on its own).
    pub cluster: Option<cluster::ClusterOptions>,
    /// `leafnodes {}`: a hub's leaf node listener and the remotes a leaf
    /// node dials (`None`: neither).
    pub leafnodes: Option<leafnodes::LeafNodeOptions>,
    /// `gateway {}`: this cluster's gateways to the other clusters of a
    /// super-cluster (`None`: none).
    pub gateway: Option<gateway::GatewayOptions>,
    /// Test-only: a bug planted on purpose so the simulation can prove its
    /// checkers catch it. Never set in production (no configuration file or
    /// flag reaches it); `None` costs one predictable branch per delivery.
    pub mutation: Option<Mutation>,
}

/// Test-only: a planted bug and how often it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mutation {
    pub bug: PlantedBug,
    /// Strikes on every `one_in`th delivery the server makes (1: always).
    pub one_in: u64,
}

impl Mutation {
    /// Whether the bug strikes delivery number `n` (counted from 1).
    pub fn strikes(&self, n: u64) -> bool {
        self.one_in <= 1 || n.is_multiple_of(self.one_in)
    }
}

/// The bugs the simulation's mutation suite plants, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlantedBug {
    /// A delivery is counted but never written.
    DropDelivery,
    /// A delivery is written twice.
    Duplicate,
    /// A delivery is written before the message queued just ahead of it.
    Reorder,
    /// A queue group's message goes to a member of another matching group.
    WrongQueueMember,
    /// The last payload byte of a delivery is flipped.
    FlipPayloadByte,
    /// `UNSUB` is acknowledged but the subscription stays.
    DeliverAfterUnsubscribe,
    /// A delivery loses its reply subject.
    DropReply,
    /// A wildcard subscription receives a subject its user may not subscribe to.
    LeakDenied,
    /// A publish to a denied subject is dropped without its `-ERR`.
    DenyWithoutError,
    /// A message also reaches the subscribers of the next account.
    CrossAccount,
    /// A JetStream publish is acknowledged once appended, before the sync
    /// that makes it durable.
    AckBeforeSync,
    /// A recovered stream starts with an empty duplicate window.
    ForgetDedupe,
    /// A stream snapshot leaves out every message whose sequence is 2
    /// more than a multiple of 5.
    SnapshotSkips,
    /// A recovered consumer forgets its saved progress (delivered
    /// sequences, ack floor, pending set) and starts from its deliver
    /// policy's start.
    LoseAckFloor,
    /// An acknowledged message stays pending and is redelivered after its
    /// ack wait.
    RedeliverAcked,
    /// A redelivery read that finds its message drops it from the
    /// redelivery queue without delivering it.
    SkipOnRedelivery,
    /// A consumer delivers what a read found past the stream's durable
    /// sequence.
    DeliverUndurable,
    /// A consumer delivers past its `max_ack_pending`.
    IgnoreMaxAckPending,
    /// A consumer redelivers past its `max_deliver`.
    IgnoreMaxDeliver,
    /// A work-queue stream keeps a message its consumer acknowledged.
    KeepAckedWork,
    /// A read of a subject's last message finds its first one kept.
    StaleLastRead,
    // Key-partitioned consumer groups.
    /// A partition's next message is delivered while its head is still
    /// out (the parked check is skipped).
    PartitionSkipHead,
    /// A group member with no pull request waiting is dropped at once,
    /// without its ack wait's grace: what it holds goes to the new owner.
    PartitionEagerLeave,
    /// A settled head's successor becomes the head but is never read.
    PartitionStall,
    // Priority groups.
    /// A pull request whose pin id is not the consumer's pin is served
    /// (under the current pin) instead of being told `423`.
    PinMismatchServed,
    /// A request carrying the pin no longer keeps it alive: the pin goes
    /// `priority_timeout` after it was given, however busy its client.
    PinNotRenewed,
    /// An overflow consumer serves requests whatever their `min_pending`.
    IgnoreMinPending,
    /// A priority-group consumer drops a message no waiting request may
    /// take yet instead of keeping it for the next one.
    DropUnservable,
    /// A priority-group consumer puts a message no waiting request may
    /// take yet behind the others it read, not in front of them.
    UnservableToBack,
    // Routes (planted in the many-server simulation).
    /// A message that came over a route goes out on the other routes too
    /// (the one-hop rule broken).
    ForwardRoutedToRoute,
    /// A route is not told that the last local subscription to a subject
    /// went (`RS-` dropped).
    DropRouteUnsub,
    /// A queue group's message forwarded to another server's member is
    /// also delivered to a local member.
    QueueTwiceAcrossServers,
    // Leaf nodes and gateways (planted in the many-server simulation).
    /// A message from a leaf node connection goes back on it too.
    EchoToLeaf,
    /// A leaf node connection is told of its own interest too.
    LeafToldOwnInterest,
    /// A message from a gateway goes out on the gateways too.
    GatewayToGateway,
    /// A gateway is not told that the last subscription to a subject
    /// went (`RS-` dropped).
    DropGatewayUnsub,
    /// A leaf node connection's deny lists are not applied to the
    /// messages forwarded on it.
    IgnoreLeafDeny,
    /// A gateway a route tells of is not connected to.
    IgnoreGatewayGossip,
    /// Routes' `permissions { export }` deny is not applied to the
    /// messages sent on them.
    IgnoreRouteExport,
    /// What a hub tells a leaf node is told to its routes too (the other
    /// servers of a leaf node cluster then forward to a queue member that
    /// a route cannot carry up).
    HubInterestToRoutes,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 29] = [
        PlantedBug::DropDelivery,
        PlantedBug::Duplicate,
        PlantedBug::Reorder,
        PlantedBug::WrongQueueMember,
        PlantedBug::FlipPayloadByte,
        PlantedBug::DeliverAfterUnsubscribe,
        PlantedBug::DropReply,
        PlantedBug::LeakDenied,
        PlantedBug::DenyWithoutError,
        PlantedBug::CrossAccount,
        PlantedBug::AckBeforeSync,
        PlantedBug::ForgetDedupe,
        PlantedBug::SnapshotSkips,
        PlantedBug::LoseAckFloor,
        PlantedBug::RedeliverAcked,
        PlantedBug::SkipOnRedelivery,
        PlantedBug::DeliverUndurable,
        PlantedBug::IgnoreMaxAckPending,
        PlantedBug::IgnoreMaxDeliver,
        PlantedBug::KeepAckedWork,
        PlantedBug::StaleLastRead,
        PlantedBug::PartitionSkipHead,
        PlantedBug::PartitionEagerLeave,
        PlantedBug::PartitionStall,
        PlantedBug::PinMismatchServed,
        PlantedBug::PinNotRenewed,
        PlantedBug::IgnoreMinPending,
        PlantedBug::DropUnservable,
        PlantedBug::UnservableToBack,
    ];

    /// The bugs planted in a cluster of servers (the many-server
    /// simulation catches them).
    pub const CLUSTER: [PlantedBug; 11] = [
        PlantedBug::ForwardRoutedToRoute,
        PlantedBug::DropRouteUnsub,
        PlantedBug::QueueTwiceAcrossServers,
        PlantedBug::EchoToLeaf,
        PlantedBug::LeafToldOwnInterest,
        PlantedBug::GatewayToGateway,
        PlantedBug::DropGatewayUnsub,
        PlantedBug::IgnoreLeafDeny,
        PlantedBug::IgnoreGatewayGossip,
        PlantedBug::IgnoreRouteExport,
        PlantedBug::HubInterestToRoutes,
    ];

    /// The bug's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::DropDelivery => "drop",
            PlantedBug::Duplicate => "duplicate",
            PlantedBug::Reorder => "reorder",
            PlantedBug::WrongQueueMember => "wrong-queue-member",
            PlantedBug::FlipPayloadByte => "flip-payload-byte",
            PlantedBug::DeliverAfterUnsubscribe => "deliver-after-unsubscribe",
            PlantedBug::DropReply => "drop-reply",
            PlantedBug::LeakDenied => "leak-denied",
            PlantedBug::DenyWithoutError => "deny-without-error",
            PlantedBug::CrossAccount => "cross-account",
            PlantedBug::AckBeforeSync => "ack-before-sync",
            PlantedBug::SnapshotSkips => "snapshot-skips",
            PlantedBug::ForgetDedupe => "forget-dedupe",
            PlantedBug::LoseAckFloor => "lose-ack-floor",
            PlantedBug::RedeliverAcked => "redeliver-acked",
            PlantedBug::SkipOnRedelivery => "skip-on-redelivery",
            PlantedBug::DeliverUndurable => "deliver-undurable",
            PlantedBug::IgnoreMaxAckPending => "ignore-max-ack-pending",
            PlantedBug::IgnoreMaxDeliver => "ignore-max-deliver",
            PlantedBug::KeepAckedWork => "keep-acked-work",
            PlantedBug::StaleLastRead => "stale-last-read",
            PlantedBug::PartitionSkipHead => "partition-skip-head",
            PlantedBug::PartitionEagerLeave => "partition-eager-leave",
            PlantedBug::PartitionStall => "partition-stall",
            PlantedBug::PinMismatchServed => "pin-mismatch-served",
            PlantedBug::PinNotRenewed => "pin-not-renewed",
            PlantedBug::IgnoreMinPending => "ignore-min-pending",
            PlantedBug::DropUnservable => "drop-unservable",
            PlantedBug::UnservableToBack => "unservable-to-back",
            PlantedBug::ForwardRoutedToRoute => "forward-routed-to-route",
            PlantedBug::DropRouteUnsub => "drop-route-unsub",
            PlantedBug::QueueTwiceAcrossServers => "queue-twice-across-servers",
            PlantedBug::EchoToLeaf => "echo-to-leaf",
            PlantedBug::LeafToldOwnInterest => "leaf-told-own-interest",
            PlantedBug::GatewayToGateway => "gateway-to-gateway",
            PlantedBug::DropGatewayUnsub => "drop-gateway-unsub",
            PlantedBug::IgnoreLeafDeny => "ignore-leaf-deny",
            PlantedBug::IgnoreGatewayGossip => "ignore-gateway-gossip",
            PlantedBug::IgnoreRouteExport => "ignore-route-export",
            PlantedBug::HubInterestToRoutes => "hub-interest-to-routes",
        }
    }

    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL
            .into_iter()
            .chain(PlantedBug::CLUSTER)
            .find(|b| b.name() == name)
    }
}

impl Options {
    /// The time a client has to authenticate (counted from the end of the
    /// TLS handshake when there is one).
    pub fn auth_timeout(&self) -> Duration {
        match (self.auth_timeout, &self.tls) {
            (Some(t), _) => t,
            (None, Some(tls)) => tls.timeout + Duration::from_secs(1),
            (None, None) => Duration::from_secs(2),
        }
    }
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
            auth_timeout: None,
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            auth: Auth::None,
            tls: None,
            no_auth_user: String::new(),
            no_header_support: false,
            max_closed_clients: 10_000,
            disable_sublist_cache: false,
            http_base_path: String::new(),
            mappings: crate::mapping::Mappings::default(),
            accounts: Vec::new(),
            system_account: None,
            no_system_account: false,
            debug: false,
            trace: false,
            max_traced_msg_len: 0,
            jetstream: None,
            cluster: None,
            leafnodes: None,
            gateway: None,
            mutation: None,
        }
    }
}

impl Options {
    /// Whether a password is kept in plain text (nats-server warns about
    /// it at start); with `verify_and_map`, users without a password are
    /// mapped from certificates and do not count.
    pub fn has_plaintext_passwords(&self) -> bool {
        match &self.auth {
            Auth::Users(u) if self.tls.as_ref().is_some_and(|t| t.map) => u
                .by_name
                .values()
                .any(|u| !u.password.is_empty() && !crate::auth::bcrypt::is_bcrypt(&u.password)),
            auth => auth.has_plaintext_passwords(),
        }
    }

    /// Whether `INFO` says `auth_required`: auth is on and clients without
    /// credentials are not taken as the `no_auth_user`.
    pub fn advertises_auth(&self) -> bool {
        self.auth.required() && self.no_auth_user.is_empty()
    }

    /// Checks settings that only make sense together, as nats-server does
    /// before starting (and before reloading).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = &self.system_account
            && name != crate::account::GLOBAL_ACCOUNT
            && !self.accounts.iter().any(|a| &a.name == name)
        {
            return Err("error resolving system account: account missing".to_string());
        }
        if let Some(js) = &self.jetstream {
            js.validate()?;
        }
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
