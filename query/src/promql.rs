//! PromQL over the metric store, parsed by `promql-parser` and evaluated
//! here with Prometheus 2's semantics.

mod aggregate;
mod binary;
pub mod eval;
pub(crate) mod functions;
pub mod value;

pub use eval::{instant, range};
pub use value::{EvalError, RangeSeries, Sample, Value};

#[cfg(test)]
mod tests;
