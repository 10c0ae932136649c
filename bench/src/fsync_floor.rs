//! `fsync-floor`: the physical limit of a server that syncs before it
//! acknowledges. One writer appends a record to a new file and fsyncs
//! (`fdatasync`, as natrix's store does), one write at a time, no server
//! and no socket: its rate is the most acks a second one publisher with one
//! publish in flight can get from any such server on this filesystem, and
//! its latency the least an ack can take.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::args::Limit;
use crate::conn::ClientRun;

pub struct FsyncRun {
    /// `msgs` is the appends, each followed by its fsync.
    pub writer: ClientRun,
    /// Nanoseconds from the start of each write to the end of its fsync.
    pub latency: Histogram<u64>,
    /// The writer's own CPU time (the write and fsync system calls are
    /// most of it): what syncing costs a server's CPU per fsync.
    pub cpu_secs: f64,
}

/// Appends `record_bytes` at a time to a fresh file under `dir` and syncs
/// after each, until `limit`; the file is removed afterwards.
pub fn run(dir: &Path, record_bytes: usize, limit: Limit) -> io::Result<FsyncRun> {
    let path = dir.join(format!("natrix-bench-fsync-{}", std::process::id()));
    let result = append_and_sync(&path, record_bytes, limit);
    let _ = std::fs::remove_file(&path);
    result
}

fn append_and_sync(path: &Path, record_bytes: usize, limit: Limit) -> io::Result<FsyncRun> {
    let mut file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)?;
    let record = vec![b'x'; record_bytes];
    let mut latency = Histogram::<u64>::new(3).map_err(io::Error::other)?;
    let cpu_before = crate::floor::thread_cpu_ns()?;
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        match limit {
            Limit::Msgs(n) if done >= n => break,
            Limit::Duration(d) if start.elapsed() >= d => break,
            _ => {}
        }
        let t0 = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        latency.record(ns.max(1)).map_err(io::Error::other)?;
        done += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_ns = crate::floor::thread_cpu_ns()?.saturating_sub(cpu_before);
    Ok(FsyncRun {
        writer: ClientRun {
            msgs: done,
            secs,
            cut_off: false,
        },
        latency,
        cpu_secs: cpu_ns as f64 / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_is_written_and_synced_then_the_file_goes() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("natrix-bench-fsync-test-{}", std::process::id()));
        let r = append_and_sync(&path, 100, Limit::Msgs(20)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2000);
        std::fs::remove_file(&path).unwrap();
        assert_eq!((r.writer.msgs, r.latency.len()), (20, 20));
        let r = run(&dir, 10, Limit::Msgs(3)).unwrap();
        assert_eq!(r.writer.msgs, 3);
        let leftover = dir.join(format!("natrix-bench-fsync-{}", std::process::id()));
        assert!(!leftover.exists(), "the file is removed");
    }
}
