//! The turmoil harness: the production driver (`natrix-runtime`'s `serve`,
//! its reader and writer tasks, its batching) runs as a turmoil host around
//! the same core, over turmoil's simulated TCP; the same simulated clients
//! and checkers as the lock-step harness judge it. It is slower than the
//! lock-step harness and covers what that one cannot: the driver itself.
//!
//! Faults here are turmoil's: holds (partitions that delay, never drop, as
//! turmoil's TCP does not retransmit), client crashes mid-message, slow
//! readers and server restarts (`bounce`).
//!
//! Odd seeds run three production drivers as one cluster (hosts `s0`..`s2`,
//! every route configured both ways over turmoil's TCP), each client at
//! home on one server and failing over to the next when it loses it; a
//! restart bounces one of the three. The final round waits three seconds
//! after the clients settle, for the routes and their interest to come
//! back.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use natrix_core::config::Mutation;
use natrix_core::{Options, Server};
use natrix_runtime::driver::{self, Clock, Control, Listener};
use natrix_runtime::logger::Logger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::check;
use crate::client::{MsgIds, SimClient};
use crate::faults::Fault;
use crate::history::{ClientId, Ev, History};
use crate::phases::{Phase, Phases, Setup, count};
use crate::run::SeedResult;
use crate::seed;
use crate::world::Outcome;

const PORT: u16 = 4222;
const ROUTE_PORT: u16 = 6222;
/// Servers of the cluster that odd seeds run.
const CLUSTER_SERVERS: usize = 3;
const EPOCH_SECS: u64 = 1_700_000_000;
const MS: u64 = 1_000_000;

/// turmoil's listener behind the driver's network seam.
struct TurmoilListener(turmoil::net::TcpListener);

impl Listener for TurmoilListener {
    type Stream = turmoil::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }

    async fn dial(addr: String) -> io::Result<(Self::Stream, SocketAddr)> {
        let stream = turmoil::net::TcpStream::connect(addr).await?;
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }
}

/// What the clients and the fault loop share (one thread: `Rc<RefCell>`).
struct Shared {
    clients: Vec<SimClient>,
    ids: MsgIds,
    history: History,
    /// The run's phases, shared with the lock-step harness's code.
    phases: Phases,
    slow: Vec<bool>,
    crash: Vec<bool>,
    final_sent: Vec<bool>,
    /// Bytes the fault loop wants a session to send (the settle PING
    /// after healing).
    pending_out: Vec<Vec<u8>>,
    /// How many servers run, and the one each client talks to or tries
    /// next.
    servers: usize,
    server_at: Vec<usize>,
    /// The server of each client connection, by (client, epoch).
    conn_server: BTreeMap<(ClientId, u32), usize>,
}

/// Server `i`'s host name.
fn host(servers: usize, i: usize) -> String {
    if servers == 1 {
        "server".to_string()
    } else {
        format!("s{i}")
    }
}

/// Server `i`'s options in a cluster of `servers` (none with one).
fn cluster_options(base: &Options, servers: usize, i: usize) -> Options {
    if servers == 1 {
        return base.clone();
    }
    let routes = (0..servers)
        .filter(|&j| j != i)
        .map(|j| {
            natrix_core::config::cluster::RouteUrl::parse(&format!(
                "nats-route://s{j}:{ROUTE_PORT}"
            ))
            .expect("a well-formed route URL")
        })
        .collect();
    Options {
        server_name: format!("S{i}"),
        cluster: Some(natrix_core::config::cluster::ClusterOptions {
            name: "sim".into(),
            host: "0.0.0.0".into(),
            port: ROUTE_PORT,
            routes,
            advertise: Some(format!("s{i}:{ROUTE_PORT}")),
            connect_retries: 60,
            ..Default::default()
        }),
        ..base.clone()
    }
}

fn now_ns() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_nanos() as u64)
}

fn options() -> Options {
    Options {
        host: "0.0.0.0".into(),
        port: PORT,
        ping_interval: Duration::from_secs(1),
        ping_max: 2,
        max_pending: 256 * 1024,
        write_deadline: Duration::from_secs(2),
        lame_duck_duration: Duration::from_secs(3),
        lame_duck_grace_period: Duration::from_millis(500),
        ..Options::default()
    }
}

