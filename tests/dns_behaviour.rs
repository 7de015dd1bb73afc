//! Black-box DNS behaviour of signpost (SPEC §4.6 ECS scope, §7 DNS
//! behaviour): the real binary on 127.0.0.1:0, real UDP and TCP, queries
//! built byte by byte so that every header bit, the OPT record and the ECS
//! option can be checked exactly.

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

// ---------------------------------------------------------------------------
// Steering through DNS (SPEC §4)
// ---------------------------------------------------------------------------

#[test]
fn european_subnet_gets_european_region_with_geoip_scope() {
    let s = start("eu");
    let q = Q::new("www.example.test.", t::A).ecs("193.0.6.0/24");
    let r = udp(&s, &q);
    assert_eq!(r.rcode(), ResponseCode::NoError);
    assert!(r.raw.has(AA), "AA on a service answer");
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.msg.answers[0].ttl, 30, "the service's TTL");
    let e = r.ecs().expect("ECS echoed");
    assert_eq!(e.family, 1);
    assert_eq!(e.source, 24);
    assert_eq!(e.addr, vec![193, 0, 6]);
    assert_eq!(
        e.scope, 20,
        "scope = prefix of the GeoIP network 193.0.0.0/20"
    );
    // the same over TCP
    let r = tcp(&s, &q);
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
}

#[test]
fn asian_and_north_american_subnets_get_their_regions() {
    let s = start("asia-na");
    for (subnet, want, scope) in [
        ("49.207.1.0/24", "192.0.2.3", 16),  // IN
        ("13.228.0.0/24", "192.0.2.3", 16),  // SG
        ("202.12.27.0/24", "192.0.2.3", 24), // JP
        ("24.24.24.0/24", "192.0.2.1", 16),  // US (Syracuse)
        ("151.101.1.0/24", "192.0.2.1", 16), // US (San Francisco)
        ("80.1.2.0/24", "192.0.2.2", 16),    // GB
    ] {
        let r = udp(&s, &Q::new("www.example.test.", t::A).ecs(subnet));
        assert_eq!(r.addrs(), ips(&[want]), "client {subnet}");
        assert_eq!(r.ecs().unwrap().scope, scope, "scope for {subnet}");
    }
}

#[test]
fn ipv6_ecs_steers_and_is_echoed() {
    let s = start("ecs6");
    // NL (2001:67c:2e8::/48), A and AAAA
    let q = Q::new("www.example.test.", t::A).ecs("2001:67c:2e8:22::/56");
    let r = udp(&s, &q);
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    let e = r.ecs().unwrap();
    assert_eq!((e.family, e.source, e.scope), (2, 56, 48));
    assert_eq!(e.addr, vec![0x20, 0x01, 0x06, 0x7c, 0x02, 0xe8, 0x00]);
    let r = udp(
        &s,
        &Q::new("www.example.test.", t::AAAA).ecs("2001:67c:2e8:22::/56"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:2::1"]));
    // JP (2001:200::/32)
    let r = udp(
        &s,
        &Q::new("www.example.test.", t::AAAA).ecs("2001:200:dff::/48"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:3::1"]));
    assert_eq!(r.ecs().unwrap().scope, 32);
    // US (2601::/20)
    let r = udp(
        &s,
        &Q::new("www.example.test.", t::AAAA).ecs("2601:5c1:8300::/48"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:1::1"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
}

#[test]
fn no_ecs_uses_packet_source_and_list_order() {
    let s = start("noecs");
    // no EDNS at all: 127.0.0.1 has no location -> first region in list order
    let q = Q::new("www.example.test.", t::A);
    let r = udp(&s, &q);
    assert_eq!(
        r.addrs(),
        ips(&["192.0.2.3"]),
        "unknown location -> regions in list order"
    );
    assert!(
        r.raw.opt.is_none(),
        "no OPT (and so no ECS) without EDNS in the query"
    );
    // EDNS without ECS: an OPT, but no ECS option
    let r = udp(&s, &Q::new("www.example.test.", t::A).edns(1232));
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
    assert!(r.ecs().is_none(), "no ECS option invented");
    // over TCP as well
    let r = tcp(&s, &q);
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
}

#[test]
fn unlisted_ecs_address_is_unknown_location_with_empty_network_scope() {
    let s = start("unlisted");
    // 8.8.8.0 is not in the demo db; the empty network around it in the
    // tree is 8.0.0.0/6 (1.x, 2.x and 13.x hold data).
    let r = udp(&s, &Q::new("www.example.test.", t::A).ecs("8.8.8.0/24"));
    assert_eq!(
        r.addrs(),
        ips(&["192.0.2.3"]),
        "unknown location -> list order"
    );
    let e = r.ecs().unwrap();
    assert_eq!(
        (e.source, e.scope),
        (24, 6),
        "scope = the database's empty network 8.0.0.0/6"
    );
}

#[test]
fn ecs_source_prefix_zero_answers_by_packet_source_with_scope_zero() {
    let s = start("ecs0");
    for family in [1u16, 2] {
        let q = Q::new("www.example.test.", t::A).ecs_bytes(ecs_data(family, 0, 0, &[]));
        let r = udp(&s, &q);
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert_eq!(
            r.addrs(),
            ips(&["192.0.2.3"]),
            "answered by 127.0.0.1 (unknown location)"
        );
        assert_eq!(
            r.ecs(),
            Some(RawEcs {
                family,
                source: 0,
                scope: 0,
                addr: vec![]
            })
        );
    }
}

#[test]
fn map_cidr_lengthens_the_scope() {
    let s = start("mapcidr");
    // inside the mapped /24 (which lies inside the GeoIP /20)
    let r = udp(
        &s,
        &Q::new("mapped.example.test.", t::A).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]), "the map entry's region");
    assert_eq!(r.ecs().unwrap().scope, 24, "scope = the map CIDR");
    let r = udp(
        &s,
        &Q::new("mapped.example.test.", t::A).ecs("193.0.6.128/25"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
    assert!(r.ecs().unwrap().scope >= 24);
    // outside the CIDR but inside the /20: scope narrower than /20 that
    // does not cover the CIDR
    for client in [
        "193.0.0.0/24",
        "193.0.8.0/24",
        "193.0.7.0/24",
        "193.0.15.0/24",
    ] {
        let r = udp(&s, &Q::new("mapped.example.test.", t::A).ecs(client));
        assert_eq!(
            r.addrs(),
            ips(&["192.0.2.2"]),
            "client {client} -> nearest (eu-west)"
        );
        let scope = r.ecs().unwrap().scope;
        let addr: Ipv4Addr = client.split_once('/').unwrap().0.parse().unwrap();
        assert!(
            scope > 20 && scope <= 32,
            "client {client}: scope {scope} must be longer than 20"
        );
        assert!(
            !overlaps(addr, scope, Ipv4Addr::new(193, 0, 6, 0), 24),
            "client {client}: scope {scope} covers 193.0.6.0/24, which is answered differently"
        );
    }
    // elsewhere the map changes nothing
    let r = udp(
        &s,
        &Q::new("mapped.example.test.", t::A).ecs("24.24.24.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.1"]));
    // the /16 merges with the empty space around it, which list order also
    // answers with us-east: at most /16, and never 0 (Europe differs)
    let scope = r.ecs().unwrap().scope;
    assert!((1..=16).contains(&scope), "scope {scope}");
}

#[test]
fn weighted_and_failover_answers_have_scope_zero() {
    let s = start("nongeo");
    for subnet in ["193.0.6.0/24", "49.207.1.0/24", "2001:200:dff::/48"] {
        let r = udp(&s, &Q::new("weighted.example.test.", t::A).ecs(subnet));
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert_eq!(r.addrs().len(), 1);
        assert!(ips(&["192.0.2.1", "192.0.2.2"]).contains(&r.addrs()[0]));
        let e = r.ecs().expect("ECS echoed");
        assert_eq!(e.scope, 0, "weighted does not depend on location");
        assert_eq!(e.addr, ecs_for(subnet)[4..].to_vec());

        let r = udp(&s, &Q::new("failover.example.test.", t::A).ecs(subnet));
        assert_eq!(
            r.addrs(),
            ips(&["192.0.2.2"]),
            "failover: first in list, whatever the client"
        );
        assert_eq!(
            r.ecs().unwrap().scope,
            0,
            "failover does not depend on location"
        );
    }
}

#[test]
fn weighted_policy_uses_both_regions() {
    let s = start("weighted");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        seen.extend(udp(&s, &Q::new("weighted.example.test.", t::A)).addrs());
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ips(&["192.0.2.1", "192.0.2.2"])
    );
}

#[test]
fn static_negative_and_refused_answers_echo_ecs_with_scope_zero() {
    let s = start("scope0");
    let subnet = "193.0.6.0/24";
    let cases: [(&str, u16, ResponseCode); 6] = [
        ("mail.example.test.", t::A, ResponseCode::NoError), // static
        ("example.test.", t::MX, ResponseCode::NoError),     // static
        ("nope.example.test.", t::A, ResponseCode::NXDomain), // NXDOMAIN
        ("mail.example.test.", t::TXT, ResponseCode::NoError), // NODATA
        ("v4only.example.test.", t::AAAA, ResponseCode::NoError), // NODATA of a service
        ("www.example.org.", t::A, ResponseCode::Refused),   // REFUSED
    ];
    for (name, qt, rc) in cases {
        let r = udp(&s, &Q::new(name, qt).ecs(subnet));
        assert_eq!(r.rcode(), rc, "{name} {qt}");
        assert_eq!(
            r.ecs(),
            Some(RawEcs {
                family: 1,
                source: 24,
                scope: 0,
                addr: vec![193, 0, 6]
            }),
            "{name} {qt}: ECS echoed with scope 0"
        );
    }
}

#[test]
fn ecs_echo_has_same_family_source_and_address_bytes() {
    let s = start("echo");
    for subnet in [
        "193.0.6.128/25",
        "193.0.0.0/20",
        "193.0.0.0/9",
        "24.24.24.24/32",
        "2001:67c:2e8:22::/64",
        "2001:67c:2e8:22::1/128",
        "2001:200::/19",
    ] {
        let sent = ecs_for(subnet);
        let r = udp(
            &s,
            &Q::new("www.example.test.", t::A).ecs_bytes(sent.clone()),
        );
        let e = r.ecs().unwrap_or_else(|| panic!("{subnet}: no ECS echoed"));
        assert_eq!(
            e.family.to_be_bytes(),
            [sent[0], sent[1]],
            "{subnet}: family"
        );
        assert_eq!(e.source, sent[2], "{subnet}: source prefix");
        assert_eq!(e.addr, sent[4..].to_vec(), "{subnet}: address bytes");
    }
}

#[test]
fn aaaa_answers_come_from_ipv6_endpoints_only() {
    let s = start("aaaa");
    let r = udp(&s, &Q::new("mixed.example.test.", t::AAAA));
    assert!(
        r.answer_types().iter().all(|&t| t == RecordType::AAAA),
        "{:?}",
        r.msg
    );
    assert_eq!(
        r.addrs(),
        ips(&["2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1"])
    );
    let r = udp(&s, &Q::new("mixed.example.test.", t::A));
    assert!(
        r.answer_types().iter().all(|&t| t == RecordType::A),
        "{:?}",
        r.msg
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]));
    // geo: a region without IPv6 endpoints is skipped for AAAA only
    let r = udp(
        &s,
        &Q::new("partial.example.test.", t::A).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["192.0.2.4"]));
    let r = udp(
        &s,
        &Q::new("partial.example.test.", t::AAAA).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.addrs(), ips(&["2001:db8:1::1"]));
}

#[test]
fn service_without_ipv6_endpoints_is_nodata_for_aaaa() {
    let s = start("nov6");
    let r = udp(
        &s,
        &Q::new("v4only.example.test.", t::AAAA).ecs("193.0.6.0/24"),
    );
    assert_eq!(r.rcode(), ResponseCode::NoError);
    assert!(r.raw.has(AA));
    assert!(r.msg.answers.is_empty(), "{:?}", r.msg);
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("example.test.").unwrap());
    assert_eq!(ttl, 60);
    // while A works
    let r = udp(&s, &Q::new("v4only.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.4"]));
}

