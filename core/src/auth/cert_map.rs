//! `tls { verify_and_map: true }`: the user a client is, taken from its
//! verified certificate instead of the credentials in `CONNECT`, matched
//! against the users list in nats-server 2.9's order:
//!
//! 1. each email address, then each DNS name, then each URI of the
//!    certificate's subject alternative names, as a user name;
//! 2. the subject as a distinguished name, compared with every user name
//!    that parses as one (RFC 4514: types without case, values exactly),
//!    first RDN by RDN in order, then in any order;
//! 3. the subject as Go's `pkix.Name.ToRDNSequence().String()` prints it
//!    (`CN=alice,OU=eng,O=acme`), followed by its `DC=` components when it
//!    has any, then without them.
//!
//! A certificate with no email, no URI and an empty subject maps to no one
//! (even with DNS names, as in nats-server). The driver reads the
//! certificate; this module sees only its names as strings.

use super::Users;

/// `domainComponent`: not one of Go's `pkix` names, but part of both the
/// distinguished name and the `DC=` suffix nats-server matches.
const OID_DOMAIN_COMPONENT: &str = "0.9.2342.19200300.100.1.25";

/// One attribute of a certificate's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectAttribute {
    /// The attribute type, dotted (`2.5.4.3` is the common name).
    pub oid: String,
    /// The value, when it is one of ASN.1's string types (UTF8String,
    /// PrintableString, IA5String, T61String, NumericString, BMPString).
    pub value: Option<String>,
}

impl SubjectAttribute {
    pub fn new(oid: &str, value: &str) -> Self {
        SubjectAttribute {
            oid: oid.to_string(),
            value: Some(value.to_string()),
        }
    }
}

/// The names in a client's certificate that can map it to a user, as the
/// driver read them from the verified leaf certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// Subject alternative names, each kind in certificate order.
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    /// The subject's relative distinguished names, in certificate order
    /// (most significant first), each a set of attributes.
    pub subject: Vec<Vec<SubjectAttribute>>,
}

/// Which of the certificate's names mapped it to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappedBy {
    Email,
    DnsName,
    Uri,
    DistinguishedName,
    SubjectWithDomainComponents,
    Subject,
}

/// What mapping a certificate found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertMapping {
    /// This user, found this way.
    User(String, MappedBy),
    /// The certificate has nothing to map.
    NoIdentity,
    /// No user has any of its names; `subject` is its subject string.
    NotFound { subject: String },
}

impl Users {
    /// The user `cert` maps to, looked for as nats-server looks.
    pub fn map_certificate(&self, cert: &PeerCertificate) -> CertMapping {
        let subject = go_subject_string(&cert.subject);
        if cert.emails.is_empty() && !has_subject(&cert.subject) && cert.uris.is_empty() {
            return CertMapping::NoIdentity;
        }
        let names = [
            (&cert.emails, MappedBy::Email),
            (&cert.dns_names, MappedBy::DnsName),
            (&cert.uris, MappedBy::Uri),
        ];
        for (list, by) in names {
            if let Some(name) = list.iter().find(|n| self.mappable(n)) {
                return CertMapping::User(name.clone(), by);
            }
        }
        if let Some(dn) = Dn::from_subject(&cert.subject)
            && let Some(name) = self.user_with_dn(&dn)
        {
            return CertMapping::User(name, MappedBy::DistinguishedName);
        }
        let dcs = domain_components(&cert.subject);
        if !dcs.is_empty() {
            let with_dcs = format!("{subject},{dcs}");
            if self.mappable(&with_dcs) {
                return CertMapping::User(with_dcs, MappedBy::SubjectWithDomainComponents);
            }
        }
        if self.mappable(&subject) {
            return CertMapping::User(subject, MappedBy::Subject);
        }
        CertMapping::NotFound { subject }
    }

    /// A user of this name exists and may use a standard connection.
    fn mappable(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|u| u.allows("STANDARD"))
    }

    /// The user whose name, read as a distinguished name, is `cert`'s:
    /// RDN by RDN first, then with the RDNs in another order.
    fn user_with_dn(&self, cert: &Dn) -> Option<String> {
        let candidates: Vec<(&String, Dn)> = self
            .by_name
            .iter()
            .filter(|(_, u)| u.allows("STANDARD"))
            .filter_map(|(name, _)| Some((name, Dn::parse(name)?)))
            .collect();
        candidates
            .iter()
            .find(|(_, dn)| dn.equal(cert))
            .or_else(|| candidates.iter().find(|(_, dn)| dn.rdns_match(cert)))
            .map(|(name, _)| (*name).clone())
    }
}

