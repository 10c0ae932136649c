//! NATS message headers: the block an `HPUB` carries before its payload.
//!
//! ```text
//! NATS/1.0[ <3-digit status>[ <description>]]\r\n
//! Key: Value\r\n
//! ...
//! \r\n
//! ```
//!
//! Parsing borrows from the block (no copies). Keys keep their case; lookups
//! ignore it, as nats-server's canonicalizing `http.Header` does. Values are
//! trimmed of surrounding spaces and tabs. Folded (continued) lines are
//! refused. Core NATS delivers header blocks without parsing them; this
//! parser serves the features that read headers (statuses, JetStream).

use super::trim_blank;

/// The version line every header block starts with.
pub const VERSION_LINE: &[u8] = b"NATS/1.0";

/// A parsed header block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers<'a> {
    /// Inline status (`503`, `408`, `100`, …), if any.
    pub status: Option<u16>,
    /// Text after the status.
    pub description: &'a [u8],
    /// Entries in order, duplicates kept.
    pub entries: Vec<(&'a [u8], &'a [u8])>,
}

/// Why a header block was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Does not start with `NATS/1.0`.
    Version,
    /// The status is not three digits.
    Status,
    /// A line is not terminated by `\r\n`, or the block lacks its final empty line.
    Unterminated,
    /// A line has no `:`, an empty key, or whitespace in the key.
    MalformedLine,
    /// A folded (continued) line.
    Continuation,
}

impl<'a> Headers<'a> {
    /// Parses a complete header block (as sized by `HPUB`).
    pub fn parse(block: &'a [u8]) -> Result<Self, HeaderError> {
        let rest = block
            .strip_prefix(VERSION_LINE)
            .ok_or(HeaderError::Version)?;
        let (first, mut rest) = split_line(rest)?;
        let mut h = Headers::default();
        if !first.is_empty() {
            let status_text = first.strip_prefix(b" ").ok_or(HeaderError::Version)?;
            let (code, desc) = match status_text.iter().position(|&b| b == b' ') {
                Some(i) => (&status_text[..i], &status_text[i + 1..]),
                None => (status_text, &b""[..]),
            };
            if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
                return Err(HeaderError::Status);
            }
            h.status = Some(code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')));
            h.description = trim_blank(desc);
        }
        loop {
            let (line, next) = split_line(rest)?;
            rest = next;
            if line.is_empty() {
                break;
            }
            if matches!(line[0], b' ' | b'\t') {
                return Err(HeaderError::Continuation);
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(HeaderError::MalformedLine)?;
            let key = &line[..colon];
            if key.is_empty() || key.iter().any(|b| b.is_ascii_whitespace()) {
                return Err(HeaderError::MalformedLine);
            }
            h.entries.push((key, trim_blank(&line[colon + 1..])));
        }
        if !rest.is_empty() {
            return Err(HeaderError::Unterminated);
        }
        Ok(h)
    }

    /// The first value of `key` (compared without case).
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }

    /// Every value of `key`, in order.
    pub fn get_all<'s>(&'s self, key: &'s [u8]) -> impl Iterator<Item = &'a [u8]> + 's {
        self.entries
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| *v)
    }

    /// Appends the encoded block to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(VERSION_LINE);
        if let Some(code) = self.status {
            out.push(b' ');
            out.extend_from_slice(format!("{code:03}").as_bytes());
            if !self.description.is_empty() {
                out.push(b' ');
                out.extend_from_slice(self.description);
            }
        }
        out.extend_from_slice(b"\r\n");
        for (k, v) in &self.entries {
            out.extend_from_slice(k);
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn split_line(b: &[u8]) -> Result<(&[u8], &[u8]), HeaderError> {
    let i = memchr::memchr(b'\n', b).ok_or(HeaderError::Unterminated)?;
    if i == 0 || b[i - 1] != b'\r' {
        return Err(HeaderError::Unterminated);
    }
    Ok((&b[..i - 1], &b[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::trim_blank;
    use proptest::prelude::*;

    #[test]
    fn parses_blocks() {
        let h = Headers::parse(b"NATS/1.0\r\n\r\n").unwrap();
        assert_eq!(h, Headers::default());
        let h = Headers::parse(b"NATS/1.0 503\r\n\r\n").unwrap();
        assert_eq!(h.status, Some(503));
        let h = Headers::parse(b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 5\r\n\r\n")
            .unwrap();
        assert_eq!(
            (h.status, h.description),
            (Some(408), &b"Request Timeout"[..])
        );
        assert_eq!(h.get(b"nats-pending-messages"), Some(&b"5"[..]));
        let h = Headers::parse(b"NATS/1.0\r\nA: 1\r\nb:2 \r\na:  3\r\n\r\n").unwrap();
        assert_eq!(h.get_all(b"A").collect::<Vec<_>>(), vec![&b"1"[..], b"3"]);
        assert_eq!(h.get(b"B"), Some(&b"2"[..]));
    }

    #[test]
    fn refuses_malformed_blocks() {
        use HeaderError::*;
        assert_eq!(Headers::parse(b"HTTP/1.0\r\n\r\n"), Err(Version));
        assert_eq!(Headers::parse(b"NATS/1.0"), Err(Unterminated));
        assert_eq!(Headers::parse(b"NATS/1.0\r\n"), Err(Unterminated));
        assert_eq!(Headers::parse(b"NATS/1.0\n\n"), Err(Unterminated));
        assert_eq!(Headers::parse(b"NATS/1.0 5x3\r\n\r\n"), Err(Status));
        assert_eq!(Headers::parse(b"NATS/1.0x\r\n\r\n"), Err(Version));
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\nnocolon\r\n\r\n"),
            Err(MalformedLine)
        );
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\n: v\r\n\r\n"),
            Err(MalformedLine)
        );
        assert_eq!(
            Headers::parse(b"NATS/1.0\r\nA: 1\r\n more\r\n\r\n"),
            Err(Continuation)
        );
        assert_eq!(Headers::parse(b"NATS/1.0\r\n\r\nextra"), Err(Unterminated));
    }

    fn token() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(b"abcXYZ-_09.".to_vec()), 1..12)
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        // No leading/trailing blanks (they are trimmed) and no line breaks.
        prop::collection::vec(prop::sample::select(b"abc 09:;/=".to_vec()), 0..20)
            .prop_map(|v| trim_blank(&v).to_vec())
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(
            status in prop::option::of(100u16..1000),
            desc in value(),
            entries in prop::collection::vec((token(), value()), 0..8),
        ) {
            let h = Headers {
                status,
                description: if status.is_some() { &desc } else { b"" },
                entries: entries.iter().map(|(k, v)| (&k[..], &v[..])).collect(),
            };
            let mut out = Vec::new();
            h.encode_into(&mut out);
            prop_assert_eq!(Headers::parse(&out).unwrap(), h);
        }

        #[test]
        fn never_panics(block in prop::collection::vec(prop::sample::select(b"NATS/1.0 503\r\n:ab \t".to_vec()), 0..64)) {
            let _ = Headers::parse(&block);
        }
    }
}
