//! Immutable metric blocks behind `object_store`: for one tenant and one
//! time window, a series table (`<id>.series.parquet`: id → labels) and a
//! samples table (`<id>.samples.parquet`: series id, time, value, sorted by
//! series then time; delta-encoded times; each value stored as the XOR of
//! its bits with the previous value of its series, as Gorilla does, in a
//! byte-stream-split column, so that unchanged and slowly changing values
//! leave long runs of zero bytes for zstd), published atomically by writing
//! `<id>.meta.json` last. The XOR chain restarts at every series and every
//! row group, so that a row group decodes on its own.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array};
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

use super::labels::Labels;
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
        Field::new("v", DataType::Float64, false),
    ]))
}

fn series_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("series_id", DataType::UInt32, false),
        Field::new("labels", DataType::Utf8, false),
    ]))
}

/// Encodes series (with their samples, in time order) into the two tables
/// and the block's meta. CPU-bound: call it on a blocking thread.
pub fn encode(
    tenant: &str,
    id: String,
    mut series: Vec<(Labels, Vec<(i64, f64)>)>,
) -> Result<(Bytes, Bytes, BlockMeta), StorageError> {
    series.retain(|(_, s)| !s.is_empty());
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(parquet_err)?))
        .set_column_dictionary_enabled(ColumnPath::from("t"), false)
        .set_column_encoding(ColumnPath::from("t"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("v"), false)
        .set_column_encoding(ColumnPath::from("v"), Encoding::BYTE_STREAM_SPLIT)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build();
    let mut samples_out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut samples_out, samples_schema(), Some(props.clone())).map_err(parquet_err)?;
    let (mut ids, mut ts, mut vs) = (Vec::new(), Vec::new(), Vec::new());
    let (mut min_t, mut max_t, mut count) = (i64::MAX, i64::MIN, 0u64);
    let flush = |w: &mut ArrowWriter<&mut Vec<u8>>, ids: &mut Vec<u32>, ts: &mut Vec<i64>, vs: &mut Vec<f64>| {
        let batch = RecordBatch::try_new(
            samples_schema(),
            vec![
                Arc::new(UInt32Array::from(std::mem::take(ids))),
                Arc::new(Int64Array::from(std::mem::take(ts))),
                Arc::new(Float64Array::from(std::mem::take(vs))),
            ],
        )
        .map_err(parquet_err)?;
        w.write(&batch).map_err(parquet_err)
    };
    let mut rows = 0usize;
    for (i, (_, samples)) in series.iter().enumerate() {
        let mut prev = 0u64;
        for &(t, v) in samples {
            if rows.is_multiple_of(ROW_GROUP_ROWS) {
                prev = 0;
            }
            rows += 1;
            ids.push(i as u32);
            ts.push(t);
            vs.push(f64::from_bits(v.to_bits() ^ prev));
            prev = v.to_bits();
            min_t = min_t.min(t);
            max_t = max_t.max(t);
            count += 1;
            if ids.len() == ROW_GROUP_ROWS {
                flush(&mut writer, &mut ids, &mut ts, &mut vs)?;
            }
        }
    }
    if !ids.is_empty() {
        flush(&mut writer, &mut ids, &mut ts, &mut vs)?;
    }
    writer.close().map_err(parquet_err)?;

    let mut series_out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut series_out, series_schema(), Some(props)).map_err(parquet_err)?;
    let texts: Vec<String> =
        series.iter().map(|(l, _)| serde_json::to_string(&l.iter().collect::<Vec<_>>()).unwrap_or_default()).collect();
    let batch = RecordBatch::try_new(
        series_schema(),
        vec![Arc::new(UInt32Array::from_iter_values(0..series.len() as u32)), Arc::new(StringArray::from(texts))],
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
    };
    Ok((Bytes::from(samples_out), Bytes::from(series_out), meta))
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
    postings: HashMap<String, HashMap<String, Vec<u32>>>,
    metadata: ArrowReaderMetadata,
    /// Per row group, the range of series ids it holds.
    groups: Vec<(u32, u32)>,
}

