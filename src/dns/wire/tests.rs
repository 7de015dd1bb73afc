use super::*;

use hickory_proto::op::{Edns as HEdns, Message, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

use crate::steer::Rng;

// ---- packet building helpers ----

/// A 12-byte header.
fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

/// Wire form of a name, case kept.
fn qname(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.bytes());
    }
    out.push(0);
    out
}

/// Header (QDCOUNT 1, ARCOUNT `ar`, RD) and one question.
fn query(name: &str, qtype: u16, ar: u16) -> Vec<u8> {
    let mut p = header(0xbeef, flags::RD, 1, 0, 0, ar);
    p.extend(qname(name));
    p.extend(qtype.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    p
}

/// An OPT record owned by the root.
fn opt(payload: u16, version: u8, dnssec_ok: bool, options: &[(u16, Vec<u8>)]) -> Vec<u8> {
    opt_owned(&[0], payload, version, dnssec_ok, options)
}

fn opt_owned(
    owner: &[u8],
    payload: u16,
    version: u8,
    dnssec_ok: bool,
    options: &[(u16, Vec<u8>)],
) -> Vec<u8> {
    let mut rdata = Vec::new();
    for (code, data) in options {
        rdata.extend(code.to_be_bytes());
        rdata.extend((data.len() as u16).to_be_bytes());
        rdata.extend(data);
    }
    let mut r = owner.to_vec();
    r.extend(41u16.to_be_bytes());
    r.extend(payload.to_be_bytes());
    r.extend([0, version, if dnssec_ok { 0x80 } else { 0 }, 0]);
    r.extend((rdata.len() as u16).to_be_bytes());
    r.extend(rdata);
    r
}

/// An EDNS option: (code, data).
type EdnsOpt = (u16, Vec<u8>);

/// An ECS option body.
fn ecs(family: u16, source: u8, scope: u8, addr: &[u8]) -> (u16, Vec<u8>) {
    let mut d = family.to_be_bytes().to_vec();
    d.extend([source, scope]);
    d.extend(addr);
    (OPT_ECS, d)
}

/// A query for www.example.test A with one OPT carrying `options`.
fn edns_query(options: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut p = query("www.example.test", 1, 1);
    p.extend(opt(1232, 0, false, options));
    p
}

const QEND: usize = 12 + 18 + 4; // header + "www.example.test." + type/class

fn ok(p: &[u8]) -> Query<'_> {
    match parse(p) {
        Ok(q) => q,
        Err(e) => panic!("expected a query, got {e:?} for {p:02x?}"),
    }
}

fn err(p: &[u8]) -> ParseError {
    match parse(p) {
        Ok(q) => panic!("expected an error, parsed {:?} for {p:02x?}", q.name()),
        Err(e) => e,
    }
}

// ---- valid queries ----

#[test]
fn plain_query() {
    let p = query("WwW.Example.TEST", 28, 0);
    let q = ok(&p);
    assert_eq!(q.id, 0xbeef);
    assert_eq!(q.flags, flags::RD);
    assert_eq!(q.opcode, 0);
    assert_eq!(q.name(), &qname("www.example.test")[..], "lowercased");
    assert_eq!(q.labels(), &[0, 4, 12, 17]);
    assert_eq!(q.qtype, 28);
    assert_eq!(q.qclass, 1);
    assert_eq!(q.question_end, QEND);
    assert_eq!(q.question(), &p[12..QEND]);
    assert!(
        q.question().starts_with(&qname("WwW.Example.TEST")),
        "echoed as sent"
    );
    assert!(q.edns.is_none());
    assert_eq!(q.packet.len(), p.len());
}

#[test]
fn root_and_single_label_names() {
    let p = query(".", 2, 0);
    let q = ok(&p);
    assert_eq!(q.name(), &[0]);
    assert_eq!(q.labels(), &[0]);
    assert_eq!(q.question_end, 12 + 1 + 4);

    let p = query("TEST", 6, 0);
    let q = ok(&p);
    assert_eq!(q.name(), b"\x04test\x00");
    assert_eq!(q.labels(), &[0, 5]);
}

