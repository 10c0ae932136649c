//! Distributed counters (`allow_msg_counter`): a publish carries
//! `Nats-Incr: <integer>` and no body; the stream stores the subject's new
//! total as the body `{"val":"<total>"}` and acknowledges with it.
//!
//! Totals are integers of any size, as nats-server keeps them (`big.Int`):
//! a small decimal big integer does the sums, so no increment is ever
//! refused for its size (only the stored message's size is limited).
//! What is read from a header or a stored body is checked here, once.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use super::config::StreamConfig;
use super::error::ApiError;
use super::ttl::go_header;

pub(crate) const INCR: &[u8] = b"Nats-Incr";
/// On a counter stream that sources others: each origin stream's and
/// subject's last total, as JSON (`{"A":{"a.x":"6"}}`).
const SOURCES: &[u8] = b"Nats-Counter-Sources";

/// Headers an increment may not carry: it has no expectations to check
/// and nothing to roll up (nats-server refuses them with 10171).
const REFUSED_WITH_INCR: [&[u8]; 6] = [
    b"Nats-Rollup",
    b"Nats-Expected-Stream",
    b"Nats-Expected-Last-Msg-Id",
    b"Nats-Expected-Last-Subject-Sequence-Subject",
    b"Nats-Expected-Last-Sequence",
    b"Nats-Expected-Last-Subject-Sequence",
];

/// Nine decimal digits per limb.
const LIMB_BASE: u32 = 1_000_000_000;
const LIMB_DIGITS: usize = 9;

/// A signed integer of any size: base 10^9 limbs, least significant
/// first, no trailing zero limb; zero is no limbs and not negative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Count {
    negative: bool,
    limbs: Vec<u32>,
}

impl Count {
    /// A base-10 integer as Go's `big.Int.SetString(text, 10)` reads it:
    /// an optional `+` or `-`, then one or more ASCII digits, nothing else
    /// (no spaces, `_`, prefixes or exponents).
    pub(crate) fn parse(text: &[u8]) -> Option<Count> {
        let (negative, digits) = match text.split_first()? {
            (b'-', rest) => (true, rest),
            (b'+', rest) => (false, rest),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let limbs = digits
            .rchunks(LIMB_DIGITS)
            .map(|chunk| chunk.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
            .collect();
        Some(Count { negative, limbs }.normalized())
    }

    fn normalized(mut self) -> Count {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
        if self.limbs.is_empty() {
            self.negative = false;
        }
        self
    }

    /// `-self`.
    pub(crate) fn negated(&self) -> Count {
        Count {
            negative: !self.negative,
            limbs: self.limbs.clone(),
        }
        .normalized()
    }

    /// `self + other`.
    pub(crate) fn plus(&self, other: &Count) -> Count {
        if self.negative == other.negative {
            let limbs = add_magnitudes(&self.limbs, &other.limbs);
            return Count {
                negative: self.negative,
                limbs,
            }
            .normalized();
        }
        match compare_magnitudes(&self.limbs, &other.limbs) {
            Ordering::Equal => Count::default(),
            Ordering::Greater => Count {
                negative: self.negative,
                limbs: subtract_magnitudes(&self.limbs, &other.limbs),
            }
            .normalized(),
            Ordering::Less => Count {
                negative: other.negative,
                limbs: subtract_magnitudes(&other.limbs, &self.limbs),
            }
            .normalized(),
        }
    }
}

fn add_magnitudes(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0u32;
    for i in 0..a.len().max(b.len()) {
        let sum = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
        out.push(sum % LIMB_BASE);
        carry = sum / LIMB_BASE;
    }
    if carry > 0 {
        out.push(carry);
    }
    out
}

/// `a - b`, where `a >= b`.
fn subtract_magnitudes(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0u32;
    for (i, &limb) in a.iter().enumerate() {
        let take = b.get(i).copied().unwrap_or(0) + borrow;
        if limb >= take {
            out.push(limb - take);
            borrow = 0;
        } else {
            out.push(limb + LIMB_BASE - take);
            borrow = 1;
        }
    }
    out
}

fn compare_magnitudes(a: &[u32], b: &[u32]) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((top, rest)) = self.limbs.split_last() else {
            return f.write_str("0");
        };
        if self.negative {
            f.write_str("-")?;
        }
        write!(f, "{top}")?;
        for limb in rest.iter().rev() {
            write!(f, "{limb:09}")?;
        }
        Ok(())
    }
}

