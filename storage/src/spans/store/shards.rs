//! The span store's shards: spans are split by trace id over
//! `spans.shards` slices of the head, each fed by its own lane and flushed
//! by its own worker, so that conversion, head appends and flushes run on
//! every core. A trace lives in one shard, so a flushed part holds whole
//! traces, as before.
//!
//! Every shard is handed every WAL sequence of spans (an empty batch when
//! the request had none of its traces), in order, so that a shard with an
//! empty head knows that all it was ever given is durable. A part records
//! the mark of the shard that wrote it (`PartMeta::wal_marks`): the spans
//! of that shard's traces up to that sequence are in published parts. On
//! replay a span is skipped when a mark covers it under the shard count
//! that mark was written with, so idempotent replay holds per shard, and a
//! change of `spans.shards` between two runs neither loses nor duplicates.
//! The WAL is released up to the lowest sequence every shard holds durably.

use std::collections::HashMap;

use super::SpanStore;
use crate::StorageError;
use crate::model::{Span, Tenant, TraceId};
use crate::sink::{Batch, Sink};
use crate::spans::part::WalMark;

/// The shard, of `shards`, that takes the spans of trace `id`: its low
/// eight bytes modulo the count. Those bytes are random in W3C trace ids
/// and in 64-bit ids padded to 128 bits. Part marks depend on this
/// mapping: it must never change.
pub fn shard_of(id: &TraceId, shards: usize) -> usize {
    let mut low = [0u8; 8];
    low.copy_from_slice(&id.0[8..]);
    (u64::from_be_bytes(low) % shards.max(1) as u64) as usize
}

/// Per tenant, the WAL marks of the parts found at open.
#[derive(Default)]
pub(super) struct Persisted {
    tenants: HashMap<Tenant, Marks>,
}

#[derive(Default)]
struct Marks {
    /// The highest sequence of any mark: batches beyond it are all new.
    max: u64,
    /// One per (shard count, shard), the highest sequence.
    marks: Vec<WalMark>,
}

impl Persisted {
    pub(super) fn note(&mut self, tenant: &Tenant, marks: &[WalMark]) {
        let t = self.tenants.entry(tenant.clone()).or_default();
        for m in marks {
            t.max = t.max.max(m.seq);
            WalMark::raise(&mut t.marks, *m);
        }
    }

    /// The spans of a batch that no part holds yet.
    pub(super) fn unpersisted(&self, tenant: &Tenant, seq: u64, mut items: Vec<Span>) -> Vec<Span> {
        let Some(t) = self.tenants.get(tenant).filter(|t| seq <= t.max) else {
            return items;
        };
        let covers = |m: &WalMark, s: &Span| seq <= m.seq && shard_of(&s.trace_id, m.of as usize) == m.shard as usize;
        items.retain(|s| !t.marks.iter().any(|m| covers(m, s)));
        items
    }
}

/// One shard of the store, as its lane sees it.
pub(super) struct ShardSink {
    pub(super) store: SpanStore,
    pub(super) shard: usize,
}

impl Sink<Span> for ShardSink {
    fn consume(&self, batch: Batch<Span>) -> Result<(), StorageError> {
        self.store.consume_shard(self.shard, batch)
    }

