//! Attribute lists as columns, in two layouts.
//!
//! - **Split** (span attributes, format version 5): `attributes` holds
//!   each span's *shape*, its keys and their types in the span's order
//!   (per attribute: the type tag, the key's length as a LEB128 varint, the
//!   key), and each value goes to the list of its type beside it:
//!   `attributes_str`, `attributes_int`, `attributes_double`,
//!   `attributes_bool`, and `attributes_other` (bytes as they are; arrays
//!   and maps as typed JSON; lowercase hex and UUID strings as the bytes
//!   they spell). Spans of one operation share a shape, so Parquet's
//!   dictionary keeps a part's few shapes once and a span costs an index;
//!   a value list holds only its type's values, so no attribute pays for
//!   the value columns it does not use, and each list is encoded for its
//!   type.
//! - **Struct** (events' and links' attributes, and span attributes in
//!   parts before version 5): one list of structs `(key, type, str, int,
//!   double, bool, bytes, json)`, the one value set, the others null.
//!
//! [`AttrReader`] reads either, row by row.
//!
//! In the head, a chunk's shapes are an Arrow dictionary (a chunk of a few
//! hundred spans holds a dozen distinct shapes, each some 150 bytes of
//! keys); [`columns::part_layout`](super::columns::part_layout) turns them
//! back into the plain binary column that parts hold.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BinaryDictionaryBuilder, BooleanArray, Float64Array, Int64Array,
    ListArray, RecordBatch, StringArray, StringBuilder, StructArray, UInt8Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::UInt32Type;
use arrow::datatypes::{DataType, Field, FieldRef, Fields};

use super::columns::{ColumnError, bad, strings, typed};
use super::dedicated;
use crate::model::{AttrValue, Attributes};
use crate::typed_json;

pub(super) const T_EMPTY: u8 = 0;
pub(super) const T_STR: u8 = 1;
pub(super) const T_BOOL: u8 = 2;
pub(super) const T_INT: u8 = 3;
pub(super) const T_DOUBLE: u8 = 4;
pub(super) const T_BYTES: u8 = 5;
pub(super) const T_ARRAY: u8 = 6;
pub(super) const T_MAP: u8 = 7;
/// A string of lowercase hex digits (an even count, at least 16: trace ids,
/// hashes, request ids), kept as the bytes it spells (split layout only).
pub(super) const T_HEX: u8 = 8;
/// A lowercase UUID (8-4-4-4-12), kept as its 16 bytes (split layout only).
pub(super) const T_UUID: u8 = 9;

/// The span attributes' key list, and the value lists beside it by type.
pub(super) const KEYS: &str = "attributes";
pub(super) const VALUE_LISTS: [&str; 5] =
    ["attributes_str", "attributes_int", "attributes_double", "attributes_bool", "attributes_other"];
const VALUE_TYPES: [DataType; 5] =
    [DataType::Utf8, DataType::Int64, DataType::Float64, DataType::Boolean, DataType::Binary];

/// The type tag of a value.
fn tag(v: &AttrValue) -> u8 {
    match v {
        AttrValue::Empty => T_EMPTY,
        AttrValue::Str(_) => T_STR,
        AttrValue::Int(_) => T_INT,
        AttrValue::Double(_) => T_DOUBLE,
        AttrValue::Bool(_) => T_BOOL,
        AttrValue::Bytes(_) => T_BYTES,
        AttrValue::Array(_) => T_ARRAY,
        AttrValue::Map(_) => T_MAP,
    }
}

/// The value list of a type tag in the split layout (none: no value).
pub(super) fn list_of(tag: u8) -> Option<usize> {
    match tag {
        T_STR => Some(0),
        T_INT => Some(1),
        T_DOUBLE => Some(2),
        T_BOOL => Some(3),
        T_BYTES | T_ARRAY | T_MAP | T_HEX | T_UUID => Some(4),
        _ => None,
    }
}

/// Where the dashes of a UUID are.
const UUID_DASHES: [usize; 4] = [8, 13, 18, 23];

