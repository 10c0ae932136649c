//! The simulated disk: an in-memory [`Disk`] that remembers what was synced
//! and what was only written, page by page, so a crash can keep any seeded
//! subset of the unsynced pages (in any order, not only a prefix) and lose
//! every name created, renamed or removed since its directory was last
//! synced. A failed fsync drops some dirty pages for good while reads still
//! see them, so a retried fsync "succeeds" without making them durable, as
//! Linux does. It can also flip bits (for good, or on one read), fail with
//! EIO, and run out of space. Every choice comes from its seed. The
//! pristine bytes stay beside the fault map, so a checker always knows the
//! truth.

use super::{Disk, DiskError, DiskErrorKind, FileId};
use crate::rng::SplitMix64;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// How the simulated disk misbehaves. The default misbehaves only when told.
#[derive(Clone, Debug)]
pub struct SimDiskConfig {
    pub seed: u64,
    /// Unsynced data survives a crash, or not, in whole pages of this size.
    pub page_bytes: u64,
    /// Total bytes the disk holds before writes fail with ENOSPC.
    pub capacity_bytes: Option<u64>,
    /// Chance that a write, sync or read fails with EIO.
    pub io_error_per_million: u32,
    /// Chance that a read returns one flipped bit (the stored bytes stay good).
    pub read_flip_per_million: u32,
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        SimDiskConfig {
            seed: 0,
            page_bytes: 512,
            capacity_bytes: None,
            io_error_per_million: 0,
            read_flip_per_million: 0,
        }
    }
}

/// A fault the disk injected, for checkers and for replaying a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    BitFlip {
        path: String,
        offset: u64,
        mask: u8,
    },
    ReadFlip {
        path: String,
        offset: u64,
        mask: u8,
    },
    IoError {
        op: &'static str,
    },
    NoSpace {
        path: String,
    },
    /// On a crash, `pages_lost` of a file's unsynced pages were dropped and
    /// `pages_kept` reached the disk; its length became `len_bytes`.
    CrashLoss {
        path: String,
        pages_lost: usize,
        pages_kept: usize,
        len_bytes: u64,
    },
    /// A failed fsync dropped `pages_lost` dirty pages for good: reads
    /// still see them, no later sync writes them, a crash loses them.
    SyncLost {
        path: String,
        pages_lost: usize,
    },
}

#[derive(Default)]
struct Inode {
    /// What reads see (before bit flips): the pristine current content.
    data: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Pages written or truncated since they were last made durable.
    dirty_pages: BTreeSet<u64>,
    /// Persistent corruption: byte offset -> xor mask.
    flips: BTreeMap<u64, u8>,
}

impl Inode {
    fn touch(&mut self, from: u64, to: u64, page: u64) {
        if to > from {
            self.dirty_pages.extend(from / page..=(to - 1) / page);
        }
    }

    /// Copies page `p` of the current content into `out` (as far as both
    /// reach): that page reached the disk.
    fn persist_page(&self, out: &mut [u8], p: u64, page: u64) {
        let start = (p * page) as usize;
        let end = (start + page as usize).min(out.len());
        for (i, byte) in out.iter_mut().enumerate().take(end).skip(start) {
            *byte = self.data.get(i).copied().unwrap_or(0);
        }
    }

    /// What is on the disk if `kept` of the dirty pages reached it and the
    /// file's length ended up `len`.
    fn settle(&self, len: u64, kept: &BTreeSet<u64>, page: u64) -> Vec<u8> {
        let mut out = vec![0; len as usize];
        let old = self.durable.len().min(out.len());
        out[..old].copy_from_slice(&self.durable[..old]);
        for &p in kept {
            self.persist_page(&mut out, p, page);
        }
        out
    }
}

struct Inner {
    config: SimDiskConfig,
    rng: SplitMix64,
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    dirs: BTreeSet<String>,
    handles: BTreeMap<u32, u64>,
    next_handle: u32,
    mutations: u64,
    halt_after_mutations: Option<u64>,
    halted: bool,
    fail_next: Option<DiskErrorKind>,
    faults: Vec<Fault>,
}

