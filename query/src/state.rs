//! What every query surface shares: the stores, the caller's tenant, time
//! ranges within the limits, and one way to run store work off the reactor
//! with the query's deadline ([`QueryState::run_blocking`]).

use std::time::Instant;

use axum::http::HeaderMap;
use sightline_storage::StorageError;
use sightline_storage::logs::LogStore;
use sightline_storage::metrics::MetricStore;
use sightline_storage::model::{Tenant, TraceId};
use sightline_storage::spans::{SpanQuery, SpanStore};

use crate::dashboards::DashboardStore;
use crate::error::ApiError;
use crate::limits::{Exceeded, QueryLimits, Running};
use crate::params;
use crate::traceql::{self, Found, Search};
use crate::traces::{Edge, Trace, assemble, search};

#[derive(Clone)]
pub struct QueryState {
    pub spans: SpanStore,
    pub logs: LogStore,
    pub metrics: MetricStore,
    pub tenant_header: String,
    pub default_tenant: Tenant,
    /// Traces with more spans are returned truncated, and flagged.
    pub max_spans_per_trace: usize,
    pub dashboards: DashboardStore,
    pub limits: QueryLimits,
    /// Queries running per tenant, for `limits.max_concurrent_per_tenant`.
    pub running: Running,
}

impl QueryState {
    /// The caller's tenant, from the tenant header or the default.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<Tenant, ApiError> {
        match headers.get(self.tenant_header.as_str()) {
            None => Ok(self.default_tenant.clone()),
            Some(v) => v
                .to_str()
                .map_err(|_| ApiError::BadRequest("tenant header is not text".into()))
                .and_then(|t| Tenant::new(t).map_err(|e| ApiError::BadRequest(e.to_string()))),
        }
    }

    /// The time range of a query: `end` defaults to now, `start` to an hour
    /// before it; no longer than `limits.max_range_hours`.
    pub fn time_range(&self, start: Option<&str>, end: Option<&str>) -> Result<(u64, u64), ApiError> {
        let end = end
            .map(|e| params::time_nanos("end", e))
            .transpose()?
            .unwrap_or_else(sightline_storage::model::now_unix_nanos);
        let start =
            start.map(|s| params::time_nanos("start", s)).transpose()?.unwrap_or(end.saturating_sub(3_600_000_000_000));
        self.checked_range(start, end)
    }

    /// A range that runs forward and is within `limits.max_range_hours`.
    pub fn checked_range(&self, start: u64, end: u64) -> Result<(u64, u64), ApiError> {
        let (start, end) = params::range(start, end)?;
        self.limits.check_range_nanos(start, end).map_err(ApiError::BadRequest)?;
        Ok((start, end))
    }

    /// The error of a query stopped at its deadline.
    pub fn timed_out(&self) -> ApiError {
        ApiError::Timeout(Exceeded::Time(self.limits.timeout()).to_string())
    }

    /// Runs store work (Parquet decoding, tantivy reads, PromQL evaluation
    /// and file I/O are CPU or blocking work) on a blocking thread, so that
    /// the reactor stays responsive, and hands it the query's deadline. The
    /// one place a failed query task becomes an error.
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(Instant) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let deadline = Instant::now() + self.limits.timeout();
        tokio::task::spawn_blocking(move || work(deadline))
            .await
            .map_err(|e| ApiError::Internal(format!("query task failed: {e}")))
    }

    /// A log store read: [`Self::run_blocking`], its deadline passed to the
    /// store and reported as a timeout when the store stops at it.
    pub async fn read_logs<T: Send + 'static>(
        &self,
        work: impl FnOnce(Option<Instant>) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_blocking(move |deadline| work(Some(deadline))).await?.map_err(|e| match e {
            StorageError::Deadline => self.timed_out(),
            e => ApiError::from(e),
        })
    }

    /// A span store read (its calls are futures over `object_store`):
    /// [`Self::run_blocking`], dropped (cancelled) at the deadline.
    async fn read_spans<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StorageError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let runtime = tokio::runtime::Handle::current();
        let read = self
            .run_blocking(move |deadline| {
                runtime.block_on(tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work))
            })
            .await?;
        Ok(read.map_err(|_| self.timed_out())??)
    }

    /// One trace, assembled; 404 when the tenant holds no span of it.
    pub async fn trace(&self, tenant: &Tenant, id: &str, adjust_skew: bool) -> Result<Trace, ApiError> {
        let trace_id: TraceId = id.parse().map_err(|e| ApiError::BadRequest(format!("trace id {id:?}: {e}")))?;
        let (spans, tenant, limit) = (self.spans.clone(), tenant.clone(), self.max_spans_per_trace);
        let found = self.read_spans(async move { spans.trace(&tenant, trace_id, limit).await }).await?;
        if found.spans.is_empty() {
            return Err(match found.unread.first() {
                Some(why) => ApiError::Internal(format!("trace {trace_id}: cannot read {why}")),
                None => ApiError::NotFound(format!("trace {trace_id} not found")),
            });
        }
        let mut trace = assemble(trace_id, found.spans, found.truncated, adjust_skew);
        trace.unread = found.unread;
        Ok(trace)
    }

    /// Trace search.
    pub async fn search(&self, tenant: &Tenant, query: SpanQuery, limit: usize) -> Result<Vec<Trace>, ApiError> {
        let (spans, tenant, max) = (self.spans.clone(), tenant.clone(), self.max_spans_per_trace);
        self.read_spans(async move { search::search(&spans, &tenant, &query, limit, max).await }).await
    }

    /// A TraceQL search; at most `spans_per_set` spans of each answer are kept.
    pub async fn traceql(&self, tenant: &Tenant, query: Search, spans_per_set: usize) -> Result<Found, ApiError> {
        let (spans, tenant, max) = (self.spans.clone(), tenant.clone(), self.max_spans_per_trace);
        self.read_spans(async move { traceql::search(&spans, &tenant, &query, spans_per_set, max).await }).await
    }

    /// The service graph.
    pub async fn dependencies(&self, tenant: &Tenant, start: u64, end: u64) -> Result<Vec<Edge>, ApiError> {
        let (spans, tenant) = (self.spans.clone(), tenant.clone());
        self.read_spans(async move { search::dependencies(&spans, &tenant, start, end).await }).await
    }
}
