//! Raw sockets against the `natrix` binary: exact bytes on the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use natrix_tests::ServerProcess;

struct Raw {
    s: TcpStream,
}

impl Raw {
    fn connect(server: &ServerProcess) -> Self {
        let s = TcpStream::connect(server.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut r = Raw { s };
        let info = r.read_until("\r\n", Duration::from_secs(5));
        assert!(
            info.starts_with("INFO {") && info.ends_with("} \r\n"),
            "{info}"
        );
        r
    }

    fn send(&mut self, data: &str) {
        self.s.write_all(data.as_bytes()).unwrap();
    }

    /// Reads until the accumulated text ends with `end`, or times out.
    fn read_until(&mut self, end: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline && !got.ends_with(end.as_bytes()) {
            match self.s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => continue,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Whether the server closed the connection within `within`.
    fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 65536];
        while Instant::now() < deadline {
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }
}

#[test]
fn verbose_ok_and_ping_pong() {
    let server = ServerProcess::natrix(&[]);
    let mut c = Raw::connect(&server);
    c.send("CONNECT {\"verbose\":true}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nping\r\n");
    assert_eq!(
        c.read_until("PONG\r\n", Duration::from_secs(5)),
        "+OK\r\n+OK\r\n+OK\r\nMSG foo 1 2\r\nhi\r\nPONG\r\n"
    );
}

#[test]
fn pedantic_error_keeps_the_connection() {
    let server = ServerProcess::natrix(&[]);
    let mut c = Raw::connect(&server);
    c.send("CONNECT {\"verbose\":false,\"pedantic\":true}\r\nSUB foo.* 1\r\nPUB foo.* 1\r\nx\r\nPING\r\n");
    assert_eq!(
        c.read_until("PONG\r\n", Duration::from_secs(5)),
        "-ERR 'Invalid Publish Subject'\r\nMSG foo.* 1 1\r\nx\r\nPONG\r\n"
    );
}

#[test]
fn max_payload_violation_closes() {
    let server = ServerProcess::natrix(&[]);
    let mut c = Raw::connect(&server);
    c.send("CONNECT {\"verbose\":false}\r\nPUB foo 1048577\r\n");
    assert_eq!(
        c.read_until("\r\n", Duration::from_secs(5)),
        "-ERR 'Maximum Payload Violation'\r\n"
    );
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn unknown_op_closes() {
    let server = ServerProcess::natrix(&[]);
    let mut c = Raw::connect(&server);
    c.send("FOO\r\n");
    assert_eq!(
        c.read_until("\r\n", Duration::from_secs(5)),
        "-ERR 'Unknown Protocol Operation'\r\n"
    );
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn server_pings_early_for_rtt() {
    let server = ServerProcess::natrix(&[]);
    let mut c = Raw::connect(&server);
    c.send("CONNECT {\"verbose\":false}\r\n");
    let started = Instant::now();
    assert_eq!(c.read_until("PING\r\n", Duration::from_secs(5)), "PING\r\n");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_millis(3500),
        "{after:?}"
    );
}

#[test]
fn slow_consumer_is_closed() {
    let server = ServerProcess::natrix(&[]);
    let mut slow = Raw::connect(&server);
    slow.send("CONNECT {\"verbose\":false}\r\nSUB flood 1\r\nPING\r\n");
    assert_eq!(
        slow.read_until("PONG\r\n", Duration::from_secs(5)),
        "PONG\r\n"
    );
    // Never read from `slow` again; publish far more than max_pending (64 MiB)
    // plus what the kernel buffers.
    let mut p = Raw::connect(&server);
    p.send("CONNECT {\"verbose\":false}\r\n");
    let body = "x".repeat(64 * 1024);
    let frame = format!("PUB flood {}\r\n{body}\r\n", body.len());
    let chunk = frame.repeat(16);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0usize;
    while sent < 200 * 1024 * 1024 && Instant::now() < deadline {
        p.send(&chunk);
        sent += chunk.len();
    }
    p.send("PING\r\n");
    let tail = p.read_until("PONG\r\n", Duration::from_secs(10));
    assert!(tail.ends_with("PONG\r\n"), "the publisher stays connected");
    // The slow reader sees a clean close (after whatever was buffered).
    slow.s
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        slow.closed_within(Duration::from_secs(20)),
        "slow consumer closed"
    );
}

#[test]
fn a_thousand_connections() {
    let server = ServerProcess::natrix(&[]);
    let mut conns: Vec<Raw> = (0..1000).map(|_| Raw::connect(&server)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&format!(
            "CONNECT {{\"verbose\":false}}\r\nSUB all {i}\r\nPING\r\n"
        ));
    }
    for c in conns.iter_mut() {
        assert_eq!(
            c.read_until("PONG\r\n", Duration::from_secs(10)),
            "PONG\r\n"
        );
    }
    conns[0].send("PUB all 2\r\nhi\r\n");
    for (i, c) in conns.iter_mut().enumerate() {
        let want = format!("MSG all {i} 2\r\nhi\r\n");
        assert_eq!(c.read_until(&want, Duration::from_secs(10)), want);
    }
}

#[test]
fn unknown_flag_exits_1() {
    let out = std::process::Command::new(natrix_tests::natrix_bin())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined"));
    let out = std::process::Command::new(natrix_tests::natrix_bin())
        .args(["--profile", "6060"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("profiling"));
    let out = std::process::Command::new(natrix_tests::natrix_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("natrix"));
}

#[test]
fn pid_and_ports_files_and_graceful_stop() {
    let dir = std::env::temp_dir().join(format!("natrix-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid_file = dir.join("natrix.pid");
    let mut server = ServerProcess::natrix(&[
        "-P",
        pid_file.to_str().unwrap(),
        "--ports_file_dir",
        dir.to_str().unwrap(),
    ]);
    let pid = server.child.id();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    let ports = dir.join(format!("natrix_{pid}.ports"));
    let deadline = Instant::now() + Duration::from_secs(5);
    // The file may exist before its bytes are written: wait for them.
    let mut text = String::new();
    while text.is_empty() && Instant::now() < deadline {
        text = std::fs::read_to_string(&ports).unwrap_or_default();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        text,
        format!("{{\"nats\":[\"nats://127.0.0.1:{}\"]}}", server.port)
    );
    let mut c = Raw::connect(&server);
    c.send("CONNECT {\"verbose\":false}\r\nSUB x 1\r\nPING\r\n");
    assert_eq!(c.read_until("PONG\r\n", Duration::from_secs(5)), "PONG\r\n");
    // SIGTERM: clients are closed, files removed, exit code 1 (as
    // nats-server; SIGINT exits 0).
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "client closed on shutdown"
    );
    let code = server.child.wait().unwrap();
    assert_eq!(code.code(), Some(1));
    assert!(
        !pid_file.exists() && !ports.exists(),
        "pid and ports files removed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
