//! The control loop: the one owner of mutable state (compiled config,
//! probe targets, drains). It takes probe reports and admin commands,
//! and publishes a new [`Snapshot`] whenever what the answer path sees
//! changes: bursts of reports are coalesced into one swap.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::ConfigErrors;
use crate::geo::table::{FileId, GeoTable};
use crate::health::{self, ProbeResult, Prober, Report, Tracker};
use crate::metrics::{EndpointLabels, Metrics, ResultLabels, TransitionLabels};
use crate::state::{Compiled, Shared, Snapshot, Target, TargetKey};
use crate::steer;

/// What a drain applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainTarget {
    /// A region by name.
    Region(String),
    /// Every endpoint with this address.
    Endpoint(IpAddr),
}

/// Errors of control commands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// No such region.
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
    /// No endpoint has this address.
    #[error("no endpoint has the address {0}")]
    UnknownEndpoint(IpAddr),
    /// The new configuration is invalid; the old one keeps serving.
    #[error("{0}")]
    Invalid(ConfigErrors),
    /// The control loop is gone.
    #[error("signpost is shutting down")]
    Stopped,
}

/// A request to the control loop.
#[derive(Debug)]
pub enum Command {
    /// Take a region or endpoint out of answers, optionally for a while.
    Drain {
        /// What.
        target: DrainTarget,
        /// How long; `None` = until undrained.
        duration: Option<Duration>,
        /// Outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Put it back.
    Undrain {
        /// What.
        target: DrainTarget,
        /// Outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Reload the configuration file.
    Reload {
        /// Outcome, if anyone waits for it (SIGHUP does not).
        reply: Option<oneshot::Sender<Result<ReloadSummary, ControlError>>>,
    },
    /// Report everything.
    Status {
        /// The report.
        reply: oneshot::Sender<Status>,
    },
}

/// What a successful reload did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Snapshot generation now served.
    pub generation: u64,
    /// Zones loaded.
    pub zones: usize,
    /// Services.
    pub services: usize,
    /// Probe targets kept with their health.
    pub targets_kept: usize,
    /// Kept targets whose timing (interval, timeout, rise, fall) changed
    /// in place.
    pub targets_updated: usize,
    /// New probe targets (probed before the swap).
    pub targets_added: usize,
    /// Targets no longer used.
    pub targets_removed: usize,
    /// The GeoIP database was compiled anew (its file changed).
    pub geoip_reloaded: bool,
    /// What the reload could not apply, e.g. keys that take effect only
    /// at the next restart.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct Drain {
    until: Option<(Instant, SystemTime)>,
}

/// A running probe target.
struct Probed {
    id: u64,
    task: JoinHandle<()>,
    /// The profile it runs; timing updates go to the task on `updates`.
    target: Target,
    updates: watch::Sender<Target>,
    up: bool,
    since: SystemTime,
    last: Option<ProbeResult>,
}

/// The control loop's state.
pub struct Control {
    config_path: PathBuf,
    metrics: Arc<Metrics>,
    shared: Shared,
    compiled: Arc<Compiled>,
    targets: HashMap<TargetKey, Probed>,
    by_id: HashMap<u64, TargetKey>,
    next_id: u64,
    region_drains: HashMap<String, Drain>,
    endpoint_drains: HashMap<IpAddr, Drain>,
    generation: u64,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    /// Endpoint label sets with published gauges.
    published: HashSet<EndpointLabels>,
    /// A reload is being prepared.
    reloading: bool,
    /// Reload requests that arrived meanwhile (served by the next one).
    pending_reloads: Vec<Option<oneshot::Sender<Result<ReloadSummary, ControlError>>>>,
    loaded_tx: mpsc::UnboundedSender<Loaded>,
    loaded_rx: mpsc::UnboundedReceiver<Loaded>,
    /// The admin token, which a reload may change.
    admin_token: Arc<arc_swap::ArcSwapOption<String>>,
    /// `[geoip] watch`: what the file watcher has seen.
    geo_watch: GeoWatch,
    geo_tx: mpsc::UnboundedSender<GeoLoaded>,
    geo_rx: mpsc::UnboundedReceiver<GeoLoaded>,
}

/// How often the GeoIP database file is looked at (`[geoip] watch`).
const GEO_POLL: Duration = Duration::from_secs(1);

/// The file watcher's state: a new file is compiled once it has looked
/// the same on two polls in a row (a file copied in place is complete),
/// and a file that failed is not tried again until it changes.
#[derive(Debug, Default)]
struct GeoWatch {
    seen: Option<FileId>,
    failed: Option<FileId>,
    busy: bool,
}

/// A GeoIP database compiled beside the loop after its file changed.
struct GeoLoaded {
    id: FileId,
    /// The configuration it was compiled for; stale if another reload
    /// swapped meanwhile.
    base: Arc<Compiled>,
    result: Result<Compiled, crate::geo::GeoError>,
}

impl Control {
    /// Probes every target once (probe before serve), then publishes the
    /// first snapshot into a new shared handle.
    pub async fn start(
        config_path: PathBuf,
        compiled: Compiled,
        metrics: Arc<Metrics>,
        admin_token: Arc<arc_swap::ArcSwapOption<String>>,
    ) -> (Control, Shared) {
        let compiled = Arc::new(compiled);
        Compiled::finish_scope_maps(&compiled, &metrics);
        let shared: Shared = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::all_up(
            compiled.clone(),
            0,
        )));
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (loaded_tx, loaded_rx) = mpsc::unbounded_channel();
        let (geo_tx, geo_rx) = mpsc::unbounded_channel();
        let mut c = Control {
            config_path,
            metrics,
            shared: shared.clone(),
            compiled: compiled.clone(),
            targets: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            region_drains: HashMap::new(),
            endpoint_drains: HashMap::new(),
            generation: 0,
            reports_tx,
            reports_rx,
            published: HashSet::new(),
            reloading: false,
            pending_reloads: Vec::new(),
            loaded_tx,
            loaded_rx,
            admin_token,
            geo_watch: GeoWatch::default(),
            geo_tx,
            geo_rx,
        };
        if let Some(g) = &compiled.geo {
            c.metrics
                .geoip_build_timestamp
                .set(g.source.build_epoch as i64);
        }
        let probed = first_probes(compiled.targets.clone()).await;
        c.start_targets(probed);
        c.publish();
        (c, shared)
    }

    /// Starts the probe loops of freshly probed targets, with first probes
    /// spread over one interval instead of in a burst.
    fn start_targets(&mut self, probed: Vec<FirstProbe>) {
        let n = probed.len().max(1) as u32;
        for (
            i,
            FirstProbe {
                target,
                prober,
                result,
            },
        ) in probed.into_iter().enumerate()
        {
            let id = self.next_id;
            self.next_id += 1;
            let key = target.key();
            self.observe_latency(&key, &result);
            let up = result.ok;
            tracing::info!(
                "endpoint {} ({}:{}) starts {}: {}",
                key.probe,
                kind_name(key.check.kind),
                key.check.port,
                if up { "up" } else { "down" },
                result.reason
            );
            let (updates, updates_rx) = watch::channel(target.clone());
            let check = &target.check;
            let task = match prober {
                Ok(p) => {
                    let tracker = Tracker::new(up, check.rise, check.fall);
                    let offset = check
                        .interval
                        .mul_f64(f64::from(i as u32 % n) / f64::from(n));
                    health::spawn_target(
                        id,
                        p,
                        tracker,
                        offset.max(check.interval / 8),
                        self.reports_tx.clone(),
                        updates_rx,
                    )
                }
                Err(e) => {
                    tracing::error!("{e}");
                    tokio::spawn(async {})
                }
            };
            self.by_id.insert(id, key.clone());
            self.targets.insert(
                key,
                Probed {
                    id,
                    task,
                    target,
                    updates,
                    up,
                    since: SystemTime::now(),
                    last: Some(result),
                },
            );
        }
    }

    fn observe_latency(&self, key: &TargetKey, r: &ProbeResult) {
        let address = key.probe.to_string();
        self.metrics
            .probe_latency
            .get_or_create(&crate::metrics::ProbeLabels {
                address: address.clone(),
                check: kind_name(key.check.kind).to_string(),
            })
            .observe(r.latency.as_secs_f64());
        self.metrics
            .probes
            .get_or_create(&crate::metrics::ProbeResultLabels {
                address,
                result: if r.ok { "pass" } else { "fail" }.to_string(),
            })
            .inc();
    }

    /// Runs until `stop` turns true.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut geo_tick = tokio::time::interval(GEO_POLL);
        geo_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let next_expiry = self.next_expiry();
            let mut dirty = false;
            tokio::select! {
                _ = stop.changed() => break,
                Some(r) = self.reports_rx.recv() => {
                    dirty |= self.apply_report(r);
                    // coalesce whatever else has arrived into the same publish
                    while let Ok(r) = self.reports_rx.try_recv() {
                        dirty |= self.apply_report(r);
                    }
                }
                Some(cmd) = commands.recv() => dirty |= self.command(cmd),
                Some(l) = self.loaded_rx.recv() => self.apply_reload(l),
                _ = geo_tick.tick() => self.poll_geo(),
                Some(g) = self.geo_rx.recv() => self.apply_geo(g),
                _ = sleep_until_opt(next_expiry) => dirty |= self.expire_drains(),
            }
            if dirty {
                self.publish();
            }
        }
        for t in self.targets.values() {
            t.task.abort();
        }
    }

    fn apply_report(&mut self, r: Report) -> bool {
        let Some(key) = self.by_id.get(&r.id) else {
            return false; // a target removed by a reload
        };
        self.observe_latency(key, &r.result);
        let Some(t) = self.targets.get_mut(key) else {
            return false;
        };
        let changed = r.changed && t.up != r.up;
        if changed {
            t.up = r.up;
            t.since = SystemTime::now();
            tracing::warn!(
                "endpoint {} ({}:{}) is {}: {}",
                key.probe,
                kind_name(key.check.kind),
                key.check.port,
                if r.up { "up" } else { "down" },
                r.result.reason
            );
            self.metrics
                .transitions
                .get_or_create(&TransitionLabels {
                    address: key.probe.to_string(),
                    to: if r.up { "up" } else { "down" }.to_string(),
                })
                .inc();
        }
        t.last = Some(r.result);
        changed
    }

    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Drain {
                target,
                duration,
                reply,
            } => {
                let r = self.drain(target, duration);
                let ok = r.is_ok();
                send(reply, r);
                ok
            }
            Command::Undrain { target, reply } => {
                let r = self.undrain(target);
                let ok = r.is_ok();
                send(reply, r);
                ok
            }
            Command::Reload { reply } => {
                self.pending_reloads.push(reply);
                if !self.reloading {
                    self.start_reload();
                }
                false // a reload publishes when it is applied
            }
            Command::Status { reply } => {
                send(reply, self.status());
                false
            }
        }
    }

    fn drain(
        &mut self,
        target: DrainTarget,
        duration: Option<Duration>,
    ) -> Result<(), ControlError> {
        let now = SystemTime::now();
        let drain = Drain {
            until: duration.map(|d| (Instant::now() + d, now + d)),
        };
        match target {
            DrainTarget::Region(name) => {
                if !self.compiled.region_index.contains_key(&name) {
                    return Err(ControlError::UnknownRegion(name));
                }
                tracing::warn!("region {name} drained{}", for_text(duration));
                self.region_drains.insert(name, drain);
            }
            DrainTarget::Endpoint(addr) => {
                if !self.compiled.slots.iter().any(|s| s.address == addr) {
                    return Err(ControlError::UnknownEndpoint(addr));
                }
                tracing::warn!("endpoint {addr} drained{}", for_text(duration));
                self.endpoint_drains.insert(addr, drain);
            }
        }
        Ok(())
    }

    fn undrain(&mut self, target: DrainTarget) -> Result<(), ControlError> {
        match target {
            DrainTarget::Region(name) => {
                if !self.compiled.region_index.contains_key(&name) {
                    return Err(ControlError::UnknownRegion(name));
                }
                if self.region_drains.remove(&name).is_some() {
                    tracing::warn!("region {name} undrained");
                }
            }
            DrainTarget::Endpoint(addr) => {
                if !self.compiled.slots.iter().any(|s| s.address == addr) {
                    return Err(ControlError::UnknownEndpoint(addr));
                }
                if self.endpoint_drains.remove(&addr).is_some() {
                    tracing::warn!("endpoint {addr} undrained");
                }
            }
        }
        Ok(())
    }

    fn next_expiry(&self) -> Option<Instant> {
        self.region_drains
            .values()
            .chain(self.endpoint_drains.values())
            .filter_map(|d| d.until.map(|u| u.0))
            .min()
    }

    fn expire_drains(&mut self) -> bool {
        let now = Instant::now();
        let before = self.region_drains.len() + self.endpoint_drains.len();
        self.region_drains.retain(|name, d| {
            let keep = d.until.is_none_or(|u| u.0 > now);
            if !keep {
                tracing::warn!("drain of region {name} expired");
            }
            keep
        });
        self.endpoint_drains.retain(|addr, d| {
            let keep = d.until.is_none_or(|u| u.0 > now);
            if !keep {
                tracing::warn!("drain of endpoint {addr} expired");
            }
            keep
        });
        before != self.region_drains.len() + self.endpoint_drains.len()
    }

    /// Loads and validates the configuration, and probes its new targets
    /// once, in a task beside the loop (which keeps applying health
    /// reports); the result comes back as a [`Loaded`] message.
    fn start_reload(&mut self) {
        self.reloading = true;
        let replies: Vec<_> = self.pending_reloads.drain(..).flatten().collect();
        let path = self.config_path.clone();
        let metrics = self.metrics.clone();
        let known: HashSet<TargetKey> = self.targets.keys().cloned().collect();
        let tx = self.loaded_tx.clone();
        let prev = self.compiled.clone();
        tokio::spawn(async move {
            let file = path.display().to_string();
            let built = tokio::task::spawn_blocking(move || {
                let config = crate::config::load(&path)?;
                let c = Compiled::build(config, &metrics, Some(&prev));
                crate::release_memory();
                c
            })
            .await;
            let result = match built {
                Ok(Ok(compiled)) => {
                    let added: Vec<Target> = compiled
                        .targets
                        .iter()
                        .filter(|t| !known.contains(&t.key()))
                        .cloned()
                        .collect();
                    let probed = first_probes(added).await;
                    Ok((compiled, probed))
                }
                Ok(Err(e)) => Err(e),
                Err(e) => Err(ConfigErrors(vec![crate::config::ConfigError::Read {
                    file,
                    reason: format!("reload task failed: {e}"),
                }])),
            };
            if tx.send(Loaded { result, replies }).is_err() {
                tracing::debug!("reload finished after shutdown");
            }
        });
    }

    /// `[geoip] watch`: looks at the database file, and compiles it beside
    /// the loop once it has changed and settled.
    fn poll_geo(&mut self) {
        let Some(g) = self.compiled.geo.clone() else {
            return;
        };
        if !self.compiled.config.geoip_watch || self.reloading || self.geo_watch.busy {
            return;
        }
        // a file being renamed into place may be missing for a moment
        let Ok(id) = FileId::of(&g.source.path) else {
            return;
        };
        if Some(id) == g.source.id || Some(id) == self.geo_watch.failed {
            self.geo_watch.seen = None;
            return;
        }
        if self.geo_watch.seen != Some(id) {
            self.geo_watch.seen = Some(id);
            return;
        }
        self.geo_watch.busy = true;
        let base = self.compiled.clone();
        let tx = self.geo_tx.clone();
        tracing::info!("{} changed on disk; loading it", g.source.display);
        tokio::task::spawn_blocking(move || {
            let result = GeoTable::open(&g.source.path, &g.source.display)
                .map(|t| base.with_geo(Arc::new(t)));
            crate::release_memory();
            if tx.send(GeoLoaded { id, base, result }).is_err() {
                tracing::debug!("GeoIP database loaded after shutdown");
            }
        });
    }

    /// Serves a database compiled by [`Control::poll_geo`], or keeps the
    /// old one and says why.
    fn apply_geo(&mut self, g: GeoLoaded) {
        self.geo_watch.busy = false;
        self.geo_watch.seen = None;
        match g.result {
            Err(e) => {
                self.geo_watch.failed = Some(g.id);
                self.metrics.geoip_reload_failures.inc();
                tracing::error!("{e}; still serving the previous GeoIP database");
            }
            Ok(_) if !Arc::ptr_eq(&g.base, &self.compiled) => {
                tracing::debug!("a reload came first; it compiled the new database itself");
            }
            Ok(compiled) => {
                let summary = self.swap(compiled, Vec::new());
                tracing::info!(
                    "GeoIP database {} reloaded (generation {})",
                    self.compiled
                        .geo
                        .as_ref()
                        .map_or("", |t| t.source.display.as_str()),
                    summary.generation
                );
            }
        }
    }

    /// Swaps in a prepared reload (or reports why it failed), then starts
    /// the next one if more were requested meanwhile.
    fn apply_reload(&mut self, loaded: Loaded) {
        self.reloading = false;
        let result = match loaded.result {
            Err(e) => {
                self.count_reload("error");
                if e.0.iter().any(|x| {
                    matches!(x, crate::config::ConfigError::Invalid { key, .. } if key == "geoip.database")
                }) {
                    self.metrics.geoip_reload_failures.inc();
                }
                tracing::error!("reload failed, still serving the previous configuration:\n{e}");
                Err(ControlError::Invalid(e))
            }
            Ok((compiled, probed)) => {
                let summary = self.swap(compiled, probed);
                self.count_reload("ok");
                tracing::info!("configuration reloaded (generation {})", summary.generation);
                Ok(summary)
            }
        };
        for reply in loaded.replies {
            send(reply, result.clone());
        }
        if !self.pending_reloads.is_empty() {
            self.start_reload();
        }
    }

    fn swap(&mut self, compiled: Compiled, probed: Vec<FirstProbe>) -> ReloadSummary {
        let keys: HashMap<TargetKey, &Target> =
            compiled.targets.iter().map(|t| (t.key(), t)).collect();
        let removed: Vec<TargetKey> = self
            .targets
            .keys()
            .filter(|k| !keys.contains_key(*k))
            .cloned()
            .collect();
        // kept targets whose timing changed are updated in place
        let mut updated = 0;
        for (k, t) in &keys {
            if let Some(p) = self.targets.get_mut(k)
                && p.target != **t
            {
                p.target = (*t).clone();
                if p.updates.send((*t).clone()).is_err() {
                    tracing::debug!("probe task of {} is gone", k.probe);
                }
                updated += 1;
            }
        }
        let added = probed.len();
        let kept = compiled.targets.len() - added;
        self.start_targets(probed);
        for k in &removed {
            if let Some(t) = self.targets.remove(k) {
                t.task.abort();
                self.by_id.remove(&t.id);
            }
        }
        // drains of names that no longer exist go away with them
        self.region_drains
            .retain(|name, _| compiled.region_index.contains_key(name));
        self.endpoint_drains
            .retain(|addr, _| compiled.slots.iter().any(|s| s.address == *addr));
        let old = &self.compiled.config.server;
        let new = &compiled.config.server;
        let mut warnings = Vec::new();
        if old.admin_token != new.admin_token {
            self.admin_token
                .store(new.admin_token.clone().map(Arc::new));
            tracing::info!("admin token changed");
        }
        let restart_only = [
            ("listen", old.listen != new.listen),
            ("admin", old.admin != new.admin),
            ("workers", old.workers != new.workers),
            (
                "tcp_idle_timeout",
                old.tcp_idle_timeout != new.tcp_idle_timeout,
            ),
            (
                "tcp_max_connections",
                old.tcp_max_connections != new.tcp_max_connections,
            ),
            ("udp_batch_wait", old.udp_batch_wait != new.udp_batch_wait),
        ];
        for (key, changed) in restart_only {
            if changed {
                let w = format!("server.{key} changed: it takes effect at the next restart");
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
        let geo_changed = match (&self.compiled.geo, &compiled.geo) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (a, b) => a.is_some() != b.is_some(),
        };
        let compiled = Arc::new(compiled);
        Compiled::finish_scope_maps(&compiled, &self.metrics);
        if let Some(g) = &compiled.geo
            && geo_changed
        {
            self.metrics
                .geoip_build_timestamp
                .set(g.source.build_epoch as i64);
        }
        let old = std::mem::replace(&mut self.compiled, compiled);
        retire(old);
        self.publish();
        ReloadSummary {
            generation: self.generation,
            zones: self.compiled.table.zones.len(),
            services: self.compiled.services.len(),
            targets_kept: kept,
            targets_updated: updated,
            targets_added: added,
            targets_removed: removed.len(),
            geoip_reloaded: geo_changed,
            warnings,
        }
    }

    fn count_reload(&self, result: &str) {
        self.metrics
            .reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// The decided state of a target; one that is not running counts as
    /// down (fail closed: every target is started before it is served).
    fn target_up(&self, ti: u32) -> bool {
        self.compiled
            .targets
            .get(ti as usize)
            .and_then(|t| self.targets.get(&t.key()))
            .is_some_and(|t| t.up)
    }

    fn publish(&mut self) {
        let c = &self.compiled;
        let flags = c.flags(
            |ti| self.target_up(ti),
            |r| self.region_drains.contains_key(r),
            |a| self.endpoint_drains.contains_key(&a),
        );
        self.generation += 1;
        // Update series in place and drop only those of removed endpoints,
        // so a scrape never sees a gauge vanish and come back.
        let mut current = HashSet::new();
        for (slot, f) in c.slots.iter().zip(flags.iter()) {
            let labels = EndpointLabels {
                region: c.regions[slot.region as usize].name.to_string(),
                address: slot.address.to_string(),
            };
            self.metrics
                .endpoint_up
                .get_or_create(&labels)
                .set(i64::from(f & steer::UP != 0));
            self.metrics
                .endpoint_drained
                .get_or_create(&labels)
                .set(i64::from(f & steer::DRAINED != 0));
            current.insert(labels);
        }
        for stale in self.published.difference(&current) {
            self.metrics.endpoint_up.remove(stale);
            self.metrics.endpoint_drained.remove(stale);
        }
        self.published = current;
        self.metrics.snapshot_generation.set(self.generation as i64);
        self.shared.store(Arc::new(Snapshot {
            generation: self.generation,
            data: c.clone(),
            flags,
        }));
    }

    fn status(&self) -> Status {
        let c = &self.compiled;
        let snap = self.shared.load();
        let regions = c
            .regions
            .iter()
            .enumerate()
            .map(|(ri, r)| {
                let endpoints: Vec<EndpointStatus> = c
                    .slots
                    .iter()
                    .filter(|s| s.region as usize == ri)
                    .map(|s| {
                        let target = s
                            .target
                            .and_then(|t| c.targets.get(t as usize))
                            .and_then(|t| self.targets.get(&t.key()));
                        let f = snap
                            .flags
                            .get(r.endpoints[s.endpoint as usize].slot as usize)
                            .copied()
                            .unwrap_or(0);
                        EndpointStatus {
                            address: s.address.to_string(),
                            weight: r.endpoints[s.endpoint as usize].weight,
                            healthy: f & steer::UP != 0,
                            drained: f & steer::DRAINED != 0,
                            drain_until: self.endpoint_drains.get(&s.address).and_then(drain_until),
                            probe: c
                                .targets
                                .get(s.target.unwrap_or(u32::MAX) as usize)
                                .map(|k| ProbeTarget {
                                    address: k.probe.to_string(),
                                    kind: kind_name(k.check.kind).to_string(),
                                    port: k.check.port,
                                }),
                            last_probe: target.and_then(|t| t.last.clone()),
                            since: target.map(|t| rfc3339(t.since)),
                        }
                    })
                    .collect();
                let drained = self.region_drains.contains_key(r.name.as_ref());
                let healthy = r.endpoints.iter().any(|e| {
                    let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
                    f & steer::UP != 0 && f & steer::DRAINED == 0
                });
                RegionStatus {
                    name: r.name.to_string(),
                    healthy,
                    drained,
                    drain_until: self
                        .region_drains
                        .get(r.name.as_ref())
                        .and_then(drain_until),
                    location: [r.lat, r.lon],
                    weight: r.weight,
                    endpoints,
                }
            })
            .collect::<Vec<_>>();
        let services = c
            .config
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                zone: s.zone.clone(),
                policy: s.policy.as_str().to_string(),
                ttl: s.ttl,
                answers: s.answers,
                when_all_down: match s.when_all_down {
                    crate::config::WhenAllDown::All => "all",
                    crate::config::WhenAllDown::Nodata => "nodata",
                }
                .to_string(),
                regions: s.regions.clone(),
                healthy_regions: s
                    .regions
                    .iter()
                    .filter(|r| regions.iter().any(|x| &x.name == *r && x.healthy))
                    .count(),
            })
            .collect();
        Status {
            generation: snap.generation,
            config: c.config.path.display().to_string(),
            zones: c
                .table
                .zones
                .iter()
                .map(|z| ZoneStatus {
                    name: z.name.clone(),
                    rrsets: z.rrsets,
                })
                .collect(),
            regions,
            services,
        }
    }
}

