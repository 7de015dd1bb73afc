//! Steering by what probes measure and by who asks (SPEC §4.3, §4.4,
//! §4.7): rendezvous hashing of the client network, load-aware and
//! latency-aware weights, and geo spillover. Pure functions over the
//! snapshot's per-endpoint [`Live`] values; nothing here allocates.

use std::net::IpAddr;

use super::{Endpoint, Family, Region, Rng};

/// What the probes last measured of one endpoint (per slot in a snapshot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    /// Load reported by its load balancer; NaN when unknown (no header,
    /// garbage, or older than three intervals).
    pub load: f32,
    /// Smoothed probe latency (EWMA, alpha 0.3, over passing probes) in
    /// milliseconds; NaN when unknown.
    pub latency_ms: f32,
}

impl Default for Live {
    fn default() -> Self {
        Live::UNKNOWN
    }
}

impl Live {
    /// Nothing measured.
    pub const UNKNOWN: Live = Live {
        load: f32::NAN,
        latency_ms: f32::NAN,
    };
}

/// Latencies within this factor of the fastest, plus [`FASTEST_SLACK_MS`],
/// count as equally fast (SPEC §4.3).
pub const FASTEST_FACTOR: f32 = 1.2;
/// See [`FASTEST_FACTOR`].
pub const FASTEST_SLACK_MS: f32 = 1.0;

/// A 64-bit mixer (the finalizer of splitmix64): spreads seeds and keys.
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable seed for a name or an address (FNV-1a, then mixed).
pub fn seed(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    mix(h)
}

/// The key of a client network: the address (IPv4-mapped addresses as
/// IPv4) masked to the prefix of its family, mixed.
#[inline]
pub fn net_key(addr: IpAddr, prefix: (u8, u8)) -> u64 {
    match addr.to_canonical() {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.0.min(32)))
                .unwrap_or(0);
            mix(u64::from(u32::from(a) & mask) | (4 << 56))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.1.min(128)))
                .unwrap_or(0);
            let v = u128::from(a) & mask;
            mix(mix(v as u64) ^ ((v >> 64) as u64) ^ (6 << 56))
        }
    }
}

