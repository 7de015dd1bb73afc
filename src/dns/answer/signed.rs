//! The signed parts of an answer (SPEC §9), for a client that set the DO
//! bit: RRSIGs copied from the snapshot's signatures, compact denial
//! (RFC 9824), and the names that exist only in the query (a name that
//! does not exist, a wildcard expansion) or the rare answer sets too many
//! to sign ahead, signed on first use into the worker's cache.

use std::net::IpAddr;

use super::{Ctx, Owner, Resp, SetOwner, write_rrset, write_soa};
use crate::dnssec::{self, Signed};
use crate::steer::Family;
use crate::zone::{Node, RRset, Table, rtype};

use crate::dns::wire::{Full, Query, Writer, rcode};

/// What signing a response takes: the signatures when the client set DO
/// (whether the zone at hand is signed is asked per zone), and its CO.
#[derive(Clone, Copy)]
pub(super) struct Sig<'s> {
    pub(super) signed: Option<&'s Signed>,
    pub(super) compact_ok: bool,
}

impl<'s> Sig<'s> {
    /// The signatures and signer of zone `z`, when the client asked and
    /// the zone is signed.
    #[inline]
    pub(super) fn zone(self, z: u16) -> Option<(&'s Signed, &'s dnssec::ZoneSigner)> {
        let s = self.signed?;
        Some((s, s.zone(z)?))
    }
}

/// Kinds of on-demand signatures in a worker's cache.
pub(super) mod kind {
    /// An RRset at a wildcard expansion.
    pub const WILDCARD: u8 = 1;
    /// The NSEC of a name that does not exist.
    pub const NXNAME: u8 = 2;
    /// The NSEC of a wildcard expansion (NODATA).
    pub const WILDCARD_NSEC: u8 = 3;
    /// A service answer set not signed in advance.
    pub const SET: u8 = 4;
}

/// The RRSIGs of the `i`th RRset of `node` (signed ahead, or at a
/// wildcard expansion on first use), when the client asked.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_rrsig(
    w: &mut Writer<'_>,
    owner: Owner<'_>,
    owner_name: &[u8],
    node: &Node,
    i: usize,
    wild: bool,
    sig: Sig<'_>,
    ctx: &mut Ctx,
    count: &mut u16,
) -> Result<(), Full> {
    let Some((signed, zs)) = sig.zone(node.zone) else {
        return Ok(());
    };
    let sigs = if wild {
        let rr = &node.rrsets[i];
        let mut key = dnssec::cache::Key::new(kind::WILDCARD, rr.rtype);
        if !key.push(owner_name) {
            return Ok(());
        }
        let made = ctx
            .sigs
            .get_or_make(signed.generation, &key, &ctx.stats, || {
                let name = dnssec::sign::wire_name(owner_name).ok()?;
                let s = zs.sign_wire(&name, rr, rr.ttl(0)).ok()?;
                Some((None, s))
            });
        match made {
            Some(e) => &e.sigs,
            None => return Ok(()),
        }
    } else {
        match signed.rrset(node.id, i) {
            Some(s) => s,
            None => return Ok(()),
        }
    };
    write_rrset(w, owner, sigs)?;
    *count += sigs.count;
    Ok(())
}

/// NXDOMAIN at `name`: the SOA, and for a client that asked for
/// signatures the compact denial (RFC 9824): an NSEC at the name with
/// {RRSIG, NSEC, NXNAME}, and RCODE NXDOMAIN only when it set CO. A query
/// for the NSEC (or RRSIG) type itself gets that NSEC (or its RRSIG) as
/// its answer: under compact denial the name holds them.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_nxdomain(
    w: &mut Writer<'_>,
    table: &Table,
    zone: u16,
    q: &Query<'_>,
    owner: Owner<'_>,
    name: &[u8],
    sig: Sig<'_>,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<(), Full> {
    let Some((signed, zs)) = sig.zone(zone) else {
        r.rcode = rcode::NXDOMAIN;
        return write_soa(w, table, zone, q, sig, r);
    };
    let meta = matches!(q.qtype, rtype::NSEC | rtype::RRSIG);
    if !meta {
        r.rcode = if sig.compact_ok {
            rcode::NXDOMAIN
        } else {
            rcode::NOERROR
        };
        write_soa(w, table, zone, q, sig, r)?;
    }
    let Some((nsec, sigs)) = nxname_nsec(signed, zs, zone, name, ctx) else {
        return Ok(());
    };
    match q.qtype {
        rtype::NSEC => write_pair(w, owner, nsec, sigs, &mut r.an),
        rtype::RRSIG => {
            write_rrset(w, owner, sigs)?;
            r.an += sigs.count;
            Ok(())
        }
        _ => write_pair(w, owner, nsec, sigs, &mut r.ns),
    }
}

