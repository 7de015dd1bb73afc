//! Production-scale reloads (issue 10): a GeoIP file replaced on disk (good,
//! truncated, not a MaxMind DB), picked up by the watcher or by a reload;
//! probe targets that keep their state when only their timing changes; and
//! a 200-service configuration on GeoLite2-City reloaded under query load
//! while health changes keep reaching the answers.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::large::{geolite2, large_config};
use common::mmdb::tiny_db;
use common::*;
use hickory_proto::rr::RecordType;

const AMSTERDAM_NET: &str = "193.0.6.0/24";
const DUBLIN_EP: &str = "192.0.2.2";
const MUMBAI_EP: &str = "192.0.2.3";

/// The demo database with Amsterdam's networks moved to Mumbai.
fn moved_db() -> Vec<u8> {
    tiny_db(&[("193.0.0.0/16", "IN", "AS", 19.08, 72.88)])
}

/// Replaces `path` the way geoipupdate does: a new file renamed into place.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn two_region_config(watch: bool) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "geo.mmdb"
watch = {watch}

[zones."example.test."]
file = "example.test.zone"

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "{DUBLIN_EP}" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
endpoints = [{{ address = "{MUMBAI_EP}" }}]

[services."www.example.test."]
regions = ["eu-west", "ap-south"]
"#
    )
}

fn start_two_regions(name: &str, watch: bool) -> Server {
    let dir = scratch(name);
    std::fs::copy(GEOIP, dir.join("geo.mmdb")).unwrap();
    write(&dir.join("example.test.zone"), ZONE);
    write(&dir.join("signpost.toml"), &two_region_config(watch));
    Server::start_in(dir, &["serve", "--config", "signpost.toml"])
}

fn www(s: &Server) -> Vec<IpAddr> {
    s.a("www.example.test.", Some(AMSTERDAM_NET))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A metric's value from `/metrics` (0 when absent).
fn metric(s: &Server, name: &str) -> f64 {
    let (_, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[test]
fn a_database_replaced_on_disk_is_picked_up_and_a_bad_one_is_refused() {
    let mut s = start_two_regions("geo-watch", true);
    let path = s.dir.join("geo.mmdb");
    assert_eq!(www(&s), vec![ip(DUBLIN_EP)]);
    assert_eq!(metric(&s, "signpost_geoip_reload_failures_total"), 0.0);

    // a good new file: Amsterdam's networks now locate in Mumbai
    replace(&path, &moved_db());
    let took = wait_until(Duration::from_secs(15), || www(&s) == vec![ip(MUMBAI_EP)]);
    assert!(took.is_some(), "the new database was not picked up");

    // a truncated file and a file that is no MaxMind DB: refused, counted,
    // and the last good database keeps serving
    let good = moved_db();
    replace(&path, &good[..good.len() / 2]);
    assert!(
        wait_until(Duration::from_secs(15), || {
            metric(&s, "signpost_geoip_reload_failures_total") >= 1.0
        })
        .is_some(),
        "a truncated database is counted as a failure"
    );
    assert_eq!(www(&s), vec![ip(MUMBAI_EP)]);
    replace(&path, b"this is not a MaxMind database\n");
    assert!(
        wait_until(Duration::from_secs(15), || {
            metric(&s, "signpost_geoip_reload_failures_total") >= 2.0
        })
        .is_some(),
        "a foreign file is counted as a failure"
    );
    assert_eq!(www(&s), vec![ip(MUMBAI_EP)]);
    assert!(s.alive());
    let log = s.log().join("\n");
    assert!(
        log.contains("still serving the previous GeoIP database"),
        "{log}"
    );

    // the demo database again: back to Dublin
    let demo = std::fs::read(GEOIP).unwrap();
    replace(&path, &demo);
    assert!(
        wait_until(Duration::from_secs(15), || www(&s) == vec![ip(DUBLIN_EP)]).is_some(),
        "the good database was not picked up after the bad ones"
    );
    assert!(s.stop().success());
}

#[test]
fn without_watch_a_new_database_waits_for_a_reload() {
    let s = start_two_regions("geo-nowatch", false);
    let path = s.dir.join("geo.mmdb");
    replace(&path, &moved_db());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(www(&s), vec![ip(DUBLIN_EP)], "watch = false: no change");

    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["summary"]["geoip_reloaded"], true, "{body}");
    assert_eq!(www(&s), vec![ip(MUMBAI_EP)]);

    // a reload that leaves the file alone does not compile it again
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["summary"]["geoip_reloaded"], false, "{body}");

    // a broken file: the reload fails, naming the key, and nothing changes
    replace(&path, b"\x00\x01garbage");
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("geoip.database"), "{body}");
    assert_eq!(www(&s), vec![ip(MUMBAI_EP)]);
    assert_eq!(metric(&s, "signpost_geoip_reload_failures_total"), 1.0);
    assert!(s.stop().success());
}

