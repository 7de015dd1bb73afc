//! Answer choice (SPEC §4): pure functions over the compiled services and
//! regions of a snapshot plus per-endpoint health flags. No sockets, no
//! clocks, no allocation: candidate lists live on the stack, randomness
//! comes from the caller's [`Rng`].
//!
//! [`decide_view`] reads as the steps of SPEC §4: candidates, region
//! order (`order`: by policy, then geo spillover), endpoints inside each
//! region (`select`). `geo` orders regions by map and distance and holds
//! the per-service GeoIP index; `dynamic` what probes measure.

use std::net::IpAddr;
use std::sync::Arc;

pub mod dynamic;
mod geo;
mod order;
mod scope;
mod select;

pub use dynamic::Live;
pub use geo::{GeoHit, GeoIndex, GeoMap, GeoMeta, GeoOrder, GeoView, geo_order, geo_order_into};
pub use order::utilisation;
use order::{order, spill};
pub use scope::{SCOPE_ALONE, compute_scope_maps};
use select::{draw_index, fallback_index, pool_into};

use crate::geo::Located;
pub use crate::model::WhenAllDown;
use crate::model::{Policy, Select};

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
    /// What a great-circle distance to it counts for in `geo` order:
    /// `1 - bias/100` (SPEC §11); 1 without a bias.
    pub reach: f64,
}

impl Region {
    /// True if the region has an endpoint of the family.
    pub fn has_family(&self, fam: Family) -> bool {
        self.endpoints.iter().any(|e| e.family() == fam)
    }
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
    /// A region of this service has a `bias`: `geo` orders by scaled
    /// distance, not by the plain dot product.
    pub biased: bool,
}

impl Service {
    /// True when an answer depends on the client network's hash.
    pub fn hashes(&self) -> bool {
        self.policy == Policy::Hash || self.select == Select::Hash
    }
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
    /// The region this client would get is dialled down and sent it on.
    Dial,
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
            Rule::Dial => "dial",
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
    /// select, a shedding or dialled region): the ECS scope must cover
    /// the hash prefix.
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
    /// Dial per region (the fraction of its clients it keeps); empty
    /// when no region is dialled.
    pub dials: &'a [f32],
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

    fn not_drained(&self, e: &Endpoint) -> bool {
        self.flag(e) & DRAINED == 0
    }

    fn usable(&self, e: &Endpoint) -> bool {
        let f = self.flag(e);
        f & UP != 0 && f & DRAINED == 0
    }

    fn region(&self, svc: &Service, pos: u8) -> &Region {
        &self.regions[svc.regions[pos as usize] as usize]
    }

    /// The dial of the region at `pos` of the service (1: none).
    fn dial(&self, svc: &Service, pos: u8) -> f64 {
        svc.regions
            .get(pos as usize)
            .and_then(|&ri| self.dials.get(ri as usize))
            .map_or(1.0, |&d| f64::from(d))
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
    let mut decision = Decision {
        picks: Stack::default(),
        order: Stack::default(),
        rule: Rule::AllDown,
        fail_open: false,
        hashed: false,
    };
    // The helpers fill stack lists in place: returned, each would be
    // copied on every query (measured on the answer bench).
    let mut cands: Stack<u8, MAX_REGIONS> = Stack::default();
    let fail_open = match candidates(svc, inp, fam, &mut cands) {
        Ok(f) => f,
        Err(rule) => {
            decision.rule = rule;
            return decision;
        }
    };

    let (mut order, mut rule) = order(svc, inp, fam, cands, geo, net, rng);
    if !fail_open {
        let s = spill(svc, inp, fam, &mut order, net);
        decision.hashed = s.depends;
        if s.dialled {
            rule = Rule::Dial;
        } else if s.shed {
            rule = Rule::Shed;
        }
    }
    decision.order = order;
    decision.rule = if fail_open { Rule::AllDown } else { rule };
    decision.fail_open = fail_open;
    decision.hashed |= svc.hashes();

    // endpoints, region by region, best first, each drawn without
    // replacement until the answer is full or the region has none left
    let want = (svc.answers as usize).clamp(1, MAX_ANSWERS);
    for &pos in order.as_slice() {
        if decision.picks.len() >= want {
            break;
        }
        let ri = svc.regions[pos as usize];
        let region = &inp.regions[ri as usize];
        let mut pool: Stack<u8, MAX_ENDPOINTS> = Stack::default();
        let weighted = pool_into(region, inp, fam, fail_open, &mut pool);
        while decision.picks.len() < want && !pool.is_empty() {
            let idx = if weighted {
                draw_index(svc.select, pool.as_slice(), region, inp, net, rng)
            } else {
                fallback_index(svc.select, pool.as_slice(), region, net, rng)
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

/// Fills `cands` with the candidate regions (positions in the service's
/// list, in list order) and tells whether they are fail-open: those with
/// a usable endpoint of the family; when there is none and the service
/// fails open, those with a non-drained one. `Err` is the rule of an
/// empty answer.
fn candidates(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    cands: &mut Stack<u8, MAX_REGIONS>,
) -> Result<bool, Rule> {
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
    if !any_family {
        return Err(Rule::NoEndpoints);
    }
    if !cands.is_empty() {
        return Ok(false);
    }
    if svc.when_all_down == WhenAllDown::Nodata {
        return Err(Rule::AllDown);
    }
    for (pos, &ri) in svc.regions.iter().enumerate() {
        let r = &inp.regions[ri as usize];
        if r.endpoints
            .iter()
            .any(|e| e.family() == fam && inp.not_drained(e))
        {
            cands.push(pos as u8);
        }
    }
    if cands.is_empty() {
        return Err(Rule::AllDown);
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
