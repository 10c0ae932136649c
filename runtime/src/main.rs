//! `natrix`: a NATS server. Run it as you would run `nats-server`.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use natrix_core::Server;
use natrix_core::config::{JetStreamOptions, ProcessOptions};
use natrix_core::server::LogLevel;
use natrix_runtime::cli::{self, CliError, Command, RunConfig};
use natrix_runtime::driver::{self, Clock, Control, MonitorListen, Running, StartError};
use natrix_runtime::jetstream;
use natrix_runtime::logger::Logger;
use natrix_runtime::storage::StorageThread;
use natrix_runtime::tls;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(CliError::Usage(e)) => {
            eprintln!("natrix: {e}\n");
            eprint!("{}", cli::USAGE);
            return ExitCode::from(1);
        }
        Err(CliError::Config(e)) => {
            eprintln!("natrix: {e}");
            return ExitCode::from(1);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!(
                "natrix: v{} (nats-server v{} compatible)",
                natrix_core::VERSION,
                natrix_core::COMPAT_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::Signal(arg) => match natrix_runtime::signal::send(&arg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("natrix: {e}");
                ExitCode::from(1)
            }
        },
        Command::Run(cfg) => run(*cfg),
    }
}

fn run(cfg: RunConfig) -> ExitCode {
    // The certificates are read now, so that a bad file stops the start
    // (and fails `-t`), as in nats-server.
    let tls = match cfg.options.tls.as_ref().map(tls::server_config).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("natrix: {e}");
            return ExitCode::from(1);
        }
    };
    if cfg.check_only {
        // Warnings fail the check, as with nats-server -t.
        if !cfg.warnings.is_empty() {
            eprint!("natrix: {}", cfg.warnings);
            return ExitCode::from(1);
        }
        eprintln!(
            "natrix: configuration file {} is valid",
            cfg.config_file.as_deref().unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    if !cfg.warnings.is_empty() {
        eprint!("{}", cfg.warnings);
    }
    // Checked at start, not by -t, as nats-server does.
    if let Err(e) = cfg.options.validate() {
        eprintln!("natrix: {e}");
        return ExitCode::from(1);
    }
    let logger = match make_logger(&cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("natrix: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("natrix: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(serve(cfg, tls, logger))
}

async fn serve(
    cfg: RunConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut logger: Logger,
) -> ExitCode {
    let clock = Clock::new();
    // The core gets JetStream's limits as measured now; `cfg` keeps them
    // as configured, to compare a reloaded file with.
    let mut options = cfg.options.clone();
    let jetstream = options.jetstream.as_mut().map(jetstream::start);
    let running_js = options.jetstream.clone();
    let server = Server::new(options, os_seed(), clock.now());
    logger.info("Starting natrix");
    logger.info(&format!(
        "  Version:  {} (nats-server {} compatible)",
        natrix_core::VERSION,
        natrix_core::COMPAT_VERSION
    ));
    logger.info(&format!("  Name:     {}", server.info().server_name));
    logger.info(&format!("  ID:       {}", server.server_id()));
    if cfg.options.has_plaintext_passwords() {
        logger.log(
            natrix_core::server::LogLevel::Warn,
            "Plaintext passwords detected, use nkeys or bcrypt",
        );
    }
    if let Some(file) = &cfg.config_file {
        logger.info(&format!("Using configuration file: {file}"));
    }
    let storage = match jetstream.map(|js| start_storage(js, &mut logger)) {
        None => None,
        Some(Ok(storage)) => Some(storage),
        Some(Err(())) => return ExitCode::from(1),
    };
    let pid = std::process::id();
    if let Some(path) = &cfg.process.pid_file
        && let Err(e) = std::fs::write(path, pid.to_string())
    {
        logger.log(
            natrix_core::server::LogLevel::Fatal,
            &format!("Could not write pidfile: {e}"),
        );
        return ExitCode::from(1);
    }
    let monitor = match monitor_listen(&cfg.process) {
        Ok(m) => m,
        Err(e) => return fatal(&cfg, &format!("Can't start monitoring: {e}")),
    };
    let started = driver::start(
        server,
        (&cfg.options.host, cfg.options.port),
        monitor,
        (tls, storage),
        logger,
        clock,
    )
    .await;
    let mut running = match started {
        Ok(r) => r,
        Err(StartError::Listen(e)) => {
            let host = &cfg.options.host;
            let port = cfg.options.port;
            return fatal(
                &cfg,
                &format!("Error listening on port: {host}:{port}, \"{e}\""),
            );
        }
        Err(StartError::Monitor(e)) => {
            return fatal(&cfg, &format!("Can't start monitoring: {e}"));
        }
    };
    let ports_file = cfg.process.ports_file_dir.as_ref().map(|dir| {
        let exe = std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "natrix".into());
        let path = std::path::Path::new(dir).join(format!("{exe}_{pid}.ports"));
        let host = if cfg.options.host == "0.0.0.0" || cfg.options.host == "::" {
            "127.0.0.1"
        } else {
            &cfg.options.host
        };
        let url = if host.contains(':') {
            format!("nats://[{host}]:{}", running.addr.port())
        } else {
            format!("nats://{host}:{}", running.addr.port())
        };
        let _ = std::fs::write(&path, format!("{{\"nats\":[\"{url}\"]}}"));
        path
    });
    let mut cfg = cfg;
    let code = run_until_stopped(&mut running, &mut cfg, running_js.as_ref()).await;
    running.shutdown().await;
    if let Some(p) = ports_file {
        let _ = std::fs::remove_file(p);
    }
    if let Some(p) = &cfg.process.pid_file {
        let _ = std::fs::remove_file(p);
    }
    let mut l = Logger::stderr(cfg.process.log_time, false, false);
    l.info("Server Exiting..");
    code
}

/// Logs how JetStream's store was prepared and starts its storage thread;
/// Err once the fatal reason is logged.
fn start_storage(
    prepared: Result<jetstream::Started, jetstream::StartFailed>,
    logger: &mut Logger,
) -> Result<driver::Storage, ()> {
    let started = match prepared {
        Ok(s) => s,
        Err(failed) => {
            for (level, line) in &failed.log {
                logger.log(*level, line);
            }
            return Err(());
        }
    };
    for (level, line) in &started.log {
        logger.log(*level, line);
    }
    StorageThread::spawn(&started.root).map_err(|e| {
        logger.log(LogLevel::Fatal, &format!("Can't start JetStream: {e}"));
    })
}

/// Logs a fatal start error and gives the exit code.
fn fatal(cfg: &RunConfig, line: &str) -> ExitCode {
    let mut l = Logger::stderr(cfg.process.log_time, false, false);
    l.log(LogLevel::Fatal, line);
    ExitCode::from(1)
}

/// Where monitoring listens, if anywhere: HTTP or HTTPS, not both, as
/// nats-server checks it at start.
fn monitor_listen(p: &ProcessOptions) -> Result<Option<MonitorListen<'_>>, String> {
    let host = p.http_host.as_deref();
    match (p.http_port, p.https_port) {
        (Some(http), Some(https)) => Err(format!(
            "can't specify both HTTP ({http}) and HTTPs ({https}) ports"
        )),
        (Some(port), None) => Ok(Some(MonitorListen {
            host,
            port,
            secure: false,
        })),
        (None, Some(port)) => Ok(Some(MonitorListen {
            host,
            port,
            secure: true,
        })),
        (None, None) => Ok(None),
    }
}

/// Serves until a signal stops the server or lame duck mode ends it, with
/// nats-server's signals: SIGINT stops (exit 0); SIGTERM stops (exit 1)
/// unless lame duck mode is under way; SIGUSR2 enters lame duck mode
/// (exit 0 once every client is closed); SIGUSR1 reopens the log file;
/// SIGHUP reloads the configuration file.
async fn run_until_stopped(
    running: &mut Running,
    cfg: &mut RunConfig,
    running_js: Option<&JetStreamOptions>,
) -> ExitCode {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::hangup()),
    );
    let (Ok(mut int), Ok(mut term), Ok(mut usr1), Ok(mut usr2), Ok(mut hup)) = signals else {
        let _ = tokio::signal::ctrl_c().await;
        return ExitCode::SUCCESS;
    };
    let mut lame_duck = false;
    loop {
        tokio::select! {
            biased;
            _ = int.recv() => return ExitCode::SUCCESS,
            _ = term.recv() => {
                if !lame_duck {
                    return ExitCode::from(1);
                }
            }
            _ = usr2.recv() => {
                lame_duck = true;
                running.control(Control::LameDuck);
            }
            _ = usr1.recv() => running.control(Control::ReopenLog),
            _ = hup.recv() => {
                if let Err(e) = reload(running, cfg, running_js).await {
                    running.control(Control::Log(
                        LogLevel::Error,
                        format!("Failed to reload server configuration: {e}"),
                    ));
                }
            }
            _ = running.exited() => return ExitCode::SUCCESS,
        }
    }
}

