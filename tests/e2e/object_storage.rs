//! Object storage end to end: the real binary keeps its span parts and
//! metric blocks in a real S3 bucket (SeaweedFS on loopback, started by the
//! test); once the first node has stopped and its data directory is gone, a
//! fresh node with an empty one serves every trace and sample from the bucket.

use sightline_testkit as common;

use std::process::Command;

use common::binary::Running;
use common::otlp::{gauge_request, trace_id, traces_request_at};
use futures_util::TryStreamExt;
use prost::Message;
use sightline_storage::objects::seaweed::{BUCKET, S3ForTests, unique_prefix};

const TRACES: u64 = 200;
const SPANS_PER_TRACE: u64 = 5;
const GAUGES: u64 = 50;

fn start(data_dir: &std::path::Path, s3: &S3ForTests, prefix: &str) -> Running {
    let env = [
        ("SIGHTLINE_STORAGE__BACKEND", "s3"),
        ("SIGHTLINE_STORAGE__BUCKET", BUCKET),
        ("SIGHTLINE_STORAGE__ENDPOINT", &s3.endpoint),
        ("SIGHTLINE_STORAGE__PREFIX", prefix),
        ("SIGHTLINE_STORAGE__ACCESS_KEY_ID", "sightline"),
        ("SIGHTLINE_STORAGE__SECRET_ACCESS_KEY", "a-secret-never-logged"),
        ("SIGHTLINE_SPANS__FLUSH_AGE_SECONDS", "1"),
        ("SIGHTLINE_METRICS__CUT_INTERVAL_SECONDS", "1"),
    ];
    common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), data_dir, &env)
}

async fn post(client: &reqwest::Client, url: String, body: Vec<u8>) {
    let r = client.post(url).header("content-type", "application/x-protobuf").body(body).send().await.expect("sent");
    assert_eq!(r.status(), 200);
}

