//! The record format of block files (format version 2). Every record is
//!
//! ```text
//! u32 body_len | u32 crc32c(u64 nonce ++ u64 offset ++ body_len bytes ++ body) | body
//! ```
//!
//! (little-endian) and the body starts with a kind byte:
//!
//! ```text
//! 1 message   u64 seq | u64 ts_unix_nanos | u16 subject_len | u32 headers_len
//!             | u32 payload_len | subject | headers | payload
//! 2 erase     u32 count | count × (u64 first_seq, u64 last_seq)
//! 3 truncate  u64 last_seq
//! 4 synced    u64 last_seq: every byte before this record was synced, and
//!             the stream's last sequence was last_seq
//! ```
//!
//! The checksum covers the length, so a flipped length is caught too. It
//! also covers a [`Seal`]: the block's random nonce and the record's own
//! offset in the block, neither of which is stored in the record. So bytes
//! that decode as a record anywhere else — a record copied into a user's
//! payload, a record of another block, a record of an older incarnation of
//! this block — fail their checksum: a record is believed only where the
//! store wrote it.

use crate::msg::Msg;

pub const HEADER_BYTES: usize = 8;
const MSG_FIXED_BYTES: usize = 1 + 8 + 8 + 2 + 4 + 4;
/// The largest body the store writes or believes: bigger lengths are
/// corruption, and nothing is allocated for them.
pub const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

const KIND_MSG: u8 = 1;
const KIND_ERASE: u8 = 2;
const KIND_TRUNCATE: u8 = 3;
const KIND_SYNCED: u8 = 4;

/// Where a record was written: the block's nonce and the record's offset
/// in the block file. Both go into the record's checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    pub nonce: u64,
    pub offset: u64,
}

impl Seal {
    /// The seal of the record that follows `bytes` bytes after this one.
    pub fn after(self, bytes: u64) -> Seal {
        Seal {
            nonce: self.nonce,
            offset: self.offset + bytes,
        }
    }
}

/// A decoded record, borrowing from the bytes it was read from.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    Msg {
        seq: u64,
        ts_unix_nanos: u64,
        subject: &'a str,
        headers: &'a [u8],
        payload: &'a [u8],
    },
    /// These inclusive sequence ranges are deleted.
    Erase(Vec<(u64, u64)>),
    /// Every sequence after `last_seq` is gone; the next append follows it.
    Truncate { last_seq: u64 },
    /// Written after a sync: every byte of the block before this record was
    /// durable when it was written, and the stream's last sequence was
    /// `last_seq`.
    Synced { last_seq: u64 },
}

/// What stopped a decode.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end inside the record: a torn tail, or read more.
    Incomplete,
    /// The bytes are not a record.
    Corrupt,
}

/// The size of a message's record on disk: what `max_bytes` counts.
pub fn msg_record_bytes(subject: &str, headers: &[u8], payload: &[u8]) -> u64 {
    (HEADER_BYTES + MSG_FIXED_BYTES + subject.len() + headers.len() + payload.len()) as u64
}

fn checksum(seal: Seal, body_len: [u8; 4], body: &[u8]) -> u32 {
    let mut key = [0; 20];
    key[..8].copy_from_slice(&seal.nonce.to_le_bytes());
    key[8..16].copy_from_slice(&seal.offset.to_le_bytes());
    key[16..].copy_from_slice(&body_len);
    crc32c::crc32c_append(crc32c::crc32c(&key), body)
}

fn finish(out: &mut [u8], start: usize, seal: Seal) {
    let body_len = (out.len() - start - HEADER_BYTES) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    let crc = checksum(seal, body_len.to_le_bytes(), &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Re-checksums a whole, already checked record for a new place (a block
/// rewritten by compaction): its body is unchanged.
pub fn reseal(record: &mut [u8], seal: Seal) {
    if record.len() >= HEADER_BYTES {
        finish(record, 0, seal);
    }
}

/// Appends a message record to `out`, to be written at `seal`. The caller
/// has checked the sizes (subject under 64 KiB, body under
/// [`MAX_BODY_BYTES`]).
pub fn encode_msg(out: &mut Vec<u8>, seal: Seal, msg: &Msg) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(KIND_MSG);
    out.extend_from_slice(&msg.seq.to_le_bytes());
    out.extend_from_slice(&msg.ts_unix_nanos.to_le_bytes());
    out.extend_from_slice(&(msg.subject.len() as u16).to_le_bytes());
    out.extend_from_slice(&(msg.headers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(msg.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(msg.subject.as_bytes());
    out.extend_from_slice(&msg.headers);
    out.extend_from_slice(&msg.payload);
    finish(out, start, seal);
}

pub fn encode_erase(out: &mut Vec<u8>, seal: Seal, ranges: &[(u64, u64)]) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(KIND_ERASE);
    out.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (first, last) in ranges {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&last.to_le_bytes());
    }
    finish(out, start, seal);
}

pub fn encode_truncate(out: &mut Vec<u8>, seal: Seal, last_seq: u64) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(KIND_TRUNCATE);
    out.extend_from_slice(&last_seq.to_le_bytes());
    finish(out, start, seal);
}

pub fn encode_synced(out: &mut Vec<u8>, seal: Seal, last_seq: u64) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(KIND_SYNCED);
    out.extend_from_slice(&last_seq.to_le_bytes());
    finish(out, start, seal);
}

/// The total length (header and body) the record at the start of `bytes`
/// claims, if its header is there and the claim is plausible.
pub fn claimed_len(bytes: &[u8]) -> Result<usize, DecodeError> {
    let len_bytes: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Incomplete)?;
    let body_len = u32::from_le_bytes(len_bytes) as usize;
    if body_len == 0 || body_len > MAX_BODY_BYTES {
        return Err(DecodeError::Corrupt);
    }
    Ok(HEADER_BYTES + body_len)
}

