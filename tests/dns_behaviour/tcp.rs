//! TCP, and the listeners: pipelining, idle and connection limits, bursts, wildcard addresses, NSID, unknown classes and types.

use super::*;

#[test]
pub(super) fn tcp_pipelined_queries_get_answers_with_their_ids() {
    let s = start("pipeline");
    let q1 = Q::new("www.example.test.", t::A).ecs("193.0.6.0/24");
    let q2 = Q::new("www.example.test.", t::A).ecs("49.207.1.0/24");
    let q3 = Q::new("mail.example.test.", t::A);
    let mut c = connect(s.dns);
    // all three in one write
    c.write_all(&[frame(&q1.bytes()), frame(&q2.bytes()), frame(&q3.bytes())].concat())
        .unwrap();
    let mut got = std::collections::HashMap::new();
    for _ in 0..3 {
        let r = Reply::from_bytes(&read_frame(&mut c).expect("a pipelined reply"));
        got.insert(r.raw.id, r);
    }
    for (q, want) in [(&q1, "192.0.2.2"), (&q2, "192.0.2.3"), (&q3, "192.0.2.25")] {
        let r = got
            .get(&q.id)
            .unwrap_or_else(|| panic!("no reply with ID {:#x}", q.id));
        check_common(q, r);
        assert_eq!(r.addrs(), ips(&[want]));
    }
    // and the connection keeps working
    let q4 = Q::new("example.test.", t::MX);
    c.write_all(&frame(&q4.bytes())).unwrap();
    let r = Reply::from_bytes(&read_frame(&mut c).unwrap());
    check_common(&q4, &r);
}

/// Waits until the server closes `c`; returns how long it took, or None.
pub(super) fn wait_closed(c: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Some(start.elapsed());
            }
            Err(_) => return None,
        }
        if start.elapsed() > limit {
            return None;
        }
    }
}

#[test]
pub(super) fn tcp_idle_connections_are_closed() {
    let s = start_with("idle", r#"tcp_idle_timeout = "1s""#);
    // silent from the start
    let a = connect(s.dns);
    // used once, then idle
    let mut b = connect(s.dns);
    let q = Q::new("www.example.test.", t::A);
    b.write_all(&frame(&q.bytes())).unwrap();
    check_common(&q, &Reply::from_bytes(&read_frame(&mut b).unwrap()));
    // stalled in the middle of a length prefix, and of a message
    let mut c = connect(s.dns);
    c.write_all(&[0]).unwrap();
    let mut d = connect(s.dns);
    d.write_all(&frame(&q.bytes())[..10]).unwrap();
    let idle_since = Instant::now();
    let mut conns = [
        ("silent", a),
        ("idle after a query", b),
        ("half prefix", c),
        ("half message", d),
    ];
    // not closed at once
    std::thread::sleep(Duration::from_millis(300));
    for (name, conn) in conns.iter_mut() {
        conn.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        match conn.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{name}: closed before the idle timeout: {other:?}"),
        }
        conn.set_nonblocking(false).unwrap();
    }
    // but within a generous 5 s of going idle
    for (name, conn) in conns.iter_mut() {
        let left = Duration::from_secs(5).saturating_sub(idle_since.elapsed());
        assert!(
            wait_closed(conn, left.max(Duration::from_millis(1))).is_some(),
            "{name}: not closed within 5 s of going idle"
        );
    }
    // a new connection still works
    assert_eq!(
        tcp(&s, &Q::new("mail.example.test.", t::A)).addrs(),
        ips(&["192.0.2.25"])
    );
}

#[test]
pub(super) fn tcp_connection_limit() {
    let s = start_with("tcplimit", "tcp_max_connections = 2");
    let q = || Q::new("mail.example.test.", t::A);
    let ask = |c: &mut TcpStream| {
        let q = q();
        c.write_all(&frame(&q.bytes())).ok()?;
        let b = read_frame(c)?;
        let r = Reply::from_bytes(&b);
        check_common(&q, &r);
        Some(r.addrs())
    };
    let mut c1 = connect(s.dns);
    let mut c2 = connect(s.dns);
    assert_eq!(ask(&mut c1), Some(ips(&["192.0.2.25"])));
    assert_eq!(ask(&mut c2), Some(ips(&["192.0.2.25"])));
    // a third one makes room: the connection idle the longest (c1) goes
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ask(&mut c2), Some(ips(&["192.0.2.25"])), "c2 busy last");
    let mut c3 = connect(s.dns);
    assert_eq!(
        ask(&mut c3),
        Some(ips(&["192.0.2.25"])),
        "the third is served"
    );
    assert!(
        wait_closed(&mut c1, Duration::from_secs(5)).is_some(),
        "the connection idle the longest is closed"
    );
    assert_eq!(ask(&mut c2), Some(ips(&["192.0.2.25"])));
    assert_eq!(ask(&mut c3), Some(ips(&["192.0.2.25"])));
}

