//! The drains this node applies: set through its own API (a single node),
//! or as the cluster's view has them; kept across restarts in the
//! `[server] state` file ([`super::persist`]).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::persist::Saved;
use crate::view::{DrainKey, DrainRecord};

/// One drain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drain {
    /// When it ends by itself.
    pub until: Option<SystemTime>,
    /// When it was made.
    pub at: SystemTime,
    /// The node whose API made it (clusters).
    pub node: Option<String>,
}

impl Drain {
    /// The record stored in etcd and in the state file.
    pub fn record(&self, node: &str) -> DrainRecord {
        // milliseconds: a drain of 2 s must not end a second early
        let millis = |t| humantime::format_rfc3339_millis(t).to_string();
        DrainRecord {
            until: self.until.map(millis),
            at: millis(self.at),
            node: self.node.clone().unwrap_or_else(|| node.to_string()),
        }
    }

    fn from_record(r: &DrainRecord) -> Option<Drain> {
        let parse = |s: &str| humantime::parse_rfc3339_weak(s).ok();
        let until = match &r.until {
            None => None,
            Some(u) => Some(parse(u)?),
        };
        Some(Drain {
            until,
            at: parse(&r.at).unwrap_or(SystemTime::UNIX_EPOCH),
            node: Some(r.node.clone()).filter(|n| !n.is_empty()),
        })
    }

    fn live(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

/// Region and endpoint drains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drains {
    /// By region name.
    pub regions: HashMap<String, Drain>,
    /// By endpoint address.
    pub endpoints: HashMap<IpAddr, Drain>,
}

impl Drains {
    /// Sets a drain.
    pub fn set(&mut self, key: DrainKey, d: Drain) {
        match key {
            DrainKey::Region(n) => {
                self.regions.insert(n, d);
            }
            DrainKey::Endpoint(a) => {
                self.endpoints.insert(a, d);
            }
        }
    }

    /// Removes a drain; true if there was one.
    pub fn remove(&mut self, key: &DrainKey) -> bool {
        match key {
            DrainKey::Region(n) => self.regions.remove(n).is_some(),
            DrainKey::Endpoint(a) => self.endpoints.remove(a).is_some(),
        }
    }

    /// Drops expired drains; returns what expired.
    pub fn expire(&mut self, now: SystemTime) -> Vec<DrainKey> {
        let mut gone = Vec::new();
        self.regions.retain(|n, d| {
            let keep = d.live(now);
            if !keep {
                gone.push(DrainKey::Region(n.clone()));
            }
            keep
        });
        self.endpoints.retain(|a, d| {
            let keep = d.live(now);
            if !keep {
                gone.push(DrainKey::Endpoint(*a));
            }
            keep
        });
        gone
    }

    /// How long until the next drain expires.
    pub fn next_expiry(&self, now: SystemTime) -> Option<Duration> {
        self.regions
            .values()
            .chain(self.endpoints.values())
            .filter_map(|d| d.until)
            .map(|u| u.duration_since(now).unwrap_or(Duration::ZERO))
            .min()
    }

    /// Keeps only drains of names that exist.
    pub fn retain_known(
        &mut self,
        region: impl Fn(&str) -> bool,
        endpoint: impl Fn(IpAddr) -> bool,
    ) {
        self.regions.retain(|n, _| region(n));
        self.endpoints.retain(|a, _| endpoint(*a));
    }

    /// The drains of a cluster view (or of the state file), without those
    /// already over.
    pub fn from_records(records: &BTreeMap<DrainKey, DrainRecord>, now: SystemTime) -> Drains {
        let mut out = Drains::default();
        for (k, r) in records {
            match Drain::from_record(r) {
                Some(d) if d.live(now) => out.set(k.clone(), d),
                Some(_) => {}
                None => tracing::warn!("ignoring a drain of {k:?} with an unreadable time"),
            }
        }
        out
    }

    /// As records (for the state file and etcd).
    pub fn records(&self, node: &str) -> BTreeMap<DrainKey, DrainRecord> {
        let mut out = BTreeMap::new();
        for (n, d) in &self.regions {
            out.insert(DrainKey::Region(n.clone()), d.record(node));
        }
        for (a, d) in &self.endpoints {
            out.insert(DrainKey::Endpoint(*a), d.record(node));
        }
        out
    }

    /// What the state file holds.
    pub fn saved(&self, node: &str) -> Saved {
        Saved::from_records(&self.records(node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_and_records_round_trip() {
        let now = SystemTime::now();
        let mut d = Drains::default();
        d.set(
            DrainKey::Region("eu".into()),
            Drain {
                until: Some(now + Duration::from_secs(60)),
                at: now,
                node: None,
            },
        );
        d.set(
            DrainKey::Endpoint("192.0.2.1".parse().unwrap()),
            Drain {
                until: None,
                at: now,
                node: Some("ns2".into()),
            },
        );
        let back = Drains::from_records(&d.records("ns1"), now);
        assert_eq!(back.regions.len(), 1);
        assert_eq!(back.endpoints.len(), 1);
        assert!(back.next_expiry(now).unwrap() <= Duration::from_secs(60));
        let mut later = back.clone();
        let gone = later.expire(now + Duration::from_secs(61));
        assert_eq!(gone, vec![DrainKey::Region("eu".into())]);
        assert!(later.next_expiry(now).is_none());
        // a drain already over is not taken from a view
        let over = Drains::from_records(&d.records("ns1"), now + Duration::from_secs(120));
        assert!(over.regions.is_empty());
    }
}
