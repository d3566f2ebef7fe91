//! The metric store: a head of recent samples in memory (every series of a
//! tenant, a postings index from label pairs to series, samples in time
//! order), cut into immutable Parquet blocks of `block_duration` by a
//! background thread, and the blocks behind `object_store`.
//!
//! Invariants:
//! - Samples up to `out_of_order_window` older than a series' newest are
//!   inserted in place; older ones, and any sample older than the last cut
//!   (`cut_before`), are refused and counted, never silently dropped.
//! - A window is cut once its end is `out_of_order_window` in the past:
//!   `cut_before` moves first, then the block is published, then the head
//!   lets go of the samples (queries merge blocks and head, so none is seen
//!   twice or missed).
//! - The WAL is released for metrics up to the last batch whose samples are
//!   all older than `cut_before`, i.e. in published blocks. On replay,
//!   samples older than the newest block's end are refused (they are in it),
//!   and a batch whose sequence is not beyond the last applied is skipped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::block;
use super::labels::{Labels, LabelsMap, Postings};
use super::samples::{self, DeltaState, Meta, Point, Sample, is_stale};
use crate::StorageError;
use crate::model::{SpanId, Tenant, TraceId};
use crate::sink::{Batch, Refused, Sink};
use crate::worker::Worker;
#[cfg(test)]
mod block_tests;
mod maintenance;

use maintenance::{Blocks, Published};

#[derive(Clone, Debug)]
pub struct MetricStoreConfig {
    /// How far behind a series' newest sample a sample may still arrive.
    pub out_of_order_window: Duration,
    /// The time each block covers.
    pub block_duration: Duration,
    /// Blocks whose samples are all older than this are deleted.
    pub retention: Duration,
    /// How often the background thread cuts blocks and applies retention.
    pub cut_interval: Duration,
    /// Blocks within one window of this length are merged into one, once
    /// the window is wholly cut.
    pub compaction_window: Duration,
}

