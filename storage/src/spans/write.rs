//! Writing span parts: a [`PartWriter`] takes record batches whose rows
//! come in (trace id, start) order, points their resources into the part's
//! one table and describes the part as it goes; the head's chunks reach it
//! through [`encode_chunks`] (sort keys of every row, rows copied one row
//! group at a time), compaction's inputs through [`merge`] (a k-way merge
//! that holds one batch per input, never whole parts). Both are CPU-bound: call them on a blocking thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, RecordBatch, StringArray, UInt8Array};
use arrow::compute::interleave_record_batch;
use futures_util::TryStreamExt;
use object_store::PutPayloadMut;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::attributes::AttributeSummary;
use super::columns::{self, SpanBatch};
use super::dedicated::{self, Dedicated, KeyCounts};
use super::kv;
use super::part::{EncodedPart, FORMAT_VERSION, PAGE_ROWS, PartMeta, conform, parquet_err};
use super::resources::{self, ResourceTable, Resources};
use super::trace_table::{TableBuilder, TableSpan};
use crate::StorageError;
use crate::model::{Span, Tenant};
use crate::object_reader::ObjectReader;

/// Writes one part and gathers its meta from the rows it is given.
pub struct PartWriter {
    writer: SerializedFileWriter<Blocks>,
    /// Column writers for each row group: row groups can be encoded on
    /// several threads at once and appended in order.
    groups: ArrowRowGroupWriterFactory,
    next_group: usize,
    level: u32,
    spans: u64,
    traces: u64,
    first_trace: Option<u128>,
    last_trace: Option<u128>,
    min_start: u64,
    max_end: u64,
    /// service → span name → kinds.
    operations: HashMap<String, HashMap<String, BTreeSet<u8>>>,
    traces_table: TableBuilder,
    attributes: AttributeSummary,
    /// The part's resources; every row written points into it.
    resources: ResourceTable,
    /// The attributes with a column of their own in this part.
    dedicated: Dedicated,
}

/// Bytes of a part's file taken in blocks of [`BLOCK_BYTES`]: a block once
/// written is never moved, where a growing `Vec` copies the part into one
/// twice its size each time it doubles (a compacted part of a million spans
/// is some 50 MB).
struct Blocks(PutPayloadMut);

const BLOCK_BYTES: usize = 1 << 20;

