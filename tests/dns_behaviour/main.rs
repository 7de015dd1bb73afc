//! Black-box DNS behaviour of signpost (SPEC §4.6 ECS scope, §7 DNS
//! behaviour): the real binary on 127.0.0.1:0, real UDP and TCP, queries
//! built byte by byte so that every header bit, the OPT record and the ECS
//! option can be checked exactly.

#[path = "../common/mod.rs"]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

// ---------------------------------------------------------------------------
// The served data
// ---------------------------------------------------------------------------

/// The main test zone. The SOA record's TTL (300) is larger than its
/// minimum (60): negative answers carry TTL 60.
fn zone() -> String {
    let mut z = String::from(
        r#"$ORIGIN example.test.
$TTL 300
@       300 IN SOA  ns1.example.test. hostmaster.example.test. 2026112201 3600 600 604800 60
        IN NS   ns1.example.test.
        IN MX   10 mail.example.test.
        IN TXT  "hello world"
        IN CAA  0 issue "letsencrypt.org"
ns1     IN A    192.0.2.53
mail    IN A    192.0.2.25
app     IN CNAME www
dangling IN CNAME nowhere
_sip._tcp IN SRV 10 5 5060 sip.example.test.
sip     IN A    192.0.2.50
*.static IN A   192.0.2.80
leaf.mid.ent IN A 192.0.2.90
sub     IN NS   ns.sub.example.test.
ns.sub  IN A    192.0.2.54
"#,
    );
    // ~4.5 kB of TXT records at one name: too big for any UDP answer.
    for i in 0..40 {
        z.push_str(&format!("big IN TXT \"{i:03}{}\"\n", "x".repeat(97)));
    }
    // One TXT record that makes a 504-byte response: it fits in 512 bytes
    // without an OPT record, but not with one.
    z.push_str(&format!(
        "edge IN TXT \"{}\" \"{}\"\n",
        "a".repeat(255),
        "b".repeat(200)
    ));
    z
}

/// A second zone whose SOA TTL (30) is smaller than its minimum (600).
const OTHER_ZONE: &str = r#"$ORIGIN other.test.
$TTL 30
@       IN SOA  ns1.other.test. hostmaster.other.test. 7 3600 600 604800 600
        IN NS   ns1.other.test.
ns1     IN A    192.0.2.153
"#;

/// The standard configuration; `server_extra` goes into `[server]`.
fn config(server_extra: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
{server_extra}

[geoip]
database = "{GEOIP}"

[zones."example.test."]
file = "example.test.zone"

[zones."other.test."]
file = "other.test.zone"

[regions.us-east]
location  = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.1" }}, {{ address = "2001:db8:1::1" }}]

[regions.eu-west]
location  = {{ lat = 53.35, lon = -6.26 }}
endpoints = [{{ address = "192.0.2.2" }}, {{ address = "2001:db8:2::1" }}]

[regions.ap-south]
location  = {{ lat = 19.08, lon = 72.88 }}
endpoints = [{{ address = "192.0.2.3" }}, {{ address = "2001:db8:3::1" }}]

[regions.eu-v4]
location  = {{ lat = 50.11, lon = 8.68 }}
endpoints = [{{ address = "192.0.2.4" }}]

[regions.multi]
location  = {{ lat = 39.04, lon = -77.49 }}
endpoints = [{{ address = "192.0.2.10" }}, {{ address = "192.0.2.11" }}]

# list order deliberately not by distance from anywhere in particular
[services."www.example.test."]
regions = ["ap-south", "us-east", "eu-west"]
policy  = "geo"
ttl     = 30

[services."mapped.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy  = "geo"
map     = {{ "193.0.6.0/24" = ["ap-south"] }}

[services."weighted.example.test."]
regions = ["us-east", "eu-west"]
policy  = "weighted"

[services."failover.example.test."]
regions = ["eu-west", "us-east"]
policy  = "failover"

[services."v4only.example.test."]
regions = ["eu-v4"]
policy  = "geo"

[services."partial.example.test."]
regions = ["eu-v4", "us-east"]
policy  = "geo"

[services."two.example.test."]
regions = ["multi"]
policy  = "geo"
answers = 2

[services."spill.example.test."]
regions = ["eu-west", "us-east"]
policy  = "failover"
answers = 2

[services."mixed.example.test."]
regions = ["us-east", "eu-west", "ap-south"]
policy  = "failover"
answers = 6
"#
    )
}

