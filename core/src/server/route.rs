//! Routes: the full mesh between the servers of one cluster, spoken as
//! nats-server speaks it to a peer that advertises no route pooling and no
//! compression (one plain connection per pair of servers, the account
//! named in every line), so that natrix and nats-server 2.9 and 2.15
//! servers mix in one cluster.
//!
//! A server dials the routes it is configured with (and servers a peer
//! tells it about), and accepts routes on its cluster listener. Both sides
//! of a route speak at once: the accepting side sends `INFO`, the dialing
//! side `CONNECT` then `INFO`. A route counts once the peer's `INFO` has
//! arrived; then each side tells the other all its interest (`RS+`), and
//! from then on every change of it, and forwards each message the other
//! has interest in once (`RMSG`/`HMSG`), naming the queue groups it chose
//! the other server's members for. A message that came over a route never
//! goes out on another (one hop: the mesh is full).
//!
//! Interest sent to routes is counted per account, subject and queue
//! group over every local subscription: a plain subject is announced on
//! its first subscription and withdrawn after its last; a queue group is
//! announced again with its new member count (its weight) on each change.

use core::net::SocketAddr;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::conn::{Conn, ConnKind};
use super::leaf::{PeerPerms, SubjectFilter};
use super::timers::{Timer, TimerKey};
use super::{AccountId, CloseReason, ConnId, LogLevel, Server, SubId};
use crate::config::cluster::RouteUrl;
use crate::proto::{Op, Pub, Routed};

type Flow = ControlFlow<()>;

/// Wait between attempts to dial a configured route (nats-server's
/// `DEFAULT_ROUTE_RECONNECT`).
const REDIAL_DELAY: Duration = Duration::from_secs(1);
/// A route's first `PING` comes this soon after its handshake.
const FIRST_ROUTE_PING: Duration = Duration::from_secs(1);
/// Longest control line a route may send (queue lists are unbounded).
pub(crate) const ROUTE_MAX_CONTROL_LINE: usize = 1024 * 1024;
/// Largest message a route, leaf node or gateway may send (the most any
/// server lets a client publish: nats-server's 64 MiB ceiling).
pub(crate) const PEER_MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

/// The cluster this server belongs to: its name, its listener and the
/// routes to other members.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub name: String,
    /// No name was configured: the first named peer's is taken.
    pub dynamic_name: bool,
    /// The cluster listener's port, once bound.
    pub port: u16,
    /// Servers to dial: configured ones (kept forever) and ones peers
    /// told of (dropped once they cannot be reached).
    pub remotes: Vec<Remote>,
    /// Routes whose peer has introduced itself, by its server id.
    pub routes: BTreeMap<String, ConnId>,
    /// Each route peer's client URLs, for clients' `connect_urls`.
    pub peer_urls: BTreeMap<String, Vec<String>>,
    /// What routes carry (`permissions`); `None`: everything.
    pub perms: Option<Box<PeerPerms>>,
}

/// A server to dial.
#[derive(Debug)]
pub(crate) struct Remote {
    pub url: RouteUrl,
    /// Configured (`routes`): dialed until it answers, again whenever the
    /// route drops. Else learned from a peer: tried `connect_retries + 1`
    /// times.
    pub explicit: bool,
    /// The connection dialing or holding it.
    pub conn: Option<ConnId>,
    /// Failed attempts since it last connected.
    pub failures: u32,
    /// Given up on (a learned server that could not be reached).
    pub gone: bool,
}

/// What a route connection knows of its peer and its handshake.
#[derive(Debug, Default)]
pub(crate) struct RouteState {
    /// This server dialed it (monitoring's `did_solicit`).
    pub solicited: bool,
    /// The remote it was dialed for (or that a duplicate handed over).
    pub remote: Option<usize>,
    /// Still being dialed: no socket yet.
    pub dialing: bool,
    /// The peer's `INFO`, once it came.
    pub peer: Option<PeerInfo>,
    /// Counted in [`Cluster::routes`].
    pub registered: bool,
    /// The peer sends headers (`HMSG`) and takes them.
    pub headers: bool,
}

