//! A part's trace table (format version 2): one row per (trace, service)
//! of the part, so that a search reads a few small columns instead of every
//! span.
//!
//! ```text
//! spans/<tenant>/<id>.traces.parquet
//!   service, trace_id, earliest_start, latest_start, max_end,
//!   min_duration, max_duration, errors, spans, names (list)
//!   sorted by (service, latest_start descending, trace_id); zstd;
//!   row groups of TABLE_ROWS with min/max statistics
//! ```
//!
//! A row summarises the spans of one service in one trace of the part. A
//! span that matches a [`SpanQuery`] (without attribute conditions) always
//! lies in a row whose summary admits the query, so the rows that admit it
//! name every trace that may match, each with an upper bound of its latest
//! matching start ([`candidates`]): a search verifies them newest first and
//! stops as soon as no bound can beat what it holds. Row groups are skipped
//! by the service and time statistics, so a search by service reads the
//! row groups of that service only.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeBinaryArray, Int64Array, ListArray, RecordBatch, StringArray, UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;

use super::part::{PartMeta, parquet_err};
use super::query::SpanQuery;
use crate::StorageError;
use crate::model::{StatusCode, TraceId};
use crate::object_reader::ObjectReader;

/// Rows per row group: the unit that the statistics skip.
const TABLE_ROWS: usize = 8192;

// Column positions (every column is a root; `names` is the only list).
const SERVICE: usize = 0;
const TRACE: usize = 1;
const EARLIEST: usize = 2;
const LATEST: usize = 3;
const MAX_END: usize = 4;
const MIN_DURATION: usize = 5;
const MAX_DURATION: usize = 6;
const ERRORS: usize = 7;
const NAMES: usize = 9;

pub fn path(tenant: &str, id: &str) -> Path {
    Path::from(format!("spans/{tenant}/{id}.traces.parquet"))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("service", DataType::Utf8, false),
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("earliest_start", DataType::Int64, false),
        Field::new("latest_start", DataType::Int64, false),
        Field::new("max_end", DataType::Int64, false),
        Field::new("min_duration", DataType::Int64, false),
        Field::new("max_duration", DataType::Int64, false),
        Field::new("errors", DataType::Boolean, false),
        Field::new("spans", DataType::UInt32, false),
        Field::new("names", DataType::List(Arc::new(Field::new("item", DataType::Utf8, false))), false),
    ]))
}

/// The summary of one service's spans in one trace.
#[derive(Clone, Copy)]
struct Row {
    service: u32,
    trace: u128,
    earliest: i64,
    latest: i64,
    max_end: i64,
    min_duration: i64,
    max_duration: i64,
    errors: bool,
    spans: u32,
    /// Range of this row's names in `TableBuilder::row_names`.
    names: (u32, u32),
}

/// Strings seen once each, by id.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
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

/// Builds the trace table from a part's rows, given in trace order.
#[derive(Default)]
pub(super) struct TableBuilder {
    services: Interner,
    names: Interner,
    rows: Vec<Row>,
    row_names: Vec<u32>,
    /// The rows of the trace being read, and (row, name) pairs of it.
    open: Vec<Row>,
    open_names: Vec<(u32, u32)>,
}

impl TableBuilder {
    /// Adds one span; the spans of a trace come one after the other.
    pub(super) fn add(&mut self, trace: u128, start: i64, duration: i64, service: &str, name: &str, status: u8) {
        if self.open.first().is_some_and(|r| r.trace != trace) {
            self.close_trace();
        }
        let service = self.services.id(service);
        let name = self.names.id(name);
        let error = status == StatusCode::Error as u8;
        let end = start.saturating_add(duration);
        let at = match self.open.iter().position(|r| r.service == service) {
            Some(at) => {
                let r = &mut self.open[at];
                r.earliest = r.earliest.min(start);
                r.latest = r.latest.max(start);
                r.max_end = r.max_end.max(end);
                r.min_duration = r.min_duration.min(duration);
                r.max_duration = r.max_duration.max(duration);
                r.errors |= error;
                r.spans += 1;
                at
            }
            None => {
                self.open.push(Row {
                    service,
                    trace,
                    earliest: start,
                    latest: start,
                    max_end: end,
                    min_duration: duration,
                    max_duration: duration,
                    errors: error,
                    spans: 1,
                    names: (0, 0),
                });
                self.open.len() - 1
            }
        };
        if !self.open_names.contains(&(at as u32, name)) {
            self.open_names.push((at as u32, name));
        }
    }