/// A string that reads back exactly from fewer bytes: its type tag and bytes.
fn packed(s: &str) -> Option<(u8, Vec<u8>)> {
    let b = s.as_bytes();
    let lower_hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    if b.len() == 36 && UUID_DASHES.iter().all(|&i| b[i] == b'-') {
        if !b.iter().enumerate().all(|(i, c)| UUID_DASHES.contains(&i) || lower_hex(c)) {
            return None;
        }
        // The five groups of digits, decoded in place: 4, 2, 2, 2 and 6 bytes.
        let mut out = vec![0; 16];
        let groups = [(0, 8, 0), (9, 13, 4), (14, 18, 6), (19, 23, 8), (24, 36, 10)];
        for (from, to, at) in groups {
            hex::decode_to_slice(&b[from..to], &mut out[at..at + (to - from) / 2]).ok()?;
        }
        return Some((T_UUID, out));
    }
    if b.len() >= 16 && b.len().is_multiple_of(2) && b.iter().all(lower_hex) {
        return hex::decode(b).ok().map(|v| (T_HEX, v));
    }
    None
}

/// A UUID's text from its 16 bytes (anything else: an empty value).
fn unpack_uuid(bytes: &[u8]) -> AttrValue {
    if bytes.len() != 16 {
        return AttrValue::Empty;
    }
    let h = hex::encode(bytes);
    AttrValue::Str(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

fn item(data_type: DataType) -> FieldRef {
    Arc::new(Field::new("item", data_type, false))
}

/// The span schema's fields of the split layout: the shapes, then the
/// value lists (placed at the schema's end).
pub(super) fn split_key_field() -> Field {
    Field::new(KEYS, DataType::Binary, false)
}

/// The shapes' field in a head chunk: a dictionary of the chunk's shapes.
pub(super) fn head_key_field() -> Field {
    Field::new(KEYS, head_shapes(), false)
}

fn head_shapes() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Binary))
}

/// Shapes as plain binary values, from either column type (None: the
/// column is a struct list, the layout before version 5).
fn shapes_of(column: &dyn Array) -> Result<Option<BinaryArray>, ColumnError> {
    match column.data_type() {
        DataType::Binary => Ok(Some(typed::<BinaryArray>(column, KEYS)?.clone())),
        t if *t == head_shapes() => {
            let cast = arrow::compute::cast(column, &DataType::Binary).map_err(|e| bad(KEYS, e.to_string()))?;
            Ok(Some(typed::<BinaryArray>(cast.as_ref(), KEYS)?.clone()))
        }
        _ => Ok(None),
    }
}

pub(super) fn split_value_fields() -> impl Iterator<Item = Field> {
    VALUE_LISTS.iter().zip(VALUE_TYPES).map(|(name, t)| Field::new(*name, DataType::List(item(t)), false))
}

pub(super) fn struct_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("type", DataType::UInt8, false),
        Field::new("str", DataType::Utf8, true),
        Field::new("int", DataType::Int64, true),
        Field::new("double", DataType::Float64, true),
        Field::new("bool", DataType::Boolean, true),
        Field::new("bytes", DataType::Binary, true),
        Field::new("json", DataType::Utf8, true),
    ])
}

/// The struct layout's list type.
pub(super) fn struct_list() -> DataType {
    DataType::List(item(DataType::Struct(struct_fields())))
}

fn list(field: FieldRef, offsets: Vec<i32>, values: ArrayRef) -> ListArray {
    ListArray::new(field, OffsetBuffer::new(offsets.into()), values, None)
}

/// Collects span attributes in the split layout, borrowing their strings
/// until Arrow copies them.
pub(super) struct SplitColumns<'a> {
    shapes: BinaryDictionaryBuilder<UInt32Type>,
    shape: Vec<u8>,
    value_offsets: [Vec<i32>; 5],
    strs: Vec<&'a str>,
    ints: Vec<i64>,
    doubles: Vec<f64>,
    bools: Vec<bool>,
    others: Vec<std::borrow::Cow<'a, [u8]>>,
}

