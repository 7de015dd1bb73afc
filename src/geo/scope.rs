//! Scope maps of many services at once, over the shared table
//! ([`GeoTable`]); what they mean is in `steer::GeoIndex`.
//!
//! A scope map has one bit per shallow node of the table (1.9 M on
//! GeoLite2-City): set when every location class below the node gives the
//! service one region order. Computed one service at a time (a pass over
//! the 3.5 M nodes each) and kept whole (237 kB each), 2,000 services over
//! 50 regions took 109 s on a busy two-core machine and 474 MB. Two things
//! make it cheap:
//!
//! - **One pass for [`LANES`] services.** Classes are first put in
//!   *groups* that every service of the run orders alike (the caller's
//!   business: 133,379 classes make about 28,000 groups over 50 regions);
//!   a [`ScopeTree`] is the shallow part of the table with its leaves
//!   relabelled to groups and each deep subtree replaced by the list of its
//!   groups. [`ScopeTree::uniform_lanes`] then walks the shallow nodes once
//!   per [`LANES`] services, each node a lane-wise compare of two small
//!   vectors, and hands out the bits 64 nodes at a time.
//! - **Each distinct word once.** Services that differ only a little have
//!   the same bits over most of the table (a 64-node word covers a few
//!   neighbouring networks, and only the services with regions on both
//!   sides of them tell those networks apart). A [`ScopeStore`] keeps, for
//!   each 64-node word position, the distinct words the services computed
//!   together have there, and each service keeps one index per position:
//!   none where every service has the same word, a byte where at most 256
//!   differ, else two bytes. With 2,000 services over 50 regions there are
//!   about 200 distinct words per position instead of 2,000.
//!
//! The answer path reads a bit with [`Uniform::uniform`]: a word position,
//! the service's index there, the word. [`GeoTable::lookup`] needs only a
//! few bits per query: uniformity only grows down a path, so it binary
//! searches the path's shallow nodes instead of testing each.

use std::sync::{Arc, Mutex};

use super::table::{GeoTable, LEAF};

/// Services computed by one pass over the table.
pub const LANES: usize = 32;

/// A lane's value where the classes below a node disagree (or a group
/// that is never uniform).
pub const MIXED: u16 = u16::MAX;

/// Most services one [`StoreBuilder`] takes (a word position's dictionary
/// is indexed by 16 bits).
pub const MAX_STORE_SERVICES: usize = u16::MAX as usize - 1;

/// Which shallow table nodes a service's scope map marks uniform. Down any
/// path from the root, a node below a uniform node is uniform.
pub trait Uniform {
    /// True when every class below shallow node `node` has the same value.
    fn uniform(&self, node: u32) -> bool;
}

/// A plain bitmap, one bit per shallow node (the one-service form).
impl Uniform for [u64] {
    #[inline]
    fn uniform(&self, node: u32) -> bool {
        self.get((node / 64) as usize)
            .is_some_and(|w| w & (1 << (node % 64)) != 0)
    }
}

/// Child tags in a [`ScopeTree`]: a group leaf, a deep subtree's group
/// list, or an inner shallow node (on the pass's stack).
const TAG: u32 = 3 << 30;
const GROUP: u32 = 0;
const LIST: u32 = 1 << 30;
const INNER: u32 = 2 << 30;

/// The shallow part of a table with its leaves relabelled to groups; the
/// input of [`ScopeTree::uniform_lanes`]. About 15 MB for GeoLite2-City,
/// kept only while a run of scope maps is computed.
pub struct ScopeTree {
    /// Per shallow node, in the table's order (post-order), its children.
    kids: Vec<[u32; 2]>,
    /// The group lists of deep subtrees, back to back.
    lists: Vec<u32>,
    /// Where each list starts in `lists` (one more entry at the end).
    starts: Vec<u32>,
}

