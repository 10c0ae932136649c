//! The client protocol parser.
//!
//! It is resumable: bytes may arrive split at any point, and the ops it
//! yields are the same whatever the split. Complete ops are parsed straight
//! out of the caller's input without copying; only an op that straddles two
//! inputs is copied into the parser's own buffer (at most one control line
//! plus one declared payload, both bounded by the limits). Payloads are never
//! scanned: the parser jumps over the declared size and checks the `\r\n`
//! that must follow, positionally, as nats-server does.
//!
//! The grammar is nats-server's, byte for byte: verbs are case-insensitive;
//! `PUB`, `HPUB`, `SUB`, `UNSUB`, `HMSG` and `-ERR` need a space or tab
//! after the verb; `CONNECT` and `INFO` do not; `PING`, `PONG` and `+OK` ignore
//! the rest of their line; an argument starts at the first byte that is not a
//! space or tab and ends at the next `\n`, and one trailing byte is dropped if
//! a `\r` was seen in it.

use memchr::memchr;

/// Limits and connection state the parser needs. They can change between ops
/// (a `CONNECT` turns headers on), so they are passed to every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted argument line (`max_control_line`).
    pub max_control_line: usize,
    /// Largest accepted payload, or `None` for no limit.
    pub max_payload: Option<u64>,
    /// Whether the client enabled headers (HPUB is refused otherwise).
    pub headers: bool,
    /// The connection must send `CONNECT` first (authentication is required).
    pub awaiting_auth: bool,
    /// The peer is a route: `RS+`, `RS-` and `RMSG` are its ops, `HMSG`
    /// carries a routed message, and `PUB`, `SUB` and `UNSUB` are unknown.
    pub route: bool,
    /// The peer is a leaf node connection: the same with `LS+`, `LS-` and
    /// `LMSG`, and no account in them (the connection is bound to one).
    pub leaf: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_control_line: 4096,
            max_payload: Some(1024 * 1024),
            headers: false,
            awaiting_auth: false,
            route: false,
            leaf: false,
        }
    }
}

/// A `PUB` or `HPUB` with its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pub<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// The total size exactly as the client wrote it; echoed in `MSG`.
    pub size_token: &'a [u8],
    /// For `HPUB`: the header size and its token as written.
    pub header: Option<(usize, &'a [u8])>,
    /// Headers and body, without the trailing `\r\n`.
    pub payload: &'a [u8],
}

impl<'a> Pub<'a> {
    pub fn header_len(&self) -> usize {
        self.header.map_or(0, |(n, _)| n)
    }
    pub fn headers(&self) -> &'a [u8] {
        &self.payload[..self.header_len()]
    }
    pub fn body(&self) -> &'a [u8] {
        &self.payload[self.header_len()..]
    }
}