impl<'a> SplitColumns<'a> {
    pub(super) fn with_capacity(rows: usize) -> Self {
        let offsets = || {
            let mut v = Vec::with_capacity(rows + 1);
            v.push(0);
            v
        };
        Self {
            shapes: BinaryDictionaryBuilder::with_capacity(rows, 16, 1024),
            shape: Vec::with_capacity(256),
            value_offsets: std::array::from_fn(|_| offsets()),
            strs: Vec::with_capacity(rows * 6),
            ints: Vec::with_capacity(rows * 4),
            doubles: Vec::new(),
            bools: Vec::new(),
            others: Vec::new(),
        }
    }

    /// Adds one row's attributes.
    pub(super) fn push(&mut self, attrs: impl IntoIterator<Item = &'a (String, AttrValue)>) {
        self.shape.clear();
        for (k, v) in attrs {
            let packed = match v {
                AttrValue::Str(s) => packed(s),
                _ => None,
            };
            self.shape.push(packed.as_ref().map_or_else(|| tag(v), |p| p.0));
            leb128(&mut self.shape, k.len());
            self.shape.extend_from_slice(k.as_bytes());
            if let Some((_, bytes)) = packed {
                self.others.push(bytes.into());
                continue;
            }
            match v {
                AttrValue::Empty => {}
                AttrValue::Str(s) => self.strs.push(s),
                AttrValue::Int(x) => self.ints.push(*x),
                AttrValue::Double(x) => self.doubles.push(*x),
                AttrValue::Bool(x) => self.bools.push(*x),
                AttrValue::Bytes(x) => self.others.push(x.as_slice().into()),
                AttrValue::Array(_) | AttrValue::Map(_) => {
                    self.others.push(typed_json::to_string(v).into_bytes().into())
                }
            }
        }
        self.shapes.append_value(&self.shape);
        let lens = [self.strs.len(), self.ints.len(), self.doubles.len(), self.bools.len(), self.others.len()];
        for (offsets, len) in self.value_offsets.iter_mut().zip(lens) {
            offsets.push(len as i32);
        }
    }