#[test]
fn name_of_255_octets_is_accepted_256_is_not() {
    // 63+63+63+61 octet labels: 4*1 + 250 + 1 = 255 octets
    let max = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(61)
    );
    let p = query(&max, 1, 0);
    let q = ok(&p);
    assert_eq!(q.name().len(), 255);
    assert_eq!(q.labels(), &[0, 64, 128, 192, 254]);

    let over = format!(
        "{}.{}.{}.{}",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62)
    );
    assert_eq!(
        err(&query(&over, 1, 0)),
        ParseError::FormErr {
            question_end: 12,
            opt: false
        }
    );
    // many short labels: 128 one-octet labels = 256 octets with the root
    let many = vec!["x"; 128].join(".");
    assert_eq!(
        err(&query(&many, 1, 0)),
        ParseError::FormErr {
            question_end: 12,
            opt: false
        }
    );
    let fine = vec!["x"; 127].join(".");
    assert_eq!(ok(&query(&fine, 1, 0)).labels().len(), 128);
}

#[test]
fn query_with_edns_without_ecs() {
    let mut p = query("www.example.test", 1, 1);
    p.extend(opt(4096, 0, true, &[(10, vec![1, 2, 3, 4, 5, 6, 7, 8])]));
    let q = ok(&p);
    assert_eq!(
        q.edns,
        Some(Edns {
            payload: 4096,
            version: 0,
            dnssec_ok: true,
            compact_ok: false,
            ecs: None,
            nsid: false,
            keepalive: false
        })
    );
    assert_eq!(q.question_end, QEND);

    let mut p = query("www.example.test", 1, 1);
    p.extend(opt(512, 0, false, &[]));
    let e = ok(&p).edns.expect("edns");
    assert_eq!(
        (e.payload, e.version, e.dnssec_ok, e.ecs),
        (512, 0, false, None)
    );
}

#[test]
fn valid_ecs_options() {
    let v4 = |s: &str| IpAddr::V4(s.parse().unwrap());
    let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
    let cases = [
        (ecs(1, 24, 0, &[192, 0, 2]), 1, 24, v4("192.0.2.0"), 3),
        (ecs(1, 32, 0, &[192, 0, 2, 77]), 1, 32, v4("192.0.2.77"), 4),
        (ecs(1, 22, 0, &[198, 51, 100]), 1, 22, v4("198.51.100.0"), 3),
        (ecs(1, 23, 0, &[198, 51, 98]), 1, 23, v4("198.51.98.0"), 3),
        (ecs(1, 1, 0, &[0x80]), 1, 1, v4("128.0.0.0"), 1),
        (ecs(1, 0, 0, &[]), 1, 0, v4("0.0.0.0"), 0),
        (ecs(2, 0, 0, &[]), 2, 0, v6("::"), 0),
        (
            ecs(2, 56, 0, &[0x20, 0x01, 0x0d, 0xb8, 0, 1, 0x02]),
            2,
            56,
            v6("2001:db8:1:200::"),
            7,
        ),
        (
            ecs(2, 128, 0, &v6octets("2001:db8::1")),
            2,
            128,
            v6("2001:db8::1"),
            16,
        ),
        (
            ecs(2, 33, 0, &[0x20, 0x01, 0x0d, 0xb8, 0x80]),
            2,
            33,
            v6("2001:db8:8000::"),
            5,
        ),
    ];
    for ((code, data), family, source, addr, addr_len) in cases {
        let p = edns_query(&[(10, vec![9; 8]), (code, data.clone())]);
        let q = ok(&p);
        let e = q.edns.expect("edns");
        assert_eq!(
            e.ecs,
            Some(Ecs {
                family,
                source,
                addr,
                addr_len
            }),
            "{data:02x?}"
        );
        assert_eq!(e.payload, 1232);
    }
}

