//! The span store's reads: traces by id, scans, and the candidates and
//! verification reads that trace search ([`super::search`]) is built on.
//! Heads are read under the state's lock, parts after it, each through its
//! index (footer, page index, bloom filters, trace table) kept in memory.

use std::sync::Arc;

use super::attributes;
use super::chunk::Chunk;
use super::head;
use super::part::{self, PartIndex, PartMeta};
use super::query::SpanQuery;
use super::store::{Inner, SpanStore, TraceSpans};
use super::trace_table;
use crate::StorageError;
use crate::model::{Span, Tenant, TraceId};

impl SpanStore {
    /// Every span of a trace, from the head and every part that may hold it,
    /// at most `limit` of them. No time range needed.
    ///
    /// A part that cannot be read (the bucket down, a damaged file) does
    /// not fail the read: the spans of the others are returned, and the
    /// part is named in [`TraceSpans::unread`].
    pub async fn trace(&self, tenant: &Tenant, id: TraceId, limit: usize) -> Result<TraceSpans, StorageError> {
        let (mut spans, chunks, parts) = self.holders(tenant, &[id]);
        head::traces_in(&chunks, &[id], &mut spans)?;
        let mut unread = Vec::new();
        for (part, found) in self.each_part(parts, &[id], read_traces).await? {
            match found {
                Ok(found) => spans.extend(found),
                Err(e) => unread.push(format!("part {part}: {e}")),
            }
        }
        let truncated = spans.len() > limit;
        spans.truncate(limit);
        Ok(TraceSpans { spans, truncated, unread })
    }

    /// What may hold spans of the traces `ids` (sorted): their waiting spans
    /// in the heads, the heads' chunks, and the parts whose trace-id range
    /// covers one of them.
    fn holders(&self, tenant: &Tenant, ids: &[TraceId]) -> (Vec<Span>, Vec<Chunk>, Vec<PartMeta>) {
        let state = self.inner.state.read();
        let (mut spans, mut chunks) = (Vec::new(), Vec::new());
        for head in state.all_heads() {
            if let Some(t) = head.tenants.get(tenant) {
                spans.extend(t.pending().iter().filter(|s| ids.binary_search(&s.trace_id).is_ok()).cloned());
                chunks.extend_from_slice(t.chunks());
            }
        }
        let parts: Vec<PartMeta> = state
            .parts
            .get(tenant)
            .map(|p| p.iter().filter(|m| ids.iter().any(|id| m.may_hold(id))).cloned().collect())
            .unwrap_or_default();
        (spans, chunks, parts)
    }

    /// Runs `read` on each part for the traces `ids` (sorted), on blocking
    /// threads, the ids split into as many ranges as there are cores (a
    /// part's row groups hold ranges of ids), so that decoding uses every
    /// core even when one part holds all the traces.
    /// Each job's result beside its part's id.
    async fn each_part<T, F, Fut>(
        &self,
        parts: Vec<PartMeta>,
        ids: &[TraceId],
        read: F,
    ) -> Result<Vec<(String, Result<T, StorageError>)>, StorageError>
    where
        T: Send + 'static,
        F: Fn(Arc<Inner>, PartMeta, Vec<TraceId>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let range = ids.len().div_ceil(cores).max(1);
        let jobs = parts.into_iter().flat_map(|m| {
            let ranges: Vec<Vec<TraceId>> =
                ids.chunks(range).filter(|r| r.iter().any(|id| m.may_hold(id))).map(<[TraceId]>::to_vec).collect();
            ranges.into_iter().map(move |r| (m.clone(), r))
        });
        let tasks = jobs.map(|(m, ids)| {
            let (inner, read, runtime) = (self.inner.clone(), read.clone(), self.inner.runtime.clone());
            tokio::task::spawn_blocking(move || {
                let id = m.id.clone();
                (id, runtime.block_on(read(inner, m, ids)))
            })
        });
        let done = futures_util::future::try_join_all(tasks).await;
        done.map_err(|e| StorageError::Part(format!("a part read stopped: {e}")))
    }

    /// [`SpanStore::each_part`], failing on the first part that fails.
    async fn every_part<T, F, Fut>(
        &self,
        parts: Vec<PartMeta>,
        ids: &[TraceId],
        read: F,
    ) -> Result<Vec<T>, StorageError>
    where
        T: Send + 'static,
        F: Fn(Arc<Inner>, PartMeta, Vec<TraceId>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        self.each_part(parts, ids, read).await?.into_iter().map(|(_, found)| found).collect()
    }

    /// Every span of the traces `ids` (sorted, without repeats), in no
    /// particular order: each part that may hold one of them is read once.
    pub(super) async fn traces(&self, tenant: &Tenant, ids: &[TraceId]) -> Result<Vec<Span>, StorageError> {
        let (mut spans, chunks, parts) = self.holders(tenant, ids);
        head::traces_in(&chunks, ids, &mut spans)?;
        let found = self.every_part(parts, ids, read_traces).await?;
        spans.extend(found.into_iter().flatten());
        Ok(spans)
    }

