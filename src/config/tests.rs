use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::Policy;

const FILE: &str = "signpost.toml";

/// A small valid configuration; negative cases edit one piece of it.
const BASE: &str = r#"
[server]
listen = ["127.0.0.1:5353"]
admin = "127.0.0.1:9053"

[geoip]
database = "geo.mmdb"

[zones."example.test."]
file = "example.test.zone"

[checks.web]
type = "http"
port = 8080
path = "/health"

[regions.us-east]
location = { lat = 39.04, lon = -77.49 }
check = "web"
endpoints = [{ address = "192.0.2.1" }]

[regions.eu-west]
location = { lat = 53.35, lon = -6.26 }
check = "web"
endpoints = [{ address = "192.0.2.2" }]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#;

fn ok(text: &str) -> Config {
    match parse(text, Path::new(FILE)) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match parse(text, Path::new(FILE)) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// BASE with `from` replaced by `to` (which must be found).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE lacks {from:?}");
    BASE.replacen(from, to, 1)
}

const FULL: &str = r#"
[server]
listen = ["127.0.0.1:5353", "[::1]:5354"]
admin = "127.0.0.1:9053"
workers = 4
admin_token = "s3cret"
tcp_idle_timeout = "3s"
tcp_max_connections = 50

[geoip]
database = "geoip/demo-city.mmdb"

[zones."Example.Test."]
file = "zones/example.test.zone"

[zones."other.test"]
file = "/abs/other.zone"

[checks.web]
type     = "http"
port     = 8080
path     = "/health"
host     = "www.example.test"
expect   = [200, 204]
body     = "ok"
interval = "2s"
timeout  = "500ms"
rise     = 4
fall     = 5

[checks.tls]
type = "https"
port = 8443
insecure = true

[checks.plain]
type = "tcp"
port = 443

[regions.us-east]
location  = { lat = 39.04, lon = -77.49 }
weight    = 7
check     = "web"
endpoints = [{ address = "127.0.1.1" }]

[regions.eu-west]
location  = { lat = 53.35, lon = -6.26 }
check     = "tls"
endpoints = [{ address = "127.0.2.1", weight = 3 }, { address = "127.0.2.2", weight = 0, probe = "10.0.0.7" }]

[regions.ap-south]
location  = { lat = 19.08, lon = 72.88 }
check     = "plain"
endpoints = [{ address = "127.0.3.1" }, { address = "::1" }]

[regions.nocheck]
location  = { lat = 0.0, lon = 0.0 }
endpoints = [{ address = "2001:db8::1" }]

