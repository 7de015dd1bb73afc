//! What the control loop tells webhooks of by itself (SPEC §11): health,
//! from the snapshots it publishes, and the cluster, from the views it
//! takes in. Reloads are told where they are applied (`reload`); drains
//! and dials as they change in what this node applies (`operator`), by
//! the same speaker, and a refusal by the node that refused.
//!
//! In a cluster every node decides health by the same quorum, so every
//! node sees each change of the cluster's verdict; one node tells it, so
//! that a receiver hears of it once: the cluster's speaker, the live node
//! whose name sorts first ([`View::speaker`]). (Telling from the node
//! whose own probe turned the quorum was tried: when the nodes' probes
//! turn at the same moment, as they do when a load balancer comes back
//! for everyone, each node's view still lacks the others' verdicts and
//! each believes it turned it.) While a node cannot reach etcd it decides
//! alone, and tells its own changes. A node answering differently is told
//! by the speaker too; a node joining or leaving by the first node that
//! was there before and still is. Losing and regaining etcd is each
//! node's own news. Changes only: the state at start is in `/v1/status`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use super::Control;
use crate::notify::{ClusterAction, Event};
use crate::state::{Compiled, Snapshot};
use crate::steer;
use crate::view::View;

/// What a node remembers of its cluster between views, to tell changes.
#[derive(Debug, Default)]
pub(super) struct Seen {
    /// What was last told of etcd (`None` before the first view).
    etcd_up: Option<bool>,
    /// The live nodes of the last connected view (`None` before one).
    nodes: Option<BTreeSet<String>>,
}

impl Seen {
    /// Changes are told from `view` on: the view a node starts with
    /// (before the first connected one, from nothing).
    pub(super) fn from_view(view: &View) -> Seen {
        if !view.connected {
            return Seen::default();
        }
        Seen {
            etcd_up: Some(true),
            nodes: Some(view.nodes.keys().cloned().collect()),
        }
    }
}

impl Control {
    /// Health events between `before` and the snapshot just published:
    /// endpoints whose decided state turned, and regions that turned
    /// healthy (an endpoint is up) or unhealthy (none is). Drains are not
    /// health: they have events of their own.
    pub(super) fn notify_health(&self, before: &Snapshot) {
        // the first publish is the baseline, not a change
        if before.generation == 0 || !self.speaks() {
            return;
        }
        let now = self.shared.load();
        let (old, new) = (&before.data, &now.data);
        // most publishes (a measurement, a drain) change no health: with
        // the same configuration, the flags tell at once
        if std::sync::Arc::ptr_eq(old, new)
            && before
                .flags
                .iter()
                .zip(now.flags.iter())
                .all(|(a, b)| (a ^ b) & steer::UP == 0)
        {
            return;
        }
        let was: HashMap<(&str, IpAddr), bool> = old
            .slots
            .iter()
            .zip(before.flags.iter())
            .map(|(s, f)| {
                let region = &*old.regions[s.region as usize].name;
                ((region, s.address), f & steer::UP != 0)
            })
            .collect();
        // per region: the reason of its first endpoint told of
        let mut reasons: HashMap<u16, Option<String>> = HashMap::new();
        for (s, f) in new.slots.iter().zip(now.flags.iter()) {
            let up = f & steer::UP != 0;
            let region = &*new.regions[s.region as usize].name;
            let (Some(&was_up), Some(ti)) = (was.get(&(region, s.address)), s.target) else {
                continue;
            };
            if was_up == up {
                continue;
            }
            let reason = self.reason(ti, up);
            reasons.entry(s.region).or_insert_with(|| reason.clone());
            self.notify(Event::endpoint_health(region, s.address, up, reason));
        }
        let old_up: HashMap<&str, bool> = old
            .regions
            .iter()
            .map(|r| &*r.name)
            .zip(regions_up(old, &before.flags))
            .collect();
        for ((ri, r), up) in new
            .regions
            .iter()
            .enumerate()
            .zip(regions_up(new, &now.flags))
        {
            if old_up.get(&*r.name).is_none_or(|&was| was == up) {
                continue;
            }
            let reason = reasons.get(&(ri as u16)).cloned().flatten();
            self.notify(Event::region_health(&r.name, up, reason));
        }
    }

