//! Crash recovery: the real binary is killed with SIGKILL while clients are
//! sending; after a restart every acknowledged span is there exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::binary::Running;
use common::otlp::{trace_id, traces_request};
use prost::Message;

const SPANS_PER_TRACE: u64 = 5;

fn start(data_dir: &std::path::Path) -> Running {
    let mut running = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), data_dir, &[]);
    running.drain_log();
    running
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
        let (client, acked, url) = (client.clone(), acked.clone(), format!("http://{}/v1/traces", server.http));
        senders.push(tokio::spawn(async move {
            for i in 0..10_000u64 {
                let n = worker * 1_000_000 + i;
                let body = traces_request(n, SPANS_PER_TRACE).encode_to_vec();
                let sent = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await;
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
        // Every stored trace is whole: count traces and spans through search.
        let found: serde_json::Value = client
            .get(format!(
                "http://{}/api/traces?service=crash-test&start=0&end={}&limit=10000",
                server.api,
                u64::MAX / 2
            ))
            .send()
            .await
            .expect("search")
            .json()
            .await
            .expect("JSON");
        let traces = found["traces"].as_array().expect("traces");
        assert!(traces.len() >= acked.len(), "round {round}: {} traces < {} acknowledged", traces.len(), acked.len());
        for t in traces {
            assert_eq!(
                t["spanCount"], SPANS_PER_TRACE,
                "round {round}: every stored trace is whole, none duplicated: {t}"
            );
        }
        let stats: serde_json::Value = client
            .get(format!("http://{}/api/stats", server.api))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("JSON");
        assert_eq!(
            stats["spans"].as_u64(),
            Some(traces.len() as u64 * SPANS_PER_TRACE),
            "round {round}: no duplicate span"
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
            let ids: BTreeSet<_> = spans.iter().map(|s| s["spanId"].as_str().expect("span id").to_owned()).collect();
            assert_eq!(spans.len() as u64, SPANS_PER_TRACE, "round {round}: trace {id}");
            assert_eq!(ids.len() as u64, SPANS_PER_TRACE, "round {round}: trace {id} has duplicate spans");
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
