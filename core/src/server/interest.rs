//! Interest shared with other servers: what routes and leaf node
//! connections are told of an account's subscriptions.
//!
//! Every subscription in an account counts, by weight (a route's, leaf
//! node's or gateway's queue subscription stands for its members), under
//! its subject and queue group: `all` over every connection, `routes` over
//! route connections, `gateways` over gateway connections (other
//! clusters' interest, which only this server's own gateway connections
//! act on). A route hears of what comes neither from routes (one hop) nor
//! from gateways, an inbound gateway of what does not come from gateways,
//! a leaf node connection of what comes neither from itself nor from
//! gateways: interest flows from leaf nodes to routes and gateways (but a
//! hub's, which only other leaf nodes hear), from routes to leaf nodes and
//! gateways, and back to nobody. A plain subject is
//! announced when its count leaves zero and withdrawn when it returns
//! there; a queue group is announced again with its new weight on every
//! change. Only servers with routes or leaf nodes keep these counts.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use super::{AccountId, ConnId, ConnKind, Server, SubId};
use crate::proto::Routed;
use crate::sublist::InsertError;

/// One peer connection past its handshake, as this server sees it: for
/// the simulation's checkers, which compare both ends of every link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLink {
    pub kind: PeerKind,
    /// The server id at the other end.
    pub peer: String,
    /// What this server tells the peer of its interest, as
    /// `<account> <subject>[ <queue>=<weight>]`.
    pub announces: BTreeSet<String>,
    /// What the peer told this server, in the same form.
    pub heard: BTreeSet<String>,
    /// The account a leaf node connection binds (empty on other links).
    pub account: String,
    /// Subjects whose interest this end keeps when the peer tells it (a
    /// leaf node connection's permissions: `None` is every subject), and
    /// those it does not (its deny lists); both only for literal subjects,
    /// but on routes (`permissions { export }`) for every subscription.
    pub keeps_only: Option<Vec<String>>,
    pub refuses: Vec<String>,
}

impl PeerLink {
    /// Whether this end keeps an announcement `<account> <subject>[
    /// <queue>=<weight>]` from the peer.
    pub fn keeps(&self, announced: &str) -> bool {
        let subject = announced.split(' ').nth(1).unwrap_or_default().as_bytes();
        // (The loop detection subject is always kept.)
        let any = |ps: &[String]| {
            ps.iter()
                .any(|p| crate::subject::matches(p.as_bytes(), subject))
        };
        // (A route's permissions refuse a wildcard subscription too, its
        // tokens taken literally.)
        subject.starts_with(b"$LDS.")
            || (self.kind != PeerKind::Route && !crate::subject::is_literal(subject))
            || (self.keeps_only.as_deref().is_none_or(any) && !any(&self.refuses))
    }
}

/// The kind of a [`PeerLink`]; a gateway connection by its direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerKind {
    Route,
    Leaf,
    /// This server dialed it: it sends messages and hears interest.
    GatewayOut,
    /// The peer dialed it: this server announces interest on it.
    GatewayIn,
}

/// The weight of a subject (and queue group) in an account.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    /// Over every connection.
    pub all: u32,
    /// Over route connections.
    pub routes: u32,
    /// Over gateway connections (other clusters' interest).
    pub gateways: u32,
    /// Over leaf node connections this server dialed (its hubs').
    pub spokes: u32,
}

impl Count {
    /// What routes hear: neither theirs, nor other clusters', nor this
    /// server's hubs' (nats-server keeps a hub's interest off routes and
    /// gateways: the other servers of a leaf node cluster reach the hub
    /// cluster on their own connections, and a message that comes over a
    /// route goes up to no hub, so a queue member a route announced there
    /// could never be reached).
    pub fn for_routes(&self) -> u32 {
        self.all
            .saturating_sub(self.routes + self.gateways + self.spokes)
    }

    /// What other clusters hear: neither theirs nor this server's hubs'.
    pub fn for_gateways(&self) -> u32 {
        self.all.saturating_sub(self.gateways + self.spokes)
    }

    /// What a leaf node connection hears of `subject`, less what it told
    /// itself (`own`). On a connection this server dialed (to its hub),
    /// only the interest of its own clients and of the leaf nodes it is
    /// the hub of, as nats-server: a hub reaches each server of a leaf
    /// node cluster on that server's own connection, so neither routes'
    /// interest nor other hubs' goes up. That holds for the loop detection
    /// subjects too: nats-server sends those up whatever their source,
    /// but not back to the cluster they came from, which natrix, keeping
    /// no origin of interest, cannot tell (a hub's own subject came back
    /// through its leaf node cluster's routes, a false loop).
    pub fn for_leaf(&self, spoke: bool, own: u32) -> u32 {
        if spoke {
            self.all
                .saturating_sub(self.routes + self.gateways + self.spokes)
        } else {
            self.all.saturating_sub(self.gateways).saturating_sub(own)
        }
    }
}

