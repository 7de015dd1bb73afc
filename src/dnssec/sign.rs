//! Making RRSIGs: the signing window and the keys of one zone, and the
//! signature over one RRset given in the wire form the zone table keeps.
//! The canonical form and ordering are hickory-proto's (`TBS`), the
//! cryptography ring's (through hickory's `SigningKey`).

use std::sync::Arc;

use hickory_proto::dnssec::rdata::sig::SigInput;
use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
use hickory_proto::dnssec::{Algorithm, SigningKey, TBS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};
use prometheus_client::metrics::counter::Counter;

use crate::zone::{RRset, rtype};

/// RRSIG.
pub const RRSIG_TYPE: u16 = 46;

/// How far before its window a signature's inception lies (clock skew).
pub const INCEPTION_SLACK: i64 = 3600;

/// A signature validity window: every signature made in it carries the
/// same inception and expiration, whichever node or reload makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inception (Unix seconds).
    pub inception: i64,
    /// Expiration (Unix seconds).
    pub expiration: i64,
    /// When signatures are re-made: the start of the next window, when
    /// `refresh` remains of these.
    pub next: i64,
}

impl Window {
    /// The window in force at `now`: windows start every
    /// `validity - refresh` seconds since the epoch, so that at any time
    /// at least `refresh` remains and two nodes agree.
    pub fn at(now: i64, validity: i64, refresh: i64) -> Window {
        let step = (validity - refresh).max(1);
        let start = now.div_euclid(step) * step;
        Window {
            inception: start - INCEPTION_SLACK,
            expiration: start + validity,
            next: start + step,
        }
    }
}

/// One key that signs.
#[derive(Clone)]
pub struct Signer {
    /// The key pair.
    pub key: Arc<dyn SigningKey>,
    /// Its key tag.
    pub tag: u16,
    /// Its algorithm.
    pub algorithm: Algorithm,
}

/// Which keys sign what in one zone, for one window.
#[derive(Clone)]
pub struct ZoneSigner {
    /// The zone apex: the signer name.
    pub apex: Name,
    /// Keys signing everything but the apex key sets.
    pub zsk: Vec<Signer>,
    /// Keys signing DNSKEY, CDS and CDNSKEY.
    pub ksk: Vec<Signer>,
    /// The window of every signature.
    pub window: Window,
    /// `signpost_dnssec_signatures_made_total`.
    pub made: Counter,
}

impl std::fmt::Debug for ZoneSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneSigner")
            .field("apex", &self.apex)
            .field("zsk", &self.zsk.iter().map(|s| s.tag).collect::<Vec<_>>())
            .field("ksk", &self.ksk.iter().map(|s| s.tag).collect::<Vec<_>>())
            .field("window", &self.window)
            .finish()
    }
}

/// A wire name (uncompressed) as a hickory name.
pub fn wire_name(wire: &[u8]) -> Result<Name, String> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    loop {
        let Some(&len) = wire.get(i) else {
            return Err("name without a root label".into());
        };
        if len == 0 {
            break;
        }
        let label = wire
            .get(i + 1..i + 1 + len as usize)
            .ok_or("name label past its end")?;
        labels.push(label);
        i += 1 + len as usize;
    }
    Name::from_labels(labels).map_err(|e| format!("bad name: {e}"))
}

/// Decodes one RDATA of type `t`.
pub fn read_rdata(t: u16, rdata: &[u8]) -> Result<RData, String> {
    let len = u16::try_from(rdata.len()).map_err(|_| "RDATA longer than 64 KiB")?;
    let mut d = BinDecoder::new(rdata);
    RData::read(&mut d, RecordType::from(t), Restrict::new(len))
        .map_err(|e| format!("cannot decode type {t} RDATA: {e}"))
}

impl ZoneSigner {
    /// The RRSIG records (one per signing key, in wire form without
    /// owner, each with TTL `ttl`) over the RRset `owner`/`t` whose
    /// records are `rdatas` with original TTL `orig_ttl`.
    pub fn sign(
        &self,
        owner: &Name,
        t: u16,
        orig_ttl: u32,
        ttl: u32,
        rdatas: &[RData],
    ) -> Result<RRset, String> {
        let keys = match t {
            rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY => &self.ksk,
            _ => &self.zsk,
        };
        let mut records: Vec<Record> = rdatas
            .iter()
            .map(|rd| Record::from_rdata(owner.clone(), orig_ttl, rd.clone()))
            .collect();
        records.sort();
        records.dedup();
        let mut sigs = Vec::with_capacity(keys.len());
        for k in keys {
            let input = SigInput {
                type_covered: RecordType::from(t),
                algorithm: k.algorithm,
                num_labels: owner.num_labels(),
                original_ttl: orig_ttl,
                sig_expiration: SerialNumber::new(self.window.expiration as u32),
                sig_inception: SerialNumber::new(self.window.inception as u32),
                key_tag: k.tag,
                signer_name: self.apex.clone(),
            };
            let tbs = TBS::from_input(owner, DNSClass::IN, &input, records.iter())
                .map_err(|e| format!("canonical form of {owner} type {t}: {e}"))?;
            let sig = k
                .key
                .sign(&tbs)
                .map_err(|e| format!("signing {owner} type {t} with key {}: {e}", k.tag))?;
            self.made.inc();
            sigs.push(RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
                input, sig,
            ))));
        }
        RRset::encode(RRSIG_TYPE, ttl, &sigs)
    }

    /// [`ZoneSigner::sign`] over an RRset in the zone table's wire form.
    pub fn sign_wire(&self, owner: &Name, set: &RRset, ttl: u32) -> Result<RRset, String> {
        let rdatas = (0..set.count as usize)
            .map(|i| read_rdata(set.rtype, set.rdata(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let orig = set.ttl(0);
        self.sign(owner, set.rtype, orig, ttl, &rdatas)
    }

    /// True when no key signs (every key inactive or not yet active).
    pub fn is_empty(&self) -> bool {
        self.zsk.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn windows_start_on_fixed_boundaries_and_keep_refresh() {
        let (validity, refresh) = (14 * DAY, 7 * DAY);
        let t = 1_796_000_000;
        let w = Window::at(t, validity, refresh);
        // any moment of the same window gives the same one (nodes, reloads)
        assert_eq!(Window::at(w.next - 1, validity, refresh), w);
        assert_eq!(
            Window::at(w.inception + INCEPTION_SLACK, validity, refresh),
            w
        );
        assert_ne!(Window::at(w.next, validity, refresh), w);
        // starts on a multiple of validity - refresh
        assert_eq!((w.inception + INCEPTION_SLACK) % (validity - refresh), 0);
        assert!(w.inception <= t - INCEPTION_SLACK);
        // at least refresh remains until the next window
        for now in [w.inception + INCEPTION_SLACK, t, w.next - 1] {
            assert!(w.expiration - now > refresh, "{now}");
        }
        assert_eq!(w.expiration - w.next, refresh);
        let next = Window::at(w.next, validity, refresh);
        assert_eq!(next.inception, w.next - INCEPTION_SLACK);
    }

    #[test]
    fn wire_names_round_trip() {
        let n = wire_name(b"\x03www\x07example\x04test\x00").unwrap();
        assert_eq!(n.to_ascii(), "www.example.test.");
        assert!(n.is_fqdn());
        assert_eq!(wire_name(b"\x00").unwrap(), Name::root());
        assert!(wire_name(b"\x03ww").is_err());
        assert!(wire_name(b"\x03www").is_err());
    }
}
