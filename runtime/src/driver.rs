//! The tokio driver: listener, per-connection reader and writer tasks, and
//! the one task that owns the core `Server` and runs its event loop.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use natrix_core::server::{Action, ConnId, Event, LogLevel, Server};
use natrix_core::time::{Instant as CoreInstant, Now};
use natrix_storage::ops::{Completion, StorageOp};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::conn_io::{Inbound, Outbound, ReadGate, read_ahead_permits, read_loop, write_loop};
use crate::logger::Logger;
use crate::memory::TrimPolicy;
use crate::storage::StorageThread;
use tokio_rustls::TlsAcceptor;

/// Inbound events queued for the core before readers wait (backpressure).
const INBOUND_QUEUE: usize = 4096;
/// Bytes read but not yet handled by the core, over all connections: when
/// the core falls behind, readers wait instead of buffering without bound.
const INBOUND_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Events handled before the core drains actions (one flush per batch).
const BATCH_MAX: usize = 256;
/// Bytes read that end a batch early: what one batch delivers sits in the
/// subscribers' outbound buffers until the drain, so this bounds their size
/// (small buffers are reused; large ones would be freed and left resident by
/// the system allocator after a burst). A quarter of a connection's 1 MiB
/// read-ahead (`conn_io::READ_AHEAD_MAX`), so that a publisher's reader
/// reads on while the core handles a batch.
const BATCH_BYTES_MAX: usize = 256 * 1024;
/// Emptied write buffers kept for reuse, and the largest kept: big enough
/// that what one batch delivers to a subscriber fits without growing (a
/// grown buffer costs a copy and fresh pages). They are let go when traffic
/// goes quiet after a burst, with the rest of the freed memory.
const SPARE_MAX: usize = 8;
const SPARE_CAPACITY_MAX: usize = 512 * 1024;
/// How often the core hears of the process's memory and CPU.
const PROCESS_INFO_EVERY: Duration = Duration::from_secs(1);

/// Where connections come from and go to: the small network seam that
/// lets the same driver run over real TCP in production and over
/// simulated TCP (turmoil) in `natrix-sim`.
pub trait Listener: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    fn accept(
        &mut self,
    ) -> impl std::future::Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// Connects to `addr` (`host:port`): the routes a server dials.
    fn dial(
        addr: String,
    ) -> impl std::future::Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Stream, SocketAddr)> {
        let (stream, peer) = TcpListener::accept(self).await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpListener::local_addr(self)
    }

    async fn dial(addr: String) -> io::Result<(Self::Stream, SocketAddr)> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr()?;
        Ok((stream, peer))
    }
}

/// How long a dial may take (nats-server's route dial timeout).
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Driver time: the core's monotonic instant counts from here. The wall
/// clock is the system's, or (in simulation) a fixed epoch plus elapsed
/// simulated time.
#[derive(Clone, Copy)]
pub struct Clock {
    origin: tokio::time::Instant,
    epoch_unix_nanos: Option<u64>,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: tokio::time::Instant::now(),
            epoch_unix_nanos: None,
        }
    }

    /// A clock whose wall time is `epoch_unix_nanos` plus the (tokio, so
    /// possibly simulated) time elapsed since it was made.
    pub fn simulated(epoch_unix_nanos: u64) -> Self {
        Clock {
            origin: tokio::time::Instant::now(),
            epoch_unix_nanos: Some(epoch_unix_nanos),
        }
    }

    pub fn now(&self) -> Now {
        let mono = self.origin.elapsed().as_nanos() as u64;
        let wall = match self.epoch_unix_nanos {
            Some(epoch) => epoch + mono,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64,
        };
        Now::new(CoreInstant::from_nanos(mono), wall)
    }

    pub(crate) fn to_tokio(self, at: CoreInstant) -> tokio::time::Instant {
        self.origin + Duration::from_nanos(at.as_nanos())
    }
}

struct ConnHandle {
    gate: Arc<ReadGate>,
    generation: u64,
    writer: mpsc::UnboundedSender<Outbound>,
    /// The reader task (a TLS connection has none until its handshake).
    reader: Option<JoinHandle<()>>,
    /// Set when the core closed it; the writer finishes and reports.
    closing: bool,
}

