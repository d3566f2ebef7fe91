//! Numeric comparisons and value patterns on attributes, checked against a
//! brute-force filter over the same lines.

use std::sync::Arc;

use super::tests::{bodies, config, record, search, tenant};
use super::*;
use crate::model::{AttrValue, Attributes, Resource};
use crate::sink::{Batch, Sink};

const DAY: i64 = 24 * 3600 * 1_000_000_000;
/// 2026-11-20T00:00:00Z, a partition boundary.
const T0: i64 = 1_763_596_800 * 1_000_000_000;
const ROUTES: [&str; 5] = ["/api/v1/orders", "/api/v2/orders", "/api/v1/pay", "/health", "/api/v10/x"];
const ZONES: [&str; 3] = ["eu-west-1a", "eu-west-2b", "us-east-1a"];

/// Line `i`: `status` an integer, a double or a string; `latency` a double
/// on most lines; `route` one of `ROUTES`; resource `zone` one of `ZONES`.
fn line(i: i64) -> crate::model::LogRecord {
    let mut x = (i as u64).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut next = |n: u64| {
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x % n
    };
    let code = 100 + next(500) as i64;
    let status = match next(10) {
        0 => AttrValue::Str(code.to_string()),
        1 => AttrValue::Double(code as f64 + 0.5),
        _ => AttrValue::Int(code),
    };
    let mut attrs = vec![("status", status), ("route", AttrValue::Str(ROUTES[next(5) as usize].into()))];
    if next(4) != 0 {
        attrs.push(("latency", AttrValue::Double(next(100_000) as f64 / 100.0 - 10.0)));
    }
    let ts = T0 + i * 1_000_000 + if i % 2 == 0 { DAY } else { 0 };
    let mut r = record(ts, "svc", 9, &format!("line {i}"), &attrs);
    r.resource = Arc::new(Resource {
        service: "svc".into(),
        attributes: Attributes(vec![("zone".into(), AttrValue::Str(ZONES[next(3) as usize].into()))]),
    });
    r
}

fn number(v: &AttrValue) -> Option<f64> {
    match v {
        AttrValue::Int(i) => Some(*i as f64),
        AttrValue::Double(d) => Some(*d),
        _ => None,
    }
}

