//! Operational endpoints: `/metrics` (Prometheus text format: Sightline's own
//! metrics, then the latest value of every series of the default tenant),
//! `/healthz`, `/readyz`. The web UI at `/` is the `sightline-ui` crate's.

mod exposition;

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
    let own = exposition::openmetrics_to_text(&own);
    let (store, tenant) = (state.metrics.clone(), state.tenant.clone());
    let ingested = match tokio::task::spawn_blocking(move || exposition::render(&store, &tenant)).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the stored series for /metrics");
            String::new()
        }
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], format!("{own}{ingested}"))
}

async fn ready(State(state): State<OpsState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "replaying the write-ahead log\n")
    }
}
