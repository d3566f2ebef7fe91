//! One error type for every handler, rendered as `{"error": "..."}` (and
//! `"position"` for a log query that does not parse).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A log query the parser refused; the body also says where.
    #[error("{}", .0.message)]
    Query(#[from] crate::logs::parse::ParseError),
    /// A guard rail stopped the query at its deadline.
    #[error("{0}")]
    Timeout(String),
    #[error("storage error: {0}")]
    Storage(#[from] sightline_storage::StorageError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Query(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Storage(e) = &self {
            tracing::error!(error = %e, "query failed in storage");
        }
        let body = match &self {
            ApiError::Query(e) => serde_json::json!({ "error": e.message, "position": e.position }),
            _ => serde_json::json!({ "error": self.to_string() }),
        };
        (self.status(), Json(body)).into_response()
    }
}
