//! Health probing, black box: real HTTP/TCP/TLS servers on loopback, the
//! real binary, real DNS queries (SPEC §4.5, §5; issue 3).
//!
//! Every test uses its own loopback block 127.91.N.0/24 for its fake load
//! balancers, so the tests can run in parallel.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;

/// An Amsterdam client (GeoIP: NL, 193.0.0.0/20): eu-west, then us-east,
/// then ap-south by distance.
const EU: &str = "193.0.6.0/24";
const WWW: &str = "www.example.test.";

/// Generous bounds: fall (or rise) x interval + 1 s, plus 1 s for a busy CI.
const FAIL_LIMIT: Duration = Duration::from_secs(2 + 1 + 1);
const RISE_LIMIT: Duration = Duration::from_secs(2 + 1 + 1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lb_addr(n: u8, host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 91, n, host], port))
}

/// The common head of every config: listeners, GeoIP, the zone.
fn head() -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"
"#
    )
}

/// An http check `name` on `port` with interval 1s, timeout 500ms, rise 2,
/// fall 2, plus `extra` lines.
fn check(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
[checks.{name}]
type = "http"
port = {port}
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
{extra}
"#
    )
}

/// Three regions (eu-west, us-east, ap-south) with one endpoint each at
/// 127.91.N.1, .2, .3, all using check `web`, and the geo service www.
fn three_regions(n: u8) -> String {
    format!(
        r#"
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.2" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.3" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy = "geo"
ttl = 10
"#
    )
}

fn start(name: &str, cfg: &str) -> Server {
    Server::start(name, cfg, &[("example.test.zone", ZONE)])
}

