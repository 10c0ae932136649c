//! The lock-step harness: one `Server` (the real core), simulated clients,
//! and an in-memory network, stepped through simulated time in one loop.
//! No tokio, no sockets, no clock: a run is a pure function of its seed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use natrix_core::config::{JetStreamOptions, Mutation};
use natrix_core::server::{Action, ConnId, Event};
use natrix_core::time::{Instant, Now};
use natrix_core::{Options, Server};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::check_consumer;
use crate::check_js::{self, JsOutcome, Snapshot};
use crate::client::{MsgIds, Plan, SimClient, SubPlan};
use crate::faults::{Fault, FaultMix};
use crate::history::{ClientId, Ev, History};
pub use crate::phases::Phase;
use crate::phases::{Phases, Setup, count};
use crate::seed;
use crate::storage::{SimStorage, SimStorageConfig};

/// Bytes a connection's receive side holds before the server's writes stop
/// being accepted (a socket buffer).
const WINDOW_BYTES: usize = 64 * 1024;
const MS: u64 = 1_000_000;
/// How often (in server ticks) the world tells the server traffic is quiet.
const QUIET_EVERY_TICKS: u64 = 5;

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Faults are injected during `[0, fault_phase_ns)`.
    pub fault_phase_ns: u64,
    /// After faults heal, every client must be back within this.
    pub settle_bound_ns: u64,
    /// The final round must be fully delivered within this.
    pub final_bound_ns: u64,
    /// Record a readable trace (slower).
    pub trace: bool,
    /// Inject faults (off: the same workload on a healthy network).
    pub faults: bool,
    /// Test-only: a bug for the core to plant (the mutation suite).
    pub mutation: Option<Mutation>,
    /// Run the server with JetStream over simulated storage, with the
    /// JetStream workload and its checkers (in half the seeds).
    pub jetstream: bool,
    /// Also check the invariants the core does not keep yet
    /// (`check_js::PENDING`).
    pub pending_checks: bool,
}

impl Config {
    pub fn new(seed: u64) -> Self {
        Config {
            seed,
            fault_phase_ns: 8_000 * MS,
            settle_bound_ns: 15_000 * MS,
            final_bound_ns: 3_000 * MS,
            trace: false,
            faults: true,
            mutation: None,
            jetstream: true,
            pending_checks: false,
        }
    }
}

#[derive(Debug)]
enum Item {
    Bytes(Vec<u8>),
    Eof,
}

#[derive(Debug, Default)]
struct Dir {
    queue: VecDeque<(u64, Item)>,
    bytes: usize,
    scheduled: bool,
    last_ready: u64,
}

#[derive(Debug)]
struct Link {
    client: ClientId,
    conn: ConnId,
    server_gen: u32,
    to_server: Dir,
    to_client: Dir,
    /// The client is gone from this link (crashed or saw EOF).
    client_gone: bool,
    /// The server closed this connection.
    server_gone: bool,
    /// The server has bytes it could not hand over (the window was full).
    blocked: bool,
    /// The server paused reading this connection until then (0: reading).
    paused_until: u64,
}

