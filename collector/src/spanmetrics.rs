//! Metrics derived from spans, named as Grafana Tempo's metrics-generator
//! names them (so dashboards and Grafana's service-graph and RED views
//! built for it work here):
//!
//! - `traces_spanmetrics_calls_total` and `traces_spanmetrics_latency`
//!   (histogram, seconds) by `service`, `span_name`, `span_kind`,
//!   `status_code`, plus configured span attributes;
//! - `traces_service_graph_request_total`, `…_request_failed_total` and
//!   `…_request_server_seconds` (histogram) by `client` and `server`, for
//!   each parent → child call between two services.
//!
//! A connector between the span and the metric pipelines: [`DerivedMetrics`]
//! wraps the span store's sinks (one per shard) and counts each batch into
//! per-tenant totals ([`aggregate`], shared by the shards) before handing it on; its own thread
//! (`sightline-spanmetrics`) turns the series that changed into one batch
//! of samples per tenant every `flush_interval_seconds` and appends it to
//! the metric store. The span lane never touches the metric store.
//!
//! The totals live in memory and keep running for the life of the process;
//! a restart is a counter reset. Batches replayed from the WAL at start are
//! not counted (they were counted before the restart), so a counter never
//! sees a span twice.

mod aggregate;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use sightline_storage::StorageError;
use sightline_storage::metrics::labels::sanitize_label;
use sightline_storage::metrics::{Labels, Meta, MetricStore, Sample};
use sightline_storage::model::{Span, SpanKind, StatusCode, Tenant};
use sightline_storage::sink::{Batch, Sink};
use sightline_storage::worker::Worker;

use aggregate::{ABSENT, Aggregate, Shape, Totals};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    pub enabled: bool,
    /// Upper bounds of the latency histograms, in seconds.
    pub histogram_buckets: Vec<f64>,
    /// Span (or resource) attributes added as labels, sanitised.
    pub dimensions: Vec<String>,
    /// Spans remembered for the other side of a service-graph edge, at most.
    pub max_pending_edges: usize,
    /// How long such a span is remembered, at most (at least half of it
    /// unless `max_pending_edges` newer spans push it out first).
    pub edge_wait_seconds: u64,
    /// How often the changed series are written to the metric store.
    pub flush_interval_seconds: u64,
    /// RED series per tenant, at most; spans of further label sets are not
    /// counted (`sightline_spanmetrics_over_limit_spans_total`).
    pub max_series: usize,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            histogram_buckets: vec![
                0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384,
            ],
            dimensions: Vec::new(),
            max_pending_edges: 100_000,
            edge_wait_seconds: 30,
            flush_interval_seconds: 15,
            max_series: 10_000,
        }
    }
}

impl SpanMetricsConfig {
    pub fn validate(&self) -> Result<(), String> {
        let b = &self.histogram_buckets;
        if b.windows(2).any(|w| w[0] >= w[1]) || b.iter().any(|v| !v.is_finite()) {
            return Err("spanmetrics.histogram_buckets must be finite and increasing".into());
        }
        if self.flush_interval_seconds == 0 {
            return Err("spanmetrics.flush_interval_seconds must be at least 1".into());
        }
        Ok(())
    }
}

sightline_storage::telemetry! {
    /// The connector's own metrics.
    struct Telemetry("sightline_spanmetrics") {
        /// Series derived from spans (RED and edges)
        series: Gauge,
        /// Spans remembered for the other side of a service-graph edge
        pending_edges: Gauge,
        /// Spans not counted: their tenant has spanmetrics.max_series series
        over_limit_spans: Counter,
        /// Flushes of derived series to the metric store
        flushes: Counter,
    }
}

struct Shared {
    config: SpanMetricsConfig,
    /// `dimensions` as label names.
    dimension_labels: Vec<String>,
    metrics: MetricStore,
    tenants: RwLock<HashMap<Tenant, Arc<Mutex<Aggregate>>>>,
    /// Off while the WAL is replayed.
    live: AtomicBool,
    /// The last flush's timestamp (ms): each flush stamps a later one.
    last_t: AtomicI64,
    telemetry: Telemetry,
}

/// The span sinks with the connector in front of them.
pub struct DerivedMetrics {
    sinks: Vec<Arc<dyn Sink<Span>>>,
    shared: Arc<Shared>,
    /// Flushes every `flush_interval_seconds`, and once more at shutdown.
    worker: Option<Worker>,
}

