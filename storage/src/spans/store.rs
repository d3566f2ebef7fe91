//! The span store: an in-memory head, queryable at once, flushed into
//! immutable Parquet parts by a background thread that also compacts and
//! applies retention.
//!
//! Invariants:
//! - The head is split into shards by trace id ([`shards`]); each shard is
//!   handed every WAL sequence of spans, in order, by its own lane.
//! - A flush takes a shard's whole head at once and writes one part per
//!   tenant; each part records the shard's mark (its head's last WAL
//!   sequence), so a tenant's parts say that all of that shard's batches up
//!   to that sequence are on disk. A span is skipped if a mark of its shard
//!   covers it, or its sequence is not beyond the last batch its shard
//!   applied, so WAL replay never duplicates a span, and a flush
//!   interrupted between two tenants' or two shards' parts loses nothing.
//! - The WAL is released up to the lowest sequence that every shard holds
//!   durably, only after the parts of the flush are published.
//! - While a frozen head is being written it stays queryable.
//! - Compaction publishes the merged part (listing what it replaces) before
//!   deleting its inputs; at open, parts that a published part replaces are
//!   deleted, so an interrupted compaction never duplicates a span.

mod maintenance;
mod shards;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::{Mutex, MutexGuard, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::head::{self, TenantHead};
use super::part::{self, PartIndex, PartMeta};
use crate::StorageError;
use crate::model::{Signal, Span, SpanKind, Tenant};
use crate::sink::{Batch, Sink};
use crate::wal::Wal;
use crate::worker::{Run, Worker};
pub use shards::shard_of;
use shards::{Persisted, ShardSink};

#[derive(Clone, Debug)]
pub struct SpanStoreConfig {
    /// Flush the head once it holds this many spans…
    pub flush_spans: usize,
    /// …or once its oldest span is this old.
    pub flush_age: Duration,
    pub row_group_rows: usize,
    /// Parts whose spans all ended longer ago than this are deleted.
    pub retention: Duration,
    /// Parts whose start falls in the same window of this length are merged.
    pub compaction_window: Duration,
    /// A window is compacted once it has this many parts.
    pub compaction_min_parts: usize,
    /// A compaction merges at most this many spans at once. Its inputs are
    /// streamed (one batch per input in memory), but the merged part's
    /// bytes are built in memory before the upload: this bounds them.
    pub compaction_max_spans: usize,
    /// How often compaction and retention run.
    pub maintenance_interval: Duration,
    /// Spans in memory (the head and heads being written) beyond which the
    /// store reports itself backlogged and the door refuses spans.
    pub max_unflushed_spans: usize,
    /// Row groups a flush copies and encodes at once, each on its own
    /// thread; 0 is the cores left to each shard (at least one).
    pub flush_threads: usize,
    /// Slices of the head, split by trace id, each taking its own lane's
    /// batches and flushed on its own thread; 0 is one per core (at most
    /// 8). The
    /// flush and backlog sizes above are for the whole store.
    pub shards: usize,
}

impl Default for SpanStoreConfig {
    fn default() -> Self {
        Self {
            flush_spans: 100_000,
            flush_age: Duration::from_secs(30),
            row_group_rows: 32768,
            retention: Duration::from_secs(7 * 24 * 3600),
            compaction_window: Duration::from_secs(3600),
            compaction_min_parts: 4,
            compaction_max_spans: 1_000_000,
            maintenance_interval: Duration::from_secs(60),
            max_unflushed_spans: 300_000,
            flush_threads: 0,
            shards: 0,
        }
    }
}

/// The mutable head of one shard: spans not yet in a part.
#[derive(Default)]
pub(super) struct Head {
    shard: usize,
    pub(super) tenants: HashMap<Tenant, TenantHead>,
    spans: usize,
    /// Bytes of the tenants' chunks.
    bytes: usize,
    /// The lowest and highest WAL sequence of the spans held.
    min_seq: u64,
    max_seq: u64,
    since: Option<Instant>,
}

impl Head {
    fn new(shard: usize) -> Self {
        Self { shard, ..Self::default() }
    }
}

/// What a query sees of one tenant, gathered under one lock.
#[derive(Default)]
pub(super) struct State {
    /// One per shard.
    pub(super) heads: Vec<Head>,
    /// The last WAL sequence each shard was handed (under this lock, so that
    /// with the heads it says what is durable).
    applied: Vec<u64>,
    /// Heads being written into parts, still queryable.
    pub(super) flushing: Vec<Arc<Head>>,
    pub(super) parts: HashMap<Tenant, Vec<PartMeta>>,
    /// The services and operations lists, per tenant.
    operations: HashMap<Tenant, Catalog>,
}

impl State {
    /// Every head a query reads: the shards' and those being written.
    pub(super) fn all_heads(&self) -> impl Iterator<Item = &Head> {
        self.heads.iter().chain(self.flushing.iter().map(|h| &**h))
    }

