//! Immutable metric blocks behind `object_store`: for one tenant and one
//! time window, a series table (`<id>.series.parquet`: id → labels and the
//! series' value scale) and a samples table (`<id>.samples.parquet`: series
//! id, time, value, sorted by series then time), published atomically by
//! writing `<id>.meta.json` last.
//!
//! Encodings chosen for time series: times are delta-encoded (regular
//! scrapes leave deltas of zero after the first); a series whose every
//! value is a decimal with at most six fraction digits (counters, byte
//! counts, most gauges) stores them as integers scaled by `10^scale`,
//! delta-encoded too, so that a counter costs its increments' bits and a
//! flat gauge almost nothing; other series keep their floats, byte-stream
//! split. Both then go through zstd. Values come back bit for bit.

use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use super::labels::{Labels, Postings};
use crate::StorageError;
use crate::object_reader::ObjectReader;

pub const FORMAT_VERSION: u32 = 1;
/// Rows per row group of the samples table: small enough that a query for
/// a few series reads little, large enough to compress well.
const ROW_GROUP_ROWS: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub format_version: u32,
    pub id: String,
    pub tenant: String,
    /// Sample times covered, ms, inclusive.
    pub min_t: i64,
    pub max_t: i64,
    pub series: u64,
    pub samples: u64,
    pub samples_bytes: u64,
    pub series_bytes: u64,
    /// The blocks this one merged; they are deleted once it is published
    /// (and at open, should a crash have come between).
    #[serde(default)]
    pub compacted_from: Vec<String>,
}

fn path(tenant: &str, id: &str, what: &str) -> Path {
    Path::from(format!("metrics/{tenant}/{id}.{what}"))
}

fn parquet_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Block(e.to_string())
}

pub fn store_err(e: object_store::Error) -> StorageError {
    StorageError::ObjectStore(e.to_string())
}

fn samples_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("t", DataType::Int64, false),
        // Set for series with a scale: the value × 10^scale.
        Field::new("vi", DataType::Int64, true),
        // Set for the others: the value.
        Field::new("vf", DataType::Float64, true),
    ]))
}

fn series_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("labels", DataType::Utf8, false),
        // -1: floats as they are.
        Field::new("scale", DataType::Int32, false),
    ]))
}

const POW10: [f64; 7] = [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6];

/// The smallest decimal scale at which every value is an integer that
/// converts back to the very same float, or `None`.
fn decimal_scale(samples: &[(i64, f64)]) -> Option<usize> {
    (0..POW10.len()).find(|&e| {
        samples.iter().all(|&(_, v)| {
            let k = (v * POW10[e]).round();
            k.abs() < 9.0e15 && (k / POW10[e]).to_bits() == v.to_bits()
        })
    })
}

