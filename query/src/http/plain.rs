//! Errors as Loki and Tempo answer them: the status, and the message as
//! plain text (Grafana shows it as it is).

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

pub struct PlainError(ApiError);

impl From<ApiError> for PlainError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for PlainError {
    fn into_response(self) -> Response {
        self.0.log_if_internal();
        (self.0.status(), [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.0.to_string()).into_response()
    }
}
