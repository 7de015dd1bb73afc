//! Answer choice (SPEC §4): pure functions over the compiled services and
//! regions of a snapshot plus per-endpoint health flags. No sockets, no
//! clocks, no allocation: candidate lists live on the stack, randomness
//! comes from the caller's [`Rng`].

use std::net::IpAddr;

use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use crate::geo::table::GeoTable;

pub mod dynamic;

use crate::geo::{Located, Location};
use crate::model::{Policy, Select};
pub use dynamic::Live;
use dynamic::{below_f64, near_fastest, region_load, rendezvous, shed_ratio, spare};

/// Health flag: the endpoint's last decided state is up.
pub const UP: u8 = 1;
/// Health flag: the endpoint (or its region) is drained.
pub const DRAINED: u8 = 2;

/// Most regions per service (see `config::MAX_SERVICE_REGIONS`).
pub const MAX_REGIONS: usize = 64;
/// Most endpoints per region.
pub const MAX_ENDPOINTS: usize = 64;
/// Most addresses per answer.
pub const MAX_ANSWERS: usize = 16;

/// A fixed-capacity list on the stack.
#[derive(Clone, Copy)]
pub struct Stack<T: Copy + Default, const N: usize> {
    len: usize,
    items: [T; N],
}

impl<T: Copy + Default, const N: usize> Default for Stack<T, N> {
    fn default() -> Self {
        Stack {
            len: 0,
            items: [T::default(); N],
        }
    }
}

impl<T: Copy + Default, const N: usize> Stack<T, N> {
    /// Appends; silently ignores items past the capacity (callers bound
    /// their inputs to `N` when the snapshot is built).
    pub fn push(&mut self, v: T) {
        if self.len < N {
            self.items[self.len] = v;
            self.len += 1;
        }
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Swaps two items.
    pub fn swap(&mut self, a: usize, b: usize) {
        self.items[..self.len].swap(a, b);
    }

    fn remove(&mut self, i: usize) -> T {
        let v = self.items[i];
        self.items.copy_within(i + 1..self.len, i);
        self.len -= 1;
        v
    }
}

/// A small fast PRNG (wyrand); each worker owns one.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds a generator.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x2545_f491_4f6c_dd1d)
    }

    /// Seeds from the clock and a per-thread address.
    pub fn from_entropy() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        Rng::new(t ^ ((&local as *const u8 as u64).rotate_left(32)))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Address family of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A records.
    V4,
    /// AAAA records.
    V6,
}

/// An endpoint as the answer path sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Address handed out.
    pub addr: IpAddr,
    /// Share within its region.
    pub weight: u32,
    /// Index into the health flags.
    pub slot: u32,
    /// Load at which it is full (`capacity`).
    pub capacity: f32,
    /// Rendezvous-hashing seed (from its address).
    pub seed: u64,
}

impl Endpoint {
    /// The endpoint's family.
    pub fn family(&self) -> Family {
        if self.addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

/// A region as the answer path sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Name.
    pub name: Box<str>,
    /// Degrees.
    pub lat: f64,
    /// Degrees.
    pub lon: f64,
    /// Unit vector of the location.
    pub unit: [f64; 3],
    /// `weighted` share.
    pub weight: u32,
    /// Endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Geo spillover marks (low, high utilisation).
    pub shed: Option<(f64, f64)>,
    /// Rendezvous-hashing seed (from its name).
    pub seed: u64,
}

impl Region {
    /// True if the region has an endpoint of the family.
    pub fn has_family(&self, fam: Family) -> bool {
        self.endpoints.iter().any(|e| e.family() == fam)
    }
}

/// A precomputed geo `map`.
#[derive(Debug, Clone, Default)]
pub struct GeoMap {
    /// Entries: the key as written and the positions (in the service's
    /// region list) it puts first.
    pub entries: Vec<(Box<str>, Vec<u8>)>,
    /// CIDR keys, most specific first, with their entry.
    pub cidrs: Vec<(IpNet, u16)>,
    /// Country keys.
    pub countries: FxHashMap<[u8; 2], u16>,
    /// Continent keys.
    pub continents: FxHashMap<[u8; 2], u16>,
}

impl GeoMap {
    /// The most specific CIDR entry containing `a` (canonical), and the
    /// shortest prefix a block around `a` may have without leaving that
    /// CIDR or holding another one (0 when no CIDR constrains it).
    #[inline]
    pub fn cidr_match(&self, a: IpAddr) -> (Option<u16>, u8) {
        let mut entry = None;
        let mut floor = 0u8;
        for (net, e) in &self.cidrs {
            let len = net.prefix_len();
            let common = match (net, a) {
                (IpNet::V4(n), IpAddr::V4(x)) => {
                    (u32::from(n.network()) ^ u32::from(x)).leading_zeros() as u8
                }
                (IpNet::V6(n), IpAddr::V6(x)) => {
                    (u128::from(n.network()) ^ u128::from(x)).leading_zeros() as u8
                }
                _ => continue,
            };
            if common >= len {
                // most specific first: the first containing network wins
                entry.get_or_insert(*e);
                floor = floor.max(len);
            } else {
                floor = floor.max(common + 1);
            }
        }
        (entry, floor)
    }

