use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::objects::seaweed::Place as TestPlace;

use super::dedicated::Dedicated;
use super::*;
use crate::model::{
    AttrValue, Attributes, Resource, Scope, Span, SpanEvent, SpanId, SpanKind, SpanLink, StatusCode, Tenant, TraceId,
};
use crate::sink::{Batch, Sink};

fn attrs(pairs: &[(&str, AttrValue)]) -> Attributes {
    Attributes(pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

pub(super) fn span(trace: u8, id: u8, parent: Option<u8>, start: u64) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        trace_state: "k=v".into(),
        flags: 1,
        name: format!("op-{id}"),
        kind: SpanKind::Server,
        start_unix_nano: start,
        end_unix_nano: start + 1_000,
        status_code: if id.is_multiple_of(2) { StatusCode::Error } else { StatusCode::Unset },
        status_message: String::new(),
        attributes: attrs(&[
            ("http.route", AttrValue::Str("/cart".into())),
            ("http.response.status_code", AttrValue::Int(503)),
            ("n", AttrValue::Int(7)),
            ("ratio", AttrValue::Double(0.5)),
            ("ok", AttrValue::Bool(true)),
            ("raw", AttrValue::Bytes(vec![1, 2])),
            ("list", AttrValue::Array(vec![AttrValue::Int(1), AttrValue::Str("x".into())])),
            ("map", AttrValue::Map(attrs(&[("inner", AttrValue::Double(1.25))]))),
            ("nothing", AttrValue::Empty),
        ]),
        events: vec![SpanEvent {
            time_unix_nano: start + 5,
            name: "retry".into(),
            attributes: attrs(&[("attempt", AttrValue::Int(2))]),
        }],
        links: vec![SpanLink {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([9; 8]),
            trace_state: String::new(),
            attributes: Attributes::default(),
        }],
        resource: Arc::new(Resource {
            service: "checkout".into(),
            attributes: attrs(&[("service.name", AttrValue::Str("checkout".into()))]),
        }),
        scope: Arc::new(Scope { name: "lib".into(), version: "1.0".into() }),
    }
}

fn sorted_attrs(mut s: Span) -> Span {
    s.attributes.0.sort_by(|a, b| a.0.cmp(&b.0));
    s
}

#[test]
fn spans_round_trip_through_record_batches() {
    let spans = vec![span(1, 1, None, 100), span(1, 2, Some(1), 200), span(2, 3, None, 300)];
    let batch = columns::to_batch(&spans.iter().collect::<Vec<_>>()).expect("encodes");
    let back = columns::from_batch(&batch.rows, &batch.resources).expect("decodes");
    assert_eq!(back.len(), 3);
    for (a, b) in spans.into_iter().zip(back) {
        assert_eq!(sorted_attrs(a), sorted_attrs(b));
    }
}

pub(super) fn tenant() -> Tenant {
    Tenant::new("t").expect("tenant")
}

pub(super) fn batch(seq: u64, spans: Vec<Span>) -> Batch<Span> {
    Batch { tenant: tenant(), wal_seq: seq, items: spans }
}

pub(super) fn config() -> SpanStoreConfig {
    SpanStoreConfig {
        flush_spans: usize::MAX,
        flush_age: Duration::from_secs(3600),
        row_group_rows: 2,
        maintenance_interval: Duration::from_secs(3600),
        flush_threads: 1,
        shards: 1,
        ..SpanStoreConfig::default()
    }
}

pub(super) async fn open(place: &TestPlace, config: SpanStoreConfig) -> SpanStore {
    SpanStore::open(place.objects(), config, None).await.expect("opens")
}

pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

pub(super) fn now() -> u64 {
    crate::model::now_unix_nanos()
}

