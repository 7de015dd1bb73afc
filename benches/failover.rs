//! Failover speed: how long a client of a failed region keeps getting it,
//! and how long after recovery it comes back, for three failure modes
//! (HTTP 503, process gone = connection refused, accept-and-hang =
//! timeout). Real binary, real HTTP load balancers on loopback, real DNS.
//! Interval 1 s, timeout 500 ms, rise 2, fall 2. The issue's bound is
//! fall x interval + 1 s to leave and rise x interval + 1 s to return;
//! gdnsd 3.8 (interval 2 s, thresholds 2) took 3.7-4.3 s and 3.7-3.9 s.
//!
//! `cargo bench --bench failover` (`-- 10` for ten trials per mode).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{FakeLb, GEOIP, LbMode, Server, ZONE};

const EU_CLIENT: &str = "193.0.6.0/24";

fn config(port: u16) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[geoip]
database = "{GEOIP}"
[zones."example.test."]
file = "example.test.zone"
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.93.1.1" }}]
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.93.2.1" }}]
[services."www.example.test."]
regions = ["us-east", "eu-west"]
ttl = 5
"#
    )
}

/// Polls every 20 ms until the answer is `want`; the time it took.
fn until(s: &Server, want: IpAddr, limit: Duration) -> Option<f64> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if s.a("www.example.test.", Some(EU_CLIENT)) == vec![want] {
            return Some(start.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn stats(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    format!(
        "{:.2} / {:.2} / {:.2}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

fn main() {
    let trials: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let us = FakeLb::start("127.93.1.1:0".parse().unwrap());
    let port = us.addr.port();
    let mut eu = FakeLb::start(SocketAddr::new("127.93.2.1".parse().unwrap(), port));
    us.set(LbMode::Ok);
    let s = Server::start(
        "bench-failover",
        &config(port),
        &[("example.test.zone", ZONE)],
    );
    let (eu_ip, us_ip): (IpAddr, IpAddr) =
        ("127.93.2.1".parse().unwrap(), "127.93.1.1".parse().unwrap());
    assert_eq!(
        s.a("www.example.test.", Some(EU_CLIENT)),
        vec![eu_ip],
        "EU client starts on eu-west"
    );

    println!(
        "failover of eu-west seen by an EU client; interval 1s, timeout 500ms, rise 2, fall 2; {trials} trials"
    );
    println!(
        "{:<22} {:>22} {:>22}",
        "mode", "leave s (min/med/max)", "return s (min/med/max)"
    );
    let limit = Duration::from_secs(10);
    for mode in ["http 503", "connection refused", "timeout (hang)"] {
        let (mut leave, mut back) = (Vec::new(), Vec::new());
        for _ in 0..trials {
            // break at a random point of the probe cycle
            let jitter = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_millis() % 700);
            std::thread::sleep(Duration::from_millis(300 + u64::from(jitter)));
            match mode {
                "http 503" => eu.set(LbMode::Fail),
                "connection refused" => eu.kill(),
                _ => eu.set(LbMode::Hang),
            }
            leave.extend(until(&s, us_ip, limit));
            std::thread::sleep(Duration::from_millis(200));
            eu.revive();
            eu.set(LbMode::Ok);
            back.extend(until(&s, eu_ip, limit));
        }
        println!(
            "{mode:<22} {:>22} {:>22}",
            stats(&mut leave),
            stats(&mut back)
        );
    }
    println!("bounds: leave <= fall x interval + 1 s = 3 s; return <= rise x interval + 1 s = 3 s");
}