/// The fields of a peer's route `INFO` that natrix uses; the rest
/// (pooling, compression) is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    /// `nats-route://host:port/`: where to dial it (in gossip).
    pub ip: String,
    pub cluster: String,
    pub cluster_dynamic: bool,
    pub connect_urls: Vec<String>,
    /// The peer's gateway URL (a cluster member with a gateway).
    pub gateway_url: String,
    /// Gossip of a gateway (`gateway_cmd` 1): its name and URLs.
    pub gateway: String,
    pub gateway_urls: Vec<String>,
    pub gateway_cmd: u8,
    /// The peer's leaf node URL (one at most).
    pub leafnode_urls: Vec<String>,
    /// The peer takes a leaf node cluster's messages as `LMSG` with their
    /// origin (and `LS+`/`LS-`).
    pub lnoc: bool,
}

/// The `INFO` this server sends on routes, in nats-server's field order.
#[derive(Debug, Serialize)]
struct RouteInfo<'a> {
    server_id: &'a str,
    server_name: &'a str,
    version: &'a str,
    proto: i32,
    go: &'a str,
    host: &'a str,
    port: u16,
    headers: bool,
    #[serde(skip_serializing_if = "is_false")]
    auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
    max_payload: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    ip: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    nonce: &'a str,
    cluster: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    cluster_dynamic: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    connect_urls: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    gateway_url: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    leafnode_urls: &'a [String],
    /// `permissions`, as nats-server sends them.
    #[serde(skip_serializing_if = "Option::is_none")]
    import: Option<SubjectFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<SubjectFilter>,
    /// This server takes `LMSG` with a leaf node origin cluster on routes,
    /// and `LS-` with the origin too.
    lnoc: bool,
    lnocu: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A route's `CONNECT`, both ways.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct RouteConnect {
    echo: bool,
    verbose: bool,
    pedantic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<String>,
    tls_required: bool,
    headers: bool,
    /// The dialing server's id.
    name: String,
    cluster: String,
    #[serde(skip_serializing_if = "is_false")]
    cluster_dynamic: bool,
}

/// What marks the key of a route's interest on behalf of a leaf node
/// cluster (`LS+ <origin> ...`): kept apart from the peer's own (`RS+`)
/// in the same subject and queue group, as nats-server keeps them, so
/// that each has its own weight and goes on its own.
const ORIGIN_MARK: u8 = 0;

/// The leaf node cluster a route subscription's key is for (empty: the
/// peer's own interest).
pub(crate) fn key_origin(key: &[u8]) -> &[u8] {
    match key.split_first() {
        Some((&ORIGIN_MARK, rest)) => rest.split(|&b| b == b' ').next().unwrap_or_default(),
        _ => b"",
    }
}

/// The key a route's subscription is kept under in its connection's map:
/// `<account> <subject>[ <queue>]`, after `\0<origin> ` for a leaf node
/// cluster's interest.
fn origin_sub_key(origin: &[u8], account: &[u8], subject: &[u8], queue: Option<&[u8]>) -> Vec<u8> {
    let mut key = Vec::with_capacity(
        origin.len() + account.len() + subject.len() + 4 + queue.map_or(0, <[u8]>::len),
    );
    if !origin.is_empty() {
        key.push(ORIGIN_MARK);
        key.extend_from_slice(origin);
        key.push(b' ');
    }
    key.extend_from_slice(account);
    key.push(b' ');
    key.extend_from_slice(subject);
    if let Some(q) = queue {
        key.push(b' ');
        key.extend_from_slice(q);
    }
    key
}