    /// The start of every span of the traces `ids` (sorted, without repeats)
    /// that `query` matches: parts are read in the predicates' columns only.
    pub(super) async fn matching_starts_in(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
        ids: &[TraceId],
    ) -> Result<Vec<(TraceId, u64)>, StorageError> {
        let (mut spans, chunks, parts) = self.holders(tenant, ids);
        head::traces_in(&chunks, ids, &mut spans)?;
        let mut out: Vec<(TraceId, u64)> =
            spans.iter().filter(|s| query.matches(s)).map(|s| (s.trace_id, s.start_unix_nano)).collect();
        let query = Arc::new(query.clone());
        let found = self
            .every_part(parts, ids, move |inner, m, ids| {
                let query = query.clone();
                async move {
                    let index = inner.index(&m).await?;
                    part::read_matching_starts(inner.store.clone(), &m, &index, &query, Some(&ids)).await
                }
            })
            .await?;
        out.extend(found.into_iter().flatten());
        Ok(out)
    }

    /// Calls `each` with every span of the tenant that `query` matches:
    /// the heads, then the parts whose time range overlaps the query's.
    pub async fn scan(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
        mut each: impl FnMut(&Span),
    ) -> Result<(), StorageError> {
        let (chunks, parts) = self.snapshot(tenant, query, |s| each(s));
        head::scan_chunks(&chunks, query, &mut each)?;
        for m in &parts {
            let index = self.inner.index(m).await?;
            part::read_matching(self.inner.store.clone(), m, &index, query).await?.iter().for_each(&mut each);
        }
        Ok(())
    }

    /// Under one read of the state: `pending` called with the heads' waiting
    /// spans that `query` matches, the heads' chunks (to read after the lock
    /// is let go), and the parts whose time range overlaps the query's.
    pub(super) fn snapshot(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
        mut pending: impl FnMut(&Span),
    ) -> (Vec<Chunk>, Vec<PartMeta>) {
        let state = self.inner.state.read();
        let mut chunks = Vec::new();
        for head in state.all_heads() {
            if let Some(t) = head.tenants.get(tenant) {
                t.pending().iter().filter(|s| query.matches(s)).for_each(&mut pending);
                chunks.extend_from_slice(t.chunks());
            }
        }
        let parts = state
            .parts
            .get(tenant)
            .map(|p| p.iter().filter(|m| m.overlaps(query.start_unix_nano, query.end_unix_nano)).cloned().collect())
            .unwrap_or_default();
        (chunks, parts)
    }

    /// The trace id and start of every span that `query` matches, from the
    /// heads and the parts: what a trace search ranks by. Only the columns
    /// of its conditions are read, and no span is decoded.
    pub async fn matching_starts(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
    ) -> Result<Vec<(TraceId, u64)>, StorageError> {
        let mut out = Vec::new();
        let (chunks, parts) = self.snapshot(tenant, query, |s| out.push((s.trace_id, s.start_unix_nano)));
        head::starts_in(&chunks, query, &mut out)?;
        for m in &parts {
            let index = self.inner.index(m).await?;
            out.extend(part::read_matching_starts(self.inner.store.clone(), m, &index, query, None).await?);
        }
        Ok(out)
    }

    /// Where the traces that may hold a span matching `query` come from:
    /// exact (trace, start) pairs from the heads and from parts without a
    /// trace table, and the trace-table row groups of the others (of the
    /// parts that may hold the query's attributes), each with an upper bound
    /// of the latest matching start of its traces; the tables know nothing
    /// of attributes. A trace may come more than once.
    pub(super) async fn candidate_sources(
        &self,
        tenant: &Tenant,
        query: &SpanQuery,
    ) -> Result<(Vec<(TraceId, u64)>, Vec<TableGroup>), StorageError> {
        let (mut exact, mut groups) = (Vec::new(), Vec::new());
        let (chunks, parts) = self.snapshot(tenant, query, |s| exact.push((s.trace_id, s.start_unix_nano)));
        head::starts_in(&chunks, query, &mut exact)?;
        let parts = parts.into_iter().filter(|m| attributes::may_match(m.attributes.as_ref(), query));
        for part in parts {
            let index = self.inner.index(&part).await?;
            match &index.traces {
                Some(table) => {
                    let found = trace_table::groups(table, query)?;
                    let (part, index) = (Arc::new(part), index.clone());
                    groups.extend(found.into_iter().map(|(bound, group)| TableGroup {
                        bound,
                        group,
                        part: part.clone(),
                        index: index.clone(),
                    }));
                }
                None => exact
                    .extend(part::read_matching_starts(self.inner.store.clone(), &part, &index, query, None).await?),
            }
        }
        Ok((exact, groups))
    }

    /// The candidates of one trace-table row group, with their bounds.
    pub(super) async fn group_candidates(
        &self,
        group: &TableGroup,
        query: &SpanQuery,
    ) -> Result<Vec<(TraceId, u64)>, StorageError> {
        let mut out = Vec::new();
        if let Some(table) = &group.index.traces {
            let store = self.inner.store.clone();
            trace_table::candidates(store, &group.part, table, query, vec![group.group], &mut out).await?;
        }
        Ok(out)
    }
}

/// Every span of the traces `ids` that part `m` holds.
async fn read_traces(inner: Arc<Inner>, m: PartMeta, ids: Vec<TraceId>) -> Result<Vec<Span>, StorageError> {
    let index = inner.index(&m).await?;
    part::read_traces(inner.store.clone(), &m, &index, &ids).await
}

/// A row group of a part's trace table, and the best bound of its traces.
pub(super) struct TableGroup {
    pub(super) bound: u64,
    group: usize,
    part: Arc<PartMeta>,
    index: Arc<PartIndex>,
}
