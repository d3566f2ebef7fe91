//! Hand-built OTLP requests for tests that need exact control of the bytes.

use sightline_proto::otlp::ExportTraceServiceRequest;
use sightline_proto::otlp::common::{AnyValue, KeyValue, any_value};
use sightline_proto::otlp::resource::Resource;
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span};

pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        key_strindex: 0,
    }
}

/// A trace id that encodes `n`, so tests can find each request's trace.
pub fn trace_id(n: u64) -> Vec<u8> {
    let mut id = vec![0xab; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

pub fn span(trace: &[u8], index: u64) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: (index + 1).to_be_bytes().to_vec(),
        parent_span_id: if index == 0 { Vec::new() } else { 1u64.to_be_bytes().to_vec() },
        name: format!("op-{index}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000 + index,
        end_time_unix_nano: 1_700_000_000_500_000_000 + index,
        ..Default::default()
    }
}

/// One request holding one trace of `spans` spans.
pub fn traces_request(n: u64, spans: u64) -> ExportTraceServiceRequest {
    let trace = trace_id(n);
    request_of((0..spans).map(|i| span(&trace, i)).collect())
}

/// As [`traces_request`], with the trace starting at `start_unix_nano`
/// (inside the retention, for servers that run their maintenance).
pub fn traces_request_at(n: u64, spans: u64, start_unix_nano: u64) -> ExportTraceServiceRequest {
    let mut request = traces_request(n, spans);
    for s in &mut request.resource_spans[0].scope_spans[0].spans {
        s.end_time_unix_nano = s.end_time_unix_nano - s.start_time_unix_nano + start_unix_nano;
        s.start_time_unix_nano = start_unix_nano;
    }
    request
}

pub fn request_of(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "crash-test")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}

/// One request of `lines` log lines for request `n`: each line says
/// `request <n> line <j>` and carries `request` and `line` as int attributes.
pub fn logs_request(n: u64, lines: u64, time_unix_nano: u64) -> sightline_proto::otlp::ExportLogsServiceRequest {
    use sightline_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
    let int = |key: &str, v: u64| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(v as i64)) }),
        key_strindex: 0,
    };
    let log_records = (0..lines)
        .map(|j| LogRecord {
            time_unix_nano: time_unix_nano + j,
            severity_number: 9,
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(format!("request {n} line {j}"))) }),
            attributes: vec![int("request", n), int("line", j)],
            ..Default::default()
        })
        .collect();
    sightline_proto::otlp::ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "crash-test")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}

/// One request of `points` gauge points for request `n`, all at
/// `time_unix_nano`: series `crash_gauge{request="n", point="j"}` = n.
pub fn gauge_request(n: u64, points: u64, time_unix_nano: u64) -> sightline_proto::otlp::ExportMetricsServiceRequest {
    use sightline_proto::otlp::metrics::{
        Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
    };
    let data_points = (0..points)
        .map(|j| NumberDataPoint {
            time_unix_nano,
            value: Some(number_data_point::Value::AsDouble(n as f64)),
            attributes: vec![string_kv("request", &n.to_string()), string_kv("point", &j.to_string())],
            ..Default::default()
        })
        .collect();
    let metric = Metric {
        name: "crash_gauge".into(),
        data: Some(metric::Data::Gauge(Gauge { data_points })),
        ..Default::default()
    };
    sightline_proto::otlp::ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "crash-test")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}
