//! What operators do: drains and undrains (held to the safety rule), their
//! expiry, the audit of every action, and keeping drains across restarts
//! (the state file of a single node; etcd in a cluster).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::drains::{Drain, Drains};
use super::link::forward;
use super::persist::{self, Saved, Writer};
use super::{Control, ControlError, safety, send};
use crate::cluster::{ClusterError, ToCluster};
use crate::text::for_text;
use crate::view::{AUDIT_KEEP, AuditEntry, DrainKey};

/// Longest audited field, in bytes (a longer one ends in "…").
const AUDIT_FIELD_MAX: usize = 256;
/// Longest audited result: our own message (a refusal names every service
/// it would leave short), though it may quote the caller's input.
const AUDIT_RESULT_MAX: usize = 2048;

/// Cuts a field to `max` bytes, on a character boundary.
fn cap(field: &mut String, max: usize) {
    if field.len() > max {
        let mut end = max - '…'.len_utf8();
        while !field.is_char_boundary(end) {
            end -= 1;
        }
        field.truncate(end);
        field.push('…');
    }
}

/// Operator state: drains, those being saved or retried, a single node's audit,
/// and the state file's writer.
pub(super) struct Operator {
    /// The drains in force.
    pub drains: Drains,
    /// Operator actions of a single node, newest first.
    pub audit: VecDeque<AuditEntry>,
    /// `[server] state`.
    state: Option<Writer>,
    /// A single node's drains (`Some`) and undrains (`None`) being written
    /// to the state file: in force once the write succeeded.
    unsaved: Vec<(DrainKey, Option<Drain>)>,
    saved_tx: mpsc::UnboundedSender<Persisted>,
    /// Outcomes of those writes.
    pub saved_rx: mpsc::UnboundedReceiver<Persisted>,
    /// Drains that lost to another node's, waiting for the view to show it,
    /// with the drains' revision they were checked against.
    waiting: Vec<(DrainRequest, Option<i64>)>,
    outcomes_tx: mpsc::UnboundedSender<DrainOutcome>,
    /// What the cluster said of drains sent to it.
    pub outcomes_rx: mpsc::UnboundedReceiver<DrainOutcome>,
}

/// A single node's drain or undrain, written (or not) to the state file.
pub(super) struct Persisted {
    key: DrainKey,
    change: Option<Drain>,
    duration: Option<Duration>,
    reply: oneshot::Sender<Result<(), ControlError>>,
    result: Result<(), String>,
}

impl Operator {
    /// Restores the drains kept in the state file, if there is one, and
    /// starts its writer. A file that exists but cannot be used is an
    /// error naming it, unless `discard` says to start without it.
    pub fn restore(
        state: Option<&Path>,
        discard: bool,
        write_errors: Counter,
    ) -> Result<Operator, String> {
        let saved = match state.map(persist::load) {
            None | Some(Ok(None)) => Saved::default(),
            Some(Ok(Some(s))) => s,
            Some(Err(e)) if discard => {
                tracing::warn!("{e}; starting without its drains (--discard-state)");
                Saved::default()
            }
            Some(Err(e)) => {
                return Err(format!(
                    "{e}; its drains would be lost: repair or remove it, or start with --discard-state"
                ));
            }
        };
        let drains = Drains::from_records(&saved.records(), SystemTime::now());
        let (regions, endpoints) = (drains.regions.len(), drains.endpoints.len());
        if regions + endpoints > 0 {
            tracing::info!(
                "restored from the state file: {regions} region drain(s), {endpoints} endpoint drain(s)"
            );
        }
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let (saved_tx, saved_rx) = mpsc::unbounded_channel();
        Ok(Operator {
            drains,
            audit: VecDeque::new(),
            state: state.map(|p| Writer::start(p.to_path_buf(), write_errors)),
            unsaved: Vec::new(),
            saved_tx,
            saved_rx,
            waiting: Vec::new(),
            outcomes_tx,
            outcomes_rx,
        })
    }