    /// The entry matching a client: most specific CIDR, else country, else
    /// continent.
    pub fn matching(&self, addr: Option<IpAddr>, loc: Option<&Location>) -> Option<u16> {
        if let Some(a) = addr {
            let a = a.to_canonical();
            if let Some((_, e)) = self.cidrs.iter().find(|(n, _)| n.contains(&a)) {
                return Some(*e);
            }
        }
        let loc = loc?;
        if loc.country[0] != 0
            && !self.countries.is_empty()
            && let Some(e) = self.countries.get(&loc.country)
        {
            return Some(*e);
        }
        if loc.continent[0] != 0
            && !self.continents.is_empty()
            && let Some(e) = self.continents.get(&loc.continent)
        {
            return Some(*e);
        }
        None
    }
}

/// When every region is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Answer as if every non-drained endpoint were up.
    All,
    /// NODATA.
    Nodata,
}

/// A service as the answer path sees it.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name as configured.
    pub name: Box<str>,
    /// Regions (indices into the snapshot's region list), in order.
    pub regions: Vec<u16>,
    /// Policy.
    pub policy: Policy,
    /// Answer TTL.
    pub ttl: u32,
    /// Most addresses per answer.
    pub answers: u8,
    /// All-down behaviour.
    pub when_all_down: WhenAllDown,
    /// Geo overrides.
    pub map: GeoMap,
    /// Metrics slot of each (service, region) pair, by position.
    pub counter_slots: Vec<u32>,
    /// `geo` services: the GeoIP database compiled for this service.
    pub geo: Option<Arc<GeoIndex>>,
    /// How endpoints are drawn inside a region.
    pub select: Select,
    /// Client network prefixes hashed by `hash` and shed (IPv4, IPv6).
    pub hash_prefix: (u8, u8),
}

impl Service {
    /// True when an answer depends on the client network's hash.
    pub fn hashes(&self) -> bool {
        self.policy == Policy::Hash || self.select == Select::Hash
    }
}

/// A service's view of the shared GeoIP table ([`GeoTable`]): its ECS
/// scope map. The region order of a client is computed per query from
/// its location class (a few dot products, no allocation) by
/// [`geo_order_into`], the same function that computes the scope map, so
/// the scope and the answer always agree.
///
/// The scope map is computed once (a pass over the table, tens of
/// milliseconds on a GeoLite2-City table) and may arrive after the index
/// is served: until then a scope is the client's location block, which is
/// correct, only narrower.
pub struct GeoIndex {
    /// The shared compiled database.
    pub table: Arc<GeoTable>,
    scopes: OnceLock<ScopeMap>,
}

/// Which shallow table nodes hold a single region order for a service.
struct ScopeMap {
    bits: Box<[u64]>,
    orders: usize,
}

impl std::fmt::Debug for GeoIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIndex")
            .field("table", &self.table)
            .field("orders", &self.orders())
            .finish()
    }
}

