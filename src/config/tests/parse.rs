//! Valid files: every key read, defaults applied, paths resolved.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::model::Policy;

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
            xdp: None,
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
                dnssec: None,
                transfer: None,
                primary: None,
            },
            Zone {
                name: "other.test.".into(),
                file: PathBuf::from("/abs/other.zone"),
                file_display: "/abs/other.zone".into(),
                dnssec: None,
                transfer: None,
                primary: None,
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
            xdp: None,
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
