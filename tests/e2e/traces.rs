//! End-to-end traces: one request crosses three services, each with its own
//! OpenTelemetry SDK exporter (gRPC and HTTP), sent at different times, with
//! some spans already in a Parquet part and some still in the head. Both the
//! native and the Jaeger API return it as one correct tree.

use sightline_testkit as common;

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
    let s = common::start(|c| {
        c.spans.flush_age_seconds = 3600;
        c.spanmetrics.flush_interval_seconds = 1;
    })
    .await;
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
    // The connector writes them at its next flush: wait until all 5 spans are counted.
    common::eventually("the five spans counted", || {
        let (client, url) = (client.clone(), prom("sum(traces_spanmetrics_calls_total)"));
        async move { (get(&client, url).await.1["data"]["result"][0]["value"][1] == "5").then_some(()) }
    })
    .await;
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

/// One span of a hand-built request: `ms` long, starting at `start`.
fn proto_span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    (name, kind): (&str, i32),
    ms: u64,
    error: bool,
    start: u64,
) -> sightline_proto::otlp::trace::Span {
    use sightline_proto::otlp::trace::{Span, Status};
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + ms * 1_000_000,
        status: error.then(|| Status { code: 2, message: "failed".into() }),
        ..Default::default()
    }
}

/// One request of `spans` from `service`, as OTLP/HTTP protobuf.
fn from_service(service: &str, spans: Vec<sightline_proto::otlp::trace::Span>) -> Vec<u8> {
    use prost::Message as _;
    let mut request = common::otlp::request_of(spans);
    request.resource_spans[0].resource.as_mut().expect("resource").attributes =
        vec![common::otlp::string_kv("service.name", service)];
    request.encode_to_vec()
}

/// Every series of the derived metrics as `name{label="value",…}` → value, from the Prometheus API.
async fn derived_series(client: &reqwest::Client, api: &str) -> std::collections::BTreeMap<String, f64> {
    let q = "{__name__=~\"traces_spanmetrics_.*|traces_service_graph_.*\"}";
    let url = format!("http://{api}/prometheus/api/v1/query");
    let body: Value = client.get(url).query(&[("query", q)]).send().await.expect("GET").json().await.expect("json");
    body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|r| {
            let m = r["metric"].as_object().expect("metric");
            let labels: Vec<String> = m
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}={:?}", v.as_str().expect("label")))
                .collect();
            let name = m["__name__"].as_str().expect("name");
            let v: f64 = r["value"][1].as_str().expect("value").parse().expect("number");
            (format!("{name}{{{}}}", labels.join(",")), v)
        })
        .collect()
}

/// The same series with the same values (sums of seconds within rounding).
fn assert_same_series(
    got: &std::collections::BTreeMap<String, f64>,
    want: &std::collections::BTreeMap<String, f64>,
    what: &str,
) {
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: the series");
    for (k, v) in want {
        assert!((got[k] - v).abs() < 1e-9, "{what}: {k} is {}, not {v}", got[k]);
    }
}

/// The derived series once the calls counters add up to `spans`.
async fn counted(client: &reqwest::Client, api: &str, spans: u64) -> std::collections::BTreeMap<String, f64> {
    common::eventually("every span counted", || async move {
        let got = derived_series(client, api).await;
        let calls: f64 =
            got.iter().filter(|(k, _)| k.starts_with("traces_spanmetrics_calls_total")).map(|(_, v)| v).sum();
        (calls == spans as f64).then_some(got)
    })
    .await
}

