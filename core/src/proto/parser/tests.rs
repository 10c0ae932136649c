use super::*;
use proptest::prelude::*;

/// An owned copy of an op (or the error that ended parsing), for comparing
/// parses of the same stream split differently.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owned {
    Op(String),
    Err(ParseError),
}

fn own(op: &Op<'_>) -> String {
    format!("{op:?}")
}

fn parse_chunks(chunks: &[&[u8]], limits: &Limits) -> Vec<Owned> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        let mut pos = 0;
        loop {
            match p.next(chunk, &mut pos, limits) {
                Ok(Some(op)) => out.push(Owned::Op(own(&op))),
                Ok(None) => break,
                Err(e) => {
                    out.push(Owned::Err(e));
                    return out;
                }
            }
        }
        assert_eq!(pos, chunk.len(), "a chunk is consumed whole");
    }
    out
}

fn parse_all(input: &[u8], limits: &Limits) -> Vec<Owned> {
    parse_chunks(&[input], limits)
}

fn hdr_limits() -> Limits {
    Limits {
        headers: true,
        ..Limits::default()
    }
}

fn ops(input: &[u8]) -> Vec<Owned> {
    parse_all(input, &hdr_limits())
}

fn one(input: &[u8]) -> Owned {
    let v = ops(input);
    assert_eq!(v.len(), 1, "{v:?}");
    v[0].clone()
}

fn op(o: Op<'_>) -> Owned {
    Owned::Op(own(&o))
}

