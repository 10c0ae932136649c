//! Per-connection state.

use core::net::SocketAddr;
use std::time::Duration;

use crate::FastMap;
use crate::auth::ClientPermissions;
use crate::proto::{ConnectOptions, Parser};
use crate::time::Instant;

use super::client::go_quote;
use super::{ConnId, SubId};

/// What is on the other end of a connection: a client, or the server's
/// own internal client for the system account. Routes, leaf nodes,
/// gateways and JetStream's internal client come with clustering and
/// JetStream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    Client,
    Route,
    Leaf,
    Gateway,
    System,
    JetStream,
}

impl ConnKind {
    /// The server's own clients (system account, JetStream): no socket, no
    /// timers, never closed, and messages to them go to a handler in the
    /// core instead of an outbound buffer.
    pub fn is_internal(self) -> bool {
        matches!(self, ConnKind::System | ConnKind::JetStream)
    }
}

/// An index into the server's accounts. Every connection belongs to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub(crate) u32);

impl AccountId {
    /// The global account `$G`, home of every client whose user names no
    /// other account.
    pub const GLOBAL: AccountId = AccountId(0);
}

/// Message and byte counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
}

/// One subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub conn: ConnId,
    pub account: AccountId,
    /// A route's queue subscription stands for this many members of the
    /// group on the peer (1 for every other subscription).
    pub weight: u32,
    pub subject: Box<[u8]>,
    pub queue: Option<Box<[u8]>>,
    pub sid: crate::bytes::SmallBytes,
    /// Auto-unsubscribe after this many deliveries; 0 is no limit.
    pub max: u64,
    pub delivered: u64,
    /// Set for a shadow subscription: a client's subscription copied into
    /// an exporting account for a stream import.
    /// (Boxed: most subscriptions are not shadows, and a subscription's
    /// size is what a hundred thousand of them cost.)
    pub shadow: Option<Box<Shadow>>,
}

/// Where a shadow subscription comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shadow {
    /// The client's own subscription (which counts the deliveries).
    pub parent: SubId,
    /// The importing account and its stream import.
    pub importer: AccountId,
    pub import: usize,
}

/// A reply a client was given in place of a gateway's `_GR_` subject:
/// (the plain reply, the `_GR_` subject, until when it holds).
pub(crate) type GatewayReply = (Box<[u8]>, Box<[u8]>, Instant);

#[derive(Debug)]
pub(crate) struct Conn {
    pub kind: ConnKind,
    pub account: AccountId,
    pub cid: u64,
    pub peer: SocketAddr,
    pub start: Instant,
    pub last_activity: Instant,
    pub parser: Parser,
    pub opts: ConnectOptions,
    pub connect_received: bool,
    pub awaiting_auth: bool,
    /// The nonce sent in `INFO` for nkey users to sign (empty if none).
    pub nonce: String,
    /// What the authenticated user may publish and subscribe to (`None`:
    /// everything).
    pub perms: Option<Box<ClientPermissions>>,
    /// Headers are on for this client (it asked and the server allows).
    pub headers: bool,
    pub subs: FastMap<crate::bytes::SmallBytes, SubId>,
    /// Bytes produced for this connection that the driver has not taken.
    pub out: Vec<u8>,
    /// Bytes the driver has taken but not yet reported written.
    pub in_flight: u64,
    /// When the driver started on the bytes now in flight.
    pub write_started: Option<Instant>,
    pub dirty: bool,
    pub closing: bool,
    pub pings_out: u32,
    pub last_ping_in: Option<Instant>,
    pub rtt: Option<Duration>,
    pub rtt_start: Option<Instant>,
    pub first_pong_sent: bool,
    pub counters: Counters,
    /// Publishers paused because this connection is over half its pending
    /// limit; resumed when it drains.
    pub stalled_publishers: Vec<ConnId>,
    /// This connection's reads are paused until then.
    pub paused_until: Option<Instant>,
    /// Waiting for its TLS handshake (holds its own id, for the action).
    pub tls_pending: Option<ConnId>,
    /// The TLS version and cipher suite, once the handshake is done.
    pub tls: Option<(String, String)>,
    /// The names in the client's certificate (`verify_and_map` maps them
    /// to a user, again on every reload).
    pub peer_cert: Option<Box<crate::auth::PeerCertificate>>,
    /// Counted in its account's connections (from `CONNECT` on).
    pub registered: bool,
    /// The smaller of the server's and the account's payload limit, when
    /// the account's is smaller.
    pub max_payload: Option<u32>,
    /// Subscription limit from the server and the account (-1: none).
    pub max_subs: i64,
    /// For a route: its peer and handshake.
    pub route: Option<Box<super::route::RouteState>>,
    /// For a leaf node connection: its peer and handshake.
    pub leaf: Option<Box<super::leaf::LeafState>>,
    /// For a gateway connection: its peer and handshake.
    pub gateway: Option<Box<super::gateway::GatewayState>>,
    /// Replies this client was given in place of a gateway's `_GR_`
    /// subject: (plain, `_GR_` subject, until).
    pub gw_replies: Vec<GatewayReply>,
}

impl Conn {
    pub fn new(kind: ConnKind, cid: u64, peer: SocketAddr, now: Instant) -> Self {
        Conn {
            kind,
            account: AccountId::GLOBAL,
            cid,
            peer,
            start: now,
            last_activity: now,
            parser: Parser::new(),
            opts: ConnectOptions::default(),
            connect_received: false,
            awaiting_auth: false,
            nonce: String::new(),
            perms: None,
            headers: false,
            subs: FastMap::default(),
            out: Vec::new(),
            in_flight: 0,
            write_started: None,
            dirty: false,
            closing: false,
            pings_out: 0,
            last_ping_in: None,
            rtt: None,
            rtt_start: None,
            first_pong_sent: false,
            counters: Counters::default(),
            stalled_publishers: Vec::new(),
            paused_until: None,
            tls_pending: None,
            tls: None,
            peer_cert: None,
            registered: false,
            max_payload: None,
            max_subs: -1,
            route: None,
            leaf: None,
            gateway: None,
            gw_replies: Vec::new(),
        }
    }

    /// The user named in log lines (nats-server's `getAuthUser`).
    pub fn auth_user(&self) -> String {
        if !self.opts.nkey.is_empty() {
            format!("Nkey {}", go_quote(self.opts.nkey.as_bytes()))
        } else if !self.opts.user.is_empty() {
            format!("User {}", go_quote(self.opts.user.as_bytes()))
        } else {
            "User \"N/A\"".to_string()
        }
    }

    /// The user `/connz?auth=true` shows (nats-server's `getRawAuthUser`).
    pub fn raw_auth_user(&self) -> &str {
        [&self.opts.nkey, &self.opts.user, &self.opts.auth_token]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or("", |s| s.as_str())
    }

    /// Bytes queued for the peer and not yet written.
    pub fn pending_bytes(&self) -> u64 {
        self.out.len() as u64 + self.in_flight
    }
}