/// What the derived series must say for RED series (labels, durations in
/// ms) and service-graph edges (client, server, child durations, failed).
fn expected_series(
    red: &[(&str, &[u64])],
    edges: &[(&str, &str, &[u64], u64)],
) -> std::collections::BTreeMap<String, f64> {
    const BOUNDS: [&str; 14] = [
        "0.002", "0.004", "0.008", "0.016", "0.032", "0.064", "0.128", "0.256", "0.512", "1.024", "2.048", "4.096",
        "8.192", "16.384",
    ];
    let mut out = std::collections::BTreeMap::new();
    let mut histogram = |name: &str, labels: &str, ms: &[u64]| {
        // Label names in order: `le` sorts between the others here.
        let with_le = |le: &str| {
            let mut l: Vec<&str> = labels.split(',').collect();
            let le = format!("le={le:?}");
            let mut all: Vec<String> = l.drain(..).map(str::to_owned).chain([le]).collect();
            all.sort();
            all.join(",")
        };
        for b in BOUNDS {
            let le: f64 = b.parse().expect("bound");
            let n = ms.iter().filter(|&&m| m as f64 / 1000.0 <= le).count();
            out.insert(format!("{name}_bucket{{{}}}", with_le(b)), n as f64);
        }
        out.insert(format!("{name}_bucket{{{}}}", with_le("+Inf")), ms.len() as f64);
        out.insert(format!("{name}_count{{{labels}}}"), ms.len() as f64);
        out.insert(format!("{name}_sum{{{labels}}}"), ms.iter().sum::<u64>() as f64 / 1000.0);
    };
    for (labels, ms) in red {
        histogram("traces_spanmetrics_latency", labels, ms);
    }
    for (client, server, ms, _) in edges {
        histogram("traces_service_graph_request_server_seconds", &format!("client={client:?},server={server:?}"), ms);
    }
    for (labels, ms) in red {
        out.insert(format!("traces_spanmetrics_calls_total{{{labels}}}"), ms.len() as f64);
    }
    for (client, server, ms, failed) in edges {
        let labels = format!("client={client:?},server={server:?}");
        out.insert(format!("traces_service_graph_request_total{{{labels}}}"), ms.len() as f64);
        out.insert(format!("traces_service_graph_request_failed_total{{{labels}}}"), *failed as f64);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_are_exact_after_a_flush_and_reset_by_a_restart() {
    const SERVER: i32 = 2;
    const CLIENT: i32 = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("SIGHTLINE_SPANMETRICS__FLUSH_INTERVAL_SECONDS", "1")];
    let mut server = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
    server.drain_log();
    let client = reqwest::Client::new();
    let t0 = common::now_nanos() - 60_000_000_000;
    let post = |server: &common::binary::Running, body: Vec<u8>| {
        let request = client
            .post(format!("http://{}/v1/traces", server.http))
            .header("content-type", "application/x-protobuf")
            .body(body);
        async move {
            let r = request.send().await.expect("POST");
            assert_eq!(r.status(), 200);
        }
    };
    // Trace 1: the frontend's root and client spans, then (another
    // request) the cart's failing server span. Trace 2: the cart's server
    // span arrives first, its frontend parent in a later request.
    post(
        &server,
        from_service(
            "frontend",
            vec![
                proto_span(1, 1, None, ("GET /", SERVER), 100, false, t0),
                proto_span(1, 2, Some(1), ("call cart", CLIENT), 80, false, t0),
            ],
        ),
    )
    .await;
    post(&server, from_service("cart", vec![proto_span(1, 3, Some(2), ("POST /add", SERVER), 60, true, t0)])).await;
    post(&server, from_service("cart", vec![proto_span(2, 3, Some(2), ("POST /add", SERVER), 10, false, t0)])).await;
    post(
        &server,
        from_service(
            "frontend",
            vec![
                proto_span(2, 1, None, ("GET /", SERVER), 20, false, t0),
                proto_span(2, 2, Some(1), ("call cart", CLIENT), 15, false, t0),
            ],
        ),
    )
    .await;

    let red = |service: &str, name: &str, kind: &str, status: &str| {
        format!("service={service:?},span_kind={kind:?},span_name={name:?},status_code={status:?}")
    };
    let (fe_root, fe_call, cart_err, cart_ok) = (
        red("frontend", "GET /", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"),
        red("frontend", "call cart", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET"),
        red("cart", "POST /add", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR"),
        red("cart", "POST /add", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"),
    );
    let want = expected_series(
        &[(&fe_root, &[100, 20]), (&fe_call, &[80, 15]), (&cart_err, &[60]), (&cart_ok, &[10])],
        &[("frontend", "cart", &[60, 10], 1)],
    );
    assert_eq!(want.len(), 4 * 18 + 19, "every series of four RED label sets and one edge");
    let api = server.api.clone();
    let got = counted(&client, &api, 6).await;
    assert_same_series(&got, &want, "after the flush");

    // SIGKILL: the spans are still in the WAL (not yet in a part) and are
    // replayed into the span store, but not counted again: the counters
    // start from zero, and count what arrives after the restart.
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    let mut server = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
    server.drain_log();
    post(&server, from_service("frontend", vec![proto_span(3, 1, None, ("GET /", SERVER), 5, false, t0)])).await;
    let want = expected_series(&[(&fe_root, &[5])], &[]);
    let api = server.api.clone();
    let got = counted(&client, &api, 1).await;
    assert_same_series(&got, &want, "reset by the restart, not doubled by the replay");
    let trace = format!("http://{}/api/traces/{}", server.api, hex::encode([1u8; 16]));
    let (_, t) = get(&client, trace).await;
    assert_eq!(t["spanCount"], 3, "the replayed spans are stored");
}
