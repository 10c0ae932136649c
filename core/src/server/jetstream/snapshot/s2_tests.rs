//! Tests of the S2 framing: round trips, a stream nats-server 2.15.1
//! wrote, and damaged input.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;

/// A snapshot stream produced by nats-server 2.15.1: an identifier chunk
/// and one compressed chunk of 516 bytes.
const NATS_VECTOR_HEX: &str = "ff06000053327354774f000402006fc1601eae05c44e415453415243310aa680f19ef4ec8fef310000b00173746174652e6a736f6e7b226d65737361676573223a332c22627974010a403135302c2266697273745f736571223a31110e9c7473223a22323032362d31322d30385430303a32373a31322e3037393437303535395a222c226c61113900330d0d623800203136343530333134370138246e756d5f7375626a6563013054312c22636f6e73756d65725f636f756e74223a317d0c1dc804e002112010732f44317b012e68666967223a7b2264757261626c655f6e616d65223a224431222c222e0c006464656c697665725f706f6c696379223a22616c6c222c2261636b19131c6578706c696369740d182077616974223a3330301102142c226d61785f0d4a2c223a2d312c227265706c6179194314696e7374616e01423c6d61785f77616974696e67223a353132093d1c61636b5f70656e64051600310554210301474069636173223a302c226d6574616461746101d75c5f6e6174732e7265712e6c6576656c223a2230227d7d2c2225cf01210d8e046564010d311d29c3003001270c7265616d299904307d09d710666c6f6f728a2e00787d7d06beffcabbefec8fef3101000573312e666f6f6d73672d3006e6a59de305180402170d004175482f312e300d0a582d546573743a20310d0a0d0a012f183106d6f9d68cf0418900032e470014320000000000";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Decodes a whole stream fed in pieces of `piece` bytes; Err if any push
/// errs or the stream does not end at a chunk boundary.
fn decode_in_pieces(stream: &[u8], piece: usize) -> Result<Vec<u8>, S2Error> {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    for part in stream.chunks(piece) {
        dec.push(part, &mut out)?;
    }
    if !dec.at_boundary() {
        return Err(S2Error("truncated"));
    }
    Ok(out)
}

/// Deterministic pseudo-random bytes (xorshift), for incompressible data.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// 200 KiB: repetitive text, then a long incompressible run (so that one
/// 64 KiB chunk is pure noise and must be stored), then text and noise mixed.
fn mixed_data() -> Vec<u8> {
    let text = b"JetStream snapshot block with some repetitive text. ";
    let mut data = Vec::new();
    while data.len() < 60 * 1024 {
        data.extend_from_slice(text);
    }
    data.extend_from_slice(&noise(80 * 1024, 42));
    while data.len() < 200 * 1024 {
        data.extend_from_slice(text);
        data.extend_from_slice(&noise(700, data.len() as u64));
        data.extend(std::iter::repeat_n(b'z', 900));
    }
    data.truncate(200 * 1024);
    data
}

/// Builds a chunk with a correct header and CRC.
fn chunk(chunk_type: u8, data: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    push_chunk(&mut out, chunk_type, masked_crc(data), payload);
    out
}

#[test]
fn crc32c_known_vectors() {
    assert_eq!(crc32c(b""), 0);
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    let ascending: Vec<u8> = (0u8..32).collect();
    assert_eq!(crc32c(&ascending), 0x46dd_794e);
}

#[test]
fn crc32c_slicing_matches_bytewise() {
    let data = noise(1000, 7);
    for len in 0..40 {
        let slice = &data[..len];
        let bytewise = !slice.iter().fold(!0u32, |crc, &b| {
            lookup(&CRC_TABLES[0], (crc as u8) ^ b) ^ (crc >> 8)
        });
        assert_eq!(crc32c(slice), bytewise, "len {len}");
    }
}

#[test]
fn round_trip_empty() {
    let stream = encode_frames(b"");
    assert_eq!(stream, S2_IDENTIFIER_CHUNK);
    for piece in [1, 7, 1000] {
        assert_eq!(decode_in_pieces(&stream, piece).unwrap(), b"");
    }
}

