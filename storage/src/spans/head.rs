//! One tenant's spans not yet in a part, as Arrow column chunks.
//!
//! A batch of at least [`MIN_CHUNK_ROWS`] spans is converted into a record
//! batch (in [`columns::schema`], with its resources once in a table beside
//! the rows) by the caller, outside the store's lock, and kept as one
//! chunk; smaller batches wait as spans in `pending` until [`CHUNK_ROWS`]
//! of them are sealed into a chunk together. A flush hands
//! the chunks to [`part::encode_chunks`](super::part::encode_chunks), which
//! sorts and writes them without converting again. Queries read the chunks
//! with the same column predicates as parts, and decode only matching rows.

use arrow::array::{Array, FixedSizeBinaryArray, UInt32Array};
use arrow::compute::{filter_record_batch, take_record_batch};

use super::columns::{self, SpanBatch};
use super::part;
use super::query::{SCHEMA_MASK_COLUMNS, SpanQuery};
use crate::StorageError;
use crate::model::{Span, TraceId};

/// Batches at least this large become a chunk of their own.
pub(super) const MIN_CHUNK_ROWS: usize = 64;
/// Small batches are sealed into a chunk once this many spans wait.
const CHUNK_ROWS: usize = 4096;

#[derive(Default)]
pub(super) struct TenantHead {
    chunks: Vec<SpanBatch>,
    pending: Vec<Span>,
    pub spans: usize,
    /// Bytes of the chunks' Arrow buffers.
    pub bytes: usize,
}

fn arrow_err(e: arrow::error::ArrowError) -> StorageError {
    StorageError::Part(format!("span head: {e}"))
}

/// Converts spans into one chunk.
pub(super) fn chunk_of(spans: &[Span]) -> Result<SpanBatch, StorageError> {
    columns::to_batch(&spans.iter().collect::<Vec<_>>()).map_err(arrow_err)
}

impl TenantHead {
    /// Adds a chunk; returns the bytes its buffers hold.
    pub(super) fn push_chunk(&mut self, chunk: SpanBatch) -> usize {
        self.spans += chunk.rows.num_rows();
        self.keep(chunk)
    }

    fn keep(&mut self, chunk: SpanBatch) -> usize {
        let bytes = chunk.rows.get_array_memory_size();
        self.bytes += bytes;
        self.chunks.push(chunk);
        bytes
    }

    /// Adds a small batch; seals the waiting spans once there are enough.
    /// Returns the bytes of the chunk sealed, if one was.
    pub(super) fn push_spans(&mut self, spans: Vec<Span>) -> Result<usize, StorageError> {
        self.spans += spans.len();
        self.pending.extend(spans);
        if self.pending.len() < CHUNK_ROWS {
            return Ok(0);
        }
        let chunk = chunk_of(&self.pending)?;
        self.pending.clear();
        Ok(self.keep(chunk))
    }

    /// Every span as chunks, for a flush.
    pub(super) fn all_chunks(&self) -> Result<Vec<SpanBatch>, StorageError> {
        let mut chunks = self.chunks.clone();
        if !self.pending.is_empty() {
            chunks.push(chunk_of(&self.pending)?);
        }
        Ok(chunks)
    }

    /// The chunks (cheap to clone: their buffers are shared), for reading
    /// outside the store's lock.
    pub(super) fn chunks(&self) -> &[SpanBatch] {
        &self.chunks
    }

    /// The spans not yet in a chunk.
    pub(super) fn pending(&self) -> &[Span] {
        &self.pending
    }
}

/// The spans of the traces `ids` (sorted) in `chunks`.
pub(super) fn traces_in(chunks: &[SpanBatch], ids: &[TraceId], out: &mut Vec<Span>) -> Result<(), StorageError> {
    for chunk in chunks {
        let column = chunk
            .rows
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| StorageError::Part("span head chunk without trace ids".into()))?;
        let rows: Vec<u32> =
            (0..column.len()).filter(|&i| part::is_one_of(ids, column.value(i))).map(|i| i as u32).collect();
        if !rows.is_empty() {
            let taken = take_record_batch(&chunk.rows, &UInt32Array::from(rows)).map_err(arrow_err)?;
            out.extend(columns::from_batch(&taken, &chunk.resources).map_err(|e| StorageError::Part(e.to_string()))?);
        }
    }
    Ok(())
}

/// Calls `each` with every span of `chunks` that `query` matches.
pub(super) fn scan_chunks(
    chunks: &[SpanBatch],
    query: &SpanQuery,
    each: &mut impl FnMut(&Span),
) -> Result<(), StorageError> {
    for chunk in chunks {
        let mask = query.mask(chunk).map_err(arrow_err)?;
        if mask.true_count() == 0 {
            continue;
        }
        let kept = filter_record_batch(&chunk.rows, &mask).map_err(arrow_err)?;
        let spans = columns::from_batch(&kept, &chunk.resources).map_err(|e| StorageError::Part(e.to_string()))?;
        spans.iter().for_each(&mut *each);
    }
    Ok(())
}

/// (trace id, start) of every span of `chunks` that `query` matches: read
/// from the columns, nothing decoded.
pub(super) fn starts_in(
    chunks: &[SpanBatch],
    query: &SpanQuery,
    out: &mut Vec<(TraceId, u64)>,
) -> Result<(), StorageError> {
    for chunk in chunks {
        let mask = query.mask(chunk).map_err(arrow_err)?;
        if mask.true_count() > 0 {
            super::part::starts_of(&chunk.rows, 0, SCHEMA_MASK_COLUMNS[0], Some(&mask), out)?;
        }
    }
    Ok(())
}
