//! Gateways: the links between the clusters of a super-cluster, in
//! nats-server's interest-only mode (its default since 2.9), so that a
//! natrix cluster and a nats-server 2.9 or 2.15 cluster join one
//! super-cluster.
//!
//! Every server keeps one outbound connection to each other cluster (to
//! any of its servers) and accepts inbound ones. Messages go out only on
//! outbound connections; interest comes back on the same connection from
//! the accepting side, which tells the dialer its cluster's interest
//! account by account (`INFO` with `gateway_cmd` 2, every `RS+`, then
//! `gateway_cmd` 3) and then each change. The accepting side speaks first
//! (`INFO`); the dialer answers with `CONNECT` and its `INFO`, and the
//! acceptor dials back a cluster it has no outbound connection to.
//!
//! A message goes to a remote cluster when that cluster has interest in
//! it, and to a remote queue group only when no member in this cluster
//! took it. A message that came from a gateway goes to no gateway, and one
//! that came over a route to none either (its first server sent it).
//!
//! Replies: a nats-server cluster sends a request's reply subject as
//! `_GR_.<cluster hash>.<server hash>.<reply>`. The receiving server gives
//! its client the plain reply and remembers, for that client, where the
//! answer goes: the client's publish to it leaves as the `_GR_` subject,
//! which is sent straight to the cluster (and then the server) it names.
//! This server maps its own clients' replies the same way, as nats-server
//! does, when a subscription matching the reply was made here in the last
//! 2 s: the request may then reach the other cluster before the interest
//! in its reply does, and the answer still finds its way back.

use core::net::SocketAddr;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::conn::{Conn, ConnKind};
use super::timers::{Timer, TimerKey};
use super::{AccountId, CloseReason, ConnId, LogLevel, Server, SubId};
use crate::config::cluster::RouteUrl;
use crate::proto::{Op, Pub, Routed};

type Flow = ControlFlow<()>;

/// Gateway reply subjects start with this.
pub(crate) const GR_PREFIX: &[u8] = b"_GR_.";
/// Wait between attempts to dial a gateway.
const REDIAL_DELAY: Duration = Duration::from_secs(1);
/// How long a client's mapped reply is remembered.
const REPLY_MAPPING: Duration = Duration::from_secs(2);
/// Most mapped replies one client keeps.
const REPLY_MAPPINGS_MAX: usize = 256;
/// How long a new subscription makes replies matching it go out mapped
/// (nats-server's default).
const RECENT_SUB: Duration = Duration::from_secs(2);
/// Most recent subscriptions remembered for that (the oldest go first).
const RECENT_SUBS_MAX: usize = 1024;

/// nats-server's 6-character hash of a name: the first six bytes of its
/// SHA-256, each taken modulo 62 into `0-9A-Za-z`.
pub(crate) fn hash6(name: &str) -> [u8; 6] {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let sum = sha2::Sha256::digest(name.as_bytes());
    let mut out = [0u8; 6];
    for (o, b) in out.iter_mut().zip(sum.iter()) {
        *o = DIGITS[(*b % 62) as usize];
    }
    out
}

/// This server's gateways.
#[derive(Debug)]
pub(crate) struct Gateways {
    pub name: String,
    /// Hash of `name`, and of this server's id (in `_GR_` subjects).
    pub cluster_hash: [u8; 6],
    pub server_hash: [u8; 6],
    /// The gateway listener's port, once bound.
    pub port: u16,
    pub remotes: Vec<GatewayRemote>,
    /// Outbound connections past their handshake, by remote gateway name.
    pub outbound: BTreeMap<String, ConnId>,
    /// Inbound connections past their handshake (interest goes there).
    pub inbound: Vec<ConnId>,
    /// Subscriptions made here lately, oldest first, and until when they
    /// count: a reply matching one goes out as a `_GR_` subject.
    pub recent: std::collections::VecDeque<(AccountId, Box<[u8]>, crate::time::Instant)>,
    /// Each route peer's gateway URL (from its route `INFO`), by its
    /// server id.
    pub peer_urls: BTreeMap<String, String>,
}

