//! The admin API, reloads and the command line, black box (SPEC §2, §6;
//! issue 3): the real binary, real HTTP, real DNS queries.
//!
//! Fake load balancers use 127.92.N.0/24 with a distinct N per test.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use serde_json::Value;

/// An Amsterdam client (GeoIP: NL, 193.0.0.0/20).
const EU: &str = "193.0.6.0/24";
/// A Syracuse client (GeoIP: US, /16): us-east.
const US: &str = "24.24.24.0/24";
const WWW: &str = "www.example.test.";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn lb_addr(n: u8, host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([127, 92, n, host], port))
}

fn head(server_extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
{server_extra}

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"
"#
    )
}

/// Three regions without health checks (always up): us-east 192.0.2.1,
/// eu-west 192.0.2.2, ap-south 192.0.2.3; www is geo over all three,
/// mapped.example.test sends NL to ap-south, api is weighted.
fn static_regions() -> String {
    r#"
[regions.us-east]
location = { lat = 39.04, lon = -77.49 }
endpoints = [{ address = "192.0.2.1" }]

[regions.eu-west]
location = { lat = 53.35, lon = -6.26 }
endpoints = [{ address = "192.0.2.2" }]

[regions.ap-south]
location = { lat = 19.08, lon = 72.88 }
endpoints = [{ address = "192.0.2.3" }]

[services."www.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy = "geo"
ttl = 30

[services."mapped.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
map = { "NL" = ["ap-south"] }

[services."api.example.test."]
regions = ["us-east", "eu-west"]
policy = "weighted"
"#
    .to_string()
}

fn static_config(server_extra: &str) -> String {
    format!("{}{}", head(server_extra), static_regions())
}

fn start(name: &str, cfg: &str) -> Server {
    Server::start(name, cfg, &[("example.test.zone", ZONE)])
}

/// An http check `web` on `port`: interval 1s, timeout 500ms, plus `extra`.
fn web_check(port: u16, extra: &str) -> String {
    format!(
        r#"
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "1s"
timeout = "500ms"
{extra}
"#
    )
}

/// eu-west 127.92.N.1 and us-east 127.92.N.2 behind check `web`; www geo.
fn checked_regions(n: u8, services: &str) -> String {
    format!(
        r#"
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.92.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.92.{n}.2" }}]

{services}
"#
    )
}

const WWW_SERVICE: &str = r#"
[services."www.example.test."]
regions = ["us-east", "eu-west"]
ttl = 10
"#;

/// POST/DELETE expecting `code`; returns the body as JSON.
fn call(method: &str, url: &str, token: Option<&str>, code: u16) -> Value {
    let (c, body) = http(method, url, token);
    assert_eq!(c, code, "{method} {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {body}"))
}

/// Asserts an error response: `code` and `{"error": "..."}`.
fn assert_error(method: &str, url: &str, token: Option<&str>, code: u16) -> String {
    let v = call(method, url, token, code);
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} {url}: no \"error\" string in {v}"));
    assert!(!msg.is_empty(), "{method} {url}: empty error");
    msg.to_string()
}

fn status(s: &Server) -> Value {
    get_json(&format!("{}/v1/status", s.admin_url()))
}

fn region<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("region {name} in {st}"))
}

fn endpoint<'a>(st: &'a Value, region_name: &str, address: &str) -> &'a Value {
    region(st, region_name)["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == address)
        .unwrap_or_else(|| panic!("endpoint {address} of {region_name} in {st}"))
}

/// One query: (addresses, ECS scope).
fn answer(s: &Server, name: &str, t: RecordType, ecs: &str) -> (Vec<IpAddr>, Option<u8>) {
    let r = s.udp(&query(name, t, Some(ecs)));
    assert_eq!(r.response_code, ResponseCode::NoError, "{name} {t}: {r:?}");
    (addresses(&r), ecs_of(&r).map(|e| e.1))
}

/// Parses Prometheus text: the sum of samples named `name` whose labels
/// include every `k="v"` of `labels`; None if there is none.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (head, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, l) = match head.find('{') {
            Some(i) => (&head[..i], &head[i..]),
            None => (head, ""),
        };
        if n != name
            || !labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad sample {line:?}"));
        found = Some(found.unwrap_or(0.0) + v);
    }
    found
}