[services."WWW.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy  = "geo"
ttl     = 60
answers = 2
when_all_down = "nodata"
map = { "EU" = ["eu-west", "us-east"], "JP" = ["ap-south"], "10.0.0.0/8" = ["us-east"], "country:SA" = ["eu-west"], "continent:SA" = ["us-east"], "2001:db8::/32" = ["ap-south"] }

[services."api.other.test"]
regions = ["nocheck", "eu-west"]
policy = "weighted"

[services."fo.example.test."]
regions = ["eu-west"]
policy = "failover"
"#;

#[test]
fn full_config_parses_every_key() {
    let c = match parse(FULL, Path::new("/etc/signpost/signpost.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.path, Path::new("/etc/signpost/signpost.toml"));
    assert_eq!(
        c.server,
        Server {
            listen: vec![
                "127.0.0.1:5353".parse().unwrap(),
                "[::1]:5354".parse().unwrap()
            ],
            admin: Some("127.0.0.1:9053".parse().unwrap()),
            workers: 4,
            admin_token: Some("s3cret".into()),
            tcp_idle_timeout: Duration::from_secs(3),
            tcp_max_connections: 50,
            udp_batch_wait: Duration::from_micros(100),
            state: None,
            probe_source: None,
            nsid: None,
            tcp_per_source: 32,
            tcp_max_lifetime: Duration::from_secs(120),
            tcp_max_queries: 10_000,
            rrl: None,
        }
    );
    // relative paths are anchored at the config's directory, absolute ones kept
    assert_eq!(
        c.geoip.as_deref(),
        Some(Path::new("/etc/signpost/geoip/demo-city.mmdb"))
    );
    assert_eq!(
        c.zones,
        vec![
            Zone {
                name: "example.test.".into(),
                file: PathBuf::from("/etc/signpost/zones/example.test.zone"),
                file_display: "zones/example.test.zone".into(),
            },
            Zone {
                name: "other.test.".into(),
                file: PathBuf::from("/abs/other.zone"),
                file_display: "/abs/other.zone".into(),
            },
        ]
    );

    assert_eq!(
        c.checks["web"],
        Check {
            kind: CheckKind::Http,
            port: 8080,
            path: "/health".into(),
            host: Some("www.example.test".into()),
            expect: vec![200, 204],
            body: Some("ok".into()),
            interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            rise: 4,
            fall: 5,
            insecure: false,
            load_header: None,
        }
    );
    assert_eq!(c.checks["tls"].kind, CheckKind::Https);
    assert!(c.checks["tls"].insecure);
    assert_eq!(c.checks["tls"].path, "/");
    assert_eq!(c.checks["plain"].kind, CheckKind::Tcp);
    assert_eq!(c.checks["plain"].port, 443);

    let names: Vec<&str> = c.regions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ap-south", "eu-west", "nocheck", "us-east"]);
    let region = |n: &str| c.regions.iter().find(|r| r.name == n).unwrap();
    let us = region("us-east");
    assert_eq!((us.lat, us.lon, us.weight), (39.04, -77.49, 7));
    assert_eq!(us.check.as_deref(), Some("web"));
    let eu = region("eu-west");
    assert_eq!(eu.weight, 1);
    assert_eq!(
        eu.endpoints,
        vec![
            Endpoint {
                address: "127.0.2.1".parse().unwrap(),
                weight: 3,
                probe: "127.0.2.1".parse().unwrap(),
                capacity: 100.0,
            },
            Endpoint {
                address: "127.0.2.2".parse().unwrap(),
                weight: 0,
                probe: "10.0.0.7".parse().unwrap(),
                capacity: 100.0,
            },
        ]
    );
    let ap = region("ap-south");
    assert_eq!(ap.endpoints[1].address, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(region("nocheck").check, None);

    let mut names: Vec<&str> = c.services.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["api.other.test.", "fo.example.test.", "www.example.test."]
    );
    let service = |n: &str| c.services.iter().find(|s| s.name == n).unwrap();
    let www = service("www.example.test.");
    assert_eq!(www.zone, "example.test.");
    assert_eq!(www.regions, ["us-east", "eu-west", "ap-south"]);
    assert_eq!(www.policy, Policy::Geo);
    assert_eq!(www.ttl, 60);
    assert_eq!(www.answers, 2);
    assert_eq!(www.when_all_down, WhenAllDown::Nodata);
    let mut map: Vec<(String, MapKey, Vec<String>)> = www
        .map
        .iter()
        .map(|m| (m.key.clone(), m.matcher, m.regions.clone()))
        .collect();
    map.sort_by(|a, b| a.0.cmp(&b.0));
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        map,
        vec![
            (
                "10.0.0.0/8".into(),
                MapKey::Cidr("10.0.0.0/8".parse().unwrap()),
                v(&["us-east"])
            ),
            (
                "2001:db8::/32".into(),
                MapKey::Cidr("2001:db8::/32".parse().unwrap()),
                v(&["ap-south"])
            ),
            (
                "EU".into(),
                MapKey::Continent(*b"EU"),
                v(&["eu-west", "us-east"])
            ),
            ("JP".into(), MapKey::Country(*b"JP"), v(&["ap-south"])),
            (
                "continent:SA".into(),
                MapKey::Continent(*b"SA"),
                v(&["us-east"])
            ),
            (
                "country:SA".into(),
                MapKey::Country(*b"SA"),
                v(&["eu-west"])
            ),
        ]
    );
    let api = service("api.other.test.");
    assert_eq!(api.zone, "other.test.");
    assert_eq!(api.policy, Policy::Weighted);
    assert!(api.map.is_empty());
    assert_eq!(service("fo.example.test.").policy, Policy::Failover);
}

#[test]
fn defaults_are_applied() {
    let c = ok(r#"
[geoip]
database = "geo.mmdb"
[zones."example.test."]
file = "example.test.zone"
[checks.web]
type = "http"
port = 80
[regions.r1]
location = { lat = 1.0, lon = 2.0 }
check = "web"
endpoints = [{ address = "192.0.2.1" }]
[services."www.example.test."]
regions = ["r1"]
"#);
    assert_eq!(
        c.server,
        Server {
            listen: vec!["127.0.0.1:5353".parse().unwrap()],
            admin: None,
            workers: 0,
            admin_token: None,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_connections: 1024,
            udp_batch_wait: Duration::from_micros(100),
            state: None,
            probe_source: None,
            nsid: None,
            tcp_per_source: 32,
            tcp_max_lifetime: Duration::from_secs(120),
            tcp_max_queries: 10_000,
            rrl: None,
        }
    );
    // "signpost.toml" has no directory: paths stay relative to the cwd
    assert_eq!(c.geoip.as_deref(), Some(Path::new("geo.mmdb")));
    assert_eq!(c.zones[0].file, PathBuf::from("example.test.zone"));
    let web = &c.checks["web"];
    assert_eq!(web.interval, Duration::from_secs(5));
    assert_eq!(web.timeout, Duration::from_secs(2));
    assert_eq!((web.rise, web.fall), (2, 3));
    assert_eq!(web.path, "/");
    assert!(web.expect.is_empty(), "default expect = any 2xx");
    assert_eq!((web.host.as_ref(), web.body.as_ref()), (None, None));
    assert!(!web.insecure);
    let r = &c.regions[0];
    assert_eq!(r.weight, 1);
    assert_eq!(r.endpoints[0].weight, 1);
    assert_eq!(r.endpoints[0].probe, r.endpoints[0].address);
    let s = &c.services[0];
    assert_eq!(s.policy, Policy::Geo);
    assert_eq!(s.ttl, 30);
    assert_eq!(s.answers, 1);
    assert_eq!(s.when_all_down, WhenAllDown::All);
    assert!(s.map.is_empty());
}

#[test]
fn relative_paths_follow_the_config_directory() {
    let c = match parse(BASE, Path::new("conf/lab/signpost.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(c.geoip, Some(PathBuf::from("conf/lab/geo.mmdb")));
    assert_eq!(c.zones[0].file, PathBuf::from("conf/lab/example.test.zone"));
    assert_eq!(c.zones[0].file_display, "example.test.zone");
}

#[test]
fn base_is_valid() {
    let c = ok(BASE);
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.regions.len(), 2);
}

/// Each case edits BASE in one place and must give exactly one error that
/// starts with `signpost.toml: <key>: ` and contains the reason.
#[test]
fn invalid_values_name_file_key_and_reason() {
    let svc = r#"services."www.example.test.""#;
    let cases: Vec<(&str, &str, String, &str)> = vec![
        // (from, to, key, reason fragment)
        (
            r#"regions = ["us-east", "eu-west"]"#,
            r#"regions = ["us-east", "eu-wets"]"#,
            format!("{svc}.regions[1]"),
            r#"unknown region "eu-wets""#,
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            r#"regions = ["us-east", "us-east"]"#,
            format!("{svc}.regions[1]"),
            r#"region "us-east" is listed twice"#,
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = []",
            format!("{svc}.regions"),
            "at least one region",
        ),
        (
            "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]",
            "check = \"wbe\"\nendpoints = [{ address = \"192.0.2.1\" }]",
            "regions.us-east.check".into(),
            r#"unknown check "wbe""#,
        ),
        (
            r#"listen = ["127.0.0.1:5353"]"#,
            r#"listen = ["127.0.0.1"]"#,
            "server.listen[0]".into(),
            r#""127.0.0.1" is not an address:port"#,
        ),
        (
            r#"listen = ["127.0.0.1:5353"]"#,
            r#"listen = ["127.0.0.1:5353", "::1:53"]"#,
            "server.listen[1]".into(),
            r#""::1:53" is not an address:port"#,
        ),
        (
            r#"listen = ["127.0.0.1:5353"]"#,
            r#"listen = ["127.0.0.1:5353", "127.0.0.1:5353"]"#,
            "server.listen[1]".into(),
            "listed twice",
        ),
        (
            r#"listen = ["127.0.0.1:5353"]"#,
            "listen = []",
            "server.listen".into(),
            "at least one address",
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            r#"admin = "localhost:9053""#,
            "server.admin".into(),
            r#""localhost:9053" is not an address:port"#,
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            "admin = \"127.0.0.1:9053\"\nadmin_token = \" \"",
            "server.admin_token".into(),
            "must not be empty",
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            "admin = \"127.0.0.1:9053\"\ntcp_idle_timeout = \"0s\"",
            "server.tcp_idle_timeout".into(),
            "longer than 0",
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            "admin = \"127.0.0.1:9053\"\ntcp_idle_timeout = \"soon\"",
            "server.tcp_idle_timeout".into(),
            "invalid duration \"soon\"",
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            "admin = \"127.0.0.1:9053\"\ntcp_max_connections = 0",
            "server.tcp_max_connections".into(),
            "0 is not between 1 and 1000000",
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            "admin = \"127.0.0.1:9053\"\ntcp_max_connections = 9223372036854775807",
            "server.tcp_max_connections".into(),
            "is not between 1 and 1000000",
        ),
        (
            r#"path = "/health""#,
            "path = \"/health\"\ninterval = \"1000h\"\ntimeout = \"1s\"",
            "checks.web.interval".into(),
            "between 100ms and 1h",
        ),
        (
            r#"admin = "127.0.0.1:9053""#,
            "admin = \"127.0.0.1:9053\"\nworkers = 5000",
            "server.workers".into(),
            "more than 1024",
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.300" }"#,
            "regions.us-east.endpoints[0].address".into(),
            r#""192.0.2.300" is not an IP address"#,
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "www.example.test" }"#,
            "regions.us-east.endpoints[0].address".into(),
            "is not an IP address",
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "0.0.0.0" }"#,
            "regions.us-east.endpoints[0].address".into(),
            "0.0.0.0 cannot be handed out",
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.1" }, { address = "192.0.2.1" }"#,
            "regions.us-east.endpoints[1].address".into(),
            "listed twice",
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.1", probe = "10.0.0" }"#,
            "regions.us-east.endpoints[0].probe".into(),
            r#""10.0.0" is not an IP address"#,
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.1", weight = -1 }"#,
            "regions.us-east.endpoints[0].weight".into(),
            "-1 is negative",
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.1", weight = 1000001 }"#,
            "regions.us-east.endpoints[0].weight".into(),
            "1000001 is more than 1000000",
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = 39.04, lon = -77.49 }\nweight = -5",
            "regions.us-east.weight".into(),
            "-5 is negative",
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = 39.04, lon = -77.49 }\nweight = 4294967296",
            "regions.us-east.weight".into(),
            "is more than 1000000",
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = 90.5, lon = -77.49 }",
            "regions.us-east.location.lat".into(),
            "90.5 is not between -90 and 90",
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = -91.0, lon = -77.49 }",
            "regions.us-east.location.lat".into(),
            "is not between -90 and 90",
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = 39.04, lon = 180.1 }",
            "regions.us-east.location.lon".into(),
            "180.1 is not between -180 and 180",
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = 39.04, lon = nan }",
            "regions.us-east.location.lon".into(),
            "is not between -180 and 180",
        ),
        (
            "endpoints = [{ address = \"192.0.2.1\" }]",
            "endpoints = []",
            "regions.us-east.endpoints".into(),
            "at least one endpoint",
        ),
        (
            r#"type = "http""#,
            r#"type = "icmp""#,
            "checks.web.type".into(),
            r#"unknown check type "icmp""#,
        ),
        (
            "type = \"http\"\nport = 8080\npath = \"/health\"",
            "type = \"tcp\"\nport = 8080\npath = \"/health\"",
            "checks.web.path".into(),
            "only http and https checks take this key",
        ),
        (
            "path = \"/health\"",
            "path = \"health\"",
            "checks.web.path".into(),
            "must start with '/'",
        ),
        (
            "port = 8080",
            "port = 0",
            "checks.web.port".into(),
            "0 is not a port",
        ),
        (
            "port = 8080",
            "port = 65536",
            "checks.web.port".into(),
            "65536 is not a port",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\nexpect = [200, 99]",
            "checks.web.expect[1]".into(),
            "99 is not an HTTP status (100-599)",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\nexpect = [600]",
            "checks.web.expect[0]".into(),
            "600 is not an HTTP status",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\nexpect = []",
            "checks.web.expect".into(),
            "at least one status",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninsecure = true",
            "checks.web.insecure".into(),
            "only https checks take this key",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\nhost = \"bad host\"",
            "checks.web.host".into(),
            "is not a host name",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninterval = \"2s\"\ntimeout = \"2s\"",
            "checks.web.timeout".into(),
            "2s must be shorter than interval 2s",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninterval = \"1s\"",
            "checks.web.timeout".into(),
            "must be shorter than interval 1s",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninterval = \"fast\"",
            "checks.web.interval".into(),
            "invalid duration \"fast\"",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninterval = \"5\"",
            "checks.web.interval".into(),
            "invalid duration \"5\"",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ntimeout = \"-1s\"",
            "checks.web.timeout".into(),
            "invalid duration \"-1s\"",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ntimeout = \"\"",
            "checks.web.timeout".into(),
            "invalid duration \"\"",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninterval = \"10ms\"\ntimeout = \"5ms\"",
            "checks.web.interval".into(),
            "between 100ms and 1h",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\nrise = 0",
            "checks.web.rise".into(),
            "0 is not between 1 and 100",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\nfall = 101",
            "checks.web.fall".into(),
            "101 is not between 1 and 100",
        ),
        (
            r#"[services."www.example.test."]"#,
            r#"[services."www.other.test."]"#,
            r#"services."www.other.test.""#.into(),
            "www.other.test. is not inside any configured zone",
        ),
        (
            r#"[services."www.example.test."]"#,
            r#"[services."wwwexample.test."]"#,
            r#"services."wwwexample.test.""#.into(),
            "not inside any configured zone",
        ),
        (
            r#"[services."www.example.test."]"#,
            r#"[services."*.example.test."]"#,
            r#"services."*.example.test.""#.into(),
            "cannot hold a wildcard",
        ),
        (
            r#"[services."www.example.test."]"#,
            r#"[services."www..example.test."]"#,
            r#"services."www..example.test.""#.into(),
            "is not a valid DNS name",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nanswers = 0",
            format!("{svc}.answers"),
            "0 is not between 1 and 16",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nanswers = 17",
            format!("{svc}.answers"),
            "17 is not between 1 and 16",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nttl = -1",
            format!("{svc}.ttl"),
            "-1 is not a TTL",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nttl = 2147483648",
            format!("{svc}.ttl"),
            "2147483648 is not a TTL",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\npolicy = \"nearest\"",
            format!("{svc}.policy"),
            r#"unknown policy "nearest""#,
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nwhen_all_down = \"none\"",
            format!("{svc}.when_all_down"),
            r#"unknown value "none""#,
        ),
        (
            "[geoip]\ndatabase = \"geo.mmdb\"",
            "",
            format!("{svc}.policy"),
            "a geo service needs [geoip] database",
        ),
        // map keys
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"10.0.0.1/8\" = [\"us-east\"] }",
            format!("{svc}.map.\"10.0.0.1/8\""),
            "is neither a CIDR",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"Europe\" = [\"us-east\"] }",
            format!("{svc}.map.Europe"),
            r#""Europe" is neither a CIDR"#,
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"continent:XX\" = [\"us-east\"] }",
            format!("{svc}.map.\"continent:XX\""),
            "is neither a CIDR",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"10.0.0.0/33\" = [\"us-east\"] }",
            format!("{svc}.map.\"10.0.0.0/33\""),
            "is neither a CIDR",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"EU\" = [\"ap-south\"] }",
            format!("{svc}.map.EU[0]"),
            r#"region "ap-south" is not one of this service's regions"#,
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"EU\" = [\"eu-west\", \"eu-west\"] }",
            format!("{svc}.map.EU[1]"),
            r#"region "eu-west" is listed twice"#,
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"EU\" = [] }",
            format!("{svc}.map.EU"),
            "at least one region",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"EU\" = [\"eu-west\"], \"continent:EU\" = [\"us-east\"] }",
            format!("{svc}.map.\"continent:EU\""),
            "matches the same clients as another key",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\npolicy = \"weighted\"\nmap = { \"EU\" = [\"eu-west\"] }",
            format!("{svc}.map"),
            "only geo services take a map",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\npolicy = \"failover\"\nmap = { \"10.0.0.0/8\" = [\"eu-west\"] }",
            format!("{svc}.map"),
            "only geo services take a map",
        ),
        // zone names (added beside the valid zone, so nothing else breaks)
        (
            "[checks.web]",
            "[zones.\"exa mple.test.\"]\nfile = \"x.zone\"\n[checks.web]",
            r#"zones."exa mple.test.""#.into(),
            r#""exa mple.test." is not a valid DNS name"#,
        ),
        (
            "[checks.web]",
            "[zones.\"a..test.\"]\nfile = \"x.zone\"\n[checks.web]",
            r#"zones."a..test.""#.into(),
            "is not a valid DNS name",
        ),
        (
            "[checks.web]",
            "[zones.\"*.test.\"]\nfile = \"x.zone\"\n[checks.web]",
            r#"zones."*.test.""#.into(),
            "cannot hold a wildcard",
        ),
        (
            "[checks.web]",
            "[zones.\"EXAMPLE.test\"]\nfile = \"x.zone\"\n[checks.web]",
            // BTreeMap order: the upper-case spelling comes first, the second is the duplicate
            r#"zones."example.test.""#.into(),
            "zone example.test. is listed twice",
        ),
        (
            "[regions.eu-west]",
            "[regions.\"eu west\"]\nlocation = { lat = 1.0, lon = 1.0 }\nendpoints = [{ address = \"192.0.2.9\" }]\n[regions.eu-west]",
            r#"regions."eu west""#.into(),
            "may hold only letters, digits",
        ),
    ];
    let long_label = format!("[zones.\"{}.test.\"]", "a".repeat(64));
    let long_cases = [(
        "[checks.web]".to_string(),
        format!("{long_label}\nfile = \"x.zone\"\n[checks.web]"),
        format!("zones.\"{}.test.\"", "a".repeat(64)),
        "is not a valid DNS name",
    )];
    let all = cases
        .iter()
        .map(|(f, t, k, r)| (f.to_string(), t.to_string(), k.clone(), *r))
        .chain(long_cases);
    for (from, to, key, reason) in all {
        let errs = errors(&edit(&from, &to));
        let want = format!("{FILE}: {key}: ");
        assert_eq!(
            errs.len(),
            1,
            "{to:?}: expected one error starting {want:?}, got {errs:#?}"
        );
        assert!(
            errs[0].starts_with(&want) && errs[0][want.len()..].contains(reason),
            "{to:?}: got {:?}, want {want:?} + ...{reason:?}",
            errs[0]
        );
    }
}

