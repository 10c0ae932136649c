//! Encoders for what a client sends. natrix's own tools (benchmarks,
//! simulated clients) speak the protocol through these, and the tests check
//! that everything they encode parses back unchanged.

/// Appends `CONNECT <json>\r\n`.
pub fn connect(out: &mut Vec<u8>, json: &str) {
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `PUB <subject> [reply] <size>\r\n<payload>\r\n`.
pub fn publish(out: &mut Vec<u8>, subject: &[u8], reply: Option<&[u8]>, payload: &[u8]) {
    out.extend_from_slice(b"PUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    out.extend_from_slice(itoa::Buffer::new().format(payload.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends `HPUB <subject> [reply] <hdr size> <total size>\r\n<headers><payload>\r\n`.
pub fn hpublish(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    headers: &[u8],
    payload: &[u8],
) {
    out.extend_from_slice(b"HPUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(r) = reply {
        out.extend_from_slice(r);
        out.push(b' ');
    }
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(n.format(headers.len()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(n.format(headers.len() + payload.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Appends `SUB <subject> [queue] <sid>\r\n`.
pub fn subscribe(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
    out.extend_from_slice(b"SUB ");
    out.extend_from_slice(subject);
    out.push(b' ');
    if let Some(q) = queue {
        out.extend_from_slice(q);
        out.push(b' ');
    }
    out.extend_from_slice(sid);
    out.extend_from_slice(b"\r\n");
}

/// Appends `UNSUB <sid> [max]\r\n`.
pub fn unsubscribe(out: &mut Vec<u8>, sid: &[u8], max: Option<u64>) {
    out.extend_from_slice(b"UNSUB ");
    out.extend_from_slice(sid);
    if let Some(m) = max {
        out.push(b' ');
        out.extend_from_slice(itoa::Buffer::new().format(m).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// `PING\r\n`
pub const PING: &[u8] = b"PING\r\n";
/// `PONG\r\n`
pub const PONG: &[u8] = b"PONG\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Limits, Op, Parser, Pub};
    use proptest::prelude::*;

    fn parse_one(bytes: &[u8]) -> String {
        let limits = Limits {
            headers: true,
            ..Limits::default()
        };
        let mut p = Parser::new();
        let mut pos = 0;
        let op = p.next(bytes, &mut pos, &limits).unwrap().expect("one op");
        assert_eq!(pos, bytes.len(), "the whole encoding is one op");
        format!("{op:?}")
    }

    fn subject() -> impl Strategy<Value = Vec<u8>> {
        "[a-zA-Z0-9_$-]{1,8}(\\.([a-zA-Z0-9_$-]{1,8}|\\*)){0,3}(\\.>)?".prop_map(String::into_bytes)
    }

    fn word() -> impl Strategy<Value = Vec<u8>> {
        "[a-zA-Z0-9_.]{1,12}".prop_map(String::into_bytes)
    }

    proptest! {
        #[test]
        fn every_op_round_trips(
            subj in subject(),
            reply in prop::option::of(word()),
            queue in prop::option::of(word()),
            sid in "[0-9]{1,6}",
            max in prop::option::of(1u64..1_000_000),
            payload in prop::collection::vec(any::<u8>(), 0..300),
            hdr_len in 0usize..40,
        ) {
            let mut b = Vec::new();
            publish(&mut b, &subj, reply.as_deref(), &payload);
            let size = payload.len().to_string();
            prop_assert_eq!(parse_one(&b), format!("{:?}", Op::Pub(Pub { subject: &subj, reply: reply.as_deref(), size_token: size.as_bytes(), header: None, payload: &payload })));

            let hdr = hdr_len.min(payload.len());
            let (h, body) = payload.split_at(hdr);
            b.clear();
            hpublish(&mut b, &subj, reply.as_deref(), h, body);
            let hs = hdr.to_string();
            prop_assert_eq!(parse_one(&b), format!("{:?}", Op::Pub(Pub { subject: &subj, reply: reply.as_deref(), size_token: size.as_bytes(), header: Some((hdr, hs.as_bytes())), payload: &payload })));

            b.clear();
            subscribe(&mut b, &subj, queue.as_deref(), sid.as_bytes());
            prop_assert_eq!(parse_one(&b), format!("{:?}", Op::Sub { subject: &subj, queue: queue.as_deref(), sid: sid.as_bytes() }));

            b.clear();
            unsubscribe(&mut b, sid.as_bytes(), max);
            prop_assert_eq!(parse_one(&b), format!("{:?}", Op::Unsub { sid: sid.as_bytes(), max: max.map(|m| m as i64) }));

            b.clear();
            connect(&mut b, r#"{"verbose":false}"#);
            prop_assert_eq!(parse_one(&b), format!("{:?}", Op::Connect(br#"{"verbose":false}"#)));
            prop_assert_eq!(parse_one(PING), format!("{:?}", Op::Ping));
            prop_assert_eq!(parse_one(PONG), format!("{:?}", Op::Pong));
        }
    }
}
