//! A part's trace table (format version 2; edges from 4): one row per trace of the part,
//! so that a search reads a few small columns instead of every span.
//!
//! ```text
//! spans/<tenant>/<id>.traces.parquet   rows newest latest start first; zstd;
//!                                      row groups of TABLE_ROWS, statistics
//!   trace_id, latest_start (ns), earliest_offset_us, end_offset_us, spans,
//!   services, errors, min_duration, max_duration   (lists, one entry a service)
//!   operations                                     (list of "service\0name")
//!   complete, edge_parents, edge_children,         (format version 4: the
//!   edge_calls, edge_errors                         trace's service graph)
//! ```
//!
//! From format version 4 a row also holds the trace's service-graph edges
//! within the part (parent and child as places in the row's `services`, the
//! calls and the failed calls), and `complete`: whether every span's parent
//! is in the part too. The dependency graph adds up the edges of complete
//! traces that lie wholly in its time range, and reads the spans only of
//! the others ([`edge_rows`]).
//!
//! A row summarises a trace's spans: when its latest span starts, how much
//! earlier (in whole microseconds, rounded up) its earliest span starts and
//! how much later its last span ends, and per service whether a span failed
//! and the shortest and longest span, as duration buckets rounded down and
//! up. A span that matches a [`SpanQuery`] (without attribute conditions)
//! always lies in a trace whose row admits the query, so the rows that admit
//! it name every trace that may match, each with an upper bound of its
//! latest matching start ([`candidates`]). Rows come newest first, so a row
//! group's statistics bound every row in it ([`groups`]): a search reads
//! the groups best bound first, verifies their candidates newest first, and
//! stops as soon as no bound left can beat what it holds.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, FixedSizeBinaryArray, FixedSizeBinaryBuilder, Int64Array,
    Int64Builder, ListArray, ListBuilder, RecordBatch, StringArray, StringBuilder, UInt8Array, UInt8Builder,
    UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;

use super::part::{PartMeta, parquet_err};
use super::query::SpanQuery;
use crate::StorageError;
use crate::model::{StatusCode, TraceId};
use crate::object_reader::ObjectReader;

/// Rows per row group and per batch written (few in tests, so that a
/// search there crosses many groups).
const TABLE_ROWS: usize = if cfg!(test) { 64 } else { 8192 };

const TRACE: &str = "trace_id";
const LATEST: &str = "latest_start";
const EARLIEST: &str = "earliest_offset_us";
const END: &str = "end_offset_us";
const SPANS: &str = "spans";
const SERVICES: &str = "services";
const ERRORS: &str = "errors";
const MIN_DURATION: &str = "min_duration";
const MAX_DURATION: &str = "max_duration";
const OPERATIONS: &str = "operations";
const COMPLETE: &str = "complete";
const EDGE_PARENTS: &str = "edge_parents";
const EDGE_CHILDREN: &str = "edge_children";
const EDGE_CALLS: &str = "edge_calls";
const EDGE_ERRORS: &str = "edge_errors";

pub fn path(tenant: &str, id: &str) -> Path {
    Path::from(format!("spans/{tenant}/{id}.traces.parquet"))
}

fn item(data_type: DataType) -> FieldRef {
    Arc::new(Field::new("item", data_type, false))
}

fn schema() -> SchemaRef {
    let list = |name: &str, data_type: DataType| Field::new(name, DataType::List(item(data_type)), false);
    Arc::new(Schema::new(vec![
        Field::new(TRACE, DataType::FixedSizeBinary(16), false),
        Field::new(LATEST, DataType::Int64, false),
        Field::new(EARLIEST, DataType::Int64, false),
        Field::new(END, DataType::Int64, false),
        Field::new(SPANS, DataType::UInt32, false),
        list(SERVICES, DataType::Utf8),
        list(ERRORS, DataType::Boolean),
        list(MIN_DURATION, DataType::UInt8),
        list(MAX_DURATION, DataType::UInt8),
        list(OPERATIONS, DataType::Utf8),
        Field::new(COMPLETE, DataType::Boolean, false),
        list(EDGE_PARENTS, DataType::UInt32),
        list(EDGE_CHILDREN, DataType::UInt32),
        list(EDGE_CALLS, DataType::UInt32),
        list(EDGE_ERRORS, DataType::UInt32),
    ]))
}

