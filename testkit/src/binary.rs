//! Runs the real `sightline` binary on loopback ports chosen by the OS and
//! reads its addresses from its log.

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

pub struct Running {
    pub child: Child,
    pub grpc: String,
    pub http: String,
    pub api: String,
    /// The rest of the log, once the server said it is ready.
    pub log: Lines<BufReader<ChildStdout>>,
}

impl Running {
    /// Keeps draining the log in the background, so that the server never
    /// blocks on a full pipe.
    pub fn drain_log(&mut self) {
        let stdout = std::mem::replace(&mut self.log, BufReader::new(empty_stdout()).lines());
        std::thread::spawn(move || for _ in stdout {});
    }

    /// Keeps every line of the log from now on, for tests that look for one.
    pub fn collect_log(&mut self) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sink, log) = (lines.clone(), std::mem::replace(&mut self.log, BufReader::new(empty_stdout()).lines()));
        std::thread::spawn(move || {
            for line in log.map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        lines
    }
}

/// A test that fails part-way must not leave its server running.
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn empty_stdout() -> ChildStdout {
    let mut child = Command::new("true").stdout(Stdio::piped()).spawn().expect("true runs");
    let out = child.stdout.take().expect("stdout");
    let _ = child.wait();
    out
}

/// Starts `binary` with its data in `data_dir` and the extra environment.
pub fn spawn(binary: &str, data_dir: &Path, env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(binary)
        .args(["--data-dir", data_dir.to_str().expect("utf-8 path")])
        .args(["--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
        .args(["--zipkin-listen", "127.0.0.1:0"])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let mut log = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut grpc, mut http, mut api) = (None, None, None);
    for line in log.by_ref() {
        let line = line.expect("log line");
        let addr = || line.rsplit(' ').next().map(str::to_owned);
        if line.contains("OTLP/gRPC listening on") {
            grpc = addr();
        } else if line.contains("OTLP/HTTP listening on") {
            http = addr();
        } else if line.contains("API and /metrics listening on") {
            api = addr();
        } else if line.contains("Sightline is ready") {
            break;
        }
    }
    Running {
        child,
        grpc: grpc.expect("gRPC address logged"),
        http: http.expect("HTTP address logged"),
        api: api.expect("API address logged"),
        log,
    }
}
