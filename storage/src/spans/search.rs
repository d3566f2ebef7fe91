//! Trace search: the newest traces with a span that matches a query.
//!
//! Traces rank by the start of their latest matching span, newest first
//! (ties by trace id). The store names candidate traces with an upper
//! bound of that start ([`SpanStore::candidates`]: exact in the head, from
//! the trace tables in parts); they are verified newest bound first by
//! reading the predicate's columns of those traces only, and the search
//! stops once the last trace it keeps ranks above the best bound left.
//! Queries with attribute conditions get exact starts from a scan instead,
//! so they need no verification. The answer's traces are then read whole,
//! in one read of each part: the answer is the one a scan of every span
//! would give, having read about `limit` traces.

use std::collections::HashMap;

use super::query::SpanQuery;
use super::store::SpanStore;
use crate::StorageError;
use crate::model::{Span, Tenant, TraceId};

/// A trace found by a search.
#[derive(Debug)]
pub struct FoundTrace {
    pub id: TraceId,
    /// Start of the trace's latest span that matches the query.
    pub latest_match: u64,
    /// At most the limit asked for.
    pub spans: Vec<Span>,
    pub truncated: bool,
}

/// Whether a trace ranked `(start, id)` comes before `(other_start, other_id)`.
fn ranks_before(start: u64, id: &TraceId, other_start: u64, other_id: &TraceId) -> bool {
    start > other_start || (start == other_start && id < other_id)
}

impl SpanStore {
    /// The `limit` newest traces with a span that matches `query`, each
    /// with at most `max_spans` spans.
    pub async fn newest_traces(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
        limit: usize,
        max_spans: usize,
    ) -> Result<Vec<FoundTrace>, StorageError> {
        // Attribute conditions are checked on whole spans: exact starts.
        let exact = !query.attributes.is_empty();
        let named =
            if exact { self.matching_starts(tenant, query).await? } else { self.candidates(tenant, query).await? };
        let mut bounds: HashMap<TraceId, u64> = HashMap::with_capacity(named.len());
        for (id, bound) in named {
            let b = bounds.entry(id).or_insert(0);
            *b = (*b).max(bound);
        }
        let mut candidates: Vec<(TraceId, u64)> = bounds.into_iter().collect();
        candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        // (latest matching start, id), best first.
        let mut found: Vec<(u64, TraceId)> = Vec::with_capacity(limit.min(candidates.len()));
        let mut next = 0;
        while next < candidates.len() && limit > 0 {
            if let Some(&(latest, id)) = found.get(limit - 1) {
                let (next_id, bound) = &candidates[next];
                if ranks_before(latest, &id, *bound, next_id) {
                    break;
                }
            }
            // Twice as many traces at once as the answer still lacks.
            let round = &candidates[next..(next + 2 * (limit - found.len()).max(1)).min(candidates.len())];
            next += round.len();
            let latest: Vec<(TraceId, u64)> = if exact {
                round.to_vec()
            } else {
                let mut ids: Vec<TraceId> = round.iter().map(|(id, _)| *id).collect();
                ids.sort_unstable();
                self.matching_starts_in(tenant, query, &ids).await?
            };
            let mut latest_of: HashMap<TraceId, u64> = HashMap::with_capacity(round.len());
            for (id, start) in latest {
                let l = latest_of.entry(id).or_insert(start);
                *l = (*l).max(start);
            }
            for (id, latest) in latest_of {
                let at = found.partition_point(|(l, i)| ranks_before(*l, i, latest, &id));
                found.insert(at, (latest, id));
                found.truncate(limit);
            }
        }
        // The answer's traces, whole, in one read of each part.
        let mut ids: Vec<TraceId> = found.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::with_capacity(ids.len());
        for span in self.traces(tenant, &ids).await? {
            by_trace.entry(span.trace_id).or_default().push(span);
        }
        let mut out = Vec::with_capacity(found.len());
        for (latest_match, id) in found {
            let Some(mut spans) = by_trace.remove(&id) else { continue };
            let truncated = spans.len() > max_spans;
            spans.truncate(max_spans);
            out.push(FoundTrace { id, latest_match, spans, truncated });
        }
        Ok(out)
    }
}