#[test]
fn unknown_region_message_is_exact() {
    let errs = errors(&edit(
        r#"regions = ["us-east", "eu-west"]"#,
        r#"regions = ["us-east", "eu-wets"]"#,
    ));
    assert_eq!(
        errs,
        [r#"signpost.toml: services."www.example.test.".regions[1]: unknown region "eu-wets""#]
    );
}

#[test]
fn boundary_values_are_accepted() {
    for (from, to) in [
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.1", weight = 1000000 }"#,
        ),
        (
            r#"{ address = "192.0.2.1" }"#,
            r#"{ address = "192.0.2.1", weight = 0 }"#,
        ),
        (
            "location = { lat = 39.04, lon = -77.49 }",
            "location = { lat = -90.0, lon = 180.0 }\nweight = 0",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nanswers = 16\nttl = 0",
        ),
        (
            r#"regions = ["us-east", "eu-west"]"#,
            "regions = [\"us-east\", \"eu-west\"]\nmap = { \"10.0.0.0/8\" = [\"eu-west\"], \"10.1.0.0/16\" = [\"us-east\"], \"eu\" = [\"eu-west\"], \"country:eu\" = [\"us-east\"] }",
        ),
        (
            "path = \"/health\"",
            "path = \"/health\"\ninterval = \"100ms\"\ntimeout = \"99ms\"\nexpect = [100, 599]",
        ),
        (
            r#"listen = ["127.0.0.1:5353"]"#,
            r#"listen = ["127.0.0.1:0", "[::1]:0"]"#,
        ),
        // a service at the zone apex
        (
            r#"[services."www.example.test."]"#,
            r#"[services."EXAMPLE.test"]"#,
        ),
    ] {
        let text = edit(from, to);
        if let Err(e) = parse(&text, Path::new(FILE)) {
            panic!("{to:?} should be valid, got:\n{e}");
        }
    }
}

