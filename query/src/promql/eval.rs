//! PromQL evaluation, step by step, with Prometheus 2's semantics: a vector
//! selector takes each series' newest sample in `[t - lookback, t]` unless
//! it is a staleness marker; a range selector takes `[t - range, t]`;
//! `offset` and `@` move the reference time; subqueries evaluate their inner
//! expression at multiples of their step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, AtModifier, Expr, Offset, VectorSelector};
use sightline_storage::metrics::{Labels, METRIC_NAME, MetricStore, Series, is_stale};
use sightline_storage::model::Tenant;

use super::value::{RangeSeries, Result, Sample, Value, bad, exec};
use super::{aggregate, binary, functions};
use crate::limits::Budget;

/// The default step of a subquery without one, as Prometheus's default
/// evaluation interval.
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// At most this many points in a range query's answer (Prometheus's limit).
pub const MAX_POINTS: i64 = 11_000;

/// A range selector's fetched series, the `(series, from, to)` sample
/// ranges inside the window, and the window's end.
pub type Windows = (Arc<Vec<Series>>, Vec<(usize, usize, usize)>, i64);

struct Fetched {
    mint: i64,
    maxt: i64,
    series: Arc<Vec<Series>>,
    /// Where the last range window of each series began and ended, and its
    /// end time: steps move forward, so the next window is found by
    /// stepping on from there instead of searching again.
    cursor: Option<(i64, Vec<(usize, usize)>)>,
}

/// A hasher for keys that are already well spread (allocation addresses).
#[derive(Default)]
pub struct PtrHasher(u64);

impl std::hash::Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(29) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

pub type PtrMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<PtrHasher>>;

pub struct Engine<'a> {
    store: &'a MetricStore,
    tenant: &'a Tenant,
    budget: &'a Budget,
    pub lookback: i64,
    /// The query's range, for `@ start()` / `@ end()`.
    start: i64,
    end: i64,
    /// The last step this engine evaluates: fetches reach that far ahead.
    fetch_end: i64,
    cache: HashMap<String, Fetched>,
    /// Labels derived from others (name dropped, group of an aggregation),
    /// memoised by the source's allocation, which the entry keeps alive, so
    /// that each step of a range query reuses them instead of rebuilding.
    derived: PtrMap<(usize, usize), (Labels, Labels)>,
    /// One allocation per distinct derived label set, so that equal labels
    /// are the same pointer (aggregations group by it).
    interned: std::collections::HashSet<Labels>,
}

pub fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => ms(*d),
        Some(Offset::Neg(d)) => -ms(*d),
        None => 0,
    }
}

/// What a vector selector matches: its matchers, the metric name included,
/// and its `or` groups.
pub struct Selector<'v> {
    matchers: Vec<Matcher>,
    or_groups: &'v [Vec<Matcher>],
}

impl<'v> Selector<'v> {
    pub fn of(vs: &'v VectorSelector) -> Self {
        let mut matchers = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name
            && !matchers.iter().any(|m| m.name == METRIC_NAME)
        {
            matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
        }
        Selector { matchers, or_groups: &vs.matchers.or_matchers }
    }

    /// `label="value"` pairs every match has (for the postings index).
    pub fn hints(&self) -> Vec<(&str, &str)> {
        if !self.or_groups.is_empty() {
            return Vec::new();
        }
        self.matchers
            .iter()
            .filter(|m| matches!(m.op, MatchOp::Equal) && !m.value.is_empty())
            .map(|m| (m.name.as_str(), m.value.as_str()))
            .collect()
    }

    pub fn matches(&self, l: &Labels) -> bool {
        let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(l.get(&m.name).unwrap_or("")));
        all(&self.matchers) && (self.or_groups.is_empty() || self.or_groups.iter().any(|g| all(g)))
    }
}

