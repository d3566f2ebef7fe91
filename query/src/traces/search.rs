//! Trace search and the service dependency graph, over the span store.

use std::collections::{BTreeMap, HashMap};

use sightline_storage::StorageError;
use sightline_storage::model::{SpanId, Tenant, TraceId};
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
/// services differ, for spans that overlap the time range. Reads each
/// span's place in its trace ([`SpanStore::scan_parents`]), not the spans.
pub async fn dependencies(store: &SpanStore, tenant: &Tenant, start: u64, end: u64) -> Result<Vec<Edge>, StorageError> {
    struct Place {
        parent: Option<SpanId>,
        /// Index into `services`.
        service: u32,
        error: bool,
    }
    let mut services: Vec<String> = Vec::new();
    let mut service_ids: HashMap<String, u32> = HashMap::new();
    // Hashed once or twice per span: a fast hasher, not SipHash.
    let mut traces: foldhash::HashMap<TraceId, foldhash::HashMap<SpanId, Place>> = Default::default();
    let query = SpanQuery { start_unix_nano: start, end_unix_nano: end, ..SpanQuery::default() };
    store
        .scan_parents(tenant, &query, |s| {
            let service = match service_ids.get(s.service) {
                Some(&id) => id,
                None => {
                    let id = services.len() as u32;
                    services.push(s.service.to_owned());
                    service_ids.insert(s.service.to_owned(), id);
                    id
                }
            };
            traces
                .entry(s.trace_id)
                .or_default()
                .insert(s.span_id, Place { parent: s.parent_span_id, service, error: s.error });
        })
        .await?;
    let mut edges: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
    for spans in traces.values() {
        for child in spans.values() {
            let Some(parent) = child.parent.and_then(|p| spans.get(&p)) else { continue };
            if parent.service != child.service {
                let e = edges.entry((parent.service, child.service)).or_default();
                e.0 += 1;
                e.1 += u64::from(child.error);
            }
        }
    }
    let mut out: Vec<Edge> = edges
        .into_iter()
        .map(|((parent, child), (call_count, error_count))| Edge {
            parent: services[parent as usize].clone(),
            child: services[child as usize].clone(),
            call_count,
            error_count,
        })
        .collect();
    out.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
    Ok(out)
}
