//! A GeoIP database compiled once per file, shared by every service:
//! a binary trie from address to *location class* (one class per distinct
//! country, continent and coordinates; class 0 = unknown location).
//!
//! [`GeoTable::compile`] walks the MaxMind DB's search tree once, decodes
//! each data record once, splits blocks at the special-purpose ranges
//! (which never have a location) and merges sibling blocks of equal class
//! bottom-up. A lookup is one walk of a small array of `[u32; 2]` nodes: no
//! record decoding per query.
//!
//! What a class *means* for a service (its order of regions) is the
//! service's business (`steer::GeoIndex`). For ECS scopes as wide as that
//! service's answers allow, a service keeps one bit per *shallow* node
//! (depth at most [`SHALLOW_V4`] / [`SHALLOW_V6`]): set when every class
//! below the node gives the service the same order. Shallow nodes come
//! first in the node array, so those bits are a dense bitmap; below that
//! depth a scope is the class block's own prefix.
//!
//! The IPv4 tree is aliased inside the IPv6 tree of a MaxMind DB
//! (`::ffff:0:0/96`, and often 6to4 `2002::/16` and Teredo `2001::/32`).
//! Those aliases are not compiled twice: a lookup of an address inside one
//! continues in the IPv4 trie, with the prefix counted in IPv6 terms. So
//! the compiled structure is a tree and every node has one depth.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustc_hash::FxHashMap;

use super::scope::Uniform;
use super::{GeoDb, GeoError, Location, special_ranges};

/// A child reference with this bit set is a leaf holding a class.
pub(super) const LEAF: u32 = 1 << 31;
/// During the build: a reference into the deep node list.
const DEEP: u32 = 1 << 30;
/// Most nodes a compiled table may hold (references keep two flag bits).
const MAX_NODES: usize = (DEEP - 1) as usize;

/// Most IPv6 aliases of the IPv4 tree followed (MaxMind DBs have three);
/// a database with more gets the rest compiled in place.
const MAX_ALIASES: usize = 8;

/// IPv4 nodes at most this deep carry per-service scope bits. Resolvers
/// send /24 source prefixes: a scope between /23 and /24 would let one
/// cache entry serve at most two of them, and the bits of those levels
/// would be more than half of every service's scope map (GeoLite2-City:
/// 1.5 M nodes down to /22, 2.3 M down to /24).
pub const SHALLOW_V4: u8 = 22;
/// IPv6 nodes at most this deep carry per-service scope bits (resolvers
/// send /56; /48 is the usual site allocation).
pub const SHALLOW_V6: u8 = 48;

/// Most shallow nodes on one path from a root.
const SHALLOW_PATH: usize = SHALLOW_V6 as usize + 1;

/// Class of every address without a location (special-purpose ranges,
/// networks without data, unlisted addresses).
pub const UNKNOWN: u32 = 0;

/// Which file a table was compiled from, to tell when it changed on disk
/// (`geoipupdate` renames a new file into place; `cp` rewrites in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub len: u64,
    /// Modification time (nanoseconds since the epoch).
    pub mtime: i128,
}

impl FileId {
    /// Reads the identity of a file.
    pub fn of(path: &Path) -> std::io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        Ok(FileId {
            dev: m.dev(),
            ino: m.ino(),
            len: m.len(),
            mtime,
        })
    }
}

/// Where a table came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The file, resolved.
    pub path: PathBuf,
    /// The file as the operator wrote it (for messages).
    pub display: String,
    /// Its identity when it was read (`None` for in-memory databases).
    pub id: Option<FileId>,
    /// `database_type` from the metadata.
    pub kind: String,
    /// Build time from the metadata (Unix seconds).
    pub build_epoch: u64,
}

/// One address's place in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Location class.
    pub class: u32,
    /// Prefix of the class block around the address (the widest aligned
    /// network with this class), in the address's own family.
    pub prefix: u8,
    /// Prefix of the widest aligned network that the caller's scope bits
    /// mark uniform (equal to `prefix` when none is).
    pub uniform: u8,
}

