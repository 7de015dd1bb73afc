//! Zone transfers end to end (SPEC §10), with real DNS software on both
//! sides of signpost:
//!
//! - `secondaries`: NSD and Knot transfer from signpost with TSIG, serve
//!   its static names and fallbacks, follow a reload through NOTIFY; a
//!   wrong secret gets nothing.
//! - `primary`: signpost takes the zone from a hidden Knot primary (AXFR,
//!   IXFR on NOTIFY), rejects a zone that breaks the rules, serves its copy
//!   after a restart without the primary, and fails cleanly on a bad key.
//! - `chain`: Knot -> signpost -> NSD; a zone with no copy yet is not
//!   passed on.
//! - `inbound`: a scripted fake primary's broken transfers (out-of-zone
//!   data, no NS, a cut stream, a bad MAC) leave the previous copy serving;
//!   a NOTIFY during a transfer is not lost; a damaged copy on disk is
//!   transferred again.
//! - `outbound`: refusals and TSIG errors on the wire (hickory-proto and
//!   dig), AXFR and IXFR content and the TSIG chain over many messages.
//! - `notify`: NOTIFY out (signed, back-off, only for a new serial) and in
//!   (only from the primary, with the key).
//! - `dnssec`: signed transfers accepted by ldns-verify-zone and
//!   dnssec-verify (and tampering caught), also re-signed from a primary
//!   that signs with keys of its own; the served serial never goes back
//!   when signing settings change.
//! - `serial`: drains and health changes never move the serial.
//!
//! Every test runs on loopback; most use the TSIG key `xfr-key`, with a
//! fresh random secret each time. Daemons are started in the test's
//! scratch directory on a free port, stopped when the test ends (SIGTERM,
//! then SIGKILL) and the directory removed unless the test failed (then
//! its path is printed for the logs). Tests that need a tool that is not installed print
//! `SKIP: <why>` and pass; .ci/run installs them (Debian: nsd, knot,
//! ldnsutils, bind9-dnsutils for dig, bind9-utils for dnssec-keygen and
//! dnssec-verify).
//!
//! The zone's services: `www` (failover over us-east 192.0.2.1, then
//! eu-west 192.0.2.2; fallback 192.0.2.10 and 2001:db8::10, so a
//! secondary's answer differs from signpost's live one) and `nofb`
//! (no fallback: absent from transfers).

#[path = "../common/mod.rs"]
mod common;

/// Returns from the test, saying why, when a tool is missing.
macro_rules! require {
    ($($tool:expr),+ $(,)?) => {
        if let Some(why) = $crate::tools::missing(&[$($tool),+]) {
            eprintln!("{why}");
            return;
        }
    };
}

mod chain;
mod dnssec;
mod inbound;
mod notify;
mod outbound;
mod primary;
mod secondaries;
mod serial;
mod tools;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, RData, RecordType, TSigner};

/// The zone every test serves.
pub const ZONE_NAME: &str = "example.test.";
/// The live answer of `www` (us-east).
pub const LIVE: &str = "192.0.2.1";
/// `www`'s fallback addresses: what a transfer carries.
pub const FALLBACK_V4: &str = "192.0.2.10";
pub const FALLBACK_V6: &str = "2001:db8::10";
/// How many bulk TXT names the zone has: enough for several ~16 KB
/// transfer messages, so TSIG chaining across messages is exercised.
pub const BULK: usize = 300;

/// A scratch directory, removed when the test ends well; kept (and its
/// path printed) when it panics. Declare it first in a test so that it is
/// dropped last, after the daemons living in it.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        Scratch(scratch(&format!("xfr-{name}")))
    }

    /// A subdirectory, created.
    pub fn sub(&self, name: &str) -> PathBuf {
        let d = self.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scratch directory kept: {}", self.0.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// A TSIG key: its name, algorithm and base64 secret.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub algorithm: &'static str,
    pub secret: String,
}

impl Key {
    /// `name` with a fresh random 32-byte hmac-sha256 secret.
    pub fn random(name: &str) -> Key {
        Key::random_with(name, "hmac-sha256")
    }

    /// `name` with a fresh random 32-byte secret for `algorithm`.
    pub fn random_with(name: &str, algorithm: &'static str) -> Key {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut b).unwrap();
        Key {
            name: name.to_string(),
            algorithm,
            secret: data_encoding::BASE64.encode(&b),
        }
    }

    /// The same name and algorithm with another secret.
    pub fn wrong_secret(&self) -> Key {
        let mut k = Key::random_with(&self.name, self.algorithm);
        k.name = self.name.clone();
        k
    }

    /// signpost's `[tsig.NAME]` table.
    pub fn toml(&self) -> String {
        format!(
            "\n[tsig.\"{}\"]\nalgorithm = \"{}\"\nsecret = \"{}\"\n",
            self.name, self.algorithm, self.secret
        )
    }

    /// dig's `-y` argument.
    pub fn dig(&self) -> String {
        format!("{}:{}:{}", self.algorithm, self.name, self.secret)
    }

    /// A hickory signer for raw requests.
    pub fn signer(&self) -> TSigner {
        let alg = match self.algorithm {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            a => panic!("algorithm {a}"),
        };
        let secret = data_encoding::BASE64
            .decode(self.secret.as_bytes())
            .unwrap();
        TSigner::new(secret, alg, Name::from_ascii(&self.name).unwrap(), 300).unwrap()
    }
}

