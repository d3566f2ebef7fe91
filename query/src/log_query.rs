//! The log query language, parsed into the store's [`LogExpr`].
//!
//! ```text
//! timeout                       a word in the body (case-insensitive)
//! "connection refused"          a phrase; so is an unquoted `/api/v1/orders`
//! time*                         a word prefix
//! service:checkout              a field; also host, scope, trace_id, span_id, event, severity_text
//! severity>=WARN  level:error   severity by name (TRACE…FATAL, INFO2…) or number (1–24)
//! attributes.http.status_code:500   a log attribute; resource.k8s.pod.name:x a resource one;
//! http.method:GET               any other name: a log or resource attribute
//! attributes.http.status_code>=500  duration_ms>250   a numeric attribute compared (> >= < <=)
//! http.route:/api/*  user:a?c   a value by pattern: * any characters, ? one (quote for literal ones)
//! a b   a AND b   a OR b   NOT a   -a   ( … )
//! ```
//! Words join with AND unless OR is written; AND binds tighter than OR.

use sightline_storage::logs::{Cmp, LogExpr, Target};

/// A query the parser refused: what is wrong, and where (in characters).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {position})")]
pub struct ParseError {
    pub message: String,
    pub position: usize,
}

fn fail<T>(position: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { message: message.into(), position })
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Word(String),
    /// A quoted phrase; `glued` when it directly follows the previous token.
    Quoted {
        text: String,
        glued: bool,
    },
}

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' => {
                out.push((i, if c == '(' { Tok::Open } else { Tok::Close }));
                i += 1;
            }
            '"' => {
                let start = i;
                let glued = i > 0 && !chars[i - 1].is_whitespace() && chars[i - 1] != '(';
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return fail(start, "unterminated quote"),
                        Some('"') => break,
                        Some('\\') if matches!(chars.get(i + 1), Some('"' | '\\')) => {
                            text.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&c) => {
                            text.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push((start, Tok::Quoted { text, glued }));
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | '"') {
                    i += 1;
                }
                out.push((start, Tok::Word(chars[start..i].iter().collect())));
            }
        }
    }
    Ok(out)
}

/// How a field condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Splits `name<op>value` when the word starts with a field name.
fn split_field(word: &str) -> Option<(&str, Op, &str)> {
    let name_len = word
        .char_indices()
        .find(|&(i, c)| !(c.is_alphanumeric() || c == '_' || c == '@' || (i > 0 && (c == '.' || c == '-'))))
        .map_or(word.len(), |(i, _)| i);
    if name_len == 0 || word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let (name, rest) = word.split_at(name_len);
    const OPS: [(&str, Op); 10] = [
        (":>=", Op::Ge),
        (":<=", Op::Le),
        (":>", Op::Gt),
        (":<", Op::Lt),
        (">=", Op::Ge),
        ("<=", Op::Le),
        (":", Op::Eq),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
    ];
    OPS.iter().find_map(|(text, op)| rest.strip_prefix(text).map(|value| (name, *op, value)))
}

