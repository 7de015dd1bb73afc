//! A validating Unbound in front of signpost (trust anchor: the zone's
//! KSK, no `domain-insecure`): every kind of answer comes back with AD=1,
//! and stays so while a region fails and comes back.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::common::*;
use crate::tools::*;
use crate::*;

/// Every kind of answer through Unbound, validated (AD=1).
fn unbound_validates_every_kind(u: &Unbound) {
    let www = "www.example.test.";
    // Unbound asks from 127.88.1.9: the map sends it to eu-west
    assert_eq!(addrs(&u.secure(www, RecordType::A)), vec![EU_V4]);
    assert_eq!(
        addrs(&u.secure(www, RecordType::AAAA)),
        vec!["2001:db8:2::1"]
    );
    assert_eq!(
        addrs(&u.secure("many.example.test.", RecordType::A)).len(),
        3
    );
    assert_eq!(
        addrs(&u.secure("mail.example.test.", RecordType::A)),
        vec!["192.0.2.25"]
    );
    for t in [
        RecordType::SOA,
        RecordType::NS,
        RecordType::MX,
        RecordType::TXT,
        RecordType::DNSKEY,
        RecordType::CDS,
        RecordType::CDNSKEY,
    ] {
        let m = u.secure("example.test.", t);
        assert!(
            m.answers.iter().any(|r| r.record_type() == t),
            "example.test. {t}: {m:?}"
        );
    }
    u.secure("mx2.example.test.", RecordType::MX);
    u.secure("txt2.example.test.", RecordType::TXT);
    let m = u.secure("big.example.test.", RecordType::TXT);
    assert_eq!(m.answers.len(), 40, "{m:?}");

    // the CNAME chain into the service
    let m = u.secure("app.example.test.", RecordType::A);
    assert_eq!(addrs(&m), vec![EU_V4], "{m:?}");
    assert!(
        m.answers
            .iter()
            .any(|r| r.record_type() == RecordType::CNAME),
        "{m:?}"
    );
    // wildcards, and a CNAME into one
    for name in ["x.wild.example.test.", "a.b.wild.example.test."] {
        assert_eq!(
            addrs(&u.secure(name, RecordType::A)),
            vec!["192.0.2.80"],
            "{name}"
        );
    }
    assert_eq!(
        addrs(&u.secure("wc.example.test.", RecordType::A)),
        vec!["192.0.2.80"]
    );

    // denials, validated: NOERROR (Unbound does not ask with CO), empty
    for (name, t) in [
        ("nope.example.test.", RecordType::A),
        ("a.b.nope.example.test.", RecordType::A),
        ("mail.example.test.", RecordType::TXT),
        ("x.wild.example.test.", RecordType::TXT),
        ("mid.ent.example.test.", RecordType::A),
        ("v4only.example.test.", RecordType::AAAA),
        ("www.example.test.", RecordType::MX),
        ("insecure.example.test.", RecordType::DS),
    ] {
        let m = u.secure(name, t);
        assert!(m.answers.is_empty(), "{name} {t}: {m:?}");
    }
    let m = u.secure("secure.example.test.", RecordType::DS);
    assert_eq!(m.answers.len(), 1, "{m:?}");
    let m = u.secure("dangle.example.test.", RecordType::A);
    assert_eq!(m.answers.len(), 1, "the CNAME alone: {m:?}");
    let log = u.log();
    assert!(
        !log.contains("validation failure"),
        "unbound logged a validation failure:\n{log}"
    );
}

#[test]
fn unbound_validates_every_kind_of_answer_ecdsa() {
    require!("dnssec-keygen", "unbound");
    let dir = scratch("dnssec-unbound-ecdsa");
    let (ksk, zsk) = ecdsa_pair(&dir);
    let s = serve(&dir, &[&ksk, &zsk]);
    let u = Unbound::start(&dir, s.dns, &ksk, "127.88.1.9");
    unbound_validates_every_kind(&u);
}

#[test]
fn unbound_validates_every_kind_of_answer_ed25519() {
    require!("dnssec-keygen", "unbound");
    let dir = scratch("dnssec-unbound-ed25519");
    let csk = ed25519_csk(&dir);
    let s = serve(&dir, &[&csk]);
    let u = Unbound::start(&dir, s.dns, &csk, "127.88.1.9");
    unbound_validates_every_kind(&u);
}

/// Two checked regions behind fake load balancers on 127.88.10.1 (eu-west)
/// and 127.88.10.2 (us-east); the resolver's network maps to eu-west.
fn failover_config(keys: &[String], port: u16) -> String {
    config(
        keys,
        &format!(
            r#"
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "500ms"
timeout = "300ms"
rise = 1
fall = 1

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.88.10.1" }}]

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "127.88.10.2" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
policy = "geo"
ttl = 2
map = {{ "127.88.10.0/24" = ["eu-west"] }}
"#
        ),
    )
}