#[test]
fn every_op() {
    assert_eq!(one(b"PING\r\n"), op(Op::Ping));
    assert_eq!(one(b"ping\r\n"), op(Op::Ping));
    assert_eq!(one(b"PINGpong garbage\r\n"), op(Op::Ping));
    assert_eq!(one(b"PONG\r\n"), op(Op::Pong));
    assert_eq!(one(b"+OK\r\n"), op(Op::Ok));
    assert_eq!(one(b"-ERR 'x'\r\n"), op(Op::Err(b"'x'")));
    assert_eq!(one(b"CONNECT {}\r\n"), op(Op::Connect(b"{}")));
    assert_eq!(one(b"connect\t {\"a\":1}\n"), op(Op::Connect(b"{\"a\":1}")));
    assert_eq!(one(b"INFO {}\r\n"), op(Op::Info(b"{}")));
    assert_eq!(
        one(b"SUB foo 1\r\n"),
        op(Op::Sub {
            subject: b"foo",
            queue: None,
            sid: b"1"
        })
    );
    assert_eq!(
        one(b"sub\tfoo  q\t 22\r\n"),
        op(Op::Sub {
            subject: b"foo",
            queue: Some(b"q"),
            sid: b"22"
        })
    );
    assert_eq!(
        one(b"UNSUB 1\r\n"),
        op(Op::Unsub {
            sid: b"1",
            max: None
        })
    );
    assert_eq!(
        one(b"UNSUB 1 5\r\n"),
        op(Op::Unsub {
            sid: b"1",
            max: Some(5)
        })
    );
    assert_eq!(
        one(b"UNSUB 1 x\r\n"),
        op(Op::Unsub {
            sid: b"1",
            max: Some(-1)
        })
    );
    assert_eq!(
        one(b"PUB foo 5\r\nhello\r\n"),
        op(Op::Pub(Pub {
            subject: b"foo",
            reply: None,
            size_token: b"5",
            header: None,
            payload: b"hello"
        }))
    );
    assert_eq!(
        one(b"PUB foo bar 05\r\nhello\r\n"),
        op(Op::Pub(Pub {
            subject: b"foo",
            reply: Some(b"bar"),
            size_token: b"05",
            header: None,
            payload: b"hello"
        }))
    );
    assert_eq!(
        one(b"PUB foo 0\r\n\r\n"),
        op(Op::Pub(Pub {
            subject: b"foo",
            reply: None,
            size_token: b"0",
            header: None,
            payload: b""
        }))
    );
    assert_eq!(
        one(b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
        op(Op::Pub(Pub {
            subject: b"foo",
            reply: None,
            size_token: b"14",
            header: Some((12, b"12")),
            payload: b"NATS/1.0\r\n\r\nhi"
        }))
    );
    assert_eq!(one(b"HMSG foo 1 5 5\r\n\r\n"), op(Op::Msg));
}

#[test]
fn errors() {
    use ParseError::*;
    let err = |input: &[u8]| ops(input).last().cloned().unwrap();
    assert_eq!(err(b"FOO\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"PUBX foo 1\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"PUB\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"RS+ foo\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"LS+ foo\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"A+ foo\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b" PING\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"PUB foo 5\r\nhelloXX"), Owned::Err(UnknownOp));
    assert_eq!(err(b"PUB foo 5\r\nhello\rX"), Owned::Err(UnknownOp));
    assert_eq!(err(b"MSG foo 1 5\r\n\r\n"), Owned::Err(UnknownOp));
    assert_eq!(err(b"HMSG foo 1 5 5\r\nhello\r\n"), Owned::Err(UnknownOp));
    assert!(matches!(err(b"PUB foo\r\n"), Owned::Err(Malformed(_))));
    assert!(matches!(
        err(b"PUB foo a b c\r\n"),
        Owned::Err(Malformed(_))
    ));
    assert!(matches!(err(b"PUB foo -1\r\n"), Owned::Err(Malformed(_))));
    assert!(matches!(err(b"PUB foo x\r\n"), Owned::Err(Malformed(_))));
    assert!(matches!(
        err(b"PUB foo 1234567890\r\n"),
        Owned::Err(Malformed(_))
    ));
    assert!(matches!(err(b"SUB foo\r\n"), Owned::Err(Malformed(_))));
    assert!(matches!(err(b"SUB a b c d\r\n"), Owned::Err(Malformed(_))));
    assert!(matches!(err(b"UNSUB\t \r\n"), Owned::Err(Malformed(_))));
    assert!(matches!(
        err(b"HPUB foo 10 5\r\n"),
        Owned::Err(Malformed(_))
    ));
    assert_eq!(err(b"PUB foo 1048577\r\n"), Owned::Err(MaxPayload));
    let no_headers = parse_all(b"HPUB foo 0 0\r\n\r\n", &Limits::default());
    assert!(matches!(no_headers[0], Owned::Err(Malformed(_))));
    let long = [b"SUB ".as_slice(), &vec![b'a'; 4097], b" 1\r\n"].concat();
    assert_eq!(err(&long), Owned::Err(MaxControlLine));
    let long_split = [b"SUB ".as_slice(), &vec![b'a'; 5000]].concat();
    assert_eq!(err(&long_split), Owned::Err(MaxControlLine));
    let auth = Limits {
        awaiting_auth: true,
        ..Limits::default()
    };
    assert_eq!(
        parse_all(b"PING\r\n", &auth),
        vec![Owned::Err(AuthRequired)]
    );
    assert_eq!(
        parse_all(b"CONNECT {}\r\n", &auth),
        vec![op(Op::Connect(b"{}"))]
    );
}

#[test]
fn control_line_quirks() {
    // A `\r` anywhere in an argument drops the argument's last byte.
    assert_eq!(
        one(b"SUB foo\rx 1\n"),
        op(Op::Sub {
            subject: b"foo",
            queue: None,
            sid: b"x"
        })
    );
    // Lines may end with a bare `\n`.
    assert_eq!(one(b"PING\n"), op(Op::Ping));
    // Exactly at the control line limit is fine.
    let at_limit = [b"SUB ".as_slice(), &vec![b'a'; 4094], b" 1\r\n"].concat();
    assert!(matches!(one(&at_limit), Owned::Op(_)));
}

#[test]
fn newline_starting_an_argument_does_not_end_it() {
    let limits = hdr_limits();
    for input in [
        &b"PUB \nfoo 1\r\nx\r\nPING\r\n"[..],
        b"CONNECT\n{}\r\nPING\r\n",
        b"SUB\t\nx 1\r\nPING\r\n",
    ] {
        let whole = parse_all(input, &limits);
        assert_eq!(whole.len(), 2, "{whole:?}");
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(parse_chunks(&[a, b], &limits), whole, "split at {i}");
        }
    }
}

#[test]
fn spaces_and_ping_garbage_are_not_buffered() {
    let mut p = Parser::new();
    let limits = hdr_limits();
    let mut pos = 0;
    assert!(p.next(b"PUB", &mut pos, &limits).unwrap().is_none());
    for _ in 0..10_000 {
        pos = 0;
        assert!(p.next(b"    ", &mut pos, &limits).unwrap().is_none());
    }
    assert!(p.buffered() <= 8, "{}", p.buffered());
    pos = 0;
    assert!(matches!(
        p.next(b"foo 1\r\nx\r\n", &mut pos, &limits),
        Ok(Some(Op::Pub(_)))
    ));
    let mut p = Parser::new();
    pos = 0;
    assert!(p.next(b"PING", &mut pos, &limits).unwrap().is_none());
    for _ in 0..10_000 {
        pos = 0;
        assert!(p.next(b"garbage ", &mut pos, &limits).unwrap().is_none());
    }
    assert_eq!(p.buffered(), 0);
    pos = 0;
    assert_eq!(p.next(b"\r\n", &mut pos, &limits), Ok(Some(Op::Ping)));
}

const STREAM: &[u8] = b"CONNECT {\"verbose\":false,\"headers\":true}\r\nPING\r\nSUB foo.* q 1\r\nPUB foo.bar reply 11\r\nhello world\r\nHPUB foo 24 29\r\nNATS/1.0\r\nKey: Value\r\n\r\nthere\r\nUNSUB 1 10\r\npong\r\n+OK\r\nPUB empty 0\r\n\r\nHMSG x 1 2 2\r\n\r\nINFO {}\r\nsub bar 2\r\n";

#[test]
fn any_split_gives_the_same_ops() {
    let limits = hdr_limits();
    let whole = parse_all(STREAM, &limits);
    assert_eq!(whole.len(), 12, "{whole:?}");
    assert!(whole.iter().all(|o| matches!(o, Owned::Op(_))));
    for i in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(i);
        assert_eq!(parse_chunks(&[a, b], &limits), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(parse_chunks(&bytes, &limits), whole, "byte by byte");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any split of any input (valid or not) gives the same ops and errors.
    #[test]
    fn splits_agree(input in prop::collection::vec(prop::sample::select(b"PUBSIGNHMC +-OKERR foo 1 2 3 5\r\n\t{}".to_vec()), 0..200), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let limits = hdr_limits();
        let whole = parse_all(&input, &limits);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&input[last..p]);
            last = p;
        }
        chunks.push(&input[last..]);
        prop_assert_eq!(parse_chunks(&chunks, &limits), whole);
    }
}

fn route_ops(input: &[u8]) -> Vec<Owned> {
    let limits = Limits {
        headers: true,
        max_payload: None,
        route: true,
        ..Limits::default()
    };
    parse_all(input, &limits)
}

fn routed(account: &'static [u8], queues: &'static [u8], msg: Pub<'static>) -> Owned {
    op(Op::Routed(Box::new(Routed {
        origin: b"",
        account,
        queues,
        msg,
    })))
}

fn rpub(
    subject: &'static [u8],
    reply: Option<&'static [u8]>,
    size_token: &'static [u8],
    header: Option<(usize, &'static [u8])>,
    payload: &'static [u8],
) -> Pub<'static> {
    Pub {
        subject,
        reply,
        size_token,
        header,
        payload,
    }
}

#[test]
fn an_op_stays_as_small_as_a_publish() {
    // The publish path moves ops by value: a routed message is boxed so
    // that routes cost clients nothing.
    assert!(std::mem::size_of::<Op<'_>>() <= std::mem::size_of::<Pub<'_>>() + 8);
}

#[test]
fn route_ops_in_every_form_nats_server_writes() {
    let got = route_ops(
        b"RS+ $G foo\r\nRS+ $G bar.* q1 2\r\nRS- $G foo\r\nRS- $G bar.* q1\r\n\
          RMSG $G foo 3\r\nabc\r\nRMSG $G foo rep.1 3\r\nabc\r\n\
          RMSG $G bar.x | q1 2\r\nhi\r\nRMSG $G bar.x + inbox.2 q1 q2 2\r\nhi\r\n\
          HMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHMSG $G bar.y + r.3 q1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n\
          PING\r\n",
    );
    let want = vec![
        op(Op::RouteSub {
            account: b"$G",
            subject: b"foo",
            queue: None,
            origin: b"",
        }),
        op(Op::RouteSub {
            account: b"$G",
            subject: b"bar.*",
            queue: Some((b"q1", b"2")),
            origin: b"",
        }),
        op(Op::RouteUnsub {
            account: b"$G",
            subject: b"foo",
            queue: None,
            origin: b"",
        }),
        op(Op::RouteUnsub {
            account: b"$G",
            subject: b"bar.*",
            queue: Some(b"q1"),
            origin: b"",
        }),
        routed(b"$G", b"", rpub(b"foo", None, b"3", None, b"abc")),
        routed(b"$G", b"", rpub(b"foo", Some(b"rep.1"), b"3", None, b"abc")),
        routed(b"$G", b"q1", rpub(b"bar.x", None, b"2", None, b"hi")),
        routed(
            b"$G",
            b"q1 q2",
            rpub(b"bar.x", Some(b"inbox.2"), b"2", None, b"hi"),
        ),
        routed(
            b"$G",
            b"",
            rpub(
                b"foo",
                None,
                b"14",
                Some((12, b"12")),
                b"NATS/1.0\r\n\r\nhi",
            ),
        ),
        routed(
            b"$G",
            b"q1",
            rpub(
                b"bar.y",
                Some(b"r.3"),
                b"14",
                Some((12, b"12")),
                b"NATS/1.0\r\n\r\nhi",
            ),
        ),
        op(Op::Ping),
    ];
    assert_eq!(got, want);
}

#[test]
fn route_ops_with_a_leaf_node_origin_cluster() {
    let got = route_ops(
        b"LS+ LC $G foo\r\nLS+ LC $G bar.* q1 2\r\nLS- LC $G foo\r\n\
          LMSG LC $G foo 0 3\r\nabc\r\nLMSG LC $G bar.x + r.1 q1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    );
    let origin = |r: Routed<'static>| op(Op::Routed(Box::new(Routed { origin: b"LC", ..r })));
    let want = vec![
        op(Op::RouteSub {
            account: b"$G",
            subject: b"foo",
            queue: None,
            origin: b"LC",
        }),
        op(Op::RouteSub {
            account: b"$G",
            subject: b"bar.*",
            queue: Some((b"q1", b"2")),
            origin: b"LC",
        }),
        op(Op::RouteUnsub {
            account: b"$G",
            subject: b"foo",
            queue: None,
            origin: b"LC",
        }),
        origin(Routed {
            origin: b"",
            account: b"$G",
            queues: b"",
            msg: rpub(b"foo", None, b"3", None, b"abc"),
        }),
        origin(Routed {
            origin: b"",
            account: b"$G",
            queues: b"q1",
            msg: rpub(
                b"bar.x",
                Some(b"r.1"),
                b"14",
                Some((12, b"12")),
                b"NATS/1.0\r\n\r\nhi",
            ),
        }),
    ];
    assert_eq!(got, want);
    // A malformed one is refused as nats-server refuses it.
    assert!(matches!(
        route_ops(b"LMSG LC\r\n").last(),
        Some(Owned::Err(_))
    ));
}

#[test]
fn a_gateways_account_interest_ops_are_read_and_ignored() {
    // nats-server's optimistic gateway mode: `A-` after a message for an
    // account the other cluster does not know, `A+` when it does again.
    assert_eq!(
        route_ops(b"A- ACC\r\nA+ ACC\r\nPING\r\n"),
        vec![op(Op::Ok), op(Op::Ok), op(Op::Ping)]
    );
    // Split anywhere, the same.
    assert_eq!(
        parse_chunks(
            &[b"A", b"- AC", b"C\r", b"\nPING\r\n"],
            &Limits {
                route: true,
                ..Limits::default()
            }
        ),
        vec![op(Op::Ok), op(Op::Ping)]
    );
    assert_eq!(ops(b"A+ ACC\r\n"), vec![Owned::Err(ParseError::UnknownOp)]);
}

#[test]
fn route_ops_are_unknown_to_clients_and_client_ops_to_routes() {
    assert_eq!(
        ops(b"RS+ $G foo\r\n"),
        vec![Owned::Err(ParseError::UnknownOp)]
    );
    assert_eq!(
        ops(b"RMSG $G foo 1\r\na\r\n"),
        vec![Owned::Err(ParseError::UnknownOp)]
    );
    assert_eq!(
        route_ops(b"PUB foo 1\r\na\r\n"),
        vec![Owned::Err(ParseError::UnknownOp)]
    );
    assert_eq!(
        route_ops(b"SUB foo 1\r\n"),
        vec![Owned::Err(ParseError::UnknownOp)]
    );
}

#[test]
fn malformed_route_ops_close_without_a_panic() {
    for bad in [
        &b"RS+ $G\r\n"[..],
        b"RS+ $G foo q\r\n",
        b"RS- $G foo q x\r\n",
        b"RMSG $G\r\n",
        b"RMSG $G foo\r\n",
        b"RMSG $G foo x\r\n",
        b"RMSG $G foo a b 3\r\n",
        b"HMSG $G foo 3\r\n",
        b"HMSG $G foo 5 3\r\n",
    ] {
        let got = route_ops(bad);
        assert!(
            matches!(got.as_slice(), [Owned::Err(ParseError::Malformed(_))]),
            "{:?}: {got:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

proptest! {
    #[test]
    fn routed_messages_parse_the_same_however_split(split in 1usize..60) {
        let input: &[u8] = b"RMSG $G bar.x + inbox.2 q1 q2 5\r\nhello\r\nHMSG $G foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        let limits = Limits { headers: true, max_payload: None, route: true, ..Limits::default() };
        let split = split.min(input.len() - 1);
        prop_assert_eq!(
            parse_chunks(&[&input[..split], &input[split..]], &limits),
            parse_all(input, &limits)
        );
    }
}
