use super::*;
use sightline_storage::model::{AttrValue, Attributes, Resource, Scope, SpanId, TraceId};

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

fn connector(config: SpanMetricsConfig) -> (DerivedMetrics, MetricStore) {
    let store = MetricStore::default();
    // Two shards, as the span store has on two cores: they count into one total.
    let derived =
        DerivedMetrics::start(vec![Arc::new(Nothing), Arc::new(Nothing)], store.clone(), config).expect("start");
    derived.replay_done();
    (derived, store)
}

fn tenant() -> Tenant {
    Tenant::new("t").expect("tenant")
}

fn send(derived: &DerivedMetrics, seq: u64, items: Vec<Span>) {
    let sinks = derived.sinks();
    let shard = seq as usize % sinks.len();
    sinks[shard].consume(Batch { tenant: tenant(), wal_seq: seq, items }).expect("consume");
}

/// Every series of a metric as `labels → newest value`, sorted.
fn values(store: &MetricStore, name: &str) -> Vec<(String, f64)> {
    let series = store.select(&tenant(), &[("__name__", name)], |_| true, 0, i64::MAX).expect("select");
    let mut out: Vec<_> =
        series.iter().map(|s| (s.labels.to_string(), s.samples.last().map_or(f64::NAN, |x| x.1))).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The newest value of the one series with these labels.
fn value(store: &MetricStore, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut matchers = vec![("__name__", name)];
    matchers.extend_from_slice(labels);
    let series = store.select(&tenant(), &matchers, |_| true, 0, i64::MAX).expect("select");
    assert!(series.len() <= 1, "{name} {labels:?}: {} series", series.len());
    series.first().and_then(|s| s.samples.last()).map(|x| x.1)
}

#[test]
fn nothing_reaches_the_metric_store_before_a_flush() {
    let (derived, store) = connector(SpanMetricsConfig::default());
    send(&derived, 1, vec![span(1, 1, None, "checkout", SpanKind::Server, 5, false)]);
    assert!(values(&store, "traces_spanmetrics_calls_total").is_empty(), "the span lane only counts");
    derived.flush_now();
    assert_eq!(values(&store, "traces_spanmetrics_calls_total").len(), 1);
}

#[test]
fn red_metrics_and_service_graph_edges_have_exact_values() {
    let (derived, store) = connector(SpanMetricsConfig::default());
    // Trace 1: the child (payments) arrives a batch before its parent
    // (checkout). Trace 2: the parent arrives before its children, one of
    // them in the same batch as the parent, one later. Trace 3: within one
    // batch, the child before the parent.
    send(&derived, 1, vec![span(1, 2, Some(1), "payments", SpanKind::Server, 30, true)]);
    send(
        &derived,
        2,
        vec![
            span(1, 1, None, "checkout", SpanKind::Client, 50, false),
            span(2, 1, None, "checkout", SpanKind::Client, 5, false),
            span(2, 2, Some(1), "payments", SpanKind::Server, 3, false),
        ],
    );
    send(
        &derived,
        3,
        vec![
            span(2, 3, Some(1), "stock", SpanKind::Server, 1, false),
            span(3, 2, Some(1), "payments", SpanKind::Server, 20, false),
            span(3, 1, None, "checkout", SpanKind::Client, 40, true),
            // Same service as its parent: a RED span, no edge.
            span(3, 3, Some(1), "checkout", SpanKind::Internal, 1, false),
        ],
    );
    derived.flush_now();

    let calls = |service, kind, status| {
        value(
            &store,
            "traces_spanmetrics_calls_total",
            &[("service", service), ("span_kind", kind), ("status_code", status)],
        )
    };
    assert_eq!(calls("checkout", "SPAN_KIND_CLIENT", "STATUS_CODE_UNSET"), Some(2.0));
    assert_eq!(calls("checkout", "SPAN_KIND_CLIENT", "STATUS_CODE_ERROR"), Some(1.0));
    assert_eq!(calls("checkout", "SPAN_KIND_INTERNAL", "STATUS_CODE_UNSET"), Some(1.0));
    assert_eq!(calls("payments", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"), Some(2.0));
    assert_eq!(calls("payments", "SPAN_KIND_SERVER", "STATUS_CODE_ERROR"), Some(1.0));
    assert_eq!(calls("stock", "SPAN_KIND_SERVER", "STATUS_CODE_UNSET"), Some(1.0));
    assert_eq!(values(&store, "traces_spanmetrics_calls_total").len(), 6);
    assert_eq!(
        values(&store, "traces_spanmetrics_calls_total")[0].0,
        r#"traces_spanmetrics_calls_total{service="checkout", span_kind="SPAN_KIND_CLIENT", span_name="op-checkout", status_code="STATUS_CODE_ERROR"}"#
    );

    // checkout client spans without error: 50 ms and 5 ms.
    let ok_client = [("service", "checkout"), ("span_kind", "SPAN_KIND_CLIENT"), ("status_code", "STATUS_CODE_UNSET")];
    let bucket = |le: &str| {
        let mut l = ok_client.to_vec();
        l.push(("le", le));
        value(&store, "traces_spanmetrics_latency_bucket", &l)
    };
    assert_eq!(bucket("0.004"), Some(0.0));
    assert_eq!(bucket("0.008"), Some(1.0));
    assert_eq!(bucket("0.032"), Some(1.0));
    assert_eq!(bucket("0.064"), Some(2.0));
    assert_eq!(bucket("16.384"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
    assert_eq!(value(&store, "traces_spanmetrics_latency_count", &ok_client), Some(2.0));
    let sum = value(&store, "traces_spanmetrics_latency_sum", &ok_client).expect("sum");
    assert!((sum - 0.055).abs() < 1e-9, "{sum}");

    // Edges: checkout → payments three times (one failed child, one failed
    // parent), checkout → stock once.
    assert_eq!(
        values(&store, "traces_service_graph_request_total"),
        [
            (r#"traces_service_graph_request_total{client="checkout", server="payments"}"#.to_owned(), 3.0),
            (r#"traces_service_graph_request_total{client="checkout", server="stock"}"#.to_owned(), 1.0),
        ]
    );
    let edge = [("client", "checkout"), ("server", "payments")];
    assert_eq!(value(&store, "traces_service_graph_request_failed_total", &edge), Some(2.0));
    let server_bucket = |le| {
        let mut l = edge.to_vec();
        l.push(("le", le));
        value(&store, "traces_service_graph_request_server_seconds_bucket", &l)
    };
    // The server side's durations: 30, 3 and 20 ms.
    assert_eq!(server_bucket("0.004"), Some(1.0));
    assert_eq!(server_bucket("0.016"), Some(1.0));
    assert_eq!(server_bucket("0.032"), Some(3.0));
    let sum = value(&store, "traces_service_graph_request_server_seconds_sum", &edge).expect("sum");
    assert!((sum - 0.053).abs() < 1e-9, "{sum}");
    assert_eq!(value(&store, "traces_service_graph_request_server_seconds_count", &edge), Some(3.0));
}

#[test]
fn counters_keep_running_and_only_changed_series_are_written() {
    let (derived, store) = connector(SpanMetricsConfig::default());
    send(
        &derived,
        1,
        vec![span(1, 1, None, "a", SpanKind::Server, 1, false), span(2, 1, None, "b", SpanKind::Server, 1, false)],
    );
    derived.flush_now();
    std::thread::sleep(Duration::from_millis(3));
    send(&derived, 2, vec![span(3, 1, None, "a", SpanKind::Server, 1, false)]);
    derived.flush_now();
    let series = store
        .select(&tenant(), &[("__name__", "traces_spanmetrics_calls_total")], |_| true, 0, i64::MAX)
        .expect("select");
    let samples = |service: &str| {
        series.iter().find(|s| s.labels.get("service") == Some(service)).map(|s| s.samples.clone()).expect("series")
    };
    let a = samples("a");
    assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>(), [1.0, 2.0], "a counter keeps its total");
    assert!(a[0].0 < a[1].0, "each flush is stamped later");
    assert_eq!(samples("b").len(), 1, "an unchanged series gets no new sample");
}

#[test]
fn replayed_batches_are_not_counted_again() {
    let store = MetricStore::default();
    let derived =
        DerivedMetrics::start(vec![Arc::new(Nothing)], store.clone(), SpanMetricsConfig::default()).expect("start");
    // Replay: counted before the restart, so not again.
    send(&derived, 1, vec![span(1, 1, None, "a", SpanKind::Server, 1, false)]);
    derived.replay_done();
    send(&derived, 2, vec![span(2, 1, None, "a", SpanKind::Server, 1, false)]);
    derived.flush_now();
    assert_eq!(value(&store, "traces_spanmetrics_calls_total", &[("service", "a")]), Some(1.0));
}

#[test]
fn dimensions_become_labels_and_series_are_capped() {
    let config = SpanMetricsConfig { dimensions: vec!["http.method".into()], max_series: 2, ..Default::default() };
    let (derived, store) = connector(config);
    let mut get = span(1, 1, None, "a", SpanKind::Server, 1, false);
    get.attributes.0.push(("http.method".into(), AttrValue::Str("GET".into())));
    let mut status = span(2, 1, None, "a", SpanKind::Server, 1, false);
    status.attributes.0.push(("http.method".into(), AttrValue::Int(7)));
    let plain = span(3, 1, None, "a", SpanKind::Server, 1, false);
    let other = span(4, 1, None, "b", SpanKind::Server, 1, false);
    send(&derived, 1, vec![get.clone(), status, get, plain, other]);
    derived.flush_now();
    assert_eq!(values(&store, "traces_spanmetrics_calls_total"), [
        (r#"traces_spanmetrics_calls_total{http_method="7", service="a", span_kind="SPAN_KIND_SERVER", span_name="op-a", status_code="STATUS_CODE_UNSET"}"#.to_owned(), 1.0),
        (r#"traces_spanmetrics_calls_total{http_method="GET", service="a", span_kind="SPAN_KIND_SERVER", span_name="op-a", status_code="STATUS_CODE_UNSET"}"#.to_owned(), 2.0),
    ]);
    assert_eq!(derived.shared.telemetry.over_limit_spans.get(), 2, "the spans of a third and fourth label set");
}

#[test]
fn a_disabled_connector_only_passes_spans_on() {
    let config = SpanMetricsConfig { enabled: false, ..Default::default() };
    let (derived, store) = connector(config);
    send(&derived, 1, vec![span(1, 1, None, "a", SpanKind::Server, 1, false)]);
    derived.flush_now();
    assert!(store.tenants().is_empty());
}
