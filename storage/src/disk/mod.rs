//! The disk seam: every byte the file store reads or writes passes through
//! [`Disk`]. Production uses [`FsDisk`] (the one module that touches
//! `std::fs`); tests and the simulator use [`SimDisk`], which can lose,
//! tear and corrupt what it was given.

#[cfg(feature = "fs")]
mod fs;
mod sim;

#[cfg(feature = "fs")]
pub use fs::FsDisk;
pub use sim::{Fault, SimDisk, SimDiskConfig};

use std::fmt;

/// A handle to an open file, valid until [`Disk::close`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// What went wrong, as far as the store needs to tell cases apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskErrorKind {
    NotFound,
    /// ENOSPC: the write did not happen; freeing space may help.
    NoSpace,
    /// EIO or anything else the device reported.
    Io,
    /// A path or handle the store should never have produced.
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskError {
    pub kind: DiskErrorKind,
    pub detail: String,
}

impl DiskError {
    pub fn new(kind: DiskErrorKind, detail: impl Into<String>) -> Self {
        DiskError {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for DiskError {}

/// A small filesystem. Paths are relative, `/`-separated, and never contain
/// `..`; the implementation decides where they are rooted.
///
/// Durability follows POSIX at its least generous: data written with
/// [`Disk::write_at`] survives a crash only after [`Disk::sync`] of that file,
/// and a created, renamed or removed name only after [`Disk::sync_dir`] of
/// its directory.
pub trait Disk {
    /// Opens `path` for reading and writing, creating it when `create` is set.
    fn open(&mut self, path: &str, create: bool) -> Result<FileId, DiskError>;
    fn close(&mut self, file: FileId);
    /// The file's current length in bytes.
    fn len(&mut self, file: FileId) -> Result<u64, DiskError>;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at end of file.
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, DiskError>;
    /// Writes all of `data` at `offset` (into the page cache, not durable).
    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), DiskError>;
    fn truncate(&mut self, file: FileId, len: u64) -> Result<(), DiskError>;
    /// Makes every earlier write and truncate of this file durable.
    fn sync(&mut self, file: FileId) -> Result<(), DiskError>;
    /// The names (not paths) in `dir`, sorted; empty when `dir` is missing.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, DiskError>;
    fn remove(&mut self, path: &str) -> Result<(), DiskError>;
    fn rename(&mut self, from: &str, to: &str) -> Result<(), DiskError>;
    /// Creates `dir` and its parents.
    fn create_dir(&mut self, dir: &str) -> Result<(), DiskError>;
    /// Removes `dir` and everything in it.
    fn remove_dir(&mut self, dir: &str) -> Result<(), DiskError>;
    /// Makes the names created, renamed or removed in `dir` durable.
    fn sync_dir(&mut self, dir: &str) -> Result<(), DiskError>;
    /// A fresh random number for a new block's nonce. It must be
    /// unpredictable to whoever chooses message payloads: the simulated
    /// disk draws it from its seed, the real disk from a generator seeded
    /// once by the operating system (or by its caller).
    fn nonce(&mut self) -> u64;
}

/// Joins a directory and a name into a disk path.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}
