//! A consumer's saved state: opaque bytes the core serialises (the
//! consumer's configuration and its progress: delivered sequences, ack
//! floor, pending messages and their redelivery counts), kept in the file
//! `consumers/<encoded name>` of its stream's directory so that a restart
//! finds every consumer where it left off.
//!
//! A consumer file is framed exactly like a meta file ([`crate::meta`]):
//! an 8-byte magic (`"NXCONS\0\x01"`), the state's length, a crc32c, the
//! state; at most [`MAX_CONSUMER_BYTES`], since a consumer with many
//! pending acks is large. It is only ever replaced whole, through
//! `<encoded name>.new`, synced, renamed over it, the directory synced.
//!
//! A consumer name becomes a file name only once encoded: every byte
//! outside `[A-Za-z0-9_-]` becomes `%XX`. So no name can leave the
//! directory (no `/`, no `.`, so never `..`), no two names share a file,
//! and no encoded name ends in `.new`.

use crate::disk::{Disk, DiskErrorKind, join};
use crate::meta::{self, Framing, MetaError};
use crate::msg::StoreError;

/// The directory of a stream's directory that holds its consumers' files.
/// Opening a stream, compacting and scrubbing it look only at block,
/// index and `*.tmp` names, so they leave it alone.
pub const CONSUMERS_DIR: &str = "consumers";
pub const CONSUMER_MAGIC: &[u8; 8] = b"NXCONS\0\x01";
/// The largest state stored; a larger save fails, a larger file is damage.
pub const MAX_CONSUMER_BYTES: usize = 16 * 1024 * 1024;
/// What a save writes before it renames: `<encoded name>.new`. Not
/// `*.tmp`, like `meta.new`, and harmless when a crash leaves it (the next
/// save truncates it; listing ignores it).
pub const NEW_SUFFIX: &str = ".new";
/// The longest encoded name, so that with [`NEW_SUFFIX`] it still fits
/// the 255 bytes every common filesystem allows a file name.
pub const MAX_FILE_NAME_BYTES: usize = 255 - NEW_SUFFIX.len();

const CONSUMER_FRAMING: Framing = Framing {
    magic: CONSUMER_MAGIC,
    max_bytes: MAX_CONSUMER_BYTES,
    what: "consumer state",
};

/// A consumer found on disk by `ListStreams`, with its saved state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredConsumer {
    /// The consumer's name, decoded.
    pub name: String,
    /// `Err(MetaError::Damaged(_))` if the file failed its checksum.
    pub state: Result<Vec<u8>, MetaError>,
}

