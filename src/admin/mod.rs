//! The admin HTTP API (SPEC §6): JSON status, drains, explain, reload,
//! Prometheus metrics and the demo lab. It reads snapshots and sends
//! commands to the control loop; it never changes state itself.

pub mod dashboard;
pub mod serve;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::control::{Command, ControlError};
use crate::explain::{ExplainError, explain_what_if, parse_down};
use crate::lab::{Lab, LabError};
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::steer::Family;
use crate::text::now_rfc3339;
use crate::view::{AuditEntry, DrainKey};

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// Current snapshot.
    pub shared: Shared,
    /// Control loop.
    pub commands: mpsc::Sender<Command>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Bearer token for mutating calls (a reload may change it).
    pub token: Arc<arc_swap::ArcSwapOption<String>>,
    /// The demo lab, when running `signpost demo`.
    pub lab: Option<Arc<Lab>>,
    /// The answer counters sampled for the dashboard's shares.
    pub shares: Arc<dashboard::Shares>,
}

/// An error answered as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::UnknownRegion(_) | ControlError::UnknownEndpoint(_) => {
                StatusCode::NOT_FOUND
            }
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Stopped | ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Refused(_) => StatusCode::CONFLICT,
        };
        ApiError(code, e.to_string())
    }
}

/// The router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard/land-110m.json", get(dashboard::land))
        .route("/v1/shares", get(dashboard::shares))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/status", get(status))
        .route(
            "/v1/regions/{region}/drain",
            post(drain_region).delete(undrain_region),
        )
        .route(
            "/v1/endpoints/{address}/drain",
            post(drain_endpoint).delete(undrain_endpoint),
        )
        .route("/v1/explain", get(explain_handler))
        .route("/v1/reload", post(reload))
        .route("/v1/audit", get(audit_log))
        .route("/v1/lab", get(lab_state))
        .route("/v1/lab/{region}/{action}", post(lab_action))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such API path".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path".into(),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn(body_limit))
        .with_state(state)
}

/// Largest request body accepted (no admin call takes one).
const MAX_BODY: u64 = 64 * 1024;

/// Refuses a request that announces a body larger than [`MAX_BODY`], read
/// or not (a chunked one is cut at the limit when read).
async fn body_limit(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY) {
        return ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY} bytes"),
        )
        .into_response();
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, MAX_BODY as usize));
    next.run(Request::from_parts(parts, body)).await
}

/// Mutating calls need the bearer token when one is configured. Without
/// a token, no call but `/healthz` is answered for a `Host` that is a name
/// (DNS rebinding: a page of another site whose name now points here would
/// read the topology and the audit, or drain).
async fn auth(
    State(s): State<AdminState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::DELETE | Method::PUT | Method::PATCH
    );
    let token = s.token.load_full();
    if token.is_none()
        && req.uri().path() != "/healthz"
        && let Some(why) = rebindable_host(&headers)
    {
        return ApiError(StatusCode::FORBIDDEN, why.into()).into_response();
    }
    if mutating && let Some(why) = foreign_request(&headers) {
        return ApiError(StatusCode::FORBIDDEN, why.into()).into_response();
    }
    if let (true, Some(token)) = (mutating, token) {
        // the auth scheme is case-insensitive (RFC 7235 §2.1)
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            let mut r = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            )
            .into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    next.run(req).await
}

/// Why a change request looks like it comes from a web page of another
/// site (which a browser would send on an operator's behalf: cross-site
/// request forgery), if it does.
fn foreign_request(headers: &HeaderMap) -> Option<&'static str> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some("refused: a change requested by a page of another site");
    }
    let host = get("host").unwrap_or("");
    if let Some(origin) = get("origin") {
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        if !origin_host.eq_ignore_ascii_case(host) {
            return Some("refused: a change requested by a page of another site");
        }
    }
    None
}

/// Why a request's `Host` could be DNS rebinding, if it could: a name
/// other than localhost (a rebound name carries its own, an address or
/// localhost cannot be rebound). Asked only without a token.
fn rebindable_host(headers: &HeaderMap) -> Option<&'static str> {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if host.is_empty() {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(
        "refused: without server.admin_token, the admin API answers only for an IP address or localhost in Host (a name could be DNS rebinding); set admin_token to use names",
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn ask<T>(
    s: &AdminState,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, ApiError> {
    let (tx, rx) = oneshot::channel();
    s.commands
        .send(make(tx))
        .await
        .map_err(|_| ApiError::from(ControlError::Stopped))?;
    rx.await.map_err(|_| ApiError::from(ControlError::Stopped))
}

async fn status(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let st = ask(&s, |reply| Command::Status { reply }).await?;
    Ok(Json(st).into_response())
}

/// `force=true|false` of a drain (`true` overrides the safety rules).
fn parse_force(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("force").map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(v) => Err(bad_request(format!("force={v:?}: write true or false"))),
    }
}

