//! A log line as LogQL sees it (its labels, its text) and the stages of a
//! log query applied to it.
//!
//! Labels are Loki's: the resource's attributes (`service_name`, dots
//! written as underscores) are the stream's; the record's attributes
//! (structured metadata), `detected_level`, `trace_id` and `span_id` come
//! beside them. Label matchers and filters with regular expressions are
//! anchored at both ends; line filters `|~`/`!~` and `regexp` are not.

use std::collections::{BTreeMap, HashMap};

use regex::Regex;
use sightline_storage::model::{AttrValue, LogRecord};

use super::ast::{Compare, LabelFilter, LabelSource, LogExpr, MatchOp, Matcher, Stage, Unwrap};
use super::parse::{bytes, duration_nanos};

pub type Labels = BTreeMap<String, String>;

/// One line going through a pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub ts: i64,
    pub text: String,
    pub labels: Labels,
    /// The stream's labels (the resource's), which the selector matches.
    pub stream: Labels,
}

/// A label name as Loki writes it: anything but letters, digits and `_` as `_`.
pub fn label_name(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

impl Line {
    pub fn of(ts: i64, r: &LogRecord) -> Line {
        Line::with_stream(ts, r, Line::stream_of(r))
    }

    /// The stream labels of a record: its resource's.
    pub fn stream_of(r: &LogRecord) -> Labels {
        let mut stream = Labels::new();
        stream.insert("service_name".into(), r.resource.service.clone());
        for (k, v) in &r.resource.attributes.0 {
            if k != "service.name" {
                stream.insert(label_name(k), v.to_text());
            }
        }
        stream
    }

    /// The line of a record whose stream labels are known (and selected).
    pub fn with_stream(ts: i64, r: &LogRecord, stream: Labels) -> Line {
        let mut labels = stream.clone();
        for (k, v) in &r.attributes.0 {
            labels.entry(label_name(k)).or_insert_with(|| v.to_text());
        }
        if (1..=24).contains(&r.severity_number) {
            let level = crate::log_query::severity_name(r.severity_number).to_ascii_lowercase();
            labels.entry("detected_level".into()).or_insert(level);
        }
        if let Some(t) = r.trace_id {
            labels.entry("trace_id".into()).or_insert_with(|| t.to_hex());
        }
        if let Some(s) = r.span_id {
            labels.entry("span_id".into()).or_insert_with(|| s.to_hex());
        }
        let text = match &r.body {
            AttrValue::Str(s) => s.clone(),
            other => other.to_text(),
        };
        Line { ts, text, labels, stream }
    }
}

/// Every regular expression of a query, compiled once.
#[derive(Debug, Default)]
pub struct Regexes(HashMap<(String, bool), Regex>);

impl Regexes {
    /// Compiles `pattern` (anchored or not); the error names it.
    pub fn add(&mut self, pattern: &str, anchored: bool) -> Result<(), String> {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.0.entry((pattern.to_owned(), anchored)) {
            let text = if anchored { format!("^(?:{pattern})$") } else { pattern.to_owned() };
            slot.insert(Regex::new(&text).map_err(|e| format!("invalid regular expression {pattern:?}: {e}"))?);
        }
        Ok(())
    }

    fn get(&self, pattern: &str, anchored: bool) -> Option<&Regex> {
        self.0.get(&(pattern.to_owned(), anchored))
    }

    /// Every expression of `log`.
    pub fn of(log: &LogExpr, into: &mut Regexes) -> Result<(), String> {
        fn filters(f: &LabelFilter, into: &mut Regexes) -> Result<(), String> {
            match f {
                LabelFilter::And(a, b) | LabelFilter::Or(a, b) => {
                    filters(a, into)?;
                    filters(b, into)
                }
                LabelFilter::Text(m) if matches!(m.op, MatchOp::Re | MatchOp::NotRe) => into.add(&m.value, true),
                _ => Ok(()),
            }
        }
        for m in log.selector.iter().filter(|m| matches!(m.op, MatchOp::Re | MatchOp::NotRe)) {
            into.add(&m.value, true)?;
        }
        for stage in &log.stages {
            match stage {
                Stage::Line(MatchOp::Re | MatchOp::NotRe, re) | Stage::Regexp(re) => into.add(re, false)?,
                Stage::Filter(f) => filters(f, into)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn matches(&self, m: &Matcher, value: &str) -> bool {
        match m.op {
            MatchOp::Eq => value == m.value,
            MatchOp::Ne => value != m.value,
            MatchOp::Re => self.get(&m.value, true).is_some_and(|re| re.is_match(value)),
            MatchOp::NotRe => !self.get(&m.value, true).is_some_and(|re| re.is_match(value)),
        }
    }

    /// Whether `value` meets the selector's matchers on `label`.
    pub fn selects_label(&self, selector: &[Matcher], label: &str, value: &str) -> bool {
        selector.iter().filter(|m| m.label == label).all(|m| self.matches(m, value))
    }

    /// Whether the stream's labels meet the selector (a missing label is empty).
    pub fn selects(&self, selector: &[Matcher], stream: &Labels) -> bool {
        selector.iter().all(|m| self.matches(m, stream.get(&m.label).map_or("", String::as_str)))
    }

    /// The line through the stages; `None` when a stage drops it. With an
    /// `unwrap`, the value too (a line whose label is not a number carries
    /// `__error__ = SampleExtractionErr`).
    pub fn run(&self, stages: &[Stage], mut line: Line) -> Option<(Line, Option<f64>)> {
        let mut value = None;
        for stage in stages {
            match stage {
                Stage::Line(op, needle) => {
                    let found = match op {
                        MatchOp::Eq | MatchOp::Ne => line.text.contains(needle.as_str()),
                        MatchOp::Re | MatchOp::NotRe => {
                            self.get(needle, false).is_some_and(|re| re.is_match(&line.text))
                        }
                    };
                    if found != matches!(op, MatchOp::Eq | MatchOp::Re) {
                        return None;
                    }
                }
                Stage::Json => json(&mut line),
                Stage::Logfmt => logfmt(&mut line),
                Stage::Regexp(re) => {
                    if let Some(caps) = self.get(re, false).and_then(|re| re.captures(&line.text)) {
                        let names: Vec<(String, String)> = self
                            .get(re, false)
                            .into_iter()
                            .flat_map(|re| re.capture_names())
                            .flatten()
                            .filter_map(|n| caps.name(n).map(|m| (n.to_owned(), m.as_str().to_owned())))
                            .collect();
                        line.labels.extend(names);
                    }
                }
                Stage::Pattern(p) => pattern(p, &mut line),
                Stage::Filter(f) => {
                    if !self.filter(f, &line.labels) {
                        return None;
                    }
                }
                Stage::LineFormat(t) => line.text = render(t, &line.labels),
                Stage::LabelFormat(changes) => {
                    let before = line.labels.clone();
                    for (name, source) in changes {
                        match source {
                            LabelSource::Label(old) => {
                                let v = before.get(old).cloned().unwrap_or_default();
                                line.labels.remove(old);
                                line.labels.insert(name.clone(), v);
                            }
                            LabelSource::Template(t) => {
                                line.labels.insert(name.clone(), render(t, &before));
                            }
                        }
                    }
                }
                Stage::Drop(names) => names.iter().for_each(|n| drop(line.labels.remove(n))),
                Stage::Keep(names) => line.labels.retain(|k, _| names.contains(k)),
                Stage::Unwrap(unit, label) => {
                    let raw = line.labels.remove(label).unwrap_or_default();
                    match convert(&raw, *unit) {
                        Some(v) => value = Some(v),
                        None => {
                            line.labels.insert("__error__".into(), "SampleExtractionErr".into());
                            value = Some(0.0);
                        }
                    }
                }
            }
        }
        Some((line, value))
    }

    fn filter(&self, f: &LabelFilter, labels: &Labels) -> bool {
        match f {
            LabelFilter::And(a, b) => self.filter(a, labels) && self.filter(b, labels),
            LabelFilter::Or(a, b) => self.filter(a, labels) || self.filter(b, labels),
            LabelFilter::Text(m) => self.matches(m, labels.get(&m.label).map_or("", String::as_str)),
            LabelFilter::Number { label, op, value, unit } => {
                let Some(v) = labels.get(label).and_then(|raw| convert(raw, *unit)) else { return false };
                compare(v, *op, *value)
            }
        }
    }
}

pub fn compare(a: f64, op: Compare, b: f64) -> bool {
    match op {
        Compare::Eq => a == b,
        Compare::Ne => a != b,
        Compare::Gt => a > b,
        Compare::Ge => a >= b,
        Compare::Lt => a < b,
        Compare::Le => a <= b,
    }
}

/// A label's value as a number, durations in seconds.
fn convert(raw: &str, unit: Unwrap) -> Option<f64> {
    let raw = raw.trim();
    match unit {
        Unwrap::Number => raw.parse().ok(),
        Unwrap::Duration => duration_nanos(raw).map(|n| n as f64 / 1e9).or_else(|| raw.parse().ok()),
        Unwrap::Bytes => bytes(raw),
    }
    .filter(|v: &f64| v.is_finite())
}

/// `{{.label}}` replaced by the label's value (empty when missing).
fn render(template: &str, labels: &Labels) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else { break };
        let name = rest[open + 2..open + close].trim().trim_start_matches('.');
        out.push_str(labels.get(name).map_or("", String::as_str));
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

/// `| json`: every scalar field, nested keys joined with `_`; a line that is
/// not a JSON object gets `__error__ = JSONParserErr`.
fn json(line: &mut Line) {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Labels) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { label_name(k) } else { format!("{prefix}_{}", label_name(k)) };
                    walk(&key, v, out);
                }
            }
            serde_json::Value::Array(_) => {}
            serde_json::Value::String(s) => drop(out.insert(prefix.to_owned(), s.clone())),
            serde_json::Value::Null => drop(out.insert(prefix.to_owned(), String::new())),
            other => drop(out.insert(prefix.to_owned(), other.to_string())),
        }
    }
    match serde_json::from_str::<serde_json::Value>(&line.text) {
        Ok(v @ serde_json::Value::Object(_)) => {
            let mut found = Labels::new();
            walk("", &v, &mut found);
            for (k, v) in found {
                // A parsed label named like an existing one gets `_extracted`.
                let k = if line.labels.contains_key(&k) { format!("{k}_extracted") } else { k };
                line.labels.insert(k, v);
            }
        }
        _ => drop(line.labels.insert("__error__".into(), "JSONParserErr".into())),
    }
}