#[test]
pub(super) fn tcp_answers_match_udp_answers() {
    let s = start("tcpudp");
    for q in [
        Q::new("www.example.test.", t::AAAA).ecs("2001:200:dff::/48"),
        Q::new("nope.example.test.", t::A),
        Q::new("ent.example.test.", t::A).edns(1232),
        Q::new("www.example.org.", t::A),
        Q::new("_sip._tcp.example.test.", t::SRV),
    ] {
        let (u, t) = (udp(&s, &q), tcp(&s, &q));
        assert_eq!(
            u.raw.bytes[2..],
            t.raw.bytes[2..],
            "same response over UDP and TCP for {q:?}"
        );
    }
}

/// A burst of queries from one socket exercises the UDP batching path
/// (adaptive coalescing and GSO: equal-sized answers to one client leave in
/// one send). Every query must be answered exactly once, intact, whatever
/// the batching; with batching off too.
#[test]
pub(super) fn burst_from_one_socket_is_answered_once_each() {
    for (name, extra) in [("burst", ""), ("burst-nobatch", "udp_batch_wait = \"0s\"")] {
        let s = start_with(name, extra);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let subnets = ["193.0.6.0/24", "49.207.0.0/24", "24.24.24.0/24"];
        let want = [ip("192.0.2.2"), ip("192.0.2.3"), ip("192.0.2.1")];
        const N: u16 = 600;
        // read while sending, so the client's own socket buffer never overflows
        let reader = {
            let sock = sock.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 2048];
                while got.len() < N as usize {
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        break;
                    };
                    got.push(buf[..n].to_vec());
                }
                got
            })
        };
        for i in 0..N {
            let mut q = query(
                "www.example.test.",
                RecordType::A,
                Some(subnets[(i % 3) as usize]),
            );
            q.metadata.id = i;
            sock.send_to(&q.to_vec().unwrap(), s.dns).unwrap();
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let got = reader.join().unwrap();
        let mut seen = std::collections::HashSet::new();
        for d in &got {
            let m = Message::from_vec(d).expect("each datagram is one whole message");
            let id = m.metadata.id;
            assert!(id < N, "{name}: unknown id {id}");
            assert!(seen.insert(id), "{name}: id {id} answered twice");
            assert_eq!(
                addresses(&m),
                vec![want[(id % 3) as usize]],
                "{name}: id {id}"
            );
        }
        // UDP may drop under a burst, but not on loopback at this pace
        assert!(
            seen.len() >= 590,
            "{name}: only {} of {N} answered",
            seen.len()
        );
    }
}

/// A wildcard listener answers from the address the query was sent to
/// (IP_PKTINFO), and IPv4 and IPv6 wildcards can be listed together.
#[test]
pub(super) fn wildcard_listener_answers_from_the_address_asked() {
    let z = zone();
    let has_v6 = UdpSocket::bind("[::1]:0").is_ok();
    let listen = if has_v6 {
        r#"listen = ["0.0.0.0:0", "[::]:0"]"#
    } else {
        r#"listen = ["0.0.0.0:0"]"#
    };
    let s = Server::start(
        "wildcard",
        &config("").replace(r#"listen = ["127.0.0.1:0"]"#, listen),
        &[
            ("example.test.zone", z.as_str()),
            ("other.test.zone", OTHER_ZONE),
        ],
    );
    let listeners = || -> Vec<SocketAddr> {
        s.log()
            .iter()
            .filter_map(|l| l.split("dns listening on ").nth(1))
            .filter_map(|r| r.split_whitespace().next()?.parse().ok())
            .collect()
    };
    // the start is seen at the first listener's line; the second may be
    // logged a moment later
    let want = if has_v6 { 2 } else { 1 };
    wait_until(Duration::from_secs(5), || listeners().len() >= want);
    let v4 = listeners();
    assert_eq!(
        v4.len(),
        if has_v6 { 2 } else { 1 },
        "one line per listener: {:?}",
        s.log()
    );
    let port4 = v4
        .iter()
        .find(|a| a.is_ipv4())
        .expect("an IPv4 listener")
        .port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for dst in ["127.0.0.1", "127.0.0.2", "127.3.4.5"] {
        let to: SocketAddr = format!("{dst}:{port4}").parse().unwrap();
        let q = query("www.example.test.", RecordType::A, Some("193.0.6.0/24"));
        client.send_to(&q.to_vec().unwrap(), to).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = client.recv_from(&mut buf).expect("a reply");
        assert_eq!(from, to, "the reply must come from the address asked");
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.id, q.metadata.id);
        assert_eq!(addresses(&m), ips(&["192.0.2.2"]));
    }
    // the IPv6 wildcard serves IPv6 (where the host has it)
    if let Some(a6) = v4.iter().find(|a| a.is_ipv6())
        && let Ok(c6) = UdpSocket::bind("[::1]:0")
    {
        c6.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let to: SocketAddr = format!("[::1]:{}", a6.port()).parse().unwrap();
        let q = query("www.example.test.", RecordType::A, None);
        if c6.send_to(&q.to_vec().unwrap(), to).is_ok() {
            let mut buf = [0u8; 1500];
            let (_, from) = c6.recv_from(&mut buf).expect("an IPv6 reply");
            assert_eq!(from, to);
        }
    }
}

