//! OTLP metrics → the samples the metric store appends, once, as the
//! OpenTelemetry specification's Prometheus compatibility section maps
//! them: gauges and sums as they are (monotonic sums as `_total`
//! counters), histograms as `_bucket{le}`, `_sum` and `_count`, summaries
//! as `{quantile}`, `_sum` and `_count`; exponential histograms become
//! classic buckets at their native boundaries (see `docs/metrics.md` for
//! the loss); `job` and `instance` come from the resource, the rest of the
//! resource goes on `target_info`. Delta points are marked for the store,
//! which sums them into cumulative series in WAL order.

use sightline_proto::otlp::ExportMetricsServiceRequest;
use sightline_proto::otlp::common::KeyValue;
use sightline_proto::otlp::metrics::{Exemplar as OtlpExemplar, exemplar, metric, number_data_point};
use sightline_storage::metrics::labels::{metric_name, sanitize_label};
use sightline_storage::metrics::{Exemplar, Labels, METRIC_NAME, Meta, Point, STALE_NAN, Sample};
use sightline_storage::model::{Attributes, Resource};

use super::{attributes, resource, span_id, trace_id};

/// OTLP's delta aggregation temporality.
const DELTA: i32 = 1;

pub fn points(req: ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        let resource = resource(rm.resource);
        let job_instance = job_instance(&resource);
        let first = out.len();
        for sm in rm.scope_metrics {
            let mut base = job_instance.clone();
            if let Some(scope) = sm.scope.filter(|s| !s.name.is_empty()) {
                base.push(("otel_scope_name".into(), scope.name));
                base.push(("otel_scope_version".into(), scope.version));
            }
            for m in sm.metrics {
                if let Some(data) = m.data {
                    let family = Family { name: &m.name, unit: &m.unit, help: &m.description, base: &base };
                    family.points(data, &mut out);
                }
            }
        }
        if let Some(t) = out[first..].iter().find_map(|p| p.samples.first()).map(|s| s.t) {
            let meta = Meta { kind: "gauge", help: "Target metadata".into(), unit: String::new() };
            out.push(Point {
                family: "target_info".into(),
                meta: Some(meta),
                samples: vec![Sample { labels: target_info(&resource), t, v: 1.0 }],
                delta: false,
                exemplars: Vec::new(),
                derived: true,
            });
        }
    }
    out
}

/// One OTLP metric: what every point of it shares.
struct Family<'a> {
    name: &'a str,
    unit: &'a str,
    help: &'a str,
    /// The resource's and the scope's labels.
    base: &'a [(String, String)],
}

/// One data point while its samples are made.
struct Builder<'a> {
    labels: Vec<(String, String)>,
    t: i64,
    stale: bool,
    samples: &'a mut Vec<Sample>,
}

impl Builder<'_> {
    fn push(&mut self, name: &str, extra: Option<(&str, String)>, v: f64) {
        let mut pairs = self.labels.clone();
        pairs.push((METRIC_NAME.to_owned(), name.to_owned()));
        pairs.extend(extra.map(|(k, val)| (k.to_owned(), val)));
        let v = if self.stale { f64::from_bits(STALE_NAN) } else { v };
        self.samples.push(Sample { labels: Labels::new(pairs), t: self.t, v });
    }
}

