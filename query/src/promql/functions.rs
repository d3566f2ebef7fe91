//! PromQL functions, as Prometheus 2 computes them.

use promql_parser::parser::{Call, Expr};
use sightline_storage::metrics::{Labels, METRIC_NAME, is_stale};

use super::eval::Engine;
use super::value::{Result, Sample, Value, bad};

pub fn call(e: &mut Engine, call: &Call, t: i64) -> Result<Value> {
    let name = call.func.name;
    let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
    let arg = |i: usize| args.get(i).copied().ok_or_else(|| bad(format!("{name}: missing argument {}", i + 1)));
    if let Some(f) = range_function(name) {
        let keep_name = name == "last_over_time";
        let mut out = Vec::new();
        if let Expr::MatrixSelector(m) = arg(0)? {
            // The common case: read the fetched samples in place.
            let range = super::eval::ms(m.range);
            let (series, windows, end) = e.matrix_windows(&m.vs, range, t)?;
            let mut fresh: Vec<(i64, f64)>;
            for (i, from, to) in windows {
                let s = &series[i];
                let mut points = &s.samples[from..to];
                if points.iter().any(|p| is_stale(p.1)) {
                    fresh = points.iter().copied().filter(|p| !is_stale(p.1)).collect();
                    points = &fresh;
                }
                if let Some(v) = f(points, end - range, end, range) {
                    out.push(Sample { labels: if keep_name { s.labels.clone() } else { e.drop_name(&s.labels) }, v });
                }
            }
            return Ok(Value::Vector(out));
        }
        let (series, range, end) = e.range_arg(arg(0)?, t)?;
        for s in series {
            if let Some(v) = f(&s.points, end - range, end, range) {
                out.push(Sample { labels: if keep_name { s.labels } else { e.drop_name(&s.labels) }, v });
            }
        }
        return Ok(Value::Vector(out));
    }
    Ok(match name {
        "quantile_over_time" | "predict_linear" => {
            let (q_expr, m_expr) = if name == "quantile_over_time" { (arg(0)?, arg(1)?) } else { (arg(1)?, arg(0)?) };
            let param = e.eval_scalar(q_expr, t)?;
            let (series, _, end) = e.range_arg(m_expr, t)?;
            Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        let v = if name == "quantile_over_time" {
                            quantile(param, s.points.iter().map(|p| p.1).collect())
                        } else {
                            let (slope, intercept) = linear_regression(&s.points, end)?;
                            slope * param + intercept
                        };
                        Some((s.labels, v))
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(|(l, v)| Sample { labels: e.drop_name(&l), v })
                    .collect(),
            )
        }
        "absent_over_time" => {
            let (series, _, _) = e.range_arg(arg(0)?, t)?;
            absent(series.is_empty(), arg(0)?)
        }
        "time" => Value::Scalar(t as f64 / 1000.0),
        "pi" => Value::Scalar(std::f64::consts::PI),
        "vector" => Value::Vector(vec![Sample { labels: Labels::default(), v: e.eval_scalar(arg(0)?, t)? }]),
        "scalar" => {
            let v = e.eval_vector(arg(0)?, t)?;
            Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN })
        }
        "absent" => {
            let v = e.eval_vector(arg(0)?, t)?;
            absent(v.is_empty(), arg(0)?)
        }
        "timestamp" => timestamps(e, arg(0)?, t)?,
        "sort" | "sort_desc" => {
            let mut v = e.eval_vector(arg(0)?, t)?;
            v.sort_by(|a, b| a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal));
            if name == "sort_desc" {
                v.reverse();
            }
            Value::Vector(v)
        }
        "histogram_quantile" => {
            let q = e.eval_scalar(arg(0)?, t)?;
            Value::Vector(histogram_quantile(q, e.eval_vector(arg(1)?, t)?))
        }
        "label_replace" => {
            let v = e.eval_vector(arg(0)?, t)?;
            let texts: Vec<String> = (1..5).map(|i| string_arg(e, arg(i)?, t)).collect::<Result<_>>()?;
            label_replace(v, &texts[0], &texts[1], &texts[2], &texts[3])?
        }
        "label_join" => {
            let v = e.eval_vector(arg(0)?, t)?;
            let dst = string_arg(e, arg(1)?, t)?;
            let sep = string_arg(e, arg(2)?, t)?;
            let srcs: Vec<String> = (3..args.len()).map(|i| string_arg(e, arg(i)?, t)).collect::<Result<_>>()?;
            Value::Vector(
                v.into_iter()
                    .map(|s| {
                        let joined: Vec<&str> = srcs.iter().map(|k| s.labels.get(k).unwrap_or("")).collect();
                        Sample { labels: s.labels.with(&dst, &joined.join(&sep)), v: s.v }
                    })
                    .collect(),
            )
        }
        "clamp" | "clamp_min" | "clamp_max" | "round" => {
            let v = e.eval_vector(arg(0)?, t)?;
            let p1 = if args.len() > 1 { e.eval_scalar(arg(1)?, t)? } else { 1.0 };
            let p2 = if args.len() > 2 { e.eval_scalar(arg(2)?, t)? } else { f64::NAN };
            if name == "clamp" && p2 < p1 {
                return Ok(Value::Vector(Vec::new()));
            }
            let f = |x: f64| match name {
                "clamp" => x.max(p1).min(p2),
                "clamp_min" => x.max(p1),
                "clamp_max" => x.min(p1),
                _ => (x / p1 + 0.5).floor() * p1,
            };
            map_values(e, v, f)
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" | "month" | "year" => {
            let v = match args.first() {
                Some(a) => e.eval_vector(a, t)?,
                None => vec![Sample { labels: Labels::default(), v: t as f64 / 1000.0 }],
            };
            map_values(e, v, |secs| date_part(name, secs))
        }
        _ => match math(name) {
            Some(f) => {
                let v = e.eval_vector(arg(0)?, t)?;
                map_values(e, v, f)
            }
            None => return Err(bad(format!("function {name}() is not supported"))),
        },
    })
}