/// Drops a replaced configuration a few seconds later, on a blocking
/// thread: snapshots still in use finish with it first, and freeing zone
/// tables and GeoIP data never lands on a DNS worker.
fn retire(old: Arc<Compiled>) {
    /// Far longer than a worker holds a snapshot (one batch), short enough
    /// that two configurations seldom overlap in memory.
    const RETIRE_AFTER: Duration = Duration::from_secs(1);
    tokio::spawn(async move {
        tokio::time::sleep(RETIRE_AFTER).await;
        let freed = tokio::task::spawn_blocking(move || {
            drop(old);
            crate::release_memory();
        });
        if let Err(e) = freed.await {
            tracing::debug!("dropping the old configuration: {e}");
        }
    });
}

/// A target's first probe, made before it is served.
struct FirstProbe {
    target: Target,
    prober: Result<Prober, crate::health::probe::ProberError>,
    result: ProbeResult,
}

/// Probes targets once, concurrently (probe before serve); each is bounded
/// by its check's timeout. Results come back in the order of `targets`.
async fn first_probes(targets: Vec<Target>) -> Vec<FirstProbe> {
    let mut set = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        set.spawn(async move {
            let prober = Prober::new(target.clone());
            let result = match &prober {
                Ok(p) => p.probe().await,
                Err(e) => ProbeResult {
                    ok: false,
                    reason: e.to_string(),
                    latency: Duration::ZERO,
                    at: SystemTime::now(),
                },
            };
            (
                i,
                FirstProbe {
                    target,
                    prober,
                    result,
                },
            )
        });
    }
    let mut done = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => done.push(x),
            Err(e) => tracing::error!("initial probe task failed: {e}"),
        }
    }
    done.sort_by_key(|x| x.0);
    done.into_iter().map(|x| x.1).collect()
}

