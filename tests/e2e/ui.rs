//! The web UI in a real browser: the real binary, fed over OTLP/HTTP with a
//! small shop's traces and logs and one trace of 10,000 spans, then
//! `ui/tests/ui.test.mjs` drives headless Chromium (`playwright-core`,
//! Debian's `/usr/bin/chromium`) through every view, asserting on what the
//! pages show and saving a screenshot of each. Dashboards it saves must
//! survive a restart.

use sightline_testkit as common;

use std::process::Command;
use std::time::Duration;

use common::binary;
use common::otlp::{string_kv, trace_id};
use prost::Message as _;
use sightline_proto::otlp::common::{AnyValue, any_value};
use sightline_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use sightline_proto::otlp::resource::Resource;
use sightline_proto::otlp::trace::{ResourceSpans, ScopeSpans, Span, Status};
use sightline_proto::otlp::{ExportLogsServiceRequest, ExportTraceServiceRequest};

const TRACES: u64 = 12;
const BIG_TRACE: u64 = 999;
const BIG_SPANS: u64 = 10_000;
const CHROMIUM: &str = "/usr/bin/chromium";

/// Fires while payments has failing calls (every fourth shop trace).
const ALERT_RULES: &str = r#"groups:
  - name: shop
    interval: 1s
    rules:
      - alert: PaymentsFailing
        expr: sum by (service) (traces_spanmetrics_calls_total{service="payments",status_code="STATUS_CODE_ERROR"}) > 0
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.service }} has failing calls"
"#;

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![string_kv("service.name", service)], ..Default::default() })
}

fn span_id(trace: u64, n: u64) -> Vec<u8> {
    ((trace << 20) | (n + 1)).to_be_bytes().to_vec()
}

/// A server span of `trace`, `n`-th of it, under `parent`.
fn span(trace: u64, n: u64, parent: Option<u64>, name: &str, start: u64, millis: u64, failed: bool) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(trace, n),
        parent_span_id: parent.map(|p| span_id(trace, p)).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + millis * 1_000_000,
        attributes: vec![string_kv("http.route", name.split(' ').nth(1).unwrap_or(""))],
        status: failed.then(|| Status { code: 2, message: "card declined".into() }),
        ..Default::default()
    }
}

fn by_service(groups: Vec<(&str, Vec<Span>)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn log(trace: u64, n: u64, time: u64, severity: i32, body: String) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        severity_number: severity,
        body: Some(AnyValue { value: Some(any_value::Value::StringValue(body)) }),
        trace_id: trace_id(trace),
        span_id: span_id(trace, n),
        ..Default::default()
    }
}