/// The zone file at `serial`, with `mail`'s address: apex SOA/NS/MX/TXT,
/// a CNAME into the `www` service, a delegation with glue, a wildcard, an
/// empty non-terminal, and [`BULK`] TXT names (about 40 KB).
pub fn zone(serial: u32, mail: &str) -> String {
    let mut z = format!(
        r#"$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. {serial} 3600 600 604800 60
        IN NS   ns1.example.test.
        IN MX   10 mail.example.test.
        IN TXT  "hello world"
ns1     IN A    127.0.0.1
mail    IN A    {mail}
app     IN CNAME www
sub     IN NS   ns.sub.example.test.
ns.sub  IN A    192.0.2.53
*.wild  IN A    192.0.2.80
leaf.mid.ent IN A 192.0.2.90
"#
    );
    for i in 0..BULK {
        z.push_str(&format!("t{i:03} IN TXT \"{i:03}{}\"\n", "x".repeat(100)));
    }
    z
}

/// The regions and services (see the crate doc); `fallback` is www's
/// fallback list as TOML.
pub fn services(fallback: &str) -> String {
    format!(
        r#"
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "{LIVE}" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
policy = "failover"
ttl = 20
fallback = {fallback}

[services."nofb.example.test."]
regions = ["us-east"]
ttl = 20
"#
    )
}

/// www's fallback list as configured by default.
pub fn default_fallback() -> String {
    format!("[\"{FALLBACK_V4}\", \"{FALLBACK_V6}\"]")
}

/// A configuration serving `example.test.` from its file with `transfer`
/// as the body of its `[zones."example.test.".transfer]` table (none when
/// empty), and `rest` appended (keys, regions, services, more zones).
pub fn config(listen: &str, transfer: &str, rest: &str) -> String {
    let transfer = if transfer.is_empty() {
        String::new()
    } else {
        format!("\n[zones.\"example.test.\".transfer]\n{transfer}\n")
    };
    format!(
        r#"
[server]
listen = ["{listen}"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"
{transfer}
{rest}"#
    )
}

/// Writes the zone (serial, mail) and `config` into `dir` and starts
/// signpost there.
pub fn serve(dir: &Path, serial: u32, config: &str) -> Server {
    std::fs::write(dir.join("example.test.zone"), zone(serial, "192.0.2.25")).unwrap();
    std::fs::write(dir.join("signpost.toml"), config).unwrap();
    Server::start_in(dir.to_path_buf(), &["serve", "--config", "signpost.toml"])
}

/// `POST /v1/reload`, expecting 200.
pub fn reload(s: &Server) {
    let (code, body) = http("POST", &format!("{}/v1/reload", s.admin_url()), None);
    assert_eq!(code, 200, "reload: {body}");
}

/// One question to any DNS server over UDP (retried; TCP when
/// truncated). Panics after three silent tries.
pub fn ask(addr: SocketAddr, name: &str, t: RecordType) -> Message {
    try_ask(addr, name, t).unwrap_or_else(|| panic!("{addr} did not answer {name} {t}"))
}

/// Like [`ask`], `None` when the server stays silent.
pub fn try_ask(addr: SocketAddr, name: &str, t: RecordType) -> Option<Message> {
    let bytes = query(name, t, None).to_vec().unwrap();
    for _ in 0..3 {
        if let Some(raw) = udp_raw(addr, &bytes, Duration::from_millis(700)) {
            let m = Message::from_vec(&raw).expect("a parsable answer");
            if m.metadata.truncation {
                return Some(tcp_exchange(addr, &bytes));
            }
            return Some(m);
        }
    }
    None
}

/// The SOA serial a server answers for the zone, if it answers one.
pub fn soa_serial(addr: SocketAddr) -> Option<u32> {
    let m = try_ask(addr, ZONE_NAME, RecordType::SOA)?;
    m.answers.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    })
}

/// A and AAAA addresses of an answer, as strings.
pub fn addrs(m: &Message) -> Vec<String> {
    addresses(m).iter().map(IpAddr::to_string).collect()
}

/// `name`'s A (or AAAA) answer at `addr` as strings; asserts NOERROR.
pub fn addrs_of(addr: SocketAddr, name: &str, t: RecordType) -> Vec<String> {
    let m = ask(addr, name, t);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{addr}: {name} {t}: {m:?}"
    );
    addrs(&m)
}

/// The rdata text of the answers of type `t`.
pub fn rdata_of(m: &Message, t: RecordType) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == t)
        .map(|r| r.data.to_string())
        .collect();
    v.sort();
    v
}

/// `/v1/status` → the zone's entry.
pub fn zone_status(s: &Server) -> serde_json::Value {
    let st = get_json(&format!("{}/v1/status", s.admin_url()));
    st["zones"]
        .as_array()
        .and_then(|z| z.iter().find(|z| z["name"] == ZONE_NAME).cloned())
        .unwrap_or_else(|| panic!("no zone {ZONE_NAME} in status: {st}"))
}

/// Prometheus text of /metrics.
pub fn metrics(s: &Server) -> String {
    let (code, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
    assert_eq!(code, 200, "{body}");
    body
}

/// The sum of samples named `name` carrying every `k="v"` of `labels`
/// (0 when there is none).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (head, value) = line.rsplit_once(' ')?;
            let (n, l) = head.split_at(head.find('{').unwrap_or(head.len()));
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

/// A transfer counter of signpost: `signpost_xfr_<dir>_total` for the
/// zone and `result`.
pub fn xfr_count(s: &Server, dir: &str, result: &str) -> f64 {
    metric(
        &metrics(s),
        &format!("signpost_xfr_{dir}_total"),
        &[("zone", ZONE_NAME), ("result", result)],
    )
}

/// The log, as one string.
pub fn log_text(s: &Server) -> String {
    s.log().join("\n")
}

/// Waits up to `limit` for `f`, panicking with `what` and `context()`.
pub fn eventually(
    limit: Duration,
    what: &str,
    f: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    if wait_until(limit, f).is_none() {
        panic!("{what}: not within {limit:?}\n{}", context());
    }
}