/// The key of a subject and queue group: `<subject>[ <queue>]`.
pub(crate) fn key(subject: &[u8], queue: Option<&[u8]>) -> Box<[u8]> {
    let mut key = subject.to_vec();
    if let Some(q) = queue {
        key.push(b' ');
        key.extend_from_slice(q);
    }
    key.into_boxed_slice()
}

/// A key back into its subject and queue group.
pub(crate) fn split(key: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr::memchr(b' ', key) {
        Some(i) => (&key[..i], Some(&key[i + 1..])),
        None => (key, None),
    }
}

/// What a peer that saw `old` and now sees `new` must be told: `Some(w)`
/// to announce weight `w`, `Some(0)` to withdraw, `None` nothing.
pub(crate) fn change(queue: bool, old: u32, new: u32) -> Option<u32> {
    match (queue, old == 0, new == 0) {
        (_, true, true) => None,
        (_, false, true) => Some(0),
        (false, true, false) => Some(new),
        (false, false, false) => None,
        (true, _, false) => (old != new).then_some(new),
    }
}

fn add(n: u32, delta: i64) -> u32 {
    u32::try_from((i64::from(n) + delta).max(0)).unwrap_or(u32::MAX)
}

/// A peer's queue weight as written (a malformed one counts as 1).
/// `<account> <subject>[ <queue>=<weight>]` of an interest key.
fn show(account: &str, key: &[u8], weight: u32) -> String {
    let (subject, queue) = split(key);
    let subject = String::from_utf8_lossy(subject);
    match queue {
        Some(q) => format!(
            "{account} {subject} {}={weight}",
            String::from_utf8_lossy(q)
        ),
        None => format!("{account} {subject}"),
    }
}

pub(crate) fn queue_weight(w: &[u8]) -> u32 {
    u32::try_from(crate::proto::parser::parse_size(w).max(1)).unwrap_or(1)
}