    fn unflushed(&self) -> usize {
        self.all_heads().map(|h| h.spans).sum()
    }

    fn unflushed_bytes(&self) -> usize {
        self.all_heads().map(|h| h.bytes).sum()
    }

    /// The highest sequence up to which every shard holds every span it was
    /// handed in published parts, counting the heads in `written` as
    /// published: each shard's lowest unwritten sequence less one, or what
    /// it applied when it holds nothing unwritten.
    fn durable_floor(&self, written: &[&Arc<Head>]) -> u64 {
        let unwritten = |shard: usize| {
            let frozen = self.flushing.iter().filter(|h| !written.iter().any(|w| Arc::ptr_eq(w, h)));
            std::iter::once(&self.heads[shard])
                .chain(frozen.map(|h| &**h))
                .filter(|h| h.shard == shard && h.spans > 0)
                .map(|h| h.min_seq)
                .min()
        };
        (0..self.heads.len())
            .map(|shard| unwritten(shard).map_or(self.applied[shard], |seq| seq.saturating_sub(1)))
            .min()
            .unwrap_or(0)
    }
}

/// The spans of one trace, gathered from the head and the parts.
#[derive(Debug, Default)]
pub struct TraceSpans {
    pub spans: Vec<Span>,
    /// True when the trace has more spans than the limit asked for.
    pub truncated: bool,
    /// The parts that may hold spans of the trace and could not be read
    /// (each named with its error): the answer is partial when not empty.
    pub unread: Vec<String>,
}

/// Counts of what the store holds for a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpanCounts {
    pub head_spans: u64,
    pub part_spans: u64,
    pub parts: u64,
}

crate::telemetry! {
    /// The store's own metrics, served on `/metrics` once registered.
    struct SpanTelemetry("sightline_spans") {
        /// Spans in memory, not yet in a part
        unflushed: Gauge,
        /// Bytes of the Arrow buffers that hold the spans not yet in a part
        unflushed_bytes: Gauge,
        /// Published span parts
        parts: Gauge,
        /// Span parts merged by compaction, deleted once queries that listed them are done
        retired_parts: Gauge,
        /// Spans written into parts by flushes
        flushed: Counter,
        /// Duration of a flush
        flush_seconds: Histogram = Histogram::new(exponential_buckets(0.01, 2.0, 12)),
        /// Compactions of span parts
        compactions: Counter,
        /// Span parts deleted by retention
        expired_parts: Counter,
        /// Failed flushes, compactions or deletions
        errors: Counter,
    }
}

/// Rows a compaction reads from each input at a time.
const MERGE_BATCH_ROWS: usize = 4096;

/// Parts a compaction merges at once. Each input holds a reader for every
/// one of a part's leaf columns (47 in format 5) and a batch of rows, so a
/// merge's memory grows with its inputs: twenty parts of 50,000 spans merged at once
/// peaked at 491 MiB resident, eight at 262 (BENCHMARKS.md). A window with
/// more parts is merged in several groups.
const MAX_MERGE_INPUTS: usize = 8;

