//! The control loop: the one owner of mutable state and the only writer
//! of the [`Snapshot`]. It receives probe reports, operator commands,
//! prepared reloads and cluster views, applies each to the room that owns
//! it, and publishes one new snapshot when what the answer path sees has
//! changed (bursts of reports are coalesced into one swap).
//!
//! The rooms:
//!
//! - [`probes`](self::probes): running probe targets, their decided state
//!   and measurements;
//! - [`operator`](self::operator): drains, the safety rule
//!   ([`safety`](self::safety)), the audit, the state file
//!   ([`persist`](self::persist), [`drains`](self::drains));
//! - [`reload`](self::reload): reloads and the GeoIP watch;
//! - [`link`](self::link): the cluster task's verdicts out, views in;
//! - [`publish`](self::publish): health by the quorum rule, drains and
//!   measurements folded into a snapshot, and the endpoint metrics;
//! - [`signing`](self::signing): re-signing the zones when a signature
//!   window ends or a key's timing point passes;
//! - [`transfers`](self::transfers): zones taken from primaries, and
//!   NOTIFY to secondaries when a serial changes;
//! - [`status`](self::status): `/v1/status`, a view of what was published;
//! - [`notices`](self::notices): the health and cluster events told to
//!   webhooks ([`crate::notify`]).

mod drains;
mod link;
mod notices;
mod operator;
pub mod persist;
mod probes;
mod publish;
mod reload;
mod safety;
mod signing;
mod status;
mod transfers;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::ConfigErrors;
use crate::health;
use crate::metrics::{EndpointLabels, Metrics};
use crate::state::{Compiled, Shared, Snapshot};
use crate::view::{AuditEntry, DrainKey};
use link::ClusterLink;
use operator::Operator;
use probes::{Probes, first_probes};
use reload::{GEO_POLL, ReloadReply, Reloads};
pub use status::{
    ClusterStatus, ClusterVerdict, EndpointStatus, NodeStatus, ProbeTarget, RegionStatus,
    ScheduledDrain, ServiceStatus, Status, ZoneStatus,
};
pub use transfers::TransferStatus;

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

/// Why the control loop could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// `[server] state` exists but cannot be used (and was not discarded).
    #[error("{0}")]
    StateFile(String),
    /// Another live process holds `[cluster] node`.
    #[error("{0}")]
    NodeName(String),
}

impl StartError {
    /// The configuration key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            StartError::StateFile(_) => "server.state",
            StartError::NodeName(_) => "cluster.node",
        }
    }
}