/// What a publish's `Nats-Incr` asks of the stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incr {
    /// No increment (no header, or an empty value).
    None,
    /// An increment to apply to the subject's total.
    Apply(Count),
    /// A sourced message's increment, stored as it came.
    Verbatim,
}

/// nats-server's checks of a publish's `Nats-Incr`, in its order: a
/// value that is no integer (10171, on any stream); an increment where
/// counters are off (10168), with a body (10170), or with an expectation
/// or roll-up header (10171). A sourced message is only checked for the
/// first.
pub(crate) fn check_incr(
    headers: &[u8],
    body: &[u8],
    config: &StreamConfig,
    sourced: bool,
) -> Result<Incr, ApiError> {
    let Some(value) = go_header(headers, INCR).filter(|v| !v.is_empty()) else {
        return Ok(Incr::None);
    };
    let Some(incr) = Count::parse(value) else {
        return Err(incr_invalid());
    };
    if sourced {
        return Ok(Incr::Verbatim);
    }
    if !config.allow_msg_counter {
        return Err(ApiError::new(
            400,
            10168,
            "message counters is disabled".into(),
        ));
    }
    if !body.is_empty() {
        return Err(ApiError::new(
            400,
            10170,
            "message counter has payload".into(),
        ));
    }
    let refused = |key: &&[u8]| go_header(headers, key).is_some_and(|v| !v.is_empty());
    if REFUSED_WITH_INCR.iter().any(refused) {
        return Err(incr_invalid());
    }
    Ok(Incr::Apply(incr))
}

fn incr_invalid() -> ApiError {
    ApiError::new(400, 10171, "message counter increment is invalid".into())
}

/// 10169: a publish to a counter stream without an increment.
pub(crate) fn incr_missing() -> ApiError {
    ApiError::new(400, 10169, "message counter increment is missing".into())
}

/// 10172: the subject's last message holds no total.
pub(crate) fn counter_broken() -> ApiError {
    ApiError::new(400, 10172, "message counter is broken".into())
}

#[derive(serde::Deserialize)]
struct StoredTotal {
    #[serde(default)]
    val: String,
}

/// The total a counter message's body holds (`None`: broken). A body
/// without `val` counts as zero, as it does for nats-server; a `val` that
/// is no integer is broken (nats-server's sum is then undefined).
pub(crate) fn stored_total(body: &[u8]) -> Option<Count> {
    let total: StoredTotal = serde_json::from_slice(body).ok()?;
    if total.val.is_empty() {
        return Some(Count::default());
    }
    Count::parse(total.val.as_bytes())
}

/// Origin stream, then origin subject: that subject's last total seen.
pub(crate) type Sources = BTreeMap<String, BTreeMap<String, String>>;

/// What a counter subject's last message holds: its total and, where the
/// stream sources counters, what each origin had counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub total: Count,
    pub sources: Sources,
}

/// The tally of a subject's last stored message (`None`: broken).
pub(crate) fn stored_tally(headers: &[u8], body: &[u8]) -> Option<Tally> {
    let total = stored_total(body)?;
    let sources = match go_header(headers, SOURCES).filter(|v| !v.is_empty()) {
        Some(json) => serde_json::from_slice(json).ok()?,
        None => Sources::new(),
    };
    Some(Tally { total, sources })
}

/// A counter message about to be stored: its headers and body, its
/// total, and the tally the next increment will read from it (what the
/// store will give back: a `Nats-Counter-Sources` the publisher sent
/// counts too, and a malformed one breaks the subject, as in nats-server).
pub(crate) struct Counted {
    pub total: Count,
    pub tally: Option<Tally>,
    pub headers: Vec<u8>,
    pub body: Vec<u8>,
}

/// A local increment applied to the subject's tally: the publisher's
/// headers, with the sources carried on where there are any.
pub(crate) fn count_local(tally: &Tally, incr: &Count, headers: &[u8]) -> Counted {
    let next = Tally {
        total: tally.total.plus(incr),
        sources: tally.sources.clone(),
    };
    counted(next, headers.to_vec())
}

