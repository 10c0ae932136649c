//! S2 framed streams (the stream format of klauspost/compress/s2), in pure Rust.
//!
//! This is what nats-server and the `nats stream backup/restore` tooling use for
//! JetStream stream snapshots: a stream identifier chunk (`ff 06 00 00 "S2sTwO"`,
//! or Snappy's `"sNaPpY"`, which the nats-server reader also accepts), followed
//! by chunks of compressed or stored data, each carrying the masked CRC-32C of
//! its uncompressed bytes.
//!
//! What it is:
//! - [`encode_frames`]: compresses a whole buffer into an S2 framed stream. The
//!   blocks inside are plain Snappy blocks (made by `snap::raw::Encoder`), which
//!   every S2 reader accepts.
//! - [`FrameDecoder`]: an incremental, push-style reader of S2 and Snappy framed
//!   streams, including S2's block extensions (repeat offsets, blocks of up to
//!   4 MiB) and skippable chunks such as padding and S2's seek index.
//! - `decode_block` (tests only): decompresses one raw S2 (or Snappy) block.
//!
//! What it is not: not an S2 *compressor* (it never emits repeat offsets or
//! blocks larger than 64 KiB), not a reader of S2 dictionaries, not a user of
//! the seek index (it skips it), and it does no I/O. CRC-32C is computed by a
//! small table-driven implementation in this file, so the only dependency is
//! the `snap` crate.
//!
//! Every malformed input yields an [`S2Error`]; nothing here panics on input
//! (indexing is lint-checked below), and no allocation exceeds the format's
//! limits (4 MiB per decoded S2 block, 64 KiB per Snappy one).

// Input must never be able to cause a panic: `[]` indexing and slicing (which
// panic when out of bounds), unwrap/expect and panic! are denied in this
// module, so every access is checked; the two provably-safe table lookups
// opt out locally, and so do the tests.
#![forbid(unsafe_code)]
#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::fmt;

/// An S2 decoding error; the text says what went wrong, in the same words as
/// the Go implementation where one exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2Error(
    /// A short description, such as "s2: corrupt input".
    pub &'static str,
);

impl fmt::Display for S2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for S2Error {}

/// Structurally invalid input (nats-server's wording).
const CORRUPT: S2Error = S2Error("s2: corrupt input");
/// The data decoded, but its checksum does not match.
const CRC_MISMATCH: S2Error = S2Error("s2: corrupt input, crc mismatch");
/// A reserved chunk type that readers must not skip (0x02..=0x7f).
const UNSUPPORTED: S2Error = S2Error("s2: unsupported input");
/// A raw block declares a decoded size beyond what we allow.
const TOO_LARGE: S2Error = S2Error("s2: decoded block is too large");

/// Chunk types of the framing format.
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_STORED: u8 = 0x01;
const CHUNK_STREAM_IDENTIFIER: u8 = 0xff;
/// 0x02..=0x7f must make a reader fail; 0x80..=0xfe (padding 0xfe, S2's index
/// 0x99 and the rest) must be skipped.
const LAST_UNSKIPPABLE: u8 = 0x7f;

const S2_MAGIC: &[u8; 6] = b"S2sTwO";
const SNAPPY_MAGIC: &[u8; 6] = b"sNaPpY";
/// The whole identifier chunk we emit: header (type, 3-byte length 6) + body.
/// The length of the identifier chunk a stream starts with.
pub(crate) const IDENTIFIER_BYTES: usize = S2_IDENTIFIER_CHUNK.len();

const S2_IDENTIFIER_CHUNK: [u8; 10] = [0xff, 0x06, 0x00, 0x00, b'S', b'2', b's', b'T', b'w', b'O'];

const CHUNK_HEADER_LEN: usize = 4;
const CHECKSUM_LEN: usize = 4;

/// S2 allows decoded blocks of up to 4 MiB in a framed stream.
const MAX_S2_BLOCK: usize = 4 << 20;
/// A stream that announced itself as Snappy keeps Snappy's 64 KiB limit.
const MAX_SNAPPY_BLOCK: usize = 1 << 16;
/// Largest compressed chunk body the Go reader accepts: CRC, then S2's
/// `MaxEncodedLen(4 MiB)` = 4 MiB of literals + a 4-byte uvarint length
/// + a 4-byte literal tag.
const MAX_COMPRESSED_CHUNK: usize = CHECKSUM_LEN + MAX_S2_BLOCK + 4 + 4;
/// Blocks we write hold at most this much input, so that each one is also a
/// valid Snappy block and a reader never needs more than 64 KiB per chunk.
const ENCODE_CHUNK: usize = 1 << 16;

