//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with
//! `bool`), and the set operators, with vector matching (`on`, `ignoring`,
//! `group_left`, `group_right`).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use sightline_storage::metrics::{Labels, METRIC_NAME};

use super::eval::Engine;
use super::value::{Result, Sample, Value, bad, exec};

fn arithmetic(op: &str, l: f64, r: f64) -> Option<f64> {
    Some(match op {
        "+" => l + r,
        "-" => l - r,
        "*" => l * r,
        "/" => l / r,
        "%" => l % r,
        "^" => l.powf(r),
        "atan2" => l.atan2(r),
        _ => return None,
    })
}

fn comparison(op: &str, l: f64, r: f64) -> Option<bool> {
    Some(match op {
        "==" => l == r,
        "!=" => l != r,
        ">" => l > r,
        "<" => l < r,
        ">=" => l >= r,
        "<=" => l <= r,
        _ => return None,
    })
}

/// The value of `l op r`, or `None` when a comparison filters it out.
fn apply(op: &str, l: f64, r: f64, return_bool: bool) -> Result<Option<f64>> {
    if let Some(v) = arithmetic(op, l, r) {
        return Ok(Some(v));
    }
    match comparison(op, l, r) {
        Some(keep) if return_bool => Ok(Some(if keep { 1.0 } else { 0.0 })),
        Some(keep) => Ok(keep.then_some(l)),
        None => Err(bad(format!("operator {op} is not supported between these operands"))),
    }
}

pub fn eval(e: &mut Engine, b: &BinaryExpr, t: i64) -> Result<Value> {
    let op = b.op.to_string().to_ascii_lowercase();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let drops_name = arithmetic(&op, 0.0, 0.0).is_some() || return_bool;
    let lhs = e.eval(&b.lhs, t)?;
    let rhs = e.eval(&b.rhs, t)?;
    let mut name_rule = |l: Labels| if drops_name { e.drop_name(&l) } else { l };
    Ok(match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            Value::Scalar(apply(&op, l, r, true)?.ok_or_else(|| exec("comparison of scalars without bool"))?)
        }
        (Value::Vector(v), Value::Scalar(r)) => Value::Vector(
            v.into_iter()
                .filter_map(|s| match apply(&op, s.v, r, return_bool) {
                    Ok(Some(v)) => Some(Ok(Sample { labels: name_rule(s.labels), v })),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_>>()?,
        ),
        (Value::Scalar(l), Value::Vector(v)) => Value::Vector(
            v.into_iter()
                .filter_map(|s| match apply(&op, l, s.v, return_bool) {
                    // A comparison keeps the vector's own value.
                    Ok(Some(x)) => Some(Ok(Sample {
                        v: if comparison(&op, 0.0, 0.0).is_some() && !return_bool { s.v } else { x },
                        labels: name_rule(s.labels),
                    })),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                })
                .collect::<Result<_>>()?,
        ),
        (Value::Vector(l), Value::Vector(r)) => {
            let modifier = b.modifier.clone().unwrap_or_default();
            let signature = |labels: &Labels| -> Labels {
                match &modifier.matching {
                    Some(LabelModifier::Include(on)) => labels.keep(|k| on.labels.iter().any(|l| l == k)),
                    Some(LabelModifier::Exclude(ignoring)) => {
                        labels.keep(|k| k != METRIC_NAME && !ignoring.labels.iter().any(|l| l == k))
                    }
                    None => labels.without(METRIC_NAME),
                }
            };
            match op.as_str() {
                "and" | "unless" => {
                    let right: HashSet<Labels> = r.iter().map(|s| signature(&s.labels)).collect();
                    let keep = op == "and";
                    Value::Vector(l.into_iter().filter(|s| right.contains(&signature(&s.labels)) == keep).collect())
                }
                "or" => {
                    let left: HashSet<Labels> = l.iter().map(|s| signature(&s.labels)).collect();
                    let mut out = l;
                    out.extend(r.into_iter().filter(|s| !left.contains(&signature(&s.labels))));
                    Value::Vector(out)
                }
                _ => Value::Vector(match_vectors(&op, l, r, &modifier, signature, return_bool, drops_name)?),
            }
        }
        (l, r) => return Err(bad(format!("binary {op} between a {} and a {}", l.type_name(), r.type_name()))),
    })
}

fn match_vectors(
    op: &str,
    l: Vec<Sample>,
    r: Vec<Sample>,
    m: &promql_parser::parser::BinModifier,
    signature: impl Fn(&Labels) -> Labels,
    return_bool: bool,
    drops_name: bool,
) -> Result<Vec<Sample>> {
    // The "one" side is indexed; the other is walked.
    let (one_to_many, include) = match &m.card {
        VectorMatchCardinality::ManyToOne(ls) => (false, Some(ls)),
        VectorMatchCardinality::OneToMany(ls) => (true, Some(ls)),
        _ => (false, None),
    };
    let (many, one) = if one_to_many { (r, l) } else { (l, r) };
    let mut index: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.labels);
        if index.insert(sig, s).is_some() {
            return Err(exec(format!(
                "found duplicate series for the match group on the {} side of the operation: many-to-many matching not allowed: matching labels must be unique on one side",
                if one_to_many { "left" } else { "right" }
            )));
        }
    }
    let mut seen: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for s in many {
        let sig = signature(&s.labels);
        let Some(other) = index.get(&sig) else {
            continue;
        };
        if include.is_none() && !seen.insert(sig.clone()) {
            return Err(exec(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        }
        let (lv, rv) = if one_to_many { (other.v, s.v) } else { (s.v, other.v) };
        let Some(v) = apply(op, lv, rv, return_bool)? else {
            continue;
        };
        let mut labels = if drops_name { s.labels.without(METRIC_NAME) } else { s.labels.clone() };
        match (&m.matching, include) {
            (Some(LabelModifier::Include(on)), None) => {
                labels = labels.keep(|k| on.labels.iter().any(|l| l == k));
            }
            (Some(LabelModifier::Exclude(ignoring)), None) => {
                labels = labels.keep(|k| !ignoring.labels.iter().any(|l| l == k));
            }
            (_, Some(extra)) => {
                for name in &extra.labels {
                    labels = labels.with(name, other.labels.get(name).unwrap_or(""));
                }
            }
            _ => {}
        }
        out.push(Sample { labels, v });
    }
    if include.is_some() {
        let mut unique = HashSet::new();
        if !out.iter().all(|s| unique.insert(&s.labels)) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(out)
}
