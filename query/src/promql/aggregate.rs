//! Aggregation operators: `sum`, `avg`, `min`, `max`, `count`, `group`,
//! `stddev`, `stdvar`, `quantile`, `topk`, `bottomk`, `count_values`, with
//! `by` and `without`.

use std::collections::BTreeMap;

use promql_parser::parser::{AggregateExpr, LabelModifier};
use sightline_storage::metrics::{Labels, METRIC_NAME};

use super::eval::{Engine, PtrMap};
use super::functions::{quantile, variance};
use super::value::{Result, Sample, Value, bad};

/// The labels of the group a series falls in.
fn group_of(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(by)) => labels.keep(|k| by.labels.iter().any(|l| l == k)),
        Some(LabelModifier::Exclude(without)) => {
            labels.keep(|k| k != METRIC_NAME && !without.labels.iter().any(|l| l == k))
        }
    }
}

pub fn eval(e: &mut Engine, a: &AggregateExpr, t: i64) -> Result<Value> {
    let op = a.op.to_string().to_ascii_lowercase();
    let param = match (&a.param, op.as_str()) {
        (Some(p), "count_values") => match e.eval(p, t)? {
            Value::String(s) => Some(Value::String(s)),
            other => return Err(bad(format!("count_values takes a string, got a {}", other.type_name()))),
        },
        (Some(p), _) => Some(Value::Scalar(e.eval_scalar(p, t)?)),
        (None, _) => None,
    };
    let input = e.eval_vector(&a.expr, t)?;
    // Groups by the address of their (memoised, shared) labels: no label
    // is compared or hashed per sample.
    let mut index: PtrMap<usize, usize> = PtrMap::default();
    let mut groups: Vec<(Labels, Vec<Sample>)> = Vec::new();
    let kind = a as *const AggregateExpr as usize;
    for s in input {
        let group = e.derive(&s.labels, kind, |l| group_of(l, &a.modifier));
        let key = group.addr();
        let i = *index.entry(key).or_insert_with(|| {
            groups.push((group, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(s);
    }
    let scalar = |p: &Option<Value>| match p {
        Some(Value::Scalar(v)) => *v,
        _ => f64::NAN,
    };
    let mut out = Vec::new();
    for (labels, samples) in groups {
        let values = || samples.iter().map(|s| s.v);
        let v = match op.as_str() {
            "sum" => values().sum(),
            "avg" => values().sum::<f64>() / samples.len() as f64,
            "min" => values().reduce(|a, b| if b < a || a.is_nan() { b } else { a }).unwrap_or(f64::NAN),
            "max" => values().reduce(|a, b| if b > a || a.is_nan() { b } else { a }).unwrap_or(f64::NAN),
            "count" => samples.len() as f64,
            "group" => 1.0,
            "stddev" => variance(values()).sqrt(),
            "stdvar" => variance(values()),
            "quantile" => quantile(scalar(&param), values().collect()),
            "topk" | "bottomk" => {
                let k = scalar(&param);
                if k.is_nan() || k < 1.0 {
                    continue;
                }
                let mut sorted = samples;
                sorted.sort_by(|x, y| {
                    let ord = x.v.partial_cmp(&y.v).unwrap_or_else(|| x.v.is_nan().cmp(&y.v.is_nan()));
                    if op == "topk" { ord.reverse() } else { ord }
                });
                out.extend(sorted.into_iter().take(k as usize));
                continue;
            }
            "count_values" => {
                let Some(Value::String(label)) = &param else {
                    return Err(bad("count_values needs a label name"));
                };
                let mut counts: BTreeMap<String, f64> = BTreeMap::new();
                for s in &samples {
                    *counts.entry(format!("{}", s.v)).or_default() += 1.0;
                }
                out.extend(counts.into_iter().map(|(value, n)| Sample { labels: labels.with(label, &value), v: n }));
                continue;
            }
            other => return Err(bad(format!("aggregation {other}() is not supported"))),
        };
        out.push(Sample { labels, v });
    }
    Ok(Value::Vector(out))
}
