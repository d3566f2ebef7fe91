//! [`Cached`]: byte ranges of a bucket's objects kept on local disk.
//!
//! Parts and blocks are immutable, so a byte range read once (a footer, a
//! bloom filter, a trace index, a column chunk) is the same on every later
//! read and can be served from a local file. Ranges are kept up to
//! `cache_bytes`, the least recently used evicted first; an object's ranges
//! are dropped when it is deleted through the store. The cache starts empty
//! (the ranges an earlier run left in its folder are removed when the store
//! opens; nothing else there is touched).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use crate::StorageError;

crate::telemetry! {
    /// The local cache of the bucket's byte ranges (`sightline_object_cache_*`).
    pub struct CacheTelemetry("sightline_object_cache") {
        /// Ranges served from the local cache
        hits: Counter,
        /// Ranges read from the bucket (and then kept)
        misses: Counter,
        /// Ranges evicted to stay within storage.cache_bytes
        evictions: Counter,
        /// Bytes held in the local cache
        bytes: Gauge,
    }
}

/// One cached range: its file, and what a `GetResult` for it says.
struct Entry {
    file: u64,
    size: u64,
    used: u64,
    meta: ObjectMeta,
    attributes: Attributes,
}

#[derive(Default)]
struct Index {
    entries: HashMap<(Path, u64, u64), Entry>,
    bytes: u64,
    tick: u64,
    next_file: u64,
}

/// The wrapped store, its ranged reads served from local files when held.
pub struct Cached {
    inner: Arc<dyn ObjectStore>,
    state: Arc<State>,
}

struct State {
    dir: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
    telemetry: CacheTelemetry,
}

impl Cached {
    /// Creates `dir` if missing, removes the ranges an earlier run left
    /// there (its `*.range` files, nothing else), and caches up to
    /// `capacity` bytes there.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        dir: PathBuf,
        capacity: u64,
        telemetry: CacheTelemetry,
    ) -> Result<Self, StorageError> {
        std::fs::create_dir_all(&dir).map_err(StorageError::io(&dir))?;
        for entry in std::fs::read_dir(&dir).map_err(StorageError::io(&dir))? {
            let path = entry.map_err(StorageError::io(&dir))?.path();
            if path.extension().is_some_and(|e| e == "range") {
                std::fs::remove_file(&path).map_err(StorageError::io(&path))?;
            }
        }
        telemetry.bytes.set(0);
        Ok(Self { inner, state: Arc::new(State { dir, capacity, index: Mutex::default(), telemetry }) })
    }
}

impl State {
    fn file(&self, n: u64) -> PathBuf {
        self.dir.join(format!("{n:016x}.range"))
    }

    /// The cached bytes of `range` of `location`, if held (and readable).
    async fn lookup(&self, location: &Path, range: &Range<u64>) -> Option<(Bytes, ObjectMeta, Attributes)> {
        let (file, meta, attributes) = {
            let mut index = self.index.lock();
            index.tick += 1;
            let tick = index.tick;
            let e = index.entries.get_mut(&(location.clone(), range.start, range.end))?;
            e.used = tick;
            (e.file, e.meta.clone(), e.attributes.clone())
        };
        let bytes = tokio::fs::read(self.file(file)).await.ok()?;
        (bytes.len() as u64 == range.end - range.start).then(|| (Bytes::from(bytes), meta, attributes))
    }

    /// Keeps `bytes` as `range` of `location`, evicting the least recently
    /// used ranges beyond the capacity. A range that cannot be written is
    /// simply not cached.
    async fn keep(
        &self,
        location: &Path,
        range: &Range<u64>,
        bytes: &Bytes,
        meta: &ObjectMeta,
        attributes: &Attributes,
    ) {
        let size = bytes.len() as u64;
        if size > self.capacity / 4 {
            return;
        }
        let file = {
            let mut index = self.index.lock();
            index.next_file += 1;
            index.next_file
        };
        if tokio::fs::write(self.file(file), bytes).await.is_err() {
            return;
        }
        let evicted = {
            let mut index = self.index.lock();
            index.tick += 1;
            let entry = Entry { file, size, used: index.tick, meta: meta.clone(), attributes: attributes.clone() };
            let mut evicted = Vec::new();
            if let Some(old) = index.entries.insert((location.clone(), range.start, range.end), entry) {
                index.bytes -= old.size;
                evicted.push(old.file);
            }
            index.bytes += size;
            if index.bytes > self.capacity {
                // Down to nine tenths at once, so that evictions come in batches.
                let mut by_age: Vec<_> = index.entries.iter().map(|(k, e)| (e.used, k.clone())).collect();
                by_age.sort_unstable_by_key(|(used, _)| *used);
                for (_, key) in by_age {
                    if index.bytes <= self.capacity / 10 * 9 {
                        break;
                    }
                    if let Some(e) = index.entries.remove(&key) {
                        index.bytes -= e.size;
                        evicted.push(e.file);
                        self.telemetry.evictions.inc();
                    }
                }
            }
            self.telemetry.bytes.set(index.bytes as i64);
            evicted
        };
        for f in evicted {
            let _ = tokio::fs::remove_file(self.file(f)).await;
        }
    }

    /// Drops every cached range of `location`.
    fn forget(&self, location: &Path) {
        let files: Vec<u64> = {
            let mut index = self.index.lock();
            let keys: Vec<_> = index.entries.keys().filter(|k| &k.0 == location).cloned().collect();
            let mut files = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(e) = index.entries.remove(&k) {
                    index.bytes -= e.size;
                    files.push(e.file);
                }
            }
            self.telemetry.bytes.set(index.bytes as i64);
            files
        };
        for f in files {
            let _ = std::fs::remove_file(self.file(f));
        }
    }
}

