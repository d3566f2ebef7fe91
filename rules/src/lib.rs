//! Recording and alerting rules in Prometheus's format, evaluated per
//! tenant with the PromQL engine of `sightline-query`, and the alerts they
//! raise sent to Alertmanager. See ARCHITECTURE.md.
//!
//! - [`file`]: rule files read and checked as `promtool check rules` does;
//!   [`template`]: Go-template expansion of alert labels and annotations.
//! - [`rule`]: one rule's evaluation (the alert state machine);
//!   [`group`]: a group's evaluation, staleness markers, `for` restore;
//!   [`logs`]: log-count expressions of `source: logs` groups.
//! - [`manager`]: the groups' tasks and reloads; [`notifier`]: the
//!   Alertmanager client; [`api`]: the rules and alerts APIs.
//!
//! Rule output goes to an [`Appender`] (the binary's: the ingest pipeline,
//! so recorded series are durable like any sample); this crate never sees
//! the collector.

pub mod api;
pub mod config;
pub mod file;
mod gofmt;
pub mod group;
pub mod logs;
pub mod manager;
pub mod notifier;
pub mod rule;
pub mod template;

pub use config::{AlertingConfig, RulesConfig};
pub use manager::{Appender, BoxFuture, Rules, Setup};
