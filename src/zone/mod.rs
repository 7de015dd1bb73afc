//! Static zone data: zone files parsed into RRsets pre-encoded in wire
//! format, and [`Table`], one hash map from lowercase wire names to nodes,
//! so that a lookup is a few hash probes with no lock and no scan (unlike
//! hickory's `InMemoryZoneHandler`, which takes a RwLock per lookup and
//! walks every name on NXDOMAIN).

mod parse;

use std::fmt;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use rustc_hash::FxHashMap;

pub use parse::{ParsedRRset, WIRE_MAGIC, parse_file, parse_text, parse_wire, write_wire};

/// RR type numbers used on the answer path.
pub mod rtype {
    /// A.
    pub const A: u16 = 1;
    /// NS.
    pub const NS: u16 = 2;
    /// CNAME.
    pub const CNAME: u16 = 5;
    /// SOA.
    pub const SOA: u16 = 6;
    /// AAAA.
    pub const AAAA: u16 = 28;
    /// DS.
    pub const DS: u16 = 43;
    /// OPT.
    pub const OPT: u16 = 41;
    /// RRSIG.
    pub const RRSIG: u16 = 46;
    /// NSEC.
    pub const NSEC: u16 = 47;
    /// DNSKEY.
    pub const DNSKEY: u16 = 48;
    /// NSEC3.
    pub const NSEC3: u16 = 50;
    /// NSEC3PARAM.
    pub const NSEC3PARAM: u16 = 51;
    /// CDS.
    pub const CDS: u16 = 59;
    /// CDNSKEY.
    pub const CDNSKEY: u16 = 60;
    /// NXNAME (RFC 9824): a meta type that only ever appears in an NSEC
    /// bitmap of compact denial; a query for it is FORMERR.
    pub const NXNAME: u16 = 128;
    /// IXFR.
    pub const IXFR: u16 = 251;
    /// AXFR.
    pub const AXFR: u16 = 252;
    /// ANY.
    pub const ANY: u16 = 255;
}

