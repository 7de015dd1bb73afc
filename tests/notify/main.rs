//! Webhook notifications, black box (SPEC §11): the real binary, a real
//! HTTP receiver on loopback that fails, hangs, is down and recovers,
//! events made through the admin API and a real health check, and real
//! DNS queries timed while the receiver hangs.
//!
//! Fake load balancers use 127.99.N.0/24 with a distinct N per test.

#[path = "../common/mod.rs"]
mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::webhook::{Delivery, Receiver};
use common::*;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const WWW: &str = "www.example.test.";
/// Long enough for a few back-offs after a receiver comes back.
const ARRIVE: Duration = Duration::from_secs(45);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// eu-west (127.99.N.1, checked: interval 200ms, rise and fall 1) first,
/// then us-east (192.0.2.1, unchecked) for www; then `hooks`.
fn config(n: u8, port: u16, hooks: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[zones."example.test."]
file = "example.test.zone"

[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "200ms"
timeout = "150ms"
rise = 1
fall = 1

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.99.{n}.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}]

[services."www.example.test."]
regions = ["eu-west", "us-east"]
policy = "failover"
ttl = 5
{hooks}"#
    )
}

fn hook(r: &Receiver, extra: &str) -> String {
    format!("\n[[notify.webhook]]\nurl = \"{}\"\n{extra}\n", r.url())
}

/// A fake load balancer for eu-west and signpost with `hooks`.
fn start(name: &str, n: u8, hooks: &str) -> (Server, FakeLb) {
    let lb = FakeLb::start(format!("127.99.{n}.1:0").parse().unwrap());
    let s = Server::start(
        name,
        &config(n, lb.addr.port(), hooks),
        &[("example.test.zone", ZONE)],
    );
    assert_eq!(s.a(WWW, None), vec![ip(&format!("127.99.{n}.1"))]);
    (s, lb)
}

/// `POST /v1/reload` of the unchanged file; the generation it serves.
fn reload(s: &Server) -> u64 {
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "reload: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["summary"]["generation"].as_u64().unwrap()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn metric(s: &Server, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, text) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Each delivery as (event, what tells it apart): a reload's generation,
/// a health event's kind and health.
fn summary(got: &[Delivery]) -> Vec<Value> {
    got.iter()
        .map(|d| {
            let v = d.json();
            assert_eq!(d.header("x-signpost-event"), v["event"].as_str(), "{v}");
            match v["event"].as_str() {
                Some("reload") => json!(["reload", v["generation"]]),
                Some("health") => json!(["health", v["kind"], v["healthy"]]),
                _ => v,
            }
        })
        .collect()
}

#[test]
fn failed_deliveries_are_retried_in_order_and_none_is_lost() {
    let r = Receiver::start();
    let (s, _lb) = start("notify-retry", 1, &hook(&r, "events = [\"reload\"]"));
    r.fail_next(3);
    let gens: Vec<u64> = (0..5).map(|_| reload(&s)).collect();
    let got = r.wait_for(5, ARRIVE);
    let want: Vec<Value> = gens.iter().map(|g| json!(["reload", g])).collect();
    assert_eq!(summary(&got), want, "in order, each once");
    assert_eq!(r.attempts(), 8, "three 500s, each retried");
    for d in &got {
        assert_eq!(d.header("content-type"), Some("application/json"));
        assert!(d.header("x-signpost-signature").is_none(), "no secret");
    }
    // every try of one event carries the same id; each event its own
    let ids: std::collections::BTreeSet<&str> = got
        .iter()
        .filter_map(|d| d.header("x-signpost-id"))
        .collect();
    assert_eq!(ids.len(), 5);
    let l = [("webhook", "0")];
    assert_eq!(
        metric(
            &s,
            "signpost_webhook_deliveries_total",
            &[l[0], ("result", "ok")]
        ),
        5.0
    );
    assert_eq!(
        metric(
            &s,
            "signpost_webhook_deliveries_total",
            &[l[0], ("result", "failed")]
        ),
        3.0
    );
    assert_eq!(metric(&s, "signpost_webhook_queued", &l), 0.0);
    assert!(s.stop().success());
}

#[test]
fn a_hanging_receiver_delays_neither_answers_nor_the_control_loop() {
    let r = Receiver::start();
    r.hang(true);
    let n = 2;
    let (s, lb) = start(
        "notify-hang",
        n,
        &hook(&r, "events = [\"reload\", \"health\"]\ntimeout = \"1s\""),
    );
    let dns = s.dns;
    // queries all along, from another thread
    let queries = std::thread::spawn(move || {
        let q = query(WWW, RecordType::A, None);
        let mut took = Vec::new();
        for _ in 0..300 {
            let start = Instant::now();
            let reply = udp_exchange(dns, &q.to_vec().unwrap());
            took.push((start.elapsed(), reply.is_some()));
            std::thread::sleep(Duration::from_millis(10));
        }
        took
    });
    // meanwhile: reloads, a drain and a health change, each prompt
    let mut gens = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        gens.push(reload(&s));
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "reload took {:?}",
            t.elapsed()
        );
    }
    let admin = s.admin_url();
    let t = Instant::now();
    let (code, body) = http("POST", &format!("{admin}/v1/regions/us-east/drain"), None);
    assert_eq!(code, 200, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "drain took {:?}",
        t.elapsed()
    );
    let (code, body) = http("DELETE", &format!("{admin}/v1/regions/us-east/drain"), None);
    assert_eq!(code, 200, "{body}");
    lb.set(LbMode::Fail);
    assert!(
        wait_until(Duration::from_secs(3), || s.a(WWW, None)
            == vec![ip("192.0.2.1")])
        .is_some(),
        "the loop published eu-west's failure"
    );
    let took = queries.join().unwrap();
    assert!(
        took.iter().all(|(_, answered)| *answered),
        "every query answered"
    );
    let mut times: Vec<Duration> = took.iter().map(|(t, _)| *t).collect();
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    println!(
        "while the receiver hangs: median {:?}, p99 {p99:?}, max {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert!(p99 < Duration::from_millis(50), "p99 {p99:?}");
    assert!(r.got().is_empty());
    assert!(r.attempts() >= 1, "the receiver was tried");

    // it recovers: everything queued arrives, in the order it happened
    r.hang(false);
    let got = r.wait_for(5, ARRIVE);
    let mut want: Vec<Value> = gens.iter().map(|g| json!(["reload", g])).collect();
    want.push(json!(["health", "endpoint", false]));
    want.push(json!(["health", "region", false]));
    assert_eq!(summary(&got), want);
    let down = got[3].json();
    assert_eq!(down["region"], "eu-west");
    assert_eq!(down["address"], format!("127.99.{n}.1"));
    assert_eq!(down["reason"], "status 503");
    assert!(s.stop().success());
}

