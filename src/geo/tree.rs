//! A GeoIP database compiled for one question: which class (for signpost,
//! which ordering of a service's regions) does an address get, and what is
//! the widest aligned network around it where every address gets the same?
//!
//! [`build`] walks the MaxMind DB's search tree once, classifies every
//! record, splits blocks at the boundaries of overlay networks (a service's
//! `map` CIDRs, the special-purpose ranges) and merges sibling blocks of
//! equal class bottom-up, like gdnsd does with its datacenter lists. The
//! result answers both questions with one walk of a small binary trie:
//! no record decoding and no distance computation per query, and ECS
//! scopes as wide as correctness allows.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{GeoDb, Location, special_prefix, special_ranges};

/// A child reference with this bit set is a leaf holding a class.
const LEAF: u32 = 1 << 31;

/// The compiled trie.
#[derive(Debug, Clone)]
pub struct GeoTree {
    nodes: Vec<[u32; 2]>,
    v4: u32,
    v6: u32,
}

impl GeoTree {
    /// The class of an address and the prefix length of the widest
    /// aligned network around it with that class (in the address's own
    /// family; IPv4-mapped IPv6 addresses are looked up as IPv4 and the
    /// prefix is reported in IPv6 terms).
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> (u32, u8) {
        let (bits, mut cur, extra) = match (ip, ip.to_canonical()) {
            (IpAddr::V6(_), IpAddr::V4(a)) => (u128::from(u32::from(a)) << 96, self.v4, 96),
            (_, IpAddr::V4(a)) => (u128::from(u32::from(a)) << 96, self.v4, 0),
            (_, IpAddr::V6(a)) => (u128::from(a), self.v6, 0),
        };
        let mut depth = 0u32;
        while cur & LEAF == 0 {
            let bit = ((bits >> (127 - depth.min(127))) & 1) as usize;
            // children always index into `nodes` (checked when built)
            cur = match self.nodes.get(cur as usize) {
                Some(n) => n[bit],
                None => return (0, 0),
            };
            depth += 1;
        }
        (cur & !LEAF, (depth + extra) as u8)
    }

    /// Number of inner nodes (for logs and tests).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the tree has no inner node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// Where a block is with respect to the overlays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Ctx {
    /// Most specific overlay containing the whole block.
    cover: Option<u32>,
    /// The block lies in a special-purpose range (no location).
    special: bool,
}

struct Overlay {
    bits: u128,
    len: u8,
    v4: bool,
    /// Index into the caller's overlays, or None for a special range.
    index: Option<u32>,
}

struct Builder<'a, F> {
    db: &'a GeoDb,
    buf: &'a [u8],
    node_count: u32,
    record_size: u16,
    overlays: Vec<Overlay>,
    classify: F,
    nodes: Vec<[u32; 2]>,
    memo: HashMap<(u32, Ctx), u32>,
    leaves: HashMap<(u32, Ctx), u32>,
    locations: HashMap<u32, Option<Location>>,
}

/// Compiles `db` for a classifier. `overlays` are networks the class may
/// depend on beyond the database record (e.g. `map` CIDRs); `classify`
/// gets the location of a block (`None`: unknown, special-purpose, or no
/// data) and the index of the most specific overlay containing it.
pub fn build(
    db: &GeoDb,
    overlays: &[IpNet],
    classify: impl FnMut(Option<&Location>, Option<u32>) -> u32,
) -> GeoTree {
    let md = db.reader.metadata();
    let mut ov: Vec<Overlay> = overlays
        .iter()
        .enumerate()
        .map(|(i, n)| overlay(n, Some(i as u32)))
        .collect();
    ov.extend(special_ranges().iter().map(|n| overlay(n, None)));
    // IPv4-mapped addresses are looked up in the IPv4 trie; in the IPv6
    // trie that alias of the IPv4 subtree is never used
    if let Ok(mapped) = "::ffff:0:0/96".parse::<IpNet>() {
        ov.push(overlay(&mapped, None));
    }
    let mut b = Builder {
        db,
        buf: db.raw.as_slice(),
        node_count: md.node_count,
        record_size: md.record_size,
        overlays: ov,
        classify,
        nodes: Vec::new(),
        memo: HashMap::new(),
        leaves: HashMap::new(),
        locations: HashMap::new(),
    };
    let root = 0u32;
    let (v4_start, v6) = if md.ip_version == 6 {
        // IPv4 lives under ::/96 in an IPv6 database
        let mut v = root;
        for _ in 0..96 {
            if v >= b.node_count {
                break;
            }
            v = b.child(v, 0);
        }
        let v6 = b.walk(root, 0, 0, false, None);
        (v, v6)
    } else {
        (root, b.walk(b.node_count, 0, 0, false, None))
    };
    let v4 = b.walk(v4_start, 0, 0, true, None);
    GeoTree {
        nodes: b.nodes,
        v4,
        v6,
    }
}

