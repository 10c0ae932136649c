//! The system account: the server's own services and events, as
//! nats-server offers them to users of the system account (and tools such
//! as the `nats` CLI).
//!
//! - **Services**: a request published in the system account on
//!   `$SYS.REQ.SERVER.PING[.<X>]`, `$SYS.REQ.SERVER.<id>.<X>` (X: `STATSZ`,
//!   `VARZ`, `CONNZ`, `SUBSZ`, `ROUTEZ`, `GATEWAYZ`, `LEAFZ`, `ACCOUNTZ`,
//!   `JSZ`, `HEALTHZ`), `$SYS.REQ.ACCOUNT.<acc>.<Y>` (Y: `CONNZ`, `SUBSZ`,
//!   `LEAFZ`, `JSZ`, `INFO`, `STATZ`) or `$SYS.REQ.ACCOUNT.PING.STATZ` is
//!   answered on its reply subject with `{"server":{..},"data":{..}}` (or
//!   `"error"`), the data being what the HTTP endpoint serves for the
//!   options in the request's JSON body. The services are not
//!   subscriptions: [`Server::route`] hands every message published in the
//!   system account to [`Server::system_service`] after its subscribers.
//! - **Events**: `$SYS.ACCOUNT.<acc>.CONNECT` / `.DISCONNECT` for clients
//!   of every account but `$G`, `$SYS.SERVER.<id>.CLIENT.AUTH.ERR` for a
//!   failed login, and `$SYS.SERVER.<id>.STATSZ` on a timer (250 ms after
//!   start, doubling up to every 30 s), each built only when someone
//!   listens.
//!
//! The server publishes as [`INTERNAL`], a connection id no client has:
//! its messages reach every subscriber (echo does not apply), never stall,
//! and never reach the services themselves.

mod options;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::accounts::Route;
use super::monitor::{ProcessInfo, Query};
use super::{AccountId, CloseReason, ConnId, Server};
use crate::proto::Pub;
use crate::time::{Instant, Now, rfc3339_nanos};
use options::{Field, Options};

/// The publisher of the server's own messages.
pub(crate) const INTERNAL: ConnId = ConnId(usize::MAX);

/// The first periodic statsz goes out this soon after start…
const STATSZ_FIRST: Duration = Duration::from_millis(250);
/// …and the interval doubles up to this.
const STATSZ_EVERY: Duration = Duration::from_secs(30);

/// Base-62 digits of event ids.
const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const CONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_connect";
const DISCONNECT_TYPE: &str = "io.nats.server.advisory.v1.client_disconnect";

/// What the system account's machinery keeps.
#[derive(Debug, Default)]
pub(crate) struct SystemState {
    /// Messages the server has published (`server.seq`).
    seq: u64,
    /// When the next periodic statsz is due (`None` without a system
    /// account), and the interval after it.
    statsz_at: Option<Instant>,
    statsz_step: Duration,
    /// Memory and CPU as the driver last reported them.
    pub process: ProcessInfo,
}

impl SystemState {
    pub(crate) fn new(enabled: bool, now: Instant) -> Self {
        SystemState {
            statsz_at: enabled.then(|| now + STATSZ_FIRST),
            statsz_step: STATSZ_FIRST,
            ..SystemState::default()
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.statsz_at
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

/// What a service answers.
enum Answer {
    Data(Value),
    /// The endpoint refused the options (`code` 500, `data` null).
    Failed(String),
    /// Not for this server: no answer at all.
    Skip,
}

/// The per-server monitoring services.
#[derive(Clone, Copy)]
enum ServerEndpoint {
    Varz,
    Connz,
    Subsz,
    Routez,
    Gatewayz,
    Leafz,
    Accountz,
    Jsz,
    Healthz,
}

impl ServerEndpoint {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "VARZ" => ServerEndpoint::Varz,
            "CONNZ" => ServerEndpoint::Connz,
            "SUBSZ" => ServerEndpoint::Subsz,
            "ROUTEZ" => ServerEndpoint::Routez,
            "GATEWAYZ" => ServerEndpoint::Gatewayz,
            "LEAFZ" => ServerEndpoint::Leafz,
            "ACCOUNTZ" => ServerEndpoint::Accountz,
            "JSZ" => ServerEndpoint::Jsz,
            "HEALTHZ" => ServerEndpoint::Healthz,
            _ => return None,
        })
    }

