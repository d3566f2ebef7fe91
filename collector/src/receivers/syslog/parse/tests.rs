use sightline_proto::otlp::common::any_value;

use super::{Message, parse};

const NOW: u64 = 1_733_500_000_000_000_000; // 2024-12-06T15:46:40Z

fn body(m: &Message) -> &str {
    match m.record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s,
        _ => "",
    }
}

fn attr(m: &Message, key: &str) -> Option<String> {
    m.record.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    })
}

/// A message and what it parses to: service, host, time, severity text, body.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, u64, &'a str, &'a str);

#[test]
fn each_form_of_message_parses() {
    let cases: &[Case] = &[
        (
            "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event",
            "evntslog",
            Some("mymachine.example.com"),
            1_065_910_455_003_000_000,
            "notice",
            "An application event",
        ),
        (
            "<34>1 2003-10-11T22:14:15.003-07:00 host su - ID47 - \u{feff}'su root' failed",
            "su",
            Some("host"),
            1_065_935_655_003_000_000,
            "crit",
            "'su root' failed",
        ),
        ("<13>1 - - - - - -", "syslog", None, NOW, "notice", ""),
        (
            "<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick",
            "su",
            Some("mymachine"),
            1_728_684_855_000_000_000,
            "crit",
            "'su root' failed for lonvick",
        ),
        ("<11>myapp: disk full\u{0}", "myapp", None, NOW, "err", "disk full"),
        ("<14>hello world\n", "syslog", None, NOW, "info", "hello world"),
    ];
    for (raw, service, host, time, severity, text) in cases {
        let m = parse(raw, NOW);
        assert_eq!(m.service, *service, "{raw}");
        assert_eq!(m.host.as_deref(), *host, "{raw}");
        assert_eq!(m.record.time_unix_nano, *time, "{raw}");
        assert_eq!(m.record.severity_text, *severity, "{raw}");
        assert_eq!(body(&m), *text, "{raw}");
        assert_eq!(attr(&m, "syslog.malformed"), None, "{raw}");
    }
    let m = parse(cases[0].0, NOW);
    assert_eq!(attr(&m, "syslog.facility").as_deref(), Some("20"));
    assert_eq!(attr(&m, "syslog.msgid").as_deref(), Some("ID47"));
    assert_eq!(attr(&m, "syslog.sd.exampleSDID@32473.eventSource").as_deref(), Some("Application"));
    assert_eq!(attr(&parse(cases[3].0, NOW), "syslog.procid").as_deref(), Some("230"));
}

#[test]
fn what_does_not_parse_is_kept_whole_and_flagged() {
    for raw in ["no priority at all", "<999>1 x", "<13>1 2003-10-11T22:14:15Z host app - - [unclosed", ""] {
        let m = parse(raw, NOW);
        assert_eq!(body(&m), raw, "kept whole");
        assert_eq!(attr(&m, "syslog.malformed").as_deref(), Some("true"), "{raw}");
        assert_eq!(m.record.time_unix_nano, NOW);
    }
}