fn v6octets(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn hickory_built_queries_parse() {
    for (subnet, family, source) in [
        (
            Some(ClientSubnet::new("198.51.100.0".parse().unwrap(), 24, 0)),
            1,
            24,
        ),
        (
            Some(ClientSubnet::new("2001:db8:1::".parse().unwrap(), 48, 0)),
            2,
            48,
        ),
        (None, 0, 0),
    ] {
        let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(HQuery::query(
            Name::from_ascii("Www.Example.Test.").unwrap(),
            RecordType::AAAA,
        ));
        let mut e = HEdns::new();
        e.set_max_payload(1400);
        e.set_dnssec_ok(true);
        if let Some(s) = subnet {
            e.options_mut().insert(EdnsOption::Subnet(s));
        }
        m.set_edns(e);
        let p = m.to_vec().unwrap();
        let q = ok(&p);
        assert_eq!(q.id, 0x4242);
        assert_eq!(q.name(), &qname("www.example.test")[..]);
        assert_eq!(q.qtype, 28);
        assert_eq!(q.question_end, QEND);
        let edns = q.edns.expect("edns");
        assert_eq!((edns.payload, edns.dnssec_ok), (1400, true));
        match subnet {
            Some(s) => {
                let got = edns.ecs.expect("ecs");
                assert_eq!(
                    (got.family, got.source, got.addr),
                    (family, source, s.addr())
                );
            }
            None => assert!(edns.ecs.is_none()),
        }
    }
}

// ---- errors ----

#[test]
fn ecs_formerr_rules() {
    let cases: Vec<(&str, Vec<EdnsOpt>)> = vec![
        ("v4 source prefix 33", vec![ecs(1, 33, 0, &[1, 2, 3, 4, 0])]),
        (
            "v4 source prefix 33, 4 octets",
            vec![ecs(1, 33, 0, &[1, 2, 3, 4])],
        ),
        ("v6 source prefix 129", vec![ecs(2, 129, 0, &[0x20; 17])]),
        ("v4 too many octets", vec![ecs(1, 24, 0, &[192, 0, 2, 0])]),
        ("v4 too few octets", vec![ecs(1, 24, 0, &[192, 0])]),
        (
            "v6 too few octets",
            vec![ecs(2, 56, 0, &[0x20, 1, 0x0d, 0xb8, 0, 1])],
        ),
        (
            "v6 too many octets",
            vec![ecs(2, 48, 0, &[0x20, 1, 0x0d, 0xb8, 0, 1, 0])],
        ),
        ("source 0 with an address octet", vec![ecs(1, 0, 0, &[0])]),
        ("v4 bits beyond /22", vec![ecs(1, 22, 0, &[198, 51, 101])]),
        ("v4 bits beyond /23", vec![ecs(1, 23, 0, &[198, 51, 99])]),
        ("v4 bits beyond /1", vec![ecs(1, 1, 0, &[0x40])]),
        (
            "v6 bits beyond /33",
            vec![ecs(2, 33, 0, &[0x20, 1, 0x0d, 0xb8, 0x40])],
        ),
        ("unknown family 3", vec![ecs(3, 8, 0, &[10])]),
        ("family 0", vec![ecs(0, 0, 0, &[])]),
        (
            "option shorter than its fixed part",
            vec![(OPT_ECS, vec![0, 1, 24])],
        ),
        (
            "two ECS options",
            vec![ecs(1, 24, 0, &[192, 0, 2]), ecs(1, 24, 0, &[192, 0, 2])],
        ),
        (
            "two ECS options of both families",
            vec![ecs(1, 0, 0, &[]), ecs(2, 0, 0, &[])],
        ),
    ];
    for (what, options) in cases {
        assert_eq!(
            err(&edns_query(&options)),
            ParseError::FormErr {
                question_end: QEND,
                opt: true
            },
            "{what}"
        );
    }
}

#[test]
fn opt_record_formerr_rules() {
    let good_opt = opt(1232, 0, false, &[]);
    let mut two = query("www.example.test", 1, 2);
    two.extend(&good_opt);
    two.extend(&good_opt);

    // OPT owned by a name other than the root
    let mut named = query("www.example.test", 1, 1);
    named.extend(opt_owned(&qname("x"), 1232, 0, false, &[]));
    // ... or by a compression pointer to the question name
    let mut pointed = query("www.example.test", 1, 1);
    pointed.extend(opt_owned(&[0xc0, 12], 1232, 0, false, &[]));

    // RDLENGTH past the end of the packet
    let mut long = edns_query(&[]);
    let n = long.len();
    long[n - 2..].copy_from_slice(&10u16.to_be_bytes());

    // an option whose length runs past the OPT RDATA (into another record)
    let mut spill = query("www.example.test", 1, 2);
    let mut o = opt(1232, 0, false, &[(10, vec![1, 2, 3, 4])]);
    let m = o.len();
    o[m - 6..m - 4].copy_from_slice(&8u16.to_be_bytes()); // option length 8, RDATA holds 4
    spill.extend(o);
    spill.extend(qname("a"));
    spill.extend([0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4]);

    // a truncated option header inside the RDATA
    let mut stub = query("www.example.test", 1, 1);
    let mut o = opt(1232, 0, false, &[]);
    let m = o.len();
    o[m - 2..].copy_from_slice(&2u16.to_be_bytes());
    o.extend([0, 8]);
    stub.extend(o);

    // ARCOUNT says 2, one record present
    let mut missing = edns_query(&[]);
    missing[11] = 2;

    for (what, p) in [
        ("two OPT records", two),
        ("OPT not owned by root", named),
        ("OPT owned by a pointer", pointed),
        ("RDLENGTH past the end", long),
        ("option past RDATA", spill),
        ("truncated option header", stub),
        ("missing additional record", missing),
    ] {
        assert!(
            matches!(
                err(&p),
                ParseError::FormErr {
                    question_end: QEND,
                    ..
                }
            ),
            "{what}"
        );
    }
}

#[test]
fn other_records_around_the_opt_are_stepped_over() {
    // an answer record (pointer owner) and an additional A record before the OPT
    let mut p = header(7, 0, 1, 1, 0, 2);
    p.extend(qname("www.example.test"));
    p.extend([0, 1, 0, 1]);
    p.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    p.extend(qname("ns.example.test"));
    p.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 2]);
    p.extend(opt(
        1232,
        0,
        false,
        &[ecs(1, 24, 0, &[203, 0, 113]).clone()],
    ));
    let q = ok(&p);
    assert_eq!(q.question_end, QEND);
    let e = q.edns.expect("edns");
    assert_eq!(
        e.ecs.map(|c| c.addr),
        Some(IpAddr::V4("203.0.113.0".parse().unwrap()))
    );
}