/// A reload prepared beside the control loop: the new configuration, and
/// first probes of its new targets.
struct Loaded {
    result: Result<(Compiled, Vec<FirstProbe>), ConfigErrors>,
    replies: Vec<oneshot::Sender<Result<ReloadSummary, ControlError>>>,
}

fn drain_until(d: &Drain) -> Option<String> {
    d.until.map(|u| rfc3339(u.1))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn for_text(d: Option<Duration>) -> String {
    d.map_or(String::new(), |d| {
        format!(" for {}", humantime::format_duration(d))
    })
}

fn kind_name(k: crate::config::CheckKind) -> &'static str {
    match k {
        crate::config::CheckKind::Http => "http",
        crate::config::CheckKind::Https => "https",
        crate::config::CheckKind::Tcp => "tcp",
    }
}

fn send<T>(reply: oneshot::Sender<T>, v: T) {
    if reply.send(v).is_err() {
        tracing::debug!("control reply dropped: the caller went away");
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Snapshot generation.
    pub generation: u64,
    /// Configuration file.
    pub config: String,
    /// Zones.
    pub zones: Vec<ZoneStatus>,
    /// Regions.
    pub regions: Vec<RegionStatus>,
    /// Services.
    pub services: Vec<ServiceStatus>,
}

/// A zone in the status.
#[derive(Debug, Clone, Serialize)]
pub struct ZoneStatus {
    /// Name.
    pub name: String,
    /// RRsets loaded.
    pub rrsets: usize,
}

/// A region in the status.
#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    /// Name.
    pub name: String,
    /// At least one non-drained endpoint is up.
    pub healthy: bool,
    /// Drained by an operator.
    pub drained: bool,
    /// When the drain ends, if it does.
    pub drain_until: Option<String>,
    /// [lat, lon].
    pub location: [f64; 2],
    /// `weighted` share.
    pub weight: u32,
    /// Endpoints.
    pub endpoints: Vec<EndpointStatus>,
}

/// An endpoint in the status.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointStatus {
    /// Address answered.
    pub address: String,
    /// Share within the region.
    pub weight: u32,
    /// Health is up.
    pub healthy: bool,
    /// Drained (this address).
    pub drained: bool,
    /// When the drain ends.
    pub drain_until: Option<String>,
    /// What is probed.
    pub probe: Option<ProbeTarget>,
    /// The last probe.
    pub last_probe: Option<ProbeResult>,
    /// Since when the health is what it is.
    pub since: Option<String>,
}

/// The probe target of an endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeTarget {
    /// Address probed.
    pub address: String,
    /// http, https or tcp.
    #[serde(rename = "type")]
    pub kind: String,
    /// Port.
    pub port: u16,
}

/// A service in the status.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// Zone.
    pub zone: String,
    /// Policy.
    pub policy: String,
    /// TTL.
    pub ttl: u32,
    /// Addresses per answer.
    pub answers: u32,
    /// All-down behaviour.
    pub when_all_down: String,
    /// Regions in order.
    pub regions: Vec<String>,
    /// Regions currently healthy.
    pub healthy_regions: usize,
}
