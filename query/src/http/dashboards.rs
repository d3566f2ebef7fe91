//! Dashboards saved by the web UI (`crate::dashboards`): `GET
//! /api/dashboards` lists them, `POST` creates one (import),
//! `GET`/`PUT`/`DELETE /api/dashboards/{id}` read, replace and delete.

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::dashboards::{MAX_BYTES, check};
use crate::error::ApiError;
use crate::state::QueryState;

/// The paths served here, as described in `openapi.json`.
pub const PATHS: [&str; 2] = ["/api/dashboards", "/api/dashboards/{id}"];

pub fn router(state: QueryState) -> Router {
    let [all, one] = PATHS;
    Router::new().route(all, get(list).post(create)).route(one, get(read).put(replace).delete(remove)).with_state(state)
}

/// The body as JSON, refusing what is too large or not JSON with a 400.
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BYTES {
        return Err(ApiError::BadRequest(format!("a dashboard is at most {MAX_BYTES} bytes")));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("dashboard is not JSON: {e}")))
}

async fn list(State(s): State<QueryState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let tenant = s.tenant(&headers)?;
    let list = s.dashboards.list(&tenant).await?;
    Ok(Json(json!({ "dashboards": list })))
}

async fn create(
    State(s): State<QueryState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tenant = s.tenant(&headers)?;
    let doc = parse_body(&body)?;
    check(&doc)?;
    let id = s.dashboards.new_id(&tenant, doc["title"].as_str().unwrap_or("")).await?;
    s.dashboards.put(&tenant, &id, doc).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn read(
    State(s): State<QueryState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = s.tenant(&headers)?;
    Ok(Json(s.dashboards.get(&tenant, &id).await?))
}

async fn replace(
    State(s): State<QueryState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let tenant = s.tenant(&headers)?;
    let doc = parse_body(&body)?;
    s.dashboards.put(&tenant, &id, doc).await?;
    Ok(Json(json!({ "saved": true })))
}

async fn remove(
    State(s): State<QueryState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = s.tenant(&headers)?;
    s.dashboards.delete(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
