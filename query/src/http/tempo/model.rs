//! Tempo's JSON answers, serialised from borrowed data: traces in OTLP/JSON
//! (hex ids, enums as numbers, 64-bit integers as strings), search results,
//! tag names and values.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use sightline_storage::model::{AttrValue, Attributes, Resource, Scope, Span};

use crate::http::json::{Text, kind_name, status_name};
use crate::traceql::Got;

/// The spans of one instrumentation scope.
pub type ScopeGroup<'a> = (&'a Scope, Vec<&'a Span>);

/// Spans grouped by resource, then by scope, as OTLP nests them.
pub struct Batches<'a>(pub Vec<(&'a Resource, Vec<ScopeGroup<'a>>)>);

impl<'a> Batches<'a> {
    pub fn of(spans: impl IntoIterator<Item = &'a Span>) -> Self {
        let mut out: Vec<(&Resource, Vec<ScopeGroup>)> = Vec::new();
        for s in spans {
            let at = match out.iter().position(|(r, _)| **r == *s.resource) {
                Some(at) => at,
                None => {
                    out.push((&s.resource, Vec::new()));
                    out.len() - 1
                }
            };
            let scopes = &mut out[at].1;
            match scopes.iter_mut().find(|(sc, _)| **sc == *s.scope) {
                Some((_, spans)) => spans.push(s),
                None => scopes.push((&s.scope, vec![s])),
            }
        }
        Self(out)
    }
}

/// `/api/traces/{id}`: `{"batches": […]}`.
#[derive(Serialize)]
pub struct TraceV1<'a> {
    pub batches: &'a ResourceSpansList<'a>,
}

/// `/api/v2/traces/{id}`: `{"trace": {"resourceSpans": […]}, "status": "COMPLETE"}`.
#[derive(Serialize)]
pub struct TraceV2<'a> {
    pub trace: TraceBody<'a>,
    pub status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceBody<'a> {
    pub resource_spans: &'a ResourceSpansList<'a>,
}

pub struct ResourceSpansList<'a>(pub &'a Batches<'a>);

impl Serialize for ResourceSpansList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.0.len()))?;
        for (resource, scopes) in &self.0.0 {
            seq.serialize_element(&ResourceSpans { resource, scopes })?;
        }
        seq.end()
    }
}

struct ResourceSpans<'a> {
    resource: &'a Resource,
    scopes: &'a [ScopeGroup<'a>],
}

impl Serialize for ResourceSpans<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ScopeSpans<'a> {
            scope: ScopeJson<'a>,
            spans: Vec<SpanJson<'a>>,
        }
        #[derive(Serialize)]
        struct ScopeJson<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            version: &'a str,
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("resource", &AttributesOnly(&self.resource.attributes))?;
        let scopes: Vec<ScopeSpans> = self
            .scopes
            .iter()
            .map(|(scope, spans)| ScopeSpans {
                scope: ScopeJson { name: &scope.name, version: &scope.version },
                spans: spans.iter().map(|s| SpanJson(s)).collect(),
            })
            .collect();
        m.serialize_entry("scopeSpans", &scopes)?;
        m.end()
    }
}

struct AttributesOnly<'a>(&'a Attributes);

impl Serialize for AttributesOnly<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("attributes", &KeyValues(self.0))?;
        m.end()
    }
}

struct SpanJson<'a>(&'a Span);

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Event<'a> {
            time_unix_nano: Text<u64>,
            name: &'a str,
            attributes: KeyValues<'a>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Link<'a> {
            trace_id: String,
            span_id: String,
            #[serde(skip_serializing_if = "str::is_empty")]
            trace_state: &'a str,
            attributes: KeyValues<'a>,
        }
        #[derive(Serialize)]
        struct Status<'a> {
            code: u8,
            #[serde(skip_serializing_if = "str::is_empty")]
            message: &'a str,
        }
        let sp = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("traceId", &sp.trace_id.to_hex())?;
        m.serialize_entry("spanId", &sp.span_id.to_hex())?;
        if let Some(p) = sp.parent_span_id {
            m.serialize_entry("parentSpanId", &p.to_hex())?;
        }
        if !sp.trace_state.is_empty() {
            m.serialize_entry("traceState", &sp.trace_state)?;
        }
        if sp.flags != 0 {
            m.serialize_entry("flags", &sp.flags)?;
        }
        m.serialize_entry("name", &sp.name)?;
        m.serialize_entry("kind", &(sp.kind as u8))?;
        m.serialize_entry("startTimeUnixNano", &Text(sp.start_unix_nano))?;
        m.serialize_entry("endTimeUnixNano", &Text(sp.end_unix_nano))?;
        m.serialize_entry("attributes", &KeyValues(&sp.attributes))?;
        let events: Vec<Event> = sp
            .events
            .iter()
            .map(|e| Event {
                time_unix_nano: Text(e.time_unix_nano),
                name: &e.name,
                attributes: KeyValues(&e.attributes),
            })
            .collect();
        if !events.is_empty() {
            m.serialize_entry("events", &events)?;
        }
        let links: Vec<Link> = sp
            .links
            .iter()
            .map(|l| Link {
                trace_id: l.trace_id.to_hex(),
                span_id: l.span_id.to_hex(),
                trace_state: &l.trace_state,
                attributes: KeyValues(&l.attributes),
            })
            .collect();
        if !links.is_empty() {
            m.serialize_entry("links", &links)?;
        }
        m.serialize_entry("status", &Status { code: sp.status_code as u8, message: &sp.status_message })?;
        m.end()
    }
}

