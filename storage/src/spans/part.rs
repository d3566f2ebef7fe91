//! One immutable span part: a Parquet file of spans sorted by trace id, and
//! its `meta.json`, both behind `object_store`.
//!
//! ```text
//! spans/<tenant>/<id>.parquet         rows sorted by (trace id, start); zstd;
//!                                     row groups of `row_group_rows`, pages of
//!                                     PAGE_ROWS; bloom filter, row-group and
//!                                     page statistics on trace_id; the
//!                                     resource table in the footer (version 3,
//!                                     see [`super::resources`])
//! spans/<tenant>/<id>.traces.parquet  the trace table (version 2; with
//!                                     each trace's service-graph edges from
//!                                     version 4, see [`super::trace_table`])
//! spans/<tenant>/<id>.meta.json       PartMeta; written last: a part exists
//!                                     (is published) once its meta exists
//! ```
//!
//! Version 1 parts have no trace table (searches read their span columns)
//! and no page statistics (a trace lookup reads whole row groups); parts
//! before version 3 hold every row's resource attributes in the row rather
//! than its place in a table; before version 4 the dependency graph reads a
//! part's span places, not its trace table; before version 5 the span
//! attributes are one list of (key, type and a column per type) structs
//! rather than a key list and a value list per type ([`super::kv`]); from
//! version 6 a part's most frequent string and integer attributes have a
//! column each ([`super::dedicated`]). Every version is read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray, Int64Array, RecordBatch};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicate, ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use serde::{Deserialize, Serialize};

use super::attributes::{self, PartAttributes};
use super::columns::{self, SpanBatch};
use super::dedicated::{self, Dedicated};
use super::kv;
use super::query::{SCHEMA_MASK_COLUMNS, SpanQuery};
use super::resources::{self, Resources};
use super::trace_table;
use crate::StorageError;
use crate::model::{Span, TraceId};
use crate::object_reader::ObjectReader;

/// The version new parts are written in; every version from 1 up is read.
pub const FORMAT_VERSION: u32 = 6;

/// Rows per data page of a level-0 part (version 2); compacted parts of
/// version 6 have pages twice as long.
pub(super) const PAGE_ROWS: usize = 4096;

/// A part ready to publish.
pub struct EncodedPart {
    /// The part's Parquet bytes, in the blocks they were written in.
    pub data: PutPayload,
    /// The trace table's Parquet bytes.
    pub traces: Bytes,
    pub meta: PartMeta,
}

/// What a part holds, written beside it as `meta.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartMeta {
    pub format_version: u32,
    pub id: String,
    pub tenant: String,
    /// 0 for a part flushed from the head; one more for each compaction.
    pub level: u32,
    pub min_start_unix_nano: u64,
    pub max_end_unix_nano: u64,
    pub spans: u64,
    pub traces: u64,
    /// Hex of the smallest and largest trace id in the part.
    pub min_trace_id: String,
    pub max_trace_id: String,
    /// Every WAL record of spans up to this sequence is in a published part
    /// (a floor over all shards; [`PartMeta::wal_marks`] says more).
    pub max_wal_seq: u64,
    /// Per shard that wrote into it: every span of that shard up to the
    /// mark's sequence is in a published part. Empty in parts written before
    /// shards (read as one mark of shard 0 of 1 at `max_wal_seq`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wal_marks: Vec<WalMark>,
    /// Size of the Parquet file.
    pub bytes: u64,
    /// Size of the trace table (version 2; 0 for version 1).
    #[serde(default)]
    pub trace_table_bytes: u64,
    /// Parts this one replaces; they are deleted once it is published.
    #[serde(default)]
    pub compacted_from: Vec<String>,
    /// service → span names (with kind) in the part.
    #[serde(default)]
    pub operations: BTreeMap<String, BTreeSet<(String, u8)>>,
    /// Its attribute keys and hot-attribute values, for searches to skip
    /// it; none when unknown (older parts) or too many to list.
    #[serde(default)]
    pub attributes: Option<PartAttributes>,
    /// The attribute keys with a column of their own (version 6).
    #[serde(default, skip_serializing_if = "Dedicated::is_empty")]
    pub dedicated: Dedicated,
}

/// A shard's WAL watermark: spans of traces that `shard` of `of` shards
/// takes are in published parts up to `seq`
/// ([`shard_of`](super::store::shard_of)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalMark {
    pub of: u32,
    pub shard: u32,
    pub seq: u64,
}