/// A sourced counter message (`origin` stream and subject, carrying the
/// origin's total in its body) applied to the subject's tally: the
/// increment is what the origin counted since its last message seen here,
/// and `Nats-Incr` is rewritten to it, as nats-server does.
pub(crate) fn count_sourced(
    tally: &Tally,
    (origin, subject): (&str, &str),
    headers: &[u8],
    body: &[u8],
) -> Option<Counted> {
    let sourced = stored_total(body)?;
    let mut next = tally.clone();
    let seen = next.sources.entry(origin.to_owned()).or_default();
    let previous = seen
        .get(subject)
        .and_then(|v| Count::parse(v.as_bytes()))
        .unwrap_or_default();
    seen.insert(subject.to_owned(), sourced.to_string());
    let incr = sourced.plus(&previous.negated());
    next.total = tally.total.plus(&incr);
    let headers = set_header(headers, INCR, &incr.to_string());
    Some(counted(next, headers))
}

fn counted(tally: Tally, mut headers: Vec<u8>) -> Counted {
    if !tally.sources.is_empty() {
        let json = super::go_json(&tally.sources);
        headers = set_header(&headers, SOURCES, &String::from_utf8_lossy(&json));
    }
    let body = total_body(&tally.total);
    Counted {
        tally: stored_tally(&headers, &body),
        total: tally.total,
        headers,
        body,
    }
}

/// `headers` with the first `key` line's value replaced by `value`, or
/// the line added last (nats-server's `setHeader`).
fn set_header(headers: &[u8], key: &[u8], value: &str) -> Vec<u8> {
    let block = headers.strip_suffix(b"\r\n\r\n").unwrap_or(headers);
    let mut out = Vec::with_capacity(headers.len() + key.len() + value.len() + 16);
    let mut replaced = false;
    for (i, line) in block.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if i == 0 {
            out.extend_from_slice(if line.is_empty() { b"NATS/1.0" } else { line });
        } else if !replaced && line.strip_prefix(key).is_some_and(|r| r.starts_with(b":")) {
            replaced = true;
            out.extend_from_slice(key);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
        } else {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b"\r\n");
    }
    if !replaced {
        out.extend_from_slice(key);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Subjects whose tally a stream keeps, at most; past it the memory
/// starts over (and the store is asked again).
const TALLIES_MAX: usize = 100_000;

/// A counter stream's tallies as last given out (publishes not yet
/// durable included, so that increments in flight add up), read from the
/// store the first time; `None` where the subject's last message is
/// broken.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    tallies: crate::FastMap<String, Option<Tally>>,
    /// Moves whenever a tally is forgotten, so that a read asked for
    /// before cannot bring back a stale one.
    epoch: u64,
}

impl Counters {
    pub(crate) fn get(&self, subject: &str) -> Option<&Option<Tally>> {
        self.tallies.get(subject)
    }

