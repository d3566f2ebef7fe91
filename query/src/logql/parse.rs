//! LogQL text → [`Query`]: a lexer and a recursive-descent parser.
//!
//! Metric operators bind as in PromQL: `^`, then `* / %`, `+ -`, the
//! comparisons, `and`/`unless`, `or` loosest. What LogQL has and Sightline
//! does not run (`offset`, `json` with expressions, `|= "a" or "b"`…) is
//! refused by name.

use crate::lex::{Cursor, quoted};

use super::ast::{
    BinOp, Compare, Grouping, LabelFilter, LabelSource, LogExpr, MatchOp, Matcher, MetricExpr, Query, RangeFn, Stage,
    Unwrap, VectorFn,
};

/// A query that does not parse, or uses what is not supported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parse error at line 1, col {column}: {message}")]
pub struct ParseError {
    pub column: usize,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Pipe,
    PipeEq,
    PipeRe,
    Ne,
    NotRe,
    Eq,
    Re,
    EqEq,
    Gt,
    Ge,
    Lt,
    Le,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Str(String),
    Number(f64),
    /// Nanoseconds.
    Duration(u64),
    Bytes(f64),
    Ident(String),
    End,
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let err = |message: String| ParseError { column: at, message };
        let (tok, len) = match (c, next) {
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('[', _) => (Tok::LBracket, 1),
            (']', _) => (Tok::RBracket, 1),
            (',', _) => (Tok::Comma, 1),
            ('|', Some('=')) => (Tok::PipeEq, 2),
            ('|', Some('~')) => (Tok::PipeRe, 2),
            ('|', _) => (Tok::Pipe, 1),
            ('!', Some('=')) => (Tok::Ne, 2),
            ('!', Some('~')) => (Tok::NotRe, 2),
            ('=', Some('=')) => (Tok::EqEq, 2),
            ('=', Some('~')) => (Tok::Re, 2),
            ('=', _) => (Tok::Eq, 1),
            ('>', Some('=')) => (Tok::Ge, 2),
            ('>', _) => (Tok::Gt, 1),
            ('<', Some('=')) => (Tok::Le, 2),
            ('<', _) => (Tok::Lt, 1),
            ('+', _) => (Tok::Add, 1),
            ('-', _) => (Tok::Sub, 1),
            ('*', _) => (Tok::Mul, 1),
            ('/', _) => (Tok::Div, 1),
            ('%', _) => (Tok::Mod, 1),
            ('^', _) => (Tok::Pow, 1),
            ('"' | '`', _) => {
                let (s, len) = quoted(&chars[i..], true).map_err(err)?;
                (Tok::Str(s), len)
            }
            (d, _) if d.is_ascii_digit() || (d == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                number(&chars[i..]).map_err(err)?
            }
            (a, _) if a.is_alphabetic() || a == '_' => {
                let mut len = 0;
                while i + len < chars.len() && (chars[i + len].is_alphanumeric() || chars[i + len] == '_') {
                    len += 1;
                }
                (Tok::Ident(chars[i..i + len].iter().collect()), len)
            }
            (other, _) => return Err(err(format!("unexpected character {other:?}"))),
        };
        out.push((tok, at));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// A number, a duration (`5m`, `1h30m`, `250ms`) or a byte size (`10KB`, `1MiB`).
fn number(chars: &[char]) -> Result<(Tok, usize), String> {
    let mut len = 0;
    while len < chars.len() && (chars[len].is_alphanumeric() || chars[len] == '.' || chars[len] == 'µ') {
        len += 1;
    }
    let text: String = chars[..len].iter().collect();
    if let Ok(n) = text.parse::<f64>() {
        return Ok((Tok::Number(n), len));
    }
    if let Some(d) = duration_nanos(&text) {
        return Ok((Tok::Duration(d), len));
    }
    if let Some(b) = bytes(&text) {
        return Ok((Tok::Bytes(b), len));
    }
    Err(format!("{text:?} is not a number, a duration or a byte size"))
}

/// Go's duration syntax (and `d`, `w`, `y` as Prometheus allows), in nanoseconds.
pub fn duration_nanos(text: &str) -> Option<u64> {
    let mut total = 0f64;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "y" => 31_536_000e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total.round() as u64)
}

