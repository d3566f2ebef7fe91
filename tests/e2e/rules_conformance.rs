//! Rule evaluation against a real Prometheus: the same rule file (23
//! recording and 16 alerting rules) over the same seeded hour of samples,
//! evaluated every minute by Sightline's rule engine and by Prometheus 2.42's
//! (`promtool test rules`, which runs Prometheus's rule manager over the
//! samples in simulated time from Unix time 0). At every minute the
//! recorded series, `ALERTS` and `ALERTS_FOR_STATE` must be equal, point by
//! point (values within floating-point tolerance), and every five minutes the
//! firing alerts with their expanded labels and annotations.
//!
//! promtool prints what Prometheus computed only when an expectation fails,
//! so each expectation here is "nothing", and its failure report is read as
//! Prometheus's answer. Alignment: both evaluate every group at every
//! multiple of one minute from time 0 (promtool's schedule), groups in file
//! order, alerting rules restored from the start (as promtool marks them).
//! Thresholds are chosen off the values the data can reach exactly: sums
//! of rates differ in their last bit with the order of summation (which is
//! not even fixed in Prometheus), and a threshold on that bit would decide
//! by chance.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use sightline_query::limits::QueryLimits;
use sightline_query::promql::{self, Value};
use sightline_rules::file::{self, RuleKind};
use sightline_rules::group::{Group, StoreQuery};
use sightline_rules::rule::{AlertState, Context};
use sightline_storage::metrics::{Labels, MetricStore, MetricStoreConfig, Sample};
use sightline_testkit as common;

use sightline_loadgen::Rng;

const MINUTES: i64 = 60;
/// What is compared at every minute.
const OUTPUTS: &str = r#"{__name__=~"rec:.+|ALERTS|ALERTS_FOR_STATE"}"#;

const RULES: &str = r#"groups:
  - name: recording
    rules:
      - record: rec:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - record: rec:http_errors:rate5m
        expr: sum by (job) (rate(http_requests_total{code="500"}[5m]))
      - record: rec:http_error_ratio
        expr: rec:http_errors:rate5m / rec:http_requests:rate5m
      - record: rec:http_requests:increase10m
        expr: sum by (job, code) (increase(http_requests_total[10m]))
      - record: rec:up:sum
        expr: sum by (job) (up)
      - record: rec:up:count
        expr: count by (job) (up)
      - record: rec:up:ratio
        expr: rec:up:sum / rec:up:count
      - record: rec:temperature:max
        expr: max(temperature)
      - record: rec:temperature:min
        expr: min by (room) (temperature)
      - record: rec:temperature:avg10m
        expr: avg_over_time(temperature[10m])
      - record: rec:temperature:p90
        expr: quantile(0.9, temperature)
      - record: rec:queue:q2_absent
        expr: absent(queue_depth{queue="q2"})
      - record: rec:queue:sum
        expr: sum(queue_depth)
      - record: rec:queue:delta5m
        expr: delta(queue_depth[5m])
      - record: rec:disk:deriv
        expr: deriv(disk_free_bytes[10m])
      - record: rec:disk:predict1h
        expr: predict_linear(disk_free_bytes[10m], 3600)
      - record: rec:requests:top2
        expr: topk(2, sum by (instance) (rate(http_requests_total[5m])))
      - record: rec:const
        expr: vector(1)
        labels:
          team: platform
      - record: rec:up:scalar
        expr: scalar(sum(up))
      - record: rec:up:by_host
        expr: label_replace(up, "host", "$1", "instance", "(.*)")
      - record: rec:hour_second
        expr: time() % 3600
      - record: rec:temperature:changes10m
        expr: changes(temperature[10m])
      - record: rec:http_requests:resets30m
        expr: resets(http_requests_total[30m])
  - name: alerts
    limit: 100
    rules:
      - alert: HighErrorRatio
        expr: rec:http_error_ratio > 0.1013
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.job }} fails {{ $value | humanizePercentage }} of requests"
      - alert: InstanceDown
        expr: up == 0
        for: 3m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is down"
      - alert: InstanceDownNow
        expr: up == 0
      - alert: HotRoom
        expr: temperature > 35
        keep_firing_for: 3m
        annotations:
          summary: "{{ $labels.room }} at {{ $value }}C"
      - alert: ColdRoom
        expr: temperature < 18
        for: 2m
        annotations:
          summary: "{{ $labels.room | toUpper }} is cold"
      - alert: QueueMissing
        expr: absent(queue_depth{queue="q2"})
        for: 2m
      - alert: QueueDeep
        expr: sum by (queue) (queue_depth) > 50
        for: 1m
        keep_firing_for: 2m
        annotations:
          summary: "{{ $labels.queue }} holds {{ $value }}"
      - alert: DiskFilling
        expr: rec:disk:predict1h < 0
        for: 5m
        annotations:
          summary: "{{ $labels.instance }} full within the hour ({{ printf \"%.1f\" $value }} left)"
      - alert: ManyRequests
        expr: rec:http_requests:rate5m > 0.3017
        labels:
          level: "{{ if gt $value 0.4517 }}high{{ else }}normal{{ end }}"
        annotations:
          summary: "{{ $value | humanize }} requests per second"
      - alert: NoTraffic
        expr: rec:http_requests:rate5m == 0
        for: 1m
      - alert: TemperatureSpread
        expr: (max(temperature) - min(temperature)) > 15
      - alert: AllUp
        expr: rec:up:ratio == 1
        annotations:
          summary: "{{ $labels.job }}: all {{ $value }}"
      - alert: ErrorBurst
        expr: increase(http_requests_total{code="500"}[5m]) > 2.5
        for: 2m
      - alert: CounterReset
        expr: resets(http_requests_total[10m]) > 0
        keep_firing_for: 5m
      - alert: BusyInstance
        expr: rec:requests:top2 > 0
        annotations:
          summary: "{{ $value | humanize }} rps, checked every {{ humanizeDuration 90 }}"
      - alert: Always
        expr: vector(1)