/// A remote gateway to dial.
#[derive(Debug)]
pub(crate) struct GatewayRemote {
    pub name: String,
    pub urls: Vec<RouteUrl>,
    pub next: usize,
    pub conn: Option<ConnId>,
}

/// What a gateway connection knows of its peer.
#[derive(Debug, Default)]
pub(crate) struct GatewayState {
    /// This server dialed it: messages go out on it, interest comes in.
    pub outbound: bool,
    pub remote: Option<usize>,
    /// The peer's gateway name, server id and name.
    pub name: String,
    pub server_id: String,
    pub server_name: String,
    pub headers: bool,
    /// Past the handshake.
    pub ready: bool,
}

/// A gateway `INFO`, both ways (and the command `INFO`s).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct GatewayInfo {
    server_id: String,
    server_name: String,
    version: String,
    proto: i32,
    go: String,
    host: String,
    port: u16,
    headers: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
    max_payload: i32,
    #[serde(skip_serializing_if = "String::is_empty")]
    gateway: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gateway_urls: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    gateway_url: String,
    #[serde(skip_serializing_if = "is_false")]
    gateway_nrp: bool,
    #[serde(skip_serializing_if = "is_false")]
    gateway_iom: bool,
    #[serde(skip_serializing_if = "is_zero")]
    gateway_cmd: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    gateway_cmd_payload: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

/// A gateway `CONNECT`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct GatewayConnect {
    echo: bool,
    verbose: bool,
    pedantic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<String>,
    tls_required: bool,
    headers: bool,
    name: String,
    cluster: String,
    gateway: String,
}

impl Server {
    /// Sets up gateways from the options (dialing starts once the gateway
    /// listener is bound).
    pub(crate) fn install_gateways(&mut self) {
        let Some(g) = &self.opts.gateway else {
            return;
        };
        let remotes = g
            .gateways
            .iter()
            .filter(|r| r.name != g.name)
            .map(|r| GatewayRemote {
                name: r.name.clone(),
                urls: r.urls.clone(),
                next: 0,
                conn: None,
            })
            .collect();
        self.gateways = Some(Box::new(Gateways {
            name: g.name.clone(),
            cluster_hash: hash6(&g.name),
            server_hash: hash6(&self.info.server_id),
            port: g.port,
            remotes,
            outbound: BTreeMap::new(),
            inbound: Vec::new(),
            recent: std::collections::VecDeque::new(),
            peer_urls: BTreeMap::new(),
        }));
    }

    /// The gateway listener is bound: dial the configured gateways.
    pub(crate) fn on_gateway_listening(&mut self, port: u16) {
        let Some(g) = self.gateways.as_mut() else {
            return;
        };
        g.port = port;
        let name = g.name.clone();
        for i in 0..g.remotes.len() {
            self.dial_gateway(i);
        }
        if self
            .opts
            .gateway
            .as_ref()
            .is_some_and(|o| o.advertise.is_some())
        {
            let url = self.gateway_url();
            self.log(
                LogLevel::Info,
                format!("Advertise address for gateway {name:?} is set to {url}"),
            );
        }
    }

    fn dial_gateway(&mut self, i: usize) {
        let Some(g) = self.gateways.as_deref_mut() else {
            return;
        };
        let r = &mut g.remotes[i];
        if r.conn.is_some() || r.urls.is_empty() || g.outbound.contains_key(&r.name) {
            return;
        }
        let url = r.urls[r.next % r.urls.len()].clone();
        r.next += 1;
        let id = self.dial_peer(ConnKind::Gateway, url.addr(), |conn| {
            conn.gateway = Some(Box::new(GatewayState {
                outbound: true,
                remote: Some(i),
                ..GatewayState::default()
            }));
        });
        self.gateways.as_mut().expect("checked").remotes[i].conn = Some(id);
    }

    pub(crate) fn on_gateway_dialed(&mut self, id: ConnId, peer: SocketAddr) {
        if !self.peer_dialed(id, peer) {
            return;
        }
        self.await_peer_tls(id, self.outbound_tls(id), true);
        let cid = self.conns[id.0].cid;
        self.log(
            LogLevel::Info,
            format!("{peer} - gid:{cid} - Creating outbound gateway connection"),
        );
    }

