use std::net::IpAddr;

use super::*;
use crate::geo::unit_vector;

const AMSTERDAM: (f64, f64) = (52.37, 4.90);
const NEW_YORK: (f64, f64) = (40.71, -74.01);
const TOKYO: (f64, f64) = (35.68, 139.69);
const SAO_PAULO: (f64, f64) = (-23.55, -46.63);

const DUBLIN: (f64, f64) = (53.35, -6.26);
const ASHBURN: (f64, f64) = (39.04, -77.49);
const MUMBAI: (f64, f64) = (19.08, 72.88);

/// Regions, their health flags and measurements, built by hand.
#[derive(Default)]
struct World {
    regions: Vec<Region>,
    flags: Vec<u8>,
    live: Vec<Live>,
}

impl World {
    /// Adds a region; endpoints are (address, weight), all up.
    fn region(&mut self, name: &str, at: (f64, f64), weight: u32, eps: &[(&str, u32)]) -> u16 {
        let endpoints = eps
            .iter()
            .map(|&(a, w)| {
                self.flags.push(UP);
                self.live.push(Live::UNKNOWN);
                Endpoint {
                    addr: a.parse().unwrap(),
                    weight: w,
                    slot: (self.flags.len() - 1) as u32,
                    capacity: 100.0,
                    seed: dynamic::seed(a.as_bytes()),
                }
            })
            .collect();
        self.regions.push(Region {
            name: name.into(),
            lat: at.0,
            lon: at.1,
            unit: unit_vector(at.0, at.1),
            weight,
            endpoints,
            shed: None,
            seed: dynamic::seed(name.as_bytes()),
        });
        (self.regions.len() - 1) as u16
    }

    /// Sets the flags of endpoint `e` of region `r`.
    fn set(&mut self, r: u16, e: usize, flags: u8) {
        let slot = self.regions[r as usize].endpoints[e].slot as usize;
        self.flags[slot] = flags;
    }

    /// Sets the flags of every endpoint of region `r`.
    fn set_region(&mut self, r: u16, flags: u8) {
        for e in 0..self.regions[r as usize].endpoints.len() {
            self.set(r, e, flags);
        }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            regions: &self.regions,
            flags: &self.flags,
            live: &self.live,
        }
    }

    fn decide(&self, svc: &Service, fam: Family, client: &Client, rng: &mut Rng) -> Decision {
        decide(svc, &self.inputs(), fam, client, rng)
    }

    /// Addresses answered.
    fn answer(&self, svc: &Service, fam: Family, client: &Client, rng: &mut Rng) -> Vec<String> {
        let d = self.decide(svc, fam, client, rng);
        self.addrs(&d)
    }

    fn addrs(&self, d: &Decision) -> Vec<String> {
        d.picks
            .as_slice()
            .iter()
            .map(|p| {
                self.regions[p.region as usize].endpoints[p.endpoint as usize]
                    .addr
                    .to_string()
            })
            .collect()
    }

    /// Region names of a decision's candidate order.
    fn order(&self, svc: &Service, d: &Decision) -> Vec<String> {
        d.order
            .as_slice()
            .iter()
            .map(|&p| {
                self.regions[svc.regions[p as usize] as usize]
                    .name
                    .to_string()
            })
            .collect()
    }
}

fn service(policy: Policy, regions: &[u16]) -> Service {
    Service {
        name: "www.example.test.".into(),
        regions: regions.to_vec(),
        policy,
        ttl: 30,
        answers: 1,
        when_all_down: WhenAllDown::All,
        map: GeoMap::default(),
        counter_slots: vec![0; regions.len()],
        geo: None,
        select: Select::Weighted,
        hash_prefix: (24, 56),
    }
}

fn location(country: &str, continent: &str, at: Option<(f64, f64)>) -> Location {
    let code = |s: &str| -> [u8; 2] {
        let b = s.as_bytes();
        if b.len() == 2 { [b[0], b[1]] } else { [0, 0] }
    };
    Location {
        country: code(country),
        continent: code(continent),
        coords: at,
        unit: at.map_or([0.0; 3], |(la, lo)| unit_vector(la, lo)),
    }
}

