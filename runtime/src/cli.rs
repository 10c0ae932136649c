//! The nats-server command line: the same flags, spelled the same ways
//! (`-p 4222`, `--port=4222`, `-port 4222`), for everything natrix has.
//! Flags for features natrix does not have yet are refused by name, never
//! silently ignored.

use natrix_core::Options;
use natrix_core::auth::Auth;
use natrix_core::config::cluster::{ClusterOptions, RouteUrl};
use natrix_core::config::{JetStreamOptions, ProcessOptions, TlsOptions};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Box<RunConfig>),
    /// `--signal <cmd>[=<pid>]`: signal a running server and exit.
    Signal(String),
    Help,
    Version,
}

/// A server run: the core's options plus what only the driver needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunConfig {
    pub options: Options,
    pub process: ProcessOptions,
    /// `-c`: the configuration file the options were read from.
    pub config_file: Option<String>,
    /// `-t`: check the configuration file and exit.
    pub check_only: bool,
    /// Warnings found in the configuration file (printed at start).
    pub warnings: String,
    /// The flags as given, applied again over the file on every reload.
    pub flags: Vec<(String, Option<String>)>,
}

pub const USAGE: &str = "\
Usage: natrix [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222; -1 for random)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -c, --config <file>              Configuration file (nats.conf format, or TOML if it ends in .toml)
    -t                               Test configuration and exit
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring (needs TLS)
        --client_advertise <string>  Client URL to advertise to other servers (no effect without clustering)
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).
    -sl, --signal <signal>[=<pid>]   Send signal to natrix process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/natrix.pid)

JetStream Options:
    -js, --jetstream                 Enable JetStream
    -sd, --store_dir <dir>           Directory that holds the JetStream store (default: the temporary
                                     directory's nats/; does not enable JetStream on its own)

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -s, --syslog                     Log to syslog
    -r, --remote_syslog <addr>       Syslog server addr (udp://localhost:514)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -DV                              Debug and trace
    -VV, -DVV                        Verbose trace (the same as -V and -DV until natrix has a system account)
        --log_size_limit <limit>     Logfile size limit in bytes, rotated past it (default: none)
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes

Not yet available (refused with a message):
--profile, --help_tls.
";

/// Flags nats-server has that natrix does not implement yet, with the
/// feature each belongs to.
const NOT_YET: &[(&[&str], &str)] = &[
    (&["help_tls"], "a TLS help page"),
    (&["profile"], "profiling"),
];

/// Flags that take a value.
const VALUES: &[&str] = &[
    "m",
    "http_port",
    "ms",
    "https_port",
    "a",
    "addr",
    "net",
    "p",
    "port",
    "n",
    "name",
    "server_name",
    "P",
    "pid",
    "ports_file_dir",
    "l",
    "log",
    "user",
    "pass",
    "auth",
    "sl",
    "signal",
    "log_size_limit",
    "max_traced_msg_len",
    "c",
    "config",
    "client_advertise",
    "r",
    "remote_syslog",
    "tlscert",
    "tlskey",
    "tlscacert",
    "sd",
    "store_dir",
    "routes",
    "cluster",
    "cluster_listen",
    "cluster_name",
    "cluster_advertise",
    "connect_retries",
];

/// Flags that take no value (Go's boolean flags: `-D` or `-D=true`).
const BOOLS: &[&str] = &[
    "T",
    "logtime",
    "D",
    "debug",
    "V",
    "trace",
    "VV",
    "DV",
    "DVV",
    "h",
    "help",
    "v",
    "version",
    "t",
    "tls",
    "tlsverify",
    "s",
    "syslog",
    "js",
    "jetstream",
    "no_advertise",
];

/// Why the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// A bad flag or value: print it with the usage.
    Usage(String),
    /// The configuration file cannot be used: print it alone.
    Config(String),
}

impl CliError {
    pub fn text(&self) -> &str {
        match self {
            CliError::Usage(t) | CliError::Config(t) => t,
        }
    }
}

impl From<String> for CliError {
    fn from(s: String) -> Self {
        CliError::Usage(s)
    }
}

/// Parses the arguments after the program name. A configuration file
/// (`-c`) is read first and the other flags override what it sets, as
/// nats-server merges them.
pub fn parse<I, S>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}").into());
        };
        if flag.is_empty() || flag.starts_with('-') {
            return Err(format!("bad flag syntax: {arg}").into());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if let Some((_, feature)) = NOT_YET.iter().find(|(names, _)| names.contains(&&*name)) {
            return Err(format!(
                "flag -{name} is not supported yet: natrix does not have {feature} yet"
            )
            .into());
        }
        if BOOLS.contains(&&*name) {
            let on = match inline.as_deref() {
                None => true,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| format!("invalid boolean value {v:?} for -{name}"))?,
            };
            flags.push((name, Some(on.to_string())));
            continue;
        }
        if !VALUES.contains(&&*name) {
            return Err(format!("flag provided but not defined: -{name}").into());
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        flags.push((name, Some(value)));
    }
    let is_on = |names: &[&str]| {
        flags
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .is_some_and(|(_, v)| v.as_deref() == Some("true"))
    };
    if is_on(&["v", "version"]) {
        return Ok(Command::Version);
    }
    if is_on(&["h", "help"]) {
        return Ok(Command::Help);
    }
    let value_of = |names: &[&str]| {
        flags
            .iter()
            .rev()
            .find(|(n, _)| names.contains(&n.as_str()))
            .and_then(|(_, v)| v.clone())
    };
    if let Some(sig) = value_of(&["sl", "signal"]) {
        return Ok(Command::Signal(sig));
    }
    let mut cfg = RunConfig {
        config_file: value_of(&["c", "config"]),
        check_only: is_on(&["t"]),
        ..RunConfig::default()
    };
    if cfg.check_only && cfg.config_file.is_none() {
        return Err(CliError::Config(
            "must specify [-c, --config] option to check configuration file syntax".into(),
        ));
    }
    if let Some(path) = cfg.config_file.clone() {
        cfg.warnings = crate::config_file::load(&path, &mut cfg.options, &mut cfg.process)
            .map_err(CliError::Config)?;
    }
    apply_flags(&mut cfg, &flags)?;
    apply_tls_flags(&mut cfg, &flags).map_err(CliError::Config)?;
    cfg.flags = flags;
    Ok(Command::Run(Box::new(cfg)))
}

