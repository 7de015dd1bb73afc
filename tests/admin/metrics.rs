//! Metrics that follow queries and health.

use super::*;

#[test]
fn metrics_follow_queries_and_health() {
    let n = 2;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        "{}{}{}",
        head(""),
        web_check(port, "rise = 2\nfall = 2"),
        checked_regions(n, WWW_SERVICE)
    );
    let s = start("metrics", &cfg);
    let eu_addr = format!("127.92.{n}.1");
    let us_addr = format!("127.92.{n}.2");
    for _ in 0..5 {
        assert_eq!(s.a(WWW, Some(EU)), vec![ip(&eu_addr)]);
    }
    let m1 = metrics(&s);
    let q1 = metric(&m1, "signpost_dns_queries_total", &[]).expect("signpost_dns_queries_total");
    assert!(q1 >= 5.0, "{q1}");
    let answers = |m: &str, r: &str| {
        metric(
            m,
            "signpost_answers_total",
            &[("service", WWW), ("region", r)],
        )
    };
    let a1 = answers(&m1, "eu-west")
        .unwrap_or_else(|| panic!("signpost_answers_total for eu-west:\n{m1}"));
    assert!(a1 >= 5.0, "{a1}");
    let up = |m: &str, r: &str, a: &str| {
        metric(m, "signpost_endpoint_up", &[("region", r), ("address", a)])
    };
    assert_eq!(up(&m1, "eu-west", &eu_addr), Some(1.0), "{m1}");
    assert_eq!(up(&m1, "us-east", &us_addr), Some(1.0), "{m1}");
    assert!(
        metric(&m1, "signpost_health_probe_duration_seconds_bucket", &[]).is_some()
            && metric(&m1, "signpost_health_probe_duration_seconds_count", &[]).unwrap_or(0.0)
                >= 2.0,
        "probe latency histogram:\n{m1}"
    );
    assert!(
        m1.contains("# TYPE signpost_health_probe_duration_seconds histogram"),
        "{m1}"
    );

    for _ in 0..7 {
        s.a(WWW, Some(EU));
    }
    let m2 = metrics(&s);
    assert!(metric(&m2, "signpost_dns_queries_total", &[]).unwrap() >= q1 + 7.0);
    assert!(answers(&m2, "eu-west").unwrap() >= a1 + 7.0);

    eu.set(LbMode::Fail);
    wait_until(Duration::from_secs(20), || {
        s.a(WWW, Some(EU)) == [ip(&us_addr)]
    })
    .expect("eu-west goes down");
    let m3 = metrics(&s);
    assert_eq!(up(&m3, "eu-west", &eu_addr), Some(0.0), "{m3}");
    assert_eq!(up(&m3, "us-east", &us_addr), Some(1.0), "{m3}");
    let transitions = metric(&m3, "signpost_health_transitions_total", &[]).unwrap_or(0.0);
    assert!(
        transitions >= 1.0,
        "signpost_health_transitions_total after a failure:\n{m3}"
    );
    let us_answers = answers(&m3, "us-east").unwrap_or(0.0);
    assert!(us_answers >= 1.0, "{m3}");

    eu.set(LbMode::Ok);
    wait_until(Duration::from_secs(20), || {
        s.a(WWW, Some(EU)) == [ip(&eu_addr)]
    })
    .expect("eu-west comes back");
    let m4 = metrics(&s);
    assert_eq!(up(&m4, "eu-west", &eu_addr), Some(1.0), "{m4}");
    assert!(
        metric(&m4, "signpost_health_transitions_total", &[]).unwrap_or(0.0) >= transitions + 1.0,
        "{m4}"
    );
    assert!(s.stop().success());
}