crate::on_both_backends! {
async fn traces_are_found_in_the_head_and_in_parts_and_replay_is_idempotent(place: Place) {
    let store = open(&place, config()).await;
    let t0 = now();
    store.consume(batch(1, vec![span(1, 1, None, t0), span(2, 5, None, t0)])).expect("consume");
    let s = store.clone();
    blocking(move || s.flush_blocking()).await.expect("flush");
    // Part of trace 1 in a part, part still in the head.
    store.consume(batch(2, vec![span(1, 2, Some(1), t0 + 10)])).expect("consume");
    let trace = store.trace(&tenant(), TraceId([1; 16]), 100).await.expect("trace");
    let mut ids: Vec<u8> = trace.spans.iter().map(|s| s.span_id.0[0]).collect();
    ids.sort();
    assert_eq!(ids, [1, 2]);
    assert!(!trace.truncated);
    let limited = store.trace(&tenant(), TraceId([1; 16]), 1).await.expect("trace");
    assert_eq!((limited.spans.len(), limited.truncated), (1, true));
    assert!(store.trace(&tenant(), TraceId([7; 16]), 100).await.expect("trace").spans.is_empty());
    assert!(
        store
            .trace(&Tenant::new("other").expect("tenant"), TraceId([1; 16]), 100)
            .await
            .expect("trace")
            .spans
            .is_empty()
    );
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 1, part_spans: 2, parts: 1 });
    assert_eq!(store.services(&tenant()), ["checkout"]);
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;

    // Reopen: the shutdown flushed the head; replaying the WAL skips what parts hold.
    let store = open(&place, config()).await;
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 3, parts: 2 });
    store.consume(batch(1, vec![span(1, 1, None, t0), span(2, 5, None, t0)])).expect("replay 1");
    store.consume(batch(2, vec![span(1, 2, Some(1), t0 + 10)])).expect("replay 2");
    store.consume(batch(3, vec![span(3, 7, None, t0)])).expect("new");
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 1, part_spans: 3, parts: 2 });
    assert_eq!(store.operations(&tenant(), "checkout").len(), 4, "op-1, op-2, op-5 and op-7");
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
/// A trace whose spans are in two parts, one of them unreadable: the read
/// returns the other part's spans and names the part it could not read.
async fn a_trace_read_names_the_parts_it_could_not_read(place: Place) {
    let store = open(&place, config()).await;
    let t0 = now();
    for seq in 1..=2u64 {
        store.consume(batch(seq, vec![span(1, seq as u8, None, t0)])).expect("consume");
        let s = store.clone();
        blocking(move || s.flush_blocking()).await.expect("flush");
    }
    let lost = store.parts(&tenant())[0].id.clone();
    object_store::ObjectStoreExt::delete(&place.objects(), &part::parquet_path("t", &lost)).await.expect("delete");
    let trace = store.trace(&tenant(), TraceId([1; 16]), 100).await.expect("a partial answer, not an error");
    assert_eq!(trace.spans.len(), 1, "the readable part's span");
    assert_eq!(trace.unread.len(), 1);
    assert!(trace.unread[0].contains(&lost), "{:?} names {lost}", trace.unread);
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
}
}

/// Four parts of two spans each: trace `n` (one span) and a span of trace
/// 9, which so is spread over all four.
pub(super) async fn four_parts(store: &SpanStore, t0: u64) {
    for seq in 1..=4u64 {
        let n = seq as u8;
        store.consume(batch(seq, vec![span(n, n, None, t0), span(9, 10 + n, None, t0)])).expect("consume");
        let s = store.clone();
        blocking(move || s.flush_blocking()).await.expect("flush");
    }
}