/// Durations are kept as buckets four to a doubling (steps of 19 %): the
/// bucket `b > 0` stands for about `2^((b - 1) / 4)` nanoseconds. The value
/// is computed in integers so that every platform reads the same bounds.
fn bucket_value(b: u8) -> u64 {
    // 2^(r/4) in 16-bit fixed point.
    const MANTISSA: [u128; 4] = [65536, 77936, 92682, 110218];
    if b == 0 {
        return 0;
    }
    let (e, r) = ((b - 1) / 4, (b - 1) % 4);
    u64::try_from((MANTISSA[r as usize] << e) >> 16).unwrap_or(u64::MAX)
}

/// The smallest bucket whose value is at least `nanos`.
fn ceil_bucket(nanos: u64) -> u8 {
    let (mut lo, mut hi) = (0u16, 255u16);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if bucket_value(mid as u8) < nanos { lo = mid + 1 } else { hi = mid }
    }
    lo as u8
}

/// The largest bucket whose value is at most `nanos`.
fn floor_bucket(nanos: u64) -> u8 {
    let (mut lo, mut hi) = (0u16, 255u16);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if bucket_value(mid as u8) <= nanos { lo = mid } else { hi = mid - 1 }
    }
    lo as u8
}

/// Nanoseconds as whole microseconds, rounded up.
fn ceil_micros(nanos: i64) -> i64 {
    (nanos.max(0) as u64).div_ceil(1000) as i64
}

/// One service's spans in a trace.
struct ServiceSummary {
    service: u32,
    errors: bool,
    min_duration: u64,
    max_duration: u64,
}

/// Strings seen once each, by id.
#[derive(Default)]
pub(super) struct Interner {
    ids: foldhash::HashMap<String, u32>,
    pub(super) values: Vec<String>,
}

impl Interner {
    pub(super) fn id(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = self.values.len() as u32;
        self.values.push(value.to_owned());
        self.ids.insert(value.to_owned(), id);
        id
    }
}

/// One trace: its id, earliest and latest start, last end, span count,
/// and its ranges in the builder's services and operations.
struct Row {
    trace: u128,
    earliest: i64,
    latest: i64,
    end: i64,
    spans: u32,
    services: (u32, u32),
    operations: (u32, u32),
    edges: (u32, u32),
    complete: bool,
}

/// One edge of a trace's service graph: parent and child as places in the
/// trace's services.
struct TraceEdge {
    parent: u32,
    child: u32,
    calls: u32,
    errors: u32,
}

/// The columns of the rows not yet written.
struct Columns {
    traces: FixedSizeBinaryBuilder,
    latest: Int64Builder,
    earliest: Int64Builder,
    end: Int64Builder,
    spans: UInt32Builder,
    services: ListBuilder<StringBuilder>,
    errors: ListBuilder<BooleanBuilder>,
    min_duration: ListBuilder<UInt8Builder>,
    max_duration: ListBuilder<UInt8Builder>,
    operations: ListBuilder<StringBuilder>,
    complete: BooleanBuilder,
    edge_parents: ListBuilder<UInt32Builder>,
    edge_children: ListBuilder<UInt32Builder>,
    edge_calls: ListBuilder<UInt32Builder>,
    edge_errors: ListBuilder<UInt32Builder>,
}

