//! Every metric signpost exports, declared in one place
//! (`signpost_<subsystem>_<name>`).
//!
//! Answer-path counters are per worker and single-writer, so counting a
//! query is a plain load and store on a cache line no other thread writes;
//! a [`Collector`] sums them at scrape time. Control-plane metrics (probe
//! latency, transitions, endpoint state) use prometheus-client's families.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

const CHUNK: usize = 256;
const CHUNKS: usize = 256;
/// Most (service, region) pairs counted separately; more share the last slot.
pub const MAX_ANSWER_SLOTS: usize = CHUNK * CHUNKS;

/// Transport of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp = 0,
    /// TCP.
    Tcp = 1,
}

/// Counters of one worker (or one shared pool, when `shared`).
#[derive(Debug)]
pub struct WorkerStats {
    shared: bool,
    queries: [AtomicU64; 2],
    rcodes: [AtomicU64; 17],
    truncated: AtomicU64,
    /// Signatures held in this worker's cache of on-demand signatures.
    sig_cached: AtomicU64,
    dropped: AtomicU64,
    /// Responses over a rate limit: [dropped, slipped].
    rrl: [AtomicU64; 2],
    /// Frames through AF_XDP: [received, sent].
    xdp: [AtomicU64; 2],
    /// The AF_XDP socket's own statistics, as last read: see [`XDP_LOST`].
    xdp_lost: [AtomicU64; 4],
    answers: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl WorkerStats {
    fn new(shared: bool) -> WorkerStats {
        WorkerStats {
            shared,
            queries: Default::default(),
            rcodes: Default::default(),
            truncated: AtomicU64::new(0),
            sig_cached: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            rrl: Default::default(),
            xdp: Default::default(),
            xdp_lost: Default::default(),
            answers: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
        }
    }

    #[inline]
    fn inc(&self, c: &AtomicU64) {
        if self.shared {
            c.fetch_add(1, Ordering::Relaxed);
        } else {
            // Single writer: no locked read-modify-write needed.
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    /// Counts a query answered with `rcode` (extended rcodes up to 16).
    #[inline]
    pub fn query(&self, t: Transport, rcode: u16) {
        self.inc(&self.queries[t as usize]);
        self.inc(&self.rcodes[(rcode as usize).min(16)]);
    }

    /// Counts a truncated UDP response.
    #[inline]
    pub fn truncated(&self) {
        self.inc(&self.truncated);
    }

    /// How many signatures this worker's on-demand cache holds.
    #[inline]
    pub fn set_sig_cached(&self, n: usize) {
        self.sig_cached.store(n as u64, Ordering::Relaxed);
    }

    /// Counts a packet dropped without reply.
    #[inline]
    pub fn dropped(&self) {
        self.inc(&self.dropped);
    }

    /// Counts a response over a rate limit: dropped, or sent truncated.
    #[inline]
    pub fn rate_limited(&self, slipped: bool) {
        self.inc(&self.rrl[usize::from(slipped)]);
    }

    /// Counts frames received (`sent` false) or sent through AF_XDP.
    #[inline]
    pub fn xdp(&self, sent: bool, n: u64) {
        let c = &self.xdp[usize::from(sent)];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Records an AF_XDP socket's statistics (totals since it was made),
    /// in the order of [`XDP_LOST`].
    pub fn set_xdp_lost(&self, v: [u64; 4]) {
        for (c, v) in self.xdp_lost.iter().zip(v) {
            c.store(v, Ordering::Relaxed);
        }
    }

    /// Counts an answer from a (service, region) slot.
    #[inline]
    pub fn answer(&self, slot: u32) {
        let slot = (slot as usize).min(MAX_ANSWER_SLOTS - 1);
        let chunk = self.answers[slot / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| AtomicU64::new(0)).collect());
        self.inc(&chunk[slot % CHUNK]);
    }

    fn answer_count(&self, slot: usize) -> u64 {
        self.answers[slot / CHUNK]
            .get()
            .map_or(0, |c| c[slot % CHUNK].load(Ordering::Relaxed))
    }
}

/// Why frames were lost on an AF_XDP socket (`XDP_STATISTICS`):
/// `rx_dropped` (no room or invalid), `rx_ring_full` (the worker fell
/// behind), `rx_fill_empty` (no free frame to receive into), `tx_invalid`
/// (a bad TX descriptor: a bug).
pub const XDP_LOST: [&str; 4] = ["rx_dropped", "rx_ring_full", "rx_fill_empty", "tx_invalid"];

/// Labels of per-endpoint metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Region name.
    pub region: String,
    /// Endpoint address.
    pub address: String,
}

/// Labels of probe metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeLabels {
    /// Address probed.
    pub address: String,
    /// Check profile name, as configured.
    pub check: String,
}

/// Labels of health transitions.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// Address probed.
    pub address: String,
    /// "up" or "down".
    pub to: String,
}

