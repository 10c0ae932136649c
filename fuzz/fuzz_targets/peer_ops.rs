//! A server with routes, leaf nodes and gateways, fed arbitrary bytes on
//! connections from each listener and on the connections it dials, after
//! a well-formed handshake or none, interleaved with a client's
//! subscriptions and publishes and with time: never a panic, and the
//! core's own assertions hold.
#![no_main]

use std::net::SocketAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use natrix_core::config::cluster::{ClusterOptions, RouteUrl};
use natrix_core::config::gateway::{GatewayOptions, RemoteGateway};
use natrix_core::config::leafnodes::{LeafNodeOptions, LeafRemote};
use natrix_core::server::{Action, ConnId, Event, Listener};
use natrix_core::time::{Instant, Now};
use natrix_core::{Options, Server};

#[derive(Arbitrary, Debug)]
enum Op {
    /// A peer connects on a listener (0 route, 1 leaf, 2 gateway), with a
    /// well-formed handshake first or not.
    Accept { listener: u8, handshake: bool },
    /// Bytes from a peer (or a dialed connection).
    Peer { conn: u8, bytes: Vec<u8> },
    /// A well-formed op from a peer: interest or a message.
    PeerOp { conn: u8, kind: u8, subject: u8, queue: bool, len: u8 },
    /// The client subscribes or publishes.
    Client { subject: u8, publish: bool, queue: bool },
    Tick { millis: u16 },
    Close { conn: u8 },
}

const SUBJECTS: [&str; 5] = ["a", "a.b", "a.*", ">", "_GR_.F2cAWZ.abcdef.r"];

fn at(ms: u64) -> Now {
    Now::new(Instant::from_nanos(ms * 1_000_000), 1_700_000_000_000_000_000 + ms * 1_000_000)
}

fn url(port: u16) -> RouteUrl {
    RouteUrl::parse(&format!("nats://127.0.0.1:{port}")).unwrap()
}

struct World {
    server: Server,
    now: u64,
    peers: Vec<ConnId>,
    client: ConnId,
}

impl World {
    fn drain(&mut self) {
        let mut buf = Vec::new();
        while let Some(a) = self.server.poll_action() {
            match a {
                Action::Transmit { conn } => {
                    buf.clear();
                    self.server.take_outbound(conn, &mut buf);
                    let n = buf.len();
                    self.server.handle(at(self.now), Event::Written { conn, bytes: n });
                }
                Action::Close { conn, .. } => {
                    self.server.handle(at(self.now), Event::Closed { conn });
                    self.peers.retain(|&p| p != conn);
                }
                Action::Dial { conn, addr } => {
                    let peer: SocketAddr = addr.parse().unwrap_or_else(|_| "127.0.0.1:1".parse().unwrap());
                    if addr.ends_with(":1") {
                        self.server.handle(at(self.now), Event::DialFailed { conn, error: "refused" });
                    } else {
                        self.server.handle(at(self.now), Event::Dialed { conn, peer });
                        self.peers.push(conn);
                    }
                }
                _ => {}
            }
        }
    }