crate::on_both_backends! {
async fn compaction_merges_parts_and_an_interrupted_one_is_cleaned_up(place: Place) {
    let store = open(&place, config()).await;
    let t0 = now();
    four_parts(&store, t0).await;
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 8, parts: 4 });
    let s = store.clone();
    blocking(move || s.maintain_blocking()).await.expect("compaction");
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 8, parts: 1 });
    let merged = store.parts(&tenant());
    assert_eq!(merged[0].level, 1);
    assert_eq!(merged[0].traces, 5);
    // Trace 9 was spread over four parts; now it is whole in one.
    assert_eq!(store.trace(&tenant(), TraceId([9; 16]), 100).await.expect("trace").spans.len(), 4);
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;

    // An interrupted compaction: the merged part is published, but one input
    // survived. Opening deletes it, so nothing is counted twice.
    let fs = place.objects();
    let input = span(9, 99, None, t0);
    let encoded = part::encode(&tenant(), "00000000000000000001-000000".into(), 0, vec![&input], 0, 2).expect("encode");
    let meta = part::publish(&fs, encoded).await.expect("publish stray input");
    let mut merged_meta = merged[0].clone();
    merged_meta.compacted_from.push(meta.id.clone());
    let json = serde_json::to_vec(&merged_meta).expect("json");
    object_store::ObjectStoreExt::put(&fs, &part::meta_path("t", &merged_meta.id), json.into())
        .await
        .expect("rewrite meta");
    let store = open(&place, config()).await;
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 8, parts: 1 });
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
async fn compaction_merges_at_most_its_span_cap_at_once(place: Place) {
    let store =
        open(&place, SpanStoreConfig { compaction_min_parts: 2, compaction_max_spans: 5, ..config() }).await;
    let t0 = now();
    // Parts of 1, 2, 2 and 4 spans: the three smallest (5 spans) fit the cap.
    for (seq, n) in [(1u64, 1u8), (2, 2), (3, 2), (4, 4)] {
        let spans = (0..n).map(|i| span(seq as u8, 10 * seq as u8 + i, None, t0)).collect();
        store.consume(batch(seq, spans)).expect("consume");
        let s = store.clone();
        blocking(move || s.flush_blocking()).await.expect("flush");
    }
    let s = store.clone();
    blocking(move || s.maintain_blocking()).await.expect("compaction");
    let mut sizes: Vec<u64> = store.parts(&tenant()).iter().map(|p| p.spans).collect();
    sizes.sort();
    assert_eq!(sizes, vec![4, 5], "the 4-span part stays out of a merge that would pass the cap");
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
/// A window of many parts is merged in groups of at most eight (a merge's
/// memory grows with its inputs), all in one maintenance run.
async fn compaction_merges_many_parts_in_groups_of_eight(place: Place) {
    let store = open(&place, SpanStoreConfig { compaction_min_parts: 4, ..config() }).await;
    let t0 = now();
    for seq in 1..=14u64 {
        let n = seq as u8;
        store.consume(batch(seq, vec![span(n, n, None, t0), span(n, 100 + n, Some(n), t0)])).expect("consume");
        let s = store.clone();
        blocking(move || s.flush_blocking()).await.expect("flush");
    }
    let s = store.clone();
    blocking(move || s.maintain_blocking()).await.expect("compaction");
    let mut parts: Vec<(u32, u64)> = store.parts(&tenant()).iter().map(|p| (p.level, p.spans)).collect();
    parts.sort();
    // Fourteen parts: a merge of eight, then one of the six left.
    assert_eq!(parts, vec![(1, 12), (1, 16)]);
    for n in 1..=14u8 {
        assert_eq!(store.trace(&tenant(), TraceId([n; 16]), 10).await.expect("trace").spans.len(), 2);
    }
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
async fn retention_deletes_whole_parts_past_their_age(place: Place) {
    let config = SpanStoreConfig { retention: Duration::from_secs(3600), ..config() };
    let store = open(&place, config.clone()).await;
    let old = now() - 2 * 3600 * 1_000_000_000;
    store.consume(batch(1, vec![span(1, 1, None, old), span(1, 2, Some(1), old)])).expect("consume");
    let s = store.clone();
    blocking(move || s.flush_blocking()).await.expect("flush");
    store.consume(batch(2, vec![span(2, 3, None, now())])).expect("consume");
    let s = store.clone();
    blocking(move || s.flush_blocking()).await.expect("flush");
    assert_eq!(store.counts(&tenant()).part_spans, 3);
    let s = store.clone();
    blocking(move || s.maintain_blocking()).await.expect("retention");
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 1, parts: 1 });
    assert!(store.trace(&tenant(), TraceId([1; 16]), 10).await.expect("trace").spans.is_empty());
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
    let reopened = open(&place, config).await;
    assert_eq!(reopened.counts(&tenant()).part_spans, 1);
    blocking(move || reopened.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
async fn a_flush_interrupted_between_tenants_loses_nothing_on_replay(place: Place) {
    let fs = place.objects();
    let (a, b) = (Tenant::new("a").expect("tenant"), Tenant::new("b").expect("tenant"));
    // The flush of a head holding seq 1 (tenant a) and seq 2 (tenant b)
    // published a's part, then the process died before b's.
    let encoded = part::encode(&a, "00000000000000000001-000000".into(), 0, vec![&span(1, 1, None, now())], 2, 2)
        .expect("encode");
    part::publish(&fs, encoded).await.expect("publish");
    let store = open(&place, config()).await;
    store.consume(Batch { tenant: a.clone(), wal_seq: 1, items: vec![span(1, 1, None, now())] }).expect("replay a");
    store.consume(Batch { tenant: b.clone(), wal_seq: 2, items: vec![span(2, 2, None, now())] }).expect("replay b");
    assert_eq!(store.counts(&a), SpanCounts { head_spans: 0, part_spans: 1, parts: 1 }, "a is not duplicated");
    assert_eq!(store.counts(&b), SpanCounts { head_spans: 1, part_spans: 0, parts: 0 }, "b is not lost");
    blocking(move || store.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
async fn concurrent_flushes_write_each_span_once(place: Place) {
    let store = open(&place, config()).await;
    for seq in 1..=50u64 {
        store.consume(batch(seq, (0..20).map(|i| span(seq as u8, i, None, now())).collect())).expect("consume");
    }
    let flushes: Vec<_> = (0..4)
        .map(|_| {
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.flush_blocking())
        })
        .collect();
    for f in flushes {
        f.await.expect("task").expect("flush");
    }
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 1000, parts: 1 });
    blocking(move || store.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
async fn the_store_reports_a_backlog_until_it_is_flushed(place: Place) {
    let store = open(&place, SpanStoreConfig { max_unflushed_spans: 30, ..config() }).await;
    store.consume(batch(1, (1..=20).map(|i| span(1, i, None, now())).collect())).expect("consume");
    assert!(!store.backlogged());
    store.consume(batch(2, (21..=40).map(|i| span(2, i, None, now())).collect())).expect("consume");
    assert!(store.backlogged(), "40 unflushed spans >= 30");
    let s = store.clone();
    blocking(move || s.flush_blocking()).await.expect("flush");
    assert!(!store.backlogged());
    blocking(move || store.shutdown_blocking()).await;
}
}

/// Seeded spans of varied services, names, durations, statuses and
/// attributes (a unique `request.id` on each), over `traces` traces.
pub(super) fn varied_spans(traces: u64, t0: u64) -> Vec<Span> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let services: Vec<Arc<Resource>> = (0..12)
        .map(|i| {
            let service = format!("svc-{i}");
            let mut attributes = vec![("host.name", AttrValue::Str(format!("{service}-host")))];
            // A hot attribute's key on a resource.
            if i == 11 {
                attributes.push(("db.system", AttrValue::Str("postgres".into())));
            }
            let attributes = attrs(&attributes);
            Arc::new(Resource { service, attributes })
        })
        .collect();
    let mut out = Vec::new();
    for t in 0..traces {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(next(u64::MAX) | 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&t.to_be_bytes());
        let start = t0 + next(3_600_000_000_000);
        for i in 0..(5 + next(26)) {
            let mut s = span(1, 1, None, start + i * 1_000);
            s.trace_id = TraceId(trace_id);
            s.span_id = SpanId((i + 1).to_be_bytes());
            s.parent_span_id = (i > 0).then(|| SpanId(next(i).wrapping_add(1).to_be_bytes()));
            s.resource = services[next(12) as usize].clone();
            s.name = ["GET /cart", "POST /pay", "SELECT", "publish"][next(4) as usize].into();
            s.end_unix_nano = s.start_unix_nano + 1_000 + next(2_000_000_000);
            s.status_code = if next(10) == 0 { StatusCode::Error } else { StatusCode::Unset };
            let route = ["/cart", "/pay", "/items"][next(3) as usize];
            let mut attributes = vec![
                // Now and then a hot attribute of a type its column does not take.
                ("http.route", if next(20) == 0 { AttrValue::Int(7) } else { AttrValue::Str(route.into()) }),
                ("http.response.status_code", AttrValue::Int([200, 404, 500][next(3) as usize])),
                ("user.tier", AttrValue::Str(["gold", "free"][next(2) as usize].into())),
                ("request.id", AttrValue::Str(format!("{:016x}", next(u64::MAX)))),
            ];
            // A span's own value of a key its resource has too.
            if next(7) == 0 {
                attributes.push(("db.system", AttrValue::Str("mysql".into())));
            }
            s.attributes = attrs(&attributes);
            out.push(s);
        }
    }
    out
}

crate::on_both_backends! {
async fn searches_match_a_brute_force_scan_in_the_head_in_parts_and_after_compaction(place: Place) {
    // One compaction window for all (ten years), so that the two parts merge.
    // Flushes split into parts of whole traces, encoded on three threads.
    let config = SpanStoreConfig {
        row_group_rows: 512,
        flush_threads: 3,
        compaction_min_parts: 2,
        compaction_window: Duration::from_secs(10 * 365 * 24 * 3600),
        ..config()
    };
    let store = open(&place, config).await;
    let t0 = now() - 3_600_000_000_000;
    let spans = varied_spans(400, t0);
    let unique_id = match spans[77].attributes.get("request.id") {
        Some(AttrValue::Str(v)) => v.clone(),
        _ => unreachable!("every span has a request id"),
    };
    let window =
        |from: u64, to: u64| SpanQuery { start_unix_nano: t0 + from, end_unix_nano: t0 + to, ..Default::default() };
    let all = window(0, u64::MAX / 2);
    let minute = 60_000_000_000;
    let queries = vec![
        ("everything", all.clone()),
        ("service", SpanQuery { service: Some("svc-3".into()), ..all.clone() }),
        ("operation", SpanQuery { service: Some("svc-5".into()), name: Some("POST /pay".into()), ..all.clone() }),
        ("slow", SpanQuery { min_duration_nanos: Some(1_500_000_000), ..all.clone() }),
        ("fast", SpanQuery { max_duration_nanos: Some(100_000_000), ..all.clone() }),
        (
            "between",
            SpanQuery { min_duration_nanos: Some(200_000_000), max_duration_nanos: Some(400_000_000), ..all.clone() },
        ),
        ("errors", SpanQuery { errors_only: true, ..all.clone() }),
        ("errors of a service", SpanQuery { errors_only: true, service: Some("svc-0".into()), ..all.clone() }),
        ("attribute", SpanQuery { attributes: vec![("http.route".into(), "/pay".into())], ..all.clone() }),
        (
            "int attribute",
            SpanQuery { attributes: vec![("http.response.status_code".into(), "500".into())], ..all.clone() },
        ),
        (
            "resource attribute",
            SpanQuery { attributes: vec![("host.name".into(), "svc-7-host".into())], ..all.clone() },
        ),
        ("unique id", SpanQuery { attributes: vec![("request.id".into(), unique_id)], ..all.clone() }),
        (
            "two attributes",
            SpanQuery {
                attributes: vec![("user.tier".into(), "gold".into()), ("http.route".into(), "/cart".into())],
                ..all.clone()
            },
        ),
        ("ten minutes", window(10 * minute, 20 * minute)),
        (
            "ten minutes, slow errors",
            SpanQuery {
                errors_only: true,
                min_duration_nanos: Some(1_000_000_000),
                ..window(30 * minute, 40 * minute)
            },
        ),
        ("nothing", SpanQuery { service: Some("absent".into()), ..all.clone() }),
        ("no such route", SpanQuery { attributes: vec![("http.route".into(), "/absent".into())], ..all.clone() }),
        (
            "hot key of a resource",
            SpanQuery { attributes: vec![("db.system".into(), "postgres".into())], ..all.clone() },
        ),
        ("hot key of the span", SpanQuery { attributes: vec![("db.system".into(), "mysql".into())], ..all.clone() }),
        ("hot key, other type", SpanQuery { attributes: vec![("http.route".into(), "7".into())], ..all.clone() }),
        (
            "status code, other text",
            SpanQuery { attributes: vec![("http.response.status_code".into(), "0500".into())], ..all.clone() },
        ),
        ("no such key", SpanQuery { attributes: vec![("absent.key".into(), "x".into())], ..all.clone() }),
    ];
    let expected = |spans: &[Span]| -> Vec<Vec<(TraceId, SpanId, u64)>> {
        queries
            .iter()
            .map(|(_, q)| {
                let mut hits: Vec<_> =
                    spans.iter().filter(|s| q.matches(s)).map(|s| (s.trace_id, s.span_id, s.start_unix_nano)).collect();
                hits.sort();
                hits
            })
            .collect()
    };
    let whole = expected(&spans);
    assert!(whole.iter().filter(|e| !e.is_empty()).count() >= 17, "the table tests real matches");
    assert_eq!(whole[11].len(), 1, "a unique id finds its one span");

    // Each span's place in its trace, as a service graph reads it.
    type Place = (Option<SpanId>, String, bool);
    let places: Arc<HashMap<(TraceId, SpanId), Place>> = Arc::new(
        spans
            .iter()
            .map(|s| {
                let place = (s.parent_span_id, s.resource.service.clone(), s.status_code == StatusCode::Error);
                ((s.trace_id, s.span_id), place)
            })
            .collect(),
    );
    // Every way a search reads: whole spans, (trace id, start) only, places.
    let check = |state: &'static str, want: Vec<Vec<(TraceId, SpanId, u64)>>| {
        let (store, queries, places) = (store.clone(), queries.clone(), places.clone());
        async move {
            for ((name, q), want) in queries.iter().zip(&want) {
                let mut got = Vec::new();
                store.scan(&tenant(), q, |s| got.push((s.trace_id, s.span_id, s.start_unix_nano))).await.expect("scan");
                got.sort();
                assert_eq!(got.len(), want.len(), "{state}: {name}");
                assert_eq!(&got, want, "{state}: {name}");
                let mut starts = store.matching_starts(&tenant(), q).await.expect("starts");
                starts.sort();
                let mut want_starts: Vec<_> = want.iter().map(|w| (w.0, w.2)).collect();
                want_starts.sort();
                assert_eq!(starts, want_starts, "{state}: {name}, starts");
                // The service graph over a time range, as a brute-force join of
                // the spans in it (trace tables, joins, or both).
                if q.attributes.is_empty()
                    && q.service.is_none()
                    && !q.errors_only
                    && q.min_duration_nanos.is_none()
                    && q.max_duration_nanos.is_none()
                    && q.name.is_none()
                {
                    let mut edges: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
                    let matched: HashSet<(TraceId, SpanId)> = want.iter().map(|w| (w.0, w.1)).collect();
                    for (trace, span, _) in want {
                        let (parent, service, error) = &places[&(*trace, *span)];
                        let in_range = |p: &SpanId| matched.contains(&(*trace, *p));
                        let Some(parent) = parent.filter(in_range) else { continue };
                        let parent_service = &places[&(*trace, parent)].1;
                        if parent_service != service {
                            let e = edges.entry((parent_service.clone(), service.clone())).or_default();
                            e.0 += 1;
                            e.1 += u64::from(*error);
                        }
                    }
                    let brute: Vec<(String, String, u64, u64)> =
                        edges.into_iter().map(|((p, c), (n, e))| (p, c, n, e)).collect();
                    let got: Vec<(String, String, u64, u64)> = store
                        .dependencies(&tenant(), q.start_unix_nano, q.end_unix_nano)
                        .await
                        .expect("dependencies")
                        .into_iter()
                        .map(|e| (e.parent, e.child, e.call_count, e.error_count))
                        .collect();
                    assert!(!brute.is_empty(), "{state}: {name}: the data has edges");
                    assert_eq!(got, brute, "{state}: {name}, dependencies");
                }
                // The newest traces, ranked as the brute force ranks them.
                for limit in [1, 7, 1000] {
                    let mut newest: HashMap<TraceId, u64> = HashMap::new();
                    for (id, _, start) in want {
                        let e = newest.entry(*id).or_insert(0);
                        *e = (*e).max(*start);
                    }
                    let mut ranked: Vec<(TraceId, u64)> = newest.into_iter().collect();
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    ranked.truncate(limit);
                    let found = store.newest_traces(&tenant(), q, limit, 1000).await.expect("newest");
                    let got: Vec<(TraceId, u64)> = found.iter().map(|f| (f.id, f.latest_match)).collect();
                    assert_eq!(got, ranked, "{state}: {name}, newest {limit}");
                    // Each comes with its spans, the matching ones among them.
                    for f in &found {
                        assert!(f.spans.iter().all(|s| s.trace_id == f.id), "{state}: {name}: spans of {}", f.id);
                        let has = |span: &SpanId| f.spans.iter().any(|s| s.span_id == *span);
                        assert!(
                            want.iter().filter(|w| w.0 == f.id).all(|w| has(&w.1)),
                            "{state}: {name}: trace {} lacks a matching span",
                            f.id
                        );
                    }
                }
            }
        }
    };
    let by_id = |state: &'static str, ids: Vec<(TraceId, usize)>| {
        let store = store.clone();
        async move {
            for (id, want) in ids {
                let got = store.trace(&tenant(), id, 1000).await.expect("trace").spans.len();
                assert_eq!(got, want, "{state}: trace {id}");
            }
        }
    };
    let trace_sizes = |spans: &[Span]| -> Vec<(TraceId, usize)> {
        [3usize, 500, 2000, spans.len() - 1]
            .iter()
            .map(|&i| spans[i.min(spans.len() - 1)].trace_id)
            .map(|id| (id, spans.iter().filter(|s| s.trace_id == id).count()))
            .collect()
    };
    let consume = |spans: &[Span], first_seq: u64| {
        // Requests of a few traces each, small and large (waiting spans and chunks).
        let mut seq = first_seq;
        for group in spans.chunks(150) {
            let (small, large) = group.split_at(group.len().min(20));
            for part in [small, large] {
                store.consume(batch(seq, part.to_vec())).expect("consume");
                seq += 1;
            }
        }
    };
    let flush = || {
        let s = store.clone();
        blocking(move || s.flush_blocking())
    };
    let (first, _) = spans.split_at(spans.len() / 2);
    consume(first, 1);
    assert_eq!(store.counts(&tenant()).head_spans, first.len() as u64);
    check("head", expected(first)).await;
    by_id("head", trace_sizes(first)).await;
    flush().await.expect("flush");
    consume(&spans[first.len()..], 100_000);
    check("a part and the head", whole.clone()).await;
    by_id("a part and the head", trace_sizes(&spans)).await;
    flush().await.expect("flush");
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: spans.len() as u64, parts: 2 });
    // Every span has a `user.tier` string: each part keeps it in a column
    // of its own (format 6), which the searches below read through.
    let dedicated = |store: &SpanStore| store.parts(&tenant()).into_iter().map(|p| p.dedicated).collect::<Vec<_>>();
    let tier = Dedicated { strs: vec!["user.tier".into()], ints: Vec::new() };
    assert_eq!(dedicated(&store), vec![tier.clone(), tier.clone()]);
    check("fresh parts", whole.clone()).await;
    by_id("fresh parts", trace_sizes(&spans)).await;
    let s = store.clone();
    blocking(move || s.maintain_blocking()).await.expect("compaction");
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: spans.len() as u64, parts: 1 });
    assert_eq!(dedicated(&store), vec![tier], "the merged part keeps its inputs' column");
    check("compacted part", whole).await;
    by_id("compacted part", trace_sizes(&spans)).await;
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;
}
}

