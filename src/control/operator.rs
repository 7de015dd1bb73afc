//! What operators do: drains and undrains (held to the safety rule),
//! scheduled drains (held to it when made and again when they start),
//! dials, their expiry, the audit of every action, and keeping all of
//! them across restarts (the state file of a single node; etcd in a
//! cluster).

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
use crate::notify::{DialAction, DrainAction, Event};
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
    /// Scheduled drains whose start was sent, and when.
    starting: std::collections::HashMap<DrainKey, Instant>,
    /// The drains and dials as webhooks were last told of them.
    pub told: Drains,
    /// Scheduled drains refused at their start (told as refused, so their
    /// removal is not told again as cancelled).
    refused: std::collections::HashSet<DrainKey>,
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
        let drains_told = drains.clone();
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
            starting: std::collections::HashMap::new(),
            told: drains_told,
            refused: std::collections::HashSet::new(),
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

/// A drain (or dial) asked for, until it is stored or refused.
pub(super) struct DrainRequest {
    key: DrainKey,
    duration: Option<Duration>,
    force: bool,
    /// A scheduled drain's start.
    starts: Option<SystemTime>,
    /// A dial's value.
    value: Option<f64>,
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

/// How long a scheduled drain's start, sent to the cluster, is given to
/// show in the view before it is tried again.
const START_RETRY: Duration = Duration::from_secs(5);

/// How long a drain or dial lasts: from its start (or its making) to
/// its end.
fn scheduled_for(d: &Drain) -> Option<Duration> {
    d.until
        .and_then(|u| u.duration_since(d.starts.unwrap_or(d.at)).ok())
}

/// The webhook event of one key's change from `before` to `after`, if
/// it is one to tell.
fn change_event(
    key: &DrainKey,
    before: Option<&Drain>,
    after: Option<&Drain>,
    now: SystemTime,
    refused: &[DrainKey],
) -> Option<Event> {
    let ran_out = |d: &Drain| d.until.is_some_and(|u| u <= now);
    if let DrainKey::Dial(region) = key {
        let (action, d) = match (before, after) {
            (_, Some(d)) if before != after => (DialAction::Set, d),
            (Some(d), None) if ran_out(d) => (DialAction::Expired, d),
            (Some(d), None) => (DialAction::Cleared, d),
            _ => return None,
        };
        return Some(Event::dial(
            action,
            region,
            d.value.unwrap_or(1.0),
            scheduled_for(d),
        ));
    }
    let (action, d) = match (before, after) {
        (None, Some(d)) if d.pending() => (DrainAction::Scheduled, d),
        (Some(b), Some(d)) if b.pending() && d.started => (DrainAction::Started, d),
        (Some(_), Some(d)) if d.pending() => (DrainAction::Scheduled, d),
        (_, Some(d)) if before != after => (DrainAction::Drained, d),
        (Some(_), None) if refused.contains(key) => return None,
        (Some(d), None) if ran_out(d) => (DrainAction::Expired, d),
        (Some(d), None) if d.pending() => (DrainAction::Cancelled, d),
        (Some(d), None) => (DrainAction::Undrained, d),
        _ => return None,
    };
    Some(Event::drain(action, key, scheduled_for(d), d.starts, None))
}

/// The log line of a drain or dial made.
fn made_text(key: &DrainKey, d: &Drain, duration: Option<Duration>) -> String {
    match (key, d.value, d.starts) {
        (DrainKey::Dial(r), Some(v), _) => {
            format!("region {r} dialled to {v}{}", for_text(duration))
        }
        (_, _, Some(s)) if !d.started => format!(
            "{key} scheduled to drain at {}{}",
            humantime::format_rfc3339_seconds(s),
            for_text(duration)
        ),
        _ => format!("{key} drained{}", for_text(duration)),
    }
}

/// The log line of a drain or dial that ended (`how`: ended, expired).
fn ended_text(key: &DrainKey, how: &str) -> String {
    match key {
        DrainKey::Dial(r) => format!("the dial of region {r} {how}"),
        _ => format!("the drain of {key} {how}"),
    }
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
        starts: Option<SystemTime>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        self.try_drain(DrainRequest {
            key,
            duration,
            force,
            starts,
            value: None,
            reply,
            tries: 0,
            since: Instant::now(),
        })
    }

