//! Clusters joined by gateways, in memory (the route tests' net):
//! handshakes, interest-only forwarding, queue groups preferring the local
//! cluster, `_GR_` replies, and refusals.

use crate::config::Options;
use crate::config::cluster::RouteUrl;
use crate::config::gateway::{GatewayOptions, RemoteGateway};
use crate::server::route::tests::{Net, count, gateway_port, opts};

/// Server `i` of cluster `cluster` (routes to `routes`), gateway `gw`,
/// dialing the gateways `remotes` (name, server index).
fn member(
    i: usize,
    cluster: &str,
    routes: &[usize],
    gw: &str,
    remotes: &[(&str, usize)],
) -> Options {
    let mut o = opts(i, cluster, routes);
    o.gateway = Some(GatewayOptions {
        name: gw.into(),
        host: "127.0.0.1".into(),
        port: gateway_port(i),
        gateways: remotes
            .iter()
            .map(|&(name, j)| RemoteGateway {
                name: name.into(),
                urls: vec![
                    RouteUrl::parse(&format!("nats://127.0.0.1:{}", gateway_port(j))).unwrap(),
                ],
                tls: None,
            })
            .collect(),
        ..GatewayOptions::default()
    });
    o
}

fn outbound(net: &Net, i: usize) -> Vec<String> {
    net.servers[i]
        .gateway_conns()
        .0
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn two_clusters_connect_both_ways_and_messages_follow_interest() {
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 1)]),
        member(1, "B", &[], "GB", &[]),
    ]);
    assert_eq!(outbound(&net, 0), ["GB"]);
    assert_eq!(outbound(&net, 1), ["GA"], "GB dialed back");
    let sub = net.client(1);
    net.send(1, sub, b"SUB foo 1\r\n");
    let p = net.client(0);
    net.send(0, p, b"PUB foo 2\r\nhi\r\nPUB other 1\r\nx\r\n");
    assert_eq!(net.read(1, sub), "MSG foo 1 2\r\nhi\r\n");
    // Nothing goes out without interest.
    let before = net.servers[0].stats().counters.out_msgs;
    net.send(0, p, b"PUB nobody 1\r\nx\r\n");
    assert_eq!(net.servers[0].stats().counters.out_msgs, before);
}

#[test]
fn a_queue_group_prefers_its_own_cluster() {
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 1)]),
        member(1, "B", &[], "GB", &[]),
    ]);
    let local = net.client(0);
    let remote = net.client(1);
    net.send(0, local, b"SUB w g 1\r\n");
    net.send(1, remote, b"SUB w g 1\r\n");
    let p = net.client(0);
    for _ in 0..20 {
        net.send(0, p, b"PUB w 1\r\nx\r\n");
    }
    assert_eq!(count(&net.read(0, local), "MSG w"), 20);
    assert_eq!(count(&net.read(1, remote), "MSG w"), 0);
    // With no member at home, the other cluster's takes them.
    net.send(0, local, b"UNSUB 1\r\n");
    for _ in 0..20 {
        net.send(0, p, b"PUB w 1\r\nx\r\n");
    }
    assert_eq!(count(&net.read(1, remote), "MSG w"), 20);
}

#[test]
fn a_publisher_without_echo_alone_in_its_group_at_home_reaches_the_other_cluster() {
    // The only member in cluster A is the publisher, which may not get its
    // own messages: the group's member in B takes them.
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 1)]),
        member(1, "B", &[], "GB", &[]),
    ]);
    let remote = net.client(1);
    net.send(1, remote, b"SUB w g 1\r\n");
    let p = net.client_with(0, r#"{"echo":false}"#);
    net.send(0, p, b"SUB w g 1\r\n");
    for _ in 0..5 {
        net.send(0, p, b"PUB w 1\r\nx\r\n");
    }
    assert_eq!(count(&net.read(1, remote), "MSG w"), 5);
    assert_eq!(count(&net.read(0, p), "MSG w"), 0);
}

