//! PromQL conformance: the same seeded samples go into a real Prometheus
//! (Debian's `prometheus` package, a TSDB block built with `promtool tsdb
//! create-blocks-from openmetrics`) and into Sightline; a corpus of
//! expressions is evaluated by both, as instant queries at several times
//! and as range queries, and the answers must agree within floating-point
//! tolerance. Differences that are known and accepted are listed in
//! `KNOWN_DIFFERENCES` with the reason.

use sightline_testkit as common;

use sightline_loadgen::Rng;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;
use sightline_storage::metrics::{Labels, Sample};

const BASE: i64 = 1_700_000_000; // seconds
const STEP: i64 = 15;
const POINTS: i64 = 240; // one hour

/// Expressions whose answers differ from Prometheus 2.42, and why.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// A series of the data set: its labels and `(t_secs, value)` samples.
type SeriesData = (Vec<(String, String)>, Vec<(i64, f64)>);

/// The seeded data set: `(labels, [(t_secs, value)])`.
fn data() -> Vec<SeriesData> {
    let mut rng = Rng(0x5eed);
    let mut out = Vec::new();
    let l = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
    for instance in ["a", "b", "c"] {
        for code in ["200", "500"] {
            let mut v = 0.0;
            let mut points = Vec::new();
            for i in 0..POINTS {
                v += rng.below(if code == "200" { 50 } else { 5 }) as f64;
                if instance == "b" && code == "200" && i == 120 {
                    v = 3.0; // a counter reset
                }
                points.push((BASE + i * STEP, v));
            }
            let labels =
                l(&[("__name__", "http_requests_total"), ("job", "api"), ("instance", instance), ("code", code)]);
            out.push((labels, points));
        }
        let mut mem = 1000.0 + rng.below(1000) as f64;
        let points = (0..POINTS)
            .map(|i| {
                mem += rng.below(200) as f64 - 100.0;
                (BASE + i * STEP, mem)
            })
            .collect();
        out.push((l(&[("__name__", "memory_bytes"), ("job", "node"), ("instance", instance)]), points));
        let version = if instance == "c" { "2.0" } else { "1.0" };
        let info = (0..POINTS).map(|i| (BASE + i * STEP, 1.0)).collect();
        out.push((l(&[("__name__", "build_info"), ("instance", instance), ("version", version)]), info));
        let mut counts = [0.0f64; 4];
        let mut sum = 0.0;
        let mut buckets: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 4];
        let mut sums = Vec::new();
        for i in 0..POINTS {
            for _ in 0..rng.below(10) {
                let obs = rng.below(1500) as f64 / 1000.0;
                sum += obs;
                for (b, le) in [0.1, 0.5, 1.0, f64::INFINITY].iter().enumerate() {
                    if obs <= *le {
                        counts[b] += 1.0;
                    }
                }
            }
            for b in 0..4 {
                buckets[b].push((BASE + i * STEP, counts[b]));
            }
            sums.push((BASE + i * STEP, sum));
        }
        for (b, le) in ["0.1", "0.5", "1", "+Inf"].iter().enumerate() {
            let labels = l(&[("__name__", "request_seconds_bucket"), ("instance", instance), ("le", le)]);
            out.push((labels, buckets[b].clone()));
        }
        out.push((l(&[("__name__", "request_seconds_sum"), ("instance", instance)]), sums));
        out.push((l(&[("__name__", "request_seconds_count"), ("instance", instance)]), buckets[3].clone()));
    }
    // Negative values, and a series with a 10-minute gap.
    let temps = (0..POINTS).map(|i| (BASE + i * STEP, (i % 40) as f64 - 20.5)).collect();
    out.push((l(&[("__name__", "temperature"), ("room", "cellar")]), temps));
    let gappy = (0..POINTS).filter(|i| !(100..140).contains(i)).map(|i| (BASE + i * STEP, i as f64)).collect();
    out.push((l(&[("__name__", "gappy"), ("job", "x")]), gappy));
    out
}

