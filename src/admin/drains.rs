//! Drains (SPEC §6, §8): `POST` and `DELETE` on
//! `/v1/regions/{region}/drain` and `/v1/endpoints/{address}/drain`. Each
//! call goes to the control loop, which checks the safety rule (and, in a
//! cluster, writes etcd), and is audited with its outcome.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    AdminState, ApiError, Caller, ErrorBody, Params, ask, audit, bad_request, parse_address,
};
use crate::control::Command;
use crate::view::DrainKey;

/// The region a call is about.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RegionPath {
    /// A region as the configuration names it.
    #[param(example = "eu-west")]
    pub region: String,
}

/// The endpoint a call is about.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EndpointPath {
    /// An endpoint's address, IPv4 or IPv6 written plainly
    /// (`/v1/endpoints/2001:db8::1/drain`); every endpoint with it is drained.
    #[param(example = "192.0.2.10")]
    pub address: String,
}

/// The query of a drain.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrainParams {
    /// How long the drain lasts (`10m`, `1h`; more than 0, at most a
    /// year); without it, until undrained.
    #[serde(rename = "for")]
    #[param(value_type = Option<String>, example = "10m")]
    pub duration: Option<String>,
    /// Drain even when that leaves a service with fewer usable regions
    /// than its `min_healthy_regions` (`1` and `0` are accepted too).
    #[param(value_type = Option<bool>)]
    pub force: Option<String>,
}

/// What a drain or undrain applied to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DrainTarget {
    /// A region, by name.
    Region(String),
    /// Every endpoint with this address.
    Endpoint(String),
}

impl From<&DrainKey> for DrainTarget {
    fn from(k: &DrainKey) -> Self {
        match k {
            DrainKey::Region(r) => DrainTarget::Region(r.clone()),
            DrainKey::Endpoint(a) => DrainTarget::Endpoint(a.to_string()),
        }
    }
}

/// A drain was made.
#[derive(Debug, Serialize, ToSchema)]
pub struct Drained {
    /// What is drained.
    pub drained: DrainTarget,
    /// How long, as written back (`10m`); null: until undrained.
    #[serde(rename = "for")]
    pub duration: Option<String>,
}

/// A drain was ended (or there was none).
#[derive(Debug, Serialize, ToSchema)]
pub struct Undrained {
    /// What is back in answers.
    pub undrained: DrainTarget,
}

impl DrainParams {
    /// The drain's length and whether it is forced: `for` first, then
    /// `force`, each refused with a reason.
    fn parse(&self) -> Result<(Option<Duration>, bool), ApiError> {
        let duration = match self.duration.as_deref() {
            None => None,
            Some(v) => match humantime::parse_duration(v) {
                Ok(d) if !d.is_zero() && d <= Duration::from_secs(366 * 86400) => Some(d),
                Ok(_) => {
                    return Err(bad_request(format!(
                        "for={v:?}: must be longer than 0 and at most a year"
                    )));
                }
                Err(e) => {
                    return Err(bad_request(format!(
                        "for={v:?}: not a duration ({e}); write e.g. 10m, 1h"
                    )));
                }
            },
        };
        // `true` overrides the safety rules
        let force = match self.force.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => return Err(bad_request(format!("force={v:?}: write true or false"))),
        };
        Ok((duration, force))
    }
}

async fn drain(
    s: &AdminState,
    caller: Caller,
    target: DrainKey,
    (duration, force): (Option<Duration>, bool),
) -> Result<Json<Drained>, ApiError> {
    let what = target.clone();
    let r = async {
        ask(&s.clone(), |reply| Command::Drain {
            target,
            duration,
            force,
            reply,
        })
        .await??;
        Ok::<_, ApiError>(())
    }
    .await;
    audit(
        s,
        &caller,
        "drain",
        if force {
            format!("{what} (forced)")
        } else {
            what.to_string()
        },
        duration,
        r.as_ref().copied(),
    )
    .await;
    r?;
    Ok(Json(Drained {
        drained: DrainTarget::from(&what),
        duration: duration.map(|d| humantime::format_duration(d).to_string()),
    }))
}

