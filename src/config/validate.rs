//! From the raw TOML model to a [`Config`]: one function per section of
//! the file, each pushing every problem it finds (with file, key and
//! reason) instead of stopping at the first, so an operator sees them all
//! at once. Sections are checked in file order, and so are their errors.

mod checks;
mod notify;
mod regions;
mod server;
mod services;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawConfig, RawDnssec, RawTransfer, RawTsig, RawZone};
use super::{
    Config, ConfigError, ConfigErrors, DEFAULT_CAPACITY, Dnssec, Primary, Transfer, TsigAlgorithm,
    TsigKey, Zone, key_segment, normalize_name,
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
    let tsig = validate_tsig(&raw.tsig, base, &mut errs);
    let copies = server
        .state
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(base);
    let mut zones = validate_zones(&raw.zones, base, copies, &tsig, &mut errs);
    let checks = checks::validate_checks(&raw.checks, &mut errs);
    let regions = regions::validate_regions(&raw, &mut errs);
    let mut services = services::validate_services(&raw, &zones, geoip.is_some(), &mut errs);
    let webhooks = raw
        .notify
        .as_ref()
        .map(|n| notify::validate_notify(n, base, &mut errs))
        .unwrap_or_default();

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
            tsig,
            webhooks,
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

/// `[zones]`, in file order. A zone transferred from a primary keeps its
/// last good copy in `copies` (the state file's directory).
fn validate_zones(
    raw: &BTreeMap<String, RawZone>,
    base: &Path,
    copies: &Path,
    tsig: &BTreeMap<String, TsigKey>,
    errs: &mut Errs<'_>,
) -> Vec<Zone> {
    let mut zones = Vec::new();
    for (name, z) in raw {
        let key = format!("zones.{}", key_segment(name));
        let n = match normalize_name(name) {
            Some(n) if n.contains('*') => {
                errs.push(key, "a zone name cannot hold a wildcard");
                continue;
            }
            Some(n) if zones.iter().any(|x: &Zone| x.name == n) => {
                errs.push(key, format!("zone {n} is listed twice"));
                continue;
            }
            Some(n) => n,
            None => {
                errs.push(key, format!("{name:?} is not a valid DNS name"));
                continue;
            }
        };
        let primary = z
            .primary
            .as_ref()
            .and_then(|p| match p.parse::<SocketAddr>() {
                Ok(addr) => Some(Primary {
                    addr,
                    tsig: tsig_ref(&z.tsig, &format!("{key}.tsig"), tsig, errs),
                }),
                Err(_) => {
                    errs.push(
                        format!("{key}.primary"),
                        format!("{p:?} is not an address and port (e.g. \"192.0.2.53:53\")"),
                    );
                    None
                }
            });
        if z.primary.is_none() && z.tsig.is_some() {
            errs.push(
                format!("{key}.tsig"),
                "a zone's own tsig key is for transfers from its primary; set primary, or put tsig in [zones.\"...\".transfer]",
            );
        }
        let (file, file_display) = match (&z.file, &z.primary) {
            (Some(f), None) => (resolve(base, f), f.clone()),
            (None, Some(_)) => {
                let copy = copies.join(format!("{n}xfr"));
                let shown = copy.display().to_string();
                (copy, shown)
            }
            (Some(_), Some(_)) => {
                errs.push(
                    key.clone(),
                    "set file or primary, not both: a zone's records come from one source",
                );
                continue;
            }
            (None, None) => {
                errs.push(
                    key.clone(),
                    "missing file (a zone file) or primary (an address to transfer the zone from)",
                );
                continue;
            }
        };
        zones.push(Zone {
            dnssec: z
                .dnssec
                .as_ref()
                .map(|d| validate_dnssec(d, &format!("{key}.dnssec"), base, errs)),
            transfer: z
                .transfer
                .as_ref()
                .map(|t| validate_transfer(t, &format!("{key}.transfer"), tsig, errs)),
            primary,
            name: n,
            file,
            file_display,
        });
    }
    zones
}

/// A reference to a `[tsig.NAME]` key, which must exist.
fn tsig_ref(
    name: &Option<String>,
    key: &str,
    tsig: &BTreeMap<String, TsigKey>,
    errs: &mut Errs<'_>,
) -> Option<String> {
    let n = name.as_ref()?;
    if tsig.contains_key(n) {
        Some(n.clone())
    } else {
        let known: Vec<&str> = tsig.keys().map(String::as_str).collect();
        errs.push(
            key,
            format!(
                "unknown TSIG key {n:?} (known: {})",
                if known.is_empty() {
                    "none; define it in [tsig.NAME]".to_string()
                } else {
                    known.join(", ")
                }
            ),
        );
        None
    }
}

/// `[zones."name.".transfer]`.
fn validate_transfer(
    t: &RawTransfer,
    key: &str,
    tsig: &BTreeMap<String, TsigKey>,
    errs: &mut Errs<'_>,
) -> Transfer {
    let mut allow = Vec::new();
    for a in &t.allow {
        let net = a
            .parse::<ipnet::IpNet>()
            .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match net {
            Ok(n) => allow.push(n.trunc()),
            Err(_) => errs.push(
                format!("{key}.allow"),
                format!("{a:?} is not an address or network"),
            ),
        }
    }
    let mut notify = Vec::new();
    for a in &t.notify {
        match a.parse::<SocketAddr>() {
            Ok(s) => notify.push(s),
            Err(_) => errs.push(
                format!("{key}.notify"),
                format!("{a:?} is not an address and port (e.g. \"192.0.2.54:53\")"),
            ),
        }
    }
    Transfer {
        allow,
        tsig: tsig_ref(&t.tsig, &format!("{key}.tsig"), tsig, errs),
        notify,
    }
}

/// `[tsig.NAME]`: algorithm, and the secret inline or in a file.
fn validate_tsig(
    raw: &BTreeMap<String, RawTsig>,
    base: &Path,
    errs: &mut Errs<'_>,
) -> BTreeMap<String, TsigKey> {
    let mut out = BTreeMap::new();
    for (name, t) in raw {
        let key = format!("tsig.{}", key_segment(name));
        let Some(dns_name) = normalize_name(name) else {
            errs.push(
                key,
                format!("{name:?} is not a valid key name (a DNS name)"),
            );
            continue;
        };
        let algorithm = match t.algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => {
                errs.push(
                    format!("{key}.algorithm"),
                    format!("{other:?} is not supported: hmac-sha256 or hmac-sha512"),
                );
                continue;
            }
        };
        let text = match (&t.secret, &t.secret_file) {
            (Some(s), None) => s.clone(),
            (None, Some(f)) => match crate::os::read_input_text(&resolve(base, f)) {
                Ok(s) => s,
                Err(e) => {
                    errs.push(format!("{key}.secret_file"), format!("{f}: {e}"));
                    continue;
                }
            },
            _ => {
                errs.push(key, "set secret or secret_file (one of them)");
                continue;
            }
        };
        let secret = match data_encoding::BASE64.decode(text.trim().as_bytes()) {
            Ok(b) if b.len() >= 16 => b,
            Ok(_) => {
                errs.push(key, "the secret is shorter than 16 bytes; make one with `tsig-keygen` or `openssl rand -base64 32`");
                continue;
            }
            Err(_) => {
                errs.push(key, "the secret is not base64");
                continue;
            }
        };
        out.insert(
            name.clone(),
            TsigKey {
                name: dns_name,
                algorithm,
                secret,
            },
        );
    }
    out
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
