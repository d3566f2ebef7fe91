//! Trace queries over the span store: assembly of one trace, search
//! summaries, and the service dependency graph.

pub mod assemble;
pub mod search;

pub use assemble::{Trace, assemble};
pub use search::Edge;
