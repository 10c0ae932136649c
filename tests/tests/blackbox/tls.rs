//! TLS for client connections against the `natrix` binary, and the same
//! checks against nats-server 2.9.10 where it has the feature: async-nats
//! over TLS and mutual TLS, a client without a certificate refused, a
//! plaintext client (the bytes it gets and the close), the handshake
//! timeout, `handshake_first` and certificates renewed by a reload.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use natrix_tests::pki::Pki;
use natrix_tests::{ServerProcess, natrix_bin, servers};

fn start(bin: &Path, args: &[String]) -> ServerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(bin, &args)
}

fn trusting(pki: &Pki) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .require_tls(true)
        .max_reconnects(0)
        .connection_timeout(Duration::from_secs(3))
}

/// Subscribes, publishes and gets the message back.
async fn round_trip(client: &async_nats::Client) {
    let mut sub = client.subscribe("tls.check").await.unwrap();
    client.flush().await.unwrap();
    client
        .publish("tls.check", "over TLS".into())
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("message in time")
        .expect("subscription open");
    assert_eq!(&msg.payload[..], b"over TLS");
}

#[tokio::test]
async fn async_nats_publishes_and_subscribes_over_tls() {
    let pki = Pki::new("basic");
    for (name, bin) in servers() {
        let server = start(&bin, &pki.tls_flags());
        let client = trusting(&pki).connect(server.url()).await.unwrap();
        let info = client.server_info();
        assert!(info.tls_required, "{name}");
        assert!(
            raw_info(&server.addr()).get("tls_verify").is_none(),
            "{name}"
        );
        round_trip(&client).await;
        // A client that does not trust the server's CA gets no connection.
        let untrusting = async_nats::ConnectOptions::new()
            .require_tls(true)
            .max_reconnects(0)
            .connect(server.url())
            .await;
        assert!(untrusting.is_err(), "{name}: connected without trusting");
    }
}

#[tokio::test]
async fn mutual_tls_takes_a_client_certificate_and_refuses_a_client_without_one() {
    let pki = Pki::new("mutual");
    pki.issue("other-ca", "other-server", "stranger");
    for (name, bin) in servers() {
        let server = start(&bin, &pki.verify_flags());
        let client = trusting(&pki)
            .add_client_certificate(pki.path("client.pem"), pki.path("client.key"))
            .connect(server.url())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(raw_info(&server.addr())["tls_verify"], true, "{name}");
        round_trip(&client).await;
        let without = trusting(&pki).connect(server.url()).await;
        assert!(without.is_err(), "{name}: connected without a certificate");
        // A certificate from a CA the server does not know is refused too.
        let stranger = trusting(&pki)
            .add_client_certificate(pki.path("stranger.pem"), pki.path("stranger.key"))
            .connect(server.url())
            .await;
        assert!(
            stranger.is_err(),
            "{name}: connected with a stranger's certificate"
        );
    }
}

/// What a plaintext NATS client gets from a TLS-only server: everything
/// it reads until the server closes, how the close came, and how long it
/// took from the first byte sent (or from connecting, if it sends none).
fn plaintext_client(addr: &str, send: &[u8]) -> (Vec<u8>, &'static str, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    if !send.is_empty() {
        // Like a client that does not know about TLS: wait for INFO first.
        let mut first = [0u8; 4096];
        let n = s.read(&mut first).unwrap();
        let mut got = first[..n].to_vec();
        s.write_all(send).unwrap();
        let (rest, end, took) = read_to_end(&mut s, start);
        got.extend(rest);
        return (got, end, took);
    }
    read_to_end(&mut s, start)
}

