//! The real disk: [`Disk`] over `std::fs`. This is the only module of
//! natrix-storage allowed to touch the operating system's files (the purity
//! test in `tests/purity.rs` holds it to that).

// std::fs is banned everywhere else in the crate.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use super::{Disk, DiskError, DiskErrorKind, FileId};
use crate::rng::SplitMix64;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// [`Disk`] rooted at a directory of the real filesystem.
pub struct FsDisk {
    root: PathBuf,
    files: Vec<Option<File>>,
    nonces: SplitMix64,
}

impl FsDisk {
    /// Block nonces come from a generator seeded by the operating system
    /// (std's randomly keyed hasher), so payloads cannot predict them.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsDisk::with_seed(root, RandomState::new().hash_one(0x6e61_7472_6978_u64))
    }

    /// Block nonces drawn from `seed`, for callers that inject their own.
    pub fn with_seed(root: impl Into<PathBuf>, seed: u64) -> Self {
        FsDisk {
            root: root.into(),
            files: Vec::new(),
            nonces: SplitMix64::new(seed),
        }
    }

    fn path(&self, path: &str) -> Result<PathBuf, DiskError> {
        if path.split('/').any(|part| part == "..") || path.starts_with('/') {
            return Err(DiskError::new(DiskErrorKind::Invalid, path));
        }
        Ok(if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        })
    }

    fn file(&self, file: FileId) -> Result<&File, DiskError> {
        self.files
            .get(file.0 as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| DiskError::new(DiskErrorKind::Invalid, format!("closed {file:?}")))
    }
}

fn err(e: io::Error, what: &str) -> DiskError {
    let kind = match e.kind() {
        io::ErrorKind::NotFound => DiskErrorKind::NotFound,
        io::ErrorKind::StorageFull => DiskErrorKind::NoSpace,
        _ => DiskErrorKind::Io,
    };
    DiskError::new(kind, format!("{what}: {e}"))
}

impl Disk for FsDisk {
    fn open(&mut self, path: &str, create: bool) -> Result<FileId, DiskError> {
        let full = self.path(path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&full)
            .map_err(|e| err(e, path))?;
        let slot = self.files.iter().position(Option::is_none);
        let index = match slot {
            Some(i) => {
                self.files[i] = Some(file);
                i
            }
            None => {
                self.files.push(Some(file));
                self.files.len() - 1
            }
        };
        Ok(FileId(u32::try_from(index).unwrap_or(u32::MAX)))
    }

    fn close(&mut self, file: FileId) {
        if let Some(slot) = self.files.get_mut(file.0 as usize) {
            *slot = None;
        }
    }

    fn len(&mut self, file: FileId) -> Result<u64, DiskError> {
        let meta = self.file(file)?.metadata().map_err(|e| err(e, "stat"))?;
        Ok(meta.len())
    }

    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, DiskError> {
        let f = self.file(file)?;
        let mut done = 0;
        while done < buf.len() {
            match f.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e, "read")),
            }
        }
        Ok(done)
    }

    fn write_at(&mut self, file: FileId, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.file(file)?
            .write_all_at(data, offset)
            .map_err(|e| err(e, "write"))
    }

    fn truncate(&mut self, file: FileId, len: u64) -> Result<(), DiskError> {
        self.file(file)?
            .set_len(len)
            .map_err(|e| err(e, "truncate"))
    }

    fn sync(&mut self, file: FileId) -> Result<(), DiskError> {
        self.file(file)?.sync_data().map_err(|e| err(e, "fsync"))
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, DiskError> {
        let full = self.path(dir)?;
        let entries = match std::fs::read_dir(&full) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e, dir)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| err(e, dir))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn remove(&mut self, path: &str) -> Result<(), DiskError> {
        std::fs::remove_file(self.path(path)?).map_err(|e| err(e, path))
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<(), DiskError> {
        std::fs::rename(self.path(from)?, self.path(to)?).map_err(|e| err(e, from))
    }

    fn create_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        std::fs::create_dir_all(self.path(dir)?).map_err(|e| err(e, dir))
    }

    fn remove_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        match std::fs::remove_dir_all(self.path(dir)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(e, dir)),
            _ => Ok(()),
        }
    }

    fn sync_dir(&mut self, dir: &str) -> Result<(), DiskError> {
        let d = File::open(self.path(dir)?).map_err(|e| err(e, dir))?;
        d.sync_all().map_err(|e| err(e, dir))
    }

    fn nonce(&mut self) -> u64 {
        self.nonces.next_u64()
    }
}