/// One parsed client op. Slices borrow from the input or the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    Connect(&'a [u8]),
    Info(&'a [u8]),
    Pub(Pub<'a>),
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    /// `max` is `None` without a count; a malformed count parses as `Some(-1)`.
    Unsub {
        sid: &'a [u8],
        max: Option<i64>,
    },
    Ping,
    Pong,
    /// `+OK` from a client: accepted and ignored.
    Ok,
    /// `-ERR` from a client: the server closes the connection.
    Err(&'a [u8]),
    /// `HMSG` from a client: its arguments are ignored and an empty payload
    /// must follow; it then counts as a publish to no subject. (`MSG` from a
    /// client is an unknown operation.)
    Msg,
    /// `RS+ <account> <subject> [<queue> <weight>]` from a route, or
    /// `LS+ <subject> [<queue> <weight>]` from a leaf node (the account
    /// empty): the peer's interest (the weight of a queue group is its
    /// member count, as written; `None` for a plain subject).
    /// On a route, `LS+ <origin> <account> ...` is the same for interest
    /// from leaf node cluster `origin` (empty otherwise).
    RouteSub {
        account: &'a [u8],
        subject: &'a [u8],
        queue: Option<(&'a [u8], &'a [u8])>,
        origin: &'a [u8],
    },
    /// `RS- <account> <subject> [<queue>]` from a route, `LS- <subject>
    /// [<queue>]` from a leaf node (on a route, `LS- <origin> <account>
    /// ...`).
    RouteUnsub {
        account: &'a [u8],
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        origin: &'a [u8],
    },
    /// `RMSG` or `HMSG` from a route, `LMSG` or `HMSG` from a leaf node.
    /// Boxed: inline it would make every op a third larger, and the
    /// client's publish path copies ops (96 bytes, not 128).
    Routed(Box<Routed<'a>>),
}

/// A message a route forwards: `RMSG <account> <subject> <middle> <size>`,
/// where the middle is empty, a reply, `+ <reply> <queue>…` or
/// `| <queue>…`; or `HMSG` with the header size before the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed<'a> {
    pub account: &'a [u8],
    /// The leaf node cluster a routed message came into the cluster from
    /// (a route's `LMSG`), empty if none.
    pub origin: &'a [u8],
    /// The queue groups the sender chose this server for, separated by
    /// spaces (empty: none; then no queue subscriber takes it).
    pub queues: &'a [u8],
    pub msg: Pub<'a>,
}

impl<'a> Routed<'a> {
    /// The queue group names listed.
    pub fn queue_names(&self) -> impl Iterator<Item = &'a [u8]> {
        Args::split(self.queues, false)
    }
}

/// Why the parser stopped. Each maps to nats-server's reaction (see
/// `server`): an `-ERR` and close, or a silent close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// `-ERR 'Unknown Protocol Operation'`, close.
    UnknownOp,
    /// `-ERR 'maximum control line exceeded'`, close.
    MaxControlLine,
    /// `-ERR 'Maximum Payload Violation'`, close.
    MaxPayload,
    /// `-ERR 'Authorization Violation'`, close (an op before `CONNECT`).
    AuthRequired,
    /// Wrong argument count, a bad size, header size over total size, or
    /// `HPUB` without header support: closed without an `-ERR`.
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    RouteSub,
    RouteUnsub,
    RMsg,
    LeafSub,
    LeafUnsub,
    LMsg,
    AccountSub,
    AccountUnsub,
    Pub,
    HPub,
    Sub,
    Unsub,
    HMsg,
    Connect,
    Info,
    Ping,
    Pong,
    Ok,
    Err,
}

impl Verb {
    fn text(self) -> &'static [u8] {
        match self {
            Verb::RouteSub => b"RS+",
            Verb::RouteUnsub => b"RS-",
            Verb::RMsg => b"RMSG",
            Verb::LeafSub => b"LS+",
            Verb::LeafUnsub => b"LS-",
            Verb::LMsg => b"LMSG",
            Verb::AccountSub => b"A+",
            Verb::AccountUnsub => b"A-",
            Verb::Pub => b"PUB",
            Verb::HPub => b"HPUB",
            Verb::Sub => b"SUB",
            Verb::Unsub => b"UNSUB",
            Verb::HMsg => b"HMSG",
            Verb::Connect => b"CONNECT",
            Verb::Info => b"INFO",
            Verb::Ping => b"PING",
            Verb::Pong => b"PONG",
            Verb::Ok => b"+OK",
            Verb::Err => b"-ERR",
        }
    }

    /// Verbs whose line is skipped to `\n` without keeping it. A gateway's
    /// `A+`/`A-` (an account's interest back on, or off, in nats-server's
    /// optimistic mode) are among them: natrix sends a cluster only what
    /// it told interest in, so there is nothing to turn on or off.
    fn skips_line(self) -> bool {
        matches!(
            self,
            Verb::Ping | Verb::Pong | Verb::Ok | Verb::AccountSub | Verb::AccountUnsub
        )
    }

    /// Verbs that need a space or tab right after them.
    fn needs_space(self) -> bool {
        !matches!(self, Verb::Connect | Verb::Info) && !self.skips_line()
    }
}

