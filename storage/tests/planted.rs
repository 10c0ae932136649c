//! Records planted in a payload: a user's message carries bytes that are,
//! byte for byte, a record — a copy of a real one, one sealed for a guessed
//! nonce, even one sealed with the block's true nonce for the very place it
//! lies. Then the bytes before it go bad (a flipped header in synced data,
//! a torn write in unsynced data, a hole left by a crash). Recovery must
//! never serve the planted message nor apply the planted erase.

use crate::common;

use natrix_storage::record::{self, Seal};
use natrix_storage::{
    Disk, FileStore, Msg, RecoveryReport, SimDisk, Store, StoreError, StreamConfig,
};

const BLOCK: &str = "s/00000001.blk";
const SUBJECT: &str = "user.upload";

fn config() -> StreamConfig {
    StreamConfig {
        block_size_bytes: 1 << 20,
        ..StreamConfig::default()
    }
}

fn original(seq: u64) -> Msg {
    common::msg(seq, "orders.new", 40)
}

/// The planted payload for a message whose record starts at `at` in a
/// block with `nonce`: junk, then planted records one after another.
fn planted_payload(nonce: u64, at: u64) -> Vec<u8> {
    let payload_at = at + record::msg_record_bytes(SUBJECT, &[], &[]);
    // Enough junk that the planted records lie pages after the carrier's start.
    let mut payload = vec![0xAB; 1200];
    let place = |payload: &Vec<u8>| payload_at + payload.len() as u64;
    let fake = |seq: u64| Msg {
        seq,
        ts_unix_nanos: 1,
        subject: "planted".into(),
        headers: Vec::new(),
        payload: b"served from a payload".to_vec(),
    };
    // Sealed for a guessed nonce, at its true place: a new message, and an
    // erase of messages 1 to 3.
    let guessed = |payload: &Vec<u8>| Seal {
        nonce: 0,
        offset: place(payload),
    };
    let seal = guessed(&payload);
    record::encode_msg(&mut payload, seal, &fake(99));
    let seal = guessed(&payload);
    record::encode_erase(&mut payload, seal, &[(1, 3)]);
    // Sealed with the block's true nonce, for its own place: the payload's
    // author cannot know the nonce, but even then a message that does not
    // follow the sequence before it is not believed.
    let true_seal = Seal {
        nonce,
        offset: place(&payload),
    };
    record::encode_msg(&mut payload, true_seal, &fake(2));
    payload.extend_from_slice(&[0xCD; 16]);
    payload
}

/// A store with messages 1..=3 synced, then message 4 carrying planted
/// records; `sync_last` decides whether message 4 is synced too. Returns
/// the disk and where message 4's record starts.
fn build(seed: u64, sync_last: bool) -> (SimDisk, u64, Msg) {
    let disk = SimDisk::with_seed(seed);
    let (mut store, _) = FileStore::open(disk.clone(), "s", config()).unwrap();
    store
        .append(&[original(1), original(2), original(3)])
        .unwrap();
    store.sync().unwrap();
    let bytes = disk.pristine(BLOCK).unwrap();
    let nonce = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let at = bytes.len() as u64;
    let carrier = Msg {
        seq: 4,
        ts_unix_nanos: 4,
        subject: SUBJECT.into(),
        headers: Vec::new(),
        payload: planted_payload(nonce, at),
    };
    store.append(std::slice::from_ref(&carrier)).unwrap();
    if sync_last {
        store.sync().unwrap();
    }
    drop(store.close());
    (disk, at, carrier)
}

/// Nothing planted was served or applied: every read is an original
/// message (or the carrier), or an honest error; messages 1..=3 are there.
fn check(disk: &SimDisk, carrier: &Msg, context: &str) -> RecoveryReport {
    let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
    for seq in 1..=3 {
        assert_eq!(
            store.get(seq).unwrap(),
            Some(original(seq)),
            "{context}: a planted erase or message replaced {seq}"
        );
    }
    for seq in 4..=120 {
        match store.get(seq) {
            Ok(None) | Err(StoreError::Corrupt(_)) => {}
            Ok(Some(m)) => assert_eq!(&m, carrier, "{context}: served planted bytes"),
            Err(e) => panic!("{context}: {e:?}"),
        }
    }
    assert!(
        store.state().last_seq <= 4,
        "{context}: {:?}",
        store.state()
    );
    // And the same again after recovering from recovery's own result.
    let state = store.state();
    drop(store.close());
    let (again, _) = FileStore::open(disk.clone(), "s", config()).unwrap();
    assert_eq!(again.state(), state, "{context}: recovery is not stable");
    report
}

