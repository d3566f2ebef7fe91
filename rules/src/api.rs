//! `GET /prometheus/api/v1/rules` and `GET /prometheus/api/v1/alerts` in
//! Prometheus's JSON (Grafana's alert list and `promtool` read them), and
//! `POST /-/reload`, which loads the rule files again.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use sightline_storage::model::Tenant;

use crate::file::{RuleKind, Source};
use crate::gofmt;
use crate::group::Group;
use crate::manager::Rules;
use crate::rule::{Alert, AlertState, Rule};

#[derive(Clone)]
pub struct ApiState {
    pub rules: Rules,
    pub tenant_header: String,
    pub default_tenant: Tenant,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/prometheus/api/v1/rules", get(rules))
        .route("/prometheus/api/v1/alerts", get(alerts))
        .route("/-/reload", post(reload).put(reload))
        .with_state(state)
}

fn error(status: StatusCode, kind: &str, message: String) -> Response {
    (status, Json(json!({ "status": "error", "errorType": kind, "error": message }))).into_response()
}

/// The caller's tenant (the auth layer has set the header from the key).
fn tenant(state: &ApiState, headers: &HeaderMap) -> Option<Tenant> {
    match headers.get(state.tenant_header.as_str()) {
        None => Some(state.default_tenant.clone()),
        Some(v) => v.to_str().ok().and_then(|t| Tenant::new(t).ok()),
    }
}

fn bad_tenant() -> Response {
    error(StatusCode::BAD_REQUEST, "bad_data", "invalid tenant header".into())
}

/// A time as Go's `time.Time` marshals it (RFC 3339, fraction without
/// trailing zeros); Go's zero time when never.
fn go_time(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "0001-01-01T00:00:00Z".into() };
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let text = humantime::format_rfc3339_nanos(t).to_string();
    match text.split_once('.') {
        Some((head, frac)) => {
            let digits = frac.trim_end_matches('Z').trim_end_matches('0');
            if digits.is_empty() { format!("{head}Z") } else { format!("{head}.{digits}Z") }
        }
        None => text,
    }
}

/// A number as Go's `encoding/json` writes a float64: whole numbers without
/// a fraction (`60`, not `60.0`).
fn go_number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 { json!(v as i64) } else { json!(v) }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_since: Option<String>,
    value: String,
}

fn api_alert(a: &Alert) -> ApiAlert {
    ApiAlert {
        labels: a.labels.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        annotations: a.annotations.clone(),
        state: a.state.as_str(),
        active_at: go_time(Some(a.active_at)),
        keep_firing_since: a.keep_firing_since.map(|t| go_time(Some(t))),
        value: gofmt::format_e(a.value, None),
    }
}

/// The rule's alerts that are pending or firing.
fn active(rule: &Rule) -> impl Iterator<Item = &Alert> {
    rule.active.values().filter(|a| a.state != AlertState::Inactive)
}

fn health(rule: &Rule) -> &'static str {
    match (&rule.last_error, rule.last_evaluation) {
        (Some(_), _) => "err",
        (None, Some(_)) => "ok",
        (None, None) => "unknown",
    }
}

fn rule_json(rule: &Rule, source: Source, with_alerts: bool) -> Value {
    let common = |kind: &str| {
        json!({
            "name": rule.spec.name,
            "query": rule.spec.expr,
            "health": health(rule),
            "evaluationTime": go_number(rule.evaluation_seconds),
            "lastEvaluation": go_time(rule.last_evaluation),
            "type": kind,
        })
    };
    let mut v = rule_kind_json(rule, with_alerts, common);
    // Not in Prometheus's answer: the log query of a `source: logs` rule.
    if let (Source::Logs, Ok(count)) = (source, crate::logs::parse(&rule.spec.expr)) {
        v["logQuery"] = json!(count.text);
    }
    v
}

