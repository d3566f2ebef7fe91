//! The Prometheus HTTP API under `/prometheus/api/v1/`, with Prometheus's
//! JSON shapes and error envelope, GET and form POST alike, so that
//! Grafana's Prometheus data source and `promtool query` work against it.

mod error;
mod model;

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sightline_storage::metrics::{Labels, MetricStore};
use sightline_storage::model::Tenant;

use self::error::{PromError, bad_data};
use self::model::{Metric, QueryData, success};
use crate::limits::Budget;
use crate::promql::{self, EvalError};
use crate::state::QueryState;

pub fn router(state: QueryState) -> Router {
    let api = Router::new()
        .route("/query", get(query).post(query))
        .route("/query_range", get(query_range).post(query_range))
        .route("/series", get(series).post(series))
        .route("/labels", get(labels).post(labels))
        .route("/label/{name}/values", get(label_values))
        .route("/metadata", get(metadata))
        .route("/query_exemplars", get(query_exemplars).post(query_exemplars))
        .route("/status/buildinfo", get(buildinfo));
    crate::http::guarded::<PromError>(Router::new().nest("/prometheus/api/v1", api), state)
}

/// Lookback of an instant vector selector (Prometheus's default).
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

type Reply = Result<Response, PromError>;

fn reply<T: serde::Serialize>(data: T) -> Reply {
    Ok(Json(success(data)).into_response())
}

/// A number of seconds (with a fraction), in ms.
fn seconds_as_ms(v: &str) -> Option<i64> {
    v.parse::<f64>().ok().filter(|s| s.is_finite()).map(|s| (s * 1000.0).round() as i64)
}

/// Parameters from the query string and a form body, repeated keys kept.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
        let form = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// A time: Unix seconds (with a fraction) or RFC 3339, in ms.
    fn time(&self, key: &str) -> Result<Option<i64>, PromError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Some(ms) = seconds_as_ms(v) {
            return Ok(Some(ms));
        }
        humantime::parse_rfc3339_weak(v.trim_end_matches('Z'))
            .ok()
            .or_else(|| humantime::parse_rfc3339(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Some(d.as_millis() as i64))
            .ok_or_else(|| bad_data(format!("invalid parameter \"{key}\": cannot parse \"{v}\" to a valid timestamp")))
    }

    /// A duration: seconds (with a fraction) or a Prometheus duration, in ms.
    fn duration(&self, key: &str) -> Result<Option<i64>, PromError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Some(ms) = seconds_as_ms(v) {
            return Ok(Some(ms));
        }
        promql_parser::util::duration::parse_duration(v)
            .map(|d| Some(d.as_millis() as i64))
            .map_err(|_| bad_data(format!("invalid parameter \"{key}\": cannot parse \"{v}\" to a valid duration")))
    }

    fn lookback(&self) -> Result<i64, PromError> {
        Ok(self.duration("lookback_delta")?.filter(|d| *d > 0).unwrap_or(LOOKBACK_MS))
    }
}

fn now_ms() -> i64 {
    (sightline_storage::model::now_unix_nanos() / 1_000_000) as i64
}

/// Evaluation (CPU work over the store) off the reactor.
async fn blocking<T: Send + 'static>(
    state: &QueryState,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PromError> {
    Ok(state.run_blocking(move |_| work()).await?)
}

fn tenant(state: &QueryState, headers: &HeaderMap) -> Result<Tenant, PromError> {
    state.tenant(headers).map_err(|e| bad_data(e.to_string()))
}

/// The parameters, the caller's tenant and the `query` parameter.
fn query_request(
    state: &QueryState,
    headers: &HeaderMap,
    raw: Option<String>,
    body: &Bytes,
) -> Result<(Params, Tenant, String), PromError> {
    let p = Params::new(raw, headers, body);
    let tenant = tenant(state, headers)?;
    let q = p.get("query").ok_or_else(|| bad_data("invalid parameter \"query\": no query given"))?.to_owned();
    Ok((p, tenant, q))
}

