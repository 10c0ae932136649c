//! The file store: a stream as an append-only log of block files.
//!
//! Messages, deletes (erase records) and truncations are appended to the
//! last block; a block is synced and sealed (and gets an index file) once it
//! passes `block_size_bytes`, so only the last block can ever have a torn
//! tail. Replaying every block's records in order rebuilds the stream's
//! state; `StreamIndex` holds that state in memory, and every read
//! re-checks the record's checksum.

mod blockindex;
mod compact;
mod recover;
mod scan;
mod scrub;

pub use scan::{BLOCK_HEADER_BYTES, BLOCK_MAGIC, block_header};

use crate::disk::{Disk, DiskError, FileId, join};
use crate::msg::{Corruption, Msg, Purge, StoreError, StreamConfig, StreamState, SubjectState};
use crate::record::{self, Seal};
use crate::state::{Next, Removed, StreamIndex};
use crate::store::{Appended, Store, validate};

/// Where a message's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub block: u32,
    pub offset: u64,
    pub len: u32,
}

#[derive(Debug)]
struct Block {
    id: u32,
    file: FileId,
    /// The random number in the block's header, sealed into every record.
    nonce: u64,
    len: u64,
    /// Scanning found bad bytes here: never rewritten, never removed.
    damaged: bool,
}

pub struct FileStore<D: Disk> {
    disk: D,
    dir: String,
    config: StreamConfig,
    index: StreamIndex<Loc>,
    /// Ascending by id; the last one takes the writes.
    blocks: Vec<Block>,
    durable_seq: u64,
    /// Written since the last sync.
    dirty: bool,
    /// The last record of the active block is a sync mark, not yet synced.
    unsynced_mark: bool,
    /// A sync failed: what reached the disk is unknown until reopened.
    failed: bool,
    /// Records staged for the next write, and their index entries.
    scratch: Vec<u8>,
    staged_index: Vec<u8>,
    staged_entries: u32,
    /// The active block's index entries, written out when it is sealed
    /// (`None` if the block has bad bytes and must be rescanned).
    active_index: Option<Vec<u8>>,
    active_entries: u32,
    /// While a batch of reads walks the stream: the bytes read ahead of
    /// them (one read for many records instead of one each).
    ahead: Option<ReadAhead>,
    /// The compressor, while the stream's configuration asks for it.
    packer: Option<Box<record::Packer>>,
}

/// Bytes of a block file read ahead of a sequential walk. It lives for
/// one batch of reads, in which nothing is written, so it is never stale.
struct ReadAhead {
    file: Option<FileId>,
    start: u64,
    buf: Vec<u8>,
    valid: usize,
}

/// How much a sequential walk reads at once.
const READ_AHEAD_BYTES: usize = 64 * 1024;

fn block_name(id: u32) -> String {
    format!("{id:08}.blk")
}

fn index_name(id: u32) -> String {
    format!("{id:08}.idx")
}

impl<D: Disk> FileStore<D> {
    fn active(&self) -> &Block {
        // open() always leaves at least one block.
        &self.blocks[self.blocks.len() - 1]
    }

    fn block(&self, id: u32) -> Option<&Block> {
        self.blocks
            .binary_search_by_key(&id, |b| b.id)
            .ok()
            .map(|i| &self.blocks[i])
    }

    fn check_usable(&self) -> Result<(), StoreError> {
        if self.failed {
            Err(StoreError::Failed)
        } else {
            Ok(())
        }
    }

    /// Clears the staging buffers for a new write.
    fn stage_start(&mut self) {
        self.scratch.clear();
        self.staged_index.clear();
        self.staged_entries = 0;
    }

    /// Where the next staged record will be written.
    fn next_seal(&self) -> Seal {
        Seal {
            nonce: self.active().nonce,
            offset: self.active().len + self.scratch.len() as u64,
        }
    }

    /// Stages a message record; returns where it will be.
    fn stage_msg(&mut self, m: &Msg) -> Loc {
        let seal = self.next_seal();
        let offset = seal.offset;
        match &mut self.packer {
            Some(packer) => record::encode_msg_packed(&mut self.scratch, seal, m, packer),
            None => record::encode_msg(&mut self.scratch, seal, m),
        }
        let len = (self.active().len + self.scratch.len() as u64 - offset) as u32;
        blockindex::push_msg(
            &mut self.staged_index,
            m.seq,
            m.ts_unix_nanos,
            offset,
            (len, m.size_bytes() as u32),
            &m.subject,
        );
        self.staged_entries += 1;
        Loc {
            block: self.active().id,
            offset,
            len,
        }
    }

    fn stage_erase(&mut self, ranges: &[(u64, u64)]) {
        let seal = self.next_seal();
        record::encode_erase(&mut self.scratch, seal, ranges);
        blockindex::push_erase(&mut self.staged_index, ranges);
        self.staged_entries += 1;
    }

