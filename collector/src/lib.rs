//! The front door: OTLP receivers, admission control and the ingest pipeline.
//!
//! A request travels: receiver (decode) → [`Pipeline::submit`] (rate limit,
//! validate and convert into the storage model on the submitting task,
//! memory and queue admission, WAL append) → per-signal lane → the store's
//! [`Sink`](sightline_storage::sink::Sink) → acknowledgement to the client
//! once the store holds the batch. Wire types are converted into the model
//! here and nowhere else.

pub mod admission;
pub mod config;
pub mod convert;
pub mod error;
pub mod pipeline;
pub mod receivers;
pub mod signal;
pub mod spanmetrics;
pub mod telemetry;
pub mod validate;

pub use config::IngestConfig;
pub use error::IngestError;
pub use pipeline::{Outcome, Pipeline, Sinks};
