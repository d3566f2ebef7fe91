//! The metric store's head: every series of a tenant in memory, with a
//! postings index from label pairs to series, samples kept in time order.
//! Samples up to `out_of_order_window` older than a series' newest are
//! inserted in place; older ones are refused and counted.
//!
//! Replay: batches arrive in WAL order, and a batch whose sequence is not
//! beyond the last applied is skipped, so replay never duplicates a sample.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::Labels;
use super::otlp::{self, DeltaState, Meta, Sample, is_stale};
use crate::StorageError;
use crate::model::{MetricPoint, Tenant};
use crate::sink::{Batch, Sink};

#[derive(Clone, Debug)]
pub struct MetricStoreConfig {
    /// How far behind a series' newest sample a sample may still arrive.
    pub out_of_order_window: Duration,
}

impl Default for MetricStoreConfig {
    fn default() -> Self {
        Self { out_of_order_window: Duration::from_secs(600) }
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
    ids: HashMap<Labels, u32>,
    series: Vec<Series>,
    /// label name → value → series ids (ascending).
    postings: HashMap<String, HashMap<String, Vec<u32>>>,
    meta: BTreeMap<String, Meta>,
    delta: DeltaState,
}

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
        for (k, v) in labels.iter() {
            self.postings.entry(k.to_owned()).or_default().entry(v.to_owned()).or_default().push(id);
        }
        self.ids.insert(labels.clone(), id);
        self.series.push(Series { labels: labels.clone(), samples: Vec::new() });
        id
    }

    fn append(&mut self, s: Sample, window_ms: i64, done: &mut Appended) {
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

    /// Series ids that may match: the intersection of the postings of the
    /// `label="value"` hints, or every series.
    fn candidates(&self, hints: &[(&str, &str)]) -> Vec<u32> {
        let mut lists = hints
            .iter()
            .map(|(k, v)| self.postings.get(*k).and_then(|vals| vals.get(*v)).map(Vec::as_slice).unwrap_or_default());
        let Some(first) = lists.next() else {
            return (0..self.series.len() as u32).collect();
        };
        let mut ids = first.to_vec();
        for list in lists {
            ids.retain(|id| list.binary_search(id).is_ok());
        }
        ids
    }
}

#[derive(Default)]
struct Metrics {
    samples: Counter,
    too_old: Counter,
    duplicates: Counter,
    series: Gauge,
}