    /// Why target `ti` is now `up` (or not): the last probe's outcome; in
    /// a cluster, of a node that sees it so (this one first), with the
    /// votes, e.g. `ns2: status 503 (2 of 3 nodes see it down)`.
    fn reason(&self, ti: u32, up: bool) -> Option<String> {
        let p = self.probed(ti)?;
        let own = p.last.as_ref().map(|r| r.reason.clone());
        let Some(c) = self.cluster.as_ref().filter(|c| c.view.connected) else {
            return own;
        };
        let why = if p.up == up {
            own.map(|r| format!("{}: {r}", c.node))
        } else {
            c.view
                .others(&c.node, &p.cluster_id)
                .find(|(_, v)| v.healthy == up)
                .map(|(n, v)| format!("{n}: {}", v.reason))
        };
        let t = c.view.tally(&c.node, p.up, &p.cluster_id);
        let votes = format!("{} of {} nodes see it down", t.down, t.voters);
        Some(match why {
            Some(w) => format!("{w} ({votes})"),
            None => votes,
        })
    }

    /// Whether this node tells of the cluster's health: always on a
    /// single node, or while etcd is away; else when it is the speaker.
    pub(super) fn speaks(&self) -> bool {
        self.cluster
            .as_ref()
            .is_none_or(|c| c.view.speaker().is_none_or(|s| s == c.node))
    }
}

/// Per region of `c`, whether any of its endpoints is up in `flags`.
fn regions_up(c: &Compiled, flags: &[u8]) -> Vec<bool> {
    let mut up = vec![false; c.regions.len()];
    for (s, f) in c.slots.iter().zip(flags) {
        if f & steer::UP != 0
            && let Some(u) = up.get_mut(s.region as usize)
        {
            *u = true;
        }
    }
    up
}