    fn stage_truncate(&mut self, last_seq: u64) {
        let seal = self.next_seal();
        record::encode_truncate(&mut self.scratch, seal, last_seq);
        blockindex::push_truncate(&mut self.staged_index, last_seq);
        self.staged_entries += 1;
    }

    /// Writes the staged records at the end of the active block.
    fn write_scratch(&mut self) -> Result<(), StoreError> {
        let (file, offset) = (self.active().file, self.active().len);
        self.disk.write_at(file, offset, &self.scratch)?;
        let n = self.scratch.len() as u64;
        if let Some(b) = self.blocks.last_mut() {
            b.len += n;
        }
        if let Some(index) = &mut self.active_index {
            index.extend_from_slice(&self.staged_index);
            self.active_entries += self.staged_entries;
        }
        self.dirty = true;
        Ok(())
    }

    /// Syncs the active block; a failure leaves the store failed, because
    /// after a failed fsync the kernel may have dropped the dirty pages
    /// and a retry would report success for bytes that never reached the
    /// disk. Then marks the sync point (see [`Self::mark_synced`]).
    fn sync_active(&mut self) -> Result<(), StoreError> {
        if self.sync_active_unmarked()? {
            self.mark_synced()?;
        }
        Ok(())
    }

    /// Syncs the active block without marking it (a block about to be
    /// sealed must end synced, with no unsynced record after it). Returns
    /// whether there was anything to sync.
    fn sync_active_unmarked(&mut self) -> Result<bool, StoreError> {
        if !self.dirty {
            return Ok(false);
        }
        self.unsynced_mark = false;
        let file = self.active().file;
        if let Err(e) = self.disk.sync(file) {
            self.failed = true;
            return Err(e.into());
        }
        self.dirty = false;
        self.durable_seq = self.index.last_seq();
        Ok(true)
    }

    /// Appends a `Synced` record (not itself synced): recovery then knows
    /// that bad bytes before it are damage to synced data, and bad bytes
    /// after the last one are a torn write. Best effort: without it,
    /// recovery treats the unmarked stretch as possibly unsynced. A failed
    /// write is still reported, as the write failures of appends are.
    fn mark_synced(&mut self) -> Result<(), StoreError> {
        self.stage_start();
        let seal = self.next_seal();
        record::encode_synced(&mut self.scratch, seal, self.index.last_seq());
        let file = self.active().file;
        self.disk.write_at(file, seal.offset, &self.scratch)?;
        if let Some(b) = self.blocks.last_mut() {
            b.len += self.scratch.len() as u64;
        }
        self.unsynced_mark = true;
        Ok(())
    }

    /// Seals the active block (synced whole, so only the last block can
    /// ever have a torn tail) and starts the next one.
    fn roll(&mut self) -> Result<(), StoreError> {
        // A sealed block ends synced, its last sync mark included.
        self.dirty |= self.unsynced_mark;
        self.sync_active_unmarked()?;
        let sealed = self.active().id;
        let sealed_len = self.active().len;
        if let Some(body) = self.active_index.take() {
            let index = blockindex::finish(sealed_len, self.active_entries, &body);
            self.write_index(sealed, &index);
        }
        let id = sealed
            .checked_add(1)
            .ok_or_else(|| StoreError::Invalid("no block ids left".into()))?;
        let file = self.disk.open(&join(&self.dir, &block_name(id)), true)?;
        // The header needs no sync of its own: the next sync covers it, and
        // a block whose header was lost is recovered as an empty torn one.
        let nonce = self.disk.nonce();
        let started = self
            .disk
            .write_at(file, 0, &block_header(nonce))
            .and_then(|()| self.disk.sync_dir(&self.dir));
        if let Err(e) = started {
            self.disk.close(file);
            return Err(e.into());
        }
        self.blocks.push(Block {
            id,
            file,
            nonce,
            len: BLOCK_HEADER_BYTES,
            damaged: false,
        });
        self.active_index = Some(Vec::new());
        self.active_entries = 0;
        self.dirty = true;
        Ok(())
    }

    /// Writes a sealed block's index file. Best effort, and not synced:
    /// the index is checked against its checksum and the block's length
    /// before it is believed, and without it the block is scanned at
    /// start-up, so losing it costs time, not data.
    fn write_index(&mut self, id: u32, index: &[u8]) {
        let (tmp, path) = (
            join(&self.dir, &format!("{}.tmp", index_name(id))),
            join(&self.dir, &index_name(id)),
        );
        let Ok(f) = self.disk.open(&tmp, true) else {
            return;
        };
        let written = self
            .disk
            .truncate(f, 0)
            .and_then(|()| self.disk.write_at(f, 0, index));
        self.disk.close(f);
        if written.is_ok() {
            let _ = self.disk.rename(&tmp, &path);
        }
    }

