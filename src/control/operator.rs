//! What operators do: drains and undrains (held to the safety rule), their
//! expiry, the audit of every action, and keeping drains across restarts
//! (the state file of a single node; etcd in a cluster).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::drains::{Drain, Drains};
use super::link::forward;
use super::persist::{self, Saved};
use super::{Control, ControlError, safety, send};
use crate::cluster::ToCluster;
use crate::text::for_text;
use crate::view::{AUDIT_KEEP, AuditEntry, DrainKey};

/// How long a drain just taken counts for the safety rule before the
/// state shows it (a cluster's view takes a round trip through etcd).
const RECENT_DRAIN: Duration = Duration::from_secs(5);

/// Longest audited field, in bytes (a longer one ends in "…").
const AUDIT_FIELD_MAX: usize = 256;

/// Cuts a field to [`AUDIT_FIELD_MAX`] bytes, on a character boundary.
fn cap(field: &mut String) {
    if field.len() > AUDIT_FIELD_MAX {
        let mut end = AUDIT_FIELD_MAX - '…'.len_utf8();
        while !field.is_char_boundary(end) {
            end -= 1;
        }
        field.truncate(end);
        field.push('…');
    }
}

/// Operator state: drains, the drains just taken, a single node's audit,
/// and the state file's writer.
pub(super) struct Operator {
    /// The drains in force.
    pub drains: Drains,
    /// Drains taken in the last [`RECENT_DRAIN`], for the safety rule.
    recent: Vec<(DrainKey, Instant)>,
    /// Operator actions of a single node, newest first.
    pub audit: VecDeque<AuditEntry>,
    /// `[server] state`: the drains as last written.
    state: Option<watch::Sender<Saved>>,
}

impl Operator {
    /// Restores the drains kept in the state file, if there is one, and
    /// starts its writer.
    pub fn restore(state: Option<&Path>) -> Operator {
        let saved = state.and_then(persist::load).unwrap_or_default();
        let drains = Drains::from_records(&saved.records(), SystemTime::now());
        if !drains.regions.is_empty() || !drains.endpoints.is_empty() {
            tracing::info!(
                "restored from the state file: {} region and {} endpoint drains",
                drains.regions.len(),
                drains.endpoints.len()
            );
        }
        Operator {
            drains,
            recent: Vec::new(),
            audit: VecDeque::new(),
            state: state.map(|p| persist::writer(p.to_path_buf(), saved)),
        }
    }

    /// Writes the drains to the state file (by the writer task).
    pub fn persist(&self, node: &str) {
        if let Some(tx) = &self.state {
            tx.send_replace(self.drains.saved(node));
        }
    }
}

impl Control {
    /// `Command::Drain`: the safety rule first (unless forced), then the
    /// drain.
    pub(super) fn drain_command(
        &mut self,
        target: DrainKey,
        duration: Option<Duration>,
        force: bool,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        if !force && let Err(e) = self.safety(&target) {
            send(reply, Err(e));
            return false;
        }
        if self.known(&target).is_ok() {
            self.operator.recent.push((target.clone(), Instant::now()));
        }
        self.drain(target, duration, reply)
    }

    /// `Command::Undrain`.
    pub(super) fn undrain_command(
        &mut self,
        target: DrainKey,
        reply: oneshot::Sender<Result<(), ControlError>>,
    ) -> bool {
        self.operator.recent.retain(|(t, _)| *t != target);
        self.undrain(target, reply)
    }

    /// The safety rule over the published snapshot, counting drains taken
    /// in the last seconds as made: in a cluster the view shows them only
    /// once etcd has sent them back.
    fn safety(&mut self, target: &DrainKey) -> Result<(), ControlError> {
        let now = Instant::now();
        self.operator
            .recent
            .retain(|(_, at)| now.duration_since(*at) < RECENT_DRAIN);
        let recent: Vec<&DrainKey> = self.operator.recent.iter().map(|(k, _)| k).collect();
        safety::check(&self.shared.load(), &recent, target).map_err(ControlError::Refused)
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
    fn drain(
        &mut self,
        target: DrainKey,
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
                record: drain.record(&c.node),
                key: target,
                ttl: duration,
                reply: tx,
            };
            forward(&c.tx, cmd, rx, reply);
            return false;
        }
        tracing::info!("{target} drained{}", for_text(duration));
        self.operator.drains.set(target, drain);
        self.persist();
        send(reply, Ok(()));
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
        let had = self.operator.drains.remove(&target);
        if had {
            tracing::info!("{target} undrained");
            self.persist();
        }
        send(reply, Ok(()));
        had
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
    /// fields are cut to [`AUDIT_FIELD_MAX`] bytes: a caller's input (a
    /// region name in a path) must not fill the log or etcd.
    pub(super) fn record(&mut self, mut entry: AuditEntry) {
        for field in [&mut entry.action, &mut entry.target, &mut entry.result] {
            cap(field);
        }
        for field in [&mut entry.duration, &mut entry.from].into_iter().flatten() {
            cap(field);
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
        cap(&mut short);
        assert_eq!(short, "region eu-west");
        let mut long = format!("region {}", "é".repeat(10_000));
        cap(&mut long);
        assert!(long.len() <= AUDIT_FIELD_MAX, "{}", long.len());
        assert!(long.ends_with('…'));
        assert!(long.starts_with("region éé"));
    }
}