#[test]
fn question_count_must_be_one() {
    for qd in [0u16, 2, 0xffff] {
        let mut p = query("www.example.test", 1, 0);
        p[4..6].copy_from_slice(&qd.to_be_bytes());
        assert_eq!(
            err(&p),
            ParseError::FormErr {
                question_end: 12,
                opt: false
            },
            "QDCOUNT {qd}"
        );
    }
    // QDCOUNT 0 and nothing after the header
    assert_eq!(
        err(&header(1, 0, 0, 0, 0, 0)),
        ParseError::FormErr {
            question_end: 12,
            opt: false
        }
    );
}

#[test]
fn responses_and_runts_are_dropped() {
    let mut p = query("www.example.test", 1, 0);
    p[2] |= 0x80;
    assert_eq!(err(&p), ParseError::Drop);
    // a response with a bad question count is dropped too
    let mut p = header(1, flags::QR, 0, 0, 0, 0);
    assert_eq!(err(&p), ParseError::Drop);
    p.truncate(11);
    for len in 0..12 {
        assert_eq!(err(&p[..len.min(p.len())]), ParseError::Drop, "{len} bytes");
    }
    assert_eq!(err(&[0u8; 11]), ParseError::Drop);
}

#[test]
fn other_opcodes_are_not_implemented() {
    for opcode in [1u16, 2, 4, 5, 15] {
        let mut p = query("www.example.test", 6, 0);
        p[2..4].copy_from_slice(&(opcode << 11).to_be_bytes());
        assert_eq!(
            err(&p),
            ParseError::NotImp {
                question_end: QEND,
                edns: None
            },
            "opcode {opcode}"
        );
        // without a question
        let p = header(1, opcode << 11, 0, 0, 0, 0);
        assert_eq!(
            err(&p),
            ParseError::NotImp {
                question_end: 12,
                edns: None
            },
            "opcode {opcode}, QDCOUNT 0"
        );
    }
}

