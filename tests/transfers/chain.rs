//! signpost in the middle of a chain: a hidden primary (Knot) feeds it
//! and it feeds a secondary (NSD), TSIG on both hops, each hop told by
//! NOTIFY; the secondary serves the primary's static data with signpost's
//! fallbacks at the service names. And before its first transfer a
//! signpost has no zone to pass on: its placeholder (SOA serial 0, NS
//! `invalid.`) must never reach a secondary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::common::*;
use crate::notify::FakeSecondary;
use crate::tools::*;
use crate::*;

const SERIAL: u32 = 1000;

fn primary_zone() -> String {
    format!(
        r#"$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. {SERIAL} 3600 600 604800 60
        IN NS   ns1.example.test.
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
"#
    )
}

/// signpost taking the zone from `primary` and passing it on to
/// 127.0.0.0/8, NOTIFYing `notify`; `key` on both sides.
fn middle_config(listen: &str, primary: SocketAddr, notify: SocketAddr, key: &Key) -> String {
    format!(
        r#"
[server]
listen = ["{listen}"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
primary = "{primary}"
tsig = "{name}"

[zones."example.test.".transfer]
allow = ["127.0.0.0/8"]
tsig = "{name}"
notify = ["{notify}"]
{tsig}{services}"#,
        name = key.name,
        tsig = key.toml(),
        services = services(&default_fallback()),
    )
}

#[test]
fn knot_to_signpost_to_nsd() {
    require!("knotd", "knotc", "nsd", "nsd-control");
    let dir = Scratch::new("chain");
    let key = Key::random("xfr-key");
    let (sp_port, nsd_port) = (free_port(), free_port());
    let knot = knot_primary(
        &dir.sub("knot"),
        free_port(),
        &primary_zone(),
        SocketAddr::from(([127, 0, 0, 1], sp_port)),
        &key,
        false,
    );
    std::fs::write(
        dir.0.join("signpost.toml"),
        middle_config(
            &format!("127.0.0.1:{sp_port}"),
            knot.addr,
            SocketAddr::from(([127, 0, 0, 1], nsd_port)),
            &key,
        ),
    )
    .unwrap();
    let s = Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    eventually(
        Duration::from_secs(20),
        "signpost holds the primary's zone",
        || soa_serial(s.dns) == Some(SERIAL),
        || format!("{}\n{}", knot.log(), log_text(&s)),
    );
    let nsd = nsd_secondary(&dir.sub("nsd"), nsd_port, s.dns, &key);
    let ctx = || {
        format!(
            "knot:\n{}\nsignpost:\n{}\nnsd:\n{}",
            knot.log(),
            log_text(&s),
            nsd.log()
        )
    };
    eventually(
        Duration::from_secs(20),
        "NSD serves the zone",
        || nsd.serial() == Some(SERIAL),
        ctx,
    );
    assert_eq!(
        addrs_of(nsd.addr, "mail.example.test.", RecordType::A),
        ["192.0.2.25"]
    );
    assert_eq!(
        addrs_of(nsd.addr, "www.example.test.", RecordType::A),
        [FALLBACK_V4]
    );
    let nofb = ask(nsd.addr, "nofb.example.test.", RecordType::A);
    assert_eq!(nofb.metadata.response_code, ResponseCode::NXDomain);

    // a change at the primary crosses both hops by NOTIFY (every SOA
    // refresh is an hour)
    let at = Instant::now();
    knot_change(
        &knot,
        &[
            ("zone-unset", "mail A 192.0.2.25"),
            ("zone-set", "mail 300 A 192.0.2.26"),
        ],
    );
    eventually(
        Duration::from_secs(15),
        "the change reaches NSD",
        || {
            try_ask(nsd.addr, "mail.example.test.", RecordType::A)
                .is_some_and(|m| addrs(&m) == ["192.0.2.26"])
        },
        ctx,
    );
    println!("Knot -> signpost -> NSD in {:?}", at.elapsed());
    assert_eq!(nsd.serial(), Some(SERIAL + 1));
    assert!(
        nsd.log().contains(&format!(
            "notify for example.test. from 127.0.0.1 serial {}",
            SERIAL + 1
        )),
        "{}",
        ctx()
    );
}

#[test]
fn a_zone_without_a_copy_is_not_passed_on() {
    let dir = Scratch::new("no-copy");
    let key = Key::random("xfr-key");
    let sec = FakeSecondary::start(None, 0);
    // the primary is down: there is no copy and there will be none
    let primary = SocketAddr::from(([127, 0, 0, 1], free_port()));
    std::fs::write(
        dir.0.join("signpost.toml"),
        middle_config("127.0.0.1:0", primary, sec.addr, &key),
    )
    .unwrap();
    let s = Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    eventually(
        Duration::from_secs(5),
        "the first transfer fails",
        || xfr_count(&s, "in", "failed") >= 1.0,
        || log_text(&s),
    );
    // the services answer; the placeholder SOA says there is no data yet
    assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
    assert_eq!(soa_serial(s.dns), Some(0));

    let mut q = Message::new(0x0c0c, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii(ZONE_NAME).unwrap(),
        RecordType::AXFR,
    ));
    q.finalize(&key.signer(), crate::notify::unix_now())
        .unwrap();
    let ms: Vec<Message> = tcp_transfer(None, s.dns, &q.to_vec().unwrap())
        .iter()
        .map(|m| Message::from_vec(m).unwrap())
        .collect();
    let records: Vec<String> = ms
        .iter()
        .flat_map(|m| m.answers.iter().map(ToString::to_string))
        .collect();
    assert!(
        ms[0].metadata.response_code != ResponseCode::NoError && records.is_empty(),
        "a zone with no copy from its primary must not be transferred (a secondary \
         would serve it as the zone: NXDOMAIN for every static name); got {} with:\n{}",
        ms[0].metadata.response_code,
        records.join("\n")
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sec.seen().is_empty(),
        "no NOTIFY for a zone with no copy: {:?}",
        sec.seen()
    );
}