    /// The shapes, then the value lists in [`VALUE_LISTS`] order. Every
    /// buffer is sized to what it holds: a head chunk keeps them as they are.
    pub(super) fn finish(mut self) -> [ArrayRef; 6] {
        let [o_str, o_int, o_double, o_bool, o_other] = self.value_offsets;
        let (mut ints, mut doubles) = (self.ints, self.doubles);
        ints.shrink_to_fit();
        doubles.shrink_to_fit();
        let mut strs = StringBuilder::with_capacity(self.strs.len(), self.strs.iter().map(|s| s.len()).sum());
        self.strs.iter().for_each(|s| strs.append_value(s));
        let others = self.others.iter().map(|b| b.len()).sum();
        let mut others = BinaryBuilder::with_capacity(self.others.len(), others);
        self.others.iter().for_each(|b| others.append_value(b));
        [
            Arc::new(self.shapes.finish()),
            Arc::new(list(item(DataType::Utf8), o_str, Arc::new(strs.finish()))),
            Arc::new(list(item(DataType::Int64), o_int, Arc::new(Int64Array::from(ints)))),
            Arc::new(list(item(DataType::Float64), o_double, Arc::new(Float64Array::from(doubles)))),
            Arc::new(list(item(DataType::Boolean), o_bool, Arc::new(BooleanArray::from(self.bools)))),
            Arc::new(list(item(DataType::Binary), o_other, Arc::new(others.finish()))),
        ]
    }
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a LEB128 varint at the start of `bytes`: its value and length.
fn read_leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut n = 0usize;
    for (i, b) in bytes.iter().enumerate().take(5) {
        n |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// Calls `each` with the type tag and key of every attribute of a shape.
pub(super) fn parse_shape<'a>(mut shape: &'a [u8], mut each: impl FnMut(u8, &'a str)) -> Result<(), ColumnError> {
    let damaged = || bad(KEYS, "damaged attribute shape");
    while let [t, after @ ..] = shape {
        let (len, skip) = read_leb128(after).ok_or_else(damaged)?;
        let key = after.get(skip..skip + len).ok_or_else(damaged)?;
        each(*t, std::str::from_utf8(key).map_err(|_| damaged())?);
        shape = &after[skip + len..];
    }
    Ok(())
}

/// Every row's entries (offsets), keys and type tags, from the rows' shapes.
fn unshape(shapes: &BinaryArray) -> Result<(Vec<i32>, StringArray, UInt8Array), ColumnError> {
    let mut offsets = Vec::with_capacity(shapes.len() + 1);
    offsets.push(0);
    let (mut keys, mut types) = (StringBuilder::new(), Vec::new());
    for row in 0..shapes.len() {
        parse_shape(shapes.value(row), |t, key| {
            keys.append_value(key);
            types.push(t);
        })?;
        offsets.push(types.len() as i32);
    }
    Ok((offsets, keys.finish(), UInt8Array::from(types)))
}

/// Shapes remembered by [`shape_keys`] at most (a cache: it starts over).
const MAX_SHAPES: usize = 4096;

/// Calls `each` with every key of the span attribute shapes `shapes`,
/// parsing each distinct shape once (`seen` holds those parsed before).
pub(super) fn shape_keys(
    shapes: &dyn Array,
    seen: &mut foldhash::HashSet<Vec<u8>>,
    mut each: impl FnMut(&str),
) -> Result<(), ColumnError> {
    let Some(shapes) = shapes_of(shapes)? else { return Err(bad(KEYS, "not a list of attribute shapes")) };
    for row in 0..shapes.len() {
        let shape = shapes.value(row);
        if !seen.contains(shape) {
            parse_shape(shape, |_, key| each(key))?;
            if seen.len() >= MAX_SHAPES {
                seen.clear();
            }
            seen.insert(shape.to_vec());
        }
    }
    Ok(())
}

/// Collects attribute lists in the struct layout (events and links).
pub(super) struct StructColumns<'a> {
    offsets: Vec<i32>,
    keys: Vec<&'a str>,
    types: Vec<u8>,
    strs: Vec<Option<&'a str>>,
    ints: Vec<Option<i64>>,
    doubles: Vec<Option<f64>>,
    bools: Vec<Option<bool>>,
    bytes: Vec<Option<&'a [u8]>>,
    jsons: Vec<Option<String>>,
}

impl<'a> StructColumns<'a> {
    pub(super) fn new() -> Self {
        Self {
            offsets: vec![0],
            keys: Vec::new(),
            types: Vec::new(),
            strs: Vec::new(),
            ints: Vec::new(),
            doubles: Vec::new(),
            bools: Vec::new(),
            bytes: Vec::new(),
            jsons: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, attrs: impl IntoIterator<Item = &'a (String, AttrValue)>) {
        for (k, v) in attrs {
            self.keys.push(k);
            self.types.push(tag(v));
            self.strs.push(if let AttrValue::Str(s) = v { Some(s) } else { None });
            self.ints.push(if let AttrValue::Int(x) = v { Some(*x) } else { None });
            self.doubles.push(if let AttrValue::Double(x) = v { Some(*x) } else { None });
            self.bools.push(if let AttrValue::Bool(x) = v { Some(*x) } else { None });
            self.bytes.push(if let AttrValue::Bytes(x) = v { Some(x.as_slice()) } else { None });
            self.jsons.push(matches!(v, AttrValue::Array(_) | AttrValue::Map(_)).then(|| typed_json::to_string(v)));
        }
        self.offsets.push(self.keys.len() as i32);
    }

    pub(super) fn finish(self) -> ListArray {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(self.keys)),
            Arc::new(UInt8Array::from(self.types)),
            Arc::new(self.strs.into_iter().collect::<StringArray>()),
            Arc::new(Int64Array::from(self.ints)),
            Arc::new(Float64Array::from(self.doubles)),
            Arc::new(BooleanArray::from(self.bools)),
            Arc::new(BinaryArray::from_iter(self.bytes)),
            Arc::new(StringArray::from(self.jsons)),
        ];
        let values = StructArray::new(struct_fields(), columns, None);
        list(item(DataType::Struct(struct_fields())), self.offsets, Arc::new(values))
    }
}

