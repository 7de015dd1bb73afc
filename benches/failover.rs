//! Failover speed: how long a client of a failed region keeps getting it,
//! and how long after recovery it comes back, for three failure modes
//! (HTTP 503, process gone = connection refused, accept-and-hang =
//! timeout). Real binary, real HTTP load balancers on loopback, real DNS.
//! Rise 2, fall 2; interval 1 s and timeout 500 ms by default.
//!
//! With `--gdnsd`, gdnsd 3.8 (the peers harness's configuration: plugin
//! geoip with `auto_dc_coords`, `http_status` checks, thresholds
//! up/ok/down 2/2/2) runs beside signpost against the same load balancers,
//! both on GeoLite2-City and with the same check timing (interval 2 s and
//! timeout 1 s unless `--interval` says otherwise): every failure and
//! every recovery is seen by both in the same trial.
//!
//! `cargo bench --bench failover` (`-- 10` for ten trials per mode;
//! `-- --gdnsd --interval 2` for the comparison of issue 20).
//!
//! signpost confirms a rise at the rapid pace only when the endpoint was
//! steady before (health::Tracker: up for 8 probes before it failed), so
//! each trial starts after 8 intervals of the endpoint being up.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{FakeLb, GEOIP, LbMode, Server, ZONE};
use hickory_proto::rr::RecordType;

const EU_CLIENT: &str = "193.0.6.0/24";
const US: &str = "127.93.1.1";
const EU: &str = "127.93.2.1";

struct Opts {
    trials: usize,
    interval: u64,
    gdnsd: bool,
}

fn opts() -> Opts {
    let mut o = Opts {
        trials: 5,
        interval: 0,
        gdnsd: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--gdnsd" => o.gdnsd = true,
            "--interval" => {
                o.interval = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--interval SECONDS")
            }
            _ => {
                if let Ok(n) = a.parse() {
                    o.trials = n;
                }
            }
        }
    }
    if o.interval == 0 {
        o.interval = if o.gdnsd { 2 } else { 1 };
    }
    o
}

fn config(port: u16, geoip: &str, interval: u64, timeout_ms: u64) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[geoip]
database = "{geoip}"
[zones."example.test."]
file = "example.test.zone"
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "{interval}s"
timeout = "{timeout_ms}ms"
rise = 2
fall = 2
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "{US}" }}]
[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "{EU}" }}]
[services."www.example.test."]
regions = ["us-east", "eu-west"]
ttl = 5
"#
    )
}

/// gdnsd 3.8 with the peers harness's configuration, on `dns`.
struct Gdnsd {
    child: Child,
    dns: SocketAddr,
    dir: PathBuf,
}

impl Gdnsd {
    fn start(dns: SocketAddr, lb_port: u16, geoip: &Path, interval: u64) -> Gdnsd {
        let dir = common::scratch("bench-failover-gdnsd");
        for d in ["etc/zones", "run", "state"] {
            std::fs::create_dir_all(dir.join(d)).expect("gdnsd dirs");
        }
        let (run, state) = (dir.join("run"), dir.join("state"));
        let config = format!(
            r#"options => {{
  listen => [ {dns} ]
  udp_threads => 1
  tcp_threads => 1
  run_dir => {run}
  state_dir => {state}
  edns_client_subnet => true
  zones_rfc1035_auto => false
}}
service_types => {{
  lbhealth => {{
    plugin => http_status
    port => {lb_port}
    url_path => /health
    ok_codes => [ 200 ]
    interval => {interval}
    timeout => 1
    up_thresh => 2
    ok_thresh => 2
    down_thresh => 2
  }}
}}
plugins => {{
  geoip => {{
    maps => {{
      world => {{
        geoip2_db => {geoip}
        datacenters => [ us-east, eu-west ]
        auto_dc_coords => {{
          us-east => [ 39.04, -77.49 ]
          eu-west => [ 53.35, -6.26 ]
        }}
      }}
    }}
    resources => {{
      www => {{
        map => world
        service_types => [ lbhealth ]
        dcmap => {{ us-east => {US}, eu-west => {EU} }}
      }}
    }}
  }}
}}
"#,
            run = run.display(),
            state = state.display(),
            geoip = geoip.display(),
        );
        std::fs::write(dir.join("etc/config"), config).expect("gdnsd config");
        std::fs::write(
            dir.join("etc/zones/example.test"),
            "$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 604800 300\n@ NS ns1\nns1 A 127.0.0.1\nwww 5/5 DYNA geoip!www\n",
        )
        .expect("gdnsd zone");
        let log = std::fs::File::create(dir.join("gdnsd.log")).expect("gdnsd log");
        let child = Command::new("gdnsd")
            .arg("-c")
            .arg(dir.join("etc"))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("gdnsd (apt-get install gdnsd)");
        Gdnsd { child, dns, dir }
    }

    fn a(&self) -> Option<Vec<IpAddr>> {
        let q = common::query("www.example.test.", RecordType::A, Some(EU_CLIENT));
        let bytes = q.to_vec().ok()?;
        common::udp_raw(self.dns, &bytes, Duration::from_millis(500))
            .and_then(|b| hickory_proto::op::Message::from_vec(&b).ok())
            .map(|m| common::addresses(&m))
    }
}