/// `*` any characters, `?` one.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some('*'), _) => glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..])),
        (Some('?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// What a brute-force filter says of one line.
fn expected(r: &crate::model::LogRecord, expr: &LogExpr) -> bool {
    let attribute = |t: &Target| -> Option<AttrValue> {
        let find = |attrs: &Attributes, k: &str| attrs.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        match t {
            Target::Attribute(k) => find(&r.attributes, k),
            Target::Resource(k) => find(&r.resource.attributes, k),
            Target::AnyAttribute(k) => find(&r.attributes, k).or_else(|| find(&r.resource.attributes, k)),
            _ => None,
        }
    };
    match expr {
        LogExpr::Compare { target, cmp, value } => {
            attribute(target).and_then(|v| number(&v)).is_some_and(|x| cmp.holds(x, *value))
        }
        LogExpr::Wildcard { target, pattern } => attribute(target).is_some_and(|v| match v {
            AttrValue::Str(s) => glob(&pattern.chars().collect::<Vec<_>>(), &s.chars().collect::<Vec<_>>()),
            _ => false,
        }),
        LogExpr::And(items) => items.iter().all(|e| expected(r, e)),
        LogExpr::Not(inner) => !expected(r, inner),
        _ => unreachable!("not in the table"),
    }
}

/// A store holding `n` lines for tenant `a` in four commits (segments),
/// over two daily partitions, and the lines.
fn stored(dir: &std::path::Path, n: i64) -> (LogStore, Vec<crate::model::LogRecord>) {
    let store = LogStore::open(config(dir), None).expect("open");
    let lines: Vec<_> = (0..n).map(line).collect();
    for (seq, chunk) in lines.chunks(n as usize / 4).enumerate() {
        store.consume(Batch { tenant: tenant("a"), wal_seq: seq as u64 + 1, items: chunk.to_vec() }).expect("consume");
        store.commit_blocking().expect("commit");
    }
    (store, lines)
}

#[test]
fn comparisons_and_patterns_find_what_a_scan_finds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, lines) = stored(dir.path(), 800);
    let attr = |k: &str| Target::Attribute(k.into());
    let cmp = |target: Target, cmp: Cmp, value: f64| LogExpr::Compare { target, cmp, value };
    let wild = |target: Target, p: &str| LogExpr::Wildcard { target, pattern: p.into() };
    let table = [
        cmp(attr("status"), Cmp::Ge, 500.0),
        cmp(attr("status"), Cmp::Gt, 500.0),
        cmp(attr("status"), Cmp::Gt, 499.5),
        cmp(attr("status"), Cmp::Lt, 200.0),
        cmp(attr("status"), Cmp::Le, 200.5),
        cmp(attr("status"), Cmp::Ge, 1e30),
        cmp(attr("latency"), Cmp::Gt, 250.25),
        cmp(attr("latency"), Cmp::Lt, 0.0),
        cmp(Target::AnyAttribute("latency".into()), Cmp::Le, -5.5),
        cmp(attr("nothing"), Cmp::Gt, 0.0),
        cmp(Target::Resource("status".into()), Cmp::Gt, 0.0),
        wild(attr("route"), "/api/v?/*"),
        wild(attr("route"), "/api/v1*"),
        wild(attr("route"), "*orders"),
        wild(attr("route"), "/health"),
        wild(attr("route"), "*"),
        wild(Target::Resource("zone".into()), "eu-*"),
        wild(Target::AnyAttribute("zone".into()), "*-1a"),
        wild(attr("status"), "5*"),
        LogExpr::And(vec![cmp(attr("status"), Cmp::Ge, 400.0), LogExpr::Not(Box::new(wild(attr("route"), "/api/*")))]),
    ];
    let a = tenant("a");
    for expr in table {
        let mut got = bodies(&search(&store, &a, expr.clone(), lines.len()));
        let mut want: Vec<String> = lines.iter().filter(|r| expected(r, &expr)).map(|r| r.body.to_text()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{expr:?}");
        let finds_none = matches!(&expr, LogExpr::Compare { target: Target::Attribute(k), .. } if k == "nothing")
            || matches!(&expr, LogExpr::Compare { target: Target::Resource(_), .. })
            || matches!(&expr, LogExpr::Compare { value, .. } if *value > 1e20);
        assert_eq!(want.is_empty(), finds_none, "{expr:?} finds {} lines", want.len());
    }
}

#[test]
fn top_values_of_any_attribute_count_what_a_scan_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, lines) = stored(dir.path(), 600);
    let all = TimeRange { start: 0, end: i64::MAX };
    let errors = LogExpr::Compare { target: Target::Attribute("status".into()), cmp: Cmp::Ge, value: 500.0 };
    let table = [
        (Target::Attribute("route".into()), LogExpr::All),
        (Target::Attribute("route".into()), errors.clone()),
        (Target::AnyAttribute("zone".into()), LogExpr::All),
        (Target::Resource("zone".into()), errors),
        (Target::AnyAttribute("status".into()), LogExpr::All),
        (Target::Attribute("nothing".into()), LogExpr::All),
    ];
    for (target, expr) in table {
        let mut got = store
            .top_values(&tenant("a"), &expr, all, TopField::Attribute(target.clone()), usize::MAX, None)
            .expect("top");
        got.sort();
        let mut want = std::collections::HashMap::<String, u64>::new();
        for r in lines.iter().filter(|r| expr == LogExpr::All || expected(r, &expr)) {
            let (key, own) = match &target {
                Target::Attribute(k) => (k, Some(&r.attributes)),
                Target::Resource(k) | Target::AnyAttribute(k) => (k, None),
                _ => unreachable!(),
            };
            let find = |attrs: &Attributes| attrs.0.iter().find(|(name, _)| name == key).map(|(_, v)| v.to_text());
            let value = match (own, &target) {
                (Some(attrs), _) => find(attrs),
                (None, Target::AnyAttribute(_)) => find(&r.attributes).or_else(|| find(&r.resource.attributes)),
                (None, _) => find(&r.resource.attributes),
            };
            if let Some(v) = value {
                *want.entry(v).or_default() += 1;
            }
        }
        let mut want: Vec<_> = want.into_iter().collect();
        want.sort();
        assert_eq!(got, want, "{target:?} where {expr:?}");
    }
}

/// Searches read segments newest (oldest) first and skip those that
/// cannot better what they found: segments whose times overlap, lie apart
/// or nest answer as a sort of every line would.
#[test]
fn searches_over_overlapping_segments_answer_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(config(dir.path()), None).expect("open");
    // Six commits (segments), each of distinct times: (first, step, lines).
    let shapes = [(0, 10, 20), (101, 10, 20), (53, 10, 10), (300, 7, 15), (12, 1, 5), (251, 3, 4)];
    let mut all = Vec::new();
    for (n, (first, step, count)) in shapes.into_iter().enumerate() {
        let items: Vec<_> = (0..count)
            .map(|i| {
                let ts = T0 + first + i * step;
                all.push(ts);
                record(ts, "svc", if ts % 2 == 0 { 17 } else { 9 }, &format!("at {ts}"), &[])
            })
            .collect();
        store.consume(Batch { tenant: tenant("a"), wal_seq: n as u64 + 1, items }).expect("consume");
        store.commit_blocking().expect("commit");
    }
    let errors = LogExpr::Severity { min: 17, max: 24 };
    for (expr, start, end) in
        [(LogExpr::All, 0, i64::MAX), (LogExpr::All, T0 + 90, T0 + 260), (errors, T0 + 20, T0 + 320)]
    {
        for newest_first in [true, false] {
            for limit in [1, 5, 17, 200] {
                let range = TimeRange { start, end };
                let s = LogSearch { tenant: tenant("a"), expr: expr.clone(), range, limit, newest_first, after: None };
                let got: Vec<i64> = store.search(&s, None).expect("search").iter().map(|h| h.key.ts).collect();
                let mut want: Vec<i64> = all
                    .iter()
                    .copied()
                    .filter(|ts| (start..=end).contains(ts))
                    .filter(|ts| expr == LogExpr::All || ts % 2 == 0)
                    .collect();
                want.sort_unstable();
                if newest_first {
                    want.reverse();
                }
                want.truncate(limit);
                assert_eq!(got, want, "{expr:?} in {start}..={end}, newest first {newest_first}, limit {limit}");
            }
        }
    }
}
