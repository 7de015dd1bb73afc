//! Response rate limiting (SPEC §7, `[server.rrl]`), black box: floods from
//! one loopback /24 are cut down to the rate with every second limited
//! response slipped (TC=1), while other networks, TCP and exempt networks
//! are served as usual; a reload turns it off.

mod common;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const SERVER: &str = r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
"#;

const RRL: &str = r#"
[server.rrl]
responses_per_second = 5
errors_per_second = 3
window = "2s"
slip = 2
exempt = ["127.0.3.0/24"]
"#;

const REST: &str = r#"
[zones."example.test."]
file = "example.test.zone"

[regions.only]
location = { lat = 1.0, lon = 1.0 }
endpoints = [{ address = "192.0.2.10" }]

[services."www.example.test."]
regions = ["only"]
policy = "failover"
"#;

/// What came back for a burst of queries.
#[derive(Debug, Default)]
struct Tally {
    full: usize,
    slipped: usize,
    sent: usize,
}

impl Tally {
    fn lost(&self) -> usize {
        self.sent - self.full - self.slipped
    }
}

/// Sends `n` queries (from `src`, as fast as the socket takes them; `name`
/// gets `{i}` replaced by the query number) and counts the replies.
fn burst(server: SocketAddr, src: &str, name: &str, n: usize) -> Tally {
    let sock = UdpSocket::bind(format!("{src}:0")).expect("bind a loopback source");
    sock.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut t = Tally {
        sent: n,
        ..Tally::default()
    };
    for i in 0..n {
        let q = query(&name.replace("{i}", &i.to_string()), RecordType::A, None);
        sock.send_to(&q.to_vec().unwrap(), server).unwrap();
    }
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.full + t.slipped < n && Instant::now() < deadline {
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            break; // quiet for 400 ms: the rest was dropped
        };
        let m = Message::from_vec(&buf[..len]).expect("a parsable reply");
        if m.metadata.truncation {
            assert!(
                m.answers.is_empty() && m.additionals.is_empty(),
                "a slip carries no records: {m:?}"
            );
            assert_eq!(m.queries.len(), 1, "a slip keeps the question");
            t.slipped += 1;
        } else {
            t.full += 1;
        }
    }
    t
}

fn metric(admin: &str, series: &str) -> f64 {
    let (code, body) = http("GET", &format!("{admin}/metrics"), None);
    assert_eq!(code, 200);
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{body}"))
}

#[test]
fn a_flood_from_one_network_is_limited_and_nobody_else_is() {
    let config = format!("{SERVER}{RRL}{REST}");
    let s = Server::start("rrl", &config, &[("example.test.zone", ZONE)]);
    let admin = s.admin_url();
    let www = "www.example.test.";

    // one network floods: about a second's worth (5) gets full answers,
    // and of the rest every second is slipped, the others dropped
    let flood = burst(s.dns, "127.0.1.1", www, 200);
    eprintln!("flood: {flood:?}");
    assert!(
        (1..=15).contains(&flood.full),
        "full answers to the flooding network: {flood:?}"
    );
    assert!(
        (60..=110).contains(&flood.slipped),
        "every second limited answer slips: {flood:?}"
    );
    assert!(flood.lost() >= 60, "the rest is dropped: {flood:?}");

    // the same network's other addresses share its account...
    let neighbour = burst(s.dns, "127.0.1.77", www, 4);
    assert_eq!(neighbour.full, 0, "{neighbour:?}");
    // ...but another network is served as usual
    let other = burst(s.dns, "127.0.2.1", www, 5);
    assert_eq!(other.full, 5, "another /24: {other:?}");
    // and TCP is never limited, even from the flooding network
    for _ in 0..10 {
        let q = query(www, RecordType::A, None);
        let m = tcp_from("127.0.1.1", s.dns, &q.to_vec().unwrap());
        assert_eq!(addresses(&m), vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
    }
    // exempt networks are never limited
    let exempt = burst(s.dns, "127.0.3.9", www, 100);
    assert_eq!(exempt.full, 100, "exempt network: {exempt:?}");

    // errors count per network over all names: a random-name flood
    let nx = burst(s.dns, "127.0.4.1", "nx{i}.example.test.", 60);
    eprintln!("NXDOMAIN flood: {nx:?}");
    assert!((1..=8).contains(&nx.full), "NXDOMAIN flood: {nx:?}");
    assert!(
        nx.slipped >= 15 && nx.lost() >= 15,
        "NXDOMAIN flood: {nx:?}"
    );

    let dropped = metric(&admin, "signpost_dns_rrl_limited_total{action=\"dropped\"}");
    let slipped = metric(&admin, "signpost_dns_rrl_limited_total{action=\"slipped\"}");
    assert!(dropped >= (flood.lost() + nx.lost()) as f64, "{dropped}");
    assert!(slipped >= (flood.slipped + nx.slipped) as f64, "{slipped}");

    // once the network has been quiet for the window (2 s) and a second,
    // it is answered again
    std::thread::sleep(Duration::from_millis(3200));
    let after = burst(s.dns, "127.0.1.1", www, 3);
    assert_eq!(after.full, 3, "after the window: {after:?}");

    // a reload without [server.rrl] turns it off
    std::fs::write(s.dir.join("signpost.toml"), format!("{SERVER}{REST}")).unwrap();
    let (code, body) = http("POST", &format!("{admin}/v1/reload"), None);
    assert_eq!(code, 200, "{body}");
    let free = burst(s.dns, "127.0.1.1", www, 100);
    assert_eq!(free.full, 100, "after a reload turned RRL off: {free:?}");
}

/// One query over TCP from a given source address.
fn tcp_from(src: &str, server: SocketAddr, bytes: &[u8]) -> Message {
    use std::io::{Read, Write};
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: SocketAddr = format!("{src}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect_timeout(&server.into(), Duration::from_secs(2))
        .unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    s.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    Message::from_vec(&body).unwrap()
}

/// Answers synthesized from a wildcard count as the wildcard's name, as
/// BIND keys them: random labels under `*.wild` are one flood, not one
/// fresh budget per label (issue 16), while real names beside it keep
/// their own accounts.
#[test]
fn random_names_under_a_wildcard_share_one_budget() {
    let zone = format!("{ZONE}*.wild IN A 192.0.2.99\nplain IN A 192.0.2.98\n");
    let config = format!("{SERVER}{RRL}{REST}");
    let s = Server::start("rrl-wild", &config, &[("example.test.zone", &zone)]);
    // each query a new label, all answered by the wildcard
    let flood = burst(s.dns, "127.0.5.1", "r{i}.wild.example.test.", 200);
    eprintln!("wildcard flood: {flood:?}");
    assert!(
        (1..=15).contains(&flood.full),
        "full answers to random names under the wildcard: {flood:?}"
    );
    assert!(flood.slipped >= 60 && flood.lost() >= 60, "{flood:?}");
    // another name from the same network has its own account
    let plain = burst(s.dns, "127.0.5.1", "plain.example.test.", 3);
    assert_eq!(plain.full, 3, "{plain:?}");
    // and another network is served under the wildcard as usual
    let other = burst(s.dns, "127.0.6.1", "x{i}.wild.example.test.", 5);
    assert_eq!(other.full, 5, "{other:?}");
}