impl Columns {
    fn new() -> Self {
        Self {
            traces: FixedSizeBinaryBuilder::with_capacity(TABLE_ROWS, 16),
            latest: Int64Builder::with_capacity(TABLE_ROWS),
            earliest: Int64Builder::with_capacity(TABLE_ROWS),
            end: Int64Builder::with_capacity(TABLE_ROWS),
            spans: UInt32Builder::with_capacity(TABLE_ROWS),
            services: ListBuilder::new(StringBuilder::new()).with_field(item(DataType::Utf8)),
            errors: ListBuilder::new(BooleanBuilder::new()).with_field(item(DataType::Boolean)),
            min_duration: ListBuilder::new(UInt8Builder::new()).with_field(item(DataType::UInt8)),
            max_duration: ListBuilder::new(UInt8Builder::new()).with_field(item(DataType::UInt8)),
            operations: ListBuilder::new(StringBuilder::new()).with_field(item(DataType::Utf8)),
            complete: BooleanBuilder::with_capacity(TABLE_ROWS),
            edge_parents: ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32)),
            edge_children: ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32)),
            edge_calls: ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32)),
            edge_errors: ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32)),
        }
    }

    fn batch(&mut self) -> Result<RecordBatch, StorageError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.traces.finish()),
            Arc::new(self.latest.finish()),
            Arc::new(self.earliest.finish()),
            Arc::new(self.end.finish()),
            Arc::new(self.spans.finish()),
            Arc::new(self.services.finish()),
            Arc::new(self.errors.finish()),
            Arc::new(self.min_duration.finish()),
            Arc::new(self.max_duration.finish()),
            Arc::new(self.operations.finish()),
            Arc::new(self.complete.finish()),
            Arc::new(self.edge_parents.finish()),
            Arc::new(self.edge_children.finish()),
            Arc::new(self.edge_calls.finish()),
            Arc::new(self.edge_errors.finish()),
        ];
        RecordBatch::try_new(schema(), columns).map_err(parquet_err)
    }
}

/// Builds the trace table from a part's spans, given in trace order.
#[derive(Default)]
pub(super) struct TableBuilder {
    services: Interner,
    names: Interner,
    rows: Vec<Row>,
    summaries: Vec<ServiceSummary>,
    operations: Vec<(u32, u32)>,
    edges: Vec<TraceEdge>,
    /// The open trace's spans: (span id, parent id, service id, error).
    places: Vec<(u64, Option<u64>, u32, bool)>,
    /// The trace being read, when its first span has come.
    open: Option<Row>,
}

/// What the table reads of one span.
pub(super) struct TableSpan<'a> {
    /// The trace id as an integer that sorts as its bytes do.
    pub trace: u128,
    /// The span's id and its parent's, as integers.
    pub place: (u64, Option<u64>),
    pub start: i64,
    pub duration: i64,
    pub service: &'a str,
    pub name: &'a str,
    pub status: u8,
}

impl TableBuilder {
    /// Adds one span; the spans of a trace come one after the other.
    pub(super) fn add(&mut self, span: TableSpan<'_>) {
        let TableSpan { trace, place, start, duration, service, name, status } = span;
        if self.open.as_ref().is_some_and(|r| r.trace != trace) {
            self.close_trace();
        }
        let (summaries, operations) = (self.summaries.len() as u32, self.operations.len() as u32);
        let row = self.open.get_or_insert(Row {
            trace,
            earliest: start,
            latest: start,
            end: start,
            spans: 0,
            services: (summaries, summaries),
            operations: (operations, operations),
            edges: (0, 0),
            complete: true,
        });
        let end = start.saturating_add(duration.max(0));
        (row.earliest, row.latest, row.end) = (row.earliest.min(start), row.latest.max(start), row.end.max(end));
        row.spans += 1;
        let service = self.services.id(service);
        let name = self.names.id(name);
        let error = status == StatusCode::Error as u8;
        let duration = duration.max(0) as u64;
        let open = &mut self.summaries[row.services.0 as usize..];
        match open.iter_mut().find(|s| s.service == service) {
            Some(s) => {
                s.errors |= error;
                s.min_duration = s.min_duration.min(duration);
                s.max_duration = s.max_duration.max(duration);
            }
            None => self.summaries.push(ServiceSummary {
                service,
                errors: error,
                min_duration: duration,
                max_duration: duration,
            }),
        }
        if !self.operations[row.operations.0 as usize..].contains(&(service, name)) {
            self.operations.push((service, name));
        }
        self.places.push((place.0, place.1, service, error));
    }

