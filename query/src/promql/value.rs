//! PromQL values at one evaluation time, and the errors of evaluation.

use sightline_storage::metrics::Labels;

/// One series' value at the evaluation time.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub v: f64,
}

/// One series' samples `(ms, value)` over a range.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query that cannot be evaluated, with Prometheus's error type.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The query is malformed or asks something invalid (`bad_data`).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`).
    #[error("{0}")]
    Execution(String),
    /// A guard rail stopped the query (`timeout`, or `execution` for size).
    #[error("{0}")]
    Exceeded(#[from] crate::limits::Exceeded),
}

pub type Result<T> = std::result::Result<T, EvalError>;

pub fn bad(msg: impl Into<String>) -> EvalError {
    EvalError::BadData(msg.into())
}

pub fn exec(msg: impl Into<String>) -> EvalError {
    EvalError::Execution(msg.into())
}
