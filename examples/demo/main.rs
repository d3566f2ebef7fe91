//! A small coffee-gear shop instrumented with the OpenTelemetry Rust SDK,
//! sending traces, logs and metrics to Sightline over OTLP/gRPC.
//!
//! ```text
//! cargo run --release                      # Sightline, in one terminal
//! cargo run --release --example demo       # the shop, in another
//! ```
//!
//! Four services (gateway, orders, payments, inventory) call each other with
//! trace context propagated in headers; orders and inventory query Postgres,
//! payments calls a bank. Errors and slow paths happen at realistic rates:
//! out-of-stock items, declined cards, bank timeouts, slow queries and the
//! odd deadlock.

mod shop;
mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Runs a demo shop that sends traces, logs and metrics to Sightline.")]
struct Args {
    /// Sightline's OTLP/gRPC endpoint.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Browser requests per second.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
    /// Send as this tenant (the `X-Scope-OrgID` header).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let target = telemetry::Target { endpoint: args.endpoint.clone(), tenant: args.tenant.clone() };
    let shop = Arc::new(shop::Shop::new(&target)?);
    let tally = Arc::new(Tally::default());
    println!("demo shop sending to {} at {} requests/s; Ctrl-C stops", args.endpoint, args.rate);

    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    let mut report = tokio::time::interval(Duration::from_secs(10));
    report.tick().await;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let (shop, tally) = (shop.clone(), tally.clone());
                tasks.spawn(async move {
                    let status = shop.request().await;
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    let bucket = if status >= 500 { &tally.server_errors } else if status >= 400 { &tally.client_errors } else { return };
                    bucket.fetch_add(1, Ordering::Relaxed);
                });
                while tasks.try_join_next().is_some() {}
            }
            _ = report.tick() => print_tally(&tally, started),
            _ = tokio::signal::ctrl_c() => break,
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    // Let requests in flight finish, then flush everything buffered.
    while tasks.join_next().await.is_some() {}
    print_tally(&tally, started);
    tokio::task::spawn_blocking(move || shop.shutdown()).await?;
    Ok(())
}

fn print_tally(tally: &Tally, started: Instant) {
    println!(
        "{:>5.0} s: {} requests, {} client errors, {} server errors",
        started.elapsed().as_secs_f64(),
        tally.requests.load(Ordering::Relaxed),
        tally.client_errors.load(Ordering::Relaxed),
        tally.server_errors.load(Ordering::Relaxed),
    );
}
