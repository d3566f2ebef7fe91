pub mod otlp_grpc;
pub mod otlp_http;
