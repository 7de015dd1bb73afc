//! The drains and dials this node applies: set through its own API (a single node),
//! or as the cluster's view has them; kept across restarts in the
//! `[server] state` file ([`super::persist`]).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::persist::Saved;
use crate::view::{DrainKey, DrainRecord};

/// One drain or dial.
#[derive(Debug, Clone, PartialEq)]
pub struct Drain {
    /// When it ends by itself.
    pub until: Option<SystemTime>,
    /// When it was made.
    pub at: SystemTime,
    /// The node whose API made it (clusters).
    pub node: Option<String>,
    /// A scheduled drain: when it starts.
    pub starts: Option<SystemTime>,
    /// A scheduled drain that passed the safety rule at its start.
    pub started: bool,
    /// A dial's value: the fraction of the region's clients kept.
    pub value: Option<f64>,
    /// A scheduled drain made with `force`: its start overrides the
    /// safety rule too.
    pub forced: bool,
}

impl Drain {
    /// A drain (or, with `value`, a dial) made now for `duration`.
    pub fn new(
        now: SystemTime,
        duration: Option<Duration>,
        node: Option<String>,
        value: Option<f64>,
    ) -> Drain {
        Drain {
            until: duration.map(|d| now + d),
            at: now,
            node,
            starts: None,
            started: false,
            value,
            forced: false,
        }
    }

    /// The record stored in etcd and in the state file.
    pub fn record(&self, node: &str) -> DrainRecord {
        DrainRecord {
            until: self.until.map(millis),
            at: millis(self.at),
            node: self.node.clone().unwrap_or_else(|| node.to_string()),
            starts: self.starts.map(millis),
            started: self.started,
            value: self.value,
            forced: self.forced,
        }
    }

    fn from_record(r: &DrainRecord) -> Option<Drain> {
        let parse = |s: &str| humantime::parse_rfc3339_weak(s).ok();
        let until = match &r.until {
            None => None,
            Some(u) => Some(parse(u)?),
        };
        let starts = match &r.starts {
            None => None,
            Some(s) => Some(parse(s)?),
        };
        let value = match r.value {
            None => None,
            Some(v) if v.is_finite() && (0.0..=1.0).contains(&v) => Some(v),
            Some(_) => return None,
        };
        Some(Drain {
            until,
            at: parse(&r.at).unwrap_or(SystemTime::UNIX_EPOCH),
            node: Some(r.node.clone()).filter(|n| !n.is_empty()),
            starts,
            started: r.started,
            value,
            forced: r.forced,
        })
    }

    fn live(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|u| u > now)
    }

    /// In answers: not scheduled, or scheduled and started.
    pub fn in_force(&self) -> bool {
        self.starts.is_none() || self.started
    }

    /// Scheduled and not started yet.
    pub fn pending(&self) -> bool {
        self.starts.is_some() && !self.started
    }
}

