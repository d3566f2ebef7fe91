//! Prometheus remote write at `POST /prometheus/api/v1/write` (served on
//! the API port): snappy-compressed protobuf, a 1.0 `WriteRequest` or, when
//! the content type says `proto=io.prometheus.write.v2.Request`, a 2.0
//! request (turned into a 1.0 one, [`v2`]). Samples go through the same
//! door as OTLP metrics (tenant, rate limit, validation, WAL,
//! acknowledgement once stored) as their own kind, [`RemoteWrite`]: the WAL
//! logs the `WriteRequest`, and the store receives the exact Prometheus
//! series, labels as sent, no renaming, with their exemplars and metadata.
//!
//! Answers: 204 when stored, with `X-Prometheus-Remote-Write-Samples-Written`
//! (and `-Histograms-Written`, `-Exemplars-Written`) for a 2.0 request; 400
//! for a malformed request (Prometheus drops it); 413; 415 for another
//! encoding or protobuf message; 429 and 503 with `Retry-After` (Prometheus
//! retries).

mod v2;

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

use super::adapter::{answer, snappy, submit, submit_with};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::RemoteWrite;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new().route("/prometheus/api/v1/write", post(write)).with_state(pipeline)
}

/// The protobuf messages a request may carry (`proto=` of its content type).
const V1: &str = "prometheus.WriteRequest";
const V2: &str = "io.prometheus.write.v2.Request";

async fn write(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    let proto = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').skip(1).find_map(|p| p.trim().strip_prefix("proto=")))
        .map(|p| p.trim_matches('"').to_owned());
    if !encoding.eq_ignore_ascii_case("snappy") {
        let e = IngestError::UnsupportedMediaType(format!(
            "remote write bodies are snappy-compressed (Content-Encoding: snappy), not {encoding:?}"
        ));
        return answer(Err(e), StatusCode::NO_CONTENT, "samples");
    }
    let limit = pipeline.config().max_body_bytes;
    match proto.as_deref() {
        None | Some(V1) => {
            // Snappy-compressed protobuf: the samples may take several times its size.
            let result = submit::<RemoteWrite>(&pipeline, &headers, body, 12, false, move |body| {
                let raw = snappy(&body, limit)?;
                let w = WriteRequest::decode(raw.as_slice())
                    .map_err(|e| IngestError::Invalid(format!("invalid remote write protobuf: {e}")))?;
                Ok((w, Some(Bytes::from(raw))))
            })
            .await;
            // Some samples invalid (400): retrying would not help.
            answer(result, StatusCode::NO_CONTENT, "samples")
        }
        Some(V2) => {
            let result = submit_with::<RemoteWrite, v2::Sent>(&pipeline, &headers, body, 12, false, move |body| {
                let raw = snappy(&body, limit)?;
                let request = sightline_proto::prometheus::v2::Request::decode(raw.as_slice())
                    .map_err(|e| IngestError::Invalid(format!("invalid remote write 2.0 protobuf: {e}")))?;
                let (w, sent) = v2::to_v1(request)?;
                Ok((w, None, sent))
            })
            .await;
            let written = result.as_ref().ok().map(|(outcome, sent)| {
                let samples = sent.samples.saturating_sub(outcome.rejected);
                [
                    ("samples", samples),
                    ("histograms", 0),
                    ("exemplars", if outcome.rejected == 0 { sent.exemplars } else { 0 }),
                ]
            });
            let mut response = answer(result.map(|(outcome, _)| outcome), StatusCode::NO_CONTENT, "samples");
            for (what, n) in written.into_iter().flatten() {
                let name = format!("x-prometheus-remote-write-{what}-written");
                if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
                    response.headers_mut().insert(name, header::HeaderValue::from(n));
                }
            }
            response
        }
        Some(other) => {
            let e = IngestError::UnsupportedMediaType(format!(
                "remote write takes proto={V1} or proto={V2}, not proto={other}"
            ));
            answer(Err(e), StatusCode::NO_CONTENT, "samples")
        }
    }
}
