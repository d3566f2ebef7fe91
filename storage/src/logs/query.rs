//! A parsed log query ([`LogExpr`], built by the query crate's parser) and
//! its translation into a tantivy query over [`LogFields`], plus the
//! highlighting of what a query matched in a body.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, InvertedIndexRangeQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query,
    RangeQuery, RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream;

use super::schema::{LogFields, body_analyzer};

/// What a text condition looks at.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The body, full text: words, or a phrase when the value has several.
    Body,
    Service,
    Host,
    Scope,
    /// 32 hex digits.
    TraceId,
    /// 16 hex digits.
    SpanId,
    EventName,
    SeverityText,
    /// A log record attribute, by its dotted key.
    Attribute(String),
    /// A resource attribute, by its dotted key.
    Resource(String),
    /// A log record or resource attribute.
    AnyAttribute(String),
}

/// A log query. Raw fields and attributes match their whole value exactly.
#[derive(Clone, Debug, PartialEq)]
pub enum LogExpr {
    All,
    /// `prefix`: the value's last word is a prefix (`time*`).
    Text {
        target: Target,
        value: String,
        prefix: bool,
    },
    /// Severity numbers in `min..=max` (1–24, as in OTLP).
    Severity {
        min: u8,
        max: u8,
    },
    /// A numeric attribute (integer or double) compared with a number.
    Compare {
        target: Target,
        cmp: Cmp,
        value: f64,
    },
    /// A whole raw field or attribute value matching a pattern where `*`
    /// stands for any characters and `?` for one.
    Wildcard {
        target: Target,
        pattern: String,
    },
    And(Vec<LogExpr>),
    Or(Vec<LogExpr>),
    Not(Box<LogExpr>),
}

/// How a numeric condition compares its value with the query's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    /// Whether `x` satisfies `x <cmp> bound` (the brute-force reference).
    pub fn holds(self, x: f64, bound: f64) -> bool {
        match self {
            Cmp::Gt => x > bound,
            Cmp::Ge => x >= bound,
            Cmp::Lt => x < bound,
            Cmp::Le => x <= bound,
        }
    }
}

/// Words of a text as the body field indexes them.
pub fn body_words(text: &str) -> Vec<String> {
    let mut analyzer = body_analyzer();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

/// Prefix queries expand to at most this many terms.
const MAX_PREFIX_EXPANSIONS: u32 = 1000;

impl LogExpr {
    /// The tantivy query for this expression.
    pub fn to_query(&self, f: &LogFields) -> Box<dyn Query> {
        match self {
            LogExpr::All => Box::new(AllQuery),
            LogExpr::Severity { min, max } => Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(f.severity, u64::from(*min))),
                Bound::Included(Term::from_field_u64(f.severity, u64::from(*max))),
            )),
            LogExpr::Text { target, value, prefix } => text_query(f, target, value, *prefix),
            LogExpr::Compare { target, cmp, value } => {
                per_attribute_field(f, target, |field, key| numeric_range(field, key, *cmp, *value))
            }
            LogExpr::Wildcard { target, pattern } => wildcard_query(f, target, pattern),
            LogExpr::And(items) => Box::new(BooleanQuery::new(
                items
                    .iter()
                    .map(|e| match e {
                        LogExpr::Not(inner) => (Occur::MustNot, inner.to_query(f)),
                        e => (Occur::Must, e.to_query(f)),
                    })
                    .chain(items.iter().all(|e| matches!(e, LogExpr::Not(_))).then(|| {
                        let all: Box<dyn Query> = Box::new(AllQuery);
                        (Occur::Must, all)
                    }))
                    .collect(),
            )),
            LogExpr::Or(items) => {
                Box::new(BooleanQuery::new(items.iter().map(|e| (Occur::Should, e.to_query(f))).collect()))
            }
            LogExpr::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, inner.to_query(f)),
            ])),
        }
    }

    /// The body patterns this expression looks for (outside any `NOT`),
    /// to highlight them in hits.
    pub fn body_patterns(&self) -> Vec<Pattern> {
        let mut out = Vec::new();
        self.collect_patterns(&mut out);
        out
    }

    fn collect_patterns(&self, out: &mut Vec<Pattern>) {
        match self {
            LogExpr::Text { target: Target::Body, value, prefix } => {
                let words = body_words(value);
                if !words.is_empty() {
                    out.push(Pattern { words, prefix: *prefix });
                }
            }
            LogExpr::And(items) | LogExpr::Or(items) => items.iter().for_each(|e| e.collect_patterns(out)),
            _ => {}
        }
    }
}

