//! Dedicated attribute columns (part format version 6).
//!
//! The split layout ([`super::kv`]) keeps every string value of a span in
//! one list and every integer in another, so the values of different keys
//! share one dictionary and interleave: a constant port sits between random
//! body sizes, a service's host name between user ids. A part therefore
//! gives its most frequent string and integer keys a column each
//! (`attr_str:<key>`, `attr_int:<key>`, after the schema's own columns),
//! chosen when it is written: from the rows a flush writes, from the
//! inputs' columns when parts are merged. A span's shape still lists every
//! key in order; the first value of a dedicated key with that key's type
//! is in the key's column, every other value in its list as before.
//!
//! Parts are written with [`split`]. [`super::kv::AttrReader`] reads the
//! columns in place ([`columns_of`] says which column holds each
//! attribute's value), and a merge reads its inputs through [`join`],
//! which gives back the layout of version 5, the one the head holds.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryArray, DictionaryArray, Int64Array, Int64Builder, ListArray, RecordBatch,
    StringArray, StringBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, UInt32Type};
use serde::{Deserialize, Serialize};

use super::columns::{ColumnError, bad, strings, typed};
use super::kv::{self, KEYS, T_INT, T_STR, VALUE_LISTS};

/// Column name prefixes of dedicated string and integer attributes.
pub(super) const STR_PREFIX: &str = "attr_str:";
pub(super) const INT_PREFIX: &str = "attr_int:";
/// Dedicated columns a part holds at most, by type.
const MAX_STR: usize = 12;
const MAX_INT: usize = 6;
/// A key gets a column when at least one span in this many holds it.
const MIN_SHARE: u64 = 8;

/// The keys a part keeps in columns of their own, in column order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dedicated {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strs: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ints: Vec<String>,
}

impl Dedicated {
    pub fn is_empty(&self) -> bool {
        self.strs.is_empty() && self.ints.is_empty()
    }

    /// The names of the string columns, then of the integer columns.
    pub(super) fn names(&self) -> (impl Iterator<Item = String> + '_, impl Iterator<Item = String> + '_) {
        (self.strs.iter().map(|k| format!("{STR_PREFIX}{k}")), self.ints.iter().map(|k| format!("{INT_PREFIX}{k}")))
    }

    /// The columns, appended to the part's schema.
    pub(super) fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        let (strs, ints) = self.names();
        strs.map(|n| Field::new(n, DataType::Utf8, true)).chain(ints.map(|n| Field::new(n, DataType::Int64, true)))
    }

    /// The keys of the dedicated columns among `schema`'s fields.
    pub(super) fn of_schema(schema: &Schema) -> Self {
        let mut out = Self::default();
        for f in schema.fields() {
            if let Some(key) = f.name().strip_prefix(STR_PREFIX) {
                out.strs.push(key.to_owned());
            } else if let Some(key) = f.name().strip_prefix(INT_PREFIX) {
                out.ints.push(key.to_owned());
            }
        }
        out
    }

    /// The keys for a part merged from parts that dedicate `inputs` (each
    /// with its span count): the keys the most spans had in a column.
    pub fn merged<'a>(inputs: impl IntoIterator<Item = (&'a Dedicated, u64)>) -> Self {
        let mut strs: foldhash::HashMap<&str, u64> = Default::default();
        let mut ints: foldhash::HashMap<&str, u64> = Default::default();
        for (d, spans) in inputs {
            d.strs.iter().for_each(|k| *strs.entry(k).or_default() += spans);
            d.ints.iter().for_each(|k| *ints.entry(k).or_default() += spans);
        }
        Self { strs: most(strs, MAX_STR), ints: most(ints, MAX_INT) }
    }

    /// Where each attribute of a shape goes.
    fn plan(&self, shape: &[u8]) -> Result<Vec<Dest>, ColumnError> {
        let mut out = Vec::new();
        let mut taken = vec![false; self.strs.len() + self.ints.len()];
        kv::parse_shape(shape, |tag, key| {
            let slot = match tag {
                T_STR => self.strs.iter().position(|k| k == key),
                T_INT => self.ints.iter().position(|k| k == key).map(|i| self.strs.len() + i),
                _ => None,
            };
            out.push(match (slot, kv::list_of(tag)) {
                (Some(s), _) if !taken[s] => {
                    taken[s] = true;
                    Dest::Column(s)
                }
                (_, Some(l)) => Dest::List(l),
                (_, None) => Dest::Nowhere,
            });
        })?;
        Ok(out)
    }
}

