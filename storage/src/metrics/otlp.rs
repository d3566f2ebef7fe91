//! OTLP metric points → Prometheus samples, as the OpenTelemetry
//! specification's Prometheus compatibility section maps them:
//! gauges and sums as they are (monotonic sums as `_total` counters),
//! histograms as `_bucket{le}`, `_sum` and `_count`, summaries as
//! `{quantile}`, `_sum` and `_count`; exponential histograms become classic
//! buckets at their native boundaries (see `docs/metrics.md` for the loss);
//! `job` and `instance` come from the resource, the rest of the resource
//! goes on `target_info`. Delta points are summed into cumulative series.

use std::collections::HashMap;

use super::labels::{Labels, METRIC_NAME, metric_name, sanitize_label};
use crate::model::{Attributes, MetricPoint, PointValue, Resource, Temporality};

/// The instrumentation scope under which remote-write samples travel as OTLP
/// gauges: their attributes are the series' labels, as sent.
pub const REMOTE_WRITE_SCOPE: &str = "sightline.prometheus.remote_write";

/// Prometheus's staleness marker: a NaN with this exact payload.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// What Prometheus's metadata API says of a metric family.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Meta {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// One sample for one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// Milliseconds since the epoch.
    pub t: i64,
    pub v: f64,
}

/// Running sums of delta series, by output series, with the time (ms) of
/// their last point: [`expire_deltas`] forgets the ones idle too long, and
/// a series that comes back starts again from zero (a counter reset).
pub type DeltaState = HashMap<Labels, (f64, i64)>;

/// Forgets the running sums whose last point is older than `before` (ms).
pub fn expire_deltas(state: &mut DeltaState, before: i64) {
    state.retain(|_, (_, last)| *last >= before);
}

/// The labels `job` and `instance` of a resource.
pub fn job_instance(resource: &Resource) -> Vec<(String, String)> {
    let attrs = &resource.attributes;
    let job = match attrs.get_str("service.namespace").filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{}", resource.service),
        None => resource.service.clone(),
    };
    let mut out = vec![("job".to_owned(), job)];
    if let Some(id) = attrs.get_str("service.instance.id") {
        out.push(("instance".to_owned(), id.to_owned()));
    }
    out
}

/// The `target_info` series of a resource: its other attributes as labels.
pub fn target_info(resource: &Resource) -> Labels {
    let mut pairs = job_instance(resource);
    pairs.extend(
        resource
            .attributes
            .0
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "service.name" | "service.namespace" | "service.instance.id"))
            .map(|(k, v)| (sanitize_label(k), v.to_text())),
    );
    pairs.push((METRIC_NAME.to_owned(), "target_info".to_owned()));
    Labels::new(pairs)
}

/// Attributes as labels; keys that sanitise alike join their values with `;`.
fn attribute_labels(attrs: &Attributes) -> Vec<(String, String)> {
    let mut sorted: Vec<_> = attrs.0.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(sorted.len());
    for (k, v) in sorted {
        let name = sanitize_label(k);
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(';');
                existing.push_str(&v.to_text());
            }
            None => out.push((name, v.to_text())),
        }
    }
    out
}

