//! The admin API, reloads and the command line, black box (SPEC §2, §6;
//! issue 3): the real binary, real HTTP, real DNS queries.
//!
//! Fake load balancers use 127.92.N.0/24 with a distinct N per test.

#[path = "../common/mod.rs"]
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

mod cli;
mod drains;
mod explain;
mod metrics;
mod openapi;
mod operations;
mod reload;
mod status;
