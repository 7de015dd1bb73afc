//! `signpost demo` end to end (SPEC §2, issue 3 "Done when"): start it,
//! fail a region through `ctl`, watch dig-equivalent queries move, recover.
//!
//! The demo binds its simulated load balancers on fixed loopback addresses
//! (127.0.1.1:8080, 127.0.2.1:8080, ...), so this is the only test in the
//! suite that runs it, in a single test function.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const EU: &str = "193.0.6.0/24";
const WWW: &str = "www.example.test.";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn is_eu_west(a: &[IpAddr]) -> bool {
    a.len() == 1 && (a[0] == ip("127.0.2.1") || a[0] == ip("127.0.2.2"))
}

/// The fixed addresses the demo's simulated load balancers bind.
const LAB: [&str; 5] = [
    "127.0.1.1:8080",
    "127.0.2.1:8080",
    "127.0.2.2:8080",
    "127.0.3.1:8080",
    "127.0.4.1:8080",
];

/// Waits (bounded) until no other process holds the lab's addresses, so a
/// busy machine gives a clear message instead of a bind error.
fn wait_for_lab_addresses() {
    let busy = || {
        LAB.iter()
            .filter(|a| std::net::TcpListener::bind(a).is_err())
            .copied()
            .collect::<Vec<_>>()
    };
    if wait_until(Duration::from_secs(120), || busy().is_empty()).is_none() {
        panic!(
            "another process holds the demo's lab addresses {:?}; stop it and re-run",
            busy()
        );
    }
}

