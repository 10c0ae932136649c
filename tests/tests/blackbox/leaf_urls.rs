//! Leaf nodes and clusters on both sides. A leaf node learns the servers
//! of its hub's cluster from the hub's `INFO` (`leafnode_urls`, which each
//! hub server gathers from its routes) and fails over to another of them
//! when its hub is killed, between natrix and nats-server 2.15.1 in every
//! role: the two hub servers, which tell each other their leaf node URLs
//! over their route, and the leaf node, configured with the first hub's
//! URL alone. A leaf node cluster whose servers are leaf nodes of
//! different hub servers gets each message once, and so does a queue
//! group on either cluster (or on both) between its members.

use std::path::Path;

use natrix_tests::{ServerProcess, free_port, natrix_bin, reference_215};

use crate::cluster::{drain, until_received, with_conf};

/// Hub server `name` of cluster `LU`, routed to `seed` (a cluster port);
/// it and its cluster and leaf node ports.
fn hub_member(bin: &Path, name: &str, seed: Option<u16>) -> (ServerProcess, u16, u16) {
    let (cluster, leaf) = (free_port(), free_port());
    let routes = seed.map_or(String::new(), |p| {
        format!("routes: [\"nats://127.0.0.1:{p}\"]")
    });
    let conf = format!(
        "server_name: {name}\n\
         cluster {{ name: LU, listen: \"127.0.0.1:{cluster}\", {routes} }}\n\
         leafnodes {{ listen: \"127.0.0.1:{leaf}\" }}\n"
    );
    (with_conf(bin, name, &conf), cluster, leaf)
}

#[tokio::test]
async fn a_leaf_node_fails_over_to_a_hub_server_it_learned_of() {
    let natrix = natrix_bin();
    // (first hub, second hub, leaf node), natrix in at least one role.
    let mut cases = vec![("N-N-N", natrix.clone(), natrix.clone(), natrix.clone())];
    if let Some(new) = reference_215() {
        cases.extend([
            ("5-5-N", new.clone(), new.clone(), natrix.clone()),
            ("N-N-5", natrix.clone(), natrix.clone(), new.clone()),
            ("5-N-N", new.clone(), natrix.clone(), natrix.clone()),
            ("N-5-N", natrix.clone(), new.clone(), natrix.clone()),
        ]);
    }
    for (case, first, second, leaf_bin) in cases {
        let (h1, cluster1, leaf1) = hub_member(&first, &format!("LU-{case}-H1"), None);
        let (h2, _, _) = hub_member(&second, &format!("LU-{case}-H2"), Some(cluster1));
        let leaf = with_conf(
            &leaf_bin,
            &format!("LU-{case}-L"),
            &format!(
                "server_name: LU-{case}-L\n\
                 leafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{leaf1}\" }} ] }}\n"
            ),
        );
        let on_leaf = async_nats::connect(leaf.url()).await.unwrap();
        let on_h2 = async_nats::connect(h2.url()).await.unwrap();
        let mut sub = on_leaf.subscribe("lu.x").await.unwrap();
        on_leaf.flush().await.unwrap();
        // Through H1 while it is there (the leaf node has H1's INFO).
        until_received(&on_h2, "lu.x", &mut sub).await;
        drop(h1);
        // H1 is gone and the leaf node named no other: only what H1's
        // INFO told it brings it to H2.
        let m = until_received(&on_h2, "lu.x", &mut sub).await;
        assert_eq!(&m.payload[..], b"ping", "{case}");
        let mut back = on_h2.subscribe("lu.back").await.unwrap();
        on_h2.flush().await.unwrap();
        until_received(&on_leaf, "lu.back", &mut back).await;
    }
}

