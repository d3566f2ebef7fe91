//! The log store: one tantivy index per time partition, near-real-time
//! commits, retention by whole partitions, and search over them.

mod collect;
mod key_values;
mod partition;
mod query;
mod schema;
mod search;
mod store;
mod tokenizer;

#[cfg(test)]
mod compare_tests;
#[cfg(test)]
mod tests;

pub use collect::{SortKey, TimeRange, TopField};
pub use query::{Cmp, LogExpr, Target, body_words};
pub use search::{LogHit, LogSearch};
pub use store::{LogStore, LogStoreConfig};
