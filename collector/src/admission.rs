//! Flow control at the door: per-tenant token buckets, the global budget of
//! in-flight request bytes, and the process's resident memory against its
//! limit. All answer at once; nothing here waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::RateLimit;
use crate::error::IngestError;

/// A token bucket: `rate` tokens per second, holding at most `burst`.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64, burst: u64, now: Instant) -> Self {
        Self { rate: rate as f64, burst: burst as f64, tokens: burst as f64, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Time until `n` tokens are there, or zero if they are now. A request
    /// larger than the burst passes when the bucket is full (and empties it),
    /// so that no request is refused forever.
    fn wait_for(&self, n: f64) -> Duration {
        if self.tokens >= n || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((n.min(self.burst) - self.tokens) / self.rate)
    }
}

/// One tenant's two buckets.
#[derive(Debug)]
struct TenantBuckets {
    items: Option<Bucket>,
    bytes: Option<Bucket>,
}

/// Per-tenant rate limits on items and bytes.
pub struct RateLimiter {
    config: RateLimit,
    tenants: Mutex<HashMap<String, TenantBuckets>>,
}

impl RateLimiter {
    pub fn new(config: RateLimit) -> Self {
        Self { config, tenants: Mutex::new(HashMap::new()) }
    }

    /// Takes `items` and `bytes` from the tenant's buckets, or refuses the
    /// whole request (taking nothing) with the time after which it may pass.
    pub fn check(&self, tenant: &str, items: u64, bytes: u64) -> Result<(), IngestError> {
        self.check_at(tenant, items, bytes, Instant::now())
    }

    fn check_at(&self, tenant: &str, items: u64, bytes: u64, now: Instant) -> Result<(), IngestError> {
        let c = &self.config;
        let mut tenants = self.tenants.lock();
        let b = tenants.entry(tenant.to_owned()).or_insert_with(|| TenantBuckets {
            items: (c.items_per_second > 0).then(|| Bucket::new(c.items_per_second, c.burst_items, now)),
            bytes: (c.bytes_per_second > 0).then(|| Bucket::new(c.bytes_per_second, c.burst_bytes, now)),
        });
        let (items, bytes) = (items as f64, bytes as f64);
        for (bucket, n, what) in [(&mut b.items, items, "items"), (&mut b.bytes, bytes, "bytes")] {
            if let Some(bucket) = bucket {
                bucket.refill(now);
                let wait = bucket.wait_for(n);
                if !wait.is_zero() {
                    return Err(IngestError::RateLimited {
                        tenant: tenant.to_owned(),
                        what,
                        retry_after: wait.max(Duration::from_secs(1)),
                    });
                }
            }
        }
        if let Some(bucket) = &mut b.items {
            bucket.tokens -= items.min(bucket.tokens);
        }
        if let Some(bucket) = &mut b.bytes {
            bucket.tokens -= bytes.min(bucket.tokens);
        }
        Ok(())
    }
}

/// The global budget of bytes held by accepted requests until they are stored.
#[derive(Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    limit_kib: u32,
}

/// Bytes held from the budget; given back when dropped.
pub struct MemoryPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl MemoryBudget {
    pub fn new(limit_bytes: u64) -> Self {
        let limit_kib = u32::try_from(limit_bytes / 1024).unwrap_or(u32::MAX).max(1);
        Self { semaphore: Arc::new(Semaphore::new(limit_kib as usize)), limit_kib }
    }

