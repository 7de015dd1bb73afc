//! The admin HTTP API (SPEC §6): JSON status, drains, explain, reload,
//! Prometheus metrics, the dashboard, the demo lab and the API's own
//! OpenAPI description. It reads snapshots and sends commands to the
//! control loop; it never changes state itself.
//!
//! # Adding a route
//!
//! Every route is served through [`api`], whose `routes!(...)` takes the
//! path and method from the handler's `#[utoipa::path]`: what is served is
//! what is described (`GET /v1/openapi.json`, built in `openapi.rs`), and
//! tests/admin/openapi.rs refuses a `.route(` in `src/admin/`. A new call:
//!
//! 1. Types. What it answers derives `Serialize` and `utoipa::ToSchema`
//!    (doc comments become descriptions); errors are [`ApiError`], sent
//!    as [`ErrorBody`]. Path parameters are a `Deserialize + IntoParams`
//!    struct with `#[into_params(parameter_in = Path)]`, taken as
//!    `Path<..>` ([`drains::RegionPath`]); the query is one with
//!    `parameter_in = Query`, taken as [`Params`]`<..>`, which refuses any
//!    parameter the struct does not name: a field added there is accepted
//!    and described at once ([`drains::DrainParams`]).
//! 2. The handler gets `#[utoipa::path(METHOD, path = "/v1/...", tag =
//!    "...", params(..), responses(..))]`, the path a literal, with every
//!    status the handler itself answers, each error with `body = ErrorBody`.
//!    What the middleware answers for any route (401 and the bearer token
//!    on POST and DELETE, 403, 413) `openapi.rs` adds to every operation.
//! 3. One line in [`api`]: `.routes(routes!(module::handler, ...))`, one
//!    `routes!` per path, with all of that path's handlers.
//!
//! So dials (SPEC §11) are a room like `drains.rs`: a `DialParams
//! { value, for }` query struct, handlers `#[utoipa::path(post, path =
//! "/v1/regions/{region}/dial", tag = "operations", params(RegionPath,
//! DialParams), ...)]` and its `delete`, and
//! `.routes(routes!(dials::dial_region, dials::undial_region))`. A
//! scheduled drain is an `at` field in [`drains::DrainParams`], judged in
//! `DrainParams::parse` (with `for` required beside it).

pub mod dashboard;
pub mod dials;
pub mod drains;
pub mod lab;
pub mod openapi;
pub mod serve;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::control::{Command, ControlError, ReloadSummary, Status};
use crate::explain::{ExplainError, Explanation, explain_what_if, parse_down};
use crate::lab::Lab;
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::steer::Family;
use crate::text::now_rfc3339;
use crate::view::AuditEntry;

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

/// An error answered as [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

/// Every error the API answers: `{"error": "..."}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
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

/// Every route with its description: the one list the router and
/// `GET /v1/openapi.json` are both made from.
pub fn api() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(dashboard::page))
        .routes(routes!(dashboard::land))
        .routes(routes!(dashboard::shares))
        .routes(routes!(healthz))
        .routes(routes!(status))
        .routes(routes!(drains::drain_region, drains::undrain_region))
        .routes(routes!(drains::drain_endpoint, drains::undrain_endpoint))
        .routes(routes!(dials::dial_region, dials::undial_region))
        .routes(routes!(explain_handler))
        .routes(routes!(reload))
        .routes(routes!(audit_log))
        .routes(routes!(lab::lab_state))
        .routes(routes!(lab::lab_action))
        .routes(routes!(metrics))
        .routes(routes!(openapi::openapi_json))
}

/// The router.
pub fn router(state: AdminState) -> Router {
    // the description is built once, here, so a fault in it shows at start
    openapi::document();
    let (routes, _) = api().split_for_parts();
    routes
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

/// Calls that change something: they need the bearer token when one is
/// configured, and must not come from a page of another site.
pub fn is_mutating(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::DELETE | Method::PUT | Method::PATCH
    )
}

/// The one path answered whatever the `Host` (see `auth`).
pub const UNGUARDED: &str = "/healthz";

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
    let mutating = is_mutating(req.method());
    let token = s.token.load_full();
    if token.is_none()
        && req.uri().path() != UNGUARDED
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

/// The query parameters of a call, as the `IntoParams` type that
/// describes them: a parameter the type does not name is refused (400,
/// naming those it does), so what is accepted is what is described.
/// Values arrive as strings; the handler judges them, with its reasons.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: IntoParams + DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let Query(q) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let known: Vec<String> = T::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        if let Some(k) = q.keys().find(|k| !known.contains(k)) {
            return Err(
                bad_request(format!("unknown parameter {k:?} ({})", known.join(", ")))
                    .into_response(),
            );
        }
        from_query(&q)
            .map(Params)
            .map_err(IntoResponse::into_response)
    }
}

/// A query as `T` (whose fields are strings), ignoring what `T` does not name.
fn from_query<T: DeserializeOwned>(q: &HashMap<String, String>) -> Result<T, ApiError> {
    let map = q
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| bad_request(e.to_string()))
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

/// Records an operator action with its outcome: `Ok(None)` is `ok`,
/// `Ok(Some(text))` a success said more fully.
async fn audit(
    s: &AdminState,
    caller: &Caller,
    action: &str,
    target: String,
    duration: Option<Duration>,
    r: Result<Option<String>, &ApiError>,
) {
    let entry = AuditEntry {
        at: now_rfc3339(),
        action: action.to_string(),
        target,
        duration: duration.map(|d| humantime::format_duration(d).to_string()),
        from: caller.0.clone(),
        result: match r {
            Ok(Some(text)) => text,
            Ok(None) => "ok".to_string(),
            Err(ApiError(code, msg)) => format!("{} {msg}", code.as_u16()),
        },
        node: None,
        key: None,
    };
    if s.commands.send(Command::Audit(entry)).await.is_err() {
        tracing::debug!("control loop is gone; audit entry dropped");
    }
}

