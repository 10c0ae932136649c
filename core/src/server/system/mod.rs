//! The system account: the server's own services and events, as
//! nats-server offers them to users of the system account (and tools such
//! as the `nats` CLI).
//!
//! - **The internal client.** With a system account, the server has a
//!   client of its own ([`ConnKind::System`]): no socket, no timers, never
//!   closed. Its subscriptions are real sublist entries, counted where
//!   nats-server counts its own (`/varz`, statsz, `/subsz`, `/accountz`):
//!   the 40 subjects nats-server 2.9 listens on in the system account, and
//!   in every other account the three imports it gives each one
//!   (`$SYS.REQ.ACCOUNT.PING.CONNZ`, `$SYS.REQ.SERVER.PING.CONNZ`,
//!   `$SYS.REQ.ACCOUNT.PING.STATZ`, each about the importing account). A
//!   message delivered to one of them is queued with its [`Service`] and
//!   served at the end of the event that brought it, as nats-server serves
//!   them off its own queue: after the publisher's other output.
//! - **Services** ([`services`]): `$SYS.REQ.SERVER.PING[.<X>]`,
//!   `$SYS.REQ.SERVER.<id>.<X>` (X: `STATSZ`, `VARZ`, `CONNZ`, `SUBSZ`,
//!   `ROUTEZ`, `GATEWAYZ`, `LEAFZ`, `ACCOUNTZ`, `JSZ`, `HEALTHZ`),
//!   `$SYS.REQ.ACCOUNT.<acc>.<Y>` (Y: `CONNZ`, `SUBSZ`, `LEAFZ`, `JSZ`,
//!   `INFO`, `STATZ`, `CONNS`), `$SYS.REQ.ACCOUNT.PING.STATZ` and
//!   `$SYS.DEBUG.SUBSCRIBERS` answer on the reply subject with
//!   `{"server":{..},"data":{..}}` (or `"error"`), the data being what the
//!   HTTP endpoint serves for the options in the request's JSON body. The
//!   subjects on which servers of a cluster tell each other of themselves
//!   (their statsz, shutdown, remote connections, leaf node connects,
//!   latency) are subscribed too; with no cluster there is no one to hear.
//! - **Events**: `$SYS.ACCOUNT.<acc>.CONNECT` / `.DISCONNECT` for clients
//!   of every account but `$G`, `$SYS.SERVER.<id>.CLIENT.AUTH.ERR` for a
//!   failed login, and `$SYS.SERVER.<id>.STATSZ` on a timer (250 ms after
//!   start, doubling up to every 30 s), each built only when a client
//!   listens.
//!
//! The server publishes as its internal client, whose echo is off: its
//! messages reach every client subscriber, never stall, and never reach the
//! services themselves.

mod options;
mod services;

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::accounts::Route;
use super::conn::{Conn, ConnKind, Subscription};
use super::monitor::ProcessInfo;
use super::timers::ServerTimer;
use super::{AccountId, CloseReason, ConnId, LogLevel, Server, SubId};
use crate::proto::Pub;
use crate::time::rfc3339_nanos;
use services::ServerEndpoint;

/// The first periodic statsz goes out this soon after start…
const STATSZ_FIRST: Duration = Duration::from_millis(250);
/// …and the interval doubles up to this.
const STATSZ_EVERY: Duration = Duration::from_secs(30);
/// Messages for the internal client waiting to be served; past this, new
/// ones are dropped (and counted), as a slow consumer's would be.
const INBOX_MAX: usize = 16 * 1024;

/// Base-62 digits of event ids.
const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const CONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_connect";
const DISCONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_disconnect";

/// What an internal subscription does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    /// `$SYS.REQ.SERVER.PING`: statsz.
    Statsz,
    /// `$SYS.REQ.SERVER.{PING,<id>}.<X>`.
    Server(ServerEndpoint),
    /// `$SYS.REQ.ACCOUNT.*.<Y>`, for the account the subject names.
    Account(AccountEndpoint),
    /// An import of every account: `<Y>` about the importing account.
    Imported(AccountEndpoint),
    /// `$SYS.REQ.ACCOUNT.PING.STATZ`.
    AccountPingStatz,
    /// `$SYS.DEBUG.SUBSCRIBERS`.
    DebugSubscribers,
    /// An account JWT update.
    ClaimsUpdate,
    /// What other servers of a cluster publish about themselves.
    Cluster,
    /// A `$JS.API` request.
    JsApi,
    /// A message for a stream (its id in the JetStream state).
    JsStream(u32),
    /// An acknowledgement for a consumer (its id).
    JsAck(u32),
    /// A flow control reply for a push consumer (its id).
    JsFlow(u32),
    /// An acknowledgement of a snapshot's piece (the snapshot's job).
    JsSnapshotAck(u32),
    /// A piece of a restore (the restore's job).
    JsRestore(u32),
}

