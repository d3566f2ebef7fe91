use super::ast::{BinOp, RangeFn, VectorFn};
use super::eval::{self, Steps, Value};
use super::pipeline::{Labels, Line};
use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn line(text: &str, pairs: &[(&str, &str)]) -> Line {
    Line { ts: 0, text: text.into(), labels: labels(pairs), stream: labels(pairs) }
}

/// The line through a log query's stages: its labels and text, or `None`.
fn through(query: &str, l: Line) -> Option<(Labels, String)> {
    let c = compile(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let Query::Log(log) = &c.query else { panic!("{query} is not a log query") };
    c.regexes.run(&log.stages, l).map(|(l, _)| (l.labels, l.text))
}

#[test]
fn stages_filter_parse_and_format_lines() {
    let app = [("service_name", "api")];
    let json = r#"{"level":"error","status":503,"latency":"1.5s","req":{"path":"/pay","size":"2KB"},"tags":[1]}"#;
    let logfmt = r#"level=warn msg="disk almost full" used=93.5 host=web-1"#;
    let keep = |q: &str, text: &str| through(q, line(text, &app)).is_some();
    assert!(keep(r#"{service_name="api"} |= "503""#, json));
    assert!(!keep(r#"{service_name="api"} != "503""#, json));
    assert!(keep(r#"{service_name="api"} |~ "stat.s""#, json));
    assert!(!keep(r#"{service_name="api"} !~ "(?i)STATUS""#, json));
    let (l, _) = through(r#"{service_name="api"} | json"#, line(json, &app)).expect("kept");
    assert_eq!(l["level"], "error");
    assert_eq!(l["status"], "503");
    assert_eq!(l["req_path"], "/pay");
    assert!(!l.contains_key("tags"), "arrays are skipped");
    for (q, kept) in [
        (r#"{service_name="api"} | json | status >= 500"#, true),
        (r#"{service_name="api"} | json | status == 503 and level="error""#, true),
        (r#"{service_name="api"} | json | status > 503 or level=~"err.*""#, true),
        (r#"{service_name="api"} | json | status > 503 or level!~"err.*""#, false),
        (r#"{service_name="api"} | json | latency > 1s"#, true),
        (r#"{service_name="api"} | json | latency > 2s"#, false),
        (r#"{service_name="api"} | json | req_size >= 2KB, req_size < 2KiB"#, true),
        (r#"{service_name="api"} | json | (status < 500 or level="error") | req_path="/pay""#, true),
        (r#"{service_name="api"} | json | missing="""#, true),
        (r#"{service_name="api"} | json | missing > 1"#, false),
    ] {
        assert_eq!(keep(q, json), kept, "{q}");
    }
    let (l, _) = through(r#"{service_name="api"} | logfmt"#, line(logfmt, &app)).expect("kept");
    assert_eq!((l["level"].as_str(), l["msg"].as_str(), l["used"].as_str()), ("warn", "disk almost full", "93.5"));
    let (l, text) = through(
        r#"{service_name="api"} | logfmt | line_format "{{.level}}: {{ .msg }} on {{.host}}" | label_format sev=level, where="{{.host}}!""#,
        line(logfmt, &app),
    )
    .expect("kept");
    assert_eq!(text, "warn: disk almost full on web-1");
    assert_eq!((l.get("sev").map(String::as_str), l.get("level")), (Some("warn"), None));
    assert_eq!(l["where"], "web-1!");
    let (l, _) = through(r#"{service_name="api"} | logfmt | drop msg, used"#, line(logfmt, &app)).expect("kept");
    assert!(!l.contains_key("msg") && !l.contains_key("used") && l.contains_key("host"));
    let (l, _) = through(r#"{service_name="api"} | logfmt | keep level"#, line(logfmt, &app)).expect("kept");
    assert_eq!(l.keys().collect::<Vec<_>>(), ["level"]);
    let access = r#"10.0.0.1 - - [01/May/2024:12:00:00 +0000] "GET /pay HTTP/1.1" 503 912"#;
    let (l, _) = through(
        r#"{service_name="api"} | pattern "<ip> - - [<_>] \"<method> <path> <_>\" <status> <bytes>""#,
        line(access, &app),
    )
    .expect("kept");
    assert_eq!(
        (l["ip"].as_str(), l["method"].as_str(), l["path"].as_str(), l["status"].as_str(), l["bytes"].as_str()),
        ("10.0.0.1", "GET", "/pay", "503", "912")
    );
    let (l, _) = through(r#"{service_name="api"} | regexp "\"(?P<method>\\w+) (?P<path>\S+)""#, line(access, &app))
        .expect("kept");
    assert_eq!((l["method"].as_str(), l["path"].as_str()), ("GET", "/pay"));
    let (l, _) = through(r#"{service_name="api"} | json"#, line("not json", &app)).expect("kept");
    assert_eq!(l["__error__"], "JSONParserErr");
    assert!(through(r#"{service_name="api"} | json | __error__="""#, line("not json", &app)).is_none());
}

#[test]
fn what_does_not_parse_or_run_is_named() {
    for (q, said) in [
        ("", "unexpected"),
        ("{}", "at least one"),
        (r#"{a="b""#, "expected }"),
        (r#"{a="b"} |= "x" or "y""#, "joined with `or`"),
        (r#"{a="b"} | json foo="bar""#, "json with parameters"),
        (r#"{a="b"} | unpack"#, "\"unpack\" is not supported"),
        (r#"{a="b"} | line_format "{{ toUpper .x }}""#, "only {{.label}}"),
        (r#"count_over_time({a="b"}[5m] offset 1h)"#, "offset is not supported"),
        (r#"sum_over_time({a="b"}[5m])"#, "without unwrap"),
        (r#"rate({a="b"} | unwrap x [5m])"#, "with unwrap"),
        (r#"histogram_quantile(0.9, x)"#, "not supported"),
        (r#"count_over_time({a="b"}[0s])"#, "range"),
        (r#"{a="b"} + 1"#, "unexpected"),
        (r#"{a=~"("}"#, "invalid regular expression"),
        (r#"{a="b"} | x > "y""#, "a string (=, !=, =~, !~)"),
    ] {
        let e = compile(q).expect_err(q).to_string();
        assert!(e.starts_with("parse error at line 1, col"), "{q}: {e}");
        assert!(e.contains(said), "{q}: {e}");
    }
}

#[test]
fn the_pushdown_keeps_only_what_the_store_can_check_exactly() {
    let Query::Log(log) =
        compile(r#"{service_name="api", env="prod", k8s_pod="x", host=~"web-.*", team!="a"}"#).expect("parses").query
    else {
        panic!("log query")
    };
    let expr = pushdown(&log.selector);
    let text = format!("{expr:?}");
    assert!(text.contains("Service") && text.contains("\"api\""), "{text}");
    assert!(text.contains("Resource(\"env\")"), "{text}");
    assert!(!text.contains("k8s") && !text.contains("web") && !text.contains("team"), "{text}");
}

fn steps(n: usize) -> Steps {
    Steps { start: 10_000_000_000, step: 10_000_000_000, count: n }
}

#[test]
fn range_aggregations_use_the_window_before_each_step() {
    // Lines at 1 s, 5 s, 9 s, 10 s, 15 s; steps at 10 s and 20 s; a 10 s window.
    let at = |s: f64| (s * 1e9) as i64;
    let mut samples = eval::Samples::new();
    samples.insert(labels(&[("a", "1")]), [1.0, 5.0, 9.0, 10.0, 15.0].iter().map(|&s| (at(s), s)).collect());
    let run = |f: RangeFn, param: Option<f64>| {
        let out = eval::range(f, param, 10_000_000_000, None, samples.clone(), steps(2), Labels::new());
        out[0].1.clone()
    };
    assert_eq!(run(RangeFn::Count, None), [Some(4.0), Some(1.0)]);
    assert_eq!(run(RangeFn::Rate, None), [Some(0.4), Some(0.1)]);
    assert_eq!(run(RangeFn::Sum, None), [Some(25.0), Some(15.0)]);
    assert_eq!(run(RangeFn::Avg, None), [Some(6.25), Some(15.0)]);
    assert_eq!(run(RangeFn::Min, None), [Some(1.0), Some(15.0)]);
    assert_eq!(run(RangeFn::Max, None), [Some(10.0), Some(15.0)]);
    assert_eq!(run(RangeFn::First, None), [Some(1.0), Some(15.0)]);
    assert_eq!(run(RangeFn::Last, None), [Some(10.0), Some(15.0)]);
    assert_eq!(run(RangeFn::Quantile, Some(0.5)), [Some(7.0), Some(15.0)]);
    // Nothing in (20 s, 30 s]: absent there only.
    let absent =
        eval::range(RangeFn::Absent, None, 10_000_000_000, None, samples.clone(), steps(3), labels(&[("a", "1")]));
    assert_eq!(absent, vec![(labels(&[("a", "1")]), vec![None, None, Some(1.0)])]);
}

#[test]
fn vector_aggregations_and_operators_go_step_by_step() {
    let v = |pairs: &[(&str, &str)], values: [Option<f64>; 2]| (labels(pairs), values.to_vec());
    let series = vec![
        v(&[("app", "a"), ("pod", "1")], [Some(1.0), Some(4.0)]),
        v(&[("app", "a"), ("pod", "2")], [Some(3.0), None]),
        v(&[("app", "b"), ("pod", "3")], [Some(5.0), Some(2.0)]),
    ];
    let by_app = ast::Grouping { without: false, labels: vec!["app".into()] };
    let sum = eval::vector(VectorFn::Sum, None, Some(&by_app), Value::Vector(series.clone()), steps(2));
    assert_eq!(sum, vec![v(&[("app", "a")], [Some(4.0), Some(4.0)]), v(&[("app", "b")], [Some(5.0), Some(2.0)])]);
    let total = eval::vector(VectorFn::Count, None, None, Value::Vector(series.clone()), steps(2));
    assert_eq!(total, vec![v(&[], [Some(3.0), Some(2.0)])]);
    let top = eval::vector(VectorFn::Topk, Some(1.0), None, Value::Vector(series.clone()), steps(2));
    assert_eq!(
        top,
        vec![v(&[("app", "a"), ("pod", "1")], [None, Some(4.0)]), v(&[("app", "b"), ("pod", "3")], [Some(5.0), None])]
    );
    let doubled =
        eval::binary(BinOp::Mul, false, Value::Vector(sum.clone()), Value::Scalar(2.0), steps(2)).expect("ok");
    assert_eq!(
        doubled,
        Value::Vector(vec![v(&[("app", "a")], [Some(8.0), Some(8.0)]), v(&[("app", "b")], [Some(10.0), Some(4.0)])])
    );
    let over =
        eval::binary(BinOp::Cmp(ast::Compare::Gt), false, Value::Vector(sum.clone()), Value::Scalar(4.5), steps(2));
    assert_eq!(over.expect("ok"), Value::Vector(vec![v(&[("app", "b")], [Some(5.0), None])]));
    let flags =
        eval::binary(BinOp::Cmp(ast::Compare::Gt), true, Value::Vector(sum.clone()), Value::Scalar(4.5), steps(2));
    assert_eq!(
        flags.expect("ok"),
        Value::Vector(vec![v(&[("app", "a")], [Some(0.0), Some(0.0)]), v(&[("app", "b")], [Some(1.0), Some(0.0)])])
    );
    let ratio = eval::binary(BinOp::Div, false, Value::Vector(sum.clone()), Value::Vector(sum.clone()), steps(2));
    assert_eq!(
        ratio.expect("ok"),
        Value::Vector(vec![v(&[("app", "a")], [Some(1.0), Some(1.0)]), v(&[("app", "b")], [Some(1.0), Some(1.0)])])
    );
    assert!(
        eval::binary(BinOp::Cmp(ast::Compare::Gt), false, Value::Scalar(1.0), Value::Scalar(2.0), steps(2)).is_err()
    );
}