/// A byte size as humanize parses it (`10KB` = 10,000; `1KiB` = 1,024; `B` alone too).
pub fn bytes(text: &str) -> Option<f64> {
    let digits = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let value: f64 = text[..digits].parse().ok()?;
    let scale = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "kib" | "ki" => 1024.0,
        "mb" | "m" => 1e6,
        "mib" | "mi" => 1024.0 * 1024.0,
        "gb" | "g" => 1e9,
        "gib" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "tb" | "t" => 1e12,
        "tib" | "ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some(value * scale)
}

struct Parser {
    c: Cursor<Tok>,
}

/// Parses a LogQL query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let mut p = Parser { c: Cursor::new(lex(text)?) };
    let q = if p.c.peek() == &Tok::LBrace { Query::Log(p.log_expr()?) } else { Query::Metric(p.metric(0)?) };
    if p.c.peek() != &Tok::End {
        return Err(p.unexpected("the end of the query"));
    }
    Ok(q)
}

/// Binding power of a binary operator (higher binds tighter), and the operator.
fn binary(t: &Tok) -> Option<(u8, BinOp)> {
    Some(match t {
        Tok::Ident(w) if w == "or" => (1, BinOp::Or),
        Tok::Ident(w) if w == "and" => (2, BinOp::And),
        Tok::Ident(w) if w == "unless" => (2, BinOp::Unless),
        Tok::EqEq => (3, BinOp::Cmp(Compare::Eq)),
        Tok::Ne => (3, BinOp::Cmp(Compare::Ne)),
        Tok::Gt => (3, BinOp::Cmp(Compare::Gt)),
        Tok::Ge => (3, BinOp::Cmp(Compare::Ge)),
        Tok::Lt => (3, BinOp::Cmp(Compare::Lt)),
        Tok::Le => (3, BinOp::Cmp(Compare::Le)),
        Tok::Add => (4, BinOp::Add),
        Tok::Sub => (4, BinOp::Sub),
        Tok::Mul => (5, BinOp::Mul),
        Tok::Div => (5, BinOp::Div),
        Tok::Mod => (5, BinOp::Mod),
        Tok::Pow => (6, BinOp::Pow),
        _ => return None,
    })
}

impl Parser {
    fn eat_word(&mut self, w: &str) -> bool {
        let yes = matches!(self.c.peek(), Tok::Ident(x) if x == w);
        if yes {
            self.c.next();
        }
        yes
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError { column: self.c.column(), message: message.into() }
    }

    fn unexpected(&self, wanted: &str) -> ParseError {
        let got = match self.c.peek() {
            Tok::End => "the end of the query".to_owned(),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Ident(i) => format!("{i:?}"),
            other => format!("{other:?}"),
        };
        self.error(format!("syntax error: unexpected {got}, expected {wanted}"))
    }

    fn expect(&mut self, t: &Tok, wanted: &str) -> Result<(), ParseError> {
        if self.c.eat(t) { Ok(()) } else { Err(self.unexpected(wanted)) }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.c.next() {
            Tok::Str(s) => Ok(s),
            _ => {
                self.c.back();
                Err(self.unexpected("a string"))
            }
        }
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        match self.c.peek().clone() {
            Tok::Ident(s) => {
                self.c.next();
                Ok(s)
            }
            _ => Err(self.unexpected("a label name")),
        }
    }