impl WalMark {
    /// Adds `mark` to `marks`, keeping one mark per shard: the highest.
    pub fn raise(marks: &mut Vec<WalMark>, mark: WalMark) {
        match marks.iter_mut().find(|k| (k.of, k.shard) == (mark.of, mark.shard)) {
            Some(k) => k.seq = k.seq.max(mark.seq),
            None => marks.push(mark),
        }
    }
}

impl PartMeta {
    /// The part's WAL watermarks, the one of a part written before shards included.
    pub fn marks(&self) -> Vec<WalMark> {
        if self.wal_marks.is_empty() {
            vec![WalMark { of: 1, shard: 0, seq: self.max_wal_seq }]
        } else {
            self.wal_marks.clone()
        }
    }

    pub fn may_hold(&self, id: &TraceId) -> bool {
        let hex = id.to_hex();
        self.min_trace_id <= hex && hex <= self.max_trace_id
    }

    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.min_start_unix_nano <= end && self.max_end_unix_nano >= start
    }

    pub fn has_trace_table(&self) -> bool {
        self.format_version >= 2
    }
}

pub fn parquet_path(tenant: &str, id: &str) -> Path {
    Path::from(format!("spans/{tenant}/{id}.parquet"))
}

pub fn meta_path(tenant: &str, id: &str) -> Path {
    Path::from(format!("spans/{tenant}/{id}.meta.json"))
}

pub(super) fn parquet_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Part(e.to_string())
}

pub use super::write::{encode, encode_chunks};

/// Writes the Parquet files, then the meta: the part is published
/// atomically when its meta appears (object stores write each object whole).
/// Returns the meta.
pub async fn publish(store: &dyn ObjectStore, part: EncodedPart) -> Result<PartMeta, StorageError> {
    let meta = part.meta;
    store.put(&parquet_path(&meta.tenant, &meta.id), part.data).await.map_err(store_err)?;
    if meta.has_trace_table() {
        let path = trace_table::path(&meta.tenant, &meta.id);
        store.put(&path, PutPayload::from(part.traces)).await.map_err(store_err)?;
    }
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| StorageError::Part(e.to_string()))?;
    store.put(&meta_path(&meta.tenant, &meta.id), PutPayload::from(json)).await.map_err(store_err)?;
    Ok(meta)
}