/// Labels of reloads.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// "ok" or "error".
    pub result: String,
}

#[derive(Debug, Default)]
struct Slots {
    index: HashMap<(String, String), u32>,
    names: Vec<(String, String)>,
}

#[derive(Debug, Default)]
struct Pool {
    workers: Mutex<Vec<Arc<WorkerStats>>>,
    slots: Mutex<Slots>,
}

const RCODE_NAMES: [&str; 17] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
    "BADVERS",
];

impl Collector for Pool {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let workers = self.workers.lock().map(|w| w.clone()).unwrap_or_default();
        let sum = |f: &dyn Fn(&WorkerStats) -> u64| workers.iter().map(|w| f(w)).sum::<u64>();

        let mut m = encoder.encode_descriptor(
            "signpost_dns_queries",
            "DNS queries answered, by transport",
            None,
            MetricType::Counter,
        )?;
        for (i, t) in ["udp", "tcp"].iter().enumerate() {
            let v = sum(&|w| w.queries[i].load(Ordering::Relaxed));
            ConstCounter::new(v).encode(m.encode_family(&[("transport", *t)])?)?;
        }

        let mut m = encoder.encode_descriptor(
            "signpost_dns_responses",
            "DNS responses, by response code",
            None,
            MetricType::Counter,
        )?;
        for (i, name) in RCODE_NAMES.iter().enumerate() {
            let v = sum(&|w| w.rcodes[i].load(Ordering::Relaxed));
            if v > 0 || i <= 5 {
                ConstCounter::new(v).encode(m.encode_family(&[("rcode", *name)])?)?;
            }
        }