/// Shards by default: one per core, at most this many, so that a shard's
/// part (its share of `flush_spans`) stays large on a many-core machine.
const DEFAULT_MAX_SHARDS: usize = 8;

/// How long the inputs of a compaction stay readable after the merge.
const RETIRED_GRACE: Duration = Duration::from_secs(60);

pub(super) struct Inner {
    pub(super) store: Arc<dyn ObjectStore>,
    config: SpanStoreConfig,
    wal: Option<Wal>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) state: RwLock<State>,
    /// Per tenant, the WAL marks of the parts found at open: what replay skips.
    persisted: Persisted,
    next_part: AtomicU64,
    /// Footers and bloom filters of parts, by part id, loaded on first use.
    indexes: Mutex<HashMap<String, Arc<PartIndex>>>,
    /// One per shard, held by its flush, so that two never write the same frozen head.
    flush_work: Vec<Mutex<()>>,
    /// Held by a maintenance run, so that two never merge the same parts.
    /// Flushes and maintenance run on their own threads: a long compaction
    /// never holds up a flush (and so never fills the head).
    maintenance_work: Mutex<()>,
    /// Parts merged by compaction, deleted once `RETIRED_GRACE` has passed:
    /// a query that listed them before the merge can still read them.
    retired: Mutex<Vec<(Instant, Tenant, String)>>,
    telemetry: SpanTelemetry,
}

/// Handle to the span store; cheap to clone.
#[derive(Clone)]
pub struct SpanStore {
    pub(super) inner: Arc<Inner>,
    /// One per shard: writes its head into parts when it is full or old enough.
    flushers: Arc<Vec<Worker>>,
    /// Retention and compaction every `maintenance_interval`.
    maintainer: Arc<Worker>,
}

