//! The snapshot: everything the answer path reads, immutable, published as
//! one `ArcSwap` store. [`Compiled`] is built from a validated config (zones
//! parsed, GeoIP opened, weights and coordinates precomputed) and shared
//! between snapshots; health and drains change only the small `flags`
//! array, so a health change republishes in microseconds.

mod signing;
mod transfer;

pub use signing::Dnssec;
pub use transfer::Transfer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use crate::config::{self, Check, CheckId, Config, ConfigError, ConfigErrors, MapKey};
use crate::dnssec;
use crate::geo::table::{FileId, GeoTable};
use crate::geo::{self, GeoError};
use crate::metrics::Metrics;
use crate::model::{Policy, Select};
use crate::steer;
use crate::zone::{self, Table, ZoneInput};

/// The shared, swappable snapshot.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// The identity of a probe target: the address probed and what is asked
/// of it (SPEC §5). Endpoints with equal keys share one probe, and a
/// target keeps its health across reloads while its key stays.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetKey {
    /// Address probed.
    pub probe: IpAddr,
    /// The check without its timing.
    pub check: CheckId,
}

impl TargetKey {
    /// Its id across the cluster ([`crate::view::target_id`]).
    pub fn cluster_id(&self) -> String {
        crate::view::target_id(self.probe, &self.check)
    }
}

/// A probe target as run: its address and full check profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Address probed.
    pub probe: IpAddr,
    /// Check profile, timing included.
    pub check: Check,
    /// Source address of the probes (`[server] probe_source`, when it is
    /// of the probed address's family).
    pub source: Option<IpAddr>,
    /// The name of the check profile, as configured (for metrics labels;
    /// profiles that differ only in timing share a target, which keeps
    /// the name of the one that probes).
    pub profile: String,
}

impl Target {
    /// Its identity.
    pub fn key(&self) -> TargetKey {
        TargetKey {
            probe: self.probe,
            check: self.check.identity(),
        }
    }
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
    pub table: Arc<Table>,
    /// The compiled GeoIP database.
    pub geo: Option<Arc<GeoTable>>,
    /// Regions, in config order (by name).
    pub regions: Vec<steer::Region>,
    /// Services, in config order; indices match `Node::service`.
    pub services: Vec<steer::Service>,
    /// Every (region, endpoint) pair.
    pub slots: Vec<Slot>,
    /// Distinct probe targets.
    pub targets: Vec<Target>,
    /// Region index by name.
    pub region_index: HashMap<String, u16>,
    /// The NSID answered to queries that ask (`[server] nsid`).
    pub nsid: Option<Box<[u8]>>,
    /// Some service steers by load or latency (least-loaded, fastest, or a
    /// region with `shed`): measurements are published as they come.
    pub uses_live: bool,
    /// Hash of what every node of a cluster must serve alike: the
    /// configuration without `[server]` and `[cluster]`, the zone files'
    /// contents and the GeoIP database's build (16 hex digits).
    pub config_hash: String,
    /// The signatures the answer path copies (some zone is signed).
    pub signed: Option<Arc<dnssec::Signed>>,
    /// How the signed zones are signed (some zone is signed).
    pub dnssec: Option<Arc<Dnssec>>,
    /// By zone index: what transfers carry (zones with a `transfer` table).
    pub transfers: Vec<Option<Arc<Transfer>>>,
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
    /// Per slot: the load and smoothed latency the probes measured.
    pub live: Box<[steer::Live]>,
    /// Per region: its dial (SPEC §11), 1 when none; empty when no
    /// region is dialled.
    pub dials: Box<[f32]>,
    /// In a cluster: the view the flags were decided from, and this
    /// node's name (for explain; the answer path does not look).
    pub cluster: Option<(Arc<crate::view::View>, String)>,
    /// Where a NOTIFY from a zone's primary is passed (the zone's name),
    /// for control to transfer it.
    pub refresh: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Snapshot {
    /// A snapshot with every endpoint up and nothing drained.
    pub fn all_up(data: Arc<Compiled>, generation: u64) -> Snapshot {
        let flags = vec![steer::UP; data.slots.len()].into_boxed_slice();
        let live = vec![steer::Live::UNKNOWN; data.slots.len()].into_boxed_slice();
        Snapshot {
            generation,
            data,
            flags,
            live,
            dials: Box::new([]),
            cluster: None,
            refresh: None,
        }
    }

    /// What a decision reads from this snapshot.
    pub fn inputs(&self) -> steer::Inputs<'_> {
        steer::Inputs {
            regions: &self.data.regions,
            flags: &self.flags,
            live: &self.live,
            dials: &self.dials,
        }
    }
}