    fn corruption_at(&self, seq: u64, loc: Loc) -> StoreError {
        StoreError::Corrupt(Corruption {
            first_seq: seq,
            last_seq: seq,
            block: loc.block,
            offset: loc.offset,
            bytes: u64::from(loc.len),
        })
    }

    /// Reads and checks one message's record, re-reading once in case the
    /// bad bytes came from the read and not from the disk.
    fn read(&mut self, seq: u64) -> Result<Option<Msg>, StoreError> {
        if let Some((first_seq, last_seq)) = self.index.corrupt_range(seq) {
            return Err(StoreError::Corrupt(Corruption {
                first_seq,
                last_seq,
                block: 0,
                offset: 0,
                bytes: 0,
            }));
        }
        let Some(slot) = self.index.get(seq) else {
            return Ok(None);
        };
        let loc = slot.loc;
        let Some((file, nonce)) = self.block(loc.block).map(|b| (b.file, b.nonce)) else {
            return Err(self.corruption_at(seq, loc));
        };
        let seal = Seal {
            nonce,
            offset: loc.offset,
        };
        let mut buf = Vec::new();
        for attempt in 0..2 {
            // A second attempt reads the record alone, from the disk.
            let bytes = match &mut self.ahead {
                Some(ahead) if attempt == 0 => {
                    ahead.read(&mut self.disk, file, loc.offset, loc.len as usize)?
                }
                _ => {
                    buf.resize(loc.len as usize, 0);
                    let n = self.disk.read_at(file, loc.offset, &mut buf)?;
                    &buf[..n]
                }
            };
            if let Ok((record, _)) = record::decode(bytes, seal)
                && record.msg_seq() == Some(seq)
                && let Some(msg) = record.to_msg()
            {
                return Ok(Some(msg));
            }
        }
        Err(self.corruption_at(seq, loc))
    }

    /// Appends an erase record for `ranges` and applies it.
    fn erase(&mut self, ranges: &[(u64, u64)]) -> Result<u64, StoreError> {
        if ranges.is_empty() {
            return Ok(0);
        }
        self.stage_start();
        self.stage_erase(ranges);
        self.write_scratch()?;
        let mut removed = 0;
        for &(a, b) in ranges {
            removed += self.index.erase(a, b).len() as u64;
        }
        Ok(removed)
    }

    /// Puts back what a failed append took out of the index.
    fn undo_append(&mut self, msgs: &[Msg], removed: Removed<Loc>, last_seq: u64) {
        for m in msgs {
            self.index.remove(m.seq);
        }
        for (seq, slot) in removed.into_iter().filter(|(s, _)| *s <= last_seq) {
            self.index.insert(
                seq,
                &slot.subject,
                slot.size_bytes,
                slot.ts_unix_nanos,
                slot.loc,
            );
        }
        self.index.set_last_seq(last_seq);
    }
}

impl<D: Disk> Store for FileStore<D> {
    fn config(&self) -> &StreamConfig {
        &self.config
    }

    fn append(&mut self, msgs: &[Msg]) -> Result<Appended, StoreError> {
        self.check_usable()?;
        validate(msgs, self.index.last_seq())?;
        if self.active().len >= self.config.block_size_bytes {
            self.roll()?;
        }
        let last_seq = self.index.last_seq();
        self.stage_start();
        let mut removed = Vec::new();
        for m in msgs {
            let loc = self.stage_msg(m);
            self.index
                .insert(m.seq, &m.subject, m.size_bytes(), m.ts_unix_nanos, loc);
            removed.extend(self.index.enforce_limits(&self.config, Some(&m.subject)));
        }
        if !removed.is_empty() {
            removed.sort_by_key(|(s, _)| *s);
            let seqs: Vec<u64> = removed.iter().map(|(s, _)| *s).collect();
            let ranges = self.index.coalesce(&seqs);
            self.stage_erase(&ranges);
        }
        if let Err(e) = self.write_scratch() {
            self.undo_append(msgs, removed, last_seq);
            return Err(e);
        }
        Ok(Appended {
            last_seq: self.index.last_seq(),
            removed: removed.len() as u64,
        })
    }

    fn sync(&mut self) -> Result<u64, StoreError> {
        self.check_usable()?;
        self.sync_active()?;
        Ok(self.durable_seq)
    }

    fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    fn get(&mut self, seq: u64) -> Result<Option<Msg>, StoreError> {
        self.read(seq)
    }

    fn next_matching(
        &mut self,
        from_seq: u64,
        filter: Option<&str>,
    ) -> Result<Option<Msg>, StoreError> {
        let next = self.index.next_matching(from_seq, filter);
        self.read_next(next)
    }

    fn next_matching_any(
        &mut self,
        from_seq: u64,
        filters: &[String],
    ) -> Result<Option<Msg>, StoreError> {
        let next = self.index.next_matching_any(from_seq, filters);
        self.read_next(next)
    }