"#;

/// A seeded series: its text (`name{…}`) and a value (or none) per minute.
struct Input {
    text: String,
    labels: Vec<(String, String)>,
    values: Vec<Option<f64>>,
}

fn input(name: &str, labels: &[(&str, &str)], values: Vec<Option<f64>>) -> Input {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let mut all = vec![("__name__".to_string(), name.to_string())];
    all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Input { text: format!("{name}{{{}}}", pairs.join(",")), labels: all, values }
}

fn dataset() -> Vec<Input> {
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut out = Vec::new();
    for job in ["api", "web"] {
        for instance in ["a", "b"] {
            for code in ["200", "500"] {
                let mut total = 0.0;
                let values = (0..=MINUTES)
                    .map(|m| {
                        let step = if code == "200" { rng.below(30) } else { rng.below(4) };
                        total += step as f64;
                        // One counter reset, in web/b/200 at minute 31.
                        if job == "web" && instance == "b" && code == "200" && m == 31 {
                            total = 3.0;
                        }
                        // api/a/500 is silent from minute 45: its rate drops to nothing.
                        (!(job == "api" && instance == "a" && code == "500" && m >= 45)).then_some(total)
                    })
                    .collect();
                out.push(input("http_requests_total", &[("job", job), ("instance", instance), ("code", code)], values));
            }
            let up = (0..=MINUTES)
                .map(|m| Some(if job == "api" && instance == "b" && (20..35).contains(&m) { 0.0 } else { 1.0 }));
            out.push(input("up", &[("job", job), ("instance", instance)], up.collect()));
        }
    }
    for room in ["r1", "r2", "r3"] {
        let values = (0..=MINUTES).map(|_| Some(15.0 + rng.below(24) as f64)).collect();
        out.push(input("temperature", &[("room", room)], values));
    }
    for queue in ["q1", "q2"] {
        let values = (0..=MINUTES)
            .map(|m| {
                (!(queue == "q2" && (40..52).contains(&m)))
                    .then(|| (rng.below(40) as f64) + if m > 50 { 20.0 } else { 0.0 })
            })
            .collect();
        out.push(input("queue_depth", &[("queue", queue)], values));
    }
    for (instance, slope) in [("a", 7.5), ("b", 0.5)] {
        let values = (0..=MINUTES).map(|m| Some(400.0 - slope * m as f64)).collect();
        out.push(input("disk_free_bytes", &[("instance", instance)], values));
    }
    out
}

fn promtool_values(values: &[Option<f64>]) -> String {
    values.iter().map(|v| v.map_or("_".to_string(), |v| format!("{v}"))).collect::<Vec<_>>().join(" ")
}

type Answer = BTreeMap<BTreeMap<String, String>, f64>;
type Firing = Vec<(BTreeMap<String, String>, BTreeMap<String, String>)>;

