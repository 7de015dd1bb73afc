//! Geo ordering (SPEC §4.3, §4.6): a service's `map`, the order of its
//! regions for a client location (map entry first, then great-circle
//! distance), and [`GeoIndex`], a service's view of the shared GeoIP
//! table with its ECS scope map. The per-query functions work on stack
//! lists and do not allocate.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use rustc_hash::FxHashMap;

use super::scope::compute_scope_maps;
use super::{MAX_REGIONS, Region, Service, Stack};
use crate::geo::Location;
use crate::geo::scope::ScopeBits;
use crate::geo::table::GeoTable;

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

/// A service's view of the shared GeoIP table ([`GeoTable`]): its ECS
/// scope map. The region order of a client is computed per query from
/// its location class (a few dot products, no allocation) by
/// [`geo_order_into`], the same function that computes the scope map, so
/// the scope and the answer always agree.
///
/// The scope map is computed once, with every other map of a start or
/// reload ([`compute_scope_maps`]: one pass over the table for 32 services,
/// the maps stored together in one `geo::scope::ScopeStore`; a few maps
/// alone, one pass each) and may arrive after the index is served: until
/// then a scope is the client's location block, which is correct, only
/// narrower.
pub struct GeoIndex {
    /// The shared compiled database.
    pub table: Arc<GeoTable>,
    pub(super) scopes: OnceLock<ScopeMap>,
}

/// Which shallow table nodes hold a single region order for a service,
/// and how many distinct orders it has.
pub(super) struct ScopeMap {
    pub(super) bits: ScopeBits,
    pub(super) orders: usize,
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
        compute_scope_maps(&[(&ix, svc)], regions, 1, &|| false);
        ix
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
        let hit = self.table.lookup(addr, self.scopes.get().map(|m| &m.bits));
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
/// order. With a biased region in the service, nearest = the smallest
/// great-circle angle times the region's `reach` (`1 - bias/100`).
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
                let dot = r.unit[0] * u[0] + r.unit[1] * u[1] + r.unit[2] * u[2];
                // nearest first: the largest dot product, or with a bias
                // the smallest scaled angle (SPEC §11)
                let d = if svc.biased {
                    -(dot.clamp(-1.0, 1.0).acos() * r.reach)
                } else {
                    dot
                };
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
