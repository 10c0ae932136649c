//! Recovery from arbitrary bytes, for the fuzz target
//! (`fuzz/fuzz_targets/storage_recover.rs`) and the property test that
//! runs the same check on every `cargo test`: whatever is on disk, opening
//! never panics, every message it serves passes its checksum, and
//! recovering what recovery left changes nothing.

use crate::disk::SimDisk;
use crate::file::FileStore;
use crate::msg::{Msg, RecoveryReport, StoreError, StreamConfig};
use crate::store::Store;

const DIR: &str = "s";

fn config() -> StreamConfig {
    StreamConfig {
        block_size_bytes: 512,
        ..StreamConfig::default()
    }
}

/// A small valid store's files, for the mutating mode.
fn valid_files() -> Vec<(String, Vec<u8>)> {
    let disk = SimDisk::with_seed(0);
    let Ok((mut store, _)) = FileStore::open(disk.clone(), DIR, config()) else {
        return Vec::new();
    };
    for seq in 1..=24u64 {
        let msg = Msg {
            seq,
            ts_unix_nanos: seq,
            subject: format!("s.{}", seq % 3),
            headers: Vec::new(),
            payload: vec![seq as u8; (seq as usize * 11) % 70],
        };
        let _ = store.append(&[msg]);
        if seq % 7 == 0 {
            let _ = store.delete(seq - 2);
        }
    }
    let _ = store.sync();
    disk.files()
        .into_iter()
        .filter_map(|path| disk.pristine(&path).map(|bytes| (path, bytes)))
        .collect()
}

/// The store's messages as served, failing on anything inconsistent.
fn served(store: &mut FileStore<SimDisk>) -> Vec<Msg> {
    let state = store.state();
    let mut out = Vec::new();
    let mut seq = state.first_seq;
    while seq <= state.last_seq {
        match store.next_matching(seq, None) {
            Ok(Some(m)) => {
                assert!(m.seq >= seq && m.seq <= state.last_seq);
                seq = m.seq.saturating_add(1);
                out.push(m);
                if seq == u64::MAX {
                    break;
                }
            }
            Ok(None) => break,
            Err(StoreError::Corrupt(c)) if c.last_seq < u64::MAX => seq = c.last_seq.max(seq) + 1,
            Err(StoreError::Corrupt(_)) => break,
            Err(e) => panic!("read failed: {e:?}"),
        }
    }
    out
}

/// Interprets `data` as store files (first byte even: raw files split by
/// the following bytes; odd: a valid store with `data` xored over it and
/// cut), opens the store, and checks what it serves. Returns what the
/// first open reported, if it opened.
pub fn recover_from_bytes(data: &[u8]) -> Option<RecoveryReport> {
    let (&mode, rest) = data.split_first()?;
    let disk = SimDisk::with_seed(u64::from(mode));
    if mode % 2 == 0 {
        let blocks = 1 + usize::from(mode / 2 % 3);
        let chunk = rest.len() / blocks + 1;
        for (i, part) in rest.chunks(chunk).enumerate() {
            disk.put_file(&format!("{DIR}/{:08}.blk", i + 1), part);
        }
    } else {
        for (i, (path, mut bytes)) in valid_files().into_iter().enumerate() {
            for (j, b) in rest.iter().enumerate() {
                if (j + i) % 4 == 0 && !bytes.is_empty() {
                    let at = (usize::from(*b) * 7 + j * 13) % bytes.len();
                    bytes[at] ^= rest.get(j + 1).copied().unwrap_or(1);
                }
            }
            if mode % 8 == 1 && !rest.is_empty() {
                let keep = bytes.len() * usize::from(rest[0]) / 255;
                bytes.truncate(keep);
            }
            disk.put_file(&path, &bytes);
        }
    }
    let (mut store, first_report) = FileStore::open(disk.clone(), DIR, config()).ok()?;
    let first = served(&mut store);
    let state = store.state();
    assert!(first.len() as u64 <= state.msgs);
    drop(store.close());
    // What recovery left recovers to itself.
    let (mut again, report) = FileStore::open(disk.clone(), DIR, config()).expect("reopen");
    assert_eq!(again.state(), state, "{report:?}");
    assert_eq!(served(&mut again), first);
    // And the store still takes writes.
    let next = state.last_seq.checked_add(1)?;
    let msg = Msg {
        seq: next,
        ts_unix_nanos: 0,
        subject: "after".into(),
        headers: Vec::new(),
        payload: b"ok".to_vec(),
    };
    again
        .append(std::slice::from_ref(&msg))
        .expect("append after recovery");
    assert_eq!(again.get(next).expect("read back"), Some(msg));
    let _ = again.compact();
    Some(first_report)
}