    fn close_trace(&mut self) {
        for (at, mut row) in self.open.drain(..).enumerate() {
            let from = self.row_names.len() as u32;
            let names = self.open_names.iter().filter(|(r, _)| *r == at as u32).map(|(_, n)| *n);
            self.row_names.extend(names);
            row.names = (from, self.row_names.len() as u32);
            self.rows.push(row);
        }
        self.open_names.clear();
    }

    /// The table as Parquet bytes.
    pub(super) fn finish(mut self) -> Result<Bytes, StorageError> {
        self.close_trace();
        let services = &self.services.values;
        self.rows.sort_unstable_by(|a, b| {
            (services[a.service as usize].as_str(), std::cmp::Reverse(a.latest), a.trace).cmp(&(
                services[b.service as usize].as_str(),
                std::cmp::Reverse(b.latest),
                b.trace,
            ))
        });
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(parquet_err)?))
            .set_max_row_group_row_count(Some(TABLE_ROWS))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let mut writer = ArrowWriter::try_new(Vec::new(), schema(), Some(props)).map_err(parquet_err)?;
        for rows in self.rows.chunks(TABLE_ROWS) {
            writer.write(&self.batch(rows)?).map_err(parquet_err)?;
        }
        Ok(Bytes::from(writer.into_inner().map_err(parquet_err)?))
    }

    fn batch(&self, rows: &[Row]) -> Result<RecordBatch, StorageError> {
        let ints = |f: fn(&Row) -> i64| -> ArrayRef { Arc::new(rows.iter().map(f).collect::<Int64Array>()) };
        let ids: Vec<[u8; 16]> = rows.iter().map(|r| r.trace.to_be_bytes()).collect();
        let mut offsets = vec![0i32];
        let mut names = Vec::new();
        for r in rows {
            let range = &self.row_names[r.names.0 as usize..r.names.1 as usize];
            names.extend(range.iter().map(|&n| self.names.values[n as usize].as_str()));
            offsets.push(names.len() as i32);
        }
        let names = ListArray::new(
            Arc::new(Field::new("item", DataType::Utf8, false)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(StringArray::from(names)),
            None,
        );
        let columns: Vec<ArrayRef> = vec![
            Arc::new(
                rows.iter().map(|r| Some(self.services.values[r.service as usize].as_str())).collect::<StringArray>(),
            ),
            Arc::new(if ids.is_empty() {
                FixedSizeBinaryArray::new_null(16, 0)
            } else {
                FixedSizeBinaryArray::try_from_iter(ids.into_iter()).map_err(parquet_err)?
            }),
            ints(|r| r.earliest),
            ints(|r| r.latest),
            ints(|r| r.max_end),
            ints(|r| r.min_duration),
            ints(|r| r.max_duration),
            Arc::new(rows.iter().map(|r| Some(r.errors)).collect::<BooleanArray>()),
            Arc::new(rows.iter().map(|r| r.spans).collect::<UInt32Array>()),
            Arc::new(names),
        ];
        RecordBatch::try_new(schema(), columns).map_err(parquet_err)
    }
}

/// Reads the table's footer.
pub(super) async fn load(store: Arc<dyn ObjectStore>, meta: &PartMeta) -> Result<ArrowReaderMetadata, StorageError> {
    let mut reader = ObjectReader::new(store, path(&meta.tenant, &meta.id), meta.trace_table_bytes);
    ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(parquet_err)
}

