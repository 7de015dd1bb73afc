//! Health probing, black box: real HTTP/TCP/TLS servers on loopback, the
//! real binary, real DNS queries (SPEC §4.5, §5; issue 3).
//!
//! Every test uses its own loopback block 127.91.N.0/24 for its fake load
//! balancers, so the tests can run in parallel.

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

// ---- HTTPS ----------------------------------------------------------------

/// A self-signed P-256 certificate for `selfsigned.invalid` (DER), made
/// with openssl for this test; valid until 2126.
const TLS_CERT: &str = "308201b130820156a0030201020214482ddf52e889bcdedec07dff70c9706c98c15a62300a06082a8648ce3d040302301d311b301906035504030c1273656c667369676e65642e696e76616c69643020170d3236313132323132353533325a180f32313236313032393132353533325a301d311b301906035504030c1273656c667369676e65642e696e76616c69643059301306072a8648ce3d020106082a8648ce3d0301070342000401f06c0ef7b8c54838869b70b4b358e6d65373772d093eee3be018b6db75505836dc8640a64c7e34c4905c3fbbda4917bc36fbfeb8e7782ad85f94da53e9f938a3723070301d0603551d0e041604142b6546deac08401bf1cc5c6f1849e544b70ade9c301f0603551d230418301680142b6546deac08401bf1cc5c6f1849e544b70ade9c300f0603551d130101ff040530030101ff301d0603551d1104163014821273656c667369676e65642e696e76616c6964300a06082a8648ce3d0403020349003046022100dd21151b5ee2167f066b7faf6d366388a6e40de5af7b03ad9cac793938430f28022100bb947747b86de80ae80c43cfd6619e2b1a4dc164cb5a0b6c41b28e918df318fe";
/// Its PKCS#8 private key (a throwaway test key).
const TLS_KEY: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b020101042073f1550daa2a2a28fba94f63ecaef7e84fbf11b1b368a9010332e42f31213642a1440342000401f06c0ef7b8c54838869b70b4b358e6d65373772d093eee3be018b6db75505836dc8640a64c7e34c4905c3fbbda4917bc36fbfeb8e7782ad85f94da53e9f938";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A minimal HTTPS server answering 200 "ok" to every request.
struct TlsLb {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TlsLb {
    fn start(addr: SocketAddr) -> TlsLb {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(unhex(TLS_CERT))],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(unhex(TLS_KEY))),
            )
            .unwrap();
        let cfg = Arc::new(cfg);
        let listener = TcpListener::bind(addr).unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let cfg = cfg.clone();
                        std::thread::spawn(move || {
                            sock.set_nonblocking(false).unwrap();
                            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                            let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                                return;
                            };
                            let mut tls = rustls::StreamOwned::new(conn, sock);
                            let mut buf = [0u8; 4096];
                            if tls.read(&mut buf).is_err() {
                                return; // handshake refused by the client
                            }
                            let _ = tls.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                            );
                            tls.conn.send_close_notify();
                            let _ = tls.flush();
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        TlsLb { addr, stop }
    }
}