/// The `pkix` attribute of a `2.5.4.n` type Go parses into `pkix.Name`.
fn pkix_field(oid: &str) -> Option<u32> {
    let n: u32 = oid.strip_prefix("2.5.4.")?.parse().ok()?;
    matches!(n, 3 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 17).then_some(n)
}

/// Whether Go's `pkix.Name.String()` of the subject is not empty.
fn has_subject(subject: &[Vec<SubjectAttribute>]) -> bool {
    subject.iter().flatten().any(|a| match pkix_field(&a.oid) {
        None => true,
        Some(3 | 5) => a.value.as_deref().is_some_and(|v| !v.is_empty()),
        Some(_) => a.value.is_some(),
    })
}

/// The subject as Go's `pkix.Name.ToRDNSequence().String()`: only the
/// attributes `pkix.Name` has fields for, regrouped one RDN per type in
/// Go's order (C, ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER; the
/// last common name and serial number win), printed last RDN first.
pub fn go_subject_string(subject: &[Vec<SubjectAttribute>]) -> String {
    // Go's field order, with the name each type prints as.
    const ORDER: [(u32, &str); 9] = [
        (6, "C"),
        (8, "ST"),
        (7, "L"),
        (9, "STREET"),
        (17, "POSTALCODE"),
        (10, "O"),
        (11, "OU"),
        (3, "CN"),
        (5, "SERIALNUMBER"),
    ];
    let mut values: [Vec<&str>; 9] = Default::default();
    for a in subject.iter().flatten() {
        let (Some(n), Some(v)) = (pkix_field(&a.oid), a.value.as_deref()) else {
            continue;
        };
        let slot = ORDER.iter().position(|(t, _)| *t == n).expect("pkix type");
        if matches!(n, 3 | 5) {
            values[slot] = vec![v];
        } else {
            values[slot].push(v);
        }
    }
    let mut rdns = Vec::new();
    for (slot, (n, name)) in ORDER.iter().enumerate() {
        let vals = &values[slot];
        let single_empty = matches!(n, 3 | 5) && vals.first().is_some_and(|v| v.is_empty());
        if vals.is_empty() || single_empty {
            continue;
        }
        let parts: Vec<String> = vals
            .iter()
            .map(|v| format!("{name}={}", escape_rdn_value(v)))
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

/// Go's escaping of an RDN value: `,+"\<>;` always, a space at either
/// end, a `#` at the start.
fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (k, c) in v.char_indices() {
        let escape = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == v.len() - 1,
            '#' => k == 0,
            _ => false,
        };
        if escape {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `DC=a,DC=b`: the domain components, in certificate order.
fn domain_components(subject: &[Vec<SubjectAttribute>]) -> String {
    let dcs: Vec<String> = subject
        .iter()
        .flatten()
        .filter(|a| a.oid == OID_DOMAIN_COMPONENT)
        .filter_map(|a| Some(format!("DC={}", a.value.as_deref()?)))
        .collect();
    dcs.join(",")
}

/// A distinguished name: RDNs, each a set of `(type, value)` attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dn {
    rdns: Vec<Vec<(String, String)>>,
}

impl Dn {
    /// The subject as nats-server's LDAP matching reads it: RDNs and their
    /// attributes in reverse order, only when every type is one it names
    /// and every value a string.
    fn from_subject(subject: &[Vec<SubjectAttribute>]) -> Option<Dn> {
        let mut rdns = Vec::new();
        for rdn in subject.iter().rev().filter(|r| !r.is_empty()) {
            let mut attrs = Vec::new();
            for a in rdn.iter().rev() {
                let name = match a.oid.as_str() {
                    OID_DOMAIN_COMPONENT => "DC",
                    "2.5.4.3" => "CN",
                    "2.5.4.5" => "SERIALNUMBER",
                    "2.5.4.6" => "C",
                    "2.5.4.7" => "L",
                    "2.5.4.8" => "ST",
                    "2.5.4.9" => "STREET",
                    "2.5.4.10" => "O",
                    "2.5.4.11" => "OU",
                    "2.5.4.17" => "POSTALCODE",
                    _ => return None,
                };
                attrs.push((name.to_string(), a.value.clone()?));
            }
            rdns.push(attrs);
        }
        Some(Dn { rdns })
    }

    /// A user name read as an RFC 4514 distinguished name
    /// (`CN=alice, O=acme`; `\,` and `\2C` escapes; `+` joins attributes
    /// of one RDN). `None` when it is not one.
    fn parse(s: &str) -> Option<Dn> {
        let mut rdns = Vec::new();
        let mut rdn = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut attr_type: Option<String> = None;
        let mut trailing_spaces = 0;
        let bytes = s.as_bytes();
        let take = |buf: &mut Vec<u8>, trailing: &mut usize| {
            buf.truncate(buf.len() - *trailing);
            *trailing = 0;
            String::from_utf8_lossy(&std::mem::take(buf)).into_owned()
        };
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b'\\' => {
                    trailing_spaces = 0;
                    let next = *bytes.get(i + 1)?;
                    if b" \"#+,;<=>\\".contains(&next) {
                        buf.push(next);
                        i += 1;
                    } else {
                        let hex = s.get(i + 1..i + 3)?;
                        buf.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                }
                b'=' => {
                    attr_type = Some(take(&mut buf, &mut trailing_spaces));
                    if bytes.get(i + 1) == Some(&b'#') {
                        return None; // BER-encoded values are not read
                    }
                }
                b',' | b'+' => {
                    let t = attr_type.take().filter(|t| !t.is_empty())?;
                    rdn.push((t, take(&mut buf, &mut trailing_spaces)));
                    if c == b',' {
                        rdns.push(std::mem::take(&mut rdn));
                    }
                }
                b' ' if buf.is_empty() => {}
                _ => {
                    if c == b' ' {
                        trailing_spaces += 1;
                    } else {
                        trailing_spaces = 0;
                    }
                    buf.push(c);
                }
            }
            i += 1;
        }
        if !buf.is_empty() {
            let t = attr_type.take().filter(|t| !t.is_empty())?;
            rdn.push((t, take(&mut buf, &mut trailing_spaces)));
            rdns.push(rdn);
        }
        Some(Dn { rdns })
    }

    /// RFC 4517 distinguishedNameMatch: the same RDNs in the same order.
    fn equal(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&other.rdns)
                .all(|(a, b)| rdn_equal(a, b))
    }

    /// The same RDNs in any order.
    fn rdns_match(&self, other: &Dn) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .all(|a| other.rdns.iter().any(|b| rdn_equal(a, b)))
    }
}

