//! The cluster world's own checkers: what the servers of a cluster must
//! agree on, and the one-hop rule, read from what the world saw of the
//! servers (the clients' invariants of `check` hold cluster-wide beside
//! them: a client's history does not say which server it talked to).

use std::collections::{BTreeMap, BTreeSet};

use crate::history::{ClientId, MsgId};

/// The cluster world's invariants, by name (see docs/simulation.md).
pub const INVARIANTS: &[(&str, &str)] = &[
    (
        "full-mesh",
        "after faults heal, every server has a route to every other server of the cluster (by its current server id), and to nothing else",
    ),
    (
        "interest-converges",
        "after faults heal and traffic quiets, what each server was told of a peer's interest (RS+/RS-) is exactly the interest that peer announces",
    ),
    (
        "one-hop",
        "a message crosses one route at most: only the server its publisher is connected to forwards it, and to each other server once",
    ),
];

/// What the cluster world saw of its servers, for the checkers.
#[derive(Debug, Default)]
pub struct ClusterFacts {
    pub servers: usize,
    /// The server each client connection was made to, by (client, epoch).
    pub conn_server: BTreeMap<(ClientId, u32), usize>,
    /// Route connections that ended, and when: (at, server, server).
    pub route_drops: Vec<(u64, usize, usize)>,
    /// Every routed copy of a simulated message that arrived: (message,
    /// from, to).
    pub routed: Vec<(MsgId, usize, usize)>,
    /// Plain interest arriving at a server (`RS+`: true, `RS-`: false),
    /// and when, by (from server, to server, `<account> <subject>`).
    pub interest_events: BTreeMap<(usize, usize, String), Vec<(u64, bool)>>,
    /// Each server at the end of the run.
    pub end: Vec<ServerView>,
}

/// One server's view of the cluster, taken at the end of the run.
#[derive(Debug, Clone, Default)]
pub struct ServerView {
    pub server_id: String,
    /// The server ids its registered routes lead to.
    pub peers: Vec<String>,
    /// What it announces to its routes (`Server::interest_for_routes`).
    pub announces: BTreeSet<String>,
    /// What each peer told it (`Server::interest_of_routes`).
    pub heard: BTreeMap<String, BTreeSet<String>>,
}

impl ClusterFacts {
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
        let drops = self
            .route_drops
            .iter()
            .filter(|&&(_, x, y)| (x, y) == (sp, ss) || (x, y) == (ss, sp))
            .map(|&(at, ..)| (at, false));
        let key = (ss, sp, format!("{account} {pattern}"));
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

/// Whether the servers `views` form a full mesh whose interest views all
/// agree: the condition the final round waits for, and what the end of
/// the run must show. Returns what is wrong, by invariant.
pub fn disagreements(views: &[ServerView]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let ids: Vec<&str> = views.iter().map(|v| v.server_id.as_str()).collect();
    for (i, v) in views.iter().enumerate() {
        let want: BTreeSet<&str> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| *id)
            .collect();
        let have: BTreeSet<&str> = v.peers.iter().map(String::as_str).collect();
        if have != want || v.peers.len() != want.len() {
            out.push((
                "full-mesh",
                format!("S{i} routes to {have:?}, not to every other server {want:?}"),
            ));
        }
        for (peer, heard) in &v.heard {
            let Some(j) = ids.iter().position(|id| id == peer) else {
                continue;
            };
            if *heard != views[j].announces {
                let extra: Vec<&String> = heard.difference(&views[j].announces).collect();
                let missing: Vec<&String> = views[j].announces.difference(heard).collect();
                out.push((
                    "interest-converges",
                    format!(
                        "S{i}'s view of S{j}'s interest differs: {extra:?} it no longer has, {missing:?} it was not told"
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
    bad: &mut impl FnMut(&'static str, String),
) {
    let mut crossed: BTreeSet<(MsgId, usize)> = BTreeSet::new();
    for &(m, from, to) in &facts.routed {
        let origin = pubs.get(&m).and_then(|k| facts.conn_server.get(k));
        if origin.is_some_and(|&o| o != from) {
            bad(
                "one-hop",
                format!(
                    "message {m}, published on S{}, was forwarded by S{from} to S{to}",
                    origin.expect("checked")
                ),
            );
        }
        if !crossed.insert((m, to)) {
            bad(
                "one-hop",
                format!("message {m} reached S{to} twice by route"),
            );
        }
    }
    // The final round waits for the cluster to come together; the end of
    // the run (quiet since) must still show it, or says which part did not.
    for (invariant, detail) in disagreements(&facts.end) {
        bad(invariant, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, peers: &[&str], announces: &[&str]) -> ServerView {
        ServerView {
            server_id: id.to_string(),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            announces: announces.iter().map(|a| a.to_string()).collect(),
            heard: BTreeMap::new(),
        }
    }

    #[test]
    fn a_missing_route_or_a_stale_view_is_named() {
        let mut a = view("A", &["B"], &["$G x"]);
        let mut b = view("B", &["A"], &["$G y q=2"]);
        a.heard.insert("B".into(), b.announces.clone());
        b.heard.insert("A".into(), a.announces.clone());
        assert!(disagreements(&[a.clone(), b.clone()]).is_empty());
        // B still believes A wants x.z, which A no longer announces.
        b.heard.get_mut("A").unwrap().insert("$G x.z".into());
        let found = disagreements(&[a.clone(), b.clone()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "interest-converges");
        // A third server nobody routes to.
        let c = view("C", &[], &[]);
        let found = disagreements(&[a, b, c]);
        assert_eq!(
            found.iter().filter(|(i, _)| *i == "full-mesh").count(),
            3,
            "{found:?}"
        );
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
    }
}
