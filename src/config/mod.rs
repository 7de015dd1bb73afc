//! The TOML configuration (SPEC §3): a serde model that rejects unknown keys,
//! and [`load`], which validates it into a [`Config`] whose every name,
//! address and path has been checked. Errors name the file, the key and the
//! reason, and all of them are reported at once.

mod raw;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use raw::RawConfig;

use crate::model::{Limits, MAX_DEBT, MAX_NSID, MAX_RATE, Policy, Select};

/// Most regions one service may list (keeps per-query ordering on the stack).
pub const MAX_SERVICE_REGIONS: usize = 64;
/// Most endpoints one region may have.
pub const MAX_REGION_ENDPOINTS: usize = 64;
/// Most addresses one answer may carry.
pub const MAX_ANSWERS: u32 = 16;

/// One problem found in the configuration or a file it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The file.
        file: String,
        /// The OS error.
        reason: String,
    },
    /// TOML syntax or type error.
    #[error("{file}:{line}:{column}: {key}{sep}{message}", sep = if key.is_empty() { "" } else { ": " })]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted key path (may be empty).
        key: String,
        /// What the parser said.
        message: String,
    },
    /// A zone file problem.
    #[error("{0}")]
    Zone(#[from] crate::zone::ZoneError),
    /// A value that parses but is wrong.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// Dotted key path, as an operator would write it.
        key: String,
        /// Why it is wrong.
        reason: String,
    },
}

/// All errors of one load, in the order they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

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
    /// The configuration every node of a cluster must share: the file
    /// without `[server]` and `[cluster]`, in a canonical form (keys
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

/// `[zones."name."]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, fully qualified.
    pub name: String,
    /// The zone file, resolved against the config's directory.
    pub file: PathBuf,
    /// The file as written in the config (for messages).
    pub file_display: String,
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

/// What to answer when every region is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenAllDown {
    /// Fail open: answer as if every non-drained endpoint were up.
    All,
    /// Answer NODATA.
    Nodata,
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
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let display = path.display().to_string();
    let text = crate::read_input_text(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::Read {
            file: display.clone(),
            reason: e.to_string(),
        }])
    })?;
    parse(&text, path)
}

/// Parses and validates configuration text; `path` names it in errors and
/// anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let raw = raw::parse(text, &file).map_err(|e| ConfigErrors(vec![e]))?;
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut c = validate(raw, path, &base)?;
    c.shared_text = shared_text(text);
    Ok(c)
}

/// The canonical form of what nodes share (see [`Config::shared_text`]).
fn shared_text(text: &str) -> String {
    match text.parse::<toml::Table>() {
        Ok(mut t) => {
            t.remove("server");
            t.remove("cluster");
            t.to_string()
        }
        Err(_) => text.to_string(),
    }
}

/// Parses TOML into the unvalidated model: syntax, types and unknown keys
/// only (for fragments, e.g. examples in the docs).
pub fn parse_raw(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    raw::parse(text, file)
}

/// Lowercases a DNS name and makes it fully qualified; `None` if it is not a
/// valid name.
pub fn normalize_name(name: &str) -> Option<String> {
    let mut n = name.trim().to_ascii_lowercase();
    if n.is_empty() {
        return None;
    }
    if !n.ends_with('.') {
        n.push('.');
    }
    if n == "." {
        return Some(n);
    }
    if n.len() > 254 {
        return None;
    }
    for label in n[..n.len() - 1].split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        {
            return None;
        }
    }
    Some(n)
}

/// True if `name` equals `zone` or lies below it (both normalized).
pub fn in_zone(name: &str, zone: &str) -> bool {
    zone == "."
        || name == zone
        || (name.ends_with(zone) && name[..name.len() - zone.len()].ends_with('.'))
}

/// Quotes a TOML key segment the way an operator would write it.
pub fn key_segment(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

struct Errs<'a> {
    file: &'a str,
    list: Vec<ConfigError>,
}

impl Errs<'_> {
    fn push(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.list.push(ConfigError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            reason: reason.into(),
        });
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"500ms\", \"2s\", \"1m\""))
}

