//! bcrypt password hashes (`$2a$11$...`), checked as nats-server checks
//! them: a configured password or token that looks like a bcrypt hash is
//! compared by hashing what the client sent with the hash's cost and salt.
//!
//! Only verification lives here: the core never makes a salt, so it needs
//! no randomness. The Blowfish rounds come from the `bcrypt` crate's raw
//! function; the hash format is read here, with the rules of Go's
//! `x/crypto/bcrypt`: the client's secret gets a trailing NUL and is cut
//! at 72 bytes, the cost is 4 to 31, and only the first 23 bytes of the
//! output are encoded.

/// The alphabet bcrypt encodes salts and hashes in.
const ALPHABET: &[u8; 64] = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SALT_CHARS: usize = 22;
const HASH_CHARS: usize = 31;

/// Whether a configured secret is a bcrypt hash (nats-server's
/// `^\$2[abxy]\$\d{2}\$.*`).
pub fn is_bcrypt(secret: &str) -> bool {
    let b = secret.as_bytes();
    b.len() >= 7
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// Whether `password` hashes to `hash` (which [`is_bcrypt`] accepted). A
/// malformed hash matches nothing.
pub fn verify(hash: &str, password: &[u8]) -> bool {
    let b = hash.as_bytes();
    // `$2a$NN$` + salt + hash: Go refuses anything shorter than 59 bytes.
    if b.len() < 7 + SALT_CHARS || b.len() < 59 {
        return false;
    }
    let cost = u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0');
    if !(4..=31).contains(&cost) {
        return false;
    }
    let Some(salt) = decode::<16>(&b[7..7 + SALT_CHARS]) else {
        return false;
    };
    let mut key = [0u8; 72];
    let used = (password.len() + 1).min(72);
    let copied = password.len().min(72);
    key[..copied].copy_from_slice(&password[..copied]);
    let out = ::bcrypt::bcrypt(cost, salt, &key[..used]);
    let mut encoded = [0u8; HASH_CHARS];
    encode(&out[..23], &mut encoded);
    let expected = &b[7 + SALT_CHARS..];
    expected.len() == HASH_CHARS
        && expected
            .iter()
            .zip(encoded)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn value(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
}

/// Decodes unpadded bcrypt base64 into exactly `N` bytes; trailing bits
/// are ignored, as Go ignores them.
fn decode<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
    for &c in text {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            if n < N {
                out[n] = (acc >> bits) as u8;
            }
            n += 1;
            acc &= (1 << bits) - 1;
        }
    }
    (n >= N).then_some(out)
}

fn encode(bytes: &[u8], out: &mut [u8]) {
    let (mut acc, mut bits, mut n) = (0u32, 0u32, 0usize);
    for &byte in bytes {
        acc = (acc << 8) | u32::from(byte);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out[n] = ALPHABET[((acc >> bits) & 63) as usize];
            n += 1;
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out[n] = ALPHABET[((acc << (6 - bits)) & 63) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Go's x/crypto/bcrypt at cost 4 (nats-server's own tool
    // writes the same format with cost 11).
    const S3CRET: &str = "$2a$04$yutFx9GuG/.lsV/T.nrXUeSzG4EtN7BWkYWf1.ojufD3m/I0Mqqpy";

    #[test]
    fn recognises_hashes() {
        assert!(is_bcrypt(S3CRET));
        assert!(is_bcrypt("$2b$10$x"));
        assert!(!is_bcrypt("$2c$10$x"));
        assert!(!is_bcrypt("$2a$1x$"));
        assert!(!is_bcrypt("plain"));
    }

    #[test]
    fn verifies_like_go() {
        assert!(verify(S3CRET, b"s3cret"));
        assert!(!verify(S3CRET, b"s3cre"));
        assert!(!verify(S3CRET, b""));
        // Truncated or extended hashes match nothing.
        assert!(!verify(&S3CRET[..58], b"s3cret"));
        assert!(!verify(&format!("{S3CRET}x"), b"s3cret"));
        // A cost out of range matches nothing.
        assert!(!verify(&S3CRET.replace("$04$", "$03$"), b"s3cret"));
    }

    #[test]
    fn base64_round_trips() {
        let bytes: Vec<u8> = (0u8..23).map(|i| i.wrapping_mul(37)).collect();
        let mut text = [0u8; HASH_CHARS];
        encode(&bytes, &mut text);
        let back = decode::<23>(&text).unwrap();
        assert_eq!(&back[..], &bytes[..]);
    }
}