    fn close_trace(&mut self) {
        if let Some(mut row) = self.open.take() {
            row.services.1 = self.summaries.len() as u32;
            row.operations.1 = self.operations.len() as u32;
            row.edges.0 = self.edges.len() as u32;
            row.complete = self.close_edges(row.services.0 as usize);
            row.edges.1 = self.edges.len() as u32;
            self.rows.push(row);
        }
    }

    /// Adds the open trace's edges (child spans whose parent is of another
    /// service); true when every parent was among its spans.
    fn close_edges(&mut self, first_summary: usize) -> bool {
        let mut places = std::mem::take(&mut self.places);
        places.sort_unstable_by_key(|p| p.0);
        let service_of = |id: u64| places.binary_search_by_key(&id, |p| p.0).ok().map(|i| places[i].2);
        let place_of = |service: u32| {
            self.summaries[first_summary..].iter().position(|s| s.service == service).unwrap_or(0) as u32
        };
        let first_edge = self.edges.len();
        let mut complete = true;
        for &(_, parent, service, error) in &places {
            let Some(parent) = parent else { continue };
            let Some(parent_service) = service_of(parent) else {
                complete = false;
                continue;
            };
            if parent_service == service {
                continue;
            }
            let (parent, child) = (place_of(parent_service), place_of(service));
            match self.edges[first_edge..].iter_mut().find(|e| e.parent == parent && e.child == child) {
                Some(e) => {
                    e.calls += 1;
                    e.errors += u32::from(error);
                }
                None => self.edges.push(TraceEdge { parent, child, calls: 1, errors: u32::from(error) }),
            }
        }
        places.clear();
        self.places = places;
        complete
    }

    /// The table as Parquet bytes: rows newest latest start first.
    pub(super) fn finish(mut self) -> Result<Bytes, StorageError> {
        self.close_trace();
        self.rows.sort_unstable_by(|a, b| b.latest.cmp(&a.latest).then(a.trace.cmp(&b.trace)));
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(parquet_err)?))
            .set_max_row_group_row_count(Some(TABLE_ROWS))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema(), Some(props)).map_err(parquet_err)?;
        let mut c = Columns::new();
        for rows in self.rows.chunks(TABLE_ROWS) {
            for row in rows {
                c.traces.append_value(row.trace.to_be_bytes()).map_err(parquet_err)?;
                c.latest.append_value(row.latest);
                c.earliest.append_value(ceil_micros(row.latest.saturating_sub(row.earliest)));
                c.end.append_value(ceil_micros(row.end.saturating_sub(row.latest)));
                c.spans.append_value(row.spans);
                for s in &self.summaries[row.services.0 as usize..row.services.1 as usize] {
                    c.services.values().append_value(&self.services.values[s.service as usize]);
                    c.errors.values().append_value(s.errors);
                    c.min_duration.values().append_value(floor_bucket(s.min_duration));
                    c.max_duration.values().append_value(ceil_bucket(s.max_duration));
                }
                for &(service, name) in &self.operations[row.operations.0 as usize..row.operations.1 as usize] {
                    let (service, name) = (&self.services.values[service as usize], &self.names.values[name as usize]);
                    c.operations.values().append_value(format!("{service}\0{name}"));
                }
                c.complete.append_value(row.complete);
                for e in &self.edges[row.edges.0 as usize..row.edges.1 as usize] {
                    c.edge_parents.values().append_value(e.parent);
                    c.edge_children.values().append_value(e.child);
                    c.edge_calls.values().append_value(e.calls);
                    c.edge_errors.values().append_value(e.errors);
                }
                c.edge_parents.append(true);
                c.edge_children.append(true);
                c.edge_calls.append(true);
                c.edge_errors.append(true);
                c.services.append(true);
                c.operations.append(true);
                c.errors.append(true);
                c.min_duration.append(true);
                c.max_duration.append(true);
            }
            writer.write(&c.batch()?).map_err(parquet_err)?;
        }
        Ok(Bytes::from(writer.into_inner().map_err(parquet_err)?))
    }
}

