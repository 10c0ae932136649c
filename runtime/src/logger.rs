//! Log lines in nats-server's format:
//! `[pid] 2006/01/02 15:04:05.000000 [INF] message`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use natrix_core::server::LogLevel;
use natrix_core::time::civil_from_days;

/// Where and how much to log.
pub struct Logger {
    out: Box<dyn Write + Send>,
    /// The log file, when logging to one (reopened on SIGUSR1).
    path: Option<PathBuf>,
    pid: u32,
    timestamps: bool,
    debug: bool,
    trace: bool,
}

impl Logger {
    pub fn stderr(timestamps: bool, debug: bool, trace: bool) -> Self {
        Logger {
            out: Box::new(io::stderr()),
            path: None,
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
        Ok(Logger {
            out: Box::new(f),
            path: Some(path.to_path_buf()),
            ..Logger::stderr(timestamps, debug, trace)
        })
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
        let _ = self.out.write_all(line.as_bytes());
    }

    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }
}

/// UTC time as `2006/01/02 15:04:05.000000`. (nats-server prints local
/// time, which is UTC on the hosts and containers it usually runs in.)
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        now.subsec_micros()
    )
}
