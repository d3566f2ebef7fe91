//! Tempo's query API under `/tempo/api/`, so that Grafana's Tempo data
//! source works against Sightline (`http://host:7070/tempo`): traces by id
//! (OTLP/JSON, or protobuf by `Accept`), TraceQL search, tag names and
//! values, echo and build info. Errors are plain text, as Tempo sends them.

mod model;
mod otlp;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sightline_storage::model::{Span, Tenant};

use self::model::{Batches, Field, Metrics, SpanSet, SpanSummary, TraceSummary};
use crate::error::ApiError;
use crate::http::json::Text;
use crate::http::plain::PlainError;
use crate::params;
use crate::state::QueryState;
use crate::traceql::ast::{Intrinsic, Operand, Scope};
use crate::traceql::{self, Compiled, Found, Got, Search};

pub fn router(state: QueryState) -> Router {
    let routes = Router::new()
        .route("/tempo/api/echo", get(|| async { "echo" }))
        .route("/tempo/api/status/buildinfo", get(buildinfo))
        .route("/tempo/api/traces/{trace_id}", get(trace_v1))
        .route("/tempo/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/tempo/api/search", get(search))
        .route("/tempo/api/search/tags", get(tags_v1))
        .route("/tempo/api/v2/search/tags", get(tags_v2))
        .route("/tempo/api/search/tag/{tag}/values", get(values_v1))
        .route("/tempo/api/v2/search/tag/{tag}/values", get(values_v2));
    super::guarded::<PlainError>(routes, state)
}

type Reply = Result<Response, PlainError>;

/// The Tempo API level this answers (Grafana picks features by it).
async fn buildinfo() -> Json<crate::http::json::BuildInfo> {
    Json(crate::http::json::BuildInfo::at("2.7.0"))
}

/// The query parameters, as a map: Grafana sends more than this reads.
type Params = Query<HashMap<String, String>>;

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/protobuf") || a.contains("application/x-protobuf"))
}

/// The spans of one trace; Tempo's ids may come without their leading zeros.
async fn spans_of(state: &QueryState, headers: &HeaderMap, id: &str) -> Result<Vec<Span>, ApiError> {
    let tenant = state.tenant(headers)?;
    if id.is_empty() || id.len() > 32 {
        return Err(ApiError::BadRequest(format!("trace id {id:?} is not 1 to 32 hex digits")));
    }
    let trace = state.trace(&tenant, &format!("{id:0>32}"), false).await?;
    Ok(trace.nodes.into_iter().map(|n| n.span).collect())
}

async fn trace_v1(State(state): State<QueryState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let spans = spans_of(&state, &headers, &id).await?;
    let batches = Batches::of(&spans);
    if wants_protobuf(&headers) {
        return Ok(([(header::CONTENT_TYPE, "application/protobuf")], otlp::trace(&batches)).into_response());
    }
    Ok(Json(model::TraceV1 { batches: &model::ResourceSpansList(&batches) }).into_response())
}

async fn trace_v2(State(state): State<QueryState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let spans = spans_of(&state, &headers, &id).await?;
    let batches = Batches::of(&spans);
    if wants_protobuf(&headers) {
        return Ok(([(header::CONTENT_TYPE, "application/protobuf")], otlp::trace_v2(&batches)).into_response());
    }
    let list = model::ResourceSpansList(&batches);
    Ok(Json(model::TraceV2 { trace: model::TraceBody { resource_spans: &list }, status: "COMPLETE" }).into_response())
}

/// Unix seconds (Tempo's `start` and `end`) as nanoseconds; defaults as the other APIs.
fn range(state: &QueryState, p: &HashMap<String, String>) -> Result<(u64, u64), ApiError> {
    let seconds = |name: &str| -> Result<Option<u64>, ApiError> {
        p.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<u64>()
                    .map(|s| s.saturating_mul(1_000_000_000))
                    .map_err(|_| ApiError::BadRequest(format!("{name}: {v:?} is not Unix seconds")))
            })
            .transpose()
    };
    let end = seconds("end")?.unwrap_or_else(sightline_storage::model::now_unix_nanos);
    let start = seconds("start")?.unwrap_or(end.saturating_sub(3_600_000_000_000));
    state.checked_range(start, end)
}

fn number(p: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ApiError> {
    p.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().map_err(|_| ApiError::BadRequest(format!("{name}: {v:?} is not a number"))))
        .transpose()
}