/// What a [`GeoIndex`] lookup found for one client.
#[derive(Clone, Copy)]
pub struct GeoHit {
    /// Every region position, best first.
    pub order: Stack<u8, MAX_REGIONS>,
    /// How many leading positions a map entry put there.
    pub map_len: usize,
    /// That entry.
    pub map_entry: Option<u16>,
    /// The rest is ordered by distance.
    pub coords: bool,
    /// ECS scope of this answer (SPEC §4.6).
    pub scope: u8,
    /// The client's location class.
    pub class: u32,
    /// Prefix of the client's location block.
    pub prefix: u8,
}

impl GeoHit {
    /// The ordering as a decision input.
    pub fn view(&self) -> GeoView<'_> {
        GeoView {
            order: self.order.as_slice(),
            map_len: self.map_len,
            map_entry: self.map_entry,
            coords: self.coords,
        }
    }
}

impl GeoIndex {
    /// An index whose scope map is still to be computed.
    pub fn new(table: Arc<GeoTable>) -> GeoIndex {
        GeoIndex {
            table,
            scopes: OnceLock::new(),
        }
    }

    /// An index with its scope map.
    pub fn build(table: Arc<GeoTable>, svc: &Service, regions: &[Region]) -> GeoIndex {
        let ix = GeoIndex::new(table);
        ix.compute(svc, regions);
        ix
    }

    /// Computes the scope map if it is not there yet: the order of every
    /// location class (map CIDRs aside: they are matched per query), then
    /// which blocks hold a single order. `svc` must be a service this
    /// index was made for.
    pub fn compute(&self, svc: &Service, regions: &[Region]) {
        self.scopes.get_or_init(|| {
            let mut ids: FxHashMap<Vec<u8>, u32> = FxHashMap::default();
            let mut value = Vec::with_capacity(self.table.class_count());
            let mut order = Stack::default();
            for loc in self.table.locations() {
                order.clear();
                geo_order_into(svc, regions, loc.as_ref(), None, &mut order);
                let next = ids.len() as u32;
                let id = match ids.get(order.as_slice()) {
                    Some(&id) => id,
                    None => {
                        ids.insert(order.as_slice().to_vec(), next);
                        next
                    }
                };
                value.push(id);
            }
            ScopeMap {
                bits: self.table.uniform_bits(&value),
                orders: ids.len(),
            }
        });
    }

    /// True once the scope map is there.
    pub fn ready(&self) -> bool {
        self.scopes.get().is_some()
    }

    /// Distinct region orders over all location classes (0 before the
    /// scope map is computed).
    pub fn orders(&self) -> usize {
        self.scopes.get().map_or(0, |m| m.orders)
    }

    /// The region order for a client address and the ECS scope of that
    /// answer: the widest block of one order, narrowed so that it neither
    /// leaves the map CIDR that matched nor holds one that did not.
    #[inline]
    pub fn lookup(&self, svc: &Service, regions: &[Region], addr: IpAddr) -> GeoHit {
        let bits = self.scopes.get().map(|m| &m.bits[..]);
        let hit = self.table.lookup(addr, bits);
        let a = addr.to_canonical();
        let extra = if addr.is_ipv6() && a.is_ipv4() { 96 } else { 0 };
        let (entry, floor) = svc.map.cidr_match(a);
        // inside a CIDR the rest of the order is by distance from the
        // class's own location: only the class block is known to agree
        let base = if entry.is_some() {
            hit.prefix
        } else {
            hit.uniform
        };
        let scope = if floor > 0 {
            base.max(floor + extra)
        } else {
            base
        };
        let mut order = Stack::default();
        let meta = geo_order_into(
            svc,
            regions,
            self.table.location(hit.class),
            entry,
            &mut order,
        );
        GeoHit {
            order,
            map_len: meta.map_len,
            map_entry: meta.map_entry,
            coords: meta.coords,
            scope,
            class: hit.class,
            prefix: hit.prefix,
        }
    }
}

/// How a `geo` service orders its regions for one client location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeoOrder {
    /// Every region position, best first.
    pub order: Vec<u8>,
    /// How many of the first positions a map entry put there.
    pub map_len: usize,
    /// That map entry.
    pub map_entry: Option<u16>,
    /// The location had coordinates (the rest is by distance).
    pub coords: bool,
}

