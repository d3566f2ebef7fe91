//! Spans ⇄ Arrow record batches: the columns of a span part.
//!
//! Typed columns throughout: 16- and 8-byte ids, integer kind and status,
//! int64 nanosecond start and duration, dictionary-encoded service, name and
//! scope, dedicated columns for hot attributes (`http.request.method`,
//! `http.route`, `http.response.status_code`, `db.system`, `rpc.service`),
//! every other attribute in a typed key/value list, and the resource as its
//! place in a table kept beside the rows ([`super::resources`]; parts before
//! version 3 hold a `resource_attributes` list on every row instead, which
//! [`from_batch`] still reads).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, FixedSizeBinaryArray, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StringDictionaryBuilder, StructArray, UInt8Array, UInt32Array, new_empty_array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, UInt32Type};

use super::kv::{self, AttrReader, SplitColumns, StructColumns};
use super::resources::{self, ResourceTable, Resources};
use crate::model::{
    AttrValue, Attributes, Resource, Scope, Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, TraceId,
};

/// Span rows in [`schema`] and the resources their `resource` column
/// points into.
#[derive(Clone, Debug)]
pub struct SpanBatch {
    pub rows: RecordBatch,
    pub resources: Resources,
}

/// Hot attributes with their own column: (attribute key, column name).
pub(super) const HOT_STR: [(&str, &str); 4] = [
    ("http.request.method", "http_method"),
    ("http.route", "http_route"),
    ("db.system", "db_system"),
    ("rpc.service", "rpc_service"),
];
pub(super) const HOT_STATUS: (&str, &str) = ("http.response.status_code", "http_status");

/// The column a hot attribute's string values (or, for the status code,
/// its int32 values) are kept in, outside the `attributes` list.
pub(super) fn hot_column(key: &str) -> Option<&'static str> {
    HOT_STR.iter().chain(std::iter::once(&HOT_STATUS)).find(|(k, _)| *k == key).map(|(_, c)| *c)
}

/// Repetitive strings (service, name, scope, hot attributes). Parquet
/// dictionary-encodes them on disk, and a part's Arrow schema keeps them
/// plain; a head chunk holds them as a dictionary of its own, so that a
/// span in memory costs an index, not a copy of each string. (Readers cast
/// any string column to plain strings, so both read the same.)
fn text(head: bool) -> DataType {
    if head { DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8)) } else { DataType::Utf8 }
}

fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time_unix_nano", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", kv::struct_list(), false),
    ])
}

fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("attributes", kv::struct_list(), false),
    ])
}

/// The Arrow schema of a span part, format version 5 (built once).
pub fn schema() -> SchemaRef {
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| schema_with(false));
    SCHEMA.clone()
}

/// The schema of a head chunk: a part's, with the repetitive strings and
/// the attribute shapes as dictionaries of the chunk's own ([`part_layout`]
/// turns them back). Built once: every chunk packed or unpacked takes it.
pub(super) fn head_schema() -> SchemaRef {
    static SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| schema_with(true));
    SCHEMA.clone()
}

/// Rows of a head chunk (or of a part) in [`schema`]: the chunk's
/// dictionaries expanded.
pub(super) fn part_layout(rows: RecordBatch) -> Result<RecordBatch, ColumnError> {
    let schema = schema();
    if rows.schema().fields() == schema.fields() {
        return Ok(rows);
    }
    let columns = schema
        .fields()
        .iter()
        .zip(rows.columns())
        .map(|(field, column)| {
            if column.data_type() == field.data_type() {
                return Ok(column.clone());
            }
            arrow::compute::cast(column, field.data_type()).map_err(|e| bad(field.name(), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns).map_err(|e| bad("span rows", e.to_string()))
}

fn schema_with(head: bool) -> SchemaRef {
    let dict = || text(head);
    let mut fields = vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new("start_unix_nano", DataType::Int64, false),
        Field::new("duration_nanos", DataType::Int64, false),
        Field::new("service", dict(), false),
        Field::new("name", dict(), false),
        Field::new("kind", DataType::UInt8, false),
        Field::new("status_code", DataType::UInt8, false),
        Field::new("status_message", DataType::Utf8, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
    ];
    fields.extend(HOT_STR.iter().map(|(_, col)| Field::new(*col, dict(), true)));
    fields.push(Field::new(HOT_STATUS.1, DataType::Int32, true));
    fields.extend([
        if head { kv::head_key_field() } else { kv::split_key_field() },
        Field::new("resource", DataType::UInt32, false),
        Field::new("scope_name", dict(), false),
        Field::new("scope_version", dict(), false),
        Field::new(
            "events",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(event_fields()), false))),
            false,
        ),
        Field::new(
            "links",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(link_fields()), false))),
            false,
        ),
    ]);
    fields.extend(kv::split_value_fields());
    Arc::new(Schema::new(fields))
}