/// A cheap handle to one simulated disk; clones share it.
#[derive(Clone)]
pub struct SimDisk(Rc<RefCell<Inner>>);

impl SimDisk {
    pub fn new(config: SimDiskConfig) -> Self {
        let rng = SplitMix64::new(config.seed);
        SimDisk(Rc::new(RefCell::new(Inner {
            config,
            rng,
            inodes: BTreeMap::new(),
            next_inode: 1,
            names: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            dirs: BTreeSet::new(),
            handles: BTreeMap::new(),
            next_handle: 1,
            mutations: 0,
            halt_after_mutations: None,
            halted: false,
            fail_next: None,
            faults: Vec::new(),
        })))
    }

    pub fn with_seed(seed: u64) -> Self {
        SimDisk::new(SimDiskConfig {
            seed,
            ..SimDiskConfig::default()
        })
    }

    /// Mutating calls so far (writes, truncates, syncs, renames, removes,
    /// directory syncs): the write points a crash test walks through.
    pub fn mutations(&self) -> u64 {
        self.0.borrow().mutations
    }

    /// The process "dies" at the next `n`th mutation: that call and every
    /// call after it fail until [`SimDisk::crash`].
    pub fn halt_after(&self, n: u64) {
        let mut d = self.0.borrow_mut();
        d.halt_after_mutations = Some(d.mutations + n);
    }

    /// The next mutating call fails with `kind` (and does nothing).
    pub fn fail_next(&self, kind: DiskErrorKind) {
        self.0.borrow_mut().fail_next = Some(kind);
    }

    pub fn set_config(&self, config: SimDiskConfig) {
        self.0.borrow_mut().config = config;
    }

    /// Power loss: names revert to their last directory sync, each file to
    /// its synced bytes plus a seeded subset of its unsynced pages, its
    /// length to the synced one, the current one or one between. Open
    /// handles are gone.
    pub fn crash(&self) {
        self.0.borrow_mut().crash();
    }

    /// Flips bits of a stored byte for good (a bad sector).
    pub fn flip_bit(&self, path: &str, offset: u64, mask: u8) {
        let mut d = self.0.borrow_mut();
        if let Some(&ino) = d.names.get(path) {
            let inode = d.inodes.entry(ino).or_default();
            *inode.flips.entry(offset).or_insert(0) ^= mask;
            d.faults.push(Fault::BitFlip {
                path: path.to_string(),
                offset,
                mask,
            });
        }
    }

    /// A file's bytes as written, without injected corruption.
    pub fn pristine(&self, path: &str) -> Option<Vec<u8>> {
        let d = self.0.borrow();
        let ino = d.names.get(path)?;
        d.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Replaces a file's content outright, durable at once (for fuzzing
    /// recovery from arbitrary bytes).
    pub fn put_file(&self, path: &str, bytes: &[u8]) {
        let mut d = self.0.borrow_mut();
        let ino = d.next_inode;
        d.next_inode += 1;
        d.inodes.insert(
            ino,
            Inode {
                data: bytes.to_vec(),
                durable: bytes.to_vec(),
                ..Inode::default()
            },
        );
        d.names.insert(path.to_string(), ino);
        d.durable_names.insert(path.to_string(), ino);
        if let Some((dir, _)) = path.rsplit_once('/') {
            d.add_dirs(dir);
        }
    }

    /// Paths of every file, sorted.
    pub fn files(&self) -> Vec<String> {
        self.0.borrow().names.keys().cloned().collect()
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.0.borrow().faults.clone()
    }
}

impl Inner {
    fn add_dirs(&mut self, dir: &str) {
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            self.dirs.insert(path.clone());
        }
    }