/// The severity numbers a name or number stands for: a family (`WARN` is
/// 13–16) or one number (`WARN2`, `14`).
fn severity_range(value: &str) -> Option<(u8, u8)> {
    if let Ok(n) = value.parse::<u8>() {
        return (1..=24).contains(&n).then_some((n, n));
    }
    let upper = value.to_ascii_uppercase();
    let (name, level) = match upper.char_indices().last() {
        Some((i, d @ '2'..='4')) => (&upper[..i], Some(d as u8 - b'1')),
        _ => (upper.as_str(), None),
    };
    let base = match name {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" | "INFORMATION" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" | "ERR" => 17,
        "FATAL" | "CRITICAL" => 21,
        _ => return None,
    };
    Some(level.map_or((base, base + 3), |l| (base + l, base + l)))
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn position(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(p, _)| *p)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w == k)
    }

    fn or(&mut self) -> Result<LogExpr, ParseError> {
        let mut items = vec![self.and()?];
        while self.keyword("OR") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { LogExpr::Or(items) })
    }

    fn and(&mut self) -> Result<LogExpr, ParseError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                None | Some(Tok::Close) => break,
                Some(Tok::Word(w)) if w == "OR" => break,
                Some(Tok::Word(w)) if w == "AND" => self.at += 1,
                _ => {}
            }
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { LogExpr::And(items) })
    }

    fn unary(&mut self) -> Result<LogExpr, ParseError> {
        let at = self.position();
        match self.peek().cloned() {
            None => fail(at, "expected a search term"),
            Some(Tok::Word(w)) if w == "NOT" => {
                self.at += 1;
                Ok(LogExpr::Not(Box::new(self.unary()?)))
            }
            Some(Tok::Word(w)) if w == "AND" || w == "OR" => fail(at, format!("{w} needs a term before it")),
            Some(Tok::Open) => {
                self.at += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return fail(self.position(), "missing closing parenthesis");
                }
                self.at += 1;
                Ok(inner)
            }
            Some(Tok::Close) => fail(at, "unexpected closing parenthesis"),
            Some(Tok::Quoted { text, .. }) => {
                self.at += 1;
                Ok(LogExpr::Text { target: Target::Body, value: text, prefix: false })
            }
            Some(Tok::Word(w)) => {
                self.at += 1;
                if let Some(rest) = w.strip_prefix('-').filter(|r| !r.is_empty() && !r.starts_with('-')) {
                    return Ok(LogExpr::Not(Box::new(self.term(rest, at + 1)?)));
                }
                self.term(&w, at)
            }
        }
    }

    /// A word (already consumed), possibly `field<op>`, its value possibly
    /// the quoted phrase glued to it.
    fn term(&mut self, word: &str, at: usize) -> Result<LogExpr, ParseError> {
        let Some((name, op, value)) = split_field(word) else {
            return body_word(word, at);
        };
        let value_at = at + name.chars().count() + word[name.len()..].chars().count() - value.chars().count();
        let (value, quoted) = if value.is_empty() {
            match self.peek() {
                Some(Tok::Quoted { text, glued: true }) => {
                    let text = text.clone();
                    self.at += 1;
                    (text, true)
                }
                _ => return fail(value_at, format!("missing value after '{}'", &word)),
            }
        } else {
            (value.to_owned(), false)
        };
        field_condition(name, op, &value, quoted, at, value_at)
    }
}

fn body_word(word: &str, at: usize) -> Result<LogExpr, ParseError> {
    let (value, prefix) = match word.strip_suffix('*') {
        Some(v) => (v, true),
        None => (word, false),
    };
    if value.contains('*') || value.contains('?') {
        return fail(at, "wildcards are supported only at the end of a word");
    }
    if sightline_storage::logs::body_words(value).is_empty() {
        return fail(at, format!("'{word}' has no letters or digits to search for"));
    }
    Ok(LogExpr::Text { target: Target::Body, value: value.to_owned(), prefix })
}

fn field_condition(
    name: &str,
    op: Op,
    value: &str,
    quoted: bool,
    at: usize,
    value_at: usize,
) -> Result<LogExpr, ParseError> {
    let lower = name.to_ascii_lowercase();
    if matches!(lower.as_str(), "severity" | "level" | "severity_number") {
        let Some((min, max)) = severity_range(value) else {
            return fail(
                value_at,
                format!("unknown severity '{value}': use TRACE, DEBUG, INFO, WARN, ERROR, FATAL (or 1–24)"),
            );
        };
        let (min, max) = match op {
            Op::Eq => (min, max),
            Op::Ge => (min, 24),
            Op::Gt => (max + 1, 24),
            Op::Le => (1, max),
            Op::Lt => (1, min.saturating_sub(1)),
        };
        return Ok(LogExpr::Severity { min, max });
    }
    let (target, raw) = match lower.as_str() {
        "body" | "message" | "msg" => (Target::Body, false),
        "service" | "service.name" | "service_name" => (Target::Service, true),
        "host" | "host.name" => (Target::Host, true),
        "scope" => (Target::Scope, true),
        "trace_id" | "traceid" | "trace" => (Target::TraceId, true),
        "span_id" | "spanid" | "span" => (Target::SpanId, true),
        "event" | "event_name" => (Target::EventName, true),
        "severity_text" => (Target::SeverityText, true),
        _ => (attribute_target(name), false),
    };
    let attribute = matches!(target, Target::Attribute(_) | Target::Resource(_) | Target::AnyAttribute(_));
    if op != Op::Eq {
        if !attribute {
            return fail(at, format!("comparisons work on severity and attributes; '{name}' matches a value with ':'"));
        }
        let Some(number) = value.parse::<f64>().ok().filter(|n| n.is_finite()) else {
            return fail(value_at, format!("'{value}' is not a number to compare '{name}' with"));
        };
        let cmp = match op {
            Op::Gt => Cmp::Gt,
            Op::Ge => Cmp::Ge,
            Op::Lt => Cmp::Lt,
            _ => Cmp::Le,
        };
        return Ok(LogExpr::Compare { target, cmp, value: number });
    }
    if target == Target::Body {
        return if quoted {
            Ok(LogExpr::Text { target, value: value.to_owned(), prefix: false })
        } else {
            body_word(value, value_at)
        };
    }
    let wild = !quoted && value.contains(['*', '?']);
    let id_digits = match target {
        Target::TraceId => 32,
        Target::SpanId => 16,
        _ => 0,
    };
    if wild && id_digits > 0 {
        return fail(value_at, format!("'{name}' takes {id_digits} hex digits"));
    }
    let trailing_star_only = value.strip_suffix('*').filter(|v| !v.is_empty() && !v.contains(['*', '?']));
    let (value, prefix) = match trailing_star_only {
        // A raw field's prefix reads the term dictionary's range directly.
        Some(v) if wild && raw => (v, true),
        _ if wild => return Ok(LogExpr::Wildcard { target, pattern: value.to_owned() }),
        _ => (value, false),
    };
    if id_digits > 0 && (prefix || value.len() != id_digits || !value.chars().all(|c| c.is_ascii_hexdigit())) {
        return fail(value_at, format!("'{name}' takes {id_digits} hex digits"));
    }
    Ok(LogExpr::Text { target, value: value.to_owned(), prefix })
}

