//! Drains (SPEC §6, §8) and scheduled drains (§11): `POST` and `DELETE`
//! on `/v1/regions/{region}/drain` and `/v1/endpoints/{address}/drain`.
//! Each call goes to the control loop, which checks the safety rule (and,
//! in a cluster, writes etcd), and is audited with its outcome.

use std::time::{Duration, SystemTime};

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
    /// Schedule the drain: it starts at this time (RFC 3339, in the
    /// future, at most a year away) and lasts `for`, which is then
    /// required. The safety rule is checked now, counting the drains
    /// scheduled to overlap it, and again when it starts.
    #[param(value_type = Option<String>, example = "2026-12-08T03:00:00Z")]
    pub at: Option<String>,
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
            DrainKey::Region(r) | DrainKey::Dial(r) => DrainTarget::Region(r.clone()),
            DrainKey::Endpoint(a) => DrainTarget::Endpoint(a.to_string()),
        }
    }
}

/// A drain was made, or scheduled.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum DrainReply {
    /// Drained now.
    Drained(Drained),
    /// Scheduled.
    Scheduled(Scheduled),
}

/// A drain was scheduled.
#[derive(Debug, Serialize, ToSchema)]
pub struct Scheduled {
    /// What will be drained.
    pub scheduled: DrainTarget,
    /// When it starts (RFC 3339).
    pub starts: String,
    /// How long it lasts, as written back (`30m`).
    #[serde(rename = "for")]
    pub duration: String,
}

/// How a drain is asked for: for how long, forced or not, and when it
/// starts (`None`: now).
pub struct How {
    duration: Option<Duration>,
    force: bool,
    starts: Option<SystemTime>,
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

/// `for=`: more than 0 and at most a year.
pub(super) fn parse_for(v: Option<&str>) -> Result<Option<Duration>, ApiError> {
    match v {
        None => Ok(None),
        Some(v) => match humantime::parse_duration(v) {
            Ok(d) if !d.is_zero() && d <= YEAR => Ok(Some(d)),
            Ok(_) => Err(bad_request(format!(
                "for={v:?}: must be longer than 0 and at most a year"
            ))),
            Err(e) => Err(bad_request(format!(
                "for={v:?}: not a duration ({e}); write e.g. 10m, 1h"
            ))),
        },
    }
}

/// The longest `for`, and the farthest `at`.
const YEAR: Duration = Duration::from_secs(366 * 86400);

impl DrainParams {
    /// The drain's length, whether it is forced and when it starts: `for`
    /// first, then `force`, then `at`, each refused with a reason.
    fn parse(&self) -> Result<How, ApiError> {
        let duration = parse_for(self.duration.as_deref())?;
        // `true` overrides the safety rules
        let force = match self.force.as_deref() {
            None | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(v) => return Err(bad_request(format!("force={v:?}: write true or false"))),
        };
        let starts = match self.at.as_deref() {
            None => None,
            Some(v) => {
                let t = humantime::parse_rfc3339_weak(v).map_err(|e| {
                    bad_request(format!(
                        "at={v:?}: not an RFC 3339 time ({e}); write e.g. 2026-12-08T03:00:00Z"
                    ))
                })?;
                let now = SystemTime::now();
                if t <= now {
                    return Err(bad_request(format!("at={v:?}: that time has passed")));
                }
                if t > now + YEAR {
                    return Err(bad_request(format!("at={v:?}: more than a year away")));
                }
                if duration.is_none() {
                    return Err(bad_request(
                        "a scheduled drain needs for= beside at= (how long it lasts)",
                    ));
                }
                Some(t)
            }
        };
        Ok(How {
            duration,
            force,
            starts,
        })
    }
}

async fn drain(
    s: &AdminState,
    caller: Caller,
    target: DrainKey,
    how: How,
) -> Result<Json<DrainReply>, ApiError> {
    let How {
        duration,
        force,
        starts,
    } = how;
    let what = target.clone();
    let r = async {
        ask(&s.clone(), |reply| Command::Drain {
            target,
            duration,
            force,
            starts,
            reply,
        })
        .await??;
        Ok::<_, ApiError>(())
    }
    .await;
    let starts_text = starts.map(|t| humantime::format_rfc3339_seconds(t).to_string());
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
        match (&r, &starts_text) {
            (Ok(()), Some(t)) => Ok(Some(format!("ok: scheduled, starts {t}"))),
            (Ok(()), None) => Ok(None),
            (Err(e), _) => Err(e),
        },
    )
    .await;
    r?;
    let duration = duration.map(|d| humantime::format_duration(d).to_string());
    Ok(Json(match starts_text {
        Some(starts) => DrainReply::Scheduled(Scheduled {
            scheduled: DrainTarget::from(&what),
            starts,
            duration: duration.unwrap_or_default(),
        }),
        None => DrainReply::Drained(Drained {
            drained: DrainTarget::from(&what),
            duration,
        }),
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
        r.as_ref().map(|_| None),
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
        (status = 200, description = "Drained, or scheduled (with `at`)", body = DrainReply),
        (status = 400, description = "A bad or unknown parameter", body = ErrorBody),
        (status = 404, description = "No such region", body = ErrorBody),
        (status = 409, description = "Refused: it would break a service's \
            `min_healthy_regions` (name in the error; for a scheduled drain, counting \
            the drains scheduled to overlap it); `force=true` overrides. Or a scheduled \
            drain of a target that is drained now", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, the state file could \
            not be written, or in a cluster etcd is unreachable (nothing changed: the drain \
            is not applied to one node alone)", body = ErrorBody),
    )
)]
pub(super) async fn drain_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<RegionPath>,
    Params(q): Params<DrainParams>,
) -> Result<Json<DrainReply>, ApiError> {
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
        (status = 503, description = "The control loop has stopped, the state file could \
            not be written, or in a cluster etcd is unreachable (nothing changed)",
            body = ErrorBody),
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
        (status = 200, description = "Drained, or scheduled (with `at`)", body = DrainReply),
        (status = 400, description = "Not an IP address, or a bad or unknown parameter",
            body = ErrorBody),
        (status = 404, description = "No endpoint has this address", body = ErrorBody),
        (status = 409, description = "Refused: it would break a service's \
            `min_healthy_regions` (name in the error; for a scheduled drain, counting \
            the drains scheduled to overlap it); `force=true` overrides. Or a scheduled \
            drain of a target that is drained now", body = ErrorBody),
        (status = 503, description = "The control loop has stopped, the state file could \
            not be written, or in a cluster etcd is unreachable (nothing changed)",
            body = ErrorBody),
    )
)]
pub(super) async fn drain_endpoint(
    State(s): State<AdminState>,
    caller: Caller,
    Path(p): Path<EndpointPath>,
    Params(q): Params<DrainParams>,
) -> Result<Json<DrainReply>, ApiError> {
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
        (status = 503, description = "The control loop has stopped, the state file could \
            not be written, or in a cluster etcd is unreachable (nothing changed)",
            body = ErrorBody),
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