/// OTLP/JSON `KeyValue`s.
pub struct KeyValues<'a>(pub &'a Attributes);

impl Serialize for KeyValues<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.0.len()))?;
        for (key, value) in &self.0.0 {
            seq.serialize_element(&KeyValue { key, value: AnyValue(value) })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct KeyValue<'a> {
    key: &'a str,
    value: AnyValue<'a>,
}

/// OTLP/JSON `AnyValue`.
struct AnyValue<'a>(&'a AttrValue);

impl Serialize for AnyValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Values<T> {
            values: T,
        }
        let mut m = s.serialize_map(Some(1))?;
        match self.0 {
            AttrValue::Empty => {}
            AttrValue::Str(v) => m.serialize_entry("stringValue", v)?,
            AttrValue::Bool(v) => m.serialize_entry("boolValue", v)?,
            AttrValue::Int(v) => m.serialize_entry("intValue", &Text(v))?,
            AttrValue::Double(v) => m.serialize_entry("doubleValue", v)?,
            AttrValue::Bytes(v) => {
                use base64::Engine;
                m.serialize_entry("bytesValue", &base64::engine::general_purpose::STANDARD.encode(v))?
            }
            AttrValue::Array(items) => {
                let values: Vec<AnyValue> = items.iter().map(AnyValue).collect();
                m.serialize_entry("arrayValue", &Values { values })?
            }
            AttrValue::Map(kv) => m.serialize_entry("kvlistValue", &Values { values: KeyValues(kv) })?,
        }
        m.end()
    }
}

/// A search answer.
#[derive(Serialize)]
pub struct SearchResponse<'a> {
    pub traces: Vec<TraceSummary<'a>>,
    pub metrics: Metrics,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub inspected_traces: usize,
    pub inspected_bytes: Text<u64>,
    pub completed_jobs: u32,
    pub total_jobs: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary<'a> {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub root_service_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_trace_name: Option<&'a str>,
    pub start_time_unix_nano: Text<u64>,
    pub duration_ms: u64,
    /// The first of `spanSets` (older clients read this one).
    pub span_set: SpanSet<'a>,
    pub span_sets: [SpanSet<'a>; 1],
}

#[derive(Clone, Serialize)]
pub struct SpanSet<'a> {
    pub spans: Vec<SpanSummary<'a>>,
    pub matched: usize,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanSummary<'a> {
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub name: &'a str,
    pub start_time_unix_nano: Text<u64>,
    pub duration_nanos: Text<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Field<'a>>,
}

/// A field a search shows on a span, as an OTLP/JSON key and value.
#[derive(Clone)]
pub struct Field<'a> {
    pub key: String,
    pub value: Got<'a>,
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Value<'b>(&'b Got<'b>);
        impl Serialize for Value<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(1))?;
                match self.0 {
                    Got::Str(v) => m.serialize_entry("stringValue", v)?,
                    Got::Int(v) => m.serialize_entry("intValue", &Text(v))?,
                    Got::Float(v) => m.serialize_entry("doubleValue", v)?,
                    Got::Bool(v) => m.serialize_entry("boolValue", v)?,
                    Got::Duration(v) => m.serialize_entry("stringValue", &format!("{v}ns"))?,
                    Got::Status(v) => m.serialize_entry("stringValue", status_name(*v))?,
                    Got::Kind(v) => m.serialize_entry("stringValue", kind_name(*v))?,
                    Got::Other | Got::Nil => {}
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("key", &self.key)?;
        m.serialize_entry("value", &Value(&self.value))?;
        m.end()
    }
}

/// `/api/v2/search/tags`.
#[derive(Serialize)]
pub struct TagScopes {
    pub scopes: Vec<TagScope>,
}

#[derive(Serialize)]
pub struct TagScope {
    pub name: &'static str,
    pub tags: Vec<String>,
}

/// `/api/search/tags`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagNames {
    pub tag_names: Vec<String>,
}

/// `/api/v2/search/tag/{tag}/values`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypedTagValues {
    pub tag_values: Vec<TypedValue>,
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct TypedValue {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

/// `/api/search/tag/{tag}/values`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagValues {
    pub tag_values: Vec<String>,
}
