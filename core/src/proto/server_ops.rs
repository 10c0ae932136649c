//! The client side of the protocol: parsing what a server sends (`INFO`,
//! `MSG`, `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`). natrix's own clients — the
//! simulation's and the benchmark's — read the server through this.
//!
//! It buffers only what straddles two inputs, and hands out ops that borrow
//! from the input or that buffer.

use memchr::memchr;

use super::trim_blank;

/// One op from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerOp<'a> {
    Info(&'a [u8]),
    Msg {
        subject: &'a [u8],
        sid: &'a [u8],
        reply: Option<&'a [u8]>,
        /// The header block of an `HMSG`.
        headers: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    Err(&'a [u8]),
}

/// The server sent something a client cannot parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOpError(pub String);

/// Longest control line accepted from a server.
const MAX_LINE: usize = 64 * 1024;

/// Parses the server's byte stream.
#[derive(Debug, Default)]
pub struct ServerOpParser {
    buf: Vec<u8>,
}

enum Frame<'a> {
    Op(ServerOp<'a>, usize),
    Incomplete,
}

impl ServerOpParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for an op that straddles inputs.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Parses every complete op in `input` (after what was buffered), calling
    /// `on_op` for each, and keeps an incomplete tail for the next call.
    pub fn parse(
        &mut self,
        input: &[u8],
        mut on_op: impl FnMut(ServerOp<'_>),
    ) -> Result<(), ServerOpError> {
        let mut rest = input;
        if !self.buf.is_empty() {
            // Complete the straddling op byte range by byte range; the
            // common case (nothing buffered) never copies.
            loop {
                match frame(&self.buf)? {
                    Frame::Op(op, used) => {
                        debug_assert_eq!(used, self.buf.len());
                        on_op(op);
                        self.buf.clear();
                        break;
                    }
                    Frame::Incomplete => {
                        if rest.is_empty() {
                            return Ok(());
                        }
                        let take = match needed(&self.buf) {
                            Some(n) => n.min(rest.len()),
                            None => memchr(b'\n', rest).map_or(rest.len(), |i| i + 1),
                        };
                        self.buf.extend_from_slice(&rest[..take]);
                        rest = &rest[take..];
                        if self.buf.len() > MAX_LINE && needed(&self.buf).is_none() {
                            return Err(ServerOpError("control line too long".into()));
                        }
                    }
                }
            }
        }
        while !rest.is_empty() {
            match frame(rest)? {
                Frame::Op(op, used) => {
                    on_op(op);
                    rest = &rest[used..];
                }
                Frame::Incomplete => {
                    self.buf.extend_from_slice(rest);
                    break;
                }
            }
        }
        Ok(())
    }
}

/// For a buffered `MSG`/`HMSG` whose line is complete: bytes still missing.
fn needed(buf: &[u8]) -> Option<usize> {
    let nl = memchr(b'\n', buf)?;
    let line = trim_cr(&buf[..nl]);
    let total = msg_total(line).ok()??;
    Some((nl + 1 + total + 2).saturating_sub(buf.len()))
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The payload size a `MSG`/`HMSG` line declares (`None` for other ops).
fn msg_total(line: &[u8]) -> Result<Option<usize>, ServerOpError> {
    let is_hmsg = starts_with_ci(line, b"HMSG ");
    if !is_hmsg && !starts_with_ci(line, b"MSG ") {
        return Ok(None);
    }
    let last = line
        .split(|b| *b == b' ' || *b == b'\t')
        .rfind(|t| !t.is_empty())
        .unwrap_or(b"");
    parse_usize(last).map(Some)
}

fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len() && line[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn parse_usize(t: &[u8]) -> Result<usize, ServerOpError> {
    if t.is_empty() || t.len() > 12 || !t.iter().all(u8::is_ascii_digit) {
        return Err(ServerOpError(format!(
            "bad size {:?}",
            String::from_utf8_lossy(t)
        )));
    }
    Ok(t.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

fn frame(buf: &[u8]) -> Result<Frame<'_>, ServerOpError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > MAX_LINE {
            return Err(ServerOpError("control line too long".into()));
        }
        return Ok(Frame::Incomplete);
    };
    let line = trim_cr(&buf[..nl]);
    let after = nl + 1;
    let verb_end = line
        .iter()
        .position(|b| *b == b' ' || *b == b'\t')
        .unwrap_or(line.len());
    let verb = &line[..verb_end];
    let args = &line[verb_end..];
    let upper = |v: &[u8], w: &[u8]| v.eq_ignore_ascii_case(w);
    if upper(verb, b"PING") {
        return Ok(Frame::Op(ServerOp::Ping, after));
    }
    if upper(verb, b"PONG") {
        return Ok(Frame::Op(ServerOp::Pong, after));
    }
    if upper(verb, b"+OK") {
        return Ok(Frame::Op(ServerOp::Ok, after));
    }
    if upper(verb, b"-ERR") {
        return Ok(Frame::Op(ServerOp::Err(trim_blank(args)), after));
    }
    if upper(verb, b"INFO") {
        return Ok(Frame::Op(ServerOp::Info(trim_blank(args)), after));
    }
    let is_hmsg = upper(verb, b"HMSG");
    if !is_hmsg && !upper(verb, b"MSG") {
        return Err(ServerOpError(format!(
            "unknown op {:?}",
            String::from_utf8_lossy(line)
        )));
    }
    let mut a = args
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|t| !t.is_empty());
    let parts: [Option<&[u8]>; 6] = [a.next(), a.next(), a.next(), a.next(), a.next(), a.next()];
    let (subject, sid, reply, hdr, total) = match (is_hmsg, parts) {
        (false, [Some(s), Some(i), Some(n), None, ..]) => (s, i, None, None, n),
        (false, [Some(s), Some(i), Some(r), Some(n), None, _]) => (s, i, Some(r), None, n),
        (true, [Some(s), Some(i), Some(h), Some(n), None, _]) => (s, i, None, Some(h), n),
        (true, [Some(s), Some(i), Some(r), Some(h), Some(n), None]) => (s, i, Some(r), Some(h), n),
        _ => {
            return Err(ServerOpError(format!(
                "bad message line {:?}",
                String::from_utf8_lossy(line)
            )));
        }
    };
    let total = parse_usize(total)?;
    let hdr = hdr.map(parse_usize).transpose()?;
    if hdr.is_some_and(|h| h > total) {
        return Err(ServerOpError("header size over total size".into()));
    }
    let end = after + total;
    if buf.len() < end + 2 {
        return Ok(Frame::Incomplete);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ServerOpError("payload not followed by CRLF".into()));
    }
    let body = &buf[after..end];
    let (headers, payload) = match hdr {
        Some(h) => (Some(&body[..h]), &body[h..]),
        None => (None, body),
    };
    Ok(Frame::Op(
        ServerOp::Msg {
            subject,
            sid,
            reply,
            headers,
            payload,
        },
        end + 2,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = ServerOpParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.parse(c, |op| out.push(format!("{op:?}"))).unwrap();
        }
        assert_eq!(p.buffered(), 0);
        out
    }

    const STREAM: &[u8] = b"INFO {\"a\":1} \r\n+OK\r\nMSG foo 1 5\r\nhello\r\nMSG foo.bar 22 reply 0\r\n\r\nHMSG _INBOX.x 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\nHMSG a 1 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\nPONG\r\n-ERR 'Stale Connection'\r\n";

    #[test]
    fn every_server_op_and_any_split() {
        let whole = ops(&[STREAM]);
        assert_eq!(whole.len(), 9);
        assert!(whole[0].starts_with("Info"));
        assert!(whole[8].starts_with("Err"));
        for i in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(i);
            assert_eq!(ops(&[a, b]), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(ops(&bytes), whole);
    }

    #[test]
    fn round_trips_what_the_server_encodes() {
        use crate::proto::encode::{Delivery, msg};
        let mut out = Vec::new();
        let d = Delivery {
            subject: b"s",
            sid: b"9",
            reply: Some(b"r"),
            headers: b"NATS/1.0\r\n\r\n",
            header_token: b"12",
            body: b"xyz",
            size_token: b"15",
        };
        msg(&mut out, &d, true);
        let mut p = ServerOpParser::new();
        let mut got = None;
        p.parse(&out, |op| got = Some(format!("{op:?}"))).unwrap();
        let want = ServerOp::Msg {
            subject: b"s",
            sid: b"9",
            reply: Some(b"r"),
            headers: Some(b"NATS/1.0\r\n\r\n"),
            payload: b"xyz",
        };
        assert_eq!(got, Some(format!("{want:?}")));
    }

    #[test]
    fn errors() {
        let mut p = ServerOpParser::new();
        assert!(p.parse(b"WHAT\r\n", |_| {}).is_err());
        let mut p = ServerOpParser::new();
        assert!(p.parse(b"MSG a 1 2\r\nabX\n", |_| {}).is_err());
        let mut p = ServerOpParser::new();
        assert!(p.parse(b"MSG a 1 x\r\n", |_| {}).is_err());
    }
}
