//! End-to-end metrics through the real server: OTLP points in, read back
//! through the Prometheus HTTP API (GET and form POST, every endpoint, the
//! error envelope), and `/metrics` exposing the ingested series in a form
//! that `promtool check metrics` accepts.

use sightline_testkit as common;

use common::otlp::string_kv;
use prost::Message;
use serde_json::Value;
use sightline_proto::otlp::ExportMetricsServiceRequest;
use sightline_proto::otlp::metrics::{
    Exemplar, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    exemplar, metric, number_data_point,
};
use sightline_proto::otlp::resource::Resource;

fn request(t_nanos: u64) -> ExportMetricsServiceRequest {
    let point = |v: f64, attrs| NumberDataPoint {
        time_unix_nano: t_nanos,
        value: Some(number_data_point::Value::AsDouble(v)),
        attributes: attrs,
        ..Default::default()
    };
    let metrics = vec![
        Metric {
            name: "orders".into(),
            description: "Orders placed".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![
                    point(5.0, vec![string_kv("route", "/a")]),
                    point(7.0, vec![string_kv("route", "/b")]),
                ],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "latency".into(),
            unit: "s".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: t_nanos,
                    count: 4,
                    sum: Some(2.0),
                    explicit_bounds: vec![0.1, 1.0],
                    bucket_counts: vec![1, 2, 1],
                    exemplars: vec![Exemplar {
                        time_unix_nano: t_nanos,
                        trace_id: vec![0xab; 16],
                        span_id: vec![0xcd; 8],
                        value: Some(exemplar::Value::AsDouble(0.3)),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
        Metric {
            name: "temperature".into(),
            data: Some(metric::Data::Gauge(Gauge { data_points: vec![point(21.5, vec![])] })),
            ..Default::default()
        },
    ];
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", "shop"),
                    string_kv("service.instance.id", "i-1"),
                    string_kv("host.name", "h1"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics { metrics, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}

/// A summary and an exponential histogram, the types `request` lacks.
fn every_other_type(t_nanos: u64) -> ExportMetricsServiceRequest {
    use sightline_proto::otlp::metrics::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Summary, SummaryDataPoint,
        exponential_histogram_data_point, summary_data_point,
    };
    let metrics = vec![
        Metric {
            name: "rpc.duration".into(),
            unit: "s".into(),
            data: Some(metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: t_nanos,
                    count: 10,
                    sum: 2.5,
                    quantile_values: vec![summary_data_point::ValueAtQuantile { quantile: 0.5, value: 0.2 }],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        },
        Metric {
            name: "payload".into(),
            unit: "By".into(),
            data: Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint {
                    time_unix_nano: t_nanos,
                    count: 3,
                    sum: Some(300.0),
                    scale: 0,
                    positive: Some(exponential_histogram_data_point::Buckets { offset: 6, bucket_counts: vec![1, 2] }),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
    ];
    let mut r = request(t_nanos);
    r.resource_metrics[0].scope_metrics[0].metrics = metrics;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_through_the_prometheus_api_and_metrics_endpoint() {
    let s = common::start(|_| {}).await;
    let client = reqwest::Client::new();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let body = request(now.as_nanos() as u64).encode_to_vec();
    let r = common::post_protobuf(&client, &s.otlp_http_url("metrics"), body).await;
    assert_eq!(r.status(), 200);

    let api = |path: &str| format!("http://{}/prometheus/api/v1{path}", s.server.api_addr);
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.expect("GET");
            (r.status().as_u16(), r.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, sum) = get(api("/query?query=sum(orders_total)")).await;
    assert_eq!(status, 200);
    assert_eq!(sum["data"]["resultType"], "vector");
    assert_eq!(sum["data"]["result"][0]["value"][1], "12");

    // A form POST, as Grafana sends it.
    let r = client
        .post(api("/query"))
        .form(&[("query", "histogram_quantile(0.5, latency_seconds_bucket)")])
        .send()
        .await
        .expect("POST query");
    let q: Value = r.json().await.expect("JSON");
    assert_eq!(q["data"]["result"][0]["metric"], serde_json::json!({ "instance": "i-1", "job": "shop" }));
    assert_eq!(q["data"]["result"][0]["value"][1], "0.55");

    let start = now.as_secs() - 60;
    let (_, range) =
        get(api(&format!("/query_range?query=temperature&start={start}&end={}&step=15s", start + 120))).await;
    assert_eq!(range["data"]["resultType"], "matrix");
    let values = range["data"]["result"][0]["values"].as_array().expect("values");
    assert!(!values.is_empty() && values.iter().all(|v| v[1] == "21.5"), "{range}");

    let (_, series) = get(api("/series?match[]=orders_total&match[]=temperature")).await;
    assert_eq!(series["data"].as_array().map(Vec::len), Some(3));
    let (_, labels) = get(api("/labels")).await;
    for name in ["__name__", "host_name", "instance", "job", "le", "route"] {
        assert!(labels["data"].as_array().expect("labels").iter().any(|l| l == name), "{name}: {labels}");
    }
    let (_, values) = get(api("/label/route/values")).await;
    assert_eq!(values["data"], serde_json::json!(["/a", "/b"]));
    let (_, meta) = get(api("/metadata")).await;
    assert_eq!(meta["data"]["orders_total"][0]["type"], "counter");
    assert_eq!(meta["data"]["orders_total"][0]["help"], "Orders placed");
    let (status, info) = get(api("/status/buildinfo")).await;
    assert_eq!(status, 200);
    assert!(info["data"]["version"].is_string());

    // The histogram's exemplar, with its trace, on the bucket that counts it.
    let (_, ex) =
        get(api(&format!("/query_exemplars?query=latency_seconds_bucket&start={start}&end={}", start + 120))).await;
    assert_eq!(ex["data"].as_array().map(Vec::len), Some(1), "{ex}");
    assert_eq!(ex["data"][0]["seriesLabels"]["le"], "1");
    assert_eq!(ex["data"][0]["exemplars"][0]["labels"]["trace_id"], "abababababababababababababababab");
    assert_eq!(ex["data"][0]["exemplars"][0]["value"], "0.3");

    // Prometheus's error envelope.
    let (status, err) = get(api("/query?query=sum(")).await;
    assert_eq!(status, 400);
    assert_eq!(err["status"], "error");
    assert_eq!(err["errorType"], "bad_data");
    let (status, _) = get(api(&format!("/query_range?query=up&start={start}&end={start}&step=0"))).await;
    assert_eq!(status, 400);
    let (status, _) = get(api("/series")).await;
    assert_eq!(status, 400, "series needs match[]");

    // /metrics: Sightline's own metrics and the ingested series, valid for promtool.
    let text = client
        .get(format!("http://{}/metrics", s.server.api_addr))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    assert!(text.contains("orders_total{instance=\"i-1\",job=\"shop\",route=\"/a\"} 5"), "{text}");
    assert!(text.contains("target_info{host_name=\"h1\",instance=\"i-1\",job=\"shop\"} 1"), "{text}");
    assert!(text.contains("# TYPE latency_seconds histogram"));
    promtool_accepts(&text);
    s.server.shutdown().await.expect("shutdown");
}

/// `promtool check metrics` reads `text` without an error.
fn promtool_accepts(text: &str) {
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (install Debian's prometheus package; scripts/test does)");
    std::io::Write::write_all(&mut check.stdin.take().expect("stdin"), text.as_bytes()).expect("write");
    let out = check.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // On a failure, the lines around the one promtool names.
    let line = said.split("in line ").nth(1).and_then(|l| l.split(':').next()?.parse::<usize>().ok()).unwrap_or(0);
    let around: Vec<&str> = text.lines().skip(line.saturating_sub(8)).take(10).collect();
    assert!(out.status.success(), "promtool check metrics: {said}\n{}", around.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_remote_writes_into_sightline() {
    let s = common::start(|c| c.spanmetrics.flush_interval_seconds = 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Prometheus scrapes itself every second and remote-writes to Sightline,
    // and scrapes Sightline's /metrics (OpenMetrics, as it asks by default),
    // which then holds the remote-written series.
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{{port}}']\n  - job_name: sightline\n    static_configs:\n      - targets: ['{}']\nremote_write:\n  - url: http://{}/prometheus/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n",
        s.server.api_addr, s.server.api_addr
    );
    let prometheus = common::prometheus::start(dir.path(), &config).await;
    let client = reqwest::Client::new();
    let query = |q: &str| {
        let (client, url) = (client.clone(), format!("http://{}/prometheus/api/v1/query", s.server.api_addr));
        let q = q.to_owned();
        async move {
            let body: Value = client.get(url).query(&[("query", q)]).send().await.ok()?.json().await.ok()?;
            body["data"]["result"].as_array().cloned()
        }
    };
    let up = common::eventually("up{job=\"self\"} written by Prometheus", || {
        let result = query("up{job=\"self\"}");
        async move { result.await.filter(|r| !r.is_empty()) }
    })
    .await;
    assert_eq!(up[0]["value"][1], "1");
    assert_eq!(up[0]["metric"]["instance"].as_str().map(|i| i.starts_with("127.0.0.1:")), Some(true));
    // Series arrive with their Prometheus names and labels untouched.
    let count = query("count({job=\"self\"})").await.expect("count");
    let n: f64 = count[0]["value"][1].as_str().expect("n").parse().expect("number");
    assert!(n > 50.0, "only {n} series");
    let build = query("prometheus_build_info").await.expect("build info");
    assert_eq!(build[0]["metric"]["version"].as_str().map(|v| v.starts_with("2.")), Some(true));
    assert!(query("target_info").await.expect("result").is_empty(), "remote write adds no target_info");

    // Every other way in too: OTLP points of every type, and spans (whose
    // derived series the connector writes every second).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    for body in [request(now).encode_to_vec(), every_other_type(now).encode_to_vec()] {
        let r = common::post_protobuf(&client, &s.otlp_http_url("metrics"), body).await;
        assert_eq!(r.status(), 200);
    }
    let spans = common::otlp::traces_request_at(1, 3, now - 1_000_000_000).encode_to_vec();
    let r = common::post_protobuf(&client, &s.otlp_http_url("traces"), spans).await;
    assert_eq!(r.status(), 200);
    common::eventually("span-derived series", || {
        let result = query("traces_spanmetrics_calls_total");
        async move { result.await.filter(|r| !r.is_empty()) }
    })
    .await;

    // /metrics now serves series whose type nobody sent: valid for promtool
    // in the text format, and for Prometheus's OpenMetrics scrape.
    let text = client.get(format!("http://{}/metrics", s.server.api_addr)).send().await.expect("GET");
    assert_eq!(text.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = text.text().await.expect("text");
    assert!(text.contains("# TYPE prometheus_build_info untyped"), "remote-written families are untyped");
    promtool_accepts(&text);
    let om = client
        .get(format!("http://{}/metrics", s.server.api_addr))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .send()
        .await
        .expect("GET");
    assert_eq!(om.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let om = om.text().await.expect("text");
    assert!(om.ends_with("# EOF\n") && om.contains("# TYPE prometheus_build_info unknown"), "{om}");
    for l in om.lines().filter(|l| l.contains("spanmetrics_calls")).take(6) {
        eprintln!("DEBUG {l}");
    }
    // Prometheus stores, from its scrape of Sightline, a series that only
    // remote write put there: the whole OpenMetrics page parsed.
    common::eventually("Prometheus scrapes the remote-written series back from Sightline", || {
        let (client, url) = (client.clone(), format!("{}/api/v1/query", prometheus.url));
        async move {
            let q = [("query", "prometheus_build_info{job=\"sightline\", exported_job=\"self\"}")];
            let body: Value = client.get(url).query(&q).send().await.ok()?.json().await.ok()?;
            body["data"]["result"].as_array().filter(|r| !r.is_empty()).map(|_| ())
        }
    })
    .await;
    // And every family of every way in came through that scrape.
    for family in [
        "orders_total",
        "latency_seconds_bucket",
        "temperature",
        "rpc_duration_seconds",
        "payload_bytes_bucket",
        "target_info",
        "traces_spanmetrics_calls_total",
        "traces_spanmetrics_latency_bucket",
    ] {
        common::eventually(&format!("Prometheus scrapes {family} from Sightline"), || {
            let (client, url) = (client.clone(), format!("{}/api/v1/query", prometheus.url));
            let q = format!("count({family}{{job=\"sightline\"}})");
            async move {
                let body: Value = client.get(url).query(&[("query", q)]).send().await.ok()?.json().await.ok()?;
                body["data"]["result"].as_array().filter(|r| !r.is_empty()).map(|_| ())
            }
        })
        .await;
    }
    let targets: Value = client
        .get(format!("{}/api/v1/targets", prometheus.url))
        .send()
        .await
        .expect("targets")
        .json()
        .await
        .expect("JSON");
    let target =
        targets["data"]["activeTargets"].as_array().and_then(|t| t.iter().find(|t| t["labels"]["job"] == "sightline"));
    assert_eq!(target.map(|t| t["health"].clone()), Some(Value::from("up")), "{targets}");

    // promtool, as a user would query Sightline from the command line.
    let out = std::process::Command::new("promtool")
        .args(["query", "instant", &format!("http://{}/prometheus", s.server.api_addr), "up{job=\"self\"}"])
        .output()
        .expect("promtool runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && printed.contains("up{") && printed.contains("=> 1 @"), "promtool query: {printed}");

    // Bad bodies are refused without a retry.
    let r = client
        .post(format!("http://{}/prometheus/api/v1/write", s.server.api_addr))
        .header("content-encoding", "snappy")
        .body("not snappy")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 400);
    let r = client
        .post(format!("http://{}/prometheus/api/v1/write", s.server.api_addr))
        .body("x")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 415);
    s.server.shutdown().await.expect("shutdown");
}
