//! The span store: head in memory, Parquet parts behind `object_store`.
//! See [`store`] for the invariants and [`part`] for the on-disk format.

mod attributes;
mod chunk;
pub mod columns;
pub mod dedicated;
mod head;
mod kv;
mod parents;
pub mod part;
pub mod query;
mod read;
pub mod resources;
mod search;
pub mod store;
mod trace_table;
mod write;

pub use attributes::PartAttributes;
pub use columns::SpanBatch;
pub use parents::Edge;
pub use part::{EncodedPart, PartMeta, WalMark};
pub use query::SpanQuery;
pub use search::FoundTrace;
pub use store::{SpanCounts, SpanStore, SpanStoreConfig, TraceSpans, shard_of};

#[cfg(test)]
mod tests;
