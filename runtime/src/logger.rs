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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as i64;
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400);
        let mut bak = path.clone().into_os_string();
        bak.push(format!(
            ".{y:04}.{m:02}.{d:02}.{:02}.{:02}.{:02}.{:09}",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60,
            now.subsec_nanos()
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
