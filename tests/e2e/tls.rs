//! TLS on every listener, with certificates made by the test (rcgen): the
//! API and OTLP/HTTP answer over HTTPS, OTLP/gRPC over TLS with HTTP/2,
//! syslog over TLS from Debian's rsyslog (RFC 5425); a plain-text client
//! gets nothing; a renewed certificate is served without
//! a restart; with a client CA, a client without a certificate is turned
//! away and one with a certificate that CA signed is served.

use sightline_testkit as common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::otlp::traces_request;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sightline::tls::TlsConfig;
use sightline_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write CA");
        Pki { ca, dir: dir.to_path_buf() }
    }

    /// A certificate for `names` signed by the CA, written as `<stem>.pem`
    /// and `<stem>.key`; returns its DER.
    fn issue(&self, stem: &str, names: &[&str]) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = CertificateParams::new(names).expect("params").signed_by(&key, &self.ca).expect("sign");
        std::fs::write(self.dir.join(format!("{stem}.pem")), cert.pem()).expect("write cert");
        std::fs::write(self.dir.join(format!("{stem}.key")), key.serialize_pem()).expect("write key");
        cert.der().clone()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A client that trusts the CA, with ALPN `alpn`, and a client
    /// certificate when `client` names one.
    fn connector(&self, alpn: &[u8], client: Option<&str>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            Some(stem) => {
                let cert = CertificateDer::from_pem_file(self.path(&format!("{stem}.pem"))).expect("client cert");
                let key = PrivateKeyDer::from_pem_file(self.path(&format!("{stem}.key"))).expect("client key");
                builder.with_client_auth_cert(vec![cert], key).expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

use rustls::pki_types::pem::PemObject;

/// An HTTP/1.1 request over TLS; the status line and the server's
/// certificate, or the error.
async fn https(
    pki: &Pki,
    addr: std::net::SocketAddr,
    client: Option<&str>,
    request: &str,
) -> Result<(String, CertificateDer<'static>), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = pki.connector(b"http/1.1", client).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let peer = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned().expect("server certificate");
    tls.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    if text.is_empty() {
        return Err("no response".into());
    }
    Ok((text.lines().next().unwrap_or_default().to_owned(), peer.into_owned()))
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

async fn start(pki: &Pki, client_ca: bool) -> common::TestServer {
    let tls = TlsConfig {
        cert_file: Some(pki.path("server.pem")),
        key_file: Some(pki.path("server.key")),
        client_ca_file: client_ca.then(|| pki.path("ca.pem")),
    };
    common::start(move |c| {
        c.tls = tls;
        c.listen.syslog = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_listener_speaks_tls_and_a_renewed_certificate_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let first = pki.issue("server", &["localhost", "127.0.0.1"]);
    let s = start(&pki, false).await;

    let (status, peer) = https(&pki, s.server.api_addr, None, &get("/readyz")).await.expect("API over TLS");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(peer, first);

    let body = prost::Message::encode_to_vec(&traces_request(1, 3));
    let tcp = TcpStream::connect(s.server.http_addr).await.expect("connect");
    let mut tls = pki
        .connector(b"http/1.1", None)
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("OTLP/HTTP handshake");
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.write_all(&body).await.expect("write");
    let mut response = Vec::new();
    tls.read_to_end(&mut response).await.expect("read");
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"), "OTLP/HTTP over TLS");

    // OTLP/gRPC over TLS: HTTP/2 negotiated by ALPN.
    let connector = pki.connector(b"h2", None);
    let grpc_addr = s.server.grpc_addr;
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(grpc_addr).await?;
                let tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("gRPC over TLS");
    TraceServiceClient::new(channel).export(traces_request(2, 3)).await.expect("export over TLS");
    assert_eq!(
        s.server.spans.counts(&common::tenant("default")).head_spans
            + s.server.spans.counts(&common::tenant("default")).part_spans,
        6
    );

    // Plain text on a TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(s.server.api_addr).await.expect("connect");
    plain.write_all(get("/readyz").as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "plain HTTP must not be served");

    // A renewed certificate is served without a restart.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let renewed = pki.issue("server", &["localhost", "127.0.0.1"]);
    assert_ne!(renewed, first);
    let served = common::eventually("the renewed certificate", || async {
        let (_, peer) = https(&pki, s.server.api_addr, None, &get("/readyz")).await.ok()?;
        (peer == renewed).then_some(peer)
    })
    .await;
    assert_eq!(served, renewed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_client_ca_only_clients_with_its_certificates_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    pki.issue("server", &["localhost", "127.0.0.1"]);
    pki.issue("client", &["collector"]);
    let s = start(&pki, true).await;
    let without = https(&pki, s.server.api_addr, None, &get("/readyz")).await;
    assert!(without.is_err(), "a client without a certificate is turned away: {without:?}");
    let (status, _) =
        https(&pki, s.server.api_addr, Some("client"), &get("/readyz")).await.expect("with a certificate");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replaced_client_ca_is_used_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    pki.issue("server", &["localhost", "127.0.0.1"]);
    pki.issue("client", &["collector"]);
    let s = start(&pki, true).await;
    https(&pki, s.server.api_addr, Some("client"), &get("/readyz")).await.expect("client of the first CA");

    // A second CA and a client it signed; its CA file replaces the first.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = Pki::new(other_dir.path());
    other.issue("client", &["collector"]);
    for ext in ["pem", "key"] {
        std::fs::copy(other.path(&format!("client.{ext}")), pki.path(&format!("client2.{ext}"))).expect("copy");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::copy(other.path("ca.pem"), pki.path("ca.pem")).expect("replace the CA");
    common::eventually("the new CA's client served", || async {
        https(&pki, s.server.api_addr, Some("client2"), &get("/readyz")).await.ok()
    })
    .await;
    let old = https(&pki, s.server.api_addr, Some("client"), &get("/readyz")).await;
    assert!(old.is_err(), "the first CA's client is turned away now: {old:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rsyslog_forwards_to_the_syslog_port_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    pki.issue("server", &["localhost", "127.0.0.1"]);
    let s = start(&pki, false).await;
    let port = s.server.syslog_addr.expect("syslog listens").port();

    // Plain text on the TLS port is not taken.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    plain.write_all(b"50 <11>1 2024-05-01T12:00:00Z web app - - - sent in plain text\n").await.expect("write");
    drop(plain);

    // Debian's rsyslog with its GnuTLS driver (rsyslog-gnutls), checking the server's name against the CA.
    let rsyslog_dir = dir.path().join("rsyslog");
    std::fs::create_dir(&rsyslog_dir).expect("dir");
    let actions = format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" TCP_Framing=\"octet-counted\" \
         template=\"RSYSLOG_SyslogProtocol23Format\" StreamDriver=\"gtls\" StreamDriverMode=\"1\" \
         StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\" StreamDriver.CAFile=\"{ca}\")\n",
        ca = pki.path("ca.pem").display()
    );
    let rsyslog = common::rsyslog::start(&rsyslog_dir, &actions).await;
    rsyslog.log("shipper", "user.err", "sent over tls");
    // The API speaks TLS too: search through it.
    let search = |query: &'static str| {
        let (pki, addr) = (&pki, s.server.api_addr);
        async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let name = ServerName::try_from("localhost").expect("name");
            let mut tls = pki.connector(b"http/1.1", None).connect(name, tcp).await.expect("handshake");
            tls.write_all(get(&format!("/api/logs?query={query}")).as_bytes()).await.expect("write");
            let mut response = Vec::new();
            tls.read_to_end(&mut response).await.expect("read");
            let text = String::from_utf8(response).expect("text");
            let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(body).expect("JSON")["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let found = common::eventually("the line rsyslog sent over TLS", || async {
        let hits = search("service:shipper").await;
        (!hits.is_empty()).then_some(hits)
    })
    .await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["body"], "sent over tls");
    assert_eq!(found[0]["severity"], "ERROR");
    assert!(search("plain").await.is_empty(), "the plain-text line was taken");
}
