//! Criterion benchmarks of the core's hot paths: parsing client input and
//! matching subjects in the sublist (including a 1M-subscription trie).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use natrix_core::proto::{Limits, Parser};
use natrix_core::sublist::Sublist;

fn pub_stream(count: usize, payload: usize) -> Vec<u8> {
    let body = vec![b'x'; payload];
    let mut out = Vec::new();
    for i in 0..count {
        out.extend_from_slice(format!("PUB bench.subject.{} {}\r\n", i % 16, payload).as_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for payload in [16usize, 128, 1024] {
        let stream = pub_stream(1000, payload);
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(format!("pub_{payload}B_x1000"), |b| {
            let limits = Limits::default();
            b.iter(|| {
                let mut p = Parser::new();
                let mut pos = 0;
                let mut n = 0;
                // Feed in 4 KiB reads, as a socket would.
                for chunk in stream.chunks(4096) {
                    pos = 0;
                    while let Some(op) = p.next(chunk, &mut pos, &limits).unwrap() {
                        black_box(op);
                        n += 1;
                    }
                }
                black_box((n, pos))
            });
        });
    }
    g.finish();
}

fn subjects(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("s{}.m{}.t{}", i % 1000, (i / 1000) % 1000, i / 1_000_000))
        .collect()
}

fn sublist(c: &mut Criterion) {
    let mut g = c.benchmark_group("sublist");
    let subs = subjects(1_000_000);
    let mut sl: Sublist<u32> = Sublist::new(true);
    for (i, s) in subs.iter().enumerate() {
        sl.insert(s.as_bytes(), None, i as u32).unwrap();
    }
    sl.insert(b"s1.*.t0", None, u32::MAX).unwrap();
    sl.insert(b"s2.>", Some(b"q"), u32::MAX - 1).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("match_cached_1M", |b| {
        b.iter(|| black_box(sl.matches(b"s1.m5.t0")))
    });
    let mut uncached: Sublist<u32> = Sublist::new(false);
    for (i, s) in subs.iter().enumerate() {
        uncached.insert(s.as_bytes(), None, i as u32).unwrap();
    }
    uncached.insert(b"s1.*.t0", None, u32::MAX).unwrap();
    g.bench_function("match_uncached_1M", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % subs.len();
            black_box(uncached.matches(subs[i].as_bytes()))
        })
    });
    g.bench_function("insert_remove_1M", |b| {
        b.iter(|| {
            uncached.insert(b"s7.m7.t7", None, 7).unwrap();
            assert!(uncached.remove(b"s7.m7.t7", None, 7));
        })
    });
    g.finish();
}

criterion_group!(benches, parse, sublist);
criterion_main!(benches);
