//! What a cluster seed draws: how many servers, how they are joined
//! (one cluster, a hub cluster with leaf nodes, or two clusters joined by
//! gateways), how they find each other, their clocks, each client's
//! servers, and the servers' faults.

use natrix_core::Options;
use natrix_core::config::cluster::{ClusterOptions, RouteUrl};
use natrix_core::config::gateway::{GatewayOptions, RemoteGateway};
use natrix_core::config::leafnodes::{LeafNodeOptions, LeafRemote, LeafUser};
use natrix_core::server::Listener;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::seed;

use super::MS;

pub(super) const CLIENT_PORT: u16 = 4222;
pub(super) const ROUTE_PORT: u16 = 6222;
pub(super) const LEAF_PORT: u16 = 7422;
pub(super) const GATEWAY_PORT: u16 = 7222;

/// How the servers are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// One cluster: every server routes to every other.
    #[default]
    Mesh,
    /// Servers `0..hubs` are one cluster, the hub; every other server `i`
    /// is a leaf node of hub server `i % hubs`, and with `edge` the leaf
    /// nodes form a cluster of their own (`edge`), each on its own hub
    /// connection (with two hub servers, each leaf node on a different
    /// one).
    Leaf { hubs: usize, edge: bool },
    /// Servers `0..split` are cluster `A`, the others cluster `B`, and
    /// every server has a gateway to the other cluster.
    Gateways { split: usize },
}

impl Topology {
    /// The cluster server `i` belongs to: its name and its members.
    pub fn cluster_of(self, i: usize, servers: usize) -> Option<(&'static str, Vec<usize>)> {
        match self {
            Topology::Mesh => Some(("sim", (0..servers).collect())),
            Topology::Leaf { hubs, .. } if i < hubs => Some(("sim", (0..hubs).collect())),
            Topology::Leaf { hubs, edge: true } => Some(("edge", (hubs..servers).collect())),
            Topology::Leaf { .. } => None,
            Topology::Gateways { split } if i < split => Some(("A", (0..split).collect())),
            Topology::Gateways { split } => Some(("B", (split..servers).collect())),
        }
    }

    /// The hub server `i` is a leaf node of, if it is a leaf node.
    pub fn hub_of(self, i: usize) -> Option<usize> {
        match self {
            Topology::Leaf { hubs, .. } if i >= hubs => Some(i % hubs),
            _ => None,
        }
    }
}

/// The cluster a seed draws: its size, how its servers find each other,
/// each server's clock offset and each client's servers.
#[derive(Debug, Clone)]
pub struct Shape {
    pub servers: usize,
    pub topology: Topology,
    /// Every server's routes name only server 0 (the others come by
    /// gossip); else every server names every other.
    pub seed_topology: bool,
    /// Each server's clock runs this far ahead of the simulation's.
    pub skew_ns: Vec<u64>,
    /// The servers each client knows, its home first.
    pub pools: Vec<Vec<usize>>,
    /// Every leaf node's deny lists (imports, exports), in half the seeds
    /// with leaf nodes.
    pub leaf_deny: Option<LeafDenyPlan>,
    /// One server's route permissions, in half the seeds of one cluster.
    pub route_deny: Option<RouteDenyPlan>,
}

/// What one server's routes do not carry (`cluster { permissions }`):
/// interest in `imports` is not told to them (so messages on it do not
/// come in, unless wider interest draws them) and messages on `exports`
/// are not sent on them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDenyPlan {
    pub server: usize,
    pub imports: String,
    pub exports: String,
}

impl RouteDenyPlan {
    /// Whether a message on `subject` from server `from` to server `to`
    /// crosses the permissions (in one cluster every way is one route).
    pub fn denies(&self, from: usize, to: usize, subject: &str) -> bool {
        let m = |p: &str| natrix_core::subject::matches(p.as_bytes(), subject.as_bytes());
        from != to
            && ((from == self.server && m(&self.exports))
                || (to == self.server && m(&self.imports)))
    }

