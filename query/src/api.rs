//! The native JSON API under `/api/`. See `docs/api.md` for every route.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_storage::logs::LogStore;
use sightline_storage::metrics::MetricStore;
use sightline_storage::model::{SpanKind, StatusCode, Tenant, TraceId};
use sightline_storage::spans::{SpanQuery, SpanStore};

use crate::error::ApiError;
use crate::params;
use crate::traces::assemble::{Node, Trace, assemble};
use crate::traces::search;

#[derive(Clone)]
pub struct QueryState {
    pub spans: SpanStore,
    pub logs: LogStore,
    pub metrics: MetricStore,
    pub tenant_header: String,
    pub default_tenant: Tenant,
    /// Traces with more spans are returned truncated, and flagged.
    pub max_spans_per_trace: usize,
    pub dashboards: crate::dashboards::DashboardStore,
    pub limits: crate::limits::QueryLimits,
    /// Queries running per tenant, for `limits.max_concurrent_per_tenant`.
    pub running: crate::limits::Running,
}

impl QueryState {
    /// The caller's tenant, from the tenant header or the default.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<Tenant, ApiError> {
        match headers.get(self.tenant_header.as_str()) {
            None => Ok(self.default_tenant.clone()),
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::BadRequest("tenant header is not text".into()))
                .and_then(|t| Tenant::new(t).map_err(|e| ApiError::BadRequest(e.to_string()))),
        }
    }

    /// One trace, assembled; 404 when the tenant holds no span of it.
    pub async fn trace(&self, tenant: &Tenant, id: &str, adjust_skew: bool) -> Result<Trace, ApiError> {
        let trace_id: TraceId = id.parse().map_err(|e| ApiError::BadRequest(format!("trace id {id:?}: {e}")))?;
        let (spans, tenant, limit) = (self.spans.clone(), tenant.clone(), self.max_spans_per_trace);
        let trace = self
            .off_reactor(async move {
                let found = spans.trace(&tenant, trace_id, limit).await?;
                Ok::<_, ApiError>(
                    (!found.spans.is_empty()).then(|| assemble(trace_id, found.spans, found.truncated, adjust_skew)),
                )
            })
            .await??;
        trace.ok_or_else(|| ApiError::NotFound(format!("trace {trace_id} not found")))
    }

    /// Trace search, off the reactor.
    pub async fn search(&self, tenant: &Tenant, query: SpanQuery, limit: usize) -> Result<Vec<Trace>, ApiError> {
        let (spans, tenant, max) = (self.spans.clone(), tenant.clone(), self.max_spans_per_trace);
        Ok(self.off_reactor(async move { search::search(&spans, &tenant, &query, limit, max).await }).await??)
    }

    /// The service graph, off the reactor.
    pub async fn dependencies(&self, tenant: &Tenant, start: u64, end: u64) -> Result<Vec<search::Edge>, ApiError> {
        let (spans, tenant) = (self.spans.clone(), tenant.clone());
        Ok(self.off_reactor(async move { search::dependencies(&spans, &tenant, start, end).await }).await??)
    }

    /// Runs a store read (Parquet decoding is CPU work) on a blocking
    /// thread, so that the async reactor stays responsive; the read is
    /// dropped (cancelled) at the query deadline.
    async fn off_reactor<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let runtime = tokio::runtime::Handle::current();
        let timeout = self.limits.timeout();
        tokio::task::spawn_blocking(move || runtime.block_on(tokio::time::timeout(timeout, work)))
            .await
            .map_err(|e| ApiError::Storage(sightline_storage::StorageError::Part(format!("query task failed: {e}"))))?
            .map_err(|_| ApiError::Timeout(crate::limits::Exceeded::Time(timeout).to_string()))
    }

    /// The time range of a query: `end` defaults to now, `start` to an hour
    /// before it; no longer than `limits.max_range_hours`.
    pub(crate) fn time_range(&self, start: Option<&str>, end: Option<&str>) -> Result<(u64, u64), ApiError> {
        let end = end
            .map(|e| params::time_nanos("end", e))
            .transpose()?
            .unwrap_or_else(sightline_storage::model::now_unix_nanos);
        let start =
            start.map(|s| params::time_nanos("start", s)).transpose()?.unwrap_or(end.saturating_sub(3_600_000_000_000));
        self.checked_range(start, end)
    }

    /// A range that runs forward and is within `limits.max_range_hours`.
    pub(crate) fn checked_range(&self, start: u64, end: u64) -> Result<(u64, u64), ApiError> {
        let (start, end) = params::range(start, end)?;
        self.limits.check_range_nanos(start, end).map_err(ApiError::BadRequest)?;
        Ok((start, end))
    }
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/traces", get(search_traces))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(operations))
        .route("/api/dependencies", get(dependencies))
        .route("/api/stats", get(stats))
        .with_state(state)
}

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
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let trace = state.trace(&tenant, &id, p.skew.unwrap_or(true)).await?;
    Ok(Json(trace_json(&trace)))
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

