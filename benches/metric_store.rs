//! Metric store benchmark on a node-exporter-like workload: ingest rate into
//! the store, bytes on disk per sample after cutting into blocks beside
//! Prometheus's TSDB (`promtool tsdb create-blocks-from openmetrics`) on the
//! same samples, and `query_range` latency of a `sum by (…) (rate(…[5m]))`
//! over 1,000 series and 6 hours at a 15 s step.
//!
//! Run: `cargo bench --bench metric_store`. Options via environment:
//! `BENCH_HOSTS` (default 100; 100 series per host), `BENCH_HOURS` (default
//! 24), `BENCH_QUERY_RUNS` (default 10), `BENCH_SKIP_PROMETHEUS=1`.

use sightline_testkit::{measure, prometheus_tsdb};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{dir_bytes, env, percentile};
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use sightline_loadgen::Rng;
use sightline_storage::metrics::{Labels, MetricStore, MetricStoreConfig, Sample};
use sightline_storage::model::Tenant;

const STEP_MS: i64 = 15_000;
const MODES: [&str; 8] = ["user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice"];

/// One host's 100 series: CPU seconds per core and mode (counters), memory,
/// filesystem and load gauges, network and disk byte counters.
fn host_series(host: usize) -> Vec<(Labels, bool, f64)> {
    let instance = format!("host-{host:03}:9100");
    let l = |pairs: Vec<(&str, String)>| {
        let mut p: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        p.push(("job".into(), "node".into()));
        p.push(("instance".into(), instance.clone()));
        Labels::new(p)
    };
    let mut out = Vec::new();
    for cpu in 0..8 {
        for mode in MODES {
            let rate = if mode == "idle" { 0.7 } else { 0.04 };
            out.push((
                l(vec![("__name__", "node_cpu_seconds_total".into()), ("cpu", cpu.to_string()), ("mode", mode.into())]),
                true,
                rate,
            ));
        }
    }
    for dev in ["eth0", "eth1", "lo", "docker0"] {
        for dir in ["receive", "transmit"] {
            out.push((
                l(vec![("__name__", format!("node_network_{dir}_bytes_total")), ("device", dev.into())]),
                true,
                50_000.0,
            ));
        }
    }
    for i in 0..(100 - out.len()) {
        out.push((l(vec![("__name__", "node_memory_bytes".into()), ("kind", format!("k{i}"))]), false, 1e9));
    }
    out
}

/// The value of series `s` (counter or gauge) at step `i`.
fn value(rng: &mut Rng, counter: bool, scale: f64, prev: f64) -> f64 {
    let noise = (rng.next_u64() % 1000) as f64 / 1000.0;
    if counter {
        // Counters advance by rate × 15 s with some noise, rounded as node exporter's are.
        ((prev + scale * 15.0 * (0.5 + noise)) * 100.0).round() / 100.0
    } else {
        // Gauges wander, and often stay the same.
        if noise < 0.6 { prev } else { (prev + (noise - 0.8) * scale / 1000.0).round() }
    }
}

