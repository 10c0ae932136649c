//! Subject mappings: a published subject rewritten before it is routed, as
//! nats-server's `mappings {}` does (and, with accounts, what imports and
//! exports will use).
//!
//! A [`Transform`] turns a literal subject matching a source pattern into a
//! destination: `$1` / `{{wildcard(1)}}` copy the source's first `*` token,
//! `{{partition(n,1,2)}}` hashes tokens into one of `n` buckets (FNV-1a, as
//! nats-server), `{{splitFromLeft(1,3)}}`, `{{splitFromRight(..)}}`,
//! `{{sliceFromLeft(..)}}`, `{{sliceFromRight(..)}}` and `{{split(1,-)}}`
//! cut a token into several, and a trailing `>` carries the rest over. A
//! [`Mapping`] chooses between weighted destinations with the core's seeded
//! RNG; weights short of 100 keep the original subject for the rest, unless
//! the source itself is listed (then the rest is dropped).
//!
//! What it is not: a parser of configuration files (see `config::file`).

use std::fmt;

use crate::subject;

/// Why a mapping was refused, in nats-server's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError(pub String);

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const INVALID: &str = "invalid mapping destination";

fn dest_err(token: &str, why: &str) -> MappingError {
    MappingError(format!("{INVALID}: {why} in {token}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// A literal destination token (or the trailing `>`).
    Literal(String),
    Wildcard(usize),
    Partition {
        buckets: u32,
        tokens: Vec<usize>,
    },
    SplitFromLeft(usize, usize),
    SplitFromRight(usize, usize),
    SliceFromLeft(usize, usize),
    SliceFromRight(usize, usize),
    Split(usize, String),
}

/// One source pattern to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    src: String,
    dest: String,
    src_tokens: usize,
    /// Destination parts; empty when the destination is copied as it is.
    parts: Vec<Part>,
    ends_with_fwc: bool,
}

/// The arguments of `{{name(args)}}` if `token` is that function (name
/// compared case-insensitively, spaces allowed around it).
fn function_args<'a>(token: &'a str, name: &str) -> Option<Vec<&'a str>> {
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let open = inner.find('(')?;
    if !inner[..open].trim().eq_ignore_ascii_case(name) {
        return None;
    }
    let body = inner[open + 1..].strip_suffix(')')?;
    Some(body.split(',').map(str::trim).collect())
}

fn index_and_int(token: &str, args: &[&str]) -> Result<(usize, usize), MappingError> {
    match args {
        [_] | [] => Err(dest_err(
            token,
            "not enough arguments passed to the function",
        )),
        [a, b] => {
            let i = a.parse().map_err(|_| {
                dest_err(token, "function argument is invalid or in the wrong format")
            })?;
            let n = b.parse().map_err(|_| {
                dest_err(token, "function argument is invalid or in the wrong format")
            })?;
            Ok((i, n))
        }
        _ => Err(dest_err(token, "too many arguments passed to the function")),
    }
}