/// The `max` keys with the highest counts (ties by key, for a stable order).
fn most(counts: foldhash::HashMap<&str, u64>, max: usize) -> Vec<String> {
    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    ranked.into_iter().take(max).map(|(k, _)| k.to_owned()).collect()
}

/// Where one attribute's value is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dest {
    /// In the value list of this index ([`VALUE_LISTS`]).
    List(usize),
    /// In the dedicated column of this index (strings first, then integers).
    Column(usize),
    /// Nowhere (an empty value).
    Nowhere,
}

/// Counts, over the rows of a part to be written, how many spans hold each
/// string and integer key, to choose the part's [`Dedicated`] keys.
#[derive(Default)]
pub(super) struct KeyCounts {
    rows: u64,
    /// Key → spans that hold it, for string and for integer values.
    strs: foldhash::HashMap<String, u64>,
    ints: foldhash::HashMap<String, u64>,
}

impl KeyCounts {
    /// Adds rows given by their shapes (a chunk's dictionary or plain
    /// binary; other layouts count no keys): each distinct shape is parsed once.
    pub(super) fn add(&mut self, shapes: &dyn Array) -> Result<(), ColumnError> {
        let mut by_shape: foldhash::HashMap<&[u8], u64> = Default::default();
        match shapes.as_any().downcast_ref::<DictionaryArray<UInt32Type>>() {
            Some(dict) => {
                let values = typed::<BinaryArray>(dict.values().as_ref(), KEYS)?;
                let mut uses = vec![0u64; values.len()];
                for k in dict.keys().iter().flatten() {
                    if let Some(n) = uses.get_mut(k as usize) {
                        *n += 1;
                    }
                }
                for (i, n) in uses.into_iter().enumerate().filter(|(_, n)| *n > 0) {
                    *by_shape.entry(values.value(i)).or_default() += n;
                }
            }
            None => {
                // Rows of a layout without shapes have no values to split.
                let Some(plain) = shapes.as_any().downcast_ref::<BinaryArray>() else { return Ok(()) };
                for row in 0..plain.len() {
                    *by_shape.entry(plain.value(row)).or_default() += 1;
                }
            }
        }
        self.rows += shapes.len() as u64;
        let mut seen: Vec<(u8, &str)> = Vec::new();
        for (shape, n) in by_shape {
            seen.clear();
            kv::parse_shape(shape, |tag, key| {
                if (tag == T_STR || tag == T_INT) && !seen.contains(&(tag, key)) {
                    seen.push((tag, key));
                }
            })?;
            for &(tag, key) in &seen {
                let counts = if tag == T_STR { &mut self.strs } else { &mut self.ints };
                match counts.get_mut(key) {
                    Some(c) => *c += n,
                    None => {
                        counts.insert(key.to_owned(), n);
                    }
                }
            }
        }
        Ok(())
    }

    /// The keys held by at least one span in [`MIN_SHARE`], the most
    /// frequent first.
    pub(super) fn choose(&self) -> Dedicated {
        Dedicated { strs: most(self.frequent(&self.strs), MAX_STR), ints: most(self.frequent(&self.ints), MAX_INT) }
    }

    fn frequent<'a>(&self, counts: &'a foldhash::HashMap<String, u64>) -> foldhash::HashMap<&'a str, u64> {
        counts.iter().filter(|(_, n)| **n * MIN_SHARE >= self.rows).map(|(k, n)| (k.as_str(), *n)).collect()
    }
}

/// Plans of a batch's distinct shapes, each computed once.
struct Plans<'a> {
    dedicated: &'a Dedicated,
    index: foldhash::HashMap<&'a [u8], usize>,
    plans: Vec<Vec<Dest>>,
}

impl<'a> Plans<'a> {
    fn new(dedicated: &'a Dedicated) -> Self {
        Self { dedicated, index: Default::default(), plans: Vec::new() }
    }