fn client(addr: &str, loc: Option<Location>) -> Client {
    Client {
        addr: Some(addr.parse().unwrap()),
        located: Located {
            location: loc,
            prefix: 24,
        },
    }
}

fn at(addr: &str, country: &str, continent: &str, coords: (f64, f64)) -> Client {
    client(addr, Some(location(country, continent, Some(coords))))
}

fn unknown() -> Client {
    client("10.9.9.9", None)
}

/// A geo map from (key, region positions); CIDR keys sorted most specific
/// first, as the snapshot builder does.
fn geo_map(entries: &[(&str, &[u8])]) -> GeoMap {
    let mut m = GeoMap::default();
    for (i, &(key, positions)) in entries.iter().enumerate() {
        m.entries.push((key.into(), positions.to_vec()));
        let i = i as u16;
        if key.contains('/') {
            m.cidrs.push((key.parse().unwrap(), i));
        } else if ["AF", "AN", "AS", "EU", "NA", "OC", "SA"].contains(&key) {
            m.continents
                .insert(*<&[u8; 2]>::try_from(key.as_bytes()).unwrap(), i);
        } else {
            m.countries
                .insert(*<&[u8; 2]>::try_from(key.as_bytes()).unwrap(), i);
        }
    }
    m.cidrs
        .sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
    m
}