async fn query(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Reply {
    let (p, tenant, q) = query_request(&state, &headers, raw, &body)?;
    let t = p.time("time")?.unwrap_or_else(now_ms);
    let lookback = p.lookback()?;
    let (store, budget) = (state.metrics.clone(), state.limits.budget());
    let value = blocking(&state, move || promql::instant(&store, &tenant, &budget, &q, t, lookback)).await??;
    match &value {
        promql::Value::Scalar(v) => reply(QueryData { result_type: "scalar", result: model::point(t, *v) }),
        promql::Value::String(s) => {
            reply(QueryData { result_type: "string", result: model::Point(model::Seconds(t), s) })
        }
        promql::Value::Vector(v) => reply(QueryData { result_type: "vector", result: model::vector(v, t) }),
        promql::Value::Matrix(m) => reply(QueryData { result_type: "matrix", result: model::matrix(m) }),
    }
}

async fn query_range(
    State(state): State<QueryState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Reply {
    let (p, tenant, q) = query_request(&state, &headers, raw, &body)?;
    let start = p.time("start")?.ok_or_else(|| bad_data("invalid parameter \"start\": missing"))?;
    let end = p.time("end")?.ok_or_else(|| bad_data("invalid parameter \"end\": missing"))?;
    let step = p.duration("step")?.ok_or_else(|| bad_data("invalid parameter \"step\": missing"))?;
    if end < start {
        return Err(bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
    }
    if step <= 0 {
        return Err(bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > promql::eval::MAX_POINTS {
        return Err(bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let range_ns = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000);
    state.limits.check_range_nanos(range_ns(start), range_ns(end)).map_err(bad_data)?;
    let lookback = p.lookback()?;
    let (store, budget) = (state.metrics.clone(), state.limits.budget());
    let series =
        blocking(&state, move || promql::range(&store, &tenant, &budget, &q, start, end, step, lookback)).await??;
    reply(QueryData { result_type: "matrix", result: model::matrix(&series) })
}

/// The series matching any of the `match[]` selectors in a time range.
fn matching(
    store: &MetricStore,
    tenant: &Tenant,
    budget: &Budget,
    selectors: &[String],
    start: i64,
    end: i64,
) -> Result<Vec<Labels>, EvalError> {
    let mut out = BTreeMap::new();
    for sel in selectors {
        let expr = promql::eval::parse(sel)?;
        let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
            return Err(EvalError::BadData(format!("invalid parameter \"match[]\": {sel} is not a series selector")));
        };
        // Any sample in range: the selector over the range as one window.
        let range = (end - start).max(1);
        let mut engine = promql::eval::Engine::new(store, tenant, budget, range, start, end);
        let (series, _) = engine.matrix_selector(&vs, range, end)?;
        for s in series {
            out.insert(s.labels.clone(), ());
        }
    }
    Ok(out.into_keys().collect())
}

/// The distinct strings `pick` finds in the labels of the series matching
/// the selectors (every series without selectors) with samples in range.
async fn distinct<I: IntoIterator<Item = String>>(
    state: &QueryState,
    tenant: Tenant,
    selectors: Vec<String>,
    start: i64,
    end: i64,
    pick: impl Fn(&Labels) -> I + Send + 'static,
) -> Result<Vec<String>, PromError> {
    let (store, budget) = (state.metrics.clone(), state.limits.budget());
    let found = blocking(state, move || -> Result<std::collections::BTreeSet<String>, EvalError> {
        let series: Vec<Labels> = if selectors.is_empty() {
            store
                .select(&tenant, &[], |_| true, start, end)
                .map_err(|e| EvalError::Execution(e.to_string()))?
                .into_iter()
                .map(|s| s.labels)
                .collect()
        } else {
            matching(&store, &tenant, &budget, &selectors, start, end)?
        };
        Ok(series.iter().flat_map(&pick).collect())
    })
    .await??;
    Ok(found.into_iter().collect())
}

fn range_params(p: &Params) -> Result<(i64, i64), PromError> {
    let end = p.time("end")?.unwrap_or_else(now_ms);
    let start = p.time("start")?.unwrap_or(i64::MIN / 2);
    Ok((start, end))
}

/// The caller's tenant, the `match[]` selectors and the time range of the
/// series, labels and label-values routes.
fn series_request(
    state: &QueryState,
    headers: &HeaderMap,
    raw: Option<String>,
    body: &Bytes,
) -> Result<(Tenant, Vec<String>, i64, i64), PromError> {
    let p = Params::new(raw, headers, body);
    let tenant = tenant(state, headers)?;
    let selectors = p.all("match[]").into_iter().map(str::to_owned).collect();
    let (start, end) = range_params(&p)?;
    Ok((tenant, selectors, start, end))
}

async fn series(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Reply {
    let (tenant, selectors, start, end) = series_request(&state, &headers, raw, &body)?;
    if selectors.is_empty() {
        return Err(bad_data("no match[] parameter provided"));
    }
    let (store, budget) = (state.metrics.clone(), state.limits.budget());
    let found = blocking(&state, move || matching(&store, &tenant, &budget, &selectors, start, end)).await??;
    reply(found.iter().map(Metric).collect::<Vec<_>>())
}

async fn labels(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery, body: Bytes) -> Reply {
    let (tenant, selectors, start, end) = series_request(&state, &headers, raw, &body)?;
    let names = distinct(&state, tenant, selectors, start, end, |l: &Labels| {
        l.iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>()
    })
    .await?;
    reply(names)
}

async fn label_values(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let (tenant, selectors, start, end) = series_request(&state, &headers, raw, &Bytes::new())?;
    let values =
        distinct(&state, tenant, selectors, start, end, move |l: &Labels| l.get(&name).map(str::to_owned)).await?;
    reply(values)
}

async fn metadata(State(state): State<QueryState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Reply {
    let p = Params::new(raw, &headers, &Bytes::new());
    let tenant = tenant(&state, &headers)?;
    let only = p.get("metric").map(str::to_owned);
    let limit = p.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let meta = state.metrics.metadata(&tenant);
    let data: BTreeMap<String, [_; 1]> = meta
        .into_iter()
        .filter(|(name, _)| only.as_ref().is_none_or(|o| o == name))
        .take(limit)
        .map(|(name, m)| (name, [m]))
        .collect();
    reply(data)
}

/// The exemplars of the series that the query's selectors match, in range.
async fn query_exemplars(
    State(state): State<QueryState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Reply {
    let (p, tenant, q) = query_request(&state, &headers, raw, &body)?;
    let (start, end) = range_params(&p)?;
    let expr = promql::eval::parse(&q)?;
    let mut found: BTreeMap<Labels, Vec<sightline_storage::metrics::Exemplar>> = BTreeMap::new();
    for vs in promql::eval::selectors(&expr) {
        let selector = promql::eval::Selector::of(vs);
        for (labels, exemplars) in
            state.metrics.exemplars(&tenant, &selector.hints(), |l| selector.matches(l), start, end)
        {
            found.insert(labels, exemplars);
        }
    }
    let data: Vec<model::SeriesExemplars> = found
        .iter()
        .map(|(labels, exemplars)| model::SeriesExemplars {
            series_labels: Metric(labels),
            exemplars: exemplars.iter().map(model::ExemplarJson::of).collect(),
        })
        .collect();
    reply(data)
}

/// The Prometheus API level this implements (clients such as Grafana pick
/// features by it), and Sightline's own version.
async fn buildinfo() -> Reply {
    reply(model::BuildInfo::at("2.42.0"))
}