/// [`geo_order_into`]'s findings besides the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeoMeta {
    /// How many of the first positions a map entry put there.
    pub map_len: usize,
    /// That map entry.
    pub map_entry: Option<u16>,
    /// The location had coordinates (the rest is by distance).
    pub coords: bool,
}

/// Orders all of a service's regions for a location (`None`: unknown) and
/// the map CIDR entry containing the client, if any: the matching `map`
/// entry's regions first in listed order, the rest by great-circle
/// distance (list order when the location has no coordinates).
pub fn geo_order(
    svc: &Service,
    regions: &[Region],
    loc: Option<&Location>,
    cidr_entry: Option<u16>,
) -> GeoOrder {
    let mut order = Stack::default();
    let m = geo_order_into(svc, regions, loc, cidr_entry, &mut order);
    GeoOrder {
        order: order.as_slice().to_vec(),
        map_len: m.map_len,
        map_entry: m.map_entry,
        coords: m.coords,
    }
}

/// [`geo_order`] into a stack list (the answer path's form): no
/// allocation; nearest = largest dot product of unit vectors, ties in list
/// order.
#[inline]
pub fn geo_order_into(
    svc: &Service,
    regions: &[Region],
    loc: Option<&Location>,
    cidr_entry: Option<u16>,
    out: &mut Stack<u8, MAX_REGIONS>,
) -> GeoMeta {
    let entry = cidr_entry.or_else(|| svc.map.matching(None, loc));
    let mut taken = 0u64;
    if let Some(e) = entry
        && let Some((_, first)) = svc.map.entries.get(e as usize)
    {
        for &p in first.iter() {
            if p < 64 && taken & (1 << p) == 0 {
                taken |= 1 << p;
                out.push(p);
            }
        }
    }
    let map_len = out.len();
    let n = svc.regions.len().min(MAX_REGIONS);
    let unit = loc.and_then(|l| l.coords.map(|_| l.unit));
    match unit {
        None => {
            for p in 0..n as u8 {
                if taken & (1 << p) == 0 {
                    out.push(p);
                }
            }
        }
        Some(u) => {
            let mut keys = [0f64; MAX_REGIONS];
            for p in 0..n as u8 {
                if taken & (1 << p) != 0 {
                    continue;
                }
                let Some(r) = svc
                    .regions
                    .get(p as usize)
                    .and_then(|&ri| regions.get(ri as usize))
                else {
                    continue;
                };
                let d = r.unit[0] * u[0] + r.unit[1] * u[1] + r.unit[2] * u[2];
                // stable insertion: a later region passes only strictly farther ones
                let mut i = out.len();
                out.push(p);
                keys[i] = d;
                while i > map_len && keys[i - 1] < d {
                    keys.swap(i, i - 1);
                    out.swap(i, i - 1);
                    i -= 1;
                }
            }
        }
    }
    GeoMeta {
        map_len,
        map_entry: entry.filter(|_| map_len > 0),
        coords: unit.is_some(),
    }
}

/// The ordering a geo decision uses: from a [`GeoIndex`] lookup on the
/// answer path, or computed by [`geo_order`].
#[derive(Debug, Clone, Copy)]
pub struct GeoView<'a> {
    /// Region positions, best first.
    pub order: &'a [u8],
    /// How many leading positions come from a map entry.
    pub map_len: usize,
    /// That entry.
    pub map_entry: Option<u16>,
    /// The rest is ordered by distance.
    pub coords: bool,
}

/// What chose the first region answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A map entry (index into `GeoMap::entries`).
    Map(u16),
    /// Great-circle distance.
    Distance,
    /// Weighted draw.
    Weighted,
    /// List order.
    Failover,
    /// Rendezvous hashing of the client network.
    Hash,
    /// Draw by spare capacity.
    LeastLoaded,
    /// Lowest smoothed latency.
    Fastest,
    /// The nearest region is shedding load and sent this client on.
    Shed,
    /// Geo without a client location: list order.
    UnknownLocation,
    /// Nothing healthy: fail-open or NODATA.
    AllDown,
    /// No region has an endpoint of the queried family.
    NoEndpoints,
}