#[test]
fn not_implemented_opcodes_keep_the_opt_record() {
    let mut p = query("www.example.test", 1, 0);
    p[2..4].copy_from_slice(&(4u16 << 11).to_be_bytes()); // NOTIFY
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    match err(&p) {
        ParseError::NotImp {
            edns: Some(e),
            question_end,
        } => {
            assert_eq!(question_end, QEND);
            assert_eq!(e.payload, 1232);
        }
        other => panic!("{other:?}"),
    }
}

/// A crafted chain of compression pointers costs a bounded number of steps.
#[test]
fn long_pointer_chains_are_refused() {
    let mut p = query("www.example.test", 1, 0);
    // one additional record whose RDATA is a chain of 40 pointers, each to
    // the one before, the first to the question's root label
    p[11] = 2;
    let root = QEND - 5; // the root label of the question name
    p.extend_from_slice(&[0, 0, 16, 0, 1, 0, 0, 0, 0]);
    let rdlen_at = p.len();
    p.extend_from_slice(&[0, 0]);
    let start = p.len();
    let mut prev = root;
    for _ in 0..40 {
        let here = p.len();
        p.extend_from_slice(&(0xc000 | prev as u16).to_be_bytes());
        prev = here;
    }
    let rdlen = (p.len() - start) as u16;
    p[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    // a second record owned by the end of the chain: 40 hops, refused
    p.extend_from_slice(&(0xc000 | prev as u16).to_be_bytes());
    p.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(
        matches!(err(&p), ParseError::FormErr { .. }),
        "{:?}",
        err(&p)
    );
}

#[test]
fn edns_version_above_zero_is_badvers() {
    for version in [1u8, 2, 255] {
        let mut p = query("www.example.test", 1, 1);
        p.extend(opt(1232, version, false, &[ecs(1, 24, 0, &[192, 0, 2])]));
        assert_eq!(
            err(&p),
            ParseError::BadVers { question_end: QEND },
            "version {version}"
        );
    }
}

#[test]
fn bad_question_names_are_formerr() {
    let mut pointer = header(1, 0, 1, 0, 0, 0);
    pointer.extend([3, b'w', b'w', b'w', 0xc0, 12, 0, 1, 0, 1]);
    let mut pointer_first = header(1, 0, 1, 0, 0, 0);
    pointer_first.extend([0xc0, 12, 0, 1, 0, 1]);
    let mut ext40 = header(1, 0, 1, 0, 0, 0);
    ext40.extend([0x41, b'x', 0, 0, 1, 0, 1]);
    let mut ext80 = header(1, 0, 1, 0, 0, 0);
    ext80.extend([0x81, b'x', 0, 0, 1, 0, 1]);
    let mut label_past_end = header(1, 0, 1, 0, 0, 0);
    label_past_end.extend([10, b'a', b'b']);
    let mut no_type = header(1, 0, 1, 0, 0, 0);
    no_type.extend([1, b'a', 0, 0, 1]);
    for (what, p) in [
        ("compression pointer", pointer),
        ("pointer as the first label", pointer_first),
        ("label type 0x40", ext40),
        ("label type 0x80", ext80),
        ("label past the end", label_past_end),
        ("missing class", no_type),
    ] {
        assert_eq!(
            err(&p),
            ParseError::FormErr {
                question_end: 12,
                opt: false
            },
            "{what}"
        );
    }
}

#[test]
fn every_truncation_of_a_valid_query_is_drop_or_formerr() {
    let full = edns_query(&[ecs(1, 24, 0, &[192, 0, 2]), (10, vec![7; 8])]);
    assert!(ok(&full).edns.and_then(|e| e.ecs).is_some());
    for len in 0..full.len() {
        let want = if len < 12 {
            ParseError::Drop
        } else if len < QEND {
            ParseError::FormErr {
                question_end: 12,
                opt: false,
            }
        } else {
            // whether the cut OPT record is echoed depends on where it is cut
            let opt = matches!(err(&full[..len]), ParseError::FormErr { opt: true, .. });
            ParseError::FormErr {
                question_end: QEND,
                opt,
            }
        };
        assert_eq!(err(&full[..len]), want, "prefix of {len} bytes");
    }
}

#[test]
fn random_and_mutated_packets_never_panic() {
    let mut rng = Rng::new(2024);
    let base = edns_query(&[
        ecs(2, 56, 0, &[0x20, 1, 0x0d, 0xb8, 0, 1, 2]),
        (10, vec![1; 8]),
    ]);
    for _ in 0..20_000 {
        let mut p = base.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(p.len() as u64) as usize;
            p[i] = rng.next_u64() as u8;
        }
        let cut = rng.below(p.len() as u64 + 1) as usize;
        if let Ok(q) = parse(&p[..cut]) {
            assert!(q.question_end <= cut);
            assert!(q.name().len() <= 255);
            assert_eq!(q.name().last(), Some(&0));
        }
    }
    for _ in 0..20_000 {
        let len = rng.below(80) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if len > 5 && rng.below(2) == 0 {
            // make it look like a query more often
            p[2] &= 0x07;
            p[4] = 0;
            p[5] = 1;
        }
        let _ = parse(&p).map(|q| q.question_end);
    }
}