    fn of(&mut self, shape: &'a [u8]) -> Result<&[Dest], ColumnError> {
        let i = match self.index.get(shape) {
            Some(i) => *i,
            None => {
                self.plans.push(self.dedicated.plan(shape)?);
                self.index.insert(shape, self.plans.len() - 1);
                self.plans.len() - 1
            }
        };
        Ok(&self.plans[i])
    }
}

fn list_column(batch: &RecordBatch, i: usize) -> Result<&ListArray, ColumnError> {
    let name = VALUE_LISTS[i];
    let column = batch.column_by_name(name).ok_or_else(|| bad(name, "missing"))?;
    typed::<ListArray>(column.as_ref(), name)
}

fn item_list(t: DataType, offsets: Vec<i32>, values: ArrayRef) -> ArrayRef {
    let field = Arc::new(Field::new("item", t, false));
    Arc::new(ListArray::new(field, OffsetBuffer::new(offsets.into()), values, None))
}

fn damaged() -> ColumnError {
    bad(KEYS, "attribute values do not match the shapes")
}

/// The shapes and the string and integer value lists of a batch, and those
/// two lists rebuilt row by row: [`split`] takes values out of them,
/// [`join`] puts values back in.
struct Lists<'a> {
    shapes: &'a BinaryArray,
    strs: StringArray,
    ints: &'a Int64Array,
    str_at: &'a [i32],
    int_at: &'a [i32],
    /// Where the current row's next string and integer are in the lists read.
    next: [usize; 2],
    out_strs: StringBuilder,
    out_ints: Vec<i64>,
    out_offsets: [Vec<i32>; 2],
}

impl<'a> Lists<'a> {
    /// The lists of `batch`, rebuilt with room for `more` strings of
    /// `more_bytes` and `more` integers beyond those read.
    fn of(batch: &'a RecordBatch, more: usize, more_bytes: usize) -> Result<Self, ColumnError> {
        let column = batch.column_by_name(KEYS).ok_or_else(|| bad(KEYS, "missing"))?;
        let (str_list, int_list) = (list_column(batch, 0)?, list_column(batch, 1)?);
        let strs = strings(str_list.values().as_ref(), VALUE_LISTS[0])?;
        let ints = typed::<Int64Array>(int_list.values().as_ref(), VALUE_LISTS[1])?;
        let offsets = || {
            let mut v = Vec::with_capacity(batch.num_rows() + 1);
            v.push(0);
            v
        };
        Ok(Self {
            shapes: typed::<BinaryArray>(column.as_ref(), KEYS)?,
            out_strs: StringBuilder::with_capacity(strs.len() + more, strs.value_data().len() + more_bytes),
            out_ints: Vec::with_capacity(ints.len() + more),
            strs,
            ints,
            str_at: str_list.value_offsets(),
            int_at: int_list.value_offsets(),
            next: [0, 0],
            out_offsets: [offsets(), offsets()],
        })
    }

    fn start_row(&mut self, row: usize) {
        self.next = [self.str_at[row] as usize, self.int_at[row] as usize];
    }

    /// The place of the row's next value of list `l` (0: strings, 1:
    /// integers), which is then passed.
    fn take(&mut self, l: usize) -> Result<usize, ColumnError> {
        let at = self.next[l];
        if at >= [self.strs.len(), self.ints.len()][l] {
            return Err(damaged());
        }
        self.next[l] += 1;
        Ok(at)
    }

    /// Copies the row's next value of list `l` into the rebuilt list.
    fn keep(&mut self, l: usize) -> Result<(), ColumnError> {
        let at = self.take(l)?;
        match l {
            0 => self.out_strs.append_value(self.strs.value(at)),
            _ => self.out_ints.push(self.ints.value(at)),
        }
        Ok(())
    }

    /// Ends row `row`: every value of its lists was passed, exactly.
    fn end_row(&mut self, row: usize) -> Result<(), ColumnError> {
        if self.next != [self.str_at[row + 1] as usize, self.int_at[row + 1] as usize] {
            return Err(damaged());
        }
        self.out_offsets[0].push(self.out_strs.len() as i32);
        self.out_offsets[1].push(self.out_ints.len() as i32);
        Ok(())
    }