crate::on_both_backends! {
/// A trace lookup in a row group of many pages decodes only the pages whose
/// trace-id statistics admit the id, and finds every span of the trace.
async fn a_trace_lookup_reads_only_the_pages_that_may_hold_it(place: Place) {
    let fs = place.objects();
    let spans = varied_spans(1200, now());
    assert!(spans.len() > 4 * part::PAGE_ROWS, "several pages in the one row group");
    let encoded = part::encode(&tenant(), "00000000000000000001-000000".into(), 0, spans.iter().collect(), 1, 1 << 20)
        .expect("encode");
    let meta = part::publish(fs.as_ref(), encoded).await.expect("publish");
    let index = part::load_index(fs.clone(), &meta).await.expect("index");
    for probe in [0, spans.len() / 3, spans.len() / 2, spans.len() - 1] {
        let id = spans[probe].trace_id;
        let selected = index.pages_for(&[0], &[id]).row_count();
        assert!(selected < spans.len() / 2, "{selected} of {} rows read for one trace", spans.len());
        let mut got: Vec<SpanId> = part::read_traces(fs.clone(), &meta, &index, &[id])
            .await
            .expect("read")
            .iter()
            .map(|s| s.span_id)
            .collect();
        let mut want: Vec<SpanId> = spans.iter().filter(|s| s.trace_id == id).map(|s| s.span_id).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "trace {id}");
    }
    // Several traces in one read: each comes back whole, and no other.
    let mut ids: Vec<TraceId> = [1, spans.len() / 4, spans.len() - 2].iter().map(|&i| spans[i].trace_id).collect();
    ids.sort();
    ids.dedup();
    let mut got: Vec<SpanId> =
        part::read_traces(fs.clone(), &meta, &index, &ids).await.expect("read").iter().map(|s| s.span_id).collect();
    let mut want: Vec<SpanId> = spans.iter().filter(|s| ids.contains(&s.trace_id)).map(|s| s.span_id).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "traces {ids:?}");
}
}