/// A uvarint block length is at most 5 bytes (the value fits in 32 bits).
const MAX_VARINT_LEN: usize = 5;

// ---------------------------------------------------------------------------
// CRC-32C
// ---------------------------------------------------------------------------

/// Reflected Castagnoli polynomial.
const CRC32C_POLY: u32 = 0x82f6_3b78;

/// Slicing-by-8 tables: table k maps a byte to its CRC contribution when it is
/// followed by k more bytes. Built at compile time.
static CRC_TABLES: [[u32; 256]; 8] = make_crc_tables();

// Runs only at compile time, where an out-of-bounds index fails the build.
#[allow(clippy::indexing_slicing)]
const fn make_crc_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut k = 1;
        while k < 8 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev >> 8) ^ tables[0][(prev & 0xff) as usize];
            k += 1;
        }
        i += 1;
    }
    tables
}

/// One table lookup; a `u8` index into 256 entries is always in bounds.
#[allow(clippy::indexing_slicing)]
fn lookup(table: &[u32; 256], byte: u8) -> u32 {
    table[usize::from(byte)]
}

/// CRC-32C (Castagnoli) of `data`.
fn crc32c(data: &[u8]) -> u32 {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = &CRC_TABLES;
    let mut crc = !0u32;
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let [b0, b1, b2, b3, b4, b5, b6, b7] = bytes;
        let [c0, c1, c2, c3] = (crc ^ u32::from_le_bytes([b0, b1, b2, b3])).to_le_bytes();
        crc = lookup(t7, c0)
            ^ lookup(t6, c1)
            ^ lookup(t5, c2)
            ^ lookup(t4, c3)
            ^ lookup(t3, b4)
            ^ lookup(t2, b5)
            ^ lookup(t1, b6)
            ^ lookup(t0, b7);
    }
    for &byte in words.remainder() {
        // Truncation to the low byte is the point here.
        crc = lookup(t0, (crc as u8) ^ byte) ^ (crc >> 8);
    }
    !crc
}

/// The framing format stores CRCs "masked" (rotated and offset) because a CRC
/// over data that itself contains CRCs is otherwise weak.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Compresses `data` as a whole S2 framed stream: the identifier chunk, then chunks of at most 64 KiB of input each, compressed (chunk type 0x00) when that is smaller, else stored (0x01), each with the masked CRC-32C of its uncompressed bytes.
///
/// Empty input gives just the 10-byte identifier chunk. The blocks are Snappy
/// blocks, which are valid S2 blocks.
pub fn encode_frames(data: &[u8]) -> Vec<u8> {
    let chunks = data.len().div_ceil(ENCODE_CHUNK);
    let mut out = Vec::with_capacity(
        S2_IDENTIFIER_CHUNK.len() + data.len() + chunks * (CHUNK_HEADER_LEN + CHECKSUM_LEN),
    );
    out.extend_from_slice(&S2_IDENTIFIER_CHUNK);
    let mut encoder = snap::raw::Encoder::new();
    // One scratch buffer for all blocks: sized for the worst case of a full chunk.
    let mut scratch = vec![0u8; snap::raw::max_compress_len(ENCODE_CHUNK.min(data.len()))];
    for input in data.chunks(ENCODE_CHUNK) {
        write_data_chunk(&mut out, &mut encoder, &mut scratch, input);
    }
    out
}

/// Appends one data chunk for `input` (at most `ENCODE_CHUNK` bytes).
fn write_data_chunk(
    out: &mut Vec<u8>,
    encoder: &mut snap::raw::Encoder,
    scratch: &mut [u8],
    input: &[u8],
) {
    let crc = masked_crc(input);
    // Fall back to storing when snap refuses or compression does not pay.
    let compressed = match encoder.compress(input, scratch) {
        Ok(len) => scratch.get(..len).filter(|block| block.len() < input.len()),
        Err(_) => None,
    };
    match compressed {
        Some(block) => push_chunk(out, CHUNK_COMPRESSED, crc, block),
        None => push_chunk(out, CHUNK_STORED, crc, input),
    }
}

