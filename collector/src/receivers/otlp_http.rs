//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with
//! `application/x-protobuf` or `application/json` bodies, gzip or identity
//! encoded. Answers as the OTLP/HTTP specification says: the export response
//! (with partial success) in the request's format on success; a
//! `google.rpc.Status` body on failure, with `Retry-After` when retryable.

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use prost::Message;

use crate::error::IngestError;
use crate::pipeline::{Laned, Outcome, Pipeline};
use crate::signal::{Logs, Metrics, OtlpSignal, Traces};
use crate::telemetry::Request;

/// Bodies larger than this are decompressed and decoded on a blocking thread.
const INLINE_DECODE_BYTES: usize = 256 * 1024;

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    Router::new()
        .route("/v1/traces", post(export::<Traces>))
        .route("/v1/logs", post(export::<Logs>))
        .route("/v1/metrics", post(export::<Metrics>))
        .layer(DefaultBodyLimit::disable())
        .with_state(pipeline)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

fn format(headers: &HeaderMap) -> Result<Format, IngestError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(IngestError::UnsupportedMediaType(format!(
            "content type {ct:?}: use application/x-protobuf or application/json"
        ))),
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Encoding {
    Identity,
    Gzip,
}

pub(crate) fn encoding(headers: &HeaderMap) -> Result<Encoding, IngestError> {
    match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().map(str::trim)) {
        None | Some(Ok("" | "identity")) => Ok(Encoding::Identity),
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") => Ok(Encoding::Gzip),
        Some(v) => Err(IngestError::UnsupportedMediaType(format!(
            "content encoding {:?}: use gzip or identity",
            v.unwrap_or("<not text>")
        ))),
    }
}

/// Decompresses at most `limit` bytes; more is a 413, not an allocation.
pub(crate) fn decompress(encoding: Encoding, body: Bytes, limit: usize) -> Result<Bytes, IngestError> {
    match encoding {
        Encoding::Identity => Ok(body),
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            flate2::read::MultiGzDecoder::new(body.as_ref())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| IngestError::Invalid(format!("invalid gzip body: {e}")))?;
            if out.len() > limit {
                return Err(IngestError::TooLarge { limit });
            }
            Ok(out.into())
        }
    }
}

fn decode<K: OtlpSignal>(format: Format, body: &Bytes) -> Result<K::Request, IngestError> {
    match format {
        Format::Protobuf => {
            K::Request::decode(body.clone()).map_err(|e| IngestError::Invalid(format!("invalid protobuf: {e}")))
        }
        Format::Json => K::decode_json(body).map_err(|e| IngestError::Invalid(e.to_string())),
    }
}

async fn export<K: Laned + OtlpSignal>(
    State(pipeline): State<Arc<Pipeline>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let start = Instant::now();
    let fmt = format(&headers);
    let reply_format = *fmt.as_ref().unwrap_or(&Format::Json);
    let result = async {
        let fmt = fmt?;
        let enc = encoding(&headers)?;
        let reading =
            pipeline.check_ready::<K>().and_then(|()| pipeline.reserve(reading_bytes(&headers, enc, &pipeline)));
        let reading = match reading {
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
        let work = move || {
            let body = decompress(enc, body, limit)?;
            let request = decode::<K>(fmt, &body)?;
            Ok::<_, IngestError>((request, (fmt == Format::Protobuf).then_some(body)))
        };
        let (request, raw) = if headers_say_small(&headers) {
            work()?
        } else {
            tokio::task::spawn_blocking(work).await.map_err(|_| IngestError::ShuttingDown)??
        };
        // Decoded: from here the request counts in the budget by its own size.
        drop(reading);
        pipeline.submit::<K>(&tenant, request, raw).await
    }
    .await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    pipeline
        .telemetry()
        .request_duration_seconds
        .get_or_create(&Request { transport: "http", signal: K::SIGNAL.as_str(), outcome })
        .observe(start.elapsed().as_secs_f64());
    match result {
        Ok(outcome) => success::<K>(reply_format, outcome),
        Err(e) => failure(reply_format, &e),
    }
}

/// The request body, refused past `limit` bytes as it arrives.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, IngestError> {
    Ok(Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => IngestError::TooLarge { limit },
            Err(e) => IngestError::Invalid(format!("cannot read the request body: {e}")),
        })?
        .to_bytes())
}