        let v = sum(&|w| w.sig_cached.load(Ordering::Relaxed));
        let m = encoder.encode_descriptor(
            "signpost_dnssec_cache_signatures",
            "signatures made on first use and held in the answer workers' bounded caches",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(v as i64).encode(m)?;

        let v = sum(&|w| w.truncated.load(Ordering::Relaxed));
        let m = encoder.encode_descriptor(
            "signpost_dns_truncated",
            "UDP responses sent truncated (TC)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(v).encode(m)?;

        let v = sum(&|w| w.dropped.load(Ordering::Relaxed));
        let m = encoder.encode_descriptor(
            "signpost_dns_dropped",
            "packets dropped without a reply (too short, or not a query)",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(v).encode(m)?;

        let mut m = encoder.encode_descriptor(
            "signpost_dns_rrl_limited",
            "UDP responses over a [server.rrl] limit: dropped, or sent truncated (slipped)",
            None,
            MetricType::Counter,
        )?;
        for (i, action) in ["dropped", "slipped"].iter().enumerate() {
            let v = sum(&|w| w.rrl[i].load(Ordering::Relaxed));
            ConstCounter::new(v).encode(m.encode_family(&[("action", *action)])?)?;
        }

        let mut m = encoder.encode_descriptor(
            "signpost_xdp_packets",
            "UDP frames through AF_XDP ([server.xdp]), by direction: rx (queries taken from the interface), tx (answers sent)",
            None,
            MetricType::Counter,
        )?;
        for (i, dir) in ["rx", "tx"].iter().enumerate() {
            let v = sum(&|w| w.xdp[i].load(Ordering::Relaxed));
            ConstCounter::new(v).encode(m.encode_family(&[("direction", *dir)])?)?;
        }

        let mut m = encoder.encode_descriptor(
            "signpost_xdp_lost",
            "frames lost on AF_XDP sockets, by reason, as the kernel counts them (read every second): rx_dropped, rx_ring_full (the worker fell behind), rx_fill_empty (no free frame), tx_invalid",
            None,
            MetricType::Counter,
        )?;
        for (i, reason) in XDP_LOST.iter().enumerate() {
            let v = sum(&|w| w.xdp_lost[i].load(Ordering::Relaxed));
            ConstCounter::new(v).encode(m.encode_family(&[("reason", *reason)])?)?;
        }

        let names = self
            .slots
            .lock()
            .map(|s| s.names.clone())
            .unwrap_or_default();
        let mut m = encoder.encode_descriptor(
            "signpost_answers",
            "service answers, by the region answered first",
            None,
            MetricType::Counter,
        )?;
        for (i, (service, region)) in names.iter().enumerate() {
            let v = sum(&|w| w.answer_count(i));
            ConstCounter::new(v).encode(
                m.encode_family(&[("service", service.as_str()), ("region", region.as_str())])?,
            )?;
        }
        Ok(())
    }
}

/// All metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pool: Arc<Pool>,
    /// 1 if the endpoint is up, by region and address.
    pub endpoint_up: Family<EndpointLabels, Gauge>,
    /// 1 if the endpoint is drained.
    pub endpoint_drained: Family<EndpointLabels, Gauge>,
    /// Probe latency.
    pub probe_latency: Family<ProbeLabels, Histogram>,
    /// Probe outcomes.
    pub probes: Family<ProbeResultLabels, Counter>,
    /// Health state changes.
    pub transitions: Family<TransitionLabels, Counter>,
    /// Configuration reloads.
    pub reloads: Family<ResultLabels, Counter>,
    /// Snapshot generation published.
    pub snapshot_generation: Gauge,
    /// GeoIP database files that failed to load on reload or on change.
    pub geoip_reload_failures: Counter,
    /// Geo services still waiting for their ECS scope map.
    pub geoip_scope_maps_pending: Gauge,
    /// Build time of the GeoIP database being served.
    pub geoip_build_timestamp: Gauge,
    /// 1 while etcd is reachable (clusters).
    pub cluster_connected: Gauge,
    /// Live nodes in the cluster, this one included.
    pub cluster_nodes: Gauge,
    /// Live nodes that answer differently from this one (clusters).
    pub cluster_diverged: Gauge,
    /// Writes of the `[server] state` file that failed.
    pub state_write_errors: Counter,
    /// Per endpoint, how many live nodes see it down (clusters).
    pub endpoint_down_nodes: Family<EndpointLabels, Gauge>,
    /// Probes that could not run for a local reason (not counted against
    /// the endpoint).
    pub probe_local_errors: Counter,
    /// Load reported by each endpoint's load balancer.
    pub endpoint_load: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    /// Smoothed probe latency of each endpoint.
    pub endpoint_latency: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    /// Share of a shedding region's clients sent to the next region.
    pub region_shed_ratio: Family<RegionLabels, Gauge<f64, AtomicU64>>,
    /// A region's dial: the share of its clients it keeps (1: none).
    pub region_dial: Family<RegionLabels, Gauge<f64, AtomicU64>>,
    /// Open DNS TCP connections.
    pub tcp_open: Gauge,
    /// DNS TCP connections refused or closed to make room, by reason.
    pub tcp_refused: Family<ReasonLabels, Counter>,
    /// RRSIGs made, at snapshot builds and on first use.
    pub dnssec_signatures_made: Counter,
    /// Per signed zone: when the signatures served expire (Unix seconds).
    pub dnssec_expiration: Arc<Mutex<Vec<(String, i64)>>>,
    /// Zone transfers served, by zone and result.
    pub xfr_out: Family<ZoneResultLabels, Counter>,
    /// Zone transfers from primaries, by zone and result.
    pub xfr_in: Family<ZoneResultLabels, Counter>,
    /// NOTIFYs sent to secondaries, by zone and result.
    pub notify_sent: Family<ZoneResultLabels, Counter>,
    /// NOTIFYs accepted from primaries, by zone.
    pub notify_received: Family<ZoneResultLabels, Counter>,
    /// Webhook delivery attempts, by webhook and result.
    pub webhook_deliveries: Family<WebhookResultLabels, Counter>,
    /// Webhook events given up, by webhook and reason.
    pub webhook_dropped: Family<WebhookDropLabels, Counter>,
    /// Webhook events waiting, by webhook.
    pub webhook_queued: Family<WebhookLabels, Gauge>,
}

/// Labels of a webhook: its place in `[[notify.webhook]]` and its host
/// (never the rest of the URL, which may hold a token, nor the secret).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// Index in the configuration, from 0.
    pub webhook: String,
    /// The URL's host and port.
    pub host: String,
}

