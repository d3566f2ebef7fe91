//! A Loki push request (protobuf or JSON) as an OTLP logs request: one
//! resource per stream, its labels as resource attributes (`service_name`
//! as `service.name`, or, as Loki 3 discovers it, the first of `service`,
//! `app`, `application`, `name`, `app_kubernetes_io_name`, `container`,
//! `container_name`, `component`, `workload`, `job`; else
//! `unknown_service`), each entry a log record with its structured metadata
//! as attributes and a severity from a `level` (or `detected_level`,
//! `severity`, `lvl`) label or metadata.

use crate::receivers::adapter::{severity_of, string_kv as string};
use serde::Deserialize;
use serde_json::Value;
use sightline_proto::loki::{EntryAdapter, LabelPairAdapter, PushRequest};
use sightline_proto::otlp::ExportLogsServiceRequest;
use sightline_proto::otlp::common::{AnyValue, InstrumentationScope, any_value};
use sightline_proto::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};
use sightline_proto::otlp::resource::Resource;

/// Labels Loki 3 takes `service_name` from, in order, when it is not given.
const SERVICE_LABELS: [&str; 10] = [
    "service",
    "app",
    "application",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "component",
    "workload",
    "job",
];

const LEVEL_KEYS: [&str; 4] = ["level", "detected_level", "severity", "lvl"];

/// Why a push request cannot be taken (Loki answers 400 with it).
pub type Invalid = String;

/// Parses a stream selector `{a="x", b="y"}` (values in Go's quoting).
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, Invalid> {
    let bad = |why: &str| format!("invalid stream labels {text:?}: {why}");
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| bad("expected {name=\"value\", …}"))?;
    let mut out = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or_else(|| bad("a label without ="))?;
        let name = rest[..eq].trim();
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(bad(&format!("invalid label name {name:?}")));
        }
        let after = rest[eq + 1..].trim_start();
        if !after.starts_with('"') {
            return Err(bad("a label value must be quoted"));
        }
        let bytes = after.as_bytes();
        let mut end = 1;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        if end >= bytes.len() {
            return Err(bad("an unclosed quote"));
        }
        let value: String = serde_json::from_str(&after[..=end]).map_err(|_| bad("an invalid escape"))?;
        out.push((name.to_owned(), value));
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(out)
}

/// Name/value pairs: stream labels or structured metadata.
type Pairs = Vec<(String, String)>;

/// An entry: Unix nanoseconds, the line, its structured metadata.
type Entry = (i64, String, Pairs);

struct Stream {
    labels: Pairs,
    entries: Vec<Entry>,
}

fn resource(labels: &[(String, String)]) -> Resource {
    let get = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let service =
        get("service_name").or_else(|| SERVICE_LABELS.iter().find_map(|k| get(k))).unwrap_or("unknown_service");
    let mut attributes = vec![string("service.name", service)];
    attributes.extend(labels.iter().filter(|(k, _)| k != "service_name").map(|(k, v)| string(k, v)));
    Resource { attributes, ..Default::default() }
}

