//! The client protocol, op by op: what each op does to the server.

use std::ops::ControlFlow;

use super::timers::Timer;
use super::{AccountId, CloseReason, ConnId, LogLevel, Server, SubId};
use crate::auth::{Auth, CertMapping, ClientPermissions, MappedBy};
use crate::config::PlantedBug;
use crate::proto::{Limits, Op, ParseError, Parser, encode};
use crate::sublist::InsertError;

type Flow = ControlFlow<()>;

/// Client protocol versions a `CONNECT` may declare.
const PROTO_MAX: i64 = 1;
/// Queue group name reserved for the server's own use.
const SYS_GROUP: &[u8] = b"_sys_";

impl Server {
    fn limits(&self, id: ConnId) -> Limits {
        let c = &self.conns[id.0];
        if matches!(
            c.kind,
            super::ConnKind::Route | super::ConnKind::Leaf | super::ConnKind::Gateway
        ) {
            // A peer forwards what its clients may publish, whatever this
            // server's own limit; a bound still keeps one declared size
            // from taking memory without end.
            let max = u64::from(self.opts.max_payload).max(super::route::PEER_MAX_PAYLOAD);
            return Limits {
                max_control_line: super::route::ROUTE_MAX_CONTROL_LINE,
                max_payload: Some(max),
                headers: true,
                awaiting_auth: c.awaiting_auth,
                route: c.kind != super::ConnKind::Leaf,
                leaf: c.kind == super::ConnKind::Leaf,
            };
        }
        Limits {
            max_control_line: self.opts.max_control_line as usize,
            max_payload: Some(u64::from(c.max_payload.unwrap_or(self.opts.max_payload))),
            headers: c.headers,
            awaiting_auth: c.awaiting_auth,
            route: false,
            leaf: false,
        }
    }

    pub(crate) fn on_received(&mut self, id: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        if c.closing || c.kind.is_internal() {
            return;
        }
        c.last_activity = self.now.instant;
        let mut parser = std::mem::take(&mut c.parser);
        self.parse_and_process(id, &mut parser, bytes);
        if let Some(c) = self.conns.get_mut(id.0) {
            c.parser = parser;
        }
    }

    fn parse_and_process(&mut self, id: ConnId, parser: &mut Parser, bytes: &[u8]) {
        // A connection's kind never changes: dispatch on it once, to a
        // loop of its own (one loop calling any of the four would copy
        // every op out of the parser's result first: measured, 20 % more
        // CPU per 16 B publish).
        match self.conns[id.0].kind {
            super::ConnKind::Route => self.parse_with(id, parser, bytes, Self::process_route_op),
            super::ConnKind::Leaf => self.parse_with(id, parser, bytes, Self::process_leaf_op),
            super::ConnKind::Gateway => {
                self.parse_with(id, parser, bytes, Self::process_gateway_op)
            }
            _ => self.parse_with(id, parser, bytes, Self::process_op),
        }
    }