/// An NSEC and its RRSIGs, counted into `count`.
fn write_pair(
    w: &mut Writer<'_>,
    owner: Owner<'_>,
    nsec: &RRset,
    sigs: &RRset,
    count: &mut u16,
) -> Result<(), Full> {
    write_rrset(w, owner, nsec)?;
    write_rrset(w, owner, sigs)?;
    *count += nsec.count + sigs.count;
    Ok(())
}

/// The compact-denial NSEC of a name that does not exist, with its
/// RRSIGs: from the worker's cache, or signed now.
fn nxname_nsec<'c>(
    signed: &Signed,
    zs: &dnssec::ZoneSigner,
    zone: u16,
    name: &[u8],
    ctx: &'c mut Ctx,
) -> Option<(&'c RRset, &'c RRset)> {
    let mut key = dnssec::cache::Key::new(kind::NXNAME, rtype::NSEC);
    if !key.push(name) {
        return None;
    }
    let ttl = signed.negative_ttl.get(zone as usize).copied().unwrap_or(0);
    let e = ctx
        .sigs
        .get_or_make(signed.generation, &key, &ctx.stats, || {
            let owner = dnssec::sign::wire_name(name).ok()?;
            let rd = dnssec::denial::nxname(&owner)?;
            let rec = RRset::encode(rtype::NSEC, ttl, std::slice::from_ref(&rd)).ok()?;
            let s = zs.sign(&owner, rtype::NSEC, ttl, ttl, &[rd]).ok()?;
            Some((Some(rec), s))
        })?;
    Some((e.nsec.as_ref()?, &e.sigs))
}

/// The NSEC at an existing name (or a wildcard expansion), leaving out
/// the service families in `drop`, with its RRSIGs.
#[allow(clippy::too_many_arguments)]
fn node_nsec<'c>(
    signed: &'c Signed,
    zs: &dnssec::ZoneSigner,
    owner_name: &[u8],
    node: &Node,
    wild: bool,
    drop: u8,
    ctx: &'c mut Ctx,
) -> Option<(&'c RRset, &'c RRset)> {
    let (nsec, sigs) = signed.nsec(node.id, drop)?;
    if !wild {
        return Some((nsec, sigs));
    }
    // a wildcard expansion: the same bitmap as the wildcard, at this name
    let mut key = dnssec::cache::Key::new(kind::WILDCARD_NSEC, u16::from(drop));
    if !key.push(owner_name) {
        return None;
    }
    let ttl = signed
        .negative_ttl
        .get(node.zone as usize)
        .copied()
        .unwrap_or(0);
    let e = ctx
        .sigs
        .get_or_make(signed.generation, &key, &ctx.stats, || {
            let name = dnssec::sign::wire_name(owner_name).ok()?;
            let types = dnssec::sign::read_rdata(rtype::NSEC, nsec.rdata(0)).ok()?;
            let types: Vec<u16> = match &types {
                hickory_proto::rr::RData::DNSSEC(
                    hickory_proto::dnssec::rdata::DNSSECRData::NSEC(n),
                ) => n
                    .type_bit_maps()
                    .map(u16::from)
                    .filter(|&t| t != rtype::NSEC && t != rtype::RRSIG)
                    .collect(),
                _ => return None,
            };
            let rd = dnssec::denial::nsec(&name, &types)?;
            let rec = RRset::encode(rtype::NSEC, ttl, std::slice::from_ref(&rd)).ok()?;
            let s = zs.sign(&name, rtype::NSEC, ttl, ttl, &[rd]).ok()?;
            Some((Some(rec), s))
        })?;
    Some((e.nsec.as_ref()?, &e.sigs))
}

