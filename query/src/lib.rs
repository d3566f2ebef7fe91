//! The query side: HTTP API served on the API port (`:7070` by default).
//!
//! Reads through storage's heads and traits; never sees a wire protobuf.

pub mod api;
pub mod dashboards;
pub mod error;
pub mod exposition;
pub mod jaeger;
pub mod limits;
pub mod logs;
pub mod ops;
pub mod params;
pub mod prometheus;
pub mod promql;
pub mod traces;

pub use api::{QueryState, router};
pub use error::ApiError;