impl Compiled {
    /// Loads zones and the GeoIP database named by `config` and compiles
    /// everything, taking from `prev` (the configuration being replaced)
    /// what has not changed: the compiled GeoIP table when the file is the
    /// same, and each geo service's scope bitmap when its regions and map
    /// are the same. Reports every error found.
    pub fn build(
        config: Config,
        metrics: &Metrics,
        prev: Option<&Compiled>,
    ) -> Result<Compiled, ConfigErrors> {
        let mut c = Compiled::parts(config, metrics, prev)?;
        c.index_services(prev);
        Ok(c)
    }

    /// What `signpost check` needs: everything validated and loaded, the
    /// GeoIP database compiled, but no per-service scope bitmaps.
    pub fn check(config: Config, metrics: &Metrics) -> Result<Compiled, ConfigErrors> {
        Compiled::parts(config, metrics, None)
    }

    /// The same configuration over another compiled GeoIP database (the
    /// file changed on disk): zones, regions and health slots are shared.
    pub fn with_geo(&self, geo: Arc<GeoTable>) -> Compiled {
        let mut c = Compiled {
            config: self.config.clone(),
            table: self.table.clone(),
            geo: Some(geo),
            regions: self.regions.clone(),
            services: self.services.clone(),
            slots: self.slots.clone(),
            targets: self.targets.clone(),
            region_index: self.region_index.clone(),
            uses_live: self.uses_live,
            nsid: self.nsid.clone(),
            config_hash: String::new(),
            signed: self.signed.clone(),
            dnssec: self.dnssec.clone(),
            transfers: self.transfers.clone(),
        };
        c.config_hash = config_hash(&c.config, c.geo.as_deref());
        c.index_services(Some(self));
        c
    }

