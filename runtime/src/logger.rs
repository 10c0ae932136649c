//! Log lines in nats-server's format:
//! `[pid] 2006/01/02 15:04:05.000000 [INF] message`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use natrix_core::server::LogLevel;
use natrix_core::time::civil_from_days;

/// A syslog destination: the local daemon's socket or a remote server.
enum Syslog {
    Local(std::os::unix::net::UnixDatagram),
    Udp(std::net::UdpSocket),
    Tcp(std::net::TcpStream),
}

/// Where and how much to log.
pub struct Logger {
    out: Box<dyn Write + Send>,
    /// Set when logging to syslog (`-s`, `-r`): lines go there instead.
    syslog: Option<(Syslog, String, String)>,
    /// The log file, when logging to one (reopened on SIGUSR1).
    path: Option<PathBuf>,
    /// Bytes in the log file; past `size_limit` (when not 0) it is rotated.
    written: u64,
    size_limit: u64,
    pid: u32,
    timestamps: bool,
    debug: bool,
    trace: bool,
}

impl Logger {
    pub fn stderr(timestamps: bool, debug: bool, trace: bool) -> Self {
        Logger {
            out: Box::new(io::stderr()),
            syslog: None,
            path: None,
            written: 0,
            size_limit: 0,
            pid: std::process::id(),
            timestamps,
            debug,
            trace,
        }
    }

    /// A logger that drops everything (simulation, benchmarks).
    pub fn discard() -> Self {
        Logger {
            out: Box::new(io::sink()),
            ..Logger::stderr(false, false, false)
        }
    }

    pub fn file(path: &Path, timestamps: bool, debug: bool, trace: bool) -> io::Result<Self> {
        let f: File = OpenOptions::new().create(true).append(true).open(path)?;
        let written = f.metadata()?.len();
        Ok(Logger {
            out: Box::new(f),
            path: Some(path.to_path_buf()),
            written,
            ..Logger::stderr(timestamps, debug, trace)
        })
    }

    /// Logs to the local syslog daemon (`-s`): facility daemon, tagged with
    /// the program name and pid, as nats-server's syslog logger.
    pub fn local_syslog(debug: bool, trace: bool) -> io::Result<Self> {
        let sock = std::os::unix::net::UnixDatagram::unbound()?;
        let mut last = None;
        for path in ["/dev/log", "/var/run/syslog", "/var/run/log"] {
            match sock.connect(path) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        Ok(Logger {
            syslog: Some((Syslog::Local(sock), program_tag(), String::new())),
            ..Logger::stderr(false, debug, trace)
        })
    }

    /// Logs to a remote syslog server (`-r udp://host:514`, `tcp://…`,
    /// `unix:///path`).
    pub fn remote_syslog(url: &str, debug: bool, trace: bool) -> io::Result<Self> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("error invalid network type: {url:?}"),
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let host = hostname();
        let sink = match scheme {
            "udp" => {
                let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
                s.connect(rest)?;
                Syslog::Udp(s)
            }
            "tcp" => Syslog::Tcp(std::net::TcpStream::connect(rest)?),
            "unix" => {
                let s = std::os::unix::net::UnixDatagram::unbound()?;
                s.connect(rest)?;
                Syslog::Local(s)
            }
            _ => return Err(bad()),
        };
        Ok(Logger {
            syslog: Some((sink, program_tag(), host)),
            ..Logger::stderr(false, debug, trace)
        })
    }

    /// Rotates the log file once it grows past `limit` bytes (0: never), as
    /// `log_size_limit` does: the full file is renamed
    /// `<file>.YYYY.MM.DD.hh.mm.ss.nnnnnnnnn` and a new one started.
    pub fn set_size_limit(&mut self, limit: u64) {
        if self.path.is_some() {
            self.size_limit = limit;
        }
    }

    fn rotate(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let c = civil_now();
        let mut bak = path.clone().into_os_string();
        bak.push(format!(
            ".{:04}.{:02}.{:02}.{:02}.{:02}.{:02}.{:09}",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos
        ));
        let bak = PathBuf::from(bak);
        let _ = self.out.flush();
        let opened = std::fs::rename(&path, &bak)
            .and_then(|()| OpenOptions::new().create(true).append(true).open(&path));
        match opened {
            Ok(f) => {
                self.out = Box::new(f);
                self.written = 0;
                self.info(&format!(
                    "Rotated log, backup saved as {:?}",
                    bak.display().to_string()
                ));
            }
            Err(e) => {
                // Try again when the file has doubled.
                self.size_limit = self.size_limit.saturating_mul(2);
                self.log(
                    LogLevel::Error,
                    &format!(
                        "Unable to rotate the log file ({e}), will attempt next rotation at size {}",
                        self.size_limit
                    ),
                );
            }
        }
    }

    /// Reopens the log file, so that a file moved away by log rotation is
    /// replaced by a new one (SIGUSR1, `--signal reopen`).
    pub fn reopen(&mut self) {
        let Some(path) = self.path.clone() else {
            self.info("File log re-open ignored, not a file logger");
            return;
        };
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => {
                self.written = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.out = Box::new(f);
                self.info("File log re-opened");
            }
            Err(e) => self.log(
                LogLevel::Error,
                &format!("Unable to re-open the log file {}: {e}", path.display()),
            ),
        }
    }

    pub fn enabled(&self, level: LogLevel) -> bool {
        match level {
            LogLevel::Debug => self.debug,
            LogLevel::Trace => self.trace,
            _ => true,
        }
    }

    pub fn log(&mut self, level: LogLevel, message: &str) {
        if !self.enabled(level) {
            return;
        }
        if let Some((sink, tag, host)) = &mut self.syslog {
            send_syslog(sink, tag, host, level, message);
            return;
        }
        let tag = match level {
            LogLevel::Fatal => "[FTL]",
            LogLevel::Error => "[ERR]",
            LogLevel::Warn => "[WRN]",
            LogLevel::Info => "[INF]",
            LogLevel::Debug => "[DBG]",
            LogLevel::Trace => "[TRC]",
        };
        let line = if self.timestamps {
            format!("[{}] {} {tag} {message}\n", self.pid, local_timestamp())
        } else {
            format!("[{}] {tag} {message}\n", self.pid)
        };
        if self.out.write_all(line.as_bytes()).is_ok() {
            self.written += line.len() as u64;
            if self.size_limit > 0 && self.written > self.size_limit {
                self.rotate();
            }
        }
    }

    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }
}

