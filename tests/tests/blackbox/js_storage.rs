//! How a stream is kept: compression, side by side with nats-server
//! 2.15.1, and what natrix writes to its disk for it.

use std::path::Path;

use natrix_tests::{ServerProcess, test_dir};

use crate::jetstream::{api_client, api_outcome, raw_request, servers, start};

/// A payload that compresses well: JSON-like text, 1,200 bytes.
fn compressible(i: usize) -> String {
    let mut s = String::new();
    while s.len() < 1200 {
        s.push_str(&format!(r#"{{"order":{i},"item":"widget","qty":1}},"#));
    }
    s.truncate(1200);
    s
}

/// Creates, updates and publishes to streams with and without
/// compression; what the server answered.
async fn compression_scenario(server: &ServerProcess) -> Vec<String> {
    let client = api_client(server).await;
    let mut seen = Vec::new();
    for (name, extra) in [
        ("Z", r#","compression":"s2""#),
        ("P", r#","compression":"none""#),
        ("M", r#","compression":"s2","storage":"memory""#),
        ("BAD1", r#","compression":"S2""#),
        ("BAD2", r#","compression":"zstd""#),
    ] {
        let subjects = name.to_lowercase();
        let body = format!(r#"{{"name":"{name}","subjects":["{subjects}.>"]{extra}}}"#);
        let answer = raw_request(
            &client,
            &format!("$JS.API.STREAM.CREATE.{name}"),
            &[],
            &body,
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        seen.push(format!(
            "create {name}: {} {}",
            api_outcome(&answer),
            v["config"]["compression"]
        ));
    }
    for i in 0..40 {
        for stream in ["z", "p", "m"] {
            let ack = raw_request(
                &client,
                &format!("{stream}.{}", i % 4),
                &[],
                &compressible(i),
            )
            .await;
            assert!(ack.contains(r#""seq""#), "{stream}: {ack}");
        }
    }
    for name in ["Z", "P", "M"] {
        let info = raw_request(&client, &format!("$JS.API.STREAM.INFO.{name}"), &[], "").await;
        let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
        seen.push(format!("{name}: {} messages", v["state"]["messages"]));
        let got = get(&client, name, 17).await;
        seen.push(format!("{name} 17 intact: {}", got == compressible(16)));
    }
    // Either way, by update; the messages stay readable.
    for (name, to) in [("Z", "none"), ("P", "s2"), ("BAD3", "bogus")] {
        let subjects = name.to_lowercase();
        let body =
            format!(r#"{{"name":"{name}","subjects":["{subjects}.>"],"compression":"{to}"}}"#);
        let answer = raw_request(
            &client,
            &format!("$JS.API.STREAM.UPDATE.{name}"),
            &[],
            &body,
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        seen.push(format!(
            "update {name} to {to}: {} {}",
            api_outcome(&answer),
            v["config"]["compression"]
        ));
    }
    for name in ["Z", "P"] {
        let stream = name.to_lowercase();
        let ack = raw_request(&client, &format!("{stream}.9"), &[], &compressible(99)).await;
        assert!(ack.contains(r#""seq":41"#), "{name}: {ack}");
        seen.push(format!(
            "{name} after update: 1 intact {}, 41 intact {}",
            get(&client, name, 1).await == compressible(0),
            get(&client, name, 41).await == compressible(99)
        ));
    }
    seen
}

/// The payload of a stream's message, by sequence.
async fn get(client: &async_nats::Client, stream: &str, seq: u64) -> String {
    let answer = raw_request(
        client,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        &[],
        &format!(r#"{{"seq":{seq}}}"#),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    let data = v["message"]["data"].as_str().unwrap_or_default();
    let bytes = data_encoding::BASE64
        .decode(data.as_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Bytes of the files under `dir` whose path contains `part`.
fn stored_bytes(dir: &Path, part: &str) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.to_string_lossy().contains(part) {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[tokio::test]
async fn compression_as_on_nats_server_and_smaller_on_disk() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // no compression before 2.10
        }
        let dir = test_dir("js", &format!("compress-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        results.push((name, compression_scenario(&server).await));
        if name == "natrix" {
            // natrix writes every message as it comes: the compressed
            // stream's files are a fraction of the plain one's.
            let (z, p) = (stored_bytes(&dir, ".Z/"), stored_bytes(&dir, ".P/"));
            assert!(z > 0 && z * 3 < p, "compressed {z} bytes, plain {p}");
            drop(server); // SIGKILL
            let server = start(&bin, &dir);
            let client = api_client(&server).await;
            for seq in [1, 17, 40] {
                assert_eq!(get(&client, "Z", seq).await, compressible(seq as usize - 1));
            }
            assert_eq!(get(&client, "Z", 41).await, compressible(99));
        }
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    let all = expected.join("\n");
    for line in [
        r#"create Z: ok "s2""#,
        r#"create M: ok "s2""#,
        r#"create BAD1: 10025 "invalid JSON: unknown compression algorithm" null"#,
        "Z 17 intact: true",
        r#"update P to s2: ok "s2""#,
        "Z after update: 1 intact true, 41 intact true",
    ] {
        assert!(all.contains(line), "{line:?} not in\n{all}");
    }
}