/// `{a="x", b="y\"z"}` (Go's quoting) from `s` at `at`.
fn go_labels(s: &[u8], at: &mut usize) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    assert_eq!(s[*at], b'{', "labels at {at}");
    *at += 1;
    while s[*at] != b'}' {
        while s[*at] == b' ' || s[*at] == b',' {
            *at += 1;
        }
        let start = *at;
        while s[*at] != b'=' {
            *at += 1;
        }
        let name = String::from_utf8_lossy(&s[start..*at]).into_owned();
        *at += 1;
        assert_eq!(s[*at], b'"');
        let start = *at;
        *at += 1;
        while s[*at] != b'"' {
            *at += if s[*at] == b'\\' { 2 } else { 1 };
        }
        *at += 1;
        let value: String = serde_json::from_slice(&s[start..*at]).expect("a Go-quoted string");
        out.insert(name, value);
        while s[*at] == b' ' || s[*at] == b',' {
            *at += 1;
        }
    }
    *at += 1;
    out
}

fn minutes(text: &str) -> i64 {
    if text == "0s" {
        return 0;
    }
    let d = promql_parser::util::duration::parse_duration(text).expect("a duration");
    (d.as_secs() / 60) as i64
}

/// What Prometheus computed, read from promtool's failure report.
fn prometheus_answers(report: &str) -> (BTreeMap<i64, Answer>, BTreeMap<(i64, String), Firing>) {
    let mut answers = BTreeMap::new();
    let mut alerts: BTreeMap<(i64, String), Firing> = BTreeMap::new();
    let lines: Vec<&str> = report.lines().collect();
    let time_of = |line: &str| minutes(line.rsplit("time: ").next().expect("time").trim().trim_end_matches(','));
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with("expr: ") {
            let t = time_of(line);
            let got = lines[i + 2].trim().strip_prefix("got: ").expect("got line").as_bytes();
            let mut answer = Answer::new();
            let mut at = 0;
            while at < got.len() {
                let labels = go_labels(got, &mut at);
                at += 1;
                let end = got[at..].iter().position(|&c| c == b',').map_or(got.len(), |p| at + p);
                let value: f64 = std::str::from_utf8(&got[at..end]).expect("utf-8").parse().expect("a value");
                answer.insert(labels, value);
                at = (end + 2).min(got.len());
            }
            answers.insert(t, answer);
            i += 3;
        } else if let Some(rest) = line.strip_prefix("alertname: ") {
            let name = rest.split(',').next().expect("name").to_owned();
            let t = time_of(line);
            let mut firing = Firing::new();
            i += 1;
            while i < lines.len()
                && !lines[i].trim().starts_with("alertname: ")
                && !lines[i].trim().starts_with("expr: ")
            {
                let l = lines[i].trim();
                if let Some(rest) = l.strip_prefix("Labels:") {
                    let labels = go_labels(rest.as_bytes(), &mut 0);
                    let annotations = lines[i + 1].trim().strip_prefix("Annotations:").expect("annotations");
                    firing.push((labels, go_labels(annotations.as_bytes(), &mut 0)));
                    i += 1;
                }
                i += 1;
            }
            alerts.insert((t, name), firing);
        } else {
            i += 1;
        }
    }
    (answers, alerts)
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn map(labels: &Labels) -> BTreeMap<String, String> {
    labels.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

#[test]
fn recorded_series_and_alerts_equal_prometheus_minute_by_minute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, RULES).expect("rules");
    let data = dataset();
    let specs = file::parse("rules.yml", RULES).expect("the rule file is valid");
    let recording = specs.iter().flat_map(|g| &g.rules).filter(|r| matches!(r.kind, RuleKind::Recording)).count();
    let alerting = specs.iter().flat_map(|g| &g.rules).count() - recording;
    assert!(recording >= 20 && alerting >= 15, "{recording} recording and {alerting} alerting rules");
    let alert_names: Vec<String> = specs
        .iter()
        .flat_map(|g| &g.rules)
        .filter(|r| !matches!(r.kind, RuleKind::Recording))
        .map(|r| r.name.clone())
        .collect();

    // Prometheus: promtool runs its rule manager over the same samples.
    let mut test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ngroup_eval_order: [recording, alerts]\ntests:\n  - interval: 1m\n    input_series:\n",
        rules_path.display()
    );
    for s in &data {
        let _ = writeln!(test, "      - series: '{}'\n        values: '{}'", s.text, promtool_values(&s.values));
    }
    test.push_str("    promql_expr_test:\n");
    for m in 0..=MINUTES {
        let _ = writeln!(test, "      - expr: '{OUTPUTS}'\n        eval_time: {m}m\n        exp_samples: []");
    }
    test.push_str("    alert_rule_test:\n");
    for m in (0..=MINUTES).step_by(5) {
        for name in &alert_names {
            let _ = writeln!(test, "      - eval_time: {m}m\n        alertname: {name}\n        exp_alerts: []");
        }
    }
    let test_path = dir.path().join("test.yml");
    std::fs::write(&test_path, test).expect("test file");
    let check = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules_path)
        .output()
        .expect("promtool runs (Debian's prometheus package)");
    assert!(check.status.success(), "promtool check rules: {}", String::from_utf8_lossy(&check.stdout));
    let run = Command::new("promtool").args(["test", "rules"]).arg(&test_path).output().expect("promtool runs");
    let report = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(!report.contains("rule: "), "Prometheus failed to evaluate a rule:\n{report}");
    let (prom_answers, prom_alerts) = prometheus_answers(&report);

    // Sightline: the same samples into a metric store, the same groups
    // evaluated at the same times.
    let store = MetricStore::new(MetricStoreConfig::default());
    let tenant = common::tenant("default");
    for s in &data {
        let samples = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(m, v)| v.map(|v| Sample { labels: Labels::new(s.labels.clone()), t: m as i64 * 60_000, v }))
            .collect();
        store.append(&tenant, samples, vec![]);
    }
    let limits = QueryLimits::default();
    let query = StoreQuery { store: &store, tenant: &tenant, limits: &limits };
    let (external, url) = (BTreeMap::new(), String::new());
    let context = Context { external_labels: &external, external_url: &url };
    let mut groups: Vec<Group> =
        specs.into_iter().map(|g| Group::new(tenant.clone(), g, Duration::from_secs(60), true)).collect();
    let mut sightline_alerts: BTreeMap<(i64, String), Firing> = BTreeMap::new();
    for m in 0..=MINUTES {
        let ts = m * 60_000;
        for g in &mut groups {
            for i in 0..g.rules.len() {
                let (samples, _) = g.eval_rule(i, &query, ts, &context, Duration::from_secs(60));
                assert_eq!(g.rules[i].last_error, None, "{} at minute {m}", g.rules[i].spec.name);
                store.append(&tenant, samples, vec![]);
            }
        }
        if m % 5 == 0 {
            for rule in groups.iter().flat_map(|g| &g.rules) {
                let mut firing: Firing = rule
                    .active
                    .values()
                    .filter(|a| a.state == AlertState::Firing)
                    .map(|a| (map(&a.labels), a.annotations.clone()))
                    .collect();
                firing.sort();
                if !firing.is_empty() {
                    sightline_alerts.insert((m, rule.spec.name.clone()), firing);
                }
            }
        }
    }

    let mut compared = 0;
    for m in 0..=MINUTES {
        let value = promql::instant(&store, &tenant, &limits.budget(), OUTPUTS, m * 60_000, 300_000).expect("query");
        let Value::Vector(v) = value else { panic!("a vector") };
        let ours: Answer = v.into_iter().map(|s| (map(&s.labels), s.v)).collect();
        let theirs = prom_answers.get(&m).cloned().unwrap_or_default();
        let keys: Vec<_> = ours.keys().chain(theirs.keys()).collect();
        for k in keys {
            match (ours.get(k), theirs.get(k)) {
                (Some(a), Some(b)) => assert!(close(*a, *b), "minute {m}, {k:?}: Sightline {a}, Prometheus {b}"),
                (a, b) => panic!("minute {m}, {k:?}: Sightline {a:?}, Prometheus {b:?}"),
            }
            compared += 1;
        }
    }
    for (key, mut firing) in prom_alerts.clone() {
        firing.sort();
        assert_eq!(sightline_alerts.get(&key), Some(&firing), "firing alerts of {key:?}");
    }
    for key in sightline_alerts.keys() {
        assert!(prom_alerts.contains_key(key), "{key:?} fires in Sightline only");
    }
    // The data set exercises what it is meant to.
    let fired: std::collections::BTreeSet<&str> = prom_alerts.keys().map(|(_, n)| n.as_str()).collect();
    for name in ["InstanceDown", "HotRoom", "ColdRoom", "QueueMissing", "DiskFilling", "ManyRequests", "CounterReset"] {
        assert!(fired.contains(name), "{name} never fires in the data set: {fired:?}");
    }
    assert!(compared > 2000, "{compared} points compared");
}