/// The per-account monitoring services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccountEndpoint {
    Subsz,
    Connz,
    Leafz,
    Jsz,
    Info,
    Statz,
    Conns,
}

/// A message an internal subscription took, kept until it is served.
#[derive(Debug)]
pub(crate) struct InternalMsg {
    /// The account it was published in (the importer's, for an import).
    pub account: AccountId,
    pub subject: Box<[u8]>,
    pub reply: Option<Box<[u8]>>,
    /// Headers (the first `header_len` bytes) and body.
    pub payload: Box<[u8]>,
    pub header_len: usize,
    /// The connection that published it (none for the server's own).
    pub from: Option<ConnId>,
}

impl InternalMsg {
    pub(crate) fn body(&self) -> &[u8] {
        &self.payload[self.header_len..]
    }
}

/// What the system account's machinery keeps.
#[derive(Debug, Default)]
pub(crate) struct SystemState {
    /// The internal client, when there is a system account.
    pub client: Option<ConnId>,
    /// What each of its subscriptions does.
    services: crate::FastMap<SubId, Service>,
    /// Messages for it, served at the end of the event that brought them.
    inbox: VecDeque<(Service, InternalMsg)>,
    /// Messages dropped because the inbox was full.
    pub dropped: u64,
    /// Messages the server has published (`server.seq`).
    seq: u64,
    /// The interval after the next periodic statsz (the `Statsz` timer).
    statsz_step: Duration,
    /// Memory and CPU as the driver last reported them.
    pub process: ProcessInfo,
    /// The internal client's last sid.
    next_sid: u32,
}

impl SystemState {
    pub(crate) fn new() -> Self {
        SystemState {
            statsz_step: STATSZ_FIRST,
            ..SystemState::default()
        }
    }
}

/// The subjects the internal client listens on in the system account
/// (`<id>` is the server's id, `<inbox>` a token of its own), as
/// nats-server 2.9 has them.
fn system_subjects(id: &str, inbox: &str) -> Vec<(String, Service)> {
    let mut subjects = vec![
        ("$SYS.SERVER.ACCOUNT.*.CONNS".to_string(), Service::Cluster),
        ("$SYS.SERVER.*.STATSZ".to_string(), Service::Cluster),
        ("$SYS.SERVER.*.SHUTDOWN".to_string(), Service::Cluster),
        (format!("$SYS._INBOX_.{id}"), Service::Cluster),
        (format!("$SYS._INBOX.{inbox}.*"), Service::Cluster),
        ("$SYS.REQ.ACCOUNT.NSUBS".to_string(), Service::Cluster),
        (
            "$SYS.ACCOUNT.*.CLAIMS.UPDATE".to_string(),
            Service::ClaimsUpdate,
        ),
        (
            "$SYS.REQ.ACCOUNT.*.CLAIMS.UPDATE".to_string(),
            Service::ClaimsUpdate,
        ),
        ("$SYS.REQ.SERVER.PING".to_string(), Service::Statsz),
    ];
    for (endpoint, name) in ServerEndpoint::ALL {
        subjects.push((
            format!("$SYS.REQ.SERVER.{id}.{name}"),
            Service::Server(endpoint),
        ));
        subjects.push((
            format!("$SYS.REQ.SERVER.PING.{name}"),
            Service::Server(endpoint),
        ));
    }
    for (endpoint, name) in [
        (AccountEndpoint::Connz, "CONNZ"),
        (AccountEndpoint::Leafz, "LEAFZ"),
        (AccountEndpoint::Jsz, "JSZ"),
        (AccountEndpoint::Info, "INFO"),
        (AccountEndpoint::Statz, "STATZ"),
        (AccountEndpoint::Conns, "CONNS"),
        (AccountEndpoint::Subsz, "SUBSZ"),
    ] {
        subjects.push((
            format!("$SYS.REQ.ACCOUNT.*.{name}"),
            Service::Account(endpoint),
        ));
    }
    subjects.push((
        "$SYS.REQ.ACCOUNT.PING.STATZ".to_string(),
        Service::AccountPingStatz,
    ));
    subjects.push((
        "$SYS.ACCOUNT.*.LEAFNODE.CONNECT".to_string(),
        Service::Cluster,
    ));
    subjects.push((format!("$SYS.LATENCY.M2.{inbox}"), Service::Cluster));
    subjects.push((
        "$SYS.DEBUG.SUBSCRIBERS".to_string(),
        Service::DebugSubscribers,
    ));
    subjects
}

