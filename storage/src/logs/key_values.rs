//! The values one attribute key takes in a segment, per document, read
//! from the inverted index: the JSON fields index every attribute value as
//! a term under its key's path, so the terms between the path and its end
//! are the key's distinct values, and their postings say which documents
//! hold each. Counting by any attribute needs no fast column.

use std::collections::HashMap;

use tantivy::schema::{Field, IndexRecordOption, Type, ValueBytes};
use tantivy::{DocId, DocSet as _, SegmentReader, TERMINATED, Term};

use super::query::Target;

/// No value in `first`.
const NONE: u32 = u32::MAX;

/// A segment's documents' values of one key: an ordinal into `names` per
/// document, and the rare further values (arrays, or the key in both the
/// record's and the resource's attributes) beside.
pub struct KeyValues {
    first: Vec<u32>,
    more: HashMap<DocId, Vec<u32>>,
    pub names: Vec<String>,
}

impl KeyValues {
    /// The values of `target`'s key (a log record attribute, a resource
    /// attribute, or either) in `segment`.
    pub fn read(segment: &SegmentReader, target: &Target) -> tantivy::Result<KeyValues> {
        let schema = segment.schema();
        let field = |name: &str| schema.get_field(name);
        let fields: Vec<(Field, &str)> = match target {
            Target::Attribute(key) => vec![(field("attributes")?, key)],
            Target::Resource(key) => vec![(field("resource")?, key)],
            Target::AnyAttribute(key) => vec![(field("attributes")?, key), (field("resource")?, key)],
            _ => Vec::new(),
        };
        let mut out =
            KeyValues { first: vec![NONE; segment.max_doc() as usize], more: HashMap::new(), names: Vec::new() };
        let mut ordinals = HashMap::<String, u32>::new();
        for (field, key) in fields {
            let inverted = segment.inverted_index(field)?;
            let mut path = Term::from_field_json_path(field, key, true);
            path.append_type_and_str("");
            // The path and its end marker, without the value's type byte.
            let bytes = path.serialized_value_bytes();
            let prefix = &bytes[..bytes.len() - 1];
            let mut end = prefix.to_vec();
            end.push(u8::MAX);
            let mut terms = inverted.terms().range().ge(prefix).lt(&end).into_stream()?;
            while terms.advance() {
                let Some(name) = value_text(&terms.key()[prefix.len()..]) else { continue };
                let next = ordinals.len() as u32;
                let ord = *ordinals.entry(name).or_insert(next);
                let mut postings = inverted.read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
                while postings.doc() != TERMINATED {
                    out.add(postings.doc(), ord);
                    postings.advance();
                }
            }
        }
        out.names = vec![String::new(); ordinals.len()];
        for (name, ord) in ordinals {
            out.names[ord as usize] = name;
        }
        Ok(out)
    }

    fn add(&mut self, doc: DocId, ord: u32) {
        match self.first.get_mut(doc as usize) {
            Some(slot) if *slot == NONE => *slot = ord,
            Some(slot) if *slot == ord => {}
            Some(_) => {
                let more = self.more.entry(doc).or_default();
                if !more.contains(&ord) {
                    more.push(ord);
                }
            }
            None => {}
        }
    }

    /// Calls `each` with every value ordinal `doc` holds.
    pub fn for_each(&self, doc: DocId, mut each: impl FnMut(u32)) {
        match self.first.get(doc as usize) {
            Some(&ord) if ord != NONE => each(ord),
            _ => return,
        }
        self.more.get(&doc).into_iter().flatten().for_each(|&ord| each(ord));
    }
}

/// A term's value (its type byte and bytes) as text, as it is shown.
fn value_text(bytes: &[u8]) -> Option<String> {
    let value = ValueBytes::wrap(bytes);
    match value.typ() {
        Type::Str => value.as_str().map(str::to_owned),
        Type::I64 => value.as_i64().map(|v| v.to_string()),
        Type::U64 => value.as_u64().map(|v| v.to_string()),
        Type::F64 => value.as_f64().map(|v| v.to_string()),
        Type::Bool => value.as_bool().map(|v| v.to_string()),
        _ => None,
    }
}
