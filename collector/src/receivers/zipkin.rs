//! Zipkin's span API, `POST /api/v2/spans`, on its own listener
//! (`listen.zipkin`, Zipkin's port 9411 by default): JSON v2
//! (`application/json`) and `zipkin.proto3.ListOfSpans`
//! (`application/x-protobuf`), gzip accepted. A thin adapter: the spans
//! become an OTLP traces request ([`convert`]) and take the same door as
//! OTLP (tenant, rate limit, validation, WAL, acknowledgement once stored).
//!
//! Answers as Zipkin does: 202 when stored; 400 with the reason; 413, 415;
//! 429 and 503 with `Retry-After`.

mod convert;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use prost::Message;
use sightline_proto::zipkin::ListOfSpans;

use super::adapter::{answer, content_type, submit};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::Traces;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new().route("/api/v2/spans", post(spans)).with_state(pipeline)
}

async fn spans(State(pipeline): State<Arc<Pipeline>>, headers: HeaderMap, body: Body) -> Response {
    let protobuf = match content_type(&headers).as_str() {
        "" | "application/json" => Ok(false),
        "application/x-protobuf" | "application/protobuf" => Ok(true),
        other => Err(IngestError::UnsupportedMediaType(format!(
            "content type {other:?}: Zipkin's API takes application/json or application/x-protobuf"
        ))),
    };
    let result = match protobuf {
        Ok(protobuf) => {
            submit::<Traces>(&pipeline, &headers, body, 8, true, move |body| {
                let converted = if protobuf {
                    let list = ListOfSpans::decode(body.as_ref())
                        .map_err(|e| IngestError::Invalid(format!("invalid zipkin.proto3.ListOfSpans: {e}")))?;
                    convert::from_protobuf(list)
                } else {
                    convert::from_json(&body)
                };
                Ok((converted.map_err(IngestError::Invalid)?, None))
            })
            .await
        }
        Err(e) => Err(e),
    };
    answer(result, StatusCode::ACCEPTED, "spans")
}
