//! `GET /v1/status`: a view of what was last published (the snapshot's
//! flags and measurements) with what only the loop knows beside it (each
//! endpoint's last probe, the drains' ends, each node's verdict).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Control;
use super::probes::Probed;
use crate::health::ProbeResult;
use crate::state::{Compiled, Snapshot};
use crate::steer::{self, Endpoint, Family, Region};
use crate::text::{kind_name, known, rfc3339, round3};
use crate::view::{DrainKey, Verdict};

impl Control {
    /// Reports everything.
    pub(super) fn status(&self) -> Status {
        let c = &self.compiled;
        let snap = self.shared.load();
        let regions: Vec<RegionStatus> = c
            .regions
            .iter()
            .enumerate()
            .map(|(ri, r)| self.region_status(&snap, ri, r))
            .collect();
        let services = c
            .config
            .services
            .iter()
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                zone: s.zone.clone(),
                policy: s.policy.as_str().to_string(),
                ttl: s.ttl,
                answers: s.answers,
                when_all_down: s.when_all_down.as_str().to_string(),
                regions: s.regions.clone(),
                healthy_regions: s
                    .regions
                    .iter()
                    .filter(|r| regions.iter().any(|x| &x.name == *r && x.healthy))
                    .count(),
            })
            .collect();
        Status {
            generation: snap.generation,
            cluster: self.cluster_status(),
            config: c.config.path.display().to_string(),
            zones: c
                .table
                .zones
                .iter()
                .map(|z| ZoneStatus {
                    name: z.name.clone(),
                    rrsets: z.rrsets,
                    serial: z.serial,
                    source: c
                        .config
                        .zones
                        .iter()
                        .find(|cz| cz.name == z.name)
                        .map_or_else(String::new, |cz| match &cz.primary {
                            Some(p) => format!("primary {}", p.addr),
                            None => format!("file {}", cz.file_display),
                        }),
                    transfer: self.transfers.status(&z.name),
                    dnssec: c
                        .dnssec
                        .as_ref()
                        .and_then(|d| d.status.iter().find(|s| s.zone == z.name).cloned()),
                })
                .collect(),
            regions,
            services,
            scheduled: self.scheduled(),
        }
    }

    /// The scheduled drains not started yet, soonest first.
    fn scheduled(&self) -> Vec<ScheduledDrain> {
        let drains = &self.operator.drains;
        let mut out: Vec<(std::time::SystemTime, ScheduledDrain)> = drains
            .records("")
            .into_keys()
            .filter_map(|k| {
                let d = drains.get(&k)?;
                let starts = d.starts.filter(|_| d.pending())?;
                let (region, endpoint) = match &k {
                    DrainKey::Region(n) => (Some(n.clone()), None),
                    DrainKey::Endpoint(a) => (None, Some(a.to_string())),
                    DrainKey::Dial(_) => return None,
                };
                let duration = d
                    .until
                    .and_then(|u| u.duration_since(starts).ok())
                    .map(|x| humantime::format_duration(x).to_string());
                Some((
                    starts,
                    ScheduledDrain {
                        target: k.to_string(),
                        region,
                        endpoint,
                        starts: rfc3339(starts),
                        until: d.until.map(rfc3339),
                        duration,
                        node: d.node.clone(),
                        forced: d.forced,
                    },
                ))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.target.cmp(&b.1.target)));
        out.into_iter().map(|(_, s)| s).collect()
    }

    fn region_status(&self, snap: &Snapshot, ri: usize, r: &Region) -> RegionStatus {
        let c = &self.compiled;
        let endpoints: Vec<EndpointStatus> = c
            .slots
            .iter()
            .filter(|s| s.region as usize == ri)
            .map(|s| self.endpoint_status(snap, c, r, s))
            .collect();
        let usable = |e: &Endpoint| {
            let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
            f & steer::UP != 0 && f & steer::DRAINED == 0
        };
        let fam = if r.has_family(Family::V4) {
            Family::V4
        } else {
            Family::V6
        };
        let load = steer::dynamic::region_load(r, fam, usable, &snap.live);
        let latency = r
            .endpoints
            .iter()
            .filter(|e| usable(e))
            .map(|e| {
                snap.live
                    .get(e.slot as usize)
                    .map_or(f32::NAN, |l| l.latency_ms)
            })
            .filter(|l| !l.is_nan())
            .fold(f32::NAN, f32::min);
        let drains = &self.operator.drains;
        let drain = drains.regions.get(r.name.as_ref()).filter(|d| d.in_force());
        let dial = drains.dials.get(r.name.as_ref());
        RegionStatus {
            name: r.name.to_string(),
            load: load.map(|(l, _)| round3(l)),
            capacity: load.map(|(_, c)| round3(c)),
            utilisation: steer::utilisation(r, fam, &snap.inputs()).map(round3),
            latency_ms: known(latency),
            healthy: r.endpoints.iter().any(usable),
            drained: drain.is_some(),
            drain_until: drain.and_then(|d| d.until).map(rfc3339),
            dial: dial.and_then(|d| d.value),
            dial_until: dial.and_then(|d| d.until).map(rfc3339),
            bias: ((1.0 - r.reach) * 100.0).round() as i8,
            location: [r.lat, r.lon],
            weight: r.weight,
            endpoints,
        }
    }

    fn endpoint_status(
        &self,
        snap: &Snapshot,
        c: &Compiled,
        r: &Region,
        s: &crate::state::Slot,
    ) -> EndpointStatus {
        let target = s.target.and_then(|t| self.probed(t));
        let e = &r.endpoints[s.endpoint as usize];
        let f = snap.flags.get(e.slot as usize).copied().unwrap_or(0);
        let l = snap
            .live
            .get(e.slot as usize)
            .copied()
            .unwrap_or(steer::Live::UNKNOWN);
        EndpointStatus {
            address: s.address.to_string(),
            weight: e.weight,
            healthy: f & steer::UP != 0,
            drained: f & steer::DRAINED != 0,
            drain_until: self
                .operator
                .drains
                .endpoints
                .get(&s.address)
                .filter(|d| d.in_force())
                .and_then(|d| d.until)
                .map(rfc3339),
            probe: s
                .target
                .and_then(|t| c.targets.get(t as usize))
                .map(|k| ProbeTarget {
                    address: k.probe.to_string(),
                    kind: kind_name(k.check.kind).to_string(),
                    port: k.check.port,
                }),
            last_probe: target.and_then(|t| t.last.clone()),
            since: target.map(|t| rfc3339(t.since)),
            load: known(l.load),
            capacity: f64::from(e.capacity),
            latency_ms: known(l.latency_ms),
            nodes: target.and_then(|t| self.node_verdicts(t)),
            cluster_verdict: target.and_then(|t| {
                let c = self.cluster.as_ref()?;
                let tally = c.view.tally(&c.node, t.up, &t.cluster_id);
                Some(ClusterVerdict {
                    healthy: !tally.is_down(c.quorum),
                    down: tally.down,
                    of: tally.voters,
                    down_quorum: c.quorum.as_str().to_string(),
                })
            }),
        }
    }

    /// Each live node's verdict on a target, this node's own included.
    fn node_verdicts(&self, p: &Probed) -> Option<BTreeMap<String, Verdict>> {
        let c = self.cluster.as_ref()?;
        let mut out: BTreeMap<String, Verdict> = c
            .view
            .others(&c.node, &p.cluster_id)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        out.insert(c.node.clone(), p.verdict());
        Some(out)
    }

    fn cluster_status(&self) -> Option<ClusterStatus> {
        let c = self.cluster.as_ref()?;
        let mut nodes: Vec<NodeStatus> = c
            .view
            .nodes
            .iter()
            .map(|(name, n)| NodeStatus {
                name: name.clone(),
                config_hash: n.config_hash.clone(),
                alive: c.view.connected || *name == c.node,
                version: n.version.clone(),
                down_quorum: n.down_quorum.clone(),
                probe_source: n.probe_source,
                differs: c.diverged.get(name).cloned().unwrap_or_default(),
            })
            .collect();
        if !c.view.nodes.contains_key(&c.node) {
            nodes.push(NodeStatus {
                name: c.node.clone(),
                config_hash: self.compiled.config_hash.clone(),
                alive: true,
                version: env!("CARGO_PKG_VERSION").to_string(),
                down_quorum: c.quorum.as_str().to_string(),
                probe_source: self.compiled.config.server.probe_source.is_some(),
                differs: Vec::new(),
            });
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Some(ClusterStatus {
            node: c.node.clone(),
            connected: c.view.connected,
            synced: c.view.synced,
            etcd_member: c.view.member.clone(),
            down_quorum: c.quorum.as_str().to_string(),
            config_hash: self.compiled.config_hash.clone(),
            nodes,
            diverged: c.diverged.keys().cloned().collect(),
        })
    }
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// Snapshot generation.
    pub generation: u64,
    /// In a cluster: this node, etcd, and the other nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// Configuration file.
    pub config: String,
    /// Zones.
    pub zones: Vec<ZoneStatus>,
    /// Regions.
    pub regions: Vec<RegionStatus>,
    /// Services.
    pub services: Vec<ServiceStatus>,
    /// Drains scheduled and not started yet, soonest first.
    pub scheduled: Vec<ScheduledDrain>,
}