#[test]
fn geo_service_without_geoip_but_weighted_is_fine() {
    let text = edit("[geoip]\ndatabase = \"geo.mmdb\"", "").replacen(
        r#"regions = ["us-east", "eu-west"]"#,
        "regions = [\"us-east\", \"eu-west\"]\npolicy = \"weighted\"",
        1,
    );
    let c = ok(&text);
    assert_eq!(c.geoip, None);
}

#[test]
fn service_goes_to_the_deepest_zone() {
    let text = edit(
        "[checks.web]",
        "[zones.\"sub.example.test.\"]\nfile = \"sub.zone\"\n[checks.web]",
    )
    .replacen("www.example.test.", "www.sub.example.test.", 1);
    let c = ok(&text);
    assert_eq!(c.services[0].zone, "sub.example.test.");
}

/// 1-based (line, column) of the first `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let off = text.find(needle).expect("needle in text");
    let line = text[..off].matches('\n').count() + 1;
    let col = off - text[..off].rfind('\n').map_or(0, |p| p + 1) + 1;
    (line, col)
}

#[test]
fn unknown_keys_are_syntax_errors_with_line_and_column() {
    // (text, where the error points, key path and message start)
    let cases = [
        (
            edit(
                r#"admin = "127.0.0.1:9053""#,
                "admin = \"127.0.0.1:9053\"\ncolour = 1",
            ),
            "colour = 1",
            "server.colour: unknown field `colour`",
        ),
        (
            edit(
                "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]",
                "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\", wieght = 2 }]",
            ),
            "wieght = 2",
            "regions.us-east.endpoints[0].wieght: unknown field `wieght`",
        ),
        (
            edit(
                "location = { lat = 39.04, lon = -77.49 }",
                "location = { lat = 39.04, lon = -77.49, alt = 3 }",
            ),
            "alt = 3",
            "regions.us-east.location.alt: unknown field `alt`",
        ),
        (
            format!("{BASE}\n[metrics]\nport = 1\n"),
            "metrics]",
            "metrics: unknown field `metrics`",
        ),
        (edit("[server]", "[server"), "\nlisten", "unclosed table"),
        (
            edit("port = 8080", "port = \"8080\""),
            "\"8080\"",
            "checks.web.port: invalid type",
        ),
    ];
    for (text, at, rest) in cases {
        let (line, col) = position(&text, at);
        let want = format!("{FILE}:{line}:{col}: {rest}");
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].starts_with(&want),
            "got {:?}, want prefix {want:?}",
            errs[0]
        );
    }
}

