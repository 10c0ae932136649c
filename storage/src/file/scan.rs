//! Reading a block file back: every record checked, bad stretches found
//! and bounded, a torn tail told apart from damage in the middle.

use crate::record::{self, DecodeError, Record};

/// Every block file starts with this.
pub const BLOCK_MAGIC: &[u8; 8] = b"NXBLK\0\0\x01";

/// A record as replay needs it: messages without their bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Msg {
        seq: u64,
        ts_unix_nanos: u64,
        subject: String,
        offset: u64,
        len: u32,
    },
    Erase(Vec<(u64, u64)>),
    Truncate(u64),
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
}

impl Scan {
    pub fn is_clean(&self) -> bool {
        self.tail_bytes == 0 && !self.entries.iter().any(|e| matches!(e, Entry::Bad { .. }))
    }
}

fn entry(record: Record<'_>, offset: usize, len: usize) -> Entry {
    match record {
        Record::Msg {
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
        },
        Record::Erase(ranges) => Entry::Erase(ranges),
        Record::Truncate { last_seq } => Entry::Truncate(last_seq),
    }
}

/// The next offset after `from` where a whole, valid record starts.
fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(record::HEADER_BYTES)).find(|&p| {
        let rest = &bytes[p..];
        matches!(record::claimed_len(rest), Ok(n) if n <= rest.len())
            && matches!(rest[record::HEADER_BYTES], 1..=3)
            && record::decode(rest).is_ok()
    })
}

/// Scans a whole block file.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = if bytes.starts_with(BLOCK_MAGIC) {
        BLOCK_MAGIC.len()
    } else {
        match resync(bytes, 0) {
            // Good records without a magic before them are still good.
            Some(0) => 0,
            Some(next) => {
                out.entries.push(Entry::Bad {
                    offset: 0,
                    bytes: next as u64,
                });
                next
            }
            None => {
                out.tail_bytes = bytes.len() as u64;
                return out;
            }
        }
    };
    while pos < bytes.len() {
        match record::decode(&bytes[pos..]) {
            Ok((rec, n)) => {
                out.entries.push(entry(rec, pos, n));
                pos += n;
            }
            Err(DecodeError::Incomplete | DecodeError::Corrupt) => match resync(bytes, pos + 1) {
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
            },
        }
    }
    out.valid_len = pos as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::Msg;

    fn block(n: u64) -> Vec<u8> {
        let mut out = BLOCK_MAGIC.to_vec();
        for seq in 1..=n {
            record::encode_msg(
                &mut out,
                &Msg {
                    seq,
                    ts_unix_nanos: seq,
                    subject: format!("s.{seq}"),
                    headers: Vec::new(),
                    payload: vec![seq as u8; 40],
                },
            );
        }
        out
    }

    #[test]
    fn a_clean_block_scans_whole() {
        let b = block(5);
        let s = scan(&b);
        assert!(s.is_clean());
        assert_eq!(s.entries.len(), 5);
        assert_eq!(s.valid_len, b.len() as u64);
    }

    #[test]
    fn a_cut_block_has_a_tail_not_damage() {
        let b = block(5);
        for cut in BLOCK_MAGIC.len()..b.len() {
            let s = scan(&b[..cut]);
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
        let second = BLOCK_MAGIC.len() + first_len + 10;
        b[second] ^= 0x10;
        let s = scan(&b);
        let seqs: Vec<u64> = s
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Msg { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![1, 3, 4, 5]);
        assert!(matches!(s.entries[1], Entry::Bad { .. }));
        assert_eq!(s.tail_bytes, 0);
    }
}
