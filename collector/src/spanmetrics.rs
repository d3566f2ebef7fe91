//! Metrics derived from spans as they arrive, named as Grafana Tempo's
//! metrics-generator names them (so dashboards and Grafana's service-graph
//! and RED views built for it work here):
//!
//! - `traces_spanmetrics_calls_total` and `traces_spanmetrics_latency`
//!   (histogram, seconds) by `service`, `span_name`, `span_kind`,
//!   `status_code`, plus configured span attributes;
//! - `traces_service_graph_request_total`, `…_request_failed_total` and
//!   `…_request_server_seconds` (histogram) by `client` and `server`, for
//!   each parent → child call between two services.
//!
//! [`DerivedMetrics`] wraps the span store's sink: it counts a batch, hands
//! it to the store, and once the store took it appends the running totals to
//! the metric store, stamped with the time of processing. Edges whose other
//! side has not arrived yet wait (bounded, expiring) for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sightline_storage::StorageError;
use sightline_storage::metrics::{Labels, Meta, MetricStore, Sample};
use sightline_storage::model::{Span, SpanId, SpanKind, StatusCode, Tenant, TraceId};
use sightline_storage::sink::{Batch, Sink};

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    pub enabled: bool,
    /// Upper bounds of the latency histograms, in seconds.
    pub histogram_buckets: Vec<f64>,
    /// Span (or resource) attributes added as labels, sanitised.
    pub dimensions: Vec<String>,
    /// Spans waiting for the other side of a service-graph edge, at most.
    pub max_pending_edges: usize,
    /// How long such a span waits.
    pub edge_wait_seconds: u64,
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
        }
    }
}

/// A counter and a latency histogram.
#[derive(Clone, Default)]
struct Totals {
    calls: f64,
    failed: f64,
    sum: f64,
    buckets: Vec<f64>,
}

impl Totals {
    fn observe(&mut self, bounds: &[f64], seconds: f64, failed: bool) {
        if self.buckets.is_empty() {
            self.buckets = vec![0.0; bounds.len()];
        }
        self.calls += 1.0;
        self.failed += f64::from(u8::from(failed));
        self.sum += seconds;
        for (b, le) in self.buckets.iter_mut().zip(bounds) {
            if seconds <= *le {
                *b += 1.0;
            }
        }
    }
}

/// What we remember of a span for the service graph.
#[derive(Clone)]
struct SeenSpan {
    service: Arc<str>,
    failed: bool,
    seconds: f64,
    at: Instant,
}

#[derive(Default)]
struct TenantState {
    spans: HashMap<Vec<(String, String)>, Totals>,
    edges: HashMap<(Arc<str>, Arc<str>), Totals>,
    /// Recent spans by id, for children that arrive later.
    seen: HashMap<(TraceId, SpanId), SeenSpan>,
    /// Children whose parent has not been seen yet, by the parent's id.
    waiting: HashMap<(TraceId, SpanId), Vec<SeenSpan>>,
    /// When `seen` and `waiting` were last swept of expired spans.
    swept: Option<Instant>,
}

pub struct DerivedMetrics {
    inner: Arc<dyn Sink<Span>>,
    metrics: MetricStore,
    config: SpanMetricsConfig,
    state: Mutex<HashMap<Tenant, TenantState>>,
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

impl DerivedMetrics {
    pub fn new(inner: Arc<dyn Sink<Span>>, metrics: MetricStore, config: SpanMetricsConfig) -> Self {
        Self { inner, metrics, config, state: Mutex::new(HashMap::new()) }
    }

    /// Counts the spans of a batch into the tenant's totals; returns the
    /// series they touched, as samples stamped `t`.
    fn observe(&self, tenant: &Tenant, spans: &[Span], t: i64) -> Vec<Sample> {
        let bounds = &self.config.histogram_buckets;
        let mut state = self.state.lock();
        let st = state.entry(tenant.clone()).or_default();
        let mut touched_spans = Vec::new();
        let mut touched_edges = Vec::new();
        let wait = Duration::from_secs(self.config.edge_wait_seconds);
        for s in spans {
            let seconds = s.duration_nanos() as f64 / 1e9;
            let failed = s.status_code == StatusCode::Error;
            let mut key = vec![
                ("service".to_owned(), s.resource.service.clone()),
                ("span_name".to_owned(), s.name.clone()),
                ("span_kind".to_owned(), kind_label(s.kind).to_owned()),
                ("status_code".to_owned(), status_label(s.status_code).to_owned()),
            ];
            for d in &self.config.dimensions {
                if let Some(v) = s.attributes.get(d).or_else(|| s.resource.attributes.get(d)) {
                    key.push((sightline_storage::metrics::labels::sanitize_label(d), v.to_text()));
                }
            }
            st.spans.entry(key.clone()).or_default().observe(bounds, seconds, failed);
            touched_spans.push(key);

            // The service graph: this span as a child of its parent, and as
            // the parent of children that arrived first.
            let me = SeenSpan { service: Arc::from(s.resource.service.as_str()), failed, seconds, at: Instant::now() };
            let mut edge = |parent: &SeenSpan, child: &SeenSpan| {
                if parent.service != child.service {
                    let k = (parent.service.clone(), child.service.clone());
                    st.edges.entry(k.clone()).or_default().observe(
                        bounds,
                        child.seconds,
                        child.failed || parent.failed,
                    );
                    touched_edges.push(k);
                }
            };
            if let Some(children) = st.waiting.remove(&(s.trace_id, s.span_id)) {
                for c in &children {
                    edge(&me, c);
                }
            }
            if let Some(parent_id) = s.parent_span_id {
                match st.seen.get(&(s.trace_id, parent_id)).cloned() {
                    Some(parent) => edge(&parent, &me),
                    None if st.waiting.len() < self.config.max_pending_edges => {
                        st.waiting.entry((s.trace_id, parent_id)).or_default().push(me.clone());
                    }
                    None => {}
                }
            }
            if st.seen.len() < self.config.max_pending_edges {
                st.seen.insert((s.trace_id, s.span_id), me);
            }
        }
        // Expiry walks every waiting span: at most once a second, not per batch.
        if st.swept.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            st.seen.retain(|_, s| s.at.elapsed() < wait);
            st.waiting.retain(|_, c| c.iter().any(|s| s.at.elapsed() < wait));
            st.swept = Some(Instant::now());
        }

