//! Runs the rule groups: one task per (tenant, file, group), evaluating at
//! multiples of the group's interval; reloads the files (keeping the state
//! of the rules that stay, and the previous rules when a file is broken);
//! hands rule output to an [`Appender`] and due alerts to the notifier.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sightline_query::limits::QueryLimits;
use sightline_storage::logs::LogStore;
use sightline_storage::metrics::{MetricStore, Sample};
use sightline_storage::model::{Tenant, now_unix_nanos};
use tokio_util::sync::CancellationToken;

use crate::config::{AlertingConfig, RulesConfig};
use crate::file::{self, FileError, GroupSpec, Source};
use crate::group::{Group, GroupKey, StoreQuery};
use crate::logs::LogQuery;
use crate::notifier::{Notifier, Posted};
use crate::rule::{Alert, Context, Query};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Where rule output goes: the binary writes it through the ingest
/// pipeline (WAL, then the metric store), so recorded series are durable
/// like any sample.
pub trait Appender: Send + Sync + 'static {
    fn append(&self, tenant: &Tenant, samples: Vec<Sample>) -> BoxFuture<Result<(), String>>;
}

sightline_storage::telemetry! {
    /// The rule engine's own metrics.
    pub struct RulesTelemetry("sightline_rules") {
        /// Rule evaluations
        evaluations: Counter,
        /// Rule evaluations that failed (the rule reports the error)
        evaluation_failures: Counter,
        /// Group evaluations skipped because the one before was still running
        missed_iterations: Counter,
        /// 1 if the rule files were last loaded without error
        last_reload_successful: Gauge,
        /// Rule groups loaded
        groups: Gauge,
    }
}

/// The outcome of the last load of the rule files.
#[derive(Clone, Debug, Default)]
pub struct ReloadStatus {
    pub at_ms: i64,
    pub error: Option<String>,
}

struct Running {
    key: GroupKey,
    group: Arc<Mutex<Group>>,
    stop: CancellationToken,
}

struct Inner {
    rules: RulesConfig,
    alerting: AlertingConfig,
    external_url: String,
    store: MetricStore,
    logs: LogStore,
    limits: QueryLimits,
    appender: Arc<dyn Appender>,
    notifier: Notifier,
    default_tenant: Tenant,
    running: Mutex<Vec<Running>>,
    /// The groups loaded by [`Rules::load`], until [`Rules::begin`].
    loaded: Mutex<Vec<(Tenant, GroupSpec)>>,
    status: Mutex<ReloadStatus>,
    telemetry: RulesTelemetry,
    cancel: CancellationToken,
}

/// The rule engine.
#[derive(Clone)]
pub struct Rules {
    inner: Arc<Inner>,
}

/// What [`Rules::start`] needs.
pub struct Setup {
    pub rules: RulesConfig,
    pub alerting: AlertingConfig,
    pub external_url: String,
    pub store: MetricStore,
    /// Read by groups with `source: logs`.
    pub logs: LogStore,
    pub limits: QueryLimits,
    pub appender: Arc<dyn Appender>,
    pub default_tenant: Tenant,
}

fn now_ms() -> i64 {
    (now_unix_nanos() / 1_000_000) as i64
}

/// Every group of every configured file, checked, with its tenant.
pub fn load(config: &RulesConfig, default_tenant: &Tenant) -> Result<Vec<(Tenant, GroupSpec)>, FileError> {
    let mut out = Vec::new();
    let mut sets = vec![(default_tenant.clone(), &config.files)];
    for (name, globs) in &config.tenants {
        let tenant = Tenant::new(name)
            .map_err(|e| FileError { file: format!("rules.tenants.{name}"), message: e.to_string() })?;
        sets.push((tenant, globs));
    }
    for (tenant, globs) in sets {
        for path in file::expand_globs(globs, Path::new("."))? {
            out.extend(file::load(&path)?.into_iter().map(|g| (tenant.clone(), g)));
        }
    }
    Ok(out)
}