/// Server `name` of cluster `cluster` (routed to `seed`), a leaf node of
/// the hub at `hub_leaf` if given, else a hub itself.
fn member_of(
    bin: &Path,
    name: &str,
    cluster: &str,
    seed: Option<u16>,
    hub_leaf: Option<u16>,
) -> (ServerProcess, u16, u16) {
    let (port, leaf) = (free_port(), free_port());
    let routes = seed.map_or(String::new(), |p| {
        format!("routes: [\"nats://127.0.0.1:{p}\"]")
    });
    let leafnodes = match hub_leaf {
        Some(h) => format!("remotes: [ {{ url: \"nats-leaf://127.0.0.1:{h}\" }} ]"),
        None => format!("listen: \"127.0.0.1:{leaf}\""),
    };
    let conf = format!(
        "server_name: {name}\n\
         cluster {{ name: {cluster}, listen: \"127.0.0.1:{port}\", {routes} }}\n\
         leafnodes {{ {leafnodes} }}\n"
    );
    (with_conf(bin, name, &conf), port, leaf)
}

/// Ten messages from each client `i`, on `<prefix>.<i>.<n>`.
async fn publish_ten_each(clients: &[async_nats::Client], prefix: &str) {
    for (i, from) in clients.iter().enumerate() {
        for n in 0..10 {
            from.publish(format!("{prefix}.{i}.{n}"), "m".into())
                .await
                .unwrap();
        }
        from.flush().await.unwrap();
    }
}

/// Counts what `sub` got by the client index in its subject.
async fn count_by_server(sub: &mut async_nats::Subscriber, from: &mut [usize; 4]) {
    for m in drain(sub).await {
        let i = m.subject.as_str().split('.').nth(1).unwrap();
        from[i.parse::<usize>().unwrap()] += 1;
    }
}

