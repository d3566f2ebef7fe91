//! LogQL, Loki's query language: parsed (`parse.rs`, `ast.rs`), a line
//! through its stages (`pipeline.rs`), metric queries over the samples
//! (`eval.rs`), and the reads from the log store here.
//!
//! The selector's equality matchers on `service_name` and on labels the
//! resource holds as they are written go to the log store as terms; every
//! other matcher, the line filters and the stages run on the lines read,
//! page by page, at most [`MAX_LINES`] lines a query.

pub mod ast;
pub mod eval;
pub mod parse;
pub mod pipeline;

use std::time::Instant;

use sightline_storage::StorageError;
use sightline_storage::logs::{LogExpr as StoreExpr, LogSearch, LogStore, SortKey, Target, TimeRange};
use sightline_storage::model::Tenant;

use ast::{LogExpr, MatchOp, Matcher, MetricExpr, Query};
use eval::{Samples, Steps, Value};
use pipeline::{Labels, Line, Regexes};

pub use parse::{ParseError, parse};

/// The most lines one query reads from the store.
pub const MAX_LINES: usize = 2_000_000;
/// The most series a metric query answers.
pub const MAX_SERIES: usize = 10_000;
/// The most values (series × steps) a range aggregation may hold.
pub const MAX_POINTS: usize = 5_000_000;
const PAGE: usize = 5_000;

/// A parsed query with its regular expressions compiled.
#[derive(Debug)]
pub struct Compiled {
    pub query: Query,
    regexes: Regexes,
}

impl Compiled {
    /// The query's regular expressions, and its stages' runner.
    pub fn regexes(&self) -> &Regexes {
        &self.regexes
    }
}

pub fn compile(text: &str) -> Result<Compiled, ParseError> {
    let query = parse(text)?;
    let mut regexes = Regexes::default();
    let mut logs = Vec::new();
    match &query {
        Query::Log(l) => logs.push(l),
        Query::Metric(m) => log_exprs(m, &mut logs),
    }
    for l in logs {
        Regexes::of(l, &mut regexes).map_err(|message| ParseError { column: 1, message })?;
    }
    Ok(Compiled { query, regexes })
}

fn log_exprs<'a>(m: &'a MetricExpr, out: &mut Vec<&'a LogExpr>) {
    match m {
        MetricExpr::Range { log, .. } => out.push(log),
        MetricExpr::Vector { inner, .. } => log_exprs(inner, out),
        MetricExpr::Binary { left, right, .. } => {
            log_exprs(left, out);
            log_exprs(right, out);
        }
        MetricExpr::Number(_) => {}
    }
}

/// What the log store can check of a selector: a condition every selected line meets.
pub fn pushdown(selector: &[Matcher]) -> StoreExpr {
    let terms: Vec<StoreExpr> = selector
        .iter()
        .filter(|m| m.op == MatchOp::Eq && !m.value.is_empty())
        .filter_map(|m| {
            let target = match m.label.as_str() {
                "service_name" => Target::Service,
                // Written with underscores, the label may be a dotted key: only plain names go down.
                l if !l.contains('_') => Target::Resource(l.to_owned()),
                _ => return None,
            };
            Some(StoreExpr::Text { target, value: m.value.clone(), prefix: false })
        })
        .collect();
    if terms.is_empty() { StoreExpr::All } else { StoreExpr::And(terms) }
}

/// What a query reads with: the store, the tenant, the query, its deadline.
pub struct Reader<'a> {
    pub store: &'a LogStore,
    pub tenant: &'a Tenant,
    pub compiled: &'a Compiled,
    pub deadline: Option<Instant>,
}

/// A store error (the deadline among them), or the query's own (400).
type Read<T> = Result<Result<T, String>, StorageError>;