/// The query of a search: `q`, or the older `tags` (logfmt `key=value`
/// pairs, any scope), or every trace.
fn query_of(p: &HashMap<String, String>) -> Result<Compiled, ApiError> {
    let text = match (p.get("q").filter(|q| !q.trim().is_empty()), p.get("tags").filter(|t| !t.trim().is_empty())) {
        (Some(q), _) => q.clone(),
        (None, Some(tags)) => {
            let pairs = params::attributes("tags", tags)?;
            let terms: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    let text = format!(".{k} = {v:?}");
                    match v.parse::<i64>() {
                        Ok(n) => format!("({text} || .{k} = {n})"),
                        Err(_) => text,
                    }
                })
                .collect();
            format!("{{ {} }}", terms.join(" && "))
        }
        (None, None) => "{}".into(),
    };
    traceql::compile(&text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn search(State(state): State<QueryState>, headers: HeaderMap, Query(p): Params) -> Reply {
    let tenant = state.tenant(&headers)?;
    let (start, end) = range(&state, &p)?;
    let query = Arc::new(query_of(&p)?);
    let fields = traceql::shown_fields(&query.query);
    let search = Search {
        query,
        start_unix_nano: start,
        end_unix_nano: end,
        min_trace_duration_nanos: params::duration_nanos("minDuration", p.get("minDuration").map(String::as_str))?,
        max_trace_duration_nanos: params::duration_nanos("maxDuration", p.get("maxDuration").map(String::as_str))?,
        limit: params::limit("limit", number(&p, "limit")?, 20)?,
    };
    let spss = number(&p, "spss")?.unwrap_or(3).max(1);
    let found = state.traceql(&tenant, search, spss).await?;
    Ok(Json(summaries(&found, &fields)).into_response())
}

fn summaries<'a>(found: &'a Found, fields: &'a [Operand]) -> model::SearchResponse<'a> {
    const NO_ROOT: &str = "<root span not yet received>";
    let traces = found
        .hits
        .iter()
        .map(|hit| {
            let spans = hit
                .spans
                .iter()
                .map(|s| SpanSummary {
                    span_id: s.span_id.to_hex(),
                    name: &s.name,
                    start_time_unix_nano: Text(s.start_unix_nano),
                    duration_nanos: Text(s.duration_nanos()),
                    attributes: fields.iter().filter_map(|f| shown(s, f)).collect(),
                })
                .collect();
            let set = SpanSet { spans, matched: hit.matched };
            let id = hit.trace_id.to_hex();
            TraceSummary {
                trace_id: id.trim_start_matches('0').to_owned(),
                root_service_name: hit.root_service.as_deref().unwrap_or(NO_ROOT),
                root_trace_name: hit.root_name.as_deref(),
                start_time_unix_nano: Text(hit.start_unix_nano),
                duration_ms: hit.duration_nanos / 1_000_000,
                span_set: set.clone(),
                span_sets: [set],
            }
        })
        .collect();
    let metrics =
        Metrics { inspected_traces: found.inspected, inspected_bytes: Text(0), completed_jobs: 1, total_jobs: 1 };
    model::SearchResponse { traces, metrics }
}

/// A field named by the query, as shown on an answered span.
fn shown<'a>(s: &'a Span, f: &Operand) -> Option<Field<'a>> {
    let (key, value) = match f {
        Operand::Attribute(scope, key) => (key.clone(), traceql::eval::attribute(s, *scope, key)?),
        Operand::Intrinsic(i @ (Intrinsic::Status | Intrinsic::Kind | Intrinsic::StatusMessage)) => {
            (i.name().into(), traceql::eval::intrinsic(s, *i))
        }
        _ => return None,
    };
    Some(Field { key, value })
}

/// The most traces a tag lookup reads (the newest of the range that match `q`).
const TAG_SAMPLE: usize = 250;

/// The answered spans of the newest traces that match `q` (every trace without one).
async fn sample(state: &QueryState, tenant: &Tenant, p: &HashMap<String, String>) -> Result<Vec<Span>, ApiError> {
    let (start, end) = range(state, p)?;
    let query = Arc::new(query_of(p)?);
    let search = Search {
        query,
        start_unix_nano: start,
        end_unix_nano: end,
        min_trace_duration_nanos: None,
        max_trace_duration_nanos: None,
        limit: TAG_SAMPLE,
    };
    let found = state.traceql(tenant, search, usize::MAX).await?;
    Ok(found.hits.into_iter().flat_map(|h| h.spans).collect())
}

/// Attribute names by scope, from the sample.
fn tag_names(spans: &[Span]) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut span_tags, mut resource_tags) = (BTreeSet::new(), BTreeSet::new());
    for s in spans {
        span_tags.extend(s.attributes.0.iter().map(|(k, _)| k.clone()));
        resource_tags.extend(s.resource.attributes.0.iter().map(|(k, _)| k.clone()));
    }
    resource_tags.insert("service.name".into());
    (span_tags, resource_tags)
}

