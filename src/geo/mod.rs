//! GeoIP: client address -> [`Location`] (country, continent, coordinates)
//! plus the prefix length of the database network that matched, read from
//! a MaxMind DB (GeoIP2/GeoLite2 City or Country layout).
//!
//! The answer path does not decode records: [`table`] compiles the
//! database once into a trie of location classes, shared by every service.

use std::net::IpAddr;
use std::path::Path;

use std::sync::Arc;

use ipnet::IpNet;
use maxminddb::Reader;
use serde::Deserialize;

pub mod scope;
pub mod table;

/// Earth's mean radius in km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Errors opening a database.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a MaxMind DB we can use.
    #[error("{path}: not a usable MaxMind DB: {reason}")]
    Invalid {
        /// File.
        path: String,
        /// Cause.
        reason: String,
    },
}

/// Where a client is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// ISO country code, `[0, 0]` when unknown.
    pub country: [u8; 2],
    /// Continent code, `[0, 0]` when unknown.
    pub continent: [u8; 2],
    /// Latitude and longitude in degrees, when the database has them.
    pub coords: Option<(f64, f64)>,
    /// Unit vector of `coords` (for distance ordering by dot product).
    pub unit: [f64; 3],
}

impl Location {
    /// Country code as text.
    pub fn country_str(&self) -> Option<&str> {
        code_str(&self.country)
    }

    /// Continent code as text.
    pub fn continent_str(&self) -> Option<&str> {
        code_str(&self.continent)
    }
}

fn code_str(c: &[u8; 2]) -> Option<&str> {
    if c[0] == 0 {
        None
    } else {
        std::str::from_utf8(c).ok()
    }
}

/// Unit vector on the sphere for a latitude/longitude in degrees.
pub fn unit_vector(lat: f64, lon: f64) -> [f64; 3] {
    let (la, lo) = (lat.to_radians(), lon.to_radians());
    [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()]
}

/// Great-circle distance in km between two unit vectors.
pub fn distance_km(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    let dot = (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]).clamp(-1.0, 1.0);
    dot.acos() * EARTH_RADIUS_KM
}

/// The result of locating one address.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located {
    /// The location, if known.
    pub location: Option<Location>,
    /// Prefix length of the database network containing the address (also
    /// when it has no data); for special-purpose addresses at least the
    /// length of the special range.
    pub prefix: u8,
}

#[derive(Deserialize)]
struct Rec<'a> {
    #[serde(borrow)]
    country: Option<Code<'a>>,
    #[serde(borrow)]
    continent: Option<Code<'a>>,
    location: Option<Coords>,
}

#[derive(Deserialize)]
struct Code<'a> {
    iso_code: Option<&'a str>,
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Coords {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// The database bytes, shared by the reader and the tree compiler.
#[derive(Clone)]
struct Bytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An opened database.
pub struct GeoDb {
    reader: Reader<Bytes>,
    raw: Arc<Vec<u8>>,
    /// The file it came from.
    pub path: String,
    /// `database_type` from the metadata.
    pub kind: String,
    /// Build time from the metadata (Unix seconds).
    pub build_epoch: u64,
}

impl std::fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoDb")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish()
    }
}

impl GeoDb {
    /// Opens and checks a database file.
    pub fn open(path: &Path, display: &str) -> Result<GeoDb, GeoError> {
        let buf = crate::os::read_input(path).map_err(|source| GeoError::Read {
            path: display.to_string(),
            source,
        })?;
        GeoDb::from_bytes(buf, display)
    }

    /// Opens a database held in memory.
    pub fn from_bytes(buf: Vec<u8>, display: &str) -> Result<GeoDb, GeoError> {
        let invalid = |reason: String| GeoError::Invalid {
            path: display.to_string(),
            reason,
        };
        let raw = Arc::new(buf);
        let reader = Reader::from_source(Bytes(raw.clone())).map_err(|e| invalid(e.to_string()))?;
        let md = reader.metadata();
        let kind = md.database_type.clone();
        let build_epoch = md.build_epoch;
        if md.ip_version != 4 && md.ip_version != 6 {
            return Err(invalid(format!("ip_version {}", md.ip_version)));
        }
        Ok(GeoDb {
            reader,
            raw,
            path: display.to_string(),
            kind,
            build_epoch,
        })
    }

    /// Locates an address, decoding its record (tests and tools; the
    /// server uses a compiled [`table::GeoTable`]).
    pub fn locate(&self, ip: IpAddr) -> Located {
        let canonical = ip.to_canonical();
        let mut located = self.locate_canonical(canonical);
        if ip.is_ipv6() && canonical.is_ipv4() {
            // an IPv4-mapped address: report the prefix in IPv6 terms
            located.prefix = located.prefix.saturating_add(96).min(128);
        }
        located
    }