#[test]
fn round_trip_small() {
    let data = b"hello hello hello hello, s2";
    let stream = encode_frames(data);
    for piece in [1, 7, 1000] {
        assert_eq!(decode_in_pieces(&stream, piece).unwrap(), data);
    }
}

#[test]
fn round_trip_mixed_200k() {
    let data = mixed_data();
    let stream = encode_frames(&data);
    // Both chunk kinds must occur for this test to mean something.
    let kinds = chunk_types(&stream);
    assert!(kinds.contains(&CHUNK_COMPRESSED), "{kinds:?}");
    assert!(kinds.contains(&CHUNK_STORED), "{kinds:?}");
    assert!(stream.len() < data.len());
    for piece in [1, 7, 1000, stream.len()] {
        assert_eq!(decode_in_pieces(&stream, piece).unwrap(), data);
    }
}

/// Chunk types of a well-formed stream, in order.
fn chunk_types(stream: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        let len = u32::from_le_bytes([stream[pos + 1], stream[pos + 2], stream[pos + 3], 0]);
        types.push(stream[pos]);
        pos += 4 + len as usize;
    }
    types
}

#[test]
fn incompressible_input_is_stored() {
    let data = noise(ENCODE_CHUNK + 10, 3);
    let stream = encode_frames(&data);
    assert_eq!(chunk_types(&stream), [0xff, CHUNK_STORED, CHUNK_STORED]);
    assert_eq!(decode_in_pieces(&stream, 999).unwrap(), data);
}

#[test]
fn nats_server_vector_decodes() {
    let stream = hex(NATS_VECTOR_HEX);
    assert_eq!(stream.len(), 530);
    assert_eq!(chunk_types(&stream), [0xff, CHUNK_COMPRESSED]);
    let whole = decode_in_pieces(&stream, stream.len()).unwrap();
    assert!(whole.starts_with(b"NATSARC1"));
    assert!(contains(&whole, b"s1.foo"));
    assert!(contains(&whole, b"X-Test: 1"));
    assert!(whole.ends_with(&[0, 0, 0, 0, 0]));
    for piece in [1, 7, 1000] {
        assert_eq!(decode_in_pieces(&stream, piece).unwrap(), whole);
    }
    // Re-encoding what we decoded must round-trip too.
    assert_eq!(decode_in_pieces(&encode_frames(&whole), 7).unwrap(), whole);
}

/// Flipping a byte must never yield wrong data: the result is an error
/// (or a stream that does not end at a chunk boundary). Two cases are
/// inherent to the format and allowed:
/// - a changed copy offset that happens to point at identical bytes gives
///   exactly the original output (nothing was corrupted);
/// - turning the data chunk's type byte into a skippable type (0x80..=0xfe)
///   leaves a valid stream whose data is skipped, so the output is empty.
///
/// Inverting a whole byte (XOR 0xff) must always err.
#[test]
fn every_byte_flip_of_vector_errs() {
    let stream = hex(NATS_VECTOR_HEX);
    let original = decode_in_pieces(&stream, stream.len()).unwrap();
    let data_chunk_type_at = S2_IDENTIFIER_CHUNK.len();
    let mut harmless = 0;
    for i in 0..stream.len() {
        for mask in [0xff, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
            let mut bad = stream.clone();
            bad[i] ^= mask;
            let skippable = i == data_chunk_type_at && (0x80..=0xfe).contains(&bad[i]);
            for piece in [1, 13, bad.len()] {
                match decode_in_pieces(&bad, piece) {
                    Err(_) => {}
                    Ok(out) if skippable => assert!(out.is_empty(), "flip {mask:#x} at {i}"),
                    Ok(out) => {
                        assert_ne!(mask, 0xff, "inverted byte {i} decoded");
                        assert_eq!(out, original, "flip {mask:#x} at {i} gave wrong data");
                        if piece == 1 {
                            harmless += 1;
                        }
                    }
                }
            }
        }
    }
    // Such redundant encodings are rare (this vector has one: bit 5 of
    // byte 417, inside a copy offset); many would suggest a lax decoder.
    assert!(harmless <= 2, "{harmless} undetected flips");
}

