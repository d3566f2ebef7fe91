//! A TraceQL query run over the spans of one trace.
//!
//! Spansets are masks over the trace's spans; comparisons follow TraceQL's
//! types: a missing attribute or values of different types never compare
//! (so `!=` does not match a span without the attribute), integers and
//! floats compare as numbers, regular expressions are anchored at both
//! ends, `nil` tests for absence.

use std::collections::HashMap;

use regex::Regex;
use sightline_storage::model::{AttrValue, Span, SpanKind, StatusCode};

use super::ast::{Aggregate, Compare, Expr, Intrinsic, Operand, Query, Relation, Scope, Spansets, Stage, Value};
use super::parse::ParseError;

/// A parsed query with its regular expressions compiled.
#[derive(Debug)]
pub struct Compiled {
    pub query: Query,
    regexes: HashMap<String, Regex>,
}

impl Compiled {
    pub fn new(query: Query) -> Result<Self, ParseError> {
        let mut regexes = HashMap::new();
        let mut bad = None;
        visit_exprs(&query, &mut |e| {
            if let Expr::Compare(l, Compare::Matches | Compare::NotMatches, r) = e {
                for side in [l, r] {
                    if let Operand::Literal(Value::Str(s)) = side
                        && !regexes.contains_key(s)
                    {
                        match Regex::new(&format!("^(?:{s})$")) {
                            Ok(re) => drop(regexes.insert(s.clone(), re)),
                            Err(e) => bad = Some(format!("regular expression {s:?}: {e}")),
                        }
                    }
                }
            }
        });
        match bad {
            Some(message) => Err(ParseError { column: 1, message }),
            None => Ok(Self { query, regexes }),
        }
    }

    /// The spans of `spans` (one trace) in the query's answer, in start
    /// order; `None` when the trace does not match.
    pub fn run(&self, spans: &[Span]) -> Option<Vec<usize>> {
        let trace = TraceView::new(spans);
        let mut set = self.spansets(&trace, &self.query.spansets);
        for stage in &self.query.stages {
            if !set.iter().any(|&b| b) {
                return None;
            }
            match stage {
                Stage::Filter(e) => {
                    for (i, keep) in set.iter_mut().enumerate() {
                        *keep = *keep && self.holds(&trace, i, e);
                    }
                }
                Stage::Aggregate { function, field, op, value } => {
                    if !self.aggregate_holds(&trace, &set, *function, field.as_ref(), *op, value) {
                        return None;
                    }
                }
                Stage::Select(_) => {}
            }
        }
        let mut found: Vec<usize> = (0..spans.len()).filter(|&i| set[i]).collect();
        if found.is_empty() {
            return None;
        }
        found.sort_by_key(|&i| (spans[i].start_unix_nano, i));
        Some(found)
    }

    fn spansets(&self, t: &TraceView, s: &Spansets) -> Vec<bool> {
        match s {
            Spansets::Filter(e) => (0..t.spans.len()).map(|i| self.holds(t, i, e)).collect(),
            Spansets::And(l, r) => {
                let (l, r) = (self.spansets(t, l), self.spansets(t, r));
                if l.iter().any(|&b| b) && r.iter().any(|&b| b) {
                    l.iter().zip(&r).map(|(a, b)| *a || *b).collect()
                } else {
                    vec![false; t.spans.len()]
                }
            }
            Spansets::Or(l, r) => {
                let (l, r) = (self.spansets(t, l), self.spansets(t, r));
                l.iter().zip(&r).map(|(a, b)| *a || *b).collect()
            }
            Spansets::Structural { relation, negated, left, right } => {
                let (l, r) = (self.spansets(t, left), self.spansets(t, right));
                let related = t.related(*relation, &l);
                r.iter().zip(related).map(|(&in_right, rel)| in_right && rel != *negated).collect()
            }
        }
    }

    fn holds(&self, t: &TraceView, i: usize, e: &Expr) -> bool {
        match e {
            Expr::And(a, b) => self.holds(t, i, a) && self.holds(t, i, b),
            Expr::Or(a, b) => self.holds(t, i, a) || self.holds(t, i, b),
            Expr::Not(a) => !self.holds(t, i, a),
            Expr::Is(o) => matches!(t.value(i, o), Got::Bool(true)),
            Expr::Compare(l, op, r) => {
                let (a, b) = (t.value(i, l), t.value(i, r));
                // `x = nil` holds when x is missing, `x != nil` when it is there.
                let nil = Operand::Literal(Value::Nil);
                if *l == nil || *r == nil {
                    let missing = matches!(a, Got::Nil) && matches!(b, Got::Nil);
                    return match op {
                        Compare::Eq => missing,
                        Compare::Ne => !missing,
                        _ => false,
                    };
                }
                match (op, &a, &b, r) {
                    (
                        Compare::Matches | Compare::NotMatches,
                        Got::Str(s),
                        Got::Str(_),
                        Operand::Literal(Value::Str(p)),
                    ) => self.regexes.get(p).is_some_and(|re| re.is_match(s)) == (*op == Compare::Matches),
                    _ => compare(&a, *op, &b),
                }
            }
        }
    }

