//! Servers of one cluster wired to each other in memory: handshakes,
//! interest, forwarding, queue groups, gossip and failures.

use std::collections::BTreeMap;

use super::*;
use crate::config::Options;
use crate::config::cluster::ClusterOptions;
use crate::server::{Action, Event, Listener};
use crate::time::{Instant, Now};

pub(crate) fn now_at(ns: u64) -> Now {
    Now::new(Instant::from_nanos(ns), 1_700_000_000_000_000_000 + ns)
}

pub(crate) const MS: u64 = 1_000_000;

/// The route port of server `i`.
pub(crate) fn route_port(i: usize) -> u16 {
    7000 + i as u16
}

/// The gateway port of server `i`.
pub(crate) fn gateway_port(i: usize) -> u16 {
    9000 + i as u16
}

/// The leaf node port of server `i`.
pub(crate) fn leaf_port(i: usize) -> u16 {
    8000 + i as u16
}

/// A server of the net: its client port is 4000 + i.
pub(crate) fn opts(i: usize, name: &str, routes: &[usize]) -> Options {
    let mut o = Options {
        server_name: format!("S{i}"),
        host: "127.0.0.1".into(),
        port: 4000 + i as u16,
        ..Options::default()
    };
    o.cluster = Some(ClusterOptions {
        name: name.into(),
        host: "127.0.0.1".into(),
        port: route_port(i),
        routes: routes
            .iter()
            .map(|&r| {
                RouteUrl::parse(&format!("nats-route://127.0.0.1:{}", route_port(r))).unwrap()
            })
            .collect(),
        ..ClusterOptions::default()
    });
    o
}

/// Servers, the connections between them, and what their clients read.
pub(crate) struct Net {
    pub servers: Vec<Server>,
    pub up: Vec<bool>,
    pub now_ns: u64,
    /// Each end of a route connection, to the other.
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    /// What each client connection has been sent.
    client_out: BTreeMap<(usize, ConnId), Vec<u8>>,
    pub logs: Vec<String>,
    /// Dials that fail (the target is down).
    closed: Vec<(usize, ConnId, CloseReason)>,
    /// Connection ends whose writes are held back (not delivered) for now.
    pub held: BTreeMap<(usize, ConnId), Vec<u8>>,
}

impl Net {
    pub(crate) fn new(options: Vec<Options>) -> Net {
        let servers: Vec<Server> = options
            .into_iter()
            .enumerate()
            .map(|(i, o)| Server::new(o, 100 + i as u64, now_at(0)))
            .collect();
        let n = servers.len();
        let mut net = Net {
            servers,
            up: vec![true; n],
            now_ns: 0,
            links: BTreeMap::new(),
            client_out: BTreeMap::new(),
            logs: Vec::new(),
            closed: Vec::new(),
            held: BTreeMap::new(),
        };
        for i in 0..n {
            net.listen(i);
        }
        net.settle();
        net
    }

    pub(crate) fn listen(&mut self, i: usize) {
        let now = now_at(self.now_ns);
        let port = self.servers[i].options().port;
        self.servers[i].handle(
            now,
            Event::Listening {
                listener: Listener::Client,
                port,
            },
        );
        if self.servers[i].options().cluster.is_some() {
            self.servers[i].handle(
                now,
                Event::Listening {
                    listener: Listener::Route,
                    port: route_port(i),
                },
            );
        }
        if self.servers[i].options().gateway.is_some() {
            self.servers[i].handle(
                now,
                Event::Listening {
                    listener: Listener::Gateway,
                    port: gateway_port(i),
                },
            );
        }
        if self.servers[i]
            .options()
            .leafnodes
            .as_ref()
            .is_some_and(|l| l.port.is_some())
        {
            self.servers[i].handle(
                now,
                Event::Listening {
                    listener: Listener::Leaf,
                    port: leaf_port(i),
                },
            );
        }
    }

