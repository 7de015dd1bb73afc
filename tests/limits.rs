//! Resource limits (issue 11): clients holding DNS TCP connections under a
//! small open-files limit must not starve the health probes.

mod common;

use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use common::*;

#[test]
fn held_tcp_connections_cannot_starve_the_probes() {
    let lb = FakeLb::start("127.97.0.1:0".parse().unwrap());
    let port = lb.addr.port();
    let dir = scratch("nofile");
    write(&dir.join("example.test.zone"), ZONE);
    write(
        &dir.join("signpost.toml"),
        &format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
tcp_idle_timeout = "60s"

[zones."example.test."]
file = "example.test.zone"

[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "300ms"
timeout = "200ms"
rise = 1
fall = 1

[regions.primary]
location = {{ lat = 1.0, lon = 1.0 }}
check = "web"
endpoints = [{{ address = "127.97.0.1" }}]

[regions.standby]
location = {{ lat = 2.0, lon = 2.0 }}
endpoints = [{{ address = "192.0.2.7" }}]

[services."www.example.test."]
regions = ["primary", "standby"]
policy = "failover"
"#
        ),
    );
    // 300 files: with the default tcp_max_connections (1024) clients could
    // take them all
    let s = Server::start_limited(dir, &["serve", "--config", "signpost.toml"], 300);
    let log = s.log().join("\n");
    assert!(
        log.contains("does not fit the open-files limit 300"),
        "the clamp is logged: {log}"
    );
    // clients open and hold as many connections as they can
    let mut held = Vec::new();
    for _ in 0..400 {
        match TcpStream::connect_timeout(&s.dns, Duration::from_millis(200)) {
            Ok(c) => held.push(c),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let www = "www.example.test.";
    let primary: IpAddr = "127.97.0.1".parse().unwrap();
    let standby: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(s.a(www, None), vec![primary]);
    // the region fails and recovers: the probes still run and see it
    lb.set(LbMode::Fail);
    assert!(
        wait_until(Duration::from_secs(5), || s.a(www, None) == vec![standby]).is_some(),
        "the failure was not seen with {} connections held:\n{}",
        held.len(),
        s.log().join("\n")
    );
    lb.set(LbMode::Ok);
    assert!(
        wait_until(Duration::from_secs(5), || s.a(www, None) == vec![primary]).is_some(),
        "the recovery was not seen"
    );
    drop(held);
    assert!(s.stop().success());
}
