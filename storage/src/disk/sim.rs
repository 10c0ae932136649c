//! The simulated disk: an in-memory [`Disk`] that remembers what was synced
//! and what was only written, so a crash can lose unsynced writes, keep a
//! prefix of them and tear the last at sector granularity. It can also flip
//! bits (for good, or on one read), fail with EIO, and run out of space.
//! Every choice comes from its seed. The pristine bytes stay beside the
//! fault map, so a checker always knows the truth.

use super::{Disk, DiskError, DiskErrorKind, FileId};
use crate::rng::SplitMix64;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// How the simulated disk misbehaves. The default misbehaves only when told.
#[derive(Clone, Debug)]
pub struct SimDiskConfig {
    pub seed: u64,
    /// Torn writes keep whole sectors of this size.
    pub sector_bytes: u64,
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
            sector_bytes: 512,
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
    /// On a crash, `lost` of a file's unsynced writes were dropped and the
    /// first write after the kept ones kept `torn_bytes` of its bytes.
    CrashLoss {
        path: String,
        lost: usize,
        torn_bytes: u64,
    },
}

enum Pending {
    Write { offset: u64, data: Vec<u8> },
    Truncate { len: u64 },
}

#[derive(Default)]
struct Inode {
    /// What reads see (before bit flips): the pristine current content.
    data: Vec<u8>,
    /// What survives a crash.
    durable: Vec<u8>,
    /// Writes and truncates since the last sync, in order.
    pending: Vec<Pending>,
    /// Persistent corruption: byte offset -> xor mask.
    flips: BTreeMap<u64, u8>,
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
    /// its synced bytes plus a seeded prefix of its unsynced writes, the
    /// first write after that prefix torn at a sector boundary. Open handles
    /// are gone.
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
        let sector = self.config.sector_bytes.max(1);
        for (ino, inode) in &mut self.inodes {
            let pending = std::mem::take(&mut inode.pending);
            let mut data = std::mem::take(&mut inode.durable);
            let keep = self.rng.below(pending.len() as u64 + 1) as usize;
            let mut torn_bytes = 0;
            for (i, op) in pending.iter().enumerate().take(keep + 1) {
                match op {
                    Pending::Truncate { len } if i < keep => data.truncate(*len as usize),
                    Pending::Write {
                        offset,
                        data: bytes,
                    } => {
                        let len = if i < keep {
                            bytes.len() as u64
                        } else {
                            // The torn write: whole sectors from its start.
                            let end = offset + bytes.len() as u64;
                            let first_boundary = (offset / sector + 1) * sector;
                            let boundaries = end.saturating_sub(first_boundary) / sector + 1;
                            let pick = self.rng.below(boundaries + 1);
                            let cut = if pick == 0 {
                                *offset
                            } else {
                                (first_boundary + (pick - 1) * sector).min(end)
                            };
                            torn_bytes = cut - offset;
                            torn_bytes
                        };
                        apply_write(&mut data, *offset, &bytes[..len as usize]);
                    }
                    Pending::Truncate { .. } => {}
                }
            }
            let lost = pending.len() - keep;
            if lost > 0 {
                self.faults.push(Fault::CrashLoss {
                    path: paths.get(ino).cloned().unwrap_or_default(),
                    lost,
                    torn_bytes,
                });
            }
            let len = data.len() as u64;
            inode.flips.retain(|off, _| *off < len);
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
        let inode = d.inode(file)?;
        apply_write(&mut inode.data, offset, data);
        let end = offset + data.len() as u64;
        let stale: Vec<u64> = inode.flips.range(offset..end).map(|(o, _)| *o).collect();
        for o in stale {
            inode.flips.remove(&o);
        }
        inode.pending.push(Pending::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn truncate(&mut self, file: FileId, len: u64) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("truncate")?;
        let inode = d.inode(file)?;
        inode.data.resize(len as usize, 0);
        inode.flips.retain(|off, _| *off < len);
        inode.pending.push(Pending::Truncate { len });
        Ok(())
    }

    fn sync(&mut self, file: FileId) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("sync")?;
        let inode = d.inode(file)?;
        inode.durable = inode.data.clone();
        inode.pending.clear();
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

    /// Makes every name under `dir` (recursively) durable: the simulation is
    /// coarser than POSIX here, which only syncs direct entries.
    fn sync_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        let mut d = self.0.borrow_mut();
        d.mutate("sync_dir")?;
        let current: Vec<(String, u64)> = d
            .names
            .iter()
            .filter(|(p, _)| under(p, dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        d.durable_names.retain(|p, _| !under(p, dir));
        d.durable_names.extend(current);
        Ok(())
    }
}