/// The imports every account but the system account gets.
const IMPORTS: [(&str, AccountEndpoint); 3] = [
    ("$SYS.REQ.ACCOUNT.PING.CONNZ", AccountEndpoint::Connz),
    ("$SYS.REQ.SERVER.PING.CONNZ", AccountEndpoint::Connz),
    ("$SYS.REQ.ACCOUNT.PING.STATZ", AccountEndpoint::Statz),
];

impl Server {
    /// Creates the internal client and its subscriptions, if there is a
    /// system account, and arms the periodic statsz.
    pub(crate) fn install_system(&mut self) {
        assert!(self.system.client.is_none(), "one internal client");
        let Some(sys) = self.system_account else {
            self.set_server_deadline(ServerTimer::Statsz, None);
            return;
        };
        let peer = core::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let mut conn = Conn::new(ConnKind::System, 0, peer, self.now.instant);
        conn.account = sys;
        conn.opts.echo = false;
        conn.headers = true;
        conn.connect_received = true;
        let id = ConnId(self.conns.insert(conn));
        self.system.client = Some(id);
        let inbox = self.info.server_id.get(..8).unwrap_or_default().to_string();
        let mut sid = 0u32;
        for (subject, service) in system_subjects(&self.info.server_id, &inbox) {
            sid += 1;
            let _ = self.internal_subscribe(id, sys, &subject, sid, service);
        }
        let others: Vec<AccountId> = (0..self.accounts.len())
            .map(|i| AccountId(i as u32))
            .filter(|&a| a != sys)
            .collect();
        for account in others {
            for (subject, endpoint) in IMPORTS {
                sid += 1;
                let _ =
                    self.internal_subscribe(id, account, subject, sid, Service::Imported(endpoint));
            }
        }
        self.system.next_sid = sid;
        if self
            .timers
            .get(super::timers::TimerKey::Server(ServerTimer::Statsz))
            .is_none()
            && self.lame_duck.is_none()
        {
            self.arm_statsz();
        }
    }

    /// Removes the internal client and its subscriptions (before the
    /// accounts are rebuilt on reload; [`Self::install_system`] follows).
    pub(crate) fn uninstall_system(&mut self) {
        let Some(id) = self.system.client.take() else {
            return;
        };
        let subs: Vec<SubId> = self.conns[id.0].subs.drain().map(|(_, s)| s).collect();
        for s in subs {
            self.remove_sub(s);
            self.system.services.remove(&s);
        }
        assert!(
            self.system.services.is_empty(),
            "every service was a subscription"
        );
        self.conns.remove(id.0);
    }

    /// Subscribes the internal client with the next free sid (for
    /// subscriptions made after start: JetStream's); returns the handle.
    pub(crate) fn internal_subscribe_next(
        &mut self,
        conn: ConnId,
        account: AccountId,
        subject: &str,
        service: Service,
    ) -> SubId {
        self.system.next_sid += 1;
        let sid = self.system.next_sid;
        self.internal_subscribe(conn, account, subject, sid, service)
    }

    /// Removes one of the internal client's subscriptions.
    pub(crate) fn internal_unsubscribe(&mut self, h: SubId) {
        let Some(s) = self.subs.get(h.0 as usize) else {
            return;
        };
        let (conn, sid) = (s.conn, s.sid.clone());
        if let Some(c) = self.conns.get_mut(conn.0) {
            c.subs.remove(&sid);
        }
        self.remove_sub(h);
        self.system.services.remove(&h);
    }

    fn internal_subscribe(
        &mut self,
        conn: ConnId,
        account: AccountId,
        subject: &str,
        sid: u32,
        service: Service,
    ) -> SubId {
        let key = self.subs.vacant_key();
        let handle = SubId(u32::try_from(key).expect("fewer than 2^32 subscriptions"));
        let inserted =
            self.accounts[account.0 as usize]
                .sublist
                .insert(subject.as_bytes(), None, handle);
        assert!(inserted.is_ok(), "an internal subject is valid: {subject}");
        let sid = crate::bytes::SmallBytes::from(sid.to_string().as_bytes());
        self.interest_changed(account, subject.as_bytes(), None, conn, 1);
        self.subs.insert(Subscription {
            conn,
            account,
            weight: 1,
            subject: subject.as_bytes().into(),
            queue: None,
            sid: sid.clone(),
            max: 0,
            delivered: 0,
            shadow: None,
        });
        self.conns[conn.0].subs.insert(sid, handle);
        self.system.services.insert(handle, service);
        handle
    }