#[test]
fn syntax_error_key_paths_quote_dotted_names() {
    let text = edit(
        r#"regions = ["us-east", "eu-west"]"#,
        "regions = [\"us-east\", \"eu-west\"]\nttl = \"thirty\"",
    );
    let (line, col) = position(&text, "\"thirty\"");
    let want = format!(r#"{FILE}:{line}:{col}: services."www.example.test.".ttl: invalid type"#);
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with(&want),
        "got {:?}, want {want:?}",
        errs[0]
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let text = edit(
        r#"regions = ["us-east", "eu-west"]"#,
        "regions = [\"us-east\", \"eu-wets\"]\nanswers = 0",
    )
    .replacen(r#"type = "http""#, r#"type = "icmp""#, 1);
    let errs = errors(&text);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    for want in [
        "signpost.toml: checks.web.type: ",
        r#"signpost.toml: services."www.example.test.".regions[1]: "#,
        r#"signpost.toml: services."www.example.test.".answers: "#,
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{want:?} missing from {errs:#?}"
        );
    }
    // and the whole set prints one per line
    let e = parse(&text, Path::new(FILE)).unwrap_err();
    assert_eq!(e.to_string().lines().count(), 3);
}

#[test]
fn load_reports_unreadable_files() {
    let path = Path::new("/nonexistent/dir/signpost.toml");
    let e = load(path).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let msg = e.to_string();
    assert!(
        msg.starts_with("/nonexistent/dir/signpost.toml: cannot read: "),
        "{msg}"
    );
}

#[test]
fn normalize_name_cases() {
    let ok63 = format!("{}.test", "a".repeat(63));
    let bad64 = format!("{}.test", "a".repeat(64));
    // 4 labels: 63+63+63+61 chars + 4 dots = 254 text bytes = 255 wire bytes
    let max = format!(
        "{}.{}.{}.{}.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    let over = format!(
        "{}.{}.{}.{}.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62)
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("WWW.Example.Test", Some("www.example.test.".into())),
        ("www.example.test.", Some("www.example.test.".into())),
        (" www.example.test ", Some("www.example.test.".into())),
        (".", Some(".".into())),
        (
            "_sip._tcp.example.test",
            Some("_sip._tcp.example.test.".into()),
        ),
        ("xn--bcher-kva.test", Some("xn--bcher-kva.test.".into())),
        (&ok63, Some(format!("{ok63}."))),
        (&max, Some(max.clone())),
        ("", None),
        ("   ", None),
        ("a..b", None),
        (".example.test", None),
        ("..", None),
        ("exa mple.test", None),
        ("example.test/", None),
        ("bücher.test", None),
        (&bad64, None),
        (&over, None),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_name(input), want, "{input:?}");
    }
}

#[test]
fn in_zone_cases() {
    for (name, zone, want) in [
        ("www.example.test.", "example.test.", true),
        ("example.test.", "example.test.", true),
        ("a.b.example.test.", "example.test.", true),
        ("anything.", ".", true),
        (".", ".", true),
        ("wwwexample.test.", "example.test.", false),
        ("example.test.", "www.example.test.", false),
        ("test.", "example.test.", false),
        ("example.org.", "example.test.", false),
        ("www.example.test.", "ample.test.", false),
    ] {
        assert_eq!(in_zone(name, zone), want, "{name} in {zone}");
    }
}

#[test]
fn parse_map_key_cases() {
    let cidr = |s: &str| Some(MapKey::Cidr(s.parse().unwrap()));
    for (key, want) in [
        ("10.0.0.0/8", cidr("10.0.0.0/8")),
        ("192.0.2.0/24", cidr("192.0.2.0/24")),
        ("192.0.2.7/32", cidr("192.0.2.7/32")),
        ("0.0.0.0/0", cidr("0.0.0.0/0")),
        ("2001:db8::/32", cidr("2001:db8::/32")),
        ("JP", Some(MapKey::Country(*b"JP"))),
        ("jp", Some(MapKey::Country(*b"JP"))),
        ("EU", Some(MapKey::Continent(*b"EU"))),
        ("na", Some(MapKey::Continent(*b"NA"))),
        // bare SA is the continent; the prefixes disambiguate
        ("SA", Some(MapKey::Continent(*b"SA"))),
        ("country:SA", Some(MapKey::Country(*b"SA"))),
        ("continent:SA", Some(MapKey::Continent(*b"SA"))),
        ("country:eu", Some(MapKey::Country(*b"EU"))),
        ("continent:af", Some(MapKey::Continent(*b"AF"))),
        ("continent:XX", None),
        ("continent:JP", None),
        ("country:S", None),
        ("country:SAU", None),
        ("country:", None),
        ("region:EU", None),
        ("Europe", None),
        ("E1", None),
        ("", None),
        ("J", None),
        ("10.0.0.1/8", None),
        ("2001:db8::1/32", None),
        ("10.0.0.0/33", None),
        ("10.0.0.0", None),
        ("10.0.0.0/", None),
        ("not/a/cidr", None),
    ] {
        assert_eq!(parse_map_key(key), want, "{key:?}");
    }
}

#[test]
fn key_segment_quotes_like_toml() {
    assert_eq!(key_segment("us-east"), "us-east");
    assert_eq!(key_segment("eu_west2"), "eu_west2");
    assert_eq!(key_segment("www.example.test."), "\"www.example.test.\"");
    assert_eq!(key_segment("10.0.0.0/8"), "\"10.0.0.0/8\"");
    assert_eq!(key_segment(""), "\"\"");
}

#[test]
fn line_col_is_one_based() {
    let text = "ab\ncd\n\nef";
    for (off, want) in [
        (0, (1, 1)),
        (1, (1, 2)),
        (2, (1, 3)),
        (3, (2, 1)),
        (6, (3, 1)),
        (7, (4, 1)),
        (9, (4, 3)),
        (100, (4, 3)),
    ] {
        assert_eq!(raw::line_col(text, off), want, "offset {off}");
    }
}

#[test]
fn durations_take_the_documented_units() {
    for (text, want) in [
        ("500ms", Duration::from_millis(500)),
        ("2s", Duration::from_secs(2)),
        ("1m", Duration::from_secs(60)),
        ("90s", Duration::from_secs(90)),
    ] {
        let c = ok(&edit(
            r#"admin = "127.0.0.1:9053""#,
            &format!("admin = \"127.0.0.1:9053\"\ntcp_idle_timeout = \"{text}\""),
        ));
        assert_eq!(c.server.tcp_idle_timeout, want, "{text}");
    }
    let c = ok(&edit(
        "path = \"/health\"",
        "path = \"/health\"\ninterval = \"1m\"\ntimeout = \"500ms\"",
    ));
    assert_eq!(c.checks["web"].interval, Duration::from_secs(60));
    assert_eq!(c.checks["web"].timeout, Duration::from_millis(500));
}

#[test]
fn cluster_state_and_probe_source() {
    let c = ok(&format!(
        "{BASE}\n[cluster]\netcd = [\"http://127.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nnode = \"ns1\"\n"
    ));
    let cl = c.cluster.unwrap();
    assert_eq!(cl.node, "ns1");
    assert_eq!(cl.prefix, "/signpost");
    assert_eq!(cl.down_quorum, Quorum::Majority);
    assert_eq!(cl.etcd.len(), 2);
    let c = ok(&format!(
        "{BASE}\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"ns-2.a\"\nprefix = \"/gslb/prod/\"\ndown_quorum = \"any\"\n"
    ));
    let cl = c.cluster.unwrap();
    assert_eq!(
        (cl.prefix.as_str(), cl.down_quorum),
        ("/gslb/prod", Quorum::Any)
    );

    // (cluster body, key, reason fragment)
    let cases = [
        ("etcd = []\nnode = \"a\"", "cluster.etcd", "at least one"),
        (
            "etcd = [\"127.0.0.1:2379\"]\nnode = \"a\"",
            "cluster.etcd[0]",
            "not an etcd client URL",
        ),
        (
            "etcd = [\"https://e:2379\"]\nnode = \"a\"",
            "cluster.etcd[0]",
            "TLS",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a b\"",
            "cluster.node",
            "not a node name",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a\"\nprefix = \"x\"",
            "cluster.prefix",
            "must start with '/'",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a\"\ndown_quorum = \"most\"",
            "cluster.down_quorum",
            "unknown quorum",
        ),
        (
            "etcd = [\"http://e:2379\"]\nnode = \"a\"\nnodes = 3",
            "cluster",
            "unknown field",
        ),
    ];
    for (body, key, reason) in cases {
        let errs = errors(&format!("{BASE}\n[cluster]\n{body}\n"));
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(reason)),
            "{body}: {errs:?}"
        );
    }

    let text = BASE.replacen(
        "[server]",
        "[server]\nstate = \"run/signpost.state\"\nprobe_source = \"127.0.0.21\"",
        1,
    );
    let c = ok(&text);
    assert_eq!(
        c.server.state,
        Some(Path::new(FILE).parent().unwrap().join("run/signpost.state"))
    );
    assert_eq!(c.server.probe_source, Some("127.0.0.21".parse().unwrap()));
    for (line, reason) in [
        ("probe_source = \"0.0.0.0\"", "cannot be a source address"),
        ("probe_source = \"eth0\"", "is not an IP address"),
        ("state = \"\"", "must name a file"),
    ] {
        let errs = errors(&BASE.replacen("[server]", &format!("[server]\n{line}"), 1));
        assert!(
            errs.iter()
                .any(|e| e.contains("server.") && e.contains(reason)),
            "{line}: {errs:?}"
        );
    }
}

