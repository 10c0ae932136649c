//! Leaf nodes: a server (the leaf) dials a hub and binds one of its
//! accounts to one of the hub's, and the two exchange interest (`LS+`,
//! `LS-`) and messages (`LMSG`, `HMSG`) for that account as nats-server
//! 2.9 and 2.15 do without compression, so natrix and nats-server mix as
//! hubs and leaf nodes either way.
//!
//! The hub speaks first: an `INFO` with a connection id, a nonce and its
//! leaf node URLs (a nats-server leaf refuses an `INFO` without them), and
//! `info_on_connect`. The leaf answers with `CONNECT` only. The hub checks
//! it (a leaf's server id, not a gateway, credentials, not the hub's own
//! cluster), binds the account (the credentials' or `$G`) and answers with
//! a second `INFO` (`connect_info`, `remote_account`); then each side sends
//! its loop detection subject (`$LDS.<random>`, one per account) and its
//! interest. A server that hears its own `$LDS.` subject from a leaf node
//! has a loop: it refuses the connection, and the dialing side waits 30 s.
//!
//! Interest and forwarding follow `interest` and `deliver`: a leaf node
//! connection hears of every subscription of its account but its own
//! (local ones, routes' and other leaf nodes'), and a message from a leaf
//! node goes to local subscribers, routes and other leaf nodes.

use core::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::conn::{Conn, ConnKind};
use super::timers::{Timer, TimerKey};
use super::{AccountId, Action, CloseReason, ConnId, LogLevel, Server, SubId};
use crate::proto::{Op, Routed};
pub(crate) use perms::{PeerPerms, SubjectFilter};

mod auth;
mod perms;
mod urls;

type Flow = ControlFlow<()>;

/// Wait between attempts to dial a remote (nats-server's default).
const REDIAL_DELAY: Duration = Duration::from_secs(1);
/// Wait before dialing again a remote that found a loop.
const LOOP_DELAY: Duration = Duration::from_secs(30);
/// A leaf node connection's first `PING`.
const FIRST_LEAF_PING: Duration = Duration::from_secs(1);

/// Leaf node connections of this server, both roles.
#[derive(Debug, Default)]
pub(crate) struct LeafNodes {
    /// The leaf node listener's port, once bound.
    pub port: u16,
    /// Hubs this server dials.
    pub remotes: Vec<LeafRemoteState>,
    /// Connections past their handshake (interest flows on them).
    pub ready: Vec<ConnId>,
    /// Each account's loop detection subject, by account name.
    pub lds: std::collections::BTreeMap<String, String>,
    /// Route peers' leaf node URLs, by server id (see `urls`).
    pub peer_urls: std::collections::BTreeMap<String, String>,
}

/// A hub to dial.
#[derive(Debug)]
pub(crate) struct LeafRemoteState {
    pub urls: urls::RemoteUrls,
    pub account: String,
    pub conn: Option<ConnId>,
}

/// What a leaf node connection knows of its peer.
#[derive(Debug, Default)]
pub(crate) struct LeafState {
    /// This server dialed it (it is the leaf; the peer is its hub).
    pub solicited: bool,
    /// The remote it was dialed for.
    pub remote: Option<usize>,
    /// The peer's server name and id, and its cluster.
    pub name: String,
    pub server_id: String,
    pub cluster: String,
    /// Interest flows (the handshake is done).
    pub ready: bool,
    /// The hub said it sends a second `INFO` before interest flows.
    pub info_on_connect: bool,
    /// The hub's first `INFO` came (the leaf answered it).
    pub connected: bool,
    /// The peer's own subscriptions by key, as weights: what this
    /// connection is not told back.
    pub own: crate::FastMap<Box<[u8]>, u32>,
    /// The peer found a loop: dial again only after [`LOOP_DELAY`].
    pub looped: bool,
    /// What this connection carries each way; `None` (most): everything.
    pub perms: Option<Box<PeerPerms>>,
}

