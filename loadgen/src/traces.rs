//! Span trees: a gateway root and children in other services (five by
//! default), nested timings, HTTP attributes, ~5 % errors.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use sightline_proto::otlp::ExportTraceServiceRequest;
use sightline_proto::otlp::common::any_value::Value;
use sightline_proto::otlp::resource::Resource;
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};

use crate::{Rng, kv, text};

const SERVICES: [&str; 6] = ["gateway", "orders", "payments", "inventory", "users", "search"];
const ROUTES: [&str; 6] = ["/api/orders", "/api/cart", "/api/pay", "/api/items/{id}", "/api/users/{id}", "/api/search"];

/// How large the traces are.
#[derive(Clone, Debug)]
pub struct TraceShape {
    pub spans: RangeInclusive<usize>,
    /// Attributes beyond the ten every span has.
    pub extra_attributes: RangeInclusive<usize>,
    /// Services, the gateway included (6 to 20 make realistic fleets).
    pub services: usize,
    /// Every span carries a unique `request.id` (a UUID in its text form).
    pub unique_ids: bool,
}

impl TraceShape {
    /// Ten spans of ten attributes: the component benchmarks' fixed shape.
    pub const FIXED: TraceShape =
        TraceShape { spans: 10..=10, extra_attributes: 0..=0, services: 6, unique_ids: false };
    /// 5–50 spans of 10–20 attributes.
    pub const VARIED: TraceShape =
        TraceShape { spans: 5..=50, extra_attributes: 0..=10, services: 6, unique_ids: false };
}

/// The name of service `i` (0 is the gateway).
fn service_name(i: usize) -> std::borrow::Cow<'static, str> {
    match SERVICES.get(i) {
        Some(name) => (*name).into(),
        None => format!("service-{i}").into(),
    }
}

/// One export request holding `traces` traces, starting within `spread_ns`
/// after `base_ns`. Returns the request and the trace ids it holds.
pub fn request(
    rng: &mut Rng,
    traces: usize,
    shape: &TraceShape,
    base_ns: u64,
    spread_ns: u64,
) -> (ExportTraceServiceRequest, Vec<[u8; 16]>) {
    let mut by_service: BTreeMap<std::borrow::Cow<'static, str>, Vec<Span>> = BTreeMap::new();
    let services = shape.services.max(2);
    let mut ids = Vec::with_capacity(traces);
    for _ in 0..traces {
        let trace = rng.id16();
        ids.push(trace);
        let start = base_ns + rng.below(spread_ns);
        let duration = 5_000_000 + rng.below(500_000_000);
        let count = rng.within(shape.spans.clone());
        // (span id, start, duration) of the spans so far.
        let mut made: Vec<(u64, u64, u64)> = Vec::with_capacity(count);
        for i in 0..count {
            let span_id = rng.next_u64() | 1;
            let (parent, s, d, service) = if i == 0 {
                (None, start, duration, 0)
            } else {
                let (pid, ps, pd) = made[rng.below(made.len() as u64) as usize];
                let offset = rng.below(pd / 2 + 1);
                let d = 1 + rng.below((pd - offset).max(1));
                (Some(pid), ps + offset, d, 1 + rng.below(services as u64 - 1) as usize)
            };
            made.push((span_id, s, d));
            let service = service_name(service);
            let span = span(rng, shape, &service, i == 0, s, d);
            by_service.entry(service).or_default().push(Span {
                trace_id: trace.to_vec(),
                span_id: span_id.to_be_bytes().to_vec(),
                parent_span_id: parent.map(|p: u64| p.to_be_bytes().to_vec()).unwrap_or_default(),
                ..span
            });
        }
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", service.as_ref()),
                    text("service.version", "1.4.2"),
                    text("host.name", format!("{service}-7d9f8b-x2k4p")),
                    text("telemetry.sdk.language", "rust"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            schema_url: String::new(),
        })
        .collect();
    (ExportTraceServiceRequest { resource_spans }, ids)
}

/// A span's name, kind, times, attributes and status.
fn span(rng: &mut Rng, shape: &TraceShape, service: &str, root: bool, start: u64, duration: u64) -> Span {
    let route = rng.pick(&ROUTES);
    let method = rng.pick(&["GET", "POST"]);
    let error = rng.below(20) == 0;
    let mut attributes = vec![
        text("http.request.method", method),
        text("http.route", route),
        kv(
            "http.response.status_code",
            Value::IntValue(if error { 500 } else { [200, 200, 201, 404][rng.below(4) as usize] }),
        ),
        text("url.scheme", "https"),
        text("server.address", format!("{service}.internal")),
        kv("server.port", Value::IntValue(8080)),
        text("user.id", format!("user-{}", rng.below(10_000))),
        text("client.address", format!("10.0.{}.{}", rng.below(255), rng.below(255))),
        kv("http.request.body.size", Value::IntValue(rng.below(100_000) as i64)),
        kv("cache.hit", Value::BoolValue(rng.below(2) == 0)),
    ];
    if shape.unique_ids {
        let (a, b) = (rng.next_u64(), rng.next_u64());
        attributes.push(text(
            "request.id",
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            ),
        ));
    }
    for k in 0..rng.within(shape.extra_attributes.clone()) {
        attributes.push(match k % 3 {
            0 => text(&format!("app.tag.{k}"), format!("v{}", rng.below(50))),
            1 => kv(&format!("app.count.{k}"), Value::IntValue(rng.below(1000) as i64)),
            _ => kv(&format!("app.ratio.{k}"), Value::DoubleValue(rng.below(10_000) as f64 / 100.0)),
        });
    }
    Span {
        name: format!("{method} {route}"),
        kind: if root { 2 } else { 1 + rng.below(3) as i32 },
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes,
        status: Some(Status {
            code: if error { 2 } else { 0 },
            message: if error { "internal error".into() } else { String::new() },
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped() {
        let (a, ids) = request(&mut Rng::new(7), 20, &TraceShape::VARIED, 1_000, 1_000_000);
        let (b, _) = request(&mut Rng::new(7), 20, &TraceShape::VARIED, 1_000, 1_000_000);
        assert_eq!(a, b, "same seed, same payload");
        assert_eq!(ids.len(), 20);
        let spans: Vec<&Span> = a.resource_spans.iter().flat_map(|r| &r.scope_spans[0].spans).collect();
        for id in &ids {
            let n = spans.iter().filter(|s| s.trace_id == id).count();
            assert!((5..=50).contains(&n), "{n} spans");
        }
        assert!(spans.iter().all(|s| (10..=20).contains(&s.attributes.len())));
        assert!(spans.iter().all(|s| s.end_time_unix_nano > s.start_time_unix_nano));
    }
}