fn metrics(s: &Server) -> String {
    let (code, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    body
}

// ---- health and status -----------------------------------------------------

#[test]
fn healthz_and_status_shape() {
    let n = 1;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let cfg = format!(
        r#"{}{}
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.92.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "2001:db8::1" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
ttl = 10
"#,
        head(""),
        web_check(port, "")
    );
    let s = start("status-shape", &cfg);
    let (code, body) = http("GET", &format!("{}/healthz", s.admin_url()), None);
    assert_eq!(code, 200);
    assert_eq!(body.trim(), "ok");

    let st = status(&s);
    let regions = st["regions"].as_array().expect("regions[]");
    assert_eq!(regions.len(), 2, "{st}");
    for r in regions {
        assert!(r["name"].is_string(), "{r}");
        assert!(r["healthy"].is_boolean(), "{r}");
        assert!(r["drained"].is_boolean(), "{r}");
        for e in r["endpoints"].as_array().expect("endpoints[]") {
            assert!(e["address"].is_string(), "{e}");
            assert!(e["healthy"].is_boolean(), "{e}");
            assert!(e["drained"].is_boolean(), "{e}");
            assert!(e.get("last_probe").is_some(), "last_probe key: {e}");
            assert!(e.get("since").is_some(), "since key: {e}");
        }
    }
    let e = endpoint(&st, "eu-west", &format!("127.92.{n}.1"));
    assert_eq!(e["healthy"], true, "{e}");
    assert_eq!(e["drained"], false, "{e}");
    assert!(
        e["last_probe"].is_object(),
        "a probed endpoint has a last probe: {e}"
    );
    assert_eq!(e["last_probe"]["ok"], true, "{e}");
    assert!(e["last_probe"]["reason"].is_string(), "{e}");
    assert!(e["since"].is_string(), "{e}");
    assert_eq!(region(&st, "eu-west")["healthy"], true);
    let us = region(&st, "us-east");
    assert_eq!(
        us["healthy"], true,
        "an endpoint without a check is up: {us}"
    );
    let addrs: Vec<&str> = us["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["192.0.2.1", "2001:db8::1"]);
    let services = st["services"].as_array().expect("services[]");
    assert_eq!(services.len(), 1, "{st}");
    assert_eq!(services[0]["name"], WWW, "{st}");
    assert!(s.stop().success());
}

// ---- drains ----------------------------------------------------------------

#[test]
fn region_drain_and_undrain_move_answers() {
    let s = start("region-drain", &static_config(""));
    let admin = s.admin_url();
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU),
        (vec![ip("192.0.2.2")], Some(20))
    );
    // every address of the merged block around 24.24.24.0 (the demo db's
    // 24.24.0.0/16 and empty space beside it) gets us-east: a scope of at
    // most /16, but above 0 because other networks do not
    let (got, scope) = answer(&s, WWW, RecordType::A, US);
    assert_eq!(got, vec![ip("192.0.2.1")]);
    assert!((1..=16).contains(&scope.unwrap_or(0)), "scope {scope:?}");

    let v = call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    println!("drain: {v}");
    let (got, scope) = answer(&s, WWW, RecordType::A, EU);
    assert_eq!(
        got,
        vec![ip("192.0.2.1")],
        "drained eu-west: the next-nearest region"
    );
    assert!(
        scope.unwrap_or(0) > 0,
        "a geo answer keeps a scope > 0, got {scope:?}"
    );
    // A static record is unaffected; its scope stays 0.
    let r = s.udp(&query("mail.example.test.", RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("192.0.2.25")]);
    assert_eq!(ecs_of(&r).map(|e| e.1), Some(0));
    // US clients do not notice.
    assert_eq!(answer(&s, WWW, RecordType::A, US).0, vec![ip("192.0.2.1")]);
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    assert_eq!(region(&st, "us-east")["drained"], false, "{st}");
    for _ in 0..20 {
        assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    }

    call(
        "DELETE",
        &format!("{admin}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU),
        (vec![ip("192.0.2.2")], Some(20))
    );
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], false, "{st}");
    // undrain of an undrained region is fine
    call(
        "DELETE",
        &format!("{admin}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    assert!(s.stop().success());
}

#[test]
fn region_drain_for_expires_by_itself() {
    let s = start("drain-for", &static_config(""));
    let admin = s.admin_url();
    call(
        "POST",
        &format!("{admin}/v1/regions/eu-west/drain?for=2s"),
        None,
        200,
    );
    let t = Instant::now();
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    let back = wait_until(Duration::from_secs(20), || {
        answer(&s, WWW, RecordType::A, EU).0 == [ip("192.0.2.2")]
    })
    .expect("a drain ?for=2s expires");
    let total = t.elapsed() - Duration::from_millis(0);
    println!("drain ?for=2s expired after {:.2}s", total.as_secs_f64());
    assert!(
        total >= Duration::from_millis(1500),
        "expired too early: {total:?} ({back:?})"
    );
    assert!(
        total <= Duration::from_secs(6),
        "expired too late: {total:?}"
    );
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], false, "{st}");
    assert!(s.stop().success());
}

