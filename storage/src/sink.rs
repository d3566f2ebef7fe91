//! The seam between the ingest pipeline and the stores.
//!
//! The pipeline hands each store one [`Batch`] per acknowledged request, in
//! WAL order per signal. A store that makes a batch durable on its own (a
//! Parquet part, a tantivy commit) reports it through [`Wal::release`]
//! (crate::wal::Wal::release) so that the log can be trimmed.

use crate::StorageError;
use crate::model::Tenant;

/// The items of one acknowledged request, with their WAL position.
#[derive(Clone, Debug)]
pub struct Batch<T> {
    pub tenant: Tenant,
    pub wal_seq: u64,
    pub items: Vec<T>,
}

/// Items of a batch that a store took but would not keep (a metric sample
/// older than its out-of-order window, say), and why: the client is told
/// in its partial success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refused {
    pub count: u64,
    pub reason: String,
}

/// A consumer of one signal's batches. Called on a blocking thread, never
/// on the async reactor; replay calls it with batches it may have seen before
/// a crash, so implementations ignore what they already hold.
pub trait Sink<T>: Send + Sync + 'static {
    fn consume(&self, batch: Batch<T>) -> Result<(), StorageError>;

    /// [`Sink::consume`], saying which items the store refused to keep.
    /// Stores that keep everything they are given need not override it.
    fn consume_counted(&self, batch: Batch<T>) -> Result<Refused, StorageError> {
        self.consume(batch).map(|()| Refused::default())
    }

    /// True while the store holds more unwritten data than it should; the
    /// door then refuses new items of its signal (retryably) before they
    /// reach the WAL, so that memory stays bounded.
    fn backlogged(&self) -> bool {
        false
    }
}

/// Splits `items` into `shards` vectors (some perhaps empty) by `shard_of`,
/// keeping their order within each.
pub fn split<T>(items: Vec<T>, shards: usize, shard_of: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    if shards <= 1 {
        return vec![items];
    }
    let mut out: Vec<Vec<T>> = (0..shards).map(|_| Vec::with_capacity(items.len() / shards + 1)).collect();
    for item in items {
        let shard = shard_of(&item);
        out[shard.min(shards - 1)].push(item);
    }
    out
}
