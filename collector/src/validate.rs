//! Per-item validation. Invalid items are removed from the request in place
//! and counted, so that the rest is accepted (OTLP partial success).

use sightline_proto::otlp::common::{AnyValue, KeyValue, any_value};
use sightline_proto::otlp::logs::LogRecord;
use sightline_proto::otlp::metrics::{Exemplar, metric};
use sightline_proto::otlp::trace::Span;
use sightline_storage::model::{SpanId, TraceId};

/// Latest timestamp accepted: the model stores signed 64-bit nanoseconds.
const MAX_NANOS: u64 = i64::MAX as u64;

/// What validation removed from a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    pub count: u64,
    /// Validation changed an item it kept (e.g. filled in a missing time),
    /// so the request must be re-encoded before it is logged.
    pub rewritten: bool,
    /// The first reason met, with how many items it applied to overall.
    pub first_reason: Option<String>,
}

impl Rejections {
    pub fn add(&mut self, n: u64, reason: impl FnOnce() -> String) {
        if n == 0 {
            return;
        }
        self.count += n;
        if self.first_reason.is_none() {
            self.first_reason = Some(reason());
        }
    }

    /// The `error_message` of an OTLP partial success.
    pub fn message(&self, items: &str) -> String {
        match &self.first_reason {
            None => String::new(),
            Some(reason) => format!("{} {items} rejected; first: {reason}", self.count),
        }
    }
}

/// The limits items are checked against.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_attribute_depth: usize,
}

fn value_depth(v: &AnyValue, depth: usize, max: usize) -> bool {
    if depth > max {
        return false;
    }
    match &v.value {
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().all(|v| value_depth(v, depth + 1, max)),
        Some(any_value::Value::KvlistValue(kv)) => attrs_ok(&kv.values, depth + 1, max),
        _ => true,
    }
}

fn attrs_ok(attrs: &[KeyValue], depth: usize, max: usize) -> bool {
    attrs.iter().all(|kv| kv.value.as_ref().is_none_or(|v| value_depth(v, depth, max)))
}

/// Checks attributes against the depth limit.
pub fn attributes(attrs: &[KeyValue], limits: Limits) -> Result<(), String> {
    if attrs_ok(attrs, 1, limits.max_attribute_depth) {
        Ok(())
    } else {
        Err(format!("attribute values nested deeper than {} levels", limits.max_attribute_depth))
    }
}

fn optional_span_id(bytes: &[u8], what: &str) -> Result<(), String> {
    if bytes.is_empty() || bytes == [0; 8] {
        return Ok(());
    }
    SpanId::try_from(bytes).map(drop).map_err(|e| format!("{what}: {e}"))
}

fn optional_trace_id(bytes: &[u8], what: &str) -> Result<(), String> {
    if bytes.is_empty() || bytes == [0; 16] {
        return Ok(());
    }
    TraceId::try_from(bytes).map(drop).map_err(|e| format!("{what}: {e}"))
}

pub fn span(s: &Span, limits: Limits) -> Result<(), String> {
    TraceId::try_from(s.trace_id.as_slice()).map_err(|e| e.to_string())?;
    SpanId::try_from(s.span_id.as_slice()).map_err(|e| e.to_string())?;
    optional_span_id(&s.parent_span_id, "parent span id")?;
    if s.start_time_unix_nano == 0 {
        return Err("span start time is missing".into());
    }
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err("span ends before it starts".into());
    }
    if s.end_time_unix_nano > MAX_NANOS {
        return Err("span timestamp is out of range".into());
    }
    attributes(&s.attributes, limits)?;
    for e in &s.events {
        attributes(&e.attributes, limits)?;
    }
    for l in &s.links {
        TraceId::try_from(l.trace_id.as_slice()).map_err(|e| format!("link: {e}"))?;
        SpanId::try_from(l.span_id.as_slice()).map_err(|e| format!("link: {e}"))?;
        attributes(&l.attributes, limits)?;
    }
    Ok(())
}

pub fn log_record(r: &LogRecord, limits: Limits) -> Result<(), String> {
    optional_trace_id(&r.trace_id, "trace id")?;
    optional_span_id(&r.span_id, "span id")?;
    if r.time_unix_nano > MAX_NANOS || r.observed_time_unix_nano > MAX_NANOS {
        return Err("log timestamp is out of range".into());
    }
    if !(0..=24).contains(&r.severity_number) {
        return Err(format!("severity number {} is not between 0 and 24", r.severity_number));
    }
    attributes(&r.attributes, limits)?;
    if let Some(body) = &r.body
        && !value_depth(body, 1, limits.max_attribute_depth)
    {
        return Err(format!("log body nested deeper than {} levels", limits.max_attribute_depth));
    }
    Ok(())
}