const SHAPES: &str = r#"groups:
  - name: shape
    interval: 1s
    limit: 10
    rules:
      - record: shape:labelled
        expr: vector(1)
        labels:
          team: a
      - record: shape:bare
        expr: vector(2)
      - alert: ShapeFiring
        expr: vector(1)
        keep_firing_for: 1m
        labels:
          severity: page
        annotations:
          summary: "value {{ $value }}"
      - alert: ShapePending
        expr: vector(3)
        for: 1h
      - alert: ShapeFailing
        expr: (vector(1) or label_replace(vector(1), "x", "1", "", "")) * on() (vector(1) or label_replace(vector(1), "x", "1", "", ""))
"#;

/// A JSON document with every value replaced by its type: what must agree
/// between two servers that answer the same thing at different times.
fn shape(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as V;
    match v {
        V::Object(m) => V::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        V::Array(a) => V::Array(a.iter().map(shape).collect()),
        V::String(_) => V::String("string".into()),
        V::Number(_) => V::String("number".into()),
        V::Bool(_) => V::String("bool".into()),
        V::Null => V::Null,
    }
}

/// The parts of a rules answer that do not depend on when it was asked.
fn stable(rules: &serde_json::Value) -> serde_json::Value {
    let mut v = rules.clone();
    for g in v["data"]["groups"].as_array_mut().expect("groups") {
        for key in ["evaluationTime", "lastEvaluation"] {
            g.as_object_mut().expect("group").remove(key);
        }
        for r in g["rules"].as_array_mut().expect("rules") {
            let r = r.as_object_mut().expect("rule");
            for key in ["evaluationTime", "lastEvaluation", "query", "lastError"] {
                r.remove(key);
            }
            for a in r.get_mut("alerts").and_then(|a| a.as_array_mut()).into_iter().flatten() {
                a.as_object_mut().expect("alert").remove("activeAt");
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_and_alerts_apis_answer_as_prometheus_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_path = dir.path().join("rules.yml");
    std::fs::write(&rules_path, SHAPES).expect("rules");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs: []\n",
        rules_path.display()
    );
    let prometheus = common::prometheus::start(dir.path(), &config).await;
    let file = rules_path.display().to_string();
    let server = common::start(move |c| c.rules.files = vec![file]).await;
    let sightline = format!("http://{}/prometheus", server.server.api_addr);
    // Both have evaluated every rule: the failing one reports its error, the
    // firing one fires.
    let settled = |base: String| async move {
        let body = common::get_json(&format!("{base}/api/v1/rules"), &[], None).await?;
        let rules = body["data"]["groups"][0]["rules"].as_array()?;
        let ready = rules.iter().all(|r| r["health"] != "unknown")
            && rules.iter().any(|r| r["name"] == "ShapeFiring" && r["state"] == "firing");
        ready.then_some(body)
    };
    let theirs = common::eventually("Prometheus's rules", || settled(prometheus.url.clone())).await;
    let ours = common::eventually("Sightline's rules", || settled(sightline.clone())).await;
    assert_eq!(shape(&ours), shape(&theirs), "Sightline: {ours:#}\nPrometheus: {theirs:#}");
    assert_eq!(stable(&ours), stable(&theirs));
    let failing = |v: &serde_json::Value| v["data"]["groups"][0]["rules"][4]["lastError"].as_str().map(str::to_owned);
    assert!(failing(&ours).expect("lastError").contains("many-to-many"));
    assert!(failing(&theirs).expect("lastError").contains("many-to-many"));

    let alerts = |base: String| async move { common::get_json(&format!("{base}/api/v1/alerts"), &[], None).await };
    let (ours, theirs) =
        (alerts(sightline.clone()).await.expect("alerts"), alerts(prometheus.url.clone()).await.expect("alerts"));
    assert_eq!(shape(&ours), shape(&theirs), "Sightline: {ours:#}\nPrometheus: {theirs:#}");
    let without_times = |v: &serde_json::Value| {
        let mut v = v.clone();
        for a in v["data"]["alerts"].as_array_mut().expect("alerts") {
            a.as_object_mut().expect("alert").remove("activeAt");
        }
        let mut list = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        list.sort_by_key(|a| a["labels"]["alertname"].as_str().map(str::to_owned));
        list
    };
    assert_eq!(without_times(&ours), without_times(&theirs));
    server.server.shutdown().await.expect("shutdown");
}
