//! `[services."name."]`: the names answered by steering, their policy,
//! regions and geo `map`.

use std::collections::{BTreeMap, HashSet};

use super::Errs;
use crate::config::raw::{RawConfig, RawRegion, RawService};
use crate::config::{
    CONTINENTS, MAX_ANSWERS, MAX_SERVICE_REGIONS, MapEntry, Service, WhenAllDown, Zone, in_zone,
    key_segment, normalize_name, parse_map_key,
};
use crate::model::{Policy, Select};

/// `[services]`, in file order; `zones` are the valid zones, `geoip` tells
/// whether a database is configured.
pub(super) fn validate_services(
    raw: &RawConfig,
    zones: &[Zone],
    geoip: bool,
    errs: &mut Errs<'_>,
) -> Vec<Service> {
    let mut services = Vec::new();
    let mut seen_services = HashSet::new();
    for (name, sv) in &raw.services {
        let key = format!("services.{}", key_segment(name));
        let Some(n) = normalize_name(name) else {
            errs.push(key, format!("{name:?} is not a valid DNS name"));
            continue;
        };
        if n.contains('*') {
            errs.push(key.clone(), "a service name cannot hold a wildcard");
        }
        if !seen_services.insert(n.clone()) {
            errs.push(key.clone(), format!("service {n} is listed twice"));
        }
        let zone = zones
            .iter()
            .filter(|z| in_zone(&n, &z.name))
            .max_by_key(|z| z.name.len())
            .map(|z| z.name.clone());
        if zone.is_none() {
            errs.push(
                key.clone(),
                format!("{n} is not inside any configured zone"),
            );
        }
        let zone = zone.unwrap_or_default();
        services.push(validate_service(
            &key,
            n,
            zone,
            sv,
            &raw.regions,
            geoip,
            errs,
        ));
    }
    services
}

/// One service, once its name (`key` is `services.NAME`) and zone are
/// known.
fn validate_service(
    key: &str,
    name: String,
    zone: String,
    sv: &RawService,
    regions: &BTreeMap<String, RawRegion>,
    geoip: bool,
    errs: &mut Errs<'_>,
) -> Service {
    let policy = Policy::from_name(&sv.policy).unwrap_or_else(|| {
        errs.push(
            format!("{key}.policy"),
            format!(
                "unknown policy {:?} (expected geo, weighted, failover, hash, least-loaded or fastest)",
                sv.policy
            ),
        );
        Policy::Geo
    });
    let select = match sv.select.as_deref() {
        None => Select::Weighted,
        Some(other) => Select::from_name(other).unwrap_or_else(|| {
            errs.push(
                format!("{key}.select"),
                format!(
                    "unknown select {other:?} (expected weighted, hash, least-loaded or fastest)"
                ),
            );
            Select::Weighted
        }),
    };
    let hash_prefix = match sv.hash_prefix.as_deref() {
        None => (24, 56),
        Some([v4, v6]) if (1..=32).contains(v4) && (1..=128).contains(v6) => (*v4 as u8, *v6 as u8),
        Some(other) => {
            errs.push(
                format!("{key}.hash_prefix"),
                format!("{other:?} is not [IPv4 prefix 1-32, IPv6 prefix 1-128], e.g. [24, 56]"),
            );
            (24, 56)
        }
    };
    let when_all_down = match sv.when_all_down.as_str() {
        "all" => WhenAllDown::All,
        "nodata" => WhenAllDown::Nodata,
        other => {
            errs.push(
                format!("{key}.when_all_down"),
                format!("unknown value {other:?} (expected \"all\" or \"nodata\")"),
            );
            WhenAllDown::All
        }
    };
    check_service_regions(key, &sv.regions, regions, errs);
    let ttl = match u32::try_from(sv.ttl) {
        Ok(t) if t <= 0x7fff_ffff => t,
        _ => {
            errs.push(
                format!("{key}.ttl"),
                format!("{} is not a TTL (0-2147483647)", sv.ttl),
            );
            30
        }
    };
    let answers = match u32::try_from(sv.answers) {
        Ok(a) if (1..=MAX_ANSWERS).contains(&a) => a,
        _ => {
            errs.push(
                format!("{key}.answers"),
                format!("{} is not between 1 and {MAX_ANSWERS}", sv.answers),
            );
            1
        }
    };
    if sv.map.is_some() && policy != Policy::Geo {
        errs.push(format!("{key}.map"), "only geo services take a map");
    }
    let map = validate_map(key, sv, errs);
    if policy == Policy::Geo && !geoip {
        errs.push(
            format!("{key}.policy"),
            "a geo service needs [geoip] database",
        );
    }
    let min_healthy_regions = match u32::try_from(sv.min_healthy_regions) {
        Ok(n) if n as usize <= sv.regions.len() => n,
        _ => {
            errs.push(
                format!("{key}.min_healthy_regions"),
                format!(
                    "{} must be 0 (no rule) to the service's {} regions",
                    sv.min_healthy_regions,
                    sv.regions.len()
                ),
            );
            0
        }
    };
    let mut fallback = Vec::new();
    for a in &sv.fallback {
        match a.parse::<std::net::IpAddr>() {
            Ok(ip) if !fallback.contains(&ip) => fallback.push(ip),
            Ok(_) => errs.push(format!("{key}.fallback"), format!("{a} is listed twice")),
            Err(_) => errs.push(
                format!("{key}.fallback"),
                format!("{a:?} is not an IP address"),
            ),
        }
    }
    Service {
        fallback,
        name,
        zone,
        regions: sv.regions.clone(),
        policy,
        ttl,
        answers,
        when_all_down,
        map,
        select,
        hash_prefix,
        min_healthy_regions,
    }
}

