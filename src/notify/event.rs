//! What a webhook is told (SPEC §11): one [`Event`] per change, made in
//! one line where the change happens, written as the JSON body
//! `{"event", "at", "node", ...details}`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::EventKind;
use crate::text::rfc3339;
use crate::view::DrainKey;

/// A change worth telling a webhook about. Its `at` and `node` are added
/// when it is sent ([`super::Notifier::send`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// A region or endpoint turned healthy or unhealthy.
    Health(Health),
    /// A drain was made, ended, scheduled or refused.
    Drain(Drain),
    /// A region's dial was set, cleared or expired.
    Dial(Dial),
    /// A reload, and its result.
    Reload(Reload),
    /// The cluster changed.
    Cluster(ClusterChange),
}

/// What turned healthy or unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    /// A region: healthy while any of its endpoints is.
    Region,
    /// An endpoint of a region.
    Endpoint,
}

/// `{"kind", "region", "address" (endpoints), "healthy", "reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// Region or endpoint.
    pub kind: HealthKind,
    /// The region (of the endpoint).
    pub region: String,
    /// The endpoint's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Its health now.
    pub healthy: bool,
    /// The last probe's outcome (`status 503`, `connect refused`,
    /// `timeout`, ...), when known.
    pub reason: Option<String>,
}

/// What happened to a drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DrainAction {
    /// Taken out of answers.
    Drained,
    /// Put back by an operator.
    Undrained,
    /// Put back because its time ran out.
    Expired,
    /// A drain to start later was stored.
    Scheduled,
    /// A scheduled drain began.
    Started,
    /// A drain was refused (a safety rule, etcd away).
    Refused,
    /// A scheduled drain was cancelled before it began.
    Cancelled,
}

/// `{"action", "target", "for", "starts", "result"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drain {
    /// What happened.
    pub action: DrainAction,
    /// `region NAME` or `endpoint ADDRESS`.
    pub target: String,
    /// How long it lasts (`10m`), if it ends by itself.
    #[serde(rename = "for")]
    pub duration: Option<String>,
    /// When a scheduled drain begins (RFC 3339).
    pub starts: Option<String>,
    /// Why it was refused, or what else the caller said.
    pub result: Option<String>,
}

/// What happened to a dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DialAction {
    /// Set by an operator.
    Set,
    /// Cleared by an operator.
    Cleared,
    /// Cleared because its time ran out.
    Expired,
}

/// `{"action", "region", "value", "for"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dial {
    /// What happened.
    pub action: DialAction,
    /// The region dialled.
    pub region: String,
    /// The dial's value (after a set; before a clear).
    pub value: f64,
    /// How long it lasts, if it ends by itself.
    #[serde(rename = "for")]
    pub duration: Option<String>,
}

/// `{"ok", "from", "generation", "errors"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reload {
    /// The new configuration serves.
    pub ok: bool,
    /// Who asked: the caller's address, or `SIGHUP`.
    pub from: String,
    /// The snapshot generation now served, when it worked.
    pub generation: Option<u64>,
    /// Why it did not (each as `signpost check` prints it).
    pub errors: Vec<String>,
}

/// What changed in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterAction {
    /// A node's liveness record appeared.
    NodeJoined,
    /// A node's liveness record went away (it stopped, or its lease
    /// expired).
    NodeLeft,
    /// This node cannot reach etcd.
    EtcdLost,
    /// This node reaches etcd again.
    EtcdRegained,
    /// A node answers differently (another configuration, quorum or
    /// probe source).
    ConfigDivergent,
    /// A node that answered differently answers alike again.
    ConfigAgreed,
}

/// `{"action", "peer", "detail"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterChange {
    /// What happened.
    pub action: ClusterAction,
    /// The other node it is about (`node` is the sender).
    pub peer: Option<String>,
    /// More, in words.
    pub detail: Option<String>,
}

