//! The native API's responses, serialised from the assembled trace and
//! the stores' answers without copying their strings.

use std::collections::BTreeMap;

use serde::Serialize;
use sightline_storage::model::{Attributes, SpanEvent, SpanId, SpanKind, SpanLink, TraceId};

use crate::http::json::{Scope, Text, kind_name, status_name};
use crate::traces::Edge;
use crate::traces::assemble::{Node, ServiceCounts, Trace};

/// `GET /api/traces/{id}`: the trace as a tree in depth-first order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceJson<'a> {
    trace_id: TraceId,
    start_time_unix_nano: Text<u64>,
    duration_nanos: u64,
    span_count: usize,
    error_count: u64,
    truncated: bool,
    /// Present when parts that may hold spans of the trace could not be read.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    partial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    partial_reason: Option<String>,
    services: &'a BTreeMap<String, ServiceCounts>,
    roots: Vec<SpanId>,
    orphans: Vec<SpanId>,
    spans: Vec<NodeJson<'a>>,
}

impl<'a> TraceJson<'a> {
    pub fn of(t: &'a Trace) -> Self {
        let id = |i: &usize| t.nodes[*i].span.span_id;
        TraceJson {
            trace_id: t.trace_id,
            start_time_unix_nano: Text(t.start_unix_nano),
            duration_nanos: t.duration_nanos(),
            span_count: t.nodes.len(),
            error_count: t.errors(),
            truncated: t.truncated,
            partial: !t.unread.is_empty(),
            partial_reason: t.partial_reason(),
            services: &t.services,
            roots: t.roots.iter().map(id).collect(),
            orphans: t.orphans.iter().map(id).collect(),
            spans: t.nodes.iter().map(NodeJson::of).collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeJson<'a> {
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    depth: usize,
    name: &'a str,
    kind: &'static str,
    service: &'a str,
    start_time_unix_nano: Text<u64>,
    duration_nanos: u64,
    self_nanos: u64,
    status: Status<'a>,
    critical_path: bool,
    parent_missing: bool,
    duplicates: usize,
    skew_adjustment_nanos: i64,
    attributes: &'a Attributes,
    resource: &'a Attributes,
    scope: Scope<'a>,
    events: Vec<Event<'a>>,
    links: Vec<Link<'a>>,
}

impl<'a> NodeJson<'a> {
    fn of(n: &'a Node) -> Self {
        let s = &n.span;
        NodeJson {
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            depth: n.depth,
            name: &s.name,
            kind: kind_name(s.kind),
            service: &s.resource.service,
            start_time_unix_nano: Text(n.start_unix_nano),
            duration_nanos: s.duration_nanos(),
            self_nanos: n.self_nanos,
            status: Status { code: status_name(s.status_code), message: &s.status_message },
            critical_path: n.on_critical_path,
            parent_missing: n.parent_missing,
            duplicates: n.duplicates,
            skew_adjustment_nanos: n.skew_adjustment_nanos,
            attributes: &s.attributes,
            resource: &s.resource.attributes,
            scope: Scope { name: &s.scope.name, version: &s.scope.version },
            events: s.events.iter().map(Event::of).collect(),
            links: s.links.iter().map(Link::of).collect(),
        }
    }
}

#[derive(Serialize)]
struct Status<'a> {
    code: &'static str,
    message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    time_unix_nano: Text<u64>,
    name: &'a str,
    attributes: &'a Attributes,
}

impl<'a> Event<'a> {
    fn of(e: &'a SpanEvent) -> Self {
        Event { time_unix_nano: Text(e.time_unix_nano), name: &e.name, attributes: &e.attributes }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Link<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    attributes: &'a Attributes,
}

impl<'a> Link<'a> {
    fn of(l: &'a SpanLink) -> Self {
        Link { trace_id: l.trace_id, span_id: l.span_id, attributes: &l.attributes }
    }
}

/// `GET /api/traces`: one summary per trace found.
#[derive(Serialize)]
pub struct Traces<'a> {
    pub traces: Vec<Summary<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    trace_id: TraceId,
    root_service: Option<&'a str>,
    root_name: Option<&'a str>,
    start_time_unix_nano: Text<u64>,
    duration_nanos: u64,
    span_count: usize,
    error_count: u64,
    services: Vec<&'a str>,
    truncated: bool,
}

impl<'a> Summary<'a> {
    pub fn of(t: &'a Trace) -> Self {
        let root = t.root();
        Summary {
            trace_id: t.trace_id,
            root_service: root.map(|n| n.span.resource.service.as_str()),
            root_name: root.map(|n| n.span.name.as_str()),
            start_time_unix_nano: Text(t.start_unix_nano),
            duration_nanos: t.duration_nanos(),
            span_count: t.nodes.len(),
            error_count: t.errors(),
            services: t.services.keys().map(String::as_str).collect(),
            truncated: t.truncated,
        }
    }
}

#[derive(Serialize)]
pub struct Services {
    pub services: Vec<String>,
}

#[derive(Serialize)]
pub struct Operations<'a> {
    operations: Vec<Operation<'a>>,
}

#[derive(Serialize)]
struct Operation<'a> {
    name: &'a str,
    kind: &'static str,
}

impl<'a> Operations<'a> {
    pub fn of(ops: &'a [(String, SpanKind)]) -> Self {
        Operations { operations: ops.iter().map(|(name, kind)| Operation { name, kind: kind_name(*kind) }).collect() }
    }
}

#[derive(Serialize)]
pub struct Dependencies {
    pub edges: Vec<Edge>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub spans: u64,
    pub spans_in_head: u64,
    pub span_parts: u64,
    pub log_records: u64,
    pub metric_samples: u64,
}