fn to_otlp(streams: Vec<Stream>, observed: u64) -> ExportLogsServiceRequest {
    let resource_logs = streams
        .into_iter()
        .map(|s| {
            let stream_level = s.labels.iter().find(|(k, _)| LEVEL_KEYS.contains(&k.as_str())).map(|(_, v)| v.clone());
            let log_records = s
                .entries
                .into_iter()
                .map(|(ts, line, metadata)| {
                    let level = metadata
                        .iter()
                        .find(|(k, _)| LEVEL_KEYS.contains(&k.as_str()))
                        .map(|(_, v)| v.as_str())
                        .or(stream_level.as_deref());
                    let (severity_number, severity_text) = level.map_or((0, ""), severity_of);
                    LogRecord {
                        time_unix_nano: ts.max(0) as u64,
                        observed_time_unix_nano: observed,
                        severity_number,
                        severity_text: severity_text.to_owned(),
                        body: Some(AnyValue { value: Some(any_value::Value::StringValue(line)) }),
                        attributes: metadata.iter().map(|(k, v)| string(k, v)).collect(),
                        ..Default::default()
                    }
                })
                .collect();
            ResourceLogs {
                resource: Some(resource(&s.labels)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope { name: "loki".into(), ..Default::default() }),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

fn pairs(metadata: Vec<LabelPairAdapter>) -> Pairs {
    metadata.into_iter().map(|p| (p.name, p.value)).collect()
}

/// A protobuf push request (already decompressed) as OTLP.
pub fn from_protobuf(request: PushRequest, observed: u64) -> Result<ExportLogsServiceRequest, Invalid> {
    let streams = request
        .streams
        .into_iter()
        .map(|s| {
            let labels = parse_labels(&s.labels)?;
            let entries = s
                .entries
                .into_iter()
                .map(|EntryAdapter { timestamp, line, structured_metadata }| {
                    let ts =
                        timestamp.map_or(0, |t| t.seconds.saturating_mul(1_000_000_000).saturating_add(t.nanos as i64));
                    (ts, line, pairs(structured_metadata))
                })
                .collect();
            Ok(Stream { labels, entries })
        })
        .collect::<Result<_, Invalid>>()?;
    Ok(to_otlp(streams, observed))
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: serde_json::Map<String, Value>,
    #[serde(default)]
    values: Vec<Vec<Value>>,
}

/// A JSON push request (`{"streams":[{"stream":{…},"values":[["<ns>","line",{…}]]}]}`) as OTLP.
pub fn from_json(body: &[u8], observed: u64) -> Result<ExportLogsServiceRequest, Invalid> {
    let push: JsonPush = serde_json::from_slice(body).map_err(|e| format!("invalid JSON push request: {e}"))?;
    let text = |v: &Value, what: &str| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("{what} must be a string")),
    };
    let mut streams = Vec::with_capacity(push.streams.len());
    for s in push.streams {
        let labels = s
            .stream
            .iter()
            .map(|(k, v)| Ok((k.clone(), text(v, "a stream label")?)))
            .collect::<Result<_, Invalid>>()?;
        let mut entries = Vec::with_capacity(s.values.len());
        for value in s.values {
            let (ts, line) = match value.as_slice() {
                [ts, line] | [ts, line, _] => (ts, line),
                _ => {
                    return Err(
                        "each value is [\"<unix ns>\", \"<line>\"] or with structured metadata as a third element"
                            .into(),
                    );
                }
            };
            let ts: i64 = ts
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("timestamp {ts} is not a string of Unix nanoseconds"))?;
            let line = line.as_str().ok_or("a log line must be a string")?.to_owned();
            let metadata = match value.get(2) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), text(v, "structured metadata")?)))
                    .collect::<Result<_, Invalid>>()?,
                Some(_) => return Err("structured metadata must be an object".into()),
            };
            entries.push((ts, line, metadata));
        }
        streams.push(Stream { labels, entries });
    }
    Ok(to_otlp(streams, observed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_as_loki_writes_them() {
        assert_eq!(
            parse_labels(r#"{app="api", env="prod \"eu\"",x_1="" }"#).expect("valid"),
            vec![("app".into(), "api".into()), ("env".into(), "prod \"eu\"".into()), ("x_1".into(), String::new())]
        );
        assert!(parse_labels("{}").expect("empty").is_empty());
        for bad in ["app=\"x\"", "{app=x}", "{1a=\"x\"}", "{app=\"x}"] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stream_becomes_a_resource_and_its_entries_records() {
        let body = br#"{"streams":[{"stream":{"app":"checkout","level":"warn"},"values":[["1700000000000000001","slow",{"trace_id":"ab","level":"error"}],["1700000000000000002","ok"]]}]}"#;
        let request = from_json(body, 7).expect("valid");
        let rl = &request.resource_logs[0];
        let attrs = &rl.resource.as_ref().expect("resource").attributes;
        assert_eq!(attrs[0], string("service.name", "checkout"));
        assert!(attrs.contains(&string("app", "checkout")));
        let records = &rl.scope_logs[0].log_records;
        assert_eq!(records[0].time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!((records[0].severity_number, records[0].severity_text.as_str()), (17, "ERROR"));
        assert_eq!((records[1].severity_number, records[1].severity_text.as_str()), (13, "WARN"));
        assert!(records[0].attributes.contains(&string("trace_id", "ab")));
        assert_eq!(records[1].observed_time_unix_nano, 7);
        for (bad, message) in [
            (&b"{"[..], "invalid JSON"),
            (br#"{"streams":[{"stream":{},"values":[[1,"x"]]}]}"#, "Unix nanoseconds"),
            (br#"{"streams":[{"stream":{},"values":[["1"]]}]}"#, "each value"),
            (br#"{"streams":[{"stream":{},"values":[["1","x",[1]]]}]}"#, "must be an object"),
        ] {
            assert!(from_json(bad, 0).expect_err("invalid").contains(message));
        }
        let none = from_json(br#"{"streams":[{"stream":{"x":"y"},"values":[]}]}"#, 0).expect("valid");
        let attrs = &none.resource_logs[0].resource.as_ref().expect("resource").attributes;
        assert_eq!(attrs[0], string("service.name", "unknown_service"));
    }
}