impl Default for MetricStoreConfig {
    fn default() -> Self {
        Self {
            out_of_order_window: Duration::from_secs(600),
            block_duration: Duration::from_secs(2 * 3600),
            retention: Duration::from_secs(15 * 24 * 3600),
            cut_interval: Duration::from_secs(30),
            compaction_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// One series: its labels and samples `(ms, value)` in time order.
#[derive(Clone, Debug)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

#[derive(Default)]
struct TenantSeries {
    ids: LabelsMap<u32>,
    series: Vec<Series>,
    postings: Postings,
    meta: BTreeMap<String, Meta>,
    delta: DeltaState,
    /// The newest exemplars of each series (in memory only).
    exemplars: HashMap<u32, VecDeque<Exemplar>>,
}

/// An exemplar kept with a series: a sample of one traced request.
#[derive(Clone, Debug, PartialEq)]
pub struct Exemplar {
    /// Milliseconds since the epoch.
    pub t: i64,
    pub v: f64,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
}

/// Exemplars kept per series.
const EXEMPLARS_PER_SERIES: usize = 16;

/// What an append did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Appended {
    pub samples: u64,
    /// Older than the out-of-order window: refused.
    pub too_old: u64,
    /// Same timestamp as a stored sample with another value: refused.
    pub duplicates: u64,
}

impl TenantSeries {
    fn id(&mut self, labels: &Labels) -> u32 {
        if let Some(id) = self.ids.get(labels) {
            return *id;
        }
        let id = self.series.len() as u32;
        self.postings.add(id, labels);
        self.ids.insert(labels.clone(), id);
        self.series.push(Series { labels: labels.clone(), samples: Vec::new() });
        id
    }

    fn append(&mut self, s: Sample, window_ms: i64, cut_before: i64, done: &mut Appended) {
        if s.t < cut_before {
            done.too_old += 1;
            return;
        }
        let id = self.id(&s.labels);
        let samples = &mut self.series[id as usize].samples;
        match samples.last() {
            None => samples.push((s.t, s.v)),
            Some(&(t, _)) if s.t > t => samples.push((s.t, s.v)),
            Some(&(t, _)) if s.t < t - window_ms => {
                done.too_old += 1;
                return;
            }
            _ => match samples.binary_search_by_key(&s.t, |(t, _)| *t) {
                Ok(i) if samples[i].1.to_bits() == s.v.to_bits() => return,
                Ok(_) => {
                    done.duplicates += 1;
                    return;
                }
                Err(i) => samples.insert(i, (s.t, s.v)),
            },
        }
        done.samples += 1;
    }

    /// Series ids that may match the `label="value"` hints.
    fn candidates(&self, hints: &[(&str, &str)]) -> Vec<u32> {
        self.postings.candidates(hints, self.series.len())
    }
}

crate::telemetry! {
    /// The store's own metrics, served on `/metrics` once registered.
    struct MetricTelemetry("sightline_metrics") {
        /// Samples appended to the metric store
        samples: Counter,
        /// Samples refused: older than the out-of-order window
        out_of_order_refused: Counter,
        /// Samples refused: another value at a stored timestamp
        duplicate_refused: Counter,
        /// Series in the metric store
        series: Gauge,
        /// Published metric blocks
        blocks: Gauge,
        /// Samples written into blocks
        block_samples: Counter,
        /// Metric blocks merged into longer ones
        compactions: Counter,
        /// Failed block cuts or deletions
        errors: Counter,
    }
}

/// The metric store; cheap to clone.
#[derive(Clone, Default)]
pub struct MetricStore {
    config: MetricStoreConfig,
    tenants: Arc<RwLock<HashMap<Tenant, Arc<RwLock<TenantSeries>>>>>,
    applied: Arc<AtomicU64>,
    telemetry: Arc<MetricTelemetry>,
    /// Samples older than this (ms) are in blocks; the head refuses them.
    cut_before: Arc<AtomicI64>,
    blocks: Option<Arc<Blocks>>,
    /// Set once the WAL has been replayed: cutting earlier would close a
    /// window whose acknowledged samples are still being replayed, and
    /// the head would then refuse them.
    replayed: Arc<AtomicBool>,
    /// Cuts, compacts and expires blocks every `cut_interval`.
    worker: Arc<Mutex<Option<Worker>>>,
}

impl MetricStore {
    /// A store that keeps everything in memory (no blocks).
    pub fn new(config: MetricStoreConfig) -> Self {
        Self { config, cut_before: Arc::new(AtomicI64::new(i64::MIN)), ..Self::default() }
    }

    /// Adds the store's metrics to `registry` (`sightline_metrics_*`).
    pub fn register_telemetry(&self, registry: &mut Registry) {
        self.telemetry.register(registry);
    }

    fn tenant(&self, tenant: &Tenant) -> Option<Arc<RwLock<TenantSeries>>> {
        self.tenants.read().get(tenant).cloned()
    }

    fn tenant_or_new(&self, tenant: &Tenant) -> Arc<RwLock<TenantSeries>> {
        if let Some(t) = self.tenant(tenant) {
            return t;
        }
        self.tenants.write().entry(tenant.clone()).or_default().clone()
    }

    /// Appends Prometheus samples (remote write, derived metrics).
    pub fn append(&self, tenant: &Tenant, samples: Vec<Sample>, meta: Vec<(String, Meta)>) -> Appended {
        let t = self.tenant_or_new(tenant);
        let mut t = t.write();
        let before = t.series.len();
        let window = self.config.out_of_order_window.as_millis() as i64;
        let mut done = Appended::default();
        let cut_before = self.cut_before.load(Ordering::Acquire);
        for s in samples {
            t.append(s, window, cut_before, &mut done);
        }
        for (name, m) in meta {
            t.meta.insert(name, m);
        }
        self.count(&done, (t.series.len() - before) as i64);
        done
    }

    fn count(&self, done: &Appended, new_series: i64) {
        self.telemetry.samples.inc_by(done.samples);
        self.telemetry.out_of_order_refused.inc_by(done.too_old);
        self.telemetry.duplicate_refused.inc_by(done.duplicates);
        self.telemetry.series.inc_by(new_series);
    }

    /// Appends data points; returns what was appended and how many of the
    /// points sent (not derived) had a sample refused.
    pub fn append_points(&self, tenant: &Tenant, points: Vec<Point>) -> (Appended, u64) {
        let t = self.tenant_or_new(tenant);
        let mut t = t.write();
        let before = t.series.len();
        let window = self.config.out_of_order_window.as_millis() as i64;
        let cut_before = self.cut_before.load(Ordering::Acquire);
        let mut done = Appended::default();
        let mut refused_points = 0;
        for mut p in points {
            if p.delta {
                samples::accumulate(&mut t.delta, &mut p.samples);
            }
            let refused_before = done.too_old + done.duplicates;
            for (i, e) in p.exemplars {
                if let Some(s) = p.samples.get(i) {
                    let id = t.id(&s.labels);
                    let kept = t.exemplars.entry(id).or_default();
                    if kept.len() == EXEMPLARS_PER_SERIES {
                        kept.pop_front();
                    }
                    kept.push_back(e);
                }
            }
            for s in p.samples {
                t.append(s, window, cut_before, &mut done);
            }
            if done.too_old + done.duplicates > refused_before && !p.derived {
                refused_points += 1;
            }
            match p.meta {
                Some(meta) => {
                    t.meta.insert(p.family, meta);
                }
                None => {
                    t.meta.entry(p.family).or_insert_with(Meta::unknown);
                }
            }
        }
        self.count(&done, (t.series.len() - before) as i64);
        (done, refused_points)
    }

    /// The series of a tenant that pass `filter`, with their samples in
    /// `mint..=maxt` (ms), from the blocks and the head. `hints` are
    /// `label="value"` pairs every match must have (to use the indexes);
    /// `filter` decides. Reads blocks: call it off the async reactor.
    pub fn select(
        &self,
        tenant: &Tenant,
        hints: &[(&str, &str)],
        filter: impl Fn(&Labels) -> bool,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        if let Some(b) = &self.blocks {
            let sets: Vec<Arc<Published>> = b
                .published
                .read()
                .get(tenant)
                .map(|l| l.iter().filter(|p| p.meta.min_t <= maxt && mint <= p.meta.max_t).cloned().collect())
                .unwrap_or_default();
            for p in sets {
                let ids: Vec<u32> =
                    p.index.candidates(hints).into_iter().filter(|id| filter(&p.index.labels[*id as usize])).collect();
                if ids.is_empty() {
                    continue;
                }
                let found = b.runtime.block_on(block::read(b.objects.clone(), &p.meta, &p.index, &ids, mint, maxt))?;
                for (id, samples) in found {
                    merged.entry(p.index.labels[id as usize].clone()).or_default().extend(samples);
                }
            }
        }
        if let Some(t) = self.tenant(tenant) {
            let t = t.read();
            for s in t.candidates(hints).into_iter().map(|id| &t.series[id as usize]).filter(|s| filter(&s.labels)) {
                let from = s.samples.partition_point(|(ts, _)| *ts < mint);
                let to = s.samples.partition_point(|(ts, _)| *ts <= maxt);
                if from < to {
                    merged.entry(s.labels.clone()).or_default().extend_from_slice(&s.samples[from..to]);
                }
            }
        }
        Ok(merged
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|x| x.0);
                samples.dedup_by_key(|x| x.0);
                Series { labels, samples }
            })
            .collect())
    }

    /// The exemplars in `mint..=maxt` (ms) of the series that pass `filter`.
    pub fn exemplars(
        &self,
        tenant: &Tenant,
        hints: &[(&str, &str)],
        filter: impl Fn(&Labels) -> bool,
        mint: i64,
        maxt: i64,
    ) -> Vec<(Labels, Vec<Exemplar>)> {
        let Some(t) = self.tenant(tenant) else {
            return Vec::new();
        };
        let t = t.read();
        let mut out = Vec::new();
        for id in t.candidates(hints) {
            let s = &t.series[id as usize];
            if !filter(&s.labels) {
                continue;
            }
            let kept: Vec<Exemplar> =
                t.exemplars.get(&id).into_iter().flatten().filter(|e| mint <= e.t && e.t <= maxt).cloned().collect();
            if !kept.is_empty() {
                out.push((s.labels.clone(), kept));
            }
        }
        out
    }

    /// Metadata by metric family.
    pub fn metadata(&self, tenant: &Tenant) -> BTreeMap<String, Meta> {
        self.tenant(tenant).map(|t| t.read().meta.clone()).unwrap_or_default()
    }

    /// The newest sample of every live series of a tenant (not stale).
    pub fn latest(&self, tenant: &Tenant) -> Vec<(Labels, i64, f64)> {
        let Some(t) = self.tenant(tenant) else {
            return Vec::new();
        };
        let t = t.read();
        t.series
            .iter()
            .filter_map(|s| s.samples.last().filter(|(_, v)| !is_stale(*v)).map(|&(ts, v)| (s.labels.clone(), ts, v)))
            .collect()
    }

    /// The tenants holding series.
    pub fn tenants(&self) -> Vec<Tenant> {
        self.tenants.read().keys().cloned().collect()
    }

    /// Samples held for a tenant, in the head and in blocks.
    pub fn sample_count(&self, tenant: &Tenant) -> u64 {
        let head: u64 = self.tenant(tenant).map_or(0, |t| t.read().series.iter().map(|s| s.samples.len() as u64).sum());
        let blocks: u64 = self
            .blocks
            .as_ref()
            .and_then(|b| b.published.read().get(tenant).map(|l| l.iter().map(|p| p.meta.samples).sum()))
            .unwrap_or(0);
        head + blocks
    }
}