#[test]
fn truncated_stream_is_not_at_boundary() {
    let stream = hex(NATS_VECTOR_HEX);
    for cut in 0..stream.len() {
        let mut dec = FrameDecoder::new();
        let mut out = Vec::new();
        dec.push(&stream[..cut], &mut out).unwrap();
        // Only the point right after the identifier chunk is a boundary.
        assert_eq!(dec.at_boundary(), cut == 10, "cut {cut}");
        assert!(out.is_empty());
    }
}

#[test]
fn crc_mismatch_is_reported_and_poisons() {
    let mut stream = S2_IDENTIFIER_CHUNK.to_vec();
    let mut bad = chunk(CHUNK_STORED, b"data", b"data");
    bad[4] ^= 1; // the CRC's first byte
    stream.extend_from_slice(&bad);
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    assert_eq!(dec.push(&stream, &mut out), Err(CRC_MISMATCH));
    assert!(!dec.at_boundary());
    assert_eq!(dec.push(&S2_IDENTIFIER_CHUNK, &mut out), Err(CRC_MISMATCH));
    assert!(out.is_empty());
}

/// A hand-made block using S2 repeat offsets:
/// "abcd", copy(offset 4, len 4), "xy", repeat(len 6) -> "abcdabcdxycdxycd".
#[test]
fn repeat_offset_block() {
    let block = [
        16, // decoded length
        0x0c, b'a', b'b', b'c', b'd', // literal, 4 bytes
        0x01, 0x04, // copy1: offset 4, length 4
        0x04, b'x', b'y', // literal, 2 bytes
        0x09, 0x00, // copy1 with offset 0: repeat, length code 2 -> 6
    ];
    assert_eq!(decode_block(&block).unwrap(), b"abcdabcdxycdxycd");

    // The same block inside a framed stream.
    let expected = b"abcdabcdxycdxycd";
    let mut stream = S2_IDENTIFIER_CHUNK.to_vec();
    stream.extend_from_slice(&chunk(CHUNK_COMPRESSED, expected, &block));
    assert_eq!(decode_in_pieces(&stream, 3).unwrap(), expected);
}

#[test]
fn repeat_lengths_with_extra_bytes() {
    // (repeat tag, its extra length bytes, resulting length)
    let cases: [(u8, &[u8], usize); 4] = [
        (0x11, &[], 8),                             // code 4: plain 8
        (0x15, &[0x03], 8 + 3),                     // code 5: 8 + 1 byte
        (0x19, &[0x01, 0x01], 260 + 257),           // code 6: 260 + 2 bytes
        (0x1d, &[0x02, 0x00, 0x01], 65540 + 65538), // code 7: 65540 + 3 bytes
    ];
    for (tag, extra, repeat_len) in cases {
        let total = 4 + repeat_len;
        let mut block = varint(total);
        // "ab", then copy2(offset 2, length 2) to set the repeat offset.
        block.extend_from_slice(&[0x04, b'a', b'b', 0x06, 0x02, 0x00]);
        // The repeat: a copy1 tag whose offset (high bits and next byte) is 0.
        block.extend_from_slice(&[tag, 0x00]);
        block.extend_from_slice(extra);
        let expected: Vec<u8> = b"ab".iter().copied().cycle().take(total).collect();
        assert_eq!(decode_block(&block).unwrap(), expected, "tag {tag:#x}");
        // Cutting off any extra length byte must fail cleanly.
        for cut in 1..=extra.len() {
            assert_eq!(decode_block(&block[..block.len() - cut]), Err(CORRUPT));
        }
    }
}