/// The values of an attribute list, in either layout.
enum Values {
    Struct {
        strs: StringArray,
        ints: Int64Array,
        doubles: Float64Array,
        bools: BooleanArray,
        bytes: BinaryArray,
        jsons: StringArray,
    },
    /// Each value list's row offsets and values.
    Split {
        offsets: [Vec<i32>; 5],
        strs: StringArray,
        ints: Int64Array,
        doubles: Float64Array,
        bools: BooleanArray,
        others: BinaryArray,
    },
}

/// Reads an attribute list back, row by row.
pub(super) struct AttrReader {
    offsets: Vec<i32>,
    keys: StringArray,
    types: UInt8Array,
    values: Values,
    /// A part's dedicated columns (format 6), read in place.
    dedicated: Option<DedicatedValues>,
}

/// The values of a part's dedicated columns, and for each entry the column
/// that holds its value (none: its list).
struct DedicatedValues {
    strs: Vec<StringArray>,
    ints: Vec<Int64Array>,
    columns: Vec<Option<u16>>,
}

/// Where an entry's value is: at this place of its list (or the entry
/// itself in the struct layout), or in a dedicated column at the row.
#[derive(Clone, Copy)]
enum At {
    Place(usize),
    Column(usize),
}

fn list_parts<'a>(array: &'a dyn Array, name: &str) -> Result<(&'a ListArray, &'a StructArray), ColumnError> {
    let list = typed::<ListArray>(array, name)?;
    Ok((list, typed::<StructArray>(list.values().as_ref(), name)?))
}

impl AttrReader {
    /// A list in the struct layout.
    pub(super) fn of_structs(array: &dyn Array, name: &str) -> Result<Self, ColumnError> {
        let (list, entries) = list_parts(array, name)?;
        let field = |i: usize| entries.column(i).as_ref();
        if entries.num_columns() != 8 {
            return Err(bad(name, "not a key/value list"));
        }
        Ok(Self {
            offsets: list.value_offsets().to_vec(),
            keys: strings(field(0), name)?,
            types: typed::<UInt8Array>(field(1), name)?.clone(),
            values: Values::Struct {
                strs: strings(field(2), name)?,
                ints: typed::<Int64Array>(field(3), name)?.clone(),
                doubles: typed::<Float64Array>(field(4), name)?.clone(),
                bools: typed::<BooleanArray>(field(5), name)?.clone(),
                bytes: typed::<BinaryArray>(field(6), name)?.clone(),
                jsons: strings(field(7), name)?,
            },
            dedicated: None,
        })
    }

