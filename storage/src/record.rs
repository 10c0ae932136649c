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
//! 5 packed    a message as kind 1, its headers and payload (the lengths
//!             given are theirs) one Snappy raw block instead: a stream
//!             with compression writes it when it is smaller
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
const KIND_PACKED: u8 = 5;
/// Headers and payload shorter than this are never compressed: Snappy
/// would save a few bytes at best, for a decompression on every read.
const PACK_MIN_BYTES: usize = 64;

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
    /// A message whose headers and payload are one Snappy raw block that
    /// decompresses to `headers_len + payload_len` bytes.
    Packed {
        seq: u64,
        ts_unix_nanos: u64,
        subject: &'a str,
        headers_len: u32,
        payload_len: u32,
        packed: &'a [u8],
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

impl Record<'_> {
    /// The sequence of a message record, packed or not.
    pub fn msg_seq(&self) -> Option<u64> {
        match self {
            Record::Msg { seq, .. } | Record::Packed { seq, .. } => Some(*seq),
            _ => None,
        }
    }

    /// A message record's size as `max_bytes` counts it: the size of its
    /// plain record, packed or not.
    pub fn msg_size(&self) -> Option<u64> {
        match self {
            Record::Msg {
                subject,
                headers,
                payload,
                ..
            } => Some(msg_record_bytes(subject, headers, payload)),
            Record::Packed {
                subject,
                headers_len,
                payload_len,
                ..
            } => Some(plain_msg_bytes(subject.len(), *headers_len, *payload_len)),
            _ => None,
        }
    }

    /// A message record as a message, its body decompressed if packed;
    /// `None` for other records, and for a packed body that does not
    /// decompress to its lengths (which its checksum makes a bug, not
    /// damage).
    pub fn to_msg(&self) -> Option<Msg> {
        match *self {
            Record::Msg {
                seq,
                ts_unix_nanos,
                subject,
                headers,
                payload,
            } => Some(Msg {
                seq,
                ts_unix_nanos,
                subject: subject.to_string(),
                headers: headers.to_vec(),
                payload: payload.to_vec(),
            }),
            Record::Packed {
                seq,
                ts_unix_nanos,
                subject,
                headers_len,
                payload_len,
                packed,
            } => {
                let mut body = snap::raw::Decoder::new().decompress_vec(packed).ok()?;
                if body.len() != headers_len as usize + payload_len as usize {
                    return None;
                }
                let payload = body.split_off(headers_len as usize);
                Some(Msg {
                    seq,
                    ts_unix_nanos,
                    subject: subject.to_string(),
                    headers: body,
                    payload,
                })
            }
            _ => None,
        }
    }
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

fn plain_msg_bytes(subject_len: usize, headers_len: u32, payload_len: u32) -> u64 {
    (HEADER_BYTES + MSG_FIXED_BYTES + subject_len) as u64
        + u64::from(headers_len)
        + u64::from(payload_len)
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
    let start = msg_head(out, KIND_MSG, msg);
    out.extend_from_slice(&msg.headers);
    out.extend_from_slice(&msg.payload);
    finish(out, start, seal);
}

/// Appends a message record's header and fields up to its subject
/// (kind 1 and kind 5 alike); returns where the record starts.
fn msg_head(out: &mut Vec<u8>, kind: u8, msg: &Msg) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.push(kind);
    out.extend_from_slice(&msg.seq.to_le_bytes());
    out.extend_from_slice(&msg.ts_unix_nanos.to_le_bytes());
    out.extend_from_slice(&(msg.subject.len() as u16).to_le_bytes());
    out.extend_from_slice(&(msg.headers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(msg.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(msg.subject.as_bytes());
    start
}

/// The compressor of a stream that packs its messages, with the buffer
/// it joins a message's headers and payload in.
pub struct Packer {
    encoder: snap::raw::Encoder,
    joined: Vec<u8>,
}

impl Default for Packer {
    fn default() -> Self {
        Packer {
            encoder: snap::raw::Encoder::new(),
            joined: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Packer")
    }
}

/// Appends a message record to `out` as [`encode_msg`] does, packed
/// (kind 5) when `packer` is given and that makes the record smaller.
pub fn encode_msg_packed(out: &mut Vec<u8>, seal: Seal, msg: &Msg, packer: &mut Packer) {
    let plain = msg.headers.len() + msg.payload.len();
    if plain < PACK_MIN_BYTES {
        return encode_msg(out, seal, msg);
    }
    let Packer { encoder, joined } = packer;
    joined.clear();
    joined.extend_from_slice(&msg.headers);
    joined.extend_from_slice(&msg.payload);
    let start = msg_head(out, KIND_PACKED, msg);
    let at = out.len();
    out.resize(at + snap::raw::max_compress_len(plain), 0);
    match encoder.compress(joined, &mut out[at..]) {
        Ok(n) if n < plain => {
            out.truncate(at + n);
            finish(out, start, seal);
        }
        _ => {
            out.truncate(start);
            encode_msg(out, seal, msg);
        }
    }
    if joined.capacity() > 1 << 20 {
        *joined = Vec::new();
    }
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
        if bytes.len() > HEADER_BYTES && !matches!(bytes[8], KIND_MSG..=KIND_PACKED) {
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
        KIND_PACKED => {
            let seq = c.u64()?;
            let ts_unix_nanos = c.u64()?;
            let subject_len = c.u16()? as usize;
            let headers_len = c.u32()?;
            let payload_len = c.u32()?;
            let subject = std::str::from_utf8(c.take(subject_len)?).ok()?;
            let packed = std::mem::take(&mut c.0);
            let unpacked = snap::raw::decompress_len(packed).ok()?;
            if seq == 0
                || subject.is_empty()
                || unpacked != headers_len as usize + payload_len as usize
            {
                return None;
            }
            Record::Packed {
                seq,
                ts_unix_nanos,
                subject,
                headers_len,
                payload_len,
                packed,
            }
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
    fn packed_records_round_trip_and_count_as_plain_ones() {
        let mut m = msg(9);
        m.payload = b"abcd".repeat(100);
        let mut packer = Packer::default();
        let mut packed = Vec::new();
        encode_msg_packed(&mut packed, AT, &m, &mut packer);
        let mut plain = Vec::new();
        encode_msg(&mut plain, AT, &m);
        assert!(
            packed.len() * 4 < plain.len(),
            "{} of {}",
            packed.len(),
            plain.len()
        );
        let (r, n) = decode(&packed, AT).unwrap();
        assert_eq!(n, packed.len());
        assert!(matches!(r, Record::Packed { seq: 9, .. }));
        assert_eq!(r.msg_seq(), Some(9));
        assert_eq!(r.msg_size(), Some(plain.len() as u64));
        assert_eq!(r.to_msg(), Some(m));
        // Small or incompressible messages stay plain.
        let mut random = msg(4);
        random.payload = (0..200u32)
            .map(|i| ((i * 2_654_435_761) >> 13) as u8)
            .collect();
        for m in [msg(3), random] {
            let mut out = Vec::new();
            encode_msg_packed(&mut out, AT, &m, &mut packer);
            assert!(matches!(decode(&out, AT).unwrap().0, Record::Msg { .. }));
        }
        for i in 0..packed.len() {
            let mut bad = packed.clone();
            bad[i] ^= 1;
            assert!(decode(&bad, AT).is_err(), "flip at {i}");
        }
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
