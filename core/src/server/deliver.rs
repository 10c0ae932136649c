//! Publishing: matching a message against the account's sublist and
//! delivering it to plain subscribers and one member per queue group.

use std::sync::Arc;
use std::time::Duration;

use super::client::go_quote;
use super::{AccountId, CloseReason, ConnId, LogLevel, Server, SubId};
use crate::proto::Pub;
use crate::proto::encode::{self, Delivery};
use rand_core::Rng;

use super::accounts::Route;
use crate::config::PlantedBug;
use crate::mapping::Mapped;

/// Bytes queued for one subscriber above which its publishers stop reading
/// until it drains (flow control; the slow-consumer limit is unchanged).
/// Enough to keep a loopback subscriber's socket busy between two reads of
/// its publisher; little enough that a burst does not become memory.
pub(crate) const FLOW_CONTROL_BYTES: u64 = 2 * 1024 * 1024;
/// The longest a publisher waits for a subscriber under half its pending
/// limit to drain below [`FLOW_CONTROL_BYTES`].
pub(crate) const FLOW_CONTROL_STALL: Duration = Duration::from_millis(10);
use crate::subject;
use crate::sublist::Matches;

/// Gateway-routed reply subjects, which clients may not publish to.
const GW_REPLY_PREFIX: &[u8] = b"_GR_.";
/// Replies longer than this trigger an RTT ping to a subscriber whose RTT is
/// unknown (nats-server's `minReplyLen`).
const MIN_REPLY_LEN: usize = 15;
/// A client that never sent CONNECT gets such a ping only after this long.
const MAX_NO_RTT_PING_BEFORE_FIRST_PONG: Duration = Duration::from_secs(2);

fn is_reserved_reply(reply: &[u8]) -> bool {
    reply.starts_with(b"_R_.")
        || (reply.len() > b"$JS.ACK.".len() && reply.starts_with(b"$JS.ACK."))
        || (reply.len() > GW_REPLY_PREFIX.len() && reply.starts_with(GW_REPLY_PREFIX))
}

/// Test-only: plants `bug` in the delivery just encoded at `out[before..]`.
fn plant(bug: PlantedBug, out: &mut Vec<u8>, before: usize, d: &Delivery<'_>, headers: bool) {
    match bug {
        PlantedBug::DropDelivery => out.truncate(before),
        PlantedBug::Duplicate => encode::msg(out, d, headers),
        // The last body byte sits just before the closing CRLF.
        PlantedBug::FlipPayloadByte if !d.body.is_empty() => {
            let at = out.len() - 3;
            out[at] ^= 0x01;
        }
        PlantedBug::Reorder => {
            if let Some(start) = last_message_start(&out[..before]) {
                out[start..].rotate_left(before - start);
            }
        }
        _ => {}
    }
}

/// Where the last `MSG`/`HMSG` in `out` starts (test-only: assumes no
/// payload contains a line starting with `MSG `).
fn last_message_start(out: &[u8]) -> Option<usize> {
    let mut end = out.len();
    while let Some(i) = memchr::memmem::rfind(&out[..end], b"MSG ") {
        let start = if i > 0 && out[i - 1] == b'H' {
            i - 1
        } else {
            i
        };
        if start == 0 || out[start - 1] == b'\n' {
            return Some(start);
        }
        end = i;
    }
    None
}

impl Server {
    /// Test-only: whether the planted `bug` strikes now (never, unless the
    /// options plant one).
    pub(crate) fn planted(&self, bug: PlantedBug) -> bool {
        self.opts
            .mutation
            .is_some_and(|m| m.bug == bug && m.strikes(self.stats.counters.out_msgs + 1))
    }

