//! The cluster world's links: a connection between a client and a server
//! or between two servers, two directions of timed byte chunks, and a
//! reader of what servers tell each other on routes.

use std::collections::VecDeque;

use natrix_core::proto::{Limits, Op, Parser};
use natrix_core::server::{ConnId, Listener};

use crate::history::{ClientId, MsgId};

/// One side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Client(ClientId),
    Server { s: usize, conn: ConnId, life: u32 },
}

#[derive(Debug)]
pub(super) enum Item {
    Bytes(Vec<u8>),
    Eof,
}

#[derive(Debug, Default)]
pub(super) struct Dir {
    pub(super) queue: VecDeque<(u64, Item)>,
    pub(super) bytes: usize,
    pub(super) scheduled: bool,
    pub(super) last_ready: u64,
}

/// A connection: a client and a server, or two servers (the dialer
/// first). `dirs[d]` carries bytes toward `ends[d]`.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) ends: [End; 2],
    pub(super) dirs: [Dir; 2],
    /// End `d` has left the link (closed, crashed, or its process died).
    pub(super) gone: [bool; 2],
    /// End `d` (a server) has bytes it could not hand over: the window
    /// toward the other end was full.
    pub(super) blocked: [bool; 2],
    /// End `d` (a server) stopped reading until then.
    pub(super) paused_until: [u64; 2],
    /// Links between servers: their kind (the listener dialed) and a
    /// parser per direction reading what crosses.
    pub(super) taps: Option<(Listener, Box<[Parser; 2]>)>,
}

impl End {
    /// The server an end belongs to, if it is a server's.
    pub(super) fn server(self) -> Option<usize> {
        match self {
            End::Server { s, .. } => Some(s),
            End::Client(_) => None,
        }
    }
}

/// What a route reader saw.
pub(super) enum Seen {
    /// A routed copy of simulated message `m`.
    Routed(MsgId),
    /// Plain interest in `<account> <subject>` (`RS+`: `plus`) or its end.
    Interest { key: String, plus: bool },
}

/// Reads the bytes of a link of `kind` between servers (in order,
/// resuming where the last call stopped) and tells `seen` what they
/// carry. False once they cannot be read.
pub(super) fn read_route(
    parser: &mut Parser,
    kind: Listener,
    bytes: &[u8],
    mut seen: impl FnMut(Seen),
) -> bool {
    let leaf = kind == Listener::Leaf;
    let limits = Limits {
        max_control_line: 1 << 20,
        max_payload: None,
        headers: true,
        awaiting_auth: false,
        route: !leaf,
        leaf,
    };
    // A leaf node connection carries one account: the seeds with leaf
    // nodes have only the global one.
    let key = |account: &[u8], subject: &[u8]| {
        let account = if account.is_empty() { b"$G" } else { account };
        format!(
            "{} {}",
            String::from_utf8_lossy(account),
            String::from_utf8_lossy(subject)
        )
    };
    let mut pos = 0;
    loop {
        match parser.next(bytes, &mut pos, &limits) {
            Ok(Some(Op::Routed(r))) => {
                if let Some(m) = message_id(r.msg.body()) {
                    seen(Seen::Routed(m));
                }
            }
            Ok(Some(Op::RouteSub {
                account,
                subject,
                queue: None,
                ..
            })) => seen(Seen::Interest {
                key: key(account, subject),
                plus: true,
            }),
            Ok(Some(Op::RouteUnsub {
                account,
                subject,
                queue: None,
                ..
            })) => seen(Seen::Interest {
                key: key(account, subject),
                plus: false,
            }),
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// The message id of a simulated publish's payload (`m<id>:…`).
pub(super) fn message_id(body: &[u8]) -> Option<MsgId> {
    let rest = body.strip_prefix(b"m")?;
    let end = rest.iter().position(|c| !c.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// A readable, bounded rendering of protocol bytes for traces.
pub(super) fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(160) {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    if b.len() > 160 {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_reader_sees_messages_and_plain_interest() {
        let mut parser = Parser::new();
        let mut seen = Vec::new();
        let bytes = b"RS+ $G a.*\r\nRS+ $G b q 2\r\nRMSG $G a.1 4\r\nm42:\r\nRMSG $G a.1 2\r\na7\r\nRS- $G a";
        assert!(read_route(&mut parser, Listener::Route, bytes, |s| seen.push(s)));
        assert!(read_route(&mut parser, Listener::Route, b".*\r\n", |s| {
            seen.push(s)
        }));
        let shown: Vec<String> = seen
            .iter()
            .map(|s| match s {
                Seen::Routed(m) => format!("m{m}"),
                Seen::Interest { key, plus } => format!("{plus} {key}"),
            })
            .collect();
        assert_eq!(shown, ["true $G a.*", "m42", "false $G a.*"]);
        // A leaf node connection: no account on the wire.
        let mut parser = Parser::new();
        let mut leaf = Vec::new();
        let bytes = b"LS+ a.*\r\nLS+ b q 1\r\nLMSG a.1 4\r\nm43:\r\nLS- a.*\r\n";
        assert!(read_route(&mut parser, Listener::Leaf, bytes, |s| leaf.push(s)));
        let shown: Vec<String> = leaf
            .iter()
            .map(|s| match s {
                Seen::Routed(m) => format!("m{m}"),
                Seen::Interest { key, plus } => format!("{plus} {key}"),
            })
            .collect();
        assert_eq!(shown, ["true $G a.*", "m43", "false $G a.*"]);
        assert_eq!(message_id(b"m42:xx"), Some(42));
        assert_eq!(message_id(b"a42"), None);
    }
}
