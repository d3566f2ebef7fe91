//! The log store: time partitions of tantivy indexes, fed batch by batch,
//! committed every `commit_interval` by a background thread (which is what
//! makes lines searchable and releases the WAL), and dropped whole by
//! retention.
//!
//! Invariants:
//! - A batch's records are added to their partitions before the store
//!   counts the batch as consumed; a commit cycle releases the WAL only up
//!   to the last batch consumed before the cycle began, and only once every
//!   partition committed.
//! - Replay skips, per partition, the batches its last commit holds (see
//!   [`Partition`]), so no line is indexed twice.
//! - Partitions never overlap in time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::partition::{Partition, WriterConfig};
use crate::StorageError;
use crate::model::now_unix_nanos;
use crate::model::{LogRecord, Signal};
use crate::sink::{Batch, Sink};
use crate::wal::Wal;
use crate::worker::{Run, Worker};

#[derive(Clone, Debug)]
pub struct LogStoreConfig {
    /// The folder holding one sub-folder per partition.
    pub dir: PathBuf,
    /// The time each partition covers.
    pub partition: Duration,
    /// How often new lines are committed (made searchable and durable).
    pub commit_interval: Duration,
    /// Partitions that ended longer ago than this are deleted.
    pub retention: Duration,
    pub indexing_threads: usize,
    /// Indexing memory of one partition's writer, all threads together.
    pub writer_memory_bytes: usize,
    /// How often retention runs and idle writers are closed.
    pub maintenance_interval: Duration,
}

impl LogStoreConfig {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            partition: Duration::from_secs(24 * 3600),
            commit_interval: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 24 * 3600),
            indexing_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            writer_memory_bytes: 128 << 20,
            maintenance_interval: Duration::from_secs(60),
        }
    }
}

/// tantivy refuses less than this per indexing thread.
const MIN_MEMORY_PER_THREAD: usize = 15_000_000;

crate::telemetry! {
    /// The store's own metrics, served on `/metrics` once registered.
    struct LogTelemetry("sightline_logs") {
        /// Log records added to the index
        indexed: Counter,
        /// Commits of log partitions
        commits: Counter,
        /// Duration of a commit cycle
        commit_seconds: Histogram = Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        /// Log partitions on disk
        partitions: Gauge,
        /// Log partitions deleted by retention
        expired_partitions: Counter,
        /// Failed commits or deletions
        errors: Counter,
    }
}

pub(super) struct Inner {
    pub(super) config: LogStoreConfig,
    /// By start time.
    pub(super) partitions: RwLock<BTreeMap<i64, Arc<Partition>>>,
    /// The last WAL sequence whose batch is wholly added.
    consumed: AtomicU64,
    released: AtomicU64,
    wal: Option<Wal>,
    telemetry: LogTelemetry,
}

/// The log store; cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    pub(super) inner: Arc<Inner>,
    /// Commits every `commit_interval`; retention every `maintenance_interval`.
    worker: Arc<Worker>,
}

impl LogStore {
    /// Opens the partitions in `config.dir` and starts the commit thread.
    /// With a WAL, commits release it.
    pub fn open(config: LogStoreConfig, wal: Option<Wal>) -> Result<LogStore, StorageError> {
        std::fs::create_dir_all(&config.dir).map_err(StorageError::io(&config.dir))?;
        let mut partitions = BTreeMap::new();
        for entry in std::fs::read_dir(&config.dir).map_err(StorageError::io(&config.dir))? {
            let entry = entry.map_err(StorageError::io(&config.dir))?;
            let name = entry.file_name();
            let Some((start, end)) = name.to_str().and_then(Partition::parse_dir_name) else {
                tracing::warn!(path = %entry.path().display(), "not a log partition; left alone");
                continue;
            };
            partitions.insert(start, Arc::new(Partition::open(entry.path(), start, end)?));
        }
        let inner = Arc::new(Inner {
            config,
            partitions: RwLock::new(partitions),
            consumed: AtomicU64::new(0),
            released: AtomicU64::new(0),
            wal,
            telemetry: LogTelemetry::default(),
        });
        inner.expire()?;
        let (runner, failed) = (inner.clone(), inner.clone());
        let mut last_maintenance = Instant::now();
        let worker = Worker::spawn(
            "log-commit",
            inner.config.commit_interval,
            move |run| runner.cycle(run, &mut last_maintenance),
            move |e, failures| {
                failed.telemetry.errors.inc();
                tracing::error!(error = %e, failures, "log commit failed; the lines stay in the WAL");
            },
        )?;
        Ok(LogStore { inner, worker: Arc::new(worker) })
    }

