//! What this node knows of its cluster (SPEC §8), as plain data: the live
//! nodes, their verdicts on each probe target, the drains and the audit.
//! The cluster task fills a [`View`] from etcd; the control loop folds it
//! into the snapshot; explain and the status read it. It lives below all
//! three so that none of them depends on another for it.
//!
//! [`View::tally`] is the one quorum rule: every place that decides or
//! shows whether the cluster holds a target down counts votes through it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::{CheckId, CheckKind, Quorum};
use crate::text::kind_name;

/// Newest audit entries kept in etcd and in the view (and on a single node).
pub const AUDIT_KEEP: usize = 1000;

/// A node's liveness record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Hash of the configuration it serves (without its own `[server]`
    /// and `[cluster]` sections).
    pub config_hash: String,
    /// signpost version.
    pub version: String,
    /// When it (re)joined.
    pub since: String,
    /// Which process it is (`HOST, pid N`), to name the holder of a node
    /// name that a second process asks for.
    #[serde(default)]
    pub host: String,
    /// Its `[cluster] down_quorum`: nodes that count votes differently
    /// answer differently.
    #[serde(default)]
    pub down_quorum: String,
    /// Whether it probes from a `probe_source` of its own.
    #[serde(default)]
    pub probe_source: bool,
}

impl NodeInfo {
    /// How this node's settings that change answers differ from `mine`,
    /// in words (empty: they agree): the configuration hash (without
    /// `[server]` and `[cluster]`), `down_quorum`, and whether a
    /// `probe_source` is set.
    pub fn differs_from(&self, mine: &NodeInfo) -> Vec<String> {
        let mut out = Vec::new();
        if self.config_hash != mine.config_hash {
            out.push(format!("configuration {}", self.config_hash));
        }
        if self.down_quorum != mine.down_quorum && !self.down_quorum.is_empty() {
            out.push(format!("down_quorum = {:?}", self.down_quorum));
        }
        if self.probe_source != mine.probe_source {
            out.push(if self.probe_source {
                "probe_source set".to_string()
            } else {
                "no probe_source".to_string()
            });
        }
        out
    }
}

/// One node's verdict on one probe target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Verdict {
    /// The node's decided state.
    pub healthy: bool,
    /// The last probe's reason.
    pub reason: String,
    /// Since when the state is what it is (RFC 3339).
    pub since: String,
    /// The last probe's latency.
    #[serde(default)]
    pub latency_ms: Option<f64>,
}

/// A drain or a dial as stored (in etcd, or in a single node's state
/// file). Fields added after the first release are optional, so that a
/// record written by an older node reads the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainRecord {
    /// When it ends (RFC 3339), if it does.
    pub until: Option<String>,
    /// When it was made.
    pub at: String,
    /// The node whose API made it.
    pub node: String,
    /// A scheduled drain: when it starts (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    /// A scheduled drain has started (it passed the safety rule at its
    /// start); until then it is not in force.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub started: bool,
    /// A dial: the fraction of the region's clients it keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// A scheduled drain made with `force`: its start overrides the
    /// safety rule too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forced: bool,
}

/// One operator action (SPEC §6 `GET /v1/audit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (RFC 3339, milliseconds).
    pub at: String,
    /// drain, undrain, reload, lab-fail, lab-recover.
    pub action: String,
    /// What it applied to (`region eu-west`, `endpoint 192.0.2.1`, ...).
    pub target: String,
    /// The drain's duration, if any.
    #[serde(rename = "for")]
    pub duration: Option<String>,
    /// The caller's address.
    pub from: Option<String>,
    /// `ok`, or what went wrong.
    pub result: String,
    /// The node that took the call.
    pub node: Option<String>,
    /// Its etcd key, when it came from etcd (so that a deleted key leaves
    /// the view too).
    #[serde(skip)]
    pub key: Option<String>,
}

/// What an operator's hold applies to: a drain of a region or of an
/// endpoint, or a region's dial (SPEC §11). The three are stored, kept
/// across restarts, shared through etcd and expire alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DrainKey {
    /// A region by name.
    Region(String),
    /// Every endpoint with this address.
    Endpoint(IpAddr),
    /// A region's dial.
    Dial(String),
}