    fn send(&mut self, conn: ConnId, bytes: &[u8]) {
        self.server.handle(at(self.now), Event::Received { conn, bytes });
        self.drain();
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let opts = Options {
        server_name: "F".into(),
        host: "127.0.0.1".into(),
        cluster: Some(ClusterOptions {
            name: "C".into(),
            port: 6222,
            routes: vec![url(6223), url(1)],
            ..ClusterOptions::default()
        }),
        leafnodes: Some(LeafNodeOptions {
            port: Some(7422),
            remotes: vec![LeafRemote { urls: vec![url(7423)], ..LeafRemote::default() }],
            ..LeafNodeOptions::default()
        }),
        gateway: Some(GatewayOptions {
            name: "GA".into(),
            port: 7222,
            gateways: vec![RemoteGateway { name: "GB".into(), urls: vec![url(7223)], tls: None }],
            ..GatewayOptions::default()
        }),
        ..Options::default()
    };
    let mut server = Server::new(opts, 1, at(0));
    for (listener, port) in [(Listener::Client, 4222), (Listener::Route, 6222), (Listener::Leaf, 7422), (Listener::Gateway, 7222)] {
        server.handle(at(0), Event::Listening { listener, port });
    }
    let client = server.next_conn_id();
    let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
    server.handle(at(0), Event::Accepted { conn: client, listener: Listener::Client, peer });
    let mut w = World { server, now: 0, peers: Vec::new(), client };
    w.drain();
    w.send(client, b"CONNECT {\"headers\":true,\"protocol\":1}\r\nPING\r\n");
    for op in ops.into_iter().take(64) {
        match op {
            Op::Accept { listener, handshake } => {
                let (kind, hello): (Listener, &[u8]) = match listener % 3 {
                    0 => (Listener::Route, b"CONNECT {\"name\":\"NX\",\"cluster\":\"C\",\"headers\":true}\r\nINFO {\"server_id\":\"NX\",\"server_name\":\"X\",\"cluster\":\"C\",\"headers\":true,\"port\":6299}\r\n"),
                    1 => (Listener::Leaf, b"CONNECT {\"server_id\":\"NL\",\"name\":\"L\",\"cluster\":\"L\",\"headers\":true}\r\n"),
                    _ => (Listener::Gateway, b"CONNECT {\"name\":\"NG\",\"gateway\":\"GB\"}\r\nINFO {\"server_id\":\"NG\",\"server_name\":\"G\",\"gateway\":\"GB\",\"gateway_url\":\"127.0.0.1:7223\",\"headers\":true}\r\n"),
                };
                let conn = w.server.next_conn_id();
                w.server.handle(at(w.now), Event::Accepted { conn, listener: kind, peer });
                w.peers.push(conn);
                w.drain();
                if handshake {
                    w.send(conn, hello);
                }
            }
            Op::Peer { conn, bytes } => {
                if let Some(&c) = w.peers.get(usize::from(conn) % w.peers.len().max(1)) {
                    w.send(c, &bytes);
                }
            }
            Op::PeerOp { conn, kind, subject, queue, len } => {
                let Some(&c) = w.peers.get(usize::from(conn) % w.peers.len().max(1)) else { continue };
                let s = SUBJECTS[usize::from(subject) % SUBJECTS.len()];
                let q = if queue { " q 2" } else { "" };
                let body = "x".repeat(usize::from(len) % 40);
                let line = match kind % 8 {
                    0 => format!("RS+ $G {s}{q}\r\n"),
                    1 => format!("RS- $G {s}{}\r\n", if queue { " q" } else { "" }),
                    2 => format!("RMSG $G {s} {}{}\r\n{body}\r\n", if queue { "| q " } else { "" }, body.len()),
                    3 => format!("LS+ {s}{q}\r\n"),
                    4 => format!("LS- {s}\r\n"),
                    5 => format!("LMSG {s} r.1 {}\r\n{body}\r\n", body.len()),
                    6 => format!("HMSG $G {s} 12 {}\r\nNATS/1.0\r\n\r\n{body}\r\n", 12 + body.len()),
                    _ => "INFO {\"gateway\":\"GC\",\"gateway_urls\":[\"127.0.0.1:7224\"],\"gateway_cmd\":1}\r\n".to_string(),
                };
                w.send(c, line.as_bytes());
            }
            Op::Client { subject, publish, queue } => {
                let s = SUBJECTS[usize::from(subject) % 4];
                let line = if publish {
                    format!("PUB {s} _INBOX.r 2\r\nhi\r\n")
                } else if queue {
                    format!("SUB {s} q {subject}\r\n")
                } else {
                    format!("SUB {s} {subject}\r\n")
                };
                let client = w.client;
                w.send(client, line.as_bytes());
            }
            Op::Tick { millis } => {
                w.now += u64::from(millis);
                w.server.handle(at(w.now), Event::Tick);
                w.drain();
            }
            Op::Close { conn } => {
                if let Some(&c) = w.peers.get(usize::from(conn) % w.peers.len().max(1)) {
                    w.server.handle(at(w.now), Event::Closed { conn: c });
                    w.peers.retain(|&p| p != c);
                    w.drain();
                }
            }
        }
    }
});