impl Rule {
    /// The name used by explain (`map:<key>` is rendered by the caller).
    pub fn name(self) -> &'static str {
        match self {
            Rule::Map(_) => "map",
            Rule::Distance => "distance",
            Rule::Weighted => "weighted",
            Rule::Failover => "failover",
            Rule::Hash => "hash",
            Rule::LeastLoaded => "least-loaded",
            Rule::Fastest => "fastest",
            Rule::Shed => "shed",
            Rule::UnknownLocation => "unknown-location",
            Rule::AllDown => "all-down",
            Rule::NoEndpoints => "no-endpoints",
        }
    }
}

/// One chosen address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pick {
    /// Region index (global).
    pub region: u16,
    /// Position of the region in the service's list.
    pub position: u8,
    /// Endpoint index within the region.
    pub endpoint: u8,
}

/// The outcome for one query.
#[derive(Clone, Copy)]
pub struct Decision {
    /// Addresses to answer, in order; empty = NODATA.
    pub picks: Stack<Pick, MAX_ANSWERS>,
    /// Candidate regions as positions in the service's list, best first.
    pub order: Stack<u8, MAX_REGIONS>,
    /// What chose the first region.
    pub rule: Rule,
    /// True when the answer was computed fail-open.
    pub fail_open: bool,
    /// The answer depends on the client network's hash (hash policy or
    /// select, or a shedding region): the ECS scope must cover the hash
    /// prefix.
    pub hashed: bool,
}

/// The client as far as steering is concerned.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// Address located (ECS address or packet source).
    pub addr: Option<IpAddr>,
    /// Its location.
    pub located: Located,
}

/// What a decision reads from the snapshot besides the service.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// Every region.
    pub regions: &'a [Region],
    /// Health flags per slot.
    pub flags: &'a [u8],
    /// Measured load and latency per slot (may be empty: all unknown).
    pub live: &'a [Live],
}

impl Inputs<'_> {
    fn flag(&self, e: &Endpoint) -> u8 {
        self.flags.get(e.slot as usize).copied().unwrap_or(0)
    }

    fn live(&self, e: &Endpoint) -> Live {
        self.live
            .get(e.slot as usize)
            .copied()
            .unwrap_or(Live::UNKNOWN)
    }

    fn usable(&self, e: &Endpoint) -> bool {
        let f = self.flag(e);
        f & UP != 0 && f & DRAINED == 0
    }

    fn region(&self, svc: &Service, pos: u8) -> &Region {
        &self.regions[svc.regions[pos as usize] as usize]
    }
}

/// Decides the answer for `svc` and address family `fam` from a located
/// client (explain, tests).
pub fn decide(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    client: &Client,
    rng: &mut Rng,
) -> Decision {
    let net = client
        .addr
        .map_or(0, |a| dynamic::net_key(a, svc.hash_prefix));
    if svc.policy != Policy::Geo {
        return decide_view(svc, inp, fam, None, net, rng);
    }
    let loc = client.located.location;
    let cidr = client.addr.and_then(|a| svc.map.matching(Some(a), None));
    let mut order = Stack::default();
    let g = geo_order_into(svc, inp.regions, loc.as_ref(), cidr, &mut order);
    let view = GeoView {
        order: order.as_slice(),
        map_len: g.map_len,
        map_entry: g.map_entry,
        coords: g.coords,
    };
    decide_view(svc, inp, fam, Some(&view), net, rng)
}