/// The hub's `INFO` to a leaf node.
#[derive(Debug, Serialize)]
struct HubInfo<'a> {
    server_id: &'a str,
    server_name: &'a str,
    version: &'a str,
    proto: i32,
    go: &'a str,
    host: &'a str,
    port: u16,
    headers: bool,
    auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
    max_payload: i32,
    /// None in the `INFO` that tells of a change of `leafnode_urls`.
    #[serde(skip_serializing_if = "is_zero")]
    client_id: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    nonce: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    cluster: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    domain: &'a str,
    /// The leaf node's user's subscribe and publish permissions, for it to
    /// apply on its side (second `INFO`).
    #[serde(skip_serializing_if = "Option::is_none")]
    import: Option<SubjectFilter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<SubjectFilter>,
    info_on_connect: bool,
    #[serde(skip_serializing_if = "is_false")]
    connect_info: bool,
    leafnode_urls: Vec<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    remote_account: &'a str,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The fields of a hub's `INFO` a leaf uses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PeerHubInfo {
    server_id: String,
    server_name: String,
    client_id: u64,
    cluster: String,
    nonce: String,
    tls_required: bool,
    info_on_connect: bool,
    connect_info: bool,
    leafnode_urls: Option<Vec<String>>,
    /// What the hub's user may subscribe to and publish.
    import: Option<SubjectFilter>,
    export: Option<SubjectFilter>,
    /// The hub's JetStream domain.
    domain: String,
}

/// A leaf node's `CONNECT`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct LeafConnect {
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_token: Option<String>,
    server_id: String,
    name: String,
    cluster: String,
    headers: bool,
    #[serde(skip_serializing)]
    gateway: String,
    /// Subjects the leaf node does not want (its `deny_imports`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deny_pub: Vec<String>,
    /// This server's JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    domain: String,
}

impl Server {
    /// Sets up leaf nodes from the options (dialing starts at once: a
    /// leaf needs no listener of its own).
    pub(crate) fn install_leafnodes(&mut self) {
        let Some(l) = &self.opts.leafnodes else {
            return;
        };
        let unreadable: Vec<String> = l
            .remotes
            .iter()
            .filter_map(|r| {
                let file = r.credentials.as_ref()?;
                let path = &file.path;
                match file.read.as_ref()? {
                    Ok(_) => None,
                    Err(e) if e == "malformed" || e == "has malformed seed" => {
                        Some(format!("LeafNode Remote Credentials file {path:?} {e}"))
                    }
                    Err(e) => Some(format!(
                        "Error reading LeafNode Remote Credentials file {path:?}: {e}"
                    )),
                }
            })
            .collect();
        for text in unreadable {
            self.log(LogLevel::Error, text);
        }
        let Some(l) = &self.opts.leafnodes else {
            return;
        };
        let mut remotes: Vec<LeafRemoteState> = l
            .remotes
            .iter()
            .map(|r| LeafRemoteState {
                urls: urls::RemoteUrls::new(&r.urls, r.ignore_discovered_servers),
                account: r.account.clone().unwrap_or_else(|| "$G".to_string()),
                conn: None,
            })
            .collect();
        // The configured URLs in a random order, as nats-server, unless
        // `no_randomize`.
        for (r, cfg) in remotes.iter_mut().zip(&l.remotes) {
            if !cfg.no_randomize {
                r.urls
                    .shuffle(|n| rand_core::Rng::next_u32(&mut self.rng.ids) as usize % n);
            }
        }
        let port = l.port.unwrap_or(0);
        self.leafnodes = Some(Box::new(LeafNodes {
            port,
            remotes,
            ready: Vec::new(),
            lds: std::collections::BTreeMap::new(),
            peer_urls: std::collections::BTreeMap::new(),
        }));
        let n = self.leafnodes.as_ref().map_or(0, |l| l.remotes.len());
        for i in 0..n {
            self.dial_leaf_remote(i);
        }
    }

    /// The leaf node listener is bound.
    pub(crate) fn on_leaf_listening(&mut self, port: u16) {
        if let Some(l) = self.leafnodes.as_mut() {
            l.port = port;
        }
    }

    /// The loop detection subject of `account`, made on first use.
    fn lds_subject(&mut self, account: AccountId) -> String {
        let name = self.accounts[account.0 as usize].name.clone();
        if let Some(s) = self.leafnodes.as_ref().and_then(|l| l.lds.get(&name)) {
            return s.clone();
        }
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut s = String::from("$LDS.");
        for _ in 0..22 {
            let i = rand_core::Rng::next_u32(&mut self.rng.ids) as usize % ALPHABET.len();
            s.push(ALPHABET[i] as char);
        }
        if let Some(l) = self.leafnodes.as_mut() {
            l.lds.insert(name, s.clone());
        }
        s
    }

    fn leaf_urls(&self) -> Vec<String> {
        let l = self.opts.leafnodes.as_ref();
        vec![super::advertised_url(
            l.and_then(|l| l.advertise.as_deref()),
            l.map_or("", |l| l.host.as_str()),
            &self.opts.host,
            self.leafnodes.as_ref().map_or(0, |l| l.port),
        )]
    }

