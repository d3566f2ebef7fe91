//! What differs between the three signals (and remote write, a second way
//! in for metrics), behind one trait, so that the pipeline and the
//! receivers are written once.

use prost::Message;
use sightline_proto::otlp::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse, ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest, ExportMetricsServiceResponse, ExportTracePartialSuccess, ExportTraceServiceRequest,
    ExportTraceServiceResponse,
};
use sightline_proto::prometheus::WriteRequest;
use sightline_storage::metrics::{Exemplar, Labels, METRIC_NAME, Meta, Point, Sample};
use sightline_storage::model::{LogRecord, Signal, Span};
use sightline_storage::wal::Format;

use crate::convert;
use crate::validate::{self, Limits, Rejections};

/// One telemetry signal as the front door sees it.
pub trait SignalKind: Send + Sync + 'static {
    type Request: Message + Default + Send + 'static;
    type Item: Send + 'static;
    const SIGNAL: Signal;
    /// How the WAL logs this kind's requests.
    const FORMAT: Format = Format::Otlp;
    /// Plural noun for the items, as in OTLP's `rejected_<items>`.
    const ITEMS: &'static str;
    /// What is full when a refusal names this signal's queue or store backlog.
    const QUEUE: &'static str;
    const STORE_BACKLOG: &'static str;

    fn count(req: &Self::Request) -> u64;
    /// Removes invalid items from `req` and says what was removed.
    fn validate(req: &mut Self::Request, limits: Limits) -> Rejections;
    fn convert(req: Self::Request) -> Vec<Self::Item>;
    /// Which of `shards` lanes takes `item`; a signal with one lane needs no answer.
    fn shard(_item: &Self::Item, _shards: usize) -> usize {
        0
    }
}

/// A signal's OTLP export service: its answer and its JSON encoding.
pub trait OtlpSignal: SignalKind {
    type Response: Message + Default + Send + 'static;
    /// OTLP/JSON key of the rejected count in a partial success.
    const REJECTED_JSON_KEY: &'static str;

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError>;
    fn response(rejected: i64, message: String) -> Self::Response;
}

pub struct Traces;
pub struct Logs;
pub struct Metrics;
/// Prometheus remote write: samples for the metrics lane, logged in the WAL
/// as the `WriteRequest` they came in.
pub struct RemoteWrite;

/// Keeps the items of nested vectors that pass `check`, counting the others.
fn retain_valid<T>(items: &mut Vec<T>, rejections: &mut Rejections, check: impl Fn(&T) -> Result<(), String>) {
    let mut first = None;
    let before = items.len();
    items.retain(|item| match check(item) {
        Ok(()) => true,
        Err(e) => {
            first.get_or_insert(e);
            false
        }
    });
    rejections.add((before - items.len()) as u64, || first.unwrap_or_default());
}

impl SignalKind for Traces {
    type Request = ExportTraceServiceRequest;
    type Item = Span;
    const SIGNAL: Signal = Signal::Traces;
    const ITEMS: &'static str = "spans";
    const QUEUE: &'static str = "the traces queue";
    const STORE_BACKLOG: &'static str = "the span store's unwritten backlog";

    fn count(req: &Self::Request) -> u64 {
        req.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len() as u64).sum()
    }

    fn validate(req: &mut Self::Request, limits: Limits) -> Rejections {
        let mut rej = Rejections::default();
        for rs in &mut req.resource_spans {
            let resource_ok = rs.resource.as_ref().map_or(Ok(()), |r| validate::attributes(&r.attributes, limits));
            for ss in &mut rs.scope_spans {
                retain_valid(&mut ss.spans, &mut rej, |s| {
                    resource_ok.clone().map_err(|e| format!("resource: {e}"))?;
                    validate::span(s, limits)
                });
            }
        }
        rej
    }

    fn convert(req: Self::Request) -> Vec<Span> {
        convert::spans(req)
    }

    /// By trace id, as the span store's shards split them.
    fn shard(span: &Span, shards: usize) -> usize {
        sightline_storage::spans::shard_of(&span.trace_id, shards)
    }
}

