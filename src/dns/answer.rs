//! The answer path: query bytes in, response bytes out, against one
//! snapshot. No locks, no awaits, no allocation: the question name is
//! lowercased on the stack, static records are copied from pre-encoded
//! wire RRsets, owner names are compression pointers into the question.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dnssec;
use crate::metrics::{Transport, WorkerStats};
use crate::state::Snapshot;
use crate::steer::{self, Family, GeoHit, Rng};
use crate::zone::{Lookup, Node, RRset, Table, rtype};

use super::wire::{self, Edns, Full, ParseError, Query, Writer, flags, rcode};

mod signed;

use signed::{Sig, write_meta, write_nodata_nsec, write_nxdomain, write_rrsig, write_set_rrsig};

/// Longest CNAME chain followed inside our zones.
const MAX_CHAIN: usize = 8;

/// Per-worker state of the answer path.
pub struct Ctx {
    /// Randomness for weighted choices.
    pub rng: Rng,
    /// Counters.
    pub stats: Arc<WorkerStats>,
    /// On a TCP connection: the idle timeout in force, in units of 100 ms,
    /// for EDNS keepalive (RFC 7828).
    pub keepalive: Option<u16>,
    /// Set by [`respond`]: the wildcard whose expansion answered the last
    /// query, if one did, for the rate limits to count its answers as one
    /// name (random labels under a wildcard are one flood, not many).
    pub wildcard: Option<u64>,
    /// Signatures made on first use (names only a query holds, rare sets).
    pub sigs: dnssec::cache::Cache,
}

impl Ctx {
    /// A context counting into `stats`.
    pub fn new(stats: Arc<WorkerStats>) -> Ctx {
        Ctx {
            rng: Rng::from_entropy(),
            stats,
            keepalive: None,
            wildcard: None,
            sigs: dnssec::cache::Cache::new(),
        }
    }
}

#[derive(Default)]
struct Resp {
    rcode: u8,
    aa: bool,
    an: u16,
    ns: u16,
    ar: u16,
    scope: u8,
}

/// Answers one DNS message from `src` into `out`; returns the response
/// length, or `None` when nothing should be sent.
pub fn respond(
    snap: &Snapshot,
    packet: &[u8],
    src: IpAddr,
    transport: Transport,
    out: &mut [u8],
    ctx: &mut Ctx,
) -> Option<usize> {
    ctx.wildcard = None;
    if crate::xfr::opcode(packet) == Some(crate::xfr::OPCODE_NOTIFY) {
        // rare, and off the query path proper: a NOTIFY from a primary
        let len = crate::xfr::notify::receive(snap, packet, src, out)?;
        ctx.stats.query(transport, u16::from(out[3] & 0x0f));
        return Some(len);
    }
    let q = match wire::parse(packet) {
        Ok(q) => q,
        Err(ParseError::Drop) => {
            ctx.stats.dropped();
            return None;
        }
        Err(ParseError::FormErr { question_end, opt }) => {
            ctx.stats.query(transport, u16::from(rcode::FORMERR));
            let mut w = Writer::new(out, 512);
            error_header(&mut w, packet, question_end, rcode::FORMERR)?;
            if opt {
                // the query's OPT was there but wrong: ours, without options
                write_opt(&mut w, &Edns::PLAIN, 0, 0, None, None).ok()?;
                w.set_u16(10, 1);
            }
            return Some(w.len());
        }
        Err(ParseError::NotImp { question_end, edns }) => {
            ctx.stats.query(transport, u16::from(rcode::NOTIMP));
            let mut w = Writer::new(out, 512);
            error_header(&mut w, packet, question_end, rcode::NOTIMP)?;
            if let Some(e) = edns {
                write_opt(&mut w, &e, 0, 0, None, None).ok()?;
                w.set_u16(10, 1);
            }
            return Some(w.len());
        }
        Err(ParseError::BadVers { question_end }) => {
            ctx.stats.query(transport, rcode::BADVERS);
            return badvers_response(packet, question_end, out);
        }
    };

    let limit = match (transport, q.edns) {
        (Transport::Tcp, _) => 65535,
        (Transport::Udp, Some(e)) => e.payload.clamp(512, wire::MAX_UDP_PAYLOAD) as usize,
        (Transport::Udp, None) => 512,
    };
    let mut w = Writer::new(out, limit);
    let qlen = q.question().len();
    // Header and question always fit: a question is at most 259 bytes.
    w.put(&[0; 12]).ok()?;
    w.put(q.question()).ok()?;
    let body_start = w.len();

    // Keep room for the OPT record: it must survive truncation (RFC 6891 §7).
    let nsid = q.edns.filter(|e| e.nsid).and(snap.data.nsid.as_deref());
    // RFC 7828: only over TCP, only to a query that asked
    let keepalive = q
        .edns
        .filter(|e| e.keepalive && transport == Transport::Tcp)
        .and(ctx.keepalive);
    let opt_len = q.edns.map_or(0, |e| {
        11 + e.ecs.map_or(0, |c| 8 + c.addr_len as usize)
            + nsid.map_or(0, |n| 4 + n.len())
            + keepalive.map_or(0, |_| 6)
    });
    w.set_limit(limit.saturating_sub(opt_len));
    let mut r = Resp::default();
    let mut tc = false;
    if answer(&mut w, snap, &q, src, ctx, &mut r).is_err() {
        tc = true;
        w.truncate(body_start);
        r.an = 0;
        r.ns = 0;
        r.ar = 0;
    }
    if let Some(edns) = q.edns {
        // header + question + OPT is at most 12 + 259 + 35 + 132 bytes:
        // always fits 512
        w.set_limit(limit);
        if write_opt(&mut w, &edns, 0, r.scope, nsid, keepalive).is_err() {
            return None;
        }
        r.ar += 1;
    }

    let mut f = flags::QR | (q.flags & (flags::RD | flags::CD)) | u16::from(r.rcode);
    if r.aa {
        f |= flags::AA;
    }
    if tc {
        f |= flags::TC;
        // the metric counts UDP answers that send the client to TCP
        if transport == Transport::Udp {
            ctx.stats.truncated();
        }
    }
    let id = q.id;
    let len = w.len();
    w.set_u16(0, id);
    w.set_u16(2, f);
    w.set_u16(4, 1);
    w.set_u16(6, r.an);
    w.set_u16(8, r.ns);
    w.set_u16(10, r.ar);
    debug_assert!(len >= 12 + qlen);
    ctx.stats.query(transport, u16::from(r.rcode));
    Some(len)
}