fn rule_kind_json(rule: &Rule, with_alerts: bool, common: impl Fn(&str) -> Value) -> Value {
    match &rule.spec.kind {
        RuleKind::Recording => {
            let mut v = common("recording");
            if !rule.spec.labels.is_empty() {
                v["labels"] = json!(rule.spec.labels);
            }
            if let Some(e) = &rule.last_error {
                v["lastError"] = json!(e);
            }
            v
        }
        RuleKind::Alerting(a) => {
            let mut v = common("alerting");
            let mut alerts: Vec<ApiAlert> = if with_alerts { active(rule).map(api_alert).collect() } else { vec![] };
            alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
            v["state"] = json!(state_of(rule));
            v["duration"] = go_number(a.hold.as_secs_f64());
            v["keepFiringFor"] = go_number(a.keep_firing_for.as_secs_f64());
            v["labels"] = json!(rule.spec.labels);
            v["annotations"] = json!(a.annotations);
            v["alerts"] = json!(alerts);
            if let Some(e) = &rule.last_error {
                v["lastError"] = json!(e);
            }
            v
        }
    }
}

fn state_of(rule: &Rule) -> &'static str {
    rule.state().as_str()
}

/// Repeated parameters `name` (and `name[]`).
fn all<'a>(params: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    params.iter().filter(|(k, _)| k == name || k.strip_suffix("[]") == Some(name)).map(|(_, v)| v.as_str()).collect()
}

async fn rules(State(state): State<ApiState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let Some(tenant) = tenant(&state, &headers) else { return bad_tenant() };
    let params: Vec<(String, String)> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let kind = match all(&params, "type").first().copied() {
        None | Some("") => None,
        Some("alert") => Some(true),
        Some("record") => Some(false),
        Some(other) => return error(StatusCode::BAD_REQUEST, "bad_data", format!("unsupported type {other:?}")),
    };
    let names = all(&params, "rule_name");
    let mut groups_wanted = all(&params, "rule_group");
    groups_wanted.extend(all(&params, "group_name"));
    let files = all(&params, "file");
    let with_alerts = all(&params, "exclude_alerts").first() != Some(&"true");
    let filtered = kind.is_some() || !names.is_empty();
    let mut groups = Vec::new();
    for g in state.rules.groups() {
        let g = g.lock();
        if g.tenant != tenant
            || (!groups_wanted.is_empty() && !groups_wanted.contains(&g.name.as_str()))
            || (!files.is_empty() && !files.contains(&g.file.as_str()))
        {
            continue;
        }
        let rules: Vec<Value> = g
            .rules
            .iter()
            .filter(|r| kind.is_none_or(|alerting| matches!(r.spec.kind, RuleKind::Alerting(_)) == alerting))
            .filter(|r| names.is_empty() || names.contains(&r.spec.name.as_str()))
            .map(|r| rule_json(r, g.source, with_alerts))
            .collect();
        if filtered && rules.is_empty() {
            continue;
        }
        groups.push(group_json(&g, rules));
    }
    let mut data = json!({ "groups": groups });
    // Not in Prometheus's answer: why the last reload kept the previous rules.
    if let Some(e) = state.rules.status().error {
        data["reloadError"] = json!(e);
    }
    Json(json!({ "status": "success", "data": data })).into_response()
}

fn group_json(g: &Group, rules: Vec<Value>) -> Value {
    let mut v = json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": go_number(g.interval.as_secs_f64()),
        "limit": g.limit,
        "evaluationTime": go_number(g.evaluation_seconds),
        "lastEvaluation": go_time(g.last_evaluation),
    });
    if g.source == Source::Logs {
        v["source"] = json!("logs");
    }
    v
}

async fn alerts(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(tenant) = tenant(&state, &headers) else { return bad_tenant() };
    let mut alerts = Vec::new();
    for g in state.rules.groups() {
        let g = g.lock();
        if g.tenant == tenant {
            alerts.extend(g.rules.iter().flat_map(active).map(api_alert));
        }
    }
    alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
    Json(json!({ "status": "success", "data": { "alerts": alerts } })).into_response()
}

async fn reload(State(state): State<ApiState>) -> Response {
    let rules = state.rules.clone();
    match tokio::task::spawn_blocking(move || rules.reload()).await {
        Ok(Ok(())) => (StatusCode::OK, "rules reloaded\n").into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload rules: {e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "failed to reload rules\n").into_response(),
    }
}
