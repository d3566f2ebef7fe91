//! Loki's query API as Grafana's Loki data source uses it (Grafana cannot
//! run here; its requests are replayed as `pkg/tsdb/loki/api.go` sends
//! them: `/loki/api/v1/query_range?direction=backward&end=…&limit=…&query=…&start=…&step=…`
//! with nanosecond times, `/loki/api/v1/labels`, `/label/{name}/values`,
//! `/series`, `/index/stats` from its query editor). Lines are pushed with
//! Loki's own push API; each LogQL answer is compared with what a
//! brute-force evaluation of the same lines gives, in Loki's JSON.

use sightline_testkit as common;

use std::collections::BTreeMap;

use serde_json::{Value, json};

type Labels = BTreeMap<String, String>;

/// A pushed line as the brute force sees it.
#[derive(Clone, Debug)]
struct L {
    ts: i64,
    service: &'static str,
    env: &'static str,
    text: String,
    /// What `| json` or `| logfmt` extracts.
    fields: Labels,
}

impl L {
    fn stream(&self) -> Labels {
        [("service_name", self.service), ("env", self.env)].iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    /// The stream labels and the parsed fields.
    fn parsed(&self) -> Labels {
        let mut l = self.stream();
        l.extend(self.fields.clone());
        l
    }

    fn field(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(String::as_str)
    }

    fn num(&self, k: &str) -> Option<f64> {
        self.field(k)?.trim_end_matches("ms").parse().ok()
    }
}

const SECOND: i64 = 1_000_000_000;

/// 120 lines, one every 5 s from `base` + 250 ms: checkout (JSON, prod and
/// dev) and payments (logfmt, prod) in turn.
fn lines(base: i64) -> Vec<L> {
    let levels = ["info", "warn", "error"];
    (0..120i64)
        .map(|k| {
            let ts = base + k * 5 * SECOND + SECOND / 4;
            let level = levels[((k / 3) % 3) as usize];
            let (service, env) = [("checkout", "prod"), ("checkout", "dev"), ("payments", "prod")][(k % 3) as usize];
            if service == "checkout" {
                let status = [200, 200, 404, 503][((k / 2) % 4) as usize];
                let latency = (k * 37) % 900;
                let path = if k % 4 < 2 { "/pay" } else { "/cart" };
                let text = format!(r#"{{"level":"{level}","status":{status},"latency_ms":{latency},"path":"{path}"}}"#);
                let fields = [
                    ("level", level.to_owned()),
                    ("status", status.to_string()),
                    ("latency_ms", latency.to_string()),
                    ("path", path.to_owned()),
                ];
                L { ts, service, env, text, fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect() }
            } else {
                let amount = 5 + (k * 13) % 200;
                let duration = (k * 29) % 700;
                let text = format!(r#"level={level} amount={amount} duration={duration}ms msg="charge done""#);
                let fields = [
                    ("level", level.to_owned()),
                    ("amount", amount.to_string()),
                    ("duration", format!("{duration}ms")),
                    ("msg", "charge done".into()),
                ];
                L { ts, service, env, text, fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect() }
            }
        })
        .collect()
}

async fn push(s: &common::TestServer, data: &[L]) {
    let mut streams: BTreeMap<(&str, &str), Vec<Value>> = BTreeMap::new();
    for l in data {
        streams.entry((l.service, l.env)).or_default().push(json!([l.ts.to_string(), l.text]));
    }
    let body = json!({"streams": streams.into_iter().map(|((service, env), values)| json!({"stream": {"service_name": service, "env": env}, "values": values})).collect::<Vec<_>>()});
    let r = reqwest::Client::new().post(s.api_url("/loki/api/v1/push")).json(&body).send().await.expect("push");
    assert_eq!(r.status(), 204);
}

/// Loki's `streams` answer for lines (newest first), grouped by their labels.
fn streams(found: Vec<(Labels, &L)>) -> Value {
    let mut by: BTreeMap<Labels, Vec<&L>> = BTreeMap::new();
    for (labels, l) in found {
        by.entry(labels).or_default().push(l);
    }
    Value::Array(
        by.into_iter()
            .map(|(labels, mut ls)| {
                ls.sort_by_key(|l| std::cmp::Reverse(l.ts));
                json!({"stream": labels, "values": ls.iter().map(|l| json!([l.ts.to_string(), l.text])).collect::<Vec<_>>()})
            })
            .collect(),
    )
}

/// Loki's `matrix` answer: per series, `[seconds, "value"]` at the steps that have one.
fn matrix(series: BTreeMap<Labels, Vec<(i64, f64)>>) -> Value {
    Value::Array(
        series
            .into_iter()
            .map(|(labels, points)| {
                json!({"metric": labels, "values": points.iter().map(|(t, v)| json!([*t as f64 / 1e9, v.to_string()])).collect::<Vec<_>>()})
            })
            .collect(),
    )
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

/// A metric expectation: at each step, the lines of the window `(t − range, t]` → series values.
/// Series values of one window's lines.
type Expect = dyn Fn(&[&L]) -> Vec<(Labels, f64)>;

fn per_step(data: &[L], steps: &[i64], range: i64, f: &Expect) -> Value {
    let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for &t in steps {
        let window: Vec<&L> = data.iter().filter(|l| l.ts > t - range && l.ts <= t).collect();
        for (labels, v) in f(&window) {
            series.entry(labels).or_default().push((t, v));
        }
    }
    matrix(series)
}

/// Groups the window's lines by `key` and reduces each group.
fn group(w: &[&L], key: impl Fn(&L) -> Option<Labels>, reduce: impl Fn(&[&L]) -> f64) -> Vec<(Labels, f64)> {
    let mut g: BTreeMap<Labels, Vec<&L>> = BTreeMap::new();
    for l in w {
        if let Some(k) = key(l) {
            g.entry(k).or_default().push(l);
        }
    }
    g.into_iter().map(|(k, ls)| (k, reduce(&ls))).collect()
}

fn sorted_result(mut v: Value) -> Value {
    if let Some(a) = v.as_array_mut() {
        a.sort_by_key(|x| x.get("stream").or_else(|| x.get("metric")).map(|m| m.to_string()).unwrap_or_default());
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logql_answers_equal_a_brute_force_evaluation_in_loki_s_json() {
    let s = common::start(|_| {}).await;
    let now = common::now_nanos() as i64;
    let base = (now - 20 * 60 * SECOND) / (60 * SECOND) * (60 * SECOND);
    let data = lines(base);
    push(&s, &data).await;
    let (start, end) = (base, base + 10 * 60 * SECOND);
    // Lines are searchable at the next commit.
    common::log_hits(&s, "service:checkout", 80).await;
    let steps: Vec<i64> = (1..=10).map(|i| start + i * 60 * SECOND).collect();
    let (step_start, step_end) = (steps[0], steps[9]);

    let checkout = |l: &L| l.service == "checkout";
    let payments = |l: &L| l.service == "payments";
    type LogCase = (&'static str, Box<dyn Fn(&L) -> Option<Labels>>);
    let log_cases: Vec<LogCase> = vec![
        (r#"{service_name="checkout"}"#, Box::new(move |l| checkout(l).then(|| l.stream()))),
        (
            r#"{service_name="checkout", env="dev"}"#,
            Box::new(move |l| (checkout(l) && l.env == "dev").then(|| l.stream())),
        ),
        (r#"{env="prod"}"#, Box::new(|l| (l.env == "prod").then(|| l.stream()))),
        (r#"{service_name=~"check.*|pay.*", env!="dev"}"#, Box::new(|l| (l.env != "dev").then(|| l.stream()))),
        (r#"{service_name!~"pay.*"}"#, Box::new(move |l| checkout(l).then(|| l.stream()))),
        (
            r#"{service_name="checkout"} |= "503""#,
            Box::new(move |l| (checkout(l) && l.text.contains("503")).then(|| l.stream())),
        ),
        (
            r#"{service_name="checkout"} != "/pay" |= "error""#,
            Box::new(move |l| {
                (checkout(l) && !l.text.contains("/pay") && l.text.contains("error")).then(|| l.stream())
            }),
        ),
        (
            r#"{env="prod"} |~ "level=(warn|error)""#,
            Box::new(move |l| (payments(l) && l.field("level") != Some("info")).then(|| l.stream())),
        ),
        (
            r#"{service_name="payments"} !~ "amount=1\\d\\d""#,
            Box::new(move |l| {
                (payments(l) && !(l.num("amount").is_some_and(|a| (100.0..200.0).contains(&a)))).then(|| l.stream())
            }),
        ),
        (r#"{service_name="checkout"} | json"#, Box::new(move |l| checkout(l).then(|| l.parsed()))),
        (
            r#"{service_name="checkout"} | json | status >= 500"#,
            Box::new(move |l| (checkout(l) && l.num("status") >= Some(500.0)).then(|| l.parsed())),
        ),
        (
            r#"{service_name="checkout"} | json | latency_ms > 600 and path="/cart""#,
            Box::new(move |l| {
                (checkout(l) && l.num("latency_ms") > Some(600.0) && l.field("path") == Some("/cart"))
                    .then(|| l.parsed())
            }),
        ),
        (
            r#"{service_name="checkout"} | json | level=~"warn|error" | keep level"#,
            Box::new(move |l| {
                (checkout(l) && l.field("level") != Some("info"))
                    .then(|| labels(&[("level", l.field("level").unwrap_or_default())]))
            }),
        ),
        (
            r#"{service_name="payments"} | logfmt | duration > 500ms | drop msg, amount"#,
            Box::new(move |l| {
                (payments(l) && l.num("duration") > Some(500.0)).then(|| {
                    let mut p = l.parsed();
                    p.remove("msg");
                    p.remove("amount");
                    p
                })
            }),
        ),
        (
            r#"{service_name="payments"} | logfmt | amount < 20 or level="error" | label_format lvl=level"#,
            Box::new(move |l| {
                (payments(l) && (l.num("amount") < Some(20.0) || l.field("level") == Some("error"))).then(|| {
                    let mut p = l.parsed();
                    let level = p.remove("level").unwrap_or_default();
                    p.insert("lvl".into(), level);
                    p
                })
            }),
        ),
    ];
    let client = reqwest::Client::new();
    let query = |q: String, extra: Vec<(&'static str, String)>| {
        let (client, url) = (client.clone(), s.api_url("/loki/api/v1/query_range"));
        async move {
            let r = client.get(url).query(&[("query", q.as_str())]).query(&extra).send().await.expect("GET");
            let status = r.status();
            let body: Value = r.json().await.unwrap_or_else(|e| panic!("{q}: {status}: {e}"));
            assert_eq!(body["status"], "success", "{q}: {body}");
            body["data"].clone()
        }
    };
    let mut checked = 0;
    for (q, keep) in &log_cases {
        let found: Vec<(Labels, &L)> = data.iter().filter_map(|l| keep(l).map(|labels| (labels, l))).collect();
        let extra = vec![
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("limit", "1000".into()),
            ("direction", "backward".into()),
        ];
        let got = query((*q).to_owned(), extra).await;
        assert_eq!(got["resultType"], "streams", "{q}");
        assert_eq!(sorted_result(got["result"].clone()), sorted_result(streams(found)), "{q}");
        checked += 1;
    }
    // The limit keeps the newest lines (backward) or the oldest (forward).
    let extra = |dir: &str| {
        vec![("start", start.to_string()), ("end", end.to_string()), ("limit", "3".into()), ("direction", dir.into())]
    };
    let newest = query(r#"{service_name="payments"}"#.into(), extra("backward")).await;
    let mut ps: Vec<&L> = data.iter().filter(|l| payments(l)).collect();
    ps.sort_by_key(|l| std::cmp::Reverse(l.ts));
    assert_eq!(newest["result"], streams(ps[..3].iter().map(|l| (l.stream(), *l)).collect()));
    let oldest = query(r#"{service_name="payments"}"#.into(), extra("forward")).await;
    let values: Vec<&str> = oldest["result"][0]["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v[1].as_str().expect("line"))
        .collect();
    ps.reverse();
    assert_eq!(values, ps[..3].iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), "forward: oldest first");
    checked += 2;

    let minute = 60 * SECOND;
    let by_stream = |w: &[&L], keep: &dyn Fn(&L) -> bool, reduce: &dyn Fn(&[&L]) -> f64| {
        group(w, |l| keep(l).then(|| l.stream()), reduce)
    };
    type MetricCase = (&'static str, i64, Box<Expect>);
    let n = |ls: &[&L]| ls.len() as f64;
    let metric_cases: Vec<MetricCase> = vec![
        (r#"count_over_time({service_name="checkout"}[1m])"#, minute, Box::new(move |w| by_stream(w, &checkout, &n))),
        (
            r#"count_over_time({service_name="checkout"}[2m])"#,
            2 * minute,
            Box::new(move |w| by_stream(w, &checkout, &n)),
        ),
        (
            r#"rate({service_name="payments"}[1m])"#,
            minute,
            Box::new(move |w| by_stream(w, &payments, &|ls| ls.len() as f64 / 60.0)),
        ),
        (
            r#"bytes_over_time({service_name="payments"}[1m])"#,
            minute,
            Box::new(move |w| by_stream(w, &payments, &|ls| ls.iter().map(|l| l.text.len() as f64).sum())),
        ),
        (
            r#"bytes_rate({service_name="payments"}[2m])"#,
            2 * minute,
            Box::new(move |w| {
                by_stream(w, &payments, &|ls| ls.iter().map(|l| l.text.len() as f64).sum::<f64>() / 120.0)
            }),
        ),
        (
            r#"sum(count_over_time({env="prod"}[1m]))"#,
            minute,
            Box::new(|w| group(w, |l| (l.env == "prod").then(Labels::new), |ls| ls.len() as f64)),
        ),
        (
            r#"sum by (service_name) (count_over_time({env=~".+"}[1m]))"#,
            minute,
            Box::new(|w| group(w, |l| Some(labels(&[("service_name", l.service)])), |ls| ls.len() as f64)),
        ),
        (
            r#"sum(count_over_time({env=~".+"}[1m])) by (env)"#,
            minute,
            Box::new(|w| group(w, |l| Some(labels(&[("env", l.env)])), |ls| ls.len() as f64)),
        ),
        (
            r#"count(count_over_time({env=~".+"}[1m]))"#,
            minute,
            Box::new(|w| {
                let streams: std::collections::BTreeSet<Labels> = w.iter().map(|l| l.stream()).collect();
                if streams.is_empty() { vec![] } else { vec![(Labels::new(), streams.len() as f64)] }
            }),
        ),
        (
            r#"sum without (env) (count_over_time({service_name="checkout"}[1m]))"#,
            minute,
            Box::new(move |w| {
                group(w, |l| checkout(l).then(|| labels(&[("service_name", "checkout")])), |ls| ls.len() as f64)
            }),
        ),
        (
            r#"sum by (level) (count_over_time({service_name="checkout"} | json [1m]))"#,
            minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| checkout(l).then(|| labels(&[("level", l.field("level").unwrap_or_default())])),
                    |ls| ls.len() as f64,
                )
            }),
        ),
        (
            r#"sum by (status) (count_over_time({service_name="checkout"} | json | status >= 400 [2m]))"#,
            2 * minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| {
                        (checkout(l) && l.num("status") >= Some(400.0))
                            .then(|| labels(&[("status", l.field("status").unwrap_or_default())]))
                    },
                    |ls| ls.len() as f64,
                )
            }),
        ),
        (
            r#"sum(count_over_time({service_name="checkout"} |= "error" [1m]))"#,
            minute,
            Box::new(move |w| {
                group(w, |l| (checkout(l) && l.text.contains("error")).then(Labels::new), |ls| ls.len() as f64)
            }),
        ),
        (
            r#"sum_over_time({service_name="payments"} | logfmt | unwrap amount [1m]) by (service_name)"#,
            minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| payments(l).then(|| labels(&[("service_name", "payments")])),
                    |ls| ls.iter().filter_map(|l| l.num("amount")).sum(),
                )
            }),
        ),
        (
            r#"avg_over_time({service_name="payments"} | logfmt | unwrap amount [2m]) by (level)"#,
            2 * minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| payments(l).then(|| labels(&[("level", l.field("level").unwrap_or_default())])),
                    |ls| ls.iter().filter_map(|l| l.num("amount")).sum::<f64>() / ls.len() as f64,
                )
            }),
        ),
        (
            r#"max_over_time({service_name="checkout"} | json | unwrap latency_ms [1m]) by (path)"#,
            minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| checkout(l).then(|| labels(&[("path", l.field("path").unwrap_or_default())])),
                    |ls| ls.iter().filter_map(|l| l.num("latency_ms")).fold(f64::MIN, f64::max),
                )
            }),
        ),
        (
            r#"min_over_time({service_name="checkout"} | json | unwrap latency_ms [2m]) by (env)"#,
            2 * minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| checkout(l).then(|| labels(&[("env", l.env)])),
                    |ls| ls.iter().filter_map(|l| l.num("latency_ms")).fold(f64::MAX, f64::min),
                )
            }),
        ),
        (
            r#"quantile_over_time(0.5, {service_name="payments"} | logfmt | unwrap duration(duration) [2m]) by (service_name)"#,
            2 * minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| payments(l).then(|| labels(&[("service_name", "payments")])),
                    |ls| {
                        let mut v: Vec<f64> =
                            ls.iter().filter_map(|l| l.num("duration")).map(|ms| ms / 1000.0).collect();
                        v.sort_by(f64::total_cmp);
                        let rank = 0.5 * (v.len() - 1) as f64;
                        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
                        let w = rank - rank.floor();
                        v[lo] * (1.0 - w) + v[hi] * w
                    },
                )
            }),
        ),
        (
            r#"sum by (service_name) (sum_over_time({env="prod"} |= "amount=" | logfmt | unwrap bytes(amount) [1m]))"#,
            minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| payments(l).then(|| labels(&[("service_name", "payments")])),
                    |ls| ls.iter().filter_map(|l| l.num("amount")).sum(),
                )
            }),
        ),
        (
            r#"topk(1, sum by (env) (count_over_time({service_name="checkout"}[1m])))"#,
            minute,
            Box::new(move |w| {
                let mut g = group(w, |l| checkout(l).then(|| labels(&[("env", l.env)])), |ls| ls.len() as f64);
                g.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                g.truncate(1);
                g
            }),
        ),
        (
            r#"sum(count_over_time({service_name="checkout"}[1m])) / sum(count_over_time({env=~".+"}[1m]))"#,
            minute,
            Box::new(move |w| {
                if w.is_empty() {
                    return vec![];
                }
                let c = w.iter().filter(|l| checkout(l)).count() as f64;
                if c == 0.0 { vec![] } else { vec![(Labels::new(), c / w.len() as f64)] }
            }),
        ),
        (
            r#"sum by (env) (count_over_time({service_name="checkout"}[1m])) * 2 + 1"#,
            minute,
            Box::new(move |w| {
                group(w, |l| checkout(l).then(|| labels(&[("env", l.env)])), |ls| ls.len() as f64 * 2.0 + 1.0)
            }),
        ),
        (
            r#"sum by (env) (count_over_time({env=~".+"}[1m])) > 8"#,
            minute,
            Box::new(|w| {
                group(w, |l| Some(labels(&[("env", l.env)])), |ls| ls.len() as f64)
                    .into_iter()
                    .filter(|(_, v)| *v > 8.0)
                    .collect()
            }),
        ),
        (
            r#"sum by (env) (count_over_time({env=~".+"}[1m])) > bool 8"#,
            minute,
            Box::new(|w| group(w, |l| Some(labels(&[("env", l.env)])), |ls| f64::from(u8::from(ls.len() > 8)))),
        ),
        (
            r#"sum(rate({service_name="checkout"} | json | status=503 [1m])) by (path)"#,
            minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| {
                        (checkout(l) && l.field("status") == Some("503"))
                            .then(|| labels(&[("path", l.field("path").unwrap_or_default())]))
                    },
                    |ls| ls.len() as f64 / 60.0,
                )
            }),
        ),
        (
            r#"count_over_time({service_name="checkout"} | json | status != 200 | line_format "{{.path}}" |= "/pay" [1m])"#,
            minute,
            Box::new(move |w| {
                group(
                    w,
                    |l| {
                        (checkout(l) && l.field("status") != Some("200") && l.field("path") == Some("/pay"))
                            .then(|| l.parsed())
                    },
                    |ls| ls.len() as f64,
                )
            }),
        ),
        (
            r#"max by (service_name) (count_over_time({env=~".+"}[1m]))"#,
            minute,
            Box::new(|w| {
                let per: Vec<(Labels, f64)> = group(w, |l| Some(l.stream()), |ls| ls.len() as f64);
                let mut out: BTreeMap<Labels, f64> = BTreeMap::new();
                for (st, v) in per {
                    let k = labels(&[("service_name", st["service_name"].as_str())]);
                    let e = out.entry(k).or_insert(f64::MIN);
                    *e = e.max(v);
                }
                out.into_iter().collect()
            }),
        ),
    ];
    let range_params =
        vec![("start", step_start.to_string()), ("end", step_end.to_string()), ("step", "60s".to_owned())];
    for (q, range, expect) in &metric_cases {
        let got = query((*q).to_owned(), range_params.clone()).await;
        assert_eq!(got["resultType"], "matrix", "{q}");
        assert_eq!(
            sorted_result(got["result"].clone()),
            sorted_result(per_step(&data, &steps, *range, expect.as_ref())),
            "{q}"
        );
        checked += 1;
    }
    // absent_over_time: 1 where the window holds no line of the selector.
    let got = query(r#"absent_over_time({service_name="checkout", env="qa"}[1m])"#.into(), range_params.clone()).await;
    assert_eq!(
        got["result"],
        per_step(&data, &steps, minute, &|_| vec![(labels(&[("env", "qa"), ("service_name", "checkout")]), 1.0)])
    );
    let got = query(r#"absent_over_time({service_name="checkout"}[1m])"#.into(), range_params.clone()).await;
    assert_eq!(got["result"], json!([]), "present everywhere");
    checked += 2;
    // An instant query: a vector at `time`.
    let body: Value = client
        .get(s.api_url("/loki/api/v1/query"))
        .query(&[
            ("query", r#"sum by (env) (count_over_time({service_name="checkout"}[5m]))"#),
            ("time", &steps[5].to_string()),
        ])
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(body["data"]["resultType"], "vector");
    let window: Vec<&L> =
        data.iter().filter(|l| checkout(l) && l.ts > steps[5] - 5 * minute && l.ts <= steps[5]).collect();
    let want: Vec<Value> = group(&window, |l| Some(labels(&[("env", l.env)])), |ls| ls.len() as f64)
        .into_iter()
        .map(|(labels, v)| json!({"metric": labels, "value": [steps[5] as f64 / 1e9, v.to_string()]}))
        .collect();
    assert_eq!(body["data"]["result"], Value::Array(want));
    checked += 1;
    assert!(checked >= 40, "{checked} queries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grafana_s_editor_requests_and_loki_s_refusals() {
    let s = common::start(|_| {}).await;
    let now = common::now_nanos() as i64;
    let base = (now - 20 * 60 * SECOND) / (60 * SECOND) * (60 * SECOND);
    let data = lines(base);
    push(&s, &data).await;
    common::log_hits(&s, "service:payments", 40).await;
    let client = reqwest::Client::new();
    let get = |path: &str, q: Vec<(&str, String)>| {
        let (client, url) = (client.clone(), s.api_url(path));
        let q: Vec<(String, String)> = q.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        async move {
            let r = client.get(url).query(&q).send().await.expect("GET");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    };
    let range = || vec![("start", base.to_string()), ("end", (base + 11 * 60 * SECOND).to_string())];
    let (status, body) = get("/loki/api/v1/labels", range()).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"status": "success", "data": ["env", "service_name"]})
    );
    let (_, body) = get("/loki/api/v1/label/service_name/values", range()).await;
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["data"], json!(["checkout", "payments"]));
    let mut q = range();
    q.push(("query", r#"{service_name="checkout"}"#.into()));
    let (_, body) = get("/loki/api/v1/label/env/values", q).await;
    assert_eq!(serde_json::from_str::<Value>(&body).expect("json")["data"], json!(["dev", "prod"]));
    let mut q = range();
    q.push(("match[]", r#"{env="prod"}"#.into()));
    let (_, body) = get("/loki/api/v1/series", q).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["data"],
        json!([{"env": "prod", "service_name": "checkout"}, {"env": "prod", "service_name": "payments"}])
    );
    let mut q = range();
    q.push(("query", r#"{service_name="checkout"}"#.into()));
    let (_, body) = get("/loki/api/v1/index/stats", q).await;
    let stats: Value = serde_json::from_str(&body).expect("json");
    assert_eq!((stats["streams"].as_u64(), stats["entries"].as_u64()), (Some(2), Some(80)), "{stats}");
    let checkout_bytes: usize = data.iter().filter(|l| l.service == "checkout").map(|l| l.text.len()).sum();
    assert_eq!(stats["bytes"].as_u64(), Some(checkout_bytes as u64));
    let mut q = range();
    q.push(("query", r#"{service_name="checkout"}"#.into()));
    let (_, body) = get("/loki/api/v1/detected_labels", q).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json"),
        json!({"detectedLabels": [{"label": "env", "cardinality": 2}, {"label": "service_name", "cardinality": 1}]})
    );
    let (status, body) = get("/loki/api/v1/status/buildinfo", vec![]).await;
    assert_eq!(status, 200);
    assert!(
        serde_json::from_str::<Value>(&body).expect("json")["version"].as_str().is_some_and(|v| v.starts_with('3'))
    );

    // Loki's refusals: 400 with the reason as text.
    for (query, said) in [
        (r#"{service_name="checkout""#, "parse error"),
        (r#"sum(count_over_time({service_name="checkout"} | json | unwrap path [1m]))"#, "with unwrap"),
        (r#"sum(count_over_time({service_name="payments"} | json [1m]))"#, "pipeline error: 'JSONParserErr'"),
    ] {
        let mut q = range();
        q.push(("query", query.into()));
        let (status, body) = get("/loki/api/v1/query_range", q).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(said), "{query}: {body}");
    }
    let (status, body) = get("/loki/api/v1/query", vec![("query", r#"{service_name="checkout"}"#.into())]).await;
    assert_eq!(status, 400);
    assert!(body.contains("log queries are not supported as an instant query type"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_tail_sends_the_newest_lines_then_each_new_one() {
    use futures_util::StreamExt as _;
    let s = common::start(|_| {}).await;
    let client = reqwest::Client::new();
    let send = |lines: Vec<(i64, &str)>| {
        let (client, url) = (client.clone(), s.api_url("/loki/api/v1/push"));
        let values: Vec<Value> = lines.iter().map(|(ts, l)| json!([ts.to_string(), l])).collect();
        async move {
            let body = json!({"streams": [{"stream": {"service_name": "tailme"}, "values": values}]});
            assert_eq!(client.post(url).json(&body).send().await.expect("push").status(), 204);
        }
    };
    let now = common::now_nanos() as i64;
    send((1..=5).map(|i| (now - (10 - i) * SECOND, if i % 2 == 1 { "keep" } else { "drop" })).collect()).await;
    common::log_hits(&s, "service:tailme", 5).await;
    // As Grafana's live mode opens it.
    let url = reqwest::Url::parse_with_params(
        &format!("ws://{}/loki/api/v1/tail", s.server.api_addr),
        &[("query", r#"{service_name="tailme"} |= "keep""#), ("limit", "2")],
    )
    .expect("URL");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.expect("WebSocket");
    let mut next = async || -> Vec<(String, String)> {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("message");
        let body: Value = serde_json::from_str(message.to_text().expect("text")).expect("JSON");
        let stream = &body["streams"][0];
        assert_eq!(stream["stream"]["service_name"], "tailme", "{body}");
        stream["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| (v[0].as_str().unwrap_or_default().to_owned(), v[1].as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let first = next().await;
    let want: Vec<(String, String)> =
        [3, 5].iter().map(|i| ((now - (10 - i) * SECOND).to_string(), "keep".to_owned())).collect();
    assert_eq!(first, want, "the newest two matching lines, oldest first");
    send(vec![(common::now_nanos() as i64, "drop")]).await;
    let fresh = common::now_nanos() as i64;
    send(vec![(fresh, "keep")]).await;
    assert_eq!(next().await, vec![(fresh.to_string(), "keep".to_owned())], "only the new matching line");
}
