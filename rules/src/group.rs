//! A group of rules of one tenant, evaluated in order at one interval, each
//! rule's output written before the next runs (so a rule can use the
//! series of the rules above it), with staleness markers for the series a
//! rule stopped returning, as Prometheus writes them.

use std::time::{Duration, Instant};

use sightline_query::limits::QueryLimits;
use sightline_query::promql::{self, Value};
use sightline_storage::metrics::{Labels, METRIC_NAME, MetricStore, STALE_NAN, Sample};
use sightline_storage::model::Tenant;

use crate::file::{GroupSpec, RuleKind, Source};
use crate::rule::{Alert, Context, Point, Query, Rule};

/// Lookback of the instant vector selectors of rules (Prometheus's).
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A group and what its rules remember.
pub struct Group {
    pub tenant: Tenant,
    pub file: String,
    pub name: String,
    pub interval: Duration,
    pub query_offset: Duration,
    pub limit: usize,
    pub source: Source,
    pub rules: Vec<Rule>,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
}

/// The identity of a group across reloads.
pub type GroupKey = (Tenant, String, String);

impl Group {
    pub fn new(tenant: Tenant, spec: GroupSpec, default_interval: Duration, restored: bool) -> Group {
        Group {
            tenant,
            file: spec.file,
            name: spec.name,
            interval: spec.interval.unwrap_or(default_interval),
            query_offset: spec.query_offset.unwrap_or_default(),
            limit: spec.limit,
            source: spec.source,
            rules: spec.rules.into_iter().map(|r| Rule::new(r, restored)).collect(),
            last_evaluation: None,
            evaluation_seconds: 0.0,
        }
    }

    pub fn key(&self) -> GroupKey {
        (self.tenant.clone(), self.file.clone(), self.name.clone())
    }

    /// Takes over the alerts and written series of the rules of `old` that
    /// have the same name, kind and labels (a reload keeps their state).
    pub fn take_state(&mut self, old: &mut Group) {
        for rule in &mut self.rules {
            let same = old.rules.iter_mut().find(|o| {
                o.spec.name == rule.spec.name
                    && o.spec.labels == rule.spec.labels
                    && matches!(o.spec.kind, RuleKind::Recording) == matches!(rule.spec.kind, RuleKind::Recording)
            });
            if let Some(o) = same {
                rule.active = std::mem::take(&mut o.active);
                rule.written = std::mem::take(&mut o.written);
                rule.restored = o.restored;
                rule.last_error = o.last_error.take();
                rule.last_evaluation = o.last_evaluation;
                rule.evaluation_seconds = o.evaluation_seconds;
            }
        }
        self.last_evaluation = old.last_evaluation;
        self.evaluation_seconds = old.evaluation_seconds;
    }

    /// Evaluates rule `i` at `ts`: the samples to write (its output and
    /// staleness markers) and, for an alerting rule, the alerts due.
    pub fn eval_rule(
        &mut self,
        i: usize,
        query: &dyn Query,
        ts: i64,
        context: &Context,
        resend_delay: Duration,
    ) -> (Vec<Sample>, Vec<Alert>) {
        let started = Instant::now();
        let vector = query.instant(&self.rules[i].spec.expr, self.query_time(ts));
        self.apply_rule(i, vector, ts, started.elapsed(), context, resend_delay)
    }

    /// When a query of the evaluation at `ts` runs: `query_offset` before.
    pub fn query_time(&self, ts: i64) -> i64 {
        ts - self.query_offset.as_millis() as i64
    }

    /// Rule `i`'s share of the evaluation at `ts`, given its query's answer
    /// (which took `took`): the samples to write and the alerts due.
    pub fn apply_rule(
        &mut self,
        i: usize,
        vector: Result<Vec<Point>, String>,
        ts: i64,
        took: Duration,
        context: &Context,
        resend_delay: Duration,
    ) -> (Vec<Sample>, Vec<Alert>) {
        let t = self.query_time(ts);
        let (limit, interval) = (self.limit, self.interval.as_millis() as i64);
        let rule = &mut self.rules[i];
        let result = rule.apply(vector, ts, limit, context);
        rule.evaluation_seconds = took.as_secs_f64();
        rule.last_evaluation = Some(ts);
        let mut samples = Vec::new();
        match result {
            Ok(points) => {
                rule.last_error = None;
                let now: std::collections::HashSet<Labels> = points.iter().map(|p| p.labels.clone()).collect();
                for gone in rule.written.iter().filter(|l| !now.contains(*l)) {
                    samples.push(Sample { labels: gone.clone(), t, v: f64::from_bits(STALE_NAN) });
                }
                samples.extend(points.into_iter().map(|p| Sample { labels: p.labels, t, v: p.v }));
                rule.written = now;
            }
            Err(e) => rule.last_error = Some(e),
        }
        let alerts = if matches!(rule.spec.kind, RuleKind::Alerting(_)) {
            rule.due(ts, resend_delay.as_millis() as i64, interval)
        } else {
            Vec::new()
        };
        (samples, alerts)
    }

