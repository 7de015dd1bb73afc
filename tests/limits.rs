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

const ZONE_CFG: &str = r#"
[zones."example.test."]
file = "example.test.zone"
"#;

fn tcp_server(name: &str, server_extra: &str) -> Server {
    Server::start(
        name,
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n{server_extra}\n{ZONE_CFG}"
        ),
        &[("example.test.zone", ZONE)],
    )
}

/// A query for `mail.example.test. A` with EDNS and, if `keepalive`, the
/// edns-tcp-keepalive option (RFC 7828).
fn query_bytes(id: u16, keepalive: bool) -> Vec<u8> {
    let mut b = vec![0u8; 12];
    b[..2].copy_from_slice(&id.to_be_bytes());
    b[5] = 1; // QDCOUNT
    b[11] = 1; // ARCOUNT
    for label in ["mail", "example", "test"] {
        b.push(label.len() as u8);
        b.extend_from_slice(label.as_bytes());
    }
    b.extend_from_slice(&[0, 0, 1, 0, 1]);
    let opts: Vec<u8> = if keepalive { vec![0, 11, 0, 0] } else { vec![] };
    b.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    b.extend_from_slice(&(opts.len() as u16).to_be_bytes());
    b.extend_from_slice(&opts);
    b
}

/// One query over an open connection; `None` when the server closed it.
fn ask(c: &mut TcpStream, id: u16, keepalive: bool) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let q = query_bytes(id, keepalive);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    c.write_all(&framed).ok()?;
    let mut len = [0u8; 2];
    c.read_exact(&mut len).ok()?;
    let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut r).ok()?;
    Some(r)
}

