//! A small reader over `serde_json::Value` that applies the protobuf JSON
//! mapping rules field by field.

use serde_json::{Map, Value};

/// Why an OTLP/JSON body could not be decoded; names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON at {path}: {message}")]
pub struct JsonError {
    pub path: String,
    pub message: String,
}

impl JsonError {
    fn new(path: &str, message: impl Into<String>) -> Self {
        Self { path: path.to_owned(), message: message.into() }
    }
}

pub(crate) type Result<T> = std::result::Result<T, JsonError>;

pub(crate) fn parse(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| JsonError::new("$", e.to_string()))
}

/// One JSON object being read as a protobuf message.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    map: Option<&'a Map<String, Value>>,
    path: &'a str,
}

impl<'a> Obj<'a> {
    /// Reads `value` as a message; `null` is the empty message.
    pub fn new(value: &'a Value, path: &'a str) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Self { map: Some(map), path }),
            Value::Null => Ok(Self { map: None, path }),
            other => Err(JsonError::new(path, format!("expected an object, got {}", kind(other)))),
        }
    }

    pub fn path(&self) -> &'a str {
        self.path
    }

    /// The value under the lowerCamelCase or the original snake_case name;
    /// `None` when absent or `null`.
    pub fn get(&self, camel: &str, snake: &str) -> Option<&'a Value> {
        let map = self.map?;
        map.get(camel).or_else(|| map.get(snake)).filter(|v| !v.is_null())
    }

    fn err(&self, field: &str, message: impl Into<String>) -> JsonError {
        JsonError::new(&format!("{}.{}", self.path, field), message)
    }

    pub fn string(&self, camel: &str, snake: &str) -> Result<String> {
        match self.get(camel, snake) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.err(camel, format!("expected a string, got {}", kind(other)))),
        }
    }

    pub fn bool(&self, camel: &str, snake: &str) -> Result<bool> {
        match self.get(camel, snake) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(camel, format!("expected a boolean, got {}", kind(other)))),
        }
    }

    pub fn u64(&self, camel: &str, snake: &str) -> Result<u64> {
        self.get(camel, snake).map_or(Ok(0), |v| uint(v).map_err(|m| self.err(camel, m)))
    }

    pub fn u32(&self, camel: &str, snake: &str) -> Result<u32> {
        let v = self.u64(camel, snake)?;
        u32::try_from(v).map_err(|_| self.err(camel, "out of range for uint32"))
    }

    pub fn i64(&self, camel: &str, snake: &str) -> Result<i64> {
        self.get(camel, snake).map_or(Ok(0), |v| int(v).map_err(|m| self.err(camel, m)))
    }

    pub fn i32(&self, camel: &str, snake: &str) -> Result<i32> {
        let v = self.i64(camel, snake)?;
        i32::try_from(v).map_err(|_| self.err(camel, "out of range for int32"))
    }

    pub fn opt_f64(&self, camel: &str, snake: &str) -> Result<Option<f64>> {
        self.get(camel, snake).map(|v| float(v).map_err(|m| self.err(camel, m))).transpose()
    }

    pub fn f64(&self, camel: &str, snake: &str) -> Result<f64> {
        Ok(self.opt_f64(camel, snake)?.unwrap_or(0.0))
    }

    /// An enum given as its integer or its name (`names[i] = (name, value)`).
    pub fn enumeration(&self, camel: &str, snake: &str, names: &[(&str, i32)]) -> Result<i32> {
        match self.get(camel, snake) {
            None => Ok(0),
            Some(Value::String(s)) => match names.iter().find(|(n, _)| n == s) {
                Some((_, v)) => Ok(*v),
                None => s.parse::<i32>().map_err(|_| self.err(camel, format!("unknown enum value {s:?}"))),
            },
            Some(v) => {
                let n = int(v).map_err(|m| self.err(camel, m))?;
                i32::try_from(n).map_err(|_| self.err(camel, "out of range for an enum"))
            }
        }
    }

    /// Trace and span ids: hex in OTLP/JSON (not base64).
    pub fn hex_bytes(&self, camel: &str, snake: &str) -> Result<Vec<u8>> {
        match self.get(camel, snake) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => hex::decode(s).map_err(|e| self.err(camel, format!("invalid hex id: {e}"))),
            Some(other) => Err(self.err(camel, format!("expected a hex string, got {}", kind(other)))),
        }
    }

    /// `bytes` fields other than ids: base64, standard or URL-safe alphabet.
    pub fn base64_bytes(&self, camel: &str, snake: &str) -> Result<Vec<u8>> {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        match self.get(camel, snake) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => STANDARD
                .decode(s)
                .or_else(|_| URL_SAFE.decode(s))
                .map_err(|e| self.err(camel, format!("invalid base64: {e}"))),
            Some(other) => Err(self.err(camel, format!("expected a base64 string, got {}", kind(other)))),
        }
    }

    /// A nested message, `None` when absent or `null`.
    pub fn message<T>(&self, camel: &str, snake: &str, read: impl Fn(Obj<'_>) -> Result<T>) -> Result<Option<T>> {
        match self.get(camel, snake) {
            None => Ok(None),
            Some(v) => {
                let path = format!("{}.{}", self.path, camel);
                read(Obj::new(v, &path)?).map(Some)
            }
        }
    }

    /// A repeated message field.
    pub fn messages<T>(&self, camel: &str, snake: &str, read: impl Fn(Obj<'_>) -> Result<T>) -> Result<Vec<T>> {
        let items = self.array(camel, snake)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            let path = format!("{}.{}[{}]", self.path, camel, i);
            out.push(read(Obj::new(v, &path)?)?);
        }
        Ok(out)
    }

    /// A repeated scalar field, each element read by `read`.
    pub fn scalars<T>(
        &self,
        camel: &str,
        snake: &str,
        read: fn(&Value) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        self.array(camel, snake)?.iter().map(|v| read(v).map_err(|m| self.err(camel, m))).collect()
    }

    fn array(&self, camel: &str, snake: &str) -> Result<&'a [Value]> {
        match self.get(camel, snake) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.err(camel, format!("expected an array, got {}", kind(other)))),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Unsigned 64-bit integer from a number or a decimal string.
pub(crate) fn uint(v: &Value) -> std::result::Result<u64, String> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19).map(|f| f as u64))
            .ok_or_else(|| format!("expected an unsigned integer, got {n}")),
        Value::String(s) => s.parse::<u64>().map_err(|_| format!("expected an unsigned integer, got {s:?}")),
        other => Err(format!("expected an unsigned integer, got {}", kind(other))),
    }
}

/// Signed 64-bit integer from a number or a decimal string.
pub(crate) fn int(v: &Value) -> std::result::Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18).map(|f| f as i64))
            .ok_or_else(|| format!("expected an integer, got {n}")),
        Value::String(s) => s.parse::<i64>().map_err(|_| format!("expected an integer, got {s:?}")),
        other => Err(format!("expected an integer, got {}", kind(other))),
    }
}

/// A double from a number, a numeric string, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
pub(crate) fn float(v: &Value) -> std::result::Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("expected a number, got {n}")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => s.parse::<f64>().map_err(|_| format!("expected a number, got {s:?}")),
        },
        other => Err(format!("expected a number, got {}", kind(other))),
    }
}
