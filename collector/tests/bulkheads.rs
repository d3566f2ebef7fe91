//! Bulkheads: when one signal's store stalls, its queue fills and that signal
//! is refused with 503 + Retry-After, while the other signals keep flowing.
//! The memory budget refuses the same way. Driven through the OTLP/HTTP
//! router and the OTLP/gRPC routes without a socket.

use std::sync::{Arc, Condvar, Mutex};

use axum::body::Body;
use http::Request;
use prometheus_client::registry::Registry;
use prost::Message;
use sightline_collector::receivers::otlp_http;
use sightline_collector::{IngestConfig, Pipeline, Sinks};
use sightline_proto::otlp::common::{AnyValue, any_value};
use sightline_proto::otlp::logs::{LogRecord as OtlpLog, ResourceLogs, ScopeLogs};
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span as OtlpSpan};
use sightline_proto::otlp::{ExportLogsServiceRequest, ExportTraceServiceRequest};
use sightline_storage::StorageError;
use sightline_storage::logs::{LogStore, LogStoreConfig};
use sightline_storage::metrics::MetricStore;
use sightline_storage::model::Span;
use sightline_storage::sink::{Batch, Sink};
use sightline_storage::wal::{FsyncPolicy, Wal, WalConfig};
use tower::ServiceExt;

/// A span store that blocks until it is opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
    taken: Mutex<u64>,
    entered: std::sync::atomic::AtomicU64,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().expect("lock") = true;
        self.cv.notify_all();
    }
}

impl Sink<Span> for Gate {
    fn consume(&self, batch: Batch<Span>) -> Result<(), StorageError> {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut open = self.open.lock().expect("lock");
        while !*open {
            open = self.cv.wait(open).expect("wait");
        }
        *self.taken.lock().expect("lock") += batch.items.len() as u64;
        Ok(())
    }
}

