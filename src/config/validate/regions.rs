//! `[regions.NAME]`: where a region is, its weight and capacity, and the
//! endpoints it hands out.

use std::net::IpAddr;

use super::{Errs, check_capacity, check_weight};
use crate::config::raw::{RawConfig, RawEndpoint, RawRegion, RawShed};
use crate::config::{DEFAULT_CAPACITY, Endpoint, MAX_REGION_ENDPOINTS, Region, Shed, key_segment};

/// `[regions]`, in file order (checks are looked up in `raw.checks`).
pub(super) fn validate_regions(raw: &RawConfig, errs: &mut Errs<'_>) -> Vec<Region> {
    let mut regions = Vec::new();
    for (name, r) in &raw.regions {
        let key = format!("regions.{}", key_segment(name));
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || name.is_empty()
        {
            errs.push(
                key.clone(),
                format!("region name {name:?} may hold only letters, digits, '-' and '_'"),
            );
        }
        if !(r.location.lat.is_finite() && (-90.0..=90.0).contains(&r.location.lat)) {
            errs.push(
                format!("{key}.location.lat"),
                format!("{} is not between -90 and 90", r.location.lat),
            );
        }
        if !(r.location.lon.is_finite() && (-180.0..=180.0).contains(&r.location.lon)) {
            errs.push(
                format!("{key}.location.lon"),
                format!("{} is not between -180 and 180", r.location.lon),
            );
        }
        let weight = check_weight(errs, &format!("{key}.weight"), r.weight);
        let capacity = match r.capacity {
            None => DEFAULT_CAPACITY,
            Some(c) => check_capacity(errs, &format!("{key}.capacity"), c),
        };
        let shed = r
            .shed
            .as_ref()
            .and_then(|sh| validate_shed(&format!("{key}.shed"), sh, errs));
        if let Some(c) = &r.check
            && !raw.checks.contains_key(c)
        {
            errs.push(format!("{key}.check"), format!("unknown check {c:?}"));
        }
        let bias = match i8::try_from(r.bias) {
            Ok(b) if (-99..=99).contains(&b) => b,
            _ => {
                errs.push(
                    format!("{key}.bias"),
                    format!(
                        "{} is not between -99 and 99 (positive grows the region's catchment, negative shrinks it)",
                        r.bias
                    ),
                );
                0
            }
        };
        let endpoints = validate_endpoints(&key, r, capacity, errs);
        regions.push(Region {
            name: name.clone(),
            lat: r.location.lat,
            lon: r.location.lon,
            weight,
            check: r.check.clone(),
            endpoints,
            capacity,
            shed,
            bias,
        });
    }
    regions
}

/// `shed = { low, high }` (`key` is `regions.NAME.shed`).
fn validate_shed(key: &str, sh: &RawShed, errs: &mut Errs<'_>) -> Option<Shed> {
    let ok = |v: f64| v.is_finite() && (0.0..=10.0).contains(&v);
    if !ok(sh.low) || !ok(sh.high) {
        errs.push(
            key,
            "low and high are utilisations between 0 and 10 (e.g. 0.8, 0.95)",
        );
        None
    } else if sh.low >= sh.high {
        errs.push(
            key,
            format!("low {} must be below high {}", sh.low, sh.high),
        );
        None
    } else {
        Some(Shed {
            low: sh.low,
            high: sh.high,
        })
    }
}

/// A region's endpoints (`key` is `regions.NAME`); one whose address does
/// not parse is left out. `capacity` is the region's, for endpoints that
/// set none.
fn validate_endpoints(
    key: &str,
    r: &RawRegion,
    capacity: f64,
    errs: &mut Errs<'_>,
) -> Vec<Endpoint> {
    if r.endpoints.is_empty() {
        errs.push(
            format!("{key}.endpoints"),
            "a region needs at least one endpoint",
        );
    }
    if r.endpoints.len() > MAX_REGION_ENDPOINTS {
        errs.push(
            format!("{key}.endpoints"),
            format!("more than {MAX_REGION_ENDPOINTS} endpoints"),
        );
    }
    let mut endpoints: Vec<Endpoint> = Vec::new();
    for (i, e) in r.endpoints.iter().enumerate() {
        let ekey = format!("{key}.endpoints[{i}]");
        if let Some(ep) = validate_endpoint(&ekey, e, &endpoints, capacity, errs) {
            endpoints.push(ep);
        }
    }
    endpoints
}

/// One endpoint (`key` is `regions.NAME.endpoints[i]`), given the ones
/// before it in its region.
fn validate_endpoint(
    ekey: &str,
    e: &RawEndpoint,
    before: &[Endpoint],
    capacity: f64,
    errs: &mut Errs<'_>,
) -> Option<Endpoint> {
    let Ok(address) = e.address.parse::<IpAddr>() else {
        errs.push(
            format!("{ekey}.address"),
            format!("{:?} is not an IP address", e.address),
        );
        return None;
    };
    if address.is_unspecified() || address.is_multicast() {
        errs.push(
            format!("{ekey}.address"),
            format!("{address} cannot be handed out"),
        );
    }
    let probe = match &e.probe {
        None => address,
        Some(p) => match p.parse::<IpAddr>() {
            Ok(a) => a,
            Err(_) => {
                errs.push(
                    format!("{ekey}.probe"),
                    format!("{p:?} is not an IP address"),
                );
                address
            }
        },
    };
    if before.iter().any(|x| x.address == address) {
        errs.push(
            format!("{ekey}.address"),
            format!("{address} is listed twice in this region"),
        );
    }
    let weight = check_weight(errs, &format!("{ekey}.weight"), e.weight);
    let capacity = match e.capacity {
        None => capacity,
        Some(c) => check_capacity(errs, &format!("{ekey}.capacity"), c),
    };
    Some(Endpoint {
        address,
        weight,
        probe,
        capacity,
    })
}
