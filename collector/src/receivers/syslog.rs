//! Syslog on `listen.syslog` (off unless set): RFC 5424 and RFC 3164
//! messages over TCP (octet counting, or one message a line ended by LF or
//! NUL; over TLS as RFC 5425 when the server has a certificate) and over
//! UDP (one message a datagram, never encrypted), for the tenant configured in
//! `[syslog]` (syslog carries no header). Messages become OTLP log records
//! ([`parse`]) and take the same door as OTLP, in batches.
//!
//! TCP has no acknowledgement in syslog, so a connection's batch that is
//! refused (rate limit, memory, backlog) is retried until taken, and the
//! connection is not read meanwhile: the sender slows down, nothing is lost.
//! UDP cannot slow its sender: a refused datagram batch is dropped and
//! counted. `sightline_syslog_received_total{transport}`,
//! `sightline_syslog_dropped_total{transport}` and
//! `sightline_syslog_malformed_total` say what arrived.

mod parse;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use sightline_storage::model::Tenant;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::adapter::logs_request;
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::Logs;

/// Messages submitted together, at most.
const BATCH: usize = 512;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogConfig {
    /// The tenant every syslog message belongs to.
    pub tenant: String,
    /// A longer message is cut at this many bytes (TCP) or is one datagram (UDP).
    pub max_message_bytes: usize,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self { tenant: "default".into(), max_message_bytes: 64 * 1024 }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Transport {
    transport: &'static str,
}

#[derive(Clone, Default)]
struct Telemetry {
    received: Family<Transport, Counter>,
    dropped: Family<Transport, Counter>,
    malformed: Counter,
}

/// The syslog listener's shared parts.
#[derive(Clone)]
pub struct Syslog {
    pipeline: Arc<Pipeline>,
    tenant: Tenant,
    max: usize,
    telemetry: Telemetry,
}

impl Syslog {
    pub fn new(pipeline: Arc<Pipeline>, config: &SyslogConfig, registry: &mut Registry) -> Result<Syslog, String> {
        let tenant = Tenant::new(&config.tenant).map_err(|e| format!("syslog.tenant: {e}"))?;
        let telemetry = Telemetry::default();
        let r = registry.sub_registry_with_prefix("sightline_syslog");
        r.register("received", "Syslog messages received", telemetry.received.clone());
        r.register("dropped", "Syslog messages dropped (UDP batches refused by the door)", telemetry.dropped.clone());
        r.register(
            "malformed",
            "Syslog messages that did not parse (kept whole as the body)",
            telemetry.malformed.clone(),
        );
        Ok(Syslog { pipeline, tenant, max: config.max_message_bytes.max(480), telemetry })
    }

    /// Accepts stream connections until `cancel`: plain TCP, or TLS
    /// (RFC 5425) when the listener is the binary's TLS listener.
    pub async fn serve_tcp<L: axum::serve::Listener>(self, mut listener: L, cancel: CancellationToken) {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = cancel.cancelled() => return,
            };
            tokio::spawn(self.clone().connection(stream, cancel.clone()));
        }
    }

    async fn connection(self, mut stream: impl AsyncRead + Unpin, cancel: CancellationToken) {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = tokio::select! {
                read = stream.read(&mut chunk) => read.unwrap_or(0),
                _ = cancel.cancelled() => 0,
            };
            if n > 0 {
                buf.extend_from_slice(&chunk[..n]);
            }
            let mut messages = Vec::new();
            while let Some(m) = frame(&mut buf, self.max, n == 0) {
                messages.push(m);
            }
            for batch in messages.chunks(BATCH) {
                self.submit_until_taken(batch, &cancel).await;
            }
            if n == 0 {
                return;
            }
        }
    }

    /// Receives datagrams until `cancel`.
    pub async fn serve_udp(self, socket: UdpSocket, cancel: CancellationToken) {
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = tokio::select! {
                received = socket.recv(&mut buf) => match received {
                    Ok(n) => n,
                    Err(_) => continue,
                },
                _ = cancel.cancelled() => return,
            };
            let mut messages = vec![String::from_utf8_lossy(&buf[..n]).into_owned()];
            while messages.len() < BATCH {
                match socket.try_recv(&mut buf) {
                    Ok(n) => messages.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(_) => break,
                }
            }
            let udp = Transport { transport: "udp" };
            self.telemetry.received.get_or_create(&udp).inc_by(messages.len() as u64);
            if let Err(e) = self.submit(&messages).await {
                self.telemetry.dropped.get_or_create(&udp).inc_by(messages.len() as u64);
                tracing::debug!(error = %e, "syslog: a UDP batch was refused and dropped");
            }
        }
    }

    /// TCP: retried while refused for a reason that passes.
    async fn submit_until_taken(&self, batch: &[String], cancel: &CancellationToken) {
        self.telemetry.received.get_or_create(&Transport { transport: "tcp" }).inc_by(batch.len() as u64);
        let mut wait = Duration::from_millis(100);
        loop {
            match self.submit(batch).await {
                Ok(()) => return,
                Err(e) if e.retry_after().is_some() && !cancel.is_cancelled() => {
                    tokio::time::sleep(e.retry_after().unwrap_or(wait).min(wait)).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    self.telemetry.dropped.get_or_create(&Transport { transport: "tcp" }).inc_by(batch.len() as u64);
                    tracing::warn!(error = %e, "syslog: a batch was refused");
                    return;
                }
            }
        }
    }

    async fn submit(&self, messages: &[String]) -> Result<(), IngestError> {
        let now = sightline_storage::model::now_unix_nanos();
        let mut by_resource: BTreeMap<(String, Option<String>), Vec<_>> = BTreeMap::new();
        for raw in messages {
            let m = parse::parse(raw, now);
            if m.record.attributes.first().is_some_and(|a| a.key == "syslog.malformed") {
                self.telemetry.malformed.inc();
            }
            by_resource.entry((m.service, m.host)).or_default().push(m.record);
        }
        let request = logs_request("syslog", by_resource);
        self.pipeline.submit::<Logs>(&self.tenant, request, None).await.map(drop)
    }
}

