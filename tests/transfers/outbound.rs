//! Outbound transfers judged on the wire: who is refused (a client
//! outside `allow`, a zone without a transfer table, anything over UDP),
//! how TSIG is enforced (missing: NOTAUTH; a bad MAC, an unknown key or
//! algorithm, a stale time: NOTAUTH with BADSIG, BADKEY, BADTIME), and
//! what AXFR and IXFR carry (the records, several messages each signed in
//! the chain; one SOA for a client up to date). Raw requests are made
//! with hickory-proto; dig is the independent client.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigVerifier};

use crate::common::*;
use crate::tools::*;
use crate::*;

const SERIAL: u32 = 2026112201;

/// Records in the zone file ([`zone`]): 11 named ones and the bulk.
const STATIC_RECORDS: usize = 11 + BULK;
/// What an AXFR carries: the SOA, the static records after it, www's two
/// fallback addresses and the closing SOA.
const AXFR_RECORDS: usize = STATIC_RECORDS + 2 + 1;

const OTHER_ZONE: &str = r#"$ORIGIN other.test.
$TTL 300
@ IN SOA ns1.other.test. hostmaster.other.test. 7 3600 600 604800 60
  IN NS  ns1.other.test.
ns1 IN A 127.0.0.1
"#;

/// signpost where only 127.0.0.1 (and ::1) may transfer example.test,
/// with `key`; other.test has no transfer table.
fn start(dir: &Scratch, key: &Key) -> Server {
    std::fs::write(dir.0.join("other.test.zone"), OTHER_ZONE).unwrap();
    let transfer = format!(
        "allow = [\"127.0.0.1/32\", \"::1\"]\ntsig = \"{}\"",
        key.name
    );
    let rest = format!(
        "{}\n[zones.\"other.test.\"]\nfile = \"other.test.zone\"\n{}",
        key.toml(),
        services(&default_fallback())
    );
    serve(&dir.0, SERIAL, &config("127.0.0.1:0", &transfer, &rest))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A transfer request for `zone` (IXFR when `ixfr` gives the client's
/// serial), signed with `key` at time `at` when given: the bytes and
/// the verifier of the answer's TSIG chain.
fn request(
    zone: &str,
    t: RecordType,
    ixfr: Option<u32>,
    sign: Option<(&Key, u64)>,
) -> (Vec<u8>, Option<TSigVerifier>) {
    let mut m = Message::new(0x5a5a, MessageType::Query, OpCode::Query);
    let apex = Name::from_ascii(zone).unwrap();
    m.add_query(Query::query(apex.clone(), t));
    if let Some(serial) = ixfr {
        let soa = SOA::new(
            Name::from_ascii("ns1.example.test.").unwrap(),
            Name::from_ascii("hostmaster.example.test.").unwrap(),
            serial,
            3600,
            600,
            604800,
            60,
        );
        m.add_authority(Record::from_rdata(apex, 300, RData::SOA(soa)));
    }
    let verifier = sign.and_then(|(key, at)| m.finalize(&key.signer(), at).unwrap());
    (m.to_vec().unwrap(), verifier)
}

/// A signed request made now.
fn signed(zone: &str, t: RecordType, ixfr: Option<u32>, key: &Key) -> (Vec<u8>, TSigVerifier) {
    let (b, v) = request(zone, t, ixfr, Some((key, now())));
    (b, v.expect("a verifier"))
}

/// The transfer's messages, parsed, from `src` when given.
fn transfer(s: &Server, src: Option<&str>, bytes: &[u8]) -> Vec<Message> {
    let src: Option<IpAddr> = src.map(|a| a.parse().unwrap());
    tcp_transfer(src, s.dns, bytes)
        .iter()
        .map(|m| Message::from_vec(m).unwrap())
        .collect()
}

/// Asserts one answer message with `rcode`, echoing the question, with
/// nothing of the zone; returns it.
fn refusal(ms: &[Message], rcode: ResponseCode, what: &str) -> Message {
    assert_eq!(ms.len(), 1, "{what}: one message, got {ms:?}");
    let m = ms[0].clone();
    assert_eq!(m.metadata.response_code, rcode, "{what}: {m:?}");
    assert_eq!(m.metadata.message_type, MessageType::Response, "{what}");
    assert!(
        m.answers.is_empty() && m.authorities.is_empty(),
        "{what}: nothing of the zone may be sent: {m:?}"
    );
    assert_eq!(m.queries.len(), 1, "{what}: the question is echoed: {m:?}");
    m
}

/// The TSIG error of an answer.
fn tsig_error(m: &Message) -> Option<TsigError> {
    m.signature().and_then(|s| s.data.error)
}

#[test]
fn a_client_outside_allow_and_a_zone_without_transfer_are_refused() {
    let dir = Scratch::new("refused");
    let key = Key::random("xfr-key");
    let s = start(&dir, &key);

    // 127.0.0.2 is not in allow, however well it signs
    for (t, ixfr) in [
        (RecordType::AXFR, None),
        (RecordType::IXFR, Some(SERIAL - 1)),
    ] {
        let (b, _) = signed(ZONE_NAME, t, ixfr, &key);
        let ms = transfer(&s, Some("127.0.0.2"), &b);
        let m = refusal(&ms, ResponseCode::Refused, &format!("{t} from 127.0.0.2"));
        assert!(m.signature().is_none(), "REFUSED is not signed: {m:?}");
    }
    // a zone without a transfer table: nobody may
    let (b, _) = signed("other.test.", RecordType::AXFR, None, &key);
    refusal(
        &transfer(&s, None, &b),
        ResponseCode::Refused,
        "AXFR of other.test.",
    );
    let (b, _) = request("other.test.", RecordType::AXFR, None, None);
    refusal(
        &transfer(&s, None, &b),
        ResponseCode::Refused,
        "unsigned AXFR of other.test.",
    );
    assert!(xfr_count(&s, "out", "refused") >= 2.0, "{}", metrics(&s));
    assert_eq!(xfr_count(&s, "out", "full"), 0.0, "{}", metrics(&s));

    if missing(&["dig"]).is_none() {
        let out = dig(s.dns, Some(&key), &["-b", "127.0.0.2", ZONE_NAME, "AXFR"]);
        assert!(out.text().contains("Transfer failed"), "{}", out.text());
        assert!(dig_records(&out.stdout).is_empty(), "{}", out.text());
        // the same from 127.0.0.1 works
        let out = dig(s.dns, Some(&key), &["-b", "127.0.0.1", ZONE_NAME, "AXFR"]);
        assert_eq!(
            dig_records(&out.stdout).len(),
            AXFR_RECORDS,
            "{}",
            out.text()
        );
    }
}

#[test]
fn tsig_is_required_and_checked() {
    let dir = Scratch::new("tsig");
    let key = Key::random("xfr-key");
    let s = start(&dir, &key);

    // no TSIG at all: NOTAUTH, and no TSIG record to answer with
    let (b, _) = request(ZONE_NAME, RecordType::AXFR, None, None);
    let m = refusal(&transfer(&s, None, &b), ResponseCode::NotAuth, "unsigned");
    assert!(m.signature().is_none(), "{m:?}");

    let cases: [(&str, Key, u64, TsigError); 4] = [
        (
            "a wrong secret",
            key.wrong_secret(),
            now(),
            TsigError::BadSig,
        ),
        (
            "an unknown key name",
            Key::random("other-key"),
            now(),
            TsigError::BadKey,
        ),
        (
            "another algorithm",
            Key {
                algorithm: "hmac-sha512",
                ..key.clone()
            },
            now(),
            TsigError::BadKey,
        ),
        (
            "a time an hour old",
            key.clone(),
            now() - 3600,
            TsigError::BadTime,
        ),
    ];
    for (what, k, at, expect) in &cases {
        let (b, _) = request(ZONE_NAME, RecordType::AXFR, None, Some((k, *at)));
        let m = refusal(&transfer(&s, None, &b), ResponseCode::NotAuth, what);
        assert_eq!(tsig_error(&m), Some(*expect), "{what}: {m:?}");
        let sig = m.signature().unwrap();
        assert_eq!(sig.name.to_ascii(), format!("{}.", k.name), "{what}");
        if *expect == TsigError::BadTime {
            // RFC 8945 §5.2.3: signed, with the server's time in Other Data
            assert!(!sig.data.mac.is_empty(), "BADTIME is signed: {m:?}");
            assert_eq!(sig.data.other.len(), 6, "{m:?}");
            let mut t = [0u8; 8];
            t[2..].copy_from_slice(&sig.data.other);
            let server = u64::from_be_bytes(t);
            assert!(server.abs_diff(now()) < 60, "server time {server}");
        } else {
            assert!(sig.data.mac.is_empty(), "{what}: unsigned: {m:?}");
        }
    }
    assert!(xfr_count(&s, "out", "notauth") >= 5.0, "{}", metrics(&s));
    assert_eq!(xfr_count(&s, "out", "full"), 0.0, "{}", metrics(&s));

    if missing(&["dig"]).is_none() {
        let out = dig(s.dns, Some(&key.wrong_secret()), &[ZONE_NAME, "AXFR"]);
        let text = out.text();
        assert!(text.contains("BADSIG"), "{text}");
        assert!(text.contains("Transfer failed"), "{text}");
        assert!(dig_records(&out.stdout).is_empty(), "no zone data: {text}");
        let out = dig(s.dns, None, &[ZONE_NAME, "AXFR"]);
        assert!(out.text().contains("Transfer failed"), "{}", out.text());
        assert!(dig_records(&out.stdout).is_empty(), "{}", out.text());
    }
}

#[test]
fn transfers_over_udp_are_refused() {
    let dir = Scratch::new("udp");
    let key = Key::random("xfr-key");
    let s = start(&dir, &key);
    let asks = [
        (
            "unsigned AXFR",
            request(ZONE_NAME, RecordType::AXFR, None, None).0,
        ),
        (
            "signed AXFR",
            signed(ZONE_NAME, RecordType::AXFR, None, &key).0,
        ),
        (
            "signed IXFR",
            signed(ZONE_NAME, RecordType::IXFR, Some(SERIAL - 1), &key).0,
        ),
        (
            "unsigned IXFR",
            request(ZONE_NAME, RecordType::IXFR, Some(SERIAL - 1), None).0,
        ),
    ];
    for (what, bytes) in asks {
        let m = udp_exchange(s.dns, &bytes).unwrap_or_else(|| panic!("{what}: no UDP answer"));
        refusal(&[m], ResponseCode::Refused, &format!("{what} over UDP"));
    }
    // the same over TCP is served
    let (b, _) = signed(ZONE_NAME, RecordType::AXFR, None, &key);
    let ms = transfer(&s, None, &b);
    assert_eq!(ms[0].metadata.response_code, ResponseCode::NoError);
}

/// Every message verified in the TSIG chain; the records of all.
fn verified_records(ms: &[Vec<u8>], mut v: TSigVerifier) -> Vec<Record> {
    let mut records = Vec::new();
    for (i, raw) in ms.iter().enumerate() {
        v.verify(raw)
            .unwrap_or_else(|e| panic!("message {i} of {}: TSIG: {e}", ms.len()));
        let m = Message::from_vec(raw).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
        assert!(m.metadata.authoritative, "message {i}: AA");
        records.extend(m.answers);
    }
    records
}

fn serial_of(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

/// Asserts a whole zone: SOA first and last, the records between.
fn assert_whole_zone(records: &[Record], what: &str) {
    assert_eq!(records.len(), AXFR_RECORDS, "{what}: {records:#?}");
    assert_eq!(serial_of(&records[0]), Some(SERIAL), "{what}");
    assert_eq!(serial_of(records.last().unwrap()), Some(SERIAL), "{what}");
    let soas = records.iter().filter(|r| serial_of(r).is_some()).count();
    assert_eq!(soas, 2, "{what}: the SOA opens and closes only");
    let at = |n: &str, t: RecordType| -> Vec<&Record> {
        records
            .iter()
            .filter(|r| r.name == Name::from_ascii(n).unwrap() && r.record_type() == t)
            .collect()
    };
    let www_a = at("www.example.test.", RecordType::A);
    assert_eq!(www_a.len(), 1, "{what}");
    assert_eq!(www_a[0].data.to_string(), FALLBACK_V4);
    assert_eq!(www_a[0].ttl, 20, "the service's TTL");
    let www_aaaa = at("www.example.test.", RecordType::AAAA);
    assert_eq!(www_aaaa[0].data.to_string(), FALLBACK_V6);
    assert!(
        records
            .iter()
            .all(|r| r.name != Name::from_ascii("nofb.example.test.").unwrap()),
        "{what}: a service without fallback is absent"
    );
    assert_eq!(at("mail.example.test.", RecordType::A).len(), 1);
    assert_eq!(at("*.wild.example.test.", RecordType::A).len(), 1);
    assert_eq!(at("sub.example.test.", RecordType::NS).len(), 1);
    assert_eq!(at("t299.example.test.", RecordType::TXT).len(), 1);
}

#[test]
fn axfr_and_ixfr_carry_the_zone_signed_in_a_chain() {
    let dir = Scratch::new("axfr");
    let key = Key::random("xfr-key");
    let s = start(&dir, &key);

    // AXFR: several messages, each signed with the MAC of the one before
    let (b, v) = signed(ZONE_NAME, RecordType::AXFR, None, &key);
    let ms = tcp_transfer(None, s.dns, &b);
    assert!(ms.len() >= 2, "~40 KB must take several messages");
    assert!(ms.iter().all(|m| m.len() < 17_000), "messages of ~16 KB");
    assert_whole_zone(&verified_records(&ms, v), "AXFR");

    // IXFR from an older serial: the whole zone, AXFR-style
    let (b, v) = signed(ZONE_NAME, RecordType::IXFR, Some(SERIAL - 1), &key);
    let ms = tcp_transfer(None, s.dns, &b);
    assert_whole_zone(&verified_records(&ms, v), "IXFR from an older serial");

    // IXFR from the current serial, or a newer one: the SOA alone
    for client in [SERIAL, SERIAL + 5] {
        let (b, v) = signed(ZONE_NAME, RecordType::IXFR, Some(client), &key);
        let ms = tcp_transfer(None, s.dns, &b);
        assert_eq!(ms.len(), 1, "IXFR from {client}");
        let records = verified_records(&ms, v);
        assert_eq!(records.len(), 1, "IXFR from {client}: {records:?}");
        assert_eq!(serial_of(&records[0]), Some(SERIAL));
    }
    assert!(xfr_count(&s, "out", "up_to_date") >= 2.0, "{}", metrics(&s));
    assert!(xfr_count(&s, "out", "full") >= 2.0, "{}", metrics(&s));

    if missing(&["dig"]).is_none() {
        // dig checks every message's TSIG itself
        let out = dig(s.dns, Some(&key), &[ZONE_NAME, "AXFR"]);
        let text = out.text();
        assert!(!text.contains("Transfer failed"), "{text}");
        assert!(!text.to_lowercase().contains("tsig verify"), "{text}");
        assert_eq!(dig_records(&out.stdout).len(), AXFR_RECORDS, "{text}");
        let size = text
            .lines()
            .find(|l| l.starts_with(";; XFR size:"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(!size.contains("messages 1,"), "{size}");
        let ixfr = format!("IXFR={SERIAL}");
        let out = dig(s.dns, Some(&key), &[ZONE_NAME, &ixfr]);
        let records = dig_records(&out.stdout);
        assert_eq!(records.len(), 1, "{}", out.text());
        assert!(
            records[0].contains(&format!(
                " SOA ns1.example.test. hostmaster.example.test. {SERIAL} "
            )),
            "{}",
            out.text()
        );
    }
}

/// The address of signpost's DNS listener on `family_prefix` ("127." or
/// "[::1]"), from its log.
fn listener(s: &Server, family_prefix: &str) -> SocketAddr {
    s.log()
        .iter()
        .find_map(|l| {
            let a = l.split("dns listening on ").nth(1)?;
            let a = a.split_whitespace().next()?;
            a.starts_with(family_prefix).then(|| a.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no listener {family_prefix} in\n{}", log_text(s)))
}

#[test]
fn hmac_sha512_from_a_secret_file_over_ipv4_and_ipv6() {
    let dir = Scratch::new("sha512");
    let key = Key::random_with("k512", "hmac-sha512");
    std::fs::create_dir_all(dir.0.join("keys")).unwrap();
    // as an operator writes it: with a newline
    std::fs::write(dir.0.join("keys/xfr.secret"), format!("{}\n", key.secret)).unwrap();
    let transfer = "allow = [\"127.0.0.1/32\", \"::1\"]\ntsig = \"k512\"";
    let rest = format!(
        "\n[tsig.k512]\nalgorithm = \"hmac-sha512\"\nsecret_file = \"keys/xfr.secret\"\n{}",
        services(&default_fallback())
    );
    let s = serve(
        &dir.0,
        SERIAL,
        &config("127.0.0.1:0\", \"[::1]:0", transfer, &rest),
    );
    let v4 = listener(&s, "127.");
    let v6 = listener(&s, "[::1]");
    for (to, zone_name) in [(v4, ZONE_NAME), (v6, ZONE_NAME), (v4, "ExAmple.TEST.")] {
        let (b, v) = signed(zone_name, RecordType::AXFR, None, &key);
        let ms = tcp_transfer(None, to, &b);
        assert_whole_zone(&verified_records(&ms, v), &format!("{zone_name} via {to}"));
    }
    // the same name with another algorithm is another key
    let k256 = Key {
        algorithm: "hmac-sha256",
        ..key.clone()
    };
    let (b, _) = request(ZONE_NAME, RecordType::AXFR, None, Some((&k256, now())));
    let ms: Vec<Message> = tcp_transfer(None, v4, &b)
        .iter()
        .map(|m| Message::from_vec(m).unwrap())
        .collect();
    let m = refusal(&ms, ResponseCode::NotAuth, "hmac-sha256 for a sha512 key");
    assert_eq!(tsig_error(&m), Some(TsigError::BadKey));

    // a request whose additional section does not parse: FORMERR
    let (mut b, _) = request(ZONE_NAME, RecordType::AXFR, None, None);
    b[11] = 1; // ARCOUNT 1, and three bytes of a record
    b.extend_from_slice(&[0, 0, 250]);
    let ms: Vec<Message> = tcp_transfer(None, v4, &b)
        .iter()
        .map(|m| Message::from_vec(m).unwrap())
        .collect();
    refusal(&ms, ResponseCode::FormErr, "a malformed request");
    assert!(xfr_count(&s, "out", "formerr") >= 1.0, "{}", metrics(&s));

    if missing(&["dig"]).is_none() {
        let out = dig(v6, Some(&key), &[ZONE_NAME, "AXFR"]);
        assert_eq!(
            dig_records(&out.stdout).len(),
            AXFR_RECORDS,
            "{}",
            out.text()
        );
    }
}