fn text_query(f: &LogFields, target: &Target, value: &str, prefix: bool) -> Box<dyn Query> {
    let raw = |field: Field, value: &str| -> Box<dyn Query> {
        let term = Term::from_field_text(field, value);
        if prefix { prefix_query(vec![term]) } else { Box::new(TermQuery::new(term, IndexRecordOption::Basic)) }
    };
    match target {
        Target::Body => {
            let terms: Vec<Term> = body_words(value).iter().map(|w| Term::from_field_text(f.body, w)).collect();
            match terms.len() {
                0 => Box::new(EmptyQuery),
                _ if prefix => prefix_query(terms),
                1 => Box::new(TermQuery::new(terms.into_iter().next().expect("one term"), IndexRecordOption::Basic)),
                _ => Box::new(PhraseQuery::new(terms)),
            }
        }
        Target::TraceId => match value.parse::<crate::model::TraceId>() {
            Ok(id) => Box::new(TermQuery::new(Term::from_field_bytes(f.trace_id, &id.0), IndexRecordOption::Basic)),
            Err(_) => Box::new(EmptyQuery),
        },
        Target::SpanId => match (f.span_id, value.parse::<crate::model::SpanId>()) {
            (Some(field), Ok(id)) => {
                let id = Term::from_field_u64(field, u64::from_be_bytes(id.0));
                Box::new(RangeQuery::new(Bound::Included(id.clone()), Bound::Included(id)))
            }
            _ => Box::new(EmptyQuery),
        },
        Target::Service | Target::Host | Target::Scope | Target::EventName | Target::SeverityText => {
            raw_field(f, target).map_or(Box::new(EmptyQuery), |field| raw(field, value))
        }
        Target::Attribute(_) | Target::Resource(_) | Target::AnyAttribute(_) => {
            per_attribute_field(f, target, |field, key| json_query(field, key, value))
        }
    }
}

/// The query `each` builds for an attribute target's JSON field, or for
/// both fields (either may hold the key); nothing for other targets.
fn per_attribute_field(f: &LogFields, target: &Target, each: impl Fn(Field, &str) -> Box<dyn Query>) -> Box<dyn Query> {
    match target {
        Target::Attribute(key) => each(f.attributes, key),
        Target::Resource(key) => each(f.resource, key),
        Target::AnyAttribute(key) => Box::new(BooleanQuery::new(vec![
            (Occur::Should, each(f.attributes, key)),
            (Occur::Should, each(f.resource, key)),
        ])),
        _ => Box::new(EmptyQuery),
    }
}

/// The raw field a target names, for targets kept as one raw value.
fn raw_field(f: &LogFields, target: &Target) -> Option<Field> {
    match target {
        Target::Service => Some(f.service),
        Target::Host => Some(f.host),
        Target::Scope => Some(f.scope),
        Target::EventName => Some(f.event_name),
        Target::SeverityText => Some(f.severity_text),
        _ => None,
    }
}

