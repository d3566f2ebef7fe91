//! The log index schema, the documents built from records, and the stored
//! form of a record (returned by searches).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tantivy::schema::{
    BytesOptions, FAST, Field, IndexRecordOption, JsonObjectOptions, NumericOptions, OwnedValue, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, TextAnalyzer, TokenizerManager};
use tantivy::{Index, TantivyDocument};

use super::tokenizer::CodeTokenizer;
use crate::model::{AttrValue, Attributes, LogRecord, Resource, Scope, SpanId, Tenant, TraceId};
use crate::typed_json::{self, Typed, TypedAttributes};

/// The tokenizer name of the body field.
pub const BODY_TOKENIZER: &str = "sightline_body";
/// Tokens longer than this are not indexed (hashes and blobs, not words).
const MAX_TOKEN_LEN: usize = 100;

/// The resource attribute kept in its own raw, fast column besides `service`.
pub const HOST_ATTRIBUTE: &str = "host.name";

/// The fields of a log index.
#[derive(Clone, Debug)]
pub struct LogFields {
    pub tenant: Field,
    pub timestamp: Field,
    /// Position of the record in the WAL (sequence << 20 | index in batch):
    /// orders records with equal timestamps, for stable paging.
    pub seq: Field,
    pub severity: Field,
    pub severity_text: Field,
    pub service: Field,
    pub host: Field,
    pub scope: Field,
    /// Raw bytes.
    pub trace_id: Field,
    /// The 8 bytes as a big-endian `u64` in a fast column; `None` in
    /// partitions written before span ids were kept so.
    pub span_id: Option<Field>,
    pub event_name: Field,
    pub body: Field,
    pub attributes: Field,
    pub resource: Field,
    /// The whole record, stored (zstd-compressed by the doc store).
    pub record: Field,
}

impl LogFields {
    pub fn schema() -> (Schema, LogFields) {
        // Nothing is scored (hits come in time order), so no field keeps norms.
        let mut b = Schema::builder();
        let indexing = |tokenizer: &str, record| {
            TextFieldIndexing::default().set_tokenizer(tokenizer).set_index_option(record).set_fieldnorms(false)
        };
        let raw = || TextOptions::default().set_indexing_options(indexing("raw", IndexRecordOption::Basic));
        let body = TextOptions::default()
            .set_indexing_options(indexing(BODY_TOKENIZER, IndexRecordOption::WithFreqsAndPositions));
        let json = || {
            JsonObjectOptions::default()
                .set_indexing_options(indexing("raw", IndexRecordOption::Basic))
                .set_expand_dots_enabled()
        };
        let fields = LogFields {
            tenant: b.add_text_field("tenant", raw()),
            // Ranges and order come from the fast column; a term per
            // nanosecond would cost more than the line.
            timestamp: b.add_i64_field("timestamp", FAST),
            seq: b.add_u64_field("seq", FAST),
            severity: b.add_u64_field("severity", NumericOptions::default().set_indexed().set_fast()),
            severity_text: b.add_text_field("severity_text", raw()),
            service: b.add_text_field("service", raw().set_fast("raw")),
            host: b.add_text_field("host", raw().set_fast("raw")),
            scope: b.add_text_field("scope", raw()),
            // The 16 bytes, not 32 hex digits: half the terms' size.
            trace_id: b.add_bytes_field("trace_id", BytesOptions::default().set_indexed()),
            // A fast column, not terms: a unique term a line cost 14 B a
            // line on the suite's data, the column about a quarter of it,
            // and a search by span id (rare) scans it.
            span_id: Some(b.add_u64_field("span_id", FAST)),
            event_name: b.add_text_field("event_name", raw()),
            body: b.add_text_field("body", body),
            attributes: b.add_json_field("attributes", json()),
            resource: b.add_json_field("resource", json()),
            record: b.add_bytes_field("record", BytesOptions::default().set_stored()),
        };
        (b.build(), fields)
    }

    /// Finds the fields of an index created with [`LogFields::schema`].
    pub fn of(schema: &Schema) -> tantivy::Result<LogFields> {
        let f = |name| schema.get_field(name);
        Ok(LogFields {
            tenant: f("tenant")?,
            timestamp: f("timestamp")?,
            seq: f("seq")?,
            severity: f("severity")?,
            severity_text: f("severity_text")?,
            service: f("service")?,
            host: f("host")?,
            scope: f("scope")?,
            trace_id: f("trace_id")?,
            span_id: f("span_id").ok(),
            event_name: f("event_name")?,
            body: f("body")?,
            attributes: f("attributes")?,
            resource: f("resource")?,
            record: f("record")?,
        })
    }

