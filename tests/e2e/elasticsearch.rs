//! The Elasticsearch bulk API through the real server: a table of bulk
//! requests (valid and invalid documents, `index` and `create`, a missing
//! timestamp, an index in the path) answered item by item, the probes
//! shippers send first, and Debian's `rsyslog` shipping lines written with
//! `logger` through `omelasticsearch`, found by the log search.

use serde_json::{Value, json};
use sightline_testkit as common;

async fn bulk(server: &common::TestServer, path: &str, body: String) -> (u16, Value) {
    let answer = reqwest::Client::new()
        .post(server.api_url(path))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_requests_are_answered_item_by_item() {
    let server = common::start(|_| {}).await;
    // A second ago, to the millisecond (the search looks at the last hour).
    let now_ms = common::now_nanos() / 1_000_000 - 1000;
    let at =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms)).to_string();
    let info = common::get_json(&server.api_url("/elasticsearch/"), &[], None).await.expect("info");
    assert_eq!(info["version"]["number"], "8.11.0");
    let template =
        reqwest::Client::new().head(server.api_url("/elasticsearch/_index_template/logs")).send().await.expect("HEAD");
    assert_eq!(template.status(), 200, "templates exist as far as shippers ask");

    let body = [
        json!({"index": {"_index": "shop"}}).to_string(),
        json!({"@timestamp": at, "message": "order 1 paid", "log": {"level": "info"}, "service": {"name": "checkout"}, "order": {"id": 1}}).to_string(),
        json!({"create": {"_index": "shop"}}).to_string(),
        json!({"message": "no timestamp here", "service.name": "checkout", "log.level": "error"}).to_string(),
        json!({"index": {"_index": "shop"}}).to_string(),
        "{not json".to_string(),
        json!({"index": {"_index": "shop"}}).to_string(),
        json!({"@timestamp": "last tuesday", "message": "bad time"}).to_string(),
        json!({"delete": {"_index": "shop", "_id": "1"}}).to_string(),
        json!({"index": {"_index": "shop"}}).to_string(),
        json!(["an", "array"]).to_string(),
    ]
    .join("\n")
        + "\n";
    let (status, answer) = bulk(&server, "/elasticsearch/_bulk", body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["errors"], true);
    let items = answer["items"].as_array().expect("items");
    let got: Vec<(String, u64)> = items
        .iter()
        .map(|i| {
            let (action, v) = i.as_object().expect("item").iter().next().expect("one action");
            (action.clone(), v["status"].as_u64().expect("status"))
        })
        .collect();
    let want: Vec<(String, u64)> =
        [("index", 201), ("create", 201), ("index", 400), ("index", 400), ("delete", 400), ("index", 400)]
            .map(|(a, s)| (a.to_string(), s))
            .to_vec();
    assert_eq!(got, want);
    assert_eq!(items[0]["index"]["result"], "created");
    assert_eq!(items[2]["index"]["error"]["type"], "document_parsing_exception");
    assert_eq!(items[3]["index"]["error"]["type"], "document_parsing_exception");
    assert_eq!(items[5]["index"]["error"]["type"], "mapper_parsing_exception");

    // The index from the path, and every valid document searchable.
    let (status, answer) = bulk(
        &server,
        "/elasticsearch/audit/_bulk",
        format!("{}\n{}\n", json!({"index": {}}), json!({"message": "audit entry", "user": {"name": "ann"}})),
    )
    .await;
    assert_eq!((status, answer["errors"].as_bool()), (200, Some(false)));
    let found = common::log_hits(&server, "service:checkout", 2).await;
    let paid = found.iter().find(|h| h["body"] == "order 1 paid").expect("the first document");
    assert_eq!(paid["timeUnixNano"], (now_ms * 1_000_000).to_string());
    assert_eq!(paid["severity"], "INFO");
    assert_eq!(paid["attributes"]["order.id"], 1);
    assert_eq!(paid["attributes"]["elasticsearch.index"], "shop");
    let untimed = found.iter().find(|h| h["body"] == "no timestamp here").expect("the second document");
    assert_eq!(untimed["severity"], "ERROR");
    let audit = common::log_hits(&server, "service:audit", 1).await;
    assert_eq!(audit[0]["attributes"]["user.name"], "ann", "no service.name: the index names the service");
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_over_its_rate_gets_elasticsearch_s_429() {
    let server = common::start_rate_limited(1, 2).await;
    let docs = |n: usize| {
        (0..n)
            .map(|i| format!("{}\n{}\n", json!({"index": {"_index": "x"}}), json!({"message": i})))
            .collect::<String>()
    };
    assert_eq!(bulk(&server, "/elasticsearch/_bulk", docs(3)).await.0, 200);
    let (status, answer) = bulk(&server, "/elasticsearch/_bulk", docs(3)).await;
    assert_eq!(status, 429);
    assert_eq!(answer["error"]["type"], "es_rejected_execution_exception");
    server.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_ships_through_omelasticsearch() {
    let server = common::start(|_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // ECS-style documents, as an rsyslog setup for Elasticsearch writes them.
    let actions = format!(
        r#"module(load="omelasticsearch")
template(name="ecs" type="list" option.jsonf="on") {{
  property(outname="@timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="message" name="msg" format="jsonf" droplastlf="on")
  property(outname="host.name" name="hostname" format="jsonf")
  property(outname="log.level" name="syslogseverity-text" format="jsonf")
  property(outname="service.name" name="programname" format="jsonf")
}}
action(type="omelasticsearch" server="http://{api}/elasticsearch" searchIndex="syslog" bulkmode="on" template="ecs")
"#,
        api = server.server.api_addr,
    );
    let rsyslog = common::rsyslog::start(dir.path(), &actions).await;
    rsyslog.log("gateway", "user.err", "card processor timed out");
    rsyslog.log("gateway", "user.warning", "retrying in 5s");
    let found = common::log_hits(&server, "service:gateway", 2).await;
    // rsyslog's `msg` keeps the space after the tag, as Elasticsearch would.
    let body = |h: &&Value| h["body"].as_str().map(str::trim).unwrap_or("").to_owned();
    let error = found.iter().find(|h| body(h) == "card processor timed out").expect("the error line");
    assert_eq!(error["severity"], "ERROR");
    assert!(error["resource"]["host.name"].as_str().is_some_and(|h| !h.is_empty()));
    let warning = found.iter().find(|h| body(h) == "retrying in 5s").expect("the warning");
    assert_eq!(warning["severity"], "WARN");
    server.server.shutdown().await.expect("shutdown");
}
