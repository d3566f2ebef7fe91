use sightline_proto::otlp::common::{AnyValue, InstrumentationScope, KeyValue, any_value};
use sightline_proto::otlp::metrics::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use sightline_proto::otlp::resource::Resource as OtlpResource;

use super::*;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>, scope: &str) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(OtlpResource {
                attributes: vec![kv("service.name", "shop"), kv("service.instance.id", "i-1"), kv("host.name", "h")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope { name: scope.into(), version: "1".into(), ..Default::default() }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric { name: name.into(), unit: unit.into(), description: "help".into(), data: Some(data), ..Default::default() }
}

fn texts(p: &Point) -> Vec<String> {
    p.samples.iter().map(|s| format!("{} {} @{}", s.labels, s.v, s.t)).collect()
}

#[test]
fn histograms_become_buckets_sum_and_count_and_resources_target_info() {
    let point = HistogramDataPoint {
        attributes: vec![kv("http.route", "/a")],
        time_unix_nano: 5_000_000_000,
        count: 4,
        sum: Some(2.5),
        explicit_bounds: vec![0.1, 1.0],
        bucket_counts: vec![1, 2, 1],
        exemplars: vec![OtlpExemplar {
            time_unix_nano: 4_000_000_000,
            value: Some(exemplar::Value::AsDouble(0.5)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let h = Histogram { data_points: vec![point], aggregation_temporality: 2 };
    let points = points(request(vec![metric("latency", "s", metric::Data::Histogram(h))], ""));
    assert_eq!(points.len(), 2, "the point and its resource's target_info");
    let p = &points[0];
    assert_eq!(p.family, "latency_seconds");
    assert_eq!(p.meta.as_ref().map(|m| m.kind), Some("histogram"));
    assert!(!p.delta && !p.derived);
    assert_eq!(
        texts(p),
        [
            r#"latency_seconds_bucket{http_route="/a", instance="i-1", job="shop", le="0.1"} 1 @5000"#,
            r#"latency_seconds_bucket{http_route="/a", instance="i-1", job="shop", le="1"} 3 @5000"#,
            r#"latency_seconds_bucket{http_route="/a", instance="i-1", job="shop", le="+Inf"} 4 @5000"#,
            r#"latency_seconds_sum{http_route="/a", instance="i-1", job="shop"} 2.5 @5000"#,
            r#"latency_seconds_count{http_route="/a", instance="i-1", job="shop"} 4 @5000"#,
        ]
    );
    assert_eq!(p.exemplars.len(), 1);
    assert_eq!(p.exemplars[0].0, 1, "the exemplar goes with the bucket that counts 0.5 (le=1)");
    assert!(points[1].derived);
    assert_eq!(texts(&points[1]), [r#"target_info{host_name="h", instance="i-1", job="shop"} 1 @5000"#]);
}

#[test]
fn delta_sums_are_marked_and_scopes_and_staleness_become_labels_and_markers() {
    let point = |v: f64, flags: u32| NumberDataPoint {
        time_unix_nano: 7_000_000_000,
        value: Some(number_data_point::Value::AsDouble(v)),
        flags,
        ..Default::default()
    };
    let sum = Sum { data_points: vec![point(2.0, 0)], aggregation_temporality: 1, is_monotonic: true };
    let gauge = Gauge { data_points: vec![point(3.0, 1)] };
    let points = points(request(
        vec![metric("orders", "{order}", metric::Data::Sum(sum)), metric("queue", "", metric::Data::Gauge(gauge))],
        "shop.lib",
    ));
    assert!(points[0].delta, "a delta sum is summed by the store");
    assert_eq!(points[0].family, "orders_total");
    assert_eq!(
        texts(&points[0]),
        [r#"orders_total{instance="i-1", job="shop", otel_scope_name="shop.lib", otel_scope_version="1"} 2 @7000"#]
    );
    assert!(!points[1].delta);
    assert!(sightline_storage::metrics::is_stale(points[1].samples[0].v), "no recorded value: a staleness marker");
}
