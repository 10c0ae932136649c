//! TLS as the core sees it: INFO, the handshake request, its timer, and
//! the client timers that wait for it.

use std::time::Duration;

use super::*;
use crate::config::TlsOptions;

/// TLS, and no system account (its statsz timer would be the next
/// deadline these tests look at).
fn tls_opts(tls: TlsOptions) -> Options {
    Options {
        tls: Some(tls),
        no_system_account: true,
        ..Options::default()
    }
}

fn info_json(info: &str) -> serde_json::Value {
    serde_json::from_str(info.trim_start_matches("INFO ").trim_end()).unwrap()
}

#[test]
fn info_goes_out_in_plaintext_then_the_handshake_starts() {
    let mut tls = TlsOptions::new("c.pem", "k.pem");
    tls.verify = true;
    let mut h = Harness::new(tls_opts(tls));
    let id = h.accept_at(0);
    h.drain();
    assert_eq!(h.wire, [(id, "transmit"), (id, "start tls")]);
    assert!(h.server.awaits_tls(id));
    let info = info_json(&h.out(id));
    assert_eq!(info["tls_required"], true);
    assert_eq!(info["tls_verify"], true);
    assert!(info.get("tls_available").is_none());
    // No ping while the handshake runs; the handshake timer is the only one.
    assert_eq!(
        h.server.next_deadline(),
        Some(Instant::from_nanos(2_000_000_000))
    );
    h.server.handle(
        now_at(h.now_ns),
        Event::TlsReady {
            conn: id,
            version: "1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            peer_cert: None,
        },
    );
    h.drain();
    assert!(!h.server.awaits_tls(id));
    // The handshake timer is gone: nothing closes the client at 2 s.
    h.advance(Duration::from_secs(3));
    assert!(h.close_reason(id).is_none());
    h.send(id, &format!("CONNECT {}\r\nPING\r\n", quiet()));
    assert_eq!(h.out(id), "PONG\r\n");
    let (_, connz) = super::http(&mut h, "/connz", "");
    let connz: serde_json::Value = serde_json::from_str(&connz).unwrap();
    let conn = &connz["connections"][0];
    assert_eq!(conn["tls_version"], "1.3");
    assert_eq!(conn["tls_cipher_suite"], "TLS_AES_128_GCM_SHA256");
}

#[test]
fn handshake_first_starts_tls_before_info() {
    let mut tls = TlsOptions::new("c.pem", "k.pem");
    tls.handshake_first = true;
    let mut h = Harness::new(tls_opts(tls));
    let id = h.accept_at(0);
    h.drain();
    assert_eq!(h.wire, [(id, "start tls"), (id, "transmit")]);
}

#[test]
fn a_handshake_that_fails_or_takes_too_long_closes_silently() {
    let mut h = Harness::new(tls_opts(TlsOptions::new("c.pem", "k.pem")));
    let failed = h.accept();
    h.server.handle(
        now_at(0),
        Event::TlsFailed {
            conn: failed,
            error: "tls: first record does not look like a TLS handshake",
        },
    );
    h.drain();
    assert_eq!(h.closed, [(failed, CloseReason::TlsHandshakeError, false)]);
    assert!(
        h.logs.iter().any(|l| l.ends_with(
            "cid:1 - TLS handshake error: tls: first record does not look like a TLS handshake"
        )),
        "{:?}",
        h.logs
    );
    let slow = h.accept();
    h.advance(Duration::from_millis(1999));
    assert!(h.close_reason(slow).is_none());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.close_reason(slow), Some(CloseReason::TlsHandshakeError));
    assert_eq!(h.out(slow), "", "nothing is sent in plaintext after INFO");
    assert!(
        h.logs
            .iter()
            .any(|l| l.ends_with("cid:2 - TLS handshake timeout"))
    );
    // A late report of the handshake changes nothing.
    h.server.handle(
        now_at(h.now_ns),
        Event::TlsReady {
            conn: slow,
            version: "1.3",
            cipher: "x",
            peer_cert: None,
        },
    );
    h.drain();
    assert_eq!(h.server.next_deadline(), None);
}

#[test]
fn auth_timer_starts_after_the_handshake_with_tls_timeout_plus_one_second() {
    let mut opts = tls_opts(TlsOptions::new("c.pem", "k.pem"));
    opts.auth = crate::auth::Auth::Token("t".into());
    let mut h = Harness::new(opts);
    let id = h.accept();
    h.advance(Duration::from_secs(1));
    h.server.handle(
        now_at(h.now_ns),
        Event::TlsReady {
            conn: id,
            version: "1.2",
            cipher: "x",
            peer_cert: None,
        },
    );
    h.drain();
    h.advance(Duration::from_millis(2999));
    assert!(h.close_reason(id).is_none());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.close_reason(id), Some(CloseReason::AuthenticationTimeout));
}

