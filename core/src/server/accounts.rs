//! Live accounts: each with its own sublist, and the plumbing of what
//! they share.
//!
//! - A stream import is served by *shadow subscriptions*: when a client
//!   subscribes in the importing account to a subject an import covers, a
//!   copy of its subscription goes into the exporting account's sublist on
//!   the exported subject; a message matching it there is delivered to the
//!   client under the importing account's subject (prefix or mapping).
//! - A service import is checked on every publish in the importing
//!   account: a request on its subject is published again in the exporting
//!   account on the exported subject, with a `Nats-Request-Info` header and
//!   its reply subject replaced by a fresh `_R_.<account>.<request>`
//!   subject of the exporter. A response published there is routed back to
//!   the original reply subject in the requester's account: once for a
//!   singleton export, until the threshold passes without one otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{AccountId, ConnId, Server, SubId};
use crate::account::{AccountConfig, AccountLimits, ResponseType};
use crate::mapping::{Mapped, Mappings, Transform};
use crate::proto::Pub;
use crate::sublist::Sublist;
use crate::time::Instant;
use rand_core::Rng;

/// Base-62 digits of `_R_` reply subjects, as nats-server draws them.
const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Service imports may chain through this many accounts.
const MAX_CHAIN: usize = 16;
/// The header a request crossing accounts carries.
const REQUEST_INFO: &str = "Nats-Request-Info";

#[derive(Debug)]
pub(crate) struct LiveStreamImport {
    pub source: AccountId,
    pub from: String,
    pub to: String,
    /// From the exported subject to the delivered one (wildcard imports
    /// delivered under another subject).
    pub transform: Option<Transform>,
    /// From a subscription's subject back to the exported one.
    pub reverse: Option<Transform>,
    /// The delivered subject is the published one.
    pub use_pub: bool,
}

#[derive(Debug)]
pub(crate) struct LiveServiceImport {
    pub dest: AccountId,
    pub from: String,
    pub to: String,
    pub transform: Option<Transform>,
    pub use_pub: bool,
    pub response_type: ResponseType,
    pub threshold: Duration,
    /// Which export of `dest` it reaches (to break chains that loop).
    pub export: usize,
}

/// The way back for the responses to one request.
#[derive(Debug)]
pub(crate) struct ResponseRoute {
    pub requester: AccountId,
    pub reply: Box<[u8]>,
    pub response_type: ResponseType,
    pub threshold: Duration,
    pub last: Instant,
}

/// Messages and bytes an account's clients sent and received.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AccountStats {
    pub received_msgs: u64,
    pub received_bytes: u64,
    pub sent_msgs: u64,
    pub sent_bytes: u64,
    pub slow_consumers: u64,
}

pub(crate) struct Account {
    pub name: String,
    pub sublist: Sublist<SubId>,
    /// Subject mappings applied to what is published in the account.
    pub mappings: Mappings,
    pub limits: AccountLimits,
    /// As configured (exports and imports, for monitoring); `None` for
    /// `$G` and an implicit `$SYS`.
    pub config: Option<AccountConfig>,
    pub stream_imports: Vec<LiveStreamImport>,
    pub service_imports: Vec<LiveServiceImport>,
    /// Routes for responses, by the `_R_` subject handed to the responder.
    pub responses: BTreeMap<Box<[u8]>, ResponseRoute>,
    /// Past this many routes, expired ones are swept on the next insert.
    pub sweep_at: usize,
    /// `_R_.<6 digits>.`, drawn the first time it is needed.
    pub reply_prefix: Option<Vec<u8>>,
    /// Client connections bound to it.
    pub num_conns: usize,
    pub stats: AccountStats,
    /// Subscriptions by `<subject>[ <queue>]`, weighted, as routes and
    /// leaf nodes are told of them (kept only with routes or leaf nodes).
    pub interest: crate::FastMap<Box<[u8]>, super::interest::Count>,
}

impl Account {
    fn new(name: &str, cache: bool) -> Self {
        Account {
            name: name.to_string(),
            sublist: Sublist::new(cache),
            mappings: Mappings::default(),
            limits: AccountLimits::default(),
            config: None,
            stream_imports: Vec::new(),
            service_imports: Vec::new(),
            responses: BTreeMap::new(),
            sweep_at: 64,
            reply_prefix: None,
            num_conns: 0,
            stats: AccountStats::default(),
            interest: crate::FastMap::default(),
        }
    }
}

