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

/// Whether every subject that `pattern` matches is also matched by
/// `filter` (both may hold wildcards): `filter`'s `>` covers the rest, its
/// `*` any one token but a `>`, a literal only itself.
pub fn is_subset_match(pattern: &[u8], filter: &[u8]) -> bool {
    let mut pt = tokens(pattern);
    let mut ft = tokens(filter);
    loop {
        match (pt.next(), ft.next()) {
            (None, None) => return true,
            (Some(_), Some(f)) if f == [FWC] => return true,
            (Some(p), Some(f)) if f == [PWC] => {
                if p == [FWC] {
                    return false;
                }
            }
            (Some(p), Some(f)) => {
                if p != f {
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
    fn subset_match() {
        for (pattern, filter, subset) in [
            ("foo.bar", "foo.bar", true),
            ("foo.bar", "foo.*", true),
            ("foo.bar", ">", true),
            ("foo.*", "foo.*", true),
            ("foo.*", "foo.bar", false),
            ("foo.>", "foo.*", false),
            ("foo.>", "foo.>", true),
            ("foo", "foo.>", false),
            ("foo.bar.baz", "foo.*", false),
        ] {
            assert_eq!(
                is_subset_match(pattern.as_bytes(), filter.as_bytes()),
                subset,
                "{pattern} in {filter}"
            );
        }
    }

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

    mod grammar {
        use super::super::*;
        use proptest::prelude::*;

        /// One token as the grammar sees it.
        #[derive(Debug, Clone)]
        enum Tok {
            Literal(String),
            Star,
            Gt,
            Empty,
            WithSpace(String),
        }

        fn tok() -> impl Strategy<Value = Tok> {
            prop_oneof![
                4 => "[a-z0-9_$*>-]{1,4}".prop_filter("not a bare wildcard", |s| s != "*" && s != ">").prop_map(Tok::Literal),
                1 => Just(Tok::Star),
                1 => Just(Tok::Gt),
                1 => Just(Tok::Empty),
                1 => "[a-z]{0,2}[ \t\r\n][a-z]{0,2}".prop_map(Tok::WithSpace),
            ]
        }

        fn text(t: &Tok) -> &str {
            match t {
                Tok::Literal(s) | Tok::WithSpace(s) => s,
                Tok::Star => "*",
                Tok::Gt => ">",
                Tok::Empty => "",
            }
        }

        proptest! {
            /// subject := token ("." token)*; token := literal | "*" | ">";
            /// ">" only last; literals hold no whitespace and no ".".
            #[test]
            fn validators_agree_with_the_grammar(toks in prop::collection::vec(tok(), 1..6)) {
                let s = toks.iter().map(text).collect::<Vec<_>>().join(".");
                let n = toks.len();
                let well_formed = toks.iter().enumerate().all(|(i, t)| match t {
                    Tok::Literal(_) | Tok::Star => true,
                    Tok::Gt => i == n - 1,
                    Tok::Empty | Tok::WithSpace(_) => false,
                });
                prop_assert_eq!(is_valid_subject(s.as_bytes()), well_formed, "{:?}", s);
                let literal = toks.iter().all(|t| matches!(t, Tok::Literal(_) | Tok::WithSpace(_)));
                let no_empty = toks.iter().all(|t| !matches!(t, Tok::Empty));
                prop_assert_eq!(is_valid_literal_subject(s.as_bytes()), literal && no_empty, "{:?}", s);
                let insertable = toks.iter().enumerate().all(|(i, t)| match t {
                    Tok::Gt => i == n - 1,
                    Tok::Empty => false,
                    _ => true,
                });
                prop_assert_eq!(is_insertable(s.as_bytes()), insertable, "{:?}", s);
            }
        }
    }
}
