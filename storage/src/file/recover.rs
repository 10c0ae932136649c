//! Opening a file store: clear leftovers, load or rebuild each sealed
//! block's index, scan the last block and cut its torn tail, replay every
//! record in order, and report what was found.
//!
//! The recovery rule (docs/storage.md): a record is believed only where the
//! store wrote it (its checksum covers the block's nonce and its offset)
//! and only if its message follows the sequence before it in the block. In
//! the last block, the first bad bytes after the last `Synced` record end
//! the block: they are a torn write, and whatever follows them was never
//! synced. Any other bad bytes are damage: reported, bounded by the good
//! messages on either side, never served.

use super::scan::{self, BLOCK_MAGIC_V1, Entry};
use super::{
    BLOCK_HEADER_BYTES, Block, FileStore, Loc, block_header, block_name, blockindex, index_name,
};
use crate::disk::{Disk, DiskErrorKind, FileId, join};
use crate::msg::{Corruption, RecoveryReport, StoreError, StreamConfig, TornTail};
use crate::state::StreamIndex;

/// Replays entries into the index, bounding bad stretches by the message
/// sequences on either side of them.
#[derive(Default)]
struct Replay {
    prev_msg_seq: u64,
    /// A bad stretch waiting for the next message to bound it.
    pending: Option<Corruption>,
    found: Vec<Corruption>,
}

impl Replay {
    fn apply(&mut self, index: &mut StreamIndex<Loc>, block: u32, entry: Entry) {
        match entry {
            Entry::Msg {
                seq,
                ts_unix_nanos,
                subject,
                offset,
                len,
                size,
            } => {
                if let Some(mut bad) = self.pending.take() {
                    // The sequences between the good messages on either
                    // side; none if they are consecutive (the bad bytes held
                    // no message, perhaps an erase record).
                    bad.last_seq = seq.saturating_sub(1);
                    index.mark_corrupt(bad.first_seq, bad.last_seq);
                    self.found.push(bad);
                }
                self.prev_msg_seq = seq;
                let loc = Loc { block, offset, len };
                index.insert(seq, &subject, u64::from(size), ts_unix_nanos, loc);
            }
            Entry::Erase(ranges) => {
                for (a, b) in ranges {
                    index.erase(a, b);
                }
            }
            Entry::Truncate(last_seq) => {
                index.truncate(last_seq);
            }
            // Sequences up to the sync point existed, even if the records
            // that held them are damaged: a bad stretch is bounded by it.
            Entry::Synced(last_seq) => {
                index.set_last_seq(index.last_seq().max(last_seq));
            }
            Entry::Bad { offset, bytes } => match &mut self.pending {
                Some(bad) if bad.block == block => bad.bytes = offset + bytes - bad.offset,
                Some(_) => {}
                None => {
                    self.pending = Some(Corruption {
                        first_seq: self.prev_msg_seq.saturating_add(1),
                        last_seq: self.prev_msg_seq.saturating_add(1),
                        block,
                        offset,
                        bytes,
                    })
                }
            },
        }
    }

    /// Bounds a bad stretch that no message follows, and returns them all.
    fn finish(mut self, index: &mut StreamIndex<Loc>) -> Vec<Corruption> {
        if let Some(mut bad) = self.pending.take() {
            bad.last_seq = index.last_seq();
            index.mark_corrupt(bad.first_seq, bad.last_seq);
            self.found.push(bad);
        }
        self.found
    }
}

