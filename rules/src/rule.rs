//! One rule's evaluation with Prometheus's semantics: a recording rule
//! renames and relabels its vector; an alerting rule keeps an alert per
//! label set that goes pending → firing (after `for`) → inactive (resolved,
//! kept 15 minutes so the resolution is sent), honours `keep_firing_for`,
//! and yields the `ALERTS` and `ALERTS_FOR_STATE` series.

use std::collections::{BTreeMap, HashMap, HashSet};

use sightline_storage::metrics::{Labels, METRIC_NAME};

use crate::file::{AlertSpec, RuleKind, RuleSpec};
use crate::template::Data;

/// How long a resolved alert is kept (and sent again), as in Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// One series of a rule's result (or of an instant query's).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub labels: Labels,
    pub v: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// An alert of one label set. Times are Unix ms.
#[derive(Clone, Debug)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub valid_until: i64,
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// Whether it is due to be sent at `ts` (firing, or resolved since last
    /// sent, and not sent within `resend_delay`), as Prometheus decides.
    fn needs_sending(&self, ts: i64, resend_delay: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if self.resolved_at.is_some_and(|r| self.last_sent_at.is_none_or(|s| r > s)) {
            return true;
        }
        self.last_sent_at.is_none_or(|s| s + resend_delay < ts)
    }
}

/// What evaluation asks of the store: an instant query at a time (ms).
pub trait Query {
    fn instant(&self, expr: &str, t: i64) -> Result<Vec<Point>, String>;
}

/// What templates may read besides the alert's own labels and value.
pub struct Context<'a> {
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
}

/// A rule and what it remembers between evaluations.
pub struct Rule {
    pub spec: RuleSpec,
    /// Alerts by label set (alerting rules).
    pub active: HashMap<Labels, Alert>,
    /// `ALERTS` written only once the state is restored after a start.
    pub restored: bool,
    /// The series written at the last evaluation, for staleness markers.
    pub written: HashSet<Labels>,
    pub last_error: Option<String>,
    pub last_evaluation: Option<i64>,
    pub evaluation_seconds: f64,
}

impl Rule {
    pub fn new(spec: RuleSpec, restored: bool) -> Rule {
        Rule {
            spec,
            active: HashMap::new(),
            restored,
            written: HashSet::new(),
            last_error: None,
            last_evaluation: None,
            evaluation_seconds: 0.0,
        }
    }

    /// Evaluates at `ts` (the query runs at `ts - offset`), returning the
    /// series to write at `ts - offset`.
    pub fn eval(
        &mut self,
        query: &dyn Query,
        ts: i64,
        offset: i64,
        limit: usize,
        context: &Context,
    ) -> Result<Vec<Point>, String> {
        let vector = query.instant(&self.spec.expr, ts - offset);
        self.apply(vector, ts, limit, context)
    }

    /// What the rule makes of its query's answer at `ts` (the query ran
    /// without the rule, so that readers of its state never wait for it).
    pub fn apply(
        &mut self,
        vector: Result<Vec<Point>, String>,
        ts: i64,
        limit: usize,
        context: &Context,
    ) -> Result<Vec<Point>, String> {
        let vector = vector?;
        match &self.spec.kind {
            RuleKind::Recording => record(&self.spec, vector, limit),
            RuleKind::Alerting(a) => {
                let a = a.clone();
                self.alert(&a, vector, ts, limit, context)
            }
        }
    }

