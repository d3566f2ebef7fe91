//! The crash loop: the real binary is killed with SIGKILL at a random
//! moment, 20 times, while clients send traces, log lines and metric
//! samples at once and the stores flush, commit and compact every second;
//! it is restarted each time on the same data. At the end every
//! acknowledged span, line and sample is queryable, each exactly once.
//!
//! `CRASH_LOOP_TRIALS` and `CRASH_LOOP_SEED` change the number of kills
//! and the random moments (the seed is printed).

use sightline_testkit as common;

use sightline_loadgen::Rng;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::binary::Running;
use common::otlp::{gauge_request, logs_request, trace_id, traces_request_at};
use prost::Message;

const SPANS: u64 = 10;
const LINES: u64 = 20;
const POINTS: u64 = 3;

fn start(data_dir: &std::path::Path) -> Running {
    let env = [
        ("SIGHTLINE_SPANS__FLUSH_SPANS", "500"),
        ("SIGHTLINE_SPANS__FLUSH_AGE_SECONDS", "1"),
        ("SIGHTLINE_SPANS__COMPACTION_MIN_PARTS", "2"),
        ("SIGHTLINE_SPANS__MAINTENANCE_INTERVAL_SECONDS", "1"),
        ("SIGHTLINE_LOGS__COMMIT_INTERVAL_MS", "50"),
        ("SIGHTLINE_LOGS__MAINTENANCE_INTERVAL_SECONDS", "1"),
    ];
    let mut running = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), data_dir, &env);
    running.drain_log();
    running
}

#[derive(Default)]
struct Acked {
    traces: BTreeSet<u64>,
    logs: BTreeSet<u64>,
    /// Request number → the time of its samples.
    metrics: BTreeMap<u64, u64>,
}

/// Sends the three signals from one client each until the server is gone.
fn senders(server: &Running, first: u64, acked: &Arc<Mutex<Acked>>) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::new();
    (0..3u64)
        .map(|signal| {
            let (client, acked, http) = (client.clone(), acked.clone(), server.http.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let n = first + signal * 100_000 + i;
                    let now = common::now_nanos();
                    let (path, body) = match signal {
                        0 => ("traces", traces_request_at(n, SPANS, now).encode_to_vec()),
                        1 => ("logs", logs_request(n, LINES, now).encode_to_vec()),
                        _ => ("metrics", gauge_request(n, POINTS, now).encode_to_vec()),
                    };
                    let sent = client
                        .post(format!("http://{http}/v1/{path}"))
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let mut a = acked.lock().expect("lock");
                            match signal {
                                0 => a.traces.insert(n),
                                1 => a.logs.insert(n),
                                _ => a.metrics.insert(n, now).is_none(),
                            };
                        }
                        Ok(r) if matches!(r.status().as_u16(), 429 | 503) => {}
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => return, // killed
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_kills_lose_and_duplicate_nothing_acknowledged() {
    let trials: u64 = std::env::var("CRASH_LOOP_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed = std::env::var("CRASH_LOOP_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(common::now_nanos) | 1;
    eprintln!("crash loop: {trials} trials, seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let acked = Arc::new(Mutex::new(Acked::default()));
    for trial in 0..trials {
        let mut server = start(dir.path());
        let tasks = senders(&server, trial * 1_000_000, &acked);
        // Kill at a random moment between 0.2 and 2.2 s into the trial.
        tokio::time::sleep(Duration::from_millis(200 + rng.below(2000))).await;
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        for t in tasks {
            t.await.expect("sender");
        }
    }
    let acked = Arc::try_unwrap(acked).ok().expect("senders done").into_inner().expect("lock");
    eprintln!(
        "acknowledged: {} traces, {} log requests, {} metric requests",
        acked.traces.len(),
        acked.logs.len(),
        acked.metrics.len()
    );
    assert!(!acked.traces.is_empty() && !acked.logs.is_empty() && !acked.metrics.is_empty());

    let server = start(dir.path());
    let client = reqwest::Client::new();
    let api = server.api.clone();
    let get = |path: String, query: Vec<(&'static str, String)>| {
        let (client, api) = (client.clone(), api.clone());
        async move {
            let r = client.get(format!("http://{api}{path}")).query(&query).send().await.expect("GET");
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };

    // Every acknowledged trace, whole and once.
    let started = Instant::now();
    for n in &acked.traces {
        let (status, trace) = get(format!("/api/traces/{}", hex::encode(trace_id(*n))), Vec::new()).await;
        assert_eq!(status, 200, "acknowledged trace {n} lost");
        let spans = trace["spans"].as_array().map(Vec::len).unwrap_or(0) as u64;
        assert_eq!(spans, SPANS, "trace {n}: {spans} spans, want {SPANS} (none lost, none twice)");
    }

    // Every acknowledged line, once: page through all of them.
    let expected_lines = acked.logs.len() as u64 * LINES;
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let query = vec![
            ("query", "service:crash-test".to_owned()),
            ("start", (common::now_nanos() - 3_600_000_000_000).to_string()),
            ("limit", "1000".to_owned()),
            ("cursor", cursor.clone()),
        ];
        let (status, page) = get("/api/logs".into(), query).await;
        assert_eq!(status, 200, "{page}");
        for hit in page["hits"].as_array().expect("hits") {
            let key = (hit["attributes"]["request"].as_u64(), hit["attributes"]["line"].as_u64());
            assert!(seen.insert(key), "line {key:?} stored twice");
        }
        match page["cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None if (seen.len() as u64) < expected_lines && Instant::now() < deadline => {
                // Replayed lines become searchable at the first commit: read again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                (seen, cursor) = (BTreeSet::new(), String::new());
            }
            None => break,
        }
    }
    for n in &acked.logs {
        for j in 0..LINES {
            assert!(seen.contains(&(Some(*n), Some(j))), "acknowledged line {n}/{j} lost");
        }
    }

    // Every acknowledged sample, once: one count per series over the run.
    let (status, counts) =
        get("/prometheus/api/v1/query".into(), vec![("query", "count_over_time(crash_gauge[1h])".to_owned())]).await;
    assert_eq!(status, 200, "{counts}");
    let mut per_series = BTreeMap::new();
    for s in counts["data"]["result"].as_array().expect("vector") {
        let n: u64 = s["metric"]["request"].as_str().and_then(|v| v.parse().ok()).expect("request label");
        let j: u64 = s["metric"]["point"].as_str().and_then(|v| v.parse().ok()).expect("point label");
        let c: f64 = s["value"][1].as_str().and_then(|v| v.parse().ok()).expect("count");
        per_series.insert((n, j), c);
    }
    for n in acked.metrics.keys() {
        for j in 0..POINTS {
            assert_eq!(per_series.get(&(*n, j)), Some(&1.0), "sample {n}/{j}: lost or stored twice");
        }
    }
    eprintln!(
        "after {trials} kills: {} traces, {} lines, {} samples acknowledged, all present once (checked in {:?})",
        acked.traces.len(),
        expected_lines,
        acked.metrics.len() as u64 * POINTS,
        started.elapsed()
    );
}