#[test]
fn a_receiver_that_is_down_gets_everything_once_it_is_up() {
    let mut r = Receiver::down();
    let (s, _lb) = start("notify-down", 3, &hook(&r, ""));
    let gens: Vec<u64> = (0..3).map(|_| reload(&s)).collect();
    let failed = || {
        metric(
            &s,
            "signpost_webhook_deliveries_total",
            &[("result", "failed")],
        )
    };
    assert!(
        wait_until(Duration::from_secs(10), || failed() >= 2.0).is_some(),
        "tries while it is down"
    );
    assert_eq!(
        metric(&s, "signpost_webhook_queued", &[("webhook", "0")]),
        3.0
    );
    r.revive();
    let got = r.wait_for(3, ARRIVE);
    let want: Vec<Value> = gens.iter().map(|g| json!(["reload", g])).collect();
    assert_eq!(summary(&got), want);
    assert!(s.stop().success());
}

#[test]
fn deliveries_are_signed_and_filtered_by_kind() {
    const SECRET: &str = "9c1d3e0ab7";
    let signed = Receiver::start();
    let health = Receiver::start();
    let hooks = format!(
        "{}{}",
        hook(
            &signed,
            &format!("events = [\"reload\"]\nsecret = \"{SECRET}\"")
        ),
        hook(&health, "events = [\"health\"]")
    );
    let (s, lb) = start("notify-signed", 4, &hooks);
    let good = reload(&s);
    // a bad configuration: the reload fails, and says why
    let path = s.dir.join("signpost.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    write(&path, &text.replace("ttl = 5", "ttl = -5"));
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 400, "{body}");
    write(&path, &text);
    lb.set(LbMode::Fail);
    let got = signed.wait_for(2, ARRIVE);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    for d in &got {
        let sig = d.header("x-signpost-signature").expect("signed");
        let hex = sig.strip_prefix("sha256=").expect("sha256=<hex>");
        let tag = data_encoding::HEXLOWER.decode(hex.as_bytes()).expect("hex");
        assert!(
            ring::hmac::verify(&key, &d.body, &tag).is_ok(),
            "the signature is of the raw body"
        );
    }
    let (ok, bad) = (got[0].json(), got[1].json());
    for v in [&ok, &bad] {
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["event", "at", "node", "ok", "from", "generation", "errors"],
            "{v}"
        );
        assert!(v["at"].as_str().unwrap().ends_with('Z'), "{v}");
        assert_eq!(v["from"], "127.0.0.1", "{v}");
    }
    assert_eq!(
        (ok["ok"].clone(), ok["generation"].as_u64()),
        (json!(true), Some(good))
    );
    assert_eq!(ok["errors"], json!([]));
    assert_eq!(
        (bad["ok"].clone(), bad["generation"].clone()),
        (json!(false), Value::Null)
    );
    let errors = bad["errors"].to_string();
    assert!(errors.contains("ttl"), "{errors}");

    let got = health.wait_for(2, ARRIVE);
    assert_eq!(
        summary(&got),
        [
            json!(["health", "endpoint", false]),
            json!(["health", "region", false])
        ]
    );
    assert!(
        got.iter()
            .all(|d| d.header("x-signpost-signature").is_none())
    );
    lb.set(LbMode::Ok);
    let got = health.wait_for(4, ARRIVE);
    assert_eq!(
        summary(&got[2..]),
        [
            json!(["health", "endpoint", true]),
            json!(["health", "region", true])
        ]
    );
    assert_eq!(got[2].json()["reason"], "status 200");
    // the signed one heard of nothing but reloads
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(signed.got().len(), 2);
    assert!(s.stop().success());
}