    /// Whether a message on `subject` must never go from `from` on a
    /// route: the export side, which is checked message by message.
    pub fn forbids(&self, from: usize, subject: &str) -> bool {
        from == self.server
            && natrix_core::subject::matches(self.exports.as_bytes(), subject.as_bytes())
    }
}

/// Deny lists drawn from the workload's subjects: subjects and patterns
/// some subscriptions match literally and others only by a wildcard.
const DENY_IMPORTS: [&str; 4] = ["a.2", "a.>", "b.x.*", "c"];
const DENY_EXPORTS: [&str; 4] = ["a.1", "b.>", "*.1", "c"];

/// What each leaf node does not take from its hub and does not send to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafDenyPlan {
    pub imports: String,
    pub exports: String,
}

impl LeafDenyPlan {
    /// Whether a message on `subject` from server `from` to server `to`
    /// crosses a leaf node connection that does not carry it.
    pub fn denies(&self, topology: Topology, from: usize, to: usize, subject: &str) -> bool {
        let m = |p: &str| natrix_core::subject::matches(p.as_bytes(), subject.as_bytes());
        from != to
            && ((topology.hub_of(from).is_some() && m(&self.exports))
                || (topology.hub_of(to).is_some() && m(&self.imports)))
    }
}

impl Shape {
    /// Draws a seed's cluster.
    pub fn draw(s: u64, clients: usize) -> Shape {
        let mut rng = seed::rng(s, "cluster", 0);
        let servers = 2 + (rng.next_u32() % 3) as usize;
        let seed_topology = rng.next_u32().is_multiple_of(2);
        // Half the seeds one cluster, a quarter leaf nodes, a quarter
        // gateways.
        let mut joined = seed::rng(s, "topology", 0);
        let roll = joined.next_u32();
        let part = 1 + (joined.next_u32() as usize) % (servers - 1);
        let topology = match roll % 4 {
            // Half of those with two leaf nodes or more make them a
            // cluster.
            2 => Topology::Leaf {
                hubs: part,
                edge: servers - part >= 2 && seed::rng(s, "edge", 0).next_u32().is_multiple_of(2),
            },
            3 => Topology::Gateways { split: part },
            _ => Topology::Mesh,
        };
        let mut skew = seed::rng(s, "skew", 0);
        let skew_ns = (0..servers)
            .map(|_| match skew.next_u32() % 3 {
                0 => 0,
                _ => u64::from(skew.next_u32() % 5_000) * MS,
            })
            .collect();
        let pools = (0..clients)
            .map(|c| {
                let mut rng = seed::rng(s, "cluster-client", c as u64);
                let home = (rng.next_u32() as usize) % servers;
                // Half the clients know every server and fail over.
                let known = if rng.next_u32().is_multiple_of(2) {
                    servers
                } else {
                    1
                };
                (0..known).map(|k| (home + k) % servers).collect()
            })
            .collect();
        // Half the seeds with leaf nodes give them deny lists.
        let mut deny = seed::rng(s, "leaf-deny", 0);
        let leaf_deny = (matches!(topology, Topology::Leaf { .. })
            && deny.next_u32().is_multiple_of(2))
        .then(|| LeafDenyPlan {
            imports: DENY_IMPORTS[(deny.next_u32() % 4) as usize].to_string(),
            exports: DENY_EXPORTS[(deny.next_u32() % 4) as usize].to_string(),
        });
        // Half the seeds of one cluster give one server route permissions.
        let mut deny = seed::rng(s, "route-deny", 0);
        let route_deny =
            (topology == Topology::Mesh && deny.next_u32().is_multiple_of(2)).then(|| {
                RouteDenyPlan {
                    server: (deny.next_u32() as usize) % servers,
                    imports: DENY_IMPORTS[(deny.next_u32() % 4) as usize].to_string(),
                    exports: DENY_EXPORTS[(deny.next_u32() % 4) as usize].to_string(),
                }
            });
        Shape {
            servers,
            topology,
            seed_topology,
            skew_ns,
            pools,
            leaf_deny,
            route_deny,
        }
    }
}

