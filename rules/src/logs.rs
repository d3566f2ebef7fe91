//! Rules over logs: a group marked `source: logs` has expressions that
//! count log lines with Sightline's log query language, in PromQL's shape:
//!
//! ```text
//! count_over_time(<log query>[5m])
//! sum(count_over_time(<log query>[5m]))
//! sum by (service) (count_over_time(<log query>[5m]))     # or host, severity
//! … > 10      (also >=, <, <=, ==, !=: keeps the series that pass)
//! ```
//!
//! A count is of the lines whose time is in `(t - range, t]`, read from the
//! log store as the log search reads them.

use std::time::Instant;

use sightline_query::http::logs::severity_name;
use sightline_query::log_query;
use sightline_storage::logs::{LogExpr, LogStore, TimeRange, TopField};
use sightline_storage::metrics::Labels;
use sightline_storage::model::Tenant;

use crate::rule::{Point, Query};

/// A parsed log rule expression.
#[derive(Clone, Debug)]
pub struct LogCount {
    /// The log query as written (for links into the logs explorer).
    pub text: String,
    pub query: LogExpr,
    pub range_ms: i64,
    /// `by (…)` labels: `service`, `host` or `severity` (at most one).
    pub by: Option<TopField>,
    pub by_label: String,
    pub filter: Option<Filter>,
}

/// A comparison with a number that keeps the series passing it.
pub type Filter = (Cmp, f64);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Cmp {
    fn keeps(self, v: f64, bound: f64) -> bool {
        match self {
            Cmp::Gt => v > bound,
            Cmp::Ge => v >= bound,
            Cmp::Lt => v < bound,
            Cmp::Le => v <= bound,
            Cmp::Eq => v == bound,
            Cmp::Ne => v != bound,
        }
    }
}

/// Parses a log rule expression; the error says what is expected.
pub fn parse(text: &str) -> Result<LogCount, String> {
    const SHAPE: &str = "expected count_over_time(<log query>[<duration>]), optionally in sum(…) or sum by (service|host|severity) (…), optionally compared with a number";
    let text = text.trim();
    let (body, filter) = split_comparison(text)?;
    let body = body.trim();
    let (inner, by) = if let Some(rest) = body.strip_prefix("sum") {
        let rest = rest.trim_start();
        let (by, rest) = match rest.strip_prefix("by") {
            Some(after) => {
                let (labels, rest) = parenthesised(after.trim_start()).ok_or(SHAPE)?;
                (Some(labels.trim().to_owned()), rest.trim_start())
            }
            None => (None, rest),
        };
        let (inner, rest) = parenthesised(rest).ok_or(SHAPE)?;
        let rest = rest.trim();
        let by = match (by, rest.strip_prefix("by")) {
            (Some(b), _) if rest.is_empty() => Some(b),
            (None, Some(after)) => {
                let (labels, tail) = parenthesised(after.trim_start()).ok_or(SHAPE)?;
                if !tail.trim().is_empty() {
                    return Err(SHAPE.into());
                }
                Some(labels.trim().to_owned())
            }
            (None, None) if rest.is_empty() => None,
            _ => return Err(SHAPE.into()),
        };
        (inner.trim(), by)
    } else {
        (body, None)
    };
    let args = inner.strip_prefix("count_over_time").map(str::trim_start).ok_or(SHAPE)?;
    let (args, rest) = parenthesised(args).ok_or(SHAPE)?;
    if !rest.trim().is_empty() {
        return Err(SHAPE.into());
    }
    let args = args.trim();
    let open = args.rfind('[').filter(|_| args.ends_with(']')).ok_or(SHAPE)?;
    let range = &args[open + 1..args.len() - 1];
    let range_ms = promql_parser::util::duration::parse_duration(range)
        .map_err(|_| format!("not a valid duration: {range:?}"))?
        .as_millis() as i64;
    if range_ms <= 0 {
        return Err("the range must be more than 0".into());
    }
    let text = args[..open].trim().to_owned();
    let query = log_query::parse(&text).map_err(|e| format!("log query: {e}"))?;
    let (by, by_label) = match by.as_deref() {
        None | Some("") => (None, String::new()),
        Some("service") => (Some(TopField::Service), "service".into()),
        Some("host") => (Some(TopField::Host), "host".into()),
        Some("severity") => (Some(TopField::Severity), "severity".into()),
        Some(other) => return Err(format!("log rules group by service, host or severity, not {other:?}")),
    };
    Ok(LogCount { text, query, range_ms, by, by_label, filter })
}