fn fixed<const N: usize>(values: impl Iterator<Item = [u8; N]>) -> FixedSizeBinaryArray {
    let values: Vec<[u8; N]> = values.collect();
    if values.is_empty() {
        return FixedSizeBinaryArray::new_null(N as i32, 0);
    }
    FixedSizeBinaryArray::try_from_iter(values.into_iter())
        .unwrap_or_else(|_| FixedSizeBinaryArray::new_null(N as i32, 0))
}

/// Encodes spans as one head chunk ([`head_schema`]), in the order given.
pub fn to_batch(spans: &[&Span]) -> Result<SpanBatch, arrow::error::ArrowError> {
    let mut attrs = SplitColumns::with_capacity(spans.len());
    let mut table = ResourceTable::default();
    let mut resource = Vec::with_capacity(spans.len());
    let mut hot_str: [Vec<Option<&str>>; 4] = Default::default();
    let mut hot_status = Vec::with_capacity(spans.len());
    let offsets = || {
        let mut offsets = Vec::with_capacity(spans.len() + 1);
        offsets.push(0i32);
        offsets
    };
    let mut event_offsets = offsets();
    let (mut event_times, mut event_names, mut event_attrs) = (Vec::new(), Vec::new(), StructColumns::new());
    let mut link_offsets = offsets();
    let (mut link_traces, mut link_spans, mut link_states, mut link_attrs) =
        (Vec::new(), Vec::new(), Vec::new(), StructColumns::new());
    for s in spans.iter().copied() {
        let mut rest = Vec::with_capacity(s.attributes.0.len());
        let mut status = None;
        let mut hot: [Option<&str>; 4] = Default::default();
        for kv in &s.attributes.0 {
            match (&kv.1, HOT_STR.iter().position(|(k, _)| *k == kv.0)) {
                (AttrValue::Str(v), Some(i)) if hot[i].is_none() => hot[i] = Some(v.as_str()),
                (AttrValue::Int(v), None) if kv.0 == HOT_STATUS.0 && status.is_none() && i32::try_from(*v).is_ok() => {
                    status = i32::try_from(*v).ok()
                }
                _ => rest.push(kv),
            }
        }
        for (col, v) in hot_str.iter_mut().zip(hot) {
            col.push(v);
        }
        hot_status.push(status);
        attrs.push(rest);
        resource.push(table.id(&s.resource));
        for e in &s.events {
            event_times.push(e.time_unix_nano as i64);
            event_names.push(e.name.as_str());
            event_attrs.push(&e.attributes.0);
        }
        event_offsets.push(event_times.len() as i32);
        for l in &s.links {
            link_traces.push(l.trace_id.0);
            link_spans.push(l.span_id.0);
            link_states.push(l.trace_state.as_str());
            link_attrs.push(&l.attributes.0);
        }
        link_offsets.push(link_traces.len() as i32);
    }
    let events = StructArray::new(
        event_fields(),
        vec![
            Arc::new(Int64Array::from(event_times)),
            Arc::new(StringArray::from(event_names)),
            Arc::new(event_attrs.finish()),
        ],
        None,
    );
    let links = StructArray::new(
        link_fields(),
        vec![
            Arc::new(fixed(link_traces.into_iter())),
            Arc::new(fixed(link_spans.into_iter())),
            Arc::new(StringArray::from(link_states)),
            Arc::new(link_attrs.finish()),
        ],
        None,
    );
    let dict_of =
        |f: &dyn Fn(&Span) -> &str| -> ArrayRef { Arc::new(dictionary(spans.len(), spans.iter().map(|s| Some(f(s))))) };
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(fixed(spans.iter().map(|s| s.trace_id.0))),
        Arc::new(fixed(spans.iter().map(|s| s.span_id.0))),
        Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
            spans.iter().map(|s| s.parent_span_id.map(|p| p.0)),
            8,
        )?),
        Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.start_unix_nano as i64))),
        Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.duration_nanos() as i64))),
        dict_of(&|s| &s.resource.service),
        dict_of(&|s| &s.name),
        Arc::new(UInt8Array::from_iter_values(spans.iter().map(|s| s.kind as u8))),
        Arc::new(UInt8Array::from_iter_values(spans.iter().map(|s| s.status_code as u8))),
        Arc::new(StringArray::from_iter_values(spans.iter().map(|s| &s.status_message))),
        Arc::new(StringArray::from_iter_values(spans.iter().map(|s| &s.trace_state))),
        Arc::new(UInt32Array::from_iter_values(spans.iter().map(|s| s.flags))),
    ];
    for col in hot_str {
        columns.push(Arc::new(dictionary(spans.len(), col.iter().copied())));
    }
    columns.push(Arc::new(Int32Array::from(hot_status)));
    // Most chunks hold no event or link at all: their lists then keep no
    // buffers beyond the offsets (the builders' spare capacity took some
    // 40 bytes a span).
    let list_of = |fields: Fields, offsets: Vec<i32>, values: StructArray| -> ArrayRef {
        let item = DataType::Struct(fields);
        let values: ArrayRef = if values.is_empty() { new_empty_array(&item) } else { Arc::new(values) };
        Arc::new(ListArray::new(
            Arc::new(Field::new("item", item, false)),
            OffsetBuffer::new(offsets.into()),
            values,
            None,
        ))
    };
    let [keys, values @ ..] = attrs.finish();
    columns.extend([
        keys,
        Arc::new(UInt32Array::from(resource)),
        dict_of(&|s| &s.scope.name),
        dict_of(&|s| &s.scope.version),
        list_of(event_fields(), event_offsets, events),
        list_of(link_fields(), link_offsets, links),
    ]);
    columns.extend(values);
    Ok(SpanBatch { rows: RecordBatch::try_new(head_schema(), columns)?, resources: table.finish() })
}

