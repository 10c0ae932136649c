//! A server process's CPU time and memory, read from `/proc` (Linux).
//!
//! CPU time comes two ways: `utime + stime` from `/proc/<pid>/stat`, in
//! 10 ms ticks, which counts threads that have exited too; and the sum of
//! every live thread's `/proc/<pid>/task/<tid>/schedstat`, in nanoseconds,
//! which makes short runs measurable but misses exited threads.

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`
/// (`USER_HZ`, 100 on every Linux this runs on).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User plus system CPU time, in seconds.
    pub cpu_secs: f64,
    /// The same from the scheduler's per-thread nanosecond counters.
    pub sched_cpu_secs: Option<f64>,
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
        sched_cpu_secs: sched_cpu_ns(pid).map(|ns| ns as f64 / 1e9),
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// Nanoseconds on CPU summed over the live threads.
fn sched_cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that exits between the listing and the read counts 0.
        if let Ok(line) = std::fs::read_to_string(path) {
            total += line.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::sample(std::process::id()).expect("/proc is readable");
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
        assert!(s.sched_cpu_secs.is_some_and(|c| c > 0.0));
    }
}
