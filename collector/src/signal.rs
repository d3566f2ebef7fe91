//! What differs between the three signals, behind one trait, so that the
//! pipeline and the receivers are written once.

use prost::Message;
use sightline_proto::otlp::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse, ExportMetricsPartialSuccess,
    ExportMetricsServiceRequest, ExportMetricsServiceResponse, ExportTracePartialSuccess, ExportTraceServiceRequest,
    ExportTraceServiceResponse,
};
use sightline_storage::model::{LogRecord, MetricPoint, Signal, Span};

use crate::convert;
use crate::validate::{self, Limits, Rejections};

/// One telemetry signal as the front door sees it.
pub trait SignalKind: Send + Sync + 'static {
    type Request: Message + Default + Send + 'static;
    type Response: Message + Default + Send + 'static;
    type Item: Send + 'static;
    const SIGNAL: Signal;
    /// Plural noun for the items, as in OTLP's `rejected_<items>`.
    const ITEMS: &'static str;
    /// OTLP/JSON key of the rejected count in a partial success.
    const REJECTED_JSON_KEY: &'static str;
    /// What is full when a refusal names this signal's queue or store backlog.
    const QUEUE: &'static str;
    const STORE_BACKLOG: &'static str;

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError>;
    fn count(req: &Self::Request) -> u64;
    /// Removes invalid items from `req` and says what was removed.
    fn validate(req: &mut Self::Request, limits: Limits) -> Rejections;
    fn convert(req: Self::Request) -> Vec<Self::Item>;
    fn response(rejected: i64, message: String) -> Self::Response;
}

pub struct Traces;
pub struct Logs;
pub struct Metrics;

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
    type Response = ExportTraceServiceResponse;
    type Item = Span;
    const SIGNAL: Signal = Signal::Traces;
    const ITEMS: &'static str = "spans";
    const REJECTED_JSON_KEY: &'static str = "rejectedSpans";
    const QUEUE: &'static str = "the traces queue";
    const STORE_BACKLOG: &'static str = "the span store's unwritten backlog";

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError> {
        sightline_proto::json::decode_traces(body)
    }

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

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty())
                .then_some(ExportTracePartialSuccess { rejected_spans: rejected, error_message: message }),
        }
    }
}

impl SignalKind for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    type Item = LogRecord;
    const SIGNAL: Signal = Signal::Logs;
    const ITEMS: &'static str = "log records";
    const REJECTED_JSON_KEY: &'static str = "rejectedLogRecords";
    const QUEUE: &'static str = "the logs queue";
    const STORE_BACKLOG: &'static str = "the log store's unwritten backlog";

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError> {
        sightline_proto::json::decode_logs(body)
    }

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

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty())
                .then_some(ExportLogsPartialSuccess { rejected_log_records: rejected, error_message: message }),
        }
    }
}

impl SignalKind for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    type Item = MetricPoint;
    const SIGNAL: Signal = Signal::Metrics;
    const ITEMS: &'static str = "data points";
    const REJECTED_JSON_KEY: &'static str = "rejectedDataPoints";
    const QUEUE: &'static str = "the metrics queue";
    const STORE_BACKLOG: &'static str = "the metric store's unwritten backlog";

    fn decode_json(body: &[u8]) -> Result<Self::Request, sightline_proto::json::JsonError> {
        sightline_proto::json::decode_metrics(body)
    }

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

    fn convert(req: Self::Request) -> Vec<MetricPoint> {
        convert::metric_points(req)
    }

    fn response(rejected: i64, message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: (rejected > 0 || !message.is_empty())
                .then_some(ExportMetricsPartialSuccess { rejected_data_points: rejected, error_message: message }),
        }
    }
}