/// Appends a chunk header, the CRC and the payload.
fn push_chunk(out: &mut Vec<u8>, chunk_type: u8, crc: u32, payload: &[u8]) {
    // Payloads are at most ENCODE_CHUNK + a few bytes, far below the 24-bit limit.
    let [l0, l1, l2, _] = ((payload.len() + CHECKSUM_LEN) as u32).to_le_bytes();
    out.extend_from_slice(&[chunk_type, l0, l1, l2]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

// ---------------------------------------------------------------------------
// Block decoding
// ---------------------------------------------------------------------------

/// Decompresses one S2 (or Snappy) raw block.
///
/// A raw block is a uvarint of the decoded length followed by literal and copy
/// elements. Blocks declaring more than 4 MiB (the S2 framed-stream limit) are
/// refused with "s2: decoded block is too large", so that hostile input cannot
/// make us allocate more than that. (Framed streams decode their blocks in
/// place; this is for tests of the block format alone.)
#[cfg(test)]
pub fn decode_block(src: &[u8]) -> Result<Vec<u8>, S2Error> {
    let (decoded_len, body) = split_block_length(src)?;
    if decoded_len > MAX_S2_BLOCK {
        return Err(TOO_LARGE);
    }
    let mut out = Vec::new();
    decode_block_body(body, decoded_len, &mut out)?;
    Ok(out)
}

/// Reads the uvarint decoded length at the start of a block; returns it and
/// the rest of the block.
fn split_block_length(src: &[u8]) -> Result<(usize, &[u8]), S2Error> {
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().take(MAX_VARINT_LEN).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Like Go: at most 5 bytes and a value that fits in 32 bits.
            let len = u32::try_from(value).map_err(|_| CORRUPT)?;
            let len = usize::try_from(len).map_err(|_| TOO_LARGE)?;
            let rest = src.get(i + 1..).ok_or(CORRUPT)?;
            return Ok((len, rest));
        }
    }
    Err(CORRUPT)
}

/// Decodes the elements of a block (after its length prefix), appending
/// exactly `decoded_len` bytes to `out`. On error `out` is left as it was.
///
/// Copies may only reach back into this block's own output, never into what
/// `out` held before, so `out` can be a stream's running output.
fn decode_block_body(body: &[u8], decoded_len: usize, out: &mut Vec<u8>) -> Result<(), S2Error> {
    let base = out.len();
    // The caller has bounded decoded_len by the format's limits.
    out.reserve(decoded_len);
    let result = BlockDecoder {
        src: body,
        out,
        base,
        decoded_len,
        last_offset: 0,
    }
    .run();
    if result.is_err() {
        out.truncate(base);
    }
    result
}

/// State while decoding one block.
struct BlockDecoder<'a, 'o> {
    /// Unread compressed bytes.
    src: &'a [u8],
    out: &'o mut Vec<u8>,
    /// Where this block's output starts in `out`.
    base: usize,
    decoded_len: usize,
    /// The offset of the previous copy, reused by S2's repeat elements; zero
    /// (invalid) until the block's first copy, as the offset resets per block.
    last_offset: usize,
}

