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
//! | `P/drains/region/NAME`, `P/drains/endpoint/ADDR` | [`DrainRecord`] | one of its own when it expires |
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
use std::time::{Duration, SystemTime};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, WatchOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Cluster as ClusterConfig;
use crate::text::now_rfc3339;
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
const MAX_BACKOFF: Duration = Duration::from_secs(5);
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

/// An audit key's time: when the action happened (its `at`, to the
/// millisecond), not when it reached etcd, so that entries made during an
/// outage keep their place; the sub-millisecond digits of `now` keep two
/// entries of one millisecond apart.
fn audit_nanos(at: &str, now: SystemTime) -> u128 {
    let since_epoch = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    };
    let now = since_epoch(now);
    match humantime::parse_rfc3339_weak(at) {
        Ok(t) => since_epoch(t) / 1_000_000 * 1_000_000 + now % 1_000_000,
        Err(_) => now,
    }
}

/// The end of the key range holding every key that starts with `prefix`
/// (the prefix with its last byte below 0xff incremented), as etcd's
/// `WithPrefix` makes it.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// Escapes a key segment ('/' and '%' and spaces) so it stays one segment.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%20", " ")
        .replace("%25", "%")
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
    /// The etcd member the next connection tries first.
    endpoint: usize,
}

/// One connection's state.
struct Session {
    client: Client,
    lease: i64,
}