/// Every vector selector of an expression (range selectors' included).
pub fn selectors(e: &Expr) -> Vec<&VectorSelector> {
    let mut out = Vec::new();
    fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
        match e {
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(m) => out.push(&m.vs),
            Expr::Aggregate(a) => {
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    walk(e, &mut out);
    out
}

/// Parses a query, with Prometheus's wording for errors.
/// The parser panics on a duration too large for a `Duration` (a range of
/// `[28888888888888888888]`): such a query is refused before it is parsed,
/// and any other panic of the parser is caught and refused the same way.
pub fn parse(query: &str) -> Result<Expr> {
    check_durations(query)?;
    match std::panic::catch_unwind(|| parser::parse(query)) {
        Ok(parsed) => parsed.map_err(|e| bad(format!("invalid parameter \"query\": {e}"))),
        Err(_) => Err(bad("invalid parameter \"query\": a number or duration in it is out of range")),
    }
}

/// Refuses a number of more than 15 digits in a duration's place (inside
/// `[...]` or before a unit), outside string literals.
fn check_durations(query: &str) -> Result<()> {
    let bytes = query.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
                i += 1;
            }
            None if matches!(b, b'"' | b'\'' | b'`') => {
                quote = Some(b);
                i += 1;
            }
            None if b.is_ascii_digit() => {
                let in_word = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || matches!(bytes[i - 1], b'_' | b'.'));
                let start = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                let unit = bytes.get(i).is_some_and(|c| b"smhdwy]:".contains(c));
                if !in_word && unit && i - start > 15 {
                    return Err(bad("invalid parameter \"query\": a duration in it is out of range"));
                }
            }
            None => i += 1,
        }
    }
    Ok(())
}

impl<'a> Engine<'a> {
    pub fn new(
        store: &'a MetricStore,
        tenant: &'a Tenant,
        budget: &'a Budget,
        lookback: i64,
        start: i64,
        end: i64,
    ) -> Self {
        Engine {
            store,
            tenant,
            budget,
            lookback,
            start,
            end,
            fetch_end: end,
            cache: HashMap::new(),
            derived: PtrMap::default(),
            interned: Default::default(),
        }
    }

    /// `f(l)`, computed once per source labels and `kind` for the query;
    /// equal results share one allocation.
    pub fn derive(&mut self, l: &Labels, kind: usize, f: impl FnOnce(&Labels) -> Labels) -> Labels {
        let key = (l.addr(), kind);
        if let Some((_, out)) = self.derived.get(&key) {
            return out.clone();
        }
        let out = f(l);
        let out = match self.interned.get(&out) {
            Some(shared) => shared.clone(),
            None => {
                self.interned.insert(out.clone());
                out
            }
        };
        self.derived.insert(key, (l.clone(), out.clone()));
        out
    }

    /// The labels without the metric name.
    pub fn drop_name(&mut self, l: &Labels) -> Labels {
        self.derive(l, 0, |l| l.without(METRIC_NAME))
    }

    /// For a range selector at `t`: the fetched series and, per series with
    /// samples in `[ref - range, ref]`, its index and that slice's bounds;
    /// with the range's end. No sample is copied.
    pub fn matrix_windows(&mut self, vs: &VectorSelector, range: i64, t: i64) -> Result<Windows> {
        let at = self.reference(&vs.at, &vs.offset, t);
        let series = self.fetch(vs, at - range, at)?;
        let (lo, hi) = (at - range, at);
        let fetched = self.cache.get_mut(&vs.to_string());
        let previous =
            fetched.as_ref().and_then(|f| f.cursor.as_ref()).filter(|(end, c)| *end <= at && c.len() == series.len());
        let bounds: Vec<(usize, usize)> = match previous {
            // Forward from the last window.
            Some((_, c)) => series
                .iter()
                .zip(c)
                .map(|(s, &(mut from, mut to))| {
                    while from < s.samples.len() && s.samples[from].0 < lo {
                        from += 1;
                    }
                    to = to.max(from);
                    while to < s.samples.len() && s.samples[to].0 <= hi {
                        to += 1;
                    }
                    (from, to)
                })
                .collect(),
            None => series
                .iter()
                .map(|s| {
                    (s.samples.partition_point(|(ts, _)| *ts < lo), s.samples.partition_point(|(ts, _)| *ts <= hi))
                })
                .collect(),
        };
        let windows = bounds.iter().enumerate().filter(|(_, (f, t))| f < t).map(|(i, &(f, t))| (i, f, t)).collect();
        if let Some(f) = fetched {
            f.cursor = Some((at, bounds));
        }
        Ok((series, windows, at))
    }