    /// The drains as they will be once the writes under way succeed.
    fn intended(&self) -> Drains {
        let mut d = self.drains.clone();
        for (k, change) in &self.unsaved {
            match change {
                Some(drain) => d.set(k.clone(), drain.clone()),
                None => {
                    d.remove(k);
                }
            }
        }
        d
    }

    /// Writes the drains to the state file (by the writer task).
    pub fn persist(&self, node: &str) {
        if let Some(w) = &self.state {
            w.write(self.intended().saved(node), None);
        }
    }
}

/// A drain asked for, until it is stored or refused.
pub(super) struct DrainRequest {
    key: DrainKey,
    duration: Option<Duration>,
    force: bool,
    reply: oneshot::Sender<Result<(), ControlError>>,
    /// Tries so far that lost to another node's drain.
    tries: u32,
    /// When it was asked for.
    since: Instant,
}

/// What the cluster said of a drain: stored, or refused because another
/// drain came first (checked again against the newer view), or etcd
/// cannot be reached.
pub(super) struct DrainOutcome {
    req: DrainRequest,
    /// The drains' revision it was checked against.
    checked_at: Option<i64>,
    result: Result<Result<(), ClusterError>, oneshot::error::RecvError>,
}

/// How often a drain may lose to other nodes' drains before it is refused.
const MAX_TRIES: u32 = 8;
/// How long a drain waits for the cluster's view to show the drain that
/// came first.
const RETRY_PATIENCE: Duration = Duration::from_secs(4);

impl Control {
    /// `Command::Drain`: the safety rule first (unless forced), then the
    /// drain.
    pub(super) fn drain_command(
        &mut self,
        key: DrainKey,
        duration: Option<Duration>,
        force: bool,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        self.try_drain(DrainRequest {
            key,
            duration,
            force,
            reply,
            tries: 0,
            since: Instant::now(),
        })
    }

    fn try_drain(&mut self, req: DrainRequest) -> bool {
        if !req.force
            && let Err(e) = self.safety(&req.key)
        {
            send(req.reply, Err(e));
            return false;
        }
        self.drain(req)
    }

    /// A cluster's answer to a drain (see [`DrainOutcome`]).
    pub(super) fn drain_outcome(&mut self, o: DrainOutcome) {
        let DrainOutcome {
            mut req,
            checked_at,
            result,
        } = o;
        match result {
            Ok(Ok(())) => {
                send(req.reply, Ok(()));
            }
            Ok(Err(ClusterError::Conflict)) => {
                req.tries += 1;
                if req.tries >= MAX_TRIES {
                    send(
                        req.reply,
                        Err(ControlError::Unavailable(
                            "other nodes' drains kept coming first; nothing was changed, try again"
                                .into(),
                        )),
                    );
                } else {
                    tracing::debug!("{} lost to another drain; checking it again", req.key);
                    self.operator.waiting.push((req, checked_at));
                    self.retry_drains();
                }
            }
            Ok(Err(e)) => send(req.reply, Err(ControlError::Unavailable(e.to_string()))),
            Err(_) => send(req.reply, Err(ControlError::Stopped)),
        }
    }

    /// Checks again the drains that lost to another node's, once the
    /// cluster's view shows what came first; true when one was applied.
    pub(super) fn retry_drains(&mut self) -> bool {
        if self.operator.waiting.is_empty() {
            return false;
        }
        let rev = self.cluster.as_ref().map_or(0, |c| c.view.drains_rev);
        let mut dirty = false;
        for (req, checked_at) in std::mem::take(&mut self.operator.waiting) {
            if checked_at != Some(rev) {
                dirty |= self.try_drain(req);
            } else if req.since.elapsed() > RETRY_PATIENCE {
                send(
                    req.reply,
                    Err(ControlError::Unavailable(
                        "the cluster's view did not show the drain that came first; nothing was changed, try again".into(),
                    )),
                );
            } else {
                self.operator.waiting.push((req, checked_at));
            }
        }
        dirty
    }

