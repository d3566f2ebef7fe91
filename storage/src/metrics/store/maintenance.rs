//! The metric store's life on disk: opening its blocks, cutting the head
//! into blocks, compaction, retention, releasing the WAL, and the
//! background thread that does them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::{Mutex, RwLock};

use super::{MetricStore, MetricStoreConfig, TenantSeries};
use crate::StorageError;
use crate::metrics::block::{self, BlockIndex, BlockMeta};
use crate::metrics::labels::Labels;
use crate::metrics::samples;
use crate::model::{Signal, Tenant};
use crate::wal::Wal;
use crate::worker::{Run, Worker};

/// A compacted block lays its rows out in time slices of this many blocks'
/// duration (6 h by default): a query over a few hours reads one or two.
const COMPACTED_SLICE_BLOCKS: i64 = 3;

/// A delta series idle this long (ms) loses its running sum.
const DELTA_IDLE_MS: i64 = 3_600_000;

/// A published block and its index.
pub(super) struct Published {
    pub(super) meta: BlockMeta,
    pub(super) index: BlockIndex,
}

/// The on-disk side: published blocks and what the WAL still holds.
pub(super) struct Blocks {
    pub(super) objects: Arc<dyn ObjectStore>,
    pub(super) runtime: tokio::runtime::Handle,
    pub(super) published: RwLock<HashMap<Tenant, Vec<Arc<Published>>>>,
    pub(super) wal: Option<Wal>,
    /// `(WAL sequence, newest sample time)` of batches not yet released.
    pub(super) pending: Mutex<VecDeque<(u64, i64)>>,
    pub(super) next_id: AtomicU64,
}

impl MetricStore {
    /// Opens the blocks in `objects`, deletes unpublished files, and starts
    /// the thread that cuts the head into blocks. Blocks release `wal`.
    pub async fn open(
        objects: Arc<dyn ObjectStore>,
        config: MetricStoreConfig,
        wal: Option<Wal>,
    ) -> Result<MetricStore, StorageError> {
        let (metas, orphans) = block::list(objects.as_ref()).await?;
        for o in orphans {
            tracing::warn!(path = %o, "deleting a metric block file that was never published");
            let _ = objects.delete(&o).await;
        }
        let mut published: HashMap<Tenant, Vec<Arc<Published>>> = HashMap::new();
        let mut cut_before = i64::MIN;
        // Blocks that a published compaction replaced: a crash came before
        // their deletion.
        let replaced: std::collections::HashSet<(String, String)> =
            metas.iter().flat_map(|m| m.compacted_from.iter().map(move |id| (m.tenant.clone(), id.clone()))).collect();
        for meta in metas {
            if replaced.contains(&(meta.tenant.clone(), meta.id.clone())) {
                block::delete(objects.as_ref(), &meta.tenant, &meta.id).await?;
                continue;
            }
            let tenant = Tenant::new(&meta.tenant).map_err(|e| StorageError::Block(e.to_string()))?;
            let index = block::load_index(objects.clone(), &meta).await?;
            let window = config.block_duration.as_millis() as i64;
            // Blocks hold whole cut windows: the cut stood at the end of the
            // window of the newest sample.
            cut_before = cut_before.max(meta.max_t - meta.max_t.rem_euclid(window) + window);
            published.entry(tenant).or_default().push(Arc::new(Published { meta, index }));
        }
        let store = MetricStore {
            config,
            cut_before: Arc::new(AtomicI64::new(cut_before)),
            blocks: Some(Arc::new(Blocks {
                objects,
                runtime: tokio::runtime::Handle::current(),
                published: RwLock::new(published),
                wal,
                pending: Mutex::new(VecDeque::new()),
                next_id: AtomicU64::new(0),
            })),
            ..MetricStore::default()
        };
        store.telemetry.blocks.set(store.block_count() as i64);
        let (runner, failed) = (store.clone(), store.telemetry.clone());
        let worker = Worker::spawn(
            "metric-blocks",
            store.config.cut_interval,
            move |run| if run == Run::Regular { runner.maintain() } else { Ok(()) },
            move |e, _| {
                failed.errors.inc();
                tracing::error!(error = %e, "cutting metric blocks failed; the samples stay in memory and in the WAL");
            },
        )?;
        *store.worker.lock() = Some(worker);
        Ok(store)
    }

