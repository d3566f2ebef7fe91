//! The metric store: Prometheus-model series (labels → samples), appended
//! as the collector converted them ([`samples`]), cut into blocks on disk.

pub mod block;
pub mod labels;
pub mod samples;
mod store;

pub use labels::{Labels, METRIC_NAME};
pub use samples::{Meta, Point, STALE_NAN, Sample, is_stale};
pub use store::{Appended, Exemplar, MetricStore, MetricStoreConfig, Series};
