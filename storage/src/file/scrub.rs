//! Scrubbing: read every block back and check every record, so damage is
//! found before a read needs the data (start-up trusts a sealed block's
//! index and does not read the block).

use super::scan::Entry;
use super::{FileStore, index_name};
use crate::disk::{Disk, join};
use crate::msg::{Corruption, StoreError};

pub(super) fn scrub<D: Disk>(store: &mut FileStore<D>) -> Result<Vec<Corruption>, StoreError> {
    let mut found = Vec::new();
    let blocks: Vec<(u32, crate::disk::FileId)> =
        store.blocks.iter().map(|b| (b.id, b.file)).collect();
    for (id, file) in blocks {
        let (_, scanned) = store.scan_block(file)?;
        let mut bad: Vec<(u64, u64)> = scanned
            .entries
            .iter()
            .filter_map(|e| match *e {
                Entry::Bad { offset, bytes } => Some((offset, bytes)),
                _ => None,
            })
            .collect();
        let is_last = store.blocks.last().is_some_and(|b| b.id == id);
        if scanned.tail_bytes > 0 && !is_last {
            bad.push((scanned.valid_len, scanned.tail_bytes));
        }
        if bad.is_empty() {
            continue;
        }
        for (offset, bytes) in bad {
            found.push(stretch(store, id, offset, bytes));
        }
        mark_damaged(store, id);
    }
    Ok(found)
}

/// A bad stretch, with the live messages it holds as its range (empty if
/// it holds none: a deleted message's record, or an erase record).
fn stretch<D: Disk>(store: &FileStore<D>, block: u32, offset: u64, bytes: u64) -> Corruption {
    let end = offset + bytes;
    let live: Vec<u64> = store
        .index
        .iter()
        .filter(|(_, slot)| {
            let loc = slot.loc;
            loc.block == block && loc.offset < end && loc.offset + u64::from(loc.len) > offset
        })
        .map(|(seq, _)| *seq)
        .collect();
    let (first_seq, last_seq) = match (live.first(), live.last()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => (1, 0),
    };
    Corruption {
        first_seq,
        last_seq,
        block,
        offset,
        bytes,
    }
}

/// Keeps compaction away from the block, and drops its index so the next
/// start-up scans it and reports the damage again.
fn mark_damaged<D: Disk>(store: &mut FileStore<D>, id: u32) {
    if let Ok(i) = store.blocks.binary_search_by_key(&id, |b| b.id) {
        store.blocks[i].damaged = true;
    }
    if store.blocks.last().is_some_and(|b| b.id == id) {
        store.active_index = None;
    } else {
        let _ = store.disk.remove(&join(&store.dir, &index_name(id)));
    }
}

#[cfg(test)]
mod tests {
    use crate::disk::SimDisk;
    use crate::file::FileStore;
    use crate::msg::{Msg, StreamConfig};
    use crate::store::Store;

    fn msg(seq: u64) -> Msg {
        Msg {
            seq,
            ts_unix_nanos: seq,
            subject: "a".into(),
            headers: Vec::new(),
            payload: vec![7; 60],
        }
    }

    #[test]
    fn scrub_finds_what_start_up_trusted_and_the_next_start_up_reports_it() {
        let disk = SimDisk::with_seed(1);
        let config = StreamConfig {
            block_size_bytes: 512,
            ..StreamConfig::default()
        };
        let (mut s, _) = FileStore::open(disk.clone(), "s", config.clone()).unwrap();
        for seq in 1..=30 {
            s.append(&[msg(seq)]).unwrap();
        }
        s.delete(2).unwrap();
        s.sync().unwrap();
        assert!(s.scrub().unwrap().is_empty());
        drop(s);
        // Damage a live message and a deleted one in the first, indexed block.
        let record = crate::record::msg_record_bytes("a", &[], &[7; 60]);
        disk.flip_bit("s/00000001.blk", 8 + record + 40, 1);
        disk.flip_bit("s/00000001.blk", 8 + 3 * record + 40, 1);
        let (mut s, report) = FileStore::open(disk.clone(), "s", config.clone()).unwrap();
        assert!(report.corruption.is_empty(), "start-up trusted the index");
        let found = s.scrub().unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().any(|c| (c.first_seq, c.last_seq) == (4, 4)));
        assert!(
            found.iter().any(|c| c.first_seq > c.last_seq),
            "the deleted one holds no live message"
        );
        assert_eq!(
            s.compact().unwrap(),
            0,
            "a damaged block is never rewritten"
        );
        drop(s);
        let (mut s, report) = FileStore::open(disk, "s", config).unwrap();
        // The damaged deleted message stays deleted: only the live one counts.
        let ranges: Vec<(u64, u64)> = report
            .corruption
            .iter()
            .map(|c| (c.first_seq, c.last_seq))
            .collect();
        assert_eq!(ranges, vec![(4, 4)], "{report:?}");
        assert!(s.get(4).is_err());
        assert_eq!(s.get(3).unwrap(), Some(msg(3)));
    }
}
