//! Crash recovery: the real binary is killed with SIGKILL while clients are
//! sending; after a restart every acknowledged span is there exactly once.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::otlp::{trace_id, traces_request};
use prost::Message;

const SPANS_PER_TRACE: u64 = 5;

struct Running {
    child: Child,
    http: String,
    api: String,
}

/// Starts the binary on loopback ports chosen by the OS and reads the
/// addresses from its log.
fn start(data_dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["--data-dir", data_dir.to_str().expect("utf-8 path")])
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--api-listen",
            "127.0.0.1:0",
        ])
        .env("SIGHTLINE_LOG__LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let (mut http, mut api) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("log line");
        let addr = || line.rsplit(' ').next().map(str::to_owned);
        if line.contains("OTLP/HTTP listening on") {
            http = addr();
        } else if line.contains("API and /metrics listening on") {
            api = addr();
        } else if line.contains("Sightline is ready") {
            break;
        }
    }
    // Keep draining the log so that the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        child,
        http: http.expect("HTTP address logged"),
        api: api.expect("API address logged"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_spans_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let client = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));

    // Four clients send one trace per request until the server dies.
    let mut senders = Vec::new();
    for worker in 0..4u64 {
        let (client, acked, url) = (
            client.clone(),
            acked.clone(),
            format!("http://{}/v1/traces", server.http),
        );
        senders.push(tokio::spawn(async move {
            for i in 0..10_000u64 {
                let n = worker * 1_000_000 + i;
                let body = traces_request(n, SPANS_PER_TRACE).encode_to_vec();
                let sent = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().expect("lock").insert(n);
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    common::eventually("a few hundred acknowledgements", || {
        let n = acked.lock().expect("lock").len();
        async move { (n >= 300).then_some(()) }
    })
    .await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    for s in senders {
        s.await.expect("sender task");
    }
    let acked: Vec<u64> = acked.lock().expect("lock").iter().copied().collect();
    assert!(acked.len() >= 300);

    // Twice: replaying an already replayed log must not duplicate anything.
    for round in 0..2 {
        let mut server = start(dir.path());
        let stats: serde_json::Value = client
            .get(format!("http://{}/api/stats", server.api))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("JSON");
        let (spans, traces) = (
            stats["spans"].as_u64().expect("spans"),
            stats["traces"].as_u64().expect("traces"),
        );
        assert!(
            traces >= acked.len() as u64,
            "round {round}: {traces} traces < {} acknowledged",
            acked.len()
        );
        assert_eq!(
            spans,
            traces * SPANS_PER_TRACE,
            "round {round}: every stored trace is whole, none duplicated"
        );
        for n in &acked {
            let id = hex(&trace_id(*n));
            let body: serde_json::Value = client
                .get(format!("http://{}/api/traces/{id}", server.api))
                .send()
                .await
                .expect("trace")
                .json()
                .await
                .expect("JSON");
            let spans = body["spans"]
                .as_array()
                .unwrap_or_else(|| panic!("round {round}: acknowledged trace {id} lost: {body}"));
            let ids: BTreeSet<_> = spans
                .iter()
                .map(|s| s["spanId"].as_str().expect("span id").to_owned())
                .collect();
            assert_eq!(
                spans.len() as u64,
                SPANS_PER_TRACE,
                "round {round}: trace {id}"
            );
            assert_eq!(
                ids.len() as u64,
                SPANS_PER_TRACE,
                "round {round}: trace {id} has duplicate spans"
            );
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
