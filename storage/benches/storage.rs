//! Storage benchmarks over the real filesystem, printed as a table:
//! append throughput per record size and sync batch, each beside the
//! ceiling of a plain write+fsync loop doing the same writes in the same
//! run; read throughput; and open/recovery time for a 1 GiB store.
//!
//! `cargo bench -p natrix-storage` (add `-- --quick` for a short run).
//! Files go to `$NATRIX_BENCH_DIR` or the system temp dir.

// A benchmark reads the clock and writes plain files for its baseline.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use natrix_storage::rng::SplitMix64;
use natrix_storage::{FileStore, FsDisk, Msg, Store, StreamConfig};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

struct Budget {
    time: Duration,
    max_bytes: u64,
}

fn message(payload_bytes: usize) -> Msg {
    Msg {
        seq: 0,
        ts_unix_nanos: 1,
        subject: "bench.orders".into(),
        headers: Vec::new(),
        payload: vec![0xA5; payload_bytes],
    }
}

/// A plain loop: write each record's bytes, fsync every `batch` writes.
fn ceiling(dir: &Path, record_bytes: usize, batch: u64, budget: &Budget) -> (f64, f64) {
    let path = dir.join("ceiling");
    let mut file = File::create(&path).unwrap();
    let record = vec![0x5A; record_bytes];
    let (mut writes, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < budget.time && bytes < budget.max_bytes {
        for _ in 0..batch {
            file.write_all(&record).unwrap();
        }
        file.sync_data().unwrap();
        writes += batch;
        bytes += batch * record_bytes as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).unwrap();
    (writes as f64 / secs, bytes as f64 / secs / MIB)
}

/// Appends one message per call, syncing (group commit) every `batch`.
fn append(dir: &Path, payload_bytes: usize, batch: u64, budget: &Budget) -> (f64, f64, usize) {
    let name = format!("append-{payload_bytes}-{batch}");
    let (mut store, _) = FileStore::open(FsDisk::new(dir), &name, StreamConfig::default()).unwrap();
    let mut m = message(payload_bytes);
    let record_bytes = m.size_bytes();
    let (mut seq, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < budget.time && bytes < budget.max_bytes {
        for _ in 0..batch {
            seq += 1;
            m.seq = seq;
            store.append(std::slice::from_ref(&m)).unwrap();
        }
        assert_eq!(store.sync().unwrap(), seq);
        bytes += batch * record_bytes;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(store);
    std::fs::remove_dir_all(dir.join(&name)).unwrap();
    (
        seq as f64 / secs,
        bytes as f64 / secs / MIB,
        record_bytes as usize,
    )
}

fn fill(dir: &Path, name: &str, payload_bytes: usize, total_bytes: u64) -> (u64, f64) {
    let (mut store, _) = FileStore::open(FsDisk::new(dir), name, StreamConfig::default()).unwrap();
    let m = message(payload_bytes);
    let count = total_bytes / m.size_bytes();
    let start = Instant::now();
    let mut batch: Vec<Msg> = (0..1024).map(|_| m.clone()).collect();
    let mut seq = 0;
    while seq < count {
        for b in batch.iter_mut() {
            seq += 1;
            b.seq = seq;
        }
        store.append(&batch).unwrap();
        store.sync().unwrap();
    }
    (seq, start.elapsed().as_secs_f64())
}

fn reads(dir: &Path, quick: bool) {
    let total = if quick { 64 << 20 } else { 256 << 20 };
    let (count, _) = fill(dir, "reads", 1024, total);
    let (mut store, _) =
        FileStore::open(FsDisk::new(dir), "reads", StreamConfig::default()).unwrap();
    let start = Instant::now();
    let mut bytes = 0u64;
    for seq in 1..=count {
        bytes += store.get(seq).unwrap().unwrap().payload.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| sequential get, 1 KiB | {count} msgs | {:.0} msgs/s | {:.0} MiB/s payload |",
        count as f64 / secs,
        bytes as f64 / secs / MIB
    );
    let mut rng = SplitMix64::new(7);
    let n = count.min(200_000);
    let start = Instant::now();
    for _ in 0..n {
        store.get(1 + rng.below(count)).unwrap().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| random get, 1 KiB | {n} reads | {:.0} msgs/s | page cache warm |",
        n as f64 / secs
    );
    let start = Instant::now();
    let mut found = 0;
    let mut seq = 1;
    while let Some(m) = store.next_matching(seq, Some("bench.*")).unwrap() {
        seq = m.seq + 1;
        found += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| next_matching scan (wildcard) | {found} msgs | {:.0} msgs/s | |",
        found as f64 / secs
    );
    drop(store);
    std::fs::remove_dir_all(dir.join("reads")).unwrap();
}

fn recovery(dir: &Path, quick: bool) {
    let total: u64 = if quick { 128 << 20 } else { 1 << 30 };
    let (count, fill_secs) = fill(dir, "recover", 1024, total);
    println!(
        "| fill {} MiB (1 KiB msgs, 1024 per append+sync) | {count} msgs | {:.0} msgs/s | {:.0} MiB/s |",
        total >> 20,
        count as f64 / fill_secs,
        total as f64 / fill_secs / MIB
    );
    let open = |label: &str| {
        let start = Instant::now();
        let (store, report) =
            FileStore::open(FsDisk::new(dir), "recover", StreamConfig::default()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(store.state().msgs, count);
        println!(
            "| open {label} | {} blocks, {} indexes rebuilt | {:.3} s | {:.0} MiB/s |",
            report.blocks,
            report.indexes_rebuilt.len(),
            secs,
            total as f64 / secs / MIB
        );
    };
    open("with block indexes");
    let store_dir = dir.join("recover");
    for entry in std::fs::read_dir(&store_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "idx") {
            std::fs::remove_file(path).unwrap();
        }
    }
    open("without indexes (full scan + crc)");
    open("after the rebuild");
    std::fs::remove_dir_all(store_dir).unwrap();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let root: PathBuf = std::env::var_os("NATRIX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("natrix-storage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let budget = Budget {
        time: Duration::from_millis(if quick { 400 } else { 2000 }),
        max_bytes: if quick { 64 << 20 } else { 512 << 20 },
    };
    println!(
        "natrix-storage benchmarks in {} (page cache warm; times are wall clock)\n",
        root.display()
    );
    println!(
        "| record | sync every | store msgs/s | store MiB/s | plain write+fsync msgs/s | plain MiB/s | store/plain |"
    );
    println!("|---|---|---|---|---|---|---|");
    for payload in [16usize, 1024, 64 * 1024] {
        for batch in [1u64, 64, 1024] {
            let (msgs_s, mib_s, record_bytes) = append(&root, payload, batch, &budget);
            let (plain_s, plain_mib) = ceiling(&root, record_bytes, batch, &budget);
            println!(
                "| {payload} B ({record_bytes} B on disk) | {batch} | {msgs_s:.0} | {mib_s:.1} | {plain_s:.0} | {plain_mib:.1} | {:.2} |",
                msgs_s / plain_s
            );
        }
    }
    let (_, big_mib) = ceiling(&root, 4 << 20, 4, &budget);
    println!("\nplain sequential ceiling (4 MiB writes, fsync every 16 MiB): {big_mib:.0} MiB/s\n");
    println!("| read / recovery | size | rate | note |");
    println!("|---|---|---|---|");
    reads(&root, quick);
    recovery(&root, quick);
    std::fs::remove_dir_all(&root).unwrap();
}