    fn hub_info_line(
        &self,
        cid: u64,
        nonce: &str,
        remote_account: &str,
        user: Option<&crate::auth::Permissions>,
    ) -> Vec<u8> {
        let l = self.opts.leafnodes.as_ref();
        let host = l.map_or("", |l| l.host.as_str());
        let cluster = self.cluster.as_ref().map_or("", |c| c.name.as_str());
        let mut port = self.leafnodes.as_ref().map_or(0, |l| l.port);
        // `advertise` names the host and port in INFO too.
        let urls = self.leaf_urls();
        let advertised = l
            .and_then(|l| l.advertise.as_ref())
            .and_then(|_| super::host_and_port(urls.first()?));
        let host = match advertised {
            Some((h, p)) => {
                port = p;
                h
            }
            None => host,
        };
        let info = HubInfo {
            server_id: &self.info.server_id,
            server_name: &self.info.server_name,
            version: &self.info.version,
            proto: 1,
            go: &self.info.go,
            host: if host.is_empty() { "0.0.0.0" } else { host },
            port,
            headers: self.info.headers,
            auth_required: true,
            tls_required: l.is_some_and(|l| l.tls.is_some()),
            tls_verify: l.and_then(|l| l.tls.as_ref()).is_some_and(|t| t.verify),
            max_payload: self.info.max_payload,
            client_id: cid,
            nonce,
            cluster,
            domain: self.own_js_domain().unwrap_or_default(),
            import: user
                .and_then(|p| p.subscribe.as_ref())
                .map(SubjectFilter::sent),
            export: user
                .and_then(|p| p.publish.as_ref())
                .map(SubjectFilter::sent),
            info_on_connect: true,
            connect_info: !remote_account.is_empty(),
            leafnode_urls: self.cluster_leaf_urls(),
            remote_account,
        };
        let mut out = b"INFO ".to_vec();
        serde_json::to_writer(&mut out, &info).expect("INFO serializes");
        out.extend_from_slice(b" \r\n");
        out
    }

    /// A leaf node dialed this hub.
    pub(crate) fn on_leaf_accepted(&mut self, expected: ConnId, peer: SocketAddr) {
        self.next_cid += 1;
        let cid = self.next_cid;
        let mut conn = Conn::new(ConnKind::Leaf, cid, peer, self.now.instant);
        conn.leaf = Some(Box::default());
        conn.awaiting_auth = true;
        let id = ConnId(self.conns.insert(conn));
        assert_eq!(id, expected, "the driver names the id next_conn_id gave");
        if self.leafnodes.is_none() || self.lame_duck.is_some() {
            self.close(id, CloseReason::ServerShutdown, false);
            return;
        }
        self.log(
            LogLevel::Info,
            format!("{peer} - lid:{cid} - Leafnode connection created"),
        );
        let nonce = self.make_nonce();
        self.conns[id.0].nonce = nonce.clone();
        // With TLS, the handshake follows the plaintext INFO, or comes
        // first with `handshake_first` (INFO then goes out encrypted).
        let tls = self.opts.leafnodes.as_ref().and_then(|l| l.tls.as_ref());
        let first = tls.is_some_and(|t| t.handshake_first);
        let tls = tls.map(|t| t.timeout);
        self.await_peer_tls(id, tls, first);
        let line = self.hub_info_line(cid, &nonce, "", None);
        self.send(id, &line);
        if tls.is_some() && !first {
            self.flush_dirty();
            self.actions.push_back(Action::StartTls { conn: id });
        }
        let timeout = self
            .opts
            .leafnodes
            .as_ref()
            .and_then(|l| l.auth_timeout)
            .unwrap_or(Duration::from_secs(2));
        let at = self.now.instant + timeout;
        self.set_deadline(id, Timer::Auth, Some(at));
    }

    /// Starts dialing hub `i`, at its next URL.
    fn dial_leaf_remote(&mut self, i: usize) {
        let Some(l) = self.leafnodes.as_deref_mut() else {
            return;
        };
        let r = &mut l.remotes[i];
        if r.conn.is_some() {
            return;
        }
        let Some(url) = r.urls.pick_next() else {
            return;
        };
        let name = r.account.clone();
        let account = self.account_id(&name).unwrap_or(AccountId::GLOBAL);
        let id = self.dial_peer(ConnKind::Leaf, url.addr(), |conn| {
            conn.account = account;
            conn.leaf = Some(Box::new(LeafState {
                solicited: true,
                remote: Some(i),
                ..LeafState::default()
            }));
        });
        self.leafnodes.as_mut().expect("checked").remotes[i].conn = Some(id);
    }

