//! A 100 MiB object through the official Rust client's object store, on a
//! file store: natrix side by side with nats-server 2.15.1. The object is
//! 800 chunks of 128 KiB, each published and acknowledged (so synced) in
//! turn, then read back through an ordered push consumer with flow
//! control: what a large put and get cost end to end, and whether every
//! byte comes back.

use std::time::{Duration, Instant};

use async_nats::jetstream::object_store;
use data_encoding::BASE64URL;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::jetstream::{context, servers, start};
use natrix_tests::test_dir;

const OBJECT_BYTES: usize = 100 * 1024 * 1024;
/// The clients' default chunk size.
const CHUNK_BYTES: usize = 128 * 1024;
/// Far above what a put or get takes on a loaded 2-core machine (seconds):
/// only a server that stalls or goes quadratic takes this long.
const PHASE_LIMIT: Duration = Duration::from_secs(60);

/// `len` bytes from a SplitMix64 sequence seeded with `seed`: no runs of
/// zeros a store could compress or skip, the same bytes on every run.
fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The digest as the object store's info carries it.
fn object_digest(bytes: &[u8]) -> String {
    format!("SHA-256={}", BASE64URL.encode(&Sha256::digest(bytes)))
}

/// A process's peak resident set, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

#[test]
fn the_generator_is_seeded_and_not_constant() {
    let a = pseudo_random_bytes(1000, 7);
    assert_eq!(a, pseudo_random_bytes(1000, 7));
    assert_ne!(a, pseudo_random_bytes(1000, 8));
    let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
    assert!(distinct.len() > 200, "{} distinct bytes", distinct.len());
    assert_eq!(
        object_digest(b""),
        "SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
    );
}

#[tokio::test]
async fn a_100_mib_object_comes_back_whole_from_a_file_store() {
    let data = pseudo_random_bytes(OBJECT_BYTES, 0x6e61_7472_6978);
    let digest = object_digest(&data);
    let mut results = Vec::new();
    for (name, bin) in servers() {
        if name.ends_with("2.9.10") {
            continue; // the 10 MiB comparison leaves it out too
        }
        let dir = test_dir("obj100", &name.replace(' ', "-"));
        let server = start(&bin, &dir);
        let js = context(&server).await;
        let store = js
            .create_object_store(object_store::Config {
                bucket: "large".into(),
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut seen = Vec::new();

        let t0 = Instant::now();
        let put = store.put("blob.bin", &mut data.as_slice()).await.unwrap();
        let put_time = t0.elapsed();
        seen.push(format!(
            "put {} {} bytes {} chunks {:?}",
            put.name, put.size, put.chunks, put.digest
        ));

        let info = store.info("blob.bin").await.unwrap();
        seen.push(format!(
            "info {} bytes {} chunks {:?} max chunk {:?}",
            info.size,
            info.chunks,
            info.digest,
            info.options.as_ref().and_then(|o| o.max_chunk_size)
        ));

        let t0 = Instant::now();
        let mut object = store.get("blob.bin").await.unwrap();
        let mut read = Vec::with_capacity(OBJECT_BYTES);
        // The client fails the read if the bytes' digest is not the info's.
        object.read_to_end(&mut read).await.unwrap();
        let get_time = t0.elapsed();
        seen.push(format!(
            "read {} bytes, same {}, digest {}",
            read.len(),
            read == data,
            object_digest(&read)
        ));

        let mut stream = js.get_stream("OBJ_large").await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        seen.push(format!(
            "stream {} messages, {} subjects",
            state.messages, state.subjects_count
        ));
        let rss = peak_rss_mib(server.child.id());
        eprintln!(
            "{name}: put {:.2} s ({:.0} MiB/s), get {:.2} s ({:.0} MiB/s), peak RSS {rss} MiB",
            put_time.as_secs_f64(),
            100.0 / put_time.as_secs_f64(),
            get_time.as_secs_f64(),
            100.0 / get_time.as_secs_f64(),
        );
        assert!(put_time < PHASE_LIMIT, "{name}: the put took {put_time:?}");
        assert!(get_time < PHASE_LIMIT, "{name}: the get took {get_time:?}");
        results.push((name, seen));
    }
    let chunks = OBJECT_BYTES / CHUNK_BYTES;
    let (first, expected) = &results[0];
    assert_eq!(
        expected,
        &[
            format!("put blob.bin {OBJECT_BYTES} bytes {chunks} chunks Some({digest:?})"),
            format!(
                "info {OBJECT_BYTES} bytes {chunks} chunks Some({digest:?}) max chunk Some({CHUNK_BYTES})"
            ),
            format!("read {OBJECT_BYTES} bytes, same true, digest {digest}"),
            format!("stream {} messages, 2 subjects", chunks + 1),
        ],
        "{first}"
    );
    for (name, got) in &results[1..] {
        assert_eq!(got, expected, "{name} against {first}");
    }
}