// ---- writer ----

#[test]
fn writer_refuses_to_write_past_its_limit() {
    let mut buf = [0u8; 16];
    let mut w = Writer::new(&mut buf, 10);
    assert!(w.is_empty());
    assert_eq!(w.put(&[1, 2, 3, 4]), Ok(()));
    assert_eq!(w.u16(0x0506), Ok(()));
    assert_eq!(w.u32(0x0708_090a), Ok(()));
    assert_eq!(w.len(), 10);
    assert_eq!(w.bytes(), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    // full: nothing is written, the length stays
    assert_eq!(w.put(&[11]), Err(Full));
    assert_eq!(w.u16(1), Err(Full));
    assert_eq!(w.len(), 10);
    // raising the limit lets more in; it never exceeds the buffer
    w.set_limit(100);
    assert_eq!(w.put(&[0; 6]), Ok(()));
    assert_eq!(w.put(&[0]), Err(Full));
    assert_eq!(w.len(), 16);
    // a partial write is refused whole
    w.truncate(14);
    assert_eq!(w.u32(0xffff_ffff), Err(Full));
    assert_eq!(w.len(), 14);
    assert_eq!(w.u16(0xabcd), Ok(()));
    assert_eq!(w.get_u16(14), 0xabcd);
}

#[test]
fn writer_limit_is_clamped_to_the_buffer() {
    let mut buf = [0u8; 4];
    let mut w = Writer::new(&mut buf, 1232);
    assert_eq!(w.put(&[1, 2, 3, 4, 5]), Err(Full));
    assert_eq!(w.len(), 0);
    assert_eq!(w.put(&[1, 2, 3, 4]), Ok(()));
    assert_eq!(w.put(&[]), Ok(()));
    assert_eq!(w.put(&[5]), Err(Full));
}

#[test]
fn writer_edits_and_pointers() {
    let mut buf = [0u8; 32];
    let mut w = Writer::new(&mut buf, 32);
    w.put(&[0; 4]).unwrap();
    w.set_u16(2, 0x1234);
    assert_eq!(w.bytes(), &[0, 0, 0x12, 0x34]);
    // outside what was written: ignored, and reads give 0
    w.set_u16(3, 0xffff);
    w.set_u16(10, 0xffff);
    assert_eq!(w.bytes(), &[0, 0, 0x12, 0x34]);
    assert_eq!(w.get_u16(3), 0);
    assert_eq!(w.get_u16(100), 0);
    w.pointer(12).unwrap();
    assert_eq!(&w.bytes()[4..], &[0xc0, 12]);
    w.pointer(0x3fff).unwrap();
    assert_eq!(&w.bytes()[6..], &[0xff, 0xff]);
    // truncate only shortens
    w.truncate(100);
    assert_eq!(w.len(), 8);
    w.truncate(2);
    assert_eq!(w.bytes(), &[0, 0]);
    // a smaller limit than what is written refuses further writes
    w.put(&[1, 2, 3]).unwrap();
    w.set_limit(4);
    assert_eq!(w.put(&[9]), Err(Full));
}
