//! A real Alertmanager (Debian's `prometheus-alertmanager` package) on a
//! loopback port, clustering off, for the alerting tests.

use std::process::{Child, Command, Stdio};

pub struct Alertmanager {
    child: Child,
    pub url: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (for an Alertmanager started later on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// Starts Alertmanager on `port` with one receiver that notifies nobody and
/// its state in `dir`; returns once it is ready.
pub async fn start(dir: &std::path::Path, port: u16) -> Alertmanager {
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n")
        .expect("config");
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager runs (Debian's prometheus-alertmanager package; scripts/test installs it)");
    let url = format!("http://127.0.0.1:{port}");
    crate::wait_ready("Alertmanager", &url).await;
    Alertmanager { child, url }
}

/// The alerts Alertmanager holds (active ones: resolved alerts are left out).
pub async fn alerts(url: &str) -> Vec<serde_json::Value> {
    let response = reqwest::get(format!("{url}/api/v2/alerts")).await.expect("Alertmanager answers");
    response.json::<Vec<serde_json::Value>>().await.expect("a JSON list")
}
