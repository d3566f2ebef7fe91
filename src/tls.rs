//! TLS on the three listeners (rustls): the certificate chain, key and
//! (optional) client CA are read from PEM files and read again when any of
//! them changes, so a renewed certificate or CA is used for new connections
//! without a restart; with `client_ca_file` every client must present a
//! certificate signed by that CA.
//!
//! Handshakes run on their own tasks (with a deadline), so one slow client
//! does not hold up the accept loop; finished connections are handed to
//! axum (as a [`Listener`]) or tonic (as a stream of [`TlsConn`]).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; TLS is on when this and `key_file` are set.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates; when set, clients must present a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), String> {
        match (&self.cert_file, &self.key_file) {
            (Some(_), Some(_)) | (None, None) => {}
            _ => return Err("tls.cert_file and tls.key_file go together".into()),
        }
        if self.client_ca_file.is_some() && self.cert_file.is_none() {
            return Err("tls.client_ca_file needs tls.cert_file and tls.key_file".into());
        }
        Ok(())
    }
}

/// The acceptor for the files of `config` as they are now.
fn build(config: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) else {
        anyhow::bail!("tls.cert_file and tls.key_file are needed");
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid PEM certificate in {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", cert.display());
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("no usable private key in {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &config.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read {}", ca.display()))? {
                roots.add(c.with_context(|| format!("invalid PEM in {}", ca.display()))?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(chain, key).context("the certificate and the key do not match")?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// TLS for the listeners: one acceptor, shared, swapped when the files change.
#[derive(Clone)]
pub struct Tls {
    acceptor: Arc<RwLock<TlsAcceptor>>,
    config: TlsConfig,
}

impl Tls {
    /// `None` when TLS is off; an error when the files do not load.
    pub fn from_config(config: &TlsConfig) -> anyhow::Result<Option<Tls>> {
        if config.cert_file.is_none() {
            return Ok(None);
        }
        Ok(Some(Tls { acceptor: Arc::new(RwLock::new(build(config)?)), config: config.clone() }))
    }

    /// Reads the files again whenever one of them changes; files that do
    /// not load keep the configuration in force, and say so.
    pub async fn watch(self, every: Duration, cancel: CancellationToken) {
        let files: Vec<PathBuf> = [&self.config.cert_file, &self.config.key_file, &self.config.client_ca_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let stamps = || -> Vec<Option<SystemTime>> {
            files.iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
        };
        let mut seen = stamps();
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = stamps();
            if now == seen {
                continue;
            }
            seen = now;
            match build(&self.config) {
                Ok(acceptor) => {
                    *self.acceptor.write() = acceptor;
                    tracing::info!("reloaded the TLS certificate, key and client CA");
                }
                Err(e) => tracing::error!(error = format!("{e:#}"), "keeping the TLS configuration in force"),
            }
        }
    }

    /// Accepts TCP connections and hands over those whose handshake
    /// completes within 10 s.
    pub fn incoming(&self, listener: TcpListener, cancel: CancellationToken) -> TlsListener {
        let local = listener.local_addr();
        let (tx, rx) = mpsc::channel(64);
        let shared = self.acceptor.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (shared.read().clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((TlsConn(tls), peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { rx, local }
    }
}

/// A TLS connection (for tonic, which asks what it is connected to).
pub struct TlsConn(TlsStream<TcpStream>);

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.get_ref().0.peer_addr().ok()
    }
}

/// Connections whose handshake completed.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsConn, SocketAddr)>,
    local: io::Result<SocketAddr>,
}

impl TlsListener {
    /// The connections as a stream, for tonic.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Result<TlsConn, io::Error>> {
        futures_util::stream::unfold(self.rx, |mut rx| async move { rx.recv().await.map(|(c, _)| (Ok(c), rx)) })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop stopped (shutdown): wait for axum to stop too.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.local.as_ref().copied().map_err(|e| io::Error::new(e.kind(), e.to_string()))
    }
}
