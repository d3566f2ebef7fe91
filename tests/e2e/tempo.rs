//! Tempo's query API as Grafana's Tempo data source uses it. Grafana cannot
//! run here, so its requests are replayed as its data source sends them
//! (Grafana's `pkg/tsdb/tempo/trace.go`: trace by id on `/api/v2/traces/{id}`
//! with `Accept: application/protobuf` and the range in seconds;
//! `public/app/plugins/datasource/tempo/datasource.ts`: `/api/echo` for the
//! connection test, `/api/status/buildinfo`, `/api/search?q=…&limit=20&spss=3&start=…&end=…`,
//! `/api/v2/search/tags?scope=…`, `/api/v2/search/tag/{tag}/values?q=…`).
//! The trace comes from the OpenTelemetry Rust SDK; the TraceQL table
//! compares each answer with a brute-force evaluation over the same spans.

use sightline_testkit as common;

use std::collections::{BTreeSet, HashMap};

use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message as _;
use serde_json::Value;
use sightline_proto::otlp::ExportTraceServiceRequest;

fn provider(service: &str, url: &str) -> SdkTracerProvider {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .with_protocol(Protocol::HttpBinary)
        .with_headers(HashMap::new())
        .build()
        .expect("exporter");
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .with_attribute(KeyValue::new("host.name", format!("{service}-host")))
        .build();
    SdkTracerProvider::builder().with_resource(resource).with_simple_exporter(exporter).build()
}

/// gateway `GET /checkout` → orders `POST /orders` → payments `POST /charge` (error);
/// each service with its own SDK. Returns the trace id.
fn checkout(url: &str) -> String {
    let (gateway, orders, payments) = (provider("gateway", url), provider("orders", url), provider("payments", url));
    let (g, o, p) = (gateway.tracer("gateway"), orders.tracer("orders"), payments.tracer("payments"));
    let mut root = g.span_builder("GET /checkout").with_kind(SpanKind::Server).start(&g);
    root.set_attribute(KeyValue::new("http.route", "/checkout"));
    let root_cx = Context::current_with_span(root);
    let mut order = o.span_builder("POST /orders").with_kind(SpanKind::Server).start_with_context(&o, &root_cx);
    order.set_attribute(KeyValue::new("http.status_code", 500));
    order.add_event("order stored", vec![KeyValue::new("order.items", 3)]);
    let order_cx = root_cx.with_span(order);
    let mut charge = p.span_builder("POST /charge").with_kind(SpanKind::Client).start_with_context(&p, &order_cx);
    charge.set_status(opentelemetry::trace::Status::error("card declined"));
    let id = charge.span_context().trace_id().to_string();
    charge.end();
    order_cx.span().end();
    root_cx.span().end();
    for provider in [gateway, orders, payments] {
        provider.force_flush().expect("flush");
        provider.shutdown().expect("shutdown");
    }
    id
}

/// (name, span id, parent span id) of every span of an OTLP request.
fn spans_of(request: &ExportTraceServiceRequest) -> BTreeSet<(String, String, String)> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| (s.name.clone(), hex::encode(&s.span_id), hex::encode(&s.parent_span_id)))
        .collect()
}

