//! Prometheus remote write 1.0 at `POST /prometheus/api/v1/write` (served
//! on the API port): snappy-compressed `WriteRequest` protobuf. Samples go
//! through the same door as OTLP metrics (tenant, rate limit, validation,
//! WAL, acknowledgement once stored) as their own kind,
//! [`RemoteWrite`]: the WAL logs the `WriteRequest`, and the store receives
//! the exact Prometheus series, labels as sent, no renaming.
//!
//! Answers: 204 when stored; 400 for a malformed request (Prometheus drops
//! it); 413, 415; 429 and 503 with `Retry-After` (Prometheus retries).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use prost::Message;
use sightline_proto::prometheus::WriteRequest;

use super::adapter::{answer, snappy, submit};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::RemoteWrite;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new().route("/prometheus/api/v1/write", post(write)).with_state(pipeline)
}

async fn write(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    let result = if encoding.eq_ignore_ascii_case("snappy") {
        let limit = pipeline.config().max_body_bytes;
        // Snappy-compressed protobuf: the samples may take several times its size.
        submit::<RemoteWrite>(&pipeline, &headers, body, 12, false, move |body| {
            let raw = snappy(&body, limit)?;
            let w = WriteRequest::decode(raw.as_slice())
                .map_err(|e| IngestError::Invalid(format!("invalid remote write protobuf: {e}")))?;
            Ok((w, Some(Bytes::from(raw))))
        })
        .await
    } else {
        Err(IngestError::UnsupportedMediaType(format!(
            "remote write bodies are snappy-compressed (Content-Encoding: snappy), not {encoding:?}"
        )))
    };
    // Some samples invalid (400): retrying would not help.
    answer(result, StatusCode::NO_CONTENT, "samples")
}