/// `ok` while serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    responses((status = 200, description = "`ok` and a newline",
        content_type = "text/plain; charset=utf-8", body = String, example = "ok\n")),
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// What signpost serves.
///
/// Regions with their endpoints, health, drains, load and latency;
/// services; zones; and in a cluster, the nodes and their verdicts.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "status",
    responses(
        (status = 200, description = "Everything", body = Status),
        (status = 503, description = "signpost is shutting down", body = ErrorBody),
    )
)]
async fn status(State(s): State<AdminState>) -> Result<Json<Status>, ApiError> {
    Ok(Json(ask(&s, |reply| Command::Status { reply }).await?))
}

/// `GET /v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLog {
    /// Newest first, at most 1,000.
    pub audit: Vec<AuditEntry>,
}

/// The operator actions.
///
/// The last 1,000 (drains, undrains, reloads, lab calls), newest first;
/// cluster-wide in a cluster.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "status",
    responses(
        (status = 200, description = "The actions", body = AuditLog),
        (status = 503, description = "signpost is shutting down", body = ErrorBody),
    )
)]
async fn audit_log(State(s): State<AdminState>) -> Result<Json<AuditLog>, ApiError> {
    let audit = ask(&s, |reply| Command::AuditLog { reply }).await?;
    Ok(Json(AuditLog { audit }))
}

/// The query of an explain.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainParams {
    /// A service name, or a CNAME to one (the trailing dot optional).
    #[param(required = true, value_type = String, example = "www.example.com")]
    pub name: Option<String>,
    /// `A` (the default) or `AAAA`.
    #[serde(rename = "type")]
    #[param(value_type = Option<String>, example = "A")]
    pub qtype: Option<String>,
    /// The client's address, as if it came in ECS.
    #[param(required = true, value_type = String, example = "193.0.6.1")]
    pub client: Option<String>,
    /// What-if: regions taken as down (comma-separated); the live state
    /// is untouched.
    #[param(value_type = Option<String>, example = "eu-west,us-east")]
    pub down: Option<String>,
}

/// Why a client gets its answer.
///
/// The decision trace of one answer: where the client is, each region of
/// the service with its distance, health and load, the rule that chose,
/// the answer, its TTL and ECS scope. With `down`, the answer as if those
/// regions had failed.
#[utoipa::path(
    get,
    path = "/v1/explain",
    operation_id = "explain",
    tag = "status",
    params(ExplainParams),
    responses(
        (status = 200, description = "The trace", body = Explanation),
        (status = 400, description = "A missing, bad or unknown parameter, a name that is \
            not a DNS name, a type other than A or AAAA, or an unknown region in `down`",
            body = ErrorBody),
        (status = 404, description = "Not a service", body = ErrorBody),
    )
)]
async fn explain_handler(
    State(s): State<AdminState>,
    Params(q): Params<ExplainParams>,
) -> Result<Json<Explanation>, ApiError> {
    let name = q.name.ok_or_else(|| bad_request("name= is required"))?;
    let family = match q.qtype.map(|t| t.to_ascii_uppercase()).as_deref() {
        None | Some("A") => Family::V4,
        Some("AAAA") => Family::V6,
        Some(t) => {
            return Err(bad_request(format!(
                "type={t:?}: only A and AAAA are steered"
            )));
        }
    };
    let client = q
        .client
        .ok_or_else(|| bad_request("client= is required (an IP address)"))?;
    let client = parse_address(&client)?;
    let down = q.down.map(|d| parse_down(&d)).unwrap_or_default();
    let snap = s.shared.load();
    match explain_what_if(&snap, &name, family, client, &down) {
        Ok(e) => Ok(Json(e)),
        Err(e @ (ExplainError::BadName(_) | ExplainError::UnknownRegion(_))) => {
            Err(bad_request(e.to_string()))
        }
        Err(e @ ExplainError::NotAService(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
    }
}

/// A reload was applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// Always true.
    pub reloaded: bool,
    /// What changed.
    pub summary: ReloadSummary,
}

/// A reload was refused: the configuration keeps serving.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidConfig {
    /// That the new configuration is invalid.
    pub error: String,
    /// Each error, naming file, key and reason.
    pub errors: Vec<String>,
}

/// Reloads the configuration.
///
/// Reads the configuration file again and serves it if it is valid
/// (probing new targets first); if not, the previous one keeps serving.
/// Audited.
#[utoipa::path(
    post,
    path = "/v1/reload",
    tag = "operations",
    responses(
        (status = 200, description = "Reloaded", body = Reloaded),
        (status = 400, description = "The new configuration is invalid", body = InvalidConfig),
        (status = 503, description = "signpost is shutting down", body = ErrorBody),
    )
)]
async fn reload(State(s): State<AdminState>, caller: Caller) -> Result<Response, ApiError> {
    let from = caller.0.unwrap_or_else(|| "admin API".into());
    let r = ask(&s, |reply| Command::Reload {
        from,
        reply: Some(reply),
    })
    .await?;
    match r {
        Ok(summary) => Ok(Json(Reloaded {
            reloaded: true,
            summary,
        })
        .into_response()),
        Err(ControlError::Invalid(errs)) => Ok((
            StatusCode::BAD_REQUEST,
            Json(InvalidConfig {
                error: "the new configuration is invalid; the previous one keeps serving".into(),
                errors: errs.0.iter().map(ToString::to_string).collect(),
            }),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// Prometheus metrics.
///
/// Every `signpost_*` metric, in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses((status = 200, description = "Every metric",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body = String)),
)]
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