#[test]
fn a_full_queue_drops_its_oldest_and_counts_them() {
    let mut r = Receiver::down();
    let (s, _lb) = start("notify-full", 5, &hook(&r, "queue = 2"));
    let gens: Vec<u64> = (0..5).map(|_| reload(&s)).collect();
    let l = [("webhook", "0"), ("reason", "full")];
    assert_eq!(metric(&s, "signpost_webhook_dropped_total", &l), 3.0);
    assert_eq!(metric(&s, "signpost_webhook_queued", &l[..1]), 2.0);
    r.revive();
    let got = r.wait_for(2, ARRIVE);
    let want: Vec<Value> = gens[3..].iter().map(|g| json!(["reload", g])).collect();
    assert_eq!(summary(&got), want, "the newest two");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.got().len(), 2, "nothing else");
    assert!(
        s.log()
            .iter()
            .any(|l| l.contains("webhook 0 (127.0.0.1:") && l.contains("given up (full)")),
        "logged, by host only"
    );
    assert!(s.stop().success());
}

#[test]
fn webhooks_follow_a_reload() {
    let a = Receiver::start();
    let b = Receiver::start();
    let (s, _lb) = start("notify-reload", 6, &hook(&a, "events = [\"reload\"]"));
    let first = reload(&s);
    a.wait_for(1, ARRIVE);
    // a goes, b comes: the reload that makes the change is told to b
    let path = s.dir.join("signpost.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    write(&path, &text.replace(&a.url(), &b.url()));
    let second = reload(&s);
    let got = b.wait_for(1, ARRIVE);
    assert_eq!(summary(&got), [json!(["reload", second])]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        summary(&a.got()),
        [json!(["reload", first])],
        "a hears no more"
    );
    assert!(s.stop().success());
}

/// Each drain or dial delivery as [event, action, target or region].
fn ops(got: &[Delivery]) -> Vec<Value> {
    got.iter()
        .map(|d| {
            let v = d.json();
            match v["event"].as_str() {
                Some("drain") => json!(["drain", v["action"], v["target"]]),
                Some("dial") => json!(["dial", v["action"], v["region"], v["value"]]),
                _ => v,
            }
        })
        .collect()
}

#[test]
fn drains_dials_and_drills_are_told_in_order() {
    let r = Receiver::start();
    let (s, _lb) = start("notify-ops", 9, &hook(&r, "events = [\"drain\", \"dial\"]"));
    let admin = s.admin_url();
    let call = |method: &str, path: &str| {
        let (code, body) = http(method, &format!("{admin}{path}"), None);
        assert_eq!(code, 200, "{method} {path}: {body}");
    };
    call("POST", "/v1/regions/eu-west/drain?for=10m");
    call("DELETE", "/v1/regions/eu-west/drain");
    call("POST", "/v1/regions/eu-west/dial?value=0.25");
    call("DELETE", "/v1/regions/eu-west/dial");
    let soon =
        humantime::format_rfc3339_millis(std::time::SystemTime::now() + Duration::from_secs(2));
    call(
        "POST",
        &format!("/v1/regions/us-east/drain?at={soon}&for=2s"),
    );
    r.wait_for(7, ARRIVE);
    std::thread::sleep(Duration::from_millis(500));
    let got = r.got();
    assert_eq!(
        ops(&got),
        vec![
            json!(["drain", "drained", "region eu-west"]),
            json!(["drain", "undrained", "region eu-west"]),
            json!(["dial", "set", "eu-west", 0.25]),
            json!(["dial", "cleared", "eu-west", 0.25]),
            json!(["drain", "scheduled", "region us-east"]),
            json!(["drain", "started", "region us-east"]),
            json!(["drain", "expired", "region us-east"]),
        ],
        "{:?}",
        got.iter().map(Delivery::json).collect::<Vec<_>>()
    );
    let first = got[0].json();
    assert_eq!(first["for"], "10m", "{first}");
    let scheduled = got[4].json();
    assert_eq!(scheduled["for"], "2s", "{scheduled}");
    assert!(scheduled["starts"].is_string(), "{scheduled}");
    assert!(s.stop().success());
}
