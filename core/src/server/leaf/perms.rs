//! What a leaf node connection carries each way, as nats-server decides
//! it. On a leaf node: its remote's `deny_exports` and `deny_imports`,
//! joined with the permissions its hub sends in `INFO` (`export`,
//! `import`: the hub's user's publish and subscribe permissions). On a hub:
//! the permissions of the user the leaf node authenticated as (its publish
//! permission is what the hub takes from it, its subscribe permission what
//! the hub sends it), joined with the subjects the leaf node asked not to
//! be sent (`deny_pub` in its `CONNECT`).
//!
//! Interest follows the same filters: a leaf node connection is told only
//! of interest in what it may send, and interest it tells is kept only for
//! what may be sent to it.
//!
//! Routes use the same two filters, from `cluster { permissions }`: its
//! `import` (a publish permission) bounds the interest told to routes,
//! its `export` (a subscribe permission) the interest taken from them and
//! the messages sent on them.

use serde::{Deserialize, Serialize};

use super::LeafState;
use crate::auth::{Permissions, SubjectPermission};

/// Subjects one direction of a leaf node connection carries: with an
/// allow list only matching ones, never a denied one. Patterns match a
/// subject's tokens taken literally, so a subscription `foo.*` is refused
/// by `foo.*` or `foo.>`, not by `foo.bar` (whose messages are then
/// filtered one by one), as nats-server matches them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SubjectFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

fn any_matches(patterns: &[String], subject: &[u8]) -> bool {
    patterns
        .iter()
        .any(|p| crate::subject::matches(p.as_bytes(), subject))
}

impl SubjectFilter {
    /// Whether `subject` (literal, or a subscription's) passes.
    pub(crate) fn allows(&self, subject: &[u8]) -> bool {
        self.allow.as_ref().is_none_or(|a| any_matches(a, subject))
            && !any_matches(&self.deny, subject)
    }

    /// A configured permission's lists, `"subject queue"` entries taken
    /// by their subject (`None`: everything passes).
    pub(crate) fn of(p: Option<&SubjectPermission>) -> SubjectFilter {
        let subject = |s: &String| {
            s.split_ascii_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        };
        p.map_or_else(SubjectFilter::default, |p| SubjectFilter {
            allow: p.allow.as_ref().map(|a| a.iter().map(subject).collect()),
            deny: p.deny.iter().map(subject).collect(),
        })
    }

    /// A permission as a hub sends it to its leaf node in `INFO`: an empty
    /// allow list goes as none, as nats-server's JSON leaves it out.
    pub(crate) fn sent(p: &SubjectPermission) -> SubjectFilter {
        SubjectFilter {
            allow: p.allow.clone().filter(|a| !a.is_empty()),
            deny: p.deny.clone(),
        }
    }

    /// The same with `more` denied.
    pub(crate) fn and_deny(mut self, more: &[String]) -> SubjectFilter {
        self.deny.extend_from_slice(more);
        self
    }

    fn passes_all(&self) -> bool {
        self.allow.is_none() && self.deny.is_empty()
    }
}

/// JetStream's API, key-value and object store subjects, which each side
/// of a leaf node connection serves on its own, as in nats-server (so a
/// request is not answered by both); another domain's JetStream is reached
/// by its own prefix, `$JS.<domain>.API.>`.
const JS_CLIENT_SUBJECTS: [&str; 3] = ["$JS.API.>", "$KV.>", "$OBJ.>"];
/// The same for the system account, with clustered JetStream's subjects.
const JS_SYSTEM_SUBJECTS: [&str; 2] = ["$JSC.>", "$NRG.>"];

/// Both directions of a leaf node connection, or of every route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerPerms {
    /// Sent to the peer: messages, and the peer's interest in them.
    pub exports: SubjectFilter,
    /// Taken from the peer: messages, and interest told to it.
    pub imports: SubjectFilter,
}

impl PeerPerms {
    /// `None` when both directions carry everything.
    pub(crate) fn boxed(self) -> Option<Box<PeerPerms>> {
        (!(self.exports.passes_all() && self.imports.passes_all())).then(|| Box::new(self))
    }

    /// The same with JetStream kept to each side: its subjects denied both
    /// ways (for the system account also clustered JetStream's), and,
    /// when this server's JetStream has a domain the peer's differs
    /// from, requests to this domain kept from leaving.
    pub(crate) fn with_jetstream_apart(
        mut self,
        system: bool,
        own_domain: Option<&str>,
        peer_domain: &str,
    ) -> PeerPerms {
        let mut deny: Vec<String> = JS_CLIENT_SUBJECTS.map(str::to_string).to_vec();
        if system {
            deny.extend(JS_SYSTEM_SUBJECTS.map(str::to_string));
        }
        self.imports.deny.extend(deny.iter().cloned());
        self.exports.deny.extend(deny);
        if let Some(own) = own_domain.filter(|d| !d.is_empty() && *d != peer_domain) {
            self.exports.deny.push(format!("$JS.{own}.API.>"));
        }
        self
    }

