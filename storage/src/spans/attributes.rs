//! A search's attribute conditions, checked on columns, and what each part
//! holds of them.
//!
//! A part's meta lists the keys of its span attributes (those kept in the
//! `attributes` list, outside the hot columns) and of its resource
//! attributes, and every value of each hot attribute when it has few
//! ([`PartAttributes`]). A search skips a part that cannot hold the
//! attributes it asks for without reading it, and in the others reads only
//! the columns that can hold them: for a hot attribute (`http.route`, …)
//! that is usually its own column alone, never the attribute lists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};

use super::columns::{self, HOT_STATUS, HOT_STR};
use super::kv::{self, AttrReader};
use super::query::SpanQuery;
use crate::model::Resource;

/// Parts with more distinct attribute keys than this do not list them.
const MAX_KEYS: usize = 1024;
/// A hot attribute's values are listed while there are at most this many.
const MAX_HOT_VALUES: usize = 256;

const SPAN_LIST: &str = kv::KEYS;
/// The resource of each row: its place in the part's table (version 3) or,
/// in parts before, its attributes as a list on every row.
const RESOURCE_PLACE: &str = "resource";
const RESOURCE_LIST: &str = "resource_attributes";

/// The attribute keys and hot-attribute values of a part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartAttributes {
    /// Keys in the span attribute lists (hot attributes only where a span
    /// held one that its column could not: a second value, another type).
    pub span_keys: BTreeSet<String>,
    pub resource_keys: BTreeSet<String>,
    /// Hot attribute key → every value its column holds in the part, as
    /// text; a key is missing when it has more than [`MAX_HOT_VALUES`].
    pub hot_values: BTreeMap<String, BTreeSet<String>>,
}

/// Where a part may hold an attribute's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sources {
    hot: Option<&'static str>,
    span_list: bool,
    resource_list: bool,
}

impl Sources {
    /// For a part whose attributes are `known` (everything, when unknown).
    fn of(key: &str, known: Option<&PartAttributes>) -> Self {
        Self {
            hot: columns::hot_column(key),
            span_list: known.is_none_or(|a| a.span_keys.contains(key)),
            resource_list: known.is_none_or(|a| a.resource_keys.contains(key)),
        }
    }
}

/// Whether a part with these attributes (unknown: `None`) may hold a span
/// with every attribute `query` asks for.
pub(super) fn may_match(known: Option<&PartAttributes>, query: &SpanQuery) -> bool {
    query.attributes.iter().all(|(key, value)| {
        let sources = Sources::of(key, known);
        let in_hot = sources.hot.is_some()
            && known.is_none_or(|a| a.hot_values.get(key).is_none_or(|values| values.contains(value)));
        in_hot || sources.span_list || sources.resource_list
    })
}

/// The columns that may hold the attributes `query` asks for, in a part
/// with these attributes.
pub(super) fn columns_to_read(known: Option<&PartAttributes>, query: &SpanQuery) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    for (key, _) in &query.attributes {
        let sources = Sources::of(key, known);
        out.extend(sources.hot);
        if sources.span_list {
            out.insert(SPAN_LIST);
            out.extend(kv::VALUE_LISTS);
        }
        if sources.resource_list {
            out.extend([RESOURCE_PLACE, RESOURCE_LIST]);
        }
    }
    out
}

/// The rows of `batch` whose attributes match every condition of `query`,
/// read from whichever of the hot columns, attribute lists and resource
/// places `batch` has (a column left out is one that cannot hold the
/// attribute; `resources` is the table the places point into). As on a
/// decoded span: the span's own value wins over the resource's, values are
/// compared as text.
pub(super) fn mask(
    query: &SpanQuery,
    batch: &RecordBatch,
    resources: &[Arc<Resource>],
) -> Result<BooleanArray, ArrowError> {
    let span_list = batch.column_by_name(SPAN_LIST).map(|_| AttrReader::of_spans(batch)).transpose();
    let resource_list =
        batch.column_by_name(RESOURCE_LIST).map(|c| AttrReader::of_structs(c.as_ref(), RESOURCE_LIST)).transpose();
    let (span_list, resource_list) = (span_list.map_err(to_arrow)?, resource_list.map_err(to_arrow)?);
    let places = match batch.column_by_name(RESOURCE_PLACE) {
        Some(_) => Some(super::resources::resource_column(batch)?),
        None => None,
    };
    let conditions: Vec<Condition> = query
        .attributes
        .iter()
        .map(|(key, value)| Condition::new(batch, key, value, places.is_some().then_some(resources)))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let place = places.map(|p| p.value(row) as usize);
        let mut all = true;
        for c in &conditions {
            let in_list = |list: &Option<AttrReader>| list.as_ref().and_then(|l| l.text_is(row, c.key, c.value));
            let in_resource = || match place {
                Some(p) => c.by_resource.get(p).copied().ok_or_else(|| super::resources::out_of_table(p as u32)),
                None => Ok(in_list(&resource_list)),
            };
            let found = match c.hot_value(row).or_else(|| in_list(&span_list)) {
                Some(found) => found,
                None => in_resource()?.unwrap_or(false),
            };
            if !found {
                all = false;
                break;
            }
        }
        out.push(Some(all));
    }
    Ok(out.into_iter().collect())
}

/// One attribute condition with its hot column, if the batch has one.
struct Condition<'a> {
    key: &'a str,
    value: &'a str,
    hot: Hot,
    /// Per entry of the rows' resource table: whether the resource's value
    /// of the key reads as the value asked for (none: it has no such key).
    by_resource: Vec<Option<bool>>,
}

enum Hot {
    None,
    Str(StringArray),
    /// The status code column, and the value asked for as one of its
    /// values (none when no int32 reads as that text).
    Status(Int32Array, Option<i32>),
}

