//! The native JSON API under `/api/`.
//!
//! - `GET /api/traces/{traceId}`: every span of a trace that Sightline holds
//!   (no time range needed); 400 for a malformed id, 404 for an unknown one.
//! - `GET /api/stats`: how many items the caller's tenant has stored.
//!
//! The tenant is taken from the configured tenant header, else the default.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sightline_storage::head::{HeadCounts, Heads};
use sightline_storage::model::{Span, Tenant, TraceId};

use crate::error::ApiError;

#[derive(Clone)]
pub struct QueryState {
    pub heads: Arc<Heads>,
    pub tenant_header: String,
    pub default_tenant: Tenant,
}

impl QueryState {
    fn tenant(&self, headers: &HeaderMap) -> Result<Tenant, ApiError> {
        match headers.get(self.tenant_header.as_str()) {
            None => Ok(self.default_tenant.clone()),
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::BadRequest("tenant header is not text".into()))
                .and_then(|t| Tenant::new(t).map_err(|e| ApiError::BadRequest(e.to_string()))),
        }
    }
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/stats", get(stats))
        .with_state(state)
}

async fn trace(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let trace_id: TraceId = id
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("trace id {id:?}: {e}")))?;
    let spans = state.heads.spans.trace(&tenant, &trace_id);
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("trace {trace_id} not found")));
    }
    Ok(Json(json!({
        "traceId": trace_id.to_hex(),
        "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
    })))
}

async fn stats(
    State(state): State<QueryState>,
    headers: HeaderMap,
) -> Result<Json<HeadCounts>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(state.heads.counts(&tenant)))
}

fn span_json(s: &Span) -> Value {
    json!({
        "traceId": s.trace_id.to_hex(),
        "spanId": s.span_id.to_hex(),
        "parentSpanId": s.parent_span_id.map(|p| p.to_hex()),
        "name": s.name,
        "kind": s.kind as u8,
        "service": s.resource.service,
        "startTimeUnixNano": s.start_unix_nano.to_string(),
        "endTimeUnixNano": s.end_unix_nano.to_string(),
        "durationNanos": s.duration_nanos(),
        "status": { "code": s.status_code as u8, "message": s.status_message },
        "attributes": s.attributes.to_json(),
        "resource": s.resource.attributes.to_json(),
        "scope": { "name": s.scope.name, "version": s.scope.version },
        "events": s.events.iter().map(|e| json!({
            "timeUnixNano": e.time_unix_nano.to_string(),
            "name": e.name,
            "attributes": e.attributes.to_json(),
        })).collect::<Vec<_>>(),
        "links": s.links.iter().map(|l| json!({
            "traceId": l.trace_id.to_hex(),
            "spanId": l.span_id.to_hex(),
            "attributes": l.attributes.to_json(),
        })).collect::<Vec<_>>(),
    })
}
