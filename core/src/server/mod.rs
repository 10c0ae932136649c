//! The `Server`: connections, their lifecycle and limits, fed events and
//! answering with actions.
//!
//! The run loop contract (for every driver): [`Server::handle`] is the one
//! way in: every input that changes the server is an [`Event`], and each
//! call ends with one flush. After each call, drain [`Server::poll_action`]
//! until it returns `None`, take the outbound bytes of every connection named
//! by an [`Action::Transmit`] with [`Server::take_outbound`], and sleep until
//! [`Server::next_deadline`] (then send [`Event::Tick`]) or the next input.
//! Everything else on `Server` is a query on `&self`.

mod accounts;
mod client;
mod conn;
mod deliver;
mod gateway;
mod interest;
mod jetstream;
mod lame_duck;
mod leaf;
mod monitor;
mod reload;
mod route;
mod system;
mod timers;
mod tls;

use core::net::SocketAddr;
use std::collections::VecDeque;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use slab::Slab;

use crate::auth::PeerCertificate;
use crate::config::Options;
use crate::proto::ServerInfo;
use crate::proto::encode;
use crate::time::{Instant, Now};

use accounts::Account;
pub use conn::{AccountId, ConnKind, Counters};
use conn::{Conn, Subscription};
pub use interest::{PeerKind, PeerLink};
pub use monitor::{MonitorResponse, ProcessInfo};
pub use route::PeerInfo;

/// A connection, as an index the driver uses to talk about it. Valid from
/// [`Event::Accepted`] until the driver reports [`Event::Closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub usize);

/// A subscription, as stored in the sublist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubId(u32);

/// Which listener a connection came in on. Leaf nodes, gateways,
/// websocket and MQTT listeners join these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Listener {
    Client,
    /// The cluster listener: other servers of the cluster dial it.
    Route,
    /// The leaf node listener: leaf nodes dial this hub on it.
    Leaf,
    /// The gateway listener: other clusters' servers dial it.
    Gateway,
}

