use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::{AttrValue, Attributes, LogRecord, Resource, Scope, Tenant, TraceId};
use crate::sink::{Batch, Sink};

const DAY: i64 = 24 * 3600 * 1_000_000_000;
/// 2026-11-20T00:00:00Z, a partition boundary.
const T0: i64 = 1_763_596_800 * 1_000_000_000;

pub(super) fn tenant(name: &str) -> Tenant {
    Tenant::new(name).expect("tenant")
}

pub(super) fn record(ts: i64, service: &str, severity: u8, body: &str, attrs: &[(&str, AttrValue)]) -> LogRecord {
    LogRecord {
        time_unix_nano: ts as u64,
        observed_unix_nano: ts as u64,
        severity_number: severity,
        severity_text: String::new(),
        body: AttrValue::Str(body.into()),
        attributes: Attributes(attrs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()),
        trace_id: None,
        span_id: None,
        event_name: String::new(),
        resource: Arc::new(Resource {
            service: service.into(),
            attributes: Attributes(vec![("host.name".into(), AttrValue::Str(format!("{service}-1")))]),
        }),
        scope: Arc::new(Scope::default()),
    }
}

pub(super) fn config(dir: &std::path::Path) -> LogStoreConfig {
    let mut c = LogStoreConfig::new(dir.join("logs"));
    c.commit_interval = Duration::from_secs(3600);
    c.retention = Duration::from_secs(100 * 365 * 24 * 3600);
    c.indexing_threads = 1;
    c
}

fn all_time() -> TimeRange {
    TimeRange { start: 0, end: i64::MAX }
}

pub(super) fn search(store: &LogStore, t: &Tenant, expr: LogExpr, limit: usize) -> Vec<LogHit> {
    let s = LogSearch { tenant: t.clone(), expr, range: all_time(), limit, newest_first: true, after: None };
    store.search(&s, None).expect("search")
}

pub(super) fn bodies(hits: &[LogHit]) -> Vec<String> {
    hits.iter().map(|h| h.record.body.to_text()).collect()
}

fn text(target: Target, value: &str) -> LogExpr {
    LogExpr::Text { target, value: value.into(), prefix: false }
}

/// A store holding a small shop's lines for tenant `a`, one line for `b`.
fn shop(dir: &std::path::Path) -> LogStore {
    let store = LogStore::open(config(dir), None).expect("open");
    let mut traced = record(
        T0 + 5,
        "payments",
        17,
        "payment failed: card_declined for order 42",
        &[("http.status_code", AttrValue::Int(502)), ("retry", AttrValue::Bool(true))],
    );
    traced.trace_id = Some("0af7651916cd43dd8448eb211c80319c".parse::<TraceId>().expect("trace id"));
    traced.span_id = Some("00f067aa0ba902b7".parse().expect("span id"));
    let items = vec![
        record(
            T0 + 1,
            "checkout",
            9,
            "GET /api/v1/orders took 12 ms",
            &[("http.route", AttrValue::Str("/orders".into()))],
        ),
        record(T0 + 2, "checkout", 13, "slow query on orders table: 950 ms", &[]),
        record(T0 + 3, "inventory", 9, "reserved 3 items for order 42", &[]),
        record(T0 + 4, "checkout", 17, "connection refused by payments:8080", &[]),
        traced,
    ];
    store.consume(Batch { tenant: tenant("a"), wal_seq: 1, items }).expect("consume");
    let other = vec![record(T0 + 6, "checkout", 17, "payment failed for another tenant", &[])];
    store.consume(Batch { tenant: tenant("b"), wal_seq: 2, items: other }).expect("consume");
    store.commit_blocking().expect("commit");
    store
}

