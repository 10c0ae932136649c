//! Shared helpers for the black-box tests of the `natrix` binary: find (or
//! build) the binary, start it on a free port, stop it.

pub mod pki;

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `natrix` binary under test: `$NATRIX_BIN`, else one brought up to
/// date by `cargo build` once per test process (a no-op when nothing
/// changed): the debug build for debug tests, else the release build as
/// shipped (tests built with `--profile test-release` still start it).
pub fn natrix_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("NATRIX_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current exe");
        // target/<profile>/deps/<test> -> target/{debug,release}/natrix
        let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
        let debug = profile_dir.ends_with("debug");
        let target_dir = profile_dir.parent().expect("target dir");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "natrix-runtime", "--bin", "natrix"]);
        if !debug {
            cmd.arg("--release");
        }
        let status = cmd
            .env("CARGO_TARGET_DIR", target_dir)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building natrix failed");
        target_dir
            .join(if debug { "debug" } else { "release" })
            .join("natrix")
    })
    .clone()
}

/// A free TCP port on loopback, for a server the test starts next.
///
/// Drawn at random from 10000-32767, below Linux's ephemeral range
/// (32768-60999): a port the kernel chose for `bind(0)` is also where it
/// picks the local ports of outgoing connections, and with many tests
/// connecting in parallel one of them took such a port before the server
/// bound it. Each port is handed out once per test process, only if it
/// can be bound on every address now, and only if no other live test
/// process holds it (see [`reserve`]).
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let ports = Ports::lock();
    let seed = RandomState::new();
    for attempt in 0u32.. {
        let port = 10_000 + (seed.hash_one((attempt, std::process::id())) % 22_768) as u16;
        if given.contains(&port) {
            continue;
        }
        // One at a time: a listener on 0.0.0.0 holds the port on loopback too.
        let any = TcpListener::bind(("0.0.0.0", port)).is_ok();
        let loopback = any && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if loopback && ports.reserve(port) {
            given.insert(port);
            return port;
        }
        assert!(attempt < 10_000, "no free port below the ephemeral range");
    }
    unreachable!()
}

/// The ports test processes on this machine hold: a file per port in the
/// temporary directory, naming the process. The test runner runs each test
/// in a process of its own, and two of them could draw the same free port
/// at once and each start a server on it (one then failed, or a client
/// reached the other test's server). Held under a lock file while a port
/// is chosen; a port whose process is gone is free again.
struct Ports {
    dir: PathBuf,
    _lock: Option<std::fs::File>,
}

impl Ports {
    fn lock() -> Ports {
        let dir = std::env::temp_dir().join("natrix-test-ports");
        let _ = std::fs::create_dir_all(&dir);
        let lock = std::fs::File::create(dir.join(".lock"))
            .ok()
            .filter(|f| f.lock().is_ok());
        Ports { dir, _lock: lock }
    }

    /// Takes `port` for this process unless another live one holds it.
    fn reserve(&self, port: u16) -> bool {
        let me = std::process::id();
        let path = self.dir.join(port.to_string());
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(pid) = text.trim().parse::<u32>()
            && pid != me
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            return false;
        }
        // (Without a writable directory, the bind checks alone.)
        let _ = std::fs::write(&path, me.to_string());
        true
    }
}

/// Awaits `fut`, failing the test with `what` if it has not finished within
/// 30 s. A client waits for ever for a reply that never comes (a flush's
/// PONG, a request a responder never saw): a test must say which wait it was
/// stuck in instead of holding the suite until the runner kills it.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: still waiting after 30 s"),
    }
}

/// The port of a "Listening for client connections on HOST:PORT" log line.
fn listening_port(line: &str) -> Option<u16> {
    let (_, addr) = line.split_once("Listening for client connections on ")?;
    addr.trim().rsplit_once(':')?.1.parse().ok()
}

/// A running server process, stopped when dropped. If the test is failing
/// then, the last lines the server logged are printed with the failure.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    log: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
    bin: PathBuf,
}

/// Log lines a server keeps for a failing test.
const LOG_LINES_KEPT: usize = 100;

impl ServerProcess {
    /// Starts `natrix` on a free loopback port with extra flags.
    pub fn natrix(args: &[&str]) -> Self {
        Self::start(&natrix_bin(), args)
    }

