//! DNS names, zones, map keys and TOML key quoting.

use super::*;

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