    /// A leaf node's dial connected: wait for the hub's `INFO` (in
    /// plaintext, with TLS to the hub too: the handshake follows it).
    pub(crate) fn on_leaf_dialed(&mut self, id: ConnId, peer: SocketAddr) {
        if !self.peer_dialed(id, peer) {
            return;
        }
        // With `handshake_first`, before the hub's INFO (which comes
        // encrypted); else after it, when it is read.
        if let Some((timeout, first)) = self.leaf_remote_tls(id) {
            self.await_peer_tls(id, Some(timeout), first);
        }
        let cid = self.conns[id.0].cid;
        self.log(
            LogLevel::Info,
            format!("{peer} - lid:{cid} - Leafnode connection created"),
        );
    }

    /// A leaf node's dial failed: try the next URL after the delay.
    pub(crate) fn on_leaf_dial_failed(&mut self, id: ConnId, error: &str) {
        let remote = self.conns[id.0].leaf.as_ref().and_then(|l| l.remote);
        let closing = self.conns[id.0].closing;
        self.conns.remove(id.0);
        let Some(i) = remote else {
            return;
        };
        self.log(
            LogLevel::Error,
            format!("Error trying to connect as leafnode to remote server: {error}"),
        );
        self.leaf_remote_lost(i, closing, false);
    }

    fn leaf_remote_lost(&mut self, i: usize, shutting_down: bool, looped: bool) {
        let delay = self
            .opts
            .leafnodes
            .as_ref()
            .and_then(|l| l.reconnect)
            .unwrap_or(REDIAL_DELAY);
        let Some(l) = self.leafnodes.as_mut() else {
            return;
        };
        l.remotes[i].conn = None;
        if shutting_down || self.shutting_down || self.lame_duck.is_some() {
            return;
        }
        let at = self.now.instant + if looped { LOOP_DELAY } else { delay };
        self.timers.set(TimerKey::LeafRedial(i as u32), Some(at));
    }

    pub(crate) fn leaf_redial_timer(&mut self, i: u32) {
        self.dial_leaf_remote(i as usize);
    }

    /// One op from a leaf node connection.
    pub(crate) fn process_leaf_op(&mut self, id: ConnId, op: Op<'_>) -> Flow {
        match op {
            Op::Connect(json) => self.leaf_connect(id, json),
            Op::Info(json) => self.leaf_info(id, json),
            Op::Ping | Op::Pong | Op::Ok => self.peer_keepalive(id, &op),
            Op::Err(text) => {
                let text = String::from_utf8_lossy(text);
                if text.contains("Loop detected")
                    && let Some(l) = self.conns[id.0].leaf.as_mut()
                {
                    l.looped = true;
                }
                self.conn_log(LogLevel::Error, id, &format!("Leafnode Error {text}"));
                self.close(id, CloseReason::ParseError, false);
                Flow::Break(())
            }
            Op::RouteSub { subject, queue, .. } => self.leaf_sub(id, subject, queue),
            Op::RouteUnsub { subject, queue, .. } => {
                self.leaf_unsub(id, subject, queue);
                Flow::Continue(())
            }
            Op::Routed(r) => {
                let denied = self.conns[id.0]
                    .leaf
                    .as_ref()
                    .is_some_and(|l| l.denies_import(r.msg.subject));
                if denied {
                    return self.leaf_violation(id, "Publish", r.msg.subject);
                }
                self.leaf_msg(id, &r);
                if self.conns[id.0].closing {
                    Flow::Break(())
                } else {
                    Flow::Continue(())
                }
            }
            Op::Pub(_) | Op::Sub { .. } | Op::Unsub { .. } | Op::Msg => {
                unreachable!("the leaf parser yields no client ops")
            }
        }
    }