/// A leaf node cluster whose two servers are each a leaf node of another
/// server of the hub cluster: every message reaches every subscriber
/// once, wherever it is published (before natrix applied nats-server's
/// rules a message went round hub, leaf node, route and hub for ever).
#[tokio::test]
async fn a_leaf_node_cluster_on_two_hub_servers_gets_each_message_once() {
    let natrix = natrix_bin();
    // (hub 1, hub 2, leaf 1, leaf 2)
    let mut cases = vec![(
        "NNNN",
        [
            natrix.clone(),
            natrix.clone(),
            natrix.clone(),
            natrix.clone(),
        ],
    )];
    if let Some(new) = reference_215() {
        let (n, r) = (natrix.clone(), new.clone());
        cases.extend([
            ("55NN", [r.clone(), r.clone(), n.clone(), n.clone()]),
            ("NN55", [n.clone(), n.clone(), r.clone(), r.clone()]),
            ("N5NN", [n.clone(), r.clone(), n.clone(), n.clone()]),
            ("NN5N", [n.clone(), n.clone(), r.clone(), n.clone()]),
        ]);
    }
    for (case, bins) in cases {
        let (h1, hp, hl1) = member_of(&bins[0], &format!("LC-{case}-H1"), "HUB", None, None);
        let (h2, _, hl2) = member_of(&bins[1], &format!("LC-{case}-H2"), "HUB", Some(hp), None);
        let (l1, lp, _) = member_of(&bins[2], &format!("LC-{case}-L1"), "EDGE", None, Some(hl1));
        let (l2, _, _) = member_of(
            &bins[3],
            &format!("LC-{case}-L2"),
            "EDGE",
            Some(lp),
            Some(hl2),
        );
        let servers = [&h1, &h2, &l1, &l2];
        let mut clients = Vec::new();
        let mut subs = Vec::new();
        for s in servers {
            let c = async_nats::connect(s.url()).await.unwrap();
            subs.push(c.subscribe("lc.>").await.unwrap());
            c.flush().await.unwrap();
            clients.push(c);
        }
        // Until every subscriber hears from every server.
        let mut heard = [[false; 4]; 4];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while heard.iter().flatten().any(|h| !h) {
            assert!(std::time::Instant::now() < deadline, "{case}: {heard:?}");
            for (i, from) in clients.iter().enumerate() {
                from.publish(format!("lc.probe.{i}"), "p".into())
                    .await
                    .unwrap();
                from.flush().await.unwrap();
            }
            for (j, sub) in subs.iter_mut().enumerate() {
                for m in drain(sub).await {
                    if let Some(i) = m.subject.as_str().strip_prefix("lc.probe.") {
                        heard[i.parse::<usize>().unwrap()][j] = true;
                    }
                }
            }
        }
        for sub in &mut subs {
            drain(sub).await;
        }
        publish_ten_each(&clients, "lc").await;
        for (j, sub) in subs.iter_mut().enumerate() {
            let mut from = [0; 4];
            count_by_server(sub, &mut from).await;
            assert_eq!(
                from, [10; 4],
                "{case}: at S{j}, from each server, each once"
            );
        }
        // Queue groups: members on a hub server, on a leaf node, then on
        // the other hub server and the other leaf node; each placement its
        // own subject, so no interest of an earlier one is left on the way.
        let placements: [&[usize]; 3] = [&[0], &[3], &[1, 2]];
        for (k, members) in placements.into_iter().enumerate() {
            let mut qsubs = Vec::new();
            for &m in members {
                let s = clients[m]
                    .queue_subscribe(format!("lq{k}.>"), "workers".into())
                    .await
                    .unwrap();
                clients[m].flush().await.unwrap();
                qsubs.push(s);
            }
            let what = format!("{case}: queue members on {members:?}");
            group_takes_each_once(&what, &clients, &mut qsubs, &format!("lq{k}")).await;
        }
        // Members on a hub server and on the leaf node of the other hub
        // server, which nats-server tells its routes of as its own
        // (`RS+`) and on the leaf node cluster's behalf (`LS+ <origin>`):
        // when the leaf node's member goes (`LS- <origin>`), the hub
        // server's own is still reached from everywhere.
        let prefix = "lq-both";
        let hub = clients[1]
            .queue_subscribe(format!("{prefix}.>"), "workers".into())
            .await
            .unwrap();
        let mut leaf = clients[3]
            .queue_subscribe(format!("{prefix}.>"), "workers".into())
            .await
            .unwrap();
        clients[1].flush().await.unwrap();
        clients[3].flush().await.unwrap();
        // (Both members' interest crosses loopback in milliseconds; had it
        // not reached the first hub server yet, there would be nothing to
        // withdraw there, and the check below would hold anyway.)
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        drain(&mut leaf).await;
        leaf.unsubscribe().await.unwrap();
        clients[3].flush().await.unwrap();
        let what = format!("{case}: the hub member after the leaf node's went");
        group_takes_each_once(&what, &clients, &mut [hub], prefix).await;
    }
}

/// Probes from every server until the queue group (`qsubs`, on
/// `<prefix>.>`) hears from each, then ten messages from each: every one
/// reaches the group once.
async fn group_takes_each_once(
    what: &str,
    clients: &[async_nats::Client],
    qsubs: &mut [async_nats::Subscriber],
    prefix: &str,
) {
    let mut heard = [false; 4];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while heard.iter().any(|h| !h) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: heard from {heard:?}"
        );
        for (i, from) in clients.iter().enumerate() {
            from.publish(format!("{prefix}.probe.{i}"), "p".into())
                .await
                .unwrap();
            from.flush().await.unwrap();
        }
        for sub in qsubs.iter_mut() {
            for m in drain(sub).await {
                if let Some(i) = m.subject.as_str().split('.').nth(2)
                    && m.subject.as_str().contains(".probe.")
                {
                    heard[i.parse::<usize>().unwrap()] = true;
                }
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for sub in qsubs.iter_mut() {
        drain(sub).await;
    }
    publish_ten_each(clients, prefix).await;
    let mut from = [0; 4];
    for sub in qsubs.iter_mut() {
        count_by_server(sub, &mut from).await;
    }
    assert_eq!(from, [10; 4], "{what}: from each server, each message once");
}
