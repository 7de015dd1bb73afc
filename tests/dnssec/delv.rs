//! delv (BIND's validating lookup) with the zone's KSK as trust anchor
//! validates every kind of answer: services from two client networks,
//! static names, CNAME chains, wildcards, the compact denial of a name
//! that does not exist, NODATA, delegations and the apex key sets.

use std::collections::BTreeSet;

use crate::common::*;
use crate::tools::*;
use crate::*;

/// Tags of the RRSIGs delv printed over `covered` at `name`.
fn rrsig_tags(out: &str, name: &str, covered: &str) -> BTreeSet<u16> {
    delv_rdata(out, name, "RRSIG")
        .iter()
        .filter_map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            (f[0] == covered).then(|| f[6].parse().unwrap())
        })
        .collect()
}

/// The algorithm field of the RRSIGs delv printed over `covered`.
fn rrsig_algorithms(out: &str, name: &str, covered: &str) -> BTreeSet<u8> {
    delv_rdata(out, name, "RRSIG")
        .iter()
        .filter_map(|r| {
            let f: Vec<&str> = r.split_whitespace().collect();
            (f[0] == covered).then(|| f[1].parse().unwrap())
        })
        .collect()
}

/// Everything delv must validate, for a zone whose KSK (SEP) is `ksk`
/// and whose other RRsets are signed by `zsk`.
fn everything_validates(s: &Server, ksk: &KeyFile, zsk: &KeyFile) {
    let d = Delv::new(&s.dir, s.dns, ksk);
    let www = "www.example.test.";
    let alg = BTreeSet::from([zsk.algorithm]);

    // a service: each client network its own region, both signed
    let eu = d.validated(CLIENT_EU, www, "A");
    let us = d.validated(CLIENT_US, www, "A");
    let (eu_a, us_a) = (delv_rdata(&eu, www, "A"), delv_rdata(&us, www, "A"));
    assert_eq!(eu_a, vec![EU_V4], "{eu}");
    assert_eq!(us_a, vec![US_V4], "{us}");
    assert_ne!(eu_a, us_a, "the two networks must get different answers");
    assert_eq!(rrsig_tags(&eu, www, "A"), BTreeSet::from([zsk.tag]), "{eu}");
    assert_eq!(rrsig_algorithms(&us, www, "A"), alg, "{us}");
    let eu6 = d.validated(CLIENT_EU, www, "AAAA");
    assert_eq!(
        delv_rdata(&eu6, www, "AAAA"),
        vec!["2001:db8:2::1"],
        "{eu6}"
    );
    let us6 = d.validated(CLIENT_US, www, "AAAA");
    assert_eq!(
        delv_rdata(&us6, www, "AAAA"),
        vec!["2001:db8:1::1"],
        "{us6}"
    );
    // the query name's case is the client's
    let mixed = d.validated(CLIENT_EU, "WwW.ExAmPlE.TeSt.", "A");
    assert!(mixed.contains(EU_V4), "{mixed}");

    // 3 of 30 addresses: too many sets to sign in advance, signed on
    // first use (each answer a random draw)
    for _ in 0..4 {
        let out = d.validated(CLIENT_EU, "many.example.test.", "A");
        assert_eq!(
            delv_rdata(&out, "many.example.test.", "A").len(),
            3,
            "{out}"
        );
    }

    // static names
    let out = d.validated(CLIENT_EU, "mail.example.test.", "A");
    assert_eq!(
        delv_rdata(&out, "mail.example.test.", "A"),
        vec!["192.0.2.25"]
    );
    d.validated(CLIENT_EU, "mail.example.test.", "AAAA");
    for t in ["SOA", "NS", "MX", "TXT"] {
        let out = d.validated(CLIENT_US, "example.test.", t);
        assert_eq!(
            rrsig_tags(&out, "example.test.", t),
            BTreeSet::from([zsk.tag]),
            "{out}"
        );
    }
    // RRsets whose canonical order is not the zone file's
    let out = d.validated(CLIENT_US, "mx2.example.test.", "MX");
    assert_eq!(
        delv_rdata(&out, "mx2.example.test.", "MX").len(),
        2,
        "{out}"
    );
    let out = d.validated(CLIENT_US, "txt2.example.test.", "TXT");
    assert_eq!(
        delv_rdata(&out, "txt2.example.test.", "TXT").len(),
        3,
        "{out}"
    );
    // larger than delv's UDP buffer: over TCP after TC
    let out = d.validated(CLIENT_US, "big.example.test.", "TXT");
    assert_eq!(
        delv_rdata(&out, "big.example.test.", "TXT").len(),
        40,
        "{out}"
    );

    // the CNAME chain into the service follows each network's region
    for (src, want) in [(CLIENT_EU, EU_V4), (CLIENT_US, US_V4)] {
        let out = d.validated(src, "app.example.test.", "A");
        assert_eq!(
            delv_rdata(&out, "app.example.test.", "CNAME"),
            vec!["www.example.test."],
            "{out}"
        );
        assert_eq!(delv_rdata(&out, www, "A"), vec![want], "{out}");
    }

    // wildcards: one label, two labels, and a CNAME into one
    for name in ["x.wild.example.test.", "a.b.wild.example.test."] {
        let out = d.validated(CLIENT_EU, name, "A");
        assert_eq!(delv_rdata(&out, name, "A"), vec!["192.0.2.80"], "{out}");
    }
    let out = d.validated(CLIENT_EU, "wc.example.test.", "A");
    assert_eq!(
        delv_rdata(&out, "foo.wild.example.test.", "A"),
        vec!["192.0.2.80"],
        "{out}"
    );
    // the wildcard's own name
    d.validated(CLIENT_EU, "*.wild.example.test.", "A");

    // denials: a name that does not exist (compact denial), below one,
    // NODATA at a static name, at a wildcard expansion, at an empty
    // non-terminal, at a service for the family it lacks
    let out = d.negative(CLIENT_EU, "nope.example.test.", "A");
    assert!(out.contains("NSEC"), "{out}");
    d.negative(CLIENT_EU, "a.b.nope.example.test.", "AAAA");
    d.negative(CLIENT_EU, "mail.example.test.", "TXT");
    d.negative(CLIENT_EU, "x.wild.example.test.", "TXT");
    d.negative(CLIENT_EU, "mid.ent.example.test.", "A");
    d.negative(CLIENT_EU, "ent.example.test.", "A");
    d.negative(CLIENT_US, "v4only.example.test.", "AAAA");
    let out = d.validated(CLIENT_US, "v4only.example.test.", "A");
    assert_eq!(
        delv_rdata(&out, "v4only.example.test.", "A"),
        vec!["192.0.2.3"]
    );
    d.negative(CLIENT_US, www, "TXT");
    // a CNAME to a name that does not exist: the CNAME validates, and
    // so does the denial of its target
    let out = d.validated(CLIENT_EU, "dangle.example.test.", "A");
    assert_eq!(
        delv_rdata(&out, "dangle.example.test.", "CNAME"),
        vec!["nothere.example.test."],
        "{out}"
    );
    d.negative(CLIENT_EU, "nothere.example.test.", "A");

    // delegations: the DS set is signed; its absence is proven
    let out = d.validated(CLIENT_EU, "secure.example.test.", "DS");
    assert!(out.contains("12345 13 2"), "{out}");
    d.negative(CLIENT_EU, "insecure.example.test.", "DS");

    // the apex key sets: signed by the KSK
    let out = d.validated(CLIENT_EU, "example.test.", "DNSKEY");
    let keys = delv_rdata(&out, "example.test.", "DNSKEY");
    for k in [ksk, zsk] {
        assert!(
            keys.iter().any(|r| r.replace(' ', "").ends_with(&k.public)),
            "key {} in the DNSKEY set: {out}",
            k.tag
        );
    }
    assert_eq!(keys.len(), if ksk.tag == zsk.tag { 1 } else { 2 }, "{out}");
    assert_eq!(
        rrsig_tags(&out, "example.test.", "DNSKEY"),
        BTreeSet::from([ksk.tag]),
        "{out}"
    );
    let out = d.validated(CLIENT_EU, "example.test.", "CDS");
    let cds = delv_rdata(&out, "example.test.", "CDS");
    assert_eq!(cds.len(), 1, "{out}");
    assert!(
        cds[0].starts_with(&format!("{} {} 2 ", ksk.tag, ksk.algorithm)),
        "{out}"
    );
    assert_eq!(
        rrsig_tags(&out, "example.test.", "CDS"),
        BTreeSet::from([ksk.tag]),
        "{out}"
    );
    let out = d.validated(CLIENT_EU, "example.test.", "CDNSKEY");
    let cdnskey = delv_rdata(&out, "example.test.", "CDNSKEY");
    assert_eq!(cdnskey.len(), 1, "{out}");
    assert!(cdnskey[0].replace(' ', "").ends_with(&ksk.public), "{out}");
}

#[test]
fn delv_validates_every_kind_of_answer_ecdsa_ksk_and_zsk() {
    require!("dnssec-keygen", "delv");
    let dir = scratch("dnssec-delv-ecdsa");
    let (ksk, zsk) = ecdsa_pair(&dir);
    let s = serve(&dir, &[&ksk, &zsk]);
    everything_validates(&s, &ksk, &zsk);
}

#[test]
fn delv_validates_every_kind_of_answer_ed25519_csk() {
    require!("dnssec-keygen", "delv");
    let dir = scratch("dnssec-delv-ed25519");
    let csk = ed25519_csk(&dir);
    let s = serve(&dir, &[&csk]);
    everything_validates(&s, &csk, &csk);
}
