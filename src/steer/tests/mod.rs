//! Steering tests: table-driven over regions, health and measurements
//! built by hand (no sockets), grouped by concern.

use std::net::IpAddr;

use super::*;
use crate::geo::{Location, unit_vector};
use crate::model::{Policy, Select};

mod dials;
mod geo;
mod policies;

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
    /// Per region, when any is dialled.
    dials: Vec<f32>,
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
            reach: 1.0,
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
            dials: &self.dials,
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
        biased: false,
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
