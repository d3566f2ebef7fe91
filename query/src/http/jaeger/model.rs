//! Jaeger's JSON model (what `jaeger-query` answers on `/api/…`),
//! serialised from the assembled trace without copying its strings.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};
use sightline_storage::model::{AttrValue, Attributes, Resource, SpanId, SpanKind, StatusCode, TraceId};

use crate::http::json::kind_name;
use crate::traces::Edge;
use crate::traces::assemble::{Node, Trace};

/// Every answer: `{"data": …, "total": n, "limit": 0, "offset": 0, "errors": …}`.
#[derive(Serialize)]
pub struct Envelope<T> {
    data: Option<Vec<T>>,
    total: usize,
    limit: usize,
    offset: usize,
    errors: Option<[Failure; 1]>,
}

#[derive(Serialize)]
struct Failure {
    code: u16,
    msg: String,
}

impl<T> Envelope<T> {
    pub fn of(data: Vec<T>) -> Self {
        Envelope { total: data.len(), data: Some(data), limit: 0, offset: 0, errors: None }
    }

    /// Data that is not the whole answer, and why (Jaeger's partial answers).
    pub fn partial(data: Vec<T>, code: u16, msg: String) -> Self {
        Envelope { errors: Some([Failure { code, msg }]), ..Envelope::of(data) }
    }

    pub fn error(code: u16, msg: String) -> Self {
        Envelope { data: None, total: 0, limit: 0, offset: 0, errors: Some([Failure { code, msg }]) }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation<'a> {
    pub name: &'a str,
    pub span_kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency<'a> {
    parent: &'a str,
    child: &'a str,
    call_count: u64,
}

impl<'a> Dependency<'a> {
    pub fn of(e: &'a Edge) -> Self {
        Dependency { parent: &e.parent, child: &e.child, call_count: e.call_count }
    }
}

/// A tag: `{"key": …, "type": "string"|"bool"|"int64"|"float64"|"binary", "value": …}`.
#[derive(Serialize)]
struct Tag<'a> {
    key: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    value: TagValue<'a>,
}

enum TagValue<'a> {
    Str(&'a str),
    Bool(bool),
    Attr(&'a AttrValue),
}

impl Serialize for TagValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TagValue::Str(v) => s.serialize_str(v),
            TagValue::Bool(b) => s.serialize_bool(*b),
            TagValue::Attr(AttrValue::Double(d)) => s.serialize_f64(*d),
            TagValue::Attr(v @ (AttrValue::Str(_) | AttrValue::Bool(_) | AttrValue::Int(_) | AttrValue::Bytes(_))) => {
                v.serialize(s)
            }
            TagValue::Attr(other) => s.serialize_str(&other.to_text()),
        }
    }
}

impl<'a> Tag<'a> {
    fn text(key: &'a str, value: &'a str) -> Self {
        Tag { key, kind: "string", value: TagValue::Str(value) }
    }

    fn of(key: &'a str, value: &'a AttrValue) -> Self {
        let kind = match value {
            AttrValue::Bool(_) => "bool",
            AttrValue::Int(_) => "int64",
            AttrValue::Double(_) => "float64",
            AttrValue::Bytes(_) => "binary",
            _ => "string",
        };
        Tag { key, kind, value: TagValue::Attr(value) }
    }
}

fn tags(attrs: &Attributes) -> impl Iterator<Item = Tag<'_>> {
    attrs.0.iter().map(|(k, v)| Tag::of(k, v))
}

fn micros(nanos: u64) -> u64 {
    nanos / 1000
}

/// One trace: spans with references, tags and logs, and a process per
/// distinct resource.
#[derive(Serialize)]
pub struct TraceJson<'a> {
    #[serde(rename = "traceID")]
    trace_id: TraceId,
    spans: Vec<SpanJson<'a>>,
    processes: BTreeMap<String, Process<'a>>,
    warnings: Option<[String; 1]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Process<'a> {
    service_name: &'a str,
    tags: Vec<Tag<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanJson<'a> {
    #[serde(rename = "traceID")]
    trace_id: TraceId,
    #[serde(rename = "spanID")]
    span_id: SpanId,
    operation_name: &'a str,
    references: Vec<Reference>,
    start_time: u64,
    duration: u64,
    tags: Vec<Tag<'a>>,
    logs: Vec<Log<'a>>,
    #[serde(rename = "processID")]
    process_id: String,
    warnings: Option<Vec<String>>,
    flags: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    ref_type: &'static str,
    #[serde(rename = "traceID")]
    trace_id: TraceId,
    #[serde(rename = "spanID")]
    span_id: SpanId,
}