/// Deletes a part: its meta first, so that a crash never leaves a published
/// part without its data.
pub async fn delete(store: &dyn ObjectStore, tenant: &str, id: &str) -> Result<(), StorageError> {
    for path in [meta_path(tenant, id), parquet_path(tenant, id), trace_table::path(tenant, id)] {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(())
}

pub fn store_err(e: object_store::Error) -> StorageError {
    StorageError::ObjectStore(e.to_string())
}

/// Reads every published part's meta, with the files that have no meta
/// (left by an interrupted write) for removal.
pub async fn list(store: &dyn ObjectStore) -> Result<(Vec<PartMeta>, Vec<Path>), StorageError> {
    let objects: Vec<_> = store.list(Some(&Path::from("spans"))).try_collect().await.map_err(store_err)?;
    let mut metas = Vec::new();
    for o in objects.iter().filter(|o| o.location.as_ref().ends_with(".meta.json")) {
        let bytes = store.get(&o.location).await.map_err(store_err)?.bytes().await.map_err(store_err)?;
        let meta: PartMeta =
            serde_json::from_slice(&bytes).map_err(|e| StorageError::Part(format!("{}: {e}", o.location)))?;
        if !(1..=FORMAT_VERSION).contains(&meta.format_version) {
            return Err(StorageError::Part(format!("{}: unknown format version {}", o.location, meta.format_version)));
        }
        metas.push(meta);
    }
    let orphans = objects
        .iter()
        .filter(|o| o.location.as_ref().ends_with(".parquet"))
        .filter(|o| {
            !metas.iter().any(|m| {
                parquet_path(&m.tenant, &m.id) == o.location || trace_table::path(&m.tenant, &m.id) == o.location
            })
        })
        .map(|o| o.location.clone())
        .collect();
    Ok((metas, orphans))
}

/// What a reader needs of a part before reading rows, kept in memory so
/// that a trace lookup reads only the row groups that may hold the trace:
/// the footer (schema, row-group statistics, page index, the resource
/// table) and the trace-id bloom filters; and the trace table's footer.
pub struct PartIndex {
    metadata: ArrowReaderMetadata,
    blooms: Vec<Option<Sbbf>>,
    pub(super) traces: Option<ArrowReaderMetadata>,
    /// What the rows' `resource` column points into (empty before version 3).
    pub(super) resources: Resources,
}

impl PartIndex {
    /// Row groups whose statistics and bloom filter admit one of the trace
    /// ids (sorted).
    fn row_groups_for(&self, ids: &[TraceId]) -> Vec<usize> {
        let mut groups = Vec::new();
        for (i, rg) in self.metadata.metadata().row_groups().iter().enumerate() {
            let stats = rg.column(0).statistics();
            let (min, max) = (stats.and_then(|s| s.min_bytes_opt()), stats.and_then(|s| s.max_bytes_opt()));
            let bloom = self.blooms.get(i).and_then(Option::as_ref);
            let admits = in_range(ids, min, max).any(|id| bloom.is_none_or(|f| f.check(id.0.as_slice())));
            if admits {
                groups.push(i);
            }
        }
        groups
    }

    /// The rows of `groups` (in that order) on the pages whose trace-id
    /// statistics admit one of the ids (sorted); whole groups where there
    /// are none.
    pub(super) fn pages_for(&self, groups: &[usize], ids: &[TraceId]) -> RowSelection {
        let md = self.metadata.metadata();
        let mut selectors = Vec::new();
        for &g in groups {
            let rows = md.row_group(g).num_rows() as usize;
            let column = md.column_index().and_then(|c| c.get(g)).and_then(|c| c.first());
            let pages = md.offset_index().and_then(|o| o.get(g)).and_then(|o| o.first());
            let (Some(ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(stats)), Some(pages)) = (column, pages) else {
                selectors.push(RowSelector::select(rows));
                continue;
            };
            let locations = pages.page_locations();
            for (p, page) in locations.iter().enumerate() {
                let end = locations.get(p + 1).map_or(rows, |next| next.first_row_index as usize);
                let len = end.saturating_sub(page.first_row_index as usize);
                let admits = in_range(ids, stats.min_value(p), stats.max_value(p)).next().is_some();
                selectors.push(if admits { RowSelector::select(len) } else { RowSelector::skip(len) });
            }
        }
        RowSelection::from(selectors)
    }
}

/// Whether `id` (the bytes of a trace id) is one of `ids` (sorted).
pub(super) fn is_one_of(ids: &[TraceId], id: &[u8]) -> bool {
    ids.binary_search_by(|probe| probe.0.as_slice().cmp(id)).is_ok()
}

/// The ids (sorted) between `min` and `max` (inclusive, each open when unknown).
fn in_range<'a>(ids: &'a [TraceId], min: Option<&[u8]>, max: Option<&[u8]>) -> impl Iterator<Item = &'a TraceId> {
    let from = min.map_or(0, |min| ids.partition_point(|id| id.0.as_slice() < min));
    ids[from..].iter().take_while(move |id| max.is_none_or(|max| id.0.as_slice() <= max))
}

/// Reads a part's footer (with its page index) and bloom filters, and the
/// trace table's footer.
pub async fn load_index(store: Arc<dyn ObjectStore>, meta: &PartMeta) -> Result<PartIndex, StorageError> {
    let mut reader = ObjectReader::new(store.clone(), parquet_path(&meta.tenant, &meta.id), meta.bytes);
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let metadata = ArrowReaderMetadata::load_async(&mut reader, options).await.map_err(parquet_err)?;
    let mut b = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata.clone());
    let mut blooms = Vec::with_capacity(metadata.metadata().num_row_groups());
    for i in 0..metadata.metadata().num_row_groups() {
        blooms.push(b.get_row_group_column_bloom_filter(i, 0).await.map_err(parquet_err)?);
    }
    let traces = if meta.has_trace_table() { Some(trace_table::load(store, meta).await?) } else { None };
    let table = metadata
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == resources::FOOTER_KEY).and_then(|e| e.value.as_deref()));
    let resources = match table {
        Some(json) => resources::from_json(json).map_err(|e| StorageError::Part(format!("{}: {e}", meta.id)))?,
        None => Resources::from([]),
    };
    Ok(PartIndex { metadata, blooms, traces, resources })
}