/// The file name of `consumer`: every byte outside `[A-Za-z0-9_-]`
/// percent-encoded. An empty name, or one whose encoding is longer than
/// [`MAX_FILE_NAME_BYTES`], is refused.
pub fn file_name(consumer: &str) -> Result<String, StoreError> {
    let mut name = String::with_capacity(consumer.len());
    for b in consumer.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            name.push(char::from(b));
        } else {
            name.push('%');
            name.push(char::from(HEX[usize::from(b >> 4)]));
            name.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    if name.is_empty() || name.len() > MAX_FILE_NAME_BYTES {
        return Err(StoreError::Invalid(format!(
            "consumer name of {} bytes",
            consumer.len()
        )));
    }
    Ok(name)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The consumer a file name stands for, if [`file_name`] could have
/// written it (anything else in the directory is not a consumer's).
pub fn decode_file_name(file: &str) -> Option<String> {
    let bytes = file.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| HEX.iter().position(|&h| h == b);
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(((hi << 4) | lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let name = String::from_utf8(out).ok()?;
    // Only the canonical spelling: `%41` is not a second file for "A".
    (file_name(&name).ok()? == file).then_some(name)
}

/// Refuses a save that could never be stored, before anything is made.
pub fn check_save(consumer: &str, state: &[u8]) -> Result<String, StoreError> {
    let name = file_name(consumer)?;
    if state.len() > MAX_CONSUMER_BYTES {
        return Err(StoreError::Invalid(format!(
            "consumer state over {MAX_CONSUMER_BYTES} bytes"
        )));
    }
    Ok(name)
}

/// Replaces the consumer's state in `stream_dir/consumers` (which must
/// exist) atomically and durably, as [`meta::write_meta`] replaces
/// metadata.
pub fn write_consumer<D: Disk>(
    disk: &mut D,
    stream_dir: &str,
    consumer: &str,
    state: &[u8],
) -> Result<(), StoreError> {
    let name = check_save(consumer, state)?;
    let dir = join(stream_dir, CONSUMERS_DIR);
    let new_name = format!("{name}{NEW_SUFFIX}");
    meta::replace_file(disk, &dir, &name, &new_name, CONSUMER_FRAMING, state)
}

/// Deletes the consumer's file (and a crashed save's leftover) durably.
/// A consumer without a file is removed all the same, and the directory
/// is synced anyway: a removal that failed before its sync may have
/// taken the name from the directory without making that durable.
pub fn remove_consumer<D: Disk>(
    disk: &mut D,
    stream_dir: &str,
    consumer: &str,
) -> Result<(), StoreError> {
    let name = file_name(consumer)?;
    let dir = join(stream_dir, CONSUMERS_DIR);
    for file in [name.clone(), format!("{name}{NEW_SUFFIX}")] {
        match disk.remove(&join(&dir, &file)) {
            Err(e) if e.kind != DiskErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    match disk.sync_dir(&dir) {
        Err(e) if e.kind != DiskErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Every consumer saved in `stream_dir`, sorted by name. A file that is
/// not a consumer's, a save's leftover `.new` among them, is skipped.
pub fn read_consumers<D: Disk>(
    disk: &mut D,
    stream_dir: &str,
) -> Result<Vec<StoredConsumer>, StoreError> {
    let dir = join(stream_dir, CONSUMERS_DIR);
    let mut consumers: Vec<StoredConsumer> = Vec::new();
    for file in disk.list(&dir)? {
        let Some(name) = decode_file_name(&file) else {
            continue;
        };
        let state = meta::read_file(disk, &join(&dir, &file), CONSUMER_FRAMING);
        consumers.push(StoredConsumer { name, state });
    }
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(consumers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::SimDisk;

    #[test]
    fn names_encode_to_safe_file_names_and_decode_back() {
        let long = "é".repeat(41);
        for name in [
            "worker", "A-z_09", "../x", "a/b", "a.b", "a b\t", "%41", "dur.new", "\0", &long,
        ] {
            let file = file_name(name).unwrap();
            assert!(
                file.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'%')),
                "{name:?} became {file:?}"
            );
            assert!(!file.ends_with(NEW_SUFFIX));
            assert_eq!(decode_file_name(&file).as_deref(), Some(name));
        }
        assert_eq!(file_name("../x").unwrap(), "%2E%2E%2Fx");
    }

    #[test]
    fn empty_and_overlong_names_are_refused() {
        assert!(matches!(file_name(""), Err(StoreError::Invalid(_))));
        assert!(file_name(&"x".repeat(MAX_FILE_NAME_BYTES)).is_ok());
        for too_long in ["x".repeat(MAX_FILE_NAME_BYTES + 1), ".".repeat(84)] {
            assert!(matches!(file_name(&too_long), Err(StoreError::Invalid(_))));
        }
    }

    #[test]
    fn only_canonical_file_names_decode() {
        for other in [
            "", "a.new", "%41", "%2e", "%2", "%zz", "a%", "%FF", "meta", "0001.blk",
        ] {
            let decoded = decode_file_name(other);
            assert!(
                decoded.is_none() || other == "meta",
                "{other:?} decoded to {decoded:?}"
            );
        }
        assert_eq!(decode_file_name("meta").as_deref(), Some("meta"));
    }

    #[test]
    fn a_consumer_file_is_not_a_meta_file() {
        let mut disk = SimDisk::with_seed(1);
        write_consumer(&mut disk, "s", "c", b"state").unwrap();
        let bytes = disk.pristine("s/consumers/c").unwrap();
        assert_eq!(&bytes[..8], CONSUMER_MAGIC);
        assert!(matches!(meta::decode(&bytes), Err(MetaError::Damaged(_))));
    }

    #[test]
    fn saves_replace_removes_delete_and_leftovers_are_ignored() {
        let mut disk = SimDisk::with_seed(2);
        assert_eq!(read_consumers(&mut disk, "s").unwrap(), vec![]);
        write_consumer(&mut disk, "s", "b", b"first, and longer").unwrap();
        write_consumer(&mut disk, "s", "b", b"second").unwrap();
        write_consumer(&mut disk, "s", "a.x", b"other").unwrap();
        disk.put_file("s/consumers/z.new", b"half a save");
        let found = read_consumers(&mut disk, "s").unwrap();
        let names: Vec<&str> = found.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a.x", "b"]);
        assert_eq!(found[1].state, Ok(b"second".to_vec()));
        remove_consumer(&mut disk, "s", "b").unwrap();
        remove_consumer(&mut disk, "s", "never saved").unwrap();
        remove_consumer(&mut disk, "s", "z").unwrap();
        disk.crash();
        assert_eq!(disk.files(), vec!["s/consumers/a%2Ex".to_string()]);
    }
}