    pub(super) fn block_count(&self) -> usize {
        self.blocks.as_ref().map_or(0, |b| b.published.read().values().map(Vec::len).sum())
    }

    /// One turn of the block thread, once the WAL is replayed: cut the
    /// windows that closed, compact, apply retention.
    fn maintain(&self) -> Result<(), StorageError> {
        if !self.replayed.load(Ordering::Acquire) {
            return Ok(());
        }
        let now = (crate::model::now_unix_nanos() / 1_000_000) as i64;
        self.expire_deltas(now);
        self.cut(now).and_then(|()| self.compact()).and_then(|()| self.expire(now))
    }

    /// Lets the block thread cut (from its next interval on), once every
    /// record of the WAL has been given to the store.
    pub fn replay_done(&self) {
        self.replayed.store(true, Ordering::Release);
    }

    /// Stops the block thread (the head stays in the WAL). Blocks.
    pub fn shutdown_blocking(&self) {
        if let Some(worker) = self.worker.lock().take() {
            worker.shutdown();
        }
    }

    /// Cuts every window that ended `out_of_order_window` before `now`
    /// (ms) into blocks, then releases the WAL. Blocks.
    pub fn cut(&self, now: i64) -> Result<(), StorageError> {
        let Some(b) = &self.blocks else {
            return Ok(());
        };
        let window = (self.config.block_duration.as_millis() as i64).max(1);
        let late = self.config.out_of_order_window.as_millis() as i64;
        loop {
            let tenants: Vec<(Tenant, Arc<RwLock<TenantSeries>>)> =
                self.tenants.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let oldest = tenants
                .iter()
                .filter_map(|(_, t)| t.read().series.iter().filter_map(|s| s.samples.first().map(|x| x.0)).min())
                .min();
            let Some(oldest) = oldest else { break };
            let end = oldest - oldest.rem_euclid(window) + window;
            if end + late > now {
                break;
            }
            self.cut_before.fetch_max(end, Ordering::AcqRel);
            for (tenant, series) in tenants {
                let taken: Vec<(Labels, Vec<(i64, f64)>)> = series
                    .read()
                    .series
                    .iter()
                    .map(|s| (s.labels.clone(), s.samples[..s.samples.partition_point(|x| x.0 < end)].to_vec()))
                    .filter(|(_, s)| !s.is_empty())
                    .collect();
                if taken.is_empty() {
                    continue;
                }
                let id = format!("{:013}-{:06}", end - window, b.next_id.fetch_add(1, Ordering::Relaxed) % 1_000_000);
                let (samples, table, meta) = block::encode(tenant.as_str(), id, taken, window)?;
                b.runtime.block_on(block::publish(b.objects.as_ref(), samples, table, &meta))?;
                let index = b.runtime.block_on(block::load_index(b.objects.clone(), &meta))?;
                self.telemetry.block_samples.inc_by(meta.samples);
                b.published.write().entry(tenant).or_default().push(Arc::new(Published { meta, index }));
                for s in &mut series.write().series {
                    let n = s.samples.partition_point(|x| x.0 < end);
                    s.samples.drain(..n);
                }
            }
            self.telemetry.blocks.set(self.block_count() as i64);
        }
        self.release()
    }

