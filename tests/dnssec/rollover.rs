//! A ZSK rollover by key timing (pre-publication): KSK + ZSK1 sign; ZSK2
//! is made published now and active a few seconds later and added by a
//! reload (SIGHUP); ZSK1 is given Inactive and Delete times by
//! dnssec-settime and reloaded (POST /v1/reload). signpost moves through
//! the states by its timer alone, while a validating Unbound and delv ask
//! all along: nothing may fail to validate, the RRSIGs move from ZSK1's
//! tag to ZSK2's, and ZSK1 leaves the DNSKEY set after its Delete time.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::common::*;
use crate::tools::*;
use crate::*;

/// The dnssec part of the status.
fn dnssec_status(s: &Server) -> Value {
    let st = get_json(&format!("{}/v1/status", s.admin_url()));
    st["zones"][0]["dnssec"].clone()
}

/// (state, role) of the key with `tag`, "" when it is not listed.
fn key(st: &Value, tag: u16) -> (String, String) {
    st["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["tag"] == tag)
        .map_or((String::new(), String::new()), |k| {
            (
                k["state"].as_str().unwrap().to_string(),
                k["role"].as_str().unwrap().to_string(),
            )
        })
}

/// What one probe saw.
#[derive(Debug, Clone)]
struct Seen {
    /// Unix seconds when it began.
    at: i64,
    /// (state of ZSK1, state of ZSK2), when the status was the same
    /// before and after the queries; None otherwise.
    states: Option<(String, String)>,
    roles: (String, String),
    /// RRSIG tags over www A, mail A, and the NSEC of a name that does
    /// not exist, from signpost directly.
    www: BTreeSet<u16>,
    mail: BTreeSet<u16>,
    nsec: BTreeSet<u16>,
    /// The DNSKEY set's tags.
    dnskey: BTreeSet<u16>,
}

/// One round: signpost directly, then Unbound, then delv; every answer
/// must validate.
fn probe(s: &Server, u: &Unbound, d: &Delv, ids: (u16, u16), round: usize) -> Seen {
    let at = unix_now();
    let before = dnssec_status(s);
    let keys_msg = s.udp(&q("example.test.", RecordType::DNSKEY, DO));
    let www = s.udp(&q("www.example.test.", RecordType::A, DO));
    let mail = s.udp(&q("mail.example.test.", RecordType::A, DO));
    let nope = s.udp(&q(
        &format!("r{round}.nope.example.test."),
        RecordType::A,
        DO,
    ));
    let after = dnssec_status(s);
    let state = |st: &Value| (key(st, ids.0).0, key(st, ids.1).0);
    let states = (state(&before) == state(&after)).then(|| state(&after));
    let nsec = sigs_over(&nope.authorities, RecordType::NSEC)
        .iter()
        .map(|s| s.input().key_tag)
        .collect();
    // the signatures verify against the DNSKEY set served at that moment
    // (or, across a change, against the union)
    let keys = dnskeys(&keys_msg);
    if states.is_some() {
        for m in [&www, &mail, &nope] {
            verify_sigs(m, &keys);
        }
    }

    for (name, t) in [
        ("www.example.test.", RecordType::A),
        ("mail.example.test.", RecordType::A),
        ("example.test.", RecordType::DNSKEY),
    ] {
        u.secure(name, t);
    }
    let m = u.secure(&format!("u{round}.nope.example.test."), RecordType::A);
    assert!(m.answers.is_empty());
    match round % 3 {
        0 => d.validated("127.0.0.1", "mail.example.test.", "A"),
        1 => d.validated("127.0.0.1", "www.example.test.", "A"),
        _ => d.negative("127.0.0.1", &format!("d{round}.nope.example.test."), "A"),
    };
    Seen {
        at,
        states,
        roles: (key(&after, ids.0).1, key(&after, ids.1).1),
        www: tags(&www, RecordType::A),
        mail: tags(&mail, RecordType::A),
        nsec,
        dnskey: dnskey_tags(&keys_msg),
    }
}

#[test]
fn zsk_rollover_by_timing_stays_validated() {
    require!("dnssec-keygen", "dnssec-settime", "delv", "unbound");
    let dir = scratch("dnssec-rollover");
    let (ksk, zsk1) = ecdsa_pair(&dir);
    let s = serve(&dir, &[&ksk, &zsk1]);
    let u = Unbound::start(&dir, s.dns, &ksk, "127.0.0.1");
    let d = Delv::new(&dir, s.dns, &ksk);
    let mut seen: Vec<Seen> = Vec::new();
    let mut round = 0;
    let mut look = |seen: &mut Vec<Seen>, ids: (u16, u16)| {
        round += 1;
        let x = probe(&s, &u, &d, ids, round);
        seen.push(x.clone());
        x
    };

    // KSK + ZSK1
    let x = look(&mut seen, (zsk1.tag, 0));
    assert_eq!(x.www, BTreeSet::from([zsk1.tag]), "{x:?}");
    assert_eq!(x.dnskey, BTreeSet::from([ksk.tag, zsk1.tag]), "{x:?}");

    // ZSK2: published now, active in 8 s; added by SIGHUP
    let zsk2 = keygen(&dir, &["-a", "ECDSAP256SHA256", "-P", "now", "-A", "+8"]);
    let ids = (zsk1.tag, zsk2.tag);
    let paths = [ksk.config_path(), zsk1.config_path(), zsk2.config_path()];
    write(&s.dir.join("signpost.toml"), &config(&paths, &services()));
    s.signal(libc::SIGHUP);
    let start = Instant::now();
    loop {
        let x = look(&mut seen, ids);
        if x.states == Some(("active".into(), "published".into())) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the SIGHUP did not publish ZSK2: {x:?}\n{}",
            s.log().join("\n")
        );
    }
    // ZSK1 retires in 16 s and goes in 24 s; reloaded by the admin API
    settime(&zsk1, &["-I", "+16", "-D", "+24"]);
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    let activate = zsk2.timing("Activate").expect("ZSK2 Activate");
    let inactive = zsk1.timing("Inactive").expect("ZSK1 Inactive");
    let delete = zsk1.timing("Delete").expect("ZSK1 Delete");
    println!(
        "now {} activate {activate} inactive {inactive} delete {delete}",
        unix_now()
    );
    assert!(activate < inactive && inactive < delete);

    // ask all along until ZSK1 is gone, and a little longer
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut gone_since: Option<Instant> = None;
    // a state still unchanged this long after its timing point is late
    let late = |x: &Seen| -> Option<String> {
        let (z1, z2) = x.states.as_ref()?;
        let overdue = |due: i64, what: &str, state: &str| {
            (x.at > due + 8).then(|| {
                format!(
                    "{what} still {state} {} s after its timing point: signpost did not re-sign on time",
                    x.at - due
                )
            })
        };
        match (z1.as_str(), z2.as_str()) {
            (_, "published") => overdue(activate, "ZSK2", "published"),
            ("active", _) => overdue(inactive, "ZSK1", "active"),
            ("inactive", _) => overdue(delete, "ZSK1", "inactive"),
            _ => None,
        }
    };
    loop {
        let x = look(&mut seen, ids);
        if let Some(why) = late(&x) {
            panic!("{why}: {x:?}\n{}", s.log().join("\n"));
        }
        if x.states.as_ref().is_some_and(|s| s.0 == "deleted") && !x.dnskey.contains(&zsk1.tag) {
            let g = *gone_since.get_or_insert_with(Instant::now);
            if g.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "ZSK1 was not deleted in time: {x:?}\n{}",
            s.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(150));
    }

    // what each phase served
    let (z1, z2, k) = (zsk1.tag, zsk2.tag, ksk.tag);
    let mut phases: Vec<(String, String)> = Vec::new();
    for x in &seen {
        let Some(st) = &x.states else { continue };
        if phases.last() != Some(st) {
            phases.push(st.clone());
        }
        let (sigs, keys, roles) = match (st.0.as_str(), st.1.as_str()) {
            ("active", "") => (vec![z1], vec![k, z1], ("zsk", "")),
            ("active", "published") => (vec![z1], vec![k, z1, z2], ("zsk", "")),
            ("active", "active") => (vec![z1, z2], vec![k, z1, z2], ("zsk", "zsk")),
            ("inactive", "active") => (vec![z2], vec![k, z1, z2], ("", "zsk")),
            ("deleted", "active") => (vec![z2], vec![k, z2], ("", "zsk")),
            other => panic!("unexpected key states {other:?}: {x:?}"),
        };
        let sigs: BTreeSet<u16> = sigs.into_iter().collect();
        assert_eq!(x.www, sigs, "www RRSIG tags in {st:?}: {x:?}");
        assert_eq!(x.mail, sigs, "mail RRSIG tags in {st:?}: {x:?}");
        assert_eq!(x.nsec, sigs, "NSEC RRSIG tags in {st:?}: {x:?}");
        assert_eq!(
            x.dnskey,
            keys.into_iter().collect::<BTreeSet<u16>>(),
            "DNSKEY set in {st:?}: {x:?}"
        );
        assert_eq!(
            (x.roles.0.as_str(), x.roles.1.as_str()),
            roles,
            "roles in {st:?}: {x:?}"
        );
    }
    let expect: Vec<(String, String)> = [
        ("active", ""),
        ("active", "published"),
        ("active", "active"),
        ("inactive", "active"),
        ("deleted", "active"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(phases, expect, "the key states, in order");

    // each change came at its timing point (the timer fires ~1 s after)
    let first = |f: &dyn Fn(&Seen) -> bool| seen.iter().find(|x| f(x)).map(|x| x.at);
    let checks: [(&str, i64, Option<i64>); 3] = [
        ("ZSK2 signs", activate, first(&|x| x.www.contains(&z2))),
        (
            "ZSK1 stops signing",
            inactive,
            first(&|x| !x.www.contains(&z1) && x.www.contains(&z2)),
        ),
        (
            "ZSK1 leaves the DNSKEY set",
            delete,
            first(&|x| x.dnskey.len() == 2 && !x.dnskey.contains(&z1)),
        ),
    ];
    for (what, due, at) in checks {
        let at = at.unwrap_or_else(|| panic!("never saw: {what}"));
        assert!(
            at >= due - 1,
            "{what} at {at}, before its time {due}: {seen:#?}"
        );
        assert!(
            at <= due + 8,
            "{what} at {at}, long after its time {due}: {seen:#?}"
        );
    }
    let log = u.log();
    assert!(!log.contains("validation failure"), "{log}");
    println!("{} rounds", seen.len());
}

/// The timer that re-signs at a key's timing point must fire about a
/// second after it even while the control loop is busy with health
/// probes (every deployment has them): here two endpoints probed every
/// 250 ms, and nothing else (no admin API calls; DNS queries do not touch
/// the control loop). ZSK2 becomes active 4 s after it is made; its
/// signatures must be served within a few seconds of that.
#[test]
fn a_key_timing_point_is_acted_on_while_probes_run() {
    require!("dnssec-keygen");
    let dir = scratch("dnssec-timer");
    let (ksk, zsk1) = ecdsa_pair(&dir);
    let a = FakeLb::start("127.88.11.1:0".parse().unwrap());
    let port = a.addr.port();
    let _b = FakeLb::start(format!("127.88.11.2:{port}").parse().unwrap());
    let zsk2 = keygen(&dir, &["-a", "ECDSAP256SHA256", "-P", "now", "-A", "+4"]);
    let keys = [ksk.config_path(), zsk1.config_path(), zsk2.config_path()];
    let services = format!(
        r#"
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "250ms"
timeout = "200ms"

[regions.one]
location = {{ lat = 53.35, lon = -6.26 }}
check = "web"
endpoints = [{{ address = "127.88.11.1" }}, {{ address = "127.88.11.2" }}]

[services."www.example.test."]
regions = ["one"]
policy = "failover"
ttl = 5
"#
    );
    std::fs::write(dir.join("example.test.zone"), zone()).unwrap();
    std::fs::write(dir.join("signpost.toml"), config(&keys, &services)).unwrap();
    let s = Server::start_in(dir.clone(), &["serve", "--config", "signpost.toml"]);
    let activate = zsk2.timing("Activate").expect("Activate");
    let mut signed_at = None;
    while unix_now() <= activate + 20 {
        let r = s.udp(&q("mail.example.test.", RecordType::A, DO));
        if tags(&r, RecordType::A).contains(&zsk2.tag) {
            signed_at = Some(unix_now());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let hits = a.hits();
    println!("activate {activate}, ZSK2 signs from {signed_at:?}; {hits} probes of one endpoint");
    assert!(hits > 10, "the probes ran: {hits}");
    let at = signed_at.unwrap_or_else(|| {
        panic!(
            "ZSK2 never signed within 20 s of its Activate time:\n{}",
            s.log().join("\n")
        )
    });
    assert!(
        at <= activate + 4,
        "ZSK2 signed {} s after its Activate time; the timer should fire ~1 s after",
        at - activate
    );
}