impl Sink<Point> for MetricStore {
    fn consume(&self, batch: Batch<Point>) -> Result<(), StorageError> {
        self.consume_counted(batch).map(|_| ())
    }

    fn consume_counted(&self, batch: Batch<Point>) -> Result<Refused, StorageError> {
        let mut refused = Refused::default();
        if self.applied.fetch_max(batch.wal_seq, Ordering::AcqRel) < batch.wal_seq {
            let newest = batch.items.iter().flat_map(|p| &p.samples).map(|s| s.t).max().unwrap_or(i64::MIN);
            let (_, points) = self.append_points(&batch.tenant, batch.items);
            if points > 0 {
                refused = Refused {
                    count: points,
                    reason: "a sample older than the out-of-order window or than the last block, or another value at a stored time".into(),
                };
            }
            if let Some(b) = &self.blocks {
                b.pending.lock().push_back((batch.wal_seq, newest));
            }
        }
        Ok(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, job: &str, t: i64, v: f64) -> Sample {
        Sample { labels: Labels::new(vec![("__name__".into(), name.into()), ("job".into(), job.into())]), t, v }
    }

    #[test]
    fn out_of_order_within_the_window_and_refusals() {
        let store =
            MetricStore::new(MetricStoreConfig { out_of_order_window: Duration::from_secs(60), ..Default::default() });
        let t = Tenant::new("a").expect("tenant");
        let done = store.append(
            &t,
            vec![
                sample("up", "x", 100_000, 1.0),
                sample("up", "x", 90_000, 2.0),  // within the window
                sample("up", "x", 10_000, 3.0),  // too old
                sample("up", "x", 100_000, 1.0), // the same sample again: ignored
                sample("up", "x", 100_000, 9.0), // another value: refused
                sample("up", "y", 5_000, 1.0),   // another series
            ],
            Vec::new(),
        );
        assert_eq!(done, Appended { samples: 3, too_old: 1, duplicates: 1 });
        let got = store.select(&t, &[("job", "x")], |_| true, 0, i64::MAX).expect("select");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, [(90_000, 2.0), (100_000, 1.0)]);
        assert_eq!(
            store.select(&t, &[("__name__", "up")], |l| l.get("job") == Some("y"), 0, 4_000).expect("select").len(),
            0
        );
        let jobs: Vec<_> = store
            .select(&t, &[], |_| true, 0, i64::MAX)
            .expect("select")
            .iter()
            .filter_map(|s| s.labels.get("job").map(str::to_owned))
            .collect();
        assert_eq!(jobs, ["x", "y"]);
        assert!(
            store.select(&Tenant::new("b").expect("tenant"), &[], |_| true, 0, i64::MAX).expect("select").is_empty()
        );
    }
}
