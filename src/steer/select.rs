//! Endpoints inside a region (SPEC §4.4): which may be answered, how
//! `select` draws them, and the weighted draws the region order uses too.
//! Nothing here allocates.

use super::dynamic::{below_f64, near_fastest, rendezvous, spare};
use super::{Endpoint, Family, Inputs, MAX_ENDPOINTS, Region, Rng, Stack};
use crate::model::Select;

/// Fills `pool` with a region's endpoints of the family that may be
/// answered (usable ones; non-drained ones when fail-open): those with a
/// positive weight (true), or, when there is none, all of them (false).
pub(super) fn pool_into(
    region: &Region,
    inp: &Inputs<'_>,
    fam: Family,
    fail_open: bool,
    pool: &mut Stack<u8, MAX_ENDPOINTS>,
) -> bool {
    let ok = |e: &Endpoint| {
        e.family() == fam
            && if fail_open {
                inp.not_drained(e)
            } else {
                inp.usable(e)
            }
    };
    for (i, e) in region.endpoints.iter().enumerate() {
        if ok(e) && e.weight > 0 {
            pool.push(i as u8);
        }
    }
    if !pool.is_empty() {
        return true;
    }
    for (i, e) in region.endpoints.iter().enumerate() {
        if ok(e) {
            pool.push(i as u8);
        }
    }
    false
}

/// Index into `pool` (endpoints of `region` with a positive weight) of
/// the next endpoint as `select` draws it.
pub(super) fn draw_index(
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

/// Index into `pool` of the next fallback endpoint (a region whose usable
/// endpoints all have weight 0): by hash, equally, for `select = "hash"`,
/// so that a network keeps its endpoint while the scope says so; at
/// random otherwise.
pub(super) fn fallback_index(
    select: Select,
    pool: &[u8],
    region: &Region,
    net: u64,
    rng: &mut Rng,
) -> usize {
    match select {
        Select::Hash => best(pool, |i| {
            rendezvous(region.endpoints[i as usize].seed, net, 1.0)
        }),
        _ => rng.below(pool.len() as u64) as usize,
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
