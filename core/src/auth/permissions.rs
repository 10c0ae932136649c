//! Publish and subscribe permissions: what the configuration says
//! ([`Permissions`]) and what a connection checks against
//! ([`ClientPermissions`]), with nats-server's rules.
//!
//! - Publish: with an allow list, only matching subjects may be published
//!   (an allow list that is present but empty allows nothing); a matching
//!   deny entry always refuses.
//! - Subscribe: an empty allow list allows everything. An entry may name a
//!   queue group (`"foo v1"`): a queue subscription must then use a
//!   matching group (queue names may hold wildcards), and a plain
//!   subscription to `foo` is not allowed by that entry alone.
//! - A wildcard subscription allowed although a deny entry lies inside it
//!   (`>` with `foo` denied) does not receive messages on denied subjects.
//! - `allow_responses`: a reply subject a client received on a
//!   subscription may be published to, up to `max` times within `expires`
//!   (1 and 2 minutes by default), even if the publish list denies it.

use std::time::Duration;

use crate::FastMap;
use crate::subject;
use crate::sublist::Sublist;
use crate::time::Instant;

/// Reply subjects remembered for `allow_responses` before expired ones are
/// pruned (nats-server's `replyPermLimit`).
const REPLY_PERM_LIMIT: usize = 4096;
/// Publish decisions cached per connection before the cache is cleared.
const PUB_CACHE_MAX: usize = 128;

/// A user's permissions, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    /// `None`: every subject may be published.
    pub publish: Option<SubjectPermission>,
    /// `None`: every subject may be subscribed to.
    pub subscribe: Option<SubjectPermission>,
    /// `allow_responses`.
    pub response: Option<ResponsePermission>,
}

/// Allow and deny lists of subjects (with wildcards; for subscribe, an
/// entry may be `"subject queue"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectPermission {
    /// `None`: no allow list. `Some(empty)`: nothing is allowed (publish
    /// only; an empty subscribe allow list allows everything).
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

/// `allow_responses`: how many replies per request, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    /// `None`: any number (a negative `max` in the configuration).
    pub max_msgs: Option<u64>,
    /// `None`: forever (a negative `expires`).
    pub expires: Option<Duration>,
}

impl Default for ResponsePermission {
    fn default() -> Self {
        ResponsePermission {
            max_msgs: Some(1),
            expires: Some(Duration::from_secs(120)),
        }
    }
}

impl Permissions {
    /// The form a connection uses: with `allow_responses`, publishing is
    /// limited to the allow list (none if absent) plus replies.
    pub fn normalized(&self) -> Permissions {
        let mut p = self.clone();
        if p.response.is_some() {
            let publish = p.publish.get_or_insert_with(SubjectPermission::default);
            publish.allow.get_or_insert_with(Vec::new);
        }
        p
    }
}

/// A reply subject a client may answer.
#[derive(Debug, Clone, Copy)]
struct Reply {
    received: Instant,
    sent: u64,
}

/// A connection's permissions, compiled for checking.
pub struct ClientPermissions {
    pub_allow: Option<Sublist<()>>,
    pub_deny: Option<Sublist<()>>,
    sub_allow: Option<Sublist<()>>,
    sub_deny: Option<Sublist<()>>,
    /// The subscribe deny entries as written, for the delivery filter.
    sub_deny_list: Vec<String>,
    /// Set once an allowed wildcard subscription covers a denied subject:
    /// deliveries are then checked against the deny list.
    delivery_filter: Option<FastMap<Box<[u8]>, bool>>,
    pub_cache: FastMap<Box<[u8]>, bool>,
    response: Option<ResponsePermission>,
    replies: FastMap<Box<[u8]>, Reply>,
}

impl std::fmt::Debug for ClientPermissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPermissions")
            .field("sub_deny", &self.sub_deny_list)
            .field("response", &self.response)
            .finish_non_exhaustive()
    }
}

