//! Reloads and the GeoIP watch (STYLE habit 5): a new configuration, or a
//! GeoIP database replaced on disk, is loaded and compiled beside the loop
//! (which keeps applying health reports), its new targets probed once,
//! then swapped in whole; a failed one leaves the old one serving.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::probes::{FirstProbe, first_probes};
use super::{Control, ControlError, ReloadSummary, send};
use crate::cluster::ToCluster;
use crate::config::{self, ConfigError, ConfigErrors};
use crate::geo::table::{FileId, GeoTable};
use crate::metrics::ResultLabels;
use crate::notify::Event;
use crate::state::{Compiled, Target, TargetKey};
use crate::text::now_rfc3339;
use crate::view::AuditEntry;

/// How often the GeoIP database file is looked at (`[geoip] watch`).
pub(super) const GEO_POLL: Duration = Duration::from_secs(1);

/// Where a reload's outcome goes.
pub(super) type ReloadReply = oneshot::Sender<Result<ReloadSummary, ControlError>>;

/// Reloads under way and asked for, and the GeoIP file watcher.
pub(super) struct Reloads {
    /// A reload is being prepared.
    busy: bool,
    /// Reload requests that arrived meanwhile (served by the next one).
    pending: Vec<(String, Option<ReloadReply>)>,
    loaded_tx: mpsc::UnboundedSender<Loaded>,
    /// Prepared reloads.
    pub loaded_rx: mpsc::UnboundedReceiver<Loaded>,
    /// `[geoip] watch`: what the file watcher has seen.
    geo: GeoWatch,
    geo_tx: mpsc::UnboundedSender<GeoLoaded>,
    /// Databases compiled after their file changed.
    pub geo_rx: mpsc::UnboundedReceiver<GeoLoaded>,
}

impl Reloads {
    pub fn new() -> Reloads {
        let (loaded_tx, loaded_rx) = mpsc::unbounded_channel();
        let (geo_tx, geo_rx) = mpsc::unbounded_channel();
        Reloads {
            busy: false,
            pending: Vec::new(),
            loaded_tx,
            loaded_rx,
            geo: GeoWatch::default(),
            geo_tx,
            geo_rx,
        }
    }
}

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
pub(super) struct GeoLoaded {
    id: FileId,
    /// The configuration it was compiled for; stale if another reload
    /// swapped meanwhile.
    base: Arc<Compiled>,
    result: Result<Compiled, crate::geo::GeoError>,
}

/// A reload prepared beside the control loop: the new configuration, and
/// first probes of its new targets.
pub(super) struct Loaded {
    result: Result<(Compiled, Vec<FirstProbe>), ConfigErrors>,
    replies: Vec<ReloadReply>,
    /// Who asked, for the audit.
    callers: Vec<String>,
}

impl Control {
    /// `Command::Reload`: queued behind one under way.
    pub(super) fn request_reload(&mut self, from: String, reply: Option<ReloadReply>) {
        self.reloads.pending.push((from, reply));
        if !self.reloads.busy {
            self.start_reload();
        }
    }

