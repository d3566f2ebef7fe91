use std::sync::Arc;

use sightline_storage::model::{AttrValue, Attributes, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId};

use super::*;

const MS: u64 = 1_000_000;

/// gateway GET /checkout (1) ─┬─ cart POST /cart (2, client, error, 500) ── db SELECT (3, 300 ms)
///                            └─ cart GET /price (4)
fn trace() -> Vec<Span> {
    let span = |id: u8, parent: Option<u8>, service: &str, name: &str, start: u64, ms: u64| Span {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        flags: 0,
        name: name.into(),
        kind: SpanKind::Server,
        start_unix_nano: start * MS,
        end_unix_nano: (start + ms) * MS,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes: Attributes::default(),
        events: Vec::new(),
        links: Vec::new(),
        resource: Arc::new(Resource {
            service: service.into(),
            attributes: Attributes(vec![("service.name".into(), AttrValue::Str(service.into()))]),
        }),
        scope: Arc::new(Scope::default()),
    };
    let mut cart = span(2, Some(1), "cart", "POST /cart", 10, 400);
    cart.kind = SpanKind::Client;
    cart.status_code = StatusCode::Error;
    cart.status_message = "upstream failed".into();
    cart.attributes = Attributes(vec![
        ("http.status_code".into(), AttrValue::Int(500)),
        ("retry".into(), AttrValue::Bool(true)),
        ("ratio".into(), AttrValue::Double(0.25)),
    ]);
    let mut db = span(3, Some(2), "db", "SELECT", 20, 300);
    db.attributes = Attributes(vec![("db.system".into(), AttrValue::Str("postgres".into()))]);
    vec![span(1, None, "gateway", "GET /checkout", 0, 500), cart, db, span(4, Some(1), "cart", "GET /price", 420, 30)]
}

