//! `SmallBytes`: a byte string that keeps up to 22 bytes inline (no heap
//! allocation) in the 24 bytes a boxed slice with its length would take.
//! Subscription ids are almost always a few digits: with a hundred
//! thousand subscriptions, keeping them inline saves two allocations each
//! (the subscription's copy and the connection's index key).

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

const INLINE: usize = 22;

#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, data } => &data[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl From<&[u8]> for SmallBytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut data = [0u8; INLINE];
            data[..b.len()].copy_from_slice(b);
            SmallBytes::Inline {
                len: b.len() as u8,
                data,
            }
        } else {
            SmallBytes::Heap(b.into())
        }
    }
}

impl Deref for SmallBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for SmallBytes {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for SmallBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SmallBytes {}

/// Hashes as the slice does, so maps keyed by it can be searched by `&[u8]`.
impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl std::fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap_behave_as_slices() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        let short = SmallBytes::from(&b"42"[..]);
        assert!(matches!(short, SmallBytes::Inline { .. }));
        let long = SmallBytes::from(&b"a-subscription-id-longer-than-22"[..]);
        assert!(matches!(long, SmallBytes::Heap(_)));
        assert_eq!(&*short, b"42");
        assert_eq!(&*long, b"a-subscription-id-longer-than-22");
        let mut m: crate::FastMap<SmallBytes, u32> = crate::FastMap::default();
        m.insert(short.clone(), 1);
        m.insert(long.clone(), 2);
        assert_eq!(m.get(&b"42"[..]), Some(&1));
        assert_eq!(m.get(&b"a-subscription-id-longer-than-22"[..]), Some(&2));
        assert_eq!(m.remove(&b"42"[..]), Some(1));
        let exact = SmallBytes::from(&[7u8; 22][..]);
        assert!(matches!(exact, SmallBytes::Inline { .. }));
        assert_eq!(exact.len(), 22);
    }
}
