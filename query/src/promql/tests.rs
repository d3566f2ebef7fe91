//! The evaluator against a small store, with values worked out by hand from
//! Prometheus's definitions.

use sightline_storage::metrics::{Labels, MetricStore, Sample as StoreSample};
use sightline_storage::model::Tenant;

use super::value::{EvalError, Value};
use super::{instant, range};
use crate::limits::Budget;

const LOOKBACK: i64 = 300_000;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

/// Counters scraped every 15 s for 10 minutes, two gauges, an info metric,
/// a histogram, and a series that stops at 100 s.
fn store() -> (MetricStore, Tenant) {
    let store = MetricStore::default();
    let tenant = Tenant::new("t").expect("tenant");
    let mut samples = Vec::new();
    let mut series = |pairs: &[(&str, &str)], f: &dyn Fn(i64) -> f64, until: i64| {
        for i in 0..=until / 15 {
            samples.push(StoreSample { labels: labels(pairs), t: i * 15_000, v: f(i) });
        }
    };
    let req = "http_requests_total";
    series(&[("__name__", req), ("instance", "a"), ("code", "200")], &|i| (i * 10) as f64, 600);
    series(&[("__name__", req), ("instance", "b"), ("code", "200")], &|i| (i * 5) as f64, 600);
    series(&[("__name__", req), ("instance", "a"), ("code", "500")], &|i| i as f64, 600);
    series(&[("__name__", "node_memory"), ("instance", "a")], &|_| 100.0, 600);
    series(&[("__name__", "node_memory"), ("instance", "b")], &|_| 200.0, 600);
    series(&[("__name__", "info"), ("instance", "a"), ("version", "1.0")], &|_| 1.0, 600);
    series(&[("__name__", "gone"), ("instance", "a")], &|_| 1.0, 100);
    for (le, per_step) in [("0.1", 1.0), ("0.5", 3.0), ("1", 4.0), ("+Inf", 4.0)] {
        series(&[("__name__", "latency_bucket"), ("le", le)], &|i| i as f64 * per_step, 600);
    }
    store.append(&tenant, samples, Vec::new());
    (store, tenant)
}

