//! Clusters and leaf nodes over real sockets: natrix servers routed to
//! each other and to nats-server 2.9.10 and 2.15.1, and leaf nodes and hubs
//! of either, carrying the official Rust client's traffic: messages cross
//! servers, a queue group takes each message once cluster-wide, requests
//! find responders on other servers, and a client fails over when its
//! server is killed.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use natrix_tests::{ServerProcess, free_port, natrix_bin, reference_215, reference_or_skip};

/// A cluster member: its process and its cluster port.
struct Member {
    server: ServerProcess,
    cluster_port: u16,
}

/// Starts `bin` as member `name` of cluster `C1`, listening for routes on a
/// free port and dialing `seeds`.
fn member(bin: &Path, name: &str, seeds: &[&Member]) -> Member {
    let cluster_port = free_port();
    let listen = format!("nats://127.0.0.1:{cluster_port}");
    let routes = seeds
        .iter()
        .map(|m| format!("nats://127.0.0.1:{}", m.cluster_port))
        .collect::<Vec<_>>()
        .join(",");
    let mut args = vec!["-n", name, "--cluster_name", "C1", "--cluster", &listen];
    if !routes.is_empty() {
        args.extend(["--routes", &routes]);
    }
    Member {
        server: ServerProcess::start(bin, &args),
        cluster_port,
    }
}

async fn connect(m: &Member) -> async_nats::Client {
    async_nats::connect(m.server.url()).await.unwrap()
}

/// Publishes on `from` until `sub` (a client of another server) gets the
/// message: interest crosses routes a moment after the subscription.
pub(crate) async fn until_received(
    from: &async_nats::Client,
    subject: &str,
    sub: &mut async_nats::Subscriber,
) -> async_nats::Message {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        from.publish(subject.to_string(), "ping".into())
            .await
            .unwrap();
        from.flush().await.unwrap();
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), sub.next()).await {
            return m;
        }
        assert!(Instant::now() < deadline, "no message crossed to {subject}");
    }
}

/// Drains what `sub` gets until it is quiet for 300 ms.
pub(crate) async fn drain(sub: &mut async_nats::Subscriber) -> Vec<async_nats::Message> {
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        got.push(m);
    }
    got
}

/// Every client sees every other's messages once, a queue group spread
/// over the servers takes each message once, and a request finds its
/// responder on another server.
async fn check_cluster(members: &[&Member]) {
    let clients: Vec<async_nats::Client> =
        futures::future::join_all(members.iter().map(|m| connect(m))).await;
    // Interest everywhere first.
    let mut subs = Vec::new();
    for c in &clients {
        let s = c.subscribe("news.>").await.unwrap();
        c.flush().await.unwrap();
        subs.push(s);
    }
    for (i, s) in subs.iter_mut().enumerate() {
        let from = &clients[(i + 1) % clients.len()];
        until_received(from, "news.warmup", s).await;
    }
    for s in &mut subs {
        drain(s).await;
    }
    for (i, c) in clients.iter().enumerate() {
        c.publish(format!("news.{i}"), format!("from {i}").into())
            .await
            .unwrap();
        c.flush().await.unwrap();
    }
    for (i, s) in subs.iter_mut().enumerate() {
        let mut got: Vec<String> = drain(s)
            .await
            .into_iter()
            .map(|m| m.subject.to_string())
            .collect();
        got.sort();
        let want: Vec<String> = (0..clients.len()).map(|k| format!("news.{k}")).collect();
        assert_eq!(got, want, "client of server {i}: each message once");
    }

    // A queue group with a member on every server.
    let mut members_subs = Vec::new();
    for c in &clients {
        members_subs.push(c.queue_subscribe("jobs", "workers".into()).await.unwrap());
        c.flush().await.unwrap();
    }
    // Wait until every server has heard of every member: a plain probe
    // on the same subject from the last server reaches the first.
    let mut probe = clients[0].subscribe("jobs").await.unwrap();
    clients[0].flush().await.unwrap();
    let last = clients.last().unwrap();
    until_received(last, "jobs", &mut probe).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in &mut members_subs {
        drain(s).await;
    }
    drain(&mut probe).await;
    let n = 300;
    for i in 0..n {
        let from = &clients[i % clients.len()];
        from.publish("jobs", i.to_string().into()).await.unwrap();
    }
    for c in &clients {
        c.flush().await.unwrap();
    }
    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    for s in &mut members_subs {
        let got = drain(s).await;
        per_member.push(got.len());
        seen.extend(
            got.into_iter()
                .map(|m| String::from_utf8(m.payload.to_vec()).unwrap()),
        );
    }
    seen.sort_by_key(|s| s.parse::<usize>().unwrap());
    let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    assert_eq!(seen, want, "each job once cluster-wide: {per_member:?}");
    assert!(
        per_member.iter().all(|&c| c > 0),
        "every server's member takes jobs: {per_member:?}"
    );

    // Request/reply across servers, with headers.
    let responder = clients.last().unwrap().clone();
    let mut service = responder.subscribe("svc.echo").await.unwrap();
    responder.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(m) = service.next().await {
            if let Some(reply) = m.reply {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("X-Echo", "yes");
                let _ = responder
                    .publish_with_headers(reply, headers, m.payload)
                    .await;
            }
        }
    });
    let requester = &clients[0];
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match tokio::time::timeout(
            Duration::from_millis(500),
            requester.request("svc.echo", "hello".into()),
        )
        .await
        {
            Ok(Ok(m)) => break m,
            _ => assert!(Instant::now() < deadline, "no answer crossed"),
        }
    };
    assert_eq!(&answer.payload[..], b"hello");
    assert_eq!(
        answer
            .headers
            .as_ref()
            .and_then(|h| h.get("X-Echo"))
            .map(|v| v.as_str()),
        Some("yes")
    );
}

