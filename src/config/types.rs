//! The validated configuration: what [`super::load`] returns once every
//! name, address and path has been checked.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::model::{Limits, Policy, Select, WhenAllDown};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[server]`.
    pub server: Server,
    /// `[geoip] database`, resolved against the config's directory.
    pub geoip: Option<PathBuf>,
    /// `[geoip] watch`: pick up a new database file by itself.
    pub geoip_watch: bool,
    /// `[zones]`, sorted by name.
    pub zones: Vec<Zone>,
    /// `[checks]` by name.
    pub checks: BTreeMap<String, Check>,
    /// `[regions]`, sorted by name.
    pub regions: Vec<Region>,
    /// `[services]`, sorted by name.
    pub services: Vec<Service>,
    /// `[cluster]`.
    pub cluster: Option<Cluster>,
    /// `[tsig]` keys by name.
    pub tsig: BTreeMap<String, TsigKey>,
    /// `[[notify.webhook]]`, in file order.
    pub webhooks: Vec<Webhook>,
    /// The configuration every node of a cluster must share: the file
    /// without `[server]`, `[cluster]` and `[notify]`, in a canonical form (keys
    /// sorted, comments and layout dropped), for the configuration hash.
    pub shared_text: String,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// DNS listen addresses (UDP and TCP on each).
    pub listen: Vec<SocketAddr>,
    /// Admin HTTP API address.
    pub admin: Option<SocketAddr>,
    /// UDP worker threads per listen address; 0 = one per core.
    pub workers: usize,
    /// Bearer token for mutating admin calls.
    pub admin_token: Option<String>,
    /// How long an idle DNS TCP connection is kept.
    pub tcp_idle_timeout: Duration,
    /// Most DNS TCP connections at once, over all listeners.
    pub tcp_max_connections: usize,
    /// Pause of a UDP worker after a partial batch (adaptive coalescing).
    pub udp_batch_wait: Duration,
    /// Where drains are kept across restarts, resolved against the
    /// config's directory.
    pub state: Option<PathBuf>,
    /// Source address of health probes.
    pub probe_source: Option<IpAddr>,
    /// Name Server Identifier sent to clients that ask (RFC 5001).
    pub nsid: Option<String>,
    /// DNS TCP connections allowed at once from one client (IPv6: /64).
    pub tcp_per_source: usize,
    /// A DNS TCP connection ends after this long.
    pub tcp_max_lifetime: Duration,
    /// A DNS TCP connection ends after this many queries.
    pub tcp_max_queries: u32,
    /// Response rate limiting of UDP answers (`[server.rrl]`).
    pub rrl: Option<Limits>,
    /// UDP through AF_XDP (`[server.xdp]`); None: sockets only.
    pub xdp: Option<Xdp>,
}

/// `[server.xdp]`: interfaces whose UDP queries are taken through AF_XDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xdp {
    /// Interface names.
    pub interfaces: Vec<String>,
    /// Queues per interface: 0 = every rx queue, N = queues 0..N-1.
    pub queues: u32,
    /// Native (driver) XDP; false: generic (skb) XDP.
    pub native: bool,
}

/// How many live nodes must see an endpoint down for it to be down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of the nodes with a verdict (a tie is up).
    Majority,
    /// At least one.
    Any,
    /// Every one.
    All,
}

impl Quorum {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Quorum::Majority => "majority",
            Quorum::Any => "any",
            Quorum::All => "all",
        }
    }

    /// Whether `down` of `voters` votes make an endpoint down.
    pub fn is_down(self, down: usize, voters: usize) -> bool {
        match self {
            Quorum::Majority => down * 2 > voters,
            Quorum::Any => down > 0,
            Quorum::All => voters > 0 && down == voters,
        }
    }
}

/// `[cluster]`: the etcd cluster this node shares state through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// This node's unique name.
    pub node: String,
    /// Key prefix, starting with '/', without a trailing '/'.
    pub prefix: String,
    /// Health quorum.
    pub down_quorum: Quorum,
}

/// What a webhook is told of (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A region or endpoint turned healthy or unhealthy.
    Health,
    /// A drain was made, ended, scheduled or refused.
    Drain,
    /// A dial was set, cleared or expired.
    Dial,
    /// A reload, and its result.
    Reload,
    /// A node joined or left, etcd was lost or regained, a configuration
    /// diverged.
    Cluster,
}

impl EventKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [EventKind; 5] = [
        EventKind::Health,
        EventKind::Drain,
        EventKind::Dial,
        EventKind::Reload,
        EventKind::Cluster,
    ];

    /// The name used in the config and in the JSON `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Health => "health",
            EventKind::Drain => "drain",
            EventKind::Dial => "dial",
            EventKind::Reload => "reload",
            EventKind::Cluster => "cluster",
        }
    }

    /// The kind of this name.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// `[[notify.webhook]]`: a receiver of events.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where events are POSTed (`http://` or `https://`).
    pub url: String,
    /// What it is told of, sorted, without repeats.
    pub events: Vec<EventKind>,
    /// The HMAC-SHA256 key of `X-Signpost-Signature` (the `secret` as
    /// written, or `secret_file`'s contents without the line's end).
    pub secret: Option<String>,
    /// How long one delivery may take.
    pub timeout: Duration,
    /// Most events waiting; a full queue drops the oldest.
    pub queue: usize,
}