    /// Queues a message an internal subscription took, to be served at
    /// the end of this event.
    pub(crate) fn deliver_internal(&mut self, h: SubId, p: &Pub<'_>, from: ConnId) {
        let service =
            *(self.system.services.get(&h)).expect("an internal subscription has a service");
        if self.system.inbox.len() >= INBOX_MAX {
            self.system.dropped += 1;
            return;
        }
        let account = self.subs[h.0 as usize].account;
        let msg = InternalMsg {
            account,
            subject: p.subject.into(),
            reply: p.reply.map(Into::into),
            payload: p.payload.into(),
            header_len: p.payload.len() - p.body().len(),
            from: Some(from),
        };
        self.system.inbox.push_back((service, msg));
    }

    /// Serves what the internal subscriptions took during this event.
    /// (The server's own messages never reach them, so serving adds
    /// nothing to serve: the loop ends.)
    pub(crate) fn run_internal(&mut self) {
        let queued = self.system.inbox.len();
        for _ in 0..queued {
            let Some((service, msg)) = self.system.inbox.pop_front() else {
                break;
            };
            match service {
                Service::JsApi
                | Service::JsStream(_)
                | Service::JsAck(_)
                | Service::JsFlow(_)
                | Service::JsSnapshotAck(_)
                | Service::JsRestore(_) => self.serve_jetstream(service, msg),
                service => self.serve(service, &msg),
            }
        }
        self.flush_jetstream();
        if self.system.dropped > 0 {
            let n = std::mem::take(&mut self.system.dropped);
            let line = format!("System account request queue full: {n} requests dropped");
            self.log(LogLevel::Warn, line);
        }
        assert!(self.system.inbox.is_empty(), "serving queues nothing more");
    }
}

/// nats-server's `ServerInfo`, the `server` of every message it publishes.
#[derive(Serialize)]
struct ServerHeader<'a> {
    name: &'a str,
    host: &'a str,
    id: &'a str,
    ver: &'a str,
    seq: u64,
    jetstream: bool,
    time: String,
}

#[derive(Serialize, Clone, Copy)]
struct DataStats {
    msgs: u64,
    bytes: u64,
}

/// nats-server's `ClientInfo` for a client's events.
#[derive(Serialize)]
struct ClientInfo {
    start: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    id: u64,
    acc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    ver: String,
    #[serde(skip_serializing_if = "is_zero")]
    rtt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<String>,
    kind: &'static str,
    client_type: &'static str,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A connect or disconnect event (`ConnectEventMsg`,
/// `DisconnectEventMsg`).
#[derive(Serialize)]
struct ClientEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: ServerHeader<'a>,
    client: ClientInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<DataStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<DataStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

impl Server {
    fn statsz_subject(&self) -> String {
        format!("$SYS.SERVER.{}.STATSZ", self.info.server_id)
    }

    /// `{"server":{..},"statsz":{..}}` on `subject`.
    fn send_statsz(&mut self, subject: &[u8]) {
        let c = self.stats.counters;
        let p = &self.system.process;
        let active_accounts = self.accounts.iter().filter(|a| a.num_conns > 0).count();
        let statsz = json!({
            "start": rfc3339_nanos(self.start_unix_nanos),
            "mem": p.mem_bytes,
            "cores": p.cores,
            "cpu": p.cpu_percent,
            "connections": self.open_conns,
            "total_connections": self.stats.total_connections,
            "active_accounts": active_accounts,
            "subscriptions": self.subs.len(),
            "sent": { "msgs": c.out_msgs, "bytes": c.out_bytes },
            "received": { "msgs": c.in_msgs, "bytes": c.in_bytes },
            "slow_consumers": self.stats.slow_consumers,
            "active_servers": 1,
        });
        let header = self.server_header();
        let body = format!("{{\"server\":{header},\"statsz\":{statsz}}}");
        self.publish_internal(None, subject, body.as_bytes());
    }

