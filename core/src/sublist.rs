//! The subscription trie: subjects with `*`/`>` wildcards and queue groups,
//! with a bounded cache of match results.
//!
//! Each level of the trie holds literal children in a hash map and at most one
//! `*` and one `>` child. A match walks the levels once per subject token and
//! collects plain subscribers and queue groups; members of the same queue
//! group found on different nodes are merged into one group, as nats-server
//! does. Results are cached per subject (bounded), from a subject's second
//! miss on, so that subjects published once (reply inboxes, ack subjects)
//! never enter the cache; an insert or remove drops the cached results it
//! could change and bumps [`Sublist::generation`].
//!
//! The trie stores small copyable subscriber handles `T` (the server uses its
//! subscription ids); it never owns subscription records.

use std::sync::Arc;

use crate::FastMap;
use crate::subject::{self, FWC, PWC};

/// Most cached match results kept at once.
pub const CACHE_MAX: usize = 1024;
/// Slots remembering which subjects missed the cache (see `seen_before`).
const MISSED_SLOTS: usize = 4096;
/// How many entries an overflowing cache sheds at once.
const CACHE_SWEEP: usize = 256;

/// Why a subscription could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Empty token or tokens after `>`.
    InvalidSubject,
}

/// One queue group in a match result: its name and its matching members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGroup<T> {
    pub name: Box<[u8]>,
    pub members: Vec<T>,
}

/// What a subject matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matches<T> {
    pub plain: Vec<T>,
    pub queues: Vec<QueueGroup<T>>,
}

impl<T> Default for Matches<T> {
    fn default() -> Self {
        Matches {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

impl<T> Matches<T> {
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

struct Node<T> {
    next: Option<Box<Level<T>>>,
    plain: Vec<T>,
    queues: Vec<QueueGroup<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            next: None,
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.plain.is_empty()
            && self.queues.is_empty()
            && self.next.as_ref().is_none_or(|l| l.is_empty())
    }
}

struct Level<T> {
    literals: FastMap<Box<[u8]>, Node<T>>,
    pwc: Option<Box<Node<T>>>,
    fwc: Option<Box<Node<T>>>,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Level {
            literals: FastMap::default(),
            pwc: None,
            fwc: None,
        }
    }
}

impl<T> Level<T> {
    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }
}

/// Counters shown by monitoring (`/subsz`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SublistStats {
    pub subscriptions: u64,
    pub inserts: u64,
    pub removes: u64,
    pub matches: u64,
    pub cache_hits: u64,
}

/// The subscription trie with its match cache.
pub struct Sublist<T> {
    root: Level<T>,
    cache: FastMap<Box<[u8]>, Arc<Matches<T>>>,
    cache_enabled: bool,
    /// Fingerprints of subjects that missed the cache, one per slot: what
    /// decides whether a result is worth caching.
    missed: Box<[u64]>,
    generation: u64,
    stats: SublistStats,
}

impl<T: Copy + Eq> Default for Sublist<T> {
    fn default() -> Self {
        Self::new(true)
    }
}

impl<T: Copy + Eq> Sublist<T> {
    pub fn new(cache_enabled: bool) -> Self {
        Sublist {
            root: Level::default(),
            cache: FastMap::default(),
            cache_enabled,
            missed: Box::default(),
            generation: 0,
            stats: SublistStats::default(),
        }
    }