    /// Starts any nats-server-compatible binary with the same flags. The
    /// server picks its own port (`-p -1`) and the port is read from its
    /// "Listening for client connections on" log line, so two tests can
    /// never race for one port.
    pub fn start(bin: &Path, args: &[&str]) -> Self {
        let log_file = args
            .iter()
            .position(|a| matches!(*a, "-l" | "--log"))
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from);
        let mut child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", "-1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        // Drain the log so the server never blocks on a full pipe, and pass
        // the listening port on.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line) {
                    let _ = tx.send(port);
                }
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() == LOG_LINES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let logged = match &log_file {
                Some(f) => std::fs::read_to_string(f)
                    .ok()
                    .and_then(|text| text.lines().find_map(listening_port)),
                None => rx.recv_timeout(Duration::from_millis(20)).ok(),
            };
            if let Some(port) = logged
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                return ServerProcess {
                    child,
                    port,
                    log,
                    bin: bin.to_path_buf(),
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited at start: {status}", bin.display());
            }
            if log_file.is_some() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} did not start", bin.display());
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "--- the last {} log lines of {} (client port {}) ---",
                log.len(),
                self.bin.display(),
                self.port
            );
            for line in log.iter() {
                eprintln!("{line}");
            }
        }
    }
}

/// The reference nats-server, if installed.
pub fn reference_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// nats-server 2.15.1, the reference for JetStream: `$NATRIX_REFERENCE_215`
/// (scripts/test installs it and sets it), else the copy scripts/test
/// installs under target/. `None` (the comparison is skipped) when absent,
/// unless `NATRIX_REQUIRE_REFERENCE` is set, as in CI.
pub fn reference_215() -> Option<PathBuf> {
    let path = std::env::var_os("NATRIX_REFERENCE_215")
        .map(PathBuf::from)
        .or_else(|| {
            let p =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/nats-venv/bin/nats-server");
            p.exists().then_some(p)
        });
    if path.is_none() {
        assert!(
            std::env::var_os("NATRIX_REQUIRE_REFERENCE").is_none(),
            "nats-server 2.15.1 is required but not installed"
        );
        eprintln!("nats-server 2.15.1 not installed: comparison skipped");
    }
    path
}

/// natrix, then nats-server when it is installed (required when
/// `NATRIX_REQUIRE_REFERENCE` is set): the servers a comparison runs on.
pub fn servers() -> Vec<(&'static str, PathBuf)> {
    let mut out = vec![("natrix", natrix_bin())];
    match reference_bin() {
        Some(r) => out.push(("nats-server", r)),
        None => {
            assert!(
                std::env::var_os("NATRIX_REQUIRE_REFERENCE").is_none(),
                "nats-server is required but not installed"
            );
            eprintln!("nats-server not installed: comparison skipped");
        }
    }
    out
}

/// The reference nats-server for a side-by-side comparison, or `None` (the
/// comparison is skipped) when it is not installed — unless
/// `NATRIX_REQUIRE_REFERENCE` is set, as in CI, where a missing reference
/// fails the test.
pub fn reference_or_skip() -> Option<PathBuf> {
    let r = reference_bin();
    if r.is_none() {
        assert!(
            std::env::var_os("NATRIX_REQUIRE_REFERENCE").is_none(),
            "nats-server is required but not installed"
        );
        eprintln!("nats-server not installed: comparison skipped");
    }
    r
}

/// A fresh, empty directory for one test's files.
pub fn test_dir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("natrix-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A server's stderr without its `natrix: ` / `nats-server: ` prefix, for
/// comparing the two servers' messages.
pub fn without_program(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr).into_owned();
    text.strip_prefix("natrix: ")
        .or_else(|| text.strip_prefix("nats-server: "))
        .unwrap_or(&text)
        .trim_end()
        .to_string()
}

/// `<bin> -t -c <file>`: the exit code and what it printed, without the
/// program prefix.
pub fn check_config(bin: &Path, file: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin)
        .args(["-t", "-c", file.to_str().expect("a UTF-8 path")])
        .output()
        .expect("run the server");
    (out.status.code(), without_program(&out.stderr))
}
