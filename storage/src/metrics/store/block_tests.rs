//! Blocks cut from the head, merged by queries, compacted, replayed and
//! expired, over a real directory and over a real bucket.

use futures_util::TryStreamExt;
use object_store::ObjectStore;

use crate::objects::seaweed::Place;

use super::*;

const HOUR: i64 = 3_600_000;

fn samples(series: &[&str], until: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    for name in series {
        let labels = Labels::new(vec![("__name__".into(), (*name).into()), ("job".into(), "x".into())]);
        for i in 0..until / 15_000 {
            let v = if i % 3 == 0 { i as f64 * 0.1 } else { (i / 3) as f64 };
            out.push(Sample { labels: labels.clone(), t: i * 15_000, v });
        }
    }
    out
}

async fn open(place: &Place) -> MetricStore {
    let objects = place.objects();
    let config = MetricStoreConfig {
        cut_interval: Duration::from_secs(3600),
        compaction_window: Duration::from_secs(4 * 3600),
        ..Default::default()
    };
    MetricStore::open(objects, config, None).await.expect("open")
}

fn count(store: &MetricStore, t: &Tenant) -> usize {
    store
        .select(t, &[("job", "x")], |_| true, i64::MIN, i64::MAX)
        .expect("select")
        .iter()
        .map(|s| s.samples.len())
        .sum()
}

crate::on_both_backends! {
async fn the_head_is_cut_into_blocks_that_queries_merge(place: Place) {
    let t = Tenant::new("a").expect("tenant");
    let store = open(&place).await;
    let all = samples(&["up", "load"], 5 * HOUR);
    let total = all.len();
    store.append(&t, all.clone(), Vec::new());
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.cut(6 * HOUR)).await.expect("join").expect("cut");
    assert_eq!(store.block_count(), 2, "[0, 2h) and [2h, 4h); [4h, 6h) is still open for late samples");
    let s = store.clone();
    let t2 = t.clone();
    assert_eq!(tokio::task::spawn_blocking(move || count(&s, &t2)).await.expect("join"), total);
    // Values come back bit for bit through the blocks' XOR encoding.
    let (s, t2) = (store.clone(), t.clone());
    let got = tokio::task::spawn_blocking(move || s.select(&t2, &[], |_| true, i64::MIN, i64::MAX))
        .await
        .expect("join")
        .expect("select");
    let mut want: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for x in &all {
        want.entry(x.labels.clone()).or_default().push((x.t, x.v));
    }
    assert_eq!(got.iter().map(|s| (s.labels.clone(), s.samples.clone())).collect::<BTreeMap<_, _>>(), want);
    let head: usize = store.tenant(&t).map_or(0, |x| x.read().series.iter().map(|s| s.samples.len()).sum());
    assert_eq!(head, total / 5, "the head keeps only the open window [4h, 5h)");

    // The two blocks fill a compaction window: they are merged into one.
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.compact()).await.expect("join").expect("compact");
    assert_eq!(store.block_count(), 1);
    let (s, t2) = (store.clone(), t.clone());
    assert_eq!(tokio::task::spawn_blocking(move || count(&s, &t2)).await.expect("join"), total);
    assert_eq!(objects(&place).await.len(), 3, "one block's three files remain");

    // Older than the cut: refused, not dropped silently.
    let late = store.append(&t, samples(&["up"], 30_001), Vec::new());
    assert_eq!(late.too_old, 2);
    store.shutdown_blocking();

    // Reopened and replayed: what the blocks hold is refused, the rest comes back once.
    let store = open(&place).await;
    let replay = store.append(&t, all, Vec::new());
    assert_eq!(replay.samples as usize, total / 5);
    let s = store.clone();
    let t2 = t.clone();
    assert_eq!(tokio::task::spawn_blocking(move || count(&s, &t2)).await.expect("join"), total);

    let s = store.clone();
    tokio::task::spawn_blocking(move || s.expire(1_000 * 24 * HOUR)).await.expect("join").expect("expire");
    assert_eq!(store.block_count(), 0);
    let left: Vec<_> = objects(&place).await;
    assert!(left.is_empty(), "{left:?}");
    store.shutdown_blocking();
}
}

/// Every object the store left, by path.
async fn objects(place: &Place) -> Vec<String> {
    let listed: Vec<_> = place.objects().list(None).try_collect().await.expect("list");
    listed.into_iter().map(|o| o.location.to_string()).collect()
}

/// The bucket down while a window is cut: the cut fails and is retried,
/// the head keeps the samples and queries still see every one; once the
/// bucket is back the block is published and each sample is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_while_the_bucket_is_down_keeps_the_samples_in_the_head() {
    use crate::objects::seaweed::{S3ForTests, unique_prefix};
    let mut s3 = S3ForTests::start();
    let storage = crate::objects::StorageConfig {
        max_retries: 1,
        retry_timeout_seconds: 2,
        connect_timeout_seconds: 1,
        ..s3.config(&unique_prefix("metrics-outage"))
    };
    let (telemetry, cache) = Default::default();
    let objects = crate::objects::open(&storage, std::path::Path::new("."), &telemetry, &cache).expect("bucket");
    let config = MetricStoreConfig { cut_interval: Duration::from_secs(3600), ..Default::default() };
    let store = MetricStore::open(objects.clone(), config.clone(), None).await.expect("open");
    let t = Tenant::new("a").expect("tenant");
    let all = samples(&["up"], 2 * HOUR);
    let total = all.len();
    store.append(&t, all, Vec::new());
    let visible = |store: &MetricStore| {
        let (s, t) = (store.clone(), t.clone());
        tokio::task::spawn_blocking(move || count(&s, &t))
    };

    s3.stop();
    let s = store.clone();
    assert!(tokio::task::spawn_blocking(move || s.cut(6 * HOUR)).await.expect("join").is_err());
    assert_eq!(store.block_count(), 0);
    assert_eq!(visible(&store).await.expect("join"), total, "the head still answers");

    s3.resume();
    let s = store.clone();
    crate::objects::seaweed::until_ok("the cut once the bucket is back", move || s.cut(6 * HOUR), || ()).await;
    assert_eq!(store.block_count(), 1);
    assert_eq!(visible(&store).await.expect("join"), total);
    store.shutdown_blocking();
    let reopened = MetricStore::open(objects, config, None).await.expect("reopen");
    assert_eq!(reopened.block_count(), 1);
    assert_eq!(visible(&reopened).await.expect("join"), total, "each sample once, from the bucket");
    reopened.shutdown_blocking();
}
