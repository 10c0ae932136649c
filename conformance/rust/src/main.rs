//! The Rust client's side of natrix's conformance suite: one program that
//! runs one scenario from `conformance/scenarios` with the official Rust
//! client, `async-nats`, against the server at `$NATS_URL`.
//!
//! It is not a test of natrix's internals and it starts no server: the
//! suite's runner (`conformance/run`) starts natrix or nats-server, runs this
//! program once per scenario and reads its exit code (0 pass, 1 fail, 77 not
//! applicable to this client, 2 unknown scenario). On failure it prints what
//! the client saw and what it expected.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, HeaderMap, Message, Subscriber, jetstream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

/// What a scenario ended with, when it did not fail.
enum Outcome {
    Pass,
    NotApplicable(&'static str),
}

type Verdict = Result<Outcome, String>;

const WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("usage: natrix-conformance <scenario>   (server at $NATS_URL)");
        return ExitCode::from(2);
    };
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    // One thread: the slow consumer scenario stalls it on purpose.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let result = match name.as_str() {
            "connect_info" => connect_info(&url).await,
            "pub_sub" => pub_sub(&url).await,
            "wildcards" => wildcards(&url).await,
            "queue_groups" => queue_groups(&url).await,
            "request_reply" => request_reply(&url).await,
            "no_responders" => no_responders(&url).await,
            "headers" => headers(&url).await,
            "auto_unsubscribe" => auto_unsubscribe(&url).await,
            "drain" => drain(&url).await,
            "flush_ping" => flush_ping(&url).await,
            "max_payload" => max_payload(&url).await,
            "reconnect" => reconnect(&url).await,
            "cluster_failover" => cluster_failover(&url).await,
            "slow_consumer" => slow_consumer(&url).await,
            "auth_user_pass" => auth_user_pass(&url).await,
            "auth_token" => auth_token(&url).await,
            "verbose_pedantic" => Ok(Outcome::NotApplicable(
                "async-nats has no option to turn on verbose or pedantic",
            )),
            "large_payload" => large_payload(&url).await,
            "many_subscriptions" => many_subscriptions(&url).await,
            "no_echo" => no_echo(&url).await,
            "burst" => burst(&url).await,
            "subjects" => subjects(&url).await,
            "keepalive" => keepalive(&url).await,
            "control_line" => control_line(&url).await,
            "tls" => tls(&url).await,
            "nkeys" => nkeys(&url).await,
            "jetstream" => jetstream(&url).await,
            "kv" => kv(&url).await,
            "js_consumers" => js_consumers(&url).await,
            "kv_watch" => kv_watch(&url).await,
            "object_store" => object_store(&url).await,
            _ => {
                println!("unknown scenario {name}");
                return None;
            }
        };
        Some(result)
    });
    match result {
        None => ExitCode::from(2),
        Some(Ok(Outcome::Pass)) => {
            println!("ok {name}");
            ExitCode::SUCCESS
        }
        Some(Ok(Outcome::NotApplicable(why))) => {
            println!("n/a {name}: {why}");
            ExitCode::from(77)
        }
        Some(Err(e)) => {
            println!("FAIL {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---- helpers ---------------------------------------------------------------

/// Fails with "what: saw X, expected Y" unless equal.
fn check<T: std::fmt::Debug + PartialEq>(what: &str, saw: T, expected: T) -> Result<(), String> {
    if saw == expected {
        Ok(())
    } else {
        Err(format!("{what}: saw {saw:?}, expected {expected:?}"))
    }
}

fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

async fn within<T>(what: &str, d: Duration, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(d, f)
        .await
        .map_err(|_| format!("{what}: nothing after {d:?}"))
}

async fn connect(url: &str) -> Result<Client, String> {
    connect_with(url, ConnectOptions::new()).await
}

async fn connect_with(url: &str, opts: ConnectOptions) -> Result<Client, String> {
    within("connect", WAIT, opts.connect(url))
        .await?
        .map_err(|e| format!("connect to {url}: {e}"))
}

async fn next(what: &str, sub: &mut Subscriber) -> Result<Message, String> {
    within(what, WAIT, sub.next())
        .await?
        .ok_or_else(|| format!("{what}: subscription ended"))
}

/// Messages that arrive until `quiet` passes without one.
async fn collect(sub: &mut Subscriber, quiet: Duration) -> Vec<Message> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(quiet, sub.next()).await {
        out.push(m);
    }
    out
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.payload).into_owned()
}

async fn flush(c: &Client) -> Result<(), String> {
    within("flush", WAIT, c.flush())
        .await?
        .map_err(|e| format!("flush: {e}"))
}

/// A real round trip through the server: async-nats' `flush` only writes the
/// socket, so this publishes to a private subject the client subscribes and
/// waits for the message. The server handles one connection's commands in
/// order, so every earlier SUB/UNSUB is in effect when it returns.
async fn round_trip(c: &Client) -> Result<(), String> {
    let inbox = c.new_inbox();
    let mut sub = subscribe(c, &inbox).await?;
    publish(c, &inbox, "sync").await?;
    flush(c).await?;
    next("round trip", &mut sub).await?;
    sub.unsubscribe()
        .await
        .map_err(|e| format!("unsubscribe: {e}"))
}

async fn publish(c: &Client, subject: &str, payload: impl Into<Bytes>) -> Result<(), String> {
    c.publish(subject.to_string(), payload.into())
        .await
        .map_err(|e| format!("publish {subject}: {e}"))
}

async fn subscribe(c: &Client, subject: &str) -> Result<Subscriber, String> {
    c.subscribe(subject.to_string())
        .await
        .map_err(|e| format!("subscribe {subject}: {e}"))
}

/// Runs one of the runner's server control commands (stop or start).
async fn server_ctl(var: &str) -> Result<(), String> {
    let cmd = std::env::var(var).map_err(|_| format!("${var} is not set"))?;
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .status()
        .await
        .map_err(|e| format!("{cmd}: {e}"))?;
    ensure(status.success(), || format!("{cmd}: {status}"))
}

/// Connect options that report the client's events on a channel.
fn with_events(opts: ConnectOptions) -> (ConnectOptions, mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let opts = opts.event_callback(move |e| {
        let tx = tx.clone();
        async move {
            tx.send(e).ok();
        }
    });
    (opts, rx)
}

/// Waits for an event matching `want`, returning the ones seen before it.
async fn wait_event(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    d: Duration,
    want: impl Fn(&Event) -> bool,
    name: &str,
) -> Result<(), String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(e)) if want(&e) => return Ok(()),
            Ok(Some(e)) => seen.push(e.to_string()),
            _ => {
                return Err(format!(
                    "expected a {name} event within {d:?}, saw {seen:?}"
                ));
            }
        }
    }
}

// ---- scenarios -------------------------------------------------------------

