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
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use prost::Message;
use sightline_proto::loki::PushRequest;

use super::adapter::{answer, content_type, snappy, submit};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::Logs;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new().route("/loki/api/v1/push", post(push_handler)).with_state(pipeline)
}

async fn push_handler(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let json = match content_type(&headers).as_str() {
        "application/json" => Ok(true),
        "" | "application/x-protobuf" | "application/protobuf" => Ok(false),
        other => Err(IngestError::UnsupportedMediaType(format!(
            "content type {other:?}: Loki's push takes application/x-protobuf (snappy) or application/json"
        ))),
    };
    let limit = pipeline.config().max_body_bytes;
    // Compressed bodies: the entries and their OTLP form take several times their size.
    let result = match json {
        Ok(json) => {
            submit::<Logs>(&pipeline, &headers, body, 12, true, move |body| {
                let observed = sightline_storage::model::now_unix_nanos();
                let converted = if json {
                    push::from_json(&body, observed)
                } else {
                    let raw = snappy(&body, limit)?;
                    let request = PushRequest::decode(raw.as_slice())
                        .map_err(|e| IngestError::Invalid(format!("invalid push request protobuf: {e}")))?;
                    push::from_protobuf(request, observed)
                };
                Ok((converted.map_err(IngestError::Invalid)?, None))
            })
            .await
        }
        Err(e) => Err(e),
    };
    answer(result, StatusCode::NO_CONTENT, "entries")
}
