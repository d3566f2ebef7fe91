//! TraceQL text → [`Query`]: a lexer and a recursive-descent parser.
//!
//! Precedence, loosest first: between spansets `||`, `&&`, then the
//! structural operators (left-associative); inside `{ }` `||`, `&&`, `!`,
//! then comparisons. Constructs TraceQL has and Sightline does not run
//! (arithmetic, `by()`, events, links…) are refused by name.

use sightline_storage::model::{SpanKind, StatusCode};

use crate::lex::{Cursor, quoted};

use super::ast::{Aggregate, Compare, Expr, Intrinsic, Operand, Query, Relation, Scope, Spansets, Stage, Value};

/// A query that does not parse, or uses what is not supported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid TraceQL query: parse error at col {column}: {message}")]
pub struct ParseError {
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Pipe,
    Comma,
    AndAnd,
    OrOr,
    Not,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Re,
    /// `!~`: regex mismatch inside a filter, "not a sibling" between spansets.
    NRe,
    Tilde,
    Descendant,
    Ancestor,
    NotChild,
    NotDescendant,
    NotParent,
    NotAncestor,
    Str(String),
    Int(i64),
    Float(f64),
    Duration(u64),
    Ident(String),
    Unsupported(&'static str),
    End,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Duration(d) => format!("duration {d}ns"),
        Tok::Ident(i) => format!("{i:?}"),
        Tok::End => "the end of the query".into(),
        other => format!("{other:?}"),
    }
}

/// Characters that end an identifier.
fn ends_ident(c: char) -> bool {
    c.is_whitespace() || "{}()=!<>~&|,\"`+*/^%".contains(c)
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| ParseError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let at = i + 1;
        let next = chars.get(i + 1).copied();
        let third = chars.get(i + 2).copied();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, len) = match (c, next) {
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            (',', _) => (Tok::Comma, 1),
            ('|', Some('|')) => (Tok::OrOr, 2),
            ('|', _) => (Tok::Pipe, 1),
            ('&', Some('&')) => (Tok::AndAnd, 2),
            ('&', _) => (Tok::Unsupported("union structural operators (&>, &>>, &~…)"), 1),
            ('=', Some('~')) => (Tok::Re, 2),
            ('=', _) => (Tok::Eq, 1),
            ('!', Some('=')) => (Tok::Ne, 2),
            ('!', Some('~')) => (Tok::NRe, 2),
            ('!', Some('>')) if third == Some('>') => (Tok::NotDescendant, 3),
            ('!', Some('>')) => (Tok::NotChild, 2),
            ('!', Some('<')) if third == Some('<') => (Tok::NotAncestor, 3),
            ('!', Some('<')) => (Tok::NotParent, 2),
            ('!', _) => (Tok::Not, 1),
            ('>', Some('>')) => (Tok::Descendant, 2),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('>', _) => (Tok::Gt, 1),
            ('<', Some('<')) => (Tok::Ancestor, 2),
            ('<', Some('=')) => (Tok::Le, 2),
            ('<', _) => (Tok::Lt, 1),
            ('~', _) => (Tok::Tilde, 1),
            ('+' | '*' | '/' | '^' | '%', _) => (Tok::Unsupported("arithmetic"), 1),
            ('"' | '`', _) => {
                let (s, len) = quoted(&chars[i..], false).map_err(|m| err(at, m))?;
                (Tok::Str(s), len)
            }
            ('-', Some(d)) if d.is_ascii_digit() => number(&chars[i..]).map_err(|m| err(at, m))?,
            ('-', _) => (Tok::Unsupported("arithmetic"), 1),
            (d, _) if d.is_ascii_digit() => number(&chars[i..]).map_err(|m| err(at, m))?,
            _ => {
                let mut len = 0;
                while i + len < chars.len() && !ends_ident(chars[i + len]) {
                    len += 1;
                }
                let mut name: String = chars[i..i + len].iter().collect();
                // `span."name with spaces"`
                if name.ends_with('.') && chars.get(i + len) == Some(&'"') {
                    let (quoted, qlen) = quoted(&chars[i + len..], false).map_err(|m| err(at, m))?;
                    name.push_str(&quoted);
                    len += qlen;
                }
                (Tok::Ident(name), len)
            }
        };
        out.push((tok, at));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// A number or a duration at the start of `chars`.