    /// `Command::Undrain`.
    pub(super) fn undrain_command(
        &mut self,
        target: DrainKey,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        self.undrain(target, reply)
    }

    /// The safety rule over the published snapshot, counting a single
    /// node's drains still being written to its state file as made. A
    /// cluster needs no such allowance: a drain checked against a view
    /// that lags is stored only if no other drain was stored since
    /// (one etcd transaction), and is checked again otherwise.
    fn safety(&mut self, target: &DrainKey) -> Result<(), ControlError> {
        let unsaved: Vec<&DrainKey> = self
            .operator
            .unsaved
            .iter()
            .filter(|(_, change)| change.is_some())
            .map(|(k, _)| k)
            .collect();
        safety::check(&self.shared.load(), &unsaved, target).map_err(ControlError::Refused)
    }

    /// Whether the configuration has this region or endpoint.
    fn known(&self, target: &DrainKey) -> Result<(), ControlError> {
        match target {
            DrainKey::Region(name) if !self.compiled.region_index.contains_key(name) => {
                Err(ControlError::UnknownRegion(name.clone()))
            }
            DrainKey::Endpoint(addr) if !self.compiled.slots.iter().any(|s| s.address == *addr) => {
                Err(ControlError::UnknownEndpoint(*addr))
            }
            _ => Ok(()),
        }
    }

    /// Drains here, or (in a cluster) in etcd, from where the change
    /// reaches every node's view; the caller hears back once it is stored.
    /// In a cluster the drain is stored only if no other was stored since
    /// the view the safety rule was checked against (SPEC §8).
    fn drain(&mut self, req: DrainRequest) -> bool {
        if let Err(e) = self.known(&req.key) {
            send(req.reply, Err(e));
            return false;
        }
        let now = SystemTime::now();
        let drain = Drain {
            until: req.duration.map(|d| now + d),
            at: now,
            node: self.cluster.as_ref().map(|c| c.node.clone()),
        };
        if let Some(c) = &self.cluster {
            let checked_at = (!req.force).then_some(c.view.drains_rev);
            let (tx, rx) = oneshot::channel();
            c.tell(ToCluster::Drain {
                record: drain.record(&c.node),
                key: req.key.clone(),
                ttl: req.duration,
                expect_rev: checked_at,
                reply: tx,
            });
            let outcomes = self.operator.outcomes_tx.clone();
            tokio::spawn(async move {
                let result = rx.await;
                let o = DrainOutcome {
                    req,
                    checked_at,
                    result,
                };
                if outcomes.send(o).is_err() {
                    tracing::debug!("drain outcome after shutdown");
                }
            });
            return false;
        }
        if self.operator.state.is_some() {
            self.save(req.key, Some(drain), req.duration, req.reply);
            return false;
        }
        tracing::info!("{} drained{}", req.key, for_text(req.duration));
        self.operator.drains.set(req.key.clone(), drain);
        send(req.reply, Ok(()));
        true
    }

    /// A single node's drain (`Some`) or undrain (`None`): written to the
    /// state file first, in force (and acknowledged) once the write
    /// succeeded (SPEC §5).
    fn save(
        &mut self,
        key: DrainKey,
        change: Option<Drain>,
        duration: Option<Duration>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) {
        let Some(w) = &self.operator.state else {
            return;
        };
        self.operator.unsaved.push((key.clone(), change.clone()));
        let (tx, rx) = oneshot::channel();
        w.write(self.operator.intended().saved(""), Some(tx));
        let saved = self.operator.saved_tx.clone();
        tokio::spawn(async move {
            let result = rx
                .await
                .unwrap_or_else(|_| Err("the state file writer is gone".into()));
            let p = Persisted {
                key,
                change,
                duration,
                reply,
                result,
            };
            if saved.send(p).is_err() {
                tracing::debug!("state file write finished after shutdown");
            }
        });
    }

