//! Sends payloads over OTLP/gRPC or OTLP/HTTP (protobuf). A retryable
//! refusal (HTTP 429/503, gRPC `RESOURCE_EXHAUSTED`/`UNAVAILABLE`) is retried
//! after the delay the server asked for (`Retry-After`, `RetryInfo`) or an
//! exponential backoff; what a partial success rejected is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use sightline_proto::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use sightline_proto::otlp::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use sightline_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use sightline_proto::otlp::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

use crate::Signal;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    Grpc,
    Http,
}

/// One export request and how many items (spans, lines, points) it holds.
#[derive(Clone, Debug)]
pub enum Payload {
    Traces(ExportTraceServiceRequest),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl Payload {
    pub fn signal(&self) -> Signal {
        match self {
            Payload::Traces(_) => Signal::Traces,
            Payload::Logs(_) => Signal::Logs,
            Payload::Metrics(_) => Signal::Metrics,
        }
    }

    pub fn items(&self) -> u64 {
        let n = match self {
            Payload::Traces(r) => r.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum(),
            Payload::Logs(r) => r.resource_logs.iter().flat_map(|r| &r.scope_logs).map(|s| s.log_records.len()).sum(),
            Payload::Metrics(r) => crate::metrics::points(r),
        };
        n as u64
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Payload::Traces(r) => r.encode_to_vec(),
            Payload::Logs(r) => r.encode_to_vec(),
            Payload::Metrics(r) => r.encode_to_vec(),
        }
    }

    pub fn decode(signal: Signal, bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Ok(match signal {
            Signal::Traces => Payload::Traces(ExportTraceServiceRequest::decode(bytes)?),
            Signal::Logs => Payload::Logs(ExportLogsServiceRequest::decode(bytes)?),
            Signal::Metrics => Payload::Metrics(ExportMetricsServiceRequest::decode(bytes)?),
        })
    }
}

/// What happened to everything sent, summed over all clients.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: AtomicU64,
    pub items: AtomicU64,
    /// Items the server acknowledged as stored.
    pub acknowledged: AtomicU64,
    /// Items a partial success rejected (not retryable).
    pub rejected: AtomicU64,
    /// Retryable refusals (each followed by a retry).
    pub refusals: AtomicU64,
    /// Items given up on: a non-retryable error, or out of retries.
    pub failed: AtomicU64,
    /// Why the first payload given up on failed.
    pub first_failure: std::sync::Mutex<Option<String>>,
}

impl Tally {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What goes on the wire: encoded bytes over HTTP, the message over gRPC.
enum Body<'a> {
    Http(bytes::Bytes),
    Grpc(&'a Payload),
}

/// How one attempt ended.
enum Attempt {
    /// Acknowledged; this many items were rejected in a partial success.
    Done(u64),
    /// Refused for now; retry after the delay the server gave, if any.
    Retry(Option<Duration>),
    Fail(String),
}

#[derive(Clone)]
pub struct Client {
    protocol: Protocol,
    endpoint: String,
    tenant: Option<String>,
    /// Sent as `Authorization: Bearer <token>` when the server wants a key.
    token: Option<String>,
    http: reqwest::Client,
    channel: Option<Channel>,
    /// Give up on a payload after this many retryable refusals.
    pub max_retries: u32,
}

impl Client {
    pub fn new(protocol: Protocol, endpoint: &str, tenant: Option<String>) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let channel = match protocol {
            Protocol::Grpc => Some(Channel::from_shared(endpoint.clone())?.connect_lazy()),
            Protocol::Http => None,
        };
        Ok(Client { protocol, endpoint, tenant, token: None, http: reqwest::Client::new(), channel, max_retries: 100 })
    }

    /// Sends every request with this API key.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Sends until acknowledged, refused for good, out of retries or past
    /// `give_up_at`; counts the outcome.
    pub async fn send(&self, payload: &Payload, tally: &Tally, give_up_at: Option<std::time::Instant>) {
        let body = match self.protocol {
            Protocol::Http => Body::Http(bytes::Bytes::from(payload.encode())),
            Protocol::Grpc => Body::Grpc(payload),
        };
        self.deliver(payload.signal(), payload.items(), body, tally, give_up_at).await;
    }

    /// As [`Client::send`], for a request already encoded (cheapest over
    /// HTTP, where the bytes go out as they are).
    pub async fn send_encoded(
        &self,
        signal: Signal,
        items: u64,
        body: bytes::Bytes,
        tally: &Tally,
        give_up_at: Option<std::time::Instant>,
    ) {
        match self.protocol {
            Protocol::Http => self.deliver(signal, items, Body::Http(body), tally, give_up_at).await,
            Protocol::Grpc => match Payload::decode(signal, &body) {
                Ok(p) => self.deliver(signal, items, Body::Grpc(&p), tally, give_up_at).await,
                Err(e) => {
                    tally.failed.fetch_add(items, Ordering::Relaxed);
                    if let Ok(mut first) = tally.first_failure.lock() {
                        first.get_or_insert(format!("request does not decode: {e}"));
                    }
                }
            },
        }
    }