#[test]
fn answers_two_returns_two_addresses() {
    let s = start("two");
    let r = udp(&s, &Q::new("two.example.test.", t::A).ecs("24.24.24.0/24"));
    let mut a = r.addrs();
    a.sort();
    assert_eq!(
        a,
        ips(&["192.0.2.10", "192.0.2.11"]),
        "two distinct endpoints of one region"
    );
    // a region with one endpoint of the family spills over to the next
    let r = udp(&s, &Q::new("spill.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.2", "192.0.2.1"]));
    let r = udp(&s, &Q::new("spill.example.test.", t::AAAA));
    assert_eq!(r.addrs(), ips(&["2001:db8:2::1", "2001:db8:1::1"]));
}

// ---------------------------------------------------------------------------
// SPEC §7
// ---------------------------------------------------------------------------

#[test]
fn out_of_zone_is_refused_without_aa() {
    let s = start("refused");
    for name in [
        "www.example.org.",
        "test.",
        ".",
        "example.test.example.org.",
        "xexample.test.",
    ] {
        let r = udp(&s, &Q::new(name, t::A));
        assert_eq!(r.rcode(), ResponseCode::Refused, "{name}");
        assert!(!r.raw.has(AA), "{name}: no AA on REFUSED");
        assert!(r.msg.answers.is_empty() && r.msg.authorities.is_empty());
    }
}