async fn connect_info(url: &str) -> Verdict {
    let c = connect(url).await?;
    let info = c.server_info();
    check("INFO version", info.version.as_str(), "2.9.10")?;
    check("INFO max_payload", info.max_payload, 1024 * 1024)?;
    check("INFO headers", info.headers, true)?;
    ensure(info.proto >= 1, || {
        format!("INFO proto: saw {}, expected >= 1", info.proto)
    })?;
    ensure(!info.server_id.is_empty(), || {
        "INFO server_id is empty".into()
    })?;
    check("INFO auth_required", info.auth_required, false)?;
    check(
        "connection state",
        c.connection_state().to_string(),
        async_nats::connection::State::Connected.to_string(),
    )?;
    flush(&c).await?;
    Ok(Outcome::Pass)
}

async fn pub_sub(url: &str) -> Verdict {
    let c = connect(url).await?;
    let p = connect(url).await?;
    let mut sub = subscribe(&c, "cf.pubsub").await?;
    round_trip(&c).await?;
    for i in 0..100 {
        publish(&p, "cf.pubsub", format!("msg-{i}")).await?;
    }
    publish(&p, "cf.pubsub", "").await?;
    round_trip(&p).await?;
    for i in 0..100 {
        let m = next(&format!("message {i}"), &mut sub).await?;
        check("subject", m.subject.as_str(), "cf.pubsub")?;
        check("payload", text(&m), format!("msg-{i}"))?;
        check("reply", m.reply.is_none(), true)?;
    }
    let m = next("empty message", &mut sub).await?;
    check("empty payload length", m.payload.len(), 0)?;
    Ok(Outcome::Pass)
}

async fn wildcards(url: &str) -> Verdict {
    let c = connect(url).await?;
    let mut star_b = subscribe(&c, "cf.wc.*.b").await?;
    let mut a_star = subscribe(&c, "cf.wc.a.*").await?;
    let mut full = subscribe(&c, "cf.wc.>").await?;
    flush(&c).await?;
    for s in [
        "cf.wc.a.b",
        "cf.wc.x.b",
        "cf.wc.a.c",
        "cf.wc.a.b.c",
        "cf.other",
    ] {
        publish(&c, s, s.to_string()).await?;
    }
    flush(&c).await?;
    let q = Duration::from_millis(300);
    let subjects = |v: Vec<Message>| v.iter().map(|m| m.subject.to_string()).collect::<Vec<_>>();
    check(
        "cf.wc.*.b got",
        subjects(collect(&mut star_b, q).await),
        vec!["cf.wc.a.b".into(), "cf.wc.x.b".into()],
    )?;
    check(
        "cf.wc.a.* got",
        subjects(collect(&mut a_star, q).await),
        vec!["cf.wc.a.b".into(), "cf.wc.a.c".into()],
    )?;
    check(
        "cf.wc.> got",
        subjects(collect(&mut full, q).await),
        vec![
            "cf.wc.a.b".to_string(),
            "cf.wc.x.b".into(),
            "cf.wc.a.c".into(),
            "cf.wc.a.b.c".into(),
        ],
    )?;
    Ok(Outcome::Pass)
}

async fn queue_groups(url: &str) -> Verdict {
    let c = connect(url).await?;
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(
            c.queue_subscribe("cf.queue", "workers".into())
                .await
                .map_err(|e| format!("queue subscribe: {e}"))?,
        );
    }
    let mut plain = subscribe(&c, "cf.queue").await?;
    round_trip(&c).await?;
    let p = connect(url).await?;
    for i in 0..300 {
        publish(&p, "cf.queue", i.to_string()).await?;
    }
    round_trip(&p).await?;
    let q = Duration::from_millis(300);
    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    for m in members.iter_mut() {
        let got = collect(m, q).await;
        per_member.push(got.len());
        seen.extend(
            got.iter()
                .map(|m| text(m).parse::<u32>().unwrap_or(u32::MAX)),
        );
    }
    seen.sort_unstable();
    check(
        "messages across the group (each exactly once)",
        seen,
        (0..300).collect::<Vec<_>>(),
    )?;
    ensure(per_member.iter().all(|&n| n > 0), || {
        format!("every member should get some of 300 messages, saw {per_member:?}")
    })?;
    check(
        "plain subscriber count",
        collect(&mut plain, q).await.len(),
        300,
    )?;
    Ok(Outcome::Pass)
}

async fn responder(c: &Client, subject: &str) -> Result<(), String> {
    let mut svc = subscribe(c, subject).await?;
    let r = c.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let mut body = b"re:".to_vec();
                body.extend_from_slice(&m.payload);
                r.publish(reply, body.into()).await.ok();
            }
        }
    });
    round_trip(c).await
}

async fn request_reply(url: &str) -> Verdict {
    let svc = connect(url).await?;
    responder(&svc, "cf.svc").await?;
    let c = connect(url).await?;
    // New style: one wildcard inbox subscription shared by all requests.
    for i in 0..10 {
        let r = within(
            "request",
            WAIT,
            c.request("cf.svc", format!("new-{i}").into()),
        )
        .await?
        .map_err(|e| format!("request {i}: {e}"))?;
        check("reply", text(&r), format!("re:new-{i}"))?;
    }
    let many =
        futures::future::join_all((0..20).map(|i| c.request("cf.svc", format!("par-{i}").into())));
    for (i, r) in within("20 parallel requests", WAIT, many)
        .await?
        .into_iter()
        .enumerate()
    {
        let r = r.map_err(|e| format!("parallel request {i}: {e}"))?;
        check("parallel reply", text(&r), format!("re:par-{i}"))?;
    }
    // Old style: a fresh inbox subscription per request (async-nats has no
    // switch for it, so done by hand with the client's own calls).
    for i in 0..10 {
        let inbox = c.new_inbox();
        let mut sub = subscribe(&c, &inbox).await?;
        sub.unsubscribe_after(1)
            .await
            .map_err(|e| format!("unsubscribe_after: {e}"))?;
        c.publish_with_reply("cf.svc", inbox.clone(), format!("old-{i}").into())
            .await
            .map_err(|e| format!("publish_with_reply: {e}"))?;
        let r = next("old-style reply", &mut sub).await?;
        check("old-style reply", text(&r), format!("re:old-{i}"))?;
        check("reply subject", r.subject.as_str(), inbox.as_str())?;
    }
    Ok(Outcome::Pass)
}

async fn no_responders(url: &str) -> Verdict {
    let c = connect(url).await?;
    let start = Instant::now();
    let err = within("request", WAIT, c.request("cf.nobody", "x".into()))
        .await?
        .err()
        .ok_or("request to a subject without subscribers got a reply")?;
    check(
        "request error",
        err.kind(),
        async_nats::RequestErrorKind::NoResponders,
    )?;
    ensure(start.elapsed() < Duration::from_secs(2), || {
        format!(
            "no-responders should come at once, took {:?}",
            start.elapsed()
        )
    })?;
    Ok(Outcome::Pass)
}

