//! Seeded, realistic OTLP load for benchmarks, tests and capacity checks.
//!
//! - [`traces`], [`logs`], [`metrics`]: payload generators. The same seed
//!   gives the same bytes.
//! - [`send`]: a client for OTLP/gRPC and OTLP/HTTP that honours retryable
//!   refusals (429/503, `RESOURCE_EXHAUSTED`/`UNAVAILABLE`) with backoff and
//!   counts what was acknowledged, refused and rejected.
//! - [`dataset`]: fixed data sets written to and read from files.

pub mod dataset;
pub mod logs;
pub mod metrics;
pub mod rng;
pub mod send;
pub mod traces;

pub use rng::Rng;

use sightline_proto::otlp::common::{AnyValue, KeyValue, any_value::Value};

/// Which signal a payload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    pub fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), key_strindex: 0 }
}

pub(crate) fn text(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

/// Requests of one signal, one after another, seeded.
pub struct Generator {
    source: Source,
    /// Traces or log lines per request (hosts live in the metric generator).
    batch: usize,
    last_ns: u64,
    shape: traces::TraceShape,
}

enum Source {
    Traces(Rng),
    Logs(logs::LogGen),
    Metrics(metrics::MetricGen),
}

impl Generator {
    /// `batch`: traces per request (5–50 spans each), log lines per request,
    /// or hosts (100 series each) per scrape round.
    pub fn new(signal: Signal, seed: u64, batch: usize) -> Self {
        let batch = batch.max(1);
        let source = match signal {
            Signal::Traces => Source::Traces(Rng::new(seed)),
            Signal::Logs => Source::Logs(logs::LogGen::new(seed)),
            Signal::Metrics => Source::Metrics(metrics::MetricGen::new(seed, batch, 0)),
        };
        Generator { source, batch, last_ns: 0, shape: traces::TraceShape::VARIED }
    }

    /// Traces of this shape instead of [`traces::TraceShape::VARIED`].
    pub fn with_trace_shape(mut self, shape: traces::TraceShape) -> Self {
        self.shape = shape;
        self
    }

    /// The next request, its data ending at `time_ns` (never before the
    /// previous request's): traces started in the second before it, log
    /// lines a millisecond apart, one scrape of every series.
    pub fn payload(&mut self, time_ns: u64) -> send::Payload {
        let t = time_ns.max(self.last_ns + 1_000_000);
        self.last_ns = t;
        let n = self.batch;
        match &mut self.source {
            Source::Traces(rng) => {
                let (req, _) = traces::request(rng, n, &self.shape, t - 1_000_000_000, 1_000_000_000);
                send::Payload::Traces(req)
            }
            Source::Logs(g) => send::Payload::Logs(g.request(n, t - n as u64 * 1_000_000, 1_000_000)),
            Source::Metrics(g) => send::Payload::Metrics(g.round(t)),
        }
    }
}
