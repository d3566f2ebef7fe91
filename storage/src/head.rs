//! The in-memory head for metrics: every point, queryable the moment the
//! pipeline hands it over, until the metric store exists. (Spans and logs
//! have their own stores in [`crate::spans`] and [`crate::logs`].)
//!
//! Batches arrive in WAL order per signal, so a head skips any batch whose
//! WAL sequence is not beyond the last one it applied: replaying the log
//! twice never duplicates an item.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::StorageError;
use crate::model::{MetricPoint, Tenant};
use crate::sink::{Batch, Sink};

/// Counts of what a head holds for one tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HeadCounts {
    pub metric_points: u64,
}

/// Remembers the last WAL sequence applied, to make replay idempotent.
#[derive(Default)]
struct Applied(AtomicU64);

impl Applied {
    /// True if `seq` is new; records it.
    fn advance(&self, seq: u64) -> bool {
        self.0.fetch_max(seq, Ordering::AcqRel) < seq
    }
}

/// Items by tenant, in arrival order.
pub struct AppendHead<T> {
    items: RwLock<HashMap<Tenant, Vec<T>>>,
    applied: Applied,
}

impl<T> Default for AppendHead<T> {
    fn default() -> Self {
        Self { items: RwLock::default(), applied: Applied::default() }
    }
}

impl<T: Clone> AppendHead<T> {
    fn len(&self, tenant: &Tenant) -> u64 {
        self.items.read().get(tenant).map_or(0, |r| r.len() as u64)
    }

    /// Up to `limit` items of a tenant that match, newest first.
    fn newest_matching(&self, tenant: &Tenant, limit: usize, matches: impl Fn(&T) -> bool) -> Vec<T> {
        self.items
            .read()
            .get(tenant)
            .map(|r| r.iter().rev().filter(|i| matches(i)).take(limit).cloned().collect())
            .unwrap_or_default()
    }
}

impl<T: Send + Sync + 'static> Sink<T> for AppendHead<T> {
    fn consume(&self, batch: Batch<T>) -> Result<(), StorageError> {
        if self.applied.advance(batch.wal_seq) {
            self.items.write().entry(batch.tenant).or_default().extend(batch.items);
        }
        Ok(())
    }
}

pub type MetricHead = AppendHead<MetricPoint>;

impl MetricHead {
    /// Points of one metric name for a tenant, in arrival order.
    pub fn points(&self, tenant: &Tenant, name: &str) -> Vec<MetricPoint> {
        let mut points = self.newest_matching(tenant, usize::MAX, |p| p.name == name);
        points.reverse();
        points
    }
}

/// The heads of the signals whose on-disk stores do not exist yet.
#[derive(Default)]
pub struct Heads {
    pub metrics: MetricHead,
}

impl Heads {
    pub fn counts(&self, tenant: &Tenant) -> HeadCounts {
        HeadCounts { metric_points: self.metrics.len(tenant) }
    }
}

impl Sink<MetricPoint> for Heads {
    fn consume(&self, batch: Batch<MetricPoint>) -> Result<(), StorageError> {
        self.metrics.consume(batch)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{AttrValue, Attributes, LogRecord, Resource, Scope};

    fn log(body: &str) -> LogRecord {
        LogRecord {
            time_unix_nano: 1,
            observed_unix_nano: 1,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: AttrValue::Str(body.into()),
            attributes: Attributes::default(),
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            resource: Arc::new(Resource::default()),
            scope: Arc::new(Scope::default()),
        }
    }

    #[test]
    fn replayed_batches_are_applied_once() {
        let head = AppendHead::<LogRecord>::default();
        let tenant = Tenant::new("a").expect("tenant");
        let batch = |seq, body: &str| Batch { tenant: tenant.clone(), wal_seq: seq, items: vec![log(body)] };
        head.consume(batch(1, "one")).expect("consume");
        head.consume(batch(2, "two")).expect("consume");
        head.consume(batch(2, "two")).expect("consume again");
        head.consume(batch(1, "one")).expect("consume again");
        let newest: Vec<_> =
            head.newest_matching(&tenant, 10, |_| true).into_iter().map(|r| r.body.to_text()).collect();
        assert_eq!(newest, ["two", "one"]);
        assert!(head.newest_matching(&Tenant::new("b").expect("tenant"), 10, |_| true).is_empty());
    }
}
