use std::collections::BTreeMap;

use super::{Data, Template};

fn expand(text: &str, value: f64) -> String {
    let labels: BTreeMap<String, String> =
        [("instance", "web-1.example.com:9100"), ("job", "node")].map(|(k, v)| (k.into(), v.into())).into();
    let external: BTreeMap<String, String> = [("cluster".to_string(), "eu-1".to_string())].into();
    let data = Data { labels: &labels, external_labels: &external, external_url: "http://sightline:7070", value };
    Template::parse(text).map(|t| t.expand(&data)).unwrap_or_else(|e| format!("parse error: {e}"))
}

#[test]
fn expands_as_prometheus_does() {
    // Expected texts are Prometheus 2.x's expansions of the same templates.
    let cases = [
        ("{{ $labels.instance }} is down", 1.0, "web-1.example.com:9100 is down"),
        ("{{ .Labels.job }}/{{ $externalLabels.cluster }}", 1.0, "node/eu-1"),
        ("value {{ $value }}", 0.25, "value 0.25"),
        ("value {{ $value }}", 1234567.0, "value 1.234567e+06"),
        ("{{ $value | humanize }}", 1234567.0, "1.235M"),
        ("{{ humanize $value }}", 0.00123, "1.23m"),
        ("{{ $value | humanize1024 }}", 1048576.0, "1Mi"),
        ("{{ $value | humanizeDuration }}", 93784.0, "1d 2h 3m 4s"),
        ("{{ $value | humanizeDuration }}", 0.25, "250ms"),
        ("{{ $value | humanizeDuration }}", 42.5, "42.5s"),
        ("{{ $value | humanizePercentage }}", 0.1234, "12.34%"),
        ("{{ printf \"%.2f\" $value }}", 2.0 / 3.0, "0.67"),
        ("{{ printf \"%d requests\" $value }}", 12.0, "12 requests"),
        ("{{ printf \"%5.1f|%-4s|\" $value \"ab\" }}", 4.25, "  4.2|ab  |"),
        ("{{ $labels.missing }}", 1.0, ""),
        ("{{ if gt $value 10.0 }}high{{ else }}low{{ end }}", 11.0, "high"),
        ("{{ if gt $value 10.0 }}high{{ else if gt $value 5.0 }}mid{{ else }}low{{ end }}", 6.0, "mid"),
        ("{{ $labels.instance | stripPort }}", 1.0, "web-1.example.com"),
        ("{{ $labels.instance | stripDomain }}", 1.0, "web-1:9100"),
        ("{{ $labels.job | toUpper }}", 1.0, "NODE"),
        ("{{ reReplaceAll \"(.*):.*\" \"$1\" $labels.instance }}", 1.0, "web-1.example.com"),
        ("{{ index $labels \"job\" }}", 1.0, "node"),
        ("a {{- \" b \" -}} c", 1.0, "a b c"),
        ("{{/* a comment */}}x", 1.0, "x"),
        ("{{ $x := $labels.job }}{{ $x }}!", 1.0, "node!"),
        (
            "{{ query \"up\" }}",
            1.0,
            "<error expanding template: function \"query\" is not supported by Sightline's alert templates>",
        ),
    ];
    for (text, value, want) in cases {
        assert_eq!(expand(text, value), want, "{text}");
    }
}

#[test]
fn refuses_what_go_refuses() {
    for (text, message) in [
        ("{{ nosuch $value }}", "function \"nosuch\" not defined"),
        ("{{ if $value }}x", "{{if}} without {{end}}"),
        ("{{ $value ", "unclosed action"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ range $labels }}{{ end }}", "{{range}} is not supported"),
    ] {
        let e = Template::parse(text).expect_err(text);
        assert!(e.0.contains(message), "{text}: {e}");
    }
}