/// `$G`, then the configured accounts in order, then `$SYS` unless it is
/// configured or turned off; and the system account's index.
pub(crate) fn build(opts: &crate::Options) -> (Vec<Account>, Option<AccountId>) {
    let cache = !opts.disable_sublist_cache;
    let mut global = Account::new(crate::account::GLOBAL_ACCOUNT, cache);
    global.mappings = opts.mappings.clone();
    let mut accounts = vec![global];
    for c in &opts.accounts {
        let mut a = Account::new(&c.name, cache);
        a.mappings = c.mappings.clone();
        a.limits = c.limits;
        a.config = Some(c.clone());
        accounts.push(a);
    }
    let id_of = |accounts: &[Account], name: &str| {
        accounts
            .iter()
            .position(|a| a.name == name)
            .map(|i| AccountId(i as u32))
    };
    for (i, c) in opts.accounts.iter().enumerate() {
        let i = i + 1;
        for si in &c.stream_imports {
            let Some(source) = id_of(&accounts, &si.account) else {
                continue;
            };
            let wild = !crate::subject::is_literal(si.from.as_bytes());
            let use_pub = wild && si.to == si.from;
            let (transform, reverse) = if wild && !use_pub {
                let to = crate::account::untokenize(&si.to);
                (
                    Transform::new(&si.from, &crate::account::tokenize(&si.to)).ok(),
                    Transform::new(&to, &crate::account::tokenize(&si.from)).ok(),
                )
            } else {
                (None, None)
            };
            accounts[i].stream_imports.push(LiveStreamImport {
                source,
                from: si.from.clone(),
                to: crate::account::untokenize(&si.to),
                transform,
                reverse,
                use_pub,
            });
        }
        for si in &c.service_imports {
            let Some(dest) = id_of(&accounts, &si.account) else {
                continue;
            };
            let exporter = opts.accounts.iter().find(|a| a.name == si.account);
            let export = exporter.and_then(|e| {
                let x = e.service_export(&si.to)?;
                let at = e
                    .service_exports
                    .iter()
                    .position(|y| y.subject == x.subject)?;
                Some((at, x.response_type, x.threshold))
            });
            let (export, response_type, threshold) = export.unwrap_or((
                usize::MAX,
                ResponseType::Singleton,
                crate::account::DEFAULT_RESPONSE_THRESHOLD,
            ));
            let wild = !crate::subject::is_literal(si.to.as_bytes());
            let use_pub = wild && si.to == si.from;
            let transform = if wild && !use_pub {
                Transform::new(&si.from, &crate::account::tokenize(&si.to)).ok()
            } else {
                None
            };
            accounts[i].service_imports.push(LiveServiceImport {
                dest,
                from: si.from.clone(),
                to: si.to.clone(),
                transform,
                use_pub,
                response_type,
                threshold,
                export,
            });
        }
    }
    let sys_name = opts
        .system_account
        .clone()
        .unwrap_or_else(|| crate::account::DEFAULT_SYSTEM_ACCOUNT.to_string());
    let mut system = id_of(&accounts, &sys_name);
    if system.is_none() && !opts.no_system_account && opts.system_account.is_none() {
        accounts.push(Account::new(&sys_name, cache));
        system = Some(AccountId(accounts.len() as u32 - 1));
    }
    (accounts, system)
}

/// A publish on its way through accounts: the service exports it crossed
/// (to stop a loop) and the requester's `Nats-Request-Info`.
#[derive(Default)]
pub(crate) struct Route {
    chain: Vec<(AccountId, usize)>,
    /// A service import or response brought it here: shadow subscriptions
    /// (stream imports) do not take it.
    pub from_service: bool,
    /// The requester's account and RTT, for the header.
    origin: Option<(String, u64)>,
}

impl Server {
    pub(crate) fn account_id(&self, name: &str) -> Option<AccountId> {
        self.accounts
            .iter()
            .position(|a| a.name == name)
            .map(|i| AccountId(i as u32))
    }

