//! DNSSEC online signing end to end (SPEC §9): the real binary signs a
//! zone with BIND key files made at test time by `dnssec-keygen`, and
//! independent validators judge the answers: BIND's `delv` with a trust
//! anchor, and a validating Unbound in front of signpost. The wire tests
//! read the responses with hickory-proto and need no external tool (they
//! use the fixture keys in tests/data/dnssec).
//!
//! Tests that need a tool that is not installed print `SKIP: <why>` and
//! pass; .ci/run installs them (Debian: unbound, bind9-utils,
//! bind9-dnsutils).
//!
//! Client networks are loopback addresses, which never have a GeoIP
//! location (special-purpose range): the service `map` sends
//! 127.88.1.0/24 to eu-west and 127.88.2.0/24 to us-east, so `delv -b`
//! from either network gets its own region. Fake load balancers use
//! 127.88.N.0/24 with N >= 10, one N per test.

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

mod check;
mod delv;
mod observe;
mod resolver;
mod rollover;
mod tools;
mod twins;
mod wire;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use common::*;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, NSEC, RRSIG};
use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tools::KeyFile;

/// EDNS flag DO (RFC 3225).
pub const DO: u16 = 0x8000;
/// EDNS flag CO (RFC 9824), beside DO.
pub const CO: u16 = 0x4000;
/// The NXNAME meta type (RFC 9824).
pub const NXNAME: u16 = 128;

/// Source address of a client in the network the map sends to eu-west.
pub const CLIENT_EU: &str = "127.88.1.5";
/// Source address of a client in the network the map sends to us-east.
pub const CLIENT_US: &str = "127.88.2.5";
/// eu-west's addresses.
pub const EU_V4: &str = "192.0.2.2";
/// us-east's addresses.
pub const US_V4: &str = "192.0.2.1";

/// The test zone: static names, a CNAME into the `www` service, a
/// wildcard, an empty non-terminal, delegations with and without DS,
/// RRsets whose canonical order differs from the file's (mixed-case MX
/// targets, TXT strings of different lengths), and TXT sets that
/// overflow a 512-byte answer (`medium` only once signed, `big` always).
pub fn zone() -> String {
    let mut z = String::from(
        r#"$ORIGIN example.test.
$TTL 300
@       IN SOA  ns1.example.test. hostmaster.example.test. 2026112201 3600 600 604800 60
        IN NS   ns1.example.test.
        IN MX   10 mail.example.test.
        IN TXT  "hello world"
ns1     IN A    127.0.0.1
mail    IN A    192.0.2.25
        IN AAAA 2001:db8::25
app     IN CNAME www
wc      IN CNAME foo.wild.example.test.
dangle  IN CNAME nothere
*.wild  IN A    192.0.2.80
leaf.mid.ent IN A 192.0.2.90
mx2     IN MX   10 Bmail.example.test.
        IN MX   20 amail.example.test.
txt2    IN TXT  "b"
        IN TXT  "aa"
        IN TXT  "c"
insecure IN NS  ns.insecure.example.test.
ns.insecure IN A 192.0.2.53
secure  IN NS   ns.secure.example.test.
        IN DS   12345 13 2 15F962D1DA3296F64DC90D360E6AA1709CD96D84BC00986D16510315C31D53FB
ns.secure IN A  192.0.2.54
"#,
    );
    // ~460 bytes unsigned with a 512-byte buffer: fits; its RRSIG does not
    for i in 0..4 {
        z.push_str(&format!("medium IN TXT \"{i}{}\"\n", "m".repeat(89)));
    }
    // ~4 kB: never fits in 512 bytes
    for i in 0..40 {
        z.push_str(&format!("big IN TXT \"{i:03}{}\"\n", "x".repeat(97)));
    }
    z
}

/// `[regions]` and `[services]`: www (geo, mapped by client network),
/// v4only (a region without IPv6), many (3 of 30 addresses per answer:
/// more sets than are signed in advance, so signed on first use).
pub fn services() -> String {
    let many: Vec<String> = (10..40)
        .map(|i| format!("{{ address = \"192.0.2.{i}\" }}"))
        .collect();
    format!(
        r#"
[regions.us-east]
location = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "2001:db8:1::1" }}]

[regions.eu-west]
location = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}, {{ address = "2001:db8:2::1" }}]

[regions.legacy]
location = {{ lat = 50.11, lon = 8.68 }}
endpoints = [{{ address = "192.0.2.3" }}]

[services."www.example.test."]
regions = ["us-east", "eu-west"]
policy = "geo"
ttl = 5
map = {{ "127.88.1.0/24" = ["eu-west"], "127.88.2.0/24" = ["us-east"] }}

[services."v4only.example.test."]
regions = ["legacy"]
ttl = 5

[regions.many]
location = {{ lat = 1.0, lon = 1.0 }}
endpoints = [{}]

[services."many.example.test."]
regions = ["many"]
policy = "weighted"
answers = 3
ttl = 5
"#,
        many.join(", ")
    )
}

/// A signing configuration for `example.test.` with `keys` (paths as the
/// config writes them) and `extra` appended (regions and services).
pub fn config(keys: &[String], extra: &str) -> String {
    let keys = keys
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"

[zones."example.test.".dnssec]
keys = [{keys}]
{extra}"#
    )
}