/// A compiled GeoIP database.
pub struct GeoTable {
    /// Inner nodes; `[0, shallow)` are the shallow ones.
    nodes: Box<[[u32; 2]]>,
    /// Number of shallow nodes.
    shallow: u32,
    /// Root references.
    v4: u32,
    v6: u32,
    /// IPv6 networks that alias the IPv4 tree: (network bits, prefix).
    aliases: Vec<(u128, u8)>,
    /// Class -> location; class 0 is `None`.
    classes: Box<[Option<Location>]>,
    /// Where it came from.
    pub source: Source,
}

impl std::fmt::Debug for GeoTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoTable")
            .field("source", &self.source.display)
            .field("nodes", &self.nodes.len())
            .field("shallow", &self.shallow)
            .field("classes", &self.classes.len())
            .finish()
    }
}

impl GeoTable {
    /// Opens and compiles a database file.
    pub fn open(path: &Path, display: &str) -> Result<GeoTable, GeoError> {
        let id = FileId::of(path).map_err(|source| GeoError::Read {
            path: display.to_string(),
            source,
        })?;
        let db = GeoDb::open(path, display)?;
        let mut t = GeoTable::compile(&db)?;
        t.source.path = path.to_path_buf();
        // the identity read before the contents: a file replaced meanwhile
        // shows up as changed at the next check, never the reverse
        t.source.id = Some(id);
        Ok(t)
    }

    /// Compiles an opened database.
    pub fn compile(db: &GeoDb) -> Result<GeoTable, GeoError> {
        Builder::new(db).build()
    }

    /// Number of inner nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the table has no inner node (one class everywhere).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of shallow nodes (the length of a service's scope bitmap).
    pub fn shallow(&self) -> usize {
        self.shallow as usize
    }

    /// The inner nodes, shallow ones first, each in post-order.
    pub(super) fn nodes(&self) -> &[[u32; 2]] {
        &self.nodes
    }

    /// Number of location classes (class 0 included).
    pub fn class_count(&self) -> usize {
        self.classes.len()
    }

    /// The location of a class (`None` for unknown).
    #[inline]
    pub fn location(&self, class: u32) -> Option<&Location> {
        self.classes.get(class as usize).and_then(Option::as_ref)
    }

    /// Every class's location, class 0 first.
    pub fn locations(&self) -> &[Option<Location>] {
        &self.classes
    }

    /// Bytes held (nodes and classes), for logs and metrics.
    pub fn heap_bytes(&self) -> usize {
        self.nodes.len() * 8 + self.classes.len() * std::mem::size_of::<Option<Location>>()
    }

    /// The class of an address and its block prefix; with `scope` (a
    /// service's scope map over the shallow nodes), also the prefix of
    /// the widest block the map marks uniform.
    #[inline]
    pub fn lookup<U: Uniform + ?Sized>(&self, ip: IpAddr, scope: Option<&U>) -> Hit {
        let (addr, mut cur, extra) = self.start(ip);
        let mut depth = 0u32;
        // the shallow nodes on the way down: path[d] is at depth d
        let mut path = [0u32; SHALLOW_PATH];
        let mut len = 0;
        while cur & LEAF == 0 {
            if cur < self.shallow && len < SHALLOW_PATH {
                path[len] = cur;
                len += 1;
            }
            let bit = ((addr >> (127 - depth.min(127))) & 1) as usize;
            // children always index into `nodes` (checked when built)
            cur = match self.nodes.get(cur as usize) {
                Some(n) => n[bit],
                None => return Hit::default(),
            };
            depth += 1;
        }
        let prefix = (depth + extra) as u8;
        // below a uniform node every node is uniform: the first uniform
        // node of the path by binary search, a few bits per query
        let uniform = scope.and_then(|s| {
            let (mut lo, mut hi) = (0, len);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if s.uniform(path[mid]) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            (lo < len).then_some(lo as u32)
        });
        Hit {
            class: cur & !LEAF,
            prefix,
            uniform: uniform.map_or(prefix, |u| (u + extra) as u8),
        }
    }

