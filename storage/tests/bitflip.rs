//! Bit flips: corrupt one bit of a synced store's files, reopen, and read
//! everything back. A read returns the original message or reports
//! corruption covering its sequence; nothing wrong is ever served, nothing
//! synced goes missing unreported, and nothing panics.

use crate::common;

use common::{Dump, dump, msg};
use natrix_storage::rng::SplitMix64;
use natrix_storage::{
    FileStore, RecoveryReport, SimDisk, SimDiskConfig, Store, StoreError, StreamConfig,
};

fn config() -> StreamConfig {
    StreamConfig {
        block_size_bytes: 2048,
        ..StreamConfig::default()
    }
}

/// A synced store of 80 messages over several blocks, some deleted.
fn build(seed: u64) -> (SimDisk, Dump) {
    let disk = SimDisk::with_seed(seed);
    let (mut s, _) = FileStore::open(disk.clone(), "s", config()).unwrap();
    for seq in 1..=80 {
        s.append(&[msg(
            seq,
            common::SUBJECTS[seq as usize % 5],
            (seq as usize * 7) % 90,
        )])
        .unwrap();
    }
    for seq in [3, 17, 40, 41, 77] {
        s.delete(seq).unwrap();
    }
    s.sync().unwrap();
    let before = dump(&mut s);
    assert!(s.block_count() > 3);
    (disk, before)
}

/// Whether `seq` may be missing: inside a reported corruption, or past a
/// reported torn tail (the flip hit the last record of the last block,
/// which is indistinguishable from a torn write and reported as one).
fn excused(report: &RecoveryReport, seq: u64) -> bool {
    report
        .corruption
        .iter()
        .any(|c| (c.first_seq..=c.last_seq).contains(&seq))
        || report.torn_tail.as_ref().is_some_and(|t| seq > t.after_seq)
}

fn check_reads(
    store: &mut FileStore<SimDisk>,
    report: &RecoveryReport,
    before: &Dump,
    context: &str,
) -> u64 {
    let mut reported = 0;
    for want in &before.msgs {
        match store.get(want.seq) {
            Ok(Some(got)) => assert_eq!(&got, want, "{context}: served wrong bytes"),
            Ok(None) => assert!(
                excused(report, want.seq),
                "{context}: seq {} silently gone ({report:?})",
                want.seq
            ),
            Err(StoreError::Corrupt(c)) => {
                assert!(
                    (c.first_seq..=c.last_seq).contains(&want.seq),
                    "{context}: {c:?}"
                );
                reported += 1;
            }
            Err(e) => panic!("{context}: {e:?}"),
        }
    }
    // Deleted messages stay deleted or are reported, never resurrected
    // silently... unless the flip hit the erase record that deleted them.
    let live: Vec<u64> = before.msgs.iter().map(|m| m.seq).collect();
    for seq in 1..=before.state.last_seq {
        if live.contains(&seq) {
            continue;
        }
        if let Ok(Some(m)) = store.get(seq) {
            assert_eq!(
                m,
                msg(
                    seq,
                    common::SUBJECTS[seq as usize % 5],
                    (seq as usize * 7) % 90
                ),
                "{context}"
            );
        }
    }
    // Scanning forward never panics and never serves a wrong message.
    let mut seq = 1;
    while seq <= before.state.last_seq {
        match store.next_matching(seq, None) {
            Ok(Some(m)) => {
                assert!(
                    before.msgs.contains(&m) || !live.contains(&m.seq),
                    "{context}"
                );
                seq = m.seq + 1;
            }
            Ok(None) => break,
            Err(StoreError::Corrupt(c)) => seq = c.last_seq.max(seq) + 1,
            Err(e) => panic!("{context}: {e:?}"),
        }
    }
    reported
}

#[test]
fn every_bit_flip_in_a_block_is_caught_or_harmless() {
    let mut caught = 0;
    let mut flips = 0;
    for seed in 0..40u64 {
        let (disk, before) = build(seed);
        if seed == 0 {
            assert!(disk.files().len() > 6);
        }
        let mut rng = SplitMix64::new(seed);
        let files = disk.files();
        for file in files.iter().filter(|f| f.ends_with(".blk")) {
            let len = disk.pristine(file).unwrap().len() as u64;
            let (offset, mask) = (rng.below(len), 1u8 << rng.below(8));
            // One flip per store: rebuild the same store from the seed.
            let (disk2, _) = build(seed);
            disk2.flip_bit(file, offset, mask);
            let (mut store, report) = FileStore::open(disk2.clone(), "s", config()).unwrap();
            let context = format!("seed {seed} flip {file}@{offset}^{mask}");
            let reported = check_reads(&mut store, &report, &before, &context);
            flips += 1;
            if reported > 0 || !report.corruption.is_empty() || report.torn_tail.is_some() {
                caught += 1;
            }
            // A scrub reads every byte back: nothing escapes it (unless
            // start-up already cut the flipped bytes off as a torn tail).
            let scrubbed = store.scrub().unwrap();
            assert!(
                !scrubbed.is_empty() || report.torn_tail.is_some() || !report.corruption.is_empty(),
                "{context}: a scrub missed it"
            );
        }
    }
    eprintln!("{caught} of {flips} flips noticed by start-up and reads");
    // Flips in erase records of indexed blocks, or in deleted messages,
    // are noticed only by a scrub; most hit live messages.
    assert!(caught * 2 > flips, "only {caught} of {flips} flips noticed");
}