/// Encodes series (with their samples, in time order) into the two tables
/// and the block's meta. CPU-bound: call it on a blocking thread.
///
/// Rows are laid out by time slice of `slice_ms`, then series, then time,
/// and a row group never spans two slices: a query over part of a long
/// (compacted) block reads only the row groups of its slices.
pub fn encode(
    tenant: &str,
    id: String,
    mut series: Vec<(Labels, Vec<(i64, f64)>)>,
    slice_ms: i64,
) -> Result<(Bytes, Bytes, BlockMeta), StorageError> {
    series.retain(|(_, s)| !s.is_empty());
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(6).map_err(parquet_err)?))
        .set_column_dictionary_enabled(ColumnPath::from("t"), false)
        .set_column_encoding(ColumnPath::from("t"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("vi"), false)
        .set_column_encoding(ColumnPath::from("vi"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("vf"), false)
        .set_column_encoding(ColumnPath::from("vf"), Encoding::BYTE_STREAM_SPLIT)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let scales: Vec<Option<usize>> = series.iter().map(|(_, s)| decimal_scale(s)).collect();
    let mut samples_out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut samples_out, samples_schema(), Some(props.clone())).map_err(parquet_err)?;
    let mut rows = Rows::default();
    let (mut min_t, mut max_t, mut count) = (i64::MAX, i64::MIN, 0u64);
    let slice_ms = slice_ms.max(1);
    let slice_of = |t: i64| t.div_euclid(slice_ms);
    let first = series.iter().filter_map(|(_, s)| s.first().map(|x| slice_of(x.0))).min().unwrap_or(0);
    let last = series.iter().filter_map(|(_, s)| s.last().map(|x| slice_of(x.0))).max().unwrap_or(-1);
    // Where each series stands in its samples.
    let mut cursor = vec![0usize; series.len()];
    for slice in first..=last {
        for (i, (_, samples)) in series.iter().enumerate() {
            while let Some(&(t, v)) = samples.get(cursor[i]).filter(|x| slice_of(x.0) == slice) {
                cursor[i] += 1;
                rows.ids.push(i as u32);
                rows.ts.push(t);
                match scales[i] {
                    Some(e) => {
                        rows.vi.push(Some((v * POW10[e]).round() as i64));
                        rows.vf.push(None);
                    }
                    None => {
                        rows.vi.push(None);
                        rows.vf.push(Some(v));
                    }
                }
                min_t = min_t.min(t);
                max_t = max_t.max(t);
                count += 1;
                if rows.ids.len() == ROW_GROUP_ROWS {
                    rows.write(&mut writer)?;
                }
            }
        }
        if !rows.ids.is_empty() {
            rows.write(&mut writer)?;
        }
    }
    if !rows.ids.is_empty() {
        rows.write(&mut writer)?;
    }
    writer.close().map_err(parquet_err)?;

    let mut series_out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut series_out, series_schema(), Some(props)).map_err(parquet_err)?;
    let texts: Vec<String> =
        series.iter().map(|(l, _)| serde_json::to_string(&l.iter().collect::<Vec<_>>()).unwrap_or_default()).collect();
    let batch = RecordBatch::try_new(
        series_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..series.len() as u32)),
            Arc::new(StringArray::from(texts)),
            Arc::new(Int32Array::from_iter_values(scales.iter().map(|s| s.map_or(-1, |e| e as i32)))),
        ],
    )
    .map_err(parquet_err)?;
    writer.write(&batch).map_err(parquet_err)?;
    writer.close().map_err(parquet_err)?;
    let meta = BlockMeta {
        format_version: FORMAT_VERSION,
        id,
        tenant: tenant.to_owned(),
        min_t,
        max_t,
        series: series.len() as u64,
        samples: count,
        samples_bytes: samples_out.len() as u64,
        series_bytes: series_out.len() as u64,
        compacted_from: Vec::new(),
    };
    Ok((Bytes::from(samples_out), Bytes::from(series_out), meta))
}

/// Rows of the samples table being gathered into a row group.
#[derive(Default)]
struct Rows {
    ids: Vec<u32>,
    ts: Vec<i64>,
    vi: Vec<Option<i64>>,
    vf: Vec<Option<f64>>,
}

impl Rows {
    fn write(&mut self, w: &mut ArrowWriter<&mut Vec<u8>>) -> Result<(), StorageError> {
        let batch = RecordBatch::try_new(
            samples_schema(),
            vec![
                Arc::new(UInt32Array::from(std::mem::take(&mut self.ids))),
                Arc::new(Int64Array::from(std::mem::take(&mut self.ts))),
                Arc::new(Int64Array::from(std::mem::take(&mut self.vi))),
                Arc::new(Float64Array::from(std::mem::take(&mut self.vf))),
            ],
        )
        .map_err(parquet_err)?;
        w.write(&batch).map_err(parquet_err)
    }
}

/// Writes both tables, then the meta: the block exists once its meta does.
pub async fn publish(
    store: &dyn ObjectStore,
    samples: Bytes,
    series: Bytes,
    meta: &BlockMeta,
) -> Result<(), StorageError> {
    store.put(&path(&meta.tenant, &meta.id, "samples.parquet"), PutPayload::from(samples)).await.map_err(store_err)?;
    store.put(&path(&meta.tenant, &meta.id, "series.parquet"), PutPayload::from(series)).await.map_err(store_err)?;
    let json = serde_json::to_vec_pretty(meta).map_err(parquet_err)?;
    store.put(&path(&meta.tenant, &meta.id, "meta.json"), PutPayload::from(json)).await.map_err(store_err)?;
    Ok(())
}

