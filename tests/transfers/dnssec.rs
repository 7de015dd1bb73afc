//! A signed zone's transfer (SPEC §10 with §9): the AXFR carries RRSIGs,
//! the DNSKEY/CDS/CDNSKEY sets and a regular NSEC chain over the static
//! names and the fallback names, and two independent verifiers accept it
//! (ldns-verify-zone, BIND's dnssec-verify). The same verifiers reject
//! the transfer with one record altered or one NSEC removed, so their
//! verdict is a real check.

use std::collections::BTreeSet;
use std::path::Path;

use hickory_proto::rr::RecordType;

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

    // the transfer's SOA is the one served (with signing, the file's
    // serial plus the signature windows, so it grows with each re-signing)
    let served = soa_serial(s.dns).unwrap();
    let soa = records
        .iter()
        .find(|r| fields(r)[3] == "SOA")
        .expect("an SOA");
    assert_eq!(fields(soa)[6], served.to_string(), "{soa}");
    assert!(served >= SERIAL, "{served}");
    assert_eq!(zone_status(&s)["serial"], served);

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

/// The key tag of a BIND key's base name (`Kexample.test.+013+12345`).
fn tag_of(base: &str) -> String {
    base.rsplit('+')
        .next()
        .unwrap()
        .trim_start_matches('0')
        .to_string()
}

/// The public keys of the DNSKEY records and the key tags of the RRSIGs
/// in an AXFR.
fn tags(records: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut keys = BTreeSet::new();
    let mut sigs = BTreeSet::new();
    for r in records {
        let f = fields(r);
        if f[3] == "RRSIG" {
            sigs.insert(f[10].to_string());
        }
    }
    // a DNSKEY by its public key (dig prints no tag)
    for r in records.iter().filter(|r| fields(r)[3] == "DNSKEY") {
        keys.insert(fields(r)[7..].concat());
    }
    (keys, sigs)
}

#[test]
fn a_zone_signed_by_its_primary_is_signed_again_with_signposts_keys() {
    require!(
        "knotd",
        "knotc",
        "dig",
        "dnssec-keygen",
        "dnssec-verify",
        "ldns-verify-zone"
    );
    let dir = Scratch::new("dnssec-primary");
    let key = Key::random("xfr-key");
    let ksk = keygen(&dir.0, &["-a", "ECDSAP256SHA256", "-f", "KSK"]);
    let zsk = keygen(&dir.0, &["-a", "ECDSAP256SHA256"]);
    let sp_port = free_port();
    let primary_zone = "$ORIGIN example.test.\n$TTL 300\n\
        @ IN SOA ns1.example.test. hostmaster.example.test. 1000 3600 600 604800 60\n\
        @ IN NS ns1.example.test.\n\
        ns1 IN A 127.0.0.1\n\
        mail IN A 192.0.2.25\n";
    let knot = knot_primary(
        &dir.sub("knot"),
        free_port(),
        primary_zone,
        std::net::SocketAddr::from(([127, 0, 0, 1], sp_port)),
        &key,
        true,
    );
    // the primary sends its own DNSSEC records
    let theirs = dig_records(&dig(knot.addr, Some(&key), &[ZONE_NAME, "AXFR"]).stdout);
    assert!(
        theirs.iter().any(|r| fields(r)[3] == "RRSIG")
            && theirs.iter().any(|r| fields(r)[3] == "DNSKEY"),
        "Knot does not sign:\n{}",
        theirs.join("\n")
    );
    let (their_keys, _) = tags(&theirs);

    let cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:{sp_port}"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
primary = "{primary}"
tsig = "{name}"

[zones."example.test.".dnssec]
keys = ["keys/{ksk}.private", "keys/{zsk}.private"]

[zones."example.test.".transfer]
allow = ["127.0.0.0/8"]
{tsig}{services}"#,
        primary = knot.addr,
        name = key.name,
        tsig = key.toml(),
        services = services(&default_fallback()),
    );
    std::fs::write(dir.0.join("signpost.toml"), cfg).unwrap();
    let s = crate::common::Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    let ctx = || format!("knot:\n{}\nsignpost:\n{}", knot.log(), log_text(&s));

    let check = |what: &str| {
        let ours = dig_records(&dig(s.dns, None, &[ZONE_NAME, "AXFR", "+onesoa"]).stdout);
        let (keys, sigs) = tags(&ours);
        assert_eq!(
            keys.len(),
            2,
            "{what}: signpost's two keys only:\n{}",
            ours.join("\n")
        );
        assert!(
            keys.is_disjoint(&their_keys),
            "{what}: the primary's DNSKEY kept"
        );
        let want: BTreeSet<String> = [tag_of(&ksk), tag_of(&zsk)].into();
        assert_eq!(sigs, want, "{what}: RRSIGs by signpost's keys only");
        let file = dir.0.join(format!("{what}.zone"));
        write_zone(&file, &ours);
        let v = ldns_verify(&file);
        assert_eq!(
            v.code,
            0,
            "{what}: ldns-verify-zone:\n{}\n{}",
            v.text(),
            ours.join("\n")
        );
        let v = bind_verify(&file);
        assert_eq!(v.code, 0, "{what}: dnssec-verify:\n{}", v.text());
        ours
    };

    // the copy is at the primary's serial; the served one is that plus
    // the signature windows (it grows with each re-signing)
    let held = |s: &crate::common::Server| zone_status(s)["transfer"]["serial"].as_u64();
    let knot_serial = knot.serial().expect("Knot's serial");
    crate::eventually(
        std::time::Duration::from_secs(20),
        "signpost holds the primary's zone",
        || {
            held(&s) == Some(u64::from(knot_serial))
                && try_ask(s.dns, "mail.example.test.", RecordType::A)
                    .is_some_and(|m| addrs(&m) == ["192.0.2.25"])
        },
        || {
            format!(
                "knot {knot_serial}, signpost {}\n{}",
                zone_status(&s),
                ctx()
            )
        },
    );
    let served = soa_serial(s.dns).unwrap();
    assert!(served > knot_serial, "{served} {knot_serial}");
    assert_eq!(zone_status(&s)["serial"], served);
    check("first");

    // an IXFR that carries the primary's new signatures and NSECs too
    knot_change(
        &knot,
        &[
            ("zone-unset", "mail A 192.0.2.25"),
            ("zone-set", "mail 300 A 192.0.2.30"),
            ("zone-set", "x.y.z 300 TXT added"),
        ],
    );
    crate::eventually(
        std::time::Duration::from_secs(10),
        "the change reaches signpost",
        || {
            try_ask(s.dns, "mail.example.test.", RecordType::A)
                .is_some_and(|m| addrs(&m) == ["192.0.2.30"])
        },
        ctx,
    );
    assert_eq!(zone_status(&s)["transfer"]["last_result"], "IXFR");
    let knot_now = knot.serial().unwrap();
    assert_eq!(held(&s), Some(u64::from(knot_now)));
    let served_now = soa_serial(s.dns).unwrap();
    assert!(
        served_now.wrapping_sub(served) == knot_now.wrapping_sub(knot_serial),
        "the served serial grows with the primary's: {served} -> {served_now}, {knot_serial} -> {knot_now}"
    );
    let ours = check("after-ixfr");
    assert!(
        has(&ours, "x.y.z.example.test.", "TXT"),
        "{}",
        ours.join("\n")
    );
    assert!(
        !ours.iter().any(|r| r.contains("192.0.2.25")),
        "{}",
        ours.join("\n")
    );
}