    /// The Go options type (named in decoding errors) and its fields.
    fn options(self) -> (&'static str, &'static [Field]) {
        match self {
            ServerEndpoint::Varz => ("VarzEventOptions", options::NONE),
            ServerEndpoint::Connz => ("ConnzEventOptions", options::CONNZ),
            ServerEndpoint::Subsz => ("SubszEventOptions", options::SUBSZ),
            ServerEndpoint::Routez => ("RoutezEventOptions", options::ROUTEZ),
            ServerEndpoint::Gatewayz => ("GatewayzEventOptions", options::GATEWAYZ),
            ServerEndpoint::Leafz => ("LeafzEventOptions", options::LEAFZ),
            ServerEndpoint::Accountz => ("AccountzEventOptions", options::ACCOUNTZ),
            ServerEndpoint::Jsz => ("JszEventOptions", options::JSZ),
            ServerEndpoint::Healthz => ("HealthzEventOptions", options::HEALTHZ),
        }
    }
}

impl Server {
    /// Memory and CPU of the process, for statsz and `VARZ` over NATS
    /// (the driver refreshes them now and then; the core reads no clock
    /// and no `/proc`).
    pub fn set_process_info(&mut self, process: ProcessInfo) {
        self.system.process = process;
    }

    /// Answers a request on a system service, if `p` is one: published
    /// in the system account by anyone but the server itself. True when
    /// the subject is a service's (it has a responder, even if this
    /// request gets no answer).
    pub(crate) fn system_service(
        &mut self,
        publisher: ConnId,
        account: AccountId,
        p: &Pub<'_>,
    ) -> bool {
        if publisher == INTERNAL || Some(account) != self.system_account {
            return false;
        }
        let Some(rest) = p.subject.strip_prefix(b"$SYS.REQ.") else {
            return false;
        };
        let Ok(rest) = std::str::from_utf8(rest) else {
            return false;
        };
        let tokens: Vec<&str> = rest.split('.').collect();
        let (reply, body) = (p.reply, p.body());
        match tokens.as_slice() {
            ["SERVER", "PING"] => self.statsz_request(reply, body),
            ["SERVER", target, name] if *target == "PING" || *target == self.info.server_id => {
                if *name == "STATSZ" {
                    self.statsz_request(reply, body);
                    return true;
                }
                let Some(endpoint) = ServerEndpoint::parse(name) else {
                    return false;
                };
                let (type_name, fields) = endpoint.options();
                self.z_request(reply, body, type_name, fields, |s, now, o| {
                    s.server_data(endpoint, now, o)
                });
            }
            ["ACCOUNT", "PING", "STATZ"] => {
                self.z_request(
                    reply,
                    body,
                    "AccountStatzEventOptions",
                    options::ACCOUNT_STATZ,
                    |s, now, o| {
                        let names = o.list("accounts");
                        let unused = o.get("unused") == "true";
                        let list = s.account_stats((!names.is_empty()).then_some(names), unused);
                        if list.is_empty() && !unused {
                            return Answer::Skip;
                        }
                        Answer::Data(s.stamped(now, json!({ "account_statz": list })))
                    },
                );
            }
            ["ACCOUNT", acc, name] => {
                let acc = (*acc).to_string();
                return self.account_request(reply, body, acc, name);
            }
            _ => return false,
        }
        true
    }

