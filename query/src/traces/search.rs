//! Trace search and the service dependency graph, over the span store.

use sightline_storage::StorageError;
use sightline_storage::model::Tenant;
use sightline_storage::spans::{SpanQuery, SpanStore};

use super::assemble::{Trace, assemble};

/// The newest traces (by the latest matching span start) with a span that
/// matches `query`, assembled, at most `limit` (see [`SpanStore::newest_traces`]).
pub async fn search(
    store: &SpanStore,
    tenant: &Tenant,
    query: &SpanQuery,
    limit: usize,
    max_spans: usize,
) -> Result<Vec<Trace>, StorageError> {
    let found = store.newest_traces(tenant, query, limit, max_spans).await?;
    let traces = found.into_iter().map(|f| assemble(f.id, f.spans, f.truncated, true)).collect();
    Ok(traces)
}

pub use sightline_storage::spans::Edge;

/// Caller → callee edges between services over the time range (see
/// [`SpanStore::dependencies`]).
pub async fn dependencies(store: &SpanStore, tenant: &Tenant, start: u64, end: u64) -> Result<Vec<Edge>, StorageError> {
    store.dependencies(tenant, start, end).await
}
