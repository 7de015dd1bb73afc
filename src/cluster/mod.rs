//! The cluster (SPEC §8): several signpost nodes, the nameservers of one
//! delegation, share drains, health verdicts and the operator audit
//! through etcd v3. This task is the only one that talks to etcd; it talks
//! to the control loop only, by messages: [`ToCluster`] in, a complete
//! [`View`] out whenever what it knows changes. The answer path never
//! sees etcd: the control loop folds the view into the snapshot.
//!
//! Keys, under the configured prefix `P`:
//!
//! | key | value | lease |
//! |---|---|---|
//! | `P/nodes/NODE` | [`NodeInfo`] | the node's |
//! | `P/health/NODE/TARGET` | [`Verdict`] | the node's |
//! | `P/drains/region/NAME`, `P/drains/endpoint/ADDR`, `P/drains/dial/NAME` | [`DrainRecord`] (a drain, scheduled or not, or a dial) | one of its own when it expires |
//! | `P/audit/NANOS-NODE` | [`AuditEntry`] | none (the newest 1,000 are kept) |
//!
//! A node's lease expires [`NODE_TTL`] after it dies, taking its liveness
//! and its verdicts with it. Changes arrive by one watch on `P/`. When etcd
//! cannot be reached the task says so (the view turns disconnected, its
//! drains are kept), refuses drain calls, keeps this node's verdicts to
//! publish again, and reconnects with backoff; once back it grants a new
//! lease, publishes its node key and verdicts again, reads everything
//! anew and watches from there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::sync::{mpsc, oneshot, watch};

mod keys;
mod session;

use crate::config::Cluster as ClusterConfig;
use crate::view::{AUDIT_KEEP, AuditEntry, DrainKey, DrainRecord, NodeInfo, Verdict, View};

/// A node's lease time-to-live: how long a dead node's verdicts count.
pub const NODE_TTL: i64 = 5;
/// The key every stored drain rewrites (`P/drains-rev`): its revision
/// tells whether a drain was stored since a view.
const DRAINS_REV: &str = "drains-rev";
/// Keys per read of the prefix: a page of verdicts and audit entries
/// (under 2 KB each) stays far below gRPC's 4 MiB response limit; a page
/// that does not is read again in halves.
const READ_PAGE: i64 = 200;
/// Deadline of one etcd request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long a drain call waits for etcd (a member's death, a leader
/// election) before it is refused.
const DRAIN_PATIENCE: Duration = Duration::from_secs(4);

/// Why a cluster call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// etcd cannot be reached; nothing was changed.
    #[error("etcd is unreachable ({0}); the drain was not applied on any node")]
    Unavailable(String),
    /// Another drain was stored since the view the safety rule was checked
    /// against; nothing was changed (the caller checks again).
    #[error("another drain was made meanwhile")]
    Conflict,
}

/// Requests to the cluster task.
#[derive(Debug)]
pub enum ToCluster {
    /// This node's verdict on a target (its first, or a change).
    Verdict {
        /// Target id ([`target_id`]).
        id: String,
        /// The verdict.
        verdict: Verdict,
    },
    /// Targets this node no longer probes (a reload removed them).
    Forget(Vec<String>),
    /// The configuration hash changed (a reload).
    ConfigHash(String),
    /// Store a drain, expiring after `ttl` if given.
    Drain {
        /// What.
        key: DrainKey,
        /// The record.
        record: DrainRecord,
        /// Lifetime.
        ttl: Option<Duration>,
        /// The drains' revision ([`View::drains_rev`]) the safety rule was
        /// checked against: the drain is stored only if it is still the
        /// newest (one etcd transaction), so that two nodes draining at
        /// once cannot both pass the rule. `None`: forced, no check.
        expect_rev: Option<i64>,
        /// Outcome, once etcd has it.
        reply: oneshot::Sender<Result<(), ClusterError>>,
    },
    /// Remove a drain.
    Undrain {
        /// What.
        key: DrainKey,
        /// Outcome.
        reply: oneshot::Sender<Result<(), ClusterError>>,
    },
    /// Record an operator action.
    Audit(AuditEntry),
}