    /// `$SYS.REQ.ACCOUNT.<acc>.<name>`.
    fn account_request(
        &mut self,
        reply: Option<&[u8]>,
        body: &[u8],
        acc: String,
        name: &str,
    ) -> bool {
        match name {
            "CONNZ" => self.z_request(
                reply,
                body,
                "ConnzEventOptions",
                options::CONNZ,
                |s, now, o| {
                    let mut o = o.query.clone();
                    o.insert("acc".into(), acc);
                    endpoint_answer(s.connz(now, &Query::from_pairs(o)))
                },
            ),
            "SUBSZ" => self.z_request(
                reply,
                body,
                "SubszEventOptions",
                options::SUBSZ,
                |s, now, o| {
                    let mut o = o.query.clone();
                    o.insert("subs".into(), "true".into());
                    o.insert("acc".into(), acc);
                    endpoint_answer(s.subsz(now, &Query::from_pairs(o)))
                },
            ),
            "LEAFZ" => self.z_request(
                reply,
                body,
                "LeafzEventOptions",
                options::LEAFZ,
                |s, now, _| Answer::Data(s.leafz(now)),
            ),
            "JSZ" => self.z_request(reply, body, "JszEventOptions", options::JSZ, |_, _, _| {
                Answer::Failed("jetstream not enabled".into())
            }),
            "INFO" => self.z_request(
                reply,
                body,
                "AccInfoEventOptions",
                options::NONE,
                |s, now, _| match s.account_id(&acc) {
                    Some(id) => {
                        let is_system = Some(id) == s.system_account;
                        Answer::Data(s.account_detail(now, id, is_system))
                    }
                    None => Answer::Failed(format!("Account {acc} does not exist")),
                },
            ),
            "STATZ" => self.z_request(
                reply,
                body,
                "AccountStatzEventOptions",
                options::ACCOUNT_STATZ,
                |s, now, o| {
                    let unused = o.get("unused") == "true";
                    let list = s.account_stats(Some(std::slice::from_ref(&acc)), unused);
                    if list.is_empty() && !unused {
                        return Answer::Skip;
                    }
                    Answer::Data(s.stamped(now, json!({ "account_statz": list })))
                },
            ),
            _ => return false,
        }
        true
    }

    fn server_data(&mut self, endpoint: ServerEndpoint, now: Now, o: &Options) -> Answer {
        let q = Query::from_pairs(o.query.clone());
        match endpoint {
            ServerEndpoint::Varz => {
                let process = self.system.process.clone();
                Answer::Data(self.varz(now, &process))
            }
            ServerEndpoint::Connz => endpoint_answer(self.connz(now, &q)),
            ServerEndpoint::Subsz => endpoint_answer(self.subsz(now, &q)),
            ServerEndpoint::Routez => Answer::Data(self.routez(now)),
            ServerEndpoint::Gatewayz => Answer::Data(self.gatewayz(now)),
            ServerEndpoint::Leafz => Answer::Data(self.leafz(now)),
            ServerEndpoint::Accountz => endpoint_answer(self.accountz(now, &q)),
            ServerEndpoint::Jsz => Answer::Data(self.jsz(now)),
            ServerEndpoint::Healthz => endpoint_answer(self.healthz(&q)),
        }
    }

    /// nats-server's `zReq`: no reply, no answer; options that do not
    /// decode get a 400, options for another server nothing, an endpoint
    /// error a 500.
    fn z_request(
        &mut self,
        reply: Option<&[u8]>,
        body: &[u8],
        type_name: &str,
        fields: &[Field],
        answer: impl FnOnce(&mut Self, Now, &Options) -> Answer,
    ) {
        let Some(reply) = reply else {
            return;
        };
        let now = self.now;
        let response = match options::decode(type_name, body, fields) {
            Err(e) => Some(format!(",\"error\":{}", api_error(400, &e))),
            Ok(o) if o.filtered_out(&self.info.server_name, &self.opts.host) => None,
            Ok(o) => match answer(self, now, &o) {
                Answer::Data(v) => Some(format!(",\"data\":{v}")),
                Answer::Failed(e) => {
                    Some(format!(",\"data\":null,\"error\":{}", api_error(500, &e)))
                }
                Answer::Skip => None,
            },
        };
        if let Some(rest) = response {
            let header = self.server_header();
            let body = format!("{{\"server\":{header}{rest}}}");
            self.publish_internal(reply, body.as_bytes());
        }
    }

