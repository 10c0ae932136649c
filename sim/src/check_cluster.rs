//! The cluster world's own checkers: how the servers must be joined and
//! what they must agree on, the one-hop rule and the absence of loops,
//! read from what the world saw of the servers (the clients' invariants
//! of `check` hold across every server beside them: a client's history
//! does not say which server it talked to).

use std::collections::BTreeMap;

use natrix_core::server::{Listener, PeerKind, PeerLink};

use crate::cluster::Topology;
use crate::history::{ClientId, MsgId};

/// The cluster world's invariants, by name (see docs/simulation.md).
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "joined",
        "after faults heal, every server has a route to every other server of its cluster (by its current server id) and to nothing else, a leaf node one connection per account to a server of its hub's cluster and a hub one to each leaf node connection that leads to it, and a server with a gateway one outbound connection to a server of the other cluster",
    ),
    (
        "interest-converges",
        "after faults heal and traffic quiets, what each server was told of a peer's interest on a route, leaf node or gateway connection is exactly the interest that peer announces on it",
    ),
    (
        "one-hop",
        "a server forwards over routes only what did not come to it over a route, and over gateways only what came from its own clients or leaf nodes",
    ),
    (
        "no-loop",
        "a message reaches each server at most once over routes, leaf nodes and gateways, and never comes back to the server it was published on",
    ),
    (
        "leaf-deny",
        "no message crosses a leaf node connection whose deny lists keep its subject on one side (the leaf node's deny_exports towards the hub, its deny_imports towards the leaf node)",
    ),
    (
        "route-deny",
        "no message goes on a route from a server whose route permissions (cluster { permissions { export } }) deny its subject",
    ),
];

/// What the cluster world saw of its servers, for the checkers.
#[derive(Debug, Default)]
pub struct ClusterFacts {
    pub servers: usize,
    pub topology: Topology,
    /// The server each client connection was made to, by (client, epoch).
    pub conn_server: BTreeMap<(ClientId, u32), usize>,
    /// Connections between servers that ended, and when: (at, server,
    /// server).
    pub route_drops: Vec<(u64, usize, usize)>,
    /// Every copy of a simulated message that arrived from another
    /// server: (message, from, to, the kind of link).
    pub routed: Vec<(MsgId, usize, usize, Listener)>,
    /// Plain interest arriving at a server from another (`RS+`/`LS+`:
    /// true, `RS-`/`LS-`: false), and when, by (from server, to server,
    /// `<account> <subject>`).
    pub interest_events: BTreeMap<(usize, usize, String), Vec<(u64, bool)>>,
    /// Each server at the end of the run.
    pub end: Vec<ServerView>,
    /// The leaf nodes' deny lists, if the seed drew them.
    pub leaf_deny: Option<crate::cluster::LeafDenyPlan>,
    /// One server's route permissions, if the seed drew them.
    pub route_deny: Option<crate::cluster::RouteDenyPlan>,
    /// Connections between a leaf node and its hub: one per account.
    pub leaf_accounts: usize,
}

/// One server's view of its peers, taken at the end of the run.
#[derive(Debug, Clone, Default)]
pub struct ServerView {
    pub server_id: String,
    /// Its connections to other servers (`Server::peer_links`).
    pub links: Vec<PeerLink>,
}

impl ClusterFacts {
    /// Whether a message published at `from_ns` by client connection
    /// `publisher` may arrive at `to_ns` at client connection `sub` after
    /// later ones: only between clusters joined by gateways, where a
    /// server's outbound gateway connection to the other cluster may
    /// drop in between and be made again to another of its servers, so
    /// that later messages take a shorter way. nats-server behaves the
    /// same.
    pub fn reorder_explained(
        &self,
        publisher: (ClientId, u32),
        sub: (ClientId, u32),
        from_ns: u64,
        to_ns: u64,
    ) -> bool {
        let (Some(&sp), Some(&ss)) = (self.conn_server.get(&publisher), self.conn_server.get(&sub))
        else {
            return false;
        };
        let cluster = |s: usize| self.topology.cluster_of(s, self.servers).map(|c| c.0);
        let other_way = match self.topology {
            Topology::Gateways { .. } => cluster(sp) != cluster(ss),
            // A leaf node that lost its hub fails over to another server
            // of the hub's cluster.
            Topology::Leaf { hubs, .. } => hubs > 1 && sp != ss,
            Topology::Mesh => false,
        };
        other_way
            && self
                .route_drops
                .iter()
                .any(|&(at, ..)| at >= from_ns && at <= to_ns)
    }

