//! Parsing of the query parameters shared by the APIs: times, durations,
//! limits and attribute filters. Every failure is a 400 that says why.

use std::time::Duration;

use crate::error::ApiError;

pub const MAX_LIMIT: usize = 10_000;

/// A time as Unix nanoseconds, or RFC 3339 (`2024-05-01T12:00:00Z`).
pub fn time_nanos(name: &str, value: &str) -> Result<u64, ApiError> {
    if let Ok(n) = value.parse::<u64>() {
        return Ok(n);
    }
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("{name}: {value:?} is neither Unix nanoseconds nor an RFC 3339 time"))
        })
}

/// A duration such as `1.5s`, `250ms`, `100us`, `2m`, `1h30m`.
pub fn duration(name: &str, value: &str) -> Result<Duration, ApiError> {
    let bad = || ApiError::BadRequest(format!("{name}: {value:?} is not a duration such as 250ms, 1.5s or 1h"));
    if let Some(number) = value.strip_suffix('s').filter(|n| !n.ends_with(['m', 'u', 'µ', 'n']))
        && let Ok(secs) = number.parse::<f64>()
    {
        return if secs.is_finite() && secs >= 0.0 { Ok(Duration::from_secs_f64(secs)) } else { Err(bad()) };
    }
    humantime::parse_duration(value).map_err(|_| bad())
}

/// An optional duration parameter in nanoseconds; empty means absent.
pub fn duration_nanos(name: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    value.filter(|v| !v.is_empty()).map(|v| duration(name, v).map(|d| d.as_nanos() as u64)).transpose()
}

pub fn limit(name: &str, value: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match value.unwrap_or(default) {
        0 => Err(ApiError::BadRequest(format!("{name} must be at least 1"))),
        n if n > MAX_LIMIT => Err(ApiError::BadRequest(format!("{name} must be at most {MAX_LIMIT}"))),
        n => Ok(n),
    }
}

/// Checks that a range runs forward.
pub fn range(start: u64, end: u64) -> Result<(u64, u64), ApiError> {
    if start > end {
        return Err(ApiError::BadRequest(format!("the time range ends ({end}) before it starts ({start})")));
    }
    Ok((start, end))
}

/// `key=value` pairs separated by spaces or commas (logfmt-like), or a JSON
/// object of strings (Jaeger's `tags` parameter).
pub fn attributes(name: &str, value: &str) -> Result<Vec<(String, String)>, ApiError> {
    let value = value.trim();
    if value.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
            .map_err(|e| ApiError::BadRequest(format!("{name}: invalid JSON object: {e}")))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect());
    }
    value
        .split([' ', ','])
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.trim_matches('"').to_owned())),
            _ => Err(ApiError::BadRequest(format!("{name}: {pair:?} is not key=value"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(duration("d", "1.5s").expect("ok"), Duration::from_millis(1500));
        assert_eq!(duration("d", "250ms").expect("ok"), Duration::from_millis(250));
        assert_eq!(duration("d", "100us").expect("ok"), Duration::from_micros(100));
        assert_eq!(duration("d", "1h").expect("ok"), Duration::from_secs(3600));
        assert!(duration("d", "fast").is_err());
        assert!(duration("d", "-1s").is_err());
        assert_eq!(time_nanos("t", "1700000000000000000").expect("ok"), 1_700_000_000_000_000_000);
        assert_eq!(time_nanos("t", "2023-11-14T22:13:20Z").expect("ok"), 1_700_000_000_000_000_000);
        assert!(time_nanos("t", "yesterday").is_err());
        assert!(range(2, 1).is_err());
        assert!(limit("limit", Some(0), 20).is_err());
        assert!(limit("limit", Some(1_000_000), 20).is_err());
    }

    #[test]
    fn attribute_filters() {
        assert_eq!(
            attributes("tags", "http.status_code=500 error=true").expect("ok"),
            [("http.status_code".to_owned(), "500".to_owned()), ("error".to_owned(), "true".to_owned())]
        );
        assert_eq!(
            attributes("tags", r#"{"a":"b","n":5}"#).expect("ok"),
            [("a".to_owned(), "b".to_owned()), ("n".to_owned(), "5".to_owned())]
        );
        assert!(attributes("tags", "novalue").is_err());
    }
}
