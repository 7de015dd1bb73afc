//! DNS behaviour (SPEC §7): REFUSED, NXDOMAIN and NODATA, CNAME chains, static types, ANY, transfers, opcodes, EDNS, FORMERR.

use super::*;

#[test]
pub(super) fn out_of_zone_is_refused_without_aa() {
    let s = start("refused");
    for name in [
        "www.example.org.",
        "test.",
        ".",
        "example.test.example.org.",
        "xexample.test.",
    ] {
        let r = udp(&s, &Q::new(name, t::A));
        assert_eq!(r.rcode(), ResponseCode::Refused, "{name}");
        assert!(!r.raw.has(AA), "{name}: no AA on REFUSED");
        assert!(r.msg.answers.is_empty() && r.msg.authorities.is_empty());
    }
}

#[test]
pub(super) fn nxdomain_carries_soa_with_negative_ttl() {
    let s = start("nxdomain");
    let r = udp(&s, &Q::new("nope.example.test.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    assert!(r.raw.has(AA), "AA on NXDOMAIN");
    assert!(r.msg.answers.is_empty());
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("example.test.").unwrap());
    assert_eq!(ttl, 60, "min(SOA TTL 300, minimum 60)");
    let soa = r.msg.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(soa.unwrap().serial, 2026112201);
    // deeper names too
    let r = udp(&s, &Q::new("a.b.c.nope.example.test.", t::AAAA));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    // the other zone: SOA TTL 30 < minimum 600
    let r = udp(&s, &Q::new("nope.other.test.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("other.test.").unwrap());
    assert_eq!(ttl, 30, "min(SOA TTL 30, minimum 600)");
}

#[test]
pub(super) fn nodata_and_empty_non_terminals() {
    let s = start("nodata");
    for (name, qt) in [
        ("mail.example.test.", t::TXT),
        ("mail.example.test.", t::AAAA),
        ("example.test.", t::A),
        ("ent.example.test.", t::A),
        ("mid.ent.example.test.", t::A),
        ("static.example.test.", t::A),
        ("www.example.test.", t::MX),
        ("ns1.other.test.", t::MX),
    ] {
        let r = udp(&s, &Q::new(name, qt));
        assert_eq!(
            r.rcode(),
            ResponseCode::NoError,
            "{name} {qt}: NODATA is NOERROR"
        );
        assert!(r.raw.has(AA), "{name} {qt}: AA");
        assert!(r.msg.answers.is_empty(), "{name} {qt}: empty answer");
        let (_, ttl) = r.soa();
        let want = if name.ends_with("other.test.") {
            30
        } else {
            60
        };
        assert_eq!(ttl, want, "{name} {qt}: negative TTL");
    }
    // and the leaf below the empty non-terminals exists
    let r = udp(&s, &Q::new("leaf.mid.ent.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.90"]));
}

#[test]
pub(super) fn static_cname_chases_into_the_service() {
    let s = start("cname");
    for (subnet, want, scope) in [
        ("193.0.6.0/24", "192.0.2.2", 20),
        ("49.207.1.0/24", "192.0.2.3", 16),
    ] {
        for r in [
            udp(&s, &Q::new("app.example.test.", t::A).ecs(subnet)),
            tcp(&s, &Q::new("app.example.test.", t::A).ecs(subnet)),
        ] {
            assert_eq!(r.rcode(), ResponseCode::NoError);
            assert!(r.raw.has(AA));
            let a = &r.msg.answers;
            assert_eq!(a.len(), 2, "CNAME then A: {:?}", r.msg);
            assert_eq!(a[0].name, Name::from_ascii("app.example.test.").unwrap());
            assert_eq!(
                a[0].data,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(
                    Name::from_ascii("www.example.test.").unwrap()
                ))
            );
            assert_eq!(a[1].name, Name::from_ascii("www.example.test.").unwrap());
            assert_eq!(
                r.addrs(),
                ips(&[want]),
                "the service's answer for client {subnet}"
            );
            assert_eq!(r.ecs().unwrap().scope, scope);
        }
    }
    // AAAA through the CNAME
    let r = udp(
        &s,
        &Q::new("app.example.test.", t::AAAA).ecs("24.24.24.0/24"),
    );
    assert_eq!(r.answer_types(), vec![RecordType::CNAME, RecordType::AAAA]);
    assert_eq!(r.addrs(), ips(&["2001:db8:1::1"]));
    // asking for the CNAME itself does not chase
    let r = udp(&s, &Q::new("app.example.test.", t::CNAME));
    assert_eq!(r.answer_types(), vec![RecordType::CNAME]);
}

#[test]
pub(super) fn cname_to_missing_name_is_nxdomain_with_the_cname() {
    let s = start("dangling");
    let r = udp(&s, &Q::new("dangling.example.test.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    assert!(r.raw.has(AA));
    assert_eq!(r.answer_types(), vec![RecordType::CNAME]);
    assert_eq!(
        r.msg.answers[0].name,
        Name::from_ascii("dangling.example.test.").unwrap()
    );
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("example.test.").unwrap());
    assert_eq!(ttl, 60);
}

#[test]
pub(super) fn static_mx_txt_srv_caa_answers() {
    let s = start("static");
    let r = udp(&s, &Q::new("example.test.", t::MX));
    assert!(r.raw.has(AA));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::MX(mx) => {
                assert_eq!(mx.preference, 10);
                assert_eq!(mx.exchange, Name::from_ascii("mail.example.test.").unwrap());
                assert_eq!(rr.ttl, 300);
            }
            other => panic!("not MX: {other:?}"),
        },
        other => panic!("one MX expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("example.test.", t::TXT));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::TXT(txt) => assert_eq!(
                &*txt.txt_data,
                &[b"hello world".to_vec().into_boxed_slice()]
            ),
            other => panic!("not TXT: {other:?}"),
        },
        other => panic!("one TXT expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("_sip._tcp.example.test.", t::SRV));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::SRV(srv) => {
                assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 5060));
                assert_eq!(srv.target, Name::from_ascii("sip.example.test.").unwrap());
            }
            other => panic!("not SRV: {other:?}"),
        },
        other => panic!("one SRV expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("example.test.", t::CAA));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::CAA(caa) => {
                assert_eq!(caa.tag, "issue");
                assert_eq!(caa.value, b"letsencrypt.org".to_vec());
            }
            other => panic!("not CAA: {other:?}"),
        },
        other => panic!("one CAA expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("example.test.", t::NS));
    assert_eq!(r.answer_types(), vec![RecordType::NS]);
    let r = udp(&s, &Q::new("example.test.", t::SOA));
    assert_eq!(r.answer_types(), vec![RecordType::SOA]);
    assert_eq!(
        r.msg.answers[0].ttl, 300,
        "a positive SOA answer keeps its own TTL"
    );
}

