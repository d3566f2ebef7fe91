//! The native JSON API under `/api/`. See `docs/api.md` for every route.

mod model;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sightline_storage::spans::SpanQuery;

use crate::error::ApiError;
use crate::params;
use crate::state::QueryState;

/// The paths served here, as described in `openapi.json`.
pub const PATHS: [&str; 6] = [
    "/api/traces",
    "/api/traces/{trace_id}",
    "/api/services",
    "/api/services/{service}/operations",
    "/api/dependencies",
    "/api/stats",
];

pub fn router(state: QueryState) -> Router {
    let [traces, one_trace, all_services, service_operations, edges, counts] = PATHS;
    let routes = Router::new()
        .route(traces, get(search_traces))
        .route(one_trace, get(trace))
        .route(all_services, get(services))
        .route(service_operations, get(operations))
        .route(edges, get(dependencies))
        .route(counts, get(stats));
    super::guarded::<ApiError>(routes, state)
}

type Reply = Result<Response, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceParams {
    /// Clock-skew adjustment, on by default.
    skew: Option<bool>,
}

async fn trace(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<TraceParams>,
) -> Reply {
    let tenant = state.tenant(&headers)?;
    let trace = state.trace(&tenant, &id, p.skew.unwrap_or(true)).await?;
    Ok(Json(model::TraceJson::of(&trace)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SearchParams {
    service: Option<String>,
    operation: Option<String>,
    /// `key=value` pairs, space or comma separated.
    attributes: Option<String>,
    /// `error` keeps traces with a span whose status is error.
    status: Option<String>,
    min_duration: Option<String>,
    max_duration: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
}

async fn search_traces(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<SearchParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let (start, end) = state.time_range(p.start.as_deref(), p.end.as_deref())?;
    let errors_only = match p.status.as_deref() {
        None | Some("" | "any") => false,
        Some("error") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("status: {other:?} is not error or any"))),
    };
    let query = SpanQuery {
        service: p.service.filter(|s| !s.is_empty()),
        name: p.operation.filter(|s| !s.is_empty()),
        attributes: p
            .attributes
            .as_deref()
            .map(|a| params::attributes("attributes", a))
            .transpose()?
            .unwrap_or_default(),
        errors_only,
        min_duration_nanos: params::duration_nanos("minDuration", p.min_duration.as_deref())?,
        max_duration_nanos: params::duration_nanos("maxDuration", p.max_duration.as_deref())?,
        start_unix_nano: start,
        end_unix_nano: end,
    };
    let limit = params::limit("limit", p.limit, 20)?;
    let traces = state.search(&tenant, query, limit).await?;
    Ok(Json(model::Traces { traces: traces.iter().map(model::Summary::of).collect() }).into_response())
}

async fn services(State(state): State<QueryState>, headers: HeaderMap) -> Reply {
    let tenant = state.tenant(&headers)?;
    Ok(Json(model::Services { services: state.spans.services(&tenant) }).into_response())
}

async fn operations(State(state): State<QueryState>, headers: HeaderMap, Path(service): Path<String>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let ops = state.spans.operations(&tenant, &service);
    Ok(Json(model::Operations::of(&ops)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    start: Option<String>,
    end: Option<String>,
}

async fn dependencies(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<RangeParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let (start, end) = state.time_range(p.start.as_deref(), p.end.as_deref())?;
    let edges = state.dependencies(&tenant, start, end).await?;
    Ok(Json(model::Dependencies { edges }).into_response())
}

async fn stats(State(state): State<QueryState>, headers: HeaderMap) -> Reply {
    let tenant = state.tenant(&headers)?;
    let spans = state.spans.counts(&tenant);
    let metric_samples = state.metrics.sample_count(&tenant);
    let logs = state.logs.clone();
    let log_records = state.read_logs(move |_| logs.count(&tenant)).await?;
    Ok(Json(model::Stats {
        spans: spans.head_spans + spans.part_spans,
        spans_in_head: spans.head_spans,
        span_parts: spans.parts,
        log_records,
        metric_samples,
    })
    .into_response())
}