/// What the process (its signal handlers) asks of a running server.
pub enum Control {
    /// Enter lame duck mode: stop accepting, close clients gradually, exit.
    LameDuck,
    /// Reopen the log file (after it was rotated away).
    ReopenLog,
    /// Write a line to the server's log.
    Log(LogLevel, String),
    /// Apply reloaded options, with the TLS configuration loaded for them
    /// (new connections get it); the answer says whether they were taken.
    Reload(
        Box<natrix_core::Options>,
        Option<Arc<rustls::ServerConfig>>,
        tokio::sync::oneshot::Sender<Result<(), String>>,
    ),
    /// Log through this logger from now on (reloaded logging settings).
    SetLogger(Logger),
}

/// A running server: the bound address and ways to steer and stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Arc<Notify>,
    control: mpsc::UnboundedSender<Control>,
    task: JoinHandle<()>,
    exited: bool,
}

impl Running {
    /// Asks the server to close every connection and stop; waits until it has.
    pub async fn shutdown(mut self) {
        if !self.exited {
            self.stop.notify_one();
            let _ = (&mut self.task).await;
        }
    }

    /// Hands the server a request (ignored once it has exited).
    pub fn control(&self, c: Control) {
        let _ = self.control.send(c);
    }

    /// Resolves when the server stops on its own (lame duck mode done).
    pub async fn exited(&mut self) {
        if !self.exited {
            let _ = (&mut self.task).await;
            self.exited = true;
        }
    }
}

/// Where the monitoring endpoints listen.
pub struct MonitorListen<'a> {
    /// The bind address; the client host when `None` or empty.
    pub host: Option<&'a str>,
    /// 0: a free port.
    pub port: u16,
    /// HTTPS with the client TLS certificate (`https_port`), else HTTP.
    pub secure: bool,
}

/// JetStream's storage thread and the channel its completions come back
/// on, as [`StorageThread::spawn`] returns them.
pub type Storage = (
    StorageThread,
    tokio::sync::mpsc::UnboundedReceiver<Completion>,
);

/// Why a server did not start.
#[derive(Debug)]
pub enum StartError {
    /// The client port could not be bound.
    Listen(io::Error),
    /// Monitoring could not start; in nats-server's words.
    Monitor(String),
}

/// Binds the client listener on TCP and starts the server tasks, with
/// monitoring if `monitor` says where, TLS for clients if the core's
/// options ask for it (`tls` is their configuration; HTTPS monitoring
/// serves its certificate), and the storage thread when JetStream is on.
pub async fn start(
    server: Server,
    (host, port): (&str, u16),
    monitor: Option<MonitorListen<'_>>,
    (tls, storage): (Option<Arc<rustls::ServerConfig>>, Option<Storage>),
    mut logger: Logger,
    clock: Clock,
) -> Result<Running, StartError> {
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(StartError::Listen)?;
    let monitor = match monitor {
        Some(m) => {
            let http_host = m.host.filter(|h| !h.is_empty()).unwrap_or(host);
            let monitor_tls = match (m.secure, &tls) {
                (false, _) => None,
                (true, Some(t)) => {
                    Some(crate::tls::monitor_config(t).map_err(StartError::Monitor)?)
                }
                (true, None) => {
                    return Err(StartError::Monitor(
                        "TLS cert and key required for HTTPS".into(),
                    ));
                }
            };
            let l = crate::monitor::bind(http_host, m.port).await.map_err(|e| {
                StartError::Monitor(format!(
                    "can't listen to the monitor port: listen tcp {}: {}",
                    display_addr(http_host, m.port),
                    crate::config_file::io_text(&e)
                ))
            })?;
            let bound = l.local_addr().map_err(StartError::Listen)?.port();
            let scheme = if m.secure { "https" } else { "http" };
            logger.info(&format!(
                "Starting {scheme} monitor on {}",
                display_addr(http_host, bound)
            ));
            Some(MonitorSetup {
                listener: l,
                host: http_host.to_string(),
                port: bound,
                tls: monitor_tls,
            })
        }
        None => None,
    };
    let cluster = match server.options().cluster.as_ref() {
        Some(c) => {
            let chost = if c.host.is_empty() { host } else { &c.host };
            let l = TcpListener::bind((chost, c.port))
                .await
                .map_err(StartError::Listen)?;
            Some(l)
        }
        None => None,
    };
    let leaf = match server
        .options()
        .leafnodes
        .as_ref()
        .and_then(|l| Some((l, l.port?)))
    {
        Some((l, port)) => {
            let lhost = if l.host.is_empty() { host } else { &l.host };
            Some(
                TcpListener::bind((lhost, port))
                    .await
                    .map_err(StartError::Listen)?,
            )
        }
        None => None,
    };
    let gateway = match server.options().gateway.as_ref() {
        Some(g) => {
            let ghost = if g.host.is_empty() { host } else { &g.host };
            Some(
                TcpListener::bind((ghost, g.port))
                    .await
                    .map_err(StartError::Listen)?,
            )
        }
        None => None,
    };
    let io = ServerIo {
        monitor,
        tls,
        storage,
        cluster,
        leaf,
        gateway,
    };
    serve_with_monitor(server, listener, host, io, logger, clock).map_err(StartError::Listen)
}

