//! signpost as the primary of real secondaries: NSD and Knot transfer the
//! zone with TSIG, serve its static names and the services' fallback
//! addresses (never the live, steered answer; nothing for a service
//! without fallback), and follow a reload that bumps the serial through
//! NOTIFY within seconds. A secondary with the wrong secret gets nothing.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::common::*;
use crate::tools::*;
use crate::*;

const SERIAL: u32 = 2026112201;

/// signpost's transfer table: loopback may transfer with `key`; NOTIFY
/// goes to `notify_port`.
fn transfer(key: &Key, notify_port: u16) -> String {
    format!(
        "allow = [\"127.0.0.0/8\", \"::1\"]\ntsig = \"{}\"\nnotify = [\"127.0.0.1:{notify_port}\"]",
        key.name
    )
}

fn start(dir: &std::path::Path, key: &Key, notify_port: u16) -> Server {
    let rest = format!("{}{}", key.toml(), services(&default_fallback()));
    let s = serve(
        dir,
        SERIAL,
        &config("127.0.0.1:0", &transfer(key, notify_port), &rest),
    );
    // the live answers, which no secondary may serve
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    assert_eq!(addrs_of(s.dns, "nofb.example.test.", RecordType::A), [LIVE]);
    s
}

/// What a secondary must serve of signpost's zone with `mail` and www's
/// fallback `fallback_v4`: the static names (the bulk TXT names from the
/// first and the last transfer message), the fallback addresses at www
/// with the service's TTL, and nothing at nofb.
fn assert_serves(sec: &Daemon, mail: &str, fallback_v4: &str) {
    let ctx = || sec.log();
    let m = ask(sec.addr, "mail.example.test.", RecordType::A);
    assert_eq!(addrs(&m), [mail], "{m:?}\n{}", ctx());
    assert!(m.metadata.authoritative, "{m:?}");
    assert_eq!(
        addrs_of(sec.addr, "ns1.example.test.", RecordType::A),
        ["127.0.0.1"]
    );
    let mx = ask(sec.addr, ZONE_NAME, RecordType::MX);
    assert_eq!(rdata_of(&mx, RecordType::MX), ["10 mail.example.test."]);
    let txt = ask(sec.addr, ZONE_NAME, RecordType::TXT);
    assert!(
        rdata_of(&txt, RecordType::TXT)
            .iter()
            .any(|t| t.contains("hello world")),
        "{txt:?}"
    );
    for bulk in ["t000.example.test.", "t299.example.test."] {
        let m = ask(sec.addr, bulk, RecordType::TXT);
        assert_eq!(
            rdata_of(&m, RecordType::TXT).len(),
            1,
            "{bulk}: {m:?}\n{}",
            ctx()
        );
    }
    let cname = ask(sec.addr, "app.example.test.", RecordType::CNAME);
    assert_eq!(rdata_of(&cname, RecordType::CNAME), ["www.example.test."]);
    // the service: its declared fallback, not signpost's live answer
    let www = ask(sec.addr, "www.example.test.", RecordType::A);
    assert_eq!(addrs(&www), [fallback_v4], "{www:?}\n{}", ctx());
    assert_eq!(www.answers[0].ttl, 20, "the service's TTL: {www:?}");
    assert_eq!(
        addrs_of(sec.addr, "www.example.test.", RecordType::AAAA),
        [FALLBACK_V6]
    );
    // a service without fallback is absent from the transfer
    let nofb = ask(sec.addr, "nofb.example.test.", RecordType::A);
    assert_eq!(
        nofb.metadata.response_code,
        ResponseCode::NXDomain,
        "a service without fallback must be absent: {nofb:?}"
    );
}