/// The cluster events of a new view, as node `me` tells them: etcd lost
/// or regained (each node its own), and, from the node that speaks for
/// the cluster, nodes joined or left and nodes answering differently
/// (`diverged`, by name, how; `was` the same before this view).
pub(super) fn view_events(
    seen: &mut Seen,
    me: &str,
    view: &View,
    was: &BTreeMap<String, Vec<String>>,
    diverged: &BTreeMap<String, Vec<String>>,
) -> Vec<Event> {
    let mut out = Vec::new();
    if !view.connected {
        if seen.etcd_up != Some(false) {
            out.push(Event::cluster(
                ClusterAction::EtcdLost,
                None,
                Some(format!(
                    "etcd cannot be reached{}; this node serves its last view of drains and its own health verdicts",
                    if view.member.is_empty() {
                        String::new()
                    } else {
                        format!(" (last member {})", view.member)
                    }
                )),
            ));
            seen.etcd_up = Some(false);
        }
        return out;
    }
    if seen.etcd_up == Some(false) {
        out.push(Event::cluster(
            ClusterAction::EtcdRegained,
            None,
            Some(format!(
                "connected to {}; {} nodes live",
                view.member,
                view.nodes.len()
            )),
        ));
    }
    seen.etcd_up = Some(true);
    let now: BTreeSet<String> = view.nodes.keys().cloned().collect();
    if let Some(before) = &seen.nodes
        && before.intersection(&now).next().map(String::as_str) == Some(me)
    {
        for n in now.difference(before) {
            let version = view.nodes.get(n).map(|i| format!("version {}", i.version));
            out.push(Event::cluster(ClusterAction::NodeJoined, Some(n), version));
        }
        for n in before.difference(&now) {
            out.push(Event::cluster(ClusterAction::NodeLeft, Some(n), None));
        }
    }
    if view.speaker() == Some(me) {
        for (n, how) in diverged {
            if was.get(n) != Some(how) {
                out.push(Event::cluster(
                    ClusterAction::ConfigDivergent,
                    Some(n),
                    Some(format!("answers differently from {me}: {}", how.join(", "))),
                ));
            }
        }
        for n in was.keys() {
            if !diverged.contains_key(n) && now.contains(n) {
                out.push(Event::cluster(ClusterAction::ConfigAgreed, Some(n), None));
            }
        }
    }
    seen.nodes = Some(now);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::ClusterChange;
    use crate::view::NodeInfo;

    fn view(connected: bool, nodes: &[&str]) -> View {
        let info = NodeInfo {
            config_hash: "h".into(),
            version: "1.0".into(),
            since: String::new(),
            host: String::new(),
            down_quorum: "majority".into(),
            probe_source: false,
        };
        View {
            connected,
            member: "http://127.0.0.1:2379".into(),
            nodes: nodes
                .iter()
                .map(|n| (n.to_string(), info.clone()))
                .collect(),
            ..View::default()
        }
    }

    /// (action, peer) of each event.
    fn told(events: &[Event]) -> Vec<(ClusterAction, Option<String>)> {
        events
            .iter()
            .map(|e| match e {
                Event::Cluster(ClusterChange { action, peer, .. }) => (*action, peer.clone()),
                other => panic!("not a cluster event: {other:?}"),
            })
            .collect()
    }

    fn p(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn joins_and_leaves_are_told_by_the_first_node_that_stayed() {
        use ClusterAction::*;
        let none = BTreeMap::new();
        let mut ns1 = Seen::default();
        let mut ns2 = Seen::default();
        let step =
            |seen: &mut Seen, me: &str, v: &View| told(&view_events(seen, me, v, &none, &none));
        // the first view is the baseline
        let v = view(true, &["ns1", "ns2"]);
        assert_eq!(step(&mut ns1, "ns1", &v), []);
        assert_eq!(step(&mut ns2, "ns2", &v), []);
        let v = view(true, &["ns1", "ns2", "ns3"]);
        assert_eq!(step(&mut ns1, "ns1", &v), [(NodeJoined, p("ns3"))]);
        assert_eq!(step(&mut ns2, "ns2", &v), [], "ns1 speaks");
        // ns1 leaves: ns2 is the first that stayed
        let v = view(true, &["ns2", "ns3"]);
        assert_eq!(step(&mut ns2, "ns2", &v), [(NodeLeft, p("ns1"))]);
        // ns0 joins, sorting first: still told by ns2 (ns0 was not there)
        let v = view(true, &["ns0", "ns2", "ns3"]);
        assert_eq!(step(&mut ns2, "ns2", &v), [(NodeJoined, p("ns0"))]);
    }

    #[test]
    fn etcd_lost_and_regained_and_what_changed_meanwhile() {
        use ClusterAction::*;
        let none = BTreeMap::new();
        let mut seen = Seen::default();
        let mut step = |v: &View| told(&view_events(&mut seen, "ns1", v, &none, &none));
        assert_eq!(step(&view(true, &["ns1", "ns2"])), []);
        assert_eq!(step(&view(false, &["ns1", "ns2"])), [(EtcdLost, None)]);
        assert_eq!(step(&view(false, &["ns1", "ns2"])), [], "once");
        assert_eq!(
            step(&view(true, &["ns1"])),
            [(EtcdRegained, None), (NodeLeft, p("ns2"))]
        );
        // a node that cannot reach etcd at start says so; no regained
        // before a loss
        let mut fresh = Seen::default();
        let v = view(false, &[]);
        let e = view_events(&mut fresh, "ns1", &v, &none, &none);
        assert_eq!(told(&e), [(EtcdLost, None)]);
        let mut first = Seen::default();
        let v = view(true, &["ns1"]);
        assert_eq!(told(&view_events(&mut first, "ns1", &v, &none, &none)), []);
    }

    #[test]
    fn divergence_is_told_when_it_starts_changes_and_ends() {
        use ClusterAction::*;
        let mut seen = Seen::default();
        let v = view(true, &["ns1", "ns2", "ns3"]);
        let d = |n: &[(&str, &str)]| -> BTreeMap<String, Vec<String>> {
            n.iter()
                .map(|(k, how)| (k.to_string(), vec![how.to_string()]))
                .collect()
        };
        let none = d(&[]);
        let a = d(&[("ns3", "configuration x")]);
        let b = d(&[("ns3", "configuration y")]);
        let e = view_events(&mut seen, "ns1", &v, &none, &a);
        assert_eq!(told(&e), [(ConfigDivergent, p("ns3"))]);
        let Event::Cluster(c) = &e[0] else { panic!() };
        assert_eq!(
            c.detail.as_deref(),
            Some("answers differently from ns1: configuration x")
        );
        assert_eq!(told(&view_events(&mut seen, "ns1", &v, &a, &a)), []);
        assert_eq!(
            told(&view_events(&mut seen, "ns1", &v, &a, &b)),
            [(ConfigDivergent, p("ns3"))]
        );
        assert_eq!(
            told(&view_events(&mut seen, "ns1", &v, &b, &none)),
            [(ConfigAgreed, p("ns3"))]
        );
        // only the first node speaks
        let mut ns2 = Seen::default();
        assert_eq!(told(&view_events(&mut ns2, "ns2", &v, &none, &a)), []);
    }
}
