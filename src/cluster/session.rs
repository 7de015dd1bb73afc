//! One connection to etcd: join (claim the node name, write this node's
//! keys), read the whole prefix in pages, then follow the watch and carry
//! out requests until something fails.

use std::time::{Duration, SystemTime};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, WatchOptions,
};

use super::keys::{audit_nanos, holder_name, json, parse, plain, prefix_end, unescape};
use super::*;
use crate::text::now_rfc3339;

impl Task {
    /// Connects to one etcd member, trying each in turn from the one
    /// after the last used: one member per session, so that a member's
    /// death ends the session at once (its streams break) and the next
    /// session starts on a live one.
    pub(super) async fn connect(&mut self) -> Result<Session, String> {
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
                    self.member = url.clone();
                    self.prev_lease = self.lease.replace(s.lease);
                    return Ok(s);
                }
                Err(e) => last = format!("{url}: {}", plain(&e)),
            }
        }
        self.endpoint = (self.endpoint + 1) % n;
        Err(last)
    }

    /// This node's liveness record.
    pub(super) fn node_info(&self) -> NodeInfo {
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
    pub(super) async fn put_own(&self, s: &mut Session) -> Result<(), etcd_client::Error> {
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
    pub(super) fn is_own_key(&self, key: &[u8]) -> bool {
        let key = String::from_utf8_lossy(key);
        key == self.node_key() || key.starts_with(&self.key(&format!("health/{}/", self.cfg.node)))
    }

    /// Makes sure no other live process holds this node's name: a node key
    /// on another lease is either this node's previous life (a crash: its
    /// lease ends within [`NODE_TTL`]) or a live duplicate (two VMs cloned
    /// with one host name). Waits out the first; `Some(holder)` for the
    /// second.
    pub(super) async fn claim(
        &self,
        s: &mut Session,
    ) -> Result<Option<String>, etcd_client::Error> {
        let patience = tokio::time::Instant::now() + Duration::from_secs(NODE_TTL as u64 + 1);
        loop {
            let r = s.client.get(self.node_key(), None).await?;
            let Some(kv) = r.kvs().first() else {
                return Ok(None);
            };
            // this session's, or this process's previous session's (etcd
            // keeps a lease through its own restart)
            if kv.lease() == s.lease || Some(kv.lease()) == self.prev_lease {
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
    pub(super) async fn session(&mut self, s: &mut Session) -> String {
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
    pub(super) async fn read_prefix(
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

    pub(super) async fn session_inner(
        &mut self,
        s: &mut Session,
    ) -> Result<(), etcd_client::Error> {
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
        self.put_own(s).await?;
        self.tell_joined(Joined::Yes);
        // the previous session's lease holds nothing of ours any more
        if let Some(old) = self.prev_lease.take()
            && old != s.lease
            && let Err(e) = s.client.lease_revoke(old).await
        {
            tracing::debug!("cluster: revoking the previous lease: {e}");
        }
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
            synced: true,
            member: self.member.clone(),
            ..View::default()
        };
        let rev = self.read_prefix(s, &prefix, &mut view).await?;
        view.audit.sort_by(|a, b| b.at.cmp(&a.at));
        view.audit.truncate(AUDIT_KEEP);
        self.view = view;
        if self.logged_down {
            let n = self.view.nodes.len();
            tracing::info!(
                "cluster: connected to etcd as node {}; {n} node{} live",
                self.cfg.node,
                if n == 1 { "" } else { "s" }
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
        self.follow(s, &mut stream).await
    }

    /// Follows the watch, keeps the lease alive and carries out requests
    /// until something fails; `Ok` when the watch or the requests end.
    pub(super) async fn follow(
        &mut self,
        s: &mut Session,
        stream: &mut etcd_client::WatchStream,
    ) -> Result<(), etcd_client::Error> {
        let lease = PutOptions::new().with_lease(s.lease);
        let (mut keeper, mut alive) = s.client.lease_keep_alive(s.lease).await?;
        let mut tick = tokio::time::interval(Duration::from_millis(NODE_TTL as u64 * 1000 / 4));
        let mut audits = 0usize;
        // a member that hangs (neither closes the connection nor answers)
        // is noticed by its silence: no lease keepalive answered for two
        // ticks ends the session, and the next one uses another member
        let mut answered = tokio::time::Instant::now();
        let silence = Duration::from_millis(NODE_TTL as u64 * 1000 / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if answered.elapsed() > silence {
                        return Err(etcd_client::Error::LeaseKeepAliveError(format!(
                            "the etcd member answered no keepalive for {:.1} s",
                            answered.elapsed().as_secs_f64()
                        )));
                    }
                    keeper.keep_alive().await?
                }
                r = alive.message() => match r? {
                    Some(r) if r.ttl() > 0 => answered = tokio::time::Instant::now(),
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
                    // entries written back after an outage arrive late:
                    // the audit reads by when things happened, alike on
                    // every node
                    view.audit.sort_by(|a, b| b.at.cmp(&a.at));
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
    pub(super) async fn operator(
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
    pub(super) async fn put_drain(
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

    pub(super) async fn put_audit(
        &self,
        s: &mut Session,
        a: &AuditEntry,
    ) -> Result<(), etcd_client::Error> {
        let nanos = audit_nanos(&a.at, SystemTime::now());
        let k = self.key(&format!("audit/{nanos:020}-{}", self.cfg.node));
        s.client.put(k, json(a), None).await?;
        Ok(())
    }

    /// Deletes all but the newest [`AUDIT_KEEP`] audit entries.
    pub(super) async fn trim_audit(&self, s: &mut Session) -> Result<(), etcd_client::Error> {
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
}