/// How the first try to join the cluster ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// This node's keys are in etcd.
    Yes,
    /// etcd could not be reached: the node serves with its state file's
    /// drains and its own verdicts, and keeps trying.
    Unreachable(String),
    /// Another live process holds this node's name (the holder, as its
    /// liveness record names it); the task has ended.
    NameTaken(String),
}

/// A handle on the running cluster task.
pub struct Handle {
    /// Requests.
    pub tx: mpsc::UnboundedSender<ToCluster>,
    /// The latest view.
    pub view: watch::Receiver<Arc<View>>,
    /// How the first try to join ended.
    pub joined: oneshot::Receiver<Joined>,
}

/// Starts the cluster task. `initial` seeds the view's drains (the local
/// state file) until etcd answers.
pub fn start(
    cfg: ClusterConfig,
    config_hash: String,
    probe_source: bool,
    initial: BTreeMap<DrainKey, DrainRecord>,
    mut stop: watch::Receiver<bool>,
) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let view = View {
        drains: initial,
        ..View::default()
    };
    let (view_tx, view_rx) = watch::channel(Arc::new(view.clone()));
    let (joined_tx, joined) = oneshot::channel();
    let mut task = Task {
        probe_source,
        joined: Some(joined_tx),
        refused: false,
        cfg,
        config_hash,
        rx,
        view_tx,
        view,
        own: BTreeMap::new(),
        pending_audit: Vec::new(),
        logged_down: false,
        down_why: String::new(),
        pending: std::collections::VecDeque::new(),
        lease: None,
        prev_lease: None,
        member: String::new(),
        endpoint: 0,
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = task.run() => {}
            _ = stop.changed() => {}
        }
        task.leave().await;
    });
    Handle {
        tx,
        view: view_rx,
        joined,
    }
}

struct Task {
    /// This node probes from a `probe_source` of its own.
    probe_source: bool,
    /// Told how the first try to join ended, then `None`.
    joined: Option<oneshot::Sender<Joined>>,
    /// Another live process holds this node's name: the task ends.
    refused: bool,
    cfg: ClusterConfig,
    config_hash: String,
    rx: mpsc::UnboundedReceiver<ToCluster>,
    view_tx: watch::Sender<Arc<View>>,
    view: View,
    /// This node's verdicts, published again after every reconnection.
    own: BTreeMap<String, Verdict>,
    /// Audit entries made while etcd was away.
    pending_audit: Vec<AuditEntry>,
    logged_down: bool,
    /// Why etcd is unreachable, while it is.
    down_why: String,
    /// Drains waiting for etcd, each until its deadline: a member's death
    /// or a leader election is waited out, an outage is answered with 503.
    pending: std::collections::VecDeque<(ToCluster, tokio::time::Instant)>,
    /// The current session's lease (revoked when leaving).
    lease: Option<i64>,
    /// The session before this one's lease: its keys are this node's own,
    /// not another process's.
    prev_lease: Option<i64>,
    /// The etcd member of the current (or last) session.
    member: String,
    /// The etcd member the next connection tries first.
    endpoint: usize,
}

/// One connection's state.
struct Session {
    client: Client,
    lease: i64,
}

impl Task {
    fn publish(&self) {
        self.view_tx.send_replace(Arc::new(self.view.clone()));
    }