/// A uniform number in (0, 1) from a seed and a client key.
#[inline]
pub fn unit(seed: u64, key: u64) -> f64 {
    let x = mix(seed ^ key.rotate_left(17));
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Weighted rendezvous score: the highest wins, and each item wins for a
/// share of keys in proportion to its weight; when one leaves, only the
/// keys it won move.
#[inline]
pub fn rendezvous(seed: u64, key: u64, weight: f64) -> f64 {
    if weight <= 0.0 {
        return f64::NEG_INFINITY;
    }
    weight / -unit(seed, key).ln()
}

/// An endpoint's spare share: `weight × max(0, 1 − load / capacity)`; an
/// unknown load counts as empty.
#[inline]
pub fn spare(e: &Endpoint, live: Live) -> f64 {
    let w = f64::from(e.weight);
    if live.load.is_nan() {
        return w;
    }
    w * (1.0 - f64::from(live.load) / f64::from(e.capacity)).max(0.0)
}

/// Whether a latency is within the tolerance of the fastest one.
#[inline]
pub fn near_fastest(latency_ms: f32, fastest_ms: f32) -> bool {
    !latency_ms.is_nan() && latency_ms <= fastest_ms * FASTEST_FACTOR + FASTEST_SLACK_MS
}

/// A region's load over its usable endpoints of a family with a known
/// load: (sum of loads, sum of capacities); `None` when no load is known.
pub fn region_load(
    r: &Region,
    fam: Family,
    usable: impl Fn(&Endpoint) -> bool,
    live: &[Live],
) -> Option<(f64, f64)> {
    let mut load = 0.0;
    let mut cap = 0.0;
    let mut known = false;
    for e in r
        .endpoints
        .iter()
        .filter(|e| e.family() == fam && usable(e))
    {
        let l = live.get(e.slot as usize).copied().unwrap_or(Live::UNKNOWN);
        if !l.load.is_nan() {
            known = true;
            load += f64::from(l.load);
            cap += f64::from(e.capacity);
        }
    }
    known.then_some((load, cap))
}

/// The share of a shedding region's clients sent on (SPEC §4.7): 0 at or
/// below `low`, rising linearly to 1 at `high`.
#[inline]
pub fn shed_ratio(utilisation: f64, low: f64, high: f64) -> f64 {
    ((utilisation - low) / (high - low)).clamp(0.0, 1.0)
}

/// A random number in [0, total) for weighted draws over floats.
#[inline]
pub fn below_f64(rng: &mut Rng, total: f64) -> f64 {
    ((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) * total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_keys_follow_the_prefix() {
        let p = (24, 56);
        let k = |s: &str| net_key(s.parse().unwrap(), p);
        assert_eq!(k("192.0.2.1"), k("192.0.2.254"));
        assert_ne!(k("192.0.2.1"), k("192.0.3.1"));
        assert_eq!(k("::ffff:192.0.2.9"), k("192.0.2.1"));
        assert_eq!(k("2001:db8:0:100::1"), k("2001:db8:0:1ff::9"));
        assert_ne!(k("2001:db8:0:100::1"), k("2001:db8:0:200::1"));
        let k8 = |s: &str| net_key(s.parse().unwrap(), (8, 56));
        assert_eq!(k8("10.1.2.3"), k8("10.200.0.0"));
        assert_ne!(k8("10.1.2.3"), k8("11.1.2.3"));
    }

    #[test]
    fn rendezvous_shares_follow_weights_and_only_the_leavers_keys_move() {
        let seeds: Vec<u64> = (0..3u8).map(|i| seed(&[i])).collect();
        let weights = [3.0, 1.0, 1.0];
        let winner = |key: u64, alive: &[bool]| {
            (0..3)
                .filter(|&i| alive[i])
                .max_by(|&a, &b| {
                    rendezvous(seeds[a], key, weights[a])
                        .total_cmp(&rendezvous(seeds[b], key, weights[b]))
                })
                .unwrap()
        };
        let keys: Vec<u64> = (0..30_000u64).map(mix).collect();
        let mut count = [0usize; 3];
        for &k in &keys {
            count[winner(k, &[true; 3])] += 1;
        }
        let share = |i: usize| count[i] as f64 / keys.len() as f64;
        assert!((share(0) - 0.6).abs() < 0.02, "{count:?}");
        assert!((share(1) - 0.2).abs() < 0.02, "{count:?}");
        // endpoint 1 leaves: only its keys move
        for &k in &keys {
            let before = winner(k, &[true; 3]);
            let after = winner(k, &[true, false, true]);
            if before != 1 {
                assert_eq!(before, after);
            }
        }
    }

    #[test]
    fn spare_shares_and_tolerance() {
        let e = Endpoint {
            addr: "192.0.2.1".parse().unwrap(),
            weight: 2,
            slot: 0,
            capacity: 100.0,
            seed: 1,
        };
        let live = |load: f32| Live {
            load,
            latency_ms: f32::NAN,
        };
        assert_eq!(spare(&e, live(25.0)), 1.5);
        assert_eq!(spare(&e, live(150.0)), 0.0);
        assert_eq!(spare(&e, live(f32::NAN)), 2.0);
        assert!(near_fastest(12.0, 10.0));
        assert!(near_fastest(13.0, 10.0));
        assert!(!near_fastest(13.1, 10.0));
        assert!(!near_fastest(f32::NAN, 10.0));
        assert!((shed_ratio(0.85, 0.8, 0.9) - 0.5).abs() < 1e-9);
        assert_eq!(shed_ratio(0.5, 0.8, 0.9), 0.0);
        assert_eq!(shed_ratio(0.95, 0.8, 0.9), 1.0);
    }
}