fn number(chars: &[char]) -> Result<(Tok, usize), String> {
    let mut len = usize::from(chars[0] == '-');
    while len < chars.len() && (chars[len].is_ascii_digit() || chars[len] == '.') {
        len += 1;
    }
    let digits: String = chars[..len].iter().collect();
    let mut unit_len = 0;
    while len + unit_len < chars.len() && (chars[len + unit_len].is_alphabetic()) {
        unit_len += 1;
    }
    let unit: String = chars[len..len + unit_len].iter().collect();
    let bad = || format!("{digits}{unit:?} is not a number or a duration");
    if !unit.is_empty() {
        let scale = match unit.as_str() {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        let v: f64 = digits.parse().map_err(|_| bad())?;
        if v < 0.0 {
            return Err(format!("a negative duration: {digits}{unit}"));
        }
        return Ok((Tok::Duration((v * scale).round() as u64), len + unit_len));
    }
    if let Ok(i) = digits.parse::<i64>() {
        return Ok((Tok::Int(i), len));
    }
    digits.parse::<f64>().map(|f| (Tok::Float(f), len)).map_err(|_| bad())
}

struct Parser {
    c: Cursor<Tok>,
}

/// Parses a TraceQL query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let mut p = Parser { c: Cursor::new(lex(text)?) };
    if p.c.peek() == &Tok::End {
        return Err(p.error("an empty query (use {} for every span)"));
    }
    let spansets = p.spansets()?;
    let mut stages = Vec::new();
    while p.c.eat(&Tok::Pipe) {
        stages.push(p.stage()?);
    }
    p.expect(&Tok::End, "the end of the query")?;
    Ok(Query { spansets, stages })
}

/// A field alone (`span.http.method`, `resource.service.name`, `.x`,
/// `name`, `status`…), as Tempo's tag routes name one.
pub fn field(text: &str) -> Result<Operand, ParseError> {
    let mut p = Parser { c: Cursor::new(lex(text)?) };
    let f = p.operand()?;
    p.expect(&Tok::End, "the end of the field")?;
    match f {
        Operand::Literal(_) => Err(p.error("a value, not a field")),
        f => Ok(f),
    }
}