#[test]
pub(super) fn any_is_minimal_over_udp_and_tcp() {
    let s = start("any");
    for name in ["example.test.", "www.example.test.", "mail.example.test."] {
        let q = Q::new(name, t::ANY);
        for r in [udp(&s, &q), tcp(&s, &q)] {
            assert_eq!(r.rcode(), ResponseCode::NoError, "{name} ANY");
            assert!(r.raw.has(AA));
            let types = r.answer_types();
            assert!(
                !types.is_empty(),
                "{name} ANY: one RRset expected, got nothing"
            );
            assert!(
                types.iter().all(|&t| t == types[0]),
                "{name} ANY: exactly one RRset (RFC 8482), got {types:?}"
            );
            assert!(
                r.msg
                    .answers
                    .iter()
                    .all(|a| a.name == r.msg.answers[0].name)
            );
            if types[0] == RecordType::HINFO {
                assert_eq!(types.len(), 1, "one synthesized HINFO");
            }
        }
    }
}

#[test]
pub(super) fn zone_transfers_are_refused_over_udp_and_tcp() {
    let s = start("xfr");
    for qt in [t::AXFR, t::IXFR] {
        let q = Q::new("example.test.", qt);
        for r in [udp(&s, &q), tcp(&s, &q)] {
            assert_eq!(r.rcode(), ResponseCode::Refused, "type {qt}");
            assert!(r.msg.answers.is_empty(), "no zone data");
        }
    }
}