#[tokio::test]
async fn three_natrix_servers_form_a_cluster() {
    let bin = natrix_bin();
    let a = member(&bin, "A", &[]);
    let b = member(&bin, "B", &[&a]);
    let c = member(&bin, "C", &[&a]);
    check_cluster(&[&a, &b, &c]).await;
}

#[tokio::test]
async fn natrix_is_the_seed_of_a_cluster_with_both_reference_servers() {
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    let a = member(&natrix_bin(), "A", &[]);
    let b = member(&new, "B", &[&a]);
    let c = member(&old, "C", &[&a]);
    check_cluster(&[&a, &b, &c]).await;
}

#[tokio::test]
async fn natrix_joins_a_cluster_of_reference_servers() {
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    let a = member(&new, "A", &[]);
    let b = member(&old, "B", &[&a]);
    let c = member(&natrix_bin(), "C", &[&a]);
    let d = member(&natrix_bin(), "D", &[&b]);
    check_cluster(&[&a, &b, &c, &d]).await;
}

#[tokio::test]
async fn a_client_fails_over_when_its_server_is_killed() {
    let bin = natrix_bin();
    let a = member(&bin, "A", &[]);
    let b = member(&bin, "B", &[&a]);
    let c = member(&bin, "C", &[&a]);
    // The client is given A only: it learns B and C from INFO.
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(a.server.url())
        .await
        .unwrap();
    let publisher = connect(&c).await;
    let mut sub = client.subscribe("alive").await.unwrap();
    client.flush().await.unwrap();
    until_received(&publisher, "alive", &mut sub).await;
    drop(a);
    // After the reconnect (to B or C) the subscription is made again
    // there and messages flow.
    let m = until_received(&publisher, "alive", &mut sub).await;
    assert_eq!(&m.payload[..], b"ping");
    let port = client.server_info().port;
    assert!(
        port == b.server.port || port == c.server.port,
        "reconnected to another member: {port}"
    );
}

/// Starts `bin` with a config file `conf` written into a fresh directory.
pub(crate) fn with_conf(bin: &Path, name: &str, conf: &str) -> ServerProcess {
    let dir = natrix_tests::test_dir("leaf", name);
    let file = dir.join("server.conf");
    std::fs::write(&file, conf).unwrap();
    ServerProcess::start(bin, &["-c", file.to_str().unwrap()])
}

/// A hub listening for leaf nodes on a free port; that port.
fn hub(bin: &Path, name: &str) -> (ServerProcess, u16) {
    let port = free_port();
    let conf = format!("server_name: {name}\nleafnodes {{ listen: \"127.0.0.1:{port}\" }}\n");
    (with_conf(bin, name, &conf), port)
}