impl Rules {
    /// Loads the rule files (an error names the file, group and rule) and
    /// starts the notifier, on the current runtime; [`Rules::begin`] starts
    /// the evaluations.
    pub fn load(setup: Setup, cancel: CancellationToken) -> Result<Rules, FileError> {
        let specs = load(&setup.rules, &setup.default_tenant)?;
        let timeout = Duration::from_secs(setup.alerting.timeout_seconds);
        let notifier =
            Notifier::start(&setup.alerting.alertmanager_urls, setup.alerting.queue_capacity, timeout, cancel.clone());
        let rules = Rules {
            inner: Arc::new(Inner {
                rules: setup.rules,
                alerting: setup.alerting,
                external_url: setup.external_url.trim_end_matches('/').to_owned(),
                store: setup.store,
                logs: setup.logs,
                limits: setup.limits,
                appender: setup.appender,
                notifier,
                default_tenant: setup.default_tenant,
                running: Mutex::default(),
                loaded: Mutex::new(specs),
                status: Mutex::new(ReloadStatus { at_ms: now_ms(), error: None }),
                telemetry: RulesTelemetry::default(),
                cancel,
            }),
        };
        rules.inner.telemetry.last_reload_successful.set(1);
        Ok(rules)
    }

    /// Starts evaluating the groups loaded (once the stores hold what the
    /// WAL replayed: alerts' `for` state is restored from them).
    pub fn begin(&self) {
        let specs = std::mem::take(&mut *self.inner.loaded.lock());
        self.replace(specs, true);
    }

    pub fn register_telemetry(&self, registry: &mut Registry) {
        self.inner.telemetry.register(registry);
        self.inner.notifier.register(registry);
    }

    /// Loads the files again. On an error the running rules stay, and the
    /// error is kept for the API and the log.
    pub fn reload(&self) -> Result<(), FileError> {
        let result = load(&self.inner.rules, &self.inner.default_tenant);
        let mut status = self.inner.status.lock();
        status.at_ms = now_ms();
        match result {
            Ok(specs) => {
                status.error = None;
                drop(status);
                self.inner.telemetry.last_reload_successful.set(1);
                self.replace(specs, false);
                tracing::info!("rule files reloaded");
                Ok(())
            }
            Err(e) => {
                status.error = Some(e.to_string());
                self.inner.telemetry.last_reload_successful.set(0);
                tracing::error!(error = %e, "cannot reload the rule files; the previous rules stay");
                Err(e)
            }
        }
    }

    pub fn status(&self) -> ReloadStatus {
        self.inner.status.lock().clone()
    }

    /// The running groups, in the order of their files.
    pub fn groups(&self) -> Vec<Arc<Mutex<Group>>> {
        self.inner.running.lock().iter().map(|r| r.group.clone()).collect()
    }

    /// A link into the UI's metrics explorer with `expr` in its table.
    pub fn expression_url(&self, expr: &str) -> String {
        expression_url(&self.inner.external_url, expr)
    }

    /// Starts `specs` in place of the running groups: a group that stays
    /// keeps its rules' state; one that goes writes staleness markers.
    fn replace(&self, specs: Vec<(Tenant, GroupSpec)>, at_start: bool) {
        let interval = Duration::from_secs(self.inner.rules.evaluation_interval_seconds);
        let mut running = self.inner.running.lock();
        let mut old: Vec<Running> = std::mem::take(&mut *running);
        for (tenant, spec) in specs {
            let mut group = Group::new(tenant, spec, interval, !at_start);
            let key = group.key();
            if let Some(i) = old.iter().position(|r| r.key == key) {
                let previous = old.swap_remove(i);
                previous.stop.cancel();
                group.take_state(&mut previous.group.lock());
            }
            let group = Arc::new(Mutex::new(group));
            let stop = self.inner.cancel.child_token();
            tokio::spawn(run(self.inner.clone(), group.clone(), stop.clone(), at_start));
            running.push(Running { key, group, stop });
        }
        self.inner.telemetry.groups.set(running.len() as i64);
        drop(running);
        for gone in old {
            gone.stop.cancel();
            let (tenant, markers) = {
                let g = gone.group.lock();
                (g.tenant.clone(), g.stale_markers(now_ms()))
            };
            if !markers.is_empty() {
                let appender = self.inner.appender.clone();
                tokio::spawn(async move {
                    if let Err(e) = appender.append(&tenant, markers).await {
                        tracing::warn!(error = %e, "cannot write staleness markers of a removed rule group");
                    }
                });
            }
        }
    }
}

