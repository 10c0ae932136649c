//! HTTP monitoring (`-m`): every endpoint answers with nats-server 2.9.10's
//! JSON shape (the same key paths for the same workload), and the figures
//! natrix reports match what the test did.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use natrix_tests::{ServerProcess, free_port};
use serde_json::Value;

const ENDPOINTS: [&str; 11] = [
    "varz",
    "connz?subs=1",
    "connz?state=closed&subs=1",
    "subsz?subs=1",
    "routez",
    "gatewayz",
    "leafz",
    "accountz",
    "accstatz",
    "jsz",
    "healthz",
];

fn get_text(port: u16, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get(port: u16, path: &str) -> (u16, Value) {
    let (status, _, body) = get_text(port, path);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Every key path in a JSON value (`a.b`, `list[].c`).
fn paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(p.clone());
                paths(val, &p, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

/// A server with the monitoring port on, and one client that subscribed,
/// published and received.
fn start(bin: Option<&Path>) -> (ServerProcess, u16, TcpStream) {
    loop {
        let http = free_port();
        let port = http.to_string();
        let server = match bin {
            Some(b) => ServerProcess::start(b, &["-m", &port]),
            None => ServerProcess::natrix(&["-m", &port]),
        };
        if TcpStream::connect(("127.0.0.1", http)).is_err() {
            continue;
        }
        // One client that came and went, for the closed-connections ring.
        let mut gone = TcpStream::connect(server.addr()).unwrap();
        gone.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        gone.write_all(b"CONNECT {\"verbose\":false,\"name\":\"gone\"}\r\nSUB x 1\r\nPING\r\n")
            .unwrap();
        let mut pong = [0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"PONG\r\n") {
            let n = gone.read(&mut pong).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&pong[..n]);
        }
        drop(gone);
        std::thread::sleep(Duration::from_millis(200));
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"CONNECT {\"verbose\":false,\"name\":\"mon\",\"lang\":\"rust\",\"version\":\"1\"}\r\nSUB foo 1\r\nSUB bar q 2\r\nPUB foo 5\r\nhello\r\nPING\r\n").unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b"PONG\r\n") {
            let n = c.read(&mut chunk).unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        return (server, http, c);
    }
}

#[test]
fn endpoints_report_what_happened() {
    let (_server, http, _client) = start(None);
    let (status, varz) = get(http, "varz");
    assert_eq!(status, 200);
    assert_eq!(varz["connections"], 1);
    assert_eq!(varz["in_msgs"], 1);
    assert_eq!(varz["out_msgs"], 1);
    assert_eq!(varz["in_bytes"], 5);
    // The client's two, and the system account's 43, as nats-server 2.9.10
    // counts its own (40 in $SYS, three imports in $G).
    assert_eq!(varz["subscriptions"], 2 + 43);
    assert_eq!(varz["version"], "2.9.10");
    assert_eq!(varz["http_port"], http);
    assert_eq!(varz["ping_interval"], 120_000_000_000u64);
    assert!(varz["mem"].as_u64().unwrap() > 0);
    let (_, connz) = get(http, "connz?subs=1");
    assert_eq!(connz["num_connections"], 1);
    let c = &connz["connections"][0];
    assert_eq!(c["name"], "mon");
    assert_eq!(c["lang"], "rust");
    assert_eq!(c["subscriptions"], 2);
    assert_eq!(c["subscriptions_list"], serde_json::json!(["bar", "foo"]));
    let (_, subsz) = get(http, "subsz?subs=1&test=foo");
    // Every account's sublist, the system account's 43 included.
    assert_eq!(subsz["num_subscriptions"], 2 + 43);
    assert_eq!(
        subsz["total"], 1,
        "test=foo keeps only the matching subscription"
    );
    assert_eq!(get(http, "healthz").1["status"], "ok");
    // Closed: the client that came and went (and the start-up probe's
    // connection, which carried no CONNECT).
    let (_, closed) = get(http, "connz?state=closed");
    let n_closed = closed["total"].as_u64().unwrap();
    let gone = closed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gone")
        .expect("the closed client");
    assert_eq!(gone["reason"], "Client Closed");
    assert!(gone["stop"].is_string());
    assert_eq!(gone["subscriptions"], 1);
    assert_eq!(
        get(http, "connz?state=all").1["total"].as_u64().unwrap(),
        n_closed + 1
    );
    assert_eq!(get(http, "nope").0, 404);
    let (_, varz) = get(http, "varz");
    assert_eq!(varz["http_req_stats"]["/varz"], 2);
    assert_eq!(varz["total_connections"].as_u64().unwrap(), n_closed + 1);
}

#[test]
fn every_endpoint_has_nats_servers_shape() {
    let Some(reference) = natrix_tests::reference_bin() else {
        assert!(
            std::env::var_os("NATRIX_REQUIRE_REFERENCE").is_none(),
            "nats-server is required but not installed"
        );
        eprintln!("nats-server not installed: shape comparison skipped");
        return;
    };
    let (_a, ours, _ca) = start(None);
    let (_b, theirs, _cb) = start(Some(&reference));
    let mut problems = Vec::new();
    for e in ENDPOINTS {
        let (s1, v1) = get(ours, e);
        let (s2, v2) = get(theirs, e);
        assert_eq!(s1, s2, "{e}: status");
        let (mut p1, mut p2) = (BTreeSet::new(), BTreeSet::new());
        paths(&v1, "", &mut p1);
        paths(&v2, "", &mut p2);
        let missing: Vec<_> = p2.difference(&p1).collect();
        // What nats-server 2.11 added and natrix shows as 2.15 does: the
        // JetStream API level.
        let newer = |p: &&String| e.starts_with("jsz") && p.as_str() == "api.level";
        let extra: Vec<_> = p1.difference(&p2).filter(|p| !newer(p)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!("/{e}: missing {missing:?}, extra {extra:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn prometheus_metrics_scrape() {
    let (_server, http, _client) = start(None);
    let (status, head, body) = get_text(http, "metrics");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut typed = BTreeSet::new();
    let mut samples = std::collections::BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let name = it.next().unwrap();
            assert!(matches!(it.next(), Some("gauge" | "counter")), "{line}");
            typed.insert(name.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let (name_labels, value) = line.rsplit_once(' ').unwrap();
            let name = name_labels.split('{').next().unwrap();
            assert!(typed.contains(name), "{name} has no TYPE line");
            assert!(name.starts_with("natrix_"), "{name}");
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            samples.insert(name_labels.to_string(), v);
        }
    }
    assert_eq!(samples["natrix_connections"], 1.0);
    assert_eq!(samples["natrix_subscriptions"], 2.0 + 43.0);
    assert_eq!(samples["natrix_in_messages_total"], 1.0);
    assert_eq!(samples["natrix_out_messages_total"], 1.0);
    assert_eq!(samples["natrix_in_bytes_total"], 5.0);
    assert!(samples["natrix_resident_memory_bytes"] > 0.0);
    assert!(typed.iter().filter(|n| n.ends_with("_total")).count() >= 5);
}