impl<D: Disk> FileStore<D> {
    /// Opens (creating if needed) the stream stored in `dir`, recovering
    /// from whatever a crash left.
    pub fn open(
        mut disk: D,
        dir: &str,
        config: StreamConfig,
    ) -> Result<(Self, RecoveryReport), StoreError> {
        disk.create_dir(dir)?;
        let mut report = RecoveryReport::default();
        let names = disk.list(dir)?;
        let mut ids: Vec<u32> = names
            .iter()
            .filter_map(|n| n.strip_suffix(".blk")?.parse().ok())
            .collect();
        ids.sort_unstable();
        for name in &names {
            let orphan_index = name
                .strip_suffix(".idx")
                .and_then(|id| id.parse::<u32>().ok())
                .is_some_and(|id| ids.binary_search(&id).is_err());
            if name.ends_with(".tmp") || orphan_index {
                disk.remove(&join(dir, name))?;
                report.leftovers_removed += 1;
            }
        }
        if report.leftovers_removed > 0 {
            disk.sync_dir(dir)?;
        }
        let packer = config.compress.then(Box::default);
        let mut store = FileStore {
            disk,
            dir: dir.to_string(),
            config,
            index: StreamIndex::default(),
            blocks: Vec::new(),
            durable_seq: 0,
            dirty: false,
            unsynced_mark: false,
            failed: false,
            scratch: Vec::new(),
            staged_index: Vec::new(),
            staged_entries: 0,
            active_index: Some(Vec::new()),
            active_entries: 0,
            ahead: None,
            packer,
        };
        if ids.is_empty() {
            store.start_first_block()?;
            report.blocks = 1;
            return Ok((store, report));
        }
        let mut replay = Replay::default();
        for (i, &id) in ids.iter().enumerate() {
            let entries = if i + 1 == ids.len() {
                store.load_last_block(id, &replay, &mut report)?
            } else {
                store.load_sealed_block(id, &mut report)?
            };
            for entry in entries {
                replay.apply(&mut store.index, id, entry);
            }
        }
        let found = replay.finish(&mut store.index);
        let still_bad = store.index.corrupt_ranges().to_vec();
        report.corruption = found
            .into_iter()
            .filter(|c| {
                c.first_seq > c.last_seq
                    || still_bad
                        .iter()
                        .any(|(a, b)| *a <= c.last_seq && *b >= c.first_seq)
            })
            .collect();
        report.blocks = store.blocks.len() as u32;
        let config = store.config.clone();
        let removed = store.index.enforce_limits(&config, None);
        if !removed.is_empty() {
            let seqs: Vec<u64> = removed.iter().map(|(s, _)| *s).collect();
            let ranges = store.index.coalesce(&seqs);
            store.stage_start();
            store.stage_erase(&ranges);
            store.write_scratch()?;
        }
        // What the last process wrote may still be only in the page cache.
        store.dirty = true;
        store.sync_active()?;
        Ok((store, report))
    }

    fn start_first_block(&mut self) -> Result<(), StoreError> {
        let file = self.disk.open(&join(&self.dir, &block_name(1)), true)?;
        let nonce = self.disk.nonce();
        self.disk.write_at(file, 0, &block_header(nonce))?;
        self.disk.sync(file)?;
        self.disk.sync_dir(&self.dir)?;
        self.blocks.push(Block {
            id: 1,
            file,
            nonce,
            len: BLOCK_HEADER_BYTES,
            damaged: false,
        });
        Ok(())
    }

    /// Refuses a block of the first format version, whose records carry no
    /// seal: it cannot be told apart from payload bytes.
    fn check_version(id: u32, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.starts_with(BLOCK_MAGIC_V1) {
            return Err(StoreError::Invalid(format!(
                "block {id} is in format version 1, which this version does not read"
            )));
        }
        Ok(())
    }

    /// The nonce in a block's header, if either copy of it holds.
    fn read_nonce(&mut self, id: u32, file: FileId) -> Result<Option<u64>, StoreError> {
        let mut header = [0; BLOCK_HEADER_BYTES as usize];
        let n = self.disk.read_at(file, 0, &mut header)?;
        Self::check_version(id, &header[..n])?;
        Ok(scan::header_nonce(&header[..n]))
    }

    /// Reads and scans a block. Bad bytes are read again (up to five
    /// times) before they are believed: a flip on the way from the disk
    /// must not cut good data off as a torn tail.
    pub(super) fn scan_block(&mut self, file: FileId) -> Result<(Vec<u8>, scan::Scan), StoreError> {
        let mut attempt = 0;
        loop {
            let bytes = self.read_all(file)?;
            // Continuity is checked within a block only: compaction rewrites
            // a block with its live messages and without the truncate
            // records that let them follow higher, dead sequences.
            let scanned = scan::scan(&bytes, 0);
            attempt += 1;
            if scanned.is_clean() || attempt == 5 {
                return Ok((bytes, scanned));
            }
        }
    }