/// Runs one seed under turmoil and checks it (with `mutation`, a bug
/// planted in the core).
pub fn run_seed_turmoil(
    seed_value: u64,
    faults: bool,
    trace: bool,
    mutation: Option<Mutation>,
) -> SeedResult {
    let fault_phase_ns = 6_000 * MS;
    let servers = if seed_value % 2 == 1 {
        CLUSTER_SERVERS
    } else {
        1
    };
    let setup = Setup::draw(seed_value, 4, faults, fault_phase_ns);
    let server_opts = setup.options(options(), mutation);
    let Setup {
        clients,
        mix,
        schedule,
        ..
    } = setup;
    let n_clients = clients.len();
    let shared = Rc::new(RefCell::new(Shared {
        clients,
        ids: MsgIds::default(),
        history: History::default(),
        phases: Phases::default(),
        slow: vec![false; n_clients],
        crash: vec![false; n_clients],
        final_sent: vec![false; n_clients],
        pending_out: vec![Vec::new(); n_clients],
        servers,
        server_at: (0..n_clients).map(|c| c % servers).collect(),
        conn_server: BTreeMap::new(),
    }));

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed::sub_seed(seed_value, "turmoil", 0))
        .epoch(UNIX_EPOCH + Duration::from_secs(EPOCH_SECS))
        .simulation_duration(Duration::from_secs(120))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_micros(100))
        .max_message_latency(Duration::from_nanos(mix.latency_max_ns.max(200_000)))
        .build();

    // The server host restarts the server in place when asked (a restart
    // that drops every connection in the core's own order: turmoil's host
    // crash drops tasks in an order that depends on tokio's process-wide
    // task ids, which a second run in the same process does not repeat).
    // `Some(lame_duck)` asks for a restart, after lame duck mode if true.
    let restarts: Vec<Rc<RefCell<Option<bool>>>> =
        (0..servers).map(|_| Rc::new(RefCell::new(None))).collect();
    for (i, restart) in restarts.iter().enumerate() {
        let host_restart = Rc::clone(restart);
        let base = cluster_options(&server_opts, servers, i);
        sim.host(host(servers, i), move || {
            let restart = Rc::clone(&host_restart);
            let base = base.clone();
            async move {
                let mut generation = 0u64;
                loop {
                    generation += 1;
                    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                    let routes = match base.cluster {
                        Some(_) => Some(TurmoilListener(
                            turmoil::net::TcpListener::bind(("0.0.0.0", ROUTE_PORT)).await?,
                        )),
                        None => None,
                    };
                    let clock = Clock::simulated(EPOCH_SECS * 1_000_000_000 + now_ns());
                    // NATRIX_SIM_LOG=1 shows the server's own log with debug and
                    // protocol trace lines.
                    let verbose = std::env::var_os("NATRIX_SIM_LOG").is_some();
                    let opts = Options {
                        debug: verbose,
                        trace: verbose,
                        ..base.clone()
                    };
                    let server = Server::new(
                        opts,
                        seed::sub_seed(seed_value, "server", generation | ((i as u64) << 32)),
                        clock.now(),
                    );
                    let logger = if verbose {
                        Logger::stderr(false, true, true)
                    } else {
                        Logger::discard()
                    };
                    let io = driver::ServerIo {
                        monitor: None,
                        tls: None,
                        storage: None,
                        cluster: routes,
                        leaf: None,
                        gateway: None,
                    };
                    let mut running = driver::serve_with_monitor(
                        server,
                        TurmoilListener(listener),
                        "0.0.0.0",
                        io,
                        logger,
                        clock,
                    )?;
                    let lame_duck = loop {
                        if let Some(ld) = restart.borrow_mut().take() {
                            break ld;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    };
                    if lame_duck {
                        // The driver closes its listener, closes the clients
                        // over the lame duck duration, then stops by itself.
                        running.control(Control::LameDuck);
                        running.exited().await;
                    }
                    running.shutdown().await;
                }
            }
        });
    }
    for c in 0..n_clients {
        let shared = Rc::clone(&shared);
        sim.client(format!("c{c}"), async move {
            client_task(c, shared).await;
            Ok(())
        });
    }

    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut next_fault = 0;
    let mut releases: Vec<(u64, Release)> = Vec::new();
    let mut settle_deadline = 0;
    let mut healed_at = 0;
    let mut end_at = u64::MAX;
    let mut steps = 0u64;
    loop {
        let now = sim.elapsed().as_nanos() as u64;
        let phase = shared.borrow().phases.phase;
        match phase {
            Phase::Faults => {
                while next_fault < schedule.len() && schedule[next_fault].0 <= now {
                    let f = schedule[next_fault].1;
                    next_fault += 1;
                    // A restart bounces one server, in turn.
                    let restart = &restarts[next_fault % servers];
                    apply(
                        &mut sim,
                        &shared,
                        restart,
                        f,
                        now,
                        &mut releases,
                        &mut counts,
                    );
                }
                releases.retain(|(at, r)| {
                    if *at <= now {
                        undo(&sim, &shared, r.clone());
                        false
                    } else {
                        true
                    }
                });
                if now >= fault_phase_ns {
                    for (_, r) in releases.drain(..) {
                        undo(&sim, &shared, r);
                    }
                    let mut sh = shared.borrow_mut();
                    let Shared {
                        clients,
                        phases,
                        pending_out,
                        ..
                    } = &mut *sh;
                    *pending_out = phases.heal(now, clients);
                    settle_deadline = now + 15_000 * MS;
                    healed_at = now;
                }
            }
            Phase::Settling => {
                let mut sh = shared.borrow_mut();
                let Shared {
                    clients,
                    history,
                    phases,
                    ..
                } = &mut *sh;
                // A cluster's routes and interest come back after its
                // servers restart: the final round waits for them.
                let routes_back = servers == 1 || now >= healed_at + 3_000 * MS;
                if routes_back && phases.try_final(now, clients, history) {
                    end_at = now + 3_000 * MS;
                } else if now >= settle_deadline {
                    phases.phase = Phase::Done;
                }
            }
            Phase::Final => {
                if now >= end_at {
                    shared.borrow_mut().phases.phase = Phase::Done;
                }
            }
            Phase::Done => {}
        }
        steps += 1;
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                shared.borrow_mut().history.push(
                    now,
                    Ev::Err {
                        client: usize::MAX,
                        epoch: 0,
                        text: format!("turmoil: {e}"),
                    },
                );
                break;
            }
        }
        if shared.borrow().phases.phase == Phase::Done
            && now > end_at.min(settle_deadline.max(fault_phase_ns)) + 200 * MS
        {
            break;
        }
    }
    let sim_ns = sim.elapsed().as_nanos() as u64;
    drop(sim);
    let sh = Rc::try_unwrap(shared)
        .ok()
        .expect("the simulation is dropped")
        .into_inner();
    // Events of different clients in the same millisecond are concurrent:
    // their order can follow tokio's process-wide task ids (a second run in
    // the same process drops a crashed host's tasks in another order), so
    // the hash covers them in a canonical order.
    let mut canonical: Vec<String> = sh
        .history
        .entries
        .iter()
        .map(|e| format!("{:020} {:?}", e.at_ns, e.ev))
        .collect();
    canonical.sort();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for line in &canonical {
        for b in line.bytes() {
            hash = seed::mix(hash ^ u64::from(b));
        }
    }
    // turmoil's own errors (recorded with no client) mean the run broke.
    let extra = sh
        .history
        .entries
        .iter()
        .filter_map(|e| match &e.ev {
            Ev::Err {
                client: usize::MAX,
                text,
                ..
            } => Some(check::Violation {
                invariant: "converges",
                detail: text.clone(),
            }),
            _ => None,
        })
        .collect();
    let trace = if trace {
        sh.history
            .entries
            .iter()
            .map(|e| format!("{:>10.3}ms {:?}", e.at_ns as f64 / 1e6, e.ev))
            .collect()
    } else {
        Vec::new()
    };
    let outcome = Outcome {
        plans: sh.clients.iter().map(|c| c.plan.clone()).collect(),
        history: sh.history,
        final_subs: sh.phases.final_subs,
        final_responders: sh.phases.final_responders,
        converged: sh.phases.converged,
        trace,
        trace_hash: hash,
        steps,
        sim_ns,
        mix,
        counts,
        js: None,
        // In a cluster, which server each connection was made to: messages
        // between two servers may be lost while interest travels (the
        // world reads no route here, so such gaps count as explained).
        cluster: (servers > 1).then(|| {
            Box::new(crate::check_cluster::ClusterFacts {
                servers,
                conn_server: sh.conn_server.clone(),
                ..Default::default()
            })
        }),
    };
    crate::phases::result(seed_value, outcome, extra)
}