/// An input to the server.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A connection was accepted from `peer` on `listener`; `conn` is the
    /// id [`Server::next_conn_id`] named just before. The server sends
    /// `INFO` and arms the connection's timers.
    Accepted {
        conn: ConnId,
        listener: Listener,
        peer: SocketAddr,
    },
    /// The driver bound `listener` on `port` (a port of 0 in the
    /// configuration means any: clients are told the real one).
    Listening { listener: Listener, port: u16 },
    /// A connection the server asked for with [`Action::Dial`] is up,
    /// to `peer`.
    Dialed { conn: ConnId, peer: SocketAddr },
    /// A dial failed (or timed out); `error` says why, for the log. The
    /// connection id is free again.
    DialFailed { conn: ConnId, error: &'a str },
    /// Bytes arrived from the peer.
    Received { conn: ConnId, bytes: &'a [u8] },
    /// The driver wrote this many of the bytes it took for the connection.
    Written { conn: ConnId, bytes: usize },
    /// The connection is gone (peer closed, I/O error, or after a `Close`).
    Closed { conn: ConnId },
    /// Time passed: run whatever timers are due.
    Tick,
    /// Traffic has gone quiet after a burst: let go of the outbound buffer
    /// capacity connections kept for reuse (the driver then returns freed
    /// memory to the system).
    Quiet,
    /// The TLS handshake the server asked for with [`Action::StartTls`]
    /// is done: bytes from now on are the decrypted stream. `version`
    /// and `cipher` are shown by monitoring and in the debug log;
    /// `peer_cert` holds the names in the client's certificate, if it sent
    /// one (`verify_and_map` finds the client's user by them).
    TlsReady {
        conn: ConnId,
        version: &'a str,
        cipher: &'a str,
        peer_cert: Option<&'a PeerCertificate>,
    },
    /// The TLS handshake failed; `error` says why (for the log).
    TlsFailed { conn: ConnId, error: &'a str },
    /// Apply new options to the running server: all of them, or none with
    /// the reason. Answered with [`Action::Reloaded`].
    Reload { options: &'a Options },
    /// Enter lame duck mode (a second time does nothing).
    LameDuck,
    /// Close every connection, flushing what is outbound.
    Shutdown,
    /// The process's memory and CPU, and the HTTP monitoring figures, as
    /// the driver last read them (for statsz and `VARZ` over NATS).
    Process(&'a ProcessInfo),
    /// A storage operation the server asked for ([`Action::Storage`])
    /// completed.
    Storage(&'a natrix_storage::ops::Completion),
}

/// Why a connection was closed (nats-server's `ClosedState` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClosed,
    AuthenticationTimeout,
    AuthenticationViolation,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    WriteError,
    ReadError,
    ParseError,
    StaleConnection,
    ProtocolViolation,
    BadClientProtocolVersion,
    MaxConnectionsExceeded,
    MaxPayloadExceeded,
    MaxControlLineExceeded,
    ServerShutdown,
    NoRespondersRequiresHeaders,
    TlsHandshakeError,
    MaxAccountConnectionsExceeded,
    MaxSubscriptionsExceeded,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "Client Closed",
            CloseReason::AuthenticationTimeout => "Authentication Timeout",
            CloseReason::AuthenticationViolation => "Authentication Failure",
            CloseReason::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            CloseReason::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            CloseReason::WriteError => "Write Error",
            CloseReason::ReadError => "Read Error",
            CloseReason::ParseError => "Parse Error",
            CloseReason::StaleConnection => "Stale Connection",
            CloseReason::ProtocolViolation => "Protocol Violation",
            CloseReason::BadClientProtocolVersion => "Bad Client Protocol Version",
            CloseReason::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            CloseReason::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            CloseReason::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            CloseReason::ServerShutdown => "Server Shutdown",
            CloseReason::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            CloseReason::TlsHandshakeError => "TLS Handshake Failure",
            CloseReason::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
            CloseReason::MaxSubscriptionsExceeded => "Maximum Subscriptions Exceeded",
        }
    }
}

/// Log levels, as nats-server prints them (`[INF]`, `[DBG]`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// An output of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The connection has outbound bytes: take them with `take_outbound`.
    /// Emitted once per touched connection per input.
    Transmit { conn: ConnId },
    /// Close the connection; write what is outbound first if `flush`.
    Close {
        conn: ConnId,
        reason: CloseReason,
        flush: bool,
    },
    /// Something to log.
    Log { level: LogLevel, message: String },
    /// Run the TLS server handshake on this connection, after writing the
    /// bytes taken for it so far in plaintext (`INFO`, unless the handshake
    /// comes first); every later byte in both directions goes through TLS.
    /// Answer with [`Event::TlsReady`] or [`Event::TlsFailed`].
    StartTls { conn: ConnId },
    /// Stop reading from this connection until `until` (or a `Resume`): a
    /// subscriber it feeds is over half its pending limit. nats-server
    /// stalls fast producers the same way, for 100 ms to 1 s.
    Pause { conn: ConnId, until: Instant },
    /// Read from this connection again.
    Resume { conn: ConnId },
    /// Stop accepting connections: close the client listener (lame duck).
    StopAccepting,
    /// The server has finished (lame duck mode closed every client): stop
    /// and exit.
    Exit,
    /// The answer to [`Event::Reload`]: `None` when the new options are in
    /// force, else why none of them is.
    Reloaded { error: Option<String> },
    /// Open a TCP connection to `addr` (`host:port`) for connection
    /// `conn` (a route this server dials). Answer with [`Event::Dialed`]
    /// or [`Event::DialFailed`], always one of them, even for a
    /// connection closed in between.
    Dial { conn: ConnId, addr: String },
    /// Run a storage operation (JetStream); its completion comes back as
    /// [`Event::Storage`]. Operations may run in any grouping the driver
    /// likes, but in the order emitted.
    Storage(natrix_storage::ops::StorageOp),
}

/// The server's random choices, one seeded stream per purpose, so that a
/// new draw for one purpose never shifts the others (a replayed seed keeps
/// its queue choices when a nonce is added, say).
pub(crate) struct Rngs {
    /// Queue member choice and weighted subject mappings.
    pub routing: ChaCha8Rng,
    /// The server's key, event ids and service reply subjects.
    pub ids: ChaCha8Rng,
    /// Nonces for clients to sign.
    pub nonces: ChaCha8Rng,
    /// Jitter of timers (first ping, lame duck closes).
    pub timers: ChaCha8Rng,
}

impl Rngs {
    fn new(seed: u64) -> Self {
        let stream = |label: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(label);
            rng
        };
        Rngs {
            routing: stream(1),
            ids: stream(2),
            nonces: stream(3),
            timers: stream(4),
        }
    }
}