#[test]
fn nxdomain_carries_soa_with_negative_ttl() {
    let s = start("nxdomain");
    let r = udp(&s, &Q::new("nope.example.test.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    assert!(r.raw.has(AA), "AA on NXDOMAIN");
    assert!(r.msg.answers.is_empty());
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("example.test.").unwrap());
    assert_eq!(ttl, 60, "min(SOA TTL 300, minimum 60)");
    let soa = r.msg.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(soa.unwrap().serial, 2026112201);
    // deeper names too
    let r = udp(&s, &Q::new("a.b.c.nope.example.test.", t::AAAA));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    // the other zone: SOA TTL 30 < minimum 600
    let r = udp(&s, &Q::new("nope.other.test.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("other.test.").unwrap());
    assert_eq!(ttl, 30, "min(SOA TTL 30, minimum 600)");
}

#[test]
fn nodata_and_empty_non_terminals() {
    let s = start("nodata");
    for (name, qt) in [
        ("mail.example.test.", t::TXT),
        ("mail.example.test.", t::AAAA),
        ("example.test.", t::A),
        ("ent.example.test.", t::A),
        ("mid.ent.example.test.", t::A),
        ("static.example.test.", t::A),
        ("www.example.test.", t::MX),
        ("ns1.other.test.", t::MX),
    ] {
        let r = udp(&s, &Q::new(name, qt));
        assert_eq!(
            r.rcode(),
            ResponseCode::NoError,
            "{name} {qt}: NODATA is NOERROR"
        );
        assert!(r.raw.has(AA), "{name} {qt}: AA");
        assert!(r.msg.answers.is_empty(), "{name} {qt}: empty answer");
        let (_, ttl) = r.soa();
        let want = if name.ends_with("other.test.") {
            30
        } else {
            60
        };
        assert_eq!(ttl, want, "{name} {qt}: negative TTL");
    }
    // and the leaf below the empty non-terminals exists
    let r = udp(&s, &Q::new("leaf.mid.ent.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.90"]));
}

#[test]
fn static_cname_chases_into_the_service() {
    let s = start("cname");
    for (subnet, want, scope) in [
        ("193.0.6.0/24", "192.0.2.2", 20),
        ("49.207.1.0/24", "192.0.2.3", 16),
    ] {
        for r in [
            udp(&s, &Q::new("app.example.test.", t::A).ecs(subnet)),
            tcp(&s, &Q::new("app.example.test.", t::A).ecs(subnet)),
        ] {
            assert_eq!(r.rcode(), ResponseCode::NoError);
            assert!(r.raw.has(AA));
            let a = &r.msg.answers;
            assert_eq!(a.len(), 2, "CNAME then A: {:?}", r.msg);
            assert_eq!(a[0].name, Name::from_ascii("app.example.test.").unwrap());
            assert_eq!(
                a[0].data,
                RData::CNAME(hickory_proto::rr::rdata::CNAME(
                    Name::from_ascii("www.example.test.").unwrap()
                ))
            );
            assert_eq!(a[1].name, Name::from_ascii("www.example.test.").unwrap());
            assert_eq!(
                r.addrs(),
                ips(&[want]),
                "the service's answer for client {subnet}"
            );
            assert_eq!(r.ecs().unwrap().scope, scope);
        }
    }
    // AAAA through the CNAME
    let r = udp(
        &s,
        &Q::new("app.example.test.", t::AAAA).ecs("24.24.24.0/24"),
    );
    assert_eq!(r.answer_types(), vec![RecordType::CNAME, RecordType::AAAA]);
    assert_eq!(r.addrs(), ips(&["2001:db8:1::1"]));
    // asking for the CNAME itself does not chase
    let r = udp(&s, &Q::new("app.example.test.", t::CNAME));
    assert_eq!(r.answer_types(), vec![RecordType::CNAME]);
}

#[test]
fn cname_to_missing_name_is_nxdomain_with_the_cname() {
    let s = start("dangling");
    let r = udp(&s, &Q::new("dangling.example.test.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    assert!(r.raw.has(AA));
    assert_eq!(r.answer_types(), vec![RecordType::CNAME]);
    assert_eq!(
        r.msg.answers[0].name,
        Name::from_ascii("dangling.example.test.").unwrap()
    );
    let (owner, ttl) = r.soa();
    assert_eq!(owner, Name::from_ascii("example.test.").unwrap());
    assert_eq!(ttl, 60);
}

#[test]
fn static_mx_txt_srv_caa_answers() {
    let s = start("static");
    let r = udp(&s, &Q::new("example.test.", t::MX));
    assert!(r.raw.has(AA));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::MX(mx) => {
                assert_eq!(mx.preference, 10);
                assert_eq!(mx.exchange, Name::from_ascii("mail.example.test.").unwrap());
                assert_eq!(rr.ttl, 300);
            }
            other => panic!("not MX: {other:?}"),
        },
        other => panic!("one MX expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("example.test.", t::TXT));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::TXT(txt) => assert_eq!(
                &*txt.txt_data,
                &[b"hello world".to_vec().into_boxed_slice()]
            ),
            other => panic!("not TXT: {other:?}"),
        },
        other => panic!("one TXT expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("_sip._tcp.example.test.", t::SRV));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::SRV(srv) => {
                assert_eq!((srv.priority, srv.weight, srv.port), (10, 5, 5060));
                assert_eq!(srv.target, Name::from_ascii("sip.example.test.").unwrap());
            }
            other => panic!("not SRV: {other:?}"),
        },
        other => panic!("one SRV expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("example.test.", t::CAA));
    match &r.msg.answers[..] {
        [rr] => match &rr.data {
            RData::CAA(caa) => {
                assert_eq!(caa.tag, "issue");
                assert_eq!(caa.value, b"letsencrypt.org".to_vec());
            }
            other => panic!("not CAA: {other:?}"),
        },
        other => panic!("one CAA expected: {other:?}"),
    }
    let r = udp(&s, &Q::new("example.test.", t::NS));
    assert_eq!(r.answer_types(), vec![RecordType::NS]);
    let r = udp(&s, &Q::new("example.test.", t::SOA));
    assert_eq!(r.answer_types(), vec![RecordType::SOA]);
    assert_eq!(
        r.msg.answers[0].ttl, 300,
        "a positive SOA answer keeps its own TTL"
    );
}

#[test]
fn any_is_minimal_over_udp_and_tcp() {
    let s = start("any");
    for name in ["example.test.", "www.example.test.", "mail.example.test."] {
        let q = Q::new(name, t::ANY);
        for r in [udp(&s, &q), tcp(&s, &q)] {
            assert_eq!(r.rcode(), ResponseCode::NoError, "{name} ANY");
            assert!(r.raw.has(AA));
            let types = r.answer_types();
            assert!(
                !types.is_empty(),
                "{name} ANY: one RRset expected, got nothing"
            );
            assert!(
                types.iter().all(|&t| t == types[0]),
                "{name} ANY: exactly one RRset (RFC 8482), got {types:?}"
            );
            assert!(
                r.msg
                    .answers
                    .iter()
                    .all(|a| a.name == r.msg.answers[0].name)
            );
            if types[0] == RecordType::HINFO {
                assert_eq!(types.len(), 1, "one synthesized HINFO");
            }
        }
    }
}

#[test]
fn zone_transfers_are_refused_over_udp_and_tcp() {
    let s = start("xfr");
    for qt in [t::AXFR, t::IXFR] {
        let q = Q::new("example.test.", qt);
        for r in [udp(&s, &q), tcp(&s, &q)] {
            assert_eq!(r.rcode(), ResponseCode::Refused, "type {qt}");
            assert!(r.msg.answers.is_empty(), "no zone data");
        }
    }
}

#[test]
fn other_opcodes_are_notimp() {
    let s = start("opcodes");
    for (opcode, name) in [
        (4u16, "NOTIFY"),
        (5, "UPDATE"),
        (2, "STATUS"),
        (1, "IQUERY"),
        (6, "DSO"),
    ] {
        let q = Q::new("example.test.", t::SOA).flags(opcode << 11);
        let b = udp_bytes(s.dns, &q.bytes());
        let r = raw(&b);
        assert_eq!(r.rcode(), 4, "{name}: NOTIMP");
        assert_eq!(r.id, q.id);
        assert!(r.has(QR));
        assert!(!r.has(AA));
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NotImp, "{name}");
    }
}

#[test]
fn edns_version_1_gets_badvers_with_opt() {
    let s = start("badvers");
    let mut q = Q::new("www.example.test.", t::A).edns(1232);
    q.edns.as_mut().unwrap().version = 1;
    let b = udp_bytes(s.dns, &q.bytes());
    let r = raw(&b);
    assert_eq!(r.id, q.id);
    assert!(r.has(QR));
    let opt = r.opt.as_ref().expect("BADVERS carries an OPT record");
    assert_eq!(r.rcode(), 0, "low bits of 16 in the header");
    assert_eq!(opt.ext_rcode, 1, "high bits of 16 in the OPT");
    assert_eq!(opt.version, 0, "the version the server supports");
    let m = Message::from_vec(&b).unwrap();
    // hickory names the merged code 16 BADSIG: compare the number
    assert_eq!(u16::from(m.metadata.response_code), 16, "BADVERS");
    assert!(m.answers.is_empty(), "no answer with BADVERS");
    // over TCP too
    let mut c = connect(s.dns);
    c.write_all(&frame(&q.bytes())).unwrap();
    let b = read_frame(&mut c).unwrap();
    let r = raw(&b);
    assert_eq!(r.id, q.id);
    assert_eq!(
        (r.rcode(), r.opt.map(|o| o.ext_rcode)),
        (0, Some(1)),
        "BADVERS over TCP"
    );
}

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

#[test]
fn qdcount_not_one_is_formerr() {
    let s = start("qdcount");
    let q1 = Q::new("www.example.test.", t::A).question();
    let q2 = Q::new("mail.example.test.", t::A).question();
    let mut zero = header(0x4242, RD, 0, 0, 0, 0);
    let mut two = header(0x4343, RD, 2, 0, 0, 0);
    two.extend_from_slice(&q1);
    two.extend_from_slice(&q2);
    for (bytes, id) in [(zero.clone(), 0x4242), (two, 0x4343)] {
        let b = udp_bytes(s.dns, &bytes);
        let m =
            Message::from_vec(&b).unwrap_or_else(|e| panic!("unparsable FORMERR ({e}): {b:02x?}"));
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(m.metadata.id, id);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.answers.is_empty());
    }
    // QDCOUNT 0 with an OPT record
    zero[11] = 1;
    zero.extend_from_slice(&opt_rr(&OptSpec {
        payload: 1232,
        version: 0,
        options: vec![],
    }));
    let m = Message::from_vec(&udp_bytes(s.dns, &zero)).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn responses_are_never_answered() {
    let s = start("qr");
    let q = Q::new("www.example.test.", t::A).flags(QR | RD);
    assert_eq!(
        udp_raw(s.dns, &q.bytes(), Duration::from_millis(1500)),
        None,
        "no reply to QR=1 over UDP"
    );
    let q = Q::new("www.example.test.", t::A)
        .ecs("193.0.6.0/24")
        .flags(QR | AA);
    assert_eq!(udp_raw(s.dns, &q.bytes(), Duration::from_millis(500)), None);
    // TCP: no reply frame either
    let mut c = connect(s.dns);
    c.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    c.write_all(&frame(&q.bytes())).unwrap();
    assert_eq!(read_frame(&mut c), None, "no reply to QR=1 over TCP");
    // and the server still answers
    assert_eq!(
        udp(&s, &Q::new("mail.example.test.", t::A)).addrs(),
        ips(&["192.0.2.25"])
    );
}

/// Malformed ECS options, with a name for the message.
fn bad_ecs_options() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("IPv4 prefix 33", ecs_data(1, 33, 0, &[193, 0, 6, 1])),
        (
            "IPv4 prefix 33, 5 bytes",
            ecs_data(1, 33, 0, &[193, 0, 6, 1, 0]),
        ),
        (
            "IPv6 prefix 129",
            ecs_data(
                2,
                129,
                0,
                &[0x20, 1, 6, 0x7c, 2, 0xe8, 0, 0x22, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
        ),
        ("extra address byte", ecs_data(1, 24, 0, &[193, 0, 6, 0])),
        (
            "two extra address bytes (IPv6)",
            ecs_data(2, 32, 0, &[0x20, 1, 2, 0, 0, 0]),
        ),
        (
            "bits set beyond the prefix",
            ecs_data(1, 20, 0, &[193, 0, 6]),
        ),
        (
            "bits set beyond the prefix (IPv6)",
            ecs_data(2, 47, 0, &[0x20, 1, 6, 0x7c, 2, 0xe9]),
        ),
        ("unknown family 3", ecs_data(3, 24, 0, &[193, 0, 6])),
        (
            "a scope prefix in a query",
            ecs_data(1, 24, 16, &[193, 0, 6]),
        ),
        ("family 0", ecs_data(0, 0, 0, &[])),
        ("option too short", vec![0, 1, 24]),
    ]
}

#[test]
fn malformed_ecs_is_formerr_with_question_echoed() {
    let s = start("badecs");
    for (what, data) in bad_ecs_options() {
        let q = Q::new("www.example.test.", t::A).ecs_bytes(data);
        for b in [udp_bytes(s.dns, &q.bytes()), {
            let mut c = connect(s.dns);
            c.write_all(&frame(&q.bytes())).unwrap();
            read_frame(&mut c).unwrap_or_else(|| panic!("{what}: no TCP reply"))
        }] {
            let r = raw(&b);
            assert_eq!(r.rcode(), 1, "{what}: FORMERR");
            assert_eq!(r.id, q.id, "{what}: ID");
            assert!(r.has(QR));
            assert_eq!(r.qd, 1, "{what}: question echoed");
            assert_eq!(r.question, q.question(), "{what}: question echoed as sent");
            assert_eq!(r.an, 0, "{what}: no answer");
            // the query's OPT record was there: the reply has one too
            assert!(r.opt.is_some(), "{what}: OPT echoed on FORMERR");
            Message::from_vec(&b).unwrap_or_else(|e| panic!("{what}: unparsable ({e})"));
        }
    }
}

#[test]
fn question_case_is_preserved_and_matching_is_case_insensitive() {
    let s = start("case");
    let q = Q::new("WwW.ExAmPlE.TeSt.", t::A).ecs("193.0.6.0/24");
    let r = udp(&s, &q); // checks the question bytes
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
    assert!(
        r.msg.answers[0]
            .name
            .eq_case(&Name::from_ascii("WwW.ExAmPlE.TeSt.").unwrap())
            || {
                // an owner written in lower case is acceptable too
                r.msg.answers[0].name == Name::from_ascii("www.example.test.").unwrap()
            }
    );
    let r = udp(&s, &Q::new("MAIL.EXAMPLE.TEST.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.25"]));
    let r = tcp(&s, &Q::new("eXaMpLe.TeSt.", t::MX));
    assert_eq!(r.answer_types(), vec![RecordType::MX]);
    let r = udp(&s, &Q::new("NoPe.ExAmPlE.tEsT.", t::A));
    assert_eq!(r.rcode(), ResponseCode::NXDomain);
    let r = udp(&s, &Q::new("FoO.StAtIc.ExAmPlE.TeSt.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.80"]));
    let r = udp(&s, &Q::new("Ns1.OtHeR.TeSt.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.153"]));
}

