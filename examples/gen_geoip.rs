//! Generates the demo GeoIP database (`geoip/demo-city.mmdb`) from its CSV
//! source (`geoip/demo-city.csv`).
//!
//! ```text
//! cargo run --example gen_geoip [-- CSV_PATH [MMDB_PATH]]
//! ```
//!
//! The output is a MaxMind DB in the GeoLite2-City layout: `database_type`
//! `"GeoLite2-City"`, `ip_version` 6 with IPv4 networks in the standard
//! `::/96` subtree, English names only. Each CSV row becomes one record:
//!
//! ```text
//! { "continent":          { "code": "EU", "names": { "en": "Europe" } },
//!   "country":            { "iso_code": "NL", "names": { "en": "Netherlands" } },
//!   "registered_country": { "iso_code": "NL", "names": { "en": "Netherlands" } },
//!   "location":           { "latitude": 52.3735, "longitude": 4.8951, "accuracy_radius": 20 },
//!   "city":               { "names": { "en": "Amsterdam" } } }   // omitted when empty
//! ```
//!
//! `accuracy_radius` is [`CITY_ACCURACY_KM`] for rows with a city and
//! [`COUNTRY_ACCURACY_KM`] for country-level rows. `build_epoch` is taken from
//! `SOURCE_DATE_EPOCH` when set (for byte-identical rebuilds), else the
//! current time.
//!
//! The CSV is plain comma-separated text (no quoting) with the header
//! `network,country,continent,latitude,longitude,city`. Every row is checked
//! (prefix syntax, host bits, special-purpose space, overlaps, country and
//! continent codes, coordinate ranges) and errors name the offending line.
//! After writing, the file is read back with the `maxminddb` crate, verified,
//! and every row is looked up again.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;
use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde::{Deserialize, Serialize};

/// Default CSV source, relative to the crate root.
const DEFAULT_CSV: &str = "geoip/demo-city.csv";
/// Default output path, relative to the crate root.
const DEFAULT_MMDB: &str = "geoip/demo-city.mmdb";
/// The exact header line the CSV must start with.
const HEADER: &str = "network,country,continent,latitude,longitude,city";
/// `location.accuracy_radius` (km) for rows that name a city.
const CITY_ACCURACY_KM: u16 = 20;
/// `location.accuracy_radius` (km) for country-level rows (no city).
const COUNTRY_ACCURACY_KM: u16 = 1000;
/// Depth of the IPv4 subtree (`::/96`) in an IPv6 database.
const IPV4_SUBTREE_BITS: u8 = 96;

/// Continent codes as used by GeoLite2, with their English names.
const CONTINENTS: &[(&str, &str)] = &[
    ("AF", "Africa"),
    ("AN", "Antarctica"),
    ("AS", "Asia"),
    ("EU", "Europe"),
    ("NA", "North America"),
    ("OC", "Oceania"),
    ("SA", "South America"),
];

/// Countries the demo data may use: ISO 3166-1 alpha-2 code, English name,
/// and the continent code GeoLite2 assigns. Extend when adding rows.
const COUNTRIES: &[(&str, &str, &str)] = &[
    ("AR", "Argentina", "SA"),
    ("AU", "Australia", "OC"),
    ("BR", "Brazil", "SA"),
    ("CA", "Canada", "NA"),
    ("CL", "Chile", "SA"),
    ("DE", "Germany", "EU"),
    ("EG", "Egypt", "AF"),
    ("FR", "France", "EU"),
    ("GB", "United Kingdom", "EU"),
    ("IN", "India", "AS"),
    ("JP", "Japan", "AS"),
    ("KE", "Kenya", "AF"),
    ("KR", "South Korea", "AS"),
    ("MX", "Mexico", "NA"),
    ("NG", "Nigeria", "AF"),
    ("NL", "Netherlands", "EU"),
    ("NZ", "New Zealand", "OC"),
    ("SE", "Sweden", "EU"),
    ("SG", "Singapore", "AS"),
    ("US", "United States", "NA"),
    ("VE", "Venezuela", "SA"),
    ("ZA", "South Africa", "AF"),
];

/// Special-purpose space that must never appear in the demo data, beyond
/// the ranges signpost itself never locates (`signpost::geo::SPECIAL_RANGES`,
/// added in `parse_csv`). `::/8` also guards the `::/96` IPv4 subtree.
const RESERVED_EXTRA: &[&str] = &[
    "192.88.99.0/24",
    "::/8",
    "64:ff9b::/96",
    "100::/64",
    "2001::/23",
    "2002::/16",
    "3fff::/20",
];

/// One validated CSV row.
#[derive(Debug)]
struct Row {
    /// 1-based line number in the CSV, for messages.
    line: usize,
    network: IpNet,
    country: &'static str,
    country_name: &'static str,
    continent: &'static str,
    continent_name: &'static str,
    latitude: f64,
    longitude: f64,
    /// Empty when the row is country-level only.
    city: String,
}

/// A `{"en": ...}` names map.
#[derive(Serialize, Deserialize)]
struct Names<'a> {
    en: &'a str,
}