/// An instant query's samples as `labels => value`, sorted.
fn query(q: &str, t_secs: i64) -> Vec<(String, f64)> {
    let (store, tenant) = store();
    match instant(&store, &tenant, &Budget::unlimited(), q, t_secs * 1000, LOOKBACK).expect(q) {
        Value::Vector(v) => {
            let mut out: Vec<_> = v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        Value::Scalar(v) => vec![("scalar".into(), v)],
        other => panic!("{q}: {other:?}"),
    }
}

fn close(got: &[(String, f64)], want: &[(&str, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((gl, gv), (wl, wv)) in got.iter().zip(want) {
        assert_eq!(gl, wl);
        assert!((gv - wv).abs() < 1e-9 || (gv.is_nan() && wv.is_nan()), "{gl}: {gv} != {wv}");
    }
}

#[test]
fn selectors_offset_and_staleness() {
    close(
        &query(r#"http_requests_total{code="200"}"#, 300),
        &[
            (r#"http_requests_total{code="200", instance="a"}"#, 200.0),
            (r#"http_requests_total{code="200", instance="b"}"#, 100.0),
        ],
    );
    close(
        &query(r#"http_requests_total{instance="a",code=~"2.."} offset 1m"#, 300),
        &[(r#"http_requests_total{code="200", instance="a"}"#, 160.0)],
    );
    close(
        &query(r#"http_requests_total{instance!="a"}"#, 300),
        &[(r#"http_requests_total{code="200", instance="b"}"#, 100.0)],
    );
    // Between samples, the newest one within the lookback.
    close(&query(r#"node_memory{instance="a"}"#, 307), &[(r#"node_memory{instance="a"}"#, 100.0)]);
    // Five minutes after its last sample a series is gone.
    assert_eq!(query("gone", 390).len(), 1);
    assert!(query("gone", 401).is_empty());
}

#[test]
fn rates_and_aggregations() {
    close(
        &query("sum by (instance) (rate(http_requests_total[1m]))", 300),
        &[(r#"{instance="a"}"#, 11.0 / 15.0), (r#"{instance="b"}"#, 5.0 / 15.0)],
    );
    close(&query(r#"increase(http_requests_total{code="500"}[2m])"#, 300), &[(r#"{code="500", instance="a"}"#, 8.0)]);
    close(
        &query("sum without (code) (http_requests_total)", 300),
        &[(r#"{instance="a"}"#, 220.0), (r#"{instance="b"}"#, 100.0)],
    );
    close(&query("count(node_memory)", 300), &[("{}", 2.0)]);
    close(&query("avg(node_memory)", 300), &[("{}", 150.0)]);
    close(&query("stddev(node_memory)", 300), &[("{}", 50.0)]);
    close(&query("quantile(0.5, node_memory)", 300), &[("{}", 150.0)]);
    close(&query("topk(1, node_memory)", 300), &[(r#"node_memory{instance="b"}"#, 200.0)]);
    close(&query("bottomk(1, node_memory)", 300), &[(r#"node_memory{instance="a"}"#, 100.0)]);
    close(
        &query(r#"count_values("bytes", node_memory)"#, 300),
        &[(r#"{bytes="100"}"#, 1.0), (r#"{bytes="200"}"#, 1.0)],
    );
    close(
        &query("max_over_time(rate(http_requests_total{instance=\"a\",code=\"200\"}[1m])[5m:1m])", 300),
        &[(r#"{code="200", instance="a"}"#, 10.0 / 15.0)],
    );
    close(
        &query(r#"irate(http_requests_total{code="500"}[1m])"#, 300),
        &[(r#"{code="500", instance="a"}"#, 1.0 / 15.0)],
    );
    close(&query(r#"changes(node_memory{instance="a"}[5m])"#, 300), &[(r#"{instance="a"}"#, 0.0)]);
    close(&query(r#"count_over_time(node_memory{instance="a"}[1m])"#, 300), &[(r#"{instance="a"}"#, 5.0)]);
    close(&query(r#"last_over_time(node_memory{instance="a"}[1m])"#, 300), &[(r#"node_memory{instance="a"}"#, 100.0)]);
}

#[test]
fn binary_operators_and_matching() {
    close(&query("node_memory > 150", 300), &[(r#"node_memory{instance="b"}"#, 200.0)]);
    close(&query("node_memory > bool 150", 300), &[(r#"{instance="a"}"#, 0.0), (r#"{instance="b"}"#, 1.0)]);
    close(&query("node_memory / 100", 300), &[(r#"{instance="a"}"#, 1.0), (r#"{instance="b"}"#, 2.0)]);
    close(&query("2 ^ 3 + 1", 300), &[("scalar", 9.0)]);
    close(
        &query("node_memory * on(instance) group_left(version) info", 300),
        &[(r#"{instance="a", version="1.0"}"#, 100.0)],
    );
    close(
        &query(r#"http_requests_total / ignoring(code) group_left node_memory"#, 300),
        &[
            (r#"{code="200", instance="a"}"#, 2.0),
            (r#"{code="200", instance="b"}"#, 0.5),
            (r#"{code="500", instance="a"}"#, 0.2),
        ],
    );
    close(&query("node_memory and on(instance) info", 300), &[(r#"node_memory{instance="a"}"#, 100.0)]);
    close(&query("node_memory unless on(instance) info", 300), &[(r#"node_memory{instance="b"}"#, 200.0)]);
    assert_eq!(query(r#"node_memory or info"#, 300).len(), 3);
    let (store, tenant) = store();
    let err = instant(
        &store,
        &tenant,
        &Budget::unlimited(),
        "http_requests_total + on(instance) node_memory",
        300_000,
        LOOKBACK,
    );
    assert!(matches!(err, Err(EvalError::Execution(_))), "{err:?}");
}

#[test]
fn functions() {
    close(&query("histogram_quantile(0.5, rate(latency_bucket[1m]))", 300), &[("{}", 0.3)]);
    close(&query(r#"absent(nothing{job="x"})"#, 300), &[(r#"{job="x"}"#, 1.0)]);
    assert!(query("absent(node_memory)", 300).is_empty());
    close(
        &query(r#"label_replace(node_memory{instance="a"}, "host", "h-$1", "instance", "(.*)")"#, 300),
        &[(r#"node_memory{host="h-a", instance="a"}"#, 100.0)],
    );
    close(
        &query(r#"label_join(info, "both", "/", "instance", "version")"#, 300),
        &[(r#"info{both="a/1.0", instance="a", version="1.0"}"#, 1.0)],
    );
    close(&query("time()", 300), &[("scalar", 300.0)]);
    close(&query("scalar(node_memory{instance=\"b\"}) * 2", 300), &[("scalar", 400.0)]);
    close(&query("vector(1)", 300), &[("{}", 1.0)]);
    close(&query("clamp_max(node_memory, 150)", 300), &[(r#"{instance="a"}"#, 100.0), (r#"{instance="b"}"#, 150.0)]);
    close(&query("timestamp(node_memory{instance=\"a\"})", 307), &[(r#"{instance="a"}"#, 300.0)]);
    close(
        &query("deriv(http_requests_total{code=\"500\"}[2m])", 300),
        &[(r#"{code="500", instance="a"}"#, 1.0 / 15.0)],
    );
    close(
        &query("predict_linear(http_requests_total{code=\"500\"}[2m], 60)", 300),
        &[(r#"{code="500", instance="a"}"#, 24.0)],
    );
}

#[test]
fn range_queries_and_errors() {
    let (store, tenant) = store();
    let series =
        range(&store, &tenant, &Budget::unlimited(), r#"node_memory{instance="a"}"#, 0, 60_000, 30_000, LOOKBACK)
            .expect("range");
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].points, [(0, 100.0), (30_000, 100.0), (60_000, 100.0)]);
    let rate = range(
        &store,
        &tenant,
        &Budget::unlimited(),
        r#"rate(http_requests_total{code="500"}[1m])"#,
        60_000,
        120_000,
        60_000,
        LOOKBACK,
    )
    .expect("range");
    assert_eq!(rate[0].points.len(), 2);
    for q in ["foo +", "rate(node_memory)", "sum(", "node_memory[5m]"] {
        let err = range(&store, &tenant, &Budget::unlimited(), q, 0, 60_000, 30_000, LOOKBACK);
        assert!(matches!(err, Err(EvalError::BadData(_))), "{q}: {err:?}");
    }
    let err = instant(&store, &tenant, &Budget::unlimited(), "holt_winters(node_memory[5m], 0.5, 0.5)", 0, LOOKBACK);
    assert!(err.is_err(), "an unsupported function is an error, not an empty answer");
}

#[test]
fn long_range_queries_split_across_cores_give_the_same_points() {
    let (store, tenant) = store();
    // 601 steps: split into slices; each step must equal the instant query.
    let q = "sum by (instance) (rate(http_requests_total[1m]))";
    let series = range(&store, &tenant, &Budget::unlimited(), q, 0, 600_000, 1_000, LOOKBACK).expect("range");
    assert_eq!(series.len(), 2);
    for s in &series {
        assert_eq!(s.points.len(), 601 - 15, "{}: no rate before the second sample", s.labels);
        for &(t, v) in s.points.iter().step_by(37) {
            let Value::Vector(at) = instant(&store, &tenant, &Budget::unlimited(), q, t, LOOKBACK).expect("instant")
            else {
                panic!("vector")
            };
            let same = at.iter().find(|x| x.labels == s.labels).map(|x| x.v);
            assert_eq!(same, Some(v), "{} at {t}", s.labels);
        }
    }
}

/// Found by the `promql` fuzz target: the parser panicked converting an
/// enormous range to a `Duration`; the query is now a bad_data error.
#[test]
fn an_enormous_range_is_an_error_not_a_panic() {
    let (store, tenant) = store();
    for q in ["6ws[28888888888888888888]", "to3[2111111111111111111111111111111]", "up offset 99999999999999999y"] {
        let err = instant(&store, &tenant, &Budget::unlimited(), q, 0, LOOKBACK);
        assert!(matches!(err, Err(EvalError::BadData(_))), "{q}: {err:?}");
    }
    // Long numbers elsewhere are fine: in a label value, or as a number.
    let ok = instant(&store, &tenant, &Budget::unlimited(), r#"vector(1234567890123456789)"#, 0, LOOKBACK);
    assert!(ok.is_ok(), "{ok:?}");
    let ok = instant(&store, &tenant, &Budget::unlimited(), r#"up{a="1234567890123456789s"}"#, 0, LOOKBACK);
    assert!(ok.is_ok(), "{ok:?}");
}
