//! Monitoring: the JSON nats-server's HTTP endpoints answer (`/varz`,
//! `/connz`, `/subsz`, `/healthz`, …), with its field names, types and units
//! (durations in nanoseconds, times in RFC 3339). The core builds the
//! answers from its own state; the driver serves them over HTTP and supplies
//! what only the process knows (memory, CPU).
//!
//! A subsystem a server does not run (routes, gateways, leaf nodes,
//! JetStream) answers empty but correctly shaped. The endpoints of the
//! connections between servers live in `cluster`.

mod cluster;
mod metrics;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::client::go_quote;
use serde_json::{Value, json};

use super::{ConnId, Server};
use crate::time::{Now, go_duration, rfc3339_nanos};

/// What the driver knows about the process and the HTTP listener.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessInfo {
    pub http_host: String,
    /// The bound monitoring port: HTTP's, or HTTPS's (0: not that one).
    pub http_port: u16,
    pub https_port: u16,
    /// Resident memory, bytes.
    pub mem_bytes: u64,
    /// CPU use, percent of one core.
    pub cpu_percent: f64,
    pub cores: u32,
    /// Monitoring requests served, by endpoint (as
    /// [`Server::monitor_endpoint`] names them); the HTTP server counts them.
    pub http_req_stats: BTreeMap<String, u64>,
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// A warning for the server's log (a deprecated option, say).
    pub warning: Option<String>,
}

impl MonitorResponse {
    fn json(status: u16, v: &impl Serialize) -> Self {
        MonitorResponse {
            status,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(v).expect("monitoring JSON serializes"),
            warning: None,
        }
    }
}

/// The paths served, for the index page.
pub const ENDPOINTS: [&str; 10] = [
    "varz", "connz", "routez", "gatewayz", "leafz", "subsz", "accountz", "accstatz", "jsz",
    "healthz",
];

/// A request's query, decoded as Go's `url.ParseQuery` does (`+` is a
/// space, `%XX` escapes; a pair that does not decode is dropped; the first
/// value of a key counts), with nats-server's parameter decoders: a value
/// that does not parse answers 400 with nats-server's text.
pub(crate) struct Query(BTreeMap<String, String>);

type Bad = MonitorResponse;

fn bad_request(text: String) -> Bad {
    MonitorResponse {
        status: 400,
        content_type: "text/plain; charset=utf-8",
        body: text.into_bytes(),
        warning: None,
    }
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

impl Query {
    /// A query from decoded pairs (the options of a request over NATS).
    pub(crate) fn from_pairs(pairs: BTreeMap<String, String>) -> Query {
        Query(pairs)
    }

    pub(crate) fn parse(query: &str) -> Query {
        let mut map = BTreeMap::new();
        for pair in query
            .split('&')
            .filter(|p| !p.is_empty() && !p.contains(';'))
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if let (Some(k), Some(v)) = (unescape(k), unescape(v)) {
                map.entry(k).or_insert(v);
            }
        }
        Query(map)
    }

    fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }

    fn bool(&self, key: &str) -> Result<bool, Bad> {
        match self.get(key) {
            "" => Ok(false),
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            v => Err(bad_request(format!(
                "Error decoding boolean for '{key}': strconv.ParseBool: parsing {}: invalid syntax",
                go_quote(v.as_bytes())
            ))),
        }
    }

    fn int(&self, key: &str) -> Result<i64, Bad> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(0);
        }
        v.parse::<i64>().map_err(|e| {
            bad_request(format!(
                "Error decoding int for '{key}': strconv.Atoi: parsing {}: {}",
                go_quote(v.as_bytes()),
                int_error(&e)
            ))
        })
    }

    fn uint64(&self, key: &str) -> Result<u64, Bad> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(0);
        }
        let parsed = if v.starts_with('+') {
            "+".parse::<u64>()
        } else {
            v.parse::<u64>()
        };
        parsed.map_err(|e| {
            bad_request(format!(
                "Error decoding uint64 for '{key}': strconv.ParseUint: parsing {}: {}",
                go_quote(v.as_bytes()),
                int_error(&e)
            ))
        })
    }

    /// `offset` and `limit` as nats-server clamps them.
    fn page(&self) -> Result<(usize, usize), Bad> {
        let offset = self.int("offset")?.max(0) as usize;
        let limit = match self.int("limit")? {
            n if n <= 0 => DEFAULT_LIST_SIZE,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Ok((offset, limit))
    }
}