fn string_arg(e: &mut Engine, a: &Expr, t: i64) -> Result<String> {
    match e.eval(a, t)? {
        Value::String(s) => Ok(s),
        other => Err(bad(format!("expected a string, got a {}", other.type_name()))),
    }
}

fn map_values(e: &mut Engine, v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(v.into_iter().map(|s| Sample { labels: e.drop_name(&s.labels), v: f(s.v) }).collect())
}

fn math(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sgn" => |x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => return None,
    })
}

/// `absent(x)`: 1 with the selector's equality labels when `x` is empty.
fn absent(empty: bool, arg: &Expr) -> Value {
    if !empty {
        return Value::Vector(Vec::new());
    }
    let vs = match arg {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(m) => Some(&m.vs),
        _ => None,
    };
    let mut pairs = Vec::new();
    if let Some(vs) = vs {
        for m in &vs.matchers.matchers {
            if matches!(m.op, promql_parser::label::MatchOp::Equal) && m.name != METRIC_NAME {
                pairs.push((m.name.clone(), m.value.clone()));
            }
        }
    }
    Value::Vector(vec![Sample { labels: Labels::new(pairs), v: 1.0 }])
}

fn timestamps(e: &mut Engine, a: &Expr, t: i64) -> Result<Value> {
    // The sample's own time, not the evaluation time.
    if let Expr::VectorSelector(vs) = a {
        let (series, _) = e.matrix_selector(vs, e.lookback, t)?;
        return Ok(Value::Vector(
            series
                .into_iter()
                .filter_map(|s| {
                    let &(ts, _) = s.points.last()?;
                    Some((s.labels, ts as f64 / 1000.0))
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|(l, v)| Sample { labels: e.drop_name(&l), v })
                .collect(),
        ));
    }
    let v = e.eval_vector(a, t)?;
    Ok(map_values(e, v, |_| t as f64 / 1000.0))
}

type RangeFn = fn(&[(i64, f64)], i64, i64, i64) -> Option<f64>;

fn range_function(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => |p, s, e, r| extrapolated(p, s, e, r, true, true),
        "increase" => |p, s, e, r| extrapolated(p, s, e, r, true, false),
        "delta" => |p, s, e, r| extrapolated(p, s, e, r, false, false),
        "irate" => |p, _, _, _| instant_delta(p, true),
        "idelta" => |p, _, _, _| instant_delta(p, false),
        "resets" => |p, _, _, _| Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64),
        "changes" => |p, _, _, _| {
            Some(p.windows(2).filter(|w| w[1].1 != w[0].1 && !(w[1].1.is_nan() && w[0].1.is_nan())).count() as f64)
        },
        "deriv" => |p, _, _, _| linear_regression(p, p.first()?.0).map(|(slope, _)| slope),
        "avg_over_time" => |p, _, _, _| Some(mean(p.iter().map(|x| x.1))),
        "sum_over_time" => |p, _, _, _| Some(kahan(p.iter().map(|x| x.1))),
        "count_over_time" => |p, _, _, _| Some(p.len() as f64),
        "min_over_time" => |p, _, _, _| p.iter().map(|x| x.1).reduce(|a, b| if b < a || a.is_nan() { b } else { a }),
        "max_over_time" => |p, _, _, _| p.iter().map(|x| x.1).reduce(|a, b| if b > a || a.is_nan() { b } else { a }),
        "last_over_time" => |p, _, _, _| p.last().map(|x| x.1),
        "present_over_time" => |p, _, _, _| (!p.is_empty()).then_some(1.0),
        "stddev_over_time" => |p, _, _, _| Some(variance(p.iter().map(|x| x.1)).sqrt()),
        "stdvar_over_time" => |p, _, _, _| Some(variance(p.iter().map(|x| x.1))),
        _ => return None,
    })
}

