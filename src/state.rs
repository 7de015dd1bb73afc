//! The snapshot: everything the answer path reads, immutable, published as
//! one `ArcSwap` store. [`Compiled`] is built from a validated config (zones
//! parsed, GeoIP opened, weights and coordinates precomputed) and shared
//! between snapshots; health and drains change only the small `flags`
//! array, so a health change republishes in microseconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use crate::config::{self, Check, Config, ConfigError, ConfigErrors, MapKey};
use crate::geo::{self, GeoDb};
use crate::metrics::Metrics;
use crate::steer;
use crate::zone::{self, Table, ZoneInput};

/// A service's map as configured: services with equal regions and maps
/// share one compiled GeoIP index.
type MapSignature = Vec<(String, Vec<String>)>;

/// The shared, swappable snapshot.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// What one probe target is: the address probed and the check profile.
/// Endpoints with equal keys share one probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    /// Address probed.
    pub probe: IpAddr,
    /// Check profile.
    pub check: Check,
}

/// One (region, endpoint) pair; health flags are kept per slot.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Region index.
    pub region: u16,
    /// Endpoint index within the region.
    pub endpoint: u8,
    /// Address answered.
    pub address: IpAddr,
    /// Probe target, `None` when the region has no check (always up).
    pub target: Option<u32>,
}

/// The configuration compiled for answering.
#[derive(Debug)]
pub struct Compiled {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Static zone data and service names.
    pub table: Table,
    /// GeoIP database.
    pub geo: Option<Arc<GeoDb>>,
    /// Regions, in config order (by name).
    pub regions: Vec<steer::Region>,
    /// Services, in config order; indices match `Node::service`.
    pub services: Vec<steer::Service>,
    /// Every (region, endpoint) pair.
    pub slots: Vec<Slot>,
    /// Distinct probe targets.
    pub targets: Vec<TargetKey>,
    /// Region index by name.
    pub region_index: HashMap<String, u16>,
}

/// An immutable view of everything the answer path needs.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases with every publish.
    pub generation: u64,
    /// Compiled configuration.
    pub data: Arc<Compiled>,
    /// Per slot: `steer::UP` and `steer::DRAINED` bits.
    pub flags: Box<[u8]>,
}

impl Snapshot {
    /// A snapshot with every endpoint up and nothing drained.
    pub fn all_up(data: Arc<Compiled>, generation: u64) -> Snapshot {
        let flags = vec![steer::UP; data.slots.len()].into_boxed_slice();
        Snapshot {
            generation,
            data,
            flags,
        }
    }
}

