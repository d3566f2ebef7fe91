//! The query side: the engines over storage's stores and the HTTP surfaces
//! served on the API port (`:7070` by default). See ARCHITECTURE.md.
//!
//! - [`state`]: what every surface shares (stores, tenant, time ranges,
//!   running store work off the reactor at the deadline); [`limits`]: the
//!   guard rails; [`error`]: the core's error; [`params`]: shared parsing.
//! - Engines: [`promql`], [`traces`] (assembly, search, dependencies),
//!   [`traceql`] (Tempo's query language over the span store), [`logql`]
//!   (Loki's over the log store),
//!   [`log_query`] (the log query language), [`dashboards`] (their store).
//! - [`http`]: one folder per surface, each with its routes and response model.
//!
//! Reads through storage's stores; writes a wire protobuf only where a
//! surface's clients ask for one (Tempo's trace by id, with `sightline-proto`).

pub mod dashboards;
pub mod error;
pub mod http;
mod lex;
pub mod limits;
pub mod log_query;
pub mod logql;
pub mod params;
pub mod promql;
pub mod state;
pub mod traceql;
pub mod traces;

pub use error::ApiError;
pub use http::router;
pub use state::QueryState;
