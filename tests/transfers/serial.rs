//! The serial belongs to the zone's source (SPEC §10): a drain through
//! the admin API and a region going down and up by its health check move
//! signpost's live answers, but never the SOA serial, never the content
//! of a transfer, and never send a NOTIFY (a fake secondary records what
//! signpost tells it).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::common::*;
use crate::notify::FakeSecondary;
use crate::*;

const SERIAL: u32 = 2026112201;
/// eu-west's address: the answer while us-east is out.
const OTHER: &str = "192.0.2.2";

/// us-east (192.0.2.1) behind an HTTP check at `lb`; eu-west unchecked.
fn checked_services(lb: SocketAddr) -> String {
    format!(
        r#"
[checks.web]
type = "http"
port = {port}
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 1

[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
check = "web"
endpoints = [{{ address = "{LIVE}", probe = "{probe}" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "{OTHER}" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
policy = "failover"
ttl = 20
fallback = {fallback}
"#,
        port = lb.port(),
        probe = lb.ip(),
        fallback = default_fallback(),
    )
}

/// An unsigned AXFR's records, as sorted text.
fn axfr(s: &Server) -> Vec<String> {
    let mut q = Message::new(0x1234, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(
        Name::from_ascii(ZONE_NAME).unwrap(),
        RecordType::AXFR,
    ));
    let mut v: Vec<String> = tcp_transfer(None, s.dns, &q.to_vec().unwrap())
        .iter()
        .flat_map(|raw| {
            let m = Message::from_vec(raw).unwrap();
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
            m.answers
        })
        .map(|r| r.to_string())
        .collect();
    v.sort();
    v
}

fn www(s: &Server) -> Vec<String> {
    addrs_of(s.dns, "www.example.test.", RecordType::A)
}

#[test]
fn health_changes_and_drains_never_move_the_serial() {
    let dir = Scratch::new("serial");
    let secondary = FakeSecondary::start(None, 0);
    let lb = FakeLb::start("127.93.1.1:0".parse().unwrap());
    let transfer = format!(
        "allow = [\"127.0.0.0/8\"]\nnotify = [\"{}\"]",
        secondary.addr
    );
    let s = serve(
        &dir.0,
        SERIAL,
        &config("127.0.0.1:0", &transfer, &checked_services(lb.addr)),
    );
    let ctx = || log_text(&s);
    eventually(
        Duration::from_secs(10),
        "the NOTIFY at start",
        || secondary.serials() == [Some(SERIAL)],
        ctx,
    );
    eventually(
        Duration::from_secs(10),
        "us-east answers",
        || www(&s) == [LIVE],
        ctx,
    );
    let base = axfr(&s);
    assert!(
        base.iter()
            .any(|r| r.starts_with("www.example.test. 20 IN A 192.0.2.10")),
        "{base:#?}"
    );
    let unchanged = |when: &str| {
        assert_eq!(soa_serial(s.dns), Some(SERIAL), "{when}: SOA");
        assert_eq!(zone_status(&s)["serial"], SERIAL, "{when}: status");
        assert_eq!(axfr(&s), base, "{when}: the transfer changed");
    };

    // a drain, and its end
    let admin = s.admin_url();
    let (code, body) = http("POST", &format!("{admin}/v1/regions/us-east/drain"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(www(&s), [OTHER], "the drain moves the live answer");
    unchanged("drained");
    let (code, body) = http("DELETE", &format!("{admin}/v1/regions/us-east/drain"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(www(&s), [LIVE]);
    unchanged("undrained");

    // the region fails its health check, then recovers
    lb.set(LbMode::Fail);
    eventually(
        Duration::from_secs(10),
        "us-east goes down",
        || www(&s) == [OTHER],
        ctx,
    );
    unchanged("us-east down");
    lb.set(LbMode::Ok);
    eventually(
        Duration::from_secs(10),
        "us-east comes back",
        || www(&s) == [LIVE],
        ctx,
    );
    unchanged("us-east up again");

    // nobody was told of a new serial: there is none
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        secondary.serials(),
        [Some(SERIAL)],
        "NOTIFYs: {:?}",
        secondary.seen()
    );
    let notify_lines = s
        .log()
        .iter()
        .filter(|l| l.contains(", NOTIFY to "))
        .count();
    assert_eq!(notify_lines, 1, "{}", ctx());
    assert_eq!(xfr_count(&s, "notify_sent", "acknowledged"), 1.0);
}
