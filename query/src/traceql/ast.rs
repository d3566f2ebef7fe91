//! What a TraceQL query is, once parsed.

use sightline_storage::model::{SpanKind, StatusCode};

/// A query: a spanset expression, then pipeline stages applied in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub spansets: Spansets,
    pub stages: Vec<Stage>,
}

/// Expressions over a trace's spansets.
#[derive(Clone, Debug, PartialEq)]
pub enum Spansets {
    /// `{ … }`: the trace's spans for which the condition holds.
    Filter(Expr),
    /// Both sides found something: the spans of both.
    And(Box<Spansets>, Box<Spansets>),
    /// The spans of either side.
    Or(Box<Spansets>, Box<Spansets>),
    /// The right side's spans that stand in the relation to a span of the
    /// left side (or, negated — `!>`, `!>>`, `!<`, `!<<`, `!~` — to none).
    Structural { relation: Relation, negated: bool, left: Box<Spansets>, right: Box<Spansets> },
}

/// Structural operators; the answer is always a subset of the right side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// `>`: whose parent is on the left.
    Child,
    /// `>>`: with an ancestor on the left.
    Descendant,
    /// `<`: with a child on the left.
    Parent,
    /// `<<`: with a descendant on the left.
    Ancestor,
    /// `~`: with a sibling (same parent, another span) on the left.
    Sibling,
}

/// A stage after `|`.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `| { … }`: keeps the spans of the spanset for which it holds.
    Filter(Expr),
    /// `| count() > 2`, `| avg(duration) > 1s`: keeps the spanset or empties it.
    Aggregate { function: Aggregate, field: Option<Operand>, op: Compare, value: Value },
    /// `| select(span.x, …)`: fields returned with each span.
    Select(Vec<Operand>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

/// A condition on one span (in the context of its trace).
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Operand, Compare, Operand),
    /// A lone operand: true when it is the boolean `true`.
    Is(Operand),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Matches,
    NotMatches,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Attribute(Scope, String),
    Intrinsic(Intrinsic),
    Literal(Value),
}

/// Where an attribute is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `.x`: the span's, else its resource's.
    Any,
    Span,
    Resource,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    RootName,
    RootServiceName,
    TraceDuration,
}

impl Intrinsic {
    /// Every intrinsic by its TraceQL names (the `span:` and `trace:` forms too).
    pub const NAMES: [(&'static str, Intrinsic); 16] = [
        ("name", Intrinsic::Name),
        ("status", Intrinsic::Status),
        ("statusMessage", Intrinsic::StatusMessage),
        ("kind", Intrinsic::Kind),
        ("duration", Intrinsic::Duration),
        ("rootName", Intrinsic::RootName),
        ("rootServiceName", Intrinsic::RootServiceName),
        ("traceDuration", Intrinsic::TraceDuration),
        ("span:name", Intrinsic::Name),
        ("span:status", Intrinsic::Status),
        ("span:statusMessage", Intrinsic::StatusMessage),
        ("span:kind", Intrinsic::Kind),
        ("span:duration", Intrinsic::Duration),
        ("trace:rootName", Intrinsic::RootName),
        ("trace:rootService", Intrinsic::RootServiceName),
        ("trace:duration", Intrinsic::TraceDuration),
    ];

    /// Its name in answers (the first of [`Self::NAMES`]).
    pub fn name(self) -> &'static str {
        Self::NAMES.iter().find(|(_, i)| *i == self).map_or("", |(n, _)| n)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(u64),
    Status(StatusCode),
    Kind(SpanKind),
    Nil,
}
