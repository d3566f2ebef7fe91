//! Zipkin v2 spans (JSON or protobuf) as an OTLP traces request, as the
//! OpenTelemetry Collector's zipkin receiver maps them: a resource per local
//! service (`service.name`), 64-bit trace ids padded to 128 bits, kinds by
//! name, times from microseconds, tags as attributes (`error`,
//! `otel.status_code` and `otel.status_description` as the status),
//! annotations as events, the endpoints as `net.host.*` and `peer.service`
//! / `net.peer.*` attributes.
//!
//! A shared span (a server span reusing its client's id, Zipkin's B3
//! single-span style) gets an id of its own, derived from the trace and the
//! shared id so that a retry gives the same one, and the client span as its
//! parent, so that both halves of the call stay in the trace (as Jaeger's
//! span-id deduper does at query time).

use std::collections::BTreeMap;

use crate::receivers::adapter::{int_kv as int, string_kv as string};
use sightline_proto::otlp::ExportTraceServiceRequest;
use sightline_proto::otlp::common::InstrumentationScope;
use sightline_proto::otlp::resource::Resource;
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use sightline_proto::zipkin::{JsonEndpoint, JsonSpan, ListOfSpans};

/// Why a request cannot be taken (answered 400).
pub type Invalid = String;

/// A span in either form, ids decoded.
struct ZSpan {
    trace_id: [u8; 16],
    id: [u8; 8],
    parent: Option<[u8; 8]>,
    kind: span::SpanKind,
    name: String,
    timestamp_us: u64,
    duration_us: u64,
    local: Endpoint,
    remote: Endpoint,
    annotations: Vec<(u64, String)>,
    tags: BTreeMap<String, String>,
    shared: bool,
}

#[derive(Default)]
struct Endpoint {
    service: Option<String>,
    ip: Option<String>,
    port: Option<u16>,
}

fn trace_id(bytes: &[u8]) -> Result<[u8; 16], Invalid> {
    let mut id = [0u8; 16];
    match bytes.len() {
        16 => id.copy_from_slice(bytes),
        8 => id[8..].copy_from_slice(bytes),
        n => return Err(format!("a trace id has 8 or 16 bytes, not {n}")),
    }
    if id == [0; 16] {
        return Err("a trace id must not be zero".into());
    }
    Ok(id)
}

fn span_id(bytes: &[u8], what: &str) -> Result<[u8; 8], Invalid> {
    let id: [u8; 8] = bytes.try_into().map_err(|_| format!("{what} has 8 bytes, not {}", bytes.len()))?;
    if id == [0; 8] {
        return Err(format!("{what} must not be zero"));
    }
    Ok(id)
}

fn hex_bytes(text: &str, what: &str) -> Result<Vec<u8>, Invalid> {
    // Leading zeros may be left out: pad to 64 or 128 bits.
    let width = if text.len() <= 16 { 16 } else { 32 };
    let padded = format!("{text:0>width$}");
    hex::decode(&padded).map_err(|_| format!("{what} {text:?} is not hex"))
}

fn kind_of(name: Option<&str>) -> Result<span::SpanKind, Invalid> {
    Ok(match name {
        None | Some("") => span::SpanKind::Unspecified,
        Some("CLIENT") => span::SpanKind::Client,
        Some("SERVER") => span::SpanKind::Server,
        Some("PRODUCER") => span::SpanKind::Producer,
        Some("CONSUMER") => span::SpanKind::Consumer,
        Some(other) => return Err(format!("unknown span kind {other:?}")),
    })
}

fn json_endpoint(e: Option<JsonEndpoint>) -> Endpoint {
    let e = e.unwrap_or_default();
    Endpoint { service: e.service_name.filter(|s| !s.is_empty()), ip: e.ipv4.or(e.ipv6), port: e.port }
}

fn proto_endpoint(e: Option<sightline_proto::zipkin::Endpoint>) -> Endpoint {
    let Some(e) = e else { return Endpoint::default() };
    let ip = match (e.ipv4.len(), e.ipv6.len()) {
        (4, _) => Some(std::net::Ipv4Addr::new(e.ipv4[0], e.ipv4[1], e.ipv4[2], e.ipv4[3]).to_string()),
        (_, 16) => <[u8; 16]>::try_from(e.ipv6.as_slice()).ok().map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    };
    Endpoint {
        service: Some(e.service_name).filter(|s| !s.is_empty()),
        ip,
        port: u16::try_from(e.port).ok().filter(|p| *p > 0),
    }
}