#[test]
fn the_shared_text_leaves_out_what_differs_per_node() {
    let a = ok(&format!(
        "{BASE}\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"ns1\"\n"
    ));
    let b = ok(&format!(
        "# another node\n{}\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"ns2\"\n",
        BASE.replacen("[server]", "[server]\nprobe_source = \"127.0.0.22\"", 1)
    ));
    assert_eq!(a.shared_text, b.shared_text);
    let c = ok(&BASE.replace("\"us-east\", \"eu-west\"]", "\"eu-west\", \"us-east\"]"));
    assert_ne!(a.shared_text, c.shared_text);
}

#[test]
fn an_admin_token_that_no_header_can_carry_is_refused() {
    for (token, reason) in [
        ("\" s3cret\"", "spaces at its start or end"),
        ("\"s3cret \"", "spaces at its start or end"),
        ("\"s3 cret\"", "only visible ASCII"),
        ("\"   \"", "must not be empty"),
    ] {
        let errs =
            errors(&BASE.replacen("[server]", &format!("[server]\nadmin_token = {token}"), 1));
        assert!(
            errs.iter()
                .any(|e| e.contains("server.admin_token") && e.contains(reason)),
            "{token}: {errs:?}"
        );
    }
    let c = ok(&BASE.replacen(
        "[server]",
        "[server]\nadmin_token = \"s3cret-Token_1.~+/=\"",
        1,
    ));
    assert_eq!(c.server.admin_token.as_deref(), Some("s3cret-Token_1.~+/="));
}

