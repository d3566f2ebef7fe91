//! Query guard rails through the real server: a too-long time range, too
//! many series, a query past its deadline, and too many queries at once
//! for one tenant; each refused with a message that names the setting.

use sightline_testkit as common;

use common::TestServer;
use sightline_storage::metrics::{Labels, Sample};

/// A query that evaluates about 10^8 steps: only the deadline stops it.
const SLOW: &str = "max_over_time(max_over_time(up[10s:1ms])[10s:1ms])";

async fn start(configure: impl FnOnce(&mut sightline_query::limits::QueryLimits)) -> TestServer {
    let s = common::start(|c| configure(&mut c.query)).await;
    let tenant = common::tenant("default");
    let samples = (0..5)
        .map(|i| Sample {
            labels: Labels::new(vec![("__name__".into(), "up".into()), ("instance".into(), format!("host-{i}"))]),
            t: 1_700_000_000_000,
            v: 1.0,
        })
        .collect();
    s.server.metrics.append(&tenant, samples, Vec::new());
    s
}

async fn get(s: &TestServer, path: &str, tenant: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().get(s.api_url(path)).header("X-Scope-OrgID", tenant).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_range_longer_than_the_limit_is_refused_on_every_api() {
    let s = start(|l| l.max_range_hours = 1).await;
    let (start, end) = (1_700_000_000u64, 1_700_000_000u64 + 7200);
    let paths = [
        format!("/api/traces?start={start}000000000&end={end}000000000"),
        format!("/api/logs?query=x&start={start}000000000&end={end}000000000"),
        format!("/jaeger/api/traces?service=x&start={start}000000&end={end}000000"),
        format!("/prometheus/api/v1/query_range?query=up&start={start}&end={end}&step=60"),
    ];
    for path in &paths {
        let (status, body) = get(&s, path, "default").await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.to_string().contains("query.max_range_hours"), "{path}: {body}");
    }
    // Within the limit, the same query is answered.
    let inside = format!("/prometheus/api/v1/query_range?query=up&start={start}&end={}&step=60", start + 3600);
    assert_eq!(get(&s, &inside, "default").await.0, 200);
}

#[tokio::test]
async fn a_query_reading_too_many_series_is_refused() {
    let s = start(|l| l.max_series = 3).await;
    let (status, body) = get(&s, "/prometheus/api/v1/query?query=up&time=1700000000", "default").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert!(body["error"].as_str().unwrap_or("").contains("query.max_series"), "{body}");
    let narrow = r#"/prometheus/api/v1/query?query=up{instance="host-1"}&time=1700000000"#;
    let (status, body) = get(&s, narrow, "default").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_query_past_its_deadline_is_cancelled() {
    let s = start(|l| l.timeout_seconds = 1).await;
    let (status, body) = get(&s, &format!("/prometheus/api/v1/query?query={SLOW}&time=1700000000"), "default").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errorType"], "timeout");
    assert!(body["error"].as_str().unwrap_or("").contains("query.timeout_seconds"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_over_its_concurrent_queries_is_told_to_retry() {
    let s = start(|l| {
        l.max_concurrent_per_tenant = 1;
        l.timeout_seconds = 5;
    })
    .await;
    let slow_url = s.api_url(&format!("/prometheus/api/v1/query?query={SLOW}&time=1700000000"));
    // The slow query itself is sent again if one of the probes below held
    // the tenant's only slot at that moment.
    let slow = tokio::spawn(async move {
        loop {
            let status = reqwest::Client::new().get(&slow_url).send().await.expect("GET").status().as_u16();
            if status != 429 {
                return status;
            }
        }
    });
    // Until the slow query ends, the tenant's second query is refused.
    let refused = common::eventually("a refusal while the slow query runs", || async {
        let (status, body) = get(&s, "/prometheus/api/v1/query?query=up&time=1700000000", "default").await;
        (status == 429).then_some(body)
    })
    .await;
    assert!(refused["error"].as_str().unwrap_or("").contains("query.max_concurrent_per_tenant"), "{refused}");
    // Another tenant is not held up.
    assert_eq!(get(&s, "/prometheus/api/v1/query?query=up&time=1700000000", "other").await.0, 200);
    assert_eq!(slow.await.expect("slow query"), 503, "the slow query ends at its deadline");
    // The slot is free again.
    assert_eq!(get(&s, "/prometheus/api/v1/query?query=up&time=1700000000", "default").await.0, 200);
}
