//! The end-to-end benchmark suite: the real release binary, fed over
//! OTLP/HTTP by the load generator's client with fixed seeded data sets
//! (10 million spans, log lines and samples by default), measured from the
//! outside, each figure beside a baseline measured in the same run on the
//! same data. Prints a Markdown table and writes it into BENCHMARKS.md.
//!
//! Run: `cargo bench --bench suite`. Options via environment: `BENCH_ITEMS`
//! (per signal, default 10,000,000), `BENCH_OVERLOAD_SECONDS` (default 60),
//! `BENCH_QUERY_RUNS` (default 30), `BENCH_SKIP_PROMETHEUS=1`,
//! `BENCH_NO_WRITE=1` (print only),
//! `BENCH_SIGNALS=traces,logs,metrics,remote_write,overload` (a subset; the
//! overload run needs traces).
//!
//! Per signal, on a fresh data directory: ingest as fast as the server
//! accepts with 16 clients (sustained rate of acknowledged, hence durable and
//! queryable, items; server CPU seconds per million items; peak RSS); then a
//! restart with background maintenance every second, until parts, blocks and
//! partitions stop changing; query latencies; a clean stop; bytes on disk
//! (WAL excluded) per item. Last, an overload run at 3× the sustained span
//! rate for 60 s through clients that queue and retry as OpenTelemetry
//! Collectors do: peak RSS against the memory limit, whether every refusal
//! was retryable, and how long the clients' backlog took to drain.

use sightline_testkit::{binary, measure, remote_write_data::RemoteWriteData, suite_data};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use measure::{dir_bytes, env, percentile};
use sightline_loadgen::Signal;
use sightline_loadgen::send::{Client, Protocol, RetryPolicy, Tally};
use suite_data::Dataset;

const CLIENTS: usize = 16;

/// The server's CPU seconds so far (user + system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(") ").next().unwrap_or("").split(' ').collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/<pid>/status` figure in bytes (`VmHWM`, `VmRSS`).
fn status_bytes(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

struct Server {
    running: binary::Running,
}

impl Server {
    fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let mut running = binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir, env);
        running.drain_log();
        Server { running }
    }

    fn pid(&self) -> u32 {
        self.running.child.id()
    }

    fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.api)
    }

    /// SIGTERM, and wait for the clean exit.
    fn stop(mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let _ = self.running.child.wait();
    }
}