    /// Bumped by every insert and remove: a cheap way for holders of match
    /// results to know they may be stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stats(&self) -> SublistStats {
        self.stats
    }

    pub fn count(&self) -> u64 {
        self.stats.subscriptions
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Largest and mean fan-out (subscribers per cached subject), as
    /// monitoring shows them.
    pub fn cache_fanout(&self) -> (usize, f64) {
        let sizes = self.cache.values().map(|m| m.plain.len() + m.queues.len());
        let (max, sum) = sizes.fold((0, 0), |(mx, sm), n| (mx.max(n), sm + n));
        let avg = if self.cache.is_empty() {
            0.0
        } else {
            sum as f64 / self.cache.len() as f64
        };
        (max, avg)
    }

    /// Adds `handle` under `subject`, in queue group `queue` if given.
    pub fn insert(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        handle: T,
    ) -> Result<(), InsertError> {
        if !subject::is_insertable(subject) {
            return Err(InsertError::InvalidSubject);
        }
        let mut level = &mut self.root;
        let mut tokens = subject::tokens(subject).peekable();
        let node = loop {
            let t = tokens.next().expect("an insertable subject has a token");
            let node: &mut Node<T> = if t == [PWC] {
                level.pwc.get_or_insert_with(Box::default)
            } else if t == [FWC] {
                level.fwc.get_or_insert_with(Box::default)
            } else {
                level.literals.entry(Box::from(t)).or_default()
            };
            if tokens.peek().is_none() {
                break node;
            }
            level = node.next.get_or_insert_with(Box::default);
        };
        match queue {
            None => node.plain.push(handle),
            Some(q) => match node.queues.iter_mut().find(|g| *g.name == *q) {
                Some(group) => group.members.push(handle),
                None => node.queues.push(QueueGroup {
                    name: Box::from(q),
                    members: vec![handle],
                }),
            },
        }
        self.stats.subscriptions += 1;
        self.stats.inserts += 1;
        self.changed(subject);
        Ok(())
    }

    /// Removes `handle` from `subject` (and `queue`). Returns whether it was there.
    pub fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, handle: T) -> bool {
        if !subject::is_insertable(subject) {
            return false;
        }
        let tokens: Vec<&[u8]> = subject::tokens(subject).collect();
        let removed = remove_from_level(&mut self.root, &tokens, queue, handle);
        if removed {
            self.stats.subscriptions -= 1;
            self.stats.removes += 1;
            self.changed(subject);
        }
        removed
    }

    fn changed(&mut self, subject: &[u8]) {
        self.generation = self.generation.wrapping_add(1);
        if self.cache.is_empty() {
            return;
        }
        if subject::is_literal(subject) {
            self.cache.remove(subject);
        } else {
            self.cache
                .retain(|cached, _| !subject::matches(subject, cached));
        }
    }

    /// Whether `subject` missed the cache recently. A result is cached
    /// only on its subject's second miss: subjects published once (reply
    /// inboxes, ack subjects) would otherwise fill the cache with results
    /// never read again, each an allocation and a sweep.
    fn seen_before(&mut self, subject: &[u8]) -> bool {
        use std::hash::{BuildHasher, Hasher};
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        h.write(subject);
        let fingerprint = h.finish() | 1; // never the empty slot's 0
        if self.missed.is_empty() {
            self.missed = vec![0; MISSED_SLOTS].into_boxed_slice();
        }
        let slot = &mut self.missed[(fingerprint as usize) % MISSED_SLOTS];
        let seen = *slot == fingerprint;
        *slot = fingerprint;
        seen
    }

    /// Everything that `subject` (taken literally) matches.
    pub fn matches(&mut self, subject: &[u8]) -> Arc<Matches<T>> {
        self.interest(subject).unwrap_or_default()
    }

    /// What `subject` matches, or `None` when nothing does. The publish
    /// path's form: a subject nobody listens to costs a cache lookup and no
    /// reference count (an atomic increment and decrement per message).
    pub fn interest(&mut self, subject: &[u8]) -> Option<Arc<Matches<T>>> {
        self.stats.matches += 1;
        if let Some(hit) = self.cache.get(subject) {
            self.stats.cache_hits += 1;
            return (!hit.is_empty()).then(|| Arc::clone(hit));
        }
        let mut result = Matches::default();
        let mut tokens: Vec<&[u8]> = Vec::with_capacity(8);
        for t in subject::tokens(subject) {
            if t.is_empty() {
                return None;
            }
            tokens.push(t);
        }
        match_level(&self.root, &tokens, &mut result);
        let empty = result.is_empty();
        let result = Arc::new(result);
        if self.cache_enabled && self.seen_before(subject) {
            if self.cache.len() >= CACHE_MAX {
                let doomed: Vec<Box<[u8]>> = self.cache.keys().take(CACHE_SWEEP).cloned().collect();
                for k in doomed {
                    self.cache.remove(&k);
                }
            }
            self.cache.insert(Box::from(subject), Arc::clone(&result));
        }
        (!empty).then_some(result)
    }
}

