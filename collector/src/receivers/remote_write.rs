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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use prost::Message;
use sightline_proto::prometheus::WriteRequest;

use super::otlp_http::{discard_body, read_body, retry_later, status_of};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::RemoteWrite;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new().route("/prometheus/api/v1/write", post(write)).with_state(pipeline)
}

async fn write(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !encoding.eq_ignore_ascii_case("snappy") {
            return Err(IngestError::UnsupportedMediaType(format!(
                "remote write bodies are snappy-compressed (Content-Encoding: snappy), not {encoding:?}"
            )));
        }
        // Snappy-compressed protobuf: the samples may take several times its size.
        let wire = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(pipeline.config().max_body_bytes);
        let reserve = wire.saturating_mul(12).min(pipeline.config().memory_limit_bytes as usize);
        let reading = match pipeline.check_pressure().and_then(|()| pipeline.reserve(reserve)) {
            Ok(permit) => permit,
            Err(e) => {
                discard_body(body, pipeline.config().max_body_bytes).await;
                return Err(e);
            }
        };
        let tenant =
            pipeline.tenant(headers.get(pipeline.config().tenant_header.as_str()).map(HeaderValue::as_bytes))?;
        let limit = pipeline.config().max_body_bytes;
        let body = read_body(body, limit).await?;
        let (request, raw) = tokio::task::spawn_blocking(move || {
            let len =
                snap::raw::decompress_len(&body).map_err(|e| IngestError::Invalid(format!("invalid snappy: {e}")))?;
            if len > limit {
                return Err(IngestError::TooLarge { limit });
            }
            let raw = snap::raw::Decoder::new()
                .decompress_vec(&body)
                .map_err(|e| IngestError::Invalid(format!("invalid snappy: {e}")))?;
            let w = WriteRequest::decode(raw.as_slice())
                .map_err(|e| IngestError::Invalid(format!("invalid remote write protobuf: {e}")))?;
            Ok((w, Bytes::from(raw)))
        })
        .await
        .map_err(|_| IngestError::ShuttingDown)??;
        drop(reading);
        pipeline.submit::<RemoteWrite>(&tenant, request, Some(raw)).await
    }
    .await;
    match result {
        Ok(outcome) if outcome.rejected == 0 => StatusCode::NO_CONTENT.into_response(),
        // Some samples were invalid: retrying would not help.
        Ok(outcome) => {
            (StatusCode::BAD_REQUEST, format!("{} samples refused: {}\n", outcome.rejected, outcome.message))
                .into_response()
        }
        Err(e) => {
            let (status, _) = status_of(&e);
            let mut response = (status, format!("{e}\n")).into_response();
            retry_later(&mut response, &e);
            response
        }
    }
}
