//! Region order by policy (SPEC §4.3, §4.7): failover, weighted,
//! hash, least-loaded, fastest and geo over the candidate regions, and geo
//! spillover when the first region sheds load. Stack lists only.

use super::dynamic::{self, near_fastest, region_load, rendezvous, shed_ratio, spare};
use super::select::{draw, draw_f64};
use super::{Family, GeoView, Inputs, MAX_REGIONS, Region, Rng, Rule, Service, Stack};
use crate::model::Policy;

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

/// What [`spill`] did to an order.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Spill {
    /// A shed ratio or a dial was consulted, or a full (or dialled to 0)
    /// region was ahead: the answer depends on the client network.
    pub depends: bool,
    /// A `geo` region's shed ratio was consulted.
    pub shed: bool,
    /// A dialled region sent this client on.
    pub dialled: bool,
}

/// Geo spillover (SPEC §4.7) and dials (SPEC §11), one rule for both: a
/// region keeps the share `(1 − shed ratio) × dial` of the clients that
/// would get it (shed only for `geo`). A region that keeps none (at
/// `high`, or dialled to 0) is skipped like a down one: it goes behind
/// every candidate that keeps some, unless none does. Then a client whose
/// network hashes below the share a region sends on moves on to the next
/// region in its order, and again past that one if it sends this client
/// on too (the last one keeps it). The same networks move first as the
/// share grows. Nothing here allocates.
pub(super) fn spill(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    order: &mut Stack<u8, MAX_REGIONS>,
    net: u64,
) -> Spill {
    let geo = svc.policy == Policy::Geo;
    // the common case first, before any list is built: nothing sheds, and
    // no region is dialled
    if order.len() < 2 || (!geo && inp.dials.is_empty()) {
        return Spill::default();
    }
    let shed_ratio_of = |p: u8| {
        let r = inp.region(svc, p);
        match (geo, r.shed) {
            (true, Some((low, high))) => match utilisation(r, fam, inp) {
                Some(u) if u > low => shed_ratio(u, low, high),
                _ => 0.0,
            },
            _ => 0.0,
        }
    };
    let ratio = |p: u8| 1.0 - (1.0 - shed_ratio_of(p)) * inp.dial(svc, p);
    if !order.as_slice().iter().any(|&p| ratio(p) > 0.0) {
        return Spill::default();
    }
    let mut out = Spill::default();
    // each candidate's ratio, the ones that keep nobody apart
    let mut kept: Stack<u8, MAX_REGIONS> = Stack::default();
    let mut ratios: Stack<f64, MAX_REGIONS> = Stack::default();
    let mut full: Stack<u8, MAX_REGIONS> = Stack::default();
    for &p in order.as_slice() {
        let x = ratio(p);
        if x >= 1.0 {
            full.push(p);
        } else {
            kept.push(p);
            ratios.push(x);
        }
    }
    if kept.is_empty() {
        // every region keeps nobody: the order stands
        out.depends = true;
        out.shed = order.as_slice().iter().any(|&p| shed_ratio_of(p) > 0.0);
        out.dialled = !out.shed;
        return out;
    }
    // a ratio consulted on the way makes the answer depend on the client
    // network; so does a region ahead that keeps nobody
    let ahead = order.as_slice()[0];
    if ahead != kept.as_slice()[0] {
        out.depends = true;
        out.shed |= shed_ratio_of(ahead) > 0.0;
        out.dialled |= inp.dial(svc, ahead) < 1.0;
    }
    let mut first = 0;
    while first + 1 < kept.len() && ratios.as_slice()[first] > 0.0 {
        out.depends = true;
        let p = kept.as_slice()[first];
        out.shed |= shed_ratio_of(p) > 0.0;
        let r = inp.region(svc, p);
        if dynamic::unit(r.seed, net) < ratios.as_slice()[first] {
            out.dialled |= inp.dial(svc, p) < 1.0;
            first += 1;
        } else {
            break;
        }
    }
    order.clear();
    order.push(kept.as_slice()[first]);
    for (i, &p) in kept.as_slice().iter().enumerate() {
        if i != first {
            order.push(p);
        }
    }
    for &p in full.as_slice() {
        order.push(p);
    }
    out
}

/// Orders candidate positions by the service's policy.
pub(super) fn order(
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