impl OtlpSignal for Traces {
    type Response = ExportTraceServiceResponse;
    const REJECTED_JSON_KEY: &'static str = "rejectedSpans";

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError> {
        sightline_proto::json::decode_traces(body)
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty())
                .then_some(ExportTracePartialSuccess { rejected_spans: rejected, error_message: message }),
        }
    }
}

impl SignalKind for Logs {
    type Request = ExportLogsServiceRequest;
    type Item = LogRecord;
    const SIGNAL: Signal = Signal::Logs;
    const ITEMS: &'static str = "log records";
    const QUEUE: &'static str = "the logs queue";
    const STORE_BACKLOG: &'static str = "the log store's unwritten backlog";

    fn count(req: &Self::Request) -> u64 {
        req.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len() as u64).sum()
    }

    fn validate(req: &mut Self::Request, limits: Limits) -> Rejections {
        let mut rej = Rejections::default();
        // A record without an observed time gets the time it was received,
        // before it is logged, so that replay restores the same value.
        let now = sightline_storage::model::now_unix_nanos();
        for rl in &mut req.resource_logs {
            let resource_ok = rl.resource.as_ref().map_or(Ok(()), |r| validate::attributes(&r.attributes, limits));
            for sl in &mut rl.scope_logs {
                retain_valid(&mut sl.log_records, &mut rej, |r| {
                    resource_ok.clone().map_err(|e| format!("resource: {e}"))?;
                    validate::log_record(r, limits)
                });
                for r in sl.log_records.iter_mut().filter(|r| r.observed_time_unix_nano == 0) {
                    r.observed_time_unix_nano = now;
                    rej.rewritten = true;
                }
            }
        }
        rej
    }

    fn convert(req: Self::Request) -> Vec<LogRecord> {
        convert::logs(req)
    }
}

impl OtlpSignal for Logs {
    type Response = ExportLogsServiceResponse;
    const REJECTED_JSON_KEY: &'static str = "rejectedLogRecords";

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError> {
        sightline_proto::json::decode_logs(body)
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty())
                .then_some(ExportLogsPartialSuccess { rejected_log_records: rejected, error_message: message }),
        }
    }
}

impl SignalKind for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Item = Point;
    const SIGNAL: Signal = Signal::Metrics;
    const ITEMS: &'static str = "data points";
    const QUEUE: &'static str = "the metrics queue";
    const STORE_BACKLOG: &'static str = "the metric store's unwritten backlog";

    fn count(req: &Self::Request) -> u64 {
        use sightline_proto::otlp::metrics::metric::Data;
        req.resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .map(|m| match &m.data {
                None => 0,
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                Some(Data::Summary(s)) => s.data_points.len(),
            } as u64)
            .sum()
    }

    fn validate(req: &mut Self::Request, limits: Limits) -> Rejections {
        let mut rej = Rejections::default();
        for rm in &mut req.resource_metrics {
            let resource_bad = rm.resource.as_ref().and_then(|r| validate::attributes(&r.attributes, limits).err());
            for sm in &mut rm.scope_metrics {
                if let Some(problem) = &resource_bad {
                    let n = Self::count(&ExportMetricsServiceRequest {
                        resource_metrics: vec![sightline_proto::otlp::metrics::ResourceMetrics {
                            scope_metrics: vec![sm.clone()],
                            ..Default::default()
                        }],
                    });
                    rej.add(n, || format!("resource: {problem}"));
                    sm.metrics.clear();
                    continue;
                }
                for m in &mut sm.metrics {
                    if let Some(data) = &mut m.data {
                        validate::metric_points(&m.name, data, limits, &mut rej);
                    }
                }
            }
        }
        rej
    }

    fn convert(req: Self::Request) -> Vec<Point> {
        convert::metrics::points(req)
    }
}