#[test]
fn rd_copied_ra_never_set() {
    let s = start("rd");
    for flags in [0u16, RD] {
        for q in [
            Q::new("www.example.test.", t::A).flags(flags),
            Q::new("nope.example.test.", t::A).flags(flags),
            Q::new("www.example.org.", t::A).flags(flags),
        ] {
            udp(&s, &q); // check_common: RD copied, RA clear
            tcp(&s, &q);
        }
    }
    // also on FORMERR and NOTIMP
    for (q, rc) in [
        (
            Q::new("www.example.test.", t::A)
                .flags(RD)
                .ecs_bytes(ecs_data(1, 33, 0, &[1, 2, 3, 4])),
            1,
        ),
        (Q::new("www.example.test.", t::A).flags(RD | (4 << 11)), 4),
    ] {
        let r = raw(&udp_bytes(s.dns, &q.bytes()));
        assert_eq!(r.rcode(), rc);
        assert!(r.has(RD), "RD copied on rcode {rc}");
        assert!(!r.has(RA), "RA clear on rcode {rc}");
    }
}

#[test]
fn server_advertises_udp_payload_1232() {
    let s = start("payload");
    for payload in [512u16, 1232, 4096, 65535] {
        let r = udp(&s, &Q::new("www.example.test.", t::A).edns(payload));
        assert_eq!(
            r.raw.opt.as_ref().unwrap().payload,
            1232,
            "client payload {payload}"
        );
    }
}