#[test]
fn reload_turns_tls_on_and_off_for_new_connections() {
    let mut h = Harness::new(Options::default());
    let plain = h.accept();
    let on = tls_opts(TlsOptions::new("c.pem", "k.pem"));
    h.reload(0, on.clone()).unwrap();
    h.drain();
    assert!(
        h.logs.iter().any(|l| l == "Reloaded: tls = enabled"),
        "{:?}",
        h.logs
    );
    assert!(h.logs.iter().any(|l| l == "Reloaded: tls timeout = 2"));
    assert!(!h.server.awaits_tls(plain));
    let id = h.accept_at(0);
    h.drain();
    assert!(h.server.awaits_tls(id));
    assert_eq!(info_json(&h.out(id))["tls_required"], true);
    let mut slower = on.clone();
    slower.tls.as_mut().unwrap().timeout = Duration::from_millis(2500);
    h.logs.clear();
    h.reload(0, slower).unwrap();
    h.drain();
    assert_eq!(
        h.logs,
        [
            "Reloaded: authorization users",
            "Reloaded: accounts",
            "Reloaded: tls timeout = 2.5",
            "Reloaded: authorization timeout = 3.5",
            "Reloaded server configuration"
        ]
    );
    h.logs.clear();
    h.reload(0, Options::default()).unwrap();
    h.drain();
    assert_eq!(h.logs[2], "Reloaded: tls = disabled");
    let id = h.accept_at(0);
    h.drain();
    assert!(!h.server.awaits_tls(id));
    assert!(info_json(&h.out(id)).get("tls_required").is_none());
}

/// A TLS server with `verify_and_map` and these users (no passwords).
fn mapping_server(users: &[(&str, Option<crate::auth::Permissions>)]) -> Harness {
    let mut tls = TlsOptions::new("c.pem", "k.pem");
    tls.verify = true;
    tls.map = true;
    let mut opts = tls_opts(tls);
    opts.debug = true;
    let mut u = crate::auth::Users::default();
    for (name, permissions) in users {
        let user = crate::auth::User {
            permissions: permissions.clone(),
            ..crate::auth::User::default()
        };
        u.by_name.insert(name.to_string(), user);
    }
    opts.auth = crate::auth::Auth::Users(u);
    Harness::new(opts)
}

/// Accepts a client whose certificate has common name `cn` and sends
/// `connect`.
fn mapped_client(h: &mut Harness, cn: &str, connect: &str) -> ConnId {
    let id = h.accept();
    let cert = crate::auth::PeerCertificate {
        subject: vec![vec![crate::auth::SubjectAttribute::new("2.5.4.3", cn)]],
        ..Default::default()
    };
    h.server.handle(
        now_at(h.now_ns),
        Event::TlsReady {
            conn: id,
            version: "1.3",
            cipher: "x",
            peer_cert: Some(&cert),
        },
    );
    h.drain();
    h.send(id, &format!("CONNECT {connect}\r\nPING\r\n"));
    id
}

#[test]
fn verify_and_map_takes_the_user_and_permissions_from_the_certificate() {
    let perms = crate::auth::Permissions {
        publish: Some(crate::auth::SubjectPermission {
            allow: Some(vec!["ok.>".into()]),
            deny: Vec::new(),
        }),
        ..Default::default()
    };
    let mut h = mapping_server(&[("CN=alice", Some(perms)), ("bob", None)]);
    // The user name sent is ignored (and warned about): the certificate wins.
    let alice = mapped_client(&mut h, "alice", r#"{"user":"bob"}"#);
    assert!(h.out(alice).ends_with("PONG\r\n"), "{}", h.out(alice));
    assert!(h.close_reason(alice).is_none());
    h.send(
        alice,
        "SUB ok.x 1\r\nPUB no 0\r\n\r\nPUB ok.x 2\r\nhi\r\nPING\r\n",
    );
    let out = h.out(alice);
    assert!(
        out.contains("Permissions Violation for Publish to \"no\""),
        "{out}"
    );
    assert!(out.contains("MSG ok.x 1 2\r\nhi\r\n"), "{out}");
    let logged = |h: &Harness, line: &str| h.logs.iter().any(|l| l.ends_with(line));
    assert!(logged(
        &h,
        "User \"bob\" found in connect proto, but user required from cert"
    ));
    assert!(logged(
        &h,
        "Using DistinguishedNameMatch for auth [\"CN=alice\"]"
    ));
    // A certificate that maps to no user is refused, even with a good
    // user name in CONNECT.
    let carol = mapped_client(&mut h, "carol", r#"{"user":"bob"}"#);
    assert!(h.out(carol).contains("-ERR 'Authorization Violation'"));
    assert_eq!(
        h.close_reason(carol),
        Some(CloseReason::AuthenticationViolation)
    );
    assert!(logged(&h, "User in cert [\"CN=carol\"], not found"));
}