    fn count_matching_any(&self, from_seq: u64, filters: &[String]) -> u64 {
        self.index.count_matching_any(from_seq, filters)
    }

    fn sequential(&mut self, on: bool) {
        self.ahead = on.then(|| ReadAhead {
            file: None,
            start: 0,
            buf: Vec::new(),
            valid: 0,
        });
    }

    fn last_by_subject(&mut self, subject: &str) -> Result<Option<Msg>, StoreError> {
        match self.index.last_by_subject(subject) {
            Some(seq) => self.read(seq),
            None => Ok(None),
        }
    }

    fn delete(&mut self, seq: u64) -> Result<bool, StoreError> {
        self.check_usable()?;
        if self.index.get(seq).is_none() {
            return Ok(false);
        }
        Ok(self.erase(&[(seq, seq)])? > 0)
    }

    fn purge(&mut self, purge: &Purge) -> Result<u64, StoreError> {
        self.check_usable()?;
        let ranges = self
            .index
            .purge_ranges(purge)
            .map_err(StoreError::Invalid)?;
        self.erase(&ranges)
    }

    fn truncate(&mut self, last_seq: u64) -> Result<u64, StoreError> {
        self.check_usable()?;
        if last_seq >= self.index.last_seq() {
            return Ok(0);
        }
        self.stage_start();
        self.stage_truncate(last_seq);
        self.write_scratch()?;
        self.durable_seq = self.durable_seq.min(last_seq);
        Ok(self.index.truncate(last_seq).len() as u64)
    }

    fn expire(&mut self, now_unix_nanos: u64) -> Result<u64, StoreError> {
        self.check_usable()?;
        let victims = self.index.expired(&self.config, now_unix_nanos);
        let ranges = self.index.coalesce(&victims);
        self.erase(&ranges)
    }

    fn compact(&mut self) -> Result<u64, StoreError> {
        self.check_usable()?;
        compact::compact(self)
    }

    fn scrub(&mut self) -> Result<Vec<Corruption>, StoreError> {
        scrub::scrub(self)
    }

    fn state(&self) -> StreamState {
        self.index.state()
    }

    fn subject_state(&self, subject: &str) -> Option<SubjectState> {
        self.index.subject_state(subject)
    }

    fn subjects_matching(&self, filter: &str) -> Vec<(String, u64)> {
        self.index.subjects_matching(filter)
    }

    fn first_seq_at_time(&self, unix_nanos: u64) -> Option<u64> {
        self.index.first_seq_at_time(unix_nanos)
    }

    fn interior_deleted(&self) -> Vec<u64> {
        self.index.interior_deleted()
    }

    fn count_matching_from(&self, from_seq: u64, filter: Option<&str>) -> u64 {
        self.index.count_matching_from(from_seq, filter)
    }

    fn last_per_subject(&self, filters: &[String], up_to_seq: u64) -> Vec<u64> {
        self.index.last_per_subject(filters, up_to_seq)
    }
}

impl<D: Disk> FileStore<D> {
    /// The stream's sequences known to be corrupt on disk.
    pub fn corrupt_ranges(&self) -> &[(u64, u64)] {
        self.index.corrupt_ranges()
    }

    /// Number of block files.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Closes the files and hands the disk back.
    pub fn close(mut self) -> D {
        for b in &self.blocks {
            self.disk.close(b.file);
        }
        self.disk
    }
}

impl<D: Disk> FileStore<D> {
    /// The message a lookup found, or the corruption in its way.
    fn read_next(&mut self, next: Next) -> Result<Option<Msg>, StoreError> {
        match next {
            Next::Live(seq) => self.read(seq),
            Next::Corrupt(first_seq, last_seq) => Err(StoreError::Corrupt(Corruption {
                first_seq,
                last_seq,
                block: 0,
                offset: 0,
                bytes: 0,
            })),
            Next::End => Ok(None),
        }
    }
}

impl ReadAhead {
    /// The `len` bytes at `offset` of `file` (fewer past its end), read
    /// ahead with what follows them when not already held.
    fn read<D: Disk>(
        &mut self,
        disk: &mut D,
        file: FileId,
        offset: u64,
        len: usize,
    ) -> Result<&[u8], DiskError> {
        let held = self.file == Some(file)
            && offset >= self.start
            && offset + len as u64 <= self.start + self.valid as u64;
        if !held {
            let want = len.max(READ_AHEAD_BYTES);
            self.buf.resize(want, 0);
            self.file = None;
            self.valid = disk.read_at(file, offset, &mut self.buf[..want])?;
            self.file = Some(file);
            self.start = offset;
        }
        let from = (offset - self.start) as usize;
        Ok(&self.buf[from..(from + len).min(self.valid)])
    }
}
