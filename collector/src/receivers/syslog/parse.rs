//! Syslog messages (RFC 5424, RFC 3164 and the bare `<PRI>message` that
//! many libraries send) as OTLP log records. A message that does not parse
//! is kept whole as the body, flagged `syslog.malformed`, never dropped.
//!
//! Severity 0–7 maps to OTLP severities (emerg FATAL4, alert FATAL3, crit
//! FATAL, err ERROR, warning WARN, notice INFO2, info INFO, debug DEBUG);
//! the facility, severity, version, proc id, msg id and structured data
//! (`syslog.sd.<id>.<param>`) are attributes; the app name (or RFC 3164
//! tag) is `service.name` and the host name `host.name`.

use crate::receivers::adapter::{int_kv as int, string_kv as string};
use sightline_proto::otlp::common::{AnyValue, KeyValue, any_value};
use sightline_proto::otlp::logs::LogRecord;

/// One parsed message: its resource (service, host) and its record.
pub struct Message {
    pub service: String,
    pub host: Option<String>,
    pub record: LogRecord,
}

const SEVERITIES: [(i32, &str); 8] = [
    (24, "emerg"),
    (23, "alert"),
    (21, "crit"),
    (17, "err"),
    (13, "warning"),
    (10, "notice"),
    (9, "info"),
    (5, "debug"),
];

/// `<PRI>` and the rest.
fn pri(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    if end == 0 || end > 3 {
        return None;
    }
    let pri: u8 = rest[..end].parse().ok().filter(|p| *p <= 191)?;
    Some((pri, &rest[end + 1..]))
}

fn nil(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

/// `word rest`, one space between.
fn word(s: &str) -> Option<(&str, &str)> {
    let (w, rest) = s.split_once(' ')?;
    (!w.is_empty()).then_some((w, rest))
}

/// RFC 3339 (RFC 5424's TIMESTAMP) in Unix nanoseconds.
fn rfc3339(text: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
        .ok()
        .filter(|_| text.ends_with('Z'))
        .or_else(|| parse_with_offset(text))?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as u64)
}

/// `2024-01-02T03:04:05.678+01:00`: the local time minus its offset.
fn parse_with_offset(text: &str) -> Option<std::time::SystemTime> {
    let at = text.len().checked_sub(6)?;
    let (local, offset) = text.split_at(at);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1i64,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let secs = sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60);
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    if secs >= 0 {
        t.checked_sub(std::time::Duration::from_secs(secs as u64))
    } else {
        t.checked_add(std::time::Duration::from_secs((-secs) as u64))
    }
}

/// RFC 3164's `Mmm dd hh:mm:ss` (this year, UTC) in Unix nanoseconds.
fn bsd_time(text: &str, now: u64) -> Option<u64> {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| text.get(..3) == Some(*m))? + 1;
    let day: u32 = text.get(4..6)?.trim().parse().ok()?;
    let time = text.get(7..15)?;
    let year = humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(now)).to_string();
    let stamp = format!("{}-{month:02}-{day:02}T{time}Z", &year[..4]);
    rfc3339(&stamp)
}

/// RFC 5424 structured data: `-` or `[id k="v" …][…]`, and the message after it.
fn structured_data(s: &str, out: &mut Vec<KeyValue>) -> Option<String> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some(rest.strip_prefix(' ').unwrap_or(rest).to_owned());
    }
    let mut rest = s;
    while let Some(element) = rest.strip_prefix('[') {
        let (id, mut params) = element.split_once([' ', ']']).map(|(id, _)| (id, &element[id.len()..]))?;
        loop {
            params = params.trim_start_matches(' ');
            if let Some(after) = params.strip_prefix(']') {
                rest = after;
                break;
            }
            let (name, after) = params.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => break i,
                    c => value.push(c),
                }
            };
            out.push(string(&format!("syslog.sd.{id}.{name}"), &value));
            params = &after[end + 1..];
        }
    }
    Some(rest.strip_prefix(' ').unwrap_or(rest).to_owned())
}

/// Parses one message received at `now` (Unix ns).
pub fn parse(raw: &str, now: u64) -> Message {
    let line = raw.trim_end_matches(['\n', '\r', '\0']);
    let malformed = |body: &str| Message {
        service: "syslog".into(),
        host: None,
        record: LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(body.to_owned())) }),
            attributes: vec![KeyValue {
                key: "syslog.malformed".into(),
                value: Some(AnyValue { value: Some(any_value::Value::BoolValue(true)) }),
                key_strindex: 0,
            }],
            ..Default::default()
        },
    };
    let Some((pri, rest)) = pri(line) else { return malformed(line) };
    let (facility, severity) = (pri / 8, pri % 8);
    let (number, text) = SEVERITIES[severity as usize];
    let mut attributes = vec![int("syslog.facility", i64::from(facility)), int("syslog.severity", i64::from(severity))];
    let (mut service, mut host, mut time) = (None, None, None);
    let body = if let Some(v5424) = rest.strip_prefix("1 ") {
        // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]
        let parsed = (|| {
            let (ts, r) = word(v5424)?;
            let (hostname, r) = word(r)?;
            let (app, r) = word(r)?;
            let (procid, r) = word(r)?;
            let (msgid, r) = word(r).unwrap_or((r, ""));
            let mut sd = Vec::new();
            let msg = structured_data(r, &mut sd)?;
            Some((ts, hostname, app, procid, msgid, sd, msg))
        })();
        let Some((ts, hostname, app, procid, msgid, sd, msg)) = parsed else { return malformed(line) };
        time = nil(ts).and_then(rfc3339);
        host = nil(hostname).map(str::to_owned);
        service = nil(app).map(str::to_owned);
        attributes.push(int("syslog.version", 1));
        if let Some(p) = nil(procid) {
            attributes.push(string("syslog.procid", p));
        }
        if let Some(m) = nil(msgid) {
            attributes.push(string("syslog.msgid", m));
        }
        attributes.extend(sd);
        // rsyslog's RFC 5424 template keeps the space a legacy message had after its tag.
        msg.strip_prefix('\u{feff}').unwrap_or(&msg).trim_start().to_owned()
    } else {
        // RFC 3164: `Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, or just a message.
        let mut msg = rest;
        if let Some(t) = bsd_time(rest, now) {
            time = Some(t);
            let after = rest.get(16..).unwrap_or("");
            if let Some((hostname, r)) = word(after) {
                host = Some(hostname.to_owned());
                msg = r;
            } else {
                msg = after;
            }
        }
        let tag_end = msg.find([':', '[', ' ']).filter(|&i| i > 0 && i <= 48);
        if let Some(end) = tag_end.filter(|&i| msg[i..].starts_with([':', '['])) {
            service = Some(msg[..end].to_owned());
            let mut r = &msg[end..];
            if let Some(pid) = r.strip_prefix('[').and_then(|p| p.split_once(']')) {
                attributes.push(string("syslog.procid", pid.0));
                r = pid.1;
            }
            msg = r.strip_prefix(':').unwrap_or(r).trim_start();
        }
        msg.to_owned()
    };
    Message {
        service: service.unwrap_or_else(|| "syslog".into()),
        host,
        record: LogRecord {
            time_unix_nano: time.unwrap_or(now),
            observed_time_unix_nano: now,
            severity_number: number,
            severity_text: text.into(),
            body: Some(AnyValue { value: Some(any_value::Value::StringValue(body)) }),
            attributes,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests;