/// mumbai, ashburn, dublin, listed in that order.
fn three() -> (World, Service) {
    let mut w = World::default();
    let m = w.region("mumbai", MUMBAI, 1, &[("192.0.2.3", 1)]);
    let a = w.region("ashburn", ASHBURN, 1, &[("192.0.2.1", 1)]);
    let d = w.region("dublin", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let s = service(Policy::Geo, &[m, a, d]);
    (w, s)
}

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

#[test]
fn rule_names() {
    for (rule, name) in [
        (Rule::Map(3), "map"),
        (Rule::Distance, "distance"),
        (Rule::Weighted, "weighted"),
        (Rule::Failover, "failover"),
        (Rule::UnknownLocation, "unknown-location"),
        (Rule::AllDown, "all-down"),
        (Rule::NoEndpoints, "no-endpoints"),
    ] {
        assert_eq!(rule.name(), name);
    }
}

#[test]
fn regions_without_the_family_are_skipped() {
    let mut w = World::default();
    let v6 = w.region("dublin6", DUBLIN, 1, &[("2001:db8::2", 1)]);
    let v4 = w.region("ashburn4", ASHBURN, 1, &[("192.0.2.1", 1)]);
    let both = w.region("mumbai", MUMBAI, 1, &[("192.0.2.3", 1), ("2001:db8::3", 1)]);
    let s = service(Policy::Geo, &[v6, v4, both]);
    let ams = at("198.51.100.1", "NL", "EU", AMSTERDAM);
    let mut rng = Rng::new(5);
    let d = w.decide(&s, Family::V4, &ams, &mut rng);
    assert_eq!(w.order(&s, &d), ["ashburn4", "mumbai"]);
    assert_eq!(w.addrs(&d), ["192.0.2.1"]);
    let d = w.decide(&s, Family::V6, &ams, &mut rng);
    assert_eq!(w.order(&s, &d), ["dublin6", "mumbai"]);
    assert_eq!(w.addrs(&d), ["2001:db8::2"]);

    // no region has the family: NODATA, whatever when_all_down says
    for policy in [Policy::Geo, Policy::Weighted, Policy::Failover] {
        for wad in [WhenAllDown::All, WhenAllDown::Nodata] {
            let mut s = service(policy, &[v4]);
            s.when_all_down = wad;
            let d = w.decide(&s, Family::V6, &ams, &mut rng);
            assert!(d.picks.is_empty());
            assert!(d.order.is_empty());
            assert_eq!(d.rule, Rule::NoEndpoints);
            assert!(!d.fail_open);
        }
    }
}

#[test]
fn weighted_draws_by_region_weight() {
    let mut w = World::default();
    let a = w.region("a", DUBLIN, 3, &[("192.0.2.1", 1)]);
    let b = w.region("b", MUMBAI, 1, &[("192.0.2.2", 1)]);
    let s = service(Policy::Weighted, &[a, b]);
    let mut rng = Rng::new(42);
    let c = at("198.51.100.1", "NL", "EU", AMSTERDAM);
    let n = 10_000;
    let mut first_a = 0;
    for _ in 0..n {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(d.rule, Rule::Weighted);
        assert_eq!(d.order.len(), 2, "every candidate is ordered");
        if d.picks.as_slice()[0].region == a {
            first_a += 1;
        }
    }
    let share = f64::from(first_a) / f64::from(n);
    assert!((0.72..=0.78).contains(&share), "weight 3:1 gave {share}");
}

#[test]
fn weighted_zero_weight_region_is_last_resort() {
    let mut w = World::default();
    let zero = w.region("zero", DUBLIN, 0, &[("192.0.2.9", 1)]);
    let a = w.region("a", MUMBAI, 1, &[("192.0.2.1", 1)]);
    let b = w.region("b", ASHBURN, 2, &[("192.0.2.2", 1)]);
    let s = service(Policy::Weighted, &[zero, a, b]);
    let mut rng = Rng::new(7);
    let c = unknown();
    let mut seen = [0; 3];
    for _ in 0..2000 {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        seen[d.picks.as_slice()[0].position as usize] += 1;
        assert_eq!(w.order(&s, &d).last().map(String::as_str), Some("zero"));
    }
    assert_eq!(
        seen[0], 0,
        "zero weight drawn while positive regions were up"
    );
    assert!(seen[1] > 400 && seen[2] > 1000, "{seen:?}");

    // only when no positive-weight region is a candidate
    w.set_region(a, 0);
    w.set_region(b, DRAINED | UP);
    for _ in 0..50 {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(w.addrs(&d), ["192.0.2.9"]);
        assert_eq!(d.rule, Rule::Weighted);
        assert!(!d.fail_open);
    }
}

#[test]
fn failover_uses_list_order() {
    let mut w = World::default();
    let far = w.region("far", MUMBAI, 5, &[("192.0.2.3", 1)]);
    let near = w.region("near", DUBLIN, 1, &[("192.0.2.2", 1)]);
    let mid = w.region("mid", ASHBURN, 1, &[("192.0.2.1", 1)]);
    let s = service(Policy::Failover, &[far, near, mid]);
    let c = at("198.51.100.1", "NL", "EU", AMSTERDAM);
    let mut rng = Rng::new(8);
    for _ in 0..20 {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(w.order(&s, &d), ["far", "near", "mid"]);
        assert_eq!(d.rule, Rule::Failover);
        assert_eq!(w.addrs(&d), ["192.0.2.3"]);
    }
    w.set_region(far, 0);
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert_eq!(w.order(&s, &d), ["near", "mid"]);
    assert_eq!(w.addrs(&d), ["192.0.2.2"]);
    w.set_region(near, UP | DRAINED);
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert_eq!(w.addrs(&d), ["192.0.2.1"]);
    assert_eq!(d.rule, Rule::Failover);
}

#[test]
fn answers_draw_without_replacement_and_spill_over() {
    let mut w = World::default();
    let a = w.region("a", DUBLIN, 1, &[("192.0.2.1", 3), ("192.0.2.2", 1)]);
    let b = w.region(
        "b",
        ASHBURN,
        1,
        &[("192.0.2.11", 1), ("192.0.2.12", 1), ("192.0.2.13", 1)],
    );
    let mut s = service(Policy::Failover, &[a, b]);
    let c = unknown();
    let mut rng = Rng::new(9);

    // answers = 2: both endpoints of a, each once, heavier first 75% of the time
    s.answers = 2;
    let n = 10_000;
    let mut heavy_first = 0;
    for _ in 0..n {
        let got = w.answer(&s, Family::V4, &c, &mut rng);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, ["192.0.2.1", "192.0.2.2"]);
        if got[0] == "192.0.2.1" {
            heavy_first += 1;
        }
    }
    let share = f64::from(heavy_first) / f64::from(n);
    assert!(
        (0.72..=0.78).contains(&share),
        "endpoint weights 3:1 gave {share}"
    );

    // answers = 4: a's two, then two distinct ones of b
    s.answers = 4;
    for _ in 0..200 {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        let got = w.addrs(&d);
        assert_eq!(got.len(), 4);
        let mut head = got[..2].to_vec();
        head.sort();
        assert_eq!(head, ["192.0.2.1", "192.0.2.2"]);
        let of_b = ["192.0.2.11", "192.0.2.12", "192.0.2.13"];
        assert!(of_b.contains(&got[2].as_str()) && of_b.contains(&got[3].as_str()));
        assert_ne!(got[2], got[3], "drawn without replacement");
        let positions: Vec<u8> = d.picks.as_slice().iter().map(|p| p.position).collect();
        assert_eq!(positions, [0, 0, 1, 1]);
    }

    // more answers than endpoints: every endpoint once
    s.answers = 16;
    let mut got = w.answer(&s, Family::V4, &c, &mut rng);
    got.sort();
    assert_eq!(
        got,
        [
            "192.0.2.1",
            "192.0.2.11",
            "192.0.2.12",
            "192.0.2.13",
            "192.0.2.2"
        ]
    );

    // answers = 1: one address
    s.answers = 1;
    assert_eq!(w.answer(&s, Family::V4, &c, &mut rng).len(), 1);
}

