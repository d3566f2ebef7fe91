//! The `sightline` binary's glue: configuration and server assembly. The
//! work is done by the library crates; see ARCHITECTURE.md.

pub mod auth;
pub mod config;
pub mod serve;
pub mod server;
pub mod tls;
