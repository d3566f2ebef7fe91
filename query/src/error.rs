//! The query core's error, and its rendering in the native API's shape:
//! `{"error": "..."}` (and `"position"` for a log query that does not
//! parse). The Prometheus and Jaeger surfaces render it in their own
//! envelopes (`http/prometheus/error.rs`, `http/jaeger.rs`).

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
    Query(#[from] crate::log_query::ParseError),
    /// A guard rail stopped the query at its deadline.
    #[error("{0}")]
    Timeout(String),
    /// The tenant already runs as many queries as it may: retry later.
    #[error("{0}")]
    Busy(String),
    #[error("storage error: {0}")]
    Storage(#[from] sightline_storage::StorageError),
    /// The server failed on its own side: a file it could not write, a
    /// query task that stopped.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Query(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Storage(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Logs what the caller cannot fix, whichever surface renders it.
    pub(crate) fn log_if_internal(&self) {
        match self {
            ApiError::Storage(e) => tracing::error!(error = %e, "query failed in storage"),
            ApiError::Internal(e) => tracing::error!(error = %e, "query failed"),
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let body = match &self {
            ApiError::Query(e) => serde_json::json!({ "error": e.message, "position": e.position }),
            _ => serde_json::json!({ "error": self.to_string() }),
        };
        (self.status(), Json(body)).into_response()
    }
}