    /// The index document of one record.
    pub fn document(&self, tenant: &Tenant, seq: u64, r: &LogRecord) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        d.add_text(self.tenant, tenant.as_str());
        d.add_i64(self.timestamp, clamp_i64(r.time_unix_nano));
        d.add_u64(self.seq, seq);
        d.add_u64(self.severity, u64::from(r.severity_number));
        if !r.severity_text.is_empty() {
            d.add_text(self.severity_text, &r.severity_text);
        }
        d.add_text(self.service, &r.resource.service);
        if let Some(host) = r.resource.attributes.get_str(HOST_ATTRIBUTE) {
            d.add_text(self.host, host);
        }
        if !r.scope.name.is_empty() {
            d.add_text(self.scope, &r.scope.name);
        }
        if let Some(t) = &r.trace_id {
            d.add_bytes(self.trace_id, &t.0);
        }
        if let (Some(field), Some(s)) = (self.span_id, &r.span_id) {
            d.add_u64(field, u64::from_be_bytes(s.0));
        }
        if !r.event_name.is_empty() {
            d.add_text(self.event_name, &r.event_name);
        }
        match &r.body {
            AttrValue::Str(s) => d.add_text(self.body, s),
            AttrValue::Empty => {}
            other => d.add_text(self.body, other.to_text()),
        }
        if !r.attributes.0.is_empty() {
            d.add_object(self.attributes, json_object(&r.attributes));
        }
        if !r.resource.attributes.0.is_empty() {
            d.add_object(self.resource, json_object(&r.resource.attributes));
        }
        d.add_bytes(self.record, &encode_record(r));
        d
    }
}

/// The analyzer of the body field: identifiers whole, lower-cased.
pub fn body_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(CodeTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_LEN))
        .filter(LowerCaser)
        .build()
}

/// Registers the body tokenizer on an index (needed at every open).
pub fn register_tokenizers(index: &Index) {
    let manager: &TokenizerManager = index.tokenizers();
    manager.register(BODY_TOKENIZER, body_analyzer());
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn json_object(attrs: &Attributes) -> BTreeMap<String, OwnedValue> {
    attrs.0.iter().map(|(k, v)| (k.clone(), owned_value(v))).collect()
}

fn owned_value(v: &AttrValue) -> OwnedValue {
    match v {
        AttrValue::Empty => OwnedValue::Null,
        AttrValue::Str(s) => OwnedValue::Str(s.clone()),
        AttrValue::Bool(b) => OwnedValue::Bool(*b),
        AttrValue::Int(i) => OwnedValue::I64(*i),
        AttrValue::Double(d) => OwnedValue::F64(*d),
        AttrValue::Bytes(b) => OwnedValue::Str(hex::encode(b)),
        AttrValue::Array(items) => OwnedValue::Array(items.iter().map(owned_value).collect()),
        AttrValue::Map(m) => OwnedValue::Object(m.0.iter().map(|(k, v)| (k.clone(), owned_value(v))).collect()),
    }
}

/// The stored form of a record: compact JSON that keeps every type,
/// written straight from the record.
pub fn encode_record(r: &LogRecord) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        t: u64,
        o: u64,
        n: u8,
        s: &'a str,
        b: Typed<'a>,
        a: TypedAttributes<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tr: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sp: Option<String>,
        e: &'a str,
        rs: &'a str,
        ra: TypedAttributes<'a>,
        sn: &'a str,
        sv: &'a str,
    }
    let stored = Stored {
        t: r.time_unix_nano,
        o: r.observed_unix_nano,
        n: r.severity_number,
        s: &r.severity_text,
        b: Typed(&r.body),
        a: TypedAttributes(&r.attributes),
        tr: r.trace_id.map(|t| t.to_hex()),
        sp: r.span_id.map(|s| s.to_hex()),
        e: &r.event_name,
        rs: &r.resource.service,
        ra: TypedAttributes(&r.resource.attributes),
        sn: &r.scope.name,
        sv: &r.scope.version,
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// Reads what [`encode_record`] wrote; `None` if it is not such a record.
pub fn decode_record(bytes: &[u8]) -> Option<LogRecord> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(LogRecord {
        time_unix_nano: v.get("t")?.as_u64()?,
        observed_unix_nano: v.get("o").and_then(Value::as_u64).unwrap_or_default(),
        severity_number: v.get("n").and_then(Value::as_u64).and_then(|n| u8::try_from(n).ok()).unwrap_or_default(),
        severity_text: text("s"),
        body: v.get("b").map(typed_json::value).unwrap_or(AttrValue::Empty),
        attributes: typed_json::attributes(v.get("a")),
        trace_id: v.get("tr").and_then(Value::as_str).and_then(|s| s.parse::<TraceId>().ok()),
        span_id: v.get("sp").and_then(Value::as_str).and_then(|s| s.parse::<SpanId>().ok()),
        event_name: text("e"),
        resource: Arc::new(Resource { service: text("rs"), attributes: typed_json::attributes(v.get("ra")) }),
        scope: Arc::new(Scope { name: text("sn"), version: text("sv") }),
    })
}
