//! The bucket goes away under a span store of its own SeaweedFS: flushes
//! fail and are retried, nothing leaves memory, the store reports a backlog
//! once its limit is reached, the breaker opens; when the bucket is back,
//! every span is written once; a compaction that fails on it changes
//! nothing; a bucket that stops answering trips the breaker by timeouts.

use super::{SpanCounts, SpanStore, SpanStoreConfig, batch, blocking, config, four_parts, now, span, tenant};
use crate::objects::seaweed::{S3ForTests, unique_prefix, until_ok};
use crate::objects::{self, BreakerState, ObjectStoreTelemetry};
use crate::sink::Sink;

/// A store of `s3` under a fresh prefix, with short timeouts and retries
/// (and what `tweak` changes), counted in `telemetry`.
fn bucket(
    s3: &S3ForTests,
    name: &str,
    telemetry: &ObjectStoreTelemetry,
    tweak: impl FnOnce(&mut objects::StorageConfig),
) -> std::sync::Arc<dyn object_store::ObjectStore> {
    let mut storage = objects::StorageConfig {
        max_retries: 1,
        retry_timeout_seconds: 2,
        connect_timeout_seconds: 1,
        ..s3.config(&unique_prefix(name))
    };
    tweak(&mut storage);
    objects::open(&storage, std::path::Path::new("."), telemetry, &Default::default()).expect("bucket")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_outage_keeps_spans_in_memory_and_loses_none() {
    let mut s3 = S3ForTests::start();
    let telemetry = ObjectStoreTelemetry::default();
    let objects = bucket(&s3, "outage", &telemetry, |c| (c.breaker_failures, c.breaker_cooldown_seconds) = (2, 1));
    let store_config = SpanStoreConfig { max_unflushed_spans: 40, ..config() };
    let store = SpanStore::open(objects.clone(), store_config.clone(), None).await.expect("opens");
    store.consume(batch(1, (1..=20).map(|i| span(1, i, None, now())).collect())).expect("consume");
    let s = store.clone();
    blocking(move || s.flush_blocking()).await.expect("a flush while the bucket is up");

    s3.stop();
    store.consume(batch(2, (1..=30).map(|i| span(2, i, None, now())).collect())).expect("consume");
    for _ in 0..2 {
        let s = store.clone();
        assert!(blocking(move || s.flush_blocking()).await.is_err(), "the flush fails while the bucket is down");
    }
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 30, part_spans: 20, parts: 1 }, "kept in memory");
    assert_eq!(telemetry.breaker_state.get(), BreakerState::Open as i64, "two faults in a row open the breaker");
    store.consume(batch(3, (1..=10).map(|i| span(3, i, None, now())).collect())).expect("consume");
    assert!(store.backlogged(), "40 spans unflushed: the door is told to refuse");
    let trace = store.trace(&tenant(), crate::model::TraceId([2; 16]), 100).await.expect("trace from memory");
    assert_eq!(trace.spans.len(), 30, "what is in memory is still served");

    s3.resume();
    let s = store.clone();
    until_ok("the flush after the bucket is back", move || s.flush_blocking(), || ()).await;
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 60, parts: 3 });
    assert!(!store.backlogged());
    assert_eq!(telemetry.breaker_state.get(), BreakerState::Closed as i64);
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;

    // Reopened on the bucket: each span once.
    let reopened = SpanStore::open(objects, store_config, None).await.expect("reopens");
    assert_eq!(reopened.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 60, parts: 3 });
    for t in 1..=3u8 {
        let want = [20, 30, 10][t as usize - 1];
        let got = reopened.trace(&tenant(), crate::model::TraceId([t; 16]), 100).await.expect("trace").spans.len();
        assert_eq!(got, want, "trace {t}");
    }
    blocking(move || reopened.shutdown_blocking()).await;
}

/// A compaction that runs while the bucket is down fails and changes
/// nothing; once the bucket is back it merges the parts, each span once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_while_the_bucket_is_down_changes_nothing_and_merges_once_it_is_back() {
    let mut s3 = S3ForTests::start();
    let objects = bucket(&s3, "compaction", &Default::default(), |_| ());
    let store = SpanStore::open(objects.clone(), config(), None).await.expect("opens");
    four_parts(&store, now()).await;
    let four = SpanCounts { head_spans: 0, part_spans: 8, parts: 4 };
    assert_eq!(store.counts(&tenant()), four);

    s3.stop();
    let s = store.clone();
    assert!(blocking(move || s.maintain_blocking()).await.is_err(), "the compaction cannot read its inputs");
    assert_eq!(store.counts(&tenant()), four, "nothing changed");

    s3.resume();
    let s = store.clone();
    let unchanged = || assert_eq!(store.counts(&tenant()), four, "a failed compaction changes nothing");
    until_ok("the compaction once the bucket is back", move || s.maintain_blocking(), unchanged).await;
    let merged = SpanCounts { head_spans: 0, part_spans: 8, parts: 1 };
    assert_eq!(store.counts(&tenant()), merged);
    let trace = store.trace(&tenant(), crate::model::TraceId([9; 16]), 100).await.expect("trace");
    assert_eq!((trace.spans.len(), trace.unread.len()), (4, 0));
    let s = store.clone();
    blocking(move || s.shutdown_blocking()).await;

    let reopened = SpanStore::open(objects, config(), None).await.expect("reopens");
    assert_eq!(reopened.counts(&tenant()), merged, "no input left beside the merged part");
    blocking(move || reopened.shutdown_blocking()).await;
}

/// A bucket that stops answering (frozen, not gone): each call ends at the
/// request timeout, the breaker opens and then fails calls at once; once
/// the bucket answers again the flush goes through and the breaker closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_stops_answering_times_out_and_trips_the_breaker() {
    let s3 = S3ForTests::start();
    let telemetry = ObjectStoreTelemetry::default();
    let objects = bucket(&s3, "slow", &telemetry, |c| {
        (c.request_timeout_seconds, c.max_retries, c.retry_timeout_seconds) = (1, 0, 1);
        (c.breaker_failures, c.breaker_cooldown_seconds) = (2, 5);
    });
    let store = SpanStore::open(objects, config(), None).await.expect("opens");
    store.consume(batch(1, (1..=10).map(|i| span(1, i, None, now())).collect())).expect("consume");

    s3.freeze();
    for _ in 0..2 {
        let (s, started) = (store.clone(), std::time::Instant::now());
        assert!(blocking(move || s.flush_blocking()).await.is_err(), "no answer: the flush fails");
        let took = started.elapsed();
        assert!(took >= std::time::Duration::from_millis(900), "it waited for the timeout: {took:?}");
    }
    assert_eq!(telemetry.breaker_state.get(), BreakerState::Open as i64);
    let count = |outcome| telemetry.requests.get_or_create(&objects::Call::new("put", outcome)).get();
    let errors = count("error");
    let s = store.clone();
    assert!(blocking(move || s.flush_blocking()).await.is_err());
    assert_eq!(count("error"), errors, "the open breaker fails the call without sending it");
    assert!(count("breaker_open") >= 1, "refusals are counted");

    s3.thaw();
    let s = store.clone();
    until_ok("the flush once the bucket answers", move || s.flush_blocking(), || ()).await;
    assert_eq!(store.counts(&tenant()), SpanCounts { head_spans: 0, part_spans: 10, parts: 1 });
    assert_eq!(telemetry.breaker_state.get(), BreakerState::Closed as i64);
    blocking(move || store.shutdown_blocking()).await;
}