const INTRINSIC_TAGS: [&str; 8] =
    ["duration", "kind", "name", "rootName", "rootServiceName", "status", "statusMessage", "traceDuration"];

async fn tags_v2(State(state): State<QueryState>, headers: HeaderMap, Query(p): Params) -> Reply {
    let tenant = state.tenant(&headers)?;
    let wanted = p.get("scope").map(String::as_str).unwrap_or("");
    if !matches!(wanted, "" | "none" | "all" | "span" | "resource" | "intrinsic") {
        return Err(ApiError::BadRequest(format!("scope: {wanted:?} is not span, resource, intrinsic or none")).into());
    }
    let spans = sample(&state, &tenant, &p).await?;
    let (span_tags, resource_tags) = tag_names(&spans);
    let scopes = [
        ("span", span_tags.into_iter().collect()),
        ("resource", resource_tags.into_iter().collect()),
        ("intrinsic", INTRINSIC_TAGS.map(String::from).to_vec()),
    ]
    .into_iter()
    .filter(|(name, _)| matches!(wanted, "" | "none" | "all") || wanted == *name)
    .map(|(name, tags)| model::TagScope { name, tags })
    .collect();
    Ok(Json(model::TagScopes { scopes }).into_response())
}

async fn tags_v1(State(state): State<QueryState>, headers: HeaderMap, Query(p): Params) -> Reply {
    let tenant = state.tenant(&headers)?;
    let spans = sample(&state, &tenant, &p).await?;
    let (span_tags, resource_tags) = tag_names(&spans);
    let tag_names = span_tags.union(&resource_tags).cloned().collect();
    Ok(Json(model::TagNames { tag_names }).into_response())
}

/// The values a tag takes in the sample, with their TraceQL types.
async fn typed_values(
    state: &QueryState,
    headers: &HeaderMap,
    tag: &str,
    p: &HashMap<String, String>,
) -> Result<Vec<model::TypedValue>, ApiError> {
    let tenant = state.tenant(headers)?;
    // The tag as a field: `span.x`, `resource.x`, `.x`, an intrinsic, or a bare name (any scope).
    let field = traceql::parse::field(tag).unwrap_or_else(|_| Operand::Attribute(Scope::Any, tag.to_owned()));
    let no_filter = p.get("q").is_none_or(|q| q.trim().is_empty() || q.trim() == "{}");
    if no_filter && field == Operand::Attribute(Scope::Resource, "service.name".into()) {
        let services = state.spans.services(&tenant);
        return Ok(services.into_iter().map(|value| model::TypedValue { kind: "string", value }).collect());
    }
    let spans = sample(state, &tenant, p).await?;
    let mut values: BTreeMap<(&'static str, String), ()> = BTreeMap::new();
    for s in &spans {
        let got = match &field {
            Operand::Attribute(scope, key) => traceql::eval::attribute(s, *scope, key),
            Operand::Intrinsic(i) => Some(traceql::eval::intrinsic(s, *i)),
            Operand::Literal(_) => None,
        };
        if let Some(typed) = got.as_ref().and_then(typed) {
            values.insert(typed, ());
        }
    }
    Ok(values.into_keys().map(|(kind, value)| model::TypedValue { kind, value }).collect())
}

/// A value with its TraceQL type name, as tag values are answered.
fn typed(g: &Got) -> Option<(&'static str, String)> {
    Some(match g {
        Got::Str(s) => ("string", (*s).to_owned()),
        Got::Int(i) => ("int", i.to_string()),
        Got::Float(f) => ("float", f.to_string()),
        Got::Bool(b) => ("bool", b.to_string()),
        Got::Duration(d) => ("duration", format!("{d}ns")),
        Got::Status(s) => ("keyword", crate::http::json::status_name(*s).to_owned()),
        Got::Kind(k) => ("keyword", crate::http::json::kind_name(*k).to_owned()),
        Got::Other | Got::Nil => return None,
    })
}

async fn values_v2(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(p): Params,
) -> Reply {
    let tag_values = typed_values(&state, &headers, &tag, &p).await?;
    Ok(Json(model::TypedTagValues { tag_values }).into_response())
}

/// Unscoped: the attribute in either scope, values as text.
async fn values_v1(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(p): Params,
) -> Reply {
    let values = typed_values(&state, &headers, &format!(".{tag}"), &p).await?;
    let tag_values: BTreeSet<String> = values.into_iter().map(|v| v.value).collect();
    Ok(Json(model::TagValues { tag_values: tag_values.into_iter().collect() }).into_response())
}