/// The NSEC of a NODATA answer at `node` (its types, less the service
/// families that had nothing to give), with its RRSIGs.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_nodata_nsec(
    w: &mut Writer<'_>,
    owner: Owner<'_>,
    owner_name: &[u8],
    node: &Node,
    wild: bool,
    drop: u8,
    sig: Sig<'_>,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<(), Full> {
    let Some((signed, zs)) = sig.zone(node.zone) else {
        return Ok(());
    };
    match node_nsec(signed, zs, owner_name, node, wild, drop, ctx) {
        Some((nsec, sigs)) => write_pair(w, owner, nsec, sigs, &mut r.ns),
        None => Ok(()),
    }
}

/// A query for the NSEC or RRSIG type at a name of a signed zone, from a
/// client that asked for signatures: the NSEC (with its RRSIGs), or every
/// RRSIG at the name, as the answer.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_meta(
    w: &mut Writer<'_>,
    owner: Owner<'_>,
    owner_name: &[u8],
    node: &Node,
    wild: bool,
    q: &Query<'_>,
    sig: Sig<'_>,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<(), Full> {
    let Some((signed, zs)) = sig.zone(node.zone) else {
        return Ok(());
    };
    if q.qtype == rtype::RRSIG {
        for i in 0..node.rrsets.len() {
            write_rrsig(w, owner, owner_name, node, i, wild, sig, ctx, &mut r.an)?;
        }
    }
    let Some((nsec, sigs)) = node_nsec(signed, zs, owner_name, node, wild, 0, ctx) else {
        return Ok(());
    };
    if q.qtype == rtype::NSEC {
        write_pair(w, owner, nsec, sigs, &mut r.an)
    } else {
        write_rrset(w, owner, sigs)?;
        r.an += sigs.count;
        Ok(())
    }
}

/// The RRSIGs of a service answer of `addrs`: signed ahead, or (a set
/// beyond the ones signed ahead, a wildcard expansion) on first use.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_set_rrsig(
    w: &mut Writer<'_>,
    (signed, zs): (&Signed, &dnssec::ZoneSigner),
    si: u32,
    fam: Family,
    ttl: u32,
    at: SetOwner<'_>,
    addrs: impl Iterator<Item = IpAddr>,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<(), Full> {
    let mut buf = [0u128; crate::steer::MAX_ANSWERS];
    let mut n = 0;
    for a in addrs.take(buf.len()) {
        buf[n] = dnssec::store::addr_key(a);
        n += 1;
    }
    buf[..n].sort_unstable();
    let n = dedup_sorted(&mut buf[..n]);
    let set = &buf[..n];
    let fi = usize::from(fam == Family::V6);
    let t = if fam == Family::V4 {
        rtype::A
    } else {
        rtype::AAAA
    };
    let ready = if at.wild {
        None
    } else {
        signed.service_set(si, fi, set)
    };
    let sigs = match ready {
        Some(s) => s,
        None => {
            let mut key = dnssec::cache::Key::new(kind::SET, t);
            let mut fits = key.push(at.name) && key.push(&si.to_be_bytes());
            for a in set {
                fits &= key.push(&a.to_be_bytes());
            }
            if !fits {
                return Ok(());
            }
            let made = ctx
                .sigs
                .get_or_make(signed.generation, &key, &ctx.stats, || {
                    let name = dnssec::sign::wire_name(at.name).ok()?;
                    let rdatas: Vec<_> = set.iter().map(|&a| set_rdata(fam, a)).collect();
                    Some((None, zs.sign(&name, t, ttl, ttl, &rdatas).ok()?))
                });
            match made {
                Some(e) => &e.sigs,
                None => return Ok(()),
            }
        }
    };
    write_rrset(w, at.owner, sigs)?;
    r.an += sigs.count;
    Ok(())
}

/// Removes adjacent duplicates in place; returns the new length.
fn dedup_sorted(s: &mut [u128]) -> usize {
    let mut n = 0;
    for i in 0..s.len() {
        if n == 0 || s[n - 1] != s[i] {
            s[n] = s[i];
            n += 1;
        }
    }
    n
}

/// An A or AAAA RDATA from a set key.
fn set_rdata(fam: Family, a: u128) -> hickory_proto::rr::RData {
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, AAAA};
    match fam {
        Family::V4 => RData::A(A(std::net::Ipv4Addr::from(a as u32))),
        Family::V6 => RData::AAAA(AAAA(std::net::Ipv6Addr::from(a))),
    }
}
