//! Messages shared by all signals: values, attributes, resource and scope.

use serde_json::Value;

use super::reader::{JsonError, Obj, Result};
use crate::otlp::common::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value};
use crate::otlp::resource::Resource;

pub(crate) fn any_value(o: Obj<'_>) -> Result<AnyValue> {
    use any_value::Value as V;
    let value = if let Some(v) = o.get("stringValue", "string_value") {
        match v {
            Value::String(s) => Some(V::StringValue(s.clone())),
            _ => {
                return Err(JsonError { path: o.path().to_owned(), message: "stringValue must be a string".into() });
            }
        }
    } else if o.get("boolValue", "bool_value").is_some() {
        Some(V::BoolValue(o.bool("boolValue", "bool_value")?))
    } else if o.get("intValue", "int_value").is_some() {
        Some(V::IntValue(o.i64("intValue", "int_value")?))
    } else if o.get("doubleValue", "double_value").is_some() {
        Some(V::DoubleValue(o.f64("doubleValue", "double_value")?))
    } else if let Some(a) = o.message("arrayValue", "array_value", |a| {
        Ok(ArrayValue { values: a.messages("values", "values", any_value)? })
    })? {
        Some(V::ArrayValue(a))
    } else if let Some(kv) = o.message("kvlistValue", "kvlist_value", |l| {
        Ok(KeyValueList { values: l.messages("values", "values", key_value)? })
    })? {
        Some(V::KvlistValue(kv))
    } else if o.get("bytesValue", "bytes_value").is_some() {
        Some(V::BytesValue(o.base64_bytes("bytesValue", "bytes_value")?))
    } else {
        None
    };
    Ok(AnyValue { value })
}

pub(crate) fn key_value(o: Obj<'_>) -> Result<KeyValue> {
    Ok(KeyValue { key: o.string("key", "key")?, value: o.message("value", "value", any_value)?, key_strindex: 0 })
}

pub(crate) fn attributes(o: &Obj<'_>) -> Result<Vec<KeyValue>> {
    o.messages("attributes", "attributes", key_value)
}

pub(crate) fn resource(o: Obj<'_>) -> Result<Resource> {
    Ok(Resource {
        attributes: attributes(&o)?,
        dropped_attributes_count: o.u32("droppedAttributesCount", "dropped_attributes_count")?,
        entity_refs: Vec::new(),
    })
}

pub(crate) fn scope(o: Obj<'_>) -> Result<InstrumentationScope> {
    Ok(InstrumentationScope {
        name: o.string("name", "name")?,
        version: o.string("version", "version")?,
        attributes: attributes(&o)?,
        dropped_attributes_count: o.u32("droppedAttributesCount", "dropped_attributes_count")?,
    })
}
