//! Arbitrary bytes into the client protocol parser (and, by a knob, the
//! route and leaf node parsers), parsed whole and again
//! split at fuzzer-chosen points: the same ops and the same error, never a
//! panic, and the parser's own buffer bounded by the limits. Each
//! `CONNECT`'s JSON is decoded too (bytes that are not UTF-8 included):
//! never a panic, and decoding what was read twice gives the same options.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natrix_core::proto::{ConnectOptions, Limits, Op, Parser};

fn decode_connect(json: &[u8]) {
    let mut once = ConnectOptions::default();
    if once.apply(json).is_ok() {
        let mut twice = once.clone();
        twice.apply(json).unwrap();
        assert_eq!(once, twice, "decoding is idempotent");
    }
}

fn parse(chunks: &[&[u8]], limits: &Limits) -> Vec<String> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    let bound = limits.max_control_line + limits.max_payload.unwrap_or(0) as usize + 64;
    for chunk in chunks {
        let mut pos = 0;
        loop {
            match p.next(chunk, &mut pos, limits) {
                Ok(Some(op)) => {
                    if let Op::Connect(json) = &op {
                        decode_connect(json);
                    }
                    out.push(format!("{op:?}"));
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(format!("error {e:?}"));
                    return out;
                }
            }
        }
        assert_eq!(pos, chunk.len());
        assert!(p.buffered() <= bound, "buffered {} > {bound}", p.buffered());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose the limits and the split points.
    let Some((&knobs, rest)) = data.split_first() else { return };
    let Some((&stride, input)) = rest.split_first() else { return };
    let limits = Limits {
        max_control_line: if knobs & 1 == 0 { 4096 } else { 32 },
        max_payload: Some(if knobs & 2 == 0 { 1 << 20 } else { 64 }),
        headers: knobs & 4 != 0,
        awaiting_auth: knobs & 8 != 0,
        // The route and leaf node parsers share the machinery.
        route: knobs & 48 == 16,
        leaf: knobs & 48 == 32,
    };
    let whole = parse(&[input], &limits);
    let step = usize::from(stride % 7) + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    assert_eq!(parse(&chunks, &limits), whole, "split every {step} bytes");
    if let Some(mid) = input.len().checked_div(2) {
        let (a, b) = input.split_at(mid);
        assert_eq!(parse(&[a, b], &limits), whole, "split in half");
    }
});
