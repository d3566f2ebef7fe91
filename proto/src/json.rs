//! OTLP/JSON decoding of the three export requests, and encoding of their
//! responses.
//!
//! Decoding walks a `serde_json::Value` (whose parser refuses nesting deeper
//! than 128 levels) into the prost messages, so that every field is read under
//! both of its names and nothing a client sent is silently dropped.

mod common;
mod logs;
mod metrics;
mod reader;
mod traces;

pub use reader::JsonError;

use crate::otlp;

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_traces(body: &[u8]) -> Result<otlp::ExportTraceServiceRequest, JsonError> {
    traces::request(&reader::parse(body)?)
}

/// Decodes an OTLP/JSON `ExportLogsServiceRequest`.
pub fn decode_logs(body: &[u8]) -> Result<otlp::ExportLogsServiceRequest, JsonError> {
    logs::request(&reader::parse(body)?)
}

/// Decodes an OTLP/JSON `ExportMetricsServiceRequest`.
pub fn decode_metrics(body: &[u8]) -> Result<otlp::ExportMetricsServiceRequest, JsonError> {
    metrics::request(&reader::parse(body)?)
}

/// Encodes an export response: `{}` on full success, else
/// `{"partialSuccess":{"rejected<Items>":"N","errorMessage":"…"}}`
/// (64-bit integers are strings in the protobuf JSON mapping).
pub fn encode_response(rejected_key: &str, rejected: i64, error_message: &str) -> Vec<u8> {
    let body = if rejected == 0 && error_message.is_empty() {
        serde_json::json!({})
    } else {
        let mut partial = serde_json::Map::new();
        partial.insert(rejected_key.to_owned(), rejected.to_string().into());
        partial.insert("errorMessage".to_owned(), error_message.into());
        serde_json::json!({ "partialSuccess": partial })
    };
    body.to_string().into_bytes()
}
