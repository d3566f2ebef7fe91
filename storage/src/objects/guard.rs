//! [`Guarded`]: an [`ObjectStore`] that counts, times and, through a
//! circuit breaker, fails fast the calls of the store it wraps.

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Call {
    op: &'static str,
    outcome: &'static str,
}

impl Call {
    pub fn new(op: &'static str, outcome: &'static str) -> Self {
        Self { op, outcome }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    op: &'static str,
}

type Latency = Family<Op, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

crate::telemetry! {
    /// The object store's calls (`sightline_object_store_*`).
    pub struct ObjectStoreTelemetry("sightline_object_store") {
        /// Calls to the object store by operation and outcome (ok, not_found, rejected, error, breaker_open)
        requests: Family<Call, Counter>,
        /// Duration of a call to the object store, retries included
        request_seconds: Latency = Latency::new_with_constructor(latency),
        /// The circuit breaker: 0 closed, 1 open (calls fail at once), 2 half-open (one call probes)
        breaker_state: Gauge,
    }
}

/// The breaker's state, as its gauge shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// Opens after `failures` faults in a row; while open, calls fail at once
/// for `cooldown`, then one call probes: its success closes the breaker,
/// its failure opens it for another `cooldown`.
pub struct Breaker {
    failures: u32,
    cooldown: Duration,
    state: Mutex<Faults>,
}

#[derive(Default)]
struct Faults {
    in_a_row: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// A call the breaker let through.
#[derive(Clone, Copy)]
struct Permit {
    probe: bool,
}

impl Breaker {
    pub fn new(failures: u32, cooldown: Duration) -> Self {
        Self { failures: failures.max(1), cooldown, state: Mutex::default() }
    }

    fn admit(&self) -> Option<Permit> {
        let mut s = self.state.lock();
        match s.open_until {
            None => Some(Permit { probe: false }),
            Some(until) if Instant::now() < until || s.probing => None,
            Some(_) => {
                s.probing = true;
                Some(Permit { probe: true })
            }
        }
    }

    fn record(&self, permit: Permit, fault: bool) {
        let mut s = self.state.lock();
        if !fault {
            if permit.probe || s.open_until.is_none() {
                *s = Faults::default();
            }
            return;
        }
        s.in_a_row = s.in_a_row.saturating_add(1);
        if permit.probe {
            s.probing = false;
            s.open_until = Some(Instant::now() + self.cooldown);
        } else if s.open_until.is_none() && s.in_a_row >= self.failures {
            s.open_until = Some(Instant::now() + self.cooldown);
        }
    }

    pub fn state(&self) -> BreakerState {
        let s = self.state.lock();
        match s.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }
}

/// Errors that say the backend is unwell (not that the request was wrong).
fn is_fault(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    !matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

fn outcome(e: Option<&object_store::Error>) -> &'static str {
    match e {
        None => "ok",
        Some(object_store::Error::NotFound { .. }) => "not_found",
        Some(e) if is_fault(e) => "error",
        Some(_) => "rejected",
    }
}

struct Shared {
    breaker: Breaker,
    telemetry: ObjectStoreTelemetry,
}

impl Shared {
    fn refused(&self, op: &'static str) -> object_store::Error {
        self.telemetry.requests.get_or_create(&Call { op, outcome: "breaker_open" }).inc();
        self.telemetry.breaker_state.set(self.breaker.state() as i64);
        object_store::Error::Generic {
            store: "breaker",
            source: "the object store failed repeatedly; calls are refused until it recovers".into(),
        }
    }

    fn finish(&self, op: &'static str, permit: Permit, started: Instant, error: Option<&object_store::Error>) {
        self.breaker.record(permit, error.is_some_and(is_fault));
        self.telemetry.requests.get_or_create(&Call { op, outcome: outcome(error) }).inc();
        self.telemetry.request_seconds.get_or_create(&Op { op }).observe(started.elapsed().as_secs_f64());
        self.telemetry.breaker_state.set(self.breaker.state() as i64);
    }

    async fn call<T>(&self, op: &'static str, f: impl Future<Output = Result<T>>) -> Result<T> {
        let permit = self.breaker.admit().ok_or_else(|| self.refused(op))?;
        let started = Instant::now();
        let result = f.await;
        self.finish(op, permit, started, result.as_ref().err());
        result
    }

    /// Counts a stream once it ends (or fails).
    fn stream<T: Send + 'static>(
        self: &Arc<Self>,
        op: &'static str,
        open: impl FnOnce() -> BoxStream<'static, Result<T>>,
    ) -> BoxStream<'static, Result<T>> {
        let Some(permit) = self.breaker.admit() else {
            return stream::once(std::future::ready(Err(self.refused(op)))).boxed();
        };
        let started = Instant::now();
        let failed = Arc::new(AtomicBool::new(false));
        let (shared, seen) = (self.clone(), failed.clone());
        let items = open().map(move |item| {
            if let Err(e) = &item
                && !seen.swap(true, Ordering::Relaxed)
            {
                shared.finish(op, permit, started, Some(e));
            }
            item
        });
        let shared = self.clone();
        let end = stream::once(async move {
            if !failed.load(Ordering::Relaxed) {
                shared.finish(op, permit, started, None);
            }
        })
        .filter_map(|()| std::future::ready(None));
        items.chain(end).boxed()
    }
}

/// The wrapped store, counted and behind a breaker.
pub struct Guarded {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

impl Guarded {
    pub fn new(inner: Arc<dyn ObjectStore>, breaker: Breaker, telemetry: ObjectStoreTelemetry) -> Self {
        Self { inner, shared: Arc::new(Shared { breaker, telemetry }) }
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.state()
    }
}

impl fmt::Display for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guarded({})", self.inner)
    }
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Guarded({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Guarded {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.shared.call("put", self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.shared.call("put_multipart", self.inner.put_multipart_opts(location, opts)).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { "head" } else { "get" };
        self.shared.call(op, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.shared.call("get_ranges", self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.shared.stream("delete", || self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.shared.stream("list", || self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.shared.stream("list", || self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.shared.call("list", self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.shared.call("copy", self.inner.copy_opts(from, to, options)).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.shared.call("rename", self.inner.rename_opts(from, to, options)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_faults_in_a_row_and_a_probe_closes_it() {
        let breaker = Breaker::new(3, Duration::from_millis(50));
        for _ in 0..2 {
            let p = breaker.admit().expect("closed");
            breaker.record(p, true);
        }
        let p = breaker.admit().expect("closed");
        breaker.record(p, false);
        assert_eq!(breaker.state(), BreakerState::Closed, "a success resets the count");
        for _ in 0..3 {
            let p = breaker.admit().expect("closed");
            breaker.record(p, true);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(breaker.admit().is_none(), "open: refused at once");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let probe = breaker.admit().expect("one probe");
        assert!(breaker.admit().is_none(), "one probe at a time");
        breaker.record(probe, true);
        assert_eq!(breaker.state(), BreakerState::Open, "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        let probe = breaker.admit().expect("probe");
        breaker.record(probe, false);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.admit().is_some());
    }

    #[test]
    fn only_the_backends_faults_count_against_it() {
        let missing = object_store::Error::NotFound { path: "x".into(), source: "gone".into() };
        let down = object_store::Error::Generic { store: "S3", source: "connection refused".into() };
        assert_eq!(outcome(Some(&missing)), "not_found");
        assert!(!is_fault(&missing));
        assert_eq!(outcome(Some(&down)), "error");
        assert!(is_fault(&down));
    }
}