/// Decides with a precomputed geo ordering (`None` for non-geo services,
/// or a geo service without a location source: list order). `net` is the
/// client network's key ([`dynamic::net_key`]) for hashing.
pub fn decide_view(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    geo: Option<&GeoView<'_>>,
    net: u64,
    rng: &mut Rng,
) -> Decision {
    let not_drained = |e: &Endpoint| inp.flag(e) & DRAINED == 0;

    let mut cands: Stack<u8, MAX_REGIONS> = Stack::default();
    let mut any_family = false;
    for (pos, &ri) in svc.regions.iter().enumerate() {
        let r = &inp.regions[ri as usize];
        if !r.has_family(fam) {
            continue;
        }
        any_family = true;
        if r.endpoints
            .iter()
            .any(|e| e.family() == fam && inp.usable(e))
        {
            cands.push(pos as u8);
        }
    }
    let mut fail_open = false;
    let mut decision = Decision {
        picks: Stack::default(),
        order: Stack::default(),
        rule: Rule::AllDown,
        fail_open: false,
        hashed: false,
    };
    if !any_family {
        decision.rule = Rule::NoEndpoints;
        return decision;
    }
    if cands.is_empty() {
        if svc.when_all_down == WhenAllDown::Nodata {
            return decision;
        }
        for (pos, &ri) in svc.regions.iter().enumerate() {
            let r = &inp.regions[ri as usize];
            if r.endpoints
                .iter()
                .any(|e| e.family() == fam && not_drained(e))
            {
                cands.push(pos as u8);
            }
        }
        if cands.is_empty() {
            return decision;
        }
        fail_open = true;
    }

    let (mut order, mut rule) = order(svc, inp, fam, cands, geo, net, rng);
    if svc.policy == Policy::Geo && !fail_open && shed(svc, inp, fam, &mut order, net) {
        rule = Rule::Shed;
        decision.hashed = true;
    }
    decision.order = order;
    decision.rule = if fail_open { Rule::AllDown } else { rule };
    decision.fail_open = fail_open;
    decision.hashed |= svc.hashes();

    let want = (svc.answers as usize).clamp(1, MAX_ANSWERS);
    for &pos in order.as_slice() {
        if decision.picks.len() >= want {
            break;
        }
        let ri = svc.regions[pos as usize];
        let region = &inp.regions[ri as usize];
        // usable endpoints of the family, positive weights preferred
        let ok = |e: &Endpoint| {
            e.family() == fam
                && if fail_open {
                    not_drained(e)
                } else {
                    inp.usable(e)
                }
        };
        let mut pool: Stack<u8, MAX_ENDPOINTS> = Stack::default();
        for (i, e) in region.endpoints.iter().enumerate() {
            if ok(e) && e.weight > 0 {
                pool.push(i as u8);
            }
        }
        let weighted = !pool.is_empty();
        if !weighted {
            for (i, e) in region.endpoints.iter().enumerate() {
                if ok(e) {
                    pool.push(i as u8);
                }
            }
        }
        let ep = |i: u8| &region.endpoints[i as usize];
        while decision.picks.len() < want && !pool.is_empty() {
            let idx = if !weighted {
                rng.below(pool.len() as u64) as usize
            } else {
                match svc.select {
                    Select::Weighted => draw(pool.as_slice(), |i| u64::from(ep(i).weight), rng),
                    Select::Hash => best(pool.as_slice(), |i| {
                        rendezvous(ep(i).seed, net, f64::from(ep(i).weight))
                    }),
                    Select::LeastLoaded => {
                        let spares = |i: u8| spare(ep(i), inp.live(ep(i)));
                        if pool.as_slice().iter().any(|&i| spares(i) > 0.0) {
                            draw_f64(pool.as_slice(), spares, rng)
                        } else {
                            // all full: by weight
                            draw(pool.as_slice(), |i| u64::from(ep(i).weight), rng)
                        }
                    }
                    Select::Fastest => {
                        let lat = |i: u8| inp.live(ep(i)).latency_ms;
                        let fastest = pool
                            .as_slice()
                            .iter()
                            .map(|&i| lat(i))
                            .filter(|l| !l.is_nan())
                            .fold(f32::INFINITY, f32::min);
                        if fastest.is_finite() {
                            let w = |i: u8| {
                                if near_fastest(lat(i), fastest) {
                                    u64::from(ep(i).weight)
                                } else {
                                    0
                                }
                            };
                            if pool.as_slice().iter().any(|&i| w(i) > 0) {
                                draw(pool.as_slice(), w, rng)
                            } else {
                                best(pool.as_slice(), |i| -f64::from(lat(i)))
                            }
                        } else {
                            draw(pool.as_slice(), |i| u64::from(ep(i).weight), rng)
                        }
                    }
                }
            };
            let ei = pool.remove(idx);
            decision.picks.push(Pick {
                region: ri,
                position: pos,
                endpoint: ei,
            });
        }
    }
    decision
}