fn spans_body(n: u8) -> Vec<u8> {
    let span = OtlpSpan {
        trace_id: vec![n + 1; 16],
        span_id: vec![1; 8],
        name: "op".into(),
        start_time_unix_nano: 1,
        end_time_unix_nano: 2,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn logs_body() -> Vec<u8> {
    let record = OtlpLog {
        time_unix_nano: 5,
        body: Some(AnyValue { value: Some(any_value::Value::StringValue("hello".into())) }),
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs { log_records: vec![record], ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// As clients send it, with its length (the door reserves memory by it).
fn post(path: &str, body: Vec<u8>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-protobuf")
        .header("content-length", body.len())
        .body(Body::from(body))
        .expect("request")
}

fn pipeline(
    config: IngestConfig,
    spans: Arc<dyn Sink<Span>>,
    metrics: MetricStore,
    dir: &std::path::Path,
) -> (Arc<Pipeline>, LogStore) {
    let mut registry = Registry::default();
    let wal_config =
        WalConfig { dir: dir.join("wal"), segment_bytes: 1 << 20, fsync: FsyncPolicy::Never, queue_capacity: 64 };
    let (wal, _) = Wal::open(wal_config, &mut registry).expect("wal");
    let logs = LogStore::open(LogStoreConfig::new(dir.join("logs")), Some(wal.clone())).expect("log store");
    let sinks = Sinks { spans: vec![spans], logs: Arc::new(logs.clone()), metrics: Arc::new(metrics) };
    (Pipeline::start(config, wal, sinks, &mut registry).expect("pipeline"), logs)
}

/// Polls until the traces queue holds `n` requests.
async fn queued(p: &Pipeline, n: i64) {
    let label = sightline_collector::telemetry::SignalLabel { signal: "traces" };
    for _ in 0..2000 {
        if p.telemetry().queue_depth.get_or_create(&label).get() == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the traces queue never held {n} requests");
}

/// Sends a request in the background: an accepted one only answers once the
/// stalled store has taken it.
fn spawn_post(app: &axum::Router, path: &'static str, body: Vec<u8>) -> tokio::task::JoinHandle<u16> {
    let app = app.clone();
    tokio::spawn(async move { app.oneshot(post(path, body)).await.expect("response").status().as_u16() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_span_store_does_not_stop_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Arc::new(Gate::default());
    let metrics = MetricStore::default();
    let mut config = IngestConfig::default();
    config.queue_capacity.traces = 2;
    let (p, logs) = pipeline(config, gate.clone(), metrics, dir.path());
    let app = otlp_http::router(p.clone());

    // The worker holds the first batch in the stalled store, the queue two more.
    let mut waiting = vec![spawn_post(&app, "/v1/traces", spans_body(0))];
    for _ in 0..2000 {
        if gate.entered.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    waiting.push(spawn_post(&app, "/v1/traces", spans_body(1)));
    waiting.push(spawn_post(&app, "/v1/traces", spans_body(2)));
    queued(&p, 2).await;

    // Further spans are refused at once, retryably.
    for n in 3..6 {
        let r = app.clone().oneshot(post("/v1/traces", spans_body(n))).await.expect("response");
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().expect("text")), Some("1"));
    }

    // Logs still flow while spans are refused.
    let r = app.clone().oneshot(post("/v1/logs", logs_body())).await.expect("response");
    assert_eq!(r.status(), 200);
    let tenant = sightline_storage::model::Tenant::new("default").expect("tenant");
    logs.commit_blocking().expect("commit");
    assert_eq!(logs.count(&tenant).expect("count"), 1, "acknowledged means stored");

    // Once the store moves again, the waiting requests are answered, every
    // accepted span is stored and new ones pass.
    gate.open();
    for w in waiting {
        assert_eq!(w.await.expect("task"), 200);
    }
    let r = app.clone().oneshot(post("/v1/traces", spans_body(9))).await.expect("response");
    assert_eq!(r.status(), 200);
    assert_eq!(*gate.taken.lock().expect("lock"), 4);
    tokio::task::spawn_blocking(move || p.shutdown_blocking()).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_refuses_with_503() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gate = Arc::new(Gate::default());
    let metrics = MetricStore::default();
    let config = IngestConfig { max_body_bytes: 4096, memory_limit_bytes: 4096, ..IngestConfig::default() };
    let (p, _logs) = pipeline(config, gate.clone(), metrics, dir.path());
    let app = otlp_http::router(p.clone());
    // Each request holds at least 1 KiB of the 4 KiB budget until it is stored.
    let waiting: Vec<_> = (0..4).map(|n| spawn_post(&app, "/v1/traces", spans_body(n))).collect();
    for _ in 0..2000 {
        if p.telemetry().memory_in_use_bytes.get() == 4096 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(p.telemetry().memory_in_use_bytes.get(), 4096);
    for n in 4..8 {
        let r = app.clone().oneshot(post("/v1/traces", spans_body(n))).await.expect("response");
        assert_eq!(r.status(), 503);
    }
    gate.open();
    for w in waiting {
        assert_eq!(w.await.expect("task"), 200);
    }
    tokio::task::spawn_blocking(move || p.shutdown_blocking()).await.expect("shutdown");
    assert_eq!(*gate.taken.lock().expect("lock"), 4);
}

/// A store that says it is behind.
struct Behind;

impl Sink<Span> for Behind {
    fn consume(&self, _: Batch<Span>) -> Result<(), StorageError> {
        panic!("a backlogged store is not given new batches")
    }
    fn backlogged(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlogged_store_refuses_its_signal_before_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics = MetricStore::default();
    let (p, _logs) = pipeline(IngestConfig::default(), Arc::new(Behind), metrics, dir.path());
    let app = otlp_http::router(p.clone());
    let r = app.clone().oneshot(post("/v1/traces", spans_body(1))).await.expect("response");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").map(|v| v.to_str().expect("text")), Some("1"));
    // Refused before the body is read: a body that would not decode is not looked at.
    let r = app.clone().oneshot(post("/v1/traces", vec![0xff; 64])).await.expect("response");
    assert_eq!(r.status(), 503, "refused before decoding, not 400");
    let r = app.clone().oneshot(post("/v1/logs", logs_body())).await.expect("response");
    assert_eq!(r.status(), 200, "other signals are unaffected");

    // Over gRPC, before the message is decoded: UNAVAILABLE, not INVALID_ARGUMENT.
    let frame = |message: &[u8]| {
        let mut body = vec![0u8];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        body
    };
    let grpc = sightline_collector::receivers::otlp_grpc::routes(p.clone());
    let request = |path: &str, message: &[u8]| {
        Request::post(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::from(frame(message)))
            .expect("request")
    };
    let trace_export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    let r = grpc.clone().oneshot(request(trace_export, &[0xff; 64])).await.expect("response");
    let code = r.headers().get("grpc-status").map(|v| v.to_str().expect("text").to_owned());
    assert_eq!(code.as_deref(), Some("14"), "UNAVAILABLE before decoding");
    let logs_export = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    let r = grpc.oneshot(request(logs_export, &[0xff; 64])).await.expect("response");
    let code = r.headers().get("grpc-status").map(|v| v.to_str().expect("text").to_owned());
    assert_ne!(code.as_deref(), Some("14"), "logs are not refused: their store keeps up");
    tokio::task::spawn_blocking(move || p.shutdown_blocking()).await.expect("shutdown");
}