#[test]
fn the_planted_records_are_valid_records_somewhere() {
    // The test is only worth something if the planted bytes would pass as
    // records under a weaker rule: the one sealed with the true nonce
    // decodes where it lies.
    let (disk, at, carrier) = build(7, true);
    let bytes = disk.pristine(BLOCK).unwrap();
    let nonce = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let payload_at = at + record::msg_record_bytes(SUBJECT, &[], &[]);
    let found = (payload_at..payload_at + carrier.payload.len() as u64)
        .filter(|&p| record::decode(&bytes[p as usize..], Seal { nonce, offset: p }).is_ok())
        .count();
    assert_eq!(found, 1, "one planted record is sealed for its place");
    let guessed = (payload_at..payload_at + carrier.payload.len() as u64)
        .filter(|&p| {
            record::decode(
                &bytes[p as usize..],
                Seal {
                    nonce: 0,
                    offset: p,
                },
            )
            .is_ok()
        })
        .count();
    assert_eq!(guessed, 2, "two are sealed for a guessed nonce");
}

#[test]
fn a_flipped_header_in_synced_data_does_not_resync_into_the_payload() {
    let mut flips = 0;
    for seed in 0..8 {
        // Every bit of the carrier's length and checksum.
        for byte in 0..8 {
            for bit in 0..8 {
                let (disk, at, carrier) = build(seed, true);
                disk.flip_bit(BLOCK, at + byte, 1 << bit);
                let context = format!("seed {seed} flip {byte}:{bit}");
                let report = check(&disk, &carrier, &context);
                assert!(
                    !report.corruption.is_empty(),
                    "{context}: synced damage is reported: {report:?}"
                );
                flips += 1;
            }
        }
    }
    eprintln!("{flips} flipped carrier headers, no planted record believed");
}

#[test]
fn a_torn_carrier_is_cut_not_resynced_into() {
    for byte in 0..8 {
        let (disk, at, carrier) = build(3, false);
        disk.flip_bit(BLOCK, at + byte, 0x10);
        let report = check(&disk, &carrier, &format!("torn at {byte}"));
        let torn = report
            .torn_tail
            .clone()
            .expect("an unsynced bad record is a torn tail");
        assert_eq!((torn.offset, torn.after_seq), (at, 3));
        assert!(report.corruption.is_empty(), "{report:?}");
    }
}

#[test]
fn a_crash_that_loses_the_carriers_first_pages_serves_nothing_planted() {
    let mut holes = 0;
    for seed in 0..300 {
        let (disk, at, carrier) = build(seed, false);
        disk.crash();
        let kept = disk.pristine(BLOCK).unwrap();
        let start = (at as usize).min(kept.len());
        // A hole before the planted records, which themselves survived.
        let planted = at as usize + 1260..at as usize + 1300;
        if kept.len() >= planted.end
            && kept[start..start + 8].iter().all(|b| *b == 0)
            && kept[planted].iter().any(|b| *b != 0)
        {
            holes += 1;
        }
        check(&disk, &carrier, &format!("seed {seed}"));
    }
    eprintln!("{holes} of 300 crashes lost the carrier's start and kept the planted bytes");
    assert!(
        holes > 20,
        "only {holes} crashes left the planted bytes behind a hole"
    );
}

#[test]
fn a_sealed_block_scanned_without_its_index_does_not_resync_into_the_payload() {
    for byte in [0u64, 2, 5] {
        let (disk, at, carrier) = build(11, true);
        // Seal block 1 by rolling past it, then lose its index.
        let small = StreamConfig {
            block_size_bytes: 64,
            ..config()
        };
        let (mut store, _) = FileStore::open(disk.clone(), "s", small).unwrap();
        store.append(&[original(5)]).unwrap();
        store.sync().unwrap();
        drop(store.close());
        disk.clone().remove("s/00000001.idx").unwrap();
        disk.flip_bit(BLOCK, at + byte, 0x01);
        let (mut store, report) = FileStore::open(disk.clone(), "s", config()).unwrap();
        assert!(!report.corruption.is_empty(), "{report:?}");
        for seq in 1..=3 {
            assert_eq!(store.get(seq).unwrap(), Some(original(seq)));
        }
        assert!(matches!(store.get(2), Ok(Some(m)) if m == original(2)));
        assert_eq!(store.get(99).unwrap(), None);
        assert_eq!(store.get(5).unwrap(), Some(original(5)));
        assert!(!matches!(store.get(4), Ok(Some(m)) if m != carrier));
    }
}