/// A scheduled drain not started yet (SPEC §11).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduledDrain {
    /// `region NAME` or `endpoint ADDRESS`.
    pub target: String,
    /// The region, for a region's drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The address, for an endpoint's drain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// When it starts (RFC 3339).
    pub starts: String,
    /// When it ends.
    pub until: Option<String>,
    /// How long it lasts.
    #[serde(rename = "for")]
    pub duration: Option<String>,
    /// The node whose API made it (clusters).
    pub node: Option<String>,
    /// Made with `force`: its start overrides the safety rule too.
    pub forced: bool,
}

/// A zone in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ZoneStatus {
    /// Name.
    pub name: String,
    /// RRsets loaded.
    pub rrsets: usize,
    /// The SOA serial served.
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub serial: u32,
    /// Where its records come from: `file PATH` or `primary ADDRESS`.
    pub source: String,
    /// For a zone taken from a primary: the last transfer and any error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<super::transfers::TransferStatus>,
    /// Signing: keys and their state, DS for the parent, signature
    /// window (SPEC §9); absent when the zone is not signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnssec: Option<crate::dnssec::ZoneStatus>,
}

/// A region in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionStatus {
    /// Name.
    pub name: String,
    /// At least one non-drained endpoint is up.
    pub healthy: bool,
    /// Drained by an operator.
    pub drained: bool,
    /// When the drain ends, if it does.
    pub drain_until: Option<String>,
    /// The share of its clients its dial keeps (null: not dialled).
    pub dial: Option<f64>,
    /// When the dial ends, if it does.
    pub dial_until: Option<String>,
    /// `bias`: its distances count `1 - bias/100` in `geo` order.
    pub bias: i8,
    /// [lat, lon].
    #[schema(min_items = 2, max_items = 2)]
    pub location: [f64; 2],
    /// `weighted` share.
    pub weight: u32,
    /// Sum of the known loads of its usable endpoints (null: none known).
    pub load: Option<f64>,
    /// Sum of those endpoints' capacities.
    pub capacity: Option<f64>,
    /// load / capacity.
    pub utilisation: Option<f64>,
    /// Its best usable endpoint's smoothed latency.
    pub latency_ms: Option<f64>,
    /// Endpoints.
    pub endpoints: Vec<EndpointStatus>,
}