impl std::io::Write for Blocks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PartWriter {
    /// A writer of a part at `level` whose `dedicated` attributes have
    /// columns of their own.
    pub fn new(level: u32, row_group_rows: usize, dedicated: Dedicated) -> Result<Self, StorageError> {
        let rows = row_group_rows.max(1);
        let mut props = WriterProperties::builder()
            // Parts flushed from the head favour speed; compaction's output, size.
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(if level == 0 { 1 } else { 9 }).map_err(parquet_err)?,
            ));
        // Encodings chosen by measurement (BENCHMARKS.md, bytes per column):
        // start and duration jump between traces, so deltas are as wide as
        // the values, while their bytes split into planes compress well;
        // integer attributes (sizes, ports, ids) are mostly unique, so a
        // dictionary costs more than it saves.
        for column in ["start_unix_nano", "duration_nanos"] {
            props = props
                .set_column_dictionary_enabled(ColumnPath::from(column), false)
                .set_column_encoding(ColumnPath::from(column), Encoding::BYTE_STREAM_SPLIT);
        }
        // Span ids are unique: a dictionary of a row group's 32k of them
        // never overflows, so Parquet keeps it and the ids cost more than plain.
        for column in ["span_id", "parent_span_id"] {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        // Attribute values, a list per type (format version 5): integers as
        // byte planes (their high bytes are mostly zero), doubles plain
        // (a dictionary of near-unique values cost 1.3 B/span more; of the
        // load generator's 10,000 values it would save 1), the
        // other values, mostly ids kept as their bytes, without a dictionary
        // and with their lengths delta-encoded (a unique UUID per span:
        // 16.05 B/span against 18.81 with a dictionary).
        let value_list = |name: &str| ColumnPath::new(vec![name.into(), "list".into(), "item".into()]);
        props = props
            .set_column_dictionary_enabled(value_list(kv::VALUE_LISTS[1]), false)
            .set_column_encoding(value_list(kv::VALUE_LISTS[1]), Encoding::BYTE_STREAM_SPLIT)
            .set_column_dictionary_enabled(value_list(kv::VALUE_LISTS[2]), false)
            .set_column_dictionary_enabled(value_list(kv::VALUE_LISTS[4]), false)
            .set_column_encoding(value_list(kv::VALUE_LISTS[4]), Encoding::DELTA_LENGTH_BYTE_ARRAY);
        // Dedicated columns (format 6): integers as byte planes, as in their
        // list; strings keep a dictionary while a row group's distinct values
        // fit in 128 KiB (hosts, user ids), and near-unique ones (addresses)
        // fall back to plain bytes with delta-encoded lengths.
        let (strs, ints) = dedicated.names();
        for column in ints.map(|n| ColumnPath::new(vec![n])) {
            props = props
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::BYTE_STREAM_SPLIT);
        }
        for column in strs.map(|n| ColumnPath::new(vec![n])) {
            props = props
                .set_column_dictionary_page_size_limit(column.clone(), 128 << 10)
                .set_column_encoding(column, Encoding::DELTA_LENGTH_BYTE_ARRAY);
        }
        let props = props
            .set_max_row_group_row_count(Some(rows))
            // Statistics only on the sort key, the one column readers prune
            // by (page statistics, and pages small enough that a trace lookup
            // decodes a page of each column, not a row group): min and max of
            // every string column took a tenth of a flush.
            .set_statistics_enabled(EnabledStatistics::None)
            .set_column_statistics_enabled(ColumnPath::from("trace_id"), EnabledStatistics::Page)
            // Compacted parts: pages twice as long, for zstd more context
            // (1.2 % fewer bytes; a trace lookup decodes a longer page).
            .set_data_page_row_count_limit(if level == 0 { PAGE_ROWS } else { 2 * PAGE_ROWS })
            .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
            .set_column_bloom_filter_fpp(ColumnPath::from("trace_id"), 0.01)
            .set_column_bloom_filter_max_ndv(ColumnPath::from("trace_id"), rows as u64)
            .build();
        let out = Blocks(PutPayloadMut::new().with_block_size(BLOCK_BYTES));
        let schema = columns::schema();
        let fields = schema.fields().iter().map(|f| f.as_ref().clone()).chain(dedicated.fields());
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields.collect::<Vec<_>>()));
        let (writer, groups) = ArrowWriter::try_new(out, schema, Some(props))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(parquet_err)?;
        Ok(Self {
            writer,
            groups,
            next_group: 0,
            level,
            spans: 0,
            traces: 0,
            first_trace: None,
            last_trace: None,
            min_start: u64::MAX,
            max_end: 0,
            operations: HashMap::new(),
            traces_table: TableBuilder::default(),
            attributes: AttributeSummary::default(),
            resources: ResourceTable::default(),
            dedicated,
        })
    }

    /// `batch`'s rows, pointing into the part's resource table.
    fn own(&mut self, batch: &SpanBatch) -> Result<RecordBatch, StorageError> {
        let places = self.resources.ids_of(&batch.resources);
        resources::remap(&batch.rows, &places).map_err(parquet_err)
    }

    /// Appends rows that follow every row written before in (trace id,
    /// start) order, and point into the part's resource table ([`Self::own`]),
    /// as one row group.
    fn write_rows(&mut self, rows: RecordBatch) -> Result<(), StorageError> {
        let (rows, chunks) = encode_group(&self.groups, self.next_group, &self.dedicated, rows)?;
        self.describe(&rows)?;
        self.append(chunks)
    }

    /// Appends row groups given as the ranges `groups` (in order) of
    /// `keys`, copied out of `sources` (pointing into the part's resource
    /// table) and encoded up to `threads` at once.
    fn write_sorted(
        &mut self,
        sources: &[&RecordBatch],
        keys: &[RowKey],
        rows: usize,
        threads: usize,
    ) -> Result<(), StorageError> {
        let groups: Vec<&[RowKey]> = keys.chunks(rows.max(1)).collect();
        for wave in groups.chunks(threads.max(1)) {
            let first = self.next_group;
            let (factory, dedicated) = (&self.groups, &self.dedicated);
            let build = |i: usize, group: &[RowKey]| -> Result<(RecordBatch, Vec<ArrowColumnChunk>), StorageError> {
                let rows: Vec<(usize, usize)> = group.iter().map(|k| (k.2 as usize, k.3 as usize)).collect();
                let batch = interleave_record_batch(sources, &rows).map_err(parquet_err)?;
                let batch = columns::part_layout(batch).map_err(parquet_err)?;
                encode_group(factory, first + i, dedicated, batch)
            };
            let built: Vec<_> = std::thread::scope(|scope| {
                let helpers: Vec<_> = wave
                    .iter()
                    .enumerate()
                    .skip(1)
                    .map(|(i, group)| {
                        std::thread::Builder::new()
                            .name("span-encode".into())
                            .spawn_scoped(scope, move || build(i, group))
                    })
                    .collect();
                let mut built = vec![build(0, wave[0])];
                for helper in helpers {
                    built.push(match helper {
                        Ok(h) => h.join().unwrap_or_else(|_| Err(StorageError::Part("a span encoder panicked".into()))),
                        Err(e) => Err(StorageError::Part(format!("span encoder thread: {e}"))),
                    });
                }
                built
            });
            for result in built {
                let (batch, chunks) = result?;
                self.describe(&batch)?;
                self.append(chunks)?;
            }
        }
        Ok(())
    }

    /// Appends the next row group, encoded.
    fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<(), StorageError> {
        let mut group = self.writer.next_row_group().map_err(parquet_err)?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group).map_err(parquet_err)?;
        }
        group.close().map_err(parquet_err)?;
        self.next_group += 1;
        Ok(())
    }

    /// Gathers the meta of rows that follow every row described before.
    fn describe(&mut self, batch: &RecordBatch) -> Result<(), StorageError> {
        let cols = SortColumns::of(batch)?;
        for row in 0..batch.num_rows() {
            let trace = cols.trace(row);
            if self.last_trace != Some(trace) {
                self.traces += 1;
                self.first_trace.get_or_insert(trace);
                self.last_trace = Some(trace);
            }
            let start = cols.starts.value(row) as u64;
            self.min_start = self.min_start.min(start);
            self.max_end = self.max_end.max(start.saturating_add(cols.durations.value(row) as u64));
            let (service, name, kind) = (cols.services.value(row), cols.names.value(row), cols.kinds.value(row));
            self.traces_table.add(TableSpan {
                trace,
                place: cols.place(row),
                start: start as i64,
                duration: cols.durations.value(row),
                service,
                name,
                status: cols.statuses.value(row),
            });
            // Looked up by reference: a string is copied once per distinct operation.
            let known = self.operations.get(service).and_then(|n| n.get(name)).is_some_and(|k| k.contains(&kind));
            if !known {
                self.operations.entry(service.to_owned()).or_default().entry(name.to_owned()).or_default().insert(kind);
            }
        }
        self.attributes.add(batch).map_err(parquet_err)?;
        self.spans += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes the file and builds the trace table; the meta describes what was written.
    pub fn finish(mut self, tenant: &Tenant, id: String, max_wal_seq: u64) -> Result<EncodedPart, StorageError> {
        let table = self.resources.finish();
        self.attributes.add_resources(&table);
        let json = resources::to_json(&table);
        self.writer.append_key_value_metadata(KeyValue::new(resources::FOOTER_KEY.to_owned(), json));
        let out = self.writer.into_inner().map_err(parquet_err)?;
        let traces = self.traces_table.finish()?;
        let hex_id = |t: Option<u128>| t.map(|t| hex::encode(t.to_be_bytes())).unwrap_or_default();
        let mut operations: BTreeMap<String, BTreeSet<(String, u8)>> = BTreeMap::new();
        for (service, names) in self.operations {
            let ops = operations.entry(service).or_default();
            for (name, kinds) in names {
                ops.extend(kinds.into_iter().map(|k| (name.clone(), k)));
            }
        }
        let meta = PartMeta {
            format_version: FORMAT_VERSION,
            id,
            tenant: tenant.to_string(),
            level: self.level,
            min_start_unix_nano: if self.spans == 0 { 0 } else { self.min_start },
            max_end_unix_nano: self.max_end,
            spans: self.spans,
            traces: self.traces,
            min_trace_id: hex_id(self.first_trace),
            max_trace_id: hex_id(self.last_trace),
            max_wal_seq,
            wal_marks: Vec::new(),
            bytes: out.0.content_length() as u64,
            trace_table_bytes: traces.len() as u64,
            compacted_from: Vec::new(),
            operations,
            attributes: self.attributes.finish(),
            dedicated: self.dedicated,
        };
        Ok(EncodedPart { data: out.0.freeze(), traces, meta })
    }
}