    pub(crate) fn on_gateway_dial_failed(&mut self, id: ConnId, error: &str) {
        let remote = self.conns[id.0].gateway.as_ref().and_then(|g| g.remote);
        self.conns.remove(id.0);
        if let Some(i) = remote {
            self.log(
                LogLevel::Error,
                format!("Error connecting to gateway: {error}"),
            );
            self.gateway_remote_lost(i);
        }
    }

    fn gateway_remote_lost(&mut self, i: usize) {
        let shutting_down = self.shutting_down || self.lame_duck.is_some();
        let Some(g) = self.gateways.as_mut() else {
            return;
        };
        g.remotes[i].conn = None;
        if shutting_down {
            return;
        }
        let at = self.now.instant + REDIAL_DELAY;
        self.timers.set(TimerKey::GatewayRedial(i as u32), Some(at));
    }

    pub(crate) fn gateway_redial_timer(&mut self, i: u32) {
        self.dial_gateway(i as usize);
    }

    /// Another cluster's server dialed this one's gateway listener.
    pub(crate) fn on_gateway_accepted(&mut self, expected: ConnId, peer: SocketAddr) {
        self.next_cid += 1;
        let cid = self.next_cid;
        let mut conn = Conn::new(ConnKind::Gateway, cid, peer, self.now.instant);
        conn.gateway = Some(Box::default());
        conn.awaiting_auth = true;
        let id = ConnId(self.conns.insert(conn));
        assert_eq!(id, expected, "the driver names the id next_conn_id gave");
        if self.gateways.is_none() || self.lame_duck.is_some() {
            self.close(id, CloseReason::ServerShutdown, false);
            return;
        }
        self.log(
            LogLevel::Info,
            format!("{peer} - gid:{cid} - Processing inbound gateway connection"),
        );
        self.await_peer_tls(id, self.gateway_tls(), true);
        let line = self.gateway_info_line();
        self.send(id, &line);
        let timeout = self
            .opts
            .gateway
            .as_ref()
            .and_then(|g| g.auth_timeout)
            .unwrap_or(Duration::from_secs(2));
        let at = self.now.instant + timeout;
        self.set_deadline(id, Timer::Auth, Some(at));
    }

    /// One op from a gateway connection.
    pub(crate) fn process_gateway_op(&mut self, id: ConnId, op: Op<'_>) -> Flow {
        match op {
            Op::Connect(json) => self.gateway_connect(id, json),
            Op::Info(json) => self.gateway_info(id, json),
            Op::Ping | Op::Pong | Op::Ok => self.peer_keepalive(id, &op),
            Op::Err(text) => {
                let text = format!("Gateway Error {}", String::from_utf8_lossy(text));
                self.conn_log(LogLevel::Error, id, &text);
                self.close(id, CloseReason::ParseError, false);
                Flow::Break(())
            }
            Op::RouteSub {
                account,
                subject,
                queue,
                ..
            } => self.gateway_sub(id, account, subject, queue),
            Op::RouteUnsub {
                account,
                subject,
                queue,
                ..
            } => {
                let mut key = account.to_vec();
                key.push(b' ');
                key.extend_from_slice(&super::interest::key(subject, queue));
                self.peer_unsubscribe(id, &key);
                Flow::Continue(())
            }
            Op::Routed(r) => {
                self.gateway_msg(id, &r);
                if self.conns[id.0].closing {
                    Flow::Break(())
                } else {
                    Flow::Continue(())
                }
            }
            Op::Pub(_) | Op::Sub { .. } | Op::Unsub { .. } | Op::Msg => {
                unreachable!("the gateway parser yields no client ops")
            }
        }
    }

    fn refuse_gateway(&mut self, id: ConnId, text: &str) -> Flow {
        self.conn_log(LogLevel::Error, id, text);
        self.send_err(id, text);
        self.close(id, CloseReason::ProtocolViolation, true);
        Flow::Break(())
    }