    /// The periodic statsz: the first 250 ms after start, then at an
    /// interval doubling up to 30 s.
    pub(crate) fn arm_statsz(&mut self) {
        let at = self.system_account.map(|_| self.now.instant + STATSZ_FIRST);
        self.system.statsz_step = STATSZ_FIRST;
        self.set_server_deadline(ServerTimer::Statsz, at);
    }

    /// The periodic statsz is due.
    pub(crate) fn statsz_timer(&mut self) {
        let now = self.now.instant;
        assert!(self.lame_duck.is_none(), "statsz stops in lame duck mode");
        let step = (self.system.statsz_step * 2).min(STATSZ_EVERY);
        self.system.statsz_step = step;
        self.set_server_deadline(ServerTimer::Statsz, Some(now + step));
        let subject = self.statsz_subject();
        if self.has_system_interest(subject.as_bytes()) {
            self.send_statsz(subject.as_bytes());
        }
    }

    /// `$SYS.ACCOUNT.<acc>.CONNECT` for a client that logged in to an
    /// account other than `$G`.
    pub(crate) fn connect_event(&mut self, id: ConnId) {
        self.account_event(id, None);
    }

    /// `$SYS.ACCOUNT.<acc>.DISCONNECT` for a closing client of an account
    /// other than `$G`.
    pub(crate) fn disconnect_event(&mut self, id: ConnId, reason: CloseReason) {
        self.account_event(id, Some(reason));
    }

    /// A connect event, or a disconnect event with its reason, published
    /// only when a system-account client listens.
    fn account_event(&mut self, id: ConnId, closed: Option<CloseReason>) {
        let account = self.conns[id.0].account;
        if account == AccountId::GLOBAL || self.system_account.is_none() {
            return;
        }
        let kind = if closed.is_some() {
            "DISCONNECT"
        } else {
            "CONNECT"
        };
        let subject = format!(
            "$SYS.ACCOUNT.{}.{kind}",
            self.accounts[account.0 as usize].name
        );
        if !self.has_system_interest(subject.as_bytes()) {
            return;
        }
        let client = self.client_info(id, closed.is_some());
        let event = match closed {
            None => self.client_event(CONNECT_TYPE, client, None),
            Some(reason) => self.client_event(DISCONNECT_TYPE, client, Some((id, reason))),
        };
        self.publish_internal(None, subject.as_bytes(), event.as_bytes());
    }

    /// `$SYS.SERVER.<id>.CLIENT.AUTH.ERR` for a client refused at login.
    pub(crate) fn auth_error_event(&mut self, id: ConnId) {
        if self.system_account.is_none() {
            return;
        }
        let subject = format!("$SYS.SERVER.{}.CLIENT.AUTH.ERR", self.info.server_id);
        if !self.has_system_interest(subject.as_bytes()) {
            return;
        }
        let client = self.client_info(id, true);
        let reason = CloseReason::AuthenticationViolation;
        let event = self.client_event(DISCONNECT_TYPE, client, Some((id, reason)));
        self.publish_internal(None, subject.as_bytes(), event.as_bytes());
    }

    /// A client's `ClientInfo` as JSON, as JetStream's advisories carry
    /// it; none for a connection that is gone.
    pub(crate) fn client_info_json(&self, id: ConnId) -> Option<serde_json::Value> {
        self.conns.contains(id.0).then(|| {
            serde_json::to_value(self.client_info(id, false)).expect("client info is JSON")
        })
    }

    fn client_info(&self, id: ConnId, closing: bool) -> ClientInfo {
        let c = &self.conns[id.0];
        let since_start = self.now.instant.since(c.start).as_nanos() as u64;
        ClientInfo {
            start: rfc3339_nanos(self.now.unix_nanos.saturating_sub(since_start)),
            host: c.peer.ip().to_string(),
            id: c.cid,
            acc: self.accounts[c.account.0 as usize].name.clone(),
            user: c.raw_auth_user().to_string(),
            name: c.opts.name.clone(),
            lang: c.opts.lang.clone(),
            ver: c.opts.version.clone(),
            rtt: if closing {
                c.rtt.map_or(0, |d| d.as_nanos() as u64)
            } else {
                0
            },
            stop: closing.then(|| rfc3339_nanos(self.now.unix_nanos)),
            kind: "Client",
            client_type: "nats",
        }
    }