/// Starts the server tasks on a listener that is already bound.
pub fn serve<L: Listener>(
    server: Server,
    listener: L,
    host: &str,
    logger: Logger,
    clock: Clock,
) -> io::Result<Running> {
    serve_with_monitor(server, listener, host, ServerIo::default(), logger, clock)
}

/// Monitoring on a bound listener, with the host and port to report in
/// `/varz`, over TLS when it has a configuration.
pub struct MonitorSetup {
    pub listener: TcpListener,
    pub host: String,
    pub port: u16,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// What a server may have besides its client listener.
pub struct ServerIo<L> {
    /// HTTP(S) monitoring.
    pub monitor: Option<MonitorSetup>,
    /// TLS for clients.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// JetStream's storage thread.
    pub storage: Option<Storage>,
    /// The cluster listener: other servers' routes come in on it.
    pub cluster: Option<L>,
    /// The leaf node listener: leaf nodes dial this hub on it.
    pub leaf: Option<L>,
    /// The gateway listener: other clusters' servers dial it.
    pub gateway: Option<L>,
}

impl<L> Default for ServerIo<L> {
    fn default() -> Self {
        ServerIo {
            monitor: None,
            tls: None,
            storage: None,
            cluster: None,
            leaf: None,
            gateway: None,
        }
    }
}

/// [`serve`], plus HTTP monitoring, TLS for clients and JetStream storage.
pub fn serve_with_monitor<L: Listener>(
    mut server: Server,
    listener: L,
    host: &str,
    io: ServerIo<L>,
    mut logger: Logger,
    clock: Clock,
) -> io::Result<Running> {
    let ServerIo {
        monitor,
        tls,
        storage,
        cluster,
        leaf,
        gateway,
    } = io;
    let peer_tls = crate::tls::peer_tls(server.options())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let (storage, completions) = storage.unzip();
    let addr = listener.local_addr()?;
    let listening = Event::Listening {
        listener: natrix_core::server::Listener::Client,
        port: addr.port(),
    };
    server.handle(clock.now(), listening);
    logger.info(&format!(
        "Listening for client connections on {}",
        display_addr(host, addr.port())
    ));
    if server.info().tls_required {
        logger.info("TLS required for client connections");
    }
    logger.info("Server is ready");
    let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
    let stop = Arc::new(Notify::new());
    let (control, control_rx) = mpsc::unbounded_channel();
    let accept_tx = tx.clone();
    let acceptor = tokio::spawn(accept_loop(
        listener,
        accept_tx,
        natrix_core::server::Listener::Client,
    ));
    let route_acceptor = match cluster {
        Some(l) => {
            let bound = l.local_addr()?;
            let listening = Event::Listening {
                listener: natrix_core::server::Listener::Route,
                port: bound.port(),
            };
            server.handle(clock.now(), listening);
            let chost = server
                .options()
                .cluster
                .as_ref()
                .map(|c| c.host.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| host.to_string());
            logger.info(&format!("Cluster name is {}", server.info().cluster));
            logger.info(&format!(
                "Listening for route connections on {}",
                display_addr(&chost, bound.port())
            ));
            Some(tokio::spawn(accept_loop(
                l,
                tx.clone(),
                natrix_core::server::Listener::Route,
            )))
        }
        None => None,
    };
    let (mon_tx, mon_rx) = mpsc::channel(64);
    let mut monitor_tls = None;
    let (http_host, http_port, https_port) = match monitor {
        Some(m) => {
            let (ports, tls) = match m.tls {
                Some(config) => {
                    let (tx, rx) = tokio::sync::watch::channel(config);
                    monitor_tls = Some(tx);
                    ((0, m.port), Some(rx))
                }
                None => ((m.port, 0), None),
            };
            tokio::spawn(crate::monitor::serve(m.listener, mon_tx, tls));
            (m.host, ports.0, ports.1)
        }
        None => (String::new(), 0, 0),
    };
    let leaf_acceptor = match leaf {
        Some(l) => {
            let bound = l.local_addr()?;
            let listening = Event::Listening {
                listener: natrix_core::server::Listener::Leaf,
                port: bound.port(),
            };
            server.handle(clock.now(), listening);
            let lhost = server
                .options()
                .leafnodes
                .as_ref()
                .map(|l| l.host.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| host.to_string());
            logger.info(&format!(
                "Listening for leafnode connections on {}",
                display_addr(&lhost, bound.port())
            ));
            Some(tokio::spawn(accept_loop(
                l,
                tx.clone(),
                natrix_core::server::Listener::Leaf,
            )))
        }
        None => None,
    };
    let gateway_acceptor = match gateway {
        Some(l) => {
            let bound = l.local_addr()?;
            let listening = Event::Listening {
                listener: natrix_core::server::Listener::Gateway,
                port: bound.port(),
            };
            server.handle(clock.now(), listening);
            let ghost = server
                .options()
                .gateway
                .as_ref()
                .map(|g| g.host.clone())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| host.to_string());
            logger.info(&format!(
                "Listening for gateways connections on {}",
                display_addr(&ghost, bound.port())
            ));
            Some(tokio::spawn(accept_loop(
                l,
                tx.clone(),
                natrix_core::server::Listener::Gateway,
            )))
        }
        None => None,
    };
    let core: CoreLoop<L> = CoreLoop {
        acceptor: Some(acceptor),
        route_acceptor,
        leaf_acceptor,
        gateway_acceptor,
        control_rx,
        inbound_budget: Arc::new(Semaphore::new(INBOUND_BYTES_MAX)),
        mon_rx,
        http_host,
        http_port,
        https_port,
        monitor_tls,
        server,
        clock,
        logger,
        rx,
        tx,
        conns: HashMap::new(),
        next_generation: 0,
        spare: Vec::new(),
        tls: tls.map(TlsAcceptor::from),
        peer_tls,
        process_refreshed: None,
        trim: TrimPolicy::new(tokio::time::Instant::now()),
        http_req_stats: Default::default(),
        reloading: None,
        storage,
        completions,
    };
    let stop2 = Arc::clone(&stop);
    let task = tokio::spawn(core.run(stop2));
    Ok(Running {
        addr,
        stop,
        control,
        task,
        exited: false,
    })
}

fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn accept_loop<L: Listener>(
    mut listener: L,
    tx: mpsc::Sender<Inbound<L::Stream>>,
    kind: natrix_core::server::Listener,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                if tx
                    .send(Inbound::Accepted(stream, peer, kind))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(_) => {
                // Out of file descriptors and the like: wait and retry.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

type PendingReload = (
    Option<Arc<rustls::ServerConfig>>,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

struct CoreLoop<L: Listener> {
    /// The accept task, until lame duck mode (or the end) stops it.
    acceptor: Option<JoinHandle<()>>,
    /// The cluster listener's accept task.
    route_acceptor: Option<JoinHandle<()>>,
    /// The leaf node listener's accept task.
    leaf_acceptor: Option<JoinHandle<()>>,
    /// The gateway listener's accept task.
    gateway_acceptor: Option<JoinHandle<()>>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Permits for [`INBOUND_BYTES_MAX`]; readers take, the core gives back.
    inbound_budget: Arc<Semaphore>,
    mon_rx: mpsc::Receiver<crate::monitor::MonitorRequest>,
    http_host: String,
    http_port: u16,
    https_port: u16,
    /// HTTPS monitoring's TLS configuration, replaced on a reload.
    monitor_tls: Option<tokio::sync::watch::Sender<Arc<rustls::ServerConfig>>>,
    server: Server,
    clock: Clock,
    logger: Logger,
    /// Monitoring requests served, by endpoint.
    http_req_stats: std::collections::BTreeMap<String, u64>,
    /// A reload the core has not answered yet: the TLS configuration that
    /// comes with the options, and who waits for the answer.
    reloading: Option<PendingReload>,
    rx: mpsc::Receiver<Inbound<L::Stream>>,
    tx: mpsc::Sender<Inbound<L::Stream>>,
    conns: HashMap<ConnId, ConnHandle>,
    next_generation: u64,
    /// Emptied write buffers, reused for the next `take_outbound`.
    spare: Vec<Vec<u8>>,
    /// Handshakes for clients the core wants on TLS.
    tls: Option<TlsAcceptor>,
    /// Handshakes with other servers, both ways.
    peer_tls: crate::tls::PeerTls,
    /// When the core was last told the process's memory and CPU.
    process_refreshed: Option<CoreInstant>,
    /// Bytes read and written since freed memory last went back to the
    /// When freed memory goes back to the system.
    trim: TrimPolicy<tokio::time::Instant>,
    /// JetStream's storage thread (`None`: JetStream off).
    storage: Option<StorageThread>,
    /// Where its completions arrive (`None`: JetStream off, or the thread
    /// has stopped).
    completions: Option<tokio::sync::mpsc::UnboundedReceiver<Completion>>,
}

impl<L: Listener> CoreLoop<L> {
    async fn run(mut self, stop: Arc<Notify>) {
        loop {
            let core_deadline = self.server.next_deadline().map(|d| self.clock.to_tokio(d));
            let trim_at = self.trim.due();
            let deadline = match (core_deadline, trim_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let first = tokio::select! {
                biased;
                _ = stop.notified() => break,
                Some(c) = self.control_rx.recv() => {
                    self.control(c);
                    if self.drain_actions() {
                        break;
                    }
                    continue;
                }
                Some(req) = self.mon_rx.recv() => {
                    self.monitor(req);
                    if self.drain_actions() {
                        break;
                    }
                    continue;
                }
                // Ahead of client input: a completion releases acks and
                // frees the core's in-flight budget.
                done = next_completion(&mut self.completions) => {
                    self.storage_done(done);
                    if self.drain_actions() {
                        break;
                    }
                    continue;
                }
                ev = self.rx.recv() => match ev {
                    Some(ev) => Some(ev),
                    None => break,
                },
                _ = sleep_until(deadline) => None,
            };
            match first {
                Some(ev) => {
                    let (mut bytes, mut moved) = self.inbound(ev);
                    for _ in 1..BATCH_MAX {
                        if bytes >= BATCH_BYTES_MAX {
                            break;
                        }
                        match self.rx.try_recv() {
                            Ok(ev) => {
                                let (b, m) = self.inbound(ev);
                                bytes += b;
                                moved += m;
                            }
                            Err(_) => break,
                        }
                    }
                    self.trim.moved(moved, tokio::time::Instant::now());
                }
                None => {
                    if trim_at.is_some_and(|at| at <= tokio::time::Instant::now()) {
                        self.server.handle(self.clock.now(), Event::Quiet);
                        self.spare = Vec::new();
                        crate::memory::release_freed();
                        self.trim.trimmed();
                    }
                    if core_deadline.is_some_and(|d| d <= tokio::time::Instant::now()) {
                        self.server.handle(self.clock.now(), Event::Tick);
                    }
                }
            }
            self.refresh_process_info();
            if self
                .server
                .next_deadline()
                .is_some_and(|d| d <= self.clock.now().instant)
            {
                self.server.handle(self.clock.now(), Event::Tick);
            }
            if self.drain_actions() {
                break;
            }
        }
        if let Some(a) = self.acceptor.take() {
            a.abort();
        }
        if let Some(a) = self.route_acceptor.take() {
            a.abort();
        }
        if let Some(a) = self.leaf_acceptor.take() {
            a.abort();
        }
        if let Some(a) = self.gateway_acceptor.take() {
            a.abort();
        }
        self.logger.info("Initiating Shutdown...");
        self.server.handle(self.clock.now(), Event::Shutdown);
        self.drain_actions();
        self.stop_storage().await;
        // Give writers a moment to flush what they were handed.
        let flush_until = tokio::time::Instant::now() + Duration::from_millis(500);
        while !self.conns.is_empty() && tokio::time::Instant::now() < flush_until {
            match tokio::time::timeout_at(flush_until, self.rx.recv()).await {
                Ok(Some(Inbound::Closed(id, generation))) => {
                    if self
                        .conns
                        .get(&id)
                        .is_some_and(|c| c.generation == generation)
                    {
                        self.conns.remove(&id);
                    }
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }

    /// Hands the core a completion and every other one already there, so
    /// that one drain answers them all. `None`: the thread is gone.
    fn storage_done(&mut self, first: Option<Completion>) {
        let Some(first) = first else {
            // Only a panic ends the thread while the driver holds it; it
            // has printed why, and nothing will complete from now on.
            self.completions = None;
            self.logger
                .log(LogLevel::Error, "JetStream storage thread stopped");
            return;
        };
        let now = self.clock.now();
        self.server.handle(now, Event::Storage(&first));
        while let Some(done) = self.completions.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.server.handle(now, Event::Storage(&done));
        }
    }

    /// Lets the storage thread finish everything submitted (the final
    /// writes and syncs included) before the process exits.
    async fn stop_storage(&mut self) {
        let Some(storage) = self.storage.take() else {
            return;
        };
        self.logger.info("Initiating JetStream Shutdown...");
        let stopped = tokio::task::spawn_blocking(move || storage.shutdown()).await;
        if !matches!(stopped, Ok(Ok(()))) {
            self.logger.log(
                LogLevel::Error,
                "JetStream storage thread failed before finishing its writes",
            );
        }
        self.completions = None;
        self.logger.info("JetStream Shutdown");
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::LameDuck => self.server.handle(self.clock.now(), Event::LameDuck),
            Control::ReopenLog => self.logger.reopen(),
            Control::Log(level, line) => self.logger.log(level, &line),
            Control::Reload(opts, tls, answer) => {
                self.reloading = Some((tls, answer));
                let reload = Event::Reload { options: &opts };
                self.server.handle(self.clock.now(), reload);
            }
            Control::SetLogger(l) => self.logger = l,
        }
    }

    fn process_info(&self) -> natrix_core::server::ProcessInfo {
        let uptime = Duration::from_nanos(self.clock.now().instant.as_nanos());
        let ports = (self.http_port, self.https_port);
        let mut process = crate::monitor::process_info(&self.http_host, ports, uptime);
        process.http_req_stats = self.http_req_stats.clone();
        process
    }

    /// The core's answer to a reload: on success, new connections (and
    /// HTTPS monitoring) get the reloaded TLS configuration.
    fn reloaded(&mut self, error: Option<String>) {
        let Some((tls, answer)) = self.reloading.take() else {
            return;
        };
        if error.is_none() {
            if let (Some(monitor), Some(t)) = (&self.monitor_tls, &tls)
                && let Ok(config) = crate::tls::monitor_config(t)
            {
                let _ = monitor.send(config);
            }
            self.tls = tls.map(TlsAcceptor::from);
        }
        let _ = answer.send(error.map_or(Ok(()), Err));
    }

    /// Tells the core the process's memory and CPU (for statsz and
    /// `VARZ` over NATS) at most once a second.
    fn refresh_process_info(&mut self) {
        let now = self.clock.now().instant;
        if self
            .process_refreshed
            .is_some_and(|at| now.since(at) < PROCESS_INFO_EVERY)
        {
            return;
        }
        self.process_refreshed = Some(now);
        let process = self.process_info();
        self.server
            .handle(self.clock.now(), Event::Process(&process));
    }

    fn monitor(&mut self, req: crate::monitor::MonitorRequest) {
        let now = self.clock.now();
        if let Some(endpoint) = self.server.monitor_endpoint(&req.path) {
            *self.http_req_stats.entry(endpoint).or_default() += 1;
        }
        let process = self.process_info();
        self.server.handle(now, Event::Process(&process));
        self.process_refreshed = Some(now.instant);
        let answer = self.server.monitor(now, &req.path, &req.query, &process);
        if let Some(warning) = &answer.warning {
            self.logger.log(LogLevel::Warn, warning);
        }
        let _ = req.reply.send(answer);
    }

    /// Hands one event to the core; returns the bytes it carried in (read)
    /// and the bytes it moved (read or written).
    fn inbound(&mut self, ev: Inbound<L::Stream>) -> (usize, usize) {
        let now = self.clock.now();
        let mut carried = 0;
        let mut moved = 0;
        match ev {
            Inbound::Accepted(stream, peer, listener) => {
                let id = self.server.next_conn_id();
                let accepted = Event::Accepted {
                    conn: id,
                    listener,
                    peer,
                };
                self.server.handle(now, accepted);
                self.attach(id, stream, None);
            }
            Inbound::Dialed(id, stream, peer, host) => {
                // The core says first whether TLS comes before anything.
                self.server.handle(now, Event::Dialed { conn: id, peer });
                self.attach(id, stream, Some(&host));
            }
            Inbound::DialFailed(id, error) => {
                let error = &error;
                self.server
                    .handle(now, Event::DialFailed { conn: id, error });
            }
            Inbound::Received(id, generation, bytes) => {
                carried = bytes.len();
                moved = bytes.len();
                self.inbound_budget.add_permits(bytes.len());
                if let Some(h) = self.conns.get(&id).filter(|h| h.generation == generation) {
                    h.gate
                        .read_ahead
                        .add_permits(read_ahead_permits(bytes.len()));
                }
                if self.current(id, generation) {
                    self.server.handle(
                        now,
                        Event::Received {
                            conn: id,
                            bytes: &bytes,
                        },
                    );
                }
            }
            Inbound::Preface(id, generation, bytes) => {
                if self.current(id, generation) {
                    let received = Event::Received {
                        conn: id,
                        bytes: &bytes,
                    };
                    self.server.handle(now, received);
                }
            }
            Inbound::Written(id, generation, n, mut buf) => {
                moved = n;
                if self.current(id, generation) {
                    self.server
                        .handle(now, Event::Written { conn: id, bytes: n });
                }
                buf.clear();
                if self.spare.len() < SPARE_MAX && buf.capacity() <= SPARE_CAPACITY_MAX {
                    self.spare.push(buf);
                }
            }
            Inbound::Closed(id, generation) => {
                if self.current(id, generation) {
                    let handle = self.conns.remove(&id).expect("current");
                    if let Some(r) = handle.reader {
                        r.abort();
                    }
                    self.server.handle(now, Event::Closed { conn: id });
                }
            }
            Inbound::TlsReady(id, generation, read, (version, cipher), peer) => {
                if !self.current(id, generation) {
                    return (0, 0);
                }
                let handle = &self.conns[&id];
                if !handle.closing {
                    let gate = Arc::clone(&handle.gate);
                    let reader = self.spawn_reader(read, id, generation, &gate);
                    self.conns.get_mut(&id).expect("current").reader = Some(reader);
                }
                let (version, cipher) = (&version, &cipher);
                self.server.handle(
                    now,
                    Event::TlsReady {
                        conn: id,
                        version,
                        cipher,
                        peer_cert: peer.as_deref(),
                    },
                );
            }
            Inbound::TlsFailed(id, generation, error) => {
                if self.current(id, generation) {
                    let error = &error;
                    self.server
                        .handle(now, Event::TlsFailed { conn: id, error });
                }
            }
        }
        (carried, moved)
    }

    /// How connection `id` shakes hands: as the server, or, to a peer this
    /// server dialed (at `dialed`, a host), as the client.
    fn handshake(&self, id: ConnId, dialed: Option<&str>) -> Option<crate::tls::Handshake> {
        use crate::tls::Handshake;
        use natrix_core::server::ConnKind;
        let name = |host: &str| {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            rustls::pki_types::ServerName::try_from(host.to_string()).ok()
        };
        let own = self.server.gateway_remote_of(id).and_then(|remote| {
            let tls = &self.peer_tls.gateway_remotes;
            tls.iter()
                .find(|(n, _)| n == remote)
                .map(|(_, c)| c.clone())
        });
        if let (Some(connector), Some(host)) = (own, dialed) {
            // A remote gateway's own TLS block.
            return Some(Handshake::Connect {
                connector,
                name: name(host)?,
                info_first: false,
            });
        }
        let sides = match self.server.conn_kind(id) {
            Some(ConnKind::Route) => self.peer_tls.route.as_ref(),
            Some(ConnKind::Gateway) => self.peer_tls.gateway.as_ref(),
            Some(ConnKind::Leaf) => {
                return match dialed {
                    None => self.peer_tls.leaf_hub.clone().map(Handshake::Accept),
                    Some(host) => {
                        let i = self.server.leaf_remote_of(id)?;
                        let (connector, first) = self.peer_tls.leaf_remotes.get(i)?.clone()?;
                        // A hub server learned by its address is checked
                        // against the configured host name.
                        Some(Handshake::Connect {
                            connector,
                            name: name(self.server.leaf_tls_name(id, host))?,
                            info_first: !first,
                        })
                    }
                };
            }
            _ => return self.tls.clone().map(Handshake::Accept),
        }?;
        match dialed {
            None => Some(Handshake::Accept(sides.accept.clone())),
            Some(host) => Some(Handshake::Connect {
                connector: sides.connect.clone(),
                name: name(host)?,
                info_first: false,
            }),
        }
    }

    /// Starts the reader and writer tasks of a new connection (a TLS
    /// handshake first, if the core asked for one).
    fn attach(&mut self, id: ConnId, stream: L::Stream, dialed: Option<&str>) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let (wtx, wrx) = mpsc::unbounded_channel();
        let gate = Arc::new(ReadGate::default());
        let reader = if self.server.awaits_tls(id) {
            let task = crate::tls::connection(
                stream,
                self.handshake(id, dialed),
                wrx,
                (id, generation),
                self.tx.clone(),
            );
            tokio::spawn(task);
            None
        } else {
            let (read, write) = tokio::io::split(stream);
            let tx = self.tx.clone();
            tokio::spawn(write_loop(write, wrx, id, generation, tx, Vec::new()));
            Some(self.spawn_reader(read, id, generation, &gate))
        };
        self.conns.insert(
            id,
            ConnHandle {
                gate,
                generation,
                writer: wtx,
                reader,
                closing: false,
            },
        );
    }

    fn spawn_reader<R: AsyncRead + Send + Unpin + 'static>(
        &self,
        read: R,
        id: ConnId,
        generation: u64,
        gate: &Arc<ReadGate>,
    ) -> JoinHandle<()> {
        tokio::spawn(read_loop(
            read,
            id,
            generation,
            self.tx.clone(),
            Arc::clone(&self.inbound_budget),
            (Arc::clone(gate), self.clock),
        ))
    }

    fn current(&self, id: ConnId, generation: u64) -> bool {
        self.conns
            .get(&id)
            .is_some_and(|c| c.generation == generation)
    }

    /// Carries out the core's actions; true when the server is done. The
    /// storage operations of one drain go to the storage thread together,
    /// as one group: their syncs share one fsync per stream.
    fn drain_actions(&mut self) -> bool {
        let mut exit = false;
        let mut storage_ops: Vec<StorageOp> = Vec::new();
        while let Some(action) = self.server.poll_action() {
            match action {
                Action::StopAccepting => {
                    if let Some(a) = self.acceptor.take() {
                        a.abort();
                    }
                }
                Action::Exit => exit = true,
                Action::Reloaded { error } => self.reloaded(error),
                Action::Storage(op) => storage_ops.push(op),
                Action::Dial { conn, addr } => {
                    let tx = self.tx.clone();
                    tokio::spawn(async move {
                        let host = addr.rsplit_once(':').map_or(&*addr, |(h, _)| h).to_string();
                        let dialed = tokio::time::timeout(DIAL_TIMEOUT, L::dial(addr)).await;
                        let inbound = match dialed {
                            Ok(Ok((stream, peer))) => Inbound::Dialed(conn, stream, peer, host),
                            Ok(Err(e)) => Inbound::DialFailed(conn, e.to_string()),
                            Err(_) => Inbound::DialFailed(conn, "i/o timeout".to_string()),
                        };
                        let _ = tx.send(inbound).await;
                    });
                }
                Action::Transmit { conn } => {
                    let Some(handle) = self.conns.get(&conn) else {
                        continue;
                    };
                    let mut buf = self.spare.pop().unwrap_or_default();
                    self.server.take_outbound(conn, &mut buf);
                    if buf.is_empty() {
                        self.spare.push(buf);
                        continue;
                    }
                    let _ = handle.writer.send(Outbound::Bytes(buf));
                }
                Action::Close { conn, flush, .. } => {
                    let Some(handle) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    if flush {
                        let mut buf = Vec::new();
                        self.server.take_outbound(conn, &mut buf);
                        if !buf.is_empty() {
                            let _ = handle.writer.send(Outbound::Bytes(buf));
                        }
                    }
                    handle.closing = true;
                    if let Some(r) = &handle.reader {
                        r.abort();
                    }
                    let _ = handle.writer.send(Outbound::Close);
                }
                Action::StartTls { conn } => {
                    if let Some(handle) = self.conns.get(&conn) {
                        let _ = handle.writer.send(Outbound::StartTls);
                    }
                }
                Action::Log { level, message } => self.logger.log(level, &message),
                Action::Pause { conn, until } => {
                    if let Some(h) = self.conns.get(&conn) {
                        h.gate.until_nanos.store(
                            until.as_nanos().max(1),
                            std::sync::atomic::Ordering::Release,
                        );
                    }
                }
                Action::Resume { conn } => {
                    if let Some(h) = self.conns.get(&conn) {
                        h.gate
                            .until_nanos
                            .store(0, std::sync::atomic::Ordering::Release);
                        h.gate.resumed.notify_one();
                    }
                }
            }
        }
        match &self.storage {
            Some(storage) => storage.submit_all(storage_ops),
            // The core asks for storage only with JetStream on, which
            // comes with a thread: a driver built without one (or one
            // already stopped at shutdown) has nowhere to write.
            None if !storage_ops.is_empty() => self.logger.log(
                LogLevel::Error,
                &format!(
                    "{} JetStream storage operations and no storage thread to run them",
                    storage_ops.len()
                ),
            ),
            None => {}
        }
        exit
    }
}

/// The next completion; never, without a storage thread.
async fn next_completion(
    completions: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Completion>>,
) -> Option<Completion> {
    match completions {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