/// Appends `RS+ <account> <subject>[ <queue> <weight>]`.
pub(crate) fn encode_sub(
    out: &mut Vec<u8>,
    account: &str,
    subject: &[u8],
    queue: Option<(&[u8], u32)>,
) {
    out.extend_from_slice(b"RS+ ");
    out.extend_from_slice(account.as_bytes());
    out.push(b' ');
    out.extend_from_slice(subject);
    if let Some((q, weight)) = queue {
        out.push(b' ');
        out.extend_from_slice(q);
        out.push(b' ');
        out.extend_from_slice(itoa::Buffer::new().format(weight).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `RS- <account> <subject>[ <queue>]`.
pub(crate) fn encode_unsub(out: &mut Vec<u8>, account: &str, subject: &[u8], queue: Option<&[u8]>) {
    out.extend_from_slice(b"RS- ");
    out.extend_from_slice(account.as_bytes());
    out.push(b' ');
    out.extend_from_slice(subject);
    if let Some(q) = queue {
        out.push(b' ');
        out.extend_from_slice(q);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the `RMSG` (or, with headers the peer takes, `HMSG`) that
/// forwards `p` in `account` to a route, or with no account the `LMSG`
/// (`HMSG`) to a leaf node, for the queue groups `queues` (names separated
/// by spaces; empty for none).
pub(crate) fn encode_routed(
    out: &mut Vec<u8>,
    account: Option<&str>,
    p: &Pub<'_>,
    queues: &[u8],
    peer_headers: bool,
) {
    encode_routed_from(out, None, account, p, queues, peer_headers);
}

/// Appends the route's `LMSG <origin> <account> ...` that forwards `p`,
/// which came into the cluster from leaf node cluster `origin`: always
/// with a header size (0 without headers), as nats-server writes it.
pub(crate) fn encode_origin_routed(
    out: &mut Vec<u8>,
    origin: &str,
    account: &str,
    p: &Pub<'_>,
    queues: &[u8],
) {
    encode_routed_from(out, Some(origin), Some(account), p, queues, true);
}

fn encode_routed_from(
    out: &mut Vec<u8>,
    origin: Option<&str>,
    account: Option<&str>,
    p: &Pub<'_>,
    queues: &[u8],
    peer_headers: bool,
) {
    let with_headers = p.header.is_some() && peer_headers;
    out.extend_from_slice(match (origin.is_some(), with_headers, account.is_some()) {
        (true, ..) => b"LMSG ",
        (false, true, _) => b"HMSG ",
        (false, false, true) => b"RMSG ",
        (false, false, false) => b"LMSG ",
    });
    if let Some(origin) = origin {
        out.extend_from_slice(origin.as_bytes());
        out.push(b' ');
    }
    if let Some(account) = account {
        out.extend_from_slice(account.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(p.subject);
    out.push(b' ');
    match (p.reply, queues.is_empty()) {
        (Some(r), true) => {
            out.extend_from_slice(r);
            out.push(b' ');
        }
        (Some(r), false) => {
            out.extend_from_slice(b"+ ");
            out.extend_from_slice(r);
            out.push(b' ');
            out.extend_from_slice(queues);
            out.push(b' ');
        }
        (None, false) => {
            out.extend_from_slice(b"| ");
            out.extend_from_slice(queues);
            out.push(b' ');
        }
        (None, true) => {}
    }
    let mut n = itoa::Buffer::new();
    let body = if with_headers {
        out.extend_from_slice(n.format(p.header_len()).as_bytes());
        out.push(b' ');
        out.extend_from_slice(n.format(p.payload.len()).as_bytes());
        p.payload
    } else {
        if origin.is_some() {
            out.extend_from_slice(b"0 ");
        }
        out.extend_from_slice(n.format(p.body().len()).as_bytes());
        p.body()
    };
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

impl Server {
    /// Sets up the cluster from the options (dialing starts once the
    /// cluster listener is bound).
    pub(crate) fn install_cluster(&mut self) {
        let Some(c) = &self.opts.cluster else {
            return;
        };
        let dynamic_name = c.name.is_empty();
        let name = if dynamic_name {
            // A name of its own until a peer's is taken.
            self.info.server_id.clone()
        } else {
            c.name.clone()
        };
        let remotes = c
            .routes
            .iter()
            .map(|url| Remote {
                url: url.clone(),
                explicit: true,
                conn: None,
                failures: 0,
                gone: false,
            })
            .collect();
        self.info.cluster = name.clone();
        self.cluster = Some(Box::new(Cluster {
            name,
            dynamic_name,
            port: c.port,
            remotes,
            routes: BTreeMap::new(),
            peer_urls: BTreeMap::new(),
            perms: PeerPerms::of_hub_user(c.permissions.as_ref(), &[]).boxed(),
        }));
        self.info.connect_urls = self.own_client_urls();
    }

    /// The cluster listener is bound: dial the configured routes.
    pub(crate) fn on_route_listening(&mut self, port: u16) {
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        cluster.port = port;
        let n = cluster.remotes.len();
        for i in 0..n {
            self.dial_remote(i);
        }
    }

    /// The route `INFO` this server sends (with `nonce` on a route it
    /// accepted, `ip` when it tells others about a peer).
    fn route_info_line(&self, nonce: &str) -> Vec<u8> {
        let cluster = self
            .cluster
            .as_deref()
            .expect("routes exist with a cluster");
        let copts = self
            .opts
            .cluster
            .as_ref()
            .expect("routes exist with a cluster");
        let host = if copts.host.is_empty() {
            "0.0.0.0"
        } else {
            &copts.host
        };
        let connect_urls = if copts.no_advertise {
            Vec::new()
        } else {
            self.own_client_urls()
        };
        let gateway_url = if self.gateways.is_some() {
            self.gateway_url()
        } else {
            String::new()
        };
        let leafnode_urls = self.leaf_url_for_routes();
        let info = RouteInfo {
            server_id: &self.info.server_id,
            server_name: &self.info.server_name,
            version: &self.info.version,
            proto: 1,
            go: &self.info.go,
            host,
            port: cluster.port,
            headers: self.info.headers,
            auth_required: copts.user.is_some(),
            tls_required: copts.tls.is_some(),
            tls_verify: copts.tls.is_some(),
            max_payload: self.info.max_payload,
            ip: copts.advertise.as_deref().unwrap_or(""),
            nonce,
            cluster: &cluster.name,
            cluster_dynamic: cluster.dynamic_name,
            connect_urls: &connect_urls,
            gateway_url: &gateway_url,
            leafnode_urls: &leafnode_urls,
            import: copts
                .permissions
                .as_ref()
                .and_then(|p| p.publish.as_ref())
                .map(SubjectFilter::sent),
            export: copts
                .permissions
                .as_ref()
                .and_then(|p| p.subscribe.as_ref())
                .map(SubjectFilter::sent),
            lnoc: true,
            lnocu: true,
        };
        let mut out = b"INFO ".to_vec();
        serde_json::to_writer(&mut out, &info).expect("INFO serializes");
        out.extend_from_slice(b"\r\n");
        out
    }

    /// Starts dialing remote `i` (unless it is connected or given up).
    fn dial_remote(&mut self, i: usize) {
        let Some(cluster) = self.cluster.as_deref() else {
            return;
        };
        let r = &cluster.remotes[i];
        if r.gone || r.conn.is_some() {
            return;
        }
        let addr = r.url.addr();
        let id = self.dial_peer(ConnKind::Route, addr, |conn| {
            conn.route = Some(Box::new(RouteState {
                solicited: true,
                remote: Some(i),
                dialing: true,
                ..RouteState::default()
            }));
        });
        self.cluster.as_mut().expect("checked").remotes[i].conn = Some(id);
    }

    /// A dial this server asked for connected.
    pub(crate) fn on_dialed(&mut self, id: ConnId, peer: SocketAddr) {
        if !self.conns.contains(id.0) {
            return;
        }
        if let Some(r) = self.conns[id.0].route.as_mut() {
            r.dialing = false;
        }
        if !self.peer_dialed(id, peer) {
            return;
        }
        self.await_peer_tls(id, self.route_tls(), true);
        let c = &self.conns[id.0];
        let cid = c.cid;
        let remote = c.route.as_ref().and_then(|r| r.remote);
        self.log(
            LogLevel::Info,
            format!("{peer} - rid:{cid} - Route connection created"),
        );
        let url = remote.map(|i| {
            self.cluster.as_ref().expect("a cluster").remotes[i]
                .url
                .clone()
        });
        let cluster = self
            .cluster
            .as_deref()
            .expect("routes exist with a cluster");
        let connect = RouteConnect {
            echo: true,
            verbose: false,
            pedantic: false,
            user: url.as_ref().and_then(|u| u.user.clone()),
            pass: url.as_ref().and_then(|u| u.pass.clone()),
            tls_required: self.route_tls().is_some(),
            headers: self.info.headers,
            name: self.info.server_id.clone(),
            cluster: cluster.name.clone(),
            cluster_dynamic: cluster.dynamic_name,
        };
        let mut out = b"CONNECT ".to_vec();
        serde_json::to_writer(&mut out, &connect).expect("CONNECT serializes");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.route_info_line(""));
        self.send(id, &out);
    }

    /// A dial failed: try again later (a configured route), or count the
    /// failure (a learned one).
    pub(crate) fn on_dial_failed(&mut self, id: ConnId, error: &str) {
        let Some(c) = self.conns.get(id.0) else {
            return;
        };
        let remote = c.route.as_ref().and_then(|r| r.remote);
        let closing = c.closing;
        self.conns.remove(id.0);
        let Some(i) = remote else {
            return;
        };
        let r = &mut self.cluster.as_mut().expect("a cluster").remotes[i];
        r.failures += 1;
        let line = format!(
            "Error trying to connect to route {} (attempt {}): {error}",
            r.url.addr(),
            r.failures
        );
        self.log(LogLevel::Error, line);
        self.remote_lost(i, closing);
    }

    /// Remote `i` has no connection any more: dial it again later, or
    /// give it up.
    fn remote_lost(&mut self, i: usize, shutting_down: bool) {
        let retries = self.opts.cluster.as_ref().map_or(0, |c| c.connect_retries);
        let Some(cluster) = self.cluster.as_mut() else {
            return;
        };
        let r = &mut cluster.remotes[i];
        r.conn = None;
        if shutting_down || self.lame_duck.is_some() {
            return;
        }
        if !r.explicit && r.failures > retries {
            r.gone = true;
            return;
        }
        let at = self.now.instant + REDIAL_DELAY;
        self.timers.set(TimerKey::Redial(i as u32), Some(at));
    }

    /// The redial timer of remote `i`.
    pub(crate) fn redial_timer(&mut self, i: u32) {
        self.dial_remote(i as usize);
    }

    /// A server dialed this one's cluster listener.
    pub(crate) fn on_route_accepted(&mut self, expected: ConnId, peer: SocketAddr) {
        self.next_cid += 1;
        let mut conn = Conn::new(ConnKind::Route, self.next_cid, peer, self.now.instant);
        conn.route = Some(Box::default());
        // The first op must be CONNECT.
        conn.awaiting_auth = true;
        let id = ConnId(self.conns.insert(conn));
        assert_eq!(id, expected, "the driver names the id next_conn_id gave");
        if self.cluster.is_none() || self.lame_duck.is_some() {
            self.close(id, CloseReason::ServerShutdown, false);
            return;
        }
        let cid = self.conns[id.0].cid;
        self.log(
            LogLevel::Info,
            format!("{peer} - rid:{cid} - Route connection created"),
        );
        self.await_peer_tls(id, self.route_tls(), true);
        let nonce = self.make_nonce();
        let line = self.route_info_line(&nonce);
        self.send(id, &line);
        let copts = self.opts.cluster.as_ref().expect("a cluster");
        if copts.user.is_some() {
            let at = self.now.instant + copts.auth_timeout.unwrap_or(Duration::from_secs(2));
            self.set_deadline(id, Timer::Auth, Some(at));
        }
    }

    /// One op from a route.
    pub(crate) fn process_route_op(&mut self, id: ConnId, op: Op<'_>) -> Flow {
        match op {
            Op::Connect(json) => self.route_connect(id, json),
            Op::Info(json) => self.route_info(id, json),
            Op::Ping | Op::Pong | Op::Ok => self.peer_keepalive(id, &op),
            Op::Err(text) => {
                let msg = format!("Route Error {}", String::from_utf8_lossy(text));
                self.conn_log(LogLevel::Error, id, &msg);
                self.close(id, CloseReason::ParseError, false);
                Flow::Break(())
            }
            Op::RouteSub {
                account,
                subject,
                queue,
                origin,
            } => {
                self.remote_sub(id, origin, account, subject, queue);
                Flow::Continue(())
            }
            Op::RouteUnsub {
                account,
                subject,
                queue,
                origin,
            } => {
                self.remote_unsub(id, origin, account, subject, queue);
                Flow::Continue(())
            }
            Op::Routed(r) => {
                self.routed_msg(id, &r);
                self.still_open_route(id)
            }
            Op::Pub(_) | Op::Sub { .. } | Op::Unsub { .. } | Op::Msg => {
                unreachable!("the route parser yields no client ops")
            }
        }
    }

    fn still_open_route(&self, id: ConnId) -> Flow {
        if self.conns[id.0].closing {
            Flow::Break(())
        } else {
            Flow::Continue(())
        }
    }

    /// `CONNECT` from a server that dialed this one: its credentials and
    /// its cluster's name.
    fn route_connect(&mut self, id: ConnId, json: &[u8]) -> Flow {
        self.set_deadline(id, Timer::Auth, None);
        let Ok(connect) = serde_json::from_slice::<RouteConnect>(json) else {
            self.conn_log(LogLevel::Error, id, "Route CONNECT parse error");
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        };
        let copts = self
            .opts
            .cluster
            .as_ref()
            .expect("routes exist with a cluster");
        if let Some(user) = &copts.user
            && (connect.user.as_deref() != Some(user)
                || connect.pass.as_deref() != copts.pass.as_deref())
        {
            self.conn_log(LogLevel::Error, id, "authentication error");
            self.send_err(id, "Authorization Violation");
            self.close(id, CloseReason::AuthenticationViolation, true);
            return Flow::Break(());
        }
        if !self.cluster_name_agrees(id, &connect.cluster, connect.cluster_dynamic) {
            return Flow::Break(());
        }
        let c = &mut self.conns[id.0];
        c.awaiting_auth = false;
        c.connect_received = true;
        Flow::Continue(())
    }

    /// Checks (and with a dynamic name, adopts) a peer's cluster name;
    /// closes the route when they differ.
    fn cluster_name_agrees(&mut self, id: ConnId, theirs: &str, theirs_dynamic: bool) -> bool {
        let cluster = self.cluster.as_mut().expect("routes exist with a cluster");
        if theirs == cluster.name {
            return true;
        }
        if cluster.dynamic_name
            && !theirs.is_empty()
            && (!theirs_dynamic || theirs > &*cluster.name)
        {
            // Take the peer's: a configured name wins, else the larger.
            cluster.name = theirs.to_string();
            self.info.cluster = theirs.to_string();
            return true;
        }
        if theirs_dynamic {
            // The peer takes this server's name when it reads its INFO.
            return true;
        }
        let text = format!(
            "Rejecting connection, cluster name {theirs:?} does not match {:?}",
            cluster.name
        );
        self.conn_log(LogLevel::Error, id, &text);
        self.send_err(id, &text);
        self.close(id, CloseReason::ProtocolViolation, true);
        false
    }

    /// `INFO` on a route: the peer introducing itself (the first), an
    /// update of its own, or news of another server to dial.
    fn route_info(&mut self, id: ConnId, json: &[u8]) -> Flow {
        let info: PeerInfo = match serde_json::from_slice(json) {
            Ok(i) => i,
            Err(_) => {
                self.conn_log(LogLevel::Error, id, "Route INFO parse error");
                self.close(id, CloseReason::ProtocolViolation, true);
                return Flow::Break(());
            }
        };
        if !info.gateway.is_empty() {
            // About a gateway, not a server of this cluster.
            self.gateway_from_route(&info.gateway, &info.gateway_urls, info.gateway_cmd);
            return Flow::Continue(());
        }
        let route = self.conns[id.0]
            .route
            .as_deref()
            .expect("a route has its state");
        match &route.peer {
            None => self.introduce(id, info),
            Some(peer) if peer.server_id == info.server_id => {
                let urls = info.connect_urls.clone();
                if let Some(r) = self.conns[id.0].route.as_mut() {
                    r.peer = Some(info);
                }
                self.set_peer_urls(id, Some(urls));
                Flow::Continue(())
            }
            Some(_) => {
                self.learn_server(&info);
                Flow::Continue(())
            }
        }
    }

    /// The peer's first `INFO`: register the route unless it is this
    /// server itself, a second route to the same server, or another
    /// cluster.
    fn introduce(&mut self, id: ConnId, info: PeerInfo) -> Flow {
        if info.server_id == self.info.server_id {
            // A route to itself (its own address among the routes).
            self.debug(id, || "Detected route to self, ignoring".to_string());
            self.forget_remote_of(id);
            self.close(id, CloseReason::ProtocolViolation, false);
            return Flow::Break(());
        }
        if !info.server_name.is_empty() && info.server_name == self.info.server_name {
            let text = format!("Remote server has a duplicate name: {:?}", info.server_name);
            self.conn_log(LogLevel::Error, id, &text);
            self.close(id, CloseReason::ProtocolViolation, false);
            return Flow::Break(());
        }
        if !self.cluster_name_agrees(id, &info.cluster, info.cluster_dynamic) {
            return Flow::Break(());
        }
        let existing = self
            .cluster
            .as_ref()
            .and_then(|c| c.routes.get(&info.server_id).copied());
        if let Some(old) = existing {
            return self.duplicate_route(id, old, info);
        }
        let headers = info.headers && self.info.headers;
        let peer_id = info.server_id.clone();
        let urls = info.connect_urls.clone();
        {
            let c = &mut self.conns[id.0];
            let r = c.route.as_mut().expect("a route has its state");
            r.headers = headers;
            r.registered = true;
            r.peer = Some(info.clone());
            if let Some(i) = r.remote {
                self.cluster.as_mut().expect("a cluster").remotes[i].failures = 0;
            }
        }
        let cluster = self.cluster.as_mut().expect("a cluster");
        cluster.routes.insert(peer_id.clone(), id);
        let cid = self.conns[id.0].cid;
        let peer = self.conns[id.0].peer;
        self.log(
            LogLevel::Info,
            format!(
                "{peer} - rid:{cid} - Route connection to {:?} ({peer_id}) registered",
                info.server_name
            ),
        );
        let at = self.now.instant + FIRST_ROUTE_PING.min(self.opts.ping_interval);
        self.set_deadline(id, Timer::Ping, Some(at));
        self.send_all_interest(id);
        self.set_peer_urls(id, Some(urls));
        // Whichever side dialed, the other members hear of the new peer:
        // a server that dialed a member back after losing it may be the
        // only one the others can learn it from.
        self.tell_routes_of(id, &info);
        self.route_gateway_url(&info.server_id, Some(&info.gateway_url));
        self.route_leaf_url(&info.server_id, Some(&info.leafnode_urls));
        self.gateways_to_route(id);
        Flow::Continue(())
    }

    /// A second route to a server already routed to (both dialed each
    /// other at once, or a configured route to a server that dialed in):
    /// the new one closes, and the old one takes over its remote.
    fn duplicate_route(&mut self, id: ConnId, old: ConnId, _info: PeerInfo) -> Flow {
        let remote = self.conns[id.0]
            .route
            .as_mut()
            .and_then(|r| r.remote.take());
        if let Some(i) = remote
            && let Some(r) = self.conns.get_mut(old.0).and_then(|c| c.route.as_mut())
            && r.remote.is_none()
        {
            r.remote = Some(i);
            self.cluster.as_mut().expect("a cluster").remotes[i].conn = Some(old);
        } else if let Some(i) = remote {
            let r = &mut self.cluster.as_mut().expect("a cluster").remotes[i];
            r.conn = None;
            if !r.explicit {
                r.gone = true;
            }
        }
        self.debug(id, || {
            "Duplicate route, closing the new connection".to_string()
        });
        self.close(id, CloseReason::ProtocolViolation, false);
        Flow::Break(())
    }

    /// The route reached this server itself: never dial that URL again.
    fn forget_remote_of(&mut self, id: ConnId) {
        let remote = self.conns[id.0]
            .route
            .as_mut()
            .and_then(|r| r.remote.take());
        if let Some(i) = remote {
            let r = &mut self.cluster.as_mut().expect("a cluster").remotes[i];
            r.conn = None;
            r.gone = true;
        }
    }

    /// Closes a route's side of things: its peer's subscriptions and
    /// timers go, and what the route meant to the cluster (see
    /// [`Server::route_closed`]).
    pub(crate) fn route_teardown(&mut self, id: ConnId, reason: CloseReason) {
        let c = &mut self.conns[id.0];
        c.closing = true;
        let subs: Vec<SubId> = c.subs.drain().map(|(_, s)| s).collect();
        for s in subs {
            self.remove_sub(s);
        }
        for t in Timer::ALL {
            self.set_deadline(id, t, None);
        }
        let c = &self.conns[id.0];
        let (peer, cid) = (c.peer, c.cid);
        let registered = c.route.as_ref().is_some_and(|r| r.registered);
        self.route_closed(id);
        if registered {
            self.log(
                LogLevel::Info,
                format!(
                    "{peer} - rid:{cid} - Router connection closed: {}",
                    reason.as_str()
                ),
            );
        }
    }

    /// A route connection is closing: if it was a registered route, its
    /// peer's interest went with its subscriptions; clients stop hearing
    /// of the peer's URLs; a remote is dialed again.
    pub(crate) fn route_closed(&mut self, id: ConnId) {
        let Some(r) = self.conns[id.0].route.take() else {
            return;
        };
        if r.registered
            && let Some(peer) = &r.peer
        {
            let cluster = self.cluster.as_mut().expect("a cluster");
            if cluster.routes.get(&peer.server_id) == Some(&id) {
                cluster.routes.remove(&peer.server_id);
                cluster.peer_urls.remove(&peer.server_id);
                self.refresh_connect_urls();
                let peer_id = peer.server_id.clone();
                self.route_gateway_url(&peer_id, None);
                self.route_leaf_url(&peer_id, None);
            }
        }
        let shutting_down = self.lame_duck.is_some() || self.shutting_down;
        if let Some(i) = r.remote {
            self.remote_lost(i, shutting_down);
        }
        self.conns[id.0].route = Some(r);
    }

    /// The account named `name`, if this server has it.
    fn account_by_name(&self, name: &[u8]) -> Option<AccountId> {
        self.accounts
            .iter()
            .position(|a| a.name.as_bytes() == name)
            .map(|i| AccountId(i as u32))
    }

    /// `RMSG`/`HMSG`: a message the peer forwards for subscribers here.
    fn routed_msg(&mut self, id: ConnId, r: &Routed<'_>) {
        match self.account_by_name(r.account) {
            Some(account) => self.peer_publish(id, account, r),
            None => {
                let c = &mut self.conns[id.0];
                c.counters.in_msgs += 1;
                c.counters.in_bytes += r.msg.payload.len() as u64;
            }
        }
    }

    /// Forwards `p` in `account` to route or leaf node connection `id`,
    /// for the queue groups `queues`. Like a subscriber, a peer over its
    /// pending limit is a slow consumer and is closed.
    pub(crate) fn forward(
        &mut self,
        publisher: ConnId,
        id: ConnId,
        account: AccountId,
        p: &Pub<'_>,
        queues: &[u8],
    ) {
        let mark = self.flow_mark();
        let name = &self.accounts[account.0 as usize].name;
        let conn = &mut self.conns[id.0];
        if conn.closing {
            return;
        }
        let (account, headers) = match (&conn.route, &conn.gateway) {
            (Some(r), _) => (Some(name.as_str()), r.headers),
            (_, Some(g)) => (Some(name.as_str()), g.headers),
            (None, None) => (None, true),
        };
        // A leaf node cluster's message goes to a route that knows of
        // origins as `LMSG <origin> ...`, so the other side does not send
        // it back down to that cluster.
        let lnoc = conn
            .route
            .as_ref()
            .and_then(|r| r.peer.as_ref())
            .is_some_and(|p| p.lnoc);
        let from_leaf_cluster = lnoc
            && self
                .conns
                .get(publisher.0)
                .and_then(|c| c.leaf.as_ref())
                .is_some_and(|l| !l.cluster.is_empty());
        let before = self.conns[id.0].out.len();
        if from_leaf_cluster {
            // (The publisher's and the route's are two connections.)
            let mut out = std::mem::take(&mut self.conns[id.0].out);
            let origin = self.conns[publisher.0]
                .leaf
                .as_ref()
                .map_or("", |l| l.cluster.as_str());
            encode_origin_routed(&mut out, origin, name, p, queues);
            self.conns[id.0].out = out;
        } else {
            encode_routed(&mut self.conns[id.0].out, account, p, queues, headers);
        }
        let conn = &mut self.conns[id.0];
        if conn.pending_bytes() > self.opts.max_pending {
            conn.out.truncate(before);
            self.slow_consumer(id);
            return;
        }
        conn.counters.out_msgs += 1;
        conn.counters.out_bytes += p.payload.len() as u64;
        self.stats.counters.out_msgs += 1;
        self.stats.counters.out_bytes += p.payload.len() as u64;
        let over_mark = conn.pending_bytes() > mark;
        let pending = conn.pending_bytes();
        let stallable = self
            .conns
            .get(publisher.0)
            .is_some_and(|c| c.kind == ConnKind::Client);
        if over_mark && stallable {
            let conn = &mut self.conns[id.0];
            if !conn.stalled_publishers.contains(&publisher) {
                conn.stalled_publishers.push(publisher);
            }
        }
        self.mark_dirty(id);
        if over_mark && stallable {
            self.stall(publisher, pending);
        }
    }

    /// The interest this server announces to its routes, as
    /// `<account> <subject>[ <queue>=<weight>]` (for checking, in the
    /// simulation, that every peer's view converges to it).
    pub fn interest_for_routes(&self) -> std::collections::BTreeSet<String> {
        self.announced(|c| self.route_weight(c))
    }

    /// What each registered route's peer told this server of its
    /// interest, by the peer's server id, in the form of
    /// [`Server::interest_for_routes`].
    pub fn interest_of_routes(&self) -> BTreeMap<String, std::collections::BTreeSet<String>> {
        self.routes()
            .into_iter()
            .map(|(id, peer)| (peer.server_id.clone(), self.heard_on(id)))
            .collect()
    }

    /// The handshake timeout of TLS on routes, if it is on.
    pub(crate) fn route_tls(&self) -> Option<Duration> {
        let tls = self.opts.cluster.as_ref()?.tls.as_ref()?;
        Some(tls.timeout)
    }

    /// Registered routes, for monitoring: (connection, peer).
    pub fn routes(&self) -> Vec<(ConnId, &PeerInfo)> {
        let Some(cluster) = self.cluster.as_deref() else {
            return Vec::new();
        };
        cluster
            .routes
            .values()
            .filter_map(|&id| {
                let peer = self.conns.get(id.0)?.route.as_ref()?.peer.as_ref()?;
                Some((id, peer))
            })
            .collect()
    }
}

mod announce;
mod gossip;
#[cfg(test)]
pub(crate) mod tests;
