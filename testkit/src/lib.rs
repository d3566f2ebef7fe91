//! What the end-to-end tests (`tests/e2e/`) and the benchmarks share: a
//! real server on 127.0.0.1:0 with its data in a temporary directory,
//! polling for eventual state, the real binary ([`binary`]), a real
//! Prometheus ([`prometheus`]), hand-built OTLP ([`otlp`]), and the
//! benchmarks' data sets and measuring helpers.

pub mod alertmanager;
pub mod binary;
pub mod log_gen;
pub mod measure;
pub mod otlp;
pub mod prometheus;
pub mod prometheus_tsdb;
pub mod remote_write_data;
pub mod rsyslog;
pub mod suite_data;

use std::future::Future;
use std::time::{Duration, Instant};

use sightline::config::Config;
use sightline::server::Server;
use sightline_storage::model::Tenant;

pub struct TestServer {
    pub server: Server,
    pub config: Config,
    pub dir: tempfile::TempDir,
}

/// A config that binds every port on loopback, port 0, in a temp dir.
pub fn loopback_config(dir: &std::path::Path) -> Config {
    let any = "127.0.0.1:0".parse().expect("address");
    Config {
        data_dir: dir.to_path_buf(),
        listen: sightline::config::Listen { grpc: any, http: any, api: any, zipkin: any, syslog: None },
        ..Config::default()
    }
}

pub async fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = loopback_config(dir.path());
    configure(&mut config);
    let server = Server::start(&config).await.expect("server starts");
    TestServer { server, config, dir }
}

/// A server whose tenants may send `items_per_second` items, `burst` at once.
pub async fn start_rate_limited(items_per_second: u64, burst: u64) -> TestServer {
    start(|c| {
        c.ingest.rate_limit.items_per_second = items_per_second;
        c.ingest.rate_limit.burst_items = burst;
    })
    .await
}

impl TestServer {
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.server.grpc_addr)
    }

    pub fn otlp_http_url(&self, signal: &str) -> String {
        format!("http://{}/v1/{signal}", self.server.http_addr)
    }

    pub fn zipkin_url(&self) -> String {
        format!("http://{}/api/v2/spans", self.server.zipkin_addr)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.api_addr)
    }
}

/// The clock now, in Unix nanoseconds (the stores' clock).
pub fn now_nanos() -> u64 {
    sightline_storage::model::now_unix_nanos()
}

pub fn tenant(name: &str) -> Tenant {
    Tenant::new(name).expect("tenant")
}

/// GETs `url` with `query` (as `tenant` if given); the JSON body, or `None`
/// on any failure, for polling with [`eventually`].
pub async fn get_json(url: &str, query: &[(&str, &str)], tenant: Option<&str>) -> Option<serde_json::Value> {
    let mut request = reqwest::Client::new().get(url).query(query);
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    request.send().await.ok()?.json().await.ok()
}

/// The span ids of trace `id` (hex) from the native API at `api`, as
/// returned (repeats kept); `None` when the trace is not found.
pub async fn trace_span_ids(client: &reqwest::Client, api: &str, id: &str) -> Option<Vec<String>> {
    let body: serde_json::Value =
        client.get(format!("http://{api}/api/traces/{id}")).send().await.expect("trace").json().await.expect("JSON");
    let spans = body["spans"].as_array()?;
    Some(spans.iter().map(|s| s["spanId"].as_str().expect("span id").to_owned()).collect())
}

/// Polls `check` until it returns `Some`, for at most 20 s (a deadline for
/// eventual state, not a timing assertion).
pub async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The hits of a log search on `server`, polled until there are `n`.
pub async fn log_hits(server: &TestServer, query: &str, n: usize) -> Vec<serde_json::Value> {
    let api = server.api_url("/api/logs");
    eventually(&format!("{n} lines for {query:?}"), || async {
        let body = get_json(&api, &[("query", query), ("limit", "100")], None).await?;
        let hits = body["hits"].as_array()?.clone();
        (hits.len() == n).then_some(hits)
    })
    .await
}

/// Runs `script` with `args` in the Python that has the real Python clients
/// (`scripts/test` makes a virtual environment with them and names it in
/// `PYTHON_FOR_TESTS`); its standard output, trimmed. Fails on its failure.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let python = std::env::var("PYTHON_FOR_TESTS").unwrap_or_else(|_| "/var/tmp/sightline-venv/bin/python".into());
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs (scripts/test makes /var/tmp/sightline-venv with the PyPI clients)");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Waits until `{url}/-/ready` answers 200 (Prometheus, Alertmanager).
pub async fn wait_ready(what: &str, url: &str) {
    let client = reqwest::Client::new();
    eventually(&format!("{what} ready"), || {
        let (client, url) = (client.clone(), format!("{url}/-/ready"));
        async move { client.get(url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
}

/// POSTs `body` as OTLP protobuf (`application/x-protobuf`) to `url`.
pub async fn post_protobuf(client: &reqwest::Client, url: &str, body: Vec<u8>) -> reqwest::Response {
    client.post(url).header("content-type", "application/x-protobuf").body(body).send().await.expect("POST")
}
