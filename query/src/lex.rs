//! What the query languages' parsers share (TraceQL, LogQL): a cursor over
//! tokens with their columns, and quoted strings.

/// Tokens with their 1-based columns; the last one is the end of the text.
pub struct Cursor<T> {
    toks: Vec<(T, usize)>,
    at: usize,
}

impl<T: Clone + PartialEq> Cursor<T> {
    /// `toks` must end with an end-of-text token, which the cursor never passes.
    pub fn new(toks: Vec<(T, usize)>) -> Self {
        Cursor { toks, at: 0 }
    }

    pub fn peek(&self) -> &T {
        &self.toks[self.at].0
    }

    /// The token `n` after the current one (the end of the text past it).
    pub fn peek_at(&self, n: usize) -> &T {
        &self.toks[(self.at + n).min(self.toks.len() - 1)].0
    }

    pub fn next(&mut self) -> T {
        let t = self.toks[self.at].0.clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    /// Steps back over the token just read.
    pub fn back(&mut self) {
        self.at = self.at.saturating_sub(1);
    }

    pub fn eat(&mut self, t: &T) -> bool {
        let yes = self.peek() == t;
        if yes {
            self.next();
        }
        yes
    }

    /// Where the current token starts.
    pub fn column(&self) -> usize {
        self.toks[self.at].1
    }
}

/// The quoted string at the start of `chars` (`"…"` with escapes, or a raw
/// `` `…` ``): its value and its length. Escapes other than `\n`, `\t`,
/// `\r`, `\\` and `\"` are kept as written when `keep_unknown` (regular
/// expressions in LogQL), refused otherwise.
pub fn quoted(chars: &[char], keep_unknown: bool) -> Result<(String, usize), String> {
    let quote = chars[0];
    let mut out = String::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((out, i + 1)),
            '\\' if quote == '"' => {
                let e = *chars.get(i + 1).ok_or("an escape at the end of a string")?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '\\' | '"' => out.push(e),
                    other if keep_unknown => {
                        out.push('\\');
                        out.push(other);
                    }
                    other => return Err(format!("unknown escape \\{other}")),
                }
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("a string that is not closed".into())
}