impl SpanStore {
    /// Opens the store over `store`: loads the parts' metas, removes what an
    /// interrupted write or compaction left, and starts the background
    /// thread. `wal` is released as parts are published.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        config: SpanStoreConfig,
        wal: Option<Wal>,
    ) -> Result<Self, StorageError> {
        let (mut metas, orphans) = part::list(store.as_ref()).await?;
        for path in orphans {
            tracing::warn!(%path, "removing a span part file without meta (interrupted write)");
            let _ = store.delete(&path).await;
        }
        let replaced: BTreeSet<String> = metas.iter().flat_map(|m| m.compacted_from.iter().cloned()).collect();
        for m in metas.iter().filter(|m| replaced.contains(&m.id)) {
            tracing::warn!(part = %m.id, "removing a span part already merged by compaction");
            part::delete(store.as_ref(), &m.tenant, &m.id).await?;
        }
        metas.retain(|m| !replaced.contains(&m.id));
        let shards = match config.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()).min(DEFAULT_MAX_SHARDS),
            n => n,
        };
        let mut state =
            State { heads: (0..shards).map(Head::new).collect(), applied: vec![0; shards], ..State::default() };
        let mut persisted = Persisted::default();
        for m in metas {
            let tenant = Tenant::new(&m.tenant).map_err(|e| StorageError::Part(e.to_string()))?;
            persisted.note(&tenant, &m.marks());
            let ops = state.operations.entry(tenant.clone()).or_default();
            for (service, names) in &m.operations {
                for (name, kind) in names {
                    note_operation(ops, service, name, *kind);
                }
            }
            state.parts.entry(tenant).or_default().push(m);
        }
        let inner = Arc::new(Inner {
            store,
            config,
            wal,
            runtime: tokio::runtime::Handle::current(),
            state: RwLock::new(state),
            persisted,
            next_part: AtomicU64::new(0),
            indexes: Mutex::new(HashMap::new()),
            flush_work: (0..shards).map(|_| Mutex::new(())).collect(),
            maintenance_work: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            telemetry: SpanTelemetry::default(),
        });
        // A flush thread also looks every quarter of `flush_age`.
        let tick = (inner.config.flush_age / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut flushers = Vec::with_capacity(shards);
        for shard in 0..shards {
            let (flushing, failed) = (inner.clone(), inner.clone());
            flushers.push(Worker::spawn(
                &format!("span-flush-{shard}"),
                tick,
                move |run| flushing.flush_if_due(shard, run),
                move |e, failures| {
                    failed.telemetry.errors.inc();
                    tracing::error!(error = %e, shard, failures, "span flush failed; the spans stay in memory and in the WAL");
                },
            )?);
        }
        let (maintaining, failed) = (inner.clone(), inner.clone());
        let maintainer = Worker::spawn(
            "span-maint",
            inner.config.maintenance_interval,
            move |run| if run == Run::Regular { maintaining.maintain() } else { Ok(()) },
            move |e, _| {
                failed.telemetry.errors.inc();
                tracing::error!(error = %e, "span compaction or retention failed; will retry");
            },
        )?;
        Ok(Self { inner, flushers: Arc::new(flushers), maintainer: Arc::new(maintainer) })
    }

    /// Adds the store's metrics to `registry` (`sightline_spans_*`).
    pub fn register_telemetry(&self, registry: &mut Registry) {
        self.inner.telemetry.register(registry);
        self.inner.update_gauges();
    }

    /// Writes every shard's head into parts now and waits for it. Blocks.
    pub fn flush_blocking(&self) -> Result<(), StorageError> {
        (0..self.shards()).try_for_each(|shard| self.inner.flush(shard))
    }

    /// How many shards the head is split into.
    pub fn shards(&self) -> usize {
        self.inner.flush_work.len()
    }

    /// One sink per shard, for lanes that split batches with [`shard_of`]:
    /// each must be handed every batch's sequence, in WAL order, even when
    /// none of its spans are for that shard.
    pub fn shard_sinks(&self) -> Vec<Arc<dyn Sink<Span>>> {
        (0..self.shards())
            .map(|shard| Arc::new(ShardSink { store: self.clone(), shard }) as Arc<dyn Sink<Span>>)
            .collect()
    }

    /// Runs compaction and retention once now. Blocks.
    pub fn maintain_blocking(&self) -> Result<(), StorageError> {
        self.inner.maintain()
    }

    /// Flushes what the head holds and stops the background threads. Blocks.
    pub fn shutdown_blocking(&self) {
        self.maintainer.shutdown();
        self.flushers.iter().for_each(Worker::shutdown);
    }

    pub fn counts(&self, tenant: &Tenant) -> SpanCounts {
        let state = self.inner.state.read();
        let in_heads = state.all_heads();
        let parts = state.parts.get(tenant).map(Vec::as_slice).unwrap_or_default();
        SpanCounts {
            head_spans: in_heads.map(|h| h.tenants.get(tenant).map_or(0, |t| t.spans as u64)).sum(),
            part_spans: parts.iter().map(|p| p.spans).sum(),
            parts: parts.len() as u64,
        }
    }

    /// The parts of a tenant, oldest first.
    pub fn parts(&self, tenant: &Tenant) -> Vec<PartMeta> {
        let mut parts = self.inner.state.read().parts.get(tenant).cloned().unwrap_or_default();
        parts.sort_by_key(|p| p.min_start_unix_nano);
        parts
    }

    pub fn services(&self, tenant: &Tenant) -> Vec<String> {
        self.inner.state.read().operations.get(tenant).map(|o| o.keys().cloned().collect()).unwrap_or_default()
    }

    /// Span names (with their kinds) of one service.
    pub fn operations(&self, tenant: &Tenant, service: &str) -> Vec<(String, SpanKind)> {
        let state = self.inner.state.read();
        let names = state.operations.get(tenant).and_then(|o| o.get(service));
        names
            .map(|n| {
                n.iter()
                    .flat_map(|(name, kinds)| kinds.iter().map(|k| (name.clone(), SpanKind::from_otlp(i32::from(*k)))))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl SpanStore {
    /// True while more spans wait in memory than `max_unflushed_spans`.
    pub(super) fn backlogged(&self) -> bool {
        self.inner.state.read().unflushed() >= self.inner.config.max_unflushed_spans
    }

    /// Takes a shard's part of one WAL record (perhaps no span at all).
    pub(super) fn consume_shard(&self, shard: usize, batch: Batch<Span>) -> Result<(), StorageError> {
        let inner = &self.inner;
        let seq = batch.wal_seq;
        if inner.state.read().applied[shard] >= seq {
            return Ok(());
        }
        // Columns are built before the lock is taken; the spans are freed after.
        let mut items = inner.persisted.unpersisted(&batch.tenant, seq, batch.items);
        let chunk = if items.len() >= head::MIN_CHUNK_ROWS { Some(head::chunk_of(&items)?) } else { None };
        let full = {
            let mut state = inner.state.write();
            state.applied[shard] = state.applied[shard].max(seq);
            if items.is_empty() {
                return Ok(());
            }
            let ops = state.operations.entry(batch.tenant.clone()).or_default();
            for s in &items {
                note_operation(ops, &s.resource.service, &s.name, s.kind as u8);
            }
            let head = &mut state.heads[shard];
            head.since.get_or_insert_with(Instant::now);
            if head.spans == 0 {
                head.min_seq = seq;
            }
            head.max_seq = head.max_seq.max(seq);
            head.spans += items.len();
            let tenant = head.tenants.entry(batch.tenant).or_default();
            head.bytes += match chunk {
                Some(chunk) => tenant.push_chunk(chunk),
                None => tenant.push_spans(std::mem::take(&mut items))?,
            };
            head.spans >= inner.shard_flush_spans()
        };
        drop(items);
        inner.update_gauges();
        if full {
            self.flushers[shard].wake();
        }
        Ok(())
    }
}

/// The whole store as one sink: a batch is split by trace id and each shard
/// is handed its part (the lanes of a pipeline use [`SpanStore::shard_sinks`]).
impl Sink<Span> for SpanStore {
    fn backlogged(&self) -> bool {
        SpanStore::backlogged(self)
    }

    fn consume(&self, batch: Batch<Span>) -> Result<(), StorageError> {
        let shards = self.shards();
        let pieces = crate::sink::split(batch.items, shards, |s| shard_of(&s.trace_id, shards));
        for (shard, items) in pieces.into_iter().enumerate() {
            self.consume_shard(shard, Batch { tenant: batch.tenant.clone(), wal_seq: batch.wal_seq, items })?;
        }
        Ok(())
    }
}

/// service → span name → span kinds.
type Catalog = BTreeMap<String, BTreeMap<String, BTreeSet<u8>>>;

/// Records an operation; looks up by reference and allocates only for a new one.
fn note_operation(catalog: &mut Catalog, service: &str, name: &str, kind: u8) {
    if catalog.get(service).and_then(|names| names.get(name)).is_some_and(|kinds| kinds.contains(&kind)) {
        return;
    }
    catalog.entry(service.to_owned()).or_default().entry(name.to_owned()).or_default().insert(kind);
}

impl Inner {
    fn update_gauges(&self) {
        let state = self.state.read();
        self.telemetry.unflushed.set(state.unflushed() as i64);
        self.telemetry.unflushed_bytes.set(state.unflushed_bytes() as i64);
        self.telemetry.parts.set(state.parts.values().map(Vec::len).sum::<usize>() as i64);
        self.telemetry.retired_parts.set(self.retired.lock().len() as i64);
    }

    /// A shard's head is flushed at this many spans: its share of `flush_spans`.
    fn shard_flush_spans(&self) -> usize {
        (self.config.flush_spans / self.flush_work.len()).max(1)
    }

    /// Writes a shard's head (and any frozen head a failed flush left) when
    /// it is full, old enough, or the store is shutting down.
    /// Due-ness is judged under the shard's flush lock: a flush that was
    /// waiting on a forced one must not then cut the head that followed.
    fn flush_if_due(&self, shard: usize, run: Run) -> Result<(), StorageError> {
        let work = self.flush_work[shard].lock();
        let due = {
            let state = self.state.read();
            let h = &state.heads[shard];
            state.flushing.iter().any(|f| f.shard == shard)
                || h.spans >= self.shard_flush_spans()
                || (h.spans > 0 && (run == Run::Last || h.since.is_some_and(|t| t.elapsed() >= self.config.flush_age)))
        };
        if due { self.flush_locked(shard, work) } else { Ok(()) }
    }

    fn part_id(&self) -> String {
        let now = crate::model::now_unix_nanos();
        format!("{now:020}-{:06}", self.next_part.fetch_add(1, Ordering::Relaxed) % 1_000_000)
    }

    /// Freezes a shard's head and writes it (and any earlier frozen head of
    /// the shard that failed) into parts; then releases the WAL.
    fn flush(&self, shard: usize) -> Result<(), StorageError> {
        self.flush_locked(shard, self.flush_work[shard].lock())
    }

    /// [`Inner::flush`] with the shard's flush lock held (`_work`).
    fn flush_locked(&self, shard: usize, _work: MutexGuard<'_, ()>) -> Result<(), StorageError> {
        {
            let mut state = self.state.write();
            if state.heads[shard].spans > 0 {
                let head = std::mem::replace(&mut state.heads[shard], Head::new(shard));
                state.flushing.push(Arc::new(head));
            }
        }
        let shards = self.flush_work.len();
        let threads = match self.config.flush_threads {
            0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / shards).max(1),
            n => n,
        };
        loop {
            let (frozen, floor) = {
                let state = self.state.read();
                let Some(frozen) = state.flushing.iter().find(|h| h.shard == shard).cloned() else {
                    return Ok(());
                };
                let floor = state.durable_floor(&[&frozen]);
                (frozen, floor)
            };
            let started = Instant::now();
            let mut published = Vec::new();
            let mark = part::WalMark { of: shards as u32, shard: shard as u32, seq: frozen.max_seq };
            for (tenant, t) in &frozen.tenants {
                let chunks = t.all_batches()?;
                let (id, rows) = (self.part_id(), self.config.row_group_rows);
                let mut encoded = part::encode_chunks(tenant, id, 0, &chunks, floor, rows, threads)?;
                encoded.meta.wal_marks = vec![mark];
                let meta = self.runtime.block_on(part::publish(self.store.as_ref(), encoded))?;
                published.push((tenant.clone(), meta));
            }
            let floor = {
                let mut state = self.state.write();
                for (tenant, meta) in published {
                    state.parts.entry(tenant).or_default().push(meta);
                }
                state.flushing.retain(|h| !Arc::ptr_eq(h, &frozen));
                state.durable_floor(&[])
            };
            self.telemetry.flushed.inc_by(frozen.spans as u64);
            self.telemetry.flush_seconds.observe(started.elapsed().as_secs_f64());
            self.update_gauges();
            if let Some(wal) = &self.wal {
                wal.release(Signal::Traces, floor)?;
            }
        }
    }

    /// The part's footer and bloom filters, read once and then kept.
    pub(super) async fn index(&self, meta: &PartMeta) -> Result<Arc<PartIndex>, StorageError> {
        if let Some(index) = self.indexes.lock().get(&meta.id) {
            return Ok(index.clone());
        }
        let index = Arc::new(part::load_index(self.store.clone(), meta).await?);
        self.indexes.lock().insert(meta.id.clone(), index.clone());
        Ok(index)
    }
}