/// A time as records write it: milliseconds, so that a drain of 2 s does
/// not end a second early.
fn millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Region and endpoint drains, and region dials.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Drains {
    /// By region name.
    pub regions: HashMap<String, Drain>,
    /// By endpoint address.
    pub endpoints: HashMap<IpAddr, Drain>,
    /// Dials by region name.
    pub dials: HashMap<String, Drain>,
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
            DrainKey::Dial(n) => {
                self.dials.insert(n, d);
            }
        }
    }

    /// The drain of a key, if there is one.
    pub fn get(&self, key: &DrainKey) -> Option<&Drain> {
        match key {
            DrainKey::Region(n) => self.regions.get(n),
            DrainKey::Endpoint(a) => self.endpoints.get(a),
            DrainKey::Dial(n) => self.dials.get(n),
        }
    }

    /// Removes a drain; true if there was one.
    pub fn remove(&mut self, key: &DrainKey) -> bool {
        match key {
            DrainKey::Region(n) => self.regions.remove(n).is_some(),
            DrainKey::Endpoint(a) => self.endpoints.remove(a).is_some(),
            DrainKey::Dial(n) => self.dials.remove(n).is_some(),
        }
    }

    /// A region drained now (a scheduled drain only once started).
    pub fn region_drained(&self, name: &str) -> bool {
        self.regions.get(name).is_some_and(Drain::in_force)
    }

    /// An endpoint drained now.
    pub fn endpoint_drained(&self, a: IpAddr) -> bool {
        self.endpoints.get(&a).is_some_and(Drain::in_force)
    }

    /// A region's dial value, if it is dialled.
    pub fn dial(&self, name: &str) -> Option<f64> {
        self.dials.get(name).and_then(|d| d.value)
    }

    /// Every key with a drain or dial.
    pub fn keys(&self) -> std::collections::BTreeSet<DrainKey> {
        self.all().map(|(k, _)| k).collect()
    }

    fn all(&self) -> impl Iterator<Item = (DrainKey, &Drain)> {
        let regions = self
            .regions
            .iter()
            .map(|(n, d)| (DrainKey::Region(n.clone()), d));
        let endpoints = self
            .endpoints
            .iter()
            .map(|(a, d)| (DrainKey::Endpoint(*a), d));
        let dials = self
            .dials
            .iter()
            .map(|(n, d)| (DrainKey::Dial(n.clone()), d));
        regions.chain(endpoints).chain(dials)
    }

    /// Drops expired drains and dials; returns what expired, with
    /// whether it had been in force.
    pub fn expire(&mut self, now: SystemTime) -> Vec<(DrainKey, Drain)> {
        let gone: Vec<(DrainKey, Drain)> = self
            .all()
            .filter(|(_, d)| !d.live(now))
            .map(|(k, d)| (k, d.clone()))
            .collect();
        for (k, _) in &gone {
            self.remove(k);
        }
        gone
    }

    /// How long until the next drain expires or a scheduled one is due.
    pub fn next_event(&self, now: SystemTime) -> Option<Duration> {
        self.all()
            .flat_map(|(_, d)| [d.until, d.starts.filter(|_| !d.started)])
            .flatten()
            .map(|t| t.duration_since(now).unwrap_or(Duration::ZERO))
            .min()
    }

    /// Scheduled drains whose start has come and that have not started.
    pub fn due(&self, now: SystemTime) -> Vec<DrainKey> {
        let mut due: Vec<DrainKey> = self
            .all()
            .filter(|(_, d)| d.pending() && d.starts.is_some_and(|s| s <= now) && d.live(now))
            .map(|(k, _)| k)
            .collect();
        due.sort();
        due
    }

    /// The scheduled drains, not yet started, other than `except`, whose
    /// windows overlap `from..to`.
    pub fn scheduled_overlapping(
        &self,
        from: SystemTime,
        to: SystemTime,
        except: &DrainKey,
    ) -> Vec<DrainKey> {
        self.all()
            .filter(|(k, d)| {
                k != except
                    && d.pending()
                    && d.starts.is_some_and(|s| s <= to)
                    && d.until.is_none_or(|u| u > from)
            })
            .map(|(k, _)| k)
            .collect()
    }

    /// Keeps only drains and dials of names that exist.
    pub fn retain_known(
        &mut self,
        region: impl Fn(&str) -> bool,
        endpoint: impl Fn(IpAddr) -> bool,
    ) {
        self.regions.retain(|n, _| region(n));
        self.endpoints.retain(|a, _| endpoint(*a));
        self.dials.retain(|n, _| region(n));
    }

    /// The drains of a cluster view (or of the state file), without those
    /// already over.
    pub fn from_records(records: &BTreeMap<DrainKey, DrainRecord>, now: SystemTime) -> Drains {
        let mut out = Drains::default();
        for (k, r) in records {
            match Drain::from_record(r) {
                Some(d) if d.live(now) => out.set(k.clone(), d),
                Some(_) => {}
                None => tracing::warn!("ignoring a record of {k} with an unreadable time or value"),
            }
        }
        out
    }

    /// As records (for the state file and etcd).
    pub fn records(&self, node: &str) -> BTreeMap<DrainKey, DrainRecord> {
        self.all().map(|(k, d)| (k, d.record(node))).collect()
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
            Drain::new(now, Some(Duration::from_secs(60)), None, None),
        );
        d.set(
            DrainKey::Endpoint("192.0.2.1".parse().unwrap()),
            Drain::new(now, None, Some("ns2".into()), None),
        );
        let back = Drains::from_records(&d.records("ns1"), now);
        assert_eq!(back.regions.len(), 1);
        assert_eq!(back.endpoints.len(), 1);
        assert!(back.next_event(now).unwrap() <= Duration::from_secs(60));
        let mut later = back.clone();
        let gone = later.expire(now + Duration::from_secs(61));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, DrainKey::Region("eu".into()));
        assert!(later.next_event(now).is_none());
        // a drain already over is not taken from a view
        let over = Drains::from_records(&d.records("ns1"), now + Duration::from_secs(120));
        assert!(over.regions.is_empty());
    }

    #[test]
    fn scheduled_drains_and_dials() {
        let now = SystemTime::now();
        let mut d = Drains::default();
        let mut sched = Drain::new(now, None, None, None);
        sched.starts = Some(now + Duration::from_secs(30));
        sched.until = Some(now + Duration::from_secs(90));
        d.set(DrainKey::Region("eu".into()), sched);
        d.set(
            DrainKey::Dial("us".into()),
            Drain::new(now, None, None, Some(0.25)),
        );
        // scheduled, not in force; the next event is its start
        assert!(!d.region_drained("eu"));
        assert_eq!(d.dial("us"), Some(0.25));
        let next = d.next_event(now).unwrap();
        assert!(next <= Duration::from_secs(30) && next > Duration::from_secs(28));
        assert!(d.due(now).is_empty());
        assert_eq!(
            d.due(now + Duration::from_secs(31)),
            vec![DrainKey::Region("eu".into())]
        );
        // round trip keeps start, state and value
        let back = Drains::from_records(&d.records("ns1"), now);
        assert_eq!(
            back.regions["eu"].starts,
            d.regions["eu"]
                .starts
                .map(|t| { humantime::parse_rfc3339_weak(&millis(t)).unwrap() })
        );
        assert_eq!(back.dial("us"), Some(0.25));
        if let Some(r) = d.regions.get_mut("eu") {
            r.started = true;
        }
        assert!(d.region_drained("eu"));
        assert!(d.due(now + Duration::from_secs(31)).is_empty());
        // a dial value out of range is not taken from a record
        let mut bad = d.records("ns1");
        if let Some(r) = bad.get_mut(&DrainKey::Dial("us".into())) {
            r.value = Some(1.5);
        }
        assert_eq!(Drains::from_records(&bad, now).dial("us"), None);
    }

    #[test]
    fn overlapping_schedules() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut d = Drains::default();
        let sched = |from: u64, len: u64| {
            let mut x = Drain::new(t0, None, None, None);
            x.starts = Some(t0 + Duration::from_secs(from));
            x.until = Some(t0 + Duration::from_secs(from + len));
            x
        };
        d.set(DrainKey::Region("a".into()), sched(100, 50));
        d.set(DrainKey::Region("b".into()), sched(300, 50));
        let mut started = sched(100, 50);
        started.started = true;
        d.set(DrainKey::Region("c".into()), started);
        let at = |from: u64, len: u64, except: &str| {
            d.scheduled_overlapping(
                t0 + Duration::from_secs(from),
                t0 + Duration::from_secs(from + len),
                &DrainKey::Region(except.into()),
            )
        };
        // overlaps a only (c has started: it is a drain in force, not a schedule)
        assert_eq!(at(120, 10, "x"), vec![DrainKey::Region("a".into())]);
        // touches neither
        assert!(at(160, 100, "x").is_empty());
        // overlaps both; not itself
        let mut both = at(90, 300, "x");
        both.sort();
        assert_eq!(both.len(), 2);
        assert!(at(120, 10, "a").is_empty());
    }
}