impl Family<'_> {
    fn meta(&self, kind: &'static str) -> Meta {
        Meta { kind, help: self.help.to_owned(), unit: self.unit.to_owned() }
    }

    /// Makes one point: `fill` pushes its samples.
    #[allow(clippy::too_many_arguments)]
    fn point(
        &self,
        family: &str,
        kind: &'static str,
        delta: bool,
        attrs: Vec<KeyValue>,
        time_unix_nano: u64,
        flags: u32,
        exemplars: Vec<OtlpExemplar>,
        fill: impl FnOnce(&mut Builder),
    ) -> Point {
        let mut labels = attribute_labels(&attributes(attrs));
        labels.extend_from_slice(self.base);
        let mut samples = Vec::new();
        let mut b =
            Builder { labels, t: (time_unix_nano / 1_000_000) as i64, stale: flags & 1 == 1, samples: &mut samples };
        fill(&mut b);
        let exemplars =
            exemplars.into_iter().map(exemplar).filter_map(|e| Some((series_of(&samples, &e)?, e))).collect();
        Point { family: family.to_owned(), meta: Some(self.meta(kind)), samples, delta, exemplars, derived: false }
    }

    fn points(&self, data: metric::Data, out: &mut Vec<Point>) {
        use metric::Data;
        let (name, unit) = (self.name, self.unit);
        match data {
            Data::Gauge(g) => {
                let family = metric_name(name, unit, false, true);
                out.extend(g.data_points.into_iter().map(|p| {
                    let v = number(p.value);
                    self.point(&family, "gauge", false, p.attributes, p.time_unix_nano, p.flags, p.exemplars, |b| {
                        b.push(&family, None, v)
                    })
                }));
            }
            Data::Sum(s) => {
                let family = metric_name(name, unit, s.is_monotonic, !s.is_monotonic);
                let kind = if s.is_monotonic { "counter" } else { "gauge" };
                let delta = s.aggregation_temporality == DELTA;
                out.extend(s.data_points.into_iter().map(|p| {
                    let v = number(p.value);
                    self.point(&family, kind, delta, p.attributes, p.time_unix_nano, p.flags, p.exemplars, |b| {
                        b.push(&family, None, v)
                    })
                }));
            }
            Data::Histogram(h) => {
                let family = metric_name(name, unit, false, false);
                let delta = h.aggregation_temporality == DELTA;
                out.extend(h.data_points.into_iter().map(|p| {
                    let (bounds, counts, count, sum) = (p.explicit_bounds, p.bucket_counts, p.count, p.sum);
                    self.point(&family, "histogram", delta, p.attributes, p.time_unix_nano, p.flags, p.exemplars, |b| {
                        let bucket = format!("{family}_bucket");
                        let mut cumulative = 0u64;
                        for (i, bound) in bounds.iter().enumerate() {
                            cumulative += counts.get(i).copied().unwrap_or(0);
                            b.push(&bucket, Some(("le", format_float(*bound))), cumulative as f64);
                        }
                        b.push(&bucket, Some(("le", "+Inf".into())), count as f64);
                        sum_and_count(b, &family, sum, count);
                    })
                }));
            }
            Data::ExponentialHistogram(h) => {
                let family = metric_name(name, unit, false, false);
                let delta = h.aggregation_temporality == DELTA;
                out.extend(h.data_points.into_iter().map(|p| {
                    let positive = p.positive.unwrap_or_default();
                    let negative = p.negative.map(|n| n.bucket_counts.iter().sum::<u64>()).unwrap_or(0);
                    let (scale, zero_count, count, sum) = (p.scale, p.zero_count, p.count, p.sum);
                    self.point(&family, "histogram", delta, p.attributes, p.time_unix_nano, p.flags, p.exemplars, |b| {
                        let bucket = format!("{family}_bucket");
                        // Negative and zero observations all fall at or below le="0".
                        let base = 2f64.powf(2f64.powi(-scale));
                        let mut cumulative = zero_count + negative;
                        b.push(&bucket, Some(("le", "0".into())), cumulative as f64);
                        for (i, n) in positive.bucket_counts.iter().enumerate() {
                            cumulative += n;
                            let upper = base.powi(positive.offset + i as i32 + 1);
                            b.push(&bucket, Some(("le", format_float(upper))), cumulative as f64);
                        }
                        b.push(&bucket, Some(("le", "+Inf".into())), count as f64);
                        sum_and_count(b, &family, sum, count);
                    })
                }));
            }
            Data::Summary(s) => {
                let family = metric_name(name, unit, false, false);
                out.extend(s.data_points.into_iter().map(|p| {
                    let (quantiles, count, sum) = (p.quantile_values, p.count, p.sum);
                    self.point(&family, "summary", false, p.attributes, p.time_unix_nano, p.flags, Vec::new(), |b| {
                        for q in &quantiles {
                            b.push(&family, Some(("quantile", format_float(q.quantile))), q.value);
                        }
                        sum_and_count(b, &family, Some(sum), count);
                    })
                }));
            }
        }
    }
}

fn sum_and_count(b: &mut Builder, family: &str, sum: Option<f64>, count: u64) {
    if let Some(sum) = sum {
        b.push(&format!("{family}_sum"), None, sum);
    }
    b.push(&format!("{family}_count"), None, count as f64);
}

fn number(v: Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

fn exemplar(e: OtlpExemplar) -> Exemplar {
    Exemplar {
        t: (e.time_unix_nano / 1_000_000) as i64,
        v: match e.value {
            Some(exemplar::Value::AsDouble(d)) => d,
            Some(exemplar::Value::AsInt(i)) => i as f64,
            None => 0.0,
        },
        trace_id: trace_id(&e.trace_id),
        span_id: span_id(&e.span_id),
    }
}

/// The sample an exemplar belongs to: a histogram's goes with the bucket
/// that counts it, any other with the point's first series.
fn series_of(samples: &[Sample], e: &Exemplar) -> Option<usize> {
    samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.labels.name().is_some_and(|n| n.ends_with("_bucket")))
        .filter_map(|(i, s)| Some((i, s.labels.get("le")?.parse::<f64>().ok()?)))
        .filter(|(_, le)| e.v <= *le)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
        .or((!samples.is_empty()).then_some(0))
}

/// The labels `job` and `instance` of a resource.
fn job_instance(resource: &Resource) -> Vec<(String, String)> {
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
fn target_info(resource: &Resource) -> Labels {
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

/// A float as Prometheus writes label values (`0.5`, `1`, `+Inf`).
pub fn format_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.is_nan() {
        "NaN".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests;