    /// Merges the blocks of each wholly cut compaction window into one
    /// block: published first, listing what it replaces, then the inputs
    /// deleted. Blocks; holds one window's samples in memory.
    pub fn compact(&self) -> Result<(), StorageError> {
        let Some(b) = &self.blocks else {
            return Ok(());
        };
        let window = (self.config.compaction_window.as_millis() as i64).max(1);
        let cut_before = self.cut_before.load(Ordering::Acquire);
        let tenants: Vec<Tenant> = b.published.read().keys().cloned().collect();
        for tenant in tenants {
            let list = b.published.read().get(&tenant).cloned().unwrap_or_default();
            let mut by_window: BTreeMap<i64, Vec<Arc<Published>>> = BTreeMap::new();
            for p in list {
                let start = p.meta.min_t - p.meta.min_t.rem_euclid(window);
                if p.meta.max_t < start + window {
                    by_window.entry(start).or_default().push(p);
                }
            }
            for (start, group) in by_window {
                if group.len() < 2 || start + window > cut_before {
                    continue;
                }
                let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
                for p in &group {
                    let ids: Vec<u32> = (0..p.index.labels.len() as u32).collect();
                    let data = b.runtime.block_on(block::read(
                        b.objects.clone(),
                        &p.meta,
                        &p.index,
                        &ids,
                        i64::MIN,
                        i64::MAX,
                    ))?;
                    for (id, samples) in data {
                        merged.entry(p.index.labels[id as usize].clone()).or_default().extend(samples);
                    }
                }
                let series: Vec<_> = merged
                    .into_iter()
                    .map(|(l, mut s)| {
                        s.sort_by_key(|x| x.0);
                        s.dedup_by_key(|x| x.0);
                        (l, s)
                    })
                    .collect();
                let id = format!("{start:013}-c{:06}", b.next_id.fetch_add(1, Ordering::Relaxed) % 1_000_000);
                let slice = (self.config.block_duration.as_millis() as i64 * COMPACTED_SLICE_BLOCKS).max(1);
                let (samples, table, mut meta) = block::encode(tenant.as_str(), id, series, slice)?;
                meta.compacted_from = group.iter().map(|p| p.meta.id.clone()).collect();
                b.runtime.block_on(block::publish(b.objects.as_ref(), samples, table, &meta))?;
                let index = b.runtime.block_on(block::load_index(b.objects.clone(), &meta))?;
                {
                    let mut published = b.published.write();
                    let list = published.entry(tenant.clone()).or_default();
                    list.retain(|p| !meta.compacted_from.contains(&p.meta.id));
                    list.push(Arc::new(Published { meta: meta.clone(), index }));
                }
                for p in &group {
                    b.runtime.block_on(block::delete(b.objects.as_ref(), &p.meta.tenant, &p.meta.id))?;
                }
                self.telemetry.compactions.inc();
            }
        }
        self.telemetry.blocks.set(self.block_count() as i64);
        Ok(())
    }

    /// Forgets delta running sums idle for an hour (bounded state).
    fn expire_deltas(&self, now: i64) {
        for t in self.tenants.read().values() {
            samples::expire_deltas(&mut t.write().delta, now - DELTA_IDLE_MS);
        }
    }

    /// Releases the WAL up to the last batch whose samples are all in blocks.
    fn release(&self) -> Result<(), StorageError> {
        let Some(b) = &self.blocks else {
            return Ok(());
        };
        let cut_before = self.cut_before.load(Ordering::Acquire);
        let mut last = None;
        {
            let mut pending = b.pending.lock();
            while pending.front().is_some_and(|(_, max_t)| *max_t < cut_before) {
                last = pending.pop_front().map(|(seq, _)| seq);
            }
        }
        if let (Some(seq), Some(wal)) = (last, &b.wal) {
            wal.release(Signal::Metrics, seq)?;
        }
        Ok(())
    }

    /// Deletes the blocks whose samples are all older than the retention.
    pub fn expire(&self, now: i64) -> Result<(), StorageError> {
        let Some(b) = &self.blocks else {
            return Ok(());
        };
        let horizon = now - self.config.retention.as_millis() as i64;
        let expired: Vec<Arc<Published>> = {
            let mut published = b.published.write();
            let mut out = Vec::new();
            for list in published.values_mut() {
                out.extend(list.iter().filter(|p| p.meta.max_t < horizon).cloned());
                list.retain(|p| p.meta.max_t >= horizon);
            }
            out
        };
        for p in expired {
            b.runtime.block_on(block::delete(b.objects.as_ref(), &p.meta.tenant, &p.meta.id))?;
        }
        self.telemetry.blocks.set(self.block_count() as i64);
        Ok(())
    }
}
