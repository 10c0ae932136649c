//! Log lines in nats-server's format:
//! `[pid] 2006/01/02 15:04:05.000000 [INF] message`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use natrix_core::server::LogLevel;

/// Where and how much to log.
pub struct Logger {
    out: Box<dyn Write + Send>,
    pid: u32,
    timestamps: bool,
    debug: bool,
    trace: bool,
}

impl Logger {
    pub fn stderr(timestamps: bool, debug: bool, trace: bool) -> Self {
        Logger {
            out: Box::new(io::stderr()),
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
            ..Logger::stderr(timestamps, debug, trace)
        })
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

/// (year, month, day) from days since 1970-01-01 (Howard Hinnant's method).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        assert_eq!(civil_from_days(1_795_219_200 / 86_400), (2026, 11, 21));
        assert_eq!(civil_from_days(951_782_400 / 86_400), (2000, 2, 29));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }
}
