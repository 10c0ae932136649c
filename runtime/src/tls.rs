//! TLS for client connections: the core's [`TlsOptions`] made into a
//! rustls server configuration (certificates read from disk), and the
//! connection task that runs a client up to and through its handshake.
//! Between servers (routes and gateways) both sides of the handshake: a
//! server accepting a peer asks for its certificate, one dialing a peer
//! shows its own and checks the peer's against the same `ca_file`.
//!
//! What the core decides stays there: when the handshake starts (after
//! `INFO`, or before it with `handshake_first`), how long it may take, what
//! a failure is logged as. This module only carries it out and reports
//! how it went.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use natrix_core::auth::{PeerCertificate, SubjectAttribute};
use natrix_core::config::{Options, TlsOptions};
use natrix_core::server::ConnId;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::conn_io::{Inbound, Outbound};

/// A connection's stream once TLS is up (this server's side of it, or,
/// for a peer it dialed, the client's).
pub type TlsConn<S> = tokio_rustls::TlsStream<Prefixed<S>>;

/// How a connection's handshake runs.
#[derive(Clone)]
pub(crate) enum Handshake {
    /// As the server: a client, or a peer that dialed this server.
    Accept(TlsAcceptor),
    /// As the client: a peer this server dialed, checked under this name;
    /// with `info_first` (a leaf node dialing its hub), after reading the
    /// peer's plaintext `INFO` line and passing it on.
    Connect {
        connector: TlsConnector,
        name: ServerName<'static>,
        info_first: bool,
    },
}

/// Both sides of TLS for one kind of connection between servers.
#[derive(Clone)]
pub(crate) struct PeerSides {
    pub accept: TlsAcceptor,
    pub connect: TlsConnector,
}

/// TLS between servers, by kind of connection (`None`: plaintext).
#[derive(Clone, Default)]
pub(crate) struct PeerTls {
    pub route: Option<PeerSides>,
    pub gateway: Option<PeerSides>,
    /// The dialing side for remote gateways with a `tls` block of their
    /// own, by name.
    pub gateway_remotes: Vec<(String, TlsConnector)>,
    /// A hub's side for leaf nodes dialing it.
    pub leaf_hub: Option<TlsAcceptor>,
    /// A leaf node's side, by remote (its place in `leafnodes.remotes`),
    /// and whether it shakes hands before the hub's INFO.
    pub leaf_remotes: Vec<Option<(TlsConnector, bool)>>,
}

/// The TLS configurations of `cluster { tls }` and `gateway { tls }`.
pub(crate) fn peer_tls(opts: &Options) -> Result<PeerTls, String> {
    let sides = |t: Option<&TlsOptions>| t.map(peer_sides).transpose();
    let leafnodes = opts.leafnodes.as_ref();
    Ok(PeerTls {
        route: sides(opts.cluster.as_ref().and_then(|c| c.tls.as_ref()))?,
        gateway: sides(opts.gateway.as_ref().and_then(|g| g.tls.as_ref()))?,
        gateway_remotes: opts
            .gateway
            .as_ref()
            .map(|g| g.gateways.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.tls.as_ref()?)))
            .map(|(name, t)| connector(t).map(|c| (name, c)))
            .collect::<Result<_, _>>()?,
        leaf_hub: leafnodes
            .and_then(|l| l.tls.as_ref())
            .map(server_config)
            .transpose()?
            .map(TlsAcceptor::from),
        leaf_remotes: leafnodes
            .map(|l| l.remotes.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|r| {
                r.tls
                    .as_ref()
                    .map(|t| connector(t).map(|c| (c, t.handshake_first)))
                    .transpose()
            })
            .collect::<Result<_, _>>()?,
    })
}

fn peer_sides(opts: &TlsOptions) -> Result<PeerSides, String> {
    Ok(PeerSides {
        accept: TlsAcceptor::from(server_config(opts)?),
        connect: connector(opts)?,
    })
}

/// The dialing side: the peer's certificate checked against `ca_file`
/// (unless `insecure`), this server's shown if it has one.
fn connector(opts: &TlsOptions) -> Result<TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
    } else {
        let ca_file = opts.ca_file.as_deref().unwrap_or_default();
        builder.with_root_certificates(roots(ca_file).map_err(|e| origin(opts, e))?)
    };
    let config = if opts.cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let (chain, key) = chain_and_key(opts).map_err(|e| origin(opts, e))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| origin(opts, e.to_string()))?
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `insecure`: a dialed peer's certificate is taken unchecked (its
/// signatures still are).
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn origin(opts: &TlsOptions, e: String) -> String {
    if opts.origin.is_empty() {
        e
    } else {
        format!("{}: {e}", opts.origin)
    }
}

/// The first record type of every TLS handshake.
const HANDSHAKE_RECORD: u8 = 0x16;