    pub(crate) fn contains(&self, subject: &str) -> bool {
        self.tallies.contains_key(subject)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn insert(&mut self, subject: String, tally: Option<Tally>) {
        if self.tallies.len() >= TALLIES_MAX && !self.tallies.contains_key(&subject) {
            self.clear();
        }
        self.tallies.insert(subject, tally);
    }

    /// Keeps what a read asked for at `epoch` found, unless a tally was
    /// given out or forgotten since (the memory is then newer).
    pub(crate) fn insert_read(&mut self, subject: String, tally: Option<Tally>, epoch: u64) {
        if epoch == self.epoch && !self.tallies.contains_key(&subject) {
            self.insert(subject, tally);
        }
    }

    pub(crate) fn remove(&mut self, subject: &str) {
        self.tallies.remove(subject);
        self.epoch += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.tallies.clear();
        self.epoch += 1;
    }
}

/// The body a counter message is stored with.
pub(crate) fn total_body(total: &Count) -> Vec<u8> {
    format!("{{\"val\":\"{total}\"}}").into_bytes()
}

/// Why a stream configuration cannot have counters, if it cannot
/// (nats-server's rules; mirrors are refused with the mirror checks).
pub(crate) fn config_refused(config: &StreamConfig) -> Option<&'static str> {
    use super::config::{Discard, Retention};
    if !config.allow_msg_counter {
        return None;
    }
    if config.discard == Discard::New {
        return Some("counter stream cannot use discard new");
    }
    if config.allow_msg_ttl {
        return Some("counter stream cannot use message TTLs");
    }
    if config.allow_msg_schedules {
        return Some("counter stream cannot use message schedules");
    }
    if config.retention != Retention::Limits {
        return Some("counter stream can only use limits retention");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(text: &str) -> Count {
        Count::parse(text.as_bytes()).unwrap()
    }

    fn sum(a: &str, b: &str) -> String {
        count(a).plus(&count(b)).to_string()
    }

    #[test]
    fn integers_parse_as_go_parses_them_in_base_ten() {
        for (text, shown) in [
            ("1", "1"),
            ("+1", "1"),
            ("-5", "-5"),
            ("0", "0"),
            ("-0", "0"),
            ("007", "7"),
            ("-000000000000000000001", "-1"),
            ("1000000000", "1000000000"),
            (
                "123456789012345678901234567890123456789012345678901234567890",
                "123456789012345678901234567890123456789012345678901234567890",
            ),
        ] {
            assert_eq!(count(text).to_string(), shown, "{text}");
        }
        for text in [
            "", "+", "-", "abc", "1.5", "1 ", " 1", "++1", "+-1", "1_000", "0x10", "1e3", "١",
        ] {
            assert_eq!(Count::parse(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn sums_carry_and_borrow_across_limbs() {
        assert_eq!(sum("999999999", "1"), "1000000000");
        assert_eq!(sum("1000000000", "-1"), "999999999");
        assert_eq!(sum("-1", "1"), "0");
        assert_eq!(sum("3", "-5"), "-2");
        assert_eq!(sum("-3", "5"), "2");
        assert_eq!(sum("-3", "-5"), "-8");
        assert_eq!(sum("0", "0"), "0");
        assert_eq!(
            sum("170141183460469231731687303715884105727", "1"),
            "170141183460469231731687303715884105728"
        );
        // nats-server 2.15.1 gave these (research/js-counters-2.15.1.md).
        let big = "123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(
            sum(big, big),
            "246913578024691357802469135780246913578024691357802469135780"
        );
        assert_eq!(
            sum(
                "246913578024691357802469135780246913578024691357802469135780",
                "-999999999999999999999999999999999999999999999999999999999999999999999999"
            ),
            "-999999999999753086421975308642197530864219753086421975308642197530864219"
        );
        assert_eq!(sum("1000000000000000000", "-1000000000000000000"), "0");
        assert_eq!(sum("1000000000000000000", "-999999999999999999"), "1");
    }

    #[test]
    fn sums_agree_with_i128_arithmetic() {
        let values: [i128; 12] = [
            0,
            1,
            -1,
            999_999_999,
            -1_000_000_000,
            123_456_789_123_456_789,
            -987_654_321_987_654_321_987,
            i64::MAX as i128,
            i64::MIN as i128,
            i128::MAX / 2,
            i128::MIN / 2,
            42,
        ];
        for a in values {
            for b in values {
                assert_eq!(sum(&a.to_string(), &b.to_string()), (a + b).to_string());
            }
        }
    }

    fn counter_config() -> StreamConfig {
        serde_json::from_str(r#"{"name":"C","allow_msg_counter":true}"#).unwrap()
    }

    #[test]
    fn increments_are_checked_in_nats_server_order() {
        let counters = counter_config();
        let plain: StreamConfig = serde_json::from_str(r#"{"name":"P"}"#).unwrap();
        let code = |h: &str, body: &str, c: &StreamConfig| match check_incr(
            h.as_bytes(),
            body.as_bytes(),
            c,
            false,
        ) {
            Ok(Incr::Apply(n)) => n.to_string(),
            Ok(other) => format!("{other:?}"),
            Err(e) => e.err_code.to_string(),
        };
        let h = |lines: &str| format!("NATS/1.0\r\n{lines}\r\n");
        assert_eq!(code(&h("Nats-Incr: +1\r\n"), "", &counters), "1");
        assert_eq!(code(&h("Nats-Incr:    2\r\n"), "", &counters), "2");
        assert_eq!(code(&h("Nats-Incr: 1 \r\n"), "", &counters), "10171");
        assert_eq!(code(&h("Nats-Incr: abc\r\n"), "", &plain), "10171");
        assert_eq!(code(&h("Nats-Incr: 1\r\n"), "", &plain), "10168");
        assert_eq!(code(&h("Nats-Incr: 1\r\n"), "x", &counters), "10170");
        assert_eq!(code(&h("Nats-Incr:\r\n"), "", &counters), "None");
        assert_eq!(code(&h("nats-incr: 1\r\n"), "", &counters), "None");
        assert_eq!(
            code(&h("Nats-Incr: 1\r\nNats-Incr: 5\r\n"), "", &counters),
            "1"
        );
        for refused in REFUSED_WITH_INCR {
            let name = String::from_utf8_lossy(refused);
            let with = h(&format!("Nats-Incr: 1\r\n{name}: 1\r\n"));
            assert_eq!(code(&with, "", &counters), "10171", "{name}");
            let empty = h(&format!("Nats-Incr: 1\r\n{name}:\r\n"));
            assert_eq!(code(&empty, "", &counters), "1", "{name} empty");
        }
        let sourced = check_incr(h("Nats-Incr: 1\r\n").as_bytes(), b"x", &plain, true);
        assert_eq!(sourced, Ok(Incr::Verbatim));
    }

    #[test]
    fn stored_totals_are_read_back_or_found_broken() {
        assert_eq!(stored_total(br#"{"val":"-3"}"#), Some(count("-3")));
        assert_eq!(stored_total(br#"{"val":"7","x":1}"#), Some(count("7")));
        assert_eq!(stored_total(b"{}"), Some(Count::default()));
        assert_eq!(stored_total(b""), None);
        assert_eq!(stored_total(br#"{"val":5}"#), None);
        assert_eq!(stored_total(br#"{"val":"x"}"#), None);
        assert_eq!(total_body(&count("-12")), br#"{"val":"-12"}"#);
    }

    #[test]
    fn headers_are_set_as_nats_server_sets_them() {
        let h = b"NATS/1.0\r\nA: 1\r\nNats-Incr: 5\r\nNats-Incr: 6\r\n\r\n";
        assert_eq!(
            set_header(h, INCR, "-2"),
            b"NATS/1.0\r\nA: 1\r\nNats-Incr: -2\r\nNats-Incr: 6\r\n\r\n"
        );
        assert_eq!(
            set_header(h, SOURCES, "{}"),
            b"NATS/1.0\r\nA: 1\r\nNats-Incr: 5\r\nNats-Incr: 6\r\nNats-Counter-Sources: {}\r\n\r\n"
        );
        assert_eq!(
            set_header(b"", INCR, "1"),
            b"NATS/1.0\r\nNats-Incr: 1\r\n\r\n"
        );
    }

    #[test]
    fn a_sourced_total_counts_what_its_origin_added_since() {
        let h = b"NATS/1.0\r\nNats-Incr: 1\r\nNats-Stream-Source: A 2 > > a.x\r\n\r\n";
        let mut tally = Tally {
            total: count("100"),
            ..Tally::default()
        };
        for (sourced, incr, total) in [("5", "5", "105"), ("6", "1", "106"), ("-4", "-10", "96")] {
            let body = format!("{{\"val\":\"{sourced}\"}}");
            let c = count_sourced(&tally, ("A", "a.x"), h, body.as_bytes()).unwrap();
            assert_eq!(c.total, count(total));
            let headers = String::from_utf8(c.headers).unwrap();
            assert!(
                headers.starts_with(&format!("NATS/1.0\r\nNats-Incr: {incr}\r\n")),
                "{headers}"
            );
            let sources =
                format!("Nats-Counter-Sources: {{\"A\":{{\"a.x\":\"{sourced}\"}}}}\r\n\r\n");
            assert!(headers.ends_with(&sources), "{headers}");
            tally = c.tally.unwrap();
        }
        assert!(count_sourced(&tally, ("A", "a.x"), h, b"not json").is_none());
        // Broken sources in a stored message break the subject.
        assert!(
            stored_tally(
                b"NATS/1.0\r\nNats-Counter-Sources: x\r\n\r\n",
                br#"{"val":"1"}"#
            )
            .is_none()
        );
    }

    /// Any header value is either refused or read back exactly: parsing
    /// and printing agree (after dropping `+` and leading zeros), and
    /// adding then subtracting it changes nothing.
    #[test]
    fn arbitrary_values_never_panic_and_round_trip() {
        let alphabet = b"0123456789+- _.xe\x00\xff";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = count("-123456789012345678901234567890");
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let Some(n) = Count::parse(&text) else {
                continue;
            };
            let shown = n.to_string();
            assert_eq!(Count::parse(shown.as_bytes()), Some(n.clone()), "{shown}");
            let digits: String = String::from_utf8_lossy(&text)
                .trim_start_matches(['+', '-'])
                .trim_start_matches('0')
                .to_string();
            assert!(shown.ends_with(digits.as_str()), "{text:?} {shown}");
            assert_eq!(base.plus(&n).plus(&n.negated()), base);
        }
    }
}