    fn backlogged(&self) -> bool {
        self.store.backlogged()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::tests;

    fn id(low: u64) -> TraceId {
        let mut id = [7u8; 16];
        id[8..].copy_from_slice(&low.to_be_bytes());
        TraceId(id)
    }

    #[test]
    fn shards_come_from_the_low_bytes_and_never_change() {
        assert_eq!(shard_of(&id(10), 3), 1);
        assert_eq!(shard_of(&id(10), 1), 0);
        assert_eq!(shard_of(&id(u64::MAX), 2), 1);
        assert_eq!(shard_of(&id(5), 0), 0, "no shards is one shard");
    }

    #[test]
    fn a_span_is_persisted_when_the_mark_of_its_shard_covers_it() {
        let tenant = Tenant::new("t").expect("tenant");
        let mut p = Persisted::default();
        // Two shards wrote parts: shard 0 up to seq 10, shard 1 up to seq 4;
        // an earlier run with one shard wrote up to seq 2.
        p.note(&tenant, &[WalMark { of: 2, shard: 0, seq: 10 }, WalMark { of: 1, shard: 0, seq: 2 }]);
        p.note(&tenant, &[WalMark { of: 2, shard: 1, seq: 4 }, WalMark { of: 2, shard: 0, seq: 8 }]);
        let span = |low| Span { trace_id: id(low), ..tests::span(1, 1, None, 1) };
        let kept = |seq, lows: &[u64]| -> Vec<u64> {
            let items = lows.iter().map(|&l| span(l)).collect();
            let mut out: Vec<u64> = p
                .unpersisted(&tenant, seq, items)
                .iter()
                .map(|s| u64::from_be_bytes(s.trace_id.0[8..].try_into().expect("8 bytes")))
                .collect();
            out.sort_unstable();
            out
        };
        assert_eq!(kept(2, &[0, 1, 2, 3]), Vec::<u64>::new(), "the one-shard mark covers all");
        assert_eq!(kept(4, &[0, 1, 2, 3]), Vec::<u64>::new());
        assert_eq!(kept(5, &[0, 1, 2, 3]), vec![1, 3], "shard 1 is only durable up to 4");
        assert_eq!(kept(11, &[0, 1]), vec![0, 1], "beyond every mark");
        let other = Tenant::new("u").expect("tenant");
        assert_eq!(p.unpersisted(&other, 1, vec![span(0)]).len(), 1, "marks are per tenant");
    }

    /// Batch `seq` holds span `seq` of each of twelve traces, spread over the shards.
    fn batch(seq: u8) -> Batch<Span> {
        let items = (1..=12).map(|trace| tests::span(trace, seq, None, tests::now())).collect();
        Batch { tenant: tests::tenant(), wal_seq: u64::from(seq), items }
    }

    /// Replays batches 1..=`last` as a restart would.
    fn replay(store: &SpanStore, last: u8) {
        for seq in 1..=last {
            store.consume(batch(seq)).expect("consume");
        }
    }

    fn config(shards: usize) -> crate::spans::SpanStoreConfig {
        crate::spans::SpanStoreConfig { shards, ..tests::config() }
    }

    crate::on_both_backends! {
    /// Crashes (the store is dropped without its shutdown flush) with some
    /// shards flushed and others not, three times, with 3, 2 and 1 shards:
    /// every span is there once.
    async fn replay_after_crashes_mid_flush_with_other_shard_counts_keeps_each_span_once(place: Place) {
        let first = tests::open(&place, config(3)).await;
        replay(&first, 20);
        let s = first.clone();
        tests::blocking(move || {
            s.inner.flush(0).expect("flush shard 0");
            s.inner.flush(2).expect("flush shard 2");
        })
        .await;
        // Shard 1 holds batches from seq 1 on: nothing is durable for every shard.
        assert_eq!(first.inner.state.read().durable_floor(&[]), 0);
        replay(&first, 25);
        let mut marks: Vec<WalMark> = first.parts(&tests::tenant()).iter().flat_map(|p| p.wal_marks.clone()).collect();
        marks.sort_by_key(|m| m.shard);
        assert_eq!(marks, [WalMark { of: 3, shard: 0, seq: 20 }, WalMark { of: 3, shard: 2, seq: 20 }]);

        let second = tests::open(&place, config(2)).await;
        replay(&second, 25);
        let s = second.clone();
        tests::blocking(move || s.inner.flush(1).expect("flush shard 1")).await;

        let third = tests::open(&place, config(1)).await;
        replay(&third, 25);
        let counts = third.counts(&tests::tenant());
        assert_eq!(counts.head_spans + counts.part_spans, 12 * 25, "{counts:?}");
        for trace in 1..=12u8 {
            let spans = third.trace(&tests::tenant(), TraceId([trace; 16]), 100).await.expect("trace").spans;
            let mut ids: Vec<u8> = spans.iter().map(|s| s.span_id.0[0]).collect();
            ids.sort_unstable();
            assert_eq!(ids, (1..=25).collect::<Vec<u8>>(), "trace {trace}: each span once");
        }
        // Everything flushed: every shard is durable up to the last batch.
        let s = third.clone();
        tests::blocking(move || s.flush_blocking().expect("flush")).await;
        assert_eq!(third.inner.state.read().durable_floor(&[]), 25);
        tests::blocking(move || third.shutdown_blocking()).await;
    }
    }
}