/// Reads the certificate, key and CA files named in `opts` into a server
/// configuration. Errors read as nats-server's, placed at the `tls` block
/// when it came from a file.
pub fn server_config(opts: &TlsOptions) -> Result<Arc<ServerConfig>, String> {
    build(opts).map_err(|e| origin(opts, e))
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("open {path}: {}", crate::config_file::io_text(&e)))
}

type ChainAndKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn chain_and_key(opts: &TlsOptions) -> Result<ChainAndKey, String> {
    let pair_error = |e: String| format!("error parsing X509 certificate/key pair: {e}");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(&opts.cert_file).map_err(pair_error)?)
            .collect::<Result<_, _>>()
            .map_err(|e| pair_error(format!("{}: {e}", opts.cert_file)))?;
    if chain.is_empty() {
        return Err(pair_error(
            "tls: failed to find any PEM data in certificate input".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(&opts.key_file).map_err(pair_error)?)
        .map_err(|_| pair_error("tls: failed to find any PEM data in key input".into()))?;
    Ok((chain, key))
}

/// The authorities of `ca_file`.
fn roots(ca_file: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&read(ca_file)?) {
        let cert = cert.map_err(|_| "failed to parse root ca certificate".to_string())?;
        roots
            .add(cert)
            .map_err(|_| "failed to parse root ca certificate".to_string())?;
    }
    if roots.is_empty() {
        return Err("failed to parse root ca certificate".into());
    }
    Ok(roots)
}

fn build(opts: &TlsOptions) -> Result<Arc<ServerConfig>, String> {
    let pair_error = |e: String| format!("error parsing X509 certificate/key pair: {e}");
    let (chain, key) = chain_and_key(opts)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if opts.verify {
        let Some(ca_file) = &opts.ca_file else {
            return Err(
                "verifying client certificates needs a CA: natrix does not use the \
                        system's roots; set 'ca_file' (or --tlscacert)"
                    .into(),
            );
        };
        let roots = roots(ca_file)?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| pair_error(e.to_string()))?;
    Ok(Arc::new(config))
}

/// HTTPS monitoring's configuration: the clients' certificate (shared
/// with their configuration, so it is the one loaded last) without asking
/// for client certificates, as nats-server's monitor does.
pub fn monitor_config(client: &ServerConfig) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&client.cert_resolver));
    Ok(Arc::new(config))
}

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<S> {
    front: Vec<u8>,
    taken: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.taken < this.front.len() {
            let n = (this.front.len() - this.taken).min(buf.remaining());
            buf.put_slice(&this.front[this.taken..this.taken + n]);
            this.taken += n;
            if this.taken == this.front.len() {
                this.front = Vec::new();
                this.taken = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The server side of the handshake. A peer whose first bytes are not a
/// TLS handshake record is refused without a reply (a plaintext NATS
/// client gets nothing after `INFO`, as from nats-server); what it sent
/// first has been read, so the close is orderly.
async fn handshake<S>(
    acceptor: &TlsAcceptor,
    mut stream: S,
) -> Result<tokio_rustls::server::TlsStream<Prefixed<S>>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut first = vec![0u8; 4096];
    let n = stream.read(&mut first).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("EOF".into());
    }
    if first[0] != HANDSHAKE_RECORD {
        return Err("tls: first record does not look like a TLS handshake".into());
    }
    first.truncate(n);
    let stream = Prefixed {
        front: first,
        taken: 0,
        inner: stream,
    };
    acceptor
        .accept(stream)
        .await
        .map_err(|e| describe_error(&e))
}

/// The failure as nats-server's Go TLS words it where natrix knows the
/// words, else as rustls does.
fn describe_error(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return "EOF".into();
    }
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::NoCertificatesPresented) => {
            "tls: client didn't provide a certificate".into()
        }
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            "tls: failed to verify client certificate: x509: certificate signed by unknown \
             authority"
                .into()
        }
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// The version and cipher suite, named as nats-server names them
/// (`1.3`, `TLS_AES_128_GCM_SHA256`).
fn describe_session(conn: &rustls::CommonState) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => String::new(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let name = s
                .suite()
                .as_str()
                .map_or_else(|| format!("{:?}", s.suite()), str::to_string);
            match name.strip_prefix("TLS13_") {
                Some(rest) => format!("TLS_{rest}"),
                None => name,
            }
        })
        .unwrap_or_default();
    (version, cipher)
}

/// The names in the client's leaf certificate that `verify_and_map` can
/// map to a user: email, DNS and URI alternative names and the subject's
/// attributes (string values decoded as Go's `encoding/asn1` decodes them).
fn peer_certificate(conn: &rustls::CommonState) -> Option<PeerCertificate> {
    use x509_parser::extensions::GeneralName;
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let mut peer = PeerCertificate::default();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::RFC822Name(e) => peer.emails.push(e.to_string()),
                GeneralName::DNSName(d) => peer.dns_names.push(d.to_string()),
                GeneralName::URI(u) => peer.uris.push(u.to_string()),
                _ => {}
            }
        }
    }
    for rdn in cert.subject().iter() {
        let attributes = rdn
            .iter()
            .map(|a| SubjectAttribute {
                oid: a.attr_type().to_id_string(),
                value: asn1_string(a.attr_value().tag().0, a.attr_value().data),
            })
            .collect();
        peer.subject.push(attributes);
    }
    Some(peer)
}