    pub(crate) fn process_pub(&mut self, id: ConnId, p: &Pub<'_>) {
        let c = &mut self.conns[id.0];
        c.counters.in_msgs += 1;
        c.counters.in_bytes += p.payload.len() as u64;
        self.stats.counters.in_msgs += 1;
        self.stats.counters.in_bytes += p.payload.len() as u64;
        let (pedantic, verbose) = (c.opts.pedantic, c.opts.verbose);
        if pedantic && !subject::is_valid_literal_subject(p.subject) {
            self.send_err(id, "Invalid Publish Subject");
        }
        let now = self.now.instant;
        let gateway_reply =
            p.subject.len() > GW_REPLY_PREFIX.len() && p.subject.starts_with(GW_REPLY_PREFIX);
        let allowed = match &mut self.conns[id.0].perms {
            Some(perms) => perms.can_publish(p.subject, now),
            None => true,
        };
        if gateway_reply || !allowed {
            let text = format!(
                "Permissions Violation for Publish to {}",
                go_quote(p.subject)
            );
            if !self.planted(PlantedBug::DenyWithoutError) {
                self.send_err(id, &text);
            }
            let log = format!(
                "Publish Violation - {}, Subject {}",
                self.conns[id.0].auth_user(),
                go_quote(p.subject)
            );
            self.conn_log(LogLevel::Error, id, &log);
            return;
        }
        if let Some(reply) = p.reply
            && is_reserved_reply(reply)
        {
            let text = format!(
                "Permissions Violation for Publish with Reply of {}",
                go_quote(reply)
            );
            self.send_err(id, &text);
            let log = format!(
                "Publish Violation - {}, Reply {}",
                self.conns[id.0].auth_user(),
                go_quote(reply)
            );
            self.conn_log(LogLevel::Error, id, &log);
            return;
        }
        if verbose {
            self.send_ok(id);
        }
        let account = self.conns[id.0].account;
        let stats = &mut self.accounts[account.0 as usize].stats;
        stats.received_msgs += 1;
        stats.received_bytes += p.payload.len() as u64;
        let acc = &self.accounts[account.0 as usize];
        let mapped = if acc.mappings.is_empty() {
            Mapped::Unchanged
        } else {
            let rng = &mut self.rng.routing;
            acc.mappings.map(p.subject, || (rng.next_u32() % 100) as u8)
        };
        let routed;
        let p = match &mapped {
            Mapped::Unchanged => p,
            Mapped::To(subject) => {
                routed = Pub { subject, ..*p };
                &routed
            }
            Mapped::Dropped => return,
        };
        // An answer to another cluster's request goes back to it.
        let answer;
        let mapped = if self.gateways.is_some() {
            self.mapped_gateway_reply(id, p.subject)
        } else {
            None
        };
        let p = match mapped {
            Some(full) => {
                answer = full;
                &Pub {
                    subject: &answer,
                    ..*p
                }
            }
            None => p,
        };
        let delivered = self.route(id, account, p, &mut Route::default());
        if self.planted(PlantedBug::CrossAccount) {
            let next = AccountId((account.0 + 1) % self.accounts.len() as u32);
            self.route(id, next, p, &mut Route::default());
        }
        if !delivered
            && let Some(reply) = p.reply
            && self.conns[id.0].opts.no_responders
            && !self.conns[id.0].closing
            && let Some(sid) = self.own_sub_for_reply(id, reply)
        {
            let c = &mut self.conns[id.0];
            encode::no_responders(&mut c.out, reply, &sid);
            self.mark_dirty(id);
        }
    }

    /// `HMSG` from a client: counted as a publish that reaches nobody.
    pub(crate) fn process_empty_publish(&mut self, id: ConnId) {
        let c = &mut self.conns[id.0];
        c.counters.in_msgs += 1;
        self.stats.counters.in_msgs += 1;
        if c.opts.verbose {
            self.send_ok(id);
        }
    }

    pub(crate) fn own_sub_for_reply(
        &mut self,
        id: ConnId,
        reply: &[u8],
    ) -> Option<crate::bytes::SmallBytes> {
        let account = self.conns[id.0].account;
        let m = self.accounts[account.0 as usize].sublist.interest(reply)?;
        m.plain
            .iter()
            .map(|h| &self.subs[h.0 as usize])
            .find(|s| s.conn == id)
            .map(|s| s.sid.clone())
    }

