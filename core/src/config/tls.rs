//! The top-level `tls {}` block, with nats-server 2.9's keys, types and
//! error texts (`opts.go`, `parseTLS`), checked as far as a pure parser
//! can: whether the files exist and hold usable PEM is the driver's to say
//! when it loads them.

use std::time::Duration;

use super::{DEFAULT_TLS_TIMEOUT, TlsOptions};
use crate::conf::{ConfError, Entry, Field, Value};

/// Keys nats-server 2.9 accepts in `tls {}` whose effect natrix does not
/// have, with what they would do. Refused by name, never ignored.
const NOT_YET: &[(&str, &str)] = &[
    ("cipher_suites", "a choice of TLS cipher suites"),
    ("curve_preferences", "a choice of TLS key exchange curves"),
    ("pinned_certs", "pinned client certificates"),
    ("connection_rate_limit", "a TLS handshake rate limit"),
];

/// Keys of later nats-server releases, refused with a clearer word than
/// nats-server 2.9's "unknown field".
const LATER: &[&str] = &[
    "certs",
    "min_version",
    "cert_store",
    "cert_match_by",
    "cert_match",
    "ca_certs_match",
    "cert_match_skip_invalid",
    "ocsp_peer",
];

fn tls_error(f: &Field<'_>, reason: impl Into<String>) -> ConfError {
    ConfError::at(f.pos, reason.into())
}

fn expect_bool(f: &Field<'_>, what: &str) -> Result<bool, ConfError> {
    match f.value {
        Value::Bool(b) => Ok(*b),
        _ => Err(tls_error(
            f,
            format!(
                "error parsing tls config, expected '{}' to be {what}",
                f.name
            ),
        )),
    }
}

fn expect_file(f: &Field<'_>) -> Result<String, ConfError> {
    match f.value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(tls_error(
            f,
            format!(
                "error parsing tls config, expected '{}' to be filename",
                f.name
            ),
        )),
    }
}

/// `timeout`: seconds as an integer or a float, or a Go duration string.
fn timeout(f: &Field<'_>) -> Result<Duration, ConfError> {
    let secs = match f.value {
        Value::Integer(n) => *n as f64,
        Value::Float(x) => *x,
        Value::String(s) => {
            let nanos = crate::conf::parse_go_duration(s)
                .map_err(|e| tls_error(f, format!("error parsing tls config, 'timeout' {e}")))?;
            nanos as f64 / 1e9
        }
        _ => {
            return Err(tls_error(
                f,
                "error parsing tls config, 'timeout' wrong type",
            ));
        }
    };
    // Zero (or less) means the default, as in nats-server.
    if secs > 0.0 && secs.is_finite() {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Ok(DEFAULT_TLS_TIMEOUT)
    }
}

/// Reads the `tls` block of `cluster {}` or `gateway {}`: the keys of the
/// top-level one, for TLS both ways between servers (each side shows its
/// certificate and checks the other's against `ca_file`, whatever
/// `verify` says, as nats-server does).
pub(super) fn peer_block(entry: &Entry, what: &str) -> Result<TlsOptions, ConfError> {
    let mut tls = block(entry)?;
    if tls.ca_file.is_none() {
        return Err(ConfError::at(
            &entry.key_pos,
            format!(
                "TLS on {what} checks the peer's certificate against 'ca_file': natrix does                  not use the system's roots; set 'ca_file'"
            ),
        ));
    }
    if tls.map || tls.handshake_first {
        return Err(ConfError::at(
            &entry.key_pos,
            format!("'verify_and_map' and 'handshake_first' do not apply to {what}"),
        ));
    }
    tls.verify = true;
    Ok(tls)
}

