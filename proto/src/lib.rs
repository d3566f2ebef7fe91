//! Wire formats only, no logic.
//!
//! - [`otlp`]: the OTLP protobuf messages and gRPC services, re-exported from
//!   `opentelemetry-proto` so that every crate names them one way.
//! - [`json`]: the OTLP/JSON codec. It accepts what the canonical protobuf JSON
//!   mapping accepts (lowerCamelCase and snake_case keys, enums as integers or
//!   names, `null` as the default, 64-bit integers as strings or numbers) with
//!   the OTLP exceptions (trace and span ids as hex), as the OpenTelemetry
//!   Collector does. Unknown keys are ignored, as the OTLP specification asks.
//! - [`prometheus`]: remote write 1.0; [`loki`]: Loki's push request;
//!   [`zipkin`]: Zipkin v2 spans.

pub mod json;
pub mod loki;
pub mod prometheus;
pub mod zipkin;

/// OTLP protobuf messages and services.
pub mod otlp {
    pub use opentelemetry_proto::tonic::collector;
    pub use opentelemetry_proto::tonic::common::v1 as common;
    pub use opentelemetry_proto::tonic::logs::v1 as logs;
    pub use opentelemetry_proto::tonic::metrics::v1 as metrics;
    pub use opentelemetry_proto::tonic::resource::v1 as resource;
    pub use opentelemetry_proto::tonic::trace::v1 as trace;

    pub use collector::logs::v1::{ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse};
    pub use collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    pub use collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse};
}

pub use prost;