    fn parts(
        config: Config,
        metrics: &Metrics,
        prev: Option<&Compiled>,
    ) -> Result<Compiled, ConfigErrors> {
        let file = config.path.display().to_string();
        let mut errors = Vec::new();

        // The GeoIP database compiles beside the zone files.
        let (geo, zones) = std::thread::scope(|s| {
            let geo = s.spawn(|| open_geo(&config, prev));
            let zones = parse_zones(&config);
            (geo.join(), zones)
        });
        let geo = match geo {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => {
                errors.push(ConfigError::Invalid {
                    file: file.clone(),
                    key: "geoip.database".into(),
                    reason: e.to_string(),
                });
                None
            }
            Err(_) => {
                errors.push(ConfigError::Invalid {
                    file: file.clone(),
                    key: "geoip.database".into(),
                    reason: "compiling the database failed".into(),
                });
                None
            }
        };
        let (table, waiting) = match zones {
            Ok((t, w)) => (Some(t), w),
            Err(es) => {
                errors.extend(es);
                (None, Vec::new())
            }
        };
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let table = Arc::new(table.unwrap_or_default());

        // Regions and slots.
        let mut regions = Vec::new();
        let mut slots = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        let mut target_ids: HashMap<TargetKey, u32> = HashMap::new();
        let mut region_index = HashMap::new();
        for (ri, r) in config.regions.iter().enumerate() {
            region_index.insert(r.name.clone(), ri as u16);
            let check = r
                .check
                .as_ref()
                .and_then(|n| config.checks.get(n).map(|c| (n, c)));
            let mut endpoints = Vec::new();
            for (ei, e) in r.endpoints.iter().enumerate() {
                let target = check.map(|(c_name, c)| {
                    let t = Target {
                        probe: e.probe,
                        check: c.clone(),
                        source: config
                            .server
                            .probe_source
                            .filter(|s| s.is_ipv4() == e.probe.is_ipv4()),
                        profile: c_name.to_string(),
                    };
                    match target_ids.get(&t.key()) {
                        // two profiles that differ only in timing: the
                        // more frequent one probes for both
                        Some(&i) => {
                            let have = &mut targets[i as usize];
                            if t.check.interval < have.check.interval {
                                *have = t;
                            }
                            i
                        }
                        None => {
                            target_ids.insert(t.key(), targets.len() as u32);
                            targets.push(t);
                            (targets.len() - 1) as u32
                        }
                    }
                });
                endpoints.push(steer::Endpoint {
                    addr: e.address,
                    weight: e.weight,
                    slot: slots.len() as u32,
                    capacity: e.capacity as f32,
                    seed: steer::dynamic::seed(e.address.to_string().as_bytes()),
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
                shed: r.shed.map(|s| (s.low, s.high)),
                seed: steer::dynamic::seed(r.name.as_bytes()),
                reach: 1.0 - f64::from(r.bias) / 100.0,
            });
        }

        let services: Vec<steer::Service> = config
            .services
            .iter()
            .map(|s| compile_service(s, &region_index, &regions, metrics))
            .collect();

        let config_hash = config_hash(&config, geo.as_deref());
        let uses_live = regions.iter().any(|r| r.shed.is_some())
            || services.iter().any(|s| {
                matches!(s.policy, Policy::LeastLoaded | Policy::Fastest)
                    || matches!(s.select, Select::LeastLoaded | Select::Fastest)
            });
        let nsid = config
            .server
            .nsid
            .as_ref()
            .map(|n| n.as_bytes().to_vec().into_boxed_slice());
        let (table, signed, dnssec) =
            signing::sign_zones(&config, table, &regions, &services, metrics, prev)?;
        let transfers = transfer::build_all(&config, &table, signed.as_deref(), &waiting).map_err(
            |reason| {
                ConfigErrors(vec![ConfigError::Invalid {
                    file: config.path.display().to_string(),
                    key: "zones".into(),
                    reason,
                }])
            },
        )?;
        Ok(Compiled {
            transfers,
            signed,
            dnssec,
            nsid,
            config: Arc::new(config),
            table,
            geo,
            regions,
            services,
            slots,
            targets,
            region_index,
            uses_live,
            config_hash,
        })
    }

    /// Gives every geo service its index over the compiled GeoIP table:
    /// services with the same regions and map share one, and one from
    /// `prev` over the same table is reused with its scope map. New scope
    /// maps are computed here, on every core, when that is quick; else
    /// [`Compiled::finish_scope_maps`] computes them in the background.
    fn index_services(&mut self, prev: Option<&Compiled>) {
        let Some(table) = self.geo.clone() else {
            for s in &mut self.services {
                s.geo = None;
            }
            return;
        };
        let mut have: HashMap<GeoSig, Arc<steer::GeoIndex>> = HashMap::new();
        if let Some(p) = prev {
            for s in &p.services {
                if let Some(ix) = &s.geo
                    && Arc::ptr_eq(&ix.table, &table)
                {
                    have.insert(geo_sig(s, &p.regions), ix.clone());
                }
            }
        }
        for i in 0..self.services.len() {
            let s = &self.services[i];
            let ix = (s.policy == Policy::Geo).then(|| {
                have.entry(geo_sig(s, &self.regions))
                    .or_insert_with(|| Arc::new(steer::GeoIndex::new(table.clone())))
                    .clone()
            });
            self.services[i].geo = ix;
        }
        let pending = self.pending_scope_maps();
        if scope_work(pending.len(), &table) <= INLINE_SCOPE_WORK {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            compute_scope_maps(&self.services, &self.regions, &pending, threads, &|| false);
        }
    }

    /// One service for each geo index still without its scope map.
    pub fn pending_scope_maps(&self) -> Vec<usize> {
        let mut seen: Vec<*const steer::GeoIndex> = Vec::new();
        let mut out = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            if let Some(ix) = &s.geo
                && !ix.ready()
                && !seen.contains(&Arc::as_ptr(ix))
            {
                seen.push(Arc::as_ptr(ix));
                out.push(i);
            }
        }
        out
    }