/// Reads the `tls` block of a leaf node remote: the hub's certificate is
/// checked against `ca_file` (needed unless `insecure`: natrix does not
/// use the system's roots); `cert_file` and `key_file`, both or neither,
/// are shown to a hub that asks.
pub(super) fn remote_block(entry: &Entry) -> Result<TlsOptions, ConfError> {
    let (tls, pair) = fields(entry)?;
    if tls.ca_file.is_none() && !tls.insecure {
        return Err(ConfError::at(
            &entry.key_pos,
            "TLS to a hub checks its certificate against 'ca_file': natrix does not use the \
             system's roots; set 'ca_file' (or 'insecure: true')"
                .to_string(),
        ));
    }
    match pair {
        (Some(cert_file), Some(key_file)) => Ok(TlsOptions {
            cert_file,
            key_file,
            ..tls
        }),
        (None, None) => Ok(tls),
        (Some(_), None) => Err(ConfError::at(
            &entry.key_pos,
            "missing 'key_file' in TLS configuration".to_string(),
        )),
        (None, Some(_)) => Err(ConfError::at(
            &entry.key_pos,
            "missing 'cert_file' in TLS configuration".to_string(),
        )),
    }
}

/// Reads the top-level `tls` block.
pub(super) fn block(entry: &Entry) -> Result<TlsOptions, ConfError> {
    let f = entry.field();
    let (mut tls, pair) = fields(entry)?;
    match pair {
        (Some(c), Some(k)) => {
            tls.cert_file = c;
            tls.key_file = k;
        }
        (Some(_), None) => {
            return Err(tls_error(&f, "missing 'key_file' in TLS configuration"));
        }
        (None, Some(_)) => {
            return Err(tls_error(&f, "missing 'cert_file' in TLS configuration"));
        }
        // nats-server starts without a certificate and fails every
        // handshake; natrix says so before it starts.
        (None, None) => {
            return Err(tls_error(
                &f,
                "missing 'cert_file' and 'key_file' in TLS configuration",
            ));
        }
    }
    Ok(tls)
}

type CertAndKey = (Option<String>, Option<String>);

/// The keys of a `tls` block, and its certificate and key files if set.
fn fields(entry: &Entry) -> Result<(TlsOptions, CertAndKey), ConfError> {
    let f = entry.field();
    let map = f.as_map()?;
    let (mut cert, mut key) = (None, None);
    let mut tls = TlsOptions::new("", "");
    tls.origin = entry.key_pos.to_string();
    for e in map {
        let f = e.field();
        let name = e.key.to_ascii_lowercase();
        match name.as_str() {
            "cert_file" => cert = Some(expect_file(&f)?),
            "key_file" => key = Some(expect_file(&f)?),
            "ca_file" => tls.ca_file = Some(expect_file(&f)?),
            "verify" => tls.verify = expect_bool(&f, "a boolean")?,
            // Skips checking the *server's* certificate: nothing to do on
            // the accepting side, in nats-server as here; a server dialing
            // a peer skips it.
            "insecure" => tls.insecure = expect_bool(&f, "a boolean")?,
            // As in nats-server, `true` turns verification on and `false`
            // leaves it as `verify` says.
            "verify_and_map" => {
                tls.map = expect_bool(&f, "a boolean")?;
                tls.verify |= tls.map;
            }
            "verify_cert_and_check_known_urls" => {
                if expect_bool(&f, "a boolean")? {
                    return Err(tls_error(
                        &f,
                        "verify_cert_and_check_known_urls not supported in this context",
                    ));
                }
            }
            "timeout" => tls.timeout = timeout(&f)?,
            "handshake_first" => {
                tls.handshake_first = match f.value {
                    Value::Bool(b) => *b,
                    _ => {
                        return Err(tls_error(
                            &f,
                            format!(
                                "{:?} is supported as true or false only: natrix does not \
                                 have the \"auto\" fallback to plaintext",
                                e.key
                            ),
                        ));
                    }
                };
            }
            n => {
                if let Some((_, what)) = NOT_YET.iter().find(|(k, _)| *k == n) {
                    return Err(tls_error(
                        &f,
                        format!(
                            "{:?} is not supported yet: natrix does not have {what} yet",
                            e.key
                        ),
                    ));
                }
                if LATER.contains(&n) {
                    return Err(tls_error(
                        &f,
                        format!(
                            "{:?} is not supported: natrix implements the tls block of \
                             nats-server 2.9",
                            e.key
                        ),
                    ));
                }
                return Err(tls_error(
                    &f,
                    format!("error parsing tls config, unknown field [{:?}]", e.key),
                ));
            }
        }
    }
    Ok((tls, (cert, key)))
}