/// A leaf node of the hub at `hub_port`.
fn leaf(bin: &Path, name: &str, hub_port: u16) -> ServerProcess {
    let conf = format!(
        "server_name: {name}\nleafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{hub_port}\" }} ] }}\n"
    );
    with_conf(bin, name, &conf)
}

/// Messages, a queue group and a request cross between a leaf node and
/// its hub, both ways.
async fn check_leaf(hub: &ServerProcess, leaf: &ServerProcess) {
    let h = async_nats::connect(hub.url()).await.unwrap();
    let l = async_nats::connect(leaf.url()).await.unwrap();
    check_leaf_clients(&h, &l).await;
}

/// [`check_leaf`] with a client of each side.
pub(crate) async fn check_leaf_clients(h: &async_nats::Client, l: &async_nats::Client) {
    for (from, to, what) in [(h, l, "hub to leaf"), (l, h, "leaf to hub")] {
        let mut sub = to.subscribe("edge.>").await.unwrap();
        to.flush().await.unwrap();
        let m = until_received(from, "edge.x", &mut sub).await;
        assert_eq!(&m.payload[..], b"ping", "{what}");
        drain(&mut sub).await;
        for i in 0..20 {
            from.publish(format!("edge.{i}"), "m".into()).await.unwrap();
        }
        from.flush().await.unwrap();
        assert_eq!(drain(&mut sub).await.len(), 20, "{what}: each message once");
    }
    // A responder on the leaf answers a request from the hub.
    let mut svc = l.subscribe("edge.svc").await.unwrap();
    l.flush().await.unwrap();
    let responder = l.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(r) = m.reply {
                let _ = responder.publish(r, m.payload).await;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout(
            Duration::from_millis(500),
            h.request("edge.svc", "q".into()),
        )
        .await
        {
            Ok(Ok(m)) => {
                assert_eq!(&m.payload[..], b"q");
                break;
            }
            _ => assert!(Instant::now() < deadline, "no answer from the leaf"),
        }
    }
}

#[tokio::test]
async fn natrix_leaf_nodes_of_a_natrix_hub() {
    let bin = natrix_bin();
    let (h, port) = hub(&bin, "H");
    let l = leaf(&bin, "L", port);
    check_leaf(&h, &l).await;
}

#[tokio::test]
async fn natrix_is_a_leaf_node_of_reference_hubs() {
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    for bin in [old, new] {
        let (h, port) = hub(&bin, "H");
        let l = leaf(&natrix_bin(), "L", port);
        check_leaf(&h, &l).await;
    }
}

#[tokio::test]
async fn reference_leaf_nodes_of_a_natrix_hub() {
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    let (h, port) = hub(&natrix_bin(), "H");
    let l29 = leaf(&old, "L29", port);
    let l215 = leaf(&new, "L215", port);
    check_leaf(&h, &l29).await;
    check_leaf(&h, &l215).await;
    // Between the two leaf nodes, through the natrix hub.
    let a = async_nats::connect(l29.url()).await.unwrap();
    let b = async_nats::connect(l215.url()).await.unwrap();
    let mut sub = b.subscribe("across").await.unwrap();
    b.flush().await.unwrap();
    until_received(&a, "across", &mut sub).await;
}

/// A hub whose leaf nodes connect over TLS and show a certificate (the
/// handshake before `INFO` with `first`).
fn tls_hub_with(
    bin: &Path,
    name: &str,
    pki: &natrix_tests::pki::Pki,
    first: bool,
) -> (ServerProcess, u16) {
    let port = free_port();
    let conf = format!(
        "server_name: {name}\nleafnodes {{ listen: \"127.0.0.1:{port}\"\ntls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true{} }} }}\n",
        pki.arg("peer.pem"),
        pki.arg("peer.key"),
        pki.arg("ca.pem"),
        if first { ", handshake_first: true" } else { "" }
    );
    (with_conf(bin, &format!("tls-{name}"), &conf), port)
}

fn tls_hub(bin: &Path, name: &str, pki: &natrix_tests::pki::Pki) -> (ServerProcess, u16) {
    tls_hub_with(bin, name, pki, false)
}