/// The samples of one point, appended to `out`; returns the family name and
/// its metadata.
pub fn convert(p: &MetricPoint, delta: &mut DeltaState, out: &mut Vec<Sample>) -> (String, Meta) {
    let t = (p.time_unix_nano / 1_000_000) as i64;
    if p.scope.name == REMOTE_WRITE_SCOPE {
        let mut pairs: Vec<_> = p.attributes.0.iter().map(|(k, v)| (k.clone(), v.to_text())).collect();
        pairs.push((METRIC_NAME.to_owned(), p.name.clone()));
        let v = match p.value {
            PointValue::Gauge(v) => v,
            _ => f64::NAN,
        };
        out.push(Sample { labels: Labels::new(pairs), t, v });
        return (p.name.clone(), Meta { kind: "unknown", help: String::new(), unit: String::new() });
    }
    let mut base = attribute_labels(&p.attributes);
    base.extend(job_instance(&p.resource));
    if !p.scope.name.is_empty() {
        base.push(("otel_scope_name".into(), p.scope.name.clone()));
        base.push(("otel_scope_version".into(), p.scope.version.clone()));
    }
    let start = out.len();
    let mut push = |name: &str, extra: Option<(&str, String)>, v: f64| {
        let mut pairs = base.clone();
        pairs.push((METRIC_NAME.to_owned(), name.to_owned()));
        if let Some((k, val)) = extra {
            pairs.push((k.to_owned(), val));
        }
        let v = if p.no_value { f64::from_bits(STALE_NAN) } else { v };
        out.push(Sample { labels: Labels::new(pairs), t, v });
    };
    let meta = |kind| Meta { kind, help: p.description.clone(), unit: p.unit.clone() };
    let (family, meta, temporality) = match &p.value {
        PointValue::Gauge(v) => {
            let name = metric_name(&p.name, &p.unit, false, true);
            push(&name, None, *v);
            (name, meta("gauge"), Temporality::Cumulative)
        }
        PointValue::Sum { value, monotonic, temporality } => {
            let name = metric_name(&p.name, &p.unit, *monotonic, !monotonic);
            push(&name, None, *value);
            (name, meta(if *monotonic { "counter" } else { "gauge" }), *temporality)
        }
        PointValue::Histogram { count, sum, bounds, bucket_counts, temporality } => {
            let name = metric_name(&p.name, &p.unit, false, false);
            let mut cumulative = 0u64;
            for (i, bound) in bounds.iter().enumerate() {
                cumulative += bucket_counts.get(i).copied().unwrap_or(0);
                push(&format!("{name}_bucket"), Some(("le", format_float(*bound))), cumulative as f64);
            }
            push(&format!("{name}_bucket"), Some(("le", "+Inf".into())), *count as f64);
            if let Some(sum) = sum {
                push(&format!("{name}_sum"), None, *sum);
            }
            push(&format!("{name}_count"), None, *count as f64);
            (name, meta("histogram"), *temporality)
        }
        PointValue::ExponentialHistogram {
            count,
            sum,
            scale,
            zero_count,
            positive_offset,
            positive,
            negative,
            temporality,
            ..
        } => {
            let name = metric_name(&p.name, &p.unit, false, false);
            // Negative and zero observations all fall at or below le="0".
            let base = 2f64.powf(2f64.powi(-scale));
            let mut cumulative = zero_count + negative.iter().sum::<u64>();
            push(&format!("{name}_bucket"), Some(("le", "0".into())), cumulative as f64);
            for (i, n) in positive.iter().enumerate() {
                cumulative += n;
                let upper = base.powi(positive_offset + i as i32 + 1);
                push(&format!("{name}_bucket"), Some(("le", format_float(upper))), cumulative as f64);
            }
            push(&format!("{name}_bucket"), Some(("le", "+Inf".into())), *count as f64);
            if let Some(sum) = sum {
                push(&format!("{name}_sum"), None, *sum);
            }
            push(&format!("{name}_count"), None, *count as f64);
            (name, meta("histogram"), *temporality)
        }
        PointValue::Summary { count, sum, quantiles } => {
            let name = metric_name(&p.name, &p.unit, false, false);
            for (q, v) in quantiles {
                push(&name, Some(("quantile", format_float(*q))), *v);
            }
            push(&format!("{name}_sum"), None, *sum);
            push(&format!("{name}_count"), None, *count as f64);
            (name, meta("summary"), Temporality::Cumulative)
        }
    };
    if temporality == Temporality::Delta {
        for s in &mut out[start..] {
            if is_stale(s.v) {
                continue;
            }
            let (total, last) = delta.entry(s.labels.clone()).or_insert((0.0, s.t));
            *total += s.v;
            *last = (*last).max(s.t);
            s.v = *total;
        }
    }
    (family, meta)
}

/// A float as Prometheus writes label values (`0.5`, `1`, `+Inf`).
pub fn format_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        let s = format!("{v}");
        s
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{AttrValue, Scope};

    fn point(name: &str, unit: &str, value: PointValue) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            unit: unit.into(),
            description: "help".into(),
            attributes: Attributes(vec![("http.route".into(), AttrValue::Str("/a".into()))]),
            start_unix_nano: 0,
            time_unix_nano: 5_000_000_000,
            no_value: false,
            value,
            exemplars: Vec::new(),
            resource: Arc::new(Resource {
                service: "shop".into(),
                attributes: Attributes(vec![
                    ("service.name".into(), AttrValue::Str("shop".into())),
                    ("service.instance.id".into(), AttrValue::Str("i-1".into())),
                    ("host.name".into(), AttrValue::Str("h".into())),
                ]),
            }),
            scope: Arc::new(Scope::default()),
        }
    }

    fn texts(out: &[Sample]) -> Vec<String> {
        out.iter().map(|s| format!("{} {} @{}", s.labels, s.v, s.t)).collect()
    }

    #[test]
    fn histograms_become_buckets_sum_and_count() {
        let mut out = Vec::new();
        let h = PointValue::Histogram {
            count: 4,
            sum: Some(2.5),
            bounds: vec![0.1, 1.0],
            bucket_counts: vec![1, 2, 1],
            temporality: Temporality::Cumulative,
        };
        let (family, meta) = convert(&point("latency", "s", h), &mut DeltaState::new(), &mut out);
        assert_eq!(family, "latency_seconds");
        assert_eq!(meta.kind, "histogram");
        assert_eq!(
            texts(&out),
            [
                r#"latency_seconds_bucket{http_route="/a", instance="i-1", job="shop", le="0.1"} 1 @5000"#,
                r#"latency_seconds_bucket{http_route="/a", instance="i-1", job="shop", le="1"} 3 @5000"#,
                r#"latency_seconds_bucket{http_route="/a", instance="i-1", job="shop", le="+Inf"} 4 @5000"#,
                r#"latency_seconds_sum{http_route="/a", instance="i-1", job="shop"} 2.5 @5000"#,
                r#"latency_seconds_count{http_route="/a", instance="i-1", job="shop"} 4 @5000"#,
            ]
        );
        assert_eq!(
            target_info(&point("x", "", PointValue::Gauge(1.0)).resource).to_string(),
            r#"target_info{host_name="h", instance="i-1", job="shop"}"#
        );
    }

    #[test]
    fn delta_sums_accumulate_into_counters() {
        let mut state = DeltaState::new();
        let mut out = Vec::new();
        for v in [2.0, 3.0] {
            let sum = PointValue::Sum { value: v, monotonic: true, temporality: Temporality::Delta };
            convert(&point("orders", "{order}", sum), &mut state, &mut out);
        }
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), [2.0, 5.0]);
        assert_eq!(out[0].labels.name(), Some("orders_total"));
        expire_deltas(&mut state, 5_001);
        assert!(state.is_empty(), "idle running sums are forgotten");
    }
}