fn int_error(e: &std::num::ParseIntError) -> &'static str {
    use std::num::IntErrorKind::{NegOverflow, PosOverflow};
    match e.kind() {
        PosOverflow | NegOverflow => "value out of range",
        _ => "invalid syntax",
    }
}

/// `http_base_path` as nats-server normalises it: a leading `/`, no
/// trailing one, `.` and `..` resolved.
fn normalize_base_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The request path below `base`, or `None` when it is outside it.
fn strip_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if base == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Sublists' statistics summed, as `/subsz` (every account's, or one's)
/// and `/accountz?acc=` show them: counts add up, the fan-out maximum is the
/// largest, the average is over every cached subject.
fn sublist_stats<'a>(
    sublists: impl Iterator<Item = &'a crate::sublist::Sublist<super::SubId>>,
) -> Value {
    let (mut subscriptions, mut cache, mut inserts, mut removes) = (0, 0, 0, 0);
    let (mut matches, mut hits, mut max_fanout, mut fanout_sum) = (0, 0, 0, 0.0);
    for sl in sublists {
        let st = sl.stats();
        let (max, avg) = sl.cache_fanout();
        subscriptions += st.subscriptions;
        inserts += st.inserts;
        removes += st.removes;
        matches += st.matches;
        hits += st.cache_hits;
        max_fanout = max_fanout.max(max);
        fanout_sum += avg * sl.cache_len() as f64;
        cache += sl.cache_len();
    }
    let hit_rate = if matches == 0 {
        0.0
    } else {
        hits as f64 / matches as f64
    };
    let avg_fanout = if cache == 0 {
        0.0
    } else {
        fanout_sum / cache as f64
    };
    json!({
        "num_subscriptions": subscriptions,
        "num_cache": cache,
        "num_inserts": inserts,
        "num_removes": removes,
        "num_matches": matches,
        "cache_hit_rate": hit_rate,
        "max_fanout": max_fanout,
        "avg_fanout": avg_fanout,
    })
}

/// Entries per page when `limit` is not given.
const DEFAULT_LIST_SIZE: usize = 1024;

/// `/connz?state=`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Open,
    Closed,
    All,
}

/// `/connz?sort=` options nats-server knows.
const SORT_OPTIONS: [&str; 14] = [
    "cid",
    "start",
    "subs",
    "pending",
    "msgs_to",
    "msgs_from",
    "bytes_to",
    "bytes_from",
    "last",
    "idle",
    "uptime",
    "stop",
    "reason",
    "rtt",
];

impl Server {
    /// The endpoint a monitoring request for `path` counts under in
    /// `http_req_stats` (`/varz`, …), or `None` outside `http_base_path`.
    pub fn monitor_endpoint(&self, path: &str) -> Option<String> {
        // Endpoints live under `http_base_path` (`/` unless set).
        let base = normalize_base_path(&self.opts.http_base_path);
        let path = strip_base(path, &base)?;
        Some(format!(
            "/{}",
            path.trim_end_matches('/').trim_start_matches('/')
        ))
    }

