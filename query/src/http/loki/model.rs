//! Loki's JSON answers: `{"status": "success", "data": …}` with streams,
//! matrices, vectors or scalars, times as Loki writes them (stream entries
//! in nanoseconds as text, samples as `[seconds, "value"]`).

use std::time::Instant;

use serde::ser::SerializeTuple;
use serde::{Serialize, Serializer};

use crate::http::json::Text;
use crate::logql::pipeline::Labels;

#[derive(Serialize)]
pub struct Envelope<T> {
    pub status: &'static str,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn success(data: T) -> Self {
        Envelope { status: "success", data }
    }
}

#[derive(Serialize)]
pub struct Data {
    #[serde(flatten)]
    pub result: ResultData,
    pub stats: Stats,
}

#[derive(Serialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum ResultData {
    Streams(Vec<Stream>),
    Matrix(Vec<Range>),
    Vector(Vec<Sample>),
    Scalar(Point),
}

pub struct Stream {
    pub stream: Labels,
    /// (nanoseconds, line)
    pub values: Vec<(i64, String)>,
}

impl Serialize for Stream {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shape<'a> {
            stream: &'a Labels,
            values: Vec<(Text<i64>, &'a str)>,
        }
        Shape { stream: &self.stream, values: self.values.iter().map(|(t, l)| (Text(*t), l.as_str())).collect() }
            .serialize(s)
    }
}

#[derive(Serialize)]
pub struct Range {
    pub metric: Labels,
    pub values: Vec<Point>,
}

#[derive(Serialize)]
pub struct Sample {
    pub metric: Labels,
    pub value: Point,
}

/// `[seconds, "value"]`, the value as Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it.
pub struct Point(pub f64, pub f64);

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value = match self.1 {
            v if v.is_nan() => "NaN".to_owned(),
            v if v == f64::INFINITY => "+Inf".to_owned(),
            v if v == f64::NEG_INFINITY => "-Inf".to_owned(),
            v => v.to_string(),
        };
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.0)?;
        t.serialize_element(&value)?;
        t.end()
    }
}

/// The part of Loki's statistics Grafana shows.
#[derive(Serialize)]
pub struct Stats {
    pub summary: Summary,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub exec_time: f64,
    pub total_entries_returned: usize,
}

impl Stats {
    pub fn since(began: Instant, returned: usize) -> Self {
        Stats { summary: Summary { exec_time: began.elapsed().as_secs_f64(), total_entries_returned: returned } }
    }
}

/// `/loki/api/v1/index/stats`.
#[derive(Serialize)]
pub struct IndexStats {
    pub streams: usize,
    pub chunks: usize,
    pub entries: u64,
    pub bytes: u64,
}

/// `/loki/api/v1/detected_labels`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectedLabels {
    pub detected_labels: Vec<DetectedLabel>,
}

#[derive(Serialize)]
pub struct DetectedLabel {
    pub label: String,
    pub cardinality: usize,
}