/// `| logfmt`: `key=value` and `key="quoted value"` pairs.
fn logfmt(line: &mut Line) {
    let mut found = Labels::new();
    let chars: Vec<char> = line.text.chars().collect();
    let mut i = 0;
    let mut bad = false;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '=' {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        if key.is_empty() {
            if i < chars.len() {
                bad = true;
                i += 1;
            }
            continue;
        }
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            if i < chars.len() && chars[i] == '"' {
                i += 1;
                let mut closed = false;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if i + 1 < chars.len() => {
                            value.push(chars[i + 1]);
                            i += 2;
                        }
                        '"' => {
                            i += 1;
                            closed = true;
                            break;
                        }
                        c => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                bad |= !closed;
            } else {
                while i < chars.len() && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        found.insert(label_name(&key), value);
    }
    for (k, v) in found {
        let k = if line.labels.contains_key(&k) { format!("{k}_extracted") } else { k };
        line.labels.insert(k, v);
    }
    if bad {
        line.labels.insert("__error__".into(), "LogfmtParserErr".into());
    }
}

/// `| pattern "<ip> - <_> [<ts>] \"<method> <path> <_>\""`: literal text
/// between captures; the line must match from its start.
fn pattern(p: &str, line: &mut Line) {
    // Pieces: (literal before, capture name).
    let mut pieces: Vec<(&str, &str)> = Vec::new();
    let mut rest = p;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else { break };
        let name = &rest[open + 1..open + close];
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            break;
        }
        pieces.push((&rest[..open], name));
        rest = &rest[open + close + 1..];
    }
    let tail = rest;
    let mut text = line.text.as_str();
    let mut found = Vec::new();
    for (i, (literal, name)) in pieces.iter().enumerate() {
        let Some(after) = text.strip_prefix(literal) else { return };
        text = after;
        // The capture runs to the next literal (or the tail, or the end).
        let next = pieces.get(i + 1).map_or(tail, |(l, _)| *l);
        let end = if next.is_empty() {
            if i + 1 < pieces.len() { 0 } else { text.len() }
        } else {
            match text.find(next) {
                Some(e) => e,
                None => return,
            }
        };
        if *name != "_" {
            found.push((label_name(name), text[..end].to_owned()));
        }
        text = &text[end..];
    }
    line.labels.extend(found);
}
