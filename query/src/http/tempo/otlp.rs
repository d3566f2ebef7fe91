//! A trace as Tempo's protobuf answers it (`Accept: application/protobuf`):
//! `tempopb.Trace` is a repeated OTLP `ResourceSpans` in field 1 — the same
//! bytes as an OTLP export request — and the v2 answer wraps it in field 1
//! of `TraceByIDResponse`.

use sightline_proto::otlp::ExportTraceServiceRequest;
use sightline_proto::otlp::common::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value};
use sightline_proto::otlp::resource::Resource;
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status, span};
use sightline_proto::prost::Message;
use sightline_storage::model::{self, AttrValue, Attributes};

use super::model::Batches;

/// `tempopb.Trace`.
pub fn trace(batches: &Batches) -> Vec<u8> {
    let resource_spans = batches
        .0
        .iter()
        .map(|(resource, scopes)| ResourceSpans {
            resource: Some(Resource { attributes: key_values(&resource.attributes), ..Default::default() }),
            scope_spans: scopes
                .iter()
                .map(|(scope, spans)| ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: scope.name.clone(),
                        version: scope.version.clone(),
                        ..Default::default()
                    }),
                    spans: spans.iter().map(|s| span(s)).collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

/// `tempopb.TraceByIDResponse` holding `trace` (status COMPLETE, the default).
pub fn trace_v2(batches: &Batches) -> Vec<u8> {
    let inner = trace(batches);
    let mut out = Vec::with_capacity(inner.len() + 8);
    // Field 1, length-delimited.
    out.push(0x0a);
    sightline_proto::prost::encoding::encode_varint(inner.len() as u64, &mut out);
    out.extend_from_slice(&inner);
    out
}

fn span(s: &model::Span) -> Span {
    Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind as i32,
        start_time_unix_nano: s.start_unix_nano,
        end_time_unix_nano: s.end_unix_nano,
        attributes: key_values(&s.attributes),
        events: s
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: key_values(&e.attributes),
                ..Default::default()
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.trace_id.0.to_vec(),
                span_id: l.span_id.0.to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: key_values(&l.attributes),
                ..Default::default()
            })
            .collect(),
        status: Some(Status { code: s.status_code as i32, message: s.status_message.clone() }),
        ..Default::default()
    }
}

fn key_values(a: &Attributes) -> Vec<KeyValue> {
    a.0.iter().map(|(k, v)| KeyValue { key: k.clone(), value: Some(any(v)), ..Default::default() }).collect()
}

fn any(v: &AttrValue) -> AnyValue {
    use any_value::Value as V;
    let value = match v {
        AttrValue::Empty => None,
        AttrValue::Str(s) => Some(V::StringValue(s.clone())),
        AttrValue::Bool(b) => Some(V::BoolValue(*b)),
        AttrValue::Int(i) => Some(V::IntValue(*i)),
        AttrValue::Double(d) => Some(V::DoubleValue(*d)),
        AttrValue::Bytes(b) => Some(V::BytesValue(b.clone())),
        AttrValue::Array(items) => Some(V::ArrayValue(ArrayValue { values: items.iter().map(any).collect() })),
        AttrValue::Map(kv) => Some(V::KvlistValue(KeyValueList { values: key_values(kv) })),
    };
    AnyValue { value }
}
