//! Endpoints inside a region (SPEC §4.4): how `select` draws them, and
//! the weighted draws the region order uses too. Nothing here allocates.

use super::dynamic::{below_f64, near_fastest, rendezvous, spare};
use super::{
    Decision, Endpoint, Family, Inputs, MAX_ANSWERS, MAX_ENDPOINTS, Pick, Region, Rng, Service,
    Stack,
};
use crate::model::Select;

/// Fills `d.picks` from the regions of `d.order`, best first, until the
/// service's `answers` are reached: each region gives endpoints of the
/// family drawn without replacement, until it has none left.
pub(super) fn pick_endpoints(
    svc: &Service,
    inp: &Inputs<'_>,
    fam: Family,
    net: u64,
    d: &mut Decision,
    rng: &mut Rng,
) {
    let want = (svc.answers as usize).clamp(1, MAX_ANSWERS);
    for &pos in d.order.as_slice() {
        if d.picks.len() >= want {
            break;
        }
        let ri = svc.regions[pos as usize];
        let region = &inp.regions[ri as usize];
        let (mut pool, weighted) = pool(region, inp, fam, d.fail_open);
        while d.picks.len() < want && !pool.is_empty() {
            let idx = if weighted {
                draw_index(svc.select, pool.as_slice(), region, inp, net, rng)
            } else {
                rng.below(pool.len() as u64) as usize
            };
            let ei = pool.remove(idx);
            d.picks.push(Pick {
                region: ri,
                position: pos,
                endpoint: ei,
            });
        }
    }
}

/// A region's endpoints of the family that may be answered (usable ones;
/// non-drained ones when fail-open): those with a positive weight and
/// `true`, or, when there is none, all of them and `false`.
fn pool(
    region: &Region,
    inp: &Inputs<'_>,
    fam: Family,
    fail_open: bool,
) -> (Stack<u8, MAX_ENDPOINTS>, bool) {
    let ok = |e: &Endpoint| {
        e.family() == fam
            && if fail_open {
                inp.not_drained(e)
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
    (pool, weighted)
}

/// Index into `pool` (endpoints of `region` with a positive weight) of
/// the next endpoint as `select` draws it.
fn draw_index(
    select: Select,
    pool: &[u8],
    region: &Region,
    inp: &Inputs<'_>,
    net: u64,
    rng: &mut Rng,
) -> usize {
    let ep = |i: u8| &region.endpoints[i as usize];
    match select {
        Select::Weighted => draw(pool, |i| u64::from(ep(i).weight), rng),
        Select::Hash => best(pool, |i| {
            rendezvous(ep(i).seed, net, f64::from(ep(i).weight))
        }),
        Select::LeastLoaded => {
            let spares = |i: u8| spare(ep(i), inp.live(ep(i)));
            if pool.iter().any(|&i| spares(i) > 0.0) {
                draw_f64(pool, spares, rng)
            } else {
                // all full: by weight
                draw(pool, |i| u64::from(ep(i).weight), rng)
            }
        }
        Select::Fastest => {
            let lat = |i: u8| inp.live(ep(i)).latency_ms;
            let fastest = pool
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
                if pool.iter().any(|&i| w(i) > 0) {
                    draw(pool, w, rng)
                } else {
                    best(pool, |i| -f64::from(lat(i)))
                }
            } else {
                draw(pool, |i| u64::from(ep(i).weight), rng)
            }
        }
    }
}

/// Index into `items` drawn in proportion to `weight` (total > 0).
pub(super) fn draw(items: &[u8], weight: impl Fn(u8) -> u64, rng: &mut Rng) -> usize {
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
pub(super) fn draw_f64(items: &[u8], weight: impl Fn(u8) -> f64, rng: &mut Rng) -> usize {
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
pub(super) fn best(items: &[u8], score: impl Fn(u8) -> f64) -> usize {
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
