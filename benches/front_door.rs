//! Front-door benchmark: how fast the real `sightline` binary accepts spans
//! (HTTP receive, decode, validate, WAL append with the default group-commit
//! fsync, hand-off to the store) against the bare prost decode of the same
//! bytes, measured in one run on the same seeded payloads; plus the resident
//! memory of the idle server and under sustained load.
//!
//! Run: `cargo bench --bench front_door` (builds in release). Options via
//! environment: `BENCH_SECONDS` (default 10), `BENCH_CLIENTS` (default 4).

use sightline_testkit::binary;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;

use sightline_collector::signal::Traces;
use sightline_collector::{IngestConfig, Pipeline, Sinks};
use sightline_loadgen::Rng;
use sightline_loadgen::traces::{self, TraceShape};
use sightline_proto::otlp::ExportTraceServiceRequest;
use sightline_storage::model::Tenant;
use sightline_storage::sink::{Batch, Sink};
use sightline_storage::wal::{FsyncPolicy, Wal, WalConfig};

const REQUESTS: usize = 64;
const SPANS_PER_REQUEST: usize = 500;

/// 64 requests of 50 traces of 10 spans.
fn payloads() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    (0..REQUESTS)
        .map(|_| {
            traces::request(
                &mut rng,
                SPANS_PER_REQUEST / 10,
                &TraceShape::FIXED,
                1_700_000_000_000_000_000,
                3_600_000_000_000,
            )
            .0
            .encode_to_vec()
        })
        .collect()
}

/// Spans per second that one core decodes with prost.
fn bare_decode_rate(payloads: &[Vec<u8>], seconds: f64) -> f64 {
    let start = Instant::now();
    let mut spans = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for p in payloads {
            let req = ExportTraceServiceRequest::decode(p.as_slice()).expect("decodes");
            spans += req.resource_spans.iter().map(|r| r.scope_spans[0].spans.len() as u64).sum::<u64>();
        }
    }
    spans as f64 / start.elapsed().as_secs_f64()
}

/// Discards what it is given: isolates the front door from the stores.
struct Discard;

impl<T> Sink<T> for Discard {
    fn consume(&self, _: Batch<T>) -> Result<(), sightline_storage::StorageError> {
        Ok(())
    }
}

/// Spans per second through decode, validation, the WAL (group commit,
/// fsync) and the hand-off to a discarding store, driven by `clients` tasks
/// on a two-thread runtime, in process.
fn front_door_rate(payloads: &Arc<Vec<Vec<u8>>>, clients: usize, seconds: f64) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    runtime.block_on(async {
        let mut registry = prometheus_client::registry::Registry::default();
        let wal_config = WalConfig {
            dir: dir.path().to_path_buf(),
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::Batch,
            queue_capacity: 4096,
        };
        let (wal, _) = Wal::open(wal_config, &mut registry).expect("wal");
        let sink = Arc::new(Discard);
        let mut config = IngestConfig::default();
        config.rate_limit.items_per_second = 0;
        config.rate_limit.bytes_per_second = 0;
        let pipeline = Pipeline::start(
            config,
            wal,
            Sinks { spans: vec![sink.clone()], logs: sink.clone(), metrics: sink },
            &mut registry,
        )
        .expect("pipeline");
        let tenant = Tenant::new("bench").expect("tenant");
        let accepted = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (payloads, pipeline, tenant, accepted) =
                (payloads.clone(), pipeline.clone(), tenant.clone(), accepted.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = c;
                while start.elapsed().as_secs_f64() < seconds {
                    let body = bytes::Bytes::from(payloads[i % payloads.len()].clone());
                    i += clients;
                    let request = ExportTraceServiceRequest::decode(body.clone()).expect("decodes");
                    let outcome = pipeline.submit::<Traces>(&tenant, request, Some(body)).await.expect("accepted");
                    accepted.fetch_add(outcome.accepted, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let rate = accepted.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        let p = pipeline.clone();
        tokio::task::spawn_blocking(move || p.shutdown_blocking()).await.expect("shutdown");
        rate
    })
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn cpu_seconds_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let clients: usize = std::env::var("BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let payloads = Arc::new(payloads());
    let payload_bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "payloads: {REQUESTS} requests x {SPANS_PER_REQUEST} spans, {:.0} B/span of OTLP protobuf",
        payload_bytes as f64 / (REQUESTS * SPANS_PER_REQUEST) as f64
    );

    let decode_rate = bare_decode_rate(&payloads, 3.0);
    let door_rate = front_door_rate(&payloads, clients, seconds.min(5.0));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = binary::spawn(
        env!("CARGO_BIN_EXE_sightline"),
        dir.path(),
        &[
            ("SIGHTLINE_INGEST__RATE_LIMIT__ITEMS_PER_SECOND", "0"),
            ("SIGHTLINE_INGEST__RATE_LIMIT__BYTES_PER_SECOND", "0"),
        ],
    );
    server.drain_log();
    let http = server.http.clone();
    let pid = server.child.id();
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_of(pid);
    let cpu_before = cpu_seconds_of(pid);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://{http}/v1/traces");
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (client, url, payloads, accepted, refused, stop) =
                (client.clone(), url.clone(), payloads.clone(), accepted.clone(), refused.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let body = payloads[i % payloads.len()].clone();
                    i += clients;
                    let r = client.post(&url).header("content-type", "application/x-protobuf").body(body).send().await;
                    match r.map(|r| r.status().as_u16()) {
                        Ok(200) => accepted.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed),
                        _ => refused.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed),
                    };
                }
            }));
        }
        while start.elapsed().as_secs_f64() < seconds {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak_rss.fetch_max(rss_of(pid), Ordering::Relaxed);
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds_of(pid) - cpu_before;
    let end_rss = rss_of(pid);
    let _ = server.child.kill();
    let _ = server.child.wait();

    let accepted = accepted.load(Ordering::Relaxed);
    let rate = accepted as f64 / elapsed;
    println!();
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| bare prost decode, one core | {:.0} spans/s |", decode_rate);
    println!(
        "| front door in process: decode + validate + WAL (group fsync) + hand-off, {clients} tasks | {:.0} spans/s |",
        door_rate
    );
    println!("| ratio front door / bare decode | {:.2} |", door_rate / decode_rate);
    println!(
        "| real binary over OTLP/HTTP, {clients} clients, accepted (durable and readable) | {:.0} spans/s |",
        rate
    );
    println!("| ratio real binary / bare decode | {:.2} |", rate / decode_rate);
    println!("| server CPU per million spans | {:.2} s |", cpu / (accepted as f64 / 1e6));
    println!(
        "| spans refused (503, retryable: the span store's backlog is full) | {} |",
        refused.load(Ordering::Relaxed)
    );
    println!("| idle RSS | {:.1} MiB |", mib(idle_rss));
    println!("| peak RSS under load | {:.1} MiB |", mib(peak_rss.load(Ordering::Relaxed)));
    println!("| RSS at end ({} spans accepted) | {:.1} MiB |", accepted, mib(end_rss));
}