/// A zone file problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ZoneError {
    /// The file as named in the config.
    pub file: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl ZoneError {
    fn new(file: &str, line: Option<usize>, reason: impl Into<String>) -> Self {
        ZoneError {
            file: file.to_string(),
            line,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// An RRset in wire format, without owner names: for each record
/// `TYPE CLASS TTL RDLENGTH RDATA`, so writing it is one pointer to the
/// owner plus a copy per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RRset {
    /// Record type.
    pub rtype: u16,
    /// Records in the set.
    pub count: u16,
    /// Concatenated records (see type docs).
    pub wire: Box<[u8]>,
    /// Offset of each record in `wire`.
    pub offsets: Box<[u16]>,
}

impl RRset {
    /// Encodes RDATA into a wire RRset; names inside RDATA are written
    /// uncompressed so the bytes can be copied into any message.
    pub fn encode(rtype: u16, ttl: u32, rdatas: &[RData]) -> Result<RRset, String> {
        let mut wire = Vec::new();
        let mut offsets = Vec::new();
        for rd in rdatas {
            let mut buf = Vec::new();
            let mut enc = BinEncoder::new(&mut buf);
            enc.set_name_encoding(NameEncoding::Uncompressed);
            rd.emit(&mut enc)
                .map_err(|e| format!("cannot encode {rtype} record: {e}"))?;
            if buf.len() > 65535 {
                return Err("record data longer than 65535 bytes".into());
            }
            offsets.push(
                u16::try_from(wire.len()).map_err(|_| "RRset larger than 64 KiB".to_string())?,
            );
            wire.extend_from_slice(&rtype.to_be_bytes());
            wire.extend_from_slice(&1u16.to_be_bytes());
            wire.extend_from_slice(&ttl.to_be_bytes());
            wire.extend_from_slice(&(buf.len() as u16).to_be_bytes());
            wire.extend_from_slice(&buf);
        }
        if wire.len() > 65535 {
            return Err("RRset larger than 64 KiB".into());
        }
        Ok(RRset {
            rtype,
            count: rdatas.len() as u16,
            wire: wire.into_boxed_slice(),
            offsets: offsets.into_boxed_slice(),
        })
    }

    /// TTL of the `i`th record.
    pub fn ttl(&self, i: usize) -> u32 {
        let off = self.offsets.get(i).map_or(0, |&o| o as usize);
        self.wire
            .get(off + 4..off + 8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// RDATA of the `i`th record.
    pub fn rdata(&self, i: usize) -> &[u8] {
        let off = self.offsets[i] as usize;
        let len = u16::from_be_bytes([self.wire[off + 8], self.wire[off + 9]]) as usize;
        &self.wire[off + 10..off + 10 + len]
    }
}

/// Lowercase wire form of a name.
pub fn name_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// Lowercase wire form of a normalized textual name (`"www.example.test."`).
pub fn text_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    out
}

/// Textual form of a wire name (for logs and the admin API).
pub fn wire_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while i < wire.len() && wire[i] != 0 {
        let l = wire[i] as usize;
        let label = wire.get(i + 1..i + 1 + l).unwrap_or(&[]);
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
        i += 1 + l;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Offsets of the labels of a wire name, ending with the root label.
fn label_starts(wire: &[u8]) -> Vec<usize> {
    let mut offsets = [0u8; 128];
    let n = label_offsets(wire, &mut offsets);
    offsets[..n].iter().map(|&o| o as usize).collect()
}

/// Writes the label start offsets of a wire name (the root label
/// included) into `out`, as [`Table::lookup`] takes them; returns how many.
pub fn label_offsets(name: &[u8], out: &mut [u8; 128]) -> usize {
    let mut i = 0;
    let mut n = 0;
    while i < name.len() && n < out.len() {
        out[n] = i as u8;
        n += 1;
        if name[i] == 0 {
            break;
        }
        i += 1 + name[i] as usize;
    }
    n
}

/// A referral from a zone cut below an apex.
#[derive(Debug, Clone)]
pub struct Referral {
    /// The NS RRset at the cut.
    pub ns: RRset,
    /// Glue addresses: (owner wire name, A or AAAA RRset).
    pub glue: Vec<(Box<[u8]>, RRset)>,
}

/// A name in a served zone.
#[derive(Debug, Clone)]
pub struct Node {
    /// Index of its zone in [`Table::zones`].
    pub zone: u16,
    /// Static RRsets, sorted by type.
    pub rrsets: Vec<RRset>,
    /// Lowercase wire target when the name is a CNAME.
    pub cname: Option<Box<[u8]>>,
    /// The service computed at this name, if any.
    pub service: Option<u32>,
    /// The node of the nearest zone cut at or above this name (not the
    /// apex): names at or below it are answered with a referral.
    pub cut: Option<u32>,
    /// Referral data when this node is itself a cut.
    pub referral: Option<Referral>,
    /// Length of the node's wire name.
    pub name_len: u8,
    /// Its index in the table (signatures are kept by it).
    pub id: u32,
}

impl Node {
    /// The RRset of a type.
    pub fn rrset(&self, t: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == t)
    }

    /// Where the RRset of a type is in [`Node::rrsets`].
    pub fn rrset_index(&self, t: u16) -> Option<usize> {
        self.rrsets.iter().position(|r| r.rtype == t)
    }
}

/// Zone-level data used in negative answers.
#[derive(Debug, Clone)]
pub struct ZoneInfo {
    /// Lowercase fully qualified name.
    pub name: String,
    /// Lowercase wire name.
    pub apex: Box<[u8]>,
    /// SOA with TTL = min(SOA TTL, SOA minimum), for negative answers.
    pub soa_negative: RRset,
    /// Number of RRsets loaded (for status).
    pub rrsets: usize,
    /// The SOA serial.
    pub serial: u32,
}

/// Result of [`Table::lookup`].
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// The name exists.
    Found(&'a Node),
    /// The name does not exist, but a wildcard covers it.
    Wildcard(&'a Node),
    /// The name is at or below a delegation: refer.
    Referral(&'a Node),
    /// The name does not exist in zone `zone`.
    NxDomain {
        /// Zone index.
        zone: u16,
    },
    /// No served zone contains the name.
    NotAuth,
}

/// All served zones in one lookup table.
#[derive(Debug, Default, Clone)]
pub struct Table {
    /// Zones, in the order given to [`Table::build`].
    pub zones: Vec<ZoneInfo>,
    nodes: Vec<Node>,
    index: FxHashMap<Box<[u8]>, u32>,
}

/// One zone to put into the table.
pub struct ZoneInput<'a> {
    /// Normalized name.
    pub name: &'a str,
    /// File name for errors.
    pub file: &'a str,
    /// Its records.
    pub rrsets: Vec<ParsedRRset>,
}

impl Table {
    /// Builds the table from parsed zones and the service names (normalized,
    /// with their index). Reports every problem found.
    pub fn build(
        zones: Vec<ZoneInput<'_>>,
        services: &[(&str, u32)],
    ) -> Result<Table, Vec<ZoneError>> {
        let mut b = Builder::new(&zones);
        for zi in 0..zones.len() {
            b.add_zone(zi);
        }
        b.add_services(services);
        b.check_cnames();
        b.t.add_ancestors(&b.apexes);
        b.t.find_cuts(&b.apexes);
        b.check_services_above_cuts(services);
        b.finish()
    }

    fn node(&mut self, wire: &[u8], zone: u16) -> u32 {
        if let Some(&id) = self.index.get(wire) {
            return id;
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            zone,
            rrsets: Vec::new(),
            cname: None,
            service: None,
            cut: None,
            referral: None,
            name_len: wire.len() as u8,
            id,
        });
        self.index.insert(wire.to_vec().into_boxed_slice(), id);
        id
    }

    /// Empty non-terminals: every ancestor of a node that lies in a served
    /// zone exists, owned by the deepest zone containing it (so the names
    /// between a parent apex and a served child apex exist too).
    fn add_ancestors(&mut self, apexes: &[Vec<u8>]) {
        let names: Vec<Box<[u8]>> = self.index.keys().cloned().collect();
        for name in names {
            for start in label_starts(&name).into_iter().skip(1) {
                let suffix = &name[start..];
                match deepest_zone(apexes, suffix).map(|i| i as u16) {
                    Some(z) => {
                        let suffix = suffix.to_vec();
                        self.node(&suffix, z);
                    }
                    None => break,
                }
            }
        }
    }

    /// Marks names at or below a delegation (NS below an apex) and prepares
    /// referral data with glue.
    fn find_cuts(&mut self, apexes: &[Vec<u8>]) {
        let keys: Vec<(Box<[u8]>, u32)> = self.index.iter().map(|(k, &v)| (k.clone(), v)).collect();
        for (name, id) in &keys {
            let zone = self.nodes[*id as usize].zone as usize;
            let apex = &apexes[zone];
            // Highest cut above or at this name wins (it hides the lower ones).
            let mut cut = None;
            for start in label_starts(name).into_iter().rev() {
                let suffix = &name[start..];
                if suffix.len() <= apex.len() {
                    continue;
                }
                if let Some(&sid) = self.index.get(suffix)
                    && self.nodes[sid as usize].rrset(rtype::NS).is_some()
                {
                    cut = Some(sid);
                    break;
                }
            }
            self.nodes[*id as usize].cut = cut;
        }
        let cuts: Vec<u32> = self
            .nodes
            .iter()
            .filter_map(|n| n.cut)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for cid in cuts {
            let Some(ns) = self.nodes[cid as usize].rrset(rtype::NS).cloned() else {
                continue;
            };
            let mut glue = Vec::new();
            for i in 0..ns.count as usize {
                let target = ns.rdata(i).to_ascii_lowercase();
                if let Some(&tid) = self.index.get(target.as_slice()) {
                    for t in [rtype::A, rtype::AAAA] {
                        if let Some(rr) = self.nodes[tid as usize].rrset(t) {
                            glue.push((target.clone().into_boxed_slice(), rr.clone()));
                        }
                    }
                }
            }
            self.nodes[cid as usize].referral = Some(Referral { ns, glue });
        }
    }

    /// Looks up a lowercase wire name. `labels` are the offsets of its
    /// labels (as produced by the packet parser), `qtype` decides whether a
    /// DS query at a cut is answered from the parent side.
    pub fn lookup(&self, name: &[u8], labels: &[u8], qtype: u16) -> Lookup<'_> {
        if let Some(&id) = self.index.get(name) {
            let n = &self.nodes[id as usize];
            return match n.cut {
                Some(c) if !(c == id && qtype == rtype::DS) => {
                    Lookup::Referral(&self.nodes[c as usize])
                }
                _ => Lookup::Found(n),
            };
        }
        // Closest encloser: strip labels until a name exists.
        let mut buf = [0u8; 257];
        for &start in labels.iter().skip(1) {
            let suffix = &name[start as usize..];
            let Some(&id) = self.index.get(suffix) else {
                continue;
            };
            let enc = &self.nodes[id as usize];
            if let Some(c) = enc.cut {
                return Lookup::Referral(&self.nodes[c as usize]);
            }
            // RFC 4592: a wildcard at the closest encloser covers the name.
            buf[0] = 1;
            buf[1] = b'*';
            buf[2..2 + suffix.len()].copy_from_slice(suffix);
            if let Some(&wid) = self.index.get(&buf[..2 + suffix.len()]) {
                return Lookup::Wildcard(&self.nodes[wid as usize]);
            }
            return Lookup::NxDomain { zone: enc.zone };
        }
        Lookup::NotAuth
    }

    /// Looks up a lowercase wire name exactly (CNAME chasing).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.index.get(name).map(|&id| &self.nodes[id as usize])
    }

    /// Every name with its node, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.index
            .iter()
            .map(|(k, &id)| (&**k, &self.nodes[id as usize]))
    }

    /// Replaces the RRsets of the types `remove` at an existing name by
    /// `add` (the apex key sets a signer makes); false when there is no
    /// such name.
    pub fn replace_rrsets(&mut self, name: &[u8], remove: &[u16], add: Vec<RRset>) -> bool {
        let Some(&id) = self.index.get(name) else {
            return false;
        };
        let node = &mut self.nodes[id as usize];
        node.rrsets.retain(|r| !remove.contains(&r.rtype));
        node.rrsets.extend(add);
        node.rrsets.sort_by_key(|r| r.rtype);
        true
    }

    /// Sets the SOA serial of zone `zi` (its apex SOA and the SOA of its
    /// negative answers); false when the zone or its SOA is missing.
    pub fn set_soa_serial(&mut self, zi: usize, serial: u32) -> bool {
        let Some(z) = self.zones.get_mut(zi) else {
            return false;
        };
        let ok = patch_serial(&mut z.soa_negative, serial);
        z.serial = serial;
        let Some(&id) = self.index.get(&z.apex) else {
            return false;
        };
        let node = &mut self.nodes[id as usize];
        let Some(soa) = node.rrsets.iter_mut().find(|r| r.rtype == rtype::SOA) else {
            return false;
        };
        ok && patch_serial(soa, serial)
    }

    /// Number of names in the table.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no zone is loaded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The zone a name belongs to: the deepest served zone containing it.
fn deepest_zone(apexes: &[Vec<u8>], wire: &[u8]) -> Option<usize> {
    apexes
        .iter()
        .enumerate()
        .filter(|(_, a)| wire_in(wire, a))
        .max_by_key(|(_, a)| a.len())
        .map(|(i, _)| i)
}

/// What a zone's records said about its apex, while they are added.
#[derive(Default)]
struct ApexSeen {
    soa: Option<ParsedRRset>,
    ns: bool,
    /// RRsets added.
    count: usize,
}

/// [`Table::build`] step by step: the table so far and every problem
/// found so far.
struct Builder<'a> {
    zones: &'a [ZoneInput<'a>],
    /// Lowercase wire name of each zone's apex, by zone index.
    apexes: Vec<Vec<u8>>,
    t: Table,
    errors: Vec<ZoneError>,
}