/// The attribute a name stands for: `attributes.k` a log record's,
/// `resource.k` a resource's, any other name either.
pub fn attribute_target(name: &str) -> Target {
    match name.split_once('.') {
        Some(("attributes" | "attr", key)) if !key.is_empty() => Target::Attribute(key.to_owned()),
        Some(("resource", key)) if !key.is_empty() => Target::Resource(key.to_owned()),
        _ => Target::AnyAttribute(name.to_owned()),
    }
}

/// Parses a query; an empty query matches every line.
pub fn parse(input: &str) -> Result<LogExpr, ParseError> {
    let toks = lex(input)?;
    if toks.is_empty() {
        return Ok(LogExpr::All);
    }
    let mut p = Parser { toks, at: 0, end: input.chars().count() };
    let expr = p.or()?;
    if p.at < p.toks.len() {
        return fail(p.position(), "unexpected closing parenthesis");
    }
    Ok(expr)
}

/// The family name of an OTLP severity number.
pub fn severity_name(n: u8) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: &str) -> LogExpr {
        LogExpr::Text { target: Target::Body, value: v.into(), prefix: false }
    }

    fn field(target: Target, v: &str) -> LogExpr {
        LogExpr::Text { target, value: v.into(), prefix: false }
    }

    /// Found by the `log_query` fuzz target: a word starting with a
    /// multi-byte letter was sliced inside that letter.
    #[test]
    fn a_word_starting_with_a_multi_byte_letter_parses() {
        assert!(parse("\u{499}\u{1}:5bo ").is_ok());
        assert!(parse("ä:1").is_ok());
        assert!(parse("日本:x").is_ok());
    }

    #[test]
    fn words_phrases_fields_and_operators() {
        assert_eq!(parse("  ").expect("empty"), LogExpr::All);
        assert_eq!(parse("timeout").expect("word"), body("timeout"));
        assert_eq!(parse(r#""connection refused""#).expect("phrase"), body("connection refused"));
        assert_eq!(
            parse("time*").expect("prefix"),
            LogExpr::Text { target: Target::Body, value: "time".into(), prefix: true }
        );
        assert_eq!(
            parse(r#"service:checkout severity>=WARN body:"card declined""#).expect("fields"),
            LogExpr::And(vec![
                field(Target::Service, "checkout"),
                LogExpr::Severity { min: 13, max: 24 },
                body("card declined")
            ])
        );
        assert_eq!(
            parse("a OR b c").expect("precedence"),
            LogExpr::Or(vec![body("a"), LogExpr::And(vec![body("b"), body("c")])])
        );
        assert_eq!(
            parse("(a OR b) AND NOT c -service:x").expect("groups"),
            LogExpr::And(vec![
                LogExpr::Or(vec![body("a"), body("b")]),
                LogExpr::Not(Box::new(body("c"))),
                LogExpr::Not(Box::new(field(Target::Service, "x"))),
            ])
        );
        assert_eq!(
            parse("attributes.http.status_code:500").expect("attr"),
            field(Target::Attribute("http.status_code".into()), "500")
        );
        assert_eq!(
            parse("resource.k8s.pod.name:web-1").expect("res"),
            field(Target::Resource("k8s.pod.name".into()), "web-1")
        );
        assert_eq!(parse("http.method:GET").expect("any"), field(Target::AnyAttribute("http.method".into()), "GET"));
        assert_eq!(parse("/api/v1/orders").expect("path"), body("/api/v1/orders"));
        assert_eq!(parse("level:error").expect("level"), LogExpr::Severity { min: 17, max: 20 });
        assert_eq!(parse("severity:INFO2").expect("info2"), LogExpr::Severity { min: 10, max: 10 });
        assert_eq!(parse("severity<WARN").expect("lt"), LogExpr::Severity { min: 1, max: 12 });
        assert_eq!(parse("severity>warn").expect("gt"), LogExpr::Severity { min: 17, max: 24 });
        assert_eq!(
            parse("trace_id:0AF7651916CD43DD8448EB211C80319C").expect("trace"),
            field(Target::TraceId, "0AF7651916CD43DD8448EB211C80319C")
        );
    }

    #[test]
    fn span_ids() {
        assert_eq!(parse("span_id:00F067AA0BA902B7").expect("span"), field(Target::SpanId, "00F067AA0BA902B7"));
        assert_eq!(parse("span:00f067aa0ba902b7").expect("short"), field(Target::SpanId, "00f067aa0ba902b7"));
    }

    #[test]
    fn numeric_comparisons_and_value_patterns() {
        let attr = |k: &str| Target::Attribute(k.into());
        assert_eq!(
            parse("attributes.http.status_code>=500").expect("ge"),
            LogExpr::Compare { target: attr("http.status_code"), cmp: Cmp::Ge, value: 500.0 }
        );
        assert_eq!(
            parse("duration_ms>250").expect("gt"),
            LogExpr::Compare { target: Target::AnyAttribute("duration_ms".into()), cmp: Cmp::Gt, value: 250.0 }
        );
        assert_eq!(
            parse("resource.cpu.load:<0.5").expect("lt"),
            LogExpr::Compare { target: Target::Resource("cpu.load".into()), cmp: Cmp::Lt, value: 0.5 }
        );
        assert_eq!(
            parse("size<=-1e3").expect("le"),
            LogExpr::Compare { target: Target::AnyAttribute("size".into()), cmp: Cmp::Le, value: -1000.0 }
        );
        assert_eq!(
            parse("attributes.http.route:/api/*").expect("attribute prefix"),
            LogExpr::Wildcard { target: attr("http.route"), pattern: "/api/*".into() }
        );
        assert_eq!(
            parse("user:a?c*").expect("wildcard"),
            LogExpr::Wildcard { target: Target::AnyAttribute("user".into()), pattern: "a?c*".into() }
        );
        assert_eq!(
            parse("service:check*").expect("raw prefix"),
            LogExpr::Text { target: Target::Service, value: "check".into(), prefix: true }
        );
        assert_eq!(
            parse("host:web-?-eu").expect("raw wildcard"),
            LogExpr::Wildcard { target: Target::Host, pattern: "web-?-eu".into() }
        );
        assert_eq!(parse(r#"url:"/a?b=*""#).expect("quoted"), field(Target::AnyAttribute("url".into()), "/a?b=*"));
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = |q| parse(q).expect_err(q);
        assert_eq!(err(r#"a "open"#), ParseError { message: "unterminated quote".into(), position: 2 });
        assert_eq!(err("(a OR b").position, 7);
        assert_eq!(err("a)").position, 1);
        assert_eq!(err("a AND").position, 5);
        assert_eq!(err("OR a").position, 0);
        let sev = err("service:x severity>=LOUD");
        assert_eq!(sev.position, 20);
        assert!(sev.message.contains("unknown severity 'LOUD'"), "{}", sev.message);
        assert_eq!(err("service:").position, 8);
        assert!(err("service>5").message.contains("comparisons work on severity and attributes"));
        let nan = err("attributes.code>=high");
        assert_eq!(nan.position, 17);
        assert!(nan.message.contains("'high' is not a number"), "{}", nan.message);
        assert_eq!(err("trace_id:0af7*").position, 9);
        assert!(err("span_id:0af7").message.contains("16 hex digits"));
        assert_eq!(err("trace_id:xyz").position, 9);
        assert_eq!(err("a --- b").position, 2);
        assert_eq!(err("ti*me").position, 0);
    }
}