    async fn deliver(
        &self,
        signal: Signal,
        items: u64,
        body: Body<'_>,
        tally: &Tally,
        give_up_at: Option<std::time::Instant>,
    ) {
        tally.requests.fetch_add(1, Ordering::Relaxed);
        tally.items.fetch_add(items, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(50);
        for _ in 0..=self.max_retries {
            let attempt = match &body {
                Body::Http(bytes) => self.http(signal, bytes.clone()).await,
                Body::Grpc(payload) => self.grpc(payload).await,
            };
            match attempt {
                Attempt::Done(rejected) => {
                    tally.acknowledged.fetch_add(items - rejected.min(items), Ordering::Relaxed);
                    tally.rejected.fetch_add(rejected.min(items), Ordering::Relaxed);
                    return;
                }
                Attempt::Retry(_) if give_up_at.is_some_and(|t| std::time::Instant::now() >= t) => {
                    if let Ok(mut first) = tally.first_failure.lock() {
                        first.get_or_insert("still refused when the run ended".into());
                    }
                    break;
                }
                Attempt::Retry(asked) => {
                    tally.refusals.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(asked.unwrap_or(backoff).min(Duration::from_secs(10))).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Attempt::Fail(why) => {
                    if let Ok(mut first) = tally.first_failure.lock() {
                        first.get_or_insert(why);
                    }
                    break;
                }
            }
        }
        tally.failed.fetch_add(items, Ordering::Relaxed);
    }

    async fn http(&self, signal: Signal, body: bytes::Bytes) -> Attempt {
        let mut request = self
            .http
            .post(format!("{}{}", self.endpoint, signal.path()))
            .header("content-type", "application/x-protobuf")
            .body(body);
        if let Some(t) = &self.tenant {
            request = request.header("X-Scope-OrgID", t);
        }
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        let response = match request.send().await {
            Ok(r) => r,
            // Not connected, timed out, or the connection reset or closed under
            // the request: what OpenTelemetry's exporters retry.
            Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => return Attempt::Retry(None),
            Err(e) => return Attempt::Fail(chain(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map(Duration::from_secs);
        let Ok(bytes) = response.bytes().await else { return Attempt::Retry(None) };
        match status {
            200 => Attempt::Done(rejected(signal, &bytes)),
            429 | 502 | 503 | 504 => Attempt::Retry(retry_after),
            _ => Attempt::Fail(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))),
        }
    }

    /// A gRPC request carrying the tenant and the token, if any, as metadata.
    fn request<M>(&self, message: M) -> tonic::Request<M> {
        let mut r = tonic::Request::new(message);
        if let Some(t) = self.tenant.as_deref().and_then(|t| t.parse().ok()) {
            r.metadata_mut().insert("x-scope-orgid", t);
        }
        if let Some(t) = self.token.as_deref().and_then(|t| format!("Bearer {t}").parse().ok()) {
            r.metadata_mut().insert("authorization", t);
        }
        r
    }

    async fn grpc(&self, payload: &Payload) -> Attempt {
        let Some(channel) = self.channel.clone() else { return Attempt::Fail("no gRPC channel".into()) };
        let result = match payload {
            Payload::Traces(m) => TraceServiceClient::new(channel)
                .export(self.request(m.clone()))
                .await
                .map(|r| r.into_inner().partial_success.map_or(0, |p| p.rejected_spans)),
            Payload::Logs(m) => LogsServiceClient::new(channel)
                .export(self.request(m.clone()))
                .await
                .map(|r| r.into_inner().partial_success.map_or(0, |p| p.rejected_log_records)),
            Payload::Metrics(m) => MetricsServiceClient::new(channel)
                .export(self.request(m.clone()))
                .await
                .map(|r| r.into_inner().partial_success.map_or(0, |p| p.rejected_data_points)),
        };
        match result {
            Ok(rejected) => Attempt::Done(rejected.max(0) as u64),
            Err(s) if matches!(s.code(), tonic::Code::ResourceExhausted | tonic::Code::Unavailable) => {
                Attempt::Retry(s.get_details_retry_info().and_then(|r| r.retry_delay))
            }
            Err(s) => Attempt::Fail(format!("{:?}: {}", s.code(), s.message())),
        }
    }
}

/// Items a partial success rejected, from an HTTP response body.
fn rejected(signal: Signal, body: &[u8]) -> u64 {
    let n = match signal {
        Signal::Traces => {
            ExportTraceServiceResponse::decode(body).ok().and_then(|r| r.partial_success).map(|p| p.rejected_spans)
        }
        Signal::Logs => {
            ExportLogsServiceResponse::decode(body).ok().and_then(|r| r.partial_success).map(|p| p.rejected_log_records)
        }
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| p.rejected_data_points),
    };
    n.unwrap_or(0).max(0) as u64
}

/// An error and its causes, outermost first.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn an_error_reads_with_its_causes() {
        let reset = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(chain(&reset), "client error: connection reset");
    }
}