impl Drop for Gdnsd {
    fn drop(&mut self) {
        if self.child.kill().and_then(|()| self.child.wait()).is_err() {
            eprintln!("gdnsd: could not stop it; log in {}", self.dir.display());
        }
    }
}

/// The servers under test: signpost, and gdnsd when asked.
struct Servers {
    signpost: Server,
    gdnsd: Option<Gdnsd>,
}

impl Servers {
    fn answers(&self) -> Vec<Option<Vec<IpAddr>>> {
        let mut v = vec![Some(self.signpost.a("www.example.test.", Some(EU_CLIENT)))];
        if let Some(g) = &self.gdnsd {
            v.push(g.a());
        }
        v
    }

    /// Polls every 20 ms until each server answers `want`; the time each
    /// took (None past `limit`).
    fn until(&self, want: IpAddr, limit: Duration) -> Vec<Option<f64>> {
        let start = Instant::now();
        let mut took = vec![None; self.answers().len()];
        while start.elapsed() < limit && took.iter().any(Option::is_none) {
            for (i, got) in self.answers().into_iter().enumerate() {
                if took[i].is_none() && got.as_deref() == Some(&[want][..]) {
                    took[i] = Some(start.elapsed().as_secs_f64());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        took
    }
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

/// Sub-second clock noise, for random points in the probe cycle.
fn noise_ms(range: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_micros()) % range.max(1))
}

fn main() {
    let o = opts();
    let us = FakeLb::start(SocketAddr::new(US.parse().unwrap(), 0));
    let port = us.addr.port();
    let mut eu = FakeLb::start(SocketAddr::new(EU.parse().unwrap(), port));
    us.set(LbMode::Ok);
    let geolite;
    let geoip: &str = if o.gdnsd {
        geolite = common::large::geolite2()
            .expect("--gdnsd needs GeoLite2-City (pip install maxminddb-geolite2)");
        geolite.to_str().expect("a UTF-8 path")
    } else {
        GEOIP
    };
    let timeout_ms = if o.gdnsd { 1000 } else { 500 }.min(o.interval * 1000 / 2);
    let signpost = Server::start(
        "bench-failover",
        &config(port, geoip, o.interval, timeout_ms),
        &[("example.test.zone", ZONE)],
    );
    let gdnsd = o.gdnsd.then(|| {
        let dns = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
        Gdnsd::start(dns, port, Path::new(geoip), o.interval)
    });
    let s = Servers { signpost, gdnsd };
    let names: Vec<&str> = if o.gdnsd {
        vec!["signpost", "gdnsd"]
    } else {
        vec!["signpost"]
    };
    let (eu_ip, us_ip): (IpAddr, IpAddr) = (EU.parse().unwrap(), US.parse().unwrap());
    let ready = s.until(eu_ip, Duration::from_secs(30));
    assert!(
        ready.iter().all(Option::is_some),
        "every server answers eu-west to the EU client at first: {ready:?}"
    );
    let iv = Duration::from_secs(o.interval);
    // steady before the first trial (see the module doc)
    std::thread::sleep(iv * 8);

    println!(
        "failover of eu-west seen by an EU client; interval {}s, timeout {timeout_ms}ms, rise 2, fall 2; {} trials; {}",
        o.interval,
        o.trials,
        names.join(" and ")
    );
    println!(
        "{:<22} {:<9} {:>22} {:>22}",
        "mode", "server", "leave s (min/med/max)", "return s (min/med/max)"
    );
    let limit = Duration::from_secs(10 * o.interval + 5);
    let mut ratios = Vec::new();
    for mode in ["http 503", "connection refused", "timeout (hang)"] {
        let mut leave = vec![Vec::new(); names.len()];
        let mut back = vec![Vec::new(); names.len()];
        for _ in 0..o.trials {
            // break at a random point of the probe cycle
            std::thread::sleep(Duration::from_millis(300 + noise_ms(o.interval * 1000)));
            match mode {
                "http 503" => eu.set(LbMode::Fail),
                "connection refused" => eu.kill(),
                _ => eu.set(LbMode::Hang),
            }
            for (i, t) in s.until(us_ip, limit).into_iter().enumerate() {
                leave[i].extend(t);
            }
            // heal at a random point of the cycle too
            std::thread::sleep(Duration::from_millis(200 + noise_ms(o.interval * 1000)));
            eu.revive();
            eu.set(LbMode::Ok);
            let took = s.until(eu_ip, limit);
            if let [Some(sp), Some(g)] = took[..] {
                ratios.push(sp / g);
            }
            for (i, t) in took.into_iter().enumerate() {
                back[i].extend(t);
            }
            std::thread::sleep(iv * 8);
        }
        for (i, name) in names.iter().enumerate() {
            println!(
                "{mode:<22} {name:<9} {:>22} {:>22}",
                stats(&mut leave[i]),
                stats(&mut back[i])
            );
        }
    }
    if !ratios.is_empty() {
        println!(
            "return signpost / gdnsd, paired per trial (min/med/max): {}",
            stats(&mut ratios)
        );
    }
    println!(
        "bounds: leave <= fall x interval + 1 s = {} s; return <= rise x interval + 1 s = {} s",
        2 * o.interval + 1,
        2 * o.interval + 1
    );
}