    /// The span attributes of `batch`, in whichever layout it holds them.
    pub(super) fn of_spans(batch: &RecordBatch) -> Result<Self, ColumnError> {
        let keys = batch.column_by_name(KEYS).ok_or_else(|| bad(KEYS, "missing"))?;
        let Some(shapes) = shapes_of(keys.as_ref())? else { return Self::of_structs(keys.as_ref(), KEYS) };
        let (offsets, keys, types) = unshape(&shapes)?;
        let value_list = |i: usize| -> Result<(Vec<i32>, &ArrayRef), ColumnError> {
            let name = VALUE_LISTS[i];
            let column = batch.column_by_name(name).ok_or_else(|| bad(name, "missing"))?;
            let list = typed::<ListArray>(column.as_ref(), name)?;
            Ok((list.value_offsets().to_vec(), list.values()))
        };
        let (o_str, strs) = value_list(0)?;
        let (o_int, ints) = value_list(1)?;
        let (o_double, doubles) = value_list(2)?;
        let (o_bool, bools) = value_list(3)?;
        let (o_other, others) = value_list(4)?;
        let dedicated = match dedicated::has_columns(batch) {
            true => {
                let (strs, ints, columns) = dedicated::columns_of(batch, &shapes, types.len())?;
                Some(DedicatedValues { strs, ints, columns })
            }
            false => None,
        };
        Ok(Self {
            offsets,
            keys,
            types,
            dedicated,
            values: Values::Split {
                offsets: [o_str, o_int, o_double, o_bool, o_other],
                strs: strings(strs.as_ref(), VALUE_LISTS[0])?,
                ints: typed::<Int64Array>(ints.as_ref(), VALUE_LISTS[1])?.clone(),
                doubles: typed::<Float64Array>(doubles.as_ref(), VALUE_LISTS[2])?.clone(),
                bools: typed::<BooleanArray>(bools.as_ref(), VALUE_LISTS[3])?.clone(),
                others: typed::<BinaryArray>(others.as_ref(), VALUE_LISTS[4])?.clone(),
            },
        })
    }

    fn entries(&self, row: usize) -> std::ops::Range<usize> {
        self.offsets[row] as usize..self.offsets[row + 1] as usize
    }

    /// The attributes of row `row`, in their order.
    pub(super) fn row(&self, row: usize) -> Attributes {
        let entries = self.entries(row);
        let mut out = Vec::with_capacity(entries.len());
        let mut next = [0usize; 5];
        for i in entries {
            let at = self.at(row, i, &mut next);
            out.push((self.keys.value(i).to_owned(), self.value(row, i, at)));
        }
        Attributes(out)
    }

    /// Where the value of entry `i` of row `row` is: the entry itself in
    /// the struct layout, else a dedicated column or its place in its
    /// type's list (`next` counts the row's values of each type seen so far
    /// in the lists, in entry order).
    fn at(&self, row: usize, i: usize, next: &mut [usize; 5]) -> At {
        if let Some(c) = self.dedicated.as_ref().and_then(|d| d.columns.get(i).copied().flatten()) {
            return At::Column(usize::from(c));
        }
        match (&self.values, list_of(self.types.value(i))) {
            (Values::Split { offsets, .. }, Some(l)) => {
                let at = offsets[l][row] as usize + next[l];
                next[l] += 1;
                At::Place(at)
            }
            _ => At::Place(i),
        }
    }

    /// Whether the first value of `key` in row `row` reads as `text`
    /// ([`AttrValue::to_text`]); none when the row has no such key. Strings
    /// are compared in place, without a copy.
    pub(super) fn text_is(&self, row: usize, key: &str, text: &str) -> Option<bool> {
        let mut next = [0usize; 5];
        for i in self.entries(row) {
            let at = self.at(row, i, &mut next);
            if self.keys.value(i) == key {
                return Some(match (&self.values, self.types.value(i), at) {
                    (Values::Struct { strs, .. }, T_STR, At::Place(at)) => strs.value(at) == text,
                    (Values::Split { strs, .. }, T_STR, At::Place(at)) if at < strs.len() => strs.value(at) == text,
                    (_, T_STR, At::Column(c)) => self.column_str(row, c) == Some(text),
                    _ => self.value(row, i, at).to_text() == text,
                });
            }
        }
        None
    }

    /// The string in dedicated column `c` at `row` (none: not a string
    /// column, or no value there: a damaged part).
    fn column_str(&self, row: usize, c: usize) -> Option<&str> {
        let column = self.dedicated.as_ref()?.strs.get(c)?;
        column.is_valid(row).then(|| column.value(row))
    }

