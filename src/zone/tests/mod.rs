//! Tests of zone files and the table: the shared fixtures (`ZONE`,
//! `GOOD_HEAD`) and helpers are here; `parse` tests reading zone text
//! into RRsets and their wire form, `table` tests building the table and
//! looking names up in it.

mod parse;
mod table;

use super::*;

const FILE: &str = "example.test.zone";

const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@   3600 IN SOA ns1.example.test. hostmaster.example.test. (
        2024010101 ; serial
        7200       ; refresh
        900        ; retry
        1209600    ; expire
        60 )       ; minimum
    IN NS  ns1
    IN NS  ns2.example.test.
    IN MX  10 mail
    IN TXT "v=spf1 -all"
    IN CAA 0 issue "letsencrypt.org"
ns1 IN A 192.0.2.53
ns2 IN AAAA 2001:db8::53
mail IN A 192.0.2.25
Alias IN CNAME mail
_sip._tcp IN SRV 10 60 5060 sip
sip 100 IN A 192.0.2.60
sip 200 IN A 192.0.2.61
*.static IN A 192.0.2.80
Known.Static IN A 192.0.2.81
a.b.deep IN TXT "deep"
sub IN NS ns.sub
ns.sub IN A 192.0.2.99
ns.sub IN AAAA 2001:db8::99
x.ns.sub IN TXT "hidden below the cut"
www IN TXT "beside a service"
"#;

/// Wire form of a textual name, lower-cased (independent of the code under test).
fn wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend(label.to_ascii_lowercase().bytes());
    }
    out.push(0);
    out
}

/// Offsets of each label of a wire name, including the root label.
fn label_offsets(w: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    loop {
        v.push(i as u8);
        if w[i] == 0 {
            return v;
        }
        i += 1 + w[i] as usize;
    }
}

fn parse(text: &str, origin: &str) -> Vec<ParsedRRset> {
    match parse_text(text, None, FILE, origin) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

fn build(zones: &[(&str, &str, &str)], services: &[(&str, u32)]) -> Result<Table, Vec<ZoneError>> {
    let inputs = zones
        .iter()
        .map(|&(name, file, text)| ZoneInput {
            name,
            file,
            rrsets: match parse_text(text, None, file, name) {
                Ok(v) => v,
                Err(e) => panic!("{e}"),
            },
        })
        .collect();
    Table::build(inputs, services)
}

fn table() -> Table {
    match build(
        &[("example.test.", FILE, ZONE)],
        &[("www.example.test.", 7)],
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e:#?}"),
    }
}

fn look<'a>(t: &'a Table, name: &str, qtype: u16) -> Lookup<'a> {
    let w = wire(name);
    t.lookup(&w, &label_offsets(&w), qtype)
}

fn found<'a>(t: &'a Table, name: &str) -> &'a Node {
    match look(t, name, rtype::A) {
        Lookup::Found(n) => n,
        other => panic!("{name}: expected Found, got {other:?}"),
    }
}

fn build_errors(zones: &[(&str, &str, &str)], services: &[(&str, u32)]) -> Vec<String> {
    match build(zones, services) {
        Ok(_) => panic!("expected zone errors"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// The RDATA of every record of an RRset.
fn rdatas(rr: &RRset) -> Vec<Vec<u8>> {
    (0..rr.count as usize)
        .map(|i| rr.rdata(i).to_vec())
        .collect()
}

/// Type numbers the production `rtype` module does not name.
mod rtype {
    pub use super::super::rtype::*;
    pub const MX_TYPE: u16 = 15;
    pub const TXT_TYPE: u16 = 16;
    pub const SRV_TYPE: u16 = 33;
    pub const CAA_TYPE: u16 = 257;
}

/// The least a zone needs: SOA, NS and the NS's address.
const GOOD_HEAD: &str = "$TTL 60\n@ IN SOA ns hm 1 2 3 4 5\n@ IN NS ns\nns IN A 192.0.2.1\n";

#[test]
fn wire_names_and_the_soa_serial_are_found_and_bounded() {
    assert_eq!(wire_name_len(b"\x03www\x07example\x00rest", 0), Some(13));
    assert_eq!(wire_name_len(b"\x00", 0), Some(1));
    assert_eq!(wire_name_len(b"\x03ww", 0), None, "past the end");
    assert_eq!(wire_name_len(b"\xc0\x0c", 0), None, "a compression pointer");
    let mut rdata = b"\x03ns1\x00\x04host\x00".to_vec();
    rdata.extend_from_slice(&2026120701u32.to_be_bytes());
    rdata.extend_from_slice(&[0; 16]);
    assert_eq!(soa_serial_offset(&rdata), Some(11));
    assert_eq!(soa_serial_offset(&rdata[..13]), None, "a serial cut short");
}