/// A numeric attribute compared with `bound`: ranges over the path's
/// double, signed and unsigned integer terms in the term dictionary, each
/// closed inside the path so that no other key's terms are read.
fn numeric_range(field: Field, key: &str, cmp: Cmp, bound: f64) -> Box<dyn Query> {
    let term = |append: &dyn Fn(&mut Term)| {
        let mut t = Term::from_field_json_path(field, key, true);
        append(&mut t);
        t
    };
    let double = |v: f64| term(&|t| t.append_type_and_fast_value(v));
    let (lo, hi) = match cmp {
        Cmp::Gt => (Bound::Excluded(double(bound)), Bound::Included(double(f64::INFINITY))),
        Cmp::Ge => (Bound::Included(double(bound)), Bound::Included(double(f64::INFINITY))),
        Cmp::Lt => (Bound::Included(double(f64::NEG_INFINITY)), Bound::Excluded(double(bound))),
        Cmp::Le => (Bound::Included(double(f64::NEG_INFINITY)), Bound::Included(double(bound))),
    };
    let mut ranges: Vec<(Occur, Box<dyn Query>)> =
        vec![(Occur::Should, Box::new(InvertedIndexRangeQuery::new(lo, hi)))];
    let closed = |lo: Term, hi: Term| -> Box<dyn Query> {
        Box::new(InvertedIndexRangeQuery::new(Bound::Included(lo), Bound::Included(hi)))
    };
    let integers = integer_range(cmp, bound);
    if let Some((lo, hi)) = integers.and_then(within::<i64>) {
        let (lo, hi) = (term(&|t| t.append_type_and_fast_value(lo)), term(&|t| t.append_type_and_fast_value(hi)));
        ranges.push((Occur::Should, closed(lo, hi)));
    }
    if let Some((lo, hi)) = integers.and_then(within::<u64>) {
        let (lo, hi) = (term(&|t| t.append_type_and_fast_value(lo)), term(&|t| t.append_type_and_fast_value(hi)));
        ranges.push((Occur::Should, closed(lo, hi)));
    }
    Box::new(BooleanQuery::new(ranges))
}

/// The integers `x` with `x <cmp> bound` as an inclusive range (`i128`
/// holds every `i64` and `u64`); `None` for a NaN bound.
fn integer_range(cmp: Cmp, bound: f64) -> Option<(i128, i128)> {
    if bound.is_nan() {
        return None;
    }
    // Float-to-integer casts saturate, so infinite bounds need no case.
    Some(match cmp {
        Cmp::Gt => ((bound.floor() as i128).saturating_add(1), i128::MAX),
        Cmp::Ge => (bound.ceil() as i128, i128::MAX),
        Cmp::Lt => (i128::MIN, (bound.ceil() as i128).saturating_sub(1)),
        Cmp::Le => (i128::MIN, bound.floor() as i128),
    })
}

/// The part of an integer range that type `T` can hold, if any.
fn within<T: TryFrom<i128> + num_bounds::Bounded>((lo, hi): (i128, i128)) -> Option<(T, T)> {
    let (lo, hi) = (lo.max(T::MIN_I128), hi.min(T::MAX_I128));
    if lo > hi {
        return None;
    }
    Some((T::try_from(lo).ok()?, T::try_from(hi).ok()?))
}

mod num_bounds {
    /// An integer type's range, widened.
    pub trait Bounded {
        const MIN_I128: i128;
        const MAX_I128: i128;
    }
    impl Bounded for i64 {
        const MIN_I128: i128 = i64::MIN as i128;
        const MAX_I128: i128 = i64::MAX as i128;
    }
    impl Bounded for u64 {
        const MIN_I128: i128 = 0;
        const MAX_I128: i128 = u64::MAX as i128;
    }
}

/// A whole value matching a `*`/`?` pattern: a regular expression over
/// the raw field's terms, or over the JSON path's text terms (the path's
/// bytes, escaped, before the value's pattern).
fn wildcard_query(f: &LogFields, target: &Target, pattern: &str) -> Box<dyn Query> {
    let value = wildcard_regex(pattern);
    if let Some(field) = raw_field(f, target) {
        return RegexQuery::from_pattern(&value, field).map_or(Box::new(EmptyQuery), |q| Box::new(q));
    }
    per_attribute_field(f, target, |field, key| {
        let mut path = Term::from_field_json_path(field, key, true);
        path.append_type_and_str("");
        let Ok(prefix) = std::str::from_utf8(path.serialized_value_bytes()) else { return Box::new(EmptyQuery) };
        let regex = format!("{}{value}", escape_regex(prefix));
        RegexQuery::from_pattern(&regex, field).map_or(Box::new(EmptyQuery), |q| Box::new(q))
    })
}