    fn kib(bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).max(1)
    }

    /// Takes `bytes` from the budget, or refuses at once.
    pub fn try_acquire(&self, bytes: usize) -> Result<MemoryPermit, IngestError> {
        let n = Self::kib(bytes).min(self.limit_kib);
        self.semaphore
            .clone()
            .try_acquire_many_owned(n)
            .map(MemoryPermit)
            .map_err(|_| IngestError::Overloaded("the memory budget"))
    }

    /// Takes `bytes` from the budget, waiting for it (used by WAL replay).
    pub async fn acquire(&self, bytes: usize) -> MemoryPermit {
        let n = Self::kib(bytes).min(self.limit_kib);
        match self.semaphore.clone().acquire_many_owned(n).await {
            Ok(p) => MemoryPermit(p),
            Err(_) => unreachable!("the memory semaphore is never closed"),
        }
    }

    pub fn in_use_bytes(&self) -> u64 {
        u64::from(self.limit_kib - self.semaphore.available_permits() as u32) * 1024
    }
}

/// The process's resident memory against its limit: above
/// [`ResidentMemory::REFUSE_AT`] of the limit new requests are refused
/// (retryably) before their bodies are read, leaving the rest of the limit
/// to requests already admitted and to the stores' own work.
pub struct ResidentMemory {
    limit: u64,
    current: AtomicU64,
}

impl ResidentMemory {
    /// The share of the limit above which requests are refused.
    pub const REFUSE_AT: f64 = 0.75;

    pub fn new(limit_bytes: u64) -> Self {
        Self { limit: limit_bytes, current: AtomicU64::new(0) }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Records the latest reading.
    pub fn set(&self, bytes: u64) {
        self.current.store(bytes, Ordering::Relaxed);
    }

    pub fn check(&self) -> Result<(), IngestError> {
        if self.current.load(Ordering::Relaxed) as f64 >= self.limit as f64 * Self::REFUSE_AT {
            return Err(IngestError::Overloaded("the process memory limit (ingest.resident_memory_limit_bytes)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(items_per_second: u64, burst_items: u64) -> RateLimiter {
        RateLimiter::new(RateLimit { items_per_second, burst_items, bytes_per_second: 0, burst_bytes: 0 })
    }

    #[test]
    fn bursts_pass_then_the_rate_applies_per_tenant() {
        let l = limiter(100, 200);
        let t0 = Instant::now();
        l.check_at("a", 150, 0, t0).expect("within burst");
        let err = l.check_at("a", 100, 0, t0).expect_err("burst exhausted");
        let IngestError::RateLimited { retry_after, what, .. } = err else { panic!("{err:?}") };
        assert_eq!(what, "items");
        assert!(retry_after >= Duration::from_secs(1));
        // Another tenant has its own bucket.
        l.check_at("b", 200, 0, t0).expect("tenant b is separate");
        // Half a second refills 50 tokens: 100 available.
        l.check_at("a", 100, 0, t0 + Duration::from_millis(500)).expect("refilled");
    }

    #[test]
    fn a_refused_request_takes_nothing() {
        let l = RateLimiter::new(RateLimit {
            items_per_second: 10,
            burst_items: 10,
            bytes_per_second: 10,
            burst_bytes: 10,
        });
        let t0 = Instant::now();
        l.check_at("a", 0, 8, t0).expect("bytes within burst");
        assert!(l.check_at("a", 5, 5, t0).is_err(), "only 2 bytes left");
        l.check_at("a", 10, 0, t0).expect("items were not taken by the refused request");
    }

    #[test]
    fn resident_memory_refuses_near_the_limit() {
        let r = ResidentMemory::new(1000);
        r.set(749);
        assert!(r.check().is_ok());
        r.set(750);
        assert!(matches!(r.check(), Err(IngestError::Overloaded(_))));
        r.set(100);
        assert!(r.check().is_ok(), "admits again once memory is back down");
    }

    #[test]
    fn memory_budget_refuses_when_full_and_frees_on_drop() {
        let m = MemoryBudget::new(10 * 1024);
        let p = m.try_acquire(8 * 1024).expect("fits");
        assert!(m.try_acquire(4 * 1024).is_err());
        assert_eq!(m.in_use_bytes(), 8 * 1024);
        drop(p);
        m.try_acquire(4 * 1024).expect("freed");
    }
}
