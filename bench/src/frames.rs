//! Pre-encoded `PUB` frames that cycle over the subjects, handed out in
//! write batches of about [`WRITE_BATCH_BYTES`] cut at frame boundaries, so
//! a publisher never encodes while it runs.

use natrix_core::proto::client;

use crate::conn::WRITE_BATCH_BYTES;

/// The cycle is at least this many batches long, so the one short batch
/// where it wraps around is rare.
const CYCLE_BATCHES: usize = 16;

pub struct Frames {
    bytes: Vec<u8>,
    /// Where each frame starts, and the end of the last one.
    offsets: Vec<usize>,
}

impl Frames {
    pub fn new(subjects: &[String], payload: &[u8]) -> Frames {
        assert!(!subjects.is_empty(), "a publisher needs a subject");
        let mut bytes = Vec::new();
        let mut offsets = vec![0];
        while bytes.len() < CYCLE_BATCHES * WRITE_BATCH_BYTES {
            for s in subjects {
                client::publish(&mut bytes, s.as_bytes(), None, payload);
                offsets.push(bytes.len());
            }
        }
        Frames { bytes, offsets }
    }

    /// Frames in one cycle.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// From frame `first` on: at least one and at most `max` frames, as many
    /// as fit in a batch without passing the end of the cycle. Returns their
    /// bytes and how many they are.
    pub fn batch(&self, first: usize, max: u64) -> (&[u8], usize) {
        let start = self.offsets[first];
        let room = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .min(self.len() - first);
        let ends = &self.offsets[first + 1..=first + room];
        let fit = ends.partition_point(|&end| end - start <= WRITE_BATCH_BYTES);
        let n = fit.max(1).min(room.max(1));
        (&self.bytes[start..self.offsets[first + n]], n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natrix_core::proto::{Limits, Op, Parser};

    fn subjects_of(bytes: &[u8]) -> Vec<Vec<u8>> {
        let (mut p, mut pos, mut out) = (Parser::new(), 0, Vec::new());
        while let Some(op) = p.next(bytes, &mut pos, &Limits::default()).unwrap() {
            match op {
                Op::Pub(m) => out.push(m.subject.to_vec()),
                other => panic!("not a publish: {other:?}"),
            }
        }
        out
    }

    #[test]
    fn batches_cycle_over_subjects_at_frame_boundaries() {
        let subjects: Vec<String> = (0..1000).map(|i| format!("s.{i}")).collect();
        let frames = Frames::new(&subjects, b"0123456789abcdef");
        let (mut next, mut seen) = (0, Vec::new());
        for _ in 0..40 {
            let (bytes, n) = frames.batch(next, u64::MAX);
            assert!(bytes.len() <= WRITE_BATCH_BYTES && n >= 1);
            let got = subjects_of(bytes);
            assert_eq!(got.len(), n);
            seen.extend(got);
            next = (next + n) % frames.len();
        }
        for (i, s) in seen.iter().enumerate() {
            assert_eq!(s, subjects[i % subjects.len()].as_bytes(), "frame {i}");
        }
        let (_, n) = frames.batch(5, 3);
        assert_eq!(n, 3, "never more than asked");
        let (_, n) = frames.batch(frames.len() - 2, u64::MAX);
        assert_eq!(n, 2, "never past the end of the cycle");
    }
}