/// Deletes a block, its meta first.
pub async fn delete(store: &dyn ObjectStore, tenant: &str, id: &str) -> Result<(), StorageError> {
    for what in ["meta.json", "samples.parquet", "series.parquet"] {
        match store.delete(&path(tenant, id, what)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_err(e)),
        }
    }
    Ok(())
}

/// Every published block's meta, and the files of unpublished ones.
pub async fn list(store: &dyn ObjectStore) -> Result<(Vec<BlockMeta>, Vec<Path>), StorageError> {
    let objects: Vec<_> = store.list(Some(&Path::from("metrics"))).try_collect().await.map_err(store_err)?;
    let mut metas = Vec::new();
    for o in objects.iter().filter(|o| o.location.as_ref().ends_with(".meta.json")) {
        let bytes = store.get(&o.location).await.map_err(store_err)?.bytes().await.map_err(store_err)?;
        let meta: BlockMeta =
            serde_json::from_slice(&bytes).map_err(|e| parquet_err(format!("{}: {e}", o.location)))?;
        if meta.format_version != FORMAT_VERSION {
            return Err(parquet_err(format!("{}: unknown format version {}", o.location, meta.format_version)));
        }
        metas.push(meta);
    }
    let orphans = objects
        .iter()
        .filter(|o| o.location.as_ref().ends_with(".parquet"))
        .filter(|o| {
            !metas.iter().any(|m| {
                o.location == path(&m.tenant, &m.id, "samples.parquet")
                    || o.location == path(&m.tenant, &m.id, "series.parquet")
            })
        })
        .map(|o| o.location.clone())
        .collect();
    Ok((metas, orphans))
}

/// A block's series and the footer of its samples table, in memory.
pub struct BlockIndex {
    pub labels: Vec<Labels>,
    /// Per series, the decimal scale of its values (`None`: floats).
    scales: Vec<Option<usize>>,
    postings: Postings,
    metadata: ArrowReaderMetadata,
    /// Per row group, the range of series ids and of times it holds.
    groups: Vec<((u32, u32), (i64, i64))>,
}

impl BlockIndex {
    /// Series ids that may match the `label="value"` hints.
    pub fn candidates(&self, hints: &[(&str, &str)]) -> Vec<u32> {
        self.postings.candidates(hints, self.labels.len())
    }
}

async fn read_table(
    store: Arc<dyn ObjectStore>,
    p: Path,
    size: u64,
) -> Result<(ArrowReaderMetadata, Vec<RecordBatch>), StorageError> {
    let mut reader = ObjectReader::new(store.clone(), p.clone(), size);
    let metadata =
        ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(parquet_err)?;
    let b = ParquetRecordBatchStreamBuilder::new_with_metadata(ObjectReader::new(store, p, size), metadata.clone());
    let batches = b.build().map_err(parquet_err)?.try_collect().await.map_err(parquet_err)?;
    Ok((metadata, batches))
}

fn column<T: 'static>(b: &RecordBatch, i: usize) -> Result<&T, StorageError> {
    b.column(i).as_any().downcast_ref::<T>().ok_or_else(|| parquet_err("unexpected column type in a metric block"))
}

pub async fn load_index(store: Arc<dyn ObjectStore>, meta: &BlockMeta) -> Result<BlockIndex, StorageError> {
    let (_, batches) =
        read_table(store.clone(), path(&meta.tenant, &meta.id, "series.parquet"), meta.series_bytes).await?;
    let mut labels = Vec::with_capacity(meta.series as usize);
    let mut scales = Vec::with_capacity(meta.series as usize);
    for b in &batches {
        let (texts, scale) = (column::<StringArray>(b, 1)?, column::<Int32Array>(b, 2)?);
        for i in 0..texts.len() {
            let pairs: Vec<(String, String)> = serde_json::from_str(texts.value(i)).map_err(parquet_err)?;
            labels.push(Labels::new(pairs));
            scales.push(usize::try_from(scale.value(i)).ok().filter(|e| *e < POW10.len()));
        }
    }
    let mut postings = Postings::default();
    for (id, l) in labels.iter().enumerate() {
        postings.add(id as u32, l);
    }
    let samples = path(&meta.tenant, &meta.id, "samples.parquet");
    let mut reader = ObjectReader::new(store, samples, meta.samples_bytes);
    let metadata =
        ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(parquet_err)?;
    let groups = metadata
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| {
            let ids = match rg.column(0).statistics() {
                Some(Statistics::Int32(s)) => {
                    (s.min_opt().map_or(0, |v| *v as u32), s.max_opt().map_or(u32::MAX, |v| *v as u32))
                }
                _ => (0, u32::MAX),
            };
            let times = match rg.column(1).statistics() {
                Some(Statistics::Int64(s)) => {
                    (s.min_opt().copied().unwrap_or(i64::MIN), s.max_opt().copied().unwrap_or(i64::MAX))
                }
                _ => (i64::MIN, i64::MAX),
            };
            (ids, times)
        })
        .collect();
    Ok(BlockIndex { labels, scales, postings, metadata, groups })
}