/// Reads the configuration file again and applies the same flags over it
/// (flags keep winning across reloads, as in nats-server).
pub fn reread(cfg: &RunConfig) -> Result<RunConfig, String> {
    let path = cfg.config_file.clone().ok_or_else(|| {
        "can only reload config when a file is provided using -c or --config".to_string()
    })?;
    let mut new = RunConfig {
        config_file: Some(path.clone()),
        flags: cfg.flags.clone(),
        ..RunConfig::default()
    };
    new.warnings = crate::config_file::load(&path, &mut new.options, &mut new.process)?;
    apply_flags(&mut new, &cfg.flags)?;
    apply_tls_flags(&mut new, &cfg.flags)?;
    Ok(new)
}

/// The `--tls*` flags, as nats-server reads them: any of them (but
/// `--tls=false`, which turns TLS off) replaces the file's TLS settings
/// with the flags' own, keeping only the file's handshake timeout (and
/// `handshake_first`); the certificate and key must then come as flags.
/// `--tlsverify` implies `--tls`.
fn apply_tls_flags(cfg: &mut RunConfig, flags: &[(String, Option<String>)]) -> Result<(), String> {
    let last = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    };
    if last("tls").as_deref() == Some("false") {
        cfg.options.tls = None;
        return Ok(());
    }
    let given = ["tls", "tlsverify", "tlscert", "tlskey", "tlscacert"]
        .iter()
        .any(|n| last(n).is_some());
    if !given {
        return Ok(());
    }
    let cert = last("tlscert")
        .filter(|c| !c.is_empty())
        .ok_or("TLS Server certificate must be present and valid")?;
    let key = last("tlskey")
        .filter(|k| !k.is_empty())
        .ok_or("TLS Server private key must be present and valid")?;
    let mut tls = TlsOptions::new(cert, key);
    tls.ca_file = last("tlscacert").filter(|c| !c.is_empty());
    tls.verify = last("tlsverify").as_deref() == Some("true");
    if let Some(file) = &cfg.options.tls {
        tls.timeout = file.timeout;
        tls.handshake_first = file.handshake_first;
    }
    cfg.options.tls = Some(tls);
    Ok(())
}

