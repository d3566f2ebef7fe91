//! Alert label and annotation templates in Go's `text/template` syntax, as
//! Prometheus expands them: `{{ $labels.instance }}`, `{{ $value }}`,
//! `{{ $externalLabels.x }}`, `{{ .Labels.x }}`, pipelines
//! (`{{ $value | humanize }}`), `if`/`else`/`end`, variables, comments,
//! `{{-`/`-}}` trimming, and Prometheus's functions (`humanize`,
//! `humanize1024`, `humanizeDuration`, `humanizePercentage`,
//! `humanizeTimestamp`, `printf`, `toUpper`, `toLower`, `title`,
//! `reReplaceAll`, `match`, `stripPort`, `stripDomain`) with Go's `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`, `len`, `index`, `print`.
//!
//! A missing label reads as the empty string (Prometheus expands with
//! `missingkey=zero`). A template that fails while expanding yields
//! `<error expanding template: …>`, as in Prometheus. Prometheus's
//! functions that read the store from a template (`query`, `first`,
//! `label`, `value`, `sortByLabel`) parse but fail when expanded.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::gofmt;

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

/// What a template is expanded with.
pub struct Data<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub external_labels: &'a BTreeMap<String, String>,
    pub external_url: &'a str,
    pub value: f64,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Print(Pipeline),
    If { branches: Vec<(Pipeline, Vec<Node>)>, otherwise: Vec<Node> },
}

#[derive(Clone, Debug)]
struct Pipeline {
    /// `$x :=` or `$x =`.
    assign: Option<String>,
    commands: Vec<Vec<Operand>>,
}

#[derive(Clone, Debug)]
enum Operand {
    Str(String),
    Num(f64),
    Bool(bool),
    /// `$name.f.g` (`$` alone is the data).
    Var(String, Vec<String>),
    /// `.f.g` (`.` alone is the data).
    Field(Vec<String>),
    Func(String),
    Sub(Box<Pipeline>),
}

/// A template value.
#[derive(Clone, Debug)]
enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    Data,
    Nil,
}

const FUNCTIONS: &[&str] = &[
    // Go's.
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "slice",
    "call", // Prometheus's.
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "now",
];

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

type Result<T> = std::result::Result<T, TemplateError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(TemplateError(msg.into()))
}

impl Template {
    /// Parses `text`; errors read like Go's (`function "x" not defined`).
    pub fn parse(text: &str) -> Result<Template> {
        let tokens = split(text)?;
        let mut at = 0;
        let (nodes, end) = parse_nodes(&tokens, &mut at)?;
        if let Some(end) = end {
            return err(format!("unexpected {{{{{end}}}}}"));
        }
        Ok(Template { nodes })
    }

    /// Expands with `data`; a failure reads `<error expanding template: …>`.
    pub fn expand(&self, data: &Data) -> String {
        let mut out = String::new();
        let mut vars = Vec::new();
        match run(&self.nodes, data, &mut vars, &mut out) {
            Ok(()) => out,
            Err(e) => format!("<error expanding template: {}>", e.0),
        }
    }
}

/// Text and actions (the text inside `{{ }}`, trimmed), with trim markers
/// applied to the text around them.
#[derive(Debug)]
enum Token {
    Text(String),
    Action(String),
}

fn split(text: &str) -> Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let mut before = &rest[..open];
        let mut inner = &rest[open + 2..];
        if let Some(stripped) = inner.strip_prefix("- ").or_else(|| inner.strip_prefix("-\t")) {
            before = before.trim_end();
            inner = stripped;
        }
        let close = find_close(inner).ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut action = &inner[..close];
        rest = &inner[close + 2..];
        if let Some(stripped) = action.strip_suffix(" -").or_else(|| action.strip_suffix("\t-")) {
            action = stripped;
            rest = rest.trim_start();
        }
        if !before.is_empty() {
            tokens.push(Token::Text(before.to_owned()));
        }
        let action = action.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            tokens.push(Token::Action(action.to_owned()));
        }
    }
    if !rest.is_empty() {
        tokens.push(Token::Text(rest.to_owned()));
    }
    Ok(tokens)
}

