//! The bounded cache of signatures made on first use, one per answer
//! worker (so no lock): RRSIGs over names that exist only in a query (a
//! name that does not exist, a wildcard expansion) and over service
//! answer sets too many to sign in advance. Eight-way set-associative: a
//! name hashes to a set of [`WAYS`] slots, a new entry takes a free one or
//! the one used least recently, so memory stays at most [`CAPACITY`]
//! entries per worker and a working set of a few thousand names stays
//! whole. A new set of signatures (a reload, a new window) empties it.

use std::hash::{BuildHasher, Hasher};

use crate::metrics::WorkerStats;
use crate::zone::RRset;

/// Entries per worker.
pub const CAPACITY: usize = 8192;

/// Slots per set.
pub const WAYS: usize = 8;

/// Longest key: kind, type, a name, and up to 16 addresses.
pub const MAX_KEY: usize = 1 + 2 + 255 + 16 * 16;

/// What a cache entry holds: RRSIGs, and for a denial the NSEC they sign.
#[derive(Debug)]
pub struct Entry {
    key: Box<[u8]>,
    /// The NSEC record (denials only).
    pub nsec: Option<RRset>,
    /// The RRSIG records.
    pub sigs: RRset,
}

/// A worker's cache.
#[derive(Debug)]
pub struct Cache {
    generation: u64,
    slots: Vec<Option<Box<Entry>>>,
    /// Per slot: when it was last used (a counter), for replacement.
    used: Vec<u32>,
    clock: u32,
    held: usize,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

/// A key under construction, on the stack.
pub struct Key {
    buf: [u8; MAX_KEY],
    len: usize,
}

impl Key {
    /// A key of `kind` (the caller's own numbering) and record type.
    pub fn new(kind: u8, rtype: u16) -> Key {
        let mut k = Key {
            buf: [0; MAX_KEY],
            len: 3,
        };
        k.buf[0] = kind;
        k.buf[1..3].copy_from_slice(&rtype.to_be_bytes());
        k
    }