impl ScopeTree {
    /// Relabels `table`'s leaves: class `c` is in group `group_of[c]`
    /// (a class without a group gets [`MIXED`] in every lane).
    pub fn new(table: &GeoTable, group_of: &[u32]) -> ScopeTree {
        let nodes = table.nodes();
        let m = table.shallow();
        let group = |r: u32| {
            group_of
                .get((r & !LEAF) as usize)
                .copied()
                .unwrap_or(u32::MAX)
        };
        // Deep nodes are in post-order too, each deep subtree a contiguous
        // run ending at its root: a stack of list starts gives each deep
        // root the sorted groups below it. Nothing deep pops a root, so
        // at the end the stack holds the roots' lists in order.
        let mut lists: Vec<u32> = Vec::new();
        let mut stack: Vec<(u32, usize)> = Vec::new(); // (node, start in lists)
        for (i, &[a, b]) in nodes.iter().enumerate().skip(m) {
            let start = match (a & LEAF != 0, b & LEAF != 0) {
                (true, true) => lists.len(),
                (true, false) | (false, true) => stack.pop().map_or(lists.len(), |(_, s)| s),
                (false, false) => {
                    stack.pop();
                    stack.pop().map_or(lists.len(), |(_, s)| s)
                }
            };
            for r in [a, b] {
                if r & LEAF != 0 {
                    lists.push(group(r));
                }
            }
            lists[start..].sort_unstable();
            let mut keep = start;
            for j in start..lists.len() {
                if j == start || lists[j] != lists[keep - 1] {
                    lists[keep] = lists[j];
                    keep += 1;
                }
            }
            lists.truncate(keep);
            stack.push((i as u32, start));
        }
        let roots: Vec<u32> = stack.iter().map(|&(n, _)| n).collect();
        let mut starts: Vec<u32> = stack.iter().map(|&(_, s)| s as u32).collect();
        starts.push(lists.len() as u32);
        let kid = |r: u32| -> u32 {
            if r & LEAF != 0 {
                GROUP | (group(r) & !TAG)
            } else if (r as usize) < m {
                INNER
            } else {
                // every deep child of a shallow node is a deep root
                roots
                    .binary_search(&r)
                    .map_or(GROUP | !TAG, |l| LIST | l as u32)
            }
        };
        let kids = nodes[..m].iter().map(|&[a, b]| [kid(a), kid(b)]).collect();
        ScopeTree {
            kids,
            lists,
            starts,
        }
    }

    /// Number of 64-node words of a scope map.
    pub fn words(&self) -> usize {
        self.kids.len().div_ceil(64)
    }

    /// One pass for up to [`LANES`] services: `values[g][l]` is lane `l`'s
    /// value for group `g` ([`MIXED`]: never uniform). For every 64 shallow
    /// nodes, in order, `emit(word, bits)` gets lane `l`'s uniform bits in
    /// `bits[l]` (bit `j` of word `w` is node `64 w + j`).
    pub fn uniform_lanes(
        &self,
        values: &[[u16; LANES]],
        mut emit: impl FnMut(usize, &[u64; LANES]),
    ) {
        const ALL_MIXED: [u16; LANES] = [MIXED; LANES];
        let value = |r: u32, stack: &mut Vec<[u16; LANES]>| -> [u16; LANES] {
            let at = (r & !TAG) as usize;
            match r & TAG {
                GROUP => values.get(at).copied().unwrap_or(ALL_MIXED),
                LIST => {
                    let (s, e) = match (self.starts.get(at), self.starts.get(at + 1)) {
                        (Some(&s), Some(&e)) => (s as usize, e as usize),
                        _ => return ALL_MIXED,
                    };
                    let mut v: Option<[u16; LANES]> = None;
                    for &g in self.lists.get(s..e).unwrap_or(&[]) {
                        let x = values.get(g as usize).copied().unwrap_or(ALL_MIXED);
                        v = Some(match v {
                            None => x,
                            Some(v) => join(&v, &x),
                        });
                    }
                    v.unwrap_or(ALL_MIXED)
                }
                _ => stack.pop().unwrap_or(ALL_MIXED),
            }
        };
        let mut stack: Vec<[u16; LANES]> = Vec::with_capacity(256);
        let mut rows = [0u64; 64];
        let n = self.kids.len();
        for (i, &[a, b]) in self.kids.iter().enumerate() {
            // inner children are the top of the stack, right above left
            let y = value(b, &mut stack);
            let x = value(a, &mut stack);
            let v = join(&x, &y);
            rows[i % 64] = lane_mask(&v);
            stack.push(v);
            if i % 64 == 63 || i + 1 == n {
                transpose(&mut rows);
                let mut bits = [0u64; LANES];
                bits.copy_from_slice(&rows[..LANES]);
                emit(i / 64, &bits);
                rows = [0; 64];
            }
        }
    }
}

