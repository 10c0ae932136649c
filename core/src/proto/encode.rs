//! Encoders for what the server sends to clients.

/// `+OK\r\n`
pub const OK: &[u8] = b"+OK\r\n";
/// `PING\r\n`
pub const PING: &[u8] = b"PING\r\n";
/// `PONG\r\n`
pub const PONG: &[u8] = b"PONG\r\n";

/// Appends `-ERR '<text>'\r\n`.
pub fn err(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"-ERR '");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"'\r\n");
}

/// What a delivered message looks like to one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header bytes (empty when none) and the header size token as published.
    pub headers: &'a [u8],
    pub header_token: &'a [u8],
    pub body: &'a [u8],
    /// The total size token exactly as the publisher wrote it.
    pub size_token: &'a [u8],
}

/// Appends `MSG`/`HMSG` for one subscriber. A message with headers goes to
/// a subscriber without header support as `MSG` with the headers stripped.
pub fn msg(out: &mut Vec<u8>, d: &Delivery<'_>, subscriber_headers: bool) {
    let with_headers = !d.headers.is_empty();
    let send_headers = with_headers && subscriber_headers;
    out.extend_from_slice(if send_headers { b"HMSG " } else { b"MSG " });
    out.extend_from_slice(d.subject);
    out.push(b' ');
    if !d.sid.is_empty() {
        out.extend_from_slice(d.sid);
        out.push(b' ');
    }
    if let Some(r) = d.reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    if send_headers {
        out.extend_from_slice(d.header_token);
        out.push(b' ');
        out.extend_from_slice(d.size_token);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(d.headers);
    } else if with_headers {
        out.extend_from_slice(itoa::Buffer::new().format(d.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(d.size_token);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(d.headers);
    }
    out.extend_from_slice(d.body);
    out.extend_from_slice(b"\r\n");
}

/// The no-responders status a requester gets (2.9 form):
/// `HMSG <reply> <sid> 16 16\r\nNATS/1.0 503\r\n\r\n\r\n`.
pub fn no_responders(out: &mut Vec<u8>, reply: &[u8], sid: &[u8]) {
    out.extend_from_slice(b"HMSG ");
    out.extend_from_slice(reply);
    out.push(b' ');
    out.extend_from_slice(sid);
    out.extend_from_slice(b" 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
}

/// `HMSG` of a header-only status to `reply` on subscription `sid`.
pub fn status(out: &mut Vec<u8>, reply: &[u8], sid: &[u8], headers: &[u8]) {
    out.extend_from_slice(b"HMSG ");
    out.extend_from_slice(reply);
    out.push(b' ');
    out.extend_from_slice(sid);
    let len = headers.len().to_string();
    out.push(b' ');
    out.extend_from_slice(len.as_bytes());
    out.push(b' ');
    out.extend_from_slice(len.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(headers);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d<'a>(
        headers: &'a [u8],
        header_token: &'a [u8],
        body: &'a [u8],
        size_token: &'a [u8],
    ) -> Delivery<'a> {
        Delivery {
            subject: b"foo",
            sid: b"1",
            reply: None,
            headers,
            header_token,
            body,
            size_token,
        }
    }

    #[test]
    fn msg_forms() {
        let mut out = Vec::new();
        msg(&mut out, &d(b"", b"", b"hello", b"05"), true);
        assert_eq!(out, b"MSG foo 1 05\r\nhello\r\n");
        out.clear();
        let h = b"NATS/1.0\r\nA: b\r\n\r\n";
        msg(&mut out, &d(h, b"20", b"hi", b"22"), true);
        assert_eq!(out, b"HMSG foo 1 20 22\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n");
        out.clear();
        msg(&mut out, &d(h, b"20", b"hi", b"22"), false);
        assert_eq!(out, b"MSG foo 1 2\r\nhi\r\n");
        out.clear();
        // HPUB with a zero-length header block is a plain message.
        msg(&mut out, &d(b"", b"0", b"hi", b"2"), true);
        assert_eq!(out, b"MSG foo 1 2\r\nhi\r\n");
    }
}
