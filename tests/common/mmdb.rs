//! Small GeoLite2-City-layout databases written by the tests themselves.

use std::collections::HashMap;
use std::net::IpAddr;

use maxminddb_writer::Database;
use maxminddb_writer::metadata::IpVersion;
use maxminddb_writer::paths::IpAddrWithMask;
use serde::Serialize;

#[derive(Serialize)]
struct Code<'a> {
    code: &'a str,
}

#[derive(Serialize)]
struct Iso<'a> {
    iso_code: &'a str,
}

#[derive(Serialize)]
struct Loc {
    latitude: f64,
    longitude: f64,
}

#[derive(Serialize)]
struct Rec<'a> {
    continent: Code<'a>,
    country: Iso<'a>,
    location: Loc,
}

/// A small GeoLite2-City-layout database: (IPv4 network, country,
/// continent, lat, lon) rows.
pub fn tiny_db(rows: &[(&str, &str, &str, f64, f64)]) -> Vec<u8> {
    let mut db = Database::default();
    db.metadata.ip_version = IpVersion::V6;
    db.metadata.database_type = "GeoLite2-City".to_owned();
    db.metadata.languages = vec!["en".to_owned()];
    db.metadata.binary_format_major_version = 2;
    db.metadata.description = HashMap::from([("en".to_owned(), "test".to_owned())]);
    for (net, country, continent, lat, lon) in rows {
        let net: ipnet::Ipv4Net = net.parse().unwrap();
        let data = db
            .insert_value(Rec {
                continent: Code { code: continent },
                country: Iso { iso_code: country },
                location: Loc {
                    latitude: *lat,
                    longitude: *lon,
                },
            })
            .unwrap();
        db.insert_node(
            IpAddrWithMask::new(
                IpAddr::V6(net.network().to_ipv6_compatible()),
                96 + net.prefix_len(),
            ),
            data,
        );
    }
    db.write_to(Vec::new()).unwrap()
}
