//! Query hot paths: assembling a trace of 10,000 spans (tree, skew
//! adjustment, critical path), and PromQL range queries over 1,000 series
//! held in the metric store's head.
//!
//! Run: `cargo bench -p sightline-query --bench query`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sightline_loadgen::Rng;
use sightline_loadgen::traces::{self, TraceShape};
use sightline_query::promql;
use sightline_query::traces::assemble::assemble;
use sightline_storage::metrics::{Labels, MetricStore, MetricStoreConfig, Sample};
use sightline_storage::model::Tenant;

fn trace_assembly(c: &mut Criterion) {
    let shape = TraceShape { spans: 10_000..=10_000, ..TraceShape::FIXED };
    let (request, ids) = traces::request(&mut Rng::new(3), 1, &shape, 1_700_000_000_000_000_000, 1_000_000_000);
    let spans = sightline_collector::convert::spans(request);
    let id = sightline_storage::model::TraceId(ids[0]);
    let mut g = c.benchmark_group("trace assembly");
    g.throughput(Throughput::Elements(spans.len() as u64));
    g.bench_function("10,000 spans, skew adjustment on", |b| {
        b.iter_batched(|| spans.clone(), |s| assemble(id, s, false, true), criterion::BatchSize::LargeInput)
    });
    g.finish();
}

/// 1,000 series (100 hosts × 10 CPU modes) of a counter, 6 h at 15 s.
fn store(runtime: &tokio::runtime::Runtime) -> (MetricStore, Tenant, i64) {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let objects = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir).expect("fs"));
    let config = MetricStoreConfig { cut_interval: Duration::from_secs(86_400), ..Default::default() };
    let store = runtime.block_on(MetricStore::open(objects, config, None)).expect("open");
    let tenant = Tenant::new("bench").expect("tenant");
    let series: Vec<Labels> = (0..100)
        .flat_map(|h| {
            (0..10).map(move |m| {
                Labels::new(vec![
                    ("__name__".into(), "node_cpu_seconds_total".into()),
                    ("instance".into(), format!("host-{h:03}:9100")),
                    ("mode".into(), format!("mode{m}")),
                ])
            })
        })
        .collect();
    let start = 1_700_000_000_000i64;
    let mut rng = Rng::new(5);
    let mut values = vec![0.0; series.len()];
    for step in 0..(6 * 240) {
        let batch = series
            .iter()
            .enumerate()
            .map(|(k, labels)| {
                values[k] += (rng.below(1000) as f64) / 100.0;
                Sample { labels: labels.clone(), t: start + step * 15_000, v: values[k] }
            })
            .collect();
        store.append(&tenant, batch, Vec::new());
    }
    (store, tenant, start + 6 * 3_600_000)
}

fn promql_range(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (store, tenant, end) = store(&runtime);
    let mut g = c.benchmark_group("promql range, 1,000 series, 6 h at 60 s");
    g.sample_size(20);
    for q in [
        "sum by (mode) (rate(node_cpu_seconds_total[5m]))",
        "topk(5, sum by (instance) (irate(node_cpu_seconds_total{mode!=\"mode0\"}[1m])))",
        "avg by (instance) (avg_over_time(node_cpu_seconds_total[10m]))",
    ] {
        g.bench_function(q, |b| {
            b.iter(|| {
                promql::range(
                    &store,
                    &tenant,
                    &sightline_query::limits::Budget::unlimited(),
                    q,
                    end - 6 * 3_600_000,
                    end,
                    60_000,
                    300_000,
                )
                .expect("evaluates")
            })
        });
    }
    g.finish();
}

criterion_group!(query, trace_assembly, promql_range);
criterion_main!(query);
