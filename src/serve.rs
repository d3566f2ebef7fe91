//! HTTP listeners and their connections: a deep accept queue, a bounded
//! read buffer and an idle timeout per connection, and a graceful stop.
//!
//! What a connection holds while it waits for its next request is bounded
//! here, not by the clients: with hyper's defaults a keep-alive connection
//! that had carried one large request kept its read buffer (some 135 KiB),
//! so 2,000 idle clients held 268 MiB, and the thousands of connections of
//! an overload pushed resident memory over the limit at which the door
//! refuses everything.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Connections the kernel may hold for a listener before it accepts them
/// (capped by `net.core.somaxconn`). A flood of clients reconnecting at
/// once (every refusal closes its connection) overflowed the default of
/// 1,024, and an overflowing queue answers some of them with a reset
/// instead of a refusal they could retry.
const ACCEPT_BACKLOG: u32 = 4096;

/// The most a connection reads ahead into its buffer: a body arrives in
/// reads of at most this size, and an idle connection keeps no more.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// A connection that sends no request header for this long is closed
/// (the wait for the next request on a kept-alive connection included):
/// longer than the 90 s that Go's and reqwest's clients keep an idle
/// connection, so that the client lets go first and never sends a request
/// into a connection the server is closing.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a stop waits for requests in progress.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A TCP listener on `addr` with a deep accept queue.
pub fn listen(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let bound = || {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    bound().with_context(|| format!("cannot listen on {addr}"))
}

/// Serves `app` on the connections of `listener` (HTTP/1.1 with upgrades,
/// or HTTP/2) until `stop`; then stops accepting and lets the requests in
/// progress finish, for at most [`STOP_GRACE`].
pub async fn serve<L>(mut listener: L, app: axum::Router, stop: CancellationToken)
where
    L: axum::serve::Listener,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(IDLE_TIMEOUT).max_buf_size(READ_BUFFER_BYTES);
    let graceful = GracefulShutdown::new();
    loop {
        let io = tokio::select! {
            _ = stop.cancelled() => break,
            (io, _) = listener.accept() => io,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown()).await.is_err() {
        tracing::debug!("requests still running after the stop's grace period");
    }
}
