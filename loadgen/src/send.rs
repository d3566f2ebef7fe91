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
    pub retry: RetryPolicy,
}

/// How a refused or failed attempt is retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// The first backoff, multiplied by `multiplier` after each refusal up
    /// to `max_interval`.
    pub initial: Duration,
    pub multiplier: f64,
    pub max_interval: Duration,
    /// Each delay is drawn from the backoff ± this share of it.
    pub randomization: f64,
    /// A delay the server asks for: in place of the backoff, or the least
    /// the client waits (the backoff when longer).
    pub asked: Asked,
    /// Give up after this many retries.
    pub max_retries: u32,
    /// Give up once this long has passed since the first attempt.
    pub max_elapsed: Option<Duration>,
    /// Each attempt is abandoned (and retried) after this long.
    pub attempt_timeout: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    Replaces,
    Floor,
}

impl RetryPolicy {
    /// Eager: 50 ms doubling to 5 s, a server's delay taken as given (at
    /// most 10 s), 100 retries.
    pub const EAGER: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(50),
        multiplier: 2.0,
        max_interval: Duration::from_secs(5),
        randomization: 0.0,
        asked: Asked::Replaces,
        max_retries: 100,
        max_elapsed: None,
        attempt_timeout: None,
    };

    /// The OpenTelemetry Collector's exporters with their default
    /// `retry_on_failure` and `timeout`: 5 s growing by 1.5 to 30 s, ± 50 %,
    /// at least the server's `Retry-After`, given up 300 s after the first
    /// attempt; 5 s an attempt.
    pub const COLLECTOR: RetryPolicy = RetryPolicy {
        initial: Duration::from_secs(5),
        multiplier: 1.5,
        max_interval: Duration::from_secs(30),
        randomization: 0.5,
        asked: Asked::Floor,
        max_retries: u32::MAX,
        max_elapsed: Some(Duration::from_secs(300)),
        attempt_timeout: Some(Duration::from_secs(5)),
    };

    /// The wait before the next attempt, from the backoff (advanced here),
    /// the server's delay if it gave one, and a random draw.
    fn delay(&self, backoff: &mut Duration, asked: Option<Duration>, rng: &mut crate::rng::Rng) -> Duration {
        let spread = backoff.as_secs_f64() * self.randomization;
        let unit = rng.below(1 << 20) as f64 / (1 << 20) as f64;
        let drawn = Duration::from_secs_f64(backoff.as_secs_f64() - spread + 2.0 * spread * unit);
        *backoff = backoff.mul_f64(self.multiplier).min(self.max_interval);
        match (self.asked, asked) {
            (Asked::Replaces, Some(asked)) => asked.min(Duration::from_secs(10)),
            (Asked::Floor, Some(asked)) => drawn.max(asked),
            (_, None) => drawn,
        }
    }
}

impl Client {
    pub fn new(protocol: Protocol, endpoint: &str, tenant: Option<String>) -> anyhow::Result<Self> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let channel = match protocol {
            Protocol::Grpc => Some(Channel::from_shared(endpoint.clone())?.connect_lazy()),
            Protocol::Http => None,
        };
        let http = reqwest::Client::new();
        Ok(Client { protocol, endpoint, tenant, token: None, http, channel, retry: RetryPolicy::EAGER })
    }

    /// Sends every request with this API key.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// Retries as `policy` says.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
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
        let policy = self.retry;
        let first = std::time::Instant::now();
        let mut backoff = policy.initial;
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        let mut rng = crate::rng::Rng::new(seed ^ items.rotate_left(17));
        for _ in 0..=policy.max_retries {
            let attempt = async {
                match &body {
                    Body::Http(bytes) => self.http(signal, bytes.clone()).await,
                    Body::Grpc(payload) => self.grpc(payload).await,
                }
            };
            let attempt = match policy.attempt_timeout {
                Some(limit) => tokio::time::timeout(limit, attempt).await.unwrap_or(Attempt::Retry(None)),
                None => attempt.await,
            };
            match attempt {
                Attempt::Done(rejected) => {
                    tally.acknowledged.fetch_add(items - rejected.min(items), Ordering::Relaxed);
                    tally.rejected.fetch_add(rejected.min(items), Ordering::Relaxed);
                    return;
                }
                Attempt::Retry(asked) => {
                    let wait = policy.delay(&mut backoff, asked, &mut rng);
                    let now = std::time::Instant::now();
                    let past_run = give_up_at.is_some_and(|t| now >= t);
                    let past_window = policy.max_elapsed.is_some_and(|w| now + wait > first + w);
                    if past_run || past_window {
                        if let Ok(mut first) = tally.first_failure.lock() {
                            first.get_or_insert(if past_run {
                                "still refused when the run ended".into()
                            } else {
                                "still refused at the end of the retry window".into()
                            });
                        }
                        break;
                    }
                    tally.refusals.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
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
    fn the_collectors_backoff_grows_spreads_and_honours_the_servers_delay() {
        let policy = RetryPolicy::COLLECTOR;
        let (mut backoff, mut rng) = (policy.initial, crate::rng::Rng::new(7));
        let mut waits = Vec::new();
        for _ in 0..8 {
            let before = backoff.as_secs_f64();
            let wait = policy.delay(&mut backoff, None, &mut rng).as_secs_f64();
            assert!((before * 0.5..=before * 1.5).contains(&wait), "{wait} s from a {before} s backoff");
            waits.push(wait);
        }
        assert_eq!(backoff, Duration::from_secs(30), "grows by 1.5 up to 30 s");
        assert!(waits.windows(2).any(|w| w[0] != w[1]), "drawn, not fixed: {waits:?}");
        let asked = Duration::from_secs(60);
        assert_eq!(policy.delay(&mut backoff, Some(asked), &mut rng), asked, "a longer Retry-After is waited");
        let short = policy.delay(&mut backoff, Some(Duration::from_secs(1)), &mut rng);
        assert!(short >= Duration::from_secs(15), "a shorter one does not cut the backoff: {short:?}");
    }

    #[test]
    fn the_eager_policy_takes_the_servers_delay_as_given() {
        let policy = RetryPolicy::EAGER;
        let (mut backoff, mut rng) = (policy.initial, crate::rng::Rng::new(7));
        assert_eq!(policy.delay(&mut backoff, None, &mut rng), Duration::from_millis(50));
        assert_eq!(policy.delay(&mut backoff, Some(Duration::from_secs(1)), &mut rng), Duration::from_secs(1));
        assert_eq!(policy.delay(&mut backoff, Some(Duration::from_secs(99)), &mut rng), Duration::from_secs(10));
    }

    #[test]
    fn an_error_reads_with_its_causes() {
        let reset = Wrapped(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(chain(&reset), "client error: connection reset");
    }
}
