use super::{RuleKind, parse};

const GOOD: &str = r#"
groups:
  - name: example
    interval: 30s
    query_offset: 1m
    limit: 10
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
        labels:
          team: web
      - record: one
        expr: 1
      - alert: HighErrorRate
        expr: job:http_requests:rate5m > 0.5
        for: 10m
        keep_firing_for: 5m
        labels:
          severity: page
          level: 2
        annotations:
          summary: "High error rate on {{ $labels.job }}: {{ $value | humanize }}"
  - name: second
    rules: []
"#;

#[test]
fn reads_a_prometheus_rule_file() {
    let groups = parse("rules.yml", GOOD).expect("valid");
    assert_eq!(groups.len(), 2);
    let g = &groups[0];
    assert_eq!((g.name.as_str(), g.limit), ("example", 10));
    assert_eq!(g.interval, Some(std::time::Duration::from_secs(30)));
    assert_eq!(g.query_offset, Some(std::time::Duration::from_secs(60)));
    assert_eq!(g.rules[1].expr, "1");
    let RuleKind::Alerting(a) = &g.rules[2].kind else { panic!("an alerting rule") };
    assert_eq!(a.hold, std::time::Duration::from_secs(600));
    assert_eq!(a.keep_firing_for, std::time::Duration::from_secs(300));
    assert_eq!(g.rules[2].labels["level"], "2");
    assert_eq!(a.annotation_templates.len(), 1);
    assert!(parse("empty.yml", "").expect("an empty file is fine").is_empty());
}

#[test]
fn names_the_file_group_and_rule_of_each_error() {
    let rule = |body: &str| format!("groups:\n  - name: g\n    rules:\n      - {body}\n");
    let cases = [
        ("groups: [".to_string(), "did not find expected".to_string()),
        ("groups:\n  - name: g\n    colour: red\n    rules: []\n".to_string(), "unknown field `colour`".into()),
        (rule("record: x\n        expr: up\n        colour: red"), "unknown field `colour`".into()),
        ("groups:\n  - rules: []\n".to_string(), "a group name must not be empty".into()),
        ("groups:\n  - name: g\n  - name: g\n".to_string(), "group name \"g\" is repeated in the same file".into()),
        (rule("record: x\n        expr: sum(up"), "group \"g\", rule 1 (\"x\"): could not parse expression".into()),
        (rule("record: x"), "field 'expr' must be set in rule".into()),
        (rule("record: x\n        alert: y\n        expr: up"), "only one of 'record' and 'alert' must be set".into()),
        (rule("expr: up"), "one of 'record' or 'alert' must be set".into()),
        (rule("record: 1x\n        expr: up"), "invalid recording rule name: 1x".into()),
        (rule("record: x\n        expr: up\n        for: 1m"), "invalid field 'for' in recording rule".into()),
        (rule("alert: A\n        expr: up\n        for: 10 minutes"), "not a valid duration string".into()),
        (rule("alert: A\n        expr: up\n        labels:\n          0bad: x"), "invalid label name: 0bad".into()),
        (
            rule("alert: A\n        expr: up\n        annotations:\n          s: '{{ nosuch }}'"),
            "annotation \"s\": template: __alert_A:1: function \"nosuch\" not defined".into(),
        ),
        (
            rule("record: x\n        expr: up\n      - record: x\n        expr: up + 1"),
            "rule 2 (\"x\"): \"x\" is repeated in the group with the same labels".into(),
        ),
        (
            "groups:\n  - name: g\n    interval: 1x\n    rules: []\n".to_string(),
            "group \"g\": not a valid duration string".into(),
        ),
    ];
    for (text, message) in cases {
        let e = parse("bad.yml", &text).expect_err(&text).to_string();
        assert!(e.starts_with("bad.yml: "), "{e}");
        assert!(e.contains(&message), "{text}\n→ {e}\nwanted {message}");
    }
}