    pub(crate) fn deliver_all(
        &mut self,
        publisher: ConnId,
        account: AccountId,
        p: &Pub<'_>,
        matches: &Arc<Matches<SubId>>,
        from_service: bool,
    ) -> bool {
        if self.shares_interest() {
            return self.deliver_all_clustered(publisher, account, p, matches, from_service);
        }
        let mut delivered = false;
        for &h in &matches.plain {
            delivered |= self.deliver_or_shadow(publisher, h, p, from_service);
        }
        let wrong_group = self.planted(PlantedBug::WrongQueueMember);
        for (g, group) in matches.queues.iter().enumerate() {
            // The first group's message goes to the next group instead.
            let group = if wrong_group && g == 0 {
                &matches.queues[1 % matches.queues.len()]
            } else {
                group
            };
            let n = group.members.len();
            let start = if n > 1 { self.random_below(n) } else { 0 };
            for i in 0..n {
                let h = group.members[(start + i) % n];
                if self.deliver_or_shadow(publisher, h, p, from_service) {
                    delivered = true;
                    break;
                }
            }
        }
        delivered
    }

    /// [`Server::deliver_all`] with routes or leaf nodes: a peer (route or
    /// leaf node connection) with a matching plain subscription, or chosen
    /// for a queue group, gets the message once, naming the groups it was
    /// chosen for. Queue members are chosen by weight (a peer's
    /// subscription counts for the members behind it). A message from a
    /// route goes to no route (one hop), from a leaf node not back to it,
    /// and from either to queue groups only if the peer named them.
    fn deliver_all_clustered(
        &mut self,
        publisher: ConnId,
        account: AccountId,
        p: &Pub<'_>,
        matches: &Arc<Matches<SubId>>,
        from_service: bool,
    ) -> bool {
        use super::ConnKind;
        let from_kind = self.conns.get(publisher.0).map(|c| c.kind);
        let from_route = from_kind == Some(ConnKind::Route);
        let from_gateway = from_kind == Some(ConnKind::Gateway);
        let from_peer = from_route || from_gateway || from_kind == Some(ConnKind::Leaf);
        // A leaf node connection to a hub of this server's: what comes
        // down it goes to no route, and what comes over a route goes up
        // none (but a service import's reply), as nats-server: the hub
        // reaches each server of a leaf node cluster on its own
        // connection, so the two ways never meet in a loop.
        let from_spoke = from_kind == Some(ConnKind::Leaf)
            && self
                .conns
                .get(publisher.0)
                .and_then(|c| c.leaf.as_ref())
                .is_some_and(|l| l.solicited);
        let up_from_route = from_route && !p.subject.starts_with(b"_R_.");
        // The leaf node cluster the message came in from (over a route, as
        // its `LMSG` says): it goes back to no leaf node of that cluster,
        // which has it already (nats-server's cluster-wide no echo).
        let from_leaf = from_kind == Some(ConnKind::Leaf);
        let from_origin = from_route && !self.routed_origin.is_empty();
        // Test-only: the one-hop rule broken.
        let hop_again = from_route && self.planted(PlantedBug::ForwardRoutedToRoute);
        let from_route = from_route && !hop_again;
        // Test-only: back to the leaf node it came from; on to gateways
        // from a gateway.
        let echo = from_kind == Some(ConnKind::Leaf) && self.planted(PlantedBug::EchoToLeaf);
        let gateway_again = from_gateway && self.planted(PlantedBug::GatewayToGateway);
        let gateway_hop = (from_gateway && !gateway_again) || from_route || hop_again;
        // Whether a peer may take the message: not its own; not a route
        // after a route (one hop); no gateway after a route or a gateway
        // (the first server sent it to every cluster).
        let allowed = |s: &Server, r: ConnId| {
            let c = &s.conns[r.0];
            let kind = c.kind;
            (r != publisher || echo)
                && !(from_route && kind == ConnKind::Route)
                && !(gateway_hop && kind == ConnKind::Gateway)
                // A leaf node connection's deny lists (test-only:
                // ignored).
                && (!c.leaf.as_ref().is_some_and(|l| l.denies_export(p.subject))
                    || s.planted(PlantedBug::IgnoreLeafDeny))
                && !(from_spoke && kind == ConnKind::Route)
                && !(up_from_route && c.leaf.as_ref().is_some_and(|l| l.solicited))
                // (The publisher's own connection is left to the check
                // above.)
                && !(r != publisher
                    && c.leaf.as_ref().is_some_and(|l| {
                        (from_leaf && s.same_leaf_cluster(r, publisher))
                            || (from_origin && l.cluster.as_bytes() == s.routed_origin)
                    }))
                // Routes' `permissions { export }` (test-only: ignored).
                && (kind != ConnKind::Route
                    || s.route_exports(p.subject)
                    || s.planted(PlantedBug::IgnoreRouteExport))
        };
        let mut routes: Vec<(ConnId, Vec<u8>)> = Vec::new();
        let mut delivered = false;
        for &h in &matches.plain {
            match self.route_of(h) {
                Some(r) if !allowed(self, r) => {}
                Some(r) => {
                    if !routes.iter().any(|(id, _)| *id == r) {
                        routes.push((r, Vec::new()));
                    }
                }
                None => delivered |= self.deliver_or_shadow(publisher, h, p, from_service),
            }
        }
        for group in &matches.queues {
            if from_peer && !self.routed_queue_named(&group.name) {
                continue;
            }
            let members = &group.members;
            // Members in tiers: here and on routes (and leaf nodes, for
            // what came over a route), then leaf nodes, then other
            // clusters. A tier is tried only when no member of the ones
            // before took the message (none there, or none could: the
            // publisher itself without echo, say), as nats-server prefers
            // them; a peer chosen takes it.
            let tier = |s: &Server, h: SubId| -> Option<(u8, u32)> {
                match s.route_of(h) {
                    Some(r) if !allowed(s, r) => None,
                    // A route's member on behalf of the leaf node cluster
                    // the message came from: that cluster has had it
                    // (nats-server never picks it either).
                    Some(_) if s.member_of_origin(h, publisher) => None,
                    Some(r) => {
                        let weight = s.subs.get(h.0 as usize).map_or(0, |s| s.weight);
                        let tier = match s.conns[r.0].kind {
                            ConnKind::Leaf if !from_route => 1,
                            ConnKind::Gateway => 2,
                            _ => 0,
                        };
                        Some((tier, weight))
                    }
                    None => Some((0, 1)),
                }
            };
            let mut taken = false;
            for t in 0..3 {
                let weights: Vec<u32> = members
                    .iter()
                    .map(|&h| {
                        tier(self, h)
                            .filter(|&(at, _)| at == t)
                            .map_or(0, |(_, w)| w)
                    })
                    .collect();
                let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
                if total == 0 {
                    continue;
                }
                // The member at a weighted random point, then on in order
                // past any that cannot take it.
                let mut point = self.rng.routing.next_u64() % total;
                let mut start = 0;
                for (i, &w) in weights.iter().enumerate() {
                    if point < u64::from(w) {
                        start = i;
                        break;
                    }
                    point -= u64::from(w);
                }
                let n = members.len();
                for k in 0..n {
                    let i = (start + k) % n;
                    if weights[i] == 0 {
                        continue;
                    }
                    let h = members[i];
                    if let Some(r) = self.route_of(h) {
                        if self.planted(PlantedBug::QueueTwiceAcrossServers)
                            && let Some(&local) =
                                members.iter().find(|&&m| self.route_of(m).is_none())
                        {
                            delivered |= self.deliver_or_shadow(publisher, local, p, from_service);
                        }
                        match routes.iter_mut().find(|(id, _)| *id == r) {
                            Some((_, queues)) => {
                                if !queues.is_empty() {
                                    queues.push(b' ');
                                }
                                queues.extend_from_slice(&group.name);
                            }
                            None => routes.push((r, group.name.to_vec())),
                        }
                        taken = true;
                        break;
                    }
                    if self.deliver_or_shadow(publisher, h, p, from_service) {
                        delivered = true;
                        taken = true;
                        break;
                    }
                }
                if taken {
                    break;
                }
            }
        }
        // A reply that a subscription made here lately matches goes to
        // other clusters mapped, so that the answer finds its way back
        // before that interest reaches them.
        let mut mapped: Option<Option<Vec<u8>>> = None;
        for (r, queues) in routes {
            if self.conns[r.0].kind == ConnKind::Gateway
                && let Some(plain) = p.reply
            {
                let reply = mapped
                    .get_or_insert_with(|| self.gateway_reply_for(account, plain))
                    .clone();
                if let Some(reply) = reply {
                    let p = Pub {
                        reply: Some(&reply),
                        ..*p
                    };
                    self.forward(publisher, r, account, &p, &queues);
                    delivered = true;
                    continue;
                }
            }
            self.forward(publisher, r, account, p, &queues);
            delivered = true;
        }
        delivered
    }

