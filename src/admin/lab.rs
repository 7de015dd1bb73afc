//! The failure lab of `signpost demo` (SPEC §6): its simulated load
//! balancers can be failed, recovered, loaded and slowed through the API.
//! Elsewhere these routes answer 404.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{AdminState, ApiError, Caller, ErrorBody, audit, bad_request, from_query};
use crate::lab::{Lab, LabError};

/// A lab call's region and action.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LabPath {
    /// The region whose simulated load balancers change.
    #[param(example = "eu-west")]
    pub region: String,
    /// `fail` (they answer 503), `recover` (200 again), `load` (they
    /// report `value` in their load header) or `slow` (they answer after
    /// `delay`).
    #[param(example = "fail")]
    pub action: String,
}

/// The query of a lab call.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LabParams {
    /// For `load`, required: the load to report (a number >= 0).
    #[param(value_type = Option<f64>, minimum = 0.0)]
    pub value: Option<String>,
    /// For `slow`, required: how long to wait before answering, up to
    /// `60s` (`50ms`; `0` to undo).
    #[param(value_type = Option<String>, example = "50ms")]
    pub delay: Option<String>,
}

/// `GET /v1/lab`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabState {
    /// Each simulated region.
    pub regions: Vec<LabRegion>,
}

/// One simulated region.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabRegion {
    /// Name.
    pub region: String,
    /// Its load balancers answer 503.
    pub failing: bool,
    /// The load they report.
    pub load: f64,
    /// How long they wait before answering.
    pub delay_ms: u64,
}

/// What a lab call changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LabChanged {
    /// `fail` or `recover`.
    Failing {
        /// Region.
        region: String,
        /// Failing now.
        failing: bool,
    },
    /// `load`.
    Load {
        /// Region.
        region: String,
        /// The load reported now.
        load: f64,
    },
    /// `slow`.
    Delay {
        /// Region.
        region: String,
        /// The delay now.
        delay_ms: u64,
    },
}

fn lab_of(s: &AdminState) -> Result<&Arc<Lab>, ApiError> {
    s.lab.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "the failure lab runs only under `signpost demo`".into(),
        )
    })
}

/// The lab's regions.
///
/// The simulated regions of `signpost demo` and what is done to them.
#[utoipa::path(
    get,
    path = "/v1/lab",
    tag = "lab",
    responses(
        (status = 200, description = "The lab's regions", body = LabState),
        (status = 404, description = "Not running `signpost demo`", body = ErrorBody),
    )
)]
pub(super) async fn lab_state(State(s): State<AdminState>) -> Result<Json<LabState>, ApiError> {
    let lab = lab_of(&s)?;
    let regions = lab
        .state()
        .await
        .into_iter()
        .map(|(region, failing, load, delay_ms)| LabRegion {
            region,
            failing,
            load,
            delay_ms,
        })
        .collect();
    Ok(Json(LabState { regions }))
}

/// Changes a lab region.
///
/// Fails, recovers, loads or slows a region's simulated load balancers
/// (`signpost demo` only). Audited as `lab-<action>`.
#[utoipa::path(
    post,
    path = "/v1/lab/{region}/{action}",
    tag = "lab",
    params(LabPath, LabParams),
    responses(
        (status = 200, description = "What changed", body = LabChanged),
        (status = 400, description = "A missing or bad `value` or `delay`, or a parameter \
            `fail` and `recover` do not take", body = ErrorBody),
        (status = 404, description = "Not running `signpost demo`, no such region in the \
            lab, or no such action", body = ErrorBody),
        (status = 500, description = "The lab could not apply it", body = ErrorBody),
    )
)]
pub(super) async fn lab_action(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<LabPath>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<LabChanged>, ApiError> {
    let r = lab_set(&s, &p.region, &p.action, &q).await;
    let outcome = r.as_ref().map(|_| None);
    audit(
        &s,
        &caller,
        &format!("lab-{}", p.action),
        format!("region {}", p.region),
        None,
        outcome,
    )
    .await;
    r
}

/// `fail` and `recover` take no parameter; `load` and `slow` read theirs
/// and ignore others.
async fn lab_set(
    s: &AdminState,
    region: &str,
    action: &str,
    q: &HashMap<String, String>,
) -> Result<Json<LabChanged>, ApiError> {
    let lab = lab_of(s)?;
    let p: LabParams = from_query(q)?;
    let lab_err = |e: LabError| match e {
        e @ LabError::UnknownRegion(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        e => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let region_name = region.to_string();
    match action {
        "load" => {
            let v = p
                .value
                .ok_or_else(|| bad_request("value= is required (a load >= 0)"))?;
            let load = v
                .parse::<f64>()
                .ok()
                .filter(|l| l.is_finite() && *l >= 0.0)
                .ok_or_else(|| bad_request(format!("value={v:?} is not a load (a number >= 0)")))?;
            lab.set_load(region, load).await.map_err(lab_err)?;
            return Ok(Json(LabChanged::Load {
                region: region_name,
                load,
            }));
        }
        "slow" => {
            let v = p
                .delay
                .ok_or_else(|| bad_request("delay= is required (e.g. 50ms; 0 to undo)"))?;
            let delay = if v.trim() == "0" {
                Duration::ZERO
            } else {
                humantime::parse_duration(&v)
                    .ok()
                    .filter(|d| *d <= Duration::from_secs(60))
                    .ok_or_else(|| {
                        bad_request(format!(
                            "delay={v:?} is not a duration up to 60s (e.g. 50ms)"
                        ))
                    })?
            };
            lab.set_delay(region, delay).await.map_err(lab_err)?;
            return Ok(Json(LabChanged::Delay {
                region: region_name,
                delay_ms: delay.as_millis() as u64,
            }));
        }
        _ => {}
    }
    let fail = match action {
        "fail" => true,
        "recover" => false,
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("unknown lab action {other:?} (fail, recover, load or slow)"),
            ));
        }
    };
    if let Some(k) = q.keys().next() {
        return Err(bad_request(format!("unknown parameter {k:?}")));
    }
    lab.set_failing(region, fail).await.map_err(lab_err)?;
    Ok(Json(LabChanged::Failing {
        region: region_name,
        failing: fail,
    }))
}