#[test]
fn endpoint_drain_applies_in_every_region_v4_and_v6() {
    let cfg = format!(
        r#"{}
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "192.0.2.50" }}, {{ address = "2001:db8::11" }}, {{ address = "2001:db8::1" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}, {{ address = "192.0.2.50" }}, {{ address = "2001:db8::22" }}, {{ address = "2001:db8::1" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
answers = 2
"#,
        head("")
    );
    let s = start("endpoint-drain", &cfg);
    let admin = s.admin_url();
    let set = |v: Vec<IpAddr>| v.into_iter().collect::<BTreeSet<_>>();
    let q = |t: RecordType, ecs: &str| set(answer(&s, WWW, t, ecs).0);
    assert_eq!(
        q(RecordType::A, EU),
        set(vec![ip("192.0.2.2"), ip("192.0.2.50")])
    );
    assert_eq!(
        q(RecordType::A, US),
        set(vec![ip("192.0.2.1"), ip("192.0.2.50")])
    );
    assert_eq!(
        q(RecordType::AAAA, EU),
        set(vec![ip("2001:db8::22"), ip("2001:db8::1")])
    );

    call(
        "POST",
        &format!("{admin}/v1/endpoints/192.0.2.50/drain"),
        None,
        200,
    );
    call(
        "POST",
        &format!("{admin}/v1/endpoints/2001:db8::1/drain"),
        None,
        200,
    );
    for _ in 0..10 {
        // answers = 2: the first region's remaining endpoint, then the next region's
        assert_eq!(
            q(RecordType::A, EU),
            set(vec![ip("192.0.2.2"), ip("192.0.2.1")])
        );
        assert_eq!(
            q(RecordType::A, US),
            set(vec![ip("192.0.2.1"), ip("192.0.2.2")])
        );
        assert_eq!(
            q(RecordType::AAAA, EU),
            set(vec![ip("2001:db8::22"), ip("2001:db8::11")])
        );
        assert_eq!(
            q(RecordType::AAAA, US),
            set(vec![ip("2001:db8::11"), ip("2001:db8::22")])
        );
    }
    let st = status(&s);
    for r in ["us-east", "eu-west"] {
        assert_eq!(endpoint(&st, r, "192.0.2.50")["drained"], true, "{st}");
        assert_eq!(endpoint(&st, r, "2001:db8::1")["drained"], true, "{st}");
        assert_eq!(region(&st, r)["drained"], false, "{st}");
        assert_eq!(region(&st, r)["healthy"], true, "{st}");
    }
    assert_eq!(
        endpoint(&st, "us-east", "192.0.2.1")["drained"],
        false,
        "{st}"
    );

    call(
        "DELETE",
        &format!("{admin}/v1/endpoints/192.0.2.50/drain"),
        None,
        200,
    );
    call(
        "DELETE",
        &format!("{admin}/v1/endpoints/2001:db8::1/drain"),
        None,
        200,
    );
    assert_eq!(
        q(RecordType::A, EU),
        set(vec![ip("192.0.2.2"), ip("192.0.2.50")])
    );
    assert_eq!(
        q(RecordType::AAAA, US),
        set(vec![ip("2001:db8::11"), ip("2001:db8::1")])
    );
    assert!(s.stop().success());
}

#[test]
fn errors_are_json_with_the_right_codes() {
    let s = start("errors", &static_config(""));
    let a = s.admin_url();
    let cases: &[(&str, String, u16)] = &[
        ("POST", format!("{a}/v1/regions/nosuch/drain"), 404),
        ("DELETE", format!("{a}/v1/regions/nosuch/drain"), 404),
        ("POST", format!("{a}/v1/endpoints/192.0.2.99/drain"), 404),
        ("DELETE", format!("{a}/v1/endpoints/192.0.2.99/drain"), 404),
        ("POST", format!("{a}/v1/endpoints/2001:db8::99/drain"), 404),
        (
            "POST",
            format!("{a}/v1/endpoints/not-an-address/drain"),
            400,
        ),
        ("POST", format!("{a}/v1/endpoints/192.0.2.300/drain"), 400),
        ("DELETE", format!("{a}/v1/endpoints/banana/drain"), 400),
        (
            "POST",
            format!("{a}/v1/regions/eu-west/drain?for=banana"),
            400,
        ),
        (
            "POST",
            format!("{a}/v1/endpoints/192.0.2.2/drain?for=banana"),
            400,
        ),
        ("GET", format!("{a}/v1/nosuch"), 404),
        ("GET", format!("{a}/nosuch"), 404),
        ("POST", format!("{a}/v1/lab/eu-west/fail"), 404), // not the demo
        (
            "GET",
            format!("{a}/v1/explain?name=nosuch.example.test&type=A&client=193.0.6.1"),
            404,
        ),
        (
            "GET",
            format!("{a}/v1/explain?name=www.example.test&type=A&client=banana"),
            400,
        ),
    ];
    for (method, url, code) in cases {
        let msg = assert_error(method, url, None, *code);
        println!("{method} {url} -> {code} {msg}");
    }
    let msg = assert_error("POST", &format!("{a}/v1/regions/nosuch/drain"), None, 404);
    assert!(msg.contains("nosuch"), "the error names the region: {msg}");
    // Nothing was drained by the failed calls.
    let st = status(&s);
    for r in st["regions"].as_array().unwrap() {
        assert_eq!(r["drained"], false, "{st}");
    }
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    assert!(s.stop().success());
}

#[test]
fn token_guards_mutating_calls_only() {
    let s = start("token", &static_config(r#"admin_token = "s3cret""#));
    let a = s.admin_url();
    let drain = format!("{a}/v1/regions/eu-west/drain");
    let ep_drain = format!("{a}/v1/endpoints/192.0.2.2/drain");
    let reload = format!("{a}/v1/reload");
    for (method, url) in [
        ("POST", drain.as_str()),
        ("DELETE", drain.as_str()),
        ("POST", ep_drain.as_str()),
        ("DELETE", ep_drain.as_str()),
        ("POST", reload.as_str()),
    ] {
        assert_error(method, url, None, 401);
        assert_error(method, url, Some("wrong"), 401);
        assert_error(method, url, Some("s3cre"), 401);
        assert_error(method, url, Some("s3cretX"), 401);
    }
    // nothing happened
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    call("POST", &drain, Some("s3cret"), 200);
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    call("DELETE", &drain, Some("s3cret"), 200);
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    call("POST", &format!("{a}/v1/reload"), Some("s3cret"), 200);
    // GETs need no token
    for path in [
        "/healthz",
        "/v1/status",
        "/metrics",
        "/v1/explain?name=www.example.test&type=A&client=193.0.6.1",
    ] {
        let (code, body) = http("GET", &format!("{a}{path}"), None);
        assert_eq!(code, 200, "GET {path}: {body}");
    }
    // the command line passes --token or SIGNPOST_ADMIN_TOKEN
    let dir = s.dir.clone();
    let (code, _, err) = run(&dir, &["ctl", "drain", "eu-west", "--admin", &a], &[]);
    assert_eq!(code, 1, "ctl without the token: {err}");
    assert!(err.contains("401"), "the server's refusal is shown: {err}");
    let (code, _, err) = run(
        &dir,
        &[
            "ctl", "drain", "eu-west", "--admin", &a, "--token", "s3cret",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    let (code, _, err) = run(
        &dir,
        &["ctl", "undrain", "eu-west", "--admin", &a],
        &[("SIGNPOST_ADMIN_TOKEN", "s3cret")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    assert!(s.stop().success());
}

/// A reload can rotate the admin token (SIGHUP or the API); `[server]`
/// keys that need a restart are reported in the log.
#[test]
fn reload_rotates_the_admin_token() {
    let s = start("token-rotate", &static_config(r#"admin_token = "old""#));
    let a = s.admin_url();
    let drain = format!("{a}/v1/regions/eu-west/drain");
    let cfg = s.dir.join("signpost.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    write(
        &cfg,
        &text.replace(
            r#"admin_token = "old""#,
            "admin_token = \"new\"\nworkers = 3",
        ),
    );
    call("POST", &format!("{a}/v1/reload"), Some("old"), 200);
    assert_error("POST", &drain, Some("old"), 401);
    call("POST", &drain, Some("new"), 200);
    call("DELETE", &drain, Some("new"), 200);
    assert!(
        wait_until(Duration::from_secs(5), || s
            .log()
            .iter()
            .any(|l| l.contains("server.workers changed")))
        .is_some(),
        "a restart-only change is reported: {:?}",
        s.log()
    );
    assert!(s.stop().success());
}

// ---- explain ---------------------------------------------------------------

#[test]
fn explain_traces_the_decision() {
    let s = start("explain", &static_config(""));
    let a = s.admin_url();
    let e = get_json(&format!(
        "{a}/v1/explain?name=www.example.test.&type=A&client=193.0.6.1"
    ));
    println!("{e:#}");
    assert_eq!(e["client"]["country"], "NL", "{e}");
    assert_eq!(e["client"]["source"], "ecs", "{e}");
    assert_eq!(e["client"]["network"], "193.0.0.0/20", "{e}");
    assert_eq!(e["client"]["address"], "193.0.6.1", "{e}");
    assert!(
        e["client"]["lat"].is_number() && e["client"]["lon"].is_number(),
        "{e}"
    );
    assert_eq!(e["rule"], "distance", "{e}");
    let cands = e["candidates"].as_array().unwrap();
    let names: Vec<&str> = cands
        .iter()
        .map(|c| c["region"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eu-west", "us-east", "ap-south"], "{e}");
    let dists: Vec<f64> = cands
        .iter()
        .map(|c| c["distance_km"].as_f64().expect("distance_km"))
        .collect();
    assert!(
        dists.windows(2).all(|w| w[0] <= w[1]),
        "nearest first: {dists:?}"
    );
    assert!(
        dists[0] > 500.0 && dists[0] < 1000.0,
        "Amsterdam-Dublin: {dists:?}"
    );
    for c in cands {
        assert_eq!(c["healthy"], true, "{c}");
        assert_eq!(c["drained"], false, "{c}");
        assert!(c["weight"].is_number(), "{c}");
    }
    assert_eq!(e["answer"], serde_json::json!(["192.0.2.2"]), "{e}");
    assert_eq!(e["ttl"], 30, "{e}");
    assert_eq!(e["scope"], 20, "{e}");

    // without the trailing dot, and the same answer as DNS gives
    let e2 = get_json(&format!(
        "{a}/v1/explain?name=www.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(e2["answer"], e["answer"]);
    assert_eq!(e2["scope"], 20);

    // a map entry
    let m = get_json(&format!(
        "{a}/v1/explain?name=mapped.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(m["rule"], "map:NL", "{m}");
    assert_eq!(m["answer"], serde_json::json!(["192.0.2.3"]), "{m}");
    assert_eq!(
        answer(&s, "mapped.example.test.", RecordType::A, EU).0,
        vec![ip("192.0.2.3")]
    );

    // weighted
    let w = get_json(&format!(
        "{a}/v1/explain?name=api.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(w["rule"], "weighted", "{w}");
    assert_eq!(w["scope"], 0, "{w}");

    // a drained region shows drained and is not answered
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    let d = get_json(&format!(
        "{a}/v1/explain?name=www.example.test&type=A&client=193.0.6.1"
    ));
    let eu = d["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == "eu-west")
        .unwrap()
        .clone();
    assert_eq!(eu["drained"], true, "{d}");
    assert_eq!(d["answer"], serde_json::json!(["192.0.2.1"]), "{d}");
    assert_eq!(d["candidates"][0]["region"], "us-east", "{d}");

    // errors
    assert_error(
        "GET",
        &format!("{a}/v1/explain?name=nosuch.example.test&type=A&client=193.0.6.1"),
        None,
        404,
    );
    assert_error(
        "GET",
        &format!("{a}/v1/explain?name=www.example.test&type=A&client=193.0.6"),
        None,
        400,
    );
    assert_error(
        "GET",
        &format!("{a}/v1/explain?name=www.example.test&type=MX&client=193.0.6.1"),
        None,
        400,
    );
    assert!(s.stop().success());
}

// ---- metrics ---------------------------------------------------------------

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

// ---- reload ----------------------------------------------------------------

#[test]
fn reload_good_config_changes_answers() {
    let s = start("reload-good", &static_config(""));
    let a = s.admin_url();
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.2")]);
    let r = s.udp(&query("new.example.test.", RecordType::A, None));
    assert_eq!(r.response_code, ResponseCode::NXDomain);

    let cfg = static_config("").replace(
        "regions = [\"us-east\", \"eu-west\", \"ap-south\"]\npolicy = \"geo\"",
        "regions = [\"us-east\", \"ap-south\"]\npolicy = \"geo\"",
    );
    assert_ne!(cfg, static_config(""));
    write(&s.dir.join("signpost.toml"), &cfg);
    write(
        &s.dir.join("example.test.zone"),
        &format!("{ZONE}new IN A 192.0.2.77\n"),
    );
    let v = call("POST", &format!("{a}/v1/reload"), None, 200);
    println!("reload: {v}");
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU).0,
        vec![ip("192.0.2.1")],
        "eu-west left the service"
    );
    let r = s.udp(&query("new.example.test.", RecordType::A, None));
    assert_eq!(
        addresses(&r),
        vec![ip("192.0.2.77")],
        "the new static record"
    );
    let st = status(&s);
    let svc = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == WWW)
        .unwrap()
        .clone();
    assert_eq!(
        svc["regions"],
        serde_json::json!(["us-east", "ap-south"]),
        "{svc}"
    );
    assert!(s.stop().success());
}

#[test]
fn reload_carries_health_state_over() {
    let n = 3;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    eu.set(LbMode::Fail);
    // rise 5: coming back takes ~5 s, a fresh first probe would take 0 s
    let cfg = format!(
        "{}{}{}",
        head(""),
        web_check(port, "rise = 5\nfall = 1"),
        checked_regions(n, WWW_SERVICE)
    );
    let s = start("reload-health", &cfg);
    let a = s.admin_url();
    let eu_addr = format!("127.92.{n}.1");
    let us_ip = ip(&format!("127.92.{n}.2"));
    assert_eq!(s.a(WWW, Some(EU)), vec![us_ip]);
    let before = status(&s);
    let since = endpoint(&before, "eu-west", &eu_addr)["since"].clone();
    assert_eq!(endpoint(&before, "eu-west", &eu_addr)["healthy"], false);

    // The LB recovers, and right away the config is reloaded (a new
    // static record; the check and endpoints are unchanged).
    eu.set(LbMode::Ok);
    write(
        &s.dir.join("example.test.zone"),
        &format!("{ZONE}new IN A 192.0.2.77\n"),
    );
    let t = Instant::now();
    let v = call("POST", &format!("{a}/v1/reload"), None, 200);
    println!("reload: {v}");
    assert_eq!(
        addresses(&s.udp(&query("new.example.test.", RecordType::A, None))),
        vec![ip("192.0.2.77")]
    );
    let after = status(&s);
    let e = endpoint(&after, "eu-west", &eu_addr);
    assert_eq!(
        e["healthy"], false,
        "down before the reload, down right after: {e}"
    );
    assert_eq!(e["since"], since, "the state is the same state: {e}");
    // No flap to up: still us-east for a while (until rise passes).
    while t.elapsed() < Duration::from_millis(2000) {
        assert_eq!(
            s.a(WWW, Some(EU)),
            vec![us_ip],
            "flapped up {:?} after the reload",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // and the up one stayed up all along
    assert_eq!(
        endpoint(&after, "us-east", &format!("127.92.{n}.2"))["healthy"],
        true
    );
    // Eventually it comes back by the normal rule.
    wait_until(Duration::from_secs(20), || {
        s.a(WWW, Some(EU)) == [ip(&eu_addr)]
    })
    .expect("comes back after rise");
    assert!(s.stop().success());
}

/// A reload that removes a probe address drops its metric series (probe
/// counts, transitions, latency histogram, endpoint gauges): deployments
/// whose load balancers' addresses rotate must not grow without bound.
#[test]
fn reload_drops_the_metric_series_of_removed_probe_addresses() {
    let n = 4;
    let eu = FakeLb::start(lb_addr(n, 1, 0));
    let port = eu.addr.port();
    let _us = FakeLb::start(lb_addr(n, 2, port));
    let cfg = format!(
        "{}{}{}",
        head(""),
        web_check(port, ""),
        checked_regions(n, WWW_SERVICE)
    );
    let s = start("reload-metrics", &cfg);
    let a = s.admin_url();
    let eu_addr = format!("127.92.{n}.1");
    let us_addr = format!("127.92.{n}.2");
    let series = |text: &str, addr: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.contains(&format!("address=\"{addr}\"")))
            .count()
    };
    let before = metrics(&s);
    assert!(
        series(&before, &eu_addr) >= 6,
        "eu-west's probe series are exported:\n{before}"
    );
    // eu-west leaves the configuration
    let cfg = cfg
        .replace(
            &format!(
                "[regions.eu-west]\nlocation = {{ lat = 53.35, lon = -6.26 }}\ncheck = \"web\"\nendpoints = [{{ address = \"{eu_addr}\" }}]\n"
            ),
            "",
        )
        .replace(
            "regions = [\"us-east\", \"eu-west\"]",
            "regions = [\"us-east\"]",
        );
    assert!(!cfg.contains(&eu_addr), "{cfg}");
    write(&s.dir.join("signpost.toml"), &cfg);
    let v = call("POST", &format!("{a}/v1/reload"), None, 200);
    assert_eq!(v["summary"]["targets_removed"], 1, "{v}");
    let after = metrics(&s);
    assert_eq!(
        series(&after, &eu_addr),
        0,
        "no series of the removed address is left:\n{after}"
    );
    assert!(
        series(&after, &us_addr) >= 6,
        "the kept address keeps its series:\n{after}"
    );
    assert!(s.stop().success());
}

#[test]
fn reload_bad_configs_keep_the_old_one() {
    let s = start("reload-bad", &static_config(""));
    let a = s.admin_url();
    let good = static_config("");
    let cfg_path = s.dir.join("signpost.toml");
    let zone_path = s.dir.join("example.test.zone");
    let line_of = |text: &str, pat: &str| text.lines().position(|l| l.contains(pat)).unwrap() + 1;

    // 1. TOML syntax error
    let broken = good.replace("ttl = 30", "ttl = = 30");
    let line = line_of(&broken, "ttl = = 30");
    write(&cfg_path, &broken);
    let errs = reload_errors(&a);
    assert!(
        errs.iter()
            .any(|e| e.contains("signpost.toml") && e.contains(&format!(":{line}:"))),
        "syntax error names the file and line {line}: {errs:?}"
    );
    assert_old(&s);

    // 2. unknown region
    write(
        &cfg_path,
        &good.replace(
            "regions = [\"us-east\", \"eu-west\", \"ap-south\"]\npolicy = \"geo\"",
            "regions = [\"us-east\", \"eu-wets\", \"ap-south\"]\npolicy = \"geo\"",
        ),
    );
    let errs = reload_errors(&a);
    assert!(
        errs.iter().any(|e| e.contains("signpost.toml")
            && e.contains(r#"services."www.example.test.".regions[1]"#)
            && e.contains(r#"unknown region "eu-wets""#)),
        "{errs:?}"
    );
    assert_old(&s);

    // 3. a broken zone file line (with a good config)
    write(&cfg_path, &good);
    let zone = format!("{ZONE}new IN A 192.0.2.77\nbroken IN A 999.1.2.3\n");
    let zline = line_of(&zone, "broken");
    write(&zone_path, &zone);
    let errs = reload_errors(&a);
    assert!(
        errs.iter()
            .any(|e| e.contains("example.test.zone") && e.contains(&format!(":{zline}:"))),
        "zone error names the file and line {zline}: {errs:?}"
    );
    assert_old(&s);
    // the good line of the broken zone was not loaded either
    let r = s.udp(&query("new.example.test.", RecordType::A, None));
    assert_eq!(r.response_code, ResponseCode::NXDomain);

    // 4. an unknown key
    write(&zone_path, ZONE);
    write(
        &cfg_path,
        &good.replace("ttl = 30", "ttl = 30\ncolour = \"blue\""),
    );
    let errs = reload_errors(&a);
    assert!(errs.iter().any(|e| e.contains("colour")), "{errs:?}");
    assert_old(&s);

    // 5. a GeoIP database that is not there
    write(&cfg_path, &good.replace(GEOIP, "geoip/missing.mmdb"));
    let errs = reload_errors(&a);
    assert!(errs.iter().any(|e| e.contains("missing.mmdb")), "{errs:?}");
    assert_old(&s);

    // 6. a zone file that is not there
    write(
        &cfg_path,
        &good.replace("example.test.zone", "missing.zone"),
    );
    let errs = reload_errors(&a);
    assert!(errs.iter().any(|e| e.contains("missing.zone")), "{errs:?}");
    assert_old(&s);

    // and a good one afterwards works
    write(&cfg_path, &good.replace("ttl = 30", "ttl = 42"));
    call("POST", &format!("{a}/v1/reload"), None, 200);
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(r.answers[0].ttl, 42);
    assert!(
        s.log().iter().any(|l| l.contains("reload failed")),
        "failed reloads are logged"
    );
    assert!(s.stop().success());
}

fn reload_errors(admin: &str) -> Vec<String> {
    let v = call("POST", &format!("{admin}/v1/reload"), None, 400);
    println!("bad reload: {v:#}");
    let errs: Vec<String> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{{\"errors\": [...]}} in {v}"))
        .iter()
        .map(|e| e.as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!errs.is_empty(), "{v}");
    errs
}

/// The answers of `static_config("")` as first loaded.
fn assert_old(s: &Server) {
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("192.0.2.2")]);
    assert_eq!(r.answers[0].ttl, 30);
    assert_eq!(answer(s, WWW, RecordType::A, US).0, vec![ip("192.0.2.1")]);
    assert_eq!(
        addresses(&s.udp(&query("mail.example.test.", RecordType::A, None))),
        vec![ip("192.0.2.25")]
    );
}

#[test]
fn sighup_reloads_good_and_survives_bad() {
    let mut s = start("sighup", &static_config(""));
    let cfg_path = s.dir.join("signpost.toml");
    let good = static_config("");
    write(&cfg_path, &good.replace("ttl = 30", "ttl = 42"));
    s.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(20), || {
        s.udp(&query(WWW, RecordType::A, Some(EU))).answers[0].ttl == 42
    })
    .expect("SIGHUP applied the new config");
    write(&cfg_path, "[server\nthis is not toml");
    s.signal(libc::SIGHUP);
    wait_until(Duration::from_secs(20), || {
        s.log().iter().any(|l| l.contains("reload failed"))
    })
    .expect("the failed reload is logged");
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.alive(), "a bad config on SIGHUP must not stop the server");
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(addresses(&r), vec![ip("192.0.2.2")]);
    assert_eq!(r.answers[0].ttl, 42, "still the last good config");
    // and the admin API still works
    assert_eq!(status(&s)["regions"].as_array().unwrap().len(), 3);
    assert!(s.stop().success());
}

/// One query, never panicking: Ok(message) or why not.
fn try_query(addr: SocketAddr, msg: &Message, tcp: bool) -> Result<Message, String> {
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let raw = if tcp {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("tcp connect: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        s.write_all(&out).map_err(|e| format!("tcp write: {e}"))?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)
            .map_err(|e| format!("tcp read: {e}"))?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf)
            .map_err(|e| format!("tcp read: {e}"))?;
        buf
    } else {
        udp_raw(addr, &bytes, Duration::from_secs(2)).ok_or("udp: no reply within 2 s")?
    };
    Message::from_vec(&raw).map_err(|e| format!("unparsable reply: {e}"))
}

#[test]
fn twenty_reloads_under_query_load_lose_nothing() {
    let s = start("reload-load", &static_config(""));
    let a = s.admin_url();
    let dns = s.dns;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let worker = std::thread::spawn(move || {
        let (mut total, mut bad) = (0usize, Vec::new());
        let want = vec![ip("192.0.2.2")];
        while !stop2.load(Ordering::SeqCst) && total < 100_000 {
            let tcp = total % 5 == 4;
            let q = query(WWW, RecordType::A, Some(EU));
            match try_query(dns, &q, tcp) {
                Ok(r)
                    if r.response_code == ResponseCode::NoError
                        && addresses(&r) == want
                        && r.id == q.id => {}
                Ok(r) => bad.push(format!(
                    "query {total} (tcp {tcp}): {:?} {:?}",
                    r.response_code,
                    addresses(&r)
                )),
                Err(e) => bad.push(format!("query {total} (tcp {tcp}): {e}")),
            }
            total += 1;
        }
        (total, bad)
    });
    let cfg_path = s.dir.join("signpost.toml");
    let zone_path = s.dir.join("example.test.zone");
    for i in 0..20 {
        // alternate configs that do not change the www answer
        let ttl = if i % 2 == 0 { "ttl = 31" } else { "ttl = 30" };
        write(&cfg_path, &static_config("").replace("ttl = 30", ttl));
        write(&zone_path, &format!("{ZONE}r{i} IN TXT \"reload {i}\"\n"));
        call("POST", &format!("{a}/v1/reload"), None, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (total, bad) = worker.join().unwrap();
    println!("{total} queries during 20 reloads, {} failed", bad.len());
    assert!(total >= 20, "only {total} queries were sent");
    assert!(
        bad.is_empty(),
        "{} of {total} queries failed during reloads: {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
    let st = status(&s);
    assert!(st["generation"].as_u64().unwrap_or(0) >= 21, "{st}");
    assert!(s.stop().success());
}

// ---- command line ----------------------------------------------------------

#[test]
fn cli_check_good_and_bad() {
    let dir = scratch("cli-check");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), static_config("")).unwrap();
    let (code, out, err) = run(&dir, &["check", "--config", "signpost.toml"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ok"), "{out}");

    let bad = static_config("")
        .replace(
            "regions = [\"us-east\", \"eu-west\", \"ap-south\"]\npolicy = \"geo\"",
            "regions = [\"us-east\", \"eu-wets\", \"ap-south\"]\npolicy = \"geo\"",
        )
        .replace(
            "endpoints = [{ address = \"192.0.2.3\" }]",
            "check = \"nosuchcheck\"\nendpoints = [{ address = \"192.0.2.3\" }]",
        )
        + "\n[checks.slow]\ntype = \"tcp\"\nport = 80\ninterval = \"1s\"\ntimeout = \"1s\"\n";
    std::fs::write(dir.join("bad.toml"), bad).unwrap();
    let (code, out, err) = run(&dir, &["check", "--config", "bad.toml"], &[]);
    println!("{err}");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            r#"bad.toml: services."www.example.test.".regions[1]: unknown region "eu-wets""#
        ),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.contains("bad.toml")
            && l.contains("regions.ap-south.check")
            && l.contains("nosuchcheck")),
        "all errors are printed: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("bad.toml") && l.contains("checks.slow.timeout")),
        "all errors are printed: {err}"
    );

    // a missing file
    let (code, _, err) = run(&dir, &["check", "--config", "missing.toml"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.toml"), "{err}");
}

#[test]
fn cli_serve_bad_config_exits_1() {
    let dir = scratch("cli-serve-bad");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(
        dir.join("signpost.toml"),
        static_config("").replace("192.0.2.3", "192.0.2.300"),
    )
    .unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started with an invalid config"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", log.join("\n"));
            assert!(
                log.iter().any(|l| l.contains("192.0.2.300")),
                "{}",
                log.join("\n")
            );
        }
    }
}

#[test]
fn cli_dns_port_in_use_exits_2() {
    // UDP taken
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = udp.local_addr().unwrap();
    let cfg = static_config("").replace(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{taken}\"]"),
    );
    let dir = scratch("port-in-use-udp");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), &cfg).unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started on a UDP port in use ({taken})"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", log.join("\n"))
        }
    }
    drop(udp);
    // TCP taken
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = tcp.local_addr().unwrap();
    let cfg = static_config("").replace(
        "listen = [\"127.0.0.1:0\"]",
        &format!("listen = [\"{taken}\"]"),
    );
    let dir = scratch("port-in-use-tcp");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), &cfg).unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started on a TCP port in use ({taken})"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", log.join("\n"))
        }
    }
    drop(tcp);
    // admin port taken
    let adm = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = adm.local_addr().unwrap();
    let cfg = static_config("").replace("admin = \"127.0.0.1:0\"", &format!("admin = \"{taken}\""));
    let dir = scratch("port-in-use-admin");
    std::fs::write(dir.join("example.test.zone"), ZONE).unwrap();
    std::fs::write(dir.join("signpost.toml"), &cfg).unwrap();
    match Server::try_start_in(dir, &["serve", "--config", "signpost.toml"]) {
        Ok(_) => panic!("serve started on an admin port in use ({taken})"),
        Err((log, status)) => {
            assert_eq!(status.and_then(|s| s.code()), Some(2), "{}", log.join("\n"))
        }
    }
}

#[test]
fn sigterm_and_sigint_exit_0() {
    let s = start("sigterm", &static_config(""));
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");

    let s = start("sigint", &static_config(""));
    s.signal(libc::SIGINT);
    wait_until(Duration::from_secs(20), || {
        s.log().iter().any(|l| l.contains("shutting down"))
    })
    .expect("SIGINT starts a graceful stop");
    std::thread::sleep(Duration::from_millis(500));
    // (not reaped yet, so the SIGTERM of `stop` cannot hit another process)
    let status = s.stop();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn cli_ctl_status_drain_undrain() {
    let s = start("cli-ctl", &static_config(""));
    let a = s.admin_url();
    let dir = s.dir.clone();
    let (code, out, err) = run(&dir, &["ctl", "status", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    for r in ["us-east", "eu-west", "ap-south"] {
        assert!(out.contains(r), "ctl status names {r}:\n{out}");
    }
    let (code, out, err) = run(&dir, &["ctl", "status", "--json", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("ctl status --json");
    assert_eq!(v["regions"].as_array().unwrap().len(), 3);

    let (code, _, err) = run(&dir, &["ctl", "drain", "eu-west", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.1")]);
    let (code, out, _) = run(&dir, &["ctl", "status", "--admin", &a], &[]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("eu-west"))
        .unwrap_or_default();
    assert!(
        line.contains("yes") || line.contains("drain"),
        "eu-west shows drained: {line:?}\n{out}"
    );
    let (code, _, err) = run(&dir, &["ctl", "undrain", "eu-west", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);

    // endpoint drain from the command line
    let (code, _, err) = run(
        &dir,
        &["ctl", "drain", "--endpoint", "192.0.2.2", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.1")]);
    let (code, _, err) = run(
        &dir,
        &["ctl", "undrain", "--endpoint", "192.0.2.2", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);

    // errors
    let (code, _, err) = run(&dir, &["ctl", "drain", "nosuch", "--admin", &a], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("404") && err.contains("nosuch"),
        "the server's error: {err}"
    );
    let (code, _, err) = run(
        &dir,
        &["ctl", "drain", "eu-west", "--for", "banana", "--admin", &a],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("400"), "{err}");
    assert_eq!(s.a(WWW, Some(EU)), vec![ip("192.0.2.2")]);
    // no server there
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, _, err) = run(
        &dir,
        &["ctl", "status", "--admin", &format!("http://{dead}")],
        &[],
    );
    assert_eq!(code, 1, "{err}");

    // ctl reload
    write(
        &s.dir.join("signpost.toml"),
        &static_config("").replace("ttl = 30", "ttl = 42"),
    );
    let (code, out, err) = run(&dir, &["ctl", "reload", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("reloaded: generation "), "{out}");
    assert!(!out.contains("warning"), "{out}");
    assert_eq!(
        s.udp(&query(WWW, RecordType::A, Some(EU))).answers[0].ttl,
        42
    );
    // a key that only a restart applies: the reload says so
    write(
        &s.dir.join("signpost.toml"),
        &static_config("workers = 3").replace("ttl = 30", "ttl = 42"),
    );
    let (code, out, err) = run(&dir, &["ctl", "reload", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("warning: server.workers changed: it takes effect at the next restart"),
        "{out}"
    );
    let (code, out, err) = run(&dir, &["ctl", "reload", "--json", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["summary"]["warnings"].as_array().map(Vec::len),
        Some(0),
        "{out}"
    );
    write(&s.dir.join("signpost.toml"), "[server\n");
    let (code, _, err) = run(&dir, &["ctl", "reload", "--admin", &a], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("signpost.toml"),
        "the reload errors are shown: {err}"
    );
    assert!(s.stop().success());
}

#[test]
fn cli_explain_from_config_and_from_admin() {
    let s = start("cli-explain", &static_config(""));
    let dir = s.dir.clone();
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--config",
            "signpost.toml",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("explain JSON ({e}): {out}"));
    assert_eq!(v["answer"], serde_json::json!(["192.0.2.2"]), "{v}");
    assert_eq!(v["client"]["country"], "NL", "{v}");
    assert_eq!(v["scope"], 20, "{v}");

    // from the running server, which sees the drain
    let a = s.admin_url();
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &a,
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("explain JSON ({e}): {out}"));
    assert_eq!(v["answer"], serde_json::json!(["192.0.2.1"]), "{v}");
    // without --json, for people: the answer and the drained region
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &a,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("answer: 192.0.2.1"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("eu-west") && l.contains("drained")),
        "{out}"
    );

    // errors
    let (code, _, err) = run(
        &dir,
        &[
            "explain",
            "nosuch.example.test",
            "--client",
            "193.0.6.1",
            "--config",
            "signpost.toml",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(
        &dir,
        &[
            "explain",
            "nosuch.example.test",
            "--client",
            "193.0.6.1",
            "--admin",
            &a,
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("404"), "{err}");
    let (code, _, _) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "banana",
            "--config",
            "signpost.toml",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(s.stop().success());
}

#[test]
fn drains_survive_a_reload_and_go_with_their_region() {
    let s = start("drain-reload", &static_config(""));
    let a = s.admin_url();
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    call(
        "POST",
        &format!("{a}/v1/endpoints/192.0.2.3/drain"),
        None,
        200,
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    // an unrelated change
    write(
        &s.dir.join("signpost.toml"),
        &static_config("").replace("ttl = 30", "ttl = 42"),
    );
    call("POST", &format!("{a}/v1/reload"), None, 200);
    let r = s.udp(&query(WWW, RecordType::A, Some(EU)));
    assert_eq!(r.answers[0].ttl, 42, "reloaded");
    assert_eq!(
        addresses(&r),
        vec![ip("192.0.2.1")],
        "the operator's drain stays after a reload"
    );
    let st = status(&s);
    assert_eq!(region(&st, "eu-west")["drained"], true, "{st}");
    assert_eq!(
        endpoint(&st, "ap-south", "192.0.2.3")["drained"],
        true,
        "{st}"
    );
    let m = get_json(&format!(
        "{a}/v1/explain?name=mapped.example.test&type=A&client=193.0.6.1"
    ));
    assert_eq!(
        m["answer"],
        serde_json::json!(["192.0.2.1"]),
        "ap-south's only endpoint is drained: {m}"
    );
    call(
        "DELETE",
        &format!("{a}/v1/endpoints/192.0.2.3/drain"),
        None,
        200,
    );
    // A region that leaves the configuration takes its drain with it.
    let without = static_config("")
        .replace("\"eu-west\", ", "")
        .replace(", \"eu-west\"]", "]")
        .replace(
        "[regions.eu-west]\nlocation = { lat = 53.35, lon = -6.26 }\nendpoints = [{ address = \"192.0.2.2\" }]\n",
        "",
    );
    assert!(!without.contains("eu-west"), "{without}");
    write(&s.dir.join("signpost.toml"), &without);
    call("POST", &format!("{a}/v1/reload"), None, 200);
    assert_error(
        "DELETE",
        &format!("{a}/v1/regions/eu-west/drain"),
        None,
        404,
    );
    write(&s.dir.join("signpost.toml"), &static_config(""));
    call("POST", &format!("{a}/v1/reload"), None, 200);
    assert_eq!(
        answer(&s, WWW, RecordType::A, EU).0,
        vec![ip("192.0.2.2")],
        "a new eu-west is not drained"
    );
    assert!(s.stop().success());
}

#[test]
fn draining_every_region_answers_nothing_not_fail_open() {
    let s = start("drain-all", &static_config(""));
    let a = s.admin_url();
    for r in ["us-east", "eu-west", "ap-south"] {
        call("POST", &format!("{a}/v1/regions/{r}/drain"), None, 200);
    }
    for ecs in [EU, US] {
        let r = s.udp(&query(WWW, RecordType::A, Some(ecs)));
        assert_eq!(r.response_code, ResponseCode::NoError, "{r:?}");
        assert!(
            addresses(&r).is_empty(),
            "drained endpoints are never answered: {:?}",
            addresses(&r)
        );
        assert!(
            r.authorities
                .iter()
                .any(|x| x.record_type() == RecordType::SOA),
            "NODATA carries the SOA: {r:?}"
        );
    }
    call(
        "DELETE",
        &format!("{a}/v1/regions/us-east/drain"),
        None,
        200,
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    assert!(s.stop().success());
}

#[test]
fn drain_parameters() {
    let s = start("drain-params", &static_config(""));
    let a = s.admin_url();
    call(
        "POST",
        &format!("{a}/v1/regions/eu-west/drain?for=10m"),
        None,
        200,
    );
    let st = status(&s);
    let until = region(&st, "eu-west")["drain_until"].clone();
    assert!(
        until.is_string(),
        "a drain with expiry shows when it ends: {st}"
    );
    // a plain drain replaces it, without expiry
    call("POST", &format!("{a}/v1/regions/eu-west/drain"), None, 200);
    let st = status(&s);
    assert!(region(&st, "eu-west")["drain_until"].is_null(), "{st}");
    call(
        "DELETE",
        &format!("{a}/v1/regions/eu-west/drain"),
        None,
        200,
    );
    for q in ["for=0s", "for=-5m", "for=", "foo=1", "for=10x"] {
        assert_error(
            "POST",
            &format!("{a}/v1/regions/eu-west/drain?{q}"),
            None,
            400,
        );
        assert_error(
            "POST",
            &format!("{a}/v1/endpoints/192.0.2.2/drain?{q}"),
            None,
            400,
        );
    }
    call(
        "POST",
        &format!("{a}/v1/endpoints/192.0.2.2/drain?for=1s"),
        None,
        200,
    );
    assert_eq!(answer(&s, WWW, RecordType::A, EU).0, vec![ip("192.0.2.1")]);
    wait_until(Duration::from_secs(15), || {
        answer(&s, WWW, RecordType::A, EU).0 == [ip("192.0.2.2")]
    })
    .expect("an endpoint drain ?for=1s expires");
    let st = status(&s);
    for r in st["regions"].as_array().unwrap() {
        assert_eq!(r["drained"], false, "{st}");
    }
    assert!(s.stop().success());
}

#[test]
fn metrics_counters_survive_a_reload() {
    let s = start("metrics-reload", &static_config(""));
    let a = s.admin_url();
    let answers = |s: &Server| {
        metric(
            &metrics(s),
            "signpost_answers_total",
            &[("service", WWW), ("region", "eu-west")],
        )
    };
    for _ in 0..10 {
        s.a(WWW, Some(EU));
    }
    let before = answers(&s).expect("answers counted");
    assert!(before >= 10.0, "{before}");
    call("POST", &format!("{a}/v1/reload"), None, 200);
    let after = answers(&s).expect("answers counted after a reload");
    assert!(
        after >= before,
        "signpost_answers_total went from {before} to {after} over a reload"
    );
    s.a(WWW, Some(EU));
    let after2 = answers(&s).unwrap();
    assert!(after2 >= after + 1.0, "{after} -> {after2}");
    assert!(s.stop().success());
}

/// Every snapshot publish (drain, undrain, health change, reload, drain
/// expiry) must not make `signpost_endpoint_up` series disappear from a
/// concurrent scrape.
#[test]
fn metrics_endpoint_gauges_never_vanish_during_a_publish() {
    let s = start("metrics-gaps", &static_config(""));
    let a = s.admin_url();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let a2 = a.clone();
    // Drains republish the snapshot (and the endpoint gauges) each time.
    let toggler = std::thread::spawn(move || {
        let mut i = 0;
        while !stop2.load(Ordering::SeqCst) && i < 5000 {
            let m = if i % 2 == 0 { "POST" } else { "DELETE" };
            let (code, body) = http(m, &format!("{a2}/v1/endpoints/192.0.2.3/drain"), None);
            assert_eq!(code, 200, "{body}");
            i += 1;
        }
        i
    });
    let mut missing = Vec::new();
    for i in 0..300 {
        let m = metrics(&s);
        for (r, addr) in [
            ("us-east", "192.0.2.1"),
            ("eu-west", "192.0.2.2"),
            ("ap-south", "192.0.2.3"),
        ] {
            if metric(
                &m,
                "signpost_endpoint_up",
                &[("region", r), ("address", addr)],
            )
            .is_none()
            {
                missing.push(format!(
                    "scrape {i}: no signpost_endpoint_up for {r} {addr}"
                ));
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let publishes = toggler.join().unwrap();
    assert!(
        missing.is_empty(),
        "{} gaps in 300 scrapes during {publishes} drain/undrain calls: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(s.stop().success());
}

/// RFC 7235 §2.1: the auth-scheme is case-insensitive.
#[test]
fn bearer_scheme_is_case_insensitive() {
    let s = start("token-case", &static_config(r#"admin_token = "s3cret""#));
    let a = s.admin_url();
    let url = format!("{a}/v1/regions/eu-west/drain");
    for scheme in ["bearer", "BEARER"] {
        let mut c = TcpStream::connect(s.admin.unwrap()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            c,
            "POST /v1/regions/eu-west/drain HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} s3cret\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        let _ = c.read_to_string(&mut resp);
        assert!(resp.starts_with("HTTP/1.1 200"), "{scheme}: {resp}");
        call("DELETE", &url, Some("s3cret"), 200);
    }
    assert!(s.stop().success());
}
