//! Span store benchmark: bytes on disk per span after compaction, beside the
//! raw OTLP protobuf bytes and zstd of them; trace-by-id latency over the
//! whole set with a warm page cache; and the rate at which the store takes
//! spans (conversion excluded) into Parquet parts.
//!
//! Run: `cargo bench --bench span_store`. Options via environment:
//! `BENCH_SPANS` (default 10,000,000), `BENCH_LOOKUPS` (default 1,000).

use sightline_testkit::measure;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use measure::{env, percentile};
use object_store::local::LocalFileSystem;
use prost::Message;
use sightline_loadgen::Rng;
use sightline_loadgen::traces::{self, TraceShape};
use sightline_storage::model::{Tenant, TraceId};
use sightline_storage::sink::{Batch, Sink};
use sightline_storage::spans::{SpanStore, SpanStoreConfig};

const SPANS_PER_TRACE: usize = 10;
const TRACES_PER_REQUEST: usize = 100;
const DAY_NS: u64 = 24 * 3600 * 1_000_000_000;

/// Spans per second from a full head to published parts, alone on the machine.
fn flush_rate(runtime: &tokio::runtime::Runtime, rng: &mut Rng) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs: Arc<dyn object_store::ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs"));
    let config =
        SpanStoreConfig { flush_spans: usize::MAX, flush_age: Duration::from_secs(3600), ..SpanStoreConfig::default() };
    let store = runtime.block_on(SpanStore::open(fs, config, None)).expect("store");
    let tenant = Tenant::new("flush").expect("tenant");
    let batches: Vec<_> = (0..500u64)
        .map(|i| {
            let (request, _) =
                traces::request(rng, 100, &TraceShape::FIXED, 1_700_000_000_000_000_000, 3_600_000_000_000);
            Batch { tenant: tenant.clone(), wal_seq: i + 1, items: sightline_collector::convert::spans(request) }
        })
        .collect();
    let spans: usize = batches.iter().map(|b| b.items.len()).sum();
    let start = Instant::now();
    for b in batches {
        store.consume(b).expect("consume");
    }
    store.flush_blocking().expect("flush");
    let rate = spans as f64 / start.elapsed().as_secs_f64();
    store.shutdown_blocking();
    rate
}

/// Whether a file under the data directory belongs to one of the parts
/// `live` (ids): parts merged by compaction stay on disk for a grace period.
fn is_live(path: &std::path::Path, live: &[String]) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    live.iter().any(|id| name.starts_with(&format!("{id}.")))
}

/// Bytes of the files of the parts `live` under `dir`.
fn live_bytes(dir: &std::path::Path, live: &[String]) -> u64 {
    let mut stack = vec![dir.to_path_buf()];
    let mut total = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if is_live(&path, live) {
                total += entry.metadata().expect("meta").len();
            }
        }
    }
    total
}

/// Compressed bytes of the span parts `live` under `dir` by root column,
/// largest first, with the trace tables whole and by column.
fn column_bytes(dir: &std::path::Path, live: &[String]) -> Vec<(String, u64)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut by_column: std::collections::BTreeMap<String, u64> = Default::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            let name = path.to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") && is_live(&path, live) {
                let table = name.ends_with(".traces.parquet");
                if table {
                    *by_column.entry("the trace tables".into()).or_default() += entry.metadata().expect("meta").len();
                }
                let reader = SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet");
                for rg in reader.metadata().row_groups() {
                    for c in rg.columns() {
                        let root = &c.column_path().parts()[0];
                        let key = if table { format!("the trace tables' {root}") } else { root.clone() };
                        *by_column.entry(key).or_default() += c.compressed_size() as u64;
                    }
                }
            }
        }
    }
    let mut out: Vec<(String, u64)> = by_column.into_iter().collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.1));
    out
}

