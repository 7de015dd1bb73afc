//! Robustness: floods of malformed packets, FORMERR by category, pointer loops.

use super::*;

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
pub(super) struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Valid queries whose every strict prefix is malformed.
pub(super) fn valid_queries() -> Vec<Vec<u8>> {
    vec![
        Q::new("www.example.test.", t::A).bytes(),
        Q::new("www.example.test.", t::A).edns(1232).bytes(),
        Q::new("www.example.test.", t::AAAA)
            .ecs("193.0.6.0/24")
            .bytes(),
        Q::new("app.example.test.", t::A)
            .ecs("2001:67c:2e8:22::/56")
            .bytes(),
        Q::new("nope.example.test.", t::TXT)
            .ecs("24.24.24.0/21")
            .bytes(),
    ]
}

/// Header, question for www.example.test A, then `rest`, with `ar` records.
pub(super) fn with_additional(id: u16, ar: u16, rest: &[u8]) -> Vec<u8> {
    let mut b = header(id, RD, 1, 0, 0, ar);
    b.extend_from_slice(&Q::new("www.example.test.", t::A).question());
    b.extend_from_slice(rest);
    b
}

/// An OPT record with an explicit (possibly lying) RDLENGTH.
pub(super) fn opt_with_rdlen(rdlen: u16, rdata: &[u8]) -> Vec<u8> {
    let mut rr = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    rr.extend_from_slice(&rdlen.to_be_bytes());
    rr.extend_from_slice(rdata);
    rr
}

/// The malformed packets of the UDP flood: (kind, bytes).
pub(super) fn malformed_packets() -> Vec<(String, Vec<u8>)> {
    let mut rng = Prng(0x5eed_0f51_6e90_5700);
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    // truncated headers
    for n in 0..12 {
        out.push((format!("header of {n} bytes"), rng.bytes(n)));
    }
    // valid queries cut at every length
    for q in valid_queries() {
        for n in 0..q.len() {
            out.push((format!("query cut at {n}"), q[..n].to_vec()));
        }
    }
    let qname_a = Q::new("www.example.test.", t::A).question();
    // compression pointer loops in the question
    let loops: Vec<Vec<u8>> = vec![
        vec![0xc0, 0x0c, 0, 1, 0, 1],                      // points at itself
        vec![0xc0, 0x0e, 0xc0, 0x0c, 0, 1, 0, 1],          // two pointers in a ring
        vec![3, b'w', b'w', b'w', 0xc0, 0x0c, 0, 1, 0, 1], // label then back
        vec![3, b'w', b'w', b'w', 0xc0, 0x10, 0, 1, 0, 1], // pointer to itself after a label
        vec![0xc0, 0x00, 0, 1, 0, 1],                      // into the header
        vec![0xc0, 0xff, 0, 1, 0, 1],                      // beyond the end
        vec![0xff, 0xff, 0, 1, 0, 1],                      // pointer beyond the packet
    ];
    for l in &loops {
        let mut b = header(0x0a0a, RD, 1, 0, 0, 0);
        b.extend_from_slice(l);
        out.push(("pointer loop in the question".into(), b));
    }
    // a pointer loop in the owner of an OPT record
    let mut b = header(0x0b0b, RD, 1, 0, 0, 1);
    b.extend_from_slice(&qname_a);
    let at = b.len() as u16;
    b.extend_from_slice(&(0xc000 | at).to_be_bytes());
    b.extend_from_slice(&[0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    out.push(("pointer loop in an OPT owner".into(), b));
    // labels with the reserved types 01 and 10
    for bad in [0x40u8, 0x41, 0x80, 0xbf] {
        let mut b = header(0x0c0c, RD, 1, 0, 0, 0);
        b.extend_from_slice(&[3, b'w', b'w', b'w', bad, b'x', 0, 0, 1, 0, 1]);
        out.push((format!("label type {bad:#x}"), b));
        let mut b = header(0x0c0d, RD, 1, 0, 0, 0);
        b.push(bad);
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        out.push((format!("first label type {bad:#x}"), b));
    }
    // names that are too long or labels that run past the end
    let mut b = header(0x0d0d, RD, 1, 0, 0, 0);
    for _ in 0..5 {
        b.push(63);
        b.extend_from_slice(&[b'a'; 63]);
    }
    b.extend_from_slice(&[0, 0, 1, 0, 1]);
    out.push(("name longer than 255".into(), b));
    let mut b = header(0x0d0e, RD, 1, 0, 0, 0);
    b.extend_from_slice(&[63, b'a', b'b']);
    out.push(("label past the end".into(), b));
    // huge counts with no data
    for (qd, an, ns, ar) in [
        (0xffff, 0, 0, 0),
        (1, 0xffff, 0, 0),
        (1, 0, 0xffff, 0),
        (1, 0, 0, 0xffff),
        (1, 0xffff, 0xffff, 0xffff),
        (0xffff, 0xffff, 0xffff, 0xffff),
    ] {
        let mut b = header(0x0e0e, RD, qd, an, ns, ar);
        out.push(("huge counts, no data".into(), b.clone()));
        if qd == 1 {
            b.extend_from_slice(&qname_a);
            out.push(("huge counts after the question".into(), b));
        }
    }
    // bad ECS options
    for (what, data) in bad_ecs_options() {
        out.push((
            format!("bad ECS: {what}"),
            Q::new("www.example.test.", t::A).ecs_bytes(data).bytes(),
        ));
    }
    // two ECS options, two OPT records
    out.push((
        "two ECS options".into(),
        Q::new("www.example.test.", t::A)
            .ecs("193.0.6.0/24")
            .ecs("24.24.24.0/24")
            .bytes(),
    ));
    let opt = opt_rr(&OptSpec {
        payload: 1232,
        version: 0,
        options: vec![],
    });
    out.push((
        "two OPT records".into(),
        with_additional(0x0f0f, 2, &[opt.clone(), opt].concat()),
    ));
    // OPT records with lying RDLENGTHs
    let ecs = ecs_for("193.0.6.0/24");
    let mut option = vec![0, 8];
    option.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    option.extend_from_slice(&ecs);
    for (rdlen, data) in [
        (option.len() as u16 + 1, option.clone()),
        (option.len() as u16 + 100, option.clone()),
        (0xffff, option.clone()),
        (option.len() as u16 - 1, option.clone()),
        (2, option.clone()),
        (3, vec![0, 8, 0]),
        (4, vec![0, 8, 0, 40]),
        (8, vec![0, 8, 0, 40, 0, 1, 24, 0]),
    ] {
        out.push((
            format!("OPT rdlength {rdlen}"),
            with_additional(0x1010, 1, &opt_with_rdlen(rdlen, &data)),
        ));
    }
    // a record in the answer section that runs off the end
    let mut b = header(0x1111, RD, 1, 1, 0, 0);
    b.extend_from_slice(&qname_a);
    b.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 200, 1, 2]);
    out.push(("answer record past the end".into(), b));
    // random garbage, some of it behind a plausible header
    while out.len() < 1000 {
        let n = rng.below(600);
        let mut b = rng.bytes(n);
        if rng.below(2) == 0 && b.len() >= 12 {
            b[2] &= 0x07; // QR=0, opcode 0
            b[4] = 0;
            b[5] = 1;
        }
        out.push(("random garbage".into(), b));
    }
    out
}