async fn headers(url: &str) -> Verdict {
    let c = connect(url).await?;
    let mut sub = subscribe(&c, "cf.headers").await?;
    flush(&c).await?;
    let mut h = HeaderMap::new();
    h.insert("X-Conf", "one");
    h.append("X-Multi", "a");
    h.append("X-Multi", "b");
    c.publish_with_headers("cf.headers", h, "body".into())
        .await
        .map_err(|e| format!("publish_with_headers: {e}"))?;
    publish(&c, "cf.headers", "plain").await?;
    let mut h = HeaderMap::new();
    h.insert("X-Only", "headers");
    c.publish_with_headers("cf.headers", h, Bytes::new())
        .await
        .map_err(|e| format!("publish_with_headers: {e}"))?;
    let m = next("message with headers", &mut sub).await?;
    let h = m.headers.as_ref().ok_or("message without headers")?;
    check(
        "X-Conf",
        h.get("X-Conf").map(|v| v.as_str().to_string()),
        Some("one".into()),
    )?;
    check(
        "X-Multi",
        h.get_all("X-Multi")
            .map(|v| v.as_str().to_string())
            .collect::<Vec<_>>(),
        vec!["a".into(), "b".into()],
    )?;
    check("payload", text(&m), "body".into())?;
    let m = next("plain message", &mut sub).await?;
    check("plain message headers", m.headers.is_none(), true)?;
    check("plain payload", text(&m), "plain".into())?;
    let m = next("headers-only message", &mut sub).await?;
    let h = m.headers.as_ref().ok_or("headers-only message has none")?;
    check(
        "X-Only",
        h.get("X-Only").map(|v| v.as_str().to_string()),
        Some("headers".into()),
    )?;
    check("headers-only payload length", m.payload.len(), 0)?;
    Ok(Outcome::Pass)
}

async fn auto_unsubscribe(url: &str) -> Verdict {
    let c = connect(url).await?;
    let mut sub = subscribe(&c, "cf.auto").await?;
    sub.unsubscribe_after(5)
        .await
        .map_err(|e| format!("unsubscribe_after: {e}"))?;
    flush(&c).await?;
    for i in 0..10 {
        publish(&c, "cf.auto", i.to_string()).await?;
    }
    flush(&c).await?;
    let got: Vec<String> = collect(&mut sub, Duration::from_millis(500))
        .await
        .iter()
        .map(text)
        .collect();
    check(
        "messages before auto-unsubscribe",
        got,
        (0..5).map(|i| i.to_string()).collect(),
    )?;
    Ok(Outcome::Pass)
}

async fn drain(url: &str) -> Verdict {
    let c = connect(url).await?;
    let p = connect(url).await?;
    let mut sub = subscribe(&c, "cf.drain").await?;
    let mut other = subscribe(&c, "cf.drain.sub").await?;
    round_trip(&c).await?;
    for i in 0..200 {
        publish(&p, "cf.drain", i.to_string()).await?;
        publish(&p, "cf.drain.sub", i.to_string()).await?;
    }
    round_trip(&p).await?;
    // Drain one subscription, then the whole connection.
    other
        .drain()
        .await
        .map_err(|e| format!("subscription drain: {e}"))?;
    let got = within(
        "subscription drain",
        WAIT,
        other.by_ref().collect::<Vec<_>>(),
    )
    .await?;
    check("messages on the drained subscription", got.len(), 200)?;
    c.drain()
        .await
        .map_err(|e| format!("connection drain: {e}"))?;
    let got = within(
        "connection drain",
        WAIT,
        sub.by_ref().map(|m| text(&m)).collect::<Vec<_>>(),
    )
    .await?;
    check(
        "messages delivered by drain",
        got,
        (0..200).map(|i| i.to_string()).collect(),
    )?;
    // Closed after the drain: no more commands.
    let refused = within("subscribe after drain", WAIT, c.subscribe("cf.after")).await?;
    ensure(refused.is_err(), || {
        "subscribe after drain should fail, it succeeded".into()
    })?;
    Ok(Outcome::Pass)
}

async fn flush_ping(url: &str) -> Verdict {
    let c = connect(url).await?;
    let mut sub = subscribe(&c, "cf.flush").await?;
    flush(&c).await?;
    for i in 0..1000 {
        publish(&c, "cf.flush", i.to_string()).await?;
    }
    let start = Instant::now();
    flush(&c).await?;
    ensure(start.elapsed() < Duration::from_secs(2), || {
        format!("flush took {:?}", start.elapsed())
    })?;
    for i in 0..1000 {
        let m = next(&format!("message {i} after flush"), &mut sub).await?;
        check("payload", text(&m), i.to_string())?;
    }
    // Repeated round trips.
    for _ in 0..10 {
        flush(&c).await?;
    }
    let stats = c.statistics();
    ensure(
        stats
            .out_messages
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1000,
        || "client counted fewer than 1000 messages out".into(),
    )?;
    Ok(Outcome::Pass)
}

async fn max_payload(url: &str) -> Verdict {
    let c = connect(url).await?;
    check("client max_payload", c.max_payload(), 1024 * 1024)?;
    let mut sub = subscribe(&c, "cf.max").await?;
    flush(&c).await?;
    let err = c
        .publish("cf.max", vec![b'x'; 1024 * 1024 + 1].into())
        .await
        .err()
        .ok_or("a payload of max_payload + 1 was accepted by the client")?;
    check(
        "error",
        err.kind(),
        async_nats::client::PublishErrorKind::MaxPayloadExceeded,
    )?;
    publish(&c, "cf.max", vec![b'y'; 1024 * 1024]).await?;
    flush(&c).await?;
    let m = next("max_payload message", &mut sub).await?;
    check("payload length", m.payload.len(), 1024 * 1024)?;
    publish(&c, "cf.max", "still open").await?;
    check(
        "after",
        text(&next("message after", &mut sub).await?),
        "still open".into(),
    )?;
    Ok(Outcome::Pass)
}

async fn reconnect(url: &str) -> Verdict {
    let (opts, mut events) =
        with_events(ConnectOptions::new().reconnect_delay_callback(|_| Duration::from_millis(100)));
    let c = connect_with(url, opts).await?;
    let mut sub = subscribe(&c, "cf.reconnect").await?;
    round_trip(&c).await?;
    publish(&c, "cf.reconnect", "before").await?;
    check(
        "before restart",
        text(&next("message before restart", &mut sub).await?),
        "before".into(),
    )?;
    server_ctl("CONFORMANCE_SERVER_STOP").await?;
    wait_event(
        &mut events,
        Duration::from_secs(10),
        |e| *e == Event::Disconnected,
        "disconnected",
    )
    .await?;
    for i in 0..10 {
        publish(&c, "cf.reconnect", format!("buffered-{i}")).await?;
    }
    server_ctl("CONFORMANCE_SERVER_START").await?;
    wait_event(
        &mut events,
        Duration::from_secs(10),
        |e| *e == Event::Connected,
        "connected",
    )
    .await?;
    for i in 0..10 {
        let m = next(&format!("buffered message {i}"), &mut sub).await?;
        check("buffered message", text(&m), format!("buffered-{i}"))?;
    }
    publish(&c, "cf.reconnect", "after").await?;
    check(
        "after reconnect",
        text(&next("message after reconnect", &mut sub).await?),
        "after".into(),
    )?;
    Ok(Outcome::Pass)
}