/// Writes the zone and a config signing with `keys` into `dir` and starts
/// signpost there.
pub fn serve(dir: &Path, keys: &[&KeyFile]) -> Server {
    std::fs::write(dir.join("example.test.zone"), zone()).unwrap();
    let paths: Vec<String> = keys.iter().map(|k| k.config_path()).collect();
    std::fs::write(dir.join("signpost.toml"), config(&paths, &services())).unwrap();
    Server::start_in(dir.to_path_buf(), &["serve", "--config", "signpost.toml"])
}

/// A query with EDNS (payload 1232) whose flags field is `flags` (DO,
/// CO), recursion not desired.
pub fn q(name: &str, t: RecordType, flags: u16) -> Message {
    let mut m = query(name, t, None);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    *e.flags_mut() = flags.into();
    m.set_edns(e);
    m
}

/// Like [`q`] with UDP payload size `payload`.
pub fn q_payload(name: &str, t: RecordType, flags: u16, payload: u16) -> Message {
    let mut m = q(name, t, flags);
    m.edns.as_mut().unwrap().set_max_payload(payload);
    m
}

/// Every record of every section.
pub fn all(m: &Message) -> impl Iterator<Item = &Record> {
    m.answers
        .iter()
        .chain(m.authorities.iter())
        .chain(m.additionals.iter())
}

/// The RRSIG data of a record, if it is one.
pub fn as_rrsig(r: &Record) -> Option<&RRSIG> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    }
}

/// The NSEC data of a record, if it is one.
pub fn as_nsec(r: &Record) -> Option<&NSEC> {
    match &r.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n),
        _ => None,
    }
}

/// RRSIGs in `records` covering type `t`.
pub fn sigs_over(records: &[Record], t: RecordType) -> Vec<&RRSIG> {
    records
        .iter()
        .filter_map(as_rrsig)
        .filter(|s| s.input().type_covered == t)
        .collect()
}

/// Key tags of the RRSIGs in the answer section covering `t`.
pub fn tags(m: &Message, t: RecordType) -> BTreeSet<u16> {
    sigs_over(&m.answers, t)
        .iter()
        .map(|s| s.input().key_tag)
        .collect()
}

/// Key tags of the DNSKEY records in the answer section.
pub fn dnskey_tags(m: &Message) -> BTreeSet<u16> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.calculate_key_tag().unwrap()),
            _ => None,
        })
        .collect()
}

/// The DNSKEY records of an answer.
pub fn dnskeys(m: &Message) -> Vec<DNSKEY> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
            _ => None,
        })
        .collect()
}

/// True when any section holds an RRSIG or NSEC record.
pub fn has_dnssec(m: &Message) -> bool {
    all(m).any(|r| {
        matches!(
            r.record_type(),
            RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
        )
    })
}

/// Record types (as numbers) in an NSEC's bitmap.
pub fn bitmap(n: &NSEC) -> BTreeSet<u16> {
    n.type_bit_maps().map(u16::from).collect()
}

/// Type numbers.
pub fn types(t: &[RecordType]) -> BTreeSet<u16> {
    t.iter().map(|&t| u16::from(t)).collect()
}

/// The name `\000.<name>`: the immediate successor of `name`.
pub fn successor(name: &str) -> Name {
    let n = Name::from_ascii(name).unwrap();
    Name::from_labels(std::iter::once(&[0u8][..]).chain(n.iter())).unwrap()
}

/// The OPT flags of a response (0 without OPT).
pub fn opt_flags(m: &Message) -> u16 {
    m.edns.as_ref().map_or(0, |e| u16::from(*e.flags()))
}

/// A and AAAA addresses of the answer, as strings.
pub fn addrs(m: &Message) -> Vec<String> {
    addresses(m).iter().map(IpAddr::to_string).collect()
}

/// Checks every RRSIG in `m` over the RRset it covers (same section,
/// owner and type) against the DNSKEY with its tag, in process. The
/// canonical form is hickory's, as signpost's is, so this is no
/// independent validation (delv and Unbound are); it catches a signature
/// made with the wrong key or over the wrong records cheaply and names
/// the RRset. Returns how many were checked.
pub fn verify_sigs(m: &Message, keys: &[DNSKEY]) -> usize {
    use hickory_proto::dnssec::Verifier;
    use hickory_proto::rr::DNSClass;
    let mut n = 0;
    for section in [&m.answers, &m.authorities, &m.additionals] {
        for r in section.iter() {
            let Some(sig) = as_rrsig(r) else { continue };
            let input = sig.input();
            let key = keys
                .iter()
                .find(|k| k.calculate_key_tag().unwrap() == input.key_tag)
                .unwrap_or_else(|| {
                    panic!("RRSIG {r} by key {} not in the DNSKEY set", input.key_tag)
                });
            let covered: Vec<&Record> = section
                .iter()
                .filter(|x| x.name == r.name && x.record_type() == input.type_covered)
                .collect();
            assert!(!covered.is_empty(), "RRSIG {r} covers nothing here");
            key.verify_rrsig(&r.name, DNSClass::IN, sig, covered.into_iter())
                .unwrap_or_else(|e| panic!("RRSIG {r} does not verify: {e}\n{m:?}"));
            n += 1;
        }
    }
    n
}
