//! Dials (SPEC §11): a region dialled to v keeps about that share of the
//! clients that would get it, by client network; the rest go to the next
//! region in their order, and the same networks move first.

use super::*;

/// Two regions, a `geo` service over them, every client nearest to the
/// first (Amsterdam) and the second (New York) next.
fn world() -> (World, Service) {
    let mut w = World::default();
    let ams = w.region("ams", AMSTERDAM, 1, &[("192.0.2.1", 1)]);
    let nyc = w.region("nyc", NEW_YORK, 1, &[("198.51.100.1", 1)]);
    let svc = service(Policy::Failover, &[ams, nyc]);
    (w, svc)
}

fn first_region(w: &World, svc: &Service, net: u64) -> (u8, Rule, bool) {
    let d = decide_view(svc, &w.inputs(), Family::V4, None, net, &mut Rng::new(1));
    let p = d.picks.as_slice()[0];
    (p.position, d.rule, d.hashed)
}

#[test]
fn a_dial_keeps_its_share_by_client_network() {
    let (mut w, svc) = world();
    let nets: Vec<u64> = (0..20_000u32)
        .map(|i| {
            dynamic::net_key(
                IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()),
                (24, 56),
            )
        })
        .collect();
    // no dial: everyone gets the first, nothing depends on the hash
    for &n in &nets[..100] {
        assert_eq!(first_region(&w, &svc, n), (0, Rule::Failover, false));
    }
    let kept_at = |w: &World, v: f32| -> Vec<bool> {
        let w2 = World {
            regions: w.regions.clone(),
            flags: w.flags.clone(),
            live: w.live.clone(),
            dials: vec![v, 1.0],
        };
        nets.iter()
            .map(|&n| {
                let (pos, rule, hashed) = first_region(&w2, &svc, n);
                assert!(
                    hashed,
                    "a dial below 1 makes the answer depend on the network"
                );
                if pos == 0 {
                    assert_eq!(rule, Rule::Failover);
                } else {
                    assert_eq!(rule, Rule::Dial);
                }
                pos == 0
            })
            .collect()
    };
    let quarter = kept_at(&w, 0.25);
    let half = kept_at(&w, 0.5);
    let share = |k: &[bool]| k.iter().filter(|&&x| x).count() as f64 / k.len() as f64;
    assert!((share(&quarter) - 0.25).abs() < 0.02, "{}", share(&quarter));
    assert!((share(&half) - 0.5).abs() < 0.02, "{}", share(&half));
    // the same networks move first: every network kept at 0.25 is kept at 0.5
    for (q, h) in quarter.iter().zip(&half) {
        assert!(!q || *h);
    }
    // stable: the same value gives the same choice
    assert_eq!(quarter, kept_at(&w, 0.25));
    // 0 sends everyone on without draining; the region still serves when
    // it is the only candidate
    assert!(kept_at(&w, 0.0).iter().all(|&k| !k));
    w.set_region(1, 0); // the second region goes down
    w.dials = vec![0.0, 1.0];
    assert_eq!(first_region(&w, &svc, nets[0]).0, 0);
}

#[test]
fn a_bias_scales_distance() {
    // a client in Dublin: Amsterdam (~750 km) before New York (~5,100 km)
    let mut w = World::default();
    let ams = w.region("ams", AMSTERDAM, 1, &[("192.0.2.1", 1)]);
    let nyc = w.region("nyc", NEW_YORK, 1, &[("198.51.100.1", 1)]);
    let mut svc = service(Policy::Geo, &[ams, nyc]);
    let dublin = location("IE", "EU", Some(DUBLIN));
    let order = |w: &World, svc: &Service| geo_order(svc, &w.regions, Some(&dublin), None).order;
    assert_eq!(order(&w, &svc), vec![0, 1]);
    // New York with bias 80 counts ~1,020 km: still behind Amsterdam
    w.regions[1].reach = 0.2;
    svc.biased = true;
    assert_eq!(order(&w, &svc), vec![0, 1]);
    // with bias 90 (~510 km) it wins
    w.regions[1].reach = 0.1;
    assert_eq!(order(&w, &svc), vec![1, 0]);
    // a negative bias on Amsterdam (-99: 1.99 x 750 km) keeps it ahead of
    // an unbiased New York; a far larger factor would not
    w.regions[1].reach = 1.0;
    w.regions[0].reach = 1.99;
    assert_eq!(order(&w, &svc), vec![0, 1]);
    w.regions[0].reach = 7.5; // not reachable by config, shows the scaling
    assert_eq!(order(&w, &svc), vec![1, 0]);
}