impl fmt::Display for DrainKey {
    /// `region NAME` or `endpoint ADDRESS`, as logs, errors and the audit
    /// write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainKey::Region(n) => write!(f, "region {n}"),
            DrainKey::Endpoint(a) => write!(f, "endpoint {a}"),
            DrainKey::Dial(n) => write!(f, "dial of region {n}"),
        }
    }
}

/// Everything this node knows of the cluster.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// etcd is reachable and the view is current.
    pub connected: bool,
    /// The cluster's drains and verdicts have been read at least once since
    /// this node started: a node that could not reach etcd at start serves
    /// with its state file's drains until then.
    pub synced: bool,
    /// The etcd member this node talks to (its client URL).
    pub member: String,
    /// Live nodes (their lease holds), by name.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Verdicts by target id ([`target_id`]), then node.
    pub verdicts: HashMap<String, BTreeMap<String, Verdict>>,
    /// Drains.
    pub drains: BTreeMap<DrainKey, DrainRecord>,
    /// The etcd revision of the last stored drain (the key `drains-rev`,
    /// which every drain rewrites in its own transaction; 0: none yet), so
    /// that a drain checked against this view is stored only if no other
    /// was stored since (SPEC §8).
    pub drains_rev: i64,
    /// Operator actions, newest first.
    pub audit: Vec<AuditEntry>,
}

/// Votes on one target: how many nodes see it down, of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Nodes that see it down.
    pub down: usize,
    /// Nodes with a verdict, this one included.
    pub voters: usize,
}

impl Tally {
    /// Whether the votes hold the target down under `quorum`.
    pub fn is_down(self, quorum: Quorum) -> bool {
        quorum.is_down(self.down, self.voters)
    }
}

impl View {
    /// The verdicts of the other live nodes (their lease holds) on target
    /// `id`. This node's own verdict is not taken from the view: its probes
    /// know it first.
    pub fn others<'a>(
        &'a self,
        me: &'a str,
        id: &str,
    ) -> impl Iterator<Item = (&'a String, &'a Verdict)> + 'a {
        self.verdicts
            .get(id)
            .into_iter()
            .flatten()
            .filter(move |(n, _)| n.as_str() != me && self.nodes.contains_key(n.as_str()))
    }

    /// The quorum's votes on target `id`: this node's own (`mine_up`) and
    /// every other live node's (SPEC §8). While etcd is away the view is
    /// stale, and only this node's own counts.
    pub fn tally(&self, me: &str, mine_up: bool, id: &str) -> Tally {
        let mut t = Tally {
            down: usize::from(!mine_up),
            voters: 1,
        };
        if self.connected {
            for (_, v) in self.others(me, id) {
                t.voters += 1;
                t.down += usize::from(!v.healthy);
            }
        }
        t
    }

    /// The live node that speaks for the cluster: the one whose name
    /// sorts first. It alone tells webhooks of what every node sees alike
    /// (a change of the cluster's health verdict, a node answering
    /// differently), so that a receiver hears of it once. `None` while
    /// etcd is away: then each node speaks for itself.
    pub fn speaker(&self) -> Option<&str> {
        if !self.connected {
            return None;
        }
        self.nodes.keys().next().map(String::as_str)
    }
}

