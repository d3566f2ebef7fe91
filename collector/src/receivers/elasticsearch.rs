//! The Elasticsearch bulk API for log shippers (Filebeat, Logstash, Fluent
//! Bit's `es` output, rsyslog's `omelasticsearch`), on the API port under
//! `/elasticsearch`: `POST /elasticsearch/_bulk` and
//! `/elasticsearch/{index}/_bulk`, plus what shippers ask first (`GET /`
//! with a version, index templates and indices answered as existing).
//! Documents become log records ([`bulk`]) and take the same door as OTLP
//! in one request; the answer is the bulk response with one item per
//! action, `errors: true` and per-item errors for what could not be taken.
//! A refusal of the whole request (rate limit, memory) is Elasticsearch's
//! 429 `es_rejected_execution_exception`, which shippers retry.

mod bulk;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::adapter::{logs_request, submit_with};
use super::otlp_http::{retry_later, status_of};
use crate::error::IngestError;
use crate::pipeline::Pipeline;
use crate::signal::Logs;

/// The Elasticsearch version reported to shippers that check it.
const VERSION: &str = "8.11.0";

#[derive(Clone)]
struct EsState {
    pipeline: Arc<Pipeline>,
    /// Document ids handed out (`_id`, `_seq_no`).
    next_id: Arc<AtomicU64>,
}

pub fn router(pipeline: Arc<Pipeline>) -> Router {
    let state = EsState { pipeline, next_id: Arc::new(AtomicU64::new(1)) };
    Router::new()
        .route("/elasticsearch", get(info).head(ok))
        .route("/elasticsearch/", get(info).head(ok))
        .route("/elasticsearch/_bulk", post(bulk_all).put(bulk_all))
        .route("/elasticsearch/{index}/_bulk", post(bulk_index).put(bulk_index))
        .route("/elasticsearch/_cluster/health", get(health))
        .route("/elasticsearch/_license", get(license))
        .route("/elasticsearch/_index_template/{name}", get(template).head(ok).put(acknowledged))
        .route("/elasticsearch/_template/{name}", get(template).head(ok).put(acknowledged))
        .route("/elasticsearch/_ilm/policy/{name}", get(template).head(ok).put(acknowledged))
        .route("/elasticsearch/{index}", get(index).head(ok).put(acknowledged))
        .with_state(state)
}

async fn info() -> Response {
    axum::Json(json!({
        "name": "sightline",
        "cluster_name": "sightline",
        "cluster_uuid": "sightline",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "sightline",
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }))
    .into_response()
}

async fn ok() -> StatusCode {
    StatusCode::OK
}

async fn acknowledged() -> Response {
    axum::Json(json!({ "acknowledged": true })).into_response()
}

async fn health() -> Response {
    axum::Json(json!({ "cluster_name": "sightline", "status": "green", "number_of_nodes": 1 })).into_response()
}

async fn license() -> Response {
    axum::Json(json!({ "license": { "status": "active", "type": "basic", "uid": "sightline" } })).into_response()
}

async fn template(Path(name): Path<String>) -> Response {
    axum::Json(json!({ name: {} })).into_response()
}

async fn index(Path(name): Path<String>) -> Response {
    axum::Json(json!({ name: { "aliases": {}, "mappings": {}, "settings": {} } })).into_response()
}

async fn bulk_all(State(state): State<EsState>, headers: HeaderMap, body: Body) -> Response {
    take(state, None, headers, body).await
}

async fn bulk_index(
    State(state): State<EsState>,
    Path(index): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    take(state, Some(index), headers, body).await
}

async fn take(state: EsState, index: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = submit_with::<Logs, _>(&state.pipeline, &headers, body, 6, true, move |body| {
        let text = std::str::from_utf8(&body).map_err(|_| IngestError::Invalid("the bulk body is not UTF-8".into()))?;
        let now = sightline_storage::model::now_unix_nanos();
        let mut items = bulk::parse(text, index.as_deref(), now);
        let mut by_resource: BTreeMap<(String, Option<String>), Vec<_>> = BTreeMap::new();
        for item in &mut items {
            if let Ok(doc) = &mut item.outcome {
                let service = doc.service.clone().unwrap_or_else(|| item.index.clone());
                by_resource.entry((service, doc.host.clone())).or_default().push(std::mem::take(&mut doc.record));
            }
        }
        Ok((logs_request("elasticsearch", by_resource), None, items))
    })
    .await;
    match result {
        Ok((outcome, items)) => {
            let refused = (outcome.rejected > 0).then_some(outcome.message.as_str());
            response(&state, items, refused, started)
        }
        Err(e) => refusal(&e),
    }
}

/// The bulk response: one item per action. `refused`: the door refused some
/// records (a limit on attributes or size), reported on every taken item,
/// since it does not say which.
fn response(state: &EsState, items: Vec<bulk::Item>, refused: Option<&str>, started: Instant) -> Response {
    let mut errors = false;
    let out: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let body = match (&item.outcome, refused) {
                (Ok(_), None) => {
                    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
                    json!({
                        "_index": item.index, "_id": format!("{id:x}"), "_version": 1, "result": "created",
                        "_shards": { "total": 1, "successful": 1, "failed": 0 },
                        "_seq_no": id, "_primary_term": 1, "status": 201,
                    })
                }
                (Ok(_), Some(message)) => {
                    errors = true;
                    json!({ "_index": item.index, "status": 400,
                            "error": { "type": "illegal_argument_exception", "reason": message } })
                }
                (Err((status, kind, reason)), _) => {
                    errors = true;
                    json!({ "_index": item.index, "status": status, "error": { "type": kind, "reason": reason } })
                }
            };
            json!({ item.action: body })
        })
        .collect();
    let took = started.elapsed().as_millis() as u64;
    axum::Json(json!({ "took": took, "errors": errors, "items": out })).into_response()
}

/// A refusal of the whole request, in Elasticsearch's error shape.
fn refusal(e: &IngestError) -> Response {
    let (status, _) = status_of(e);
    let kind = match status.as_u16() {
        429 | 503 => "es_rejected_execution_exception",
        413 => "content_too_long_exception",
        _ => "illegal_argument_exception",
    };
    let body = json!({ "error": { "type": kind, "reason": e.to_string() }, "status": status.as_u16() });
    let mut response = (status, axum::Json(body)).into_response();
    retry_later(&mut response, e);
    response
}
