//! Publishing: the decided state of every endpoint (health by the quorum
//! rule, drains, live load and latency) folded into one new [`Snapshot`],
//! swapped in at once (STYLE habit 6), and the endpoint gauges updated
//! from the same values.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;

use super::Control;
use super::probes::Probed;
use crate::metrics::{EndpointLabels, RegionLabels};
use crate::state::Snapshot;
use crate::steer;

impl Control {
    /// The running target behind target index `ti` of the configuration.
    pub(super) fn probed(&self, ti: u32) -> Option<&Probed> {
        let t = self.compiled.targets.get(ti as usize)?;
        self.probes.get(&t.key())
    }

    /// The decided state of a target; one that is not running counts as
    /// down (fail closed: every target is started before it is served).
    /// In a cluster the state is the quorum of live nodes' verdicts, this
    /// node's own included (SPEC §8); while etcd is away, this node's own.
    fn target_up(&self, ti: u32) -> bool {
        let Some(p) = self.probed(ti) else {
            return false;
        };
        match &self.cluster {
            Some(c) => !c.holds_down(p.up, &p.cluster_id),
            None => p.up,
        }
    }

    /// How many live nodes (this one included) see a target down.
    fn down_votes(&self, ti: u32) -> usize {
        match (self.probed(ti), &self.cluster) {
            (None, _) => 0,
            (Some(p), None) => usize::from(!p.up),
            (Some(p), Some(c)) => c.view.tally(&c.node, p.up, &p.cluster_id).down,
        }
    }

    /// In a cluster, logs each target whose decided state (the quorum of
    /// the live nodes' verdicts) turned, with the votes: this node's own
    /// probe is only one of them.
    fn log_verdicts(&mut self) {
        let Some(c) = &self.cluster else {
            return;
        };
        let mut seen = std::collections::HashMap::with_capacity(self.compiled.targets.len());
        for (ti, t) in self.compiled.targets.iter().enumerate() {
            let Some(p) = self.probed(ti as u32) else {
                continue;
            };
            let tally = c.view.tally(&c.node, p.up, &p.cluster_id);
            let up = !tally.is_down(c.quorum);
            let key = t.key();
            match self.decided.get(&key) {
                Some(&was) if was != up => {
                    let votes = format!(
                        "{} of {} nodes see it down, down_quorum = {}",
                        tally.down,
                        tally.voters,
                        c.quorum.as_str()
                    );
                    if up {
                        tracing::info!(
                            "endpoint {} is up by the cluster's verdict ({votes})",
                            key.probe
                        );
                    } else {
                        tracing::warn!(
                            "endpoint {} is down by the cluster's verdict ({votes})",
                            key.probe
                        );
                    }
                }
                _ => {}
            }
            seen.insert(key, up);
        }
        self.decided = seen;
    }

    /// Builds and swaps in a new snapshot.
    pub(super) fn publish(&mut self) {
        self.notify_drains();
        let before = self.shared.load_full();
        self.log_verdicts();
        let c = &self.compiled;
        let drains = &self.operator.drains;
        let flags = c.flags(
            |ti| self.target_up(ti),
            |r| drains.region_drained(r),
            |a| drains.endpoint_drained(a),
        );
        let dials: Box<[f32]> = if drains.dials.is_empty() {
            Box::new([])
        } else {
            c.regions
                .iter()
                .map(|r| drains.dial(&r.name).map_or(1.0, |v| v as f32))
                .collect()
        };
        let now = Instant::now();
        let live: Box<[steer::Live]> = c
            .slots
            .iter()
            .map(|s| {
                s.target
                    .and_then(|ti| self.probed(ti))
                    .map_or(steer::Live::UNKNOWN, |p| p.live(now))
            })
            .collect();
        self.generation += 1;
        self.export_endpoints(&flags, &live);
        self.export_shed(&flags, &live);
        self.export_dials(&dials);
        self.metrics.snapshot_generation.set(self.generation as i64);
        self.export_signing();
        self.shared.store(Arc::new(Snapshot {
            generation: self.generation,
            data: self.compiled.clone(),
            flags,
            live,
            dials,
            cluster: self
                .cluster
                .as_ref()
                .map(|l| (l.view.clone(), l.node.clone())),
            refresh: Some(self.transfers.refresh_tx.clone()),
        }));
        self.notify_health(&before);
        self.notify_secondaries();
    }

    /// Endpoint gauges: updated in place, and only those of removed
    /// endpoints dropped, so a scrape never sees a gauge vanish and come
    /// back.
    fn export_endpoints(&mut self, flags: &[u8], live: &[steer::Live]) {
        let c = &self.compiled;
        let m = &self.metrics;
        let mut current = HashSet::new();
        for (i, (slot, f)) in c.slots.iter().zip(flags.iter()).enumerate() {
            let labels = EndpointLabels {
                region: c.regions[slot.region as usize].name.to_string(),
                address: slot.address.to_string(),
            };
            m.endpoint_up
                .get_or_create(&labels)
                .set(i64::from(f & steer::UP != 0));
            m.endpoint_drained
                .get_or_create(&labels)
                .set(i64::from(f & steer::DRAINED != 0));
            let l = live.get(i).copied().unwrap_or(steer::Live::UNKNOWN);
            set_or_remove(&m.endpoint_load, &labels, f64::from(l.load));
            set_or_remove(&m.endpoint_latency, &labels, f64::from(l.latency_ms) / 1e3);
            if self.cluster.is_some() {
                let down = slot.target.map_or(0, |ti| self.down_votes(ti));
                m.endpoint_down_nodes
                    .get_or_create(&labels)
                    .set(down as i64);
            }
            current.insert(labels);
        }
        for stale in self.published.difference(&current) {
            m.endpoint_up.remove(stale);
            m.endpoint_drained.remove(stale);
            m.endpoint_down_nodes.remove(stale);
            m.endpoint_load.remove(stale);
            m.endpoint_latency.remove(stale);
        }
        self.published = current;
    }

    /// Each region's dial (1: not dialled).
    fn export_dials(&self, dials: &[f32]) {
        for (i, r) in self.compiled.regions.iter().enumerate() {
            self.metrics
                .region_dial
                .get_or_create(&RegionLabels {
                    region: r.name.to_string(),
                })
                .set(dials.get(i).map_or(1.0, |&d| f64::from(d)));
        }
    }

    /// The share of each shedding region's clients sent elsewhere.
    fn export_shed(&self, flags: &[u8], live: &[steer::Live]) {
        let c = &self.compiled;
        let inp = steer::Inputs {
            regions: &c.regions,
            flags,
            live,
            dials: &[],
        };
        for r in c.regions.iter().filter(|r| r.shed.is_some()) {
            let (low, high) = r.shed.unwrap_or((1.0, 2.0));
            let fam = if r.has_family(steer::Family::V4) {
                steer::Family::V4
            } else {
                steer::Family::V6
            };
            let ratio = steer::utilisation(r, fam, &inp)
                .map_or(0.0, |u| steer::dynamic::shed_ratio(u, low, high));
            self.metrics
                .region_shed_ratio
                .get_or_create(&RegionLabels {
                    region: r.name.to_string(),
                })
                .set(ratio);
        }
    }
}

/// Sets a gauge, or removes the series while the value is unknown.
fn set_or_remove(
    family: &prometheus_client::metrics::family::Family<
        EndpointLabels,
        prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>,
    >,
    labels: &EndpointLabels,
    v: f64,
) {
    if v.is_nan() {
        family.remove(labels);
    } else {
        family.get_or_create(labels).set(v);
    }
}