/// The program name, syslog's tag.
fn program_tag() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "natrix".into())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// One syslog message in the BSD format Go's `log/syslog` writes: locally
/// `<pri>Jan _2 15:04:05 tag[pid]: msg`, remotely with an RFC 3339 time and
/// the host name. Local messages use facility daemon; remote ones facility
/// 0, as nats-server's do. Trace lines go out as notices.
fn send_syslog(sink: &mut Syslog, tag: &str, host: &str, level: LogLevel, msg: &str) {
    let severity = match level {
        LogLevel::Fatal => 2,
        LogLevel::Error => 3,
        LogLevel::Warn => 4,
        LogLevel::Info | LogLevel::Trace => 5,
        LogLevel::Debug => 7,
    };
    let pid = std::process::id();
    let Civil {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        ..
    } = civil_now();
    let line = match sink {
        Syslog::Local(_) => {
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let month = MONTHS[((mo - 1).clamp(0, 11)) as usize];
            format!(
                "<{}>{month} {d:>2} {h:02}:{mi:02}:{s:02} {tag}[{pid}]: {msg}\n",
                3 * 8 + severity
            )
        }
        _ => format!(
            "<{severity}>{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z {host} {tag}[{pid}]: {msg}\n"
        ),
    };
    let _ = match sink {
        Syslog::Local(s) => s.send(line.as_bytes()).map(|_| ()),
        Syslog::Udp(s) => s.send(line.as_bytes()).map(|_| ()),
        Syslog::Tcp(s) => s.write_all(line.as_bytes()),
    };
}

/// The wall clock now, in UTC, split for printing.
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    nanos: u32,
}

fn civil_now() -> Civil {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: (rem % 3600) / 60,
        second: rem % 60,
        nanos: now.subsec_nanos(),
    }
}

/// UTC time as `2006/01/02 15:04:05.000000`. (nats-server prints local
/// time, which is UTC on the hosts and containers it usually runs in.)
fn local_timestamp() -> String {
    let c = civil_now();
    format!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02}.{:06}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("natrix-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn rotates_past_the_size_limit() {
        let d = dir("rotate");
        let path = d.join("natrix.log");
        let mut l = Logger::file(&path, true, false, false).unwrap();
        l.set_size_limit(200);
        for i in 0..10 {
            l.info(&format!("line {i} of the log, long enough to matter"));
        }
        drop(l);
        let mut names: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Each line is about 90 bytes: the file rotates every third line.
        assert!(names.len() >= 3, "{names:?}");
        let backups: Vec<&String> = names.iter().filter(|n| *n != "natrix.log").collect();
        for b in &backups {
            // natrix.log.YYYY.MM.DD.hh.mm.ss.nnnnnnnnn
            let stamp = b.strip_prefix("natrix.log.").unwrap();
            let parts: Vec<&str> = stamp.split('.').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [4, 2, 2, 2, 2, 2, 9]
            );
            let size = std::fs::metadata(d.join(b)).unwrap().len();
            assert!(size > 200 && size < 400, "{b}: {size} bytes");
        }
        let current = std::fs::read_to_string(&path).unwrap();
        assert!(current.contains("[INF] Rotated log, backup saved as \""));
        let all: String = names
            .iter()
            .map(|n| std::fs::read_to_string(d.join(n)).unwrap())
            .collect();
        for i in 0..10 {
            assert!(all.contains(&format!("line {i} of")), "line {i} kept");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn remote_syslog_messages_in_the_bsd_format() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let url = format!("udp://{}", server.local_addr().unwrap());
        let mut l = Logger::remote_syslog(&url, false, false).unwrap();
        l.log(LogLevel::Debug, "not sent: debug is off");
        l.log(LogLevel::Warn, "careful");
        l.log(LogLevel::Error, "broken");
        let mut buf = [0u8; 512];
        let mut got = Vec::new();
        for _ in 0..2 {
            let n = server.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let pid = std::process::id();
        assert!(got[0].starts_with("<4>20"), "{}", got[0]);
        assert!(
            got[0].ends_with(&format!("[{pid}]: careful\n")),
            "{}",
            got[0]
        );
        assert!(got[1].starts_with("<3>") && got[1].ends_with("]: broken\n"));
        assert!(Logger::remote_syslog("ftp://x:1", false, false).is_err());
    }

    #[test]
    fn reopen_starts_a_new_file_after_a_move() {
        let d = dir("reopen");
        let path = d.join("natrix.log");
        let mut l = Logger::file(&path, false, false, false).unwrap();
        l.info("before");
        std::fs::rename(&path, d.join("old.log")).unwrap();
        l.reopen();
        l.info("after");
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.contains("File log re-opened") && now.contains("after"));
        assert!(!now.contains("before"));
        let mut stderr = Logger::stderr(false, false, false);
        stderr.reopen(); // not a file logger: says so, no panic
        let _ = std::fs::remove_dir_all(&d);
    }
}
