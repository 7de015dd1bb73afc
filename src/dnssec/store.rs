//! The signatures of one snapshot: made when it is built, read by the
//! answer path by index. Static RRsets and the NSEC of every name are
//! signed here; so is every set of addresses a service can answer with,
//! up to [`PRESIGN_SETS`] sets per service and family (beyond that its
//! single addresses are, and larger sets are signed on first use into
//! the answer path's bounded cache).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData};
use rustc_hash::FxHashMap;

use super::denial;
use super::sign::{ZoneSigner, wire_name};
use crate::zone::{Node, RRset, Table, rtype};

/// Most answer sets of one service and family signed when a snapshot is
/// built: every subset of its addresses of at most `answers` elements.
/// 256 covers `answers = 1` up to 256 addresses, `answers = 2` up to 22,
/// `answers = 3` up to 11.
pub const PRESIGN_SETS: usize = 256;

/// Families a service NSEC leaves out (the service has no address of it
/// to give at the moment): bit 0 A, bit 1 AAAA.
pub const DROP_A: u8 = 1;
/// See [`DROP_A`].
pub const DROP_AAAA: u8 = 2;

/// What a service can answer with, as signing sees it.
#[derive(Debug, Clone)]
pub struct ServiceInput {
    /// Lowercase wire name.
    pub name: Vec<u8>,
    /// Answer TTL.
    pub ttl: u32,
    /// Most addresses per answer.
    pub answers: usize,
    /// Its addresses of each family: [IPv4, IPv6].
    pub addrs: [Vec<IpAddr>; 2],
}

/// The signatures at one name.
#[derive(Debug, Default, Clone)]
pub struct NodeSigs {
    /// RRSIGs of each of the node's RRsets, in the node's order (empty
    /// when not signed: an NS set at a delegation).
    pub rrsets: Box<[Option<RRset>]>,
    /// The compact-denial NSEC at the name, with its RRSIGs, for each
    /// set of service families left out.
    pub nsec: Box<[(u8, RRset, RRset)]>,
}

/// The signed answer sets of one service.
#[derive(Debug, Default, Clone)]
pub struct ServiceSigs {
    /// By family (0 = A, 1 = AAAA): RRSIGs by sorted address set.
    pub sets: [FxHashMap<Box<[u128]>, RRset>; 2],
}

/// Every signature of one snapshot.
#[derive(Debug, Default)]
pub struct Signed {
    /// Unique per build, so caches of on-demand signatures can tell.
    pub generation: u64,
    /// By zone index: the signer (None: the zone is not signed).
    pub zones: Vec<Option<ZoneSigner>>,
    /// By zone index: RRSIGs of the SOA at the negative TTL.
    pub soa_negative: Vec<Option<RRset>>,
    /// By zone index: the negative TTL (NSEC records take it).
    pub negative_ttl: Vec<u32>,
    nodes: Vec<NodeSigs>,
    services: Vec<ServiceSigs>,
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Signed {
    /// The signer of zone `z`, when it is signed.
    #[inline]
    pub fn zone(&self, z: u16) -> Option<&ZoneSigner> {
        self.zones.get(z as usize).and_then(Option::as_ref)
    }

    /// Signatures at node `id`.
    #[inline]
    pub fn node(&self, id: u32) -> Option<&NodeSigs> {
        self.nodes.get(id as usize)
    }

    /// RRSIGs of the `i`th RRset of node `id`.
    #[inline]
    pub fn rrset(&self, id: u32, i: usize) -> Option<&RRset> {
        self.node(id)?.rrsets.get(i)?.as_ref()
    }

    /// The NSEC at node `id` (and its RRSIGs), leaving out `drop`.
    #[inline]
    pub fn nsec(&self, id: u32, drop: u8) -> Option<(&RRset, &RRset)> {
        self.node(id)?
            .nsec
            .iter()
            .find(|(d, _, _)| *d == drop)
            .map(|(_, n, s)| (n, s))
    }

    /// RRSIGs of service `si`'s answer of family `fam` (0 A, 1 AAAA)
    /// holding exactly the addresses `key` (sorted, distinct).
    #[inline]
    pub fn service_set(&self, si: u32, fam: usize, key: &[u128]) -> Option<&RRset> {
        self.services.get(si as usize)?.sets.get(fam)?.get(key)
    }

    /// Signatures held, for the status.
    pub fn count(&self) -> usize {
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| n.rrsets.iter().flatten().count() + n.nsec.len())
            .sum();
        let sets: usize = self
            .services
            .iter()
            .map(|s| s.sets[0].len() + s.sets[1].len())
            .sum();
        nodes + sets
    }