/// Is this reply acceptable for a malformed packet?
pub(super) fn check_malformed_reply(kind: &str, sent: &[u8], reply: &[u8]) {
    let m = Message::from_vec(reply).unwrap_or_else(|e| {
        panic!("{kind}: unparsable reply ({e})\n sent {sent:02x?}\n got {reply:02x?}")
    });
    let rc = m.metadata.response_code;
    assert!(
        matches!(
            rc,
            ResponseCode::FormErr | ResponseCode::NotImp | ResponseCode::Refused
        ),
        "{kind}: rcode {rc:?}\n sent {sent:02x?}\n got {reply:02x?}"
    );
    assert_eq!(m.metadata.message_type, MessageType::Response, "{kind}: QR");
    assert_eq!(&reply[..2], &sent[..2], "{kind}: ID echoed");
}

#[test]
pub(super) fn udp_flood_of_malformed_packets() {
    let mut s = start("flood");
    let packets = malformed_packets();
    assert!(packets.len() >= 1000);
    let mut replies = 0;
    for batch in packets.chunks(100) {
        let socks: Vec<UdpSocket> = batch
            .iter()
            .map(|(_, b)| {
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                u.send_to(b, s.dns).unwrap();
                u
            })
            .collect();
        let deadline = Instant::now() + Duration::from_millis(700);
        let mut buf = [0u8; 65535];
        for (u, (kind, sent)) in socks.iter().zip(batch) {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            u.set_read_timeout(Some(wait)).unwrap();
            if let Ok(n) = u.recv(&mut buf) {
                replies += 1;
                check_malformed_reply(kind, sent, &buf[..n]);
            }
        }
    }
    eprintln!("{replies} of {} malformed packets answered", packets.len());
    assert!(
        replies >= 700,
        "only {replies} of {} malformed packets were answered",
        packets.len()
    );
    // still serving, correctly
    let r = udp(&s, &Q::new("www.example.test.", t::A).ecs("193.0.6.0/24"));
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
    let r = tcp(&s, &Q::new("www.example.test.", t::A).ecs("49.207.1.0/24"));
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
    assert!(s.alive(), "the process is alive");
}