/// `[server.rrl]`; errors name the key.
fn validate_rrl(r: &raw::RawRrl, errs: &mut Errs<'_>) -> Limits {
    let window = match parse_duration(&r.window) {
        Ok(d) if d < Duration::from_secs(1) || d > Duration::from_secs(3600) => {
            errs.push("server.rrl.window", "must be between 1s and 1h");
            Duration::from_secs(15)
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.rrl.window", e);
            Duration::from_secs(15)
        }
    };
    let errors = r.errors_per_second.unwrap_or(r.responses_per_second);
    for (key, rate) in [
        ("responses_per_second", r.responses_per_second),
        ("errors_per_second", errors),
    ] {
        if rate == 0 || rate > MAX_RATE {
            errs.push(
                format!("server.rrl.{key}"),
                format!("{rate} is not between 1 and {MAX_RATE}"),
            );
        } else if u64::from(rate) * window.as_secs() > MAX_DEBT {
            errs.push(
                format!("server.rrl.{key}"),
                format!(
                    "{rate} per second over a window of {}s is more than the {MAX_DEBT} \
                     responses an account can owe; shorten server.rrl.window",
                    window.as_secs()
                ),
            );
        }
    }
    if r.slip > 10 {
        errs.push(
            "server.rrl.slip",
            format!("{} is not between 0 (drop all) and 10", r.slip),
        );
    }
    if !(1..=32).contains(&r.ipv4_prefix) {
        errs.push(
            "server.rrl.ipv4_prefix",
            format!("{} is not between 1 and 32", r.ipv4_prefix),
        );
    }
    if !(1..=128).contains(&r.ipv6_prefix) {
        errs.push(
            "server.rrl.ipv6_prefix",
            format!("{} is not between 1 and 128", r.ipv6_prefix),
        );
    }
    let mut exempt = Vec::new();
    for (i, n) in r.exempt.iter().enumerate() {
        let parsed = n
            .trim()
            .parse::<IpNet>()
            .or_else(|_| n.trim().parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => exempt.push(net.trunc()),
            Err(_) => errs.push(
                format!("server.rrl.exempt[{i}]"),
                format!("{n:?} is not a network (e.g. \"192.0.2.0/24\") or an address"),
            ),
        }
    }
    Limits {
        responses: r.responses_per_second,
        errors,
        window,
        slip: r.slip,
        prefix: (r.ipv4_prefix, r.ipv6_prefix),
        exempt,
    }
}