    /// Delivers `p` in `account`: to its subscribers (and shadow
    /// subscriptions), its service imports and its response routes.
    /// Whether anything took it.
    pub(crate) fn route(
        &mut self,
        publisher: ConnId,
        account: AccountId,
        p: &Pub<'_>,
        route: &mut Route,
    ) -> bool {
        if self.gateways.is_some()
            && p.subject.starts_with(super::gateway::GR_PREFIX)
            && self.route_gateway_reply(publisher, account, p)
        {
            return true;
        }
        let mut delivered = match self.accounts[account.0 as usize]
            .sublist
            .interest(p.subject)
        {
            Some(matches) => self.deliver_all(publisher, account, p, &matches, route.from_service),
            None => false,
        };
        let acc = &self.accounts[account.0 as usize];
        if acc.service_imports.is_empty() && acc.responses.is_empty() {
            return delivered;
        }
        let imports: Vec<usize> = acc
            .service_imports
            .iter()
            .enumerate()
            .filter(|(_, si)| crate::subject::matches(si.from.as_bytes(), p.subject))
            .map(|(i, _)| i)
            .collect();
        for i in imports {
            delivered |= self.service_import(publisher, account, i, p, route);
        }
        if self.accounts[account.0 as usize]
            .reply_prefix
            .as_ref()
            .is_some_and(|pre| p.subject.starts_with(pre))
        {
            self.respond(publisher, account, p, route);
            delivered = true;
        }
        delivered
    }

    /// A request on a service import of `account` goes to the exporter.
    fn service_import(
        &mut self,
        publisher: ConnId,
        account: AccountId,
        index: usize,
        p: &Pub<'_>,
        route: &mut Route,
    ) -> bool {
        let si = &self.accounts[account.0 as usize].service_imports[index];
        let (dest, export) = (si.dest, si.export);
        if route.chain.contains(&(dest, export)) || route.chain.len() >= MAX_CHAIN {
            return true;
        }
        let to: Vec<u8> = match &si.transform {
            Some(t) => t.apply(p.subject),
            None if si.use_pub => p.subject.to_vec(),
            None => si.to.as_bytes().to_vec(),
        };
        let (response_type, threshold) = (si.response_type, si.threshold);
        let to = {
            let d = &self.accounts[dest.0 as usize];
            if d.mappings.is_empty() {
                to
            } else {
                let rng = &mut self.rng.routing;
                match d.mappings.map(&to, || (rng.next_u32() % 100) as u8) {
                    Mapped::Unchanged => to,
                    Mapped::To(s) => s,
                    Mapped::Dropped => return true,
                }
            }
        };
        let reply = match p.reply {
            Some(r) if !r.starts_with(b"$JS.ACK.") => {
                let nrr = self.new_service_reply(dest);
                self.accounts[dest.0 as usize].responses.insert(
                    nrr.clone().into_boxed_slice(),
                    ResponseRoute {
                        requester: account,
                        reply: r.into(),
                        response_type,
                        threshold,
                        last: self.now.instant,
                    },
                );
                Some(nrr)
            }
            Some(r) => Some(r.to_vec()),
            None => None,
        };
        // The requester, as the responder is told of it.
        let origin = match &route.origin {
            Some(o) => o.clone(),
            None => {
                let rtt = self
                    .conns
                    .get(publisher.0)
                    .and_then(|c| c.rtt)
                    .map_or(0, |d| d.as_nanos() as u64);
                (self.accounts[account.0 as usize].name.clone(), rtt)
            }
        };
        let service =
            (!route.chain.is_empty()).then(|| self.accounts[account.0 as usize].name.clone());
        let info = request_info(&origin.0, service.as_deref(), origin.1);
        let msg = with_header(p, REQUEST_INFO, &info);
        let (hdr_token, size_token) = (msg.header_len.to_string(), msg.bytes.len().to_string());
        let forwarded = Pub {
            subject: &to,
            reply: reply.as_deref(),
            size_token: size_token.as_bytes(),
            header: Some((msg.header_len, hdr_token.as_bytes())),
            payload: &msg.bytes,
        };
        let saved_origin = route.origin.replace(origin);
        let saved_from_service = std::mem::replace(&mut route.from_service, true);
        route.chain.push((dest, export));
        let delivered = self.route(publisher, dest, &forwarded, route);
        route.chain.pop();
        route.origin = saved_origin;
        route.from_service = saved_from_service;
        if !delivered && let Some(nrr) = &reply {
            self.accounts[dest.0 as usize]
                .responses
                .remove(nrr.as_slice());
        }
        true
    }

