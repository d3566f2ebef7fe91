//! Log store benchmark: indexing rate per core, bytes on disk per line
//! (index included) beside the raw JSON lines and zstd of them, and the
//! latency of searches returning the newest 100 hits over the whole set.
//!
//! Run: `cargo bench --bench log_store`. Options via environment:
//! `BENCH_LOG_LINES` (default 10,000,000), `BENCH_QUERY_RUNS` (default 30).

use sightline_testkit::{log_gen, measure};
use std::io::Write;
use std::time::{Duration, Instant};

use measure::{dir_bytes, env, percentile};
use sightline_loadgen::logs::LogGen;
use sightline_storage::logs::{LogExpr, LogSearch, LogStore, LogStoreConfig, Target, TimeRange};
use sightline_storage::model::Tenant;
use sightline_storage::sink::{Batch, Sink};

const BATCH: usize = 1000;
const DAY_NS: u64 = 24 * 3600 * 1_000_000_000;

/// CPU seconds (user + system) from a `/proc/.../stat` file.
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let fields: Vec<&str> = text.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let lines = env("BENCH_LOG_LINES", 10_000_000);
    let runs = env("BENCH_QUERY_RUNS", 30);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogStoreConfig::new(dir.path().join("logs"));
    let threads = config.indexing_threads;
    let tenant = Tenant::new("bench").expect("tenant");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    let base = now - DAY_NS - 3_600_000_000_000;
    let step = DAY_NS / lines as u64;

    // Raw size and zstd of it, in a first pass over the same seeded lines.
    let mut lines_gen = LogGen::new(42);
    let mut raw = 0u64;
    let mut zstd = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
    for chunk in (0..lines).step_by(BATCH) {
        let n = BATCH.min(lines - chunk);
        for record in log_gen::records(&mut lines_gen, n, base + chunk as u64 * step, step) {
            let line = log_gen::json_line(&record);
            raw += line.len() as u64;
            zstd.write_all(line.as_bytes()).expect("zstd");
        }
    }
    let zstd_bytes = zstd.finish().expect("zstd").len() as u64;

    // Indexing: the store's CPU (indexing threads and document building on
    // this thread), minus the CPU spent generating the records.
    let store = LogStore::open(config.clone(), None).expect("open");
    let mut lines_gen = LogGen::new(42);
    let (mut gen_cpu, cpu0, started) = (0.0, cpu_seconds("/proc/self/stat"), Instant::now());
    for (seq, chunk) in (0..lines).step_by(BATCH).enumerate() {
        let t0 = cpu_seconds("/proc/thread-self/stat");
        let items = log_gen::records(&mut lines_gen, BATCH.min(lines - chunk), base + chunk as u64 * step, step);
        gen_cpu += cpu_seconds("/proc/thread-self/stat") - t0;
        store.consume(Batch { tenant: tenant.clone(), wal_seq: seq as u64 + 1, items }).expect("consume");
    }
    store.commit_blocking().expect("commit");
    let wall = started.elapsed();
    let index_cpu = cpu_seconds("/proc/self/stat") - cpu0 - gen_cpu;
    store.shutdown_blocking(); // waits for merges
    let disk = dir_bytes(&config.dir);
    let per_core = lines as f64 / index_cpu;

    let store = LogStore::open(config.clone(), None).expect("reopen");
    let all = TimeRange { start: 0, end: i64::MAX };
    let body = |v: &str| LogExpr::Text { target: Target::Body, value: v.into(), prefix: false };
    let queries: [(&str, LogExpr); 4] = [
        ("term `timeout`", body("timeout")),
        ("phrase `\"connection refused\"`", body("connection refused")),
        (
            "`service:payments severity>=ERROR`",
            LogExpr::And(vec![
                LogExpr::Text { target: Target::Service, value: "payments".into(), prefix: false },
                LogExpr::Severity { min: 17, max: 24 },
            ]),
        ),
        (
            "`attributes.http.status_code:500`",
            LogExpr::Text { target: Target::Attribute("http.status_code".into()), value: "500".into(), prefix: false },
        ),
    ];
    let mut rows = Vec::new();
    for (name, expr) in queries {
        let search =
            LogSearch { tenant: tenant.clone(), expr, range: all, limit: 100, newest_first: true, after: None };
        let hits = store.search(&search, None).expect("search").len();
        let mut times: Vec<Duration> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(store.search(&search, None).expect("search"));
                t.elapsed()
            })
            .collect();
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        rows.push(format!(
            "| {name} | {hits} | {:.1} ms | {:.1} ms |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        ));
    }
    let total = store.count(&tenant).expect("count");
    assert_eq!(total, lines as u64, "every line indexed once");
    store.shutdown_blocking();

    println!("## Log store ({lines} lines, {} partitions, {threads} indexing threads)\n", store.partitions().len());
    println!("| measure | value |\n|---|---|");
    println!("| raw JSON lines | {:.1} B/line ({:.2} GB) |", raw as f64 / lines as f64, raw as f64 / 1e9);
    println!(
        "| zstd -3 of the raw lines | {:.1} B/line ({:.3}× raw) |",
        zstd_bytes as f64 / lines as f64,
        zstd_bytes as f64 / raw as f64
    );
    println!(
        "| on disk, index and stored records | {:.1} B/line ({:.3}× raw, {:.2}× zstd) |",
        disk as f64 / lines as f64,
        disk as f64 / raw as f64,
        disk as f64 / zstd_bytes as f64
    );
    println!(
        "| indexing | {:.0} lines/s wall, {:.0} lines per CPU-second ({:.1} MB/s of raw per core) |",
        lines as f64 / wall.as_secs_f64(),
        per_core,
        per_core * raw as f64 / lines as f64 / 1e6
    );
    println!("\n| query, newest 100 over the whole set ({runs} runs) | hits | p50 | p99 |\n|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