    /// The reference time of a selector evaluated at `t`.
    fn reference(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        let base = match at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(time)) => time.duration_since(UNIX_EPOCH).map_or(0, ms),
        };
        base - offset_ms(offset)
    }

    /// The series of a selector with samples in `mint..=maxt`; fetched once
    /// per query for the rest of its range.
    fn fetch(&mut self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<Arc<Vec<Series>>> {
        let key = vs.to_string();
        if let Some(f) = self.cache.get(&key)
            && f.mint <= mint
            && maxt <= f.maxt
        {
            return Ok(f.series.clone());
        }
        // Later steps move forward: take the rest of this engine's steps now.
        let maxt = maxt.max(maxt + (self.fetch_end - self.start).max(0));
        let mint = self.cache.get(&key).map_or(mint, |f| f.mint.min(mint));
        let selector = Selector::of(vs);
        let hints = selector.hints();
        let filter = |l: &Labels| selector.matches(l);
        self.budget.check_time()?;
        let series = self.store.select(self.tenant, &hints, filter, mint, maxt).map_err(|e| exec(e.to_string()))?;
        self.budget.touch(series.len())?;
        let series = Arc::new(series);
        self.cache.insert(key, Fetched { mint, maxt, series: series.clone(), cursor: None });
        Ok(series)
    }

    fn vector_selector(&mut self, vs: &VectorSelector, t: i64) -> Result<Vec<Sample>> {
        let at = self.reference(&vs.at, &vs.offset, t);
        let series = self.fetch(vs, at - self.lookback, at)?;
        Ok(series
            .iter()
            .filter_map(|s| {
                let i = s.samples.partition_point(|(ts, _)| *ts <= at);
                let &(ts, v) = s.samples.get(i.checked_sub(1)?)?;
                (ts >= at - self.lookback && !is_stale(v)).then(|| Sample { labels: s.labels.clone(), v })
            })
            .collect())
    }

    /// Samples of a range selector: `[ref - range, ref]`; returns them with
    /// the range's end (the reference time).
    pub fn matrix_selector(&mut self, vs: &VectorSelector, range: i64, t: i64) -> Result<(Vec<RangeSeries>, i64)> {
        let at = self.reference(&vs.at, &vs.offset, t);
        let series = self.fetch(vs, at - range, at)?;
        let out = series
            .iter()
            .filter_map(|s| {
                let from = s.samples.partition_point(|(ts, _)| *ts < at - range);
                let to = s.samples.partition_point(|(ts, _)| *ts <= at);
                let points: Vec<_> = s.samples[from..to].iter().copied().filter(|(_, v)| !is_stale(*v)).collect();
                (!points.is_empty()).then(|| RangeSeries { labels: s.labels.clone(), points })
            })
            .collect();
        Ok((out, at))
    }

    /// A range argument (range selector or subquery) at `t`: its series,
    /// its range and its end.
    pub fn range_arg(&mut self, e: &Expr, t: i64) -> Result<(Vec<RangeSeries>, i64, i64)> {
        match e {
            Expr::MatrixSelector(m) => {
                let range = ms(m.range);
                let (series, end) = self.matrix_selector(&m.vs, range, t)?;
                Ok((series, range, end))
            }
            Expr::Subquery(sq) => {
                let range = ms(sq.range);
                let step = sq.step.map(ms).filter(|s| *s > 0).unwrap_or(DEFAULT_SUBQUERY_STEP_MS);
                let end = self.reference(&sq.at, &sq.offset, t);
                let start = end - range;
                let mut first = start - start.rem_euclid(step);
                if first < start {
                    first += step;
                }
                if (end - first) / step >= MAX_POINTS {
                    return Err(bad(format!(
                        "the subquery would evaluate more than {MAX_POINTS} steps: use a longer step or a shorter range"
                    )));
                }
                let mut by_labels: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
                let mut ts = first;
                while ts <= end {
                    self.budget.check_time()?;
                    match self.eval(&sq.expr, ts)? {
                        Value::Vector(v) => {
                            for s in v {
                                by_labels.entry(s.labels).or_default().push((ts, s.v));
                            }
                        }
                        Value::Scalar(v) => by_labels.entry(Labels::default()).or_default().push((ts, v)),
                        other => return Err(bad(format!("subquery of a {} is not allowed", other.type_name()))),
                    }
                    ts += step;
                }
                let series = by_labels.into_iter().map(|(labels, points)| RangeSeries { labels, points }).collect();
                Ok((series, range, end))
            }
            Expr::Paren(p) => self.range_arg(&p.expr, t),
            other => Err(bad(format!("expected a range vector, got {}", expr_kind(other)))),
        }
    }

    pub fn eval(&mut self, e: &Expr, t: i64) -> Result<Value> {
        Ok(match e {
            Expr::NumberLiteral(n) => Value::Scalar(n.val),
            Expr::StringLiteral(s) => Value::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, t)?,
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(v) => Value::Vector(
                    v.into_iter().map(|s| Sample { labels: self.drop_name(&s.labels), v: -s.v }).collect(),
                ),
                other => return Err(bad(format!("unary minus on a {}", other.type_name()))),
            },
            Expr::VectorSelector(vs) => Value::Vector(self.vector_selector(vs, t)?),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => Value::Matrix(self.range_arg(e, t)?.0),
            Expr::Call(call) => functions::call(self, call, t)?,
            Expr::Aggregate(a) => aggregate::eval(self, a, t)?,
            Expr::Binary(b) => binary::eval(self, b, t)?,
            Expr::Extension(_) => return Err(exec("extension expressions are not supported")),
        })
    }

    /// Evaluates to an instant vector, or says what it got instead.
    pub fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Sample>> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(bad(format!("expected an instant vector, got a {}", other.type_name()))),
        }
    }

    pub fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(bad(format!("expected a scalar, got a {}", other.type_name()))),
        }
    }
}

