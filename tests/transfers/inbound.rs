//! The transfer client against a primary that misbehaves: a fake primary
//! (a TCP listener answering every AXFR/IXFR with a scripted, TSIG-signed
//! zone) serves a good zone, then zones that break the rules (a record out
//! of the zone, no NS at the apex), a stream cut short, and an answer with
//! a bad MAC. Each is refused as a whole and counted, while the previous
//! copy keeps serving, on the wire and on disk; a good zone afterwards is
//! taken ("IXFR, full": the fake answers IXFR with the whole zone).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{Name, Record, RecordType, TSigResponseContext};
use hickory_proto::serialize::txt::Parser;

use crate::common::*;
use crate::notify::{notify_msg, unix_now};
use crate::*;

/// What the fake primary answers.
#[derive(Debug, Clone)]
enum Plan {
    /// The zone, whole: SOA, records, SOA.
    Zone(String),
    /// The SOA and the records, no closing SOA, then the connection closes.
    EndsEarly(String),
    /// The zone, with one byte of its MAC flipped.
    BadMac(String),
}

struct FakePrimary {
    addr: SocketAddr,
    plan: Arc<Mutex<Plan>>,
    /// Milliseconds to wait between taking a request's plan and answering.
    delay_ms: Arc<AtomicU64>,
    /// Transfer requests taken so far (counted before the delay).
    taken: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// The records of zone text for example.test., the SOA first.
fn records(text: &str) -> Vec<Record> {
    let origin = Name::from_ascii(ZONE_NAME).unwrap();
    let (_, sets) = Parser::new(text, None, Some(origin))
        .parse()
        .expect("a parsable zone");
    let mut v: Vec<Record> = sets
        .into_values()
        .flat_map(|s| s.records_without_rrsigs().cloned().collect::<Vec<_>>())
        .collect();
    v.sort_by_key(|r| r.record_type() != RecordType::SOA);
    v
}

/// The answer to `request` under `plan`, signed when the request was.
fn answer(request: &[u8], plan: &Plan, key: &Key) -> Vec<u8> {
    let req = Message::from_vec(request).unwrap();
    let (text, close_soa) = match plan {
        Plan::Zone(t) | Plan::BadMac(t) => (t, true),
        Plan::EndsEarly(t) => (t, false),
    };
    let recs = records(text);
    let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = true;
    m.add_query(req.queries[0].clone());
    for r in &recs {
        m.add_answer(r.clone());
    }
    if close_soa {
        m.add_answer(recs[0].clone());
    }
    let unsigned = m.to_vec().unwrap();
    let Some(sig) = req.signature() else {
        return unsigned;
    };
    let ctx = TSigResponseContext::new(
        req.metadata.id,
        unix_now(),
        key.signer(),
        sig.data.mac.clone(),
        None,
    );
    let mut tsig = ctx.sign(&unsigned).unwrap();
    if matches!(plan, Plan::BadMac(_)) {
        tsig.data.mac[0] ^= 0xff;
    }
    m.signature = Some(tsig);
    m.to_vec().unwrap()
}

impl FakePrimary {
    fn start(key: &Key, plan: Plan) -> FakePrimary {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let plan = Arc::new(Mutex::new(plan));
        let stop = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let taken = Arc::new(AtomicU64::new(0));
        let (plan2, stop2, key) = (plan.clone(), stop.clone(), key.clone());
        let (delay2, taken2) = (delay_ms.clone(), taken.clone());
        let handle = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut req).is_err() {
                    continue;
                }
                let plan = plan2.lock().unwrap().clone();
                let out = answer(&req, &plan, &key);
                taken2.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(delay2.load(Ordering::SeqCst)));
                let mut framed = (out.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&out);
                let _ = s.write_all(&framed);
                // the client closes when it has it all; a cut stream
                // closes here
                if !matches!(plan, Plan::EndsEarly(_)) {
                    let _ = s.read(&mut len);
                }
            }
        });
        FakePrimary {
            addr,
            plan,
            delay_ms,
            taken,
            stop,
            handle: Some(handle),
        }
    }

    fn set(&self, plan: Plan) {
        *self.plan.lock().unwrap() = plan;
    }

    /// Transfer requests it has taken (and answers, or will).
    fn taken(&self) -> u64 {
        self.taken.load(Ordering::SeqCst)
    }
}

