//! Reading a block file back: every record checked where it lies, bad
//! stretches found and bounded, a torn tail told apart from damage in the
//! middle.
//!
//! A block file starts with a header that names its random nonce twice:
//!
//! ```text
//! "NXBLK\0\0\x02" | u64 nonce | u32 crc32c(nonce) | u64 nonce | u32 crc32c(nonce)
//! ```
//!
//! Every record's checksum covers the nonce and the record's offset (see
//! [`crate::record`]), so scanning past bad bytes can only land on a record
//! the store wrote at that very place, never on one copied into a payload.

use crate::record::{self, DecodeError, Record, Seal};

/// Every block file starts with this (format version 2).
pub const BLOCK_MAGIC: &[u8; 8] = b"NXBLK\0\0\x02";
/// The magic of format version 1, which this version does not read.
pub const BLOCK_MAGIC_V1: &[u8; 8] = b"NXBLK\0\0\x01";
/// The magic and two checked copies of the nonce.
pub const BLOCK_HEADER_BYTES: u64 = 32;

/// A fresh block's header.
pub fn block_header(nonce: u64) -> Vec<u8> {
    let mut out = BLOCK_MAGIC.to_vec();
    for _copy in 0..2 {
        out.extend_from_slice(&nonce.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&nonce.to_le_bytes()).to_le_bytes());
    }
    out
}

/// Where the two copies of the nonce are, and how long each is.
const NONCE_COPIES: [usize; 2] = [8, 20];
const NONCE_COPY_BYTES: usize = 12;

fn nonce_copy(bytes: &[u8], at: usize) -> Option<u64> {
    let nonce: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    let crc: [u8; 4] = bytes.get(at + 8..at + 12)?.try_into().ok()?;
    (crc32c::crc32c(&nonce) == u32::from_le_bytes(crc)).then_some(u64::from_le_bytes(nonce))
}

/// The nonce of a block header, from whichever copy still checks out.
pub fn header_nonce(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < BLOCK_HEADER_BYTES as usize {
        return None;
    }
    NONCE_COPIES
        .into_iter()
        .find_map(|at| nonce_copy(bytes, at))
}

/// A record as replay needs it: messages without their bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Msg {
        seq: u64,
        ts_unix_nanos: u64,
        subject: String,
        offset: u64,
        len: u32,
        /// What the message counts against `max_bytes`: `len` unless the
        /// record is packed.
        size: u32,
    },
    Erase(Vec<(u64, u64)>),
    Truncate(u64),
    /// A sync point, with the stream's last sequence then.
    Synced(u64),
    /// Bytes that are not records, followed by good records.
    Bad {
        offset: u64,
        bytes: u64,
    },
}

#[derive(Debug, Default)]
pub struct Scan {
    pub entries: Vec<Entry>,
    /// Where good data ends: the file's length unless `tail_bytes` > 0.
    pub valid_len: u64,
    /// Bytes after the last good record with no good record after them:
    /// a torn tail in the last block, damage in a sealed one.
    pub tail_bytes: u64,
    /// The block's nonce, if its header still names one.
    pub nonce: Option<u64>,
    /// Every byte before this offset was synced (the last `Synced` record).
    pub synced_len: u64,
}

impl Scan {
    pub fn is_clean(&self) -> bool {
        self.tail_bytes == 0 && !self.entries.iter().any(|e| matches!(e, Entry::Bad { .. }))
    }

    /// Applies the rule for the last block: bad bytes where the block was
    /// never synced are a torn write, not damage, so the block ends at the
    /// first of them, whatever good records follow (the simulated disk, like
    /// a real one, keeps unsynced pages in any order). Bad bytes before the
    /// last sync point stay damage in the middle.
    pub fn cut_unsynced(&mut self) {
        let synced = self.synced_len.max(BLOCK_HEADER_BYTES);
        let first_torn = self
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Bad { offset, .. } if *offset >= synced));
        if let Some(i) = first_torn {
            let Entry::Bad { offset, .. } = self.entries[i] else {
                return;
            };
            let end = self.valid_len + self.tail_bytes;
            self.entries.truncate(i);
            self.valid_len = offset;
            self.tail_bytes = end - offset;
        }
    }
}