/// The members other than `NATS_URL`'s server, as host:port, from the runner.
fn cluster_members() -> Result<Vec<String>, String> {
    let urls = std::env::var("CONFORMANCE_CLUSTER_URLS").map_err(|_| {
        "$CONFORMANCE_CLUSTER_URLS is not set (the runner starts a cluster for this scenario)"
            .to_string()
    })?;
    Ok(urls.split(',').map(|u| host_port(u).to_string()).collect())
}

fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// Publishes `data` on `p` every 100 ms until `sub` gets it: interest
/// reaches the other servers of a cluster a moment after the subscription.
/// Earlier probes still on their way are skipped.
async fn until_crossed(
    p: &Client,
    sub: &mut Subscriber,
    subject: &str,
    data: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        publish(p, subject, data.to_string()).await?;
        flush(p).await?;
        if collect(sub, Duration::from_millis(100))
            .await
            .iter()
            .any(|m| text(m) == data)
        {
            return Ok(());
        }
        ensure(Instant::now() < deadline, || {
            format!(
                "{data} published by the second connection: nothing crossed the cluster after {WAIT:?}"
            )
        })?;
    }
}

async fn cluster_failover(url: &str) -> Verdict {
    let others = cluster_members()?;
    let (opts, mut events) =
        with_events(ConnectOptions::new().reconnect_delay_callback(|_| Duration::from_millis(100)));
    let c = connect_with(url, opts).await?;
    let connect_urls = c.server_info().connect_urls;
    ensure(others.iter().all(|m| connect_urls.contains(m)), || {
        format!("INFO connect_urls: saw {connect_urls:?}, expected the other members {others:?}")
    })?;
    let mut sub = subscribe(&c, "cf.cluster").await?;
    round_trip(&c).await?;
    let p = within("connect", WAIT, ConnectOptions::new().connect(&others))
        .await?
        .map_err(|e| format!("connect to {others:?}: {e}"))?;
    until_crossed(&p, &mut sub, "cf.cluster", "probe-before").await?;
    server_ctl("CONFORMANCE_SERVER_STOP").await?;
    wait_event(
        &mut events,
        Duration::from_secs(10),
        |e| *e == Event::Disconnected,
        "disconnected",
    )
    .await?;
    wait_event(
        &mut events,
        Duration::from_secs(10),
        |e| *e == Event::Connected,
        "connected",
    )
    .await?;
    let info = c.server_info();
    let now = format!("{}:{}", info.host, info.port);
    ensure(others.contains(&now), || {
        format!("reconnected to {now}, expected one of {others:?}")
    })?;
    until_crossed(&p, &mut sub, "cf.cluster", "probe-after").await?;
    for i in 0..10 {
        publish(&p, "cf.cluster", format!("msg-{i}")).await?;
    }
    flush(&p).await?;
    for i in 0..10 {
        let mut m = next(&format!("message {i} after failover"), &mut sub).await?;
        while text(&m).starts_with("probe-") {
            m = next(&format!("message {i} after failover"), &mut sub).await?;
        }
        check("message after failover", text(&m), format!("msg-{i}"))?;
    }
    Ok(Outcome::Pass)
}

async fn slow_consumer(url: &str) -> Verdict {
    let (opts, mut events) = with_events(ConnectOptions::new());
    let c = connect_with(url, opts).await?;
    let _sub = subscribe(&c, "cf.slow").await?;
    round_trip(&c).await?;
    // Another connection, on its own thread and runtime, floods the
    // subscriber with 100 MiB while this thread (the only one the
    // subscriber's connection runs on) is blocked, so nothing reads it.
    let url2 = url.to_string();
    let publisher = std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let p = connect(&url2).await?;
            let chunk = Bytes::from(vec![b's'; 512 * 1024]);
            for _ in 0..200 {
                publish(&p, "cf.slow", chunk.clone()).await?;
            }
            within("publisher flush", Duration::from_secs(30), p.flush())
                .await?
                .map_err(|e| format!("publisher flush: {e}"))
        })
    });
    let published = publisher.join().map_err(|_| "publisher panicked")?;
    std::thread::sleep(Duration::from_millis(300));
    published?;
    wait_event(
        &mut events,
        Duration::from_secs(10),
        |e| *e == Event::Disconnected,
        "disconnected (server closed the slow consumer)",
    )
    .await?;
    Ok(Outcome::Pass)
}

async fn auth_user_pass(url: &str) -> Verdict {
    let c = connect_with(
        url,
        ConnectOptions::with_user_and_password("alice".into(), "s3cret".into()),
    )
    .await?;
    check("INFO auth_required", c.server_info().auth_required, true)?;
    flush(&c).await?;
    // async-nats 0.51 does not take credentials from the URL: not checked.
    for (user, pass) in [("alice", "wrong"), ("bob", "s3cret")] {
        let bad = ConnectOptions::with_user_and_password(user.into(), pass.into())
            .connection_timeout(Duration::from_secs(2))
            .max_reconnects(1);
        match within("connect with bad credentials", WAIT, bad.connect(url)).await? {
            Ok(_) => return Err(format!("{user}/{pass} was let in")),
            Err(e) => check(
                "error for bad credentials",
                e.kind(),
                async_nats::ConnectErrorKind::AuthorizationViolation,
            )?,
        }
    }
    let none = ConnectOptions::new().max_reconnects(1);
    let r = within("connect without credentials", WAIT, none.connect(url)).await?;
    ensure(r.is_err(), || {
        "connect without credentials was let in".into()
    })?;
    Ok(Outcome::Pass)
}

async fn auth_token(url: &str) -> Verdict {
    let c = connect_with(url, ConnectOptions::with_token("t0ken".into())).await?;
    check("INFO auth_required", c.server_info().auth_required, true)?;
    flush(&c).await?;
    let bad = ConnectOptions::with_token("wrong".into())
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(1);
    match within("connect with a bad token", WAIT, bad.connect(url)).await? {
        Ok(_) => return Err("a bad token was let in".into()),
        Err(e) => check(
            "error for a bad token",
            e.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
        )?,
    }
    Ok(Outcome::Pass)
}

/// A file the runner made in `$CONFORMANCE_PKI` (certificates, seeds).
fn pki(file: &str) -> std::path::PathBuf {
    std::path::Path::new(&std::env::var("CONFORMANCE_PKI").unwrap_or_default()).join(file)
}

fn read_pki(file: &str) -> Result<String, String> {
    std::fs::read_to_string(pki(file))
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{}: {e}", pki(file).display()))
}

