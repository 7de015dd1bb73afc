//! What zone transfers carry (SPEC §10), made when a configuration is
//! compiled: the zone's static records, each service's declared
//! `fallback` addresses (a service without one is left out), and for a
//! signed zone their RRSIGs, the DNSKEY set and a regular NSEC chain over
//! the names transferred, so a secondary serves a fixed, declared,
//! verifiable answer, never a stale health state.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, TSigner};
use ipnet::IpNet;

use crate::config::{Config, TsigKey};
use crate::dnssec::{self, Signed, ZoneSigner};
use crate::zone::{Node, RRset, Table, rtype};

/// One zone as `[zones."name".transfer]` gives it out.
pub struct Transfer {
    /// Who may transfer it.
    pub allow: Vec<IpNet>,
    /// The key every transfer must be signed with.
    pub tsig: Option<(TsigKey, TSigner)>,
    /// Secondaries told when the serial changes.
    pub notify: Vec<SocketAddr>,
    /// The SOA serial.
    pub serial: u32,
    /// The SOA record (owner, type, class, TTL, RDATA): first and last.
    pub soa: Box<[u8]>,
    /// Every other record, in canonical order of their names.
    pub records: Vec<Box<[u8]>>,
}

impl Transfer {
    /// The same records apart from their signatures (ECDSA signatures
    /// differ at every signing).
    pub fn same_data(&self, other: &Transfer) -> bool {
        self.soa == other.soa && data(&self.records).eq(data(&other.records))
    }
}

/// The records that are not signatures.
fn data(records: &[Box<[u8]>]) -> impl Iterator<Item = &[u8]> {
    records
        .iter()
        .map(|r| &**r)
        .filter(|r| rtype_of(r) != Some(rtype::RRSIG))
}

/// The type of a whole wire record (after its uncompressed owner).
fn rtype_of(rec: &[u8]) -> Option<u16> {
    let n = crate::zone::wire_name_len(rec, 0)?;
    Some(u16::from_be_bytes([*rec.get(n)?, *rec.get(n + 1)?]))
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("serial", &self.serial)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

/// The transfers of every zone that has a `transfer` table, by zone index.
/// Zones in `waiting` (taken from a primary, no copy yet) are not given
/// out: a secondary must not load a placeholder.
pub(super) fn build_all(
    config: &Config,
    table: &Table,
    signed: Option<&Signed>,
    waiting: &[String],
) -> Result<Vec<Option<Arc<Transfer>>>, String> {
    let mut out = Vec::with_capacity(config.zones.len());
    for (zi, z) in config.zones.iter().enumerate() {
        let Some(t) = z.transfer.as_ref().filter(|_| !waiting.contains(&z.name)) else {
            out.push(None);
            continue;
        };
        let tsig = match &t.tsig {
            Some(name) => {
                let key = config
                    .tsig
                    .get(name)
                    .ok_or_else(|| format!("zone {}: unknown TSIG key {name}", z.name))?;
                Some((key.clone(), key.signer()?))
            }
            None => None,
        };
        let signer = signed.and_then(|s| s.zone(zi as u16));
        let neg = signed
            .and_then(|s| s.negative_ttl.get(zi).copied())
            .unwrap_or(0);
        let (serial, soa, records) = zone_records(config, table, zi, signed, signer, neg)
            .map_err(|e| format!("zone {}: transfer: {e}", z.name))?;
        out.push(Some(Arc::new(Transfer {
            allow: t.allow.clone(),
            tsig,
            notify: t.notify.clone(),
            serial,
            soa,
            records,
        })));
    }
    Ok(out)
}

/// A name of the zone with what it holds for transfers.
struct Entry<'a> {
    name: Name,
    wire: &'a [u8],
    node: &'a Node,
    /// The service's fallback addresses, by family.
    fallback: [Vec<IpAddr>; 2],
    ttl: u32,
}