    /// The hub's side: a leaf node's `CONNECT`.
    fn leaf_connect(&mut self, id: ConnId, json: &[u8]) -> Flow {
        self.set_deadline(id, Timer::Auth, None);
        if self.conns[id.0].leaf.as_ref().is_some_and(|l| l.solicited) {
            // A hub does not send CONNECT.
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        }
        let Ok(connect) = serde_json::from_slice::<LeafConnect>(json) else {
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        };
        let refuse = |s: &mut Server, text: &str, reason| {
            s.conn_log(LogLevel::Error, id, text);
            s.send_err(id, text);
            s.close(id, reason, true);
            Flow::Break(())
        };
        if connect.server_id.is_empty() {
            return refuse(
                self,
                "attempted to connect to leaf node port",
                CloseReason::ProtocolViolation,
            );
        }
        if !connect.gateway.is_empty() {
            let text = format!(
                "Rejecting connection from gateway {:?} on the leafnode port",
                connect.gateway
            );
            return refuse(self, &text, CloseReason::ProtocolViolation);
        }
        let Some((account, user_perms)) =
            self.leaf_account(&connect, self.conns[id.0].nonce.as_bytes())
        else {
            self.conn_log(LogLevel::Error, id, "authentication error");
            self.send_err(id, "Authorization Violation");
            self.close(id, CloseReason::AuthenticationViolation, true);
            return Flow::Break(());
        };
        let ours = self.cluster.as_ref().map(|c| c.name.clone());
        if ours.is_some_and(|n| n == connect.cluster) {
            return refuse(
                self,
                "remote leafnode has same cluster name",
                CloseReason::ProtocolViolation,
            );
        }
        let cid = self.conns[id.0].cid;
        {
            let c = &mut self.conns[id.0];
            c.awaiting_auth = false;
            c.connect_received = true;
            c.account = account;
            let l = c.leaf.as_mut().expect("a leaf has its state");
            l.name = connect.name.clone();
            l.server_id = connect.server_id.clone();
            l.cluster = connect.cluster.clone();
            l.perms = PeerPerms::of_hub_user(user_perms.as_ref(), &connect.deny_pub)
                .with_jetstream_apart(
                    Some(account) == self.system_account,
                    self.opts.jetstream.as_ref().map(|j| j.domain.as_str()),
                    &connect.domain,
                )
                .boxed();
        }
        let name = self.accounts[account.0 as usize].name.clone();
        let line = self.hub_info_line(cid, "", &name, user_perms.as_ref());
        self.send(id, &line);
        self.leaf_ready(id);
        Flow::Continue(())
    }

    /// The leaf's side: the hub's `INFO`s.
    fn leaf_info(&mut self, id: ConnId, json: &[u8]) -> Flow {
        let Ok(info) = serde_json::from_slice::<PeerHubInfo>(json) else {
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        };
        let l = self.conns[id.0]
            .leaf
            .as_deref()
            .expect("a leaf has its state");
        if !l.solicited {
            // A leaf node sends no INFO without compression; ignore it.
            return Flow::Continue(());
        }
        // Every INFO of the hub tells its cluster's leaf node URLs.
        if let (Some(i), Some(urls)) = (l.remote, info.leafnode_urls.as_deref())
            && let Some(r) = self.leafnodes.as_mut().and_then(|l| l.remotes.get_mut(i))
        {
            r.urls.learn(urls);
        }
        let l = self.conns[id.0]
            .leaf
            .as_deref()
            .expect("a leaf has its state");
        if l.connected {
            // The hub's user's permissions, to apply on this side.
            if info.import.is_some() || info.export.is_some() {
                let perms =
                    self.spoke_perms(id, info.export.as_ref(), info.import.as_ref(), &info.domain);
                if let Some(l) = self.conns[id.0].leaf.as_mut() {
                    l.perms = perms;
                }
            }
            let l = self.conns[id.0]
                .leaf
                .as_deref()
                .expect("a leaf has its state");
            if info.connect_info && !l.ready {
                self.leaf_ready(id);
            }
            return Flow::Continue(());
        }
        if info.client_id == 0 || info.leafnode_urls.is_none() {
            self.conn_log(
                LogLevel::Error,
                id,
                "Leafnode attempted to connect to wrong port",
            );
            self.close(id, CloseReason::ProtocolViolation, false);
            return Flow::Break(());
        }
        let remote = l.remote;
        let on_tls = self.conns[id.0].tls.is_some();
        match (self.conns[id.0].tls_pending.is_some(), info.tls_required) {
            // The handshake before CONNECT, which goes out encrypted.
            (true, _) => self.actions.push_back(Action::StartTls { conn: id }),
            // Shaken hands first (`handshake_first`).
            _ if on_tls => {}
            (false, true) => {
                self.conn_log(
                    LogLevel::Error,
                    id,
                    "The hub requires TLS: give this leaf node remote a tls block (natrix does \
                     not use the system's roots)",
                );
                self.close(id, CloseReason::TlsHandshakeError, false);
                return Flow::Break(());
            }
            (false, false) => {}
        }
        let user = remote.and_then(|i| self.leafnodes.as_ref()?.remotes[i].urls.user());
        let cluster = match self.cluster.as_ref() {
            Some(c) => c.name.clone(),
            None => self.info.server_name.clone(),
        };
        let mut connect = LeafConnect {
            version: self.info.version.clone(),
            server_id: self.info.server_id.clone(),
            name: self.info.server_name.clone(),
            cluster,
            headers: self.info.headers,
            ..LeafConnect::default()
        };
        let perms = self.spoke_perms(id, info.export.as_ref(), info.import.as_ref(), &info.domain);
        connect.domain = self.own_js_domain().unwrap_or_default().to_string();
        if let Some(r) = remote.and_then(|i| self.opts.leafnodes.as_ref()?.remotes.get(i)) {
            connect.deny_pub = r.deny_imports.clone();
        }
        if let Err(text) = self.leaf_credentials(remote, &info.nonce, &mut connect) {
            self.conn_log(LogLevel::Error, id, &text);
            self.close(id, CloseReason::AuthenticationViolation, false);
            return Flow::Break(());
        }
        // A user alone in the URL goes as a token too, as nats-server
        // sends it.
        if let Some((user, pass)) = user {
            if pass.is_none() {
                connect.auth_token = Some(user.clone());
            }
            connect.user = Some(user);
            connect.pass = pass;
        }
        let mut out = b"CONNECT ".to_vec();
        serde_json::to_writer(&mut out, &connect).expect("CONNECT serializes");
        out.extend_from_slice(b"\r\n");
        self.send(id, &out);
        {
            let l = self.conns[id.0]
                .leaf
                .as_mut()
                .expect("a leaf has its state");
            l.connected = true;
            l.perms = perms;
            l.info_on_connect = info.info_on_connect;
            l.name = info.server_name;
            l.server_id = info.server_id;
            l.cluster = info.cluster;
        }
        self.conns[id.0].connect_received = true;
        if !info.info_on_connect {
            self.leaf_ready(id);
        }
        Flow::Continue(())
    }