impl Compiled {
    /// Loads zones and the GeoIP database named by `config` and compiles
    /// everything; reports every error found.
    pub fn build(config: Config, metrics: &Metrics) -> Result<Compiled, ConfigErrors> {
        let file = config.path.display().to_string();
        let mut errors = Vec::new();

        let geo = match &config.geoip {
            None => None,
            Some(p) => match GeoDb::open(p, &p.display().to_string()) {
                Ok(db) => Some(Arc::new(db)),
                Err(e) => {
                    errors.push(ConfigError::Invalid {
                        file: file.clone(),
                        key: "geoip.database".into(),
                        reason: e.to_string(),
                    });
                    None
                }
            },
        };

        let mut inputs = Vec::new();
        for z in &config.zones {
            let display = display_path(&z.file, &z.file_display);
            match zone::parse_file(&z.file, &display, &z.name) {
                Ok(rrsets) => inputs.push((z, display, rrsets)),
                Err(e) => errors.push(ConfigError::Zone(e)),
            }
        }
        let service_names: Vec<(&str, u32)> = config
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i as u32))
            .collect();
        let table = if inputs.len() == config.zones.len() {
            let zones = inputs
                .iter()
                .map(|(z, display, rrsets)| ZoneInput {
                    name: &z.name,
                    file: display,
                    rrsets: rrsets.clone(),
                })
                .collect();
            match Table::build(zones, &service_names) {
                Ok(t) => Some(t),
                Err(es) => {
                    errors.extend(es.into_iter().map(ConfigError::Zone));
                    None
                }
            }
        } else {
            None
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let table = table.unwrap_or_default();

        // Regions and slots.
        let mut regions = Vec::new();
        let mut slots = Vec::new();
        let mut targets: Vec<TargetKey> = Vec::new();
        let mut target_ids: HashMap<TargetKey, u32> = HashMap::new();
        let mut region_index = HashMap::new();
        for (ri, r) in config.regions.iter().enumerate() {
            region_index.insert(r.name.clone(), ri as u16);
            let check = r.check.as_ref().and_then(|c| config.checks.get(c));
            let mut endpoints = Vec::new();
            for (ei, e) in r.endpoints.iter().enumerate() {
                let target = check.map(|c| {
                    let key = TargetKey {
                        probe: e.probe,
                        check: c.clone(),
                    };
                    *target_ids.entry(key.clone()).or_insert_with(|| {
                        targets.push(key);
                        (targets.len() - 1) as u32
                    })
                });
                endpoints.push(steer::Endpoint {
                    addr: e.address,
                    weight: e.weight,
                    slot: slots.len() as u32,
                });
                slots.push(Slot {
                    region: ri as u16,
                    endpoint: ei as u8,
                    address: e.address,
                    target,
                });
            }
            regions.push(steer::Region {
                name: r.name.clone().into_boxed_str(),
                lat: r.lat,
                lon: r.lon,
                unit: geo::unit_vector(r.lat, r.lon),
                weight: r.weight,
                endpoints,
            });
        }

        let mut services: Vec<steer::Service> = config
            .services
            .iter()
            .map(|s| compile_service(s, &region_index, metrics))
            .collect();
        // Compile the GeoIP database per geo service; services with the
        // same regions and map share one index.
        if let Some(db) = &geo {
            let mut built: Vec<(Vec<u16>, MapSignature, Arc<steer::GeoIndex>)> = Vec::new();
            for (svc, cfg) in services.iter_mut().zip(&config.services) {
                if svc.policy != steer::Policy::Geo {
                    continue;
                }
                let map: MapSignature = cfg
                    .map
                    .iter()
                    .map(|m| (m.key.clone(), m.regions.clone()))
                    .collect();
                if let Some((_, _, ix)) = built
                    .iter()
                    .find(|(r, m, _)| *r == svc.regions && *m == map)
                {
                    svc.geo = Some(ix.clone());
                    continue;
                }
                let start = std::time::Instant::now();
                let ix = Arc::new(steer::GeoIndex::build(db, svc, &regions));
                tracing::debug!(
                    "compiled {} for {}: {} nodes, {} orders, {:?}",
                    db.path,
                    svc.name,
                    ix.tree.len(),
                    ix.orders.len(),
                    start.elapsed()
                );
                svc.geo = Some(ix.clone());
                built.push((svc.regions.clone(), map, ix));
            }
        }

        Ok(Compiled {
            config: Arc::new(config),
            table,
            geo,
            regions,
            services,
            slots,
            targets,
            region_index,
        })
    }

    /// Health flags for every slot from target states and drains.
    pub fn flags(
        &self,
        target_up: impl Fn(u32) -> bool,
        region_drained: impl Fn(&str) -> bool,
        address_drained: impl Fn(IpAddr) -> bool,
    ) -> Box<[u8]> {
        self.slots
            .iter()
            .map(|s| {
                let mut f = 0;
                if s.target.is_none_or(&target_up) {
                    f |= steer::UP;
                }
                if region_drained(&self.regions[s.region as usize].name)
                    || address_drained(s.address)
                {
                    f |= steer::DRAINED;
                }
                f
            })
            .collect()
    }
}

fn display_path(resolved: &Path, as_written: &str) -> String {
    if Path::new(as_written).is_absolute() {
        as_written.to_string()
    } else {
        resolved.display().to_string()
    }
}

fn compile_service(
    s: &config::Service,
    region_index: &HashMap<String, u16>,
    metrics: &Metrics,
) -> steer::Service {
    let regions: Vec<u16> = s
        .regions
        .iter()
        .filter_map(|r| region_index.get(r).copied())
        .collect();
    let position = |name: &String| s.regions.iter().position(|r| r == name).map(|p| p as u8);
    let mut map = steer::GeoMap::default();
    let mut cidrs = Vec::new();
    let mut countries = FxHashMap::default();
    let mut continents = FxHashMap::default();
    for (i, m) in s.map.iter().enumerate() {
        let i = i as u16;
        map.entries.push((
            m.key.clone().into_boxed_str(),
            m.regions.iter().filter_map(position).collect(),
        ));
        match m.matcher {
            MapKey::Cidr(n) => cidrs.push((n, i)),
            MapKey::Country(c) => {
                countries.insert(c, i);
            }
            MapKey::Continent(c) => {
                continents.insert(c, i);
            }
        }
    }
    // most specific first, so the first containing network is the match
    cidrs.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
    map.cidrs = cidrs;
    map.countries = countries;
    map.continents = continents;
    steer::Service {
        name: s.name.clone().into_boxed_str(),
        counter_slots: s
            .regions
            .iter()
            .map(|r| metrics.answer_slot(&s.name, r))
            .collect(),
        regions,
        policy: match s.policy {
            config::Policy::Geo => steer::Policy::Geo,
            config::Policy::Weighted => steer::Policy::Weighted,
            config::Policy::Failover => steer::Policy::Failover,
        },
        ttl: s.ttl,
        answers: s.answers as u8,
        when_all_down: match s.when_all_down {
            config::WhenAllDown::All => steer::WhenAllDown::All,
            config::WhenAllDown::Nodata => steer::WhenAllDown::Nodata,
        },
        map,
        geo: None,
    }
}

/// Loads, validates and compiles a configuration file (what `check` does).
pub fn load(path: &Path, metrics: &Metrics) -> Result<Compiled, ConfigErrors> {
    let config = config::load(path)?;
    Compiled::build(config, metrics)
}
