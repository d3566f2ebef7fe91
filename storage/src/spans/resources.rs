//! The resources of span rows, kept once per head chunk and once per part
//! (format version 3) rather than on every row: a row's `resource` column
//! is its resource's place in the table that travels with the rows.
//!
//! A part's table is in its Parquet footer, under [`FOOTER_KEY`], as JSON:
//! `[{"service": "…", "attributes": [["key", typed value], …]}, …]` (typed
//! values as [`crate::typed_json`] writes them).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::error::ArrowError;
use serde_json::Value;

use crate::model::{AttrValue, Attributes, Resource};
use crate::typed_json::{self, TypedAttributes};

/// A table of resources, shared by the rows that point into it.
pub type Resources = Arc<[Arc<Resource>]>;

/// The footer key of a part's resource table.
pub(super) const FOOTER_KEY: &str = "sightline.resources";

/// Builds a table in which each distinct resource appears once. Rows of
/// one resource share an `Arc` (as the collector hands them over, and as a
/// part's table holds them), so a resource is compared by content once per
/// distinct `Arc`, and by address after that.
#[derive(Default)]
pub(super) struct ResourceTable {
    entries: Vec<Arc<Resource>>,
    by_content: HashMap<String, u32>,
    /// Places by the address of an `Arc` seen before, kept alive here so
    /// that no address is reused while the table lives.
    by_address: HashMap<*const Resource, (Arc<Resource>, u32)>,
    last: Option<(*const Resource, u32)>,
}

impl ResourceTable {
    /// The place of `resource`, added when the table has none like it.
    pub(super) fn id(&mut self, resource: &Arc<Resource>) -> u32 {
        let address = Arc::as_ptr(resource);
        if let Some((last, id)) = self.last
            && last == address
        {
            return id;
        }
        let id = match self.by_address.get(&address) {
            Some(&(_, id)) => id,
            None => {
                let id = self.by_content_id(resource);
                self.by_address.insert(address, (resource.clone(), id));
                id
            }
        };
        self.last = Some((address, id));
        id
    }

    fn by_content_id(&mut self, resource: &Arc<Resource>) -> u32 {
        let key = serde_json::to_string(&Entry::of(resource)).unwrap_or_default();
        if let Some(&id) = self.by_content.get(&key) {
            return id;
        }
        let id = self.entries.len() as u32;
        self.entries.push(resource.clone());
        self.by_content.insert(key, id);
        id
    }

    /// The place in this table of each entry of `other`.
    pub(super) fn ids_of(&mut self, other: &[Arc<Resource>]) -> Vec<u32> {
        other.iter().map(|r| self.id(r)).collect()
    }

    pub(super) fn finish(self) -> Resources {
        self.entries.into()
    }
}

/// A table as the footer keeps it.
pub(super) fn to_json(entries: &[Arc<Resource>]) -> String {
    serde_json::to_string(&entries.iter().map(|r| Entry::of(r)).collect::<Vec<_>>()).unwrap_or_default()
}

/// One resource as the footer keeps it.
#[derive(serde::Serialize)]
struct Entry<'a> {
    attributes: TypedAttributes<'a>,
    service: &'a str,
}

impl<'a> Entry<'a> {
    fn of(r: &'a Resource) -> Self {
        Entry { attributes: TypedAttributes(&r.attributes), service: &r.service }
    }
}

/// Reads what [`to_json`] wrote.
pub(super) fn from_json(text: &str) -> Result<Resources, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("resource table: {e}"))?;
    let entries = value.as_array().ok_or("resource table is not a list")?;
    entries
        .iter()
        .map(|e| {
            let service = e.get("service").and_then(Value::as_str).ok_or("resource without a service")?;
            let pairs = e.get("attributes").and_then(Value::as_array).ok_or("resource without attributes")?;
            let attributes = pairs
                .iter()
                .map(|p| {
                    let key = p.get(0).and_then(Value::as_str).ok_or("resource attribute without a key")?;
                    Ok((key.to_owned(), p.get(1).map_or(AttrValue::Empty, typed_json::value)))
                })
                .collect::<Result<Vec<_>, &str>>()?;
            Ok(Arc::new(Resource { service: service.to_owned(), attributes: Attributes(attributes) }))
        })
        .collect::<Result<Vec<_>, &str>>()
        .map(Into::into)
        .map_err(str::to_owned)
}

/// `rows` with each `resource` place `i` replaced by `places[i]`.
pub(super) fn remap(rows: &RecordBatch, places: &[u32]) -> Result<RecordBatch, ArrowError> {
    let at = rows.schema().index_of("resource")?;
    let column = resource_column(rows)?;
    let mapped: UInt32Array = column
        .values()
        .iter()
        .map(|&i| places.get(i as usize).copied().ok_or_else(|| out_of_table(i)))
        .collect::<Result<Vec<u32>, _>>()?
        .into();
    let mut columns = rows.columns().to_vec();
    columns[at] = Arc::new(mapped) as ArrayRef;
    RecordBatch::try_new(rows.schema(), columns)
}

/// The `resource` column of a batch in [`super::columns::schema`].
pub(super) fn resource_column(rows: &RecordBatch) -> Result<&UInt32Array, ArrowError> {
    rows.column_by_name("resource")
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| ArrowError::SchemaError("span rows without a resource column".into()))
}

pub(super) fn out_of_table(i: u32) -> ArrowError {
    ArrowError::InvalidArgumentError(format!("span row points at resource {i}, past its table"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(host: &str) -> Arc<Resource> {
        Arc::new(Resource {
            service: "checkout".into(),
            attributes: Attributes(vec![
                ("host.name".into(), AttrValue::Str(host.into())),
                ("ratio".into(), AttrValue::Double(0.25)),
                ("tags".into(), AttrValue::Map(Attributes(vec![("k".into(), AttrValue::Int(7))]))),
            ]),
        })
    }

    #[test]
    fn a_table_holds_each_resource_once_and_survives_the_footer() {
        let (a, a_again, b) = (resource("h1"), resource("h1"), resource("h2"));
        let mut table = ResourceTable::default();
        assert_eq!(table.ids_of(&[a.clone(), b.clone(), a_again, a]), vec![0, 1, 0, 0]);
        let table = table.finish();
        assert_eq!(table.len(), 2);
        let back = from_json(&to_json(&table)).expect("reads back");
        assert_eq!(
            back.iter().map(|r| (**r).clone()).collect::<Vec<_>>(),
            vec![(*resource("h1")).clone(), (*b).clone()]
        );
        assert!(from_json("[{\"service\": 1}]").is_err(), "a malformed table is an error, not a panic");
    }
}