    fn log_expr(&mut self) -> Result<LogExpr, ParseError> {
        self.expect(&Tok::LBrace, "{")?;
        let mut selector = Vec::new();
        while self.c.peek() != &Tok::RBrace {
            let label = self.ident()?;
            let op = match self.c.next() {
                Tok::Eq => MatchOp::Eq,
                Tok::Ne => MatchOp::Ne,
                Tok::Re => MatchOp::Re,
                Tok::NotRe => MatchOp::NotRe,
                _ => {
                    self.c.back();
                    return Err(self.unexpected("=, !=, =~ or !~"));
                }
            };
            selector.push(Matcher { label, op, value: self.string()? });
            if !self.c.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RBrace, "}")?;
        if selector.is_empty() {
            return Err(self.error(
                "queries require at least one regexp or equality matcher that does not have an empty-compatible value",
            ));
        }
        let mut stages = Vec::new();
        loop {
            let line = match self.c.peek() {
                Tok::PipeEq => MatchOp::Eq,
                Tok::Ne => MatchOp::Ne,
                Tok::PipeRe => MatchOp::Re,
                Tok::NotRe => MatchOp::NotRe,
                Tok::Pipe => {
                    self.c.next();
                    stages.push(self.stage()?);
                    continue;
                }
                _ => break,
            };
            self.c.next();
            stages.push(Stage::Line(line, self.string()?));
            if matches!(self.c.peek(), Tok::Ident(w) if w == "or") {
                return Err(self.error("line filters joined with `or` are not supported"));
            }
        }
        Ok(LogExpr { selector, stages })
    }

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let word = match self.c.peek() {
            Tok::Ident(w) => w.clone(),
            Tok::LParen => return Ok(Stage::Filter(self.filter_or()?)),
            _ => return Err(self.unexpected("a parser, a label filter or a formatting stage")),
        };
        // A stage keyword, unless an operator only a label filter takes follows it.
        const STAGES: [&str; 9] =
            ["json", "logfmt", "regexp", "pattern", "line_format", "label_format", "drop", "keep", "unwrap"];
        let filter_op =
            matches!(*self.c.peek_at(1), Tok::Eq | Tok::Re | Tok::EqEq | Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le);
        if !STAGES.contains(&word.as_str()) || filter_op {
            if !matches!(
                *self.c.peek_at(1),
                Tok::Eq | Tok::Ne | Tok::Re | Tok::NotRe | Tok::EqEq | Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le
            ) {
                return Err(self.error(format!("the stage {word:?} is not supported")));
            }
            return Ok(Stage::Filter(self.filter_or()?));
        }
        self.c.next();
        Ok(match word.as_str() {
            "json" | "logfmt" => {
                if matches!(self.c.peek(), Tok::Ident(_)) || matches!(self.c.peek(), Tok::Sub) {
                    return Err(self.error(format!("{word} with parameters or flags is not supported")));
                }
                if word == "json" { Stage::Json } else { Stage::Logfmt }
            }
            "regexp" => {
                let re = self.string()?;
                regex::Regex::new(&re).map_err(|e| self.error(format!("invalid regexp {re:?}: {e}")))?;
                Stage::Regexp(re)
            }
            "pattern" => Stage::Pattern(self.string()?),
            "line_format" => {
                let text = self.string()?;
                Stage::LineFormat(template(self, text)?)
            }
            "label_format" => {
                let mut out = Vec::new();
                loop {
                    let name = self.ident()?;
                    self.expect(&Tok::Eq, "=")?;
                    let source = match self.c.peek().clone() {
                        Tok::Str(s) => {
                            self.c.next();
                            LabelSource::Template(template(self, s)?)
                        }
                        _ => LabelSource::Label(self.ident()?),
                    };
                    out.push((name, source));
                    if !self.c.eat(&Tok::Comma) {
                        break;
                    }
                }
                Stage::LabelFormat(out)
            }
            "drop" | "keep" => {
                let mut labels = vec![self.ident()?];
                while self.c.eat(&Tok::Comma) {
                    labels.push(self.ident()?);
                }
                if self.c.peek() == &Tok::Eq || self.c.peek() == &Tok::Ne {
                    return Err(self.error(format!("{word} with matchers is not supported")));
                }
                if word == "drop" { Stage::Drop(labels) } else { Stage::Keep(labels) }
            }
            "unwrap" => {
                let name = self.ident()?;
                let conversion = match name.as_str() {
                    "duration" | "duration_seconds" => Some(Unwrap::Duration),
                    "bytes" => Some(Unwrap::Bytes),
                    _ => None,
                };
                match conversion {
                    Some(c) if self.c.eat(&Tok::LParen) => {
                        let label = self.ident()?;
                        self.expect(&Tok::RParen, ")")?;
                        Stage::Unwrap(c, label)
                    }
                    _ => Stage::Unwrap(Unwrap::Number, name),
                }
            }
            other => return Err(self.error(format!("the stage {other:?} is not supported"))),
        })
    }

    fn filter_or(&mut self) -> Result<LabelFilter, ParseError> {
        let mut left = self.filter_and()?;
        while self.eat_word("or") {
            left = LabelFilter::Or(Box::new(left), Box::new(self.filter_and()?));
        }
        Ok(left)
    }

    fn filter_and(&mut self) -> Result<LabelFilter, ParseError> {
        let mut left = self.filter_one()?;
        while self.eat_word("and") || self.c.eat(&Tok::Comma) {
            left = LabelFilter::And(Box::new(left), Box::new(self.filter_one()?));
        }
        Ok(left)
    }

    fn filter_one(&mut self) -> Result<LabelFilter, ParseError> {
        if self.c.eat(&Tok::LParen) {
            let f = self.filter_or()?;
            self.expect(&Tok::RParen, ")")?;
            return Ok(f);
        }
        let label = self.ident()?;
        let op = self.c.next();
        let text_op = match op {
            Tok::Eq => Some(MatchOp::Eq),
            Tok::Ne => Some(MatchOp::Ne),
            Tok::Re => Some(MatchOp::Re),
            Tok::NotRe => Some(MatchOp::NotRe),
            _ => None,
        };
        let compare = match op {
            Tok::Eq | Tok::EqEq => Some(Compare::Eq),
            Tok::Ne => Some(Compare::Ne),
            Tok::Gt => Some(Compare::Gt),
            Tok::Ge => Some(Compare::Ge),
            Tok::Lt => Some(Compare::Lt),
            Tok::Le => Some(Compare::Le),
            _ => None,
        };
        let number = |value, unit| compare.map(|op| LabelFilter::Number { label: label.clone(), op, value, unit });
        let made = match self.c.next() {
            Tok::Str(value) => text_op.map(|op| LabelFilter::Text(Matcher { label: label.clone(), op, value })),
            Tok::Number(n) => number(n, Unwrap::Number),
            Tok::Duration(d) => number(d as f64 / 1e9, Unwrap::Duration),
            Tok::Bytes(b) => number(b, Unwrap::Bytes),
            _ => None,
        };
        made.ok_or_else(|| {
            self.c.back();
            self.unexpected("a string (=, !=, =~, !~) or a number, duration or byte size (==, !=, >, >=, <, <=)")
        })
    }

    /// A metric expression with operators binding at least as tight as `min`.
    fn metric(&mut self, min: u8) -> Result<MetricExpr, ParseError> {
        let mut left = self.metric_primary()?;
        while let Some((power, op)) = binary(self.c.peek()) {
            if power < min {
                break;
            }
            self.c.next();
            let keep = self.eat_word("bool");
            // `^` is right-associative, the rest left.
            let right = self.metric(if op == BinOp::Pow { power } else { power + 1 })?;
            left = MetricExpr::Binary { op, keep, left: Box::new(left), right: Box::new(right) };
        }
        Ok(left)
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, ParseError> {
        let without = match self.c.peek() {
            Tok::Ident(w) if w == "by" => false,
            Tok::Ident(w) if w == "without" => true,
            _ => return Ok(None),
        };
        self.c.next();
        self.expect(&Tok::LParen, "(")?;
        let mut labels = Vec::new();
        while self.c.peek() != &Tok::RParen {
            labels.push(self.ident()?);
            if !self.c.eat(&Tok::Comma) {
                break;
            }
        }
        self.expect(&Tok::RParen, ")")?;
        Ok(Some(Grouping { without, labels }))
    }

    fn metric_primary(&mut self) -> Result<MetricExpr, ParseError> {
        match self.c.peek().clone() {
            Tok::Number(n) => {
                self.c.next();
                Ok(MetricExpr::Number(n))
            }
            Tok::Sub => {
                self.c.next();
                match self.c.next() {
                    Tok::Number(n) => Ok(MetricExpr::Number(-n)),
                    _ => {
                        self.c.back();
                        Err(self.unexpected("a number"))
                    }
                }
            }
            Tok::LParen => {
                self.c.next();
                let e = self.metric(0)?;
                self.expect(&Tok::RParen, ")")?;
                Ok(e)
            }
            Tok::LBrace => Err(self.error("a log query cannot be combined with metric operators: wrap it in a range aggregation such as count_over_time")),
            Tok::Ident(name) => {
                if let Some((_, f)) = RangeFn::NAMES.iter().find(|(n, _)| *n == name) {
                    self.c.next();
                    return self.range_aggregation(*f);
                }
                if let Some((_, f)) = VectorFn::NAMES.iter().find(|(n, _)| *n == name) {
                    self.c.next();
                    return self.vector_aggregation(*f);
                }
                Err(self.error(format!("the function {name:?} is not supported")))
            }
            _ => Err(self.unexpected("a metric query")),
        }
    }

    fn range_aggregation(&mut self, function: RangeFn) -> Result<MetricExpr, ParseError> {
        self.expect(&Tok::LParen, "(")?;
        let param = if function == RangeFn::Quantile {
            let Tok::Number(q) = self.c.next() else {
                self.c.back();
                return Err(self.unexpected("the quantile"));
            };
            self.expect(&Tok::Comma, ",")?;
            Some(q)
        } else {
            None
        };
        let log = self.log_expr()?;
        self.expect(&Tok::LBracket, "[")?;
        let range = match self.c.next() {
            Tok::Duration(d) if d > 0 => d,
            _ => {
                self.c.back();
                return Err(self.unexpected("a range such as 5m"));
            }
        };
        self.expect(&Tok::RBracket, "]")?;
        if self.eat_word("offset") {
            return Err(self.error("offset is not supported"));
        }
        self.expect(&Tok::RParen, ")")?;
        let unwrapped = log.stages.iter().any(|s| matches!(s, Stage::Unwrap(..)));
        if function.unwraps() != unwrapped {
            let name = RangeFn::NAMES.iter().find(|(_, f)| *f == function).map_or("", |(n, _)| n);
            return Err(self.error(if unwrapped {
                format!("invalid aggregation {name} with unwrap")
            } else {
                format!("invalid aggregation {name} without unwrap")
            }));
        }
        let grouping = self.grouping()?;
        Ok(MetricExpr::Range { function, param, log, range, grouping })
    }

    fn vector_aggregation(&mut self, function: VectorFn) -> Result<MetricExpr, ParseError> {
        let mut grouping = self.grouping()?;
        self.expect(&Tok::LParen, "(")?;
        let param = if matches!(function, VectorFn::Topk | VectorFn::Bottomk) {
            let Tok::Number(k) = self.c.next() else {
                self.c.back();
                return Err(self.unexpected("k"));
            };
            self.expect(&Tok::Comma, ",")?;
            Some(k)
        } else {
            None
        };
        let inner = self.metric(0)?;
        self.expect(&Tok::RParen, ")")?;
        if grouping.is_none() {
            grouping = self.grouping()?;
        }
        Ok(MetricExpr::Vector { function, param, grouping, inner: Box::new(inner) })
    }
}

/// A `line_format`/`label_format` template: text with `{{.label}}`; anything
/// else inside `{{ }}` is refused.
fn template(p: &Parser, t: String) -> Result<String, ParseError> {
    let mut rest = t.as_str();
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            return Err(p.error("a template with {{ that is not closed"));
        };
        let inner = rest[open + 2..open + close].trim();
        let ok = inner
            .strip_prefix('.')
            .is_some_and(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '_'));
        if !ok {
            return Err(p.error(format!("template action {{{{{inner}}}}} is not supported (only {{{{.label}}}})")));
        }
        rest = &rest[open + close + 2..];
    }
    Ok(t)
}
