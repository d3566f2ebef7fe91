//! End-to-end: the real OpenTelemetry Rust SDK exports traces, logs and
//! metrics to a real Sightline over OTLP/gRPC, OTLP/HTTP protobuf and
//! OTLP/HTTP JSON; every item is checked where it landed, and traces are
//! read back through the HTTP API as a user would.

use sightline_testkit as common;

use std::collections::HashMap;

use common::{TestServer, eventually, tenant};
use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::SdkTracerProvider;
use sightline_storage::model::{SpanKind, TraceId};

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

struct Providers {
    tracer: SdkTracerProvider,
    logger: SdkLoggerProvider,
    meter: SdkMeterProvider,
}

/// Builds the three providers for one transport, tagging every request with
/// the tenant header and gzip where the transport takes it.
fn providers(s: &TestServer, transport: Transport, tenant: &str, temporality: Temporality) -> Providers {
    let resource = Resource::builder().with_service_name(format!("svc-{tenant}")).build();
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("x-scope-orgid", tenant.parse().expect("metadata"));
    let headers = HashMap::from([("X-Scope-OrgID".to_owned(), tenant.to_owned())]);
    let http = |signal: &str, protocol| (s.otlp_http_url(signal), protocol);
    macro_rules! exporter {
        ($builder:expr, $signal:literal) => {
            match transport {
                Transport::Grpc => $builder
                    .with_tonic()
                    .with_endpoint(s.grpc_url())
                    .with_metadata(metadata.clone())
                    .with_compression(Compression::Gzip)
                    .build(),
                Transport::HttpProtobuf | Transport::HttpJson => {
                    let protocol = if matches!(transport, Transport::HttpJson) {
                        Protocol::HttpJson
                    } else {
                        Protocol::HttpBinary
                    };
                    let (url, protocol) = http($signal, protocol);
                    $builder
                        .with_http()
                        .with_endpoint(url)
                        .with_protocol(protocol)
                        .with_headers(headers.clone())
                        .with_compression(Compression::Gzip)
                        .build()
                }
            }
            .expect("exporter builds")
        };
    }
    let spans = exporter!(opentelemetry_otlp::SpanExporter::builder(), "traces");
    let logs = exporter!(opentelemetry_otlp::LogExporter::builder(), "logs");
    let metrics = exporter!(opentelemetry_otlp::MetricExporter::builder().with_temporality(temporality), "metrics");
    Providers {
        tracer: SdkTracerProvider::builder().with_resource(resource.clone()).with_batch_exporter(spans).build(),
        logger: SdkLoggerProvider::builder().with_resource(resource.clone()).with_batch_exporter(logs).build(),
        meter: SdkMeterProvider::builder().with_resource(resource).with_periodic_exporter(metrics).build(),
    }
}

/// What the instrumented code produced, to compare with what arrived.
struct Sent {
    trace_id: TraceId,
}

/// Emits one trace of three spans, three log records (one inside a span),
/// and four instruments, then flushes and shuts the providers down.
fn emit(p: &Providers) -> Sent {
    let tracer = p.tracer.tracer("e2e");
    let logger = p.logger.logger("e2e");
    let meter = p.meter.meter("e2e");
    let counter = meter.u64_counter("orders").build();
    let updown = meter.i64_up_down_counter("queue_size").build();
    let histogram = meter.f64_histogram("latency").with_unit("s").build();
    let gauge = meter.f64_gauge("temperature").build();

    let trace_id = tracer.in_span("GET /checkout", |cx| {
        let span = cx.span();
        span.set_attribute(KeyValue::new("http.route", "/checkout"));
        tracer.in_span("SELECT orders", |_| {
            let mut record = logger.create_log_record();
            record.set_body(AnyValue::from("query took too long"));
            record.set_severity_number(Severity::Warn);
            record.set_severity_text("WARN");
            logger.emit(record);
        });
        let mut child = tracer.start("charge card");
        child.add_event("retry", vec![KeyValue::new("attempt", 2)]);
        child.end();
        span.span_context().trace_id()
    });
    for (body, severity) in [("started", Severity::Info), ("payment failed", Severity::Error)] {
        let mut record = logger.create_log_record();
        record.set_body(AnyValue::from(body));
        record.set_severity_number(severity);
        record.add_attribute("order.id", 42);
        logger.emit(record);
    }
    counter.add(5, &[KeyValue::new("route", "/checkout")]);
    counter.add(7, &[KeyValue::new("route", "/checkout")]);
    updown.add(3, &[]);
    updown.add(-1, &[]);
    histogram.record(0.25, &[]);
    histogram.record(1.5, &[]);
    gauge.record(21.5, &[]);

    p.tracer.force_flush().expect("spans flushed");
    p.logger.force_flush().expect("logs flushed");
    p.meter.force_flush().expect("metrics flushed");
    p.tracer.shutdown().expect("tracer shutdown");
    p.logger.shutdown().expect("logger shutdown");
    p.meter.shutdown().expect("meter shutdown");
    Sent { trace_id: TraceId(trace_id.to_bytes()) }
}

