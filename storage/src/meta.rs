//! A stream's metadata: opaque bytes the core serialises (its configuration
//! and creation time), kept in the file `meta` of the stream's directory so
//! that start-up can learn which streams exist and how they were made.
//!
//! The file is
//!
//! ```text
//! "NXMETA\0\x01"                       8-byte magic (format version 1)
//! u32 meta_len
//! u32 crc32c(magic ++ meta_len ++ meta)
//! meta                                  exactly meta_len bytes, nothing after
//! ```
//!
//! (little-endian) and it is only ever replaced whole: the new bytes go to
//! `meta.new`, which is synced, renamed over `meta`, and the directory
//! synced. A rename is atomic, so after a crash `meta` is the old file or
//! the new one; the checksum catches what the disk damaged later, and a
//! damaged file is reported, never returned as metadata.

pub use crate::consumer::StoredConsumer;
use crate::disk::{Disk, DiskError, DiskErrorKind, join};
use crate::msg::StoreError;

/// The file name of a stream's metadata in its directory.
pub const META_FILE: &str = "meta";
/// Where a new meta file is written before it is renamed over [`META_FILE`].
/// Not `*.tmp`: opening a stream removes those, and a half-written
/// `meta.new` is harmless (the next save truncates it).
pub const META_NEW_FILE: &str = "meta.new";
pub const META_MAGIC: &[u8; 8] = b"NXMETA\0\x01";
pub const META_HEADER_BYTES: usize = 16;
/// The largest metadata stored; a larger length in a file is damage, and
/// nothing is allocated for it.
pub const MAX_META_BYTES: usize = 1024 * 1024;

/// Why a stream's metadata (or a consumer's state) could not be returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// The stream has no meta file: it was opened, but no `SaveMeta` of it
    /// reached the disk. (Never said of a listed consumer: one without a
    /// file is not listed.)
    Missing,
    /// The meta file is there but malformed or failed its checksum.
    Damaged(String),
    /// Reading the meta file failed.
    Disk(DiskError),
}

/// A stream found on disk by `ListStreams`, with its metadata and its
/// consumers' saved states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredStream {
    pub name: String,
    pub meta: Result<Vec<u8>, MetaError>,
    /// Sorted by name.
    pub consumers: Vec<StoredConsumer>,
}

/// How one kind of checksummed, replace-only file is framed: a meta file
/// and a consumer file differ only in their magic and their cap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framing {
    pub magic: &'static [u8; 8],
    /// The largest content stored; a larger length in a file is damage,
    /// and nothing is allocated for it.
    pub max_bytes: usize,
    /// What the content is, for error messages.
    pub what: &'static str,
}

const META_FRAMING: Framing = Framing {
    magic: META_MAGIC,
    max_bytes: MAX_META_BYTES,
    what: "stream metadata",
};

/// The bytes of a meta file holding `meta`.
pub fn encode(meta: &[u8]) -> Vec<u8> {
    encode_framed(META_FRAMING, meta)
}

/// The metadata a meta file holds, if its bytes are exactly what
/// [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Vec<u8>, MetaError> {
    decode_framed(META_FRAMING, bytes)
}

pub(crate) fn encode_framed(framing: Framing, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(META_HEADER_BYTES + content.len());
    out.extend_from_slice(framing.magic);
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(&out, content).to_le_bytes());
    out.extend_from_slice(content);
    out
}

fn checksum(magic_and_len: &[u8], content: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&magic_and_len[..12]), content)
}

pub(crate) fn decode_framed(framing: Framing, bytes: &[u8]) -> Result<Vec<u8>, MetaError> {
    let damaged = |why: &str| Err(MetaError::Damaged(why.to_string()));
    if bytes.len() < META_HEADER_BYTES {
        return damaged("shorter than its header");
    }
    if &bytes[..8] != framing.magic {
        return damaged("bad magic");
    }
    let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if bytes.len() - META_HEADER_BYTES != len {
        return damaged("length disagrees with the file's");
    }
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let content = &bytes[META_HEADER_BYTES..];
    if checksum(bytes, content) != crc {
        return damaged("checksum mismatch");
    }
    Ok(content.to_vec())
}

/// Replaces the metadata in `dir` atomically and durably: write and sync
/// `meta.new`, rename it over `meta`, sync the directory. When this
/// returns `Ok`, the new metadata survives a crash; when it fails, a
/// reader finds the old metadata or the new, whole either way.
pub fn write_meta<D: Disk>(disk: &mut D, dir: &str, meta: &[u8]) -> Result<(), StoreError> {
    replace_file(disk, dir, META_FILE, META_NEW_FILE, META_FRAMING, meta)
}

/// Replaces `dir/name` with a file framing `content`, atomically and
/// durably, through `dir/new_name` (see [`write_meta`]).
pub(crate) fn replace_file<D: Disk>(
    disk: &mut D,
    dir: &str,
    name: &str,
    new_name: &str,
    framing: Framing,
    content: &[u8],
) -> Result<(), StoreError> {
    if content.len() > framing.max_bytes {
        return Err(StoreError::Invalid(format!(
            "{} over {} bytes",
            framing.what, framing.max_bytes
        )));
    }
    let new = join(dir, new_name);
    let file = disk.open(&new, true)?;
    let written = write_synced(disk, file, &encode_framed(framing, content));
    disk.close(file);
    written?;
    disk.rename(&new, &join(dir, name))?;
    disk.sync_dir(dir)?;
    Ok(())
}

