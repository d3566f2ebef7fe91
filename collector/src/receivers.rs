mod adapter;
pub mod elasticsearch;
pub mod loki;
pub mod otlp_grpc;
pub mod otlp_http;
pub mod remote_write;
pub mod syslog;
pub mod zipkin;
