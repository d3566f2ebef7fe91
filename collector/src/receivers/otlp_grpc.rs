//! OTLP/gRPC receiver: the three `Export` services, gzip accepted, with the
//! decompressed message size limited while decompressing. Retryable refusals
//! carry a `google.rpc.RetryInfo`, as OTLP asks for `RESOURCE_EXHAUSTED`.

use std::sync::Arc;
use std::time::Instant;

use sightline_proto::otlp::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use sightline_proto::otlp::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use sightline_proto::otlp::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::service::{Interceptor, InterceptorLayer};
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::otlp_http::status_of;
use crate::error::IngestError;
use crate::pipeline::{Laned, Pipeline};
use crate::signal::{Logs, Metrics, OtlpSignal, SignalKind, Traces};
use crate::telemetry;

/// Serves the three OTLP services on the connections of `incoming` (plain
/// TCP or TLS) until `shutdown` completes; `interceptor` sees every
/// request's metadata first (authentication).
pub async fn serve<S, IO, E>(
    pipeline: Arc<Pipeline>,
    incoming: S,
    interceptor: impl Interceptor + Clone + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error>
where
    S: futures_util::Stream<Item = Result<IO, E>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(client_fault_codes))
        .layer(InterceptorLayer::new(interceptor))
        .add_routes(routes(pipeline))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// tonic answers a message over the size limit with OUT_OF_RANGE (which OTLP
/// clients retry) and an undecodable one with INTERNAL. Both are the
/// client's fault and must not be retried: they become RESOURCE_EXHAUSTED
/// (without retry info) and INVALID_ARGUMENT. The handlers themselves never
/// answer with either code, so only tonic's decoding errors are rewritten.
fn client_fault_codes<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let rewritten = match headers.get("grpc-status").map(http::HeaderValue::as_bytes) {
        Some(b"11") => Some(tonic::Code::ResourceExhausted),
        Some(b"13") => Some(tonic::Code::InvalidArgument),
        _ => None,
    };
    if let Some(code) = rewritten {
        headers.insert("grpc-status", http::HeaderValue::from(code as i32));
    }
    response
}

/// A tonic router with the three OTLP services.
pub fn routes(pipeline: Arc<Pipeline>) -> tonic::service::Routes {
    let limit = pipeline.config().max_body_bytes;
    let svc = Otlp(pipeline.clone());
    macro_rules! server {
        ($server:ident, $kind:ty) => {
            InterceptedService::new(
                $server::new(svc.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .send_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(limit),
                ready::<$kind>(pipeline.clone()),
            )
        };
    }
    tonic::service::Routes::new(server!(TraceServiceServer, Traces))
        .add_service(server!(LogsServiceServer, Logs))
        .add_service(server!(MetricsServiceServer, Metrics))
}

/// Refuses a request before its message is decoded while the lanes of `K`
/// or their store cannot take it ([`Pipeline::check_ready`]).
fn ready<K: Laned>(pipeline: Arc<Pipeline>) -> impl Interceptor + Clone {
    move |request: Request<()>| {
        pipeline.check_ready::<K>().map_err(|e| to_status(&e))?;
        Ok(request)
    }
}

#[derive(Clone)]
struct Otlp(Arc<Pipeline>);

impl Otlp {
    async fn export<K: Laned + OtlpSignal>(
        &self,
        request: Request<K::Request>,
    ) -> Result<Response<K::Response>, Status> {
        let start = Instant::now();
        let p = &self.0;
        let key = p.config().tenant_header.to_ascii_lowercase();
        let result = async {
            let tenant = p.tenant(request.metadata().get(key.as_str()).map(|v| v.as_bytes()))?;
            p.submit::<K>(&tenant, request.into_inner(), None).await
        }
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        p.telemetry()
            .request_duration_seconds
            .get_or_create(&telemetry::Request { transport: "grpc", signal: K::SIGNAL.as_str(), outcome })
            .observe(start.elapsed().as_secs_f64());
        match result {
            Ok(o) => Ok(Response::new(K::response(o.rejected as i64, o.message))),
            Err(e) => Err(to_status(&e)),
        }
    }
}

/// The gRPC status of a refusal, with `RetryInfo` when it is retryable.
pub fn to_status(e: &IngestError) -> Status {
    let (_, code) = status_of(e);
    match e.retry_after() {
        Some(after) => Status::with_error_details(code, e.to_string(), ErrorDetails::with_retry_info(Some(after))),
        None => Status::new(code, e.to_string()),
    }
}

type Rq<K> = Request<<K as SignalKind>::Request>;
type Rs<K> = Result<Response<<K as OtlpSignal>::Response>, Status>;

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(&self, request: Rq<Traces>) -> Rs<Traces> {
        Otlp::export::<Traces>(self, request).await
    }
}

#[tonic::async_trait]
impl LogsService for Otlp {
    async fn export(&self, request: Rq<Logs>) -> Rs<Logs> {
        Otlp::export::<Logs>(self, request).await
    }
}

#[tonic::async_trait]
impl MetricsService for Otlp {
    async fn export(&self, request: Rq<Metrics>) -> Rs<Metrics> {
        Otlp::export::<Metrics>(self, request).await
    }
}
