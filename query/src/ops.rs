//! Operational endpoints: `/metrics` (Prometheus text), `/healthz`, `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

#[derive(Clone)]
pub struct OpsState {
    pub registry: Arc<Registry>,
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
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}\n"),
        ),
    }
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