fn overlay(n: &IpNet, index: Option<u32>) -> Overlay {
    match n {
        IpNet::V4(n) => Overlay {
            bits: u128::from(u32::from(n.network())) << 96,
            len: n.prefix_len(),
            v4: true,
            index,
        },
        IpNet::V6(n) => Overlay {
            bits: u128::from(n.network()),
            len: n.prefix_len(),
            v4: false,
            index,
        },
    }
}

fn prefix_eq(a: u128, b: u128, len: u8) -> bool {
    len == 0 || (a ^ b) >> (128 - u32::from(len)) == 0
}

impl<F: FnMut(Option<&Location>, Option<u32>) -> u32> Builder<'_, F> {
    fn child(&self, node: u32, bit: usize) -> u32 {
        let n = node as usize;
        let b = self.buf;
        let get = |i: usize| -> u32 { b.get(i).copied().map_or(0, u32::from) };
        match self.record_size {
            24 => {
                let o = n * 6 + bit * 3;
                (get(o) << 16) | (get(o + 1) << 8) | get(o + 2)
            }
            28 => {
                let o = n * 7;
                if bit == 0 {
                    ((get(o + 3) & 0xf0) << 20) | (get(o) << 16) | (get(o + 1) << 8) | get(o + 2)
                } else {
                    ((get(o + 3) & 0x0f) << 24)
                        | (get(o + 4) << 16)
                        | (get(o + 5) << 8)
                        | get(o + 6)
                }
            }
            _ => {
                let o = n * 8 + bit * 4;
                (get(o) << 24) | (get(o + 1) << 16) | (get(o + 2) << 8) | get(o + 3)
            }
        }
    }

    /// Overlays relevant to the block: (any lies strictly inside, context).
    fn scan(&self, bits: u128, depth: u8, v4: bool, inherited: Option<Ctx>) -> (bool, Ctx) {
        if let Some(ctx) = inherited {
            return (false, ctx);
        }
        let mut inside = false;
        let mut ctx = Ctx {
            cover: None,
            special: false,
        };
        let mut cover_len = 0;
        for o in self.overlays.iter().filter(|o| o.v4 == v4) {
            if o.len > depth {
                if prefix_eq(o.bits, bits, depth) {
                    inside = true;
                }
            } else if prefix_eq(o.bits, bits, o.len) {
                match o.index {
                    None => ctx.special = true,
                    Some(i) if ctx.cover.is_none() || o.len >= cover_len => {
                        ctx.cover = Some(i);
                        cover_len = o.len;
                    }
                    Some(_) => {}
                }
            }
        }
        (inside, ctx)
    }

    /// Compiles the block `bits/depth` whose database record is `v`
    /// (a node, empty, or data). `clean` carries the context down once no
    /// overlay lies inside the block any more.
    fn walk(&mut self, v: u32, bits: u128, depth: u8, v4: bool, clean: Option<Ctx>) -> u32 {
        let width = if v4 { 32 } else { 128 };
        let (inside, ctx) = self.scan(bits, depth, v4, clean);
        let is_node = v < self.node_count;
        if !inside {
            if let Some(&r) = self.memo.get(&(v, ctx)) {
                return r;
            }
            if !is_node || depth >= width || ctx.special {
                let r = self.leaf(v, bits, v4, ctx);
                self.memo.insert((v, ctx), r);
                return r;
            }
        } else if depth >= width {
            return self.leaf(v, bits, v4, ctx);
        }
        let next = if inside { None } else { Some(ctx) };
        let (l, r) = if is_node {
            (self.child(v, 0), self.child(v, 1))
        } else {
            (v, v) // a leaf record split at an overlay boundary
        };
        let one = 1u128 << (127 - u32::from(depth));
        let a = self.walk(l, bits, depth + 1, v4, next);
        let b = self.walk(r, bits | one, depth + 1, v4, next);
        let res = if a == b && a & LEAF != 0 {
            a
        } else {
            self.nodes.push([a, b]);
            (self.nodes.len() - 1) as u32
        };
        if !inside {
            self.memo.insert((v, ctx), res);
        }
        res
    }

    fn leaf(&mut self, v: u32, bits: u128, v4: bool, ctx: Ctx) -> u32 {
        let data = v > self.node_count && !ctx.special;
        let key = (if data { v } else { 0 }, ctx);
        if let Some(&c) = self.leaves.get(&key) {
            return c;
        }
        let location = if data {
            self.location(v, bits, v4)
        } else {
            None
        };
        let class = (self.classify)(location.as_ref(), ctx.cover) & !LEAF;
        self.leaves.insert(key, LEAF | class);
        LEAF | class
    }

    /// Decodes the record `v` by looking up an address of the block (the
    /// reader then walks to the same record).
    fn location(&mut self, v: u32, bits: u128, v4: bool) -> Option<Location> {
        if let Some(l) = self.locations.get(&v) {
            return *l;
        }
        let ip = if v4 {
            IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(bits))
        };
        // special ranges are handled by the overlay; locate() would hide them
        let loc = if special_prefix(ip).is_some() {
            None
        } else {
            self.db.locate(ip).location
        };
        self.locations.insert(v, loc);
        loc
    }
}
