//! Geo ordering and maps, and the compiled GeoIP index: its orders agree
//! with the decoded records and its ECS scopes never cover a different
//! answer.

use std::sync::Arc;

use super::*;
use crate::geo::scope::Uniform;
use crate::geo::table::GeoTable;

#[test]
fn geo_orders_by_great_circle_distance() {
    let (w, s) = three();
    let cases = [
        (AMSTERDAM, ["dublin", "ashburn", "mumbai"]),
        (NEW_YORK, ["ashburn", "dublin", "mumbai"]),
        (TOKYO, ["mumbai", "dublin", "ashburn"]),
        (SAO_PAULO, ["ashburn", "dublin", "mumbai"]),
        (MUMBAI, ["mumbai", "dublin", "ashburn"]),
    ];
    let mut rng = Rng::new(1);
    for (coords, want) in cases {
        let c = at("198.51.100.1", "XX", "XX", coords);
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(w.order(&s, &d), want, "client at {coords:?}");
        assert_eq!(d.rule, Rule::Distance);
        assert!(!d.fail_open);
        let first = w.regions.iter().find(|r| *r.name == *want[0]).unwrap();
        assert_eq!(w.addrs(&d), [first.endpoints[0].addr.to_string()]);
        assert_eq!(
            d.picks.as_slice()[0].position as usize,
            s.regions
                .iter()
                .position(|&r| *w.regions[r as usize].name == *want[0])
                .unwrap()
        );
    }
}