/// Encodes `rows` as the row group `index` of a part, `dedicated`'s values
/// split into their columns ([`dedicated::split`]): every leaf column
/// through its own column writer. Returns the rows split, which hold what
/// [`PartWriter::describe`] reads; the rows given are let go first, so that
/// one copy of the row group is held while it is encoded.
fn encode_group(
    factory: &ArrowRowGroupWriterFactory,
    index: usize,
    dedicated: &Dedicated,
    rows: RecordBatch,
) -> Result<(RecordBatch, Vec<ArrowColumnChunk>), StorageError> {
    let batch = dedicated::split(&rows, dedicated).map_err(parquet_err)?;
    drop(rows);
    let mut writers = factory.create_column_writers(index).map_err(parquet_err)?;
    let mut next = writers.iter_mut();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        for leaf in compute_leaves(field, column).map_err(parquet_err)? {
            let writer = next.next().ok_or_else(|| StorageError::Part("span batch with extra columns".into()))?;
            writer.write(&leaf).map_err(parquet_err)?;
        }
    }
    let chunks = writers.into_iter().map(|w| w.close().map_err(parquet_err)).collect::<Result<_, _>>()?;
    Ok((batch, chunks))
}

/// Encodes spans into Parquet bytes and the part's meta (see [`encode_chunks`]).
pub fn encode(
    tenant: &Tenant,
    id: String,
    level: u32,
    spans: Vec<&Span>,
    max_wal_seq: u64,
    row_group_rows: usize,
) -> Result<EncodedPart, StorageError> {
    let chunks = spans
        .chunks(row_group_rows.max(1))
        .map(columns::to_batch)
        .collect::<Result<Vec<_>, _>>()
        .map_err(parquet_err)?;
    encode_chunks(tenant, id, level, &chunks, max_wal_seq, row_group_rows, 1)
}

