//! A parsed log query ([`LogExpr`], built by the query crate's parser) and
//! its translation into a tantivy query over [`LogFields`], plus the
//! highlighting of what a query matched in a body.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
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
    And(Vec<LogExpr>),
    Or(Vec<LogExpr>),
    Not(Box<LogExpr>),
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
        Target::Service => raw(f.service, value),
        Target::Host => raw(f.host, value),
        Target::Scope => raw(f.scope, value),
        Target::TraceId => match value.parse::<crate::model::TraceId>() {
            Ok(id) => Box::new(TermQuery::new(Term::from_field_bytes(f.trace_id, &id.0), IndexRecordOption::Basic)),
            Err(_) => Box::new(EmptyQuery),
        },
        Target::EventName => raw(f.event_name, value),
        Target::SeverityText => raw(f.severity_text, value),
        Target::Attribute(key) => json_query(f.attributes, key, value),
        Target::Resource(key) => json_query(f.resource, key, value),
        Target::AnyAttribute(key) => Box::new(BooleanQuery::new(vec![
            (Occur::Should, json_query(f.attributes, key, value)),
            (Occur::Should, json_query(f.resource, key, value)),
        ])),
    }
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
        let mut t = path.clone();
        t.append_type_and_fast_value(d);
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