/// A data point's time (nanoseconds since the epoch) is set and in range.
pub fn point_time(time: u64) -> Result<(), String> {
    if time == 0 {
        return Err("data point time is missing".into());
    }
    if time > MAX_NANOS {
        return Err("data point timestamp is out of range".into());
    }
    Ok(())
}

fn point_common(time: u64, attrs: &[KeyValue], exemplars: &[Exemplar], limits: Limits) -> Result<(), String> {
    point_time(time)?;
    attributes(attrs, limits)?;
    for e in exemplars {
        optional_trace_id(&e.trace_id, "exemplar trace id")?;
        optional_span_id(&e.span_id, "exemplar span id")?;
    }
    Ok(())
}

/// What validation reads of every kind of data point.
trait Point {
    fn time(&self) -> u64;
    fn attrs(&self) -> &[KeyValue];
    fn exemplars(&self) -> &[Exemplar] {
        &[]
    }
}

macro_rules! point {
    ($t:ty $(, $ex:ident)?) => {
        impl Point for $t {
            fn time(&self) -> u64 {
                self.time_unix_nano
            }
            fn attrs(&self) -> &[KeyValue] {
                &self.attributes
            }
            $(fn exemplars(&self) -> &[Exemplar] {
                &self.$ex
            })?
        }
    };
}

use sightline_proto::otlp::metrics::{
    ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, SummaryDataPoint,
};
point!(NumberDataPoint, exemplars);
point!(HistogramDataPoint, exemplars);
point!(ExponentialHistogramDataPoint, exemplars);
point!(SummaryDataPoint);

fn filter_points<P: Point>(
    name: &str,
    points: &mut Vec<P>,
    limits: Limits,
    rejections: &mut Rejections,
    extra: impl Fn(&P) -> Result<(), String>,
) {
    let before = points.len();
    let mut first = None;
    points.retain(|p| {
        let r = if name.is_empty() {
            Err("metric name is empty".to_owned())
        } else {
            point_common(p.time(), p.attrs(), p.exemplars(), limits).and_then(|()| extra(p))
        };
        r.map_err(|e| first.get_or_insert(e)).is_ok()
    });
    let removed = (before - points.len()) as u64;
    rejections.add(removed, || format!("metric {name:?}: {}", first.unwrap_or_default()));
}

/// Removes the invalid points of one metric; all of them if the metric itself is invalid.
pub fn metric_points(name: &str, data: &mut metric::Data, limits: Limits, rejections: &mut Rejections) {
    use metric::Data;
    let ok = |_: &_| Ok(());
    match data {
        Data::Gauge(g) => filter_points(name, &mut g.data_points, limits, rejections, ok),
        Data::Sum(s) => filter_points(name, &mut s.data_points, limits, rejections, ok),
        Data::Histogram(h) => filter_points(name, &mut h.data_points, limits, rejections, |p| {
            if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
                Err(format!("{} bucket counts for {} bounds", p.bucket_counts.len(), p.explicit_bounds.len()))
            } else {
                Ok(())
            }
        }),
        Data::ExponentialHistogram(h) => filter_points(name, &mut h.data_points, limits, rejections, |p| {
            if (-10..=20).contains(&p.scale) { Ok(()) } else { Err(format!("scale {} is out of range", p.scale)) }
        }),
        Data::Summary(s) => filter_points(name, &mut s.data_points, limits, rejections, |_| Ok(())),
    }
}

#[cfg(test)]
mod tests {
    use sightline_proto::otlp::common::{ArrayValue, any_value::Value};

    use super::*;

    fn nested(depth: usize) -> AnyValue {
        let mut v = AnyValue { value: Some(Value::IntValue(1)) };
        for _ in 0..depth {
            v = AnyValue { value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })) };
        }
        v
    }

    fn kv(v: AnyValue) -> Vec<KeyValue> {
        vec![KeyValue { key: "k".into(), value: Some(v), key_strindex: 0 }]
    }

    #[test]
    fn attribute_depth_is_limited() {
        let limits = Limits { max_attribute_depth: 3 };
        assert!(attributes(&kv(nested(2)), limits).is_ok());
        assert!(attributes(&kv(nested(3)), limits).is_err());
    }

    #[test]
    fn spans_need_valid_ids_and_times() {
        let limits = Limits { max_attribute_depth: 8 };
        let good = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        };
        assert_eq!(span(&good, limits), Ok(()));
        let short = Span { trace_id: vec![1; 3], ..good.clone() };
        assert_eq!(span(&short, limits), Err("trace id must be 16 bytes, got 3".into()));
        assert!(span(&Span { span_id: vec![0; 8], ..good.clone() }, limits).is_err());
        assert!(span(&Span { parent_span_id: vec![1; 4], ..good.clone() }, limits).is_err());
        assert!(span(&Span { end_time_unix_nano: 5, ..good.clone() }, limits).is_err());
        assert!(span(&Span { start_time_unix_nano: 0, ..good }, limits).is_err());
    }
}