/// Reads one destination token: `None` for a literal.
fn placeholder(token: &str) -> Result<Option<Part>, MappingError> {
    if token.len() < 2 {
        return Ok(None);
    }
    if let Some(n) = token.strip_prefix('$') {
        // `$name` that is not a number stays literal, as nats-server keeps it.
        return Ok(n.parse().ok().map(Part::Wildcard));
    }
    if !(token.len() > 4 && token.starts_with("{{") && token.ends_with("}}")) {
        return Ok(None);
    }
    let bad_arg = || dest_err(token, "function argument is invalid or in the wrong format");
    if let Some(args) = function_args(token, "wildcard") {
        return match args.as_slice() {
            [""] | [] => Err(dest_err(
                token,
                "not enough arguments passed to the function",
            )),
            [a] => Ok(Some(Part::Wildcard(a.parse().map_err(|_| bad_arg())?))),
            _ => Err(dest_err(token, "too many arguments passed to the function")),
        };
    }
    if let Some(args) = function_args(token, "partition") {
        if args.len() < 2 {
            return Err(dest_err(
                token,
                "not enough arguments passed to the function",
            ));
        }
        let buckets = args[0].parse().map_err(|_| bad_arg())?;
        let tokens = args[1..]
            .iter()
            .map(|t| t.parse().map_err(|_| bad_arg()))
            .collect::<Result<_, _>>()?;
        return Ok(Some(Part::Partition { buckets, tokens }));
    }
    type Make = fn(usize, usize) -> Part;
    let two_ints: [(&str, Make); 4] = [
        ("splitFromLeft", Part::SplitFromLeft),
        ("splitFromRight", Part::SplitFromRight),
        ("sliceFromLeft", Part::SliceFromLeft),
        ("sliceFromRight", Part::SliceFromRight),
    ];
    for (name, make) in two_ints {
        if let Some(args) = function_args(token, name) {
            let (i, n) = index_and_int(token, &args)?;
            return Ok(Some(make(i, n)));
        }
    }
    if let Some(args) = function_args(token, "split") {
        return match args.as_slice() {
            [] | [_] => Err(dest_err(
                token,
                "not enough arguments passed to the function",
            )),
            [a, sep] => {
                let i = a.parse().map_err(|_| bad_arg())?;
                if sep.is_empty() || sep.contains(' ') || sep.contains('.') {
                    return Err(bad_arg());
                }
                Ok(Some(Part::Split(i, (*sep).to_string())))
            }
            _ => Err(dest_err(token, "too many arguments passed to the function")),
        };
    }
    Err(dest_err(token, "unknown function"))
}

impl Part {
    fn wildcard_indexes(&self) -> Vec<usize> {
        match self {
            Part::Literal(_) => Vec::new(),
            Part::Wildcard(i)
            | Part::SplitFromLeft(i, _)
            | Part::SplitFromRight(i, _)
            | Part::SliceFromLeft(i, _)
            | Part::SliceFromRight(i, _)
            | Part::Split(i, _) => vec![*i],
            Part::Partition { tokens, .. } => tokens.clone(),
        }
    }
}

impl Transform {
    /// Checks `src` (a subject, wildcards allowed) against `dest` as
    /// nats-server does: both valid, `>` in both or neither, no `*` in the
    /// destination, and every `*` of the source used by a placeholder.
    pub fn new(src: &str, dest: &str) -> Result<Transform, MappingError> {
        let bad_subject = || MappingError("invalid subject".to_string());
        // Tokens may not be empty and nothing may follow `>`; a destination
        // may hold spaces inside `{{ }}`.
        let well_formed = |s: &str| {
            let tokens: Vec<&str> = s.split('.').collect();
            !s.is_empty()
                && tokens.iter().all(|t| !t.is_empty())
                && !tokens[..tokens.len() - 1].contains(&">")
        };
        if !well_formed(src) || !well_formed(dest) {
            return Err(bad_subject());
        }
        let stoks: Vec<&str> = src.split('.').collect();
        let dtoks: Vec<&str> = dest.split('.').collect();
        let src_fwc = stoks.last() == Some(&">");
        let dest_fwc = dtoks.last() == Some(&">");
        if dtoks.contains(&"*") || src_fwc != dest_fwc {
            return Err(bad_subject());
        }
        // Source `*` positions, numbered from 1.
        let pwcs: Vec<usize> = stoks
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == "*")
            .map(|(i, _)| i)
            .collect();
        let mut parts = Vec::with_capacity(dtoks.len());
        let mut placeholders = 0;
        let any_wildcard = !pwcs.is_empty() || src_fwc;
        for t in &dtoks {
            let part = if any_wildcard { placeholder(t)? } else { None };
            match part {
                None => parts.push(Part::Literal((*t).to_string())),
                Some(p) => {
                    placeholders += 1;
                    let mut resolved = p.clone();
                    let map = |i: usize| -> Result<usize, MappingError> {
                        if i == 0 || i > pwcs.len() {
                            return Err(MappingError(format!(
                                "{INVALID}: wildcard index out of range in {t}: [{i}]"
                            )));
                        }
                        Ok(pwcs[i - 1])
                    };
                    for i in p.wildcard_indexes() {
                        map(i)?;
                    }
                    resolved = match resolved {
                        Part::Wildcard(i) => Part::Wildcard(map(i)?),
                        Part::SplitFromLeft(i, n) => Part::SplitFromLeft(map(i)?, n),
                        Part::SplitFromRight(i, n) => Part::SplitFromRight(map(i)?, n),
                        Part::SliceFromLeft(i, n) => Part::SliceFromLeft(map(i)?, n),
                        Part::SliceFromRight(i, n) => Part::SliceFromRight(map(i)?, n),
                        Part::Split(i, s) => Part::Split(map(i)?, s),
                        Part::Partition { buckets, tokens } => Part::Partition {
                            buckets,
                            tokens: tokens.into_iter().map(map).collect::<Result<_, _>>()?,
                        },
                        Part::Literal(l) => Part::Literal(l),
                    };
                    parts.push(resolved);
                }
            }
        }
        if any_wildcard && placeholders < pwcs.len() {
            return Err(MappingError(format!(
                "{INVALID}: not using all of the token wildcard(s) in {dest}"
            )));
        }
        let copies_dest = parts.iter().all(|p| matches!(p, Part::Literal(_))) && !dest_fwc;
        Ok(Transform {
            src: src.to_string(),
            dest: dest.to_string(),
            src_tokens: stoks.len(),
            parts: if copies_dest { Vec::new() } else { parts },
            ends_with_fwc: dest_fwc,
        })
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    pub fn destination(&self) -> &str {
        &self.dest
    }