    /// A response published on an `_R_` subject of `account` goes back to
    /// the requester.
    fn respond(&mut self, publisher: ConnId, account: AccountId, p: &Pub<'_>, route: &mut Route) {
        let now = self.now.instant;
        let acc = &mut self.accounts[account.0 as usize];
        let Some(r) = acc.responses.get(p.subject) else {
            return;
        };
        if now.since(r.last) > r.threshold {
            acc.responses.remove(p.subject);
            return;
        }
        let (requester, reply, response_type) = (r.requester, r.reply.clone(), r.response_type);
        let back = Pub {
            subject: &reply,
            reply: None,
            ..*p
        };
        let saved = std::mem::replace(&mut route.from_service, true);
        let delivered = self.route(publisher, requester, &back, route);
        route.from_service = saved;
        let acc = &mut self.accounts[account.0 as usize];
        let done = !delivered || response_type == ResponseType::Singleton || p.payload.is_empty();
        if done {
            acc.responses.remove(p.subject);
        } else if let Some(r) = acc.responses.get_mut(p.subject) {
            r.last = now;
        }
    }

    /// `_R_.<prefix>.<6 random digits>` in `account` (the prefix is drawn
    /// once per account); sweeps expired routes now and then.
    fn new_service_reply(&mut self, account: AccountId) -> Vec<u8> {
        let now = self.now.instant;
        if self.accounts[account.0 as usize].reply_prefix.is_none() {
            let mut pre = b"_R_.".to_vec();
            pre.extend(self.random_digits());
            pre.push(b'.');
            self.accounts[account.0 as usize].reply_prefix = Some(pre);
        }
        let digits = self.random_digits();
        let acc = &mut self.accounts[account.0 as usize];
        if acc.responses.len() >= acc.sweep_at {
            acc.responses
                .retain(|_, r| now.since(r.last) <= r.threshold);
            acc.sweep_at = (acc.responses.len() * 2).max(64);
        }
        let mut reply = acc.reply_prefix.clone().unwrap_or_default();
        reply.extend(digits);
        reply
    }

    fn random_digits(&mut self) -> [u8; 6] {
        let mut n = self.rng.ids.next_u64();
        let mut out = [0u8; 6];
        for d in &mut out {
            *d = DIGITS[(n % 62) as usize];
            n /= 62;
        }
        out
    }

    /// Adds the shadow subscriptions of a new subscription `h` in
    /// `account`: one in each exporting account whose stream import the
    /// subject overlaps.
    pub(crate) fn add_shadow_subs(&mut self, account: AccountId, h: SubId) {
        let acc = &self.accounts[account.0 as usize];
        if acc.stream_imports.is_empty() {
            return;
        }
        let sub = &self.subs[h.0 as usize];
        let subject = String::from_utf8_lossy(&sub.subject).into_owned();
        let mut shadows: Vec<(usize, AccountId, String)> = Vec::new();
        for (i, im) in acc.stream_imports.iter().enumerate() {
            let shadow_subject = if subject == im.to
                || crate::auth::permissions::subset(im.to.as_bytes(), subject.as_bytes())
            {
                // The subscription covers the whole import.
                im.from.clone()
            } else if crate::auth::permissions::subset(subject.as_bytes(), im.to.as_bytes()) {
                // Part of the import: the same part of the export.
                match &im.reverse {
                    Some(r) => String::from_utf8_lossy(&r.apply(subject.as_bytes())).into_owned(),
                    None if im.use_pub => subject.clone(),
                    None => im.from.clone(),
                }
            } else if crate::account::subjects_collide(&subject, &im.to) {
                // Overlapping wildcards: the intersection.
                let Some(overlap) = intersect(&subject, &im.to) else {
                    continue;
                };
                match &im.reverse {
                    Some(r) => String::from_utf8_lossy(&r.apply(overlap.as_bytes())).into_owned(),
                    None => overlap,
                }
            } else {
                continue;
            };
            shadows.push((i, im.source, shadow_subject));
        }
        let (conn, queue, sid) = (sub.conn, sub.queue.clone(), sub.sid.clone());
        for (import, source, subject) in shadows {
            let key = self.subs.vacant_key();
            let handle = SubId(u32::try_from(key).expect("fewer than 2^32 subscriptions"));
            if self.accounts[source.0 as usize]
                .sublist
                .insert(subject.as_bytes(), queue.as_deref(), handle)
                .is_err()
            {
                continue;
            }
            let from = self.accounts[source.0 as usize].name.clone();
            self.debug(conn, || {
                format!("Creating import subscription on {subject:?} from account {from:?}")
            });
            self.interest_changed(source, subject.as_bytes(), queue.as_deref(), conn, 1);
            self.subs.insert(super::Subscription {
                conn,
                account: source,
                weight: 1,
                subject: subject.as_bytes().into(),
                queue: queue.clone(),
                sid: sid.clone(),
                max: 0,
                delivered: 0,
                shadow: Some(Box::new(super::conn::Shadow {
                    parent: h,
                    importer: account,
                    import,
                })),
            });
            self.shadows_of.entry(h).or_default().push(handle);
        }
    }

