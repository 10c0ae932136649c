//! Subjects and queue names: validation and wildcard matching, with the
//! exact rules nats-server applies.
//!
//! Tokens are separated by `.`; `*` matches exactly one token and `>` one or
//! more trailing tokens, but only when the wildcard is the whole token
//! (`fo*o` is a literal).

/// Token separator.
pub const SEP: u8 = b'.';
/// Single-token wildcard.
pub const PWC: u8 = b'*';
/// Full (trailing) wildcard.
pub const FWC: u8 = b'>';

/// Iterates over the tokens of a subject (empty tokens included).
pub fn tokens(subject: &[u8]) -> impl Iterator<Item = &[u8]> {
    subject.split(|&b| b == SEP)
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c)
}

/// A subject a subscription may use: wildcards allowed, no empty tokens, `>`
/// only last, no whitespace (nats-server `IsValidSubject`).
pub fn is_valid_subject(subject: &[u8]) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut after_fwc = false;
    for t in tokens(subject) {
        if t.is_empty() || after_fwc {
            return false;
        }
        if t.len() > 1 {
            if t.iter().copied().any(is_whitespace) {
                return false;
            }
            continue;
        }
        match t[0] {
            FWC => after_fwc = true,
            b if is_whitespace(b) => return false,
            _ => {}
        }
    }
    true
}

/// A subject the sublist accepts: no empty tokens and nothing after `>`. This
/// is the check behind the `Invalid Subject` error on `SUB`.
pub fn is_insertable(subject: &[u8]) -> bool {
    let mut after_fwc = false;
    for t in tokens(subject) {
        if t.is_empty() || after_fwc {
            return false;
        }
        if t == [FWC] {
            after_fwc = true;
        }
    }
    true
}

/// A literal subject (no wildcard tokens, no empty tokens): what pedantic
/// mode requires of a publish subject (nats-server `IsValidLiteralSubject`).
pub fn is_valid_literal_subject(subject: &[u8]) -> bool {
    tokens(subject).all(|t| !t.is_empty() && t != [PWC] && t != [FWC])
}

/// Whether a subject contains no wildcard token.
pub fn is_literal(subject: &[u8]) -> bool {
    tokens(subject).all(|t| t != [PWC] && t != [FWC])
}

/// Whether `pattern` (which may hold wildcards) matches the `subject`, whose
/// tokens are all taken literally. Empty tokens in the subject match nothing.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut pt = tokens(pattern);
    let mut st = tokens(subject);
    loop {
        match (pt.next(), st.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) => {
                if s.is_empty() {
                    return false;
                }
                if p == [FWC] {
                    return st.all(|t| !t.is_empty());
                }
                if p != [PWC] && p != s {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        for ok in [
            "foo",
            "foo.bar",
            "foo.*",
            "foo.>",
            "*",
            ">",
            "fo*o",
            "foo.*.bar",
            "a.>b",
        ] {
            assert!(is_valid_subject(ok.as_bytes()), "{ok}");
            assert!(is_insertable(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "foo.>.bar", ">.a", "."] {
            assert!(!is_valid_subject(bad.as_bytes()), "{bad}");
            assert!(!is_insertable(bad.as_bytes()), "{bad}");
        }
        assert!(!is_valid_subject(b"a b"));
        assert!(is_valid_literal_subject(b"foo.bar"));
        assert!(is_valid_literal_subject(b"fo*o"));
        assert!(!is_valid_literal_subject(b"foo.*"));
        assert!(!is_valid_literal_subject(b"foo.>"));
        assert!(!is_valid_literal_subject(b"foo."));
    }

    #[test]
    fn matching() {
        assert!(matches(b"foo.*", b"foo.bar"));
        assert!(!matches(b"foo.*", b"foo"));
        assert!(!matches(b"foo.*", b"foo.bar.baz"));
        assert!(matches(b"foo.>", b"foo.bar.baz"));
        assert!(!matches(b"foo.>", b"foo"));
        assert!(matches(b">", b"foo"));
        assert!(matches(b"foo.*", b"foo.*"));
        assert!(!matches(b"foo.bar", b"foo.*"));
        assert!(!matches(b"foo.*", b"foo."));
        assert!(!matches(b"fo*o", b"foxo"));
    }
}