/// `signpost_dns_truncated_total` counts UDP answers that send the client
/// to TCP, not TCP answers.
#[test]
fn only_udp_truncations_are_counted() {
    let s = start_with("tccount", "admin = \"127.0.0.1:0\"");
    let truncated = || -> f64 {
        let (_, body) = http("GET", &format!("{}/metrics", s.admin_url()), None);
        body.lines()
            .find_map(|l| l.strip_prefix("signpost_dns_truncated_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    assert_eq!(truncated(), 0.0);
    let r = udp(&s, &Q::new("big.example.test.", t::TXT).edns(1232));
    assert!(r.raw.has(TC));
    assert_eq!(truncated(), 1.0);
    for _ in 0..3 {
        let r = tcp(&s, &Q::new("big.example.test.", t::TXT).edns(1232));
        assert!(!r.raw.has(TC), "4.5 kB fits a TCP message");
    }
    assert_eq!(truncated(), 1.0, "TCP answers are not counted");
}

#[test]
fn large_udp_answers_are_truncated_and_keep_the_opt_record() {
    let s = start("tc");
    // EDNS payload 1232, with and without ECS, and a client that claims 4096
    for q in [
        Q::new("big.example.test.", t::TXT).edns(1232),
        Q::new("big.example.test.", t::TXT).ecs("193.0.6.0/24"),
        Q::new("big.example.test.", t::TXT).edns(4096),
    ] {
        let r = udp(&s, &q); // checks the OPT is there
        assert!(r.raw.has(TC), "TC set: {:?}", r.msg);
        assert!(
            r.raw.bytes.len() <= 1232,
            "{} bytes > 1232",
            r.raw.bytes.len()
        );
        assert!(r.raw.has(AA));
        assert_eq!(r.raw.ar, 1, "the OPT record is the only additional record");
        if q.edns.as_ref().unwrap().options.is_empty() {
            assert!(r.ecs().is_none());
        } else {
            assert_eq!(r.ecs().unwrap().scope, 0);
        }
    }
    // no EDNS: 512 bytes
    let q = Q::new("big.example.test.", t::TXT);
    let r = udp(&s, &q);
    assert!(r.raw.has(TC));
    assert!(r.raw.bytes.len() <= 512);
    assert!(r.raw.opt.is_none());
    // TCP returns everything
    for q in [q, Q::new("big.example.test.", t::TXT).edns(1232)] {
        let r = tcp(&s, &q);
        assert!(!r.raw.has(TC));
        assert_eq!(r.msg.answers.len(), 40);
        assert!(r.answer_types().iter().all(|&t| t == RecordType::TXT));
        assert!(r.raw.bytes.len() > 4000);
    }
}

#[test]
fn answer_that_fits_only_without_opt_is_still_answered() {
    let s = start("tcedge");
    // The answer is 504 bytes; with the 11-byte OPT it is 515 > 512.
    let q = Q::new("edge.example.test.", t::TXT).edns(512);
    let b = udp_raw(s.dns, &q.bytes(), Duration::from_secs(2))
        .expect("a reply (TC with OPT, or the answer)");
    let r = Reply::from_bytes(&b);
    check_common(&q, &r);
    assert!(b.len() <= 512);
    assert!(
        r.raw.has(TC),
        "the answer does not fit with its OPT record: TC"
    );
    // with ECS the OPT is bigger still
    let q = Q::new("edge.example.test.", t::TXT).ecs("193.0.6.0/24");
    let mut q = q;
    q.edns.as_mut().unwrap().payload = 512;
    let b = udp_raw(s.dns, &q.bytes(), Duration::from_secs(2)).expect("a reply with ECS");
    check_common(&q, &Reply::from_bytes(&b));
}

#[test]
fn edge_sized_answer_works_over_tcp_and_without_edns() {
    let s = start("edgeok");
    // without EDNS the 504-byte answer fits in 512
    let r = udp(&s, &Q::new("edge.example.test.", t::TXT));
    assert!(!r.raw.has(TC));
    assert_eq!(r.raw.bytes.len(), 504);
    let r = tcp(&s, &Q::new("edge.example.test.", t::TXT).edns(512));
    assert!(!r.raw.has(TC));
    assert_eq!(r.answer_types(), vec![RecordType::TXT]);
}

#[test]
fn wildcard_answers_with_the_query_name() {
    let s = start("wild");
    for name in ["foo.static.example.test.", "a.b.static.example.test."] {
        let r = udp(&s, &Q::new(name, t::A));
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert!(r.raw.has(AA));
        assert_eq!(r.addrs(), ips(&["192.0.2.80"]));
        assert_eq!(
            r.msg.answers[0].name,
            Name::from_ascii(name).unwrap(),
            "owner = query name"
        );
        // NODATA for other types at a wildcard match
        let r = udp(&s, &Q::new(name, t::MX));
        assert_eq!(r.rcode(), ResponseCode::NoError);
        assert!(r.msg.answers.is_empty());
        r.soa();
    }
}

#[test]
fn delegation_below_the_apex_is_a_referral() {
    let s = start("referral");
    for name in [
        "host.sub.example.test.",
        "sub.example.test.",
        "a.b.sub.example.test.",
    ] {
        let r = udp(&s, &Q::new(name, t::A));
        assert_eq!(r.rcode(), ResponseCode::NoError, "{name}");
        assert!(!r.raw.has(AA), "{name}: a referral is not authoritative");
        assert!(r.msg.answers.is_empty(), "{name}: no answer");
        assert_eq!(r.raw.ns, 1, "{name}: one NS record in authority");
        let ns: Vec<_> = r
            .msg
            .authorities
            .iter()
            .filter(|a| a.record_type() == RecordType::NS)
            .collect();
        assert_eq!(ns.len(), 1, "{name}: NS in authority: {:?}", r.msg);
        assert_eq!(ns[0].name, Name::from_ascii("sub.example.test.").unwrap());
        assert_eq!(
            ns[0].data,
            RData::NS(hickory_proto::rr::rdata::NS(
                Name::from_ascii("ns.sub.example.test.").unwrap()
            ))
        );
        assert!(
            !r.msg
                .authorities
                .iter()
                .any(|a| a.record_type() == RecordType::SOA),
            "{name}: no SOA in a referral"
        );
        let glue: Vec<_> = r
            .msg
            .additionals
            .iter()
            .filter(|a| a.record_type() == RecordType::A)
            .collect();
        assert_eq!(glue.len(), 1, "{name}: glue in additional: {:?}", r.msg);
        assert_eq!(
            glue[0].name,
            Name::from_ascii("ns.sub.example.test.").unwrap()
        );
        assert_eq!(
            glue[0].data,
            RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 54)))
        );
    }
}

// ---------------------------------------------------------------------------
// Robustness
// ---------------------------------------------------------------------------

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Valid queries whose every strict prefix is malformed.
fn valid_queries() -> Vec<Vec<u8>> {
    vec![
        Q::new("www.example.test.", t::A).bytes(),
        Q::new("www.example.test.", t::A).edns(1232).bytes(),
        Q::new("www.example.test.", t::AAAA)
            .ecs("193.0.6.0/24")
            .bytes(),
        Q::new("app.example.test.", t::A)
            .ecs("2001:67c:2e8:22::/56")
            .bytes(),
        Q::new("nope.example.test.", t::TXT)
            .ecs("24.24.24.0/21")
            .bytes(),
    ]
}

/// Header, question for www.example.test A, then `rest`, with `ar` records.
fn with_additional(id: u16, ar: u16, rest: &[u8]) -> Vec<u8> {
    let mut b = header(id, RD, 1, 0, 0, ar);
    b.extend_from_slice(&Q::new("www.example.test.", t::A).question());
    b.extend_from_slice(rest);
    b
}

/// An OPT record with an explicit (possibly lying) RDLENGTH.
fn opt_with_rdlen(rdlen: u16, rdata: &[u8]) -> Vec<u8> {
    let mut rr = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
    rr.extend_from_slice(&rdlen.to_be_bytes());
    rr.extend_from_slice(rdata);
    rr
}