    fn aggregate_holds(
        &self,
        t: &TraceView,
        set: &[bool],
        function: Aggregate,
        field: Option<&Operand>,
        op: Compare,
        value: &Value,
    ) -> bool {
        let members = (0..set.len()).filter(|&i| set[i]);
        let got = if function == Aggregate::Count {
            Got::Int(members.count() as i64)
        } else {
            let Some(field) = field else { return false };
            let mut duration = false;
            let values: Vec<f64> = members
                .filter_map(|i| match t.value(i, field) {
                    Got::Int(v) => Some(v as f64),
                    Got::Float(v) => Some(v),
                    Got::Duration(v) => {
                        duration = true;
                        Some(v as f64)
                    }
                    _ => None,
                })
                .collect();
            if values.is_empty() {
                return false;
            }
            let x = match function {
                Aggregate::Avg => values.iter().sum::<f64>() / values.len() as f64,
                Aggregate::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregate::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Aggregate::Sum | Aggregate::Count => values.iter().sum(),
            };
            if duration { Got::Duration(x.round() as u64) } else { Got::Float(x) }
        };
        compare(&got, op, &Got::of_literal(value))
    }
}

/// Every filter expression of a query, for the compilation pass.
fn visit_exprs(q: &Query, f: &mut impl FnMut(&Expr)) {
    fn expr(e: &Expr, f: &mut impl FnMut(&Expr)) {
        f(e);
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                expr(a, f);
                expr(b, f);
            }
            Expr::Not(a) => expr(a, f),
            Expr::Compare(..) | Expr::Is(_) => {}
        }
    }
    fn sets(s: &Spansets, f: &mut impl FnMut(&Expr)) {
        match s {
            Spansets::Filter(e) => expr(e, f),
            Spansets::And(a, b) | Spansets::Or(a, b) => {
                sets(a, f);
                sets(b, f);
            }
            Spansets::Structural { left, right, .. } => {
                sets(left, f);
                sets(right, f);
            }
        }
    }
    sets(&q.spansets, f);
    for stage in &q.stages {
        if let Stage::Filter(e) = stage {
            expr(e, f);
        }
    }
}

/// A field's value on one span.
#[derive(Clone, Debug, PartialEq)]
pub enum Got<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    Duration(u64),
    Status(StatusCode),
    Kind(SpanKind),
    /// Bytes, arrays and maps: present, but compared with nothing.
    Other,
    Nil,
}

impl<'a> Got<'a> {
    fn of_literal(v: &'a Value) -> Self {
        match v {
            Value::Str(s) => Got::Str(s),
            Value::Int(i) => Got::Int(*i),
            Value::Float(f) => Got::Float(*f),
            Value::Bool(b) => Got::Bool(*b),
            Value::Duration(d) => Got::Duration(*d),
            Value::Status(s) => Got::Status(*s),
            Value::Kind(k) => Got::Kind(*k),
            Value::Nil => Got::Nil,
        }
    }

    pub fn of_attribute(v: &'a AttrValue) -> Self {
        match v {
            AttrValue::Str(s) => Got::Str(s),
            AttrValue::Int(i) => Got::Int(*i),
            AttrValue::Double(f) => Got::Float(*f),
            AttrValue::Bool(b) => Got::Bool(*b),
            AttrValue::Empty => Got::Nil,
            AttrValue::Bytes(_) | AttrValue::Array(_) | AttrValue::Map(_) => Got::Other,
        }
    }
}

fn compare(a: &Got, op: Compare, b: &Got) -> bool {
    use std::cmp::Ordering;
    // A missing field compares with nothing (`nil` is handled by the caller).
    if matches!(a, Got::Nil) || matches!(b, Got::Nil) {
        return false;
    }
    let order: Option<Ordering> = match (a, b) {
        (Got::Str(x), Got::Str(y)) => Some(x.cmp(y)),
        (Got::Int(x), Got::Int(y)) => Some(x.cmp(y)),
        (Got::Int(x), Got::Float(y)) => (*x as f64).partial_cmp(y),
        (Got::Float(x), Got::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Got::Float(x), Got::Float(y)) => x.partial_cmp(y),
        (Got::Duration(x), Got::Duration(y)) => Some(x.cmp(y)),
        (Got::Bool(x), Got::Bool(y)) if matches!(op, Compare::Eq | Compare::Ne) => Some(x.cmp(y)),
        (Got::Status(x), Got::Status(y)) if matches!(op, Compare::Eq | Compare::Ne) => {
            Some((*x as u8).cmp(&(*y as u8)))
        }
        (Got::Kind(x), Got::Kind(y)) if matches!(op, Compare::Eq | Compare::Ne) => Some((*x as u8).cmp(&(*y as u8))),
        _ => None,
    };
    let Some(order) = order else { return false };
    match op {
        Compare::Eq => order == Ordering::Equal,
        Compare::Ne => order != Ordering::Equal,
        Compare::Gt => order == Ordering::Greater,
        Compare::Ge => order != Ordering::Less,
        Compare::Lt => order == Ordering::Less,
        Compare::Le => order != Ordering::Greater,
        // A regular expression needs text on both sides (handled by the caller).
        Compare::Matches | Compare::NotMatches => false,
    }
}