#[test]
fn finds_lines_by_text_phrase_field_severity_and_attribute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path());
    let a = tenant("a");
    let found = |e| bodies(&search(&store, &a, e, 10));

    assert_eq!(
        found(text(Target::Body, "ORDER")),
        ["payment failed: card_declined for order 42", "reserved 3 items for order 42"]
    );
    assert_eq!(found(text(Target::Body, "orders")).len(), 2);
    assert_eq!(
        found(text(Target::Body, "order 42")),
        ["payment failed: card_declined for order 42", "reserved 3 items for order 42"]
    );
    assert_eq!(found(text(Target::Body, "/api/v1/orders")), ["GET /api/v1/orders took 12 ms"]);
    assert_eq!(found(text(Target::Body, "card_declined")).len(), 1);
    assert_eq!(found(LogExpr::Text { target: Target::Body, value: "refus".into(), prefix: true }).len(), 1);
    assert_eq!(found(text(Target::Service, "checkout")).len(), 3);
    assert_eq!(found(text(Target::Host, "inventory-1")), ["reserved 3 items for order 42"]);
    assert_eq!(found(LogExpr::Severity { min: 13, max: 24 }).len(), 3);
    assert_eq!(found(text(Target::Attribute("http.status_code".into()), "502")).len(), 1);
    assert_eq!(found(text(Target::AnyAttribute("retry".into()), "true")).len(), 1);
    assert_eq!(found(text(Target::Resource("host.name".into()), "payments-1")).len(), 1);
    assert_eq!(found(text(Target::TraceId, "0AF7651916CD43DD8448EB211C80319C")).len(), 1);
    assert_eq!(found(text(Target::SpanId, "00F067AA0BA902B7")), ["payment failed: card_declined for order 42"]);
    assert!(found(text(Target::SpanId, "00f067aa0ba902b8")).is_empty());
    let errors_not_checkout = LogExpr::And(vec![
        LogExpr::Severity { min: 17, max: 20 },
        LogExpr::Not(Box::new(text(Target::Service, "checkout"))),
    ]);
    assert_eq!(found(errors_not_checkout), ["payment failed: card_declined for order 42"]);
    let either = LogExpr::Or(vec![text(Target::Body, "refused"), text(Target::Body, "slow")]);
    assert_eq!(found(either).len(), 2);
    assert_eq!(found(LogExpr::Not(Box::new(text(Target::Service, "checkout")))).len(), 2);
    assert!(found(text(Target::Body, "nothing-like-this")).is_empty());

    let hit = &search(&store, &a, text(Target::Body, "order 42"), 1)[0];
    assert_eq!(hit.record.attributes.get("http.status_code"), Some(&AttrValue::Int(502)));
    assert_eq!(hit.record.resource.service, "payments");
    let body = hit.record.body.to_text();
    let marked: Vec<_> = hit.highlights.iter().map(|&(s, e)| &body[s..e]).collect();
    assert_eq!(marked, ["order 42"]);
}

#[test]
fn reads_stop_at_their_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path());
    let a = tenant("a");
    let s = LogSearch {
        tenant: a.clone(),
        expr: LogExpr::All,
        range: all_time(),
        limit: 10,
        newest_first: true,
        after: None,
    };
    let past = Some(std::time::Instant::now());
    assert!(matches!(store.search(&s, past), Err(crate::StorageError::Deadline)));
    assert!(matches!(
        store.histogram(&a, &LogExpr::All, all_time(), 1 << 40, past),
        Err(crate::StorageError::Deadline)
    ));
    assert!(matches!(
        store.top_values(&a, &LogExpr::All, all_time(), TopField::Service, 3, past),
        Err(crate::StorageError::Deadline)
    ));
    let later = Some(std::time::Instant::now() + std::time::Duration::from_secs(60));
    assert!(!store.search(&s, later).expect("in time").is_empty());
}

#[test]
fn tenants_see_only_their_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path());
    let payment = text(Target::Body, "payment failed");
    assert_eq!(search(&store, &tenant("a"), payment.clone(), 10).len(), 1);
    assert_eq!(bodies(&search(&store, &tenant("b"), payment, 10)), ["payment failed for another tenant"]);
    assert!(search(&store, &tenant("c"), LogExpr::All, 10).is_empty());
    assert_eq!(store.count(&tenant("a")).expect("count"), 5);
}

