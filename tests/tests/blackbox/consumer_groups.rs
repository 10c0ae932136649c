//! Consumers shared by several processes, through the official Rust
//! client: priority groups (a pinned client, unpinned by an operator),
//! `CONSUMER.RESET`, side by side with nats-server 2.15.1; and natrix's
//! key-partitioned groups, which nats-server serves as a plain shared
//! consumer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PriorityPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use natrix_tests::{ServerProcess, test_dir};

// Each `connect` is a client of its own: a process, as far as the server
// can tell.
use super::jetstream::{context as connect, start};

/// natrix, then nats-server 2.15.1 when it is installed (2.9.10 has no
/// priority groups).
fn servers() -> Vec<(&'static str, PathBuf)> {
    let mut all = super::jetstream::servers();
    all.retain(|(name, _)| !name.ends_with("2.9.10"));
    all
}

async fn publish(js: &jetstream::Context, subject: String, body: String) {
    js.publish(subject, body.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn pinned_scenario(server: &ServerProcess) -> Vec<String> {
    let mut seen = Vec::new();
    let js = connect(server).await;
    let s = js
        .create_stream(stream::Config {
            name: "JOBS".into(),
            subjects: vec!["jobs.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 1..=6 {
        publish(&js, format!("jobs.{i}"), format!("j{i}")).await;
    }
    let config = pull::Config {
        durable_name: Some("P".into()),
        ack_policy: AckPolicy::Explicit,
        priority_policy: PriorityPolicy::PinnedClient,
        priority_groups: vec!["A".into()],
        ..Default::default()
    };
    s.create_consumer(config).await.unwrap();
    // The first client pulls: it is pinned, and gets everything.
    let first = connect(server).await;
    let c1: PullConsumer = first
        .get_stream("JOBS")
        .await
        .unwrap()
        .get_consumer("P")
        .await
        .unwrap();
    let mut m1 = c1
        .stream()
        .group("A")
        .max_messages_per_batch(2)
        .messages()
        .await
        .unwrap();
    for _ in 0..2 {
        let m = m1.next().await.unwrap().unwrap();
        seen.push(format!("first got {}", m.subject));
        m.double_ack().await.unwrap();
    }
    let mut c = s.get_consumer::<pull::Config>("P").await.unwrap();
    let info = c.info().await.unwrap();
    let pinned = &info.priority_groups[0];
    seen.push(format!(
        "group {} pinned {}",
        pinned.group,
        pinned.pinned_client_id.is_some()
    ));
    // A second client waits while the first holds the pin.
    let second = connect(server).await;
    let c2: PullConsumer = second
        .get_stream("JOBS")
        .await
        .unwrap()
        .get_consumer("P")
        .await
        .unwrap();
    let mut m2 = c2
        .stream()
        .group("A")
        .max_messages_per_batch(1)
        .expires(Duration::from_secs(2))
        .messages()
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(700), m2.next()).await;
    seen.push(format!("second waits {}", waited.is_err()));
    // An operator unpins; the first stops pulling; the second takes over.
    drop(m1);
    s.unpin_consumer("P", "A").await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), m2.next())
        .await
        .expect("the second client is served")
        .unwrap()
        .unwrap();
    seen.push(format!("second got {}", m.subject));
    m.double_ack().await.unwrap();
    drop(m2);
    // A reset with no sequence goes back to just after the ack floor.
    let r = c.reset(None).await.unwrap();
    seen.push(format!(
        "reset to {} delivered {} ack floor {}",
        r.reset_seq, r.info.delivered.stream_sequence, r.info.ack_floor.stream_sequence
    ));
    let r = c.reset(Some(2)).await.unwrap();
    seen.push(format!("reset to {}", r.reset_seq));
    seen
}

#[tokio::test]
async fn a_pinned_client_is_unpinned_and_a_consumer_reset_as_on_nats_server() {
    let mut results = Vec::new();
    for (name, bin) in servers() {
        let dir = test_dir("groups", &format!("pinned-{}", name.replace(' ', "-")));
        let server = start(&bin, &dir);
        results.push((name, pinned_scenario(&server).await));
    }
    let (first, expected) = &results[0];
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
    assert_eq!(expected[0], "first got jobs.1", "{expected:?}");
    assert_eq!(expected[3], "second waits true", "{expected:?}");
    // The first client had pulled 3 and 4 ahead: they wait for their ack wait.
    assert_eq!(expected[4], "second got jobs.5", "{expected:?}");
}

/// Two processes consume one partitioned group; what each got, as
/// `(process, key, stream seq)`.
async fn partitioned_run(server: &ServerProcess, messages: usize) -> Vec<(usize, String, u64)> {
    let js = connect(server).await;
    let s = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let metadata = [("natrix.partitions", "8"), ("natrix.partition_key", "2")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    s.create_consumer(pull::Config {
        durable_name: Some("G".into()),
        ack_policy: AckPolicy::Explicit,
        metadata,
        ..Default::default()
    })
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for process in 0..2 {
        let js = connect(server).await;
        let tx = tx.clone();
        let c = group_g(&js).await;
        let mut msgs = c.messages().await.unwrap();
        workers.push(tokio::spawn(async move {
            while let Some(Ok(m)) = msgs.next().await {
                let seq = m.info().unwrap().stream_sequence;
                let key = m.subject.split('.').nth(1).unwrap().to_string();
                let _ = tx.send((process, key, seq));
                m.ack().await.unwrap();
            }
        }));
    }
    // Both are members (their pulls waiting) before the first message.
    let mut c = group_g(&js).await;
    natrix_tests::within("both pulls waiting", async {
        while c.info().await.unwrap().num_waiting < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for i in 0..messages {
        publish(&js, format!("orders.c{}.created", i % 20), format!("{i}")).await;
    }
    let mut got = Vec::new();
    while got.len() < messages {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(one)) => got.push(one),
            _ => break,
        }
    }
    for w in workers {
        w.abort();
    }
    got
}

/// Consumer `G` of stream `ORDERS`.
async fn group_g(js: &jetstream::Context) -> PullConsumer {
    js.get_stream("ORDERS")
        .await
        .unwrap()
        .get_consumer("G")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_partitioned_group_gives_each_key_to_one_process_in_order() {
    let dir = test_dir("groups", "partitioned-natrix");
    let server = start(&natrix_tests::natrix_bin(), &dir);
    let got = partitioned_run(&server, 200).await;
    assert_eq!(got.len(), 200, "every message once");
    let mut owners: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut seqs: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (process, key, seq) in &got {
        owners.entry(key).or_default().insert(*process);
        seqs.entry(key).or_default().push(*seq);
    }
    for (key, who) in &owners {
        assert_eq!(who.len(), 1, "{key} went to one process: {who:?}");
    }
    for (key, s) in &seqs {
        assert!(s.windows(2).all(|w| w[0] < w[1]), "{key} in order: {s:?}");
    }
    let used: BTreeSet<usize> = owners.values().flatten().copied().collect();
    assert_eq!(used.len(), 2, "both processes got keys");
    // nats-server ignores the metadata: a plain shared consumer there.
    if let Some(reference) = natrix_tests::reference_215() {
        let dir = test_dir("groups", "partitioned-nats-server");
        let server = start(&reference, &dir);
        assert_eq!(partitioned_run(&server, 200).await.len(), 200);
    }
}
