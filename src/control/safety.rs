//! The safety rule (AWS Route 53 ARC's assertion rules, SPEC §6): a drain
//! that would leave a service with fewer usable regions (an endpoint up
//! and not drained) than its `min_healthy_regions` is refused, naming the
//! service; a drain that takes no usable region from it is not. Each
//! address family a service answers is held to the minimum on its own.
//!
//! Pure: it reads a snapshot and the drains not yet in it, nothing else.

use crate::state::Snapshot;
use crate::steer::{self, Endpoint, Family, Region};
use crate::view::DrainKey;

/// Checks `target` against every service's `min_healthy_regions`, as if
/// the drains in `pending` (taken, not yet in the snapshot) were
/// already made. `Err` names each service the drain would leave short.
pub(super) fn check(
    snap: &Snapshot,
    pending: &[&DrainKey],
    target: &DrainKey,
) -> Result<(), String> {
    if let DrainKey::Dial(_) = target {
        return Ok(()); // a dial leaves the region usable
    }
    let drained_by = |r: &Region, e: &Endpoint, t: &DrainKey| match t {
        DrainKey::Region(n) => **n == *r.name,
        DrainKey::Endpoint(a) => *a == e.addr,
        DrainKey::Dial(_) => false,
    };
    // usable for one family: an endpoint of it up and not drained
    let usable = |r: &Region, fam: Family, with_drain: bool| {
        r.endpoints.iter().any(|e| {
            let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
            e.family() == fam
                && f & steer::UP != 0
                && f & steer::DRAINED == 0
                && !pending.iter().any(|t| drained_by(r, e, t))
                && !(with_drain && drained_by(r, e, target))
        })
    };
    let data = &snap.data;
    let mut refused = Vec::new();
    for svc in &data.config.services {
        if svc.min_healthy_regions == 0 {
            continue;
        }
        let regions: Vec<&Region> = svc
            .regions
            .iter()
            .filter_map(|n| data.region_index.get(n))
            .filter_map(|&i| data.regions.get(usize::from(i)))
            .collect();
        let families: Vec<Family> = [Family::V4, Family::V6]
            .into_iter()
            .filter(|&f| {
                regions
                    .iter()
                    .any(|r| r.endpoints.iter().any(|e| e.family() == f))
            })
            .collect();
        for &fam in &families {
            let now: Vec<&str> = regions
                .iter()
                .filter(|r| usable(r, fam, false))
                .map(|r| &*r.name)
                .collect();
            let after = regions.iter().filter(|r| usable(r, fam, true)).count();
            if after < now.len() && after < svc.min_healthy_regions as usize {
                refused.push(format!(
                    "{} would have {after} usable region{}{} (min_healthy_regions = {}; usable now: {})",
                    svc.name,
                    if after == 1 { "" } else { "s" },
                    match (families.len(), fam) {
                        (1, _) => "",
                        (_, Family::V4) => " for IPv4",
                        (_, Family::V6) => " for IPv6",
                    },
                    svc.min_healthy_regions,
                    if now.is_empty() {
                        "none".to_string()
                    } else {
                        now.join(", ")
                    }
                ));
            }
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refused: draining {target} breaks a safety rule: {}; drain with force=true to override",
        refused.join("; ")
    ))
}
