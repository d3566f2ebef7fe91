//! The domain model that every store and query speaks. Wire formats are
//! converted into these types once, in the collector.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Nanoseconds since the Unix epoch, now: the one clock of every store,
/// query and door.
pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The three kinds of telemetry. The discriminant is stored in the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Signal {
    Traces = 0,
    Logs = 1,
    Metrics = 2,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u8 == v)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tenant name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tenant(Arc<str>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid tenant {0:?}: expected 1 to 64 characters of A-Z a-z 0-9 _ . -")]
pub struct InvalidTenant(pub String);

impl Tenant {
    pub fn new(name: &str) -> Result<Self, InvalidTenant> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if ok { Ok(Self(name.into())) } else { Err(InvalidTenant(name.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{kind} must be {expected} bytes, got {got}")]
    Length { kind: &'static str, expected: usize, got: usize },
    #[error("{0} must not be all zeros")]
    Zero(&'static str),
    #[error("{0} is not valid hex")]
    Hex(&'static str),
}

macro_rules! id_type {
    ($name:ident, $len:literal, $kind:literal) => {
        #[doc = concat!("A ", $kind, ": ", stringify!($len), " bytes, never all zeros.")]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = IdError;
            fn try_from(bytes: &[u8]) -> Result<Self, IdError> {
                let arr: [u8; $len] =
                    bytes.try_into().map_err(|_| IdError::Length { kind: $kind, expected: $len, got: bytes.len() })?;
                if arr == [0; $len] {
                    return Err(IdError::Zero($kind));
                }
                Ok(Self(arr))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let bytes = hex::decode(s).map_err(|_| IdError::Hex($kind))?;
                Self::try_from(bytes.as_slice())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                HexBytes(&self.0).fmt(f)
            }
        }

        /// As its hex text.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&HexBytes(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

id_type!(TraceId, 16, "trace id");
id_type!(SpanId, 8, "span id");

/// An attribute value, as OTLP's `AnyValue`.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Empty,
    Str(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AttrValue>),
    Map(Attributes),
}

impl AttrValue {
    /// The value as text, as it is shown and searched.
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::Empty => String::new(),
            AttrValue::Str(s) => s.clone(),
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Double(d) => d.to_string(),
            AttrValue::Bytes(b) => hex::encode(b),
            AttrValue::Array(_) | AttrValue::Map(_) => self.to_json().to_string(),
        }
    }

    /// The value as plain JSON, as the APIs show it (see its `Serialize`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Plain JSON: strings, booleans and numbers as themselves (a double JSON
/// cannot hold, such as NaN, as its text), bytes as hex, arrays and maps
/// nested, empty as `null`. Serialised from the value, without copies.
impl serde::Serialize for AttrValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AttrValue::Empty => s.serialize_unit(),
            AttrValue::Str(v) => s.serialize_str(v),
            AttrValue::Bool(b) => s.serialize_bool(*b),
            AttrValue::Int(i) => s.serialize_i64(*i),
            AttrValue::Double(d) if d.is_finite() => s.serialize_f64(*d),
            AttrValue::Double(d) => s.collect_str(d),
            AttrValue::Bytes(b) => s.collect_str(&HexBytes(b)),
            AttrValue::Array(items) => s.collect_seq(items),
            AttrValue::Map(attrs) => attrs.serialize(s),
        }
    }
}

/// Lower-case hex of bytes, written without an intermediate `String`.
struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Key/value attributes in the order they were sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(pub Vec<(String, AttrValue)>);

impl Attributes {
    pub fn get(&self, key: &str) -> Option<&AttrValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The attributes as a plain JSON object (see its `Serialize`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// A JSON object of the values in [`AttrValue`]'s plain form; of repeated
/// keys, the last wins (as a JSON reader would keep it).
impl serde::Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut last: Vec<usize> = Vec::with_capacity(self.0.len());
        for (i, (k, _)) in self.0.iter().enumerate() {
            match last.iter_mut().find(|j| self.0[**j].0 == *k) {
                Some(j) => *j = i,
                None => last.push(i),
            }
        }
        s.collect_map(last.iter().map(|&i| (&self.0[i].0, &self.0[i].1)))
    }
}

/// The entity that produced telemetry, shared by all its items.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    /// `service.name`, or `unknown_service` when absent.
    pub service: String,
    pub attributes: Attributes,
}

/// The instrumentation scope (library) that produced an item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SpanKind {
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_otlp(v: i32) -> Self {
        match v {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_otlp(v: i32) -> Self {
        match v {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Attributes,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub status_code: StatusCode,
    pub status_message: String,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    pub links: Vec<SpanLink>,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// When the event happened; the observed time when the client sent none.
    pub time_unix_nano: u64,
    pub observed_unix_nano: u64,
    pub severity_number: u8,
    pub severity_text: String,
    pub body: AttrValue,
    pub attributes: Attributes,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub event_name: String,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_refuse_bad_lengths_and_zero() {
        let id: TraceId = "5b8efff798038103d269b633813fc60c".parse().expect("valid");
        assert_eq!(id.to_string(), "5b8efff798038103d269b633813fc60c");
        assert_eq!(TraceId::try_from(&[1u8; 15][..]), Err(IdError::Length { kind: "trace id", expected: 16, got: 15 }));
        assert_eq!(SpanId::try_from(&[0u8; 8][..]), Err(IdError::Zero("span id")));
        assert_eq!("zz".parse::<SpanId>(), Err(IdError::Hex("span id")));
    }

    #[test]
    fn tenants_are_restricted() {
        assert!(Tenant::new("team-a.prod_1").is_ok());
        assert!(Tenant::new("").is_err());
        assert!(Tenant::new("a/b").is_err());
        assert!(Tenant::new(&"x".repeat(65)).is_err());
    }
}
