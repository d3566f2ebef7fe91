//! Log search under `/api/logs`: hits, counts over time, top values, and a
//! trace's lines. See `docs/api.md`.

mod model;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sightline_storage::logs::{LogExpr, LogSearch, SortKey, Target, TimeRange, TopField};
use sightline_storage::model::TraceId;

use self::model::{Cursor, Hit};
use crate::error::ApiError;
use crate::http::json::Text;
use crate::log_query as parse;
pub use crate::log_query::severity_name;
use crate::params;
use crate::state::QueryState;

/// The paths served here, as described in `openapi.json`.
pub const PATHS: [&str; 4] = ["/api/logs", "/api/logs/histogram", "/api/logs/top", "/api/traces/{trace_id}/logs"];

pub fn router(state: QueryState) -> Router {
    let [hits, counts, values, of_trace] = PATHS;
    let routes = Router::new()
        .route(hits, get(search))
        .route(counts, get(histogram))
        .route(values, get(top))
        .route(of_trace, get(trace_logs));
    super::guarded::<ApiError>(routes, state)
}

type Reply = Result<Response, ApiError>;

fn nanos_range(state: &QueryState, start: Option<&str>, end: Option<&str>) -> Result<TimeRange, ApiError> {
    let (start, end) = state.time_range(start, end)?;
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(TimeRange { start: clamp(start), end: clamp(end) })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// `newest` (default) or `oldest` first.
    order: Option<String>,
}

fn parse_cursor(c: &str) -> Result<SortKey, ApiError> {
    c.split_once('.')
        .and_then(|(ts, seq)| Some(SortKey { ts: ts.parse().ok()?, seq: seq.parse().ok()? }))
        .ok_or_else(|| ApiError::BadRequest(format!("cursor: {c:?} is not a cursor returned by a search")))
}

async fn search(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<SearchParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let expr = parse::parse(p.query.as_deref().unwrap_or_default())?;
    let newest_first = match p.order.as_deref() {
        None | Some("" | "newest") => true,
        Some("oldest") => false,
        Some(other) => return Err(ApiError::BadRequest(format!("order: {other:?} is not newest or oldest"))),
    };
    let s = LogSearch {
        tenant,
        expr,
        range: nanos_range(&state, p.start.as_deref(), p.end.as_deref())?,
        limit: params::limit("limit", p.limit, 100)?,
        newest_first,
        after: p.cursor.as_deref().filter(|c| !c.is_empty()).map(parse_cursor).transpose()?,
    };
    let limit = s.limit;
    let logs = state.logs.clone();
    let hits = state.read_logs(move |deadline| logs.search(&s, deadline)).await?;
    let cursor = hits.last().filter(|_| hits.len() == limit).map(|h| Text(Cursor(h.key)));
    Ok(Json(model::Hits { hits: hits.iter().map(Hit::of).collect(), cursor }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramParams {
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    /// Bucket width, e.g. `1m`; by default the range in about 60 buckets.
    step: Option<String>,
}

/// At most this many buckets per histogram.
const MAX_BUCKETS: i64 = 11_000;

async fn histogram(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<HistogramParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let expr = parse::parse(p.query.as_deref().unwrap_or_default())?;
    let range = nanos_range(&state, p.start.as_deref(), p.end.as_deref())?;
    let span = range.end - range.start;
    let step = match params::duration_nanos("step", p.step.as_deref())? {
        Some(0) => return Err(ApiError::BadRequest("step must be more than zero".into())),
        Some(s) => i64::try_from(s).unwrap_or(i64::MAX),
        None => nice_step(span / 60),
    };
    if span / step >= MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!("step: the range would need more than {MAX_BUCKETS} buckets")));
    }
    let logs = state.logs.clone();
    let counts = state.read_logs(move |deadline| logs.histogram(&tenant, &expr, range, step, deadline)).await?;
    let total: u64 = counts.iter().sum();
    let buckets = counts
        .iter()
        .enumerate()
        .map(|(i, &count)| model::Bucket { time: Text(range.start + i as i64 * step), count })
        .collect();
    Ok(Json(model::Histogram { start: Text(range.start), step: Text(step), total, buckets }).into_response())
}