fn sublist_of(entries: &[String], with_queues: bool) -> Sublist<()> {
    let mut list = Sublist::new(true);
    for entry in entries {
        let (subject, queue) = if with_queues {
            let mut parts = entry.split_ascii_whitespace();
            let subject = parts.next().unwrap_or_default();
            let queue = parts.next();
            if parts.next().is_some() {
                // Refused when the configuration is read; never matches.
                continue;
            }
            (subject, queue)
        } else {
            (entry.as_str(), None)
        };
        // An entry the trie cannot hold matches nothing.
        let _ = list.insert(subject.as_bytes(), queue.map(str::as_bytes), ());
    }
    list
}

/// Whether `queue` is one of the groups in `groups` (literally, or matched
/// by a group name with wildcards).
fn queue_matches(queue: &[u8], groups: &[crate::sublist::QueueGroup<()>]) -> bool {
    groups.is_empty()
        || groups
            .iter()
            .any(|g| *g.name == *queue || (!subject::is_literal(&g.name) && subset(queue, &g.name)))
}

/// Whether every subject `subject` matches is also matched by `test`, both
/// possibly holding wildcards (nats-server's `subjectIsSubsetMatch`).
pub fn subset(subject: &[u8], test: &[u8]) -> bool {
    let tokens: Vec<&[u8]> = subject::tokens(subject).collect();
    let test: Vec<&[u8]> = subject::tokens(test).collect();
    for (i, t2) in test.iter().enumerate() {
        if i >= tokens.len() || t2.is_empty() {
            return false;
        }
        if *t2 == [subject::FWC] {
            return true;
        }
        let t1 = tokens[i];
        if t1.is_empty() || t1 == [subject::FWC] {
            return false;
        }
        if t1 == [subject::PWC] {
            if *t2 != [subject::PWC] {
                return false;
            }
            continue;
        }
        if *t2 != [subject::PWC] && t1 != *t2 {
            return false;
        }
    }
    tokens.len() == test.len()
}

impl ClientPermissions {
    /// Compiles `perms` (already [`Permissions::normalized`]).
    pub fn new(perms: &Permissions) -> Self {
        let (mut pub_allow, mut pub_deny) = (None, None);
        if let Some(p) = &perms.publish {
            pub_allow = p.allow.as_ref().map(|a| sublist_of(a, false));
            if !p.deny.is_empty() {
                pub_deny = Some(sublist_of(&p.deny, false));
            }
        }
        let (mut sub_allow, mut sub_deny, mut sub_deny_list) = (None, None, Vec::new());
        if let Some(s) = &perms.subscribe {
            if let Some(a) = s.allow.as_ref().filter(|a| !a.is_empty()) {
                sub_allow = Some(sublist_of(a, true));
            }
            if !s.deny.is_empty() {
                sub_deny = Some(sublist_of(&s.deny, true));
                sub_deny_list = s.deny.clone();
            }
        }
        ClientPermissions {
            pub_allow,
            pub_deny,
            sub_allow,
            sub_deny,
            sub_deny_list,
            delivery_filter: None,
            pub_cache: FastMap::default(),
            response: perms.response,
            replies: FastMap::default(),
        }
    }

    /// Whether publishing is restricted at all.
    pub fn restricts_publish(&self) -> bool {
        self.pub_allow.is_some() || self.pub_deny.is_some()
    }