    /// A client event's JSON; a disconnect carries the client's counters
    /// (what it sent is what the server received from it) and the reason.
    fn client_event(
        &mut self,
        kind: &'static str,
        client: ClientInfo,
        closed: Option<(ConnId, CloseReason)>,
    ) -> String {
        let id = self.event_id();
        let timestamp = client
            .stop
            .clone()
            .unwrap_or_else(|| rfc3339_nanos(self.now.unix_nanos));
        let counters = closed.map(|(conn, _)| self.conns[conn.0].counters);
        let event = ClientEvent {
            kind,
            id,
            timestamp,
            server: self.next_server_header(),
            client,
            sent: counters.map(|c| DataStats {
                msgs: c.in_msgs,
                bytes: c.in_bytes,
            }),
            received: counters.map(|c| DataStats {
                msgs: c.out_msgs,
                bytes: c.out_bytes,
            }),
            reason: closed.map(|(_, r)| r.as_str()),
        };
        serde_json::to_string(&event).expect("an event serializes")
    }

    /// The `server` object of the next message the server publishes
    /// (counted in `seq`).
    fn next_server_header(&mut self) -> ServerHeader<'_> {
        self.system.seq += 1;
        ServerHeader {
            name: &self.info.server_name,
            host: &self.opts.host,
            id: &self.info.server_id,
            ver: &self.info.version,
            seq: self.system.seq,
            jetstream: false,
            time: rfc3339_nanos(self.now.unix_nanos),
        }
    }

    /// [`Self::next_server_header`] as JSON.
    fn server_header(&mut self) -> String {
        let header = self.next_server_header();
        serde_json::to_string(&header).expect("a header serializes")
    }

    /// A unique event id: 22 base-62 digits from the seeded RNG (the
    /// length of nats-server's NUID).
    pub(crate) fn event_id(&mut self) -> String {
        let mut id = String::with_capacity(22);
        let mut n = 0u64;
        for i in 0..22 {
            if i % 10 == 0 {
                n = rand_core::Rng::next_u64(&mut self.rng.ids);
            }
            id.push(DIGITS[(n % 62) as usize] as char);
            n /= 62;
        }
        id
    }

    /// Whether a client would receive a message on `subject` in the
    /// system account (events are built only then).
    fn has_system_interest(&mut self, subject: &[u8]) -> bool {
        let Some(sys) = self.system_account else {
            return false;
        };
        self.has_client_interest(sys, subject)
    }

    /// Whether a client (not the server itself) would receive a message on
    /// `subject` in `account`: events and advisories are built only then.
    pub(crate) fn has_client_interest(&mut self, account: AccountId, subject: &[u8]) -> bool {
        self.client_interest(account, subject, None)
    }

    /// Whether a client subscribes to `subject` in `account`: in any way
    /// (`None`), as a member of queue group `g` (`Some(g)`), or with a plain
    /// subscription (`Some("")`).
    pub(crate) fn client_interest(
        &mut self,
        account: AccountId,
        subject: &[u8],
        group: Option<&str>,
    ) -> bool {
        let Some(matches) = self.accounts[account.0 as usize].sublist.interest(subject) else {
            return false;
        };
        let client = |h: &SubId| {
            self.subs
                .get(h.0 as usize)
                .is_some_and(|s| Some(s.conn) != self.system.client)
        };
        let plain = group.is_none_or(str::is_empty) && matches.plain.iter().any(client);
        plain
            || matches
                .queues
                .iter()
                .filter(|g| group.is_none_or(|q| g.name.as_ref() == q.as_bytes()))
                .any(|g| g.members.iter().any(client))
    }

    /// The opening fields of an advisory event: its type, a fresh id, the
    /// time, and the server.
    fn event_header(&mut self, kind: &str) -> serde_json::Map<String, Value> {
        let id = self.event_id();
        let header: Value = serde_json::from_str(&self.server_header()).expect("a header is JSON");
        let mut m = serde_json::Map::new();
        m.insert("type".into(), Value::from(kind));
        m.insert("id".into(), Value::from(id));
        m.insert(
            "timestamp".into(),
            Value::from(rfc3339_nanos(self.now.unix_nanos)),
        );
        m.insert("server".into(), header);
        m
    }

    /// Publishes in `account` (the system account for `None`) as the
    /// server's internal client.
    fn publish_internal(&mut self, account: Option<AccountId>, subject: &[u8], body: &[u8]) {
        let (Some(account), Some(client)) = (account.or(self.system_account), self.system.client)
        else {
            return;
        };
        let size = body.len().to_string();
        let p = Pub {
            subject,
            reply: None,
            size_token: size.as_bytes(),
            header: None,
            payload: body,
        };
        self.route(client, account, &p, &mut Route::default());
    }
}