/// Where a straddling op stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Pending {
    /// Nothing buffered.
    #[default]
    None,
    /// A control line is incomplete.
    Line,
    /// The frame is `total` bytes long (line, payload and `\r\n`).
    Frame { total: usize },
    /// A `PING`/`PONG`/`+OK` line: skipping to `\n` without buffering.
    Skip(Verb),
}

/// What one attempt to parse at the start of a buffer found.
enum Step<'a> {
    Done(Op<'a>, usize),
    NeedLine { keep: usize },
    NeedFrame { total: usize },
    Skip(Verb),
}

/// The resumable parser state of one connection.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    pending: Pending,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for an op that straddles inputs.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Parses the next op from `input[*pos..]`, advancing `*pos` past what it
    /// consumed. `Ok(None)` means the input is used up (any partial op is kept
    /// for the next call). Errors are final for the connection.
    pub fn next<'a>(
        &'a mut self,
        input: &'a [u8],
        pos: &mut usize,
        limits: &Limits,
    ) -> Result<Option<Op<'a>>, ParseError> {
        match self.pending {
            Pending::None => {}
            Pending::Skip(verb) => match memchr(b'\n', &input[*pos..]) {
                None => {
                    *pos = input.len();
                    return Ok(None);
                }
                Some(i) => {
                    *pos += i + 1;
                    self.pending = Pending::None;
                    return Ok(Some(skip_op(verb)));
                }
            },
            Pending::Line => loop {
                let rest = &input[*pos..];
                let Some(i) = memchr(b'\n', rest) else {
                    self.buf.extend_from_slice(rest);
                    *pos = input.len();
                    // Re-examine for early errors and to compact spaces.
                    return self.reparse_partial(limits).map(|()| None);
                };
                self.buf.extend_from_slice(&rest[..=i]);
                *pos += i + 1;
                // A `\n` that starts an argument does not end it: keep looking.
                if !matches!(parse_step(&self.buf, limits)?, Step::NeedLine { .. }) {
                    return self.complete_from_buffer(input, pos, limits);
                }
            },
            Pending::Frame { total } => {
                let want = total - self.buf.len();
                let take = want.min(input.len() - *pos);
                self.buf.extend_from_slice(&input[*pos..*pos + take]);
                *pos += take;
                if self.buf.len() < total {
                    check_terminator(&self.buf, total)?;
                    return Ok(None);
                }
                return self.complete_from_buffer(input, pos, limits);
            }
        }
        if *pos >= input.len() {
            return Ok(None);
        }
        let rest = &input[*pos..];
        match parse_step(rest, limits)? {
            Step::Done(op, used) => {
                *pos += used;
                Ok(Some(op))
            }
            Step::Skip(verb) => {
                *pos = input.len();
                self.pending = Pending::Skip(verb);
                Ok(None)
            }
            Step::NeedLine { keep } => {
                self.buf.clear();
                self.buf.extend_from_slice(&rest[..keep]);
                *pos = input.len();
                self.pending = Pending::Line;
                Ok(None)
            }
            Step::NeedFrame { total } => {
                check_terminator(rest, total)?;
                self.buf.clear();
                self.buf.reserve(total);
                self.buf.extend_from_slice(rest);
                *pos = input.len();
                self.pending = Pending::Frame { total };
                Ok(None)
            }
        }
    }

    /// The buffer now holds a complete line (and maybe a complete frame).
    fn complete_from_buffer<'a>(
        &'a mut self,
        input: &'a [u8],
        pos: &mut usize,
        limits: &Limits,
    ) -> Result<Option<Op<'a>>, ParseError> {
        // Decide with a shared borrow first, then hand out the op.
        let step = match parse_step(&self.buf, limits)? {
            Step::Done(_, used) => Ok(used),
            Step::NeedFrame { total } => Err(total),
            Step::NeedLine { .. } | Step::Skip(_) => {
                unreachable!("the buffer ends with a complete line")
            }
        };
        match step {
            Ok(used) => {
                debug_assert_eq!(used, self.buf.len());
                self.pending = Pending::None;
                // Reuse the allocation next time; the op borrows it until then.
                let Step::Done(op, _) = parse_step(&self.buf, limits)? else {
                    unreachable!()
                };
                Ok(Some(op))
            }
            Err(total) => {
                // The line is complete; now the payload: copy what is here.
                let want = total - self.buf.len();
                let take = want.min(input.len() - *pos);
                self.buf.extend_from_slice(&input[*pos..*pos + take]);
                *pos += take;
                self.pending = Pending::Frame { total };
                if self.buf.len() < total {
                    check_terminator(&self.buf, total)?;
                    return Ok(None);
                }
                self.pending = Pending::None;
                let Step::Done(op, _) = parse_step(&self.buf, limits)? else {
                    unreachable!("a complete frame parses")
                };
                Ok(Some(op))
            }
        }
    }

    /// After buffering more of an incomplete line: fail early on errors and
    /// keep only what matters of leading spaces.
    fn reparse_partial(&mut self, limits: &Limits) -> Result<(), ParseError> {
        match parse_step(&self.buf, limits)? {
            Step::NeedLine { keep } => {
                self.buf.truncate(keep);
                self.pending = Pending::Line;
                Ok(())
            }
            Step::Skip(verb) => {
                self.buf.clear();
                self.pending = Pending::Skip(verb);
                Ok(())
            }
            Step::Done(..) | Step::NeedFrame { .. } => unreachable!("no newline in the buffer"),
        }
    }
}