/// The sum of a metric's samples in `/metrics`.
async fn own_metric(http: &reqwest::Client, server: &Server, name: &str) -> f64 {
    let text = async { http.get(server.api("/metrics")).send().await?.text().await };
    text.await
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the stores' parts, blocks, partitions and compactions have
/// not changed for 30 s (background maintenance has nothing left to do)
/// and the parts merged by compaction are deleted.
async fn settle(http: &reqwest::Client, server: &Server) -> Duration {
    const FIGURES: [&str; 8] = [
        "sightline_spans_parts",
        "sightline_spans_retired_parts",
        "sightline_spans_unflushed",
        "sightline_spans_compactions_total",
        "sightline_metrics_blocks",
        "sightline_metrics_compactions_total",
        "sightline_logs_partitions",
        "sightline_logs_commits_total",
    ];
    let started = Instant::now();
    let (mut last, mut since) = (Vec::new(), Instant::now());
    loop {
        let mut now = Vec::new();
        for f in FIGURES {
            now.push(own_metric(http, server, f).await);
        }
        let retired = now[1];
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(30) && retired == 0.0 {
            return started.elapsed() - Duration::from_secs(30);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Ingest {
    seconds: f64,
    acknowledged: u64,
    refusals: u64,
    failed: u64,
    cpu: f64,
    peak_rss: u64,
}

/// Sends the whole data set with `CLIENTS` clients as fast as it is accepted.
async fn ingest(server: &Server, data: &Dataset) -> Ingest {
    let client = Client::new(Protocol::Http, &format!("http://{}", server.running.http), None).expect("client");
    let tally = Arc::new(Tally::default());
    let next = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(data.requests.clone());
    let (cpu0, started) = (cpu_seconds(server.pid()), Instant::now());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, tally, next, requests, signal) =
            (client.clone(), tally.clone(), next.clone(), requests.clone(), data.signal);
        workers.spawn(async move {
            while let Some((items, body)) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                client.send_encoded(signal, *items, body.clone(), &tally, None).await;
            }
        });
    }
    workers.join_all().await;
    Ingest {
        seconds: started.elapsed().as_secs_f64(),
        acknowledged: Tally::get(&tally.acknowledged),
        refusals: Tally::get(&tally.refusals),
        failed: Tally::get(&tally.failed) + Tally::get(&tally.rejected),
        cpu: cpu_seconds(server.pid()) - cpu0,
        peak_rss: status_bytes(server.pid(), "VmHWM:"),
    }
}

/// p50 and p99 of `runs` GETs of each URL in turn, each answered 200.
async fn latency(http: &reqwest::Client, urls: &[String], runs: usize) -> (Duration, Duration) {
    let mut times = Vec::new();
    for i in 0..runs.max(urls.len()) {
        let url = &urls[i % urls.len()];
        let started = Instant::now();
        let r = http.get(url).send().await.expect("GET");
        let status = r.status();
        let body = r.bytes().await.expect("body");
        times.push(started.elapsed());
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The figures of one signal, as table rows.
struct Report {
    rows: Vec<[String; 3]>,
}

impl Report {
    fn row(&mut self, figure: impl Into<String>, value: impl Into<String>, baseline: impl Into<String>) {
        self.rows.push([figure.into(), value.into(), baseline.into()]);
    }
}

async fn run_signal(signal: Signal, items: u64, runs: usize, report: &mut Report) -> f64 {
    let http = reqwest::Client::new();
    let data = Dataset::generate(signal, items);
    let name = format!("{signal:?}").to_lowercase();
    let unit = match signal {
        Signal::Traces => "span",
        Signal::Logs => "line",
        Signal::Metrics => "sample",
    };
    let decode = data.bare_decode_rate();
    let encode = match signal {
        Signal::Traces => Some(("Parquet span parts", data.bare_parquet_rate())),
        Signal::Logs => Some(("tantivy indexing and commit (log store alone)", data.bare_index_rate())),
        Signal::Metrics => None,
    };
    let zstd = data.zstd_bytes();
    let dir = tempfile::tempdir().expect("tempdir");
    // No cuts while ingesting old samples: they would close windows still being filled.
    let server = Server::start(dir.path(), &[("SIGHTLINE_METRICS__CUT_INTERVAL_SECONDS", "86400")]);
    let i = ingest(&server, &data).await;
    assert_eq!(i.failed, 0, "{name}: nothing failed or was rejected");
    let rate = i.acknowledged as f64 / i.seconds;
    server.stop();

    let server = Server::start(
        dir.path(),
        &[("SIGHTLINE_METRICS__CUT_INTERVAL_SECONDS", "1"), ("SIGHTLINE_SPANS__MAINTENANCE_INTERVAL_SECONDS", "1")],
    );
    let settled = settle(&http, &server).await;
    // The restarted server has done nothing but replay and maintenance.
    let maintenance_peak = status_bytes(server.pid(), "VmHWM:");
    let mut latencies = Vec::new();
    let (start, end) = (data.start_ns.to_string(), data.end_ns.to_string());
    match signal {
        Signal::Traces => {
            let ids: Vec<String> =
                data.trace_ids(200).iter().map(|id| server.api(&format!("/api/traces/{id}"))).collect();
            latencies
                .push(("trace by id (200 ids from the set)".to_owned(), latency(&http, &ids, runs.max(200)).await));
            let search =
                server.api(&format!("/api/traces?service=payments&minDuration=300ms&limit=20&start={start}&end={end}"));
            latencies.push((
                "trace search `service=payments minDuration=300ms`, 20 newest over the hour".to_owned(),
                latency(&http, &[search], runs).await,
            ));
            // A hot attribute: one route in six, on every service.
            let url = reqwest::Url::parse_with_params(
                &server.api("/api/traces"),
                &[("attributes", "http.route=/api/pay"), ("limit", "20"), ("start", &start), ("end", &end)],
            )
            .expect("url");
            latencies.push((
                "trace search by a hot attribute `http.route=/api/pay`, 20 newest over the hour".to_owned(),
                latency(&http, &[url.to_string()], runs).await,
            ));
            let graph = server.api(&format!("/api/dependencies?start={start}&end={end}"));
            latencies.push((
                "service dependency graph over the hour".to_owned(),
                latency(&http, &[graph], runs.min(10)).await,
            ));
        }
        Signal::Logs => {
            for q in ["timeout", "service:payments severity>=ERROR", "duration_ms>1500", "user.id:u-999*"] {
                let url = reqwest::Url::parse_with_params(
                    &server.api("/api/logs"),
                    &[("query", q), ("limit", "100"), ("start", &start), ("end", &end)],
                )
                .expect("url");
                latencies.push((
                    format!("log search `{q}`, newest 100 over the hour"),
                    latency(&http, &[url.to_string()], runs).await,
                ));
            }
        }
        Signal::Metrics => {
            let q = r#"sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))"#;
            let (s, e) = ((data.start_ns / 1_000_000_000).to_string(), (data.end_ns / 1_000_000_000).to_string());
            let url = reqwest::Url::parse_with_params(
                &server.api("/prometheus/api/v1/query_range"),
                &[("query", q), ("start", &s), ("end", &e), ("step", "60")],
            )
            .expect("url");
            latencies.push((
                format!("PromQL query_range `{q}` over the whole set, 60 s step"),
                latency(&http, &[url.to_string()], runs).await,
            ));
        }
    }
    server.stop();
    let disk = dir_bytes(dir.path()) - dir_bytes(&dir.path().join("wal"));
    if std::env::var("BENCH_KEEP").is_ok() {
        println!("{name}: data kept in {}", dir.keep().display());
    }

    let n = data.items as f64;
    report.row(
        format!("**{name}**: sustained ingest, {CLIENTS} HTTP clients, acknowledged (durable, queryable)"),
        format!("{rate:.0} {unit}s/s"),
        format!("bare prost decode, one core: {decode:.0} {unit}s/s (ratio {:.2})", rate / decode),
    );
    if let Some((what, r)) = encode {
        report.row(
            format!("{name}: the store's encoder alone, in process: {what}"),
            format!("{r:.0} {unit}s/s"),
            format!("ingest end to end / encoder alone: {:.2}", rate / r),
        );
    }
    report.row(
        format!("{name}: server CPU per million {unit}s"),
        format!("{:.2} s", i.cpu / n * 1e6),
        format!("decode alone: {:.2} s", 1e6 / decode),
    );
    report.row(
        format!("{name}: peak RSS while ingesting"),
        format!("{:.0} MiB", i.peak_rss as f64 / 1048576.0),
        format!("{} retryable refusals, each retried", i.refusals),
    );
    report.row(
        format!("{name}: peak RSS of the restarted server while maintenance settles (WAL replay, compaction)"),
        format!("{:.0} MiB", maintenance_peak as f64 / 1048576.0),
        "",
    );
    report.row(
        format!("{name}: bytes on disk per {unit} after maintenance (settled in {:.0} s)", settled.as_secs_f64()),
        format!("{:.2} B", disk as f64 / n),
        format!(
            "zstd -3 of the OTLP protobuf: {:.2} B (ratio {:.2}); raw OTLP {:.1} B",
            zstd as f64 / n,
            disk as f64 / zstd as f64,
            data.raw_bytes as f64 / n
        ),
    );
    if signal == Signal::Metrics && std::env::var("BENCH_SKIP_PROMETHEUS").is_err() {
        let p = data.prometheus_tsdb_bytes();
        report.row(
            "metrics: Prometheus TSDB on the same samples (promtool create-blocks-from openmetrics)",
            format!("{:.2} B/sample", p as f64 / n),
            format!("ratio Sightline / Prometheus {:.2}", disk as f64 / p as f64),
        );
    }
    for (what, (p50, p99)) in latencies {
        report.row(format!("{name}: {what}"), format!("p50 {}, p99 {}", ms(p50), ms(p99)), "");
    }
    rate
}

/// The metric samples over Prometheus remote write 1.0 (snappy
/// `WriteRequest`s of 2,000 samples, as a Prometheus sends them), `CLIENTS`
/// at once as fast as the server accepts, on a fresh data directory.
async fn remote_write(items: u64, report: &mut Report) {
    let data = RemoteWriteData::from_metrics(&Dataset::generate(Signal::Metrics, items));
    let decode = data.bare_decode_rate();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let url = server.api("/prometheus/api/v1/write");
    let http = reqwest::Client::new();
    let (next, acknowledged, refusals, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let requests = Arc::new(data.requests);
    let (cpu0, started) = (cpu_seconds(server.pid()), Instant::now());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (http, url, next, requests) = (http.clone(), url.clone(), next.clone(), requests.clone());
        let (acknowledged, refusals, failed) = (acknowledged.clone(), refusals.clone(), failed.clone());
        workers.spawn(async move {
            while let Some((n, body)) = requests.get(next.fetch_add(1, Ordering::Relaxed)) {
                loop {
                    let sent = http
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .header("content-encoding", "snappy")
                        .header("x-prometheus-remote-write-version", "0.1.0")
                        .body(body.clone())
                        .send()
                        .await;
                    match sent.map(|r| r.status().as_u16()) {
                        Ok(204) => acknowledged.fetch_add(*n, Ordering::Relaxed),
                        Ok(429 | 503) | Err(_) => {
                            refusals.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                        Ok(_) => failed.fetch_add(*n, Ordering::Relaxed),
                    };
                    break;
                }
            }
        });
    }
    workers.join_all().await;
    let (seconds, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds(server.pid()) - cpu0);
    let peak = status_bytes(server.pid(), "VmHWM:");
    server.stop();
    let acknowledged = acknowledged.load(Ordering::Relaxed) as f64;
    let rate = acknowledged / seconds;
    report.row(
        format!("**remote write 1.0**: sustained ingest, {CLIENTS} clients, 2,000 samples a request, acknowledged"),
        format!("{rate:.0} samples/s"),
        format!("snappy + prost decode alone, one core: {decode:.0} samples/s (ratio {:.2})", rate / decode),
    );
    report.row(
        "remote write: server CPU per million samples",
        format!("{:.2} s", cpu / acknowledged.max(1.0) * 1e6),
        format!("decode alone: {:.2} s", 1e6 / decode),
    );
    report.row(
        "remote write: peak RSS while ingesting",
        format!("{:.0} MiB", peak as f64 / 1048576.0),
        format!(
            "{} retried refusals, {} of {} samples failed",
            refusals.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            data.samples
        ),
    );
}

/// Exporters as the OpenTelemetry Collector runs them by default: each has
/// 10 consumers taking requests from its sending queue.
const CONSUMERS_PER_CLIENT: usize = 10;

/// 3× the sustained span rate for `seconds`, sent as OpenTelemetry
/// Collectors send: the load fills a queue that `CLIENTS` exporters of
/// `CONSUMERS_PER_CLIENT` consumers drain, each request retried as the
/// Collector's default `retry_on_failure` does (5 s growing to 30 s, at
/// least the server's `Retry-After`, given up 300 s after its first attempt).
/// The queue holds what the load offers (a Collector's `queue_size` sized
/// for the outage, as its documentation asks). Reports peak RSS, the
/// refusals, what the clients gave up on, and how long after the load ended
/// the backlog was drained.
async fn overload(sustained: f64, seconds: u64, report: &mut Report) {
    let data = Dataset::generate(Signal::Traces, 2_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    // The defaults, under a process memory limit of 1 GiB (the default is
    // three quarters of the machine's memory).
    let limit = 1u64 << 30;
    let limit_text = limit.to_string();
    let server = Server::start(dir.path(), &[("SIGHTLINE_INGEST__RESIDENT_MEMORY_LIMIT_BYTES", limit_text.as_str())]);
    let client = Client::new(Protocol::Http, &format!("http://{}", server.running.http), None)
        .expect("client")
        .with_retry(RetryPolicy::COLLECTOR);
    let tally = Arc::new(Tally::default());
    let queued = Arc::new(AtomicU64::new(0));
    let (queue, receiver) = tokio::sync::mpsc::unbounded_channel::<(u64, bytes::Bytes)>();
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut consumers = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS * CONSUMERS_PER_CLIENT {
        let (client, tally, receiver, queued) = (client.clone(), tally.clone(), receiver.clone(), queued.clone());
        consumers.spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                let Some((items, body)) = next else { return };
                queued.fetch_sub(items, Ordering::Relaxed);
                client.send_encoded(Signal::Traces, items, body, &tally, None).await;
            }
        });
    }
    let target = 3.0 * sustained;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let (mut sent, mut peak, mut deepest, mut k) = (0u64, 0u64, 0u64, 0usize);
    while Instant::now() < end {
        let due = started + Duration::from_secs_f64(sent as f64 / target);
        if let Some(wait) = due.checked_duration_since(Instant::now()).filter(|w| !w.is_zero()) {
            tokio::time::sleep(wait).await;
        }
        let (items, body) = data.requests[k % data.requests.len()].clone();
        k += 1;
        sent += items;
        deepest = deepest.max(queued.fetch_add(items, Ordering::Relaxed) + items);
        let _ = queue.send((items, body));
        peak = peak.max(status_bytes(server.pid(), "VmRSS:"));
    }
    let offered = sent as f64 / started.elapsed().as_secs_f64();
    drop(queue);
    let mut watch = tokio::time::interval(Duration::from_millis(200));
    while !consumers.is_empty() {
        tokio::select! {
            _ = consumers.join_next() => {}
            _ = watch.tick() => peak = peak.max(status_bytes(server.pid(), "VmRSS:")),
        }
    }
    let drained = Instant::now().saturating_duration_since(end);
    let hwm = status_bytes(server.pid(), "VmHWM:");
    server.stop();
    let acknowledged = Tally::get(&tally.acknowledged);
    report.row(
        format!("**overload**: offered 3× the sustained span rate for {seconds} s"),
        format!("{offered:.0} spans/s offered, {acknowledged} of {sent} acknowledged"),
        format!(
            "sustained rate {sustained:.0} spans/s; {} clients of {CONSUMERS_PER_CLIENT} consumers, \
             the OpenTelemetry Collector's default retries",
            CLIENTS
        ),
    );
    report.row(
        "overload: backlog drained",
        format!("{:.0} s after the load ended", drained.as_secs_f64()),
        format!(
            "deepest client queue {deepest} spans; {:.0} s at the sustained rate; retry window 300 s",
            sent as f64 / sustained - seconds as f64
        ),
    );
    report.row(
        "overload: peak RSS",
        format!("{:.0} MiB", hwm.max(peak) as f64 / 1048576.0),
        format!("`ingest.resident_memory_limit_bytes` {} MiB", limit >> 20),
    );
    report.row(
        "overload: refusals",
        format!(
            "{} retryable (429/503), {} items given up or rejected",
            Tally::get(&tally.refusals),
            Tally::get(&tally.failed) + Tally::get(&tally.rejected)
        ),
        match tally.first_failure.lock().ok().and_then(|f| f.clone()) {
            Some(why) => format!("first failure: {why}"),
            None => "every refusal retryable, nothing given up".into(),
        },
    );
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<u64>().unwrap_or(0)))
        .unwrap_or(0);
    format!("{cpus} cores, {:.0} GiB memory", mem as f64 / 1048576.0)
}