impl OtlpSignal for Metrics {
    type Response = ExportMetricsServiceResponse;
    const REJECTED_JSON_KEY: &'static str = "rejectedDataPoints";

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError> {
        sightline_proto::json::decode_metrics(body)
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty())
                .then_some(ExportMetricsPartialSuccess { rejected_data_points: rejected, error_message: message }),
        }
    }
}

/// A remote-write sample's time, in nanoseconds (0 when before the epoch).
fn sample_nanos(s: &sightline_proto::prometheus::Sample) -> u64 {
    u64::try_from(s.timestamp).unwrap_or(0).saturating_mul(1_000_000)
}

impl SignalKind for RemoteWrite {
    type Request = WriteRequest;
    type Item = Point;
    const SIGNAL: Signal = Signal::Metrics;
    const FORMAT: Format = Format::RemoteWrite;
    const ITEMS: &'static str = "samples";
    const QUEUE: &'static str = "the metrics queue";
    const STORE_BACKLOG: &'static str = "the metric store's unwritten backlog";

    fn count(req: &WriteRequest) -> u64 {
        req.timeseries.iter().map(|ts| ts.samples.len() as u64).sum()
    }

    fn validate(req: &mut WriteRequest, _: Limits) -> Rejections {
        let mut rej = Rejections::default();
        req.timeseries.retain_mut(|ts| {
            if !ts.labels.iter().any(|l| l.name == METRIC_NAME && !l.value.is_empty()) {
                rej.add(ts.samples.len() as u64, || "a series without a __name__ label".into());
                return false;
            }
            retain_valid(&mut ts.samples, &mut rej, |s| validate::point_time(sample_nanos(s)));
            !ts.samples.is_empty()
        });
        rej
    }

    /// One point a sample (a refusal counts samples, as the client sent
    /// them); the labels exactly as sent, shared by the series' samples;
    /// the family's metadata (when the request gave it) with its first
    /// point, and the series' exemplars with its last sample.
    fn convert(req: WriteRequest) -> Vec<Point> {
        let mut out = Vec::with_capacity(Self::count(&req) as usize);
        let mut metadata: std::collections::HashMap<String, Meta> =
            req.metadata.into_iter().map(|m| (m.metric_family_name.clone(), remote_meta(m))).collect();
        for ts in req.timeseries {
            let family = ts.labels.iter().find(|l| l.name == METRIC_NAME).map(|l| l.value.clone()).unwrap_or_default();
            // Said once, with the family's first point: the store keeps it.
            let mut meta = metadata.remove(&family);
            let labels = Labels::new(ts.labels.into_iter().map(|l| (l.name, l.value)).collect());
            let first = out.len();
            out.extend(ts.samples.iter().map(|s| Point {
                family: family.clone(),
                meta: meta.take(),
                samples: vec![Sample { labels: labels.clone(), t: (sample_nanos(s) / 1_000_000) as i64, v: s.value }],
                delta: false,
                exemplars: Vec::new(),
                derived: false,
            }));
            if let Some(last) = out.get_mut(first..).and_then(<[Point]>::last_mut) {
                last.exemplars = ts.exemplars.iter().map(|e| (0, remote_exemplar(e))).collect();
            }
        }
        out
    }
}

/// A remote-write family's metadata as the metadata API reports it.
fn remote_meta(m: sightline_proto::prometheus::MetricMetadata) -> Meta {
    let kind = match m.r#type {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    };
    Meta { kind, help: m.help, unit: m.unit }
}

/// A remote-write exemplar: its trace and span from the labels OpenTelemetry
/// and Prometheus clients write them in.
fn remote_exemplar(e: &sightline_proto::prometheus::Exemplar) -> Exemplar {
    let label = |names: &[&str]| e.labels.iter().find(|l| names.contains(&l.name.as_str())).map(|l| l.value.as_str());
    Exemplar {
        t: e.timestamp,
        v: e.value,
        trace_id: label(&["trace_id", "traceID", "traceId"]).and_then(|v| v.parse().ok()),
        span_id: label(&["span_id", "spanID", "spanId"]).and_then(|v| v.parse().ok()),
    }
}
