//! OTLP messages → the storage model. Runs after validation, so ids are
//! known to be well-formed; anything that still fails to convert is skipped.

use std::sync::Arc;

use sightline_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use sightline_proto::otlp::metrics::{Exemplar as OtlpExemplar, exemplar, metric, number_data_point};
use sightline_proto::otlp::resource::Resource as OtlpResource;
use sightline_proto::otlp::{ExportLogsServiceRequest, ExportMetricsServiceRequest, ExportTraceServiceRequest};
use sightline_storage::model::{
    AttrValue, Attributes, Exemplar, LogRecord, MetricPoint, PointValue, Resource, Scope, Span, SpanEvent, SpanId,
    SpanKind, SpanLink, StatusCode, Temporality, TraceId,
};

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

fn exemplars(es: Vec<OtlpExemplar>) -> Vec<Exemplar> {
    es.into_iter()
        .map(|e| Exemplar {
            time_unix_nano: e.time_unix_nano,
            value: match e.value {
                Some(exemplar::Value::AsDouble(d)) => d,
                Some(exemplar::Value::AsInt(i)) => i as f64,
                None => 0.0,
            },
            trace_id: trace_id(&e.trace_id),
            span_id: span_id(&e.span_id),
        })
        .collect()
}

fn number(v: Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

/// Flag bit 0 of a data point: no recorded value.
fn no_value(flags: u32) -> bool {
    flags & 1 == 1
}

pub fn metric_points(req: ExportMetricsServiceRequest) -> Vec<MetricPoint> {
    use metric::Data;
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        let resource = resource(rm.resource);
        for sm in rm.scope_metrics {
            let scope = scope(sm.scope);
            for m in sm.metrics {
                let point = |attrs, start, time, flags, value, ex| MetricPoint {
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                    description: m.description.clone(),
                    attributes: attributes(attrs),
                    start_unix_nano: start,
                    time_unix_nano: time,
                    no_value: no_value(flags),
                    value,
                    exemplars: exemplars(ex),
                    resource: resource.clone(),
                    scope: scope.clone(),
                };
                match m.data.clone() {
                    None => {}
                    Some(Data::Gauge(g)) => out.extend(g.data_points.into_iter().map(|p| {
                        point(
                            p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            p.flags,
                            PointValue::Gauge(number(p.value)),
                            p.exemplars,
                        )
                    })),
                    Some(Data::Sum(s)) => {
                        let temporality = Temporality::from_otlp(s.aggregation_temporality);
                        out.extend(s.data_points.into_iter().map(|p| {
                            let value =
                                PointValue::Sum { value: number(p.value), monotonic: s.is_monotonic, temporality };
                            point(p.attributes, p.start_time_unix_nano, p.time_unix_nano, p.flags, value, p.exemplars)
                        }))
                    }
                    Some(Data::Histogram(h)) => {
                        let temporality = Temporality::from_otlp(h.aggregation_temporality);
                        out.extend(h.data_points.into_iter().map(|p| {
                            let value = PointValue::Histogram {
                                count: p.count,
                                sum: p.sum,
                                bounds: p.explicit_bounds,
                                bucket_counts: p.bucket_counts,
                                temporality,
                            };
                            point(p.attributes, p.start_time_unix_nano, p.time_unix_nano, p.flags, value, p.exemplars)
                        }))
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let temporality = Temporality::from_otlp(h.aggregation_temporality);
                        out.extend(h.data_points.into_iter().map(|p| {
                            let (po, pos) = p.positive.map_or((0, Vec::new()), |b| (b.offset, b.bucket_counts));
                            let (no, neg) = p.negative.map_or((0, Vec::new()), |b| (b.offset, b.bucket_counts));
                            let value = PointValue::ExponentialHistogram {
                                count: p.count,
                                sum: p.sum,
                                scale: p.scale,
                                zero_count: p.zero_count,
                                positive_offset: po,
                                positive: pos,
                                negative_offset: no,
                                negative: neg,
                                temporality,
                            };
                            point(p.attributes, p.start_time_unix_nano, p.time_unix_nano, p.flags, value, p.exemplars)
                        }))
                    }
                    Some(Data::Summary(s)) => out.extend(s.data_points.into_iter().map(|p| {
                        let value = PointValue::Summary {
                            count: p.count,
                            sum: p.sum,
                            quantiles: p.quantile_values.into_iter().map(|q| (q.quantile, q.value)).collect(),
                        };
                        point(p.attributes, p.start_time_unix_nano, p.time_unix_nano, p.flags, value, Vec::new())
                    })),
                }
            }
        }
    }
    out
}
