//! One tenant's spans not yet in a part, as column chunks.
//!
//! A batch of at least [`MIN_CHUNK_ROWS`] spans is converted into a record
//! batch (in [`columns::head_schema`], with its resources once in a table
//! beside the rows) and packed ([`Chunk`]) by the caller, outside the
//! store's lock, and kept as one chunk; smaller batches wait as spans in
//! `pending` until [`CHUNK_ROWS`] of them are sealed into a chunk together.
//! A flush unpacks the chunks and hands them to
//! [`part::encode_chunks`](super::part::encode_chunks), which sorts and
//! writes them without converting again. Queries test a chunk's key
//! columns in place with the same predicates as parts, and unpack only a
//! chunk with rows to return or attributes to check.

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray, UInt32Array};
use arrow::compute::{filter_record_batch, take_record_batch};

use super::chunk::{Chunk, KEY_MASK};
use super::columns::{self, SpanBatch};
use super::part;
use super::query::SpanQuery;
use crate::StorageError;
use crate::model::{Span, TraceId};

/// Batches at least this large become a chunk of their own.
pub(super) const MIN_CHUNK_ROWS: usize = 64;
/// Small batches are sealed into a chunk once this many spans wait.
const CHUNK_ROWS: usize = 4096;

#[derive(Default)]
pub(super) struct TenantHead {
    chunks: Vec<Chunk>,
    pending: Vec<Span>,
    pub spans: usize,
    /// Bytes the chunks hold.
    pub bytes: usize,
}

fn arrow_err(e: arrow::error::ArrowError) -> StorageError {
    StorageError::Part(format!("span head: {e}"))
}

/// Converts spans into one batch.
pub(super) fn batch_of(spans: &[Span]) -> Result<SpanBatch, StorageError> {
    columns::to_batch(&spans.iter().collect::<Vec<_>>()).map_err(arrow_err)
}

/// Converts spans into one packed chunk.
pub(super) fn chunk_of(spans: &[Span]) -> Result<Chunk, StorageError> {
    Chunk::pack(batch_of(spans)?)
}

impl TenantHead {
    /// Adds a chunk; returns the bytes its buffers hold.
    pub(super) fn push_chunk(&mut self, chunk: Chunk) -> usize {
        self.spans += chunk.rows();
        self.keep(chunk)
    }

    fn keep(&mut self, chunk: Chunk) -> usize {
        let bytes = chunk.bytes();
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

    /// Every span as unpacked batches, for a flush.
    pub(super) fn all_batches(&self) -> Result<Vec<SpanBatch>, StorageError> {
        let mut batches = self.chunks.iter().map(Chunk::unpack).collect::<Result<Vec<_>, _>>()?;
        if !self.pending.is_empty() {
            batches.push(batch_of(&self.pending)?);
        }
        Ok(batches)
    }

    /// The chunks (cheap to clone: their buffers are shared), for reading
    /// outside the store's lock.
    pub(super) fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The spans not yet in a chunk.
    pub(super) fn pending(&self) -> &[Span] {
        &self.pending
    }
}

/// The spans of the traces `ids` (sorted) in `chunks`.
pub(super) fn traces_in(chunks: &[Chunk], ids: &[TraceId], out: &mut Vec<Span>) -> Result<(), StorageError> {
    for chunk in chunks {
        let column = chunk
            .keys()
            .column(0)
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| StorageError::Part("span head chunk without trace ids".into()))?;
        let rows: Vec<u32> =
            (0..column.len()).filter(|&i| part::is_one_of(ids, column.value(i))).map(|i| i as u32).collect();
        if !rows.is_empty() {
            let chunk = chunk.unpack()?;
            let taken = take_record_batch(&chunk.rows, &UInt32Array::from(rows)).map_err(arrow_err)?;
            out.extend(columns::from_batch(&taken, &chunk.resources).map_err(|e| StorageError::Part(e.to_string()))?);
        }
    }
    Ok(())
}

/// The rows of `chunk` that `query` matches (none: no row does). The key
/// columns are tested in place; attribute conditions, where those match,
/// on the chunk unpacked, which comes back with the rows.
fn matching(chunk: &Chunk, query: &SpanQuery) -> Result<Option<(BooleanArray, Option<SpanBatch>)>, StorageError> {
    let coarse = query.coarse_mask(chunk.keys(), KEY_MASK).map_err(arrow_err)?;
    if coarse.true_count() == 0 {
        return Ok(None);
    }
    if query.attributes.is_empty() {
        return Ok(Some((coarse, None)));
    }
    let batch = chunk.unpack()?;
    let attributes = super::attributes::mask(query, &batch.rows, &batch.resources).map_err(arrow_err)?;
    let mask = arrow::compute::and(&coarse, &attributes).map_err(arrow_err)?;
    Ok((mask.true_count() > 0).then_some((mask, Some(batch))))
}

/// Calls `each` with every span of `chunks` that `query` matches.
pub(super) fn scan_chunks(
    chunks: &[Chunk],
    query: &SpanQuery,
    each: &mut impl FnMut(&Span),
) -> Result<(), StorageError> {
    for chunk in chunks {
        let Some((mask, unpacked)) = matching(chunk, query)? else { continue };
        let batch = match unpacked {
            Some(batch) => batch,
            None => chunk.unpack()?,
        };
        let kept = filter_record_batch(&batch.rows, &mask).map_err(arrow_err)?;
        let spans = columns::from_batch(&kept, &batch.resources).map_err(|e| StorageError::Part(e.to_string()))?;
        spans.iter().for_each(&mut *each);
    }
    Ok(())
}

/// (trace id, start) of every span of `chunks` that `query` matches: read
/// from the key columns, unpacked only to check attributes.
pub(super) fn starts_in(
    chunks: &[Chunk],
    query: &SpanQuery,
    out: &mut Vec<(TraceId, u64)>,
) -> Result<(), StorageError> {
    for chunk in chunks {
        if let Some((mask, _)) = matching(chunk, query)? {
            part::starts_of(chunk.keys(), 0, KEY_MASK[0], Some(&mask), out)?;
        }
    }
    Ok(())
}