    /// Counts a mutation and decides whether it happens.
    fn mutate(&mut self, op: &'static str) -> Result<(), DiskError> {
        self.check_halted()?;
        self.mutations += 1;
        if self
            .halt_after_mutations
            .is_some_and(|n| self.mutations >= n)
        {
            self.halted = true;
            return Err(DiskError::new(DiskErrorKind::Io, "simulated crash"));
        }
        if let Some(kind) = self.fail_next.take() {
            self.faults.push(Fault::IoError { op });
            return Err(DiskError::new(kind, format!("injected {op} failure")));
        }
        if self.rng.chance(self.config.io_error_per_million) {
            self.faults.push(Fault::IoError { op });
            return Err(DiskError::new(DiskErrorKind::Io, format!("EIO on {op}")));
        }
        Ok(())
    }

    fn check_halted(&self) -> Result<(), DiskError> {
        if self.halted {
            Err(DiskError::new(DiskErrorKind::Io, "simulated crash"))
        } else {
            Ok(())
        }
    }

    fn inode(&mut self, file: FileId) -> Result<&mut Inode, DiskError> {
        let ino = *self
            .handles
            .get(&file.0)
            .ok_or_else(|| DiskError::new(DiskErrorKind::Invalid, format!("closed {file:?}")))?;
        Ok(self.inodes.entry(ino).or_default())
    }

    fn path_of(&self, file: FileId) -> String {
        let ino = self.handles.get(&file.0).copied();
        self.names
            .iter()
            .find(|(_, i)| Some(**i) == ino)
            .map(|(p, _)| p.clone())
            .unwrap_or_default()
    }

    /// A seeded half of `pages`.
    fn some_of(&mut self, pages: &BTreeSet<u64>) -> BTreeSet<u64> {
        pages
            .iter()
            .copied()
            .filter(|_| self.rng.below(2) == 0)
            .collect()
    }

    /// Writeback failed during an fsync of `ino`: some dirty pages reached
    /// the disk, the rest are marked clean without having done so.
    fn fail_writeback(&mut self, ino: u64, path: String) {
        let page = self.config.page_bytes.max(1);
        let Some(dirty) = self.inodes.get(&ino).map(|i| i.dirty_pages.clone()) else {
            return;
        };
        let kept = self.some_of(&dirty);
        let keep_len = self.rng.below(2) == 0;
        let Some(inode) = self.inodes.get_mut(&ino) else {
            return;
        };
        let len = if keep_len {
            inode.data.len()
        } else {
            inode.durable.len()
        };
        inode.durable = inode.settle(len as u64, &kept, page);
        inode.dirty_pages.clear();
        self.faults.push(Fault::SyncLost {
            path,
            pages_lost: dirty.len() - kept.len(),
        });
    }

    fn used_bytes(&self) -> u64 {
        self.inodes.values().map(|i| i.data.len() as u64).sum()
    }

    fn crash(&mut self) {
        self.halted = false;
        self.halt_after_mutations = None;
        self.handles.clear();
        self.names = self.durable_names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        let paths: BTreeMap<u64, String> =
            self.names.iter().map(|(p, i)| (*i, p.clone())).collect();
        let page = self.config.page_bytes.max(1);
        let inos: Vec<u64> = self.inodes.keys().copied().collect();
        for ino in inos {
            let Some((dirty, durable_len, current_len)) = self
                .inodes
                .get(&ino)
                .map(|i| (i.dirty_pages.clone(), i.durable.len(), i.data.len()))
            else {
                continue;
            };
            let kept = self.some_of(&dirty);
            let (low, high) = (durable_len.min(current_len), durable_len.max(current_len));
            let len = match self.rng.below(3) {
                0 => durable_len,
                1 => current_len,
                _ => low + self.rng.below((high - low) as u64 + 1) as usize,
            } as u64;
            let Some(inode) = self.inodes.get_mut(&ino) else {
                continue;
            };
            let data = inode.settle(len, &kept, page);
            if !dirty.is_empty() || durable_len != current_len {
                self.faults.push(Fault::CrashLoss {
                    path: paths.get(&ino).cloned().unwrap_or_default(),
                    pages_lost: dirty.len() - kept.len(),
                    pages_kept: kept.len(),
                    len_bytes: len,
                });
            }
            inode.flips.retain(|off, _| *off < len);
            inode.dirty_pages.clear();
            inode.durable = data.clone();
            inode.data = data;
        }
    }
}

