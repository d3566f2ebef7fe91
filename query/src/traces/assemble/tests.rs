use std::sync::Arc;

use sightline_storage::model::{AttrValue, Attributes, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId};

use super::*;

fn span(id: u8, parent: Option<u8>, start: u64, end: u64, host: &str) -> Span {
    Span {
        trace_id: TraceId([1; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: String::new(),
        flags: 0,
        name: format!("op{id}"),
        kind: SpanKind::Internal,
        start_unix_nano: start,
        end_unix_nano: end,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes: Attributes::default(),
        events: Vec::new(),
        links: Vec::new(),
        resource: Arc::new(Resource {
            service: format!("svc-{host}"),
            attributes: Attributes(vec![("host.name".into(), AttrValue::Str(host.into()))]),
        }),
        scope: Arc::new(Scope::default()),
    }
}

fn ids(trace: &Trace) -> Vec<u8> {
    trace.nodes.iter().map(|n| n.span.span_id.0[0]).collect()
}

fn node(trace: &Trace, id: u8) -> &Node {
    trace.nodes.iter().find(|n| n.span.span_id.0[0] == id).expect("node")
}

#[test]
fn children_are_ordered_by_start_with_self_time_and_critical_path() {
    // 1 [0,100] → 3 [10,60], 2 [50,90] → 4 [60,80]
    let spans = vec![
        span(2, Some(1), 50, 90, "a"),
        span(4, Some(2), 60, 80, "a"),
        span(1, None, 0, 100, "a"),
        span(3, Some(1), 10, 60, "a"),
    ];
    let t = assemble(TraceId([1; 16]), spans, false, true);
    assert_eq!(ids(&t), [1, 3, 2, 4]);
    assert_eq!(t.nodes.iter().map(|n| n.depth).collect::<Vec<_>>(), [0, 1, 1, 2]);
    assert_eq!(node(&t, 1).self_nanos, 20, "children cover 10..90");
    assert_eq!(node(&t, 3).self_nanos, 50);
    assert_eq!(node(&t, 2).self_nanos, 20);
    // 2 ends last; 3 ends at 60, after 2 started at 50: not on the path.
    let critical: Vec<u8> = t.nodes.iter().filter(|n| n.on_critical_path).map(|n| n.span.span_id.0[0]).collect();
    assert_eq!(critical, [1, 2, 4]);
    assert_eq!((t.start_unix_nano, t.duration_nanos()), (0, 100));
    assert_eq!(t.services["svc-a"], ServiceCounts { spans: 4, errors: 0 });
    assert!(t.orphans.is_empty());
}

#[test]
fn missing_parents_become_flagged_orphans_and_duplicates_are_dropped() {
    let mut dup = span(2, Some(1), 10, 20, "a");
    dup.status_code = StatusCode::Error;
    let spans = vec![
        span(1, None, 0, 100, "a"),
        span(2, Some(1), 10, 20, "a"),
        dup,
        span(5, Some(9), 30, 40, "b"),
        span(6, Some(5), 31, 35, "b"),
    ];
    let t = assemble(TraceId([1; 16]), spans, true, false);
    assert_eq!(ids(&t), [1, 2, 5, 6]);
    assert_eq!(node(&t, 2).duplicates, 1);
    assert!(node(&t, 5).parent_missing);
    assert!(!node(&t, 6).parent_missing, "its own parent is present");
    assert_eq!(t.orphans.len(), 1);
    assert_eq!(t.root().map(|n| n.span.span_id.0[0]), Some(1));
    assert!(t.truncated);
}

#[test]
fn parent_cycles_do_not_loop() {
    let t = assemble(TraceId([1; 16]), vec![span(1, Some(2), 0, 10, "a"), span(2, Some(1), 0, 10, "a")], false, true);
    assert_eq!(t.nodes.len(), 2);
    assert!(t.roots.is_empty());
    assert_eq!(t.orphans.len(), 1, "one of the two starts the walk");
}

#[test]
fn skew_is_adjusted_only_across_hosts_and_moves_the_subtree() {
    // The child on host b claims 200..220 inside a parent that ran 0..100 on host a.
    let spans = vec![
        span(1, None, 0, 100, "a"),
        span(2, Some(1), 200, 220, "b"),
        span(3, Some(2), 205, 210, "b"),
        span(4, Some(1), 150, 160, "a"),
    ];
    let t = assemble(TraceId([1; 16]), spans.clone(), false, true);
    assert_eq!(node(&t, 2).start_unix_nano, 40, "centred: 0 + (100 - 20) / 2");
    assert_eq!(node(&t, 2).skew_adjustment_nanos, -160);
    assert_eq!(node(&t, 3).start_unix_nano, 45, "moves with its parent");
    assert_eq!(node(&t, 4).skew_adjustment_nanos, 0, "same host as its parent: left alone");
    let raw = assemble(TraceId([1; 16]), spans, false, false);
    assert_eq!(node(&raw, 2).start_unix_nano, 200);
}
