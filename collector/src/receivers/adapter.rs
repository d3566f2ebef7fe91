//! What the ways in that are not OTLP (remote write, Loki push, Zipkin)
//! share: a body read within the limits and the memory budget, turned into
//! the request of a signal off the reactor, submitted through the same door
//! as OTLP, and the answer in the plain-text style those protocols use.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sightline_proto::otlp::ExportLogsServiceRequest;
use sightline_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use sightline_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use sightline_proto::otlp::resource::Resource;

use super::otlp_http::{Encoding, decompress, discard_body, encoding, read_body, retry_later, status_of};
use crate::error::IngestError;
use crate::pipeline::{Laned, Outcome, Pipeline};

/// Reads the body (gzip inflated when `Content-Encoding` says so, if
/// `http_encoding`), converts it with `convert` on a blocking thread and
/// submits it as `K` (with the bytes to log as they are, when `convert`
/// gives them). `expansion`: how many times its size on the wire a body may
/// take in memory until it is converted.
pub async fn submit<K: Laned>(
    pipeline: &Pipeline,
    headers: &HeaderMap,
    body: Body,
    expansion: usize,
    http_encoding: bool,
    convert: impl FnOnce(Bytes) -> Result<(K::Request, Option<Bytes>), IngestError> + Send + 'static,
) -> Result<Outcome, IngestError> {
    let convert = move |body| convert(body).map(|(request, raw)| (request, raw, ()));
    submit_with::<K, ()>(pipeline, headers, body, expansion, http_encoding, convert).await.map(|(outcome, ())| outcome)
}

/// [`submit`], and what else `convert` made of the body (the answer of a
/// protocol that reports item by item needs its items).
pub async fn submit_with<K: Laned, X: Send + 'static>(
    pipeline: &Pipeline,
    headers: &HeaderMap,
    body: Body,
    expansion: usize,
    http_encoding: bool,
    convert: impl FnOnce(Bytes) -> Result<(K::Request, Option<Bytes>, X), IngestError> + Send + 'static,
) -> Result<(Outcome, X), IngestError> {
    let enc = if http_encoding { encoding(headers)? } else { Encoding::Identity };
    let limit = pipeline.config().max_body_bytes;
    let wire =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()).unwrap_or(limit);
    // The budget clamps what one request takes to its whole size.
    let reserve = wire.saturating_mul(expansion);
    let reading = match pipeline.check_ready::<K>().and_then(|()| pipeline.reserve(reserve)) {
        Ok(permit) => permit,
        Err(e) => {
            discard_body(body, limit).await;
            return Err(e);
        }
    };
    let tenant = pipeline.tenant(headers.get(pipeline.config().tenant_header.as_str()).map(HeaderValue::as_bytes))?;
    let body = read_body(body, limit).await?;
    let (request, raw, extra) = tokio::task::spawn_blocking(move || convert(decompress(enc, body, limit)?))
        .await
        .map_err(|_| IngestError::ShuttingDown)??;
    drop(reading);
    Ok((pipeline.submit::<K>(&tenant, request, raw).await?, extra))
}

/// The OTLP severity (number, text) of a level word as loggers write it
/// (`warn`, `ERROR`, `crit`, …); `(0, "")` for one it does not know.
pub fn severity_of(level: &str) -> (i32, &'static str) {
    match level.to_ascii_lowercase().as_str() {
        "trace" => (1, "TRACE"),
        "debug" | "dbug" => (5, "DEBUG"),
        "info" | "information" | "notice" => (9, "INFO"),
        "warn" | "warning" => (13, "WARN"),
        "error" | "err" | "eror" => (17, "ERROR"),
        "fatal" | "critical" | "crit" | "panic" | "alert" | "emerg" | "emergency" => (21, "FATAL"),
        _ => (0, ""),
    }
}

/// A raw (block) snappy body, refused past `limit` bytes once inflated.
pub fn snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    let len = snap::raw::decompress_len(body).map_err(|e| IngestError::Invalid(format!("invalid snappy: {e}")))?;
    if len > limit {
        return Err(IngestError::TooLarge { limit });
    }
    snap::raw::Decoder::new().decompress_vec(body).map_err(|e| IngestError::Invalid(format!("invalid snappy: {e}")))
}

/// `stored` when every item was taken; 400 naming the refused `items`;
/// the refusal's status with `Retry-After` when it is retryable.
pub fn answer(result: Result<Outcome, IngestError>, stored: StatusCode, items: &str) -> Response {
    match result {
        Ok(outcome) if outcome.rejected == 0 => stored.into_response(),
        Ok(outcome) => {
            (StatusCode::BAD_REQUEST, format!("{} {items} refused: {}\n", outcome.rejected, outcome.message))
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

/// A `Content-Type`'s essence, lower-cased (`""` when there is none).
pub fn content_type(headers: &HeaderMap) -> String {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// A string attribute.
pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
        key_strindex: 0,
    }
}

/// An integer attribute.
pub fn int_kv(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(value)) }),
        key_strindex: 0,
    }
}

/// Log records by their (service, host), as one OTLP request: a resource
/// per pair (`service.name`, `host.name`), the scope named `scope`.
pub fn logs_request(
    scope: &str,
    by_resource: std::collections::BTreeMap<(String, Option<String>), Vec<LogRecord>>,
) -> ExportLogsServiceRequest {
    let resource_logs = by_resource
        .into_iter()
        .map(|((service, host), log_records)| {
            let mut attributes = vec![string_kv("service.name", &service)];
            attributes.extend(host.map(|h| string_kv("host.name", &h)));
            ResourceLogs {
                resource: Some(Resource { attributes, ..Default::default() }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope { name: scope.into(), ..Default::default() }),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}
