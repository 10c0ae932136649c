//! The cluster world: two to four servers (the real core each), joined as
//! one cluster of routes, as a hub cluster with leaf nodes, or as two
//! clusters joined by gateways, over the same in-memory links as their
//! clients, stepped through simulated time in one loop, as `world` steps
//! one.
//!
//! Servers dial the routes, leaf node remotes and gateways of their
//! options and each other (gossip) as the
//! runtime driver would: `Action::Dial` is answered with `Event::Dialed`
//! (the target accepts) or `Event::DialFailed` (the target is down: at
//! once; a partition in between: after a timeout). Clients are the
//! single-server world's, each attached to a server of its pool; a client
//! that knows several servers fails over to the next when it loses its
//! own. Faults, beside the clients' own: partitions between servers (both
//! ways, or one way: bytes of one direction are held until the partition
//! ends, and the routes' PING/PONG notice), servers restarting after a
//! while down (a new `Server`, same options, new seed), and a constant
//! clock offset per server.

mod shape;
mod wire;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use natrix_core::proto::Parser;
use natrix_core::server::{Action, ConnId, Event, Listener};
use natrix_core::time::{Instant, Now};
use natrix_core::{Options, Server};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

pub use shape::{LeafDenyPlan, RouteDenyPlan, ServerFault, Shape, Topology};
use shape::{port_of, server_faults, server_options, target_of};
use wire::{Dir, End, Item, Link, Seen, read_route, show};

use crate::check_cluster::{ClusterFacts, ServerView, disagreements};
use crate::client::{MsgIds, SimClient};
use crate::faults::{Fault, FaultMix};
use crate::history::{ClientId, History};
use crate::phases::{Phase, Phases, Setup, count};
use crate::seed;
use crate::world::{Config, Outcome};

/// Bytes a connection's receive side holds before writes to it stop being
/// accepted (a socket buffer).
const WINDOW_BYTES: usize = 64 * 1024;
const MS: u64 = 1_000_000;
/// How often (in server ticks) the world tells a server traffic is quiet.
const QUIET_EVERY_TICKS: u64 = 5;
/// A dial across a partition fails after this (the driver's dial timeout).
const DIAL_TIMEOUT_NS: u64 = 1_000 * MS;
const WALL_EPOCH_NS: u64 = 1_700_000_000_000_000_000;

/// One server of the cluster and what its driver keeps.
struct Node {
    server: Server,
    /// Its lifetime (restarts so far).
    life: u32,
    up: bool,
    opts: Options,
    skew_ns: u64,
    conns: BTreeMap<ConnId, (usize, usize)>,
    tick_at: Option<u64>,
    ticks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Deliver {
        link: usize,
        d: usize,
    },
    Client(ClientId),
    Tick(usize),
    Fault(usize),
    ServerFault(usize),
    HoldEnd {
        client: ClientId,
        to_server: bool,
        to_client: bool,
    },
    SpikeEnd(ClientId),
    SlowEnd(ClientId),
    PairHoldEnd {
        from: usize,
        to: usize,
    },
    ServerUp {
        s: usize,
        life: u32,
    },
    Dial {
        s: usize,
        life: u32,
        conn: ConnId,
        target: usize,
        listener: Listener,
    },
    DialTimeout {
        s: usize,
        life: u32,
        conn: ConnId,
    },
    Heal,
    Settle,
    End,
}

/// One simulated cluster.
pub struct ClusterWorld {
    cfg: Config,
    now: u64,
    seq: u64,
    wakes: BinaryHeap<Reverse<(u64, u64, Wake)>>,
    nodes: Vec<Node>,
    links: Vec<Link>,
    clients: Vec<SimClient>,
    /// Each client's servers, and which of them it tries next.
    pools: Vec<Vec<usize>>,
    pool_at: Vec<usize>,
    net_rng: ChaCha8Rng,
    faults: Vec<(u64, Fault)>,
    server_faults: Vec<(u64, ServerFault)>,
    hold: Vec<(u32, u32)>,
    slow: Vec<u32>,
    spike_ns: Vec<u64>,
    /// Partitions holding the bytes from one server to another.
    pair_hold: Vec<Vec<u32>>,
    latency_max_ns: u64,
    ids: MsgIds,
    history: History,
    phases: Phases,
    trace: Vec<String>,
    hash: u64,
    steps: u64,
    mix: FaultMix,
    counts: BTreeMap<&'static str, u64>,
    facts: ClusterFacts,
    /// When the last leaf node that found a loop may dial again (it waits
    /// 30 s, as nats-server): the servers settle no sooner, once (a loop
    /// found again is not waited for: a planted bug may loop for ever).
    loop_wait_until: u64,
    loop_waited: bool,
}

