//! Trace search and the service dependency graph, over the span store.

use std::collections::{BTreeMap, HashMap};

use sightline_storage::StorageError;
use sightline_storage::model::{SpanId, StatusCode, Tenant, TraceId};
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

/// One edge of the service graph.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    pub error_count: u64,
}

/// Caller → callee edges between services, from parent/child spans whose
/// services differ, for spans that overlap the time range.
pub async fn dependencies(store: &SpanStore, tenant: &Tenant, start: u64, end: u64) -> Result<Vec<Edge>, StorageError> {
    struct Lite {
        parent: Option<SpanId>,
        service: String,
        error: bool,
    }
    let mut traces: HashMap<TraceId, HashMap<SpanId, Lite>> = HashMap::new();
    let query = SpanQuery { start_unix_nano: start, end_unix_nano: end, ..SpanQuery::default() };
    store
        .scan(tenant, &query, |s| {
            traces.entry(s.trace_id).or_default().insert(
                s.span_id,
                Lite {
                    parent: s.parent_span_id,
                    service: s.resource.service.clone(),
                    error: s.status_code == StatusCode::Error,
                },
            );
        })
        .await?;
    let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
    for spans in traces.values() {
        for child in spans.values() {
            let Some(parent) = child.parent.and_then(|p| spans.get(&p)) else { continue };
            if parent.service != child.service {
                let e = edges.entry((parent.service.clone(), child.service.clone())).or_insert_with(|| Edge {
                    parent: parent.service.clone(),
                    child: child.service.clone(),
                    ..Edge::default()
                });
                e.call_count += 1;
                e.error_count += u64::from(child.error);
            }
        }
    }
    Ok(edges.into_values().collect())
}
