//! Loki's push API through the real server: the protobuf form (snappy, as
//! Promtail, Alloy and Fluent Bit send it) and the JSON form (gzip too),
//! lines found by the log search with their stream labels as resource
//! attributes, structured metadata as attributes and a severity from
//! `level`; Loki's answers to bad requests and to a tenant over its rate.
//! `python-logging-loki`'s lines are read back through Loki's query API too.

use std::io::Write as _;

use prost::Message;
use serde_json::Value;
use sightline_proto::loki::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};
use sightline_testkit as common;

fn url(server: &common::TestServer) -> String {
    server.api_url("/loki/api/v1/push")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_pushed_as_loki_clients_push_them_are_searchable() {
    let server = common::start(|_| {}).await;
    let client = reqwest::Client::new();
    let now = common::now_nanos();

    // Protobuf, snappy-compressed, no content type (Promtail's way).
    let entry = |i: u64, line: &str, meta: Vec<LabelPairAdapter>| EntryAdapter {
        timestamp: Some(Timestamp {
            seconds: ((now + i) / 1_000_000_000) as i64,
            nanos: ((now + i) % 1_000_000_000) as i32,
        }),
        line: line.into(),
        structured_metadata: meta,
    };
    let request = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{app="checkout", env="prod", level="info"}"#.into(),
            entries: vec![
                entry(1, "order 1 placed", vec![]),
                entry(
                    2,
                    "card declined for order 2",
                    vec![
                        LabelPairAdapter { name: "level".into(), value: "error".into() },
                        LabelPairAdapter { name: "order_id".into(), value: "2".into() },
                    ],
                ),
            ],
            hash: 0,
        }],
    };
    let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).expect("snappy");
    let answer = client.post(url(&server)).body(body).send().await.expect("push");
    assert_eq!(answer.status(), 204);

    // JSON, gzip-compressed, with structured metadata (Loki 3's form).
    let json = serde_json::json!({"streams": [{
        "stream": {"service_name": "billing", "host": "b-1"},
        "values": [[(now + 3).to_string(), "invoice 7 sent", {"invoice": "7"}], [(now + 4).to_string(), "invoice 8 sent"]],
    }]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(json.to_string().as_bytes()).expect("gzip");
    let answer = client
        .post(url(&server))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("push");
    assert_eq!(answer.status(), 204);

    // Stream labels are resource attributes (app → service.name, as Loki 3
    // discovers it); a `level` makes the severity.
    let checkout = common::log_hits(&server, "service:checkout", 2).await;
    let declined = checkout.iter().find(|h| h["body"] == "card declined for order 2").expect("the declined line");
    assert_eq!(declined["severity"], "ERROR");
    assert_eq!(declined["attributes"]["order_id"], "2");
    assert_eq!(declined["resource"]["env"], "prod");
    assert_eq!(declined["resource"]["app"], "checkout");
    assert_eq!(declined["timeUnixNano"], (now + 2).to_string());
    let placed = checkout.iter().find(|h| h["body"] == "order 1 placed").expect("the placed line");
    assert_eq!(placed["severity"], "INFO", "the stream's level");
    assert_eq!(common::log_hits(&server, "service:checkout severity>=ERROR", 1).await.len(), 1);
    let billing = common::log_hits(&server, "service:billing", 2).await;
    assert!(billing.iter().any(|h| h["attributes"]["invoice"] == "7" && h["resource"]["host"] == "b-1"));
    assert!(billing.iter().all(|h| h["resource"].get("service_name").is_none()), "service_name becomes service.name");
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_get_loki_s_answers() {
    let server = common::start_rate_limited(1, 2).await;
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, content_type: &'static str| {
        let client = client.clone();
        let url = url(&server);
        async move { client.post(url).header("content-type", content_type).body(body).send().await.expect("push") }
    };
    let snappy = |m: PushRequest| snap::raw::Encoder::new().compress_vec(&m.encode_to_vec()).expect("snappy");
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"not snappy".to_vec(), "application/x-protobuf", 400, "invalid snappy"),
        (
            snap::raw::Encoder::new().compress_vec(b"\xff\xff").expect("snappy"),
            "application/x-protobuf",
            400,
            "invalid push request protobuf",
        ),
        (
            snappy(PushRequest { streams: vec![StreamAdapter { labels: "app=x".into(), entries: vec![], hash: 0 }] }),
            "application/x-protobuf",
            400,
            "invalid stream labels",
        ),
        (b"{\"streams\": 3}".to_vec(), "application/json", 400, "invalid JSON push request"),
        (br#"{"streams":[{"stream":{},"values":[[1,"x"]]}]}"#.to_vec(), "application/json", 400, "Unix nanoseconds"),
        (b"x".to_vec(), "text/plain", 415, "content type"),
    ];
    for (body, content_type, status, message) in cases {
        let answer = post(body, content_type).await;
        assert_eq!(answer.status(), status, "{message}");
        assert!(answer.text().await.expect("text").contains(message), "{message}");
    }
    // Over the tenant's rate: 429 with Retry-After, which Loki's clients retry.
    let lines = |n: u64| {
        let values: Vec<Value> =
            (0..n).map(|i| serde_json::json!([(common::now_nanos() + i).to_string(), "x"])).collect();
        serde_json::json!({"streams": [{"stream": {"app": "a"}, "values": values}]}).to_string().into_bytes()
    };
    // (A full bucket admits one request larger than the burst; the next waits.)
    assert_eq!(post(lines(5), "application/json").await.status(), 204);
    let answer = post(lines(5), "application/json").await;
    assert_eq!(answer.status(), 429);
    assert!(answer.headers().contains_key("retry-after"));
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_logging_loki_ships_into_sightline() {
    let server = common::start(|_| {}).await;
    let script = format!(
        r#"
import logging, logging_loki
handler = logging_loki.LokiHandler(url="{}", tags={{"application": "pyshop"}}, version="1")
log = logging.getLogger("shop")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.warning("stock low for sku 12")
log.error("payment failed for order 9", extra={{"tags": {{"order": "9"}}}})
"#,
        url(&server)
    );
    common::run_python(&script, &[]);
    let lines = common::log_hits(&server, "service:pyshop", 2).await;
    let error = lines.iter().find(|h| h["body"] == "payment failed for order 9").expect("the error line");
    assert_eq!(error["severity"], "ERROR");
    assert_eq!(error["resource"]["order"], "9");
    assert_eq!(error["resource"]["logger"], "shop");
    let warning = lines.iter().find(|h| h["body"] == "stock low for sku 12").expect("the warning");
    assert_eq!(warning["severity"], "WARN");
    // And through Loki's query API, as Grafana would ask for the error lines.
    let found = common::get_json(
        &server.api_url("/loki/api/v1/query_range"),
        &[("query", r#"{application="pyshop"} |= "failed" | detected_level="error""#), ("limit", "10")],
        None,
    )
    .await
    .expect("query_range");
    let stream = &found["data"]["result"][0];
    assert_eq!(found["data"]["result"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(stream["stream"]["order"], "9");
    assert_eq!(stream["values"][0][1], "payment failed for order 9");
    server.server.shutdown().await.expect("shutdown");
}