/// Reads the table's footer.
pub(super) async fn load(store: Arc<dyn ObjectStore>, meta: &PartMeta) -> Result<ArrowReaderMetadata, StorageError> {
    let mut reader = ObjectReader::new(store, path(&meta.tenant, &meta.id), meta.trace_table_bytes);
    ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(parquet_err)
}

/// The table's row groups with a row that may admit `query`, each with an
/// upper bound of the latest matching start of its traces.
pub(super) fn groups(table: &ArrowReaderMetadata, query: &SpanQuery) -> Result<Vec<(u64, usize)>, StorageError> {
    let metadata = table.metadata();
    let latest_at = table.schema().index_of(LATEST).map_err(parquet_err)?;
    let mut out = Vec::with_capacity(metadata.num_row_groups());
    for g in 0..metadata.num_row_groups() {
        let max = match metadata.row_group(g).column(latest_at).statistics() {
            Some(Statistics::Int64(s)) => s.max_opt().map(|&m| m as u64),
            _ => None,
        };
        out.push((max.unwrap_or(u64::MAX).min(query.end_unix_nano), g));
    }
    Ok(out)
}

/// Every trace in the row groups `groups` of the part's table that may hold
/// a span matching `query` (whose attribute conditions are not looked at),
/// with an upper bound of the start of its latest matching span.
pub(super) async fn candidates(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    table: &ArrowReaderMetadata,
    query: &SpanQuery,
    groups: Vec<usize>,
    out: &mut Vec<(TraceId, u64)>,
) -> Result<(), StorageError> {
    if groups.is_empty() {
        return Ok(());
    }
    let per_service = query.service.is_some() || query.errors_only || query.min_duration_nanos.is_some();
    let mut wanted = vec![TRACE, LATEST, EARLIEST, END];
    if per_service || query.max_duration_nanos.is_some() {
        wanted.push(SERVICES);
    }
    if query.errors_only {
        wanted.push(ERRORS);
    }
    if query.max_duration_nanos.is_some() {
        wanted.push(MIN_DURATION);
    }
    if query.min_duration_nanos.is_some() {
        wanted.push(MAX_DURATION);
    }
    if query.name.is_some() {
        wanted.push(OPERATIONS);
    }
    let roots: Vec<usize> =
        wanted.iter().map(|c| table.schema().index_of(c)).collect::<Result<_, _>>().map_err(parquet_err)?;
    let reader = ObjectReader::new(store, path(&meta.tenant, &meta.id), meta.trace_table_bytes);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, table.clone());
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let stream = builder.with_row_groups(groups).with_projection(mask).build().map_err(parquet_err)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(parquet_err)?;
    for batch in &batches {
        admitted(batch, query, out)?;
    }
    Ok(())
}

/// Where a trace of a part's table lies against a time range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Coverage {
    /// Every span of it in the part overlaps the range.
    Whole,
    /// Some may, some may not.
    Partial,
}

/// One trace of a part's table whose spans may overlap a time range, with
/// its service-graph edges in the part (services as the caller's ids).
pub(super) struct EdgeRow {
    pub trace: TraceId,
    pub coverage: Coverage,
    /// Every span's parent is in the part too.
    pub complete: bool,
    /// (parent service, child service, calls, failed calls).
    pub edges: Vec<(u32, u32, u64, u64)>,
}

