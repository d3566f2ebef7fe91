//! A real Prometheus (Debian's `prometheus` package) on a loopback port,
//! for the conformance and remote-write tests.

use std::process::{Child, Command, Stdio};

pub struct Prometheus {
    child: Child,
    pub url: String,
    pub port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus with `config` (YAML; `{port}` is replaced by its own
/// port) and its TSDB in `dir/tsdb`; returns once it is ready.
pub async fn start(dir: &std::path::Path, config: &str) -> Prometheus {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    std::fs::write(dir.join("prometheus.yml"), config.replace("{port}", &port.to_string())).expect("config");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus runs (install Debian's prometheus package; .ci/run does)");
    let url = format!("http://127.0.0.1:{port}");
    crate::wait_ready("Prometheus", &url).await;
    Prometheus { child, url, port }
}