    /// Adds the store's metrics to `registry` (`sightline_logs_*`).
    pub fn register_telemetry(&self, registry: &mut Registry) {
        let m = &self.inner.telemetry;
        m.register(registry);
        m.partitions.set(self.inner.partitions.read().len() as i64);
    }

    /// Commits what was added now, making it searchable. Blocks.
    pub fn commit_blocking(&self) -> Result<(), StorageError> {
        self.inner.commit_all()
    }

    /// Runs retention once now. Blocks.
    pub fn expire_blocking(&self) -> Result<(), StorageError> {
        self.inner.expire()
    }

    /// Commits everything, closes the writers and stops the thread. Blocks.
    pub fn shutdown_blocking(&self) {
        self.worker.shutdown();
    }

    /// Loses what is not committed and stops, as a crash would.
    #[cfg(test)]
    pub fn crash(&self) {
        self.inner.partitions.read().values().for_each(|p| p.drop_writer());
        self.shutdown_blocking();
    }

    /// The partitions' time ranges (nanoseconds), oldest first.
    pub fn partitions(&self) -> Vec<(i64, i64)> {
        self.inner.partitions.read().values().map(|p| (p.start, p.end)).collect()
    }
}

impl Inner {
    fn writer_config(&self) -> WriterConfig {
        let threads = self.config.indexing_threads.max(1);
        WriterConfig { threads, memory_bytes: self.config.writer_memory_bytes.max(threads * MIN_MEMORY_PER_THREAD) }
    }

    /// The partition that holds `ts`, created if there is none.
    fn partition_for(&self, ts: i64) -> Result<Arc<Partition>, StorageError> {
        let containing = |map: &BTreeMap<i64, Arc<Partition>>| {
            map.range(..=ts).next_back().map(|(_, p)| p).filter(|p| ts < p.end).cloned()
        };
        if let Some(p) = containing(&self.partitions.read()) {
            return Ok(p);
        }
        let mut map = self.partitions.write();
        if let Some(p) = containing(&map) {
            return Ok(p);
        }
        let len = i64::try_from(self.config.partition.as_nanos()).unwrap_or(i64::MAX).max(1_000_000_000);
        let aligned = ts - ts.rem_euclid(len);
        // Partitions made under another length may border this one.
        let start = map.range(..=ts).next_back().map_or(aligned, |(_, p)| aligned.max(p.end));
        let end =
            map.range(ts..).next().map_or(aligned.saturating_add(len), |(s, _)| (aligned.saturating_add(len)).min(*s));
        let dir = self.config.dir.join(Partition::dir_name(start, end));
        let p = Arc::new(Partition::open(dir, start, end)?);
        map.insert(start, p.clone());
        self.telemetry.partitions.set(map.len() as i64);
        Ok(p)
    }

    fn consume(&self, batch: Batch<LogRecord>) -> Result<(), StorageError> {
        let mut by_partition: BTreeMap<i64, (Arc<Partition>, Vec<tantivy::TantivyDocument>)> = BTreeMap::new();
        for (i, r) in batch.items.iter().enumerate() {
            let ts = i64::try_from(r.time_unix_nano).unwrap_or(i64::MAX);
            let p = self.partition_for(ts)?;
            let seq = (batch.wal_seq << 20) | (i as u64).min((1 << 20) - 1);
            let doc = p.fields.document(&batch.tenant, seq, r);
            by_partition.entry(p.start).or_insert_with(|| (p, Vec::new())).1.push(doc);
        }
        let config = self.writer_config();
        for (p, docs) in by_partition.into_values() {
            let n = p.add(batch.wal_seq, docs, config)?;
            self.telemetry.indexed.inc_by(n as u64);
        }
        self.consumed.fetch_max(batch.wal_seq, Ordering::AcqRel);
        Ok(())
    }