/// The sort key of a row and where it is: (trace id, start, chunk, row).
type RowKey = (u128, i64, u32, u32);

/// Sort keys of every row of `chunks`, in (trace id, start) order.
fn sorted_keys(chunks: &[RecordBatch]) -> Result<Vec<RowKey>, StorageError> {
    let mut keys: Vec<RowKey> = Vec::with_capacity(chunks.iter().map(RecordBatch::num_rows).sum());
    for (c, batch) in chunks.iter().enumerate() {
        let (traces, starts): (&FixedSizeBinaryArray, &Int64Array) =
            (column_of(batch, "trace_id")?, column_of(batch, "start_unix_nano")?);
        keys.extend((0..batch.num_rows()).map(|row| (trace_at(traces, row), starts.value(row), c as u32, row as u32)));
    }
    keys.sort_unstable();
    Ok(keys)
}

/// Encodes record batches of spans (in [`columns::schema`], in any order)
/// into one part, rows sorted by (trace id, start). Only the sort keys are
/// gathered for all rows; rows are copied one row group at a time, and up
/// to `threads` row groups are copied and encoded at once (on threads named
/// `sightline-spans`, as the flush thread is).
pub fn encode_chunks(
    tenant: &Tenant,
    id: String,
    level: u32,
    chunks: &[SpanBatch],
    max_wal_seq: u64,
    row_group_rows: usize,
    threads: usize,
) -> Result<EncodedPart, StorageError> {
    let mut keys = KeyCounts::default();
    for c in chunks {
        if let Some(shapes) = c.rows.column_by_name(kv::KEYS) {
            keys.add(shapes.as_ref()).map_err(parquet_err)?;
        }
    }
    let mut writer = PartWriter::new(level, row_group_rows, keys.choose())?;
    let owned = chunks.iter().map(|c| writer.own(c)).collect::<Result<Vec<_>, _>>()?;
    let keys = sorted_keys(&owned)?;
    let sources: Vec<&RecordBatch> = owned.iter().collect();
    writer.write_sorted(&sources, &keys, row_group_rows, threads)?;
    writer.finish(tenant, id, max_wal_seq)
}

/// One input of a merge: its current batch and where it stands in it.
struct Cursor {
    stream: ParquetRecordBatchStream<ObjectReader>,
    /// The input's resource table.
    resources: Resources,
    keys: Vec<(u128, i64)>,
    row: usize,
    /// The current batch's index in the merge's held batches.
    held: usize,
    done: bool,
}