/// A fault to undo, with the server host it was between.
#[derive(Debug, Clone)]
enum Release {
    Hold(ClientId, String),
    Slow(ClientId),
    Spike(ClientId, String),
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    shared: &Rc<RefCell<Shared>>,
    restart: &Rc<RefCell<Option<bool>>>,
    f: Fault,
    now: u64,
    releases: &mut Vec<(u64, Release)>,
    counts: &mut BTreeMap<&'static str, u64>,
) {
    let server_of = |c: ClientId| {
        let sh = shared.borrow();
        host(sh.servers, sh.server_at[c])
    };
    match f {
        Fault::Partition { client, for_ns, .. } => {
            count(counts, "fault: hold");
            let server = server_of(client);
            sim.hold(server.as_str(), format!("c{client}"));
            releases.push((now + for_ns, Release::Hold(client, server)));
        }
        Fault::LatencySpike {
            client,
            extra_ns,
            for_ns,
        } => {
            count(counts, "fault: latency spike");
            let server = server_of(client);
            sim.set_link_latency(
                server.as_str(),
                format!("c{client}"),
                Duration::from_nanos(extra_ns),
            );
            releases.push((now + for_ns, Release::Spike(client, server)));
        }
        Fault::SlowReader { client, for_ns } => {
            count(counts, "fault: slow reader");
            shared.borrow_mut().slow[client] = true;
            releases.push((now + for_ns, Release::Slow(client)));
        }
        Fault::Crash { client } => {
            count(counts, "fault: client crash mid-message");
            shared.borrow_mut().crash[client] = true;
        }
        Fault::Restart { lame_duck, .. } => {
            let kind = if lame_duck {
                "fault: lame duck, then restart"
            } else {
                "fault: server restart"
            };
            count(counts, kind);
            *restart.borrow_mut() = Some(lame_duck);
        }
    }
}

