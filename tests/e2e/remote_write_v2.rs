//! Prometheus remote write 2.0 into the real server, as Prometheus 3 sends
//! it (no Prometheus 3 runs here: the requests are built from the published
//! `io.prometheus.write.v2.Request` schema): symbols resolved into labels,
//! the `X-Prometheus-Remote-Write-*-Written` answer headers, a created
//! timestamp stored as a zero sample, metadata and exemplars kept, and bad
//! requests refused.

use sightline_testkit as common;

use prost::Message;
use serde_json::Value;
use sightline_proto::prometheus::Sample;
use sightline_proto::prometheus::v2::{Exemplar, Histogram, Metadata, Request, TimeSeries};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Two float series (a counter with a created timestamp and an exemplar,
/// a gauge) and a native histogram series; `t0` in milliseconds.
fn request(t0: i64) -> Request {
    let symbols = [
        "",
        "__name__",
        "rw2_requests_total",
        "job",
        "api",
        "instance",
        "i-1",
        "trace_id",
        TRACE,
        "Requests served.",
        "rw2_temperature",
        "celsius",
        "rw2_latency_seconds",
    ];
    let counter = TimeSeries {
        labels_refs: vec![1, 2, 5, 6, 3, 4],
        samples: vec![Sample { value: 5.0, timestamp: t0 }, Sample { value: 8.0, timestamp: t0 + 15_000 }],
        histograms: Vec::new(),
        exemplars: vec![Exemplar { labels_refs: vec![7, 8], value: 0.25, timestamp: t0 + 15_000 }],
        metadata: Some(Metadata { r#type: 1, help_ref: 9, unit_ref: 0 }),
        created_timestamp: t0 - 30_000,
    };
    let gauge = TimeSeries {
        labels_refs: vec![1, 10, 3, 4],
        samples: vec![Sample { value: 21.5, timestamp: t0 }],
        metadata: Some(Metadata { r#type: 2, help_ref: 0, unit_ref: 11 }),
        ..Default::default()
    };
    let histogram = TimeSeries {
        labels_refs: vec![1, 12, 3, 4],
        histograms: vec![Histogram { timestamp: t0 }],
        metadata: Some(Metadata { r#type: 3, help_ref: 0, unit_ref: 0 }),
        ..Default::default()
    };
    Request { symbols: symbols.map(String::from).to_vec(), timeseries: vec![counter, gauge, histogram] }
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).expect("snappy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remote_write_2_0_is_stored_with_its_metadata_exemplars_and_created_timestamps() {
    let s = common::start(|_| {}).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/prometheus/api/v1/write", s.server.api_addr);
    let post = |content_type: &'static str, body: Vec<u8>| {
        client
            .post(url.clone())
            .header("content-type", content_type)
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "2.0.0")
            .body(body)
            .send()
    };
    const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let t0 = (now_ms as i64 - 120_000) / 15_000 * 15_000;
    let r = post(V2, snappy(&request(t0).encode_to_vec())).await.expect("POST");
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let written = |what: &str| r.headers().get(format!("x-prometheus-remote-write-{what}-written")).cloned();
    assert_eq!(written("samples").as_ref().map(|v| v.to_str().expect("text")), Some("3"));
    assert_eq!(written("histograms").as_ref().map(|v| v.to_str().expect("text")), Some("0"));
    assert_eq!(written("exemplars").as_ref().map(|v| v.to_str().expect("text")), Some("1"));

    let api = |path: String| format!("http://{}/prometheus/api/v1{path}", s.server.api_addr);
    let get = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.expect("GET").json::<Value>().await.expect("JSON") }
    };
    // The counter from zero at its created time, then its samples.
    let (start, end) = ((t0 - 30_000) / 1000, (t0 + 15_000) / 1000);
    let range = get(api(format!("/query_range?query=rw2_requests_total&start={start}&end={end}&step=15"))).await;
    let series = &range["data"]["result"][0];
    assert_eq!(series["metric"]["instance"], "i-1", "{range}");
    let values: Vec<(i64, String)> = series["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| (v[0].as_f64().expect("t") as i64, v[1].as_str().expect("v").to_owned()))
        .collect();
    let at = |t: i64, v: &str| (t / 1000, v.to_owned());
    assert_eq!(values, [at(t0 - 30_000, "0"), at(t0 - 15_000, "0"), at(t0, "5"), at(t0 + 15_000, "8")]);
    let gauge = get(api(format!("/query?query=rw2_temperature&time={}", t0 / 1000))).await;
    assert_eq!(gauge["data"]["result"][0]["value"][1], "21.5", "{gauge}");
    let histogram = get(api(format!("/query?query=rw2_latency_seconds&time={}", t0 / 1000))).await;
    assert_eq!(histogram["data"]["result"].as_array().map(Vec::len), Some(0), "native histograms are not stored");

    let meta = get(api("/metadata".into())).await;
    assert_eq!(meta["data"]["rw2_requests_total"][0]["type"], "counter", "{meta}");
    assert_eq!(meta["data"]["rw2_requests_total"][0]["help"], "Requests served.");
    assert_eq!(meta["data"]["rw2_temperature"][0]["type"], "gauge");
    assert_eq!(meta["data"]["rw2_temperature"][0]["unit"], "celsius");
    let ex = get(api(format!("/query_exemplars?query=rw2_requests_total&start={start}&end={end}"))).await;
    assert_eq!(ex["data"][0]["exemplars"][0]["labels"]["trace_id"], TRACE, "{ex}");
    assert_eq!(ex["data"][0]["exemplars"][0]["value"], "0.25");

    // Another message is 415; a reference past the symbols is 400 (not retried).
    let r = post("application/x-protobuf;proto=io.prometheus.write.v3.Request", snappy(b"")).await.expect("POST");
    assert_eq!(r.status(), 415);
    let mut bad = request(t0);
    bad.timeseries[0].labels_refs[1] = 99;
    let r = post(V2, snappy(&bad.encode_to_vec())).await.expect("POST");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("symbol reference 99"));
    s.server.shutdown().await.expect("shutdown");
}