#[test]
fn a_part_lists_its_attribute_keys_and_hot_values_and_searches_skip_what_it_cannot_hold() {
    let spans = varied_spans(40, now());
    let encoded = part::encode(&tenant(), "00000000000000000001-000000".into(), 0, spans.iter().collect(), 1, 256)
        .expect("encode");
    let known = encoded.meta.attributes.expect("a few keys are listed");
    let set = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<std::collections::BTreeSet<_>>();
    // http.route is in the lists too: some spans hold it as an int.
    assert_eq!(known.span_keys, set(&["http.route", "request.id", "user.tier"]));
    assert_eq!(known.resource_keys, set(&["db.system", "host.name"]));
    assert_eq!(known.hot_values["http.route"], set(&["/cart", "/items", "/pay"]));
    assert_eq!(known.hot_values["http.response.status_code"], set(&["200", "404", "500"]));
    assert_eq!(known.hot_values["db.system"], set(&["mysql"]));
    assert_eq!(known.hot_values["http.request.method"], set(&[]));
    let query =
        |key: &str, value: &str| SpanQuery { attributes: vec![(key.into(), value.into())], ..Default::default() };
    let may = |key: &str, value: &str| super::attributes::may_match(Some(&known), &query(key, value));
    assert!(may("http.route", "/pay"));
    assert!(may("http.route", "/absent"), "http.route is in the lists too");
    assert!(!may("http.response.status_code", "302"), "a status code the part never saw");
    assert!(!may("http.request.method", "GET"));
    assert!(may("db.system", "postgres"), "a resource holds it");
    assert!(!may("absent.key", "x"));
    assert!(super::attributes::may_match(None, &query("absent.key", "x")), "unknown: may hold anything");
    let columns = super::attributes::columns_to_read(Some(&known), &query("http.response.status_code", "500"));
    assert_eq!(columns.into_iter().collect::<Vec<_>>(), ["http_status"], "a hot attribute reads its column alone");
}