fn validate(raw: RawConfig, path: &Path, base: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let mut errs = Errs {
        file: &file,
        list: Vec::new(),
    };
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };

    // [server]
    let s = raw.server;
    let mut listen = Vec::new();
    if s.listen.is_empty() {
        errs.push("server.listen", "at least one address is needed");
    }
    for (i, a) in s.listen.iter().enumerate() {
        match a.parse::<SocketAddr>() {
            Ok(sa) if listen.contains(&sa) => errs.push(
                format!("server.listen[{i}]"),
                format!("{a:?} is listed twice"),
            ),
            Ok(sa) => listen.push(sa),
            Err(_) => errs.push(
                format!("server.listen[{i}]"),
                format!("{a:?} is not an address:port (IPv6: \"[::1]:5353\")"),
            ),
        }
    }
    let admin = match &s.admin {
        None => None,
        Some(a) => match a.parse::<SocketAddr>() {
            Ok(sa) => Some(sa),
            Err(_) => {
                errs.push("server.admin", format!("{a:?} is not an address:port"));
                None
            }
        },
    };
    if s.workers > 1024 {
        errs.push("server.workers", format!("{} is more than 1024", s.workers));
    }
    if let Some(t) = &s.admin_token {
        if t.trim().is_empty() {
            errs.push(
                "server.admin_token",
                "must not be empty (omit it to disable auth)",
            );
        } else if t.trim() != t {
            errs.push(
                "server.admin_token",
                "has spaces at its start or end, which no Authorization header can carry: remove them",
            );
        } else if t.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            errs.push(
                "server.admin_token",
                "may hold only visible ASCII characters (no spaces or control characters)",
            );
        }
    }
    let tcp_idle_timeout = match parse_duration(&s.tcp_idle_timeout) {
        Ok(d) if d.is_zero() => {
            errs.push("server.tcp_idle_timeout", "must be longer than 0");
            Duration::from_secs(1)
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.tcp_idle_timeout", e);
            Duration::from_secs(1)
        }
    };
    let udp_batch_wait = match parse_duration(&s.udp_batch_wait) {
        Ok(d) if d > Duration::from_millis(1) => {
            errs.push(
                "server.udp_batch_wait",
                "must be at most 1ms (0 disables it)",
            );
            Duration::ZERO
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.udp_batch_wait", e);
            Duration::ZERO
        }
    };
    if s.tcp_max_connections == 0 || s.tcp_max_connections > 1_000_000 {
        errs.push(
            "server.tcp_max_connections",
            format!("{} is not between 1 and 1000000", s.tcp_max_connections),
        );
    }
    let probe_source = match &s.probe_source {
        None => None,
        Some(a) => match a.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                errs.push(
                    "server.probe_source",
                    format!("{ip} cannot be a source address"),
                );
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                errs.push("server.probe_source", format!("{a:?} is not an IP address"));
                None
            }
        },
    };
    if let Some(st) = &s.state
        && st.trim().is_empty()
    {
        errs.push(
            "server.state",
            "must name a file (omit it to keep no state)",
        );
    }
    if let Some(n) = &s.nsid
        && (n.is_empty() || n.len() > MAX_NSID)
    {
        errs.push(
            "server.nsid",
            format!("must be 1 to {} bytes (e.g. the node's name)", MAX_NSID),
        );
    }
    if s.tcp_per_source == 0 {
        errs.push("server.tcp_per_source", "must be at least 1");
    }
    if s.tcp_max_queries == 0 {
        errs.push("server.tcp_max_queries", "must be at least 1");
    }
    let tcp_max_lifetime = match parse_duration(&s.tcp_max_lifetime) {
        Ok(d) if d < Duration::from_secs(1) => {
            errs.push("server.tcp_max_lifetime", "must be at least 1s");
            Duration::from_secs(1)
        }
        Ok(d) => d,
        Err(e) => {
            errs.push("server.tcp_max_lifetime", e);
            Duration::from_secs(120)
        }
    };
    let rrl = s.rrl.as_ref().map(|r| validate_rrl(r, &mut errs));
    let server = Server {
        rrl,
        listen,
        admin,
        workers: s.workers,
        admin_token: s.admin_token.clone(),
        tcp_idle_timeout,
        tcp_max_connections: s.tcp_max_connections,
        udp_batch_wait,
        state: s
            .state
            .as_deref()
            .filter(|p| !p.trim().is_empty())
            .map(&resolve),
        probe_source,
        nsid: s.nsid.clone(),
        tcp_per_source: s.tcp_per_source,
        tcp_max_lifetime,
        tcp_max_queries: s.tcp_max_queries,
    };

    // [cluster]
    let cluster = raw
        .cluster
        .as_ref()
        .and_then(|c| validate_cluster(c, &mut errs));

    // [geoip]
    let geoip = raw.geoip.as_ref().map(|g| resolve(&g.database));
    let geoip_watch = raw.geoip.as_ref().is_none_or(|g| g.watch);

    // [zones]
    let mut zones = Vec::new();
    for (name, z) in &raw.zones {
        let key = format!("zones.{}", key_segment(name));
        match normalize_name(name) {
            Some(n) if n.contains('*') => errs.push(key, "a zone name cannot hold a wildcard"),
            Some(n) if zones.iter().any(|x: &Zone| x.name == n) => {
                errs.push(key, format!("zone {n} is listed twice"))
            }
            Some(n) => zones.push(Zone {
                name: n,
                file: resolve(&z.file),
                file_display: z.file.clone(),
            }),
            None => errs.push(key, format!("{name:?} is not a valid DNS name")),
        }
    }

    // [checks]
    let mut checks = BTreeMap::new();
    for (name, c) in &raw.checks {
        let key = format!("checks.{}", key_segment(name));
        let kind = match c.kind.as_str() {
            "http" => CheckKind::Http,
            "https" => CheckKind::Https,
            "tcp" => CheckKind::Tcp,
            other => {
                errs.push(
                    format!("{key}.type"),
                    format!("unknown check type {other:?} (expected http, https or tcp)"),
                );
                continue;
            }
        };
        let port = match u16::try_from(c.port) {
            Ok(p) if p > 0 => p,
            _ => {
                errs.push(
                    format!("{key}.port"),
                    format!("{} is not a port (1-65535)", c.port),
                );
                0
            }
        };
        let interval = parse_duration(&c.interval)
            .map_err(|e| errs.push(format!("{key}.interval"), e))
            .ok();
        let timeout = parse_duration(&c.timeout)
            .map_err(|e| errs.push(format!("{key}.timeout"), e))
            .ok();
        if let Some(i) = interval
            && (i < Duration::from_millis(100) || i > Duration::from_secs(3600))
        {
            errs.push(format!("{key}.interval"), "must be between 100ms and 1h");
        }
        if let (Some(i), Some(t)) = (interval, timeout) {
            if t.is_zero() {
                errs.push(format!("{key}.timeout"), "must be longer than 0");
            } else if t >= i {
                errs.push(
                    format!("{key}.timeout"),
                    format!("{} must be shorter than interval {}", c.timeout, c.interval),
                );
            }
        }
        if c.rise < 1 || c.rise > 100 {
            errs.push(
                format!("{key}.rise"),
                format!("{} is not between 1 and 100", c.rise),
            );
        }
        if c.fall < 1 || c.fall > 100 {
            errs.push(
                format!("{key}.fall"),
                format!("{} is not between 1 and 100", c.fall),
            );
        }
        let http = kind != CheckKind::Tcp;
        if !http {
            for (set, k) in [
                (c.path.is_some(), "path"),
                (c.host.is_some(), "host"),
                (c.expect.is_some(), "expect"),
                (c.body.is_some(), "body"),
                (c.insecure.is_some(), "insecure"),
            ] {
                if set {
                    errs.push(
                        format!("{key}.{k}"),
                        "only http and https checks take this key",
                    );
                }
            }
        }
        if kind == CheckKind::Http && c.insecure.is_some() {
            errs.push(format!("{key}.insecure"), "only https checks take this key");
        }
        if let Some(h) = &c.load_header {
            if !http {
                errs.push(
                    format!("{key}.load_header"),
                    "only http and https checks take this key (a tcp check reads no headers)",
                );
            } else if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                errs.push(
                    format!("{key}.load_header"),
                    format!("{h:?} is not an HTTP header name"),
                );
            }
        }
        let path_s = c.path.clone().unwrap_or_else(|| "/".to_string());
        if http
            && (!path_s.starts_with('/')
                || path_s.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            errs.push(
                format!("{key}.path"),
                format!("{path_s:?} must start with '/' and hold no spaces"),
            );
        }
        if let Some(h) = &c.host
            && (normalize_name(h).is_none() || h.contains('*'))
        {
            errs.push(format!("{key}.host"), format!("{h:?} is not a host name"));
        }
        let mut expect = Vec::new();
        for (i, code) in c.expect.iter().flatten().enumerate() {
            match u16::try_from(*code) {
                Ok(v) if (100..=599).contains(&v) => expect.push(v),
                _ => errs.push(
                    format!("{key}.expect[{i}]"),
                    format!("{code} is not an HTTP status (100-599)"),
                ),
            }
        }
        if c.expect.as_ref().is_some_and(|e| e.is_empty()) {
            errs.push(
                format!("{key}.expect"),
                "must list at least one status (omit it for any 2xx)",
            );
        }
        if c.body.as_ref().is_some_and(|b| b.is_empty()) {
            errs.push(
                format!("{key}.body"),
                "must not be empty (omit it to skip the body test)",
            );
        }
        checks.insert(
            name.clone(),
            Check {
                kind,
                port,
                path: path_s,
                host: c.host.clone(),
                expect,
                body: c.body.clone(),
                interval: interval.unwrap_or(Duration::from_secs(5)),
                timeout: timeout.unwrap_or(Duration::from_secs(2)),
                rise: c.rise,
                fall: c.fall,
                insecure: c.insecure.unwrap_or(false),
                load_header: c.load_header.clone().filter(|_| http),
            },
        );
    }

    // [regions]
    let mut regions = Vec::new();
    for (name, r) in &raw.regions {
        let key = format!("regions.{}", key_segment(name));
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || name.is_empty()
        {
            errs.push(
                key.clone(),
                format!("region name {name:?} may hold only letters, digits, '-' and '_'"),
            );
        }
        if !(r.location.lat.is_finite() && (-90.0..=90.0).contains(&r.location.lat)) {
            errs.push(
                format!("{key}.location.lat"),
                format!("{} is not between -90 and 90", r.location.lat),
            );
        }
        if !(r.location.lon.is_finite() && (-180.0..=180.0).contains(&r.location.lon)) {
            errs.push(
                format!("{key}.location.lon"),
                format!("{} is not between -180 and 180", r.location.lon),
            );
        }
        let weight = check_weight(&mut errs, &format!("{key}.weight"), r.weight);
        let capacity = match r.capacity {
            None => DEFAULT_CAPACITY,
            Some(c) => check_capacity(&mut errs, &format!("{key}.capacity"), c),
        };
        let shed = r.shed.as_ref().and_then(|sh| {
            let skey = format!("{key}.shed");
            let ok = |v: f64| v.is_finite() && (0.0..=10.0).contains(&v);
            if !ok(sh.low) || !ok(sh.high) {
                errs.push(
                    skey,
                    "low and high are utilisations between 0 and 10 (e.g. 0.8, 0.95)",
                );
                None
            } else if sh.low >= sh.high {
                errs.push(
                    skey,
                    format!("low {} must be below high {}", sh.low, sh.high),
                );
                None
            } else {
                Some(Shed {
                    low: sh.low,
                    high: sh.high,
                })
            }
        });
        if let Some(c) = &r.check
            && !raw.checks.contains_key(c)
        {
            errs.push(format!("{key}.check"), format!("unknown check {c:?}"));
        }
        if r.endpoints.is_empty() {
            errs.push(
                format!("{key}.endpoints"),
                "a region needs at least one endpoint",
            );
        }
        if r.endpoints.len() > MAX_REGION_ENDPOINTS {
            errs.push(
                format!("{key}.endpoints"),
                format!("more than {MAX_REGION_ENDPOINTS} endpoints"),
            );
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for (i, e) in r.endpoints.iter().enumerate() {
            let ekey = format!("{key}.endpoints[{i}]");
            let address = match e.address.parse::<IpAddr>() {
                Ok(a) => a,
                Err(_) => {
                    errs.push(
                        format!("{ekey}.address"),
                        format!("{:?} is not an IP address", e.address),
                    );
                    continue;
                }
            };
            if address.is_unspecified() || address.is_multicast() {
                errs.push(
                    format!("{ekey}.address"),
                    format!("{address} cannot be handed out"),
                );
            }
            let probe = match &e.probe {
                None => address,
                Some(p) => match p.parse::<IpAddr>() {
                    Ok(a) => a,
                    Err(_) => {
                        errs.push(
                            format!("{ekey}.probe"),
                            format!("{p:?} is not an IP address"),
                        );
                        address
                    }
                },
            };
            if endpoints.iter().any(|x| x.address == address) {
                errs.push(
                    format!("{ekey}.address"),
                    format!("{address} is listed twice in this region"),
                );
            }
            let weight = check_weight(&mut errs, &format!("{ekey}.weight"), e.weight);
            let capacity = match e.capacity {
                None => capacity,
                Some(c) => check_capacity(&mut errs, &format!("{ekey}.capacity"), c),
            };
            endpoints.push(Endpoint {
                address,
                weight,
                probe,
                capacity,
            });
        }
        regions.push(Region {
            name: name.clone(),
            lat: r.location.lat,
            lon: r.location.lon,
            weight,
            check: r.check.clone(),
            endpoints,
            capacity,
            shed,
        });
    }

    // [services]
    let mut services = Vec::new();
    let mut seen_services = HashSet::new();
    for (name, sv) in &raw.services {
        let key = format!("services.{}", key_segment(name));
        let Some(n) = normalize_name(name) else {
            errs.push(key, format!("{name:?} is not a valid DNS name"));
            continue;
        };
        if n.contains('*') {
            errs.push(key.clone(), "a service name cannot hold a wildcard");
        }
        if !seen_services.insert(n.clone()) {
            errs.push(key.clone(), format!("service {n} is listed twice"));
        }
        let zone = zones
            .iter()
            .filter(|z| in_zone(&n, &z.name))
            .max_by_key(|z| z.name.len())
            .map(|z| z.name.clone());
        if zone.is_none() {
            errs.push(
                key.clone(),
                format!("{n} is not inside any configured zone"),
            );
        }
        let policy = Policy::from_name(&sv.policy).unwrap_or_else(|| {
            errs.push(
                format!("{key}.policy"),
                format!(
                    "unknown policy {:?} (expected geo, weighted, failover, hash, least-loaded or fastest)",
                    sv.policy
                ),
            );
            Policy::Geo
        });
        let select = match sv.select.as_deref() {
            None => Select::Weighted,
            Some(name) => Select::from_name(name).unwrap_or_else(|| {
                errs.push(
                    format!("{key}.select"),
                    format!(
                        "unknown select {name:?} (expected weighted, hash, least-loaded or fastest)"
                    ),
                );
                Select::Weighted
            }),
        };
        let hash_prefix = match sv.hash_prefix.as_deref() {
            None => (24, 56),
            Some([v4, v6]) if (1..=32).contains(v4) && (1..=128).contains(v6) => {
                (*v4 as u8, *v6 as u8)
            }
            Some(other) => {
                errs.push(
                    format!("{key}.hash_prefix"),
                    format!(
                        "{other:?} is not [IPv4 prefix 1-32, IPv6 prefix 1-128], e.g. [24, 56]"
                    ),
                );
                (24, 56)
            }
        };
        let when_all_down = match sv.when_all_down.as_str() {
            "all" => WhenAllDown::All,
            "nodata" => WhenAllDown::Nodata,
            other => {
                errs.push(
                    format!("{key}.when_all_down"),
                    format!("unknown value {other:?} (expected \"all\" or \"nodata\")"),
                );
                WhenAllDown::All
            }
        };
        if sv.regions.is_empty() {
            errs.push(
                format!("{key}.regions"),
                "a service needs at least one region",
            );
        }
        if sv.regions.len() > MAX_SERVICE_REGIONS {
            errs.push(
                format!("{key}.regions"),
                format!("more than {MAX_SERVICE_REGIONS} regions"),
            );
        }
        for (i, r) in sv.regions.iter().enumerate() {
            if !raw.regions.contains_key(r) {
                errs.push(
                    format!("{key}.regions[{i}]"),
                    format!("unknown region {r:?}"),
                );
            } else if sv.regions[..i].contains(r) {
                errs.push(
                    format!("{key}.regions[{i}]"),
                    format!("region {r:?} is listed twice"),
                );
            }
        }
        let ttl = match u32::try_from(sv.ttl) {
            Ok(t) if t <= 0x7fff_ffff => t,
            _ => {
                errs.push(
                    format!("{key}.ttl"),
                    format!("{} is not a TTL (0-2147483647)", sv.ttl),
                );
                30
            }
        };
        let answers = match u32::try_from(sv.answers) {
            Ok(a) if (1..=MAX_ANSWERS).contains(&a) => a,
            _ => {
                errs.push(
                    format!("{key}.answers"),
                    format!("{} is not between 1 and {MAX_ANSWERS}", sv.answers),
                );
                1
            }
        };
        let mut map = Vec::new();
        if sv.map.is_some() && policy != Policy::Geo {
            errs.push(format!("{key}.map"), "only geo services take a map");
        }
        for (k, list) in sv.map.iter().flatten() {
            let mkey = format!("{key}.map.{}", key_segment(k));
            let Some(matcher) = parse_map_key(k) else {
                errs.push(
                    mkey,
                    format!(
                        "{k:?} is neither a CIDR (\"10.0.0.0/8\"), a country code (\"JP\", \"country:SA\") nor a continent code ({})",
                        CONTINENTS.join(" ")
                    ),
                );
                continue;
            };
            if map.iter().any(|m: &MapEntry| m.matcher == matcher) {
                errs.push(
                    mkey.clone(),
                    format!("{k:?} matches the same clients as another key"),
                );
            }
            if list.is_empty() {
                errs.push(mkey.clone(), "must list at least one region");
            }
            for (i, r) in list.iter().enumerate() {
                if !sv.regions.contains(r) {
                    errs.push(
                        format!("{mkey}[{i}]"),
                        format!("region {r:?} is not one of this service's regions"),
                    );
                } else if list[..i].contains(r) {
                    errs.push(
                        format!("{mkey}[{i}]"),
                        format!("region {r:?} is listed twice"),
                    );
                }
            }
            map.push(MapEntry {
                key: k.clone(),
                matcher,
                regions: list.clone(),
            });
        }
        if policy == Policy::Geo && geoip.is_none() {
            errs.push(
                format!("{key}.policy"),
                "a geo service needs [geoip] database",
            );
        }
        let min_healthy_regions = match u32::try_from(sv.min_healthy_regions) {
            Ok(n) if n as usize <= sv.regions.len() => n,
            _ => {
                errs.push(
                    format!("{key}.min_healthy_regions"),
                    format!(
                        "{} must be 0 (no rule) to the service's {} regions",
                        sv.min_healthy_regions,
                        sv.regions.len()
                    ),
                );
                0
            }
        };
        services.push(Service {
            name: n,
            zone: zone.unwrap_or_default(),
            regions: sv.regions.clone(),
            policy,
            ttl,
            answers,
            when_all_down,
            map,
            select,
            hash_prefix,
            min_healthy_regions,
        });
    }

    zones.sort_by(|a, b| a.name.cmp(&b.name));
    services.sort_by(|a, b| a.name.cmp(&b.name));
    if errs.list.is_empty() {
        Ok(Config {
            path: path.to_path_buf(),
            server,
            geoip,
            geoip_watch,
            zones,
            checks,
            regions,
            services,
            cluster,
            shared_text: String::new(),
        })
    } else {
        Err(ConfigErrors(errs.list))
    }
}