/// The same attributes, in any order; types compared without case.
fn rdn_equal(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let has_all = |x: &[(String, String)], y: &[(String, String)]| {
        y.iter().all(|(t, v)| {
            x.iter()
                .any(|(t2, v2)| t.eq_ignore_ascii_case(t2) && v == v2)
        })
    };
    a.len() == b.len() && has_all(a, b) && has_all(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::User;

    fn users(names: &[&str]) -> Users {
        let mut u = Users::default();
        for n in names {
            u.by_name.insert(n.to_string(), User::default());
        }
        u
    }

    fn subject(attrs: &[(&str, &str)]) -> Vec<Vec<SubjectAttribute>> {
        attrs
            .iter()
            .map(|(oid, v)| vec![SubjectAttribute::new(oid, v)])
            .collect()
    }

    const C: &str = "2.5.4.6";
    const O: &str = "2.5.4.10";
    const OU: &str = "2.5.4.11";
    const CN: &str = "2.5.4.3";

    #[test]
    fn subject_strings_as_go_prints_them() {
        let s = subject(&[(C, "US"), (O, "Acme, Inc."), (OU, "eng"), (CN, "alice")]);
        assert_eq!(go_subject_string(&s), r"CN=alice,OU=eng,O=Acme\, Inc.,C=US");
        // Go regroups by type: two OUs in separate RDNs print as one,
        // in its fixed order whatever the certificate's.
        let s = subject(&[(CN, "bob"), (OU, "a"), (O, "acme"), (OU, "b")]);
        assert_eq!(go_subject_string(&s), "CN=bob,OU=a+OU=b,O=acme");
        // Leading and trailing spaces and a '#' in front are escaped;
        // emailAddress and DC are not printed.
        let s = subject(&[
            (CN, " #x "),
            ("1.2.840.113549.1.9.1", "a@b.c"),
            (OID_DOMAIN_COMPONENT, "example"),
        ]);
        assert_eq!(go_subject_string(&s), r"CN=\ #x\ ");
        assert_eq!(domain_components(&s), "DC=example");
        assert_eq!(go_subject_string(&subject(&[(CN, "#x")])), r"CN=\#x");
    }

    #[test]
    fn distinguished_names_parse_as_rfc_4514() {
        let dn = Dn::parse(r"CN=alice, O=Acme\, Inc.+C=US,OU=a\2Cb ").unwrap();
        assert_eq!(
            dn.rdns,
            vec![
                vec![("CN".to_string(), "alice".to_string())],
                vec![
                    ("O".to_string(), "Acme, Inc.".to_string()),
                    ("C".to_string(), "US".to_string())
                ],
                vec![("OU".to_string(), "a,b".to_string())],
            ]
        );
        assert!(Dn::parse("alice").is_none());
        assert!(Dn::parse("CN=#0101").is_none());
        assert!(Dn::parse("=x").is_none());
    }

    #[test]
    fn emails_then_dns_names_then_uris_then_the_subject() {
        let cert = PeerCertificate {
            emails: vec!["a@example.com".into()],
            dns_names: vec!["host.example.com".into()],
            uris: vec!["spiffe://example.com/svc".into()],
            subject: subject(&[(O, "acme"), (CN, "alice")]),
        };
        let all = users(&[
            "a@example.com",
            "host.example.com",
            "spiffe://example.com/svc",
            "CN=alice,O=acme",
        ]);
        assert_eq!(
            all.map_certificate(&cert),
            CertMapping::User("a@example.com".into(), MappedBy::Email)
        );
        let u = users(&["host.example.com", "spiffe://example.com/svc"]);
        assert_eq!(
            u.map_certificate(&cert),
            CertMapping::User("host.example.com".into(), MappedBy::DnsName)
        );
        let u = users(&["spiffe://example.com/svc", "CN=alice,O=acme"]);
        assert_eq!(
            u.map_certificate(&cert),
            CertMapping::User("spiffe://example.com/svc".into(), MappedBy::Uri)
        );
        // The DN match takes another spelling of the same name, and the
        // RDNs in another order.
        for name in ["cn=alice, o=acme", "O=acme,CN=alice"] {
            assert_eq!(
                users(&[name]).map_certificate(&cert),
                CertMapping::User(name.into(), MappedBy::DistinguishedName)
            );
        }
        assert_eq!(
            users(&["bob"]).map_certificate(&cert),
            CertMapping::NotFound {
                subject: "CN=alice,O=acme".into()
            }
        );
    }

    #[test]
    fn subject_strings_when_the_dn_cannot_be_read() {
        // An attribute the DN reading does not know (emailAddress) leaves
        // the Go strings: with DC components, then without.
        let cert = PeerCertificate {
            subject: subject(&[
                (OID_DOMAIN_COMPONENT, "org"),
                ("1.2.840.113549.1.9.1", "a@b.c"),
                (CN, "alice"),
            ]),
            ..PeerCertificate::default()
        };
        assert_eq!(
            users(&["CN=alice,DC=org"]).map_certificate(&cert),
            CertMapping::User(
                "CN=alice,DC=org".into(),
                MappedBy::SubjectWithDomainComponents
            )
        );
        assert_eq!(
            users(&["CN=alice"]).map_certificate(&cert),
            CertMapping::User("CN=alice".into(), MappedBy::Subject)
        );
    }

    #[test]
    fn nothing_to_map() {
        // DNS names alone do not count when the subject is empty.
        let cert = PeerCertificate {
            dns_names: vec!["host".into()],
            ..PeerCertificate::default()
        };
        assert_eq!(
            users(&["host"]).map_certificate(&cert),
            CertMapping::NoIdentity
        );
        // A user limited to other connection types is not mapped to.
        let mut u = users(&[]);
        u.by_name.insert(
            "CN=ws".into(),
            User {
                connection_types: ["WEBSOCKET".to_string()].into(),
                ..User::default()
            },
        );
        let cert = PeerCertificate {
            subject: subject(&[(CN, "ws")]),
            ..PeerCertificate::default()
        };
        assert_eq!(
            u.map_certificate(&cert),
            CertMapping::NotFound {
                subject: "CN=ws".into()
            }
        );
    }
}