#[test]
fn a_flipped_index_is_rebuilt_and_changes_nothing() {
    for seed in 0..20u64 {
        let (disk, before) = build(seed);
        let indexes: Vec<String> = disk
            .files()
            .into_iter()
            .filter(|f| f.ends_with(".idx"))
            .collect();
        assert!(!indexes.is_empty());
        let mut rng = SplitMix64::new(seed);
        let file = &indexes[rng.below(indexes.len() as u64) as usize];
        let len = disk.pristine(file).unwrap().len() as u64;
        disk.flip_bit(file, rng.below(len), 1 << rng.below(8));
        let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
        assert_eq!(report.indexes_rebuilt.len(), 1, "seed {seed}: {report:?}");
        assert!(report.corruption.is_empty());
        assert_eq!(dump(&mut store), before, "seed {seed}");
    }
}

#[test]
fn corruption_in_a_sealed_block_is_reported_with_its_range_at_every_open() {
    let (disk, before) = build(7);
    // Damage the middle of the second block (its index is dropped so the
    // open scans it; with the index, the read finds it instead).
    let block = "s/00000002.blk";
    let len = disk.pristine(block).unwrap().len() as u64;
    disk.flip_bit(block, len / 2, 0x40);
    for attempt in 0..2 {
        let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
        let bad: Vec<u64> = before
            .msgs
            .iter()
            .map(|m| m.seq)
            .filter(|seq| matches!(store.get(*seq), Err(StoreError::Corrupt(_))))
            .collect();
        assert!(!bad.is_empty(), "attempt {attempt}: the flip was noticed");
        for m in &before.msgs {
            if !bad.contains(&m.seq) {
                assert_eq!(store.get(m.seq).unwrap().as_ref(), Some(m));
            }
        }
        assert!(
            report.torn_tail.is_none(),
            "damage in a sealed block is not a torn tail"
        );
    }
    // Without the index the scan finds it at start-up, with its range.
    disk.set_config(SimDiskConfig::default());
    let mut d = disk.clone();
    natrix_storage::Disk::remove(&mut d, "s/00000002.idx").unwrap();
    let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
    assert_eq!(report.corruption.len(), 1, "{report:?}");
    let c = &report.corruption[0];
    assert!(c.first_seq <= c.last_seq && c.block == 2, "{c:?}");
    for seq in c.first_seq..=c.last_seq {
        assert!(
            matches!(store.get(seq), Err(StoreError::Corrupt(_))),
            "seq {seq} never served"
        );
    }
    assert_eq!(store.corrupt_ranges(), &[(c.first_seq, c.last_seq)]);
    // The damaged block is not compacted away, and the damage stays reported.
    store.compact().unwrap();
    drop(store);
    let (_, again) = FileStore::open(disk, "s", config()).unwrap();
    assert_eq!(again.corruption, report.corruption);
}

#[test]
fn flips_on_read_are_retried_not_served() {
    for seed in 0..30 {
        let (disk, before) = build(seed);
        disk.set_config(SimDiskConfig {
            seed,
            read_flip_per_million: 100_000,
            ..SimDiskConfig::default()
        });
        // Start-up reads are hit too: a flip seen once is re-read, not cut.
        let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
        assert!(
            report.torn_tail.is_none() && report.corruption.is_empty(),
            "seed {seed}: {report:?} {:?}",
            disk.faults()
        );
        let mut served = 0;
        for want in &before.msgs {
            match store.get(want.seq) {
                Ok(Some(got)) => {
                    assert_eq!(&got, want);
                    served += 1;
                }
                Err(StoreError::Corrupt(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert!(served > before.msgs.len() / 2);
    }
}

#[test]
fn a_flipped_magic_costs_no_message() {
    let (disk, before) = build(5);
    disk.flip_bit("s/00000002.blk", 3, 0x01);
    let mut d = disk.clone();
    natrix_storage::Disk::remove(&mut d, "s/00000002.idx").unwrap();
    let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
    assert_eq!(report.corruption.len(), 1, "{report:?}");
    let c = &report.corruption[0];
    assert!(
        (c.block, c.offset, c.bytes) == (2, 0, 8) && c.first_seq > c.last_seq,
        "{c:?}"
    );
    assert!(store.corrupt_ranges().is_empty());
    assert_eq!(dump(&mut store), before);
}