    fn alert(
        &mut self,
        spec: &AlertSpec,
        vector: Vec<Point>,
        ts: i64,
        limit: usize,
        context: &Context,
    ) -> Result<Vec<Point>, String> {
        let mut found: HashMap<Labels, Alert> = HashMap::with_capacity(vector.len());
        for point in vector {
            let labels: BTreeMap<String, String> =
                point.labels.iter().filter(|(k, _)| *k != METRIC_NAME).map(|(k, v)| (k.into(), v.into())).collect();
            let data = Data {
                labels: &labels,
                external_labels: context.external_labels,
                external_url: context.external_url,
                value: point.v,
            };
            let mut pairs: BTreeMap<String, String> = labels.clone();
            for (name, template) in &spec.label_templates {
                pairs.insert(name.clone(), template.expand(&data));
            }
            pairs.insert("alertname".into(), self.spec.name.clone());
            let annotations = spec.annotation_templates.iter().map(|(k, t)| (k.clone(), t.expand(&data))).collect();
            let labels = Labels::new(pairs.into_iter().collect());
            let alert = Alert {
                labels: labels.clone(),
                annotations,
                state: AlertState::Pending,
                value: point.v,
                active_at: ts,
                fired_at: None,
                resolved_at: None,
                last_sent_at: None,
                valid_until: 0,
                keep_firing_since: None,
            };
            if found.insert(labels, alert).is_some() {
                return Err("vector contains metrics with the same labelset after applying alert labels".into());
            }
        }
        let hold = spec.hold.as_millis() as i64;
        let keep_firing_for = spec.keep_firing_for.as_millis() as i64;
        let present: HashSet<Labels> = found.keys().cloned().collect();
        for (labels, alert) in found {
            match self.active.get_mut(&labels) {
                Some(known) if known.state != AlertState::Inactive => {
                    known.value = alert.value;
                    known.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(labels, alert);
                }
            }
        }
        let mut out = Vec::new();
        let mut active_or_pending = 0;
        let mut gone = Vec::new();
        for (labels, a) in self.active.iter_mut() {
            if !present.contains(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < keep_firing_for;
                }
                if a.state == AlertState::Pending || a.resolved_at.is_some_and(|r| ts - r > RESOLVED_RETENTION_MS) {
                    gone.push(labels.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            active_or_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
            if self.restored {
                out.push(Point { labels: series(&self.spec, a, "ALERTS", Some(a.state)), v: 1.0 });
                out.push(Point {
                    labels: series(&self.spec, a, "ALERTS_FOR_STATE", None),
                    v: (a.active_at / 1000) as f64,
                });
            }
        }
        for labels in gone {
            self.active.remove(&labels);
        }
        if limit > 0 && active_or_pending > limit {
            self.active.clear();
            return Err(format!("exceeded limit of {limit} with {active_or_pending} alerts"));
        }
        Ok(out)
    }

    /// The alerts due to be sent at `ts`, marked as sent: copies with
    /// `valid_until` four resend periods ahead (two failed evaluations or
    /// sends are tolerated), as Prometheus sends them.
    pub fn due(&mut self, ts: i64, resend_delay: i64, interval: i64) -> Vec<Alert> {
        let delta = resend_delay.max(interval);
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts, resend_delay) {
                a.last_sent_at = Some(ts);
                a.valid_until = ts + 4 * delta;
                out.push(a.clone());
            }
        }
        out
    }

    /// The rule's overall state: its most severe alert's.
    pub fn state(&self) -> AlertState {
        let states = self.active.values().map(|a| a.state);
        if states.clone().any(|s| s == AlertState::Firing) {
            AlertState::Firing
        } else if states.into_iter().any(|s| s == AlertState::Pending) {
            AlertState::Pending
        } else {
            AlertState::Inactive
        }
    }
}

/// `ALERTS{alertstate=…}` or `ALERTS_FOR_STATE` for an alert: the rule's
/// labels, then the alert's, then the name.
fn series(spec: &RuleSpec, a: &Alert, name: &str, state: Option<AlertState>) -> Labels {
    let mut pairs: BTreeMap<String, String> = spec.labels.clone();
    pairs.extend(a.labels.iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
    pairs.insert(METRIC_NAME.into(), name.into());
    pairs.insert("alertname".into(), spec.name.clone());
    if let Some(state) = state {
        pairs.insert("alertstate".into(), state.as_str().into());
    }
    Labels::new(pairs.into_iter().collect())
}

/// A recording rule's output: the vector renamed, the rule's labels set.
fn record(spec: &RuleSpec, vector: Vec<Point>, limit: usize) -> Result<Vec<Point>, String> {
    let mut seen = HashSet::with_capacity(vector.len());
    let mut out = Vec::with_capacity(vector.len());
    for p in vector {
        let mut pairs: BTreeMap<String, String> = p.labels.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        pairs.insert(METRIC_NAME.into(), spec.name.clone());
        pairs.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let labels = Labels::new(pairs.into_iter().collect());
        if !seen.insert(labels.clone()) {
            return Err("vector contains metrics with the same labelset after applying rule labels".into());
        }
        out.push(Point { labels, v: p.v });
    }
    if limit > 0 && out.len() > limit {
        return Err(format!("exceeded limit of {limit} with {} series", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