async fn search_traces(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "traces": traces.iter().map(summary_json).collect::<Vec<_>>() })))
}

async fn services(State(state): State<QueryState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    Ok(Json(json!({ "services": state.spans.services(&tenant) })))
}

async fn operations(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let ops = state.spans.operations(&tenant, &service);
    Ok(Json(json!({
        "operations": ops.iter().map(|(name, kind)| json!({ "name": name, "kind": kind_name(*kind) })).collect::<Vec<_>>()
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    start: Option<String>,
    end: Option<String>,
}

async fn dependencies(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<RangeParams>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let (start, end) = state.time_range(p.start.as_deref(), p.end.as_deref())?;
    let edges = state.dependencies(&tenant, start, end).await?;
    Ok(Json(json!({ "edges": edges })))
}

async fn stats(State(state): State<QueryState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let spans = state.spans.counts(&tenant);
    let samples = state.metrics.sample_count(&tenant);
    let logs = state.logs.clone();
    let log_records = tokio::task::spawn_blocking(move || logs.count(&tenant))
        .await
        .map_err(|e| ApiError::Storage(sightline_storage::StorageError::LogIndex(e.to_string())))??;
    Ok(Json(json!({
        "spans": spans.head_spans + spans.part_spans,
        "spansInHead": spans.head_spans,
        "spanParts": spans.parts,
        "logRecords": log_records,
        "metricSamples": samples,
    })))
}

pub fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

fn node_json(n: &Node) -> Value {
    let s = &n.span;
    json!({
        "spanId": s.span_id.to_hex(),
        "parentSpanId": s.parent_span_id.map(|p| p.to_hex()),
        "depth": n.depth,
        "name": s.name,
        "kind": kind_name(s.kind),
        "service": s.resource.service,
        "startTimeUnixNano": n.start_unix_nano.to_string(),
        "durationNanos": s.duration_nanos(),
        "selfNanos": n.self_nanos,
        "status": { "code": status_name(s.status_code), "message": s.status_message },
        "criticalPath": n.on_critical_path,
        "parentMissing": n.parent_missing,
        "duplicates": n.duplicates,
        "skewAdjustmentNanos": n.skew_adjustment_nanos,
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

pub fn trace_json(t: &Trace) -> Value {
    let id = |i: &usize| t.nodes[*i].span.span_id.to_hex();
    json!({
        "traceId": t.trace_id.to_hex(),
        "startTimeUnixNano": t.start_unix_nano.to_string(),
        "durationNanos": t.duration_nanos(),
        "spanCount": t.nodes.len(),
        "errorCount": t.errors(),
        "truncated": t.truncated,
        "services": t.services,
        "roots": t.roots.iter().map(id).collect::<Vec<_>>(),
        "orphans": t.orphans.iter().map(id).collect::<Vec<_>>(),
        "spans": t.nodes.iter().map(node_json).collect::<Vec<_>>(),
    })
}

fn summary_json(t: &Trace) -> Value {
    let root = t.root();
    json!({
        "traceId": t.trace_id.to_hex(),
        "rootService": root.map(|n| n.span.resource.service.as_str()),
        "rootName": root.map(|n| n.span.name.as_str()),
        "startTimeUnixNano": t.start_unix_nano.to_string(),
        "durationNanos": t.duration_nanos(),
        "spanCount": t.nodes.len(),
        "errorCount": t.errors(),
        "services": t.services.keys().collect::<Vec<_>>(),
        "truncated": t.truncated,
    })
}
