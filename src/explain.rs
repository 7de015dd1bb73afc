//! The decision trace behind `GET /v1/explain` and `signpost explain`: the
//! same [`steer::decide`] the answer path runs, plus the details an
//! operator needs to see why (location, distances, health, rule).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::config::normalize_name;
use crate::geo::{self, Located};
use crate::state::Snapshot;
use crate::steer::{self, Client, Family, Rng, Rule};
use crate::text::{known, round3};
use crate::zone::text_wire;

/// Why there is nothing to explain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// Not a DNS name.
    #[error("{0:?} is not a valid DNS name")]
    BadName(String),
    /// Neither a service nor a CNAME to one.
    #[error("{0} is not a service")]
    NotAService(String),
    /// A what-if names a region the configuration does not have.
    #[error("down: no region named {0:?}")]
    UnknownRegion(String),
}

/// Where the client is.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ClientInfo {
    /// Address located.
    pub address: String,
    /// `ecs` or `packet`.
    pub source: String,
    /// Country code.
    pub country: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// GeoIP network matched (null where unknown).
    pub network: Option<String>,
}

/// One region of the service.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Candidate {
    /// Region name.
    pub region: String,
    /// Great-circle distance from the client, when its location is known.
    pub distance_km: Option<f64>,
    /// At least one non-drained endpoint of the family is up.
    pub healthy: bool,
    /// The region is drained (all its endpoints are).
    pub drained: bool,
    /// `weighted` share.
    pub weight: u32,
    /// Position in the decision (1 = first), null if not a candidate.
    pub rank: Option<usize>,
    /// Sum of the known loads of its usable endpoints (null: none known).
    pub load: Option<f64>,
    /// Sum of those endpoints' capacities.
    pub capacity: Option<f64>,
    /// load / capacity.
    pub utilisation: Option<f64>,
    /// Its best usable endpoint's smoothed probe latency.
    pub latency_ms: Option<f64>,
    /// Its `shed` marks, when set: the share of clients it sends on now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shed_ratio: Option<f64>,
    /// Its `bias`, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<i8>,
    /// The distance as a biased `geo` order counts it
    /// (`distance_km x (1 - bias/100)`), when it has a bias.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biased_km: Option<f64>,
    /// The share of its clients its dial keeps, when it is dialled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dial: Option<f64>,
    /// Its endpoints of the asked family.
    pub endpoints: Vec<EndpointInfo>,
}

/// One endpoint of a candidate region.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EndpointInfo {
    /// Address answered.
    pub address: String,
    /// Up, as decided (in a cluster: by quorum).
    pub healthy: bool,
    /// Drained.
    pub drained: bool,
    /// The load its load balancer reported (null: unknown).
    pub load: Option<f64>,
    /// Its capacity.
    pub capacity: f64,
    /// Its smoothed probe latency (null: unknown).
    pub latency_ms: Option<f64>,
    /// In a cluster: each live node's verdict (true = up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<std::collections::BTreeMap<String, bool>>,
}

/// The trace.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Explanation {
    /// Service name.
    pub name: String,
    /// A or AAAA.
    #[serde(rename = "type")]
    pub qtype: String,
    /// Policy.
    pub policy: String,
    /// How endpoints are drawn inside a region.
    pub select: String,
    /// The client.
    pub client: ClientInfo,
    /// What chose the first region: `map:<key>`, `distance`, `weighted`,
    /// `failover`, `unknown-location`, `all-down`, `no-endpoints`.
    pub rule: String,
    /// Every region of the service, decision order first.
    pub candidates: Vec<Candidate>,
    /// Addresses answered (empty = NODATA).
    pub answer: Vec<String>,
    /// Answer TTL.
    pub ttl: u32,
    /// ECS scope for a query from this client's /32 or /128.
    pub scope: u8,
    /// What-if: the regions taken as down for this answer (the live
    /// state is untouched); absent for a real answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what_if_down: Vec<String>,
    /// For a `geo` service with a biased region and a located client:
    /// the distance order with and without the biases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias: Option<BiasEffect>,
}