async fn tls(url: &str) -> Verdict {
    let trusting = || {
        ConnectOptions::new()
            .add_root_certificates(pki("ca.pem"))
            .require_tls(true)
    };
    let c = connect_with(
        url,
        trusting().add_client_certificate(pki("client.pem"), pki("client.key")),
    )
    .await?;
    check("INFO tls_required", c.server_info().tls_required, true)?;
    let mut sub = subscribe(&c, "cf.tls").await?;
    round_trip(&c).await?;
    for i in 0..10 {
        publish(&c, "cf.tls", format!("tls-{i}")).await?;
    }
    for i in 0..10 {
        let m = next(&format!("message {i}"), &mut sub).await?;
        check("payload", text(&m), format!("tls-{i}"))?;
    }
    let without = trusting()
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(1);
    let r = within("connect without a certificate", WAIT, without.connect(url)).await?;
    ensure(r.is_err(), || {
        "connected without a client certificate".into()
    })?;
    Ok(Outcome::Pass)
}

async fn nkeys(url: &str) -> Verdict {
    let c = connect_with(url, ConnectOptions::with_nkey(read_pki("user.seed")?)).await?;
    check("INFO auth_required", c.server_info().auth_required, true)?;
    let mut sub = subscribe(&c, "cf.nkeys").await?;
    round_trip(&c).await?;
    publish(&c, "cf.nkeys", "signed").await?;
    check(
        "payload",
        text(&next("message", &mut sub).await?),
        "signed".into(),
    )?;
    let stranger = ConnectOptions::with_nkey(read_pki("stranger.seed")?)
        .connection_timeout(Duration::from_secs(2))
        .max_reconnects(1);
    match within("connect with an unknown nkey", WAIT, stranger.connect(url)).await? {
        Ok(_) => Err("an unknown nkey was let in".into()),
        Err(e) => {
            check(
                "error for an unknown nkey",
                e.kind(),
                async_nats::ConnectErrorKind::AuthorizationViolation,
            )?;
            Ok(Outcome::Pass)
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn large_payload(url: &str) -> Verdict {
    let c = connect(url).await?;
    let p = connect(url).await?;
    let mut sub = subscribe(&c, "cf.large").await?;
    round_trip(&c).await?;
    let sizes = [512 * 1024, 768 * 1024 + 7, 1024 * 1024];
    for (i, &n) in sizes.iter().enumerate() {
        publish(&p, "cf.large", pattern(n, i as u8)).await?;
    }
    round_trip(&p).await?;
    for (i, &n) in sizes.iter().enumerate() {
        let m = next(&format!("payload of {n} bytes"), &mut sub).await?;
        check("payload length", m.payload.len(), n)?;
        let want = pattern(n, i as u8);
        if let Some(at) = (0..n).find(|&j| m.payload[j] != want[j]) {
            return Err(format!(
                "payload of {n} bytes differs at byte {at}: saw {}, expected {}",
                m.payload[at], want[at]
            ));
        }
    }
    Ok(Outcome::Pass)
}

async fn many_subscriptions(url: &str) -> Verdict {
    const N: usize = 10_000;
    let c = connect(url).await?;
    let mut subs = Vec::with_capacity(N);
    for i in 0..N {
        subs.push(subscribe(&c, &format!("cf.many.{i}")).await?);
    }
    round_trip(&c).await?;
    let p = connect(url).await?;
    for i in 0..N {
        publish(&p, &format!("cf.many.{i}"), i.to_string()).await?;
    }
    round_trip(&p).await?;
    for (i, sub) in subs.iter_mut().enumerate() {
        let m = next(&format!("message on cf.many.{i}"), sub).await?;
        check("payload", text(&m), i.to_string())?;
    }
    // Unsubscribe them all: nothing more is delivered.
    for sub in subs.iter_mut() {
        sub.unsubscribe()
            .await
            .map_err(|e| format!("unsubscribe: {e}"))?;
    }
    flush(&c).await?;
    let mut watch = subscribe(&c, "cf.many.>").await?;
    round_trip(&c).await?;
    publish(&p, "cf.many.7", "again").await?;
    round_trip(&p).await?;
    check(
        "wildcard after unsubscribing all",
        text(&next("cf.many.>", &mut watch).await?),
        "again".into(),
    )?;
    Ok(Outcome::Pass)
}

async fn no_echo(url: &str) -> Verdict {
    let quiet = connect_with(url, ConnectOptions::new().no_echo()).await?;
    let loud = connect(url).await?;
    let mut q = subscribe(&quiet, "cf.echo").await?;
    let mut l = subscribe(&loud, "cf.echo").await?;
    // The echo-off connection cannot see its own round trip: sync it through
    // the other connection.
    let mut sync = subscribe(&loud, "cf.echo.sync").await?;
    round_trip(&loud).await?;
    publish(&quiet, "cf.echo.sync", "1").await?;
    next("sync from the echo-off connection", &mut sync).await?;
    publish(&quiet, "cf.echo", "from-quiet").await?;
    publish(&quiet, "cf.echo.sync", "2").await?;
    next("sync from the echo-off connection", &mut sync).await?;
    publish(&loud, "cf.echo", "from-loud").await?;
    round_trip(&loud).await?;
    let texts = |v: Vec<Message>| v.iter().map(text).collect::<Vec<_>>();
    let q_got = texts(collect(&mut q, Duration::from_millis(300)).await);
    check(
        "echo-off connection got",
        q_got,
        vec!["from-loud".to_string()],
    )?;
    let l_got = texts(collect(&mut l, Duration::from_millis(300)).await);
    check(
        "echo-on connection got",
        l_got,
        vec!["from-quiet".to_string(), "from-loud".into()],
    )?;
    Ok(Outcome::Pass)
}

async fn burst(url: &str) -> Verdict {
    const SMALL: usize = 50_000;
    const BIG: usize = 500;
    let opts = || ConnectOptions::new().subscription_capacity(2 * SMALL);
    let c = connect_with(url, opts()).await?;
    let other = connect_with(url, opts()).await?;
    let mut own = subscribe(&c, "cf.burst").await?;
    let mut far = subscribe(&other, "cf.burst").await?;
    round_trip(&c).await?;
    round_trip(&other).await?;
    let big = pattern(64 * 1024, 9);
    for i in 0..SMALL {
        publish(&c, "cf.burst", format!("{i}")).await?;
    }
    for _ in 0..BIG {
        publish(&c, "cf.burst", big.clone()).await?;
    }
    flush(&c).await?;
    for (name, sub) in [
        ("same connection", &mut own),
        ("other connection", &mut far),
    ] {
        for i in 0..SMALL {
            let m = next(&format!("{name}: small message {i}"), sub).await?;
            if m.payload != i.to_string().as_bytes() {
                return Err(format!(
                    "{name}: message {i}: saw {:?}, expected {i:?}",
                    text(&m)
                ));
            }
        }
        for i in 0..BIG {
            let m = next(&format!("{name}: 64 KiB message {i}"), sub).await?;
            ensure(m.payload == big, || {
                format!(
                    "{name}: 64 KiB message {i} differs ({} bytes)",
                    m.payload.len()
                )
            })?;
        }
    }
    Ok(Outcome::Pass)
}

/// The subjects of the `subjects` scenario: (subject, reply).
fn odd_subjects() -> Vec<(String, String)> {
    let long = (0..64)
        .map(|i| format!("tok{i:02}-abcdefghij"))
        .collect::<Vec<_>>()
        .join(".");
    vec![
        (format!("cf.subj.{long}"), "cf.reply.long".into()),
        ("cf.subj.ünïcødé.日本語".into(), "cf.reply.ünï.日本".into()),
        (
            "cf.subj.a-b_c.x:y.~z.=eq".into(),
            "cf.reply.a-b_c.x:y.~z.=eq".into(),
        ),
    ]
}

async fn subjects(url: &str) -> Verdict {
    let c = connect(url).await?;
    let p = connect(url).await?;
    let mut all = subscribe(&c, "cf.subj.>").await?;
    let mut exact = Vec::new();
    for (s, _) in odd_subjects() {
        exact.push(subscribe(&c, &s).await?);
    }
    round_trip(&c).await?;
    for (s, r) in odd_subjects() {
        p.publish_with_reply(s.clone(), r, s.clone().into())
            .await
            .map_err(|e| format!("publish {s}: {e}"))?;
    }
    round_trip(&p).await?;
    for ((s, r), sub) in odd_subjects().into_iter().zip(exact.iter_mut()) {
        for (kind, sub) in [("exact", sub), ("cf.subj.>", &mut all)] {
            let m = next(&format!("{kind} subscription for {s}"), sub).await?;
            check(&format!("{kind}: subject"), m.subject.as_str(), s.as_str())?;
            check(
                &format!("{kind}: reply"),
                m.reply.as_ref().map(|r| r.to_string()),
                Some(r.clone()),
            )?;
            check(&format!("{kind}: payload"), text(&m), s.clone())?;
        }
    }
    Ok(Outcome::Pass)
}

async fn keepalive(url: &str) -> Verdict {
    let (opts, mut events) =
        with_events(ConnectOptions::new().ping_interval(Duration::from_millis(100)));
    let c = connect_with(url, opts).await?;
    let mut sub = subscribe(&c, "cf.keepalive").await?;
    round_trip(&c).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e != Event::Connected {
            seen.push(e.to_string());
        }
    }
    check("events while pinging", seen, Vec::<String>::new())?;
    check(
        "connection state",
        c.connection_state().to_string(),
        async_nats::connection::State::Connected.to_string(),
    )?;
    publish(&c, "cf.keepalive", "still here").await?;
    check(
        "message after pinging",
        text(&next("message after pinging", &mut sub).await?),
        "still here".into(),
    )?;
    Ok(Outcome::Pass)
}

async fn control_line(url: &str) -> Verdict {
    let (opts, mut events) = with_events(ConnectOptions::new());
    let c = connect_with(url, opts).await?;
    let subject = format!("cf.{}", "x".repeat(5000));
    publish(&c, &subject, "x").await?;
    flush(&c).await.ok();
    let (mut error, mut disconnected, mut seen) = (false, false, Vec::new());
    let deadline = Instant::now() + WAIT;
    while !(error && disconnected) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(e)) => {
                match &e {
                    Event::ServerError(async_nats::ServerError::Other(m))
                        if m.to_lowercase().contains("maximum control line exceeded") =>
                    {
                        error = true
                    }
                    Event::Disconnected => disconnected = true,
                    _ => {}
                }
                seen.push(e.to_string());
            }
            _ => {
                return Err(format!(
                    "expected the server error 'maximum control line exceeded' and a disconnect within {WAIT:?}, saw {seen:?}"
                ));
            }
        }
    }
    Ok(Outcome::Pass)
}

