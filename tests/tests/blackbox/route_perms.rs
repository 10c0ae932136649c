//! Route permissions (`cluster { permissions { import, export } }`)
//! between natrix and nats-server 2.15.1, on whichever server holds them:
//! the holder tells its route only of interest it may import, takes only
//! interest it may export, and sends no message its export denies.

use std::path::Path;

use natrix_tests::{ServerProcess, free_port, natrix_bin, reference_215};

use crate::cluster::{drain, until_received, with_conf};

/// Member `name` of cluster `RP` on a free cluster port, routed to `seed`,
/// with `perms` (a `permissions` block, or nothing).
fn member(bin: &Path, name: &str, seed: Option<u16>, perms: &str) -> (ServerProcess, u16) {
    let port = free_port();
    let routes = seed.map_or(String::new(), |p| {
        format!("routes: [\"nats://127.0.0.1:{p}\"]")
    });
    let conf = format!(
        "server_name: {name}\n\
         cluster {{ name: RP, listen: \"127.0.0.1:{port}\", {routes} {perms} }}\n"
    );
    (with_conf(bin, name, &conf), port)
}

#[tokio::test]
async fn route_permissions_hold_between_natrix_and_2_15() {
    let natrix = natrix_bin();
    let mut cases = vec![("N-N", natrix.clone(), natrix.clone())];
    if let Some(new) = reference_215() {
        cases.push(("N-5", natrix.clone(), new.clone()));
        cases.push(("5-N", new, natrix.clone()));
    }
    let perms = "permissions { import: { allow: \"in.>\" }, \
                 export: { deny: \"secret.>\" } }";
    for (case, holder_bin, peer_bin) in cases {
        let (holder, port) = member(&holder_bin, &format!("RP-{case}-H"), None, perms);
        let (peer, _) = member(&peer_bin, &format!("RP-{case}-P"), Some(port), "");
        let h = async_nats::connect(holder.url()).await.unwrap();
        let p = async_nats::connect(peer.url()).await.unwrap();

        // Import: the holder's interest in out.a is not told.
        let mut out = h.subscribe("out.a").await.unwrap();
        let mut inbound = h.subscribe("in.a").await.unwrap();
        h.flush().await.unwrap();
        until_received(&p, "in.a", &mut inbound).await;
        drain(&mut inbound).await;
        for _ in 0..5 {
            p.publish("out.a", "o".into()).await.unwrap();
            p.publish("in.a", "i".into()).await.unwrap();
        }
        p.flush().await.unwrap();
        assert_eq!(drain(&mut inbound).await.len(), 5, "{case}: in.a crosses");
        assert!(drain(&mut out).await.is_empty(), "{case}: out.a stays");

        // Export: the peer's interest in secret.x is not taken, and under
        // its wider subscription secret.y's messages do not go.
        let mut secret = p.subscribe("secret.x").await.unwrap();
        let mut all = p.subscribe("pub.>").await.unwrap();
        let mut wide = p.subscribe("*.y").await.unwrap();
        p.flush().await.unwrap();
        until_received(&h, "pub.z", &mut all).await;
        drain(&mut all).await;
        drain(&mut wide).await;
        for _ in 0..5 {
            h.publish("secret.x", "s".into()).await.unwrap();
            h.publish("secret.y", "s".into()).await.unwrap();
            h.publish("pub.y", "p".into()).await.unwrap();
        }
        h.flush().await.unwrap();
        assert_eq!(drain(&mut all).await.len(), 5, "{case}: pub.y goes");
        let wide_got: Vec<String> = drain(&mut wide)
            .await
            .iter()
            .map(|m| m.subject.to_string())
            .collect();
        assert_eq!(wide_got, vec!["pub.y"; 5], "{case}: secret.y is not sent");
        assert!(
            drain(&mut secret).await.is_empty(),
            "{case}: secret.x is not sent"
        );
    }
}