/// The samples of the given series (ids ascending) in `mint..=maxt`,
/// reading only the row groups that hold them.
pub async fn read(
    store: Arc<dyn ObjectStore>,
    meta: &BlockMeta,
    index: &BlockIndex,
    ids: &[u32],
    mint: i64,
    maxt: i64,
) -> Result<Vec<(u32, Vec<(i64, f64)>)>, StorageError> {
    let groups: Vec<usize> = index
        .groups
        .iter()
        .enumerate()
        .filter(|(_, ((lo, hi), (tmin, tmax)))| {
            let i = ids.partition_point(|id| id < lo);
            ids.get(i).is_some_and(|id| id <= hi) && *tmin <= maxt && mint <= *tmax
        })
        .map(|(i, _)| i)
        .collect();
    // A series' rows come slice by slice, in time order.
    let mut out: std::collections::BTreeMap<u32, Vec<(i64, f64)>> = std::collections::BTreeMap::new();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let reader = ObjectReader::new(store, path(&meta.tenant, &meta.id, "samples.parquet"), meta.samples_bytes);
    let b = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, index.metadata.clone()).with_row_groups(groups);
    let mut stream = b.build().map_err(parquet_err)?;
    while let Some(batch) = stream.try_next().await.map_err(parquet_err)? {
        let (sid, t) = (column::<UInt32Array>(&batch, 0)?.values(), column::<Int64Array>(&batch, 1)?.values());
        let (vi, vf) = (column::<Int64Array>(&batch, 2)?, column::<Float64Array>(&batch, 3)?);
        let mut i = 0;
        while i < sid.len() {
            let id = sid[i];
            let end = i + sid[i..].partition_point(|x| *x == id);
            if ids.binary_search(&id).is_ok() {
                let from = i + t[i..end].partition_point(|x| *x < mint);
                let to = i + t[i..end].partition_point(|x| *x <= maxt);
                if from < to {
                    let scale = index.scales.get(id as usize).copied().flatten();
                    let value = |j: usize| match scale {
                        Some(e) => vi.value(j) as f64 / POW10[e],
                        None => vf.value(j),
                    };
                    let points = (from..to).map(|j| (t[j], value(j)));
                    out.entry(id).or_default().extend(points);
                }
            }
            i = end;
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn values_round_trip_bit_for_bit() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let series: Vec<(Labels, Vec<(i64, f64)>)> = (0..3)
            .map(|s| {
                let labels = Labels::new(vec![("__name__".into(), format!("m{s}"))]);
                let samples = (0..100_000i64)
                    .map(|i| (i * 15_000, if i % 3 == 0 { i as f64 * 0.1 } else { (i / 7) as f64 }))
                    .collect();
                (labels, samples)
            })
            .collect();
        let (samples, table, meta) = encode("t", "b".into(), series.clone(), 3_600_000 * 6).expect("encode");
        publish(store.as_ref(), samples, table, &meta).await.expect("publish");
        let index = load_index(store.clone(), &meta).await.expect("index");
        assert_eq!(index.labels.len(), 3);
        let got = read(store.clone(), &meta, &index, &[0, 1, 2], i64::MIN, i64::MAX).await.expect("read");
        for (id, points) in got {
            assert_eq!(points, series[id as usize].1, "series {id}");
        }
        let one = read(store, &meta, &index, &[1], 15_000 * 70_000, 15_000 * 70_010).await.expect("read");
        assert_eq!(one[0].1, series[1].1[70_000..=70_010]);
    }
}
