//! End-to-end log search through the HTTP API of a real server: lines sent
//! over OTLP/HTTP are found by the query language, paged with cursors,
//! counted over time and by service, linked to their trace; attributes
//! compared with numbers and matched by patterns; bad queries get
//! 400 with the parser's message and position.

use sightline_testkit as common;

use common::otlp::{logs_request, string_kv, traces_request};
use prost::Message;
use serde_json::Value;

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_are_searched_counted_paged_and_linked_to_traces() {
    let s = common::start(|c| c.logs.commit_interval_ms = 50).await;
    let client = reqwest::Client::new();
    let post = |path: &str, body: Vec<u8>| {
        client
            .post(format!("http://{}{path}", s.server.http_addr))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
    };
    // 30 lines in three requests one minute apart; the first request's lines
    // belong to trace 7, whose spans are sent too.
    let t0: u64 = 1_800_000_000_000_000_000;
    for n in 0..3u64 {
        let mut req = logs_request(n, 10, t0 + n * 60_000_000_000);
        if n == 0 {
            for (j, r) in req.resource_logs[0].scope_logs[0].log_records.iter_mut().enumerate() {
                r.trace_id = common::otlp::trace_id(7);
                r.span_id = vec![0, 0, 0, 0, 0, 0, 0xab, j as u8];
            }
        }
        if n == 2 {
            req.resource_logs[0].resource.as_mut().expect("resource").attributes =
                vec![string_kv("service.name", "other-service"), string_kv("k8s.pod.name", "web-7f9-eu")];
            req.resource_logs[0].scope_logs[0].log_records[0].severity_number = 17;
        }
        assert_eq!(post("/v1/logs", req.encode_to_vec()).await.expect("POST").status(), 200);
    }
    assert_eq!(post("/v1/traces", traces_request(7, 3).encode_to_vec()).await.expect("POST").status(), 200);

    let api = |q: &str| format!("http://{}{q}", s.server.api_addr);
    let range = format!("start={}&end={}", t0, t0 + 3 * 60_000_000_000);
    let hits = |v: &Value| v["hits"].as_array().cloned().expect("hits");
    let all = common::eventually("30 searchable lines", || {
        let (client, url) = (client.clone(), api(&format!("/api/logs?{range}&limit=100")));
        async move { Some(get(&client, url).await.1).filter(|v| hits(v).len() == 30) }
    })
    .await;
    assert_eq!(hits(&all)[0]["body"], "request 2 line 9", "newest first");
    assert!(all["cursor"].is_null(), "the page was not full");

    // The query language, through the URL.
    let count = |q: &'static str| {
        let (client, url) = (client.clone(), api(&format!("/api/logs?{range}&limit=100&query={}", urlencode(q))));
        async move {
            let (status, body) = get(&client, url).await;
            assert_eq!(status, 200, "{q}: {body}");
            hits(&body).len()
        }
    };
    assert_eq!(count("\"request 1\"").await, 10);
    assert_eq!(count("request AND line AND 3").await, 3);
    assert_eq!(count("service:other-service").await, 10);
    assert_eq!(count("severity>=ERROR").await, 1);
    assert_eq!(count("attributes.request:2 NOT attributes.line:0").await, 9);
    assert_eq!(count("line:4 OR line:5").await, 6);
    assert_eq!(count("serv*").await, 0);
    assert_eq!(count("trace_id:abababababababab0000000000000007").await, 10);
    assert_eq!(count("span_id:000000000000ab03").await, 1);
    assert_eq!(count("span_id:000000000000AB03 OR span:000000000000ab04").await, 2);
    // Numeric comparisons on attributes, and value patterns.
    assert_eq!(count("line>=7").await, 9);
    assert_eq!(count("attributes.line<2 attributes.request>0.5").await, 4);
    assert_eq!(count("line:>=8 OR request<=0").await, 14);
    assert_eq!(count("k8s.pod.name:web-???-eu").await, 10);
    assert_eq!(count("resource.k8s.pod.name:web-*").await, 10);
    assert_eq!(count("k8s.pod.name:web-?-eu").await, 0);

    // Highlights mark the matched words.
    let (_, one) = get(&client, api(&format!("/api/logs?{range}&limit=1&query=%22line%209%22"))).await;
    let hit = &hits(&one)[0];
    assert_eq!(hit["highlights"], serde_json::json!([[10, 16]]), "{hit}");
    assert_eq!(&hit["body"].as_str().expect("body")[10..16], "line 9");

    // Pages of 7, oldest first, cover every line once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let url = api(&format!("/api/logs?{range}&limit=7&order=oldest&cursor={cursor}"));
        let (status, page) = get(&client, url).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(hits(&page).iter().map(|h| h["body"].as_str().expect("body").to_owned()));
        match page["cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = (0..3).flat_map(|n| (0..10).map(move |j| format!("request {n} line {j}"))).collect();
    assert_eq!(seen, expected);

    // Counts over time, one bucket per minute, and the top services.
    let (_, h) = get(&client, api(&format!("/api/logs/histogram?{range}&step=1m"))).await;
    let counts: Vec<u64> =
        h["buckets"].as_array().expect("buckets").iter().map(|b| b["count"].as_u64().expect("n")).collect();
    assert_eq!(counts, [10, 10, 10, 0]);
    assert_eq!(h["total"], 30);
    let (_, top) = get(&client, api(&format!("/api/logs/top?{range}&field=service"))).await;
    assert_eq!(
        top["values"],
        serde_json::json!([{"value": "crash-test", "count": 20}, {"value": "other-service", "count": 10}])
    );
    // Top values of any attribute, of the lines a query finds.
    let (_, lines) = get(&client, api(&format!("/api/logs/top?{range}&field=line&limit=3"))).await;
    assert_eq!(
        lines["values"],
        serde_json::json!([{"value": "0", "count": 3}, {"value": "1", "count": 3}, {"value": "2", "count": 3}])
    );
    let url = api(&format!("/api/logs/top?{range}&field=attributes.request&query={}", urlencode("line>=5")));
    let (_, requests) = get(&client, url).await;
    assert_eq!(
        requests["values"],
        serde_json::json!([{"value": "0", "count": 5}, {"value": "1", "count": 5}, {"value": "2", "count": 5}])
    );
    let (_, pods) = get(&client, api(&format!("/api/logs/top?{range}&field=resource.k8s.pod.name"))).await;
    assert_eq!(pods["values"], serde_json::json!([{"value": "web-7f9-eu", "count": 10}]));
    let (status, bad) = get(&client, api(&format!("/api/logs/top?{range}&field=a%20b"))).await;
    assert_eq!(status, 400, "{bad}");
    let (_, sev) = get(&client, api(&format!("/api/logs/top?{range}&field=severity"))).await;
    assert_eq!(sev["values"], serde_json::json!([{"value": "INFO", "count": 29}, {"value": "ERROR", "count": 1}]));

    // A line's trace id opens its trace; the trace's lines come back oldest first.
    let trace = hits(&all).iter().find_map(|h| h["traceId"].as_str().map(str::to_owned)).expect("a traced line");
    let (status, t) = get(&client, api(&format!("/api/traces/{trace}"))).await;
    assert_eq!(status, 200);
    assert_eq!(t["spans"].as_array().map(Vec::len), Some(3));
    let (_, logs) = get(&client, api(&format!("/api/traces/{trace}/logs"))).await;
    let bodies: Vec<_> = logs["logs"].as_array().expect("logs").iter().map(|l| l["body"].clone()).collect();
    assert_eq!(bodies.len(), 10);
    assert_eq!(bodies[0], "request 0 line 0");

    // Bad queries: 400 with the message and the position, never a 500.
    for (q, position) in [("(a OR b", 7), ("severity>=LOUD", 10), ("\"open", 0), ("a AND", 5), ("trace_id:xyz", 9)] {
        let (status, body) = get(&client, api(&format!("/api/logs?query={}", urlencode(q)))).await;
        assert_eq!(status, 400, "{q}");
        assert_eq!(body["position"], position, "{q}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{q}: {body}");
        let (status, _) = get(&client, api(&format!("/api/logs/histogram?query={}", urlencode(q)))).await;
        assert_eq!(status, 400, "histogram {q}");
    }
    for bad in ["/api/logs?cursor=nope", "/api/logs?order=sideways", "/api/logs/top?field=body", "/api/logs?limit=0"] {
        assert_eq!(get(&client, api(bad)).await.0, 400, "{bad}");
    }
    s.server.shutdown().await.expect("shutdown");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
