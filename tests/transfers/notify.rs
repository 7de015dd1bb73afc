//! NOTIFY (RFC 1996) both ways, on the wire. Out: signed with the zone's
//! key, retried 1 s, 2 s, 4 s ... until acknowledged, then no more; a
//! reload under the same serial is served and warned about but tells no
//! secondary, one that grows the serial does. In: a zone taken from a
//! primary accepts a NOTIFY only from the primary's address with the
//! zone's key, answers it signed, and transfers at once.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::common::*;
use crate::*;

const SERIAL: u32 = 2026112201;

/// One NOTIFY a [`FakeSecondary`] received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub serial: Option<u32>,
    /// Its TSIG verified with the secondary's key (false without one).
    pub signed: bool,
}

/// A secondary on a UDP socket that acknowledges NOTIFYs, except the
/// first `ignore` ones, and keeps what it saw.
pub struct FakeSecondary {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl FakeSecondary {
    pub fn start(key: Option<&Key>, ignore: usize) -> FakeSecondary {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let signer = key.map(Key::signer);
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(m) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                if m.metadata.op_code != OpCode::Notify
                    || m.metadata.message_type != MessageType::Query
                {
                    continue;
                }
                let signed = signer.as_ref().is_some_and(|s| {
                    s.verify_message_byte(&buf[..n], None, true)
                        .is_ok_and(|(_, _, window)| window.contains(&unix_now()))
                });
                let serial = m.answers.iter().find_map(|r| match &r.data {
                    RData::SOA(s) => Some(s.serial),
                    _ => None,
                });
                let count = {
                    let mut v = seen2.lock().unwrap();
                    v.push(Seen {
                        at: Instant::now(),
                        serial,
                        signed,
                    });
                    v.len()
                };
                if count <= ignore {
                    continue;
                }
                let mut ack = Message::new(m.metadata.id, MessageType::Response, OpCode::Notify);
                ack.metadata.authoritative = true;
                for q in &m.queries {
                    ack.add_query(q.clone());
                }
                let _ = sock.send_to(&ack.to_vec().unwrap(), from);
            }
        });
        FakeSecondary {
            addr,
            seen,
            stop,
            handle: Some(handle),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The serials of the NOTIFYs seen.
    pub fn serials(&self) -> Vec<Option<u32>> {
        self.seen().iter().map(|s| s.serial).collect()
    }
}

impl Drop for FakeSecondary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// signpost serving example.test from its file, NOTIFYing `to` (signed
/// with `key` when given).
fn start(dir: &Scratch, to: SocketAddr, key: Option<&Key>) -> Server {
    let (tsig, toml) = match key {
        Some(k) => (format!("\ntsig = \"{}\"", k.name), k.toml()),
        None => (String::new(), String::new()),
    };
    let transfer = format!("allow = [\"127.0.0.0/8\"]{tsig}\nnotify = [\"{to}\"]");
    let rest = format!("{toml}{}", services(&default_fallback()));
    serve(&dir.0, SERIAL, &config("127.0.0.1:0", &transfer, &rest))
}

#[test]
fn notify_is_signed_and_retried_with_back_off_until_acknowledged() {
    let dir = Scratch::new("notify-retry");
    let key = Key::random("xfr-key");
    // the first three go unanswered
    let sec = FakeSecondary::start(Some(&key), 3);
    let s = start(&dir, sec.addr, Some(&key));
    eventually(
        Duration::from_secs(15),
        "four NOTIFYs",
        || sec.seen().len() >= 4,
        || format!("{:?}\n{}", sec.seen(), log_text(&s)),
    );
    let seen = sec.seen();
    assert!(
        seen.iter().all(|n| n.signed && n.serial == Some(SERIAL)),
        "every NOTIFY carries the SOA and the zone's TSIG: {seen:?}"
    );
    let gaps: Vec<f64> = seen
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect();
    for (gap, want) in gaps.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            (gap - want).abs() < 0.6,
            "waits between tries should be 1 s, 2 s, 4 s: {gaps:?}"
        );
    }
    eventually(
        Duration::from_secs(3),
        "the acknowledgement is counted",
        || xfr_count(&s, "notify_sent", "acknowledged") == 1.0,
        || metrics(&s),
    );
    // acknowledged: no more tries
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(sec.seen().len(), 4, "{:?}", sec.seen());
    assert_eq!(xfr_count(&s, "notify_sent", "failed"), 0.0);
}

#[test]
fn the_same_serial_tells_nobody_a_new_one_does() {
    let dir = Scratch::new("notify-serial");
    let sec = FakeSecondary::start(None, 0);
    let s = start(&dir, sec.addr, None);
    eventually(
        Duration::from_secs(5),
        "the NOTIFY at start",
        || sec.serials() == [Some(SERIAL)],
        || log_text(&s),
    );

    // data changed, serial not: served, warned about, nobody told
    write(
        &dir.0.join("example.test.zone"),
        &zone(SERIAL, "192.0.2.26"),
    );
    reload(&s);
    assert_eq!(
        addrs_of(s.dns, "mail.example.test.", RecordType::A),
        ["192.0.2.26"]
    );
    eventually(
        Duration::from_secs(3),
        "the warning about the serial",
        || log_text(&s).contains("changed but the serial is still"),
        || log_text(&s),
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sec.serials(),
        [Some(SERIAL)],
        "no NOTIFY for the same serial"
    );

    // the serial grows: NOTIFY at once
    write(
        &dir.0.join("example.test.zone"),
        &zone(SERIAL + 1, "192.0.2.26"),
    );
    let at = Instant::now();
    reload(&s);
    eventually(
        Duration::from_secs(3),
        "a NOTIFY of the new serial",
        || sec.serials() == [Some(SERIAL), Some(SERIAL + 1)],
        || format!("{:?}\n{}", sec.seen(), log_text(&s)),
    );
    assert!(sec.seen()[1].at >= at);
}