/// An endpoint in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EndpointStatus {
    /// Address answered.
    pub address: String,
    /// Share within the region.
    pub weight: u32,
    /// Health is up.
    pub healthy: bool,
    /// Drained (this address).
    pub drained: bool,
    /// When the drain ends.
    pub drain_until: Option<String>,
    /// What is probed.
    pub probe: Option<ProbeTarget>,
    /// The last probe.
    pub last_probe: Option<ProbeResult>,
    /// Since when the health is what it is.
    pub since: Option<String>,
    /// The load its load balancer reported (null: unknown).
    pub load: Option<f64>,
    /// Its capacity.
    pub capacity: f64,
    /// Smoothed latency of its passing probes (null: unknown).
    pub latency_ms: Option<f64>,
    /// In a cluster: each live node's verdict (SPEC §8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, Verdict>>,
    /// In a cluster: the verdict that decides answers, with its votes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_verdict: Option<ClusterVerdict>,
}

/// The cluster's verdict on an endpoint's probe target: `down` of `of`
/// live nodes (this one included) see it down.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterVerdict {
    /// Up by the quorum.
    pub healthy: bool,
    /// Nodes that see it down.
    pub down: usize,
    /// Nodes with a verdict.
    pub of: usize,
    /// The rule.
    pub down_quorum: String,
}

/// `/v1/status` `cluster` (SPEC §8).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClusterStatus {
    /// This node's name.
    pub node: String,
    /// etcd is reachable.
    pub connected: bool,
    /// The cluster's drains have been read since this node started (false:
    /// it started while etcd was unreachable and serves its state file's
    /// drains until it can read them).
    pub synced: bool,
    /// The etcd member this node talks to (the last one, while etcd is
    /// unreachable).
    pub etcd_member: String,
    /// `down_quorum`.
    pub down_quorum: String,
    /// This node's configuration hash.
    pub config_hash: String,
    /// The nodes, this one included.
    pub nodes: Vec<NodeStatus>,
    /// Nodes that answer differently from this one: another configuration,
    /// `down_quorum` or `probe_source` (each node's `differs` says how).
    pub diverged: Vec<String>,
}

/// One node in the cluster status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NodeStatus {
    /// Name.
    pub name: String,
    /// Hash of the configuration it serves.
    pub config_hash: String,
    /// Its lease holds (as of the last view, while etcd is away).
    pub alive: bool,
    /// signpost version.
    pub version: String,
    /// Its `down_quorum`.
    pub down_quorum: String,
    /// It probes from a `probe_source` of its own.
    pub probe_source: bool,
    /// How it answers differently from this node (empty: alike).
    pub differs: Vec<String>,
}

/// The probe target of an endpoint.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProbeTarget {
    /// Address probed.
    pub address: String,
    /// http, https or tcp.
    #[serde(rename = "type")]
    pub kind: String,
    /// Port.
    pub port: u16,
}

/// A service in the status.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// Zone.
    pub zone: String,
    /// Policy.
    pub policy: String,
    /// TTL.
    pub ttl: u32,
    /// Addresses per answer.
    pub answers: u32,
    /// All-down behaviour.
    pub when_all_down: String,
    /// Regions in order.
    pub regions: Vec<String>,
    /// Regions currently healthy.
    pub healthy_regions: usize,
}
