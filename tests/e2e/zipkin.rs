//! Zipkin's span API through the real server: `py_zipkin` (PyPI) reports a
//! two-service trace (a frontend server span, its client call, and the
//! payments server span that shares the client's id, B3 style) in JSON v2
//! and in protobuf; the trace comes back whole, the shared span under its
//! client, through the native and Jaeger APIs. Bad requests get Zipkin's
//! answers.

use serde_json::Value;
use sightline_testkit as common;

/// Reports the trace with py_zipkin's own HTTP transport (which asserts
/// Zipkin's 202) and prints its trace id.
const SCRIPT: &str = r#"
import sys, threading
from py_zipkin import Encoding, Kind
from py_zipkin.request_helpers import create_http_headers
from py_zipkin.transport import SimpleHTTPTransport
from py_zipkin.zipkin import ZipkinAttrs, zipkin_span

host, port, encoding, wide = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "128"
encoding = Encoding.V2_JSON if encoding == "json" else Encoding.V2_PROTO3
transport = SimpleHTTPTransport(host, port)

def payments(headers):
    attrs = ZipkinAttrs(trace_id=headers["X-B3-TraceId"], span_id=headers["X-B3-SpanId"],
                        parent_span_id=headers["X-B3-ParentSpanId"], flags=headers["X-B3-Flags"],
                        is_sampled=headers["X-B3-Sampled"] == "1")
    with zipkin_span(service_name="payments", span_name="charge", zipkin_attrs=attrs, kind=Kind.SERVER,
                     transport_handler=transport, encoding=encoding) as span:
        span.update_binary_annotations({"card": "visa"})
        span.add_annotation("card checked")

with zipkin_span(service_name="frontend", span_name="GET /checkout", kind=Kind.SERVER, sample_rate=100.0,
                 transport_handler=transport, encoding=encoding, use_128bit_trace_id=wide) as root:
    root.update_binary_annotations({"http.route": "/checkout"})
    with zipkin_span(service_name="frontend", span_name="POST /charge", kind=Kind.CLIENT):
        headers = create_http_headers()
        t = threading.Thread(target=payments, args=(headers,))
        t.start()
        t.join()
    print(root.zipkin_attrs.trace_id)
"#;

/// Runs the script against `server`; the trace id it reported.
fn report(server: &common::TestServer, encoding: &str, bits: &str) -> String {
    let addr = server.server.zipkin_addr;
    common::run_python(SCRIPT, &[&addr.ip().to_string(), &addr.port().to_string(), encoding, bits])
}

/// The trace `id` (hex, padded to 128 bits) from the native API, once it has `n` spans.
async fn trace(server: &common::TestServer, id: &str, n: usize) -> Value {
    let url = server.api_url(&format!("/api/traces/{id:0>32}"));
    common::eventually(&format!("trace {id} with {n} spans"), || async {
        let body = common::get_json(&url, &[], None).await?;
        (body["spans"].as_array()?.len() == n).then_some(body)
    })
    .await
}

fn span<'a>(trace: &'a Value, name: &str) -> &'a Value {
    trace["spans"].as_array().expect("spans").iter().find(|s| s["name"] == name).expect(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_zipkin_reports_a_two_service_trace_in_json_and_protobuf() {
    let server = common::start(|_| {}).await;
    for (encoding, bits) in [("json", "64"), ("proto", "128")] {
        let id = report(&server, encoding, bits);
        assert_eq!(id.len(), if bits == "64" { 16 } else { 32 }, "{id}");
        let t = trace(&server, &id, 3).await;
        let root = span(&t, "GET /checkout");
        let client = span(&t, "POST /charge");
        let server_span = span(&t, "charge");
        assert_eq!(root["service"], "frontend", "{encoding}");
        assert_eq!(root["kind"], "server");
        assert_eq!(root["attributes"]["http.route"], "/checkout");
        assert_eq!(client["kind"], "client");
        assert_eq!(client["parentSpanId"], root["spanId"]);
        assert_eq!(server_span["service"], "payments");
        assert_eq!(server_span["kind"], "server");
        assert_eq!(server_span["parentSpanId"], client["spanId"], "the shared span hangs under its client");
        assert_eq!(server_span["attributes"]["card"], "visa");
        assert_eq!(server_span["events"][0]["name"], "card checked");
        // Jaeger's API sees the same trace.
        let jaeger = common::get_json(&server.api_url(&format!("/jaeger/api/traces/{id:0>32}")), &[], None)
            .await
            .expect("Jaeger trace");
        let services: Vec<&str> = jaeger["data"][0]["processes"]
            .as_object()
            .expect("processes")
            .values()
            .filter_map(|p| p["serviceName"].as_str())
            .collect();
        assert!(services.contains(&"frontend") && services.contains(&"payments"), "{services:?}");
        assert_eq!(jaeger["data"][0]["spans"].as_array().map(Vec::len), Some(3));
        // And Tempo's, in OTLP/JSON, one batch per service.
        let tempo = common::get_json(&server.api_url(&format!("/tempo/api/traces/{id}")), &[], None)
            .await
            .expect("Tempo trace");
        let batches = tempo["batches"].as_array().expect("batches");
        assert_eq!(batches.len(), 2, "{tempo}");
        let spans: usize = batches
            .iter()
            .flat_map(|b| b["scopeSpans"].as_array().expect("scopes"))
            .map(|s| s["spans"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(spans, 3);
    }
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_span_reports_get_zipkin_s_answers() {
    let server = common::start_rate_limited(1, 2).await;
    let client = reqwest::Client::new();
    for (body, content_type, status, message) in [
        (&b"{}"[..], "application/json", 400, "invalid Zipkin JSON"),
        (br#"[{"traceId":"zz","id":"a2fb4a1d1a96d312"}]"#, "application/json", 400, "not hex"),
        (b"\xff\xff\xff", "application/x-protobuf", 400, "invalid zipkin.proto3.ListOfSpans"),
        (b"x", "text/plain", 415, "content type"),
    ] {
        let answer = client
            .post(server.zipkin_url())
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .expect("POST");
        assert_eq!(answer.status(), status, "{message}");
        assert!(answer.text().await.expect("text").contains(message), "{message}");
    }
    // Over the tenant's rate: 429 with Retry-After (a full bucket admits one
    // report larger than the burst; the next waits).
    let report = |n: u64| {
        let spans: Vec<Value> = (1..=n)
            .map(|i| {
                serde_json::json!({"traceId": "463ac35c9f6413ad", "id": format!("{i:016x}"), "name": "x",
                "timestamp": 1_700_000_000_000_000u64, "duration": 10, "localEndpoint": {"serviceName": "z"}})
            })
            .collect();
        client.post(server.zipkin_url()).header("content-type", "application/json").json(&spans).send()
    };
    assert_eq!(report(3).await.expect("POST").status(), 202);
    let refused = report(3).await.expect("POST");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    server.server.shutdown().await.expect("shutdown");
}
