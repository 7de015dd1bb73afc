//! Endpoints inside a region (SPEC §4.4): how `select` draws them, and
//! the weighted draws the region order uses too. Nothing here allocates.

use super::Rng;
use super::dynamic::below_f64;

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