    /// The acceptor's side: the dialer's `CONNECT`.
    fn gateway_connect(&mut self, id: ConnId, json: &[u8]) -> Flow {
        self.set_deadline(id, Timer::Auth, None);
        let Ok(connect) = serde_json::from_slice::<GatewayConnect>(json) else {
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        };
        if connect.gateway.is_empty() {
            return self.refuse_gateway(id, "attempted to connect to gateway port");
        }
        let opts = self.opts.gateway.as_ref().expect("gateways are on");
        if let Some(user) = &opts.user
            && (connect.user.as_deref() != Some(user)
                || connect.pass.as_deref() != opts.pass.as_deref())
        {
            self.conn_log(LogLevel::Error, id, "authentication error");
            self.send_err(id, "Authorization Violation");
            self.close(id, CloseReason::AuthenticationViolation, true);
            return Flow::Break(());
        }
        let known = opts.gateways.iter().any(|g| g.name == connect.gateway)
            || self
                .gateways
                .as_ref()
                .is_some_and(|g| g.remotes.iter().any(|r| r.name == connect.gateway));
        if opts.reject_unknown && !known {
            let text = format!("Connection to gateway {:?} rejected", connect.gateway);
            return self.refuse_gateway(id, &text);
        }
        let c = &mut self.conns[id.0];
        c.awaiting_auth = false;
        c.connect_received = true;
        let g = c.gateway.as_mut().expect("a gateway has its state");
        g.name = connect.gateway;
        Flow::Continue(())
    }

    /// `INFO` on a gateway: the peer introducing itself, or a command.
    fn gateway_info(&mut self, id: ConnId, json: &[u8]) -> Flow {
        let Ok(info) = serde_json::from_slice::<GatewayInfo>(json) else {
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        };
        let g = self.conns[id.0]
            .gateway
            .as_deref()
            .expect("a gateway has its state");
        if info.gateway_cmd == 1 {
            // Gossip: another cluster's gateway URLs.
            self.learn_gateway(&info.gateway, &info.gateway_urls);
            return Flow::Continue(());
        }
        if g.outbound {
            // The remote cluster's gateway URLs (in its first INFO and
            // again when they change): more to try.
            self.add_gateway_urls(&info.gateway, &info.gateway_urls);
        }
        let g = self.conns[id.0]
            .gateway
            .as_deref()
            .expect("a gateway has its state");
        if info.gateway_cmd != 0 || g.ready {
            // Interest-only switches (2, 3): nothing to do.
            return Flow::Continue(());
        }
        if g.outbound {
            self.outbound_ready(id, info)
        } else {
            self.inbound_ready(id, info)
        }
    }

