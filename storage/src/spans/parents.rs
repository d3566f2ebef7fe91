//! The service dependency graph: from the parts' trace tables where they
//! give a trace whole, else from where each span sits in its trace (trace,
//! span, parent, service, error), read from five columns without decoding
//! the spans.

use std::collections::BTreeMap;

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray, RecordBatch, StringArray, UInt8Array};

use super::chunk;
use super::columns;
use super::part::{self, PartMeta};
use super::query::SpanQuery;
use super::store::SpanStore;
use super::trace_table::{self, Coverage, EdgeRow, Interner};
use crate::StorageError;
use crate::model::{Span, SpanId, StatusCode, Tenant, TraceId};

/// One span's place in its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpanParent<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    service: &'a str,
    error: bool,
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

/// One edge of the service graph: calls from spans of `parent` to their
/// child spans of `child`, and how many of those failed.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    pub error_count: u64,
}

/// The graph while it is gathered: the edges that the parts' trace tables
/// give whole, and the places of the spans of the traces that must be
/// joined from their spans.
#[derive(Default)]
struct Graph {
    services: Interner,
    /// By (parent, child) service: calls, failed calls.
    edges: BTreeMap<(u32, u32), (u64, u64)>,
    // Hashed once or twice per span: a fast hasher, not SipHash.
    traces: foldhash::HashMap<TraceId, foldhash::HashMap<SpanId, Place>>,
}

struct Place {
    parent: Option<SpanId>,
    service: u32,
    error: bool,
}

impl Graph {
    fn service(&mut self, name: &str) -> u32 {
        self.services.id(name)
    }

    fn join(&mut self, s: SpanParent<'_>) {
        let service = self.service(s.service);
        let place = Place { parent: s.parent_span_id, service, error: s.error };
        self.traces.entry(s.trace_id).or_default().insert(s.span_id, place);
    }

    fn add(&mut self, parent: u32, child: u32, calls: u64, errors: u64) {
        let e = self.edges.entry((parent, child)).or_default();
        e.0 += calls;
        e.1 += errors;
    }

    fn finish(mut self) -> Vec<Edge> {
        for spans in std::mem::take(&mut self.traces).values() {
            for child in spans.values() {
                let Some(parent) = child.parent.and_then(|p| spans.get(&p)) else { continue };
                if parent.service != child.service {
                    self.add(parent.service, child.service, 1, u64::from(child.error));
                }
            }
        }
        let mut out: Vec<Edge> = self
            .edges
            .iter()
            .map(|(&(parent, child), &(call_count, error_count))| Edge {
                parent: self.services.values[parent as usize].clone(),
                child: self.services.values[child as usize].clone(),
                call_count,
                error_count,
            })
            .collect();
        out.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        out
    }
}

impl SpanStore {
    /// Caller → callee edges between services, from parent/child spans of
    /// different services among the spans that overlap `start..=end`.
    ///
    /// A part's trace table (format version 4) gives the edges of each of
    /// its traces; they are added up for the traces that lie wholly in the
    /// range, have every parent in the part and no span elsewhere in the
    /// heads or in older parts. Only the other traces are joined from their
    /// spans' places (five columns, no span decoded), read by trace id.
    pub async fn dependencies(&self, tenant: &Tenant, start: u64, end: u64) -> Result<Vec<Edge>, StorageError> {
        let query = SpanQuery { start_unix_nano: start, end_unix_nano: end, ..SpanQuery::default() };
        let mut graph = Graph::default();
        let (chunks, parts) = self.snapshot(tenant, &query, |s| graph.join(SpanParent::of(s)));
        for chunk in &chunks {
            let mask = query
                .coarse_mask(chunk.keys(), chunk::KEY_MASK)
                .map_err(|e| StorageError::Part(format!("span head: {e}")))?;
            if mask.true_count() > 0 {
                let columns =
                    chunk.keys().project(&chunk::among_keys(COLUMNS)).map_err(|e| StorageError::Part(e.to_string()))?;
                parents_of(&columns, Some(&mask), &mut |p| graph.join(p))?;
            }
        }
        let mut tables = Vec::new();
        for m in parts {
            let store = self.inner.store.clone();
            match trace_table::edge_rows(store, &m, start, end, &mut |s| graph.service(s)).await? {
                Some(rows) => tables.push((m, rows)),
                None => self.join_part(&m, &query, None, &mut graph).await?,
            }
        }
        // Traces some of whose spans the heads or older parts hold, or
        // that a table cannot give whole, are joined from all their spans.
        let mut joined: foldhash::HashSet<TraceId> = graph.traces.keys().copied().collect();
        let partial = |r: &&EdgeRow| !r.complete || r.coverage == Coverage::Partial;
        joined.extend(tables.iter().flat_map(|(_, rows)| rows.iter().filter(partial)).map(|r| r.trace));
        for (m, rows) in &tables {
            let mut ids = Vec::new();
            for r in rows {
                if joined.contains(&r.trace) {
                    ids.push(r.trace);
                } else {
                    r.edges.iter().for_each(|&(parent, child, calls, errors)| graph.add(parent, child, calls, errors));
                }
            }
            if !ids.is_empty() {
                ids.sort_unstable();
                ids.dedup();
                self.join_part(m, &query, Some(&ids), &mut graph).await?;
            }
        }
        Ok(graph.finish())
    }

    /// Joins the places of the part's spans that `query` matches (of the
    /// traces `ids` only, when given).
    async fn join_part(
        &self,
        m: &PartMeta,
        query: &SpanQuery,
        ids: Option<&[TraceId]>,
        graph: &mut Graph,
    ) -> Result<(), StorageError> {
        let index = self.inner.index(m).await?;
        let store = self.inner.store.clone();
        for batch in part::read_matching_columns(store, m, &index, query, ids, &COLUMNS).await? {
            parents_of(&batch, None, &mut |p| graph.join(p))?;
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
