//! The failure lab behind `signpost demo`: one simulated regional load
//! balancer per endpoint, real HTTP servers on loopback addresses that the
//! health checks probe like any other. `fail` makes a region's servers
//! answer 503 (HTTP checks) or stop listening (TCP checks); `recover`
//! undoes it. Each server also reports its load in an `X-Load` header
//! (`load` sets it, like a real load balancer's connection count) and can
//! be made slow (`slow`), for the load- and latency-aware policies.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::config::{CheckKind, Config};

/// The lab could not start.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A simulated load balancer could not bind its address.
    #[error("lab load balancer of region {region} cannot listen on {addr}: {source}")]
    Bind {
        /// Region.
        region: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// No such region.
    #[error("unknown region {0:?}")]
    UnknownRegion(String),
}

struct Lb {
    addr: SocketAddr,
    kind: CheckKind,
    task: Option<JoinHandle<()>>,
}

/// The header the lab's load balancers report their load in.
pub const LOAD_HEADER: &str = "X-Load";
/// The load they report until told otherwise.
pub const DEFAULT_LOAD: f64 = 20.0;

struct RegionLab {
    failing: Arc<AtomicBool>,
    knobs: Knobs,
    health_path: String,
    lbs: Vec<Lb>,
}

/// The running lab.
pub struct Lab {
    regions: Mutex<BTreeMap<String, RegionLab>>,
}

/// What `load` and `slow` set, shared by a region's servers.
#[derive(Clone)]
struct Knobs {
    /// f64 bits.
    load: Arc<AtomicU64>,
    /// Milliseconds.
    delay_ms: Arc<AtomicU64>,
}