    /// Runs until nothing moves.
    pub(crate) fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the net never settled");
    }

    /// Carries out every server's actions once; whether anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.servers.len() {
            while let Some(a) = self.servers[i].poll_action() {
                moved = true;
                self.act(i, a);
            }
        }
        moved
    }

    fn act(&mut self, i: usize, a: Action) {
        let now = now_at(self.now_ns);
        match a {
            Action::Transmit { conn } => {
                let mut buf = Vec::new();
                self.servers[i].take_outbound(conn, &mut buf);
                let n = buf.len();
                if let Some(held) = self.held.get_mut(&(i, conn)) {
                    held.extend_from_slice(&buf);
                    self.servers[i].handle(now, Event::Written { conn, bytes: n });
                    return;
                }
                match self.links.get(&(i, conn)).copied() {
                    Some((j, peer)) => {
                        self.servers[j].handle(
                            now,
                            Event::Received {
                                conn: peer,
                                bytes: &buf,
                            },
                        );
                    }
                    None => self
                        .client_out
                        .entry((i, conn))
                        .or_default()
                        .extend_from_slice(&buf),
                }
                self.servers[i].handle(now, Event::Written { conn, bytes: n });
            }
            Action::Dial { conn, addr } => {
                let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
                let n = self.servers.len();
                let (listener, target) = if let Some(j) = (0..n).find(|&j| route_port(j) == port) {
                    (Listener::Route, Some(j))
                } else if let Some(j) = (0..n).find(|&j| gateway_port(j) == port) {
                    (Listener::Gateway, Some(j))
                } else {
                    (Listener::Leaf, (0..n).find(|&j| leaf_port(j) == port))
                };
                match target.filter(|&j| self.up[j]) {
                    Some(j) => {
                        let accepted = self.servers[j].next_conn_id();
                        let peer: SocketAddr = format!("127.0.0.1:{}", 50000 + i).parse().unwrap();
                        self.servers[j].handle(
                            now,
                            Event::Accepted {
                                conn: accepted,
                                listener,
                                peer,
                            },
                        );
                        self.links.insert((i, conn), (j, accepted));
                        self.links.insert((j, accepted), (i, conn));
                        let to: SocketAddr = addr.parse().unwrap();
                        self.servers[i].handle(now, Event::Dialed { conn, peer: to });
                    }
                    None => self.servers[i].handle(
                        now,
                        Event::DialFailed {
                            conn,
                            error: "connection refused",
                        },
                    ),
                }
            }
            Action::Close {
                conn,
                reason,
                flush,
            } => {
                if flush && !self.links.contains_key(&(i, conn)) {
                    let mut buf = Vec::new();
                    self.servers[i].take_outbound(conn, &mut buf);
                    self.client_out
                        .entry((i, conn))
                        .or_default()
                        .extend_from_slice(&buf);
                }
                self.closed.push((i, conn, reason));
                self.servers[i].handle(now, Event::Closed { conn });
                if let Some((j, peer)) = self.links.remove(&(i, conn)) {
                    self.links.remove(&(j, peer));
                    self.servers[j].handle(now, Event::Closed { conn: peer });
                }
            }
            Action::Log { message, .. } => self.logs.push(format!("S{i}: {message}")),
            _ => {}
        }
    }

    /// Advances time by `ms`, running timers as they come due.
    pub(crate) fn advance(&mut self, ms: u64) {
        let end = self.now_ns + ms * MS;
        loop {
            let next = self
                .servers
                .iter()
                .enumerate()
                .filter(|(i, _)| self.up[*i])
                .filter_map(|(_, s)| s.next_deadline())
                .map(Instant::as_nanos)
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now_ns = self.now_ns.max(t);
                    for i in 0..self.servers.len() {
                        if self.up[i] {
                            self.servers[i].handle(now_at(self.now_ns), Event::Tick);
                        }
                    }
                    self.settle();
                }
                _ => break,
            }
        }
        self.now_ns = end;
        self.settle();
    }

    /// A client of server `i` that sent `CONNECT` and `PING`.
    pub(crate) fn client(&mut self, i: usize) -> ConnId {
        self.client_with(i, "{\"verbose\":false,\"headers\":true,\"protocol\":1}")
    }

    /// A client of server `i` that sent `CONNECT` with `json`, and `PING`.
    pub(crate) fn client_with(&mut self, i: usize, json: &str) -> ConnId {
        let conn = self.servers[i].next_conn_id();
        let peer: SocketAddr = "127.0.0.1:60000".parse().unwrap();
        let now = now_at(self.now_ns);
        self.servers[i].handle(
            now,
            Event::Accepted {
                conn,
                listener: Listener::Client,
                peer,
            },
        );
        self.send(i, conn, format!("CONNECT {json}\r\nPING\r\n").as_bytes());
        self.client_out.remove(&(i, conn));
        conn
    }

    pub(crate) fn send(&mut self, i: usize, conn: ConnId, bytes: &[u8]) {
        let now = now_at(self.now_ns);
        self.servers[i].handle(now, Event::Received { conn, bytes });
        self.settle();
    }

    /// What client `conn` of server `i` read since last asked.
    pub(crate) fn read(&mut self, i: usize, conn: ConnId) -> String {
        String::from_utf8(self.client_out.remove(&(i, conn)).unwrap_or_default()).unwrap()
    }

    /// Server `i` stops: every connection to it drops.
    pub(crate) fn kill(&mut self, i: usize) {
        self.up[i] = false;
        let now = now_at(self.now_ns);
        let ends: Vec<((usize, ConnId), (usize, ConnId))> = self
            .links
            .iter()
            .filter(|((a, _), _)| *a == i)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (a, b) in ends {
            self.links.remove(&a);
            self.links.remove(&b);
            self.servers[b.0].handle(now, Event::Closed { conn: b.1 });
        }
        self.settle();
    }

    pub(crate) fn routes(&self, i: usize) -> Vec<String> {
        self.servers[i]
            .routes()
            .into_iter()
            .map(|(_, p)| p.server_name.clone())
            .collect()
    }
}