    /// Bytes the signatures take, roughly (for the docs and status).
    pub fn bytes(&self) -> usize {
        let rr = |r: &RRset| r.wire.len() + r.offsets.len() * 2 + 48;
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| {
                n.rrsets.iter().flatten().map(rr).sum::<usize>()
                    + n.nsec.iter().map(|(_, a, b)| rr(a) + rr(b)).sum::<usize>()
                    + 32
            })
            .sum();
        let sets: usize = self
            .services
            .iter()
            .flat_map(|s| s.sets.iter())
            .flat_map(|m| m.iter())
            .map(|(k, v)| k.len() * 16 + rr(v) + 16)
            .sum();
        nodes + sets
    }
}

/// An address as a set key.
#[inline]
pub fn addr_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// What the configuration being replaced signed: a signature over an
/// RRset that has not changed, made with the same keys for the same
/// window, is taken from it instead of being made again (a reload of a
/// large zone then signs only what changed).
#[derive(Clone, Copy)]
pub struct Prev<'a> {
    /// Its zone table (signed).
    pub table: &'a Table,
    /// Its signatures.
    pub signed: &'a Signed,
    /// Its services, as signing saw them.
    pub services: &'a [ServiceInput],
}

impl<'a> Prev<'a> {
    /// The previous node at `name`, when its zone was signed just as
    /// `signer` signs.
    fn node(self, name: &[u8], signer: &ZoneSigner) -> Option<(&'a Node, &'a NodeSigs)> {
        let node = self.table.get(name)?;
        let old = self.signed.zone(node.zone)?;
        same_signing(old, signer).then_some(())?;
        Some((node, self.signed.node(node.id)?))
    }
}

/// Two signers make interchangeable signatures: same zone, window and keys.
fn same_signing(a: &ZoneSigner, b: &ZoneSigner) -> bool {
    let keys = |v: &[super::Signer]| -> Vec<(u16, u8)> {
        v.iter().map(|k| (k.tag, u8::from(k.algorithm))).collect()
    };
    a.apex == b.apex
        && a.window == b.window
        && keys(&a.zsk) == keys(&b.zsk)
        && keys(&a.ksk) == keys(&b.ksk)
}

