//! Client authentication, as nats-server 2.9 checks `CONNECT`: a single
//! user and password, a token, or a list of users (with passwords, which
//! may be bcrypt hashes) and nkey users (who sign the server's nonce), each
//! with optional permissions; with `tls { verify_and_map }` a user is
//! found from the client's certificate instead ([`cert_map`]). JWT and
//! accounts come later; a user already names the account it will belong to.

pub mod bcrypt;
pub mod cert_map;
pub mod creds;
pub mod permissions;

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::ConnectOptions;
pub use cert_map::{CertMapping, MappedBy, PeerCertificate, SubjectAttribute};
pub use permissions::{ClientPermissions, Permissions, ResponsePermission, SubjectPermission};

/// How clients must authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// Anyone may connect.
    #[default]
    None,
    /// `--user`/`--pass`: one user and password.
    UserPassword { user: String, password: String },
    /// `--auth`: one token.
    Token(String),
    /// `authorization { users: [...] }`: users with passwords and nkey users.
    Users(Users),
}

/// The connection types a user may be restricted to
/// (`allowed_connection_types`).
pub const CONNECTION_TYPES: &[&str] = &[
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
];

/// The configured users, by name and by public nkey.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Users {
    pub by_name: BTreeMap<String, User>,
    pub by_nkey: BTreeMap<String, User>,
}

/// One user (a name and password, or an nkey).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// Empty for nkey users. A bcrypt hash is compared as a hash.
    pub password: String,
    /// `None`: everything is allowed.
    pub permissions: Option<Permissions>,
    /// The account the user belongs to; `None` is the global account.
    pub account: Option<String>,
    /// Connection types allowed (upper case); empty: all.
    pub connection_types: BTreeSet<String>,
}

/// Who a client authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// No users are configured (no auth, the single user, or a token).
    Anonymous,
    /// A user from the users list, by name.
    User(String),
    /// An nkey user, by public key.
    Nkey(String),
}

impl Auth {
    /// Whether `CONNECT` must come first (and, without a `no_auth_user`,
    /// whether `auth_required` is advertised).
    pub fn required(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// Whether a nonce is sent in `INFO` for clients to sign (nkey users).
    pub fn nonce_required(&self) -> bool {
        matches!(self, Auth::Users(u) if !u.by_nkey.is_empty())
    }

    /// The user a login refers to.
    pub fn user(&self, login: &Login) -> Option<&User> {
        match (self, login) {
            (Auth::Users(u), Login::User(name)) => u.by_name.get(name),
            (Auth::Users(u), Login::Nkey(key)) => u.by_nkey.get(key),
            _ => None,
        }
    }

    /// Checks the credentials in `CONNECT` for a standard client that was
    /// sent `nonce`. `None`: refused.
    pub fn authenticate(&self, opts: &ConnectOptions, nonce: &[u8]) -> Option<Login> {
        self.authenticate_as(opts, nonce, "STANDARD")
    }

    /// [`Auth::authenticate`] for a connection of type `kind` (one of
    /// [`CONNECTION_TYPES`]), which a user's `allowed_connection_types`
    /// may leave out.
    pub fn authenticate_as(
        &self,
        opts: &ConnectOptions,
        nonce: &[u8],
        kind: &str,
    ) -> Option<Login> {
        match self {
            Auth::None => Some(Login::Anonymous),
            Auth::UserPassword { user, password } => {
                (constant_time_eq(opts.user.as_bytes(), user.as_bytes())
                    & passwords_match(password, &opts.pass))
                .then_some(Login::Anonymous)
            }
            Auth::Token(token) => {
                passwords_match(token, &opts.auth_token).then_some(Login::Anonymous)
            }
            Auth::Users(users) => users.authenticate(opts, nonce, kind),
        }
    }

    /// Whether the single password or any user's password is kept in
    /// plain text (nats-server warns about it at start).
    pub fn has_plaintext_passwords(&self) -> bool {
        match self {
            Auth::UserPassword { password, .. } => !bcrypt::is_bcrypt(password),
            Auth::Users(u) => u.by_name.values().any(|u| !bcrypt::is_bcrypt(&u.password)),
            _ => false,
        }
    }
}

impl Users {
    fn authenticate(&self, opts: &ConnectOptions, nonce: &[u8], kind: &str) -> Option<Login> {
        if !self.by_nkey.is_empty() && !opts.nkey.is_empty() {
            let user = self.by_nkey.get(&opts.nkey)?;
            if !user.allows(kind) || !signed(&opts.nkey, &opts.sig, nonce) {
                return None;
            }
            return Some(Login::Nkey(opts.nkey.clone()));
        }
        if self.by_name.is_empty() || opts.user.is_empty() {
            return None;
        }
        let user = self.by_name.get(&opts.user)?;
        (user.allows(kind) && passwords_match(&user.password, &opts.pass))
            .then(|| Login::User(opts.user.clone()))
    }
}

impl User {
    /// Whether the user may connect as `kind` (`STANDARD`, `LEAFNODE`...).
    pub(crate) fn allows(&self, kind: &str) -> bool {
        self.connection_types.is_empty() || self.connection_types.contains(kind)
    }
}

/// Whether `sig` (base64, URL-safe without padding or standard with) is the
/// signature of `nonce` by the user key `nkey`.
pub(crate) fn signed(nkey: &str, sig: &str, nonce: &[u8]) -> bool {
    if sig.is_empty() {
        return false;
    }
    let Ok(sig) = data_encoding::BASE64URL_NOPAD
        .decode(sig.as_bytes())
        .or_else(|_| data_encoding::BASE64.decode(sig.as_bytes()))
    else {
        return false;
    };
    let Ok(key) = nkeys::KeyPair::from_public_key(nkey) else {
        return false;
    };
    key.verify(nonce, &sig).is_ok()
}

/// A configured secret against what the client sent: bcrypt hashes are
/// hashed, plain secrets compared in constant time.
pub(crate) fn passwords_match(configured: &str, given: &str) -> bool {
    if bcrypt::is_bcrypt(configured) {
        bcrypt::verify(configured, given.as_bytes())
    } else {
        constant_time_eq(configured.as_bytes(), given.as_bytes())
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        let mut o = ConnectOptions::default();
        let check = |a: &Auth, o: &ConnectOptions| a.authenticate(o, b"").is_some();
        assert!(check(&Auth::None, &o));
        let up = Auth::UserPassword {
            user: "u".into(),
            password: "p".into(),
        };
        assert!(!check(&up, &o));
        o.user = "u".into();
        o.pass = "p".into();
        assert!(check(&up, &o));
        o.pass = "px".into();
        assert!(!check(&up, &o));
        let t = Auth::Token("s3cret".into());
        assert!(!check(&t, &o));
        o.auth_token = "s3cret".into();
        assert!(check(&t, &o));
    }

    fn users() -> (Auth, nkeys::KeyPair) {
        let key = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [7; 32]).unwrap();
        let mut u = Users::default();
        u.by_name.insert(
            "alice".into(),
            User {
                password: "a".into(),
                ..User::default()
            },
        );
        u.by_name.insert(
            "bob".into(),
            User {
                // "s3cret", cost 4
                password: "$2a$04$yutFx9GuG/.lsV/T.nrXUeSzG4EtN7BWkYWf1.ojufD3m/I0Mqqpy".into(),
                ..User::default()
            },
        );
        u.by_name.insert(
            "ws".into(),
            User {
                password: "w".into(),
                connection_types: ["WEBSOCKET".to_string()].into(),
                ..User::default()
            },
        );
        u.by_nkey.insert(key.public_key(), User::default());
        (Auth::Users(u), key)
    }