fn skip_op(verb: Verb) -> Op<'static> {
    match verb {
        Verb::Ping => Op::Ping,
        Verb::Pong => Op::Pong,
        _ => Op::Ok,
    }
}

/// The bytes after a payload must be `\r\n`; check those that have arrived.
fn check_terminator(frame: &[u8], total: usize) -> Result<(), ParseError> {
    let cr = total - 2;
    if frame.len() > cr && frame[cr] != b'\r' {
        return Err(ParseError::UnknownOp);
    }
    if frame.len() > cr + 1 && frame[cr + 1] != b'\n' {
        return Err(ParseError::UnknownOp);
    }
    Ok(())
}

fn first_verb_byte(b: u8, route: bool, leaf: bool) -> Option<&'static [Verb]> {
    if route || leaf {
        return Some(match b.to_ascii_uppercase() {
            b'R' if route => &[Verb::RouteSub, Verb::RouteUnsub, Verb::RMsg],
            b'A' if route => &[Verb::AccountSub, Verb::AccountUnsub],
            b'L' => &[Verb::LeafSub, Verb::LeafUnsub, Verb::LMsg],
            b'H' => &[Verb::HMsg],
            b'P' => &[Verb::Ping, Verb::Pong],
            b'C' => &[Verb::Connect],
            b'I' => &[Verb::Info],
            b'+' => &[Verb::Ok],
            b'-' => &[Verb::Err],
            _ => return None,
        });
    }
    Some(match b.to_ascii_uppercase() {
        b'P' => &[Verb::Pub, Verb::Ping, Verb::Pong],
        b'H' => &[Verb::HPub, Verb::HMsg],
        b'S' => &[Verb::Sub],
        b'U' => &[Verb::Unsub],
        b'C' => &[Verb::Connect],
        b'I' => &[Verb::Info],
        b'+' => &[Verb::Ok],
        b'-' => &[Verb::Err],
        _ => return None,
    })
}

