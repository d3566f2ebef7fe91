use std::cell::RefCell;
use std::collections::BTreeMap;

use sightline_storage::metrics::Labels;

use super::{AlertState, Context, Point, Query, Rule};
use crate::file::parse;

/// Answers every query with the vector set for the time asked.
struct Fixed(RefCell<Vec<Point>>);

impl Query for Fixed {
    fn instant(&self, _: &str, _: i64) -> Result<Vec<Point>, String> {
        Ok(self.0.borrow().clone())
    }
}

fn point(instance: &str, v: f64) -> Point {
    Point { labels: Labels::new(vec![("__name__".into(), "up".into()), ("instance".into(), instance.into())]), v }
}

fn rule(body: &str) -> Rule {
    let text = format!("groups:\n  - name: g\n    rules:\n      - {body}\n");
    let spec = parse("r.yml", &text).expect("valid").remove(0).rules.remove(0);
    Rule::new(spec, true)
}

const MIN: i64 = 60_000;

fn ctx() -> (BTreeMap<String, String>, String) {
    ([("cluster".to_string(), "eu".to_string())].into(), "http://s".into())
}

#[test]
fn an_alert_goes_pending_firing_resolved_and_is_sent_as_prometheus_sends_it() {
    let mut r = rule(
        "alert: Down\n        expr: up == 0\n        for: 2m\n        labels:\n          severity: page\n        annotations:\n          s: '{{ $labels.instance }} {{ $value }} {{ $externalLabels.cluster }}'",
    );
    let (external, url) = ctx();
    let c = Context { external_labels: &external, external_url: &url };
    let q = Fixed(RefCell::new(vec![point("a", 0.0)]));
    let out = r.eval(&q, 0, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Pending);
    let alerts: Vec<_> = out.iter().filter(|p| p.labels.name() == Some("ALERTS")).collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].labels.get("alertstate"), Some("pending"));
    assert_eq!(alerts[0].labels.get("severity"), Some("page"));
    assert_eq!(alerts[0].labels.get("alertname"), Some("Down"));
    let for_state = out.iter().find(|p| p.labels.name() == Some("ALERTS_FOR_STATE")).expect("for state");
    assert_eq!(for_state.v, 0.0);
    assert!(r.due(0, MIN, MIN).is_empty(), "pending alerts are not sent");

    r.eval(&q, MIN, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Pending, "for 2m not yet held at 1m");
    r.eval(&q, 2 * MIN, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Firing);
    let sent = r.due(2 * MIN, MIN, MIN);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].annotations["s"], "a 0 eu");
    assert_eq!(sent[0].fired_at, Some(2 * MIN));
    assert_eq!(sent[0].valid_until, 6 * MIN);
    assert!(r.due(2 * MIN + 30_000, MIN, MIN).is_empty(), "not resent within the resend delay");
    assert_eq!(r.due(3 * MIN + 1, MIN, MIN).len(), 1, "resent after it");

    q.0.borrow_mut().clear();
    let out = r.eval(&q, 4 * MIN, 0, 0, &c).expect("eval");
    assert!(out.is_empty(), "a resolved alert writes no ALERTS");
    let resolved = r.due(4 * MIN, MIN, MIN);
    assert_eq!(resolved.len(), 1, "the resolution is sent at once");
    assert_eq!(resolved[0].resolved_at, Some(4 * MIN));
    r.eval(&q, 20 * MIN, 0, 0, &c).expect("eval");
    assert!(r.active.is_empty(), "forgotten after 15 minutes");
}

#[test]
fn keep_firing_for_holds_a_firing_alert_after_its_condition_ends() {
    let mut r = rule("alert: Down\n        expr: up == 0\n        keep_firing_for: 2m");
    let (external, url) = ctx();
    let c = Context { external_labels: &external, external_url: &url };
    let q = Fixed(RefCell::new(vec![point("a", 0.0)]));
    r.eval(&q, 0, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Firing, "no `for`: fires at once");
    q.0.borrow_mut().clear();
    r.eval(&q, MIN, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Firing);
    r.eval(&q, 2 * MIN, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Firing, "still inside 2m of keep_firing_for... started at 1m");
    r.eval(&q, 3 * MIN, 0, 0, &c).expect("eval");
    assert_eq!(r.state(), AlertState::Inactive);
}

#[test]
fn a_pending_alert_that_ends_is_forgotten_and_limits_hold() {
    let mut r = rule("alert: Down\n        expr: up == 0\n        for: 5m");
    let (external, url) = ctx();
    let c = Context { external_labels: &external, external_url: &url };
    let q = Fixed(RefCell::new(vec![point("a", 0.0), point("b", 0.0)]));
    r.eval(&q, 0, 0, 0, &c).expect("eval");
    assert_eq!(r.active.len(), 2);
    assert!(r.eval(&q, MIN, 0, 1, &c).expect_err("over the limit").contains("exceeded limit of 1 with 2 alerts"));
    q.0.borrow_mut().truncate(1);
    r.eval(&q, 2 * MIN, 0, 0, &c).expect("eval");
    q.0.borrow_mut().clear();
    r.eval(&q, 3 * MIN, 0, 0, &c).expect("eval");
    assert!(r.active.is_empty(), "pending alerts are dropped when they end");
}

#[test]
fn a_recording_rule_renames_and_relabels() {
    let mut r = rule("record: job:up\n        expr: up\n        labels:\n          team: web");
    let (external, url) = ctx();
    let c = Context { external_labels: &external, external_url: &url };
    let q = Fixed(RefCell::new(vec![point("a", 1.0), point("b", 0.0)]));
    let out = r.eval(&q, 0, 0, 0, &c).expect("eval");
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|p| p.labels.name() == Some("job:up") && p.labels.get("team") == Some("web")));
    assert!(r.eval(&q, 0, 0, 1, &c).expect_err("limit").contains("exceeded limit of 1 with 2 series"));
    let mut clash = rule("record: x\n        expr: up\n        labels:\n          instance: same");
    assert!(clash.eval(&q, 0, 0, 0, &c).expect_err("clash").contains("same labelset after applying rule labels"));
}
