//! The signed responses on the wire, read with hickory-proto: what DO
//! and CO change and what they do not, the compact denial's exact form,
//! NXNAME queries, truncation. Fixture keys (tests/data/dnssec): no
//! external tool needed.

use std::collections::BTreeSet;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::common::*;
use crate::tools::*;
use crate::*;

/// The fixture KSK (64068) and ZSK (13951), ECDSA P-256.
fn start(name: &str) -> (Server, KeyFile, KeyFile) {
    let dir = scratch(name);
    let ksk = fixture(&dir, "Kexample.test.+013+64068");
    let zsk = fixture(&dir, "Kexample.test.+013+13951");
    let s = serve(&dir, &[&ksk, &zsk]);
    (s, ksk, zsk)
}

/// The DNSKEY set, asked with DO.
fn keys(s: &Server) -> Vec<hickory_proto::dnssec::rdata::DNSKEY> {
    dnskeys(&s.udp(&q("example.test.", RecordType::DNSKEY, DO)))
}

/// The one NSEC of a response's authority section: (owner, next, bitmap).
fn the_nsec(m: &Message) -> (Name, Name, BTreeSet<u16>) {
    let nsecs: Vec<_> = m
        .authorities
        .iter()
        .filter_map(|r| as_nsec(r).map(|n| (r.name.clone(), n)))
        .collect();
    assert_eq!(nsecs.len(), 1, "one NSEC: {m:?}");
    let (owner, n) = &nsecs[0];
    (owner.clone(), n.next_domain_name().clone(), bitmap(n))
}

/// Types of the records of a section, in order.
fn section_types(records: &[hickory_proto::rr::Record]) -> Vec<RecordType> {
    records.iter().map(|r| r.record_type()).collect()
}

const NAMES: [(&str, RecordType); 16] = [
    ("www.example.test.", RecordType::A),
    ("www.example.test.", RecordType::AAAA),
    ("mail.example.test.", RecordType::A),
    ("app.example.test.", RecordType::A),
    ("x.wild.example.test.", RecordType::A),
    ("nope.example.test.", RecordType::A),
    ("mail.example.test.", RecordType::TXT),
    ("mid.ent.example.test.", RecordType::A),
    ("v4only.example.test.", RecordType::AAAA),
    ("example.test.", RecordType::SOA),
    ("example.test.", RecordType::NS),
    ("example.test.", RecordType::MX),
    ("example.test.", RecordType::AAAA),
    ("insecure.example.test.", RecordType::A),
    ("secure.example.test.", RecordType::A),
    ("dangle.example.test.", RecordType::A),
];

#[test]
fn without_do_no_signature_anywhere() {
    let (s, ..) = start("dnssec-wire-nodo");
    for (name, t) in NAMES {
        for (how, m) in [
            ("no EDNS", query(name, t, None)),
            ("EDNS without DO", q(name, t, 0)),
            ("CO without DO", q(name, t, CO)),
        ] {
            let r = s.udp(&m);
            assert!(!has_dnssec(&r), "{name} {t} ({how}): {r:?}");
            assert!(
                !all(&r).any(|x| matches!(
                    x.record_type(),
                    RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
                )),
                "{name} {t} ({how}): key records: {r:?}"
            );
            assert_eq!(opt_flags(&r) & (DO | CO), 0, "{name} {t} ({how})");
            if name.starts_with("nope") {
                assert_eq!(r.metadata.response_code, ResponseCode::NXDomain, "{how}");
            }
        }
    }
    // the key sets only to a query for them, and unsigned
    for t in [RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY] {
        let r = s.udp(&q("example.test.", t, 0));
        let n = if t == RecordType::DNSKEY { 2 } else { 1 };
        assert_eq!(section_types(&r.answers), vec![t; n], "{t}: {r:?}");
        assert!(!has_dnssec(&r), "{t}: {r:?}");
    }
    // big answers over TCP, unsigned
    let r = s.tcp(&q("big.example.test.", RecordType::TXT, 0));
    assert_eq!(r.answers.len(), 40);
    assert!(!has_dnssec(&r));
}

