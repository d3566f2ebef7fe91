//! `ExportLogsServiceRequest` in OTLP/JSON.

use serde_json::Value;

use super::common::{any_value, attributes, resource, scope};
use super::reader::{Obj, Result};
use crate::otlp::ExportLogsServiceRequest;
use crate::otlp::logs::{LogRecord, ResourceLogs, ScopeLogs};

const SEVERITIES: &[(&str, i32)] = &[
    ("SEVERITY_NUMBER_UNSPECIFIED", 0),
    ("SEVERITY_NUMBER_TRACE", 1),
    ("SEVERITY_NUMBER_TRACE2", 2),
    ("SEVERITY_NUMBER_TRACE3", 3),
    ("SEVERITY_NUMBER_TRACE4", 4),
    ("SEVERITY_NUMBER_DEBUG", 5),
    ("SEVERITY_NUMBER_DEBUG2", 6),
    ("SEVERITY_NUMBER_DEBUG3", 7),
    ("SEVERITY_NUMBER_DEBUG4", 8),
    ("SEVERITY_NUMBER_INFO", 9),
    ("SEVERITY_NUMBER_INFO2", 10),
    ("SEVERITY_NUMBER_INFO3", 11),
    ("SEVERITY_NUMBER_INFO4", 12),
    ("SEVERITY_NUMBER_WARN", 13),
    ("SEVERITY_NUMBER_WARN2", 14),
    ("SEVERITY_NUMBER_WARN3", 15),
    ("SEVERITY_NUMBER_WARN4", 16),
    ("SEVERITY_NUMBER_ERROR", 17),
    ("SEVERITY_NUMBER_ERROR2", 18),
    ("SEVERITY_NUMBER_ERROR3", 19),
    ("SEVERITY_NUMBER_ERROR4", 20),
    ("SEVERITY_NUMBER_FATAL", 21),
    ("SEVERITY_NUMBER_FATAL2", 22),
    ("SEVERITY_NUMBER_FATAL3", 23),
    ("SEVERITY_NUMBER_FATAL4", 24),
];

pub(crate) fn request(v: &Value) -> Result<ExportLogsServiceRequest> {
    let o = Obj::new(v, "$")?;
    Ok(ExportLogsServiceRequest { resource_logs: o.messages("resourceLogs", "resource_logs", resource_logs)? })
}

fn resource_logs(o: Obj<'_>) -> Result<ResourceLogs> {
    Ok(ResourceLogs {
        resource: o.message("resource", "resource", resource)?,
        scope_logs: o.messages("scopeLogs", "scope_logs", scope_logs)?,
        schema_url: o.string("schemaUrl", "schema_url")?,
    })
}

fn scope_logs(o: Obj<'_>) -> Result<ScopeLogs> {
    Ok(ScopeLogs {
        scope: o.message("scope", "scope", scope)?,
        log_records: o.messages("logRecords", "log_records", log_record)?,
        schema_url: o.string("schemaUrl", "schema_url")?,
    })
}

fn log_record(o: Obj<'_>) -> Result<LogRecord> {
    Ok(LogRecord {
        time_unix_nano: o.u64("timeUnixNano", "time_unix_nano")?,
        observed_time_unix_nano: o.u64("observedTimeUnixNano", "observed_time_unix_nano")?,
        severity_number: o.enumeration("severityNumber", "severity_number", SEVERITIES)?,
        severity_text: o.string("severityText", "severity_text")?,
        body: o.message("body", "body", any_value)?,
        attributes: attributes(&o)?,
        dropped_attributes_count: o.u32("droppedAttributesCount", "dropped_attributes_count")?,
        flags: o.u32("flags", "flags")?,
        trace_id: o.hex_bytes("traceId", "trace_id")?,
        span_id: o.hex_bytes("spanId", "span_id")?,
        event_name: o.string("eventName", "event_name")?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::decode_logs;
    use crate::otlp::common::any_value::Value;

    #[test]
    fn decodes_a_log_record_with_nested_body() {
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"1700000000000000000",
          "severity_number":"SEVERITY_NUMBER_WARN","severityText":"WARN","traceId":"5b8efff798038103d269b633813fc60c",
          "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"timeout"}},
                  {"key":"raw","value":{"bytesValue":"aGk="}},{"key":"list","value":{"arrayValue":{"values":[{"boolValue":true}]}}}]}}}]}]}]}"#;
        let req = decode_logs(body).expect("decodes");
        let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(rec.severity_number, 13);
        assert_eq!(rec.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(rec.trace_id.len(), 16);
        let Some(Value::KvlistValue(kv)) = rec.body.as_ref().and_then(|b| b.value.clone()) else {
            panic!("body is a kvlist: {:?}", rec.body);
        };
        assert_eq!(kv.values.len(), 3);
        assert!(
            matches!(kv.values[1].value.as_ref().and_then(|v| v.value.clone()), Some(Value::BytesValue(b)) if b == b"hi")
        );
    }
}