fn entry(record: Record<'_>, offset: usize, len: usize) -> Entry {
    let size = record.msg_size();
    match record {
        Record::Msg {
            seq,
            ts_unix_nanos,
            subject,
            ..
        }
        | Record::Packed {
            seq,
            ts_unix_nanos,
            subject,
            ..
        } => Entry::Msg {
            seq,
            ts_unix_nanos,
            subject: subject.to_string(),
            offset: offset as u64,
            len: len as u32,
            size: size.map_or(len as u32, |s| s as u32),
        },
        Record::Erase(ranges) => Entry::Erase(ranges),
        Record::Truncate { last_seq } => Entry::Truncate(last_seq),
        Record::Synced { last_seq } => Entry::Synced(last_seq),
    }
}

/// The next offset after `from` where a whole record sealed for that very
/// offset starts.
fn resync(bytes: &[u8], from: usize, nonce: u64) -> Option<usize> {
    (from..bytes.len().saturating_sub(record::HEADER_BYTES)).find(|&p| {
        let rest = &bytes[p..];
        let seal = Seal {
            nonce,
            offset: p as u64,
        };
        matches!(record::claimed_len(rest), Ok(n) if n <= rest.len())
            && matches!(rest[record::HEADER_BYTES], 1..=5)
            && record::decode(rest, seal).is_ok()
    })
}

/// Sequence continuity: a message must follow every sequence before it.
struct Continuity {
    last_seq: u64,
}

impl Continuity {
    /// Whether `record` may come next, updating the last sequence if so.
    fn admits(&mut self, record: &Record<'_>) -> bool {
        match record {
            Record::Msg { seq, .. } | Record::Packed { seq, .. } if *seq <= self.last_seq => {
                return false;
            }
            Record::Msg { seq, .. } | Record::Packed { seq, .. } => self.last_seq = *seq,
            Record::Erase(ranges) => {
                let top = ranges.iter().map(|r| r.1).max().unwrap_or(0);
                self.last_seq = self.last_seq.max(top);
            }
            Record::Truncate { last_seq } => self.last_seq = *last_seq,
            Record::Synced { last_seq } => self.last_seq = self.last_seq.max(*last_seq),
        }
        true
    }
}