#[test]
fn with_do_answers_carry_rrsigs_that_verify() {
    let (s, ksk, zsk) = start("dnssec-wire-do");
    let keys = keys(&s);
    assert_eq!(
        keys.iter()
            .map(|k| k.calculate_key_tag().unwrap())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([ksk.tag, zsk.tag])
    );
    let now = unix_now();
    // (name, type, labels of the RRSIG, the types signed in the answer)
    let cases: [(&str, RecordType, u8, &[RecordType]); 10] = [
        ("www.example.test.", RecordType::A, 3, &[RecordType::A]),
        (
            "www.example.test.",
            RecordType::AAAA,
            3,
            &[RecordType::AAAA],
        ),
        ("mail.example.test.", RecordType::A, 3, &[RecordType::A]),
        (
            "MaIl.ExAmPlE.tEsT.",
            RecordType::AAAA,
            3,
            &[RecordType::AAAA],
        ),
        ("example.test.", RecordType::MX, 2, &[RecordType::MX]),
        ("mx2.example.test.", RecordType::MX, 3, &[RecordType::MX]),
        ("txt2.example.test.", RecordType::TXT, 3, &[RecordType::TXT]),
        (
            "app.example.test.",
            RecordType::A,
            3,
            &[RecordType::CNAME, RecordType::A],
        ),
        // a wildcard expansion is signed as if the name existed
        ("x.wild.example.test.", RecordType::A, 4, &[RecordType::A]),
        ("a.b.wild.example.test.", RecordType::A, 5, &[RecordType::A]),
    ];
    for (name, t, labels, signed) in cases {
        let r = s.udp(&q(name, t, DO));
        assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(opt_flags(&r) & (DO | CO), DO, "DO echoed: {name}");
        for &st in signed {
            let sigs = sigs_over(&r.answers, st);
            assert_eq!(sigs.len(), 1, "{name} {st}: one RRSIG: {r:?}");
            let i = sigs[0].input();
            assert_eq!(i.key_tag, zsk.tag, "{name} {st}");
            assert_eq!(u8::from(i.algorithm), 13);
            assert_eq!(i.signer_name, Name::from_ascii("example.test.").unwrap());
            let (inc, exp) = (
                i64::from(i.sig_inception.get()),
                i64::from(i.sig_expiration.get()),
            );
            assert!(inc <= now && now + 7 * 86_400 <= exp, "{inc} {now} {exp}");
            assert_eq!(exp - inc, 14 * 86_400 + 3600, "window: validity + 1 h");
            let rec = r.answers.iter().find(|x| x.record_type() == st).unwrap();
            assert_eq!(i.original_ttl, rec.ttl, "{name} {st}");
        }
        // the RRSIG over the type asked for: at the query name, or at
        // the CNAME's target
        let owner = if signed.contains(&RecordType::CNAME) {
            "www.example.test."
        } else {
            name
        };
        let owner_sig = r
            .answers
            .iter()
            .find(|x| as_rrsig(x).is_some_and(|g| g.input().type_covered == t))
            .unwrap();
        assert_eq!(as_rrsig(owner_sig).unwrap().input().num_labels, labels);
        assert_eq!(owner_sig.name, Name::from_ascii(owner).unwrap());
        assert_eq!(verify_sigs(&r, &keys), signed.len(), "{name}: {r:?}");
    }
    // answer sets signed on first use verify too
    for _ in 0..5 {
        let r = s.udp(&q("many.example.test.", RecordType::A, DO));
        assert_eq!(addrs(&r).len(), 3, "{r:?}");
        assert_eq!(tags(&r, RecordType::A), BTreeSet::from([zsk.tag]));
        assert_eq!(verify_sigs(&r, &keys), 1, "{r:?}");
    }
    // the apex key sets are signed by the KSK
    for t in [RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY] {
        let r = s.udp(&q("example.test.", t, DO));
        assert_eq!(tags(&r, t), BTreeSet::from([ksk.tag]), "{t}: {r:?}");
        assert_eq!(verify_sigs(&r, &keys), 1, "{t}");
    }
    // a large signed answer over TCP: whole and verified
    let r = s.tcp(&q("big.example.test.", RecordType::TXT, DO));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 41, "40 TXT + RRSIG");
    assert_eq!(verify_sigs(&r, &keys), 1);
    // delegations: DS signed, NS and glue not; no DS: the NSEC says so
    let r = s.udp(&q("www.secure.example.test.", RecordType::A, DO));
    assert!(!r.metadata.authoritative, "a referral: {r:?}");
    assert_eq!(tags(&r, RecordType::NS), BTreeSet::new());
    assert_eq!(sigs_over(&r.authorities, RecordType::DS).len(), 1, "{r:?}");
    assert_eq!(sigs_over(&r.authorities, RecordType::NS).len(), 0, "{r:?}");
    assert_eq!(verify_sigs(&r, &keys), 1);
    let r = s.udp(&q("www.insecure.example.test.", RecordType::A, DO));
    let (owner, _, bits) = the_nsec(&r);
    assert_eq!(owner, Name::from_ascii("insecure.example.test.").unwrap());
    assert_eq!(
        bits,
        types(&[RecordType::NS, RecordType::RRSIG, RecordType::NSEC])
    );
    assert!(
        !r.authorities
            .iter()
            .any(|x| x.record_type() == RecordType::DS)
    );
    assert_eq!(verify_sigs(&r, &keys), 1);
}