/// A `*`/`?` pattern as a regular expression over the whole value.
pub fn wildcard_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() * 2);
    for c in pattern.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            c => out.push_str(&escape_regex(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out
}

/// Escapes the regular expression syntax in `text`, and writes control
/// characters (a JSON path's separators) as `\xNN`.
fn escape_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if c.is_ascii_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

fn prefix_query(terms: Vec<Term>) -> Box<dyn Query> {
    let mut q = PhrasePrefixQuery::new(terms);
    q.set_max_expansions(MAX_PREFIX_EXPANSIONS);
    Box::new(q)
}

/// An attribute equals a value: as text, and as a number or boolean when
/// the value reads as one (attributes keep their OTLP types).
fn json_query(field: Field, key: &str, value: &str) -> Box<dyn Query> {
    let path = Term::from_field_json_path(field, key, true);
    let mut terms = Vec::with_capacity(3);
    let mut text = path.clone();
    text.append_type_and_str(value);
    terms.push(text);
    if let Ok(i) = value.parse::<i64>() {
        let mut t = path.clone();
        t.append_type_and_fast_value(i);
        terms.push(t);
    } else if let Ok(d) = value.parse::<f64>()
        && d.is_finite()
    {
        // The index keeps a whole double as an integer (tantivy's canonical form).
        let mut t = path.clone();
        match within::<i64>((d as i128, d as i128)).filter(|_| d.fract() == 0.0) {
            Some((i, _)) => t.append_type_and_fast_value(i),
            None => t.append_type_and_fast_value(d),
        }
        terms.push(t);
    } else if let Ok(b) = value.parse::<bool>() {
        let mut t = path.clone();
        t.append_type_and_fast_value(b);
        terms.push(t);
    }
    Box::new(BooleanQuery::new(
        terms
            .into_iter()
            .map(|t| (Occur::Should, Box::new(TermQuery::new(t, IndexRecordOption::Basic)) as _))
            .collect(),
    ))
}

/// Consecutive body words a query looks for; the last one may be a prefix.
#[derive(Clone, Debug, PartialEq)]
pub struct Pattern {
    pub words: Vec<String>,
    pub prefix: bool,
}

/// The spans of `body` (UTF-16 offsets, as a browser indexes strings) that
/// the patterns match, in order and not overlapping.
pub fn highlights(body: &str, patterns: &[Pattern]) -> Vec<(usize, usize)> {
    if patterns.is_empty() {
        return Vec::new();
    }
    let mut analyzer = body_analyzer();
    let mut stream = analyzer.token_stream(body);
    let mut tokens = Vec::new();
    while stream.advance() {
        let t = stream.token();
        tokens.push((t.text.clone(), t.offset_from, t.offset_to));
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for p in patterns {
        let n = p.words.len();
        for start in 0..tokens.len().saturating_sub(n - 1) {
            let hit = p.words.iter().enumerate().all(|(i, w)| {
                let tok = &tokens[start + i].0;
                if p.prefix && i == n - 1 { tok.starts_with(w.as_str()) } else { tok == w }
            });
            if hit {
                spans.push((tokens[start].1, tokens[start + n - 1].2));
            }
        }
    }
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged.into_iter().map(|(s, e)| (utf16_len(&body[..s]), utf16_len(&body[..e]))).collect()
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_words_phrases_and_prefixes() {
        let body = "Payment failed: card_declined for order 42 (payment retry)";
        let pats = [
            Pattern { words: vec!["payment".into()], prefix: false },
            Pattern { words: vec!["order".into(), "42".into()], prefix: false },
            Pattern { words: vec!["card_d".into()], prefix: true },
        ];
        let got = highlights(body, &pats);
        let texts: Vec<_> = got.iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(texts, ["Payment", "card_declined", "order 42", "payment"]);
    }

    #[test]
    fn highlight_offsets_count_utf16_units() {
        let got = highlights("😀 timeout", &[Pattern { words: vec!["timeout".into()], prefix: false }]);
        assert_eq!(got, [(3, 10)]);
    }
}