    /// The peer (route or leaf node connection) a subscription stands
    /// for, if it is a peer's.
    fn route_of(&self, h: SubId) -> Option<ConnId> {
        let conn = self.subs.get(h.0 as usize)?.conn;
        let c = self.conns.get(conn.0)?;
        let peer = matches!(
            c.kind,
            super::ConnKind::Route | super::ConnKind::Leaf | super::ConnKind::Gateway
        );
        (peer && !c.closing).then_some(conn)
    }

    /// Whether `h` is a route's subscription on behalf of the leaf node
    /// cluster the message being delivered came from (over that leaf
    /// node connection, or over a route as `LMSG <origin>`).
    fn member_of_origin(&self, h: SubId, publisher: ConnId) -> bool {
        let Some(sub) = self.subs.get(h.0 as usize) else {
            return false;
        };
        let origin = super::route::key_origin(&sub.sid);
        if origin.is_empty() {
            return false;
        }
        let from = match self
            .conns
            .get(publisher.0)
            .map(|c| (c.kind, c.leaf.as_ref()))
        {
            Some((super::ConnKind::Leaf, Some(l))) => l.cluster.as_bytes(),
            Some((super::ConnKind::Route, _)) => &self.routed_origin,
            _ => b"",
        };
        origin == from
    }