async fn undrain(
    s: &AdminState,
    caller: Caller,
    target: DrainKey,
) -> Result<Json<Undrained>, ApiError> {
    let what = target.clone();
    let r = async {
        ask(s, |reply| Command::Undrain { target, reply }).await??;
        Ok::<_, ApiError>(())
    }
    .await;
    audit(
        s,
        &caller,
        "undrain",
        what.to_string(),
        None,
        r.as_ref().copied(),
    )
    .await;
    r?;
    Ok(Json(Undrained {
        undrained: DrainTarget::from(&what),
    }))
}

/// Drains a region.
///
/// Takes the region out of answers (a simulated region failure), for a
/// while or until undrained. In a cluster, for every node. Audited.
#[utoipa::path(
    post,
    path = "/v1/regions/{region}/drain",
    tag = "operations",
    params(RegionPath, DrainParams),
    responses(
        (status = 200, description = "Drained", body = Drained),
        (status = 400, description = "A bad or unknown parameter", body = ErrorBody),
        (status = 404, description = "No such region", body = ErrorBody),
        (status = 409, description = "Refused: it would break a service's \
            `min_healthy_regions` (name in the error); `force=true` overrides", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, or in a cluster \
            etcd is unreachable (the drain is not applied to one node alone)", body = ErrorBody),
    )
)]
pub(super) async fn drain_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<RegionPath>,
    Params(q): Params<DrainParams>,
) -> Result<Json<Drained>, ApiError> {
    let how = q.parse()?;
    drain(&s, caller, DrainKey::Region(p.region), how).await
}

/// Undrains a region.
///
/// Puts the region back into answers; undraining a region that is not
/// drained succeeds too. Audited.
#[utoipa::path(
    delete,
    path = "/v1/regions/{region}/drain",
    tag = "operations",
    params(RegionPath),
    responses(
        (status = 200, description = "Undrained", body = Undrained),
        (status = 404, description = "No such region", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, or in a cluster \
            etcd is unreachable", body = ErrorBody),
    )
)]
pub(super) async fn undrain_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<RegionPath>,
) -> Result<Json<Undrained>, ApiError> {
    undrain(&s, caller, DrainKey::Region(p.region)).await
}

/// Drains an endpoint.
///
/// Takes every endpoint with this address out of answers, in every
/// region. Audited.
#[utoipa::path(
    post,
    path = "/v1/endpoints/{address}/drain",
    tag = "operations",
    params(EndpointPath, DrainParams),
    responses(
        (status = 200, description = "Drained", body = Drained),
        (status = 400, description = "Not an IP address, or a bad or unknown parameter",
            body = ErrorBody),
        (status = 404, description = "No endpoint has this address", body = ErrorBody),
        (status = 409, description = "Refused: it would break a service's \
            `min_healthy_regions` (name in the error); `force=true` overrides", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, or in a cluster \
            etcd is unreachable", body = ErrorBody),
    )
)]
pub(super) async fn drain_endpoint(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<EndpointPath>,
    Params(q): Params<DrainParams>,
) -> Result<Json<Drained>, ApiError> {
    let how = q.parse()?;
    let a = parse_address(&p.address)?;
    drain(&s, caller, DrainKey::Endpoint(a), how).await
}

/// Undrains an endpoint.
///
/// Puts the endpoints with this address back into answers. Audited.
#[utoipa::path(
    delete,
    path = "/v1/endpoints/{address}/drain",
    tag = "operations",
    params(EndpointPath),
    responses(
        (status = 200, description = "Undrained", body = Undrained),
        (status = 400, description = "Not an IP address", body = ErrorBody),
        (status = 404, description = "No endpoint has this address", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, or in a cluster \
            etcd is unreachable", body = ErrorBody),
    )
)]
pub(super) async fn undrain_endpoint(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<EndpointPath>,
) -> Result<Json<Undrained>, ApiError> {
    let a = parse_address(&p.address)?;
    undrain(&s, caller, DrainKey::Endpoint(a)).await
}