/// Applies parsed flags over what the configuration file set.
/// The cluster settings, made if the file had none.
fn cluster_settings(cfg: &mut RunConfig) -> &mut ClusterOptions {
    cfg.options
        .cluster
        .get_or_insert_with(ClusterOptions::default)
}

fn apply_flags(cfg: &mut RunConfig, flags: &[(String, Option<String>)]) -> Result<(), String> {
    let (mut user, mut pass, mut token) = (None, None, None);
    for (name, value) in flags {
        let value = value.clone().unwrap_or_default();
        let on = value == "true";
        match name.as_str() {
            "T" | "logtime" => cfg.process.log_time = on,
            "D" | "debug" => cfg.options.debug = on,
            // -VV also traces the system account's traffic; natrix has no
            // system account yet, so it traces what -V does.
            "V" | "trace" | "VV" => cfg.options.trace = on,
            "DV" | "DVV" => {
                cfg.options.debug = on;
                cfg.options.trace = on;
            }
            "a" | "addr" | "net" => cfg.options.host = value,
            "p" | "port" => {
                let port: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cfg.options.port = match port {
                    -1 => 0,
                    0..=65535 => port as u16,
                    _ => {
                        return Err(format!(
                            "invalid value {value:?} for flag -{name}: out of range"
                        ));
                    }
                };
            }
            "n" | "name" | "server_name" => cfg.options.server_name = value,
            "m" | "http_port" => cfg.process.http_port = Some(monitor_port(name, &value)?),
            "ms" | "https_port" => cfg.process.https_port = Some(monitor_port(name, &value)?),
            "P" | "pid" => cfg.process.pid_file = Some(value),
            "s" | "syslog" => cfg.process.syslog = on,
            "r" | "remote_syslog" => cfg.process.remote_syslog = Some(value),
            "ports_file_dir" => cfg.process.ports_file_dir = Some(value),
            "l" | "log" => cfg.process.log_file = Some(value),
            "user" => user = Some(value),
            "pass" => pass = Some(value),
            "auth" => token = Some(value),
            // As in nats-server, `-js=false` does not turn off a JetStream
            // the file turns on, and an empty `-sd` changes nothing.
            "js" | "jetstream" if on => enable_jetstream(cfg),
            "sd" | "store_dir" if !value.is_empty() => jetstream_settings(cfg).store_dir = value,
            "cluster" | "cluster_listen" => {
                let url = RouteUrl::parse(&value)
                    .map_err(|e| format!("invalid value {value:?} for flag -{name}: {e}"))?;
                let c = cluster_settings(cfg);
                c.host = url.host;
                c.port = url.port;
                if url.user.is_some() {
                    c.user = url.user;
                    c.pass = url.pass;
                }
            }
            "routes" => {
                let c = cluster_settings(cfg);
                c.routes.clear();
                for r in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    let url = RouteUrl::parse(r)
                        .map_err(|e| format!("invalid value {value:?} for flag -{name}: {e}"))?;
                    c.routes.push(url);
                }
            }
            "cluster_name" => cluster_settings(cfg).name = value,
            "cluster_advertise" => cluster_settings(cfg).advertise = Some(value),
            "no_advertise" => cluster_settings(cfg).no_advertise = on,
            "connect_retries" => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cluster_settings(cfg).connect_retries = u32::try_from(n.max(0)).unwrap_or(0);
            }
            "log_size_limit" => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cfg.process.log_size_limit = n.max(0) as u64;
            }
            "max_traced_msg_len" => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cfg.options.max_traced_msg_len = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            }
            _ => {}
        }
    }
    match (user, pass, token) {
        (None, None, None) => {}
        (Some(_), Some(_), Some(_)) => {
            return Err("use either --user/--pass or --auth, not both".into());
        }
        (None, None, Some(t)) => cfg.options.auth = Auth::Token(t),
        (Some(u), Some(p), None) => {
            cfg.options.auth = Auth::UserPassword {
                user: u,
                password: p,
            }
        }
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err("--user and --pass go together".into());
        }
    }
    Ok(())
}

