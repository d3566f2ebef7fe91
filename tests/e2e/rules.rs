//! Rules and alerting through the real server: a Prometheus rule file,
//! OTLP samples in, the recorded series and `ALERTS` read back through the
//! Prometheus API, the rules and alerts APIs, a real Alertmanager that
//! receives the alert and its resolution (and gets it late when it was
//! down), reloads that keep the previous rules on a broken file, and
//! `sightline rules check` agreeing with `promtool check rules`.

use std::path::Path;
use std::time::Duration;

use prost::Message;
use sightline_proto::otlp::ExportMetricsServiceRequest;
use sightline_proto::otlp::metrics::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use sightline_proto::otlp::resource::Resource;
use sightline_testkit as common;

use common::alertmanager;
use common::otlp::string_kv;

const RULES: &str = r#"groups:
  - name: ovens
    interval: 1s
    rules:
      - record: job:temperature:max
        expr: max by (job) (temperature)
        labels:
          source: rule
      - record: many_to_many:example
        expr: (vector(1) or label_replace(vector(1), "x", "1", "", "")) * on() (vector(1) or label_replace(vector(1), "x", "1", "", ""))
      - alert: TooHot
        expr: job:temperature:max > 30
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }} is at {{ $value }} degrees"
          hint: "{{ $value | humanize }}C on {{ $externalLabels.site }}"
"#;