impl<'a> Builder<'a> {
    fn new(zones: &'a [ZoneInput<'a>]) -> Builder<'a> {
        Builder {
            zones,
            apexes: zones.iter().map(|z| text_wire(z.name)).collect(),
            t: Table::default(),
            errors: Vec::new(),
        }
    }

    fn error(&mut self, file: &str, reason: impl Into<String>) {
        self.errors.push(ZoneError::new(file, None, reason));
    }

    /// Adds the records of zone `zi`, then its [`ZoneInfo`] (which needs
    /// an SOA at the apex) and its apex node.
    fn add_zone(&mut self, zi: usize) {
        let z = &self.zones[zi];
        let mut seen = ApexSeen::default();
        for set in &z.rrsets {
            self.add_rrset(zi, set, &mut seen);
        }
        match seen.soa {
            None => self.error(z.file, format!("no SOA record at the apex {}", z.name)),
            Some(s) => {
                if let Some(RData::SOA(soa)) = s.rdatas.first() {
                    let neg = s.ttl.min(soa.minimum);
                    match RRset::encode(rtype::SOA, neg, &s.rdatas) {
                        Ok(rr) => self.t.zones.push(ZoneInfo {
                            name: z.name.to_string(),
                            apex: self.apexes[zi].clone().into_boxed_slice(),
                            soa_negative: rr,
                            rrsets: seen.count,
                            serial: soa.serial,
                        }),
                        Err(e) => self.error(z.file, format!("SOA: {e}")),
                    }
                }
            }
        }
        if !seen.ns {
            self.error(z.file, format!("no NS records at the apex {}", z.name));
        }
        // Make sure the apex exists even when all its records failed.
        self.t.node(&self.apexes[zi], zi as u16);
    }

    /// Adds one RRset of zone `zi`, unless it is wrong there or belongs
    /// to a served child zone (whose file wins); notes the apex SOA and NS.
    fn add_rrset(&mut self, zi: usize, set: &ParsedRRset, seen: &mut ApexSeen) {
        let z = &self.zones[zi];
        let apex = &self.apexes[zi];
        let owner = name_wire(&set.name);
        let owner_txt = set.name.to_lowercase().to_ascii();
        if !wire_in(&owner, apex) {
            let reason = format!("{owner_txt} {}: outside zone {}", set.rtype, z.name);
            return self.error(z.file, reason);
        }
        if deepest_zone(&self.apexes, &owner) != Some(zi) {
            return;
        }
        let rt = u16::from(set.rtype);
        if rt == rtype::SOA {
            if owner != *apex {
                return self.error(z.file, format!("{owner_txt} SOA: SOA only at the apex"));
            }
            if set.rdatas.len() != 1 {
                let reason = format!("{owner_txt} SOA: exactly one SOA record is allowed");
                return self.error(z.file, reason);
            }
            seen.soa = Some(set.clone());
        }
        if rt == rtype::NS && owner == *apex {
            seen.ns = true;
        }
        if set.rtype == RecordType::OPT
            || rt == rtype::ANY
            || rt == rtype::AXFR
            || rt == rtype::IXFR
        {
            let reason = format!(
                "{owner_txt}: {} is not a record type for zone files",
                set.rtype
            );
            return self.error(z.file, reason);
        }
        let rr = match RRset::encode(rt, set.ttl, &set.rdatas) {
            Ok(r) => r,
            Err(e) => return self.error(z.file, format!("{owner_txt} {}: {e}", set.rtype)),
        };
        if rt == rtype::CNAME && set.rdatas.len() > 1 {
            let reason = format!("{owner_txt} CNAME: only one CNAME record is allowed");
            self.error(z.file, reason);
        }
        let id = self.t.node(&owner, zi as u16);
        let node = &mut self.t.nodes[id as usize];
        if rt == rtype::CNAME
            && let Some(RData::CNAME(c)) = set.rdatas.first()
        {
            node.cname = Some(name_wire(&c.0).into_boxed_slice());
        }
        seen.count += 1;
        node.rrsets.push(rr);
    }

    /// Services: a node each; no static address records and no CNAME
    /// beside them.
    fn add_services(&mut self, services: &[(&str, u32)]) {
        for &(name, idx) in services {
            let wire = text_wire(name);
            let Some(zi) = deepest_zone(&self.apexes, &wire) else {
                self.error(name, "service is outside every zone");
                continue;
            };
            let id = self.t.node(&wire, zi as u16);
            let node = &mut self.t.nodes[id as usize];
            for rt in [rtype::A, rtype::AAAA, rtype::CNAME] {
                if node.rrset(rt).is_some() {
                    let rt_name = RecordType::from(rt);
                    self.errors.push(ZoneError::new(
                        self.zones[zi].file,
                        None,
                        format!("{name} {rt_name}: a service name cannot also have static {rt_name} records"),
                    ));
                }
            }
            node.service = Some(idx);
        }
    }

    /// A CNAME must be alone at its name, and not at an apex.
    fn check_cnames(&mut self) {
        for (key, &id) in &self.t.index {
            let n = &self.t.nodes[id as usize];
            if n.cname.is_none() {
                continue;
            }
            let file = self.zones[n.zone as usize].file;
            if n.rrsets.len() > 1 {
                self.errors.push(ZoneError::new(
                    file,
                    None,
                    format!("{}: CNAME and other data at the same name", wire_text(key)),
                ));
            }
            if **key == *self.apexes[n.zone as usize] {
                self.errors.push(ZoneError::new(
                    file,
                    None,
                    format!("{}: CNAME at the zone apex", wire_text(key)),
                ));
            }
        }
    }

    /// A service cannot be at or below a zone cut (once the cuts are found).
    fn check_services_above_cuts(&mut self, services: &[(&str, u32)]) {
        for &(name, _) in services {
            let wire = text_wire(name);
            if let Some(&id) = self.t.index.get(wire.as_slice())
                && self.t.nodes[id as usize].cut.is_some()
            {
                let file = self.zones[self.t.nodes[id as usize].zone as usize].file;
                self.error(file, format!("{name}: a service cannot be at or below a delegation (NS records below the apex)"));
            }
        }
    }

    /// The table, its RRsets sorted by type; or every error, sorted.
    fn finish(mut self) -> Result<Table, Vec<ZoneError>> {
        for n in &mut self.t.nodes {
            n.rrsets.sort_by_key(|r| r.rtype);
        }
        if self.errors.is_empty() {
            Ok(self.t)
        } else {
            let mut errors = self.errors;
            errors.sort_by(|a, b| a.file.cmp(&b.file).then(a.reason.cmp(&b.reason)));
            Err(errors)
        }
    }
}