/// Lane-wise: the value where both agree, else [`MIXED`].
#[inline]
fn join(x: &[u16; LANES], y: &[u16; LANES]) -> [u16; LANES] {
    let mut out = [0u16; LANES];
    for l in 0..LANES {
        out[l] = if x[l] == y[l] { x[l] } else { MIXED };
    }
    out
}

/// Bit `l` set when lane `l` is uniform.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn lane_mask(v: &[u16; LANES]) -> u64 {
    let mut m = 0u64;
    for (l, &x) in v.iter().enumerate() {
        m |= u64::from(x != MIXED) << l;
    }
    m
}

/// Bit `l` set when lane `l` is uniform: SSE2 (every x86-64 has it)
/// compares eight lanes at a time and packs the results into a byte
/// mask, where the portable loop shifts lane by lane.
#[cfg(target_arch = "x86_64")]
#[inline]
fn lane_mask(v: &[u16; LANES]) -> u64 {
    // SAFETY: SSE2 is part of every x86-64 (the target's baseline)
    unsafe { lane_mask_sse2(v) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn lane_mask_sse2(v: &[u16; LANES]) -> u64 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi16, _mm_movemask_epi8, _mm_packs_epi16, _mm_set_epi16, _mm_set1_epi16,
    };
    let mixed = _mm_set1_epi16(-1);
    let eight = |i: usize| {
        let x = |j: usize| v[i + j] as i16;
        _mm_cmpeq_epi16(
            _mm_set_epi16(x(7), x(6), x(5), x(4), x(3), x(2), x(1), x(0)),
            mixed,
        )
    };
    let mut m = 0u64;
    for (k, i) in [0, 16].into_iter().enumerate() {
        let bytes = _mm_packs_epi16(eight(i), eight(i + 8));
        m |= u64::from(!(_mm_movemask_epi8(bytes) as u32) & 0xffff) << (16 * k);
    }
    m
}

/// Transposes a 64 x 64 bit matrix in place (row `r`, bit `c` becomes row
/// `c`, bit `r`): six rounds of block swaps (Hacker's Delight 7-3).
fn transpose(a: &mut [u64; 64]) {
    let mut j = 32;
    let mut m: u64 = 0x0000_0000_ffff_ffff;
    while j != 0 {
        let mut k = 0;
        while k < 64 {
            let t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k] ^= t << j;
            a[k + j] ^= t;
            k = (k + j + 1) & !j;
        }
        j >>= 1;
        m ^= m << j;
    }
}

/// Index widths of a word position (top two bits of its index offset).
const WIDTH: u32 = 3 << 30;
const ONE: u32 = 1 << 30;
const TWO: u32 = 2 << 30;

/// The scope maps of services computed together: each distinct word of a
/// position once, and per service an index per position (see the module
/// doc). Shared by those services' indexes; freed with the last of them.
pub struct ScopeStore {
    /// Per word position: where its distinct words start in `words`, and
    /// where a service's index of it starts in that service's index bytes
    /// with the index width (none, one byte, two bytes) in the top bits.
    slots: Box<[[u32; 2]]>,
    /// Every position's distinct words, back to back.
    words: Box<[u64]>,
}

impl std::fmt::Debug for ScopeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeStore")
            .field("positions", &self.slots.len())
            .field("words", &self.words.len())
            .finish()
    }
}

/// One service's scope map: a bitmap of its own (a map computed alone),
/// or its index into the [`ScopeStore`] of the maps computed with it.
pub enum ScopeBits {
    /// One bit per shallow node.
    Own(Box<[u64]>),
    /// A word index per position into a shared store.
    Shared {
        /// The store.
        store: Arc<ScopeStore>,
        /// The service's index bytes.
        index: Box<[u8]>,
    },
}

impl Uniform for ScopeBits {
    #[inline]
    fn uniform(&self, node: u32) -> bool {
        match self {
            ScopeBits::Own(bits) => bits[..].uniform(node),
            ScopeBits::Shared { store, index } => store.uniform(index, node),
        }
    }
}