    /// Computes the scope maps still missing on one background thread, so
    /// that a start or reload with hundreds of geo services answers at
    /// once (with narrower, still correct, scopes meanwhile). The thread
    /// stops early when this configuration is replaced.
    pub fn finish_scope_maps(this: &Arc<Compiled>, metrics: &Arc<Metrics>) {
        let pending = this.pending_scope_maps();
        metrics.geoip_scope_maps_pending.set(pending.len() as i64);
        if pending.is_empty() {
            return;
        }
        let weak = Arc::downgrade(this);
        let gauge = metrics.geoip_scope_maps_pending.clone();
        let spawned = std::thread::Builder::new()
            .name("signpost-scopes".into())
            .spawn(move || {
                let Some(c) = weak.upgrade() else {
                    return; // replaced: the next configuration has its own
                };
                let start = std::time::Instant::now();
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                // stop when every other holder has let go: replaced
                let replaced = || Arc::strong_count(&c) <= 1;
                compute_scope_maps(&c.services, &c.regions, &pending, threads, &replaced);
                let left = c.pending_scope_maps().len();
                gauge.set(left as i64);
                if left == 0 {
                    tracing::info!(
                        "ECS scope maps of {} geo services ready in {:.1?}",
                        pending.len(),
                        start.elapsed()
                    );
                }
                drop(c);
                crate::os::release_memory();
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the scope map thread ({e}); computing them here");
            let pending = this.pending_scope_maps();
            compute_scope_maps(&this.services, &this.regions, &pending, 1, &|| false);
            metrics.geoip_scope_maps_pending.set(0);
        }
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

/// What a geo service's scope bitmap depends on: its regions' locations
/// and biases in order, and its country and continent map keys (CIDR keys are
/// matched per query).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GeoSig {
    units: Vec<[u64; 3]>,
    reaches: Vec<u64>,
    keys: Vec<(u8, [u8; 2], u16)>,
    entries: Vec<Vec<u8>>,
}

fn geo_sig(s: &steer::Service, regions: &[steer::Region]) -> GeoSig {
    let units = s
        .regions
        .iter()
        .map(|&ri| regions[ri as usize].unit.map(f64::to_bits))
        .collect();
    let mut keys: Vec<(u8, [u8; 2], u16)> = s
        .map
        .countries
        .iter()
        .map(|(c, e)| (0, *c, *e))
        .chain(s.map.continents.iter().map(|(c, e)| (1, *c, *e)))
        .collect();
    keys.sort_unstable();
    GeoSig {
        units,
        reaches: s
            .regions
            .iter()
            .map(|&ri| regions[ri as usize].reach.to_bits())
            .collect(),
        keys,
        entries: s.map.entries.iter().map(|(_, p)| p.clone()).collect(),
    }
}

/// Most work (table nodes times passes) done before a configuration is
/// served; about a quarter of a second on one core.
const INLINE_SCOPE_WORK: usize = 30_000_000;

/// The work of `maps` scope maps over `table`, in passes over its nodes:
/// one a map for a few maps (each computed alone), else about five for
/// the cells and the relabelled tree and two per 32 maps.
fn scope_work(maps: usize, table: &GeoTable) -> usize {
    let passes = if maps <= steer::SCOPE_ALONE {
        maps
    } else {
        5 + 2 * maps.div_ceil(crate::geo::scope::LANES)
    };
    passes.saturating_mul(table.len().max(1))
}

/// Computes the scope maps of the indexes of `services[i]` for each `i`
/// in `todo`, on up to `threads` threads, until `stop` says to.
fn compute_scope_maps(
    services: &[steer::Service],
    regions: &[steer::Region],
    todo: &[usize],
    threads: usize,
    stop: &(dyn Fn() -> bool + Sync),
) {
    let jobs: Vec<(&steer::GeoIndex, &steer::Service)> = todo
        .iter()
        .filter_map(|&si| services.get(si))
        .filter_map(|s| s.geo.as_deref().map(|ix| (ix, s)))
        .collect();
    steer::compute_scope_maps(&jobs, regions, threads, stop);
}

/// The compiled GeoIP table for `config`: the previous one when the file
/// has not changed since it was read, else the file compiled anew.
fn open_geo(config: &Config, prev: Option<&Compiled>) -> Result<Option<Arc<GeoTable>>, GeoError> {
    let Some(path) = &config.geoip else {
        return Ok(None);
    };
    if let Some(old) = prev.and_then(|p| p.geo.as_ref())
        && old.source.path == *path
        && old.source.id.is_some()
        && FileId::of(path).ok() == old.source.id
    {
        return Ok(Some(old.clone()));
    }
    let start = std::time::Instant::now();
    let t = GeoTable::open(path, &path.display().to_string())?;
    tracing::info!(
        "compiled {} ({}, {} classes, {} nodes) in {:.2?}",
        t.source.display,
        t.source.kind,
        t.class_count(),
        t.len(),
        start.elapsed()
    );
    Ok(Some(Arc::new(t)))
}

/// See [`Compiled::config_hash`].
fn config_hash(config: &Config, geo: Option<&GeoTable>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(config.shared_text.as_bytes());
    for z in &config.zones {
        h.update(z.name.as_bytes());
        // the zone files were just read whole; a file gone meanwhile
        // only changes the hash
        h.update(crate::os::read_input(&z.file).unwrap_or_default());
        // a signed zone's public keys and their timing (the .key files;
        // never the private halves): nodes must sign with the same keys
        for (key, _) in z.dnssec.iter().flat_map(|d| &d.keys) {
            let public = match key.extension().and_then(|e| e.to_str()) {
                Some("private" | "key") => key.with_extension("key"),
                _ => std::path::PathBuf::from(format!("{}.key", key.display())),
            };
            h.update(crate::os::read_input(&public).unwrap_or_default());
        }
    }
    if let Some(g) = geo {
        h.update(g.source.kind.as_bytes());
        h.update(g.source.build_epoch.to_be_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses every zone file and builds the lookup table.
/// Zones taken from a primary whose copy is missing or damaged get a
/// placeholder (an SOA with serial 0) and are named in the second value:
/// they are not passed on to secondaries until a transfer succeeds.
fn parse_zones(config: &Config) -> Result<(Table, Vec<String>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut inputs = Vec::new();
    let mut waiting = Vec::new();
    for z in &config.zones {
        let display = display_path(&z.file, &z.file_display);
        if let Some(p) = &z.primary {
            // the copy transferred from the primary, in wire form
            let copy = crate::os::read_input(&z.file)
                .map_err(|e| e.to_string())
                .and_then(|b| zone::parse_wire(&b, &display).map_err(|e| e.reason));
            let rrsets = match copy {
                Ok(rrsets) => rrsets,
                Err(why) => {
                    // none yet, or damaged: the zone's services answer, its
                    // static names wait for the next transfer (SPEC §10)
                    let why = if z.file.exists() {
                        format!("its copy {} is unusable ({why})", z.file.display())
                    } else {
                        format!("no copy from its primary {} yet", p.addr)
                    };
                    tracing::warn!(
                        "zone {}: {why}; serving its services only until a transfer succeeds",
                        z.name
                    );
                    waiting.push(z.name.clone());
                    let text =
                        "@ 0 IN SOA invalid. invalid. 0 60 60 604800 0\n@ 0 IN NS invalid.\n";
                    match zone::parse_text(text, None, &display, &z.name) {
                        Ok(r) => r,
                        Err(e) => {
                            errors.push(ConfigError::Zone(e));
                            continue;
                        }
                    }
                }
            };
            inputs.push((z, display, rrsets));
            continue;
        }
        match zone::parse_file(&z.file, &display, &z.name) {
            Ok(rrsets) => inputs.push((z, display, rrsets)),
            Err(e) => errors.push(ConfigError::Zone(e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let service_names: Vec<(&str, u32)> = config
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i as u32))
        .collect();
    let zones = inputs
        .iter_mut()
        .map(|(z, display, rrsets)| ZoneInput {
            name: &z.name,
            file: display,
            rrsets: std::mem::take(rrsets),
        })
        .collect();
    Table::build(zones, &service_names)
        .map(|t| (t, waiting))
        .map_err(|es| es.into_iter().map(ConfigError::Zone).collect())
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
    all_regions: &[steer::Region],
    metrics: &Metrics,
) -> steer::Service {
    let regions: Vec<u16> = s
        .regions
        .iter()
        .filter_map(|r| region_index.get(r).copied())
        .collect();
    let biased = regions
        .iter()
        .any(|&ri| all_regions.get(ri as usize).is_some_and(|r| r.reach != 1.0));
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
        policy: s.policy,
        select: s.select,
        hash_prefix: s.hash_prefix,
        biased,
        ttl: s.ttl,
        answers: s.answers as u8,
        when_all_down: s.when_all_down,
        map,
        geo: None,
    }
}

/// Loads, validates and compiles a configuration file.
pub fn load(path: &Path, metrics: &Metrics) -> Result<Compiled, ConfigErrors> {
    let config = config::load(path)?;
    Compiled::build(config, metrics, None)
}