/// The traces of the part's table that may have a span overlapping
/// `start..=end`, with their edges; `None` for a table older than format
/// version 4, which has no edges. `service_id` names each service once.
pub(super) async fn edge_rows(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    start: u64,
    end: u64,
    service_id: &mut impl FnMut(&str) -> u32,
) -> Result<Option<Vec<EdgeRow>>, StorageError> {
    if !meta.has_trace_table() {
        return Ok(None);
    }
    let table = load(store.clone(), meta).await?;
    if table.schema().index_of(COMPLETE).is_err() {
        return Ok(None);
    }
    let wanted =
        [TRACE, LATEST, EARLIEST, END, SERVICES, COMPLETE, EDGE_PARENTS, EDGE_CHILDREN, EDGE_CALLS, EDGE_ERRORS];
    let roots: Vec<usize> =
        wanted.iter().map(|c| table.schema().index_of(c)).collect::<Result<_, _>>().map_err(parquet_err)?;
    let reader = ObjectReader::new(store, path(&meta.tenant, &meta.id), meta.trace_table_bytes);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, table.clone());
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let batches: Vec<RecordBatch> =
        builder.with_projection(mask).build().map_err(parquet_err)?.try_collect().await.map_err(parquet_err)?;
    let (start, end) = (start as i64, end.min(i64::MAX as u64) as i64);
    let mut out = Vec::new();
    for batch in &batches {
        let traces = column::<FixedSizeBinaryArray>(batch, TRACE)?;
        let latest = column::<Int64Array>(batch, LATEST)?;
        let earliest = column::<Int64Array>(batch, EARLIEST)?;
        let ends = column::<Int64Array>(batch, END)?;
        let complete = column::<BooleanArray>(batch, COMPLETE)?;
        let missing = || StorageError::Part("trace table without its edge columns".into());
        let services = List::<StringArray>::of(batch, SERVICES)?.ok_or_else(missing)?;
        let parents = List::<UInt32Array>::of(batch, EDGE_PARENTS)?.ok_or_else(missing)?;
        let children = List::<UInt32Array>::of(batch, EDGE_CHILDREN)?.ok_or_else(missing)?;
        let calls = List::<UInt32Array>::of(batch, EDGE_CALLS)?.ok_or_else(missing)?;
        let errors = List::<UInt32Array>::of(batch, EDGE_ERRORS)?.ok_or_else(missing)?;
        for row in 0..batch.num_rows() {
            // The offsets are rounded up, so these bounds hold every span.
            let latest = latest.value(row);
            let earliest = latest.saturating_sub(earliest.value(row).saturating_mul(1000));
            let last_end = latest.saturating_add(ends.value(row).saturating_mul(1000));
            if earliest > end || last_end < start {
                continue;
            }
            let coverage = if earliest >= start && latest <= end { Coverage::Whole } else { Coverage::Partial };
            let names = services.range(row);
            let name = |place: u32| names.clone().nth(place as usize).map(|i| services.values.value(i));
            let mut edges = Vec::new();
            let places = parents.range(row).zip(children.range(row)).zip(calls.range(row).zip(errors.range(row)));
            for ((p, c), (n, e)) in places {
                let (Some(p), Some(c)) = (name(parents.values.value(p)), name(children.values.value(c))) else {
                    return Err(StorageError::Part(format!("{}: an edge names a service the trace lacks", meta.id)));
                };
                let counts = (u64::from(calls.values.value(n)), u64::from(errors.values.value(e)));
                edges.push((service_id(p), service_id(c), counts.0, counts.1));
            }
            let id: [u8; 16] = traces.value(row).try_into().unwrap_or([0; 16]);
            out.push(EdgeRow { trace: TraceId(id), coverage, complete: complete.value(row), edges });
        }
    }
    Ok(Some(out))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, StorageError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| StorageError::Part(format!("trace table column {name} is missing or of an unexpected type")))
}

/// A list column as its offsets and flat values, when the batch has it.
struct List<'a, T> {
    offsets: &'a [i32],
    values: &'a T,
}

impl<'a, T: 'static> List<'a, T> {
    fn of(batch: &'a RecordBatch, name: &str) -> Result<Option<Self>, StorageError> {
        if batch.column_by_name(name).is_none() {
            return Ok(None);
        }
        let list = column::<ListArray>(batch, name)?;
        let values =
            list.values().as_any().downcast_ref::<T>().ok_or_else(|| {
                StorageError::Part(format!("trace table column {name} has items of an unexpected type"))
            })?;
        Ok(Some(Self { offsets: list.value_offsets(), values }))
    }

    fn range(&self, row: usize) -> std::ops::Range<usize> {
        self.offsets[row] as usize..self.offsets[row + 1] as usize
    }
}