fn write_synced<D: Disk>(
    disk: &mut D,
    file: crate::disk::FileId,
    bytes: &[u8],
) -> Result<(), DiskError> {
    // A crashed save may have left a longer new file behind.
    disk.truncate(file, 0)?;
    disk.write_at(file, 0, bytes)?;
    disk.sync(file)
}

/// The metadata in `dir`. Bytes that fail their checksum are read once
/// more before they are called damaged: a bit flipped on the way from the
/// disk is not damage on it.
pub fn read_meta<D: Disk>(disk: &mut D, dir: &str) -> Result<Vec<u8>, MetaError> {
    read_file(disk, &join(dir, META_FILE), META_FRAMING)
}

/// The content of the file at `path` framed by `framing` (see
/// [`read_meta`]); `Missing` if there is none.
pub(crate) fn read_file<D: Disk>(
    disk: &mut D,
    path: &str,
    framing: Framing,
) -> Result<Vec<u8>, MetaError> {
    let file = match disk.open(path, false) {
        Ok(file) => file,
        Err(e) if e.kind == DiskErrorKind::NotFound => return Err(MetaError::Missing),
        Err(e) => return Err(MetaError::Disk(e)),
    };
    let first = read_once(disk, file, framing);
    let result = match first {
        Err(MetaError::Damaged(_)) => read_once(disk, file, framing),
        other => other,
    };
    disk.close(file);
    result
}

fn read_once<D: Disk>(
    disk: &mut D,
    file: crate::disk::FileId,
    framing: Framing,
) -> Result<Vec<u8>, MetaError> {
    let len = disk.len(file).map_err(MetaError::Disk)?;
    if len > (META_HEADER_BYTES + framing.max_bytes) as u64 {
        return Err(MetaError::Damaged(format!("{len} bytes long")));
    }
    let mut bytes = vec![0; len as usize];
    let n = disk.read_at(file, 0, &mut bytes).map_err(MetaError::Disk)?;
    bytes.truncate(n);
    decode_framed(framing, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{SimDisk, SimDiskConfig};

    #[test]
    fn what_is_encoded_decodes_to_itself() {
        for meta in [&b""[..], b"x", &[0xff; 300]] {
            assert_eq!(decode(&encode(meta)).unwrap(), meta);
        }
    }

    #[test]
    fn every_flipped_bit_and_every_cut_is_damage() {
        let good = encode(b"{\"name\":\"orders\",\"created\":1}");
        for bit in 0..good.len() * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(decode(&bad), Err(MetaError::Damaged(_))),
                "bit {bit} flipped went unnoticed"
            );
        }
        for len in 0..good.len() {
            assert!(
                matches!(decode(&good[..len]), Err(MetaError::Damaged(_))),
                "cut at {len} went unnoticed"
            );
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(MetaError::Damaged(_))));
    }

    #[test]
    fn a_save_replaces_the_meta_and_leaves_no_new_file() {
        let mut disk = SimDisk::with_seed(1);
        assert_eq!(read_meta(&mut disk, "s"), Err(MetaError::Missing));
        write_meta(&mut disk, "s", b"first, and longer").unwrap();
        write_meta(&mut disk, "s", b"second").unwrap();
        assert_eq!(read_meta(&mut disk, "s").unwrap(), b"second");
        assert_eq!(disk.files(), vec!["s/meta".to_string()]);
        disk.crash();
        assert_eq!(read_meta(&mut disk, "s").unwrap(), b"second");
    }

    #[test]
    fn a_leftover_longer_new_file_does_not_leak_into_the_next_save() {
        let mut disk = SimDisk::with_seed(2);
        disk.put_file("s/meta.new", &[0xaa; 4000]);
        write_meta(&mut disk, "s", b"short").unwrap();
        assert_eq!(read_meta(&mut disk, "s").unwrap(), b"short");
    }

    #[test]
    fn a_flipped_bit_on_disk_is_reported_not_returned() {
        let mut disk = SimDisk::with_seed(3);
        write_meta(&mut disk, "s", b"config").unwrap();
        disk.flip_bit("s/meta", 20, 0x04);
        assert!(matches!(
            read_meta(&mut disk, "s"),
            Err(MetaError::Damaged(_))
        ));
    }

    #[test]
    fn a_bit_flipped_on_read_is_read_again() {
        let mut disk = SimDisk::with_seed(4);
        write_meta(&mut disk, "s", &[7; 2000]).unwrap();
        let mut retried = 0;
        for seed in 0..40 {
            // Every read flips a bit with probability one half.
            disk.set_config(SimDiskConfig {
                seed,
                read_flip_per_million: 500_000,
                ..SimDiskConfig::default()
            });
            let flips_before = disk.faults().len();
            let got = read_meta(&mut disk, "s");
            let flips = disk.faults().len() - flips_before;
            match got {
                Ok(meta) => {
                    assert_eq!(meta, [7; 2000]);
                    retried += usize::from(flips == 1);
                }
                Err(e) => assert!(
                    flips == 2 && matches!(e, MetaError::Damaged(_)),
                    "{flips} flips, {e:?}"
                ),
            }
        }
        assert!(retried > 0, "no read was retried");
    }

    #[test]
    fn an_oversized_meta_is_refused_before_anything_is_written() {
        let mut disk = SimDisk::with_seed(5);
        let too_big = vec![0; MAX_META_BYTES + 1];
        assert!(matches!(
            write_meta(&mut disk, "s", &too_big),
            Err(StoreError::Invalid(_))
        ));
        assert!(disk.files().is_empty());
    }
}