fn corpus() -> Vec<String> {
    let mut c: Vec<String> = [
        "http_requests_total",
        r#"http_requests_total{code="200"}"#,
        r#"http_requests_total{code!="200"}"#,
        r#"http_requests_total{instance=~"a|b"}"#,
        r#"http_requests_total{instance!~"a.*"}"#,
        r#"{__name__=~"memory.*"}"#,
        "memory_bytes offset 5m",
        "memory_bytes offset 30s",
        "gappy",
        "temperature",
        "sum(http_requests_total)",
        "sum by (code) (http_requests_total)",
        "sum without (instance) (http_requests_total)",
        "avg by (job) (memory_bytes)",
        "min(memory_bytes)",
        "max by (instance) (memory_bytes)",
        "count(http_requests_total)",
        "count by (code) (http_requests_total)",
        "group by (job) (http_requests_total)",
        "stddev(memory_bytes)",
        "stdvar(memory_bytes)",
        "quantile(0.9, memory_bytes)",
        "quantile by (code) (0.5, http_requests_total)",
        "topk(2, memory_bytes)",
        "bottomk(1, memory_bytes)",
        "topk by (code) (1, http_requests_total)",
        r#"count_values("value", build_info)"#,
        "memory_bytes + 1",
        "memory_bytes - memory_bytes offset 1m",
        "memory_bytes * 2",
        "memory_bytes / 1024",
        "memory_bytes % 7",
        "memory_bytes ^ 0.5",
        "2 * memory_bytes",
        "-memory_bytes",
        "memory_bytes > 1000",
        "memory_bytes > bool 1000",
        "1000 < memory_bytes",
        "memory_bytes == memory_bytes",
        "memory_bytes != bool 0",
        "temperature <= 0",
        "http_requests_total / ignoring(code) group_left sum by (instance, job) (http_requests_total)",
        r#"http_requests_total{code="500"} / on(instance) http_requests_total{code="200"}"#,
        r#"http_requests_total{code="500"} / ignoring(code) http_requests_total{code="200"}"#,
        "memory_bytes * on(instance) group_left(version) build_info",
        "build_info * on(instance) group_right(version) memory_bytes",
        "memory_bytes and on(instance) build_info{version=\"1.0\"}",
        "memory_bytes unless on(instance) build_info{version=\"1.0\"}",
        "memory_bytes or temperature",
        "sum(memory_bytes) / count(memory_bytes)",
        "histogram_quantile(0.5, rate(request_seconds_bucket[5m]))",
        "histogram_quantile(0.9, sum by (le) (rate(request_seconds_bucket[5m])))",
        "histogram_quantile(0.99, sum by (instance, le) (increase(request_seconds_bucket[10m])))",
        "rate(request_seconds_sum[5m]) / rate(request_seconds_count[5m])",
        "abs(temperature)",
        "ceil(temperature)",
        "floor(temperature)",
        "round(temperature)",
        "round(memory_bytes, 10)",
        "sqrt(memory_bytes)",
        "exp(temperature / 10)",
        "ln(memory_bytes)",
        "log2(memory_bytes)",
        "log10(memory_bytes)",
        "sgn(temperature)",
        "clamp(temperature, -5, 5)",
        "clamp_min(temperature, 0)",
        "clamp_max(temperature, 0)",
        "timestamp(memory_bytes)",
        "time()",
        "vector(1)",
        "scalar(sum(memory_bytes))",
        "absent(nonexistent)",
        r#"absent(nonexistent{job="x"})"#,
        "absent(memory_bytes)",
        "absent_over_time(gappy[5m])",
        r#"label_replace(memory_bytes, "host", "$1-host", "instance", "(.*)")"#,
        r#"label_join(build_info, "iv", "-", "instance", "version")"#,
        "sort(memory_bytes)",
        "sort_desc(memory_bytes)",
        "hour()",
        "minute(vector(1700001234))",
        "day_of_week()",
        "month()",
        "year()",
        "days_in_month()",
        "max_over_time(rate(http_requests_total[1m])[10m:1m])",
        "avg_over_time(memory_bytes[10m:2m])",
        "rate(http_requests_total[5m] offset 10m)",
        "sum(rate(http_requests_total[5m])) by (instance)",
        "predict_linear(memory_bytes[10m], 600)",
        "deriv(memory_bytes[10m])",
        r#"quantile_over_time(0.75, memory_bytes[10m])"#,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for f in ["rate", "irate", "increase", "delta", "idelta", "resets", "changes"] {
        for r in ["1m", "5m"] {
            c.push(format!("{f}(http_requests_total[{r}])"));
        }
    }
    for f in ["avg", "min", "max", "sum", "count", "stddev", "stdvar", "last", "present"] {
        c.push(format!("{f}_over_time(memory_bytes[5m])"));
        c.push(format!("{f}_over_time(gappy[3m])"));
    }
    c
}

/// Writes the data as OpenMetrics and builds a Prometheus TSDB block from it.
fn build_block(dir: &std::path::Path, data: &[SeriesData]) {
    let mut text = String::new();
    let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (labels, points) in data {
        let name = labels.iter().find(|(k, _)| k == "__name__").map(|(_, v)| v.clone()).expect("name");
        let inner: Vec<String> =
            labels.iter().filter(|(k, _)| k != "__name__").map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        for (t, v) in points {
            families.entry(name.clone()).or_default().push(format!("{name}{{{}}} {v} {t}", inner.join(",")));
        }
    }
    for (name, lines) in families {
        text.push_str(&format!("# TYPE {name} unknown\n"));
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str("# EOF\n");
    let input = dir.join("data.om");
    std::fs::write(&input, text).expect("write OpenMetrics");
    let status = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.join("tsdb"))
        .stdout(Stdio::null())
        .status()
        .expect("promtool runs (install Debian's prometheus package; .ci/run does)");
    assert!(status.success(), "promtool built the block");
}