/// The rows of `batch` (the columns [`candidates`] asked for) that admit `query`.
fn admitted(batch: &RecordBatch, query: &SpanQuery, out: &mut Vec<(TraceId, u64)>) -> Result<(), StorageError> {
    let ids = column::<FixedSizeBinaryArray>(batch, TRACE)?;
    let latest = column::<Int64Array>(batch, LATEST)?;
    let earliest = column::<Int64Array>(batch, EARLIEST)?;
    let end = column::<Int64Array>(batch, END)?;
    let services = List::<StringArray>::of(batch, SERVICES)?;
    let errors = List::<BooleanArray>::of(batch, ERRORS)?;
    let min_duration = List::<UInt8Array>::of(batch, MIN_DURATION)?;
    let max_duration = List::<UInt8Array>::of(batch, MAX_DURATION)?;
    let operations = List::<StringArray>::of(batch, OPERATIONS)?;
    let operation = match (&query.service, &query.name) {
        (Some(service), Some(name)) => Some(format!("{service}\0{name}")),
        (None, Some(name)) => Some(format!("\0{name}")),
        _ => None,
    };
    let offset = |micros: i64| (micros.max(0) as u64).saturating_mul(1000);
    for row in 0..batch.num_rows() {
        let last = latest.value(row) as u64;
        let first = last.saturating_sub(offset(earliest.value(row)));
        if first > query.end_unix_nano || last.saturating_add(offset(end.value(row))) < query.start_unix_nano {
            continue;
        }
        // One service of the trace must meet every per-service condition.
        let service_ok = match &services {
            None => true,
            Some(services) => services.range(row).enumerate().any(|(i, at)| {
                let entry = |list: &Option<List<'_, UInt8Array>>| {
                    list.as_ref().map(|l| l.values.value(l.offsets[row] as usize + i))
                };
                query.service.as_deref().is_none_or(|s| services.values.value(at) == s)
                    && (!query.errors_only
                        || errors.as_ref().is_some_and(|e| e.values.value(e.offsets[row] as usize + i)))
                    && query
                        .min_duration_nanos
                        .is_none_or(|d| entry(&max_duration).is_none_or(|b| bucket_value(b) >= d))
                    && query
                        .max_duration_nanos
                        .is_none_or(|d| entry(&min_duration).is_none_or(|b| bucket_value(b) <= d))
            }),
        };
        let operation_ok = match (&operation, &operations) {
            (Some(want), Some(ops)) => ops.range(row).any(|at| {
                let op = ops.values.value(at);
                if query.service.is_some() { op == want } else { op.ends_with(want.as_str()) }
            }),
            _ => true,
        };
        if service_ok && operation_ok {
            let id: [u8; 16] = ids.value(row).try_into().unwrap_or([0; 16]);
            let bound = last.min(query.end_unix_nano);
            out.push((TraceId(id), bound));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_buckets_bound_the_duration_within_a_fifth() {
        let mut samples: Vec<u64> = (0..5000).collect();
        samples.extend((0..63).flat_map(|e| [1u64 << e, (1u64 << e) - 1, (1u64 << e) + 1, (1u64 << e) / 3 * 4]));
        samples.extend([i64::MAX as u64, 299_999_999, 300_000_000, 300_000_001]);
        for x in samples {
            let (low, high) = (bucket_value(floor_bucket(x)), bucket_value(ceil_bucket(x)));
            assert!(low <= x && x <= high, "{x}: [{low}, {high}]");
            assert!(high as f64 <= x as f64 * 1.2 + 1.0, "{x} rounded up to {high}");
            assert!(low as f64 >= x as f64 / 1.2 - 1.0, "{x} rounded down to {low}");
        }
        assert!((1..=255).all(|b| bucket_value(b) >= bucket_value(b - 1)));
    }
}
