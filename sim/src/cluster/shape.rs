//! What a cluster seed draws: how many servers, how they find each other,
//! their clocks, each client's servers, and the servers' faults.

use natrix_core::Options;
use natrix_core::config::cluster::{ClusterOptions, RouteUrl};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::seed;

use super::MS;

pub(super) const CLIENT_PORT: u16 = 4222;
pub(super) const ROUTE_PORT: u16 = 6222;

/// The cluster a seed draws: its size, how its servers find each other,
/// each server's clock offset and each client's servers.
#[derive(Debug, Clone)]
pub struct Shape {
    pub servers: usize,
    /// Every server's routes name only server 0 (the others come by
    /// gossip); else every server names every other.
    pub seed_topology: bool,
    /// Each server's clock runs this far ahead of the simulation's.
    pub skew_ns: Vec<u64>,
    /// The servers each client knows, its home first.
    pub pools: Vec<Vec<usize>>,
}

impl Shape {
    pub fn draw(s: u64, clients: usize) -> Shape {
        let mut rng = seed::rng(s, "cluster", 0);
        let servers = 2 + (rng.next_u32() % 3) as usize;
        let seed_topology = rng.next_u32().is_multiple_of(2);
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
        Shape {
            servers,
            seed_topology,
            skew_ns,
            pools,
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

/// The options of server `i` of an `n`-server cluster.
pub(super) fn server_options(base: &Options, i: usize, shape: &Shape) -> Options {
    let host = |j: usize| format!("127.0.0.{}", j + 1);
    let routes: Vec<usize> = if shape.seed_topology {
        if i == 0 { Vec::new() } else { vec![0] }
    } else {
        (0..shape.servers).filter(|&j| j != i).collect()
    };
    let routes = routes
        .into_iter()
        .map(|j| {
            RouteUrl::parse(&format!("nats-route://{}:{ROUTE_PORT}", host(j)))
                .expect("a well-formed route URL")
        })
        .collect();
    Options {
        server_name: format!("S{i}"),
        host: host(i),
        port: CLIENT_PORT,
        cluster: Some(ClusterOptions {
            name: "sim".into(),
            host: host(i),
            port: ROUTE_PORT,
            routes,
            // Servers learned by gossip are dialed again for a minute
            // after their route drops (longer than any partition).
            connect_retries: 60,
            ..ClusterOptions::default()
        }),
        ..base.clone()
    }
}

/// The server a route address (`127.0.0.<i+1>:6222`) names.
pub(super) fn target_of(addr: &str, servers: usize) -> Option<usize> {
    let (host, port) = addr.rsplit_once(':')?;
    if port != ROUTE_PORT.to_string() {
        return None;
    }
    let i: usize = host.strip_prefix("127.0.0.")?.parse().ok()?;
    (1..=servers).contains(&i).then(|| i - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_addresses_name_their_servers() {
        assert_eq!(target_of("127.0.0.1:6222", 3), Some(0));
        assert_eq!(target_of("127.0.0.3:6222", 3), Some(2));
        assert_eq!(target_of("127.0.0.4:6222", 3), None);
        assert_eq!(target_of("127.0.0.1:4222", 3), None);
    }
}