#[test]
fn nxdomain_is_compact_denial_and_co_restores_the_rcode() {
    let (s, _, zsk) = start("dnssec-wire-nx");
    let keys = keys(&s);
    for name in [
        "nope.example.test.",
        "a.b.nope.example.test.",
        "NoPe.ExAmPlE.TeSt.",
    ] {
        for (flags, rcode) in [
            (DO, ResponseCode::NoError),
            (DO | CO, ResponseCode::NXDomain),
        ] {
            let r = s.udp(&q(name, RecordType::A, flags));
            let how = format!("{name} flags {flags:#06x}");
            assert_eq!(r.metadata.response_code, rcode, "{how}: {r:?}");
            assert!(r.metadata.authoritative, "{how}");
            assert!(r.answers.is_empty(), "{how}: {r:?}");
            assert_eq!(opt_flags(&r) & (DO | CO), flags, "{how}: DO/CO echoed");
            let (owner, next, bits) = the_nsec(&r);
            assert_eq!(owner, Name::from_ascii(name).unwrap(), "{how}");
            assert_eq!(next, successor(name), "{how}: next name \\000.<qname>");
            assert_eq!(
                next.iter().next(),
                Some(&[0u8][..]),
                "{how}: first label \\000"
            );
            assert_eq!(
                bits,
                BTreeSet::from([46, 47, NXNAME]),
                "{how}: bitmap RRSIG NSEC NXNAME"
            );
            let mut t = section_types(&r.authorities);
            t.sort_by_key(|&t| u16::from(t));
            assert_eq!(
                t,
                vec![
                    RecordType::SOA,
                    RecordType::RRSIG,
                    RecordType::RRSIG,
                    RecordType::NSEC
                ],
                "{how}: SOA, NSEC and their RRSIGs: {r:?}"
            );
            for x in &r.authorities {
                assert_eq!(x.ttl, 60, "{how}: negative TTL on {x}");
            }
            let nsec_sig = sigs_over(&r.authorities, RecordType::NSEC);
            assert_eq!(nsec_sig[0].input().key_tag, zsk.tag);
            assert_eq!(verify_sigs(&r, &keys), 2, "{how}");
        }
    }
    // CO without DO changes nothing
    let r = s.udp(&q("nope.example.test.", RecordType::A, CO));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(!has_dnssec(&r));
}

