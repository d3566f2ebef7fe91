//! Syslog through the real server: Python's `logging.handlers.SysLogHandler`
//! over UDP and TCP, and Debian's `rsyslog` forwarding lines written with
//! `logger` over TCP (RFC 5424, octet-counted) and UDP; every line found by
//! the log search with its service, host and severity.

use serde_json::Value;
use sightline_testkit as common;

async fn server() -> common::TestServer {
    common::start(|c| c.listen.syslog = Some("127.0.0.1:0".parse().expect("address"))).await
}

fn line<'a>(hits: &'a [Value], body: &str) -> &'a Value {
    hits.iter().find(|h| h["body"] == body).unwrap_or_else(|| panic!("no line {body:?} in {hits:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_s_syslog_handler_over_udp_and_tcp() {
    let server = server().await;
    let addr = server.server.syslog_addr.expect("syslog listens");
    let script = r#"
import logging, logging.handlers, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
for name, kind in (("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM)):
    handler = logging.handlers.SysLogHandler(address=(host, port), socktype=kind)
    handler.ident = "pyapp: "
    log = logging.getLogger(name)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.error(name + " disk full on /var")
    log.warning(name + " slow answers")
    handler.close()
"#;
    common::run_python(script, &[&addr.ip().to_string(), &addr.port().to_string()]);
    let found = common::log_hits(&server, "service:pyapp", 4).await;
    for transport in ["udp", "tcp"] {
        let error = line(&found, &format!("{transport} disk full on /var"));
        assert_eq!(error["severity"], "ERROR");
        assert_eq!(error["attributes"]["syslog.facility"], 1, "user");
        assert_eq!(line(&found, &format!("{transport} slow answers"))["severity"], "WARN");
    }
    let metrics = reqwest::get(server.api_url("/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("sightline_syslog_received_total{transport=\"udp\"} 2"), "counted");
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_forwards_over_tcp_and_udp() {
    let server = server().await;
    let port = server.server.syslog_addr.expect("syslog listens").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let forward = |protocol: &str, extra: &str| {
        format!(
            "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"{protocol}\" {extra} template=\"RSYSLOG_SyslogProtocol23Format\")\n"
        )
    };
    let actions = forward("tcp", "TCP_Framing=\"octet-counted\"") + &forward("udp", "");
    let rsyslog = common::rsyslog::start(dir.path(), &actions).await;
    rsyslog.log("shipper", "user.err", "payment gateway refused");
    rsyslog.log("shipper", "daemon.info", "nightly export done");
    // Each line arrives twice: once over TCP, once over UDP.
    let found = common::log_hits(&server, "service:shipper", 4).await;
    let errors: Vec<&Value> = found.iter().filter(|h| h["body"] == "payment gateway refused").collect();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|h| h["severity"] == "ERROR" && h["attributes"]["syslog.version"] == 1));
    assert!(errors.iter().all(|h| h["resource"]["host.name"].as_str().is_some_and(|h| !h.is_empty())));
    let info = line(&found, "nightly export done");
    assert_eq!(info["severity"], "INFO");
    assert_eq!(info["attributes"]["syslog.facility"], 3, "daemon");
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_lines_refused_by_the_rate_limit_are_retried_not_lost() {
    // 5 lines a second: 40 lines sent at once must wait, and all arrive.
    let server = common::start(|c| {
        c.listen.syslog = Some("127.0.0.1:0".parse().expect("address"));
        c.ingest.rate_limit.items_per_second = 5;
        c.ingest.rate_limit.burst_items = 5;
    })
    .await;
    let addr = server.server.syslog_addr.expect("syslog listens");
    let script = r#"
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
for i in range(40):
    line = "<14>1 - - burst - - - line %d" % i
    s.sendall(("%d %s" % (len(line), line)).encode())
    if i % 10 == 9:
        time.sleep(0.2)  # four batches: the later ones find the bucket empty
s.close()
"#;
    common::run_python(script, &[&addr.ip().to_string(), &addr.port().to_string()]);
    let found = common::log_hits(&server, "service:burst", 40).await;
    assert!(found.iter().any(|h| h["body"] == "line 39"));
    let metrics = reqwest::get(server.api_url("/metrics")).await.expect("metrics").text().await.expect("text");
    let refused: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("sightline_ingest_refused_items_total{") && l.contains("signal=\"logs\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(refused > 0.0, "the door refused some batches meanwhile");
    assert!(!metrics.contains("sightline_syslog_dropped_total{transport=\"tcp\"}"), "and none was dropped");
    server.server.shutdown().await.expect("shutdown");
}
