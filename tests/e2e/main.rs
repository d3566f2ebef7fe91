//! The end-to-end tests: the real server (in process on 127.0.0.1:0, or the
//! real binary) driven by real clients, one module per area. One binary, so
//! that the server is linked once. Shared helpers are in `testkit/`.
//!
//! Run one area with `scripts/test --test e2e <module>::`, e.g. `traces::`.

mod auth;
mod bad_input;
mod cli;
mod crash_loop;
mod crash_recovery;
mod disk_full;
mod elasticsearch;
mod loadgen;
mod logs;
mod loki;
mod loki_query;
mod memory_limit;
mod metrics;
mod object_storage;
mod openapi;
mod otlp_sdk;
mod overload;
mod promql_conformance;
mod query_limits;
mod remote_write_v2;
mod rules;
mod rules_conformance;
mod shards;
mod syslog;
mod tempo;
mod tls;
mod traces;
mod ui;
mod zipkin;
