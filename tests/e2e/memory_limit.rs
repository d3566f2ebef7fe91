//! Overload of the real binary: the load generator drives it well past
//! what it can store for 60 s. Its resident memory (the kernel's high-water
//! mark) stays under the configured limit, every refusal is retryable,
//! every acknowledged span is stored, and ingest resumes by itself once the
//! load stops.

use sightline_testkit as common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::binary;
use sightline_loadgen::send::{Client, Protocol, Tally};
use sightline_loadgen::{Generator, Signal};

const LIMIT_MIB: u64 = 1024;
const LOAD: Duration = Duration::from_secs(60);
const CLIENTS: usize = 128;

/// The kernel's peak resident set of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_stays_under_the_memory_limit_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = (LIMIT_MIB << 20).to_string();
    let env = [
        ("SIGHTLINE_INGEST__RESIDENT_MEMORY_LIMIT_BYTES", limit.as_str()),
        // The span store's buffers sized for that limit (docs/operations.md).
        ("SIGHTLINE_SPANS__FLUSH_SPANS", "50000"),
        ("SIGHTLINE_SPANS__MAX_UNFLUSHED_SPANS", "100000"),
        ("SIGHTLINE_SPANS__COMPACTION_MAX_SPANS", "200000"),
    ];
    let mut server = binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &env);
    server.drain_log();
    let pid = server.child.id();
    let client = Client::new(Protocol::Http, &format!("http://{}", server.http), None).expect("client");
    let tally = Arc::new(Tally::default());

    // Requests are made once, then sent again and again, already encoded,
    // by many clients at once, each retrying its refusals: the server does
    // all the work, the test little.
    let mut generator = Generator::new(Signal::Traces, 11, 50);
    let t0 = common::now_nanos();
    let bodies: Arc<Vec<(u64, bytes::Bytes)>> = Arc::new(
        (0..100).map(|i| generator.payload(t0 + i * 1_000_000)).map(|p| (p.items(), p.encode().into())).collect(),
    );
    let stop_at = Instant::now() + LOAD;
    let give_up_at = stop_at + Duration::from_secs(120);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let (client, tally, bodies) = (client.clone(), tally.clone(), bodies.clone());
        clients.spawn(async move {
            let mut i = c;
            while Instant::now() < stop_at {
                let (items, body) = &bodies[i % bodies.len()];
                client.send_encoded(Signal::Traces, *items, body.clone(), &tally, Some(give_up_at)).await;
                i += CLIENTS;
            }
        });
    }
    clients.join_all().await;

    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (sent, acked, refusals, failed) =
        (get(&tally.items), get(&tally.acknowledged), get(&tally.refusals), get(&tally.failed));
    let peak = peak_rss(pid);
    eprintln!(
        "overload: {sent} spans offered in {:?} ({:.0}/s), {acked} acknowledged, {refusals} retryable refusals, \
         {failed} failed; peak RSS {} MiB of a {LIMIT_MIB} MiB limit",
        LOAD,
        sent as f64 / LOAD.as_secs_f64(),
        peak >> 20
    );
    let first_failure = tally.first_failure.lock().expect("lock").clone();
    assert_eq!(failed, 0, "every refusal was retryable and retried: {first_failure:?}");
    assert_eq!(get(&tally.rejected), 0);
    assert!(refusals > 0, "the load was over capacity: the server refused some requests");
    assert!(peak < LIMIT_MIB << 20, "peak RSS {} MiB over the {LIMIT_MIB} MiB limit", peak >> 20);

    // Everything acknowledged is stored, exactly once.
    let stats = server.api.clone();
    let stored = common::eventually("acknowledged spans stored", || {
        let url = format!("http://{stats}/api/stats");
        async move { common::get_json(&url, &[], None).await?["spans"].as_u64().filter(|&n| n == acked) }
    })
    .await;
    assert_eq!(stored, acked);

    // Ingest resumes by itself: a fresh request is accepted without retries.
    let mut fresh = Generator::new(Signal::Traces, 12, 1);
    let payload = fresh.payload(common::now_nanos());
    let mut once = client.clone();
    once.retry.max_retries = 0;
    common::eventually("ingest accepted again", || {
        let (once, payload) = (once.clone(), &payload);
        async move {
            let t = Tally::default();
            once.send(payload, &t, None).await;
            (t.acknowledged.load(Ordering::Relaxed) > 0).then_some(())
        }
    })
    .await;
    server.child.kill().expect("kill");
}