#[test]
fn pages_follow_the_cursor_in_both_orders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(config(dir.path()), None).expect("open");
    // Equal timestamps on purpose: the WAL position orders them.
    let items: Vec<_> = (0..25).map(|i| record(T0 + i / 5, "svc", 9, &format!("line {i}"), &[])).collect();
    store.consume(Batch { tenant: tenant("a"), wal_seq: 1, items }).expect("consume");
    store.commit_blocking().expect("commit");
    for newest_first in [true, false] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let s =
                LogSearch { tenant: tenant("a"), expr: LogExpr::All, range: all_time(), limit: 7, newest_first, after };
            let page = store.search(&s, None).expect("search");
            if page.is_empty() {
                break;
            }
            after = page.last().map(|h| h.key);
            seen.extend(bodies(&page));
        }
        let mut expected: Vec<_> = (0..25).map(|i| format!("line {i}")).collect();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
}

#[test]
fn histogram_and_top_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = shop(dir.path());
    let a = tenant("a");
    let range = TimeRange { start: T0, end: T0 + 5 };
    let counts = store.histogram(&a, &LogExpr::All, range, 2, None).expect("histogram");
    assert_eq!(counts, [1, 2, 2]);
    let top = store.top_values(&a, &LogExpr::All, range, TopField::Service, 2, None).expect("top");
    assert_eq!(top, [("checkout".to_owned(), 3), ("inventory".to_owned(), 1)]);
    let sev = store.top_values(&a, &LogExpr::All, range, TopField::Severity, 10, None).expect("top");
    assert_eq!(sev, [("17".to_owned(), 2), ("9".to_owned(), 2), ("13".to_owned(), 1)]);
}

#[test]
fn replay_after_reopen_adds_only_what_no_commit_holds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = |seq: u64, body: &str| Batch {
        tenant: tenant("a"),
        wal_seq: seq,
        items: vec![record(T0 + seq as i64, "svc", 9, body, &[]), record(T0 + DAY, "svc", 9, body, &[])],
    };
    {
        let store = LogStore::open(config(dir.path()), None).expect("open");
        store.consume(batch(1, "one")).expect("consume");
        store.commit_blocking().expect("commit");
        store.consume(batch(2, "two")).expect("consume");
        // Killed before the commit: batch 2 is only in the WAL.
        store.crash();
    }
    let store = LogStore::open(config(dir.path()), None).expect("reopen");
    assert_eq!(store.count(&tenant("a")).expect("count"), 2);
    for seq in [1, 2] {
        store.consume(batch(seq, if seq == 1 { "one" } else { "two" })).expect("replay");
    }
    store.commit_blocking().expect("commit");
    assert_eq!(store.count(&tenant("a")).expect("count"), 4);
    assert_eq!(store.partitions().len(), 2);
    store.shutdown_blocking();
}

#[test]
fn searches_touch_their_partitions_and_retention_drops_old_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = crate::model::now_unix_nanos() as i64;
    let mut c = config(dir.path());
    c.retention = Duration::from_secs(3 * 24 * 3600);
    let store = LogStore::open(c.clone(), None).expect("open");
    let items: Vec<_> = (0..10).map(|d| record(now - d * DAY, "svc", 9, &format!("day {d}"), &[])).collect();
    store.consume(Batch { tenant: tenant("a"), wal_seq: 1, items }).expect("consume");
    store.commit_blocking().expect("commit");
    assert_eq!(store.partitions().len(), 10);
    let yesterday = TimeRange { start: now - DAY - 1, end: now - DAY + 1 };
    let s = LogSearch {
        tenant: tenant("a"),
        expr: LogExpr::All,
        range: yesterday,
        limit: 10,
        newest_first: true,
        after: None,
    };
    assert_eq!(bodies(&store.search(&s, None).expect("search")), ["day 1"]);

    store.expire_blocking().expect("expire");
    let kept = bodies(&search(&store, &tenant("a"), LogExpr::All, 100));
    // Lines of days 0..=2 are within three days; day 3's partition may straddle the horizon.
    assert!(kept.len() == 3 || kept.len() == 4, "{kept:?}");
    assert_eq!(kept[..3], ["day 0", "day 1", "day 2"]);
    assert_eq!(store.partitions().len(), kept.len());
    let folders = std::fs::read_dir(&c.dir).expect("dir").count();
    assert_eq!(folders, kept.len());
    store.shutdown_blocking();
}