impl Webhook {
    /// Default `timeout`.
    pub const TIMEOUT: Duration = Duration::from_secs(5);
    /// Default `queue`.
    pub const QUEUE: usize = 1000;
    /// Largest `queue`.
    pub const MAX_QUEUE: usize = 100_000;
    /// Longest `timeout`.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
}

impl std::fmt::Debug for Webhook {
    /// Neither the secret nor the URL's path and query (which often
    /// hold a token) are written.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// `[zones."name."]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, fully qualified.
    pub name: String,
    /// The zone file, resolved against the config's directory.
    pub file: PathBuf,
    /// The file as written in the config (for messages).
    pub file_display: String,
    /// Online signing (SPEC §9), when the zone has a `dnssec` table.
    pub dnssec: Option<Dnssec>,
    /// Outbound transfers (SPEC §10), when the zone has a `transfer` table.
    pub transfer: Option<Transfer>,
    /// The primary the zone's static records come from (then `file` is
    /// the last good copy, kept beside the state file).
    pub primary: Option<Primary>,
}

/// `[zones."name.".transfer]`: who may take the zone, and whom to notify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Clients allowed to AXFR/IXFR over TCP.
    pub allow: Vec<IpNet>,
    /// The `[tsig.NAME]` key every transfer must be signed with.
    pub tsig: Option<String>,
    /// Secondaries sent NOTIFY when the serial changes.
    pub notify: Vec<SocketAddr>,
}

/// `[zones."name."] primary`: where the zone is transferred from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    /// The primary's address.
    pub addr: SocketAddr,
    /// The `[tsig.NAME]` key the transfers are signed with.
    pub tsig: Option<String>,
}

/// TSIG algorithms (RFC 8945).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    /// hmac-sha256.
    HmacSha256,
    /// hmac-sha512.
    HmacSha512,
}

impl TsigAlgorithm {
    /// As written in configurations (and in BIND's and Knot's).
    pub fn as_str(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

/// `[tsig.NAME]`: a shared secret for transfers and NOTIFY.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name (a DNS name, as both sides must write it).
    pub name: String,
    /// Its algorithm.
    pub algorithm: TsigAlgorithm,
    /// The secret.
    pub secret: Vec<u8>,
}

impl TsigKey {
    /// Seconds of clock difference a TSIG signature may show (RFC 8945
    /// §10 recommends 300).
    pub const FUDGE: u16 = 300;

    /// The hickory-proto signer of this key.
    pub fn signer(&self) -> Result<hickory_proto::rr::TSigner, String> {
        use hickory_proto::rr::rdata::tsig::TsigAlgorithm as Alg;
        let alg = match self.algorithm {
            TsigAlgorithm::HmacSha256 => Alg::HmacSha256,
            TsigAlgorithm::HmacSha512 => Alg::HmacSha512,
        };
        let name = hickory_proto::rr::Name::from_ascii(&self.name)
            .map_err(|e| format!("TSIG key name {}: {e}", self.name))?;
        hickory_proto::rr::TSigner::new(self.secret.clone(), alg, name, Self::FUDGE)
            .map_err(|e| format!("TSIG key {}: {e}", self.name))
    }
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// `[zones."name.".dnssec]`: the key files and the signature timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnssec {
    /// BIND key files: (resolved path, as written in the config).
    pub keys: Vec<(PathBuf, String)>,
    /// Signature lifetime, from the start of its window.
    pub validity: Duration,
    /// Signatures are re-made when less than this remains.
    pub refresh: Duration,
}

impl Dnssec {
    /// Default `validity`.
    pub const VALIDITY: Duration = Duration::from_secs(14 * 86_400);
    /// Default `refresh`.
    pub const REFRESH: Duration = Duration::from_secs(7 * 86_400);
}

/// Probe protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// HTTP GET.
    Http,
    /// HTTPS GET.
    Https,
    /// TCP connect.
    Tcp,
}

/// `[checks.NAME]`: a health-check profile. Two endpoints with equal
/// addresses and equal [`Check::identity`] share one probe.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Check {
    /// Protocol.
    pub kind: CheckKind,
    /// Port probed.
    pub port: u16,
    /// HTTP path.
    pub path: String,
    /// Host header and TLS SNI.
    pub host: Option<String>,
    /// Accepted status codes; empty = any 2xx.
    pub expect: Vec<u16>,
    /// Substring the body must contain.
    pub body: Option<String>,
    /// Probe period.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Consecutive passes to become up.
    pub rise: u32,
    /// Consecutive failures to become down.
    pub fall: u32,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Response header carrying the load balancer's load (http/https).
    pub load_header: Option<String>,
}

