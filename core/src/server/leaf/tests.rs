//! Hubs and leaf nodes wired to each other in memory (the route tests'
//! net): handshakes, interest and messages both ways, with a cluster
//! behind the hub, queue groups, loops and refusals.

use crate::config::Options;
use crate::config::cluster::RouteUrl;
use crate::config::leafnodes::{LeafNodeOptions, LeafRemote};
use crate::server::route::tests::{Net, count, leaf_port, opts};

/// Server `i` as a hub (a leaf node listener), in cluster `cluster` with
/// routes to `routes` if `cluster` is not empty.
fn hub(i: usize, cluster: &str, routes: &[usize]) -> Options {
    let mut o = opts(i, cluster, routes);
    if cluster.is_empty() {
        o.cluster = None;
    }
    o.leafnodes = Some(LeafNodeOptions {
        port: Some(leaf_port(i)),
        ..LeafNodeOptions::default()
    });
    o
}

/// Server `i` as a leaf node of the hubs `hubs` (one remote each).
fn leaf(i: usize, hubs: &[usize]) -> Options {
    let mut o = opts(i, "", &[]);
    o.cluster = None;
    o.leafnodes = Some(LeafNodeOptions {
        remotes: hubs
            .iter()
            .map(|&h| LeafRemote {
                urls: vec![
                    RouteUrl::parse(&format!("nats-leaf://127.0.0.1:{}", leaf_port(h))).unwrap(),
                ],
                ..LeafRemote::default()
            })
            .collect(),
        ..LeafNodeOptions::default()
    });
    o
}

fn leafs(net: &Net, i: usize) -> usize {
    net.servers[i].leafs().len()
}

#[test]
fn a_leaf_and_its_hub_carry_messages_both_ways() {
    let mut net = Net::new(vec![hub(0, "", &[]), leaf(1, &[0])]);
    assert_eq!((leafs(&net, 0), leafs(&net, 1)), (1, 1));
    let on_leaf = net.client(1);
    net.send(1, on_leaf, b"SUB foo 1\r\n");
    let on_hub = net.client(0);
    net.send(0, on_hub, b"SUB bar 1\r\n");
    net.send(
        0,
        on_hub,
        b"PUB foo r.1 2\r\nhi\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhh\r\n",
    );
    assert_eq!(
        net.read(1, on_leaf),
        "MSG foo 1 r.1 2\r\nhi\r\nHMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhh\r\n"
    );
    net.send(1, on_leaf, b"PUB bar 2\r\nlb\r\n");
    assert_eq!(net.read(0, on_hub), "MSG bar 1 2\r\nlb\r\n");
    // Interest goes: nothing crosses once the subscriber left.
    net.send(1, on_leaf, b"UNSUB 1\r\n");
    let before = net.servers[0].stats().counters.out_msgs;
    net.send(0, on_hub, b"PUB foo 1\r\nx\r\n");
    assert_eq!(net.servers[0].stats().counters.out_msgs, before);
}

#[test]
fn interest_and_messages_cross_a_cluster_behind_the_hub() {
    let mut net = Net::new(vec![hub(0, "C1", &[]), hub(1, "C1", &[0]), leaf(2, &[0])]);
    let on_leaf = net.client(2);
    net.send(2, on_leaf, b"SUB foo 1\r\n");
    let far = net.client(1);
    net.send(1, far, b"SUB bar 1\r\n");
    // A publish on the other hub reaches the leaf through the route.
    net.send(1, far, b"PUB foo 1\r\na\r\n");
    assert_eq!(net.read(2, on_leaf), "MSG foo 1 1\r\na\r\n");
    // And the leaf's reaches it back.
    net.send(2, on_leaf, b"PUB bar 1\r\nb\r\n");
    assert_eq!(net.read(1, far), "MSG bar 1 1\r\nb\r\n");
}

#[test]
fn a_queue_group_spread_over_hub_and_leaf_takes_each_message_once() {
    let mut net = Net::new(vec![hub(0, "", &[]), leaf(1, &[0])]);
    let a = net.client(0);
    let b = net.client(1);
    let c = net.client(1);
    for (i, id) in [(0, a), (1, b), (1, c)] {
        net.send(i, id, b"SUB work g 1\r\n");
    }
    let p = net.client(0);
    let q = net.client(1);
    for _ in 0..100 {
        net.send(0, p, b"PUB work 1\r\nx\r\n");
        net.send(1, q, b"PUB work 1\r\nx\r\n");
    }
    let got = [net.read(0, a), net.read(1, b), net.read(1, c)].map(|s| count(&s, "MSG work"));
    assert_eq!(got.iter().sum::<usize>(), 200, "{got:?}");
}

