//! The configuration as written: serde structs with `deny_unknown_fields`
//! and the defaults of SPEC §3. Values are checked later, in `validate`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ConfigError;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    pub geoip: Option<RawGeoip>,
    #[serde(default)]
    pub zones: BTreeMap<String, RawZone>,
    #[serde(default)]
    pub checks: BTreeMap<String, RawCheck>,
    #[serde(default)]
    pub regions: BTreeMap<String, RawRegion>,
    #[serde(default)]
    pub services: BTreeMap<String, RawService>,
    pub cluster: Option<RawCluster>,
    #[serde(default)]
    pub tsig: BTreeMap<String, RawTsig>,
    pub notify: Option<RawNotify>,
}

/// `[notify]`: where events are sent (SPEC §11).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    #[serde(default)]
    pub webhook: Vec<RawWebhook>,
}

/// `[[notify.webhook]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    pub events: Option<Vec<String>>,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    #[serde(default = "default_webhook_timeout")]
    pub timeout: String,
    #[serde(default = "default_webhook_queue")]
    pub queue: i64,
}

fn default_webhook_timeout() -> String {
    "5s".to_string()
}

fn default_webhook_queue() -> i64 {
    1000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTsig {
    pub algorithm: String,
    pub secret: Option<String>,
    pub secret_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransfer {
    #[serde(default)]
    pub allow: Vec<String>,
    pub tsig: Option<String>,
    #[serde(default)]
    pub notify: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub etcd: Vec<String>,
    pub node: Option<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_quorum")]
    pub down_quorum: String,
}

fn default_prefix() -> String {
    "/signpost".to_string()
}

fn default_quorum() -> String {
    "majority".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    pub admin: Option<String>,
    #[serde(default)]
    pub workers: usize,
    pub admin_token: Option<String>,
    #[serde(default = "default_tcp_idle_timeout")]
    pub tcp_idle_timeout: String,
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    #[serde(default = "default_udp_batch_wait")]
    pub udp_batch_wait: String,
    pub state: Option<String>,
    pub probe_source: Option<String>,
    pub nsid: Option<String>,
    #[serde(default = "default_tcp_per_source")]
    pub tcp_per_source: usize,
    #[serde(default = "default_tcp_max_lifetime")]
    pub tcp_max_lifetime: String,
    #[serde(default = "default_tcp_max_queries")]
    pub tcp_max_queries: u32,
    pub rrl: Option<RawRrl>,
    pub xdp: Option<RawXdp>,
}

/// `[server.xdp]`: UDP through AF_XDP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawXdp {
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default)]
    pub queues: u32,
    #[serde(default = "default_xdp_mode")]
    pub mode: String,
}

fn default_xdp_mode() -> String {
    "native".to_string()
}

/// `[server.rrl]`: response rate limiting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRrl {
    #[serde(default = "default_rrl_rate")]
    pub responses_per_second: u32,
    pub errors_per_second: Option<u32>,
    #[serde(default = "default_rrl_window")]
    pub window: String,
    #[serde(default = "default_rrl_slip")]
    pub slip: u32,
    #[serde(default = "default_rrl_v4")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_rrl_v6")]
    pub ipv6_prefix: u8,
    #[serde(default)]
    pub exempt: Vec<String>,
}

fn default_rrl_rate() -> u32 {
    20
}

fn default_rrl_window() -> String {
    "15s".to_string()
}

fn default_rrl_slip() -> u32 {
    2
}

fn default_rrl_v4() -> u8 {
    24
}

fn default_rrl_v6() -> u8 {
    56
}

fn default_tcp_per_source() -> usize {
    32
}

fn default_tcp_max_lifetime() -> String {
    "2m".to_string()
}

fn default_tcp_max_queries() -> u32 {
    10_000
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            admin: None,
            workers: 0,
            admin_token: None,
            tcp_idle_timeout: default_tcp_idle_timeout(),
            tcp_max_connections: default_tcp_max_connections(),
            udp_batch_wait: default_udp_batch_wait(),
            state: None,
            probe_source: None,
            nsid: None,
            tcp_per_source: default_tcp_per_source(),
            tcp_max_lifetime: default_tcp_max_lifetime(),
            tcp_max_queries: default_tcp_max_queries(),
            rrl: None,
            xdp: None,
        }
    }
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:5353".to_string()]
}

fn default_tcp_idle_timeout() -> String {
    "10s".to_string()
}

fn default_tcp_max_connections() -> usize {
    1024
}

fn default_udp_batch_wait() -> String {
    "100us".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoip {
    pub database: String,
    #[serde(default = "default_watch")]
    pub watch: bool,
}

fn default_watch() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub file: Option<String>,
    pub primary: Option<String>,
    pub tsig: Option<String>,
    pub dnssec: Option<RawDnssec>,
    pub transfer: Option<RawTransfer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDnssec {
    pub keys: Vec<String>,
    pub denial: Option<String>,
    pub validity: Option<String>,
    pub refresh: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(rename = "type")]
    pub kind: String,
    pub port: i64,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect: Option<Vec<i64>>,
    pub body: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: String,
    #[serde(default = "default_timeout")]
    pub timeout: String,
    #[serde(default = "default_rise")]
    pub rise: u32,
    #[serde(default = "default_fall")]
    pub fall: u32,
    pub insecure: Option<bool>,
    pub load_header: Option<String>,
}

fn default_interval() -> String {
    "5s".to_string()
}

fn default_timeout() -> String {
    "2s".to_string()
}

fn default_rise() -> u32 {
    2
}

fn default_fall() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub location: RawLocation,
    #[serde(default = "default_weight")]
    pub weight: i64,
    pub check: Option<String>,
    pub endpoints: Vec<RawEndpoint>,
    pub capacity: Option<f64>,
    pub shed: Option<RawShed>,
    #[serde(default)]
    pub bias: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShed {
    pub low: f64,
    pub high: f64,
}

fn default_weight() -> i64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: i64,
    pub probe: Option<String>,
    pub capacity: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub regions: Vec<String>,
    #[serde(default = "default_policy")]
    pub policy: String,
    #[serde(default = "default_ttl")]
    pub ttl: i64,
    #[serde(default = "default_answers")]
    pub answers: i64,
    #[serde(default = "default_when_all_down")]
    pub when_all_down: String,
    pub map: Option<BTreeMap<String, Vec<String>>>,
    pub select: Option<String>,
    pub hash_prefix: Option<Vec<i64>>,
    #[serde(default)]
    pub min_healthy_regions: i64,
    #[serde(default)]
    pub fallback: Vec<String>,
}

fn default_policy() -> String {
    "geo".to_string()
}

fn default_ttl() -> i64 {
    30
}

fn default_answers() -> i64 {
    1
}

fn default_when_all_down() -> String {
    "all".to_string()
}

/// Parses TOML into the raw model; the error names the line, column and
/// key path.
pub fn parse(text: &str, file: &str) -> Result<RawConfig, ConfigError> {
    let de =
        toml::de::Deserializer::parse(text).map_err(|e| syntax(text, file, String::new(), &e))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = key_path(e.path());
        syntax(text, file, key, e.inner())
    })
}

/// The path as an operator writes it: `services."www.example.test.".ttl`.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&super::key_segment(key));
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn syntax(text: &str, file: &str, key: String, e: &toml::de::Error) -> ConfigError {
    let (line, column) = match e.span() {
        Some(span) => line_col(text, span.start),
        None => (1, 1),
    };
    ConfigError::Syntax {
        file: file.to_string(),
        line,
        column,
        key,
        message: e.message().trim().replace('\n', "; "),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}