// ---- JetStream ---------------------------------------------------------------

fn jetstream_of(c: Client) -> jetstream::Context {
    jetstream::ContextBuilder::new().timeout(WAIT).build(c)
}

async fn jetstream(url: &str) -> Verdict {
    let js = jetstream_of(connect(url).await?);
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            name: "CF".into(),
            subjects: vec!["cf.js.>".into()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create stream CF: {e}"))?;
    for i in 1..=10u64 {
        let ack = js
            .publish(format!("cf.js.{i}"), format!("msg {i}").into())
            .await
            .map_err(|e| format!("publish {i}: {e}"))?
            .await
            .map_err(|e| format!("PubAck {i}: {e}"))?;
        check(
            &format!("PubAck {i}"),
            (ack.stream.as_str(), ack.sequence, ack.duplicate),
            ("CF", i, false),
        )?;
    }
    for (what, duplicate) in [("first", false), ("second", true)] {
        let publish = jetstream::message::PublishMessage::build()
            .message_id("cf-1")
            .payload("dup".into());
        let ack = js
            .send_publish("cf.js.dup", publish)
            .await
            .map_err(|e| format!("{what} Nats-Msg-Id publish: {e}"))?
            .await
            .map_err(|e| format!("{what} Nats-Msg-Id PubAck: {e}"))?;
        check(
            &format!("{what} Nats-Msg-Id publish"),
            (ack.sequence, ack.duplicate),
            (11, duplicate),
        )?;
    }
    let m = stream
        .get_raw_message(5)
        .await
        .map_err(|e| format!("get message 5: {e}"))?;
    check(
        "message 5",
        (m.subject.as_str(), &m.payload[..]),
        ("cf.js.5", &b"msg 5"[..]),
    )?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("stream info: {e}"))?;
    check("messages in stream", info.state.messages, 11)?;
    let purged = stream.purge().await.map_err(|e| format!("purge: {e}"))?;
    check("purge", (purged.success, purged.purged), (true, 11))?;
    let info = stream
        .info()
        .await
        .map_err(|e| format!("stream info: {e}"))?;
    check("messages after purge", info.state.messages, 0)?;
    let deleted = js
        .delete_stream("CF")
        .await
        .map_err(|e| format!("delete stream: {e}"))?;
    check("delete stream", deleted.success, true)?;
    let gone = match js.get_stream("CF").await {
        Ok(_) => "the stream".to_string(),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(e) => e.error_code().0.to_string(),
            other => other.to_string(),
        },
    };
    check(
        "stream info after delete (error code)",
        gone,
        "10059".into(),
    )?;
    Ok(Outcome::Pass)
}