    /// Where a lookup starts: the address bits left-aligned in a u128, the
    /// root, and the prefix bits the walk does not count (an IPv6 address
    /// looked up in the IPv4 trie).
    #[inline]
    fn start(&self, ip: IpAddr) -> (u128, u32, u32) {
        match ip {
            IpAddr::V4(a) => (u128::from(u32::from(a)) << 96, self.v4, 0),
            IpAddr::V6(a) => {
                let bits = u128::from(a);
                if let Some(v4) = a.to_ipv4_mapped() {
                    return (u128::from(u32::from(v4)) << 96, self.v4, 96);
                }
                for &(net, len) in &self.aliases {
                    if (bits ^ net) >> (128 - u32::from(len)) == 0 {
                        let v4 = (bits << len) >> 96;
                        return (v4 << 96, self.v4, u32::from(len));
                    }
                }
                (bits, self.v6, 0)
            }
        }
    }

    /// A service's scope bitmap: bit `i` is set when every class below
    /// shallow node `i` has the same `value` (`u32::MAX` = no value, never
    /// uniform). One pass over the nodes, children before parents. The
    /// one-service form, kept as the reference that `geo::scope`'s
    /// batched passes are tested against.
    pub fn uniform_bits(&self, value: &[u32]) -> Box<[u64]> {
        // order ids fit 16 bits for any service of up to 64 regions in
        // practice; more distinct orders than that count as mixed
        const MIXED: u16 = u16::MAX;
        let value: Vec<u16> = value
            .iter()
            .map(|&v| u16::try_from(v).unwrap_or(MIXED))
            .collect();
        let leaf = |r: u32| value.get((r & !LEAF) as usize).copied().unwrap_or(MIXED);
        let join = |x: u16, y: u16| if x == y { x } else { MIXED };
        let n = self.nodes.len();
        let m = self.shallow as usize;
        // Both parts are in post-order, so a stack of finished subtrees
        // replaces random reads of child values: a node's inner children
        // are the top of the stack (right above left). Deep subtrees hang
        // below shallow nodes, so their values are kept by index.
        let mut stack: Vec<u16> = Vec::with_capacity(256);
        let mut deep = vec![MIXED; n - m];
        for i in m..n {
            let [a, b] = self.nodes[i];
            let y = if b & LEAF != 0 {
                leaf(b)
            } else {
                stack.pop().unwrap_or(MIXED)
            };
            let x = if a & LEAF != 0 {
                leaf(a)
            } else {
                stack.pop().unwrap_or(MIXED)
            };
            let v = join(x, y);
            deep[i - m] = v;
            stack.push(v);
        }
        stack.clear();
        let mut bits = vec![0u64; m.div_ceil(64)].into_boxed_slice();
        let child = |r: u32, stack: &mut Vec<u16>| -> u16 {
            if r & LEAF != 0 {
                leaf(r)
            } else if (r as usize) >= m {
                deep.get(r as usize - m).copied().unwrap_or(MIXED)
            } else {
                stack.pop().unwrap_or(MIXED)
            }
        };
        for i in 0..m {
            let [a, b] = self.nodes[i];
            let y = child(b, &mut stack);
            let x = child(a, &mut stack);
            let v = join(x, y);
            if v != MIXED {
                bits[i / 64] |= 1 << (i % 64);
            }
            stack.push(v);
        }
        bits
    }

    /// The class of each root-to-leaf block, in address order, as
    /// (network bits, prefix, v4, class); for tests.
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> Vec<(u128, u8, bool, u32)> {
        let mut out = Vec::new();
        for (root, v4) in [(self.v4, true), (self.v6, false)] {
            let mut stack = vec![(root, 0u128, 0u8)];
            while let Some((r, bits, depth)) = stack.pop() {
                if r & LEAF != 0 {
                    out.push((bits, depth, v4, r & !LEAF));
                    continue;
                }
                let [a, b] = self.nodes[r as usize];
                let one = 1u128 << (127 - u32::from(depth));
                stack.push((b, bits | one, depth + 1));
                stack.push((a, bits, depth + 1));
            }
        }
        out
    }
}

impl Default for Hit {
    fn default() -> Self {
        Hit {
            class: UNKNOWN,
            prefix: 0,
            uniform: 0,
        }
    }
}