fn undo(sim: &turmoil::Sim<'_>, shared: &Rc<RefCell<Shared>>, r: Release) {
    match r {
        Release::Hold(c, server) => sim.release(server.as_str(), format!("c{c}")),
        Release::Slow(c) => shared.borrow_mut().slow[c] = false,
        Release::Spike(c, server) => {
            sim.set_link_latency(server.as_str(), format!("c{c}"), Duration::from_micros(500))
        }
    }
}

/// One simulated client: connect, run a session, reconnect, until done.
async fn client_task(c: ClientId, shared: Rc<RefCell<Shared>>) {
    let mut link = 0usize;
    loop {
        let wait = {
            let sh = shared.borrow();
            if sh.phases.phase == Phase::Done {
                return;
            }
            sh.clients[c]
                .reconnect_at
                .unwrap_or(0)
                .saturating_sub(now_ns())
        };
        if wait > 0 {
            tokio::time::sleep(Duration::from_nanos(wait)).await;
        }
        let (server, target) = {
            let sh = shared.borrow();
            (sh.server_at[c], host(sh.servers, sh.server_at[c]))
        };
        let connected = tokio::time::timeout(
            Duration::from_secs(2),
            turmoil::net::TcpStream::connect((target.as_str(), PORT)),
        )
        .await;
        let Ok(Ok(stream)) = connected else {
            let mut sh = shared.borrow_mut();
            let now = now_ns();
            sh.clients[c].reconnect_at = Some(now + 100 * MS);
            // A client of a cluster tries the next server.
            sh.server_at[c] = (server + 1) % sh.servers;
            continue;
        };
        link += 1;
        {
            let mut sh = shared.borrow_mut();
            sh.clients[c].opened(link);
            let epoch = sh.clients[c].epoch;
            sh.conn_server.insert((c, epoch), server);
            // Bytes meant for the previous connection die with it.
            sh.pending_out[c].clear();
        }
        let crashed = session(c, stream, &shared).await;
        let mut sh = shared.borrow_mut();
        let Shared {
            clients,
            history,
            server_at,
            servers,
            ..
        } = &mut *sh;
        clients[c].lost(now_ns(), crashed, history);
        server_at[c] = (server + 1) % *servers;
    }
}