/// Parses one op at the start of `buf`.
/// Inlined: returning its large result through memory cost a fifth of the
/// publish path (40 to 34 ns of server CPU per 16 B publish).
#[inline(always)]
fn parse_step<'a>(buf: &'a [u8], limits: &Limits) -> Result<Step<'a>, ParseError> {
    let first = buf[0];
    if limits.awaiting_auth && !first.eq_ignore_ascii_case(&b'C') {
        return Err(ParseError::AuthRequired);
    }
    // `PUB ` is most of the traffic: recognise it without the general search.
    let fast_pub = buf.len() > 4
        && !limits.route
        && !limits.leaf
        && buf[0] | 0x20 == b'p'
        && buf[1] | 0x20 == b'u'
        && buf[2] | 0x20 == b'b'
        && matches!(buf[3], b' ' | b'\t');
    let candidates: &[Verb] = if fast_pub {
        &[Verb::Pub]
    } else {
        first_verb_byte(first, limits.route, limits.leaf).ok_or(ParseError::UnknownOp)?
    };
    // Match the verb byte by byte; the candidates differ by their second
    // byte (`RS+` and `RS-` by their third).
    let mut verb = None;
    for &v in candidates {
        let text = v.text();
        let n = text.len().min(buf.len());
        if buf[..n].eq_ignore_ascii_case(&text[..n]) {
            if n < text.len() {
                // Input ends inside the verb: need more (nothing to decide yet
                // unless another candidate could still fail; they share only
                // the first byte, so a 1-byte prefix is ambiguous but valid).
                return Ok(Step::NeedLine { keep: buf.len() });
            }
            verb = Some(v);
            break;
        }
    }
    let verb = verb.ok_or(ParseError::UnknownOp)?;
    let mut i = verb.text().len();
    if verb.skips_line() {
        return Ok(match memchr(b'\n', &buf[i..]) {
            Some(nl) => Step::Done(skip_op(verb), i + nl + 1),
            None => Step::Skip(verb),
        });
    }
    if verb.needs_space() {
        match buf.get(i) {
            None => return Ok(Step::NeedLine { keep: buf.len() }),
            Some(b' ' | b'\t') => i += 1,
            Some(_) => return Err(ParseError::UnknownOp),
        }
    }
    // Skip spaces and tabs; the argument starts at the next byte, whatever it is.
    while i < buf.len() && matches!(buf[i], b' ' | b'\t') {
        i += 1;
    }
    if i >= buf.len() {
        // Keep the verb and one separator only: spaces are not buffered.
        let keep = verb.text().len() + usize::from(verb.needs_space());
        return Ok(Step::NeedLine { keep });
    }
    let arg_start = i;
    let Some(nl) = memchr(b'\n', &buf[arg_start + 1..]).map(|n| arg_start + 1 + n) else {
        let seen = &buf[arg_start..];
        let drop = usize::from(memchr(b'\r', &seen[1..]).is_some());
        if seen.len() - drop > limits.max_control_line {
            return Err(ParseError::MaxControlLine);
        }
        return Ok(Step::NeedLine { keep: buf.len() });
    };
    let raw = &buf[arg_start..nl];
    // nats-server drops the last byte of a line with a `\r` after its first
    // byte; clients end lines with `\r\n`, so look at the end first.
    let drop = usize::from(
        (raw.len() > 1 && raw[raw.len() - 1] == b'\r') || memchr(b'\r', &raw[1..]).is_some(),
    );
    let arg = &raw[..raw.len() - drop];
    if arg.len() > limits.max_control_line {
        return Err(ParseError::MaxControlLine);
    }
    let line_len = nl + 1;
    let op = match verb {
        Verb::Pub | Verb::HPub => return parse_pub(verb, arg, buf, line_len, limits),
        Verb::RMsg
        | Verb::LMsg
        | Verb::RouteSub
        | Verb::RouteUnsub
        | Verb::LeafSub
        | Verb::LeafUnsub => {
            return parse_peer_op(verb, arg, buf, line_len, limits);
        }
        Verb::HMsg if limits.route || limits.leaf => {
            return parse_peer_op(verb, arg, buf, line_len, limits);
        }
        Verb::HMsg => {
            let total = line_len + 2;
            if buf.len() < total {
                return Ok(Step::NeedFrame { total });
            }
            check_terminator(buf, total)?;
            return Ok(Step::Done(Op::Msg, total));
        }
        Verb::Sub => {
            let mut args = Args::split(arg, true);
            match (args.next(), args.next(), args.next(), args.next()) {
                (Some(subject), Some(sid), None, _) => Op::Sub {
                    subject,
                    queue: None,
                    sid,
                },
                (Some(subject), Some(queue), Some(sid), None) => Op::Sub {
                    subject,
                    queue: Some(queue),
                    sid,
                },
                _ => return Err(ParseError::Malformed("processSub Parse Error")),
            }
        }
        Verb::Unsub => {
            let mut args = Args::split(arg, true);
            match (args.next(), args.next(), args.next()) {
                (Some(sid), None, _) => Op::Unsub { sid, max: None },
                (Some(sid), Some(max), None) => Op::Unsub {
                    sid,
                    max: Some(parse_size(max)),
                },
                _ => return Err(ParseError::Malformed("processUnsub Parse Error")),
            }
        }
        Verb::Connect => Op::Connect(arg),
        Verb::Info => Op::Info(arg),
        Verb::Err => Op::Err(arg),
        Verb::Ping | Verb::Pong | Verb::Ok | Verb::AccountSub | Verb::AccountUnsub => {
            unreachable!("handled above")
        }
    };
    Ok(Step::Done(op, line_len))
}

