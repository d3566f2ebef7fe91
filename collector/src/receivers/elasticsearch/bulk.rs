//! An Elasticsearch bulk body (NDJSON: an action line, then the document
//! for `index` and `create`) as OTLP log records, item by item: a document
//! is a log record at its `@timestamp` (RFC 3339 or epoch milliseconds;
//! the time of arrival when it has none) with `message` as the body,
//! `log.level` (or `level`, `severity`) as the severity, `service.name` and
//! `host.name` as resource attributes, and every other field, nested
//! objects flattened to dotted keys, as attributes (`elasticsearch.index`
//! too). An action or document that cannot be taken is an item error.

use serde_json::{Map, Value};
use sightline_proto::otlp::common::{AnyValue, ArrayValue, KeyValue, any_value};
use sightline_proto::otlp::logs::LogRecord;

use crate::receivers::adapter::{severity_of, string_kv};

/// One action of the bulk body.
pub struct Item {
    /// `index` or `create`, or the unsupported action as written.
    pub action: String,
    pub index: String,
    /// The record, or why the item is refused (status, type, reason).
    pub outcome: Result<Doc, (u16, &'static str, String)>,
}

/// A document as a log record and its resource.
pub struct Doc {
    pub service: Option<String>,
    pub host: Option<String>,
    pub record: LogRecord,
}

fn any(v: &Value) -> Option<AnyValue> {
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => any_value::Value::StringValue(s.clone()),
        Value::Array(a) => any_value::Value::ArrayValue(ArrayValue { values: a.iter().filter_map(any).collect() }),
        Value::Object(_) => any_value::Value::StringValue(v.to_string()),
    };
    Some(AnyValue { value: Some(value) })
}

/// Nested objects as dotted keys: `{"log": {"level": "x"}}` → `log.level`.
fn flatten(prefix: &str, object: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in object {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Object(inner) => flatten(&key, inner, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// `@timestamp` as Unix nanoseconds.
fn timestamp(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map(|ms| ms.saturating_mul(1_000_000))
            .ok_or_else(|| format!("failed to parse field [@timestamp]: {n} is not epoch milliseconds")),
        Value::String(s) => {
            let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
                .map_err(|_| format!("failed to parse field [@timestamp] of type [date]: {s:?}"))?;
            Ok(t.duration_since(std::time::UNIX_EPOCH).map_err(|_| "a time before 1970".to_string())?.as_nanos() as u64)
        }
        other => Err(format!("failed to parse field [@timestamp]: {other}")),
    }
}

fn doc(document: Value, index: &str, now: u64) -> Result<Doc, (u16, &'static str, String)> {
    let Value::Object(object) = document else {
        return Err((400, "mapper_parsing_exception", "the document is not a JSON object".into()));
    };
    let mut fields = Vec::with_capacity(object.len());
    flatten("", &object, &mut fields);
    let mut record = LogRecord { observed_time_unix_nano: now, time_unix_nano: now, ..Default::default() };
    let (mut service, mut host) = (None, None);
    let mut attributes = vec![string_kv("elasticsearch.index", index)];
    for (key, value) in fields {
        match (key.as_str(), &value) {
            ("@timestamp", v) => {
                record.time_unix_nano = timestamp(v).map_err(|e| (400, "document_parsing_exception", e))?
            }
            ("message", Value::String(s)) => {
                record.body = Some(AnyValue { value: Some(any_value::Value::StringValue(s.clone())) })
            }
            ("log.level" | "level" | "severity", Value::String(s)) if record.severity_number == 0 => {
                let (number, text) = severity_of(s);
                record.severity_number = number;
                record.severity_text = if text.is_empty() { s.clone() } else { text.to_owned() };
            }
            ("service.name", Value::String(s)) => service = Some(s.clone()),
            ("host.name" | "host.hostname", Value::String(s)) if host.is_none() => host = Some(s.clone()),
            (k, v) => attributes.extend(any(v).map(|value| KeyValue {
                key: k.to_owned(),
                value: Some(value),
                key_strindex: 0,
            })),
        }
    }
    record.attributes = attributes;
    Ok(Doc { service, host, record })
}

/// Reads the bulk body's actions; `default_index` is the path's index.
pub fn parse(body: &str, default_index: Option<&str>, now: u64) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lines = body.lines().filter(|l| !l.trim().is_empty());
    while let Some(line) = lines.next() {
        let action: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                items.push(Item {
                    action: "index".into(),
                    index: default_index.unwrap_or("").into(),
                    outcome: Err((400, "illegal_argument_exception", format!("malformed action/metadata line: {e}"))),
                });
                continue;
            }
        };
        let Some((name, meta)) = action.as_object().and_then(|o| o.iter().next()) else {
            items.push(Item {
                action: "index".into(),
                index: default_index.unwrap_or("").into(),
                outcome: Err((400, "illegal_argument_exception", "an action line names one action".into())),
            });
            continue;
        };
        let index = meta.get("_index").and_then(Value::as_str).or(default_index).unwrap_or("").to_owned();
        let outcome = match name.as_str() {
            "index" | "create" => match lines.next().map(serde_json::from_str::<Value>) {
                None => Err((400, "illegal_argument_exception", "the action has no document".into())),
                Some(Err(e)) => Err((400, "document_parsing_exception", format!("failed to parse the document: {e}"))),
                Some(Ok(_)) if index.is_empty() => {
                    Err((400, "action_request_validation_exception", "index is missing".into()))
                }
                Some(Ok(document)) => doc(document, &index, now),
            },
            "delete" => Err((400, "illegal_argument_exception", "log documents cannot be deleted".into())),
            "update" => {
                lines.next();
                Err((400, "illegal_argument_exception", "log documents cannot be updated".into()))
            }
            other => Err((400, "illegal_argument_exception", format!("unknown action [{other}]"))),
        };
        items.push(Item { action: name.clone(), index, outcome });
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_documents_become_records_or_item_errors() {
        let body = r#"{"index":{"_index":"app"}}
{"@timestamp":"2024-01-02T03:04:05.5Z","message":"paid","log":{"level":"warn"},"service":{"name":"billing"},"host":{"name":"b-1"},"order":{"id":7}}
{"create":{}}
{"message":"no time","@timestamp":1700000000000}
{"index":{}}
not json
{"delete":{"_index":"app","_id":"1"}}
{"index":{"_index":"app"}}
["not", "an", "object"]
{"index":{"_index":"app"}}
{"@timestamp":"yesterday"}
"#;
        let items = parse(body, Some("logs"), 42);
        assert_eq!(items.len(), 6);
        let first = items[0].outcome.as_ref().expect("taken");
        assert_eq!(first.service.as_deref(), Some("billing"));
        assert_eq!(first.host.as_deref(), Some("b-1"));
        assert_eq!(first.record.time_unix_nano, 1_704_164_645_500_000_000);
        assert_eq!(first.record.severity_text, "WARN");
        assert!(first.record.attributes.iter().any(|a| a.key == "order.id"));
        assert!(first.record.attributes.contains(&string_kv("elasticsearch.index", "app")));
        let second = items[1].outcome.as_ref().expect("taken");
        assert_eq!((items[1].action.as_str(), items[1].index.as_str()), ("create", "logs"));
        assert_eq!(second.record.time_unix_nano, 1_700_000_000_000_000_000);
        let errors: Vec<&str> = items[2..].iter().map(|i| i.outcome.as_ref().err().expect("refused").1).collect();
        assert_eq!(
            errors,
            [
                "document_parsing_exception",
                "illegal_argument_exception",
                "mapper_parsing_exception",
                "document_parsing_exception"
            ]
        );
    }
}