impl ClusterWorld {
    pub fn new(cfg: Config) -> Self {
        let s = cfg.seed;
        let setup = Setup::draw(s, 5, cfg.faults, cfg.fault_phase_ns);
        let n_clients = setup.clients.len();
        let shape = Shape::draw(s, n_clients);
        let base = Options {
            ping_interval: std::time::Duration::from_secs(1),
            ping_max: 2,
            max_pending: 256 * 1024,
            write_deadline: std::time::Duration::from_secs(2),
            ..Options::default()
        };
        let base = setup.options(base, cfg.mutation);
        let Setup {
            clients,
            mix,
            schedule,
            ..
        } = setup;
        // Restarts here are the servers' own faults.
        let faults: Vec<(u64, Fault)> = schedule
            .into_iter()
            .filter(|(_, f)| !matches!(f, Fault::Restart { .. }))
            .collect();
        let server_faults = if cfg.faults {
            server_faults(s, shape.servers, cfg.fault_phase_ns)
        } else {
            Vec::new()
        };
        let nodes = (0..shape.servers)
            .map(|i| {
                let opts = server_options(&base, i, &shape);
                let skew_ns = shape.skew_ns[i];
                let server = Server::new(
                    opts.clone(),
                    seed::sub_seed(s, "cluster-server", (i as u64) << 16),
                    now_of(0, skew_ns),
                );
                Node {
                    server,
                    life: 0,
                    up: true,
                    opts,
                    skew_ns,
                    conns: BTreeMap::new(),
                    tick_at: None,
                    ticks: 0,
                }
            })
            .collect();
        let mut w = ClusterWorld {
            now: 0,
            seq: 0,
            wakes: BinaryHeap::new(),
            nodes,
            links: Vec::new(),
            pool_at: vec![0; n_clients],
            pools: shape.pools.clone(),
            clients,
            net_rng: seed::rng(s, "net", 0),
            faults,
            server_faults,
            hold: vec![(0, 0); n_clients],
            slow: vec![0; n_clients],
            spike_ns: vec![0; n_clients],
            pair_hold: vec![vec![0; shape.servers]; shape.servers],
            latency_max_ns: mix.latency_max_ns,
            ids: MsgIds::default(),
            history: History::default(),
            phases: Phases::default(),
            trace: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            steps: 0,
            mix,
            counts: BTreeMap::new(),
            loop_wait_until: 0,
            loop_waited: false,
            facts: ClusterFacts {
                servers: shape.servers,
                topology: shape.topology,
                leaf_deny: shape.leaf_deny.clone(),
                route_deny: shape.route_deny.clone(),
                leaf_accounts: base.accounts.len().max(1),
                ..ClusterFacts::default()
            },
            cfg,
        };
        w.note(|| format!("cluster: {shape:?}"));
        if matches!(shape.topology, Topology::Leaf { edge: true, .. }) {
            count(&mut w.counts, "seed: leaf node cluster");
        }
        for i in 0..w.nodes.len() {
            w.listen(i);
        }
        for i in 0..w.faults.len() {
            let at = w.faults[i].0;
            w.wake(at, Wake::Fault(i));
        }
        for i in 0..w.server_faults.len() {
            let at = w.server_faults[i].0;
            w.wake(at, Wake::ServerFault(i));
        }
        for c in 0..n_clients {
            w.wake(0, Wake::Client(c));
        }
        w.wake(w.cfg.fault_phase_ns, Wake::Heal);
        w
    }

    fn wake(&mut self, at: u64, what: Wake) {
        self.seq += 1;
        self.wakes.push(Reverse((at.max(self.now), self.seq, what)));
    }