#[test]
fn a_scan_streams_every_match_oldest_first_across_segments_and_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(config(dir.path()), None).expect("open");
    let t = tenant("a");
    // Three commits (segments) whose times interleave, over two days (partitions).
    let times: [&[i64]; 3] = [&[5, 1, DAY + 3], &[4, 2, DAY + 1], &[6, 3, DAY + 2]];
    for (seq, batch) in times.iter().enumerate() {
        let items = batch.iter().map(|&dt| record(T0 + dt, "svc", 9, &format!("line {dt}"), &[])).collect();
        store.consume(Batch { tenant: t.clone(), wal_seq: seq as u64 + 1, items }).expect("consume");
        store.commit_blocking().expect("commit");
    }
    let scan = |after: Option<SortKey>, stop: usize| {
        let mut seen = Vec::new();
        store
            .scan(&t, &LogExpr::All, all_time(), after, None, |key, r| {
                seen.push((key, r.body.to_text()));
                seen.len() < stop
            })
            .expect("scan");
        seen
    };
    let all = scan(None, usize::MAX);
    let bodies: Vec<&str> = all.iter().map(|(_, b)| b.as_str()).collect();
    let want: Vec<String> =
        [1, 2, 3, 4, 5, 6, DAY + 1, DAY + 2, DAY + 3].iter().map(|dt| format!("line {dt}")).collect();
    assert_eq!(bodies, want);
    // Stopped after four, then resumed after the fourth's key: the rest, once each.
    let first = scan(None, 4);
    assert_eq!(first.len(), 4);
    let rest = scan(Some(first[3].0), usize::MAX);
    let rest: Vec<&str> = rest.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(rest, want[4..].iter().map(String::as_str).collect::<Vec<_>>());
}

/// A partition written before span ids were indexed (its schema has no
/// `span_id` field) opens, answers every other query, and finds nothing by
/// span id; new partitions beside it index span ids.
#[test]
fn a_partition_without_span_ids_opens_and_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    let (full, _) = super::schema::LogFields::schema();
    let mut older = tantivy::schema::Schema::builder();
    for (_, entry) in full.fields().filter(|(_, e)| e.name() != "span_id") {
        older.add_field(entry.clone());
    }
    let older = older.build();
    let day = cfg.dir.join(super::partition::Partition::dir_name(T0, T0 + DAY));
    std::fs::create_dir_all(&day).expect("mkdir");
    let index = tantivy::Index::create_in_dir(&day, older.clone()).expect("index");
    super::schema::register_tokenizers(&index);
    let fields = super::schema::LogFields::of(&older).expect("fields");
    assert_eq!(fields.span_id, None);
    let mut old = record(T0 + 1, "checkout", 9, "written by an older version", &[]);
    old.span_id = Some("00f067aa0ba902b7".parse().expect("span id"));
    let mut writer: tantivy::IndexWriter = index.writer(15_000_000).expect("writer");
    writer.add_document(fields.document(&tenant("a"), 1, &old)).expect("add");
    writer.commit().expect("commit");
    drop(writer);

    let store = LogStore::open(cfg, None).expect("open");
    let mut new = record(T0 + DAY + 1, "checkout", 9, "written now", &[]);
    new.span_id = old.span_id;
    store.consume(Batch { tenant: tenant("a"), wal_seq: 2, items: vec![new] }).expect("consume");
    store.commit_blocking().expect("commit");
    let a = tenant("a");
    assert_eq!(
        bodies(&search(&store, &a, text(Target::Service, "checkout"), 10)),
        ["written now", "written by an older version"]
    );
    assert_eq!(bodies(&search(&store, &a, text(Target::SpanId, "00f067aa0ba902b7"), 10)), ["written now"]);
}
