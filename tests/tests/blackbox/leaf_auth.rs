//! Leaf nodes that authenticate with keys: a natrix leaf node showing a
//! credentials file to a hub in operator mode (nats-server's JWTs, as `nsc`
//! writes them), leaf nodes signing the hub's nonce with an nkey seed, and
//! a hub's list of leaf node users, each bound to an account, between
//! natrix and nats-server 2.9.10 and 2.15.1; and deny lists, which keep
//! subjects on their side of a leaf node connection.

use std::path::{Path, PathBuf};

use natrix_tests::{ServerProcess, free_port, natrix_bin, reference_215, reference_or_skip};
use nkeys::{KeyPair, KeyPairType};

use crate::cluster::{check_leaf_clients, with_conf};

/// A signed nats JWT: `claims` (without `iss`, `sub`, `jti` and `iat`) of
/// `subject`, issued by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let b64 = |b: &[u8]| data_encoding::BASE64URL_NOPAD.encode(b);
    let header = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = serde_json::json!({
        "jti": data_encoding::BASE32_NOPAD.encode(subject.as_bytes()),
        "iat": 1_700_000_000,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = b64(claims.to_string().as_bytes());
    let signed = format!("{header}.{body}");
    let sig = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(&sig))
}

/// An operator, one account and one user of it, as a hub in operator mode
/// needs them (a memory resolver preloaded with the account).
struct Operator {
    /// The hub's configuration lines for them.
    conf: String,
    /// The user's credentials file text.
    creds: String,
}