/// Whether serial `b` is not older than `a` (RFC 1982).
fn not_older(a: u32, b: u32) -> bool {
    b == a || (b.wrapping_sub(a) as i32) > 0
}

#[test]
fn the_served_serial_never_goes_back_when_signing_settings_change() {
    let dir = Scratch::new("dnssec-serial");
    // a fixture CSK (Ed25519): no tool needed
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dnssec");
    std::fs::create_dir_all(dir.0.join("keys")).unwrap();
    for ext in ["key", "private"] {
        let f = format!("Kexample.test.+015+22404.{ext}");
        std::fs::copy(src.join(&f), dir.0.join("keys").join(&f)).unwrap();
    }
    let signing =
        "[zones.\"example.test.\".dnssec]\nkeys = [\"keys/Kexample.test.+015+22404.private\"]\n";
    let cfg = |dnssec: &str| {
        config(
            "127.0.0.1:0",
            "allow = [\"127.0.0.0/8\"]",
            &format!("{dnssec}{}", services(&default_fallback())),
        )
    };
    let s = serve(&dir.0, SERIAL, &cfg(signing));
    let mut seen = vec![("signed".to_string(), soa_serial(s.dns).unwrap())];
    // each step is what an operator may do to a zone its secondaries copy
    for (what, dnssec) in [
        ("validity 30d", format!("{signing}validity = \"30d\"\n")),
        ("signing turned off", String::new()),
    ] {
        write(&dir.0.join("signpost.toml"), &cfg(&dnssec));
        reload(&s);
        seen.push((what.to_string(), soa_serial(s.dns).unwrap()));
    }
    println!("served serials: {seen:?}");
    let back: Vec<String> = seen
        .windows(2)
        .filter(|w| !not_older(w[0].1, w[1].1))
        .map(|w| format!("{} ({}) -> {} ({})", w[0].0, w[0].1, w[1].0, w[1].1))
        .collect();
    assert!(
        back.is_empty(),
        "the served SOA serial went back, so secondaries keep the old zone (and its \
         signatures, until they expire): {back:?} (the file's serial is {SERIAL})"
    );
}
