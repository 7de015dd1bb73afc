//! Probes and what they measured: one running probe loop per target, its
//! decided state (rise/fall), its last result, its load and smoothed
//! latency. The loops report here; this room keeps the metrics of each
//! probe and tells the caller what changed. Whether the cluster holds a
//! target down is decided by the quorum rule ([`crate::view::View::tally`])
//! where the snapshot is published.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::health::{self, ProbeResult, Prober, Report, Tracker};
use crate::metrics::{Metrics, ProbeLabels, ProbeResultLabels, TransitionLabels};
use crate::state::{Target, TargetKey};
use crate::steer;
use crate::text::{kind_name, rfc3339};
use crate::view::Verdict;

/// Weight of the newest probe in the smoothed latency (SPEC §4.3).
const EWMA_ALPHA: f64 = 0.3;
/// A load older than this many probe intervals counts as unknown.
const LOAD_FRESH_INTERVALS: u32 = 3;
/// Most first probes (before serving, or of a reload's new targets) in
/// flight at once.
const FIRST_PROBES_AT_ONCE: usize = 64;

/// A running probe target.
pub(super) struct Probed {
    id: u64,
    /// Its id across the cluster ([`crate::view::target_id`]).
    pub cluster_id: String,
    task: JoinHandle<()>,
    /// The profile it runs; timing updates go to the task on `updates`.
    pub target: Target,
    updates: watch::Sender<Target>,
    /// This node's decided state.
    pub up: bool,
    /// Since when it is what it is.
    pub since: SystemTime,
    /// The last probe.
    pub last: Option<ProbeResult>,
    /// The last probe could not run for a local reason (logged once).
    local_error: bool,
    /// The last load its `load_header` reported, and when.
    load: Option<(f64, Instant)>,
    /// Smoothed latency of passing probes (EWMA, alpha 0.3), in ms.
    ewma_ms: Option<f64>,
    /// A missing or garbage load header was logged (once, until it is back).
    load_warned: bool,
}

impl Probed {
    /// What the answer path may use of its measurements now.
    pub fn live(&self, now: Instant) -> steer::Live {
        let fresh = self.target.check.interval * LOAD_FRESH_INTERVALS;
        steer::Live {
            load: self
                .load
                .filter(|(_, at)| now.saturating_duration_since(*at) <= fresh)
                .map_or(f32::NAN, |(l, _)| l as f32),
            latency_ms: self.ewma_ms.map_or(f32::NAN, |l| l as f32),
        }
    }