async fn get_json(client: &reqwest::Client, url: String) -> serde_json::Value {
    client.get(url).send().await.expect("GET").json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_node_serves_every_trace_and_sample_from_the_bucket() {
    let s3 = S3ForTests::shared();
    let prefix = unique_prefix("e2e");
    let client = reqwest::Client::new();
    let now = common::now_nanos();
    let span_start = now - 600 * 1_000_000_000;
    // Three hours ago: its block is cut at once (older than the out-of-order window).
    let sample_time = now - 3 * 3600 * 1_000_000_000;

    let first_dir = tempfile::tempdir().expect("tempdir");
    let mut first = start(first_dir.path(), &s3, &prefix);
    let log = first.collect_log();
    for n in 0..TRACES {
        let body = traces_request_at(n, SPANS_PER_TRACE, span_start + n).encode_to_vec();
        post(&client, format!("http://{}/v1/traces", first.http), body).await;
    }
    for n in 0..GAUGES {
        post(&client, format!("http://{}/v1/metrics", first.http), gauge_request(n, 2, sample_time).encode_to_vec())
            .await;
    }
    // Parts and blocks reach the bucket while the node runs.
    let bucket = s3.objects(&prefix);
    common::eventually("span parts and metric blocks in the bucket", || {
        let bucket = bucket.clone();
        async move {
            let keys: Vec<String> =
                bucket.list(None).map_ok(|o| o.location.to_string()).try_collect().await.expect("list");
            let has = |what: &str, file: &str| keys.iter().any(|k| k.starts_with(what) && k.ends_with(file));
            (has("spans/", "meta.json") && has("metrics/", "meta.json")).then_some(())
        }
    })
    .await;
    let metrics =
        client.get(format!("http://{}/metrics", first.api)).send().await.expect("GET").text().await.expect("text");
    assert!(
        metrics.contains(r#"sightline_object_store_requests_total{op="put",outcome="ok"}"#),
        "puts are counted: {metrics}"
    );
    assert!(metrics.contains("sightline_object_store_breaker_state 0"), "{metrics}");
    let stopped = Command::new("kill").args(["-TERM", &first.child.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    assert!(first.child.wait().expect("exits").success());
    let log = log.lock().expect("lock").join("\n");
    assert!(!log.contains("a-secret-never-logged"), "the secret key is never logged");
    drop(first_dir);

    // A new node: an empty data directory, the same bucket.
    let second_dir = tempfile::tempdir().expect("tempdir");
    let mut second = start(second_dir.path(), &s3, &prefix);
    second.drain_log();
    let api = second.api.clone();
    for n in 0..TRACES {
        let id: String = trace_id(n).iter().map(|b| format!("{b:02x}")).collect();
        let spans = common::trace_span_ids(&client, &api, &id).await.unwrap_or_else(|| panic!("trace {id} lost"));
        assert_eq!(spans.len() as u64, SPANS_PER_TRACE, "trace {id}, exactly once");
    }
    let (from, to) = (span_start - 1_000_000_000, now);
    let found =
        get_json(&client, format!("http://{api}/api/traces?service=crash-test&start={from}&end={to}&limit=10000"))
            .await;
    assert_eq!(found["traces"].as_array().map(Vec::len), Some(TRACES as usize), "search: {found}");
    let stats = get_json(&client, format!("http://{api}/api/stats")).await;
    assert_eq!(stats["spans"].as_u64(), Some(TRACES * SPANS_PER_TRACE), "no duplicate span: {stats}");
    let at = sample_time as f64 / 1e9;
    let query =
        get_json(&client, format!("http://{api}/prometheus/api/v1/query?query=count(crash_gauge)&time={at}")).await;
    assert_eq!(query["data"]["result"][0]["value"][1], (GAUGES * 2).to_string(), "every sample: {query}");
    let sum = get_json(&client, format!("http://{api}/prometheus/api/v1/query?query=sum(crash_gauge)&time={at}")).await;
    let want: u64 = (0..GAUGES).map(|n| 2 * n).sum();
    assert_eq!(sum["data"]["result"][0]["value"][1], want.to_string(), "each sample once: {sum}");
    let metrics = client.get(format!("http://{api}/metrics")).send().await.expect("GET").text().await.expect("text");
    assert!(metrics.contains(r#"sightline_object_store_requests_total{op="get""#), "reads are counted: {metrics}");
}

/// The bucket goes down under load: ingest goes on into the WAL and the
/// head, then the door refuses retryably (503) once the head is full; when
/// the bucket is back every acknowledged trace is there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bucket_outage_refuses_retryably_once_the_head_is_full_and_loses_nothing() {
    let mut s3 = S3ForTests::start();
    let prefix = unique_prefix("outage");
    let dir = tempfile::tempdir().expect("tempdir");
    let env = [
        ("SIGHTLINE_STORAGE__BACKEND", "s3"),
        ("SIGHTLINE_STORAGE__BUCKET", BUCKET),
        ("SIGHTLINE_STORAGE__ENDPOINT", s3.endpoint.as_str()),
        ("SIGHTLINE_STORAGE__PREFIX", prefix.as_str()),
        ("SIGHTLINE_STORAGE__ACCESS_KEY_ID", "sightline"),
        ("SIGHTLINE_STORAGE__SECRET_ACCESS_KEY", "sightline"),
        ("SIGHTLINE_STORAGE__CONNECT_TIMEOUT_SECONDS", "1"),
        ("SIGHTLINE_STORAGE__MAX_RETRIES", "1"),
        ("SIGHTLINE_STORAGE__RETRY_TIMEOUT_SECONDS", "2"),
        ("SIGHTLINE_STORAGE__BREAKER_FAILURES", "2"),
        ("SIGHTLINE_STORAGE__BREAKER_COOLDOWN_SECONDS", "1"),
        ("SIGHTLINE_SPANS__FLUSH_AGE_SECONDS", "1"),
        ("SIGHTLINE_SPANS__FLUSH_SPANS", "500"),
        ("SIGHTLINE_SPANS__MAX_UNFLUSHED_SPANS", "2000"),
    ];
    let mut server = common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
    server.drain_log();
    let (client, http, api) = (reqwest::Client::new(), server.http.clone(), server.api.clone());
    let span_start = common::now_nanos() - 600 * 1_000_000_000;
    let send = |n: u64| {
        let body = traces_request_at(n, SPANS_PER_TRACE, span_start + n).encode_to_vec();
        client
            .post(format!("http://{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
    };
    let mut acked = Vec::new();
    for n in 0..20 {
        assert_eq!(send(n).await.expect("sent").status(), 200);
        acked.push(n);
    }
    let unflushed = |client: reqwest::Client, api: String| async move {
        let m = client.get(format!("http://{api}/metrics")).send().await.ok()?.text().await.ok()?;
        m.contains("sightline_spans_unflushed 0").then_some(m)
    };
    common::eventually("the first traces in a part", || unflushed(client.clone(), api.clone())).await;
    s3.stop();
    // More spans of trace 0 (its first five are in a part in the bucket).
    let later: Vec<_> = (10..15).map(|i| common::otlp::span(&trace_id(0), i)).collect();
    let r = client
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(common::otlp::request_of(later).encode_to_vec())
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200);
    let zero: String = trace_id(0).iter().map(|b| format!("{b:02x}")).collect();
    let partial = get_json(&client, format!("http://{api}/api/traces/{zero}")).await;
    assert_eq!(partial["partial"], true, "the part in the bucket cannot be read: {partial}");
    assert_eq!(partial["spans"].as_array().map(Vec::len), Some(5), "the head's spans: {partial}");
    assert!(partial["partialReason"].as_str().is_some_and(|r| r.contains("part")), "{partial}");
    let jaeger = get_json(&client, format!("http://{api}/jaeger/api/traces/{zero}")).await;
    assert_eq!(jaeger["errors"][0]["code"], 503, "Jaeger's answer says it is partial: {jaeger}");
    assert_eq!(jaeger["data"][0]["spans"].as_array().map(Vec::len), Some(5), "{jaeger}");
    let mut refused = 0;
    for n in 20..2_000 {
        let status = send(n).await.expect("sent").status();
        match status.as_u16() {
            200 => acked.push(n),
            503 => {
                refused += 1;
                if refused >= 10 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => panic!("only 200 or a retryable 503 while the bucket is down, got {other}"),
        }
    }
    assert!(refused >= 10, "the door refuses once the head is full");
    assert!(acked.len() >= 200, "ingest went on into the head while the bucket was down: {} acked", acked.len());
    let metrics = client.get(format!("http://{api}/metrics")).send().await.expect("GET").text().await.expect("text");
    let failed_puts = [r#"{op="put",outcome="error"}"#, r#"{op="put",outcome="breaker_open"}"#];
    assert!(failed_puts.iter().any(|p| metrics.contains(p)), "flushes fail while the bucket is down: {metrics}");

    s3.resume();
    common::eventually("trace 0 whole again", || {
        let url = format!("http://{api}/api/traces/{zero}");
        let client = client.clone();
        async move {
            let whole = get_json(&client, url).await;
            (whole["spans"].as_array().map(Vec::len) == Some(10) && whole.get("partial").is_none()).then_some(())
        }
    })
    .await;
    for &n in &acked[1..] {
        let id: String = trace_id(n).iter().map(|b| format!("{b:02x}")).collect();
        let spans = common::trace_span_ids(&client, &api, &id).await.unwrap_or_else(|| panic!("trace {id} lost"));
        assert_eq!(spans.len() as u64, SPANS_PER_TRACE, "trace {id}, exactly once");
    }
    common::eventually("the head flushed into the bucket and the breaker closed", || {
        let unflushed = unflushed(client.clone(), api.clone());
        async move { unflushed.await.filter(|m| m.contains("sightline_object_store_breaker_state 0")) }
    })
    .await;
    assert_eq!(send(1_000_000).await.expect("sent").status(), 200);
}
