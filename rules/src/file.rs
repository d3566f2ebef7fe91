//! Rule files in Prometheus's format (`groups:` of recording and alerting
//! rules), read and checked as `promtool check rules` checks them: unknown
//! fields, durations, PromQL, metric and label names, templates, repeated
//! group names and repeated rules. Every error names the file, the group and
//! the rule.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::template::Template;

/// A rule file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FileError {
    pub file: String,
    pub message: String,
}

/// One group of rules, evaluated together at one interval.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub file: String,
    pub name: String,
    pub interval: Option<Duration>,
    pub query_offset: Option<Duration>,
    /// Series (recording) or alerts (alerting) a rule may yield; 0 = any.
    pub limit: usize,
    /// What the expressions read: PromQL over metrics, or log counts
    /// ([`crate::logs`]; Sightline's extension `source: logs`).
    pub source: Source,
    pub rules: Vec<RuleSpec>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Metrics,
    Logs,
}

#[derive(Clone, Debug)]
pub struct RuleSpec {
    /// The recorded metric's or the alert's name.
    pub name: String,
    pub expr: String,
    /// Label templates for alerts; plain labels for recording rules.
    pub labels: BTreeMap<String, String>,
    pub kind: RuleKind,
}

#[derive(Clone, Debug)]
pub enum RuleKind {
    Recording,
    Alerting(AlertSpec),
}

#[derive(Clone, Debug)]
pub struct AlertSpec {
    pub hold: Duration,
    pub keep_firing_for: Duration,
    pub annotations: BTreeMap<String, String>,
    /// The parsed templates of `labels` then `annotations`, by name.
    pub label_templates: Vec<(String, Template)>,
    pub annotation_templates: Vec<(String, Template)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "scalar")]
    interval: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    query_offset: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    expr: Option<String>,
    #[serde(default, rename = "for", deserialize_with = "scalar")]
    hold: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    annotations: BTreeMap<String, Scalar>,
}

/// A YAML scalar read as text (`expr: 1`, `severity: 2` are fine, as in
/// Prometheus).
#[derive(Clone, Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_norway::Value::deserialize(d)?;
        match v {
            serde_norway::Value::String(s) => Ok(Scalar(s)),
            serde_norway::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_norway::Value::Bool(b) => Ok(Scalar(b.to_string())),
            serde_norway::Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| s.0))
}

/// A Prometheus duration (`30s`, `5m`, `1h30m`, `1d`, `0`).
pub fn duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    promql_parser::util::duration::parse_duration(text).map_err(|_| format!("not a valid duration string: {text:?}"))
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads and checks one rule file.
pub fn load(path: &Path) -> Result<Vec<GroupSpec>, FileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FileError { file: file.clone(), message: e.to_string() })?;
    parse(&file, &text)
}

/// Checks the text of a rule file named `file`.
pub fn parse(file: &str, text: &str) -> Result<Vec<GroupSpec>, FileError> {
    let fail = |message: String| FileError { file: file.to_owned(), message };
    let raw: RawFile = if text.trim().is_empty() {
        RawFile { groups: vec![] }
    } else {
        serde_norway::from_str(text).map_err(|e| fail(e.to_string()))?
    };
    let mut names = HashSet::new();
    let mut groups = Vec::with_capacity(raw.groups.len());
    for g in raw.groups {
        if g.name.is_empty() {
            return Err(fail("a group name must not be empty".into()));
        }
        if !names.insert(g.name.clone()) {
            return Err(fail(format!("group name {:?} is repeated in the same file", g.name)));
        }
        let in_group = |m: String| fail(format!("group {:?}: {m}", g.name));
        let interval = g.interval.as_deref().map(duration).transpose().map_err(in_group)?;
        if interval == Some(Duration::ZERO) {
            return Err(in_group("interval must be more than 0".into()));
        }
        let query_offset = g.query_offset.as_deref().map(duration).transpose().map_err(in_group)?;
        let source = match g.source.as_deref() {
            None | Some("metrics") => Source::Metrics,
            Some("logs") => Source::Logs,
            Some(other) => return Err(in_group(format!("source must be metrics or logs, not {other:?}"))),
        };
        for name in g.labels.keys() {
            if !valid_label_name(name) {
                return Err(in_group(format!("invalid label name: {name}")));
            }
        }
        let mut seen = HashSet::new();
        let mut rules = Vec::with_capacity(g.rules.len());
        for (i, r) in g.rules.into_iter().enumerate() {
            let label = r.record.as_deref().or(r.alert.as_deref()).unwrap_or("").to_owned();
            let in_rule = |m: String| fail(format!("group {:?}, rule {} ({label:?}): {m}", g.name, i + 1));
            let rule = rule(r, &g.labels, source).map_err(in_rule)?;
            let identity = (rule.name.clone(), matches!(rule.kind, RuleKind::Recording), rule.labels.clone());
            if !seen.insert(identity) {
                return Err(in_rule(format!("{:?} is repeated in the group with the same labels", rule.name)));
            }
            rules.push(rule);
        }
        let (name, limit) = (g.name, g.limit);
        groups.push(GroupSpec { file: file.to_owned(), name, interval, query_offset, limit, source, rules });
    }
    Ok(groups)
}