/// A NOTIFY for `zone` at `serial`, signed with `key` when given.
pub fn notify_msg(zone: &str, serial: u32, key: Option<&Key>) -> Message {
    let mut m = Message::new(0x4e4e, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    let apex = Name::from_ascii(zone).unwrap();
    m.add_query(Query::query(apex.clone(), RecordType::SOA));
    let soa = SOA::new(
        Name::from_ascii("ns1.example.test.").unwrap(),
        Name::from_ascii("hostmaster.example.test.").unwrap(),
        serial,
        3600,
        600,
        604800,
        60,
    );
    m.add_answer(Record::from_rdata(apex, 300, RData::SOA(soa)));
    if let Some(k) = key {
        m.finalize(&k.signer(), unix_now()).unwrap();
    }
    m
}

/// Sends `m` over UDP from `src` to `to`; the answer.
fn udp_from(src: &str, to: SocketAddr, m: &Message) -> Message {
    let sock = UdpSocket::bind((src.parse::<IpAddr>().unwrap(), 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(&m.to_vec().unwrap(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no answer to a NOTIFY from {src}: {e}"));
    Message::from_vec(&buf[..n]).unwrap()
}

fn assert_answer(m: &Message, rcode: ResponseCode, what: &str) {
    assert_eq!(m.metadata.message_type, MessageType::Response, "{what}");
    assert_eq!(m.metadata.op_code, OpCode::Notify, "{what}: {m:?}");
    assert_eq!(m.metadata.response_code, rcode, "{what}: {m:?}");
}

#[test]
fn a_notify_counts_only_from_the_primary_with_its_key() {
    let dir = Scratch::new("notify-in");
    let key = Key::random("xfr-key");
    // a primary that is down: every transfer it starts fails fast
    let primary = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
primary = "{primary}"
tsig = "{name}"
{tsig}{services}"#,
        name = key.name,
        tsig = key.toml(),
        services = services(&default_fallback()),
    );
    std::fs::write(dir.0.join("signpost.toml"), cfg).unwrap();
    let s = Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    let failed = |s: &Server| xfr_count(s, "in", "failed");
    eventually(
        Duration::from_secs(5),
        "the first transfer fails (the primary is down)",
        || failed(&s) == 1.0,
        || log_text(&s),
    );

    let cases: [(&str, &str, Message, ResponseCode); 4] = [
        (
            "signed, from another address",
            "127.0.0.2",
            notify_msg(ZONE_NAME, SERIAL + 1, Some(&key)),
            ResponseCode::Refused,
        ),
        (
            "unsigned, from the primary",
            "127.0.0.1",
            notify_msg(ZONE_NAME, SERIAL + 1, None),
            ResponseCode::NotAuth,
        ),
        (
            "another secret, from the primary",
            "127.0.0.1",
            notify_msg(ZONE_NAME, SERIAL + 1, Some(&key.wrong_secret())),
            ResponseCode::NotAuth,
        ),
        (
            "for a zone not served",
            "127.0.0.1",
            notify_msg("other.test.", 1, Some(&key)),
            ResponseCode::NotAuth,
        ),
    ];
    for (what, src, m, rcode) in &cases {
        assert_answer(&udp_from(src, s.dns, m), *rcode, what);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(failed(&s), 1.0, "a refused NOTIFY started a transfer");
    assert_eq!(xfr_count(&s, "notify_received", "accepted"), 0.0);

    // from the primary with the key: NOERROR, signed, a transfer at once
    let m = notify_msg(ZONE_NAME, SERIAL + 1, Some(&key));
    let signer = key.signer();
    let request_mac = m.signature().unwrap().data.mac.clone();
    let answer_bytes = {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.send_to(&m.to_vec().unwrap(), s.dns).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to the NOTIFY");
        buf[..n].to_vec()
    };
    let answer = Message::from_vec(&answer_bytes).unwrap();
    assert_answer(&answer, ResponseCode::NoError, "a good NOTIFY");
    assert!(answer.metadata.authoritative, "{answer:?}");
    signer
        .verify_message_byte(&answer_bytes, Some(&request_mac), true)
        .unwrap_or_else(|e| panic!("the answer's TSIG: {e}: {answer:?}"));
    eventually(
        Duration::from_secs(3),
        "the NOTIFY starts a transfer",
        || failed(&s) == 2.0,
        || format!("{}\n{}", metrics(&s), log_text(&s)),
    );
    assert_eq!(xfr_count(&s, "notify_received", "accepted"), 1.0);
    assert!(
        log_text(&s).contains(&format!(
            "zone example.test.: NOTIFY from its primary {primary}"
        )),
        "{}",
        log_text(&s)
    );

    // the same over TCP
    let answer = tcp_exchange(
        s.dns,
        &notify_msg(ZONE_NAME, SERIAL + 1, Some(&key))
            .to_vec()
            .unwrap(),
    );
    assert_answer(&answer, ResponseCode::NoError, "a NOTIFY over TCP");
    eventually(
        Duration::from_secs(3),
        "the NOTIFY over TCP starts a transfer",
        || failed(&s) == 3.0,
        || format!("{}\n{}", metrics(&s), log_text(&s)),
    );
}
