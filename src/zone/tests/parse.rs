//! Zone text into RRsets: record types, names, `$ORIGIN`, syntax errors
//! with their lines, and the wire form of what was read.

use std::path::Path;

use super::*;

#[test]
fn parses_every_record_type_with_origin_ttl_and_relative_names() {
    let sets = parse(ZONE, "example.test.");
    let get = |name: &str, t: RecordType| {
        sets.iter()
            .find(|s| s.name.to_lowercase().to_ascii() == name && s.rtype == t)
            .unwrap_or_else(|| panic!("no {name} {t}"))
    };
    let soa = get("example.test.", RecordType::SOA);
    assert_eq!(soa.ttl, 3600);
    match &soa.rdatas[..] {
        [RData::SOA(s)] => {
            assert_eq!(s.mname.to_ascii(), "ns1.example.test.");
            assert_eq!(s.rname.to_ascii(), "hostmaster.example.test.");
            assert_eq!(
                (s.serial, s.refresh, s.retry, s.expire, s.minimum),
                (2024010101, 7200, 900, 1209600, 60)
            );
        }
        other => panic!("{other:?}"),
    }
    let ns = get("example.test.", RecordType::NS);
    assert_eq!(ns.ttl, 300, "$TTL applies");
    let mut targets: Vec<String> = ns
        .rdatas
        .iter()
        .map(|r| match r {
            RData::NS(n) => n.0.to_ascii(),
            other => panic!("{other:?}"),
        })
        .collect();
    targets.sort();
    assert_eq!(targets, ["ns1.example.test.", "ns2.example.test."]);
    assert!(matches!(&get("example.test.", RecordType::MX).rdatas[..],
        [RData::MX(m)] if m.preference == 10 && m.exchange.to_ascii() == "mail.example.test."));
    assert!(matches!(
        &get("example.test.", RecordType::TXT).rdatas[..],
        [RData::TXT(_)]
    ));
    assert!(matches!(
        &get("example.test.", RecordType::CAA).rdatas[..],
        [RData::CAA(_)]
    ));
    assert!(
        matches!(&get("ns1.example.test.", RecordType::A).rdatas[..],
        [RData::A(a)] if a.0 == std::net::Ipv4Addr::new(192, 0, 2, 53))
    );
    assert!(
        matches!(&get("ns2.example.test.", RecordType::AAAA).rdatas[..],
        [RData::AAAA(a)] if a.0 == "2001:db8::53".parse::<std::net::Ipv6Addr>().unwrap())
    );
    assert!(
        matches!(&get("alias.example.test.", RecordType::CNAME).rdatas[..],
        [RData::CNAME(c)] if c.0.to_ascii() == "mail.example.test.")
    );
    assert!(
        matches!(&get("_sip._tcp.example.test.", RecordType::SRV).rdatas[..],
        [RData::SRV(s)] if (s.priority, s.weight, s.port) == (10, 60, 5060)
            && s.target.to_ascii() == "sip.example.test.")
    );
    // an RRset takes the lowest TTL of its records (RFC 2181 §5.2)
    let sip = get("sip.example.test.", RecordType::A);
    assert_eq!((sip.ttl, sip.rdatas.len()), (100, 2));
    assert_eq!(get("*.static.example.test.", RecordType::A).rdatas.len(), 1);
}

#[test]
fn origin_directive_changes_relative_names() {
    let text = "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n$ORIGIN other.example.test.\nhost IN A 192.0.2.2\n";
    let sets = parse(text, "example.test.");
    let mut names: Vec<String> = sets
        .iter()
        .map(|s| format!("{} {}", s.name.to_lowercase().to_ascii(), s.rtype))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "example.test. NS",
            "example.test. SOA",
            "host.other.example.test. A",
            "ns.example.test. A"
        ]
    );
    assert!(sets.iter().all(|s| s.ttl == 60));
}

