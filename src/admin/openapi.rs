//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of every admin
//! route, made from the routes themselves ([`super::api`]: each handler's
//! `#[utoipa::path]` and the types it answers), once per process.
//!
//! The middleware answers some calls before any handler does; that is
//! described here, for every operation, by the rules the middleware
//! follows ([`super::is_mutating`], [`super::UNGUARDED`]): calls that
//! change something take the bearer token (401 without it, when one is
//! configured) and are refused from a page of another site (403); without
//! a token, a `Host` that is a name is refused (403) except on
//! `/healthz`; a body over `MAX_BODY` is refused (413).

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, Ref, RefOr};
use utoipa::{OpenApi, ToSchema};

use super::{ErrorBody, UNGUARDED, is_mutating};

/// What the document says of itself and its tags; the paths and schemas
/// come from the routes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "signpost admin API",
        version = env!("CARGO_PKG_VERSION"),
        description = "The admin HTTP API of signpost, an authoritative DNS global server \
            load balancer: status, drains, the decision trace of an answer, reloads, \
            metrics and the dashboard.\n\n\
            Reads (GET) never need a token. Calls that change something (POST, DELETE) \
            need `Authorization: Bearer <token>` when `server.admin_token` is set, and are \
            refused (403) when they come from a page of another site. Without a token, \
            only an IP address or `localhost` is accepted in `Host` (403 otherwise: a \
            name could be DNS rebinding), except on `/healthz`.\n\n\
            Errors are `{\"error\": \"...\"}`; so are an unknown path (404) and a method a \
            path does not take (405).",
    ),
    tags(
        (name = "status", description = "What signpost serves and why: status, explain, \
            audit, answer shares"),
        (name = "operations", description = "Changing what is answered: drains, reloads"),
        (name = "lab", description = "The simulated load balancers of `signpost demo`"),
        (name = "dashboard", description = "The operator's web page"),
        (name = "service", description = "Liveness, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The security scheme's name in the document.
const BEARER: &str = "bearer";

static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    let doc = build();
    Bytes::from(
        doc.to_json()
            .expect("an OpenAPI document always serializes"),
    )
});

/// The document as JSON (built at the first call).
pub fn document() -> Bytes {
    DOCUMENT.clone()
}

/// The document: the routes' own descriptions, then what the middleware
/// answers.
fn build() -> Document {
    let mut doc = ApiDoc::openapi().merge_from(super::api().into_openapi());
    let error = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorBody::name())))
            .build()
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "`server.admin_token`; needed by calls that change something, when set",
                ))
                .build(),
        ),
    );
    let responses = [
        (
            "Unauthorized",
            ResponseBuilder::new()
                .description("The token is configured, and missing or wrong")
                .header(
                    header::WWW_AUTHENTICATE.as_str(),
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("`Bearer`"))
                        .build(),
                )
                .content("application/json", error())
                .build(),
        ),
        (
            "Forbidden",
            ResponseBuilder::new()
                .description(
                    "A change requested by a page of another site, or without a token a \
                     `Host` that is a name",
                )
                .content("application/json", error())
                .build(),
        ),
        (
            "PayloadTooLarge",
            ResponseBuilder::new()
                .description(format!(
                    "A request body over {} KiB (no call takes one)",
                    super::MAX_BODY / 1024
                ))
                .content("application/json", error())
                .build(),
        ),
    ];
    for (name, r) in responses {
        components.responses.insert(name.into(), RefOr::T(r));
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::DELETE, &mut item.delete),
            (Method::OPTIONS, &mut item.options),
            (Method::HEAD, &mut item.head),
            (Method::PATCH, &mut item.patch),
            (Method::TRACE, &mut item.trace),
        ];
        for (method, op) in operations {
            if let Some(op) = op {
                guard(path, &method, op);
            }
        }
    }
    doc
}

/// Adds to `op` what the middleware answers for it.
fn guard(path: &str, method: &Method, op: &mut Operation) {
    let mut add = |code: &str, name: &str| {
        op.responses
            .responses
            .insert(code.into(), RefOr::Ref(Ref::from_response_name(name)));
    };
    if is_mutating(method) {
        add("401", "Unauthorized");
    }
    if is_mutating(method) || path != UNGUARDED {
        add("403", "Forbidden");
    }
    add("413", "PayloadTooLarge");
    if is_mutating(method) {
        // the token, or nothing when none is configured
        op.security = Some(vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
}

/// This document.
///
/// The OpenAPI 3.1 description of every admin route, generated from the
/// code that serves them.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 description of every admin route",
        content_type = "application/json", body = Object)),
)]
pub(super) async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_takes_the_token_and_every_call_may_be_refused() {
        let doc: serde_json::Value = serde_json::from_slice(&document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.contains_key("/v1/openapi.json"));
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let m: Method = method.to_uppercase().parse().unwrap();
                let r = &op["responses"];
                assert_eq!(
                    op["security"].is_array(),
                    is_mutating(&m),
                    "{method} {path}"
                );
                assert_eq!(r.get("401").is_some(), is_mutating(&m), "{method} {path}");
                assert_eq!(r.get("403").is_some(), path != UNGUARDED, "{method} {path}");
                assert!(r.get("200").is_some(), "{method} {path}");
            }
        }
    }
}
