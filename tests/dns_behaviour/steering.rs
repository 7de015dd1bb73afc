//! Steering through DNS (SPEC §4): regions by ECS and source, scopes, maps, policies, families.

use super::*;

#[test]
pub(super) fn european_subnet_gets_european_region_with_geoip_scope() {
    let s = start("eu");
    let q = Q::new("www.example.test.", t::A).ecs("193.0.6.0/24");
    let r = udp(&s, &q);
    assert_eq!(r.rcode(), ResponseCode::NoError);
    assert!(r.raw.has(AA), "AA on a service answer");
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.msg.answers[0].ttl, 30, "the service's TTL");
    let e = r.ecs().expect("ECS echoed");
    assert_eq!(e.family, 1);
    assert_eq!(e.source, 24);
    assert_eq!(e.addr, vec![193, 0, 6]);
    assert_eq!(
        e.scope, 20,
        "scope = prefix of the GeoIP network 193.0.0.0/20"
    );
    // the same over TCP
    let r = tcp(&s, &q);
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
}

#[test]
pub(super) fn asian_and_north_american_subnets_get_their_regions() {
    let s = start("asia-na");
    for (subnet, want, scope) in [
        ("49.207.1.0/24", "192.0.2.3", 16),  // IN
        ("13.228.0.0/24", "192.0.2.3", 16),  // SG
        ("202.12.27.0/24", "192.0.2.3", 24), // JP
        ("24.24.24.0/24", "192.0.2.1", 16),  // US (Syracuse)
        ("151.101.1.0/24", "192.0.2.1", 16), // US (San Francisco)
        ("80.1.2.0/24", "192.0.2.2", 16),    // GB
    ] {
        let r = udp(&s, &Q::new("www.example.test.", t::A).ecs(subnet));
        assert_eq!(r.addrs(), ips(&[want]), "client {subnet}");
        assert_eq!(r.ecs().unwrap().scope, scope, "scope for {subnet}");
    }
}