/// A duration as the config and the audit write it (`10m`).
fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Event {
    /// Its kind, as `events = [...]` names it.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Health(_) => EventKind::Health,
            Event::Drain(_) => EventKind::Drain,
            Event::Dial(_) => EventKind::Dial,
            Event::Reload(_) => EventKind::Reload,
            Event::Cluster(_) => EventKind::Cluster,
        }
    }

    /// An endpoint of `region` turned healthy or unhealthy.
    pub fn endpoint_health(
        region: &str,
        address: IpAddr,
        healthy: bool,
        reason: Option<String>,
    ) -> Event {
        Event::Health(Health {
            kind: HealthKind::Endpoint,
            region: region.to_string(),
            address: Some(address),
            healthy,
            reason,
        })
    }

    /// A region turned healthy (an endpoint is up) or unhealthy (none is).
    pub fn region_health(region: &str, healthy: bool, reason: Option<String>) -> Event {
        Event::Health(Health {
            kind: HealthKind::Region,
            region: region.to_string(),
            address: None,
            healthy,
            reason,
        })
    }

    /// Something happened to the drain of `target`: `duration` is how
    /// long it lasts, `starts` when a scheduled one begins, `result` why
    /// it was refused (or other words).
    pub fn drain(
        action: DrainAction,
        target: &DrainKey,
        duration: Option<Duration>,
        starts: Option<SystemTime>,
        result: Option<String>,
    ) -> Event {
        Event::Drain(Drain {
            action,
            target: target.to_string(),
            duration: duration.map(duration_text),
            starts: starts.map(rfc3339),
            result,
        })
    }

    /// Something happened to the dial of `region`.
    pub fn dial(action: DialAction, region: &str, value: f64, duration: Option<Duration>) -> Event {
        Event::Dial(Dial {
            action,
            region: region.to_string(),
            value,
            duration: duration.map(duration_text),
        })
    }

    /// A reload asked by `from` serves generation `generation`.
    pub fn reload_ok(from: &str, generation: u64) -> Event {
        Event::Reload(Reload {
            ok: true,
            from: from.to_string(),
            generation: Some(generation),
            errors: Vec::new(),
        })
    }

    /// A reload asked by `from` failed; the previous configuration serves.
    pub fn reload_failed(from: &str, errors: Vec<String>) -> Event {
        Event::Reload(Reload {
            ok: false,
            from: from.to_string(),
            generation: None,
            errors,
        })
    }

    /// The cluster changed: `peer` is the node it is about, if another.
    pub fn cluster(action: ClusterAction, peer: Option<&str>, detail: Option<String>) -> Event {
        Event::Cluster(ClusterChange {
            action,
            peer: peer.map(str::to_string),
            detail,
        })
    }

    /// The JSON body: `event`, `at` (RFC 3339, milliseconds) and `node`
    /// first, then the details.
    pub fn body(&self, at: SystemTime, node: &str) -> Result<Vec<u8>, serde_json::Error> {
        let serde_json::Value::Object(details) = serde_json::to_value(self)? else {
            // an internally tagged enum of structs is always an object
            return serde_json::to_vec(self);
        };
        let mut out = serde_json::Map::with_capacity(details.len() + 2);
        out.insert("event".into(), self.kind().as_str().into());
        out.insert(
            "at".into(),
            humantime::format_rfc3339_millis(at).to_string().into(),
        );
        out.insert("node".into(), node.into());
        out.extend(details.into_iter().filter(|(k, _)| k != "event"));
        serde_json::to_vec(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn body(e: &Event) -> Value {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let b = e.body(at, "ns1").unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn bodies_have_the_documented_shapes() {
        let ep: IpAddr = "192.0.2.1".parse().unwrap();
        let cases = [
            (
                Event::endpoint_health("eu", ep, false, Some("status 503".into())),
                json!({"event": "health", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "kind": "endpoint", "region": "eu", "address": "192.0.2.1",
                       "healthy": false, "reason": "status 503"}),
            ),
            (
                Event::region_health("eu", true, None),
                json!({"event": "health", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "kind": "region", "region": "eu", "healthy": true, "reason": null}),
            ),
            (
                Event::drain(
                    DrainAction::Scheduled,
                    &DrainKey::Endpoint(ep),
                    Some(Duration::from_secs(600)),
                    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400)),
                    None,
                ),
                json!({"event": "drain", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "action": "scheduled", "target": "endpoint 192.0.2.1", "for": "10m",
                       "starts": "1970-01-02T00:00:00Z", "result": null}),
            ),
            (
                Event::drain(
                    DrainAction::Refused,
                    &DrainKey::Region("eu".into()),
                    None,
                    None,
                    Some("min_healthy_regions".into()),
                ),
                json!({"event": "drain", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "action": "refused", "target": "region eu", "for": null,
                       "starts": null, "result": "min_healthy_regions"}),
            ),
            (
                Event::dial(DialAction::Set, "eu", 0.25, Some(Duration::from_secs(3600))),
                json!({"event": "dial", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "action": "set", "region": "eu", "value": 0.25, "for": "1h"}),
            ),
            (
                Event::reload_ok("127.0.0.1:4000", 7),
                json!({"event": "reload", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "ok": true, "from": "127.0.0.1:4000", "generation": 7, "errors": []}),
            ),
            (
                Event::reload_failed("SIGHUP", vec!["x: y".into()]),
                json!({"event": "reload", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "ok": false, "from": "SIGHUP", "generation": null, "errors": ["x: y"]}),
            ),
            (
                Event::cluster(ClusterAction::NodeLeft, Some("ns2"), None),
                json!({"event": "cluster", "at": "2023-11-14T22:13:20.123Z", "node": "ns1",
                       "action": "node-left", "peer": "ns2", "detail": null}),
            ),
        ];
        for (e, want) in cases {
            let got = body(&e);
            assert_eq!(got, want);
            // event, at and node come first, as documented
            let keys: Vec<&String> = got.as_object().unwrap().keys().take(3).collect();
            assert_eq!(keys, ["event", "at", "node"]);
            assert_eq!(got["event"], e.kind().as_str());
        }
    }
}
