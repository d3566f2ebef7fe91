//! The guard rail in front of every query surface: a slot among the
//! tenant's concurrent queries, and the deadline. The handlers' own
//! evaluation stops at the same deadline ([`crate::limits::Budget`]); this
//! answers even if one does not. A refusal is rendered in the shape of the
//! surface that installed the guard (`E`), never guessed.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::QueryState;

pub async fn guard<E: From<ApiError> + IntoResponse>(
    State(state): State<QueryState>,
    request: Request,
    next: Next,
) -> Response {
    let tenant = match state.tenant(request.headers()) {
        Ok(t) => t,
        Err(e) => return E::from(e).into_response(),
    };
    let max = state.limits.max_concurrent_per_tenant;
    let Some(_slot) = state.running.enter(tenant.as_str(), max) else {
        return E::from(ApiError::Busy(format!(
            "tenant {tenant} already has {max} queries running (query.max_concurrent_per_tenant): retry when one finishes"
        )))
        .into_response();
    };
    match tokio::time::timeout(state.limits.timeout(), next.run(request)).await {
        Ok(response) => response,
        Err(_) => E::from(state.timed_out()).into_response(),
    }
}