    /// `batch`'s columns with the two lists replaced by the rebuilt ones,
    /// the dedicated columns left out.
    fn finish(mut self, batch: &RecordBatch) -> (Vec<Field>, Vec<ArrayRef>) {
        let [str_offsets, int_offsets] = self.out_offsets;
        let strs = item_list(DataType::Utf8, str_offsets, Arc::new(self.out_strs.finish()));
        let ints = item_list(DataType::Int64, int_offsets, Arc::new(Int64Array::from(self.out_ints)));
        let schema = batch.schema();
        let kept = schema.fields().iter().zip(batch.columns()).filter(|(f, _)| !is_column(f.name()));
        kept.map(|(field, column)| {
            let column = match field.name().as_str() {
                n if n == VALUE_LISTS[0] => strs.clone(),
                n if n == VALUE_LISTS[1] => ints.clone(),
                _ => column.clone(),
            };
            (field.as_ref().clone(), column)
        })
        .unzip()
    }
}

/// Rows in the layout of version 5 (shapes as plain binary) with the
/// values of `dedicated`'s keys moved into their columns, appended after
/// the others.
pub(super) fn split(batch: &RecordBatch, dedicated: &Dedicated) -> Result<RecordBatch, ColumnError> {
    if dedicated.is_empty() {
        return Ok(batch.clone());
    }
    let mut lists = Lists::of(batch, 0, 0)?;
    let rows = batch.num_rows();
    let mut str_columns: Vec<StringBuilder> =
        dedicated.strs.iter().map(|_| StringBuilder::with_capacity(rows, rows * 8)).collect();
    let mut int_columns: Vec<Int64Builder> = dedicated.ints.iter().map(|_| Int64Builder::with_capacity(rows)).collect();
    let mut plans = Plans::new(dedicated);
    // A row's values for each column: their places in the lists read.
    let (mut strs, mut ints) = (vec![None; str_columns.len()], vec![None; int_columns.len()]);
    for row in 0..rows {
        lists.start_row(row);
        strs.iter_mut().chain(ints.iter_mut()).for_each(|v| *v = None);
        for dest in plans.of(lists.shapes.value(row))? {
            match *dest {
                Dest::List(l @ (0 | 1)) => lists.keep(l)?,
                Dest::Column(c) if c < str_columns.len() => strs[c] = Some(lists.take(0)?),
                Dest::Column(c) => ints[c - str_columns.len()] = Some(lists.take(1)?),
                Dest::List(_) | Dest::Nowhere => {}
            }
        }
        lists.end_row(row)?;
        for (column, at) in str_columns.iter_mut().zip(&strs) {
            column.append_option(at.map(|at| lists.strs.value(at)));
        }
        for (column, at) in int_columns.iter_mut().zip(&ints) {
            column.append_option(at.map(|at| lists.ints.value(at)));
        }
    }
    let (mut fields, mut columns) = lists.finish(batch);
    fields.extend(dedicated.fields());
    columns.extend(str_columns.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(int_columns.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| bad(KEYS, e.to_string()))
}

/// The dedicated columns of `batch` (strings, then integers) and, for every
/// attribute of its rows' `shapes` in order (`entries` in all), the column
/// that holds its value (none: its list), for reading in place.
pub(super) type ColumnsOf = (Vec<StringArray>, Vec<Int64Array>, Vec<Option<u16>>);

pub(super) fn columns_of(batch: &RecordBatch, shapes: &BinaryArray, entries: usize) -> Result<ColumnsOf, ColumnError> {
    let dedicated = Dedicated::of_schema(&batch.schema());
    let (strs, ints) = dedicated_columns(batch, &dedicated)?;
    let mut columns = Vec::with_capacity(entries);
    let mut plans = Plans::new(&dedicated);
    for row in 0..shapes.len() {
        for dest in plans.of(shapes.value(row))? {
            columns.push(match *dest {
                Dest::Column(c) => Some(u16::try_from(c).map_err(|_| damaged())?),
                _ => None,
            });
        }
    }
    Ok((strs, ints, columns))
}

/// The dedicated columns of `dedicated`'s keys in `batch`.
fn dedicated_columns(
    batch: &RecordBatch,
    dedicated: &Dedicated,
) -> Result<(Vec<StringArray>, Vec<Int64Array>), ColumnError> {
    let column =
        |name: String| batch.column_by_name(&name).cloned().ok_or_else(|| bad(KEYS, format!("{name} missing")));
    let (str_names, int_names) = dedicated.names();
    let strs = str_names.map(|n| column(n).and_then(|c| strings(c.as_ref(), STR_PREFIX))).collect::<Result<_, _>>()?;
    let ints = int_names
        .map(|n| column(n).and_then(|c| Ok(typed::<Int64Array>(c.as_ref(), INT_PREFIX)?.clone())))
        .collect::<Result<_, _>>()?;
    Ok((strs, ints))
}

/// Whether a column of that name is a dedicated one.
pub(super) fn is_column(name: &str) -> bool {
    name.starts_with(STR_PREFIX) || name.starts_with(INT_PREFIX)
}

/// Whether `batch` has dedicated columns.
pub(super) fn has_columns(batch: &RecordBatch) -> bool {
    batch.schema().fields().iter().any(|f| is_column(f.name()))
}

/// `batch` with its dedicated columns' values back in the value lists and
/// the columns removed: the layout of version 5. A batch read with only
/// some columns must hold the shapes, the string and integer lists and the
/// dedicated columns together, or none of them.
pub(super) fn join(batch: &RecordBatch) -> Result<RecordBatch, ColumnError> {
    let dedicated = Dedicated::of_schema(&batch.schema());
    if dedicated.is_empty() {
        return Ok(batch.clone());
    }
    let (str_columns, int_columns) = dedicated_columns(batch, &dedicated)?;
    let rows = batch.num_rows();
    let more_bytes = str_columns.iter().map(|c| c.value_data().len()).sum();
    let mut lists = Lists::of(batch, rows, more_bytes)?;
    let mut plans = Plans::new(&dedicated);
    for row in 0..rows {
        lists.start_row(row);
        for dest in plans.of(lists.shapes.value(row))? {
            match *dest {
                Dest::List(l @ (0 | 1)) => lists.keep(l)?,
                Dest::Column(c) if c < str_columns.len() => match &str_columns[c] {
                    column if column.is_valid(row) => lists.out_strs.append_value(column.value(row)),
                    _ => return Err(damaged()),
                },
                Dest::Column(c) => match &int_columns[c - str_columns.len()] {
                    column if column.is_valid(row) => lists.out_ints.push(column.value(row)),
                    _ => return Err(damaged()),
                },
                Dest::List(_) | Dest::Nowhere => {}
            }
        }
        lists.end_row(row)?;
    }
    let (fields, columns) = lists.finish(batch);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| bad(KEYS, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttrValue as V, Attributes};
    use crate::spans::kv::{AttrReader, SplitColumns};

    fn rows() -> Vec<Attributes> {
        let s = |x: &str| V::Str(x.into());
        let mut rows: Vec<Attributes> = (0..20)
            .map(|i| {
                Attributes(vec![
                    ("user".into(), s(&format!("u{i}"))),
                    ("port".into(), V::Int(8080)),
                    ("size".into(), V::Int(i)),
                    ("ratio".into(), V::Double(0.5)),
                    ("scheme".into(), s("https")),
                ])
            })
            .collect();
        rows.push(Attributes(Vec::new()));
        rows.push(Attributes(vec![
            // The key with another type, then twice: the first string value
            // goes to the column, the second stays in the list.
            ("user".into(), V::Int(7)),
            ("user".into(), s("first")),
            ("user".into(), s("second")),
            ("rare".into(), s("once")),
            ("port".into(), V::Empty),
        ]));
        rows
    }

    fn batch(rows: &[Attributes]) -> RecordBatch {
        let mut split = SplitColumns::with_capacity(rows.len());
        rows.iter().for_each(|r| split.push(&r.0));
        let [keys, values @ ..] = split.finish();
        let keys = arrow::compute::cast(&keys, &DataType::Binary).expect("plain shapes");
        let mut columns = vec![(KEYS, keys)];
        columns.extend(VALUE_LISTS.into_iter().zip(values));
        RecordBatch::try_from_iter(columns).expect("batch")
    }

    /// Keys held by one span in eight or more get a column, the most
    /// frequent first; from a chunk's dictionary of shapes as from plain ones.
    #[test]
    fn frequent_keys_are_chosen() {
        let rows = rows();
        let mut split = SplitColumns::with_capacity(rows.len());
        rows.iter().for_each(|r| split.push(&r.0));
        let [dict, ..] = split.finish();
        for shapes in [dict.clone(), arrow::compute::cast(&dict, &DataType::Binary).expect("plain")] {
            let mut counts = KeyCounts::default();
            counts.add(shapes.as_ref()).expect("counted");
            let chosen = counts.choose();
            assert_eq!(chosen.strs, ["user", "scheme"], "rare is in one span of 22");
            assert_eq!(chosen.ints, ["port", "size"]);
        }
        let a = Dedicated { strs: vec!["a".into(), "b".into()], ints: vec!["n".into()] };
        let b = Dedicated { strs: vec!["b".into(), "c".into()], ints: Vec::new() };
        let merged = Dedicated::merged([(&a, 10), (&b, 30)]);
        assert_eq!(merged, Dedicated { strs: vec!["b".into(), "c".into(), "a".into()], ints: vec!["n".into()] });
    }

    /// Values move to their columns and come back in their places, repeated
    /// keys and keys of another type included.
    #[test]
    fn split_then_join_gives_the_rows_back() {
        let rows = rows();
        let batch = batch(&rows);
        let dedicated = Dedicated { strs: vec!["user".into(), "scheme".into()], ints: vec!["port".into()] };
        let split = split(&batch, &dedicated).expect("split");
        assert_eq!(split.num_columns(), batch.num_columns() + 3);
        let users = strings(split.column_by_name("attr_str:user").expect("column").as_ref(), "user").expect("strings");
        assert_eq!(users.value(3), "u3");
        assert!(users.is_null(20), "the empty row");
        assert_eq!(users.value(21), "first");
        let kept = split.column_by_name(VALUE_LISTS[0]).expect("list");
        let kept = kept.as_any().downcast_ref::<ListArray>().expect("list");
        assert_eq!(kept.value_length(0), 0, "both strings of a plain row are in columns");
        assert_eq!(kept.value_length(21), 2, "the second user and rare stay in the list");
        assert_eq!(Dedicated::of_schema(&split.schema()), dedicated);
        let joined = join(&split).expect("join");
        assert_eq!(joined, batch);
        // Readers read the columns in place.
        let reader = AttrReader::of_spans(&split).expect("reader of a split batch");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(&reader.row(i), row, "row {i}");
        }
        assert_eq!(reader.text_is(3, "user", "u3"), Some(true), "from the column");
        assert_eq!(reader.text_is(3, "port", "8080"), Some(true), "from the integer column");
        assert_eq!(reader.text_is(21, "user", "7"), Some(true), "the first value of the key is the integer");
        assert_eq!(reader.text_is(21, "rare", "once"), Some(true), "from the list");
        assert_eq!(reader.text_is(20, "user", "u3"), None);
        assert_eq!(split_nothing(&batch), batch);
    }

    fn split_nothing(batch: &RecordBatch) -> RecordBatch {
        split(batch, &Dedicated::default()).expect("nothing to split")
    }

    /// A dedicated column without the value its shape says it holds is an
    /// error, never a panic.
    #[test]
    fn a_missing_value_is_an_error() {
        let batch = batch(&rows());
        let dedicated = Dedicated { strs: vec!["user".into()], ints: Vec::new() };
        let split = split(&batch, &dedicated).expect("split");
        let (i, _) = split.schema().column_with_name("attr_str:user").map(|(i, f)| (i, f.clone())).expect("column");
        let mut columns = split.columns().to_vec();
        columns[i] = Arc::new(StringArray::new_null(split.num_rows()));
        let damaged = RecordBatch::try_new(split.schema(), columns).expect("batch");
        assert!(join(&damaged).is_err());
    }
}