impl Cursor {
    /// Moves to the next non-empty batch, adding it to `held` pointing into
    /// `writer`'s resource table.
    async fn advance(&mut self, held: &mut Vec<RecordBatch>, writer: &mut PartWriter) -> Result<(), StorageError> {
        loop {
            let Some(batch) = self.stream.try_next().await.map_err(parquet_err)? else {
                self.done = true;
                return Ok(());
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = writer.own(&conform(batch, &self.resources)?)?;
            let cols = SortColumns::of(&batch)?;
            self.keys = (0..batch.num_rows()).map(|row| (cols.trace(row), cols.starts.value(row))).collect();
            self.row = 0;
            self.held = held.len();
            held.push(batch);
            return Ok(());
        }
    }
}

/// Merges parts, each sorted by (trace id, start), into `writer` in that
/// order: one batch per input is held at a time (plus those the current
/// row group draws from), so memory depends on the inputs' count and batch
/// size, not on their length.
pub async fn merge(
    inputs: Vec<(ParquetRecordBatchStream<ObjectReader>, Resources)>,
    writer: &mut PartWriter,
    row_group_rows: usize,
) -> Result<(), StorageError> {
    let rows = row_group_rows.max(1);
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut cursors = Vec::with_capacity(inputs.len());
    for (stream, resources) in inputs {
        let mut c = Cursor { stream, resources, keys: Vec::new(), row: 0, held: 0, done: false };
        c.advance(&mut held, writer).await?;
        cursors.push(c);
    }
    let mut group: Vec<(usize, usize)> = Vec::with_capacity(rows);
    loop {
        let next = cursors.iter_mut().filter(|c| !c.done).min_by_key(|c| c.keys[c.row]);
        let Some(c) = next else { break };
        group.push((c.held, c.row));
        c.row += 1;
        if c.row == c.keys.len() {
            c.advance(&mut held, writer).await?;
        }
        if group.len() == rows {
            write_group(writer, &held, &group)?;
            group.clear();
            // Keep only the batches the cursors still read.
            let mut kept = Vec::with_capacity(cursors.len());
            for c in cursors.iter_mut().filter(|c| !c.done) {
                kept.push(held[c.held].clone());
                c.held = kept.len() - 1;
            }
            held = kept;
        }
    }
    if !group.is_empty() {
        write_group(writer, &held, &group)?;
    }
    Ok(())
}

fn write_group(writer: &mut PartWriter, held: &[RecordBatch], group: &[(usize, usize)]) -> Result<(), StorageError> {
    let sources: Vec<&RecordBatch> = held.iter().collect();
    writer.write_rows(interleave_record_batch(&sources, group).map_err(parquet_err)?)
}

fn column_of<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, StorageError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| StorageError::Part(format!("span batch without a proper {name} column")))
}

/// The columns a part is sorted by and described with.
struct SortColumns<'a> {
    trace_ids: &'a FixedSizeBinaryArray,
    span_ids: &'a FixedSizeBinaryArray,
    parent_ids: &'a FixedSizeBinaryArray,
    starts: &'a Int64Array,
    durations: &'a Int64Array,
    services: &'a StringArray,
    names: &'a StringArray,
    kinds: &'a UInt8Array,
    statuses: &'a UInt8Array,
}

impl<'a> SortColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self, StorageError> {
        Ok(Self {
            trace_ids: column_of(batch, "trace_id")?,
            span_ids: column_of(batch, "span_id")?,
            parent_ids: column_of(batch, "parent_span_id")?,
            starts: column_of(batch, "start_unix_nano")?,
            durations: column_of(batch, "duration_nanos")?,
            services: column_of(batch, "service")?,
            names: column_of(batch, "name")?,
            kinds: column_of(batch, "kind")?,
            statuses: column_of(batch, "status_code")?,
        })
    }

    /// The span's id and its parent's, as integers.
    fn place(&self, row: usize) -> (u64, Option<u64>) {
        let id = |a: &FixedSizeBinaryArray| u64::from_be_bytes(a.value(row).try_into().unwrap_or([0; 8]));
        (id(self.span_ids), self.parent_ids.is_valid(row).then(|| id(self.parent_ids)))
    }

    fn trace(&self, row: usize) -> u128 {
        trace_at(self.trace_ids, row)
    }
}

/// A trace id as an integer that sorts as its bytes do.
fn trace_at(ids: &FixedSizeBinaryArray, row: usize) -> u128 {
    u128::from_be_bytes(ids.value(row).try_into().unwrap_or([0; 16]))
}