/// Whether a row group's statistics admit `query`'s service and time range.
fn group_admits(rg: &RowGroupMetaData, query: &SpanQuery) -> bool {
    let int = |col: usize, max: bool| match rg.column(col).statistics() {
        Some(Statistics::Int64(s)) => if max { s.max_opt() } else { s.min_opt() }.copied(),
        _ => None,
    };
    let service_ok = query.service.as_deref().is_none_or(|want| match rg.column(SERVICE).statistics() {
        Some(s) => {
            let below = s.min_bytes_opt().is_some_and(|min| want.as_bytes() < min);
            let above = s.max_bytes_opt().is_some_and(|max| want.as_bytes() > max);
            !(below || above)
        }
        None => true,
    });
    service_ok
        && int(EARLIEST, false).is_none_or(|min| min as u64 <= query.end_unix_nano)
        && int(MAX_END, true).is_none_or(|max| max as u64 >= query.start_unix_nano)
}

/// Every trace of the part that may hold a span matching `query` (whose
/// attribute conditions are not looked at), with an upper bound of the
/// start of its latest matching span.
pub(super) async fn candidates(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    table: &ArrowReaderMetadata,
    query: &SpanQuery,
    out: &mut Vec<(TraceId, u64)>,
) -> Result<(), StorageError> {
    let groups: Vec<usize> = (0..table.metadata().num_row_groups())
        .filter(|&i| group_admits(table.metadata().row_group(i), query))
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    let reader = ObjectReader::new(store, path(&meta.tenant, &meta.id), meta.trace_table_bytes);
    let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, table.clone());
    let mut columns = vec![SERVICE, TRACE, EARLIEST, LATEST, MAX_END, MIN_DURATION, MAX_DURATION, ERRORS];
    if query.name.is_some() {
        columns.push(NAMES);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns);
    let stream = builder.with_row_groups(groups).with_projection(mask).build().map_err(parquet_err)?;
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(parquet_err)?;
    for batch in &batches {
        admitted(batch, query, out)?;
    }
    Ok(())
}

/// The rows of `batch` (the table's columns up to `errors`, then `names`
/// when the query names an operation) that admit `query`.
fn admitted(batch: &RecordBatch, query: &SpanQuery, out: &mut Vec<(TraceId, u64)>) -> Result<(), StorageError> {
    fn col<T: 'static>(batch: &RecordBatch, i: usize) -> Result<&T, StorageError> {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| StorageError::Part(format!("trace table column {i} has an unexpected type")))
    }
    let services = col::<StringArray>(batch, SERVICE)?;
    let ids = col::<FixedSizeBinaryArray>(batch, TRACE)?;
    let [earliest, latest, max_end, min_duration, max_duration] =
        [EARLIEST, LATEST, MAX_END, MIN_DURATION, MAX_DURATION].map(|i| col::<Int64Array>(batch, i));
    let (earliest, latest, max_end, min_duration, max_duration) =
        (earliest?, latest?, max_end?, min_duration?, max_duration?);
    let errors = col::<BooleanArray>(batch, ERRORS)?;
    let names = if query.name.is_some() { Some(col::<ListArray>(batch, ERRORS + 1)?) } else { None };
    for row in 0..batch.num_rows() {
        let admits = query.service.as_deref().is_none_or(|s| services.value(row) == s)
            && earliest.value(row) as u64 <= query.end_unix_nano
            && max_end.value(row) as u64 >= query.start_unix_nano
            && query.min_duration_nanos.is_none_or(|d| max_duration.value(row) as u64 >= d)
            && query.max_duration_nanos.is_none_or(|d| min_duration.value(row) as u64 <= d)
            && (!query.errors_only || errors.value(row))
            && match (&query.name, names) {
                (Some(want), Some(names)) => {
                    let list = names.value(row);
                    list.as_any().downcast_ref::<StringArray>().is_some_and(|l| l.iter().any(|n| n == Some(want)))
                }
                _ => true,
            };
        if admits {
            let id: [u8; 16] = ids.value(row).try_into().unwrap_or([0; 16]);
            out.push((TraceId(id), (latest.value(row) as u64).min(query.end_unix_nano)));
        }
    }
    Ok(())
}