    /// The handshake is done: send the loop detection subject and all
    /// interest of the bound account, and count the connection.
    fn leaf_ready(&mut self, id: ConnId) {
        let account = self.conns[id.0].account;
        let lds = self.lds_subject(account);
        let mut out = Vec::new();
        encode_leaf_sub(&mut out, lds.as_bytes(), None);
        let spoke = self.conns[id.0].leaf.as_ref().is_some_and(|l| l.solicited);
        let mut ids = self.leafs_of(account);
        ids.push(id);
        for (key, count) in &self.accounts[account.0 as usize].interest {
            let (subject, queue) = super::interest::split(key);
            let weight = count.for_leaf(spoke, self.cluster_own(&ids, id, key));
            if weight == 0 {
                continue;
            }
            let denied = self.conns[id.0]
                .leaf
                .as_ref()
                .is_some_and(|l| l.denies_import(subject));
            if !denied {
                encode_leaf_sub(&mut out, subject, queue.map(|q| (q, weight)));
            }
        }
        self.send(id, &out);
        let c = &mut self.conns[id.0];
        let l = c.leaf.as_mut().expect("a leaf has its state");
        l.ready = true;
        let (name, peer, cid) = (l.name.clone(), c.peer, c.cid);
        if let Some(ln) = self.leafnodes.as_mut() {
            ln.ready.push(id);
        }
        let at = self.now.instant + FIRST_LEAF_PING.min(self.opts.ping_interval);
        self.set_deadline(id, Timer::Ping, Some(at));
        let account_name = self.accounts[account.0 as usize].name.clone();
        self.log(
            LogLevel::Info,
            format!(
                "{peer} - lid:{cid} - Leafnode connection to {name:?} registered for account {account_name:?}"
            ),
        );
    }

    /// `LS+` from a leaf node: its interest, kept as a subscription of
    /// the connection; its own `$LDS.` subject back means a loop.
    fn leaf_sub(&mut self, id: ConnId, subject: &[u8], queue: Option<(&[u8], &[u8])>) -> Flow {
        let account = self.conns[id.0].account;
        let lds = self.lds_subject(account);
        if subject == lds.as_bytes() {
            let name = self.accounts[account.0 as usize].name.clone();
            let text = format!(
                "Loop detected for leafnode account={name:?}. Delaying attempt to reconnect for 30s"
            );
            self.conn_log(LogLevel::Error, id, &text);
            self.send_err(id, &text);
            if let Some(l) = self.conns[id.0].leaf.as_mut() {
                l.looped = true;
            }
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        }
        let refused = crate::subject::is_literal(subject)
            && self.conns[id.0]
                .leaf
                .as_ref()
                .is_some_and(|l| l.denies_export(subject));
        if refused {
            return self.leaf_violation(id, "Subscription", subject);
        }
        let weight = queue.map_or(1, |(_, w)| super::interest::queue_weight(w));
        let queue = queue.map(|(q, _)| q);
        let key = super::interest::key(subject, queue);
        self.peer_subscribe(id, account, &key, subject, queue, weight);
        Flow::Continue(())
    }

