//! The index file of a sealed block: the block's records without their
//! bodies, so start-up reads a few bytes per message instead of all of
//! them. It is trusted only if its checksum holds and the block still has
//! the length it records; otherwise the block is scanned and it is rebuilt.
//!
//! ```text
//! magic | u64 block_len | u32 count | entries | u32 crc32c(all before)
//! entry: u8 1 | u64 seq | u64 ts | u64 offset | u32 len | u16 n | subject
//!        u8 2 | u32 n | n × (u64, u64)
//!        u8 3 | u64 last_seq
//!        u8 4 | u64 seq | u64 ts | u64 offset | u32 len | u32 size | u16 n | subject
//! ```
//!
//! Entry 4 is a packed message: `size`, what it counts against
//! `max_bytes`, is not its record's `len`.

use super::scan::Entry;

const INDEX_MAGIC: &[u8; 8] = b"NXIDX\0\0\x01";

pub fn push_msg(
    out: &mut Vec<u8>,
    seq: u64,
    ts_unix_nanos: u64,
    offset: u64,
    (len, size): (u32, u32),
    subject: &str,
) {
    out.push(if size == len { 1 } else { 4 });
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&ts_unix_nanos.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    if size != len {
        out.extend_from_slice(&size.to_le_bytes());
    }
    out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    out.extend_from_slice(subject.as_bytes());
}

pub fn push_erase(out: &mut Vec<u8>, ranges: &[(u64, u64)]) {
    out.push(2);
    out.extend_from_slice(&(ranges.len() as u32).to_le_bytes());
    for (a, b) in ranges {
        out.extend_from_slice(&a.to_le_bytes());
        out.extend_from_slice(&b.to_le_bytes());
    }
}

pub fn push_truncate(out: &mut Vec<u8>, last_seq: u64) {
    out.push(3);
    out.extend_from_slice(&last_seq.to_le_bytes());
}

/// Appends one entry; false if nothing was appended: for a bad stretch,
/// which no index can hold (blocks with one are rescanned, and their damage
/// reported, at every start-up), and for a sync point, which an intact
/// block does not need.
pub fn push_entry(out: &mut Vec<u8>, entry: &Entry) -> bool {
    match entry {
        Entry::Msg {
            seq,
            ts_unix_nanos,
            subject,
            offset,
            len,
            size,
        } => push_msg(out, *seq, *ts_unix_nanos, *offset, (*len, *size), subject),
        Entry::Erase(ranges) => push_erase(out, ranges),
        Entry::Truncate(last) => push_truncate(out, *last),
        Entry::Bad { .. } | Entry::Synced(_) => return false,
    }
    true
}

/// The index file for a block of `block_len` bytes from `count` entries
/// already encoded into `body`.
pub fn finish(block_len: u64, count: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + body.len());
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&block_len.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The index file for a clean block's entries.
pub fn encode(block_len: u64, entries: &[Entry]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut count = 0;
    for e in entries {
        count += u32::from(push_entry(&mut body, e));
    }
    finish(block_len, count, &body)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_le_bytes)
    }
}

/// The entries, if the index is intact and was made for a block of
/// `block_len` bytes.
pub fn decode(bytes: &[u8], block_len: u64) -> Option<Vec<Entry>> {
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return None;
    }
    let mut r = Reader(body);
    if r.take(8)? != INDEX_MAGIC || r.u64()? != block_len {
        return None;
    }
    let count = r.u32()? as usize;
    let mut entries = Vec::with_capacity(count.min(body.len() / 9));
    for _ in 0..count {
        let e = match r.take(1)?[0] {
            kind @ (1 | 4) => {
                let (seq, ts_unix_nanos, offset, len) = (r.u64()?, r.u64()?, r.u64()?, r.u32()?);
                let size = if kind == 4 { r.u32()? } else { len };
                let n = r.u16()? as usize;
                let subject = std::str::from_utf8(r.take(n)?).ok()?.to_string();
                if offset.checked_add(u64::from(len))? > block_len {
                    return None;
                }
                Entry::Msg {
                    seq,
                    ts_unix_nanos,
                    subject,
                    offset,
                    len,
                    size,
                }
            }
            2 => {
                let n = r.u32()? as usize;
                if n > r.0.len() / 16 {
                    return None;
                }
                let mut ranges = Vec::with_capacity(n);
                for _ in 0..n {
                    ranges.push((r.u64()?, r.u64()?));
                }
                Entry::Erase(ranges)
            }
            3 => Entry::Truncate(r.u64()?),
            _ => return None,
        };
        entries.push(e);
    }
    r.0.is_empty().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_a_different_block() {
        let entries = vec![
            Entry::Msg {
                seq: 1,
                ts_unix_nanos: 2,
                subject: "a.b".into(),
                offset: 8,
                len: 40,
                size: 40,
            },
            Entry::Msg {
                seq: 2,
                ts_unix_nanos: 3,
                subject: "a.c".into(),
                offset: 48,
                len: 50,
                size: 900,
            },
            Entry::Erase(vec![(1, 1)]),
            Entry::Truncate(0),
        ];
        let bytes = encode(100, &entries);
        assert_eq!(decode(&bytes, 100), Some(entries));
        assert_eq!(decode(&bytes, 101), None);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 4;
            assert_eq!(decode(&bad, 100), None, "flip at {i}");
        }
    }
}
