//! DNSSEC (SPEC §9): BIND key files and their timing, the signing set,
//! RRSIGs made when a snapshot is built, compact denial (RFC 9824), and
//! the bounded cache of signatures made on first use. `state` calls this
//! room when it builds a snapshot; `dns` only copies what is here, except
//! for names that exist only in the query (a name that does not exist, a
//! wildcard expansion), whose signatures are made on first use and kept
//! in a bounded per-worker [`cache::Cache`].

pub mod cache;
pub mod denial;
pub mod keys;
pub mod sign;
pub mod store;

use std::sync::Arc;

use hickory_proto::dnssec::rdata::{CDNSKEY, CDS, DNSSECRData};
use hickory_proto::dnssec::{Algorithm, PublicKey};
use hickory_proto::rr::{RData, SerialNumber};
use prometheus_client::metrics::counter::Counter;

use crate::config;
use crate::zone::{RRset, Table, rtype, wire_text};

pub use keys::{Key, KeyState};
pub use sign::{Signer, Window, ZoneSigner};
pub use store::{Prev, ServiceInput, Signed};

/// Now, in Unix seconds (signature windows and key timing).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix seconds as RFC 3339.
fn time_text(t: i64) -> String {
    crate::text::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.max(0) as u64))
}

/// TTL of the DNSKEY, CDS and CDNSKEY sets.
pub const KEY_TTL: u32 = 3600;

/// Types a signed zone's file must not hold: signpost makes them.
const MADE_HERE: [u16; 7] = [
    rtype::RRSIG,
    rtype::NSEC,
    rtype::DNSKEY,
    rtype::NSEC3,
    rtype::NSEC3PARAM,
    rtype::CDS,
    rtype::CDNSKEY,
];

/// The keys of one signed zone.
#[derive(Debug)]
pub struct ZoneKeys {
    /// The zone (lowercase, fully qualified).
    pub zone: String,
    /// Its keys, in the config's order.
    pub keys: Vec<Key>,
    /// Signature lifetime, seconds.
    pub validity: i64,
    /// Re-sign when less than this remains, seconds.
    pub refresh: i64,
    /// The zone is transferred to secondaries: its serial grows with each
    /// new signature window, so they take the new signatures (SPEC §10).
    pub window_serial: bool,
}

/// Loads the key files of a zone; each error names the file.
pub fn load_keys(
    zone: &str,
    d: &config::Dnssec,
    window_serial: bool,
) -> Result<ZoneKeys, Vec<String>> {
    let mut keys = Vec::new();
    let mut errors = Vec::new();
    for (path, display) in &d.keys {
        match keys::load(path, display, zone) {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ZoneKeys {
        zone: zone.to_string(),
        keys,
        validity: d.validity.as_secs() as i64,
        refresh: d.refresh.as_secs() as i64,
        window_serial,
    })
}

/// One key as the status shows it.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct KeyStatus {
    /// The key file as the config names it.
    pub file: String,
    /// Key tag.
    pub tag: u16,
    /// Algorithm number.
    pub algorithm: u8,
    /// Algorithm mnemonic.
    pub algorithm_name: String,
    /// DNSKEY flags (256 ZSK, 257 SEP).
    pub flags: u16,
    /// What it does now: "ksk", "zsk", "csk" when signing, else "".
    pub role: String,
    /// future | published | active | inactive | deleted.
    pub state: String,
}

/// One signed zone as the status shows it.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = DnssecStatus)]
pub struct ZoneStatus {
    /// The zone.
    pub zone: String,
    /// Its keys.
    pub keys: Vec<KeyStatus>,
    /// DS records (SHA-256) for the parent, of the keys signing the DNSKEY set.
    pub ds: Vec<String>,
    /// Inception of the signatures served (Unix seconds).
    pub inception: i64,
    /// Expiration of the signatures served (Unix seconds): the earliest.
    pub expiration: i64,
    /// When the signing set is next re-made (Unix seconds).
    pub next_resign: i64,
    /// `expiration` as RFC 3339.
    pub expires_at: String,
    /// `next_resign` as RFC 3339.
    pub next_resign_at: String,
}