    /// Answers a monitoring request for `path` (`/varz`, …) and its query.
    pub fn monitor(
        &self,
        now: Now,
        path: &str,
        query: &str,
        process: &ProcessInfo,
    ) -> MonitorResponse {
        let Some(endpoint) = self.monitor_endpoint(path) else {
            return MonitorResponse {
                status: 404,
                content_type: "text/plain; charset=utf-8",
                body: b"404 page not found\n".to_vec(),
                warning: None,
            };
        };
        let name = &endpoint[1..];
        let q = Query::parse(query);
        let ok = |v: Value| MonitorResponse::json(200, &v);
        let answer: Result<MonitorResponse, Bad> = match name {
            "" => Ok(MonitorResponse {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: index_page().into_bytes(),
                warning: None,
            }),
            "varz" => Ok(MonitorResponse::json(200, &self.varz(now, process))),
            "connz" => self.connz(now, &q).map(ok),
            "subsz" | "subscriptionsz" => self.subsz(now, &q).map(ok),
            "healthz" => self
                .healthz(&q)
                .map(|(v, warning)| MonitorResponse { warning, ..ok(v) }),
            "metrics" => Ok(MonitorResponse {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: self.metrics(now, process).into_bytes(),
                warning: None,
            }),
            "routez" => q.bool("subs").map(|subs| ok(self.routez(now, subs))),
            "gatewayz" => q.bool("accs").map(|_| ok(self.gatewayz(now))),
            "leafz" => q.bool("subs").map(|subs| ok(self.leafz(now, subs))),
            "accountz" => self.accountz(now, &q).map(ok),
            "accstatz" => q.bool("unused").map(|u| ok(self.accstatz(now, u))),
            "jsz" => {
                let flags = ["accounts", "streams", "consumers", "config", "leader-only"];
                flags
                    .iter()
                    .try_for_each(|f| q.bool(f).map(|_| ()))
                    .and_then(|()| q.page())
                    .and_then(|_| {
                        Ok(crate::server::jetstream::monitor::JszDetail {
                            accounts: q.bool("accounts")?,
                            streams: q.bool("streams")?,
                            consumers: q.bool("consumers")?,
                            config: q.bool("config")?,
                        })
                    })
                    .map(|detail| ok(self.jsz(now, detail)))
            }
            _ => Ok(MonitorResponse {
                status: 404,
                content_type: "text/plain; charset=utf-8",
                body: b"404 page not found\n".to_vec(),
                warning: None,
            }),
        };
        answer.unwrap_or_else(|bad| bad)
    }

    pub(crate) fn jsz(
        &self,
        now: Now,
        detail: crate::server::jetstream::monitor::JszDetail,
    ) -> Value {
        if self.jetstream_enabled() {
            self.stamped(now, self.jsz_body(detail))
        } else {
            self.stamped(now, jsz_disabled())
        }
    }