/// The ops of routes, leaf nodes and gateways, kept out of
/// [`parse_step`]'s inlined body so that the client's publish path stays
/// as small as it was.
#[inline(never)]
fn parse_peer_op<'a>(
    verb: Verb,
    arg: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Result<Step<'a>, ParseError> {
    let op = match verb {
        Verb::RMsg => return parse_routed(false, true, arg, buf, line_len, limits),
        // On a route: `LMSG <origin> <account> ...` with a header size.
        Verb::LMsg if limits.route => {
            return parse_routed_origin(arg, buf, line_len, limits);
        }
        Verb::LMsg => return parse_routed(false, false, arg, buf, line_len, limits),
        // On a route: `LS+ <origin> <account> <subject> [<queue>
        // <weight>]`, `LS- <origin> <account> <subject> [<queue>]`: the
        // origin (a leaf node cluster) is not used. From a leaf node: no
        // account (the connection is bound to one).
        Verb::LeafSub if limits.route => interest(arg, true, 1, "processRemoteSub Parse Error")?,
        Verb::LeafUnsub if limits.route => {
            interest(arg, false, 1, "processRemoteUnsub Parse Error")?
        }
        Verb::HMsg => return parse_routed(true, limits.route, arg, buf, line_len, limits),
        Verb::LeafSub => interest(arg, true, -1, "processLeafSub Parse Error")?,
        Verb::LeafUnsub => interest(arg, false, -1, "processLeafUnsub Parse Error")?,
        Verb::RouteSub => interest(arg, true, 0, "processRemoteSub Parse Error")?,
        Verb::RouteUnsub => interest(arg, false, 0, "processRemoteUnsub Parse Error")?,
        _ => unreachable!("only peer verbs come here"),
    };
    Ok(Step::Done(op, line_len))
}

#[inline(always)]
fn parse_pub<'a>(
    verb: Verb,
    arg: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Result<Step<'a>, ParseError> {
    let mut args = Args::split(arg, false);
    let a: [Option<&[u8]>; 5] = [
        args.next(),
        args.next(),
        args.next(),
        args.next(),
        args.next(),
    ];
    let (subject, reply, header, size_token) = if verb == Verb::HPub {
        if !limits.headers {
            return Err(ParseError::Malformed("HPUB without header support"));
        }
        match a {
            [Some(s), Some(h), Some(t), None, _] => (s, None, h, t),
            [Some(s), Some(r), Some(h), Some(t), None] => (s, Some(r), h, t),
            _ => return Err(ParseError::Malformed("processHeaderPub Parse Error")),
        }
    } else {
        match a {
            [Some(s), Some(t), None, ..] => (s, None, &b""[..], t),
            [Some(s), Some(r), Some(t), None, _] => (s, Some(r), &b""[..], t),
            _ => return Err(ParseError::Malformed("processPub Parse Error")),
        }
    };
    let header = if verb == Verb::HPub {
        let h = parse_size(header);
        if h < 0 {
            return Err(ParseError::Malformed(
                "processHeaderPub Bad or Missing Header Size",
            ));
        }
        Some((h as usize, header))
    } else {
        None
    };
    let size = parse_size(size_token);
    if size < 0 {
        return Err(ParseError::Malformed("Bad or Missing Size"));
    }
    let size = size as usize;
    if let Some((h, _)) = header
        && h > size
    {
        return Err(ParseError::Malformed("Header Size larger then TotalSize"));
    }
    if let Some(max) = limits.max_payload
        && size as u64 > max
    {
        return Err(ParseError::MaxPayload);
    }
    let total = line_len + size + 2;
    if buf.len() < total {
        return Ok(Step::NeedFrame { total });
    }
    check_terminator(buf, total)?;
    let p = Pub {
        subject,
        reply,
        size_token,
        header,
        payload: &buf[line_len..line_len + size],
    };
    Ok(Step::Done(Op::Pub(p), total))
}

