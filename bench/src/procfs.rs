//! A server process's CPU time and memory, read from `/proc` (Linux).

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`
/// (`USER_HZ`, 100 on every Linux this runs on).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time, in seconds.
    pub cpu_secs: f64,
    /// Resident set size now, in KiB.
    pub rss_kib: u64,
    /// Peak resident set size since start, in KiB.
    pub hwm_kib: u64,
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields are counted after its ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_secs: (utime + stime) as f64 / TICKS_PER_SEC,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample(std::process::id()).expect("/proc is readable");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