fn expr_kind(e: &Expr) -> &'static str {
    match e {
        Expr::NumberLiteral(_) => "a number",
        Expr::StringLiteral(_) => "a string",
        Expr::VectorSelector(_) => "an instant vector",
        _ => "an expression",
    }
}

/// Evaluates a query at one time (ms).
pub fn instant(
    store: &MetricStore,
    tenant: &Tenant,
    budget: &Budget,
    query: &str,
    t: i64,
    lookback: i64,
) -> Result<Value> {
    let expr = parse(query)?;
    let mut engine = Engine::new(store, tenant, budget, lookback, t, t);
    let value = engine.eval(&expr, t)?;
    if let Value::Vector(v) = &value {
        check_unique(v)?;
    }
    Ok(value)
}

/// Evaluates a query at `start, start + step, … <= end` (ms). Long ranges
/// are split into consecutive slices of steps evaluated on separate cores,
/// each with its own engine, and joined in order.
#[allow(clippy::too_many_arguments)]
pub fn range(
    store: &MetricStore,
    tenant: &Tenant,
    budget: &Budget,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
) -> Result<Vec<RangeSeries>> {
    let expr = parse(query)?;
    if matches!(expr, Expr::MatrixSelector(_) | Expr::Subquery(_) | Expr::StringLiteral(_)) {
        return Err(bad(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            if matches!(expr, Expr::StringLiteral(_)) { "string" } else { "range vector" }
        )));
    }
    let steps = (end - start) / step + 1;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let slices = if steps >= 2 * MIN_STEPS_PER_SLICE { cores.min(steps / MIN_STEPS_PER_SLICE).max(1) } else { 1 };
    let per_slice = (steps + slices - 1) / slices;
    let bounds: Vec<(i64, i64)> = (0..slices)
        .map(|k| (start + k * per_slice * step, (start + ((k + 1) * per_slice - 1) * step).min(end)))
        .filter(|(from, to)| from <= to)
        .collect();
    let parts: Vec<Result<Points>> = if bounds.len() == 1 {
        vec![range_slice(store, tenant, budget, &expr, start, end, step, lookback, (start, end))]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = bounds
                .iter()
                .map(|&b| {
                    let expr = &expr;
                    scope.spawn(move || range_slice(store, tenant, budget, expr, start, end, step, lookback, b))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(exec("a query thread failed")))).collect()
        })
    };
    let mut by_labels: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for part in parts {
        for (labels, points) in part? {
            by_labels.entry(labels).or_default().extend(points);
        }
    }
    Ok(by_labels.into_iter().map(|(labels, points)| RangeSeries { labels, points }).collect())
}

/// A range query's points by series.
type Points = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Steps below which a range query is not split.
const MIN_STEPS_PER_SLICE: i64 = 200;

/// The steps of `slice` (ms, inclusive) of a range query.
#[allow(clippy::too_many_arguments)]
fn range_slice(
    store: &MetricStore,
    tenant: &Tenant,
    budget: &Budget,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
    slice: (i64, i64),
) -> Result<Points> {
    let mut engine = Engine::new(store, tenant, budget, lookback, start, end);
    engine.fetch_end = slice.1;
    let mut by_labels: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = slice.0;
    while t <= slice.1 {
        budget.check_time()?;
        match engine.eval(expr, t)? {
            Value::Scalar(v) => by_labels.entry(Labels::default()).or_default().push((t, v)),
            Value::Vector(v) => {
                check_unique(&v)?;
                for s in v {
                    by_labels.entry(s.labels).or_default().push((t, s.v));
                }
            }
            other => return Err(bad(format!("a range query of a {} is not allowed", other.type_name()))),
        }
        t += step;
    }
    Ok(by_labels)
}

/// Prometheus refuses an answer with two series of the same labels.
fn check_unique(samples: &[Sample]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(samples.len());
    for s in samples {
        if !seen.insert(&s.labels) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}
