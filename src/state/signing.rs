//! Signing at compile time (SPEC §9): the key files loaded, the zones
//! signed through `dnssec` (taking unchanged signatures from the
//! configuration replaced), re-signing when a window ends or a key's
//! timing point passes, and the serial of zones given out by transfer,
//! which never goes back.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Compiled, transfer};
use crate::config::{Config, ConfigError, ConfigErrors, key_segment};
use crate::dnssec;
use crate::metrics::Metrics;
use crate::steer;
use crate::zone::{self, Table};

/// The zones' signing (SPEC §9): what re-signing starts from, and what
/// the status shows.
#[derive(Debug)]
pub struct Dnssec {
    /// Keys by zone index (None: the zone is not signed).
    pub keys: Vec<Option<Arc<dnssec::ZoneKeys>>>,
    /// The zones as loaded, before their apex key sets were added.
    pub unsigned: Arc<Table>,
    /// What each service can answer with, as signing sees it.
    pub services: Vec<dnssec::ServiceInput>,
    /// Per signed zone: keys, DS, window.
    pub status: Vec<dnssec::ZoneStatus>,
    /// When the signatures must be re-made (Unix seconds): the next
    /// window or key timing point.
    pub next_event: i64,
}

/// Loads the key files of the signed zones and signs them; the table
/// returned has their apex key sets.
#[allow(clippy::type_complexity)]
pub(super) fn sign_zones(
    config: &Config,
    table: Arc<Table>,
    regions: &[steer::Region],
    services: &[steer::Service],
    metrics: &Metrics,
    prev: Option<&Compiled>,
) -> Result<(Arc<Table>, Option<Arc<dnssec::Signed>>, Option<Arc<Dnssec>>), ConfigErrors> {
    if config.zones.iter().all(|z| z.dnssec.is_none()) {
        let mut table = table;
        keep_serials(config, &mut table, prev);
        return Ok((table, None, None));
    }
    let file = config.path.display().to_string();
    let mut errors = Vec::new();
    let mut keys = Vec::with_capacity(config.zones.len());
    for z in &config.zones {
        let Some(d) = &z.dnssec else {
            keys.push(None);
            continue;
        };
        match dnssec::load_keys(&z.name, d, z.transfer.is_some()) {
            Ok(k) => keys.push(Some(Arc::new(k))),
            Err(es) => {
                keys.push(None);
                errors.extend(es.into_iter().map(|reason| ConfigError::Invalid {
                    file: file.clone(),
                    key: format!("zones.{}.dnssec.keys", key_segment(&z.name)),
                    reason,
                }));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let inputs = signing_inputs(regions, services);
    let now = dnssec::unix_now();
    let started = std::time::Instant::now();
    let floors = serial_floors(config, prev);
    let before = prev;
    let prev = prev.and_then(Compiled::signing_prev);
    let made = &metrics.dnssec_signatures_made;
    match dnssec::sign(&table, &keys, &inputs, now, made, prev, &floors) {
        Ok(mut s) => {
            // unsigned zones given out by transfer (signed ones kept theirs)
            keep_serials(config, &mut s.table, before);
            tracing::info!(
                "signed {} zone(s): {} RRSIG sets, about {} KiB, in {:.0?}",
                s.status.len(),
                s.signed.count(),
                s.signed.bytes() / 1024,
                started.elapsed()
            );
            let state = Dnssec {
                keys,
                unsigned: table,
                services: inputs,
                status: s.status,
                next_event: s.next_event,
            };
            Ok((s.table, Some(s.signed), Some(Arc::new(state))))
        }
        Err(reason) => Err(ConfigErrors(vec![ConfigError::Invalid {
            file,
            key: "zones".into(),
            reason,
        }])),
    }
}

/// By zone index, for zones given out by transfer: the serial `prev`
/// served, below which the serial must not go (secondaries would keep
/// their older copy).
fn serial_floors(config: &Config, prev: Option<&Compiled>) -> Vec<Option<u32>> {
    config
        .zones
        .iter()
        .map(|z| {
            z.transfer.as_ref()?;
            prev?
                .table
                .zones
                .iter()
                .find(|p| p.name == z.name)
                .map(|p| p.serial)
        })
        .collect()
}

/// A zone given out by transfer served a serial that the new
/// configuration would lower (signing turned off, or shorter windows):
/// keep serving the higher one, so secondaries take the change.
fn keep_serials(config: &Config, table: &mut Arc<Table>, prev: Option<&Compiled>) {
    let floors = serial_floors(config, prev);
    for (zi, floor) in floors.into_iter().enumerate() {
        let Some(f) = floor else {
            continue;
        };
        let Some(now) = table.zones.get(zi).map(|z| z.serial) else {
            continue;
        };
        if hickory_proto::rr::SerialNumber::new(f) > hickory_proto::rr::SerialNumber::new(now) {
            tracing::warn!(
                "zone {}: its serial would go back from {f} to {now}; serving {f} so secondaries take the change (raise the zone's serial past it)",
                table.zones[zi].name
            );
            Arc::make_mut(table).set_soa_serial(zi, f);
        }
    }
}

/// What signing needs of each service: its name, TTL, answer size and
/// addresses by family.
fn signing_inputs(
    regions: &[steer::Region],
    services: &[steer::Service],
) -> Vec<dnssec::ServiceInput> {
    services
        .iter()
        .map(|s| {
            let mut addrs: [Vec<IpAddr>; 2] = [Vec::new(), Vec::new()];
            for &ri in s.regions.iter() {
                for e in &regions[ri as usize].endpoints {
                    addrs[usize::from(e.addr.is_ipv6())].push(e.addr);
                }
            }
            dnssec::ServiceInput {
                name: zone::text_wire(&s.name),
                ttl: s.ttl,
                answers: usize::from(s.answers.max(1)),
                addrs,
            }
        })
        .collect()
}

impl Compiled {
    /// What signing a replacement may take from this configuration.
    fn signing_prev(&self) -> Option<dnssec::Prev<'_>> {
        Some(dnssec::Prev {
            table: &self.table,
            signed: self.signed.as_deref()?,
            services: &self.dnssec.as_ref()?.services,
        })
    }

    /// The same configuration signed anew at `now` (a window ended or a
    /// key timing point passed); `None` when no zone is signed.
    pub fn resigned(&self, now: i64, metrics: &Metrics) -> Option<Result<Compiled, String>> {
        let d = self.dnssec.as_ref()?;
        let made = &metrics.dnssec_signatures_made;
        let floors = serial_floors(&self.config, Some(self));
        let prev = self.signing_prev();
        let mut s = match dnssec::sign(&d.unsigned, &d.keys, &d.services, now, made, prev, &floors)
        {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        // unsigned zones given out by transfer keep the serial they served
        keep_serials(&self.config, &mut s.table, Some(self));
        let state = Dnssec {
            keys: d.keys.clone(),
            unsigned: d.unsigned.clone(),
            services: d.services.clone(),
            status: s.status,
            next_event: s.next_event,
        };
        let waiting: Vec<String> = self
            .config
            .zones
            .iter()
            .enumerate()
            .filter(|(zi, z)| {
                z.transfer.is_some() && self.transfers.get(*zi).is_none_or(Option::is_none)
            })
            .map(|(_, z)| z.name.clone())
            .collect();
        let transfers = match transfer::build_all(&self.config, &s.table, Some(&s.signed), &waiting)
        {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(Compiled {
            transfers,
            config: self.config.clone(),
            table: s.table,
            geo: self.geo.clone(),
            regions: self.regions.clone(),
            services: self.services.clone(),
            slots: self.slots.clone(),
            targets: self.targets.clone(),
            region_index: self.region_index.clone(),
            uses_live: self.uses_live,
            nsid: self.nsid.clone(),
            config_hash: self.config_hash.clone(),
            signed: Some(s.signed),
            dnssec: Some(Arc::new(state)),
        }))
    }
}
