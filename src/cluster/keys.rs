//! How the cluster's keys and values are written (the table in the
//! module's documentation), and how they fold into a [`View`]; the small
//! pure helpers of the cluster task.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::*;

impl Task {
    pub(super) fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.cfg.prefix)
    }

    pub(super) fn node_key(&self) -> String {
        self.key(&format!("nodes/{}", self.cfg.node))
    }

    pub(super) fn verdict_key(&self, id: &str) -> String {
        self.key(&format!("health/{}/{}", self.cfg.node, escape(id)))
    }

    pub(super) fn drain_key(&self, k: &DrainKey) -> String {
        match k {
            DrainKey::Region(n) => self.key(&format!("drains/region/{}", escape(n))),
            DrainKey::Endpoint(a) => self.key(&format!("drains/endpoint/{a}")),
            DrainKey::Dial(n) => self.key(&format!("drains/dial/{}", escape(n))),
        }
    }

    /// Folds one key (`None`: deleted), changed at `mod_rev`, into `view`.
    pub(super) fn apply(&self, view: &mut View, key: &[u8], value: Option<&[u8]>, mod_rev: i64) {
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
                    "dial" => DrainKey::Dial(unescape(name)),
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
            ["audit", id] => match value.and_then(parse::<AuditEntry>) {
                Some(mut a) => {
                    a.key = Some(id.to_string());
                    view.audit.insert(0, a);
                }
                None => view.audit.retain(|a| a.key.as_deref() != Some(*id)),
            },
            _ => tracing::debug!("cluster: ignoring key {key}"),
        }
    }
}

/// An audit key's time: when the action happened (its `at`, to the
/// millisecond), not when it reached etcd, so that entries made during an
/// outage keep their place; the sub-millisecond digits of `now` keep two
/// entries of one millisecond apart.
pub(super) fn audit_nanos(at: &str, now: SystemTime) -> u128 {
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
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
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
pub(super) fn escape(s: &str) -> String {
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

pub(super) fn unescape(s: &str) -> String {
    s.replace("%2F", "/")
        .replace("%20", " ")
        .replace("%25", "%")
}

pub(super) fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub(super) fn parse<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
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
pub(super) fn plain(e: &etcd_client::Error) -> String {
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
pub(super) fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    format!("{host}, pid {}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
