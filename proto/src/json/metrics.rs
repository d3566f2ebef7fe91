//! `ExportMetricsServiceRequest` in OTLP/JSON.

use serde_json::Value;

use super::common::{attributes, key_value, resource, scope};
use super::reader::{Obj, Result, float, uint};
use crate::otlp::ExportMetricsServiceRequest;
use crate::otlp::metrics::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar,
    exponential_histogram_data_point::Buckets, metric, number_data_point, summary_data_point::ValueAtQuantile,
};

const TEMPORALITIES: &[(&str, i32)] = &[
    ("AGGREGATION_TEMPORALITY_UNSPECIFIED", 0),
    ("AGGREGATION_TEMPORALITY_DELTA", 1),
    ("AGGREGATION_TEMPORALITY_CUMULATIVE", 2),
];

pub(crate) fn request(v: &Value) -> Result<ExportMetricsServiceRequest> {
    let o = Obj::new(v, "$")?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: o.messages("resourceMetrics", "resource_metrics", resource_metrics)?,
    })
}

fn resource_metrics(o: Obj<'_>) -> Result<ResourceMetrics> {
    Ok(ResourceMetrics {
        resource: o.message("resource", "resource", resource)?,
        scope_metrics: o.messages("scopeMetrics", "scope_metrics", scope_metrics)?,
        schema_url: o.string("schemaUrl", "schema_url")?,
    })
}

fn scope_metrics(o: Obj<'_>) -> Result<ScopeMetrics> {
    Ok(ScopeMetrics {
        scope: o.message("scope", "scope", scope)?,
        metrics: o.messages("metrics", "metrics", metric)?,
        schema_url: o.string("schemaUrl", "schema_url")?,
    })
}

fn metric(o: Obj<'_>) -> Result<Metric> {
    use metric::Data;
    let data = if let Some(g) = o.message("gauge", "gauge", |g| {
        Ok(Gauge { data_points: g.messages("dataPoints", "data_points", number_point)? })
    })? {
        Some(Data::Gauge(g))
    } else if let Some(s) = o.message("sum", "sum", |s| {
        Ok(Sum {
            data_points: s.messages("dataPoints", "data_points", number_point)?,
            aggregation_temporality: temporality(&s)?,
            is_monotonic: s.bool("isMonotonic", "is_monotonic")?,
        })
    })? {
        Some(Data::Sum(s))
    } else if let Some(h) = o.message("histogram", "histogram", |h| {
        Ok(Histogram {
            data_points: h.messages("dataPoints", "data_points", histogram_point)?,
            aggregation_temporality: temporality(&h)?,
        })
    })? {
        Some(Data::Histogram(h))
    } else if let Some(h) = o.message("exponentialHistogram", "exponential_histogram", |h| {
        Ok(ExponentialHistogram {
            data_points: h.messages("dataPoints", "data_points", exponential_point)?,
            aggregation_temporality: temporality(&h)?,
        })
    })? {
        Some(Data::ExponentialHistogram(h))
    } else {
        o.message("summary", "summary", |s| {
            Ok(Summary { data_points: s.messages("dataPoints", "data_points", summary_point)? })
        })?
        .map(Data::Summary)
    };
    Ok(Metric {
        name: o.string("name", "name")?,
        description: o.string("description", "description")?,
        unit: o.string("unit", "unit")?,
        metadata: o.messages("metadata", "metadata", key_value)?,
        data,
    })
}

fn temporality(o: &Obj<'_>) -> Result<i32> {
    o.enumeration("aggregationTemporality", "aggregation_temporality", TEMPORALITIES)
}

fn times(o: &Obj<'_>) -> Result<(u64, u64)> {
    Ok((o.u64("startTimeUnixNano", "start_time_unix_nano")?, o.u64("timeUnixNano", "time_unix_nano")?))
}

