//! Where each span sits in its trace (trace, span, parent, service, error):
//! what a service graph is built from, read from five columns without
//! decoding the spans.

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray, RecordBatch, StringArray, UInt8Array};

use super::columns;
use super::part;
use super::query::SpanQuery;
use super::store::SpanStore;
use crate::StorageError;
use crate::model::{Span, SpanId, StatusCode, Tenant, TraceId};

/// One span's place in its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanParent<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub service: &'a str,
    pub error: bool,
}

impl<'a> SpanParent<'a> {
    fn of(s: &'a Span) -> Self {
        Self {
            trace_id: s.trace_id,
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            service: &s.resource.service,
            error: s.status_code == StatusCode::Error,
        }
    }
}

/// The columns read, by their place in [`columns::schema`]: trace_id,
/// span_id, parent_span_id, service, status_code.
const COLUMNS: [usize; 5] = [0, 1, 2, 5, 8];

impl SpanStore {
    /// Calls `each` with the place of every span of the tenant that `query`
    /// matches: the heads, then the parts whose time range overlaps the
    /// query's.
    pub async fn scan_parents(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
        mut each: impl FnMut(SpanParent<'_>),
    ) -> Result<(), StorageError> {
        let (chunks, parts) = self.snapshot(tenant, query, |s| each(SpanParent::of(s)));
        for chunk in &chunks {
            let mask = query.mask(chunk).map_err(|e| StorageError::Part(format!("span head: {e}")))?;
            if mask.true_count() > 0 {
                let columns = chunk.rows.project(&COLUMNS).map_err(|e| StorageError::Part(e.to_string()))?;
                parents_of(&columns, Some(&mask), &mut each)?;
            }
        }
        for m in &parts {
            let index = self.inner.index(m).await?;
            let store = self.inner.store.clone();
            for batch in part::read_matching_columns(store, m, &index, query, None, &COLUMNS).await? {
                parents_of(&batch, None, &mut each)?;
            }
        }
        Ok(())
    }
}

/// Calls `each` with the rows of `batch` (the [`COLUMNS`], in that order)
/// that `mask` keeps (all without one).
fn parents_of(
    batch: &RecordBatch,
    mask: Option<&BooleanArray>,
    each: &mut impl FnMut(SpanParent<'_>),
) -> Result<(), StorageError> {
    let bad = || StorageError::Part("span batch without its trace, span, parent, service and status".into());
    let fixed = |i: usize| batch.column(i).as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or_else(bad);
    let (traces, spans, parents) = (fixed(0)?, fixed(1)?, fixed(2)?);
    let services: StringArray = columns::strings(batch.column(3).as_ref(), "service").map_err(|_| bad())?;
    let statuses = batch.column(4).as_any().downcast_ref::<UInt8Array>().ok_or_else(bad)?;
    for row in 0..batch.num_rows() {
        if mask.is_some_and(|m| !m.value(row)) {
            continue;
        }
        each(SpanParent {
            trace_id: TraceId(columns::fixed_at(traces, row)),
            span_id: SpanId(columns::fixed_at(spans, row)),
            parent_span_id: parents.is_valid(row).then(|| SpanId(columns::fixed_at(parents, row))),
            service: services.value(row),
            error: statuses.value(row) == StatusCode::Error as u8,
        });
    }
    Ok(())
}
