//! Policies and endpoint draws: families, weights, failover, fail-open,
//! hash, least-loaded, fastest and shed.

use super::*;

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

/// A region that sheds sends its clients on only to a region that can take
/// them: with Frankfurt and Paris both over `high`, a German client goes
/// to the third region, and with Paris shedding half, half of the networks
/// Frankfurt sends on move past Paris too (issue 16: spillover landed on a
/// full region).
#[test]
fn shed_skips_every_full_region_not_only_the_first() {
    let mut w = World::default();
    let fra = w.region("fra", (50.11, 8.68), 1, &[("192.0.2.1", 1)]);
    let par = w.region("par", (48.86, 2.35), 1, &[("192.0.2.2", 1)]);
    let lon = w.region("lon", (51.51, -0.13), 1, &[("192.0.2.3", 1)]);
    for r in [fra, par] {
        w.regions[r as usize].shed = Some((0.8, 0.9));
    }
    let s = service(Policy::Geo, &[fra, par, lon]);
    let german = |n: u32| Client {
        addr: net_client(n).addr,
        located: Located {
            location: Some(location("DE", "EU", Some((52.52, 13.40)))),
            prefix: 24,
        },
    };
    let mut rng = Rng::new(7);
    set_live(&mut w, fra, 0, 95.0, f32::NAN);
    set_live(&mut w, par, 0, 95.0, f32::NAN);
    set_live(&mut w, lon, 0, 10.0, f32::NAN);
    for n in 0..500 {
        assert_eq!(
            w.answer(&s, Family::V4, &german(n), &mut rng),
            ["192.0.2.3"],
            "network {n}"
        );
        let d = w.decide(&s, Family::V4, &german(n), &mut rng);
        assert_eq!(
            w.order(&s, &d),
            ["lon", "fra", "par"],
            "full ones last, in their order"
        );
    }
    // Paris at halfway: of Frankfurt's clients, Paris keeps about half
    set_live(&mut w, par, 0, 85.0, f32::NAN);
    let firsts: Vec<String> = (0..2000)
        .map(|n| w.answer(&s, Family::V4, &german(n), &mut rng)[0].to_string())
        .collect();
    let at_par = firsts.iter().filter(|a| *a == "192.0.2.2").count() as f64 / 2000.0;
    assert!(
        firsts.iter().all(|a| a != "192.0.2.1"),
        "full Frankfurt is skipped"
    );
    assert!((at_par - 0.5).abs() < 0.05, "{at_par}");
    // only full regions: the order stands
    set_live(&mut w, lon, 0, 99.0, f32::NAN);
    w.regions[lon as usize].shed = Some((0.8, 0.9));
    set_live(&mut w, par, 0, 95.0, f32::NAN);
    assert_eq!(
        w.answer(&s, Family::V4, &german(1), &mut rng),
        ["192.0.2.1"]
    );
    // a region that sheds later in the order does not touch the answer
    set_live(&mut w, fra, 0, 10.0, f32::NAN);
    let d = w.decide(&s, Family::V4, &german(3), &mut rng);
    assert_eq!(w.order(&s, &d)[0], "fra");
}

/// `select = "hash"` keeps hashing among the weight-0 (last resort)
/// endpoints when they are all a region has left: one network gets one
/// address, as long as its scope says it may cache it (issue 16).
#[test]
fn hash_select_keeps_hashing_among_weight_zero_fallbacks() {
    let mut w = World::default();
    let r = w.region(
        "r",
        AMSTERDAM,
        1,
        &[
            ("192.0.2.1", 1),
            ("192.0.2.2", 0),
            ("192.0.2.3", 0),
            ("192.0.2.4", 0),
        ],
    );
    let mut s = service(Policy::Failover, &[r]);
    s.select = Select::Hash;
    let mut rng = Rng::new(11);
    // the weighted endpoint down: only the fallbacks are usable
    w.set(r, 0, 0);
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..64 {
        let first = w.answer(&s, Family::V4, &net_client(n), &mut rng);
        for _ in 0..8 {
            assert_eq!(
                w.answer(&s, Family::V4, &net_client(n), &mut rng),
                first,
                "network {n} keeps its fallback"
            );
        }
        seen.insert(first[0].to_string());
    }
    assert_eq!(
        seen.len(),
        3,
        "the networks spread over the fallbacks: {seen:?}"
    );
}