#[test]
fn a_cluster_behind_the_gateway_is_reached_once_through_each_server() {
    // Cluster A of two servers, cluster B of one: every A server has its
    // own outbound to B, and a message reaches B's subscriber once.
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 2)]),
        member(1, "A", &[0], "GA", &[("GB", 2)]),
        member(2, "B", &[], "GB", &[]),
    ]);
    let sub = net.client(2);
    net.send(2, sub, b"SUB x 1\r\n");
    let a0 = net.client(0);
    let a1 = net.client(1);
    net.send(0, a0, b"SUB x 1\r\n");
    net.send(0, a0, b"PUB x 1\r\na\r\n");
    net.send(1, a1, b"PUB x 1\r\nb\r\n");
    let got = net.read(2, sub);
    assert_eq!(
        (
            count(&got, "MSG x"),
            got.contains("\r\na\r\n"),
            got.contains("\r\nb\r\n")
        ),
        (2, true, true),
        "{got}"
    );
    // The A subscriber got both too, once each.
    assert_eq!(count(&net.read(0, a0), "MSG x"), 2);
}

#[test]
fn a_gr_reply_reaches_the_requester_in_the_other_cluster() {
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 1)]),
        member(1, "B", &[], "GB", &[]),
    ]);
    let responder = net.client(1);
    net.send(1, responder, b"SUB svc 1\r\n");
    // A request whose reply is mapped, as nats-server maps it.
    let hash = |s: &str| String::from_utf8(super::hash6(s).to_vec()).unwrap();
    let server = net.servers[0].server_id().to_string();
    let requester = net.client(0);
    net.send(0, requester, b"SUB inbox.1 5\r\n");
    let mapped = format!("_GR_.{}.{}.inbox.1", hash("GA"), hash(&server));
    // The request leaves A with the mapped reply (sent by a route-less
    // server here as a plain publish of the mapped subject is refused;
    // inject it as cluster A's server would forward it).
    let gw = net.servers[1].gateway_conns().1[0];
    let line = format!("RMSG $G svc {mapped} 4\r\nping\r\n");
    let now = crate::server::route::tests::now_at(net.now_ns);
    net.servers[1].handle(
        now,
        crate::server::Event::Received {
            conn: gw,
            bytes: line.as_bytes(),
        },
    );
    net.settle();
    assert_eq!(
        net.read(1, responder),
        "MSG svc 1 inbox.1 4\r\nping\r\n",
        "the plain reply"
    );
    net.send(1, responder, b"PUB inbox.1 4\r\npong\r\n");
    assert_eq!(net.read(0, requester), "MSG inbox.1 5 4\r\npong\r\n");
}

#[test]
fn a_reply_goes_out_mapped_so_the_answer_comes_back_before_the_interest_arrives() {
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 1)]),
        member(1, "B", &[], "GB", &[]),
    ]);
    let responder = net.client(1);
    net.send(1, responder, b"SUB svc 1\r\n");
    // What A tells B of its interest is held back: B does not know of the
    // requester's inbox when the answer is published.
    let inbound = net.servers[0].gateway_conns().1[0];
    net.held.insert((0, inbound), Vec::new());
    let requester = net.client(0);
    net.send(
        0,
        requester,
        b"SUB inbox.1 5\r\nPUB svc inbox.1 4\r\nping\r\n",
    );
    assert_eq!(net.read(1, responder), "MSG svc 1 inbox.1 4\r\nping\r\n");
    net.send(1, responder, b"PUB inbox.1 4\r\npong\r\n");
    assert_eq!(net.read(0, requester), "MSG inbox.1 5 4\r\npong\r\n");
    // A subscription older than 2 s no longer maps: a reply to it travels
    // as it is (B then needs the interest, still held here).
    net.advance(2_500);
    // (Their servers' PINGs.)
    net.read(1, responder);
    net.read(0, requester);
    net.send(0, requester, b"PUB svc inbox.1 4\r\nping\r\n");
    assert_eq!(net.read(1, responder), "MSG svc 1 inbox.1 4\r\nping\r\n");
    net.send(1, responder, b"PUB inbox.1 4\r\npong\r\n");
    assert_eq!(net.read(0, requester), "");
}

