//! A sealed chunk of the head: the columns that searches and trace lookups
//! test kept as Arrow arrays, every other column packed.
//!
//! The trace, span and parent ids, start, duration, service, name and
//! status code stay as they are (some 63 bytes a span): trace by id, the
//! service graph and a search by service, name, duration or status read
//! them in place, without unpacking. The rest (attributes, events, links,
//! scopes and the hot attributes' columns: some 220 bytes a span as Arrow
//! buffers) is written as one Arrow IPC stream and compressed with zstd at
//! level 1; it is unpacked for the rows a read returns, for an attribute
//! condition, and by the flush.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use super::columns::{self, SpanBatch};
use super::query::{MaskColumns, SCHEMA_MASK_COLUMNS};
use super::resources::Resources;
use crate::StorageError;

/// The key columns' places in a head batch: the trace, span and parent
/// ids (random bytes, which compression would not shrink) and the coarse
/// mask's columns.
const KEY_COLUMNS: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 8];

/// Where columns of a head batch (all of them key columns) stand in
/// [`Chunk::keys`]; any other column fails the build.
pub(super) const fn among_keys<const N: usize>(columns: [usize; N]) -> [usize; N] {
    let mut out = [0; N];
    let mut i = 0;
    while i < N {
        let mut k = 0;
        while KEY_COLUMNS[k] != columns[i] {
            k += 1;
        }
        out[i] = k;
        i += 1;
    }
    out
}

/// The coarse mask's columns in [`Chunk::keys`].
pub(super) const KEY_MASK: MaskColumns = among_keys(SCHEMA_MASK_COLUMNS);

/// zstd's fastest level that still halves the packed columns.
const LEVEL: i32 = 1;

/// zstd's contexts, made once a thread (making one costs more than
/// compressing a small chunk).
#[derive(Default)]
struct Codec {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl Codec {
    fn compress(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let compressor = match &mut self.compressor {
            Some(c) => c,
            None => self.compressor.insert(zstd::bulk::Compressor::new(LEVEL)?),
        };
        compressor.compress(data)
    }

    fn decompress(&mut self, data: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
        let decompressor = match &mut self.decompressor {
            Some(d) => d,
            None => self.decompressor.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(data, len)
    }
}

thread_local! {
    static CODEC: std::cell::RefCell<Codec> = std::cell::RefCell::default();
}

/// Spans of one head chunk; cheap to clone (its buffers are shared).
#[derive(Clone, Debug)]
pub(super) struct Chunk {
    keys: RecordBatch,
    packed: Arc<[u8]>,
    /// Bytes of the IPC stream before compression.
    raw_len: usize,
    resources: Resources,
}

fn err(what: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Part(format!("span head chunk: {what}: {e}"))
}

impl Chunk {
    /// Packs a head batch ([`columns::head_schema`]).
    pub(super) fn pack(batch: SpanBatch) -> Result<Chunk, StorageError> {
        let keys = batch.rows.project(&KEY_COLUMNS).map_err(|e| err("keys", e))?;
        let rest: Vec<usize> = (0..batch.rows.num_columns()).filter(|c| !KEY_COLUMNS.contains(c)).collect();
        let rest = batch.rows.project(&rest).map_err(|e| err("columns", e))?;
        let mut stream = Vec::with_capacity(rest.get_array_memory_size());
        let mut writer = StreamWriter::try_new(&mut stream, &rest.schema()).map_err(|e| err("pack", e))?;
        writer.write(&rest).map_err(|e| err("pack", e))?;
        writer.finish().map_err(|e| err("pack", e))?;
        drop(writer);
        let packed = CODEC.with_borrow_mut(|codec| codec.compress(&stream)).map_err(|e| err("compress", e))?;
        Ok(Chunk { keys, packed: packed.into(), raw_len: stream.len(), resources: batch.resources })
    }

    /// The whole batch again, in [`columns::head_schema`].
    pub(super) fn unpack(&self) -> Result<SpanBatch, StorageError> {
        let stream = CODEC
            .with_borrow_mut(|codec| codec.decompress(&self.packed, self.raw_len))
            .map_err(|e| err("decompress", e))?;
        let mut reader = StreamReader::try_new(std::io::Cursor::new(stream), None).map_err(|e| err("unpack", e))?;
        let rest = reader.next().ok_or_else(|| err("unpack", "no rows"))?.map_err(|e| err("unpack", e))?;
        let schema = columns::head_schema();
        let (mut keys, mut others) = (self.keys.columns().iter(), rest.columns().iter());
        let all: Vec<ArrayRef> = (0..schema.fields().len())
            .map(|i| if KEY_COLUMNS.contains(&i) { keys.next() } else { others.next() })
            .map(|c| c.cloned().ok_or_else(|| err("unpack", "a column is missing")))
            .collect::<Result<_, _>>()?;
        let rows = RecordBatch::try_new(schema, all).map_err(|e| err("unpack", e))?;
        Ok(SpanBatch { rows, resources: self.resources.clone() })
    }

    /// The key columns ([`among_keys`] says where each stands).
    pub(super) fn keys(&self) -> &RecordBatch {
        &self.keys
    }

    pub(super) fn rows(&self) -> usize {
        self.keys.num_rows()
    }

    /// Bytes the chunk holds in memory.
    pub(super) fn bytes(&self) -> usize {
        self.keys.get_array_memory_size() + self.packed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::tests::varied_spans;

    #[test]
    fn a_packed_chunk_unpacks_to_the_batch_it_was_and_holds_less() {
        let spans = varied_spans(40, crate::spans::tests::now());
        let batch = columns::to_batch(&spans.iter().collect::<Vec<_>>()).expect("batch");
        let arrow_bytes = batch.rows.get_array_memory_size();
        let chunk = Chunk::pack(batch.clone()).expect("pack");
        assert_eq!(chunk.rows(), spans.len());
        assert!(chunk.bytes() * 2 < arrow_bytes, "{} bytes packed, {arrow_bytes} as Arrow", chunk.bytes());
        let back = chunk.unpack().expect("unpack");
        assert_eq!(back.rows, batch.rows);
        let decoded = columns::from_batch(&back.rows, &back.resources).expect("spans");
        assert!(decoded == columns::from_batch(&batch.rows, &batch.resources).expect("spans"), "the same spans");
    }

    #[test]
    fn a_damaged_chunk_is_an_error() {
        let spans = varied_spans(5, crate::spans::tests::now());
        let mut chunk =
            Chunk::pack(columns::to_batch(&spans.iter().collect::<Vec<_>>()).expect("batch")).expect("pack");
        let mut packed = chunk.packed.to_vec();
        packed.truncate(packed.len() / 2);
        chunk.packed = packed.into();
        assert!(chunk.unpack().is_err());
    }
}