impl Task {
    fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.cfg.prefix)
    }

    fn node_key(&self) -> String {
        self.key(&format!("nodes/{}", self.cfg.node))
    }

    fn verdict_key(&self, id: &str) -> String {
        self.key(&format!("health/{}/{}", self.cfg.node, escape(id)))
    }

    fn drain_key(&self, k: &DrainKey) -> String {
        match k {
            DrainKey::Region(n) => self.key(&format!("drains/region/{}", escape(n))),
            DrainKey::Endpoint(a) => self.key(&format!("drains/endpoint/{a}")),
        }
    }

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

    /// Connects to one etcd member, trying each in turn from the one
    /// after the last used: one member per session, so that a member's
    /// death ends the session at once (its streams break) and the next
    /// session starts on a live one.
    async fn connect(&mut self) -> Result<Session, String> {
        let n = self.cfg.etcd.len().max(1);
        let mut last = String::from("no etcd endpoint");
        for k in 0..n {
            let i = (self.endpoint + k) % n;
            let Some(url) = self.cfg.etcd.get(i) else {
                break;
            };
            let opts = ConnectOptions::new()
                .with_connect_timeout(REQUEST_TIMEOUT)
                .with_timeout(REQUEST_TIMEOUT)
                .with_keep_alive(Duration::from_secs(2), REQUEST_TIMEOUT);
            let attempt = async {
                let mut client = Client::connect([url], Some(opts)).await?;
                let lease = client.lease_grant(NODE_TTL, None).await?.id();
                Ok::<_, etcd_client::Error>(Session { client, lease })
            };
            match attempt.await {
                Ok(s) => {
                    self.endpoint = (i + 1) % n;
                    self.lease = Some(s.lease);
                    return Ok(s);
                }
                Err(e) => last = format!("{url}: {}", plain(&e)),
            }
        }
        self.endpoint = (self.endpoint + 1) % n;
        Err(last)
    }

    /// This node's liveness record.
    fn node_info(&self) -> NodeInfo {
        NodeInfo {
            config_hash: self.config_hash.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            since: now_rfc3339(),
            host: holder_name(),
            down_quorum: self.cfg.down_quorum.as_str().to_string(),
            probe_source: self.probe_source,
        }
    }

    /// Writes this node's liveness record and verdicts on its lease.
    async fn put_own(&self, s: &mut Session) -> Result<(), etcd_client::Error> {
        let lease = PutOptions::new().with_lease(s.lease);
        s.client
            .put(
                self.node_key(),
                json(&self.node_info()),
                Some(lease.clone()),
            )
            .await?;
        for (id, v) in &self.own {
            s.client
                .put(self.verdict_key(id), json(v), Some(lease.clone()))
                .await?;
        }
        Ok(())
    }

    /// Whether a key is this node's own: its liveness record or a verdict.
    fn is_own_key(&self, key: &[u8]) -> bool {
        let key = String::from_utf8_lossy(key);
        key == self.node_key() || key.starts_with(&self.key(&format!("health/{}/", self.cfg.node)))
    }

    /// Reports how the first try to join ended (once).
    fn tell_joined(&mut self, j: Joined) {
        if let Some(tx) = self.joined.take()
            && tx.send(j).is_err()
        {
            tracing::debug!("cluster: nobody waits for the join");
        }
    }

    /// Makes sure no other live process holds this node's name: a node key
    /// on another lease is either this node's previous life (a crash: its
    /// lease ends within [`NODE_TTL`]) or a live duplicate (two VMs cloned
    /// with one host name). Waits out the first; `Some(holder)` for the
    /// second.
    async fn claim(&self, s: &mut Session) -> Result<Option<String>, etcd_client::Error> {
        let patience = tokio::time::Instant::now() + Duration::from_secs(NODE_TTL as u64 + 1);
        loop {
            let r = s.client.get(self.node_key(), None).await?;
            let Some(kv) = r.kvs().first() else {
                return Ok(None);
            };
            if kv.lease() == s.lease {
                return Ok(None);
            }
            if tokio::time::Instant::now() >= patience {
                let holder = parse::<NodeInfo>(kv.value())
                    .map(|i| {
                        format!(
                            "{}, since {}",
                            if i.host.is_empty() {
                                "unknown host"
                            } else {
                                i.host.as_str()
                            },
                            i.since
                        )
                    })
                    .unwrap_or_else(|| "an unreadable liveness record".into());
                return Ok(Some(holder));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Joins (node key, verdicts, pending audit), reads everything, then
    /// follows the watch until something fails; returns why.
    async fn session(&mut self, s: &mut Session) -> String {
        match self.session_inner(s).await {
            Ok(()) if self.refused => "refused".to_string(),
            Ok(()) => "the watch ended".to_string(),
            Err(e) => plain(&e),
        }
    }

    /// Reads every key under `prefix` into `view`, in pages of at most
    /// [`READ_PAGE`] keys all read at the revision of the first, so that no
    /// size of the prefix (tens of thousands of verdicts, a long audit)
    /// meets the 4 MiB limit of one gRPC response and locks a node out.
    /// Returns that revision, from which the watch starts.
    async fn read_prefix(
        &self,
        s: &mut Session,
        prefix: &str,
        view: &mut View,
    ) -> Result<i64, etcd_client::Error> {
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut rev = 0;
        let mut limit = READ_PAGE;
        loop {
            let mut opts = GetOptions::new().with_range(end.clone()).with_limit(limit);
            if rev > 0 {
                opts = opts.with_revision(rev);
            }
            let page = match s.client.get(from.clone(), Some(opts)).await {
                Ok(page) => page,
                // a page of unusually large values: the same page, halved
                Err(etcd_client::Error::GRpcStatus(st))
                    if st.code() == tonic::Code::OutOfRange && limit > 1 =>
                {
                    limit /= 2;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if rev == 0 {
                rev = page.header().map_or(0, |h| h.revision());
            }
            for kv in page.kvs() {
                self.apply(view, kv.key(), Some(kv.value()), kv.mod_revision());
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    // the next page starts just after the last key read
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(rev),
            }
        }
    }

    async fn session_inner(&mut self, s: &mut Session) -> Result<(), etcd_client::Error> {
        if let Some(holder) = self.claim(s).await? {
            if self.joined.is_some() {
                tracing::error!(
                    "cluster: node name {:?} is held by another live process ({holder}); refusing to start",
                    self.cfg.node
                );
                self.tell_joined(Joined::NameTaken(holder));
                self.refused = true;
                return Ok(());
            }
            return Err(etcd_client::Error::InvalidArgs(format!(
                "node name {:?} is held by another live process ({holder}); waiting for it to go",
                self.cfg.node
            )));
        }
        let lease = PutOptions::new().with_lease(s.lease);
        self.put_own(s).await?;
        self.tell_joined(Joined::Yes);
        // this node's verdicts of an earlier life, for targets it no
        // longer has, go away (the old lease would take them anyway)
        let mine = s
            .client
            .get(
                self.key(&format!("health/{}/", self.cfg.node)),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        for kv in mine.kvs() {
            let k = String::from_utf8_lossy(kv.key()).to_string();
            let id = unescape(k.rsplit('/').next().unwrap_or_default());
            if !self.own.contains_key(&id) {
                s.client.delete(k, None).await?;
            }
        }
        for a in std::mem::take(&mut self.pending_audit) {
            self.put_audit(s, &a).await?;
        }

        // everything, then every change after it
        let prefix = self.key("");
        let mut view = View {
            connected: true,
            ..View::default()
        };
        let rev = self.read_prefix(s, &prefix, &mut view).await?;
        view.audit.sort_by(|a, b| b.at.cmp(&a.at));
        view.audit.truncate(AUDIT_KEEP);
        self.view = view;
        if self.logged_down {
            tracing::info!(
                "cluster: connected to etcd as node {}; {} nodes live",
                self.cfg.node,
                self.view.nodes.len()
            );
            self.logged_down = false;
        }
        self.publish();
        let mut stream = s
            .client
            .watch(
                prefix,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(rev + 1),
                ),
            )
            .await?;
        // drains that waited for etcd
        while let Some((cmd, deadline)) = self.pending.pop_front() {
            self.operator(s, cmd, deadline).await?;
        }
        let (mut keeper, mut alive) = s.client.lease_keep_alive(s.lease).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(NODE_TTL as u64 * 1000 / 4));
        let mut audits = 0usize;
        loop {
            tokio::select! {
                _ = tick.tick() => keeper.keep_alive().await?,
                r = alive.message() => match r? {
                    Some(r) if r.ttl() > 0 => {}
                    _ => return Err(etcd_client::Error::LeaseKeepAliveError("the node's lease expired".into())),
                },
                msg = stream.message() => {
                    let Some(resp) = msg? else {
                        return Ok(());
                    };
                    if resp.canceled() {
                        return Err(etcd_client::Error::WatchError(format!(
                            "watch canceled: {}", resp.cancel_reason()
                        )));
                    }
                    let mut view = std::mem::take(&mut self.view);
                    let mut lost = false;
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        match ev.event_type() {
                            EventType::Put => {
                                self.apply(&mut view, kv.key(), Some(kv.value()), kv.mod_revision())
                            }
                            EventType::Delete => {
                                lost |= self.is_own_key(kv.key());
                                self.apply(&mut view, kv.key(), None, 0)
                            }
                        }
                    }
                    view.audit.truncate(AUDIT_KEEP);
                    self.view = view;
                    self.publish();
                    if lost {
                        // deleted by hand, or by a process that held the
                        // same name: without them this node's verdicts
                        // leave every quorum, so they are written again
                        tracing::warn!("cluster: this node's keys were deleted in etcd; writing them again");
                        self.put_own(s).await?;
                    }
                }
                cmd = self.rx.recv() => {
                    let Some(cmd) = cmd else { return Ok(()) };
                    match cmd {
                        ToCluster::Verdict { id, verdict } => {
                            let k = self.verdict_key(&id);
                            self.own.insert(id, verdict.clone());
                            s.client.put(k, json(&verdict), Some(lease.clone())).await?;
                        }
                        ToCluster::Forget(ids) => {
                            for id in ids {
                                self.own.remove(&id);
                                s.client.delete(self.verdict_key(&id), None).await?;
                            }
                        }
                        ToCluster::ConfigHash(h) => {
                            self.config_hash = h;
                            let info = self.node_info();
                            s.client.put(self.node_key(), json(&info), Some(lease.clone())).await?;
                        }
                        cmd @ (ToCluster::Drain { .. } | ToCluster::Undrain { .. }) => {
                            let deadline = tokio::time::Instant::now() + DRAIN_PATIENCE;
                            self.operator(s, cmd, deadline).await?;
                        }
                        ToCluster::Audit(a) => {
                            self.put_audit(s, &a).await?;
                            audits += 1;
                            if audits.is_multiple_of(100) {
                                self.trim_audit(s).await?;
                            }
                        }
                    }
                }
            }
        }
    }

    /// A drain or undrain. When the connection fails under it (say the
    /// etcd member it used just died), it waits for the next connection
    /// until its deadline, then the caller hears that etcd is unreachable.
    async fn operator(
        &mut self,
        s: &mut Session,
        cmd: ToCluster,
        deadline: tokio::time::Instant,
    ) -> Result<(), etcd_client::Error> {
        let r = match &cmd {
            ToCluster::Drain {
                key,
                record,
                ttl,
                expect_rev,
                ..
            } => self.put_drain(s, key, record, *ttl, *expect_rev).await,
            ToCluster::Undrain { key, .. } => s
                .client
                .delete(self.drain_key(key), None)
                .await
                .map(|_| true),
            _ => Ok(true),
        };
        match r {
            Ok(stored) => {
                if let ToCluster::Drain { reply, .. } | ToCluster::Undrain { reply, .. } = cmd {
                    respond(
                        reply,
                        if stored {
                            Ok(())
                        } else {
                            Err(ClusterError::Conflict)
                        },
                    );
                }
                Ok(())
            }
            Err(e) => {
                if tokio::time::Instant::now() < deadline {
                    self.pending.push_front((cmd, deadline));
                } else if let ToCluster::Drain { reply, .. } | ToCluster::Undrain { reply, .. } =
                    cmd
                {
                    respond(reply, Err(ClusterError::Unavailable(e.to_string())));
                }
                Err(e)
            }
        }
    }

    /// Stores a drain and counts the drains' revision up, in one
    /// transaction that holds only while the revision is `expect_rev`;
    /// false when it no longer was (another drain came first).
    async fn put_drain(
        &self,
        s: &mut Session,
        key: &DrainKey,
        record: &DrainRecord,
        ttl: Option<Duration>,
        expect_rev: Option<i64>,
    ) -> Result<bool, etcd_client::Error> {
        let opts = match ttl {
            None => None,
            Some(d) => {
                // etcd counts whole seconds; the nodes also end the drain
                // at `until` themselves
                let secs = d.as_secs_f64().ceil().max(1.0) as i64;
                let id = s.client.lease_grant(secs, None).await?.id();
                Some(PutOptions::new().with_lease(id))
            }
        };
        let rev_key = self.key(DRAINS_REV);
        let mut txn = Txn::new();
        if let Some(rev) = expect_rev {
            txn = txn.when([if rev == 0 {
                Compare::version(rev_key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(rev_key.clone(), CompareOp::Equal, rev)
            }]);
        }
        // every drain, forced or not, moves the key's revision on
        let txn = txn.and_then([
            TxnOp::put(self.drain_key(key), json(record), opts),
            TxnOp::put(rev_key, self.cfg.node.clone(), None),
        ]);
        Ok(s.client.txn(txn).await?.succeeded())
    }

    async fn put_audit(&self, s: &mut Session, a: &AuditEntry) -> Result<(), etcd_client::Error> {
        let nanos = audit_nanos(&a.at, SystemTime::now());
        let k = self.key(&format!("audit/{nanos:020}-{}", self.cfg.node));
        s.client.put(k, json(a), None).await?;
        Ok(())
    }

    /// Deletes all but the newest [`AUDIT_KEEP`] audit entries.
    async fn trim_audit(&self, s: &mut Session) -> Result<(), etcd_client::Error> {
        let prefix = self.key("audit/");
        let r = s
            .client
            .get(
                prefix.clone(),
                Some(
                    GetOptions::new()
                        .with_prefix()
                        .with_keys_only()
                        .with_sort(SortTarget::Key, SortOrder::Descend)
                        .with_limit(AUDIT_KEEP as i64 + 1),
                ),
            )
            .await?;
        if let Some(oldest_kept) = r.kvs().get(AUDIT_KEEP) {
            // everything from the prefix up to and including that key
            let mut end = oldest_kept.key().to_vec();
            end.push(0);
            s.client
                .delete(prefix, Some(DeleteOptions::new().with_range(end)))
                .await?;
        }
        Ok(())
    }

    fn push_audit(&mut self, a: AuditEntry) {
        self.view.audit.insert(0, a);
        self.view.audit.truncate(AUDIT_KEEP);
    }

    /// Folds one key (`None`: deleted), changed at `mod_rev`, into `view`.
    fn apply(&self, view: &mut View, key: &[u8], value: Option<&[u8]>, mod_rev: i64) {
        let Ok(key) = std::str::from_utf8(key) else {
            return;
        };
        let Some(rest) = key.strip_prefix(&format!("{}/", self.cfg.prefix)) else {
            return;
        };
        let parts: Vec<&str> = rest.splitn(3, '/').collect();
        match parts.as_slice() {
            ["nodes", node] => match value.and_then(parse::<NodeInfo>) {
                Some(info) => {
                    view.nodes.insert(node.to_string(), info);
                }
                None => {
                    view.nodes.remove(*node);
                }
            },
            ["health", node, id] => {
                let id = unescape(id);
                match value.and_then(parse::<Verdict>) {
                    Some(v) => {
                        view.verdicts
                            .entry(id)
                            .or_default()
                            .insert(node.to_string(), v);
                    }
                    None => {
                        if let Some(m) = view.verdicts.get_mut(&id) {
                            m.remove(*node);
                            if m.is_empty() {
                                view.verdicts.remove(&id);
                            }
                        }
                    }
                }
            }
            ["drains", kind, name] => {
                let k = match *kind {
                    "region" => DrainKey::Region(unescape(name)),
                    "endpoint" => match name.parse() {
                        Ok(a) => DrainKey::Endpoint(a),
                        Err(_) => return,
                    },
                    _ => return,
                };
                match value.and_then(parse::<DrainRecord>) {
                    Some(r) => {
                        view.drains.insert(k, r);
                    }
                    None => {
                        view.drains.remove(&k);
                    }
                }
            }
            [DRAINS_REV] => view.drains_rev = if value.is_some() { mod_rev } else { 0 },
            ["audit", _] => {
                if let Some(a) = value.and_then(parse::<AuditEntry>) {
                    view.audit.insert(0, a);
                }
            }
            _ => tracing::debug!("cluster: ignoring key {key}"),
        }
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

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
    match serde_json::from_slice(b) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("cluster: ignoring a value that does not parse: {e}");
            None
        }
    }
}

/// What went wrong with etcd, in words a person reads: the request's
/// status message and the root cause (`tcp connect error: Connection
/// refused (os error 111)`), without the client library's debug dump.
fn plain(e: &etcd_client::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(s) = root.source() {
        root = s;
    }
    let top = match e {
        etcd_client::Error::GRpcStatus(st) if st.code() == tonic::Code::DeadlineExceeded => {
            "timed out".to_string()
        }
        etcd_client::Error::GRpcStatus(st) => st.message().to_string(),
        etcd_client::Error::TransportError(_) => "cannot connect".to_string(),
        other => other.to_string(),
    };
    let root = root.to_string();
    if root.is_empty() || top.contains(&root) {
        top
    } else if top.is_empty() {
        root
    } else {
        format!("{top}: {root}")
    }
}

/// This process, as its liveness record names it: `HOST, pid N`.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    format!("{host}, pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_keys_sort_by_when_the_action_happened() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(2_000_000_000_123_456_789);
        let early = audit_nanos("2026-12-07T10:00:00.001Z", now);
        let later = audit_nanos("2026-12-07T10:00:00.002Z", now);
        assert!(early < later);
        assert!(
            later
                < now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
        );
        assert_eq!(early % 1_000_000, 456_789);
        // an unreadable time falls back to now
        assert_eq!(
            audit_nanos("yesterday", now),
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/p/"), b"/p0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn escaped_target_ids_stay_one_key_segment() {
        let id = "http://192.0.2.1:8080/a b/%c host=x";
        assert_eq!(unescape(&escape(id)), id);
        assert!(!escape(id).contains('/'));
        assert!(!escape(id).contains(' '));
    }
}