/// Evaluates a group at every multiple of its interval until stopped;
/// after the first evaluation following a start, restores the `for`
/// state of its alerts.
async fn run(inner: Arc<Inner>, group: Arc<Mutex<Group>>, stop: CancellationToken, mut restore: bool) {
    let interval = (group.lock().interval.as_millis() as i64).max(1);
    let mut last = None;
    loop {
        let now = now_ms();
        let ts = (now / interval + 1) * interval;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis((ts - now) as u64)) => {}
            _ = stop.cancelled() => return,
        }
        if let Some(last) = last {
            let missed = (ts - last) / interval - 1;
            if missed > 0 {
                inner.telemetry.missed_iterations.inc_by(missed as u64);
            }
        }
        last = Some(ts);
        evaluate(&inner, &group, ts, &stop).await;
        if restore {
            restore = false;
            let (inner, group) = (inner.clone(), group.clone());
            let grace = Duration::from_secs(inner.rules.for_grace_period_seconds);
            let tolerance = Duration::from_secs(inner.rules.for_outage_tolerance_seconds);
            let _ = tokio::task::spawn_blocking(move || group.lock().restore(&inner.store, ts, grace, tolerance)).await;
        }
    }
}

/// One evaluation of every rule of the group at `ts`, in order; stops
/// between rules once the group is stopped (a reload handed its state on).
async fn evaluate(inner: &Arc<Inner>, group: &Arc<Mutex<Group>>, ts: i64, stop: &CancellationToken) {
    let started = Instant::now();
    let (count, tenant) = {
        let g = group.lock();
        (g.rules.len(), g.tenant.clone())
    };
    for i in 0..count {
        if stop.is_cancelled() {
            return;
        }
        let (inner2, group2, stop2) = (inner.clone(), group.clone(), stop.clone());
        let evaluated = tokio::task::spawn_blocking(move || {
            // The query runs without the group's lock: the rules API never waits for it.
            let (expr, t, source, tenant) = {
                let g = group2.lock();
                (g.rules[i].spec.expr.clone(), g.query_time(ts), g.source, g.tenant.clone())
            };
            let started = Instant::now();
            let vector = match source {
                Source::Metrics => {
                    StoreQuery { store: &inner2.store, tenant: &tenant, limits: &inner2.limits }.instant(&expr, t)
                }
                Source::Logs => {
                    let deadline = Some(Instant::now() + inner2.limits.timeout());
                    LogQuery { store: &inner2.logs, tenant: &tenant, deadline }.instant(&expr, t)
                }
            };
            let took = started.elapsed();
            if stop2.is_cancelled() {
                return None; // A reload took the rules' state meanwhile.
            }
            let context =
                Context { external_labels: &inner2.alerting.external_labels, external_url: &inner2.external_url };
            let resend = Duration::from_secs(inner2.rules.resend_delay_seconds);
            let mut g = group2.lock();
            let (samples, alerts) = g.apply_rule(i, vector, ts, took, &context, resend);
            Some((samples, alerts, expr, g.rules[i].last_error.is_some()))
        })
        .await;
        let Ok(Some((samples, alerts, expr, failed))) = evaluated else { return };
        inner.telemetry.evaluations.inc();
        if failed {
            inner.telemetry.evaluation_failures.inc();
        }
        let written = if samples.is_empty() { Ok(()) } else { inner.appender.append(&tenant, samples).await };
        if let Err(e) = written {
            inner.telemetry.evaluation_failures.inc();
            if let Some(rule) = group.lock().rules.get_mut(i) {
                rule.last_error = Some(format!("cannot write the rule's samples: {e}"));
            }
        }
        if !alerts.is_empty() {
            send(inner, &alerts, &expr);
        }
    }
    let mut g = group.lock();
    g.last_evaluation = Some(ts);
    g.evaluation_seconds = started.elapsed().as_secs_f64();
}

fn expression_url(base: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!("{base}/#/metrics?q={q}&mode=table")
}

fn send(inner: &Inner, alerts: &[Alert], expr: &str) {
    let url = expression_url(&inner.external_url, expr);
    let posted: Vec<Posted> =
        alerts.iter().map(|a| Posted::new(a, &inner.alerting.external_labels, url.clone())).collect();
    inner.notifier.send(&posted);
}