    /// Whether the route message being delivered names queue group `name`.
    fn routed_queue_named(&self, name: &[u8]) -> bool {
        self.routed_queues.split(|&b| b == b' ').any(|q| q == name)
    }

    /// Delivers to one subscription; through a shadow subscription, to the
    /// client's own under the importing account's subject (never what a
    /// service import brought: exported streams are not re-exported).
    fn deliver_or_shadow(
        &mut self,
        publisher: ConnId,
        h: SubId,
        p: &Pub<'_>,
        from_service: bool,
    ) -> bool {
        let Some(shadow) = self
            .subs
            .get(h.0 as usize)
            .and_then(|s| s.shadow.as_deref().copied())
        else {
            return self.deliver(publisher, h, p);
        };
        if from_service || !self.subs.contains(shadow.parent.0 as usize) {
            return false;
        }
        let subject = self.shadow_subject(&shadow, p.subject);
        let imported = Pub {
            subject: &subject,
            ..*p
        };
        self.deliver(publisher, shadow.parent, &imported)
    }

    /// Delivers to one subscription. False if it could not take the message
    /// (its own publish with echo off, closed, or gone).
    fn deliver(&mut self, publisher: ConnId, h: SubId, p: &Pub<'_>) -> bool {
        // Another cluster's `_GR_` reply: the client sees the plain one.
        let mapped;
        let p = match p.reply {
            Some(r) if self.gateways.is_some() && r.starts_with(super::gateway::GR_PREFIX) => {
                let client = self.subs.get(h.0 as usize).map(|s| s.conn).filter(|c| {
                    self.conns
                        .get(c.0)
                        .is_some_and(|c| c.kind == super::ConnKind::Client)
                });
                match client {
                    Some(c) => {
                        mapped = Pub {
                            reply: Some(self.map_gateway_reply(c, r)),
                            ..*p
                        };
                        &mapped
                    }
                    None => p,
                }
            }
            _ => p,
        };
        let mark = self.flow_mark();
        let Some(sub) = self.subs.get_mut(h.0 as usize) else {
            return false;
        };
        let target = sub.conn;
        // The server's own messages (system account) reach every client
        // subscriber, and never stall the server.
        let (echo, publisher_internal) = self
            .conns
            .get(publisher.0)
            .map_or((true, false), |c| (c.opts.echo, c.kind.is_internal()));
        if target == publisher && !echo {
            return false;
        }
        // Test-only: the planted bug striking this delivery, if any.
        let bug = self
            .opts
            .mutation
            .filter(|m| m.strikes(self.stats.counters.out_msgs + 1))
            .map(|m| m.bug);
        let conn = &mut self.conns[target.0];
        if conn.closing {
            return false;
        }
        if conn.kind.is_internal() {
            sub.delivered += 1;
            self.deliver_internal(h, p, publisher);
            return true;
        }
        if let Some(perms) = &mut conn.perms
            && perms.delivery_denied(p.subject)
            && bug != Some(PlantedBug::LeakDenied)
        {
            return false;
        }
        sub.delivered += 1;
        let auto_unsub = sub.max > 0 && sub.delivered >= sub.max;
        if sub.max > 0 && sub.delivered > sub.max {
            self.unsubscribe(h);
            return false;
        }
        let d = Delivery {
            subject: self.shown_subject.as_deref().unwrap_or(p.subject),
            sid: &sub.sid,
            reply: if bug == Some(PlantedBug::DropReply) {
                None
            } else {
                p.reply
            },
            headers: p.headers(),
            header_token: p.header.map_or(&b""[..], |(_, t)| t),
            body: p.body(),
            size_token: p.size_token,
        };
        let wire_len = if conn.headers {
            p.payload.len()
        } else {
            p.body().len()
        };
        let before = conn.out.len();
        encode::msg(&mut conn.out, &d, conn.headers);
        if let Some(bug) = bug {
            plant(bug, &mut conn.out, before, &d, conn.headers);
        }
        if conn.pending_bytes() > self.opts.max_pending {
            conn.out.truncate(before);
            self.slow_consumer(target);
            if auto_unsub && self.subs.contains(h.0 as usize) {
                self.unsubscribe(h);
            }
            return true;
        }
        let over_mark = conn.pending_bytes() > mark;
        let stallable = target != publisher && !publisher_internal;
        if over_mark && stallable && !conn.stalled_publishers.contains(&publisher) {
            conn.stalled_publishers.push(publisher);
        }
        if self.opts.trace {
            // The MSG/HMSG line just encoded, as nats-server traces it.
            let written = &conn.out[before..];
            let end = memchr::memmem::find(written, b"\r\n").unwrap_or(written.len());
            let line = format!("->> [{}]", String::from_utf8_lossy(&written[..end]));
            self.conn_log(LogLevel::Trace, target, &line);
        }
        let conn = &mut self.conns[target.0];
        if let Some(reply) = p.reply
            && let Some(perms) = &mut conn.perms
        {
            perms.track_reply(reply, self.now.instant);
        }
        let pending = conn.pending_bytes();
        conn.counters.out_msgs += 1;
        conn.counters.out_bytes += wire_len as u64;
        let stats = &mut self.accounts[conn.account.0 as usize].stats;
        stats.sent_msgs += 1;
        stats.sent_bytes += wire_len as u64;
        self.stats.counters.out_msgs += 1;
        self.stats.counters.out_bytes += wire_len as u64;
        let rtt_ping = p.reply.is_some_and(|r| r.len() > MIN_REPLY_LEN)
            && conn.rtt.is_none()
            && (conn.first_pong_sent
                || self.now.instant.since(conn.start) > MAX_NO_RTT_PING_BEFORE_FIRST_PONG);
        self.mark_dirty(target);
        if over_mark && stallable {
            self.stall(publisher, pending);
        }
        if rtt_ping {
            self.send_ping(target);
        }
        if auto_unsub {
            self.unsubscribe(h);
        }
        true
    }