/// Returns whether the session ended in a crash.
async fn session(
    c: ClientId,
    stream: turmoil::net::TcpStream,
    shared: &Rc<RefCell<Shared>>,
) -> bool {
    let (mut r, mut w) = stream.into_split();
    let mut buf = vec![0u8; 64 * 1024];
    let mut next_work = now_ns();
    loop {
        let (slow, crash, phase, stale, connected) = {
            let sh = shared.borrow();
            (
                sh.slow[c],
                sh.crash[c],
                sh.phases.phase,
                sh.clients[c].is_stale(now_ns()),
                sh.clients[c].is_connected(),
            )
        };
        if phase == Phase::Done || stale {
            return false;
        }
        let pending = std::mem::take(&mut shared.borrow_mut().pending_out[c]);
        if !pending.is_empty() && !write(&mut w, &pending).await {
            return false;
        }
        if crash {
            let frame = {
                let mut sh = shared.borrow_mut();
                sh.crash[c] = false;
                let Shared {
                    clients,
                    ids,
                    history,
                    ..
                } = &mut *sh;
                match clients[c].crash_frame(now_ns(), ids, history) {
                    Some(f) => f,
                    None => return true,
                }
            };
            let _ = write(&mut w, &frame[..frame.len() / 2]).await;
            return true;
        }
        if phase == Phase::Final && connected && !shared.borrow().final_sent[c] {
            let send = final_round(c, shared);
            if !send.is_empty() && !write(&mut w, &send).await {
                return false;
            }
        }
        let tick = Duration::from_nanos(next_work.saturating_sub(now_ns()).clamp(MS, 10 * MS));
        tokio::select! {
            biased;
            read = r.read(&mut buf), if !slow => {
                let n = match read {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => n,
                };
                let out = {
                    let mut sh = shared.borrow_mut();
                    let Shared { clients, ids, history, .. } = &mut *sh;
                    clients[c].on_bytes(now_ns(), &buf[..n], ids, history)
                };
                if !out.send.is_empty() && !write(&mut w, &out.send).await {
                    return false;
                }
            }
            _ = tokio::time::sleep(tick) => {
                if phase != Phase::Faults || now_ns() < next_work {
                    continue;
                }
                let (send, next) = {
                    let mut sh = shared.borrow_mut();
                    let Shared { clients, ids, history, .. } = &mut *sh;
                    clients[c].work(now_ns(), ids, history)
                };
                next_work = next.unwrap_or(now_ns() + 50 * MS);
                if !send.is_empty() && !write(&mut w, &send).await {
                    return false;
                }
            }
        }
    }
}

/// Writes like a real client with a flush timeout: a write that cannot
/// complete (the server stopped reading: it closed the connection, and
/// turmoil's TCP sends no reset) means the connection is dead.
async fn write(w: &mut turmoil::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), w.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

fn final_round(c: ClientId, shared: &Rc<RefCell<Shared>>) -> Vec<u8> {
    let mut sh = shared.borrow_mut();
    sh.final_sent[c] = true;
    let Shared {
        clients,
        ids,
        history,
        ..
    } = &mut *sh;
    clients[c].final_round(now_ns(), ids, history)
}
