//! The operator's dashboard (SPEC §6): one page at the admin root, served
//! from the binary with its script inline and its map data vendored
//! (Natural Earth 1:110m land from `world-atlas`, assets/world-atlas), so
//! nothing is fetched from elsewhere at run time. It reads `/v1/status` and
//! `/v1/shares` and drains through the same API calls as `ctl`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::time::Instant;
use utoipa::ToSchema;

use super::AdminState;
use crate::metrics::Metrics;

const PAGE: &str = include_str!("../../assets/dashboard.html");
const LAND: &str = include_str!("../../assets/world-atlas/land-110m.json");

/// How far back the share of answers looks.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How often the answer counters are sampled.
const EVERY: Duration = Duration::from_secs(2);

/// Samples of the answer counters by region over the last [`WINDOW`].
#[derive(Debug, Default)]
pub struct Shares {
    samples: Mutex<VecDeque<(Instant, HashMap<String, u64>)>>,
}

impl Shares {
    /// Starts sampling `metrics` until the runtime stops.
    pub fn start(metrics: Arc<Metrics>) -> Arc<Shares> {
        let shares = Arc::new(Shares::default());
        let s = shares.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                s.record(Instant::now(), metrics.answers_by_region());
            }
        });
        shares
    }

    fn record(&self, at: Instant, totals: HashMap<String, u64>) {
        let Ok(mut q) = self.samples.lock() else {
            return;
        };
        q.push_back((at, totals));
        // keep one sample at least WINDOW old, to measure the whole window
        while q.len() > 2 && q.get(1).is_some_and(|(t, _)| at - *t >= WINDOW) {
            q.pop_front();
        }
    }

    /// Answers per region between the oldest sample in the window and now:
    /// (seconds covered, region -> answers).
    pub fn window(&self, now: HashMap<String, u64>) -> (f64, HashMap<String, u64>) {
        let Ok(q) = self.samples.lock() else {
            return (0.0, HashMap::new());
        };
        let Some((t0, first)) = q.front() else {
            return (0.0, HashMap::new());
        };
        let secs = t0.elapsed().as_secs_f64();
        let out = now
            .into_iter()
            .map(|(r, n)| {
                let before = first.get(&r).copied().unwrap_or(0);
                (r, n.saturating_sub(before))
            })
            .collect();
        (secs, out)
    }
}

/// The dashboard.
///
/// Regions on a world map by health and drain, endpoints with their last
/// probe, answer shares, drain buttons.
#[utoipa::path(
    get,
    path = "/",
    operation_id = "dashboard",
    tag = "dashboard",
    responses((status = 200, description = "The page, its script inline",
        content_type = "text/html; charset=utf-8", body = String)),
)]
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// The dashboard's world map.
///
/// Natural Earth 1:110m land as TopoJSON.
#[utoipa::path(
    get,
    path = "/dashboard/land-110m.json",
    operation_id = "dashboard_map",
    tag = "dashboard",
    responses((status = 200, description = "TopoJSON (cached for a day)",
        content_type = "application/json", body = Object)),
)]
pub async fn land() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        LAND,
    )
        .into_response()
}

/// `GET /v1/shares`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareReport {
    /// Seconds the counts cover (up to a minute).
    pub window_seconds: f64,
    /// Answers in that time, over all regions.
    pub answers: u64,
    /// By region name.
    pub regions: HashMap<String, RegionShare>,
}

/// One region's part of the answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegionShare {
    /// Answers that gave this region first.
    pub answers: u64,
    /// Their share of all answers (0 to 1, four decimals).
    pub share: f64,
}

/// Each region's share of the answers over the last minute.
///
/// By the region answered first, over all services.
#[utoipa::path(
    get,
    path = "/v1/shares",
    tag = "status",
    responses((status = 200, description = "Answers by region", body = ShareReport)),
)]
pub async fn shares(State(s): State<AdminState>) -> Json<ShareReport> {
    let (secs, counts) = s.shares.window(s.metrics.answers_by_region());
    let total: u64 = counts.values().sum();
    let regions = counts
        .into_iter()
        .map(|(r, n)| {
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            (
                r,
                RegionShare {
                    answers: n,
                    share: (share * 1e4).round() / 1e4,
                },
            )
        })
        .collect();
    Json(ShareReport {
        window_seconds: secs.round(),
        answers: total,
        regions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(v: &[(&str, u64)]) -> HashMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn the_window_counts_answers_since_its_oldest_sample() {
        let s = Shares::default();
        let t = Instant::now();
        s.record(t, totals(&[("eu", 10)]));
        s.record(
            t + Duration::from_secs(30),
            totals(&[("eu", 40), ("us", 5)]),
        );
        let (_, w) = s.window(totals(&[("eu", 100), ("us", 25)]));
        assert_eq!(w["eu"], 90);
        assert_eq!(w["us"], 25);
        // samples older than the window go, but one at its edge stays
        s.record(
            t + Duration::from_secs(70),
            totals(&[("eu", 50), ("us", 6)]),
        );
        s.record(
            t + Duration::from_secs(95),
            totals(&[("eu", 60), ("us", 7)]),
        );
        let (_, w) = s.window(totals(&[("eu", 100), ("us", 25)]));
        assert_eq!(w["eu"], 60, "from the sample at +30 s");
        assert_eq!(w["us"], 20);
    }
}