#[test]
fn nodata_nsec_lists_the_types_at_the_name() {
    let (s, ..) = start("dnssec-wire-nodata");
    let keys = keys(&s);
    use RecordType::*;
    let cases: [(&str, RecordType, &[RecordType]); 7] = [
        ("mail.example.test.", TXT, &[A, AAAA]),
        (
            "example.test.",
            AAAA,
            &[NS, SOA, MX, TXT, DNSKEY, CDS, CDNSKEY],
        ),
        // an empty non-terminal: nothing but the NSEC itself
        ("mid.ent.example.test.", A, &[]),
        ("ent.example.test.", AAAA, &[]),
        // a wildcard expansion: the wildcard's types
        ("x.wild.example.test.", TXT, &[A]),
        // a service: the families it has addresses for
        ("www.example.test.", MX, &[A, AAAA]),
        ("v4only.example.test.", AAAA, &[A]),
    ];
    for (name, t, there) in cases {
        for flags in [DO, DO | CO] {
            let r = s.udp(&q(name, t, flags));
            let how = format!("{name} {t} flags {flags:#06x}");
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{how}");
            assert!(r.answers.is_empty(), "{how}: {r:?}");
            let (owner, next, bits) = the_nsec(&r);
            assert_eq!(owner, Name::from_ascii(name).unwrap(), "{how}");
            assert_eq!(next, successor(name), "{how}");
            let mut want = types(there);
            want.extend([46, 47]);
            assert_eq!(bits, want, "{how}: the NSEC bitmap");
            assert!(!bits.contains(&u16::from(t)), "{how}");
            assert!(!bits.contains(&NXNAME), "{how}: the name exists");
            assert_eq!(verify_sigs(&r, &keys), 2, "{how}");
        }
    }
}

#[test]
fn a_query_for_nxname_is_formerr() {
    let (s, ..) = start("dnssec-wire-nxname");
    for name in [
        "www.example.test.",
        "mail.example.test.",
        "nope.example.test.",
    ] {
        for flags in [0, DO, DO | CO] {
            let r = s.udp(&q(name, RecordType::Unknown(NXNAME), flags));
            assert_eq!(
                r.metadata.response_code,
                ResponseCode::FormErr,
                "{name} NXNAME flags {flags:#06x}: {r:?}"
            );
            assert!(r.answers.is_empty() && !has_dnssec(&r), "{r:?}");
        }
    }
}

#[test]
fn signed_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let (s, ..) = start("dnssec-wire-tc");
    let keys = keys(&s);
    // `medium` fits in 512 bytes unsigned, not with its RRSIG
    let r = s.udp(&q_payload("medium.example.test.", RecordType::TXT, 0, 512));
    assert!(!r.metadata.truncation, "unsigned fits: {r:?}");
    assert_eq!(r.answers.len(), 4);
    let r = s.udp(&q_payload("medium.example.test.", RecordType::TXT, DO, 512));
    assert!(r.metadata.truncation, "signed does not fit in 512: {r:?}");
    let r = s.udp(&q_payload(
        "medium.example.test.",
        RecordType::TXT,
        DO,
        1232,
    ));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 5, "4 TXT + RRSIG: {r:?}");
    assert_eq!(verify_sigs(&r, &keys), 1);
    let r = s.tcp(&q_payload("medium.example.test.", RecordType::TXT, DO, 512));
    assert!(!r.metadata.truncation);
    assert_eq!(r.answers.len(), 5, "{r:?}");
    assert_eq!(verify_sigs(&r, &keys), 1);
    // `big` never fits in UDP
    for payload in [512, 1232] {
        let r = s.udp(&q_payload(
            "big.example.test.",
            RecordType::TXT,
            DO,
            payload,
        ));
        assert!(r.metadata.truncation, "{payload}: {r:?}");
    }
    let r = s.tcp(&q_payload("big.example.test.", RecordType::TXT, DO, 512));
    assert!(!r.metadata.truncation);
    assert_eq!(sigs_over(&r.answers, RecordType::TXT).len(), 1);
    assert_eq!(r.answers.len(), 41);
    assert_eq!(verify_sigs(&r, &keys), 1);
    // the DNSKEY set with its RRSIG is within 512 bytes
    let r = s.udp(&q_payload("example.test.", RecordType::DNSKEY, DO, 512));
    assert!(!r.metadata.truncation, "{r:?}");
    assert_eq!(verify_sigs(&r, &keys), 1);
}
