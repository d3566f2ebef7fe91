//! The binary as a user runs it: `sightline config`, invalid configuration,
//! and a clean stop on SIGTERM that keeps everything acknowledged.

use sightline_testkit as common;

use std::process::Command;

use common::otlp::{trace_id, traces_request};
use prost::Message;

fn sightline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sightline"))
}

#[test]
fn config_prints_the_effective_configuration() {
    let out = sightline()
        .arg("config")
        .env("SIGHTLINE_WAL__FSYNC", "interval")
        .args(["--api-listen", "127.0.0.1:9999"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let parsed: toml::Table = toml::from_str(&text).expect("prints TOML");
    assert_eq!(parsed["wal"]["fsync"].as_str(), Some("interval"));
    assert_eq!(parsed["listen"]["api"].as_str(), Some("127.0.0.1:9999"));
    assert_eq!(parsed["data_dir"].as_str(), Some("./sightline-data"));
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[ingest]\nmax_body_byte = 5\n").expect("write");
    let out = sightline().args(["--config", file.to_str().expect("path"), "config"]).output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_body_byte"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || common::binary::spawn(env!("CARGO_BIN_EXE_sightline"), dir.path(), &[]);
    let mut first = start();
    let http = first.http.clone();
    let client = reqwest::Client::new();
    for n in 0..20 {
        let r = client
            .post(format!("http://{http}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(traces_request(n, 3).encode_to_vec())
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status(), 200);
    }
    let killed = Command::new("kill").args(["-TERM", &first.child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let status = first.child.wait().expect("exits");
    assert!(status.success(), "exit status {status:?}");
    let log: Vec<String> = first.log.by_ref().map_while(Result::ok).collect();
    assert!(log.iter().any(|l| l.contains("stopped cleanly")), "{log:?}");

    let mut second = start();
    second.drain_log();
    let api = second.api.clone();
    // The web UI is served from the binary: the page, never cached, and its
    // content-hashed script, cached for good.
    let index = client.get(format!("http://{api}/")).send().await.expect("GET /");
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    let page = index.text().await.expect("text");
    assert!(page.contains("<title>Sightline</title>"), "{page}");
    let script = page.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("a script");
    assert!(script.starts_with("/assets/"), "{script}");
    let asset = client.get(format!("http://{api}{script}")).send().await.expect("GET asset");
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["content-type"], "text/javascript");
    assert!(asset.headers()["cache-control"].to_str().expect("text").contains("immutable"));
    let missing = client.get(format!("http://{api}/assets/nope.js")).send().await.expect("GET");
    assert_eq!(missing.status(), 404);
    for n in 0..20 {
        let id: String = trace_id(n).iter().map(|b| format!("{b:02x}")).collect();
        let body: serde_json::Value =
            client.get(format!("http://{api}/api/traces/{id}")).send().await.expect("GET").json().await.expect("JSON");
        assert_eq!(body["spans"].as_array().map(Vec::len), Some(3), "trace {n}");
    }
    second.child.kill().expect("kill");
    second.child.wait().expect("reaped");
}
