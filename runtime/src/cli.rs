//! The nats-server command line: the same flags, spelled the same ways
//! (`-p 4222`, `--port=4222`, `-port 4222`), for everything natrix has.
//! Flags for features natrix does not have yet are refused by name, never
//! silently ignored.

use natrix_core::Options;
use natrix_core::auth::Auth;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub options: Options,
    /// `-p -1`: let the OS pick the port.
    pub random_port: bool,
    pub pid_file: Option<String>,
    pub ports_file_dir: Option<String>,
    pub log_file: Option<String>,
    pub log_time: bool,
    /// `--log_size_limit`: rotate the log file past this many bytes (0: never).
    pub log_size_limit: u64,
    /// `-m`: HTTP monitoring port (0: a random free port).
    pub http_port: Option<u16>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            options: Options::default(),
            random_port: false,
            pid_file: None,
            ports_file_dir: None,
            log_file: None,
            log_time: true,
            log_size_limit: 0,
            http_port: None,
        }
    }
}

pub const USAGE: &str = "\
Usage: natrix [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222; -1 for random)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).
    -sl, --signal <signal>[=<pid>]   Send signal to natrix process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/natrix.pid)

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -DV                              Debug and trace
        --log_size_limit <limit>     Logfile size limit in bytes, rotated past it (default: none)
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version

Not yet available (refused with a message): -ms/--https_port,
-c/--config, -t, --client_advertise, -s/--syslog,
-r/--remote_syslog, -VV, -DVV,
-js/--jetstream, -sd/--store_dir, --tls, --tlscert, --tlskey, --tlsverify,
--tlscacert, --routes, --cluster, --cluster_name, --no_advertise,
--cluster_advertise, --connect_retries, --cluster_listen, --profile, --help_tls.
";

/// Flags nats-server has that natrix does not implement yet, with the
/// feature each belongs to.
const NOT_YET: &[(&[&str], &str)] = &[
    (&["ms", "https_port"], "HTTPS monitoring"),
    (&["c", "config", "t"], "configuration files"),
    (
        &["client_advertise"],
        "client URL advertisement (clustering)",
    ),
    (&["s", "syslog", "r", "remote_syslog"], "syslog"),
    (&["VV", "DVV"], "system account tracing"),
    (&["js", "jetstream", "sd", "store_dir"], "JetStream"),
    (
        &[
            "tls",
            "tlscert",
            "tlskey",
            "tlsverify",
            "tlscacert",
            "help_tls",
        ],
        "TLS",
    ),
    (
        &[
            "routes",
            "cluster",
            "cluster_name",
            "no_advertise",
            "cluster_advertise",
            "connect_retries",
            "cluster_listen",
        ],
        "clustering",
    ),
    (&["profile"], "profiling"),
];

/// Flags that take a value.
const VALUES: &[&str] = &[
    "m",
    "http_port",
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
];

/// Flags that take no value (Go's boolean flags: `-D` or `-D=true`).
const BOOLS: &[&str] = &[
    "T", "logtime", "D", "debug", "V", "trace", "DV", "h", "help", "v", "version",
];

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut cfg = RunConfig::default();
    let (mut user, mut pass, mut token) = (None, None, None);
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        if flag.is_empty() || flag.starts_with('-') {
            return Err(format!("bad flag syntax: {arg}"));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if let Some((_, feature)) = NOT_YET.iter().find(|(names, _)| names.contains(&name)) {
            return Err(format!(
                "flag -{name} is not supported yet: natrix does not have {feature} yet"
            ));
        }
        if BOOLS.contains(&name) {
            let on = match inline.as_deref() {
                None => true,
                Some(v) => parse_bool(v)
                    .ok_or_else(|| format!("invalid boolean value {v:?} for -{name}"))?,
            };
            match name {
                "T" | "logtime" => cfg.log_time = on,
                "D" | "debug" => cfg.options.debug = on,
                "V" | "trace" => cfg.options.trace = on,
                "DV" => {
                    cfg.options.debug = on;
                    cfg.options.trace = on;
                }
                "h" | "help" if on => return Ok(Command::Help),
                "v" | "version" if on => return Ok(Command::Version),
                _ => {}
            }
            continue;
        }
        if !VALUES.contains(&name) {
            return Err(format!("flag provided but not defined: -{name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        match name {
            "a" | "addr" | "net" => cfg.options.host = value,
            "p" | "port" => {
                let port: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                match port {
                    -1 => {
                        cfg.random_port = true;
                        cfg.options.port = 0;
                    }
                    0..=65535 => cfg.options.port = port as u16,
                    _ => {
                        return Err(format!(
                            "invalid value {value:?} for flag -{name}: out of range"
                        ));
                    }
                }
            }
            "n" | "name" | "server_name" => cfg.options.server_name = value,
            "m" | "http_port" => {
                let port: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cfg.http_port = match port {
                    -1 => Some(0),
                    0..=65535 => Some(port as u16),
                    _ => {
                        return Err(format!(
                            "invalid value {value:?} for flag -{name}: out of range"
                        ));
                    }
                };
            }
            "P" | "pid" => cfg.pid_file = Some(value),
            "ports_file_dir" => cfg.ports_file_dir = Some(value),
            "l" | "log" => cfg.log_file = Some(value),
            "user" => user = Some(value),
            "pass" => pass = Some(value),
            "auth" => token = Some(value),
            "sl" | "signal" => return Ok(Command::Signal(value)),
            "log_size_limit" => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cfg.log_size_limit = n.max(0) as u64;
            }
            "max_traced_msg_len" => {
                let n: i64 = value.parse().map_err(|_| {
                    format!("invalid value {value:?} for flag -{name}: parse error")
                })?;
                cfg.options.max_traced_msg_len = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            }
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    cfg.options.auth = match (user, pass, token) {
        (None, None, None) => Auth::None,
        (Some(_), Some(_), Some(_)) => {
            return Err("use either --user/--pass or --auth, not both".into());
        }
        (None, None, Some(t)) => Auth::Token(t),
        (Some(u), Some(p), None) => Auth::UserPassword {
            user: u,
            password: p,
        },
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err("--user and --pass go together".into());
        }
    };
    Ok(Command::Run(Box::new(cfg)))
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
        assert!(c.random_port);
        assert_eq!(run(&["--addr", "127.0.0.1"]).options.host, "127.0.0.1");
        assert_eq!(run(&["-net", "::1"]).options.host, "::1");
        assert_eq!(run(&["--server_name", "x"]).options.server_name, "x");
        let c = run(&["-DV", "-T=false"]);
        assert!(c.options.debug && c.options.trace && !c.log_time);
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
    }

    #[test]
    fn refusals() {
        assert!(parse(["--foo"]).unwrap_err().contains("not defined"));
        assert!(parse(["-p", "abc"]).unwrap_err().contains("invalid value"));
        assert!(parse(["-p"]).unwrap_err().contains("needs an argument"));
        assert!(parse(["-js"]).unwrap_err().contains("JetStream"));
        assert!(parse(["--tls"]).unwrap_err().contains("TLS"));
        assert!(parse(["-ms", "8222"]).unwrap_err().contains("monitoring"));
        assert_eq!(run(&["-m", "8222"]).http_port, Some(8222));
        assert!(parse(["--user", "u"]).is_err());
        let c = run(&["--log_size_limit", "1000", "--max_traced_msg_len=8"]);
        assert_eq!((c.log_size_limit, c.options.max_traced_msg_len), (1000, 8));
        assert_eq!(
            parse(["--signal", "ldm=12"]).unwrap(),
            Command::Signal("ldm=12".into())
        );
    }
}