/// Labels of webhook delivery attempts.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookResultLabels {
    /// Index in the configuration, from 0.
    pub webhook: String,
    /// The URL's host and port.
    pub host: String,
    /// "ok" (2xx) or "failed" (another status, no connection, timeout).
    pub result: String,
}

/// Labels of webhook events given up.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookDropLabels {
    /// Index in the configuration, from 0.
    pub webhook: String,
    /// The URL's host and port.
    pub host: String,
    /// "full" (the queue made room for a newer one) or "expired" (not
    /// delivered within an hour).
    pub reason: String,
}

/// Labels of per-zone outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneResultLabels {
    /// The zone.
    pub zone: String,
    /// What happened.
    pub result: String,
}

/// Per signed zone, the expiration of its signatures and the seconds
/// left to it, computed at scrape time (for alerts).
#[derive(Debug)]
struct ExpiryCollector(Arc<Mutex<Vec<(String, i64)>>>);

impl Collector for ExpiryCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let zones = self.0.lock().map(|z| z.clone()).unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut m = encoder.encode_descriptor(
            "signpost_dnssec_signature_expiration_timestamp_seconds",
            "per signed zone, when the signatures being served expire (Unix seconds); they are re-made when refresh remains",
            None,
            MetricType::Gauge,
        )?;
        for (zone, exp) in &zones {
            ConstGauge::new(*exp).encode(m.encode_family(&[("zone", zone.as_str())])?)?;
        }
        let mut m = encoder.encode_descriptor(
            "signpost_dnssec_signature_expiry_seconds",
            "per signed zone, seconds until the signatures being served expire (alert well before 0)",
            None,
            MetricType::Gauge,
        )?;
        for (zone, exp) in &zones {
            ConstGauge::new(exp - now).encode(m.encode_family(&[("zone", zone.as_str())])?)?;
        }
        Ok(())
    }
}

/// Labels of refusals.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: String,
}

/// Labels of `signpost_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// The crate version.
    pub version: String,
}

/// Labels of per-region metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    /// Region name.
    pub region: String,
}

