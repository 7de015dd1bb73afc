use super::*;

const FILE: &str = "example.test.zone";

const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@   3600 IN SOA ns1.example.test. hostmaster.example.test. (
        2024010101 ; serial
        7200       ; refresh
        900        ; retry
        1209600    ; expire
        60 )       ; minimum
    IN NS  ns1
    IN NS  ns2.example.test.
    IN MX  10 mail
    IN TXT "v=spf1 -all"
    IN CAA 0 issue "letsencrypt.org"
ns1 IN A 192.0.2.53
ns2 IN AAAA 2001:db8::53
mail IN A 192.0.2.25
Alias IN CNAME mail
_sip._tcp IN SRV 10 60 5060 sip
sip 100 IN A 192.0.2.60
sip 200 IN A 192.0.2.61
*.static IN A 192.0.2.80
Known.Static IN A 192.0.2.81
a.b.deep IN TXT "deep"
sub IN NS ns.sub
ns.sub IN A 192.0.2.99
ns.sub IN AAAA 2001:db8::99
x.ns.sub IN TXT "hidden below the cut"
www IN TXT "beside a service"
"#;

/// Wire form of a textual name, lower-cased (independent of the code under test).
fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.to_ascii_lowercase().bytes());
    }
    out.push(0);
    out
}

/// Offsets of each label of a wire name, including the root label.
fn label_offsets(w: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    loop {
        v.push(i as u8);
        if w[i] == 0 {
            return v;
        }
        i += 1 + w[i] as usize;
    }
}

fn parse(text: &str, origin: &str) -> Vec<ParsedRRset> {
    match parse_text(text, None, FILE, origin) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn build(zones: &[(&str, &str, &str)], services: &[(&str, u32)]) -> Result<Table, Vec<ZoneError>> {
    let inputs = zones
        .iter()
        .map(|&(name, file, text)| ZoneInput {
            name,
            file,
            rrsets: match parse_text(text, None, file, name) {
                Ok(v) => v,
                Err(e) => panic!("{e}"),
            },
        })
        .collect();
    Table::build(inputs, services)
}

fn table() -> Table {
    match build(
        &[("example.test.", FILE, ZONE)],
        &[("www.example.test.", 7)],
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e:#?}"),
    }
}

fn look<'a>(t: &'a Table, name: &str, qtype: u16) -> Lookup<'a> {
    let w = wire(name);
    t.lookup(&w, &label_offsets(&w), qtype)
}

fn found<'a>(t: &'a Table, name: &str) -> &'a Node {
    match look(t, name, rtype::A) {
        Lookup::Found(n) => n,
        other => panic!("{name}: expected Found, got {other:?}"),
    }
}