/// Log lines waiting in the action queue, at most.
const LOG_LINES_MAX: usize = 64 * 1024;

/// Server-wide counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    pub counters: Counters,
    pub total_connections: u64,
    pub slow_consumers: u64,
}

/// The NATS server state machine.
pub struct Server {
    opts: Options,
    info: ServerInfo,
    rng: Rngs,
    now: Now,
    next_cid: u64,
    conns: Slab<Conn>,
    subs: Slab<Subscription>,
    accounts: Vec<Account>,
    /// The system account, if there is one.
    system_account: Option<AccountId>,
    actions: VecDeque<Action>,
    /// `Log` actions in the queue, and lines dropped because it was full.
    logs_queued: usize,
    logs_dropped: u64,
    dirty: Vec<ConnId>,
    timers: timers::TimerTable,
    stats: ServerStats,
    /// Connections accepted and not yet closing.
    open_conns: usize,
    start_unix_nanos: u64,
    start_instant: Instant,
    /// The most recently closed connections, as `/connz?state=closed` shows them.
    closed: VecDeque<serde_json::Value>,
    /// Set once lame duck mode is entered.
    lame_duck: Option<lame_duck::LameDuck>,
    /// The shadow subscriptions (stream imports) of a client's subscription.
    shadows_of: crate::FastMap<SubId, Vec<SubId>>,
    /// The system account's services and events.
    system: system::SystemState,
    /// Streams and the `$JS.API`.
    jetstream: jetstream::JetStream,
    /// While a consumer delivery is routed: the subject subscribers see
    /// (its stream subject) instead of the one it is routed by.
    shown_subject: Option<Vec<u8>>,
    /// Buffers the server's own publishes are built in, kept between them.
    scratch: Scratch,
    /// The cluster this server is a member of (routes).
    cluster: Option<Box<route::Cluster>>,
    /// Leaf node connections: as a hub, as a leaf, or both.
    leafnodes: Option<Box<leaf::LeafNodes>>,
    /// Gateways to the other clusters of a super-cluster.
    gateways: Option<Box<gateway::Gateways>>,
    /// While a message from a route is delivered: the queue groups the
    /// peer chose this server for (names separated by spaces).
    routed_queues: Vec<u8>,
    /// While a message from a route is delivered: the leaf node cluster
    /// it came into this cluster from (a route's `LMSG`), empty if none.
    routed_origin: Vec<u8>,
    /// Every connection is being closed: nothing is dialed again.
    shutting_down: bool,
}

/// The largest publish buffer kept for the next one.
const SCRATCH_KEEP_BYTES: usize = 64 * 1024;

/// Buffers kept between the server's own publishes (consumer deliveries
/// above all), so that building one allocates nothing.
#[derive(Default)]
struct Scratch {
    payload: Vec<u8>,
    shown: Vec<u8>,
    ack: Vec<u8>,
    to: Vec<u8>,
}