    /// A hub's, for a leaf node that authenticated as a user with
    /// `perms` and asked not to be sent `deny_pub`.
    pub(crate) fn of_hub_user(perms: Option<&Permissions>, deny_pub: &[String]) -> PeerPerms {
        // A subscribe permission's empty allow list allows everything.
        let mut exports = SubjectFilter::of(perms.and_then(|p| p.subscribe.as_ref()));
        if exports.allow.as_ref().is_some_and(Vec::is_empty) {
            exports.allow = None;
        }
        PeerPerms {
            exports: exports.and_deny(deny_pub),
            imports: SubjectFilter::of(perms.and_then(|p| p.publish.as_ref())),
        }
    }
}

/// A list a hub sent: an empty allow list is none (nats-server leaves it
/// out of its JSON).
fn received(f: Option<&SubjectFilter>) -> SubjectFilter {
    let mut f = f.cloned().unwrap_or_default();
    if f.allow.as_ref().is_some_and(Vec::is_empty) {
        f.allow = None;
    }
    f
}

impl crate::server::Server {
    /// A leaf node's own, on the connection to the hub its remote `remote`
    /// names: what the hub said its user may publish (`export`) and
    /// subscribe to (`import`), less the remote's deny lists.
    pub(super) fn spoke_perms(
        &self,
        id: crate::server::ConnId,
        export: Option<&SubjectFilter>,
        import: Option<&SubjectFilter>,
        hub_domain: &str,
    ) -> Option<Box<PeerPerms>> {
        let c = &self.conns[id.0];
        let remote = c.leaf.as_ref().and_then(|l| l.remote);
        let r = remote.and_then(|i| self.opts.leafnodes.as_ref()?.remotes.get(i));
        let (deny_exports, deny_imports) = r.map_or((&[][..], &[][..]), |r| {
            (&r.deny_exports[..], &r.deny_imports[..])
        });
        PeerPerms {
            exports: received(export).and_deny(deny_exports),
            imports: received(import).and_deny(deny_imports),
        }
        .with_jetstream_apart(
            Some(c.account) == self.system_account,
            self.own_js_domain(),
            hub_domain,
        )
        .boxed()
    }

    /// This server's JetStream domain, with JetStream on.
    pub(super) fn own_js_domain(&self) -> Option<&str> {
        self.opts.jetstream.as_ref().map(|j| j.domain.as_str())
    }
}

/// Loop detection subjects and gateway replies pass whatever the
/// permissions, as in nats-server.
fn exempt(subject: &[u8]) -> bool {
    subject.starts_with(b"$LDS.") || subject.starts_with(crate::server::gateway::GR_PREFIX)
}

impl LeafState {
    /// Whether `subject` may not be sent to the peer.
    pub(crate) fn denies_export(&self, subject: &[u8]) -> bool {
        self.perms
            .as_ref()
            .is_some_and(|p| !exempt(subject) && !p.exports.allows(subject))
    }

    /// Whether `subject` may not be taken from the peer.
    pub(crate) fn denies_import(&self, subject: &[u8]) -> bool {
        self.perms
            .as_ref()
            .is_some_and(|p| !exempt(subject) && !p.imports.allows(subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: Option<&[&str]>, deny: &[&str]) -> SubjectFilter {
        SubjectFilter {
            allow: allow.map(|a| a.iter().map(|s| s.to_string()).collect()),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn patterns_match_subscriptions_token_by_token() {
        let f = filter(Some(&["foo.>", "bar"]), &["foo.secret"]);
        assert!(f.allows(b"foo.x"));
        assert!(f.allows(b"foo.*"), "inside the allowed foo.>");
        assert!(!f.allows(b"foo.secret"));
        assert!(f.allows(b"bar"));
        assert!(!f.allows(b"baz"));
        assert!(!f.allows(b">"), "wider than anything allowed");
        let d = filter(None, &["a.>"]);
        assert!(!d.allows(b"a.*") && d.allows(b"*.b") && d.allows(b"b"));
    }

    #[test]
    fn a_hub_user_sends_what_it_may_subscribe_to_and_takes_what_it_may_publish() {
        let perms = Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec!["up.>".into()]),
                deny: Vec::new(),
            }),
            subscribe: Some(SubjectPermission {
                allow: Some(Vec::new()),
                deny: vec!["down.secret q".into()],
            }),
            response: None,
        };
        let p = PeerPerms::of_hub_user(Some(&perms), &["noise".into()]);
        assert!(p.imports.allows(b"up.1") && !p.imports.allows(b"down.1"));
        assert!(p.exports.allows(b"down.1"));
        assert!(!p.exports.allows(b"down.secret") && !p.exports.allows(b"noise"));
        assert!(PeerPerms::of_hub_user(None, &[]).boxed().is_none());
    }
}
