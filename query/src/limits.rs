//! Query guard rails: how long a range a query may cover, how many series a
//! PromQL query may read, how long any query may run (it is cancelled at
//! its deadline), and how many queries a tenant may run at once. Each
//! refusal says which limit, and the setting that raises it.
//!
//! Result sizes are bounded as well: at most [`crate::params::MAX_LIMIT`]
//! traces or log lines per request and
//! [`crate::promql::eval::MAX_POINTS`] points per series.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QueryLimits {
    /// The longest time range one query may cover.
    pub max_range_hours: u64,
    /// Series one PromQL query may read.
    pub max_series: usize,
    /// A query still running after this long is cancelled.
    pub timeout_seconds: u64,
    /// Queries one tenant may have running at once; more are refused (429).
    pub max_concurrent_per_tenant: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self { max_range_hours: 31 * 24 + 1, max_series: 500_000, timeout_seconds: 120, max_concurrent_per_tenant: 16 }
    }
}

impl QueryLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_range_hours == 0
            || self.max_series == 0
            || self.timeout_seconds == 0
            || self.max_concurrent_per_tenant == 0
        {
            return Err(
                "query.max_range_hours, max_series, timeout_seconds and max_concurrent_per_tenant must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// Refuses a range (nanoseconds) longer than `max_range_hours`.
    pub fn check_range_nanos(&self, start: u64, end: u64) -> Result<(), String> {
        let max = self.max_range_hours.saturating_mul(3600 * 1_000_000_000);
        if end.saturating_sub(start) > max {
            return Err(format!(
                "the time range is longer than the limit of {} hours (query.max_range_hours): narrow it",
                self.max_range_hours
            ));
        }
        Ok(())
    }

    /// What one query may spend, starting now.
    pub fn budget(&self) -> Budget {
        Budget {
            deadline: Some(Instant::now() + self.timeout()),
            timeout: self.timeout(),
            max_series: self.max_series,
            touched: AtomicUsize::new(0),
        }
    }
}

/// One query's allowance, shared by the threads that evaluate it.
#[derive(Debug)]
pub struct Budget {
    deadline: Option<Instant>,
    timeout: Duration,
    max_series: usize,
    touched: AtomicUsize,
}

/// Why a query was stopped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Exceeded {
    #[error("the query ran longer than {0:?} and was cancelled (query.timeout_seconds)")]
    Time(Duration),
    #[error("the query would read more than {0} series (query.max_series): add label matchers")]
    Series(usize),
}

impl Budget {
    pub fn unlimited() -> Budget {
        Budget { deadline: None, timeout: Duration::MAX, max_series: usize::MAX, touched: AtomicUsize::new(0) }
    }

    /// Err once the deadline has passed.
    pub fn check_time(&self) -> Result<(), Exceeded> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(Exceeded::Time(self.timeout)),
            _ => Ok(()),
        }
    }

    /// Counts `n` more series read; Err past the limit.
    pub fn touch(&self, n: usize) -> Result<(), Exceeded> {
        let total = self.touched.fetch_add(n, Ordering::Relaxed).saturating_add(n);
        if total > self.max_series { Err(Exceeded::Series(self.max_series)) } else { Ok(()) }
    }
}

/// Queries running per tenant.
#[derive(Clone, Default)]
pub struct Running(Arc<Mutex<HashMap<String, usize>>>);

/// A running query's place among its tenant's; freed when dropped.
pub(crate) struct Slot {
    running: Running,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.running.0.lock();
        if let Some(n) = map.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.tenant);
            }
        }
    }
}

impl Running {
    pub(crate) fn enter(&self, tenant: &str, max: usize) -> Option<Slot> {
        let mut map = self.0.lock();
        let n = map.entry(tenant.to_owned()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot { running: self.clone(), tenant: tenant.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_counts_series_and_time() {
        let limits = QueryLimits { max_series: 10, timeout_seconds: 1, ..QueryLimits::default() };
        let b = limits.budget();
        assert!(b.touch(6).is_ok());
        assert_eq!(b.touch(5), Err(Exceeded::Series(10)));
        assert!(b.check_time().is_ok());
        let late = Budget {
            deadline: Some(Instant::now()),
            timeout: Duration::from_secs(1),
            max_series: 1,
            touched: AtomicUsize::new(0),
        };
        assert_eq!(late.check_time(), Err(Exceeded::Time(Duration::from_secs(1))));
        assert!(Budget::unlimited().touch(usize::MAX / 2).is_ok());
    }

    #[test]
    fn ranges_and_slots() {
        let limits = QueryLimits { max_range_hours: 1, ..QueryLimits::default() };
        assert!(limits.check_range_nanos(0, 3_600_000_000_000).is_ok());
        let err = limits.check_range_nanos(0, 3_600_000_000_001).expect_err("too long");
        assert!(err.contains("query.max_range_hours"), "{err}");
        let running = Running::default();
        let a = running.enter("t", 2).expect("first");
        let _b = running.enter("t", 2).expect("second");
        assert!(running.enter("t", 2).is_none(), "a third is refused");
        assert!(running.enter("u", 2).is_some(), "other tenants are not");
        drop(a);
        assert!(running.enter("t", 2).is_some(), "a finished query frees its slot");
    }
}