fn read_to_end(s: &mut TcpStream, start: Instant) -> (Vec<u8>, &'static str, Duration) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, "closed", start.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (got, "reset", start.elapsed());
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// The INFO a server sends in plaintext before the handshake.
fn raw_info(addr: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    split_info(&buf[..n]).0
}

/// The INFO line and whatever came after it.
fn split_info(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("an INFO line")
        + 2;
    let line = std::str::from_utf8(&bytes[..end]).unwrap();
    let json = line
        .strip_prefix("INFO ")
        .and_then(|l| l.strip_suffix(" \r\n"))
        .expect("INFO {..} \\r\\n");
    (serde_json::from_str(json).unwrap(), bytes[end..].to_vec())
}

#[test]
fn a_plaintext_client_gets_info_then_an_orderly_close_as_from_nats_server() {
    let pki = Pki::new("plain");
    let mut seen = Vec::new();
    for (name, bin) in servers() {
        let server = start(&bin, &pki.tls_flags());
        let (bytes, end, took) =
            plaintext_client(&server.addr(), b"CONNECT {\"verbose\":false}\r\nPING\r\n");
        let (info, after) = split_info(&bytes);
        assert_eq!(info["tls_required"], true, "{name}");
        assert!(info.get("tls_verify").is_none(), "{name}");
        assert!(
            took < Duration::from_secs(1),
            "{name}: closed after {took:?}"
        );
        seen.push((name, String::from_utf8_lossy(&after).into_owned(), end));
    }
    // Nothing after INFO (no -ERR, no TLS alert), then FIN.
    for s in &seen {
        assert_eq!((s.1.as_str(), s.2), ("", "closed"), "{}", s.0);
    }
}

#[test]
fn a_silent_client_is_closed_at_the_handshake_timeout() {
    let pki = Pki::new("timeout");
    let conf = pki.path("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  timeout: 0.5\n}}\n",
            pki.arg("server.pem"),
            pki.arg("server.key")
        ),
    )
    .unwrap();
    for (name, bin) in servers() {
        let server = start(&bin, &["-c".into(), conf.to_str().unwrap().into()]);
        let (bytes, end, took) = plaintext_client(&server.addr(), b"");
        let (info, after) = split_info(&bytes);
        assert_eq!(info["tls_required"], true, "{name}");
        assert_eq!((after.as_slice(), end), (&b""[..], "closed"), "{name}");
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
            "{name}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn handshake_first_sends_info_over_tls() {
    // nats-server 2.11's option; 2.9.10 does not know it.
    let pki = Pki::new("first");
    let conf = pki.path("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  handshake_first: true\n}}\n",
            pki.arg("server.pem"),
            pki.arg("server.key")
        ),
    )
    .unwrap();
    let server = start(&natrix_bin(), &["-c".into(), conf.to_str().unwrap().into()]);
    let client = trusting(&pki)
        .tls_first()
        .connect(server.url())
        .await
        .unwrap();
    round_trip(&client).await;
    // A client that waits for INFO first gets nothing in plaintext.
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let read = s.read(&mut buf);
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{read:?}"
    );
}

#[tokio::test]
async fn a_reload_serves_renewed_certificates_to_new_connections() {
    let pki = Pki::new("reload");
    let conf = pki.path("nats.conf");
    let write = |cert: &str, key: &str| {
        std::fs::write(
            &conf,
            format!(
                "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
                pki.arg(cert),
                pki.arg(key)
            ),
        )
        .unwrap();
    };
    write("server.pem", "server.key");
    let server = start(&natrix_bin(), &["-c".into(), conf.to_str().unwrap().into()]);
    let before = trusting(&pki).connect(server.url()).await.unwrap();
    // Same file names, new contents: a certificate from another CA.
    pki.issue("renewed-ca", "renewed", "renewed-client");
    std::fs::copy(pki.path("renewed.pem"), pki.path("server.pem")).unwrap();
    std::fs::copy(pki.path("renewed.key"), pki.path("server.key")).unwrap();
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old_ca = trusting(&pki).connect(server.url()).await;
    assert!(old_ca.is_err(), "still serving the old certificate");
    let renewed = async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("renewed-ca.pem"))
        .require_tls(true)
        .max_reconnects(0)
        .connect(server.url())
        .await
        .unwrap();
    round_trip(&renewed).await;
    // The connection made before the reload goes on.
    round_trip(&before).await;
}

#[test]
fn missing_certificate_files_stop_the_start_as_in_nats_server() {
    let pki = Pki::new("missing");
    let missing = pki.path("nope.pem");
    let mut texts = Vec::new();
    for (name, bin) in servers() {
        let out = Command::new(&bin)
            .args(["-p", "-1", "--tls", "--tlscert"])
            .arg(&missing)
            .arg("--tlskey")
            .arg(pki.path("server.key"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        texts.push(natrix_tests::without_program(&out.stderr));
    }
    assert_eq!(
        texts[0],
        format!(
            "error parsing X509 certificate/key pair: open {}: no such file or directory",
            missing.display()
        )
    );
    for t in &texts[1..] {
        assert_eq!(t, &texts[0]);
    }
}