impl Drop for FakePrimary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A small zone at `serial` with `mail`'s address and `extra` lines.
fn fake_zone(serial: u32, mail: &str, extra: &str) -> String {
    format!(
        "@ 300 IN SOA ns1.example.test. hostmaster.example.test. {serial} 3600 3600 604800 60\n\
         @ 300 IN NS ns1.example.test.\n\
         ns1 300 IN A 127.0.0.1\n\
         mail 300 IN A {mail}\n\
         {extra}"
    )
}

/// signpost taking example.test from `fake` with `key`, once it serves
/// the fake's first zone (serial 1).
fn start(dir: &Scratch, fake: &FakePrimary, key: &Key) -> Server {
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
        primary = fake.addr,
        name = key.name,
        tsig = key.toml(),
        services = services(&default_fallback()),
    );
    std::fs::write(dir.0.join("signpost.toml"), cfg).unwrap();
    let s = Server::start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"]);
    eventually(
        Duration::from_secs(10),
        "the first transfer is served",
        || soa_serial(s.dns) == Some(1),
        || format!("{}\n{}", zone_status(&s), log_text(&s)),
    );
    s
}

/// A signed NOTIFY from the primary's address; asserts NOERROR.
fn notify(s: &Server, key: &Key) {
    let m = notify_msg(ZONE_NAME, 99, Some(key));
    let a = udp_exchange(s.dns, &m.to_vec().unwrap()).expect("an answer to the NOTIFY");
    assert_eq!(
        a.metadata.response_code,
        hickory_proto::op::ResponseCode::NoError
    );
}

#[test]
fn a_broken_transfer_keeps_the_previous_copy() {
    let dir = Scratch::new("inbound");
    let key = Key::random("xfr-key");
    let fake = FakePrimary::start(&key, Plan::Zone(fake_zone(1, "192.0.2.25", "")));
    let s = start(&dir, &fake, &key);
    let ctx = || format!("{}\n{}", zone_status(&s), log_text(&s));
    assert_eq!(
        addrs_of(s.dns, "mail.example.test.", RecordType::A),
        ["192.0.2.25"]
    );
    let copy = dir.0.join("example.test.xfr");
    let kept = std::fs::read(&copy).expect("the copy beside the config");

    let cases = [
        (
            "a record out of the zone",
            Plan::Zone(fake_zone(
                2,
                "192.0.2.26",
                "other.test. 300 IN A 192.0.2.99\n",
            )),
            "rejected",
        ),
        (
            "an A record at a service name",
            Plan::Zone(fake_zone(3, "192.0.2.26", "www 300 IN A 192.0.2.99\n")),
            "rejected",
        ),
        (
            "no NS at the apex",
            Plan::Zone(
                fake_zone(4, "192.0.2.26", "").replace("@ 300 IN NS ns1.example.test.\n", ""),
            ),
            "rejected",
        ),
        (
            "a stream cut short",
            Plan::EndsEarly(fake_zone(5, "192.0.2.26", "")),
            "failed",
        ),
        (
            "a bad MAC",
            Plan::BadMac(fake_zone(6, "192.0.2.26", "")),
            "failed",
        ),
    ];
    for (what, plan, result) in cases {
        let before = xfr_count(&s, "in", result);
        fake.set(plan);
        notify(&s, &key);
        eventually(
            Duration::from_secs(5),
            &format!("{what}: counted {result}"),
            || xfr_count(&s, "in", result) == before + 1.0,
            ctx,
        );
        let t = zone_status(&s)["transfer"].clone();
        let error = t["error"].as_str().unwrap_or_default().to_string();
        assert!(!error.is_empty(), "{what}: {t}");
        println!("{what}: {error}");
        assert_eq!(
            error.starts_with("rejected"),
            result == "rejected",
            "{what}: {t}"
        );
        assert_eq!(soa_serial(s.dns), Some(1), "{what}: {}", ctx());
        assert_eq!(
            addrs_of(s.dns, "mail.example.test.", RecordType::A),
            ["192.0.2.25"],
            "{what}"
        );
        assert_eq!(addrs_of(s.dns, "www.example.test.", RecordType::A), [LIVE]);
        let other = ask(s.dns, "other.test.", RecordType::A);
        assert!(addrs(&other).is_empty(), "{what}: {other:?}");
        assert_eq!(t["serial"], 1, "{what}: {t}");
        assert_eq!(
            std::fs::read(&copy).unwrap(),
            kept,
            "{what}: the copy changed"
        );
    }

    // a good zone again
    fake.set(Plan::Zone(fake_zone(7, "192.0.2.27", "")));
    notify(&s, &key);
    eventually(
        Duration::from_secs(5),
        "the good zone is served",
        || soa_serial(s.dns) == Some(7),
        ctx,
    );
    assert_eq!(
        addrs_of(s.dns, "mail.example.test.", RecordType::A),
        ["192.0.2.27"]
    );
    let t = zone_status(&s)["transfer"].clone();
    assert!(t["error"].is_null(), "{t}");
    assert_eq!(t["last_result"], "IXFR, full", "{t}");
    assert_ne!(std::fs::read(&copy).unwrap(), kept);
}

