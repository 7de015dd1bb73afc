//! The control loop's side of the cluster task (SPEC §8): this node's
//! verdicts go out, the cluster's view comes in. A view replaces this
//! node's drains with the cluster's and changes health by quorum at the
//! next publish.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::drains::Drains;
use super::notices;
use super::{Control, ControlError, send};
use crate::cluster::{self, ClusterError, Joined, ToCluster};
use crate::config::Quorum;
use crate::state::TargetKey;
use crate::view::{NodeInfo, View};

/// Longest wait at start for the first try to join the cluster: a name
/// held by a crashed process is waited out (its lease ends within
/// `NODE_TTL`), an unreachable etcd is not waited for at all.
const JOIN_PATIENCE: Duration = Duration::from_secs(10);

/// The control loop's side of the cluster task.
pub(super) struct ClusterLink {
    /// This node's name.
    pub node: String,
    /// `down_quorum`.
    pub quorum: Quorum,
    /// Requests to the cluster task.
    pub tx: mpsc::UnboundedSender<ToCluster>,
    views: watch::Receiver<Arc<View>>,
    /// The latest view.
    pub view: Arc<View>,
    /// Nodes last seen answering differently, and how (logged on change).
    pub diverged: BTreeMap<String, Vec<String>>,
    /// This node's settings that change answers, to compare with others'.
    mine: NodeInfo,
    /// What was told to webhooks of the cluster so far.
    seen: notices::Seen,
}

impl ClusterLink {
    /// Starts the cluster task, and waits for its first try to join: a
    /// node name that another live process holds is refused (`Err` names
    /// the holder); an etcd that cannot be reached is not waited for.
    pub async fn start(
        cfg: crate::config::Cluster,
        config_hash: String,
        probe_source: bool,
        drains: &Drains,
        stop: watch::Receiver<bool>,
    ) -> Result<ClusterLink, String> {
        let h = cluster::start(
            cfg.clone(),
            config_hash.clone(),
            probe_source,
            drains.records(&cfg.node),
            stop,
        );
        match tokio::time::timeout(JOIN_PATIENCE, h.joined).await {
            Ok(Ok(Joined::NameTaken(holder))) => {
                return Err(format!(
                    "node name {:?} is held by another live signpost ({holder}); give this node a name of its own",
                    cfg.node
                ));
            }
            Ok(Ok(Joined::Yes)) => tracing::info!("cluster: joined as node {}", cfg.node),
            Ok(Ok(Joined::Unreachable(_))) | Ok(Err(_)) | Err(_) => {}
        }
        let view = h.view.borrow().clone();
        let mine = NodeInfo {
            config_hash,
            version: String::new(),
            since: String::new(),
            host: String::new(),
            down_quorum: cfg.down_quorum.as_str().to_string(),
            probe_source,
        };
        Ok(ClusterLink {
            seen: notices::Seen::from_view(&view),
            mine,
            node: cfg.node,
            quorum: cfg.down_quorum,
            tx: h.tx,
            views: h.view,
            view,
            diverged: BTreeMap::new(),
        })
    }

    /// Whether the cluster holds a target down, by the quorum of this
    /// node's verdict (`mine_up`) and the other live nodes'.
    pub fn holds_down(&self, mine_up: bool, id: &str) -> bool {
        self.view
            .tally(&self.node, mine_up, id)
            .is_down(self.quorum)
    }

    /// Sends a request; the cluster task is gone only at shutdown.
    pub fn tell(&self, msg: ToCluster) {
        if self.tx.send(msg).is_err() {
            tracing::debug!("cluster task is gone");
        }
    }
}

impl Control {
    /// Publishes this node's verdict on a target to the cluster.
    pub(super) fn tell_verdict(&self, key: &TargetKey) {
        let (Some(c), Some(p)) = (&self.cluster, self.probes.get(key)) else {
            return;
        };
        c.tell(ToCluster::Verdict {
            id: p.cluster_id.clone(),
            verdict: p.verdict(),
        });
    }

    /// Takes in a new cluster view: its drains replace this node's, and
    /// its verdicts change health by quorum at the next publish.
    pub(super) fn apply_view(&mut self, view: Arc<View>) -> bool {
        let Some(c) = &mut self.cluster else {
            return false;
        };
        self.metrics
            .cluster_connected
            .set(i64::from(view.connected));
        // while etcd is away only this node is known to be alive: the last
        // view's count would be stale
        let live = if view.connected {
            view.nodes.len().max(1)
        } else {
            1
        };
        self.metrics.cluster_nodes.set(live as i64);
        c.mine.config_hash = self.compiled.config_hash.clone();
        let diverged: BTreeMap<String, Vec<String>> = view
            .nodes
            .iter()
            .map(|(name, n)| (name.clone(), n.differs_from(&c.mine)))
            .filter(|(_, how)| !how.is_empty())
            .collect();
        if diverged != c.diverged {
            if diverged.is_empty() {
                tracing::info!("cluster: every node answers alike again");
            } else {
                let list: Vec<String> = diverged
                    .iter()
                    .map(|(n, how)| format!("{n} ({})", how.join(", ")))
                    .collect();
                tracing::warn!(
                    "cluster: nodes answer differently from this one ({}): {}; answers may differ between nameservers",
                    c.mine.config_hash,
                    list.join("; ")
                );
            }
        }
        self.metrics.cluster_diverged.set(diverged.len() as i64);
        for e in notices::view_events(&mut c.seen, &c.node, &view, &c.diverged, &diverged) {
            self.notify.send(e);
        }
        c.diverged = diverged;
        let was_synced = c.view.synced;
        c.view = view;
        let drains = Drains::from_records(&c.view.drains, SystemTime::now());
        // the drains a node first reads are where it starts telling
        // webhooks from, not changes (those were told when they happened)
        let first_read = !was_synced && c.view.synced;
        if drains != self.operator.drains {
            let before = std::mem::replace(&mut self.operator.drains, drains);
            let (was, now) = (before.records(""), self.operator.drains.records(""));
            for k in was.keys().filter(|k| !now.contains_key(*k)) {
                tracing::info!("{k}: ended (cluster)");
            }
            for (k, r) in now.iter().filter(|(k, r)| was.get(*k) != Some(*r)) {
                tracing::info!("{k}: {} (cluster)", record_text(r));
            }
            self.audit_schedule_changes(&before);
            self.persist();
        }
        if first_read {
            self.operator.told = self.operator.drains.clone();
        }
        self.start_due();
        true
    }
}

/// How a drain record reads in a log line.
fn record_text(r: &crate::view::DrainRecord) -> String {
    let until = r
        .until
        .as_deref()
        .map_or(String::new(), |u| format!(" until {u}"));
    match (&r.value, &r.starts) {
        (Some(v), _) => format!("dialled to {v}{until}"),
        (None, Some(s)) if !r.started => format!("scheduled to drain at {s}{until}"),
        _ => format!("drained{until}"),
    }
}

/// Hands a drain to the cluster task; the caller hears back when etcd has
/// it, or that etcd cannot be reached.
pub(super) fn forward(
    tx: &mpsc::UnboundedSender<ToCluster>,
    cmd: ToCluster,
    rx: oneshot::Receiver<Result<(), ClusterError>>,
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
pub(super) async fn next_view(c: &mut Option<ClusterLink>) -> Option<Arc<View>> {
    match c {
        Some(c) => match c.views.changed().await {
            Ok(()) => Some(c.views.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