#[test]
fn a_gateway_of_another_name_is_refused_by_the_dialer() {
    let net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GX", 1)]),
        member(1, "B", &[], "GB", &[]),
    ]);
    assert!(outbound(&net, 0).is_empty());
    assert!(
        net.logs.iter().any(|l| l.contains(
            "Connection from \"GA\" rejected, wanted to connect to \"GX\", this is \"GB\""
        )),
        "{:#?}",
        net.logs
    );
}

#[test]
fn a_cluster_member_without_gateways_configured_joins_through_its_routes() {
    // Only S0 names GB; S1 learns it from S0's route.
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 2)]),
        member(1, "A", &[0], "GA", &[]),
        member(2, "B", &[], "GB", &[]),
    ]);
    assert_eq!(outbound(&net, 0), ["GB"]);
    assert_eq!(outbound(&net, 1), ["GB"], "told by its route");
    assert_eq!(outbound(&net, 2), ["GA"]);
    let sub = net.client(2);
    net.send(2, sub, b"SUB foo 1\r\n");
    let p = net.client(1);
    net.send(1, p, b"PUB foo 2\r\nhi\r\n");
    assert_eq!(net.read(2, sub), "MSG foo 1 2\r\nhi\r\n");
}

#[test]
fn a_gateways_info_names_every_server_of_its_cluster_and_the_dialer_fails_over() {
    // S0 (cluster A) knows only S2's URL; S2's INFO also names S1, the
    // other server of cluster B.
    let mut net = Net::new(vec![
        member(0, "A", &[], "GA", &[("GB", 2)]),
        member(1, "B", &[], "GB", &[]),
        member(2, "B", &[1], "GB", &[]),
    ]);
    let out = net.servers[0].gateway_conns().0;
    assert_eq!(out.len(), 1);
    let mut p = net.client(0);
    let sub = net.client(1);
    net.send(1, sub, b"SUB foo 1\r\n");
    net.send(0, p, b"PUB foo 1\r\na\r\n");
    assert_eq!(net.read(1, sub), "MSG foo 1 1\r\na\r\n");
    // The server S0 dialed goes: S0 dials the other one, which S2 named.
    net.kill(2);
    net.advance(3_000);
    assert_eq!(outbound(&net, 0), ["GB"], "{:#?}", net.logs);
    p = net.client(0);
    net.send(0, p, b"PUB foo 1\r\nb\r\n");
    // (After S1's INFO and PING of the meantime.)
    let got = net.read(1, sub);
    assert!(got.ends_with("MSG foo 1 1\r\nb\r\n"), "{got}");
}

#[test]
fn an_advertised_address_is_what_other_clusters_and_routes_are_told() {
    let listener = gateway_port(0);
    for (advertise, url, port) in [
        (
            "gw.example.com:7000".to_string(),
            "gw.example.com:7000".to_string(),
            7000,
        ),
        (
            "gw.example.com".to_string(),
            format!("gw.example.com:{listener}"),
            listener,
        ),
    ] {
        let mut o = member(0, "A", &[], "GA", &[]);
        o.gateway.as_mut().unwrap().advertise = Some(advertise);
        let net = Net::new(vec![o]);
        let info = String::from_utf8(net.servers[0].gateway_info_line()).unwrap();
        assert!(
            info.contains(&format!("\"gateway_url\":\"{url}\"")),
            "{info}"
        );
        assert!(
            info.contains(&format!("\"gateway_urls\":[\"{url}\"]")),
            "{info}"
        );
        assert!(
            info.contains(&format!("\"host\":\"gw.example.com\",\"port\":{port}")),
            "{info}"
        );
        assert!(
            net.logs.iter().any(|l| l.contains(&format!(
                "Advertise address for gateway \"GA\" is set to {url}"
            ))),
            "{:#?}",
            net.logs
        );
    }
}