fn add_node<T: Copy + Eq>(node: &Node<T>, result: &mut Matches<T>) {
    result.plain.extend_from_slice(&node.plain);
    for group in &node.queues {
        match result.queues.iter_mut().find(|g| g.name == group.name) {
            Some(existing) => existing.members.extend_from_slice(&group.members),
            None => result.queues.push(group.clone()),
        }
    }
}

fn match_level<T: Copy + Eq>(mut level: &Level<T>, tokens: &[&[u8]], result: &mut Matches<T>) {
    let mut last: Option<&Node<T>> = None;
    let mut pwc: Option<&Node<T>> = None;
    for (i, t) in tokens.iter().enumerate() {
        if let Some(fwc) = &level.fwc {
            add_node(fwc, result);
        }
        pwc = level.pwc.as_deref();
        if let Some(p) = pwc
            && let Some(next) = &p.next
        {
            match_level(next, &tokens[i + 1..], result);
        }
        last = level.literals.get(*t);
        match last.and_then(|n| n.next.as_deref()) {
            Some(next) => level = next,
            None => {
                if i + 1 < tokens.len() {
                    last = None;
                    pwc = None;
                }
                break;
            }
        }
    }
    if let Some(n) = last {
        add_node(n, result);
    }
    if let Some(p) = pwc {
        add_node(p, result);
    }
}

fn remove_from_node<T: Copy + Eq>(
    node: &mut Node<T>,
    rest: &[&[u8]],
    queue: Option<&[u8]>,
    handle: T,
) -> bool {
    if rest.is_empty() {
        match queue {
            None => match node.plain.iter().position(|h| *h == handle) {
                Some(i) => {
                    node.plain.swap_remove(i);
                    true
                }
                None => false,
            },
            Some(q) => {
                let Some(gi) = node.queues.iter().position(|g| *g.name == *q) else {
                    return false;
                };
                let group = &mut node.queues[gi];
                let Some(i) = group.members.iter().position(|h| *h == handle) else {
                    return false;
                };
                group.members.swap_remove(i);
                if group.members.is_empty() {
                    node.queues.swap_remove(gi);
                }
                true
            }
        }
    } else {
        let Some(next) = node.next.as_deref_mut() else {
            return false;
        };
        let removed = remove_from_level(next, rest, queue, handle);
        if removed && next.is_empty() {
            node.next = None;
        }
        removed
    }
}

fn remove_from_level<T: Copy + Eq>(
    level: &mut Level<T>,
    tokens: &[&[u8]],
    queue: Option<&[u8]>,
    handle: T,
) -> bool {
    let (t, rest) = tokens.split_first().expect("at least one token");
    if *t == [PWC] || *t == [FWC] {
        let slot = if *t == [PWC] {
            &mut level.pwc
        } else {
            &mut level.fwc
        };
        let Some(node) = slot.as_deref_mut() else {
            return false;
        };
        let removed = remove_from_node(node, rest, queue, handle);
        if removed && node.is_empty() {
            *slot = None;
        }
        removed
    } else {
        let Some(node) = level.literals.get_mut(*t) else {
            return false;
        };
        let removed = remove_from_node(node, rest, queue, handle);
        if removed && node.is_empty() {
            level.literals.remove(*t);
        }
        removed
    }
}

#[cfg(test)]
mod tests;