/// What a snapshot build gets from signing.
#[derive(Debug)]
pub struct Signing {
    /// The zone table with each signed apex's DNSKEY, CDS and CDNSKEY.
    pub table: Arc<Table>,
    /// The signatures.
    pub signed: Arc<Signed>,
    /// Per signed zone, for the status.
    pub status: Vec<ZoneStatus>,
    /// When signing must run again (window end or key timing point).
    pub next_event: i64,
}

/// Signs `table` (the zones as loaded) for the keys of each zone (by
/// zone index) at time `now`.
pub fn sign(
    table: &Table,
    keys: &[Option<Arc<ZoneKeys>>],
    services: &[ServiceInput],
    now: i64,
    made: &Counter,
    prev: Option<store::Prev<'_>>,
    floors: &[Option<u32>],
) -> Result<Signing, String> {
    let mut signed_table = table.clone();
    let mut signers = Vec::with_capacity(table.zones.len());
    let mut status = Vec::new();
    let mut next_event = i64::MAX;
    for (zi, z) in table.zones.iter().enumerate() {
        let Some(zk) = keys.get(zi).and_then(Option::as_ref) else {
            signers.push(None);
            continue;
        };
        for (name, node) in table.names() {
            if node.zone as usize != zi {
                continue;
            }
            if let Some(rr) = node.rrsets.iter().find(|r| MADE_HERE.contains(&r.rtype)) {
                return Err(format!(
                    "zone {}: the zone file holds {} {} records; signpost makes DNSSEC records from the key files, remove them",
                    z.name,
                    wire_text(name),
                    hickory_proto::rr::RecordType::from(rr.rtype)
                ));
            }
        }
        let (signer, zs, sets, next) = zone_signer(zk, now, made)?;
        signed_table.replace_rrsets(&z.apex, &[rtype::DNSKEY, rtype::CDS, rtype::CDNSKEY], sets);
        if zk.window_serial {
            // the file's serial plus the windows since 1970: it grows with
            // the file's and with each re-signing, the same on every node;
            // and never below the serial served before (`floors`)
            let step = (zk.validity - zk.refresh).max(1);
            let windows = (signer.window.inception + sign::INCEPTION_SLACK) / step;
            // and with each key timing point passed (a rollover step
            // changes the DNSKEY set and the signatures mid-window)
            let passed: i64 = zk
                .keys
                .iter()
                .map(|k| {
                    let t = k.timing;
                    [t.publish, t.activate, t.inactive, t.delete]
                        .into_iter()
                        .flatten()
                        .filter(|&at| at <= now)
                        .count() as i64
                })
                .sum();
            let mut serial = z.serial.wrapping_add((windows + passed) as u32);
            if let Some(&Some(f)) = floors.get(zi)
                && SerialNumber::new(f) > SerialNumber::new(serial)
            {
                // below what was served: one past it, since the signatures
                // changed and secondaries must take them
                serial = f.wrapping_add(1);
            }
            signed_table.set_soa_serial(zi, serial);
        }
        next_event = next_event.min(next);
        status.push(zs);
        signers.push(Some(signer));
    }
    let signed = store::build(&signed_table, signers, services, prev)?;
    Ok(Signing {
        table: Arc::new(signed_table),
        signed: Arc::new(signed),
        status,
        next_event,
    })
}

