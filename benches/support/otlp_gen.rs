//! Seeded, realistic OTLP trace payloads for the benchmarks: traces of
//! several services with parent links, nested timings, ~10 attributes per
//! span and ~5% errors. The same seed gives the same bytes.

use std::collections::BTreeMap;

use sightline_proto::otlp::ExportTraceServiceRequest;
use sightline_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};
use sightline_proto::otlp::resource::Resource;
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

/// xorshift64: small, fast, seeded.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

const SERVICES: [&str; 6] = ["gateway", "orders", "payments", "inventory", "users", "search"];
const ROUTES: [&str; 6] = ["/api/orders", "/api/cart", "/api/pay", "/api/items/{id}", "/api/users/{id}", "/api/search"];

/// One export request holding `traces` traces of `spans_per_trace` spans,
/// starting within `spread_ns` after `base_ns`. Returns the request and the
/// trace ids it holds.
pub fn traces_request(
    rng: &mut Rng,
    traces: usize,
    spans_per_trace: usize,
    base_ns: u64,
    spread_ns: u64,
) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let mut by_service: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    let mut ids = Vec::with_capacity(traces);
    for _ in 0..traces {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&rng.next().to_be_bytes());
        trace[8..].copy_from_slice(&rng.next().to_be_bytes());
        ids.push(trace);
        let start = base_ns + rng.below(spread_ns);
        let duration = 5_000_000 + rng.below(500_000_000);
        // (span id, start, duration, service) of the spans so far.
        let mut made: Vec<(u64, u64, u64, &str)> = Vec::with_capacity(spans_per_trace);
        for i in 0..spans_per_trace {
            let span_id = rng.next() | 1;
            let (parent, s, d, service) = if i == 0 {
                (None, start, duration, "gateway")
            } else {
                let (pid, ps, pd, _) = made[rng.below(made.len() as u64) as usize];
                let offset = rng.below(pd / 2 + 1);
                let d = 1 + rng.below((pd - offset).max(1));
                (Some(pid), ps + offset, d, SERVICES[1 + rng.below(5) as usize])
            };
            made.push((span_id, s, d, service));
            let route = rng.pick(&ROUTES);
            let method = rng.pick(&["GET", "POST"]);
            let error = rng.below(20) == 0;
            by_service.entry(service).or_default().push(Span {
                trace_id: trace.to_vec(),
                span_id: span_id.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p: u64| p.to_be_bytes().to_vec()).unwrap_or_default(),
                name: format!("{method} {route}"),
                kind: if i == 0 { 2 } else { 1 + rng.below(3) as i32 },
                start_time_unix_nano: s,
                end_time_unix_nano: s + d,
                attributes: vec![
                    kv("http.request.method", Value::StringValue(method.into())),
                    kv("http.route", Value::StringValue(route.into())),
                    kv(
                        "http.response.status_code",
                        Value::IntValue(if error { 500 } else { [200, 200, 201, 404][rng.below(4) as usize] }),
                    ),
                    kv("url.scheme", Value::StringValue("https".into())),
                    kv("server.address", Value::StringValue(format!("{service}.internal"))),
                    kv("server.port", Value::IntValue(8080)),
                    kv("user.id", Value::StringValue(format!("user-{}", rng.below(10_000)))),
                    kv("client.address", Value::StringValue(format!("10.0.{}.{}", rng.below(255), rng.below(255)))),
                    kv("http.request.body.size", Value::IntValue(rng.below(100_000) as i64)),
                    kv("cache.hit", Value::BoolValue(rng.below(2) == 0)),
                ],
                status: Some(Status {
                    code: if error { 2 } else { 0 },
                    message: if error { "internal error".into() } else { String::new() },
                }),
                ..Default::default()
            });
        }
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue(service.into())),
                    kv("service.version", Value::StringValue("1.4.2".into())),
                    kv("host.name", Value::StringValue(format!("{service}-7d9f8b-x2k4p"))),
                    kv("telemetry.sdk.language", Value::StringValue("rust".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            schema_url: String::new(),
        })
        .collect();
    (ExportTraceServiceRequest { resource_spans }, ids)
}