/// RFC 5001: a query that asks for the NSID gets the configured one, in
/// answers with and without ECS, over UDP and TCP; others get none.
#[test]
pub(super) fn nsid_is_answered_when_asked_for() {
    let with = |q: Q| {
        let mut q = q;
        q.edns.get_or_insert(OptSpec {
            payload: 1232,
            version: 0,
            options: vec![],
        });
        q.edns.as_mut().unwrap().options.push((3, vec![]));
        q
    };
    let nsid = |r: &Raw| -> Option<Vec<u8>> {
        r.opt
            .as_ref()?
            .options
            .iter()
            .find(|(c, _)| *c == 3)
            .map(|(_, d)| d.clone())
    };
    let s = start_with("nsid", "nsid = \"ns-test-1\"");
    for q in [
        with(Q::new("www.example.test.", t::A)),
        with(Q::new("www.example.test.", t::A).ecs("193.0.6.0/24")),
        with(Q::new("nx.example.test.", t::A)),
    ] {
        let r = raw(&udp_bytes(s.dns, &q.bytes()));
        assert_eq!(nsid(&r).as_deref(), Some(&b"ns-test-1"[..]));
    }
    let r = tcp(&s, &with(Q::new("mail.example.test.", t::A)));
    assert_eq!(nsid(&r.raw).as_deref(), Some(&b"ns-test-1"[..]));
    // not asked: not sent
    let r = raw(&udp_bytes(
        s.dns,
        &Q::new("www.example.test.", t::A).edns(1232).bytes(),
    ));
    assert_eq!(nsid(&r), None);
    // asked, but none configured
    let s = start("no-nsid");
    let r = raw(&udp_bytes(
        s.dns,
        &with(Q::new("www.example.test.", t::A)).bytes(),
    ));
    assert_eq!(nsid(&r), None);
    assert!(r.opt.is_some());
}

/// Unknown and non-IN query classes are refused without data; unknown
/// types at names that exist are NODATA with the SOA, and NXDOMAIN below
/// names that do not; over UDP and TCP, with and without EDNS.
#[test]
pub(super) fn unknown_classes_and_types() {
    let s = start("unknown-class-type");
    // CH, HS, NONE, ANY, 0 and an unassigned class
    for class in [3u16, 4, 254, 255, 0, 999, 65535] {
        for name in ["www.example.test.", "example.test.", "version.bind."] {
            let mut q = Q::new(name, t::A);
            q.qclass = class;
            for q in [q.clone(), q.edns(1232)] {
                for r in [udp(&s, &q), tcp(&s, &q)] {
                    check_common(&q, &r);
                    assert_eq!(r.rcode(), ResponseCode::Refused, "class {class} {name}");
                    assert!(!r.raw.has(AA), "class {class}: not authoritative");
                    assert!(r.msg.answers.is_empty() && r.msg.authorities.is_empty());
                }
            }
        }
    }
    // private-use, unassigned, obsolete and reserved types
    for qt in [65280u16, 65535, 32769, 99, 0, 258, 4096] {
        for name in [
            "www.example.test.",
            "example.test.",
            "mail.example.test.",
            "x.static.example.test.",
        ] {
            let q = Q::new(name, qt);
            for r in [udp(&s, &q), tcp(&s, &q)] {
                check_common(&q, &r);
                assert_eq!(r.rcode(), ResponseCode::NoError, "type {qt} at {name}");
                assert!(r.raw.has(AA), "type {qt} at {name}: AA");
                assert!(r.msg.answers.is_empty(), "type {qt} at {name}: no data");
                let (_, ttl) = r.soa();
                assert_eq!(ttl, 60, "type {qt} at {name}: negative TTL");
            }
        }
        let q = Q::new("nothing-here.example.test.", qt);
        let r = udp(&s, &q);
        check_common(&q, &r);
        assert_eq!(r.rcode(), ResponseCode::NXDomain, "type {qt}");
    }
    // the server still answers normally afterwards
    let r = udp(&s, &Q::new("mail.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.25"]));
}