impl Link {
    /// One direction of the link: toward the server, or toward the client.
    fn dir(&mut self, to_server: bool) -> &mut Dir {
        if to_server {
            &mut self.to_server
        } else {
            &mut self.to_client
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    Deliver {
        link: usize,
        to_server: bool,
    },
    Client(ClientId),
    ServerTick,
    Fault(usize),
    HoldEnd {
        client: ClientId,
        to_server: bool,
        to_client: bool,
    },
    SpikeEnd(ClientId),
    SlowEnd(ClientId),
    /// Simulated storage has a batch to run or a completion to deliver.
    Storage,
    Heal,
    Settle,
    End,
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    pub history: History,
    pub plans: Vec<Plan>,
    /// Live subscriptions when the final round began: (client, epoch, sid, plan).
    pub final_subs: Vec<(ClientId, u32, u32, SubPlan)>,
    /// Responders connected and settled when the final round began.
    pub final_responders: Vec<ClientId>,
    pub converged: bool,
    pub trace: Vec<String>,
    pub trace_hash: u64,
    pub steps: u64,
    pub sim_ns: u64,
    pub mix: FaultMix,
    /// What happened, counted: server closes by reason, faults by kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// The JetStream workload's truth from the disk (JetStream runs only).
    pub js: Option<JsOutcome>,
    /// What the cluster world saw of its servers (cluster runs only).
    pub cluster: Option<Box<crate::check_cluster::ClusterFacts>>,
}

/// One simulated world.
pub struct World {
    cfg: Config,
    now: u64,
    seq: u64,
    wakes: BinaryHeap<Reverse<(u64, u64, Wake)>>,
    server: Server,
    server_gen: u32,
    /// False while the server's listener is closed (lame duck mode).
    accepting: bool,
    opts: Options,
    conn_links: BTreeMap<ConnId, usize>,
    links: Vec<Link>,
    clients: Vec<SimClient>,
    net_rng: ChaCha8Rng,
    /// Server ticks so far (every [`QUIET_EVERY_TICKS`]th also says quiet).
    server_ticks: u64,
    faults: Vec<(u64, Fault)>,
    hold: Vec<(u32, u32)>,
    slow: Vec<u32>,
    spike_ns: Vec<u64>,
    latency_max_ns: u64,
    ids: MsgIds,
    history: History,
    phases: Phases,
    trace: Vec<String>,
    hash: u64,
    steps: u64,
    mix: FaultMix,
    /// The earliest server tick already scheduled.
    tick_at: Option<u64>,
    counts: BTreeMap<&'static str, u64>,
    /// The server's disk and storage thread (JetStream runs only). It
    /// outlives the server's restarts, as a disk does.
    storage: Option<SimStorage>,
    /// The earliest storage wake-up already scheduled.
    storage_at: Option<u64>,
    /// The lame duck restart under way ends in a power loss.
    power_loss_on_exit: bool,
    js: Option<JsOutcome>,
}

fn now_of(ns: u64) -> Now {
    Now::new(Instant::from_nanos(ns), 1_700_000_000_000_000_000 + ns)
}

impl World {
    pub fn new(cfg: Config) -> Self {
        let s = cfg.seed;
        let mut setup = Setup::draw(s, 5, cfg.faults, cfg.fault_phase_ns);
        // JetStream runs in half the seeds: the other half keep the core
        // NATS workload's pace.
        let with_jetstream =
            cfg.jetstream && seed::rng(s, "jetstream", 0).next_u32().is_multiple_of(2);
        let js = with_jetstream.then(|| {
            let drawn = setup.join_jetstream(s);
            JsOutcome {
                key: drawn.key,
                snapshots: Vec::new(),
                pending_checks: cfg.pending_checks,
                pulls: drawn.pulls.is_some(),
                max_ack_pending: drawn.pulls.as_ref().and_then(|p| p.max_ack_pending),
                max_deliver: drawn.pulls.as_ref().and_then(|p| p.max_deliver),
                work_queue: drawn.work_queue,
                kv: drawn.kv,
                restored_key: drawn.restored_key,
                restored: Vec::new(),
            }
        });
        let n_clients = setup.clients.len();
        let base = Options {
            host: "127.0.0.1".into(),
            ping_interval: std::time::Duration::from_secs(1),
            ping_max: 2,
            max_pending: 256 * 1024,
            write_deadline: std::time::Duration::from_secs(2),
            lame_duck_duration: std::time::Duration::from_secs(3),
            lame_duck_grace_period: std::time::Duration::from_millis(500),
            ..Options::default()
        };
        let mut opts = setup.options(base, cfg.mutation);
        if js.is_some() {
            opts.jetstream = Some(JetStreamOptions::default());
        }
        let storage = js.is_some().then(|| SimStorage::new(s, storage_config(s)));
        let Setup {
            clients,
            mix,
            schedule: mut faults,
            ..
        } = setup;
        if js.is_some() && cfg.faults {
            faults.extend(power_losses(s, "power", cfg.fault_phase_ns));
            // Seeds with a consumer lose power more often: its progress
            // and what it delivered must survive each one.
            if js.as_ref().is_some_and(|js| js.pulls) {
                faults.extend(power_losses(s, "consumer-power", cfg.fault_phase_ns));
            }
            faults.sort_by_key(|(at, _)| *at);
        }
        let server = Server::new(opts.clone(), seed::sub_seed(s, "server", 0), now_of(0));
        let mut w = World {
            now: 0,
            seq: 0,
            wakes: BinaryHeap::new(),
            server,
            server_gen: 0,
            accepting: true,
            opts,
            conn_links: BTreeMap::new(),
            links: Vec::new(),
            net_rng: seed::rng(s, "net", 0),
            server_ticks: 0,
            hold: vec![(0, 0); n_clients],
            slow: vec![0; n_clients],
            spike_ns: vec![0; n_clients],
            latency_max_ns: mix.latency_max_ns,
            faults,
            clients,
            ids: MsgIds::default(),
            history: History::default(),
            phases: Phases::default(),
            trace: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            steps: 0,
            mix,
            tick_at: None,
            counts: BTreeMap::new(),
            storage,
            storage_at: None,
            power_loss_on_exit: false,
            js,
            cfg,
        };
        // JetStream looks for its streams on disk first.
        w.drain_server();
        for i in 0..w.faults.len() {
            let at = w.faults[i].0;
            w.wake(at, Wake::Fault(i));
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
        // The end of the run is one more power loss: every acknowledged
        // message must survive it.
        if self.storage.is_some() {
            self.power_loss("the end of the run (a power loss)");
        }
        for e in &self.history.entries {
            match e.ev {
                Ev::JsAck(_) => count(&mut self.counts, "js: acks"),
                Ev::JsError { .. } => count(&mut self.counts, "js: errors"),
                Ev::JsRestored { .. } => count(&mut self.counts, "js: restores confirmed"),
                Ev::Part(_) => count(&mut self.counts, "group: events"),
                Ev::Prio(_) => count(&mut self.counts, "priority: events"),
                _ => {}
            }
        }
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
            js: self.js,
            cluster: None,
        }
    }

    fn step(&mut self, what: Wake) {
        match what {
            Wake::Deliver { link, to_server } => self.deliver(link, to_server),
            Wake::Client(c) => self.client_wake(c),
            Wake::ServerTick => {
                if self.tick_at.is_some_and(|t| t <= self.now) {
                    self.tick_at = None;
                }
                self.server.handle(now_of(self.now), Event::Tick);
                // Every fifth tick the driver would have seen traffic go
                // quiet: connections let go of their idle buffers, whatever
                // is still queued.
                self.server_ticks += 1;
                if self.server_ticks.is_multiple_of(QUIET_EVERY_TICKS) {
                    self.server.handle(now_of(self.now), Event::Quiet);
                }
                self.drain_server();
            }
            Wake::Fault(i) => self.fault(i),
            Wake::HoldEnd {
                client,
                to_server,
                to_client,
            } => {
                // Healing already released every hold.
                let h = &mut self.hold[client];
                h.0 = h.0.saturating_sub(u32::from(to_server));
                h.1 = h.1.saturating_sub(u32::from(to_client));
                self.note(|| format!("partition of client {client} ends"));
                self.kick_client_links(client);
            }
            Wake::SpikeEnd(c) => self.spike_ns[c] = 0,
            Wake::SlowEnd(c) => {
                self.slow[c] = self.slow[c].saturating_sub(1);
                self.note(|| format!("client {c} reads again"));
                self.kick_client_links(c);
            }
            Wake::Storage => self.storage_wake(),
            Wake::Heal => self.heal(),
            Wake::Settle => self.settle(),
            Wake::End => self.phases.phase = Phase::Done,
        }
    }

    // ---- the network -----------------------------------------------------

    fn latency(&mut self, client: ClientId) -> u64 {
        let base = u64::from(self.net_rng.next_u32()) % self.latency_max_ns.max(1);
        base + self.spike_ns[client]
    }

    fn held(&self, client: ClientId, to_server: bool) -> bool {
        let (s, c) = self.hold[client];
        if to_server {
            s > 0
        } else {
            c > 0 || self.slow[client] > 0
        }
    }

    fn push(&mut self, link: usize, to_server: bool, item: Item) {
        let client = self.links[link].client;
        let lat = self.latency(client);
        let now = self.now;
        let dir = self.links[link].dir(to_server);
        let ready = (now + lat).max(dir.last_ready);
        dir.last_ready = ready;
        if let Item::Bytes(b) = &item {
            dir.bytes += b.len();
        }
        dir.queue.push_back((ready, item));
        self.schedule(link, to_server);
    }

    fn schedule(&mut self, link: usize, to_server: bool) {
        let client = self.links[link].client;
        if self.held(client, to_server) {
            return;
        }
        let dir = self.links[link].dir(to_server);
        if dir.scheduled {
            return;
        }
        if let Some(&(ready, _)) = dir.queue.front() {
            dir.scheduled = true;
            self.wake(ready, Wake::Deliver { link, to_server });
        }
    }

    fn kick_client_links(&mut self, client: ClientId) {
        for link in 0..self.links.len() {
            if self.links[link].client == client {
                self.schedule(link, true);
                self.schedule(link, false);
            }
        }
    }

    fn deliver(&mut self, link: usize, to_server: bool) {
        {
            let dir = self.links[link].dir(to_server);
            dir.scheduled = false;
        }
        let client = self.links[link].client;
        if self.held(client, to_server) {
            return;
        }
        // The server paused reading this connection (a publisher stall).
        let paused = self.links[link].paused_until;
        if to_server && paused > self.now {
            self.links[link].to_server.scheduled = true;
            self.wake(paused, Wake::Deliver { link, to_server });
            return;
        }
        loop {
            let now = self.now;
            let dir = self.links[link].dir(to_server);
            match dir.queue.front() {
                Some(&(ready, _)) if ready <= now => {}
                _ => break,
            }
            let (_, item) = dir.queue.pop_front().expect("front exists");
            if let Item::Bytes(b) = &item {
                dir.bytes -= b.len();
            }
            if to_server {
                self.arrive_at_server(link, item);
            } else {
                self.arrive_at_client(link, item);
            }
        }
        self.schedule(link, to_server);
    }

    fn arrive_at_server(&mut self, link: usize, item: Item) {
        let l = &self.links[link];
        if l.server_gone || l.server_gen != self.server_gen {
            return;
        }
        let (conn, client) = (l.conn, l.client);
        match item {
            Item::Bytes(b) => {
                self.hash_bytes(1 + link as u64, &b);
                self.note(|| format!("c{client} -> server: {}", show(&b)));
                self.server
                    .handle(now_of(self.now), Event::Received { conn, bytes: &b });
            }
            Item::Eof => {
                self.note(|| format!("c{client} -> server: EOF"));
                self.links[link].server_gone = true;
                self.conn_links.remove(&conn);
                self.server.handle(now_of(self.now), Event::Closed { conn });
            }
        }
        self.drain_server();
    }

    fn arrive_at_client(&mut self, link: usize, item: Item) {
        let client = self.links[link].client;
        if self.links[link].client_gone {
            return;
        }
        match item {
            Item::Bytes(b) => {
                self.hash_bytes(1_000_000 + link as u64, &b);
                self.note(|| format!("server -> c{client}: {}", show(&b)));
                let out =
                    self.clients[client].on_bytes(self.now, &b, &mut self.ids, &mut self.history);
                if !out.send.is_empty() {
                    self.push(link, true, Item::Bytes(out.send));
                }
                let l = &mut self.links[link];
                if l.blocked && l.to_client.bytes < WINDOW_BYTES && !l.server_gone {
                    l.blocked = false;
                    let conn = l.conn;
                    self.transmit(conn);
                    self.drain_server();
                }
            }
            Item::Eof => {
                self.note(|| format!("server -> c{client}: EOF"));
                self.links[link].client_gone = true;
                self.clients[client].lost(self.now, false, &mut self.history);
                self.schedule_client(client);
            }
        }
    }

    // ---- the server's side (the driver) -----------------------------------

    fn transmit(&mut self, conn: ConnId) {
        let Some(&link) = self.conn_links.get(&conn) else {
            return;
        };
        if self.links[link].to_client.bytes >= WINDOW_BYTES {
            self.links[link].blocked = true;
            return;
        }
        let mut buf = Vec::new();
        self.server.take_outbound(conn, &mut buf);
        if buf.is_empty() {
            return;
        }
        let n = buf.len();
        self.push(link, false, Item::Bytes(buf));
        self.server
            .handle(now_of(self.now), Event::Written { conn, bytes: n });
    }

    fn drain_server(&mut self) {
        while let Some(a) = self.server.poll_action() {
            match a {
                Action::Transmit { conn } => self.transmit(conn),
                Action::Close {
                    conn,
                    reason,
                    flush,
                } => {
                    let Some(link) = self.conn_links.remove(&conn) else {
                        continue;
                    };
                    if flush {
                        let mut buf = Vec::new();
                        self.server.take_outbound(conn, &mut buf);
                        if !buf.is_empty() {
                            self.push(link, false, Item::Bytes(buf));
                        }
                    }
                    let client = self.links[link].client;
                    count(&mut self.counts, reason.as_str());
                    self.note(|| format!("server closes c{client}: {}", reason.as_str()));
                    self.links[link].server_gone = true;
                    self.push(link, false, Item::Eof);
                    self.server.handle(now_of(self.now), Event::Closed { conn });
                }
                Action::Pause { conn, until } => {
                    if let Some(&link) = self.conn_links.get(&conn) {
                        self.links[link].paused_until = until.as_nanos();
                        count(&mut self.counts, "publisher stalls");
                    }
                }
                Action::Resume { conn } => {
                    if let Some(&link) = self.conn_links.get(&conn) {
                        self.links[link].paused_until = 0;
                        self.schedule(link, true);
                    }
                }
                Action::Log { level, message } => self.note(|| format!("log {level:?}: {message}")),
                Action::StopAccepting => {
                    self.note(|| "server stops accepting".to_string());
                    self.accepting = false;
                }
                Action::StartTls { .. } => {
                    unreachable!("the simulated server is not configured for TLS")
                }
                Action::Exit => {
                    self.note(|| "server exits; restarting it".to_string());
                    self.restart(self.power_loss_on_exit);
                }
                Action::Reloaded { .. } => unreachable!("the simulation never reloads"),
                Action::Dial { .. } => unreachable!("the simulated server has no routes"),
                Action::Storage(op) => {
                    self.note(|| format!("storage <- {}", show(format!("{op:?}").as_bytes())));
                    let storage = self
                        .storage
                        .as_mut()
                        .expect("only a server with JetStream asks for storage");
                    storage.submit(self.now, op);
                }
            }
        }
        self.arm_storage();
        if let Some(d) = self.server.next_deadline().map(Instant::as_nanos)
            && self.tick_at.is_none_or(|t| d < t)
        {
            self.tick_at = Some(d);
            self.wake(d, Wake::ServerTick);
        }
    }

    // ---- clients -----------------------------------------------------------

    fn schedule_client(&mut self, c: ClientId) {
        if let Some(at) = self.clients[c].reconnect_at {
            self.wake(at, Wake::Client(c));
        }
    }

    fn client_wake(&mut self, c: ClientId) {
        let now = self.now;
        let cl = &self.clients[c];
        if cl.link().is_none() {
            if cl.reconnect_at.is_some_and(|t| t <= now) {
                if self.accepting {
                    self.connect(c);
                } else {
                    self.note(|| format!("c{c} is refused: the server is not accepting"));
                    self.clients[c].refused(now);
                    self.schedule_client(c);
                }
            }
            return;
        }
        // After the faults only the JetStream consumer workload goes on.
        let faults = self.phases.phase == Phase::Faults;
        let (send, next) = if faults {
            self.clients[c].work(now, &mut self.ids, &mut self.history)
        } else {
            self.clients[c].quiet_work(now, &mut self.ids, &mut self.history)
        };
        if let Some(link) = self.clients[c].link()
            && !send.is_empty()
        {
            self.push(link, true, Item::Bytes(send));
        }
        // Not connected yet (INFO on its way) or nothing planned: look again later.
        let next = match next {
            Some(next) => next,
            None if faults
                || self.clients[c].pulls()
                || self.clients[c].in_group()
                || self.clients[c].in_priority_group() =>
            {
                now + 50 * MS
            }
            None => return,
        };
        self.wake(next.max(now + MS), Wake::Client(c));
    }

    fn connect(&mut self, c: ClientId) {
        let peer =
            core::net::SocketAddr::from(([10, 0, 0, (c % 250) as u8 + 1], 40_000 + c as u16));
        let conn = self.server.next_conn_id();
        let listener = natrix_core::server::Listener::Client;
        let accepted = Event::Accepted {
            conn,
            listener,
            peer,
        };
        self.server.handle(now_of(self.now), accepted);
        let link = self.links.len();
        self.links.push(Link {
            client: c,
            conn,
            server_gen: self.server_gen,
            to_server: Dir::default(),
            to_client: Dir::default(),
            client_gone: false,
            server_gone: false,
            blocked: false,
            paused_until: 0,
        });
        self.conn_links.insert(conn, link);
        self.clients[c].lifetime = self.server_gen;
        self.clients[c].opened(link);
        self.note(|| format!("c{c} connects (link {link})"));
        self.drain_server();
        // Regular work starts once connected; wake soon to check.
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
            Fault::Restart {
                lame_duck: false,
                power_loss: false,
            } => "fault: server restart",
            Fault::Restart {
                lame_duck: false,
                power_loss: true,
            } => "fault: server restart, power loss",
            Fault::Restart {
                lame_duck: true,
                power_loss: false,
            } => "fault: lame duck, then restart",
            Fault::Restart {
                lame_duck: true,
                power_loss: true,
            } => "fault: lame duck, then restart, power loss",
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
                self.wake(
                    self.now + for_ns,
                    Wake::HoldEnd {
                        client,
                        to_server,
                        to_client,
                    },
                );
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
            Fault::Restart {
                lame_duck: false,
                power_loss,
            } => {
                self.restart(power_loss);
                self.drain_server();
            }
            Fault::Restart {
                lame_duck: true,
                power_loss,
            } => {
                self.power_loss_on_exit = power_loss;
                self.server.handle(now_of(self.now), Event::LameDuck);
                self.drain_server();
            }
        }
    }

    fn crash(&mut self, c: ClientId) {
        let Some(link) = self.clients[c].link() else {
            return;
        };
        if let Some(frame) = self.clients[c].crash_frame(self.now, &mut self.ids, &mut self.history)
        {
            let cut = 1 + (self.net_rng.next_u32() as usize) % (frame.len() - 1);
            self.push(link, true, Item::Bytes(frame[..cut].to_vec()));
        }
        self.push(link, true, Item::Eof);
        self.links[link].client_gone = true;
        self.clients[c].lost(self.now, true, &mut self.history);
        self.schedule_client(c);
    }

    /// The server process restarts; with `power_loss`, the machine loses
    /// power too. Its storage operations and completions die with it.
    fn restart(&mut self, power_loss: bool) {
        self.server.handle(now_of(self.now), Event::Shutdown);
        while self.server.poll_action().is_some() {}
        if power_loss && self.storage.is_some() {
            self.power_loss("a power loss");
        } else if let Some(storage) = self.storage.as_mut() {
            storage.restart();
        }
        self.server_gen += 1;
        self.accepting = true;
        self.server = Server::new(
            self.opts.clone(),
            seed::sub_seed(self.cfg.seed, "server", u64::from(self.server_gen)),
            now_of(self.now),
        );
        self.conn_links.clear();
        for link in 0..self.links.len() {
            if !self.links[link].client_gone {
                self.links[link].server_gone = true;
                self.push(link, false, Item::Eof);
            }
        }
    }

    /// Power loss: the disk keeps what it synced (and a seeded part of the
    /// rest), and what it holds at every acknowledged sequence is read back
    /// for the `acked-durable` checker.
    fn power_loss(&mut self, after: &'static str) {
        let (Some(storage), Some(js)) = (self.storage.as_mut(), self.js.as_mut()) else {
            return;
        };
        count(&mut self.counts, "storage: power losses");
        for r in storage.crash() {
            if r.result.is_err() {
                count(&mut self.counts, "storage: recoveries failed");
            }
        }
        let mut seqs = check_js::acked_seqs(&self.history.entries);
        seqs.extend(check_consumer::delivered_seqs(&self.history.entries));
        seqs.sort_unstable();
        seqs.dedup();
        let msgs = seqs
            .into_iter()
            .map(|seq| (seq, storage.read(&js.key, seq)))
            .collect();
        js.snapshots.push(Snapshot {
            at_ns: self.now,
            after,
            msgs,
        });
        // The restored stream, once a restore was confirmed.
        let restored = self.history.entries.iter().filter_map(|e| match e.ev {
            Ev::JsRestored { last_seq, .. } => Some(last_seq),
            _ => None,
        });
        if let Some(last) = restored.max() {
            let msgs = (1..=last)
                .map(|seq| (seq, storage.read(&js.restored_key, seq)))
                .collect();
            js.restored.push(Snapshot {
                at_ns: self.now,
                after,
                msgs,
            });
        }
        self.note(|| format!("power loss ({after})"));
    }

    // ---- storage -------------------------------------------------------------

    /// Schedules the next storage wake-up if it comes before the one
    /// already scheduled.
    fn arm_storage(&mut self) {
        let Some(at) = self.storage.as_ref().and_then(SimStorage::next_ready_ns) else {
            return;
        };
        if self.storage_at.is_none_or(|t| at < t) {
            self.storage_at = Some(at);
            self.wake(at, Wake::Storage);
        }
    }

    /// Runs the storage batches that are due and hands the server the
    /// completions that are due, one event each.
    fn storage_wake(&mut self) {
        if self.storage_at.is_some_and(|t| t <= self.now) {
            self.storage_at = None;
        }
        let Some(storage) = self.storage.as_mut() else {
            return;
        };
        let done = storage.poll(self.now);
        let generation = self.server_gen;
        for c in &done {
            // A restart (a lame duck exit) drops the rest with the process.
            if self.server_gen != generation {
                break;
            }
            self.note(|| {
                format!(
                    "storage -> {:?} on {}: durable to {}, {}",
                    c.id,
                    c.stream,
                    c.durable_seq,
                    if c.result.is_ok() { "ok" } else { "failed" }
                )
            });
            self.server.handle(now_of(self.now), Event::Storage(c));
            self.drain_server();
        }
        self.arm_storage();
    }

    fn heal(&mut self) {
        self.note(|| "faults heal".to_string());
        let pings = self.phases.heal(self.now, &mut self.clients);
        for (c, ping) in pings.into_iter().enumerate() {
            self.hold[c] = (0, 0);
            self.slow[c] = 0;
            self.spike_ns[c] = 0;
            self.kick_client_links(c);
            if let Some(link) = self.clients[c].link()
                && !ping.is_empty()
            {
                self.push(link, true, Item::Bytes(ping));
            }
        }
        self.wake(self.now, Wake::Settle);
        self.wake(self.now + self.cfg.settle_bound_ns, Wake::End);
    }

    fn settle(&mut self) {
        if self.phases.phase != Phase::Settling {
            return;
        }
        for c in 0..self.clients.len() {
            if self.clients[c].is_stale(self.now) {
                self.note(|| format!("c{c} gives up on a dead connection"));
                if let Some(link) = self.clients[c].link() {
                    self.push(link, true, Item::Eof);
                    self.links[link].client_gone = true;
                }
                self.clients[c].lost(self.now, false, &mut self.history);
                self.schedule_client(c);
            }
        }
        if !self
            .phases
            .try_final(self.now, &self.clients, &mut self.history)
        {
            // Check again soon: clients may still be reconnecting.
            self.wake(self.now + 20 * MS, Wake::Settle);
            return;
        }
        self.note(|| "final round".to_string());
        for c in 0..self.clients.len() {
            let send = self.clients[c].final_round(self.now, &mut self.ids, &mut self.history);
            if !send.is_empty() {
                let link = self.clients[c]
                    .link()
                    .expect("settled clients are connected");
                self.push(link, true, Item::Bytes(send));
            }
        }
        // The End wake scheduled at heal is superseded by this one.
        self.wakes.retain(|Reverse((_, _, w))| *w != Wake::End);
        self.wake(self.now + self.cfg.final_bound_ns, Wake::End);
    }
}

/// How slow and unfair a seed's storage is (swarm, like the fault mix):
/// batches wait up to 0.2, 2 or 20 ms; a fifth or half of them run only a
/// prefix of the queue; in half the seeds, half the batches stop before
/// their first sync (appends complete, the sync waits for the next batch).
fn storage_config(s: u64) -> SimStorageConfig {
    let mut rng = seed::rng(s, "disk", 0);
    SimStorageConfig {
        batch_delay_max_ns: [200_000, 2_000_000, 20_000_000][(rng.next_u32() % 3) as usize],
        split_batch_per_million: [200_000, 500_000][(rng.next_u32() % 2) as usize],
        sync_apart_per_million: [0, 500_000][(rng.next_u32() % 2) as usize],
        ..SimStorageConfig::default()
    }
}

/// Power losses of a JetStream seed, beside its fault mix and drawn apart
/// from it (so the mix draws as before): one to three over `[0, phase_ns)`,
/// drawn from generator `label`.
fn power_losses(s: u64, label: &str, phase_ns: u64) -> Vec<(u64, Fault)> {
    let mut rng = seed::rng(s, label, 0);
    let n = 1 + rng.next_u32() % 3;
    let restart = Fault::Restart {
        lame_duck: false,
        power_loss: true,
    };
    (0..n)
        .map(|_| (u64::from(rng.next_u32()) % phase_ns, restart))
        .collect()
}

/// A readable, bounded rendering of protocol bytes for traces.
fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(160) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > 160 {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}