/// A request to the control loop.
#[derive(Debug)]
pub enum Command {
    /// Take a region or endpoint out of answers, optionally for a while.
    Drain {
        /// What.
        target: DrainKey,
        /// How long; `None` = until undrained.
        duration: Option<Duration>,
        /// Drain even against a service's `min_healthy_regions`.
        force: bool,
        /// A scheduled drain: when it starts (`duration` then counts from
        /// there).
        starts: Option<SystemTime>,
        /// Outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Keep a fraction of a region's clients, sending the rest on
    /// (SPEC §11); undone by `Undrain` of `DrainKey::Dial`.
    Dial {
        /// The region.
        region: String,
        /// The fraction kept, 0 to 1 (below 1).
        value: f64,
        /// How long; `None` = until undone.
        duration: Option<Duration>,
        /// Outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Put it back.
    Undrain {
        /// What.
        target: DrainKey,
        /// Outcome.
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    /// Reload the configuration file.
    Reload {
        /// Who asked (the caller's address, or `SIGHUP`), for the audit.
        from: String,
        /// Outcome, if anyone waits for it (SIGHUP does not).
        reply: Option<ReloadReply>,
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
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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

/// The control loop's state: the configuration served, and a room for
/// each concern.
pub struct Control {
    config_path: PathBuf,
    metrics: Arc<Metrics>,
    shared: Shared,
    compiled: Arc<Compiled>,
    generation: u64,
    /// The admin token, which a reload may change.
    admin_token: Arc<arc_swap::ArcSwapOption<String>>,
    /// Endpoint label sets with published gauges.
    published: HashSet<EndpointLabels>,
    /// In a cluster: each target's decided state at the last publish.
    decided: std::collections::HashMap<crate::state::TargetKey, bool>,
    probes: Probes,
    operator: Operator,
    reloads: Reloads,
    /// `[cluster]`.
    cluster: Option<ClusterLink>,
    /// DNSSEC re-signing.
    signing: signing::Signing,
    /// Zone transfers in and NOTIFY out.
    transfers: transfers::Transfers,
    /// Webhook notifications.
    notify: crate::notify::Notifier,
}

impl Control {
    /// Joins the cluster, if there is one, probes every target once (probe
    /// before serve), then publishes the first snapshot into a new shared
    /// handle. `Err` when another live process holds this node's name, or
    /// the state file exists but cannot be used (unless `discard_state`).
    pub async fn start(
        config_path: PathBuf,
        compiled: Compiled,
        metrics: Arc<Metrics>,
        admin_token: Arc<arc_swap::ArcSwapOption<String>>,
        stop: watch::Receiver<bool>,
        discard_state: bool,
    ) -> Result<(Control, Shared), StartError> {
        let compiled = Arc::new(compiled);
        let notify = crate::notify::Notifier::start(
            &compiled.config.webhooks,
            crate::notify::node_name(&compiled.config),
            metrics.clone(),
            stop.clone(),
        );
        // drains kept across restarts, then (in a cluster) etcd's
        let operator = Operator::restore(
            compiled.config.server.state.as_deref(),
            discard_state,
            metrics.state_write_errors.clone(),
        )
        .map_err(StartError::StateFile)?;
        let cluster = match compiled.config.cluster.clone() {
            Some(cfg) => Some(
                ClusterLink::start(
                    cfg,
                    compiled.config_hash.clone(),
                    compiled.config.server.probe_source.is_some(),
                    &operator.drains,
                    stop,
                )
                .await
                .map_err(StartError::NodeName)?,
            ),
            None => None,
        };
        Compiled::finish_scope_maps(&compiled, &metrics);
        let shared: Shared = Arc::new(arc_swap::ArcSwap::from_pointee(Snapshot::all_up(
            compiled.clone(),
            0,
        )));
        let mut c = Control {
            config_path,
            probes: Probes::new(metrics.clone(), cluster.is_some()),
            metrics,
            shared: shared.clone(),
            compiled: compiled.clone(),
            generation: 0,
            admin_token,
            published: HashSet::new(),
            decided: std::collections::HashMap::new(),
            operator,
            reloads: Reloads::new(),
            cluster,
            signing: signing::Signing::new(),
            transfers: transfers::Transfers::new(&compiled.config),
            notify,
        };
        if let Some(g) = &compiled.geo {
            c.metrics
                .geoip_build_timestamp
                .set(g.source.build_epoch as i64);
        }
        let probed = first_probes(compiled.targets.clone()).await;
        for key in c.probes.start(probed) {
            c.tell_verdict(&key);
        }
        c.publish();
        Ok((c, shared))
    }

    /// Runs until `stop` turns true: receive, apply, publish.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut geo_tick = tokio::time::interval(GEO_POLL);
        geo_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let next_expiry = self
                .operator
                .drains
                .next_event(SystemTime::now())
                .map(|d| Instant::now() + d.max(MIN_DRAIN_WAKE));
            let next_signing = self.next_signing();
            let next_transfer = self.next_transfer();
            let mut dirty = false;
            tokio::select! {
                _ = stop.changed() => break,
                Some(r) = self.probes.reports_rx.recv() => {
                    dirty |= self.apply_report(r);
                    // coalesce whatever else has arrived into the same publish
                    while let Ok(r) = self.probes.reports_rx.try_recv() {
                        dirty |= self.apply_report(r);
                    }
                }
                Some(cmd) = commands.recv() => dirty |= self.command(cmd),
                Some(l) = self.reloads.loaded_rx.recv() => self.apply_reload(l),
                _ = geo_tick.tick() => {
                    self.poll_geo();
                    dirty |= self.retry_drains();
                    dirty |= self.start_due();
                }
                Some(o) = self.operator.outcomes_rx.recv() => self.drain_outcome(o),
                Some(p) = self.operator.saved_rx.recv() => dirty |= self.saved(p),
                Some(g) = self.reloads.geo_rx.recv() => self.apply_geo(g),
                _ = sleep_until_opt(next_expiry) => dirty |= self.expire_drains(),
                _ = sleep_until_opt(next_signing) => self.start_signing(),
                Some(r) = self.signing.done_rx.recv() => self.apply_signing(r),
                _ = sleep_until_opt(next_transfer) => self.start_transfers(),
                Some(d) = self.transfers.done_rx.recv() => self.transfer_done(d),
                Some(z) = self.transfers.refresh_rx.recv() => self.primary_notified(z),
                Some(n) = self.transfers.notified_rx.recv() => self.notified(n),
                Some(view) = link::next_view(&mut self.cluster) => dirty |= self.apply_view(view),
            }
            if dirty {
                self.publish();
                // drains that lost to another node's are checked again
                // against what was just published
                if self.retry_drains() {
                    self.publish();
                }
            }
        }
        self.probes.stop_all();
    }

    /// Tells the webhooks that want it; returns at once.
    fn notify(&self, e: crate::notify::Event) {
        self.notify.send(e);
    }

    /// A probe report; true when the answer path must see it.
    fn apply_report(&mut self, r: health::Report) -> bool {
        let Some(a) = self.probes.apply(r) else {
            return false;
        };
        if a.turned {
            self.tell_verdict(&a.key);
        }
        // loads and latencies steer only where a service looks at them
        a.turned || (a.measured && self.compiled.uses_live)
    }

    /// An operator's command; true when the answer path must see it.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Drain {
                target,
                duration,
                force,
                starts,
                reply,
            } => self.drain_command(target, duration, force, starts, reply),
            Command::Dial {
                region,
                value,
                duration,
                reply,
            } => self.dial_command(region, value, duration, reply),
            Command::Undrain { target, reply } => self.undrain_command(target, reply),
            Command::Reload { from, reply } => {
                self.request_reload(from, reply);
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
                send(reply, self.audit_log());
                false
            }
        }
    }
}

/// Answers a caller that may have gone away meanwhile.
fn send<T>(reply: oneshot::Sender<T>, v: T) {
    if reply.send(v).is_err() {
        tracing::debug!("control reply dropped: the caller went away");
    }
}

/// The shortest wait for a drain's end or start: a scheduled drain that
/// is due but led by another node (or whose start is on its way to etcd)
/// must not spin the loop.
const MIN_DRAIN_WAKE: Duration = Duration::from_millis(50);

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