    /// Whether a plain subscription (to `pattern`, in `account`) of client
    /// connection `sub` may have missed messages of client connection
    /// `publisher` published between `from_ns` (the publish of the last
    /// one it got before the gap) and `to_ns` (the arrival of the first
    /// one after it). Within one server it never does. Across servers the
    /// publisher's server forwards a message to the subscription's server
    /// only while it knows of interest there; a message forwarded for
    /// other interest (a queue member chosen there, another subscription)
    /// reaches every matching subscription there too. So a gap is
    /// explained unless the publisher's server knew of the subject's
    /// interest (its last `RS+`/`RS-` from that server, or route drop, at
    /// `from_ns` was an `RS+`) and kept it (no `RS-` nor route drop until
    /// `to_ns`). Interest travels as messages do: nats-server behaves the
    /// same.
    ///
    /// Across more than one hop (a leaf node, a gateway, and the routes
    /// beyond them) a gap is explained by any connection between servers
    /// ending within it, or by the subject's interest still travelling
    /// (reaching any server from another) at or after `from_ns`: the
    /// messages before may have come for other interest on the way.
    pub fn gap_explained(
        &self,
        publisher: (ClientId, u32),
        sub: (ClientId, u32),
        account: &str,
        pattern: &str,
        from_ns: u64,
        to_ns: u64,
    ) -> bool {
        let (Some(&sp), Some(&ss)) = (self.conn_server.get(&publisher), self.conn_server.get(&sub))
        else {
            return false;
        };
        if sp == ss {
            return false;
        }
        let key = format!("{account} {pattern}");
        let cluster = |s: usize| self.topology.cluster_of(s, self.servers).map(|c| c.0);
        if cluster(sp).is_none() || cluster(sp) != cluster(ss) {
            let dropped = self
                .route_drops
                .iter()
                .any(|&(at, ..)| at >= from_ns && at <= to_ns);
            let travelling = self
                .interest_events
                .iter()
                .filter(|((_, _, k), _)| *k == key)
                .flat_map(|(_, events)| events)
                .any(|&(at, _)| at >= from_ns);
            return dropped || travelling;
        }
        let drops = self
            .route_drops
            .iter()
            .filter(|&&(_, x, y)| (x, y) == (sp, ss) || (x, y) == (ss, sp))
            .map(|&(at, ..)| (at, false));
        let key = (ss, sp, key);
        let told = self
            .interest_events
            .get(&key)
            .into_iter()
            .flatten()
            .copied();
        let mut events: Vec<(u64, bool)> = drops.chain(told).collect();
        events.sort_by_key(|&(at, _)| at);
        let known = events
            .iter()
            .rfind(|&&(at, _)| at <= from_ns)
            .is_some_and(|&(_, plus)| plus);
        let lost = events
            .iter()
            .any(|&(at, plus)| !plus && at > from_ns && at <= to_ns);
        !known || lost
    }
}