async fn kv(url: &str) -> Verdict {
    use jetstream::kv;
    let js = jetstream_of(connect(url).await?);
    // async-nats 0.51's create_key_value first reads the account info and
    // needs its reserved_memory/reserved_storage, which nats-server 2.9.10
    // does not send: the bucket's stream is created as create_key_value
    // would, and the client binds to it.
    js.create_stream(jetstream::stream::Config {
        name: "KV_CF".into(),
        subjects: vec!["$KV.CF.>".into()],
        max_messages_per_subject: 1,
        discard: jetstream::stream::DiscardPolicy::New,
        deny_delete: true,
        allow_rollup: true,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("create bucket CF (stream KV_CF): {e}"))?;
    let store = js
        .get_key_value("CF")
        .await
        .map_err(|e| format!("bind bucket CF: {e}"))?;
    let rev = store
        .put("colour", "red".into())
        .await
        .map_err(|e| format!("put colour=red: {e}"))?;
    check("put colour=red", rev, 1)?;
    let e = store
        .entry("colour")
        .await
        .map_err(|e| format!("get colour: {e}"))?
        .ok_or("get colour: no entry")?;
    check("get colour", (&e.value[..], e.revision), (&b"red"[..], 1))?;
    match store.create("colour", "green".into()).await {
        Ok(rev) => {
            return Err(format!(
                "create on an existing key: saw revision {rev}, expected an error"
            ));
        }
        Err(e) => check(
            "create on an existing key",
            e.kind(),
            kv::CreateErrorKind::AlreadyExists,
        )?,
    }
    let rev = store
        .update("colour", "blue".into(), 1)
        .await
        .map_err(|e| format!("update colour=blue at revision 1: {e}"))?;
    check("update colour=blue at revision 1", rev, 2)?;
    match store.update("colour", "grey".into(), 1).await {
        Ok(rev) => {
            return Err(format!(
                "update at a stale revision: saw revision {rev}, expected an error"
            ));
        }
        Err(e) => check(
            "update at a stale revision",
            e.kind(),
            kv::UpdateErrorKind::WrongLastRevision,
        )?,
    }
    let e = store
        .entry("colour")
        .await
        .map_err(|e| format!("get colour: {e}"))?
        .ok_or("get colour: no entry")?;
    check("get colour", (&e.value[..], e.revision), (&b"blue"[..], 2))?;
    store
        .delete("colour")
        .await
        .map_err(|e| format!("delete colour: {e}"))?;
    let after = store
        .get("colour")
        .await
        .map_err(|e| format!("get after delete: {e}"))?;
    check("get after delete", after, None)?;
    js.delete_key_value("CF")
        .await
        .map_err(|e| format!("delete bucket: {e}"))?;
    Ok(Outcome::Pass)
}

/// `n` messages from a pull consumer, in as many fetches as it takes (a
/// fetch may end with fewer than asked for).
async fn fetch(
    consumer: &jetstream::consumer::PullConsumer,
    n: usize,
    what: &str,
) -> Result<Vec<jetstream::Message>, String> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure(!left.is_zero(), || {
            format!("{what}: {} of {n} messages after {WAIT:?}", out.len())
        })?;
        let mut batch = consumer
            .fetch()
            .max_messages(n - out.len())
            .expires(left)
            .messages()
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        while let Some(m) = within(what, WAIT, batch.next()).await? {
            out.push(m.map_err(|e| format!("{what}: {e}"))?);
        }
    }
    Ok(out)
}

/// Checks message `i` of stream CF ("msg <i>" on cf.js.<i>), delivered
/// `delivered` times.
fn check_delivery(
    what: &str,
    m: &jetstream::Message,
    i: u64,
    delivered: i64,
) -> Result<(), String> {
    check(
        what,
        (m.subject.to_string(), text(m)),
        (format!("cf.js.{i}"), format!("msg {i}")),
    )?;
    let info = m.info().map_err(|e| format!("{what} metadata: {e}"))?;
    check(
        &format!("{what} metadata (stream sequence, delivered)"),
        (info.stream_sequence, info.delivered),
        (i, delivered),
    )
}