/// Parses the arguments of `RMSG` (`HMSG` when `headers`; `LMSG` and a
/// leaf node's `HMSG`, without the account, unless `with_account`) and
/// frames its payload. Queue lists have no bound, so tokens are located by position:
/// the account and subject first, the size (or header and total sizes)
/// last, and what lies between is a reply, `+ <reply> <queue>…` or
/// `| <queue>…`.
fn parse_routed<'a>(
    headers: bool,
    with_account: bool,
    arg: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Result<Step<'a>, ParseError> {
    const WHY: &str = "processRoutedMsgArgs Parse Error";
    let base = arg.as_ptr() as usize;
    let at = |t: &[u8]| t.as_ptr() as usize - base;
    let mut args = Args::split(arg, false);
    let account = if with_account {
        args.next()
    } else {
        Some(&b""[..])
    };
    let (Some(account), Some(subject)) = (account, args.next()) else {
        return Err(ParseError::Malformed(WHY));
    };
    // The middle starts after the subject; the sizes are the last tokens.
    let rest = &arg[at(subject) + subject.len()..];
    let mut tail = Args::split(rest, false).rev_tokens();
    let size_token = tail.next().ok_or(ParseError::Malformed(WHY))?;
    let header_token = if headers {
        Some(tail.next().ok_or(ParseError::Malformed(WHY))?)
    } else {
        None
    };
    let last_size = header_token.unwrap_or(size_token);
    let middle = &arg[at(subject) + subject.len()..at(last_size)];
    let mut mid = Args::split(middle, false);
    let (reply, queues) = match (mid.next(), mid.next()) {
        (None, _) => (None, &b""[..]),
        (Some(b"+"), Some(reply)) => {
            let after = &arg[at(reply) + reply.len()..at(last_size)];
            (Some(reply), crate::proto::trim_blank(after))
        }
        (Some(b"|"), Some(first)) => (
            None,
            crate::proto::trim_blank(&arg[at(first)..at(last_size)]),
        ),
        (Some(reply), None) => (Some(reply), &b""[..]),
        _ => return Err(ParseError::Malformed(WHY)),
    };
    let size = parse_size(size_token);
    if size < 0 {
        return Err(ParseError::Malformed(WHY));
    }
    let size = size as usize;
    let header = match header_token {
        Some(t) => {
            let h = parse_size(t);
            if h < 0 || h as usize > size {
                return Err(ParseError::Malformed(WHY));
            }
            Some((h as usize, t))
        }
        None => None,
    };
    if let Some(max) = limits.max_payload
        && size as u64 > max
    {
        return Err(ParseError::MaxPayload);
    }
    let total = line_len + size + 2;
    if buf.len() < total {
        return Ok(Step::NeedFrame { total });
    }
    check_terminator(buf, total)?;
    let msg = Pub {
        subject,
        reply,
        size_token,
        header,
        payload: &buf[line_len..line_len + size],
    };
    Ok(Step::Done(
        Op::Routed(Box::new(Routed {
            account,
            origin: b"",
            queues,
            msg,
        })),
        total,
    ))
}

