//! Trace search: the newest traces with a span that matches a query.
//!
//! Traces rank by the start of their latest matching span, newest first
//! (ties by trace id). The store names candidate traces with an upper
//! bound of that start ([`SpanStore::candidates`]: exact in the head, from
//! the trace tables in parts); they are verified newest bound first by
//! reading the predicate's columns of those traces only, and the search
//! stops once the last trace it keeps ranks above the best bound left.
//! Attribute conditions are checked in the verification (the trace tables
//! know nothing of them; parts that cannot hold them are skipped, see
//! [`super::attributes`]). The answer's traces are then read whole,
//! in one read of each part: the answer is the one a scan of every span
//! would give, having read about `limit` traces.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

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

/// The most traces verified in one round.
const MAX_ROUND: usize = 16_384;

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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (named, mut groups) = self.candidate_sources(tenant, query).await?;
        groups.sort_by_key(|g| Reverse(g.bound));
        let mut groups = groups.into_iter().peekable();
        // Candidates, the best bound first (ties: the smaller id).
        let mut candidates: BinaryHeap<(u64, Reverse<TraceId>)> =
            named.into_iter().map(|(id, bound)| (bound, Reverse(id))).collect();
        let mut seen: HashSet<TraceId> = HashSet::new();
        // (latest matching start, id), best first.
        let mut found: Vec<(u64, TraceId)> = Vec::with_capacity(limit.min(1024));
        // Traces verified, and those that matched.
        let (mut round_size, mut verified, mut matched) = (0usize, 0usize, 0usize);
        loop {
            // Every row group that may hold a candidate as good as the best one known.
            while let Some(group) = groups.next_if(|g| candidates.peek().is_none_or(|&(best, _)| g.bound >= best)) {
                let read = self.group_candidates(&group, query).await?;
                candidates.extend(read.into_iter().map(|(id, bound)| (bound, Reverse(id))));
            }
            let Some(&(bound, Reverse(id))) = candidates.peek() else { break };
            if let Some(&(latest, last)) = found.get(limit - 1)
                && ranks_before(latest, &last, bound, &id)
            {
                break;
            }
            // Enough traces to fill the answer twice over at the rate
            // candidates have matched so far, at most twice the last round:
            // a search whose matches are rare reads a part in a few large
            // rounds, not many small ones.
            // (At least two: the answer may be full while a candidate can still beat its last.)
            let want = (limit - found.len()).max(1).saturating_mul(2);
            round_size = if verified == 0 {
                want
            } else {
                want.saturating_mul(verified).div_ceil(matched.max(1)).min(round_size.saturating_mul(2)).max(want)
            }
            .min(MAX_ROUND);
            let mut round = Vec::new();
            while round.len() < round_size {
                let Some((_, Reverse(id))) = candidates.pop() else { break };
                if seen.insert(id) {
                    round.push(id);
                }
            }
            round.sort_unstable();
            let latest = self.matching_starts_in(tenant, query, &round).await?;
            verified += round.len();
            let mut latest_of: HashMap<TraceId, u64> = HashMap::with_capacity(latest.len());
            for (id, start) in latest {
                let l = latest_of.entry(id).or_insert(start);
                *l = (*l).max(start);
            }
            matched += latest_of.len();
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