fn answer(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    q: &Query<'_>,
    src: IpAddr,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<(), Full> {
    const CLASS_IN: u16 = 1;
    if q.qclass != CLASS_IN {
        r.rcode = rcode::REFUSED;
        return Ok(());
    }
    match q.qtype {
        rtype::AXFR | rtype::IXFR => {
            r.rcode = rcode::REFUSED;
            return Ok(());
        }
        // meta types that are never questions (NXNAME: RFC 9824 §3.4)
        rtype::OPT | rtype::NXNAME | 249 | 250 => {
            r.rcode = rcode::FORMERR;
            return Ok(());
        }
        253 | 254 => {
            r.rcode = rcode::NOTIMP;
            return Ok(());
        }
        _ => {}
    }
    let table = &snap.data.table;
    // signatures go to a client that asked for them, from a signed zone
    let sig = Sig {
        signed: q
            .edns
            .filter(|e| e.dnssec_ok)
            .and(snap.data.signed.as_deref()),
        compact_ok: q.edns.is_some_and(|e| e.compact_ok),
    };
    let name = q.name();
    match table.lookup(name, q.labels(), q.qtype) {
        Lookup::NotAuth => {
            r.rcode = rcode::REFUSED;
            Ok(())
        }
        Lookup::NxDomain { zone } => {
            r.aa = true;
            write_nxdomain(w, table, zone, q, Owner::Offset(12), name, sig, ctx, r)
        }
        Lookup::Referral(cut) => write_referral(w, cut, q, sig, r),
        Lookup::Found(node) => answer_node(w, snap, node, false, q, src, sig, ctx, r),
        Lookup::Wildcard(node) => {
            // the node's address names the wildcard for as long as this
            // snapshot serves; a reload starts its accounts afresh
            ctx.wildcard = Some(std::ptr::from_ref(node).addr() as u64);
            answer_node(w, snap, node, true, q, src, sig, ctx, r)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn answer_node<'s>(
    w: &mut Writer<'_>,
    snap: &'s Snapshot,
    mut node: &'s Node,
    mut wild: bool,
    q: &Query<'_>,
    src: IpAddr,
    sig: Sig<'_>,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<(), Full> {
    let table = &snap.data.table;
    r.aa = true;
    let mut owner = Owner::Offset(12);
    let mut owner_name: &[u8] = q.name();
    for _ in 0..MAX_CHAIN {
        if let Some(target) = &node.cname
            && q.qtype != rtype::CNAME
            && q.qtype != rtype::ANY
        {
            let Some(i) = node.rrset_index(rtype::CNAME) else {
                break;
            };
            let rr = &node.rrsets[i];
            let rdata_at = write_rrset(w, owner, rr)?;
            r.an += rr.count;
            write_rrsig(w, owner, owner_name, node, i, wild, sig, ctx, &mut r.an)?;
            let mut labels = [0u8; 128];
            let n = crate::zone::label_offsets(target, &mut labels);
            match table.lookup(target, &labels[..n], q.qtype) {
                found @ (Lookup::Found(next) | Lookup::Wildcard(next)) => {
                    wild = matches!(found, Lookup::Wildcard(_));
                    node = next;
                    owner = Owner::at(rdata_at, target);
                    owner_name = target;
                    continue;
                }
                Lookup::NxDomain { zone } => {
                    let o = Owner::at(rdata_at, target);
                    return write_nxdomain(w, table, zone, q, o, target, sig, ctx, r);
                }
                // out of our zones, or delegated: the resolver follows on
                Lookup::Referral(_) | Lookup::NotAuth => return Ok(()),
            }
        }

        let mut drop = 0u8;
        if let Some(si) = node.service
            && matches!(q.qtype, rtype::A | rtype::AAAA | rtype::ANY)
        {
            let fams: &[Family] = match q.qtype {
                rtype::A => &[Family::V4],
                rtype::AAAA => &[Family::V6],
                _ => &[Family::V4, Family::V6],
            };
            for &fam in fams {
                let at = SetOwner {
                    owner,
                    name: owner_name,
                    zone: node.zone,
                    wild,
                };
                // ANY: the first family that answers (RFC 8482, minimal)
                if write_service(w, snap, si, fam, at, q, src, sig, ctx, r)? {
                    return Ok(());
                }
                drop |= match fam {
                    Family::V4 => dnssec::store::DROP_A,
                    Family::V6 => dnssec::store::DROP_AAAA,
                };
            }
        }
        let idx = if q.qtype == rtype::ANY {
            (!node.rrsets.is_empty()).then_some(0)
        } else {
            node.rrset_index(q.qtype)
        };
        if let Some(i) = idx {
            let rr = &node.rrsets[i];
            write_rrset(w, owner, rr)?;
            r.an += rr.count;
            write_rrsig(w, owner, owner_name, node, i, wild, sig, ctx, &mut r.an)?;
            return Ok(());
        }
        if matches!(q.qtype, rtype::NSEC | rtype::RRSIG) && sig.zone(node.zone).is_some() {
            return write_meta(w, owner, owner_name, node, wild, q, sig, ctx, r);
        }
        // NODATA
        write_soa(w, table, node.zone, q, sig, r)?;
        return write_nodata_nsec(w, owner, owner_name, node, wild, drop, sig, ctx, r);
    }
    // chain too long: what was written stands
    Ok(())
}

/// Where a service answer goes: its owner, as written and as a name, its
/// zone, and whether it expands a wildcard.
#[derive(Clone, Copy)]
struct SetOwner<'a> {
    owner: Owner<'a>,
    name: &'a [u8],
    zone: u16,
    wild: bool,
}

/// Writes a service's answer; `Ok(false)` when it has no address of the
/// family (NODATA).
#[allow(clippy::too_many_arguments)]
fn write_service(
    w: &mut Writer<'_>,
    snap: &Snapshot,
    si: u32,
    fam: Family,
    at: SetOwner<'_>,
    q: &Query<'_>,
    src: IpAddr,
    sig: Sig<'_>,
    ctx: &mut Ctx,
    r: &mut Resp,
) -> Result<bool, Full> {
    let data = &snap.data;
    let Some(svc) = data.services.get(si as usize) else {
        return Ok(false);
    };
    let owner = at.owner;
    let ecs = q.edns.and_then(|e| e.ecs).filter(|e| e.source > 0);
    // the shared GeoIP table gives the region order and the ECS scope
    let client = ecs.map_or(src, |e| e.addr);
    let hit = svc
        .geo
        .as_ref()
        .map(|ix| ix.lookup(svc, &data.regions, client));
    let view = hit.as_ref().map(GeoHit::view);
    let net = steer::dynamic::net_key(client, svc.hash_prefix);
    let d = steer::decide_view(svc, &snap.inputs(), fam, view.as_ref(), net, &mut ctx.rng);
    let picks = d.picks.as_slice();
    let Some(first) = picks.first() else {
        return Ok(false);
    };
    let (t, len) = match fam {
        Family::V4 => (rtype::A, 4u16),
        Family::V6 => (rtype::AAAA, 16u16),
    };
    for p in picks {
        let e = &data.regions[p.region as usize].endpoints[p.endpoint as usize];
        owner.write(w)?;
        w.u16(t)?;
        w.u16(1)?;
        w.u32(svc.ttl)?;
        w.u16(len)?;
        match e.addr {
            IpAddr::V4(a) => w.put(&a.octets())?,
            IpAddr::V6(a) => w.put(&a.octets())?,
        }
        r.an += 1;
    }
    if let Some(z) = sig.zone(at.zone) {
        let addrs = picks
            .iter()
            .map(|p| data.regions[p.region as usize].endpoints[p.endpoint as usize].addr);
        write_set_rrsig(w, z, si, fam, svc.ttl, at, addrs, ctx, r)?;
    }
    if let Some(&slot) = svc.counter_slots.get(first.position as usize) {
        ctx.stats.answer(slot);
    }
    if let Some(e) = ecs {
        let mut scope = hit.map_or(0, |h| h.scope);
        if d.hashed {
            // the answer depends on the hashed client network
            let p = if e.addr.to_canonical().is_ipv4() {
                svc.hash_prefix.0 + if e.addr.is_ipv6() { 96 } else { 0 }
            } else {
                svc.hash_prefix.1
            };
            scope = scope.max(p);
        }
        r.scope = scope;
    }
    Ok(true)
}

/// Where an owner name is written from.
#[derive(Clone, Copy)]
enum Owner<'a> {
    /// A compression pointer.
    Offset(usize),
    /// The name itself (when a pointer cannot reach it).
    Name(&'a [u8]),
}

impl<'a> Owner<'a> {
    fn at(offset: usize, name: &'a [u8]) -> Owner<'a> {
        if offset <= 0x3fff {
            Owner::Offset(offset)
        } else {
            Owner::Name(name)
        }
    }

    fn write(self, w: &mut Writer<'_>) -> Result<(), Full> {
        match self {
            Owner::Offset(o) => w.pointer(o),
            Owner::Name(n) => w.put(n),
        }
    }
}

/// Writes an RRset; returns the offset of the last record's RDATA (the
/// target of a CNAME, for chained owners).
fn write_rrset(w: &mut Writer<'_>, owner: Owner<'_>, rr: &RRset) -> Result<usize, Full> {
    let mut rdata_at = 0;
    for i in 0..rr.count as usize {
        owner.write(w)?;
        let start = rr.offsets[i] as usize;
        let end = rr.offsets.get(i + 1).map_or(rr.wire.len(), |&e| e as usize);
        rdata_at = w.len() + 10;
        w.put(&rr.wire[start..end])?;
    }
    Ok(rdata_at)
}

/// The zone's SOA in the authority section (negative answers), with its
/// RRSIGs for a client that asked.
fn write_soa(
    w: &mut Writer<'_>,
    table: &Table,
    zone: u16,
    q: &Query<'_>,
    sig: Sig<'_>,
    r: &mut Resp,
) -> Result<(), Full> {
    let Some(z) = table.zones.get(zone as usize) else {
        return Ok(());
    };
    let owner = suffix_owner(q, &z.apex);
    owner.write(w)?;
    let rr = &z.soa_negative;
    w.put(&rr.wire)?;
    r.ns += 1;
    if let Some((signed, _)) = sig.zone(zone)
        && let Some(Some(sigs)) = signed.soa_negative.get(zone as usize)
    {
        write_rrset(w, owner, sigs)?;
        r.ns += sigs.count;
    }
    Ok(())
}

/// `name` as a pointer into the question when it is a suffix of it.
fn suffix_owner<'a>(q: &Query<'_>, name: &'a [u8]) -> Owner<'a> {
    let qn = q.name();
    if name.len() <= qn.len() {
        let start = qn.len() - name.len();
        if q.labels().contains(&(start as u8)) && qn[start..] == *name {
            return Owner::Offset(12 + start);
        }
    }
    Owner::Name(name)
}

fn write_referral(
    w: &mut Writer<'_>,
    cut: &Node,
    q: &Query<'_>,
    sig: Sig<'_>,
    r: &mut Resp,
) -> Result<(), Full> {
    r.aa = false;
    let Some(refer) = &cut.referral else {
        r.rcode = rcode::SERVFAIL;
        return Ok(());
    };
    let qn = q.name();
    let start = qn.len().saturating_sub(cut.name_len as usize);
    let owner = Owner::Offset(12 + start);
    write_rrset(w, owner, &refer.ns)?;
    r.ns += refer.ns.count;
    // signed: the DS at the cut, or the NSEC proving there is none
    if let Some((signed, _)) = sig.zone(cut.zone) {
        if let Some(i) = cut.rrset_index(rtype::DS)
            && let Some(sigs) = signed.rrset(cut.id, i)
        {
            let ds = &cut.rrsets[i];
            write_rrset(w, owner, ds)?;
            write_rrset(w, owner, sigs)?;
            r.ns += ds.count + sigs.count;
        } else if let Some((nsec, sigs)) = signed.nsec(cut.id, 0) {
            write_rrset(w, owner, nsec)?;
            write_rrset(w, owner, sigs)?;
            r.ns += nsec.count + sigs.count;
        }
    }
    for (name, rr) in &refer.glue {
        write_rrset(w, Owner::Name(name), rr)?;
        r.ar += rr.count;
    }
    Ok(())
}

/// The OPT record of a response: the ECS option echoed (with `scope`) and
/// this server's NSID when asked for and configured.
fn write_opt(
    w: &mut Writer<'_>,
    edns: &Edns,
    ext_rcode: u8,
    scope: u8,
    nsid: Option<&[u8]>,
    keepalive: Option<u16>,
) -> Result<(), Full> {
    w.put(&[0])?;
    w.u16(rtype::OPT)?;
    w.u16(wire::MAX_UDP_PAYLOAD)?;
    // DO echoed (RFC 3225), and CO beside it (RFC 9824)
    let do_bit = match (edns.dnssec_ok, edns.compact_ok) {
        (true, true) => 0xc000,
        (true, false) => 0x8000,
        _ => 0,
    };
    w.u32((u32::from(ext_rcode) << 24) | do_bit)?;
    let ecs_len = edns.ecs.map_or(0, |e| 8 + e.addr_len as u16);
    let nsid_len = nsid.map_or(0, |n| 4 + n.len() as u16);
    let keepalive_len = keepalive.map_or(0, |_| 6);
    w.u16(ecs_len + nsid_len + keepalive_len)?;
    if let Some(e) = edns.ecs {
        let n = e.addr_len as usize;
        w.u16(wire::OPT_ECS)?;
        w.u16(4 + n as u16)?;
        w.u16(e.family)?;
        w.put(&[e.source, if e.source == 0 { 0 } else { scope }])?;
        match e.addr {
            IpAddr::V4(a) => w.put(&a.octets()[..n])?,
            IpAddr::V6(a) => w.put(&a.octets()[..n])?,
        }
    }
    if let Some(n) = nsid {
        w.u16(wire::OPT_NSID)?;
        w.u16(n.len() as u16)?;
        w.put(n)?;
    }
    if let Some(t) = keepalive {
        w.u16(wire::OPT_KEEPALIVE)?;
        w.u16(2)?;
        w.u16(t)?;
    }
    Ok(())
}

/// FORMERR or NOTIMP: the header, and the question when it parsed.
fn error_header(w: &mut Writer<'_>, packet: &[u8], question_end: usize, code: u8) -> Option<()> {
    let question = packet.get(12..question_end)?;
    let query_flags = u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]);
    // keep the opcode, RD and CD of the query
    let f = flags::QR | (query_flags & (0x7800 | flags::RD | flags::CD)) | u16::from(code);
    w.put(packet.get(..2)?).ok()?;
    w.u16(f).ok()?;
    w.u16(u16::from(!question.is_empty())).ok()?;
    w.put(&[0; 6]).ok()?;
    w.put(question).ok()
}

/// BADVERS: RCODE 16 is split between the header (0) and the OPT record (1).
fn badvers_response(packet: &[u8], question_end: usize, out: &mut [u8]) -> Option<usize> {
    let mut w = Writer::new(out, 512);
    error_header(&mut w, packet, question_end, 0)?;
    write_opt(
        &mut w,
        &Edns::PLAIN,
        (rcode::BADVERS >> 4) as u8,
        0,
        None,
        None,
    )
    .ok()?;
    w.set_u16(10, 1);
    Some(w.len())
}