#[allow(clippy::type_complexity)]
fn zone_records(
    config: &Config,
    table: &Table,
    zi: usize,
    signed: Option<&Signed>,
    signer: Option<&ZoneSigner>,
    negative_ttl: u32,
) -> Result<(u32, Box<[u8]>, Vec<Box<[u8]>>), String> {
    let apex = &table.zones.get(zi).ok_or("no such zone")?.apex;
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (wire, node) in table.names() {
        if node.zone as usize != zi {
            continue;
        }
        let mut fallback: [Vec<IpAddr>; 2] = [Vec::new(), Vec::new()];
        let mut ttl = 0;
        if let Some(si) = node.service
            && let Some(sv) = config.services.get(si as usize)
        {
            for a in &sv.fallback {
                fallback[usize::from(a.is_ipv6())].push(*a);
            }
            ttl = sv.ttl;
        }
        if node.rrsets.is_empty() && fallback.iter().all(Vec::is_empty) {
            continue; // an empty non-terminal, or a service without fallback
        }
        entries.push(Entry {
            name: dnssec::sign::wire_name(wire)?,
            wire,
            node,
            fallback,
            ttl,
        });
    }
    // canonical order (RFC 4034 §6.1), hickory's
    entries.sort_by(|a, b| a.name.cmp(&b.name));

    let mut soa = None;
    let mut records: Vec<Box<[u8]>> = Vec::new();
    let mut chain: Vec<(usize, Vec<u16>)> = Vec::new();
    for (ei, e) in entries.iter().enumerate() {
        let below_cut = e.node.cut.is_some_and(|c| c != e.node.id);
        let at_apex = *e.wire == **apex;
        let mut types = Vec::new();
        for (i, rr) in e.node.rrsets.iter().enumerate() {
            types.push(rr.rtype);
            for r in 0..rr.count as usize {
                let rec = record(e.wire, rr, r);
                if at_apex && rr.rtype == rtype::SOA {
                    soa = Some(rec);
                } else {
                    records.push(rec);
                }
            }
            if let Some(sigs) = signed.and_then(|s| s.rrset(e.node.id, i)) {
                push_all(&mut records, e.wire, sigs);
            }
        }
        for (fam, addrs) in e.fallback.iter().enumerate() {
            if addrs.is_empty() || below_cut {
                continue;
            }
            let (t, rdatas): (u16, Vec<RData>) = if fam == 0 {
                (rtype::A, addrs.iter().filter_map(|a| v4(*a)).collect())
            } else {
                (rtype::AAAA, addrs.iter().filter_map(|a| v6(*a)).collect())
            };
            let set = RRset::encode(t, e.ttl, &rdatas)?;
            push_all(&mut records, e.wire, &set);
            if let Some(zs) = signer {
                let sigs = zs.sign(&e.name, t, e.ttl, e.ttl, &rdatas)?;
                push_all(&mut records, e.wire, &sigs);
            }
            types.push(t);
        }
        if !below_cut {
            chain.push((ei, types));
        }
    }
    // the regular NSEC chain of a signed zone, over the names transferred
    if let Some(zs) = signer {
        for (k, (ei, types)) in chain.iter().enumerate() {
            let e = &entries[*ei];
            let next = &entries[chain[(k + 1) % chain.len()].0].name;
            let rd = dnssec::denial::chain(next, types);
            let set = RRset::encode(rtype::NSEC, negative_ttl, std::slice::from_ref(&rd))?;
            push_all(&mut records, e.wire, &set);
            let sigs = zs.sign(&e.name, rtype::NSEC, negative_ttl, negative_ttl, &[rd])?;
            push_all(&mut records, e.wire, &sigs);
        }
    }
    let soa = soa.ok_or("no SOA at the apex")?;
    let serial = soa_serial(&soa, apex.len()).ok_or("unreadable SOA")?;
    Ok((serial, soa, records))
}

fn v4(a: IpAddr) -> Option<RData> {
    match a {
        IpAddr::V4(v) => Some(RData::A(A(v))),
        IpAddr::V6(_) => None,
    }
}

fn v6(a: IpAddr) -> Option<RData> {
    match a {
        IpAddr::V6(v) => Some(RData::AAAA(AAAA(v))),
        IpAddr::V4(_) => None,
    }
}

/// Record `i` of `rr` with its owner: a whole wire record.
fn record(owner: &[u8], rr: &RRset, i: usize) -> Box<[u8]> {
    let start = rr.offsets[i] as usize;
    let end = rr.offsets.get(i + 1).map_or(rr.wire.len(), |&e| e as usize);
    let mut v = Vec::with_capacity(owner.len() + end - start);
    v.extend_from_slice(owner);
    v.extend_from_slice(&rr.wire[start..end]);
    v.into_boxed_slice()
}

fn push_all(out: &mut Vec<Box<[u8]>>, owner: &[u8], rr: &RRset) {
    for i in 0..rr.count as usize {
        out.push(record(owner, rr, i));
    }
}

/// The serial of a whole SOA record whose owner is `owner_len` bytes.
fn soa_serial(rec: &[u8], owner_len: usize) -> Option<u32> {
    let rdata = rec.get(owner_len + 10..)?;
    let at = crate::zone::soa_serial_offset(rdata)?;
    let s = rdata.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}