/// How the regions' biases changed a client's `geo` order (SPEC §11).
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct BiasEffect {
    /// Every region of the service, nearest first, as the biases count.
    pub order: Vec<String>,
    /// The same without biases.
    pub unbiased_order: Vec<String>,
    /// The first region differs.
    pub changed_first: bool,
    /// In words.
    pub note: String,
}

/// Parses a what-if list, `R1,R2` (spaces and empty items ignored).
pub fn parse_down(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

/// What-if: a copy of `snap` in which every endpoint of the regions in
/// `down` has failed its probes (as an outage would look, not a drain).
/// The live snapshot is not touched.
pub fn assume_down(snap: &Snapshot, down: &[String]) -> Result<Snapshot, ExplainError> {
    let data = &snap.data;
    let mut regions = Vec::with_capacity(down.len());
    for r in down {
        match data.region_index.get(r) {
            Some(&i) => regions.push(i),
            None => return Err(ExplainError::UnknownRegion(r.clone())),
        }
    }
    let mut flags = snap.flags.clone();
    for (f, slot) in flags.iter_mut().zip(&data.slots) {
        if regions.contains(&slot.region) {
            *f &= !steer::UP;
        }
    }
    Ok(Snapshot {
        generation: snap.generation,
        data: data.clone(),
        flags,
        live: snap.live.clone(),
        dials: snap.dials.clone(),
        // the nodes' verdicts are real ones; beside a what-if they would
        // contradict it, so a what-if leaves them out
        cluster: None,
        refresh: None,
    })
}

/// [`explain`] as if the regions in `down` were down.
pub fn explain_what_if(
    snap: &Snapshot,
    name: &str,
    family: Family,
    client: IpAddr,
    down: &[String],
) -> Result<Explanation, ExplainError> {
    if down.is_empty() {
        return explain(snap, name, family, client, "ecs");
    }
    let assumed = assume_down(snap, down)?;
    let mut e = explain(&assumed, name, family, client, "ecs")?;
    for r in down {
        if !e.what_if_down.contains(r) {
            e.what_if_down.push(r.clone());
        }
    }
    Ok(e)
}

/// Each live node's verdict on the target behind a slot (clusters): the
/// other live nodes' as the quorum counts them ([`crate::view::View::others`]),
/// and this node's own as etcd has it (or, before it has, as decided).
fn node_verdicts(snap: &Snapshot, slot: u32) -> Option<std::collections::BTreeMap<String, bool>> {
    let (view, me) = snap.cluster.as_ref()?;
    let data = &snap.data;
    let ti = data.slots.get(slot as usize)?.target?;
    let id = data.targets.get(ti as usize)?.key().cluster_id();
    let mut out: std::collections::BTreeMap<String, bool> = view
        .others(me, &id)
        .map(|(n, v)| (n.clone(), v.healthy))
        .collect();
    let mine = view
        .verdicts
        .get(&id)
        .and_then(|v| v.get(me))
        .map(|v| v.healthy);
    out.insert(
        me.clone(),
        mine.unwrap_or_else(|| {
            snap.flags
                .get(slot as usize)
                .is_some_and(|f| f & steer::UP != 0)
        }),
    );
    Some(out)
}

/// Explains the answer to `name`/`family` for `client`.
pub fn explain(
    snap: &Snapshot,
    name: &str,
    family: Family,
    client: IpAddr,
    source: &str,
) -> Result<Explanation, ExplainError> {
    let n = normalize_name(name).ok_or_else(|| ExplainError::BadName(name.to_string()))?;
    let data = &snap.data;
    let si = find_service(snap, &n).ok_or_else(|| ExplainError::NotAService(n.clone()))?;
    let svc = &data.services[si as usize];
    let client_ip = client.to_canonical();
    let located = locate(snap, client_ip);
    let c = Client {
        addr: Some(client_ip),
        located,
    };
    let mut rng = Rng::from_entropy();
    let d = steer::decide(svc, &snap.inputs(), family, &c, &mut rng);
    let rule = match d.rule {
        Rule::Map(i) => format!(
            "map:{}",
            svc.map.entries.get(i as usize).map_or("?", |e| &e.0)
        ),
        r => r.name().to_string(),
    };
    let loc = located.location;
    let order = d.order.as_slice();
    // the regions in the order tried, then those the policy left out
    let mut positions: Vec<usize> = order.iter().map(|&p| p as usize).collect();
    positions.extend((0..svc.regions.len()).filter(|p| !order.contains(&(*p as u8))));
    let candidates: Vec<Candidate> = positions
        .into_iter()
        .map(|pos| {
            let r = &data.regions[svc.regions[pos] as usize];
            let rank = order.iter().position(|&p| p as usize == pos).map(|i| i + 1);
            candidate(snap, r, family, loc.as_ref(), rank)
        })
        .collect();
    let answer = d
        .picks
        .as_slice()
        .iter()
        .map(|p| {
            data.regions[p.region as usize].endpoints[p.endpoint as usize]
                .addr
                .to_string()
        })
        .collect::<Vec<_>>();
    // the scope the DNS answer would carry, from the same lookup
    let mut scope = match &svc.geo {
        Some(ix) if !answer.is_empty() => ix.lookup(svc, &data.regions, client_ip).scope,
        _ => 0,
    };
    if d.hashed && !answer.is_empty() {
        let p = if client_ip.is_ipv4() {
            svc.hash_prefix.0
        } else {
            svc.hash_prefix.1
        };
        scope = scope.max(p);
    }
    let network = loc
        .map(|_| IpNet::new(client_ip, located.prefix).map(|n| n.trunc().to_string()))
        .and_then(Result::ok);
    Ok(Explanation {
        name: svc.name.to_string(),
        qtype: match family {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
        .to_string(),
        policy: svc.policy.as_str().to_string(),
        select: svc.select.as_str().to_string(),
        client: ClientInfo {
            address: client_ip.to_string(),
            source: source.to_string(),
            country: loc.and_then(|l| l.country_str().map(str::to_string)),
            continent: loc.and_then(|l| l.continent_str().map(str::to_string)),
            lat: loc.and_then(|l| l.coords.map(|c| c.0)),
            lon: loc.and_then(|l| l.coords.map(|c| c.1)),
            network,
        },
        rule,
        candidates,
        answer,
        ttl: svc.ttl,
        scope,
        what_if_down: Vec::new(),
        bias: bias_effect(snap, svc, loc.as_ref(), client_ip),
    })
}

/// The service behind a name: the name itself, or a static CNAME chain
/// (at most 8 links) that leads to one.
fn find_service(snap: &Snapshot, n: &str) -> Option<u32> {
    let mut wire = text_wire(n);
    for _ in 0..8 {
        let node = snap.data.table.get(&wire)?;
        if let Some(s) = node.service {
            return Some(s);
        }
        wire = node.cname.as_ref()?.to_vec();
    }
    None
}

/// Where the GeoIP database puts a client.
fn locate(snap: &Snapshot, client: IpAddr) -> Located {
    match &snap.data.geo {
        Some(t) => {
            let hit = t.lookup::<[u64]>(client, None);
            Located {
                location: t.location(hit.class).copied(),
                prefix: hit.prefix,
            }
        }
        None => Located {
            location: None,
            prefix: 0,
        },
    }
}

/// The distance order of a biased `geo` service for a located client,
/// with and without the biases (the map entry's regions, if any, first
/// in both).
fn bias_effect(
    snap: &Snapshot,
    svc: &steer::Service,
    loc: Option<&geo::Location>,
    client: IpAddr,
) -> Option<BiasEffect> {
    let loc = loc.filter(|l| l.coords.is_some())?;
    if svc.policy != crate::model::Policy::Geo || !svc.biased {
        return None;
    }
    let regions = &snap.data.regions;
    let cidr = svc.map.matching(Some(client), None);
    let names = |order: &[u8]| -> Vec<String> {
        order
            .iter()
            .filter_map(|&p| svc.regions.get(p as usize))
            .map(|&ri| regions[ri as usize].name.to_string())
            .collect()
    };
    let biased = steer::geo_order(svc, regions, Some(loc), cidr);
    let mut plain_svc = svc.clone();
    plain_svc.biased = false;
    let plain = steer::geo_order(&plain_svc, regions, Some(loc), cidr);
    let (order, unbiased_order) = (names(&biased.order), names(&plain.order));
    let changed_first = order.first() != unbiased_order.first();
    let note = if order == unbiased_order {
        "the biases do not change this client's order".to_string()
    } else if changed_first {
        format!(
            "the biases put {} first; by plain distance {} would be",
            order.first().map_or("-", String::as_str),
            unbiased_order.first().map_or("-", String::as_str)
        )
    } else {
        "the biases change the order behind the first region".to_string()
    };
    Some(BiasEffect {
        order,
        unbiased_order,
        changed_first,
        note,
    })
}

/// One region as the decision saw it: distance, health, drains, load,
/// latency and its endpoints of `family`.
fn candidate(
    snap: &Snapshot,
    r: &steer::Region,
    family: Family,
    loc: Option<&geo::Location>,
    rank: Option<usize>,
) -> Candidate {
    let fam_eps: Vec<&steer::Endpoint> = r
        .endpoints
        .iter()
        .filter(|e| e.family() == family)
        .collect();
    let flag = |e: &steer::Endpoint| snap.flags.get(e.slot as usize).copied().unwrap_or(0);
    let usable = |e: &steer::Endpoint| flag(e) & steer::UP != 0 && flag(e) & steer::DRAINED == 0;
    let live = |e: &steer::Endpoint| {
        snap.live
            .get(e.slot as usize)
            .copied()
            .unwrap_or(steer::Live::UNKNOWN)
    };
    let usable_load = steer::dynamic::region_load(r, family, usable, &snap.live);
    let best_latency = fam_eps
        .iter()
        .filter(|e| usable(e))
        .map(|e| live(e).latency_ms)
        .filter(|l| !l.is_nan())
        .fold(f32::NAN, f32::min);
    let utilisation = steer::utilisation(r, family, &snap.inputs());
    Candidate {
        region: r.name.to_string(),
        distance_km: loc
            .and_then(|l| l.coords.map(|_| l.unit))
            .map(|u| (geo::distance_km(&u, &r.unit) * 10.0).round() / 10.0),
        healthy: fam_eps.iter().any(|e| usable(e)),
        drained: !r.endpoints.is_empty()
            && r.endpoints.iter().all(|e| flag(e) & steer::DRAINED != 0),
        weight: r.weight,
        rank,
        load: usable_load.map(|(l, _)| round3(l)),
        capacity: usable_load.map(|(_, c)| round3(c)),
        utilisation: utilisation.map(round3),
        latency_ms: known(best_latency),
        shed_ratio: r.shed.map(|(low, high)| {
            round3(utilisation.map_or(0.0, |u| steer::dynamic::shed_ratio(u, low, high)))
        }),
        bias: (r.reach != 1.0).then(|| ((1.0 - r.reach) * 100.0).round() as i8),
        biased_km: loc
            .and_then(|l| l.coords.map(|_| l.unit))
            .filter(|_| r.reach != 1.0)
            .map(|u| (geo::distance_km(&u, &r.unit) * r.reach * 10.0).round() / 10.0),
        dial: snap
            .data
            .region_index
            .get(r.name.as_ref())
            .and_then(|&i| snap.dials.get(usize::from(i)))
            .map(|&d| round3(f64::from(d)))
            .filter(|&d| d < 1.0),
        endpoints: fam_eps
            .iter()
            .map(|e| EndpointInfo {
                address: e.addr.to_string(),
                healthy: flag(e) & steer::UP != 0,
                drained: flag(e) & steer::DRAINED != 0,
                load: known(live(e).load),
                capacity: f64::from(e.capacity),
                latency_ms: known(live(e).latency_ms),
                nodes: node_verdicts(snap, e.slot),
            })
            .collect(),
    }
}