    /// Loads and validates the configuration, and probes its new targets
    /// once, in a task beside the loop; the result comes back as a
    /// [`Loaded`] message.
    fn start_reload(&mut self) {
        self.reloads.busy = true;
        let (callers, replies): (Vec<String>, Vec<Option<ReloadReply>>) =
            self.reloads.pending.drain(..).unzip();
        let replies: Vec<ReloadReply> = replies.into_iter().flatten().collect();
        let path = self.config_path.clone();
        let metrics = self.metrics.clone();
        let known: HashSet<TargetKey> = self.probes.keys().cloned().collect();
        let tx = self.reloads.loaded_tx.clone();
        let prev = self.compiled.clone();
        tokio::spawn(async move {
            let file = path.display().to_string();
            let built = tokio::task::spawn_blocking(move || {
                let config = config::load(&path)?;
                let c = Compiled::build(config, &metrics, Some(&prev));
                crate::os::release_memory();
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
                Err(e) => Err(ConfigErrors(vec![ConfigError::Read {
                    file,
                    reason: format!("reload task failed: {e}"),
                }])),
            };
            let loaded = Loaded {
                result,
                replies,
                callers,
            };
            if tx.send(loaded).is_err() {
                tracing::debug!("reload finished after shutdown");
            }
        });
    }

    /// Swaps in a prepared reload (or reports why it failed), then starts
    /// the next one if more were requested meanwhile.
    pub(super) fn apply_reload(&mut self, loaded: Loaded) {
        self.reloads.busy = false;
        let result = match loaded.result {
            Err(e) => {
                self.count_reload("error");
                if e.0.iter().any(
                    |x| matches!(x, ConfigError::Invalid { key, .. } if key == "geoip.database"),
                ) {
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
            self.notify(match &result {
                Ok(s) => Event::reload_ok(&from, s.generation),
                Err(ControlError::Invalid(e)) => {
                    Event::reload_failed(&from, e.0.iter().map(ToString::to_string).collect())
                }
                Err(e) => Event::reload_failed(&from, vec![e.to_string()]),
            });
            self.record(AuditEntry {
                at: now_rfc3339(),
                action: "reload".into(),
                target: self.config_path.display().to_string(),
                duration: None,
                from: Some(from),
                result: outcome.clone(),
                node: None,
                key: None,
            });
        }
        for reply in loaded.replies {
            send(reply, result.clone());
        }
        if !self.reloads.pending.is_empty() {
            self.start_reload();
        }
    }

    /// Serves a new compiled configuration: targets kept with their health,
    /// timing updated in place, new ones started, removed ones stopped.
    fn swap(&mut self, compiled: Compiled, probed: Vec<FirstProbe>) -> ReloadSummary {
        let keys: HashMap<TargetKey, &Target> =
            compiled.targets.iter().map(|t| (t.key(), t)).collect();
        let removed: Vec<TargetKey> = self
            .probes
            .keys()
            .filter(|k| !keys.contains_key(*k))
            .cloned()
            .collect();
        let updated = self.probes.update_timing(&keys);
        let added = probed.len();
        let kept = compiled.targets.len() - added;
        for key in self.probes.start(probed) {
            self.tell_verdict(&key);
        }
        self.probes.remove(&removed);
        self.forget(&compiled, &removed);
        let warnings = self.apply_server_changes(&compiled);
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
        self.transfers.configure(&compiled.config);
        self.notify.configure(&compiled.config.webhooks);
        Control::warn_same_serial(&self.compiled, &compiled);
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

    /// What a reload removed: the cluster forgets this node's verdicts on
    /// removed targets; a single node's drains of names that no longer
    /// exist go away with them (a cluster's stay: other nodes may use them).
    fn forget(&mut self, compiled: &Compiled, removed: &[TargetKey]) {
        if let Some(c) = &self.cluster {
            if !removed.is_empty() {
                c.tell(ToCluster::Forget(
                    removed.iter().map(TargetKey::cluster_id).collect(),
                ));
            }
            if compiled.config_hash != self.compiled.config_hash {
                c.tell(ToCluster::ConfigHash(compiled.config_hash.clone()));
            }
            return;
        }
        let before = self.operator.drains.clone();
        self.operator.drains.retain_known(
            |name| compiled.region_index.contains_key(name),
            |addr| compiled.slots.iter().any(|s| s.address == addr),
        );
        if self.operator.drains != before {
            let now = self.operator.drains.records("");
            for k in before.records("").keys().filter(|k| !now.contains_key(*k)) {
                tracing::warn!("the drain of {k} is dropped: it is no longer in the configuration");
            }
            self.persist();
        }
    }

    /// Applies what of `[server]` a reload can change (the admin token),
    /// and warns of what takes effect only at the next restart.
    fn apply_server_changes(&mut self, compiled: &Compiled) -> Vec<String> {
        let old = &self.compiled.config.server;
        let new = &compiled.config.server;
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
            ("xdp", old.xdp != new.xdp),
        ];
        let mut warnings: Vec<String> = restart_only
            .iter()
            .filter(|(_, changed)| *changed)
            .map(|(key, _)| format!("server.{key} changed: it takes effect at the next restart"))
            .collect();
        if self.compiled.config.cluster != compiled.config.cluster {
            warnings.push("[cluster] changed: it takes effect at the next restart".to_string());
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        warnings
    }

    fn count_reload(&self, result: &str) {
        self.metrics
            .reloads
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// `[geoip] watch`: looks at the database file, and compiles it beside
    /// the loop once it has changed and settled.
    pub(super) fn poll_geo(&mut self) {
        let Some(g) = self.compiled.geo.clone() else {
            return;
        };
        let watch = &mut self.reloads.geo;
        if !self.compiled.config.geoip_watch || self.reloads.busy || watch.busy {
            return;
        }
        // a file being renamed into place may be missing for a moment
        let Ok(id) = FileId::of(&g.source.path) else {
            return;
        };
        if Some(id) == g.source.id || Some(id) == watch.failed {
            watch.seen = None;
            return;
        }
        if watch.seen != Some(id) {
            watch.seen = Some(id);
            return;
        }
        watch.busy = true;
        let base = self.compiled.clone();
        let tx = self.reloads.geo_tx.clone();
        tracing::info!("{} changed on disk; loading it", g.source.display);
        tokio::task::spawn_blocking(move || {
            let result = GeoTable::open(&g.source.path, &g.source.display)
                .map(|t| base.with_geo(Arc::new(t)));
            crate::os::release_memory();
            if tx.send(GeoLoaded { id, base, result }).is_err() {
                tracing::debug!("GeoIP database loaded after shutdown");
            }
        });
    }

    /// Serves a database compiled by [`Control::poll_geo`], or keeps the
    /// old one and says why.
    pub(super) fn apply_geo(&mut self, g: GeoLoaded) {
        let watch = &mut self.reloads.geo;
        watch.busy = false;
        watch.seen = None;
        match g.result {
            Err(e) => {
                watch.failed = Some(g.id);
                self.metrics.geoip_reload_failures.inc();
                tracing::error!("{e}; still serving the previous GeoIP database");
                self.notify(crate::notify::Event::reload_failed(
                    GEO_WATCH,
                    vec![e.to_string()],
                ));
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
                self.notify(crate::notify::Event::reload_ok(
                    GEO_WATCH,
                    summary.generation,
                ));
            }
        }
    }
}

/// Who asked for a reload of the GeoIP database the watch saw change on
/// disk, as webhooks and logs name it.
const GEO_WATCH: &str = "geoip-watch";

/// Drops a replaced configuration a few seconds later, on a blocking
/// thread: snapshots still in use finish with it first, and freeing zone
/// tables and GeoIP data never lands on a DNS worker.
pub(super) fn retire(old: Arc<Compiled>) {
    /// Far longer than a worker holds a snapshot (one batch), short enough
    /// that two configurations seldom overlap in memory.
    const RETIRE_AFTER: Duration = Duration::from_secs(1);
    tokio::spawn(async move {
        tokio::time::sleep(RETIRE_AFTER).await;
        let freed = tokio::task::spawn_blocking(move || {
            drop(old);
            crate::os::release_memory();
        });
        if let Err(e) = freed.await {
            tracing::debug!("dropping the old configuration: {e}");
        }
    });
}