#[test]
fn nsid_length_is_checked() {
    let c = ok(&BASE.replacen("[server]", "[server]\nnsid = \"ns1.example.net\"", 1));
    assert_eq!(c.server.nsid.as_deref(), Some("ns1.example.net"));
    for bad in ["\"\"".to_string(), format!("\"{}\"", "x".repeat(129))] {
        let errs = errors(&BASE.replacen("[server]", &format!("[server]\nnsid = {bad}"), 1));
        assert!(
            errs.iter()
                .any(|e| e.contains("server.nsid") && e.contains("1 to 128 bytes")),
            "{errs:?}"
        );
    }
}

#[test]
fn rrl_defaults_and_keys() {
    let c = ok(&format!("{BASE}\n[server.rrl]\n"));
    let r = c.server.rrl.expect("an empty [server.rrl] turns it on");
    assert_eq!((r.responses, r.errors, r.slip), (20, 20, 2));
    assert_eq!(r.window, Duration::from_secs(15));
    assert_eq!(r.prefix, (24, 56));
    assert!(ok(BASE).server.rrl.is_none(), "absent = off");

    let c = ok(&format!(
        "{BASE}\n[server.rrl]\nresponses_per_second = 50\nerrors_per_second = 3\n\
         window = \"5s\"\nslip = 0\nipv4_prefix = 32\nipv6_prefix = 48\n\
         exempt = [\"192.0.2.7/24\", \"2001:db8::53\"]\n"
    ));
    let r = c.server.rrl.unwrap();
    assert_eq!((r.responses, r.errors, r.slip), (50, 3, 0));
    assert_eq!(r.window, Duration::from_secs(5));
    assert_eq!(r.prefix, (32, 48));
    let exempt: Vec<String> = r.exempt.iter().map(|n| n.to_string()).collect();
    assert_eq!(exempt, ["192.0.2.0/24", "2001:db8::53/128"]);
}

