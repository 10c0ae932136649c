//! The official Rust client, async-nats, against the `natrix` binary.

use std::time::Duration;

use futures::StreamExt;
use natrix_tests::ServerProcess;

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

#[tokio::test]
async fn pub_sub_and_wildcards() {
    let server = ServerProcess::natrix(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut exact = client.subscribe("orders.new").await.unwrap();
    let mut star = client.subscribe("orders.*").await.unwrap();
    let mut full = client.subscribe("orders.>").await.unwrap();
    client.flush().await.unwrap();
    client.publish("orders.new", "one".into()).await.unwrap();
    client
        .publish("orders.eu.paid", "two".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    assert_eq!(next(&mut exact).await.payload, "one");
    assert_eq!(next(&mut star).await.payload, "one");
    assert_eq!(next(&mut full).await.payload, "one");
    let m = next(&mut full).await;
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("orders.eu.paid", &b"two"[..])
    );
    assert_eq!(client.server_info().version, "2.9.10");
}

#[tokio::test]
async fn queue_group_delivers_each_message_once() {
    let server = ServerProcess::natrix(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            client
                .queue_subscribe("work", "workers".into())
                .await
                .unwrap(),
        );
    }
    client.flush().await.unwrap();
    let n = 300;
    for i in 0..n {
        client.publish("work", format!("{i}").into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    for m in members.iter_mut() {
        let mut count = 0;
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(300), m.next()).await {
            seen.push(String::from_utf8(msg.payload.to_vec()).unwrap());
            count += 1;
        }
        per_member.push(count);
    }
    seen.sort_by_key(|s| s.parse::<u32>().unwrap());
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "every message exactly once across the group");
    assert!(
        per_member.iter().all(|&c| c > 0),
        "spread over members: {per_member:?}"
    );
}

#[tokio::test]
async fn request_reply_and_no_responders() {
    let server = ServerProcess::natrix(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut svc = client.subscribe("svc.echo").await.unwrap();
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(req) = svc.next().await {
            let reply = req.reply.unwrap();
            responder.publish(reply, req.payload).await.unwrap();
        }
    });
    client.flush().await.unwrap();
    let resp = client.request("svc.echo", "ping".into()).await.unwrap();
    assert_eq!(resp.payload, "ping");
    let err = client.request("svc.nobody", "x".into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn headers_round_trip() {
    let server = ServerProcess::natrix(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut sub = client.subscribe("h").await.unwrap();
    client.flush().await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Trace-Id", "abc123");
    headers.append("Multi", "1");
    headers.append("Multi", "2");
    client
        .publish_with_headers("h", headers, "body".into())
        .await
        .unwrap();
    let m = next(&mut sub).await;
    let h = m.headers.expect("headers");
    assert_eq!(h.get("Trace-Id").unwrap().as_str(), "abc123");
    assert_eq!(h.get_all("Multi").count(), 2);
    assert_eq!(m.payload, "body");
}

#[tokio::test]
async fn auto_unsubscribe_after_n() {
    let server = ServerProcess::natrix(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut sub = client.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    client.flush().await.unwrap();
    for i in 0..10 {
        client
            .publish("limited", format!("{i}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), sub.next()).await {
        got.push(m.payload);
    }
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn user_password_and_token() {
    let server = ServerProcess::natrix(&["--user", "alice", "--pass", "s3cret"]);
    let ok = async_nats::ConnectOptions::new()
        .user_and_password("alice".into(), "s3cret".into())
        .connect(server.url())
        .await;
    assert!(ok.is_ok());
    let bad = async_nats::ConnectOptions::new()
        .user_and_password("alice".into(), "wrong".into())
        .connection_timeout(Duration::from_secs(2));
    let bad = tokio::time::timeout(Duration::from_secs(5), bad.connect(server.url())).await;
    assert!(!matches!(bad, Ok(Ok(_))), "wrong password refused");
    let server = ServerProcess::natrix(&["--auth", "t0ken"]);
    let ok = async_nats::ConnectOptions::with_token("t0ken".into())
        .connect(server.url())
        .await;
    assert!(ok.is_ok());
}

#[tokio::test]
async fn large_payload_and_max_payload() {
    let server = ServerProcess::natrix(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    assert_eq!(client.server_info().max_payload, 1024 * 1024);
    let mut sub = client.subscribe("big").await.unwrap();
    client.flush().await.unwrap();
    let body = vec![7u8; 1024 * 1024];
    client.publish("big", body.clone().into()).await.unwrap();
    assert_eq!(next(&mut sub).await.payload.len(), body.len());
    // Over the limit: the client refuses before sending.
    assert!(
        client
            .publish("big", vec![0u8; 1024 * 1024 + 1].into())
            .await
            .is_err()
    );
}