    /// The value of entry `i` of row `row`, found at `at`.
    fn value(&self, row: usize, i: usize, at: At) -> AttrValue {
        let t = self.types.value(i);
        let at = match at {
            At::Place(at) => at,
            At::Column(c) => {
                let Some(d) = &self.dedicated else { return AttrValue::Empty };
                return match (t, c.checked_sub(d.strs.len())) {
                    (T_STR, None) => self.column_str(row, c).map_or(AttrValue::Empty, |s| AttrValue::Str(s.to_owned())),
                    (T_INT, Some(c)) => match d.ints.get(c) {
                        Some(column) if column.is_valid(row) => AttrValue::Int(column.value(row)),
                        _ => AttrValue::Empty,
                    },
                    _ => AttrValue::Empty,
                };
            }
        };
        let json = |text: &str| serde_json::from_str(text).map_or(AttrValue::Empty, |v| typed_json::value(&v));
        let in_range = |len: usize| at < len;
        match &self.values {
            Values::Struct { strs, ints, doubles, bools, bytes, jsons } => match t {
                T_STR => AttrValue::Str(strs.value(at).to_owned()),
                T_BOOL => AttrValue::Bool(bools.value(at)),
                T_INT => AttrValue::Int(ints.value(at)),
                T_DOUBLE => AttrValue::Double(doubles.value(at)),
                T_BYTES => AttrValue::Bytes(bytes.value(at).to_vec()),
                T_ARRAY | T_MAP => json(jsons.value(at)),
                _ => AttrValue::Empty,
            },
            // A value list shorter than its keys say is a damaged part: an
            // empty value rather than a panic.
            Values::Split { strs, ints, doubles, bools, others, .. } => match t {
                T_STR if in_range(strs.len()) => AttrValue::Str(strs.value(at).to_owned()),
                T_BOOL if in_range(bools.len()) => AttrValue::Bool(bools.value(at)),
                T_INT if in_range(ints.len()) => AttrValue::Int(ints.value(at)),
                T_DOUBLE if in_range(doubles.len()) => AttrValue::Double(doubles.value(at)),
                T_BYTES if in_range(others.len()) => AttrValue::Bytes(others.value(at).to_vec()),
                T_ARRAY | T_MAP if in_range(others.len()) => {
                    std::str::from_utf8(others.value(at)).map_or(AttrValue::Empty, json)
                }
                T_HEX if in_range(others.len()) => AttrValue::Str(hex::encode(others.value(at))),
                T_UUID if in_range(others.len()) => unpack_uuid(others.value(at)),
                _ => AttrValue::Empty,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AttrValue as V;

    fn rows() -> Vec<Attributes> {
        let s = |x: &str| V::Str(x.into());
        vec![
            Attributes(vec![
                ("a".into(), V::Int(-7)),
                ("b".into(), s("x")),
                ("c".into(), V::Double(0.5)),
                ("d".into(), V::Bool(true)),
                ("e".into(), V::Bytes(vec![0, 255])),
                ("f".into(), V::Array(vec![V::Int(1), s("y")])),
                ("g".into(), V::Empty),
                ("h".into(), s("z")),
                ("i".into(), V::Int(i64::MAX)),
                ("uuid".into(), s("0f8fad5b-d9cb-469f-a165-70867728950e")),
                ("hex".into(), s("4bf92f3577b34da6a3ce929d0e0e4736")),
                ("upper".into(), s("0F8FAD5B-D9CB-469F-A165-70867728950E")),
                ("odd".into(), s("4bf92f3577b34da6a")),
                ("dashes".into(), s("0f8fad5b-d9cb-469f-a165-70867728950g")),
                ("short".into(), s("abcdef")),
                ("k".repeat(300), s("a key longer than a one-byte length")),
            ]),
            Attributes(Vec::new()),
            Attributes(vec![
                ("m".into(), V::Map(Attributes(vec![("k".into(), V::Double(1.25))]))),
                ("b".into(), s("second")),
                ("b".into(), s("repeated key")),
            ]),
        ]
    }

    /// Every type, in mixed order, empty rows and repeated keys come back
    /// as they were written, in the split layout and in the struct layout.
    #[test]
    fn both_layouts_read_back_every_type_in_order() {
        let types = |r: &AttrReader| (0..r.types.len()).map(|i| r.types.value(i)).collect::<Vec<_>>();
        let rows = rows();
        let mut split = SplitColumns::with_capacity(rows.len());
        let mut structs = StructColumns::new();
        for r in &rows {
            split.push(&r.0);
            structs.push(&r.0);
        }
        let [keys, values @ ..] = split.finish();
        let mut columns = vec![(KEYS, keys)];
        columns.extend(VALUE_LISTS.into_iter().zip(values));
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let split = AttrReader::of_spans(&batch).expect("split layout");
        let structs = AttrReader::of_structs(&structs.finish(), "attributes").expect("struct layout");
        let packed = types(&split).iter().filter(|t| [T_HEX, T_UUID].contains(t)).count();
        assert_eq!(packed, 2, "a lowercase UUID and a long even run of lowercase hex are kept as bytes");
        assert!(!types(&structs).contains(&T_UUID));
        for reader in [&split, &structs] {
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(&reader.row(i), row, "row {i}");
            }
            assert_eq!(reader.text_is(0, "h", "z"), Some(true));
            assert_eq!(reader.text_is(0, "i", &i64::MAX.to_string()), Some(true));
            assert_eq!(reader.text_is(0, "c", "0.5"), Some(true));
            assert_eq!(reader.text_is(2, "b", "second"), Some(true), "the first value of a repeated key");
            assert_eq!(reader.text_is(2, "b", "repeated key"), Some(false));
            assert_eq!(reader.text_is(1, "b", "x"), None);
            assert_eq!(reader.text_is(0, "uuid", "0f8fad5b-d9cb-469f-a165-70867728950e"), Some(true));
            assert_eq!(reader.text_is(0, "hex", "4bf92f3577b34da6a3ce929d0e0e4736"), Some(true));
        }
    }

    /// A shape cut short or holding a key that is not UTF-8 is an error,
    /// never a panic.
    #[test]
    fn a_damaged_shape_is_an_error() {
        for shape in [&[T_STR, 5, b'a'][..], &[T_STR, 0x80][..], &[T_STR, 1, 0xff][..]] {
            let values = VALUE_LISTS.iter().zip(VALUE_TYPES).map(|(name, t)| {
                let empty = arrow::array::new_empty_array(&t);
                (*name, Arc::new(list(item(t), vec![0, 0], empty)) as ArrayRef)
            });
            let mut columns = vec![(KEYS, Arc::new(BinaryArray::from_iter_values([shape])) as ArrayRef)];
            columns.extend(values);
            let batch = RecordBatch::try_from_iter(columns).expect("batch");
            assert!(AttrReader::of_spans(&batch).is_err(), "{shape:?}");
        }
    }

    /// A value list shorter than its keys say (a damaged part) reads as
    /// empty values, never a panic.
    #[test]
    fn a_short_value_list_reads_as_empty_values() {
        let rows = rows();
        let mut split = SplitColumns::with_capacity(rows.len());
        for r in &rows {
            split.push(&r.0);
        }
        let [keys, _, ints, doubles, bools, others] = split.finish();
        let no_strings: ArrayRef = Arc::new(ListArray::new(
            item(DataType::Utf8),
            OffsetBuffer::new(vec![0, 0, 0, 0].into()),
            Arc::new(StringArray::from(Vec::<&str>::new())),
            None,
        ));
        let batch = RecordBatch::try_from_iter(vec![
            (KEYS, keys),
            (VALUE_LISTS[0], no_strings),
            (VALUE_LISTS[1], ints),
            (VALUE_LISTS[2], doubles),
            (VALUE_LISTS[3], bools),
            (VALUE_LISTS[4], others),
        ])
        .expect("batch");
        let reader = AttrReader::of_spans(&batch).expect("reader");
        assert_eq!(reader.row(0).get("b"), Some(&V::Empty));
        assert_eq!(reader.row(0).get("a"), Some(&V::Int(-7)));
        assert_eq!(reader.text_is(0, "b", "x"), Some(false));
    }
}