impl Knobs {
    fn new() -> Knobs {
        Knobs {
            load: Arc::new(AtomicU64::new(DEFAULT_LOAD.to_bits())),
            delay_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[derive(Clone)]
struct LbState {
    region: String,
    health_path: String,
    failing: Arc<AtomicBool>,
    knobs: Knobs,
}

impl Lab {
    /// Starts a server for every endpoint probe address of every region
    /// with an http or tcp check.
    pub async fn start(config: &Config) -> Result<Lab, LabError> {
        let mut regions = BTreeMap::new();
        let mut bound: HashMap<SocketAddr, String> = HashMap::new();
        for r in &config.regions {
            let Some(check) = r.check.as_ref().and_then(|c| config.checks.get(c)) else {
                continue;
            };
            if check.kind == CheckKind::Https {
                tracing::warn!(
                    "lab: region {} uses an https check; the lab serves plain http only",
                    r.name
                );
                continue;
            }
            let failing = Arc::new(AtomicBool::new(false));
            let knobs = Knobs::new();
            let mut lbs = Vec::new();
            for e in &r.endpoints {
                let addr = SocketAddr::new(e.probe, check.port);
                if bound.contains_key(&addr) {
                    continue;
                }
                let state = LbState {
                    region: r.name.clone(),
                    health_path: check.path.clone(),
                    failing: failing.clone(),
                    knobs: knobs.clone(),
                };
                let task = serve_lb(addr, state)
                    .await
                    .map_err(|source| LabError::Bind {
                        region: r.name.clone(),
                        addr,
                        source,
                    })?;
                tracing::info!("lab load balancer of {} listening on {addr}", r.name);
                bound.insert(addr, r.name.clone());
                lbs.push(Lb {
                    addr,
                    kind: check.kind,
                    task: Some(task),
                });
            }
            regions.insert(
                r.name.clone(),
                RegionLab {
                    failing,
                    knobs,
                    health_path: check.path.clone(),
                    lbs,
                },
            );
        }
        Ok(Lab {
            regions: Mutex::new(regions),
        })
    }

    /// Makes a region's load balancers fail (`true`) or recover.
    pub async fn set_failing(&self, region: &str, fail: bool) -> Result<(), LabError> {
        let mut regions = self.regions.lock().await;
        let r = regions
            .get_mut(region)
            .ok_or_else(|| LabError::UnknownRegion(region.to_string()))?;
        r.failing.store(fail, Ordering::SeqCst);
        for lb in &mut r.lbs {
            if lb.kind != CheckKind::Tcp {
                continue;
            }
            // a TCP check sees a failure only when nothing listens
            if fail {
                if let Some(t) = lb.task.take() {
                    t.abort();
                }
            } else if lb.task.is_none() {
                let state = LbState {
                    region: region.to_string(),
                    health_path: r.health_path.clone(),
                    failing: r.failing.clone(),
                    knobs: r.knobs.clone(),
                };
                let task = serve_lb(lb.addr, state)
                    .await
                    .map_err(|source| LabError::Bind {
                        region: region.to_string(),
                        addr: lb.addr,
                        source,
                    })?;
                lb.task = Some(task);
            }
        }
        tracing::info!(
            "lab: region {region} {}",
            if fail { "fails" } else { "recovered" }
        );
        Ok(())
    }

    /// Sets the load a region's load balancers report.
    pub async fn set_load(&self, region: &str, load: f64) -> Result<(), LabError> {
        let regions = self.regions.lock().await;
        let r = regions
            .get(region)
            .ok_or_else(|| LabError::UnknownRegion(region.to_string()))?;
        r.knobs.load.store(load.to_bits(), Ordering::SeqCst);
        tracing::info!("lab: region {region} reports load {load}");
        Ok(())
    }

    /// Delays every answer of a region's load balancers.
    pub async fn set_delay(&self, region: &str, delay: Duration) -> Result<(), LabError> {
        let regions = self.regions.lock().await;
        let r = regions
            .get(region)
            .ok_or_else(|| LabError::UnknownRegion(region.to_string()))?;
        r.knobs
            .delay_ms
            .store(delay.as_millis().min(60_000) as u64, Ordering::SeqCst);
        tracing::info!("lab: region {region} answers after {delay:?}");
        Ok(())
    }

    /// Each region: failing, reported load, added delay in ms.
    pub async fn state(&self) -> Vec<(String, bool, f64, u64)> {
        let regions = self.regions.lock().await;
        regions
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.failing.load(Ordering::SeqCst),
                    f64::from_bits(v.knobs.load.load(Ordering::SeqCst)),
                    v.knobs.delay_ms.load(Ordering::SeqCst),
                )
            })
            .collect()
    }

    /// Stops every server.
    pub async fn stop(&self) {
        let mut regions = self.regions.lock().await;
        for r in regions.values_mut() {
            for lb in &mut r.lbs {
                if let Some(t) = lb.task.take() {
                    t.abort();
                }
            }
        }
    }
}

async fn serve_lb(addr: SocketAddr, state: LbState) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    let app = Router::new().fallback(handle).with_state(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("lab load balancer on {addr}: {e}");
        }
    }))
}

async fn handle(State(s): State<LbState>, uri: Uri) -> Response {
    let delay = s.knobs.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let load = f64::from_bits(s.knobs.load.load(Ordering::SeqCst));
    let mut r = answer(&s, &uri).into_response();
    if let Ok(v) = HeaderValue::from_str(&load.to_string()) {
        r.headers_mut().insert(LOAD_HEADER, v);
    }
    r
}

fn answer(s: &LbState, uri: &Uri) -> (StatusCode, String) {
    let failing = s.failing.load(Ordering::SeqCst);
    if uri.path() == s.health_path {
        if failing {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{} failing (signpost lab)\n", s.region),
            )
        } else {
            (StatusCode::OK, format!("ok {}\n", s.region))
        }
    } else if failing {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} is failing (signpost lab)\n", s.region),
        )
    } else {
        (
            StatusCode::OK,
            format!("hello from {} (signpost lab load balancer)\n", s.region),
        )
    }
}
