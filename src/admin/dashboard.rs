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
use serde_json::json;
use tokio::time::Instant;

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

/// `GET /`: the page.
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

/// `GET /dashboard/land-110m.json`: the map.
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

/// `GET /v1/shares`: each region's share of the answers (by the region
/// answered first, over all services) over the last minute.
pub async fn shares(State(s): State<AdminState>) -> Response {
    let (secs, counts) = s.shares.window(s.metrics.answers_by_region());
    let total: u64 = counts.values().sum();
    let regions: serde_json::Map<String, serde_json::Value> = counts
        .into_iter()
        .map(|(r, n)| {
            let share = if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            };
            (
                r,
                json!({ "answers": n, "share": (share * 1e4).round() / 1e4 }),
            )
        })
        .collect();
    Json(json!({
        "window_seconds": secs.round(),
        "answers": total,
        "regions": regions,
    }))
    .into_response()
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