/// `(inner) rest` → (inner, rest), with nested parentheses and quotes.
fn parenthesised(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix('(')?;
    let (mut depth, mut quote) = (1, None);
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some((&s[..i], &s[i + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

/// A trailing comparison with a number, outside parentheses and quotes.
fn split_comparison(text: &str) -> Result<(&str, Option<Filter>), String> {
    let Some(close) = text.rfind(')') else { return Ok((text, None)) };
    let (body, tail) = text.split_at(close + 1);
    let t = tail.trim();
    if t.is_empty() {
        return Ok((text, None));
    }
    let ops = [(">=", Cmp::Ge), ("<=", Cmp::Le), ("==", Cmp::Eq), ("!=", Cmp::Ne), (">", Cmp::Gt), ("<", Cmp::Lt)];
    let (op, cmp) = ops.iter().find(|(op, _)| t.starts_with(op)).ok_or_else(|| format!("unexpected {t:?}"))?;
    let number = t[op.len()..].trim();
    let bound: f64 = number.parse().map_err(|_| format!("expected a number after {op}, not {number:?}"))?;
    Ok((body, Some((*cmp, bound))))
}

/// Log counts for one tenant, stopped at `deadline`.
pub struct LogQuery<'a> {
    pub store: &'a LogStore,
    pub tenant: &'a Tenant,
    pub deadline: Option<Instant>,
}

impl Query for LogQuery<'_> {
    fn instant(&self, expr: &str, t: i64) -> Result<Vec<Point>, String> {
        let count = parse(expr)?;
        let ns = |ms: i64| ms.saturating_mul(1_000_000);
        let range = TimeRange { start: ns(t - count.range_ms) + 1, end: ns(t) };
        let mut points = match &count.by {
            None => {
                let step = range.end - range.start + 1;
                let buckets = self
                    .store
                    .histogram(self.tenant, &count.query, range, step, self.deadline)
                    .map_err(|e| e.to_string())?;
                vec![Point { labels: Labels::default(), v: buckets.iter().sum::<u64>() as f64 }]
            }
            Some(field) => {
                let top = self
                    .store
                    .top_values(self.tenant, &count.query, range, field.clone(), usize::MAX, self.deadline)
                    .map_err(|e| e.to_string())?;
                // Severities by name (`ERROR` covers 17–20), as the log API counts them.
                let mut by_value: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
                for (value, n) in top {
                    let value = if *field == TopField::Severity {
                        severity_name(value.parse().unwrap_or(0)).to_owned()
                    } else {
                        value
                    };
                    *by_value.entry(value).or_default() += n;
                }
                by_value
                    .into_iter()
                    .map(|(value, n)| Point { labels: Labels::new(vec![(count.by_label.clone(), value)]), v: n as f64 })
                    .collect()
            }
        };
        if let Some((cmp, bound)) = count.filter {
            points.retain(|p| cmp.keeps(p.v, bound));
        }
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shapes_of_log_rules() {
        let c = parse("count_over_time(service:checkout severity>=ERROR [5m]) > 10").expect("valid");
        assert_eq!((c.range_ms, c.by), (300_000, None));
        assert_eq!(c.filter, Some((Cmp::Gt, 10.0)));
        let c = parse("sum by (service) (count_over_time(\"timeout (db)\"[1m]))").expect("valid");
        assert_eq!((c.by, c.by_label.as_str(), c.filter), (Some(TopField::Service), "service", None));
        let c = parse("sum(count_over_time(level:error[30s])) by (host) <= 2").expect("valid");
        assert_eq!((c.by, c.filter), (Some(TopField::Host), Some((Cmp::Le, 2.0))));
        assert!(parse("sum(count_over_time([1m]))").expect("empty query: every line").by.is_none());
        for (bad, message) in [
            ("rate(x[5m])", "expected count_over_time"),
            ("count_over_time(error)", "expected count_over_time"),
            ("count_over_time(error[5x])", "not a valid duration"),
            ("count_over_time(service:[5m])", "log query"),
            ("sum by (pod) (count_over_time(error[5m]))", "not \"pod\""),
            ("count_over_time(error[5m]) > lots", "expected a number"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains(message), "{bad}: {e}");
        }
    }
}