impl Reader<'_> {
    /// Reads the lines in `[start, end]` in pages, newest or oldest first;
    /// `each` gets every line the selector selects until it answers false.
    /// The query's error past [`MAX_LINES`] lines read.
    pub fn scan(
        &self,
        log: &LogExpr,
        range: (i64, i64),
        newest_first: bool,
        each: impl FnMut(Line) -> bool,
    ) -> Read<()> {
        self.scan_after(log, range, newest_first, None, each).map(|r| r.map(|_| ()))
    }

    /// [`Self::scan`] from strictly after `after` (in the order read); the
    /// key of the last line read, selected or not.
    pub fn scan_after(
        &self,
        log: &LogExpr,
        (start, end): (i64, i64),
        newest_first: bool,
        after: Option<SortKey>,
        mut each: impl FnMut(Line) -> bool,
    ) -> Read<Option<SortKey>> {
        let mut expr = pushdown(&log.selector);
        // Services named by a regular expression or a negation: the index's
        // list of the range's services, matched here, goes down as terms.
        if log.selector.iter().any(|m| m.label == "service_name" && m.op != MatchOp::Eq) {
            let all = self.store.top_values(
                self.tenant,
                &StoreExpr::All,
                TimeRange { start, end },
                sightline_storage::logs::TopField::Service,
                usize::MAX,
                self.deadline,
            )?;
            let wanted: Vec<StoreExpr> = all
                .into_iter()
                .map(|(service, _)| service)
                .filter(|s| self.compiled.regexes.selects_label(&log.selector, "service_name", s))
                .map(|value| StoreExpr::Text { target: Target::Service, value, prefix: false })
                .collect();
            if wanted.is_empty() {
                return Ok(Ok(after));
            }
            expr = StoreExpr::And(vec![expr, StoreExpr::Or(wanted)]);
        }
        let range = TimeRange { start, end };
        let mut read = 0usize;
        let select = |key: SortKey, record: &sightline_storage::model::LogRecord| -> Option<Line> {
            let stream = Line::stream_of(record);
            self.compiled.regexes.selects(&log.selector, &stream).then(|| Line::with_stream(key.ts, record, stream))
        };
        if !newest_first {
            // Oldest first: one streaming pass over the index.
            let (mut last, mut over) = (after, false);
            self.store.scan(self.tenant, &expr, range, after, self.deadline, |key, record| {
                last = Some(key);
                read += 1;
                if read > MAX_LINES {
                    over = true;
                    return false;
                }
                select(key, &record).is_none_or(&mut each)
            })?;
            return Ok(if over { Err(too_many_lines()) } else { Ok(last) });
        }
        let mut search = LogSearch { tenant: self.tenant.clone(), expr, range, limit: PAGE, newest_first, after };
        loop {
            let hits = self.store.search(&search, self.deadline)?;
            read += hits.len();
            if read > MAX_LINES {
                return Ok(Err(too_many_lines()));
            }
            let full = hits.len() == PAGE;
            search.after = hits.last().map(|h| h.key).or(search.after);
            for hit in hits {
                if let Some(line) = select(hit.key, &hit.record)
                    && !each(line)
                {
                    return Ok(Ok(Some(hit.key)));
                }
            }
            if !full {
                return Ok(Ok(search.after));
            }
        }
    }

    /// A log query: at most `limit` lines after the stages, newest first when `backward`.
    pub fn lines(&self, range: (i64, i64), limit: usize, backward: bool) -> Read<Vec<Line>> {
        let Query::Log(log) = &self.compiled.query else {
            return Ok(Err("not a log query".into()));
        };
        let mut out = Vec::new();
        let scanned = self.scan(log, range, backward, |line| {
            if let Some((line, _)) = self.compiled.regexes.run(&log.stages, line) {
                out.push(line);
            }
            out.len() < limit
        })?;
        Ok(scanned.map(|()| out))
    }

    /// A metric query at every step.
    pub fn metric(&self, steps: Steps) -> Read<Value> {
        let Query::Metric(m) = &self.compiled.query else {
            return Ok(Err("not a metric query".into()));
        };
        self.evaluate(m, steps)
    }

    fn evaluate(&self, m: &MetricExpr, steps: Steps) -> Read<Value> {
        let value = match m {
            MetricExpr::Number(n) => Value::Scalar(*n),
            MetricExpr::Range { function, param, log, range, grouping } => {
                match self.range(*function, *param, log, *range, grouping.as_ref(), steps)? {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                }
            }
            MetricExpr::Vector { function, param, grouping, inner } => {
                // `sum by (g) (count_over_time(…))` and the like: the lines are
                // counted by `g` as they are read, never one series per label set.
                let pushed = match (function, inner.as_ref()) {
                    (ast::VectorFn::Sum, MetricExpr::Range { function: f, param, log, range, grouping: None })
                        if f.adds_up() =>
                    {
                        let g = grouping.clone().unwrap_or(ast::Grouping { without: false, labels: Vec::new() });
                        Some(self.range(*f, *param, log, *range, Some(&g), steps)?)
                    }
                    _ => None,
                };
                let inner = match pushed.map_or_else(|| self.evaluate(inner, steps), Ok)? {
                    Ok(inner) => inner,
                    Err(e) => return Ok(Err(e)),
                };
                Value::Vector(eval::vector(*function, *param, grouping.as_ref(), inner, steps))
            }
            MetricExpr::Binary { op, keep, left, right } => {
                let (l, r) = match (self.evaluate(left, steps)?, self.evaluate(right, steps)?) {
                    (Ok(l), Ok(r)) => (l, r),
                    (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
                };
                match eval::binary(*op, *keep, l, r, steps) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        if let Value::Vector(v) = &value
            && v.len() > MAX_SERIES
        {
            return Ok(Err(too_many_series()));
        }
        Ok(Ok(value))
    }

    /// A range aggregation, its samples grouped by `grouping` as they are read.
    fn range(
        &self,
        function: ast::RangeFn,
        param: Option<f64>,
        log: &LogExpr,
        range: u64,
        grouping: Option<&ast::Grouping>,
        steps: Steps,
    ) -> Read<Value> {
        let samples = match self.samples(log, function, range, grouping, steps)? {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let absent: Labels =
            log.selector.iter().filter(|m| m.op == MatchOp::Eq).map(|m| (m.label.clone(), m.value.clone())).collect();
        Ok(Ok(Value::Vector(eval::range(function, param, range, grouping, samples, steps, absent))))
    }

    /// The samples of a range aggregation: every selected line of
    /// `(first step − range, last step]` through the stages, by series.
    fn samples(
        &self,
        log: &LogExpr,
        function: ast::RangeFn,
        range: u64,
        grouping: Option<&ast::Grouping>,
        steps: Steps,
    ) -> Read<Samples> {
        let start = steps.start.saturating_sub(i64::try_from(range).unwrap_or(i64::MAX));
        let end = steps.at(steps.count.saturating_sub(1));
        let bytes = matches!(function, ast::RangeFn::Bytes | ast::RangeFn::BytesRate);
        let mut samples = Samples::new();
        let mut failed: Option<String> = None;
        let scanned = self.scan(log, (start.saturating_add(1), end), false, |line| {
            let Some((line, unwrapped)) = self.compiled.regexes.run(&log.stages, line) else { return true };
            if let Some(e) = line.labels.get("__error__") {
                failed = Some(pipeline_error(e, &line.labels));
                return false;
            }
            let v = if bytes { line.text.len() as f64 } else { unwrapped.unwrap_or(1.0) };
            let key = match grouping {
                Some(g) => eval::grouped(&line.labels, g),
                None => line.labels,
            };
            samples.entry(key).or_default().push((line.ts, v));
            if samples.len() > MAX_SERIES {
                failed = Some(too_many_series());
                return false;
            }
            if samples.len().saturating_mul(steps.count) > MAX_POINTS {
                failed = Some(format!(
                    "the query would answer more than {MAX_POINTS} points ({} series × {} steps): use a larger step or fewer series",
                    samples.len(),
                    steps.count
                ));
                return false;
            }
            true
        })?;
        Ok(scanned.and_then(|()| failed.map_or(Ok(samples), Err)))
    }
}

fn too_many_lines() -> String {
    format!("the query reads more than {MAX_LINES} lines: narrow its selector or its time range")
}

fn too_many_series() -> String {
    format!("maximum of series ({MAX_SERIES}) reached for a single query")
}

fn pipeline_error(error: &str, labels: &Labels) -> String {
    let shown: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!(
        "pipeline error: '{error}' for series: '{{{}}}'. Use a label filter to intentionally skip this error. (e.g | __error__!=\"{error}\")",
        shown.join(", ")
    )
}

#[cfg(test)]
mod tests;
