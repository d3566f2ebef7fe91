//! TraceQL, Tempo's trace query language: parsed (`parse.rs`, `ast.rs`),
//! run over the spans of one trace (`eval.rs`), and searched over the span
//! store here.
//!
//! A search asks the store for the newest traces with a span that matches a
//! condition every answer must meet ([`pushdown`]: service, name, status,
//! duration bounds and attribute equalities of one spanset filter), pages
//! back through time in rounds, and runs the whole query on each candidate
//! trace. Queries with nothing to push down (`{}`, `||` between spansets)
//! inspect every trace of the range, newest first, up to
//! [`MAX_INSPECTED`] traces.

pub mod ast;
pub mod eval;
pub mod parse;

use std::collections::HashSet;
use std::sync::Arc;

use sightline_storage::StorageError;
use sightline_storage::model::{Span, Tenant, TraceId};
use sightline_storage::spans::{SpanQuery, SpanStore};

use ast::{Compare, Expr, Intrinsic, Operand, Query, Scope, Spansets, Stage, Value};
pub use eval::{Compiled, Got, TraceView};
pub use parse::{ParseError, parse};

/// Parses and compiles a query.
pub fn compile(text: &str) -> Result<Compiled, ParseError> {
    Compiled::new(parse(text)?)
}

/// The most candidate traces one search runs the query on.
pub const MAX_INSPECTED: usize = 50_000;

/// A condition on one span that every trace in the answer has a span
/// meeting (time range left to the caller).
pub fn pushdown(q: &Query) -> SpanQuery {
    fn of_sets(s: &Spansets) -> SpanQuery {
        match s {
            Spansets::Filter(e) => {
                let mut q = SpanQuery::default();
                conjuncts(e, &mut q);
                q
            }
            // Either side is necessary: the one that says more.
            Spansets::And(l, r) => {
                let (l, r) = (of_sets(l), of_sets(r));
                if weight(&r) > weight(&l) { r } else { l }
            }
            Spansets::Or(..) => SpanQuery::default(),
            // The answer is a subset of the right side.
            Spansets::Structural { right, .. } => of_sets(right),
        }
    }
    fn weight(q: &SpanQuery) -> usize {
        usize::from(q.service.is_some())
            + usize::from(q.name.is_some())
            + usize::from(q.errors_only)
            + usize::from(q.min_duration_nanos.is_some())
            + usize::from(q.max_duration_nanos.is_some())
            + q.attributes.len()
    }
    fn conjuncts(e: &Expr, q: &mut SpanQuery) {
        match e {
            Expr::And(a, b) => {
                conjuncts(a, q);
                conjuncts(b, q);
            }
            Expr::Compare(field, op, Operand::Literal(v)) => term(field, *op, v, q),
            Expr::Compare(Operand::Literal(v), op, field) => {
                let flipped = match op {
                    Compare::Gt => Compare::Lt,
                    Compare::Ge => Compare::Le,
                    Compare::Lt => Compare::Gt,
                    Compare::Le => Compare::Ge,
                    other => *other,
                };
                term(field, flipped, v, q)
            }
            _ => {}
        }
    }
    fn term(field: &Operand, op: Compare, v: &Value, q: &mut SpanQuery) {
        match (field, op, v) {
            (Operand::Attribute(Scope::Resource, k), Compare::Eq, Value::Str(s)) if k == "service.name" => {
                q.service = Some(s.clone())
            }
            (Operand::Intrinsic(Intrinsic::Name), Compare::Eq, Value::Str(s)) => q.name = Some(s.clone()),
            (Operand::Intrinsic(Intrinsic::Status), Compare::Eq, Value::Status(s))
                if *s == sightline_storage::model::StatusCode::Error =>
            {
                q.errors_only = true
            }
            (Operand::Intrinsic(Intrinsic::Duration), Compare::Gt, Value::Duration(d)) => {
                q.min_duration_nanos = Some(q.min_duration_nanos.unwrap_or(0).max(d + 1))
            }
            (Operand::Intrinsic(Intrinsic::Duration), Compare::Ge, Value::Duration(d)) => {
                q.min_duration_nanos = Some(q.min_duration_nanos.unwrap_or(0).max(*d))
            }
            (Operand::Intrinsic(Intrinsic::Duration), Compare::Lt, Value::Duration(d)) => {
                q.max_duration_nanos = Some(q.max_duration_nanos.unwrap_or(u64::MAX).min(d.saturating_sub(1)))
            }
            (Operand::Intrinsic(Intrinsic::Duration), Compare::Le, Value::Duration(d)) => {
                q.max_duration_nanos = Some(q.max_duration_nanos.unwrap_or(u64::MAX).min(*d))
            }
            // The store compares attribute values as text, span or resource.
            (Operand::Attribute(_, k), Compare::Eq, Value::Str(s)) => q.attributes.push((k.clone(), s.clone())),
            (Operand::Attribute(_, k), Compare::Eq, Value::Int(i)) => q.attributes.push((k.clone(), i.to_string())),
            _ => {}
        }
    }
    of_sets(&q.spansets)
}

