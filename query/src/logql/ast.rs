//! What a LogQL query is, once parsed.

/// A log query (streams) or a metric query (samples).
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// A stream selector and the stages its lines go through.
#[derive(Clone, Debug, PartialEq)]
pub struct LogExpr {
    pub selector: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `|= "x"`, `!= "x"`, `|~ "re"`, `!~ "re"`.
    Line(MatchOp, String),
    Json,
    Logfmt,
    /// Named capture groups become labels.
    Regexp(String),
    /// `<name>` captures between literal text; `<_>` skips.
    Pattern(String),
    Filter(LabelFilter),
    /// `{{.label}}` replaced by the label's value.
    LineFormat(String),
    /// `new=old` renames, `new="{{.a}}-{{.b}}"` templates.
    LabelFormat(Vec<(String, LabelSource)>),
    Drop(Vec<String>),
    Keep(Vec<String>),
    Unwrap(Unwrap, String),
}

#[derive(Clone, Debug, PartialEq)]
pub enum LabelSource {
    Label(String),
    Template(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unwrap {
    Number,
    Duration,
    Bytes,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LabelFilter {
    And(Box<LabelFilter>, Box<LabelFilter>),
    Or(Box<LabelFilter>, Box<LabelFilter>),
    Text(Matcher),
    /// Numbers, durations (seconds) and byte sizes compare as numbers.
    Number {
        label: String,
        op: Compare,
        value: f64,
        unit: Unwrap,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MetricExpr {
    Range {
        function: RangeFn,
        /// `quantile_over_time`'s φ.
        param: Option<f64>,
        log: LogExpr,
        /// Nanoseconds.
        range: u64,
        grouping: Option<Grouping>,
    },
    Vector {
        function: VectorFn,
        /// `topk`/`bottomk`'s k.
        param: Option<f64>,
        grouping: Option<Grouping>,
        inner: Box<MetricExpr>,
    },
    Binary {
        op: BinOp,
        /// `bool`: comparisons answer 0 or 1 instead of filtering.
        keep: bool,
        left: Box<MetricExpr>,
        right: Box<MetricExpr>,
    },
    Number(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeFn {
    Count,
    Rate,
    Bytes,
    BytesRate,
    Absent,
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
    Stddev,
    Quantile,
}

impl RangeFn {
    pub const NAMES: [(&'static str, RangeFn); 13] = [
        ("count_over_time", RangeFn::Count),
        ("rate", RangeFn::Rate),
        ("bytes_over_time", RangeFn::Bytes),
        ("bytes_rate", RangeFn::BytesRate),
        ("absent_over_time", RangeFn::Absent),
        ("sum_over_time", RangeFn::Sum),
        ("avg_over_time", RangeFn::Avg),
        ("min_over_time", RangeFn::Min),
        ("max_over_time", RangeFn::Max),
        ("first_over_time", RangeFn::First),
        ("last_over_time", RangeFn::Last),
        ("stddev_over_time", RangeFn::Stddev),
        ("quantile_over_time", RangeFn::Quantile),
    ];

    /// Whether the sum of its values over several series is its value over
    /// their lines merged (so a `sum` around it may group the lines first).
    pub fn adds_up(self) -> bool {
        matches!(self, RangeFn::Count | RangeFn::Rate | RangeFn::Bytes | RangeFn::BytesRate | RangeFn::Sum)
    }

    /// Whether it reads unwrapped values rather than counting lines.
    pub fn unwraps(self) -> bool {
        !matches!(self, RangeFn::Count | RangeFn::Rate | RangeFn::Bytes | RangeFn::BytesRate | RangeFn::Absent)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorFn {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Topk,
    Bottomk,
}

impl VectorFn {
    pub const NAMES: [(&'static str, VectorFn); 8] = [
        ("sum", VectorFn::Sum),
        ("avg", VectorFn::Avg),
        ("min", VectorFn::Min),
        ("max", VectorFn::Max),
        ("count", VectorFn::Count),
        ("stddev", VectorFn::Stddev),
        ("topk", VectorFn::Topk),
        ("bottomk", VectorFn::Bottomk),
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Cmp(Compare),
    And,
    Or,
    Unless,
}
