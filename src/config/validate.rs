//! From the raw TOML model to a [`Config`]: one function per section of
//! the file, each pushing every problem it finds (with file, key and
//! reason) instead of stopping at the first, so an operator sees them all
//! at once. Sections are checked in file order, and so are their errors.

mod checks;
mod regions;
mod server;
mod services;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawConfig, RawDnssec, RawZone};
use super::{
    Config, ConfigError, ConfigErrors, DEFAULT_CAPACITY, Dnssec, Zone, key_segment, normalize_name,
};

/// The errors found so far, all in one file.
struct Errs<'a> {
    file: &'a str,
    list: Vec<ConfigError>,
}

impl Errs<'_> {
    fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.list.push(ConfigError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            reason: reason.into(),
        });
    }
}

/// Checks every section of `raw` (read from `path`; relative paths are
/// taken from `base`).
pub(super) fn validate(raw: RawConfig, path: &Path, base: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let mut errs = Errs {
        file: &file,
        list: Vec::new(),
    };
    let server = server::validate_server(&raw.server, base, &mut errs);
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|c| server::validate_cluster(c, &mut errs));
    let geoip = raw.geoip.as_ref().map(|g| resolve(base, &g.database));
    let geoip_watch = raw.geoip.as_ref().is_none_or(|g| g.watch);
    let mut zones = validate_zones(&raw.zones, base, &mut errs);
    let checks = checks::validate_checks(&raw.checks, &mut errs);
    let regions = regions::validate_regions(&raw, &mut errs);
    let mut services = services::validate_services(&raw, &zones, geoip.is_some(), &mut errs);

    zones.sort_by(|a, b| a.name.cmp(&b.name));
    services.sort_by(|a, b| a.name.cmp(&b.name));
    if errs.list.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            server,
            geoip,
            geoip_watch,
            zones,
            checks,
            regions,
            services,
            cluster,
            shared_text: String::new(),
        })
    } else {
        Err(ConfigErrors(errs.list))
    }
}

/// A path from the config, taken from the config's directory unless it is
/// absolute.
fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// `[zones]`, in file order.
fn validate_zones(raw: &BTreeMap<String, RawZone>, base: &Path, errs: &mut Errs<'_>) -> Vec<Zone> {
    let mut zones = Vec::new();
    for (name, z) in raw {
        let key = format!("zones.{}", key_segment(name));
        match normalize_name(name) {
            Some(n) if n.contains('*') => errs.push(key, "a zone name cannot hold a wildcard"),
            Some(n) if zones.iter().any(|x: &Zone| x.name == n) => {
                errs.push(key, format!("zone {n} is listed twice"))
            }
            Some(n) => zones.push(Zone {
                name: n,
                file: resolve(base, &z.file),
                file_display: z.file.clone(),
                dnssec: z
                    .dnssec
                    .as_ref()
                    .map(|d| validate_dnssec(d, &format!("{key}.dnssec"), base, errs)),
            }),
            None => errs.push(key, format!("{name:?} is not a valid DNS name")),
        }
    }
    zones
}

/// Longest signature lifetime accepted.
const MAX_VALIDITY: Duration = Duration::from_secs(366 * 86_400);

/// `[zones."name.".dnssec]`: the key files are read when the zone is
/// compiled (by `dnssec::keys`); here only their list and the timing.
fn validate_dnssec(d: &RawDnssec, key: &str, base: &Path, errs: &mut Errs<'_>) -> Dnssec {
    if d.keys.is_empty() {
        errs.push(
            format!("{key}.keys"),
            "no key files: list at least one BIND key file (dnssec-keygen)",
        );
    }
    let mut keys: Vec<(PathBuf, String)> = Vec::new();
    for k in &d.keys {
        let path = resolve(base, k);
        if keys.iter().any(|(p, _)| *p == path) {
            errs.push(format!("{key}.keys"), format!("{k} is listed twice"));
        } else {
            keys.push((path, k.clone()));
        }
    }
    if let Some(m) = &d.denial
        && m != "compact"
    {
        errs.push(
            format!("{key}.denial"),
            format!("{m:?} is not a denial mode; the one mode is \"compact\" (RFC 9824)"),
        );
    }
    let mut duration = |name: &str, v: &Option<String>, default: Duration| match v {
        None => default,
        Some(s) => match parse_duration(s) {
            Ok(d) => d,
            Err(e) => {
                errs.push(format!("{key}.{name}"), e);
                default
            }
        },
    };
    let validity = duration("validity", &d.validity, Dnssec::VALIDITY);
    let refresh = duration("refresh", &d.refresh, Dnssec::REFRESH);
    if validity < Duration::from_secs(7200) || validity > MAX_VALIDITY {
        errs.push(format!("{key}.validity"), "must be between 2h and 366d");
    } else if refresh < Duration::from_secs(3600) || refresh + Duration::from_secs(3600) > validity
    {
        errs.push(
            format!("{key}.refresh"),
            format!(
                "must be at least 1h, and at least 1h shorter than validity ({}): signatures are re-made every validity - refresh",
                humantime::format_duration(validity)
            ),
        );
    }
    Dnssec {
        keys,
        validity,
        refresh,
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"2s\", \"1m\""))
}

fn check_capacity(errs: &mut Errs<'_>, key: &str, c: f64) -> f64 {
    if c.is_finite() && c > 0.0 {
        c
    } else {
        errs.push(
            key,
            format!("{c} is not a capacity: a load greater than 0, in the unit of the check's load_header"),
        );
        DEFAULT_CAPACITY
    }
}

fn check_weight(errs: &mut Errs<'_>, key: &str, w: i64) -> u32 {
    match u32::try_from(w) {
        Ok(v) if v <= 1_000_000 => v,
        _ if w < 0 => {
            errs.push(key, format!("{w} is negative"));
            0
        }
        _ => {
            errs.push(key, format!("{w} is more than 1000000"));
            0
        }
    }
}