    /// `$SYS.REQ.SERVER.PING` and `…STATSZ`: the statsz message, on the
    /// reply subject or, without one, on the server's statsz subject.
    fn statsz_request(&mut self, reply: Option<&[u8]>, body: &[u8]) {
        let subject = match reply {
            Some(r) => r.to_vec(),
            None => self.statsz_subject().into_bytes(),
        };
        match options::decode("StatszEventOptions", body, options::NONE) {
            Err(e) => {
                let header = self.server_header();
                let body = format!("{{\"server\":{header},\"error\":{}}}", api_error(400, &e));
                self.publish_internal(&subject, body.as_bytes());
            }
            Ok(o) if o.filtered_out(&self.info.server_name, &self.opts.host) => {}
            Ok(_) => self.send_statsz(&subject),
        }
    }

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
        self.publish_internal(subject, body.as_bytes());
    }

    /// The periodic statsz, if due.
    pub(crate) fn statsz_timer(&mut self) {
        let now = self.now.instant;
        if self.lame_duck.is_some() || self.system.statsz_at.is_none_or(|at| at > now) {
            return;
        }
        let step = (self.system.statsz_step * 2).min(STATSZ_EVERY);
        self.system.statsz_step = step;
        self.system.statsz_at = Some(now + step);
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
        self.publish_internal(subject.as_bytes(), event.as_bytes());
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
        self.publish_internal(subject.as_bytes(), event.as_bytes());
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
        self.system.seq += 1;
        let event = ClientEvent {
            kind,
            id,
            timestamp,
            server: ServerHeader {
                name: &self.info.server_name,
                host: &self.opts.host,
                id: &self.info.server_id,
                ver: &self.info.version,
                seq: self.system.seq,
                jetstream: false,
                time: rfc3339_nanos(self.now.unix_nanos),
            },
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

    /// The `server` object of the next message the server publishes.
    fn server_header(&mut self) -> String {
        self.system.seq += 1;
        let header = ServerHeader {
            name: &self.info.server_name,
            host: &self.opts.host,
            id: &self.info.server_id,
            ver: &self.info.version,
            seq: self.system.seq,
            jetstream: false,
            time: rfc3339_nanos(self.now.unix_nanos),
        };
        serde_json::to_string(&header).expect("a header serializes")
    }

    /// A unique event id: 22 base-62 digits from the seeded RNG (the
    /// length of nats-server's NUID).
    fn event_id(&mut self) -> String {
        let mut id = String::with_capacity(22);
        let mut n = 0u64;
        for i in 0..22 {
            if i % 10 == 0 {
                n = rand_core::Rng::next_u64(&mut self.rng);
            }
            id.push(DIGITS[(n % 62) as usize] as char);
            n /= 62;
        }
        id
    }

    /// Whether anyone would receive a message on `subject` in the system
    /// account (events are built only then).
    fn has_system_interest(&mut self, subject: &[u8]) -> bool {
        let Some(sys) = self.system_account else {
            return false;
        };
        self.accounts[sys.0 as usize]
            .sublist
            .interest(subject)
            .is_some()
    }

    /// Publishes in the system account as the server.
    fn publish_internal(&mut self, subject: &[u8], body: &[u8]) {
        let Some(sys) = self.system_account else {
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
        self.route(INTERNAL, sys, &p, &mut Route::default());
    }
}

fn endpoint_answer(r: Result<Value, super::MonitorResponse>) -> Answer {
    match r {
        Ok(v) => Answer::Data(v),
        Err(bad) => Answer::Failed(String::from_utf8_lossy(&bad.body).into_owned()),
    }
}

fn api_error(code: u16, description: &str) -> String {
    json!({ "code": code, "description": description }).to_string()
}