/// Scans a whole block file whose first message must follow `floor_seq`
/// (the stream's last sequence after the blocks before it).
pub fn scan(bytes: &[u8], floor_seq: u64) -> Scan {
    let mut out = Scan {
        nonce: header_nonce(bytes),
        ..Scan::default()
    };
    let Some(nonce) = out.nonce else {
        // Without its nonce no record of the block can be checked.
        out.tail_bytes = bytes.len() as u64;
        return out;
    };
    if !bytes.starts_with(BLOCK_MAGIC) {
        out.entries.push(Entry::Bad {
            offset: 0,
            bytes: BLOCK_MAGIC.len() as u64,
        });
    }
    for at in NONCE_COPIES {
        if nonce_copy(bytes, at) != Some(nonce) {
            out.entries.push(Entry::Bad {
                offset: at as u64,
                bytes: NONCE_COPY_BYTES as u64,
            });
        }
    }
    let mut continuity = Continuity {
        last_seq: floor_seq,
    };
    let mut pos = BLOCK_HEADER_BYTES as usize;
    while pos < bytes.len() {
        let seal = Seal {
            nonce,
            offset: pos as u64,
        };
        let decoded = record::decode(&bytes[pos..], seal);
        match decoded {
            Ok((rec, n)) if continuity.admits(&rec) => {
                if matches!(rec, Record::Synced { .. }) {
                    out.synced_len = pos as u64;
                }
                out.entries.push(entry(rec, pos, n));
                pos += n;
            }
            Ok(_) | Err(DecodeError::Incomplete | DecodeError::Corrupt) => {
                match resync(bytes, pos + 1, nonce) {
                    Some(next) => {
                        out.entries.push(Entry::Bad {
                            offset: pos as u64,
                            bytes: (next - pos) as u64,
                        });
                        pos = next;
                    }
                    None => {
                        out.valid_len = pos as u64;
                        out.tail_bytes = (bytes.len() - pos) as u64;
                        return out;
                    }
                }
            }
        }
    }
    out.valid_len = pos as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Msg;

    const NONCE: u64 = 0xfeed_f00d;

    fn msg(seq: u64) -> Msg {
        Msg {
            seq,
            ts_unix_nanos: seq,
            subject: format!("s.{seq}"),
            headers: Vec::new(),
            payload: vec![seq as u8; 40],
        }
    }

    fn block(n: u64) -> Vec<u8> {
        let mut out = block_header(NONCE);
        for seq in 1..=n {
            let seal = Seal {
                nonce: NONCE,
                offset: out.len() as u64,
            };
            record::encode_msg(&mut out, seal, &msg(seq));
        }
        out
    }

    fn seqs(s: &Scan) -> Vec<u64> {
        s.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Msg { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_clean_block_scans_whole() {
        let b = block(5);
        let s = scan(&b, 0);
        assert!(s.is_clean());
        assert_eq!(seqs(&s).len(), 5);
        assert_eq!(s.valid_len, b.len() as u64);
        assert_eq!(s.nonce, Some(NONCE));
    }

    #[test]
    fn a_cut_block_has_a_tail_not_damage() {
        let b = block(5);
        for cut in BLOCK_HEADER_BYTES as usize..b.len() {
            let s = scan(&b[..cut], 0);
            assert!(
                !s.entries.iter().any(|e| matches!(e, Entry::Bad { .. })),
                "cut {cut}"
            );
            assert_eq!(s.valid_len + s.tail_bytes, cut as u64);
        }
    }

    #[test]
    fn damage_in_the_middle_is_bounded_and_scanning_resumes() {
        let mut b = block(5);
        let first_len = record::msg_record_bytes("s.1", &[], &[0; 40]) as usize;
        let second = BLOCK_HEADER_BYTES as usize + first_len + 10;
        b[second] ^= 0x10;
        let s = scan(&b, 0);
        assert_eq!(seqs(&s), vec![1, 3, 4, 5]);
        assert!(matches!(s.entries[1], Entry::Bad { .. }));
        assert_eq!(s.tail_bytes, 0);
    }

    #[test]
    fn bad_bytes_after_the_last_sync_point_end_the_last_block() {
        let mut b = block(2);
        let seal = Seal {
            nonce: NONCE,
            offset: b.len() as u64,
        };
        record::encode_synced(&mut b, seal, 2);
        let synced = seal.offset;
        for seq in 3..=5 {
            let seal = Seal {
                nonce: NONCE,
                offset: b.len() as u64,
            };
            record::encode_msg(&mut b, seal, &msg(seq));
        }
        let len = b.len() as u64;
        // A hole after the sync point: 3 lost, 4 and 5 kept out of order.
        let mut torn = b.clone();
        torn[synced as usize + 20] ^= 1;
        let mut s = scan(&torn, 0);
        assert_eq!(seqs(&s), vec![1, 2, 4, 5]);
        s.cut_unsynced();
        assert_eq!(seqs(&s), vec![1, 2]);
        assert_eq!(s.valid_len, synced + 17);
        assert_eq!(s.valid_len + s.tail_bytes, len);
        // Before the sync point it is damage: the later records stay.
        let mut damaged = b;
        damaged[BLOCK_HEADER_BYTES as usize + 20] ^= 1;
        let mut s = scan(&damaged, 0);
        s.cut_unsynced();
        assert_eq!(seqs(&s), vec![2, 3, 4, 5]);
    }

    #[test]
    fn a_message_that_does_not_follow_the_sequence_before_it_is_not_believed() {
        let b = block(3);
        let s = scan(&b, 2);
        assert_eq!(seqs(&s), vec![3]);
        assert!(matches!(s.entries[0], Entry::Bad { .. }));
    }

    #[test]
    fn one_damaged_nonce_copy_is_survivable_two_are_not() {
        let mut b = block(2);
        b[9] ^= 4;
        assert_eq!(seqs(&scan(&b, 0)), vec![1, 2]);
        b[21] ^= 4;
        let s = scan(&b, 0);
        assert!(s.entries.is_empty());
        assert_eq!(s.tail_bytes, b.len() as u64);
    }
}