fn main() {
    let items = env("BENCH_ITEMS", 10_000_000) as u64;
    let runs = env("BENCH_QUERY_RUNS", 30);
    let overload_seconds = env("BENCH_OVERLOAD_SECONDS", 60) as u64;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut report = Report { rows: Vec::new() };
    let started = Instant::now();
    let only = std::env::var("BENCH_SIGNALS").unwrap_or_else(|_| "traces,logs,metrics,remote_write,overload".into());
    let mut span_rate = None;
    for (signal, name) in [(Signal::Traces, "traces"), (Signal::Logs, "logs"), (Signal::Metrics, "metrics")] {
        if only.contains(name) {
            let rate = runtime.block_on(run_signal(signal, items, runs, &mut report));
            span_rate = span_rate.or((signal == Signal::Traces).then_some(rate));
        }
    }
    if only.contains("remote_write") {
        runtime.block_on(remote_write(items, &mut report));
    }
    if let (true, Some(rate)) = (only.contains("overload"), span_rate) {
        runtime.block_on(overload(rate, overload_seconds, &mut report));
    }

    let mut md = String::new();
    md.push_str(&format!(
        "Run with `cargo bench --bench suite` on {}, {items} items per signal, in {:.0} minutes; every figure beside its baseline from the same run.\n\n",
        machine(),
        started.elapsed().as_secs_f64() / 60.0
    ));
    md.push_str("| figure | Sightline | baseline, same data, same run |\n| --- | --- | --- |\n");
    for [a, b, c] in &report.rows {
        md.push_str(&format!("| {a} | {b} | {c} |\n"));
    }
    println!("{md}");
    if std::env::var("BENCH_NO_WRITE").is_err() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        let (begin, end) = ("<!-- suite:begin -->\n", "<!-- suite:end -->");
        let updated = match (doc.find(begin), doc.find(end)) {
            (Some(b), Some(e)) if b < e => format!("{}{begin}{md}{}", &doc[..b], &doc[e..]),
            _ => format!("{doc}\n## End to end (`cargo bench --bench suite`)\n\n{begin}{md}{end}\n"),
        };
        std::fs::write(&path, updated).expect("write BENCHMARKS.md");
        println!("written to {}", path.display());
    }
}
