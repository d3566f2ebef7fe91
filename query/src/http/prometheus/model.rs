//! Prometheus's HTTP API JSON (`{"status": "success", "data": …}`),
//! serialised from the evaluator's results without copying labels.

use std::fmt;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use sightline_storage::metrics::{Exemplar, Labels};

use crate::promql::{RangeSeries, Sample};

#[derive(Serialize)]
pub struct Success<T> {
    status: &'static str,
    data: T,
}

pub fn success<T: Serialize>(data: T) -> Success<T> {
    Success { status: "success", data }
}

/// The error envelope.
#[derive(Serialize)]
pub struct Failure<'a> {
    pub status: &'static str,
    #[serde(rename = "errorType")]
    pub kind: &'static str,
    pub error: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryData<R> {
    pub result_type: &'static str,
    pub result: R,
}

/// A series' labels as an object.
pub struct Metric<'a>(pub &'a Labels);

impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

/// A sample value as Prometheus writes it: `NaN`, `+Inf`, `-Inf` or the number.
pub struct Float(pub f64);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            f64::INFINITY => f.write_str("+Inf"),
            f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Milliseconds written as Unix seconds with a fraction.
pub struct Seconds(pub i64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0 as f64 / 1000.0)
    }
}

/// `[<unix seconds>, "<value>"]`.
#[derive(Serialize)]
pub struct Point<V>(pub Seconds, pub V);

pub fn point(t: i64, v: f64) -> Point<Float> {
    Point(Seconds(t), Float(v))
}

#[derive(Serialize)]
pub struct VectorSample<'a> {
    metric: Metric<'a>,
    value: Point<Float>,
}

pub fn vector(samples: &[Sample], t: i64) -> Vec<VectorSample<'_>> {
    samples.iter().map(|s| VectorSample { metric: Metric(&s.labels), value: point(t, s.v) }).collect()
}

#[derive(Serialize)]
pub struct MatrixSeries<'a> {
    metric: Metric<'a>,
    values: Points<'a>,
}

struct Points<'a>(&'a [(i64, f64)]);

impl Serialize for Points<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for &(t, v) in self.0 {
            seq.serialize_element(&point(t, v))?;
        }
        seq.end()
    }
}

pub fn matrix(series: &[RangeSeries]) -> Vec<MatrixSeries<'_>> {
    series.iter().map(|s| MatrixSeries { metric: Metric(&s.labels), values: Points(&s.points) }).collect()
}

/// `/query_exemplars`: per series, its exemplars.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesExemplars<'a> {
    pub series_labels: Metric<'a>,
    pub exemplars: Vec<ExemplarJson<'a>>,
}

#[derive(Serialize)]
pub struct ExemplarJson<'a> {
    labels: ExemplarLabels<'a>,
    value: Float,
    timestamp: Seconds,
}

impl<'a> ExemplarJson<'a> {
    pub fn of(e: &'a Exemplar) -> Self {
        ExemplarJson { labels: ExemplarLabels(e), value: Float(e.v), timestamp: Seconds(e.t) }
    }
}

/// The trace and span an exemplar points to, as `trace_id`/`span_id` labels.
struct ExemplarLabels<'a>(&'a Exemplar);

impl Serialize for ExemplarLabels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let trace = self.0.trace_id.map(|t| ("trace_id", t.to_hex()));
        let span = self.0.span_id.map(|t| ("span_id", t.to_hex()));
        s.collect_map(trace.into_iter().chain(span))
    }
}

pub use crate::http::json::BuildInfo;