fn start_with(name: &str, server_extra: &str) -> Server {
    let z = zone();
    Server::start(
        name,
        &config(server_extra),
        &[
            ("example.test.zone", z.as_str()),
            ("other.test.zone", OTHER_ZONE),
        ],
    )
}

fn start(name: &str) -> Server {
    start_with(name, "")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| ip(s)).collect()
}

// ---------------------------------------------------------------------------
// Raw queries
// ---------------------------------------------------------------------------

mod t {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
    pub const CAA: u16 = 257;
}

const RD: u16 = 0x0100;
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const RA: u16 = 0x0080;

static NEXT_ID: AtomicU16 = AtomicU16::new(0x1234);

fn next_id() -> u16 {
    NEXT_ID.fetch_add(0x0101, Ordering::SeqCst)
}

/// A name in wire format, case preserved.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// An OPT record as it appears in the additional section.
#[derive(Clone, Debug)]
struct OptSpec {
    payload: u16,
    version: u8,
    options: Vec<(u16, Vec<u8>)>,
}

fn opt_rr(o: &OptSpec) -> Vec<u8> {
    let mut rdata = Vec::new();
    for (code, data) in &o.options {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let mut rr = vec![0];
    rr.extend_from_slice(&t::OPT.to_be_bytes());
    rr.extend_from_slice(&o.payload.to_be_bytes());
    rr.extend_from_slice(&[0, o.version, 0, 0]);
    rr.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    rr.extend_from_slice(&rdata);
    rr
}

/// ECS option data (RFC 7871 §6), exactly as given.
fn ecs_data(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut d = family.to_be_bytes().to_vec();
    d.push(source);
    d.push(scope);
    d.extend_from_slice(addr);
    d
}

/// A well-formed ECS option for "a.b.c.d/n" or "x::/n".
fn ecs_for(subnet: &str) -> Vec<u8> {
    let (a, p) = subnet.split_once('/').unwrap();
    let prefix: u8 = p.parse().unwrap();
    let (family, bytes) = match ip(a) {
        IpAddr::V4(v) => (1u16, v.octets().to_vec()),
        IpAddr::V6(v) => (2u16, v.octets().to_vec()),
    };
    let n = (prefix as usize).div_ceil(8);
    let mut addr = bytes[..n].to_vec();
    if !prefix.is_multiple_of(8) {
        let last = addr.len() - 1;
        addr[last] &= 0xffu8 << (8 - prefix % 8);
    }
    ecs_data(family, prefix, 0, &addr)
}

/// A query, built byte by byte.
#[derive(Clone, Debug)]
struct Q {
    id: u16,
    flags: u16,
    name: String,
    qtype: u16,
    qclass: u16,
    edns: Option<OptSpec>,
}

impl Q {
    fn new(name: &str, qtype: u16) -> Q {
        Q {
            id: next_id(),
            flags: RD,
            name: name.to_string(),
            qtype,
            qclass: 1,
            edns: None,
        }
    }

    fn edns(mut self, payload: u16) -> Q {
        self.edns = Some(OptSpec {
            payload,
            version: 0,
            options: Vec::new(),
        });
        self
    }

    /// Adds an ECS option (and EDNS with payload 1232 if there is none).
    fn ecs_bytes(mut self, data: Vec<u8>) -> Q {
        if self.edns.is_none() {
            self = self.edns(1232);
        }
        self.edns.as_mut().unwrap().options.push((8, data));
        self
    }

    fn ecs(self, subnet: &str) -> Q {
        self.ecs_bytes(ecs_for(subnet))
    }

    fn flags(mut self, flags: u16) -> Q {
        self.flags = flags;
        self
    }

    fn question(&self) -> Vec<u8> {
        let mut q = wire_name(&self.name);
        q.extend_from_slice(&self.qtype.to_be_bytes());
        q.extend_from_slice(&self.qclass.to_be_bytes());
        q
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.id.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&u16::from(self.edns.is_some()).to_be_bytes());
        b.extend_from_slice(&self.question());
        if let Some(o) = &self.edns {
            b.extend_from_slice(&opt_rr(o));
        }
        b
    }
}