/// A fault between or of servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFault {
    /// Hold the bytes from `a` to `b` (and with `both`, back), and fail
    /// dials between them, for a while.
    Partition {
        a: usize,
        b: usize,
        both: bool,
        for_ns: u64,
    },
    /// The server process dies (every connection with it) and a new one
    /// starts after `down_ns`.
    Restart { server: usize, down_ns: u64 },
}

/// Draws a seed's server faults over `[0, phase_ns)` (swarm: some seeds
/// partition, some restart, some both, some neither).
pub(super) fn server_faults(s: u64, servers: usize, phase_ns: u64) -> Vec<(u64, ServerFault)> {
    let mut mix = seed::rng(s, "cluster-mix", 0);
    let on = |rng: &mut ChaCha8Rng| rng.next_u32().is_multiple_of(2);
    let partitions = if on(&mut mix) {
        1 + mix.next_u32() % 4
    } else {
        0
    };
    let one_way = on(&mut mix);
    let restarts = if on(&mut mix) {
        1 + mix.next_u32() % 2
    } else {
        0
    };
    let mut rng = seed::rng(s, "cluster-faults", 0);
    let mut out = Vec::new();
    let pick = |rng: &mut ChaCha8Rng| (rng.next_u32() as usize) % servers;
    for _ in 0..partitions {
        let a = pick(&mut rng);
        let b = (a + 1 + (rng.next_u32() as usize) % (servers - 1)) % servers;
        let both = !one_way || rng.next_u32().is_multiple_of(3);
        let for_ns = u64::from(50 + rng.next_u32() % 6_000) * MS;
        let at = u64::from(rng.next_u32()) % phase_ns;
        out.push((at, ServerFault::Partition { a, b, both, for_ns }));
    }
    for _ in 0..restarts {
        let server = pick(&mut rng);
        let down_ns = u64::from(rng.next_u32() % 3_000) * MS;
        let at = u64::from(rng.next_u32()) % phase_ns;
        out.push((at, ServerFault::Restart { server, down_ns }));
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

fn host(j: usize) -> String {
    format!("127.0.0.{}", j + 1)
}

fn url(scheme: &str, j: usize, port: u16) -> RouteUrl {
    RouteUrl::parse(&format!("{scheme}://{}:{port}", host(j))).expect("a well-formed URL")
}

/// The options of server `i` of the seed's servers.
pub(super) fn server_options(base: &Options, i: usize, shape: &Shape) -> Options {
    let topology = shape.topology;
    let cluster = topology
        .cluster_of(i, shape.servers)
        .map(|(name, members)| {
            let routes: Vec<usize> = if shape.seed_topology {
                // Every member names the first; the rest come by gossip.
                members
                    .iter()
                    .copied()
                    .take(1)
                    .filter(|&j| j != i)
                    .collect()
            } else {
                members.iter().copied().filter(|&j| j != i).collect()
            };
            ClusterOptions {
                name: name.into(),
                host: host(i),
                port: ROUTE_PORT,
                routes: routes
                    .into_iter()
                    .map(|j| url("nats-route", j, ROUTE_PORT))
                    .collect(),
                // Servers learned by gossip are dialed again for a minute
                // after their route drops (longer than any partition).
                connect_retries: 60,
                permissions: shape
                    .route_deny
                    .as_ref()
                    .filter(|d| d.server == i)
                    .map(|d| natrix_core::auth::Permissions {
                        publish: Some(natrix_core::auth::SubjectPermission {
                            allow: None,
                            deny: vec![d.imports.clone()],
                        }),
                        subscribe: Some(natrix_core::auth::SubjectPermission {
                            allow: None,
                            deny: vec![d.exports.clone()],
                        }),
                        response: None,
                    }),
                ..ClusterOptions::default()
            }
        });
    // With users, a leaf node connection authenticates as a leaf node
    // user of the hub, one per account (`leaf-<account>`), binding the
    // account of the same name on both sides.
    let with_users = base.auth.required();
    let accounts: Vec<Option<String>> = if base.accounts.is_empty() {
        vec![None]
    } else {
        base.accounts.iter().map(|a| Some(a.name.clone())).collect()
    };
    let leaf_user = |a: &Option<String>| format!("leaf-{}", a.as_deref().unwrap_or("G"));
    let leafnodes = match topology {
        Topology::Mesh | Topology::Gateways { .. } => None,
        Topology::Leaf { .. } => Some(match topology.hub_of(i) {
            None => LeafNodeOptions {
                host: host(i),
                port: Some(LEAF_PORT),
                users: if with_users {
                    accounts
                        .iter()
                        .map(|a| LeafUser {
                            user: leaf_user(a),
                            password: "p".into(),
                            account: a.clone(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                ..LeafNodeOptions::default()
            },
            Some(hub) => LeafNodeOptions {
                remotes: accounts
                    .iter()
                    .map(|a| {
                        let url = if with_users {
                            RouteUrl::parse(&format!(
                                "nats-leaf://{}:p@{}:{LEAF_PORT}",
                                leaf_user(a),
                                host(hub)
                            ))
                            .expect("a well-formed URL")
                        } else {
                            url("nats-leaf", hub, LEAF_PORT)
                        };
                        LeafRemote {
                            urls: vec![url],
                            account: a.clone(),
                            deny_imports: shape
                                .leaf_deny
                                .iter()
                                .map(|d| d.imports.clone())
                                .collect(),
                            deny_exports: shape
                                .leaf_deny
                                .iter()
                                .map(|d| d.exports.clone())
                                .collect(),
                            ..LeafRemote::default()
                        }
                    })
                    .collect(),
                ..LeafNodeOptions::default()
            },
        }),
    };
    let gateway = match topology {
        Topology::Gateways { split } => {
            let (ours, theirs, others) = if i < split {
                ("A", "B", split..shape.servers)
            } else {
                ("B", "A", 0..split)
            };
            // With `seed_topology`, only S0 names cluster B, by its first
            // server: the rest learn of the other cluster from their
            // routes and its servers from its gateway INFO.
            let gateways = match (shape.seed_topology, i) {
                (false, _) => vec![RemoteGateway {
                    name: theirs.into(),
                    urls: others.map(|j| url("nats", j, GATEWAY_PORT)).collect(),
                    tls: None,
                }],
                (true, 0) => vec![RemoteGateway {
                    name: theirs.into(),
                    urls: vec![url("nats", split, GATEWAY_PORT)],
                    tls: None,
                }],
                (true, _) => Vec::new(),
            };
            Some(GatewayOptions {
                name: ours.into(),
                host: host(i),
                port: GATEWAY_PORT,
                gateways,
                ..GatewayOptions::default()
            })
        }
        _ => None,
    };
    Options {
        server_name: format!("S{i}"),
        host: host(i),
        port: CLIENT_PORT,
        cluster,
        leafnodes,
        gateway,
        ..base.clone()
    }
}

/// The server and listener an address (`127.0.0.<i+1>:<port>`) names.
pub(super) fn target_of(addr: &str, servers: usize) -> Option<(usize, Listener)> {
    let (host, port) = addr.rsplit_once(':')?;
    let listener = match port.parse().ok()? {
        ROUTE_PORT => Listener::Route,
        LEAF_PORT => Listener::Leaf,
        GATEWAY_PORT => Listener::Gateway,
        _ => return None,
    };
    let i: usize = host.strip_prefix("127.0.0.")?.parse().ok()?;
    (1..=servers).contains(&i).then(|| (i - 1, listener))
}

/// A listener's port.
pub(super) fn port_of(listener: Listener) -> u16 {
    match listener {
        Listener::Route => ROUTE_PORT,
        Listener::Leaf => LEAF_PORT,
        Listener::Gateway => GATEWAY_PORT,
        _ => CLIENT_PORT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_addresses_name_their_servers() {
        assert_eq!(target_of("127.0.0.1:6222", 3), Some((0, Listener::Route)));
        assert_eq!(target_of("127.0.0.3:7422", 3), Some((2, Listener::Leaf)));
        assert_eq!(target_of("127.0.0.2:7222", 3), Some((1, Listener::Gateway)));
        assert_eq!(target_of("127.0.0.4:6222", 3), None);
        assert_eq!(target_of("127.0.0.1:4222", 3), None);
    }
}