/// The signer of one zone at `now`, its status, its apex key sets and
/// when it changes next.
fn zone_signer(
    zk: &ZoneKeys,
    now: i64,
    made: &Counter,
) -> Result<(ZoneSigner, ZoneStatus, Vec<RRset>, i64), String> {
    let apex = sign::wire_name(&crate::zone::text_wire(&zk.zone))?;
    let states: Vec<KeyState> = zk.keys.iter().map(|k| k.state(now)).collect();
    let active = |sep: bool| -> Vec<&Key> {
        zk.keys
            .iter()
            .zip(&states)
            .filter(|(k, s)| s.signs() && k.is_sep() == sep)
            .map(|(k, _)| k)
            .collect()
    };
    let (seps, plain) = (active(true), active(false));
    if seps.is_empty() && plain.is_empty() {
        let list: Vec<String> = zk
            .keys
            .iter()
            .zip(&states)
            .map(|(k, s)| format!("{} {}", k.file, s.as_str()))
            .collect();
        return Err(format!(
            "zone {}: no key is active now ({}); a signed zone needs one",
            zk.zone,
            list.join(", ")
        ));
    }
    let zsk_keys = if plain.is_empty() { &seps } else { &plain };
    let ksk_keys = if seps.is_empty() { &plain } else { &seps };
    let signer = |k: &&Key| Signer {
        key: k.signer.clone(),
        tag: k.tag,
        algorithm: Algorithm::from_u8(k.algorithm),
    };
    let window = Window::at(now, zk.validity, zk.refresh);
    let zsigner = ZoneSigner {
        apex,
        zsk: zsk_keys.iter().map(signer).collect(),
        ksk: ksk_keys.iter().map(signer).collect(),
        window,
        made: made.clone(),
    };

    // the apex key sets
    let dnskeys: Vec<RData> = zk
        .keys
        .iter()
        .zip(&states)
        .filter(|(_, s)| s.published())
        .map(|(k, _)| RData::DNSSEC(DNSSECRData::DNSKEY(k.dnskey.clone())))
        .collect();
    let mut sets = vec![RRset::encode(rtype::DNSKEY, KEY_TTL, &dnskeys)?];
    let mut cds = Vec::new();
    let mut cdnskey = Vec::new();
    let mut ds_text = Vec::new();
    for k in ksk_keys {
        let ds = k.ds_sha256_rdata()?;
        cds.push(RData::DNSSEC(DNSSECRData::CDS(CDS::new(
            ds.key_tag(),
            Some(ds.algorithm()),
            ds.digest_type(),
            ds.digest().to_vec(),
        ))));
        cdnskey.push(RData::DNSSEC(DNSSECRData::CDNSKEY(CDNSKEY::with_flags(
            k.flags,
            Some(Algorithm::from_u8(k.algorithm)),
            k.dnskey.public_key().public_bytes().to_vec(),
        ))));
        ds_text.push(format!("{} IN DS {}", zk.zone, k.ds_sha256()?));
    }
    sets.push(RRset::encode(rtype::CDS, KEY_TTL, &cds)?);
    sets.push(RRset::encode(rtype::CDNSKEY, KEY_TTL, &cdnskey)?);

    let keys = zk
        .keys
        .iter()
        .zip(&states)
        .map(|(k, s)| {
            let in_zsk = zsk_keys.iter().any(|j| std::ptr::eq(*j, k));
            let in_ksk = ksk_keys.iter().any(|j| std::ptr::eq(*j, k));
            let role = match (in_ksk, in_zsk) {
                (true, true) => "csk",
                (true, false) => "ksk",
                (false, true) => "zsk",
                _ => "",
            };
            KeyStatus {
                file: k.file.clone(),
                tag: k.tag,
                algorithm: k.algorithm,
                algorithm_name: k.algorithm_name().to_string(),
                flags: k.flags,
                role: role.to_string(),
                state: s.as_str().to_string(),
            }
        })
        .collect();
    let next = zk
        .keys
        .iter()
        .filter_map(|k| k.next_event(now))
        .fold(window.next, i64::min);
    let status = ZoneStatus {
        zone: zk.zone.clone(),
        keys,
        ds: ds_text,
        inception: window.inception,
        expiration: window.expiration,
        next_resign: next,
        expires_at: time_text(window.expiration),
        next_resign_at: time_text(next),
    };
    Ok((zsigner, status, sets, next))
}