/// `labels => values` of a query answer, for comparison.
fn answer(body: &Value) -> Result<BTreeMap<String, Vec<(f64, String)>>, String> {
    if body["status"] != "success" {
        return Err(format!("{}: {}", body["errorType"], body["error"]));
    }
    let data = &body["data"];
    let point = |p: &Value| (p[0].as_f64().unwrap_or_default(), p[1].as_str().unwrap_or_default().to_owned());
    let mut out = BTreeMap::new();
    match data["resultType"].as_str() {
        Some("scalar") | Some("string") => {
            out.insert("scalar".to_owned(), vec![point(&data["result"])]);
        }
        _ => {
            for r in data["result"].as_array().cloned().unwrap_or_default() {
                let metric: BTreeMap<String, String> = serde_json::from_value(r["metric"].clone()).unwrap_or_default();
                let values = match r.get("values") {
                    Some(vs) => vs.as_array().cloned().unwrap_or_default().iter().map(point).collect(),
                    None => vec![point(&r["value"])],
                };
                out.insert(format!("{metric:?}"), values);
            }
        }
    }
    Ok(out)
}

fn same_value(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            // Relative tolerance, with an absolute floor for results that
            // cancel to (almost) zero.
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

fn differences(ours: &Value, theirs: &Value) -> Option<String> {
    match (answer(ours), answer(theirs)) {
        (Err(_), Err(_)) => None,
        (Ok(o), Ok(t)) => {
            if o.keys().ne(t.keys()) {
                return Some(format!("series differ:\n  ours   {:?}\n  theirs {:?}", o.keys(), t.keys()));
            }
            for (k, ov) in &o {
                let tv = &t[k];
                let same = ov.len() == tv.len()
                    && ov.iter().zip(tv).all(|(a, b)| (a.0 - b.0).abs() < 1e-6 && same_value(&a.1, &b.1));
                if !same {
                    return Some(format!("{k}:\n  ours   {ov:?}\n  theirs {tv:?}"));
                }
            }
            None
        }
        (o, t) => Some(format!("ours {:?}, theirs {:?}", o.err(), t.err())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promql_answers_match_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = data();
    build_block(dir.path(), &data);
    let prometheus = common::prometheus::start(dir.path(), "global: {}\n").await;

    // The samples are from 2023: no cut (and so no retention) while the test runs.
    let s = common::start(|c| c.metrics.cut_interval_seconds = 86_400).await;
    let tenant = common::tenant("default");
    let samples: Vec<Sample> = data
        .iter()
        .flat_map(|(labels, points)| {
            let labels = Labels::new(labels.clone());
            points.iter().map(move |&(t, v)| Sample { labels: labels.clone(), t: t * 1000, v })
        })
        .collect();
    s.server.metrics.append(&tenant, samples, Vec::new());

    let client = reqwest::Client::new();
    let get = |base: String, path: &'static str, params: Vec<(&'static str, String)>| {
        let client = client.clone();
        async move {
            let r = client.get(format!("{base}{path}")).query(&params).send().await.expect("GET");
            r.json::<Value>().await.expect("JSON")
        }
    };
    let ours = format!("http://{}/prometheus", s.server.api_addr);
    let corpus = corpus();
    assert!(corpus.len() >= 100, "{} expressions", corpus.len());
    let mut failures = Vec::new();
    let mut compared = 0;
    for q in &corpus {
        let known = KNOWN_DIFFERENCES.iter().any(|(k, _)| k == q);
        let mut checks = Vec::new();
        for t in [BASE + 1800, BASE + 3599, BASE + 3700] {
            checks.push(("/api/v1/query", vec![("query", q.clone()), ("time", t.to_string())]));
        }
        let range = vec![
            ("query", q.clone()),
            ("start", (BASE + 600).to_string()),
            ("end", (BASE + 3600).to_string()),
            ("step", "60".to_owned()),
        ];
        checks.push(("/api/v1/query_range", range));
        for (path, params) in checks {
            let o = get(ours.clone(), path, params.clone()).await;
            let t = get(prometheus.url.clone(), path, params.clone()).await;
            compared += 1;
            if let Some(d) = differences(&o, &t)
                && !known
            {
                failures.push(format!("{path} {params:?}\n{d}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ from Prometheus:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    s.server.shutdown().await.expect("shutdown");
}