/// A leaf node of the hub at `hub_port`, over TLS (the handshake first
/// with `first`).
fn tls_leaf_with(
    bin: &Path,
    name: &str,
    hub_port: u16,
    pki: &natrix_tests::pki::Pki,
    first: bool,
) -> ServerProcess {
    let conf = format!(
        "server_name: {name}\nleafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{hub_port}\"\ntls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\"{} }} }} ] }}\n",
        pki.arg("peer.pem"),
        pki.arg("peer.key"),
        pki.arg("ca.pem"),
        if first { ", handshake_first: true" } else { "" }
    );
    with_conf(bin, &format!("tls-{name}"), &conf)
}

fn tls_leaf(bin: &Path, name: &str, hub_port: u16, pki: &natrix_tests::pki::Pki) -> ServerProcess {
    tls_leaf_with(bin, name, hub_port, pki, false)
}

#[tokio::test]
async fn a_leaf_node_without_tls_is_told_why_its_tls_hub_is_out_of_reach() {
    let pki = natrix_tests::pki::Pki::new("leafs-plain");
    pki.peer("ca", "peer");
    let bin = natrix_bin();
    let (_h, port) = tls_hub_with(&bin, "PH", &pki, false);
    let dir = natrix_tests::test_dir("leaf", "plain-leaf");
    let (conf, log) = (dir.join("leaf.conf"), dir.join("leaf.log"));
    std::fs::write(
        &conf,
        format!(
            "server_name: PL\nleafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{port}\" }} ] }}\n"
        ),
    )
    .unwrap();
    let _l = ServerProcess::start(
        &bin,
        &["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("The hub requires TLS") {
            assert!(!text.contains("registered"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no refusal: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn leaf_nodes_shake_hands_first_with_natrix_and_2_15() {
    let pki = natrix_tests::pki::Pki::new("leafs-first");
    pki.peer("ca", "peer");
    let bin = natrix_bin();
    // Names of their own: each server's files are under its name.
    let (h, port) = tls_hub_with(&bin, "FH", &pki, true);
    let l = tls_leaf_with(&bin, "FL", port, &pki, true);
    check_leaf(&h, &l).await;
    // 2.9.10 has no handshake_first.
    let Some(new) = reference_215() else {
        return;
    };
    let l = tls_leaf_with(&new, "FL215", port, &pki, true);
    check_leaf(&h, &l).await;
    let (h, port) = tls_hub_with(&new, "FH215", &pki, true);
    let l = tls_leaf_with(&bin, "FL-H215", port, &pki, true);
    check_leaf(&h, &l).await;
}

#[tokio::test]
async fn leaf_nodes_on_tls_with_natrix_and_both_reference_servers() {
    let pki = natrix_tests::pki::Pki::new("leafs");
    pki.peer("ca", "peer");
    let bin = natrix_bin();
    let (h, port) = tls_hub(&bin, "H", &pki);
    let l = tls_leaf(&bin, "L", port, &pki);
    check_leaf(&h, &l).await;
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    // Reference leaf nodes of the natrix hub.
    for (ref_bin, name) in [(&old, "L29"), (&new, "L215")] {
        let l = tls_leaf(ref_bin, name, port, &pki);
        check_leaf(&h, &l).await;
    }
    // natrix as a leaf node of reference hubs.
    for (ref_bin, name) in [(&old, "H29"), (&new, "H215")] {
        let (h, port) = tls_hub(ref_bin, name, &pki);
        let l = tls_leaf(&bin, &format!("L-{name}"), port, &pki);
        check_leaf(&h, &l).await;
    }
}

/// A one-server cluster with gateway `name` on a free port, dialing the
/// gateways `remotes` (name, port); its gateway port.
fn gateway_server(bin: &Path, name: &str, remotes: &[(&str, u16)]) -> (ServerProcess, u16) {
    let port = free_port();
    let list: Vec<String> = remotes
        .iter()
        .map(|(n, p)| format!("{{ name: {n}, url: \"nats://127.0.0.1:{p}\" }}"))
        .collect();
    let conf = format!(
        "server_name: S{name}\ngateway {{ name: {name}, listen: \"127.0.0.1:{port}\", gateways: [ {} ] }}\n",
        list.join(", ")
    );
    (with_conf(bin, &format!("gw-{name}"), &conf), port)
}

/// Messages, queue groups (local first) and requests cross between the
/// clusters of `servers`, every pair both ways.
async fn check_gateways(servers: &[&ServerProcess]) {
    let clients: Vec<async_nats::Client> =
        futures::future::join_all(servers.iter().map(|s| async_nats::connect(s.url())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    for (i, to) in clients.iter().enumerate() {
        for (j, from) in clients.iter().enumerate() {
            if i == j {
                continue;
            }
            let subject = format!("gw.{j}.{i}");
            let mut sub = to.subscribe(subject.clone()).await.unwrap();
            to.flush().await.unwrap();
            until_received(from, &subject, &mut sub).await;
            drain(&mut sub).await;
            for _ in 0..10 {
                from.publish(subject.clone(), "m".into()).await.unwrap();
            }
            from.flush().await.unwrap();
            assert_eq!(
                drain(&mut sub).await.len(),
                10,
                "cluster {j} to {i}: each once"
            );
            // A request from j answered in i (the reply may come back
            // under a `_GR_.` subject and must reach the requester).
            let mut svc = to.subscribe(format!("svc.{i}")).await.unwrap();
            to.flush().await.unwrap();
            let responder = to.clone();
            let task = tokio::spawn(async move {
                while let Some(m) = svc.next().await {
                    if let Some(r) = m.reply {
                        let _ = responder.publish(r, m.payload).await;
                        let _ = responder.flush().await;
                    }
                }
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let asked = from.request(format!("svc.{i}"), "q".into());
                match tokio::time::timeout(Duration::from_millis(500), asked).await {
                    Ok(Ok(m)) => {
                        assert_eq!(&m.payload[..], b"q");
                        break;
                    }
                    _ => assert!(Instant::now() < deadline, "no answer from {i} to {j}"),
                }
            }
            // A new client's first request, whose inbox subscription is
            // fresh: its reply goes out mapped, so the answer comes back
            // even before the inbox's interest reaches the other cluster.
            let fresh = async_nats::connect(servers[j].url()).await.unwrap();
            let asked = fresh.request(format!("svc.{i}"), "first".into());
            let m = tokio::time::timeout(Duration::from_secs(2), asked)
                .await
                .unwrap_or_else(|_| panic!("no answer to a first request from {j} to {i}"))
                .unwrap();
            assert_eq!(&m.payload[..], b"first");
            task.abort();
        }
    }
}

/// The `tls {}` block of a route or gateway configuration: the peer
/// certificate and the CA of `pki`.
fn peer_tls(pki: &natrix_tests::pki::Pki) -> String {
    format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", timeout: 2 }}",
        pki.arg("peer.pem"),
        pki.arg("peer.key"),
        pki.arg("ca.pem")
    )
}

/// A member of cluster `C1` whose routes are on TLS, dialing `seeds`.
fn tls_member(bin: &Path, name: &str, seeds: &[&Member], pki: &natrix_tests::pki::Pki) -> Member {
    let cluster_port = free_port();
    let routes: Vec<String> = seeds
        .iter()
        .map(|m| format!("\"nats-route://127.0.0.1:{}\"", m.cluster_port))
        .collect();
    let conf = format!(
        "server_name: {name}\ncluster {{ name: C1, listen: \"127.0.0.1:{cluster_port}\", routes: [ {} ]\n{} }}\n",
        routes.join(", "),
        peer_tls(pki)
    );
    Member {
        server: with_conf(bin, &format!("tls-{name}"), &conf),
        cluster_port,
    }
}

#[tokio::test]
async fn routes_on_tls_between_natrix_and_both_reference_servers() {
    let pki = natrix_tests::pki::Pki::new("routes");
    pki.peer("ca", "peer");
    let bin = natrix_bin();
    let a = tls_member(&bin, "A", &[], &pki);
    let mut members = vec![a];
    if let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) {
        let b = tls_member(&new, "B", &[&members[0]], &pki);
        let c = tls_member(&old, "C", &[&members[0]], &pki);
        members.extend([b, c]);
    }
    let d = tls_member(&bin, "D", &[&members[members.len() - 1]], &pki);
    members.push(d);
    let refs: Vec<&Member> = members.iter().collect();
    check_cluster(&refs).await;
}

#[tokio::test]
async fn a_route_without_the_cluster_certificate_is_refused() {
    let pki = natrix_tests::pki::Pki::new("routes-refused");
    pki.peer("ca", "peer");
    // Another authority's certificate for the second server.
    pki.issue("other", "stranger", "stranger-client");
    let bin = natrix_bin();
    let a_port = free_port();
    let dir = natrix_tests::test_dir("leaf", "tls-refused");
    let (a_conf, a_log) = (dir.join("a.conf"), dir.join("a.log"));
    let conf = format!(
        "server_name: A\ncluster {{ name: C1, listen: \"127.0.0.1:{a_port}\"\n{} }}\n",
        peer_tls(&pki)
    );
    std::fs::write(&a_conf, conf).unwrap();
    let a = ServerProcess::start(
        &bin,
        &[
            "-c",
            a_conf.to_str().unwrap(),
            "-l",
            a_log.to_str().unwrap(),
        ],
    );
    let cluster_port = free_port();
    let conf = format!(
        "server_name: X\ncluster {{ name: C1, listen: \"127.0.0.1:{cluster_port}\", routes: [ \"nats-route://127.0.0.1:{}\" ]\ntls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\" }} }}\n",
        a_port,
        pki.arg("stranger.pem"),
        pki.arg("stranger.key"),
        pki.arg("other.pem")
    );
    let x = with_conf(&bin, "tls-X", &conf);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = std::fs::read_to_string(&a_log).unwrap_or_default();
        if log.contains("TLS route handshake error") {
            assert!(!log.contains("registered"), "{log}");
            break;
        }
        assert!(Instant::now() < deadline, "no handshake error: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((a, x));
}

#[tokio::test]
async fn natrix_clusters_joined_by_gateways() {
    let bin = natrix_bin();
    let (b, bport) = gateway_server(&bin, "GB", &[]);
    let (a, _) = gateway_server(&bin, "GA", &[("GB", bport)]);
    check_gateways(&[&a, &b]).await;
}

#[tokio::test]
async fn a_natrix_cluster_joins_a_super_cluster_of_reference_servers() {
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    // natrix dials both; they learn each other from natrix and connect.
    let (b, bport) = gateway_server(&new, "GB", &[]);
    let (c, cport) = gateway_server(&old, "GC", &[]);
    let (a, _) = gateway_server(&natrix_bin(), "GA", &[("GB", bport), ("GC", cport)]);
    check_gateways(&[&a, &b, &c]).await;
}

/// A server `name` of cluster `cluster` (routes on `cluster_port`, to
/// `routes`) with gateway `gateway` on a free port, dialing `remotes`.
fn routed_gateway_server(
    bin: &Path,
    name: &str,
    cluster: (&str, u16, &[u16]),
    gateway: &str,
    remotes: &[(&str, u16)],
) -> ServerProcess {
    let (cname, cport, routes) = cluster;
    let routes: Vec<String> = routes
        .iter()
        .map(|p| format!("\"nats://127.0.0.1:{p}\""))
        .collect();
    let list: Vec<String> = remotes
        .iter()
        .map(|(n, p)| format!("{{ name: {n}, url: \"nats://127.0.0.1:{p}\" }}"))
        .collect();
    let conf = format!(
        "server_name: {name}\ncluster {{ name: {cname}, listen: \"127.0.0.1:{cport}\", routes: [ {} ] }}\n\
         gateway {{ name: {gateway}, listen: \"127.0.0.1:{}\", gateways: [ {} ] }}\n",
        routes.join(", "),
        free_port(),
        list.join(", ")
    );
    with_conf(bin, &format!("gwr-{name}"), &conf)
}

#[tokio::test]
async fn a_cluster_member_without_gateways_configured_is_told_of_them_by_its_routes() {
    let natrix = natrix_bin();
    // Each teaches the other.
    for (configured, told, name) in crate::leaf_auth::natrix_and_2_15_pairs() {
        let (b, bport) = gateway_server(&natrix, &format!("GB{name}"), &[]);
        let gb = format!("GB{name}");
        let a1_port = free_port();
        let a1 = routed_gateway_server(
            &configured,
            &format!("A1{name}"),
            ("GA", a1_port, &[]),
            "GA",
            &[(&gb, bport)],
        );
        let a2 = routed_gateway_server(
            &told,
            &format!("A2{name}"),
            ("GA", free_port(), &[a1_port]),
            "GA",
            &[],
        );
        let on_b = async_nats::connect(b.url()).await.unwrap();
        let from_a2 = async_nats::connect(a2.url()).await.unwrap();
        let mut sub = on_b.subscribe("across").await.unwrap();
        on_b.flush().await.unwrap();
        until_received(&from_a2, "across", &mut sub).await;
        let _ = a1;
    }
}

/// A gateway `name` on TLS, dialing `remotes`.
fn tls_gateway(
    bin: &Path,
    name: &str,
    remotes: &[(&str, u16)],
    pki: &natrix_tests::pki::Pki,
) -> (ServerProcess, u16) {
    let port = free_port();
    let list: Vec<String> = remotes
        .iter()
        .map(|(n, p)| format!("{{ name: {n}, url: \"nats://127.0.0.1:{p}\" }}"))
        .collect();
    let conf = format!(
        "server_name: S{name}\ngateway {{ name: {name}, listen: \"127.0.0.1:{port}\", gateways: [ {} ]\n{} }}\n",
        list.join(", "),
        peer_tls(pki)
    );
    (with_conf(bin, &format!("tls-gw-{name}"), &conf), port)
}

/// The `tls {}` block with certificate `cert` and authority `ca`.
fn tls_block(pki: &natrix_tests::pki::Pki, cert: &str, ca: &str) -> String {
    format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\" }}",
        pki.arg(&format!("{cert}.pem")),
        pki.arg(&format!("{cert}.key")),
        pki.arg(&format!("{ca}.pem"))
    )
}

#[tokio::test]
async fn a_remote_gateways_own_tls_block_wins_for_the_dialer() {
    // Each cluster has an authority of its own, and reaches the other with
    // a certificate the other's authority signed (the remote's tls block).
    let pki = natrix_tests::pki::Pki::new("gateways-own");
    pki.peer("ca", "peer-a");
    pki.issue("cab", "server-b", "client-b");
    pki.peer("cab", "peer-b");
    let (pa, pb) = (free_port(), free_port());
    let conf = |name: &str, port: u16, own: (&str, &str), other: (&str, u16, &str, &str)| {
        format!(
            "server_name: S{name}\ngateway {{ name: {name}, listen: \"127.0.0.1:{port}\"\n{}\ngateways: [ {{ name: {}, url: \"nats://127.0.0.1:{}\"\n{} }} ] }}\n",
            tls_block(&pki, own.0, own.1),
            other.0,
            other.1,
            tls_block(&pki, other.2, other.3)
        )
    };
    let bin = natrix_bin();
    let b_bin = reference_215().unwrap_or_else(|| bin.clone());
    let b = with_conf(
        &b_bin,
        "own-GB",
        &conf("GB", pb, ("peer-b", "cab"), ("GA", pa, "peer-a", "ca")),
    );
    let a = with_conf(
        &bin,
        "own-GA",
        &conf("GA", pa, ("peer-a", "ca"), ("GB", pb, "peer-b", "cab")),
    );
    check_gateways(&[&a, &b]).await;
}

#[tokio::test]
async fn gateways_on_tls_between_natrix_and_both_reference_servers() {
    let pki = natrix_tests::pki::Pki::new("gateways");
    pki.peer("ca", "peer");
    let bin = natrix_bin();
    let (b, bport) = tls_gateway(&bin, "GB", &[], &pki);
    let Some((old, new)) = reference_or_skip().zip(reference_215()) else {
        let (a, _) = tls_gateway(&bin, "GA", &[("GB", bport)], &pki);
        check_gateways(&[&a, &b]).await;
        return;
    };
    let (c, cport) = tls_gateway(&new, "GC", &[], &pki);
    let (d, dport) = tls_gateway(&old, "GD", &[], &pki);
    let (a, _) = tls_gateway(
        &bin,
        "GA",
        &[("GB", bport), ("GC", cport), ("GD", dport)],
        &pki,
    );
    check_gateways(&[&a, &b, &c, &d]).await;
}