#[test]
fn a_notify_during_a_transfer_is_not_lost() {
    let dir = Scratch::new("inbound-busy");
    let key = Key::random("xfr-key");
    let fake = FakePrimary::start(&key, Plan::Zone(fake_zone(1, "192.0.2.25", "")));
    let s = start(&dir, &fake, &key);
    let ctx = || format!("{}\n{}", zone_status(&s), log_text(&s));

    // serial 2 goes out slowly; serial 3 is made (and NOTIFYed) while
    // signpost is still receiving 2. The SOA refresh is an hour: only
    // that second NOTIFY can bring 3 within seconds.
    fake.delay_ms.store(1500, Ordering::SeqCst);
    let before = fake.taken();
    fake.set(Plan::Zone(fake_zone(2, "192.0.2.26", "")));
    notify(&s, &key);
    eventually(
        Duration::from_secs(5),
        "signpost asks for serial 2",
        || fake.taken() > before,
        ctx,
    );
    fake.set(Plan::Zone(fake_zone(3, "192.0.2.27", "")));
    fake.delay_ms.store(0, Ordering::SeqCst);
    notify(&s, &key);
    eventually(
        Duration::from_secs(10),
        "serial 3, NOTIFYed during the transfer of 2, is served",
        || soa_serial(s.dns) == Some(3),
        || format!("serving {:?}\n{}", soa_serial(s.dns), ctx()),
    );
    assert_eq!(
        addrs_of(s.dns, "mail.example.test.", RecordType::A),
        ["192.0.2.27"]
    );
}

#[test]
fn a_damaged_copy_on_disk_is_transferred_again() {
    let dir = Scratch::new("inbound-damaged");
    let key = Key::random("xfr-key");
    let fake = FakePrimary::start(&key, Plan::Zone(fake_zone(1, "192.0.2.25", "")));
    let s = start(&dir, &fake, &key);
    assert!(s.stop().success());
    // the copy is a cache of what the primary serves: cut it short
    let copy = dir.0.join("example.test.xfr");
    let bytes = std::fs::read(&copy).unwrap();
    std::fs::write(&copy, &bytes[..bytes.len() / 2]).unwrap();

    let s = Server::try_start_in(dir.0.clone(), &["serve", "--config", "signpost.toml"])
        .unwrap_or_else(|(log, status)| {
            panic!(
                "with a damaged copy and its primary up, signpost must start and transfer \
                 the zone again; it exited ({status:?}):\n{}",
                log.join("\n")
            )
        });
    eventually(
        Duration::from_secs(10),
        "the zone is transferred again",
        || soa_serial(s.dns) == Some(1),
        || format!("{}\n{}", zone_status(&s), log_text(&s)),
    );
    assert_eq!(
        addrs_of(s.dns, "mail.example.test.", RecordType::A),
        ["192.0.2.25"]
    );
}