/// A plain ranged read: no conditions, no version, not a head.
fn cacheable(options: &GetOptions) -> Option<Range<u64>> {
    let plain = !options.head
        && options.if_match.is_none()
        && options.if_none_match.is_none()
        && options.if_modified_since.is_none()
        && options.if_unmodified_since.is_none()
        && options.version.is_none();
    match &options.range {
        Some(GetRange::Bounded(r)) if plain && r.start < r.end => Some(r.clone()),
        _ => None,
    }
}

fn result(bytes: Bytes, meta: ObjectMeta, range: Range<u64>, attributes: Attributes) -> GetResult {
    GetResult {
        payload: GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed()),
        meta,
        range,
        attributes,
    }
}

impl fmt::Display for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({}, {})", self.inner, self.state.dir.display())
    }
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cached({:?}, {})", self.inner, self.state.dir.display())
    }
}

/// Ranged reads go through the cache; `get_ranges` is the trait's own (it
/// coalesces ranges and reads each through `get_opts`, so through the cache).
#[async_trait]
impl ObjectStore for Cached {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let Some(range) = cacheable(&options) else {
            return self.inner.get_opts(location, options).await;
        };
        let state = &self.state;
        if let Some((bytes, meta, attributes)) = state.lookup(location, &range).await {
            state.telemetry.hits.inc();
            return Ok(result(bytes, meta, range, attributes));
        }
        state.telemetry.misses.inc();
        let got = self.inner.get_opts(location, options).await?;
        let (meta, attributes, range) = (got.meta.clone(), got.attributes.clone(), got.range.clone());
        let bytes = got.bytes().await?;
        state.keep(location, &range, &bytes, &meta, &attributes).await;
        Ok(result(bytes, meta, range, attributes))
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let state = self.state.clone();
        let forgotten = locations.map(move |location| {
            if let Ok(path) = &location {
                state.forget(path);
            }
            location
        });
        self.inner.delete_stream(forgotten.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.state.forget(to);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.state.forget(from);
        self.state.forget(to);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;
    use crate::objects::seaweed::{S3ForTests, unique_prefix};
    use crate::objects::{self, Call, ObjectStoreTelemetry};

    fn bucket_gets(telemetry: &ObjectStoreTelemetry) -> u64 {
        telemetry.requests.get_or_create(&Call::new("get", "ok")).get()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ranges_are_read_from_the_bucket_once_and_the_least_recently_used_are_evicted() {
        let s3 = S3ForTests::shared();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = objects::StorageConfig {
            cache_bytes: 1 << 20,
            cache_dir: dir.path().join("cache").display().to_string(),
            ..s3.config(&unique_prefix("cache"))
        };
        // A range an earlier run left goes; a file of the user's stays.
        std::fs::create_dir_all(dir.path().join("cache")).expect("mkdir");
        std::fs::write(dir.path().join("cache/0000000000000001.range"), b"stale").expect("write");
        std::fs::write(dir.path().join("cache/notes.txt"), b"mine").expect("write");
        let (telemetry, cache) = (ObjectStoreTelemetry::default(), CacheTelemetry::default());
        let store = objects::open(&config, dir.path(), &telemetry, &cache).expect("store");
        assert!(!dir.path().join("cache/0000000000000001.range").exists());
        assert!(dir.path().join("cache/notes.txt").exists());
        std::fs::remove_file(dir.path().join("cache/notes.txt")).expect("rm");
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        store.put(&Path::from("a"), Bytes::from(data.clone()).into()).await.expect("put");

        let first = store.get_range(&Path::from("a"), 1000..2000).await.expect("range");
        let again = store.get_range(&Path::from("a"), 1000..2000).await.expect("range");
        assert_eq!((&first[..], &again[..]), (&data[1000..2000], &data[1000..2000]));
        assert_eq!(bucket_gets(&telemetry), 1, "the second read is served locally");
        assert_eq!((cache.hits.get(), cache.misses.get()), (1, 1));

        // Six ranges of 200 KiB into a 1 MiB cache: the oldest go.
        let block = 200 << 10;
        for i in 0..6u64 {
            let r = 100_000 + i * block..100_000 + (i + 1) * block;
            let got = store.get_range(&Path::from("a"), r.clone()).await.expect("range");
            assert_eq!(&got[..], &data[r.start as usize..r.end as usize]);
        }
        assert!(cache.evictions.get() >= 2, "evicted {}", cache.evictions.get());
        assert!(cache.bytes.get() <= 1 << 20, "held {}", cache.bytes.get());
        let gets = bucket_gets(&telemetry);
        let newest = 100_000 + 5 * block..100_000 + 6 * block;
        store.get_range(&Path::from("a"), newest).await.expect("range");
        assert_eq!(bucket_gets(&telemetry), gets, "the newest range is held");
        store.get_range(&Path::from("a"), 1000..2000).await.expect("range");
        assert_eq!(bucket_gets(&telemetry), gets + 1, "the oldest range was evicted");

        // A deleted object's ranges leave the cache.
        store.delete(&Path::from("a")).await.expect("delete");
        assert_eq!(cache.bytes.get(), 0);
        assert_eq!(std::fs::read_dir(dir.path().join("cache")).expect("dir").count(), 0, "its files are gone");
    }
}