fn services_of(request: &ExportTraceServiceRequest) -> BTreeSet<String> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.resource.as_ref().expect("resource").attributes)
        .filter(|kv| kv.key == "service.name")
        .map(|kv| format!("{:?}", kv.value.as_ref().and_then(|v| v.value.as_ref())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grafana_finds_an_sdk_trace_and_reads_it_whole_in_json_and_protobuf() {
    let s = common::start(|_| {}).await;
    let url = s.otlp_http_url("traces");
    let id = tokio::task::spawn_blocking(move || checkout(&url)).await.expect("sdk");
    let client = reqwest::Client::new();
    let now = common::now_nanos() / 1_000_000_000;
    let range = [("start", (now - 3600).to_string()), ("end", (now + 60).to_string())];

    assert_eq!(
        client.get(s.api_url("/tempo/api/echo")).send().await.expect("echo").text().await.expect("text"),
        "echo"
    );
    let info: Value =
        client.get(s.api_url("/tempo/api/status/buildinfo")).send().await.expect("GET").json().await.expect("json");
    assert!(info["version"].as_str().is_some_and(|v| v.starts_with("2.")), "{info}");

    // Search as Grafana's query editor sends it.
    let q = r#"{ resource.service.name = "payments" && status = error }"#;
    let found: Value = common::eventually("the trace searchable", || {
        let (client, url, range) = (client.clone(), s.api_url("/tempo/api/search"), range.clone());
        async move {
            let r =
                client.get(url).query(&[("q", q), ("limit", "20"), ("spss", "3")]).query(&range).send().await.ok()?;
            let body: Value = r.json().await.ok()?;
            (body["traces"].as_array()?.len() == 1).then_some(body)
        }
    })
    .await;
    let hit = &found["traces"][0];
    assert_eq!(format!("{:0>32}", hit["traceID"].as_str().expect("id")), id);
    assert_eq!(hit["rootServiceName"], "gateway");
    assert_eq!(hit["rootTraceName"], "GET /checkout");
    assert_eq!(hit["spanSets"][0]["matched"], 1);
    let span = &hit["spanSets"][0]["spans"][0];
    assert_eq!(span["name"], "POST /charge");
    let shown: HashMap<String, Value> = span["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|kv| (kv["key"].as_str().expect("key").to_owned(), kv["value"].clone()))
        .collect();
    assert_eq!(shown["service.name"]["stringValue"], "payments");
    assert_eq!(shown["status"]["stringValue"], "error");
    assert_eq!(hit["spanSet"], hit["spanSets"][0], "the older field repeats the first set");
    assert!(found["metrics"]["inspectedTraces"].as_u64().is_some_and(|n| n >= 1));

    // Trace by id: v2 in protobuf as Grafana asks, v1 and v2 in JSON, the id without leading zeros too.
    let short = id.trim_start_matches('0').to_owned();
    let get = |path: String, protobuf: bool| {
        let mut r = client.get(s.api_url(&path)).query(&range);
        if protobuf {
            r = r.header("Accept", "application/protobuf");
        }
        r.send()
    };
    let v2 = get(format!("/tempo/api/v2/traces/{short}"), true).await.expect("GET");
    assert_eq!(v2.status(), 200);
    let bytes = v2.bytes().await.expect("body");
    // TraceByIDResponse: field 1 holds the trace, itself a repeated ResourceSpans in field 1.
    let mut buf = &bytes[..];
    assert_eq!(prost::encoding::decode_key(&mut buf).expect("key"), (1, prost::encoding::WireType::LengthDelimited));
    let len = prost::encoding::decode_varint(&mut buf).expect("length") as usize;
    let from_v2 = ExportTraceServiceRequest::decode(&buf[..len]).expect("protobuf trace");
    let v1 = get(format!("/tempo/api/traces/{id}"), true).await.expect("GET").bytes().await.expect("body");
    let from_v1 = ExportTraceServiceRequest::decode(v1).expect("protobuf trace");
    let json_v1: Value = get(format!("/tempo/api/traces/{id}"), false).await.expect("GET").json().await.expect("json");
    let json_v2: Value =
        get(format!("/tempo/api/v2/traces/{id}"), false).await.expect("GET").json().await.expect("json");
    assert_eq!(json_v2["status"], "COMPLETE");
    let otlp_json = |resource_spans: &Value| {
        let body = serde_json::json!({ "resourceSpans": resource_spans }).to_string();
        sightline_proto::json::decode_traces(body.as_bytes()).expect("OTLP/JSON")
    };
    let from_json_v1 = otlp_json(&json_v1["batches"]);
    let from_json_v2 = otlp_json(&json_v2["trace"]["resourceSpans"]);
    let spans = spans_of(&from_v2);
    assert_eq!(spans.len(), 3, "{spans:?}");
    let names: BTreeSet<&str> = spans.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["GET /checkout", "POST /orders", "POST /charge"]));
    for other in [&from_v1, &from_json_v1, &from_json_v2] {
        assert_eq!(spans_of(other), spans);
        assert_eq!(services_of(other), services_of(&from_v2));
    }
    assert_eq!(services_of(&from_v2).len(), 3, "one batch per service");
    let all: Vec<_> = from_json_v1.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    let order = all.iter().find(|s| s.name == "POST /orders").expect("orders span");
    assert_eq!(order.events[0].name, "order stored");
    assert!(order.attributes.iter().any(|kv| kv.key == "http.status_code"));
    let charge = all.iter().find(|s| s.name == "POST /charge").expect("charge span");
    assert_eq!(charge.status.as_ref().map(|s| (s.code, s.message.as_str())), Some((2, "card declined")));
    assert_eq!(charge.kind, 3, "client");

    // Tags and values as the query editor asks for them.
    let tags = common::get_json(
        &s.api_url("/tempo/api/v2/search/tags"),
        &[("start", &range[0].1), ("end", &range[1].1)],
        None,
    )
    .await
    .expect("tags");
    let scope = |name: &str| -> Vec<String> {
        let s = tags["scopes"].as_array().expect("scopes").iter().find(|s| s["name"] == name).expect("scope");
        s["tags"].as_array().expect("tags").iter().map(|t| t.as_str().expect("tag").to_owned()).collect()
    };
    assert!(scope("resource").contains(&"host.name".to_owned()), "{tags}");
    assert!(scope("span").contains(&"http.route".to_owned()), "{tags}");
    assert!(scope("intrinsic").contains(&"rootServiceName".to_owned()), "{tags}");
    let values = |tag: &str, q: &str| {
        let (client, url, range) =
            (client.clone(), s.api_url(&format!("/tempo/api/v2/search/tag/{tag}/values")), range.clone());
        let q = q.to_owned();
        async move {
            let body: Value =
                client.get(url).query(&[("q", q)]).query(&range).send().await.expect("GET").json().await.expect("json");
            body["tagValues"]
                .as_array()
                .expect("values")
                .iter()
                .map(|v| format!("{}:{}", v["type"].as_str().expect("type"), v["value"].as_str().expect("value")))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(values("resource.service.name", "{}").await, ["string:gateway", "string:orders", "string:payments"]);
    assert_eq!(values("name", r#"{ resource.service.name = "orders" }"#).await, ["string:POST /orders"]);
    assert_eq!(values("span.http.status_code", "{}").await, ["int:500"]);
    assert_eq!(values("status", "{ kind = client }").await, ["keyword:error"]);

    // What Tempo refuses, Sightline refuses alike: 400 naming the construct, 404 for an unknown trace.
    let bad = client.get(s.api_url("/tempo/api/search")).query(&[("q", "{ } | by(name)")]).send().await.expect("GET");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("text").contains("by() is not supported"));
    let missing = get("/tempo/api/traces/0123456789abcdef".into(), false).await.expect("GET");
    assert_eq!(missing.status(), 404);
    let garbage = get("/tempo/api/traces/not-hex".into(), false).await.expect("GET");
    assert_eq!(garbage.status(), 400);
}

/// A span of the TraceQL data set, as the brute force sees it.
#[derive(Clone, Debug)]
struct S {
    parent: Option<usize>,
    service: &'static str,
    name: &'static str,
    /// OTLP's numbers: 1 internal, 2 server, 3 client.
    kind: i32,
    ms: u64,
    error: bool,
    status_code: Option<i64>,
    route: Option<&'static str>,
    cache_hit: Option<bool>,
    region: &'static str,
}

type T = Vec<S>;

fn dataset() -> Vec<T> {
    let mut rng = sightline_loadgen::Rng::new(11);
    let services = ["gateway", "cart", "payments", "db", "search", "auth"];
    let names = ["GET /checkout", "POST /cart", "charge", "SELECT", "query", "login", "GET /price"];
    (0..80)
        .map(|k| {
            let n = rng.within(1..=7);
            (0..n)
                .map(|i| {
                    let service =
                        if i == 0 { ["gateway", "auth"][usize::from(k % 5 == 0)] } else { rng.pick(&services) };
                    let error = rng.below(6) == 0;
                    let kind = if i == 0 { 2 } else { 1 + rng.below(3) as i32 };
                    S {
                        parent: (i > 0).then(|| rng.below(i as u64) as usize),
                        service,
                        name: rng.pick(&names),
                        kind,
                        ms: 1 + rng.below(900),
                        error,
                        status_code: (kind != 1).then_some(if error {
                            500
                        } else {
                            [200, 201, 404][rng.below(3) as usize]
                        }),
                        route: (rng.below(2) == 0).then(|| rng.pick(&["/a", "/b/c", "/api/pay"])),
                        cache_hit: (service == "db").then(|| rng.below(2) == 0),
                        region: rng.pick(&["eu", "us"]),
                    }
                })
                .collect()
        })
        .collect()
}

/// One OTLP request per trace and service.
fn requests(traces: &[T], base: u64) -> Vec<Vec<u8>> {
    use sightline_proto::otlp::common::{AnyValue, KeyValue, any_value::Value as V};
    use sightline_proto::otlp::trace::{Span, Status};
    let kv = |k: &str, v: V| KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() };
    let mut out = Vec::new();
    for (k, t) in traces.iter().enumerate() {
        let start = base + k as u64 * 1_000_000_000;
        let by_service: BTreeSet<&str> = t.iter().map(|s| s.service).collect();
        for service in by_service {
            let spans = t
                .iter()
                .enumerate()
                .filter(|(_, s)| s.service == service)
                .map(|(i, s)| {
                    let mut attributes = vec![kv("region", V::StringValue(s.region.into()))];
                    attributes.extend(s.status_code.map(|c| kv("http.status_code", V::IntValue(c))));
                    attributes.extend(s.route.map(|r| kv("http.route", V::StringValue(r.into()))));
                    attributes.extend(s.cache_hit.map(|h| kv("cache.hit", V::BoolValue(h))));
                    Span {
                        trace_id: trace_id(k).to_vec(),
                        span_id: span_id(k, i).to_vec(),
                        parent_span_id: s.parent.map(|p| span_id(k, p).to_vec()).unwrap_or_default(),
                        name: s.name.into(),
                        kind: s.kind,
                        start_time_unix_nano: start + i as u64 * 1_000_000,
                        end_time_unix_nano: start + i as u64 * 1_000_000 + s.ms * 1_000_000,
                        attributes,
                        status: s.error.then(|| Status { code: 2, message: "failed".into() }),
                        ..Default::default()
                    }
                })
                .collect();
            let mut request = common::otlp::request_of(spans);
            request.resource_spans[0].resource.as_mut().expect("resource").attributes =
                vec![common::otlp::string_kv("service.name", service)];
            out.push(request.encode_to_vec());
        }
    }
    out
}

fn trace_id(k: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&(k as u64 + 1).to_be_bytes());
    id
}

fn span_id(k: usize, i: usize) -> [u8; 8] {
    ((k as u64 + 1) << 16 | (i as u64 + 1)).to_be_bytes()
}

/// Whether `a` is an ancestor of `b`.
fn ancestor(t: &T, a: usize, b: usize) -> bool {
    let mut at = t[b].parent;
    while let Some(p) = at {
        if p == a {
            return true;
        }
        at = t[p].parent;
    }
    false
}

fn any(t: &T, f: impl Fn(&S) -> bool) -> bool {
    t.iter().any(f)
}

/// Some span matching `b` whose relation to a span matching `a` holds.
fn related(t: &T, a: impl Fn(&S) -> bool, b: impl Fn(&S) -> bool, rel: impl Fn(&T, usize, usize) -> bool) -> bool {
    (0..t.len()).any(|j| b(&t[j]) && (0..t.len()).any(|i| a(&t[i]) && rel(t, i, j)))
}

fn root(t: &T) -> &S {
    &t[0]
}

fn trace_ms(t: &T) -> u64 {
    t.iter().enumerate().map(|(i, s)| i as u64 + s.ms).max().unwrap_or(0)
}

type Case = (&'static str, Box<dyn Fn(&T) -> bool>);

fn cases() -> Vec<Case> {
    let svc = |n: &'static str| move |s: &S| s.service == n;
    vec![
        ("{}", Box::new(|_| true)),
        (r#"{ resource.service.name = "payments" }"#, Box::new(move |t| any(t, svc("payments")))),
        (r#"{ .service.name != "gateway" }"#, Box::new(|t| any(t, |s| s.service != "gateway"))),
        (
            r#"{ resource.service.name =~ "pay.*|db" }"#,
            Box::new(|t| any(t, |s| s.service == "payments" || s.service == "db")),
        ),
        (
            r#"{ resource.service.name !~ "(gateway|auth|cart)" }"#,
            Box::new(|t| any(t, |s| !["gateway", "auth", "cart"].contains(&s.service))),
        ),
        (r#"{ name = "charge" }"#, Box::new(|t| any(t, |s| s.name == "charge"))),
        (r#"{ name =~ "GET .*" }"#, Box::new(|t| any(t, |s| s.name.starts_with("GET ")))),
        (r#"{ name > "query" }"#, Box::new(|t| any(t, |s| s.name > "query"))),
        ("{ status = error }", Box::new(|t| any(t, |s| s.error))),
        ("{ status != error }", Box::new(|t| any(t, |s| !s.error))),
        ("{ status = unset }", Box::new(|t| any(t, |s| !s.error))),
        ("{ kind = client }", Box::new(|t| any(t, |s| s.kind == 3))),
        ("{ kind != server && kind != client }", Box::new(|t| any(t, |s| s.kind == 1))),
        ("{ duration > 800ms }", Box::new(|t| any(t, |s| s.ms > 800))),
        ("{ duration <= 10ms }", Box::new(|t| any(t, |s| s.ms <= 10))),
        ("{ duration >= 100ms && duration < 0.2s }", Box::new(|t| any(t, |s| (100..200).contains(&s.ms)))),
        ("{ span.http.status_code = 500 }", Box::new(|t| any(t, |s| s.status_code == Some(500)))),
        ("{ span.http.status_code >= 400 }", Box::new(|t| any(t, |s| s.status_code.is_some_and(|c| c >= 400)))),
        ("{ .http.status_code < 201 }", Box::new(|t| any(t, |s| s.status_code.is_some_and(|c| c < 201)))),
        ("{ span.http.status_code != 200 }", Box::new(|t| any(t, |s| s.status_code.is_some_and(|c| c != 200)))),
        ("{ span.http.status_code = nil }", Box::new(|t| any(t, |s| s.status_code.is_none()))),
        (
            "{ span.http.status_code != nil && kind = internal }",
            Box::new(|t| any(t, |s| s.status_code.is_some() && s.kind == 1)),
        ),
        (r#"{ span.http.route = "/api/pay" }"#, Box::new(|t| any(t, |s| s.route == Some("/api/pay")))),
        (r#"{ .http.route =~ "/b/.*" }"#, Box::new(|t| any(t, |s| s.route == Some("/b/c")))),
        (r#"{ span.http.route != "/a" }"#, Box::new(|t| any(t, |s| s.route.is_some_and(|r| r != "/a")))),
        ("{ span.cache.hit = true }", Box::new(|t| any(t, |s| s.cache_hit == Some(true)))),
        (
            "{ .cache.hit = false && duration > 300ms }",
            Box::new(|t| any(t, |s| s.cache_hit == Some(false) && s.ms > 300)),
        ),
        (r#"{ resource.region = "eu" }"#, Box::new(|_| false)),
        (r#"{ span.region = "eu" && status = error }"#, Box::new(|t| any(t, |s| s.region == "eu" && s.error))),
        (r#"{ .region = "us" || kind = client }"#, Box::new(|t| any(t, |s| s.region == "us" || s.kind == 3))),
        (
            r#"{ !(.region = "us") && name = "SELECT" }"#,
            Box::new(|t| any(t, |s| s.region != "us" && s.name == "SELECT")),
        ),
        (r#"{ rootServiceName = "auth" }"#, Box::new(|t| root(t).service == "auth")),
        (r#"{ rootName = "charge" && status = error }"#, Box::new(|t| root(t).name == "charge" && any(t, |s| s.error))),
        ("{ traceDuration > 900ms }", Box::new(|t| trace_ms(t) > 900)),
        (
            r#"{ status = error } && { resource.service.name = "db" }"#,
            Box::new(move |t| any(t, |s| s.error) && any(t, svc("db"))),
        ),
        (
            r#"{ name = "login" } || { name = "query" }"#,
            Box::new(|t| any(t, |s| s.name == "login" || s.name == "query")),
        ),
        (
            r#"{ resource.service.name = "gateway" } > { resource.service.name = "db" }"#,
            Box::new(move |t| related(t, svc("gateway"), svc("db"), |t, a, b| t[b].parent == Some(a))),
        ),
        (
            r#"{ resource.service.name = "gateway" } >> { status = error }"#,
            Box::new(move |t| related(t, svc("gateway"), |s| s.error, ancestor)),
        ),
        (
            r#"{ status = error } < { kind = server }"#,
            Box::new(|t| related(t, |s| s.error, |s| s.kind == 2, |t, a, b| t[a].parent == Some(b))),
        ),
        (
            r#"{ resource.service.name = "db" } << { }"#,
            Box::new(move |t| related(t, svc("db"), |_| true, |t, a, b| ancestor(t, b, a))),
        ),
        (
            r#"{ kind = client } ~ { kind = internal }"#,
            Box::new(|t| {
                related(
                    t,
                    |s| s.kind == 3,
                    |s| s.kind == 1,
                    |t, a, b| a != b && t[a].parent.is_some() && t[a].parent == t[b].parent,
                )
            }),
        ),
        (
            r#"{ resource.service.name = "gateway" } !> { resource.service.name = "cart" }"#,
            Box::new(move |t| {
                (0..t.len()).any(|j| t[j].service == "cart" && t[j].parent.is_none_or(|p| t[p].service != "gateway"))
            }),
        ),
        (r#"{ } | count() > 5"#, Box::new(|t| t.len() > 5)),
        (r#"{ status = error } | count() >= 2"#, Box::new(|t| t.iter().filter(|s| s.error).count() >= 2)),
        (
            r#"{ kind = client } | avg(duration) > 500ms"#,
            Box::new(|t| {
                let d: Vec<u64> = t.iter().filter(|s| s.kind == 3).map(|s| s.ms).collect();
                !d.is_empty() && d.iter().sum::<u64>() as f64 / d.len() as f64 > 500.0
            }),
        ),
        (r#"{ } | max(duration) < 100ms"#, Box::new(|t| t.iter().all(|s| s.ms < 100))),
        (
            r#"{ resource.service.name = "cart" } | { span.http.status_code = 404 }"#,
            Box::new(|t| any(t, |s| s.service == "cart" && s.status_code == Some(404))),
        ),
        (r#"{ status = error } | select(span.http.route)"#, Box::new(|t| any(t, |s| s.error))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traceql_answers_equal_a_brute_force_scan_in_the_head_and_in_parts() {
    let s = common::start(|c| c.spans.flush_age_seconds = 3600).await;
    let traces = dataset();
    let base = common::now_nanos() - 600_000_000_000;
    let client = reqwest::Client::new();
    let bodies = requests(&traces, base);
    let half = bodies.len() / 2;
    for (n, body) in bodies.into_iter().enumerate() {
        if n == half {
            // The first half in a part, the rest in the head.
            let store = s.server.spans.clone();
            tokio::task::spawn_blocking(move || store.flush_blocking()).await.expect("join").expect("flush");
        }
        let r = common::post_protobuf(&client, &s.otlp_http_url("traces"), body).await;
        assert_eq!(r.status(), 200);
    }
    let counts = s.server.spans.counts(&common::tenant("default"));
    assert!(counts.part_spans > 0 && counts.head_spans > 0, "{counts:?}");
    let now = common::now_nanos() / 1_000_000_000;
    let range = [("start", (now - 3600).to_string()), ("end", (now + 60).to_string()), ("limit", "1000".to_owned())];
    let cases = cases();
    assert!(cases.len() >= 40);
    let search = |params: Vec<(&'static str, String)>| {
        let (client, url) = (client.clone(), s.api_url("/tempo/api/search"));
        async move {
            let body: Value = client.get(url).query(&params).send().await.expect("GET").json().await.expect("json");
            let traces = body["traces"].as_array().unwrap_or_else(|| panic!("{params:?}: {body}"));
            traces.iter().map(|t| format!("{:0>32}", t["traceID"].as_str().expect("id"))).collect::<Vec<_>>()
        }
    };
    let with_range = |mut params: Vec<(&'static str, String)>| {
        params.extend(range.iter().cloned());
        params
    };
    let ids_where = |keep: &dyn Fn(&T) -> bool| -> BTreeSet<String> {
        traces.iter().enumerate().filter(|(_, t)| keep(t)).map(|(k, _)| hex::encode(trace_id(k))).collect()
    };
    for (q, brute) in &cases {
        let got: BTreeSet<String> = search(with_range(vec![("q", (*q).to_owned())])).await.into_iter().collect();
        assert_eq!(got, ids_where(brute), "{q}");
    }
    // Trace duration bounds and the older `tags` form.
    let params = vec![("tags", "http.status_code=500 region=eu".to_owned()), ("minDuration", "300ms".to_owned())];
    let got: BTreeSet<String> = search(with_range(params)).await.into_iter().collect();
    assert_eq!(got, ids_where(&|t| trace_ms(t) >= 300 && any(t, |s| s.status_code == Some(500) && s.region == "eu")));
    // The limit keeps the newest.
    let newest = search(vec![
        ("q", "{}".to_owned()),
        ("limit", "5".to_owned()),
        ("start", (now - 3600).to_string()),
        ("end", (now + 60).to_string()),
    ])
    .await;
    let want: Vec<String> = (traces.len() - 5..traces.len()).rev().map(|k| hex::encode(trace_id(k))).collect();
    assert_eq!(newest, want);
}