/// The next message of a TCP stream's bytes: octet-counted (`LEN SP MSG`)
/// when it starts with a digit, else up to LF or NUL; at the end of the
/// stream (`eof`), what is left. A message is cut at `max` bytes.
fn frame(buf: &mut Vec<u8>, max: usize, eof: bool) -> Option<String> {
    while buf.first().is_some_and(|b| matches!(b, b'\n' | b'\r' | b'\0')) {
        buf.remove(0);
    }
    if buf.is_empty() {
        return None;
    }
    let counted = buf[0]
        .is_ascii_digit()
        .then(|| buf.iter().take(10).position(|&b| b == b' '))
        .flatten()
        .and_then(|space| Some((space, std::str::from_utf8(&buf[..space]).ok()?.parse::<usize>().ok()?)));
    if let Some((space, len)) = counted {
        if buf.len() < space + 1 + len && !eof && len <= max {
            return None;
        }
        let end = (space + 1 + len).min(buf.len());
        let message = String::from_utf8_lossy(&buf[space + 1..end.min(space + 1 + max)]).into_owned();
        buf.drain(..end);
        return Some(message);
    }
    let (end, delimiter) = match buf.iter().position(|&b| b == b'\n' || b == b'\0') {
        Some(e) if e <= max => (e, 1),
        Some(_) => (max, 0),
        None if eof || buf.len() >= max => (buf.len().min(max), 0),
        None => return None,
    };
    let message = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + delimiter);
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::frame;

    #[test]
    fn frames_by_octet_count_or_by_line() {
        let mut buf = b"11 <13>1 - - -\n<14>second\0<14>third\n5 <13>".to_vec();
        assert_eq!(frame(&mut buf, 1000, false).as_deref(), Some("<13>1 - - -"));
        assert_eq!(frame(&mut buf, 1000, false).as_deref(), Some("<14>second"));
        assert_eq!(frame(&mut buf, 1000, false).as_deref(), Some("<14>third"));
        assert_eq!(frame(&mut buf, 1000, false), None, "an incomplete octet-counted frame waits");
        buf.extend_from_slice(b"x");
        assert_eq!(frame(&mut buf, 1000, false).as_deref(), Some("<13>x"));
        let mut tail = b"<14>no newline".to_vec();
        assert_eq!(frame(&mut tail, 1000, false), None);
        assert_eq!(frame(&mut tail, 1000, true).as_deref(), Some("<14>no newline"), "kept at the end");
        let mut long = vec![b'a'; 50];
        assert_eq!(frame(&mut long, 20, false).map(|m| m.len()), Some(20), "cut at the limit");
    }
}