impl Server {
    /// A server with `opts`, drawing every random choice from `seed`.
    pub fn new(opts: Options, seed: u64, now: Now) -> Self {
        let mut rng = Rngs::new(seed);
        let mut key = [0u8; 32];
        rng.ids.fill_bytes(&mut key);
        let server_id = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::Server, key)
            .expect("32 bytes make a server key")
            .public_key();
        let server_name = if opts.server_name.is_empty() {
            server_id.clone()
        } else {
            opts.server_name.clone()
        };
        let info = ServerInfo {
            server_id,
            server_name,
            version: crate::COMPAT_VERSION.to_string(),
            proto: 1,
            go: format!("natrix {}", crate::VERSION),
            host: opts.host.clone(),
            port: opts.port,
            headers: !opts.no_header_support,
            auth_required: opts.advertises_auth(),
            tls_required: opts.tls.is_some(),
            tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
            max_payload: i32::try_from(opts.max_payload).unwrap_or(i32::MAX),
            natrix_version: crate::VERSION.to_string(),
            ..ServerInfo::default()
        };
        let (accounts, system_account) = accounts::build(&opts);
        let mut server = Server {
            opts,
            info,
            rng,
            now,
            next_cid: 0,
            conns: Slab::new(),
            subs: Slab::new(),
            accounts,
            system_account,
            actions: VecDeque::new(),
            logs_queued: 0,
            logs_dropped: 0,
            dirty: Vec::new(),
            timers: timers::TimerTable::default(),
            stats: ServerStats::default(),
            open_conns: 0,
            start_unix_nanos: now.unix_nanos,
            start_instant: now.instant,
            closed: VecDeque::new(),
            lame_duck: None,
            shadows_of: crate::FastMap::default(),
            system: system::SystemState::new(),
            jetstream: jetstream::JetStream::default(),
            shown_subject: None,
            scratch: Scratch::default(),
            cluster: None,
            leafnodes: None,
            gateways: None,
            routed_queues: Vec::new(),
            routed_origin: Vec::new(),
            shutting_down: false,
        };
        server.install_cluster();
        server.install_leafnodes();
        server.install_gateways();
        server.install_system();
        server.install_jetstream();
        server
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    pub fn server_id(&self) -> &str {
        &self.info.server_id
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Open connections (not counting those being closed).
    pub fn num_connections(&self) -> usize {
        self.open_conns
    }

    /// What kind of peer a connection is, if it exists.
    pub fn conn_kind(&self, id: ConnId) -> Option<ConnKind> {
        self.conns.get(id.0).map(|c| c.kind)
    }

    pub fn num_subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// The id the next accepted connection gets: the driver names it in
    /// [`Event::Accepted`].
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.conns.vacant_key())
    }

    /// A new client connection from `peer`: sends INFO and arms its timers.
    fn on_accepted(&mut self, expected: ConnId, listener: Listener, peer: SocketAddr) {
        match listener {
            Listener::Route => return self.on_route_accepted(expected, peer),
            Listener::Leaf => return self.on_leaf_accepted(expected, peer),
            Listener::Gateway => return self.on_gateway_accepted(expected, peer),
            Listener::Client => {}
        }
        self.next_cid += 1;
        let cid = self.next_cid;
        let now = self.now;
        let id = ConnId(
            self.conns
                .insert(Conn::new(ConnKind::Client, cid, peer, now.instant)),
        );
        assert_eq!(id, expected, "the driver names the id next_conn_id gave");
        self.stats.total_connections += 1;
        let mut info = self.info.clone();
        info.client_id = cid;
        info.client_ip = peer.ip().to_string();
        if self.opts.auth.nonce_required() {
            info.nonce = self.make_nonce();
        }
        // With a `no_auth_user`, INFO does not ask for credentials, but
        // CONNECT must still come first.
        let auth_required = self.opts.auth.required();
        {
            let conn = &mut self.conns[id.0];
            info.encode_into(&mut conn.out);
            conn.awaiting_auth = auth_required;
            conn.nonce = info.nonce;
        }
        self.mark_dirty(id);
        self.debug(id, || "Client connection created".to_string());
        self.open_conns += 1;
        if self.lame_duck.is_some() {
            // Accepted before the listener closed: not served.
            self.close(id, CloseReason::ServerShutdown, true);
        } else if self.open_conns > self.opts.max_connections {
            self.send_err(id, "maximum connections exceeded");
            self.close(id, CloseReason::MaxConnectionsExceeded, true);
        } else if self.opts.tls.is_some() {
            // The auth and ping timers start once the handshake is done.
            self.start_tls(id);
        } else {
            self.arm_client_timers(id);
        }
        if let Some(conn) = self.conns[id.0].tls_pending
            && !self.opts.tls.as_ref().is_some_and(|t| t.handshake_first)
        {
            // After the Transmit of INFO: INFO goes out in plaintext.
            self.flush_dirty();
            self.actions.push_back(Action::StartTls { conn });
        }
    }

    /// Timers of a client ready to talk: authentication (if required)
    /// and pings.
    fn arm_client_timers(&mut self, id: ConnId) {
        let now = self.now.instant;
        if self.conns[id.0].awaiting_auth {
            let at = now + self.opts.auth_timeout();
            self.set_deadline(id, timers::Timer::Auth, Some(at));
        }
        let at = now + self.opts.ping_interval;
        self.set_deadline(id, timers::Timer::Ping, Some(at));
    }

    /// Whether the connection waits for its TLS handshake (the driver
    /// must not read from it in plaintext).
    pub fn awaits_tls(&self, id: ConnId) -> bool {
        self.conns
            .get(id.0)
            .is_some_and(|c| c.tls_pending.is_some())
    }

    /// Feeds one event: the only input that changes the server.
    pub fn handle(&mut self, now: Now, event: Event<'_>) {
        assert!(now.instant >= self.now.instant, "time never runs back");
        self.now = now;
        match event {
            Event::Accepted {
                conn,
                listener,
                peer,
            } => self.on_accepted(conn, listener, peer),
            Event::Listening {
                listener: Listener::Client,
                port,
            } => {
                self.opts.port = port;
                self.info.port = port;
                if self.cluster.is_some() {
                    self.info.connect_urls = self.own_client_urls();
                }
            }
            Event::Listening {
                listener: Listener::Route,
                port,
            } => self.on_route_listening(port),
            Event::Listening {
                listener: Listener::Leaf,
                port,
            } => self.on_leaf_listening(port),
            Event::Listening {
                listener: Listener::Gateway,
                port,
            } => self.on_gateway_listening(port),
            Event::Dialed { conn, peer } => match self.conn_kind(conn) {
                Some(ConnKind::Leaf) => self.on_leaf_dialed(conn, peer),
                Some(ConnKind::Gateway) => self.on_gateway_dialed(conn, peer),
                Some(_) => self.on_dialed(conn, peer),
                None => {}
            },
            Event::DialFailed { conn, error } => match self.conn_kind(conn) {
                Some(ConnKind::Leaf) => self.on_leaf_dial_failed(conn, error),
                Some(ConnKind::Gateway) => self.on_gateway_dial_failed(conn, error),
                Some(_) => self.on_dial_failed(conn, error),
                None => {}
            },
            Event::Received { conn, bytes } => self.on_received(conn, bytes),
            Event::Written { conn, bytes } => self.on_written(conn, bytes),
            Event::Closed { conn } => self.on_closed(conn),
            Event::Tick => self.on_tick(),
            Event::Quiet => self.release_idle_buffers(),
            Event::TlsReady {
                conn,
                version,
                cipher,
                peer_cert,
            } => self.on_tls_ready(conn, version, cipher, peer_cert),
            Event::TlsFailed { conn, error } => self.on_tls_failed(conn, error),
            Event::Reload { options } => {
                let error = self.reload(options.clone()).err();
                self.actions.push_back(Action::Reloaded { error });
            }
            Event::LameDuck => self.enter_lame_duck(),
            Event::Shutdown => self.shutdown(),
            Event::Process(process) => self.system.process = process.clone(),
            Event::Storage(done) => self.on_storage(done),
        }
        self.run_internal();
        self.flush_dirty();
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        if let Some(Action::Log { .. }) = action {
            self.logs_queued -= 1;
        }
        if self.logs_queued == 0 && self.logs_dropped > 0 {
            let n = std::mem::take(&mut self.logs_dropped);
            self.log(
                LogLevel::Warn,
                format!("{n} log lines dropped: the log is behind"),
            );
        }
        action
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Moves the connection's outbound bytes into `buf` (which should be
    /// empty; its allocation is kept for the next round). The bytes count as
    /// pending until the driver reports them with [`Event::Written`].
    pub fn take_outbound(&mut self, conn: ConnId, buf: &mut Vec<u8>) {
        let now = self.now.instant;
        let Some(c) = self.conns.get_mut(conn.0) else {
            return;
        };
        assert!(buf.is_empty(), "the driver hands back an empty buffer");
        buf.clear();
        std::mem::swap(&mut c.out, buf);
        if buf.is_empty() {
            return;
        }
        c.in_flight += buf.len() as u64;
        if c.write_started.is_none() {
            c.write_started = Some(now);
            let at = now + self.opts.write_deadline;
            self.set_deadline(conn, timers::Timer::Write, Some(at));
        }
    }

    /// Closes every connection (flushing what is outbound).
    fn shutdown(&mut self) {
        self.shutting_down = true;
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.kind.is_internal())
            .map(|(k, _)| ConnId(k))
            .collect();
        for id in ids {
            self.close(id, CloseReason::ServerShutdown, true);
        }
    }

    /// Frees the outbound buffers of connections with nothing queued: a
    /// burst leaves each subscriber holding one as large as a batch's worth.
    fn release_idle_buffers(&mut self) {
        for (_, c) in self.conns.iter_mut() {
            if c.out.is_empty() && c.out.capacity() > 0 {
                c.out = Vec::new();
            }
        }
    }

    fn on_written(&mut self, id: ConnId, bytes: usize) {
        let mark = self.flow_mark();
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        c.in_flight = c.in_flight.saturating_sub(bytes as u64);
        if !c.stalled_publishers.is_empty() && c.pending_bytes() <= mark {
            let publishers = std::mem::take(&mut c.stalled_publishers);
            self.resume(publishers);
        }
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        // The deadline is on progress: a reader that keeps taking bytes is
        // not slow, however much is queued behind.
        if c.in_flight == 0 {
            c.write_started = None;
            self.set_deadline(id, timers::Timer::Write, None);
        } else {
            let now = self.now.instant;
            c.write_started = Some(now);
            let at = now + self.opts.write_deadline;
            self.set_deadline(id, timers::Timer::Write, Some(at));
        }
    }

    fn on_closed(&mut self, id: ConnId) {
        if !self.conns.contains(id.0) {
            return;
        }
        if self.conns[id.0].kind.is_internal() {
            debug_assert!(false, "the driver never names an internal client");
            return;
        }
        if !self.conns[id.0].closing {
            self.teardown(id, CloseReason::ClientClosed);
        }
        assert!(
            !self.timers.has_conn_timers(id),
            "a closed connection has no timers"
        );
        self.conns.remove(id.0);
    }

    /// Starts closing: subscriptions go now, the connection record stays
    /// until the driver reports `Closed`.
    pub(crate) fn close(&mut self, id: ConnId, reason: CloseReason, flush: bool) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        if c.closing {
            return;
        }
        self.teardown(id, reason);
        self.actions.push_back(Action::Close {
            conn: id,
            reason,
            flush,
        });
    }

    fn teardown(&mut self, id: ConnId, reason: CloseReason) {
        match self.conns[id.0].kind {
            ConnKind::Route => return self.route_teardown(id, reason),
            ConnKind::Leaf => return self.leaf_teardown(id, reason),
            ConnKind::Gateway => return self.gateway_teardown(id, reason),
            _ => {}
        }
        self.remember_closed(id, reason);
        let publishers = std::mem::take(&mut self.conns[id.0].stalled_publishers);
        self.resume(publishers);
        let c = &mut self.conns[id.0];
        c.closing = true;
        self.open_conns -= 1;
        if std::mem::take(&mut c.registered) {
            self.accounts[c.account.0 as usize].num_conns -= 1;
        }
        let subs: Vec<SubId> = c.subs.drain().map(|(_, s)| s).collect();
        for s in subs {
            self.remove_sub(s);
        }
        for t in timers::Timer::ALL {
            self.set_deadline(id, t, None);
        }
        // Once it is closing: the client does not hear of its own end.
        self.disconnect_event(id, reason);
        self.debug(id, || {
            format!("Client connection closed: {}", reason.as_str())
        });
    }

    fn remove_sub(&mut self, s: SubId) {
        let sub = self.subs.remove(s.0 as usize);
        for shadow in &self.shadows_of.remove(&s).unwrap_or_default() {
            let sh = self.subs.remove(shadow.0 as usize);
            let removed = self.accounts[sh.account.0 as usize].sublist.remove(
                &sh.subject,
                sh.queue.as_deref(),
                *shadow,
            );
            assert!(removed, "a shadow subscription is in its sublist");
            let weight = -i64::from(sh.weight);
            self.interest_changed(
                sh.account,
                &sh.subject,
                sh.queue.as_deref(),
                sh.conn,
                weight,
            );
        }
        if self.opts.trace && self.conns.contains(sub.conn.0) {
            let line = format!("<-> [DELSUB {}]", String::from_utf8_lossy(&sub.sid));
            self.conn_log(LogLevel::Trace, sub.conn, &line);
        }
        let removed = self.accounts[sub.account.0 as usize].sublist.remove(
            &sub.subject,
            sub.queue.as_deref(),
            s,
        );
        assert!(removed, "a live subscription is in its sublist");
        let weight = -i64::from(sub.weight);
        self.interest_changed(
            sub.account,
            &sub.subject,
            sub.queue.as_deref(),
            sub.conn,
            weight,
        );
    }

    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        let c = &mut self.conns[id.0];
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
    }

    fn flush_dirty(&mut self) {
        for id in self.dirty.drain(..) {
            if let Some(c) = self.conns.get_mut(id.0) {
                c.dirty = false;
                if !c.out.is_empty() {
                    self.actions.push_back(Action::Transmit { conn: id });
                }
            }
        }
    }

    /// Queues protocol bytes (not a message) to a connection.
    pub(crate) fn send(&mut self, id: ConnId, bytes: &[u8]) {
        let c = &mut self.conns[id.0];
        if c.closing {
            return;
        }
        c.out.extend_from_slice(bytes);
        self.mark_dirty(id);
    }

    /// `+OK` (verbose mode).
    pub(crate) fn send_ok(&mut self, id: ConnId) {
        self.send(id, encode::OK);
        self.trace(id, || "->> [OK]".to_string());
    }

    pub(crate) fn send_err(&mut self, id: ConnId, text: &str) {
        let c = &mut self.conns[id.0];
        if c.closing {
            return;
        }
        encode::err(&mut c.out, text);
        self.mark_dirty(id);
        self.trace(id, || format!("->> [-ERR {text}]"));
    }

    /// A fresh nonce for nkey users to sign: 11 random bytes, base64
    /// URL-safe without padding (15 characters), as nats-server makes them.
    fn make_nonce(&mut self) -> String {
        let mut raw = [0u8; 11];
        self.rng.nonces.fill_bytes(&mut raw);
        data_encoding::BASE64URL_NOPAD.encode(&raw)
    }

    /// A queue member's index, or any other routing choice among `n`.
    pub(crate) fn random_below(&mut self, n: usize) -> usize {
        (self.rng.routing.next_u64() % n as u64) as usize
    }

    /// Queues a line for the log. The action queue is bounded: every
    /// other action is one per connection touched, and log lines (which
    /// trace mode makes one per message) stop at [`LOG_LINES_MAX`] waiting;
    /// past that they are counted, and one line says how many were lost.
    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if self.logs_queued >= LOG_LINES_MAX {
            self.logs_dropped += 1;
            return;
        }
        self.logs_queued += 1;
        self.actions.push_back(Action::Log { level, message });
    }

    fn conn_prefix(&self, id: ConnId) -> String {
        let c = &self.conns[id.0];
        let kind = match c.kind {
            ConnKind::Route => "rid",
            ConnKind::Leaf => "lid",
            ConnKind::Gateway => "gid",
            _ => "cid",
        };
        format!("{} - {kind}:{}", c.peer, c.cid)
    }

    pub(crate) fn conn_log(&mut self, level: LogLevel, id: ConnId, msg: &str) {
        let line = format!("{} - {msg}", self.conn_prefix(id));
        self.log(level, line);
    }

    pub(crate) fn debug(&mut self, id: ConnId, msg: impl FnOnce() -> String) {
        if self.opts.debug {
            let m = msg();
            self.conn_log(LogLevel::Debug, id, &m);
        }
    }

    pub(crate) fn trace(&mut self, id: ConnId, msg: impl FnOnce() -> String) {
        if self.opts.trace {
            let m = msg();
            self.conn_log(LogLevel::Trace, id, &m);
        }
    }
}

#[cfg(test)]
mod tests;

/// The `host:port` other servers are told to dial a listener at: its
/// `advertise` (a host alone keeps the listener's port), else the
/// listener's host, else the server's, else loopback.
pub(crate) fn advertised_url(
    advertise: Option<&str>,
    listen_host: &str,
    server_host: &str,
    port: u16,
) -> String {
    if let Some(adv) = advertise {
        return match host_and_port(adv) {
            Some(_) => adv.to_string(),
            None => format!("{adv}:{port}"),
        };
    }
    let any = |h: &str| matches!(h, "" | "0.0.0.0" | "::");
    let host = [listen_host, server_host]
        .into_iter()
        .find(|h| !any(h))
        .unwrap_or("127.0.0.1");
    format!("{host}:{port}")
}

/// A `host:port`'s host and port.
pub(crate) fn host_and_port(url: &str) -> Option<(&str, u16)> {
    let (h, p) = url.rsplit_once(':')?;
    Some((h, p.parse().ok()?))
}
