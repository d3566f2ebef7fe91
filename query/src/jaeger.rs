//! Jaeger-compatible query API under `/jaeger/api/`, in Jaeger's JSON
//! format, so that Grafana's Jaeger data source and the Jaeger UI work
//! against Sightline (`http://host:7070/jaeger`).

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_storage::model::{AttrValue, Attributes, SpanKind, StatusCode};
use sightline_storage::spans::SpanQuery;

use crate::api::{QueryState, kind_name};
use crate::error::ApiError;
use crate::params;
use crate::traces::assemble::Trace;

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/jaeger/api/services", get(services))
        .route("/jaeger/api/services/{service}/operations", get(service_operations))
        .route("/jaeger/api/operations", get(operations))
        .route("/jaeger/api/traces", get(find_traces))
        .route("/jaeger/api/traces/{trace_id}", get(trace))
        .route("/jaeger/api/dependencies", get(dependencies))
        .with_state(state)
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
        let status = self.0.status();
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": self.0.to_string() }],
        });
        (status, Json(body)).into_response()
    }
}

type Reply = Result<Json<Value>, JaegerError>;

fn envelope(data: Value, total: usize) -> Json<Value> {
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
}

async fn services(State(state): State<QueryState>, headers: HeaderMap) -> Reply {
    let tenant = state.tenant(&headers)?;
    let services = state.spans.services(&tenant);
    let n = services.len();
    Ok(envelope(json!(services), n))
}

async fn service_operations(State(state): State<QueryState>, headers: HeaderMap, Path(service): Path<String>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let mut names: Vec<String> = state.spans.operations(&tenant, &service).into_iter().map(|(n, _)| n).collect();
    names.dedup();
    let n = names.len();
    Ok(envelope(json!(names), n))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OperationsParams {
    service: String,
    span_kind: Option<String>,
}

async fn operations(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<OperationsParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let ops: Vec<Value> = state
        .spans
        .operations(&tenant, &p.service)
        .into_iter()
        .filter(|(_, k)| p.span_kind.as_deref().is_none_or(|want| want.is_empty() || want == kind_name(*k)))
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind_name(kind) }))
        .collect();
    let n = ops.len();
    Ok(envelope(json!(ops), n))
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
    let n = traces.len();
    Ok(envelope(Value::Array(traces.iter().map(trace_json).collect()), n))
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
    Ok(envelope(json!([trace_json(&trace)]), 1))
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
    let data: Vec<Value> =
        edges.iter().map(|e| json!({ "parent": e.parent, "child": e.child, "callCount": e.call_count })).collect();
    let n = data.len();
    Ok(envelope(json!(data), n))
}

fn tag(key: &str, value: &AttrValue) -> Value {
    let (kind, v) = match value {
        AttrValue::Str(s) => ("string", json!(s)),
        AttrValue::Bool(b) => ("bool", json!(b)),
        AttrValue::Int(i) => ("int64", json!(i)),
        AttrValue::Double(d) => ("float64", json!(d)),
        AttrValue::Bytes(b) => ("binary", json!(hex::encode(b))),
        other => ("string", json!(other.to_text())),
    };
    json!({ "key": key, "type": kind, "value": v })
}

fn tags(attrs: &Attributes) -> Vec<Value> {
    attrs.0.iter().map(|(k, v)| tag(k, v)).collect()
}

fn micros(nanos: u64) -> u64 {
    nanos / 1000
}

/// One trace in Jaeger's model: spans with references, tags and logs, and
/// a process per distinct resource.
pub fn trace_json(t: &Trace) -> Value {
    let mut processes: BTreeMap<String, Value> = BTreeMap::new();
    let mut process_ids: Vec<(*const sightline_storage::model::Resource, String)> = Vec::new();
    let mut spans = Vec::with_capacity(t.nodes.len());
    let trace_id = t.trace_id.to_hex();
    for n in &t.nodes {
        let s = &n.span;
        let key = std::sync::Arc::as_ptr(&s.resource);
        let pid = match process_ids.iter().find(|(k, _)| *k == key) {
            Some((_, id)) => id.clone(),
            None => {
                let same = processes.iter().find(|(_, p)| {
                    p["serviceName"] == json!(s.resource.service) && p["tags"] == json!(tags(&s.resource.attributes))
                });
                let id = match same {
                    Some((id, _)) => id.clone(),
                    None => {
                        let id = format!("p{}", processes.len() + 1);
                        processes.insert(
                            id.clone(),
                            json!({ "serviceName": s.resource.service, "tags": tags(&s.resource.attributes) }),
                        );
                        id
                    }
                };
                process_ids.push((key, id.clone()));
                id
            }
        };
        let mut span_tags = tags(&s.attributes);
        if s.kind != SpanKind::Unspecified {
            span_tags.push(json!({ "key": "span.kind", "type": "string", "value": kind_name(s.kind) }));
        }
        match s.status_code {
            StatusCode::Error => {
                span_tags.push(json!({ "key": "error", "type": "bool", "value": true }));
                span_tags.push(json!({ "key": "otel.status_code", "type": "string", "value": "ERROR" }));
            }
            StatusCode::Ok => span_tags.push(json!({ "key": "otel.status_code", "type": "string", "value": "OK" })),
            StatusCode::Unset => {}
        }
        if !s.status_message.is_empty() {
            span_tags.push(json!({ "key": "otel.status_description", "type": "string", "value": s.status_message }));
        }
        if !s.scope.name.is_empty() {
            span_tags.push(json!({ "key": "otel.scope.name", "type": "string", "value": s.scope.name }));
        }
        let mut references: Vec<Value> = s
            .parent_span_id
            .map(|p| json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": p.to_hex() }))
            .into_iter()
            .collect();
        references.extend(s.links.iter().map(
            |l| json!({ "refType": "FOLLOWS_FROM", "traceID": l.trace_id.to_hex(), "spanID": l.span_id.to_hex() }),
        ));
        let mut warnings = Vec::new();
        if n.parent_missing {
            warnings.push(json!(format!(
                "invalid parent span IDs={}; the parent is not in this trace",
                s.parent_span_id.map(|p| p.to_hex()).unwrap_or_default()
            )));
        }
        if n.skew_adjustment_nanos != 0 {
            warnings.push(json!(format!(
                "This span's timestamps were adjusted by {}µs for clock skew",
                n.skew_adjustment_nanos / 1000
            )));
        }
        if n.duplicates > 0 {
            warnings.push(json!(format!("{} other spans with this span ID were dropped", n.duplicates)));
        }
        spans.push(json!({
            "traceID": trace_id,
            "spanID": s.span_id.to_hex(),
            "operationName": s.name,
            "references": references,
            "startTime": micros(n.start_unix_nano),
            "duration": micros(s.duration_nanos()),
            "tags": span_tags,
            "logs": s.events.iter().map(|e| {
                let mut fields = vec![json!({ "key": "event", "type": "string", "value": e.name })];
                fields.extend(tags(&e.attributes));
                json!({ "timestamp": micros(e.time_unix_nano), "fields": fields })
            }).collect::<Vec<_>>(),
            "processID": pid,
            "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
            "flags": s.flags,
        }));
    }
    let warnings = t.truncated.then(|| json!([format!("trace truncated to its first {} spans", t.nodes.len())]));
    json!({ "traceID": trace_id, "spans": spans, "processes": processes, "warnings": warnings })
}