/// Spans of the JSON v2 form.
pub fn from_json(body: &[u8]) -> Result<ExportTraceServiceRequest, Invalid> {
    let spans: Vec<JsonSpan> =
        serde_json::from_slice(body).map_err(|e| format!("invalid Zipkin JSON v2 spans: {e}"))?;
    let spans = spans
        .into_iter()
        .map(|s| {
            let parent = match s.parent_id.as_deref() {
                None | Some("") => None,
                Some(p) => Some(span_id(&hex_bytes(p, "parentId")?, "parentId")?),
            };
            Ok(ZSpan {
                trace_id: trace_id(&hex_bytes(&s.trace_id, "traceId")?)?,
                id: span_id(&hex_bytes(&s.id, "id")?, "id")?,
                parent,
                kind: kind_of(s.kind.as_deref())?,
                name: s.name.unwrap_or_default(),
                timestamp_us: s.timestamp.unwrap_or(0),
                duration_us: s.duration.unwrap_or(0),
                local: json_endpoint(s.local_endpoint),
                remote: json_endpoint(s.remote_endpoint),
                annotations: s.annotations.into_iter().map(|a| (a.timestamp, a.value)).collect(),
                tags: s.tags,
                shared: s.shared.unwrap_or(false),
            })
        })
        .collect::<Result<Vec<_>, Invalid>>()?;
    Ok(to_otlp(spans))
}

/// Spans of `zipkin.proto3.ListOfSpans`.
pub fn from_protobuf(list: ListOfSpans) -> Result<ExportTraceServiceRequest, Invalid> {
    let spans = list
        .spans
        .into_iter()
        .map(|s| {
            let kind = match s.kind {
                0 => span::SpanKind::Unspecified,
                1 => span::SpanKind::Client,
                2 => span::SpanKind::Server,
                3 => span::SpanKind::Producer,
                4 => span::SpanKind::Consumer,
                n => return Err(format!("unknown span kind {n}")),
            };
            Ok(ZSpan {
                trace_id: trace_id(&s.trace_id)?,
                id: span_id(&s.id, "id")?,
                parent: if s.parent_id.is_empty() { None } else { Some(span_id(&s.parent_id, "parent_id")?) },
                kind,
                name: s.name,
                timestamp_us: s.timestamp,
                duration_us: s.duration,
                local: proto_endpoint(s.local_endpoint),
                remote: proto_endpoint(s.remote_endpoint),
                annotations: s.annotations.into_iter().map(|a| (a.timestamp, a.value)).collect(),
                tags: s.tags,
                shared: s.shared,
            })
        })
        .collect::<Result<Vec<_>, Invalid>>()?;
    Ok(to_otlp(spans))
}

/// The id a shared span takes: FNV-1a of the trace id and the shared id.
fn unshared_id(trace: &[u8; 16], id: &[u8; 8]) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in trace.iter().chain(id).chain(b"shared") {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    if h == 0 {
        h = 1;
    }
    h.to_be_bytes()
}

fn otlp_span(z: ZSpan) -> Span {
    let (id, parent) = if z.shared && z.kind == span::SpanKind::Server {
        (unshared_id(&z.trace_id, &z.id), Some(z.id))
    } else {
        (z.id, z.parent)
    };
    let mut status = Status::default();
    let mut attributes = Vec::with_capacity(z.tags.len() + 5);
    for (k, v) in &z.tags {
        match k.as_str() {
            "otel.status_code" => {
                status.code = match v.as_str() {
                    "ERROR" => status::StatusCode::Error as i32,
                    "OK" => status::StatusCode::Ok as i32,
                    _ => status.code,
                }
            }
            "otel.status_description" => status.message = v.clone(),
            "error" => {
                status.code = status::StatusCode::Error as i32;
                if status.message.is_empty() && v != "true" && !v.is_empty() {
                    status.message = v.clone();
                }
            }
            _ => attributes.push(string(k, v)),
        }
    }
    if let Some(ip) = &z.local.ip {
        attributes.push(string("net.host.ip", ip));
    }
    if let Some(port) = z.local.port {
        attributes.push(int("net.host.port", i64::from(port)));
    }
    if let Some(service) = &z.remote.service {
        attributes.push(string("peer.service", service));
    }
    if let Some(ip) = &z.remote.ip {
        attributes.push(string("net.peer.ip", ip));
    }
    if let Some(port) = z.remote.port {
        attributes.push(int("net.peer.port", i64::from(port)));
    }
    let start = z.timestamp_us.saturating_mul(1000);
    Span {
        trace_id: z.trace_id.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: z.name,
        kind: z.kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(z.duration_us.saturating_mul(1000)),
        attributes,
        events: z
            .annotations
            .into_iter()
            .map(|(t, value)| span::Event { time_unix_nano: t.saturating_mul(1000), name: value, ..Default::default() })
            .collect(),
        status: Some(status),
        ..Default::default()
    }
}

