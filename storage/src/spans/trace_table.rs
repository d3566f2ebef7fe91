//! A part's trace table (format version 2): one row per trace of the part,
//! so that a search reads a few small columns instead of every span.
//!
//! ```text
//! spans/<tenant>/<id>.traces.parquet   rows newest latest start first; zstd;
//!                                      row groups of TABLE_ROWS, statistics
//!   trace_id, latest_start (ns), earliest_offset_us, end_offset_us, spans,
//!   services, errors, min_duration, max_duration   (lists, one entry a service)
//!   operations                                     (list of "service\0name")
//! ```
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
    UInt32Builder,
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
struct Interner {
    ids: foldhash::HashMap<String, u32>,
    values: Vec<String>,
}

impl Interner {
    fn id(&mut self, value: &str) -> u32 {
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
    /// The trace being read, when its first span has come.
    open: Option<Row>,
}

impl TableBuilder {
    /// Adds one span; the spans of a trace come one after the other.
    pub(super) fn add(&mut self, trace: u128, start: i64, duration: i64, service: &str, name: &str, status: u8) {
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
    }

    fn close_trace(&mut self) {
        if let Some(mut row) = self.open.take() {
            row.services.1 = self.summaries.len() as u32;
            row.operations.1 = self.operations.len() as u32;
            self.rows.push(row);
        }
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