    /// Whether `subject` may be published now. A reply permission is used
    /// up by asking.
    pub fn can_publish(&mut self, subject: &[u8], now: Instant) -> bool {
        if !self.restricts_publish() {
            return true;
        }
        if let Some(&allowed) = self.pub_cache.get(subject) {
            return allowed;
        }
        let mut allowed = match &mut self.pub_allow {
            Some(list) => list.interest(subject).is_some_and(|m| !m.plain.is_empty()),
            None => true,
        };
        if allowed && let Some(list) = &mut self.pub_deny {
            allowed = list.interest(subject).is_none_or(|m| m.plain.is_empty());
        }
        match self.response {
            // Replies are never cached: each use counts.
            Some(resp) if !allowed => {
                if let Some(reply) = self.replies.get_mut(subject) {
                    reply.sent += 1;
                    let over = resp.max_msgs.is_some_and(|max| reply.sent > max);
                    let expired = resp
                        .expires
                        .is_some_and(|ttl| now.since(reply.received) > ttl);
                    if over || expired {
                        self.replies.remove(subject);
                    } else {
                        allowed = true;
                    }
                }
            }
            _ => {
                if self.pub_cache.len() >= PUB_CACHE_MAX {
                    self.pub_cache.clear();
                }
                self.pub_cache.insert(subject.into(), allowed);
            }
        }
        allowed
    }

    /// Whether a subscription to `subject` (in `queue`) is allowed.
    pub fn can_subscribe(&mut self, subject: &[u8], queue: Option<&[u8]>) -> bool {
        let mut allowed = true;
        if let Some(list) = &mut self.sub_allow {
            let m = list.matches(subject);
            allowed = !m.plain.is_empty();
            if let Some(q) = queue
                && !m.queues.is_empty()
            {
                allowed = queue_matches(q, &m.queues);
            }
        }
        if allowed && let Some(list) = &mut self.sub_deny {
            let m = list.matches(subject);
            allowed = m.plain.is_empty();
            if let Some(q) = queue
                && !m.queues.is_empty()
            {
                allowed = !queue_matches(q, &m.queues);
            }
            if allowed
                && self.delivery_filter.is_none()
                && !subject::is_literal(subject)
                && self
                    .sub_deny_list
                    .iter()
                    .any(|d| subset(d.as_bytes(), subject))
            {
                self.delivery_filter = Some(FastMap::default());
            }
        }
        allowed
    }

    /// Forgets the delivery filter; checking subscriptions again rebuilds
    /// it (after a reload).
    pub fn reset_delivery_filter(&mut self) {
        self.delivery_filter = None;
    }

    /// Whether a message on `subject` must not be delivered to this
    /// connection (a wildcard subscription covering a denied subject).
    pub fn delivery_denied(&mut self, subject: &[u8]) -> bool {
        let Some(cache) = &mut self.delivery_filter else {
            return false;
        };
        if let Some(&denied) = cache.get(subject) {
            return denied;
        }
        let denied = self
            .sub_deny_list
            .iter()
            .any(|d| subject::matches(d.as_bytes(), subject));
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(subject.into(), denied);
        denied
    }