    fn read_all(&mut self, file: FileId) -> Result<Vec<u8>, StoreError> {
        let len = self.disk.len(file)?;
        let mut bytes = vec![0; len as usize];
        let n = self.disk.read_at(file, 0, &mut bytes)?;
        bytes.truncate(n);
        Ok(bytes)
    }

    fn load_sealed_block(
        &mut self,
        id: u32,
        report: &mut RecoveryReport,
    ) -> Result<Vec<Entry>, StoreError> {
        let file = self.disk.open(&join(&self.dir, &block_name(id)), false)?;
        let len = self.disk.len(file)?;
        if let Some(nonce) = self.read_nonce(id, file)?
            && let Some(entries) = self.read_index(id, len)?
        {
            self.blocks.push(Block {
                id,
                file,
                nonce,
                len,
                damaged: false,
            });
            return Ok(entries);
        }
        let (_, mut scanned) = self.scan_block(file)?;
        let clean = scanned.is_clean();
        if scanned.tail_bytes > 0 {
            // A sealed block was synced whole: a bad end is damage, not a tear.
            scanned.entries.push(Entry::Bad {
                offset: scanned.valid_len,
                bytes: scanned.tail_bytes,
            });
        }
        self.blocks.push(Block {
            id,
            file,
            nonce: scanned.nonce.unwrap_or(0),
            len,
            damaged: !clean,
        });
        if clean {
            self.write_index(id, &blockindex::encode(len, &scanned.entries));
            report.indexes_rebuilt.push(id);
        }
        Ok(scanned.entries)
    }

    fn read_index(&mut self, id: u32, block_len: u64) -> Result<Option<Vec<Entry>>, StoreError> {
        let file = match self.disk.open(&join(&self.dir, &index_name(id)), false) {
            Ok(f) => f,
            Err(e) if e.kind == DiskErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = self.read_all(file);
        self.disk.close(file);
        Ok(blockindex::decode(&bytes?, block_len))
    }

    fn load_last_block(
        &mut self,
        id: u32,
        replay: &Replay,
        report: &mut RecoveryReport,
    ) -> Result<Vec<Entry>, StoreError> {
        let file = self.disk.open(&join(&self.dir, &block_name(id)), false)?;
        let (bytes, mut scanned) = self.scan_block(file)?;
        Self::check_version(id, &bytes)?;
        scanned.cut_unsynced();
        let damaged = scanned
            .entries
            .iter()
            .any(|e| matches!(e, Entry::Bad { .. }));
        if scanned.tail_bytes > 0 {
            let after_seq = scanned
                .entries
                .iter()
                .rev()
                .find_map(|e| match e {
                    Entry::Msg { seq, .. } => Some(*seq),
                    _ => None,
                })
                .unwrap_or(replay.prev_msg_seq);
            report.torn_tail = Some(TornTail {
                block: id,
                offset: scanned.valid_len,
                bytes: scanned.tail_bytes,
                after_seq,
            });
        }
        let (nonce, len) = match scanned.nonce {
            Some(nonce) => {
                if scanned.tail_bytes > 0 {
                    self.disk.truncate(file, scanned.valid_len)?;
                }
                // Write again what no `Synced` record vouches for: after a
                // failed fsync those pages may sit in the page cache marked
                // clean, and the sync at the end of recovery would skip
                // them. The bytes are the ones just read, so a crash here
                // changes nothing.
                let from = scanned.synced_len as usize;
                let to = scanned.valid_len as usize;
                if from < to {
                    self.disk.write_at(file, from as u64, &bytes[from..to])?;
                }
                (nonce, scanned.valid_len)
            }
            None => {
                // The header itself was lost (it is synced with the first
                // records, so nothing of this block was): start it over.
                let nonce = self.disk.nonce();
                self.disk.truncate(file, 0)?;
                self.disk.write_at(file, 0, &block_header(nonce))?;
                (nonce, BLOCK_HEADER_BYTES)
            }
        };
        self.blocks.push(Block {
            id,
            file,
            nonce,
            len,
            damaged,
        });
        // The active block's index is kept in memory until it is sealed.
        let mut body = Vec::new();
        let mut count = 0;
        for e in &scanned.entries {
            count += u32::from(blockindex::push_entry(&mut body, e));
        }
        self.active_index = (!damaged).then_some(body);
        self.active_entries = count;
        Ok(scanned.entries)
    }
}