/// The malformed packets of the UDP flood: (kind, bytes).
fn malformed_packets() -> Vec<(String, Vec<u8>)> {
    let mut rng = Prng(0x5eed_0f51_6e90_5700);
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    // truncated headers
    for n in 0..12 {
        out.push((format!("header of {n} bytes"), rng.bytes(n)));
    }
    // valid queries cut at every length
    for q in valid_queries() {
        for n in 0..q.len() {
            out.push((format!("query cut at {n}"), q[..n].to_vec()));
        }
    }
    let qname_a = Q::new("www.example.test.", t::A).question();
    // compression pointer loops in the question
    let loops: Vec<Vec<u8>> = vec![
        vec![0xc0, 0x0c, 0, 1, 0, 1],                      // points at itself
        vec![0xc0, 0x0e, 0xc0, 0x0c, 0, 1, 0, 1],          // two pointers in a ring
        vec![3, b'w', b'w', b'w', 0xc0, 0x0c, 0, 1, 0, 1], // label then back
        vec![3, b'w', b'w', b'w', 0xc0, 0x10, 0, 1, 0, 1], // pointer to itself after a label
        vec![0xc0, 0x00, 0, 1, 0, 1],                      // into the header
        vec![0xc0, 0xff, 0, 1, 0, 1],                      // beyond the end
        vec![0xff, 0xff, 0, 1, 0, 1],                      // pointer beyond the packet
    ];
    for l in &loops {
        let mut b = header(0x0a0a, RD, 1, 0, 0, 0);
        b.extend_from_slice(l);
        out.push(("pointer loop in the question".into(), b));
    }
    // a pointer loop in the owner of an OPT record
    let mut b = header(0x0b0b, RD, 1, 0, 0, 1);
    b.extend_from_slice(&qname_a);
    let at = b.len() as u16;
    b.extend_from_slice(&(0xc000 | at).to_be_bytes());
    b.extend_from_slice(&[0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    out.push(("pointer loop in an OPT owner".into(), b));
    // labels with the reserved types 01 and 10
    for bad in [0x40u8, 0x41, 0x80, 0xbf] {
        let mut b = header(0x0c0c, RD, 1, 0, 0, 0);
        b.extend_from_slice(&[3, b'w', b'w', b'w', bad, b'x', 0, 0, 1, 0, 1]);
        out.push((format!("label type {bad:#x}"), b));
        let mut b = header(0x0c0d, RD, 1, 0, 0, 0);
        b.push(bad);
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        out.push((format!("first label type {bad:#x}"), b));
    }
    // names that are too long or labels that run past the end
    let mut b = header(0x0d0d, RD, 1, 0, 0, 0);
    for _ in 0..5 {
        b.push(63);
        b.extend_from_slice(&[b'a'; 63]);
    }
    b.extend_from_slice(&[0, 0, 1, 0, 1]);
    out.push(("name longer than 255".into(), b));
    let mut b = header(0x0d0e, RD, 1, 0, 0, 0);
    b.extend_from_slice(&[63, b'a', b'b']);
    out.push(("label past the end".into(), b));
    // huge counts with no data
    for (qd, an, ns, ar) in [
        (0xffff, 0, 0, 0),
        (1, 0xffff, 0, 0),
        (1, 0, 0xffff, 0),
        (1, 0, 0, 0xffff),
        (1, 0xffff, 0xffff, 0xffff),
        (0xffff, 0xffff, 0xffff, 0xffff),
    ] {
        let mut b = header(0x0e0e, RD, qd, an, ns, ar);
        out.push(("huge counts, no data".into(), b.clone()));
        if qd == 1 {
            b.extend_from_slice(&qname_a);
            out.push(("huge counts after the question".into(), b));
        }
    }
    // bad ECS options
    for (what, data) in bad_ecs_options() {
        out.push((
            format!("bad ECS: {what}"),
            Q::new("www.example.test.", t::A).ecs_bytes(data).bytes(),
        ));
    }
    // two ECS options, two OPT records
    out.push((
        "two ECS options".into(),
        Q::new("www.example.test.", t::A)
            .ecs("193.0.6.0/24")
            .ecs("24.24.24.0/24")
            .bytes(),
    ));
    let opt = opt_rr(&OptSpec {
        payload: 1232,
        version: 0,
        options: vec![],
    });
    out.push((
        "two OPT records".into(),
        with_additional(0x0f0f, 2, &[opt.clone(), opt].concat()),
    ));
    // OPT records with lying RDLENGTHs
    let ecs = ecs_for("193.0.6.0/24");
    let mut option = vec![0, 8];
    option.extend_from_slice(&(ecs.len() as u16).to_be_bytes());
    option.extend_from_slice(&ecs);
    for (rdlen, data) in [
        (option.len() as u16 + 1, option.clone()),
        (option.len() as u16 + 100, option.clone()),
        (0xffff, option.clone()),
        (option.len() as u16 - 1, option.clone()),
        (2, option.clone()),
        (3, vec![0, 8, 0]),
        (4, vec![0, 8, 0, 40]),
        (8, vec![0, 8, 0, 40, 0, 1, 24, 0]),
    ] {
        out.push((
            format!("OPT rdlength {rdlen}"),
            with_additional(0x1010, 1, &opt_with_rdlen(rdlen, &data)),
        ));
    }
    // a record in the answer section that runs off the end
    let mut b = header(0x1111, RD, 1, 1, 0, 0);
    b.extend_from_slice(&qname_a);
    b.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 200, 1, 2]);
    out.push(("answer record past the end".into(), b));
    // random garbage, some of it behind a plausible header
    while out.len() < 1000 {
        let n = rng.below(600);
        let mut b = rng.bytes(n);
        if rng.below(2) == 0 && b.len() >= 12 {
            b[2] &= 0x07; // QR=0, opcode 0
            b[4] = 0;
            b[5] = 1;
        }
        out.push(("random garbage".into(), b));
    }
    out
}

/// Is this reply acceptable for a malformed packet?
fn check_malformed_reply(kind: &str, sent: &[u8], reply: &[u8]) {
    let m = Message::from_vec(reply).unwrap_or_else(|e| {
        panic!("{kind}: unparsable reply ({e})\n sent {sent:02x?}\n got {reply:02x?}")
    });
    let rc = m.metadata.response_code;
    assert!(
        matches!(
            rc,
            ResponseCode::FormErr | ResponseCode::NotImp | ResponseCode::Refused
        ),
        "{kind}: rcode {rc:?}\n sent {sent:02x?}\n got {reply:02x?}"
    );
    assert_eq!(m.metadata.message_type, MessageType::Response, "{kind}: QR");
    assert_eq!(&reply[..2], &sent[..2], "{kind}: ID echoed");
}

#[test]
fn udp_flood_of_malformed_packets() {
    let mut s = start("flood");
    let packets = malformed_packets();
    assert!(packets.len() >= 1000);
    let mut replies = 0;
    for batch in packets.chunks(100) {
        let socks: Vec<UdpSocket> = batch
            .iter()
            .map(|(_, b)| {
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                u.send_to(b, s.dns).unwrap();
                u
            })
            .collect();
        let deadline = Instant::now() + Duration::from_millis(700);
        let mut buf = [0u8; 65535];
        for (u, (kind, sent)) in socks.iter().zip(batch) {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            u.set_read_timeout(Some(wait)).unwrap();
            if let Ok(n) = u.recv(&mut buf) {
                replies += 1;
                check_malformed_reply(kind, sent, &buf[..n]);
            }
        }
    }
    eprintln!("{replies} of {} malformed packets answered", packets.len());
    assert!(
        replies >= 700,
        "only {replies} of {} malformed packets were answered",
        packets.len()
    );
    // still serving, correctly
    let r = udp(&s, &Q::new("www.example.test.", t::A).ecs("193.0.6.0/24"));
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
    let r = tcp(&s, &Q::new("www.example.test.", t::A).ecs("49.207.1.0/24"));
    assert_eq!(r.addrs(), ips(&["192.0.2.3"]));
    assert!(s.alive(), "the process is alive");
}

#[test]
fn malformed_question_categories_get_formerr() {
    // the deterministic cases of the flood, one by one, with exact rcodes
    let s = start("formerr");
    for (kind, b) in malformed_packets() {
        let expect_formerr = kind.starts_with("pointer loop")
            || kind.starts_with("label type")
            || kind.starts_with("first label type")
            || kind.starts_with("name longer")
            || kind.starts_with("label past")
            || kind.starts_with("huge counts")
            || kind.starts_with("bad ECS")
            || kind.starts_with("two ")
            || kind.starts_with("OPT rdlength")
            || kind.starts_with("answer record");
        if !expect_formerr {
            continue;
        }
        let reply = udp_raw(s.dns, &b, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{kind}: no reply to {b:02x?}"));
        check_malformed_reply(&kind, &b, &reply);
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::FormErr,
            "{kind}: {b:02x?}"
        );
    }
    // valid queries cut inside the question or the OPT record
    for q in valid_queries() {
        for n in 12..q.len() {
            let reply = udp_raw(s.dns, &q[..n], Duration::from_secs(2))
                .unwrap_or_else(|| panic!("no reply to a query cut at {n}: {:02x?}", &q[..n]));
            check_malformed_reply("cut query", &q[..n], &reply);
            let m = Message::from_vec(&reply).unwrap();
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::FormErr,
                "cut at {n}"
            );
        }
    }
}

#[test]
fn pointer_loop_in_additional_record_owner_is_formerr() {
    let s = start("arloop");
    // question www.example.test A; one additional record (type A) whose
    // owner is a pointer to itself
    let mut b = header(0x2222, RD, 1, 0, 0, 1);
    b.extend_from_slice(&Q::new("www.example.test.", t::A).question());
    let at = b.len() as u16;
    b.extend_from_slice(&(0xc000 | at).to_be_bytes());
    b.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    if let Some(reply) = udp_raw(s.dns, &b, Duration::from_secs(2)) {
        check_malformed_reply("pointer loop in an additional owner", &b, &reply);
    }
}