    /// `server_id` and `now` first, then the endpoint's own fields.
    pub(super) fn stamped(&self, now: Now, rest: Value) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("server_id".into(), json!(self.info.server_id));
        m.insert("now".into(), json!(rfc3339_nanos(now.unix_nanos)));
        if let Value::Object(r) = rest {
            m.extend(r);
        }
        Value::Object(m)
    }

    pub(super) fn varz(&self, now: Now, p: &ProcessInfo) -> Value {
        let o = &self.opts;
        let c = self.stats.counters;
        let nanos = |d: Duration| d.as_nanos() as u64;
        json!({
            "server_id": self.info.server_id,
            "server_name": self.info.server_name,
            "version": self.info.version,
            "proto": self.info.proto,
            "go": self.info.go,
            "host": o.host,
            "port": o.port,
            "auth_required": o.auth.required().then_some(true),
            "tls_required": self.info.tls_required.then_some(true),
            "tls_verify": self.info.tls_verify.then_some(true),
            "max_connections": o.max_connections,
            "ping_interval": nanos(o.ping_interval),
            "ping_max": o.ping_max,
            "http_host": p.http_host,
            "http_port": p.http_port,
            "http_base_path": o.http_base_path,
            "https_port": p.https_port,
            "auth_timeout": o.auth_timeout().as_secs_f64(),
            "max_control_line": o.max_control_line,
            "max_payload": o.max_payload,
            "max_pending": o.max_pending,
            "cluster": self.varz_cluster(),
            "gateway": self.varz_gateway(),
            "leaf": self.varz_leaf(),
            "mqtt": {},
            "websocket": {},
            "jetstream": self.varz_jetstream(),
            "tls_timeout": o.tls.as_ref().map_or(crate::config::DEFAULT_TLS_TIMEOUT, |t| t.timeout).as_secs_f64(),
            "write_deadline": nanos(o.write_deadline),
            "start": rfc3339_nanos(self.start_unix_nanos),
            "now": rfc3339_nanos(now.unix_nanos),
            "uptime": go_duration(now.instant.since(self.start_instant)),
            "mem": p.mem_bytes,
            "cores": p.cores,
            "gomaxprocs": p.cores,
            "cpu": p.cpu_percent,
            "connections": self.open_conns,
            "total_connections": self.stats.total_connections,
            "routes": self.routes().len(),
            "remotes": self.routes().len(),
            "leafnodes": self.leafs().len(),
            "in_msgs": c.in_msgs,
            "out_msgs": c.out_msgs,
            "in_bytes": c.in_bytes,
            "out_bytes": c.out_bytes,
            "slow_consumers": self.stats.slow_consumers,
            "subscriptions": self.subs.len(),
            "http_req_stats": p.http_req_stats,
            "config_load_time": rfc3339_nanos(self.start_unix_nanos),
            "system_account": self.system_account_name(),
        })
        .as_object()
        .map(|m| {
            Value::Object(
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        })
        .expect("an object")
    }

    pub(super) fn connz(&self, now: Now, q: &Query) -> Result<Value, Bad> {
        // `auth` adds the user each client authenticated as; nats-server
        // 2.9.10 never refuses `user`/`acc` without it, whatever it says.
        let auth = q.bool("auth")?;
        let user = q.get("user");
        let acc = q.get("acc");
        let subs = q.get("subs").eq_ignore_ascii_case("detail") || q.bool("subs")?;
        let (offset, mut limit) = q.page()?;
        let cid = q.uint64("cid")?;
        let state = match q.get("state").to_ascii_lowercase().as_str() {
            "" | "open" => ConnState::Open,
            "closed" => ConnState::Closed,
            "any" | "all" => ConnState::All,
            other => return Err(bad_request(format!("Error decoding state for {other}"))),
        };
        let key = match q.get("sort") {
            "" => "cid",
            k if SORT_OPTIONS.contains(&k) => k,
            k => return Err(bad_request(format!("invalid sorting option: {k}"))),
        };
        for only_closed in ["stop", "reason"] {
            if key == only_closed && state != ConnState::Closed {
                return Err(bad_request(format!(
                    "sort by {only_closed} only valid on closed connections"
                )));
            }
        }
        let only_cid = (cid > 0).then_some(cid);
        if only_cid.is_some() {
            limit = 1;
        }
        let mut open: Vec<&super::conn::Conn> = self
            .conns
            .iter()
            .map(|(_, c)| c)
            .filter(|c| {
                !c.closing
                    && c.kind == super::ConnKind::Client
                    && only_cid.is_none_or(|cid| c.cid == cid)
            })
            .filter(|c| only_cid.is_some() || user.is_empty() || c.opts.user == user)
            .filter(|c| acc.is_empty() || self.accounts[c.account.0 as usize].name == acc)
            .collect();
        open.sort_by(|a, b| {
            let ord = match key {
                "start" => a.start.cmp(&b.start),
                "subs" => b.subs.len().cmp(&a.subs.len()),
                "pending" => b.pending_bytes().cmp(&a.pending_bytes()),
                "msgs_to" => b.counters.out_msgs.cmp(&a.counters.out_msgs),
                "msgs_from" => b.counters.in_msgs.cmp(&a.counters.in_msgs),
                "bytes_to" => b.counters.out_bytes.cmp(&a.counters.out_bytes),
                "bytes_from" => b.counters.in_bytes.cmp(&a.counters.in_bytes),
                "last" | "idle" => b.last_activity.cmp(&a.last_activity),
                "uptime" => a.start.cmp(&b.start),
                "rtt" => b.rtt.cmp(&a.rtt),
                _ => std::cmp::Ordering::Equal,
            };
            ord.then(a.cid.cmp(&b.cid))
        });
        let mut entries: Vec<Value> = Vec::new();
        if state != ConnState::Closed {
            entries.extend(open.iter().map(|c| {
                let mut e = self.conn_entry(c, now, subs);
                let raw = c.raw_auth_user();
                if auth
                    && !raw.is_empty()
                    && let Some(m) = e.as_object_mut()
                {
                    m.insert("authorized_user".into(), json!(raw));
                }
                let account = &self.accounts[c.account.0 as usize].name;
                if auth
                    && account != crate::account::GLOBAL_ACCOUNT
                    && let Some(m) = e.as_object_mut()
                {
                    m.insert("account".into(), json!(account));
                }
                e
            }));
        }
        if state != ConnState::Open {
            let matches = |e: &&Value| only_cid.is_none_or(|cid| e["cid"] == cid);
            // The ring is in stop order (oldest first), which is `stop`.
            let mut closed: Vec<Value> = self
                .closed
                .iter()
                .filter(matches)
                .filter(|e| user.is_empty() || e["user"] == user)
                .filter(|e| acc.is_empty() || e["account"] == acc)
                .map(|e| {
                    let mut e = e.clone();
                    if let Some(m) = e.as_object_mut() {
                        if !subs {
                            m.remove("subscriptions_list");
                        }
                        // Closed connections keep the name they logged in with.
                        let name = m.remove("user");
                        if let Some(name) = name.filter(|n| auth && n != "") {
                            m.insert("authorized_user".into(), name);
                        }
                        let account = m.remove("account");
                        if let Some(a) = account.filter(|a| auth && a != "$G") {
                            m.insert("account".into(), a);
                        }
                    }
                    e
                })
                .collect();
            let field = match key {
                "subs" => Some("subscriptions"),
                "pending" => Some("pending_bytes"),
                "msgs_to" => Some("out_msgs"),
                "msgs_from" => Some("in_msgs"),
                "bytes_to" => Some("out_bytes"),
                "bytes_from" => Some("in_bytes"),
                _ => None,
            };
            let cid_of = |e: &Value| e["cid"].as_u64().unwrap_or(0);
            match (key, field) {
                ("stop", _) => {}
                ("reason", _) => {
                    closed.sort_by(|a, b| a["reason"].as_str().cmp(&b["reason"].as_str()))
                }
                (_, Some(f)) => closed.sort_by(|a, b| {
                    let n = |e: &Value| e[f].as_u64().unwrap_or(0);
                    n(b).cmp(&n(a)).then(cid_of(a).cmp(&cid_of(b)))
                }),
                _ => closed.sort_by_key(cid_of),
            }
            entries.extend(closed);
        }
        let total = entries.len();
        let page: Vec<Value> = entries.into_iter().skip(offset).take(limit).collect();
        Ok(self.stamped(
            now,
            json!({ "num_connections": page.len(), "total": total, "offset": offset, "limit": limit, "connections": page }),
        ))
    }

    /// One connection as `/connz` shows it.
    pub(crate) fn conn_entry(&self, c: &super::conn::Conn, now: Now, subs: bool) -> Value {
        let unix_at = |i: crate::time::Instant| {
            now.unix_nanos
                .saturating_sub(now.instant.since(i).as_nanos() as u64)
        };
        let mut v = json!({
            "cid": c.cid,
            "kind": "Client",
            "type": "nats",
            "ip": c.peer.ip().to_string(),
            "port": c.peer.port(),
            "start": rfc3339_nanos(unix_at(c.start)),
            "last_activity": rfc3339_nanos(unix_at(c.last_activity)),
            "rtt": go_duration(c.rtt.unwrap_or_default()),
            "uptime": go_duration(now.instant.since(c.start)),
            "idle": go_duration(now.instant.since(c.last_activity)),
            "pending_bytes": c.pending_bytes(),
            "in_msgs": c.counters.in_msgs,
            "out_msgs": c.counters.out_msgs,
            "in_bytes": c.counters.in_bytes,
            "out_bytes": c.counters.out_bytes,
            "subscriptions": c.subs.len(),
        });
        let m = v.as_object_mut().expect("an object");
        for (key, val) in [
            ("name", &c.opts.name),
            ("lang", &c.opts.lang),
            ("version", &c.opts.version),
        ] {
            if !val.is_empty() {
                m.insert(key.into(), json!(val));
            }
        }
        if let Some((version, cipher)) = &c.tls {
            m.insert("tls_version".into(), json!(version));
            m.insert("tls_cipher_suite".into(), json!(cipher));
        }
        if subs && !c.subs.is_empty() {
            m.insert("subscriptions_list".into(), self.subjects_of(c));
        }
        v
    }

    /// Keeps a closing connection in the closed-connections ring.
    pub(crate) fn remember_closed(&mut self, id: ConnId, reason: super::CloseReason) {
        if self.opts.max_closed_clients == 0 {
            return;
        }
        let now = self.now;
        let mut entry = self.conn_entry(&self.conns[id.0], now, true);
        if let Some(m) = entry.as_object_mut() {
            m.insert("stop".into(), json!(rfc3339_nanos(now.unix_nanos)));
            m.insert("reason".into(), json!(reason.as_str()));
            m.insert("user".into(), json!(self.conns[id.0].opts.user));
            let account = self.conns[id.0].account;
            m.insert(
                "account".into(),
                json!(self.accounts[account.0 as usize].name),
            );
        }
        if self.closed.len() >= self.opts.max_closed_clients {
            self.closed.pop_front();
        }
        self.closed.push_back(entry);
    }

    pub(super) fn subsz(&self, now: Now, q: &Query) -> Result<Value, Bad> {
        let subs = q.bool("subs")?;
        let (offset, limit) = q.page()?;
        let test = q.get("test");
        if !test.is_empty() && !crate::subject::is_valid_literal_subject(test.as_bytes()) {
            return Err(bad_request(format!(
                "invalid test subject, must be valid publish subject: {test}"
            )));
        }
        // `acc` (requests over NATS for one account) narrows the list and
        // the statistics to that account.
        let only = match q.get("acc") {
            "" => None,
            name => Some(
                self.account_id(name)
                    .ok_or_else(|| bad_request(format!("Account {name} does not exist")))?,
            ),
        };
        let mut v = sublist_stats(
            self.accounts
                .iter()
                .enumerate()
                .filter(|(i, _)| only.is_none_or(|a| a.0 as usize == *i))
                .map(|(_, a)| &a.sublist),
        );
        if subs {
            let test = (!test.is_empty()).then_some(test.as_bytes());
            let mut list: Vec<(u64, Value)> = self
                .subs
                .iter()
                .filter(|(_, s)| test.is_none_or(|t| crate::subject::matches(&s.subject, t)))
                .filter(|(_, s)| only.is_none_or(|a| s.account == a))
                .map(|(_, s)| {
                    let cid = self.conns.get(s.conn.0).map_or(0, |c| c.cid);
                    let mut e = json!({
                        "account": self.accounts[s.account.0 as usize].name,
                        "subject": String::from_utf8_lossy(&s.subject),
                        "sid": String::from_utf8_lossy(&s.sid),
                        "msgs": s.delivered,
                        "cid": cid,
                    });
                    let m = e.as_object_mut().expect("an object");
                    if let Some(q) = &s.queue {
                        m.insert("qgroup".into(), json!(String::from_utf8_lossy(q)));
                    }
                    if s.max > 0 {
                        m.insert("max".into(), json!(s.max));
                    }
                    (cid, e)
                })
                .collect();
            list.sort_by_key(|(cid, _)| *cid);
            let total = list.len();
            let page: Vec<Value> = list
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|(_, e)| e)
                .collect();
            let m = v.as_object_mut().expect("an object");
            m.insert("total".into(), json!(total));
            m.insert("offset".into(), json!(offset));
            m.insert("limit".into(), json!(limit));
            m.insert("subscriptions_list".into(), json!(page));
        }
        Ok(self.stamped(now, v))
    }

    /// `/healthz`: without JetStream a ready server is healthy whatever
    /// the variant (`js-enabled-only`, `js-server-only`).
    /// (With the warning to log for a deprecated option.)
    pub(super) fn healthz(&self, q: &Query) -> Result<(Value, Option<String>), Bad> {
        let warning = q
            .bool("js-enabled")?
            .then(|| "Healthcheck: js-enabled deprecated, use js-enabled-only instead".into());
        q.bool("js-enabled-only")?;
        q.bool("js-server-only")?;
        Ok((json!({ "status": "ok" }), warning))
    }

    fn system_account_name(&self) -> &str {
        self.system_account
            .map_or("", |a| self.accounts[a.0 as usize].name.as_str())
    }

    /// `/accountz`: the account names, or one account's detail (`acc=`).
    pub(super) fn accountz(&self, now: Now, q: &Query) -> Result<Value, Bad> {
        let mut v = serde_json::Map::new();
        let system = self.system_account_name().to_string();
        if !system.is_empty() {
            v.insert("system_account".into(), json!(system));
        }
        let name = q.get("acc");
        if name.is_empty() {
            let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
            v.insert("accounts".into(), json!(names));
            return Ok(self.stamped(now, Value::Object(v)));
        }
        let Some(id) = self.account_id(name) else {
            return Err(bad_request(format!("Account {name} does not exist")));
        };
        let detail = self.account_detail(now, id, name == system);
        v.insert("account_detail".into(), detail);
        Ok(self.stamped(now, Value::Object(v)))
    }

    pub(super) fn account_detail(&self, now: Now, id: super::AccountId, is_system: bool) -> Value {
        let a = &self.accounts[id.0 as usize];
        let stats = sublist_stats(std::iter::once(&a.sublist));
        let mut exports = Vec::new();
        let mut imports = Vec::new();
        if let Some(c) = &a.config {
            for x in &c.service_exports {
                exports.push(json!({
                    "name": "",
                    "subject": x.subject,
                    "type": "service",
                    "response_type": x.response_type.as_str(),
                    "approved_accounts": x.auth.approved,
                }));
            }
            for x in &c.stream_exports {
                exports.push(json!({
                    "name": "",
                    "subject": x.subject,
                    "type": "stream",
                    "approved_accounts": x.auth.approved,
                }));
            }
            for i in &c.stream_imports {
                imports.push(json!({
                    "subject": i.from,
                    "account": i.account,
                    "local_subject": i.to,
                    "type": "stream",
                    "invalid": false,
                    "share": false,
                    "tracking": false,
                }));
            }
            for i in &c.service_imports {
                imports.push(json!({
                    "subject": i.from,
                    "account": i.account,
                    "to": i.to,
                    "type": "service",
                    "invalid": false,
                    "share": false,
                    "tracking": false,
                }));
            }
        }
        let mut m = serde_json::Map::new();
        m.insert("account_name".into(), json!(a.name));
        m.insert(
            "update_time".into(),
            json!(rfc3339_nanos(self.start_unix_nanos)),
        );
        if is_system {
            m.insert("is_system".into(), json!(true));
        }
        m.insert("expired".into(), json!(false));
        m.insert("complete".into(), json!(true));
        m.insert(
            "jetstream_enabled".into(),
            json!(self.account_has_jetstream(id)),
        );
        m.insert("leafnode_connections".into(), json!(0));
        m.insert("client_connections".into(), json!(a.num_conns));
        m.insert("subscriptions".into(), stats["num_subscriptions"].clone());
        if !exports.is_empty() {
            m.insert("exports".into(), json!(exports));
        }
        if !imports.is_empty() {
            m.insert("imports".into(), json!(imports));
        }
        m.insert("sublist_stats".into(), stats);
        let _ = now;
        Value::Object(m)
    }

    /// `/accstatz`: accounts with clients (every account with `unused`).
    fn accstatz(&self, now: Now, unused: bool) -> Value {
        self.stamped(
            now,
            json!({ "account_statz": self.account_stats(None, unused) }),
        )
    }

    /// The statistics of the accounts named (all if `None`), leaving out
    /// those without clients unless `unused`.
    pub(super) fn account_stats(&self, names: Option<&[String]>, unused: bool) -> Vec<Value> {
        self.accounts
            .iter()
            .filter(|a| names.is_none_or(|n| n.contains(&a.name)))
            .filter(|a| unused || a.num_conns > 0)
            .map(|a| {
                json!({
                    "acc": a.name,
                    "conns": a.num_conns,
                    "leafnodes": 0,
                    "total_conns": a.num_conns,
                    "sent": { "msgs": a.stats.sent_msgs, "bytes": a.stats.sent_bytes },
                    "received": { "msgs": a.stats.received_msgs, "bytes": a.stats.received_bytes },
                    "slow_consumers": a.stats.slow_consumers,
                })
            })
            .collect()
    }
}

fn jsz_disabled() -> Value {
    json!({
        "disabled": true,
        "config": { "max_memory": 0, "max_storage": 0 },
        "memory": 0, "storage": 0, "reserved_memory": 0, "reserved_storage": 0,
        "accounts": 0, "ha_assets": 0, "api": { "level": 0, "total": 0, "errors": 0 },
        "streams": 0, "consumers": 0, "messages": 0, "bytes": 0,
    })
}

fn index_page() -> String {
    let mut s = String::from(
        "<html><head><title>natrix</title></head><body><h1>natrix monitoring</h1><ul>",
    );
    for e in ENDPOINTS {
        s.push_str(&format!("<li><a href=\"{e}\">{e}</a></li>"));
    }
    s.push_str("</ul></body></html>\n");
    s
}
