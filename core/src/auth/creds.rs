//! What a server shows when it connects to another with a key of its own:
//! a credentials file (a user JWT and the seed that signs for it, as `nsc`
//! writes them) or a bare nkey seed. The server's nonce is signed with the
//! seed, as nats-server's leaf remotes sign it.
//!
//! This module reads and signs; it does not check JWTs (natrix has no
//! operator mode: a hub that does, such as nats-server, checks them).

use core::fmt;

/// A user JWT and the seed it was issued to, from a credentials file.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub jwt: String,
    seed: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The seed is a secret: never in logs or panics.
        f.debug_struct("Credentials")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads a credentials file's text: the first block between dashed
    /// lines is the JWT, the second the seed. The error is nats-server's
    /// text, after the file's name.
    pub fn parse(text: &str) -> Result<Credentials, &'static str> {
        let blocks = blocks(text);
        if blocks.len() < 2 {
            return Err("malformed");
        }
        let seed = blocks[1].to_string();
        if nkeys::KeyPair::from_seed(&seed).is_err() {
            return Err("has malformed seed");
        }
        Ok(Credentials {
            jwt: blocks[0].to_string(),
            seed,
        })
    }

    /// The signature of `nonce` by the credentials' seed.
    pub fn sign(&self, nonce: &[u8]) -> String {
        sign_with_key(&self.seed, nonce)
            .expect("the seed was checked when the file was read")
            .1
    }
}

/// The base64 (URL-safe, unpadded) signature of `nonce` by `seed`, and the
/// seed's public key; `None` for a malformed seed.
pub fn sign_with_key(seed: &str, nonce: &[u8]) -> Option<(String, String)> {
    let key = nkeys::KeyPair::from_seed(seed).ok()?;
    let sig = key.sign(nonce).ok()?;
    Some((
        key.public_key(),
        data_encoding::BASE64URL_NOPAD.encode(&sig),
    ))
}

/// Whether `seed` is a well-formed nkey seed.
pub fn is_seed(seed: &str) -> bool {
    nkeys::KeyPair::from_seed(seed).is_ok()
}

/// The tokens between a line of three or more dashes and the next such
/// line, in order: the shape `nsc` writes
/// (`-----BEGIN NATS USER JWT-----`, the token, `------END NATS USER
/// JWT------`).
fn blocks(text: &str) -> Vec<&str> {
    let dashed = |l: &str| l.len() >= 6 && l.starts_with("---") && l.ends_with("---");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < lines.len() {
        let token = lines[i + 1];
        let is_token = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.=".contains(&b));
        if dashed(lines[i]) && is_token && dashed(lines[i + 2]) {
            out.push(token);
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(jwt: &str, seed: &str) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        )
    }

    #[test]
    fn a_credentials_file_signs_the_nonce_with_its_seed() {
        let key = nkeys::KeyPair::new_from_raw(nkeys::KeyPairType::User, [3; 32]).unwrap();
        let seed = key.seed().unwrap();
        let creds = Credentials::parse(&file("eyJhbGc.eyJqdGk.c2ln-_", &seed)).unwrap();
        assert_eq!(creds.jwt, "eyJhbGc.eyJqdGk.c2ln-_");
        let sig = data_encoding::BASE64URL_NOPAD
            .decode(creds.sign(b"nonce").as_bytes())
            .unwrap();
        assert!(key.verify(b"nonce", &sig).is_ok());
        assert!(key.verify(b"other", &sig).is_err());
        assert!(
            !format!("{creds:?}").contains(&seed),
            "the seed stays out of Debug"
        );
        let (public, _) = sign_with_key(&seed, b"x").unwrap();
        assert_eq!(public, key.public_key());
    }

    #[test]
    fn malformed_files_are_refused_with_nats_servers_words() {
        assert_eq!(Credentials::parse("just text"), Err("malformed"));
        let one = "-----BEGIN NATS USER JWT-----\nabc\n------END NATS USER JWT------\n";
        assert_eq!(Credentials::parse(one), Err("malformed"));
        assert_eq!(
            Credentials::parse(&file("abc", "SUNOTASEED")),
            Err("has malformed seed")
        );
        assert!(!is_seed("SUNOTASEED"));
    }
}