#[test]
fn two_servers_each_the_others_hub_are_a_loop_refused() {
    // S0 dials S1 and S1 dials S0: each hears its own $LDS back.
    let mut a = hub(0, "", &[]);
    a.leafnodes.as_mut().unwrap().remotes = leaf(0, &[1]).leafnodes.unwrap().remotes;
    let mut b = hub(1, "", &[]);
    b.leafnodes.as_mut().unwrap().remotes = leaf(1, &[0]).leafnodes.unwrap().remotes;
    let net = Net::new(vec![a, b]);
    assert!(
        net.logs
            .iter()
            .any(|l| l.contains("Loop detected for leafnode account=\"$G\"")),
        "{:#?}",
        net.logs
    );
}

#[test]
fn a_hub_refuses_its_own_cluster_and_wrong_credentials() {
    let mut l = leaf(1, &[0]);
    l.cluster = Some(crate::config::cluster::ClusterOptions {
        name: "C1".into(),
        ..Default::default()
    });
    let net = Net::new(vec![hub(0, "C1", &[]), l]);
    assert_eq!(leafs(&net, 0), 0);
    assert!(
        net.logs
            .iter()
            .any(|x| x.contains("remote leafnode has same cluster name"))
    );

    let mut h = hub(0, "", &[]);
    if let Some(l) = h.leafnodes.as_mut() {
        l.user = Some("lu".into());
        l.pass = Some("lp".into());
    }
    let net = Net::new(vec![h.clone(), leaf(1, &[0])]);
    assert_eq!(leafs(&net, 0), 0, "no credentials");
    assert!(net.logs.iter().any(|x| x.contains("authentication error")));
    let mut good = leaf(1, &[0]);
    good.leafnodes.as_mut().unwrap().remotes[0].urls[0] =
        RouteUrl::parse(&format!("nats-leaf://lu:lp@127.0.0.1:{}", leaf_port(0))).unwrap();
    let net = Net::new(vec![h, good]);
    assert_eq!(leafs(&net, 0), 1);
}

/// A leaf node of hub 0 that speaks raw protocol (the test writes it):
/// its connection, accepted on the leaf node listener.
fn raw_leaf(net: &mut Net) -> crate::server::ConnId {
    use crate::server::{Event, Listener};
    let conn = net.servers[0].next_conn_id();
    net.servers[0].handle(
        super::super::route::tests::now_at(net.now_ns),
        Event::Accepted {
            conn,
            listener: Listener::Leaf,
            peer: "127.0.0.1:60001".parse().unwrap(),
        },
    );
    net.settle();
    conn
}

/// A user nkey from raw bytes: its seed and public key.
fn user_key(b: u8) -> (String, String) {
    let k = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [b; 32]).unwrap();
    (k.seed().unwrap(), k.public_key())
}

#[test]
fn a_leaf_signs_the_hubs_nonce_with_its_nkey() {
    let (seed, public) = user_key(5);
    let mut h = hub(0, "", &[]);
    h.leafnodes.as_mut().unwrap().nkey = Some(public);
    let mut good = leaf(1, &[0]);
    good.leafnodes.as_mut().unwrap().remotes[0].nkey = Some(seed);
    let net = Net::new(vec![h.clone(), good]);
    assert_eq!(leafs(&net, 0), 1, "{:#?}", net.logs);

    let (other, _) = user_key(6);
    let mut wrong = leaf(1, &[0]);
    wrong.leafnodes.as_mut().unwrap().remotes[0].nkey = Some(other);
    let net = Net::new(vec![h.clone(), wrong]);
    assert_eq!(leafs(&net, 0), 0, "another key");
    let net = Net::new(vec![h, leaf(1, &[0])]);
    assert_eq!(leafs(&net, 0), 0, "no key");
}