    /// Bytes queued for a subscriber above which the publishers feeding it
    /// stop reading until it drains: [`FLOW_CONTROL_BYTES`], or half the
    /// pending limit if that is lower.
    pub(crate) fn flow_mark(&self) -> u64 {
        FLOW_CONTROL_BYTES.min(self.opts.max_pending / 2)
    }

    /// Pauses a publisher feeding a subscriber that is over the flow-control
    /// mark, until the subscriber drains below it or the stall ends. Up to
    /// half the pending limit the stall is [`FLOW_CONTROL_STALL`]: a
    /// subscriber that reads resumes its publishers long before, and one
    /// that does not only slows them a little on its way to the limit.
    /// Above half, it is nats-server's stall time: 100 ms, growing by 100 ms
    /// per tenth of the limit above half, 1 s at the limit.
    pub(crate) fn stall(&mut self, publisher: ConnId, pending: u64) {
        let max = self.opts.max_pending.max(1);
        let half = max / 2;
        let stall = if pending <= half {
            FLOW_CONTROL_STALL
        } else if pending >= max {
            Duration::from_secs(1)
        } else {
            let ms = 100 + 100 * (pending.saturating_sub(half) / (half / 10).max(1));
            Duration::from_millis(ms.min(1_000))
        };
        let until = self.now.instant + stall;
        let Some(c) = self.conns.get_mut(publisher.0) else {
            return;
        };
        if c.closing || c.paused_until.is_some_and(|u| u >= until) {
            return;
        }
        c.paused_until = Some(until);
        self.actions.push_back(super::Action::Pause {
            conn: publisher,
            until,
        });
    }