impl Drop for TlsLb {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// An https check with `insecure = true` and one verifying against `host`,
/// both probing a self-signed TLS server; returns the strict endpoint's
/// status.
fn https_scenario(n: u8) -> Value {
    let tls = TlsLb::start(lb_addr(n, 1, 0));
    let port = tls.addr.port();
    let cfg = format!(
        r#"{}
[checks.strict]
type = "https"
port = {port}
path = "/health"
host = "www.example.test"
interval = "1s"
timeout = "500ms"

[checks.insecure]
type = "https"
port = {port}
path = "/health"
host = "www.example.test"
insecure = true
body = "ok"
interval = "1s"
timeout = "500ms"

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "strict"
endpoints = [{{ address = "192.0.2.21", probe = "127.91.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "insecure"
endpoints = [{{ address = "192.0.2.22", probe = "127.91.{n}.1" }}]

[services."www.example.test."]
regions = ["eu-west", "us-east"]
"#,
        head()
    );
    let s = start("https", &cfg);
    assert_eq!(
        s.a(WWW, Some(EU)),
        vec![ip("192.0.2.22")],
        "log:\n{}",
        s.log().join("\n")
    );
    let strict = endpoint_status(&s, "eu-west", "192.0.2.21");
    assert_eq!(strict["healthy"], false, "{strict}");
    let reason = strict["last_probe"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("certificate"),
        "strict check of a self-signed cert: {strict}"
    );
    let insecure = endpoint_status(&s, "us-east", "192.0.2.22");
    assert_eq!(insecure["healthy"], true, "{insecure}");
    assert_eq!(insecure["last_probe"]["reason"], "status 200", "{insecure}");
    assert!(s.stop().success());
    strict
}

#[test]
fn https_check_insecure_passes_strict_fails_on_self_signed() {
    https_scenario(11);
}

/// Issue 3 §1: a TLS failure is reported with the reason `tls: ...`.
#[test]
fn https_certificate_failure_reason_is_tls() {
    let strict = https_scenario(12);
    let reason = strict["last_probe"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("tls: "),
        "reason should start with \"tls: \": {strict}"
    );
}

#[test]
fn hysteresis_short_blips_do_not_flip() {
    let n = 13;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    // fall 3, rise 3: a blip shorter than an interval gives at most two
    // failures (one plus the rapid recheck) or one pass.
    let cfg = format!(
        "{}{}{}",
        head(),
        check("web", port, "").replace("rise = 2\nfall = 2", "rise = 3\nfall = 3"),
        three_regions(n)
    );
    let s = start("hysteresis", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let us_ip = ip(&format!("127.91.{n}.2"));
    let ap_ip = ip(&format!("127.91.{n}.3"));
    for _ in 0..3 {
        eu.set(LbMode::Fail);
        std::thread::sleep(Duration::from_millis(500));
        eu.set(LbMode::Ok);
        assert_stable(&s, WWW, EU, &[eu_ip], Duration::from_millis(1500));
    }
    // Down for good (both eu-west and us-east), then short good blips.
    eu.set(LbMode::Fail);
    us.set(LbMode::Fail);
    wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [ap_ip]).expect("goes down");
    for _ in 0..3 {
        eu.set(LbMode::Ok);
        std::thread::sleep(Duration::from_millis(400));
        eu.set(LbMode::Fail);
        assert_stable(&s, WWW, EU, &[ap_ip], Duration::from_millis(1600));
    }
    let st = endpoint_status(&s, "eu-west", &eu_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    let st = endpoint_status(&s, "us-east", &us_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    drop(us);
    assert!(s.stop().success());
}

/// A server that records the first lines of each request and answers 200.
fn recording_lb(addr: SocketAddr) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().take(50) {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            seen2
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).to_string());
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (addr, seen)
}

#[test]
fn http_probe_sends_path_and_host() {
    let n = 14;
    let (addr, seen) = recording_lb(lb_addr(n, 1, 0));
    let cfg = format!(
        r#"{}
[checks.web]
type = "http"
port = {}
path = "/lb/health?deep=1"
host = "lb.example.test"
interval = "1s"
timeout = "500ms"

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}]

[services."www.example.test."]
regions = ["eu-west"]
"#,
        head(),
        addr.port()
    );
    let s = start("probe-request", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.1"))]);
    let req = seen
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("probed before serving");
    let lower = req.to_ascii_lowercase();
    assert!(
        req.starts_with("GET /lb/health?deep=1 HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        lower.contains("\r\nhost: lb.example.test"),
        "Host header from `host`: {req}"
    );
    assert!(s.stop().success());
}

#[test]
fn ipv6_endpoint_is_probed() {
    let n = 15;
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: this host has no IPv6 loopback");
        return;
    }
    let mut v6 = FakeLb::start("[::1]:0".parse().unwrap());
    let port = v6.addr.port();
    let _eu = FakeLb::start(lb_addr(n, 1, port));
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.1" }}, {{ address = "::1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.2" }}, {{ address = "2001:db8::2", probe = "127.91.{n}.2" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#,
        head(),
        check("web", port, "")
    );
    let s = start("ipv6-probe", &cfg);
    let aaaa = |s: &Server| addresses(&s.udp(&query(WWW, RecordType::AAAA, Some(EU))));
    assert_eq!(aaaa(&s), vec![ip("::1")]);
    assert!(v6.hits() >= 1, "::1 is probed");
    v6.kill();
    wait_until(Duration::from_secs(20), || aaaa(&s) == [ip("2001:db8::2")]).expect("::1 goes down");
    assert_eq!(
        s.a(WWW, Some(EU)),
        vec![ip(&format!("127.91.{n}.1"))],
        "A is unaffected"
    );
    let st = endpoint_status(&s, "eu-west", "::1");
    assert_eq!(st["last_probe"]["reason"], "connect refused", "{st}");
    v6.revive();
    wait_until(Duration::from_secs(20), || aaaa(&s) == [ip("::1")]).expect("::1 comes back");
    assert!(s.stop().success());
}

#[test]
fn reload_probes_new_targets_before_the_swap() {
    let n = 16;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let fra = FakeLb::start(lb_addr(n, 4, port));
    fra.set(LbMode::Fail);
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("reload-new-target", &cfg);
    let eu_ip = ip(&format!("127.91.{n}.1"));
    let fra_ip = ip(&format!("127.91.{n}.4"));
    assert_eq!(s.a(WWW, Some(EU)), vec![eu_ip]);
    // Add eu-central (Frankfurt, nearer to Amsterdam than Dublin), whose LB fails.
    let new = cfg.replace(
        "regions = [\"us-east\", \"eu-west\", \"ap-south\"]",
        "regions = [\"us-east\", \"eu-west\", \"ap-south\", \"eu-central\"]",
    ) + &format!(
        r#"
[regions.eu-central]
location = {{ lat = 50.11, lon = 8.68 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.4" }}]
"#
    );
    write(&s.dir.join("signpost.toml"), &new);
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        assert_eq!(
            s.a(WWW, Some(EU)),
            vec![eu_ip],
            "a new target that is down is never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let st = endpoint_status(&s, "eu-central", &fra_ip.to_string());
    assert_eq!(st["healthy"], false, "{st}");
    assert_eq!(st["last_probe"]["reason"], "status 503", "{st}");
    // and it is probed from then on
    fra.set(LbMode::Ok);
    wait_until(Duration::from_secs(20), || s.a(WWW, Some(EU)) == [fra_ip])
        .expect("eu-central comes up");
    assert!(s.stop().success());
}

#[test]
fn probe_before_serve_is_bounded_by_the_timeout() {
    let n = 17;
    let first = FakeLb::start(lb_addr(n, 1, 0));
    let port = first.addr.port();
    first.set(LbMode::Hang);
    let mut lbs = vec![first];
    for h in 2..=8 {
        let lb = FakeLb::start(lb_addr(n, h, port));
        lb.set(LbMode::Hang);
        lbs.push(lb);
    }
    let _us = FakeLb::start(lb_addr(n, 20, port));
    let eps: Vec<String> = (1..=8)
        .map(|h| format!("{{ address = \"127.91.{n}.{h}\" }}"))
        .collect();
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.91.{n}.20" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
"#,
        head(),
        check("web", port, ""),
        eps.join(", ")
    );
    let t = Instant::now();
    let s = start("probe-bounded", &cfg);
    let took = t.elapsed();
    println!(
        "start-up with 8 hanging endpoints (timeout 500ms): {:.2}s",
        took.as_secs_f64()
    );
    // the first round runs concurrently, bounded by the 500 ms timeout
    assert!(took < Duration::from_secs(3), "start-up took {took:?}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.20"))]);
    let st = endpoint_status(&s, "eu-west", &format!("127.91.{n}.5"));
    assert_eq!(st["last_probe"]["reason"], "timeout", "{st}");
    drop(lbs);
    assert!(s.stop().success());
}

/// A reload whose new targets are slow to probe (first probes are bounded
/// by their timeout) is prepared beside the control loop: a health change
/// meanwhile reaches answers at once, not after the reload.
#[test]
fn health_changes_reach_answers_while_a_reload_is_prepared() {
    let n = 77;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let _ap = FakeLb::start(lb_addr(n, 3, port));
    let slow = FakeLb::start(lb_addr(n, 4, port));
    slow.set(LbMode::Hang);
    let cfg = format!("{}{}{}", head(), check("web", port, ""), three_regions(n));
    let s = start("reload-beside", &cfg);
    assert_eq!(s.a(WWW, Some(EU)), vec![ip(&format!("127.91.{n}.1"))]);
    // the new configuration adds a region whose load balancer hangs, with a 4 s timeout
    let new = format!(
        "{cfg}\n[checks.slow]\ntype = \"http\"\nport = {port}\npath = \"/health\"\ninterval = \"10s\"\ntimeout = \"4s\"\n\n[regions.sa-east]\nlocation = {{ lat = -23.55, lon = -46.63 }}\ncheck = \"slow\"\nendpoints = [{{ address = \"127.91.{n}.4\" }}]\n"
    );
    write(&s.dir.join("signpost.toml"), &new);
    let url = format!("{}/v1/reload", s.admin_url());
    let started = Instant::now();
    let reload = std::thread::spawn(move || {
        let r = http("POST", &url, None);
        (r, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200));
    eu.set(LbMode::Fail);
    wait_until(FAIL_LIMIT, || {
        s.a(WWW, Some(EU)) == vec![ip(&format!("127.91.{n}.2"))]
    })
    .expect("the failure reached answers");
    let moved_at = Instant::now();
    let ((code, body), done_at) = reload.join().unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(
        done_at.duration_since(started) >= Duration::from_secs(3),
        "the reload waited for the slow first probe"
    );
    assert!(
        moved_at < done_at,
        "the failure reached answers only after the reload: moved {:?}, reload done {:?} after start",
        moved_at.duration_since(started),
        done_at.duration_since(started)
    );
    assert!(s.stop().success());
}