#[test]
fn zero_weight_endpoint_is_used_only_without_a_positive_one() {
    let mut w = World::default();
    let a = w.region("a", DUBLIN, 1, &[("192.0.2.1", 0), ("192.0.2.2", 1)]);
    let b = w.region("b", ASHBURN, 1, &[("192.0.2.3", 1)]);
    let mut s = service(Policy::Failover, &[a, b]);
    let c = unknown();
    let mut rng = Rng::new(10);
    for _ in 0..500 {
        assert_eq!(w.answer(&s, Family::V4, &c, &mut rng), ["192.0.2.2"]);
    }
    // even with room for more answers the zero-weight endpoint stays out
    s.answers = 3;
    for _ in 0..100 {
        assert_eq!(
            w.answer(&s, Family::V4, &c, &mut rng),
            ["192.0.2.2", "192.0.2.3"]
        );
    }
    // once the positive one is unusable, the zero-weight one answers
    s.answers = 1;
    for flags in [0, DRAINED, UP | DRAINED] {
        w.set(a, 1, flags);
        assert_eq!(w.answer(&s, Family::V4, &c, &mut rng), ["192.0.2.1"]);
    }
    // a region of only zero weights is drawn uniformly
    let mut w = World::default();
    let z = w.region("z", DUBLIN, 1, &[("192.0.2.1", 0), ("192.0.2.2", 0)]);
    let s = service(Policy::Failover, &[z]);
    let mut counts = [0; 2];
    for _ in 0..2000 {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        counts[d.picks.as_slice()[0].endpoint as usize] += 1;
    }
    assert!(counts[0] > 800 && counts[1] > 800, "{counts:?}");
}