/// The metric store; cheap to clone.
#[derive(Clone, Default)]
pub struct MetricStore {
    config: MetricStoreConfig,
    tenants: Arc<RwLock<HashMap<Tenant, Arc<RwLock<TenantSeries>>>>>,
    applied: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl MetricStore {
    pub fn new(config: MetricStoreConfig) -> Self {
        Self { config, ..Self::default() }
    }

    pub fn register_metrics(&self, registry: &mut Registry) {
        let m = &self.metrics;
        registry.register("sightline_metrics_samples", "Samples appended to the metric store", m.samples.clone());
        registry.register(
            "sightline_metrics_out_of_order_refused",
            "Samples refused: older than the out-of-order window",
            m.too_old.clone(),
        );
        registry.register(
            "sightline_metrics_duplicate_refused",
            "Samples refused: another value at a stored timestamp",
            m.duplicates.clone(),
        );
        registry.register("sightline_metrics_series", "Series in the metric store", m.series.clone());
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
        for s in samples {
            t.append(s, window, &mut done);
        }
        for (name, m) in meta {
            t.meta.insert(name, m);
        }
        self.count(&done, (t.series.len() - before) as i64);
        done
    }

    fn count(&self, done: &Appended, new_series: i64) {
        self.metrics.samples.inc_by(done.samples);
        self.metrics.too_old.inc_by(done.too_old);
        self.metrics.duplicates.inc_by(done.duplicates);
        self.metrics.series.inc_by(new_series);
    }

    /// Appends OTLP points, converted to Prometheus series.
    pub fn append_otlp(&self, tenant: &Tenant, points: &[MetricPoint]) -> Appended {
        let t = self.tenant_or_new(tenant);
        let mut t = t.write();
        let before = t.series.len();
        let window = self.config.out_of_order_window.as_millis() as i64;
        let mut done = Appended::default();
        let mut samples = Vec::new();
        let mut resources: Vec<*const crate::model::Resource> = Vec::new();
        for p in points {
            let (family, meta) = otlp::convert(p, &mut t.delta, &mut samples);
            if p.scope.name == otlp::REMOTE_WRITE_SCOPE {
                t.meta.entry(family).or_insert(meta);
                continue;
            }
            t.meta.insert(family, meta);
            let resource = Arc::as_ptr(&p.resource);
            if !resources.contains(&resource) {
                resources.push(resource);
                let info = otlp::target_info(&p.resource);
                samples.push(Sample { labels: info, t: (p.time_unix_nano / 1_000_000) as i64, v: 1.0 });
            }
        }
        for s in samples {
            t.append(s, window, &mut done);
        }
        if !resources.is_empty() && !t.meta.contains_key("target_info") {
            let meta = Meta { kind: "gauge", help: "Target metadata".into(), unit: String::new() };
            t.meta.insert("target_info".into(), meta);
        }
        self.count(&done, (t.series.len() - before) as i64);
        done
    }

    /// The series of a tenant that pass `filter`, with their samples in
    /// `mint..=maxt` (ms). `hints` are `label="value"` pairs every match
    /// must have (to use the index); `filter` decides.
    pub fn select(
        &self,
        tenant: &Tenant,
        hints: &[(&str, &str)],
        filter: impl Fn(&Labels) -> bool,
        mint: i64,
        maxt: i64,
    ) -> Vec<Series> {
        let Some(t) = self.tenant(tenant) else {
            return Vec::new();
        };
        let t = t.read();
        t.candidates(hints)
            .into_iter()
            .map(|id| &t.series[id as usize])
            .filter(|s| filter(&s.labels))
            .map(|s| {
                let from = s.samples.partition_point(|(ts, _)| *ts < mint);
                let to = s.samples.partition_point(|(ts, _)| *ts <= maxt);
                Series { labels: s.labels.clone(), samples: s.samples[from..to].to_vec() }
            })
            .filter(|s| !s.samples.is_empty())
            .collect()
    }

    /// Label names of the series that pass `filter` and have a sample in range.
    pub fn label_names(&self, tenant: &Tenant, filter: impl Fn(&Labels) -> bool, mint: i64, maxt: i64) -> Vec<String> {
        let names: BTreeSet<String> = self
            .select(tenant, &[], filter, mint, maxt)
            .iter()
            .flat_map(|s| s.labels.iter().map(|(k, _)| k.to_owned()).collect::<Vec<_>>())
            .collect();
        names.into_iter().collect()
    }

    /// Values of a label among the series that pass `filter`, in range.
    pub fn label_values(
        &self,
        tenant: &Tenant,
        name: &str,
        filter: impl Fn(&Labels) -> bool,
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let values: BTreeSet<String> = self
            .select(tenant, &[], filter, mint, maxt)
            .iter()
            .filter_map(|s| s.labels.get(name).map(str::to_owned))
            .collect();
        values.into_iter().collect()
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

    /// Samples held for a tenant.
    pub fn sample_count(&self, tenant: &Tenant) -> u64 {
        self.tenant(tenant).map_or(0, |t| t.read().series.iter().map(|s| s.samples.len() as u64).sum())
    }
}

impl Sink<MetricPoint> for MetricStore {
    fn consume(&self, batch: Batch<MetricPoint>) -> Result<(), StorageError> {
        if self.applied.fetch_max(batch.wal_seq, Ordering::AcqRel) < batch.wal_seq {
            self.append_otlp(&batch.tenant, &batch.items);
        }
        Ok(())
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
        let store = MetricStore::new(MetricStoreConfig { out_of_order_window: Duration::from_secs(60) });
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
        let got = store.select(&t, &[("job", "x")], |_| true, 0, i64::MAX);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples, [(90_000, 2.0), (100_000, 1.0)]);
        assert_eq!(store.select(&t, &[("__name__", "up")], |l| l.get("job") == Some("y"), 0, 4_000).len(), 0);
        assert_eq!(store.label_values(&t, "job", |_| true, 0, i64::MAX), ["x", "y"]);
        assert!(store.select(&Tenant::new("b").expect("tenant"), &[], |_| true, 0, i64::MAX).is_empty());
    }
}