#[test]
pub(super) fn other_opcodes_are_notimp() {
    let s = start("opcodes");
    for (opcode, name) in [(5u16, "UPDATE"), (2, "STATUS"), (1, "IQUERY"), (6, "DSO")] {
        let q = Q::new("example.test.", t::SOA).flags(opcode << 11);
        let b = udp_bytes(s.dns, &q.bytes());
        let r = raw(&b);
        assert_eq!(r.rcode(), 4, "{name}: NOTIMP");
        assert_eq!(r.id, q.id);
        assert!(r.has(QR));
        assert!(!r.has(AA));
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{name}");
    }
}

#[test]
pub(super) fn edns_version_1_gets_badvers_with_opt() {
    let s = start("badvers");
    let mut q = Q::new("www.example.test.", t::A).edns(1232);
    q.edns.as_mut().unwrap().version = 1;
    let b = udp_bytes(s.dns, &q.bytes());
    let r = raw(&b);
    assert_eq!(r.id, q.id);
    assert!(r.has(QR));
    let opt = r.opt.as_ref().expect("BADVERS carries an OPT record");
    assert_eq!(r.rcode(), 0, "low bits of 16 in the header");
    assert_eq!(opt.ext_rcode, 1, "high bits of 16 in the OPT");
    assert_eq!(opt.version, 0, "the version the server supports");
    let m = Message::from_vec(&b).unwrap();
    // hickory names the merged code 16 BADSIG: compare the number
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    assert!(m.answers.is_empty(), "no answer with BADVERS");
    // over TCP too
    let mut c = connect(s.dns);
    c.write_all(&frame(&q.bytes())).unwrap();
    let b = read_frame(&mut c).unwrap();
    let r = raw(&b);
    assert_eq!(r.id, q.id);
    assert_eq!(
        (r.rcode(), r.opt.map(|o| o.ext_rcode)),
        (0, Some(1)),
        "BADVERS over TCP"
    );
}

pub(super) fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