/// Writes `serial` into the (single) SOA record of `rr`.
fn patch_serial(rr: &mut RRset, serial: u32) -> bool {
    let rdata = 10; // TYPE CLASS TTL RDLENGTH
    let at = rr
        .wire
        .get(rdata..)
        .and_then(soa_serial_offset)
        .map(|o| rdata + o);
    match at.and_then(|a| rr.wire.get_mut(a..a + 4)) {
        Some(b) => {
            b.copy_from_slice(&serial.to_be_bytes());
            true
        }
        None => false,
    }
}

/// The length of the uncompressed wire name at `p[i..]`; `None` when it
/// runs past the end or holds a compression pointer.
pub fn wire_name_len(p: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    loop {
        let l = *p.get(j)? as usize;
        if l & 0xc0 != 0 {
            return None;
        }
        j += 1;
        if l == 0 {
            return Some(j - i);
        }
        j += l;
    }
}

/// Where the serial lies in an SOA's RDATA (after MNAME and RNAME).
pub fn soa_serial_offset(rdata: &[u8]) -> Option<usize> {
    let mname = wire_name_len(rdata, 0)?;
    let rname = wire_name_len(rdata, mname)?;
    (rdata.len() >= mname + rname + 4).then_some(mname + rname)
}

/// True if wire name `name` equals or lies below wire name `apex`.
pub fn wire_in(name: &[u8], apex: &[u8]) -> bool {
    if apex.len() > name.len() {
        return false;
    }
    if apex == [0] {
        return true;
    }
    let start = name.len() - apex.len();
    // the suffix must begin at a label boundary
    name[start..] == *apex && label_starts(name).contains(&start)
}

#[cfg(test)]
mod tests;
