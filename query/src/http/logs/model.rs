//! The log search API's responses, serialised from the hits.

use serde::Serialize;
use sightline_storage::logs::{LogHit, SortKey};
use sightline_storage::model::{AttrValue, Attributes, SpanId, TraceId};

use crate::http::json::{Scope, Text};

/// A page cursor: the sort key of the last hit, `<ts>.<seq>`.
pub struct Cursor(pub SortKey);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0.ts, self.0.seq)
    }
}

#[derive(Serialize)]
pub struct Hits<'a> {
    pub hits: Vec<Hit<'a>>,
    pub cursor: Option<Text<Cursor>>,
}

#[derive(Serialize)]
pub struct TraceLogs<'a> {
    pub logs: Vec<Hit<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hit<'a> {
    time_unix_nano: Text<u64>,
    observed_time_unix_nano: Text<u64>,
    severity_number: u8,
    severity_text: &'a str,
    severity: &'static str,
    body: &'a AttrValue,
    service: &'a str,
    trace_id: Option<TraceId>,
    span_id: Option<SpanId>,
    event_name: &'a str,
    attributes: &'a Attributes,
    resource: &'a Attributes,
    scope: Scope<'a>,
    highlights: &'a [(usize, usize)],
    cursor: Text<Cursor>,
}

impl<'a> Hit<'a> {
    pub fn of(h: &'a LogHit) -> Self {
        let r = &h.record;
        Hit {
            time_unix_nano: Text(r.time_unix_nano),
            observed_time_unix_nano: Text(r.observed_unix_nano),
            severity_number: r.severity_number,
            severity_text: &r.severity_text,
            severity: super::severity_name(r.severity_number),
            body: &r.body,
            service: &r.resource.service,
            trace_id: r.trace_id,
            span_id: r.span_id,
            event_name: &r.event_name,
            attributes: &r.attributes,
            resource: &r.resource.attributes,
            scope: Scope { name: &r.scope.name, version: &r.scope.version },
            highlights: &h.highlights,
            cursor: Text(Cursor(h.key)),
        }
    }
}

#[derive(Serialize)]
pub struct Histogram {
    pub start: Text<i64>,
    pub step: Text<i64>,
    pub total: u64,
    pub buckets: Vec<Bucket>,
}

#[derive(Serialize)]
pub struct Bucket {
    pub time: Text<i64>,
    pub count: u64,
}

#[derive(Serialize)]
pub struct Top<'a> {
    pub field: &'a str,
    pub values: Vec<TopValue>,
}

#[derive(Serialize)]
pub struct TopValue {
    pub value: String,
    pub count: u64,
}