#[test]
fn geo_ties_keep_list_order() {
    let mut w = World::default();
    let b = w.region("b", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let far = w.region("far", MUMBAI, 1, &[("192.0.2.9", 1)]);
    let a = w.region("a", DUBLIN, 1, &[("192.0.2.1", 1)]);
    let c = w.region("c", DUBLIN, 1, &[("192.0.2.3", 1)]);
    let amsterdam = at("198.51.100.1", "NL", "EU", AMSTERDAM);
    let mut rng = Rng::new(2);
    for (list, want) in [
        (vec![b, far, a, c], ["b", "a", "c", "far"]),
        (vec![c, a, far, b], ["c", "a", "b", "far"]),
        (vec![far, a, b, c], ["a", "b", "c", "far"]),
    ] {
        let s = service(Policy::Geo, &list);
        let d = w.decide(&s, Family::V4, &amsterdam, &mut rng);
        assert_eq!(w.order(&s, &d), want);
    }
}

#[test]
fn geo_without_location_uses_list_order() {
    let (w, s) = three();
    let mut rng = Rng::new(3);
    let no_coords = client("198.51.100.1", Some(location("NL", "EU", None)));
    for c in [
        unknown(),
        no_coords,
        Client {
            addr: None,
            located: Located {
                location: None,
                prefix: 0,
            },
        },
    ] {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(w.order(&s, &d), ["mumbai", "ashburn", "dublin"]);
        assert_eq!(d.rule, Rule::UnknownLocation);
        assert_eq!(w.addrs(&d), ["192.0.2.3"]);
    }
}

#[test]
fn map_matching_precedence() {
    let m = geo_map(&[
        ("EU", &[0]),
        ("10.0.0.0/8", &[1]),
        ("NL", &[2]),
        ("10.1.0.0/16", &[0]),
        ("2001:db8::/32", &[1]),
        ("10.1.2.0/24", &[2]),
    ]);
    let nl = location("NL", "EU", Some(AMSTERDAM));
    let de = location("DE", "EU", None);
    let us = location("US", "NA", Some(NEW_YORK));
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    let cases: Vec<(Option<IpAddr>, Option<&Location>, Option<u16>)> = vec![
        // the most specific CIDR beats every other key
        (ip("10.1.2.3"), Some(&nl), Some(5)),
        (ip("10.1.3.3"), Some(&nl), Some(3)),
        (ip("10.2.0.1"), Some(&nl), Some(1)),
        (ip("10.2.0.1"), None, Some(1)),
        (ip("2001:db8::1"), Some(&us), Some(4)),
        // an IPv4-mapped IPv6 address matches IPv4 CIDRs
        (ip("::ffff:10.1.2.3"), None, Some(5)),
        // country beats continent
        (ip("192.0.2.1"), Some(&nl), Some(2)),
        (None, Some(&nl), Some(2)),
        // continent when the country has no key
        (ip("192.0.2.1"), Some(&de), Some(0)),
        // nothing
        (ip("192.0.2.1"), Some(&us), None),
        (ip("192.0.2.1"), None, None),
        (ip("2001:db9::1"), None, None),
        (None, None, None),
    ];
    for (addr, loc, want) in cases {
        assert_eq!(m.matching(addr, loc), want, "{addr:?} {loc:?}");
    }
    // unknown codes ([0, 0]) never match a key
    let mut zero = GeoMap::default();
    zero.countries.insert([0, 0], 0);
    zero.continents.insert([0, 0], 0);
    zero.entries.push(("x".into(), vec![0]));
    assert_eq!(zero.matching(None, Some(&location("", "", None))), None);
}

#[test]
fn map_regions_come_first_then_distance() {
    let mut w = World::default();
    let d = w.region("dublin", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let a = w.region("ashburn", ASHBURN, 1, &[("192.0.2.1", 1)]);
    let m = w.region("mumbai", MUMBAI, 1, &[("192.0.2.3", 1)]);
    let t = w.region("tokyo", TOKYO, 1, &[("192.0.2.4", 1)]);
    let mut s = service(Policy::Geo, &[d, a, m, t]);
    // positions: dublin 0, ashburn 1, mumbai 2, tokyo 3
    s.map = geo_map(&[("EU", &[2, 1]), ("JP", &[0]), ("10.0.0.0/8", &[3, 0])]);
    let mut rng = Rng::new(4);
    let cases = [
        // map regions in the listed order, the rest by distance
        (
            at("198.51.100.1", "NL", "EU", AMSTERDAM),
            vec!["mumbai", "ashburn", "dublin", "tokyo"],
            Rule::Map(0),
        ),
        (
            at("198.51.100.1", "JP", "AS", TOKYO),
            vec!["dublin", "tokyo", "mumbai", "ashburn"],
            Rule::Map(1),
        ),
        (
            at("10.1.1.1", "JP", "AS", TOKYO),
            vec!["tokyo", "dublin", "mumbai", "ashburn"],
            Rule::Map(2),
        ),
        // a matching map with an unknown position: map first, then list order
        (
            client("10.1.1.1", None),
            vec!["tokyo", "dublin", "ashburn", "mumbai"],
            Rule::Map(2),
        ),
        // no matching key: distance
        (
            at("198.51.100.1", "US", "NA", NEW_YORK),
            vec!["ashburn", "dublin", "tokyo", "mumbai"],
            Rule::Distance,
        ),
    ];
    for (c, want, rule) in cases {
        let dec = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(w.order(&s, &dec), want, "{:?}", c.addr);
        assert_eq!(dec.rule, rule, "{:?}", c.addr);
        let first = &w
            .regions
            .iter()
            .find(|r| *r.name == *want[0])
            .unwrap()
            .endpoints[0];
        assert_eq!(w.addrs(&dec), [first.addr.to_string()]);
    }

    // a map region that is not a candidate is skipped; the rule stays the map's
    w.set_region(m, 0);
    let dec = w.decide(
        &s,
        Family::V4,
        &at("198.51.100.1", "NL", "EU", AMSTERDAM),
        &mut rng,
    );
    assert_eq!(w.order(&s, &dec), ["ashburn", "dublin", "tokyo"]);
    assert_eq!(dec.rule, Rule::Map(0));
    // when no map region is a candidate, distance chose the first region
    w.set_region(a, 0);
    let dec = w.decide(
        &s,
        Family::V4,
        &at("198.51.100.1", "NL", "EU", AMSTERDAM),
        &mut rng,
    );
    assert_eq!(w.order(&s, &dec), ["dublin", "tokyo"]);
    assert_eq!(dec.rule, Rule::Distance);
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn demo_db() -> crate::geo::GeoDb {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo-city.mmdb");
    crate::geo::GeoDb::open(std::path::Path::new(path), path).unwrap()
}

fn table(db: &crate::geo::GeoDb) -> Arc<GeoTable> {
    Arc::new(GeoTable::compile(db).unwrap())
}

/// The region order and scope the answer path computes for `a`.
fn index_lookup(svc: &Service, w: &World, a: IpAddr) -> (Vec<u8>, u8) {
    let h = svc.geo.as_ref().unwrap().lookup(svc, &w.regions, a);
    (h.order.as_slice().to_vec(), h.scope)
}

/// Four regions as in the demo, with a map that has a CIDR inside a
/// database network (193.0.6.0/24 inside 193.0.0.0/20), a country key and
/// a continent key.
fn indexed() -> (World, Service, crate::geo::GeoDb) {
    let mut w = World::default();
    let us = w.region("us-east", ASHBURN, 1, &[("192.0.2.1", 1)]);
    let eu = w.region("eu-west", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let ap = w.region("ap-south", MUMBAI, 1, &[("192.0.2.3", 1)]);
    let sa = w.region("sa-east", SAO_PAULO, 1, &[("192.0.2.4", 1)]);
    let mut svc = service(Policy::Geo, &[us, eu, ap, sa]);
    svc.map = geo_map(&[
        ("193.0.6.0/24", &[2]),
        ("10.0.0.0/8", &[3]),
        ("2001:67c:2e8:1::/64", &[3]),
        ("JP", &[1]),
        ("OC", &[0, 3]),
    ]);
    let db = demo_db();
    let ix = GeoIndex::build(table(&db), &svc, &w.regions);
    svc.geo = Some(Arc::new(ix));
    (w, svc, db)
}

/// What deciding from the decoded record gives for an address.
fn decoded_order(svc: &Service, w: &World, db: &crate::geo::GeoDb, a: IpAddr) -> Vec<u8> {
    let loc = db.locate(a).location;
    let cidr = svc.map.matching(Some(a), None);
    geo_order(svc, &w.regions, loc.as_ref(), cidr).order
}

/// Addresses to probe: random ones, and ones in and around every network
/// the demo database and the map know.
fn probes(rng: &mut Rng) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = [
        "193.0.6.1",
        "193.0.7.1",
        "193.0.0.1",
        "193.0.15.255",
        "193.0.16.0",
        "24.24.24.1",
        "49.207.0.1",
        "13.228.0.1",
        "202.12.27.33",
        "1.1.1.1",
        "41.1.2.3",
        "200.1.2.3",
        "177.1.2.3",
        "80.1.2.3",
        "2.2.2.2",
        "8.8.8.8",
        "10.1.2.3",
        "127.0.0.1",
        "192.168.1.1",
        "0.0.0.1",
        "255.255.255.255",
        "2001:67c:2e8:22::c100:68b",
        "2001:67c:2e8:1::5",
        "2001:200:dff:fff1::1",
        "2601:5c1:8300::1",
        "2c0f:fe38:2000::1",
        "2001:12ff:0:4::6",
        "::1",
        "fe80::1",
        "2001:db8::1",
        "::ffff:193.0.6.1",
        "2a00:1450::1",
    ]
    .iter()
    .map(|a| ip(a))
    .collect();
    for _ in 0..3000 {
        let x = rng.next_u64();
        v.push(IpAddr::from((x as u32).to_be_bytes()));
        let hi = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        // bias IPv6 towards the allocated 2000::/3
        v.push(IpAddr::from(((hi >> 3) | (1u128 << 125)).to_be_bytes()));
    }
    v
}

#[test]
fn geo_index_orders_agree_with_decoded_locations() {
    let (w, svc, db) = indexed();
    let mut rng = Rng::new(1);
    for a in probes(&mut rng) {
        let (order, _) = index_lookup(&svc, &w, a);
        assert_eq!(order, decoded_order(&svc, &w, &db, a), "{a}");
    }
}

/// SPEC §4.6: the scope never covers an address that would be answered
/// differently.
#[test]
fn geo_index_scope_never_covers_a_different_answer() {
    let (w, svc, db) = indexed();
    let mut rng = Rng::new(2);
    for a in probes(&mut rng) {
        let (order, scope) = index_lookup(&svc, &w, a);
        // work in the canonical family; a mapped address's scope counts the ::ffff:0:0/96 prefix
        let (bits, v4, scope) = match (a, a.to_canonical()) {
            (IpAddr::V6(_), IpAddr::V4(v)) => (u128::from(u32::from(v)) << 96, true, scope - 96),
            (_, IpAddr::V4(v)) => (u128::from(u32::from(v)) << 96, true, scope),
            (_, IpAddr::V6(v)) => (u128::from(v), false, scope),
        };
        assert!(scope <= if v4 { 32 } else { 128 }, "{a}: scope /{scope}");
        for _ in 0..40 {
            let r = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            let host = u128::MAX.checked_shr(u32::from(scope)).unwrap_or(0);
            let o = (bits & !host) | (r & host);
            let other = if v4 {
                IpAddr::from(((o >> 96) as u32).to_be_bytes())
            } else {
                IpAddr::from(o.to_be_bytes())
            };
            assert_eq!(
                decoded_order(&svc, &w, &db, other),
                order,
                "{a} answered with scope /{scope}, but {other} in that block is answered differently"
            );
        }
    }
}

#[test]
fn geo_index_scope_cases() {
    let (w, svc, _db) = indexed();
    let lookup = |a: IpAddr| index_lookup(&svc, &w, a);
    let name = |o: &[u8]| {
        w.regions[svc.regions[o[0] as usize] as usize]
            .name
            .to_string()
    };
    // the map CIDR 193.0.6.0/24 lies inside the /20 network: inside it, /24
    let (o, scope) = lookup(ip("193.0.6.1"));
    assert_eq!((name(&o).as_str(), scope), ("ap-south", 24));
    // outside the CIDR, inside the /20: nearest (Dublin), longer than /20,
    // and the block must not hold 193.0.6.0/24
    let (o, scope) = lookup(ip("193.0.7.1"));
    assert_eq!(name(&o), "eu-west");
    assert!(scope > 20, "/{scope}");
    assert!(
        scope >= 24,
        "193.0.7.0 and 193.0.6.0 share 23 bits: /{scope}"
    );
    let (o, scope) = lookup(ip("193.0.0.1"));
    assert_eq!(name(&o), "eu-west");
    assert!((21..=24).contains(&scope), "/{scope}");
    // a country key and a continent key
    assert_eq!(name(&lookup(ip("202.12.27.33")).0), "eu-west"); // JP -> map
    assert_eq!(name(&lookup(ip("1.1.1.1")).0), "us-east"); // OC -> [us-east, sa-east]
    // special-purpose addresses have no location, but CIDR keys still match
    assert_eq!(name(&lookup(ip("10.1.2.3")).0), "sa-east");
    let (o, _) = lookup(ip("192.168.1.1"));
    assert_eq!(o, [0, 1, 2, 3], "unknown location: list order");
    // IPv4-mapped IPv6 is looked up as IPv4, scope in IPv6 terms
    let (o, scope) = lookup(ip("::ffff:193.0.6.1"));
    assert_eq!((name(&o).as_str(), scope), ("ap-south", 120));
    // IPv6: a map CIDR inside a database network
    let (o, scope) = lookup(ip("2001:67c:2e8:1::5"));
    assert_eq!((name(&o).as_str(), scope), ("sa-east", 64));
    let (o, scope) = lookup(ip("2001:67c:2e8:22::1"));
    assert_eq!(name(&o), "eu-west");
    assert!(scope > 48, "/{scope}");
}

/// Adjacent networks with the same answer merge into one wider scope
/// (better for resolver caches), as gdnsd does.
#[test]
fn geo_index_merges_networks_with_the_same_answer() {
    let mut w = World::default();
    let only = w.region("only", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let mut svc = service(Policy::Geo, &[only]);
    let db = demo_db();
    svc.geo = Some(Arc::new(GeoIndex::build(table(&db), &svc, &w.regions)));
    // one region: every address gets the same answer, scope 0
    assert_eq!(index_lookup(&svc, &w, ip("193.0.6.1")), (vec![0u8], 0));
    assert_eq!(index_lookup(&svc, &w, ip("2001:200::1")), (vec![0u8], 0));
    assert_eq!(svc.geo.as_ref().unwrap().orders(), 1);
}

#[test]
fn explain_path_and_index_path_decide_alike() {
    let (w, svc, db) = indexed();
    for a in [
        "193.0.6.1",
        "193.0.7.1",
        "49.207.0.1",
        "10.9.9.9",
        "8.8.8.8",
        "2001:200::1",
    ] {
        let a = ip(a);
        let c = Client {
            addr: Some(a),
            located: db.locate(a),
        };
        let by_location = w.decide(&svc, Family::V4, &c, &mut Rng::new(3));
        let hit = svc.geo.as_ref().unwrap().lookup(&svc, &w.regions, a);
        let view = hit.view();
        let by_index = decide_view(
            &svc,
            &w.inputs(),
            Family::V4,
            Some(&view),
            dynamic::net_key(a, svc.hash_prefix),
            &mut Rng::new(3),
        );
        assert_eq!(w.order(&svc, &by_location), w.order(&svc, &by_index), "{a}");
        assert_eq!(w.addrs(&by_location), w.addrs(&by_index), "{a}");
    }
}

/// The same agreement and scope checks on a real, large database (record
/// size 28, IPv4 aliases in the IPv6 tree), e.g. GeoLite2-City; runs when
/// `SIGNPOST_TEST_MMDB` names one.
#[test]
fn geo_index_on_a_real_database() {
    let Ok(path) = std::env::var("SIGNPOST_TEST_MMDB") else {
        eprintln!("SKIPPED: set SIGNPOST_TEST_MMDB to a GeoLite2/GeoIP2 City database to run");
        return;
    };
    let db = crate::geo::GeoDb::open(std::path::Path::new(&path), &path).unwrap();
    let mut w = World::default();
    let us = w.region("us-east", ASHBURN, 1, &[("192.0.2.1", 1)]);
    let eu = w.region("eu-west", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let ap = w.region("ap-south", MUMBAI, 1, &[("192.0.2.3", 1)]);
    let mut svc = service(Policy::Geo, &[us, eu, ap]);
    svc.map = geo_map(&[("193.0.6.0/24", &[2])]);
    let start = std::time::Instant::now();
    let t = table(&db);
    eprintln!("table compiled in {:?}: {t:?}", start.elapsed());
    let start = std::time::Instant::now();
    svc.geo = Some(Arc::new(GeoIndex::build(t.clone(), &svc, &w.regions)));
    eprintln!("scope bitmap in {:?}", start.elapsed());
    let start = std::time::Instant::now();
    let v: Vec<u32> = (0..t.class_count() as u32).map(|c| c % 3).collect();
    let _ = t.uniform_bits(&v);
    eprintln!("uniform pass alone {:?}", start.elapsed());
    let mut rng = Rng::new(5);
    for a in probes(&mut rng).into_iter().take(4000) {
        let (order, scope) = index_lookup(&svc, &w, a);
        assert_eq!(order, decoded_order(&svc, &w, &db, a), "{a}");
        if let IpAddr::V4(v) = a {
            let bits = u32::from(v);
            for _ in 0..10 {
                let host = u32::MAX.checked_shr(u32::from(scope)).unwrap_or(0);
                let other =
                    IpAddr::from(((bits & !host) | (rng.next_u64() as u32 & host)).to_be_bytes());
                assert_eq!(
                    decoded_order(&svc, &w, &db, other),
                    order,
                    "{a}/{scope} vs {other}"
                );
            }
        }
    }
    for (a, want) in [
        ("24.24.24.1", "us-east"),
        ("193.0.6.1", "ap-south"),
        ("193.0.7.1", "eu-west"),
        ("49.207.0.1", "ap-south"),
    ] {
        let (order, scope) = index_lookup(&svc, &w, ip(a));
        eprintln!(
            "{a}: {} /{scope}",
            w.regions[svc.regions[order[0] as usize] as usize].name
        );
        assert_eq!(
            &*w.regions[svc.regions[order[0] as usize] as usize].name,
            want
        );
    }
}

/// The scope bits one service alone would get: every class's order id,
/// then one pass over the table (the computation before issue 20, kept
/// here as it was: the orders themselves as keys).
fn one_service_bits(svc: &Service, regions: &[Region], t: &GeoTable) -> Box<[u64]> {
    let mut ids: rustc_hash::FxHashMap<Vec<u8>, u32> = Default::default();
    let value: Vec<u32> = t
        .locations()
        .iter()
        .map(|loc| {
            let o = geo_order(svc, regions, loc.as_ref(), None).order;
            let next = ids.len() as u32;
            *ids.entry(o).or_insert(next)
        })
        .collect();
    let bits = t.uniform_bits(&value);
    // a few maps are computed alone, by the same pass
    let (alone, orders) = super::super::scope::one_service_bits(t, svc, regions);
    assert_eq!(alone, bits, "{}", svc.name);
    assert_eq!(orders, ids.len());
    bits
}

/// The bit of `node` in `ix`'s scope map.
fn scope_bit(ix: &GeoIndex, node: u32) -> bool {
    ix.scopes.get().unwrap().bits.uniform(node)
}

/// Many services computed together (cells, 32 lanes a pass, one shared
/// store) have exactly the bits each would have alone: with ties (two
/// regions in one place), a biased region, country and continent keys,
/// orders longer than 15 regions, and more services than one pass takes.
#[test]
fn batched_scope_maps_equal_one_service_maps() {
    let places = [
        DUBLIN,
        ASHBURN,
        MUMBAI,
        TOKYO,
        SAO_PAULO,
        AMSTERDAM,
        NEW_YORK,
        DUBLIN,
        (1.35, 103.82),
        (-33.87, 151.21),
        (50.11, 8.68),
        (37.35, -121.96),
        (-33.92, 18.42),
        (25.20, 55.27),
        (45.50, -73.57),
        (59.33, 18.07),
        (-23.55, -46.63),
        (22.32, 114.17),
        (19.43, -99.13),
        (41.01, 28.98),
    ];
    let mut w = World::default();
    let ids: Vec<u16> = places
        .iter()
        .enumerate()
        .map(|(i, &p)| w.region(&format!("r{i}"), p, 1, &[("192.0.2.1", 1)]))
        .collect();
    let db = demo_db();
    let t = table(&db);
    let mut rng = Rng::new(20);
    let mut services = Vec::new();
    for s in 0..70usize {
        let k = match s {
            0 => 1,
            1 => 20,
            2 => 17,
            _ => 2 + rng.below(9) as usize,
        };
        let mut picked: Vec<u16> = Vec::new();
        while picked.len() < k {
            let r = ids[rng.below(ids.len() as u64) as usize];
            if !picked.contains(&r) {
                picked.push(r);
            }
        }
        let mut svc = service(Policy::Geo, &picked);
        match s % 5 {
            1 => svc.map = geo_map(&[("NL", &[(k - 1) as u8]), ("JP", &[0])]),
            2 => svc.map = geo_map(&[("EU", &[0, (k - 1) as u8]), ("OC", &[(k / 2) as u8])]),
            3 => svc.map = geo_map(&[("US", &[0]), ("NA", &[(k - 1) as u8])]),
            _ => {}
        }
        services.push(svc);
    }
    // a biased region: services that hold it order by scaled angle
    w.regions[ids[3] as usize].reach = 0.7;
    for svc in &mut services {
        svc.biased = svc.regions.contains(&ids[3]);
    }
    assert!(services.iter().any(|s| s.biased) && services.iter().any(|s| !s.biased));
    let indexes: Vec<GeoIndex> = services.iter().map(|_| GeoIndex::new(t.clone())).collect();
    let jobs: Vec<(&GeoIndex, &Service)> = indexes.iter().zip(&services).collect();
    compute_scope_maps(&jobs, &w.regions, 2, &|| false);
    for (i, (ix, svc)) in jobs.iter().enumerate() {
        assert!(ix.ready(), "service {i}");
        let want = one_service_bits(svc, &w.regions, &t);
        for node in 0..t.shallow() as u32 {
            assert_eq!(
                scope_bit(ix, node),
                want[..].uniform(node),
                "service {i} node {node}"
            );
        }
    }
    // not a trivial table: the services' maps differ
    let ones: Vec<u32> = services
        .iter()
        .map(|s| {
            let b = one_service_bits(s, &w.regions, &t);
            b.iter().map(|w| w.count_ones()).sum()
        })
        .collect();
    assert!(ones.iter().any(|&n| n != ones[0]), "{ones:?}");
    // services computed together share one store
    let store = |ix: &GeoIndex| match &ix.scopes.get().unwrap().bits {
        crate::geo::scope::ScopeBits::Shared { store, .. } => Arc::as_ptr(store),
        crate::geo::scope::ScopeBits::Own(_) => panic!("a map of its own"),
    };
    let stores: Vec<_> = indexes.iter().map(store).collect();
    assert!(stores.windows(2).all(|p| p[0] == p[1]));
    // a map is computed once: asking again changes nothing
    compute_scope_maps(&jobs, &w.regions, 1, &|| false);
    assert_eq!(store(&indexes[0]), stores[0]);
}

/// A run told to stop leaves its maps absent (the configuration was
/// replaced), also when it stops between passes, and a later run computes
/// them.
#[test]
fn a_stopped_run_leaves_maps_absent() {
    let (w, svc) = three();
    let t = table(&demo_db());
    let ix = GeoIndex::new(t.clone());
    compute_scope_maps(&[(&ix, &svc)], &w.regions, 1, &|| true);
    assert!(!ix.ready());
    compute_scope_maps(&[(&ix, &svc)], &w.regions, 1, &|| false);
    assert!(ix.ready());
    // 40 maps, two passes: stopped after the first
    let services: Vec<Service> = (0..40)
        .map(|i| {
            let mut s = svc.clone();
            s.regions.rotate_left(i % 3);
            s
        })
        .collect();
    let indexes: Vec<GeoIndex> = services.iter().map(|_| GeoIndex::new(t.clone())).collect();
    let jobs: Vec<(&GeoIndex, &Service)> = indexes.iter().zip(&services).collect();
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let after_one_pass = || asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 2;
    compute_scope_maps(&jobs, &w.regions, 1, &after_one_pass);
    assert!(asked.into_inner() > 2);
    assert!(indexes.iter().all(|ix| !ix.ready()));
    compute_scope_maps(&jobs, &w.regions, 2, &|| false);
    assert!(indexes.iter().all(GeoIndex::ready));
}

/// The batched maps equal one-service maps on a real database too (40
/// services over 20 cloud regions, a third with a country key); runs
/// when `SIGNPOST_TEST_MMDB` names one.
/// Real cloud locations for the GeoLite2 scope-map tests (the first 20
/// are the scale configuration's regions).
const CLOUD: [(f64, f64); 50] = [
    (39.04, -77.49),
    (40.10, -83.00),
    (37.35, -121.96),
    (45.84, -119.70),
    (45.50, -73.57),
    (-23.55, -46.63),
    (53.35, -6.26),
    (51.51, -0.13),
    (48.86, 2.35),
    (50.11, 8.68),
    (59.33, 18.07),
    (45.46, 9.19),
    (26.07, 50.56),
    (-33.92, 18.42),
    (19.08, 72.88),
    (1.35, 103.82),
    (-33.87, 151.21),
    (35.68, 139.69),
    (37.57, 126.98),
    (22.32, 114.17),
    (41.26, -95.86),
    (29.42, -98.49),
    (40.76, -111.89),
    (36.17, -115.14),
    (51.05, -114.07),
    (20.59, -100.39),
    (-33.45, -70.67),
    (53.44, 6.83),
    (47.37, 8.54),
    (40.42, -3.70),
    (60.57, 27.20),
    (52.23, 21.01),
    (25.20, 55.27),
    (32.09, 34.78),
    (25.29, 51.53),
    (-26.20, 28.05),
    (17.39, 78.49),
    (28.61, 77.21),
    (-6.21, 106.85),
    (-37.81, 144.96),
    (2.92, 101.65),
    (13.76, 100.50),
    (34.69, 135.50),
    (25.03, 121.57),
    (39.90, 116.40),
    (-36.85, 174.76),
    (33.75, -84.39),
    (41.88, -87.63),
    (50.47, 3.82),
    (4.71, -74.07),
];

/// `n` geo services over the regions at `places`, as the scale probe makes
/// them: each over 2-8 of the regions, a third with a country key.
fn generated_services(places: &[(f64, f64)], n: usize) -> (World, Vec<Service>) {
    let mut w = World::default();
    let ids: Vec<u16> = places
        .iter()
        .enumerate()
        .map(|(i, &p)| w.region(&format!("r{i}"), p, 1, &[("192.0.2.1", 1)]))
        .collect();
    let mut rng = Rng::new(21);
    let services: Vec<Service> = (0..n)
        .map(|s| {
            let k = 2 + rng.below(7) as usize;
            let mut picked: Vec<u16> = Vec::new();
            while picked.len() < k {
                let r = ids[rng.below(ids.len() as u64) as usize];
                if !picked.contains(&r) {
                    picked.push(r);
                }
            }
            let mut svc = service(Policy::Geo, &picked);
            if s % 3 == 0 {
                svc.map = geo_map(&[("DE", &[(k - 1) as u8])]);
            }
            svc
        })
        .collect();
    (w, services)
}

#[test]
fn batched_scope_maps_on_a_real_database() {
    let Ok(path) = std::env::var("SIGNPOST_TEST_MMDB") else {
        eprintln!("SKIPPED: set SIGNPOST_TEST_MMDB to a GeoLite2/GeoIP2 City database to run");
        return;
    };
    let db = crate::geo::GeoDb::open(std::path::Path::new(&path), &path).unwrap();
    let t = table(&db);
    let (w, services) = generated_services(&CLOUD[..20], 40);
    let indexes: Vec<GeoIndex> = services.iter().map(|_| GeoIndex::new(t.clone())).collect();
    let jobs: Vec<(&GeoIndex, &Service)> = indexes.iter().zip(&services).collect();
    let start = std::time::Instant::now();
    compute_scope_maps(&jobs, &w.regions, 2, &|| false);
    eprintln!("40 maps in {:?}", start.elapsed());
    for (i, (ix, svc)) in jobs.iter().enumerate() {
        let want = one_service_bits(svc, &w.regions, &t);
        for node in 0..t.shallow() as u32 {
            assert_eq!(
                scope_bit(ix, node),
                want[..].uniform(node),
                "service {i} node {node}"
            );
        }
    }
}

/// How long the scope maps of many services take alone (no server):
/// `SIGNPOST_TEST_MMDB=... NSVC=2000 THREADS=2 cargo test --release --lib
/// scope_maps_timed -- --ignored --nocapture`; 50 cloud regions, each
/// service over 2-8 of them, a third with a country key.
#[test]
#[ignore]
fn scope_maps_timed() {
    let path = std::env::var("SIGNPOST_TEST_MMDB").unwrap();
    let db = crate::geo::GeoDb::open(std::path::Path::new(&path), &path).unwrap();
    let t = table(&db);
    let n: usize = std::env::var("NSVC")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let (w, services) = generated_services(&CLOUD, n);
    let indexes: Vec<GeoIndex> = services.iter().map(|_| GeoIndex::new(t.clone())).collect();
    let jobs: Vec<(&GeoIndex, &Service)> = indexes.iter().zip(&services).collect();
    let threads: usize = std::env::var("THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let start = std::time::Instant::now();
    compute_scope_maps(&jobs, &w.regions, threads, &|| false);
    eprintln!("{n} maps on {threads} threads in {:?}", start.elapsed());
}