fn to_otlp(spans: Vec<ZSpan>) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<String, Vec<Span>> = BTreeMap::new();
    for z in spans {
        let service = z.local.service.clone().unwrap_or_else(|| "unknown_service".into());
        by_service.entry(service).or_default().push(otlp_span(z));
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource { attributes: vec![string("service.name", &service)], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "zipkin".into(), ..Default::default() }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spans_map_as_the_collector_maps_them() {
        let body = br#"[
          {"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","kind":"CLIENT","name":"get /api",
           "timestamp":1700000000000000,"duration":2500,
           "localEndpoint":{"serviceName":"frontend","ipv4":"10.0.0.1","port":8080},
           "remoteEndpoint":{"serviceName":"backend","ipv4":"10.0.0.2","port":9000},
           "annotations":[{"timestamp":1700000000001000,"value":"ws"}],
           "tags":{"http.method":"GET","error":"timeout"}},
          {"traceId":"463ac35c9f6413ad","parentId":"a2fb4a1d1a96d312","id":"a2fb4a1d1a96d312","kind":"SERVER","name":"get /api",
           "timestamp":1700000000000500,"duration":1500,"shared":true,"localEndpoint":{"serviceName":"backend"}}
        ]"#;
        let request = from_json(body).expect("valid");
        assert_eq!(request.resource_spans.len(), 2);
        let backend = &request.resource_spans[0];
        let frontend = &request.resource_spans[1];
        assert_eq!(frontend.resource.as_ref().expect("resource").attributes[0], string("service.name", "frontend"));
        let client = &frontend.scope_spans[0].spans[0];
        assert_eq!(client.trace_id, [&[0u8; 8][..], &hex::decode("463ac35c9f6413ad").expect("hex")].concat());
        assert_eq!(client.kind, span::SpanKind::Client as i32);
        assert_eq!(
            (client.start_time_unix_nano, client.end_time_unix_nano),
            (1_700_000_000_000_000_000, 1_700_000_000_002_500_000)
        );
        assert_eq!(client.events[0].name, "ws");
        let status = client.status.as_ref().expect("status");
        assert_eq!((status.code, status.message.as_str()), (status::StatusCode::Error as i32, "timeout"));
        assert!(client.attributes.contains(&string("peer.service", "backend")));
        assert!(client.attributes.contains(&int("net.peer.port", 9000)));
        assert!(client.attributes.contains(&string("http.method", "GET")));
        let server = &backend.scope_spans[0].spans[0];
        assert_eq!(server.parent_span_id, client.span_id, "the shared server span hangs under its client");
        assert_ne!(server.span_id, client.span_id);
        assert_eq!(from_json(body).expect("valid").resource_spans[0].scope_spans[0].spans[0].span_id, server.span_id);
        for (bad, message) in [
            (&b"{}"[..], "invalid Zipkin JSON"),
            (br#"[{"traceId":"xyz","id":"a2fb4a1d1a96d312"}]"#, "not hex"),
            (br#"[{"traceId":"463ac35c9f6413ad","id":"0000000000000000"}]"#, "must not be zero"),
            (br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","kind":"PEER"}]"#, "unknown span kind"),
        ] {
            assert!(from_json(bad).expect_err("invalid").contains(message), "{message}");
        }
    }
}