fn apply_write(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// The direct child of `dir` that `path` lies in.
fn child_of(dir: &str, path: &str) -> String {
    let rest = if dir.is_empty() {
        path
    } else {
        &path[dir.len() + 1..]
    };
    super::join(dir, rest.split('/').next().unwrap_or(rest))
}

fn under(path: &str, dir: &str) -> bool {
    dir.is_empty() || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

impl Disk for SimDisk {
    fn open(&mut self, path: &str, create: bool) -> Result<FileId, DiskError> {
        let mut d = self.0.borrow_mut();
        d.check_halted()?;
        let ino = match d.names.get(path) {
            Some(&ino) => ino,
            None if create => {
                let ino = d.next_inode;
                d.next_inode += 1;
                d.inodes.insert(ino, Inode::default());
                d.names.insert(path.to_string(), ino);
                if let Some((dir, _)) = path.rsplit_once('/') {
                    d.add_dirs(dir);
                }
                ino
            }
            None => return Err(DiskError::new(DiskErrorKind::NotFound, path)),
        };
        let handle = d.next_handle;
        d.next_handle += 1;
        d.handles.insert(handle, ino);
        Ok(FileId(handle))
    }

    fn close(&mut self, file: FileId) {
        self.0.borrow_mut().handles.remove(&file.0);
    }

    fn len(&mut self, file: FileId) -> Result<u64, DiskError> {
        let mut d = self.0.borrow_mut();
        d.check_halted()?;
        Ok(d.inode(file)?.data.len() as u64)
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, DiskError> {
        let mut d = self.0.borrow_mut();
        d.check_halted()?;
        let (eio, flip) = (
            d.config.io_error_per_million,
            d.config.read_flip_per_million,
        );
        if d.rng.chance(eio) {
            d.faults.push(Fault::IoError { op: "read" });
            return Err(DiskError::new(DiskErrorKind::Io, "EIO on read"));
        }
        let inode = d.inode(file)?;
        let start = (offset as usize).min(inode.data.len());
        let n = (inode.data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&inode.data[start..start + n]);
        for (off, mask) in inode.flips.range(offset..offset + n as u64) {
            buf[(off - offset) as usize] ^= mask;
        }
        if n > 0 && d.rng.chance(flip) {
            let at = d.rng.below(n as u64);
            let mask = 1u8 << d.rng.below(8);
            buf[at as usize] ^= mask;
            let path = d.path_of(file);
            d.faults.push(Fault::ReadFlip {
                path,
                offset: offset + at,
                mask,
            });
        }
        Ok(n)
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("write")?;
        let grows = {
            let inode = d.inode(file)?;
            (offset + data.len() as u64).saturating_sub(inode.data.len() as u64)
        };
        if let Some(cap) = d.config.capacity_bytes
            && d.used_bytes() + grows > cap
        {
            let path = d.path_of(file);
            d.faults.push(Fault::NoSpace { path: path.clone() });
            return Err(DiskError::new(DiskErrorKind::NoSpace, path));
        }
        let page = d.config.page_bytes.max(1);
        let inode = d.inode(file)?;
        apply_write(&mut inode.data, offset, data);
        let end = offset + data.len() as u64;
        let stale: Vec<u64> = inode.flips.range(offset..end).map(|(o, _)| *o).collect();
        for o in stale {
            inode.flips.remove(&o);
        }
        inode.touch(offset, end, page);
        Ok(())
    }

    fn truncate(&mut self, file: FileId, len: u64) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("truncate")?;
        let page = d.config.page_bytes.max(1);
        let inode = d.inode(file)?;
        let old = inode.data.len() as u64;
        inode.touch(len.min(old), len.max(old), page);
        inode.data.resize(len as usize, 0);
        inode.flips.retain(|off, _| *off < len);
        Ok(())
    }

    /// Makes the file's dirty pages and length durable. When it fails
    /// (other than by a simulated crash), some dirty pages are lost for
    /// good while reads still see them: a retry then succeeds without
    /// them, as after a writeback error on Linux.
    fn sync(&mut self, file: FileId) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        if let Err(e) = d.mutate("sync") {
            if !d.halted
                && let Some(&ino) = d.handles.get(&file.0)
            {
                let path = d.path_of(file);
                d.fail_writeback(ino, path);
            }
            return Err(e);
        }
        let page = d.config.page_bytes.max(1);
        let inode = d.inode(file)?;
        let len = inode.data.len() as u64;
        inode.durable = inode.settle(len, &inode.dirty_pages, page);
        inode.dirty_pages.clear();
        Ok(())
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, DiskError> {
        let d = self.0.borrow();
        d.check_halted()?;
        let prefix_len = if dir.is_empty() { 0 } else { dir.len() + 1 };
        let mut names: BTreeSet<String> = BTreeSet::new();
        for path in d.names.keys().chain(d.dirs.iter()) {
            if under(path, dir) && path.len() > prefix_len {
                let rest = &path[prefix_len..];
                names.insert(rest.split('/').next().unwrap_or(rest).to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    fn remove(&mut self, path: &str) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("remove")?;
        match d.names.remove(path) {
            Some(_) => Ok(()),
            None => Err(DiskError::new(DiskErrorKind::NotFound, path)),
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("rename")?;
        let ino = d
            .names
            .remove(from)
            .ok_or_else(|| DiskError::new(DiskErrorKind::NotFound, from))?;
        d.names.insert(to.to_string(), ino);
        Ok(())
    }

    fn create_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.check_halted()?;
        d.add_dirs(dir);
        Ok(())
    }

    fn remove_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("remove_dir")?;
        d.names.retain(|p, _| !under(p, dir) && p != dir);
        d.dirs.retain(|p| !under(p, dir) && p != dir);
        Ok(())
    }

    /// Makes the names in `dir` durable: its files as they are now, and
    /// the absence of any subdirectory removed since (with everything that
    /// was in it). Names deeper down need a sync of their own directory.
    fn sync_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("sync_dir")?;
        let current: Vec<(String, u64)> = d
            .names
            .iter()
            .filter(|(p, _)| parent(p) == dir)
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        let dirs = d.dirs.clone();
        d.durable_names.retain(|p, _| {
            let gone_dir = under(p, dir) && parent(p) != dir && !dirs.contains(&child_of(dir, p));
            parent(p) != dir && !gone_dir
        });
        d.durable_names.extend(current);
        Ok(())
    }

    fn nonce(&mut self) -> u64 {
        self.0.borrow_mut().rng.next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 512;
    const PAGES: u64 = 8;

    /// A file of 8 synced pages of 0x11, then every page rewritten with its
    /// own number (unsynced); returns which pages the crash kept.
    fn crash_pages(seed: u64) -> (Vec<bool>, usize) {
        let mut disk = SimDisk::with_seed(seed);
        let f = disk.open("d/f", true).unwrap();
        disk.write_at(f, 0, &[0x11; (PAGE * PAGES) as usize])
            .unwrap();
        disk.sync(f).unwrap();
        disk.sync_dir("d").unwrap();
        for p in 0..PAGES {
            disk.write_at(f, p * PAGE, &[p as u8 + 0x80; PAGE as usize])
                .unwrap();
        }
        disk.crash();
        let bytes = disk.pristine("d/f").unwrap();
        let kept = (0..PAGES as usize)
            .map(|p| {
                let page = &bytes[p * PAGE as usize..(p + 1) * PAGE as usize];
                let new = page.iter().all(|b| *b == p as u8 + 0x80);
                assert!(
                    new || page.iter().all(|b| *b == 0x11),
                    "seed {seed}: page {p} is neither old nor new"
                );
                new
            })
            .collect();
        (kept, bytes.len())
    }

    #[test]
    fn a_crash_keeps_any_subset_of_unsynced_pages_and_every_synced_byte() {
        let mut subsets = BTreeSet::new();
        let mut not_a_prefix = 0;
        for seed in 0..200 {
            let (kept, len) = crash_pages(seed);
            assert_eq!(len as u64, PAGE * PAGES, "synced length kept");
            let prefix = kept.iter().skip_while(|k| **k).all(|k| !*k);
            not_a_prefix += u32::from(!prefix);
            subsets.insert(kept);
        }
        assert!(not_a_prefix > 150, "only {not_a_prefix} non-prefix crashes");
        assert!(
            subsets.len() > 100,
            "only {} distinct subsets",
            subsets.len()
        );
    }

    #[test]
    fn a_new_name_survives_a_crash_only_after_its_directory_is_synced() {
        let mut disk = SimDisk::with_seed(1);
        let f = disk.open("d/new", true).unwrap();
        disk.write_at(f, 0, b"data").unwrap();
        disk.sync(f).unwrap();
        // A sync of the parent directory is not a sync of "d".
        disk.sync_dir("").unwrap();
        disk.crash();
        assert_eq!(
            disk.files(),
            Vec::<String>::new(),
            "the entry was never synced"
        );

        let f = disk.open("d/new", true).unwrap();
        disk.write_at(f, 0, b"data").unwrap();
        disk.sync(f).unwrap();
        disk.sync_dir("d").unwrap();
        disk.rename("d/new", "d/renamed").unwrap();
        disk.crash();
        assert_eq!(
            disk.files(),
            vec!["d/new".to_string()],
            "the rename was lost"
        );
        assert_eq!(disk.pristine("d/new").unwrap(), b"data");

        disk.rename("d/new", "d/renamed").unwrap();
        disk.sync_dir("d").unwrap();
        disk.remove("d/renamed").unwrap();
        disk.crash();
        assert_eq!(
            disk.files(),
            vec!["d/renamed".to_string()],
            "the remove was lost"
        );
    }

    #[test]
    fn a_removed_directory_stays_removed_once_its_parent_is_synced() {
        let mut disk = SimDisk::with_seed(2);
        let f = disk.open("root/s/a", true).unwrap();
        disk.sync(f).unwrap();
        disk.sync_dir("root/s").unwrap();
        disk.remove_dir("root/s").unwrap();
        disk.sync_dir("root").unwrap();
        disk.crash();
        assert!(disk.files().is_empty());
    }

    #[test]
    fn a_failed_fsync_loses_pages_that_a_retry_never_brings_back() {
        let mut lost_after_retry = 0;
        for seed in 0..50 {
            let mut disk = SimDisk::with_seed(seed);
            let f = disk.open("f", true).unwrap();
            disk.sync_dir("").unwrap();
            disk.write_at(f, 0, &[7; (PAGE * PAGES) as usize]).unwrap();
            disk.fail_next(DiskErrorKind::Io);
            assert!(disk.sync(f).is_err());
            // The retry "succeeds", and reads still see every byte...
            disk.sync(f).unwrap();
            let mut buf = vec![0; (PAGE * PAGES) as usize];
            disk.read_at(f, 0, &mut buf).unwrap();
            assert!(buf.iter().all(|b| *b == 7));
            // ...but what the failed fsync dropped is gone at the crash.
            disk.crash();
            let after = disk.pristine("f").unwrap();
            if after.len() < buf.len() || after.iter().any(|b| *b != 7) {
                lost_after_retry += 1;
            }
        }
        assert!(lost_after_retry > 40, "only {lost_after_retry} of 50");
    }

    #[test]
    fn the_same_seed_makes_the_same_crash() {
        for seed in 0..20 {
            assert_eq!(crash_pages(seed), crash_pages(seed));
        }
    }
}