/// `continent` record.
#[derive(Serialize, Deserialize)]
struct Continent<'a> {
    code: &'a str,
    #[serde(borrow)]
    names: Names<'a>,
}

/// `country` / `registered_country` record.
#[derive(Serialize, Deserialize)]
struct Country<'a> {
    iso_code: &'a str,
    #[serde(borrow)]
    names: Names<'a>,
}

/// `location` record.
#[derive(Serialize, Deserialize)]
struct Location {
    accuracy_radius: u16,
    latitude: f64,
    longitude: f64,
}

/// `city` record.
#[derive(Serialize, Deserialize)]
struct City<'a> {
    #[serde(borrow)]
    names: Names<'a>,
}

/// A full GeoLite2-City style record.
#[derive(Serialize, Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    city: Option<City<'a>>,
    #[serde(borrow)]
    continent: Continent<'a>,
    #[serde(borrow)]
    country: Country<'a>,
    location: Location,
    #[serde(borrow)]
    registered_country: Country<'a>,
}

impl Row {
    /// The record stored for this row.
    fn record(&self) -> CityRecord<'_> {
        let country = || Country {
            iso_code: self.country,
            names: Names {
                en: self.country_name,
            },
        };
        CityRecord {
            city: (!self.city.is_empty()).then(|| City {
                names: Names { en: &self.city },
            }),
            continent: Continent {
                code: self.continent,
                names: Names {
                    en: self.continent_name,
                },
            },
            country: country(),
            location: Location {
                accuracy_radius: if self.city.is_empty() {
                    COUNTRY_ACCURACY_KM
                } else {
                    CITY_ACCURACY_KM
                },
                latitude: self.latitude,
                longitude: self.longitude,
            },
            registered_country: country(),
        }
    }

    /// The row's network as a path in the IPv6 search tree: IPv4 networks
    /// live under `::/96`.
    fn tree_path(&self) -> IpAddrWithMask {
        match self.network {
            IpNet::V4(net) => IpAddrWithMask::new(
                IpAddr::V6(net.network().to_ipv6_compatible()),
                IPV4_SUBTREE_BITS + net.prefix_len(),
            ),
            IpNet::V6(net) => IpAddrWithMask::new(IpAddr::V6(net.network()), net.prefix_len()),
        }
    }
}

/// A generator error; CSV errors carry their location.
#[derive(Debug)]
enum Error {
    /// A problem with a specific CSV line.
    Line {
        path: String,
        line: usize,
        msg: String,
    },
    /// Anything else (I/O, writer, read-back check).
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Line { path, line, msg } => write!(f, "{path}:{line}: {msg}"),
            Error::Other(msg) => f.write_str(msg),
        }
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let csv_path = args.next().unwrap_or_else(|| DEFAULT_CSV.to_owned());
    let mmdb_path = args.next().unwrap_or_else(|| DEFAULT_MMDB.to_owned());
    if args.next().is_some() {
        eprintln!("usage: gen_geoip [CSV_PATH [MMDB_PATH]]");
        return ExitCode::from(2);
    }
    match run(&csv_path, &mmdb_path) {
        Ok(rows) => {
            println!("wrote {mmdb_path}: {rows} networks from {csv_path}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads, validates, writes and re-checks; returns the number of networks.
fn run(csv_path: &str, mmdb_path: &str) -> Result<usize, Error> {
    let text = std::fs::read_to_string(csv_path)
        .map_err(|e| Error::Other(format!("cannot read {csv_path}: {e}")))?;
    let rows = parse_csv(&text).map_err(|(line, msg)| Error::Line {
        path: csv_path.to_owned(),
        line,
        msg,
    })?;
    let bytes = build(&rows)?;
    self_check(&bytes, &rows)?;
    std::fs::write(mmdb_path, &bytes)
        .map_err(|e| Error::Other(format!("cannot write {mmdb_path}: {e}")))?;
    Ok(rows.len())
}

/// Parses and validates the whole CSV. Errors are `(line, message)`.
fn parse_csv(text: &str) -> Result<Vec<Row>, (usize, String)> {
    let mut reserved: Vec<IpNet> = signpost::geo::special_ranges().to_vec();
    reserved.extend(RESERVED_EXTRA.iter().map(|s| {
        s.parse::<IpNet>()
            .expect("RESERVED_EXTRA entries are valid prefixes")
    }));

    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, header)) if header.trim() == HEADER => {}
        Some((n, header)) => {
            return Err((n, format!("expected header {HEADER:?}, found {header:?}")));
        }
        None => return Err((1, "empty file".to_owned())),
    }

    let mut rows: Vec<Row> = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let row = parse_row(n, line, &reserved).map_err(|msg| (n, msg))?;
        if let Some(other) = rows.iter().find(|r| overlaps(&r.network, &row.network)) {
            return Err((
                n,
                format!(
                    "{} overlaps {} from line {}",
                    row.network, other.network, other.line
                ),
            ));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err((1, "no data rows".to_owned()));
    }
    Ok(rows)
}

