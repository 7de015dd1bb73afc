//! Coming back at the rapid pace (issue 20 C): after the first pass of a
//! down endpoint the next probes come a quarter interval apart until
//! `rise` passes, each a real probe; a flapping endpoint does not come
//! back.

use super::*;

/// Interval 2 s, rise 3: the old pace needed (rise - 1) x interval (at
/// least 3.6 s with jitter) from the first pass to the return; the rapid
/// pace needs (rise - 1) quarter intervals (at most 1.1 s).
#[test]
fn rise_is_confirmed_at_the_rapid_pace() {
    let n = 18;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let web = check("web", port, "")
        .replace("interval = \"1s\"", "interval = \"2s\"")
        .replace("rise = 2", "rise = 3");
    let cfg = format!("{}{}{}", head(), web, three_regions(n));
    let s = start("rapid-rise", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let us_ip = ip(&format!("127.91.{n}.2"));
    assert_eq!(s.a(WWW, Some(EU)), vec![eu_ip]);

    eu.set(LbMode::Fail);
    wait_until(Duration::from_secs(10), || s.a(WWW, Some(EU)) == [us_ip]).expect("goes down");
    let healed = Instant::now();
    eu.set(LbMode::Ok);
    wait_until(Duration::from_secs(15), || s.a(WWW, Some(EU)) == [eu_ip]).expect("comes back");
    let back = Instant::now();

    let passes: Vec<Instant> = eu
        .answered()
        .into_iter()
        .filter(|&(t, ok)| ok && t >= healed && t <= back)
        .map(|(t, _)| t)
        .collect();
    assert!(
        passes.len() >= 3,
        "came back after {} real passes, rise is 3",
        passes.len()
    );
    let confirm = back - passes[0];
    let total = back - healed;
    println!(
        "rapid rise: back {:.2}s after healing, {:.2}s after the first of {} passes (interval 2s, rise 3)",
        total.as_secs_f64(),
        confirm.as_secs_f64(),
        passes.len()
    );
    assert!(
        confirm <= Duration::from_millis(1600),
        "first pass to return took {confirm:?}; the old pace needs at least 3.6s"
    );
    // at most an interval (with jitter) to the first pass, then the
    // confirmation: well under rise x interval = 6 s
    assert!(
        total <= Duration::from_millis(4000),
        "took {total:?} to come back"
    );
    assert_stable(&s, WWW, EU, &[eu_ip], Duration::from_secs(1));
    assert!(s.stop().success());
}

/// pass, fail, pass, fail...: never `rise` passes in a row, so the
/// endpoint stays down however fast it is rechecked.
#[test]
fn flapping_endpoint_does_not_come_back() {
    let n = 19;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("flapping", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let us_ip = ip(&format!("127.91.{n}.2"));
    assert_eq!(s.a(WWW, Some(EU)), vec![eu_ip]);

    eu.set(LbMode::Fail);
    wait_until(Duration::from_secs(10), || s.a(WWW, Some(EU)) == [us_ip]).expect("goes down");
    let flapping = Instant::now();
    eu.script(&[true, false]);
    assert_stable(&s, WWW, EU, &[us_ip], Duration::from_secs(8));
    let seen: Vec<bool> = eu
        .answered()
        .into_iter()
        .filter(|&(t, _)| t >= flapping)
        .map(|(_, ok)| ok)
        .collect();
    let passes = seen.iter().filter(|&&ok| ok).count();
    assert!(
        passes >= 3 && seen.len() >= 6,
        "the flapping endpoint was probed: {seen:?}"
    );
    let st = endpoint_status(&s, "eu-west", &eu_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");

    // steady again: it comes back
    eu.script(&[]);
    eu.set(LbMode::Ok);
    wait_until(RISE_LIMIT, || s.a(WWW, Some(EU)) == [eu_ip]).expect("comes back when steady");
    assert!(s.stop().success());
}
