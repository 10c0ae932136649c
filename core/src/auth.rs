//! Client authentication: the simple methods many client test suites start
//! servers with (a single user/password, or a token). Users, nkeys, JWT and
//! permissions build on this with the security work.

use crate::proto::ConnectOptions;

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
}

impl Auth {
    /// Whether `auth_required` is advertised and `CONNECT` must come first.
    pub fn required(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// Whether the credentials in `CONNECT` are accepted.
    pub fn check(&self, opts: &ConnectOptions) -> bool {
        match self {
            Auth::None => true,
            Auth::UserPassword { user, password } => {
                constant_time_eq(opts.user.as_bytes(), user.as_bytes())
                    & constant_time_eq(opts.pass.as_bytes(), password.as_bytes())
            }
            Auth::Token(token) => constant_time_eq(opts.auth_token.as_bytes(), token.as_bytes()),
        }
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
        assert!(Auth::None.check(&o));
        let up = Auth::UserPassword {
            user: "u".into(),
            password: "p".into(),
        };
        assert!(!up.check(&o));
        o.user = "u".into();
        o.pass = "p".into();
        assert!(up.check(&o));
        o.pass = "px".into();
        assert!(!up.check(&o));
        let t = Auth::Token("s3cret".into());
        assert!(!t.check(&o));
        o.auth_token = "s3cret".into();
        assert!(t.check(&o));
    }
}
