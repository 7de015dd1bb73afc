//! The operator's console (issue 9), black box: what-if explain over the
//! API and the command line (live and offline), the `min_healthy_regions`
//! safety rule, `ctl` for people and scripts, exit codes, and logs.
//!
//! Regions have no health checks (always up) unless a test says otherwise.

mod common;

use std::net::IpAddr;

use common::*;
use serde_json::Value;

/// An Amsterdam client (GeoIP: NL): eu-west.
const EU: &str = "193.0.6.0/24";
const WWW: &str = "www.example.test.";
const DB: &str = "db.example.test.";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An answer from eu-west (one of its two endpoints).
fn is_eu_west(a: &[IpAddr]) -> bool {
    a.len() == 1 && (a[0] == ip("192.0.2.2") || a[0] == ip("192.0.2.22"))
}

/// us-east 192.0.2.1, eu-west 192.0.2.2, ap-south 192.0.2.3; www geo over
/// all three with min_healthy_regions 2; db failover eu-west then us-east
/// with min_healthy_regions 1; api weighted without a rule.
fn config(server_extra: &str) -> String {
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

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}, {{ address = "192.0.2.22" }}]

[regions.ap-south]
location = {{ lat = 19.08, lon = 72.88 }}
endpoints = [{{ address = "192.0.2.3" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
min_healthy_regions = 2

[services."db.example.test."]
regions = ["eu-west", "us-east"]
policy = "failover"
min_healthy_regions = 1

[services."api.example.test."]
regions = ["us-east", "eu-west"]
policy = "weighted"
"#
    )
}

fn start(name: &str) -> Server {
    Server::start(name, &config(""), &[("example.test.zone", ZONE)])
}

fn explain(s: &Server, query: &str) -> (u16, Value) {
    let (code, body) = http(
        "GET",
        &format!("{}/v1/explain?{query}", s.admin_url()),
        None,
    );
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    (code, v)
}

#[test]
fn what_if_explain_answers_as_if_down_without_touching_live_state() {
    let s = start("whatif");
    // live: Amsterdam goes to eu-west
    let (code, live) = explain(&s, "name=www.example.test&client=193.0.6.1");
    assert_eq!(code, 200, "{live}");
    assert_eq!(live["candidates"][0]["region"], "eu-west", "{live}");
    assert!(live.get("what_if_down").is_none(), "{live}");

    // what if eu-west were down: the next nearest, us-east
    let (code, e) = explain(&s, "name=www.example.test&client=193.0.6.1&down=eu-west");
    assert_eq!(code, 200, "{e}");
    println!("{e:#}");
    assert_eq!(e["answer"], serde_json::json!(["192.0.2.1"]), "{e}");
    assert_eq!(e["what_if_down"], serde_json::json!(["eu-west"]), "{e}");
    let eu = e["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["region"] == "eu-west")
        .expect("eu-west is still a candidate");
    assert_eq!(eu["healthy"], false, "{eu}");
    assert_eq!(
        eu["drained"], false,
        "a what-if is an outage, not a drain: {eu}"
    );

    // two regions down, spaces and a duplicate tolerated
    let (code, e) = explain(
        &s,
        "name=www.example.test&client=193.0.6.1&down=eu-west,%20us-east,eu-west",
    );
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["answer"], serde_json::json!(["192.0.2.3"]), "{e}");
    assert_eq!(e["what_if_down"], serde_json::json!(["eu-west", "us-east"]));

    // the live answers and state did not move
    let live_answer = s.a(WWW, Some(EU));
    assert!(is_eu_west(&live_answer), "{live_answer:?}");
    let (_, again) = explain(&s, "name=www.example.test&client=193.0.6.1");
    assert_eq!(again["candidates"][0]["region"], "eu-west", "{again}");
    assert_eq!(again["candidates"][0]["healthy"], true, "{again}");

    // an unknown region is a clear 400
    let (code, e) = explain(&s, "name=www.example.test&client=193.0.6.1&down=mars");
    assert_eq!(code, 400, "{e}");
    assert!(e["error"].as_str().unwrap_or("").contains("mars"), "{e}");

    // and from the command line, live and offline
    let dir = s.dir.clone();
    let a = s.admin_url();
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--down",
            "eu-west",
            "--admin",
            &a,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    println!("{out}");
    assert!(out.contains("what if down: eu-west"), "{out}");
    assert!(out.contains("answer: 192.0.2.1"), "{out}");
    assert!(
        out.contains("down*"),
        "eu-west marked down by the what-if: {out}"
    );

    let cfg = dir.join("signpost.toml");
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--down",
            "eu-west,us-east",
            "--config",
            cfg,
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("explain --json");
    assert_eq!(v["answer"], serde_json::json!(["192.0.2.3"]), "{v}");
    let (code, _, err) = run(
        &dir,
        &[
            "explain",
            "www.example.test",
            "--client",
            "193.0.6.1",
            "--down",
            "mars",
            "--config",
            cfg,
        ],
        &[],
    );
    assert_eq!(code, 1, "an unknown region is invalid input");
    assert!(err.contains("mars"), "{err}");
}

#[test]
fn safety_rule_refuses_drains_that_leave_too_few_regions() {
    let s = start("safety");
    let a = s.admin_url();
    // db keeps one region: eu-west may go (us-east stays)
    let (code, body) = http("POST", &format!("{a}/v1/regions/eu-west/drain"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(s.a(DB, None), vec![ip("192.0.2.1")]);

    // us-east now is db's last region and one of www's two: refused, both named
    let (code, body) = http("POST", &format!("{a}/v1/regions/us-east/drain"), None);
    assert_eq!(code, 409, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON error");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains(DB) && msg.contains("min_healthy_regions = 1"),
        "{msg}"
    );
    assert!(
        msg.contains(WWW) && msg.contains("min_healthy_regions = 2"),
        "{msg}"
    );
    assert!(msg.contains("force"), "says how to override: {msg}");
    // nothing changed
    assert_eq!(s.a(DB, None), vec![ip("192.0.2.1")]);
    let st = get_json(&format!("{a}/v1/status"));
    let us = st["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "us-east")
        .unwrap()
        .clone();
    assert_eq!(us["drained"], false, "{us}");

    // endpoint drains count too: ap-south's only endpoint would leave www
    // (eu-west already drained) with one usable region of its minimum two
    let (code, body) = http("POST", &format!("{a}/v1/endpoints/192.0.2.3/drain"), None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(WWW), "{body}");

    // undrain eu-west; then one of its two endpoints may go freely
    let (code, _) = http("DELETE", &format!("{a}/v1/regions/eu-west/drain"), None);
    assert_eq!(code, 200);
    let (code, body) = http("POST", &format!("{a}/v1/endpoints/192.0.2.22/drain"), None);
    assert_eq!(
        code, 200,
        "an endpoint that leaves its region usable: {body}"
    );

    // forced: drained, and the audit says so
    let (code, _) = http("POST", &format!("{a}/v1/regions/eu-west/drain"), None);
    assert_eq!(code, 200);
    let (code, body) = http(
        "POST",
        &format!("{a}/v1/regions/us-east/drain?force=true"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        s.a(DB, None).is_empty(),
        "both of db's regions drained: NODATA"
    );
    let audit = get_json(&format!("{a}/v1/audit"));
    let list = audit["audit"].as_array().expect("audit list");
    assert!(
        list.iter()
            .any(|e| e["target"] == "region us-east (forced)" && e["result"] == "ok"),
        "{audit:#}"
    );
    assert!(
        list.iter().any(|e| e["target"] == "region us-east"
            && e["result"].as_str().unwrap_or("").starts_with("409")),
        "the refusal is audited: {audit:#}"
    );
    let (code, _) = http(
        "POST",
        &format!("{a}/v1/regions/us-east/drain?force=banana"),
        None,
    );
    assert_eq!(code, 400);

    // ctl explains the refusal and exits 1
    let (code, _) = http("DELETE", &format!("{a}/v1/regions/us-east/drain"), None);
    assert_eq!(code, 200);
    let (code, out, err) = run(&s.dir, &["ctl", "drain", "us-east", "--admin", &a], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("409") && err.contains(DB), "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, out, err) = run(
        &s.dir,
        &["ctl", "drain", "us-east", "--force", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("drained region us-east"), "{out}");
}

#[test]
fn min_healthy_regions_is_checked() {
    let dir = scratch("safety-check");
    write(&dir.join("example.test.zone"), ZONE);
    for (bad, why) in [
        ("min_healthy_regions = 3", "3 must be 0"),
        ("min_healthy_regions = -1", "-1 must be 0"),
    ] {
        let cfg = config("").replace("min_healthy_regions = 1", bad);
        write(&dir.join("signpost.toml"), &cfg);
        let (code, out, err) = run(&dir, &["check", "--config", "signpost.toml"], &[]);
        assert_eq!(code, 1, "{bad}: {out}");
        assert!(
            err.contains("services.\"db.example.test.\".min_healthy_regions") && err.contains(why),
            "{bad}: {err}"
        );
    }
}

#[test]
fn ctl_speaks_to_people_and_scripts() {
    let s = start("ctl-human");
    let a = s.admin_url();
    let dir = s.dir.clone();
    let (code, out, err) = run(
        &dir,
        &["ctl", "drain", "ap-south", "--for", "10m", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("drained region ap-south for 10m"), "{out}");
    let (code, out, _) = run(&dir, &["ctl", "status", "--admin", &a], &[]);
    assert_eq!(code, 0);
    println!("{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("ap-south"))
        .unwrap_or_default();
    assert!(
        line.contains("drained (probes pass)"),
        "drained, not unhealthy: {line:?}"
    );
    assert!(
        out.contains("drained until 20"),
        "the until on its own line: {out}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("us-east"))
        .unwrap_or_default();
    assert!(line.contains(" up"), "{line:?}");

    let (code, out, err) = run(&dir, &["ctl", "undrain", "ap-south", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("undrained region ap-south"), "{out}");
    let (code, out, err) = run(
        &dir,
        &["ctl", "undrain", "ap-south", "--json", "--admin", &a],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("--json is JSON");
    assert_eq!(v["undrained"]["region"], "ap-south");

    let (code, out, err) = run(&dir, &["ctl", "audit", "--admin", &a], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().next().unwrap_or("").starts_with("AT"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("drain") && l.contains("region ap-south") && l.contains("10m")),
        "{out}"
    );

    // usage errors are invalid input: exit 1 (SPEC §2), help is 0
    let (code, _, err) = run(&dir, &["ctl", "drain", "--bogus"], &[]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run(&dir, &["frobnicate"], &[]);
    assert_eq!(code, 1, "{err}");
    let (code, out, _) = run(&dir, &["--help"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage"), "{out}");
}

/// Runs `signpost serve` in `dir` with `extra` arguments and stderr going
/// to a file (not a terminal) until it logs its DNS listener; returns the
/// raw log bytes as text.
fn raw_log(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let path = dir.join("stderr.log");
    let file = std::fs::File::create(&path).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(extra)
        .args(["serve", "--config", "signpost.toml"])
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("SIGNPOST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn signpost");
    let found = wait_until(std::time::Duration::from_secs(30), || {
        std::fs::read_to_string(&path).is_ok_and(|l| l.contains("dns listening on"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(found.is_some(), "signpost did not start: {log}");
    log
}

#[test]
fn logs_have_no_colour_off_a_terminal_and_can_be_json() {
    let dir = scratch("logs");
    write(&dir.join("example.test.zone"), ZONE);
    write(&dir.join("signpost.toml"), &config(""));

    let log = raw_log(&dir, &[], &[]);
    assert!(log.contains(" INFO "), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI codes in a log that is not a terminal: {log:?}"
    );

    let log = raw_log(&dir, &["--log-format", "json"], &[("NO_COLOR", "1")]);
    let mut saw_listen = false;
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{v}");
        if v["message"]
            .as_str()
            .unwrap_or("")
            .contains("dns listening on")
        {
            saw_listen = true;
        }
    }
    assert!(saw_listen, "{log}");
}

#[test]
fn dashboard_page_map_and_shares_are_served() {
    let s = start("dashboard-http");
    let a = s.admin_url();
    let (code, page) = http("GET", &format!("{a}/"), None);
    assert_eq!(code, 200);
    assert!(
        page.starts_with("<!doctype html>"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(
        page.contains("/v1/status") && page.contains("/v1/shares"),
        "the page reads the API"
    );
    assert!(
        !page.contains("<script src") && !page.contains("<link") && !page.contains("https://"),
        "script and styles inline, nothing fetched from elsewhere"
    );
    let (code, land) = http("GET", &format!("{a}/dashboard/land-110m.json"), None);
    assert_eq!(code, 200);
    let topo: Value = serde_json::from_str(&land).expect("TopoJSON");
    assert_eq!(topo["type"], "Topology");
    assert!(topo["arcs"].as_array().is_some_and(|a| a.len() > 100));

    // answers: 30 to eu-west (Amsterdam), 10 to us-east (Syracuse)
    for _ in 0..30 {
        assert!(is_eu_west(&s.a(WWW, Some(EU))));
    }
    for _ in 0..10 {
        assert_eq!(s.a(WWW, Some("24.24.24.0/24")), vec![ip("192.0.2.1")]);
    }
    let v = get_json(&format!("{a}/v1/shares"));
    println!("{v:#}");
    assert_eq!(v["regions"]["eu-west"]["answers"], 30, "{v}");
    assert_eq!(v["regions"]["us-east"]["answers"], 10, "{v}");
    assert_eq!(v["regions"]["eu-west"]["share"], 0.75, "{v}");
    assert_eq!(v["answers"], 40, "{v}");
}

#[test]
fn systemd_unit_verifies() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        println!("SKIPPED: no systemd-analyze here");
        return;
    };
    assert!(out.status.success());
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/systemd/signpost.service"
    ))
    .unwrap();
    for key in [
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "LimitNOFILE=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=signpost",
    ] {
        assert!(unit.contains(key), "the unit sets {key}");
    }
    // verify it with this build's binary in place of /usr/local/bin/signpost
    let dir = scratch("systemd-unit");
    let path = dir.join("signpost.service");
    write(&path, &unit.replace("/usr/local/bin/signpost", BIN));
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{err}");
    // outside a booted systemd (containers, CI) verify still parses the
    // unit; what it must not find is a problem in this file
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("signpost.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {ours:#?}");
    // a broken copy is caught: the check above can fail
    write(
        &path,
        &unit.replace("Restart=on-failure", "Restart=sometimes"),
    );
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.contains("signpost.service")),
        "a bad value is reported: {err}"
    );
}

#[test]
fn metrics_are_exported_from_the_start_with_configured_names() {
    // one checked region behind a real HTTP load balancer, profile "lb-health"
    let lb = FakeLb::start("127.98.1.1:0".parse().unwrap());
    let cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"

[checks.lb-health]
type = "http"
port = {port}
path = "/health"
interval = "1s"
timeout = "500ms"

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "lb-health"
endpoints = [{{ address = "127.98.1.1" }}]

[services."www.example.test."]
regions = ["eu-west"]
"#,
        port = lb.addr.port()
    );
    let s = Server::start("metrics-start", &cfg, &[("example.test.zone", ZONE)]);
    let (code, text) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    assert_eq!(code, 200);
    for line in [
        "signpost_config_reloads_total{result=\"ok\"} 0",
        "signpost_config_reloads_total{result=\"error\"} 0",
        "signpost_health_transitions_total{address=\"127.98.1.1\",to=\"down\"} 0",
        "signpost_health_transitions_total{address=\"127.98.1.1\",to=\"up\"} 0",
        &format!(
            "signpost_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} exported before any reload or transition:\n{text}"
        );
    }
    assert!(
        text.contains("signpost_health_probe_duration_seconds_count{address=\"127.98.1.1\",check=\"lb-health\"}"),
        "probe durations carry the profile's name:\n{text}"
    );
    let start: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_start_time_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("process_start_time_seconds:\n{text}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now && now - start < 120.0,
        "started {start}, now {now}"
    );
}

/// Raw HTTP with extra header lines: the status code.
fn http_with(method: &str, url: &str, extra: &str) -> u16 {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut c = std::net::TcpStream::connect(host).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn changes_from_other_sites_or_rebound_names_are_refused() {
    let s = start("csrf");
    let a = s.admin_url();
    let host = a.strip_prefix("http://").unwrap().to_string();
    let url = format!("{a}/v1/regions/ap-south/drain");
    // a page of another site (the browser says so), an Origin that is not
    // this server, a name in Host without a token (DNS rebinding)
    for extra in [
        format!("Host: {host}\r\nSec-Fetch-Site: cross-site\r\n"),
        format!("Host: {host}\r\nOrigin: http://evil.example\r\n"),
        "Host: rebound.example:9053\r\n".to_string(),
    ] {
        assert_eq!(http_with("POST", &url, &extra), 403, "{extra:?}");
    }
    let st = get_json(&format!("{a}/v1/status"));
    assert!(
        st["regions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["drained"] == false),
        "nothing was drained: {st}"
    );
    // without a token, reads through a rebound name are refused too (they
    // would leak the topology, the audit and the metrics); /healthz is not
    for path in ["/v1/status", "/v1/audit", "/metrics", "/"] {
        assert_eq!(
            http_with("GET", &format!("{a}{path}"), "Host: rebound.example\r\n"),
            403,
            "GET {path}"
        );
        assert_eq!(
            http_with("GET", &format!("{a}{path}"), &format!("Host: {host}\r\n")),
            200,
            "GET {path} by address"
        );
    }
    assert_eq!(
        http_with("GET", &format!("{a}/healthz"), "Host: rebound.example\r\n"),
        200
    );
    // the same origin and localhost are fine
    assert_eq!(
        http_with(
            "POST",
            &url,
            &format!("Host: {host}\r\nOrigin: http://{host}\r\nSec-Fetch-Site: same-origin\r\n")
        ),
        200
    );
    assert_eq!(
        http_with(
            "DELETE",
            &url,
            &format!("Host: localhost:{}\r\n", host.rsplit(':').next().unwrap())
        ),
        200
    );
    // with a token, names are fine (a rebound page has no token)
    let cfg = config("admin_token = \"s3cret\"");
    write(&s.dir.join("signpost.toml"), &cfg);
    assert_eq!(
        http_with(
            "POST",
            &format!("{a}/v1/reload"),
            &format!("Host: {host}\r\n")
        ),
        200
    );
    assert_eq!(
        http_with(
            "POST",
            &url,
            "Host: ns1.example:9053\r\nAuthorization: Bearer s3cret\r\n"
        ),
        200
    );
    // and reads need no token, whatever the Host
    assert_eq!(
        http_with(
            "GET",
            &format!("{a}/v1/status"),
            "Host: ns1.example:9053\r\n"
        ),
        200
    );
    // force= with no value is not a yes
    let (code, _) = http("POST", &format!("{url}?force="), Some("s3cret"));
    assert_eq!(code, 400);
}

#[test]
fn the_safety_rule_holds_each_address_family() {
    let cfg = config("").replace(
        "[services.\"api.example.test.\"]",
        r#"[regions.dual]
location = { lat = 50.1, lon = 8.7 }
endpoints = [{ address = "192.0.2.50" }, { address = "2001:db8::50" }]

[regions.v6only]
location = { lat = 48.9, lon = 2.4 }
endpoints = [{ address = "2001:db8::51" }]

[services."dual.example.test."]
regions = ["dual", "v6only"]
min_healthy_regions = 1

[services."api.example.test."]"#,
    );
    let s = Server::start("safety-family", &cfg, &[("example.test.zone", ZONE)]);
    let a = s.admin_url();
    // dual's IPv4 endpoint is the service's only IPv4 region left
    let (code, body) = http("POST", &format!("{a}/v1/endpoints/192.0.2.50/drain"), None);
    assert_eq!(code, 409, "{body}");
    assert!(
        body.contains("dual.example.test.") && body.contains("IPv4"),
        "{body}"
    );
    // v6only may go: IPv6 keeps dual, IPv4 is not touched
    let (code, body) = http("POST", &format!("{a}/v1/regions/v6only/drain"), None);
    assert_eq!(code, 200, "{body}");
    // now dual's IPv6 endpoint is the last for IPv6
    let (code, body) = http(
        "POST",
        &format!("{a}/v1/endpoints/2001:db8::50/drain"),
        None,
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("IPv6"), "{body}");
}