    fn note(&mut self, text: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>10.3}ms {}", self.now as f64 / 1e6, text());
            self.trace.push(line);
        }
    }

    fn hash_bytes(&mut self, tag: u64, bytes: &[u8]) {
        let mut h = self.hash ^ seed::mix(tag ^ self.now);
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            h = seed::mix(h ^ u64::from_le_bytes(w));
        }
        self.hash = h;
    }

    fn now_at(&self, s: usize) -> Now {
        now_of(self.now, self.nodes[s].skew_ns)
    }

    /// Runs to the end and hands back what happened.
    pub fn run(mut self) -> Outcome {
        while let Some(Reverse((at, _, what))) = self.wakes.pop() {
            self.now = at;
            self.steps += 1;
            self.step(what);
            if self.phases.phase == Phase::Done {
                break;
            }
        }
        self.facts.end = self.views();
        Outcome {
            history: self.history,
            plans: self.clients.iter().map(|c| c.plan.clone()).collect(),
            final_subs: self.phases.final_subs,
            final_responders: self.phases.final_responders,
            converged: self.phases.converged,
            trace: self.trace,
            trace_hash: self.hash,
            steps: self.steps,
            sim_ns: self.now,
            mix: self.mix,
            counts: self.counts,
            js: None,
            cluster: Some(Box::new(self.facts)),
        }
    }

    fn step(&mut self, what: Wake) {
        match what {
            Wake::Deliver { link, d } => self.deliver(link, d),
            Wake::Client(c) => self.client_wake(c),
            Wake::Tick(s) => self.tick(s),
            Wake::Fault(i) => self.fault(i),
            Wake::ServerFault(i) => self.server_fault(i),
            Wake::HoldEnd {
                client,
                to_server,
                to_client,
            } => {
                let h = &mut self.hold[client];
                h.0 = h.0.saturating_sub(u32::from(to_server));
                h.1 = h.1.saturating_sub(u32::from(to_client));
                self.kick_all();
            }
            Wake::SpikeEnd(c) => self.spike_ns[c] = 0,
            Wake::SlowEnd(c) => {
                self.slow[c] = self.slow[c].saturating_sub(1);
                self.kick_all();
            }
            Wake::PairHoldEnd { from, to } => {
                self.pair_hold[from][to] = self.pair_hold[from][to].saturating_sub(1);
                self.note(|| format!("partition S{from} -> S{to} ends"));
                self.kick_all();
            }
            Wake::ServerUp { s, life } => self.server_up(s, life),
            Wake::Dial {
                s,
                life,
                conn,
                target,
                listener,
            } => self.dial(s, life, conn, target, listener),
            Wake::DialTimeout { s, life, conn } => {
                if self.nodes[s].life == life && self.nodes[s].up {
                    let now = self.now_at(s);
                    let failed = Event::DialFailed {
                        conn,
                        error: "i/o timeout",
                    };
                    self.nodes[s].server.handle(now, failed);
                    self.drain(s);
                }
            }
            Wake::Heal => self.heal(),
            Wake::Settle => self.settle(),
            // A leaf node that failed over may find a loop that is not
            // there (its old hub's interest in its loop detection subject,
            // held by a route that has not noticed yet): the settling
            // waits out its 30 s.
            Wake::End
                if self.phases.phase == Phase::Settling
                    && !self.loop_waited
                    && self.now < self.loop_wait_until + self.cfg.final_bound_ns =>
            {
                self.loop_waited = true;
                self.wake(self.loop_wait_until + self.cfg.final_bound_ns, Wake::End);
            }
            Wake::End => self.phases.phase = Phase::Done,
        }
    }

    // ---- the network -----------------------------------------------------

    fn latency(&mut self, link: usize) -> u64 {
        let base = u64::from(self.net_rng.next_u32()) % self.latency_max_ns.max(1);
        let spike = match self.links[link].ends {
            [End::Client(c), _] => self.spike_ns[c],
            _ => 0,
        };
        base + spike
    }

    /// Whether the bytes toward `ends[d]` of `link` are held.
    fn held(&self, link: usize, d: usize) -> bool {
        let l = &self.links[link];
        match (l.ends[d], l.ends[1 - d]) {
            (End::Client(c), _) => self.hold[c].1 > 0 || self.slow[c] > 0,
            (End::Server { .. }, End::Client(c)) => self.hold[c].0 > 0,
            (End::Server { s: to, .. }, End::Server { s: from, .. }) => {
                self.pair_hold[from][to] > 0
            }
        }
    }

    fn push(&mut self, link: usize, d: usize, item: Item) {
        let lat = self.latency(link);
        let now = self.now;
        let dir = &mut self.links[link].dirs[d];
        let ready = (now + lat).max(dir.last_ready);
        dir.last_ready = ready;
        if let Item::Bytes(b) = &item {
            dir.bytes += b.len();
        }
        dir.queue.push_back((ready, item));
        self.schedule(link, d);
    }

    /// Reads what arrives at a server from another: messages (for
    /// `one-hop` and `no-loop`) and plain interest (for `no-silent-gaps`).
    fn tap(&mut self, link: usize, d: usize, bytes: &[u8]) {
        let l = &mut self.links[link];
        let (Some(to), Some(from)) = (l.ends[d].server(), l.ends[1 - d].server()) else {
            return;
        };
        let Some((kind, taps)) = l.taps.as_mut() else {
            return;
        };
        let kind = *kind;
        let (facts, now) = (&mut self.facts, self.now);
        let readable = read_route(&mut taps[d], kind, bytes, |seen| match seen {
            Seen::Routed(m) => facts.routed.push((m, from, to, kind)),
            Seen::Interest { key, plus } => {
                let events = facts.interest_events.entry((from, to, key));
                events.or_default().push((now, plus));
            }
        });
        if !readable {
            // Nothing after a parse error can be read; the server closes
            // the route for the same reason.
            l.taps = None;
        }
    }

    fn schedule(&mut self, link: usize, d: usize) {
        if self.held(link, d) {
            return;
        }
        let dir = &mut self.links[link].dirs[d];
        if dir.scheduled {
            return;
        }
        if let Some(&(ready, _)) = dir.queue.front() {
            dir.scheduled = true;
            self.wake(ready, Wake::Deliver { link, d });
        }
    }

    fn kick_all(&mut self) {
        for link in 0..self.links.len() {
            self.schedule(link, 0);
            self.schedule(link, 1);
        }
    }

    fn deliver(&mut self, link: usize, d: usize) {
        self.links[link].dirs[d].scheduled = false;
        if self.held(link, d) {
            return;
        }
        let paused = self.links[link].paused_until[d];
        if paused > self.now {
            self.links[link].dirs[d].scheduled = true;
            self.wake(paused, Wake::Deliver { link, d });
            return;
        }
        loop {
            let now = self.now;
            let dir = &mut self.links[link].dirs[d];
            match dir.queue.front() {
                Some(&(ready, _)) if ready <= now => {}
                _ => break,
            }
            let (_, item) = dir.queue.pop_front().expect("front exists");
            if let Item::Bytes(b) = &item {
                dir.bytes -= b.len();
            }
            match self.links[link].ends[d] {
                End::Client(_) => self.arrive_at_client(link, d, item),
                End::Server { .. } => self.arrive_at_server(link, d, item),
            }
        }
        // The window toward `d` has room again: a blocked sender goes on.
        let l = &mut self.links[link];
        let sender = 1 - d;
        if l.blocked[sender] && l.dirs[d].bytes < WINDOW_BYTES && !l.gone[sender] {
            l.blocked[sender] = false;
            if let End::Server { s, conn, life } = l.ends[sender]
                && self.nodes[s].life == life
            {
                self.transmit(s, conn);
                self.drain(s);
            }
        }
        self.schedule(link, d);
    }

    fn arrive_at_server(&mut self, link: usize, d: usize, item: Item) {
        let l = &self.links[link];
        let End::Server { s, conn, life } = l.ends[d] else {
            return;
        };
        if l.gone[d] || self.nodes[s].life != life || !self.nodes[s].up {
            return;
        }
        let now = self.now_at(s);
        match item {
            Item::Bytes(b) => {
                self.tap(link, d, &b);
                self.hash_bytes(1 + (link as u64) * 2 + d as u64, &b);
                self.note(|| format!("link {link} -> S{s}: {}", show(&b)));
                self.nodes[s]
                    .server
                    .handle(now, Event::Received { conn, bytes: &b });
            }
            Item::Eof => {
                self.note(|| format!("link {link} -> S{s}: EOF"));
                self.end_gone(link, d);
                self.nodes[s].server.handle(now, Event::Closed { conn });
            }
        }
        self.drain(s);
    }

    /// End `d` of `link` leaves it: a server's end forgets the connection,
    /// and a route's end is a route dropped.
    fn end_gone(&mut self, link: usize, d: usize) {
        let l = &mut self.links[link];
        l.gone[d] = true;
        if let End::Server { s, conn, .. } = l.ends[d] {
            self.nodes[s].conns.remove(&conn);
            if let End::Server { s: other, .. } = l.ends[1 - d] {
                self.facts.route_drops.push((self.now, s, other));
            }
        }
    }

    fn arrive_at_client(&mut self, link: usize, d: usize, item: Item) {
        let End::Client(client) = self.links[link].ends[d] else {
            return;
        };
        if self.links[link].gone[d] {
            return;
        }
        match item {
            Item::Bytes(b) => {
                self.hash_bytes(1_000_000 + link as u64, &b);
                self.note(|| format!("server -> c{client}: {}", show(&b)));
                let out =
                    self.clients[client].on_bytes(self.now, &b, &mut self.ids, &mut self.history);
                if !out.send.is_empty() {
                    self.push(link, 1 - d, Item::Bytes(out.send));
                }
            }
            Item::Eof => {
                self.note(|| format!("server -> c{client}: EOF"));
                self.links[link].gone[d] = true;
                self.client_lost(client, false);
            }
        }
    }

    // ---- the servers' side (the driver) -----------------------------------

    fn listen(&mut self, s: usize) {
        let now = self.now_at(s);
        let opts = &self.nodes[s].opts;
        let listeners = [
            (Listener::Client, true),
            (Listener::Route, opts.cluster.is_some()),
            (
                Listener::Leaf,
                opts.leafnodes.as_ref().is_some_and(|l| l.port.is_some()),
            ),
            (Listener::Gateway, opts.gateway.is_some()),
        ];
        for (listener, on) in listeners {
            if on {
                let port = port_of(listener);
                self.nodes[s]
                    .server
                    .handle(now, Event::Listening { listener, port });
            }
        }
        self.drain(s);
    }

    fn transmit(&mut self, s: usize, conn: ConnId) {
        let Some(&(link, side)) = self.nodes[s].conns.get(&conn) else {
            return;
        };
        let d = 1 - side;
        if self.links[link].dirs[d].bytes >= WINDOW_BYTES {
            self.links[link].blocked[side] = true;
            return;
        }
        let mut buf = Vec::new();
        self.nodes[s].server.take_outbound(conn, &mut buf);
        if buf.is_empty() {
            return;
        }
        let n = buf.len();
        self.push(link, d, Item::Bytes(buf));
        let now = self.now_at(s);
        self.nodes[s]
            .server
            .handle(now, Event::Written { conn, bytes: n });
    }

    fn drain(&mut self, s: usize) {
        while let Some(a) = self.nodes[s].server.poll_action() {
            match a {
                Action::Transmit { conn } => self.transmit(s, conn),
                Action::Close {
                    conn,
                    reason,
                    flush,
                } => {
                    let Some(&(link, side)) = self.nodes[s].conns.get(&conn) else {
                        continue;
                    };
                    if flush {
                        let mut buf = Vec::new();
                        self.nodes[s].server.take_outbound(conn, &mut buf);
                        if !buf.is_empty() {
                            self.push(link, 1 - side, Item::Bytes(buf));
                        }
                    }
                    count(&mut self.counts, reason.as_str());
                    self.note(|| format!("S{s} closes link {link}: {}", reason.as_str()));
                    self.end_gone(link, side);
                    self.push(link, 1 - side, Item::Eof);
                    let now = self.now_at(s);
                    self.nodes[s].server.handle(now, Event::Closed { conn });
                }
                Action::Pause { conn, until } => {
                    if let Some(&(link, side)) = self.nodes[s].conns.get(&conn) {
                        let skew = self.nodes[s].skew_ns;
                        self.links[link].paused_until[side] = until.as_nanos().saturating_sub(skew);
                        count(&mut self.counts, "publisher stalls");
                    }
                }
                Action::Resume { conn } => {
                    if let Some(&(link, side)) = self.nodes[s].conns.get(&conn) {
                        self.links[link].paused_until[side] = 0;
                        self.schedule(link, side);
                    }
                }
                Action::Log { level, message } => {
                    if message.contains("Loop detected for leafnode") {
                        self.loop_wait_until = self.loop_wait_until.max(self.now + 30_000 * MS);
                    }
                    self.note(|| format!("S{s} log {level:?}: {message}"));
                }
                Action::Dial { conn, addr } => {
                    let target = target_of(&addr, self.nodes.len());
                    if let Some((t, Listener::Leaf)) = target
                        && self.facts.topology.hub_of(s) != Some(t)
                    {
                        count(&mut self.counts, "leaf node dials another hub server");
                    }
                    let life = self.nodes[s].life;
                    let lat = u64::from(self.net_rng.next_u32()) % self.latency_max_ns.max(1);
                    self.note(|| format!("S{s} dials {addr}"));
                    match target {
                        Some((target, listener)) => self.wake(
                            self.now + lat,
                            Wake::Dial {
                                s,
                                life,
                                conn,
                                target,
                                listener,
                            },
                        ),
                        // Nobody there: refused.
                        None => self.wake(self.now + lat, Wake::DialTimeout { s, life, conn }),
                    }
                }
                Action::StopAccepting | Action::Exit => {
                    unreachable!("the cluster world never enters lame duck mode")
                }
                Action::StartTls { .. } => {
                    unreachable!("the simulated servers are not configured for TLS")
                }
                Action::Reloaded { .. } => unreachable!("the simulation never reloads"),
                Action::Storage(_) => unreachable!("the cluster world runs no JetStream"),
            }
        }
        let skew = self.nodes[s].skew_ns;
        if let Some(d) = self.nodes[s].server.next_deadline().map(Instant::as_nanos) {
            let d = d.saturating_sub(skew);
            if self.nodes[s].tick_at.is_none_or(|t| d < t) {
                self.nodes[s].tick_at = Some(d);
                self.wake(d, Wake::Tick(s));
            }
        }
    }

    fn tick(&mut self, s: usize) {
        if self.nodes[s].tick_at.is_some_and(|t| t <= self.now) {
            self.nodes[s].tick_at = None;
        }
        if !self.nodes[s].up {
            return;
        }
        let now = self.now_at(s);
        self.nodes[s].server.handle(now, Event::Tick);
        self.nodes[s].ticks += 1;
        if self.nodes[s].ticks.is_multiple_of(QUIET_EVERY_TICKS) {
            self.nodes[s].server.handle(now, Event::Quiet);
        }
        self.drain(s);
    }

    /// A dial from server `s` reaches `target`'s `listener`: it accepts,
    /// unless it is down or does not listen there (refused at once) or a
    /// partition is in between (a timeout).
    fn dial(&mut self, s: usize, life: u32, conn: ConnId, target: usize, listener: Listener) {
        if self.nodes[s].life != life || !self.nodes[s].up {
            return;
        }
        let opts = &self.nodes[target].opts;
        let listens = match listener {
            Listener::Route => opts.cluster.is_some(),
            Listener::Leaf => opts.leafnodes.as_ref().is_some_and(|l| l.port.is_some()),
            Listener::Gateway => opts.gateway.is_some(),
            Listener::Client => true,
        };
        if !self.nodes[target].up || !listens {
            self.note(|| format!("S{s}'s dial to S{target} is refused"));
            let now = self.now_at(s);
            let failed = Event::DialFailed {
                conn,
                error: "connection refused",
            };
            self.nodes[s].server.handle(now, failed);
            self.drain(s);
            return;
        }
        if self.pair_hold[s][target] > 0 || self.pair_hold[target][s] > 0 {
            self.wake(
                self.now + DIAL_TIMEOUT_NS,
                Wake::DialTimeout { s, life, conn },
            );
            return;
        }
        let accepted = self.nodes[target].server.next_conn_id();
        let link = self.links.len();
        self.links.push(Link {
            ends: [
                End::Server { s, conn, life },
                End::Server {
                    s: target,
                    conn: accepted,
                    life: self.nodes[target].life,
                },
            ],
            dirs: [Dir::default(), Dir::default()],
            gone: [false, false],
            blocked: [false, false],
            paused_until: [0, 0],
            taps: Some((listener, Box::new([Parser::new(), Parser::new()]))),
        });
        self.nodes[s].conns.insert(conn, (link, 0));
        self.nodes[target].conns.insert(accepted, (link, 1));
        self.note(|| format!("S{s} dials S{target}: link {link}"));
        let peer = core::net::SocketAddr::from(([127, 0, 0, s as u8 + 1], 50_000 + s as u16));
        let now = self.now_at(target);
        self.nodes[target].server.handle(
            now,
            Event::Accepted {
                conn: accepted,
                listener,
                peer,
            },
        );
        self.drain(target);
        let port = port_of(listener);
        let to = core::net::SocketAddr::from(([127, 0, 0, target as u8 + 1], port));
        let now = self.now_at(s);
        self.nodes[s]
            .server
            .handle(now, Event::Dialed { conn, peer: to });
        self.drain(s);
    }

    // ---- clients -----------------------------------------------------------

    fn client_link(&self, c: ClientId) -> Option<usize> {
        self.clients[c].link()
    }

    fn schedule_client(&mut self, c: ClientId) {
        if let Some(at) = self.clients[c].reconnect_at {
            self.wake(at, Wake::Client(c));
        }
    }

    /// The client lost its server: it tries the next one it knows.
    fn client_lost(&mut self, c: ClientId, crashed: bool) {
        self.clients[c].lost(self.now, crashed, &mut self.history);
        self.pool_at[c] = (self.pool_at[c] + 1) % self.pools[c].len();
        self.schedule_client(c);
    }

    fn client_wake(&mut self, c: ClientId) {
        let now = self.now;
        if self.client_link(c).is_none() {
            if self.clients[c].reconnect_at.is_some_and(|t| t <= now) {
                let s = self.pools[c][self.pool_at[c]];
                if self.nodes[s].up {
                    self.connect(c, s);
                } else {
                    self.note(|| format!("c{c} is refused: S{s} is down"));
                    self.clients[c].refused(now);
                    self.pool_at[c] = (self.pool_at[c] + 1) % self.pools[c].len();
                    self.schedule_client(c);
                }
            }
            return;
        }
        let (send, next) = if self.phases.phase == Phase::Faults {
            self.clients[c].work(now, &mut self.ids, &mut self.history)
        } else {
            self.clients[c].quiet_work(now, &mut self.ids, &mut self.history)
        };
        if let Some(link) = self.client_link(c)
            && !send.is_empty()
        {
            self.push(link, 1, Item::Bytes(send));
        }
        let next = match next {
            Some(next) => next,
            None if self.phases.phase == Phase::Faults => now + 50 * MS,
            None => return,
        };
        self.wake(next.max(now + MS), Wake::Client(c));
    }

    fn connect(&mut self, c: ClientId, s: usize) {
        let peer =
            core::net::SocketAddr::from(([10, 0, 0, (c % 250) as u8 + 1], 40_000 + c as u16));
        let conn = self.nodes[s].server.next_conn_id();
        let link = self.links.len();
        self.links.push(Link {
            ends: [
                End::Client(c),
                End::Server {
                    s,
                    conn,
                    life: self.nodes[s].life,
                },
            ],
            dirs: [Dir::default(), Dir::default()],
            gone: [false, false],
            blocked: [false, false],
            paused_until: [0, 0],
            taps: None,
        });
        self.nodes[s].conns.insert(conn, (link, 1));
        self.clients[c].opened(link);
        let epoch = self.clients[c].epoch;
        self.facts.conn_server.insert((c, epoch), s);
        self.note(|| format!("c{c} connects to S{s} (link {link})"));
        let now = self.now_at(s);
        self.nodes[s].server.handle(
            now,
            Event::Accepted {
                conn,
                listener: Listener::Client,
                peer,
            },
        );
        self.drain(s);
        self.wake(self.now + 10 * MS, Wake::Client(c));
    }

    // ---- faults and phases -------------------------------------------------

    fn fault(&mut self, i: usize) {
        if self.phases.phase != Phase::Faults {
            return;
        }
        let f = self.faults[i].1;
        let kind = match f {
            Fault::Partition {
                to_server: true,
                to_client: true,
                ..
            } => "fault: partition",
            Fault::Partition { .. } => "fault: one-way partition",
            Fault::LatencySpike { .. } => "fault: latency spike",
            Fault::Crash { .. } => "fault: client crash mid-message",
            Fault::SlowReader { .. } => "fault: slow reader",
            Fault::Restart { .. } => return,
        };
        count(&mut self.counts, kind);
        self.note(|| format!("fault: {f:?}"));
        match f {
            Fault::Partition {
                client,
                to_server,
                to_client,
                for_ns,
            } => {
                self.hold[client].0 += u32::from(to_server);
                self.hold[client].1 += u32::from(to_client);
                let end = Wake::HoldEnd {
                    client,
                    to_server,
                    to_client,
                };
                self.wake(self.now + for_ns, end);
            }
            Fault::LatencySpike {
                client,
                extra_ns,
                for_ns,
            } => {
                self.spike_ns[client] = extra_ns;
                self.wake(self.now + for_ns, Wake::SpikeEnd(client));
            }
            Fault::SlowReader { client, for_ns } => {
                self.slow[client] += 1;
                self.wake(self.now + for_ns, Wake::SlowEnd(client));
            }
            Fault::Crash { client } => self.crash(client),
            Fault::Restart { .. } => {}
        }
    }

    fn server_fault(&mut self, i: usize) {
        if self.phases.phase != Phase::Faults {
            return;
        }
        let f = self.server_faults[i].1;
        self.note(|| format!("fault: {f:?}"));
        match f {
            ServerFault::Partition { a, b, both, for_ns } => {
                count(
                    &mut self.counts,
                    if both {
                        "fault: server partition"
                    } else {
                        "fault: one-way server partition"
                    },
                );
                let mut ways = vec![(a, b)];
                if both {
                    ways.push((b, a));
                }
                for (from, to) in ways {
                    self.pair_hold[from][to] += 1;
                    self.wake(self.now + for_ns, Wake::PairHoldEnd { from, to });
                }
            }
            ServerFault::Restart { server, down_ns } => {
                if !self.nodes[server].up {
                    return;
                }
                count(&mut self.counts, "fault: server restart");
                self.server_down(server);
                let life = self.nodes[server].life;
                self.wake(self.now + down_ns, Wake::ServerUp { s: server, life });
            }
        }
    }

    fn crash(&mut self, c: ClientId) {
        let Some(link) = self.client_link(c) else {
            return;
        };
        if let Some(frame) = self.clients[c].crash_frame(self.now, &mut self.ids, &mut self.history)
        {
            let cut = 1 + (self.net_rng.next_u32() as usize) % (frame.len() - 1);
            self.push(link, 1, Item::Bytes(frame[..cut].to_vec()));
        }
        self.push(link, 1, Item::Eof);
        self.links[link].gone[0] = true;
        self.client_lost(c, true);
    }

    /// Server `s`'s process dies: every connection it had ends (its peers
    /// see EOF), and it stays down until [`Self::server_up`].
    fn server_down(&mut self, s: usize) {
        let now = self.now_at(s);
        self.nodes[s].server.handle(now, Event::Shutdown);
        while self.nodes[s].server.poll_action().is_some() {}
        let conns: Vec<(usize, usize)> = self.nodes[s].conns.values().copied().collect();
        for (link, side) in conns {
            if !self.links[link].gone[side] {
                self.end_gone(link, side);
                self.push(link, 1 - side, Item::Eof);
            }
        }
        self.nodes[s].conns.clear();
        self.nodes[s].life += 1;
        self.nodes[s].up = false;
        self.nodes[s].tick_at = None;
    }

    /// A new process of server `s` starts (same options, new seed).
    fn server_up(&mut self, s: usize, life: u32) {
        if self.nodes[s].up || self.nodes[s].life != life {
            return;
        }
        self.note(|| format!("S{s} starts again"));
        let seed = seed::sub_seed(
            self.cfg.seed,
            "cluster-server",
            ((s as u64) << 16) | u64::from(life),
        );
        let now = self.now_at(s);
        self.nodes[s].server = Server::new(self.nodes[s].opts.clone(), seed, now);
        self.nodes[s].up = true;
        self.nodes[s].ticks = 0;
        self.listen(s);
    }

    fn heal(&mut self) {
        self.note(|| "faults heal".to_string());
        for row in &mut self.pair_hold {
            row.fill(0);
        }
        for s in 0..self.nodes.len() {
            let life = self.nodes[s].life;
            self.server_up(s, life);
        }
        let pings = self.phases.heal(self.now, &mut self.clients);
        for (c, ping) in pings.into_iter().enumerate() {
            self.hold[c] = (0, 0);
            self.slow[c] = 0;
            self.spike_ns[c] = 0;
            if let Some(link) = self.client_link(c)
                && !ping.is_empty()
            {
                self.push(link, 1, Item::Bytes(ping));
            }
        }
        self.kick_all();
        self.wake(self.now, Wake::Settle);
        self.wake(self.now + self.cfg.settle_bound_ns, Wake::End);
    }

    /// Each server's view of the cluster.
    fn views(&self) -> Vec<ServerView> {
        self.nodes
            .iter()
            .map(|n| ServerView {
                server_id: n.server.server_id().to_string(),
                links: n.server.peer_links(),
            })
            .collect()
    }

    fn settle(&mut self) {
        if self.phases.phase != Phase::Settling {
            return;
        }
        for c in 0..self.clients.len() {
            if self.clients[c].is_stale(self.now) {
                self.note(|| format!("c{c} gives up on a dead connection"));
                if let Some(link) = self.client_link(c) {
                    self.push(link, 1, Item::Eof);
                    self.links[link].gone[0] = true;
                }
                self.client_lost(c, false);
            }
        }
        // The final round waits for the servers too: a full mesh whose
        // views of each other's interest agree.
        let together =
            disagreements(&self.views(), self.facts.topology, self.facts.leaf_accounts).is_empty();
        if !together
            || !self
                .phases
                .try_final(self.now, &self.clients, &mut self.history)
        {
            self.wake(self.now + 20 * MS, Wake::Settle);
            return;
        }
        self.note(|| "final round".to_string());
        for c in 0..self.clients.len() {
            let send = self.clients[c].final_round(self.now, &mut self.ids, &mut self.history);
            if !send.is_empty() {
                let link = self.client_link(c).expect("settled clients are connected");
                self.push(link, 1, Item::Bytes(send));
            }
        }
        self.wakes.retain(|Reverse((_, _, w))| *w != Wake::End);
        self.wake(self.now + self.cfg.final_bound_ns, Wake::End);
    }
}

fn now_of(ns: u64, skew_ns: u64) -> Now {
    Now::new(
        Instant::from_nanos(ns + skew_ns),
        WALL_EPOCH_NS + ns + skew_ns,
    )
}

/// Runs one seed in the cluster world and checks it.
pub fn run_seed_cluster(cfg: Config) -> crate::run::SeedResult {
    let seed = cfg.seed;
    crate::phases::result(seed, ClusterWorld::new(cfg).run(), Vec::new())
}
