//! Loki's push API at `POST /loki/api/v1/push` (served on the API port):
//! `logproto.PushRequest` protobuf, snappy-compressed, as Promtail, Grafana
//! Alloy and Fluent Bit send it (`application/x-protobuf`, or no content
//! type), or its JSON form (`application/json`); either may also be
//! gzip-compressed (`Content-Encoding: gzip`). A thin adapter: the request
//! becomes an OTLP logs request ([`push`]) and goes through the same door
//! as OTLP (tenant, rate limit, validation, WAL, acknowledgement once
//! stored).
//!
//! Answers as Loki does: 204 when stored; 400 with the reason for a request
//! that cannot be read or has invalid entries (Loki's clients drop it);
//! 413, 415; 429 and 503 with `Retry-After` (they retry).

mod push;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use sightline_proto::loki::PushRequest;

use super::otlp_http::{decompress, discard_body, encoding, read_body, retry_later, status_of};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::Logs;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new().route("/loki/api/v1/push", post(push_handler)).with_state(pipeline)
}

fn is_json(headers: &HeaderMap) -> Result<bool, IngestError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(true),
        "" | "application/x-protobuf" | "application/protobuf" => Ok(false),
        other => Err(IngestError::UnsupportedMediaType(format!(
            "content type {other:?}: Loki's push takes application/x-protobuf (snappy) or application/json"
        ))),
    }
}

async fn push_handler(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let json = is_json(&headers)?;
        let enc = encoding(&headers)?;
        let limit = pipeline.config().max_body_bytes;
        // Compressed bodies: the entries and their OTLP form take several times their size.
        let wire =
            headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()).unwrap_or(limit);
        let reserve = wire.saturating_mul(12).min(pipeline.config().memory_limit_bytes as usize);
        let reading = match pipeline.check_pressure().and_then(|()| pipeline.reserve(reserve)) {
            Ok(permit) => permit,
            Err(e) => {
                discard_body(body, limit).await;
                return Err(e);
            }
        };
        let tenant =
            pipeline.tenant(headers.get(pipeline.config().tenant_header.as_str()).map(HeaderValue::as_bytes))?;
        let body = read_body(body, limit).await?;
        let request = tokio::task::spawn_blocking(move || {
            let body = decompress(enc, body, limit)?;
            let observed = sightline_storage::model::now_unix_nanos();
            let converted = if json {
                push::from_json(&body, observed)
            } else {
                let len = snap::raw::decompress_len(&body)
                    .map_err(|e| IngestError::Invalid(format!("invalid snappy: {e}")))?;
                if len > limit {
                    return Err(IngestError::TooLarge { limit });
                }
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&body)
                    .map_err(|e| IngestError::Invalid(format!("invalid snappy: {e}")))?;
                let request = PushRequest::decode(raw.as_slice())
                    .map_err(|e| IngestError::Invalid(format!("invalid push request protobuf: {e}")))?;
                push::from_protobuf(request, observed)
            };
            converted.map_err(IngestError::Invalid)
        })
        .await
        .map_err(|_| IngestError::ShuttingDown)??;
        drop(reading);
        pipeline.submit::<Logs>(&tenant, request, None).await
    }
    .await;
    match result {
        Ok(outcome) if outcome.rejected == 0 => StatusCode::NO_CONTENT.into_response(),
        Ok(outcome) => {
            (StatusCode::BAD_REQUEST, format!("{} entries refused: {}\n", outcome.rejected, outcome.message))
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