#[test]
pub(super) fn qdcount_not_one_is_formerr() {
    let s = start("qdcount");
    let q1 = Q::new("www.example.test.", t::A).question();
    let q2 = Q::new("mail.example.test.", t::A).question();
    let mut zero = header(0x4242, RD, 0, 0, 0, 0);
    let mut two = header(0x4343, RD, 2, 0, 0, 0);
    two.extend_from_slice(&q1);
    two.extend_from_slice(&q2);
    for (bytes, id) in [(zero.clone(), 0x4242), (two, 0x4343)] {
        let b = udp_bytes(s.dns, &bytes);
        let m =
            Message::from_vec(&b).unwrap_or_else(|e| panic!("unparsable FORMERR ({e}): {b:02x?}"));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, id);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.answers.is_empty());
    }
    // QDCOUNT 0 with an OPT record
    zero[11] = 1;
    zero.extend_from_slice(&opt_rr(&OptSpec {
        payload: 1232,
        version: 0,
        options: vec![],
    }));
    let m = Message::from_vec(&udp_bytes(s.dns, &zero)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
pub(super) fn responses_are_never_answered() {
    let s = start("qr");
    let q = Q::new("www.example.test.", t::A).flags(QR | RD);
    assert_eq!(
        udp_raw(s.dns, &q.bytes(), Duration::from_millis(1500)),
        None,
        "no reply to QR=1 over UDP"
    );
    let q = Q::new("www.example.test.", t::A)
        .ecs("193.0.6.0/24")
        .flags(QR | AA);
    assert_eq!(udp_raw(s.dns, &q.bytes(), Duration::from_millis(500)), None);
    // TCP: no reply frame either
    let mut c = connect(s.dns);
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    c.write_all(&frame(&q.bytes())).unwrap();
    assert_eq!(read_frame(&mut c), None, "no reply to QR=1 over TCP");
    // and the server still answers
    assert_eq!(
        udp(&s, &Q::new("mail.example.test.", t::A)).addrs(),
        ips(&["192.0.2.25"])
    );
}

/// Malformed ECS options, with a name for the message.
pub(super) fn bad_ecs_options() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("IPv4 prefix 33", ecs_data(1, 33, 0, &[193, 0, 6, 1])),
        (
            "IPv4 prefix 33, 5 bytes",
            ecs_data(1, 33, 0, &[193, 0, 6, 1, 0]),
        ),
        (
            "IPv6 prefix 129",
            ecs_data(
                2,
                129,
                0,
                &[0x20, 1, 6, 0x7c, 2, 0xe8, 0, 0x22, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
        ),
        ("extra address byte", ecs_data(1, 24, 0, &[193, 0, 6, 0])),
        (
            "two extra address bytes (IPv6)",
            ecs_data(2, 32, 0, &[0x20, 1, 2, 0, 0, 0]),
        ),
        (
            "bits set beyond the prefix",
            ecs_data(1, 20, 0, &[193, 0, 6]),
        ),
        (
            "bits set beyond the prefix (IPv6)",
            ecs_data(2, 47, 0, &[0x20, 1, 6, 0x7c, 2, 0xe9]),
        ),
        ("unknown family 3", ecs_data(3, 24, 0, &[193, 0, 6])),
        (
            "a scope prefix in a query",
            ecs_data(1, 24, 16, &[193, 0, 6]),
        ),
        ("family 0", ecs_data(0, 0, 0, &[])),
        ("option too short", vec![0, 1, 24]),
    ]
}

#[test]
pub(super) fn malformed_ecs_is_formerr_with_question_echoed() {
    let s = start("badecs");
    for (what, data) in bad_ecs_options() {
        let q = Q::new("www.example.test.", t::A).ecs_bytes(data);
        for b in [udp_bytes(s.dns, &q.bytes()), {
            let mut c = connect(s.dns);
            c.write_all(&frame(&q.bytes())).unwrap();
            read_frame(&mut c).unwrap_or_else(|| panic!("{what}: no TCP reply"))
        }] {
            let r = raw(&b);
            assert_eq!(r.rcode(), 1, "{what}: FORMERR");
            assert_eq!(r.id, q.id, "{what}: ID");
            assert!(r.has(QR));
            assert_eq!(r.qd, 1, "{what}: question echoed");
            assert_eq!(r.question, q.question(), "{what}: question echoed as sent");
            assert_eq!(r.an, 0, "{what}: no answer");
            // the query's OPT record was there: the reply has one too
            assert!(r.opt.is_some(), "{what}: OPT echoed on FORMERR");
            Message::from_vec(&b).unwrap_or_else(|e| panic!("{what}: unparsable ({e})"));
        }
    }
}

#[test]
pub(super) fn question_case_is_preserved_and_matching_is_case_insensitive() {
    let s = start("case");
    let q = Q::new("WwW.ExAmPlE.TeSt.", t::A).ecs("193.0.6.0/24");
    let r = udp(&s, &q); // checks the question bytes
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
    assert!(
        r.msg.answers[0]
            .name
            .eq_case(&Name::from_ascii("WwW.ExAmPlE.TeSt.").unwrap())
            || {
                // an owner written in lower case is acceptable too
                r.msg.answers[0].name == Name::from_ascii("www.example.test.").unwrap()
            }
    );
    let r = udp(&s, &Q::new("MAIL.EXAMPLE.TEST.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.25"]));
    let r = tcp(&s, &Q::new("eXaMpLe.TeSt.", t::MX));
    assert_eq!(r.answer_types(), vec![RecordType::MX]);
    let r = udp(&s, &Q::new("NoPe.ExAmPlE.tEsT.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    let r = udp(&s, &Q::new("FoO.StAtIc.ExAmPlE.TeSt.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.80"]));
    let r = udp(&s, &Q::new("Ns1.OtHeR.TeSt.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.153"]));
}

#[test]
pub(super) fn rd_copied_ra_never_set() {
    let s = start("rd");
    for flags in [0u16, RD] {
        for q in [
            Q::new("www.example.test.", t::A).flags(flags),
            Q::new("nope.example.test.", t::A).flags(flags),
            Q::new("www.example.org.", t::A).flags(flags),
        ] {
            udp(&s, &q); // check_common: RD copied, RA clear
            tcp(&s, &q);
        }
    }
    // also on FORMERR and NOTIMP
    for (q, rc) in [
        (
            Q::new("www.example.test.", t::A)
                .flags(RD)
                .ecs_bytes(ecs_data(1, 33, 0, &[1, 2, 3, 4])),
            1,
        ),
        (Q::new("www.example.test.", t::A).flags(RD | (5 << 11)), 4),
        // NOTIFY for a zone not taken from a primary (SPEC §10)
        (Q::new("example.test.", t::SOA).flags(RD | (4 << 11)), 5),
    ] {
        let r = raw(&udp_bytes(s.dns, &q.bytes()));
        assert_eq!(r.rcode(), rc);
        assert!(r.has(RD), "RD copied on rcode {rc}");
        assert!(!r.has(RA), "RA clear on rcode {rc}");
    }
}

#[test]
pub(super) fn server_advertises_udp_payload_1232() {
    let s = start("payload");
    for payload in [512u16, 1232, 4096, 65535] {
        let r = udp(&s, &Q::new("www.example.test.", t::A).edns(payload));
        assert_eq!(
            r.raw.opt.as_ref().unwrap().payload,
            1232,
            "client payload {payload}"
        );
    }
}

/// `signpost_dns_truncated_total` counts UDP answers that send the client
/// to TCP, not TCP answers.
#[test]
pub(super) fn only_udp_truncations_are_counted() {
    let s = start_with("tccount", "admin = \"127.0.0.1:0\"");
    let truncated = || -> f64 {
        let (_, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
        body.lines()
            .find_map(|l| l.strip_prefix("signpost_dns_truncated_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(truncated(), 0.0);
    let r = udp(&s, &Q::new("big.example.test.", t::TXT).edns(1232));
    assert!(r.raw.has(TC));
    assert_eq!(truncated(), 1.0);
    for _ in 0..3 {
        let r = tcp(&s, &Q::new("big.example.test.", t::TXT).edns(1232));
        assert!(!r.raw.has(TC), "4.5 kB fits a TCP message");
    }
    assert_eq!(truncated(), 1.0, "TCP answers are not counted");
}

#[test]
pub(super) fn large_udp_answers_are_truncated_and_keep_the_opt_record() {
    let s = start("tc");
    // EDNS payload 1232, with and without ECS, and a client that claims 4096
    for q in [
        Q::new("big.example.test.", t::TXT).edns(1232),
        Q::new("big.example.test.", t::TXT).ecs("193.0.6.0/24"),
        Q::new("big.example.test.", t::TXT).edns(4096),
    ] {
        let r = udp(&s, &q); // checks the OPT is there
        assert!(r.raw.has(TC), "TC set: {:?}", r.msg);
        assert!(
            r.raw.bytes.len() <= 1232,
            "{} bytes > 1232",
            r.raw.bytes.len()
        );
        assert!(r.raw.has(AA));
        assert_eq!(r.raw.ar, 1, "the OPT record is the only additional record");
        if q.edns.as_ref().unwrap().options.is_empty() {
            assert!(r.ecs().is_none());
        } else {
            assert_eq!(r.ecs().unwrap().scope, 0);
        }
    }
    // no EDNS: 512 bytes
    let q = Q::new("big.example.test.", t::TXT);
    let r = udp(&s, &q);
    assert!(r.raw.has(TC));
    assert!(r.raw.bytes.len() <= 512);
    assert!(r.raw.opt.is_none());
    // TCP returns everything
    for q in [q, Q::new("big.example.test.", t::TXT).edns(1232)] {
        let r = tcp(&s, &q);
        assert!(!r.raw.has(TC));
        assert_eq!(r.msg.answers.len(), 40);
        assert!(r.answer_types().iter().all(|&t| t == RecordType::TXT));
        assert!(r.raw.bytes.len() > 4000);
    }
}

#[test]
pub(super) fn answer_that_fits_only_without_opt_is_still_answered() {
    let s = start("tcedge");
    // The answer is 504 bytes; with the 11-byte OPT it is 515 > 512.
    let q = Q::new("edge.example.test.", t::TXT).edns(512);
    let b = udp_raw(s.dns, &q.bytes(), Duration::from_secs(2))
        .expect("a reply (TC with OPT, or the answer)");
    let r = Reply::from_bytes(&b);
    check_common(&q, &r);
    assert!(b.len() <= 512);
    assert!(
        r.raw.has(TC),
        "the answer does not fit with its OPT record: TC"
    );
    // with ECS the OPT is bigger still
    let q = Q::new("edge.example.test.", t::TXT).ecs("193.0.6.0/24");
    let mut q = q;
    q.edns.as_mut().unwrap().payload = 512;
    let b = udp_raw(s.dns, &q.bytes(), Duration::from_secs(2)).expect("a reply with ECS");
    check_common(&q, &Reply::from_bytes(&b));
}

#[test]
pub(super) fn edge_sized_answer_works_over_tcp_and_without_edns() {
    let s = start("edgeok");
    // without EDNS the 504-byte answer fits in 512
    let r = udp(&s, &Q::new("edge.example.test.", t::TXT));
    assert!(!r.raw.has(TC));
    assert_eq!(r.raw.bytes.len(), 504);
    let r = tcp(&s, &Q::new("edge.example.test.", t::TXT).edns(512));
    assert!(!r.raw.has(TC));
    assert_eq!(r.answer_types(), vec![RecordType::TXT]);
}

#[test]
pub(super) fn wildcard_answers_with_the_query_name() {
    let s = start("wild");
    for name in ["foo.static.example.test.", "a.b.static.example.test."] {
        let r = udp(&s, &Q::new(name, t::A));
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert!(r.raw.has(AA));
        assert_eq!(r.addrs(), ips(&["192.0.2.80"]));
        assert_eq!(
            r.msg.answers[0].name,
            Name::from_ascii(name).unwrap(),
            "owner = query name"
        );
        // NODATA for other types at a wildcard match
        let r = udp(&s, &Q::new(name, t::MX));
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert!(r.msg.answers.is_empty());
        r.soa();
    }
}

#[test]
pub(super) fn delegation_below_the_apex_is_a_referral() {
    let s = start("referral");
    for name in [
        "host.sub.example.test.",
        "sub.example.test.",
        "a.b.sub.example.test.",
    ] {
        let r = udp(&s, &Q::new(name, t::A));
        assert_eq!(r.rcode(), ResponseCode::NoError, "{name}");
        assert!(!r.raw.has(AA), "{name}: a referral is not authoritative");
        assert!(r.msg.answers.is_empty(), "{name}: no answer");
        assert_eq!(r.raw.ns, 1, "{name}: one NS record in authority");
        let ns: Vec<_> = r
            .msg
            .authorities
            .iter()
            .filter(|a| a.record_type() == RecordType::NS)
            .collect();
        assert_eq!(ns.len(), 1, "{name}: NS in authority: {:?}", r.msg);
        assert_eq!(ns[0].name, Name::from_ascii("sub.example.test.").unwrap());
        assert_eq!(
            ns[0].data,
            RData::NS(hickory_proto::rr::rdata::NS(
                Name::from_ascii("ns.sub.example.test.").unwrap()
            ))
        );
        assert!(
            !r.msg
                .authorities
                .iter()
                .any(|a| a.record_type() == RecordType::SOA),
            "{name}: no SOA in a referral"
        );
        let glue: Vec<_> = r
            .msg
            .additionals
            .iter()
            .filter(|a| a.record_type() == RecordType::A)
            .collect();
        assert_eq!(glue.len(), 1, "{name}: glue in additional: {:?}", r.msg);
        assert_eq!(
            glue[0].name,
            Name::from_ascii("ns.sub.example.test.").unwrap()
        );
        assert_eq!(
            glue[0].data,
            RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 54)))
        );
    }
}