/// A value of one of the ASN.1 string types Go reads into a string.
fn asn1_string(tag: u32, data: &[u8]) -> Option<String> {
    const UTF8: u32 = 12;
    const NUMERIC: u32 = 18;
    const PRINTABLE: u32 = 19;
    const T61: u32 = 20;
    const IA5: u32 = 22;
    const BMP: u32 = 30;
    match tag {
        UTF8 | NUMERIC | PRINTABLE | T61 | IA5 => Some(String::from_utf8_lossy(data).into_owned()),
        BMP if data.len().is_multiple_of(2) => {
            let units = data.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A TLS client connection's task: writes what comes before the
/// handshake in plaintext, runs the handshake when the core asks
/// ([`Outbound::StartTls`]), reports it, then goes on as the connection's
/// writer over TLS. A `Close` at any point ends it.
pub(crate) async fn connection<S>(
    mut stream: S,
    how: Option<Handshake>,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    (id, generation): (ConnId, u64),
    tx: mpsc::Sender<Inbound<S>>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // A leaf node reads its hub's plaintext INFO line before the
    // handshake (the hub sends nothing more until it).
    let mut info = match &how {
        Some(Handshake::Connect {
            info_first: true, ..
        }) => Some(Vec::new()),
        _ => None,
    };
    let mut chunk = [0u8; 1024];
    loop {
        let msg = tokio::select! {
            msg = rx.recv() => msg,
            n = stream.read(&mut chunk), if info.is_some() => {
                let line = info.as_mut().expect("reading INFO");
                match n {
                    Ok(n) if n > 0 => line.extend_from_slice(&chunk[..n]),
                    _ => {
                        let _ = tx.send(Inbound::Closed(id, generation)).await;
                        return;
                    }
                }
                if line.windows(2).any(|w| w == b"\r\n") {
                    let line = info.take().expect("read");
                    let _ = tx.send(Inbound::Preface(id, generation, line)).await;
                }
                continue;
            }
        };
        match msg {
            Some(Outbound::Bytes(b)) => {
                if stream.write_all(&b).await.is_err() {
                    let _ = tx.send(Inbound::Closed(id, generation)).await;
                    return;
                }
                let _ = tx.send(Inbound::Written(id, generation, b.len(), b)).await;
            }
            Some(Outbound::StartTls) => break,
            Some(Outbound::Close) | None => {
                let _ = stream.shutdown().await;
                let _ = tx.send(Inbound::Closed(id, generation)).await;
                return;
            }
        }
    }
    let Some(how) = how else {
        let error = "no TLS configuration".to_string();
        let _ = tx.send(Inbound::TlsFailed(id, generation, error)).await;
        let _ = tx.send(Inbound::Closed(id, generation)).await;
        return;
    };
    // Bytes for after the handshake (INFO, with handshake_first) wait here.
    let mut after = Vec::new();
    let handshake = async move {
        match how {
            Handshake::Accept(acceptor) => handshake(&acceptor, stream)
                .await
                .map(tokio_rustls::TlsStream::Server),
            Handshake::Connect {
                connector, name, ..
            } => {
                let stream = Prefixed {
                    front: Vec::new(),
                    taken: 0,
                    inner: stream,
                };
                connector
                    .connect(name, stream)
                    .await
                    .map(tokio_rustls::TlsStream::Client)
                    .map_err(|e| describe_error(&e))
            }
        }
    };
    tokio::pin!(handshake);
    let result = loop {
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(Outbound::Bytes(b)) => after.push(b),
                Some(Outbound::StartTls) => {}
                Some(Outbound::Close) | None => {
                    let _ = tx.send(Inbound::Closed(id, generation)).await;
                    return;
                }
            },
            r = &mut handshake => break r,
        }
    };
    match result {
        Err(error) => {
            let _ = tx.send(Inbound::TlsFailed(id, generation, error)).await;
            let _ = tx.send(Inbound::Closed(id, generation)).await;
        }
        Ok(tls) => {
            let session = tls.get_ref().1;
            let (version, cipher) = describe_session(session);
            let peer = peer_certificate(session).map(Box::new);
            let (read, write) = tokio::io::split(tls);
            let ready = Inbound::TlsReady(id, generation, read, (version, cipher), peer);
            if tx.send(ready).await.is_err() {
                return;
            }
            crate::conn_io::write_loop(write, rx, id, generation, tx, after).await;
        }
    }
}