#[test]
fn a_leaf_user_from_the_hubs_list_binds_its_account() {
    let conf = format!(
        r#"
accounts {{
  A: {{ users: [{{user: a, password: a}}] }}
  B: {{ users: [{{user: b, password: b}}] }}
}}
leafnodes {{
  port: {}
  authorization {{ users: [{{user: la, password: pa, account: A}}, {{user: lb, password: pb, account: B}}] }}
}}
"#,
        leaf_port(0)
    );
    let map = crate::conf::parse(&conf, "t.conf", &crate::conf::MemSource::new()).unwrap();
    let mut h = opts(0, "", &[]);
    h.cluster = None;
    let problems = crate::config::file::apply(&map, &mut h, &mut Default::default());
    assert!(problems.errors.is_empty(), "{problems:?}");
    let with_user = |userinfo: &str| {
        let mut l = leaf(1, &[0]);
        l.leafnodes.as_mut().unwrap().remotes[0].urls[0] = RouteUrl::parse(&format!(
            "nats-leaf://{userinfo}@127.0.0.1:{}",
            leaf_port(0)
        ))
        .unwrap();
        l
    };
    let mut net = Net::new(vec![h.clone(), with_user("lb:pb")]);
    assert_eq!(leafs(&net, 0), 1, "{:#?}", net.logs);
    // The leaf's $G is the hub's B: a B user hears it, an A user does not.
    let a = net.client_with(0, r#"{"user":"a","pass":"a"}"#);
    let b = net.client_with(0, r#"{"user":"b","pass":"b"}"#);
    net.send(0, a, b"SUB foo 1\r\n");
    net.send(0, b, b"SUB foo 1\r\n");
    let on_leaf = net.client(1);
    net.send(1, on_leaf, b"PUB foo 1\r\nx\r\n");
    assert_eq!(count(&net.read(0, b), "MSG foo 1 1\r\nx\r\n"), 1);
    assert_eq!(count(&net.read(0, a), "MSG foo"), 0);

    let net = Net::new(vec![h, with_user("lb:pa")]);
    assert_eq!(leafs(&net, 0), 0, "another user's password");
}

#[test]
fn a_server_user_may_be_kept_from_connecting_as_a_leaf_node() {
    use crate::auth::{Auth, User, Users};
    let (seed, public) = user_key(7);
    let users = |types: &[&str]| {
        let mut u = Users::default();
        u.by_nkey.insert(
            public.clone(),
            User {
                connection_types: types.iter().map(|t| t.to_string()).collect(),
                ..User::default()
            },
        );
        Auth::Users(u)
    };
    let mut l = leaf(1, &[0]);
    l.leafnodes.as_mut().unwrap().remotes[0].nkey = Some(seed);
    for (types, linked) in [(&["LEAFNODE"][..], 1), (&["STANDARD"][..], 0), (&[][..], 1)] {
        let mut h = hub(0, "", &[]);
        h.auth = users(types);
        let net = Net::new(vec![h, l.clone()]);
        assert_eq!(leafs(&net, 0), linked, "{types:?}");
    }
}

#[test]
fn deny_lists_keep_subjects_on_their_side_of_a_leaf_connection() {
    let mut l = leaf(1, &[0]);
    let r = &mut l.leafnodes.as_mut().unwrap().remotes[0];
    r.deny_imports = vec!["secret.>".into()];
    r.deny_exports = vec!["private.>".into()];
    let mut net = Net::new(vec![hub(0, "", &[]), l]);
    assert_eq!(leafs(&net, 0), 1, "{:#?}", net.logs);
    let on_leaf = net.client(1);
    // A wildcard the deny list does not cover goes to the hub; the hub,
    // told `deny_pub`, sends none of secret.>.
    net.send(1, on_leaf, b"SUB *.x 1\r\nSUB secret.x 2\r\n");
    let on_hub = net.client(0);
    net.send(0, on_hub, b"SUB private.y 1\r\nSUB public.y 2\r\n");
    let before = net.servers[0].stats().counters.out_msgs;
    net.send(0, on_hub, b"PUB secret.x 1\r\ns\r\n");
    assert_eq!(
        net.servers[0].stats().counters.out_msgs,
        before,
        "the hub sent a denied import"
    );
    net.send(0, on_hub, b"PUB public.x 1\r\np\r\n");
    assert_eq!(net.read(1, on_leaf), "MSG public.x 1 1\r\np\r\n");
    // Exports: the hub's interest in private.y is not kept.
    net.send(
        1,
        on_leaf,
        b"PUB private.y 1\r\nq\r\nPUB public.y 1\r\nr\r\n",
    );
    assert_eq!(net.read(0, on_hub), "MSG public.y 2 1\r\nr\r\n");
}

#[test]
fn a_hub_closes_a_leaf_node_that_subscribes_to_what_it_asked_not_to_get() {
    let mut net = Net::new(vec![hub(0, "", &[])]);
    let conn = raw_leaf(&mut net);
    net.send(
        0,
        conn,
        b"CONNECT {\"server_id\":\"NRAW\",\"name\":\"raw\",\"deny_pub\":[\"secret.>\"]}\r\nLS+ public.x\r\nLS+ secret.x\r\n",
    );
    let out = net.read(0, conn);
    assert!(
        out.ends_with("-ERR 'Permissions Violation for Subscription to \"secret.x\"'\r\n"),
        "{out}"
    );
    assert!(
        net.logs.iter().any(|l| l
            .contains("Subscription Violation on \"secret.x\" - Check other side configuration")),
        "{:#?}",
        net.logs
    );
}

#[test]
fn a_hubs_user_permissions_bound_what_its_leaf_node_sends_and_gets() {
    use crate::auth::{Auth, Permissions, SubjectPermission, User, Users};
    let mut h = hub(0, "", &[]);
    let mut users = Users::default();
    let allow = |s: &str| SubjectPermission {
        allow: Some(vec![s.to_string()]),
        deny: Vec::new(),
    };
    users.by_name.insert(
        "lu".into(),
        User {
            password: "lp".into(),
            permissions: Some(Permissions {
                publish: Some(allow("up.>")),
                subscribe: Some(allow("down.>")),
                response: None,
            }),
            ..User::default()
        },
    );
    users.by_name.insert(
        "c".into(),
        User {
            password: "c".into(),
            ..User::default()
        },
    );
    h.auth = Auth::Users(users);
    let mut l = leaf(1, &[0]);
    l.leafnodes.as_mut().unwrap().remotes[0].urls[0] =
        RouteUrl::parse(&format!("nats-leaf://lu:lp@127.0.0.1:{}", leaf_port(0))).unwrap();
    let mut net = Net::new(vec![h, l]);
    assert_eq!(leafs(&net, 0), 1, "{:#?}", net.logs);
    let on_leaf = net.client(1);
    // Told by the hub's INFO, the leaf node asks only for what its user
    // may receive: the hub would close it for the other one.
    net.send(1, on_leaf, b"SUB down.x 1\r\nSUB other.x 2\r\n");
    let on_hub = net.client_with(0, r#"{"user":"c","pass":"c","verbose":false}"#);
    net.send(0, on_hub, b"SUB up.1 1\r\nSUB bad.1 2\r\n");
    net.send(0, on_hub, b"PUB down.x 1\r\na\r\nPUB other.x 1\r\nb\r\n");
    assert_eq!(net.read(1, on_leaf), "MSG down.x 1 1\r\na\r\n");
    net.send(1, on_leaf, b"PUB bad.1 1\r\nc\r\nPUB up.1 1\r\nd\r\n");
    assert_eq!(net.read(0, on_hub), "MSG up.1 1 1\r\nd\r\n");
    assert_eq!(leafs(&net, 0), 1, "still linked: {:#?}", net.logs);
}

#[test]
fn an_advertised_address_is_what_leaf_nodes_are_told_to_dial() {
    // A host alone keeps the listener's port.
    let listener = leaf_port(0);
    for (advertise, url, port) in [
        (
            "leaf.example.com:7000".to_string(),
            "leaf.example.com:7000".to_string(),
            7000,
        ),
        (
            "leaf.example.com".to_string(),
            format!("leaf.example.com:{listener}"),
            listener,
        ),
    ] {
        let mut h = hub(0, "", &[]);
        h.leafnodes.as_mut().unwrap().advertise = Some(advertise);
        let mut net = Net::new(vec![h]);
        let conn = raw_leaf(&mut net);
        let info = net.read(0, conn);
        assert!(
            info.contains(&format!("\"leafnode_urls\":[\"{url}\"]")),
            "{info}"
        );
        assert!(
            info.contains(&format!("\"host\":\"leaf.example.com\",\"port\":{port}")),
            "{info}"
        );
    }
}

/// The URLs leaf node `i`'s first remote dials, in order.
fn remote_urls(net: &Net, i: usize) -> Vec<String> {
    net.servers[i].leafnodes.as_ref().unwrap().remotes[0]
        .urls
        .all()
}

#[test]
fn a_leaf_node_learns_its_hubs_cluster_and_fails_over_to_another_member() {
    let mut quiet = hub(2, "C1", &[0]);
    quiet.leafnodes.as_mut().unwrap().no_advertise = true;
    let mut net = Net::new(vec![
        hub(0, "C1", &[]),
        hub(1, "C1", &[0]),
        quiet,
        leaf(3, &[0]),
    ]);
    let url = |i: usize| format!("127.0.0.1:{}", leaf_port(i));
    // S1 told its routes its leaf node URL, S2 did not: S0's INFO lists
    // S0 and S1, and the leaf node dials the learned one first.
    assert_eq!(remote_urls(&net, 3), [url(1), url(0)]);
    assert_eq!((leafs(&net, 0), leafs(&net, 1)), (1, 0));

    // S0 goes: the leaf node dials S1 after its wait, and traffic
    // crosses again (to S2 through S1's route).
    net.kill(0);
    assert_eq!(leafs(&net, 3), 0);
    net.advance(1_100);
    assert_eq!((leafs(&net, 1), leafs(&net, 3)), (1, 1), "{:#?}", net.logs);
    let on_leaf = net.client(3);
    net.send(3, on_leaf, b"SUB foo 1\r\nPING\r\n");
    net.read(3, on_leaf);
    let far = net.client(2);
    net.send(2, far, b"PUB foo 2\r\nhi\r\n");
    assert_eq!(net.read(3, on_leaf), "MSG foo 1 2\r\nhi\r\n");
    // S1's INFO names itself alone; the configured S0 stays last.
    assert_eq!(remote_urls(&net, 3), [url(1), url(0)]);
}

#[test]
fn a_hub_tells_its_leaf_nodes_of_a_member_that_joins_later() {
    let mut net = Net::new(vec![hub(0, "C1", &[]), leaf(1, &[0])]);
    let url = |i: usize| format!("127.0.0.1:{}", leaf_port(i));
    assert_eq!(remote_urls(&net, 1), [url(0)]);
    // A new member: S0 sends its leaf node the new list.
    net.servers.push(crate::server::Server::new(
        hub(2, "C1", &[0]),
        102,
        crate::server::route::tests::now_at(net.now_ns),
    ));
    net.up.push(true);
    net.listen(2);
    net.settle();
    assert_eq!(remote_urls(&net, 1), [url(2), url(0)]);
    // It leaves: the list shrinks back.
    net.kill(2);
    assert_eq!(remote_urls(&net, 1), [url(0)]);
}

#[test]
fn ignore_discovered_servers_keeps_a_leaf_node_on_its_configured_hub() {
    let mut l = leaf(2, &[0]);
    l.leafnodes.as_mut().unwrap().remotes[0].ignore_discovered_servers = true;
    let mut net = Net::new(vec![hub(0, "C1", &[]), hub(1, "C1", &[0]), l]);
    assert_eq!(
        remote_urls(&net, 2),
        [format!("127.0.0.1:{}", leaf_port(0))]
    );
    net.kill(0);
    net.advance(3_000);
    assert_eq!(leafs(&net, 1), 0);
}

#[test]
fn a_leaf_cluster_on_two_hub_servers_gets_each_message_once() {
    // Hub cluster H (S0, S1); leaf cluster L (S2, S3), S2 a leaf node of
    // S0 and S3 of S1.
    let mut l2 = hub(2, "L", &[]);
    l2.leafnodes = leaf(2, &[0]).leafnodes;
    let mut l3 = hub(3, "L", &[2]);
    l3.leafnodes = leaf(3, &[1]).leafnodes;
    let mut net = Net::new(vec![hub(0, "H", &[]), hub(1, "H", &[0]), l2, l3]);
    assert!(
        !net.logs.iter().any(|l| l.contains("Loop detected")),
        "{:#?}",
        net.logs
    );
    assert_eq!((leafs(&net, 0), leafs(&net, 1)), (1, 1), "{:#?}", net.logs);
    let subs: Vec<_> = (0..4)
        .map(|i| {
            let c = net.client(i);
            net.send(i, c, b"SUB foo 1\r\nPING\r\n");
            c
        })
        .collect();
    for (i, &c) in subs.iter().enumerate() {
        net.read(i, c);
    }
    for from in 0..4 {
        let p = net.client(from);
        net.send(from, p, b"PUB foo 1\r\nx\r\n");
        for (i, &c) in subs.iter().enumerate() {
            assert_eq!(
                count(&net.read(i, c), "MSG foo"),
                1,
                "published on S{from}, read on S{i}"
            );
        }
    }
}
