//! Log search under `/api/logs`: hits, counts over time, top values, and a
//! trace's lines. See `docs/api.md`.

pub mod parse;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_storage::logs::{LogExpr, LogHit, LogSearch, SortKey, Target, TimeRange, TopField};
use sightline_storage::model::{AttrValue, TraceId};

use std::time::Instant;

use sightline_storage::StorageError;

use crate::api::QueryState;
use crate::error::ApiError;
use crate::params;

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/logs", get(search))
        .route("/api/logs/histogram", get(histogram))
        .route("/api/logs/top", get(top))
        .route("/api/traces/{trace_id}/logs", get(trace_logs))
        .with_state(state)
}

/// Runs a log store call on a blocking thread (tantivy reads are CPU and
/// I/O), giving it the query deadline.
async fn blocking<T: Send + 'static>(
    state: &QueryState,
    work: impl FnOnce(Option<Instant>) -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    let timeout = state.limits.timeout();
    let deadline = Instant::now() + timeout;
    tokio::task::spawn_blocking(move || work(Some(deadline)))
        .await
        .map_err(|e| ApiError::Storage(StorageError::LogIndex(format!("query task failed: {e}"))))?
        .map_err(|e| match e {
            StorageError::Deadline => ApiError::Timeout(crate::limits::Exceeded::Time(timeout).to_string()),
            e => ApiError::from(e),
        })
}

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

fn cursor_text(k: SortKey) -> String {
    format!("{}.{}", k.ts, k.seq)
}

async fn search(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<SearchParams>,
) -> Result<Json<Value>, ApiError> {
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
    let hits = blocking(&state, move |deadline| logs.search(&s, deadline)).await?;
    let cursor = (hits.len() == limit).then(|| hits.last().map(|h| cursor_text(h.key))).flatten();
    Ok(Json(json!({ "hits": hits.iter().map(hit_json).collect::<Vec<_>>(), "cursor": cursor })))
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

async fn histogram(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<HistogramParams>,
) -> Result<Json<Value>, ApiError> {
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
    let counts = blocking(&state, move |deadline| logs.histogram(&tenant, &expr, range, step, deadline)).await?;
    let total: u64 = counts.iter().sum();
    let buckets: Vec<Value> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| json!({ "time": (range.start + i as i64 * step).to_string(), "count": c }))
        .collect();
    Ok(Json(json!({ "start": range.start.to_string(), "step": step.to_string(), "total": total, "buckets": buckets })))
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
    /// `service` (default), `host` or `severity`.
    field: Option<String>,
    limit: Option<usize>,
}

async fn top(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<TopParams>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.tenant(&headers)?;
    let expr = parse::parse(p.query.as_deref().unwrap_or_default())?;
    let range = nanos_range(&state, p.start.as_deref(), p.end.as_deref())?;
    let field = match p.field.as_deref() {
        None | Some("service") => TopField::Service,
        Some("host") => TopField::Host,
        Some("severity") => TopField::Severity,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("field: {other:?} is not service, host or severity")));
        }
    };
    let limit = params::limit("limit", p.limit, 10)?;
    let logs = state.logs.clone();
    let mut values =
        blocking(&state, move |deadline| logs.top_values(&tenant, &expr, range, field, usize::MAX, deadline)).await?;
    if field == TopField::Severity {
        // Numbers into their names: 17–20 are all ERROR.
        let mut by_name = std::collections::BTreeMap::<&str, u64>::new();
        for (n, c) in &values {
            *by_name.entry(severity_name(n.parse().unwrap_or(0))).or_default() += c;
        }
        values = by_name.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
    values.truncate(limit);
    let values: Vec<Value> = values.into_iter().map(|(v, c)| json!({ "value": v, "count": c })).collect();
    Ok(Json(json!({ "field": p.field.as_deref().unwrap_or("service"), "values": values })))
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
) -> Result<Json<Value>, ApiError> {
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
    let hits = blocking(&state, move |deadline| logs.search(&s, deadline)).await?;
    Ok(Json(json!({ "logs": hits.iter().map(hit_json).collect::<Vec<_>>() })))
}

/// The family name of an OTLP severity number.
pub fn severity_name(n: u8) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

fn hit_json(h: &LogHit) -> Value {
    let r = &h.record;
    let body = match &r.body {
        AttrValue::Str(s) => Value::String(s.clone()),
        other => other.to_json(),
    };
    json!({
        "timeUnixNano": r.time_unix_nano.to_string(),
        "observedTimeUnixNano": r.observed_unix_nano.to_string(),
        "severityNumber": r.severity_number,
        "severityText": r.severity_text,
        "severity": severity_name(r.severity_number),
        "body": body,
        "service": r.resource.service,
        "traceId": r.trace_id.map(|t| t.to_hex()),
        "spanId": r.span_id.map(|s| s.to_hex()),
        "eventName": r.event_name,
        "attributes": r.attributes.to_json(),
        "resource": r.resource.attributes.to_json(),
        "scope": { "name": r.scope.name, "version": r.scope.version },
        "highlights": h.highlights,
        "cursor": cursor_text(h.key),
    })
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
        assert_eq!(parse_cursor(&cursor_text(k)).expect("cursor"), k);
        assert!(parse_cursor("x.1").is_err());
    }
}
