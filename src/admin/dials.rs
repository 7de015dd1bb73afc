//! Dials (SPEC §11): `POST` and `DELETE` on `/v1/regions/{region}/dial`.
//! A dial keeps a share of the clients that would get a region and sends
//! the rest to their next region, chosen by hashing their network. It
//! goes to the control loop like a drain (stored in the state file or
//! etcd), never trips the safety rule (the region stays usable), and is
//! audited with its outcome.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::drains::{RegionPath, parse_for};
use super::{AdminState, ApiError, Caller, ErrorBody, Params, ask, audit, bad_request};
use crate::control::Command;
use crate::view::DrainKey;

/// The query of a dial.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DialParams {
    /// The share of the region's clients it keeps, from 0 (all go to
    /// their next region; the region is not drained) to 1 (no dial).
    #[param(value_type = f64, minimum = 0.0, maximum = 1.0, example = 0.25)]
    pub value: Option<String>,
    /// How long the dial lasts (`30m`; more than 0, at most a year);
    /// without it, until undone.
    #[serde(rename = "for")]
    #[param(value_type = Option<String>, example = "30m")]
    pub duration: Option<String>,
}

/// A region's dial as set (or undone).
#[derive(Debug, Serialize, ToSchema)]
pub struct Dialled {
    /// The region.
    pub region: String,
    /// The share of its clients it keeps now (1: not dialled).
    pub value: f64,
    /// How long, as written back (`30m`); null: until undone.
    #[serde(rename = "for")]
    pub duration: Option<String>,
}

/// Dials a region.
///
/// Keeps the share `value` of the clients that would get the region and
/// sends the rest to the next region in their order, choosing which by
/// hashing their network (the same networks move first as the value goes
/// down, and stay while it is unchanged). Answers it touches carry an ECS
/// scope of at least the service's hash prefix. `value=1` undoes it. In a
/// cluster, for every node. Audited.
#[utoipa::path(
    post,
    path = "/v1/regions/{region}/dial",
    tag = "operations",
    params(RegionPath, DialParams),
    responses(
        (status = 200, description = "Dialled (or, with value 1, undone)", body = Dialled),
        (status = 400, description = "No value, a value not between 0 and 1, a bad `for`, \
            or an unknown parameter", body = ErrorBody),
        (status = 404, description = "No such region", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, the state file could \
            not be written, or in a cluster etcd is unreachable (nothing changed)",
            body = ErrorBody),
    )
)]
pub(super) async fn dial_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<RegionPath>,
    Params(q): Params<DialParams>,
) -> Result<Json<Dialled>, ApiError> {
    let value = match q.value.as_deref() {
        None => return Err(bad_request("value= is required (a share from 0 to 1)")),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && (0.0..=1.0).contains(&x) => x,
            _ => {
                return Err(bad_request(format!(
                    "value={v:?}: write a share from 0 to 1 (e.g. 0.25)"
                )));
            }
        },
    };
    let duration = parse_for(q.duration.as_deref())?;
    if value >= 1.0 {
        return undial(&s, caller, p.region).await;
    }
    let region = p.region;
    let r = async {
        ask(&s, |reply| Command::Dial {
            region: region.clone(),
            value,
            duration,
            reply,
        })
        .await??;
        Ok::<_, ApiError>(())
    }
    .await;
    audit(
        &s,
        &caller,
        "dial",
        format!("region {region}"),
        duration,
        r.as_ref()
            .map(|_| Some(format!("ok: keeps {value} of its clients"))),
    )
    .await;
    r?;
    Ok(Json(Dialled {
        region,
        value,
        duration: duration.map(|d| humantime::format_duration(d).to_string()),
    }))
}

/// Undoes a region's dial.
///
/// The region keeps all its clients again; undoing a dial that is not
/// there succeeds too. Audited.
#[utoipa::path(
    delete,
    path = "/v1/regions/{region}/dial",
    tag = "operations",
    params(RegionPath),
    responses(
        (status = 200, description = "Not dialled", body = Dialled),
        (status = 404, description = "No such region", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, the state file could \
            not be written, or in a cluster etcd is unreachable", body = ErrorBody),
    )
)]
pub(super) async fn undial_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<RegionPath>,
) -> Result<Json<Dialled>, ApiError> {
    undial(&s, caller, p.region).await
}

async fn undial(s: &AdminState, caller: Caller, region: String) -> Result<Json<Dialled>, ApiError> {
    let target = DrainKey::Dial(region.clone());
    let r = async {
        ask(s, |reply| Command::Undrain { target, reply }).await??;
        Ok::<_, ApiError>(())
    }
    .await;
    audit(
        s,
        &caller,
        "undial",
        format!("region {region}"),
        None,
        r.as_ref().map(|_| None),
    )
    .await;
    r?;
    Ok(Json(Dialled {
        region,
        value: 1.0,
        duration: None,
    }))
}