/// The endpoint `address` of region `region` in `/v1/status`.
fn endpoint_status(s: &Server, region: &str, address: &str) -> Value {
    let st = get_json(&format!("{}/v1/status", s.admin_url()));
    let r = st["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == region)
        .unwrap_or_else(|| panic!("region {region} in {st}"))
        .clone();
    r["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == address)
        .unwrap_or_else(|| panic!("endpoint {address} in {r}"))
        .clone()
}

/// Queries `name` A for `ecs` every 50 ms for `d`; every answer must be
/// exactly `want`.
fn assert_stable(s: &Server, name: &str, ecs: &str, want: &[IpAddr], d: Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < d {
        let got = s.a(name, Some(ecs));
        assert_eq!(
            got,
            want,
            "answer {n} moved after {:.2}s while nothing changed",
            start.elapsed().as_secs_f64()
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Status503,
    Refused,
    Hang,
}

/// The failover scenario of issue 3 §3 for one failure mode.
fn failover(n: u8, mode: Failure, reason: &str) {
    let mut eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start(&format!("failover-{n}"), &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let us_ip = ip(&format!("127.91.{n}.2"));

    // Healthy: the nearest region, and it stays there.
    assert_eq!(s.a(WWW, Some(EU)), vec![eu_ip]);
    assert_stable(&s, WWW, EU, &[eu_ip], Duration::from_secs(2));

    // Fail it.
    match mode {
        Failure::Status503 => eu.set(LbMode::Fail),
        Failure::Refused => eu.kill(),
        Failure::Hang => eu.set(LbMode::Hang),
    }
    let mut odd = Vec::new();
    let left = wait_until(Duration::from_secs(20), || {
        let got = s.a(WWW, Some(EU));
        if got != [eu_ip] && got != [us_ip] {
            odd.push(got.clone());
        }
        got == [us_ip]
    })
    .unwrap_or_else(|| {
        panic!(
            "{mode:?}: answer never left eu-west; log:\n{}",
            s.log().join("\n")
        )
    });
    assert!(
        odd.is_empty(),
        "{mode:?}: answers other than eu-west/us-east while failing over: {odd:?}"
    );
    let st = endpoint_status(&s, "eu-west", &eu_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    assert_eq!(st["last_probe"]["reason"], reason, "{st}");
    // Down means down: it stays on us-east.
    assert_stable(&s, WWW, EU, &[us_ip], Duration::from_millis(1500));

    // Recover it.
    match mode {
        Failure::Status503 | Failure::Hang => eu.set(LbMode::Ok),
        Failure::Refused => eu.revive(),
    }
    let back = wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [eu_ip])
        .unwrap_or_else(|| {
            panic!(
                "{mode:?}: answer never came back; log:\n{}",
                s.log().join("\n")
            )
        });
    println!(
        "failover {mode:?}: left eu-west after {:.2}s, came back after {:.2}s (interval 1s, fall 2, rise 2)",
        left.as_secs_f64(),
        back.as_secs_f64()
    );
    assert!(
        left <= FAIL_LIMIT,
        "{mode:?}: took {left:?} to leave (limit {FAIL_LIMIT:?})"
    );
    assert!(
        back <= RISE_LIMIT,
        "{mode:?}: took {back:?} to come back (limit {RISE_LIMIT:?})"
    );
    assert_stable(&s, WWW, EU, &[eu_ip], Duration::from_secs(1));
    assert!(s.stop().success());
}

#[test]
fn failover_on_status_503_and_back() {
    failover(1, Failure::Status503, "status 503");
}

#[test]
fn failover_on_connection_refused_and_back() {
    failover(2, Failure::Refused, "connect refused");
}

#[test]
fn failover_on_hanging_lb_and_back() {
    failover(3, Failure::Hang, "timeout");
}

#[test]
fn probe_before_serve_down_lbs_never_in_first_answer() {
    let n = 4;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    eu.set(LbMode::Fail); // eu-west answers 503
    us.set(LbMode::Hang); // us-east never answers (bounded by the timeout)
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("probe-before-serve", &cfg);
    // The very first answers, right after `dns listening`: ap-south.
    let ap_ip = ip(&format!("127.91.{n}.3"));
    assert_eq!(
        s.a(WWW, Some(EU)),
        vec![ap_ip],
        "log:\n{}",
        s.log().join("\n")
    );
    let r = s.tcp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ap_ip]);
    // The log shows the first round before the DNS listener.
    let log = s.log();
    let pos = |pat: &str| log.iter().position(|l| l.contains(pat));
    let listening = pos("dns listening").expect("dns listening line");
    for a in [format!("127.91.{n}.1"), format!("127.91.{n}.2")] {
        let down = log
            .iter()
            .position(|l| l.contains(&format!("endpoint {a} ")) && l.contains("down"))
            .unwrap_or_else(|| panic!("no start-up line saying {a} is down:\n{}", log.join("\n")));
        assert!(
            down < listening,
            "{a} probed after the listener opened:\n{}",
            log.join("\n")
        );
    }
    assert_stable(&s, WWW, EU, &[ap_ip], Duration::from_millis(1500));
    drop(us);
    assert!(s.stop().success());
}

#[test]
fn probe_before_serve_refused_lb() {
    let n = 5;
    let mut eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    eu.kill();
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("probe-before-serve-refused", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.2"))]);
    assert!(s.stop().success());
}

#[test]
fn one_probe_per_distinct_address_and_check() {
    let n = 6;
    let shared = FakeLb::start(lb_addr(n, 1, 0));
    let port = shared.addr.port();
    let single = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}]

[regions.eu-central]
location = {{ lat = 50.11, lon = 8.68 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.2" }}]

[services."www.example.test."]
regions = ["eu-west", "eu-central", "us-east"]

[services."api.example.test."]
regions = ["eu-central", "eu-west", "us-east"]
policy = "weighted"
"#,
        head(),
        check("web", port, "")
    );
    let s = start("one-probe", &cfg);
    std::thread::sleep(Duration::from_millis(1500));
    let (a0, b0) = (shared.hits(), single.hits());
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (a1, b1) = (shared.hits(), single.hits());
    let secs = t.elapsed().as_secs_f64();
    let (shared_n, single_n) = (a1 - a0, b1 - b0);
    println!(
        "over {secs:.1}s: shared address probed {shared_n} times, single address {single_n} times"
    );
    // One per interval (1 s, +-10% jitter): about 3, certainly not 6.
    assert!(
        (2..=4).contains(&shared_n),
        "shared address probed {shared_n} times in {secs:.1}s"
    );
    assert!(
        (2..=4).contains(&single_n),
        "single address probed {single_n} times in {secs:.1}s"
    );
    assert!(s.stop().success());
}

#[test]
fn when_all_down_fail_open_and_nodata_never_drained() {
    let n = 7;
    let mut eu1 = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu1.addr.port();
    let mut us = FakeLb::start(lb_addr(n, 2, port));
    let mut eu3 = FakeLb::start(lb_addr(n, 3, port));
    eu1.kill();
    us.kill();
    eu3.kill();
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}, {{ address = "127.91.{n}.3" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.2" }}]

[services."all.example.test."]
regions = ["us-east", "eu-west"]
answers = 4
when_all_down = "all"

[services."nodata.example.test."]
regions = ["us-east", "eu-west"]
answers = 4
when_all_down = "nodata"
"#,
        head(),
        check("web", port, "")
    );
    let s = start("all-down", &cfg);
    let admin = s.admin_url();
    let a1 = ip(&format!("127.91.{n}.1"));
    let a2 = ip(&format!("127.91.{n}.2"));
    let a3 = ip(&format!("127.91.{n}.3"));
    let set = |v: Vec<IpAddr>| v.into_iter().collect::<BTreeSet<_>>();
    let all = "all.example.test.";
    let nodata = "nodata.example.test.";

    // Everything is down from the first probe on.
    let r = s.udp(&query(all, RecordType::A, Some(EU)));
    assert_eq!(r.response_code, ResponseCode::NoError);
    assert_eq!(
        set(addresses(&r)),
        set(vec![a1, a2, a3]),
        "fail open: every endpoint"
    );
    let e = get_json(&format!(
        "{admin}/v1/explain?name={all}&type=A&client=193.0.6.1"
    ));
    assert_eq!(e["rule"], "all-down", "{e}");
    assert_nodata(&s, nodata);

    // A drained endpoint is never answered, even in fail-open.
    let (code, body) = http(
        "POST",
        &format!("{admin}/v1/endpoints/127.91.{n}.3/drain"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    for _ in 0..20 {
        let got = s.a(all, Some(EU));
        assert_eq!(set(got.clone()), set(vec![a1, a2]), "{got:?}");
    }
    assert_nodata(&s, nodata);
    // Nor is a drained region.
    let (code, body) = http("POST", &format!("{admin}/v1/regions/eu-west/drain"), None);
    assert_eq!(code, 200, "{body}");
    for _ in 0..20 {
        assert_eq!(s.a(all, Some(EU)), vec![a2]);
    }
    assert_nodata(&s, nodata);
    let (code, body) = http("DELETE", &format!("{admin}/v1/regions/eu-west/drain"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(set(s.a(all, Some(EU))), set(vec![a1, a2]));

    // One region comes up: no more fail-open, both services answer it.
    us.revive();
    wait_until(Duration::from_secs(20), || s.a(all, Some(EU)) == [a2])
        .unwrap_or_else(|| panic!("us-east never came up; log:\n{}", s.log().join("\n")));
    assert_eq!(s.a(nodata, Some(EU)), vec![a2]);
    assert!(s.stop().success());
}

fn assert_nodata(s: &Server, name: &str) {
    let r = s.udp(&query(name, RecordType::A, Some(EU)));
    assert_eq!(r.response_code, ResponseCode::NoError, "{r:?}");
    assert!(r.answers.is_empty(), "nodata answered {:?}", r.answers);
    assert!(
        r.authorities
            .iter()
            .any(|a| matches!(a.data, RData::SOA(_))),
        "no SOA in authority: {:?}",
        r.authorities
    );
}

#[test]
fn probe_address_override() {
    let n = 8;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "192.0.2.10", probe = "127.91.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "192.0.2.20", probe = "127.91.{n}.2" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#,
        head(),
        check("web", port, "")
    );
    let s = start("probe-override", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.10")]);
    let before = eu.hits();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(eu.hits() > before, "the probe address is not probed");
    let st = endpoint_status(&s, "eu-west", "192.0.2.10");
    assert_eq!(st["probe"]["address"], format!("127.91.{n}.1"), "{st}");
    eu.set(LbMode::Fail);
    let t = wait_until(Duration::from_secs(20), || {
        s.a(WWW, Some(EU)) == [ip("192.0.2.20")]
    })
    .expect("failing the probed LB removes the answered address");
    println!("probe override: left after {:.2}s", t.as_secs_f64());
    eu.set(LbMode::Ok);
    wait_until(Duration::from_secs(20), || {
        s.a(WWW, Some(EU)) == [ip("192.0.2.10")]
    })
    .expect("comes back");
    assert!(s.stop().success());
}

#[test]
fn tcp_check_follows_listener() {
    let n = 9;
    let mut eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let tcp = format!(
        r#"
[checks.web]
type = "tcp"
port = {port}
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
"#
    );
    let cfg = format!("{}{}{}", head(), tcp, three_regions(n));
    let s = start("tcp-check", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let us_ip = ip(&format!("127.91.{n}.2"));
    assert_eq!(s.a(WWW, Some(EU)), vec![eu_ip]);
    // A 503 does not matter to a TCP check.
    eu.set(LbMode::Fail);
    assert_stable(&s, WWW, EU, &[eu_ip], Duration::from_secs(2));
    eu.kill();
    let left =
        wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [us_ip]).expect("tcp: down");
    let st = endpoint_status(&s, "eu-west", &eu_ip.to_string());
    assert_eq!(st["last_probe"]["reason"], "connect refused", "{st}");
    eu.revive();
    let back =
        wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [eu_ip]).expect("tcp: up");
    println!(
        "tcp check: left after {:.2}s, back after {:.2}s",
        left.as_secs_f64(),
        back.as_secs_f64()
    );
    assert!(left <= FAIL_LIMIT, "tcp: took {left:?} to leave");
    assert!(back <= RISE_LIMIT, "tcp: took {back:?} to come back");
    assert!(s.stop().success());
}

#[test]
fn expect_and_body_mismatch_are_failures() {
    let n = 10;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let cfg = format!(
        r#"{}{}{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "want204"
endpoints = [{{ address = "127.91.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "nope"
endpoints = [{{ address = "127.91.{n}.2" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
check = "okbody"
endpoints = [{{ address = "127.91.{n}.3" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
"#,
        head(),
        check("want204", port, "expect = [204]"),
        check("nope", port, "body = \"nope\""),
        check("okbody", port, "body = \"ok\"\nexpect = [200, 204]"),
    );
    let s = start("expect-body", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.3"))]);
    let e = endpoint_status(&s, "eu-west", &format!("127.91.{n}.1"));
    assert_eq!(e["healthy"], false, "{e}");
    assert_eq!(e["last_probe"]["reason"], "status 200", "{e}");
    assert_eq!(e["last_probe"]["ok"], false, "{e}");
    let u = endpoint_status(&s, "us-east", &format!("127.91.{n}.2"));
    assert_eq!(u["healthy"], false, "{u}");
    assert_eq!(u["last_probe"]["reason"], "body mismatch", "{u}");
    let a = endpoint_status(&s, "ap-south", &format!("127.91.{n}.3"));
    assert_eq!(a["healthy"], true, "{a}");
    assert_eq!(a["last_probe"]["ok"], true, "{a}");
    // still so after a few more probes
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.3"))]);
    assert!(s.stop().success());
}

mod https;
mod rise;
