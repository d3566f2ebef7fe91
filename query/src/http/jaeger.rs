//! Jaeger-compatible query API under `/jaeger/api/`, in Jaeger's JSON
//! format, so that Grafana's Jaeger data source and the Jaeger UI work
//! against Sightline (`http://host:7070/jaeger`).

mod model;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use sightline_storage::spans::SpanQuery;

use self::model::{Dependency, Envelope, Operation, TraceJson};
use crate::error::ApiError;
use crate::http::json::kind_name;
use crate::params;
use crate::state::QueryState;

pub fn router(state: QueryState) -> Router {
    let routes = Router::new()
        .route("/jaeger/api/services", get(services))
        .route("/jaeger/api/services/{service}/operations", get(service_operations))
        .route("/jaeger/api/operations", get(operations))
        .route("/jaeger/api/traces", get(find_traces))
        .route("/jaeger/api/traces/{trace_id}", get(trace))
        .route("/jaeger/api/dependencies", get(dependencies));
    super::guarded::<JaegerError>(routes, state)
}

/// Errors in Jaeger's envelope: `{"data":null,…,"errors":[{"code":…,"msg":…}]}`.
pub struct JaegerError(ApiError);

impl From<ApiError> for JaegerError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        self.0.log_if_internal();
        let status = self.0.status();
        (status, Json(Envelope::<()>::error(status.as_u16(), self.0.to_string()))).into_response()
    }
}

type Reply = Result<Response, JaegerError>;

fn envelope<T: Serialize>(data: Vec<T>) -> Response {
    Json(Envelope::of(data)).into_response()
}

async fn services(State(state): State<QueryState>, headers: HeaderMap) -> Reply {
    let tenant = state.tenant(&headers)?;
    Ok(envelope(state.spans.services(&tenant)))
}

async fn service_operations(State(state): State<QueryState>, headers: HeaderMap, Path(service): Path<String>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let mut names: Vec<String> = state.spans.operations(&tenant, &service).into_iter().map(|(n, _)| n).collect();
    names.dedup();
    Ok(envelope(names))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OperationsParams {
    service: String,
    span_kind: Option<String>,
}

async fn operations(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<OperationsParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let ops = state.spans.operations(&tenant, &p.service);
    let wanted = |kind: &str| p.span_kind.as_deref().is_none_or(|want| want.is_empty() || want == kind);
    let ops: Vec<Operation> = ops
        .iter()
        .map(|(name, kind)| Operation { name, span_kind: kind_name(*kind) })
        .filter(|o| wanted(o.span_kind))
        .collect();
    Ok(envelope(ops))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FindParams {
    service: Option<String>,
    operation: Option<String>,
    tags: Option<String>,
    min_duration: Option<String>,
    max_duration: Option<String>,
    /// Microseconds since the epoch.
    start: Option<u64>,
    end: Option<u64>,
    limit: Option<usize>,
    /// `1h`, `2d`… or `custom` (use start and end).
    lookback: Option<String>,
}

async fn find_traces(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<FindParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let end = p.end.map_or_else(sightline_storage::model::now_unix_nanos, |us| us.saturating_mul(1000));
    let start = match (p.start, p.lookback.as_deref()) {
        (Some(us), _) => us.saturating_mul(1000),
        (None, Some(lb)) if lb != "custom" => end.saturating_sub(params::duration("lookback", lb)?.as_nanos() as u64),
        _ => end.saturating_sub(3_600_000_000_000),
    };
    let (start, end) = state.checked_range(start, end)?;
    let mut attributes = p.tags.as_deref().map(|t| params::attributes("tags", t)).transpose()?.unwrap_or_default();
    // Jaeger's `error=true` tag selects spans whose status is error.
    let errors_only = attributes.iter().any(|(k, v)| k == "error" && v == "true");
    attributes.retain(|(k, _)| k != "error");
    let query = SpanQuery {
        service: p.service.filter(|s| !s.is_empty()),
        name: p.operation.filter(|s| !s.is_empty() && s != "all"),
        attributes,
        errors_only,
        min_duration_nanos: params::duration_nanos("minDuration", p.min_duration.as_deref())?,
        max_duration_nanos: params::duration_nanos("maxDuration", p.max_duration.as_deref())?,
        start_unix_nano: start,
        end_unix_nano: end,
    };
    let limit = params::limit("limit", p.limit, 20)?;
    let traces = state.search(&tenant, query, limit).await?;
    Ok(envelope(traces.iter().map(TraceJson::of).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceParams {
    /// Accepted for Grafana, which may send the dashboard's range; not needed.
    #[serde(rename = "start")]
    _start: Option<u64>,
    #[serde(rename = "end")]
    _end: Option<u64>,
}

async fn trace(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(_p): Query<TraceParams>,
) -> Reply {
    let tenant = state.tenant(&headers)?;
    // Jaeger clients may drop leading zeros of 64-bit-prefixed ids.
    let id = format!("{id:0>32}");
    let trace = state.trace(&tenant, &id, true).await?;
    Ok(match trace.partial_reason() {
        Some(why) => Json(Envelope::partial(vec![TraceJson::of(&trace)], 503, why)).into_response(),
        None => envelope(vec![TraceJson::of(&trace)]),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DependencyParams {
    /// Milliseconds since the epoch.
    end_ts: Option<u64>,
    /// Milliseconds.
    lookback: Option<u64>,
}

async fn dependencies(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<DependencyParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let end = p.end_ts.map_or_else(sightline_storage::model::now_unix_nanos, |ms| ms.saturating_mul(1_000_000));
    let start = end.saturating_sub(p.lookback.unwrap_or(86_400_000).saturating_mul(1_000_000));
    let edges = state.dependencies(&tenant, start, end).await?;
    Ok(envelope(edges.iter().map(Dependency::of).collect()))
}