// ---------------------------------------------------------------------------
// Raw responses
// ---------------------------------------------------------------------------

/// The OPT record of a response.
#[derive(Debug, Clone)]
struct RawOpt {
    payload: u16,
    ext_rcode: u8,
    version: u8,
    options: Vec<(u16, Vec<u8>)>,
}

/// An ECS option as echoed: family, source prefix, scope prefix, address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawEcs {
    family: u16,
    source: u8,
    scope: u8,
    addr: Vec<u8>,
}

/// A response, decoded without hickory: header, raw question, OPT.
#[derive(Debug, Clone)]
struct Raw {
    bytes: Vec<u8>,
    id: u16,
    flags: u16,
    qd: u16,
    an: u16,
    ns: u16,
    ar: u16,
    question: Vec<u8>,
    opt: Option<RawOpt>,
    /// How many OPT records there were.
    opt_count: usize,
}

impl Raw {
    fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn ecs(&self) -> Option<RawEcs> {
        let o = self.opt.as_ref()?;
        let (_, d) = o.options.iter().find(|(c, _)| *c == 8)?;
        assert!(d.len() >= 4, "short ECS option in a response: {d:?}");
        Some(RawEcs {
            family: u16::from_be_bytes([d[0], d[1]]),
            source: d[2],
            scope: d[3],
            addr: d[4..].to_vec(),
        })
    }
}

fn be16(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let l = *b.get(i)? as usize;
        match l & 0xc0 {
            0 if l == 0 => return Some(i + 1),
            0 => i += 1 + l,
            0xc0 => return Some(i + 2),
            _ => return None,
        }
    }
}

/// Decodes a response; panics (with the bytes) when it is malformed.
fn raw(bytes: &[u8]) -> Raw {
    try_raw(bytes).unwrap_or_else(|| panic!("malformed response: {bytes:02x?}"))
}

fn try_raw(b: &[u8]) -> Option<Raw> {
    if b.len() < 12 {
        return None;
    }
    let (qd, an, ns, ar) = (be16(b, 4)?, be16(b, 6)?, be16(b, 8)?, be16(b, 10)?);
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i)? + 4;
    }
    if i > b.len() {
        return None;
    }
    let question = b[12..i].to_vec();
    let mut opt = None;
    let mut opt_count = 0;
    for n in 0..(an as usize + ns as usize + ar as usize) {
        let start = i;
        let j = skip_name(b, i)?;
        let rtype = be16(b, j)?;
        let rdlen = be16(b, j + 8)? as usize;
        let end = j + 10 + rdlen;
        if end > b.len() {
            return None;
        }
        if rtype == t::OPT {
            // only in the additional section, owned by the root
            if n < an as usize + ns as usize || j != start + 1 || b[start] != 0 {
                return None;
            }
            opt_count += 1;
            let mut options = Vec::new();
            let mut k = j + 10;
            while k < end {
                let code = be16(b, k)?;
                let len = be16(b, k + 2)? as usize;
                if k + 4 + len > end {
                    return None;
                }
                options.push((code, b[k + 4..k + 4 + len].to_vec()));
                k += 4 + len;
            }
            opt = Some(RawOpt {
                payload: be16(b, j + 2)?,
                ext_rcode: b[j + 4],
                version: b[j + 5],
                options,
            });
        }
        i = end;
    }
    if i != b.len() {
        return None;
    }
    Some(Raw {
        bytes: b.to_vec(),
        id: be16(b, 0)?,
        flags: be16(b, 2)?,
        qd,
        an,
        ns,
        ar,
        question,
        opt,
        opt_count,
    })
}

