//! HTTPS monitoring (`-ms`, `https_port`) against the `natrix` binary and
//! nats-server 2.9.10: the endpoints over TLS with the server's `tls {}`
//! certificate, no client certificate asked for even when clients need
//! one, `/varz` reporting the port, and the start refused without TLS.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use natrix_tests::pki::Pki;
use natrix_tests::{ServerProcess, free_port, servers};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` over TLS, trusting `ca`: the status code and the body.
async fn https_get(ca: &std::path::Path, port: u16, path: &str) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // Go closes without close_notify; what was read until then counts.
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

fn https_flags(tls: Vec<String>, port: u16) -> Vec<String> {
    let mut flags = tls;
    flags.extend(["-ms".to_string(), port.to_string()]);
    flags
}

fn start(bin: &std::path::Path, args: &[String]) -> ServerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(bin, &args)
}

#[tokio::test]
async fn monitoring_over_https_with_the_client_certificate() {
    let pki = Pki::new("https");
    for (name, bin) in servers() {
        // Clients need a certificate; the monitor does not ask for one.
        let port = free_port();
        let _server = start(&bin, &https_flags(pki.verify_flags(), port));
        let (status, body) = https_get(&pki.path("ca.pem"), port, "/varz")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status, 200, "{name}");
        let varz: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (&varz["https_port"], &varz["http_port"]),
            (&serde_json::json!(port), &serde_json::json!(0)),
            "{name}"
        );
        assert_eq!(varz["tls_verify"], true, "{name}");
        let (status, body) = https_get(&pki.path("ca.pem"), port, "/healthz")
            .await
            .unwrap();
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, &health["status"]),
            (200, &serde_json::json!("ok")),
            "{name}"
        );
        // Plain HTTP on the HTTPS port gets no monitoring answer.
        let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        plain
            .write_all(b"GET /varz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), plain.read_to_end(&mut got)).await;
        assert!(
            !String::from_utf8_lossy(&got).contains("server_id"),
            "{name}: varz over plain HTTP"
        );
    }
}

#[test]
fn https_without_tls_or_with_http_stops_the_start() {
    let pki = Pki::new("https-refused");
    let cases = [
        (
            Vec::new(),
            "Can't start monitoring: TLS cert and key required for HTTPS",
        ),
        (
            vec!["-m".to_string(), "8222".to_string()],
            "Can't start monitoring: can't specify both HTTP (8222) and HTTPs (8443) ports",
        ),
    ];
    for (name, bin) in servers() {
        for (i, (extra, expected)) in cases.iter().enumerate() {
            let tls = if i == 0 { Vec::new() } else { pki.tls_flags() };
            let out = Command::new(&bin)
                .args(["-a", "127.0.0.1", "-p", &free_port().to_string()])
                .args(tls)
                .args(["-ms", "8443"])
                .args(extra)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(
                log.lines()
                    .any(|l| l.ends_with(&format!("[FTL] {expected}"))),
                "{name}: {log}"
            );
            assert_eq!(out.status.code(), Some(1), "{name}");
        }
    }
}

#[tokio::test]
async fn https_port_from_the_configuration_file() {
    let pki = Pki::new("https-conf");
    let port = free_port();
    let conf = pki.path("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "https: \"127.0.0.1:{port}\"\ntls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n}}\n",
            pki.arg("server.pem"),
            pki.arg("server.key")
        ),
    )
    .unwrap();
    for (name, bin) in servers() {
        let _server = start(&bin, &["-c".into(), conf.to_str().unwrap().into()]);
        let (status, body) = https_get(&pki.path("ca.pem"), port, "/connz")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status, 200, "{name}");
        assert!(body.contains("\"num_connections\""), "{name}: {body}");
    }
}
