//! The stored JSON form of attribute values, one codec for every store: it
//! keeps every type (`{"s":…}`, `{"b":…}`, `{"i":…}`, `{"d":"…"}`,
//! `{"x":"hex"}`, `{"a":[…]}`, `{"m":[["key",…],…]}`, or `null`), where
//! the API's plain JSON (`AttrValue`'s `Serialize`) would lose bytes from
//! strings and ints from doubles. Written straight from the value, without
//! a JSON tree; read back from a parsed [`Value`].

use serde::Serializer;
use serde::ser::{Serialize, SerializeMap};
use serde_json::Value;

use crate::model::{AttrValue, Attributes};

/// An attribute value, serialised in its typed form.
pub struct Typed<'a>(pub &'a AttrValue);

impl Serialize for Typed<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn one<S: Serializer, T: Serialize + ?Sized>(s: S, tag: &str, v: &T) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(1))?;
            m.serialize_entry(tag, v)?;
            m.end()
        }
        match self.0 {
            AttrValue::Empty => s.serialize_unit(),
            AttrValue::Str(v) => one(s, "s", v),
            AttrValue::Bool(v) => one(s, "b", v),
            AttrValue::Int(v) => one(s, "i", v),
            AttrValue::Double(v) => one(s, "d", &v.to_string()),
            AttrValue::Bytes(v) => one(s, "x", &hex::encode(v)),
            AttrValue::Array(items) => one(s, "a", &items.iter().map(Typed).collect::<Vec<_>>()),
            AttrValue::Map(m) => one(s, "m", &TypedAttributes(m)),
        }
    }
}

/// Attributes as a list of `[key, typed value]` pairs, in their order.
pub struct TypedAttributes<'a>(pub &'a Attributes);

impl Serialize for TypedAttributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.0.iter().map(|(k, v)| (k, Typed(v))))
    }
}

/// The typed form of `v` as text.
pub fn to_string(v: &AttrValue) -> String {
    serde_json::to_string(&Typed(v)).unwrap_or_default()
}

/// Reads a value [`Typed`] wrote; anything else is `Empty`.
pub fn value(v: &Value) -> AttrValue {
    let Some((tag, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return AttrValue::Empty;
    };
    match tag.as_str() {
        "s" => inner.as_str().map_or(AttrValue::Empty, |s| AttrValue::Str(s.to_owned())),
        "b" => inner.as_bool().map_or(AttrValue::Empty, AttrValue::Bool),
        "i" => inner.as_i64().map_or(AttrValue::Empty, AttrValue::Int),
        "d" => inner.as_str().and_then(|s| s.parse().ok()).map_or(AttrValue::Empty, AttrValue::Double),
        "x" => inner.as_str().and_then(|s| hex::decode(s).ok()).map_or(AttrValue::Empty, AttrValue::Bytes),
        "a" => AttrValue::Array(inner.as_array().map(|a| a.iter().map(value).collect()).unwrap_or_default()),
        "m" => AttrValue::Map(attributes(Some(inner))),
        _ => AttrValue::Empty,
    }
}

/// Reads attributes [`TypedAttributes`] wrote, skipping malformed pairs.
pub fn attributes(v: Option<&Value>) -> Attributes {
    let pairs = v.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    Attributes(pairs.iter().filter_map(|p| Some((p.get(0)?.as_str()?.to_owned(), value(p.get(1)?)))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_survives_the_round_trip() {
        let nested = Attributes(vec![("k".into(), AttrValue::Bytes(vec![0, 255]))]);
        let all = AttrValue::Array(vec![
            AttrValue::Empty,
            AttrValue::Str("é\"".into()),
            AttrValue::Bool(true),
            AttrValue::Int(i64::MIN),
            AttrValue::Double(0.1),
            AttrValue::Map(nested),
        ]);
        let text = to_string(&all);
        assert_eq!(
            text,
            r#"{"a":[null,{"s":"é\""},{"b":true},{"i":-9223372036854775808},{"d":"0.1"},{"m":[["k",{"x":"00ff"}]]}]}"#
        );
        assert_eq!(value(&serde_json::from_str(&text).expect("JSON")), all);
        assert_eq!(value(&serde_json::json!({"q": 1})), AttrValue::Empty, "an unknown tag");
    }
}