    /// Remembers a reply subject delivered to this connection, which it
    /// may then publish to (with `allow_responses`).
    pub fn track_reply(&mut self, reply: &[u8], now: Instant) {
        let Some(resp) = self.response else {
            return;
        };
        self.replies.insert(
            reply.into(),
            Reply {
                received: now,
                sent: 0,
            },
        );
        if self.replies.len() > REPLY_PERM_LIMIT {
            self.replies.retain(|_, r| {
                !(resp.max_msgs.is_some_and(|max| r.sent >= max)
                    || resp.expires.is_some_and(|ttl| now.since(r.received) > ttl))
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> Option<Vec<String>> {
        Some(s.iter().map(|s| s.to_string()).collect())
    }

    fn perms(
        pub_allow: Option<Vec<String>>,
        pub_deny: &[&str],
        sub_allow: Option<Vec<String>>,
        sub_deny: &[&str],
    ) -> ClientPermissions {
        ClientPermissions::new(
            &Permissions {
                publish: Some(SubjectPermission {
                    allow: pub_allow,
                    deny: pub_deny.iter().map(|s| s.to_string()).collect(),
                }),
                subscribe: Some(SubjectPermission {
                    allow: sub_allow,
                    deny: sub_deny.iter().map(|s| s.to_string()).collect(),
                }),
                response: None,
            }
            .normalized(),
        )
    }

    #[test]
    fn publish_allow_and_deny() {
        let t = Instant::from_nanos(0);
        let mut p = perms(list(&["foo.>", "bar"]), &["foo.secret"], None, &[]);
        assert!(p.can_publish(b"foo.a", t));
        assert!(p.can_publish(b"foo.a.b", t));
        assert!(p.can_publish(b"bar", t));
        assert!(!p.can_publish(b"foo.secret", t));
        assert!(!p.can_publish(b"baz", t));
        // Cached answers are the same.
        assert!(!p.can_publish(b"baz", t));
        let mut none = perms(list(&[]), &[], None, &[]);
        assert!(!none.can_publish(b"foo", t));
        let mut deny_only = perms(None, &["_INBOX.>"], None, &[]);
        assert!(deny_only.can_publish(b"foo", t));
        assert!(!deny_only.can_publish(b"_INBOX.x", t));
    }

    #[test]
    fn subscribe_with_queues() {
        // allow foo (any queue) and bar only in group v1
        let mut p = perms(None, &[], list(&["foo", "bar v1", "baz.* q.*"]), &[]);
        assert!(p.can_subscribe(b"foo", None));
        assert!(p.can_subscribe(b"foo", Some(b"any")));
        assert!(!p.can_subscribe(b"bar", None));
        assert!(p.can_subscribe(b"bar", Some(b"v1")));
        assert!(!p.can_subscribe(b"bar", Some(b"v2")));
        assert!(p.can_subscribe(b"baz.x", Some(b"q.1")));
        assert!(!p.can_subscribe(b"baz.x", Some(b"r.1")));
        // An empty subscribe allow list allows everything.
        let mut all = perms(None, &[], list(&[]), &["secret", "jobs v2"]);
        assert!(all.can_subscribe(b"anything", None));
        assert!(!all.can_subscribe(b"secret", None));
        assert!(all.can_subscribe(b"jobs", None));
        assert!(all.can_subscribe(b"jobs", Some(b"v1")));
        assert!(!all.can_subscribe(b"jobs", Some(b"v2")));
    }

    #[test]
    fn wildcard_subscriptions_skip_denied_subjects() {
        let mut p = perms(None, &[], None, &["foo.secret"]);
        assert!(!p.delivery_denied(b"foo.secret"));
        assert!(p.can_subscribe(b"foo.bar", None));
        assert!(
            !p.delivery_denied(b"foo.secret"),
            "a literal sub sets no filter"
        );
        assert!(p.can_subscribe(b"foo.*", None));
        assert!(p.delivery_denied(b"foo.secret"));
        assert!(!p.delivery_denied(b"foo.open"));
        assert!(!p.can_subscribe(b"foo.secret", None));
    }

    #[test]
    fn responses_are_counted_and_expire() {
        let t0 = Instant::from_nanos(0);
        let mut p = ClientPermissions::new(
            &Permissions {
                response: Some(ResponsePermission {
                    max_msgs: Some(2),
                    expires: Some(Duration::from_secs(1)),
                }),
                ..Permissions::default()
            }
            .normalized(),
        );
        assert!(!p.can_publish(b"_INBOX.a", t0));
        p.track_reply(b"_INBOX.a", t0);
        assert!(p.can_publish(b"_INBOX.a", t0));
        assert!(p.can_publish(b"_INBOX.a", t0));
        assert!(!p.can_publish(b"_INBOX.a", t0));
        p.track_reply(b"_INBOX.b", t0);
        let later = t0 + Duration::from_secs(2);
        assert!(!p.can_publish(b"_INBOX.b", later));
    }

    #[test]
    fn subset_matches_like_nats_server() {
        assert!(subset(b"foo.bar", b"foo.*"));
        assert!(subset(b"foo.bar", b">"));
        assert!(subset(b"foo.*", b"foo.*"));
        assert!(subset(b"foo.*", b"*.*"));
        assert!(!subset(b"foo.*", b"foo.bar"));
        assert!(!subset(b"foo", b"foo.*"));
        assert!(!subset(b"foo.>", b"foo.*"));
    }
}
