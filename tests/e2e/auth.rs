//! Authentication end to end: every surface against every kind of
//! credential, tenant isolation by key, the keys file re-read on change,
//! and the OpenTelemetry SDK sending with a token.

use sightline_testkit as common;

use std::time::Duration;

use common::otlp::{logs_request, traces_request};
use common::{TestServer, eventually};
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use prost::Message;
use sightline::auth::{AuthConfig, KeyEntry, MetricsAccess, Role};
use sightline_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use sightline_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

const INGEST_A: &str = "ingest-token-tenant-a-0001";
const READ_A: &str = "read-token-tenant-a-000001";
const ADMIN_A: &str = "admin-token-tenant-a-00001";
const READ_B: &str = "read-token-tenant-b-000001";

fn key(tenant: &str, role: Role, token: &str) -> KeyEntry {
    KeyEntry {
        name: format!("{tenant}-{}", role.as_str()),
        tenant: tenant.into(),
        role,
        token: Some(token.into()),
        token_sha256: None,
    }
}

/// A server whose config holds the ingest and admin keys and whose keys
/// file holds the two read keys.
async fn start() -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys_file = dir.path().join("keys.toml");
    write_keys(&keys_file, &[key("a", Role::Read, READ_A), key("b", Role::Read, READ_B)]);
    let mut config = common::loopback_config(&dir.path().join("data"));
    config.auth = AuthConfig {
        enabled: true,
        keys_file: Some(keys_file),
        keys: vec![key("a", Role::Ingest, INGEST_A), key("a", Role::Admin, ADMIN_A)],
        metrics: MetricsAccess::Read,
    };
    let server = sightline::server::Server::start(&config).await.expect("server starts");
    TestServer { server, config, dir }
}

fn write_keys(path: &std::path::Path, keys: &[KeyEntry]) {
    let text = toml::to_string(&serde_json::json!({ "keys": keys })).expect("toml");
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write keys");
    std::fs::rename(tmp, path).expect("rename keys");
}