/// A chunk's strings as a dictionary, its buffers sized for a chunk's
/// few distinct values (collecting into one reserves room for a thousand).
fn dictionary<'a>(rows: usize, values: impl Iterator<Item = Option<&'a str>>) -> DictionaryArray<UInt32Type> {
    let mut builder = StringDictionaryBuilder::<UInt32Type>::with_capacity(rows, 16, 256);
    for v in values {
        builder.append_option(v);
    }
    builder.finish()
}

#[derive(Debug, thiserror::Error)]
#[error("span part column {column}: {problem}")]
pub struct ColumnError {
    column: String,
    problem: String,
}

pub(super) fn bad(column: &str, problem: impl Into<String>) -> ColumnError {
    ColumnError { column: column.to_owned(), problem: problem.into() }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ColumnError> {
    batch.column_by_name(name).ok_or_else(|| bad(name, "missing"))
}

pub(super) fn typed<'a, T: 'static>(array: &'a dyn Array, name: &str) -> Result<&'a T, ColumnError> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| bad(name, format!("unexpected type {}", array.data_type())))
}

/// Any string column (plain or dictionary) as plain strings.
pub(super) fn strings(array: &dyn Array, name: &str) -> Result<StringArray, ColumnError> {
    let cast = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| bad(name, e.to_string()))?;
    Ok(typed::<StringArray>(cast.as_ref(), name)?.clone())
}

pub(super) fn fixed_at<const N: usize>(array: &FixedSizeBinaryArray, i: usize) -> [u8; N] {
    array.value(i).try_into().unwrap_or([0; N])
}

/// Where the rows of a batch find their resources.
enum RowResource<'a> {
    /// A place in the batch's table (version 3).
    Place(&'a UInt32Array, &'a [Arc<Resource>]),
    /// A list on every row (versions 1 and 2).
    List(Box<AttrReader>),
}