/// Index into `items` drawn in proportion to `weight` (total > 0).
fn draw(items: &[u8], weight: impl Fn(u8) -> u64, rng: &mut Rng) -> usize {
    let total: u64 = items.iter().map(|&i| weight(i)).sum();
    if total == 0 {
        return rng.below(items.len() as u64) as usize;
    }
    let mut r = rng.below(total);
    for (k, &i) in items.iter().enumerate() {
        let w = weight(i);
        if r < w {
            return k;
        }
        r -= w;
    }
    items.len() - 1
}

/// [`draw`] with real-valued weights.
fn draw_f64(items: &[u8], weight: impl Fn(u8) -> f64, rng: &mut Rng) -> usize {
    let total: f64 = items.iter().map(|&i| weight(i).max(0.0)).sum();
    if total <= 0.0 || total.is_nan() {
        return rng.below(items.len() as u64) as usize;
    }
    let mut r = below_f64(rng, total);
    for (k, &i) in items.iter().enumerate() {
        let w = weight(i).max(0.0);
        if r < w {
            return k;
        }
        r -= w;
    }
    items.len() - 1
}

/// Index of the item with the highest score (the first of equals).
fn best(items: &[u8], score: impl Fn(u8) -> f64) -> usize {
    let mut top = 0;
    let mut top_score = f64::NEG_INFINITY;
    for (k, &i) in items.iter().enumerate() {
        let s = score(i);
        if s > top_score {
            top = k;
            top_score = s;
        }
    }
    top
}

/// A region's spare capacity for the `least-loaded` policy: the sum over
/// its usable endpoints of the family of weight × (1 − load / capacity).
fn region_spare(r: &Region, fam: Family, inp: &Inputs<'_>) -> f64 {
    r.endpoints
        .iter()
        .filter(|e| e.family() == fam && inp.usable(e))
        .map(|e| spare(e, inp.live(e)))
        .sum()
}

/// A region's latency for the `fastest` policy: its best usable
/// endpoint's smoothed latency (NaN when none is known).
fn region_latency(r: &Region, fam: Family, inp: &Inputs<'_>) -> f32 {
    r.endpoints
        .iter()
        .filter(|e| e.family() == fam && inp.usable(e))
        .map(|e| inp.live(e).latency_ms)
        .filter(|l| !l.is_nan())
        .fold(f32::NAN, f32::min)
}

/// A region's utilisation over its usable endpoints with a known load.
pub fn utilisation(r: &Region, fam: Family, inp: &Inputs<'_>) -> Option<f64> {
    region_load(r, fam, |e| inp.usable(e), inp.live)
        .filter(|(_, cap)| *cap > 0.0)
        .map(|(load, cap)| load / cap)
}

/// Geo spillover (SPEC §4.7): when the first region sheds, the share of
/// its clients whose network hashes below the shed ratio go to the next
/// region, and at `high` all of them (the region is then skipped like a
/// down one, unless it is the only candidate). True when the answer now
/// depends on the client network.
fn shed(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    order: &mut Stack<u8, MAX_REGIONS>,
    net: u64,
) -> bool {
    let Some(&first) = order.as_slice().first() else {
        return false;
    };
    let r = inp.region(svc, first);
    let Some((low, high)) = r.shed else {
        return false;
    };
    let Some(u) = utilisation(r, fam, inp) else {
        return false;
    };
    if u <= low || order.len() < 2 {
        return false;
    }
    let ratio = shed_ratio(u, low, high);
    if ratio >= 1.0 {
        // full: behind every other candidate
        let items = *order;
        order.clear();
        for &p in &items.as_slice()[1..] {
            order.push(p);
        }
        order.push(first);
        return true;
    }
    if dynamic::unit(r.seed, net) < ratio {
        order.swap(0, 1);
    }
    true
}