#[derive(Clone, Copy, Debug)]
enum Cred {
    None,
    Garbage,
    Token(&'static str),
}

impl Cred {
    fn header(self) -> Option<String> {
        match self {
            Cred::None => None,
            Cred::Garbage => Some("Bearer not-a-key-at-all-0000".into()),
            Cred::Token(t) => Some(format!("Bearer {t}")),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Cred::None => "no token",
            Cred::Garbage => "unknown token",
            Cred::Token(INGEST_A) => "ingest key",
            Cred::Token(READ_A) => "read key",
            Cred::Token(ADMIN_A) => "admin key",
            Cred::Token(_) => "other",
        }
    }
}

/// One surface: sends a request with `cred`, returns the HTTP status (or
/// gRPC code as `grpc:<code>`).
async fn call(s: &TestServer, surface: &str, cred: Cred) -> String {
    let http = reqwest::Client::new();
    let with = |r: reqwest::RequestBuilder| match cred.header() {
        Some(h) => r.header("authorization", h),
        None => r,
    };
    let response = match surface {
        "OTLP/gRPC export" => {
            let mut client = TraceServiceClient::connect(s.grpc_url()).await.expect("connect");
            let mut request = tonic::Request::new(traces_request(1, 1));
            if let Some(h) = cred.header() {
                request.metadata_mut().insert("authorization", h.parse().expect("metadata"));
            }
            return match client.export(request).await {
                Ok(_) => "grpc:OK".into(),
                Err(status) => format!("grpc:{:?}", status.code()),
            };
        }
        "OTLP/HTTP POST /v1/logs" => with(http.post(s.otlp_http_url("logs")))
            .header("content-type", "application/x-protobuf")
            .body(logs_request(1, 1, 1_700_000_000_000_000_000).encode_to_vec()),
        "remote_write" => {
            let w = WriteRequest {
                timeseries: vec![TimeSeries {
                    labels: vec![Label { name: "__name__".into(), value: "up".into() }],
                    samples: vec![Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
                    exemplars: Vec::new(),
                }],
                ..Default::default()
            };
            let body = snap::raw::Encoder::new().compress_vec(&w.encode_to_vec()).expect("snappy");
            with(http.post(s.api_url("/prometheus/api/v1/write")))
                .header("content-encoding", "snappy")
                .header("content-type", "application/x-protobuf")
                .body(body)
        }
        "POST /loki/api/v1/push" => with(http.post(s.api_url("/loki/api/v1/push")))
            .header("content-type", "application/json")
            .body(r#"{"streams":[{"stream":{"app":"a"},"values":[["1700000000000000000","x"]]}]}"#),
        "POST :9411/api/v2/spans" => with(http.post(s.zipkin_url()))
            .header("content-type", "application/json")
            .body(r#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","name":"x","timestamp":1700000000000000,"duration":10,"localEndpoint":{"serviceName":"z"}}]"#),
        "POST /elasticsearch/_bulk" => with(http.post(s.api_url("/elasticsearch/_bulk")))
            .header("content-type", "application/x-ndjson")
            .body("{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"x\"}\n"),
        "GET /prometheus/api/v1/rules" => with(http.get(s.api_url("/prometheus/api/v1/rules"))),
        "POST /-/reload" => with(http.post(s.api_url("/-/reload"))),
        "GET /api/traces" => with(http.get(s.api_url("/api/traces?service=x"))),
        "GET /jaeger/api/services" => with(http.get(s.api_url("/jaeger/api/services"))),
        "GET /tempo/api/search" => with(http.get(s.api_url("/tempo/api/search?q=%7B%7D"))),
        "GET /loki/api/v1/query_range" => {
            with(http.get(s.api_url("/loki/api/v1/query_range?query=%7Bservice_name%3D%22x%22%7D")))
        }
        "GET /tempo/api/v2/traces/{id}" => with(http.get(s.api_url("/tempo/api/v2/traces/463ac35c9f6413ad"))),
        "GET /prometheus/api/v1/query" => with(http.get(s.api_url("/prometheus/api/v1/query?query=up"))),
        "GET /api/logs" => with(http.get(s.api_url("/api/logs?query=x"))),
        "GET /metrics" => with(http.get(s.api_url("/metrics"))),
        "PUT /api/dashboards/d" => {
            with(http.put(s.api_url("/api/dashboards/d"))).json(&serde_json::json!({ "title": "t", "panels": [] }))
        }
        "GET /api/whoami" => with(http.get(s.api_url("/api/whoami"))),
        "GET / (UI page)" => with(http.get(s.api_url("/"))),
        "GET /readyz" => with(http.get(s.api_url("/readyz"))),
        other => panic!("no surface {other}"),
    };
    let response = response.send().await.expect("request");
    let status = response.status().as_u16();
    if status == 401 {
        assert!(response.headers().contains_key("www-authenticate"), "{surface}: 401 without WWW-Authenticate");
    }
    status.to_string()
}

#[tokio::test]
async fn every_surface_checks_the_key_and_its_role() {
    let s = start().await;
    let creds = [Cred::None, Cred::Garbage, Cred::Token(INGEST_A), Cred::Token(READ_A), Cred::Token(ADMIN_A)];
    // Expected answers, in the order of `creds`.
    let u = "401";
    let table: &[(&str, [&str; 5])] = &[
        (
            "OTLP/gRPC export",
            ["grpc:Unauthenticated", "grpc:Unauthenticated", "grpc:OK", "grpc:PermissionDenied", "grpc:OK"],
        ),
        ("OTLP/HTTP POST /v1/logs", [u, u, "200", "403", "200"]),
        ("remote_write", [u, u, "204", "403", "204"]),
        ("POST /loki/api/v1/push", [u, u, "204", "403", "204"]),
        ("POST :9411/api/v2/spans", [u, u, "202", "403", "202"]),
        ("POST /elasticsearch/_bulk", [u, u, "200", "403", "200"]),
        ("GET /prometheus/api/v1/rules", [u, u, "403", "200", "200"]),
        ("POST /-/reload", [u, u, "403", "403", "200"]),
        ("GET /api/traces", [u, u, "403", "200", "200"]),
        ("GET /jaeger/api/services", [u, u, "403", "200", "200"]),
        ("GET /tempo/api/search", [u, u, "403", "200", "200"]),
        ("GET /loki/api/v1/query_range", [u, u, "403", "200", "200"]),
        // The Zipkin row above stored this trace.
        ("GET /tempo/api/v2/traces/{id}", [u, u, "403", "200", "200"]),
        ("GET /prometheus/api/v1/query", [u, u, "403", "200", "200"]),
        ("GET /api/logs", [u, u, "403", "200", "200"]),
        ("GET /metrics", [u, u, "403", "200", "200"]),
        ("PUT /api/dashboards/d", [u, u, "403", "403", "200"]),
        ("GET /api/whoami", [u, u, "200", "200", "200"]),
        ("GET / (UI page)", ["200", "200", "200", "200", "200"]),
        ("GET /readyz", ["200", "200", "200", "200", "200"]),
    ];
    let mut report = format!("{:<30}", "surface");
    for c in creds {
        report += &format!(" | {:<22}", c.label());
    }
    let mut wrong = Vec::new();
    for (surface, want) in table {
        report += &format!("\n{surface:<30}");
        for (cred, want) in creds.iter().zip(want) {
            let got = call(&s, surface, *cred).await;
            report += &format!(" | {got:<22}");
            if got != *want {
                wrong.push(format!("{surface} with {}: {got}, want {want}", cred.label()));
            }
        }
    }
    eprintln!("{report}");
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn the_tenant_comes_from_the_key_not_the_header() {
    let s = start().await;
    // Sent with tenant a's ingest key while claiming tenant b.
    let mut client = TraceServiceClient::connect(s.grpc_url()).await.expect("connect");
    let mut request = tonic::Request::new(traces_request(7, 3));
    request.metadata_mut().insert("authorization", format!("Bearer {INGEST_A}").parse().expect("metadata"));
    request.metadata_mut().insert("x-scope-orgid", "b".parse().expect("metadata"));
    client.export(request).await.expect("export");
    let id = hex::encode(common::otlp::trace_id(7));
    let get = |token: &'static str, claim: &'static str| {
        let url = s.api_url(&format!("/api/traces/{id}"));
        async move {
            reqwest::Client::new().get(url).bearer_auth(token).header("X-Scope-OrgID", claim).send().await.expect("GET")
        }
    };
    let found = eventually("the trace under tenant a", || async {
        let r = get(READ_A, "b").await;
        (r.status() == 200).then_some(r)
    })
    .await;
    let trace: serde_json::Value = found.json().await.expect("json");
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(3), "{trace}");
    // Tenant b's key cannot see it, whatever tenant its request claims.
    assert_eq!(get(READ_B, "a").await.status(), 404);
    let counts = |token| {
        let url = s.api_url("/api/stats");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("GET")
                .json::<serde_json::Value>()
                .await
                .expect("json")
        }
    };
    assert_eq!(counts(READ_A).await["spans"], 3);
    assert_eq!(counts(READ_B).await["spans"], 0);
    let who: serde_json::Value = reqwest::Client::new()
        .get(s.api_url("/api/whoami"))
        .bearer_auth(READ_B)
        .header("X-Scope-OrgID", "a")
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(who, serde_json::json!({ "auth": true, "tenant": "b", "role": "read" }));
}

#[tokio::test]
async fn the_keys_file_is_re_read_when_it_changes() {
    let s = start().await;
    let path = s.config.auth.keys_file.clone().expect("keys file");
    let status = |token: &'static str| {
        let url = s.api_url("/api/whoami");
        async move { reqwest::Client::new().get(url).bearer_auth(token).send().await.expect("GET").status().as_u16() }
    };
    const NEW: &str = "a-new-read-token-for-b-00001";
    assert_eq!(status(NEW).await, 401);
    write_keys(&path, &[key("b", Role::Read, NEW)]);
    eventually("the new key admitted", || async { (status(NEW).await == 200).then_some(()) }).await;
    eventually("the removed key refused", || async { (status(READ_A).await == 401).then_some(()) }).await;
    // A file that no longer parses keeps the keys in force.
    std::fs::write(&path, "[[keys]]\ntenant = \"b\"\n").expect("write");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(status(NEW).await, 200, "a broken keys file must not lock everyone out");
    assert_eq!(status(INGEST_A).await, 200, "keys in the configuration stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sdk_sends_with_a_token() {
    let s = start().await;
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("authorization", format!("Bearer {INGEST_A}").parse().expect("metadata"));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(s.grpc_url())
        .with_metadata(metadata)
        .build()
        .expect("exporter");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("with-token").build())
        .with_batch_exporter(exporter)
        .build();
    tokio::task::spawn_blocking(move || {
        provider.tracer("auth").in_span("checkout", |_| {});
        provider.force_flush().expect("flushed");
        provider.shutdown().expect("shutdown");
    })
    .await
    .expect("SDK thread");
    let services = eventually("the service under tenant a", || async {
        let r = reqwest::Client::new().get(s.api_url("/api/services")).bearer_auth(READ_A).send().await.ok()?;
        let v: serde_json::Value = r.json().await.ok()?;
        v["services"].as_array().filter(|a| !a.is_empty()).cloned()
    })
    .await;
    assert_eq!(services, vec![serde_json::json!("with-token")]);
}