/// Reads the configuration again and applies it: the process settings
/// here (logging, pid file), the rest in the core. All or nothing: a
/// setting that cannot change on a running server refuses the reload.
async fn reload(
    running: &Running,
    cfg: &mut RunConfig,
    running_js: Option<&JetStreamOptions>,
) -> Result<(), String> {
    let new = cli::reread(cfg)?;
    let reloaded_js = jetstream::reloaded(
        cfg.options.jetstream.as_ref(),
        new.options.jetstream.as_ref(),
        running_js,
    )?;
    let (old_p, new_p) = (&cfg.process, &new.process);
    let refuse = |field: &str, o: String, n: String| {
        Err(format!(
            "config reload not supported for {field}: old={o}, new={n}"
        ))
    };
    if old_p.http_port != new_p.http_port {
        let show = |p: Option<u16>| p.map_or("0".into(), |p| p.to_string());
        return refuse("HTTPPort", show(old_p.http_port), show(new_p.http_port));
    }
    if old_p.https_port != new_p.https_port {
        let show = |p: Option<u16>| p.map_or("0".into(), |p| p.to_string());
        return refuse("HTTPSPort", show(old_p.https_port), show(new_p.https_port));
    }
    if old_p.http_host != new_p.http_host {
        let show = |h: &Option<String>| h.clone().unwrap_or_default();
        return refuse("HTTPHost", show(&old_p.http_host), show(&new_p.http_host));
    }
    if old_p.log_size_limit != new_p.log_size_limit {
        return refuse(
            "LogSizeLimit",
            old_p.log_size_limit.to_string(),
            new_p.log_size_limit.to_string(),
        );
    }
    if old_p.ports_file_dir != new_p.ports_file_dir {
        let show = |d: &Option<String>| d.clone().unwrap_or_default();
        return refuse(
            "PortsFileDir",
            show(&old_p.ports_file_dir),
            show(&new_p.ports_file_dir),
        );
    }
    if !new.warnings.is_empty() {
        eprint!("{}", new.warnings);
    }
    // Certificates are read again on every reload: new connections get
    // renewed ones even when the settings did not change.
    let tls = new
        .options
        .tls
        .as_ref()
        .map(tls::server_config)
        .transpose()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut options = new.options.clone();
    options.jetstream = reloaded_js;
    running.control(Control::Reload(Box::new(options), tls, tx));
    rx.await
        .map_err(|_| "the server has stopped".to_string())??;
    let (o, n) = (&cfg.options, &new.options);
    let logging_changed = old_p.log_file != new_p.log_file
        || old_p.log_time != new_p.log_time
        || old_p.syslog != new_p.syslog
        || old_p.remote_syslog != new_p.remote_syslog
        || o.debug != n.debug
        || o.trace != n.trace;
    if logging_changed {
        match make_logger(&new) {
            Ok(l) => running.control(Control::SetLogger(l)),
            Err(e) => return Err(e),
        }
        if old_p.log_file != new_p.log_file {
            running.control(Control::Log(
                LogLevel::Info,
                format!(
                    "Reloaded: log_file = {}",
                    new_p.log_file.clone().unwrap_or_default()
                ),
            ));
        }
        if old_p.log_time != new_p.log_time {
            running.control(Control::Log(
                LogLevel::Info,
                format!("Reloaded: logtime = {}", new_p.log_time),
            ));
        }
    }
    if old_p.pid_file != new_p.pid_file {
        if let Some(path) = &new_p.pid_file {
            std::fs::write(path, std::process::id().to_string())
                .map_err(|e| format!("Could not write pidfile: {e}"))?;
        }
        if let Some(old) = &old_p.pid_file {
            let _ = std::fs::remove_file(old);
        }
        running.control(Control::Log(
            LogLevel::Info,
            format!(
                "Reloaded: pid_file = {}",
                new_p.pid_file.clone().unwrap_or_default()
            ),
        ));
    }
    *cfg = new;
    Ok(())
}

/// The logger a configuration asks for.
fn make_logger(cfg: &RunConfig) -> Result<Logger, String> {
    let (p, o) = (&cfg.process, &cfg.options);
    match &p.log_file {
        Some(path) => {
            let mut l = Logger::file(path.as_ref(), p.log_time, o.debug, o.trace)
                .map_err(|e| format!("cannot open log file {path}: {e}"))?;
            l.set_size_limit(p.log_size_limit);
            Ok(l)
        }
        None => match (&p.remote_syslog, p.syslog) {
            (Some(url), _) => Logger::remote_syslog(url, o.debug, o.trace)
                .map_err(|e| format!("error connecting to syslog: {e}")),
            (None, true) => Logger::local_syslog(o.debug, o.trace)
                .map_err(|e| format!("error connecting to syslog: {e}")),
            (None, false) => Ok(Logger::stderr(p.log_time, o.debug, o.trace)),
        },
    }
}

/// The one draw of OS randomness: the seed of the core's RNG.
fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32)
}