#[test]
fn demo_end_to_end() {
    wait_for_lab_addresses();
    let dir = scratch("demo");
    let s = Server::start_in(
        dir.clone(),
        &["demo", "--dns", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
    );
    let admin = s.admin_url();
    let port = s.dns.port();

    // It prints the dig and ctl commands to try, with the real ports.
    let printed = wait_until(Duration::from_secs(10), || {
        s.log().iter().any(|l| l.contains("ctl recover eu-west"))
    });
    let log = s.log().join("\n");
    assert!(printed.is_some(), "the demo prints its commands:\n{log}");
    assert!(
        log.contains(&format!(
            "dig @127.0.0.1 -p {port} www.example.test +subnet=193.0.6.0/24"
        )),
        "a dig command for the real port:\n{log}"
    );
    assert!(log.contains("ctl fail eu-west"), "{log}");
    assert!(
        log.contains(&admin),
        "ctl commands carry --admin {admin}:\n{log}"
    );

    // A European client gets eu-west, with a geo scope.
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert!(is_eu_west(&addresses(&r)), "{r:?}");
    assert!(r.authoritative);
    assert_eq!(ecs_of(&r).map(|e| e.1), Some(20));
    let r = s.udp(&query(WWW, RecordType::AAAA, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("2001:db8:2::1")]);
    // Other places.
    assert_eq!(s.a(WWW, Some("24.24.24.0/24")), vec![ip("127.0.1.1")]);
    // a static CNAME to www carries www's answer
    let r = s.udp(&query("app.example.test.", RecordType::A, Some(EU)));
    assert!(is_eu_west(&addresses(&r)), "{r:?}");

    // ctl status names the regions, all healthy.
    let (code, out, err) = run(&dir, &["ctl", "status", "--admin", &admin], &[]);
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    for r in ["us-east", "eu-west", "ap-south", "sa-east"] {
        assert!(out.contains(r), "ctl status names {r}:\n{out}");
    }
    let st = get_json(&format!("{admin}/v1/status"));
    for r in st["regions"].as_array().unwrap() {
        assert_eq!(r["healthy"], true, "{r}");
    }

    // Fail eu-west for real: the query moves to the next-nearest region.
    let (code, out, err) = run(&dir, &["ctl", "fail", "eu-west", "--admin", &admin], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let t = Instant::now();
    let mut odd = Vec::new();
    let left = wait_until(Duration::from_secs(20), || {
        let a = s.a(WWW, Some(EU));
        if !is_eu_west(&a) && a != [ip("127.0.1.1")] {
            odd.push(a.clone());
        }
        a == [ip("127.0.1.1")]
    })
    .unwrap_or_else(|| panic!("never left eu-west:\n{}", s.log().join("\n")));
    assert!(
        odd.is_empty(),
        "answers other than eu-west/us-east: {odd:?}"
    );
    println!(
        "demo: ctl fail eu-west -> us-east after {:.2}s",
        left.as_secs_f64()
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "within a few seconds: {left:?}"
    );
    let (code, out, _) = run(&dir, &["ctl", "status", "--admin", &admin], &[]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("eu-west"))
        .unwrap_or_default();
    assert!(line.contains("DOWN"), "eu-west is not healthy: {line:?}");
    // db (failover, eu-west first) moves too; api (weighted) only us-east.
    assert_eq!(s.a("db.example.test.", None), vec![ip("127.0.1.1")]);
    for _ in 0..20 {
        assert_eq!(s.a("api.example.test.", None), vec![ip("127.0.1.1")]);
    }
    // explain says why
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &admin,
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["answer"], serde_json::json!(["127.0.1.1"]), "{v}");

    // Recover: it comes back.
    let (code, out, err) = run(&dir, &["ctl", "recover", "eu-west", "--admin", &admin], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let back = wait_until(Duration::from_secs(20), || is_eu_west(&s.a(WWW, Some(EU))))
        .unwrap_or_else(|| panic!("never came back:\n{}", s.log().join("\n")));
    println!(
        "demo: ctl recover eu-west -> eu-west after {:.2}s",
        back.as_secs_f64()
    );
    assert!(
        back < Duration::from_secs(5),
        "within a few seconds: {back:?}"
    );
    // failover: eu-west first again (either of its endpoints, by weight)
    assert!(is_eu_west(&s.a("db.example.test.", None)));

    // ctl drain / undrain also move it.
    let (code, _, err) = run(&dir, &["ctl", "drain", "eu-west", "--admin", &admin], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("127.0.1.1")]);
    // what would happen next: explain --down, live state untouched
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--down",
            "us-east",
            "--admin",
            &admin,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("what if down: us-east"), "{out}");
    assert!(
        !out.contains("answer: 127.0.1.1"),
        "us-east is down in the what-if: {out}"
    );
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("127.0.1.1")]);
    // the demo protects db (min_healthy_regions = 1): its last region stays
    let (code, _, err) = run(&dir, &["ctl", "drain", "us-east", "--admin", &admin], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("409") && err.contains("db.example.test."),
        "{err}"
    );
    assert_eq!(s.a("db.example.test.", None), vec![ip("127.0.1.1")]);
    let (code, _, err) = run(&dir, &["ctl", "undrain", "eu-west", "--admin", &admin], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(is_eu_west(&s.a(WWW, Some(EU))));
    // the lab rejects an unknown region
    let (code, _, err) = run(&dir, &["ctl", "fail", "nosuch", "--admin", &admin], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nosuch"), "{err}");

    // api: weighted us-east 3 : eu-west 1.
    let (mut us, mut eu) = (0, 0);
    for _ in 0..200 {
        let r = s.udp(&query("api.example.test.", RecordType::A, None));
        assert_eq!(r.response_code, ResponseCode::NoError);
        let a = addresses(&r);
        if a == [ip("127.0.1.1")] {
            us += 1;
        } else if is_eu_west(&a) {
            eu += 1;
        } else {
            panic!("api answered {a:?}");
        }
    }
    println!("api over 200 queries: us-east {us}, eu-west {eu}");
    assert!(
        (115..=185).contains(&us),
        "about 3:1, got us-east {us} : eu-west {eu}"
    );
    assert!(eu >= 15, "eu-west answered too: {eu}");

    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