/// The fields each answered span shows: the attributes and intrinsics the
/// query names (name and duration are shown anyway), in order, once.
pub fn shown_fields(q: &Query) -> Vec<Operand> {
    let mut out: Vec<Operand> = Vec::new();
    let mut add = |o: &Operand| {
        let shown = match o {
            Operand::Attribute(..) => true,
            Operand::Intrinsic(i) => matches!(i, Intrinsic::Status | Intrinsic::StatusMessage | Intrinsic::Kind),
            Operand::Literal(_) => false,
        };
        if shown && !out.contains(o) {
            out.push(o.clone());
        }
    };
    fn exprs(e: &Expr, add: &mut impl FnMut(&Operand)) {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                exprs(a, add);
                exprs(b, add);
            }
            Expr::Not(a) => exprs(a, add),
            Expr::Compare(l, _, r) => {
                add(l);
                add(r);
            }
            Expr::Is(o) => add(o),
        }
    }
    fn sets(s: &Spansets, add: &mut impl FnMut(&Operand)) {
        match s {
            Spansets::Filter(e) => exprs(e, add),
            Spansets::And(a, b) | Spansets::Or(a, b) => {
                sets(a, add);
                sets(b, add);
            }
            Spansets::Structural { left, right, .. } => {
                sets(left, add);
                sets(right, add);
            }
        }
    }
    sets(&q.spansets, &mut add);
    for stage in &q.stages {
        match stage {
            Stage::Filter(e) => exprs(e, &mut add),
            Stage::Select(fields) => fields.iter().for_each(&mut add),
            Stage::Aggregate { field, .. } => field.iter().for_each(&mut add),
        }
    }
    out
}

/// A search: the query, the time range and what a trace as a whole must be.
pub struct Search {
    pub query: Arc<Compiled>,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub min_trace_duration_nanos: Option<u64>,
    pub max_trace_duration_nanos: Option<u64>,
    pub limit: usize,
}

/// A trace in a search's answer.
#[derive(Debug)]
pub struct Hit {
    pub trace_id: TraceId,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_unix_nano: u64,
    pub duration_nanos: u64,
    /// The spans of the answer, in start order (at most the `spss` asked for).
    pub spans: Vec<Span>,
    /// How many spans the answer holds in all.
    pub matched: usize,
}

/// What a search found, and how many traces it ran the query on.
#[derive(Debug, Default)]
pub struct Found {
    pub hits: Vec<Hit>,
    pub inspected: usize,
}

/// Runs `search` over the store, newest traces first; at most
/// `spans_per_set` spans of each answer are kept.
pub async fn search(
    store: &SpanStore,
    tenant: &Tenant,
    search: &Search,
    spans_per_set: usize,
    max_spans: usize,
) -> Result<Found, StorageError> {
    let mut q = pushdown(&search.query.query);
    q.start_unix_nano = search.start_unix_nano;
    q.end_unix_nano = search.end_unix_nano;
    let mut found = Found::default();
    let mut seen: HashSet<TraceId> = HashSet::new();
    // A query the store answers exactly fills the limit in one round.
    let mut round = search.limit.clamp(1, 2_000);
    while found.hits.len() < search.limit && found.inspected < MAX_INSPECTED && q.end_unix_nano >= q.start_unix_nano {
        let candidates = store.newest_traces(tenant, &q, round, max_spans).await?;
        let exhausted = candidates.len() < round;
        let oldest = candidates.iter().map(|c| c.latest_match).min();
        let mut new = 0;
        for c in candidates {
            if !seen.insert(c.id) {
                continue;
            }
            new += 1;
            found.inspected += 1;
            if let Some(hit) = run(search, c.id, c.spans, spans_per_set)
                && found.hits.len() < search.limit
            {
                found.hits.push(hit);
            }
        }
        match oldest {
            None => break,
            _ if exhausted => break,
            // Traces whose latest match starts at `oldest` may be left: look
            // there again, unless this round found nothing new there.
            Some(t) if new > 0 => q.end_unix_nano = t,
            Some(t) => q.end_unix_nano = t.saturating_sub(1),
        }
        if q.end_unix_nano == 0 {
            break;
        }
        round = (round * 2).min(2_000);
    }
    found.hits.sort_by(|a, b| b.start_unix_nano.cmp(&a.start_unix_nano).then(a.trace_id.cmp(&b.trace_id)));
    Ok(found)
}

/// The query run on one trace.
fn run(search: &Search, trace_id: TraceId, spans: Vec<Span>, spans_per_set: usize) -> Option<Hit> {
    let view = TraceView::new(&spans);
    let duration = view.duration();
    if search.min_trace_duration_nanos.is_some_and(|d| duration < d)
        || search.max_trace_duration_nanos.is_some_and(|d| duration > d)
    {
        return None;
    }
    let answer = search.query.run(&spans)?;
    let root = view.root();
    let (root_service, root_name) = (root.map(|r| r.resource.service.clone()), root.map(|r| r.name.clone()));
    let start_unix_nano = view.start();
    let matched = answer.len();
    let keep: HashSet<usize> = answer.into_iter().take(spans_per_set).collect();
    let mut kept: Vec<Span> = spans.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, s)| s).collect();
    kept.sort_by_key(|s| s.start_unix_nano);
    Some(Hit { trace_id, root_service, root_name, start_unix_nano, duration_nanos: duration, spans: kept, matched })
}

#[cfg(test)]
mod tests;