/// Asks Unbound for www and app (the CNAME into it) every 100 ms until
/// www's address is `want`; every answer must be validated. Returns the
/// addresses seen, in order.
fn follow(u: &Unbound, want: &str, limit: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let www = u.ask("www.example.test.", RecordType::A);
        let app = u.ask("app.example.test.", RecordType::A);
        for (name, m) in [("www", &www), ("app", &app)] {
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{name} after {:?} (seen {seen:?}): {m:?}\n{}",
                start.elapsed(),
                u.log()
            );
            assert!(
                m.metadata.authentic_data,
                "{name} not validated after {:?}: {m:?}\n{}",
                start.elapsed(),
                u.log()
            );
            assert_eq!(addrs(m).len(), 1, "{name}: {m:?}");
        }
        let a = addrs(&www).remove(0);
        if seen.last() != Some(&a) {
            seen.push(a.clone());
        }
        if a == want {
            return seen;
        }
        assert!(
            start.elapsed() < limit,
            "www did not move to {want} within {limit:?} (seen {seen:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn failover_and_back_stays_validated_through_unbound() {
    require!("dnssec-keygen", "unbound");
    let dir = scratch("dnssec-failover");
    let (ksk, zsk) = ecdsa_pair(&dir);
    let eu = FakeLb::start("127.88.10.1:0".parse().unwrap());
    let port = eu.addr.port();
    let _us = FakeLb::start(format!("127.88.10.2:{port}").parse().unwrap());
    std::fs::write(dir.join("example.test.zone"), zone()).unwrap();
    std::fs::write(
        dir.join("signpost.toml"),
        failover_config(&[ksk.config_path(), zsk.config_path()], port),
    )
    .unwrap();
    let s = Server::start_in(dir.clone(), &["serve", "--config", "signpost.toml"]);
    let u = Unbound::start(&dir, s.dns, &ksk, "127.88.10.9");
    let long = Duration::from_secs(30);

    let seen = follow(&u, "127.88.10.1", long);
    println!("start: {seen:?}");
    eu.set(LbMode::Fail);
    let seen = follow(&u, "127.88.10.2", long);
    println!("eu-west down: {seen:?}");
    assert_eq!(seen.first().map(String::as_str), Some("127.88.10.1"));
    // stays moved while eu-west is down
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let seen = follow(&u, "127.88.10.2", long);
        assert_eq!(seen, vec!["127.88.10.2"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    eu.set(LbMode::Ok);
    let seen = follow(&u, "127.88.10.1", long);
    println!("eu-west back: {seen:?}");
    assert_eq!(seen.first().map(String::as_str), Some("127.88.10.2"));
    let log = u.log();
    assert!(!log.contains("validation failure"), "{log}");
}

/// An explicit query for type NSEC or RRSIG at a name of the signed zone
/// must not make a validating resolver fail. signpost answers them as
/// NODATA with an NSEC whose bitmap lists the very type asked for (NSEC
/// and RRSIG are always in it), a denial that contradicts itself: Unbound
/// logs "nodata proof failed" and answers SERVFAIL. (For NSEC the
/// consistent answer is the NSEC RRset in the answer section; for RRSIG
/// the RRSIGs at the name, which Unbound passes on unvalidated.)
#[test]
fn explicit_nsec_and_rrsig_queries_do_not_servfail() {
    require!("dnssec-keygen", "unbound");
    let dir = scratch("dnssec-nsec-query");
    let (ksk, zsk) = ecdsa_pair(&dir);
    let s = serve(&dir, &[&ksk, &zsk]);
    let u = Unbound::start(&dir, s.dns, &ksk, "127.88.1.9");
    let mut failed = Vec::new();
    for (name, t) in [
        ("mail.example.test.", RecordType::NSEC),
        ("www.example.test.", RecordType::NSEC),
        ("example.test.", RecordType::NSEC),
        ("nope.example.test.", RecordType::NSEC),
        ("mail.example.test.", RecordType::RRSIG),
    ] {
        let m = u.ask(name, t);
        if m.metadata.response_code == ResponseCode::ServFail {
            failed.push(format!("{name} {t}"));
        } else if t == RecordType::NSEC && !m.metadata.authentic_data {
            failed.push(format!("{name} {t} (not validated)"));
        }
    }
    assert!(
        failed.is_empty(),
        "a validating resolver fails on {failed:?}:\n{}",
        u.log()
    );
}
