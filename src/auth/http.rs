//! Authentication on the HTTP ports: a middleware that decides what each
//! request needs, checks the key, and replaces the tenant header with the
//! key's tenant; and `GET /api/whoami`, which the UI asks.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use sightline_collector::IngestError;
use sightline_collector::receivers::otlp_http;
use sightline_storage::model::Tenant;

use super::{Auth, Caller, Denied, MetricsAccess, Role};

#[derive(Clone)]
pub struct Guard {
    pub auth: Option<Auth>,
    pub tenant_header: HeaderName,
    pub default_tenant: Tenant,
    pub metrics: MetricsAccess,
}

/// What a request needs.
#[derive(Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    AnyKey,
    Role(Role, &'static str),
}

fn need(method: &Method, path: &str, metrics: MetricsAccess) -> Need {
    match path {
        "/" | "/favicon.svg" | "/healthz" | "/readyz" | "/api/openapi.json" => Need::Nothing,
        p if p.starts_with("/assets/") => Need::Nothing,
        "/api/whoami" => Need::AnyKey,
        "/metrics" => match metrics {
            MetricsAccess::Open => Need::Nothing,
            MetricsAccess::Read => Need::Role(Role::Read, "read /metrics"),
            MetricsAccess::Admin => Need::Role(Role::Admin, "read /metrics"),
        },
        "/v1/traces"
        | "/v1/logs"
        | "/v1/metrics"
        | "/prometheus/api/v1/write"
        | "/loki/api/v1/push"
        | "/api/v2/spans" => Need::Role(Role::Ingest, "send telemetry"),
        "/-/reload" => Need::Role(Role::Admin, "reload rules"),
        // The bulk API and the probes shippers send before it.
        p if p == "/elasticsearch" || p.starts_with("/elasticsearch/") => Need::Role(Role::Ingest, "send telemetry"),
        p if p.starts_with("/api/dashboards") && method != Method::GET && method != Method::HEAD => {
            Need::Role(Role::Admin, "change dashboards")
        }
        _ => Need::Role(Role::Read, "query"),
    }
}

/// Puts the guard in front of every route of `router`.
pub fn guarded(router: Router, guard: Guard) -> Router {
    let guard = Arc::new(guard);
    router
        .route("/api/whoami", get(whoami).with_state(guard.clone()))
        .layer(axum::middleware::from_fn_with_state(guard, check))
}

async fn check(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let Some(auth) = &guard.auth else {
        return next.run(request).await;
    };
    let need = need(request.method(), request.uri().path(), guard.metrics);
    let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    let caller = match need {
        Need::Nothing => return next.run(request).await,
        Need::AnyKey => auth.authenticate(authorization),
        Need::Role(role, what) => auth.check(authorization, role, what),
    };
    match caller {
        Ok(caller) => {
            let headers = request.headers_mut();
            headers.remove(&guard.tenant_header);
            if let Ok(v) = HeaderValue::from_str(caller.tenant.as_str()) {
                headers.insert(guard.tenant_header.clone(), v);
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(denied) => refusal(request.uri().path(), request.headers(), &denied),
    }
}

/// 401 or 403, in the format the surface's clients read: an OTLP status
/// on the OTLP paths, Prometheus's error object elsewhere (which the UI
/// and the other APIs' clients read as well).
fn refusal(path: &str, headers: &HeaderMap, denied: &Denied) -> Response {
    let message = denied.to_string();
    let mut response = if path.starts_with("/v1/") {
        let e = if denied.unauthenticated() {
            IngestError::Unauthenticated(message)
        } else {
            IngestError::PermissionDenied(message)
        };
        otlp_http::refusal(headers, &e)
    } else {
        let (status, kind) = if denied.unauthenticated() {
            (StatusCode::UNAUTHORIZED, "unauthorized")
        } else {
            (StatusCode::FORBIDDEN, "forbidden")
        };
        (status, Json(serde_json::json!({ "status": "error", "errorType": kind, "error": message }))).into_response()
    };
    if denied.unauthenticated() {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sightline\""));
    }
    response
}

/// Whether authentication is on, and who the caller is.
async fn whoami(State(guard): State<Arc<Guard>>, caller: Option<Extension<Caller>>, headers: HeaderMap) -> Response {
    match caller {
        Some(Extension(c)) => Json(serde_json::json!({
            "auth": true, "tenant": c.tenant.as_str(), "role": c.role.as_str()
        }))
        .into_response(),
        None => {
            let tenant = headers
                .get(&guard.tenant_header)
                .and_then(|v| v.to_str().ok())
                .map_or_else(|| guard.default_tenant.as_str().to_owned(), str::to_owned);
            Json(serde_json::json!({ "auth": false, "tenant": tenant, "role": "admin" })).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_surface_needs_its_role() {
        let m = MetricsAccess::Read;
        assert_eq!(need(&Method::GET, "/", m), Need::Nothing);
        assert_eq!(need(&Method::GET, "/assets/index-abc.js", m), Need::Nothing);
        assert_eq!(need(&Method::GET, "/readyz", m), Need::Nothing);
        assert_eq!(need(&Method::POST, "/v1/traces", m), Need::Role(Role::Ingest, "send telemetry"));
        assert_eq!(need(&Method::POST, "/prometheus/api/v1/write", m), Need::Role(Role::Ingest, "send telemetry"));
        assert_eq!(need(&Method::GET, "/prometheus/api/v1/query", m), Need::Role(Role::Read, "query"));
        assert_eq!(need(&Method::GET, "/api/dashboards/x", m), Need::Role(Role::Read, "query"));
        assert_eq!(need(&Method::PUT, "/api/dashboards/x", m), Need::Role(Role::Admin, "change dashboards"));
        assert_eq!(need(&Method::GET, "/metrics", MetricsAccess::Open), Need::Nothing);
        assert_eq!(need(&Method::GET, "/metrics", MetricsAccess::Admin), Need::Role(Role::Admin, "read /metrics"));
        assert_eq!(need(&Method::GET, "/api/whoami", m), Need::AnyKey);
    }
}
