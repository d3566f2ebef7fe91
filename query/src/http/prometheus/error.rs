//! Prometheus's error envelope: `{"status": "error", "errorType": …, "error": …}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::model::Failure;
use crate::error::ApiError;
use crate::limits::Exceeded;
use crate::promql::EvalError;

pub struct PromError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

pub fn bad_data(message: impl Into<String>) -> PromError {
    PromError { status: StatusCode::BAD_REQUEST, kind: "bad_data", message: message.into() }
}

impl From<EvalError> for PromError {
    fn from(e: EvalError) -> Self {
        let (status, kind) = match &e {
            EvalError::BadData(_) => (StatusCode::BAD_REQUEST, "bad_data"),
            EvalError::Execution(_) | EvalError::Exceeded(Exceeded::Series(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "execution")
            }
            EvalError::Exceeded(Exceeded::Time(_)) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
        };
        let message = match e {
            EvalError::BadData(m) | EvalError::Execution(m) => m,
            EvalError::Exceeded(e) => e.to_string(),
        };
        PromError { status, kind, message }
    }
}

/// The query core's errors in Prometheus's words.
impl From<ApiError> for PromError {
    fn from(e: ApiError) -> Self {
        e.log_if_internal();
        let kind = match &e {
            ApiError::BadRequest(_) | ApiError::Query(_) => "bad_data",
            ApiError::NotFound(_) => "not_found",
            ApiError::Timeout(_) => "timeout",
            ApiError::Busy(_) => "too_many_requests",
            ApiError::Storage(_) | ApiError::Internal(_) => "internal",
        };
        PromError { status: e.status(), kind, message: e.to_string() }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let body = Failure { status: "error", kind: self.kind, error: &self.message };
        (self.status, Json(body)).into_response()
    }
}