/// The class key: what makes two locations the same for every service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClassKey {
    coords: Option<(u64, u64)>,
    country: [u8; 2],
    continent: [u8; 2],
}

/// A special-purpose range in one family, left-aligned.
#[derive(Clone, Copy)]
struct Special {
    bits: u128,
    len: u8,
}

struct Builder<'a> {
    db: &'a GeoDb,
    buf: &'a [u8],
    node_count: u32,
    record_size: u16,
    specials_v4: Vec<Special>,
    specials_v6: Vec<Special>,
    /// The MaxMind node at `::/96` (an IPv6 database's IPv4 tree).
    v4_root: Option<u32>,
    aliases: Vec<(u128, u8)>,
    shallow: Vec<[u32; 2]>,
    deep: Vec<[u32; 2]>,
    record_class: FxHashMap<u32, u32>,
    class_ids: FxHashMap<ClassKey, u32>,
    classes: Vec<Option<Location>>,
    error: Option<GeoError>,
}

fn special(n: &ipnet::IpNet) -> (bool, Special) {
    match n {
        ipnet::IpNet::V4(n) => (
            true,
            Special {
                bits: u128::from(u32::from(n.network())) << 96,
                len: n.prefix_len(),
            },
        ),
        ipnet::IpNet::V6(n) => (
            false,
            Special {
                bits: u128::from(n.network()),
                len: n.prefix_len(),
            },
        ),
    }
}

fn prefix_eq(a: u128, b: u128, len: u8) -> bool {
    len == 0 || (a ^ b) >> (128 - u32::from(len)) == 0
}