fn builder(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    index: &PartIndex,
) -> ParquetRecordBatchStreamBuilder<ObjectReader> {
    let reader = ObjectReader::new(store, parquet_path(&meta.tenant, &meta.id), meta.bytes);
    ParquetRecordBatchStreamBuilder::new_with_metadata(reader, index.metadata.clone())
}

async fn collect(
    builder: ParquetRecordBatchStreamBuilder<ObjectReader>,
    index: &PartIndex,
) -> Result<Vec<Span>, StorageError> {
    let batches: Vec<RecordBatch> = builder.build().map_err(parquet_err)?.try_collect().await.map_err(parquet_err)?;
    let mut spans = Vec::new();
    for b in &batches {
        spans.extend(columns::from_batch(b, &index.resources).map_err(parquet_err)?);
    }
    Ok(spans)
}

/// The rows of the part in order, as record batches of at most
/// `batch_rows` (convert each with [`conform`]), for a merge.
pub fn stream(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    index: &PartIndex,
    batch_rows: usize,
) -> Result<ParquetRecordBatchStream<ObjectReader>, StorageError> {
    builder(store, meta, index).with_batch_size(batch_rows.max(1)).build().map_err(parquet_err)
}

/// A batch read from a part whose resource table is `resources`, in
/// [`columns::schema`]: parts written in other versions or with other
/// string encodings are converted.
pub fn conform(batch: RecordBatch, resources: &Resources) -> Result<SpanBatch, StorageError> {
    let batch = if dedicated::has_columns(&batch) { dedicated::join(&batch).map_err(parquet_err)? } else { batch };
    let schema = columns::schema();
    if batch.schema().fields() == schema.fields() {
        let rows = RecordBatch::try_new(schema, batch.columns().to_vec()).map_err(parquet_err)?;
        return Ok(SpanBatch { rows, resources: resources.clone() });
    }
    let spans = columns::from_batch(&batch, resources).map_err(parquet_err)?;
    let converted = columns::to_batch(&spans.iter().collect::<Vec<_>>()).map_err(parquet_err)?;
    let rows = columns::part_layout(converted.rows).map_err(parquet_err)?;
    Ok(SpanBatch { rows, resources: converted.resources })
}

/// The spans of the part that may match `query`: the columns of its
/// conditions are read first and only the rows they keep are decoded whole.
pub async fn read_matching(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    index: &PartIndex,
    query: &SpanQuery,
) -> Result<Vec<Span>, StorageError> {
    let b = builder(store, meta, index);
    let Some(predicates) = query_predicates(&b, meta, index, query) else { return Ok(Vec::new()) };
    collect(b.with_row_filter(RowFilter::new(predicates)), index).await
}

/// Row filters for `query`: one that reads the columns of
/// [`SpanQuery::coarse_mask`], then, for attribute conditions, one that
/// reads the columns that may hold them ([`attributes::mask`]). None when
/// the part's attributes rule every row out.
fn query_predicates(
    b: &ParquetRecordBatchStreamBuilder<ObjectReader>,
    meta: &PartMeta,
    index: &PartIndex,
    query: &SpanQuery,
) -> Option<Vec<Box<dyn ArrowPredicate>>> {
    let mask = ProjectionMask::roots(b.parquet_schema(), SCHEMA_MASK_COLUMNS);
    let q = Arc::new(query.clone());
    let coarse = q.clone();
    // The predicate sees only those columns, in schema order.
    let mut predicates: Vec<Box<dyn ArrowPredicate>> =
        vec![Box::new(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            coarse.coarse_mask(&batch, [0, 1, 2, 3, 4])
        }))];
    if !query.attributes.is_empty() {
        let known = meta.attributes.as_ref();
        if !attributes::may_match(known, query) {
            return None;
        }
        let names = attributes::columns_to_read(known, query);
        let fields = b.parquet_schema().root_schema().get_fields();
        // Values kept in the lists may also be in the part's dedicated columns.
        let lists = names.contains(kv::KEYS);
        let read = |name: &str| names.contains(name) || (lists && dedicated::is_column(name));
        let roots = fields.iter().enumerate().filter(|(_, f)| read(f.name())).map(|(i, _)| i);
        let mask = ProjectionMask::roots(b.parquet_schema(), roots);
        let resources = index.resources.clone();
        predicates.push(Box::new(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            attributes::mask(&q, &batch, &resources)
        })));
    }
    Some(predicates)
}