    fn locate_canonical(&self, ip: IpAddr) -> Located {
        let special = special_prefix(ip);
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Located {
                location: None,
                prefix: special.unwrap_or(0),
            };
        }
        let Ok(res) = self.reader.lookup(ip) else {
            return Located {
                location: None,
                prefix: special.unwrap_or(0),
            };
        };
        let prefix = res.network().map(|n| n.prefix()).unwrap_or(0);
        if let Some(sp) = special {
            return Located {
                location: None,
                prefix: prefix.max(sp),
            };
        }
        let location = match res.decode::<Rec<'_>>() {
            Ok(Some(rec)) => to_location(&rec),
            _ => None,
        };
        Located { location, prefix }
    }
}

impl GeoDb {
    /// Decodes the record of an address as stored, without the
    /// special-range rule of [`GeoDb::locate`]; an undecodable record is
    /// an error (the table compiler reports it rather than guess).
    pub fn decode(&self, ip: IpAddr) -> Result<Option<Location>, String> {
        let res = self.reader.lookup(ip).map_err(|e| e.to_string())?;
        match res.decode::<Rec<'_>>() {
            Ok(Some(rec)) => Ok(to_location(&rec)),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn to_location(rec: &Rec<'_>) -> Option<Location> {
    let code = |s: Option<&str>| -> [u8; 2] {
        match s.map(str::as_bytes) {
            Some([a, b]) if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                [a.to_ascii_uppercase(), b.to_ascii_uppercase()]
            }
            _ => [0, 0],
        }
    };
    let country = code(rec.country.as_ref().and_then(|c| c.iso_code));
    let continent = code(rec.continent.as_ref().and_then(|c| c.code));
    let coords = rec
        .location
        .as_ref()
        .and_then(|l| match (l.latitude, l.longitude) {
            (Some(la), Some(lo))
                if la.is_finite() && lo.is_finite() && la.abs() <= 90.0 && lo.abs() <= 180.0 =>
            {
                Some((la, lo))
            }
            _ => None,
        });
    if country[0] == 0 && continent[0] == 0 && coords.is_none() {
        return None;
    }
    Some(Location {
        country,
        continent,
        coords,
        unit: coords.map_or([0.0; 3], |(la, lo)| unit_vector(la, lo)),
    })
}

/// Special-purpose ranges (private, loopback, link-local, CGNAT,
/// documentation, multicast, ...): addresses there never have a location,
/// whatever a database says.
pub const SPECIAL_RANGES: [&str; 20] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
    "2001:db8::/32",
    "64:ff9b:1::/48",
];

/// [`SPECIAL_RANGES`], parsed once.
pub fn special_ranges() -> &'static [IpNet] {
    static PARSED: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
        SPECIAL_RANGES
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    });
    &PARSED
}

/// If `ip` is in a special-purpose range, the range's prefix length.
pub fn special_prefix(ip: IpAddr) -> Option<u8> {
    special_ranges()
        .iter()
        .find(|n| n.contains(&ip))
        .map(IpNet::prefix_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges() {
        let cases: &[(&str, Option<u8>)] = &[
            ("10.1.2.3", Some(8)),
            ("127.0.0.1", Some(8)),
            ("192.168.1.1", Some(16)),
            ("172.20.0.1", Some(12)),
            ("172.32.0.1", None),
            ("100.64.1.1", Some(10)),
            ("8.8.8.8", None),
            ("193.0.6.1", None),
            ("::1", Some(96)),
            ("fd00::1", Some(7)),
            ("fe80::1", Some(10)),
            ("2001:db8::1", Some(32)),
            ("2a00:1450::1", None),
        ];
        for (ip, want) in cases {
            assert_eq!(special_prefix(ip.parse().unwrap()), *want, "{ip}");
        }
    }

    #[test]
    fn distances() {
        let dublin = unit_vector(53.35, -6.26);
        let ashburn = unit_vector(39.04, -77.49);
        let amsterdam = unit_vector(52.37, 4.90);
        let d = distance_km(&dublin, &ashburn);
        assert!((5400.0..5600.0).contains(&d), "{d}");
        let d = distance_km(&dublin, &amsterdam);
        assert!((700.0..800.0).contains(&d), "{d}");
        assert!(distance_km(&dublin, &dublin) < 1e-6);
    }
}