impl<'a> Condition<'a> {
    fn new(
        batch: &RecordBatch,
        key: &'a str,
        value: &'a str,
        resources: Option<&[Arc<Resource>]>,
    ) -> Result<Self, ArrowError> {
        let column = columns::hot_column(key).and_then(|c| Some((c, batch.column_by_name(c)?)));
        let hot = match column {
            None => Hot::None,
            Some((name, c)) if name == HOT_STATUS.1 => {
                let ints = c.as_any().downcast_ref::<Int32Array>().cloned();
                let ints = ints.ok_or_else(|| ArrowError::CastError(format!("{name} is not int32")))?;
                let wanted = value.parse::<i32>().ok().filter(|v| v.to_string() == value);
                Hot::Status(ints, wanted)
            }
            Some((name, c)) => Hot::Str(columns::strings(c.as_ref(), name).map_err(to_arrow)?),
        };
        let by_resource =
            resources.unwrap_or_default().iter().map(|r| r.attributes.get(key).map(|v| v.to_text() == value)).collect();
        Ok(Self { key, value, hot, by_resource })
    }

    /// Whether the hot column's value in `row` is the one asked for; none
    /// when the column has no value there.
    fn hot_value(&self, row: usize) -> Option<bool> {
        match &self.hot {
            Hot::None => None,
            Hot::Str(c) => c.is_valid(row).then(|| c.value(row) == self.value),
            Hot::Status(c, wanted) => c.is_valid(row).then(|| Some(c.value(row)) == *wanted),
        }
    }
}

fn to_arrow(e: impl std::fmt::Display) -> ArrowError {
    ArrowError::CastError(e.to_string())
}

/// Gathers a part's [`PartAttributes`] from the batches written to it.
pub(super) struct AttributeSummary {
    span_keys: foldhash::HashSet<String>,
    /// The attribute shapes seen (their keys are in `span_keys`).
    shapes: foldhash::HashSet<Vec<u8>>,
    resource_keys: foldhash::HashSet<String>,
    /// One per hot column (strings, then the status code); none once full.
    hot: Vec<Option<foldhash::HashSet<String>>>,
    status: Option<foldhash::HashSet<i32>>,
    overflow: bool,
}

impl Default for AttributeSummary {
    fn default() -> Self {
        Self {
            span_keys: Default::default(),
            shapes: Default::default(),
            resource_keys: Default::default(),
            hot: HOT_STR.iter().map(|_| Some(Default::default())).collect(),
            status: Some(Default::default()),
            overflow: false,
        }
    }
}

impl AttributeSummary {
    /// Adds the attributes of a batch in [`columns::schema`].
    pub(super) fn add(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        if self.overflow {
            return Ok(());
        }
        let shapes = batch.column_by_name(SPAN_LIST).ok_or_else(|| ArrowError::CastError(format!("no {SPAN_LIST}")))?;
        let keys = &mut self.span_keys;
        kv::shape_keys(shapes.as_ref(), &mut self.shapes, |key| {
            if !keys.contains(key) {
                keys.insert(key.to_owned());
            }
        })
        .map_err(to_arrow)?;
        if self.span_keys.len() > MAX_KEYS {
            self.overflow = true;
            return Ok(());
        }
        for ((_, name), values) in HOT_STR.iter().zip(&mut self.hot) {
            let Some(set) = values else { continue };
            let column = batch.column_by_name(name).map(ArrayRef::as_ref);
            let column = column.ok_or_else(|| ArrowError::CastError(format!("no {name} column")))?;
            insert_all(set, &columns::strings(column, name).map_err(to_arrow)?, 0..batch.num_rows());
            if set.len() > MAX_HOT_VALUES {
                *values = None;
            }
        }
        if let Some(set) = &mut self.status {
            let column = batch.column_by_name(HOT_STATUS.1).and_then(|c| c.as_any().downcast_ref::<Int32Array>());
            set.extend(column.into_iter().flat_map(|c| c.iter().flatten()));
            if set.len() > MAX_HOT_VALUES {
                self.status = None;
            }
        }
        Ok(())
    }

    /// Adds the keys of the part's resources.
    pub(super) fn add_resources(&mut self, resources: &[Arc<Resource>]) {
        for r in resources {
            for (key, _) in &r.attributes.0 {
                if !self.resource_keys.contains(key) {
                    self.resource_keys.insert(key.clone());
                }
            }
        }
        self.overflow |= self.resource_keys.len() > MAX_KEYS;
    }

    /// What the part holds; none when it has too many keys to list.
    pub(super) fn finish(self) -> Option<PartAttributes> {
        if self.overflow {
            return None;
        }
        let mut hot_values: BTreeMap<String, BTreeSet<String>> = HOT_STR
            .iter()
            .zip(self.hot)
            .filter_map(|((key, _), values)| Some(((*key).to_owned(), values?.into_iter().collect())))
            .collect();
        if let Some(codes) = self.status {
            hot_values.insert(HOT_STATUS.0.to_owned(), codes.into_iter().map(|c| c.to_string()).collect());
        }
        Some(PartAttributes {
            span_keys: self.span_keys.into_iter().collect(),
            resource_keys: self.resource_keys.into_iter().collect(),
            hot_values,
        })
    }
}

/// Adds the valid strings of `rows` of `column` to `set`, copying each
/// distinct one once.
fn insert_all(set: &mut foldhash::HashSet<String>, column: &StringArray, rows: std::ops::Range<usize>) {
    for i in rows {
        if column.is_valid(i) {
            let v = column.value(i);
            if !set.contains(v) {
                set.insert(v.to_owned());
            }
        }
    }
}