fn main() {
    let total_spans = env("BENCH_SPANS", 10_000_000);
    let lookups = env("BENCH_LOOKUPS", 1_000);
    let requests = total_spans / (SPANS_PER_TRACE * TRACES_PER_REQUEST);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SpanStoreConfig {
        flush_spans: 250_000,
        flush_age: Duration::from_secs(3600),
        compaction_window: Duration::from_secs(2 * 3600),
        compaction_min_parts: 2,
        maintenance_interval: Duration::from_secs(24 * 3600),
        ..SpanStoreConfig::default()
    };
    let fs: Arc<dyn object_store::ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).expect("fs"));
    let store = runtime.block_on(SpanStore::open(fs, config, None)).expect("store");
    let tenant = Tenant::new("bench").expect("tenant");

    // One day of traffic, in time order, as requests of 100 traces.
    let mut rng = Rng(0x05ee_d0f5_a4e5);
    let mut zstd = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd");
    let (mut raw_bytes, mut spans, mut sample) = (0u64, 0u64, Vec::new());
    let base = sightline_storage::model::now_unix_nanos() - DAY_NS;
    let mut store_time = Duration::ZERO;
    for r in 0..requests {
        let at = base + DAY_NS / requests as u64 * r as u64;
        let (request, ids) =
            traces::request(&mut rng, TRACES_PER_REQUEST, &TraceShape::FIXED, at, DAY_NS / requests as u64);
        let bytes = request.encode_to_vec();
        raw_bytes += bytes.len() as u64;
        zstd.write_all(&bytes).expect("zstd");
        if rng.below((requests / lookups.max(1)).max(1) as u64) == 0 && sample.len() < lookups {
            sample.push(TraceId(ids[rng.below(ids.len() as u64) as usize]));
        }
        let items = sightline_collector::convert::spans(request);
        spans += items.len() as u64;
        let start = Instant::now();
        store.consume(Batch { tenant: tenant.clone(), wal_seq: r as u64 + 1, items }).expect("consume");
        store_time += start.elapsed();
    }
    let zstd_bytes = zstd.finish().expect("zstd").len() as u64;
    let start = Instant::now();
    store.flush_blocking().expect("flush");
    let flush_wait = start.elapsed();
    let before = store.counts(&tenant);
    let start = Instant::now();
    store.maintain_blocking().expect("compaction");
    let compaction = start.elapsed();
    let after = store.counts(&tenant);
    assert_eq!(after.part_spans, spans, "compaction kept every span");
    // Only the live parts: the merged ones wait out a grace period on disk.
    let live: Vec<String> = store.parts(&tenant).into_iter().map(|p| p.id).collect();
    let disk = live_bytes(dir.path(), &live);

    // Trace by id over the whole set: one warm-up pass, then measured.
    let mut latencies = Vec::with_capacity(sample.len());
    runtime.block_on(async {
        for id in &sample {
            store.trace(&tenant, *id, 100_000).await.expect("trace");
        }
        for id in &sample {
            let start = Instant::now();
            let found = store.trace(&tenant, *id, 100_000).await.expect("trace");
            latencies.push(start.elapsed());
            assert_eq!(found.spans.len(), SPANS_PER_TRACE, "trace {id} is whole");
        }
    });
    latencies.sort();
    store.shutdown_blocking();
    let flush_rate = flush_rate(&runtime, &mut rng);

    let per = |b: u64| b as f64 / spans as f64;
    println!(
        "spans: {spans} in {requests} requests ({SPANS_PER_TRACE} spans per trace, 10 attributes per span, one day)"
    );
    println!();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| raw OTLP protobuf | {:.1} B/span |", per(raw_bytes));
    println!("| zstd (level 3) of the OTLP protobuf | {:.1} B/span |", per(zstd_bytes));
    println!(
        "| Sightline parts after compaction ({} parts from {}) | {:.1} B/span |",
        after.parts,
        before.parts,
        per(disk)
    );
    println!("| ratio Sightline / zstd of OTLP | {:.2} |", disk as f64 / zstd_bytes as f64);
    for (column, bytes) in column_bytes(dir.path(), &live) {
        println!("| … of which {column} | {:.2} B/span |", per(bytes));
    }
    println!(
        "| store intake (head insert; flushing runs behind) | {:.0} spans/s |",
        spans as f64 / store_time.as_secs_f64()
    );
    println!("| waiting for the flush backlog at the end | {:.1} s |", flush_wait.as_secs_f64());
    println!("| flush rate: head → published level-0 parts (500k spans, measured alone) | {:.0} spans/s |", flush_rate);
    println!("| compaction of the whole set | {:.1} s |", compaction.as_secs_f64());
    println!(
        "| trace by id, {} lookups, p50 | {:.2} ms |",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3
    );
    println!("| trace by id, p99 | {:.2} ms |", percentile(&latencies, 0.99).as_secs_f64() * 1e3);
    if std::env::var("BENCH_KEEP").is_ok() {
        println!("parts kept in {}", dir.keep().display());
    }
}