fn main() {
    let hosts = env("BENCH_HOSTS", 100);
    let hours = env("BENCH_HOURS", 24) as i64;
    let runs = env("BENCH_QUERY_RUNS", 10);
    let skip_prometheus = std::env::var("BENCH_SKIP_PROMETHEUS").is_ok();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let objects: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs"));
    let config = MetricStoreConfig { cut_interval: Duration::from_secs(24 * 3600), ..Default::default() };
    let store = runtime.block_on(MetricStore::open(objects, config, None)).expect("open");
    let tenant = Tenant::new("bench").expect("tenant");

    let series: Vec<(Labels, bool, f64)> = (0..hosts).flat_map(host_series).collect();
    let steps = hours * 3600 * 1000 / STEP_MS;
    // A day boundary, so that one day's blocks compact into one.
    let start = 1_700_000_000_000i64 - 1_700_000_000_000i64 % (24 * 3600 * 1000);
    // One generator per series, so that the OpenMetrics file (written
    // series by series) holds the very samples ingested round by round.
    let initial = |k: usize| if series[k].1 { 0.0 } else { series[k].2 };
    let mut rngs: Vec<Rng> = (0..series.len()).map(|k| Rng(k as u64 + 1)).collect();
    let mut values: Vec<f64> = (0..series.len()).map(initial).collect();
    let om_path = dir.path().join("samples.om");

    // Ingest: one batch per scrape round (every series once), as a scraper
    // or remote write delivers them; generation is timed apart.
    let (mut ingest, mut total) = (Duration::ZERO, 0u64);
    for i in 0..steps {
        let t = start + i * STEP_MS;
        let batch: Vec<Sample> = (0..series.len())
            .map(|k| {
                let (labels, counter, scale) = &series[k];
                values[k] = value(&mut rngs[k], *counter, *scale, values[k]);
                Sample { labels: labels.clone(), t, v: values[k] }
            })
            .collect();
        total += batch.len() as u64;
        let started = Instant::now();
        store.append(&tenant, batch, Vec::new());
        ingest += started.elapsed();
    }
    let rate = total as f64 / ingest.as_secs_f64();

    // Cut the whole day into 2-hour blocks.
    let end = start + steps * STEP_MS;
    let started = Instant::now();
    let s = store.clone();
    runtime
        .block_on(async move { tokio::task::spawn_blocking(move || s.cut(end + 3600 * 1000)).await })
        .expect("join")
        .expect("cut");
    let cut = started.elapsed();
    let cut_bytes = dir_bytes(&dir.path().join("metrics"));
    let started = Instant::now();
    let s = store.clone();
    runtime
        .block_on(async move { tokio::task::spawn_blocking(move || s.compact()).await })
        .expect("join")
        .expect("compact");
    let compaction = started.elapsed();
    let ours = dir_bytes(&dir.path().join("metrics"));

    // Prometheus's TSDB on the same samples.
    let prometheus = (!skip_prometheus).then(|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&om_path).expect("om"));
        let mut families: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
        for (k, (labels, _, _)) in series.iter().enumerate() {
            families.entry(labels.name().unwrap_or_default().to_owned()).or_default().push(k);
        }
        for (family, members) in families {
            writeln!(w, "# TYPE {family} unknown").expect("write");
            for k in members {
                let (labels, counter, scale) = &series[k];
                let inner: Vec<String> =
                    labels.iter().filter(|(n, _)| *n != "__name__").map(|(n, v)| format!("{n}=\"{v}\"")).collect();
                let prefix = format!("{family}{{{}}}", inner.join(","));
                let (mut rng, mut v) = (Rng(k as u64 + 1), initial(k));
                for i in 0..steps {
                    v = value(&mut rng, *counter, *scale, v);
                    writeln!(w, "{prefix} {v} {}", (start + i * STEP_MS) / 1000).expect("write");
                }
            }
        }
        writeln!(w, "# EOF").expect("write");
        w.flush().expect("flush");
        drop(w);
        let bytes = prometheus_tsdb::promtool_tsdb_bytes(&om_path, &dir.path().join("tsdb"));
        let _ = std::fs::remove_file(&om_path);
        bytes
    });

    // sum by (mode) (rate(node_cpu_seconds_total[5m])) over the first 16
    // hosts' 1,024 CPU series, 6 hours at a 15 s step, on blocks.
    let q = "sum by (mode) (rate(node_cpu_seconds_total{instance=~\"host-0(0[0-9]|1[0-5]):9100\"}[5m]))".to_owned();
    let (qs, qe) = (end - 6 * 3600 * 1000, end);
    let (s, t2, q2) = (store.clone(), tenant.clone(), q.clone());
    let (series_touched, times) = runtime
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let n = sightline_query::promql::instant(
                    &s,
                    &t2,
                    &sightline_query::limits::Budget::unlimited(),
                    r#"count(node_cpu_seconds_total{instance=~"host-0(0[0-9]|1[0-5]):9100"})"#,
                    qe,
                    300_000,
                )
                .expect("count");
                let mut times = Vec::new();
                for _ in 0..runs {
                    let started = Instant::now();
                    let r = sightline_query::promql::range(
                        &s,
                        &t2,
                        &sightline_query::limits::Budget::unlimited(),
                        &q2,
                        qs,
                        qe,
                        STEP_MS,
                        300_000,
                    )
                    .expect("query_range");
                    times.push(started.elapsed());
                    assert_eq!(r.len(), MODES.len());
                }
                (n, times)
            })
            .await
        })
        .expect("join");
    let mut times = times;
    times.sort();
    let touched = match series_touched {
        sightline_query::promql::Value::Vector(v) => v.first().map_or(0.0, |s| s.v),
        _ => 0.0,
    };

    println!("## Metric store ({} series, {hours} h at 15 s: {total} samples)\n", series.len());
    println!("| measure | value |\n|---|---|");
    println!("| ingest into the store (append, one batch per scrape round) | {:.2} M samples/s |", rate / 1e6);
    println!(
        "| cut into 2 h blocks | {:.1} s ({:.2} M samples/s) |",
        cut.as_secs_f64(),
        total as f64 / cut.as_secs_f64() / 1e6
    );
    println!(
        "| Sightline 2 h blocks, as cut | {:.3} B/sample ({:.1} MB) |",
        cut_bytes as f64 / total as f64,
        cut_bytes as f64 / 1e6
    );
    println!("| compaction of the day's blocks into one | {:.1} s |", compaction.as_secs_f64());
    println!(
        "| Sightline blocks on disk after compaction | {:.3} B/sample ({:.1} MB) |",
        ours as f64 / total as f64,
        ours as f64 / 1e6
    );
    if let Some(p) = prometheus {
        println!(
            "| Prometheus TSDB (promtool create-blocks-from openmetrics) | {:.3} B/sample ({:.1} MB) |",
            p as f64 / total as f64,
            p as f64 / 1e6
        );
        println!("| ratio Sightline / Prometheus | {:.2} |", ours as f64 / p as f64);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| query_range `{q}` ({touched} series, 6 h, 15 s step, {runs} runs) | p50 {:.1} ms, p99 {:.1} ms |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99))
    );
    store.shutdown_blocking();
}
