//! A full disk and a read-only data directory, on a small tmpfs the test
//! mounts (so it needs root; it says so and stops otherwise): ingest is
//! refused with a retryable error and a clear log line, everything already
//! acknowledged stays readable (also after a restart), and writing resumes
//! once space or write access returns.

use sightline_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::binary::{self, Running};
use common::otlp::{logs_request, traces_request_at};
use prost::Message;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(ok.success(), "cannot mount a tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn remount(&self, options: &str) {
        let ok =
            Command::new("mount").args(["-o", &format!("remount,{options}")]).arg(&self.0).status().expect("mount");
        assert!(ok.success(), "remount {options}");
    }
}

/// A read-only bind mount of a directory over itself, until dropped.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn over(dir: &Path) -> ReadOnly {
        let bind = Command::new("mount").arg("--bind").arg(dir).arg(dir).status().expect("mount");
        assert!(bind.success(), "bind mount");
        let ro = Command::new("mount").args(["-o", "remount,bind,ro"]).arg(dir).status().expect("mount");
        assert!(ro.success(), "read-only remount of the bind mount");
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    /// Lazily: files the server opened through it (for reading) keep it busy.
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Starts the server and keeps every line it prints.
fn start(data: &Path) -> (Running, Arc<Mutex<Vec<String>>>) {
    let env = [
        ("SIGHTLINE_WAL__SEGMENT_BYTES", "1048576"),
        ("SIGHTLINE_SPANS__FLUSH_SPANS", "2000"),
        ("SIGHTLINE_SPANS__FLUSH_AGE_SECONDS", "1"),
        ("SIGHTLINE_LOGS__WRITER_MEMORY_MB", "32"),
        ("SIGHTLINE_LOGS__INDEXING_THREADS", "1"),
    ];
    let mut server = binary::spawn(env!("CARGO_BIN_EXE_sightline"), data, &env);
    let lines = server.collect_log();
    (server, lines)
}

/// Sent counts: requests acknowledged, with their spans and lines.
#[derive(Default, Debug)]
struct Acked {
    spans: u64,
    lines: u64,
}

/// One log request and one trace request; `Ok` when both were
/// acknowledged, else the status of the refusal (which must be retryable).
async fn send(s: &Running, n: u64, acked: &mut Acked) -> Result<(), u16> {
    let client = reqwest::Client::new();
    let now = common::now_nanos();
    let bodies = [
        ("logs", logs_request(n, 200, now).encode_to_vec(), 200u64),
        ("traces", traces_request_at(n, 50, now).encode_to_vec(), 50u64),
    ];
    let mut result = Ok(());
    for (signal, body, items) in bodies {
        let r = client
            .post(format!("http://{}/v1/{signal}", s.http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .expect("response");
        match r.status().as_u16() {
            200 if signal == "logs" => acked.lines += items,
            200 => acked.spans += items,
            status => {
                assert!(matches!(status, 429 | 503), "{signal}: refusal {status} must be retryable");
                assert!(r.headers().contains_key("retry-after"), "{signal}: {status} without Retry-After");
                if std::env::var_os("DISK_FULL_VERBOSE").is_some() {
                    eprintln!("{signal}: {status} {}", r.text().await.unwrap_or_default());
                }
                result = Err(status);
            }
        }
    }
    result
}

/// Sends until a round is accepted, for at most a minute.
async fn until_accepted(s: &Running, n: &mut u64, acked: &mut Acked, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        *n += 1;
        if send(s, *n, acked).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn stored(s: &Running) -> Option<(u64, u64)> {
    let stats = common::get_json(&format!("http://{}/api/stats", s.api), &[], None).await?;
    Some((stats["spans"].as_u64()?, stats["logRecords"].as_u64()?))
}

/// Waits (at most a minute) until the stores hold exactly what was acknowledged.
async fn all_stored(s: &Running, acked: &Acked, when: &str) {
    let want = (acked.spans, acked.lines);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = stored(s).await;
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{when}: stored (spans, lines) {got:?}, acknowledged {want:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn logged(lines: &Mutex<Vec<String>>, needle: &str) -> bool {
    lines.lock().expect("lock").iter().any(|l| l.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_or_read_only_disk_refuses_retryably_and_resumes() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Tmpfs::mount(dir.path(), "12m");
    let data = dir.path().join("data");
    let (server, log) = start(&data);
    let mut acked = Acked::default();

    // Fill the disk until ingest is refused.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut n = 0;
    let refused = loop {
        n += 1;
        if let Err(status) = send(&server, n, &mut acked).await {
            break status;
        }
        assert!(Instant::now() < deadline, "the disk never filled ({acked:?})");
    };
    eprintln!("disk full after {n} rounds: {acked:?}, refused with {refused}");
    common::eventually("a log line naming the full disk", || async {
        logged(&log, "No space left on device").then_some(())
    })
    .await;
    let (spans, lines) = stored(&server).await.unwrap_or_default();
    eprintln!("while full, queryable: {spans} spans, {lines} lines");
    for l in log.lock().expect("lock").iter().filter(|l| l.contains("ERROR") || l.contains("WARN")).take(12) {
        eprintln!("  {l}");
    }

    // Space returns: writing resumes by itself, and what was acknowledged
    // while the stores could not write becomes queryable.
    fs.remount("size=256m");
    until_accepted(&server, &mut n, &mut acked, "ingest accepted again after space returned").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for l in log.lock().expect("lock").iter().filter(|l| l.contains("ERROR") || l.contains("WARN")).skip(3).take(10) {
        eprintln!("  {l}");
    }
    all_stored(&server, &acked, "after space returned").await;

    // Read-only: a read-only bind mount over the data directory (a busy
    // file system cannot be remounted read-only as a whole), so files
    // already open stay writable and every new one fails: ingest is refused
    // once the WAL needs a new segment. Writable again: resumes.
    let ro = ReadOnly::over(&data);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        n += 1;
        if let Err(status) = send(&server, n, &mut acked).await {
            break status;
        }
        assert!(Instant::now() < deadline, "never refused while read-only");
    };
    assert_eq!(status, 503);
    common::eventually("a log line naming the read-only file system", || async {
        logged(&log, "Read-only file system").then_some(())
    })
    .await;
    drop(ro);
    until_accepted(&server, &mut n, &mut acked, "ingest accepted again once writable").await;
    all_stored(&server, &acked, "once writable again").await;

    // Nothing acknowledged was corrupted: all of it is there after a restart.
    drop(server);
    let (again, _log) = start(&data);
    all_stored(&again, &acked, "after a restart").await;
    eprintln!("after restart: {acked:?} all stored");
}
