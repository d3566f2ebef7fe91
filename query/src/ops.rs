//! Operational endpoints: `/metrics` (Prometheus text format: Sightline's own
//! metrics, then the latest value of every series of the default tenant),
//! `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use sightline_storage::metrics::MetricStore;
use sightline_storage::model::Tenant;

#[derive(Clone)]
pub struct OpsState {
    pub registry: Arc<Registry>,
    /// Its default tenant's series are exposed after Sightline's own.
    pub metrics: MetricStore,
    pub tenant: Tenant,
    /// Set once the WAL has been replayed and the receivers listen.
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/", get(index))
        .with_state(state)
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    let mut own = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut own, &state.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}\n"),
        );
    }
    let own = crate::exposition::openmetrics_to_text(&own);
    let (store, tenant) = (state.metrics.clone(), state.tenant.clone());
    let ingested =
        tokio::task::spawn_blocking(move || crate::exposition::render(&store, &tenant)).await.unwrap_or_default();
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], format!("{own}{ingested}"))
}

/// The front page: what this server answers, until the web UI is served here.
async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        concat!(
            "<!doctype html><title>Sightline</title><h1>Sightline</h1>",
            "<p>Send OpenTelemetry data to OTLP/gRPC <code>:4317</code> or OTLP/HTTP <code>:4318</code>.</p><ul>",
            "<li><a href=\"/api/services\">/api/services</a>, <code>/api/traces?service=…</code>, ",
            "<code>/api/traces/{traceId}</code>, <a href=\"/api/dependencies\">/api/dependencies</a></li>",
            "<li>Logs: <a href=\"/api/logs?query=severity%3E%3DWARN\">/api/logs?query=…</a>, ",
            "<a href=\"/api/logs/histogram\">/api/logs/histogram</a>, <a href=\"/api/logs/top\">/api/logs/top</a>, ",
            "<code>/api/traces/{traceId}/logs</code></li>",
            "<li>Prometheus API: <a href=\"/prometheus/api/v1/labels\">/prometheus/api/v1/…</a> ",
            "(Grafana's Prometheus data source: <code>http://this-host:7070/prometheus</code>); ",
            "remote write: <code>POST /prometheus/api/v1/write</code></li>",
            "<li>Jaeger API: <a href=\"/jaeger/api/services\">/jaeger/api/services</a> ",
            "(Grafana's Jaeger data source: <code>http://this-host:7070/jaeger</code>)</li>",
            "<li><a href=\"/metrics\">/metrics</a>, <a href=\"/readyz\">/readyz</a></li></ul>",
        ),
    )
}

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "replaying the write-ahead log\n")
    }
}