/// Signs everything in `table` that belongs to a zone with a signer in
/// `signers` (by zone index), and the answer sets of `services` (by
/// service index), taking what has not changed from `prev`.
pub fn build(
    table: &Table,
    signers: Vec<Option<ZoneSigner>>,
    services: &[ServiceInput],
    prev: Option<Prev<'_>>,
) -> Result<Signed, String> {
    let mut s = Signed {
        generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        nodes: vec![NodeSigs::default(); table.len()],
        services: vec![ServiceSigs::default(); services.len()],
        soa_negative: vec![None; signers.len()],
        negative_ttl: vec![0; signers.len()],
        zones: signers,
    };
    for (zi, z) in table.zones.iter().enumerate() {
        let Some(signer) = s.zone(zi as u16) else {
            continue;
        };
        let soa = &z.soa_negative;
        let neg = soa.ttl(0);
        let sig = signer.sign_wire(&signer.apex, soa_full(table, zi).unwrap_or(soa), neg)?;
        s.soa_negative[zi] = Some(sig);
        s.negative_ttl[zi] = neg;
    }
    // which service is at which name, and what families it can give
    let mut service_fams: FxHashMap<&[u8], (u8, &ServiceInput)> = FxHashMap::default();
    for sv in services {
        let fams = u8::from(!sv.addrs[0].is_empty()) | (u8::from(!sv.addrs[1].is_empty()) << 1);
        service_fams.insert(&sv.name, (fams, sv));
    }
    // one job per name and per service, spread over the cores
    let names: Vec<(&[u8], &Node)> = table
        .names()
        .filter(|(_, n)| s.zone(n.zone).is_some())
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16);
    let zones = &s.zones;
    let negative = &s.negative_ttl;
    let node_sigs = parallel(&names, threads, |&(name, node)| {
        let signer = zones[node.zone as usize].as_ref().ok_or("unsigned zone")?;
        let fams = service_fams.get(name).map(|(f, _)| *f);
        let old = prev.and_then(|p| p.node(name, signer));
        let sigs = sign_node(signer, negative[node.zone as usize], name, node, fams, old)?;
        Ok((node.id, sigs))
    })?;
    // the previous sets of each service, by name
    let prev_sets: FxHashMap<&[u8], (&ServiceInput, &ServiceSigs)> = prev
        .iter()
        .flat_map(|p| {
            p.services
                .iter()
                .zip(p.signed.services.iter())
                .filter_map(move |(sv, sigs)| {
                    let node = p.table.get(&sv.name)?;
                    Some((sv, sigs, p.signed.zone(node.zone)?))
                })
        })
        .filter(|(sv, _, old)| {
            table
                .get(&sv.name)
                .and_then(|n| zones.get(n.zone as usize)?.as_ref())
                .is_some_and(|new| same_signing(old, new))
        })
        .map(|(sv, sigs, _)| (sv.name.as_slice(), (sv, sigs)))
        .collect();
    let jobs: Vec<(usize, &ServiceInput, &ZoneSigner)> = services
        .iter()
        .enumerate()
        .filter_map(|(si, sv)| {
            let node = table.get(&sv.name)?;
            Some((si, sv, zones.get(node.zone as usize)?.as_ref()?))
        })
        .collect();
    let set_sigs = parallel(&jobs, threads, |&(si, sv, signer)| {
        let owner = wire_name(&sv.name)?;
        // the previous signatures hold while the TTL is the same
        let old = prev_sets
            .get(sv.name.as_slice())
            .filter(|(p, _)| p.ttl == sv.ttl)
            .map(|(_, sigs)| *sigs);
        Ok((
            si,
            [
                sign_sets(signer, &owner, sv, 0, old)?,
                sign_sets(signer, &owner, sv, 1, old)?,
            ],
        ))
    })?;
    for (id, sigs) in node_sigs {
        s.nodes[id as usize] = sigs;
    }
    for (si, sets) in set_sigs {
        s.services[si].sets = sets;
    }
    Ok(s)
}

/// `f` over `items` on up to `threads` threads; the first error wins.
fn parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<R, String> + Sync,
) -> Result<Vec<R>, String> {
    if items.len() < 64 || threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|c| scope.spawn(|| c.iter().map(&f).collect::<Result<Vec<R>, String>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| "a signing thread failed".to_string())??,
            );
        }
        Ok(out)
    })
}

/// The apex SOA RRset at its own TTL.
fn soa_full(table: &Table, zi: usize) -> Option<&RRset> {
    table.get(&table.zones.get(zi)?.apex)?.rrset(rtype::SOA)
}

/// The RRSIGs of a node's RRsets and its NSEC variants.
fn sign_node(
    signer: &ZoneSigner,
    negative_ttl: u32,
    name: &[u8],
    node: &Node,
    service: Option<u8>,
    old: Option<(&Node, &NodeSigs)>,
) -> Result<NodeSigs, String> {
    let is_service = service.is_some();
    let service_fams = service.unwrap_or(0);
    let below_cut = node.cut.is_some_and(|c| c != node.id);
    if below_cut {
        // glue and whatever else lies below a delegation is not ours
        return Ok(NodeSigs::default());
    }
    let at_cut = node.cut == Some(node.id);
    let owner = wire_name(name)?;
    let mut rrsets = Vec::with_capacity(node.rrsets.len());
    for rr in &node.rrsets {
        // at a delegation only the DS is authoritative
        if at_cut && rr.rtype != rtype::DS {
            rrsets.push(None);
            continue;
        }
        let same = old.and_then(|(n, sigs)| {
            let j = n.rrsets.iter().position(|o| o == rr)?;
            sigs.rrsets.get(j)?.clone()
        });
        match same {
            Some(s) => rrsets.push(Some(s)),
            None => rrsets.push(Some(signer.sign_wire(&owner, rr, rr.ttl(0))?)),
        }
    }
    let mut types: Vec<u16> = node.rrsets.iter().map(|r| r.rtype).collect();
    let mut variants = vec![0u8];
    if service_fams & DROP_A != 0 {
        types.push(rtype::A);
    }
    if service_fams & DROP_AAAA != 0 {
        types.push(rtype::AAAA);
    }
    if is_service {
        // the answer path asks by what the service had nothing of; a
        // family it never has is left out of every variant anyway
        variants.extend([DROP_A, DROP_AAAA, DROP_A | DROP_AAAA]);
    }
    let mut nsec = Vec::with_capacity(variants.len());
    for drop in variants {
        let t: Vec<u16> = types
            .iter()
            .copied()
            .filter(|&t| {
                !(t == rtype::A && drop & DROP_A != 0 || t == rtype::AAAA && drop & DROP_AAAA != 0)
            })
            .collect();
        let Some(rd) = denial::nsec(&owner, &t) else {
            continue;
        };
        let record = RRset::encode(rtype::NSEC, negative_ttl, std::slice::from_ref(&rd))?;
        let same = old.and_then(|(_, sigs)| {
            sigs.nsec
                .iter()
                .find(|(d, r, _)| *d == drop && *r == record)
                .map(|(_, _, s)| s.clone())
        });
        let sig = match same {
            Some(s) => s,
            None => signer.sign(&owner, rtype::NSEC, negative_ttl, negative_ttl, &[rd])?,
        };
        nsec.push((drop, record, sig));
    }
    Ok(NodeSigs {
        rrsets: rrsets.into_boxed_slice(),
        nsec: nsec.into_boxed_slice(),
    })
}