/// Decodes the record at the start of `bytes`, which were read at `seal`,
/// returning it and its total length. A record is believed only if its
/// checksum (for this place) and its structure hold.
pub fn decode(bytes: &[u8], seal: Seal) -> Result<(Record<'_>, usize), DecodeError> {
    let total = claimed_len(bytes)?;
    let Some(whole) = bytes.get(..total) else {
        if bytes.len() > HEADER_BYTES && !matches!(bytes[8], KIND_MSG..=KIND_SYNCED) {
            return Err(DecodeError::Corrupt);
        }
        return Err(DecodeError::Incomplete);
    };
    let stored_crc = u32::from_le_bytes([whole[4], whole[5], whole[6], whole[7]]);
    let crc = checksum(seal, [whole[0], whole[1], whole[2], whole[3]], &whole[8..]);
    if crc != stored_crc {
        return Err(DecodeError::Corrupt);
    }
    let record = parse_body(&whole[8..]).ok_or(DecodeError::Corrupt)?;
    Ok((record, total))
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

fn parse_body(body: &[u8]) -> Option<Record<'_>> {
    let mut c = Cursor(body);
    let record = match c.u8()? {
        KIND_MSG => {
            let seq = c.u64()?;
            let ts_unix_nanos = c.u64()?;
            let subject_len = c.u16()? as usize;
            let headers_len = c.u32()? as usize;
            let payload_len = c.u32()? as usize;
            let subject = std::str::from_utf8(c.take(subject_len)?).ok()?;
            let headers = c.take(headers_len)?;
            let payload = c.take(payload_len)?;
            if seq == 0 || subject.is_empty() {
                return None;
            }
            Record::Msg {
                seq,
                ts_unix_nanos,
                subject,
                headers,
                payload,
            }
        }
        KIND_ERASE => {
            let count = c.u32()? as usize;
            if count > c.0.len() / 16 {
                return None;
            }
            let mut ranges = Vec::with_capacity(count);
            for _ in 0..count {
                let (first, last) = (c.u64()?, c.u64()?);
                if first > last {
                    return None;
                }
                ranges.push((first, last));
            }
            Record::Erase(ranges)
        }
        KIND_TRUNCATE => Record::Truncate { last_seq: c.u64()? },
        KIND_SYNCED => Record::Synced { last_seq: c.u64()? },
        _ => return None,
    };
    c.0.is_empty().then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64) -> Msg {
        Msg {
            seq,
            ts_unix_nanos: 7,
            subject: "orders.new".into(),
            headers: b"NATS/1.0\r\n\r\n".to_vec(),
            payload: b"hello".to_vec(),
        }
    }

    const AT: Seal = Seal {
        nonce: 0x5eed,
        offset: 32,
    };

    #[test]
    fn records_round_trip() {
        let mut out = Vec::new();
        encode_msg(&mut out, AT, &msg(3));
        let n = out.len();
        encode_erase(&mut out, AT.after(n as u64), &[(1, 2), (5, 9)]);
        let m = out.len() - n;
        encode_truncate(&mut out, AT.after((n + m) as u64), 4);
        let k = out.len();
        encode_synced(&mut out, AT.after(k as u64), 9);
        let (r, n) = decode(&out, AT).unwrap();
        assert_eq!(
            n as u64,
            msg_record_bytes("orders.new", b"NATS/1.0\r\n\r\n", b"hello")
        );
        assert!(matches!(
            r,
            Record::Msg {
                seq: 3,
                subject: "orders.new",
                ..
            }
        ));
        let (r, m) = decode(&out[n..], AT.after(n as u64)).unwrap();
        assert_eq!(r, Record::Erase(vec![(1, 2), (5, 9)]));
        let (r, _) = decode(&out[n + m..], AT.after((n + m) as u64)).unwrap();
        assert_eq!(r, Record::Truncate { last_seq: 4 });
        assert_eq!(
            decode(&out[k..], AT.after(k as u64)).unwrap().0,
            Record::Synced { last_seq: 9 }
        );
    }

    #[test]
    fn a_record_is_believed_only_where_it_was_written() {
        let mut out = Vec::new();
        encode_msg(&mut out, AT, &msg(3));
        for offset in [0, 31, 33, AT.offset + 4096] {
            let elsewhere = Seal { offset, ..AT };
            assert_eq!(decode(&out, elsewhere).unwrap_err(), DecodeError::Corrupt);
        }
        let other_block = Seal {
            nonce: 0x5eee,
            ..AT
        };
        assert_eq!(decode(&out, other_block).unwrap_err(), DecodeError::Corrupt);
        // Resealed for its new place, the same body is believed there.
        let moved = AT.after(1000);
        reseal(&mut out, moved);
        assert!(decode(&out, moved).is_ok());
        assert!(decode(&out, AT).is_err());
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut out = Vec::new();
        encode_msg(&mut out, AT, &msg(3));
        for byte in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode(&bad, AT).is_err(),
                    "flip at {byte}:{bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_prefix_is_incomplete_not_a_record() {
        let mut out = Vec::new();
        encode_msg(&mut out, AT, &msg(3));
        for cut in 0..out.len() {
            assert_eq!(
                decode(&out[..cut], AT).unwrap_err(),
                DecodeError::Incomplete
            );
        }
    }
}