    /// This node's verdict, as the cluster stores it.
    pub fn verdict(&self) -> Verdict {
        Verdict {
            healthy: self.up,
            reason: self
                .last
                .as_ref()
                .map_or(String::new(), |r| r.reason.clone()),
            since: rfc3339(self.since),
            latency_ms: self
                .last
                .as_ref()
                .map(|r| (r.latency.as_secs_f64() * 1e6).round() / 1e3),
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

/// What a report changed.
pub(super) struct Applied {
    /// The target reported on.
    pub key: TargetKey,
    /// Its decided state turned.
    pub turned: bool,
    /// It measured a load or latency.
    pub measured: bool,
}

/// Every running probe target.
pub(super) struct Probes {
    targets: HashMap<TargetKey, Probed>,
    by_id: HashMap<u64, TargetKey>,
    next_id: u64,
    reports_tx: mpsc::UnboundedSender<Report>,
    /// The probe loops' reports.
    pub reports_rx: mpsc::UnboundedReceiver<Report>,
    metrics: Arc<Metrics>,
    /// In a cluster this node's probes are one vote of several: their
    /// turns are logged as such, and the cluster's verdict as the state.
    in_cluster: bool,
}

impl Probes {
    pub fn new(metrics: Arc<Metrics>, in_cluster: bool) -> Probes {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Probes {
            targets: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 1,
            reports_tx,
            reports_rx,
            metrics,
            in_cluster,
        }
    }

    /// The running target with this key.
    pub fn get(&self, key: &TargetKey) -> Option<&Probed> {
        self.targets.get(key)
    }

    /// The keys of every running target.
    pub fn keys(&self) -> impl Iterator<Item = &TargetKey> {
        self.targets.keys()
    }

    /// Starts the probe loops of freshly probed targets, with first probes
    /// spread over one interval instead of in a burst; returns their keys.
    pub fn start(&mut self, probed: Vec<FirstProbe>) -> Vec<TargetKey> {
        let n = probed.len().max(1) as u32;
        let mut started = Vec::with_capacity(probed.len());
        for (i, first) in probed.into_iter().enumerate() {
            let FirstProbe {
                target,
                prober,
                result,
            } = first;
            let id = self.next_id;
            self.next_id += 1;
            let key = target.key();
            self.export_from_start(&key);
            self.observe(&key, &target.profile, &result);
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
            self.targets.insert(
                key.clone(),
                Probed {
                    id,
                    cluster_id: key.cluster_id(),
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
            started.push(key);
        }
        started
    }

    /// Both outcomes and both transitions of a target are exported from
    /// the start, at 0.
    fn export_from_start(&self, key: &TargetKey) {
        for result in ["pass", "fail"] {
            drop(self.metrics.probes.get_or_create(&ProbeResultLabels {
                address: key.probe.to_string(),
                result: result.into(),
            }));
        }
        for to in ["up", "down"] {
            drop(self.metrics.transitions.get_or_create(&TransitionLabels {
                address: key.probe.to_string(),
                to: to.into(),
            }));
        }
    }

    /// Records a probe's latency (labelled with the check profile's name)
    /// and outcome.
    fn observe(&self, key: &TargetKey, profile: &str, r: &ProbeResult) {
        let address = key.probe.to_string();
        self.metrics
            .probe_latency
            .get_or_create(&ProbeLabels {
                address: address.clone(),
                check: profile.to_string(),
            })
            .observe(r.latency.as_secs_f64());
        self.metrics
            .probes
            .get_or_create(&ProbeResultLabels {
                address,
                result: if r.ok { "pass" } else { "fail" }.to_string(),
            })
            .inc();
    }

    /// Takes in a probe loop's report; `None` when it changes nothing (a
    /// target a reload removed, or a probe that could not run here).
    pub fn apply(&mut self, r: Report) -> Option<Applied> {
        let key = self.by_id.get(&r.id)?.clone();
        let t = self.targets.get_mut(&key)?;
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
            return None;
        }
        if t.local_error {
            tracing::info!("probing {} works again", key.probe);
            t.local_error = false;
        }
        let profile = t.target.profile.clone();
        self.observe(&key, &profile, &r.result);
        let t = self.targets.get_mut(&key)?;
        let turned = r.changed && t.up != r.up;
        let measured = t.measure(&r.result);
        if turned {
            t.up = r.up;
            t.since = SystemTime::now();
            let how = format!(
                "endpoint {} ({}:{}) is {}: {}",
                key.probe,
                kind_name(key.check.kind),
                key.check.port,
                if r.up { "up" } else { "down" },
                r.result.reason
            );
            if self.in_cluster {
                tracing::info!("this node's probes: {how} (the cluster's verdict decides)");
            } else if r.up {
                tracing::info!("{how}");
            } else {
                tracing::warn!("{how}");
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
        Some(Applied {
            key,
            turned,
            measured,
        })
    }

    /// Kept targets whose timing changed (interval, timeout, rise, fall)
    /// are updated in place; returns how many.
    pub fn update_timing(&mut self, targets: &HashMap<TargetKey, &Target>) -> usize {
        let mut updated = 0;
        for (k, t) in targets {
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
        updated
    }

    /// Stops probing these targets, and drops the metric series of probe
    /// addresses (and address and profile pairs) that no running target
    /// uses any more: deployments whose load balancers' addresses rotate
    /// must not grow the scrape without bound.
    pub fn remove(&mut self, keys: &[TargetKey]) {
        let mut gone = Vec::new();
        for k in keys {
            if let Some(t) = self.targets.remove(k) {
                t.task.abort();
                self.by_id.remove(&t.id);
                gone.push((k.probe, t.target.profile));
            }
        }
        for (addr, profile) in gone {
            let in_use = |same_profile: bool| {
                self.targets.values().any(|t| {
                    t.target.probe == addr && (!same_profile || t.target.profile == profile)
                })
            };
            let address = addr.to_string();
            if !in_use(true) {
                self.metrics.probe_latency.remove(&ProbeLabels {
                    address: address.clone(),
                    check: profile.clone(),
                });
            }
            if !in_use(false) {
                for result in ["pass", "fail"] {
                    self.metrics.probes.remove(&ProbeResultLabels {
                        address: address.clone(),
                        result: result.into(),
                    });
                }
                for to in ["up", "down"] {
                    self.metrics.transitions.remove(&TransitionLabels {
                        address: address.clone(),
                        to: to.into(),
                    });
                }
            }
        }
    }

    /// Stops every probe loop (shutdown).
    pub fn stop_all(&self) {
        for t in self.targets.values() {
            t.task.abort();
        }
    }
}

/// A target's first probe, made before it is served.
pub(super) struct FirstProbe {
    target: Target,
    prober: Result<Prober, crate::health::probe::ProberError>,
    result: ProbeResult,
}

/// Probes targets once, concurrently (probe before serve); each is bounded
/// by its check's timeout. Results come back in the order of `targets`.
pub(super) async fn first_probes(targets: Vec<Target>) -> Vec<FirstProbe> {
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
