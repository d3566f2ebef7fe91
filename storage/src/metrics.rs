//! The metric store: OTLP points and Prometheus samples kept as
//! Prometheus-model series (labels → samples), with the naming rules of the
//! OpenTelemetry specification's Prometheus compatibility section.

pub mod block;
pub mod labels;
pub mod otlp;
mod store;

pub use labels::{Labels, METRIC_NAME};
pub use otlp::{Meta, STALE_NAN, Sample, is_stale};
pub use store::{Appended, Exemplar, MetricStore, MetricStoreConfig, Series};