    /// Parses `bytes` op by op into `process` until they run out, an op
    /// closes the connection or a parse error does.
    #[inline(always)]
    fn parse_with(
        &mut self,
        id: ConnId,
        parser: &mut Parser,
        bytes: &[u8],
        mut process: impl FnMut(&mut Self, ConnId, Op<'_>) -> Flow,
    ) {
        let mut pos = 0;
        loop {
            let limits = self.limits(id);
            match parser.next(bytes, &mut pos, &limits) {
                Ok(Some(op)) => {
                    if process(self, id, op).is_break() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    self.parse_error(id, e);
                    return;
                }
            }
        }
    }

    fn parse_error(&mut self, id: ConnId, e: ParseError) {
        match e {
            ParseError::UnknownOp => {
                self.send_err(id, "Unknown Protocol Operation");
                self.conn_log(LogLevel::Error, id, "Client parser ERROR");
                self.close(id, CloseReason::ProtocolViolation, true);
            }
            ParseError::MaxControlLine => {
                self.send_err(id, "maximum control line exceeded");
                self.close(id, CloseReason::MaxControlLineExceeded, true);
            }
            ParseError::MaxPayload => {
                self.conn_log(LogLevel::Error, id, "Maximum Payload Violation");
                self.send_err(id, "Maximum Payload Violation");
                self.close(id, CloseReason::MaxPayloadExceeded, true);
            }
            ParseError::AuthRequired => self.auth_violation(id),
            ParseError::Malformed(what) => {
                self.conn_log(LogLevel::Error, id, what);
                self.close(id, CloseReason::ProtocolViolation, true);
            }
        }
    }

    pub(crate) fn auth_violation(&mut self, id: ConnId) {
        let c = &self.conns[id.0];
        let line = match &self.opts.auth {
            Auth::Users(u) if !u.by_nkey.is_empty() => {
                format!(
                    "authentication error - Nkey {}",
                    go_quote(c.opts.nkey.as_bytes())
                )
            }
            Auth::Users(u) if !u.by_name.is_empty() => {
                format!(
                    "authentication error - User {}",
                    go_quote(c.opts.user.as_bytes())
                )
            }
            _ => "authentication error".to_string(),
        };
        self.conn_log(LogLevel::Error, id, &line);
        self.auth_error_event(id);
        self.send_err(id, "Authorization Violation");
        self.close(id, CloseReason::AuthenticationViolation, true);
    }

    /// Checks a client's credentials and, if they are good, gives it its
    /// user's permissions. With `verify_and_map` the user comes from the
    /// client's certificate (a user name in `CONNECT` is ignored); else a
    /// client that sent none is taken as the `no_auth_user`, if there is one.
    pub(crate) fn authenticate(&mut self, id: ConnId) -> bool {
        if self.maps_certificates(id) {
            if !self.map_certificate(id) {
                return false;
            }
        } else {
            let c = &mut self.conns[id.0];
            if let Auth::Users(users) = &self.opts.auth
                && !self.opts.no_auth_user.is_empty()
                && c.opts.user.is_empty()
                && c.opts.pass.is_empty()
                && c.opts.auth_token.is_empty()
                && let Some(user) = users.by_name.get(&self.opts.no_auth_user)
            {
                c.opts.user = self.opts.no_auth_user.clone();
                c.opts.pass = user.password.clone();
            }
        }
        let c = &mut self.conns[id.0];
        let Some(login) = self.opts.auth.authenticate(&c.opts, c.nonce.as_bytes()) else {
            return false;
        };
        let user = self.opts.auth.user(&login);
        c.perms = user
            .and_then(|u| u.permissions.as_ref())
            .map(|p| Box::new(ClientPermissions::new(&p.normalized())));
        let account = user.and_then(|u| u.account.clone());
        let account = match account {
            Some(name) => self.account_id(&name).unwrap_or(AccountId::GLOBAL),
            None => AccountId::GLOBAL,
        };
        self.conns[id.0].account = account;
        true
    }

    /// Counts a client that passed `CONNECT` in its account and gives it
    /// the account's limits. False if the account is full (the client has
    /// been told and is closing).
    fn register_with_account(&mut self, id: ConnId) -> bool {
        let account = self.conns[id.0].account;
        let acc = &self.accounts[account.0 as usize];
        let limits = acc.limits;
        if limits.max_connections >= 0 && acc.num_conns as i64 >= limits.max_connections {
            let text = "maximum account active connections exceeded";
            self.conn_log(LogLevel::Error, id, text);
            self.send_err(id, text);
            self.close(id, CloseReason::MaxAccountConnectionsExceeded, true);
            return false;
        }
        self.accounts[account.0 as usize].num_conns += 1;
        let server_payload = i64::from(self.opts.max_payload);
        let server_subs = match self.opts.max_subscriptions {
            0 => -1,
            n => i64::from(n),
        };
        let min = |a: i64, b: i64| match (a, b) {
            (-1, b) => b,
            (a, -1) => a,
            (a, b) => a.min(b),
        };
        let c = &mut self.conns[id.0];
        c.registered = true;
        c.max_subs = min(limits.max_subscriptions, server_subs);
        let payload = min(limits.max_payload, server_payload);
        c.max_payload = (payload != server_payload).then(|| payload.max(0) as u32);
        // Subscriptions made before CONNECT were held to the server's limit:
        // a client at that limit (not over it) stays.
        if c.max_subs >= 0 && c.subs.len() as i64 > c.max_subs {
            self.send_err(id, "maximum subscriptions exceeded");
            self.close(id, CloseReason::MaxSubscriptionsExceeded, true);
            return false;
        }
        true
    }

    /// Whether this client's user is taken from its certificate: with
    /// `verify_and_map`, a users list, and no nkey to log in by.
    fn maps_certificates(&self, id: ConnId) -> bool {
        let nkey_login = |u: &crate::auth::Users| {
            !u.by_nkey.is_empty() && !self.conns[id.0].opts.nkey.is_empty()
        };
        self.opts.tls.as_ref().is_some_and(|t| t.map)
            && matches!(&self.opts.auth, Auth::Users(u) if !u.by_name.is_empty() && !nkey_login(u))
    }

    /// Puts the user the client's certificate maps to in its `CONNECT`
    /// options (the password is checked as for any user: nats-server
    /// compares the user's, normally empty, with the one sent); false when
    /// it maps to no one.
    fn map_certificate(&mut self, id: ConnId) -> bool {
        let Auth::Users(users) = &self.opts.auth else {
            return false;
        };
        let Some(cert) = self.conns[id.0].peer_cert.as_deref() else {
            self.debug(id, || {
                "User required in cert, no peer certificates found".to_string()
            });
            return false;
        };
        let (user, by) = match users.map_certificate(cert) {
            CertMapping::User(user, by) => (user, by),
            CertMapping::NoIdentity => {
                self.debug(id, || "User required in cert, none found".to_string());
                return false;
            }
            CertMapping::NotFound { subject } => {
                self.debug(id, || {
                    format!("User in cert [{}], not found", go_quote(subject.as_bytes()))
                });
                return false;
            }
        };
        let how = match by {
            MappedBy::Email => "Using email found in cert for auth",
            MappedBy::DnsName => "Using SAN found in cert for auth",
            MappedBy::Uri => "Using URI found in cert for auth",
            MappedBy::DistinguishedName => "Using DistinguishedNameMatch for auth",
            MappedBy::SubjectWithDomainComponents => "Using RDNSequence for auth",
            MappedBy::Subject => "Using certificate subject for auth",
        };
        let quoted = go_quote(user.as_bytes());
        self.debug(id, || format!("{how} [{quoted}]"));
        let sent = std::mem::replace(&mut self.conns[id.0].opts.user, user);
        if !sent.is_empty() {
            let line = format!(
                "User {} found in connect proto, but user required from cert",
                go_quote(sent.as_bytes())
            );
            self.log(LogLevel::Warn, line);
        }
        true
    }

    fn process_op(&mut self, id: ConnId, op: Op<'_>) -> Flow {
        if self.opts.trace {
            self.trace_op(id, &op);
            if let Op::Pub(p) = &op {
                self.trace_payload(id, p.payload);
            }
        }
        match op {
            Op::Connect(json) => self.process_connect(id, json),
            Op::Info(json) => match serde_json::from_slice::<serde_json::Value>(json) {
                Ok(serde_json::Value::Object(_) | serde_json::Value::Null) => Flow::Continue(()),
                _ => {
                    self.close(id, CloseReason::ProtocolViolation, true);
                    Flow::Break(())
                }
            },
            Op::Pub(p) => {
                self.process_pub(id, &p);
                self.still_open(id)
            }
            Op::Msg => {
                self.process_empty_publish(id);
                Flow::Continue(())
            }
            Op::Sub {
                subject,
                queue,
                sid,
            } => {
                self.process_sub(id, subject, queue, sid);
                Flow::Continue(())
            }
            Op::Unsub { sid, max } => {
                self.process_unsub(id, sid, max);
                Flow::Continue(())
            }
            Op::Ping => {
                self.process_ping(id);
                Flow::Continue(())
            }
            Op::Pong => {
                let now = self.now.instant;
                let c = &mut self.conns[id.0];
                c.pings_out = 0;
                if let Some(start) = c.rtt_start {
                    c.rtt = Some(now.since(start).max(std::time::Duration::from_nanos(1)));
                }
                Flow::Continue(())
            }
            Op::Ok => Flow::Continue(()),
            Op::RouteSub { .. } | Op::RouteUnsub { .. } | Op::Routed(_) => {
                unreachable!("the client parser yields no route ops")
            }
            Op::Err(text) => {
                let msg = format!("Client Error {}", String::from_utf8_lossy(text));
                self.conn_log(LogLevel::Error, id, &msg);
                self.close(id, CloseReason::ParseError, true);
                Flow::Break(())
            }
        }
    }

    fn still_open(&self, id: ConnId) -> Flow {
        if self.conns[id.0].closing {
            Flow::Break(())
        } else {
            Flow::Continue(())
        }
    }

    fn process_connect(&mut self, id: ConnId, json: &[u8]) -> Flow {
        let now = self.now.instant;
        let headers_allowed = !self.opts.no_header_support;
        self.set_deadline(id, Timer::Auth, None);
        let c = &mut self.conns[id.0];
        c.rtt = Some(now.since(c.start).max(std::time::Duration::from_nanos(1)));
        if let Err(e) = c.opts.apply(json) {
            let msg = format!("CONNECT parse error: {}", e.0);
            self.conn_log(LogLevel::Error, id, &msg);
            self.close(id, CloseReason::ProtocolViolation, true);
            return Flow::Break(());
        }
        c.connect_received = true;
        c.headers = headers_allowed && c.opts.headers;
        self.arm_first_ping(id);
        if !self.authenticate(id) {
            self.auth_violation(id);
            return Flow::Break(());
        }
        self.connect_event(id);
        let c = &self.conns[id.0];
        if c.opts.new_account || !c.opts.account.is_empty() {
            self.auth_violation(id);
            return Flow::Break(());
        }
        self.conns[id.0].awaiting_auth = false;
        if !self.conns[id.0].registered && !self.register_with_account(id) {
            return Flow::Break(());
        }
        let c = &self.conns[id.0];
        if !(0..=PROTO_MAX).contains(&c.opts.protocol) {
            self.send_err(id, "invalid client protocol");
            self.close(id, CloseReason::BadClientProtocolVersion, true);
            return Flow::Break(());
        }
        if c.opts.no_responders && !c.headers {
            self.send_err(id, "no responders requires headers support");
            self.close(id, CloseReason::NoRespondersRequiresHeaders, true);
            return Flow::Break(());
        }
        if c.opts.verbose {
            self.send_ok(id);
        }
        Flow::Continue(())
    }

    fn process_ping(&mut self, id: ConnId) {
        self.send(id, encode::PONG);
        self.trace(id, || "->> [PONG]".to_string());
        let now = self.now.instant;
        let c = &mut self.conns[id.0];
        c.last_ping_in = Some(now);
        if c.connect_received && !c.first_pong_sent {
            c.first_pong_sent = true;
            // An account limit made the payload limit smaller than the
            // first INFO said: say it again (after the PONG).
            if let Some(max) = c.max_payload {
                let mut info = self.info.clone();
                info.client_id = c.cid;
                info.client_ip = c.peer.ip().to_string();
                info.nonce = String::new();
                info.max_payload = i32::try_from(max).unwrap_or(i32::MAX);
                let mut out = Vec::new();
                info.encode_into(&mut out);
                self.send(id, &out);
            }
        }
    }

    fn process_sub(&mut self, id: ConnId, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        let c = &self.conns[id.0];
        let verbose = c.opts.verbose;
        let allowed = match &mut self.conns[id.0].perms {
            Some(perms) => perms.can_subscribe(subject, queue),
            None => true,
        };
        if !allowed || queue == Some(SYS_GROUP) {
            self.sub_permission_violation(id, subject, queue, sid);
            return;
        }
        let c = &self.conns[id.0];
        let max = if c.registered {
            c.max_subs
        } else {
            match self.opts.max_subscriptions {
                0 => -1,
                n => i64::from(n),
            }
        };
        if max >= 0 && c.subs.len() as i64 >= max {
            self.send_err(id, "maximum subscriptions exceeded");
            return;
        }
        if c.subs.contains_key(sid) {
            if verbose {
                self.send_ok(id);
            }
            return;
        }
        let account = c.account;
        let key = self.subs.vacant_key();
        let handle = SubId(u32::try_from(key).expect("fewer than 2^32 subscriptions"));
        match self.accounts[account.0 as usize]
            .sublist
            .insert(subject, queue, handle)
        {
            Err(InsertError::InvalidSubject) => {
                self.send_err(id, "Invalid Subject");
                return;
            }
            Ok(()) => {}
        }
        self.subs.insert(super::Subscription {
            conn: id,
            account,
            weight: 1,
            subject: subject.into(),
            queue: queue.map(Into::into),
            sid: sid.into(),
            max: 0,
            delivered: 0,
            shadow: None,
        });
        self.conns[id.0].subs.insert(sid.into(), handle);
        if self.gateways.is_some() {
            self.note_recent_sub(account, subject);
        }
        self.interest_changed(account, subject, queue, id, 1);
        self.add_shadow_subs(account, handle);
        if verbose {
            self.send_ok(id);
        }
    }

    fn sub_permission_violation(
        &mut self,
        id: ConnId,
        subject: &[u8],
        queue: Option<&[u8]>,
        sid: &[u8],
    ) {
        let user = self.conns[id.0].auth_user();
        let sid = String::from_utf8_lossy(sid);
        let (text, log) = match queue {
            Some(q) => (
                format!(
                    "Permissions Violation for Subscription to {} using queue {}",
                    go_quote(subject),
                    go_quote(q)
                ),
                format!(
                    "Subscription Violation - {user}, Subject {}, Queue: {}, SID {sid}",
                    go_quote(subject),
                    go_quote(q)
                ),
            ),
            None => (
                format!(
                    "Permissions Violation for Subscription to {}",
                    go_quote(subject)
                ),
                format!(
                    "Subscription Violation - {user}, Subject {}, SID {sid}",
                    go_quote(subject)
                ),
            ),
        };
        self.send_err(id, &text);
        self.conn_log(LogLevel::Error, id, &log);
    }

    fn process_unsub(&mut self, id: ConnId, sid: &[u8], max: Option<i64>) {
        let c = &self.conns[id.0];
        let verbose = c.opts.verbose;
        if let Some(&handle) = c.subs.get(sid) {
            let sub = &mut self.subs[handle.0 as usize];
            match max {
                Some(m) if m > 0 && (m as u64) > sub.delivered => sub.max = m as u64,
                _ if self.planted(PlantedBug::DeliverAfterUnsubscribe) => {}
                _ => self.unsubscribe(handle),
            }
        }
        if verbose {
            self.send_ok(id);
        }
    }

    /// Removes a subscription from its connection and its sublist.
    pub(crate) fn unsubscribe(&mut self, handle: SubId) {
        let sub = &self.subs[handle.0 as usize];
        let conn = sub.conn;
        if let Some(c) = self.conns.get_mut(conn.0) {
            c.subs.remove(&sub.sid);
        }
        self.remove_sub(handle);
    }

    /// `<<- MSG_PAYLOAD: ["..."]`, cut at `max_traced_msg_len` bytes.
    fn trace_payload(&mut self, id: ConnId, payload: &[u8]) {
        let max = self.opts.max_traced_msg_len;
        let line = if max > 0 && payload.len() > max {
            let q = go_quote(&payload[..max]);
            format!("<<- MSG_PAYLOAD: [\"{}...\"]", &q[1..q.len() - 1])
        } else {
            format!("<<- MSG_PAYLOAD: [{}]", go_quote(payload))
        };
        self.conn_log(LogLevel::Trace, id, &line);
    }

    fn trace_op(&mut self, id: ConnId, op: &Op<'_>) {
        let line = match op {
            Op::Connect(a) => format!("<<- [CONNECT {}]", String::from_utf8_lossy(a)),
            Op::Info(a) => format!("<<- [INFO {}]", String::from_utf8_lossy(a)),
            Op::Pub(p) => {
                let mut s = format!(
                    "<<- [{}PUB {}",
                    if p.header.is_some() { "H" } else { "" },
                    String::from_utf8_lossy(p.subject)
                );
                if let Some(r) = p.reply {
                    s.push(' ');
                    s.push_str(&String::from_utf8_lossy(r));
                }
                if let Some((_, h)) = p.header {
                    s.push(' ');
                    s.push_str(&String::from_utf8_lossy(h));
                }
                s.push(' ');
                s.push_str(&String::from_utf8_lossy(p.size_token));
                s.push(']');
                s
            }
            Op::Sub {
                subject,
                queue,
                sid,
            } => {
                let q = queue
                    .map(|q| format!(" {}", String::from_utf8_lossy(q)))
                    .unwrap_or_default();
                format!(
                    "<<- [SUB {}{q} {}]",
                    String::from_utf8_lossy(subject),
                    String::from_utf8_lossy(sid)
                )
            }
            Op::Unsub { sid, max } => {
                let m = max.map(|m| format!(" {m}")).unwrap_or_default();
                format!("<<- [UNSUB {}{m}]", String::from_utf8_lossy(sid))
            }
            Op::Ping => "<<- [PING]".to_string(),
            Op::Pong => "<<- [PONG]".to_string(),
            Op::Ok => "<<- [OK]".to_string(),
            Op::Err(a) => format!("<<- [-ERR {}]", String::from_utf8_lossy(a)),
            Op::Msg => "<<- [MSG]".to_string(),
            Op::RouteSub {
                account,
                subject,
                queue,
                origin,
            } => {
                let q = queue
                    .map(|(q, w)| {
                        format!(
                            " {} {}",
                            String::from_utf8_lossy(q),
                            String::from_utf8_lossy(w)
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "<<- [{} {} {}{q}]",
                    origin_verb("LS+", "RS+", origin),
                    String::from_utf8_lossy(account),
                    String::from_utf8_lossy(subject)
                )
            }
            Op::RouteUnsub {
                account,
                subject,
                queue,
                origin,
            } => {
                let q = queue
                    .map(|q| format!(" {}", String::from_utf8_lossy(q)))
                    .unwrap_or_default();
                format!(
                    "<<- [{} {} {}{q}]",
                    origin_verb("LS-", "RS-", origin),
                    String::from_utf8_lossy(account),
                    String::from_utf8_lossy(subject)
                )
            }
            Op::Routed(r) => format!(
                "<<- [RMSG {} {} {}]",
                String::from_utf8_lossy(r.account),
                String::from_utf8_lossy(r.msg.subject),
                String::from_utf8_lossy(r.msg.size_token)
            ),
        };
        self.conn_log(LogLevel::Trace, id, &line);
    }
}

/// Quotes like Go's `%q` for the printable ASCII subjects clients use.
/// A traced interest op's verb and, with an origin (a route's `LS+`/`LS-`),
/// the origin after it.
fn origin_verb(with: &str, without: &str, origin: &[u8]) -> String {
    if origin.is_empty() {
        without.to_string()
    } else {
        format!("{with} {}", String::from_utf8_lossy(origin))
    }
}

pub(crate) fn go_quote(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() + 2);
    s.push('"');
    for chunk in b.utf8_chunks() {
        for ch in chunk.valid().chars() {
            match ch {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\x07' => s.push_str("\\a"),
                '\x08' => s.push_str("\\b"),
                '\x0c' => s.push_str("\\f"),
                '\n' => s.push_str("\\n"),
                '\r' => s.push_str("\\r"),
                '\t' => s.push_str("\\t"),
                '\x0b' => s.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    s.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if c.is_control() => {
                    if (c as u32) < 0x10000 {
                        s.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        s.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => s.push(c),
            }
        }
        for &byte in chunk.invalid() {
            s.push_str(&format!("\\x{byte:02x}"));
        }
    }
    s.push('"');
    s
}
