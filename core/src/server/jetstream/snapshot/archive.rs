//! The archive inside a stream snapshot, as nats-server 2.15 writes and
//! reads it (before S2 framing): the magic `NATSARC1`, then entries
//!
//! ```text
//! uvarint name_len | varint ts (zigzag) | uvarint seq | uvarint header_len
//! | uvarint payload_len | name | header | payload
//! ```
//!
//! in this order: `state.json` (the stream's state), one
//! `consumers/<name>` per consumer (`{"config":…,"state":…}`), one entry
//! per message (name = subject, ts = stored time in nanoseconds, seq =
//! stream sequence), and a last entry whose fields are all zero.
//!
//! This module encodes entries and parses them incrementally; it knows
//! nothing of streams.

pub(crate) const MAGIC: &[u8; 8] = b"NATSARC1";
/// An entry's name (a subject or a file name) is at most this long.
const NAME_MAX: u64 = 64 * 1024;
/// An entry's header and payload together are at most this long.
pub(crate) const BODY_MAX: u64 = 64 * 1024 * 1024;

/// One archive entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub ts: i64,
    pub seq: u64,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Entry {
    /// The all-zero entry that ends an archive.
    pub fn is_end(&self) -> bool {
        self.name.is_empty()
            && self.ts == 0
            && self.seq == 0
            && self.header.is_empty()
            && self.payload.is_empty()
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends one entry.
pub(crate) fn put_entry(
    out: &mut Vec<u8>,
    name: &str,
    ts: i64,
    seq: u64,
    header: &[u8],
    payload: &[u8],
) {
    put_uvarint(out, name.len() as u64);
    put_uvarint(out, ((ts << 1) ^ (ts >> 63)) as u64);
    put_uvarint(out, seq);
    put_uvarint(out, header.len() as u64);
    put_uvarint(out, payload.len() as u64);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
}

/// Appends the entry that ends an archive.
pub(crate) fn put_end(out: &mut Vec<u8>) {
    put_entry(out, "", 0, 0, b"", b"");
}

/// Why an archive cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArchiveError(pub String);

/// Reads an archive from bytes pushed in as they arrive.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    at: usize,
    magic_seen: bool,
    ended: bool,
}

/// The uvarint at `bytes[*at..]`: `Ok(None)` if it is not all there yet.
fn uvarint(bytes: &[u8], at: &mut usize) -> Result<Option<u64>, ArchiveError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&b) = bytes.get(*at + i) else {
            return Ok(None);
        };
        if i == 9 && b > 1 {
            return Err(ArchiveError("archive: varint overflows 64 bits".into()));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *at += i + 1;
            return Ok(Some(v));
        }
    }
    Err(ArchiveError("archive: varint overflows 64 bits".into()))
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at >= self.buf.len() / 2 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether the end entry was read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next whole entry, `Ok(None)` until one is all there (and after
    /// the end entry).
    pub fn next(&mut self) -> Result<Option<Entry>, ArchiveError> {
        if self.ended {
            return Ok(None);
        }
        if !self.magic_seen {
            let Some(head) = self.buf.get(self.at..self.at + MAGIC.len()) else {
                return Ok(None);
            };
            if head != MAGIC {
                return Err(ArchiveError("archive: not a stream snapshot".into()));
            }
            self.at += MAGIC.len();
            self.magic_seen = true;
        }
        let mut at = self.at;
        let mut fields = [0u64; 5];
        for f in &mut fields {
            match uvarint(&self.buf, &mut at)? {
                Some(v) => *f = v,
                None => return Ok(None),
            }
        }
        let [name_len, ts, seq, header_len, payload_len] = fields;
        if name_len > NAME_MAX || header_len.saturating_add(payload_len) > BODY_MAX {
            return Err(ArchiveError("archive: entry too large".into()));
        }
        let (name_len, header_len, payload_len) =
            (name_len as usize, header_len as usize, payload_len as usize);
        let total = name_len + header_len + payload_len;
        let Some(body) = self.buf.get(at..at + total) else {
            return Ok(None);
        };
        let name = std::str::from_utf8(&body[..name_len])
            .map_err(|_| ArchiveError("archive: entry name is not UTF-8".into()))?
            .to_string();
        let entry = Entry {
            name,
            ts: ((ts >> 1) as i64) ^ -((ts & 1) as i64),
            seq,
            header: body[name_len..name_len + header_len].to_vec(),
            payload: body[name_len + header_len..].to_vec(),
        };
        self.at = at + total;
        self.ended = entry.is_end();
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_any_pieces() {
        let mut archive = MAGIC.to_vec();
        put_entry(&mut archive, "state.json", 0, 0, b"", b"{}");
        put_entry(
            &mut archive,
            "a.b",
            1_796_689_632_079_470_559,
            7,
            b"NATS/1.0\r\n\r\n",
            &[9; 300],
        );
        put_entry(&mut archive, "neg", -5, 1 << 40, b"", b"");
        put_end(&mut archive);
        assert_eq!(&archive[archive.len() - 5..], &[0; 5]);
        for piece in [1, 3, 1000] {
            let mut r = Reader::default();
            let mut got = Vec::new();
            for chunk in archive.chunks(piece) {
                r.push(chunk);
                while let Some(e) = r.next().unwrap() {
                    got.push(e);
                }
            }
            assert!(r.ended());
            assert_eq!(got.len(), 4);
            assert_eq!(got[1].ts, 1_796_689_632_079_470_559);
            assert_eq!(got[1].payload, vec![9; 300]);
            assert_eq!((got[2].ts, got[2].seq), (-5, 1 << 40));
            assert!(got[3].is_end());
        }
    }

    #[test]
    fn refuses_what_is_no_archive() {
        let mut r = Reader::default();
        r.push(b"NATSARC2xxxxx");
        assert!(r.next().is_err());
        let mut r = Reader::default();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[0xff; 12]);
        r.push(&bytes);
        assert!(r.next().is_err());
    }
}