/// Labels of probe outcomes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProbeResultLabels {
    /// Address probed.
    pub address: String,
    /// "pass" or "fail".
    pub result: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates the registry with every metric.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            pool: Arc::new(Pool::default()),
            endpoint_up: Family::default(),
            endpoint_drained: Family::default(),
            probe_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            }),
            probes: Family::default(),
            transitions: Family::default(),
            reloads: Family::default(),
            snapshot_generation: Gauge::default(),
            geoip_reload_failures: Counter::default(),
            geoip_scope_maps_pending: Gauge::default(),
            geoip_build_timestamp: Gauge::default(),
            cluster_connected: Gauge::default(),
            cluster_nodes: Gauge::default(),
            cluster_diverged: Gauge::default(),
            state_write_errors: Counter::default(),
            endpoint_down_nodes: Family::default(),
            probe_local_errors: Counter::default(),
            endpoint_load: Family::default(),
            endpoint_latency: Family::default(),
            region_shed_ratio: Family::default(),
            region_dial: Family::default(),
            tcp_open: Gauge::default(),
            tcp_refused: Family::default(),
            dnssec_signatures_made: Counter::default(),
            dnssec_expiration: Arc::default(),
            xfr_out: Family::default(),
            xfr_in: Family::default(),
            notify_sent: Family::default(),
            notify_received: Family::default(),
            webhook_deliveries: Family::default(),
            webhook_dropped: Family::default(),
            webhook_queued: Family::default(),
        };
        // the DNS answer counters, summed over the workers at scrape time
        m.registry.register_collector(Box::new(m.pool.clone()));
        // in this order, the order of the exposition
        m.register_health();
        m.register_process();
        m.register_geoip();
        m.register_cluster();
        m.register_probe_readings();
        m.register_dns_tcp();
        m.register_dnssec();
        m.register_xfr();
        m.register_webhooks();
        m
    }

    /// Webhook notifications (SPEC §11).
    fn register_webhooks(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_webhook_deliveries",
            "webhook delivery attempts, by webhook (index in the configuration, host) and result: ok (2xx), failed (another status, no connection, timeout; retried)",
            self.webhook_deliveries.clone(),
        );
        r.register(
            "signpost_webhook_dropped",
            "webhook events given up, by webhook and reason: full (the queue dropped its oldest for a newer one), expired (not delivered within an hour)",
            self.webhook_dropped.clone(),
        );
        r.register(
            "signpost_webhook_queued",
            "webhook events waiting to be delivered, by webhook",
            self.webhook_queued.clone(),
        );
    }

    /// Zone transfers and NOTIFY (SPEC §10).
    fn register_xfr(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_xfr_out",
            "zone transfers (AXFR/IXFR) asked of this server, by zone and result: full, up_to_date, refused, notauth, formerr",
            self.xfr_out.clone(),
        );
        r.register(
            "signpost_xfr_in",
            "zone transfers from primaries, by zone and result: ok, up_to_date, failed, rejected (broke a rule; the previous copy serves)",
            self.xfr_in.clone(),
        );
        r.register(
            "signpost_xfr_notify_sent",
            "NOTIFYs sent to secondaries, by zone and result: acknowledged, failed (no acknowledgement in an hour)",
            self.notify_sent.clone(),
        );
        r.register(
            "signpost_xfr_notify_received",
            "NOTIFYs accepted from a zone's primary, by zone",
            self.notify_received.clone(),
        );
    }

    /// Signing (SPEC §9).
    fn register_dnssec(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_dnssec_signatures_made",
            "RRSIGs made: when a snapshot is built, and on first use for names that exist only in a query or rare answer sets",
            self.dnssec_signatures_made.clone(),
        );
        r.register_collector(Box::new(ExpiryCollector(self.dnssec_expiration.clone())));
    }

    /// Endpoint state and the probes behind it.
    fn register_health(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_endpoint_up",
            "1 if the endpoint's health is up",
            self.endpoint_up.clone(),
        );
        r.register(
            "signpost_endpoint_drained",
            "1 if the endpoint or its region is drained",
            self.endpoint_drained.clone(),
        );
        r.register(
            "signpost_health_probe_duration_seconds",
            "health probe latency",
            self.probe_latency.clone(),
        );
        r.register(
            "signpost_health_probes",
            "health probes, by result",
            self.probes.clone(),
        );
        r.register(
            "signpost_health_transitions",
            "health state changes of probe targets",
            self.transitions.clone(),
        );
    }

    /// The process: reloads, version, start time, snapshot generation.
    fn register_process(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_config_reloads",
            "configuration reloads, by result",
            self.reloads.clone(),
        );
        for result in ["ok", "error"] {
            drop(self.reloads.get_or_create(&ResultLabels {
                result: result.into(),
            }));
        }
        let build_info = Family::<VersionLabels, Gauge>::default();
        r.register(
            "signpost_build_info",
            "1, labelled with the version of the running binary",
            build_info.clone(),
        );
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        let start_time = Gauge::<f64, AtomicU64>::default();
        r.register(
            "process_start_time_seconds",
            "start time of the process since the Unix epoch, in seconds",
            start_time.clone(),
        );
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        r.register(
            "signpost_snapshot_generation",
            "generation of the snapshot being served",
            self.snapshot_generation.clone(),
        );
    }

    /// The GeoIP database and the ECS scope maps made from it.
    fn register_geoip(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_geoip_reload_failures",
            "GeoIP database files that could not be loaded on reload or when they changed; the previous database keeps serving",
            self.geoip_reload_failures.clone(),
        );
        r.register(
            "signpost_geoip_scope_maps_pending",
            "geo services whose ECS scope map is still being computed (their scopes are narrower meanwhile)",
            self.geoip_scope_maps_pending.clone(),
        );
        r.register(
            "signpost_geoip_build_timestamp_seconds",
            "build time of the GeoIP database being served (Unix seconds)",
            self.geoip_build_timestamp.clone(),
        );
    }

    /// The cluster (etcd) and what its members see.
    fn register_cluster(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_cluster_connected",
            "1 while etcd is reachable; 0 while this node serves its last view of drains and its own health verdicts",
            self.cluster_connected.clone(),
        );
        r.register(
            "signpost_cluster_nodes",
            "live signpost nodes in the cluster, this one included",
            self.cluster_nodes.clone(),
        );
        r.register(
            "signpost_state_write_errors",
            "writes of the [server] state file that failed (the drain or undrain was refused with 503)",
            self.state_write_errors.clone(),
        );
        r.register(
            "signpost_cluster_diverged_nodes",
            "live nodes that answer differently from this one: another configuration, down_quorum or probe_source",
            self.cluster_diverged.clone(),
        );
        r.register(
            "signpost_endpoint_down_nodes",
            "how many live cluster nodes see the endpoint down",
            self.endpoint_down_nodes.clone(),
        );
    }

    /// What probes read beyond up and down (local failures, load,
    /// latency), and the shedding steering makes of load.
    fn register_probe_readings(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_health_probe_local_errors",
            "probes that could not run for a local reason (no file descriptors, no source address); not held against the endpoint",
            self.probe_local_errors.clone(),
        );
        r.register(
            "signpost_endpoint_load",
            "load reported by the endpoint's load balancer (its check's load_header); absent while unknown",
            self.endpoint_load.clone(),
        );
        r.register(
            "signpost_endpoint_latency_seconds",
            "smoothed latency of the endpoint's passing probes (EWMA, alpha 0.3)",
            self.endpoint_latency.clone(),
        );
        r.register(
            "signpost_region_shed_ratio",
            "share of a region's geo clients sent to the next region by its shed marks",
            self.region_shed_ratio.clone(),
        );
        r.register(
            "signpost_region_dial",
            "share of a region's clients its dial keeps (1: not dialled)",
            self.region_dial.clone(),
        );
    }

    /// DNS over TCP connections (the answer counters are the pool's).
    fn register_dns_tcp(&mut self) {
        let r = &mut self.registry;
        r.register(
            "signpost_dns_tcp_connections",
            "open DNS TCP connections",
            self.tcp_open.clone(),
        );
        r.register(
            "signpost_dns_tcp_refused",
            "DNS TCP connections refused (full: no idle one to close; per_source: that client's limit) or closed to make room (idle_closed)",
            self.tcp_refused.clone(),
        );
        // every reason exported from the start, at 0
        for reason in ["full", "per_source", "idle_closed"] {
            drop(self.tcp_refused.get_or_create(&ReasonLabels {
                reason: reason.into(),
            }));
        }
    }

    /// Counters for a new worker; `shared` when several threads write them.
    pub fn worker(&self, shared: bool) -> Arc<WorkerStats> {
        let w = Arc::new(WorkerStats::new(shared));
        if let Ok(mut list) = self.pool.workers.lock() {
            list.push(w.clone());
        }
        w
    }

    /// Answers so far by the region answered first, over all services
    /// (what the dashboard's share of answers is computed from).
    pub fn answers_by_region(&self) -> HashMap<String, u64> {
        let names = self
            .pool
            .slots
            .lock()
            .map(|s| s.names.clone())
            .unwrap_or_default();
        let workers = self
            .pool
            .workers
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default();
        let mut out: HashMap<String, u64> = HashMap::new();
        for (i, (_, region)) in names.iter().enumerate() {
            let v: u64 = workers.iter().map(|w| w.answer_count(i)).sum();
            *out.entry(region.clone()).or_default() += v;
        }
        out
    }

    /// The counter slot of a (service, region) pair; stable across reloads.
    pub fn answer_slot(&self, service: &str, region: &str) -> u32 {
        let Ok(mut s) = self.pool.slots.lock() else {
            return (MAX_ANSWER_SLOTS - 1) as u32;
        };
        let key = (service.to_string(), region.to_string());
        if let Some(&i) = s.index.get(&key) {
            return i;
        }
        let i = s.names.len().min(MAX_ANSWER_SLOTS - 1) as u32;
        if s.names.len() < MAX_ANSWER_SLOTS {
            s.names.push(key.clone());
        }
        s.index.insert(key, i);
        i
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!("metrics encoding failed: {e}");
            out.clear();
        }
        out
    }
}