/// A service's `regions`: at least one, at most [`MAX_SERVICE_REGIONS`],
/// each a configured region, none twice.
fn check_service_regions(
    key: &str,
    list: &[String],
    regions: &BTreeMap<String, RawRegion>,
    errs: &mut Errs<'_>,
) {
    if list.is_empty() {
        errs.push(
            format!("{key}.regions"),
            "a service needs at least one region",
        );
    }
    if list.len() > MAX_SERVICE_REGIONS {
        errs.push(
            format!("{key}.regions"),
            format!("more than {MAX_SERVICE_REGIONS} regions"),
        );
    }
    for (i, r) in list.iter().enumerate() {
        if !regions.contains_key(r) {
            errs.push(
                format!("{key}.regions[{i}]"),
                format!("unknown region {r:?}"),
            );
        } else if list[..i].contains(r) {
            errs.push(
                format!("{key}.regions[{i}]"),
                format!("region {r:?} is listed twice"),
            );
        }
    }
}

/// A service's geo `map`: keys that parse and match different clients,
/// each listing some of the service's regions, none twice.
fn validate_map(key: &str, sv: &RawService, errs: &mut Errs<'_>) -> Vec<MapEntry> {
    let mut map = Vec::new();
    for (k, list) in sv.map.iter().flatten() {
        let mkey = format!("{key}.map.{}", key_segment(k));
        let Some(matcher) = parse_map_key(k) else {
            errs.push(
                mkey,
                format!(
                    "{k:?} is neither a CIDR (\"10.0.0.0/8\"), a country code (\"JP\", \"country:SA\") nor a continent code ({})",
                    CONTINENTS.join(" ")
                ),
            );
            continue;
        };
        if map.iter().any(|m: &MapEntry| m.matcher == matcher) {
            errs.push(
                mkey.clone(),
                format!("{k:?} matches the same clients as another key"),
            );
        }
        if list.is_empty() {
            errs.push(mkey.clone(), "must list at least one region");
        }
        for (i, r) in list.iter().enumerate() {
            if !sv.regions.contains(r) {
                errs.push(
                    format!("{mkey}[{i}]"),
                    format!("region {r:?} is not one of this service's regions"),
                );
            } else if list[..i].contains(r) {
                errs.push(
                    format!("{mkey}[{i}]"),
                    format!("region {r:?} is listed twice"),
                );
            }
        }
        map.push(MapEntry {
            key: k.clone(),
            matcher,
            regions: list.clone(),
        });
    }
    map
}