fn varint(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

#[test]
fn bad_blocks_err() {
    let cases: [&[u8]; 12] = [
        &[],                                      // no length
        &[0x80],                                  // unterminated varint
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],    // varint longer than 5 bytes
        &[0xff, 0xff, 0xff, 0xff, 0x1f],          // length above u32::MAX
        &[2, 0x01, 0x00],                         // repeat before any copy
        &[4, 0x04, b'a', b'b', 0x01, 0x00],       // repeat first, after a literal
        &[4, 0x04, b'a', b'b', 0x06, 0x00, 0x00], // copy2 with offset 0
        &[4, 0x04, b'a', b'b', 0x06, 0x03, 0x00], // offset past the start
        &[3, 0x04, b'a', b'b', 0x06, 0x02, 0x00], // copy overruns the length
        &[3, 0x08, b'a', b'b'],                   // literal runs past the input
        &[3, 0x04, b'a', b'b'],                   // output shorter than declared
        &[1, 0x04, b'a', b'b'],                   // literal longer than declared
    ];
    for block in cases {
        assert!(decode_block(block).is_err(), "{block:02x?}");
    }
    assert_eq!(decode_block(&varint(MAX_S2_BLOCK + 1)), Err(TOO_LARGE));
    assert_eq!(decode_block(&[0]).unwrap(), b"");
}

#[test]
fn long_literal_headers() {
    let data = noise(200, 5);
    for extra in 1..=4usize {
        // Tag codes 60..=63 say that length-1 follows in 1..=4 bytes.
        let mut block = varint(data.len());
        block.push(((59 + extra) as u8) << 2);
        block.extend_from_slice(&(data.len() as u32 - 1).to_le_bytes()[..extra]);
        block.extend_from_slice(&data);
        assert_eq!(decode_block(&block).unwrap(), data, "{extra} length bytes");
    }
    // A 4-byte literal length of u32::MAX must not overflow or allocate.
    assert_eq!(
        decode_block(&[5, 0xfc, 0xff, 0xff, 0xff, 0xff]),
        Err(CORRUPT)
    );
}

#[test]
fn snappy_identifier_and_skippable_chunks() {
    let mut stream = b"\xff\x06\x00\x00sNaPpY".to_vec();
    stream.extend_from_slice(&[0xfe, 3, 0, 0, 9, 9, 9]); // padding
    stream.extend_from_slice(&[0x99, 2, 0, 0, 1, 2]); // S2 index
    stream.extend_from_slice(&[0x80, 0, 0, 0]); // empty skippable
    stream.extend_from_slice(&chunk(CHUNK_STORED, b"one ", b"one "));
    stream.extend_from_slice(&S2_IDENTIFIER_CHUNK); // identifiers may repeat
    stream.extend_from_slice(&encode_frames(b"two")[10..]);
    for piece in [1, 2, 5, stream.len()] {
        assert_eq!(decode_in_pieces(&stream, piece).unwrap(), b"one two");
    }
}

#[test]
fn structural_errors() {
    let start = S2_IDENTIFIER_CHUNK.to_vec();
    let with = |tail: &[u8]| [start.as_slice(), tail].concat();
    let cases: Vec<(Vec<u8>, S2Error)> = vec![
        (chunk(CHUNK_STORED, b"x", b"x"), CORRUPT), // no identifier first
        (b"\xff\x06\x00\x00S2sTwX".to_vec(), CORRUPT),
        (b"\xff\x07\x00\x00S2sTwOO".to_vec(), CORRUPT),
        (with(&[0x02, 0, 0, 0]), UNSUPPORTED),
        (with(&[0x7f, 1, 0, 0, 0]), UNSUPPORTED),
        (with(&[0x00, 3, 0, 0, 1, 2, 3]), CORRUPT), // shorter than a CRC
        (with(&[0x01, 3, 0, 0, 1, 2, 3]), CORRUPT),
        (with(&[0x00, 0xff, 0xff, 0xff]), CORRUPT), // beyond the chunk limit
        (with(&[0x00, 4, 0, 0, 0, 0, 0, 0]), CORRUPT), // no block at all
    ];
    for (stream, want) in cases {
        let mut dec = FrameDecoder::new();
        let got = dec.push(&stream, &mut Vec::new());
        assert_eq!(got, Err(want), "{stream:02x?}");
    }
}

