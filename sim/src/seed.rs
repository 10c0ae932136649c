//! Seeds: one `u64` per run, from which every random choice derives through
//! labelled sub-seeds, so adding a new random choice never shifts the others.

use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// Parses a seed: a decimal `u64`, or a 40-hex commit hash (folded to 64 bits).
pub fn parse_seed(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut folded = 0u64;
        for chunk in t.as_bytes().chunks(16) {
            let s = std::str::from_utf8(chunk).expect("hex is ascii");
            folded ^= u64::from_str_radix(s, 16).map_err(|e| e.to_string())?;
        }
        return Ok(folded);
    }
    t.parse::<u64>()
        .map_err(|_| format!("not a seed (a u64 or a 40-hex commit hash): {text:?}"))
}

/// Parses `A..B` (exclusive) or a single seed into a range.
pub fn parse_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_seed(a)?, parse_seed(b)?);
            if a >= b {
                return Err(format!("empty seed range {text}"));
            }
            Ok(a..b)
        }
        None => {
            let s = parse_seed(text)?;
            Ok(s..s.saturating_add(1))
        }
    }
}

/// A 64-bit mix (splitmix64's finalizer).
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sub-seed for `label` (and an index) under `seed`.
pub fn sub_seed(seed: u64, label: &str, index: u64) -> u64 {
    let mut h = mix(seed);
    for b in label.bytes() {
        h = mix(h ^ u64::from(b));
    }
    mix(h ^ index)
}

/// A generator for `label` under `seed`.
pub fn rng(seed: u64, label: &str, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(sub_seed(seed, label, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds() {
        assert_eq!(parse_seed("42").unwrap(), 42);
        let h = parse_seed("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(
            h,
            parse_seed("0123456789ABCDEF0123456789ABCDEF01234567").unwrap()
        );
        assert!(parse_seed("xyz").is_err());
        assert_eq!(parse_range("3..7").unwrap(), 3..7);
        assert_eq!(parse_range("9").unwrap(), 9..10);
        assert!(parse_range("7..3").is_err());
        assert_ne!(sub_seed(1, "a", 0), sub_seed(1, "b", 0));
        assert_ne!(sub_seed(1, "a", 0), sub_seed(1, "a", 1));
        assert_eq!(sub_seed(5, "x", 2), sub_seed(5, "x", 2));
    }
}