    /// The peer sent interest in (`what`: "Subscription") or a message on
    /// (`"Publish"`) a subject this connection does not carry. A leaf node
    /// drops it quietly (it asked its hub not to send those); a hub tells
    /// the leaf node and closes the connection, as nats-server does.
    fn leaf_violation(&mut self, id: ConnId, what: &str, subject: &[u8]) -> Flow {
        if self.conns[id.0].leaf.as_ref().is_some_and(|l| l.solicited) {
            return Flow::Continue(());
        }
        let subject = String::from_utf8_lossy(subject);
        self.send_err(
            id,
            &format!("Permissions Violation for {what} to {subject:?}"),
        );
        self.conn_log(
            LogLevel::Error,
            id,
            &format!("{what} Violation on {subject:?} - Check other side configuration"),
        );
        self.close(id, CloseReason::ProtocolViolation, true);
        Flow::Break(())
    }

    fn leaf_unsub(&mut self, id: ConnId, subject: &[u8], queue: Option<&[u8]>) {
        let key = super::interest::key(subject, queue);
        self.peer_unsubscribe(id, &key);
    }

    /// `LMSG`/`HMSG` from a leaf node: published in its bound account.
    fn leaf_msg(&mut self, id: ConnId, r: &Routed<'_>) {
        let account = self.conns[id.0].account;
        self.peer_publish(id, account, r);
    }

