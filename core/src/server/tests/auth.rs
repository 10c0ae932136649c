//! Users, nkeys and permissions, driven through the server directly.

use std::time::Duration;

use super::*;
use crate::auth::{Permissions, ResponsePermission, SubjectPermission, User, Users};

fn list(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

fn allow(s: &[&str]) -> Option<SubjectPermission> {
    Some(SubjectPermission {
        allow: Some(list(s)),
        deny: Vec::new(),
    })
}

fn user(password: &str, permissions: Option<Permissions>) -> User {
    User {
        password: password.into(),
        permissions,
        ..User::default()
    }
}

/// alice: limited; bob: anything; carol: bcrypt password ("s3cret").
fn users() -> Users {
    let mut u = Users::default();
    u.by_name.insert(
        "alice".into(),
        user(
            "a",
            Some(Permissions {
                publish: Some(SubjectPermission {
                    allow: Some(list(&["foo.>", "req"])),
                    deny: list(&["foo.secret"]),
                }),
                subscribe: Some(SubjectPermission {
                    allow: Some(list(&["foo.*", "jobs v1", "q.> w.*"])),
                    deny: list(&["foo.hidden"]),
                }),
                response: None,
            }),
        ),
    );
    u.by_name.insert("bob".into(), user("b", None));
    u.by_name.insert(
        "carol".into(),
        user(
            "$2a$04$yutFx9GuG/.lsV/T.nrXUeSzG4EtN7BWkYWf1.ojufD3m/I0Mqqpy",
            None,
        ),
    );
    u
}

fn login(name: &str, pass: &str) -> String {
    format!(r#"{{"verbose":false,"pedantic":false,"user":"{name}","pass":"{pass}"}}"#)
}

fn with_users(u: Users) -> Harness {
    Harness::new(Options {
        auth: Auth::Users(u),
        ..Options::default()
    })
}

#[test]
fn users_log_in_with_plain_and_bcrypt_passwords() {
    let mut h = with_users(users());
    let id = h.accept_at(0);
    let info = h.out(id);
    assert!(info.contains("\"auth_required\":true"));
    assert!(!info.contains("nonce"), "no nkey users, no nonce: {info}");
    h.send(id, &format!("CONNECT {}\r\nPING\r\n", login("alice", "a")));
    assert_eq!(h.out(id), "PONG\r\n");
    let carol = h.accept();
    h.send(
        carol,
        &format!("CONNECT {}\r\nPING\r\n", login("carol", "s3cret")),
    );
    assert_eq!(h.out(carol), "PONG\r\n");
    for (name, pass) in [("alice", "x"), ("dave", "a"), ("", "")] {
        let bad = h.accept();
        h.send(bad, &format!("CONNECT {}\r\n", login(name, pass)));
        assert_eq!(h.out(bad), "-ERR 'Authorization Violation'\r\n");
        assert_eq!(
            h.close_reason(bad),
            Some(CloseReason::AuthenticationViolation)
        );
        let line = format!("authentication error - User \"{name}\"");
        assert!(h.logs.last().unwrap().ends_with(&line), "{:?}", h.logs);
    }
}

#[test]
fn publish_permissions_refuse_and_keep_the_connection() {
    let mut h = with_users(users());
    let bob = h.client(&login("bob", "b"));
    h.send(bob, "SUB > 1\r\n");
    let alice = h.client(&login("alice", "a"));
    h.send(
        alice,
        "PUB foo.a 1\r\nx\r\nPUB bar 1\r\nx\r\nPUB foo.secret 1\r\nx\r\nPING\r\n",
    );
    assert_eq!(
        h.out(alice),
        "-ERR 'Permissions Violation for Publish to \"bar\"'\r\n\
         -ERR 'Permissions Violation for Publish to \"foo.secret\"'\r\nPONG\r\n"
    );
    assert!(h.close_reason(alice).is_none());
    assert_eq!(h.out(bob), "MSG foo.a 1 1\r\nx\r\n");
    assert!(
        h.logs
            .iter()
            .any(|l| l.ends_with(" - cid:2 - Publish Violation - User \"alice\", Subject \"bar\"")),
        "{:?}",
        h.logs
    );
}

#[test]
fn subscribe_permissions_with_queues_and_wildcards() {
    let mut h = with_users(users());
    let alice = h.client(&login("alice", "a"));
    h.send(
        alice,
        "SUB bar 1\r\nSUB jobs 2\r\nSUB jobs v1 3\r\nSUB jobs v2 4\r\n\
         SUB q.a w.1 5\r\nSUB q.a x 6\r\nSUB foo.hidden 7\r\nSUB foo.* 8\r\nPING\r\n",
    );
    assert_eq!(
        h.out(alice),
        "-ERR 'Permissions Violation for Subscription to \"bar\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"jobs\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"jobs\" using queue \"v2\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"q.a\" using queue \"x\"'\r\n\
         -ERR 'Permissions Violation for Subscription to \"foo.hidden\"'\r\n\
         PONG\r\n"
    );
    assert!(h.close_reason(alice).is_none());
    assert!(h.logs.iter().any(|l| l.ends_with(
        "Subscription Violation - User \"alice\", Subject \"jobs\", Queue: \"v2\", SID 4"
    )));
    assert!(
        h.logs
            .iter()
            .any(|l| l.ends_with("Subscription Violation - User \"alice\", Subject \"bar\", SID 1"))
    );
    // foo.* is allowed, but messages on the denied foo.hidden do not
    // reach it.
    let bob = h.client(&login("bob", "b"));
    h.send(
        bob,
        "PUB foo.hidden 1\r\nx\r\nPUB foo.open 1\r\ny\r\nPUB jobs 0\r\n\r\n",
    );
    assert_eq!(
        h.out(alice),
        "MSG foo.open 8 1\r\ny\r\nMSG jobs 3 0\r\n\r\n"
    );
}

#[test]
fn allow_responses_lets_a_service_answer_requests_once() {
    let mut u = Users::default();
    u.by_name.insert(
        "svc".into(),
        user(
            "s",
            Some(Permissions {
                subscribe: allow(&["req"]),
                response: Some(ResponsePermission::default()),
                ..Permissions::default()
            }),
        ),
    );
    u.by_name.insert("cli".into(), user("c", None));
    let mut h = with_users(u);
    let svc = h.client(&login("svc", "s"));
    h.send(svc, "SUB req 1\r\n");
    let cli = h.client(&login("cli", "c"));
    h.send(cli, "SUB _INBOX.a 9\r\nPUB req _INBOX.a 2\r\nhi\r\n");
    assert_eq!(h.out(svc), "MSG req 1 _INBOX.a 2\r\nhi\r\n");
    // Publishing anything else is refused: allow_responses closes the
    // blanket allow.
    h.send(
        svc,
        "PUB other 0\r\n\r\nPUB _INBOX.a 2\r\nok\r\nPUB _INBOX.a 5\r\nagain\r\nPING\r\n",
    );
    assert_eq!(
        h.out(svc),
        "-ERR 'Permissions Violation for Publish to \"other\"'\r\n\
         -ERR 'Permissions Violation for Publish to \"_INBOX.a\"'\r\nPONG\r\n"
    );
    assert_eq!(h.out(cli), "MSG _INBOX.a 9 2\r\nok\r\n");
    // A reply permission expires after two minutes.
    h.send(cli, "PUB req _INBOX.a 2\r\nhi\r\n");
    let _ = h.out(svc);
    h.advance(Duration::from_secs(121));
    let _ = h.out(svc);
    let _ = h.out(cli);
    h.send(svc, "PUB _INBOX.a 2\r\nok\r\n");
    assert_eq!(
        h.out(svc),
        "-ERR 'Permissions Violation for Publish to \"_INBOX.a\"'\r\n"
    );
}

fn nkey_user(seed: u8) -> nkeys::KeyPair {
    nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [seed; 32]).unwrap()
}

fn nonce_of(info: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(info.trim_start_matches("INFO ").trim_end()).unwrap();
    json["nonce"].as_str().expect("a nonce").to_string()
}

#[test]
fn nkey_users_sign_the_nonce_from_info() {
    let key = nkey_user(3);
    let mut u = Users::default();
    u.by_nkey.insert(
        key.public_key(),
        user(
            "",
            Some(Permissions {
                publish: allow(&["ok"]),
                ..Permissions::default()
            }),
        ),
    );
    let mut h = with_users(u.clone());
    let id = h.accept_at(0);
    let nonce = nonce_of(&h.out(id));
    assert_eq!(nonce.len(), 15);
    let sig = data_encoding::BASE64URL_NOPAD.encode(&key.sign(nonce.as_bytes()).unwrap());
    h.send(
        id,
        &format!(
            "CONNECT {{\"verbose\":false,\"nkey\":\"{}\",\"sig\":\"{sig}\"}}\r\nPUB no 0\r\n\r\nPING\r\n",
            key.public_key()
        ),
    );
    assert_eq!(
        h.out(id),
        "-ERR 'Permissions Violation for Publish to \"no\"'\r\nPONG\r\n"
    );
    // Each connection gets its own nonce: an old signature does not do.
    let other = h.accept_at(0);
    assert_ne!(nonce_of(&h.out(other)), nonce);
    h.send(
        other,
        &format!(
            "CONNECT {{\"nkey\":\"{}\",\"sig\":\"{sig}\"}}\r\n",
            key.public_key()
        ),
    );
    assert_eq!(h.out(other), "-ERR 'Authorization Violation'\r\n");
    let line = format!("authentication error - Nkey \"{}\"", key.public_key());
    assert!(h.logs.last().unwrap().ends_with(&line), "{:?}", h.logs);
    // The nonce comes from the seed: the same seed, the same nonce.
    let mut again = Harness::new(Options {
        auth: Auth::Users(u),
        ..Options::default()
    });
    let id = again.accept_at(0);
    assert_eq!(nonce_of(&again.out(id)), nonce);
}

#[test]
fn no_auth_user_takes_in_clients_without_credentials() {
    let mut h = Harness::new(Options {
        auth: Auth::Users(users()),
        no_auth_user: "alice".into(),
        ..Options::default()
    });
    let id = h.accept_at(0);
    let info = h.out(id);
    assert!(!info.contains("auth_required"), "{info}");
    h.send(
        id,
        "CONNECT {\"verbose\":false}\r\nPUB bar 0\r\n\r\nPING\r\n",
    );
    assert_eq!(
        h.out(id),
        "-ERR 'Permissions Violation for Publish to \"bar\"'\r\nPONG\r\n"
    );
    // Credentials, when sent, are checked as usual.
    let bob = h.client(&login("bob", "b"));
    h.send(bob, "PUB bar 0\r\n\r\nPING\r\n");
    assert_eq!(h.out(bob), "PONG\r\n");
    // CONNECT must still come first.
    let early = h.accept();
    h.send(early, "PING\r\n");
    assert_eq!(h.out(early), "-ERR 'Authorization Violation'\r\n");
    // Monitoring names the users.
    let (_, body) = http(&mut h, "/connz", "auth=true");
    let connz: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["authorized_user"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let (_, body) = http(&mut h, "/connz", "");
    assert!(!body.contains("authorized_user"));
}

#[test]
fn reload_applies_new_users_and_permissions() {
    let mut h = with_users(users());
    let alice = h.client(&login("alice", "a"));
    h.send(alice, "SUB foo.x 1\r\nSUB jobs v1 2\r\n");
    let bob = h.client(&login("bob", "b"));
    let carol = h.client(&login("carol", "s3cret"));
    let mut next = users();
    // alice may no longer subscribe to jobs; bob's password changes;
    // carol is gone.
    if let Some(Permissions {
        subscribe: Some(s), ..
    }) = &mut next.by_name.get_mut("alice").unwrap().permissions
    {
        s.allow = Some(list(&["foo.*"]));
    }
    next.by_name.get_mut("bob").unwrap().password = "b2".into();
    next.by_name.remove("carol");
    let opts = Options {
        auth: Auth::Users(next),
        ..Options::default()
    };
    h.reload(0, opts).unwrap();
    h.drain();
    assert_eq!(
        h.out(alice),
        "-ERR 'Permissions Violation for Subscription to \"jobs\" (sid \"2\")'\r\n"
    );
    assert!(h.close_reason(alice).is_none());
    assert_eq!(h.out(bob), "-ERR 'Authorization Violation'\r\n");
    assert_eq!(
        h.close_reason(bob),
        Some(CloseReason::AuthenticationViolation)
    );
    assert_eq!(h.out(carol), "");
    assert_eq!(h.close_reason(carol), Some(CloseReason::ClientClosed));
    let tail: Vec<&str> = h.logs.iter().map(|l| l.as_str()).collect();
    assert!(tail.contains(&"Reloaded: authorization users"));
    assert!(tail.contains(&"Removed sub \"jobs\" (sid \"2\") for User \"alice\" - not authorized"));
    // Changing the no_auth_user is refused.
    let opts = Options {
        auth: Auth::Users(users()),
        no_auth_user: "bob".into(),
        ..Options::default()
    };
    assert_eq!(
        h.reload(0, opts),
        Err("config reload not supported for NoAuthUser: old=, new=bob".into())
    );
}
