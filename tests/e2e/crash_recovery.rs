//! Crash recovery: the real binary is killed with SIGKILL while clients are
//! sending; after a restart every acknowledged span, log line and metric
//! sample is there exactly once.

use sightline_testkit as common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::binary::Running;
use common::otlp::{gauge_request, logs_request, trace_id, traces_request};
use prost::Message;

const SPANS_PER_TRACE: u64 = 5;

fn start(data_dir: &std::path::Path) -> Running {
    // Frequent log commits, so that the kill often lands during one.
    let env = [("SIGHTLINE_LOGS__COMMIT_INTERVAL_MS", "20")];
    let mut running = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), data_dir, &env);
    running.drain_log();
    running
}

/// Sends requests from four clients until the server dies; returns the
/// numbers of the acknowledged ones once it has.
async fn send_until_killed(server: &mut Running, path: &str, body: fn(u64) -> Vec<u8>) -> Vec<u64> {
    let client = reqwest::Client::new();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut senders = Vec::new();
    for worker in 0..4u64 {
        let (client, acked, url) = (client.clone(), acked.clone(), format!("http://{}{path}", server.http));
        senders.push(tokio::spawn(async move {
            for i in 0..10_000u64 {
                let n = worker * 1_000_000 + i;
                let sent =
                    client.post(&url).header("content-type", "application/x-protobuf").body(body(n)).send().await;
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
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_spans_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let acked =
        send_until_killed(&mut server, "/v1/traces", |n| traces_request(n, SPANS_PER_TRACE).encode_to_vec()).await;
    let client = reqwest::Client::new();

    // Twice: replaying an already replayed log must not duplicate anything.
    for round in 0..2 {
        let mut server = start(dir.path());
        // Every stored trace is whole: count traces and spans through search.
        let found: serde_json::Value = client
            .get(format!(
                "http://{}/api/traces?service=crash-test&start={}&end={}&limit=10000",
                server.api, 1_699_999_000_000_000_000u64, 1_700_001_000_000_000_000u64
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
            let spans = common::trace_span_ids(&client, &server.api, &id)
                .await
                .unwrap_or_else(|| panic!("round {round}: acknowledged trace {id} lost"));
            let ids: BTreeSet<_> = spans.iter().collect();
            assert_eq!(spans.len() as u64, SPANS_PER_TRACE, "round {round}: trace {id}");
            assert_eq!(ids.len() as u64, SPANS_PER_TRACE, "round {round}: trace {id} has duplicate spans");
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const LINES_PER_REQUEST: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_log_lines_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    // The lines of a request share its time, so that paging crosses requests.
    static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    NOW.set(now).expect("set once");
    let body = |n: u64| logs_request(n, LINES_PER_REQUEST, NOW.get().copied().unwrap_or_default() + n).encode_to_vec();
    let acked = send_until_killed(&mut server, "/v1/logs", body).await;
    let client = reqwest::Client::new();

    for round in 0..2 {
        let mut server = start(dir.path());
        // Replayed lines become searchable at the next commit.
        let total = |api: String, client: reqwest::Client| async move {
            let stats: serde_json::Value =
                client.get(format!("http://{api}/api/stats")).send().await.ok()?.json().await.ok()?;
            stats["logRecords"].as_u64()
        };
        let expected = acked.len() as u64 * LINES_PER_REQUEST;
        let mut stored = common::eventually("the replayed lines", || {
            let (api, client) = (server.api.clone(), client.clone());
            async move { total(api, client).await.filter(|n| *n >= expected) }
        })
        .await;
        // Lines that were durable but not acknowledged may land in a later
        // commit than the acknowledged ones: wait until ten commits add none.
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = total(server.api.clone(), client.clone()).await.expect("stats");
            if now == stored {
                break;
            }
            stored = now;
        }
        assert_eq!(stored % LINES_PER_REQUEST, 0, "round {round}: a request was stored in part");

        // Page through every line: each (request, line) once, every acknowledged request whole.
        let mut seen = BTreeSet::new();
        let mut cursor = String::new();
        let hour_ago = (now - 3_600_000_000_000).to_string();
        loop {
            let page: serde_json::Value = client
                .get(format!("http://{}/api/logs", server.api))
                .query(&[("query", "service:crash-test"), ("start", &hour_ago), ("limit", "1000"), ("cursor", &cursor)])
                .send()
                .await
                .expect("search")
                .json()
                .await
                .expect("JSON");
            for hit in page["hits"].as_array().expect("hits") {
                let key = (hit["attributes"]["request"].as_u64(), hit["attributes"]["line"].as_u64());
                assert!(seen.insert(key), "round {round}: line {key:?} stored twice");
            }
            match page["cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen.len() as u64, stored, "round {round}: paging saw every line once");
        for n in &acked {
            for j in 0..LINES_PER_REQUEST {
                assert!(seen.contains(&(Some(*n), Some(j))), "round {round}: acknowledged line {n}/{j} lost");
            }
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
    }
}

const POINTS_PER_REQUEST: u64 = 5;

/// Metric samples while one-minute blocks are cut every second: samples in
/// a window already cut are refused (the partial success says so), every
/// accepted sample is stored exactly once, whether it ended in a block or
/// came back from the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_samples_survive_sigkill_exactly_once() {
    use sightline_proto::otlp::ExportMetricsServiceResponse;
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SIGHTLINE_METRICS__BLOCK_MINUTES", "1"),
        ("SIGHTLINE_METRICS__CUT_INTERVAL_SECONDS", "1"),
        ("SIGHTLINE_METRICS__OUT_OF_ORDER_WINDOW_SECONDS", "0"),
        ("SIGHTLINE_SPANMETRICS__ENABLED", "false"),
    ];
    let start = || {
        let mut r = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
        r.drain_log();
        r
    };
    let mut server = start();
    // Sample times run from ten minutes ago at ten times real speed, so
    // that windows close (and are cut) while the clients send.
    let origin = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64
        - 600_000_000_000;
    let began = std::time::Instant::now();
    let client = reqwest::Client::new();
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let mut senders = Vec::new();
    for worker in 0..4u64 {
        let (client, accepted, url) = (client.clone(), accepted.clone(), format!("http://{}/v1/metrics", server.http));
        senders.push(tokio::spawn(async move {
            for i in 0..100_000u64 {
                let n = worker * 1_000_000 + i;
                let t = origin + began.elapsed().as_nanos() as u64 * 10;
                let body = gauge_request(n, POINTS_PER_REQUEST, t).encode_to_vec();
                let sent = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let bytes = r.bytes().await.unwrap_or_default();
                        let reply = ExportMetricsServiceResponse::decode(bytes).expect("response");
                        if reply.partial_success.is_none_or(|p| p.rejected_data_points == 0) {
                            accepted.lock().expect("lock").insert(n);
                        }
                    }
                    Ok(r) => panic!("unexpected status {}", r.status()),
                    Err(_) => return,
                }
            }
        }));
    }
    common::eventually("a few hundred accepted requests across cuts", || {
        let n = accepted.lock().expect("lock").len();
        let cut = dir.path().join("metrics").exists();
        async move { (n >= 300 && cut).then_some(()) }
    })
    .await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    for s in senders {
        s.await.expect("sender task");
    }
    let accepted: Vec<u64> = accepted.lock().expect("lock").iter().copied().collect();

    for round in 0..2 {
        let mut server = start();
        let url = format!("http://{}/prometheus/api/v1/query", server.api);
        let body: serde_json::Value = client
            .get(&url)
            .query(&[("query", "count_over_time(crash_gauge[1d])")])
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("JSON");
        let mut found = BTreeSet::new();
        for r in body["data"]["result"].as_array().expect("result") {
            assert_eq!(r["value"][1], "1", "round {round}: a sample stored twice: {r}");
            let n: u64 = r["metric"]["request"].as_str().and_then(|v| v.parse().ok()).expect("request");
            let j: u64 = r["metric"]["point"].as_str().and_then(|v| v.parse().ok()).expect("point");
            found.insert((n, j));
        }
        for n in &accepted {
            for j in 0..POINTS_PER_REQUEST {
                assert!(found.contains(&(*n, j)), "round {round}: accepted sample {n}/{j} lost");
            }
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Samples of windows the clock has already closed, acknowledged while no
/// block was cut, then replayed after a restart: the block thread waits for
/// the replay, so none is refused as "older than the last block".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn samples_of_closed_windows_all_come_back_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = |cut_seconds: &'static str| {
        let env =
            [("SIGHTLINE_METRICS__CUT_INTERVAL_SECONDS", cut_seconds), ("SIGHTLINE_SPANMETRICS__ENABLED", "false")];
        let mut r = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
        r.drain_log();
        r
    };
    let mut server = spawn("86400");
    let three_hours_ago = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos()
        as u64
        - 3 * 3_600_000_000_000;
    let client = reqwest::Client::new();
    // Enough that replaying takes longer than the first cut interval.
    const REQUESTS: u64 = 1000;
    const POINTS: u64 = 1000;
    let mut senders = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (client, url) = (client.clone(), format!("http://{}/v1/metrics", server.http));
        senders.spawn(async move {
            for n in (worker..REQUESTS).step_by(4) {
                // The same 1,000 series in every request, one second apart.
                let mut request = gauge_request(n, POINTS, three_hours_ago + n * 1_000_000_000);
                for m in
                    request.resource_metrics.iter_mut().flat_map(|r| &mut r.scope_metrics).flat_map(|s| &mut s.metrics)
                {
                    if let Some(sightline_proto::otlp::metrics::metric::Data::Gauge(g)) = &mut m.data {
                        g.data_points.iter_mut().for_each(|p| p.attributes.retain(|a| a.key != "request"));
                    }
                }
                let body = request.encode_to_vec();
                let r = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await;
                assert_eq!(r.expect("POST").status(), 200);
            }
        });
    }
    senders.join_all().await;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");

    // Cuts every second from now on, while the WAL is replayed. (While a
    // cut is being written, a query may briefly miss its window; the
    // count must reach every sample, and stay there.)
    let server = spawn("1");
    let (api, expected, blocks) = (server.api.clone(), (REQUESTS * POINTS).to_string(), dir.path().join("metrics"));
    common::eventually("every acknowledged sample, in blocks", || {
        let (api, expected, blocks) = (api.clone(), expected.clone(), blocks.clone());
        async move {
            let url = format!("http://{api}/prometheus/api/v1/query");
            let body = common::get_json(&url, &[("query", "sum(count_over_time(crash_gauge[1d]))")], None).await?;
            (body["data"]["result"][0]["value"][1] == expected.as_str() && blocks.exists()).then_some(())
        }
    })
    .await;
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
}

/// Remote-write samples are logged as the `WriteRequest` they came in and
/// replayed from it after SIGKILL, beside OTLP points in the same WAL:
/// every acknowledged sample comes back, with its labels exactly as sent
/// (no `job`, no `target_info`), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_remote_write_samples_survive_sigkill_beside_otlp_points() {
    use sightline_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

    let dir = tempfile::tempdir().expect("tempdir");
    let env = [("SIGHTLINE_SPANMETRICS__ENABLED", "false")];
    let start = || {
        let mut r = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
        r.drain_log();
        r
    };
    let server = start();
    let client = reqwest::Client::new();
    let now_ms = (common::now_nanos() / 1_000_000) as i64;
    const REQUESTS: u64 = 50;
    for n in 0..REQUESTS {
        let label = |name: &str, value: String| Label { name: name.into(), value };
        let w = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    label("__name__", "rw_crash".into()),
                    label("request", n.to_string()),
                    label("Odd-ish", "x".into()),
                ],
                samples: vec![
                    Sample { value: n as f64, timestamp: now_ms - 1_000 },
                    Sample { value: 1.0, timestamp: now_ms },
                ],
                exemplars: Vec::new(),
            }],
            ..Default::default()
        };
        let body = snap::raw::Encoder::new().compress_vec(&w.encode_to_vec()).expect("snappy");
        let r = client
            .post(format!("http://{}/prometheus/api/v1/write", server.api))
            .header("content-encoding", "snappy")
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("remote write");
        assert_eq!(r.status(), 204, "remote write {n}");
        let otlp = gauge_request(n, 1, now_ms as u64 * 1_000_000).encode_to_vec();
        let r = common::post_protobuf(&client, &format!("http://{}/v1/metrics", server.http), otlp).await;
        assert_eq!(r.status(), 200);
    }
    // A series without a name is refused, as Prometheus expects, not retried.
    let nameless = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label { name: "job".into(), value: "x".into() }],
            samples: vec![Sample { value: 1.0, timestamp: now_ms }],
            exemplars: Vec::new(),
        }],
        ..Default::default()
    };
    let r = client
        .post(format!("http://{}/prometheus/api/v1/write", server.api))
        .header("content-encoding", "snappy")
        .body(snap::raw::Encoder::new().compress_vec(&nameless.encode_to_vec()).expect("snappy"))
        .send()
        .await
        .expect("remote write");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("__name__"));
    let mut server = server;
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");

    for round in 0..2 {
        let mut server = start();
        let url = format!("http://{}/prometheus/api/v1/query", server.api);
        let query = |q: &'static str| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let body: serde_json::Value =
                    client.get(&url).query(&[("query", q)]).send().await.expect("query").json().await.expect("JSON");
                body["data"]["result"].as_array().cloned().expect("result")
            }
        };
        let rw = query("count_over_time(rw_crash[1h])").await;
        assert_eq!(rw.len() as u64, REQUESTS, "round {round}: every remote-write series is back");
        for r in &rw {
            assert_eq!(r["value"][1], "2", "round {round}: both samples, once: {r}");
            assert_eq!(r["metric"]["Odd-ish"], "x", "labels exactly as sent");
            assert!(r["metric"].get("job").is_none(), "no job on a remote-write series: {r}");
        }
        let otlp = query("count_over_time(crash_gauge[1h])").await;
        assert_eq!(otlp.len() as u64, REQUESTS, "round {round}: the OTLP points are back too");
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reaped");
    }
}