/// Row groups encoded on several threads at once make the same part, byte
/// for byte, as one thread does.
#[test]
fn a_part_encoded_on_several_threads_is_the_part_one_thread_writes() {
    let spans = varied_spans(300, now());
    let chunks: Vec<_> = spans.chunks(700).map(|c| head::batch_of(c).expect("chunk")).collect();
    let encode = |threads| {
        part::encode_chunks(&tenant(), "00000000000000000001-000000".into(), 0, &chunks, 9, 256, threads)
            .expect("encode")
    };
    let one = encode(1);
    assert!(one.meta.spans as usize == spans.len() && spans.len() > 4 * 256, "several row groups");
    // Each row group keeps its trace-id bloom filter and page index, and
    // no other column carries statistics.
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let one_bytes = bytes::Bytes::from(one.data.clone());
    let reader = SerializedFileReader::new(one_bytes.clone()).expect("parquet");
    assert!(reader.metadata().num_row_groups() > 4);
    for group in reader.metadata().row_groups() {
        assert!(group.column(0).bloom_filter_offset().is_some(), "trace-id bloom filter");
        assert!(group.column(0).column_index_offset().is_some(), "trace-id page index");
        assert!(group.column(0).statistics().is_some(), "trace-id statistics");
        assert!(group.columns()[1..].iter().all(|c| c.statistics().is_none()), "no other statistics");
    }
    for threads in [2, 3, 8] {
        let many = encode(threads);
        assert_eq!(bytes::Bytes::from(many.data), one_bytes, "{threads} threads");
        assert_eq!(many.traces, one.traces, "{threads} threads: trace table");
        assert_eq!(many.meta, one.meta, "{threads} threads: meta");
    }
}

