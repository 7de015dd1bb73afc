//! The table: building it from zones and services (and every error that
//! can stop it), then lookups, wildcards, delegations and nested zones.

use super::*;

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