fn parse_for(q: &HashMap<String, String>) -> Result<Option<Duration>, ApiError> {
    for k in q.keys() {
        if k != "for" && k != "force" {
            return Err(bad_request(format!("unknown parameter {k:?} (for, force)")));
        }
    }
    match q.get("for") {
        None => Ok(None),
        Some(v) => match humantime::parse_duration(v) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(366 * 86400) => Ok(Some(d)),
            Ok(_) => Err(bad_request(format!(
                "for={v:?}: must be longer than 0 and at most a year"
            ))),
            Err(e) => Err(bad_request(format!(
                "for={v:?}: not a duration ({e}); write e.g. 10m, 1h"
            ))),
        },
    }
}

fn parse_address(a: &str) -> Result<IpAddr, ApiError> {
    a.parse::<IpAddr>()
        .map_err(|_| bad_request(format!("{a:?} is not an IP address")))
}

/// The caller's address, for the audit (when the server knows it).
struct Caller(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// Records an operator action with its outcome.
async fn audit(
    s: &AdminState,
    caller: &Caller,
    action: &str,
    target: String,
    duration: Option<Duration>,
    r: Result<(), &ApiError>,
) {
    let entry = AuditEntry {
        at: now_rfc3339(),
        action: action.to_string(),
        target,
        duration: duration.map(|d| humantime::format_duration(d).to_string()),
        from: caller.0.clone(),
        result: match r {
            Ok(_) => "ok".to_string(),
            Err(ApiError(code, msg)) => format!("{} {msg}", code.as_u16()),
        },
        node: None,
        key: None,
    };
    if s.commands.send(Command::Audit(entry)).await.is_err() {
        tracing::debug!("control loop is gone; audit entry dropped");
    }
}

async fn drain(
    s: &AdminState,
    caller: Caller,
    target: DrainKey,
    duration: Option<Duration>,
    force: bool,
) -> Result<Response, ApiError> {
    let what = target.clone();
    let r = async {
        ask(&s.clone(), |reply| Command::Drain {
            target,
            duration,
            force,
            starts: None,
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
    Ok(Json(json!({
        "drained": describe(&what),
        "for": duration.map(|d| humantime::format_duration(d).to_string()),
    }))
    .into_response())
}

async fn undrain(s: &AdminState, caller: Caller, target: DrainKey) -> Result<Response, ApiError> {
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
    Ok(Json(json!({ "undrained": describe(&what) })).into_response())
}

async fn audit_log(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let list = ask(&s, |reply| Command::AuditLog { reply }).await?;
    Ok(Json(json!({ "audit": list })).into_response())
}

fn describe(t: &DrainKey) -> serde_json::Value {
    match t {
        DrainKey::Region(r) => json!({ "region": r }),
        DrainKey::Endpoint(a) => json!({ "endpoint": a.to_string() }),
        DrainKey::Dial(r) => json!({ "dial": r }),
    }
}

async fn drain_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(region): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let d = parse_for(&q)?;
    let force = parse_force(&q)?;
    drain(&s, caller, DrainKey::Region(region), d, force).await
}

async fn undrain_region(
    State(s): State<AdminState>,
    caller: Caller,
    Path(region): Path<String>,
) -> Result<Response, ApiError> {
    undrain(&s, caller, DrainKey::Region(region)).await
}

async fn drain_endpoint(
    State(s): State<AdminState>,
    caller: Caller,
    Path(address): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let d = parse_for(&q)?;
    let force = parse_force(&q)?;
    let a = parse_address(&address)?;
    drain(&s, caller, DrainKey::Endpoint(a), d, force).await
}

async fn undrain_endpoint(
    State(s): State<AdminState>,
    caller: Caller,
    Path(address): Path<String>,
) -> Result<Response, ApiError> {
    let a = parse_address(&address)?;
    undrain(&s, caller, DrainKey::Endpoint(a)).await
}

async fn explain_handler(
    State(s): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    for k in q.keys() {
        if !matches!(k.as_str(), "name" | "type" | "client" | "down") {
            return Err(bad_request(format!(
                "unknown parameter {k:?} (name, type, client, down)"
            )));
        }
    }
    let name = q
        .get("name")
        .ok_or_else(|| bad_request("name= is required"))?;
    let family = match q.get("type").map(|t| t.to_ascii_uppercase()).as_deref() {
        None | Some("A") => Family::V4,
        Some("AAAA") => Family::V6,
        Some(t) => {
            return Err(bad_request(format!(
                "type={t:?}: only A and AAAA are steered"
            )));
        }
    };
    let client = q
        .get("client")
        .ok_or_else(|| bad_request("client= is required (an IP address)"))?;
    let client = parse_address(client)?;
    let down = q.get("down").map(|d| parse_down(d)).unwrap_or_default();
    let snap = s.shared.load();
    match explain_what_if(&snap, name, family, client, &down) {
        Ok(e) => Ok(Json(e).into_response()),
        Err(e @ (ExplainError::BadName(_) | ExplainError::UnknownRegion(_))) => {
            Err(bad_request(e.to_string()))
        }
        Err(e @ ExplainError::NotAService(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
    }
}

async fn reload(State(s): State<AdminState>, caller: Caller) -> Result<Response, ApiError> {
    let from = caller.0.unwrap_or_else(|| "admin API".into());
    let r = ask(&s, |reply| Command::Reload {
        from,
        reply: Some(reply),
    })
    .await?;
    match r {
        Ok(summary) => Ok(Json(json!({ "reloaded": true, "summary": summary })).into_response()),
        Err(ControlError::Invalid(errs)) => {
            let list: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
            Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({
                    "error": "the new configuration is invalid; the previous one keeps serving",
                    "errors": list,
                })),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

fn lab_of(s: &AdminState) -> Result<&Arc<Lab>, ApiError> {
    s.lab.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "the failure lab runs only under `signpost demo`".into(),
        )
    })
}

async fn lab_state(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let lab = lab_of(&s)?;
    let st: Vec<_> = lab
        .state()
        .await
        .into_iter()
        .map(|(region, failing, load, delay_ms)| {
            json!({ "region": region, "failing": failing, "load": load, "delay_ms": delay_ms })
        })
        .collect();
    Ok(Json(json!({ "regions": st })).into_response())
}

async fn lab_action(
    State(s): State<AdminState>,
    caller: Caller,
    Path((region, action)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let r = lab_set(&s, &region, &action, &q).await;
    let outcome = r.as_ref().map(|_| ());
    audit(
        &s,
        &caller,
        &format!("lab-{action}"),
        format!("region {region}"),
        None,
        outcome,
    )
    .await;
    r
}

async fn lab_set(
    s: &AdminState,
    region: &str,
    action: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let lab = lab_of(s)?;
    let lab_err = |e: LabError| match e {
        e @ LabError::UnknownRegion(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        e => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match action {
        "load" => {
            let v = q
                .get("value")
                .ok_or_else(|| bad_request("value= is required (a load >= 0)"))?;
            let load = v
                .parse::<f64>()
                .ok()
                .filter(|l| l.is_finite() && *l >= 0.0)
                .ok_or_else(|| bad_request(format!("value={v:?} is not a load (a number >= 0)")))?;
            lab.set_load(region, load).await.map_err(lab_err)?;
            return Ok(Json(json!({ "region": region, "load": load })).into_response());
        }
        "slow" => {
            let v = q
                .get("delay")
                .ok_or_else(|| bad_request("delay= is required (e.g. 50ms; 0 to undo)"))?;
            let delay = if v.trim() == "0" {
                Duration::ZERO
            } else {
                humantime::parse_duration(v)
                    .ok()
                    .filter(|d| *d <= Duration::from_secs(60))
                    .ok_or_else(|| {
                        bad_request(format!(
                            "delay={v:?} is not a duration up to 60s (e.g. 50ms)"
                        ))
                    })?
            };
            lab.set_delay(region, delay).await.map_err(lab_err)?;
            return Ok(Json(json!({
                "region": region,
                "delay_ms": delay.as_millis() as u64,
            }))
            .into_response());
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
    match lab.set_failing(region, fail).await {
        Ok(()) => Ok(Json(json!({ "region": region, "failing": fail })).into_response()),
        Err(e @ LabError::UnknownRegion(_)) => Err(ApiError(StatusCode::NOT_FOUND, e.to_string())),
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
