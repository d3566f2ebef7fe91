//! OTLP messages → the storage model (metrics: → samples, in [`metrics`]).
//! Runs after validation, so ids are known to be well-formed; anything
//! that still fails to convert is skipped.

use std::sync::Arc;

use sightline_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use sightline_proto::otlp::resource::Resource as OtlpResource;
use sightline_proto::otlp::{ExportLogsServiceRequest, ExportTraceServiceRequest};
use sightline_storage::model::{
    AttrValue, Attributes, LogRecord, Resource, Scope, Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, TraceId,
};

pub mod metrics;

pub fn value(v: AnyValue) -> AttrValue {
    use any_value::Value as V;
    match v.value {
        None | Some(V::StringValueStrindex(_)) => AttrValue::Empty,
        Some(V::StringValue(s)) => AttrValue::Str(s),
        Some(V::BoolValue(b)) => AttrValue::Bool(b),
        Some(V::IntValue(i)) => AttrValue::Int(i),
        Some(V::DoubleValue(d)) => AttrValue::Double(d),
        Some(V::BytesValue(b)) => AttrValue::Bytes(b),
        Some(V::ArrayValue(a)) => AttrValue::Array(a.values.into_iter().map(value).collect()),
        Some(V::KvlistValue(kv)) => AttrValue::Map(attributes(kv.values)),
    }
}

pub fn attributes(kvs: Vec<KeyValue>) -> Attributes {
    Attributes(kvs.into_iter().map(|kv| (kv.key, kv.value.map_or(AttrValue::Empty, value))).collect())
}

fn resource(r: Option<OtlpResource>) -> Arc<Resource> {
    let attributes = attributes(r.map(|r| r.attributes).unwrap_or_default());
    let service = attributes.get_str("service.name").unwrap_or("unknown_service").to_owned();
    Arc::new(Resource { service, attributes })
}

fn scope(s: Option<InstrumentationScope>) -> Arc<Scope> {
    let s = s.unwrap_or_default();
    Arc::new(Scope { name: s.name, version: s.version })
}

fn span_id(bytes: &[u8]) -> Option<SpanId> {
    SpanId::try_from(bytes).ok()
}

fn trace_id(bytes: &[u8]) -> Option<TraceId> {
    TraceId::try_from(bytes).ok()
}

pub fn spans(req: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = resource(rs.resource);
        for ss in rs.scope_spans {
            let scope = scope(ss.scope);
            out.extend(ss.spans.into_iter().filter_map(|s| {
                let status = s.status.unwrap_or_default();
                Some(Span {
                    trace_id: trace_id(&s.trace_id)?,
                    span_id: span_id(&s.span_id)?,
                    parent_span_id: span_id(&s.parent_span_id),
                    trace_state: s.trace_state,
                    flags: s.flags,
                    name: s.name,
                    kind: SpanKind::from_otlp(s.kind),
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                    status_code: StatusCode::from_otlp(status.code),
                    status_message: status.message,
                    attributes: attributes(s.attributes),
                    events: s
                        .events
                        .into_iter()
                        .map(|e| SpanEvent {
                            time_unix_nano: e.time_unix_nano,
                            name: e.name,
                            attributes: attributes(e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .into_iter()
                        .filter_map(|l| {
                            Some(SpanLink {
                                trace_id: trace_id(&l.trace_id)?,
                                span_id: span_id(&l.span_id)?,
                                trace_state: l.trace_state,
                                attributes: attributes(l.attributes),
                            })
                        })
                        .collect(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                })
            }));
        }
    }
    out
}

pub fn logs(req: ExportLogsServiceRequest) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for rl in req.resource_logs {
        let resource = resource(rl.resource);
        for sl in rl.scope_logs {
            let scope = scope(sl.scope);
            out.extend(sl.log_records.into_iter().map(|r| {
                let observed = r.observed_time_unix_nano;
                LogRecord {
                    time_unix_nano: if r.time_unix_nano == 0 { observed } else { r.time_unix_nano },
                    observed_unix_nano: observed,
                    severity_number: r.severity_number.clamp(0, 24) as u8,
                    severity_text: r.severity_text,
                    body: r.body.map_or(AttrValue::Empty, value),
                    attributes: attributes(r.attributes),
                    trace_id: trace_id(&r.trace_id),
                    span_id: span_id(&r.span_id),
                    event_name: r.event_name,
                    resource: resource.clone(),
                    scope: scope.clone(),
                }
            }));
        }
    }
    out
}
