//! Test certificates made at run time with rcgen: certificate authorities,
//! a server certificate for localhost and 127.0.0.1, and client
//! certificates with whatever names a test needs, written as PEM files
//! into one directory that is removed when the [`Pki`] is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A directory of certificates and keys, with the authorities that signed
/// them (so more can be issued later).
pub struct Pki {
    dir: PathBuf,
    /// Each authority's parameters and key (PEM), by name.
    cas: RefCell<HashMap<String, (CertificateParams, String)>>,
}

impl Pki {
    /// A CA `ca`, a server certificate `server` and a client certificate
    /// `client` (common name "client", no other names).
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("natrix-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki {
            dir,
            cas: RefCell::new(HashMap::new()),
        };
        pki.issue("ca", "server", "client");
        pki
    }

    /// A CA named `ca` (files `<ca>.pem`), and certificates signed by it:
    /// `<server>.pem`/`.key` for localhost and 127.0.0.1, `<client>.pem`/
    /// `.key` for client authentication.
    pub fn issue(&self, ca: &str, server: &str, client: &str) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("natrix test {ca}"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        self.write(&format!("{ca}.pem"), &ca_cert.pem());
        self.cas
            .borrow_mut()
            .insert(ca.to_string(), (ca_params, ca_key.serialize_pem()));
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        self.leaf(ca, server, ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.subject_alt_names = CertificateParams::new(sans).unwrap().subject_alt_names;
        });
        self.client(ca, client, |_| {});
    }

    /// A certificate `<name>.pem`/`.key` signed by `ca` for a server that
    /// both accepts and dials other servers (routes, gateways): for
    /// localhost and 127.0.0.1, for server and client authentication.
    pub fn peer(&self, ca: &str, name: &str) {
        let sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        self.leaf(ca, name, ExtendedKeyUsagePurpose::ServerAuth, |p| {
            p.subject_alt_names = CertificateParams::new(sans).unwrap().subject_alt_names;
            p.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        });
    }

    /// A client certificate `<name>.pem`/`.key` signed by `ca`, with the
    /// common name `name` unless `configure` changes the names.
    pub fn client(&self, ca: &str, name: &str, configure: impl FnOnce(&mut CertificateParams)) {
        self.leaf(ca, name, ExtendedKeyUsagePurpose::ClientAuth, configure);
    }

    fn leaf(
        &self,
        ca: &str,
        name: &str,
        usage: ExtendedKeyUsagePurpose,
        configure: impl FnOnce(&mut CertificateParams),
    ) {
        let (ca_params, ca_key) = self.cas.borrow()[ca].clone();
        let issuer = Issuer::new(ca_params, KeyPair::from_pem(&ca_key).unwrap());
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        configure(&mut params);
        let cert = params.signed_by(&key, &issuer).unwrap();
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }

    /// `--tls` with the server certificate.
    pub fn tls_flags(&self) -> Vec<String> {
        vec![
            "--tls".into(),
            "--tlscert".into(),
            self.arg("server.pem"),
            "--tlskey".into(),
            self.arg("server.key"),
        ]
    }

    /// `--tlsverify` with the server certificate and the CA `ca`.
    pub fn verify_flags(&self) -> Vec<String> {
        vec![
            "--tlsverify".into(),
            "--tlscert".into(),
            self.arg("server.pem"),
            "--tlskey".into(),
            self.arg("server.key"),
            "--tlscacert".into(),
            self.arg("ca.pem"),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