#[derive(Serialize)]
struct Log<'a> {
    timestamp: u64,
    fields: Vec<Tag<'a>>,
}

impl<'a> TraceJson<'a> {
    pub fn of(t: &'a Trace) -> Self {
        // Spans share resources by pointer; equal resources behind two
        // pointers (two requests) are still one process.
        let mut distinct: Vec<(&'a Resource, String)> = Vec::new();
        let mut by_pointer: Vec<(*const Resource, usize)> = Vec::new();
        let mut processes = BTreeMap::new();
        let spans = t
            .nodes
            .iter()
            .map(|n| {
                let r = &*n.span.resource;
                let at = match by_pointer.iter().find(|(p, _)| std::ptr::eq(*p, r)) {
                    Some(&(_, at)) => at,
                    None => {
                        let at = match distinct
                            .iter()
                            .position(|(d, _)| d.service == r.service && d.attributes == r.attributes)
                        {
                            Some(at) => at,
                            None => {
                                let id = format!("p{}", distinct.len() + 1);
                                processes.insert(
                                    id.clone(),
                                    Process { service_name: &r.service, tags: tags(&r.attributes).collect() },
                                );
                                distinct.push((r, id));
                                distinct.len() - 1
                            }
                        };
                        by_pointer.push((r, at));
                        at
                    }
                };
                span(t.trace_id, n, distinct[at].1.clone())
            })
            .collect();
        let warnings = t.truncated.then(|| [format!("trace truncated to its first {} spans", t.nodes.len())]);
        TraceJson { trace_id: t.trace_id, spans, processes, warnings }
    }
}

fn span(trace_id: TraceId, n: &Node, process_id: String) -> SpanJson<'_> {
    let s = &n.span;
    let mut span_tags: Vec<Tag> = tags(&s.attributes).collect();
    if s.kind != SpanKind::Unspecified {
        span_tags.push(Tag::text("span.kind", kind_name(s.kind)));
    }
    match s.status_code {
        StatusCode::Error => {
            span_tags.push(Tag { key: "error", kind: "bool", value: TagValue::Bool(true) });
            span_tags.push(Tag::text("otel.status_code", "ERROR"));
        }
        StatusCode::Ok => span_tags.push(Tag::text("otel.status_code", "OK")),
        StatusCode::Unset => {}
    }
    if !s.status_message.is_empty() {
        span_tags.push(Tag::text("otel.status_description", &s.status_message));
    }
    if !s.scope.name.is_empty() {
        span_tags.push(Tag::text("otel.scope.name", &s.scope.name));
    }
    let parent = s.parent_span_id.map(|span_id| Reference { ref_type: "CHILD_OF", trace_id, span_id });
    let links =
        s.links.iter().map(|l| Reference { ref_type: "FOLLOWS_FROM", trace_id: l.trace_id, span_id: l.span_id });
    let mut warnings = Vec::new();
    if n.parent_missing {
        warnings.push(format!(
            "invalid parent span IDs={}; the parent is not in this trace",
            s.parent_span_id.map(|p| p.to_hex()).unwrap_or_default()
        ));
    }
    if n.skew_adjustment_nanos != 0 {
        warnings.push(format!(
            "This span's timestamps were adjusted by {}µs for clock skew",
            n.skew_adjustment_nanos / 1000
        ));
    }
    if n.duplicates > 0 {
        warnings.push(format!("{} other spans with this span ID were dropped", n.duplicates));
    }
    SpanJson {
        trace_id,
        span_id: s.span_id,
        operation_name: &s.name,
        references: parent.into_iter().chain(links).collect(),
        start_time: micros(n.start_unix_nano),
        duration: micros(s.duration_nanos()),
        tags: span_tags,
        logs: s
            .events
            .iter()
            .map(|e| Log {
                timestamp: micros(e.time_unix_nano),
                fields: std::iter::once(Tag::text("event", &e.name)).chain(tags(&e.attributes)).collect(),
            })
            .collect(),
        process_id,
        warnings: (!warnings.is_empty()).then_some(warnings),
        flags: s.flags,
    }
}