/// Rows of the traces `ids` (sorted), read from the trace_id column alone.
fn trace_predicate(b: &ParquetRecordBatchStreamBuilder<ObjectReader>, ids: &[TraceId]) -> Box<dyn ArrowPredicate> {
    let mask = ProjectionMask::roots(b.parquet_schema(), [0]);
    let wanted = ids.to_vec();
    Box::new(ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| arrow::error::ArrowError::CastError("trace_id is not fixed-size binary".into()))?;
        Ok((0..column.len()).map(|i| Some(column.is_valid(i) && is_one_of(&wanted, column.value(i)))).collect())
    }))
}

/// The trace id and start of every span of the part that `query` matches,
/// in the traces `ids` (sorted, without repeats) when given: only the
/// columns of the predicates and those two are read, and no span is decoded.
pub async fn read_matching_starts(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    index: &PartIndex,
    query: &SpanQuery,
    ids: Option<&[TraceId]>,
) -> Result<Vec<(TraceId, u64)>, StorageError> {
    let columns = [0, SCHEMA_MASK_COLUMNS[0]];
    let mut out = Vec::new();
    for batch in &read_matching_columns(store, meta, index, query, ids, &columns).await? {
        starts_of(batch, 0, 1, None, &mut out)?;
    }
    Ok(out)
}

/// The columns `columns` (top-level, in [`columns::schema`] order) of the
/// rows of the part that `query` matches, in the traces `ids` (sorted,
/// without repeats) when given: only those columns and the predicates'
/// are read.
pub async fn read_matching_columns(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    index: &PartIndex,
    query: &SpanQuery,
    ids: Option<&[TraceId]>,
    columns: &[usize],
) -> Result<Vec<RecordBatch>, StorageError> {
    let mut b = builder(store, meta, index);
    let mut predicates = Vec::new();
    if let Some(ids) = ids {
        let groups = index.row_groups_for(ids);
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let pages = index.pages_for(&groups, ids);
        predicates.push(trace_predicate(&b, ids));
        b = b.with_row_groups(groups).with_row_selection(pages);
    }
    let Some(conditions) = query_predicates(&b, meta, index, query) else { return Ok(Vec::new()) };
    predicates.extend(conditions);
    let output = ProjectionMask::roots(b.parquet_schema(), columns.iter().copied());
    let stream = b.with_projection(output).with_row_filter(RowFilter::new(predicates));
    stream.build().map_err(parquet_err)?.try_collect().await.map_err(parquet_err)
}

/// (trace id, start) of the rows of `batch` (all, or those `mask` keeps).
pub(super) fn starts_of(
    batch: &RecordBatch,
    trace_col: usize,
    start_col: usize,
    mask: Option<&BooleanArray>,
    out: &mut Vec<(TraceId, u64)>,
) -> Result<(), StorageError> {
    let ids = batch.column(trace_col).as_any().downcast_ref::<FixedSizeBinaryArray>();
    let starts = batch.column(start_col).as_any().downcast_ref::<Int64Array>();
    let (Some(ids), Some(starts)) = (ids, starts) else {
        return Err(StorageError::Part("span batch without trace_id and start columns".into()));
    };
    for row in 0..batch.num_rows() {
        if mask.is_none_or(|m| m.value(row)) {
            let id: [u8; 16] = ids.value(row).try_into().unwrap_or([0; 16]);
            out.push((TraceId(id), starts.value(row) as u64));
        }
    }
    Ok(())
}

/// The spans of the traces `ids` (sorted, without repeats): row groups are
/// skipped by their trace-id statistics and bloom filter, pages by their
/// trace-id statistics, and rows are filtered before decoding. One read of
/// the part for them all.
pub async fn read_traces(
    store: Arc<dyn ObjectStore>,
    meta: &PartMeta,
    index: &PartIndex,
    ids: &[TraceId],
) -> Result<Vec<Span>, StorageError> {
    let groups = index.row_groups_for(ids);
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let pages = index.pages_for(&groups, ids);
    let b = builder(store, meta, index);
    let predicate = trace_predicate(&b, ids);
    let b = b.with_row_groups(groups).with_row_selection(pages);
    collect(b.with_row_filter(RowFilter::new(vec![predicate])), index).await
}