    /// The destination for a literal subject that matches the source.
    pub fn apply(&self, subject: &[u8]) -> Vec<u8> {
        if self.parts.is_empty() {
            return self.dest.as_bytes().to_vec();
        }
        let tokens: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
        let mut out: Vec<u8> = Vec::with_capacity(subject.len() + 16);
        let last = self.parts.len() - 1;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => {
                    if self.ends_with_fwc && i == last {
                        break;
                    }
                    out.extend_from_slice(l.as_bytes());
                }
                Part::Wildcard(i) => out.extend_from_slice(tokens[*i]),
                Part::Partition {
                    buckets,
                    tokens: idx,
                } => {
                    let mut key = Vec::new();
                    for &t in idx {
                        key.extend_from_slice(tokens[t]);
                    }
                    let bucket = fnv1a32(&key) % (*buckets).max(1);
                    out.extend_from_slice(bucket.to_string().as_bytes());
                }
                Part::SplitFromLeft(t, pos) => {
                    let tok = tokens[*t];
                    if *pos > 0 && *pos < tok.len() {
                        out.extend_from_slice(&tok[..*pos]);
                        out.push(b'.');
                        out.extend_from_slice(&tok[*pos..]);
                    } else {
                        out.extend_from_slice(tok);
                    }
                }
                Part::SplitFromRight(t, pos) => {
                    let tok = tokens[*t];
                    if *pos > 0 && *pos < tok.len() {
                        out.extend_from_slice(&tok[..tok.len() - pos]);
                        out.push(b'.');
                        out.extend_from_slice(&tok[tok.len() - pos..]);
                    } else {
                        out.extend_from_slice(tok);
                    }
                }
                Part::SliceFromLeft(t, size) => {
                    let tok = tokens[*t];
                    if *size > 0 && *size < tok.len() {
                        let pieces: Vec<&[u8]> = tok.chunks(*size).collect();
                        out.extend_from_slice(&pieces.join(&b'.'));
                    } else {
                        out.extend_from_slice(tok);
                    }
                }
                Part::SliceFromRight(t, size) => {
                    let tok = tokens[*t];
                    if *size > 0 && *size < tok.len() {
                        let rem = tok.len() % size;
                        let mut pieces: Vec<&[u8]> = Vec::new();
                        if rem > 0 {
                            pieces.push(&tok[..rem]);
                        }
                        pieces.extend(tok[rem..].chunks(*size));
                        out.extend_from_slice(&pieces.join(&b'.'));
                    } else {
                        out.extend_from_slice(tok);
                    }
                }
                Part::Split(t, sep) => {
                    let tok = tokens[*t];
                    let pieces: Vec<&[u8]> = split_bytes(tok, sep.as_bytes())
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .collect();
                    out.extend_from_slice(&pieces.join(&b'.'));
                }
            }
            if i < last {
                out.push(b'.');
            }
        }
        if self.ends_with_fwc {
            let rest = &tokens[(self.src_tokens - 1).min(tokens.len())..];
            out.extend_from_slice(&rest.join(&b'.'));
        }
        out
    }
}