/// Whether the servers `views` are joined as `topology` says and their
/// views of each other's interest all agree: the condition the final
/// round waits for, and what the end of the run must show. Returns what
/// is wrong, by invariant.
pub fn disagreements(
    views: &[ServerView],
    topology: Topology,
    leaf_accounts: usize,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let n = views.len();
    let ids: Vec<&str> = views.iter().map(|v| v.server_id.as_str()).collect();
    let peers = |i: usize, kind: PeerKind| -> Vec<&str> {
        views[i]
            .links
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.peer.as_str())
            .collect()
    };
    let named = |set: &[usize]| -> Vec<&str> { set.iter().map(|&j| ids[j]).collect() };
    for i in 0..n {
        let members = topology.cluster_of(i, n).map(|c| c.1).unwrap_or_default();
        let routes: Vec<usize> = members.iter().copied().filter(|&j| j != i).collect();
        // A leaf node: one connection per account, each to a server of
        // its hub's cluster (the one configured, or another its hub's
        // INFO named, after a failover). A hub: the leaf nodes'
        // connections that lead to it.
        let leafs: Vec<usize> = match topology.hub_of(i) {
            Some(hub) => {
                let hubs = topology.cluster_of(hub, n).map(|c| c.1).unwrap_or_default();
                let links: Vec<&PeerLink> = views[i]
                    .links
                    .iter()
                    .filter(|l| l.kind == PeerKind::Leaf)
                    .collect();
                let mut accounts: Vec<&str> = links.iter().map(|l| l.account.as_str()).collect();
                accounts.sort_unstable();
                accounts.dedup();
                let fine = accounts.len() == links.len()
                    && links.len() == leaf_accounts.max(1)
                    && links.iter().all(|l| hubs.iter().any(|&h| ids[h] == l.peer));
                if fine {
                    links
                        .iter()
                        .filter_map(|l| ids.iter().position(|id| *id == l.peer))
                        .collect()
                } else {
                    vec![hub; leaf_accounts.max(1)]
                }
            }
            None => (0..n)
                .filter(|&j| topology.hub_of(j).is_some())
                .flat_map(|j| {
                    let to_i = views[j]
                        .links
                        .iter()
                        .filter(|l| l.kind == PeerKind::Leaf && l.peer == ids[i])
                        .count();
                    std::iter::repeat_n(j, to_i)
                })
                .collect(),
        };
        for (kind, want) in [(PeerKind::Route, routes), (PeerKind::Leaf, leafs)] {
            let mut have = peers(i, kind);
            have.sort_unstable();
            let mut want = named(&want);
            want.sort_unstable();
            if have != want {
                out.push((
                    "joined",
                    format!("S{i}'s {kind:?} connections lead to {have:?}, not to {want:?}"),
                ));
            }
        }
        if let Topology::Gateways { split } = topology {
            let others: Vec<&str> = named(&if i < split {
                (split..n).collect::<Vec<_>>()
            } else {
                (0..split).collect()
            });
            let have = peers(i, PeerKind::GatewayOut);
            if have.len() != 1 || !others.contains(&have[0]) {
                out.push((
                    "joined",
                    format!("S{i}'s outbound gateways lead to {have:?}, not to one of {others:?}"),
                ));
            }
        }
        // Each link's view of the peer's interest, against what the peer
        // announces on its end of it.
        for l in &views[i].links {
            let Some(j) = ids.iter().position(|id| *id == l.peer) else {
                continue;
            };
            let back = match l.kind {
                PeerKind::GatewayOut => PeerKind::GatewayIn,
                PeerKind::GatewayIn => PeerKind::GatewayOut,
                kind => kind,
            };
            let ends: Vec<&PeerLink> = views[j]
                .links
                .iter()
                .filter(|m| m.kind == back && m.peer == ids[i] && m.account == l.account)
                .collect();
            let Some(end) = ends.first() else {
                // Registered on one end only: the handshake is still on
                // its way (or the other end closed it).
                out.push((
                    "joined",
                    format!("S{i}'s {:?} connection to S{j} has no end there", l.kind),
                ));
                continue;
            };
            // What the other end announced and this one keeps (a leaf
            // node does not keep what its deny_exports refuse).
            let kept = |m: &PeerLink| -> std::collections::BTreeSet<String> {
                m.announces.iter().filter(|a| l.keeps(a)).cloned().collect()
            };
            if ends.iter().all(|m| kept(m) != l.heard) {
                let told = kept(end);
                let extra: Vec<&String> = l.heard.difference(&told).collect();
                let missing: Vec<&String> = told.difference(&l.heard).collect();
                out.push((
                    "interest-converges",
                    format!(
                        "S{i}'s view of S{j}'s interest ({:?}) differs: {extra:?} it no longer has, {missing:?} it was not told",
                        l.kind
                    ),
                ));
            }
        }
    }
    out
}