/// The `}}` that closes an action, outside string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote = None;
    while i + 1 < b.len() || (quote.is_none() && i < b.len()) {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None if b[i] == b'"' || b[i] == b'`' => quote = Some(b[i]),
            None if b[i] == b'}' && b.get(i + 1) == Some(&b'}') => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// Nodes up to an `else…` or `end`, which is returned.
fn parse_nodes(tokens: &[Token], at: &mut usize) -> Result<(Vec<Node>, Option<String>)> {
    let mut nodes = Vec::new();
    while *at < tokens.len() {
        let token = &tokens[*at];
        *at += 1;
        match token {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Action(a) if a == "end" || a == "else" || a.starts_with("else ") => {
                return Ok((nodes, Some(a.clone())));
            }
            Token::Action(a) if a.starts_with("if ") => nodes.push(parse_if(&a[3..], tokens, at)?),
            Token::Action(a) => {
                let word = a.split_whitespace().next().unwrap_or("");
                if ["range", "with", "define", "template", "block", "break", "continue"].contains(&word) {
                    return err(format!("{{{{{word}}}}} is not supported in alert templates"));
                }
                nodes.push(Node::Print(parse_pipeline(a)?));
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(condition: &str, tokens: &[Token], at: &mut usize) -> Result<Node> {
    let mut branches = vec![];
    let mut condition = parse_pipeline(condition)?;
    loop {
        let (body, end) = parse_nodes(tokens, at)?;
        branches.push((condition, body));
        match end.as_deref() {
            Some("end") => return Ok(Node::If { branches, otherwise: vec![] }),
            Some("else") => {
                let (otherwise, end) = parse_nodes(tokens, at)?;
                if end.as_deref() != Some("end") {
                    return err("{{else}} without {{end}}");
                }
                return Ok(Node::If { branches, otherwise });
            }
            Some(e) if e.starts_with("else if ") => condition = parse_pipeline(&e[8..])?,
            _ => return err("unexpected EOF: {{if}} without {{end}}"),
        }
    }
}

fn parse_pipeline(text: &str) -> Result<Pipeline> {
    let mut lexer = Lexer { s: text.as_bytes(), i: 0 };
    let pipeline = lexer.pipeline()?;
    lexer.skip_space();
    if lexer.i < lexer.s.len() {
        return err(format!("unexpected {:?} in action", &text[lexer.i..]));
    }
    Ok(pipeline)
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_space(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn word(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || self.s[self.i] == b'_') {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn fields(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while self.peek() == Some(b'.') && self.s.get(self.i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        {
            self.i += 1;
            out.push(self.word());
        }
        out
    }

    fn pipeline(&mut self) -> Result<Pipeline> {
        self.skip_space();
        let mut assign = None;
        if self.peek() == Some(b'$') {
            let save = self.i;
            self.i += 1;
            let name = self.word();
            self.skip_space();
            let rest = &self.s[self.i..];
            if rest.starts_with(b":=") || (rest.starts_with(b"=") && !rest.starts_with(b"==")) {
                self.i += if rest.starts_with(b":=") { 2 } else { 1 };
                assign = Some(name);
            } else {
                self.i = save;
            }
        }
        let mut commands = vec![self.command()?];
        loop {
            self.skip_space();
            if self.peek() == Some(b'|') {
                self.i += 1;
                commands.push(self.command()?);
            } else {
                break;
            }
        }
        Ok(Pipeline { assign, commands })
    }

    fn command(&mut self) -> Result<Vec<Operand>> {
        let mut operands = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None | Some(b'|') | Some(b')') => break,
                _ => operands.push(self.operand()?),
            }
        }
        if operands.is_empty() {
            return err("missing value for command");
        }
        Ok(operands)
    }

    fn operand(&mut self) -> Result<Operand> {
        let c = self.peek().unwrap_or(b' ');
        let operand = match c {
            b'"' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len() && self.s[self.i] != b'"' {
                    if self.s[self.i] == b'\\' {
                        self.i += 1;
                    }
                    self.i += 1;
                }
                self.i += 1;
                let literal = std::str::from_utf8(&self.s[start..self.i.min(self.s.len())]).unwrap_or("\"\"");
                Operand::Str(
                    serde_json::from_str(literal)
                        .map_err(|_| TemplateError(format!("bad string literal {literal}")))?,
                )
            }
            b'`' => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b'`' {
                    self.i += 1;
                }
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                Operand::Str(text)
            }
            b'$' => {
                self.i += 1;
                let name = self.word();
                Operand::Var(name, self.fields())
            }
            b'.' => {
                let fields = self.fields();
                if fields.is_empty() {
                    self.i += 1;
                }
                Operand::Field(fields)
            }
            b'(' => {
                self.i += 1;
                let inner = self.pipeline()?;
                self.skip_space();
                if self.peek() != Some(b')') {
                    return err("unclosed left paren");
                }
                self.i += 1;
                Operand::Sub(Box::new(inner))
            }
            c if c.is_ascii_digit() || c == b'-' || c == b'+' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && (self.s[self.i].is_ascii_alphanumeric() || b"._+-".contains(&self.s[self.i]))
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                Operand::Num(text.parse().map_err(|_| TemplateError(format!("bad number syntax: {text:?}")))?)
            }
            c if c.is_ascii_alphabetic() => {
                let word = self.word();
                match word.as_str() {
                    "true" => Operand::Bool(true),
                    "false" => Operand::Bool(false),
                    "nil" => return err("nil is not a command"),
                    _ if FUNCTIONS.contains(&word.as_str()) => Operand::Func(word),
                    _ => return err(format!("function {word:?} not defined")),
                }
            }
            c => return err(format!("unexpected {:?} in operand", c as char)),
        };
        Ok(operand)
    }
}

fn run(nodes: &[Node], data: &Data, vars: &mut Vec<(String, Val)>, out: &mut String) -> Result<()> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(p) => {
                let v = pipeline(p, data, vars)?;
                if p.assign.is_none() {
                    print(&v, out);
                }
            }
            Node::If { branches, otherwise } => {
                let depth = vars.len();
                let mut taken = false;
                for (condition, body) in branches {
                    if truth(&pipeline(condition, data, vars)?) {
                        run(body, data, vars, out)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    run(otherwise, data, vars, out)?;
                }
                vars.truncate(depth);
            }
        }
    }
    Ok(())
}

fn print(v: &Val, out: &mut String) {
    match v {
        Val::Str(s) => out.push_str(s),
        Val::Num(n) => out.push_str(&gofmt::format_v(*n)),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Map(m) => {
            out.push_str("map[");
            for (i, (k, v)) in m.iter().enumerate() {
                let _ = write!(out, "{}{k}:{v}", if i > 0 { " " } else { "" });
            }
            out.push(']');
        }
        Val::Data => out.push_str("{...}"),
        Val::Nil => out.push_str("<no value>"),
    }
}

fn truth(v: &Val) -> bool {
    match v {
        Val::Str(s) => !s.is_empty(),
        Val::Num(n) => *n != 0.0,
        Val::Bool(b) => *b,
        Val::Map(m) => !m.is_empty(),
        Val::Data => true,
        Val::Nil => false,
    }
}

fn pipeline(p: &Pipeline, data: &Data, vars: &mut Vec<(String, Val)>) -> Result<Val> {
    let mut piped: Option<Val> = None;
    for command in &p.commands {
        piped = Some(command_value(command, piped, data, vars)?);
    }
    let v = piped.unwrap_or(Val::Nil);
    if let Some(name) = &p.assign {
        vars.push((name.clone(), v.clone()));
    }
    Ok(v)
}

fn command_value(ops: &[Operand], piped: Option<Val>, data: &Data, vars: &mut Vec<(String, Val)>) -> Result<Val> {
    if let Operand::Func(name) = &ops[0] {
        let mut args = ops[1..].iter().map(|o| operand_value(o, data, vars)).collect::<Result<Vec<_>>>()?;
        args.extend(piped);
        return functions::call(name, args, data);
    }
    if ops.len() > 1 || piped.is_some() {
        return err("can't give argument to non-function");
    }
    operand_value(&ops[0], data, vars)
}

fn operand_value(o: &Operand, data: &Data, vars: &mut Vec<(String, Val)>) -> Result<Val> {
    match o {
        Operand::Str(s) => Ok(Val::Str(s.clone())),
        Operand::Num(n) => Ok(Val::Num(*n)),
        Operand::Bool(b) => Ok(Val::Bool(*b)),
        Operand::Func(name) => functions::call(name, vec![], data),
        Operand::Sub(p) => pipeline(p, data, vars),
        Operand::Field(fields) => walk(Val::Data, fields, data),
        Operand::Var(name, fields) => {
            let base = match name.as_str() {
                "" => Val::Data,
                "labels" => Val::Map(data.labels.clone()),
                "externalLabels" => Val::Map(data.external_labels.clone()),
                "externalURL" => Val::Str(data.external_url.to_owned()),
                "value" => Val::Num(data.value),
                _ => match vars.iter().rev().find(|(n, _)| n == name) {
                    Some((_, v)) => v.clone(),
                    None => return err(format!("undefined variable \"${name}\"")),
                },
            };
            walk(base, fields, data)
        }
    }
}

fn walk(mut v: Val, fields: &[String], data: &Data) -> Result<Val> {
    for f in fields {
        v = match v {
            Val::Data => match f.as_str() {
                "Labels" => Val::Map(data.labels.clone()),
                "ExternalLabels" => Val::Map(data.external_labels.clone()),
                "ExternalURL" => Val::Str(data.external_url.to_owned()),
                "Value" => Val::Num(data.value),
                _ => return err(format!("can't evaluate field {f}")),
            },
            Val::Map(m) => Val::Str(m.get(f).cloned().unwrap_or_default()),
            _ => return err(format!("can't evaluate field {f} in a non-struct value")),
        };
    }
    Ok(v)
}

mod functions;
#[cfg(test)]
mod tests;