fn split_bytes<'a>(s: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= s.len() {
        if &s[i..i + sep.len()] == sep {
            out.push(&s[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// 32-bit FNV-1a, the hash `partition` buckets by.
pub(crate) fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// A weighted destination as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDest {
    pub subject: String,
    /// Percent, 0 to 100.
    pub weight: u8,
}

/// A source with its destinations, cumulative weights ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    src: String,
    wildcard: bool,
    dests: Vec<(Transform, u8)>,
}

impl Mapping {
    /// Builds a mapping as nats-server does: weights at most 100 each and
    /// in total, no destination twice; a total short of 100 sends the rest
    /// to the source subject itself, unless the source is listed.
    pub fn new(src: &str, dests: &[MapDest]) -> Result<Mapping, MappingError> {
        if !subject::is_valid_subject(src.as_bytes()) {
            return Err(MappingError("invalid subject".to_string()));
        }
        let wildcard = !subject::is_literal(src.as_bytes());
        let mut seen: Vec<&str> = Vec::new();
        let mut total: u32 = 0;
        let mut out: Vec<(Transform, u8)> = Vec::new();
        for d in dests {
            if seen.contains(&d.subject.as_str()) {
                return Err(MappingError(format!("duplicate entry for {:?}", d.subject)));
            }
            seen.push(&d.subject);
            if d.weight > 100 {
                return Err(MappingError(
                    "individual weights need to be <= 100".to_string(),
                ));
            }
            total += u32::from(d.weight);
            if total > 100 {
                return Err(MappingError("total weight needs to be <= 100".to_string()));
            }
            out.push((Transform::new(src, &d.subject)?, d.weight));
        }
        if total != 100 && !seen.contains(&src) {
            // The rest keeps the original subject.
            let dest = crate::account::tokenize(src);
            let rest = if out.is_empty() {
                100
            } else {
                100 - total as u8
            };
            out.push((Transform::new(src, &dest)?, rest));
        }
        out.sort_by_key(|(_, w)| *w);
        let mut acc = 0u8;
        for (_, w) in &mut out {
            *w += acc;
            acc = *w;
        }
        Ok(Mapping {
            src: src.to_string(),
            wildcard,
            dests: out,
        })
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    fn matches(&self, subject: &[u8]) -> bool {
        if self.wildcard {
            subject::matches(self.src.as_bytes(), subject)
        } else {
            self.src.as_bytes() == subject
        }
    }

    /// The destination for `subject`; `roll` is a number in `0..100`.
    /// `None` when the roll falls past every weight (the message is
    /// dropped).
    fn select(&self, subject: &[u8], roll: u8) -> Option<Vec<u8>> {
        let d = if self.dests.len() == 1 && self.dests[0].1 == 100 {
            &self.dests[0].0
        } else {
            &self.dests.iter().find(|(_, w)| roll < *w)?.0
        };
        Some(d.apply(subject))
    }
}

/// An account's mappings, tried in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mappings {
    list: Vec<Mapping>,
}

/// What a mapping made of a published subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// No mapping applies: route the subject as published.
    Unchanged,
    /// Route this subject instead.
    To(Vec<u8>),
    /// The weights sent it nowhere.
    Dropped,
}

impl Mappings {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds a mapping, replacing one with the same source.
    pub fn add(&mut self, m: Mapping) {
        match self.list.iter_mut().find(|e| e.src == m.src) {
            Some(e) => *e = m,
            None => self.list.push(m),
        }
    }

    /// Maps a published subject; `roll` (0..100) picks among weights.
    pub fn map(&self, subject: &[u8], roll: impl FnOnce() -> u8) -> Mapped {
        let Some(m) = self.list.iter().find(|m| m.matches(subject)) else {
            return Mapped::Unchanged;
        };
        let certain = m.dests.len() == 1 && m.dests[0].1 == 100;
        let roll = if certain { 0 } else { roll() };
        match m.select(subject, roll) {
            Some(s) => Mapped::To(s),
            None => Mapped::Dropped,
        }
    }
}

#[cfg(test)]
mod tests;
