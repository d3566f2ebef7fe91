//! Metric queries over samples taken from log lines: range aggregations at
//! each step (the window `(t − range, t]`), vector aggregations, and
//! binary operators, as Loki evaluates them.

use std::collections::BTreeMap;

use super::ast::{BinOp, Compare, Grouping, RangeFn, VectorFn};
use super::pipeline::{Labels, compare};
use crate::promql::functions::{quantile, variance};

/// The evaluation times: `start + i × step` for `i < count`, nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Steps {
    pub start: i64,
    pub step: i64,
    pub count: usize,
}

impl Steps {
    pub fn at(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }
}

/// A series' value at each step (`None` where it has none).
pub type Series = (Labels, Vec<Option<f64>>);

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Series>),
}

/// Samples by series: (time, value) sorted by time. The value is 1 for a
/// line, its length in bytes for the `bytes` functions, or what `unwrap` read.
pub type Samples = BTreeMap<Labels, Vec<(i64, f64)>>;

/// The labels a grouping keeps (`by`) or leaves (`without`).
pub fn grouped(labels: &Labels, g: &Grouping) -> Labels {
    labels.iter().filter(|(k, _)| g.labels.contains(k) != g.without).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A range aggregation at every step. `absent_labels` are the selector's
/// equality matchers, the labels of `absent_over_time`'s series.
pub fn range(
    function: RangeFn,
    param: Option<f64>,
    range: u64,
    grouping: Option<&Grouping>,
    mut samples: Samples,
    steps: Steps,
    absent_labels: Labels,
) -> Vec<Series> {
    let range = i64::try_from(range).unwrap_or(i64::MAX);
    if let Some(g) = grouping {
        let mut merged = Samples::new();
        for (labels, s) in samples {
            merged.entry(grouped(&labels, g)).or_default().extend(s);
        }
        for s in merged.values_mut() {
            s.sort_by_key(|(t, _)| *t);
        }
        samples = merged;
    }
    if function == RangeFn::Absent {
        let values: Vec<Option<f64>> = (0..steps.count)
            .map(|i| {
                let t = steps.at(i);
                // Samples are in time order: the first one after the window's start.
                let any = samples.values().any(|s| {
                    let first = s.partition_point(|(ts, _)| *ts <= t - range);
                    s.get(first).is_some_and(|(ts, _)| *ts <= t)
                });
                (!any).then_some(1.0)
            })
            .collect();
        return if values.iter().any(Option::is_some) { vec![(absent_labels, values)] } else { Vec::new() };
    }
    let seconds = range as f64 / 1e9;
    let mut out = Vec::new();
    for (labels, s) in samples {
        let (mut lo, mut hi) = (0usize, 0usize);
        let mut values = Vec::with_capacity(steps.count);
        for i in 0..steps.count {
            let t = steps.at(i);
            while hi < s.len() && s[hi].0 <= t {
                hi += 1;
            }
            while lo < hi && s[lo].0 <= t - range {
                lo += 1;
            }
            values.push((lo < hi).then(|| over(function, param, &s[lo..hi], seconds)));
        }
        if values.iter().any(Option::is_some) {
            out.push((labels, values));
        }
    }
    out
}

/// The function over a window's samples (never empty).
fn over(function: RangeFn, param: Option<f64>, w: &[(i64, f64)], seconds: f64) -> f64 {
    let values = || w.iter().map(|(_, v)| *v);
    let n = w.len() as f64;
    match function {
        RangeFn::Count => n,
        RangeFn::Rate => n / seconds,
        RangeFn::Bytes | RangeFn::Sum => values().sum(),
        RangeFn::BytesRate => values().sum::<f64>() / seconds,
        RangeFn::Avg => values().sum::<f64>() / n,
        RangeFn::Min => values().fold(f64::INFINITY, f64::min),
        RangeFn::Max => values().fold(f64::NEG_INFINITY, f64::max),
        RangeFn::First => w[0].1,
        RangeFn::Last => w[w.len() - 1].1,
        RangeFn::Stddev => variance(values()).sqrt(),
        RangeFn::Quantile => quantile(param.unwrap_or(0.5), values().collect()),
        RangeFn::Absent => 1.0,
    }
}

/// A vector aggregation at every step.
pub fn vector(
    function: VectorFn,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    inner: Value,
    steps: Steps,
) -> Vec<Series> {
    let series = match inner {
        Value::Vector(v) => v,
        Value::Scalar(_) => Vec::new(),
    };
    let no_grouping = Grouping { without: false, labels: Vec::new() };
    let g = grouping.unwrap_or(&no_grouping);
    let mut groups: BTreeMap<Labels, Vec<&Series>> = BTreeMap::new();
    for s in &series {
        groups.entry(grouped(&s.0, g)).or_default().push(s);
    }
    let mut out = Vec::new();
    if let VectorFn::Topk | VectorFn::Bottomk = function {
        let k = param.unwrap_or(1.0).max(0.0) as usize;
        let mut kept: BTreeMap<Labels, Vec<Option<f64>>> = BTreeMap::new();
        for members in groups.values() {
            for i in 0..steps.count {
                let mut present: Vec<(&Labels, f64)> =
                    members.iter().filter_map(|s| s.1[i].map(|v| (&s.0, v))).collect();
                present
                    .sort_by(|a, b| if function == VectorFn::Topk { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) });
                for (labels, v) in present.into_iter().take(k) {
                    kept.entry(labels.clone()).or_insert_with(|| vec![None; steps.count])[i] = Some(v);
                }
            }
        }
        return kept.into_iter().collect();
    }
    for (labels, members) in groups {
        let values: Vec<Option<f64>> = (0..steps.count)
            .map(|i| {
                let v: Vec<f64> = members.iter().filter_map(|s| s.1[i]).collect();
                if v.is_empty() {
                    return None;
                }
                let n = v.len() as f64;
                let sum: f64 = v.iter().sum();
                Some(match function {
                    VectorFn::Sum => sum,
                    VectorFn::Avg => sum / n,
                    VectorFn::Min => v.iter().copied().fold(f64::INFINITY, f64::min),
                    VectorFn::Max => v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    VectorFn::Count => n,
                    VectorFn::Stddev => variance(v.iter().copied()).sqrt(),
                    VectorFn::Topk | VectorFn::Bottomk => sum,
                })
            })
            .collect();
        if values.iter().any(Option::is_some) {
            out.push((labels, values));
        }
    }
    out
}