#[test]
fn block_size_limits() {
    // S2 allows 4 MiB stored chunks, Snappy 64 KiB.
    let big = vec![7u8; MAX_S2_BLOCK];
    let mut s2 = S2_IDENTIFIER_CHUNK.to_vec();
    s2.extend_from_slice(&chunk(CHUNK_STORED, &big, &big));
    assert_eq!(decode_in_pieces(&s2, 1 << 20).unwrap(), big);

    let mut too_big = S2_IDENTIFIER_CHUNK.to_vec();
    too_big.extend_from_slice(&[CHUNK_STORED, 5, 0, 0x40]); // 4 + 4 MiB + 1
    assert_eq!(
        FrameDecoder::new().push(&too_big, &mut Vec::new()),
        Err(CORRUPT)
    );

    let over = vec![1u8; MAX_SNAPPY_BLOCK + 1];
    let mut snappy = b"\xff\x06\x00\x00sNaPpY".to_vec();
    snappy.extend_from_slice(&chunk(CHUNK_STORED, &over, &over));
    assert_eq!(
        FrameDecoder::new().push(&snappy, &mut Vec::new()),
        Err(CORRUPT)
    );

    // A compressed block declaring more than 64 KiB under a Snappy identifier.
    let mut block = varint(MAX_SNAPPY_BLOCK + 1);
    block.extend_from_slice(&[0x00, b'a']);
    let mut snappy = b"\xff\x06\x00\x00sNaPpY".to_vec();
    snappy.extend_from_slice(&chunk(CHUNK_COMPRESSED, b"", &block));
    assert_eq!(
        FrameDecoder::new().push(&snappy, &mut Vec::new()),
        Err(CORRUPT)
    );
}

/// A small deterministic fuzz pass: random edits of valid streams and
/// random blocks must give results or errors, never panics, and a
/// decoded stream's output must match whole-buffer decoding.
#[test]
fn random_mutations_never_panic() {
    let mut seeds = noise(1 << 16, 99).into_iter();
    let mut next = move || usize::from(seeds.next().unwrap_or(1));
    let bases = [hex(NATS_VECTOR_HEX), encode_frames(&mixed_data()[..3000])];
    for round in 0..3000 {
        let mut bad = bases[round % 2].clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() << 8 | next()) % bad.len();
            bad[at] = next() as u8;
        }
        bad.truncate(bad.len() - next() % 3);
        let whole = decode_in_pieces(&bad, bad.len());
        assert_eq!(decode_in_pieces(&bad, 1 + next() % 17), whole);
        let _ = decode_block(&bad[10..]);
        let _ = decode_block(&bad[(next() % 40).min(bad.len())..]);
    }
}

/// Builds random but valid blocks using every element form (all literal
/// headers, copy1/2/4, all repeat length forms, overlapping copies), with
/// the expected output computed byte by byte alongside, and checks that
/// the decoder agrees.
#[test]
fn random_valid_blocks_decode() {
    let mut rng = noise(1 << 20, 2024).into_iter().cycle();
    let mut next = move |bound: usize| {
        let v = (0..3).fold(0usize, |acc, _| {
            acc << 8 | usize::from(rng.next().unwrap_or(0))
        });
        v % bound
    };
    for round in 0..300 {
        let (block, expected) = random_block(&mut next, round);
        assert_eq!(decode_block(&block).unwrap(), expected, "round {round}");
        let mut stream = S2_IDENTIFIER_CHUNK.to_vec();
        stream.extend_from_slice(&chunk(CHUNK_COMPRESSED, &expected, &block));
        assert_eq!(decode_in_pieces(&stream, 1 + round).unwrap(), expected);
    }
}