#[test]
pub(super) fn malformed_question_categories_get_formerr() {
    // the deterministic cases of the flood, one by one, with exact rcodes
    let s = start("formerr");
    for (kind, b) in malformed_packets() {
        let expect_formerr = kind.starts_with("pointer loop")
            || kind.starts_with("label type")
            || kind.starts_with("first label type")
            || kind.starts_with("name longer")
            || kind.starts_with("label past")
            || kind.starts_with("huge counts")
            || kind.starts_with("bad ECS")
            || kind.starts_with("two ")
            || kind.starts_with("OPT rdlength")
            || kind.starts_with("answer record");
        if !expect_formerr {
            continue;
        }
        let reply = udp_raw(s.dns, &b, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{kind}: no reply to {b:02x?}"));
        check_malformed_reply(&kind, &b, &reply);
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::FormErr,
            "{kind}: {b:02x?}"
        );
    }
    // valid queries cut inside the question or the OPT record
    for q in valid_queries() {
        for n in 12..q.len() {
            let reply = udp_raw(s.dns, &q[..n], Duration::from_secs(2))
                .unwrap_or_else(|| panic!("no reply to a query cut at {n}: {:02x?}", &q[..n]));
            check_malformed_reply("cut query", &q[..n], &reply);
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::FormErr,
                "cut at {n}"
            );
        }
    }
}

#[test]
pub(super) fn pointer_loop_in_additional_record_owner_is_formerr() {
    let s = start("arloop");
    // question www.example.test A; one additional record (type A) whose
    // owner is a pointer to itself
    let mut b = header(0x2222, RD, 1, 0, 0, 1);
    b.extend_from_slice(&Q::new("www.example.test.", t::A).question());
    let at = b.len() as u16;
    b.extend_from_slice(&(0xc000 | at).to_be_bytes());
    b.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    if let Some(reply) = udp_raw(s.dns, &b, Duration::from_secs(2)) {
        check_malformed_reply("pointer loop in an additional owner", &b, &reply);
    }
}

#[test]
pub(super) fn tcp_malformed_messages_then_a_valid_query() {
    let mut s = start("tcpflood");
    let mut rng = Prng(0xdead_beef_cafe_f00d);
    let mut msgs: Vec<(String, Vec<u8>)> = Vec::new();
    // framed malformed messages, taken from the UDP set
    let all = malformed_packets();
    for i in 0..70 {
        let (k, b) = &all[(i * 37) % all.len()];
        msgs.push((k.clone(), frame(b)));
    }
    // a length prefix larger than the data, then close
    for _ in 0..10 {
        let n = rng.below(40);
        let data = rng.bytes(n);
        let mut m = ((data.len() + 1 + rng.below(1000)) as u16)
            .to_be_bytes()
            .to_vec();
        m.extend_from_slice(&data);
        msgs.push(("length larger than the data".into(), m));
    }
    let q = Q::new("www.example.test.", t::A).bytes();
    let mut m = 200u16.to_be_bytes().to_vec();
    m.extend_from_slice(&q);
    msgs.push(("valid query with too long a prefix".into(), m));
    // a zero length, a half length prefix, a message after a bad one
    msgs.push(("zero length".into(), vec![0, 0]));
    msgs.push(("half a length prefix".into(), vec![0]));
    msgs.push((
        "bad then good".into(),
        [frame(&[1, 2, 3]), frame(&q)].concat(),
    ));
    // a query cut short inside a correct frame
    for n in [3, 12, 20] {
        msgs.push(("cut query in a frame".into(), frame(&q[..n])));
    }
    // random frames
    while msgs.len() < 100 {
        let n = rng.below(300);
        let b = rng.bytes(n);
        msgs.push(("random frame".into(), frame(&b)));
    }
    for (kind, m) in &msgs {
        let mut c = connect(s.dns);
        // the server may close early: write errors are fine
        let _ = c.write_all(m);
        let _ = c.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{kind}: connection neither answered nor closed within 5 s ({e})"),
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{kind}: bounded");
        }
        // every reply frame parses and is an allowed error
        let mut i = 0;
        let mut sent_frames = Vec::new();
        let mut j = 0;
        while j + 2 <= m.len() {
            let len = u16::from_be_bytes([m[j], m[j + 1]]) as usize;
            sent_frames.push(m[j + 2..(j + 2 + len).min(m.len())].to_vec());
            j += 2 + len;
        }
        let mut k = 0;
        while i < got.len() {
            assert!(
                i + 2 <= got.len(),
                "{kind}: half a length prefix in the reply"
            );
            let len = u16::from_be_bytes([got[i], got[i + 1]]) as usize;
            assert!(
                i + 2 + len <= got.len(),
                "{kind}: reply shorter than its prefix"
            );
            let reply = &got[i + 2..i + 2 + len];
            let sent = sent_frames.get(k).cloned().unwrap_or_default();
            if kind == "bad then good" && k == 1 {
                let m = Message::from_vec(reply).unwrap();
                assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            } else {
                check_malformed_reply(kind, &sent, reply);
            }
            i += 2 + len;
            k += 1;
        }
    }
    let r = tcp(&s, &Q::new("www.example.test.", t::A).ecs("193.0.6.0/24"));
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
    let r = udp(&s, &Q::new("mail.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.25"]));
    assert!(s.alive());
}