/// What reading and decoding a body may take: three times its size on the
/// wire for identity (the decoded messages), eight times that for gzip,
/// the body limit when the size is not given; at most the budget.
fn reading_bytes(headers: &HeaderMap, encoding: Encoding, pipeline: &Pipeline) -> usize {
    let config = pipeline.config();
    let len = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let wire = len.unwrap_or(config.max_body_bytes).min(config.max_body_bytes);
    let inflated = match encoding {
        Encoding::Identity => wire,
        Encoding::Gzip => wire.saturating_mul(8).min(config.max_body_bytes),
    };
    // The budget clamps what one request takes to its whole size.
    inflated.saturating_mul(3)
}

/// Reads a refused request's body to its end without keeping it, so that
/// the client reads the refusal instead of a connection reset while it is
/// still sending (and the connection stays usable).
pub async fn discard_body(body: Body, limit: usize) {
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut stream).await {
        seen += chunk.len();
        if seen > limit {
            break;
        }
    }
}

/// Small identity bodies are decoded inline; the rest on a blocking thread.
fn headers_say_small(headers: &HeaderMap) -> bool {
    let identity = headers.get(header::CONTENT_ENCODING).is_none();
    let len = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    identity && len.is_some_and(|l| l <= INLINE_DECODE_BYTES)
}

fn success<K: OtlpSignal>(format: Format, outcome: Outcome) -> Response {
    let body = match format {
        Format::Protobuf => K::response(outcome.rejected as i64, outcome.message).encode_to_vec(),
        Format::Json => {
            sightline_proto::json::encode_response(K::REJECTED_JSON_KEY, outcome.rejected as i64, &outcome.message)
        }
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The HTTP status and gRPC code for an error, per the OTLP specification.
pub fn status_of(e: &IngestError) -> (StatusCode, tonic::Code) {
    match e {
        IngestError::Invalid(_) => (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument),
        IngestError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, tonic::Code::InvalidArgument),
        IngestError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, tonic::Code::ResourceExhausted),
        IngestError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, tonic::Code::ResourceExhausted),
        IngestError::Overloaded(_) | IngestError::Storage(_) | IngestError::ShuttingDown => {
            (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable)
        }
        IngestError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, tonic::Code::Unauthenticated),
        IngestError::PermissionDenied(_) => (StatusCode::FORBIDDEN, tonic::Code::PermissionDenied),
    }
}

/// The refusal of a request with these headers, in the format it was sent in.
pub fn refusal(headers: &HeaderMap, e: &IngestError) -> Response {
    failure(format(headers).unwrap_or(Format::Json), e)
}

fn failure(format: Format, e: &IngestError) -> Response {
    let (status, code) = status_of(e);
    let message = e.to_string();
    let body = match format {
        Format::Protobuf => tonic_types::Status { code: code as i32, message, details: Vec::new() }.encode_to_vec(),
        Format::Json => serde_json::json!({ "code": code as i32, "message": message }).to_string().into_bytes(),
    };
    let mut response = (status, [(header::CONTENT_TYPE, format.content_type())], body).into_response();
    retry_later(&mut response, e);
    response
}

/// On a retryable refusal: `Retry-After`, and the connection closed after
/// the answer, so that a flood of clients waiting to retry holds no
/// connections (and their buffers) open on the server meanwhile.
pub fn retry_later(response: &mut Response, e: &IngestError) {
    if let Some(after) = e.retry_after() {
        let secs = after.as_secs_f64().ceil().max(1.0) as u64;
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