#[test]
fn down_and_drained_endpoints_are_skipped() {
    let mut w = World::default();
    let a = w.region(
        "a",
        DUBLIN,
        1,
        &[("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1)],
    );
    let b = w.region("b", ASHBURN, 1, &[("192.0.2.4", 1)]);
    let mut s = service(Policy::Geo, &[a, b]);
    s.answers = 16;
    let c = at("198.51.100.1", "NL", "EU", AMSTERDAM);
    let mut rng = Rng::new(11);
    w.set(a, 0, 0); // down
    w.set(a, 1, UP | DRAINED); // drained
    for _ in 0..50 {
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert_eq!(w.addrs(&d), ["192.0.2.3", "192.0.2.4"]);
        assert!(!d.fail_open);
        assert_eq!(d.rule, Rule::Distance);
    }
    // a region with no usable endpoint is not a candidate
    w.set(a, 2, 0);
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert_eq!(w.order(&s, &d), ["b"]);
    assert_eq!(w.addrs(&d), ["192.0.2.4"]);
    assert_eq!(d.rule, Rule::Distance);
}

#[test]
fn all_down_fails_open_or_nodata() {
    let mut w = World::default();
    let a = w.region("dublin", DUBLIN, 1, &[("192.0.2.1", 1), ("192.0.2.2", 1)]);
    let b = w.region("ashburn", ASHBURN, 1, &[("192.0.2.3", 1)]);
    let mut s = service(Policy::Geo, &[b, a]);
    s.answers = 16;
    let c = at("198.51.100.1", "NL", "EU", AMSTERDAM);
    let mut rng = Rng::new(12);
    w.set_region(a, 0);
    w.set_region(b, 0);
    w.set(a, 1, DRAINED); // down and drained

    // fail open: every non-drained endpoint, still in geo order
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert!(d.fail_open);
    assert_eq!(d.rule, Rule::AllDown);
    assert_eq!(w.addrs(&d), ["192.0.2.1", "192.0.2.3"]);
    assert_eq!(w.order(&s, &d), ["dublin", "ashburn"]);

    // nodata
    s.when_all_down = WhenAllDown::Nodata;
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert!(d.picks.is_empty());
    assert!(!d.fail_open);
    assert_eq!(d.rule, Rule::AllDown);

    // a drained region stays out even when failing open
    s.when_all_down = WhenAllDown::All;
    w.set_region(a, DRAINED);
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert_eq!(w.addrs(&d), ["192.0.2.3"]);
    assert!(d.fail_open);

    // everything drained: nothing, even with `all`
    w.set_region(b, DRAINED | UP);
    for wad in [WhenAllDown::All, WhenAllDown::Nodata] {
        s.when_all_down = wad;
        let d = w.decide(&s, Family::V4, &c, &mut rng);
        assert!(d.picks.is_empty(), "{wad:?}");
        assert_eq!(d.rule, Rule::AllDown);
    }

    // one healthy endpoint anywhere: no fail-open
    s.when_all_down = WhenAllDown::All;
    w.set_region(a, 0);
    w.set_region(b, 0);
    w.set(a, 0, UP);
    let d = w.decide(&s, Family::V4, &c, &mut rng);
    assert!(!d.fail_open);
    assert_eq!(w.addrs(&d), ["192.0.2.1"]);
}

#[test]
fn fail_open_is_per_family() {
    let mut w = World::default();
    let a = w.region("a", DUBLIN, 1, &[("192.0.2.1", 1), ("2001:db8::1", 1)]);
    let s = service(Policy::Failover, &[a]);
    w.set(a, 0, 0); // the IPv4 endpoint is down, the IPv6 one up
    let mut rng = Rng::new(13);
    let d = w.decide(&s, Family::V4, &unknown(), &mut rng);
    assert!(d.fail_open);
    assert_eq!(w.addrs(&d), ["192.0.2.1"]);
    let d = w.decide(&s, Family::V6, &unknown(), &mut rng);
    assert!(!d.fail_open);
    assert_eq!(w.addrs(&d), ["2001:db8::1"]);
}

#[test]
fn rng_is_deterministic_and_bounded() {
    let mut a = Rng::new(5);
    let mut b = Rng::new(5);
    let mut c = Rng::new(6);
    let xa: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
    let xb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
    let xc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
    assert_eq!(xa, xb);
    assert_ne!(xa, xc);
    let mut counts = [0u32; 7];
    for _ in 0..70_000 {
        let v = a.below(7);
        counts[v as usize] += 1;
    }
    assert!(
        counts.iter().all(|&n| (9_000..11_000).contains(&n)),
        "{counts:?}"
    );
}

#[test]
fn stack_holds_at_most_its_capacity() {
    let mut s: Stack<u8, 3> = Stack::default();
    assert!(s.is_empty());
    for v in 0..5 {
        s.push(v);
    }
    assert_eq!(s.as_slice(), &[0, 1, 2]);
    assert_eq!(s.len(), 3);
}

// ---- the compiled GeoIP index: orders and ECS scopes ----

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

/// A client in network `n` (a /24 in 198.18.0.0/15).
fn net_client(n: u32) -> Client {
    let a = IpAddr::from((0xc612_0000u32 + (n << 8) + 7).to_be_bytes());
    Client {
        addr: Some(a),
        located: Located {
            location: None,
            prefix: 0,
        },
    }
}

#[test]
fn hash_select_is_sticky_weighted_and_moves_only_the_failed_endpoints_networks() {
    let mut w = World::default();
    let r = w.region(
        "r",
        DUBLIN,
        1,
        &[("192.0.2.1", 2), ("192.0.2.2", 1), ("192.0.2.3", 1)],
    );
    let mut s = service(Policy::Failover, &[r]);
    s.select = Select::Hash;
    let mut rng = Rng::new(1);
    let before: Vec<String> = (0..4000)
        .map(|n| w.answer(&s, Family::V4, &net_client(n), &mut rng)[0].clone())
        .collect();
    // sticky: the same network, the same answer
    for n in 0..50 {
        for _ in 0..5 {
            assert_eq!(
                w.answer(&s, Family::V4, &net_client(n), &mut rng)[0],
                before[n as usize]
            );
        }
    }
    let share = |a: &str| before.iter().filter(|x| *x == a).count() as f64 / 4000.0;
    assert!(
        (share("192.0.2.1") - 0.5).abs() < 0.04,
        "{}",
        share("192.0.2.1")
    );
    assert!((share("192.0.2.2") - 0.25).abs() < 0.04);
    // one endpoint fails: only its networks move
    w.set(r, 1, 0);
    for n in 0..4000u32 {
        let now = w.answer(&s, Family::V4, &net_client(n), &mut rng)[0].clone();
        if before[n as usize] != "192.0.2.2" {
            assert_eq!(now, before[n as usize], "network {n} moved");
        } else {
            assert_ne!(now, "192.0.2.2");
        }
    }
    w.set(r, 1, UP);
    for n in 0..4000u32 {
        assert_eq!(
            w.answer(&s, Family::V4, &net_client(n), &mut rng)[0],
            before[n as usize]
        );
    }
    assert!(w.decide(&s, Family::V4, &net_client(1), &mut rng).hashed);
}

#[test]
fn hash_policy_orders_regions_by_rendezvous() {
    let mut w = World::default();
    let a = w.region("a", DUBLIN, 1, &[("192.0.2.1", 1)]);
    let b = w.region("b", ASHBURN, 1, &[("192.0.2.2", 1)]);
    let c = w.region("c", MUMBAI, 2, &[("192.0.2.3", 1)]);
    let s = service(Policy::Hash, &[a, b, c]);
    let mut rng = Rng::new(2);
    let firsts: Vec<String> = (0..3000)
        .map(|n| w.order(&s, &w.decide(&s, Family::V4, &net_client(n), &mut rng))[0].clone())
        .collect();
    let share = |x: &str| firsts.iter().filter(|f| *f == x).count() as f64 / 3000.0;
    assert!((share("c") - 0.5).abs() < 0.05, "{}", share("c"));
    let d = w.decide(&s, Family::V4, &net_client(7), &mut rng);
    assert_eq!(d.rule, Rule::Hash);
    assert_eq!(d.order.len(), 3);
    w.set_region(b, 0);
    for n in 0..3000u32 {
        let first = w.order(&s, &w.decide(&s, Family::V4, &net_client(n), &mut rng))[0].clone();
        if firsts[n as usize] != "b" {
            assert_eq!(first, firsts[n as usize]);
        }
    }
}

fn set_live(w: &mut World, r: u16, e: usize, load: f32, latency_ms: f32) {
    let slot = w.regions[r as usize].endpoints[e].slot as usize;
    w.live[slot] = Live { load, latency_ms };
}

#[test]
fn least_loaded_draws_in_proportion_to_spare_capacity() {
    let mut w = World::default();
    let r = w.region(
        "r",
        DUBLIN,
        1,
        &[("192.0.2.1", 1), ("192.0.2.2", 1), ("192.0.2.3", 1)],
    );
    let mut s = service(Policy::Failover, &[r]);
    s.select = Select::LeastLoaded;
    for (e, load) in [(0, 10.0), (1, 50.0), (2, 90.0)] {
        set_live(&mut w, r, e, load, f32::NAN);
    }
    let mut rng = Rng::new(3);
    let mut count = [0usize; 3];
    for n in 0..15_000 {
        let a = w.answer(&s, Family::V4, &net_client(n), &mut rng)[0].clone();
        count[a.rsplit('.').next().unwrap().parse::<usize>().unwrap() - 1] += 1;
    }
    // expected 0.9 : 0.5 : 0.1 of 1.5
    let exp = [0.6, 1.0 / 3.0, 1.0 / 15.0];
    for i in 0..3 {
        let got = count[i] as f64 / 15_000.0;
        assert!((got - exp[i]).abs() < 0.02, "{count:?}");
    }
    // all full: by weight
    for e in 0..3 {
        set_live(&mut w, r, e, 150.0, f32::NAN);
    }
    let mut count = [0usize; 3];
    for n in 0..3000 {
        let a = w.answer(&s, Family::V4, &net_client(n), &mut rng)[0].clone();
        count[a.rsplit('.').next().unwrap().parse::<usize>().unwrap() - 1] += 1;
    }
    assert!(count.iter().all(|&c| c > 800), "{count:?}");
}

#[test]
fn least_loaded_policy_and_fastest_policy_order_regions() {
    let mut w = World::default();
    let a = w.region("a", DUBLIN, 1, &[("192.0.2.1", 1)]);
    let b = w.region("b", ASHBURN, 1, &[("192.0.2.2", 1)]);
    set_live(&mut w, a, 0, 95.0, 40.0);
    set_live(&mut w, b, 0, 5.0, 10.0);
    let s = service(Policy::LeastLoaded, &[a, b]);
    let mut rng = Rng::new(4);
    let firsts = (0..2000)
        .filter(|&n| w.order(&s, &w.decide(&s, Family::V4, &net_client(n), &mut rng))[0] == "b")
        .count();
    // spare 0.05 against 0.95
    assert!((1850..=1950).contains(&firsts), "{firsts}");
    let s = service(Policy::Fastest, &[a, b]);
    for n in 0..100 {
        let d = w.decide(&s, Family::V4, &net_client(n), &mut rng);
        assert_eq!(w.order(&s, &d), ["b", "a"]);
        assert_eq!(d.rule, Rule::Fastest);
    }
    // within 20% + 1 ms: both first by weight
    set_live(&mut w, a, 0, 95.0, 12.5);
    let a_first = (0..2000)
        .filter(|&n| w.order(&s, &w.decide(&s, Family::V4, &net_client(n), &mut rng))[0] == "a")
        .count();
    assert!((850..=1150).contains(&a_first), "{a_first}");
}

#[test]
fn shed_moves_a_stable_share_of_networks_to_the_next_region() {
    let mut w = World::default();
    let near = w.region("near", AMSTERDAM, 1, &[("192.0.2.1", 1)]);
    let next = w.region("next", DUBLIN, 1, &[("192.0.2.2", 1)]);
    w.regions[near as usize].shed = Some((0.5, 0.9));
    let s = service(Policy::Geo, &[near, next]);
    let at = |n: u32| Client {
        addr: net_client(n).addr,
        located: Located {
            location: Some(location("NL", "EU", Some(AMSTERDAM))),
            prefix: 24,
        },
    };
    let mut rng = Rng::new(5);
    let moved = |w: &World, rng: &mut Rng| -> Vec<bool> {
        (0..2000)
            .map(|n| w.answer(&s, Family::V4, &at(n), rng)[0] == "192.0.2.2")
            .collect()
    };
    set_live(&mut w, near, 0, 40.0, f32::NAN); // u 0.4: below low
    assert!(moved(&w, &mut rng).iter().all(|m| !m));
    set_live(&mut w, near, 0, 70.0, f32::NAN); // halfway
    let half = moved(&w, &mut rng);
    let share = half.iter().filter(|m| **m).count() as f64 / 2000.0;
    assert!((share - 0.5).abs() < 0.05, "{share}");
    assert_eq!(moved(&w, &mut rng), half, "the same networks move");
    let d = w.decide(
        &s,
        Family::V4,
        &at(half.iter().position(|m| *m).unwrap() as u32),
        &mut rng,
    );
    assert_eq!((d.rule, d.hashed), (Rule::Shed, true));
    set_live(&mut w, near, 0, 80.0, f32::NAN); // more: a superset moves
    let more = moved(&w, &mut rng);
    assert!(half.iter().zip(&more).all(|(h, m)| !h || *m));
    set_live(&mut w, near, 0, 95.0, f32::NAN); // at high: all
    assert!(moved(&w, &mut rng).iter().all(|m| *m));
    // unless it is the only candidate
    w.set_region(next, 0);
    assert_eq!(w.answer(&s, Family::V4, &at(1), &mut rng), ["192.0.2.1"]);
}