impl<'a> BlockDecoder<'a, '_> {
    fn run(mut self) -> Result<(), S2Error> {
        while let Some((&tag, rest)) = self.src.split_first() {
            self.src = rest;
            match tag & 0x03 {
                0 => self.literal(tag)?,
                1 => self.copy1(tag)?,
                2 => self.copy2(tag)?,
                _ => self.copy4(tag)?,
            }
        }
        if self.written() != self.decoded_len {
            return Err(CORRUPT);
        }
        Ok(())
    }

    /// Bytes of this block decoded so far.
    fn written(&self) -> usize {
        self.out.len() - self.base
    }

    /// Takes `n` bytes of compressed input.
    fn take(&mut self, n: usize) -> Result<&'a [u8], S2Error> {
        if n > self.src.len() {
            return Err(CORRUPT);
        }
        let (head, rest) = self.src.split_at(n);
        self.src = rest;
        Ok(head)
    }

    /// Takes an `n`-byte (1..=4) little-endian unsigned integer.
    fn take_le(&mut self, n: usize) -> Result<u32, S2Error> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    /// Literal: the upper six tag bits are length-1 when below 60; 60..=63
    /// mean the length-1 follows in 1..=4 little-endian bytes.
    fn literal(&mut self, tag: u8) -> Result<(), S2Error> {
        let code = tag >> 2;
        let len_minus_one = match code {
            0..=59 => u32::from(code),
            _ => self.take_le(usize::from(code - 59))?,
        };
        // u32::MAX + 1 may not fit a 32-bit usize: compare in u64.
        let len = u64::from(len_minus_one) + 1;
        let room = self.decoded_len - self.written();
        if len > room as u64 {
            return Err(CORRUPT);
        }
        // len <= room, so it fits in usize.
        let bytes = self.take(len as usize)?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// Copy with a 1-byte offset: length 4..=11 in tag bits 2-4, offset bits
    /// 8-10 in tag bits 5-7 and bits 0-7 in the next byte. S2's extension: an
    /// offset of 0 means "repeat the last offset", with its own length coding.
    fn copy1(&mut self, tag: u8) -> Result<(), S2Error> {
        let low = self.take_le(1)?;
        let offset = (u32::from(tag & 0xe0) << 3) | low;
        let code = (tag >> 2) & 0x07;
        let len = if offset == 0 {
            self.repeat_len(code)?
        } else {
            self.last_offset = offset as usize;
            usize::from(code) + 4
        };
        self.copy(len)
    }

    /// Length of a repeat element (see the S2 README's table): codes 0..=4
    /// are lengths 4..=8; 5, 6, 7 add a 1-, 2-, 3-byte little-endian value to
    /// 8, 260 and 65540, so any length fits in at most 5 bytes.
    fn repeat_len(&mut self, code: u8) -> Result<usize, S2Error> {
        let len = match code {
            5 => self.take_le(1)? + 8,
            6 => self.take_le(2)? + 260,
            7 => self.take_le(3)? + 65540,
            _ => u32::from(code) + 4,
        };
        usize::try_from(len).map_err(|_| CORRUPT)
    }

    /// Copy with a 2-byte offset; length 1..=64 from the tag.
    fn copy2(&mut self, tag: u8) -> Result<(), S2Error> {
        let offset = self.take_le(2)?;
        self.last_offset = offset as usize;
        self.copy(usize::from(tag >> 2) + 1)
    }

    /// Copy with a 4-byte offset; length 1..=64 from the tag.
    fn copy4(&mut self, tag: u8) -> Result<(), S2Error> {
        let offset = self.take_le(4)?;
        // An offset that does not fit usize is beyond any output: invalid.
        self.last_offset = usize::try_from(offset).map_err(|_| CORRUPT)?;
        self.copy(usize::from(tag >> 2) + 1)
    }

    /// Appends `len` bytes starting `last_offset` bytes back in this block's
    /// output. Source and destination may overlap (offset < len): the bytes
    /// then repeat with period `offset`, as if copied one by one.
    fn copy(&mut self, len: usize) -> Result<(), S2Error> {
        let offset = self.last_offset;
        let written = self.written();
        if offset == 0 || offset > written || len > self.decoded_len - written {
            return Err(CORRUPT);
        }
        let start = self.out.len() - offset;
        let mut remaining = len;
        // Everything from `start` on is periodic with period `offset`, so
        // copying a prefix of it keeps the period; each round doubles the
        // available span, so long overlapping runs take few rounds.
        while remaining > 0 {
            let span = (self.out.len() - start).min(remaining);
            self.out.extend_from_within(start..start + span);
            remaining -= span;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Frame decoding
// ---------------------------------------------------------------------------

/// What the body of a chunk being collected is.
#[derive(Debug, Clone, Copy)]
enum BodyKind {
    StreamIdentifier,
    Compressed,
    Stored,
}

/// Where the decoder is within the chunk sequence.
#[derive(Debug)]
enum Stage {
    /// Collecting a 4-byte chunk header; `have` bytes of it are in `buf`.
    Header {
        buf: [u8; CHUNK_HEADER_LEN],
        have: usize,
    },
    /// Collecting a chunk body of `len` bytes; `buf` holds the part received.
    Body {
        kind: BodyKind,
        len: usize,
        buf: Vec<u8>,
    },
    /// Discarding `left` more bytes of a skippable chunk.
    Skip { left: usize },
}

impl Default for Stage {
    fn default() -> Self {
        Stage::Header {
            buf: [0; CHUNK_HEADER_LEN],
            have: 0,
        }
    }
}

/// An incremental reader: bytes are pushed in as they arrive (in arbitrary pieces, split anywhere), decompressed data is taken out.
///
/// It accepts S2 (`S2sTwO`) and Snappy (`sNaPpY`) stream identifiers, which
/// may repeat (concatenated streams); under a Snappy identifier blocks are
/// limited to 64 KiB, under S2 to 4 MiB. Skippable chunks (0x80..=0xfe,
/// including padding and S2's index) are discarded without being buffered.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    stage: Stage,
    /// A stream identifier has been read (it must be the first chunk).
    seen_identifier: bool,
    /// The latest identifier was Snappy's, so Snappy's block limit applies.
    snappy: bool,
    /// The first error met; once set, every call returns it.
    failed: Option<S2Error>,
}

impl FrameDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes more framed bytes; returns the decompressed bytes of every chunk completed by them (appended to `out`). Err on corrupt input (then the decoder is poisoned: every later call errs).
    ///
    /// On error, `out` keeps the output of the chunks completed before the bad
    /// one, and nothing of the bad chunk.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), S2Error> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.step(rest, out) {
                Ok(after) => rest = after,
                Err(err) => return Err(self.poison(err)),
            }
        }
        Ok(())
    }

    /// Whether the input so far ends exactly at a chunk boundary (no partial chunk buffered) and the stream identifier was seen.
    ///
    /// After an error this is false. At the end of input, false means the
    /// stream was truncated (or never started).
    pub fn at_boundary(&self) -> bool {
        self.failed.is_none()
            && self.seen_identifier
            && matches!(self.stage, Stage::Header { have: 0, .. })
    }

    /// Records `err` as permanent and drops any buffered partial chunk.
    fn poison(&mut self, err: S2Error) -> S2Error {
        self.failed = Some(err.clone());
        self.stage = Stage::default();
        err
    }

    /// Consumes some of `bytes` (at least one byte, as `bytes` is non-empty)
    /// and returns the rest.
    fn step<'b>(&mut self, bytes: &'b [u8], out: &mut Vec<u8>) -> Result<&'b [u8], S2Error> {
        match std::mem::take(&mut self.stage) {
            Stage::Header { buf, have } => self.step_header(buf, have, bytes),
            Stage::Skip { left } => {
                let n = left.min(bytes.len());
                if left > n {
                    self.stage = Stage::Skip { left: left - n };
                }
                Ok(bytes.split_at(n).1)
            }
            Stage::Body { kind, len, buf } => self.step_body(kind, len, buf, bytes, out),
        }
    }

    fn step_header<'b>(
        &mut self,
        mut buf: [u8; CHUNK_HEADER_LEN],
        have: usize,
        bytes: &'b [u8],
    ) -> Result<&'b [u8], S2Error> {
        let n = (CHUNK_HEADER_LEN - have).min(bytes.len());
        let (head, rest) = bytes.split_at(n);
        if let Some(slot) = buf.get_mut(have..have + n) {
            slot.copy_from_slice(head);
        }
        if have + n < CHUNK_HEADER_LEN {
            self.stage = Stage::Header {
                buf,
                have: have + n,
            };
        } else {
            self.stage = self.start_chunk(buf)?;
        }
        Ok(rest)
    }

    fn step_body<'b>(
        &mut self,
        kind: BodyKind,
        len: usize,
        mut buf: Vec<u8>,
        bytes: &'b [u8],
        out: &mut Vec<u8>,
    ) -> Result<&'b [u8], S2Error> {
        // Fast path: the whole body is in `bytes`, so decode it in place
        // instead of copying it into `buf` first.
        if buf.is_empty() && bytes.len() >= len {
            let (body, rest) = bytes.split_at(len);
            self.finish_chunk(kind, body, out)?;
            return Ok(rest);
        }
        let n = (len - buf.len()).min(bytes.len());
        let (head, rest) = bytes.split_at(n);
        // Growing by what arrived (rather than reserving `len` up front) keeps
        // memory proportional to the input actually received.
        buf.extend_from_slice(head);
        if buf.len() == len {
            self.finish_chunk(kind, &buf, out)?;
        } else {
            self.stage = Stage::Body { kind, len, buf };
        }
        Ok(rest)
    }

    /// Validates a complete chunk header and returns the stage for its body.
    fn start_chunk(&self, header: [u8; CHUNK_HEADER_LEN]) -> Result<Stage, S2Error> {
        let [chunk_type, l0, l1, l2] = header;
        let len = u32::from_le_bytes([l0, l1, l2, 0]) as usize;
        if !self.seen_identifier && chunk_type != CHUNK_STREAM_IDENTIFIER {
            return Err(CORRUPT);
        }
        let body = |kind| {
            Ok(Stage::Body {
                kind,
                len,
                buf: Vec::new(),
            })
        };
        match chunk_type {
            CHUNK_STREAM_IDENTIFIER if len == S2_MAGIC.len() => body(BodyKind::StreamIdentifier),
            CHUNK_STREAM_IDENTIFIER => Err(CORRUPT),
            CHUNK_COMPRESSED if (CHECKSUM_LEN..=MAX_COMPRESSED_CHUNK).contains(&len) => {
                body(BodyKind::Compressed)
            }
            CHUNK_STORED if len >= CHECKSUM_LEN && len - CHECKSUM_LEN <= self.block_limit() => {
                body(BodyKind::Stored)
            }
            CHUNK_COMPRESSED | CHUNK_STORED => Err(CORRUPT),
            0x02..=LAST_UNSKIPPABLE => Err(UNSUPPORTED),
            // Padding (0xfe), S2's index (0x99) and other skippable chunks.
            _ if len == 0 => Ok(Stage::default()),
            _ => Ok(Stage::Skip { left: len }),
        }
    }

    /// Largest decoded block allowed under the current stream identifier.
    fn block_limit(&self) -> usize {
        if self.snappy {
            MAX_SNAPPY_BLOCK
        } else {
            MAX_S2_BLOCK
        }
    }

    /// Handles a complete chunk body.
    fn finish_chunk(
        &mut self,
        kind: BodyKind,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), S2Error> {
        match kind {
            BodyKind::StreamIdentifier => self.read_identifier(body),
            BodyKind::Compressed => self.read_compressed(body, out),
            BodyKind::Stored => read_stored(body, out),
        }
    }

    fn read_identifier(&mut self, body: &[u8]) -> Result<(), S2Error> {
        self.snappy = match body {
            b if b == S2_MAGIC => false,
            b if b == SNAPPY_MAGIC => true,
            _ => return Err(CORRUPT),
        };
        self.seen_identifier = true;
        Ok(())
    }

    fn read_compressed(&self, body: &[u8], out: &mut Vec<u8>) -> Result<(), S2Error> {
        let (crc, block) = split_checksum(body)?;
        let (decoded_len, elements) = split_block_length(block)?;
        if decoded_len > self.block_limit() {
            return Err(CORRUPT);
        }
        let base = out.len();
        decode_block_body(elements, decoded_len, out)?;
        if masked_crc(out.get(base..).unwrap_or_default()) != crc {
            out.truncate(base);
            return Err(CRC_MISMATCH);
        }
        Ok(())
    }
}

/// A stored chunk: CRC, then the data itself.
fn read_stored(body: &[u8], out: &mut Vec<u8>) -> Result<(), S2Error> {
    let (crc, data) = split_checksum(body)?;
    if masked_crc(data) != crc {
        return Err(CRC_MISMATCH);
    }
    out.extend_from_slice(data);
    Ok(())
}

/// Splits a data chunk body into its little-endian masked CRC and the rest.
fn split_checksum(body: &[u8]) -> Result<(u32, &[u8]), S2Error> {
    match body {
        [c0, c1, c2, c3, rest @ ..] => Ok((u32::from_le_bytes([*c0, *c1, *c2, *c3]), rest)),
        _ => Err(CORRUPT),
    }
}

#[cfg(test)]
#[path = "s2_tests.rs"]
mod tests;