/// One gauge point `temperature{job="oven"}` = `value`, now.
fn temperature(value: f64) -> Vec<u8> {
    let point = NumberDataPoint {
        time_unix_nano: common::now_nanos(),
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    let metric = Metric {
        name: "temperature".into(),
        data: Some(metric::Data::Gauge(Gauge { data_points: vec![point] })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource { attributes: vec![string_kv("service.name", "oven")], ..Default::default() }),
            scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

async fn send(server: &common::TestServer, value: f64) {
    send_to(&server.otlp_http_url("metrics"), value).await;
}

async fn send_to(otlp_metrics_url: &str, value: f64) {
    let client = reqwest::Client::new();
    let response = common::post_protobuf(&client, otlp_metrics_url, temperature(value)).await;
    assert_eq!(response.status(), 200);
}

/// The active alerts of `/api/v1/alerts` on the API at `api` (host:port).
async fn active_alerts(api: &str) -> Option<Vec<serde_json::Value>> {
    let body = common::get_json(&format!("http://{api}/prometheus/api/v1/alerts"), &[], None).await?;
    body["data"]["alerts"].as_array().cloned()
}

/// An RFC 3339 time of the API, as Unix seconds.
fn unix_seconds(text: &str) -> f64 {
    let t = humantime::parse_rfc3339(text).expect("RFC 3339");
    t.duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs_f64()
}

/// The value of an instant query's single series, if there is one.
async fn instant(server: &common::TestServer, query: &str) -> Option<f64> {
    let body = common::get_json(&server.api_url("/prometheus/api/v1/query"), &[("query", query)], None).await?;
    let result = body["data"]["result"].as_array()?;
    result.first()?["value"][1].as_str()?.parse().ok()
}

fn write_rules(dir: &Path, text: &str) -> String {
    let path = dir.join("rules.yml");
    std::fs::write(&path, text).expect("rule file");
    path.display().to_string()
}

async fn start(rules_dir: &Path, alertmanager_url: &str) -> common::TestServer {
    let file = write_rules(rules_dir, RULES);
    let url = alertmanager_url.to_owned();
    common::start(move |c| {
        c.rules.files = vec![file];
        c.alerting.alertmanager_urls = vec![url];
        c.alerting.external_labels = [("site".to_string(), "lab".to_string())].into();
        c.alerting.external_url = "http://sightline.example:7070".into();
        c.rules.resend_delay_seconds = 1;
    })
    .await
}

async fn metrics_page(server: &common::TestServer) -> String {
    reqwest::get(server.api_url("/metrics")).await.expect("/metrics").text().await.expect("text")
}

/// The sum of the samples of `name` on the /metrics page.
fn counter(page: &str, name: &str) -> f64 {
    page.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_fires_reaches_alertmanager_and_resolves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let am = alertmanager::start(dir.path(), alertmanager::free_port()).await;
    let server = start(dir.path(), &am.url).await;
    send(&server, 35.0).await;

    // The recording rule's series, with the rule's label, queryable.
    let recorded = common::eventually("the recorded series", || {
        instant(&server, "job:temperature:max{source=\"rule\",job=\"oven\"}")
    })
    .await;
    assert_eq!(recorded, 35.0);

    // Pending first (for: 2s), then firing.
    let api = server.server.api_addr.to_string();
    let firing = common::eventually("the alert firing in /api/v1/alerts", || async {
        active_alerts(&api).await?.into_iter().find(|a| a["state"] == "firing")
    })
    .await;
    assert_eq!(firing["labels"]["alertname"], "TooHot");
    assert_eq!(firing["labels"]["severity"], "page");
    assert_eq!(firing["labels"]["job"], "oven");
    assert_eq!(firing["annotations"]["summary"], "oven is at 35 degrees");
    assert_eq!(firing["annotations"]["hint"], "35C on lab");
    assert_eq!(firing["value"], "3.5e+01");

    // The rules API in Prometheus's shape.
    let body = common::get_json(&server.api_url("/prometheus/api/v1/rules"), &[], None).await.expect("rules");
    let group = &body["data"]["groups"][0];
    assert_eq!(group["name"], "ovens");
    assert_eq!(group["interval"], 1.0);
    assert!(group["file"].as_str().expect("file").ends_with("rules.yml"));
    let rules = group["rules"].as_array().expect("rules");
    assert_eq!(rules[0]["type"], "recording");
    assert_eq!(rules[0]["health"], "ok");
    // A rule that fails when evaluated says why; the rules after it still run.
    assert_eq!(rules[1]["health"], "err");
    assert!(rules[1]["lastError"].as_str().expect("lastError").contains("many-to-many"), "{}", rules[1]);
    assert_eq!(rules[2]["type"], "alerting");
    assert_eq!(rules[2]["state"], "firing");
    assert_eq!(rules[2]["duration"], 2.0);
    assert_eq!(rules[2]["annotations"]["summary"], "{{ $labels.job }} is at {{ $value }} degrees");
    let by_name = common::get_json(&server.api_url("/prometheus/api/v1/rules"), &[("rule_name[]", "TooHot")], None)
        .await
        .expect("rules");
    assert_eq!(by_name["data"]["groups"][0]["rules"].as_array().expect("rules").len(), 1);
    let other_file = common::get_json(&server.api_url("/prometheus/api/v1/rules"), &[("file[]", "other.yml")], None)
        .await
        .expect("rules");
    assert_eq!(other_file["data"]["groups"].as_array().expect("groups").len(), 0);
    let only_alerts =
        common::get_json(&server.api_url("/prometheus/api/v1/rules"), &[("type", "alert")], None).await.expect("rules");
    assert_eq!(only_alerts["data"]["groups"][0]["rules"].as_array().expect("rules").len(), 1);
    let bad = reqwest::get(server.api_url("/prometheus/api/v1/rules?type=nope")).await.expect("answer");
    assert_eq!(bad.status(), 400);

    // ALERTS and ALERTS_FOR_STATE are written as Prometheus writes them.
    let alerts_series = common::eventually("ALERTS firing", || {
        instant(&server, "ALERTS{alertname=\"TooHot\",alertstate=\"firing\",severity=\"page\",job=\"oven\"}")
    })
    .await;
    assert_eq!(alerts_series, 1.0);
    let active_at = instant(&server, "ALERTS_FOR_STATE{alertname=\"TooHot\"}").await.expect("for state");
    assert!(
        (active_at - common::now_nanos() as f64 / 1e9).abs() < 60.0,
        "ALERTS_FOR_STATE holds when it became active"
    );

    // Alertmanager got it, with external labels and a link into the UI.
    let received = common::eventually("the alert in Alertmanager", || async {
        alertmanager::alerts(&am.url).await.into_iter().find(|a| a["labels"]["alertname"] == "TooHot")
    })
    .await;
    assert_eq!(received["labels"]["site"], "lab");
    assert_eq!(received["labels"]["severity"], "page");
    assert_eq!(received["annotations"]["summary"], "oven is at 35 degrees");
    let link = received["generatorURL"].as_str().expect("generatorURL");
    assert!(link.starts_with("http://sightline.example:7070/#/metrics?q=job%3Atemperature%3Amax"), "{link}");
    assert!(counter(&metrics_page(&server).await, "sightline_notifications_sent_total") >= 1.0);

    // Cooler: the alert resolves here and in Alertmanager.
    send(&server, 20.0).await;
    common::eventually("no active alerts", || async { active_alerts(&api).await?.is_empty().then_some(()) }).await;
    common::eventually("the alert resolved in Alertmanager", || async {
        let held = alertmanager::alerts(&am.url).await;
        (!held.iter().any(|a| a["labels"]["alertname"] == "TooHot")).then_some(())
    })
    .await;
    let page = metrics_page(&server).await;
    assert_eq!(counter(&page, "sightline_notifications_failed_total"), 0.0);
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_wait_for_an_alertmanager_that_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = alertmanager::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = start(dir.path(), &url).await;
    send(&server, 40.0).await;
    common::eventually("failed sends counted", || async {
        let page = metrics_page(&server).await;
        (counter(&page, "sightline_notifications_failed_total") >= 1.0).then_some(())
    })
    .await;
    // Evaluation goes on while the Alertmanager is away.
    let before = counter(&metrics_page(&server).await, "sightline_rules_evaluations_total");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(counter(&metrics_page(&server).await, "sightline_rules_evaluations_total") > before);

    let am = alertmanager::start(dir.path(), port).await;
    let received = common::eventually("the alert delivered once Alertmanager is up", || async {
        alertmanager::alerts(&am.url).await.into_iter().find(|a| a["labels"]["alertname"] == "TooHot")
    })
    .await;
    assert_eq!(received["annotations"]["summary"], "oven is at 40 degrees");
    assert!(counter(&metrics_page(&server).await, "sightline_notifications_sent_total") >= 1.0);
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_stops_start_up_and_a_broken_reload_keeps_the_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_rules(dir.path(), "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(up\n");
    let mut config = common::loopback_config(dir.path());
    config.rules.files = vec![file.clone()];
    let error = match sightline::server::Server::start(&config).await {
        Ok(_) => panic!("a broken rule file must stop start-up"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains(&file) && error.contains("group \"g\", rule 1 (\"x\")"), "{error}");
    assert!(error.contains("could not parse expression"), "{error}");

    let rules_dir = tempfile::tempdir().expect("tempdir");
    let server = start(rules_dir.path(), "http://127.0.0.1:9").await;
    let reload = || async { reqwest::Client::new().post(server.api_url("/-/reload")).send().await.expect("reload") };
    let rule = |body: &str| format!("groups:\n  - name: g\n    rules:\n      - {body}\n");
    let broken = [
        ("groups: [".to_string(), "did not find expected"),
        ("groups:\n  - name: g\n    colour: red\n".to_string(), "unknown field `colour`"),
        (rule("record: x\n        expr: sum(up"), "could not parse expression"),
        (rule("record: x\n        expr: up\n      - record: x\n        expr: up"), "repeated in the group"),
        (rule("alert: A\n        expr: up\n        for: soon"), "not a valid duration string"),
        (
            rule("alert: A\n        expr: up\n        annotations:\n          s: '{{ nosuch }}'"),
            "function \"nosuch\" not defined",
        ),
    ];
    for (text, message) in broken {
        std::fs::write(rules_dir.path().join("rules.yml"), &text).expect("write");
        let answer = reload().await;
        assert_eq!(answer.status(), 500, "{text}");
        let said = answer.text().await.expect("text");
        assert!(said.contains(message) && said.contains("rules.yml"), "{text}\n→ {said}");
        let body = common::get_json(&server.api_url("/prometheus/api/v1/rules"), &[], None).await.expect("rules");
        assert_eq!(body["data"]["groups"][0]["name"], "ovens", "the previous rules stay");
        assert!(body["data"]["reloadError"].as_str().expect("the error").contains(message));
    }
    assert!(metrics_page(&server).await.contains("sightline_rules_last_reload_successful 0"));

    let renamed = RULES.replace("name: ovens", "name: kilns");
    std::fs::write(rules_dir.path().join("rules.yml"), renamed).expect("write");
    assert_eq!(reload().await.status(), 200);
    let body = common::get_json(&server.api_url("/prometheus/api/v1/rules"), &[], None).await.expect("rules");
    assert_eq!(body["data"]["groups"][0]["name"], "kilns");
    assert!(body["data"].get("reloadError").is_none());
    assert!(metrics_page(&server).await.contains("sightline_rules_last_reload_successful 1"));
    server.server.shutdown().await.expect("shutdown");
}

#[test]
fn rules_check_agrees_with_promtool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_rules(dir.path(), RULES);
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: soon\n")
        .expect("write");
    let binary = env!("CARGO_BIN_EXE_sightline");
    let check = |file: &str| std::process::Command::new(binary).args(["rules", "check", file]).output().expect("runs");
    let ok = check(&good);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("SUCCESS: 1 groups, 3 rules found"));
    let failed = check(bad.to_str().expect("path"));
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stdout).contains("not a valid duration string"));

    let promtool = |file: &str| std::process::Command::new("promtool").args(["check", "rules", file]).output();
    let prom_ok = promtool(&good).expect("promtool runs (Debian's prometheus package)");
    assert!(prom_ok.status.success(), "promtool: {}", String::from_utf8_lossy(&prom_ok.stdout));
    let prom_bad = promtool(bad.to_str().expect("path")).expect("promtool runs");
    assert!(!prom_bad.status.success(), "promtool refuses it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_time_an_alert_was_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.yml");
    write_rules(
        dir.path(),
        "groups:\n  - name: ovens\n    interval: 1s\n    rules:\n      - alert: TooHot\n        expr: temperature > 30\n        for: 8s\n",
    );
    let config = dir.path().join("sightline.toml");
    let file = rules.display().to_string();
    std::fs::write(&config, format!("[rules]\nfiles = [{file:?}]\nfor_grace_period_seconds = 0\n")).expect("config");
    let data = dir.path().join("data");
    let env = [("SIGHTLINE_CONFIG", config.to_str().expect("path"))];
    let binary = env!("CARGO_BIN_EXE_sightline");

    let mut first = common::binary::spawn(binary, &data, &env);
    first.drain_log();
    send_to(&format!("http://{}/v1/metrics", first.http), 35.0).await;
    let pending = common::eventually("the alert pending", || async {
        active_alerts(&first.api).await?.into_iter().find(|a| a["state"] == "pending")
    })
    .await;
    let active_at = unix_seconds(pending["activeAt"].as_str().expect("activeAt"));
    // Pending for a few evaluations (ALERTS_FOR_STATE written each second), then killed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.child.kill().expect("kill");
    first.child.wait().expect("wait");

    let restarted_at = common::now_nanos() as f64 / 1e9;
    let mut second = common::binary::spawn(binary, &data, &env);
    second.drain_log();
    let restored = common::eventually("the alert restored", || async {
        let alerts = active_alerts(&second.api).await?;
        let a = alerts.into_iter().find(|a| a["labels"]["alertname"] == "TooHot")?;
        let at = unix_seconds(a["activeAt"].as_str()?);
        // Until the restore (after the first evaluation) the alert looks new;
        // restored, it keeps the time it was pending before the restart.
        (at < restarted_at).then_some(at)
    })
    .await;
    assert!(restored >= active_at, "the downtime is not counted as pending: {restored} < {active_at}");
    let firing = common::eventually("the alert firing after the restart", || async {
        active_alerts(&second.api).await?.into_iter().find(|a| a["state"] == "firing")
    })
    .await;
    assert_eq!(unix_seconds(firing["activeAt"].as_str().expect("activeAt")), restored);

    // SIGHUP reloads the rule files.
    std::fs::write(&rules, RULES).expect("rules");
    let hup = std::process::Command::new("kill").args(["-HUP", &second.child.id().to_string()]).status().expect("kill");
    assert!(hup.success());
    common::eventually("the reloaded rules", || async {
        let body = common::get_json(&format!("http://{}/prometheus/api/v1/rules", second.api), &[], None).await?;
        (body["data"]["groups"][0]["rules"].as_array()?.len() == 3).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_rule_fires_on_lines_and_resolves_after_its_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_rules(
        dir.path(),
        r#"groups:
  - name: log-lines
    source: logs
    interval: 1s
    rules:
      - record: service:log_lines:4s
        expr: sum by (service) (count_over_time([4s]))
      - alert: ManyLines
        expr: sum by (service) (count_over_time(service:"crash-test" line*[4s])) > 5
        annotations:
          summary: "{{ $labels.service }}: {{ $value }} lines"
"#,
    );
    let server = common::start(move |c| c.rules.files = vec![file]).await;
    let client = reqwest::Client::new();
    let lines = common::otlp::logs_request(1, 10, common::now_nanos()).encode_to_vec();
    let response = common::post_protobuf(&client, &server.otlp_http_url("logs"), lines).await;
    assert_eq!(response.status(), 200);

    let api = server.server.api_addr.to_string();
    let firing = common::eventually("the log alert firing", || async {
        active_alerts(&api).await?.into_iter().find(|a| a["state"] == "firing")
    })
    .await;
    assert_eq!(firing["labels"]["alertname"], "ManyLines");
    assert_eq!(firing["labels"]["service"], "crash-test");
    assert_eq!(firing["annotations"]["summary"], "crash-test: 10 lines");
    let recorded = common::eventually("the recorded log count", || {
        instant(&server, "service:log_lines:4s{service=\"crash-test\"}")
    })
    .await;
    assert_eq!(recorded, 10.0);
    // Once the lines are older than the window, the alert resolves.
    common::eventually("the log alert resolved", || async { active_alerts(&api).await?.is_empty().then_some(()) })
        .await;
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_file_bound_to_a_tenant_reads_and_writes_that_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_rules(
        dir.path(),
        "groups:\n  - name: acme-ovens\n    interval: 1s\n    rules:\n      - record: acme:temperature:max\n        expr: max(temperature)\n",
    );
    let server = common::start(move |c| c.rules.tenants = [("acme".to_string(), vec![file])].into()).await;
    let client = reqwest::Client::new();
    let sent = client
        .post(server.otlp_http_url("metrics"))
        .header("content-type", "application/x-protobuf")
        .header("X-Scope-OrgID", "acme")
        .body(temperature(21.0))
        .send()
        .await
        .expect("POST");
    assert_eq!(sent.status(), 200);
    let query = server.api_url("/prometheus/api/v1/query");
    let recorded = common::eventually("acme's recorded series", || async {
        let body = common::get_json(&query, &[("query", "acme:temperature:max")], Some("acme")).await?;
        body["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()
    })
    .await;
    assert_eq!(recorded, 21.0);
    assert_eq!(instant(&server, "acme:temperature:max").await, None, "the default tenant sees none of it");
    let rules = server.api_url("/prometheus/api/v1/rules");
    let acme = common::get_json(&rules, &[], Some("acme")).await.expect("rules");
    assert_eq!(acme["data"]["groups"][0]["name"], "acme-ovens");
    let default = common::get_json(&rules, &[], None).await.expect("rules");
    assert_eq!(default["data"]["groups"].as_array().expect("groups").len(), 0);
    server.server.shutdown().await.expect("shutdown");
}