fn rule(r: RawRule, group_labels: &BTreeMap<String, Scalar>, source: Source) -> Result<RuleSpec, String> {
    let expr = r.expr.filter(|e| !e.trim().is_empty()).ok_or("field 'expr' must be set in rule")?;
    match source {
        Source::Metrics => sightline_query::promql::eval::parse(&expr).map(drop).map_err(|e| {
            format!("could not parse expression: {}", e.to_string().replace("invalid parameter \"query\": ", ""))
        })?,
        Source::Logs => crate::logs::parse(&expr).map(drop).map_err(|e| format!("could not parse expression: {e}"))?,
    }
    let mut labels: BTreeMap<String, String> = group_labels.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    labels.extend(r.labels.into_iter().map(|(k, v)| (k, v.0)));
    for name in labels.keys() {
        if !valid_label_name(name) || name == "__name__" {
            return Err(format!("invalid label name: {name}"));
        }
    }
    match (r.record, r.alert) {
        (Some(_), Some(_)) => Err("only one of 'record' and 'alert' must be set".into()),
        (None, None) => Err("one of 'record' or 'alert' must be set".into()),
        (Some(record), None) => {
            if !r.annotations.is_empty() {
                return Err("invalid field 'annotations' in recording rule".into());
            }
            if r.hold.is_some() {
                return Err("invalid field 'for' in recording rule".into());
            }
            if r.keep_firing_for.is_some() {
                return Err("invalid field 'keep_firing_for' in recording rule".into());
            }
            if !valid_metric_name(&record) {
                return Err(format!("invalid recording rule name: {record}"));
            }
            Ok(RuleSpec { name: record, expr, labels, kind: RuleKind::Recording })
        }
        (None, Some(alert)) => {
            if alert.is_empty() {
                return Err("one of 'record' or 'alert' must be set".into());
            }
            let hold = r.hold.as_deref().map(duration).transpose()?.unwrap_or_default();
            let keep_firing_for = r.keep_firing_for.as_deref().map(duration).transpose()?.unwrap_or_default();
            let annotations: BTreeMap<String, String> = r.annotations.into_iter().map(|(k, v)| (k, v.0)).collect();
            for name in annotations.keys() {
                if !valid_label_name(name) {
                    return Err(format!("invalid annotation name: {name}"));
                }
            }
            let parse = |kind: &str, (k, v): (&String, &String)| {
                Template::parse(v)
                    .map(|t| (k.clone(), t))
                    .map_err(|e| format!("{kind} {k:?}: template: __alert_{alert}:1: {e}"))
            };
            let label_templates = labels.iter().map(|kv| parse("label", kv)).collect::<Result<_, _>>()?;
            let annotation_templates =
                annotations.iter().map(|kv| parse("annotation", kv)).collect::<Result<_, _>>()?;
            let spec = AlertSpec { hold, keep_firing_for, annotations, label_templates, annotation_templates };
            Ok(RuleSpec { name: alert, expr, labels, kind: RuleKind::Alerting(spec) })
        }
    }
}

/// The files a list of globs names, sorted, each once. A glob that names
/// no file is not an error (Prometheus's behaviour); a malformed one is.
pub fn expand_globs(globs: &[String], base: &Path) -> Result<Vec<PathBuf>, FileError> {
    let mut files = Vec::new();
    for pattern in globs {
        let full =
            if Path::new(pattern).is_absolute() { pattern.clone() } else { base.join(pattern).display().to_string() };
        let paths = glob::glob(&full).map_err(|e| FileError { file: pattern.clone(), message: e.to_string() })?;
        files.extend(paths.filter_map(Result::ok).filter(|p| p.is_file()));
    }
    files.sort();
    files.dedup();
    Ok(files)
}

#[cfg(test)]
mod tests;