/// Orders candidate positions by the service's policy.
fn order(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    cands: Stack<u8, MAX_REGIONS>,
    geo: Option<&GeoView<'_>>,
    net: u64,
    rng: &mut Rng,
) -> (Stack<u8, MAX_REGIONS>, Rule) {
    let weight = |p: u8| u64::from(inp.region(svc, p).weight);
    match svc.policy {
        Policy::Failover => (cands, Rule::Failover),
        Policy::Weighted => (by_weight(cands.as_slice(), weight, rng), Rule::Weighted),
        Policy::Hash => {
            // every candidate by its rendezvous score, best first
            let mut out = cands;
            let score = |p: u8| {
                let r = inp.region(svc, p);
                rendezvous(r.seed, net, f64::from(r.weight.max(1)))
            };
            sort_desc(&mut out, score);
            (out, Rule::Hash)
        }
        Policy::LeastLoaded => {
            let spares = |p: u8| region_spare(inp.region(svc, p), fam, inp);
            let mut out: Stack<u8, MAX_REGIONS> = Stack::default();
            let mut left = cands;
            if left.as_slice().iter().any(|&p| spares(p) > 0.0) {
                while left.as_slice().iter().any(|&p| spares(p) > 0.0) {
                    let k = draw_f64(left.as_slice(), spares, rng);
                    out.push(left.remove(k));
                }
            }
            // full ones (or all of them, when all are full) by weight
            for &p in by_weight(left.as_slice(), weight, rng).as_slice() {
                out.push(p);
            }
            (out, Rule::LeastLoaded)
        }
        Policy::Fastest => {
            let lat = |p: u8| region_latency(inp.region(svc, p), fam, inp);
            let fastest = cands
                .as_slice()
                .iter()
                .map(|&p| lat(p))
                .filter(|l| !l.is_nan())
                .fold(f32::INFINITY, f32::min);
            if !fastest.is_finite() {
                return (by_weight(cands.as_slice(), weight, rng), Rule::Fastest);
            }
            let mut near: Stack<u8, MAX_REGIONS> = Stack::default();
            let mut rest: Stack<u8, MAX_REGIONS> = Stack::default();
            for &p in cands.as_slice() {
                if near_fastest(lat(p), fastest) {
                    near.push(p);
                } else {
                    rest.push(p);
                }
            }
            let mut out = by_weight(near.as_slice(), weight, rng);
            // the rest by latency, unknown last (in list order)
            sort_desc(&mut rest, |p| {
                let l = lat(p);
                if l.is_nan() {
                    f64::NEG_INFINITY
                } else {
                    -f64::from(l)
                }
            });
            for &p in rest.as_slice() {
                out.push(p);
            }
            (out, Rule::Fastest)
        }
        Policy::Geo => {
            let Some(g) = geo else {
                return (cands, Rule::UnknownLocation);
            };
            let mut member = 0u64;
            for &p in cands.as_slice() {
                member |= 1 << p;
            }
            let mut out: Stack<u8, MAX_REGIONS> = Stack::default();
            let mut first = None;
            for (i, &p) in g.order.iter().enumerate() {
                if p < 64 && member & (1 << p) != 0 {
                    first.get_or_insert(i);
                    out.push(p);
                }
            }
            let rule = match (first, g.map_entry) {
                (Some(i), Some(e)) if i < g.map_len => Rule::Map(e),
                _ if g.coords => Rule::Distance,
                _ => Rule::UnknownLocation,
            };
            (out, rule)
        }
    }
}

/// Positive weights by draw, then the zero-weight (last resort) ones in
/// list order.
fn by_weight(cands: &[u8], weight: impl Fn(u8) -> u64, rng: &mut Rng) -> Stack<u8, MAX_REGIONS> {
    let mut out: Stack<u8, MAX_REGIONS> = Stack::default();
    let mut positive: Stack<u8, MAX_REGIONS> = Stack::default();
    let mut zero: Stack<u8, MAX_REGIONS> = Stack::default();
    for &p in cands {
        if weight(p) > 0 {
            positive.push(p)
        } else {
            zero.push(p)
        }
    }
    while !positive.is_empty() {
        let k = draw(positive.as_slice(), &weight, rng);
        out.push(positive.remove(k));
    }
    for &p in zero.as_slice() {
        out.push(p);
    }
    out
}

/// Stable insertion sort, highest score first.
fn sort_desc(items: &mut Stack<u8, MAX_REGIONS>, score: impl Fn(u8) -> f64) {
    let mut keys = [0f64; MAX_REGIONS];
    for (k, &p) in items.as_slice().iter().enumerate() {
        keys[k] = score(p);
    }
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && keys[j - 1] < keys[j] {
            keys.swap(j, j - 1);
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests;