impl<'a> Builder<'a> {
    fn new(db: &'a GeoDb) -> Builder<'a> {
        let md = db.reader.metadata();
        let reserve = (md.node_count as usize).min(db.raw.len() / 6);
        let mut specials_v4 = Vec::new();
        let mut specials_v6 = Vec::new();
        for n in special_ranges() {
            match special(n) {
                (true, s) => specials_v4.push(s),
                (false, s) => specials_v6.push(s),
            }
        }
        // IPv4-mapped addresses are looked up in the IPv4 trie; in the
        // IPv6 trie that alias is never reached
        specials_v6.push(Special {
            bits: 0xffff_u128 << 32,
            len: 96,
        });
        Builder {
            db,
            buf: db.raw.as_slice(),
            node_count: md.node_count,
            record_size: md.record_size,
            specials_v4,
            specials_v6,
            v4_root: None,
            aliases: Vec::new(),
            // reserved, not touched: the vectors never double (and copy)
            // while they grow; the unused tail is given back at the end.
            // A search tree node takes at least 6 bytes of the file.
            shallow: Vec::with_capacity(reserve),
            deep: Vec::with_capacity(reserve / 2),
            record_class: FxHashMap::default(),
            class_ids: FxHashMap::default(),
            classes: vec![None],
            error: None,
        }
    }

    fn invalid(&self, reason: String) -> GeoError {
        GeoError::Invalid {
            path: self.db.path.clone(),
            reason,
        }
    }

    fn build(mut self) -> Result<GeoTable, GeoError> {
        let md = self.db.reader.metadata();
        if !matches!(self.record_size, 24 | 28 | 32) {
            return Err(self.invalid(format!("record size {}", self.record_size)));
        }
        let tree_bytes = u64::from(self.node_count) * u64::from(self.record_size) / 4;
        if tree_bytes > self.buf.len() as u64 {
            return Err(self.invalid(format!(
                "the search tree ({} nodes) is longer than the file",
                self.node_count
            )));
        }
        let (v4_start, v6) = if md.ip_version == 6 {
            // IPv4 lives under ::/96 in an IPv6 database
            let mut v = 0u32;
            for _ in 0..96 {
                if v >= self.node_count {
                    break;
                }
                v = self.child(v, 0);
            }
            if v < self.node_count {
                self.v4_root = Some(v);
            }
            let v6 = self.walk(0, 0, 0, false, false);
            (v, v6)
        } else {
            (0, self.walk(self.node_count, 0, 0, false, false))
        };
        let v4 = self.walk(v4_start, 0, 0, true, false);
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.shallow.len() + self.deep.len() > MAX_NODES {
            return Err(self.invalid("too many networks".into()));
        }
        // shallow nodes first, then deep ones
        let m = self.shallow.len() as u32;
        let fix = |r: u32| -> u32 {
            if r & LEAF != 0 {
                r
            } else if r & DEEP != 0 {
                m + (r & !DEEP)
            } else {
                r
            }
        };
        // large vectors grow in place (mremap): no second copy
        let mut nodes = self.shallow;
        nodes.append(&mut self.deep);
        drop(self.deep);
        for n in &mut nodes {
            *n = [fix(n[0]), fix(n[1])];
        }
        Ok(GeoTable {
            nodes: nodes.into_boxed_slice(),
            shallow: m,
            v4: fix(v4),
            v6: fix(v6),
            aliases: self.aliases,
            classes: self.classes.into_boxed_slice(),
            source: Source {
                path: PathBuf::from(&self.db.path),
                display: self.db.path.clone(),
                id: None,
                kind: self.db.kind.clone(),
                build_epoch: self.db.build_epoch,
            },
        })
    }

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

    /// Compiles the block `bits/depth` whose database record is `v` (a
    /// node, empty, or data). `clean`: no special range lies inside the
    /// block (so none can cover or split it further down).
    fn walk(&mut self, v: u32, bits: u128, depth: u8, v4: bool, clean: bool) -> u32 {
        let width = if v4 { 32 } else { 128 };
        let mut inside = false;
        if !clean {
            let specials = if v4 {
                &self.specials_v4
            } else {
                &self.specials_v6
            };
            for s in specials {
                if s.len <= depth {
                    if prefix_eq(s.bits, bits, s.len) {
                        return LEAF | UNKNOWN;
                    }
                } else if prefix_eq(s.bits, bits, depth) {
                    inside = true;
                }
            }
        }
        let is_node = v < self.node_count;
        if !v4
            && depth > 0
            && is_node
            && Some(v) == self.v4_root
            && self.aliases.len() < MAX_ALIASES
        {
            // an alias of the IPv4 tree: lookups continue there
            self.aliases.push((bits, depth));
            return LEAF | UNKNOWN;
        }
        if depth >= width || (!is_node && !inside) {
            return self.leaf(v, bits, v4);
        }
        let (l, r) = if is_node {
            (self.child(v, 0), self.child(v, 1))
        } else {
            (v, v) // a leaf record split at a special range's boundary
        };
        let one = 1u128 << (127 - u32::from(depth));
        let a = self.walk(l, bits, depth + 1, v4, !inside);
        let b = self.walk(r, bits | one, depth + 1, v4, !inside);
        if a == b && a & LEAF != 0 {
            return a;
        }
        let shallow = depth <= if v4 { SHALLOW_V4 } else { SHALLOW_V6 };
        if shallow {
            self.shallow.push([a, b]);
            (self.shallow.len() - 1) as u32
        } else {
            self.deep.push([a, b]);
            DEEP | (self.deep.len() - 1) as u32
        }
    }

    fn leaf(&mut self, v: u32, bits: u128, v4: bool) -> u32 {
        if v <= self.node_count {
            return LEAF | UNKNOWN; // no data
        }
        if let Some(&c) = self.record_class.get(&v) {
            return LEAF | c;
        }
        let ip = if v4 {
            IpAddr::V4(Ipv4Addr::from((bits >> 96) as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(bits))
        };
        let class = match self.db.decode(ip) {
            Ok(None) => UNKNOWN,
            Ok(Some(loc)) => {
                let key = ClassKey {
                    coords: loc.coords.map(|(a, b)| (a.to_bits(), b.to_bits())),
                    country: loc.country,
                    continent: loc.continent,
                };
                let next = self.classes.len() as u32;
                let c = *self.class_ids.entry(key).or_insert(next);
                if c == next {
                    self.classes.push(Some(loc));
                }
                c
            }
            Err(reason) => {
                if self.error.is_none() {
                    self.error = Some(self.invalid(format!("the record of {ip}: {reason}")));
                }
                UNKNOWN
            }
        };
        self.record_class.insert(v, class);
        LEAF | class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> GeoTable {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo-city.mmdb");
        GeoTable::open(Path::new(path), path).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Every address gets the location its own record has.
    #[test]
    fn classes_agree_with_decoded_records() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo-city.mmdb");
        let db = GeoDb::open(Path::new(path), path).unwrap();
        let t = demo();
        // splitmix64: reproducible addresses without the answer path's Rng
        let mut state = 9u64;
        let mut next_u64 = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut addrs: Vec<IpAddr> = [
            "193.0.6.1",
            "24.24.24.1",
            "10.1.2.3",
            "127.0.0.1",
            "::1",
            "::ffff:193.0.6.1",
            "2001:67c:2e8:22::1",
            "2a00:1450::1",
        ]
        .iter()
        .map(|s| ip(s))
        .collect();
        for _ in 0..5000 {
            addrs.push(IpAddr::from((next_u64() as u32).to_be_bytes()));
            let hi = (u128::from(next_u64()) << 64) | u128::from(next_u64());
            addrs.push(IpAddr::from(((hi >> 3) | (1u128 << 125)).to_be_bytes()));
        }
        for a in addrs {
            let h = t.lookup::<[u64]>(a, None);
            assert_eq!(t.location(h.class), db.locate(a).location.as_ref(), "{a}");
            assert_eq!(h.uniform, h.prefix);
        }
    }

    /// A class block never holds an address of another class, and special
    /// ranges are never merged into a located block.
    #[test]
    fn blocks_are_exact() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo-city.mmdb");
        let db = GeoDb::open(Path::new(path), path).unwrap();
        let t = demo();
        for (bits, len, v4, class) in t.blocks() {
            let host = if len >= 128 { 0 } else { u128::MAX >> len };
            for probe in [bits, bits | host, bits | (host / 3)] {
                let a = if v4 {
                    IpAddr::V4(Ipv4Addr::from((probe >> 96) as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(probe))
                };
                if !v4 && a.to_canonical().is_ipv4() {
                    continue; // the mapped alias is answered by the IPv4 trie
                }
                assert_eq!(
                    t.location(class),
                    db.locate(a).location.as_ref(),
                    "{a} in block /{len}"
                );
            }
        }
        assert_eq!(t.lookup::<[u64]>(ip("10.1.2.3"), None).class, UNKNOWN);
        assert_eq!(t.lookup::<[u64]>(ip("fe80::1"), None).class, UNKNOWN);
    }

    #[test]
    fn uniform_bits_widen_the_scope() {
        let t = demo();
        // every class the same value: the root is uniform, scope /0
        let same = vec![7u32; t.class_count()];
        let bits = t.uniform_bits(&same);
        let h = t.lookup(ip("193.0.6.1"), Some(&bits[..]));
        assert_eq!(h.uniform, 0);
        assert!(h.prefix > 0);
        // every class its own value: nothing wider than the class block
        let own: Vec<u32> = (0..t.class_count() as u32).collect();
        let bits = t.uniform_bits(&own);
        for a in ["193.0.6.1", "24.24.24.1", "2001:67c:2e8:22::1"] {
            let h = t.lookup(ip(a), Some(&bits[..]));
            assert_eq!(h.uniform, h.prefix, "{a}");
        }
        // mapped addresses count the ::ffff:0:0/96 prefix
        let h = t.lookup::<[u64]>(ip("::ffff:193.0.6.1"), None);
        assert_eq!(
            h.prefix,
            t.lookup::<[u64]>(ip("193.0.6.1"), None).prefix + 96
        );
    }

    #[test]
    fn truncated_and_foreign_files_are_errors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo-city.mmdb");
        let bytes = std::fs::read(path).unwrap();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 10] {
            let r = GeoDb::from_bytes(bytes[..cut].to_vec(), "cut.mmdb")
                .and_then(|db| GeoTable::compile(&db));
            assert!(r.is_err(), "cut at {cut} compiled");
        }
        let r = GeoDb::from_bytes(b"not a maxmind db at all".to_vec(), "x");
        assert!(r.is_err());
    }
}