#[test]
fn tcp_malformed_messages_then_a_valid_query() {
    let mut s = start("tcpflood");
    let mut rng = Prng(0xdead_beef_cafe_f00d);
    let mut msgs: Vec<(String, Vec<u8>)> = Vec::new();
    // framed malformed messages, taken from the UDP set
    let all = malformed_packets();
    for i in 0..70 {
        let (k, b) = &all[(i * 37) % all.len()];
        msgs.push((k.clone(), frame(b)));
    }
    // a length prefix larger than the data, then close
    for _ in 0..10 {
        let n = rng.below(40);
        let data = rng.bytes(n);
        let mut m = ((data.len() + 1 + rng.below(1000)) as u16)
            .to_be_bytes()
            .to_vec();
        m.extend_from_slice(&data);
        msgs.push(("length larger than the data".into(), m));
    }
    let q = Q::new("www.example.test.", t::A).bytes();
    let mut m = 200u16.to_be_bytes().to_vec();
    m.extend_from_slice(&q);
    msgs.push(("valid query with too long a prefix".into(), m));
    // a zero length, a half length prefix, a message after a bad one
    msgs.push(("zero length".into(), vec![0, 0]));
    msgs.push(("half a length prefix".into(), vec![0]));
    msgs.push((
        "bad then good".into(),
        [frame(&[1, 2, 3]), frame(&q)].concat(),
    ));
    // a query cut short inside a correct frame
    for n in [3, 12, 20] {
        msgs.push(("cut query in a frame".into(), frame(&q[..n])));
    }
    // random frames
    while msgs.len() < 100 {
        let n = rng.below(300);
        let b = rng.bytes(n);
        msgs.push(("random frame".into(), frame(&b)));
    }
    for (kind, m) in &msgs {
        let mut c = connect(s.dns);
        // the server may close early: write errors are fine
        let _ = c.write_all(m);
        let _ = c.shutdown(Shutdown::Write);
        let mut got = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{kind}: connection neither answered nor closed within 5 s ({e})"),
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{kind}: bounded");
        }
        // every reply frame parses and is an allowed error
        let mut i = 0;
        let mut sent_frames = Vec::new();
        let mut j = 0;
        while j + 2 <= m.len() {
            let len = u16::from_be_bytes([m[j], m[j + 1]]) as usize;
            sent_frames.push(m[j + 2..(j + 2 + len).min(m.len())].to_vec());
            j += 2 + len;
        }
        let mut k = 0;
        while i < got.len() {
            assert!(
                i + 2 <= got.len(),
                "{kind}: half a length prefix in the reply"
            );
            let len = u16::from_be_bytes([got[i], got[i + 1]]) as usize;
            assert!(
                i + 2 + len <= got.len(),
                "{kind}: reply shorter than its prefix"
            );
            let reply = &got[i + 2..i + 2 + len];
            let sent = sent_frames.get(k).cloned().unwrap_or_default();
            if kind == "bad then good" && k == 1 {
                let m = Message::from_vec(reply).unwrap();
                assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            } else {
                check_malformed_reply(kind, &sent, reply);
            }
            i += 2 + len;
            k += 1;
        }
    }
    let r = tcp(&s, &Q::new("www.example.test.", t::A).ecs("193.0.6.0/24"));
    assert_eq!(r.addrs(), ips(&["192.0.2.2"]));
    assert_eq!(r.ecs().unwrap().scope, 20);
    let r = udp(&s, &Q::new("mail.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.25"]));
    assert!(s.alive());
}

// ---------------------------------------------------------------------------
// TCP
// ---------------------------------------------------------------------------

#[test]
fn tcp_pipelined_queries_get_answers_with_their_ids() {
    let s = start("pipeline");
    let q1 = Q::new("www.example.test.", t::A).ecs("193.0.6.0/24");
    let q2 = Q::new("www.example.test.", t::A).ecs("49.207.1.0/24");
    let q3 = Q::new("mail.example.test.", t::A);
    let mut c = connect(s.dns);
    // all three in one write
    c.write_all(&[frame(&q1.bytes()), frame(&q2.bytes()), frame(&q3.bytes())].concat())
        .unwrap();
    let mut got = std::collections::HashMap::new();
    for _ in 0..3 {
        let r = Reply::from_bytes(&read_frame(&mut c).expect("a pipelined reply"));
        got.insert(r.raw.id, r);
    }
    for (q, want) in [(&q1, "192.0.2.2"), (&q2, "192.0.2.3"), (&q3, "192.0.2.25")] {
        let r = got
            .get(&q.id)
            .unwrap_or_else(|| panic!("no reply with ID {:#x}", q.id));
        check_common(q, r);
        assert_eq!(r.addrs(), ips(&[want]));
    }
    // and the connection keeps working
    let q4 = Q::new("example.test.", t::MX);
    c.write_all(&frame(&q4.bytes())).unwrap();
    let r = Reply::from_bytes(&read_frame(&mut c).unwrap());
    check_common(&q4, &r);
}

/// Waits until the server closes `c`; returns how long it took, or None.
fn wait_closed(c: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return Some(start.elapsed());
            }
            Err(_) => return None,
        }
        if start.elapsed() > limit {
            return None;
        }
    }
}

#[test]
fn tcp_idle_connections_are_closed() {
    let s = start_with("idle", r#"tcp_idle_timeout = "1s""#);
    // silent from the start
    let a = connect(s.dns);
    // used once, then idle
    let mut b = connect(s.dns);
    let q = Q::new("www.example.test.", t::A);
    b.write_all(&frame(&q.bytes())).unwrap();
    check_common(&q, &Reply::from_bytes(&read_frame(&mut b).unwrap()));
    // stalled in the middle of a length prefix, and of a message
    let mut c = connect(s.dns);
    c.write_all(&[0]).unwrap();
    let mut d = connect(s.dns);
    d.write_all(&frame(&q.bytes())[..10]).unwrap();
    let idle_since = Instant::now();
    let mut conns = [
        ("silent", a),
        ("idle after a query", b),
        ("half prefix", c),
        ("half message", d),
    ];
    // not closed at once
    std::thread::sleep(Duration::from_millis(300));
    for (name, conn) in conns.iter_mut() {
        conn.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        match conn.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("{name}: closed before the idle timeout: {other:?}"),
        }
        conn.set_nonblocking(false).unwrap();
    }
    // but within a generous 5 s of going idle
    for (name, conn) in conns.iter_mut() {
        let left = Duration::from_secs(5).saturating_sub(idle_since.elapsed());
        assert!(
            wait_closed(conn, left.max(Duration::from_millis(1))).is_some(),
            "{name}: not closed within 5 s of going idle"
        );
    }
    // a new connection still works
    assert_eq!(
        tcp(&s, &Q::new("mail.example.test.", t::A)).addrs(),
        ips(&["192.0.2.25"])
    );
}

#[test]
fn tcp_connection_limit() {
    let s = start_with("tcplimit", "tcp_max_connections = 2");
    let q = || Q::new("mail.example.test.", t::A);
    let ask = |c: &mut TcpStream| {
        let q = q();
        c.write_all(&frame(&q.bytes())).ok()?;
        let b = read_frame(c)?;
        let r = Reply::from_bytes(&b);
        check_common(&q, &r);
        Some(r.addrs())
    };
    let mut c1 = connect(s.dns);
    let mut c2 = connect(s.dns);
    assert_eq!(ask(&mut c1), Some(ips(&["192.0.2.25"])));
    assert_eq!(ask(&mut c2), Some(ips(&["192.0.2.25"])));
    // a third one makes room: the connection idle the longest (c1) goes
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(ask(&mut c2), Some(ips(&["192.0.2.25"])), "c2 busy last");
    let mut c3 = connect(s.dns);
    assert_eq!(
        ask(&mut c3),
        Some(ips(&["192.0.2.25"])),
        "the third is served"
    );
    assert!(
        wait_closed(&mut c1, Duration::from_secs(5)).is_some(),
        "the connection idle the longest is closed"
    );
    assert_eq!(ask(&mut c2), Some(ips(&["192.0.2.25"])));
    assert_eq!(ask(&mut c3), Some(ips(&["192.0.2.25"])));
}

#[test]
fn tcp_answers_match_udp_answers() {
    let s = start("tcpudp");
    for q in [
        Q::new("www.example.test.", t::AAAA).ecs("2001:200:dff::/48"),
        Q::new("nope.example.test.", t::A),
        Q::new("ent.example.test.", t::A).edns(1232),
        Q::new("www.example.org.", t::A),
        Q::new("_sip._tcp.example.test.", t::SRV),
    ] {
        let (u, t) = (udp(&s, &q), tcp(&s, &q));
        assert_eq!(
            u.raw.bytes[2..],
            t.raw.bytes[2..],
            "same response over UDP and TCP for {q:?}"
        );
    }
}