    /// The subject a shadow subscription delivers `subject` (published in
    /// the exporting account) under.
    pub(crate) fn shadow_subject(&self, shadow: &super::conn::Shadow, subject: &[u8]) -> Vec<u8> {
        let im = &self.accounts[shadow.importer.0 as usize].stream_imports[shadow.import];
        match &im.transform {
            Some(t) => t.apply(subject),
            None if im.use_pub => subject.to_vec(),
            None => im.to.as_bytes().to_vec(),
        }
    }
}

/// The subjects both `a` and `b` match, as one subject, where wildcards of
/// `a` are narrowed by literal tokens of `b` (nats-server's overlap case).
fn intersect(a: &str, b: &str) -> Option<String> {
    let mut ta: Vec<&str> = a.split('.').collect();
    let tb: Vec<&str> = b.split('.').collect();
    for i in 0..ta.len().min(tb.len()) {
        if ta[i] == "*" && tb[i] != ">" {
            ta[i] = tb[i];
        }
    }
    let last = ta.len() - 1;
    if ta[last] == ">" && tb.len() >= ta.len() {
        ta[last] = tb[last];
        ta.extend_from_slice(&tb[ta.len()..]);
    }
    let s = ta.join(".");
    crate::auth::permissions::subset(s.as_bytes(), b.as_bytes()).then_some(s)
}

/// `{"acc":"B","rtt":123}` (nats-server's `ClientInfo` without details; a
/// chained import adds the account it came through as `svc`).
fn request_info(account: &str, service: Option<&str>, rtt_ns: u64) -> String {
    let mut s = format!("{{\"acc\":{}", json_string(account));
    if let Some(svc) = service {
        s.push_str(&format!(",\"svc\":{}", json_string(svc)));
    }
    if rtt_ns > 0 {
        s.push_str(&format!(",\"rtt\":{rtt_ns}"));
    }
    s.push('}');
    s
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A message with one header set (replacing the same key).
pub(crate) struct WithHeader {
    pub bytes: Vec<u8>,
    pub header_len: usize,
}

/// `p`'s payload with `key: value` set in its headers, as nats-server's
/// `setHeader` writes it: the old headers without that key, then the new
/// line, then the blank line.
pub(crate) fn with_header(p: &Pub<'_>, key: &str, value: &str) -> WithHeader {
    let mut bytes = Vec::with_capacity(p.payload.len() + key.len() + value.len() + 16);
    let old = p.headers();
    if old.len() > 2 {
        // Drop the final CRLF and any line for `key`.
        let head = &old[..old.len() - 2];
        let mut lines = head.split_inclusive(|&b| b == b'\n');
        if let Some(status) = lines.next() {
            bytes.extend_from_slice(status);
        }
        for line in lines {
            let is_key = line.len() > key.len()
                && line[..key.len()].eq_ignore_ascii_case(key.as_bytes())
                && line[key.len()] == b':';
            if !is_key {
                bytes.extend_from_slice(line);
            }
        }
    } else {
        bytes.extend_from_slice(b"NATS/1.0\r\n");
    }
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(b": ");
    bytes.extend_from_slice(value.as_bytes());
    bytes.extend_from_slice(b"\r\n\r\n");
    let header_len = bytes.len();
    bytes.extend_from_slice(p.body());
    WithHeader { bytes, header_len }
}