/// The ids of the spans a query answers on [`trace`], or `None`.
fn answer(q: &str) -> Option<Vec<u8>> {
    let spans = trace();
    let compiled = compile(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    compiled.run(&spans).map(|found| found.into_iter().map(|i| spans[i].span_id.0[0]).collect())
}

#[test]
fn filters_compare_intrinsics_and_attributes_by_type() {
    let cases: &[(&str, Option<Vec<u8>>)] = &[
        ("{}", Some(vec![1, 2, 3, 4])),
        (r#"{ resource.service.name = "cart" }"#, Some(vec![2, 4])),
        (r#"{ .service.name = "cart" && name =~ "GET.*" }"#, Some(vec![4])),
        (r#"{ name =~ "GET" }"#, None),
        (r#"{ name !~ "GET.*" }"#, Some(vec![2, 3])),
        ("{ status = error }", Some(vec![2])),
        ("{ status != error }", Some(vec![1, 3, 4])),
        ("{ kind = client }", Some(vec![2])),
        ("{ duration > 300ms }", Some(vec![1, 2])),
        ("{ duration >= 300ms && duration < 450ms }", Some(vec![2, 3])),
        ("{ span.http.status_code = 500 }", Some(vec![2])),
        ("{ span.http.status_code >= 400.5 }", Some(vec![2])),
        (r#"{ span.http.status_code = "500" }"#, None),
        ("{ span.http.status_code != 200 }", Some(vec![2])),
        ("{ .retry = true }", Some(vec![2])),
        ("{ .retry }", Some(vec![2])),
        ("{ !(.retry = true) }", Some(vec![1, 3, 4])),
        ("{ .ratio < 0.5 }", Some(vec![2])),
        ("{ .db.system != nil }", Some(vec![3])),
        ("{ span.db.system = nil && resource.service.name = \"db\" }", None),
        (r#"{ resource.db.system = "postgres" }"#, None),
        (r#"{ statusMessage = "upstream failed" }"#, Some(vec![2])),
        (r#"{ rootName = "GET /checkout" && rootServiceName = "gateway" }"#, Some(vec![1, 2, 3, 4])),
        ("{ traceDuration > 400ms && kind = server && duration < 100ms }", Some(vec![4])),
        (r#"{ span:name = "SELECT" || trace:rootService = "nobody" }"#, Some(vec![3])),
    ];
    for (q, want) in cases {
        assert_eq!(&answer(q), want, "{q}");
    }
}

#[test]
fn spansets_combine_and_relate_through_the_tree() {
    let cases: &[(&str, Option<Vec<u8>>)] = &[
        (r#"{ .service.name = "gateway" } > { .service.name = "cart" }"#, Some(vec![2, 4])),
        (r#"{ .service.name = "gateway" } > { .service.name = "db" }"#, None),
        (r#"{ .service.name = "gateway" } >> { .service.name = "db" }"#, Some(vec![3])),
        (r#"{ .service.name = "db" } < { }"#, Some(vec![2])),
        (r#"{ .service.name = "db" } << { }"#, Some(vec![1, 2])),
        (r#"{ name = "GET /price" } ~ { }"#, Some(vec![2])),
        (r#"{ .service.name = "gateway" } !> { }"#, Some(vec![1, 3])),
        (r#"{ .service.name = "gateway" } !>> { }"#, Some(vec![1])),
        (r#"{ name = "GET /price" } !~ { .service.name = "cart" }"#, Some(vec![4])),
        (r#"{ status = error } && { .db.system = "postgres" }"#, Some(vec![2, 3])),
        (r#"{ status = error } && { .db.system = "mysql" }"#, None),
        (r#"{ status = error } || { .db.system = "mysql" }"#, Some(vec![2])),
        (r#"({ kind = client } || { name = "SELECT" }) && { }"#, Some(vec![1, 2, 3, 4])),
        ("{ } | count() > 3", Some(vec![1, 2, 3, 4])),
        ("{ } | count() > 4", None),
        (r#"{ .service.name = "cart" } | avg(duration) > 200ms"#, Some(vec![2, 4])),
        (r#"{ .service.name = "cart" } | max(duration) < 400ms"#, None),
        ("{ } | min(duration) = 30ms", Some(vec![1, 2, 3, 4])),
        ("{ } | sum(span.http.status_code) = 500", Some(vec![1, 2, 3, 4])),
        ("{ } | { kind = client }", Some(vec![2])),
        ("{ status = error } | select(span.http.status_code, resource.service.name)", Some(vec![2])),
    ];
    for (q, want) in cases {
        assert_eq!(&answer(q), want, "{q}");
    }
}

#[test]
fn what_does_not_parse_or_run_is_named() {
    for (q, said) in [
        ("", "empty query"),
        ("{ .a = }", "expected a field or a value"),
        ("{ .a = 1", "expected }"),
        ("{ duration > 10parsecs }", "not a number or a duration"),
        ("{ span.a + 1 = 2 }", "arithmetic is not supported"),
        ("{ event.name = \"x\" }", "\"event.name\" is not supported"),
        ("{ foo = 1 }", "unknown field \"foo\""),
        ("{ } | by(resource.service.name)", "by() is not supported"),
        ("{ } | count() =~ 3", "regular expression on an aggregate"),
        ("{ } &>> { }", "union structural operators"),
        ("{ name =~ \"(\" }", "regular expression"),
        ("{ .a = \"open }", "not closed"),
    ] {
        let e = compile(q).expect_err(q).to_string();
        assert!(e.starts_with("invalid TraceQL query: parse error at col"), "{q}: {e}");
        assert!(e.contains(said), "{q}: {e}");
    }
}

#[test]
fn the_pushdown_is_a_condition_every_answer_meets() {
    let q = |text: &str| pushdown(&parse(text).expect("parses"));
    let p = q(r#"{ resource.service.name = "cart" && name = "x" && status = error && duration > 1ms && span.k = 5 }"#);
    assert_eq!(p.service.as_deref(), Some("cart"));
    assert_eq!(p.name.as_deref(), Some("x"));
    assert!(p.errors_only);
    assert_eq!(p.min_duration_nanos, Some(MS + 1));
    assert_eq!(p.attributes, vec![("k".to_owned(), "5".to_owned())]);
    // `.service.name` may be a span attribute: only as an attribute.
    assert_eq!(q(r#"{ .service.name = "cart" }"#).service, None);
    // Nothing is necessary across `||`, inside `!` or a union of spansets.
    assert!(q(r#"{ name = "a" || name = "b" }"#).name.is_none());
    assert!(q(r#"{ !(name = "a") }"#).name.is_none());
    assert!(q(r#"{ name = "a" } || { name = "b" }"#).name.is_none());
    // A structural answer is a subset of its right side.
    assert_eq!(q(r#"{ name = "a" } >> { name = "b" }"#).name.as_deref(), Some("b"));
    assert_eq!(q("{ 10ms <= duration }").min_duration_nanos, Some(10 * MS));
}

#[test]
fn a_tag_names_one_field() {
    use ast::{Intrinsic, Operand, Scope};
    assert_eq!(parse::field("span.http.method"), Ok(Operand::Attribute(Scope::Span, "http.method".into())));
    assert_eq!(parse::field(".service.name"), Ok(Operand::Attribute(Scope::Any, "service.name".into())));
    assert_eq!(parse::field("status"), Ok(Operand::Intrinsic(Intrinsic::Status)));
    assert!(parse::field("error").is_err(), "a value");
    assert!(parse::field("span.a = 1").is_err());
}