/// Decodes span rows back into spans; `resources` is the table their
/// `resource` column points into (unused by rows of a part before version
/// 3, which hold their resource attributes).
pub fn from_batch(batch: &RecordBatch, resources: &[Arc<Resource>]) -> Result<Vec<Span>, ColumnError> {
    let fixed_col = |name: &str| -> Result<FixedSizeBinaryArray, ColumnError> {
        Ok(typed::<FixedSizeBinaryArray>(column(batch, name)?.as_ref(), name)?.clone())
    };
    let str_col = |name: &str| strings(column(batch, name)?.as_ref(), name);
    let (trace_ids, span_ids, parents) = (fixed_col("trace_id")?, fixed_col("span_id")?, fixed_col("parent_span_id")?);
    let starts = typed::<Int64Array>(column(batch, "start_unix_nano")?.as_ref(), "start_unix_nano")?;
    let durations = typed::<Int64Array>(column(batch, "duration_nanos")?.as_ref(), "duration_nanos")?;
    let kinds = typed::<UInt8Array>(column(batch, "kind")?.as_ref(), "kind")?;
    let statuses = typed::<UInt8Array>(column(batch, "status_code")?.as_ref(), "status_code")?;
    let flags = typed::<UInt32Array>(column(batch, "flags")?.as_ref(), "flags")?;
    let http_status = typed::<Int32Array>(column(batch, HOT_STATUS.1)?.as_ref(), HOT_STATUS.1)?;
    let (services, names, messages, states) =
        (str_col("service")?, str_col("name")?, str_col("status_message")?, str_col("trace_state")?);
    let (scope_names, scope_versions) = (str_col("scope_name")?, str_col("scope_version")?);
    let hot: Vec<StringArray> = HOT_STR.iter().map(|(_, c)| str_col(c)).collect::<Result<_, _>>()?;
    let attrs = AttrReader::of_spans(batch)?;
    let row_resource = match batch.column_by_name("resource") {
        Some(places) => RowResource::Place(typed::<UInt32Array>(places.as_ref(), "resource")?, resources),
        None => RowResource::List(Box::new(AttrReader::of_structs(
            column(batch, "resource_attributes")?.as_ref(),
            "resource_attributes",
        )?)),
    };

    let events = typed::<ListArray>(column(batch, "events")?.as_ref(), "events")?;
    let event_values = typed::<StructArray>(events.values().as_ref(), "events")?;
    let event_times = typed::<Int64Array>(event_values.column(0).as_ref(), "events")?;
    let event_names = strings(event_values.column(1).as_ref(), "events")?;
    let event_attrs = AttrReader::of_structs(event_values.column(2).as_ref(), "events")?;
    let links = typed::<ListArray>(column(batch, "links")?.as_ref(), "links")?;
    let link_values = typed::<StructArray>(links.values().as_ref(), "links")?;
    let link_traces = typed::<FixedSizeBinaryArray>(link_values.column(0).as_ref(), "links")?;
    let link_spans = typed::<FixedSizeBinaryArray>(link_values.column(1).as_ref(), "links")?;
    let link_states = strings(link_values.column(2).as_ref(), "links")?;
    let link_attrs = AttrReader::of_structs(link_values.column(3).as_ref(), "links")?;

    let mut out = Vec::with_capacity(batch.num_rows());
    let mut last_resource: Option<Arc<Resource>> = None;
    let mut last_scope: Option<Arc<Scope>> = None;
    for row in 0..batch.num_rows() {
        let mut attributes = Vec::new();
        for (i, (key, _)) in HOT_STR.iter().enumerate() {
            if hot[i].is_valid(row) {
                attributes.push(((*key).to_owned(), AttrValue::Str(hot[i].value(row).to_owned())));
            }
        }
        if http_status.is_valid(row) {
            attributes.push((HOT_STATUS.0.to_owned(), AttrValue::Int(i64::from(http_status.value(row)))));
        }
        attributes.extend(attrs.row(row).0);
        let resource = match &row_resource {
            RowResource::Place(places, table) => {
                let place = places.value(row);
                table
                    .get(place as usize)
                    .cloned()
                    .ok_or_else(|| bad("resource", resources::out_of_table(place).to_string()))?
            }
            // Consecutive spans of one resource and scope share them, as on ingest.
            RowResource::List(lists) => {
                let resource = Resource { service: services.value(row).to_owned(), attributes: lists.row(row) };
                match &last_resource {
                    Some(r) if **r == resource => r.clone(),
                    _ => Arc::new(resource),
                }
            }
        };
        last_resource = Some(resource.clone());
        let scope = Scope { name: scope_names.value(row).to_owned(), version: scope_versions.value(row).to_owned() };
        let scope = match &last_scope {
            Some(s) if **s == scope => s.clone(),
            _ => Arc::new(scope),
        };
        last_scope = Some(scope.clone());
        let (e0, e1) = (events.value_offsets()[row] as usize, events.value_offsets()[row + 1] as usize);
        let (l0, l1) = (links.value_offsets()[row] as usize, links.value_offsets()[row + 1] as usize);
        let start = starts.value(row) as u64;
        out.push(Span {
            trace_id: TraceId(fixed_at(&trace_ids, row)),
            span_id: SpanId(fixed_at(&span_ids, row)),
            parent_span_id: parents.is_valid(row).then(|| SpanId(fixed_at(&parents, row))),
            trace_state: states.value(row).to_owned(),
            flags: flags.value(row),
            name: names.value(row).to_owned(),
            kind: SpanKind::from_otlp(i32::from(kinds.value(row))),
            start_unix_nano: start,
            end_unix_nano: start + durations.value(row) as u64,
            status_code: StatusCode::from_otlp(i32::from(statuses.value(row))),
            status_message: messages.value(row).to_owned(),
            attributes: Attributes(attributes),
            events: (e0..e1)
                .map(|i| SpanEvent {
                    time_unix_nano: event_times.value(i) as u64,
                    name: event_names.value(i).to_owned(),
                    attributes: event_attrs.row(i),
                })
                .collect(),
            links: (l0..l1)
                .map(|i| SpanLink {
                    trace_id: TraceId(fixed_at(link_traces, i)),
                    span_id: SpanId(fixed_at(link_spans, i)),
                    trace_state: link_states.value(i).to_owned(),
                    attributes: link_attrs.row(i),
                })
                .collect(),
            resource,
            scope,
        });
    }
    Ok(out)
}