    /// The dialer's side: the acceptor's first `INFO`.
    fn outbound_ready(&mut self, id: ConnId, info: GatewayInfo) -> Flow {
        let ours = self
            .gateways
            .as_ref()
            .expect("gateways are on")
            .name
            .clone();
        let remote = self.conns[id.0].gateway.as_ref().and_then(|g| g.remote);
        let wanted = remote.map(|i| self.gateways.as_ref().expect("on").remotes[i].name.clone());
        let Some(wanted) = wanted else {
            self.close(id, CloseReason::ProtocolViolation, false);
            return Flow::Break(());
        };
        if info.gateway.is_empty() {
            let text = format!("Attempt to connect to gateway {wanted:?} using wrong port");
            return self.refuse_gateway(id, &text);
        }
        if info.gateway != wanted {
            let text = format!(
                "Connection from {ours:?} rejected, wanted to connect to {wanted:?}, this is {:?}",
                info.gateway
            );
            return self.refuse_gateway(id, &text);
        }
        if self
            .gateways
            .as_ref()
            .is_some_and(|g| g.outbound.contains_key(&wanted))
        {
            self.close(id, CloseReason::ProtocolViolation, false);
            return Flow::Break(());
        }
        let url = remote.and_then(|i| {
            let r = &self.gateways.as_ref()?.remotes[i];
            r.urls
                .get((r.next + r.urls.len() - 1) % r.urls.len())
                .cloned()
        });
        let connect = GatewayConnect {
            echo: false,
            verbose: false,
            pedantic: false,
            user: url.as_ref().and_then(|u| u.user.clone()),
            pass: url.as_ref().and_then(|u| u.pass.clone()),
            tls_required: self.outbound_tls(id).is_some(),
            headers: false,
            name: self.info.server_id.clone(),
            cluster: String::new(),
            gateway: ours,
        };
        let mut out = b"CONNECT ".to_vec();
        serde_json::to_writer(&mut out, &connect).expect("CONNECT serializes");
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.gateway_info_line());
        self.send(id, &out);
        let c = &mut self.conns[id.0];
        let g = c.gateway.as_mut().expect("a gateway has its state");
        g.ready = true;
        g.name = info.gateway.clone();
        g.server_id = info.server_id;
        g.server_name = info.server_name.clone();
        g.headers = info.headers && self.info.headers;
        let (peer, cid) = (c.peer, c.cid);
        self.gateways
            .as_mut()
            .expect("on")
            .outbound
            .insert(info.gateway.clone(), id);
        let at = self.now.instant + Duration::from_secs(1).min(self.opts.ping_interval);
        self.set_deadline(id, Timer::Ping, Some(at));
        self.log(
            LogLevel::Info,
            format!(
                "{peer} - gid:{cid} - Outbound gateway connection to {:?} ({}) registered",
                info.gateway, info.server_name
            ),
        );
        // The rest of this cluster connects to it too.
        self.gossip_gateway_to_routes(&info.gateway, &info.gateway_urls);
        Flow::Continue(())
    }

    /// The acceptor's side: the dialer's `INFO`. Every account switches to
    /// interest-only at once, and the dialer's cluster is dialed back if
    /// there is no outbound connection to it.
    fn inbound_ready(&mut self, id: ConnId, info: GatewayInfo) -> Flow {
        if !self.conns[id.0].connect_received {
            self.send_err(id, "Authorization Violation");
            self.close(id, CloseReason::AuthenticationViolation, true);
            return Flow::Break(());
        }
        {
            let g = self.conns[id.0]
                .gateway
                .as_mut()
                .expect("a gateway has its state");
            g.ready = true;
            g.server_id = info.server_id.clone();
            g.server_name = info.server_name.clone();
        }
        let ours = self.gateways.as_ref().expect("on").name.clone();
        let mut out = Vec::new();
        for acc in &self.accounts {
            let payload = data_encoding::BASE64.encode(acc.name.as_bytes());
            let cmd = |n: u8| {
                let mut line = b"INFO ".to_vec();
                let info = GatewayInfo {
                    gateway: ours.clone(),
                    gateway_cmd: n,
                    gateway_cmd_payload: payload.clone(),
                    ..GatewayInfo::default()
                };
                serde_json::to_writer(&mut line, &info).expect("INFO serializes");
                line.extend_from_slice(b"\r\n");
                line
            };
            out.extend_from_slice(&cmd(2));
            for (key, count) in &acc.interest {
                let weight = count.all.saturating_sub(count.gateways);
                if weight == 0 {
                    continue;
                }
                let (subject, queue) = super::interest::split(key);
                super::route::encode_sub(&mut out, &acc.name, subject, queue.map(|q| (q, weight)));
            }
            out.extend_from_slice(&cmd(3));
        }
        self.send(id, &out);
        let c = &self.conns[id.0];
        let (peer, cid) = (c.peer, c.cid);
        self.gateways.as_mut().expect("on").inbound.push(id);
        let at = self.now.instant + Duration::from_secs(1).min(self.opts.ping_interval);
        self.set_deadline(id, Timer::Ping, Some(at));
        self.log(
            LogLevel::Info,
            format!(
                "{peer} - gid:{cid} - Inbound gateway connection from {:?} ({}) registered",
                info.gateway, info.server_name
            ),
        );
        self.gossip_gateways(id, &info.gateway);
        let mut urls = info.gateway_urls.clone();
        if !info.gateway_url.is_empty() && !urls.contains(&info.gateway_url) {
            urls.insert(0, info.gateway_url.clone());
        }
        self.learn_gateway(&info.gateway, &urls);
        Flow::Continue(())
    }

    /// Tells a new inbound connection from gateway `from` of every other
    /// gateway this server knows (`gateway_cmd` 1), so that its cluster
    /// connects to them too.
    fn gossip_gateways(&mut self, id: ConnId, from: &str) {
        let Some(g) = self.gateways.as_deref() else {
            return;
        };
        let mut out = Vec::new();
        for r in g
            .remotes
            .iter()
            .filter(|r| r.name != from && !r.urls.is_empty())
        {
            let urls: Vec<String> = r.urls.iter().map(RouteUrl::addr).collect();
            out.extend_from_slice(&self.gateway_gossip_line(&r.name, &urls, false));
        }
        if !out.is_empty() {
            self.send(id, &out);
        }
    }

    /// A gateway named `name` at `urls` (told by a peer, or the dialer of
    /// an inbound connection): dial it unless it is known.
    fn learn_gateway(&mut self, name: &str, urls: &[String]) {
        let Some(g) = self.gateways.as_mut() else {
            return;
        };
        if name.is_empty() || name == g.name || g.outbound.contains_key(name) {
            return;
        }
        if let Some(i) = g.remotes.iter().position(|r| r.name == name) {
            if g.remotes[i].conn.is_none() {
                self.dial_gateway(i);
            }
            return;
        }
        let urls: Vec<RouteUrl> = urls
            .iter()
            .filter_map(|u| RouteUrl::parse(u).ok())
            .collect();
        if urls.is_empty() {
            return;
        }
        g.remotes.push(GatewayRemote {
            name: name.to_string(),
            urls,
            next: 0,
            conn: None,
        });
        let i = g.remotes.len() - 1;
        self.dial_gateway(i);
    }

    /// `RS+` on an outbound connection: the remote cluster's interest.
    fn gateway_sub(
        &mut self,
        id: ConnId,
        account: &[u8],
        subject: &[u8],
        queue: Option<(&[u8], &[u8])>,
    ) -> Flow {
        if !self.conns[id.0]
            .gateway
            .as_ref()
            .is_some_and(|g| g.outbound)
        {
            let text = "Received RS+ from gateway on inbound connection";
            self.conn_log(LogLevel::Error, id, text);
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        }
        let Some(acc) = self
            .accounts
            .iter()
            .position(|a| a.name.as_bytes() == account)
            .map(|i| AccountId(i as u32))
        else {
            return Flow::Continue(());
        };
        let weight = queue.map_or(1, |(_, w)| super::interest::queue_weight(w));
        let queue = queue.map(|(q, _)| q);
        let mut key = account.to_vec();
        key.push(b' ');
        key.extend_from_slice(&super::interest::key(subject, queue));
        self.peer_subscribe(id, acc, &key, subject, queue, weight);
        Flow::Continue(())
    }

    /// `RMSG`/`HMSG` on an inbound connection: a remote cluster's message.
    fn gateway_msg(&mut self, id: ConnId, r: &Routed<'_>) {
        let account = self
            .accounts
            .iter()
            .position(|a| a.name.as_bytes() == r.account)
            .map(|i| AccountId(i as u32));
        if let Some(account) = account {
            self.peer_publish(id, account, r);
        }
    }

    /// Interest in `subject` of `account` (outside gateways) is now
    /// `weight` (0: gone): tell every inbound gateway connection.
    pub(crate) fn tell_gateways(
        &mut self,
        account: AccountId,
        subject: &[u8],
        queue: Option<&[u8]>,
        weight: u32,
    ) {
        let Some(g) = self.gateways.as_deref() else {
            return;
        };
        if g.inbound.is_empty() {
            return;
        }
        // Test-only: the gateways are never told the interest went.
        if weight == 0 && self.planted(crate::config::PlantedBug::DropGatewayUnsub) {
            return;
        }
        let mut line = Vec::new();
        let name = &self.accounts[account.0 as usize].name;
        if weight > 0 {
            super::route::encode_sub(&mut line, name, subject, queue.map(|q| (q, weight)));
        } else {
            super::route::encode_unsub(&mut line, name, subject, queue);
        }
        let ids = g.inbound.clone();
        for id in ids {
            self.send(id, &line);
        }
    }

    /// A gateway connection is closing.
    pub(crate) fn gateway_teardown(&mut self, id: ConnId, reason: CloseReason) {
        self.conns[id.0].closing = true;
        let subs: Vec<SubId> = self.conns[id.0].subs.drain().map(|(_, s)| s).collect();
        for s in subs {
            self.remove_sub(s);
        }
        for t in Timer::ALL {
            self.set_deadline(id, t, None);
        }
        let c = &self.conns[id.0];
        let (peer, cid) = (c.peer, c.cid);
        let (remote, name, ready) = c
            .gateway
            .as_ref()
            .map_or((None, String::new(), false), |g| {
                (g.remote, g.name.clone(), g.ready)
            });
        if let Some(g) = self.gateways.as_mut() {
            g.inbound.retain(|&c| c != id);
            if g.outbound.get(&name) == Some(&id) {
                g.outbound.remove(&name);
            }
        }
        if ready {
            self.log(
                LogLevel::Info,
                format!(
                    "{peer} - gid:{cid} - Gateway connection closed: {}",
                    reason.as_str()
                ),
            );
        }
        if let Some(i) = remote {
            self.gateway_remote_lost(i);
        }
    }

    /// Delivers or forwards a `_GR_.<cluster>.<server>.<reply>` subject:
    /// to the cluster it names, else to the server it names, else here
    /// under the plain reply. False when it is no such subject.
    pub(crate) fn route_gateway_reply(
        &mut self,
        publisher: ConnId,
        account: AccountId,
        p: &Pub<'_>,
    ) -> bool {
        let Some(g) = self.gateways.as_deref() else {
            return false;
        };
        let rest = &p.subject[GR_PREFIX.len()..];
        if rest.len() < 14 || rest[6] != b'.' || rest[13] != b'.' {
            return false;
        }
        let (cluster, server, reply) = (&rest[..6], &rest[7..13], &rest[14..]);
        if cluster != g.cluster_hash {
            let target = g
                .outbound
                .iter()
                .find(|(name, _)| hash6(name) == cluster)
                .map(|(_, &id)| id);
            if let Some(out) = target
                && self
                    .conns
                    .get(publisher.0)
                    .is_none_or(|c| c.kind != ConnKind::Gateway)
            {
                self.forward(publisher, out, account, p, b"");
            }
            return true;
        }
        if server != g.server_hash {
            let route = self
                .routes()
                .into_iter()
                .find_map(|(id, peer)| (hash6(&peer.server_id) == server).then_some(id));
            if let Some(r) = route
                && self
                    .conns
                    .get(publisher.0)
                    .is_none_or(|c| c.kind != ConnKind::Route)
            {
                self.forward(publisher, r, account, p, b"");
            }
            return true;
        }
        let local = Pub {
            subject: reply,
            ..*p
        };
        let reply = reply.to_vec();
        let local = Pub {
            subject: &reply,
            ..local
        };
        self.route(
            publisher,
            account,
            &local,
            &mut super::accounts::Route::default(),
        );
        true
    }

    /// A client of this server subscribed to `subject`: for a while,
    /// replies matching it go to other clusters mapped.
    pub(crate) fn note_recent_sub(&mut self, account: AccountId, subject: &[u8]) {
        let now = self.now.instant;
        let Some(g) = self.gateways.as_mut() else {
            return;
        };
        while g.recent.front().is_some_and(|(_, _, until)| *until <= now)
            || g.recent.len() >= RECENT_SUBS_MAX
        {
            g.recent.pop_front();
        }
        g.recent
            .push_back((account, subject.into(), now + RECENT_SUB));
    }

    /// `reply` as it goes to another cluster: `_GR_.<cluster hash>.<server
    /// hash>.<reply>` when a subscription matching it was made here lately,
    /// else `None` (it goes as it is).
    pub(crate) fn gateway_reply_for(&self, account: AccountId, reply: &[u8]) -> Option<Vec<u8>> {
        let g = self.gateways.as_deref()?;
        if reply.is_empty() || reply.starts_with(GR_PREFIX) {
            return None;
        }
        let now = self.now.instant;
        let recent = g.recent.iter().any(|(a, subject, until)| {
            *a == account && *until > now && crate::subject::matches(subject, reply)
        });
        if !recent {
            return None;
        }
        let mut out = Vec::with_capacity(GR_PREFIX.len() + 14 + reply.len());
        out.extend_from_slice(GR_PREFIX);
        out.extend_from_slice(&g.cluster_hash);
        out.push(b'.');
        out.extend_from_slice(&g.server_hash);
        out.push(b'.');
        out.extend_from_slice(reply);
        Some(out)
    }

    /// A client gets a message whose reply is a `_GR_` subject: it sees the
    /// plain reply, and its publish to that goes back as the `_GR_` one.
    pub(crate) fn map_gateway_reply<'a>(&mut self, target: ConnId, reply: &'a [u8]) -> &'a [u8] {
        let rest = &reply[GR_PREFIX.len()..];
        if rest.len() < 15 || rest[6] != b'.' || rest[13] != b'.' {
            return reply;
        }
        let plain = &rest[14..];
        let until = self.now.instant + REPLY_MAPPING;
        let now = self.now.instant;
        let c = &mut self.conns[target.0];
        c.gw_replies.retain(|(_, _, at)| *at > now);
        if c.gw_replies.len() >= REPLY_MAPPINGS_MAX {
            c.gw_replies.remove(0);
        }
        c.gw_replies.push((plain.into(), reply.into(), until));
        plain
    }

    /// The `_GR_` subject a client's publish to `subject` answers, if it
    /// is a reply mapped by [`Server::map_gateway_reply`].
    pub(crate) fn mapped_gateway_reply(&mut self, id: ConnId, subject: &[u8]) -> Option<Box<[u8]>> {
        let now = self.now.instant;
        let c = &mut self.conns[id.0];
        if c.gw_replies.is_empty() {
            return None;
        }
        c.gw_replies.retain(|(_, _, at)| *at > now);
        let i = c
            .gw_replies
            .iter()
            .position(|(plain, ..)| &plain[..] == subject)?;
        Some(c.gw_replies.swap_remove(i).1)
    }

    /// The handshake timeout of TLS on gateways, if it is on.
    fn gateway_tls(&self) -> Option<Duration> {
        let tls = self.opts.gateway.as_ref()?.tls.as_ref()?;
        Some(tls.timeout)
    }

    /// The configured remote gateway an outbound connection was dialed
    /// for, by name (a gateway learned by gossip has none).
    pub fn gateway_remote_of(&self, id: ConnId) -> Option<&str> {
        let g = self.conns.get(id.0)?.gateway.as_ref()?;
        if !g.outbound {
            return None;
        }
        let name = &self.gateways.as_ref()?.remotes.get(g.remote?)?.name;
        self.opts
            .gateway
            .as_ref()?
            .gateways
            .iter()
            .any(|r| r.name == *name)
            .then_some(name.as_str())
    }

    /// TLS on outbound connection `id`: the remote's own `tls` block, else
    /// `gateway { tls }` (its handshake timeout, if either is on).
    fn outbound_tls(&self, id: ConnId) -> Option<Duration> {
        let own = self.gateway_remote_of(id).and_then(|name| {
            let g = self.opts.gateway.as_ref()?;
            let r = g.gateways.iter().find(|r| r.name == name)?;
            Some(r.tls.as_ref()?.timeout)
        });
        own.or_else(|| self.gateway_tls())
    }

    /// Outbound and inbound gateway connections, for monitoring.
    pub(crate) fn gateway_conns(&self) -> (Vec<(String, ConnId)>, Vec<ConnId>) {
        self.gateways
            .as_ref()
            .map_or((Vec::new(), Vec::new()), |g| {
                (
                    g.outbound.iter().map(|(n, &c)| (n.clone(), c)).collect(),
                    g.inbound.clone(),
                )
            })
    }
}

mod gossip;
#[cfg(test)]
mod tests;