    /// `Command::Dial`: a dial moves clients on but leaves the region
    /// usable, so the safety rule has nothing to say.
    pub(super) fn dial_command(
        &mut self,
        region: String,
        value: f64,
        duration: Option<Duration>,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        self.try_drain(DrainRequest {
            key: DrainKey::Dial(region),
            duration,
            force: true,
            starts: None,
            value: Some(value),
            reply,
            tries: 0,
            since: Instant::now(),
        })
    }

    fn try_drain(&mut self, req: DrainRequest) -> bool {
        let window = req.starts.map(|s| (s, req.duration.map_or(s, |d| s + d)));
        if window.is_some()
            && self
                .operator
                .intended()
                .get(&req.key)
                .is_some_and(Drain::in_force)
        {
            let e = format!(
                "refused: {} is drained now; undrain it before scheduling its next drain",
                req.key
            );
            send(req.reply, Err(ControlError::Refused(e)));
            return false;
        }
        if !req.force
            && let Err(e) = self.safety(&req.key, window)
        {
            self.notify(Event::drain(
                DrainAction::Refused,
                &req.key,
                req.duration,
                req.starts,
                Some(e.to_string()),
            ));
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
    /// (one etcd transaction), and is checked again otherwise. A drain
    /// scheduled for `window` also counts the scheduled drains whose
    /// windows overlap it, as if they had started.
    fn safety(
        &mut self,
        target: &DrainKey,
        window: Option<(SystemTime, SystemTime)>,
    ) -> Result<(), ControlError> {
        let mut pending: Vec<DrainKey> = self
            .operator
            .unsaved
            .iter()
            .filter(|(_, change)| change.as_ref().is_some_and(Drain::in_force))
            .map(|(k, _)| k.clone())
            .collect();
        if let Some((from, to)) = window {
            let drains = self.operator.intended();
            pending.extend(drains.scheduled_overlapping(from, to, target));
        }
        let pending: Vec<&DrainKey> = pending.iter().collect();
        safety::check(&self.shared.load(), &pending, target).map_err(|e| {
            ControlError::Refused(if window.is_some() {
                format!("{e} (counting the drains scheduled to overlap it)")
            } else {
                e
            })
        })
    }

    /// Whether the configuration has this region or endpoint.
    fn known(&self, target: &DrainKey) -> Result<(), ControlError> {
        match target {
            DrainKey::Region(name) | DrainKey::Dial(name)
                if !self.compiled.region_index.contains_key(name) =>
            {
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
        let mut drain = Drain::new(
            now,
            req.duration,
            self.cluster.as_ref().map(|c| c.node.clone()),
            req.value,
        );
        if let Some(s) = req.starts {
            drain.starts = Some(s);
            drain.until = req.duration.map(|d| s + d);
            drain.forced = req.force;
        }
        if let Some(c) = &self.cluster {
            let checked_at = (!req.force).then_some(c.view.drains_rev);
            let (tx, rx) = oneshot::channel();
            c.tell(ToCluster::Drain {
                record: drain.record(&c.node),
                key: req.key.clone(),
                ttl: drain
                    .until
                    .map(|u| u.duration_since(now).unwrap_or(Duration::ZERO)),
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
        tracing::info!("{}", made_text(&req.key, &drain, req.duration));
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
                tracing::info!("{}", made_text(&p.key, &drain, p.duration));
                op.drains.set(p.key.clone(), drain);
            }
            None => {
                tracing::info!("{}", ended_text(&p.key, "ended"));
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
        let drained = self.operator.drains.get(&target).is_some();
        if drained && self.operator.state.is_some() {
            self.save(target, None, None, reply);
            return false;
        }
        if drained {
            self.operator.drains.remove(&target);
            tracing::info!("{}", ended_text(&target, "ended"));
        }
        send(reply, Ok(()));
        drained
    }

    /// Ends the drains and dials whose time is up, and starts the
    /// scheduled drains whose time has come.
    pub(super) fn expire_drains(&mut self) -> bool {
        let gone = self.operator.drains.expire(SystemTime::now());
        for (k, d) in &gone {
            tracing::info!("{}", ended_text(k, "expired"));
            if d.starts.is_some() && self.leads(d) {
                let result = if d.in_force() {
                    "ok: the scheduled drain ended"
                } else {
                    "ended before it could start"
                };
                self.audit_schedule("drain-end", k, d, result.to_string());
            }
        }
        if !gone.is_empty() {
            self.persist();
        }
        let started = self.start_due();
        !gone.is_empty() || started
    }

    /// Whether this node acts for the schedule of `d`: a single node
    /// always; in a cluster the node that made it while it is alive,
    /// else the first live node by name (so that one node checks the
    /// safety rule at the start and audits it, not all of them).
    fn leads(&self, d: &Drain) -> bool {
        let Some(c) = &self.cluster else {
            return true;
        };
        let nodes = &c.view.nodes;
        match d.node.as_deref() {
            Some(n) if nodes.contains_key(n) => n == c.node,
            _ => nodes.keys().next().is_none_or(|first| *first == c.node),
        }
    }

    /// Starts the scheduled drains that are due and this node leads: the
    /// safety rule is checked again (unless the drain was forced); one
    /// that would now break it does not start, is removed and audited as
    /// refused. True when the answer path must see a change.
    pub(super) fn start_due(&mut self) -> bool {
        let now = SystemTime::now();
        let mut dirty = false;
        self.operator
            .starting
            .retain(|_, at| at.elapsed() < START_RETRY);
        for key in self.operator.drains.due(now) {
            let Some(d) = self.operator.drains.get(&key).cloned() else {
                continue;
            };
            if !self.leads(&d) || self.operator.starting.contains_key(&key) {
                continue;
            }
            self.operator.starting.insert(key.clone(), Instant::now());
            let check = if d.forced {
                Ok(())
            } else {
                self.safety(&key, None)
            };
            match check {
                Ok(()) => {
                    let mut started = d.clone();
                    started.started = true;
                    dirty |= self.store_start(key, started);
                }
                Err(e) => {
                    tracing::warn!("the scheduled drain of {key} does not start: {e}");
                    self.audit_schedule("drain-start", &key, &d, e.to_string());
                    self.notify(Event::drain(
                        DrainAction::Refused,
                        &key,
                        scheduled_for(&d),
                        d.starts,
                        Some(format!("at its start: {e}")),
                    ));
                    self.operator.refused.insert(key.clone());
                    dirty |= self.drop_scheduled(key);
                }
            }
        }
        dirty
    }

    /// Stores a scheduled drain that starts now; true when it is in
    /// force here at once (a single node without a state file).
    fn store_start(&mut self, key: DrainKey, d: Drain) -> bool {
        if !d.started {
            return false;
        }
        let (reply, _) = oneshot::channel();
        let until = d.until.map(|u| {
            u.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
        if let Some(c) = &self.cluster {
            let (tx, rx) = oneshot::channel();
            c.tell(ToCluster::Drain {
                record: d.record(&c.node),
                key,
                ttl: until,
                expect_rev: Some(c.view.drains_rev),
                reply: tx,
            });
            // the view shows the start; a start that lost to another
            // change is checked again at the next tick
            tokio::spawn(async move {
                if let Ok(Err(e)) = rx.await {
                    tracing::debug!("starting a scheduled drain: {e}");
                }
            });
            return false;
        }
        self.audit_schedule("drain-start", &key, &d, "ok".into());
        if self.operator.state.is_some() {
            self.save(key, Some(d), until, reply);
            return false;
        }
        tracing::info!("the scheduled drain of {key} started");
        self.operator.drains.set(key, d);
        true
    }

    /// Removes a scheduled drain refused at its start.
    fn drop_scheduled(&mut self, key: DrainKey) -> bool {
        let (reply, _) = oneshot::channel();
        if let Some(c) = &self.cluster {
            let (tx, rx) = oneshot::channel();
            forward(&c.tx, ToCluster::Undrain { key, reply: tx }, rx, reply);
            return false;
        }
        if self.operator.state.is_some() {
            self.save(key, None, None, reply);
            return false;
        }
        self.operator.drains.remove(&key);
        false
    }

    /// In a cluster: audits the starts and ends of scheduled drains this
    /// node leads, seen in a new view (`before`: the drains until then).
    /// An end is seen here when the view dropped a drill whose time ran
    /// out before this node's own timer did.
    pub(super) fn audit_schedule_changes(&mut self, before: &Drains) {
        let now = SystemTime::now();
        let mut keys = before.keys();
        keys.extend(self.operator.drains.keys());
        for k in keys {
            let (was, is) = (before.get(&k), self.operator.drains.get(&k));
            let (action, d, result) = match (was, is) {
                (Some(w), Some(d)) if d.started && w.pending() => ("drain-start", d, "ok"),
                (Some(w), None) if w.starts.is_some() && w.until.is_some_and(|u| u <= now) => {
                    let result = if w.in_force() {
                        "ok: the scheduled drain ended"
                    } else {
                        "ended before it could start"
                    };
                    ("drain-end", w, result)
                }
                _ => continue,
            };
            if self.leads(d) {
                let d = d.clone();
                self.audit_schedule(action, &k, &d, result.to_string());
            }
        }
    }

    /// Tells webhooks of the drains and dials that changed since they
    /// were last told (SPEC §11), whatever changed them: this node's API,
    /// another node's (through the cluster's view), an expiry, a
    /// schedule. In a cluster the speaker tells, so that a receiver hears
    /// of each change once.
    pub(super) fn notify_drains(&mut self) {
        if self.operator.drains == self.operator.told {
            return;
        }
        let before = std::mem::replace(&mut self.operator.told, self.operator.drains.clone());
        // a refused drill is told as refused once it is gone (its removal
        // may be written to the state file after other changes are told)
        let drains = &self.operator.drains;
        let (gone, kept): (Vec<DrainKey>, Vec<DrainKey>) = self
            .operator
            .refused
            .drain()
            .partition(|k| drains.get(k).is_none());
        self.operator.refused.extend(kept);
        if !self.speaks() {
            return;
        }
        let now = SystemTime::now();
        let mut keys = before.keys();
        keys.extend(self.operator.drains.keys());
        for key in keys {
            let after = self.operator.drains.get(&key);
            if let Some(e) = change_event(&key, before.get(&key), after, now, &gone) {
                self.notify(e);
            }
        }
    }

    /// An audit entry the schedule makes (from `schedule`).
    fn audit_schedule(&mut self, action: &str, key: &DrainKey, d: &Drain, result: String) {
        let duration = d
            .starts
            .zip(d.until)
            .and_then(|(s, u)| u.duration_since(s).ok())
            .map(|x| humantime::format_duration(x).to_string());
        self.record(AuditEntry {
            at: crate::text::now_rfc3339(),
            action: action.to_string(),
            target: key.to_string(),
            duration,
            from: Some("schedule".into()),
            result,
            node: None,
            key: None,
        });
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

    #[test]
    fn changes_are_told_as_what_they_are() {
        let now = SystemTime::now();
        let region = DrainKey::Region("eu".into());
        let dial = DrainKey::Dial("eu".into());
        let kind = |e: Option<Event>| {
            e.map(|e| serde_json::to_value(&e).unwrap())
                .map(|v| v["action"].as_str().unwrap_or("").to_string())
        };
        let drain = Drain::new(now, Some(Duration::from_secs(60)), None, None);
        let mut sched = drain.clone();
        sched.starts = Some(now + Duration::from_secs(10));
        let mut started = sched.clone();
        started.started = true;
        let mut over = drain.clone();
        over.until = Some(now - Duration::from_secs(1));
        let d = Drain::new(now, None, None, Some(0.5));
        let tell = |k: &DrainKey, a: Option<&Drain>, b: Option<&Drain>| {
            kind(change_event(k, a, b, now, &[]))
        };
        assert_eq!(
            tell(&region, None, Some(&drain)).as_deref(),
            Some("drained")
        );
        assert_eq!(
            tell(&region, Some(&drain), None).as_deref(),
            Some("undrained")
        );
        assert_eq!(tell(&region, Some(&over), None).as_deref(), Some("expired"));
        assert_eq!(
            tell(&region, None, Some(&sched)).as_deref(),
            Some("scheduled")
        );
        assert_eq!(
            tell(&region, Some(&sched), Some(&started)).as_deref(),
            Some("started")
        );
        assert_eq!(
            tell(&region, Some(&sched), None).as_deref(),
            Some("cancelled")
        );
        assert_eq!(tell(&region, Some(&drain), Some(&drain)), None);
        assert_eq!(tell(&dial, None, Some(&d)).as_deref(), Some("set"));
        assert_eq!(tell(&dial, Some(&d), None).as_deref(), Some("cleared"));
        // a drill refused at its start is told once, as refused, not again
        // as cancelled when it goes
        assert_eq!(
            kind(change_event(
                &region,
                Some(&sched),
                None,
                now,
                std::slice::from_ref(&region)
            )),
            None
        );
    }
}