async fn round_trip(transport: Transport, temporality: Temporality) {
    let s = common::start(|_| {}).await;
    let tenant_name = format!("{transport:?}-{temporality:?}").to_ascii_lowercase();
    let p = providers(&s, transport, &tenant_name, temporality);
    // The SDK's batch processors and blocking HTTP client run on their own
    // threads; keep them off the async workers.
    let sent = tokio::task::spawn_blocking(move || emit(&p)).await.expect("emit");
    let t = tenant(&tenant_name);

    // Traces: three spans of one trace, with parent links and the resource.
    // Acknowledged means readable: no waiting.
    let spans = s.server.spans.trace(&t, sent.trace_id, 100).await.expect("trace").spans;
    assert_eq!(spans.len(), 3);
    let by_name: HashMap<_, _> = spans.iter().map(|s| (s.name.as_str(), s)).collect();
    let root = by_name["GET /checkout"];
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.attributes.get_str("http.route"), Some("/checkout"));
    assert_eq!(root.resource.service, format!("svc-{tenant_name}"));
    assert_eq!(root.kind, SpanKind::Internal);
    for child in ["SELECT orders", "charge card"] {
        assert_eq!(by_name[child].parent_span_id, Some(root.span_id), "{child}");
        assert!(by_name[child].start_unix_nano >= root.start_unix_nano);
    }
    assert_eq!(by_name["charge card"].events[0].name, "retry");
    // Other tenants do not see it.
    assert!(s.server.spans.trace(&tenant("default"), sent.trace_id, 100).await.expect("trace").spans.is_empty());

    // The same trace through the HTTP API, scoped by the tenant header.
    let client = reqwest::Client::new();
    let url = s.api_url(&format!("/api/traces/{}", sent.trace_id));
    let body: serde_json::Value = client
        .get(&url)
        .header("X-Scope-OrgID", &tenant_name)
        .send()
        .await
        .expect("GET trace")
        .json()
        .await
        .expect("JSON");
    assert_eq!(body["spans"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["roots"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["spans"][0]["name"], "GET /checkout", "the root comes first");
    assert_eq!(client.get(&url).send().await.expect("GET").status(), 404, "the default tenant has no such trace");

    // Logs: three records, searchable within the commit interval; the one
    // emitted inside a span carries its trace and is found by it.
    let search = |query: &str| {
        let (client, url, tenant) = (client.clone(), s.api_url("/api/logs"), tenant_name.clone());
        let query = query.to_owned();
        async move {
            let r = client
                .get(&url)
                .query(&[("query", query.as_str())])
                .header("X-Scope-OrgID", &tenant)
                .send()
                .await
                .expect("GET /api/logs");
            assert_eq!(r.status(), 200);
            let body: serde_json::Value = r.json().await.expect("JSON");
            body["hits"].as_array().cloned().expect("hits")
        }
    };
    let logs = eventually("three log records", || {
        let hits = search("");
        async move { Some(hits.await).filter(|h| h.len() == 3) }
    })
    .await;
    let mut bodies: Vec<_> = logs.iter().map(|l| l["body"].as_str().expect("body").to_owned()).collect();
    bodies.sort();
    assert_eq!(bodies, ["payment failed", "query took too long", "started"]);
    let in_span = logs.iter().find(|l| l["body"] == "query took too long").expect("log in span");
    assert_eq!(in_span["traceId"], sent.trace_id.to_hex());
    assert!(in_span["spanId"].is_string());
    assert_eq!(in_span["severityNumber"], 13);
    assert_eq!(in_span["service"], format!("svc-{tenant_name}"));
    let failed = logs.iter().find(|l| l["body"] == "payment failed").expect("error log");
    assert_eq!(failed["severityNumber"], 17);
    assert_eq!(failed["severity"], "ERROR");
    assert!(failed["traceId"].is_null());
    let body_of = |hits: Vec<serde_json::Value>| -> Vec<String> {
        hits.iter().map(|h| h["body"].as_str().expect("body").to_owned()).collect()
    };
    assert_eq!(body_of(search("took").await), ["query took too long"]);
    assert_eq!(body_of(search("\"payment failed\"").await), ["payment failed"]);
    assert_eq!(body_of(search("severity>=ERROR").await), ["payment failed"]);
    assert_eq!(search(&format!("service:svc-{tenant_name}")).await.len(), 3);
    assert_eq!(body_of(search(&format!("trace_id:{}", sent.trace_id)).await), ["query took too long"]);
    assert_eq!(search("attributes.order.id:42").await.len(), 2, "an attribute of the records, typed int");
    assert_eq!(body_of(search("order.id:42 NOT severity:INFO").await), ["payment failed"]);
    let trace_logs: serde_json::Value = client
        .get(s.api_url(&format!("/api/traces/{}/logs", sent.trace_id)))
        .header("X-Scope-OrgID", &tenant_name)
        .send()
        .await
        .expect("GET trace logs")
        .json()
        .await
        .expect("JSON");
    assert_eq!(trace_logs["logs"].as_array().map(Vec::len), Some(1));
    let other: serde_json::Value =
        client.get(s.api_url("/api/logs")).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(other["hits"].as_array().map(Vec::len), Some(0), "the default tenant sees none of them");

    // Metrics: each instrument, read back through the Prometheus API under
    // its Prometheus name (delta points summed into cumulative series).
    let prom = |query: &str| {
        let (client, url, tenant) = (client.clone(), s.api_url("/prometheus/api/v1/query"), tenant_name.clone());
        let query = query.to_owned();
        async move {
            let body: serde_json::Value = client
                .get(&url)
                .query(&[("query", query.as_str())])
                .header("X-Scope-OrgID", &tenant)
                .send()
                .await
                .expect("GET query")
                .json()
                .await
                .expect("JSON");
            assert_eq!(body["status"], "success", "{query}: {body}");
            body["data"]["result"].as_array().cloned().expect("result")
        }
    };
    let value = |r: &serde_json::Value| r["value"][1].as_str().expect("value").parse::<f64>().expect("number");
    let orders = eventually("the orders counter", || {
        let result = prom("orders_total");
        async move { Some(result.await).filter(|r| r.len() == 1 && value(&r[0]) == 12.0) }
    })
    .await;
    assert_eq!(orders[0]["metric"]["route"], "/checkout");
    assert_eq!(orders[0]["metric"]["job"], format!("svc-{tenant_name}"));
    assert_eq!(value(&prom("queue_size").await[0]), 2.0);
    assert_eq!(value(&prom("latency_seconds_count").await[0]), 2.0);
    assert_eq!(value(&prom("latency_seconds_sum").await[0]), 1.75);
    assert_eq!(value(&prom("temperature").await[0]), 21.5);
    assert_eq!(value(&prom("sum(latency_seconds_bucket{le=\"+Inf\"})").await[0]), 2.0);
    assert_eq!(prom(&format!("target_info{{job=\"svc-{tenant_name}\"}}")).await.len(), 1);
    let meta: serde_json::Value = client
        .get(s.api_url("/prometheus/api/v1/metadata"))
        .header("X-Scope-OrgID", &tenant_name)
        .send()
        .await
        .expect("GET metadata")
        .json()
        .await
        .expect("JSON");
    assert_eq!(meta["data"]["orders_total"][0]["type"], "counter");
    assert_eq!(meta["data"]["latency_seconds"][0]["type"], "histogram");

    s.server.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_cumulative() {
    round_trip(Transport::Grpc, Temporality::Cumulative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_delta() {
    round_trip(Transport::Grpc, Temporality::Delta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_protobuf() {
    round_trip(Transport::HttpProtobuf, Temporality::Cumulative).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_json() {
    round_trip(Transport::HttpJson, Temporality::Delta).await;
}