#[test]
fn changing_a_checks_timing_keeps_the_targets_health_and_since() {
    let lb = FakeLb::start("127.93.0.1:0".parse().unwrap());
    lb.set(LbMode::Fail);
    let port = lb.addr.port();
    let config = |interval: &str, timeout: &str, rise: u32, fall: u32, path: &str| {
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
path = "{path}"
interval = "{interval}"
timeout = "{timeout}"
rise = {rise}
fall = {fall}

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.93.0.1" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
endpoints = [{{ address = "{MUMBAI_EP}" }}]

[services."www.example.test."]
regions = ["eu-west", "ap-south"]
policy = "failover"
"#
        )
    };
    let s = Server::start(
        "timing",
        &config("1s", "500ms", 2, 2, "/health"),
        &[("example.test.zone", ZONE)],
    );
    let endpoint = |s: &Server| {
        let st = get_json(&format!("{}/v1/status", s.admin_url()));
        st["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "eu-west")
            .unwrap()["endpoints"][0]
            .clone()
    };
    let before = endpoint(&s);
    assert_eq!(before["healthy"], false, "{before}");
    assert_eq!(www(&s), vec![ip(MUMBAI_EP)]);
    std::thread::sleep(Duration::from_millis(1100)); // a later `since` would show

    // interval, timeout, rise and fall change: the same target, updated
    write(
        &s.dir.join("signpost.toml"),
        &config("2s", "1s", 3, 1, "/health"),
    );
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let sum = &v["summary"];
    assert_eq!(
        (
            &sum["targets_kept"],
            &sum["targets_updated"],
            &sum["targets_added"],
            &sum["targets_removed"]
        ),
        (&1.into(), &1.into(), &0.into(), &0.into()),
        "{body}"
    );
    let after = endpoint(&s);
    assert_eq!(after["healthy"], false, "{after}");
    assert_eq!(after["since"], before["since"], "since is kept");

    // the new interval is what runs now: about two probes in 4.5 s, not four
    let hits = lb.hits();
    std::thread::sleep(Duration::from_millis(4500));
    let n = lb.hits() - hits;
    assert!((1..=3).contains(&n), "{n} probes in 4.5 s at interval 2s");

    // and the new rise (3) applies: recovery takes three passes (the
    // rapid rise confirms them a quarter interval apart, so count them)
    let healed = Instant::now();
    lb.set(LbMode::Ok);
    assert!(
        wait_until(Duration::from_secs(15), || www(&s)
            == vec![ip("127.93.0.1")])
        .is_some(),
        "recovered"
    );
    let back = Instant::now();
    let passes = lb
        .answered()
        .iter()
        .filter(|&&(t, ok)| ok && t >= healed && t <= back)
        .count();
    assert!(
        passes >= 3,
        "rise 3 needs three passes, came back after {passes}"
    );

    // a different path is a different target: it starts afresh
    write(
        &s.dir.join("signpost.toml"),
        &config("2s", "1s", 3, 1, "/other"),
    );
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["summary"]["targets_added"], 1, "{body}");
    assert_eq!(v["summary"]["targets_removed"], 1, "{body}");
    assert!(s.stop().success());
}