/// True once the server has closed the connection (read returns EOF or
/// an error within `limit`).
fn closed(c: &mut TcpStream, limit: Duration) -> bool {
    use std::io::Read;
    c.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 1];
    match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn connect_from(src: &str, to: std::net::SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(
        &format!("{src}:0")
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    s.connect(&to.into()).unwrap();
    let c: TcpStream = s.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn refused(s: &Server, reason: &str) -> f64 {
    let (_, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    body.lines()
        .find_map(|l| {
            l.strip_prefix(&format!(
                "signpost_dns_tcp_refused_total{{reason=\"{reason}\"}} "
            ))
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn one_client_cannot_hold_every_tcp_connection() {
    let s = tcp_server("persource", "tcp_per_source = 3\ntcp_max_connections = 6");
    assert_eq!(refused(&s, "per_source"), 0.0, "exported from the start");
    let mut mine: Vec<TcpStream> = (0..5).map(|_| connect_from("127.0.0.1", s.dns)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut answered = 0;
    for (i, c) in mine.iter_mut().enumerate() {
        if ask(c, i as u16, false).is_some() {
            answered += 1;
        }
    }
    assert_eq!(answered, 3, "three per client");
    assert_eq!(refused(&s, "per_source"), 2.0);
    // another client still gets in
    let mut other = connect_from("127.0.0.2", s.dns);
    assert!(ask(&mut other, 9, false).is_some());
    // the pool is full (6 minus the refused = 3 + 1 open): fill it, then a
    // newcomer makes the oldest idle connection close
    let mut more: Vec<TcpStream> = (3..5)
        .map(|i| connect_from(&format!("127.0.0.{i}"), s.dns))
        .collect();
    for (i, c) in more.iter_mut().enumerate() {
        assert!(ask(c, 20 + i as u16, false).is_some());
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut newcomer = connect_from("127.0.0.9", s.dns);
    assert!(ask(&mut newcomer, 30, false).is_some(), "admitted");
    assert!(
        wait_until(Duration::from_secs(3), || refused(&s, "idle_closed") >= 1.0).is_some(),
        "an idle connection made room"
    );
    assert!(s.stop().success());
}

#[test]
fn tcp_connections_end_after_their_lifetime_or_query_count() {
    let s = tcp_server(
        "lifetime",
        "tcp_max_lifetime = \"1s\"\ntcp_max_queries = 1000\ntcp_idle_timeout = \"30s\"",
    );
    // one query every 200 ms cannot keep a connection past its lifetime
    let mut c = connect_from("127.0.0.1", s.dns);
    let start = std::time::Instant::now();
    let mut n = 0u16;
    while ask(&mut c, n, false).is_some() {
        n += 1;
        std::thread::sleep(Duration::from_millis(200));
        assert!(start.elapsed() < Duration::from_secs(5), "never closed");
    }
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    assert!(s.stop().success());

    let s = tcp_server("querycap", "tcp_max_queries = 3");
    let mut c = connect_from("127.0.0.1", s.dns);
    for i in 0..3 {
        assert!(ask(&mut c, i, false).is_some(), "query {i}");
    }
    assert!(closed(&mut c, Duration::from_secs(2)), "closed after three");
    assert!(s.stop().success());
}

#[test]
fn edns_keepalive_tells_the_idle_timeout_over_tcp_only() {
    let s = tcp_server("keepalive", "tcp_idle_timeout = \"8s\"");
    let keepalive = |r: &[u8]| -> Option<u16> {
        // the OPT record is last: find option 11 in it
        let pos = r.windows(4).rposition(|w| w == [0, 11, 0, 2])?;
        Some(u16::from_be_bytes([r[pos + 4], r[pos + 5]]))
    };
    let mut c = connect_from("127.0.0.1", s.dns);
    let r = ask(&mut c, 1, true).unwrap();
    assert_eq!(keepalive(&r), Some(80), "8 s in units of 100 ms");
    let r = ask(&mut c, 2, false).unwrap();
    assert_eq!(keepalive(&r), None, "not asked, not sent");
    let r = common::udp_raw(s.dns, &query_bytes(3, true), Duration::from_secs(2)).unwrap();
    assert_eq!(keepalive(&r), None, "never over UDP");
    assert!(s.stop().success());
}

#[test]
fn the_admin_api_cannot_be_held_by_slow_or_many_clients() {
    use std::io::Write;
    let s = tcp_server("adminlimits", "");
    let admin = s.admin.unwrap();
    // a request head that never ends is cut after the header timeout
    let mut slow = TcpStream::connect(admin).unwrap();
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t = std::time::Instant::now();
    assert!(closed(&mut slow, Duration::from_secs(10)), "never cut");
    assert!(
        (Duration::from_secs(4)..Duration::from_secs(9)).contains(&t.elapsed()),
        "cut after {:?}",
        t.elapsed()
    );
    // 64 connections at most: the ones beyond are closed at once, and the
    // API answers again once the idle ones time out
    let held: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(admin).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(admin).unwrap();
    assert!(
        closed(&mut extra, Duration::from_secs(2)),
        "the 65th is refused"
    );
    assert!(
        wait_until(Duration::from_secs(10), || common::try_http(
            "GET",
            &format!("{}/healthz", s.admin_url())
        )
        .is_some_and(|(code, _)| code == 200))
        .is_some(),
        "the API answers again"
    );
    drop(held);
    // a half-sent request does not hold up shutdown
    let mut stuck = TcpStream::connect(admin).unwrap();
    stuck.write_all(b"POST /v1/reload HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    assert!(s.stop().success());
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn an_admin_request_body_or_head_too_large_is_refused() {
    use std::io::{Read, Write};
    let s = tcp_server("adminbig", "");
    let admin = s.admin.unwrap();
    let mut c = TcpStream::connect(admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = "x".repeat(40 * 1024);
    // the server may refuse and close before all of it is written (EPIPE)
    let _ = write!(
        c,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    );
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    assert!(
        resp.is_empty() || resp.starts_with("HTTP/1.1 431"),
        "a 40 KiB head: {}",
        &resp[..resp.len().min(80)]
    );
    let mut c = TcpStream::connect(admin).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = vec![b'x'; 200 * 1024];
    write!(
        c,
        "POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = c.write_all(&body);
    let mut resp = String::new();
    let _ = c.read_to_string(&mut resp);
    assert!(
        !resp.starts_with("HTTP/1.1 200"),
        "{}",
        &resp[..resp.len().min(80)]
    );
    assert!(s.stop().success());
}