/// Checks the cluster's own invariants.
pub fn check(
    facts: &ClusterFacts,
    pubs: &BTreeMap<MsgId, (ClientId, u32)>,
    subjects: &BTreeMap<MsgId, &str>,
    bad: &mut impl FnMut(&'static str, String),
) {
    if let Some(deny) = &facts.leaf_deny {
        for &(m, from, to, kind) in &facts.routed {
            let Some(subject) = subjects.get(&m) else {
                continue;
            };
            if kind == Listener::Leaf && deny.denies(facts.topology, from, to, subject) {
                bad(
                    "leaf-deny",
                    format!(
                        "message {m} on {subject} crossed from S{from} to S{to}, whose leaf node connection denies it ({deny:?})"
                    ),
                );
            }
        }
    }
    if let Some(deny) = &facts.route_deny {
        for &(m, from, to, kind) in &facts.routed {
            let Some(subject) = subjects.get(&m) else {
                continue;
            };
            if kind == Listener::Route && deny.forbids(from, subject) {
                bad(
                    "route-deny",
                    format!(
                        "message {m} on {subject} went on a route from S{from} to S{to}, whose route permissions deny it ({deny:?})"
                    ),
                );
            }
        }
    }
    // How each server first got each message from another.
    let mut came: BTreeMap<(MsgId, usize), Listener> = BTreeMap::new();
    for &(m, from, to, kind) in &facts.routed {
        let origin = pubs.get(&m).and_then(|k| facts.conn_server.get(k));
        if origin == Some(&to) {
            bad(
                "no-loop",
                format!("message {m}, published on S{to}, came back to it from S{from} ({kind:?})"),
            );
        }
        if came.insert((m, to), kind).is_some() {
            bad(
                "no-loop",
                format!("message {m} reached S{to} twice (again from S{from}, {kind:?})"),
            );
        }
    }
    for &(m, from, to, kind) in &facts.routed {
        let got = came.get(&(m, from)).copied();
        let broken = match kind {
            Listener::Route => got == Some(Listener::Route),
            Listener::Gateway => matches!(got, Some(Listener::Route | Listener::Gateway)),
            _ => false,
        };
        if broken {
            bad(
                "one-hop",
                format!(
                    "message {m} came to S{from} over a {:?} connection and went on to S{to} over a {kind:?} one",
                    got.expect("checked")
                ),
            );
        }
    }
    // The final round waits for the servers to come together; the end of
    // the run (quiet since) must still show it, or says which part did not.
    for (invariant, detail) in disagreements(&facts.end, facts.topology, facts.leaf_accounts) {
        bad(invariant, detail);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|a| a.to_string()).collect()
    }

    fn link(kind: PeerKind, peer: &str, announces: &[&str], heard: &[&str]) -> PeerLink {
        PeerLink {
            kind,
            peer: peer.to_string(),
            announces: set(announces),
            heard: set(heard),
            account: "$G".into(),
            keeps_only: None,
            refuses: Vec::new(),
        }
    }

    fn view(id: &str, links: Vec<PeerLink>) -> ServerView {
        ServerView {
            server_id: id.to_string(),
            links,
        }
    }

    #[test]
    fn a_missing_route_or_a_stale_view_is_named() {
        use PeerKind::Route;
        let a = view("A", vec![link(Route, "B", &["$G x"], &["$G y q=2"])]);
        let mut b = view("B", vec![link(Route, "A", &["$G y q=2"], &["$G x"])]);
        assert!(disagreements(&[a.clone(), b.clone()], Topology::Mesh, 1).is_empty());
        // B still believes A wants x.z, which A no longer announces.
        b.links[0].heard.insert("$G x.z".into());
        let found = disagreements(&[a.clone(), b.clone()], Topology::Mesh, 1);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "interest-converges");
        // A third server nobody routes to.
        let c = view("C", Vec::new());
        let found = disagreements(&[a, b, c], Topology::Mesh, 1);
        assert_eq!(
            found.iter().filter(|(i, _)| *i == "joined").count(),
            3,
            "{found:?}"
        );
    }

    #[test]
    fn leaf_nodes_and_gateways_are_checked_by_their_ends() {
        use PeerKind::{GatewayIn, GatewayOut, Leaf};
        // H is the hub of L; L's view of H's interest is stale.
        let h = view("H", vec![link(Leaf, "L", &["$G a"], &["$G b"])]);
        let l = view("L", vec![link(Leaf, "H", &["$G b"], &["$G a", "$G c"])]);
        let leaf = Topology::Leaf {
            hubs: 1,
            edge: false,
        };
        let found = disagreements(&[h.clone(), l], leaf, 1);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "interest-converges");
        // A leaf node without its connection.
        let found = disagreements(&[h, view("L", Vec::new())], leaf, 1);
        assert!(
            found
                .iter()
                .any(|(i, d)| *i == "joined" && d.contains("S1"))
        );
        // Two clusters of one server: each needs its outbound gateway,
        // and hears on it what the other announces on its inbound one.
        let a = view(
            "A",
            vec![
                link(GatewayOut, "B", &[], &["$G y"]),
                link(GatewayIn, "B", &["$G x"], &[]),
            ],
        );
        let b = view(
            "B",
            vec![
                link(GatewayOut, "A", &[], &["$G x"]),
                link(GatewayIn, "A", &["$G y"], &[]),
            ],
        );
        let gateways = Topology::Gateways { split: 1 };
        assert!(disagreements(&[a.clone(), b.clone()], gateways, 1).is_empty());
        let lonely = view("B", vec![link(GatewayIn, "A", &["$G y"], &[])]);
        let found = disagreements(&[a, lonely], gateways, 1);
        assert!(
            found
                .iter()
                .any(|(i, d)| *i == "joined" && d.contains("S1"))
        );
    }

    #[test]
    fn loops_and_second_hops_are_named() {
        let mut f = ClusterFacts {
            servers: 3,
            ..ClusterFacts::default()
        };
        f.conn_server.insert((0, 1), 0);
        let pubs: BTreeMap<MsgId, (ClientId, u32)> = [(7, (0, 1))].into();
        let subjects: BTreeMap<MsgId, &str> = [(7, "a.1")].into();
        let found = |f: &ClusterFacts| {
            let mut out = Vec::new();
            check(f, &pubs, &subjects, &mut |i, d| out.push((i, d)));
            out
        };
        // S0 to S1 by leaf node, S1 on by route: fine.
        f.routed = vec![(7, 0, 1, Listener::Leaf), (7, 1, 2, Listener::Route)];
        assert!(found(&f).is_empty());
        // S2 on by route again, and back to S0.
        f.routed.push((7, 2, 0, Listener::Route));
        let out = found(&f);
        assert!(out.iter().any(|(i, _)| *i == "one-hop"), "{out:?}");
        assert!(out.iter().any(|(i, _)| *i == "no-loop"), "{out:?}");
        // A gateway after a route.
        f.routed = vec![(7, 0, 1, Listener::Route), (7, 1, 2, Listener::Gateway)];
        assert!(found(&f).iter().any(|(i, _)| *i == "one-hop"));
    }

    #[test]
    fn a_message_across_a_leaf_nodes_deny_list_is_named() {
        // S0 the hub, S1 its leaf node.
        let mut f = ClusterFacts {
            servers: 2,
            topology: Topology::Leaf {
                hubs: 1,
                edge: false,
            },
            leaf_deny: Some(crate::cluster::LeafDenyPlan {
                imports: "a.>".into(),
                exports: "b.>".into(),
            }),
            ..ClusterFacts::default()
        };
        let pubs: BTreeMap<MsgId, (ClientId, u32)> = [(1, (0, 1)), (2, (1, 1))].into();
        let found = |f: &ClusterFacts, subjects: &BTreeMap<MsgId, &str>| {
            let mut out = Vec::new();
            check(f, &pubs, subjects, &mut |i, d| out.push((i, d)));
            out
        };
        f.routed = vec![(1, 0, 1, Listener::Leaf), (2, 1, 0, Listener::Leaf)];
        // Hub to leaf node on c, leaf node to hub on a.1: allowed.
        assert!(found(&f, &[(1, "c"), (2, "a.1")].into()).is_empty());
        // Hub to leaf node on a.1 (an import it denies), and leaf node to
        // hub on b.x (an export it denies).
        let out = found(&f, &[(1, "a.1"), (2, "b.x")].into());
        assert_eq!(
            out.iter().filter(|(i, _)| *i == "leaf-deny").count(),
            2,
            "{out:?}"
        );
    }

    #[test]
    fn a_message_a_servers_route_permissions_deny_is_named() {
        let mut f = ClusterFacts {
            servers: 2,
            topology: Topology::Mesh,
            route_deny: Some(crate::cluster::RouteDenyPlan {
                server: 0,
                imports: "a.>".into(),
                exports: "b.>".into(),
            }),
            ..ClusterFacts::default()
        };
        f.routed = vec![(1, 0, 1, Listener::Route), (2, 1, 0, Listener::Route)];
        let pubs: BTreeMap<MsgId, (ClientId, u32)> = [(1, (0, 1)), (2, (1, 1))].into();
        let found = |subjects: &BTreeMap<MsgId, &str>| {
            let mut out = Vec::new();
            check(&f, &pubs, subjects, &mut |i, d| out.push((i, d)));
            out
        };
        // From S0 on c; to S0 on a.1 (its import deny only keeps its
        // interest back: a wider subscription still draws it).
        assert!(found(&[(1, "c"), (2, "a.1")].into()).is_empty());
        // From S0 on b.x, its export deny; the same from S1 is fine.
        let out = found(&[(1, "b.x"), (2, "b.x")].into());
        assert_eq!(
            out.iter().filter(|(i, _)| *i == "route-deny").count(),
            1,
            "{out:?}"
        );
    }

    #[test]
    fn only_gateways_reroute_and_only_after_a_drop() {
        let mut f = ClusterFacts {
            servers: 3,
            topology: Topology::Gateways { split: 1 },
            ..ClusterFacts::default()
        };
        f.conn_server.insert((0, 1), 0);
        f.conn_server.insert((1, 1), 2);
        f.conn_server.insert((2, 1), 1);
        assert!(!f.reorder_explained((0, 1), (1, 1), 10, 20));
        f.route_drops.push((15, 0, 1));
        assert!(f.reorder_explained((0, 1), (1, 1), 10, 20));
        assert!(!f.reorder_explained((0, 1), (1, 1), 16, 20));
        // Within one cluster there is one way.
        assert!(!f.reorder_explained((2, 1), (1, 1), 10, 20));
        f.topology = Topology::Mesh;
        assert!(!f.reorder_explained((0, 1), (1, 1), 10, 20));
    }

    #[test]
    fn a_gap_across_servers_needs_a_reason() {
        let mut f = ClusterFacts {
            servers: 2,
            ..ClusterFacts::default()
        };
        f.conn_server.insert((0, 1), 0);
        f.conn_server.insert((1, 1), 1);
        f.conn_server.insert((2, 1), 1);
        // Server 0 never heard of the interest: anything goes.
        assert!(f.gap_explained((0, 1), (1, 1), "$G", "a.*", 10, 20));
        f.interest_events
            .insert((1, 0, "$G a.*".into()), vec![(5, true)]);
        assert!(!f.gap_explained((0, 1), (1, 1), "$G", "a.*", 10, 20));
        assert!(f.gap_explained((0, 1), (1, 1), "$G", "b.*", 10, 20));
        assert!(f.gap_explained((0, 1), (1, 1), "A", "a.*", 10, 20));
        // A route drop in between loses what was on it, and the interest.
        f.route_drops.push((15, 1, 0));
        assert!(f.gap_explained((0, 1), (1, 1), "$G", "a.*", 10, 20));
        assert!(f.gap_explained((0, 1), (1, 1), "$G", "a.*", 16, 20));
        f.interest_events
            .get_mut(&(1, 0, "$G a.*".into()))
            .unwrap()
            .push((17, true));
        assert!(!f.gap_explained((0, 1), (1, 1), "$G", "a.*", 18, 20));
        // Same server: never.
        assert!(!f.gap_explained((1, 1), (2, 1), "$G", "x", 10, 20));
        // Through a leaf node: a connection ending within the gap, or the
        // interest still travelling, explains it; nothing else does.
        let mut f = ClusterFacts {
            servers: 2,
            topology: Topology::Leaf {
                hubs: 1,
                edge: false,
            },
            ..ClusterFacts::default()
        };
        f.conn_server.insert((0, 1), 0);
        f.conn_server.insert((1, 1), 1);
        f.interest_events
            .insert((1, 0, "$G a.*".into()), vec![(5, true)]);
        assert!(!f.gap_explained((0, 1), (1, 1), "$G", "a.*", 10, 20));
        f.interest_events
            .insert((0, 1, "$G a.*".into()), vec![(12, true)]);
        assert!(f.gap_explained((0, 1), (1, 1), "$G", "a.*", 10, 20));
        assert!(!f.gap_explained((0, 1), (1, 1), "$G", "a.*", 13, 20));
        f.route_drops.push((15, 0, 1));
        assert!(f.gap_explained((0, 1), (1, 1), "$G", "a.*", 13, 20));
    }
}