fn build_errors(zones: &[(&str, &str, &str)], services: &[(&str, u32)]) -> Vec<String> {
    match build(zones, services) {
        Ok(_) => panic!("expected zone errors"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// The RDATA of every record of an RRset.
fn rdatas(rr: &RRset) -> Vec<Vec<u8>> {
    (0..rr.count as usize)
        .map(|i| rr.rdata(i).to_vec())
        .collect()
}

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

/// Type numbers the production `rtype` module does not name.
mod rtype {
    pub use super::super::rtype::*;
    pub const MX_TYPE: u16 = 15;
    pub const TXT_TYPE: u16 = 16;
    pub const SRV_TYPE: u16 = 33;
    pub const CAA_TYPE: u16 = 257;
}

#[test]
fn cname_target_and_rrsets_sorted_by_type() {
    let t = table();
    let alias = found(&t, "alias.example.test.");
    assert_eq!(
        alias.cname.as_deref(),
        Some(&wire("mail.example.test.")[..])
    );
    assert_eq!(
        alias.rrset(rtype::CNAME).unwrap().rdata(0),
        &wire("mail.example.test.")[..]
    );
    let apex = found(&t, "example.test.");
    let types: Vec<u16> = apex.rrsets.iter().map(|r| r.rtype).collect();
    assert_eq!(types, [2, 6, 15, 16, 257]);
    assert!(apex.cname.is_none());
    assert_eq!(apex.name_len as usize, wire("example.test.").len());
}

#[test]
fn lookups() {
    let t = table();
    assert_eq!(t.zones.len(), 1);
    assert_eq!(t.zones[0].name, "example.test.");
    assert_eq!(&*t.zones[0].apex, &wire("example.test.")[..]);

    // exact names, mixed case in the file, lowercase keys
    for name in [
        "example.test.",
        "ns1.example.test.",
        "alias.example.test.",
        "known.static.example.test.",
        "*.static.example.test.",
    ] {
        let n = found(&t, name);
        assert!(!n.rrsets.is_empty(), "{name} has data");
        assert_eq!(n.zone, 0);
    }
    assert_eq!(
        found(&t, "known.static.example.test.")
            .rrset(rtype::A)
            .unwrap()
            .rdata(0),
        &[192, 0, 2, 81]
    );

    // empty non-terminals exist without data
    for name in [
        "b.deep.example.test.",
        "deep.example.test.",
        "static.example.test.",
        "_tcp.example.test.",
    ] {
        let n = found(&t, name);
        assert!(n.rrsets.is_empty(), "{name} is empty");
        assert!(n.service.is_none() && n.cname.is_none());
    }

    // the service node: no static addresses, but other data may sit beside it
    let www = found(&t, "www.example.test.");
    assert_eq!(www.service, Some(7));
    assert!(www.rrset(rtype::A).is_none());
    assert!(www.rrset(rtype::TXT_TYPE).is_some());
    assert_eq!(found(&t, "mail.example.test.").service, None);

    // names that do not exist
    for name in [
        "nope.example.test.",
        "a.nope.example.test.",
        "x.b.deep.example.test.",
        "ww.example.test.",
        "x.www.example.test.",
    ] {
        match look(&t, name, rtype::A) {
            Lookup::NxDomain { zone } => assert_eq!(zone, 0, "{name}"),
            other => panic!("{name}: expected NXDOMAIN, got {other:?}"),
        }
    }

    // outside every zone
    for name in [
        ".",
        "test.",
        "example.org.",
        "www.example.org.",
        "xexample.test.",
        "example.test.example.org.",
    ] {
        assert!(
            matches!(look(&t, name, rtype::A), Lookup::NotAuth),
            "{name}: expected NotAuth, got {:?}",
            look(&t, name, rtype::A)
        );
    }
}

#[test]
fn wildcards() {
    let t = table();
    for name in [
        "foo.static.example.test.",
        "a.b.static.example.test.",
        "known2.static.example.test.",
    ] {
        match look(&t, name, rtype::A) {
            Lookup::Wildcard(n) => {
                assert_eq!(
                    n.rrset(rtype::A).unwrap().rdata(0),
                    &[192, 0, 2, 80],
                    "{name}"
                )
            }
            other => panic!("{name}: expected Wildcard, got {other:?}"),
        }
    }
    // an existing name blocks the wildcard below it (RFC 4592 closest encloser)
    match look(&t, "x.known.static.example.test.", rtype::A) {
        Lookup::NxDomain { zone: 0 } => {}
        other => panic!("expected NXDOMAIN below an existing name, got {other:?}"),
    }
    // a wildcard only covers names below its parent
    assert!(matches!(
        look(&t, "foo.example.test.", rtype::A),
        Lookup::NxDomain { .. }
    ));
    assert!(
        matches!(look(&t, "static.example.test.", rtype::A), Lookup::Found(n) if n.rrsets.is_empty())
    );
}

#[test]
fn delegations_refer_with_glue() {
    let t = table();
    for name in [
        "sub.example.test.",
        "www.sub.example.test.",
        "a.b.sub.example.test.",
        "ns.sub.example.test.",
        "x.ns.sub.example.test.",
    ] {
        let cut = match look(&t, name, rtype::A) {
            Lookup::Referral(n) => n,
            other => panic!("{name}: expected Referral, got {other:?}"),
        };
        let r = cut.referral.as_ref().expect("referral data at the cut");
        assert_eq!(rdatas(&r.ns), [wire("ns.sub.example.test.")]);
        let mut glue: Vec<(Vec<u8>, u16, Vec<Vec<u8>>)> = r
            .glue
            .iter()
            .map(|(owner, rr)| (owner.to_vec(), rr.rtype, rdatas(rr)))
            .collect();
        glue.sort();
        let mut v6 = "2001:db8::99"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        v6.truncate(16);
        assert_eq!(
            glue,
            [
                (
                    wire("ns.sub.example.test."),
                    rtype::A,
                    vec![vec![192, 0, 2, 99]]
                ),
                (wire("ns.sub.example.test."), rtype::AAAA, vec![v6]),
            ],
            "{name}"
        );
    }
    // DS at the cut is answered by the parent; below the cut it is still a referral
    match look(&t, "sub.example.test.", rtype::DS) {
        Lookup::Found(n) => {
            assert!(n.referral.is_some(), "the cut node itself");
            assert!(n.rrset(rtype::NS).is_some());
        }
        other => panic!("DS at the cut: expected Found, got {other:?}"),
    }
    assert!(matches!(
        look(&t, "www.sub.example.test.", rtype::DS),
        Lookup::Referral(_)
    ));
    // NS at the apex is not a cut
    assert!(
        matches!(look(&t, "example.test.", rtype::NS), Lookup::Found(n) if n.referral.is_none())
    );
    assert!(found(&t, "mail.example.test.").cut.is_none());
}

#[test]
fn glue_for_out_of_bailiwick_ns_is_omitted() {
    let text = "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\nsub IN NS ns.elsewhere.org.\n";
    let t = match build(&[("example.test.", FILE, text)], &[]) {
        Ok(t) => t,
        Err(e) => panic!("{e:#?}"),
    };
    let Lookup::Referral(cut) = look(&t, "host.sub.example.test.", rtype::A) else {
        panic!("expected a referral");
    };
    let r = cut.referral.as_ref().unwrap();
    assert_eq!(rdatas(&r.ns), [wire("ns.elsewhere.org.")]);
    assert!(r.glue.is_empty());
}

const CHILD: &str = "$TTL 120\n@ IN SOA ns.child hm.child 1 2 3 4 10\n@ IN NS ns.child\nns IN A 192.0.2.200\nhost IN A 192.0.2.201\n";

#[test]
fn nested_zones_are_served_by_the_child() {
    let parent = format!("{ZONE}child IN NS ns.child\nns.child IN A 192.0.2.250\n");
    for order in [[0usize, 1], [1, 0]] {
        let zones = [
            ("example.test.", FILE, parent.as_str()),
            ("child.example.test.", "child.zone", CHILD),
        ];
        let zones = [zones[order[0]], zones[order[1]]];
        let t = match build(&zones, &[]) {
            Ok(t) => t,
            Err(e) => panic!("{e:#?}"),
        };
        let child = t
            .zones
            .iter()
            .position(|z| z.name == "child.example.test.")
            .unwrap() as u16;
        let parent_i = t
            .zones
            .iter()
            .position(|z| z.name == "example.test.")
            .unwrap() as u16;
        assert_eq!(t.zones[0].name, zones[0].0, "zones keep the input order");

        // the child's apex wins over the parent's delegation
        let apex = found(&t, "child.example.test.");
        assert_eq!(apex.zone, child);
        assert!(apex.rrset(rtype::SOA).is_some());
        assert!(apex.referral.is_none());
        assert_eq!(
            found(&t, "ns.child.example.test.")
                .rrset(rtype::A)
                .unwrap()
                .rdata(0),
            &[192, 0, 2, 200],
            "the child's data, not the parent's glue"
        );
        assert_eq!(found(&t, "host.child.example.test.").zone, child);
        match look(&t, "nope.child.example.test.", rtype::A) {
            Lookup::NxDomain { zone } => assert_eq!(zone, child),
            other => panic!("{other:?}"),
        }
        match look(&t, "nope.example.test.", rtype::A) {
            Lookup::NxDomain { zone } => assert_eq!(zone, parent_i),
            other => panic!("{other:?}"),
        }
        assert_eq!(found(&t, "mail.example.test.").zone, parent_i);
    }
}

#[test]
fn negative_ttl_is_min_of_soa_ttl_and_minimum() {
    for (soa_ttl, minimum, want) in [(3600u32, 60u32, 60u32), (30, 600, 30), (300, 300, 300)] {
        let text = format!(
            "@ {soa_ttl} IN SOA ns hm 1 2 3 4 {minimum}\n@ 60 IN NS ns\nns 60 IN A 192.0.2.1\n"
        );
        let t = match build(&[("example.test.", FILE, &text)], &[]) {
            Ok(t) => t,
            Err(e) => panic!("{e:#?}"),
        };
        let soa = &t.zones[0].soa_negative;
        assert_eq!(soa.rtype, rtype::SOA);
        assert_eq!(
            &soa.wire[4..8],
            &want.to_be_bytes(),
            "TTL {soa_ttl} minimum {minimum}"
        );
        // the SOA itself keeps its TTL at the apex
        let apex = found(&t, "example.test.").rrset(rtype::SOA).unwrap();
        assert_eq!(&apex.wire[4..8], &soa_ttl.to_be_bytes());
    }
}

const GOOD_HEAD: &str = "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n";

#[test]
fn build_errors_name_the_file_and_reason() {
    let cases: Vec<(String, &str)> = vec![
        (
            "$TTL 60\n@ IN NS ns\nns IN A 192.0.2.1\n".into(),
            "no SOA record at the apex example.test.",
        ),
        (
            "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\nns IN A 192.0.2.1\n".into(),
            "no NS records at the apex example.test.",
        ),
        (
            "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\nsub IN NS ns\nns IN A 192.0.2.1\n".into(),
            "no NS records at the apex",
        ),
        (
            format!("{GOOD_HEAD}alias IN CNAME ns\nalias IN TXT \"x\"\n"),
            "alias.example.test.: CNAME and other data at the same name",
        ),
        (
            format!("{GOOD_HEAD}@ IN CNAME elsewhere.org.\n"),
            "example.test.: CNAME at the zone apex",
        ),
        (
            format!("{GOOD_HEAD}www.example.org. IN A 192.0.2.9\n"),
            "outside zone example.test.",
        ),
        (
            format!("{GOOD_HEAD}example.test.example.org. IN A 192.0.2.9\n"),
            "outside zone example.test.",
        ),
        (
            format!("{GOOD_HEAD}sub IN SOA ns hm 1 2 3 4 5\n"),
            "SOA only at the apex",
        ),
    ];
    for (text, reason) in cases {
        let errs = build_errors(&[("example.test.", FILE, &text)], &[]);
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{FILE}: ")) && e.contains(reason)),
            "{text:?}: want {reason:?} in {errs:#?}"
        );
    }
}

#[test]
fn a_service_name_cannot_have_static_addresses() {
    for (rec, rt) in [
        ("IN A 192.0.2.7", "A"),
        ("IN AAAA 2001:db8::7", "AAAA"),
        ("IN CNAME ns", "CNAME"),
    ] {
        let text = format!("{GOOD_HEAD}www {rec}\n");
        let errs = build_errors(
            &[("example.test.", FILE, &text)],
            &[("www.example.test.", 0)],
        );
        let want = format!(
            "{FILE}: www.example.test. {rt}: a service name cannot also have static {rt} records"
        );
        assert!(errs.contains(&want), "want {want:?} in {errs:#?}");
    }
    // other types beside a service are fine, and so is a service at the apex
    let text = format!("{GOOD_HEAD}www IN TXT \"x\"\nwww IN MX 10 ns\n");
    let t = match build(
        &[("example.test.", FILE, &text)],
        &[("www.example.test.", 0), ("example.test.", 1)],
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e:#?}"),
    };
    assert_eq!(found(&t, "www.example.test.").service, Some(0));
    assert_eq!(found(&t, "example.test.").service, Some(1));
    // a service that does not exist in the file is created, with its empty non-terminals
    let t = match build(
        &[("example.test.", FILE, GOOD_HEAD)],
        &[("a.b.example.test.", 3)],
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e:#?}"),
    };
    assert_eq!(found(&t, "a.b.example.test.").service, Some(3));
    assert!(found(&t, "b.example.test.").rrsets.is_empty());
}

#[test]
fn a_service_outside_every_zone_is_an_error() {
    let errs = build_errors(
        &[("example.test.", FILE, GOOD_HEAD)],
        &[("www.example.org.", 0)],
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("www.example.org.") && errs[0].contains("outside every zone"),
        "{errs:#?}"
    );
}

#[test]
fn all_build_errors_are_reported() {
    let a = "$TTL 60\n@ IN NS ns\nns IN A 192.0.2.1\n";
    let b = "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\nns IN A 192.0.2.1\n";
    let errs = build_errors(&[("a.test.", "a.zone", a), ("b.test.", "b.zone", b)], &[]);
    assert_eq!(
        errs,
        [
            "a.zone: no SOA record at the apex a.test.",
            "b.zone: no NS records at the apex b.test."
        ]
    );
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

use std::path::Path;

const DEEP_CHILD: &str = "$TTL 120\n@ IN SOA ns hm 1 2 3 4 10\n@ IN NS ns\nns IN A 192.0.2.200\n";

#[test]
fn delegation_two_labels_down_makes_an_empty_non_terminal() {
    // not served here: the parent's own delegation creates b.example.test.
    let parent = format!("{GOOD_HEAD}a.b IN NS ns.elsewhere.org.\n");
    let t = match build(&[("example.test.", FILE, &parent)], &[]) {
        Ok(t) => t,
        Err(e) => panic!("{e:#?}"),
    };
    assert!(found(&t, "b.example.test.").rrsets.is_empty());
}

#[test]
fn served_child_zone_two_labels_down_keeps_its_empty_non_terminal() {
    for parent in [
        GOOD_HEAD.to_string(),
        format!("{GOOD_HEAD}a.b IN NS ns.a.b\n"),
    ] {
        let t = match build(
            &[
                ("example.test.", FILE, &parent),
                ("a.b.example.test.", "ab.zone", DEEP_CHILD),
            ],
            &[],
        ) {
            Ok(t) => t,
            Err(e) => panic!("{e:#?}"),
        };
        assert_eq!(found(&t, "a.b.example.test.").zone, 1);
        // RFC 8020: NXDOMAIN here would deny that a.b.example.test. exists
        match look(&t, "b.example.test.", rtype::A) {
            Lookup::Found(n) => {
                assert!(n.rrsets.is_empty());
                assert_eq!(n.zone, 0);
            }
            other => panic!("b.example.test.: expected an empty non-terminal, got {other:?}"),
        }
    }
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
