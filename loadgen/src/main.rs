//! `sightline-loadgen`: sends seeded OTLP load to Sightline (or any OTLP
//! receiver) at a fixed rate or as fast as it accepts, backs off when asked
//! to, shows progress, and ends with what was sent, acknowledged and
//! refused. `--write` stores a fixed data set instead; `--read` sends one.
//!
//! ```text
//! cargo run --release -p sightline-loadgen -- --signal traces --rate 50000 --seconds 60
//! cargo run --release -p sightline-loadgen -- --signal logs --items 1000000 --write logs.dataset
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use sightline_loadgen::send::{Client, Payload, Protocol, RetryPolicy, Tally};
use sightline_loadgen::traces::TraceShape;
use sightline_loadgen::{Generator, Signal, dataset};

#[derive(Parser)]
#[command(about = "Sends seeded OTLP traces, logs or metrics, or writes them to a data set file.")]
struct Args {
    #[arg(long, value_enum, default_value = "traces")]
    signal: Signal,
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// Default: http://127.0.0.1:4317 for gRPC, http://127.0.0.1:4318 for HTTP.
    #[arg(long)]
    endpoint: Option<String>,
    /// Items (spans, lines, points) per second; 0 sends as fast as the server accepts.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop after this long (default 60 s unless --items is given).
    #[arg(long)]
    seconds: Option<f64>,
    /// Stop after about this many items.
    #[arg(long)]
    items: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// How refusals are retried: `eager` (50 ms doubling to 5 s, the
    /// server's `Retry-After` as given, until 10 s after the run) or
    /// `collector` (the OpenTelemetry Collector's defaults: 5 s growing to
    /// 30 s, at least `Retry-After`, 300 s from a request's first attempt,
    /// 5 s an attempt).
    #[arg(long, value_enum, default_value = "eager")]
    retry: Retry,
    /// Traces (5–50 spans each), log lines, or hosts (100 series each) per request.
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Traces: spans per trace, `MIN-MAX`.
    #[arg(long, default_value = "5-50", value_parser = span_range)]
    spans_per_trace: (usize, usize),
    /// Traces: services, the gateway included.
    #[arg(long, default_value_t = 6)]
    services: usize,
    /// Traces: every span carries a unique `request.id`.
    #[arg(long)]
    unique_ids: bool,
    /// API key for a server with authentication on.
    #[arg(long, env = "SIGHTLINE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Send as this tenant (`X-Scope-OrgID`).
    #[arg(long)]
    tenant: Option<String>,
    /// Write the requests to this data set file instead of sending them.
    #[arg(long, conflicts_with = "read")]
    write: Option<PathBuf>,
    /// Send the requests of this data set file (the signal is the file's).
    #[arg(long)]
    read: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Retry {
    Eager,
    Collector,
}

fn span_range(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (usize, usize) =
        (a.parse().map_err(|_| "expected MIN-MAX")?, b.parse().map_err(|_| "expected MIN-MAX")?);
    if a == 0 || a > b {
        return Err("expected 1 <= MIN <= MAX".into());
    }
    Ok((a, b))
}

impl Args {
    fn generator(&self, signal: Signal, batch: usize) -> Generator {
        Generator::new(signal, self.seed, batch).with_trace_shape(TraceShape {
            spans: self.spans_per_trace.0..=self.spans_per_trace.1,
            services: self.services,
            unique_ids: self.unique_ids,
            ..TraceShape::VARIED
        })
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let batch = args.batch.unwrap_or(match args.signal {
        Signal::Traces => 20,
        Signal::Logs => 1000,
        Signal::Metrics => 10,
    });
    if let Some(path) = &args.write {
        return write(&args, path, batch);
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(send(args, batch))
}

/// Writes `--items` items (default 1,000,000) of fixed data, starting at a
/// fixed time, to a data set file.
fn write(args: &Args, path: &std::path::Path, batch: usize) -> anyhow::Result<()> {
    let total = args.items.unwrap_or(1_000_000);
    let mut generator = args.generator(args.signal, batch);
    let mut out = dataset::Writer::create(path, args.signal)?;
    let bar = ProgressBar::new(total)
        .with_style(ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} items {per_sec}")?);
    let (mut items, mut t) = (0, 1_700_000_000_000_000_000u64);
    while items < total {
        let p = generator.payload(t);
        t += if args.signal == Signal::Metrics { 15_000_000_000 } else { 1_000_000_000 };
        items += p.items();
        out.write(&p)?;
        bar.set_position(items);
    }
    out.finish()?;
    bar.finish_and_clear();
    println!("wrote {items} {:?} items to {}", args.signal, path.display());
    Ok(())
}

async fn send(args: Args, batch: usize) -> anyhow::Result<()> {
    let endpoint = args.endpoint.clone().unwrap_or_else(|| match args.protocol {
        Protocol::Grpc => "http://127.0.0.1:4317".into(),
        Protocol::Http => "http://127.0.0.1:4318".into(),
    });
    let policy = match args.retry {
        Retry::Eager => RetryPolicy::EAGER,
        Retry::Collector => RetryPolicy::COLLECTOR,
    };
    let client =
        Client::new(args.protocol, &endpoint, args.tenant.clone())?.with_token(args.token.clone()).with_retry(policy);
    let fixed = args.read.as_deref().map(dataset::read).transpose()?;
    let seconds = args.seconds.or(if args.items.is_some() || fixed.is_some() { None } else { Some(60.0) });
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    let limit = args.items.or_else(|| fixed.as_ref().map(|f| f.iter().map(Payload::items).sum()));
    let signal = fixed.as_ref().and_then(|f| f.first()).map_or(args.signal, Payload::signal);
    // Eager retries stop a little after the run's end; the Collector's at
    // the end of each request's own window.
    let give_up_at = deadline.filter(|_| args.retry == Retry::Eager).map(|d| d + Duration::from_secs(10));

    // One producer generates (or replays) requests; the clients send them.
    let (tx, rx) = async_channel(args.clients * 2);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (stop, rate) = (stop.clone(), args.rate);
        let mut generator = args.generator(signal, batch);
        std::thread::spawn(move || {
            let mut fixed = fixed.map(|f| f.into_iter());
            let started = Instant::now();
            let mut queued = 0u64;
            while !stop.load(Ordering::Relaxed)
                && limit.is_none_or(|l| queued < l)
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                let payload = match fixed.as_mut() {
                    Some(it) => match it.next() {
                        Some(p) => p,
                        None => break,
                    },
                    None => generator.payload(now_ns()),
                };
                // A fixed rate: request n leaves when its items are due.
                if rate > 0.0 {
                    let due = started + Duration::from_secs_f64(queued as f64 / rate);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                queued += payload.items();
                if tx.send_blocking(payload).is_err() {
                    break;
                }
            }
        })
    };

    let tally = Arc::new(Tally::default());
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..args.clients.max(1) {
        let (client, rx, tally) = (client.clone(), rx.clone(), tally.clone());
        workers.spawn(async move {
            while let Ok(payload) = rx.recv().await {
                client.send(&payload, &tally, give_up_at).await;
            }
        });
    }
    drop(rx);

    let bar = match limit {
        Some(l) => ProgressBar::new(l),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(ProgressStyle::with_template(
        "{elapsed_precise} {bar:30} {human_pos} acknowledged  {per_sec}  {msg}",
    )?);
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                bar.set_position(Tally::get(&tally.acknowledged));
                bar.set_message(format!("refusals {} rejected {} failed {}", Tally::get(&tally.refusals), Tally::get(&tally.rejected), Tally::get(&tally.failed)));
                if workers.is_empty() { break; }
            }
            Some(_) = workers.join_next() => {}
            _ = &mut ctrl_c => { stop.store(true, Ordering::Relaxed); }
        }
    }
    let _ = producer.join();
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    let acknowledged = Tally::get(&tally.acknowledged);
    println!("{signal:?} over {:?} to {endpoint} in {elapsed:.1} s:", args.protocol);
    println!("  sent          {} items in {} requests", Tally::get(&tally.items), Tally::get(&tally.requests));
    println!("  acknowledged  {acknowledged} items ({:.0}/s)", acknowledged as f64 / elapsed);
    println!("  refused       {} times, retryable, each retried", Tally::get(&tally.refusals));
    println!("  rejected      {} items (partial success)", Tally::get(&tally.rejected));
    println!("  failed        {} items (not retryable, or out of retries)", Tally::get(&tally.failed));
    if let Some(why) = tally.first_failure.lock().ok().and_then(|f| f.clone()) {
        println!("  first failure: {why}");
    }
    Ok(())
}

/// A bounded channel from the producer thread to the async clients.
fn async_channel(capacity: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity);
    (Sender(tx), Receiver(Arc::new(tokio::sync::Mutex::new(rx))))
}

struct Sender(tokio::sync::mpsc::Sender<Payload>);

impl Sender {
    fn send_blocking(&self, p: Payload) -> Result<(), ()> {
        self.0.blocking_send(p).map_err(|_| ())
    }
}

#[derive(Clone)]
struct Receiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Payload>>>);

impl Receiver {
    async fn recv(&self) -> Result<Payload, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}
