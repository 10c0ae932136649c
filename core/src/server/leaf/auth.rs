//! Who may make a leaf node connection: the hub's checks of a leaf
//! node's `CONNECT` (in nats-server's order), and what a leaf node shows
//! its hub (user and password, a token, a credentials file or an nkey).

use super::LeafConnect;
use crate::auth::Permissions;
use crate::server::{AccountId, Server};

impl Server {
    /// The account a leaf node's credentials bind it to, and the
    /// permissions of the server user it authenticated as; `None` when
    /// they are wrong. In nats-server's order: `leafnodes { authorization }`'s
    /// user, its nkey (which signs the hub's `nonce`) or its users list;
    /// else the server's users (the user's account, if the user may
    /// connect as a leaf node), or `$G` with no users.
    pub(super) fn leaf_account(
        &self,
        connect: &LeafConnect,
        nonce: &[u8],
    ) -> Option<(AccountId, Option<Permissions>)> {
        let l = self.opts.leafnodes.as_ref()?;
        let bound = |account: Option<&str>| match account {
            Some(a) => self.account_id(a).map(|a| (a, None)),
            None => Some((AccountId::GLOBAL, None)),
        };
        let given = crate::proto::ConnectOptions {
            user: connect.user.clone().unwrap_or_default(),
            pass: connect.pass.clone().unwrap_or_default(),
            auth_token: connect.auth_token.clone().unwrap_or_default(),
            nkey: connect.nkey.clone().unwrap_or_default(),
            sig: connect.sig.clone().unwrap_or_default(),
            ..crate::proto::ConnectOptions::default()
        };
        if let Some(user) = &l.user {
            let pass = l.pass.clone().unwrap_or_default();
            let single = crate::auth::Auth::UserPassword {
                user: user.clone(),
                password: pass,
            };
            single.authenticate(&given, b"")?;
            return bound(l.account.as_deref());
        }
        if let Some(key) = &l.nkey {
            if given.nkey != *key || !crate::auth::signed(key, &given.sig, nonce) {
                return None;
            }
            return bound(l.account.as_deref());
        }
        if !l.users.is_empty() {
            let u = l.users.iter().find(|u| u.user == given.user)?;
            if !crate::auth::passwords_match(&u.password, &given.pass) {
                return None;
            }
            return bound(u.account.as_deref());
        }
        if !self.opts.auth.required() {
            let bound = l.account.as_deref().and_then(|a| self.account_id(a));
            return Some((bound.unwrap_or(AccountId::GLOBAL), None));
        }
        let login = self.opts.auth.authenticate_as(&given, nonce, "LEAFNODE")?;
        let user = self.opts.auth.user(&login);
        let perms = user.and_then(|u| u.permissions.clone());
        match user.and_then(|u| u.account.as_deref()) {
            Some(a) => self.account_id(a).map(|a| (a, perms)),
            None => Some((AccountId::GLOBAL, perms)),
        }
    }

    /// What remote `remote`'s key puts in `CONNECT`: a credentials file's
    /// JWT and the hub's nonce signed by its seed, or an nkey's public key
    /// and signature. `Err`: why the connection cannot go on (nats-server's
    /// text).
    pub(super) fn leaf_credentials(
        &self,
        remote: Option<usize>,
        nonce: &str,
        connect: &mut LeafConnect,
    ) -> Result<(), String> {
        let Some(r) = remote.and_then(|i| self.opts.leafnodes.as_ref()?.remotes.get(i)) else {
            return Ok(());
        };
        if let Some(file) = &r.credentials {
            let creds = match &file.read {
                Some(Ok(c)) => c,
                Some(Err(e)) if e == "malformed" => {
                    return Err("Credentials file malformed".to_string());
                }
                Some(Err(e)) if e == "has malformed seed" => {
                    return Err("Credentials file has malformed seed".to_string());
                }
                Some(Err(e)) => return Err(e.clone()),
                None => return Err(format!("credentials file {:?} was not read", file.path)),
            };
            connect.jwt = Some(creds.jwt.clone());
            connect.sig = Some(creds.sign(nonce.as_bytes()));
        } else if let Some(seed) = &r.nkey {
            let Some((public, sig)) = crate::auth::creds::sign_with_key(seed, nonce.as_bytes())
            else {
                return Err("Remote nkey has malformed seed".to_string());
            };
            connect.nkey = Some(public);
            connect.sig = Some(sig);
        }
        Ok(())
    }
}