/// Parses one data line.
fn parse_row(line: usize, text: &str, reserved: &[IpNet]) -> Result<Row, String> {
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    let [network, country, continent, latitude, longitude, city] = fields[..] else {
        return Err(format!(
            "expected 6 comma-separated fields ({HEADER}), found {}",
            fields.len()
        ));
    };

    let network: IpNet = network
        .parse()
        .map_err(|e| format!("bad network {network:?}: {e}"))?;
    if network.trunc() != network {
        return Err(format!(
            "network {network} has host bits set (did you mean {}?)",
            network.trunc()
        ));
    }
    if let Some(r) = reserved.iter().find(|r| overlaps(r, &network)) {
        return Err(format!(
            "network {network} overlaps special-purpose range {r}"
        ));
    }

    let &(country, country_name, expected_continent) = COUNTRIES
        .iter()
        .find(|(code, _, _)| *code == country)
        .ok_or_else(|| format!("unknown country code {country:?} (add it to COUNTRIES)"))?;
    let &(continent, continent_name) = CONTINENTS
        .iter()
        .find(|(code, _)| *code == continent)
        .ok_or_else(|| format!("unknown continent code {continent:?}"))?;
    if continent != expected_continent {
        return Err(format!(
            "country {country} is in continent {expected_continent}, not {continent}"
        ));
    }

    let latitude = parse_coordinate("latitude", latitude, 90.0)?;
    let longitude = parse_coordinate("longitude", longitude, 180.0)?;

    Ok(Row {
        line,
        network,
        country,
        country_name,
        continent,
        continent_name,
        latitude,
        longitude,
        city: city.to_owned(),
    })
}

/// Parses a coordinate and checks `-limit <= value <= limit`.
fn parse_coordinate(what: &str, text: &str, limit: f64) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|e| format!("bad {what} {text:?}: {e}"))?;
    if !(-limit..=limit).contains(&value) {
        return Err(format!("{what} {value} outside [-{limit}, {limit}]"));
    }
    Ok(value)
}

/// Whether two networks share any address.
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// Current build time in seconds since the epoch, or `SOURCE_DATE_EPOCH`.
fn build_epoch() -> Result<u64, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|e| Error::Other(format!("bad SOURCE_DATE_EPOCH {s:?}: {e}"))),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|e| Error::Other(format!("system clock before 1970: {e}"))),
    }
}

/// Builds the database image.
fn build(rows: &[Row]) -> Result<Vec<u8>, Error> {
    let writer_err = |e: maxminddb_writer::Error| Error::Other(format!("mmdb writer: {e}"));

    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V6;
    db.metadata.database_type = "GeoLite2-City".to_owned();
    db.metadata.languages = vec!["en".to_owned()];
    db.metadata.binary_format_major_version = 2;
    db.metadata.binary_format_minor_version = 0;
    db.metadata.build_epoch = build_epoch()?;
    db.metadata.description = HashMap::from([(
        "en".to_owned(),
        "signpost demo GeoIP database: synthetic data in GeoLite2-City layout, not MaxMind data"
            .to_owned(),
    )]);

    for row in rows {
        let data = db.insert_value(row.record()).map_err(writer_err)?;
        db.insert_node(row.tree_path(), data);
    }
    db.write_to(Vec::new()).map_err(writer_err)
}

/// Reads the image back with the `maxminddb` crate: verifies it, and looks up
/// the first address of every row, expecting that row's prefix and record.
fn self_check(bytes: &[u8], rows: &[Row]) -> Result<(), Error> {
    let check_err = |what: String| Error::Other(format!("self-check failed: {what}"));

    let reader = maxminddb::Reader::from_source(bytes)
        .map_err(|e| check_err(format!("cannot open: {e}")))?;
    reader
        .verify()
        .map_err(|e| check_err(format!("verify: {e}")))?;

    // IPv4 rows are probed with IPv4 addresses, exercising the `::/96` path.
    for row in rows {
        let addr = row.network.network();
        let found = reader
            .lookup(addr)
            .map_err(|e| check_err(format!("lookup {addr}: {e}")))?;
        let network = found
            .network()
            .map_err(|e| check_err(format!("network of {addr}: {e}")))?;
        if network.prefix() != row.network.prefix_len() || network.ip() != addr {
            return Err(check_err(format!(
                "{addr} (line {}) resolved to {network}, expected {}",
                row.line, row.network
            )));
        }
        let record: CityRecord<'_> = found
            .decode()
            .map_err(|e| check_err(format!("decode {addr}: {e}")))?
            .ok_or_else(|| check_err(format!("{addr} (line {}) has no record", row.line)))?;
        let city = record.city.as_ref().map_or("", |c| c.names.en);
        if record.country.iso_code != row.country
            || record.continent.code != row.continent
            || record.location.latitude != row.latitude
            || record.location.longitude != row.longitude
            || city != row.city
        {
            return Err(check_err(format!(
                "{addr} (line {}) decoded to a different record",
                row.line
            )));
        }
    }

    // Special-purpose space must come back empty.
    for addr in [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 0, 2, 1)] {
        let found = reader
            .lookup(IpAddr::V4(addr))
            .map_err(|e| check_err(format!("lookup {addr}: {e}")))?;
        if found.has_data() {
            return Err(check_err(format!("{addr} unexpectedly has data")));
        }
    }
    Ok(())
}