#[test]
pub(super) fn ipv6_ecs_steers_and_is_echoed() {
    let s = start("ecs6");
    // NL (2001:67c:2e8::/48), A and AAAA
    let q = Q::new("www.example.test.", t::A).ecs("2001:67c:2e8:22::/56");
    let r = udp(&s, &q);
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    let e = r.ecs().unwrap();
    assert_eq!((e.family, e.source, e.scope), (2, 56, 48));
    assert_eq!(e.addr, vec![0x20, 0x01, 0x06, 0x7c, 0x02, 0xe8, 0x00]);
    let r = udp(
        &s,
        &Q::new("www.example.test.", t::AAAA).ecs("2001:67c:2e8:22::/56"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:2::1"]));
    // JP (2001:200::/32)
    let r = udp(
        &s,
        &Q::new("www.example.test.", t::AAAA).ecs("2001:200:dff::/48"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:3::1"]));
    assert_eq!(r.ecs().unwrap().scope, 32);
    // US (2601::/20)
    let r = udp(
        &s,
        &Q::new("www.example.test.", t::AAAA).ecs("2601:5c1:8300::/48"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:1::1"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
}

#[test]
pub(super) fn no_ecs_uses_packet_source_and_list_order() {
    let s = start("noecs");
    // no EDNS at all: 127.0.0.1 has no location -> first region in list order
    let q = Q::new("www.example.test.", t::A);
    let r = udp(&s, &q);
    assert_eq!(
        r.addrs(),
        ips(&["192.0.2.3"]),
        "unknown location -> regions in list order"
    );
    assert!(
        r.raw.opt.is_none(),
        "no OPT (and so no ECS) without EDNS in the query"
    );
    // EDNS without ECS: an OPT, but no ECS option
    let r = udp(&s, &Q::new("www.example.test.", t::A).edns(1232));
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
    assert!(r.ecs().is_none(), "no ECS option invented");
    // over TCP as well
    let r = tcp(&s, &q);
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
}

#[test]
pub(super) fn unlisted_ecs_address_is_unknown_location_with_empty_network_scope() {
    let s = start("unlisted");
    // 8.8.8.0 is not in the demo db; the empty network around it in the
    // tree is 8.0.0.0/6 (1.x, 2.x and 13.x hold data).
    let r = udp(&s, &Q::new("www.example.test.", t::A).ecs("8.8.8.0/24"));
    assert_eq!(
        r.addrs(),
        ips(&["192.0.2.3"]),
        "unknown location -> list order"
    );
    let e = r.ecs().unwrap();
    assert_eq!(
        (e.source, e.scope),
        (24, 6),
        "scope = the database's empty network 8.0.0.0/6"
    );
}

#[test]
pub(super) fn ecs_source_prefix_zero_answers_by_packet_source_with_scope_zero() {
    let s = start("ecs0");
    for family in [1u16, 2] {
        let q = Q::new("www.example.test.", t::A).ecs_bytes(ecs_data(family, 0, 0, &[]));
        let r = udp(&s, &q);
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert_eq!(
            r.addrs(),
            ips(&["192.0.2.3"]),
            "answered by 127.0.0.1 (unknown location)"
        );
        assert_eq!(
            r.ecs(),
            Some(RawEcs {
                family,
                source: 0,
                scope: 0,
                addr: vec![]
            })
        );
    }
}

#[test]
pub(super) fn map_cidr_lengthens_the_scope() {
    let s = start("mapcidr");
    // inside the mapped /24 (which lies inside the GeoIP /20)
    let r = udp(
        &s,
        &Q::new("mapped.example.test.", t::A).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]), "the map entry's region");
    assert_eq!(r.ecs().unwrap().scope, 24, "scope = the map CIDR");
    let r = udp(
        &s,
        &Q::new("mapped.example.test.", t::A).ecs("193.0.6.128/25"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
    assert!(r.ecs().unwrap().scope >= 24);
    // outside the CIDR but inside the /20: scope narrower than /20 that
    // does not cover the CIDR
    for client in [
        "193.0.0.0/24",
        "193.0.8.0/24",
        "193.0.7.0/24",
        "193.0.15.0/24",
    ] {
        let r = udp(&s, &Q::new("mapped.example.test.", t::A).ecs(client));
        assert_eq!(
            r.addrs(),
            ips(&["192.0.2.2"]),
            "client {client} -> nearest (eu-west)"
        );
        let scope = r.ecs().unwrap().scope;
        let addr: Ipv4Addr = client.split_once('/').unwrap().0.parse().unwrap();
        assert!(
            scope > 20 && scope <= 32,
            "client {client}: scope {scope} must be longer than 20"
        );
        assert!(
            !overlaps(addr, scope, Ipv4Addr::new(193, 0, 6, 0), 24),
            "client {client}: scope {scope} covers 193.0.6.0/24, which is answered differently"
        );
    }
    // elsewhere the map changes nothing
    let r = udp(
        &s,
        &Q::new("mapped.example.test.", t::A).ecs("24.24.24.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.1"]));
    // the /16 merges with the empty space around it, which list order also
    // answers with us-east: at most /16, and never 0 (Europe differs)
    let scope = r.ecs().unwrap().scope;
    assert!((1..=16).contains(&scope), "scope {scope}");
}

#[test]
pub(super) fn weighted_and_failover_answers_have_scope_zero() {
    let s = start("nongeo");
    for subnet in ["193.0.6.0/24", "49.207.1.0/24", "2001:200:dff::/48"] {
        let r = udp(&s, &Q::new("weighted.example.test.", t::A).ecs(subnet));
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert_eq!(r.addrs().len(), 1);
        assert!(ips(&["192.0.2.1", "192.0.2.2"]).contains(&r.addrs()[0]));
        let e = r.ecs().expect("ECS echoed");
        assert_eq!(e.scope, 0, "weighted does not depend on location");
        assert_eq!(e.addr, ecs_for(subnet)[4..].to_vec());

        let r = udp(&s, &Q::new("failover.example.test.", t::A).ecs(subnet));
        assert_eq!(
            r.addrs(),
            ips(&["192.0.2.2"]),
            "failover: first in list, whatever the client"
        );
        assert_eq!(
            r.ecs().unwrap().scope,
            0,
            "failover does not depend on location"
        );
    }
}

#[test]
pub(super) fn weighted_policy_uses_both_regions() {
    let s = start("weighted");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.extend(udp(&s, &Q::new("weighted.example.test.", t::A)).addrs());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ips(&["192.0.2.1", "192.0.2.2"])
    );
}

#[test]
pub(super) fn static_negative_and_refused_answers_echo_ecs_with_scope_zero() {
    let s = start("scope0");
    let subnet = "193.0.6.0/24";
    let cases: [(&str, u16, ResponseCode); 6] = [
        ("mail.example.test.", t::A, ResponseCode::NoError), // static
        ("example.test.", t::MX, ResponseCode::NoError),     // static
        ("nope.example.test.", t::A, ResponseCode::NXDomain), // NXDOMAIN
        ("mail.example.test.", t::TXT, ResponseCode::NoError), // NODATA
        ("v4only.example.test.", t::AAAA, ResponseCode::NoError), // NODATA of a service
        ("www.example.org.", t::A, ResponseCode::Refused),   // REFUSED
    ];
    for (name, qt, rc) in cases {
        let r = udp(&s, &Q::new(name, qt).ecs(subnet));
        assert_eq!(r.rcode(), rc, "{name} {qt}");
        assert_eq!(
            r.ecs(),
            Some(RawEcs {
                family: 1,
                source: 24,
                scope: 0,
                addr: vec![193, 0, 6]
            }),
            "{name} {qt}: ECS echoed with scope 0"
        );
    }
}

#[test]
pub(super) fn ecs_echo_has_same_family_source_and_address_bytes() {
    let s = start("echo");
    for subnet in [
        "193.0.6.128/25",
        "193.0.0.0/20",
        "193.0.0.0/9",
        "24.24.24.24/32",
        "2001:67c:2e8:22::/64",
        "2001:67c:2e8:22::1/128",
        "2001:200::/19",
    ] {
        let sent = ecs_for(subnet);
        let r = udp(
            &s,
            &Q::new("www.example.test.", t::A).ecs_bytes(sent.clone()),
        );
        let e = r.ecs().unwrap_or_else(|| panic!("{subnet}: no ECS echoed"));
        assert_eq!(
            e.family.to_be_bytes(),
            [sent[0], sent[1]],
            "{subnet}: family"
        );
        assert_eq!(e.source, sent[2], "{subnet}: source prefix");
        assert_eq!(e.addr, sent[4..].to_vec(), "{subnet}: address bytes");
    }
}

#[test]
pub(super) fn aaaa_answers_come_from_ipv6_endpoints_only() {
    let s = start("aaaa");
    let r = udp(&s, &Q::new("mixed.example.test.", t::AAAA));
    assert!(
        r.answer_types().iter().all(|&t| t == RecordType::AAAA),
        "{:?}",
        r.msg
    );
    assert_eq!(
        r.addrs(),
        ips(&["2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"])
    );
    let r = udp(&s, &Q::new("mixed.example.test.", t::A));
    assert!(
        r.answer_types().iter().all(|&t| t == RecordType::A),
        "{:?}",
        r.msg
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
    // geo: a region without IPv6 endpoints is skipped for AAAA only
    let r = udp(
        &s,
        &Q::new("partial.example.test.", t::A).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.4"]));
    let r = udp(
        &s,
        &Q::new("partial.example.test.", t::AAAA).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:1::1"]));
}

#[test]
pub(super) fn service_without_ipv6_endpoints_is_nodata_for_aaaa() {
    let s = start("nov6");
    let r = udp(
        &s,
        &Q::new("v4only.example.test.", t::AAAA).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.rcode(), ResponseCode::NoError);
    assert!(r.raw.has(AA));
    assert!(r.msg.answers.is_empty(), "{:?}", r.msg);
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("example.test.").unwrap());
    assert_eq!(ttl, 60);
    // while A works
    let r = udp(&s, &Q::new("v4only.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.4"]));
}

#[test]
pub(super) fn answers_two_returns_two_addresses() {
    let s = start("two");
    let r = udp(&s, &Q::new("two.example.test.", t::A).ecs("24.24.24.0/24"));
    let mut a = r.addrs();
    a.sort();
    assert_eq!(
        a,
        ips(&["192.0.2.10", "192.0.2.11"]),
        "two distinct endpoints of one region"
    );
    // a region with one endpoint of the family spills over to the next
    let r = udp(&s, &Q::new("spill.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.2", "192.0.2.1"]));
    let r = udp(&s, &Q::new("spill.example.test.", t::AAAA));
    assert_eq!(r.addrs(), ips(&["2001:db8:2::1", "2001:db8:1::1"]));
}
