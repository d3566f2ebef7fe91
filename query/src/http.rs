//! The HTTP surfaces on the API port, one folder each: the native JSON API
//! (`native`), log search (`logs`), saved dashboards (`dashboards`), the
//! Prometheus, Jaeger, Tempo and Loki query APIs (`prometheus`, `jaeger`,
//! `tempo`, `loki`), and the operational endpoints (`ops`). Each owns its routes, its response model
//! (typed, serialised from borrowed data) and the shape of its errors; the
//! query surfaces install [`guard`] rendering refusals in that shape.

pub mod dashboards;
mod guard;
pub mod jaeger;
mod json;
pub mod logs;
pub mod loki;
pub mod native;
pub mod ops;
mod plain;
pub mod prometheus;
pub mod tempo;

use axum::Router;
use axum::http::header;
use axum::routing::get;

use crate::state::QueryState;

/// The native API described in OpenAPI 3.1, served at [`OPENAPI_PATH`].
pub const OPENAPI: &str = include_str!("http/openapi.json");
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// Every query surface and the API's description; `ops::router` is served
/// beside it with its own state.
pub fn router(state: QueryState) -> Router {
    let description = get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) });
    native::router(state.clone())
        .merge(logs::router(state.clone()))
        .merge(prometheus::router(state.clone()))
        .merge(jaeger::router(state.clone()))
        .merge(tempo::router(state.clone()))
        .merge(loki::router(state.clone()))
        .merge(dashboards::router(state))
        .route(OPENAPI_PATH, description)
}

/// The paths this crate serves that [`OPENAPI`] must describe (axum's
/// spelling of parameters, `{trace_id}`); the binary adds `/api/whoami`.
pub fn described_paths() -> impl Iterator<Item = &'static str> {
    native::PATHS.into_iter().chain(logs::PATHS).chain(dashboards::PATHS).chain([OPENAPI_PATH])
}

/// The guard rail as a layer for one surface, refusing in its error shape.
fn guarded<E>(routes: Router<QueryState>, state: QueryState) -> Router
where
    E: From<crate::ApiError> + axum::response::IntoResponse + 'static,
{
    routes.layer(axum::middleware::from_fn_with_state(state.clone(), guard::guard::<E>)).with_state(state)
}
