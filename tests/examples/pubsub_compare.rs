//! Side-by-side throughput of 1 publisher -> 1 subscriber, natrix against
//! the reference nats-server, on loopback.
//!
//! `cargo run --release -p natrix-tests --example pubsub_compare -- [msgs] [payload] [rounds]`
//!
//! Rounds alternate (natrix, nats-server, natrix, …) so both see the same
//! machine conditions. For each run it prints messages per second (first
//! publish to last delivery) and the server's CPU time per message, read from
//! `/proc/<pid>/stat`, which is steadier than throughput on a busy machine.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use natrix_tests::ServerProcess;

fn read_until(s: &mut TcpStream, end: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "server closed");
        got.extend_from_slice(&buf[..n]);
    }
}

fn connect(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    read_until(&mut s, b"\r\n");
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .unwrap();
    read_until(&mut s, b"PONG\r\n");
    s
}

/// Server CPU time (user + system) in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

struct Run {
    msgs_per_sec: f64,
    cpu_ns_per_msg: f64,
}

fn run(server: &ServerProcess, msgs: usize, payload: usize) -> Run {
    let addr = server.addr();
    let mut sub = connect(&addr);
    sub.write_all(b"SUB bench 1\r\nPING\r\n").unwrap();
    read_until(&mut sub, b"PONG\r\n");
    let frame_in = format!("MSG bench 1 {payload}\r\n").len() + payload + 2;
    let want = frame_in * msgs;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0usize;
        while got < want {
            let n = sub.read(&mut buf).expect("read");
            assert!(n > 0, "subscriber closed");
            got += n;
        }
        Instant::now()
    });
    let mut publisher = connect(&addr);
    let body = vec![b'x'; payload];
    let mut frame = format!("PUB bench {payload}\r\n").into_bytes();
    frame.extend_from_slice(&body);
    frame.extend_from_slice(b"\r\n");
    let per_write = (64 * 1024 / frame.len()).max(1);
    let batch = frame.repeat(per_write);
    let cpu0 = cpu_seconds(server.child.id());
    let start = Instant::now();
    let mut sent = 0;
    while sent < msgs {
        let n = per_write.min(msgs - sent);
        publisher.write_all(&batch[..n * frame.len()]).unwrap();
        sent += n;
    }
    let end = reader.join().unwrap();
    let cpu = cpu_seconds(server.child.id()) - cpu0;
    let secs = end.duration_since(start).as_secs_f64();
    Run {
        msgs_per_sec: msgs as f64 / secs,
        cpu_ns_per_msg: cpu * 1e9 / msgs as f64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let msgs: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let payload: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let reference = natrix_tests::reference_bin()
        .expect("nats-server is needed for the comparison (apt-get install nats-server)");
    println!("1 publisher -> 1 subscriber, {msgs} msgs of {payload} B, {rounds} rounds, loopback");
    println!(
        "{:<12} {:>5} {:>14} {:>16}",
        "server", "round", "msgs/s", "server CPU ns/msg"
    );
    let mut results: Vec<(&str, Vec<Run>)> =
        vec![("natrix", Vec::new()), ("nats-server", Vec::new())];
    for round in 1..=rounds {
        for (name, runs) in results.iter_mut() {
            let server = if *name == "natrix" {
                ServerProcess::natrix(&[])
            } else {
                ServerProcess::start(Path::new(&reference), &[])
            };
            std::thread::sleep(Duration::from_millis(200));
            let r = run(&server, msgs, payload);
            println!(
                "{name:<12} {round:>5} {:>14.0} {:>16.1}",
                r.msgs_per_sec, r.cpu_ns_per_msg
            );
            runs.push(r);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let mut summary = Vec::new();
    for (name, runs) in &results {
        let mut t: Vec<f64> = runs.iter().map(|r| r.msgs_per_sec).collect();
        let mut c: Vec<f64> = runs.iter().map(|r| r.cpu_ns_per_msg).collect();
        let (tmin, tmax) = (
            t.iter().cloned().fold(f64::MAX, f64::min),
            t.iter().cloned().fold(0.0, f64::max),
        );
        let (mt, mc) = (median(&mut t), median(&mut c));
        println!(
            "{name:<12} median {mt:>12.0} msgs/s (min {tmin:.0}, max {tmax:.0}), {mc:.1} CPU ns/msg"
        );
        summary.push((mt, mc));
    }
    println!(
        "natrix / nats-server: throughput {:.2}x, server CPU per message {:.2}x",
        summary[0].0 / summary[1].0,
        summary[0].1 / summary[1].1
    );
}
