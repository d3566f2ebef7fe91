//! End-to-end traces: one request crosses three services, each with its own
//! OpenTelemetry SDK exporter (gRPC and HTTP), sent at different times, with
//! some spans already in a Parquet part and some still in the head. Both the
//! native and the Jaeger API return it as one correct tree.

mod common;

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;

fn provider(service: &str, exporter: opentelemetry_otlp::SpanExporter) -> SdkTracerProvider {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("host.name", format!("{service}-host")))
        .build();
    SdkTracerProvider::builder().with_resource(resource).with_simple_exporter(exporter).build()
}

fn grpc(url: &str) -> opentelemetry_otlp::SpanExporter {
    opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(url).build().expect("exporter")
}

fn http(url: &str) -> opentelemetry_otlp::SpanExporter {
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_protocol(Protocol::HttpBinary)
        .with_headers(HashMap::new())
        .build()
        .expect("exporter")
}

/// Runs the three services' part of one request; returns the trace id.
/// The gateway exports and its spans are flushed into a part before the
/// downstream services export theirs.
fn request(
    gateway: &SdkTracerProvider,
    orders: &SdkTracerProvider,
    payments: &SdkTracerProvider,
    flush: impl Fn(),
) -> String {
    let propagator = TraceContextPropagator::new();
    let g = gateway.tracer("gateway");
    let mut root = g.span_builder("GET /checkout").with_kind(SpanKind::Server).start(&g);
    root.set_attribute(KeyValue::new("http.route", "/checkout"));
    let root_cx = Context::current_with_span(root);
    let mut headers = HashMap::new();
    let call = g.span_builder("POST orders").with_kind(SpanKind::Client).start_with_context(&g, &root_cx);
    let call_cx = root_cx.with_span(call);
    propagator.inject_context(&call_cx, &mut headers);

    // orders, in "another process": continues from the propagated headers.
    let parent = propagator.extract(&headers);
    let o = orders.tracer("orders");
    let server = o.span_builder("POST /orders").with_kind(SpanKind::Server).start_with_context(&o, &parent);
    let server_cx = parent.with_span(server);
    let mut headers2 = HashMap::new();
    let pay_call = o.span_builder("POST payments").with_kind(SpanKind::Client).start_with_context(&o, &server_cx);
    let pay_cx = server_cx.with_span(pay_call);
    propagator.inject_context(&pay_cx, &mut headers2);

    // payments fails.
    let parent2 = propagator.extract(&headers2);
    let p = payments.tracer("payments");
    let mut charge = p.span_builder("POST /charge").with_kind(SpanKind::Server).start_with_context(&p, &parent2);
    charge.set_status(opentelemetry::trace::Status::error("card declined"));
    let trace_id = charge.span_context().trace_id().to_string();

    // The gateway finishes first and is flushed to a part; the others follow.
    call_cx.span().end();
    root_cx.span().end();
    gateway.force_flush().expect("gateway flush");
    flush();
    charge.end();
    pay_cx.span().end();
    server_cx.span().end();
    orders.force_flush().expect("orders flush");
    payments.force_flush().expect("payments flush");
    trace_id
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_across_three_services_is_one_tree_in_both_apis() {
    let s = common::start(|c| c.spans.flush_age_seconds = 3600).await;
    let (gateway, orders, payments) = (
        provider("gateway", grpc(&s.grpc_url())),
        provider("orders", http(&s.otlp_http_url("traces"))),
        provider("payments", grpc(&s.grpc_url())),
    );
    let store = s.server.spans.clone();
    let trace_id = tokio::task::spawn_blocking(move || {
        let id = request(&gateway, &orders, &payments, || store.flush_blocking().expect("flush to a part"));
        for p in [gateway, orders, payments] {
            p.shutdown().expect("shutdown");
        }
        id
    })
    .await
    .expect("request");
    let counts = s.server.spans.counts(&common::tenant("default"));
    assert_eq!((counts.part_spans, counts.head_spans), (2, 3), "gateway spans in a part, the rest in the head");
    let metrics = reqwest::get(s.api_url("/metrics")).await.expect("metrics").text().await.expect("text");
    for line in ["sightline_spans_flushed_total 2", "sightline_spans_unflushed 3", "sightline_spans_parts 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line} in /metrics");
    }

    let client = reqwest::Client::new();
    let (status, t) = get(&client, s.api_url(&format!("/api/traces/{trace_id}"))).await;
    assert_eq!(status, 200, "{t}");
    let names: Vec<&str> =
        t["spans"].as_array().expect("spans").iter().map(|s| s["name"].as_str().expect("name")).collect();
    assert_eq!(names, ["GET /checkout", "POST orders", "POST /orders", "POST payments", "POST /charge"], "depth-first");
    let depths: Vec<u64> =
        t["spans"].as_array().expect("spans").iter().map(|s| s["depth"].as_u64().expect("depth")).collect();
    assert_eq!(depths, [0, 1, 2, 3, 4]);
    assert_eq!(t["orphans"].as_array().map(Vec::len), Some(0));
    assert_eq!(t["spanCount"], 5);
    assert_eq!(t["errorCount"], 1);
    assert_eq!(t["services"]["payments"]["errors"], 1);
    assert_eq!(t["services"]["orders"]["spans"], 2);
    assert!(t["spans"].as_array().expect("spans").iter().all(|s| s["criticalPath"] == true), "a chain is all critical");

    // Jaeger: one trace, references, processes per service, error tag.
    let (status, j) = get(&client, s.api_url(&format!("/jaeger/api/traces/{trace_id}"))).await;
    assert_eq!(status, 200, "{j}");
    let trace = &j["data"][0];
    assert_eq!(trace["traceID"], trace_id);
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), 5);
    let services: Vec<&str> = trace["processes"]
        .as_object()
        .expect("processes")
        .values()
        .map(|p| p["serviceName"].as_str().expect("name"))
        .collect();
    assert_eq!(services.len(), 3, "{services:?}");
    let charge = spans.iter().find(|s| s["operationName"] == "POST /charge").expect("charge span");
    assert_eq!(charge["references"][0]["refType"], "CHILD_OF");
    assert!(charge["tags"].as_array().expect("tags").iter().any(|t| t["key"] == "error" && t["value"] == true));
    assert!(charge["startTime"].as_u64().is_some() && charge["duration"].as_u64().is_some());

    // Search, services, operations and dependencies through Jaeger.
    let (_, found) = get(&client, s.api_url("/jaeger/api/traces?service=orders&limit=5&lookback=1h")).await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
    let (_, found) =
        get(&client, s.api_url("/jaeger/api/traces?service=payments&tags=%7B%22error%22%3A%22true%22%7D")).await;
    assert_eq!(found["data"][0]["traceID"], trace_id);
    let (_, none) = get(&client, s.api_url("/jaeger/api/traces?service=gateway&minDuration=1h")).await;
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0));
    let (_, svcs) = get(&client, s.api_url("/jaeger/api/services")).await;
    assert_eq!(svcs["data"], serde_json::json!(["gateway", "orders", "payments"]));
    let (_, ops) = get(&client, s.api_url("/jaeger/api/services/orders/operations")).await;
    assert_eq!(ops["data"], serde_json::json!(["POST /orders", "POST payments"]));
    let (_, ops) = get(&client, s.api_url("/jaeger/api/operations?service=orders&spanKind=server")).await;
    assert_eq!(ops["data"], serde_json::json!([{ "name": "POST /orders", "spanKind": "server" }]));
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let (_, deps) = get(&client, s.api_url(&format!("/jaeger/api/dependencies?endTs={now_ms}&lookback=3600000"))).await;
    let mut edges: Vec<(String, String, u64)> = deps["data"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            (
                e["parent"].as_str().expect("p").to_owned(),
                e["child"].as_str().expect("c").to_owned(),
                e["callCount"].as_u64().expect("n"),
            )
        })
        .collect();
    edges.sort();
    assert_eq!(edges, [("gateway".into(), "orders".into(), 1), ("orders".into(), "payments".into(), 1)]);

    // The same edges and the RED metrics, derived as the spans arrived and
    // read through the Prometheus API as Grafana's service graph does.
    let prom = |q: &str| s.api_url(&format!("/prometheus/api/v1/query?query={}", q.replace(' ', "%20")));
    let (_, graph) = get(&client, prom("sum by (client, server) (traces_service_graph_request_total)")).await;
    let mut graph_edges: Vec<(String, String, String)> = graph["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|r| {
            let m = &r["metric"];
            (
                m["client"].as_str().expect("client").to_owned(),
                m["server"].as_str().expect("server").to_owned(),
                r["value"][1].as_str().expect("v").to_owned(),
            )
        })
        .collect();
    graph_edges.sort();
    assert_eq!(
        graph_edges,
        [("gateway".into(), "orders".into(), "1".into()), ("orders".into(), "payments".into(), "1".into())]
    );
    let (_, failed) = get(&client, prom("sum(traces_service_graph_request_failed_total)")).await;
    assert_eq!(failed["data"]["result"][0]["value"][1], "1", "the payments call failed");
    let (_, calls) = get(&client, prom("sum by (service) (traces_spanmetrics_calls_total)")).await;
    assert_eq!(calls["data"]["result"].as_array().map(Vec::len), Some(3), "{calls}");
    let (_, p99) = get(
        &client,
        prom("histogram_quantile(0.99, sum by (le) (traces_spanmetrics_latency_bucket{service=\"payments\"}))"),
    )
    .await;
    assert!(p99["data"]["result"][0]["value"][1].as_str().is_some_and(|v| v.parse::<f64>().is_ok()), "{p99}");

    // The native search summarises the trace.
    let (_, hits) = get(&client, s.api_url("/api/traces?service=payments&status=error")).await;
    let hit = &hits["traces"][0];
    assert_eq!(hit["traceId"], trace_id);
    assert_eq!((hit["rootService"].as_str(), hit["rootName"].as_str()), (Some("gateway"), Some("GET /checkout")));
    assert_eq!(hit["spanCount"], 5);

    // Bad queries: 400 with a message; unknown traces: 404.
    for (path, want) in [
        ("/api/traces/xyz", 400),
        ("/api/traces/0123456789abcdef0123456789abcdef", 404),
        ("/api/traces?limit=0", 400),
        ("/api/traces?limit=99999999", 400),
        ("/api/traces?start=2000&end=1000", 400),
        ("/api/traces?bogus=1", 400),
        ("/api/traces?minDuration=fast", 400),
        ("/jaeger/api/traces/not-hex", 400),
        ("/jaeger/api/traces/0123456789abcdef0123456789abcdef", 404),
        ("/jaeger/api/traces?service=x&start=2000&end=1000", 400),
    ] {
        let r = client.get(s.api_url(path)).send().await.expect("GET");
        assert_eq!(r.status().as_u16(), want, "{path}");
        assert!(!r.text().await.expect("body").is_empty(), "{path}: the error says why");
    }
    s.server.shutdown().await.expect("shutdown");
}