fn validate_cluster(c: &raw::RawCluster, errs: &mut Errs<'_>) -> Option<Cluster> {
    let before = errs.list.len();
    if c.etcd.is_empty() {
        errs.push("cluster.etcd", "list at least one etcd client URL");
    }
    for (i, u) in c.etcd.iter().enumerate() {
        let ok = u
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
        if !ok {
            errs.push(
                format!("cluster.etcd[{i}]"),
                format!("{u:?} is not an etcd client URL like \"http://10.0.0.1:2379\" (TLS is not supported yet)"),
            );
        }
    }
    let node = match &c.node {
        Some(n) => n.clone(),
        None => hostname().unwrap_or_default(),
    };
    let node_ok = !node.is_empty()
        && node.len() <= 63
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !node_ok {
        errs.push(
            "cluster.node",
            format!(
                "{node:?} is not a node name (letters, digits, '-', '_', '.'; at most 63){}",
                if c.node.is_none() {
                    " (taken from the host name)"
                } else {
                    ""
                }
            ),
        );
    }
    let prefix = c.prefix.trim_end_matches('/').to_string();
    if !c.prefix.starts_with('/') || prefix.is_empty() || c.prefix.chars().any(char::is_whitespace)
    {
        errs.push(
            "cluster.prefix",
            format!(
                "{:?} must start with '/' and name a key prefix, e.g. \"/signpost\"",
                c.prefix
            ),
        );
    }
    let down_quorum = match c.down_quorum.as_str() {
        "majority" => Quorum::Majority,
        "any" => Quorum::Any,
        "all" => Quorum::All,
        other => {
            errs.push(
                "cluster.down_quorum",
                format!("unknown quorum {other:?} (expected majority, any or all)"),
            );
            Quorum::Majority
        }
    };
    (errs.list.len() == before).then(|| Cluster {
        etcd: c.etcd.clone(),
        node,
        prefix,
        down_quorum,
    })
}

/// The host name (the default node name).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    std::str::from_utf8(&buf[..end]).ok().map(str::to_string)
}

/// The default `capacity` of a region's endpoints.
pub const DEFAULT_CAPACITY: f64 = 100.0;

fn check_capacity(errs: &mut Errs<'_>, key: &str, c: f64) -> f64 {
    if c.is_finite() && c > 0.0 {
        c
    } else {
        errs.push(
            key,
            format!("{c} is not a capacity: a load greater than 0, in the unit of the check's load_header"),
        );
        DEFAULT_CAPACITY
    }
}

fn check_weight(errs: &mut Errs<'_>, key: &str, w: i64) -> u32 {
    match u32::try_from(w) {
        Ok(v) if v <= 1_000_000 => v,
        _ if w < 0 => {
            errs.push(key, format!("{w} is negative"));
            0
        }
        _ => {
            errs.push(key, format!("{w} is more than 1000000"));
            0
        }
    }
}

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

#[cfg(test)]
mod tests;