    /// A subscription count of `account` changed from `counts.0` to
    /// `counts.1` (by `delta`, from connection `from`): tell each ready
    /// leaf node connection of the account whose view changes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tell_leafs(
        &mut self,
        account: AccountId,
        subject: &[u8],
        queue: Option<&[u8]>,
        key: &[u8],
        counts: (super::interest::Count, super::interest::Count),
        from: ConnId,
        delta: i64,
    ) {
        if self.leafnodes.is_none() {
            return;
        }
        let ids = self.leafs_of(account);
        // Test-only: each connection's own interest counts for it too.
        let told_own = self.planted(crate::config::PlantedBug::LeafToldOwnInterest);
        // `from`'s own weight changes first.
        let mut from_change = None;
        if ids.contains(&from) {
            let l = self.conns[from.0]
                .leaf
                .as_mut()
                .expect("a leaf has its state");
            let before = l.own.get(key).copied().unwrap_or(0);
            let after = u32::try_from((i64::from(before) + delta).max(0)).unwrap_or(0);
            if after == 0 {
                l.own.remove(key);
            } else {
                l.own.insert(key.into(), after);
            }
            from_change = Some((before, after));
        }
        // What each leaf node cluster told, summed once (a connection
        // with no cluster name is one of its own).
        let mut told: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
        for &j in &ids {
            let l = self.conns[j.0].leaf.as_ref().expect("a leaf has its state");
            if !l.cluster.is_empty() {
                *told.entry(l.cluster.as_str()).or_default() +=
                    l.own.get(key).copied().unwrap_or(0);
            }
        }
        let owns: Vec<(ConnId, u32, u32)> = ids
            .iter()
            .map(|&id| {
                let l = self.conns[id.0]
                    .leaf
                    .as_ref()
                    .expect("a leaf has its state");
                // What the connection's leaf node cluster told (its own
                // and its cluster's other connections'), before and after.
                let after = match told.get(l.cluster.as_str()) {
                    _ if told_own => 0,
                    Some(&n) => n,
                    None => l.own.get(key).copied().unwrap_or(0),
                };
                let before = match from_change {
                    Some((b, a)) if !told_own && self.same_leaf_cluster(id, from) => {
                        (after + b).saturating_sub(a)
                    }
                    _ => after,
                };
                (id, before, after)
            })
            .collect();
        let mut line = Vec::new();
        for (id, own_before, own_after) in owns {
            let l = self.conns[id.0]
                .leaf
                .as_ref()
                .expect("a leaf has its state");
            let old = counts.0.for_leaf(l.solicited, own_before);
            let new = counts.1.for_leaf(l.solicited, own_after);
            let Some(weight) = super::interest::change(queue.is_some(), old, new) else {
                continue;
            };
            if l.denies_import(subject) {
                continue;
            }
            line.clear();
            if weight == 0 {
                encode_leaf_unsub(&mut line, subject, queue);
            } else {
                encode_leaf_sub(&mut line, subject, queue.map(|q| (q, weight)));
            }
            self.send(id, &line);
        }
    }

    /// The ready leaf node connections of `account`.
    pub(crate) fn leafs_of(&self, account: AccountId) -> Vec<ConnId> {
        self.leafnodes.as_deref().map_or_else(Vec::new, |l| {
            l.ready
                .iter()
                .copied()
                .filter(|&c| {
                    self.conns
                        .get(c.0)
                        .is_some_and(|c| c.account == account && !c.closing)
                })
                .collect()
        })
    }

    /// Whether leaf node connections `a` and `b` are one, or lead to one
    /// cluster (their peers' `cluster`): what one tells is not told back
    /// to the other, as nats-server keeps interest from going back to the
    /// cluster it came from.
    pub(crate) fn same_leaf_cluster(&self, a: ConnId, b: ConnId) -> bool {
        let cluster = |id: ConnId| {
            self.conns
                .get(id.0)
                .and_then(|c| c.leaf.as_ref())
                .map(|l| l.cluster.as_str())
        };
        a == b || matches!((cluster(a), cluster(b)), (Some(x), Some(y)) if !x.is_empty() && x == y)
    }

    /// The weight of `key` the leaf node connections among `ids` that are
    /// `id` or of its cluster told.
    pub(crate) fn cluster_own(&self, ids: &[ConnId], id: ConnId, key: &[u8]) -> u32 {
        ids.iter()
            .filter(|&&j| self.same_leaf_cluster(id, j))
            .filter_map(|j| self.conns[j.0].leaf.as_ref()?.own.get(key).copied())
            .sum()
    }

    /// A leaf node connection is closing: its subscriptions and timers
    /// go, and a remote is dialed again.
    pub(crate) fn leaf_teardown(&mut self, id: ConnId, reason: CloseReason) {
        let c = &mut self.conns[id.0];
        c.closing = true;
        if let Some(ln) = self.leafnodes.as_mut() {
            ln.ready.retain(|&r| r != id);
        }
        let subs: Vec<SubId> = self.conns[id.0].subs.drain().map(|(_, s)| s).collect();
        for s in subs {
            self.remove_sub(s);
        }
        for t in Timer::ALL {
            self.set_deadline(id, t, None);
        }
        let c = &self.conns[id.0];
        let (peer, cid) = (c.peer, c.cid);
        let (remote, looped, ready) = c
            .leaf
            .as_ref()
            .map_or((None, false, false), |l| (l.remote, l.looped, l.ready));
        if ready {
            self.log(
                LogLevel::Info,
                format!(
                    "{peer} - lid:{cid} - Leafnode connection closed: {}",
                    reason.as_str()
                ),
            );
        }
        if let Some(i) = remote {
            self.leaf_remote_lost(i, false, looped);
        }
    }

    /// The handshake timeout of TLS on leaf node connection `id` this
    /// server dialed, if its remote has TLS, and whether it shakes hands
    /// first.
    fn leaf_remote_tls(&self, id: ConnId) -> Option<(Duration, bool)> {
        let i = self.leaf_remote_of(id)?;
        let remote = self.opts.leafnodes.as_ref()?.remotes.get(i)?;
        let tls = remote.tls.as_ref()?;
        Some((tls.timeout, tls.handshake_first))
    }

    /// The remote (by its place in `leafnodes.remotes`) leaf node
    /// connection `id` was dialed for.
    pub fn leaf_remote_of(&self, id: ConnId) -> Option<usize> {
        let l = self.conns.get(id.0)?.leaf.as_ref()?;
        if l.solicited { l.remote } else { None }
    }

    /// Leaf node connections past their handshake, for monitoring.
    pub(crate) fn leafs(&self) -> Vec<ConnId> {
        self.leafnodes
            .as_ref()
            .map(|l| l.ready.clone())
            .unwrap_or_default()
    }
}

/// Appends `LS+ <subject>[ <queue> <weight>]`.
pub(crate) fn encode_leaf_sub(out: &mut Vec<u8>, subject: &[u8], queue: Option<(&[u8], u32)>) {
    out.extend_from_slice(b"LS+ ");
    out.extend_from_slice(subject);
    if let Some((q, weight)) = queue {
        out.push(b' ');
        out.extend_from_slice(q);
        out.push(b' ');
        out.extend_from_slice(itoa::Buffer::new().format(weight).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `LS- <subject>[ <queue>]`.
pub(crate) fn encode_leaf_unsub(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>) {
    out.extend_from_slice(b"LS- ");
    out.extend_from_slice(subject);
    if let Some(q) = queue {
        out.push(b' ');
        out.extend_from_slice(q);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