/// `rate`, `increase` and `delta`: the change over the samples, corrected for
/// counter resets, extrapolated towards the range's edges (no further than
/// half a sample interval beyond the samples, nor below zero for counters).
fn extrapolated(p: &[(i64, f64)], start: i64, end: i64, range: i64, counter: bool, rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        for w in p.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (p.len() - 1) as f64;
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold { to_start } else { average / 2.0 };
    interval += if to_end < threshold { to_end } else { average / 2.0 };
    result *= interval / sampled;
    if rate {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

fn instant_delta(p: &[(i64, f64)], rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (prev, last) = (p[p.len() - 2], p[p.len() - 1]);
    let mut d = last.1 - prev.1;
    if rate {
        if last.1 < prev.1 {
            d = last.1; // a counter reset
        }
        let secs = (last.0 - prev.0) as f64 / 1000.0;
        if secs == 0.0 {
            return None;
        }
        d /= secs;
    }
    Some(d)
}

/// Least-squares slope (per second) and the value at `at`.
fn linear_regression(p: &[(i64, f64)], at: i64) -> Option<(f64, f64)> {
    if p.len() < 2 {
        return None;
    }
    let n = p.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    let const_y = p.iter().all(|x| x.1 == p[0].1);
    for &(ts, v) in p {
        let x = (ts - at) as f64 / 1000.0;
        sx += x;
        sy += v;
        sxy += x * v;
        sxx += x * x;
    }
    if const_y {
        return Some((0.0, p[0].1));
    }
    let cov = sxy - sx * sy / n;
    let var = sxx - sx * sx / n;
    let slope = cov / var;
    Some((slope, sy / n - slope * sx / n))
}

fn kahan(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0f64, 0.0f64);
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            c += (sum - t) + v;
        } else {
            c += (v - t) + sum;
        }
        sum = t;
    }
    sum + c
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut m, mut n) = (0.0f64, 0.0f64);
    for v in values {
        n += 1.0;
        if m.is_infinite() && v.is_infinite() && m.signum() == v.signum() {
            continue;
        }
        m += (v - m) / n;
    }
    m
}

/// Population variance.
pub fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut m, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        n += 1.0;
        let d = v - m;
        m += d / n;
        m2 += d * (v - m);
    }
    if n == 0.0 { f64::NAN } else { m2 / n }
}

/// Prometheus's quantile: linear interpolation between the closest ranks.
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: std::collections::BTreeMap<Labels, Vec<(f64, f64)>> = Default::default();
    for s in v {
        let Some(le) = s.labels.get("le").and_then(|le| le.parse::<f64>().ok()) else {
            continue;
        };
        groups.entry(s.labels.without("le").without(METRIC_NAME)).or_default().push((le, s.v));
    }
    groups.into_iter().map(|(labels, buckets)| Sample { labels, v: bucket_quantile(q, buckets) }).collect()
}