impl Parser {
    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError { column: self.c.column(), message: message.into() }
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        match self.c.peek() {
            Tok::Unsupported(what) => self.error(format!("{what} is not supported")),
            t => self.error(format!("unexpected {}, expected {wanted}", describe(t))),
        }
    }

    fn expect(&mut self, t: &Tok, wanted: &str) -> Result<(), ParseError> {
        if self.c.eat(t) { Ok(()) } else { Err(self.unexpected(wanted)) }
    }

    fn spansets(&mut self) -> Result<Spansets, ParseError> {
        let mut left = self.spansets_and()?;
        while self.c.eat(&Tok::OrOr) {
            left = Spansets::Or(Box::new(left), Box::new(self.spansets_and()?));
        }
        Ok(left)
    }

    fn spansets_and(&mut self) -> Result<Spansets, ParseError> {
        let mut left = self.structural()?;
        while self.c.eat(&Tok::AndAnd) {
            left = Spansets::And(Box::new(left), Box::new(self.structural()?));
        }
        Ok(left)
    }

    fn structural(&mut self) -> Result<Spansets, ParseError> {
        let mut left = self.spanset()?;
        loop {
            let (relation, negated) = match self.c.peek() {
                Tok::Gt => (Relation::Child, false),
                Tok::Descendant => (Relation::Descendant, false),
                Tok::Lt => (Relation::Parent, false),
                Tok::Ancestor => (Relation::Ancestor, false),
                Tok::Tilde => (Relation::Sibling, false),
                Tok::NotChild => (Relation::Child, true),
                Tok::NotDescendant => (Relation::Descendant, true),
                Tok::NotParent => (Relation::Parent, true),
                Tok::NotAncestor => (Relation::Ancestor, true),
                Tok::NRe => (Relation::Sibling, true),
                _ => return Ok(left),
            };
            self.c.next();
            let right = self.spanset()?;
            left = Spansets::Structural { relation, negated, left: Box::new(left), right: Box::new(right) };
        }
    }

    fn spanset(&mut self) -> Result<Spansets, ParseError> {
        match self.c.peek() {
            Tok::LBrace => Ok(Spansets::Filter(self.braced()?)),
            Tok::LParen => {
                self.c.next();
                let inner = self.spansets()?;
                if self.c.peek() == &Tok::Pipe {
                    return Err(self.error("pipelines inside parentheses are not supported"));
                }
                self.expect(&Tok::RParen, ")")?;
                Ok(inner)
            }
            _ => Err(self.unexpected("{ or (")),
        }
    }

    /// `{ expr }`, `{}` being every span.
    fn braced(&mut self) -> Result<Expr, ParseError> {
        self.expect(&Tok::LBrace, "{")?;
        if self.c.eat(&Tok::RBrace) {
            return Ok(Expr::Is(Operand::Literal(Value::Bool(true))));
        }
        let e = self.expr()?;
        self.expect(&Tok::RBrace, "}")?;
        Ok(e)
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.expr_and()?;
        while self.c.eat(&Tok::OrOr) {
            left = Expr::Or(Box::new(left), Box::new(self.expr_and()?));
        }
        Ok(left)
    }

    fn expr_and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        while self.c.eat(&Tok::AndAnd) {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.c.eat(&Tok::Not) {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.c.eat(&Tok::LParen) {
            let e = self.expr()?;
            self.expect(&Tok::RParen, ")")?;
            return Ok(e);
        }
        let left = self.operand()?;
        match self.compare_op() {
            Some(op) => Ok(Expr::Compare(left, op, self.operand()?)),
            None => Ok(Expr::Is(left)),
        }
    }

    fn compare_op(&mut self) -> Option<Compare> {
        let op = match self.c.peek() {
            Tok::Eq => Compare::Eq,
            Tok::Ne => Compare::Ne,
            Tok::Gt => Compare::Gt,
            Tok::Ge => Compare::Ge,
            Tok::Lt => Compare::Lt,
            Tok::Le => Compare::Le,
            Tok::Re => Compare::Matches,
            Tok::NRe => Compare::NotMatches,
            _ => return None,
        };
        self.c.next();
        Some(op)
    }

    fn literal(&mut self) -> Result<Value, ParseError> {
        match self.operand()? {
            Operand::Literal(v) => Ok(v),
            _ => Err(self.error("a comparison with a field: only a literal may stand here")),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let v = match self.c.peek().clone() {
            Tok::Str(s) => Value::Str(s),
            Tok::Int(i) => Value::Int(i),
            Tok::Float(f) => Value::Float(f),
            Tok::Duration(d) => Value::Duration(d),
            Tok::Ident(name) => return self.identifier(&name),
            _ => return Err(self.unexpected("a field or a value")),
        };
        self.c.next();
        Ok(Operand::Literal(v))
    }

    fn identifier(&mut self, name: &str) -> Result<Operand, ParseError> {
        let keyword = match name {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            "nil" => Some(Value::Nil),
            "error" => Some(Value::Status(StatusCode::Error)),
            "ok" => Some(Value::Status(StatusCode::Ok)),
            "unset" => Some(Value::Status(StatusCode::Unset)),
            "unspecified" => Some(Value::Kind(SpanKind::Unspecified)),
            "internal" => Some(Value::Kind(SpanKind::Internal)),
            "server" => Some(Value::Kind(SpanKind::Server)),
            "client" => Some(Value::Kind(SpanKind::Client)),
            "producer" => Some(Value::Kind(SpanKind::Producer)),
            "consumer" => Some(Value::Kind(SpanKind::Consumer)),
            _ => None,
        };
        let operand = if let Some(v) = keyword {
            Operand::Literal(v)
        } else if let Some((_, i)) = Intrinsic::NAMES.iter().find(|(n, _)| *n == name) {
            Operand::Intrinsic(*i)
        } else if let Some(rest) = name.strip_prefix("span.") {
            Operand::Attribute(Scope::Span, self.attribute_name(rest)?)
        } else if let Some(rest) = name.strip_prefix("resource.") {
            Operand::Attribute(Scope::Resource, self.attribute_name(rest)?)
        } else if let Some(rest) = name.strip_prefix('.') {
            Operand::Attribute(Scope::Any, self.attribute_name(rest)?)
        } else {
            let scope = name.split(['.', ':']).next().unwrap_or(name);
            return Err(match scope {
                "event" | "link" | "instrumentation" | "parent" | "trace" | "span" => {
                    self.error(format!("{name:?} is not supported"))
                }
                _ => self.error(format!("unknown field {name:?} (attributes are span.x, resource.x or .x)")),
            });
        };
        self.c.next();
        Ok(operand)
    }

    fn attribute_name(&self, rest: &str) -> Result<String, ParseError> {
        if rest.is_empty() {
            return Err(self.error("an attribute without a name"));
        }
        Ok(rest.to_owned())
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        if self.c.peek() == &Tok::LBrace {
            return Ok(Stage::Filter(self.braced()?));
        }
        let Tok::Ident(name) = self.c.peek().clone() else {
            return Err(self.unexpected("{, count(), avg(), min(), max(), sum() or select()"));
        };
        let function = match name.as_str() {
            "count" => Aggregate::Count,
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "sum" => Aggregate::Sum,
            "select" => {
                self.c.next();
                self.expect(&Tok::LParen, "(")?;
                let mut fields = vec![self.operand()?];
                while self.c.eat(&Tok::Comma) {
                    fields.push(self.operand()?);
                }
                self.expect(&Tok::RParen, ")")?;
                if fields.iter().any(|f| matches!(f, Operand::Literal(_))) {
                    return Err(self.error("select() takes fields, not values"));
                }
                return Ok(Stage::Select(fields));
            }
            other => return Err(self.error(format!("the pipeline stage {other}() is not supported"))),
        };
        self.c.next();
        self.expect(&Tok::LParen, "(")?;
        let field = if function == Aggregate::Count {
            None
        } else {
            let f = self.operand()?;
            if matches!(f, Operand::Literal(_)) {
                return Err(self.error("an aggregate over a value, not a field"));
            }
            Some(f)
        };
        self.expect(&Tok::RParen, ")")?;
        let op = self.compare_op().ok_or_else(|| self.unexpected("a comparison after the aggregate"))?;
        if matches!(op, Compare::Matches | Compare::NotMatches) {
            return Err(self.error("a regular expression on an aggregate"));
        }
        let value = self.literal()?;
        if !matches!(value, Value::Int(_) | Value::Float(_) | Value::Duration(_)) {
            return Err(self.error("an aggregate compares with a number or a duration"));
        }
        Ok(Stage::Aggregate { function, field, op, value })
    }
}