    /// Staleness markers for every series the group's rules last wrote (the
    /// group is gone after a reload).
    pub fn stale_markers(&self, ts: i64) -> Vec<Sample> {
        let t = ts - self.query_offset.as_millis() as i64;
        let stale = f64::from_bits(STALE_NAN);
        self.rules
            .iter()
            .flat_map(|r| r.written.iter().map(move |l| Sample { labels: l.clone(), t, v: stale }))
            .collect()
    }

    /// Restores the `for` state of the group's alerts from the
    /// `ALERTS_FOR_STATE` series written before a restart, as Prometheus
    /// does: a pending alert keeps its time already held, minus the time
    /// the server was down; one that would fire within `grace` of the
    /// restart fires `grace` after it.
    pub fn restore(&mut self, store: &MetricStore, ts: i64, grace: Duration, tolerance: Duration) {
        let (grace, tolerance) = (grace.as_millis() as i64, tolerance.as_millis() as i64);
        for rule in &mut self.rules {
            let RuleKind::Alerting(spec) = &rule.spec.kind else {
                rule.restored = true;
                continue;
            };
            let hold = spec.hold.as_millis() as i64;
            if hold > 0 && !rule.active.is_empty() {
                let hints = [(METRIC_NAME, "ALERTS_FOR_STATE"), ("alertname", rule.spec.name.as_str())];
                let series = store.select(&self.tenant, &hints, |_| true, ts - tolerance, ts).unwrap_or_default();
                for a in rule.active.values_mut() {
                    let Some(s) = series.iter().find(|s| s.labels.without(METRIC_NAME) == a.labels) else {
                        continue;
                    };
                    let Some(&(down_at, v)) = s.samples.last() else { continue };
                    if sightline_storage::metrics::is_stale(v) {
                        continue;
                    }
                    let mut active_at = v as i64 * 1000;
                    let remaining = hold - (down_at - active_at);
                    if remaining <= 0 {
                        // It was firing: it fires again at the next evaluation.
                    } else if remaining < grace {
                        active_at = ts + grace - hold;
                    } else {
                        active_at += ts - down_at;
                    }
                    a.active_at = active_at;
                }
            }
            rule.restored = true;
        }
    }
}

/// Instant queries over the metric store for one tenant, within the query
/// limits.
pub struct StoreQuery<'a> {
    pub store: &'a MetricStore,
    pub tenant: &'a Tenant,
    pub limits: &'a QueryLimits,
}

impl Query for StoreQuery<'_> {
    fn instant(&self, expr: &str, t: i64) -> Result<Vec<Point>, String> {
        let budget = self.limits.budget();
        match promql::instant(self.store, self.tenant, &budget, expr, t, LOOKBACK_MS).map_err(|e| e.to_string())? {
            Value::Vector(v) => Ok(v.into_iter().map(|s| Point { labels: s.labels, v: s.v }).collect()),
            Value::Scalar(v) => Ok(vec![Point { labels: Labels::default(), v }]),
            other => Err(format!("rule result is not a vector or scalar: {}", other.type_name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use sightline_storage::metrics::{Labels, is_stale};
    use sightline_storage::model::Tenant;

    use super::Group;
    use crate::file::parse;
    use crate::rule::{Context, Point, Query};

    /// Says `up{instance="a"}` = 1 until `gone_after` (ms), nothing after;
    /// remembers the time asked.
    struct Until {
        gone_after: i64,
        asked: Cell<i64>,
    }

    impl Query for Until {
        fn instant(&self, _: &str, t: i64) -> Result<Vec<Point>, String> {
            self.asked.set(t);
            let labels = Labels::new(vec![("__name__".into(), "up".into()), ("instance".into(), "a".into())]);
            Ok(if t <= self.gone_after { vec![Point { labels, v: 1.0 }] } else { vec![] })
        }
    }

    #[test]
    fn query_offset_shifts_the_query_and_the_samples_and_gone_series_get_staleness_markers() {
        let text = "groups:\n  - name: g\n    query_offset: 1m\n    rules:\n      - record: r\n        expr: up\n";
        let spec = parse("r.yml", text).expect("valid").remove(0);
        let mut g = Group::new(Tenant::new("default").expect("tenant"), spec, Duration::from_secs(60), true);
        let (external, url) = (BTreeMap::new(), String::new());
        let c = Context { external_labels: &external, external_url: &url };
        let q = Until { gone_after: 200_000, asked: Cell::new(0) };
        let (samples, _) = g.eval_rule(0, &q, 240_000, &c, Duration::from_secs(60));
        assert_eq!(q.asked.get(), 180_000, "the query runs query_offset earlier");
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].t, samples[0].v, samples[0].labels.name()), (180_000, 1.0, Some("r")));
        let (samples, _) = g.eval_rule(0, &q, 300_000, &c, Duration::from_secs(60));
        assert_eq!(samples.len(), 1, "a staleness marker for the series that went");
        assert!(is_stale(samples[0].v) && samples[0].t == 240_000);
        let (samples, _) = g.eval_rule(0, &q, 360_000, &c, Duration::from_secs(60));
        assert!(samples.is_empty(), "marked stale once");
    }
}