#[test]
fn rrl_bad_keys_are_named() {
    for (text, key, says) in [
        (
            "responses_per_second = 0",
            "server.rrl.responses_per_second",
            "between 1 and",
        ),
        (
            "errors_per_second = 200000",
            "server.rrl.errors_per_second",
            "between 1 and",
        ),
        (
            "responses_per_second = 100000\nwindow = \"1h\"",
            "server.rrl.responses_per_second",
            "shorten server.rrl.window",
        ),
        ("window = \"0s\"", "server.rrl.window", "between 1s and 1h"),
        ("window = \"soon\"", "server.rrl.window", "invalid duration"),
        ("slip = 11", "server.rrl.slip", "between 0"),
        (
            "ipv4_prefix = 0",
            "server.rrl.ipv4_prefix",
            "between 1 and 32",
        ),
        (
            "ipv6_prefix = 129",
            "server.rrl.ipv6_prefix",
            "between 1 and 128",
        ),
        (
            "exempt = [\"10.0.0.0/8\", \"ten\"]",
            "server.rrl.exempt[1]",
            "\"ten\"",
        ),
    ] {
        let errs = errors(&format!("{BASE}\n[server.rrl]\n{text}\n"));
        assert!(
            errs.iter().any(|e| e.contains(key) && e.contains(says)),
            "{text}: {errs:?}"
        );
    }
    let errs = errors(&format!("{BASE}\n[server.rrl]\nrate = 5\n"));
    assert!(errs.iter().any(|e| e.contains("rate")), "{errs:?}");
}