    /// Lets paused publishers read again.
    pub(crate) fn resume(&mut self, publishers: Vec<ConnId>) {
        for p in publishers {
            if let Some(c) = self.conns.get_mut(p.0)
                && c.paused_until.take().is_some()
                && !c.closing
            {
                self.actions.push_back(super::Action::Resume { conn: p });
            }
        }
    }

    pub(crate) fn slow_consumer(&mut self, id: ConnId) {
        self.stats.slow_consumers += 1;
        let account = self.conns[id.0].account;
        self.accounts[account.0 as usize].stats.slow_consumers += 1;
        let max = self.opts.max_pending;
        self.conn_log(
            LogLevel::Info,
            id,
            &format!("Slow Consumer Detected: MaxPending of {max} Exceeded"),
        );
        self.close(id, CloseReason::SlowConsumerPendingBytes, false);
    }
}

#[cfg(test)]
mod tests {
    use super::last_message_start;

    #[test]
    fn the_last_message_is_found_after_other_ops() {
        let out = b"MSG a 1 2\r\nhi\r\nPING\r\nHMSG b 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let start = last_message_start(out).expect("two messages");
        assert!(out[start..].starts_with(b"HMSG b"));
        assert_eq!(last_message_start(&out[..start]), Some(0));
        assert_eq!(last_message_start(b"PING\r\n"), None);
    }
}