/// One exchange: the raw view and hickory's view of the reply.
struct Reply {
    raw: Raw,
    msg: Message,
}

impl Reply {
    fn from_bytes(b: &[u8]) -> Reply {
        let raw = raw(b);
        let msg = Message::from_vec(b)
            .unwrap_or_else(|e| panic!("hickory cannot parse the reply ({e}): {b:02x?}"));
        Reply { raw, msg }
    }

    fn rcode(&self) -> ResponseCode {
        self.msg.metadata.response_code
    }

    fn addrs(&self) -> Vec<IpAddr> {
        addresses(&self.msg)
    }

    fn answer_types(&self) -> Vec<RecordType> {
        self.msg.answers.iter().map(|r| r.record_type()).collect()
    }

    fn ecs(&self) -> Option<RawEcs> {
        self.raw.ecs()
    }

    /// The SOA in the authority section: (owner, TTL).
    fn soa(&self) -> (Name, u32) {
        let soas: Vec<_> = self
            .msg
            .authorities
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .collect();
        assert_eq!(soas.len(), 1, "one SOA in authority: {:?}", self.msg);
        (soas[0].name.clone(), soas[0].ttl)
    }
}

/// Checks the things every reply to `q` must satisfy.
fn check_common(q: &Q, r: &Reply) {
    assert_eq!(r.raw.id, q.id, "ID echoed");
    assert!(r.raw.has(QR), "QR set");
    assert!(
        !r.raw.has(RA),
        "RA must not be set by an authoritative server"
    );
    assert_eq!(r.raw.flags & RD, q.flags & RD, "RD copied from the query");
    assert_eq!(
        (r.raw.flags >> 11) & 0xf,
        (q.flags >> 11) & 0xf,
        "opcode copied"
    );
    assert_eq!(r.raw.qd, 1, "the question is echoed");
    assert_eq!(
        r.raw.question,
        q.question(),
        "the question is echoed byte for byte"
    );
    assert!(r.raw.opt_count <= 1, "at most one OPT record");
    if q.edns.is_some() {
        assert!(
            r.raw.opt.is_some(),
            "a query with EDNS gets an OPT record back: {:?}",
            r.msg
        );
        assert_eq!(
            r.raw.opt.as_ref().unwrap().payload,
            1232,
            "server UDP payload 1232 advertised"
        );
    } else {
        assert!(
            r.raw.opt.is_none(),
            "no OPT in the reply to a query without EDNS"
        );
    }
}

fn udp_bytes(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    udp_raw(addr, bytes, Duration::from_secs(3))
        .unwrap_or_else(|| panic!("no UDP reply to {bytes:02x?}"))
}

/// A UDP exchange with the common checks.
fn udp(s: &Server, q: &Q) -> Reply {
    let r = Reply::from_bytes(&udp_bytes(s.dns, &q.bytes()));
    check_common(q, &r);
    r
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("TCP connect");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Reads one length-prefixed message; `None` on EOF, reset or timeout.
fn read_frame(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    c.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    c.read_exact(&mut buf).ok()?;
    Some(buf)
}

/// A TCP exchange on a fresh connection, with the common checks.
fn tcp(s: &Server, q: &Q) -> Reply {
    let mut c = connect(s.dns);
    c.write_all(&frame(&q.bytes())).unwrap();
    let b = read_frame(&mut c).expect("a TCP reply");
    let r = Reply::from_bytes(&b);
    check_common(q, &r);
    r
}

/// Is the IPv4 network `addr/prefix` overlapping `net/net_prefix`?
fn overlaps(addr: Ipv4Addr, prefix: u8, net: Ipv4Addr, net_prefix: u8) -> bool {
    let p = prefix.min(net_prefix) as u32;
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    u32::from(addr) & mask == u32::from(net) & mask
}

mod robustness;
mod spec7;
mod steering;
mod tcp;

// helpers each section defines for the others
#[allow(unused_imports)]
use {robustness::*, spec7::*, steering::*, tcp::*};