impl DerivedMetrics {
    /// Wraps each of `inner` and starts the flush thread. Counting starts
    /// with [`DerivedMetrics::replay_done`].
    pub fn start(
        inner: Vec<Arc<dyn Sink<Span>>>,
        metrics: MetricStore,
        config: SpanMetricsConfig,
    ) -> Result<Self, StorageError> {
        let shared = Arc::new(Shared {
            dimension_labels: config.dimensions.iter().map(|d| sanitize_label(d)).collect(),
            config,
            metrics,
            tenants: RwLock::default(),
            live: AtomicBool::new(false),
            last_t: AtomicI64::new(i64::MIN),
            telemetry: Telemetry::default(),
        });
        let worker = if shared.config.enabled {
            let background = shared.clone();
            let interval = Duration::from_secs(shared.config.flush_interval_seconds.max(1));
            let flush = move |_| {
                background.flush();
                Ok(())
            };
            Some(Worker::spawn("span-metrics", interval, flush, |_, _| {})?)
        } else {
            None
        };
        let sinks = inner
            .into_iter()
            .map(|inner| Arc::new(Counting { inner, shared: shared.clone() }) as Arc<dyn Sink<Span>>)
            .collect();
        Ok(Self { sinks, shared, worker })
    }

    /// The wrapped sinks, in the order given to [`DerivedMetrics::start`].
    pub fn sinks(&self) -> Vec<Arc<dyn Sink<Span>>> {
        self.sinks.clone()
    }

    /// Adds the connector's own metrics to `registry` (`sightline_spanmetrics_*`).
    pub fn register_telemetry(&self, registry: &mut Registry) {
        self.shared.telemetry.register(registry);
    }

    /// Spans from now on are counted: call once the WAL has been replayed.
    pub fn replay_done(&self) {
        self.shared.live.store(true, Ordering::Release);
    }

    /// Writes what changed one last time and stops the flush thread. Blocks.
    pub fn shutdown_blocking(&self) {
        if let Some(worker) = &self.worker {
            worker.shutdown();
        }
    }

    #[cfg(test)]
    fn flush_now(&self) {
        self.shared.flush();
    }
}

impl Drop for DerivedMetrics {
    fn drop(&mut self) {
        self.shutdown_blocking();
    }
}

/// One span sink with the connector in front of it.
struct Counting {
    inner: Arc<dyn Sink<Span>>,
    shared: Arc<Shared>,
}

impl Sink<Span> for Counting {
    fn consume(&self, batch: Batch<Span>) -> Result<(), StorageError> {
        let shared = &self.shared;
        // A shard is handed every request, often (small requests, many
        // shards) without spans of its own: those cost no lock.
        if !batch.items.is_empty() && shared.config.enabled && shared.live.load(Ordering::Acquire) {
            let shape = Shape {
                bounds: &shared.config.histogram_buckets,
                dimensions: &shared.config.dimensions,
                max_series: shared.config.max_series,
            };
            let aggregate = shared.aggregate(&batch.tenant);
            let mut a = aggregate.lock();
            let over = a.over_limit;
            a.observe(&shape, &batch.items);
            shared.telemetry.over_limit_spans.inc_by(a.over_limit - over);
        }
        self.inner.consume(batch)
    }

    fn backlogged(&self) -> bool {
        self.inner.backlogged()
    }
}

impl Shared {
    fn aggregate(&self, tenant: &Tenant) -> Arc<Mutex<Aggregate>> {
        if let Some(a) = self.tenants.read().get(tenant) {
            return a.clone();
        }
        let wait = Duration::from_secs(self.config.edge_wait_seconds);
        let fresh = || Arc::new(Mutex::new(Aggregate::new(wait, self.config.max_pending_edges)));
        self.tenants.write().entry(tenant.clone()).or_insert_with(fresh).clone()
    }

    /// Appends the series that changed since the last flush, one batch per
    /// tenant, stamped with the time of the flush.
    fn flush(&self) {
        let now = (sightline_storage::model::now_unix_nanos() / 1_000_000) as i64;
        let last = self.last_t.fetch_max(now, Ordering::AcqRel);
        let t = if now > last { now } else { self.last_t.fetch_add(1, Ordering::AcqRel) + 1 };
        let tenants: Vec<_> = self.tenants.read().iter().map(|(t, a)| (t.clone(), a.clone())).collect();
        let (mut series, mut pending) = (0, 0);
        for (tenant, aggregate) in tenants {
            let changed = {
                let mut a = aggregate.lock();
                series += a.spans.len() + a.edges.len();
                pending += a.pending();
                self.take_changed(&mut a)
            };
            if changed.is_empty() {
                continue;
            }
            let bounds = &self.config.histogram_buckets;
            let mut samples = Vec::new();
            for (kind, key, totals) in &changed {
                kind.samples(&mut samples, key, bounds, totals, t);
            }
            self.metrics.append(&tenant, samples, metadata());
        }
        self.telemetry.series.set(series as i64);
        self.telemetry.pending_edges.set(pending as i64);
        self.telemetry.flushes.inc();
    }