impl ScopeStore {
    /// The bit of `node` in the map whose index bytes are `index`.
    #[inline]
    fn uniform(&self, index: &[u8], node: u32) -> bool {
        let Some(&[first, at]) = self.slots.get((node / 64) as usize) else {
            return false;
        };
        let i = (at & !WIDTH) as usize;
        let k = match at & WIDTH {
            0 => 0,
            ONE => match index.get(i) {
                Some(&b) => usize::from(b),
                None => return false,
            },
            _ => match index.get(i..i + 2) {
                Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
                _ => return false,
            },
        };
        self.words
            .get(first as usize + k)
            .is_some_and(|w| w & (1 << (node % 64)) != 0)
    }
}

/// The distinct words of one position and an open-addressing table over
/// them (slot = word number + 1, 0 = empty).
#[derive(Default)]
struct Dict {
    words: Vec<u64>,
    slots: Vec<u16>,
}

impl Dict {
    fn insert(&mut self, w: u64) -> u16 {
        if (self.words.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut s = Self::hash(w) & mask;
        loop {
            match self.slots[s] {
                0 => {
                    self.words.push(w);
                    let k = self.words.len() as u16;
                    self.slots[s] = k;
                    return k - 1;
                }
                k if self.words[usize::from(k) - 1] == w => return k - 1,
                _ => s = (s + 1) & mask,
            }
        }
    }

    fn hash(w: u64) -> usize {
        (w.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(4);
        let mut slots = vec![0u16; cap];
        for (k, &w) in self.words.iter().enumerate() {
            let mut s = Self::hash(w) & (cap - 1);
            while slots[s] != 0 {
                s = (s + 1) & (cap - 1);
            }
            slots[s] = k as u16 + 1;
        }
        self.slots = slots;
    }
}

/// Word positions per shard of a [`StoreBuilder`]: passes finished on
/// different threads fill different shards at the same time.
const SHARD: usize = 1024;

/// The dictionaries of one run of positions, and each service's word
/// numbers there.
struct Shard {
    dicts: Vec<Dict>,
    /// Per service, its word number at each position of the shard.
    index: Vec<Vec<u16>>,
}

/// Gathers the words of up to [`MAX_STORE_SERVICES`] services into a
/// [`ScopeStore`]; passes may add their words from several threads.
pub struct StoreBuilder {
    services: usize,
    shards: Vec<Mutex<Shard>>,
}

impl StoreBuilder {
    /// A builder for `services` maps of `words` words each.
    pub fn new(services: usize, words: usize) -> StoreBuilder {
        let services = services.min(MAX_STORE_SERVICES);
        let shards = (0..words)
            .step_by(SHARD)
            .map(|lo| {
                let n = SHARD.min(words - lo);
                Mutex::new(Shard {
                    dicts: (0..n).map(|_| Dict::default()).collect(),
                    index: (0..services).map(|_| vec![0; n]).collect(),
                })
            })
            .collect();
        StoreBuilder { services, shards }
    }

    /// One pass's words: `bits[w][l]` is word `w` of the map of service
    /// `first + l`, for the first `lanes` lanes. Threads adding at once
    /// should start at different shards (`from`).
    pub fn add_pass(&self, first: usize, lanes: usize, bits: &[[u64; LANES]], from: usize) {
        let n = self.shards.len();
        for j in 0..n {
            let s = (from + j) % n;
            let Ok(mut shard) = self.shards[s].lock() else {
                continue; // a thread panicked: this run's maps are not used
            };
            let Shard { dicts, index } = &mut *shard;
            let words = bits.get(s * SHARD..).unwrap_or(&[]);
            for (p, (d, w)) in dicts.iter_mut().zip(words).enumerate() {
                let mut last = None;
                for (l, &b) in w.iter().enumerate().take(lanes) {
                    // neighbouring lanes often agree: one probe for them
                    let k = match last {
                        Some((lb, k)) if lb == b => k,
                        _ => d.insert(b),
                    };
                    last = Some((b, k));
                    if let Some(slot) = index.get_mut(first + l).and_then(|ix| ix.get_mut(p)) {
                        *slot = k;
                    }
                }
            }
        }
    }

    /// Shards, for spreading threads over them.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The store and each service's index bytes, in service order.
    pub fn finish(self) -> (ScopeStore, Vec<Box<[u8]>>) {
        let shards: Vec<Shard> = self
            .shards
            .into_iter()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let positions: usize = shards.iter().map(|s| s.dicts.len()).sum();
        let mut slots = Vec::with_capacity(positions);
        let total: usize = shards
            .iter()
            .flat_map(|s| s.dicts.iter().map(|d| d.words.len()))
            .sum();
        let mut words = Vec::with_capacity(total);
        let mut bytes = 0u32;
        for d in shards.iter().flat_map(|s| &s.dicts) {
            let width = match d.words.len() {
                0 | 1 => 0,
                2..=256 => ONE,
                _ => TWO,
            };
            slots.push([words.len() as u32, bytes | width]);
            words.extend_from_slice(&d.words);
            bytes += width >> 30;
        }
        let mut index: Vec<Vec<u8>> = (0..self.services)
            .map(|_| vec![0u8; bytes as usize])
            .collect();
        let mut at = 0;
        for shard in shards {
            let n = shard.dicts.len();
            drop(shard.dicts);
            let here = slots.get(at..at + n).unwrap_or(&[]);
            for (out, ix) in index.iter_mut().zip(shard.index) {
                for (&[_, slot], &k) in here.iter().zip(&ix) {
                    let i = (slot & !WIDTH) as usize;
                    match slot & WIDTH {
                        ONE => out[i] = k as u8,
                        TWO => out[i..i + 2].copy_from_slice(&k.to_le_bytes()),
                        _ => {}
                    }
                }
            }
            at += n;
        }
        (
            ScopeStore {
                slots: slots.into_boxed_slice(),
                words: words.into_boxed_slice(),
            },
            index.into_iter().map(Vec::into_boxed_slice).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_is_a_transpose() {
        let mut a = [0u64; 64];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for r in a.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *r = x;
        }
        let orig = a;
        transpose(&mut a);
        for (r, row) in orig.iter().enumerate() {
            for (c, col) in a.iter().enumerate() {
                assert_eq!((col >> r) & 1, (row >> c) & 1, "row {r} col {c}");
            }
        }
    }

    #[test]
    fn a_table_without_shallow_nodes_still_gives_each_service_a_map() {
        let (store, index) = StoreBuilder::new(3, 0).finish();
        assert_eq!(index.len(), 3);
        let bits = ScopeBits::Shared {
            store: Arc::new(store),
            index: index.into_iter().next().unwrap(),
        };
        assert!(!bits.uniform(0));
    }

    #[test]
    fn a_store_gives_back_every_word() {
        // 300 services over 1,100 positions (two shards) with one word in
        // some positions, a few in others and a word per service in the
        // rest: every index width is used
        let (services, positions) = (300, 1100);
        let word = |s: usize, p: usize| -> u64 {
            match p % 3 {
                0 => 0xffff,
                1 => (s % 7) as u64 * 0x1234_5678,
                _ => (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ p as u64,
            }
        };
        let b = StoreBuilder::new(services, positions);
        assert_eq!(b.shards(), 2);
        for first in (0..services).step_by(LANES) {
            let lanes = LANES.min(services - first);
            let bits: Vec<[u64; LANES]> = (0..positions)
                .map(|p| std::array::from_fn(|l| word(first + l, p)))
                .collect();
            b.add_pass(first, lanes, &bits, first);
        }
        let (store, index) = b.finish();
        let store = Arc::new(store);
        let count = |r: usize| (0..positions).filter(|p| p % 3 == r).count();
        for (s, ix) in index.into_iter().enumerate() {
            // positions with one word cost no index bytes
            assert_eq!(ix.len(), count(1) + 2 * count(2));
            let bits = ScopeBits::Shared {
                store: store.clone(),
                index: ix,
            };
            for p in 0..positions {
                for j in [0, 1, 5, 31, 32, 62, 63] {
                    let node = (p * 64 + j) as u32;
                    assert_eq!(
                        bits.uniform(node),
                        word(s, p) >> j & 1 == 1,
                        "service {s} node {node}"
                    );
                }
            }
            assert!(!bits.uniform((positions * 64) as u32), "past the end");
        }
    }
}
