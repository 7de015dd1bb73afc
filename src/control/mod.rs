//! The control loop: the one owner of mutable state (compiled config,
//! probe targets, drains). It takes probe reports and admin commands,
//! and publishes a new [`Snapshot`] whenever what the answer path sees
//! changes: bursts of reports are coalesced into one swap.

mod drains;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::cluster::{self, AuditEntry, DrainKey, ToCluster, View};
use crate::config::ConfigErrors;
use crate::geo::table::{FileId, GeoTable};
use crate::health::{self, ProbeResult, Prober, Report, Tracker};
use crate::metrics::{EndpointLabels, Metrics, ResultLabels, TransitionLabels};
use crate::state::{Compiled, Shared, Snapshot, Target, TargetKey};
use crate::steer;
use drains::{Drain, Drains};

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
    /// The cluster's store cannot be reached; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// A safety rule (`min_healthy_regions`) refused the drain.
    #[error("{0}")]
    Refused(String),
}

impl DrainTarget {
    fn key(self) -> DrainKey {
        match self {
            DrainTarget::Region(n) => DrainKey::Region(n),
            DrainTarget::Endpoint(a) => DrainKey::Endpoint(a),
        }
    }
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
        /// Drain even against a service's `min_healthy_regions`.
        force: bool,
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
        /// Who asked (the caller's address, or `SIGHUP`), for the audit.
        from: String,
        /// Outcome, if anyone waits for it (SIGHUP does not).
        reply: Option<oneshot::Sender<Result<ReloadSummary, ControlError>>>,
    },
    /// Record an operator action.
    Audit(AuditEntry),
    /// The operator actions, newest first (cluster-wide in a cluster).
    AuditLog {
        /// The list.
        reply: oneshot::Sender<Vec<AuditEntry>>,
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

/// A running probe target.
struct Probed {
    id: u64,
    /// Its id across the cluster ([`cluster::target_id`]).
    cluster_id: String,
    task: JoinHandle<()>,
    /// The profile it runs; timing updates go to the task on `updates`.
    target: Target,
    updates: watch::Sender<Target>,
    up: bool,
    since: SystemTime,
    last: Option<ProbeResult>,
    /// The last probe could not run for a local reason (logged once).
    local_error: bool,
    /// The last load its `load_header` reported, and when.
    load: Option<(f64, Instant)>,
    /// Smoothed latency of passing probes (EWMA, alpha 0.3), in ms.
    ewma_ms: Option<f64>,
    /// A missing or garbage load header was logged (once, until it is back).
    load_warned: bool,
}

/// Weight of the newest probe in the smoothed latency (SPEC §4.3).
const EWMA_ALPHA: f64 = 0.3;
/// A load older than this many probe intervals counts as unknown.
const LOAD_FRESH_INTERVALS: u32 = 3;

impl Probed {
    /// What the answer path may use of its measurements now.
    fn live(&self, now: Instant) -> steer::Live {
        let fresh = self.target.check.interval * LOAD_FRESH_INTERVALS;
        steer::Live {
            load: self
                .load
                .filter(|(_, at)| now.saturating_duration_since(*at) <= fresh)
                .map_or(f32::NAN, |(l, _)| l as f32),
            latency_ms: self.ewma_ms.map_or(f32::NAN, |l| l as f32),
        }
    }

    /// Takes in a passing probe's latency and load (a failed probe tells
    /// neither); true when it did.
    fn measure(&mut self, r: &ProbeResult) -> bool {
        if !r.ok {
            return false;
        }
        let ms = r.latency.as_secs_f64() * 1e3;
        self.ewma_ms = Some(match self.ewma_ms {
            None => ms,
            Some(prev) => EWMA_ALPHA * ms + (1.0 - EWMA_ALPHA) * prev,
        });
        match (r.load, &r.load_missing) {
            (Some(l), _) => {
                if self.load_warned {
                    tracing::info!("{} reports its load again", self.target.probe);
                    self.load_warned = false;
                }
                self.load = Some((l, Instant::now()));
            }
            (None, Some(why)) => {
                if !self.load_warned {
                    tracing::warn!(
                        "{}: no load in {:?} ({why}); it counts as unknown, and answers fall back to the weights",
                        self.target.probe,
                        self.target.check.load_header.as_deref().unwrap_or("")
                    );
                    self.load_warned = true;
                }
                self.load = None;
            }
            (None, None) => {}
        }
        true
    }
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
    drains: Drains,
    /// `[server] state`: the drains as last written.
    state: Option<watch::Sender<crate::persist::Saved>>,
    /// `[cluster]`.
    cluster: Option<ClusterLink>,
    /// Operator actions of a single node, newest first.
    audit: VecDeque<AuditEntry>,
    generation: u64,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    /// Endpoint label sets with published gauges.
    published: HashSet<EndpointLabels>,
    /// A reload is being prepared.
    reloading: bool,
    /// Reload requests that arrived meanwhile (served by the next one).
    pending_reloads: Vec<(String, Option<ReloadReply>)>,
    loaded_tx: mpsc::UnboundedSender<Loaded>,
    loaded_rx: mpsc::UnboundedReceiver<Loaded>,
    /// The admin token, which a reload may change.
    admin_token: Arc<arc_swap::ArcSwapOption<String>>,
    /// Drains taken in the last [`RECENT_DRAIN`], for the safety rule.
    recent_drains: Vec<(DrainTarget, Instant)>,
    /// `[geoip] watch`: what the file watcher has seen.
    geo_watch: GeoWatch,
    geo_tx: mpsc::UnboundedSender<GeoLoaded>,
    geo_rx: mpsc::UnboundedReceiver<GeoLoaded>,
}

/// How long a drain just taken counts for the safety rule before the
/// state shows it (a cluster's view takes a round trip through etcd).
const RECENT_DRAIN: Duration = Duration::from_secs(5);

/// Where a reload's outcome goes.
type ReloadReply = oneshot::Sender<Result<ReloadSummary, ControlError>>;

/// The control loop's side of the cluster task.
struct ClusterLink {
    node: String,
    quorum: crate::config::Quorum,
    tx: mpsc::UnboundedSender<ToCluster>,
    views: watch::Receiver<Arc<View>>,
    view: Arc<View>,
    /// Nodes last seen serving another configuration (logged on change).
    diverged: BTreeSet<String>,
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
        stop: watch::Receiver<bool>,
    ) -> (Control, Shared) {
        let compiled = Arc::new(compiled);
        // drains kept across restarts, then (in a cluster) etcd's
        let saved = compiled
            .config
            .server
            .state
            .as_deref()
            .and_then(crate::persist::load)
            .unwrap_or_default();
        let drains = Drains::from_records(&saved.records(), SystemTime::now());
        if !drains.regions.is_empty() || !drains.endpoints.is_empty() {
            tracing::info!(
                "restored from the state file: {} region and {} endpoint drains",
                drains.regions.len(),
                drains.endpoints.len()
            );
        }
        let state = compiled
            .config
            .server
            .state
            .clone()
            .map(|p| crate::persist::writer(p, saved));
        let cluster = compiled.config.cluster.clone().map(|cfg| {
            let h = cluster::start(
                cfg.clone(),
                compiled.config_hash.clone(),
                drains.records(&cfg.node),
                stop,
            );
            let view = h.view.borrow().clone();
            ClusterLink {
                node: cfg.node,
                quorum: cfg.down_quorum,
                tx: h.tx,
                views: h.view,
                view,
                diverged: BTreeSet::new(),
            }
        });
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
            drains,
            state,
            cluster,
            audit: VecDeque::new(),
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
            recent_drains: Vec::new(),
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
            // both outcomes and both transitions exported from the start
            for result in ["pass", "fail"] {
                drop(
                    self.metrics
                        .probes
                        .get_or_create(&crate::metrics::ProbeResultLabels {
                            address: key.probe.to_string(),
                            result: result.into(),
                        }),
                );
            }
            for to in ["up", "down"] {
                drop(self.metrics.transitions.get_or_create(&TransitionLabels {
                    address: key.probe.to_string(),
                    to: to.into(),
                }));
            }
            self.observe_latency(&key, &target.profile, &result);
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
            if let Err(e) = &prober {
                tracing::error!("{e}; the endpoint counts as down until it can be probed");
            }
            let offset = check
                .interval
                .mul_f64(f64::from(i as u32 % n) / f64::from(n));
            let task = health::spawn_target(
                id,
                prober,
                Tracker::new(up, check.rise, check.fall),
                offset.max(check.interval / 8),
                self.reports_tx.clone(),
                updates_rx,
            );
            self.by_id.insert(id, key.clone());
            let cluster_id = cluster::target_id(&key);
            self.targets.insert(
                key.clone(),
                Probed {
                    id,
                    cluster_id,
                    task,
                    target,
                    updates,
                    up,
                    since: SystemTime::now(),
                    load: result.load.map(|l| (l, Instant::now())),
                    ewma_ms: result.ok.then_some(result.latency.as_secs_f64() * 1e3),
                    load_warned: false,
                    last: Some(result),
                    local_error: false,
                },
            );
            self.tell_verdict(&key);
        }
    }

    /// Publishes this node's verdict on a target to the cluster.
    fn tell_verdict(&self, key: &TargetKey) {
        let (Some(c), Some(p)) = (&self.cluster, self.targets.get(key)) else {
            return;
        };
        let verdict = cluster::Verdict {
            healthy: p.up,
            reason: p.last.as_ref().map_or(String::new(), |r| r.reason.clone()),
            since: rfc3339(p.since),
            latency_ms: p
                .last
                .as_ref()
                .map(|r| (r.latency.as_secs_f64() * 1e6).round() / 1e3),
        };
        if c.tx
            .send(ToCluster::Verdict {
                id: p.cluster_id.clone(),
                verdict,
            })
            .is_err()
        {
            tracing::debug!("cluster task is gone");
        }
    }

    /// Records a probe's latency (labelled with the check profile's name)
    /// and outcome.
    fn observe_latency(&self, key: &TargetKey, profile: &str, r: &ProbeResult) {
        let address = key.probe.to_string();
        let check = profile.to_string();
        self.metrics
            .probe_latency
            .get_or_create(&crate::metrics::ProbeLabels {
                address: address.clone(),
                check,
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
            let next_expiry = self
                .drains
                .next_expiry(SystemTime::now())
                .map(|d| Instant::now() + d);
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
                Some(view) = next_view(&mut self.cluster) => dirty |= self.apply_view(view),
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
        let Some(t) = self.targets.get_mut(key) else {
            return false;
        };
        if r.result.local {
            self.metrics.probe_local_errors.inc();
            if !t.local_error {
                tracing::warn!(
                    "cannot probe {} ({}:{}) from this host: {}; its state stays {} and the probe is retried",
                    key.probe,
                    kind_name(key.check.kind),
                    key.check.port,
                    r.result.reason,
                    if t.up { "up" } else { "down" }
                );
                t.local_error = true;
            }
            return false;
        }
        if t.local_error {
            tracing::info!("probing {} works again", key.probe);
            t.local_error = false;
        }
        let key = key.clone();
        let profile = t.target.profile.clone();
        self.observe_latency(&key, &profile, &r.result);
        let Some(t) = self.targets.get_mut(&key) else {
            return false;
        };
        let changed = r.changed && t.up != r.up;
        let measured = t.measure(&r.result);
        if changed {
            t.up = r.up;
            t.since = SystemTime::now();
            if r.up {
                tracing::info!(
                    "endpoint {} ({}:{}) is up: {}",
                    key.probe,
                    kind_name(key.check.kind),
                    key.check.port,
                    r.result.reason
                );
            } else {
                tracing::warn!(
                    "endpoint {} ({}:{}) is down: {}",
                    key.probe,
                    kind_name(key.check.kind),
                    key.check.port,
                    r.result.reason
                );
            }
            self.metrics
                .transitions
                .get_or_create(&TransitionLabels {
                    address: key.probe.to_string(),
                    to: if r.up { "up" } else { "down" }.to_string(),
                })
                .inc();
        }
        t.last = Some(r.result);
        if changed {
            self.tell_verdict(&key);
        }
        // loads and latencies steer only where a service looks at them
        changed || (measured && self.compiled.uses_live)
    }

    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Drain {
                target,
                duration,
                force,
                reply,
            } => {
                if !force && let Err(e) = self.safety(&target) {
                    send(reply, Err(e));
                    return false;
                }
                if self.known(&target).is_ok() {
                    self.recent_drains.push((target.clone(), Instant::now()));
                }
                self.drain(target, duration, reply)
            }
            Command::Undrain { target, reply } => {
                self.recent_drains.retain(|(t, _)| *t != target);
                self.undrain(target, reply)
            }
            Command::Reload { from, reply } => {
                self.pending_reloads.push((from, reply));
                if !self.reloading {
                    self.start_reload();
                }
                false // a reload publishes when it is applied
            }
            Command::Status { reply } => {
                send(reply, self.status());
                false
            }
            Command::Audit(entry) => {
                self.record(entry);
                false
            }
            Command::AuditLog { reply } => {
                let list = match &self.cluster {
                    Some(c) => c.view.audit.clone(),
                    None => self.audit.iter().cloned().collect(),
                };
                send(reply, list);
                false
            }
        }
    }

    /// Logs an operator action and keeps it (in etcd, in a cluster).
    fn record(&mut self, mut entry: AuditEntry) {
        tracing::info!(
            "audit: {} {}{} from {}: {}",
            entry.action,
            entry.target,
            entry
                .duration
                .as_ref()
                .map_or(String::new(), |d| format!(" for {d}")),
            entry.from.as_deref().unwrap_or("-"),
            entry.result
        );
        match &self.cluster {
            Some(c) => {
                entry.node = Some(c.node.clone());
                if c.tx.send(ToCluster::Audit(entry)).is_err() {
                    tracing::debug!("cluster task is gone");
                }
            }
            None => {
                self.audit.push_front(entry);
                self.audit.truncate(cluster::AUDIT_KEEP);
            }
        }
    }

    fn known(&self, target: &DrainTarget) -> Result<(), ControlError> {
        match target {
            DrainTarget::Region(name) if !self.compiled.region_index.contains_key(name) => {
                Err(ControlError::UnknownRegion(name.clone()))
            }
            DrainTarget::Endpoint(addr)
                if !self.compiled.slots.iter().any(|s| s.address == *addr) =>
            {
                Err(ControlError::UnknownEndpoint(*addr))
            }
            _ => Ok(()),
        }
    }

    /// The safety rule (AWS Route 53 ARC's assertion rules): a drain that
    /// would leave a service with fewer usable regions (an endpoint up and
    /// not drained) than its `min_healthy_regions` is refused, naming the
    /// service; a drain that takes no usable region from it is not.
    fn safety(&mut self, target: &DrainTarget) -> Result<(), ControlError> {
        let snap = self.shared.load();
        let data = &snap.data;
        // drains taken in the last seconds count as made: in a cluster the
        // view shows them only once etcd has sent them back
        let now_t = Instant::now();
        self.recent_drains
            .retain(|(_, at)| now_t.duration_since(*at) < RECENT_DRAIN);
        let recent = &self.recent_drains;
        let drained_by = |r: &steer::Region, e: &steer::Endpoint, t: &DrainTarget| match t {
            DrainTarget::Region(n) => **n == *r.name,
            DrainTarget::Endpoint(a) => *a == e.addr,
        };
        // usable for one family: an endpoint of it up and not drained
        let usable = |r: &steer::Region, fam: steer::Family, with_drain: bool| {
            r.endpoints.iter().any(|e| {
                let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
                e.family() == fam
                    && f & steer::UP != 0
                    && f & steer::DRAINED == 0
                    && !recent.iter().any(|(t, _)| drained_by(r, e, t))
                    && !(with_drain && drained_by(r, e, target))
            })
        };
        let mut refused = Vec::new();
        for svc in &data.config.services {
            if svc.min_healthy_regions == 0 {
                continue;
            }
            let regions: Vec<&steer::Region> = svc
                .regions
                .iter()
                .filter_map(|n| data.region_index.get(n))
                .filter_map(|&i| data.regions.get(usize::from(i)))
                .collect();
            // each family the service answers is held to the minimum
            let families: Vec<steer::Family> = [steer::Family::V4, steer::Family::V6]
                .into_iter()
                .filter(|&f| {
                    regions
                        .iter()
                        .any(|r| r.endpoints.iter().any(|e| e.family() == f))
                })
                .collect();
            for &fam in &families {
                let now: Vec<&str> = regions
                    .iter()
                    .filter(|r| usable(r, fam, false))
                    .map(|r| &*r.name)
                    .collect();
                let after = regions.iter().filter(|r| usable(r, fam, true)).count();
                if after < now.len() && after < svc.min_healthy_regions as usize {
                    refused.push(format!(
                        "{} would have {after} usable region{}{} (min_healthy_regions = {}; usable now: {})",
                        svc.name,
                        if after == 1 { "" } else { "s" },
                        match (families.len(), fam) {
                            (1, _) => "",
                            (_, steer::Family::V4) => " for IPv4",
                            (_, steer::Family::V6) => " for IPv6",
                        },
                        svc.min_healthy_regions,
                        if now.is_empty() {
                            "none".to_string()
                        } else {
                            now.join(", ")
                        }
                    ));
                }
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let what = match target {
            DrainTarget::Region(r) => format!("region {r}"),
            DrainTarget::Endpoint(a) => format!("endpoint {a}"),
        };
        Err(ControlError::Refused(format!(
            "refused: draining {what} breaks a safety rule: {}; drain with force=true to override",
            refused.join("; ")
        )))
    }

    /// Drains here, or (in a cluster) in etcd, from where the change
    /// reaches every node's view; the caller hears back once it is stored.
    fn drain(
        &mut self,
        target: DrainTarget,
        duration: Option<Duration>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        if let Err(e) = self.known(&target) {
            send(reply, Err(e));
            return false;
        }
        let now = SystemTime::now();
        let drain = Drain {
            until: duration.map(|d| now + d),
            at: now,
            node: self.cluster.as_ref().map(|c| c.node.clone()),
        };
        if let Some(c) = &self.cluster {
            let (tx, rx) = oneshot::channel();
            let cmd = ToCluster::Drain {
                key: target.key(),
                record: drain.record(&c.node),
                ttl: duration,
                reply: tx,
            };
            forward(&c.tx, cmd, rx, reply);
            return false;
        }
        tracing::info!("{} drained{}", describe(&target), for_text(duration));
        self.drains.set(target.key(), drain);
        self.persist();
        send(reply, Ok(()));
        true
    }

    fn undrain(
        &mut self,
        target: DrainTarget,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        if let Err(e) = self.known(&target) {
            send(reply, Err(e));
            return false;
        }
        if let Some(c) = &self.cluster {
            let (tx, rx) = oneshot::channel();
            let cmd = ToCluster::Undrain {
                key: target.key(),
                reply: tx,
            };
            forward(&c.tx, cmd, rx, reply);
            return false;
        }
        let what = describe(&target);
        let had = self.drains.remove(&target.key());
        if had {
            tracing::info!("{what} undrained");
            self.persist();
        }
        send(reply, Ok(()));
        had
    }

    fn expire_drains(&mut self) -> bool {
        let gone = self.drains.expire(SystemTime::now());
        for k in &gone {
            tracing::info!("the drain of {} expired", describe_key(k));
        }
        if !gone.is_empty() {
            self.persist();
        }
        !gone.is_empty()
    }

    /// Writes the drains to the state file (by the writer task).
    fn persist(&self) {
        if let Some(tx) = &self.state {
            let node = self.cluster.as_ref().map_or("", |c| c.node.as_str());
            tx.send_replace(self.drains.saved(node));
        }
    }

    /// Takes in a new cluster view: its drains replace this node's, and
    /// its verdicts change health by quorum at the next publish.
    fn apply_view(&mut self, view: Arc<View>) -> bool {
        let Some(c) = &mut self.cluster else {
            return false;
        };
        self.metrics
            .cluster_connected
            .set(i64::from(view.connected));
        self.metrics.cluster_nodes.set(view.nodes.len() as i64);
        let mine = &self.compiled.config_hash;
        let diverged: BTreeSet<String> = view
            .nodes
            .iter()
            .filter(|(_, n)| &n.config_hash != mine)
            .map(|(name, _)| name.clone())
            .collect();
        if diverged != c.diverged && !diverged.is_empty() {
            tracing::warn!(
                "cluster: nodes {} serve a configuration other than this node's ({mine}); answers may differ between nameservers",
                diverged.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        c.diverged = diverged;
        c.view = view;
        let drains = Drains::from_records(&c.view.drains, SystemTime::now());
        if drains != self.drains {
            for k in self.drains.records("").keys() {
                if !drains.records("").contains_key(k) {
                    tracing::info!("{} undrained (cluster)", describe_key(k));
                }
            }
            for k in drains.records("").keys() {
                if !self.drains.records("").contains_key(k) {
                    tracing::info!("{} drained (cluster)", describe_key(k));
                }
            }
            self.drains = drains;
            self.persist();
        }
        true
    }

    /// Loads and validates the configuration, and probes its new targets
    /// once, in a task beside the loop (which keeps applying health
    /// reports); the result comes back as a [`Loaded`] message.
    fn start_reload(&mut self) {
        self.reloading = true;
        let (callers, replies): (Vec<String>, Vec<Option<ReloadReply>>) =
            self.pending_reloads.drain(..).unzip();
        let replies: Vec<ReloadReply> = replies.into_iter().flatten().collect();
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
            if tx
                .send(Loaded {
                    result,
                    replies,
                    callers,
                })
                .is_err()
            {
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
        let outcome = match &result {
            Ok(s) => format!("ok (generation {})", s.generation),
            Err(e) => format!(
                "error: {}",
                e.to_string().lines().next().unwrap_or_default()
            ),
        };
        for from in loaded.callers {
            self.record(AuditEntry {
                at: cluster::now_rfc3339(),
                action: "reload".into(),
                target: self.config_path.display().to_string(),
                duration: None,
                from: Some(from),
                result: outcome.clone(),
                node: None,
            });
        }
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
        if let Some(c) = &self.cluster {
            let forget: Vec<String> = removed.iter().map(cluster::target_id).collect();
            if (!forget.is_empty() && c.tx.send(ToCluster::Forget(forget)).is_err())
                || (compiled.config_hash != self.compiled.config_hash
                    && c.tx
                        .send(ToCluster::ConfigHash(compiled.config_hash.clone()))
                        .is_err())
            {
                tracing::debug!("cluster task is gone");
            }
        } else {
            // a single node's drains of names that no longer exist go
            // away with them (a cluster's stay: other nodes may use them)
            let before = self.drains.clone();
            self.drains.retain_known(
                |name| compiled.region_index.contains_key(name),
                |addr| compiled.slots.iter().any(|s| s.address == addr),
            );
            if self.drains != before {
                self.persist();
            }
        }
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
            ("tcp_per_source", old.tcp_per_source != new.tcp_per_source),
            (
                "tcp_max_lifetime",
                old.tcp_max_lifetime != new.tcp_max_lifetime,
            ),
            (
                "tcp_max_queries",
                old.tcp_max_queries != new.tcp_max_queries,
            ),
            ("state", old.state != new.state),
        ];
        for (key, changed) in restart_only {
            if changed {
                let w = format!("server.{key} changed: it takes effect at the next restart");
                tracing::warn!("{w}");
                warnings.push(w);
            }
        }
        if self.compiled.config.cluster != compiled.config.cluster {
            let w = "[cluster] changed: it takes effect at the next restart".to_string();
            tracing::warn!("{w}");
            warnings.push(w);
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
    ///
    /// In a cluster the state is the quorum of live nodes' verdicts, this
    /// node's own included (SPEC §8); while etcd is away, this node's own.
    fn target_up(&self, ti: u32) -> bool {
        let Some(p) = self
            .compiled
            .targets
            .get(ti as usize)
            .and_then(|t| self.targets.get(&t.key()))
        else {
            return false;
        };
        let Some(c) = &self.cluster else {
            return p.up;
        };
        if !c.view.connected {
            return p.up;
        }
        let (mut down, mut voters) = (usize::from(!p.up), 1);
        for (node, v) in c.view.verdicts.get(&p.cluster_id).into_iter().flatten() {
            if *node != c.node && c.view.nodes.contains_key(node) {
                voters += 1;
                down += usize::from(!v.healthy);
            }
        }
        !c.quorum.is_down(down, voters)
    }

    fn publish(&mut self) {
        let c = &self.compiled;
        let flags = c.flags(
            |ti| self.target_up(ti),
            |r| self.drains.regions.contains_key(r),
            |a| self.drains.endpoints.contains_key(&a),
        );
        let now = Instant::now();
        let live: Box<[steer::Live]> = c
            .slots
            .iter()
            .map(|s| {
                s.target
                    .and_then(|ti| c.targets.get(ti as usize))
                    .and_then(|t| self.targets.get(&t.key()))
                    .map_or(steer::Live::UNKNOWN, |p| p.live(now))
            })
            .collect();
        self.generation += 1;
        // Update series in place and drop only those of removed endpoints,
        // so a scrape never sees a gauge vanish and come back.
        let mut current = HashSet::new();
        for (i, (slot, f)) in c.slots.iter().zip(flags.iter()).enumerate() {
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
            let l = live.get(i).copied().unwrap_or(steer::Live::UNKNOWN);
            set_or_remove(&self.metrics.endpoint_load, &labels, f64::from(l.load));
            set_or_remove(
                &self.metrics.endpoint_latency,
                &labels,
                f64::from(l.latency_ms) / 1e3,
            );
            if self.cluster.is_some() {
                let down = slot.target.map_or(0, |ti| self.down_votes(ti));
                self.metrics
                    .endpoint_down_nodes
                    .get_or_create(&labels)
                    .set(down as i64);
            }
            current.insert(labels);
        }
        for stale in self.published.difference(&current) {
            self.metrics.endpoint_up.remove(stale);
            self.metrics.endpoint_drained.remove(stale);
            self.metrics.endpoint_down_nodes.remove(stale);
            self.metrics.endpoint_load.remove(stale);
            self.metrics.endpoint_latency.remove(stale);
        }
        {
            let inp = steer::Inputs {
                regions: &c.regions,
                flags: &flags,
                live: &live,
            };
            for r in c.regions.iter().filter(|r| r.shed.is_some()) {
                let (low, high) = r.shed.unwrap_or((1.0, 2.0));
                let fam = if r.has_family(steer::Family::V4) {
                    steer::Family::V4
                } else {
                    steer::Family::V6
                };
                let ratio = steer::utilisation(r, fam, &inp)
                    .map_or(0.0, |u| steer::dynamic::shed_ratio(u, low, high));
                self.metrics
                    .region_shed_ratio
                    .get_or_create(&crate::metrics::RegionLabels {
                        region: r.name.to_string(),
                    })
                    .set(ratio);
            }
        }
        self.published = current;
        self.metrics.snapshot_generation.set(self.generation as i64);
        self.shared.store(Arc::new(Snapshot {
            generation: self.generation,
            data: c.clone(),
            flags,
            live,
            cluster: self
                .cluster
                .as_ref()
                .map(|l| (l.view.clone(), l.node.clone())),
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
                let endpoints: Vec<EndpointStatus> =
                    c.slots
                        .iter()
                        .filter(|s| s.region as usize == ri)
                        .map(|s| {
                            let target = s
                                .target
                                .and_then(|t| c.targets.get(t as usize))
                                .and_then(|t| self.targets.get(&t.key()));
                            let slot = r.endpoints[s.endpoint as usize].slot as usize;
                            let f = snap.flags.get(slot).copied().unwrap_or(0);
                            let l = snap.live.get(slot).copied().unwrap_or(steer::Live::UNKNOWN);
                            EndpointStatus {
                                address: s.address.to_string(),
                                weight: r.endpoints[s.endpoint as usize].weight,
                                healthy: f & steer::UP != 0,
                                drained: f & steer::DRAINED != 0,
                                drain_until: self
                                    .drains
                                    .endpoints
                                    .get(&s.address)
                                    .and_then(drain_until),
                                probe: c.targets.get(s.target.unwrap_or(u32::MAX) as usize).map(
                                    |k| ProbeTarget {
                                        address: k.probe.to_string(),
                                        kind: kind_name(k.check.kind).to_string(),
                                        port: k.check.port,
                                    },
                                ),
                                last_probe: target.and_then(|t| t.last.clone()),
                                since: target.map(|t| rfc3339(t.since)),
                                load: known(l.load),
                                capacity: f64::from(r.endpoints[s.endpoint as usize].capacity),
                                latency_ms: known(l.latency_ms),
                                nodes: target.and_then(|t| self.node_verdicts(t)),
                            }
                        })
                        .collect();
                let drained = self.drains.regions.contains_key(r.name.as_ref());
                let healthy = r.endpoints.iter().any(|e| {
                    let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
                    f & steer::UP != 0 && f & steer::DRAINED == 0
                });
                let inp = snap.inputs();
                let fam = if r.has_family(steer::Family::V4) {
                    steer::Family::V4
                } else {
                    steer::Family::V6
                };
                let usable = |e: &steer::Endpoint| {
                    let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
                    f & steer::UP != 0 && f & steer::DRAINED == 0
                };
                let load = steer::dynamic::region_load(r, fam, usable, &snap.live);
                let latency = r
                    .endpoints
                    .iter()
                    .filter(|e| usable(e))
                    .map(|e| {
                        snap.live
                            .get(e.slot as usize)
                            .map_or(f32::NAN, |l| l.latency_ms)
                    })
                    .filter(|l| !l.is_nan())
                    .fold(f32::NAN, f32::min);
                RegionStatus {
                    name: r.name.to_string(),
                    load: load.map(|(l, _)| round3(l)),
                    capacity: load.map(|(_, c)| round3(c)),
                    utilisation: steer::utilisation(r, fam, &inp).map(round3),
                    latency_ms: known(latency),
                    healthy,
                    drained,
                    drain_until: self
                        .drains
                        .regions
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
            cluster: self.cluster_status(),
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

impl Control {
    /// Each live node's verdict on a target, this node's own included.
    fn node_verdicts(&self, p: &Probed) -> Option<BTreeMap<String, cluster::Verdict>> {
        let c = self.cluster.as_ref()?;
        let mut out: BTreeMap<String, cluster::Verdict> = c
            .view
            .verdicts
            .get(&p.cluster_id)
            .into_iter()
            .flatten()
            .filter(|(n, _)| c.view.nodes.contains_key(*n) && **n != c.node)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        out.insert(
            c.node.clone(),
            cluster::Verdict {
                healthy: p.up,
                reason: p.last.as_ref().map_or(String::new(), |r| r.reason.clone()),
                since: rfc3339(p.since),
                latency_ms: p
                    .last
                    .as_ref()
                    .map(|r| (r.latency.as_secs_f64() * 1e6).round() / 1e3),
            },
        );
        Some(out)
    }

    /// How many live nodes (this one included) see a target down.
    fn down_votes(&self, ti: u32) -> usize {
        let Some(p) = self
            .compiled
            .targets
            .get(ti as usize)
            .and_then(|t| self.targets.get(&t.key()))
        else {
            return 0;
        };
        let mut down = usize::from(!p.up);
        if let Some(c) = self.cluster.as_ref().filter(|c| c.view.connected) {
            for (node, v) in c.view.verdicts.get(&p.cluster_id).into_iter().flatten() {
                if *node != c.node && c.view.nodes.contains_key(node) && !v.healthy {
                    down += 1;
                }
            }
        }
        down
    }

    fn cluster_status(&self) -> Option<ClusterStatus> {
        let c = self.cluster.as_ref()?;
        let mut nodes: Vec<NodeStatus> = c
            .view
            .nodes
            .iter()
            .map(|(name, n)| NodeStatus {
                name: name.clone(),
                config_hash: n.config_hash.clone(),
                alive: c.view.connected,
                version: n.version.clone(),
            })
            .collect();
        if !c.view.nodes.contains_key(&c.node) {
            nodes.push(NodeStatus {
                name: c.node.clone(),
                config_hash: self.compiled.config_hash.clone(),
                alive: true,
                version: env!("CARGO_PKG_VERSION").to_string(),
            });
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for n in &mut nodes {
            if n.name == c.node {
                n.alive = true;
            }
        }
        Some(ClusterStatus {
            node: c.node.clone(),
            connected: c.view.connected,
            down_quorum: c.quorum.as_str().to_string(),
            config_hash: self.compiled.config_hash.clone(),
            nodes,
            diverged: c.diverged.iter().cloned().collect(),
        })
    }
}

/// Sets a gauge, or removes the series while the value is unknown.
fn set_or_remove(
    family: &prometheus_client::metrics::family::Family<
        EndpointLabels,
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >,
    labels: &EndpointLabels,
    v: f64,
) {
    if v.is_nan() {
        family.remove(labels);
    } else {
        family.get_or_create(labels).set(v);
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

/// Most first probes (before serving, or of a reload's new targets) in
/// flight at once.
const FIRST_PROBES_AT_ONCE: usize = 64;

/// A target's first probe, made before it is served.
struct FirstProbe {
    target: Target,
    prober: Result<Prober, crate::health::probe::ProberError>,
    result: ProbeResult,
}

/// Probes targets once, concurrently (probe before serve); each is bounded
/// by its check's timeout. Results come back in the order of `targets`.
async fn first_probes(targets: Vec<Target>) -> Vec<FirstProbe> {
    // a few hundred targets need not open a few hundred sockets at once
    let at_once = Arc::new(tokio::sync::Semaphore::new(FIRST_PROBES_AT_ONCE));
    let mut set = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        let at_once = at_once.clone();
        set.spawn(async move {
            let _permit = at_once.acquire_owned().await.ok();
            let prober = Prober::new(target.clone());
            let result = match &prober {
                Ok(p) => p.probe().await,
                Err(e) => ProbeResult::not_probed(e.to_string()),
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
    replies: Vec<ReloadReply>,
    /// Who asked, for the audit.
    callers: Vec<String>,
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

/// A measurement for JSON: null while unknown.
fn known(v: f32) -> Option<f64> {
    (!v.is_nan()).then(|| round3(f64::from(v)))
}

fn drain_until(d: &Drain) -> Option<String> {
    d.until.map(rfc3339)
}

fn describe(t: &DrainTarget) -> String {
    describe_key(&t.clone().key())
}

fn describe_key(k: &DrainKey) -> String {
    match k {
        DrainKey::Region(n) => format!("region {n}"),
        DrainKey::Endpoint(a) => format!("endpoint {a}"),
    }
}

/// Hands a drain to the cluster task; the caller hears back when etcd has
/// it, or that etcd cannot be reached.
fn forward(
    tx: &mpsc::UnboundedSender<ToCluster>,
    cmd: ToCluster,
    rx: oneshot::Receiver<Result<(), cluster::ClusterError>>,
    reply: oneshot::Sender<Result<(), ControlError>>,
) {
    if tx.send(cmd).is_err() {
        send(reply, Err(ControlError::Stopped));
        return;
    }
    tokio::spawn(async move {
        let r = match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ControlError::Unavailable(e.to_string())),
            Err(_) => Err(ControlError::Stopped),
        };
        send(reply, r);
    });
}

/// The next cluster view, if this node is in a cluster.
async fn next_view(c: &mut Option<ClusterLink>) -> Option<Arc<View>> {
    match c {
        Some(c) => match c.views.changed().await {
            Ok(()) => Some(c.views.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
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
    /// In a cluster: this node, etcd, and the other nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
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
    /// Sum of the known loads of its usable endpoints (null: none known).
    pub load: Option<f64>,
    /// Sum of those endpoints' capacities.
    pub capacity: Option<f64>,
    /// load / capacity.
    pub utilisation: Option<f64>,
    /// Its best usable endpoint's smoothed latency.
    pub latency_ms: Option<f64>,
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
    /// The load its load balancer reported (null: unknown).
    pub load: Option<f64>,
    /// Its capacity.
    pub capacity: f64,
    /// Smoothed latency of its passing probes (null: unknown).
    pub latency_ms: Option<f64>,
    /// In a cluster: each live node's verdict (SPEC §8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, cluster::Verdict>>,
}

/// `/v1/status` `cluster` (SPEC §8).
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    /// etcd is reachable.
    pub connected: bool,
    /// `down_quorum`.
    pub down_quorum: String,
    /// This node's configuration hash.
    pub config_hash: String,
    /// The nodes, this one included.
    pub nodes: Vec<NodeStatus>,
    /// Nodes serving another configuration than this one.
    pub diverged: Vec<String>,
}

/// One node in the cluster status.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    /// Name.
    pub name: String,
    /// Hash of the configuration it serves.
    pub config_hash: String,
    /// Its lease holds (as of the last view, while etcd is away).
    pub alive: bool,
    /// signpost version.
    pub version: String,
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