    /// Commits every partition with new lines; then releases the WAL.
    fn commit_all(&self) -> Result<(), StorageError> {
        let started = Instant::now();
        let consumed = self.consumed.load(Ordering::Acquire);
        let partitions: Vec<_> = self.partitions.read().values().cloned().collect();
        let mut committed = 0;
        for p in partitions {
            committed += u64::from(p.commit(self.writer_config())?);
        }
        if committed > 0 {
            self.telemetry.commits.inc_by(committed);
            self.telemetry.commit_seconds.observe(started.elapsed().as_secs_f64());
        }
        if consumed > self.released.load(Ordering::Acquire)
            && let Some(wal) = &self.wal
        {
            wal.release(Signal::Logs, consumed)?;
            self.released.fetch_max(consumed, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Deletes the partitions that ended before the retention horizon.
    fn expire(&self) -> Result<(), StorageError> {
        let retention = i64::try_from(self.config.retention.as_nanos()).unwrap_or(i64::MAX);
        let horizon = i64::try_from(now_unix_nanos()).unwrap_or(i64::MAX).saturating_sub(retention);
        let expired: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let old: Vec<i64> = map.values().filter(|p| p.end <= horizon).map(|p| p.start).collect();
            let expired = old.iter().filter_map(|s| map.remove(s)).collect();
            self.telemetry.partitions.set(map.len() as i64);
            expired
        };
        for p in expired {
            p.close(self.writer_config())?;
            std::fs::remove_dir_all(&p.dir).map_err(StorageError::io(&p.dir))?;
            self.telemetry.expired_partitions.inc();
            tracing::info!(partition = %p.dir.display(), "deleted an expired log partition");
        }
        Ok(())
    }

    fn close_idle_writers(&self) -> Result<(), StorageError> {
        let idle = self.config.maintenance_interval.max(self.config.commit_interval * 10);
        let partitions: Vec<_> = self.partitions.read().values().cloned().collect();
        partitions.iter().try_for_each(|p| p.close_writer_if_idle(idle))
    }

    /// One turn of the commit thread: commit every partition; on the last
    /// turn close the writers, else run retention when it is due.
    fn cycle(&self, run: Run, last_maintenance: &mut Instant) -> Result<(), StorageError> {
        let committed = self.commit_all();
        if run == Run::Last {
            let partitions: Vec<_> = self.partitions.read().values().cloned().collect();
            for p in partitions {
                if let Err(e) = p.close(self.writer_config()) {
                    tracing::error!(error = %e, "closing a log partition failed; the WAL keeps its lines");
                }
            }
        } else if last_maintenance.elapsed() >= self.config.maintenance_interval {
            *last_maintenance = Instant::now();
            if let Err(e) = self.expire().and_then(|()| self.close_idle_writers()) {
                self.telemetry.errors.inc();
                tracing::error!(error = %e, "log retention failed; will retry");
            }
        }
        committed
    }
}

/// Lines acknowledged but not committed beyond which new ones are refused
/// (retryably): while the index cannot be written they are held in memory.
const MAX_UNSAVED_LINES: usize = 200_000;

impl Sink<LogRecord> for LogStore {
    fn consume(&self, batch: Batch<LogRecord>) -> Result<(), StorageError> {
        self.inner.consume(batch)
    }

    fn backlogged(&self) -> bool {
        self.inner.partitions.read().values().map(|p| p.unsaved_docs()).sum::<usize>() > MAX_UNSAVED_LINES
    }
}
