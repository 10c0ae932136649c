//! `tls { verify_and_map: true }` against the `natrix` binary and
//! nats-server 2.9.10 with the same configuration: clients whose
//! certificates carry an email, a URI or a subject are logged in as the
//! user of that name (as `/connz?auth=true` shows), and a certificate that
//! names no configured user is refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use futures::StreamExt;
use natrix_tests::pki::Pki;
use natrix_tests::{ServerProcess, free_port, servers};
use rcgen::{DistinguishedName, DnType, SanType};

/// Certificates: `email` (SAN a@example.com), `uri` (SAN
/// spiffe://acme/svc), `dn` (subject O=acme, CN=dn-user, no SAN),
/// `nobody` (CN=nobody).
fn pki() -> Pki {
    let pki = Pki::new("map");
    pki.client("ca", "email", |p| {
        p.subject_alt_names = vec![SanType::Rfc822Name("a@example.com".try_into().unwrap())];
    });
    pki.client("ca", "uri", |p| {
        p.subject_alt_names = vec![SanType::URI("spiffe://acme/svc".try_into().unwrap())];
    });
    pki.client("ca", "dn", |p| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "acme");
        dn.push(DnType::CommonName, "dn-user");
        p.distinguished_name = dn;
    });
    pki.client("ca", "nobody", |_| {});
    pki
}

fn config(pki: &Pki) -> String {
    format!(
        r#"
tls {{
  cert_file: "{}"
  key_file: "{}"
  ca_file: "{}"
  verify_and_map: true
}}
authorization {{
  users: [
    {{ user: "a@example.com", permissions: {{ publish: "email.>" }} }}
    {{ user: "spiffe://acme/svc" }}
    {{ user: "CN=dn-user, O=acme" }}
    {{ user: "CN=nobody-else" }}
  ]
}}
"#,
        pki.arg("server.pem"),
        pki.arg("server.key"),
        pki.arg("ca.pem")
    )
}

fn connect_options(pki: &Pki, cert: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .add_root_certificates(pki.path("ca.pem"))
        .add_client_certificate(
            pki.path(&format!("{cert}.pem")),
            pki.path(&format!("{cert}.key")),
        )
        .require_tls(true)
        .max_reconnects(0)
        .connection_timeout(Duration::from_secs(3))
}

/// The users `/connz?auth=true` shows, sorted.
fn authorized_users(monitor_port: u16) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", monitor_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /connz?auth=true HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let connz: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut users: Vec<String> = connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["authorized_user"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    users.sort();
    users
}

/// Publishes to a private subject the client subscribes and waits for the
/// message: the server has then seen the client's earlier subscriptions.
async fn round_trip(client: &async_nats::Client) {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "rt".into()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(3), sub.next())
        .await
        .expect("round trip")
        .unwrap();
}

#[tokio::test]
async fn certificates_map_to_users_as_in_nats_server() {
    let pki = pki();
    let conf = pki.path("map.conf");
    std::fs::write(&conf, config(&pki)).unwrap();
    for (name, bin) in servers() {
        let monitor = free_port();
        let conf = conf.to_str().unwrap();
        let _server = ServerProcess::start(&bin, &["-c", conf, "-m", &monitor.to_string()]);
        let url = format!("tls://127.0.0.1:{}", _server.port);
        let mut clients = Vec::new();
        for cert in ["email", "uri", "dn"] {
            // A user name sent in CONNECT does not matter.
            let client = connect_options(&pki, cert)
                .user_and_password("spiffe://acme/svc".into(), "".into())
                .connect(&url)
                .await
                .unwrap_or_else(|e| panic!("{name}: {cert}: {e}"));
            client.flush().await.unwrap();
            clients.push(client);
        }
        assert_eq!(
            authorized_users(monitor),
            ["CN=dn-user, O=acme", "a@example.com", "spiffe://acme/svc"],
            "{name}"
        );
        // The mapped user's permissions apply: the email user may not
        // publish outside email.>, so a subscriber there sees nothing.
        let mut sub = clients[1].subscribe("other.x").await.unwrap();
        let mut email_sub = clients[1].subscribe("email.x").await.unwrap();
        round_trip(&clients[1]).await;
        clients[0].publish("other.x", "no".into()).await.unwrap();
        clients[0].publish("email.x", "yes".into()).await.unwrap();
        clients[0].flush().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), email_sub.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: allowed message not delivered"))
            .unwrap();
        assert_eq!(&got.payload[..], b"yes", "{name}");
        let denied = tokio::time::timeout(Duration::from_millis(300), sub.next()).await;
        assert!(denied.is_err(), "{name}: a denied publish was delivered");
        // A certificate naming no user is refused.
        let refused = connect_options(&pki, "nobody").connect(&url).await;
        let err = refused.expect_err("connected without a user").to_string();
        assert!(
            err.to_lowercase().contains("authorization violation"),
            "{name}: {err}"
        );
    }
}