#[test]
fn a_record_wire_encoding() {
    let t = table();
    let mail = found(&t, "mail.example.test.");
    let a = mail.rrset(rtype::A).expect("A at mail");
    assert_eq!(a.rtype, rtype::A);
    assert_eq!(a.count, 1);
    assert_eq!(&*a.offsets, &[0]);
    // TYPE=1 CLASS=IN TTL=300 RDLENGTH=4 RDATA
    assert_eq!(
        &*a.wire,
        &[0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 25]
    );
    assert_eq!(a.rdata(0), &[192, 0, 2, 25]);

    // two records: both at the set's TTL, offsets 14 bytes apart
    let sip = found(&t, "sip.example.test.").rrset(rtype::A).unwrap();
    assert_eq!(sip.count, 2);
    assert_eq!(&*sip.offsets, &[0, 14]);
    assert_eq!(sip.wire.len(), 28);
    for off in [0, 14] {
        assert_eq!(&sip.wire[off + 4..off + 8], &100u32.to_be_bytes());
    }
    let mut got = rdatas(sip);
    got.sort();
    assert_eq!(got, [vec![192, 0, 2, 60], vec![192, 0, 2, 61]]);

    let aaaa = found(&t, "ns2.example.test.").rrset(rtype::AAAA).unwrap();
    assert_eq!(&aaaa.wire[..10], &[0, 28, 0, 1, 0, 0, 0x01, 0x2c, 0, 16]);
    assert_eq!(
        aaaa.rdata(0),
        &"2001:db8::53"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
}

#[test]
fn names_inside_rdata_are_uncompressed() {
    let t = table();
    let apex = found(&t, "example.test.");
    let mx = apex.rrset(rtype::MX_TYPE).expect("MX");
    let mut want = vec![0, 10];
    want.extend(wire("mail.example.test."));
    assert_eq!(mx.rdata(0), &want[..]);
    // RDLENGTH matches
    assert_eq!(
        u16::from_be_bytes([mx.wire[8], mx.wire[9]]) as usize,
        want.len()
    );

    let mut ns = rdatas(apex.rrset(rtype::NS).unwrap());
    ns.sort();
    assert_eq!(ns, [wire("ns1.example.test."), wire("ns2.example.test.")]);

    let srv = found(&t, "_sip._tcp.example.test.")
        .rrset(rtype::SRV_TYPE)
        .unwrap();
    let mut want = vec![0, 10, 0, 60, 0x13, 0xc4];
    want.extend(wire("sip.example.test."));
    assert_eq!(srv.rdata(0), &want[..]);

    let soa = apex.rrset(rtype::SOA).unwrap();
    let mut want = wire("ns1.example.test.");
    want.extend(wire("hostmaster.example.test."));
    for v in [2024010101u32, 7200, 900, 1209600, 60] {
        want.extend(v.to_be_bytes());
    }
    assert_eq!(soa.rdata(0), &want[..]);
    assert_eq!(&soa.wire[4..8], &3600u32.to_be_bytes());

    let txt = apex.rrset(rtype::TXT_TYPE).unwrap();
    let mut want = vec![11];
    want.extend(b"v=spf1 -all");
    assert_eq!(txt.rdata(0), &want[..]);

    let caa = apex.rrset(rtype::CAA_TYPE).unwrap();
    let mut want = vec![0, 5];
    want.extend(b"issue");
    want.extend(b"letsencrypt.org");
    assert_eq!(caa.rdata(0), &want[..]);
}

fn syntax_error(text: &str) -> ZoneError {
    match parse_text(text, None, FILE, "example.test.") {
        Ok(v) => panic!("expected a syntax error, parsed {v:?}"),
        Err(e) => e,
    }
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let cases = [
        // a bad address after a multi-line SOA and comments
        format!("{ZONE}bad IN A 192.0.2.300\nok IN A 192.0.2.1\n"),
        // a bad line right after a parenthesised record
        "$TTL 60\n@ IN SOA ns hm (\n 1\n 2\n 3\n 4\n 5 )\nbad IN AAAA 192.0.2.1\n@ IN NS ns\n".to_string(),
        // parentheses and semicolons inside quotes do not confuse the count
        "$TTL 60\n@ IN SOA ns hm ( 1 2 3 4 5 )\nt IN TXT ( \"a ( b\" ; comment (\n  \"c d\" )\n\nbad IN MX x mail\n".to_string(),
        // an unknown type
        format!("{GOOD_HEAD}\n\nbad IN BOGUS 1\n"),
        // the very first line
        "bad IN A nonsense\n$TTL 60\n".to_string(),
    ];
    for text in cases {
        let e = syntax_error(&text);
        let want = line_of(&text, "bad ");
        assert_eq!(e.file, FILE);
        assert_eq!(e.line, Some(want), "{text:?}: {e}");
        assert!(
            e.to_string().starts_with(&format!("{FILE}:{want}: ")),
            "{e}"
        );
    }
}

#[test]
fn syntax_error_inside_parentheses_is_reported_at_or_after_the_record_start() {
    let text = "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nt IN TXT ( \"a\"\n  \"b\" )\nns IN SOA ns hm (\n 1\n bad\n 3 4 5 )\n";
    let e = syntax_error(text);
    let start = line_of(text, "ns IN SOA");
    let bad = line_of(text, "bad");
    let line = e.line.expect("a line");
    assert!((start..=bad).contains(&line), "{e}");
}

#[test]
fn bad_origin_is_an_error() {
    let e = parse_text(GOOD_HEAD, None, FILE, "exa mple..test.").unwrap_err();
    assert_eq!(e.file, FILE);
}

#[test]
fn parse_file_reports_unreadable_files() {
    let e = parse_file(
        Path::new("/nonexistent/x.zone"),
        "zones/x.zone",
        "example.test.",
    )
    .unwrap_err();
    assert_eq!(e.file, "zones/x.zone");
    assert_eq!(e.line, None);
    assert!(
        e.to_string().starts_with("zones/x.zone: cannot read: "),
        "{e}"
    );
}

#[test]
fn wire_helpers() {
    assert_eq!(text_wire("WWW.Example.test."), wire("www.example.test."));
    assert_eq!(text_wire("."), vec![0]);
    assert_eq!(wire_text(&wire("www.example.test.")), "www.example.test.");
    assert_eq!(wire_text(&[0]), ".");
    assert_eq!(wire_text(&[3, b'a', b'.', 0xff, 0]), "a\\046\\255.");
    let name = Name::from_ascii("Mail.Example.TEST.").unwrap();
    assert_eq!(name_wire(&name), wire("mail.example.test."));
    for (name, apex, want) in [
        ("www.example.test.", "example.test.", true),
        ("example.test.", "example.test.", true),
        ("anything.", ".", true),
        ("xexample.test.", "example.test.", false),
        ("test.", "example.test.", false),
    ] {
        assert_eq!(wire_in(&wire(name), &wire(apex)), want, "{name} in {apex}");
    }
    // one label "ab\x04test" whose last bytes equal "test." but not on a label boundary
    let tricky = [7, b'a', b'b', 4, b't', b'e', b's', b't', 0];
    assert_eq!(&tricky[3..], &wire("test.")[..]);
    assert!(!wire_in(&tricky, &wire("test.")));
}

#[test]
fn rrset_encode_limits() {
    let big = RData::TXT(hickory_proto::rr::rdata::TXT::new(vec![
        "x".repeat(255);
        300
    ]));
    let e = RRset::encode(16, 60, &[big]).unwrap_err();
    assert!(e.contains("65535"), "{e}");
    let empty = RRset::encode(1, 60, &[]).unwrap();
    assert_eq!((empty.count, empty.wire.len()), (0, 0));
}

#[test]
fn two_cnames_at_one_name_are_an_error_naming_both_lines() {
    let cases = [
        // plain, relative names
        format!("{GOOD_HEAD}alias IN CNAME ns\nother IN A 192.0.2.2\nalias IN CNAME other\n"),
        // the second one by a blank owner, with a TTL and class in either order
        format!("{GOOD_HEAD}alias 60 IN CNAME ns\n  IN 30 CNAME other.example.test.\n"),
        // absolute and relative spellings, different case, after $ORIGIN
        format!(
            "{GOOD_HEAD}$ORIGIN sub.example.test.\nx CNAME a\n; a comment\nX.SUB.example.test. CNAME ( b )\n"
        ),
    ];
    for text in cases {
        let e = syntax_error(&text);
        let first = text
            .lines()
            .position(|l| l.to_ascii_lowercase().contains("cname"))
            .unwrap()
            + 1;
        let lines: Vec<&str> = text.lines().collect();
        let second = lines
            .iter()
            .rposition(|l| l.to_ascii_lowercase().contains("cname"))
            .unwrap()
            + 1;
        assert_eq!(e.line, Some(second), "{text:?}: {e}");
        assert!(
            e.to_string()
                .contains(&format!("the first is on line {first}")),
            "{e}"
        );
    }
    // the same CNAME twice is a harmless duplicate; CNAMEs at different
    // names, a CNAME target named "cname" and TXT data saying CNAME are fine
    for text in [
        format!("{GOOD_HEAD}alias IN CNAME ns\nalias IN CNAME ns.example.test.\n"),
        format!(
            "{GOOD_HEAD}a IN CNAME ns\nb IN CNAME ns\ncname IN A 192.0.2.3\nc IN CNAME cname\n"
        ),
        format!("{GOOD_HEAD}t IN TXT \"x CNAME y\" ; CNAME z\nt2 IN TXT \"CNAME\"\n"),
    ] {
        if let Err(e) = parse_text(&text, None, FILE, "example.test.") {
            panic!("{text:?}: {e}");
        }
    }
}