    /// The label pairs and a copy of the totals of every series changed
    /// since the last flush, marking them unchanged.
    fn take_changed(&self, a: &mut Aggregate) -> Vec<Changed> {
        let mut out = Vec::new();
        let Aggregate { strings, spans, edges, .. } = a;
        for (key, totals) in spans.iter_mut().filter(|(_, t)| t.dirty) {
            totals.dirty = false;
            let mut pairs = vec![
                ("service".to_owned(), strings.get(key.service).to_string()),
                ("span_name".to_owned(), strings.get(key.name).to_string()),
                ("span_kind".to_owned(), kind_label(key.kind).to_owned()),
                ("status_code".to_owned(), status_label(key.status).to_owned()),
            ];
            for (name, &id) in self.dimension_labels.iter().zip(&key.dims) {
                if id != ABSENT {
                    pairs.push((name.clone(), strings.get(id).to_string()));
                }
            }
            out.push((Derived::Span, pairs, totals.clone()));
        }
        for (&(client, server), totals) in edges.iter_mut().filter(|(_, t)| t.dirty) {
            totals.dirty = false;
            let pairs = vec![
                ("client".to_owned(), strings.get(client).to_string()),
                ("server".to_owned(), strings.get(server).to_string()),
            ];
            out.push((Derived::Edge, pairs, totals.clone()));
        }
        out
    }
}

/// A series that changed since the last flush: its family, labels and totals.
type Changed = (Derived, Vec<(String, String)>, Totals);

/// Which family a derived series belongs to.
#[derive(Clone, Copy)]
enum Derived {
    Span,
    Edge,
}

impl Derived {
    fn samples(self, out: &mut Vec<Sample>, key: &[(String, String)], bounds: &[f64], totals: &Totals, t: i64) {
        match self {
            Derived::Span => {
                out.push(sample("traces_spanmetrics_calls_total", key, None, t, totals.calls as f64));
                histogram(out, "traces_spanmetrics_latency", key, bounds, totals, t);
            }
            Derived::Edge => {
                out.push(sample("traces_service_graph_request_total", key, None, t, totals.calls as f64));
                out.push(sample("traces_service_graph_request_failed_total", key, None, t, totals.failed as f64));
                histogram(out, "traces_service_graph_request_server_seconds", key, bounds, totals, t);
            }
        }
    }
}

fn kind_label(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

fn status_label(s: StatusCode) -> &'static str {
    match s {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

fn sample(name: &str, key: &[(String, String)], le: Option<String>, t: i64, v: f64) -> Sample {
    let mut pairs = key.to_vec();
    pairs.push(("__name__".to_owned(), name.to_owned()));
    if let Some(le) = le {
        pairs.push(("le".to_owned(), le));
    }
    Sample { labels: Labels::new(pairs), t, v }
}

fn histogram(out: &mut Vec<Sample>, name: &str, key: &[(String, String)], bounds: &[f64], totals: &Totals, t: i64) {
    let bucket = format!("{name}_bucket");
    for (le, n) in bounds.iter().zip(totals.cumulative()) {
        out.push(sample(&bucket, key, Some(format!("{le}")), t, n as f64));
    }
    out.push(sample(&bucket, key, Some("+Inf".into()), t, totals.calls as f64));
    out.push(sample(&format!("{name}_sum"), key, None, t, totals.sum));
    out.push(sample(&format!("{name}_count"), key, None, t, totals.calls as f64));
}

fn metadata() -> Vec<(String, Meta)> {
    let m = |kind, help: &str| Meta { kind, help: help.to_owned(), unit: String::new() };
    vec![
        ("traces_spanmetrics_calls_total".into(), m("counter", "Spans received, by service, name, kind and status")),
        ("traces_spanmetrics_latency".into(), m("histogram", "Span durations in seconds")),
        ("traces_service_graph_request_total".into(), m("counter", "Calls between two services")),
        ("traces_service_graph_request_failed_total".into(), m("counter", "Failed calls between two services")),
        (
            "traces_service_graph_request_server_seconds".into(),
            m("histogram", "Server-side duration of calls between two services"),
        ),
    ]
}