/// What a check asks of an endpoint, without its timing: with the
/// probed address, the identity of a probe target (SPEC §5). A reload that
/// changes only `interval`, `timeout`, `rise` or `fall` keeps the target
/// and its health.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckId {
    /// Protocol.
    pub kind: CheckKind,
    /// Port probed.
    pub port: u16,
    /// HTTP path.
    pub path: String,
    /// Host header and TLS SNI.
    pub host: Option<String>,
    /// Accepted status codes.
    pub expect: Vec<u16>,
    /// Substring the body must contain.
    pub body: Option<String>,
    /// Skip TLS certificate verification.
    pub insecure: bool,
}

impl Check {
    /// Everything but the timing.
    pub fn identity(&self) -> CheckId {
        CheckId {
            kind: self.kind,
            port: self.port,
            path: self.path.clone(),
            host: self.host.clone(),
            expect: self.expect.clone(),
            body: self.body.clone(),
            insecure: self.insecure,
        }
    }

    /// True when only the timing differs.
    pub fn same_target(&self, other: &Check) -> bool {
        self.identity() == other.identity()
    }
}

/// `[regions.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Region name.
    pub name: String,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Share for the `weighted` policy.
    pub weight: u32,
    /// Name of the check profile; `None` = always up.
    pub check: Option<String>,
    /// Addresses handed out.
    pub endpoints: Vec<Endpoint>,
    /// Load at which each endpoint (that sets none itself) is full.
    pub capacity: f64,
    /// Geo spillover marks (utilisation), if set.
    pub shed: Option<Shed>,
    /// `bias` (-99..=99): for `geo`, the distance from a client to this
    /// region counts as `distance x (1 - bias/100)` (SPEC §11).
    pub bias: i8,
}

/// `shed = { low, high }` of a region (SPEC §4.7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shed {
    /// Utilisation above which clients start moving to the next region.
    pub low: f64,
    /// Utilisation at which all of them have moved.
    pub high: f64,
}

/// One endpoint of a region.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Address answered.
    pub address: IpAddr,
    /// Share within the region.
    pub weight: u32,
    /// Address probed (defaults to `address`).
    pub probe: IpAddr,
    /// Load at which it is full (defaults to its region's `capacity`).
    pub capacity: f64,
}

/// A `map` key of a geo service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKey {
    /// Client address inside this network.
    Cidr(IpNet),
    /// ISO 3166 country code, upper case.
    Country([u8; 2]),
    /// Continent code (AF AN AS EU NA OC SA), upper case.
    Continent([u8; 2]),
}

/// The seven continent codes used by GeoIP2.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// One `map` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// The key as written (used in `explain` as `map:<key>`).
    pub key: String,
    /// Parsed key.
    pub matcher: MapKey,
    /// Regions to put first, in order.
    pub regions: Vec<String>,
}

/// `[services."name."]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Lowercase, fully qualified.
    pub name: String,
    /// The zone it belongs to.
    pub zone: String,
    /// Region names, in order.
    pub regions: Vec<String>,
    /// Policy.
    pub policy: Policy,
    /// Answer TTL.
    pub ttl: u32,
    /// Most addresses per answer.
    pub answers: u32,
    /// Behaviour when every region is down.
    pub when_all_down: WhenAllDown,
    /// Geo overrides.
    pub map: Vec<MapEntry>,
    /// How endpoints are drawn inside a region.
    pub select: Select,
    /// Client network prefixes hashed by `hash` (IPv4, IPv6).
    pub hash_prefix: (u8, u8),
    /// Safety rule: a drain that would leave fewer usable regions is
    /// refused (409) unless forced; 0 = no rule.
    pub min_healthy_regions: u32,
    /// Addresses that zone transfers carry for this name (SPEC §10);
    /// empty: the name is left out of transfers.
    pub fallback: Vec<IpAddr>,
}

/// The default `capacity` of a region's endpoints.
pub const DEFAULT_CAPACITY: f64 = 100.0;

/// Parses a `map` key: a CIDR, `country:XX`, `continent:XX`, or a bare
/// two-letter code (a continent code if it is one, else a country).
pub fn parse_map_key(k: &str) -> Option<MapKey> {
    if k.contains('/') {
        let net: IpNet = k.parse().ok()?;
        // Only canonical networks: "10.0.0.1/8" is a typo, not a network.
        return (net.trunc() == net).then_some(MapKey::Cidr(net));
    }
    let two = |s: &str| -> Option<[u8; 2]> {
        let b = s.as_bytes();
        (b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic))
            .then(|| [b[0].to_ascii_uppercase(), b[1].to_ascii_uppercase()])
    };
    if let Some(c) = k.strip_prefix("country:") {
        return two(c).map(MapKey::Country);
    }
    if let Some(c) = k.strip_prefix("continent:") {
        let code = two(c)?;
        return CONTINENTS
            .iter()
            .any(|x| x.as_bytes() == code)
            .then_some(MapKey::Continent(code));
    }
    let code = two(k)?;
    if CONTINENTS.iter().any(|x| x.as_bytes() == code) {
        Some(MapKey::Continent(code))
    } else {
        Some(MapKey::Country(code))
    }
}
