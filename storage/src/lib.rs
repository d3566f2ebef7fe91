//! Sightline's storage: the domain model, the write-ahead log and the stores.
//!
//! Knows nothing of HTTP or gRPC. The collector converts wire messages into
//! [`model`] values (metrics: into [`metrics::Point`]s of samples) once, at
//! its edge, and hands them to the stores through [`sink::Sink`]; the query side calls the stores ([`spans::SpanStore`],
//! [`logs::LogStore`], [`metrics::MetricStore`]) directly.

pub mod error;
pub mod logs;
pub mod metrics;
pub mod model;
mod object_reader;
pub mod objects;
pub mod sink;
pub mod spans;
pub mod telemetry;
pub mod typed_json;
pub mod wal;
pub mod worker;

pub use error::StorageError;
