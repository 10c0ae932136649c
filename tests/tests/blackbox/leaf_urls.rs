//! A leaf node learns the servers of its hub's cluster from the hub's
//! `INFO` (`leafnode_urls`, which each hub server gathers from its
//! routes) and fails over to another of them when its hub is killed,
//! between natrix and nats-server 2.15.1 in every role: the two hub
//! servers, which tell each other their leaf node URLs over their route,
//! and the leaf node, configured with the first hub's URL alone.

use std::path::Path;

use natrix_tests::{ServerProcess, free_port, natrix_bin, reference_215};

use crate::cluster::{until_received, with_conf};

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