/// Turns JetStream on, with the settings the file gave while leaving it
/// off (if any).
fn enable_jetstream(cfg: &mut RunConfig) {
    if cfg.options.jetstream.is_none() {
        let kept = cfg.process.jetstream_off.take();
        cfg.options.jetstream = Some(kept.unwrap_or_default());
    }
}

/// The JetStream settings a flag changes: those in force, or those kept
/// for `-js` while JetStream is off.
fn jetstream_settings(cfg: &mut RunConfig) -> &mut JetStreamOptions {
    match &mut cfg.options.jetstream {
        Some(js) => js,
        None => cfg.process.jetstream_off.get_or_insert_default(),
    }
}

/// A monitoring port flag's value; `-1` asks for a free port.
fn monitor_port(name: &str, value: &str) -> Result<u16, String> {
    let port: i64 = value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for flag -{name}: parse error"))?;
    match port {
        -1 => Ok(0),
        0..=65535 => Ok(port as u16),
        _ => Err(format!(
            "invalid value {value:?} for flag -{name}: out of range"
        )),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunConfig {
        match parse(args.iter().copied()).unwrap() {
            Command::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn spellings() {
        assert_eq!(run(&["-p", "1234"]).options.port, 1234);
        assert_eq!(run(&["--port=1234"]).options.port, 1234);
        assert_eq!(run(&["-port", "1234"]).options.port, 1234);
        let c = run(&["-p", "-1"]);
        assert_eq!(c.options.port, 0);
        assert_eq!(run(&["--addr", "127.0.0.1"]).options.host, "127.0.0.1");
        assert_eq!(run(&["-net", "::1"]).options.host, "::1");
        assert_eq!(run(&["--server_name", "x"]).options.server_name, "x");
        let c = run(&["-DV", "-T=false"]);
        assert!(c.options.debug && c.options.trace && !c.process.log_time);
        assert_eq!(
            run(&["--user", "u", "--pass", "p"]).options.auth,
            Auth::UserPassword {
                user: "u".into(),
                password: "p".into()
            }
        );
        assert_eq!(run(&["--auth", "t"]).options.auth, Auth::Token("t".into()));
        assert_eq!(parse(["-v"]).unwrap(), Command::Version);
        assert_eq!(parse(["--help"]).unwrap(), Command::Help);
        let c = run(&[
            "--cluster",
            "nats://127.0.0.1:6222",
            "--routes",
            "nats://127.0.0.1:6223, nats-route://u:p@localhost:6224",
            "--cluster_name",
            "C1",
            "--no_advertise",
        ])
        .options
        .cluster
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.name.as_str()),
            ("127.0.0.1", 6222, "C1")
        );
        assert!(c.no_advertise);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[1].user.as_deref(), Some("u"));
    }

    #[test]
    fn refusals() {
        let err = |args: &[&str]| parse(args.iter().copied()).unwrap_err().text().to_string();
        assert!(err(&["--foo"]).contains("not defined"));
        assert!(err(&["-p", "abc"]).contains("invalid value"));
        assert!(err(&["-p"]).contains("needs an argument"));
        assert!(err(&["--cluster", "x"]).contains("invalid value"));
        assert!(err(&["--routes", "nats://a:b"]).contains("invalid value"));
        assert_eq!(
            err(&["--tls"]),
            "TLS Server certificate must be present and valid"
        );
        assert_eq!(
            err(&["--tlsverify", "--tlscert", "c"]),
            "TLS Server private key must be present and valid"
        );
        assert_eq!(
            err(&["-t"]),
            "must specify [-c, --config] option to check configuration file syntax"
        );
        assert_eq!(run(&["-m", "8222"]).process.http_port, Some(8222));
        assert_eq!(run(&["-ms", "8443"]).process.https_port, Some(8443));
        assert_eq!(run(&["--https_port=-1"]).process.https_port, Some(0));
        assert!(parse(["--user", "u"]).is_err());
        let c = run(&["--log_size_limit", "1000", "--max_traced_msg_len=8"]);
        assert_eq!(
            (c.process.log_size_limit, c.options.max_traced_msg_len),
            (1000, 8)
        );
        assert_eq!(
            parse(["--signal", "ldm=12"]).unwrap(),
            Command::Signal("ldm=12".into())
        );
    }

    #[test]
    fn jetstream_flags() {
        let js = |args: &[&str]| run(args).options.jetstream;
        assert_eq!(js(&[]), None);
        assert_eq!(js(&["-js"]), Some(JetStreamOptions::default()));
        assert_eq!(js(&["--jetstream"]), Some(JetStreamOptions::default()));
        assert_eq!(js(&["-js=false"]), None);
        // -sd sets the directory without turning JetStream on, as in
        // nats-server; with -js (before or after) it is used.
        let c = run(&["-sd", "/data"]);
        assert_eq!(c.options.jetstream, None);
        assert_eq!(
            c.process.jetstream_off.map(|j| j.store_dir),
            Some("/data".into())
        );
        for args in [
            &["-sd", "/data", "-js"][..],
            &["--jetstream", "--store_dir=/data"],
        ] {
            assert_eq!(js(args).map(|j| j.store_dir), Some("/data".into()));
        }
    }

    #[test]
    fn jetstream_flags_over_the_file() {
        let dir = std::env::temp_dir().join(format!("natrix-cli-js-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.to_string_lossy().into_owned()
        };
        let on = file("on.conf", "jetstream { store_dir: /f, max_mem: 1G }\n");
        let off = file(
            "off.conf",
            "jetstream { enabled: false, store_dir: /f, max_mem: 1G }\n",
        );
        let top = file("top.conf", "store_dir: /f\n");
        let js = |args: &[&str]| run(args).options.jetstream;
        // The flag's directory wins over the file's; the rest stays.
        let j = js(&["-c", &on, "-sd", "/flag"]).expect("on");
        assert_eq!(
            (j.store_dir.as_str(), j.max_memory_store),
            ("/flag", 1_000_000_000)
        );
        // -js=false does not turn it off.
        assert!(js(&["-c", &on, "-js=false"]).is_some());
        // -js turns on what the file left off, with the file's settings.
        assert_eq!(js(&["-c", &off]), None);
        let j = js(&["-c", &off, "-js"]).expect("on");
        assert_eq!(
            (j.store_dir.as_str(), j.max_memory_store),
            ("/f", 1_000_000_000)
        );
        assert_eq!(
            js(&["-c", &top, "-js"]).map(|j| j.store_dir),
            Some("/f".into())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tls_flags() {
        let c = run(&["--tls", "--tlscert", "c.pem", "--tlskey=k.pem"]);
        let tls = c.options.tls.expect("tls");
        assert_eq!(
            (tls.cert_file.as_str(), tls.key_file.as_str()),
            ("c.pem", "k.pem")
        );
        assert!(!tls.verify && tls.ca_file.is_none());
        // --tlsverify alone turns TLS on, with client verification.
        let c = run(&[
            "-tlsverify",
            "-tlscert",
            "c",
            "-tlskey",
            "k",
            "-tlscacert",
            "ca",
        ]);
        let tls = c.options.tls.expect("tls");
        assert!(tls.verify);
        assert_eq!(tls.ca_file.as_deref(), Some("ca"));
        // --tls=false wins over the rest.
        let c = run(&["--tls=false", "--tlscert", "c", "--tlskey", "k"]);
        assert!(c.options.tls.is_none());
    }
}