        touched_spans.sort();
        touched_spans.dedup();
        touched_edges.sort();
        touched_edges.dedup();
        let mut out = Vec::new();
        for key in touched_spans {
            let totals = &st.spans[&key];
            out.push(sample("traces_spanmetrics_calls_total", &key, None, t, totals.calls));
            histogram(&mut out, "traces_spanmetrics_latency", &key, bounds, totals, t);
        }
        for (client, server) in touched_edges {
            let totals = &st.edges[&(client.clone(), server.clone())];
            let key = vec![("client".to_owned(), client.to_string()), ("server".to_owned(), server.to_string())];
            out.push(sample("traces_service_graph_request_total", &key, None, t, totals.calls));
            out.push(sample("traces_service_graph_request_failed_total", &key, None, t, totals.failed));
            histogram(&mut out, "traces_service_graph_request_server_seconds", &key, bounds, totals, t);
        }
        out
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
    for (le, n) in bounds.iter().zip(&totals.buckets) {
        out.push(sample(&format!("{name}_bucket"), key, Some(format!("{le}")), t, *n));
    }
    out.push(sample(&format!("{name}_bucket"), key, Some("+Inf".into()), t, totals.calls));
    out.push(sample(&format!("{name}_sum"), key, None, t, totals.sum));
    out.push(sample(&format!("{name}_count"), key, None, t, totals.calls));
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

impl Sink<Span> for DerivedMetrics {
    fn consume(&self, batch: Batch<Span>) -> Result<(), StorageError> {
        if !self.config.enabled {
            return self.inner.consume(batch);
        }
        let t = (sightline_storage::wal::now_unix_nanos() / 1_000_000) as i64;
        let tenant = batch.tenant.clone();
        let samples = self.observe(&tenant, &batch.items, t);
        self.inner.consume(batch)?;
        self.metrics.append(&tenant, samples, metadata());
        Ok(())
    }

    fn backlogged(&self) -> bool {
        self.inner.backlogged()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_storage::model::{Attributes, Resource, Scope};

    fn span(trace: u8, id: u8, parent: Option<u8>, service: &str, kind: SpanKind, ms: u64, error: bool) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            trace_state: String::new(),
            flags: 0,
            name: format!("op-{service}"),
            kind,
            start_unix_nano: 1_000_000_000,
            end_unix_nano: 1_000_000_000 + ms * 1_000_000,
            status_code: if error { StatusCode::Error } else { StatusCode::Unset },
            status_message: String::new(),
            attributes: Attributes::default(),
            events: Vec::new(),
            links: Vec::new(),
            resource: Arc::new(Resource { service: service.into(), attributes: Attributes::default() }),
            scope: Arc::new(Scope::default()),
        }
    }

    struct Nothing;
    impl Sink<Span> for Nothing {
        fn consume(&self, _: Batch<Span>) -> Result<(), StorageError> {
            Ok(())
        }
    }

    #[test]
    fn red_metrics_and_service_graph_edges() {
        let store = MetricStore::default();
        let derived = DerivedMetrics::new(Arc::new(Nothing), store.clone(), SpanMetricsConfig::default());
        let tenant = Tenant::new("t").expect("tenant");
        // The child (payments) arrives before its parent (checkout).
        let first = vec![span(1, 2, Some(1), "payments", SpanKind::Server, 30, true)];
        let second = vec![
            span(1, 1, None, "checkout", SpanKind::Client, 50, false),
            span(2, 1, None, "checkout", SpanKind::Client, 5, false),
        ];
        for (seq, items) in [(1, first), (2, second)] {
            derived.consume(Batch { tenant: tenant.clone(), wal_seq: seq, items }).expect("consume");
        }
        let value = |q: &str| {
            let series = store.select(&tenant, &[("__name__", q)], |_| true, 0, i64::MAX).expect("select");
            series.iter().map(|s| (s.labels.to_string(), s.samples.last().map_or(0.0, |x| x.1))).collect::<Vec<_>>()
        };
        assert_eq!(value("traces_spanmetrics_calls_total"), [
            (r#"traces_spanmetrics_calls_total{service="checkout", span_kind="SPAN_KIND_CLIENT", span_name="op-checkout", status_code="STATUS_CODE_UNSET"}"#.to_owned(), 2.0),
            (r#"traces_spanmetrics_calls_total{service="payments", span_kind="SPAN_KIND_SERVER", span_name="op-payments", status_code="STATUS_CODE_ERROR"}"#.to_owned(), 1.0),
        ]);
        assert_eq!(
            value("traces_service_graph_request_total"),
            [(r#"traces_service_graph_request_total{client="checkout", server="payments"}"#.to_owned(), 1.0)]
        );
        assert_eq!(value("traces_service_graph_request_failed_total")[0].1, 1.0);
        let buckets = store
            .select(
                &tenant,
                &[("__name__", "traces_spanmetrics_latency_bucket"), ("le", "0.032")],
                |l| l.get("service") == Some("checkout"),
                0,
                i64::MAX,
            )
            .expect("select");
        assert_eq!(buckets[0].samples.last().map(|x| x.1), Some(1.0), "5 ms is under 32 ms, 50 ms is not");
    }
}
