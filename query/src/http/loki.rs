//! Loki's query API under `/loki/api/v1/`, so that Grafana's Loki data
//! source works against Sightline (`http://host:7070/loki`): LogQL log and
//! metric queries (`query_range`, `query`), labels and their values,
//! series, index statistics and build info, in Loki's JSON. Errors are
//! plain text, as Loki sends them.

mod model;
mod tail;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use axum::Json;
use axum::Router;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sightline_storage::logs::{TimeRange, TopField};
use sightline_storage::model::Tenant;

use self::model::{Data, Envelope, Point, ResultData, Stats, Stream};
use crate::error::ApiError;
use crate::http::plain::PlainError;
use crate::logql::ast::{MetricExpr, Query};
use crate::logql::eval::{Steps, Value};
use crate::logql::pipeline::Labels;
use crate::logql::{self, Compiled, Reader};
use crate::state::QueryState;

pub fn router(state: QueryState) -> Router {
    let routes = Router::new()
        .route("/loki/api/v1/query_range", get(query_range))
        .route("/loki/api/v1/query", get(query_instant))
        .route("/loki/api/v1/labels", get(labels))
        .route("/loki/api/v1/label", get(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series))
        .route("/loki/api/v1/index/stats", get(index_stats))
        .route("/loki/api/v1/detected_labels", get(detected_labels))
        .route("/loki/api/v1/tail", get(live_tail))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo));
    super::guarded::<PlainError>(routes, state)
}

type Reply = Result<Response, PlainError>;

/// The Loki API level this answers (Grafana picks features by it).
async fn buildinfo() -> Json<crate::http::json::BuildInfo> {
    Json(crate::http::json::BuildInfo::at("3.4.0"))
}

