//! Serves the web UI built into the binary: `index.html` at `/` (never
//! cached, so a new binary's UI loads at once) and Vite's content-hashed
//! assets under `/assets/` (cached for a year).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/ui"]
struct Assets;

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("index.html", "no-cache") }))
        .route(
            "/assets/{*path}",
            get(|Path(path): Path<String>| async move {
                file(&format!("assets/{path}"), "public, max-age=31536000, immutable")
            }),
        )
        .route("/favicon.svg", get(|| async { file("favicon.svg", "public, max-age=86400") }))
}

fn file(path: &str, cache: &'static str) -> Response {
    match Assets::get(path) {
        Some(f) => (
            [(header::CONTENT_TYPE, f.metadata.mimetype().to_owned()), (header::CACHE_CONTROL, cache.to_owned())],
            f.data,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

/// How many files the UI has, for the startup log.
pub fn file_count() -> usize {
    Assets::iter().count()
}