/// Traces `first..last` of the shop: gateway → orders → payments, every
/// fourth failing in payments; and their log lines.
fn shop(first: u64, last: u64, now: u64) -> (ExportTraceServiceRequest, ExportLogsServiceRequest) {
    let (mut gateway, mut orders, mut payments, mut order_logs, mut payment_logs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for t in first..last {
        let start = now - (TRACES - t) * 5_000_000_000;
        let failed = t % 4 == 0;
        gateway.push(span(t, 0, None, "GET /checkout", start, 120, false));
        orders.push(span(t, 1, Some(0), "POST /orders", start + 10_000_000, 90, false));
        payments.push(span(t, 2, Some(1), "POST /charge", start + 30_000_000, 50, failed));
        order_logs.push(log(t, 1, start + 20_000_000, 9, format!("order {t} placed")));
        if failed {
            payment_logs.push(log(t, 2, start + 70_000_000, 17, format!("card declined for order {t}")));
        }
    }
    let logs = ExportLogsServiceRequest {
        resource_logs: [("orders", order_logs), ("payments", payment_logs)]
            .into_iter()
            .map(|(service, log_records)| ResourceLogs {
                resource: resource(service),
                scope_logs: vec![ScopeLogs { log_records, ..Default::default() }],
                schema_url: String::new(),
            })
            .collect(),
    };
    (by_service(vec![("gateway", gateway), ("orders", orders), ("payments", payments)]), logs)
}

/// One trace of 10,000 spans: a root, 99 children, 100 grandchildren each.
fn big_trace(now: u64) -> ExportTraceServiceRequest {
    let start = now - 30_000_000_000;
    let mut spans = vec![span(BIG_TRACE, 0, None, "POST /import", start, 9_000, false)];
    for c in 1..100 {
        spans.push(span(BIG_TRACE, c, Some(0), &format!("batch {c}"), start + c * 90_000_000, 85, false));
        for g in 0..100 {
            let at = start + c * 90_000_000 + g * 800_000;
            spans.push(span(BIG_TRACE, 100 * c + g, Some(c), &format!("row {g}"), at, 1, false));
        }
    }
    assert_eq!(spans.len() as u64, BIG_SPANS);
    // Internal work, not requests: it stays out of the request rates.
    spans.iter_mut().for_each(|s| s.kind = 1);
    by_service(vec![("importer", spans)])
}

async fn post(client: &reqwest::Client, url: String, body: Vec<u8>) {
    let r = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await.expect("POST");
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

/// Runs one file of browser tests (node --test, headless Chromium) with
/// these settings; fails if any test does. Returns the screenshots folder.
fn browser_tests(file: &str, settings: &[(&str, String)]) -> std::path::PathBuf {
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", file])
        // Where cargo runs the tests from (not where this binary was built).
        .current_dir(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
                .join("ui"),
        )
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CHROMIUM", CHROMIUM)
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("node runs");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{file} failed; screenshots in {}", shots.display());
    shots
}

async fn dashboards(client: &reqwest::Client, api: &str) -> serde_json::Value {
    client.get(format!("http://{api}/api/dashboards")).send().await.expect("GET").json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_view_in_a_real_browser() {
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "the UI tests drive {CHROMIUM}: install Debian's chromium package (.ci/run does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // A trace-based alert: on the span-derived series, in plain PromQL.
    let rules = dir.path().join("rules.yml");
    std::fs::write(&rules, ALERT_RULES).expect("rule file");
    let config = dir.path().join("sightline.toml");
    std::fs::write(&config, format!("[rules]\nfiles = [{:?}]\n", rules.display().to_string())).expect("config");
    // Span-derived series are written every second, so that each batch below has its own samples.
    let env =
        [("SIGHTLINE_SPANMETRICS__FLUSH_INTERVAL_SECONDS", "1"), ("SIGHTLINE_CONFIG", config.to_str().expect("path"))];
    let mut server = binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
    server.drain_log();
    let client = reqwest::Client::new();
    let now = common::now_nanos();
    // Three batches a couple of seconds apart, so that the span-derived
    // rates have samples to work with.
    for batch in 0..3 {
        let (spans, logs) = shop(batch * TRACES / 3, (batch + 1) * TRACES / 3, now);
        post(&client, format!("http://{}/v1/traces", server.http), spans.encode_to_vec()).await;
        post(&client, format!("http://{}/v1/logs", server.http), logs.encode_to_vec()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    post(&client, format!("http://{}/v1/traces", server.http), big_trace(now).encode_to_vec()).await;
    // Past the next flush of the span-derived series.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let shots = browser_tests(
        "tests/ui.test.mjs",
        &[
            ("SIGHTLINE_URL", format!("http://{}/", server.api)),
            ("SIGHTLINE_OTLP_HTTP", format!("http://{}", server.http)),
            ("SHOP_TRACES", TRACES.to_string()),
            ("ERROR_TRACE_ID", hex::encode(trace_id(4))),
            ("BIG_TRACE_ID", hex::encode(trace_id(BIG_TRACE))),
            ("BIG_TRACE_SPANS", BIG_SPANS.to_string()),
        ],
    );
    for view in ["services", "traces", "trace", "big-trace", "logs", "metrics", "map", "health", "dashboard", "alerts"]
    {
        assert!(shots.join(format!("{view}.png")).exists(), "screenshot of {view}");
    }

    // The dashboard the browser saved survives a restart.
    let saved = dashboards(&client, &server.api).await;
    assert_eq!(saved["dashboards"][0]["title"], "Checkout health", "{saved}");
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");
    let mut again = binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &[]);
    again.drain_log();
    let after = dashboards(&client, &again.api).await;
    assert_eq!(after, saved);
    let id = after["dashboards"][0]["id"].as_str().expect("id");
    let doc: serde_json::Value = client
        .get(format!("http://{}/api/dashboards/{id}", again.api))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(doc["panels"].as_array().map(Vec::len), Some(2), "{doc}");
    assert_eq!(doc["variables"][0]["name"], "service", "{doc}");
    again.child.kill().expect("kill");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_signs_in_with_a_token_when_authentication_is_on() {
    const INGEST: &str = "ui-test-ingest-token-0001";
    const READ: &str = "ui-test-read-token-000001";
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\ntenant = \"shop\"\nrole = \"ingest\"\ntoken = \"{INGEST}\"\n\n\
             [[keys]]\ntenant = \"shop\"\nrole = \"read\"\ntoken = \"{READ}\"\n"
        ),
    )
    .expect("keys file");
    let keys = keys.to_str().expect("utf-8 path");
    let env = [("SIGHTLINE_AUTH__ENABLED", "true"), ("SIGHTLINE_AUTH__KEYS_FILE", keys)];
    let mut server = binary::spawn(env!("CARGO_BIN_EXE_sightline"), &dir.path().join("data"), &env);
    server.drain_log();
    let (spans, _) = shop(0, 4, common::now_nanos());
    let sent = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", server.http))
        .bearer_auth(INGEST)
        .header("content-type", "application/x-protobuf")
        .body(spans.encode_to_vec())
        .send()
        .await
        .expect("POST");
    assert_eq!(sent.status(), 200);

    let shots = browser_tests(
        "tests/sign-in.test.mjs",
        &[("SIGHTLINE_URL", format!("http://{}/", server.api)), ("READ_TOKEN", READ.to_owned())],
    );
    assert!(shots.join("signed-in.png").exists(), "screenshot after signing in");
}