pub(crate) fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn two_servers_route_and_messages_cross_both_ways() {
    let mut net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C1", &[0])]);
    assert_eq!(net.routes(0), ["S1"]);
    assert_eq!(net.routes(1), ["S0"]);
    let sub = net.client(1);
    net.send(1, sub, b"SUB foo 1\r\n");
    let publisher = net.client(0);
    net.send(
        0,
        publisher,
        b"PUB foo 5\r\nhello\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    );
    assert_eq!(
        net.read(1, sub),
        "MSG foo 1 5\r\nhello\r\nHMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    );
    // And back: a request crosses and its reply returns.
    let a = net.client(0);
    net.send(0, a, b"SUB reply.x 9\r\n");
    net.send(1, sub, b"PUB reply.x 2\r\nok\r\n");
    assert_eq!(net.read(0, a), "MSG reply.x 9 2\r\nok\r\n");
}

#[test]
fn interest_comes_and_goes_and_nothing_is_sent_without_it() {
    let mut net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C1", &[0])]);
    let sub = net.client(1);
    let publisher = net.client(0);
    net.send(1, sub, b"SUB foo 1\r\nSUB foo 2\r\n");
    net.send(1, sub, b"UNSUB 1\r\n");
    net.send(0, publisher, b"PUB foo 1\r\na\r\n");
    assert_eq!(net.read(1, sub), "MSG foo 2 1\r\na\r\n");
    net.send(1, sub, b"UNSUB 2\r\n");
    let before = net.servers[0].stats().counters.out_msgs;
    net.send(0, publisher, b"PUB foo 1\r\na\r\n");
    assert_eq!(net.read(1, sub), "");
    assert_eq!(
        net.servers[0].stats().counters.out_msgs,
        before,
        "no interest, nothing forwarded"
    );
}

#[test]
fn a_queue_group_gets_each_message_once_across_the_cluster() {
    let mut net = Net::new(vec![
        opts(0, "C1", &[]),
        opts(1, "C1", &[0]),
        opts(2, "C1", &[0]),
    ]);
    let members: Vec<(usize, ConnId)> = [0, 1, 1, 2]
        .into_iter()
        .map(|i| {
            let c = net.client(i);
            net.send(i, c, b"SUB work q 1\r\nSUB all 2\r\n");
            (i, c)
        })
        .collect();
    let publisher = net.client(2);
    for _ in 0..200 {
        net.send(2, publisher, b"PUB work 1\r\nx\r\nPUB all 1\r\ny\r\n");
    }
    let mut per_member = Vec::new();
    let mut total = 0;
    for &(i, c) in &members {
        let got = net.read(i, c);
        let n = count(&got, "MSG work");
        assert_eq!(
            count(&got, "MSG all"),
            200,
            "every plain subscriber gets all"
        );
        per_member.push(n);
        total += n;
    }
    assert_eq!(
        total, 200,
        "one delivery per message cluster-wide: {per_member:?}"
    );
    assert!(
        per_member.iter().all(|&n| n > 10),
        "every member takes a share: {per_member:?}"
    );
}

#[test]
fn gossip_completes_the_mesh_and_nothing_loops() {
    let mut net = Net::new(vec![
        opts(0, "C1", &[]),
        opts(1, "C1", &[0]),
        opts(2, "C1", &[0]),
    ]);
    let mut r1 = net.routes(1);
    r1.sort();
    assert_eq!(r1, ["S0", "S2"], "S1 learned S2 from S0");
    let mut r2 = net.routes(2);
    r2.sort();
    assert_eq!(r2, ["S0", "S1"]);
    let subs: Vec<(usize, ConnId)> = (0..3)
        .map(|i| {
            let c = net.client(i);
            net.send(i, c, b"SUB x.> 1\r\n");
            (i, c)
        })
        .collect();
    let publisher = net.client(1);
    net.send(1, publisher, b"PUB x.y 1\r\nz\r\n");
    for (i, c) in subs {
        assert_eq!(
            net.read(i, c),
            "MSG x.y 1 1\r\nz\r\n",
            "server {i}: exactly once"
        );
    }
}

#[test]
fn a_different_cluster_name_is_refused_with_nats_servers_error() {
    let net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C2", &[0])]);
    assert!(net.routes(0).is_empty());
    assert!(net.routes(1).is_empty());
    assert!(
        net.logs
            .iter()
            .any(|l| l.contains("Rejecting connection, cluster name \"C2\" does not match \"C1\"")),
        "{:#?}",
        net.logs
    );
}

#[test]
fn a_dropped_route_takes_its_interest_and_is_dialed_again() {
    let mut net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C1", &[0])]);
    let sub = net.client(0);
    net.send(0, sub, b"SUB foo 1\r\n");
    net.kill(0);
    assert!(net.routes(1).is_empty());
    let publisher = net.client(1);
    let before = net.servers[1].stats().counters.out_msgs;
    net.send(1, publisher, b"PUB foo 1\r\na\r\n");
    assert_eq!(
        net.servers[1].stats().counters.out_msgs,
        before,
        "no interest left"
    );
    // Dials fail while it is down, then succeed once it is back.
    net.advance(3_500);
    assert!(
        net.logs
            .iter()
            .any(|l| l.contains("Error trying to connect to route"))
    );
    // It comes back as a new process.
    net.servers[0] = Server::new(opts(0, "C1", &[]), 99, now_at(net.now_ns));
    net.up[0] = true;
    net.listen(0);
    net.advance(1_500);
    assert_eq!(net.routes(1), ["S0"]);
    assert_eq!(net.routes(0), ["S1"]);
}

#[test]
fn clients_learn_the_other_servers_urls() {
    let mut net = Net::new(vec![opts(0, "C1", &[])]);
    let c = net.client(0);
    assert!(net.servers[0].info().connect_urls == ["127.0.0.1:4000"]);
    // A second server joins later: the client hears of it.
    net.servers
        .push(Server::new(opts(1, "C1", &[0]), 5, now_at(net.now_ns)));
    net.up.push(true);
    net.listen(1);
    net.settle();
    let got = net.read(0, c);
    assert!(
        got.starts_with("INFO ")
            && got.contains("\"connect_urls\":[\"127.0.0.1:4000\",\"127.0.0.1:4001\"]"),
        "{got}"
    );
}

#[test]
fn a_routed_message_names_only_the_groups_chosen_for_that_server() {
    let mut net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C1", &[0])]);
    let m = net.client(1);
    net.send(1, m, b"SUB foo g1 1\r\nSUB foo g2 2\r\n");
    let local = net.client(0);
    net.send(0, local, b"SUB foo g2 7\r\n");
    let publisher = net.client(0);
    for _ in 0..50 {
        net.send(0, publisher, b"PUB foo 1\r\nx\r\n");
    }
    let remote = net.read(1, m);
    let here = net.read(0, local);
    assert_eq!(count(&remote, "MSG foo 1 "), 50, "g1 lives only on S1");
    assert_eq!(
        count(&remote, "MSG foo 2 ") + count(&here, "MSG foo 7 "),
        50
    );
}

/// Every server's view of each peer's interest is what that peer
/// announces.
fn assert_interest_converged(net: &Net) {
    for (i, s) in net.servers.iter().enumerate() {
        for (peer, seen) in s.interest_of_routes() {
            let j = net
                .servers
                .iter()
                .position(|t| t.server_id() == peer)
                .unwrap();
            assert_eq!(
                seen,
                net.servers[j].interest_for_routes(),
                "S{i}'s view of S{j}"
            );
        }
    }
}

#[test]
fn every_view_of_a_peers_interest_converges() {
    let mut net = Net::new(vec![
        opts(0, "C1", &[]),
        opts(1, "C1", &[0]),
        opts(2, "C1", &[1]),
    ]);
    let a = net.client(0);
    let b = net.client(2);
    net.send(0, a, b"SUB x 1\r\nSUB y q 2\r\nSUB y q 3\r\nSUB z 4\r\n");
    net.send(2, b, b"SUB y q 1\r\nSUB x 2\r\n");
    assert_interest_converged(&net);
    assert!(net.servers[0].interest_for_routes().contains("$G y q=2"));
    net.send(0, a, b"UNSUB 2\r\nUNSUB 4\r\n");
    assert_interest_converged(&net);
    assert!(!net.servers[0].interest_for_routes().contains("$G z"));
    net.kill(2);
    assert_interest_converged(&net);
}

#[test]
fn planted_route_bugs_break_what_they_should() {
    use crate::config::{Mutation, PlantedBug};
    let planted = |bug| {
        let mut o: Vec<Options> =
            vec![opts(0, "C1", &[]), opts(1, "C1", &[0]), opts(2, "C1", &[0])];
        for x in &mut o {
            x.mutation = Some(Mutation { bug, one_in: 1 });
        }
        Net::new(o)
    };
    // An RS- dropped: a peer keeps interest nobody has.
    let mut net = planted(PlantedBug::DropRouteUnsub);
    let a = net.client(0);
    net.send(0, a, b"SUB gone 1\r\n");
    net.send(0, a, b"UNSUB 1\r\n");
    let views = net.servers[1].interest_of_routes();
    assert!(views[net.servers[0].server_id()].contains("$G gone"));
    // One hop broken: a message reaches a subscriber more than once.
    let mut net = planted(PlantedBug::ForwardRoutedToRoute);
    let s = net.client(2);
    net.send(2, s, b"SUB m 1\r\n");
    let s0 = net.client(0);
    net.send(0, s0, b"SUB m 1\r\n");
    let p = net.client(1);
    net.send(1, p, b"PUB m 1\r\nx\r\n");
    assert!(count(&net.read(2, s), "MSG m") > 1);
    // A queue group served twice.
    let mut net = planted(PlantedBug::QueueTwiceAcrossServers);
    let m0 = net.client(0);
    let m1 = net.client(1);
    net.send(0, m0, b"SUB w g 1\r\n");
    net.send(1, m1, b"SUB w g 1\r\n");
    let p = net.client(0);
    for _ in 0..20 {
        net.send(0, p, b"PUB w 1\r\nx\r\n");
    }
    let total = count(&net.read(0, m0), "MSG w") + count(&net.read(1, m1), "MSG w");
    assert!(total > 20, "{total}");
}

#[test]
fn a_route_to_itself_is_dropped_and_not_dialed_again() {
    let mut net = Net::new(vec![opts(0, "C1", &[0])]);
    assert!(net.routes(0).is_empty());
    let dials = net.logs.len();
    net.advance(5_000);
    assert!(net.routes(0).is_empty());
    assert_eq!(
        net.logs[dials..]
            .iter()
            .filter(|l| l.contains("Route connection created"))
            .count(),
        0,
        "{:#?}",
        &net.logs[dials..]
    );
}

#[test]
fn routez_and_varz_show_the_routes() {
    let mut net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C1", &[0])]);
    let p = crate::server::ProcessInfo::default();
    let now = now_at(net.now_ns);
    let body = |r: crate::server::MonitorResponse| -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    };
    let routez = body(net.servers[1].monitor(now, "/routez", "subs=1", &p));
    assert_eq!(routez["num_routes"], 1);
    let r = &routez["routes"][0];
    assert_eq!(r["remote_name"], "S0");
    assert_eq!(r["did_solicit"], true);
    assert_eq!(r["is_configured"], true);
    assert!(
        r["subscriptions_list"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    );
    let varz = body(net.servers[1].monitor(now, "/varz", "", &p));
    assert_eq!(varz["routes"], 1);
    assert_eq!(varz["cluster"]["name"], "C1");
    assert_eq!(varz["cluster"]["cluster_port"], 7001);
    assert_eq!(varz["cluster"]["urls"][0], "127.0.0.1:7000");
    // Routes are not client connections.
    let connz = body(net.servers[0].monitor(now, "/connz", "", &p));
    assert_eq!(connz["num_connections"], 0);
    net.settle();
}

#[test]
fn a_stopping_server_does_not_tell_clients_the_others_are_gone() {
    let mut net = Net::new(vec![opts(0, "C1", &[]), opts(1, "C1", &[0])]);
    let c = net.client(0);
    let now = now_at(net.now_ns);
    net.servers[0].handle(now, Event::Shutdown);
    net.settle();
    let got = net.read(0, c);
    assert!(!got.contains("INFO"), "no INFO while stopping: {got}");
}

#[test]
fn a_route_this_server_dialed_is_told_to_the_other_members() {
    // S1 knows only S0. S0 dials S2 (not up yet) and, once it is, tells
    // S1 about it: S2 names no route and could tell nobody itself.
    let mut net = Net::new(vec![opts(0, "C1", &[2]), opts(1, "C1", &[0])]);
    assert_eq!(net.routes(1), ["S0"]);
    net.advance(1_500);
    net.servers
        .push(Server::new(opts(2, "C1", &[]), 7, now_at(net.now_ns)));
    net.up.push(true);
    net.listen(2);
    net.advance(2_500);
    let mut r1 = net.routes(1);
    r1.sort();
    assert_eq!(r1, ["S0", "S2"], "S1 heard of S2 from S0, which dialed it");
    let mut r2 = net.routes(2);
    r2.sort();
    assert_eq!(r2, ["S0", "S1"]);
}

#[test]
fn a_system_request_is_answered_by_every_server_of_the_cluster() {
    let conf = r#"
accounts {
  SYS: { users: [{user: sys, password: sys}] }
}
system_account: SYS
"#;
    let map = crate::conf::parse(conf, "t.conf", &crate::conf::MemSource::new()).unwrap();
    let with_sys = |mut o: Options| {
        let problems = crate::config::file::apply(&map, &mut o, &mut Default::default());
        assert!(problems.errors.is_empty(), "{problems:?}");
        o
    };
    let mut net = Net::new(vec![
        with_sys(opts(0, "C1", &[])),
        with_sys(opts(1, "C1", &[0])),
        with_sys(opts(2, "C1", &[0])),
    ]);
    let sys = net.client_with(
        0,
        r#"{"user":"sys","pass":"sys","headers":true,"protocol":1}"#,
    );
    net.send(
        0,
        sys,
        b"SUB _INBOX.r 1\r\nPUB $SYS.REQ.SERVER.PING _INBOX.r 0\r\n\r\n",
    );
    let got = net.read(0, sys);
    let mut names: Vec<&str> = ["S0", "S1", "S2"]
        .into_iter()
        .filter(|n| got.contains(&format!("\"name\":\"{n}\"")))
        .collect();
    names.sort();
    assert_eq!(names, ["S0", "S1", "S2"], "{got}");
    assert_eq!(count(&got, "MSG _INBOX.r"), 3);
}

#[test]
fn a_route_on_tls_shakes_hands_before_its_info() {
    let mut o = opts(0, "C1", &[]);
    let mut tls = crate::config::TlsOptions::new("s.pem", "s.key");
    tls.ca_file = Some("ca.pem".into());
    tls.verify = true;
    tls.timeout = std::time::Duration::from_secs(3);
    o.cluster.as_mut().unwrap().tls = Some(tls);
    let now = now_at(0);
    let mut s = crate::Server::new(o, 1, now);
    s.handle(
        now,
        Event::Listening {
            listener: Listener::Route,
            port: 7000,
        },
    );
    while s.poll_action().is_some() {}
    let conn = s.next_conn_id();
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    s.handle(
        now,
        Event::Accepted {
            conn,
            listener: Listener::Route,
            peer,
        },
    );
    assert!(s.awaits_tls(conn));
    let mut seen = Vec::new();
    while let Some(a) = s.poll_action() {
        match a {
            Action::StartTls { conn: c } if c == conn => seen.push("start tls".to_string()),
            Action::Transmit { conn: c } if c == conn => {
                let mut out = Vec::new();
                s.take_outbound(conn, &mut out);
                seen.push(String::from_utf8_lossy(&out).into_owned());
            }
            _ => {}
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0], "start tls", "the handshake comes first");
    assert!(
        seen[1].contains("\"tls_required\":true,\"tls_verify\":true"),
        "{seen:?}"
    );
    let p = crate::server::ProcessInfo::default();
    let varz: serde_json::Value =
        serde_json::from_slice(&s.monitor(now, "/varz", "", &p).body).unwrap();
    assert_eq!(varz["cluster"]["tls_required"], true);
    assert_eq!(varz["cluster"]["tls_timeout"], 3.0);
    // No handshake within the timeout: closed.
    s.handle(now_at(3_100_000_000), Event::Tick);
    let mut closed = false;
    while let Some(a) = s.poll_action() {
        closed |= matches!(a, Action::Close { conn: c, .. } if c == conn);
    }
    assert!(closed, "the handshake timeout closes the route");
}

#[test]
fn route_permissions_bound_the_interest_told_and_taken_and_the_messages_sent() {
    use crate::auth::{Permissions, SubjectPermission};
    let mut o = opts(0, "C1", &[]);
    o.cluster.as_mut().unwrap().permissions = Some(Permissions {
        // import: what S0 tells routes it wants.
        publish: Some(SubjectPermission {
            allow: Some(vec!["in.>".into()]),
            deny: Vec::new(),
        }),
        // export: what S0 takes interest in from routes, and sends them.
        subscribe: Some(SubjectPermission {
            allow: None,
            deny: vec!["secret.>".into()],
        }),
        response: None,
    });
    let mut net = Net::new(vec![o, opts(1, "C1", &[0])]);
    assert_eq!(net.routes(0), ["S1"]);
    let on0 = net.client(0);
    net.send(0, on0, b"SUB in.a 1\r\nSUB out.a 2\r\n");
    let on1 = net.client(1);
    net.send(1, on1, b"PUB in.a 1\r\nx\r\nPUB out.a 1\r\ny\r\n");
    // Only the imported subject's interest was told: out.a stays on S1.
    assert_eq!(net.read(0, on0), "MSG in.a 1 1\r\nx\r\n");
    // S1's interest in a denied export is not taken; under a wider
    // subscription, the denied subject's messages still do not go.
    net.send(1, on1, b"SUB secret.x 3\r\nSUB > 4\r\n");
    net.send(0, on0, b"PUB secret.x 1\r\ns\r\nPUB pub.z 1\r\nz\r\n");
    assert_eq!(net.read(1, on1), "MSG pub.z 4 1\r\nz\r\n");
    let heard = &net.servers[0].peer_links()[0].heard;
    assert!(
        heard.contains("$G >") && !heard.contains("$G secret.x"),
        "{heard:?}"
    );
}

#[test]
fn a_leaf_clusters_message_goes_on_a_route_as_lmsg_with_its_origin() {
    use crate::proto::Pub;
    let mut out = Vec::new();
    let plain = Pub {
        subject: b"foo",
        reply: None,
        size_token: b"3",
        header: None,
        payload: b"abc",
    };
    super::encode_origin_routed(&mut out, "LC", "$G", &plain, b"");
    let with = Pub {
        subject: b"bar",
        reply: Some(b"r.1"),
        size_token: b"14",
        header: Some((12, b"12")),
        payload: b"NATS/1.0\r\n\r\nhi",
    };
    super::encode_origin_routed(&mut out, "LC", "$G", &with, b"q1");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "LMSG LC $G foo 0 3\r\nabc\r\nLMSG LC $G bar + r.1 q1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
    );
}