    fn connect(user: &str, pass: &str) -> ConnectOptions {
        ConnectOptions {
            user: user.into(),
            pass: pass.into(),
            ..ConnectOptions::default()
        }
    }

    #[test]
    fn users_with_plain_and_bcrypt_passwords() {
        let (auth, _) = users();
        assert!(auth.required() && auth.nonce_required());
        assert_eq!(
            auth.authenticate(&connect("alice", "a"), b""),
            Some(Login::User("alice".into()))
        );
        assert_eq!(auth.authenticate(&connect("alice", "b"), b""), None);
        assert_eq!(
            auth.authenticate(&connect("bob", "s3cret"), b""),
            Some(Login::User("bob".into()))
        );
        // The hash itself is not the password.
        let hash = "$2a$04$yutFx9GuG/.lsV/T.nrXUeSzG4EtN7BWkYWf1.ojufD3m/I0Mqqpy";
        assert_eq!(auth.authenticate(&connect("bob", hash), b""), None);
        assert_eq!(auth.authenticate(&connect("carol", "a"), b""), None);
        assert_eq!(auth.authenticate(&connect("", ""), b""), None);
        // A user limited to websocket cannot use a standard connection.
        assert_eq!(auth.authenticate(&connect("ws", "w"), b""), None);
        assert!(auth.has_plaintext_passwords());
    }

    #[test]
    fn nkey_users_sign_the_nonce() {
        let (auth, key) = users();
        let nonce = b"abcdefghijklmno";
        let sig = key.sign(nonce).unwrap();
        let mut o = ConnectOptions {
            nkey: key.public_key(),
            sig: data_encoding::BASE64URL_NOPAD.encode(&sig),
            ..ConnectOptions::default()
        };
        assert_eq!(
            auth.authenticate(&o, nonce),
            Some(Login::Nkey(key.public_key()))
        );
        // Standard base64 is accepted too.
        o.sig = data_encoding::BASE64.encode(&sig);
        assert!(auth.authenticate(&o, nonce).is_some());
        // Another nonce, a missing or garbled signature: refused.
        assert_eq!(auth.authenticate(&o, b"another-nonce!!"), None);
        o.sig = String::new();
        assert_eq!(auth.authenticate(&o, nonce), None);
        o.sig = "!!".into();
        assert_eq!(auth.authenticate(&o, nonce), None);
        // An unknown key is refused even when its signature is good.
        let other = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [9; 32]).unwrap();
        let o = ConnectOptions {
            nkey: other.public_key(),
            sig: data_encoding::BASE64URL_NOPAD.encode(&other.sign(nonce).unwrap()),
            ..ConnectOptions::default()
        };
        assert_eq!(auth.authenticate(&o, nonce), None);
    }

    #[test]
    fn bcrypt_token() {
        let t = Auth::Token("$2a$04$oZMiqUE22suyhhrCBuWd/O7eDpYer9Xfjx3ggObM8OGglkPNaAaZS".into());
        let mut o = ConnectOptions {
            auth_token: "tok3n".into(),
            ..ConnectOptions::default()
        };
        assert!(t.authenticate(&o, b"").is_some());
        o.auth_token = "token".into();
        assert!(t.authenticate(&o, b"").is_none());
    }
}