/// The smallest of 1s, 5s, 10s, 30s, 1m, 5m, 10m, 30m, 1h, 3h, 6h, 12h, 1d… at least `n` nanoseconds.
fn nice_step(n: i64) -> i64 {
    const SECS: [i64; 13] = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400];
    let secs = SECS.iter().map(|s| s * 1_000_000_000).find(|&s| s >= n);
    secs.unwrap_or_else(|| (n / 86_400_000_000_000 + 1) * 86_400_000_000_000)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopParams {
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    /// `service` (default), `host`, `severity`, or an attribute:
    /// `attributes.k`, `resource.k`, or any other name for either.
    field: Option<String>,
    limit: Option<usize>,
}

async fn top(State(state): State<QueryState>, headers: HeaderMap, Query(p): Query<TopParams>) -> Reply {
    let tenant = state.tenant(&headers)?;
    let expr = parse::parse(p.query.as_deref().unwrap_or_default())?;
    let range = nanos_range(&state, p.start.as_deref(), p.end.as_deref())?;
    let field = top_field(p.field.as_deref().unwrap_or("service"))?;
    let severity = field == TopField::Severity;
    let limit = params::limit("limit", p.limit, 10)?;
    let logs = state.logs.clone();
    let mut values =
        state.read_logs(move |deadline| logs.top_values(&tenant, &expr, range, field, usize::MAX, deadline)).await?;
    if severity {
        // Numbers into their names: 17–20 are all ERROR.
        let mut by_name = std::collections::BTreeMap::<&str, u64>::new();
        for (n, c) in &values {
            *by_name.entry(severity_name(n.parse().unwrap_or(0))).or_default() += c;
        }
        values = by_name.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    values.truncate(limit);
    let values = values.into_iter().map(|(value, count)| model::TopValue { value, count }).collect();
    Ok(Json(model::Top { field: p.field.as_deref().unwrap_or("service"), values }).into_response())
}

/// The field a top-values request counts by, named as in queries.
fn top_field(name: &str) -> Result<TopField, ApiError> {
    let bad = || ApiError::BadRequest(format!("field: {name:?} is not service, host, severity or an attribute name"));
    Ok(match name {
        "service" | "service.name" => TopField::Service,
        "host" | "host.name" => TopField::Host,
        "severity" | "level" => TopField::Severity,
        // Fields of the query language that are not attributes.
        "" | "body" | "message" | "msg" | "trace_id" | "traceid" | "trace" | "scope" | "event" | "event_name"
        | "severity_text" => return Err(bad()),
        _ if name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '@' | '/')) => {
            TopField::Attribute(parse::attribute_target(name))
        }
        _ => return Err(bad()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceLogParams {
    limit: Option<usize>,
}

/// A trace's lines, oldest first.
async fn trace_logs(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<TraceLogParams>,
) -> Reply {
    let tenant = state.tenant(&headers)?;
    let trace_id: TraceId = id.parse().map_err(|e| ApiError::BadRequest(format!("trace id {id:?}: {e}")))?;
    let s = LogSearch {
        tenant,
        expr: LogExpr::Text { target: Target::TraceId, value: trace_id.to_hex(), prefix: false },
        range: TimeRange { start: 0, end: i64::MAX },
        limit: params::limit("limit", p.limit, 1000)?,
        newest_first: false,
        after: None,
    };
    let logs = state.logs.clone();
    let hits = state.read_logs(move |deadline| logs.search(&s, deadline)).await?;
    Ok(Json(model::TraceLogs { logs: hits.iter().map(Hit::of).collect() }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0), 1_000_000_000);
        assert_eq!(nice_step(61_000_000_000), 300_000_000_000);
        assert_eq!(nice_step(3 * 86_400_000_000_000), 4 * 86_400_000_000_000);
    }

    #[test]
    fn cursors_round_trip() {
        let k = SortKey { ts: 1_700_000_000_000_000_000, seq: (7 << 20) | 3 };
        assert_eq!(parse_cursor(&Cursor(k).to_string()).expect("cursor"), k);
        assert!(parse_cursor("x.1").is_err());
    }
}