fn bucket_quantile(q: f64, mut b: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Equal bounds add up; counts must not fall.
    b.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 += later.1;
        }
        same
    });
    for i in 1..b.len() {
        if b[i].1 < b[i - 1].1 {
            b[i].1 = b[i - 1].1;
        }
    }
    if b.len() < 2 {
        return f64::NAN;
    }
    let observations = b[b.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let i = b.partition_point(|x| x.1 < rank);
    if i == b.len() - 1 {
        return b[b.len() - 2].0;
    }
    if i == 0 && b[0].0 <= 0.0 {
        return b[0].0;
    }
    let (mut start, end, mut count) = (0.0, b[i].0, b[i].1);
    if i > 0 {
        start = b[i - 1].0;
        count -= b[i - 1].1;
        rank -= b[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

fn label_replace(v: Vec<Sample>, dst: &str, replacement: &str, src: &str, regex: &str) -> Result<Value> {
    let re = regex::Regex::new(&format!("^(?s:{regex})$"))
        .map_err(|e| bad(format!("invalid regular expression in label_replace(): {e}")))?;
    if !dst.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || dst.is_empty() {
        return Err(bad(format!("invalid destination label name in label_replace(): {dst}")));
    }
    let out: Vec<Sample> = v
        .into_iter()
        .map(|s| {
            let value = s.labels.get(src).unwrap_or("");
            match re.captures(value) {
                Some(caps) => {
                    let mut res = String::new();
                    caps.expand(replacement, &mut res);
                    Sample { labels: s.labels.with(dst, &res), v: s.v }
                }
                None => s,
            }
        })
        .collect();
    Ok(Value::Vector(out))
}

/// Date functions in UTC, from seconds since the epoch.
fn date_part(name: &str, secs: f64) -> f64 {
    let days = (secs / 86_400.0).floor() as i64;
    let secs_of_day = secs - days as f64 * 86_400.0;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let day = doy_mar - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let day_of_year = month_days[..(month - 1) as usize].iter().sum::<i64>() + day;
    (match name {
        "day_of_month" => day,
        "day_of_week" => (days + 4).rem_euclid(7),
        "day_of_year" => day_of_year,
        "days_in_month" => month_days[(month - 1) as usize],
        "hour" => (secs_of_day / 3600.0).floor() as i64,
        "minute" => ((secs_of_day / 60.0).floor() as i64) % 60,
        "month" => month,
        _ => year,
    }) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // A counter scraped every 15 s, rising 1/s, over a 60 s window.
        let p: Vec<(i64, f64)> = (1..=4).map(|i| (i * 15_000, (i * 15) as f64)).collect();
        let r = extrapolated(&p, 0, 60_000, 60_000, true, true).expect("rate");
        assert!((r - 1.0).abs() < 1e-9, "{r}");
        let inc = extrapolated(&p, 0, 60_000, 60_000, true, false).expect("increase");
        assert!((inc - 60.0).abs() < 1e-9, "{inc}");
    }

    #[test]
    fn quantiles_and_buckets() {
        assert_eq!(quantile(0.5, vec![1.0, 3.0, 2.0, 4.0]), 2.5);
        let buckets = vec![(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (f64::INFINITY, 40.0)];
        assert!((bucket_quantile(0.5, buckets.clone()) - 0.3).abs() < 1e-9);
        assert_eq!(bucket_quantile(1.0, buckets), 1.0);
        assert!(bucket_quantile(0.5, vec![(1.0, 1.0)]).is_nan());
    }

    #[test]
    fn dates_in_utc() {
        // 2024-02-29T13:45:00Z
        let t = 1_709_214_300.0;
        assert_eq!(date_part("year", t), 2024.0);
        assert_eq!(date_part("month", t), 2.0);
        assert_eq!(date_part("day_of_month", t), 29.0);
        assert_eq!(date_part("days_in_month", t), 29.0);
        assert_eq!(date_part("hour", t), 13.0);
        assert_eq!(date_part("minute", t), 45.0);
        assert_eq!(date_part("day_of_week", t), 4.0);
        assert_eq!(date_part("day_of_year", t), 60.0);
    }
}