impl BlockIndex {
    /// Series ids that may match: the intersection of the hints' postings.
    pub fn candidates(&self, hints: &[(&str, &str)]) -> Vec<u32> {
        let mut lists = hints
            .iter()
            .map(|(k, v)| self.postings.get(*k).and_then(|vals| vals.get(*v)).map(Vec::as_slice).unwrap_or_default());
        let Some(first) = lists.next() else {
            return (0..self.labels.len() as u32).collect();
        };
        let mut ids = first.to_vec();
        for list in lists {
            ids.retain(|id| list.binary_search(id).is_ok());
        }
        ids
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
    for b in &batches {
        let texts = column::<StringArray>(b, 1)?;
        for i in 0..texts.len() {
            let pairs: Vec<(String, String)> = serde_json::from_str(texts.value(i)).map_err(parquet_err)?;
            labels.push(Labels::new(pairs));
        }
    }
    let mut postings: HashMap<String, HashMap<String, Vec<u32>>> = HashMap::new();
    for (id, l) in labels.iter().enumerate() {
        for (k, v) in l.iter() {
            postings.entry(k.to_owned()).or_default().entry(v.to_owned()).or_default().push(id as u32);
        }
    }
    let samples = path(&meta.tenant, &meta.id, "samples.parquet");
    let mut reader = ObjectReader::new(store, samples, meta.samples_bytes);
    let metadata =
        ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(parquet_err)?;
    let groups = metadata
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| match rg.column(0).statistics() {
            Some(Statistics::Int32(s)) => {
                (s.min_opt().map_or(0, |v| *v as u32), s.max_opt().map_or(u32::MAX, |v| *v as u32))
            }
            _ => (0, u32::MAX),
        })
        .collect();
    Ok(BlockIndex { labels, postings, metadata, groups })
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
        .filter(|(_, (lo, hi))| {
            let i = ids.partition_point(|id| id < lo);
            ids.get(i).is_some_and(|id| id <= hi)
        })
        .map(|(i, _)| i)
        .collect();
    let mut out: Vec<(u32, Vec<(i64, f64)>)> = Vec::new();
    if groups.is_empty() {
        return Ok(out);
    }
    let sizes: Vec<usize> =
        groups.iter().map(|g| index.metadata.metadata().row_group(*g).num_rows() as usize).collect();
    let reader = ObjectReader::new(store, path(&meta.tenant, &meta.id, "samples.parquet"), meta.samples_bytes);
    let b = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, index.metadata.clone()).with_row_groups(groups);
    let mut stream = b.build().map_err(parquet_err)?;
    // Where the XOR chain stands: the row group being read, its rows not
    // yet seen, and the series and value bits of the previous row.
    let (mut group, mut left) = (0usize, sizes.first().copied().unwrap_or(0));
    let mut chain: (u32, u64) = (u32::MAX, 0);
    while let Some(batch) = stream.try_next().await.map_err(parquet_err)? {
        let (sid, t, v) =
            (column::<UInt32Array>(&batch, 0)?, column::<Int64Array>(&batch, 1)?, column::<Float64Array>(&batch, 2)?);
        let (sid, t, v) = (sid.values(), t.values(), v.values());
        let mut i = 0;
        while i < sid.len() {
            while left == 0 {
                group += 1;
                left = sizes.get(group).copied().ok_or_else(|| parquet_err("more rows than the row groups hold"))?;
                chain = (u32::MAX, 0);
            }
            let id = sid[i];
            // This series' rows here, within the row group.
            let end = (i + sid[i..].partition_point(|x| *x == id)).min(i + left);
            left -= end - i;
            if ids.binary_search(&id).is_ok() {
                if chain.0 != id {
                    chain = (id, 0);
                }
                let mut points = Vec::new();
                for j in i..end {
                    chain.1 ^= v[j].to_bits();
                    if mint <= t[j] && t[j] <= maxt {
                        points.push((t[j], f64::from_bits(chain.1)));
                    }
                }
                match out.last_mut() {
                    Some((last, p)) if *last == id => p.extend(points),
                    _ if !points.is_empty() => out.push((id, points)),
                    _ => {}
                }
            }
            i = end;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn values_round_trip_through_the_xor_chain() {
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
        let (samples, table, meta) = encode("t", "b".into(), series.clone()).expect("encode");
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