impl Server {
    /// A peer's (route's, leaf node's, gateway's) interest in `subject`
    /// and `queue` of `account`, with `weight`: a subscription of its
    /// connection kept under `key`, or the new weight of the one there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn peer_subscribe(
        &mut self,
        id: ConnId,
        account: AccountId,
        key: &[u8],
        subject: &[u8],
        queue: Option<&[u8]>,
        weight: u32,
    ) {
        if let Some(&h) = self.conns[id.0].subs.get(key) {
            let old = std::mem::replace(&mut self.subs[h.0 as usize].weight, weight);
            self.interest_changed(
                account,
                subject,
                queue,
                id,
                i64::from(weight) - i64::from(old),
            );
            return;
        }
        let slot = self.subs.vacant_key();
        let handle = SubId(u32::try_from(slot).expect("fewer than 2^32 subscriptions"));
        match self.accounts[account.0 as usize]
            .sublist
            .insert(subject, queue, handle)
        {
            Err(InsertError::InvalidSubject) => return,
            Ok(()) => {}
        }
        self.subs.insert(super::Subscription {
            conn: id,
            account,
            weight,
            subject: subject.into(),
            queue: queue.map(Into::into),
            sid: key.into(),
            max: 0,
            delivered: 0,
            shadow: None,
        });
        self.conns[id.0].subs.insert(key.into(), handle);
        self.interest_changed(account, subject, queue, id, i64::from(weight));
    }

    /// A peer's interest kept under `key` is gone.
    pub(crate) fn peer_unsubscribe(&mut self, id: ConnId, key: &[u8]) {
        if let Some(h) = self.conns[id.0].subs.remove(key) {
            self.remove_sub(h);
        }
    }

    /// A message a peer forwards, counted and delivered in `account` (only
    /// to the queue groups the peer named).
    pub(crate) fn peer_publish(&mut self, id: ConnId, account: AccountId, r: &Routed<'_>) {
        let len = r.msg.payload.len() as u64;
        let c = &mut self.conns[id.0];
        c.counters.in_msgs += 1;
        c.counters.in_bytes += len;
        self.stats.counters.in_msgs += 1;
        self.stats.counters.in_bytes += len;
        let stats = &mut self.accounts[account.0 as usize].stats;
        stats.received_msgs += 1;
        stats.received_bytes += len;
        self.routed_queues.clear();
        self.routed_queues.extend_from_slice(r.queues);
        self.routed_origin.clear();
        self.routed_origin.extend_from_slice(r.origin);
        self.route(id, account, &r.msg, &mut super::accounts::Route::default());
        self.routed_queues.clear();
        self.routed_origin.clear();
    }

    /// `PING`, `PONG` or `+OK` from a peer: the same on every kind of
    /// server connection.
    pub(crate) fn peer_keepalive(
        &mut self,
        id: ConnId,
        op: &crate::proto::Op<'_>,
    ) -> ControlFlow<()> {
        match op {
            crate::proto::Op::Ping => {
                self.send(id, crate::proto::encode::PONG);
                self.conns[id.0].last_ping_in = Some(self.now.instant);
            }
            crate::proto::Op::Pong => self.conns[id.0].pings_out = 0,
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// A connection this server dialed is up, to `peer`: true to go on
    /// with its handshake, false when it was closed while dialing (the
    /// driver is told to close the socket it now has).
    /// Asks the driver to dial `addr` for a new connection of `kind`,
    /// `setup` giving it its state first (its peer address unknown until
    /// the dial connects); the connection's id.
    pub(crate) fn dial_peer(
        &mut self,
        kind: ConnKind,
        addr: String,
        setup: impl FnOnce(&mut super::conn::Conn),
    ) -> ConnId {
        self.next_cid += 1;
        let unspecified = core::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let mut conn = super::conn::Conn::new(kind, self.next_cid, unspecified, self.now.instant);
        setup(&mut conn);
        let id = ConnId(self.conns.insert(conn));
        self.actions
            .push_back(super::Action::Dial { conn: id, addr });
        id
    }

    pub(crate) fn peer_dialed(&mut self, id: ConnId, peer: core::net::SocketAddr) -> bool {
        let now = self.now.instant;
        let c = &mut self.conns[id.0];
        c.peer = peer;
        c.start = now;
        c.last_activity = now;
        if c.closing {
            self.actions.push_back(super::Action::Close {
                conn: id,
                reason: super::CloseReason::ServerShutdown,
                flush: false,
            });
            return false;
        }
        true
    }

    /// Whether this server shares interest with other servers (it has a
    /// cluster or leaf nodes).
    /// Every peer connection past its handshake, with the interest each
    /// end announced on it.
    pub fn peer_links(&self) -> Vec<PeerLink> {
        let mut out = Vec::new();
        let for_routes = self.interest_for_routes();
        // What `permissions` lets through: interest told (import) and
        // taken (export).
        let for_routes: BTreeSet<String> = for_routes
            .into_iter()
            .filter(|a| self.route_imports(a.split(' ').nth(1).unwrap_or_default().as_bytes()))
            .collect();
        let route_perms = self.cluster.as_ref().and_then(|c| c.perms.as_ref());
        for (id, peer) in self.routes() {
            out.push(PeerLink {
                kind: PeerKind::Route,
                peer: peer.server_id.clone(),
                announces: for_routes.clone(),
                heard: self.heard_on(id),
                account: String::new(),
                keeps_only: route_perms.and_then(|p| p.exports.allow.clone()),
                refuses: route_perms.map_or_else(Vec::new, |p| p.exports.deny.clone()),
            });
        }
        for id in self.leafs() {
            let c = &self.conns[id.0];
            let Some(l) = c.leaf.as_ref() else {
                continue;
            };
            let acc = &self.accounts[c.account.0 as usize];
            let same_account = self.leafs_of(c.account);
            let mut announces = BTreeSet::new();
            if let Some(lds) = self.leafnodes.as_ref().and_then(|n| n.lds.get(&acc.name)) {
                announces.insert(format!("{} {lds}", acc.name));
            }
            for (key, count) in &acc.interest {
                let subject = split(key).0;
                if l.denies_import(subject) {
                    continue;
                }
                let own = self.cluster_own(&same_account, id, key);
                let weight = count.for_leaf(l.solicited, own);
                if weight > 0 {
                    announces.insert(show(&acc.name, key, weight));
                }
            }
            out.push(PeerLink {
                kind: PeerKind::Leaf,
                peer: l.server_id.clone(),
                announces,
                heard: self.heard_on(id),
                account: acc.name.clone(),
                keeps_only: l.perms.as_ref().and_then(|p| p.exports.allow.clone()),
                refuses: l
                    .perms
                    .as_ref()
                    .map_or_else(Vec::new, |p| p.exports.deny.clone()),
            });
        }
        let (outbound, inbound) = self.gateway_conns();
        let for_gateways = self.announced(|c| c.for_gateways());
        for (kind, id) in outbound
            .into_iter()
            .map(|(_, id)| (PeerKind::GatewayOut, id))
            .chain(inbound.into_iter().map(|id| (PeerKind::GatewayIn, id)))
        {
            let Some(g) = self.conns.get(id.0).and_then(|c| c.gateway.as_ref()) else {
                continue;
            };
            out.push(PeerLink {
                kind,
                peer: g.server_id.clone(),
                announces: match kind {
                    PeerKind::GatewayIn => for_gateways.clone(),
                    _ => BTreeSet::new(),
                },
                heard: self.heard_on(id),
                account: String::new(),
                keeps_only: None,
                refuses: Vec::new(),
            });
        }
        out
    }

    /// Every account's interest whose `weight` (of its count) is not
    /// zero, as [`PeerLink::announces`] shows it.
    pub(crate) fn announced(&self, weight: impl Fn(&Count) -> u32) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for acc in &self.accounts {
            for (key, c) in &acc.interest {
                let w = weight(c);
                if w > 0 {
                    out.insert(show(&acc.name, key, w));
                }
            }
        }
        out
    }

    /// What peer connection `id` told this server of its interest, as
    /// [`PeerLink::heard`] shows it.
    pub(crate) fn heard_on(&self, id: ConnId) -> BTreeSet<String> {
        self.conns[id.0]
            .subs
            .values()
            .map(|&h| {
                let s = &self.subs[h.0 as usize];
                let account = &self.accounts[s.account.0 as usize].name;
                match &s.queue {
                    Some(q) => show(account, &key(&s.subject, Some(q)), s.weight),
                    None => show(account, &s.subject, 1),
                }
            })
            .collect()
    }

    /// What routes hear of `c` (test-only: a hub's interest too).
    pub(crate) fn route_weight(&self, c: &Count) -> u32 {
        if self.planted(crate::config::PlantedBug::HubInterestToRoutes) {
            c.all.saturating_sub(c.routes + c.gateways)
        } else {
            c.for_routes()
        }
    }

    pub(crate) fn shares_interest(&self) -> bool {
        self.cluster.is_some() || self.leafnodes.is_some() || self.gateways.is_some()
    }

    /// A subscription of connection `from` came (`delta` > 0, its weight)
    /// or went (< 0), or a peer's queue weight changed by `delta`: tell the
    /// routes and leaf nodes whose view changes.
    pub(crate) fn interest_changed(
        &mut self,
        account: AccountId,
        subject: &[u8],
        queue: Option<&[u8]>,
        from: ConnId,
        delta: i64,
    ) {
        if !self.shares_interest() || delta == 0 {
            return;
        }
        let from_kind = self.conns.get(from.0).map(|c| c.kind);
        let from_spoke = self
            .conns
            .get(from.0)
            .and_then(|c| c.leaf.as_ref())
            .is_some_and(|l| l.solicited);
        let key = key(subject, queue);
        let acc = &mut self.accounts[account.0 as usize];
        let before = acc.interest.get(&key).copied().unwrap_or_default();
        let mut after = before;
        after.all = add(after.all, delta);
        match from_kind {
            Some(ConnKind::Route) => after.routes = add(after.routes, delta),
            Some(ConnKind::Gateway) => after.gateways = add(after.gateways, delta),
            Some(ConnKind::Leaf) if from_spoke => after.spokes = add(after.spokes, delta),
            _ => {}
        }
        if after.all == 0 {
            acc.interest.remove(&key);
        } else {
            acc.interest.insert(key.clone(), after);
        }
        let routes_heard = (self.route_weight(&before), self.route_weight(&after));
        if let Some(weight) = change(queue.is_some(), routes_heard.0, routes_heard.1) {
            self.tell_routes(account, subject, queue, weight);
        }
        let to_gateways = change(queue.is_some(), before.for_gateways(), after.for_gateways());
        if let Some(weight) = to_gateways {
            self.tell_gateways(account, subject, queue, weight);
        }
        self.tell_leafs(account, subject, queue, &key, (before, after), from, delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_subjects_change_at_zero_and_queues_on_every_weight() {
        assert_eq!(change(false, 0, 1), Some(1));
        assert_eq!(change(false, 1, 2), None);
        assert_eq!(change(false, 2, 0), Some(0));
        assert_eq!(change(false, 0, 0), None);
        assert_eq!(change(true, 0, 1), Some(1));
        assert_eq!(change(true, 1, 3), Some(3));
        assert_eq!(change(true, 3, 3), None);
        assert_eq!(change(true, 3, 0), Some(0));
        assert_eq!(
            split(&key(b"a.b", Some(b"q"))),
            (&b"a.b"[..], Some(&b"q"[..]))
        );
        assert_eq!(split(&key(b"a.b", None)), (&b"a.b"[..], None));
    }
}
