//! The log benchmark's records: the load generator's seeded OTLP log lines,
//! converted as the collector converts them, and each as the JSON line a
//! log shipper would have written.

use sightline_loadgen::logs::LogGen;
use sightline_storage::model::LogRecord;

/// `n` records, `step_ns` apart from `base_ns`, as the stores receive them.
pub fn records(generator: &mut LogGen, n: usize, base_ns: u64, step_ns: u64) -> Vec<LogRecord> {
    sightline_collector::convert::logs(generator.request(n, base_ns, step_ns))
}

/// The record as a JSON log line, the raw form a log shipper would write.
pub fn json_line(r: &LogRecord) -> String {
    let mut line = serde_json::json!({
        "timestamp": r.time_unix_nano,
        "severity": r.severity_number,
        "body": r.body.to_text(),
        "trace_id": r.trace_id.map(|t| t.to_hex()),
        "span_id": r.span_id.map(|s| s.to_hex()),
        "attributes": r.attributes.to_json(),
        "resource": r.resource.attributes.to_json(),
    })
    .to_string();
    line.push('\n');
    line
}