mod compat;
mod outage;

/// A gauge of the store's self-telemetry, as `/metrics` shows it.
fn gauge(store: &SpanStore, name: &str) -> i64 {
    let mut registry = crate::telemetry::Registry::default();
    store.register_telemetry(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    let line = text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')).expect("the gauge");
    line.parse().expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_keeps_a_chunks_repeated_strings_once_and_reports_its_bytes() {
    let place = TestPlace::filesystem();
    let store = open(&place, config()).await;
    // Names, services, scopes and attribute keys repeat, as they do in traffic.
    let spans: Vec<Span> = (0..2_000u32)
        .map(|i| {
            let mut s = span((i % 200) as u8, (i % 250) as u8, None, now());
            s.name = ["GET /api/cart", "POST /api/checkout"][i as usize % 2].into();
            s.attributes = attrs(&[
                ("http.request.method", AttrValue::Str("GET".into())),
                ("url.scheme", AttrValue::Str("https".into())),
                ("server.address", AttrValue::Str("checkout.internal".into())),
                ("server.port", AttrValue::Int(8080)),
                ("user.id", AttrValue::Str(format!("user-{}", i % 97))),
                ("http.request.body.size", AttrValue::Int(i64::from(i))),
                ("cache.hit", AttrValue::Bool(i % 3 == 0)),
            ]);
            (s.events, s.links) = (Vec::new(), Vec::new());
            s
        })
        .collect();
    let plain = columns::part_layout(columns::to_batch(&spans.iter().collect::<Vec<_>>()).expect("chunk").rows)
        .expect("part layout")
        .get_array_memory_size();
    store.consume(batch(1, spans)).expect("consume");
    assert_eq!(gauge(&store, "sightline_spans_unflushed"), 2_000);
    let held = gauge(&store, "sightline_spans_unflushed_bytes") as usize;
    assert!(held > 0 && held * 10 < plain * 7, "the head holds {held} bytes; in a part's layout {plain}");
    let s = store.clone();
    blocking(move || s.flush_blocking()).await.expect("flush");
    assert_eq!(gauge(&store, "sightline_spans_unflushed_bytes"), 0, "written into a part");
    blocking(move || store.shutdown_blocking()).await;
}