/// The query string's pairs, repeated keys kept (`match[]`).
fn pairs(raw: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn param<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// A time as Loki reads it: seconds with a fraction, Unix seconds (≤ 10
/// digits) or nanoseconds, or RFC 3339.
fn time(name: &str, v: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid {name}: {v:?} is not a Unix time or an RFC 3339 time"));
    if v.contains('.') {
        return v.parse::<f64>().map(|s| (s * 1e9) as i64).map_err(|_| bad());
    }
    if let Ok(n) = v.parse::<i64>() {
        return Ok(if v.trim_start_matches('-').len() <= 10 { n.saturating_mul(1_000_000_000) } else { n });
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .ok_or_else(bad)
}

/// `start`/`end` (or `since`), defaulting to the last hour, within the limits.
fn range(state: &QueryState, p: &[(String, String)]) -> Result<(i64, i64), ApiError> {
    let now = sightline_storage::model::now_unix_nanos() as i64;
    let end = param(p, "end").map(|v| time("end", v)).transpose()?.unwrap_or(now);
    let since = param(p, "since")
        .map(|v| logql::parse::duration_nanos(v).ok_or_else(|| ApiError::BadRequest(format!("invalid since: {v:?}"))))
        .transpose()?;
    let start = match param(p, "start") {
        Some(v) => time("start", v)?,
        None => end.saturating_sub(since.map_or(3_600_000_000_000, |s| s as i64)),
    };
    let (s, e) = state.checked_range(start.max(0) as u64, end.max(0) as u64)?;
    Ok((s as i64, e as i64))
}

fn compile(p: &[(String, String)]) -> Result<Compiled, ApiError> {
    let text = param(p, "query").ok_or_else(|| ApiError::BadRequest("query: a LogQL query is needed".into()))?;
    logql::compile(text).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn limit(p: &[(String, String)]) -> Result<usize, ApiError> {
    let n = param(p, "limit").map(|v| v.parse::<usize>()).transpose();
    let n = n.map_err(|_| ApiError::BadRequest("invalid limit: not a number".into()))?.unwrap_or(100);
    crate::params::limit("limit", Some(n), 100)
}

fn direction(p: &[(String, String)]) -> Result<bool, ApiError> {
    match param(p, "direction").map(str::to_ascii_lowercase).as_deref() {
        None | Some("backward") => Ok(true),
        Some("forward") => Ok(false),
        Some(other) => Err(ApiError::BadRequest(format!("invalid direction: {other:?} is not forward or backward"))),
    }
}

/// Loki's default step: the range over 250 points, at least a second.
fn step(p: &[(String, String)], (start, end): (i64, i64)) -> Result<i64, ApiError> {
    let default = ((end - start) / 250 / 1_000_000_000).max(1) * 1_000_000_000;
    let Some(v) = param(p, "step") else { return Ok(default) };
    let nanos = match v.parse::<f64>() {
        Ok(s) => (s * 1e9) as i64,
        Err(_) => logql::parse::duration_nanos(v)
            .map(|n| n as i64)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid step: {v:?}")))?,
    };
    if nanos <= 0 {
        return Err(ApiError::BadRequest(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if (end - start) / nanos > 11_000 {
        return Err(ApiError::BadRequest("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into()));
    }
    Ok(nanos)
}

/// Runs `work` on a blocking thread with the query's deadline; store and query errors as the API's.
async fn run<T: Send + 'static>(
    state: &QueryState,
    work: impl FnOnce(Option<Instant>) -> Result<Result<T, String>, sightline_storage::StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    state.read_logs(work).await?.map_err(ApiError::BadRequest)
}

async fn query_range(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let compiled = compile(&p)?;
    let range = range(&state, &p)?;
    let began = Instant::now();
    match &compiled.query {
        Query::Log(_) => {
            let (limit, backward) = (limit(&p)?, direction(&p)?);
            let logs = state.logs.clone();
            let lines = run(&state, move |deadline| {
                Reader { store: &logs, tenant: &tenant, compiled: &compiled, deadline }.lines(range, limit, backward)
            })
            .await?;
            Ok(streams(lines, began))
        }
        Query::Metric(_) => {
            let step = step(&p, range)?;
            let count = usize::try_from((range.1 - range.0) / step + 1).unwrap_or(1);
            let steps = Steps { start: range.0, step, count };
            let logs = state.logs.clone();
            let value = run(&state, move |deadline| {
                Reader { store: &logs, tenant: &tenant, compiled: &compiled, deadline }.metric(steps)
            })
            .await?;
            Ok(matrix(value, steps, began))
        }
    }
}

async fn query_instant(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let compiled = compile(&p)?;
    if matches!(compiled.query, Query::Log(_)) {
        return Err(ApiError::BadRequest(
            "log queries are not supported as an instant query type, please change your query to a range query type"
                .into(),
        )
        .into());
    }
    let at = match param(&p, "time") {
        Some(v) => time("time", v)?,
        None => sightline_storage::model::now_unix_nanos() as i64,
    };
    let steps = Steps { start: at, step: 1, count: 1 };
    let began = Instant::now();
    let logs = state.logs.clone();
    let value = run(&state, move |deadline| {
        Reader { store: &logs, tenant: &tenant, compiled: &compiled, deadline }.metric(steps)
    })
    .await?;
    let seconds = at as f64 / 1e9;
    let result = match value {
        Value::Scalar(v) => ResultData::Scalar(Point(seconds, v)),
        Value::Vector(series) => ResultData::Vector(
            series
                .into_iter()
                .filter_map(|(labels, values)| {
                    values[0].map(|v| model::Sample { metric: labels, value: Point(seconds, v) })
                })
                .collect(),
        ),
    };
    Ok(Json(Envelope::success(Data { result, stats: Stats::since(began, 0) })).into_response())
}

fn streams(lines: Vec<logql::pipeline::Line>, began: Instant) -> Response {
    let returned = lines.len();
    let mut by_labels: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
    for line in lines {
        by_labels.entry(line.labels).or_default().push((line.ts, line.text));
    }
    let result = ResultData::Streams(by_labels.into_iter().map(|(stream, values)| Stream { stream, values }).collect());
    Json(Envelope::success(Data { result, stats: Stats::since(began, returned) })).into_response()
}

fn matrix(value: Value, steps: Steps, began: Instant) -> Response {
    let series = match value {
        Value::Vector(v) => v,
        // A scalar at every step, as one series without labels.
        Value::Scalar(x) => vec![(Labels::new(), vec![Some(x); steps.count])],
    };
    let result = ResultData::Matrix(
        series
            .into_iter()
            .map(|(metric, values)| model::Range {
                metric,
                values: values
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| Point(steps.at(i) as f64 / 1e9, v)))
                    .collect(),
            })
            .collect(),
    );
    Json(Envelope::success(Data { result, stats: Stats::since(began, 0) })).into_response()
}

/// The most lines label and series lookups read (the newest of the range).
const SAMPLE: usize = 1_000;

/// The streams (label sets) of the newest lines matching `selector` (every line without one).
async fn stream_sample(
    state: &QueryState,
    tenant: &Tenant,
    selector: Option<&str>,
    range: (i64, i64),
) -> Result<(BTreeSet<Labels>, usize, usize), ApiError> {
    let text = selector.unwrap_or("{service_name=~\".+\"}");
    let compiled = logql::compile(text).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let log = match &compiled.query {
        Query::Log(l) => l.clone(),
        Query::Metric(m) => match first_log(m) {
            Some(l) => l,
            None => return Ok((BTreeSet::new(), 0, 0)),
        },
    };
    let (logs, tenant) = (state.logs.clone(), tenant.clone());
    run(state, move |deadline| {
        let (mut streams, mut n, mut bytes) = (BTreeSet::new(), 0usize, 0usize);
        let reader = Reader { store: &logs, tenant: &tenant, compiled: &compiled, deadline };
        let scanned = reader.scan(&log, range, true, |line| {
            n += 1;
            bytes += line.text.len();
            streams.insert(line.stream);
            n < SAMPLE
        })?;
        Ok(scanned.map(|()| (streams, n, bytes)))
    })
    .await
}

fn first_log(m: &MetricExpr) -> Option<crate::logql::ast::LogExpr> {
    match m {
        MetricExpr::Range { log, .. } => Some(log.clone()),
        MetricExpr::Vector { inner, .. } => first_log(inner),
        MetricExpr::Binary { left, right, .. } => first_log(left).or_else(|| first_log(right)),
        MetricExpr::Number(_) => None,
    }
}

async fn labels(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let range = range(&state, &p)?;
    let (streams, ..) = stream_sample(&state, &tenant, param(&p, "query"), range).await?;
    let names: BTreeSet<String> = streams.iter().flat_map(|s| s.keys().cloned()).collect();
    Ok(Json(Envelope::success(names.into_iter().collect::<Vec<_>>())).into_response())
}

async fn label_values(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let range = range(&state, &p)?;
    // Every service of the range, from the index, when no selector narrows it.
    if name == "service_name" && param(&p, "query").is_none() {
        let (logs, expr) = (state.logs.clone(), sightline_storage::logs::LogExpr::All);
        let range = TimeRange { start: range.0, end: range.1 };
        let top =
            state.read_logs(move |d| logs.top_values(&tenant, &expr, range, TopField::Service, 10_000, d)).await?;
        let mut values: Vec<String> = top.into_iter().map(|(v, _)| v).collect();
        values.sort();
        return Ok(Json(Envelope::success(values)).into_response());
    }
    let (streams, ..) = stream_sample(&state, &tenant, param(&p, "query"), range).await?;
    let values: BTreeSet<String> = streams.iter().filter_map(|s| s.get(&name).cloned()).collect();
    Ok(Json(Envelope::success(values.into_iter().collect::<Vec<_>>())).into_response())
}

async fn series(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let range = range(&state, &p)?;
    let selectors: Vec<&str> =
        p.iter().filter(|(k, _)| k == "match[]" || k == "match").map(|(_, v)| v.as_str()).collect();
    let mut all = BTreeSet::new();
    if selectors.is_empty() {
        all = stream_sample(&state, &tenant, None, range).await?.0;
    }
    for s in selectors {
        all.extend(stream_sample(&state, &tenant, Some(s), range).await?.0);
    }
    Ok(Json(Envelope::success(all.into_iter().collect::<Vec<_>>())).into_response())
}

async fn index_stats(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let range = range(&state, &p)?;
    let compiled = compile(&p)?;
    let selector = match &compiled.query {
        Query::Log(l) => l.selector.clone(),
        Query::Metric(m) => first_log(m).map(|l| l.selector).unwrap_or_default(),
    };
    let (streams, sampled, sampled_bytes) = stream_sample(&state, &tenant, param(&p, "query"), range).await?;
    // Entries: what the index says of the selector's terms (an upper bound when some matchers are not terms).
    let (logs, expr, t) = (state.logs.clone(), logql::pushdown(&selector), TimeRange { start: range.0, end: range.1 });
    let step = (range.1 - range.0).max(1) + 1;
    let counts = state.read_logs(move |d| logs.histogram(&tenant, &expr, t, step, d)).await?;
    let entries: u64 = counts.iter().sum();
    let bytes = if sampled == 0 { 0 } else { entries * sampled_bytes as u64 / sampled as u64 };
    Ok(Json(model::IndexStats { streams: streams.len(), chunks: streams.len(), entries, bytes }).into_response())
}

async fn live_tail(
    State(state): State<QueryState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    ws: WebSocketUpgrade,
) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let compiled = Arc::new(compile(&p)?);
    let now = sightline_storage::model::now_unix_nanos() as i64;
    let start = param(&p, "start").map(|v| time("start", v)).transpose()?.unwrap_or(now - 3_600_000_000_000);
    let delay = match param(&p, "delay_for") {
        None => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(s) if (0..=5).contains(&s) => s * 1_000_000_000,
            _ => return Err(ApiError::BadRequest("delay_for can't be greater than 5".into()).into()),
        },
    };
    let tail = tail::Tail { tenant, compiled, start, limit: limit(&p)?, delay };
    Ok(tail::upgrade(state, tail, ws)?)
}

/// `/loki/api/v1/detected_labels`: the stream labels of the sample with
/// how many values each takes, as Grafana's log browsing asks.
async fn detected_labels(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = pairs(raw);
    let tenant = state.tenant(&headers)?;
    let range = range(&state, &p)?;
    let (streams, ..) = stream_sample(&state, &tenant, param(&p, "query"), range).await?;
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &streams {
        for (k, v) in s {
            values.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    let detected_labels =
        values.into_iter().map(|(label, v)| model::DetectedLabel { label, cardinality: v.len() }).collect();
    Ok(Json(model::DetectedLabels { detected_labels }).into_response())
}