/// Number of subsets of `n` things with 1 to `k` elements, capped.
fn subsets(n: usize, k: usize) -> usize {
    let mut total = 0usize;
    let mut c = 1usize; // C(n, 0)
    for i in 1..=k.min(n) {
        c = c.saturating_mul(n + 1 - i) / i;
        total = total.saturating_add(c);
        if total > PRESIGN_SETS {
            return usize::MAX;
        }
    }
    total
}

/// RRSIGs of every set of family `fam` the service can answer with (or
/// of each single address, when there are more than [`PRESIGN_SETS`]).
fn sign_sets(
    signer: &ZoneSigner,
    owner: &Name,
    sv: &ServiceInput,
    fam: usize,
    old: Option<&ServiceSigs>,
) -> Result<FxHashMap<Box<[u128]>, RRset>, String> {
    let mut addrs: Vec<IpAddr> = sv.addrs[fam].clone();
    addrs.sort_by_key(|a| addr_key(*a));
    addrs.dedup();
    let k = if subsets(addrs.len(), sv.answers) <= PRESIGN_SETS {
        sv.answers.min(addrs.len())
    } else {
        1
    };
    let t = if fam == 0 { rtype::A } else { rtype::AAAA };
    let mut out = FxHashMap::default();
    let mut pick: Vec<usize> = Vec::with_capacity(k);
    for size in 1..=k {
        // every combination of `size` addresses, in lexicographic order
        pick.clear();
        pick.extend(0..size);
        loop {
            let set: Vec<IpAddr> = pick.iter().map(|&i| addrs[i]).collect();
            let rdatas: Vec<RData> = set
                .iter()
                .map(|a| match a {
                    IpAddr::V4(v) => RData::A(A(*v)),
                    IpAddr::V6(v) => RData::AAAA(AAAA(*v)),
                })
                .collect();
            let key: Box<[u128]> = set.iter().map(|a| addr_key(*a)).collect();
            let sig = match old.and_then(|o| o.sets[fam].get(&key)) {
                Some(s) => s.clone(),
                None => signer.sign(owner, t, sv.ttl, sv.ttl, &rdatas)?,
            };
            out.insert(key, sig);
            // next combination
            let mut i = size;
            while i > 0 && pick[i - 1] == addrs.len() - size + i - 1 {
                i -= 1;
            }
            if i == 0 {
                break;
            }
            pick[i - 1] += 1;
            for j in i..size {
                pick[j] = pick[j - 1] + 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_count_and_cap() {
        assert_eq!(subsets(5, 1), 5);
        assert_eq!(subsets(5, 2), 15);
        assert_eq!(subsets(3, 8), 7);
        assert_eq!(subsets(0, 3), 0);
        assert_eq!(subsets(256, 1), 256);
        assert_eq!(subsets(257, 1), usize::MAX);
        assert_eq!(subsets(22, 2), 253);
        assert_eq!(subsets(23, 2), usize::MAX);
    }
}