    async fn run(&mut self) {
        let mut backoff = Duration::from_millis(250);
        // after a session ends, the other members are tried at once; once
        // more only when a session has lasted (no tight loop)
        let mut at_once = true;
        loop {
            let err = match self.connect().await {
                Ok(mut s) => {
                    let began = tokio::time::Instant::now();
                    let err = self.session(&mut s).await;
                    if self.refused {
                        return;
                    }
                    if began.elapsed() > Duration::from_secs(2) {
                        at_once = true;
                    }
                    if at_once {
                        tracing::debug!("cluster: session ended ({err}); reconnecting");
                        at_once = false;
                        backoff = Duration::from_millis(250);
                        continue;
                    }
                    err
                }
                Err(e) => e,
            };
            self.tell_joined(Joined::Unreachable(err.clone()));
            if self.view.connected || !self.logged_down {
                tracing::warn!(
                    "cluster: etcd unreachable ({err}); serving the last known drains and this node's own health verdicts"
                );
                self.logged_down = true;
            }
            self.down_why = err.clone();
            self.view.connected = false;
            self.publish();
            // drains wait a little; verdicts and audit are kept for later
            let pause = if self.pending.is_empty() {
                backoff
            } else {
                Duration::from_millis(250)
            };
            let until = tokio::time::Instant::now() + pause;
            loop {
                self.refuse_overdue(&err);
                match tokio::time::timeout_at(until, self.rx.recv()).await {
                    Ok(Some(cmd)) => self.offline(cmd),
                    Ok(None) | Err(_) => break,
                }
            }
            self.refuse_overdue(&err);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Answers 503 to drains that have waited long enough.
    fn refuse_overdue(&mut self, err: &str) {
        let now = tokio::time::Instant::now();
        let (overdue, waiting): (Vec<_>, Vec<_>) = self
            .pending
            .drain(..)
            .partition(|(_, deadline)| *deadline <= now);
        self.pending = waiting.into();
        for (cmd, _) in overdue {
            if let ToCluster::Drain { reply, .. } | ToCluster::Undrain { reply, .. } = cmd {
                respond(reply, Err(ClusterError::Unavailable(err.to_string())));
            }
        }
    }

    /// A request while etcd is away.
    fn offline(&mut self, cmd: ToCluster) {
        match cmd {
            ToCluster::Verdict { id, verdict } => {
                self.own.insert(id, verdict);
            }
            ToCluster::Forget(ids) => {
                for id in ids {
                    self.own.remove(&id);
                }
            }
            ToCluster::ConfigHash(h) => self.config_hash = h,
            // known to be cut off (not a moment's reconnection): refused
            // at once rather than after DRAIN_PATIENCE
            ToCluster::Drain { reply, .. } | ToCluster::Undrain { reply, .. }
                if self.logged_down =>
            {
                respond(reply, Err(ClusterError::Unavailable(self.down_why.clone())));
            }
            cmd @ (ToCluster::Drain { .. } | ToCluster::Undrain { .. }) => {
                self.pending
                    .push_back((cmd, tokio::time::Instant::now() + DRAIN_PATIENCE));
            }
            ToCluster::Audit(a) => {
                self.push_audit(a.clone());
                // oldest first; the newest AUDIT_KEEP are kept
                self.pending_audit.push(a);
                if self.pending_audit.len() > AUDIT_KEEP {
                    let extra = self.pending_audit.len() - AUDIT_KEEP;
                    self.pending_audit.drain(..extra);
                }
                self.publish();
            }
        }
    }

    /// Reports how the first try to join ended (once).
    fn tell_joined(&mut self, j: Joined) {
        if let Some(tx) = self.joined.take()
            && tx.send(j).is_err()
        {
            tracing::debug!("cluster: nobody waits for the join");
        }
    }

    fn push_audit(&mut self, a: AuditEntry) {
        self.view.audit.insert(0, a);
        self.view.audit.truncate(AUDIT_KEEP);
    }

    /// Leaves on shutdown: the lease goes, and with it this node's
    /// liveness and verdicts, at once rather than after [`NODE_TTL`].
    async fn leave(&mut self) {
        let Some(lease) = self.lease else {
            return;
        };
        let opts = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let left = async {
            let mut c = Client::connect(&self.cfg.etcd, Some(opts)).await?;
            c.lease_revoke(lease).await
        };
        if let Err(e) = left.await {
            tracing::debug!("cluster: leaving: {e}");
        }
    }
}

fn respond(reply: oneshot::Sender<Result<(), ClusterError>>, r: Result<(), ClusterError>) {
    if reply.send(r).is_err() {
        tracing::debug!("drain caller went away");
    }
}