/// The largest "N messages" of signpost's outbound transfer log lines.
fn most_messages(s: &Server) -> usize {
    s.log()
        .iter()
        .filter(|l| l.contains("transfer of example.test. to ") && l.contains(": full ("))
        .filter_map(|l| {
            let i = l.find(": full (")? + ": full (".len();
            l[i..].split_whitespace().next()?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// Reloads signpost with the zone at `serial` (mail 192.0.2.26) and www's
/// fallback at 192.0.2.11; returns when the reload answered.
fn change_and_reload(s: &Server, serial: u32) -> Instant {
    write(
        &s.dir.join("example.test.zone"),
        &zone(serial, "192.0.2.26"),
    );
    let cfg = std::fs::read_to_string(s.dir.join("signpost.toml")).unwrap();
    let cfg = cfg.replace(
        &format!("fallback = {}", default_fallback()),
        &format!("fallback = [\"192.0.2.11\", \"{FALLBACK_V6}\"]"),
    );
    write(&s.dir.join("signpost.toml"), &cfg);
    let at = Instant::now();
    reload(s);
    at
}

#[test]
fn nsd_secondary_transfers_with_tsig_and_follows_notify() {
    require!("nsd", "nsd-control");
    let dir = Scratch::new("nsd");
    let key = Key::random("xfr-key");
    let nsd_port = free_port();
    let s = start(&dir.0, &key, nsd_port);
    let nsd = nsd_secondary(&dir.sub("nsd"), nsd_port, s.dns, &key);
    let ctx = || format!("nsd:\n{}\nsignpost:\n{}", nsd.log(), log_text(&s));

    eventually(
        Duration::from_secs(20),
        "NSD serves the first transfer",
        || nsd.serial() == Some(SERIAL),
        ctx,
    );
    assert_serves(&nsd, "192.0.2.25", FALLBACK_V4);
    assert!(
        nsd.log().contains("TSIG verified with key xfr-key"),
        "{}",
        ctx()
    );
    // ~40 KB of records: several messages, each signed in the chain
    assert!(most_messages(&s) >= 2, "{}", log_text(&s));
    assert!(xfr_count(&s, "out", "full") >= 1.0);
    let zs = nsd_control(&nsd, &["zonestatus", "example.test"]);
    assert!(
        zs.stdout.contains(&format!("served-serial: \"{SERIAL}")),
        "{}",
        zs.text()
    );

    // a reload that changes a record and the serial: NSD (refresh 3600 s)
    // has it within seconds, so through signpost's NOTIFY
    let at = change_and_reload(&s, SERIAL + 1);
    let took = nsd.wait_serial(SERIAL + 1, Duration::from_secs(10));
    assert!(took.is_some(), "NSD not at the new serial:\n{}", ctx());
    println!("NSD had the new serial {:?} after the reload", at.elapsed());
    assert_serves(&nsd, "192.0.2.26", "192.0.2.11");
    assert!(
        nsd.log().contains(&format!(
            "notify for example.test. from 127.0.0.1 serial {}",
            SERIAL + 1
        )),
        "NSD logged no NOTIFY for the new serial:\n{}",
        ctx()
    );
    assert!(
        log_text(&s).contains(&format!(
            "serial {}, NOTIFY to 127.0.0.1:{nsd_port}",
            SERIAL + 1
        )),
        "{}",
        ctx()
    );
    eventually(
        Duration::from_secs(5),
        "signpost counts the acknowledged NOTIFY",
        || xfr_count(&s, "notify_sent", "acknowledged") >= 1.0,
        || metrics(&s),
    );
    assert_eq!(xfr_count(&s, "out", "notauth"), 0.0, "{}", metrics(&s));
    // signpost itself still steers
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
}

#[test]
fn nsd_with_a_wrong_secret_gets_nothing() {
    require!("nsd", "nsd-control");
    let dir = Scratch::new("nsd-badkey");
    let key = Key::random("xfr-key");
    let s = start(&dir.0, &key, free_port());
    let nsd = nsd_secondary(&dir.sub("nsd"), free_port(), s.dns, &key.wrong_secret());
    let ctx = || format!("nsd:\n{}\nsignpost:\n{}", nsd.log(), log_text(&s));

    eventually(
        Duration::from_secs(20),
        "NSD reports the bad signature",
        || {
            let l = nsd.log();
            l.contains("Bad Signature") || l.contains("bad tsig signature")
        },
        ctx,
    );
    eventually(
        Duration::from_secs(5),
        "signpost counts notauth",
        || xfr_count(&s, "out", "notauth") >= 1.0,
        || metrics(&s),
    );
    assert_eq!(xfr_count(&s, "out", "full"), 0.0, "{}", metrics(&s));
    assert!(
        log_text(&s).contains("transfer of example.test. to 127.0.0.1:")
            && log_text(&s).contains(": notauth"),
        "{}",
        ctx()
    );
    let zs = nsd_control(&nsd, &["zonestatus", "example.test"]);
    assert!(
        zs.stdout.contains("served-serial: none"),
        "NSD must hold no copy: {}",
        zs.text()
    );
    let m = ask(nsd.addr, "mail.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{m:?}");
    assert!(m.answers.is_empty(), "{m:?}");
}

#[test]
fn knot_secondary_transfers_with_tsig_and_follows_notify() {
    require!("knotd", "knotc");
    let dir = Scratch::new("knot-secondary");
    let key = Key::random("xfr-key");
    let knot_port = free_port();
    let s = start(&dir.0, &key, knot_port);
    let knot = knot_secondary(&dir.sub("knot"), knot_port, s.dns, &key);
    let ctx = || format!("knot:\n{}\nsignpost:\n{}", knot.log(), log_text(&s));

    eventually(
        Duration::from_secs(20),
        "Knot serves the first transfer",
        || knot.serial() == Some(SERIAL),
        ctx,
    );
    assert_serves(&knot, "192.0.2.25", FALLBACK_V4);
    assert!(
        knot.log().contains("AXFR, incoming") && knot.log().contains("finished"),
        "{}",
        ctx()
    );

    let at = change_and_reload(&s, SERIAL + 1);
    let took = knot.wait_serial(SERIAL + 1, Duration::from_secs(10));
    assert!(took.is_some(), "Knot not at the new serial:\n{}", ctx());
    println!(
        "Knot had the new serial {:?} after the reload",
        at.elapsed()
    );
    assert_serves(&knot, "192.0.2.26", "192.0.2.11");
    let notified = format!("serial {}", SERIAL + 1);
    assert!(
        knot.log()
            .lines()
            .any(|l| l.contains("notify, incoming") && l.ends_with(&notified)),
        "Knot logged no NOTIFY of the new serial:\n{}",
        ctx()
    );
    let st = knotc(&knot, &["zone-status", "example.test"]);
    assert!(
        st.stdout.contains(&format!("serial: {}", SERIAL + 1)),
        "{}",
        st.text()
    );
}
