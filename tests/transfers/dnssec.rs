//! A signed zone's transfer (SPEC §10 with §9): the AXFR carries RRSIGs,
//! the DNSKEY/CDS/CDNSKEY sets and a regular NSEC chain over the static
//! names and the fallback names, and two independent verifiers accept it
//! (ldns-verify-zone, BIND's dnssec-verify). The same verifiers reject
//! the transfer with one record altered or one NSEC removed, so their
//! verdict is a real check.

use std::path::Path;

use crate::tools::*;
use crate::*;

const SERIAL: u32 = 2026112201;

/// ldns-verify-zone on `file`.
fn ldns_verify(file: &Path) -> Output {
    run_tool(
        "ldns-verify-zone",
        &[file.to_str().unwrap()],
        std::time::Duration::from_secs(60),
    )
}

/// dnssec-verify -o example.test on `file`.
fn bind_verify(file: &Path) -> Output {
    run_tool(
        "dnssec-verify",
        &["-o", "example.test", file.to_str().unwrap()],
        std::time::Duration::from_secs(60),
    )
}

/// Writes records (one per line) as a zone file.
fn write_zone(path: &Path, records: &[String]) {
    std::fs::write(path, records.join("\n") + "\n").unwrap();
}

/// Fields of a record line: owner, TTL, class, type, rdata...
fn fields(r: &str) -> Vec<&str> {
    r.split(' ').collect()
}

fn has(records: &[String], owner: &str, t: &str) -> bool {
    records.iter().any(|r| {
        let f = fields(r);
        f[0].eq_ignore_ascii_case(owner) && f[3] == t
    })
}

fn rrsig_over(records: &[String], owner: &str, covered: &str) -> bool {
    records.iter().any(|r| {
        let f = fields(r);
        f[0].eq_ignore_ascii_case(owner) && f[3] == "RRSIG" && f[4] == covered
    })
}

#[test]
fn a_signed_transfer_verifies_and_tampering_is_caught() {
    require!("dig", "dnssec-keygen", "dnssec-verify", "ldns-verify-zone");
    let dir = Scratch::new("dnssec");
    let key = Key::random("xfr-key");
    let ksk = keygen(&dir.0, &["-a", "ECDSAP256SHA256", "-f", "KSK"]);
    let zsk = keygen(&dir.0, &["-a", "ECDSAP256SHA256"]);
    let rest = format!(
        "[zones.\"example.test.\".dnssec]\nkeys = [\"keys/{ksk}.private\", \"keys/{zsk}.private\"]\n{}{}",
        key.toml(),
        services(&default_fallback())
    );
    let transfer = format!("allow = [\"127.0.0.0/8\"]\ntsig = \"{}\"", key.name);
    let s = serve(&dir.0, SERIAL, &config("127.0.0.1:0", &transfer, &rest));

    let out = dig(s.dns, Some(&key), &[ZONE_NAME, "AXFR", "+onesoa"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(!out.text().contains("Transfer failed"), "{}", out.text());
    let records = dig_records(&out.stdout);
    let ctx = || records.join("\n");
    for (owner, t) in [
        ("example.test.", "DNSKEY"),
        ("example.test.", "CDS"),
        ("example.test.", "CDNSKEY"),
        ("example.test.", "NSEC"),
        ("www.example.test.", "A"),
        ("www.example.test.", "NSEC"),
        ("mail.example.test.", "NSEC"),
        ("sub.example.test.", "NSEC"),
    ] {
        assert!(has(&records, owner, t), "no {owner} {t}:\n{}", ctx());
    }
    for (owner, covered) in [
        ("example.test.", "SOA"),
        ("example.test.", "DNSKEY"),
        ("www.example.test.", "A"),
        ("www.example.test.", "AAAA"),
        ("mail.example.test.", "A"),
        ("*.wild.example.test.", "A"),
    ] {
        assert!(
            rrsig_over(&records, owner, covered),
            "no RRSIG over {owner} {covered}:\n{}",
            ctx()
        );
    }
    // a delegation's NS and glue are not signed; a name outside the
    // transfer has no NSEC
    assert!(
        !rrsig_over(&records, "sub.example.test.", "NS"),
        "{}",
        ctx()
    );
    assert!(!rrsig_over(&records, "ns.sub.example.test.", "A"));
    assert!(
        records.iter().all(|r| !r.starts_with("nofb.")),
        "a service without fallback is absent:\n{}",
        ctx()
    );

    let good = dir.0.join("axfr.zone");
    write_zone(&good, &records);
    let v = ldns_verify(&good);
    assert_eq!(v.code, 0, "ldns-verify-zone:\n{}\n{}", v.text(), ctx());
    assert!(
        v.text().contains("Zone is verified and complete"),
        "{}",
        v.text()
    );
    let v = bind_verify(&good);
    assert_eq!(v.code, 0, "dnssec-verify:\n{}\n{}", v.text(), ctx());
    assert!(v.text().contains("Zone fully signed"), "{}", v.text());

    // one altered record: both verifiers must fail
    let altered: Vec<String> = records
        .iter()
        .map(|r| {
            if r.starts_with("mail.example.test. ") && r.ends_with(" A 192.0.2.25") {
                r.replace("192.0.2.25", "192.0.2.26")
            } else {
                r.clone()
            }
        })
        .collect();
    assert_ne!(altered, records, "mail's A record not found");
    let bad = dir.0.join("altered.zone");
    write_zone(&bad, &altered);
    let v = ldns_verify(&bad);
    assert_ne!(v.code, 0, "ldns-verify-zone accepted an altered record");
    assert!(v.text().contains("mail.example.test"), "{}", v.text());
    assert_ne!(bind_verify(&bad).code, 0, "dnssec-verify accepted it");

    // one NSEC removed: the chain is broken
    let cut: Vec<String> = records
        .iter()
        .filter(|r| !(r.starts_with("mail.example.test. ") && fields(r)[3] == "NSEC"))
        .cloned()
        .collect();
    assert_eq!(cut.len() + 1, records.len());
    let bad = dir.0.join("cut.zone");
    write_zone(&bad, &cut);
    assert_ne!(
        ldns_verify(&bad).code,
        0,
        "ldns-verify-zone accepted a broken chain"
    );
    assert_ne!(
        bind_verify(&bad).code,
        0,
        "dnssec-verify accepted a broken chain"
    );
}