fn arithmetic(op: BinOp, a: f64, b: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        _ => return None,
    })
}

/// `a op b` where `a` is the value kept (the left side's, for a filter).
fn apply(op: BinOp, keep: bool, a: f64, b: f64) -> Option<f64> {
    match op {
        BinOp::Cmp(c) => {
            let holds = compare(a, c, b);
            if keep { Some(f64::from(u8::from(holds))) } else { holds.then_some(a) }
        }
        _ => arithmetic(op, a, b),
    }
}

/// A binary operator between two values, step by step.
pub fn binary(op: BinOp, keep: bool, left: Value, right: Value, steps: Steps) -> Result<Value, String> {
    let set_op = matches!(op, BinOp::And | BinOp::Or | BinOp::Unless);
    match (left, right) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if set_op {
                return Err("set operators (and, or, unless) need series on both sides".into());
            }
            if matches!(op, BinOp::Cmp(_)) && !keep {
                return Err("comparisons between scalars must use the bool modifier".into());
            }
            Ok(Value::Scalar(apply(op, true, a, b).unwrap_or(f64::NAN)))
        }
        (Value::Vector(_), Value::Scalar(_)) | (Value::Scalar(_), Value::Vector(_)) if set_op => {
            Err("set operators (and, or, unless) need series on both sides".into())
        }
        (Value::Vector(v), Value::Scalar(b)) => Ok(Value::Vector(map(v, |a| apply(op, keep, a, b)))),
        (Value::Scalar(a), Value::Vector(v)) => Ok(Value::Vector(map(v, |b| match op {
            // The series' value is the one kept by a filtering comparison.
            BinOp::Cmp(c) => apply(BinOp::Cmp(flip(c)), keep, b, a),
            _ => apply(op, keep, a, b),
        }))),
        (Value::Vector(l), Value::Vector(r)) => {
            let right: BTreeMap<Labels, Vec<Option<f64>>> = r.into_iter().collect();
            let mut out: BTreeMap<Labels, Vec<Option<f64>>> = BTreeMap::new();
            for (labels, lv) in &l {
                let rv = right.get(labels);
                let values: Vec<Option<f64>> = (0..steps.count)
                    .map(|i| {
                        let (a, b) = (lv[i], rv.and_then(|r| r[i]));
                        match op {
                            BinOp::And => a.filter(|_| b.is_some()),
                            BinOp::Or => a,
                            BinOp::Unless => a.filter(|_| b.is_none()),
                            _ => apply(op, keep, a?, b?),
                        }
                    })
                    .collect();
                out.insert(labels.clone(), values);
            }
            if op == BinOp::Or {
                // The right side's series the left side does not have (at that step).
                for (labels, rv) in right {
                    let entry = out.entry(labels).or_insert_with(|| vec![None; steps.count]);
                    for (mine, theirs) in entry.iter_mut().zip(rv) {
                        if mine.is_none() {
                            *mine = theirs;
                        }
                    }
                }
            }
            Ok(Value::Vector(out.into_iter().filter(|(_, v)| v.iter().any(Option::is_some)).collect()))
        }
    }
}

fn flip(c: Compare) -> Compare {
    match c {
        Compare::Gt => Compare::Lt,
        Compare::Ge => Compare::Le,
        Compare::Lt => Compare::Gt,
        Compare::Le => Compare::Ge,
        other => other,
    }
}

fn map(v: Vec<Series>, f: impl Fn(f64) -> Option<f64>) -> Vec<Series> {
    v.into_iter()
        .map(|(labels, values)| (labels, values.into_iter().map(|x| x.and_then(&f)).collect::<Vec<_>>()))
        .filter(|(_, values)| values.iter().any(Option::is_some))
        .collect()
}