/// One trace's spans with their family links.
pub struct TraceView<'a> {
    pub spans: &'a [Span],
    parent: Vec<Option<usize>>,
    root: Option<usize>,
    start: u64,
    end: u64,
}

impl<'a> TraceView<'a> {
    pub fn new(spans: &'a [Span]) -> Self {
        let index: HashMap<_, usize> = spans.iter().enumerate().map(|(i, s)| (s.span_id, i)).collect();
        let parent = spans.iter().map(|s| s.parent_span_id.and_then(|p| index.get(&p).copied())).collect();
        let root =
            (0..spans.len()).filter(|&i| spans[i].parent_span_id.is_none()).min_by_key(|&i| spans[i].start_unix_nano);
        let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end_unix_nano.max(s.start_unix_nano)).max().unwrap_or(0);
        Self { spans, parent, root, start, end }
    }

    /// The root span (no parent), if the trace holds it.
    pub fn root(&self) -> Option<&'a Span> {
        self.root.map(|i| &self.spans[i])
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn duration(&self) -> u64 {
        self.end - self.start
    }

    /// A field of span `i` (literals are themselves).
    pub fn value(&self, i: usize, o: &'a Operand) -> Got<'a> {
        let s = &self.spans[i];
        match o {
            Operand::Literal(v) => Got::of_literal(v),
            Operand::Intrinsic(x) => match x {
                Intrinsic::RootName => self.root().map_or(Got::Nil, |r| Got::Str(&r.name)),
                Intrinsic::RootServiceName => self.root().map_or(Got::Nil, |r| Got::Str(&r.resource.service)),
                Intrinsic::TraceDuration => Got::Duration(self.duration()),
                _ => intrinsic(s, *x),
            },
            Operand::Attribute(scope, key) => attribute(s, *scope, key).map_or(Got::Nil, |v| v),
        }
    }

    /// For each span, whether it stands in `relation` to a span of `left`.
    fn related(&self, relation: Relation, left: &[bool]) -> Vec<bool> {
        let n = self.spans.len();
        let mut out = vec![false; n];
        match relation {
            Relation::Child => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.parent[i].is_some_and(|p| left[p]);
                }
            }
            Relation::Descendant => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.ancestors(i).any(|a| left[a]);
                }
            }
            Relation::Parent => {
                for i in (0..n).filter(|&i| left[i]) {
                    if let Some(p) = self.parent[i] {
                        out[p] = true;
                    }
                }
            }
            Relation::Ancestor => {
                for i in (0..n).filter(|&i| left[i]) {
                    for a in self.ancestors(i) {
                        out[a] = true;
                    }
                }
            }
            Relation::Sibling => {
                let mut on_left: HashMap<usize, usize> = HashMap::new();
                for i in (0..n).filter(|&i| left[i]) {
                    if let Some(p) = self.parent[i] {
                        *on_left.entry(p).or_default() += 1;
                    }
                }
                for (i, o) in out.iter_mut().enumerate() {
                    *o = self.parent[i].is_some_and(|p| on_left.get(&p).copied().unwrap_or(0) > usize::from(left[i]));
                }
            }
        }
        out
    }

    /// The ancestors of span `i`, nearest first (a cycle of parents ends the walk).
    fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut at = self.parent[i];
        let mut steps = 0;
        std::iter::from_fn(move || {
            let p = at?;
            steps += 1;
            if steps > self.spans.len() {
                return None;
            }
            at = self.parent[p];
            Some(p)
        })
    }
}

/// An intrinsic of one span; those of its trace (`rootName`…) are `Nil` here.
pub fn intrinsic(s: &Span, i: Intrinsic) -> Got<'_> {
    match i {
        Intrinsic::Name => Got::Str(&s.name),
        Intrinsic::Status => Got::Status(s.status_code),
        Intrinsic::StatusMessage => Got::Str(&s.status_message),
        Intrinsic::Kind => Got::Kind(s.kind),
        Intrinsic::Duration => Got::Duration(s.duration_nanos()),
        Intrinsic::RootName | Intrinsic::RootServiceName | Intrinsic::TraceDuration => Got::Nil,
    }
}

/// An attribute of a span by scope; `resource.service.name` is the
/// resource's service even when the attribute itself was not kept.
pub fn attribute<'a>(s: &'a Span, scope: Scope, key: &str) -> Option<Got<'a>> {
    let span = || s.attributes.get(key).map(Got::of_attribute);
    let resource = || {
        s.resource
            .attributes
            .get(key)
            .map(Got::of_attribute)
            .or_else(|| (key == "service.name").then_some(Got::Str(&s.resource.service)))
    };
    match scope {
        Scope::Span => span(),
        Scope::Resource => resource(),
        Scope::Any => span().or_else(resource),
    }
}