/// The stable id of a probe target across nodes: what is probed, in one
/// line (`http://192.0.2.1:8080/health`, with `host`, `expect`, `body`
/// and `insecure` appended when set).
pub fn target_id(probe: IpAddr, c: &CheckId) -> String {
    let addr = match probe {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let mut id = format!("{}://{addr}:{}", kind_name(c.kind), c.port);
    if c.kind != CheckKind::Tcp {
        id.push_str(&c.path);
    }
    if let Some(h) = &c.host {
        id.push_str(&format!(" host={h}"));
    }
    if !c.expect.is_empty() {
        let codes: Vec<String> = c.expect.iter().map(u16::to_string).collect();
        id.push_str(&format!(" expect={}", codes.join(",")));
    }
    if let Some(b) = &c.body {
        id.push_str(&format!(" body={b:?}"));
    }
    if c.insecure {
        id.push_str(" insecure");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: CheckKind, path: &str, host: Option<&str>) -> CheckId {
        CheckId {
            kind,
            port: 8080,
            path: path.into(),
            host: host.map(str::to_string),
            expect: vec![],
            body: None,
            insecure: false,
        }
    }

    #[test]
    fn target_ids_are_readable_and_distinct() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            target_id(a, &check(CheckKind::Http, "/health", None)),
            "http://192.0.2.1:8080/health"
        );
        assert_eq!(
            target_id(a, &check(CheckKind::Tcp, "/", None)),
            "tcp://192.0.2.1:8080"
        );
        assert_ne!(
            target_id(a, &check(CheckKind::Http, "/health", Some("a.test"))),
            target_id(a, &check(CheckKind::Http, "/health", None))
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            target_id(v6, &check(CheckKind::Https, "/h", None)),
            "https://[2001:db8::1]:8080/h"
        );
    }

    #[test]
    fn quorums() {
        use Quorum::*;
        // (quorum, down, voters, is down)
        let cases = [
            (Majority, 0, 3, false),
            (Majority, 1, 3, false),
            (Majority, 2, 3, true),
            (Majority, 1, 2, false), // a tie is up
            (Majority, 2, 2, true),
            (Majority, 1, 1, true),
            (Any, 1, 3, true),
            (Any, 0, 3, false),
            (All, 2, 3, false),
            (All, 3, 3, true),
            (All, 0, 0, false),
        ];
        for (q, down, voters, want) in cases {
            assert_eq!(
                Tally { down, voters }.is_down(q),
                want,
                "{q:?} {down}/{voters}"
            );
        }
    }

    fn verdict(healthy: bool) -> Verdict {
        Verdict {
            healthy,
            reason: String::new(),
            since: String::new(),
            latency_ms: None,
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            config_hash: "h".into(),
            version: "v".into(),
            since: String::new(),
            host: String::new(),
            down_quorum: "majority".into(),
            probe_source: false,
        }
    }

    #[test]
    fn tally_counts_live_nodes_and_this_node_once() {
        let mut v = View {
            connected: true,
            ..View::default()
        };
        for n in ["ns1", "ns2", "ns3"] {
            v.nodes.insert(n.into(), node());
        }
        let id = "http://192.0.2.1:8080/";
        let votes = v.verdicts.entry(id.into()).or_default();
        votes.insert("ns1".into(), verdict(true)); // this node's echo: ignored
        votes.insert("ns2".into(), verdict(false));
        votes.insert("ns3".into(), verdict(false));
        votes.insert("gone".into(), verdict(false)); // its lease expired
        assert_eq!(v.tally("ns1", false, id), Tally { down: 3, voters: 3 });
        assert_eq!(v.tally("ns1", true, id), Tally { down: 2, voters: 3 });
        assert!(v.tally("ns1", true, id).is_down(Quorum::Majority));
        assert!(!v.tally("ns1", true, id).is_down(Quorum::All));
        // a stale view counts only this node's own verdict
        v.connected = false;
        assert_eq!(v.tally("ns1", true, id), Tally { down: 0, voters: 1 });
        assert_eq!(v.tally("ns1", true, "other"), Tally { down: 0, voters: 1 });
    }

    #[test]
    fn the_first_live_node_speaks() {
        let mut v = View::default();
        assert_eq!(v.speaker(), None);
        v.connected = true;
        assert_eq!(v.speaker(), None, "no node yet");
        for n in ["ns2", "ns10", "ns3"] {
            v.nodes.insert(n.into(), node());
        }
        assert_eq!(v.speaker(), Some("ns10"), "by name, as strings sort");
        v.connected = false;
        assert_eq!(v.speaker(), None);
    }

    #[test]
    fn nodes_differ_by_what_changes_answers() {
        let mine = node();
        assert!(node().differs_from(&mine).is_empty());
        let mut other = node();
        other.since = "later".into();
        other.host = "elsewhere".into();
        assert!(other.differs_from(&mine).is_empty(), "not answers");
        other.down_quorum = "any".into();
        other.probe_source = true;
        other.config_hash = "h2".into();
        assert_eq!(
            other.differs_from(&mine),
            [
                "configuration h2",
                "down_quorum = \"any\"",
                "probe_source set"
            ]
        );
        // a node of an older version says nothing of its quorum
        other = node();
        other.down_quorum = String::new();
        assert!(other.differs_from(&mine).is_empty());
    }

    #[test]
    fn drain_keys_read_as_the_logs_write_them() {
        assert_eq!(DrainKey::Region("eu".into()).to_string(), "region eu");
        assert_eq!(
            DrainKey::Endpoint("192.0.2.1".parse().unwrap()).to_string(),
            "endpoint 192.0.2.1"
        );
    }
}