#[test]
fn a_large_configuration_reloads_under_load_and_health_keeps_flowing() {
    let Some(geolite) = geolite2() else {
        eprintln!(
            "SKIPPED: no GeoLite2-City database (pip install maxminddb-geolite2, or set SIGNPOST_TEST_MMDB)"
        );
        return;
    };
    let mut lb = FakeLb::start("127.94.0.1:0".parse().unwrap());
    let port = lb.addr.port();
    let dir = scratch("large");
    std::fs::copy(&geolite, dir.join("geo.mmdb")).unwrap();
    let (cfg, zone) = large_config(port, "us-east-1", false);
    write(&dir.join("example.test.zone"), &zone);
    write(&dir.join("signpost.toml"), &cfg);
    let s = Arc::new(Server::start_in(
        dir.clone(),
        &["serve", "--config", "signpost.toml"],
    ));
    let nl = Some(AMSTERDAM_NET);
    assert_eq!(s.a("svc0.example.test.", nl), vec![ip("127.94.0.1")]);
    assert_eq!(
        s.a("host19999.example.test.", None),
        vec![ip("192.0.2.250")]
    );

    // query load: services over clients on four continents, each query
    // waiting for its answer; a query without one is lost
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let lost = Arc::new(AtomicUsize::new(0));
    let load = {
        let (s, stop, sent, lost) = (s.clone(), stop.clone(), sent.clone(), lost.clone());
        std::thread::spawn(move || {
            let clients = [
                "193.0.6.0/24",
                "24.24.24.0/24",
                "49.207.0.0/24",
                "200.147.0.0/24",
            ];
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                let name = format!("svc{}.example.test.", i % 200);
                let mut q = query(&name, RecordType::A, Some(clients[i % 4]));
                q.metadata.id = i as u16;
                sock.send_to(&q.to_vec().unwrap(), s.dns).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 1500];
                let mut got = false;
                while let Ok((n, _)) = sock.recv_from(&mut buf) {
                    if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == i as u16 {
                        got = true;
                        break;
                    }
                }
                if !got {
                    lost.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
            }
        })
    };

    // the reload: a new database file (compiled again) and svc0 now sends
    // NL clients to eu-west-1
    let (cfg, _) = large_config(port, "eu-west-1", false);
    std::fs::copy(&geolite, dir.join("geo.new")).unwrap();
    std::fs::rename(dir.join("geo.new"), dir.join("geo.mmdb")).unwrap();
    write(&dir.join("signpost.toml"), &cfg);
    let reload = {
        let url = format!("{}/v1/reload", s.admin_url());
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = http("POST", &url, None);
            (r, t.elapsed())
        })
    };
    // while it compiles, us-east-1 fails: svc1's American clients move
    let us = Some("24.24.24.0/24");
    assert_eq!(s.a("svc1.example.test.", us), vec![ip("127.94.0.1")]);
    let t = Instant::now();
    lb.kill();
    let moved = wait_until(Duration::from_secs(10), || {
        s.a("svc1.example.test.", us) != vec![ip("127.94.0.1")]
    });
    let moved = moved.unwrap_or_else(|| panic!("the failure never reached the answers"));
    let reload_done_first = reload.is_finished();
    let ((code, body), took) = reload.join().unwrap();
    assert_eq!(code, 200, "{body}");
    eprintln!(
        "failover during the reload: {moved:?} after the failure ({:?} after it began); the reload took {took:?}",
        t.elapsed()
    );
    assert!(
        moved < Duration::from_secs(5),
        "failover took {moved:?} during a reload"
    );
    assert!(
        !reload_done_first,
        "the health change must reach the answers while the reload is still compiling"
    );
    assert_eq!(s.a("svc0.example.test.", nl), vec![ip("127.94.0.7")]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["summary"]["geoip_reloaded"], true, "{body}");

    stop.store(true, Ordering::SeqCst);
    load.join().unwrap();
    let (sent, lost) = (sent.load(Ordering::SeqCst), lost.load(Ordering::SeqCst));
    eprintln!("{sent} queries during the test, {lost} lost");
    assert!(sent > 100, "{sent} queries");
    assert_eq!(lost, 0, "{lost} of {sent} queries went unanswered");
    let s = Arc::try_unwrap(s).unwrap_or_else(|_| panic!("server still shared"));
    assert!(s.stop().success());
}