async fn js_consumers(url: &str) -> Verdict {
    use jetstream::consumer::{AckPolicy, pull, push};
    let client = connect(url).await?;
    let js = jetstream_of(client.clone());
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: "CF".into(),
            subjects: vec!["cf.js.>".into()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create stream CF: {e}"))?;
    for i in 1..=10u64 {
        js.publish(format!("cf.js.{i}"), format!("msg {i}").into())
            .await
            .map_err(|e| format!("publish {i}: {e}"))?
            .await
            .map_err(|e| format!("PubAck {i}: {e}"))?;
    }

    // (a) a durable pull consumer, explicit acks, two batches of five.
    let mut pull = stream
        .create_consumer(pull::Config {
            durable_name: Some("PULL".into()),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create pull consumer PULL: {e}"))?;
    for batch in 0..2u64 {
        let msgs = fetch(&pull, 5, &format!("PULL fetch {}", batch + 1)).await?;
        for (k, m) in (0u64..).zip(&msgs) {
            let i = batch * 5 + k + 1;
            check_delivery(&format!("PULL message {i}"), m, i, 1)?;
            if k == 4 {
                m.double_ack().await
            } else {
                m.ack().await
            }
            .map_err(|e| format!("PULL ack {i}: {e}"))?;
        }
    }
    let info = pull
        .info()
        .await
        .map_err(|e| format!("consumer info PULL: {e}"))?;
    check(
        "PULL info (num_ack_pending, num_pending, ack floor stream sequence)",
        (
            info.num_ack_pending,
            info.num_pending,
            info.ack_floor.stream_sequence,
        ),
        (0, 0, 10),
    )?;

    // (b) a nak'd message comes back, delivered a second time. The consumer
    // sees message 1 only: nats-server handles acks apart from pull
    // requests, so the second fetch may arrive before the nak.
    let redo = stream
        .create_consumer(pull::Config {
            durable_name: Some("REDO".into()),
            ack_policy: AckPolicy::Explicit,
            filter_subject: "cf.js.1".into(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create pull consumer REDO: {e}"))?;
    let m = fetch(&redo, 1, "REDO fetch 1").await?.remove(0);
    check_delivery("REDO first delivery", &m, 1, 1)?;
    m.ack_with(jetstream::AckKind::Nak(None))
        .await
        .map_err(|e| format!("REDO nak: {e}"))?;
    let m = fetch(&redo, 1, "REDO fetch 2").await?.remove(0);
    check_delivery("REDO after nak", &m, 1, 2)?;
    m.double_ack().await.map_err(|e| format!("REDO ack: {e}"))?;

    // (c) an ordered push consumer gets the whole stream in order.
    let mut ordered = stream
        .create_consumer(push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: "cf.js.>".into(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("ordered consumer: {e}"))?
        .messages()
        .await
        .map_err(|e| format!("ordered consumer messages: {e}"))?;
    for i in 1..=10u64 {
        let what = format!("ordered message {i}");
        let m = within(&what, WAIT, ordered.next())
            .await?
            .ok_or_else(|| format!("{what}: the consumer ended"))?
            .map_err(|e| format!("{what}: {e}"))?;
        check(
            &what,
            (m.subject.to_string(), text(&m)),
            (format!("cf.js.{i}"), format!("msg {i}")),
        )?;
    }
    drop(ordered);

    // (d) a deleted consumer is gone.
    let deleted = stream
        .delete_consumer("PULL")
        .await
        .map_err(|e| format!("delete consumer PULL: {e}"))?;
    check("delete consumer PULL", deleted.success, true)?;
    let gone = match stream.consumer_info("PULL").await {
        Ok(_) => "the consumer".to_string(),
        Err(e) => e.kind().to_string(),
    };
    check(
        "consumer info after delete",
        gone,
        jetstream::context::ConsumerInfoErrorKind::NotFound.to_string(),
    )?;
    js.delete_stream("CF")
        .await
        .map_err(|e| format!("delete stream: {e}"))?;
    Ok(Outcome::Pass)
}

/// A watcher's next entry as (key, value, operation, seen_current).
async fn next_update(
    what: &str,
    watch: &mut jetstream::kv::Watch,
) -> Result<(String, String, jetstream::kv::Operation, bool), String> {
    let e = within(what, WAIT, watch.next())
        .await?
        .ok_or_else(|| format!("{what}: the watch ended"))?
        .map_err(|e| format!("{what}: {e}"))?;
    let value = String::from_utf8_lossy(&e.value).into_owned();
    Ok((e.key, value, e.operation, e.seen_current))
}

async fn kv_watch(url: &str) -> Verdict {
    use jetstream::kv::Operation;
    let js = jetstream_of(connect(url).await?);
    // The bucket's stream, made as create_key_value would with history 5
    // (see `kv` for why).
    js.create_stream(jetstream::stream::Config {
        name: "KV_CF".into(),
        subjects: vec!["$KV.CF.>".into()],
        max_messages_per_subject: 5,
        discard: jetstream::stream::DiscardPolicy::New,
        deny_delete: true,
        allow_rollup: true,
        allow_direct: true,
        duplicate_window: Duration::from_secs(120),
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("create bucket CF (stream KV_CF): {e}"))?;
    let store = js
        .get_key_value("CF")
        .await
        .map_err(|e| format!("bind bucket CF: {e}"))?;
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        store
            .put(key, value.into())
            .await
            .map_err(|e| format!("put {key}={value}: {e}"))?;
    }
    // async-nats' watch_all gives only new values; watch_with_history
    // starts with the current ones.
    let mut watch = store
        .watch_with_history(">")
        .await
        .map_err(|e| format!("watch all keys: {e}"))?;
    // async-nats marks the end of the initial values with seen_current on
    // the last of them.
    let put = |k: &str, v: &str, seen_current| (k.into(), v.into(), Operation::Put, seen_current);
    check(
        "watch: first initial value (key, value, operation, seen_current)",
        next_update("watch: first initial value", &mut watch).await?,
        put("b", "2", false),
    )?;
    check(
        "watch: second initial value (key, value, operation, seen_current)",
        next_update("watch: second initial value", &mut watch).await?,
        put("a", "3", true),
    )?;
    store
        .put("c", "4".into())
        .await
        .map_err(|e| format!("put c=4: {e}"))?;
    check(
        "watch: update (key, value, operation, seen_current)",
        next_update("watch: update", &mut watch).await?,
        put("c", "4", true),
    )?;
    let mut keys: Vec<String> = within("keys", WAIT, async {
        store
            .keys()
            .await
            .map_err(|e| format!("keys: {e}"))?
            .map(|k| k.map_err(|e| format!("keys: {e}")))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, String>>()
    })
    .await??;
    keys.sort();
    check("keys", keys, vec!["a".into(), "b".into(), "c".into()])?;
    let history: Vec<String> = within("history of a", WAIT, async {
        store
            .history("a")
            .await
            .map_err(|e| format!("history of a: {e}"))?
            .map(|e| {
                e.map(|e| String::from_utf8_lossy(&e.value).into_owned())
                    .map_err(|e| format!("history of a: {e}"))
            })
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, String>>()
    })
    .await??;
    check("history of a", history, vec!["1".into(), "3".into()])?;
    store
        .delete("b")
        .await
        .map_err(|e| format!("delete b: {e}"))?;
    check(
        "watch: delete (key, value, operation, seen_current)",
        next_update("watch: delete", &mut watch).await?,
        ("b".into(), String::new(), Operation::Delete, true),
    )?;
    drop(watch);
    js.delete_key_value("CF")
        .await
        .map_err(|e| format!("delete bucket: {e}"))?;
    Ok(Outcome::Pass)
}

/// The object store scenario's big object: 5 MiB, byte i = (i*7) % 251.
fn big_object() -> Vec<u8> {
    (0..5 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect()
}

/// All of an object, read through the client (which checks its SHA-256
/// digest at the end).
async fn read_object(
    store: &jetstream::object_store::ObjectStore,
    name: &str,
) -> Result<Vec<u8>, String> {
    use tokio::io::AsyncReadExt;
    within(&format!("get {name}"), WAIT, async {
        let mut object = store
            .get(name)
            .await
            .map_err(|e| format!("get {name}: {e}"))?;
        let mut data = Vec::new();
        object
            .read_to_end(&mut data)
            .await
            .map_err(|e| format!("read {name}: {e}"))?;
        Ok(data)
    })
    .await?
}

async fn object_store(url: &str) -> Verdict {
    use jetstream::object_store;
    let js = jetstream_of(connect(url).await?);
    let store = js
        .create_object_store(object_store::Config {
            bucket: "CF".into(),
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("create object store CF: {e}"))?;
    let big = big_object();
    store
        .put("big", &mut big.as_slice())
        .await
        .map_err(|e| format!("put big: {e}"))?;
    store
        .put("small", &mut &b"hello"[..])
        .await
        .map_err(|e| format!("put small: {e}"))?;
    let read = read_object(&store, "big").await?;
    check("get big: length", read.len(), big.len())?;
    if let Some(at) = read.iter().zip(&big).position(|(a, b)| a != b) {
        return Err(format!(
            "get big: byte {at}: saw {}, expected {}",
            read[at], big[at]
        ));
    }
    let info = store
        .info("big")
        .await
        .map_err(|e| format!("info big: {e}"))?;
    // async-nats cuts objects into 128 KiB chunks.
    check(
        "info big (size, chunks)",
        (info.size, info.chunks),
        (5_242_880, 40),
    )?;
    let mut names: Vec<String> = within("list", WAIT, async {
        store
            .list()
            .await
            .map_err(|e| format!("list: {e}"))?
            .map(|o| o.map(|o| o.name).map_err(|e| format!("list: {e}")))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, String>>()
    })
    .await??;
    names.sort();
    check("list", names, vec!["big".into(), "small".into()])?;
    store
        .put("small", &mut &b"hello again"[..])
        .await
        .map_err(|e| format!("put small again: {e}"))?;
    check(
        "get small after the second put",
        String::from_utf8_lossy(&read_object(&store, "small").await?).into_owned(),
        "hello again".into(),
    )?;
    store
        .delete("big")
        .await
        .map_err(|e| format!("delete big: {e}"))?;
    let gone = match store.get("big").await {
        Ok(_) => "the object".to_string(),
        Err(e) => e.kind().to_string(),
    };
    check(
        "get big after delete",
        gone,
        object_store::GetErrorKind::NotFound.to_string(),
    )?;
    js.delete_object_store("CF")
        .await
        .map_err(|e| format!("delete object store CF: {e}"))?;
    Ok(Outcome::Pass)
}
