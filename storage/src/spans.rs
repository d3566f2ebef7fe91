//! The span store: head in memory, Parquet parts behind `object_store`.
//! See [`store`] for the invariants and [`part`] for the on-disk format.

pub mod columns;
pub mod part;
pub mod store;

pub use part::PartMeta;
pub use store::{SpanCounts, SpanQuery, SpanStore, SpanStoreConfig, TraceSpans};

#[cfg(test)]
mod tests;
