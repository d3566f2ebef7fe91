//! Operational endpoints: `/metrics` (the Prometheus text format, or
//! OpenMetrics when asked: Sightline's own metrics, then the latest value of
//! every series of the default tenant),
//! `/healthz`, `/readyz`. The web UI at `/` is the `sightline-ui` crate's.

mod exposition;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use sightline_storage::metrics::MetricStore;
use sightline_storage::model::Tenant;

use exposition::Format;

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
        .with_state(state)
}

async fn metrics(State(state): State<OpsState>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let mut own = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut own, &state.registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode metrics: {e}\n"),
        );
    }
    let own = match format {
        Format::Text => exposition::openmetrics_to_text(&own),
        Format::OpenMetrics => own.strip_suffix("# EOF\n").unwrap_or(&own).to_owned(),
    };
    let (store, tenant) = (state.metrics.clone(), state.tenant.clone());
    let ingested = match tokio::task::spawn_blocking(move || exposition::render(&store, &tenant, format)).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the stored series for /metrics");
            String::new()
        }
    };
    let end = if format == Format::OpenMetrics { "# EOF\n" } else { "" };
    (StatusCode::OK, [(header::CONTENT_TYPE, format.content_type())], format!("{own}{ingested}{end}"))
}

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "replaying the write-ahead log\n")
    }
}