    /// A write of [`Control::save`] finished: the change is in force now,
    /// or refused with 503 and nothing changed.
    pub(super) fn saved(&mut self, p: Persisted) -> bool {
        let op = &mut self.operator;
        if let Some(i) = op
            .unsaved
            .iter()
            .position(|(k, c)| *k == p.key && *c == p.change)
        {
            op.unsaved.remove(i);
        }
        if let Err(e) = p.result {
            send(
                p.reply,
                Err(ControlError::Unavailable(format!(
                    "not saved: {e}; nothing was changed"
                ))),
            );
            self.persist();
            return false;
        }
        match p.change {
            Some(drain) => {
                tracing::info!("{} drained{}", p.key, for_text(p.duration));
                op.drains.set(p.key.clone(), drain);
            }
            None => {
                tracing::info!("{} undrained", p.key);
                op.drains.remove(&p.key);
            }
        }
        send(p.reply, Ok(()));
        true
    }

    fn undrain(
        &mut self,
        target: DrainKey,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        if let Err(e) = self.known(&target) {
            send(reply, Err(e));
            return false;
        }
        if let Some(c) = &self.cluster {
            let (tx, rx) = oneshot::channel();
            let cmd = ToCluster::Undrain {
                key: target,
                reply: tx,
            };
            forward(&c.tx, cmd, rx, reply);
            return false;
        }
        let drained = match &target {
            DrainKey::Region(n) => self.operator.drains.regions.contains_key(n),
            DrainKey::Endpoint(a) => self.operator.drains.endpoints.contains_key(a),
        };
        if drained && self.operator.state.is_some() {
            self.save(target, None, None, reply);
            return false;
        }
        if drained {
            self.operator.drains.remove(&target);
            tracing::info!("{target} undrained");
        }
        send(reply, Ok(()));
        drained
    }

    /// Ends the drains whose time is up.
    pub(super) fn expire_drains(&mut self) -> bool {
        let gone = self.operator.drains.expire(SystemTime::now());
        for k in &gone {
            tracing::info!("the drain of {k} expired");
        }
        if !gone.is_empty() {
            self.persist();
        }
        !gone.is_empty()
    }

    /// Writes the drains to the state file.
    pub(super) fn persist(&self) {
        let node = self.cluster.as_ref().map_or("", |c| c.node.as_str());
        self.operator.persist(node);
    }

    /// Logs an operator action and keeps it (in etcd, in a cluster). Its
    /// fields are cut to [`AUDIT_FIELD_MAX`] bytes (its result to
    /// [`AUDIT_RESULT_MAX`]): a caller's input (a region name in a path)
    /// must not fill the log or etcd.
    pub(super) fn record(&mut self, mut entry: AuditEntry) {
        for field in [&mut entry.action, &mut entry.target] {
            cap(field, AUDIT_FIELD_MAX);
        }
        cap(&mut entry.result, AUDIT_RESULT_MAX);
        for field in [&mut entry.duration, &mut entry.from].into_iter().flatten() {
            cap(field, AUDIT_FIELD_MAX);
        }
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
                self.operator.audit.push_front(entry);
                self.operator.audit.truncate(AUDIT_KEEP);
            }
        }
    }

    /// The operator actions, newest first (cluster-wide in a cluster).
    pub(super) fn audit_log(&self) -> Vec<AuditEntry> {
        match &self.cluster {
            Some(c) => c.view.audit.clone(),
            None => self.operator.audit.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audited_fields_are_capped_on_a_character_boundary() {
        let mut short = "region eu-west".to_string();
        cap(&mut short, AUDIT_FIELD_MAX);
        assert_eq!(short, "region eu-west");
        let mut long = format!("region {}", "é".repeat(10_000));
        cap(&mut long, AUDIT_FIELD_MAX);
        assert!(long.len() <= AUDIT_FIELD_MAX, "{}", long.len());
        assert!(long.ends_with('…'));
        assert!(long.starts_with("region éé"));
    }
}