/// A burst of queries from one socket exercises the UDP batching path
/// (adaptive coalescing and GSO: equal-sized answers to one client leave in
/// one send). Every query must be answered exactly once, intact, whatever
/// the batching; with batching off too.
#[test]
fn burst_from_one_socket_is_answered_once_each() {
    for (name, extra) in [("burst", ""), ("burst-nobatch", "udp_batch_wait = \"0s\"")] {
        let s = start_with(name, extra);
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let subnets = ["193.0.6.0/24", "49.207.0.0/24", "24.24.24.0/24"];
        let want = [ip("192.0.2.2"), ip("192.0.2.3"), ip("192.0.2.1")];
        const N: u16 = 600;
        // read while sending, so the client's own socket buffer never overflows
        let reader = {
            let sock = sock.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = [0u8; 2048];
                while got.len() < N as usize {
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        break;
                    };
                    got.push(buf[..n].to_vec());
                }
                got
            })
        };
        for i in 0..N {
            let mut q = query(
                "www.example.test.",
                RecordType::A,
                Some(subnets[(i % 3) as usize]),
            );
            q.metadata.id = i;
            sock.send_to(&q.to_vec().unwrap(), s.dns).unwrap();
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let got = reader.join().unwrap();
        let mut seen = std::collections::HashSet::new();
        for d in &got {
            let m = Message::from_vec(d).expect("each datagram is one whole message");
            let id = m.metadata.id;
            assert!(id < N, "{name}: unknown id {id}");
            assert!(seen.insert(id), "{name}: id {id} answered twice");
            assert_eq!(
                addresses(&m),
                vec![want[(id % 3) as usize]],
                "{name}: id {id}"
            );
        }
        // UDP may drop under a burst, but not on loopback at this pace
        assert!(
            seen.len() >= 590,
            "{name}: only {} of {N} answered",
            seen.len()
        );
    }
}

/// A wildcard listener answers from the address the query was sent to
/// (IP_PKTINFO), and IPv4 and IPv6 wildcards can be listed together.
#[test]
fn wildcard_listener_answers_from_the_address_asked() {
    let z = zone();
    let has_v6 = UdpSocket::bind("[::1]:0").is_ok();
    let listen = if has_v6 {
        r#"listen = ["0.0.0.0:0", "[::]:0"]"#
    } else {
        r#"listen = ["0.0.0.0:0"]"#
    };
    let s = Server::start(
        "wildcard",
        &config("").replace(r#"listen = ["127.0.0.1:0"]"#, listen),
        &[
            ("example.test.zone", z.as_str()),
            ("other.test.zone", OTHER_ZONE),
        ],
    );
    let v4: Vec<SocketAddr> = s
        .log()
        .iter()
        .filter_map(|l| l.split("dns listening on ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(
        v4.len(),
        if has_v6 { 2 } else { 1 },
        "one line per listener: {:?}",
        s.log()
    );
    let port4 = v4
        .iter()
        .find(|a| a.is_ipv4())
        .expect("an IPv4 listener")
        .port();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    for dst in ["127.0.0.1", "127.0.0.2", "127.3.4.5"] {
        let to: SocketAddr = format!("{dst}:{port4}").parse().unwrap();
        let q = query("www.example.test.", RecordType::A, Some("193.0.6.0/24"));
        client.send_to(&q.to_vec().unwrap(), to).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = client.recv_from(&mut buf).expect("a reply");
        assert_eq!(from, to, "the reply must come from the address asked");
        let m = Message::from_vec(&buf[..n]).unwrap();
        assert_eq!(m.metadata.id, q.metadata.id);
        assert_eq!(addresses(&m), ips(&["192.0.2.2"]));
    }
    // the IPv6 wildcard serves IPv6 (where the host has it)
    if let Some(a6) = v4.iter().find(|a| a.is_ipv6())
        && let Ok(c6) = UdpSocket::bind("[::1]:0")
    {
        c6.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let to: SocketAddr = format!("[::1]:{}", a6.port()).parse().unwrap();
        let q = query("www.example.test.", RecordType::A, None);
        if c6.send_to(&q.to_vec().unwrap(), to).is_ok() {
            let mut buf = [0u8; 1500];
            let (_, from) = c6.recv_from(&mut buf).expect("an IPv6 reply");
            assert_eq!(from, to);
        }
    }
}

/// RFC 5001: a query that asks for the NSID gets the configured one, in
/// answers with and without ECS, over UDP and TCP; others get none.
#[test]
fn nsid_is_answered_when_asked_for() {
    let with = |q: Q| {
        let mut q = q;
        q.edns.get_or_insert(OptSpec {
            payload: 1232,
            version: 0,
            options: vec![],
        });
        q.edns.as_mut().unwrap().options.push((3, vec![]));
        q
    };
    let nsid = |r: &Raw| -> Option<Vec<u8>> {
        r.opt
            .as_ref()?
            .options
            .iter()
            .find(|(c, _)| *c == 3)
            .map(|(_, d)| d.clone())
    };
    let s = start_with("nsid", "nsid = \"ns-test-1\"");
    for q in [
        with(Q::new("www.example.test.", t::A)),
        with(Q::new("www.example.test.", t::A).ecs("193.0.6.0/24")),
        with(Q::new("nx.example.test.", t::A)),
    ] {
        let r = raw(&udp_bytes(s.dns, &q.bytes()));
        assert_eq!(nsid(&r).as_deref(), Some(&b"ns-test-1"[..]));
    }
    let r = tcp(&s, &with(Q::new("mail.example.test.", t::A)));
    assert_eq!(nsid(&r.raw).as_deref(), Some(&b"ns-test-1"[..]));
    // not asked: not sent
    let r = raw(&udp_bytes(
        s.dns,
        &Q::new("www.example.test.", t::A).edns(1232).bytes(),
    ));
    assert_eq!(nsid(&r), None);
    // asked, but none configured
    let s = start("no-nsid");
    let r = raw(&udp_bytes(
        s.dns,
        &with(Q::new("www.example.test.", t::A)).bytes(),
    ));
    assert_eq!(nsid(&r), None);
    assert!(r.opt.is_some());
}

/// Unknown and non-IN query classes are refused without data; unknown
/// types at names that exist are NODATA with the SOA, and NXDOMAIN below
/// names that do not; over UDP and TCP, with and without EDNS.
#[test]
fn unknown_classes_and_types() {
    let s = start("unknown-class-type");
    // CH, HS, NONE, ANY, 0 and an unassigned class
    for class in [3u16, 4, 254, 255, 0, 999, 65535] {
        for name in ["www.example.test.", "example.test.", "version.bind."] {
            let mut q = Q::new(name, t::A);
            q.qclass = class;
            for q in [q.clone(), q.edns(1232)] {
                for r in [udp(&s, &q), tcp(&s, &q)] {
                    check_common(&q, &r);
                    assert_eq!(r.rcode(), ResponseCode::Refused, "class {class} {name}");
                    assert!(!r.raw.has(AA), "class {class}: not authoritative");
                    assert!(r.msg.answers.is_empty() && r.msg.authorities.is_empty());
                }
            }
        }
    }
    // private-use, unassigned, obsolete and reserved types
    for qt in [65280u16, 65535, 32769, 99, 0, 258, 4096] {
        for name in [
            "www.example.test.",
            "example.test.",
            "mail.example.test.",
            "x.static.example.test.",
        ] {
            let q = Q::new(name, qt);
            for r in [udp(&s, &q), tcp(&s, &q)] {
                check_common(&q, &r);
                assert_eq!(r.rcode(), ResponseCode::NoError, "type {qt} at {name}");
                assert!(r.raw.has(AA), "type {qt} at {name}: AA");
                assert!(r.msg.answers.is_empty(), "type {qt} at {name}: no data");
                let (_, ttl) = r.soa();
                assert_eq!(ttl, 60, "type {qt} at {name}: negative TTL");
            }
        }
        let q = Q::new("nothing-here.example.test.", qt);
        let r = udp(&s, &q);
        check_common(&q, &r);
        assert_eq!(r.rcode(), ResponseCode::NXDomain, "type {qt}");
    }
    // the server still answers normally afterwards
    let r = udp(&s, &Q::new("mail.example.test.", t::A));
    assert_eq!(r.addrs(), ips(&["192.0.2.25"]));
}
