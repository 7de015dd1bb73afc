//! Invalid values: each names the file, the key and the reason.

use super::*;

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
            "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]",
            "check = \"web\"\nbias = 100\nendpoints = [{ address = \"192.0.2.1\" }]",
            "regions.us-east.bias".into(),
            "100 is not between -99 and 99",
        ),
        (
            "check = \"web\"\nendpoints = [{ address = \"192.0.2.1\" }]",
            "check = \"web\"\nbias = -4000000000\nendpoints = [{ address = \"192.0.2.1\" }]",
            "regions.us-east.bias".into(),
            "-4000000000 is not between -99 and 99",
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