fn number_point(o: Obj<'_>) -> Result<NumberDataPoint> {
    use number_data_point::Value as V;
    let (start, time) = times(&o)?;
    let value = if o.get("asDouble", "as_double").is_some() {
        Some(V::AsDouble(o.f64("asDouble", "as_double")?))
    } else if o.get("asInt", "as_int").is_some() {
        Some(V::AsInt(o.i64("asInt", "as_int")?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: attributes(&o)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        exemplars: o.messages("exemplars", "exemplars", exemplar)?,
        flags: o.u32("flags", "flags")?,
        value,
    })
}

fn histogram_point(o: Obj<'_>) -> Result<HistogramDataPoint> {
    let (start, time) = times(&o)?;
    Ok(HistogramDataPoint {
        attributes: attributes(&o)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: o.u64("count", "count")?,
        sum: o.opt_f64("sum", "sum")?,
        bucket_counts: o.scalars("bucketCounts", "bucket_counts", uint)?,
        explicit_bounds: o.scalars("explicitBounds", "explicit_bounds", float)?,
        exemplars: o.messages("exemplars", "exemplars", exemplar)?,
        flags: o.u32("flags", "flags")?,
        min: o.opt_f64("min", "min")?,
        max: o.opt_f64("max", "max")?,
    })
}

fn buckets(o: Obj<'_>) -> Result<Buckets> {
    Ok(Buckets { offset: o.i32("offset", "offset")?, bucket_counts: o.scalars("bucketCounts", "bucket_counts", uint)? })
}

fn exponential_point(o: Obj<'_>) -> Result<ExponentialHistogramDataPoint> {
    let (start, time) = times(&o)?;
    Ok(ExponentialHistogramDataPoint {
        attributes: attributes(&o)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: o.u64("count", "count")?,
        sum: o.opt_f64("sum", "sum")?,
        scale: o.i32("scale", "scale")?,
        zero_count: o.u64("zeroCount", "zero_count")?,
        positive: o.message("positive", "positive", buckets)?,
        negative: o.message("negative", "negative", buckets)?,
        flags: o.u32("flags", "flags")?,
        exemplars: o.messages("exemplars", "exemplars", exemplar)?,
        min: o.opt_f64("min", "min")?,
        max: o.opt_f64("max", "max")?,
        zero_threshold: o.f64("zeroThreshold", "zero_threshold")?,
    })
}

fn summary_point(o: Obj<'_>) -> Result<SummaryDataPoint> {
    let (start, time) = times(&o)?;
    Ok(SummaryDataPoint {
        attributes: attributes(&o)?,
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: o.u64("count", "count")?,
        sum: o.f64("sum", "sum")?,
        quantile_values: o.messages("quantileValues", "quantile_values", |q| {
            Ok(ValueAtQuantile { quantile: q.f64("quantile", "quantile")?, value: q.f64("value", "value")? })
        })?,
        flags: o.u32("flags", "flags")?,
    })
}

fn exemplar(o: Obj<'_>) -> Result<Exemplar> {
    use exemplar::Value as V;
    let value = if o.get("asDouble", "as_double").is_some() {
        Some(V::AsDouble(o.f64("asDouble", "as_double")?))
    } else if o.get("asInt", "as_int").is_some() {
        Some(V::AsInt(o.i64("asInt", "as_int")?))
    } else {
        None
    };
    Ok(Exemplar {
        filtered_attributes: o.messages("filteredAttributes", "filtered_attributes", key_value)?,
        time_unix_nano: o.u64("timeUnixNano", "time_unix_nano")?,
        span_id: o.hex_bytes("spanId", "span_id")?,
        trace_id: o.hex_bytes("traceId", "trace_id")?,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::super::decode_metrics;
    use crate::otlp::metrics::metric::Data;

    #[test]
    fn decodes_sum_and_histogram() {
        let body = br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
          {"name":"requests","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_DELTA","is_monotonic":true,
            "dataPoints":[{"asInt":"5","timeUnixNano":"1700000000000000000"}]}},
          {"name":"latency","histogram":{"aggregation_temporality":2,"dataPoints":[{"count":"3","sum":1.5,
            "bucketCounts":["1",2],"explicitBounds":[0.5]}]}}]}]}]}"#;
        let req = decode_metrics(body).expect("decodes");
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        let Some(Data::Sum(sum)) = &metrics[0].data else { panic!("sum") };
        assert_eq!(sum.aggregation_temporality, 1);
        assert!(sum.is_monotonic);
        let Some(Data::Histogram(h)) = &metrics[1].data else { panic!("histogram") };
        assert_eq!(h.data_points[0].bucket_counts, vec![1, 2]);
        assert_eq!(h.data_points[0].count, 3);
    }
}
