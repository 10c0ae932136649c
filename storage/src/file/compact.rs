//! Compaction: give back the space of deleted messages.
//!
//! First a "pin" goes at the end of the log, synced: an erase record
//! restating every dead sequence and a truncate record restating the last
//! sequence. After it, the log replays to the same state whichever dead
//! records before it are dropped, so sealed blocks with no live message
//! can be removed and mostly-dead ones rewritten with their live messages
//! only — each step atomic (rename), each crash point recoverable.

use super::{
    BLOCK_HEADER_BYTES, FileStore, Loc, block_header, block_name, blockindex, index_name, scan,
};
use crate::disk::{Disk, DiskError, DiskErrorKind, join};
use crate::msg::StoreError;
use crate::record::{self, Seal};
use std::collections::BTreeMap;

pub(super) fn compact<D: Disk>(store: &mut FileStore<D>) -> Result<u64, StoreError> {
    let active = store.active().id;
    let mut live: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut live_bytes: BTreeMap<u32, u64> = BTreeMap::new();
    for (seq, slot) in store.index.iter() {
        if slot.loc.block != active {
            live.entry(slot.loc.block).or_default().push(*seq);
            *live_bytes.entry(slot.loc.block).or_default() += u64::from(slot.loc.len);
        }
    }
    let candidates: Vec<u32> = store.blocks[..store.blocks.len() - 1]
        .iter()
        .filter(|b| !b.damaged)
        .filter(|b| {
            let used = live_bytes.get(&b.id).copied().unwrap_or(0);
            used * 2 < b.len.saturating_sub(BLOCK_HEADER_BYTES)
        })
        .map(|b| b.id)
        .collect();
    if candidates.is_empty() {
        return Ok(0);
    }
    store.stage_start();
    let dead = store.index.dead_ranges();
    store.stage_erase(&dead);
    store.stage_truncate(store.index.last_seq());
    store.write_scratch()?;
    store.dirty = true;
    store.sync_active()?;
    let mut reclaimed = 0;
    for id in candidates {
        reclaimed += match live.get(&id) {
            None => remove_block(store, id)?,
            Some(seqs) => rewrite_block(store, id, seqs)?,
        };
    }
    store.disk.sync_dir(&store.dir)?;
    Ok(reclaimed)
}

fn remove_quietly<D: Disk>(disk: &mut D, path: &str) -> Result<(), DiskError> {
    match disk.remove(path) {
        Err(e) if e.kind != DiskErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_block<D: Disk>(store: &mut FileStore<D>, id: u32) -> Result<u64, StoreError> {
    let Ok(i) = store.blocks.binary_search_by_key(&id, |b| b.id) else {
        return Ok(0);
    };
    let block = store.blocks.remove(i);
    store.disk.close(block.file);
    remove_quietly(&mut store.disk, &join(&store.dir, &index_name(id)))?;
    store.disk.remove(&join(&store.dir, &block_name(id)))?;
    Ok(block.len)
}

fn rewrite_block<D: Disk>(
    store: &mut FileStore<D>,
    id: u32,
    seqs: &[u64],
) -> Result<u64, StoreError> {
    let Some(block) = store.block(id) else {
        return Ok(0);
    };
    let (old_file, old_len, old_nonce) = (block.file, block.len, block.nonce);
    let mut bytes = vec![0; old_len as usize];
    let n = store.disk.read_at(old_file, 0, &mut bytes)?;
    bytes.truncate(n);
    // The rewritten block is a new one: a new nonce, every record resealed
    // for its new place.
    let nonce = store.disk.nonce();
    let mut out = block_header(nonce);
    let mut moved = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let Some(loc) = store.index.get(seq).map(|s| s.loc) else {
            continue;
        };
        let Some(rec) = bytes.get(loc.offset as usize..(loc.offset + u64::from(loc.len)) as usize)
        else {
            return Ok(0);
        };
        let old_seal = Seal {
            nonce: old_nonce,
            offset: loc.offset,
        };
        // Never copy bad bytes into a fresh, trusted block: leave it be.
        if !matches!(record::decode(rec, old_seal), Ok((r, _)) if r.msg_seq() == Some(seq)) {
            return Ok(0);
        }
        let at = out.len();
        moved.push((seq, at as u64));
        out.extend_from_slice(rec);
        record::reseal(
            &mut out[at..],
            Seal {
                nonce,
                offset: at as u64,
            },
        );
    }
    let tmp = join(&store.dir, &format!("{}.tmp", block_name(id)));
    let file = store.disk.open(&tmp, true)?;
    let written = store
        .disk
        .truncate(file, 0)
        .and_then(|()| store.disk.write_at(file, 0, &out))
        .and_then(|()| store.disk.sync(file))
        .and_then(|()| remove_quietly(&mut store.disk, &join(&store.dir, &index_name(id))))
        // The old index must be gone for good before the new block lands.
        .and_then(|()| store.disk.sync_dir(&store.dir))
        .and_then(|()| store.disk.rename(&tmp, &join(&store.dir, &block_name(id))));
    if let Err(e) = written {
        store.disk.close(file);
        return Err(e.into());
    }
    store.disk.close(old_file);
    if let Ok(i) = store.blocks.binary_search_by_key(&id, |b| b.id) {
        store.blocks[i].file = file;
        store.blocks[i].nonce = nonce;
        store.blocks[i].len = out.len() as u64;
    }
    for (seq, offset) in moved {
        if let Some(slot) = store.index.get_mut(seq) {
            slot.loc = Loc {
                block: id,
                offset,
                len: slot.loc.len,
            };
        }
    }
    let index = blockindex::encode(out.len() as u64, &scan::scan(&out, 0).entries);
    store.write_index(id, &index);
    Ok(old_len - out.len() as u64)
}
