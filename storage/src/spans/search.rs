//! Trace search: the newest traces with a span that matches a query.
//!
//! Traces rank by the start of their latest matching span, newest first
//! (ties by trace id). The store names candidate traces with an upper
//! bound of that start ([`SpanStore::candidates`]: exact in the head, from
//! the trace tables in parts); they are verified newest bound first by
//! reading the trace, and the search stops once the last trace it keeps
//! ranks above the best bound left. The answer is the one a scan of every
//! span would give, having read about `limit` traces.

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
        let named = if query.attributes.is_empty() {
            self.candidates(tenant, query).await?
        } else {
            // Attribute conditions are checked on whole spans: exact starts.
            self.matching_starts(tenant, query).await?
        };
        let mut bounds: HashMap<TraceId, u64> = HashMap::with_capacity(named.len());
        for (id, bound) in named {
            let b = bounds.entry(id).or_insert(0);
            *b = (*b).max(bound);
        }
        let mut candidates: Vec<(TraceId, u64)> = bounds.into_iter().collect();
        candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut found: Vec<FoundTrace> = Vec::with_capacity(limit.min(candidates.len()));
        let mut next = 0;
        while next < candidates.len() && limit > 0 {
            if found.len() == limit {
                let (last, (id, bound)) = (&found[limit - 1], &candidates[next]);
                if ranks_before(last.latest_match, &last.id, *bound, id) {
                    break;
                }
            }
            // As many traces at once as the answer still lacks.
            let round = &candidates[next..(next + (limit - found.len()).max(1)).min(candidates.len())];
            next += round.len();
            let reads = round.iter().map(|(id, _)| self.trace(tenant, *id, usize::MAX));
            for ((id, _), trace) in round.iter().zip(futures_util::future::try_join_all(reads).await?) {
                let mut spans = trace.spans;
                let matching = spans.iter().filter(|s| query.matches(s)).map(|s| s.start_unix_nano);
                let Some(latest_match) = matching.max() else { continue };
                let truncated = spans.len() > max_spans;
                spans.truncate(max_spans);
                let at = found.partition_point(|f| ranks_before(f.latest_match, &f.id, latest_match, id));
                found.insert(at, FoundTrace { id: *id, latest_match, spans, truncated });
                found.truncate(limit);
            }
        }
        Ok(found)
    }
}
