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
        let outcome = configure(&client, "CREATE", name, extra).await;
        seen.push(format!("create {name}: {outcome}"));
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
        let outcome = configure(
            &client,
            "UPDATE",
            name,
            &format!(r#","compression":"{to}""#),
        )
        .await;
        seen.push(format!("update {name} to {to}: {outcome}"));
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

/// Creates or updates (`verb`) stream `name` on `<name>.>` with `extra`
/// configuration: the outcome and the compression answered.
async fn configure(client: &async_nats::Client, verb: &str, name: &str, extra: &str) -> String {
    let subjects = name.to_lowercase();
    let body = format!(r#"{{"name":"{name}","subjects":["{subjects}.>"]{extra}}}"#);
    let subject = format!("$JS.API.STREAM.{verb}.{name}");
    let answer = raw_request(client, &subject, &[], &body).await;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    format!("{} {}", api_outcome(&answer), v["config"]["compression"])
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

/// A stream with a gap and a consumer part-way through it.
async fn backup_source(client: &async_nats::Client) {
    let create = r#"{"name":"S","subjects":["s.>"],"compression":"s2"}"#;
    let answer = raw_request(client, "$JS.API.STREAM.CREATE.S", &[], create).await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    for i in 0..300usize {
        let headers: &[(&str, &str)] = if i % 3 == 0 { &[("X-N", "three")] } else { &[] };
        let ack = raw_request(client, &format!("s.{}", i % 5), headers, &compressible(i)).await;
        assert!(ack.contains(r#""seq""#), "{ack}");
    }
    let answer = raw_request(client, "$JS.API.STREAM.MSG.DELETE.S", &[], r#"{"seq":5}"#).await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    let consumer = r#"{"stream_name":"S","config":{"durable_name":"D","ack_policy":"explicit"}}"#;
    let answer = raw_request(client, "$JS.API.CONSUMER.CREATE.S.D", &[], consumer).await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    // Ten delivered, the first four acknowledged.
    let inbox = client.new_inbox();
    let mut pulled = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(
            "$JS.API.CONSUMER.MSG.NEXT.S.D",
            inbox,
            r#"{"batch":10}"#.into(),
        )
        .await
        .unwrap();
    for i in 0..10 {
        let m = natrix_tests::within("a pulled message", futures::StreamExt::next(&mut pulled))
            .await
            .unwrap();
        if i < 4 {
            client
                .publish(m.reply.unwrap(), "+ACK".into())
                .await
                .unwrap();
        }
    }
    crate::synced(client).await;
}

/// Takes a snapshot of `stream` in pieces of `chunk` bytes, acknowledging
/// each: the bytes, and what was seen on the way.
async fn snapshot(
    client: &async_nats::Client,
    stream: &str,
    chunk: usize,
) -> (Vec<u8>, Vec<String>) {
    let mut seen = Vec::new();
    let deliver = client.new_inbox();
    let mut pieces = client.subscribe(deliver.clone()).await.unwrap();
    let body = format!(
        r#"{{"deliver_subject":"{deliver}","chunk_size":{chunk},"window_size":{}}}"#,
        chunk * 2
    );
    let answer = raw_request(
        client,
        &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
        &[],
        &body,
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    seen.push(format!(
        "snapshot {stream}: {} {} messages {} consumers {}",
        v["type"],
        api_outcome(&answer),
        v["state"]["messages"],
        v["state"]["consumer_count"]
    ));
    let mut bytes = Vec::new();
    let (mut full, mut partial) = (0, 0);
    loop {
        let m = natrix_tests::within("a snapshot piece", futures::StreamExt::next(&mut pieces))
            .await
            .unwrap();
        if m.payload.is_empty() {
            let status = m.status.map(|s| s.as_u16().to_string()).unwrap_or_default();
            seen.push(format!("end: status {status:?}"));
            break;
        }
        bytes.extend_from_slice(&m.payload);
        match m.reply {
            Some(reply) => {
                assert_eq!(m.payload.len(), chunk);
                assert!(
                    reply.starts_with(&format!("$JS.SNAPSHOT.ACK.{stream}.")),
                    "{reply}"
                );
                full += 1;
                client.publish(reply, "".into()).await.unwrap();
            }
            None => partial += 1,
        }
    }
    seen.push(format!(
        "pieces: {} full, {partial} partial",
        if full > 0 { "some" } else { "no" }
    ));
    (bytes, seen)
}

/// Restores `bytes` as stream `name` (configuration `config`) in pieces
/// of 10,000 bytes: what was seen.
async fn restore(
    client: &async_nats::Client,
    name: &str,
    config: &str,
    bytes: &[u8],
) -> Vec<String> {
    let mut seen = Vec::new();
    let (v, answer, deliver) = restore_request(client, name, config).await;
    seen.push(format!(
        "restore {name}: {} {} deliver {}",
        v["type"],
        api_outcome(&answer),
        deliver.starts_with(&format!("$JS.SNAPSHOT.RESTORE.{name}."))
    ));
    if deliver.is_empty() {
        return seen;
    }
    for piece in bytes.chunks(10_000) {
        let m = client
            .request(deliver.clone(), piece.to_vec().into())
            .await
            .unwrap();
        assert!(
            m.payload.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&m.payload)
        );
    }
    let m = client.request(deliver, "".into()).await.unwrap();
    let answer = String::from_utf8_lossy(&m.payload).into_owned();
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    let st = &v["state"];
    seen.push(format!(
        "restored {name}: {} {} messages {} first {} last {} deleted {} consumers {}",
        v["type"],
        api_outcome(&answer),
        st["messages"],
        st["first_seq"],
        st["last_seq"],
        st["num_deleted"],
        st["consumer_count"]
    ));
    seen
}

/// Asks to restore stream `name` with `config`: the answer, as JSON and
/// as text, and the subject to send the backup to.
async fn restore_request(
    client: &async_nats::Client,
    name: &str,
    config: &str,
) -> (serde_json::Value, String, String) {
    let body = format!(r#"{{"config":{config}}}"#);
    let subject = format!("$JS.API.STREAM.RESTORE.{name}");
    let answer = raw_request(client, &subject, &[], &body).await;
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    let deliver = v["deliver_subject"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (v, answer, deliver)
}

/// What a restored stream S holds: messages by sequence, and consumer D.
async fn restored_contents(client: &async_nats::Client) -> Vec<String> {
    let mut seen = Vec::new();
    for seq in [1, 4, 5, 6, 300] {
        let answer = raw_request(
            client,
            "$JS.API.STREAM.MSG.GET.S",
            &[],
            &format!(r#"{{"seq":{seq}}}"#),
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        let payload = get(client, "S", seq).await;
        seen.push(format!(
            "S {seq}: {} {} hdrs {} intact {}",
            api_outcome(&answer),
            v["message"]["subject"],
            v["message"]["hdrs"].is_string(),
            payload == compressible(seq as usize - 1)
        ));
    }
    let info = raw_request(client, "$JS.API.CONSUMER.INFO.S.D", &[], "").await;
    let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
    seen.push(format!(
        "D: delivered {} ack floor {} ack pending {} pending {}",
        v["delivered"]["stream_seq"],
        v["ack_floor"]["stream_seq"],
        v["num_ack_pending"],
        v["num_pending"]
    ));
    // A publish after the restore follows the restored sequences.
    let ack = raw_request(client, "s.new", &[], "after").await;
    seen.push(format!("publish after restore: {ack}"));
    seen
}

const S_CONFIG: &str = r#"{"name":"S","subjects":["s.>"],"compression":"s2"}"#;

/// Snapshots S, its errors, deletes S and restores it from the bytes:
/// what was seen, and the bytes.
async fn backup_scenario(server: &ServerProcess) -> (Vec<String>, Vec<u8>) {
    let client = api_client(server).await;
    backup_source(&client).await;
    let mut advisories = client
        .subscribe("$JS.EVENT.ADVISORY.STREAM.>")
        .await
        .unwrap();
    crate::synced(&client).await;
    let mut seen = Vec::new();
    for (stream, body) in [
        ("S", ""),
        ("S", "{}"),
        ("NONE", r#"{"deliver_subject":"x"}"#),
        ("S", r#"{"deliver_subject":"a.*"}"#),
    ] {
        let answer = raw_request(
            &client,
            &format!("$JS.API.STREAM.SNAPSHOT.{stream}"),
            &[],
            body,
        )
        .await;
        seen.push(format!(
            "snapshot {stream} {body}: {}",
            api_outcome(&answer)
        ));
    }
    let (bytes, s) = snapshot(&client, "S", 4096).await;
    seen.extend(s);
    // A stream that exists cannot be restored over.
    seen.extend(restore(&client, "S", S_CONFIG, &bytes).await);
    let answer = raw_request(&client, "$JS.API.STREAM.RESTORE.S", &[], "").await;
    seen.push(format!("restore, no body: {}", api_outcome(&answer)));
    let answer = raw_request(&client, "$JS.API.STREAM.DELETE.S", &[], "").await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    seen.extend(restore(&client, "S", S_CONFIG, &bytes).await);
    crate::synced(&client).await;
    seen.push(format!(
        "advisories: {}",
        advisories_seen(&mut advisories).await
    ));
    seen.extend(restored_contents(&client).await);
    (seen, bytes)
}

/// The advisories that came so far, in order: each one's type, and which
/// of its fields are there.
async fn advisories_seen(sub: &mut async_nats::Subscriber) -> String {
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        futures::StreamExt::next(sub),
    )
    .await
    {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
        let kind = v["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("io.nats.jetstream.advisory.v1.");
        let mut fields: Vec<&str> = v
            .as_object()
            .map(|o| {
                o.keys()
                    .map(String::as_str)
                    .filter(|k| !matches!(*k, "type" | "id" | "timestamp"))
                    .collect()
            })
            .unwrap_or_default();
        fields.sort_unstable();
        out.push(format!("{} {kind} {fields:?}", m.subject));
    }
    out.join("; ")
}

#[tokio::test]
async fn snapshots_restore_as_on_nats_server_and_across_servers() {
    let mut results = Vec::new();
    let mut backups = Vec::new();
    let mut running = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // 2.15's snapshot format
        }
        let dir = test_dir("js", &format!("backup-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        let (seen, bytes) = backup_scenario(&server).await;
        results.push((name, seen));
        backups.push(bytes);
        running.push((name, server));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    let all = expected.join("\n");
    for line in [
        r#"snapshot S : 10003 "bad request""#,
        r#"snapshot NONE {"deliver_subject":"x"}: 10059 "stream not found""#,
        r#"10015 "deliver subject not valid""#,
        "end: status \"204\"",
        "restore S: \"io.nats.jetstream.api.v1.stream_restore_response\" 10130",
        "restored S: \"io.nats.jetstream.api.v1.stream_create_response\" ok messages 299 first 1 last 300 deleted 1 consumers 1",
        "S 5: 10037",
        "S 6: ok \"s.0\" hdrs false intact true",
        "D: delivered 11 ack floor 5 ack pending 6 pending 289",
        r#"publish after restore: {"stream":"S","seq":301}"#,
        r#"$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_CREATE.S snapshot_create ["client", "state", "stream"]"#,
        r#"$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_COMPLETE.S snapshot_complete ["client", "end", "start", "stream"]"#,
        r#"$JS.EVENT.ADVISORY.STREAM.RESTORE_COMPLETE.S restore_complete ["bytes", "client", "end", "start", "stream"]"#,
    ] {
        assert!(all.contains(line), "{line:?} not in\n{all}");
    }
    // Each server restores the other's backup, with the same outcome.
    for (i, (name, server)) in running.iter().enumerate() {
        let other = &backups[(i + 1) % backups.len()];
        let client = api_client(server).await;
        let answer = raw_request(&client, "$JS.API.STREAM.DELETE.S", &[], "").await;
        assert_eq!(api_outcome(&answer), "ok", "{name}: {answer}");
        let mut seen = restore(&client, "S", S_CONFIG, other).await;
        seen.extend(restored_contents(&client).await);
        let expected: Vec<&String> = expected
            .iter()
            .filter(|l| !l.starts_with("advisories:"))
            .collect();
        let want: Vec<&String> = expected
            .iter()
            .skip(expected.len() - seen.len())
            .copied()
            .collect();
        assert_eq!(
            seen.iter().collect::<Vec<_>>(),
            want,
            "{name} restoring the other's backup"
        );
    }
}

/// Whether a request to `subject` finds no one: a restore that is gone.
async fn nobody_at(client: &async_nats::Client, subject: &str) -> String {
    match client.request(subject.to_string(), "x".into()).await {
        Ok(m) => format!("answered {:?}", String::from_utf8_lossy(&m.payload)),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// A larger stream: a stalled window, a whole snapshot in default pieces
/// restored under another name, and restores that are dropped.
async fn large_backup_scenario(server: &ServerProcess) -> Vec<String> {
    let client = api_client(server).await;
    let js = async_nats::jetstream::new(client.clone());
    let create = r#"{"name":"B","subjects":["b.>"]}"#;
    let answer = raw_request(&client, "$JS.API.STREAM.CREATE.B", &[], create).await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    let mut acks = Vec::new();
    for i in 0..3000usize {
        acks.push(
            js.publish(format!("b.{}", i % 7), compressible(i).into())
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
    let mut seen = Vec::new();
    // No acknowledgement: two pieces fill the window, then 408.
    let deliver = client.new_inbox();
    let mut pieces = client.subscribe(deliver.clone()).await.unwrap();
    let body = format!(r#"{{"deliver_subject":"{deliver}","chunk_size":1024,"window_size":2048}}"#);
    let answer = raw_request(&client, "$JS.API.STREAM.SNAPSHOT.B", &[], &body).await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    let mut got = 0;
    loop {
        let m = natrix_tests::within("a snapshot piece", futures::StreamExt::next(&mut pieces))
            .await
            .unwrap();
        if m.payload.is_empty() {
            let status = m.status.map(|s| s.as_u16().to_string()).unwrap_or_default();
            seen.push(format!("unacknowledged: {got} pieces, then {status:?}"));
            break;
        }
        got += 1;
    }
    let (bytes, s) = snapshot(&client, "B", 128 * 1024).await;
    seen.extend(s);
    let config = r#"{"name":"B2","subjects":["b2.>"]}"#;
    seen.extend(restore(&client, "B2", config, &bytes).await);
    seen.push(format!(
        "B2 2999 intact: {}",
        get(&client, "B2", 2999).await == compressible(2998)
    ));
    // A piece that is not a request ends a restore; so do 5 s of silence.
    for (name, piece) in [("B3", true), ("B4", false)] {
        let config = format!(
            r#"{{"name":"{name}","subjects":["{}.>"]}}"#,
            name.to_lowercase()
        );
        let (_, _, deliver) = restore_request(&client, name, &config).await;
        if piece {
            client
                .publish(deliver.clone(), bytes[..100].to_vec().into())
                .await
                .unwrap();
            crate::synced(&client).await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(5600)).await;
        }
        seen.push(format!(
            "{name} afterwards: {}",
            nobody_at(&client, &deliver).await
        ));
        let info = raw_request(&client, &format!("$JS.API.STREAM.INFO.{name}"), &[], "").await;
        seen.push(format!("{name}: {}", api_outcome(&info)));
    }
    seen.extend(restored_mirror(&client).await);
    seen
}

/// A mirror backed up, deleted and restored goes on mirroring.
async fn restored_mirror(client: &async_nats::Client) -> Vec<String> {
    let mut seen = Vec::new();
    for (name, body) in [
        ("O", r#"{"name":"O","subjects":["o.>"]}"#),
        ("M", r#"{"name":"M","mirror":{"name":"O"}}"#),
    ] {
        let answer = raw_request(client, &format!("$JS.API.STREAM.CREATE.{name}"), &[], body).await;
        assert_eq!(api_outcome(&answer), "ok", "{answer}");
    }
    let publish = |n: usize| async move {
        for i in 0..n {
            let ack = raw_request(client, "o.1", &[], &format!("o{i}")).await;
            assert!(ack.contains(r#""seq""#), "{ack}");
        }
    };
    publish(3).await;
    seen.push(format!(
        "mirror before: {}",
        messages_within(client, "M", 3).await
    ));
    let (bytes, _) = snapshot(client, "M", 4096).await;
    let answer = raw_request(client, "$JS.API.STREAM.DELETE.M", &[], "").await;
    assert_eq!(api_outcome(&answer), "ok", "{answer}");
    let restored = restore(client, "M", r#"{"name":"M","mirror":{"name":"O"}}"#, &bytes).await;
    seen.push(restored.join(" / "));
    publish(2).await;
    seen.push(format!(
        "mirror after: {}",
        messages_within(client, "M", 5).await
    ));
    seen
}

/// Stream `name`'s message count once it reaches `want`, or after 5 s.
async fn messages_within(client: &async_nats::Client, name: &str, want: u64) -> u64 {
    let mut n = 0;
    for _ in 0..50 {
        let info = raw_request(client, &format!("$JS.API.STREAM.INFO.{name}"), &[], "").await;
        let v: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
        n = v["state"]["messages"].as_u64().unwrap_or(0);
        if n >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    n
}

#[tokio::test]
async fn large_snapshots_stalls_and_dropped_restores_as_on_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // 2.15's snapshot format
        }
        let dir = test_dir("js", &format!("backup-large-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        results.push((name, large_backup_scenario(&server).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    let all = expected.join("\n");
    for line in [
        r#"unacknowledged: 2 pieces, then "408""#,
        "messages 3000 first 1 last 3000 deleted null consumers 0",
        "B2 2999 intact: true",
        "B3 afterwards: NoResponders",
        "B4 afterwards: NoResponders",
        "mirror before: 3",
        "mirror after: 5",
    ] {
        assert!(all.contains(line), "{line:?} not in\n{all}");
    }
}