fn operator() -> Operator {
    let op = KeyPair::new(KeyPairType::Operator);
    let account = KeyPair::new(KeyPairType::Account);
    let user = KeyPair::new(KeyPairType::User);
    let op_jwt = jwt(
        &op,
        &op.public_key(),
        "O",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let unlimited = serde_json::json!({
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1,
    });
    let account_jwt = jwt(
        &op,
        &account.public_key(),
        "A",
        serde_json::json!({"limits": unlimited, "type": "account", "version": 2}),
    );
    let user_jwt = jwt(
        &account,
        &user.public_key(),
        "U",
        serde_json::json!({
            "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        }),
    );
    let conf = format!(
        "operator: {op_jwt}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {account_jwt}\n}}\n",
        account.public_key()
    );
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        user.seed().unwrap()
    );
    Operator { conf, creds }
}

/// A leaf node of the hub at `port` with remote options `remote` (inside
/// the remote's braces, after its URL).
fn leaf_with(bin: &Path, name: &str, url: &str, remote: &str) -> ServerProcess {
    let conf =
        format!("server_name: {name}\nleafnodes {{ remotes: [ {{ url: \"{url}\"{remote} }} ] }}\n");
    with_conf(bin, name, &conf)
}

/// [`leaf_with`], logging to a file; the file.
fn leaf_logged(bin: &Path, name: &str, url: &str, remote: &str) -> (ServerProcess, PathBuf) {
    let dir = natrix_tests::test_dir("leaf-auth", name);
    let (conf, log) = (dir.join("leaf.conf"), dir.join("leaf.log"));
    std::fs::write(
        &conf,
        format!("server_name: {name}\nleafnodes {{ remotes: [ {{ url: \"{url}\"{remote} }} ] }}\n"),
    )
    .unwrap();
    let server = ServerProcess::start(
        bin,
        &["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()],
    );
    (server, log)
}

#[tokio::test]
async fn a_natrix_leaf_node_shows_a_credentials_file_to_hubs_in_operator_mode() {
    let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) else {
        return;
    };
    let op = operator();
    let dir = natrix_tests::test_dir("leaf-auth", "creds");
    let creds = dir.join("user.creds");
    std::fs::write(&creds, &op.creds).unwrap();
    for (bin, name) in [(&old, "OH29"), (&new, "OH215")] {
        let port = free_port();
        let hub = with_conf(
            bin,
            name,
            &format!(
                "server_name: {name}\n{}leafnodes {{ listen: \"127.0.0.1:{port}\" }}\n",
                op.conf
            ),
        );
        let leaf = leaf_with(
            &natrix_bin(),
            &format!("CL-{name}"),
            &format!("nats-leaf://127.0.0.1:{port}"),
            &format!(", credentials: \"{}\"", creds.display()),
        );
        let h = async_nats::ConnectOptions::with_credentials(&op.creds)
            .unwrap()
            .connect(hub.url())
            .await
            .unwrap();
        let l = async_nats::connect(leaf.url()).await.unwrap();
        check_leaf_clients(&h, &l).await;
    }
}

#[tokio::test]
async fn a_leaf_node_without_the_right_key_is_refused_and_says_why() {
    let bin = natrix_bin();
    let hub_key = KeyPair::new(KeyPairType::User);
    let port = free_port();
    let _hub = with_conf(
        &bin,
        "KH-refuse",
        &format!(
            "server_name: KH\nleafnodes {{ listen: \"127.0.0.1:{port}\", authorization {{ nkey: {} }} }}\n",
            hub_key.public_key()
        ),
    );
    let other = KeyPair::new(KeyPairType::User);
    let url = format!("nats-leaf://127.0.0.1:{port}");
    let (_wrong, wrong_log) = leaf_logged(
        &bin,
        "KL-wrong",
        &url,
        &format!(", nkey: {}", other.seed().unwrap()),
    );
    // A credentials file that cannot be read: the leaf says so at start.
    let (_missing, missing_log) = leaf_logged(
        &bin,
        "KL-missing",
        &url,
        ", credentials: \"/nonexistent/u.creds\"",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (w, m) = (read(&wrong_log), read(&missing_log));
        if w.contains("Authorization Violation")
            && m.contains(
                "Error reading LeafNode Remote Credentials file \"/nonexistent/u.creds\": open \
                 /nonexistent/u.creds: no such file or directory",
            )
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wrong key:\n{w}\nmissing file:\n{m}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn leaf_nodes_sign_with_nkeys_between_natrix_and_2_15() {
    let natrix = natrix_bin();
    // 2.9.10 knows neither a remote's `nkey` nor a hub's.
    let mut bins = vec![(natrix.clone(), "N")];
    if let Some(new) = reference_215() {
        bins.push((new, "215"));
    }
    let key = KeyPair::new(KeyPairType::User);
    let seed = key.seed().unwrap();
    // natrix on at least one end of every pair.
    for (hub_bin, h) in &bins {
        for (leaf_bin, l) in &bins {
            if *hub_bin != natrix && *leaf_bin != natrix {
                continue;
            }
            let port = free_port();
            let name = format!("KH{h}-{l}");
            let hub = with_conf(
                hub_bin,
                &name,
                &format!(
                    "server_name: {name}\nleafnodes {{ listen: \"127.0.0.1:{port}\", authorization {{ nkey: {} }} }}\n",
                    key.public_key()
                ),
            );
            let leaf = leaf_with(
                leaf_bin,
                &format!("KL{h}-{l}"),
                &format!("nats-leaf://127.0.0.1:{port}"),
                &format!(", nkey: {seed}"),
            );
            let hc = async_nats::connect(hub.url()).await.unwrap();
            let lc = async_nats::connect(leaf.url()).await.unwrap();
            check_leaf_clients(&hc, &lc).await;
        }
    }
}

#[tokio::test]
async fn a_natrix_hubs_leaf_users_bind_the_leaf_nodes_to_their_accounts() {
    let natrix = natrix_bin();
    let mut leafs = vec![(natrix.clone(), "N")];
    if let (Some(old), Some(new)) = (reference_or_skip(), reference_215()) {
        leafs.push((old, "29"));
        leafs.push((new, "215"));
    }
    let port = free_port();
    let hub = with_conf(
        &natrix,
        "UH",
        &format!(
            "server_name: UH\naccounts {{\n  A: {{ users: [{{user: a, password: a}}] }}\n  \
             B: {{ users: [{{user: b, password: b}}] }}\n}}\nleafnodes {{\n  listen: \"127.0.0.1:{port}\"\n  \
             authorization {{ users: [ {{user: la, password: pa, account: A}}, {{user: lb, password: pb, account: B}} ] }}\n}}\n"
        ),
    );
    let b = async_nats::ConnectOptions::with_user_and_password("b".into(), "b".into())
        .connect(hub.url())
        .await
        .unwrap();
    let a = async_nats::ConnectOptions::with_user_and_password("a".into(), "a".into())
        .connect(hub.url())
        .await
        .unwrap();
    let mut on_a = a.subscribe("edge.>").await.unwrap();
    a.flush().await.unwrap();
    for (bin, l) in &leafs {
        let leaf = leaf_with(
            bin,
            &format!("UL{l}"),
            &format!("nats-leaf://lb:pb@127.0.0.1:{port}"),
            "",
        );
        let lc = async_nats::connect(leaf.url()).await.unwrap();
        check_leaf_clients(&b, &lc).await;
    }
    // Account A heard none of it.
    let nothing = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        futures::StreamExt::next(&mut on_a),
    )
    .await;
    assert!(nothing.is_err(), "account A got {nothing:?}");
}

/// (server, server, name) pairs with natrix on at least one side:
/// natrix with natrix, and with 2.15.1 either way round when it is there.
pub(crate) fn natrix_and_2_15_pairs() -> Vec<(PathBuf, PathBuf, &'static str)> {
    let natrix = natrix_bin();
    let mut pairs = vec![(natrix.clone(), natrix.clone(), "N-N")];
    if let Some(new) = reference_215() {
        pairs.push((new.clone(), natrix.clone(), "215-N"));
        pairs.push((natrix, new, "N-215"));
    }
    pairs
}

/// The next message `sub` gets within 10 s.
async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        futures::StreamExt::next(sub),
    )
    .await
    .expect("a message")
    .expect("the subscription stays open")
}

#[tokio::test]
async fn deny_lists_keep_subjects_on_their_side_between_natrix_and_2_15() {
    for (hub_bin, leaf_bin, name) in natrix_and_2_15_pairs() {
        let port = free_port();
        let hub = with_conf(
            &hub_bin,
            &format!("DH{name}"),
            &format!("server_name: DH{name}\nleafnodes {{ listen: \"127.0.0.1:{port}\" }}\n"),
        );
        let leaf = leaf_with(
            &leaf_bin,
            &format!("DL{name}"),
            &format!("nats-leaf://127.0.0.1:{port}"),
            ", deny_imports: [\"secret.>\"], deny_exports: \"private.>\"",
        );
        let h = async_nats::connect(hub.url()).await.unwrap();
        let l = async_nats::connect(leaf.url()).await.unwrap();
        let mut on_leaf = l.subscribe("*.a").await.unwrap();
        let mut on_hub = h.subscribe("*.b").await.unwrap();
        l.flush().await.unwrap();
        h.flush().await.unwrap();
        // Interest crosses a moment later: publish until one arrives.
        crate::cluster::until_received(&h, "public.a", &mut on_leaf).await;
        crate::cluster::until_received(&l, "public.b", &mut on_hub).await;
        crate::cluster::drain(&mut on_leaf).await;
        crate::cluster::drain(&mut on_hub).await;
        // Denied, then a marker on the same path: the marker comes first.
        for (from, denied, marker, sub) in [
            (&h, "secret.a", "last.a", &mut on_leaf),
            (&l, "private.b", "last.b", &mut on_hub),
        ] {
            from.publish(denied, "no".into()).await.unwrap();
            from.publish(marker, "yes".into()).await.unwrap();
            from.flush().await.unwrap();
            let m = next(sub).await;
            assert_eq!(m.subject.as_str(), marker, "{name}: {denied} crossed");
        }
    }
}

#[tokio::test]
async fn a_hub_users_permissions_bound_its_leaf_node_between_natrix_and_2_15() {
    for (hub_bin, leaf_bin, name) in natrix_and_2_15_pairs() {
        let port = free_port();
        let dir = natrix_tests::test_dir("leaf-auth", &format!("PH{name}"));
        let (conf, log) = (dir.join("hub.conf"), dir.join("hub.log"));
        std::fs::write(
            &conf,
            format!(
                "server_name: PH{name}\nauthorization {{ users: [\n  {{ user: lu, password: lp, permissions: {{ publish: \"up.>\", subscribe: \"down.>\" }} }}\n  {{ user: c, password: c }}\n] }}\n\
                 leafnodes {{ listen: \"127.0.0.1:{port}\" }}\n"
            ),
        )
        .unwrap();
        let hub = ServerProcess::start(
            &hub_bin,
            &["-c", conf.to_str().unwrap(), "-l", log.to_str().unwrap()],
        );
        let leaf = leaf_with(
            &leaf_bin,
            &format!("PL{name}"),
            &format!("nats-leaf://lu:lp@127.0.0.1:{port}"),
            "",
        );
        let h = async_nats::ConnectOptions::with_user_and_password("c".into(), "c".into())
            .connect(hub.url())
            .await
            .unwrap();
        let l = async_nats::connect(leaf.url()).await.unwrap();
        let mut down = l.subscribe("down.x").await.unwrap();
        let mut other = l.subscribe("other.x").await.unwrap();
        let mut up = h.subscribe("up.1").await.unwrap();
        let mut bad = h.subscribe("bad.1").await.unwrap();
        l.flush().await.unwrap();
        h.flush().await.unwrap();
        crate::cluster::until_received(&h, "down.x", &mut down).await;
        crate::cluster::until_received(&l, "up.1", &mut up).await;
        crate::cluster::drain(&mut down).await;
        crate::cluster::drain(&mut up).await;
        // Not permitted, then permitted on the same path: only the second
        // crosses.
        h.publish("other.x", "no".into()).await.unwrap();
        h.publish("down.x", "yes".into()).await.unwrap();
        h.flush().await.unwrap();
        assert_eq!(&next(&mut down).await.payload[..], b"yes", "{name}");
        l.publish("bad.1", "no".into()).await.unwrap();
        l.publish("up.1", "yes".into()).await.unwrap();
        l.flush().await.unwrap();
        assert_eq!(&next(&mut up).await.payload[..], b"yes", "{name}");
        for sub in [&mut other, &mut bad] {
            let got = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                futures::StreamExt::next(sub),
            )
            .await;
            assert!(got.is_err(), "{name}: {got:?}");
        }
        // The leaf node kept to its permissions: the hub closed nothing.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains("Violation"), "{name}: {text}");
    }
}