/// One random valid block and its decoded form.
fn random_block(next: &mut impl FnMut(usize) -> usize, round: usize) -> (Vec<u8>, Vec<u8>) {
    let mut elements = Vec::new();
    let mut expected: Vec<u8> = Vec::new();
    let mut last_offset = 0usize;
    for _ in 0..1 + next(40) {
        let kind = if expected.is_empty() { 0 } else { next(5) };
        let (offset, len) = match kind {
            0 => {
                let len = [
                    1 + next(60),
                    1 + next(256),
                    257 + next(1000),
                    1 + next(70_000),
                ][next(if round.is_multiple_of(7) { 4 } else { 3 })];
                let data = noise(len, next(1000) as u64 + 1);
                push_literal(&mut elements, &data);
                expected.extend_from_slice(&data);
                continue;
            }
            1 => {
                let offset = pick_offset(expected.len().min(2047), next);
                let len = 4 + next(8);
                let [lo, hi, ..] = (offset as u32).to_le_bytes();
                elements.extend_from_slice(&[0x01 | ((len - 4) as u8) << 2 | hi << 5, lo]);
                (offset, len)
            }
            2 | 3 => {
                let offset = pick_offset(expected.len().min(65535), next);
                let len = 1 + next(64);
                let tag = (kind as u8) | ((len - 1) as u8) << 2;
                elements.push(tag);
                let bytes = (offset as u32).to_le_bytes();
                elements.extend_from_slice(&bytes[..if kind == 2 { 2 } else { 4 }]);
                (offset, len)
            }
            _ if last_offset == 0 => continue,
            _ => (last_offset, push_repeat(&mut elements, next)),
        };
        last_offset = offset;
        for _ in 0..len {
            expected.push(expected[expected.len() - offset]);
        }
    }
    let mut block = varint(expected.len());
    block.extend_from_slice(&elements);
    (block, expected)
}

/// A copy offset below `limit`; half the time a tiny one, so that many
/// copies overlap their own output.
fn pick_offset(limit: usize, next: &mut impl FnMut(usize) -> usize) -> usize {
    let limit = if next(2) == 0 { limit.min(8) } else { limit };
    1 + next(limit)
}

/// Appends a literal element, choosing the shortest header form.
fn push_literal(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len() - 1;
    if n < 60 {
        out.push((n as u8) << 2);
    } else {
        let bytes = (n as u32).to_le_bytes();
        let width = bytes.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
        out.push(((59 + width) as u8) << 2);
        out.extend_from_slice(&bytes[..width]);
    }
    out.extend_from_slice(data);
}

/// Appends a repeat element of a random length form; returns its length.
fn push_repeat(out: &mut Vec<u8>, next: &mut impl FnMut(usize) -> usize) -> usize {
    match next(4) {
        0 => {
            let len = 4 + next(5);
            out.extend_from_slice(&[0x01 | ((len - 4) as u8) << 2, 0]);
            len
        }
        1 => {
            let extra = next(256);
            out.extend_from_slice(&[0x01 | 5 << 2, 0, extra as u8]);
            8 + extra
        }
        2 => {
            let extra = next(65536);
            let [a, b, ..] = (extra as u32).to_le_bytes();
            out.extend_from_slice(&[0x01 | 6 << 2, 0, a, b]);
            260 + extra
        }
        _ => {
            let extra = next(3000);
            let [a, b, c, _] = (extra as u32).to_le_bytes();
            out.extend_from_slice(&[0x01 | 7 << 2, 0, a, b, c]);
            65540 + extra
        }
    }
}

#[test]
fn empty_input_is_not_at_boundary() {
    let mut dec = FrameDecoder::new();
    assert!(!dec.at_boundary());
    dec.push(&[], &mut Vec::new()).unwrap();
    assert!(!dec.at_boundary());
}

#[test]
fn output_of_earlier_chunks_survives_a_later_error() {
    let mut stream = encode_frames(b"good");
    stream.extend_from_slice(&[0x02, 0, 0, 0]);
    let mut out = Vec::new();
    assert_eq!(
        FrameDecoder::new().push(&stream, &mut out),
        Err(UNSUPPORTED)
    );
    assert_eq!(out, b"good");
}