/// `RS+`/`LS+` (`sub`) or `RS-`/`LS-`: `[<origin>] <account> <subject>
/// [<queue> [<weight>]]` with `skip` 1 (an origin first) or 0, or, with
/// `skip` -1 (a leaf node's), `<subject> [<queue> ...]` and no account.
fn interest<'a>(
    arg: &'a [u8],
    sub: bool,
    skip: i8,
    why: &'static str,
) -> Result<Op<'a>, ParseError> {
    let mut args = Args::split(arg, true);
    let origin = if skip > 0 {
        args.next().ok_or(ParseError::Malformed(why))?
    } else {
        b""
    };
    let account = if skip < 0 {
        Some(&b""[..])
    } else {
        args.next()
    };
    let (Some(account), Some(subject)) = (account, args.next()) else {
        return Err(ParseError::Malformed(why));
    };
    let (queue, weight, extra) = (args.next(), args.next(), args.next());
    Ok(match (sub, queue, weight, extra) {
        (true, None, ..) => Op::RouteSub {
            account,
            subject,
            queue: None,
            origin,
        },
        (true, Some(queue), Some(weight), None) => Op::RouteSub {
            account,
            subject,
            queue: Some((queue, weight)),
            origin,
        },
        (false, queue, None, _) => Op::RouteUnsub {
            account,
            subject,
            queue,
            origin,
        },
        _ => return Err(ParseError::Malformed(why)),
    })
}

/// A route's `LMSG <origin> <account> <subject> [...] <hdr> <size>`: a
/// routed message that came into the cluster from leaf node cluster
/// `origin`, always with a header size (0: no header).
fn parse_routed_origin<'a>(
    arg: &'a [u8],
    buf: &'a [u8],
    line_len: usize,
    limits: &Limits,
) -> Result<Step<'a>, ParseError> {
    let mut args = Args::split(arg, false);
    let Some(origin) = args.next() else {
        return Err(ParseError::Malformed("processRoutedMsgArgs Parse Error"));
    };
    let base = arg.as_ptr() as usize;
    let rest = &arg[origin.as_ptr() as usize - base + origin.len()..];
    let step = parse_routed(true, true, rest, buf, line_len, limits)?;
    Ok(match step {
        Step::Done(Op::Routed(mut r), total) => {
            r.origin = origin;
            // A zero header size is no header.
            if r.msg.header.is_some_and(|(h, _)| h == 0) {
                r.msg.header = None;
            }
            Step::Done(Op::Routed(r), total)
        }
        other => other,
    })
}

/// Parses a size as nats-server does: 1 to 9 decimal digits, else -1.
pub fn parse_size(d: &[u8]) -> i64 {
    if d.is_empty() || d.len() > 9 {
        return -1;
    }
    let mut n: i64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return -1;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    n
}

/// Whitespace-separated arguments. `PUB`/`HPUB` split on space and tab only;
/// `SUB`/`UNSUB` also on `\r` and `\n`.
struct Args<'a> {
    rest: &'a [u8],
    crlf: bool,
}

impl<'a> Args<'a> {
    fn split(arg: &'a [u8], crlf: bool) -> Self {
        Args { rest: arg, crlf }
    }
    fn is_sep(&self, b: u8) -> bool {
        b == b' ' || b == b'\t' || (self.crlf && (b == b'\r' || b == b'\n'))
    }
}

impl<'a> Args<'a> {
    /// The same tokens, last first.
    fn rev_tokens(self) -> RevArgs<'a> {
        RevArgs(self)
    }
}

/// [`Args`] from the end.
struct RevArgs<'a>(Args<'a>);

impl<'a> Iterator for RevArgs<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let a = &mut self.0;
        let end = a.rest.iter().rposition(|&b| !a.is_sep(b))? + 1;
        let rest = &a.rest[..end];
        let start = rest.iter().rposition(|&b| a.is_sep(b)).map_or(0, |i| i + 1);
        a.rest = &rest[..start];
        Some(&rest[start..])
    }
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.rest.iter().position(|&b| !self.is_sep(b))?;
        let rest = &self.rest[start..];
        let end = rest
            .iter()
            .position(|&b| self.is_sep(b))
            .unwrap_or(rest.len());
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

#[cfg(test)]
mod tests;