/// Every answer to one request on `subject` from `client` within 1 s.
async fn answers(client: &async_nats::Client, subject: &str) -> Vec<String> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(format!("{inbox}.>")).await.unwrap();
    client
        .publish_with_reply(subject.to_string(), format!("{inbox}.1"), "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut got = Vec::new();
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    while let Ok(Some(m)) = tokio::time::timeout_at(until, futures::StreamExt::next(&mut sub)).await
    {
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    got
}

#[tokio::test]
async fn jetstream_answers_on_its_own_side_of_a_leaf_node_and_other_domains_by_their_prefix() {
    for (hub_bin, leaf_bin, name) in natrix_and_2_15_pairs() {
        let dir = natrix_tests::test_dir("leaf-auth", &format!("JS{name}"));
        let port = free_port();
        let hub = with_conf(
            &hub_bin,
            &format!("JH{name}"),
            &format!(
                "server_name: JH{name}\njetstream {{ store_dir: \"{}\", domain: hub }}\nleafnodes {{ listen: \"127.0.0.1:{port}\" }}\n",
                dir.join("hub").display()
            ),
        );
        let leaf = with_conf(
            &leaf_bin,
            &format!("JL{name}"),
            &format!(
                "server_name: JL{name}\njetstream {{ store_dir: \"{}\", domain: leaf }}\nleafnodes {{ remotes: [ {{ url: \"nats-leaf://127.0.0.1:{port}\" }} ] }}\n",
                dir.join("leaf").display()
            ),
        );
        let l = async_nats::connect(leaf.url()).await.unwrap();
        let _h = async_nats::connect(hub.url()).await.unwrap();
        // The other domain, by its prefix (once the interest crossed).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let far = loop {
            let got = answers(&l, "$JS.hub.API.INFO").await;
            if !got.is_empty() {
                break got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: the hub's domain never answered"
            );
        };
        assert_eq!(far.len(), 1, "{name}: {far:?}");
        assert!(far[0].contains("\"domain\":\"hub\""), "{name}: {far:?}");
        // This side's JetStream alone answers the plain API.
        let near = answers(&l, "$JS.API.INFO").await;
        assert_eq!(near.len(), 1, "{name}: {near:?}");
        assert!(near[0].contains("\"domain\":\"leaf\""), "{name}: {near:?}");
    }
}