    /// Appends bytes; false (and nothing appended) when they do not fit.
    pub fn push(&mut self, b: &[u8]) -> bool {
        let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) else {
            return false;
        };
        dst.copy_from_slice(b);
        self.len += b.len();
        true
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Cache {
    /// An empty cache (its slots are allocated on first insert).
    pub fn new() -> Cache {
        Cache {
            generation: 0,
            slots: Vec::new(),
            used: Vec::new(),
            clock: 0,
            held: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// The first slot of the set `key` falls in.
    fn set(key: &[u8]) -> usize {
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        h.write(key);
        let sets = CAPACITY / WAYS;
        ((h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % sets) * WAYS
    }

    /// The entry for `key` made for signatures of `generation`; on a miss
    /// `make` makes it (`None`: it cannot be made, nothing is kept).
    pub fn get_or_make(
        &mut self,
        generation: u64,
        key: &Key,
        stats: &WorkerStats,
        make: impl FnOnce() -> Option<(Option<RRset>, RRset)>,
    ) -> Option<&Entry> {
        if self.generation != generation {
            self.slots.iter_mut().for_each(|s| *s = None);
            self.held = 0;
            stats.set_sig_cached(0);
            self.generation = generation;
        }
        if self.slots.is_empty() {
            self.slots.resize_with(CAPACITY, || None);
            self.used.resize(CAPACITY, 0);
        }
        self.clock = self.clock.wrapping_add(1);
        let key = key.as_bytes();
        let base = Self::set(key);
        let ways = base..base + WAYS;
        let hit = ways
            .clone()
            .find(|&i| self.slots[i].as_ref().is_some_and(|e| *e.key == *key));
        let i = match hit {
            Some(i) => i,
            None => {
                let (nsec, sigs) = make()?;
                // a free slot, else the one used least recently
                let victim = ways
                    .clone()
                    .find(|&i| self.slots[i].is_none())
                    .or_else(|| {
                        ways.clone()
                            .max_by_key(|&i| self.clock.wrapping_sub(self.used[i]))
                    })
                    .unwrap_or(base);
                if self.slots[victim].is_none() {
                    self.held += 1;
                    stats.set_sig_cached(self.held);
                }
                self.slots[victim] = Some(Box::new(Entry {
                    key: key.into(),
                    nsec,
                    sigs,
                }));
                victim
            }
        };
        self.used[i] = self.clock;
        self.slots[i].as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(n: u8) -> RRset {
        RRset {
            rtype: 46,
            count: 1,
            wire: vec![n].into_boxed_slice(),
            offsets: vec![0].into_boxed_slice(),
        }
    }

    #[test]
    fn makes_once_then_hits_and_a_new_generation_empties() {
        let mut c = Cache::new();
        let stats = crate::metrics::Metrics::new().worker(false);
        let mut k = Key::new(1, 1);
        assert!(k.push(b"\x03www\x00"));
        let mut made = 0;
        for _ in 0..3 {
            let e = c.get_or_make(7, &k, &stats, || {
                made += 1;
                Some((None, rr(1)))
            });
            assert_eq!(e.map(|e| e.sigs.wire[0]), Some(1));
        }
        assert_eq!(made, 1);
        assert_eq!(c.len(), 1);
        let e = c.get_or_make(8, &k, &stats, || Some((None, rr(2))));
        assert_eq!(e.map(|e| e.sigs.wire[0]), Some(2));
        assert_eq!(c.len(), 1);
        // a failure keeps nothing
        let k2 = Key::new(2, 1);
        assert!(c.get_or_make(8, &k2, &stats, || None).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn stays_bounded() {
        let mut c = Cache::new();
        let stats = crate::metrics::Metrics::new().worker(false);
        for i in 0..(CAPACITY * 3) as u32 {
            let mut k = Key::new(0, 1);
            assert!(k.push(&i.to_be_bytes()));
            assert!(
                c.get_or_make(1, &k, &stats, || Some((None, rr(0))))
                    .is_some()
            );
        }
        assert!(c.len() <= CAPACITY);
        assert!(c.len() > CAPACITY / 2);
    }

    #[test]
    fn a_working_set_smaller_than_the_cache_stays_whole() {
        let mut c = Cache::new();
        let stats = crate::metrics::Metrics::new().worker(false);
        let mut made = 0;
        // 2,000 names, asked for over and over: each is signed once
        for _ in 0..5 {
            for i in 0..2000u32 {
                let mut k = Key::new(2, 47);
                assert!(k.push(&i.to_be_bytes()));
                let e = c.get_or_make(1, &k, &stats, || {
                    made += 1;
                    Some((None, rr(0)))
                });
                assert!(e.is_some());
            }
        }
        assert!(made < 2000 + 100, "made {made} signatures for 2,000 names");
    }

    #[test]
    fn the_least_recently_used_way_goes() {
        let mut c = Cache::new();
        let stats = crate::metrics::Metrics::new().worker(false);
        // find WAYS + 1 keys of one set
        let mut same: Vec<Key> = Vec::new();
        let mut i = 0u32;
        let mut first = None;
        while same.len() < WAYS + 1 {
            let mut k = Key::new(0, 1);
            assert!(k.push(&i.to_be_bytes()));
            let s = Cache::set(k.as_bytes());
            if *first.get_or_insert(s) == s {
                same.push(k);
            }
            i += 1;
        }
        for k in &same[..WAYS] {
            assert!(
                c.get_or_make(1, k, &stats, || Some((None, rr(1))))
                    .is_some()
            );
        }
        // use the first again, then add a fifth: the second goes
        assert!(
            c.get_or_make(1, &same[0], &stats, || panic!("a hit"))
                .is_some()
        );
        assert!(
            c.get_or_make(1, &same[WAYS], &stats, || Some((None, rr(2))))
                .is_some()
        );
        assert!(
            c.get_or_make(1, &same[0], &stats, || panic!("still held"))
                .is_some()
        );
        let mut remade = false;
        let _ = c.get_or_make(1, &same[1], &stats, || {
            remade = true;
            Some((None, rr(3)))
        });
        assert!(remade, "the least recently used way was replaced");
    }

    #[test]
    fn a_key_too_long_is_refused() {
        let mut k = Key::new(0, 1);
        assert!(k.push(&[0; 255]));
        assert!(!k.push(&[0; MAX_KEY]));
        assert_eq!(k.as_bytes().len(), 258);
    }
}
