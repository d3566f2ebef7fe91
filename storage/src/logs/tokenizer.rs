//! The body tokenizer: splits on anything that is not a letter, a digit or
//! `_`, so that `user_id=42 GET /api/v1/orders` yields `user_id`, `42`,
//! `get`, `api`, `v1`, `orders`. Identifiers stay whole, paths and dotted
//! names split into their parts (a phrase query finds them again), and the
//! tokens are lower-cased by the filter chain in [`super::schema`].

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

#[derive(Clone, Default)]
pub struct CodeTokenizer {
    token: Token,
}

pub struct CodeTokenStream<'a> {
    text: &'a str,
    pos: usize,
    token: &'a mut Token,
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        self.token.reset();
        CodeTokenStream { text, pos: 0, token: &mut self.token }
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let rest = &self.text[self.pos..];
        let Some(start) = rest.find(is_word) else {
            self.pos = self.text.len();
            return false;
        };
        let from = self.pos + start;
        let len = self.text[from..].find(|c: char| !is_word(c)).unwrap_or(self.text.len() - from);
        let to = from + len;
        self.pos = to;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.token.position.wrapping_add(1);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut t = CodeTokenizer::default();
        let mut s = t.token_stream(text);
        let mut out = Vec::new();
        while s.advance() {
            let k = s.token();
            out.push((k.text.clone(), k.position, k.offset_from, k.offset_to));
        }
        out
    }

    #[test]
    fn identifiers_stay_whole_paths_split() {
        let got: Vec<_> = tokens("user_id=42 GET /api/v1/orders, é-ok").into_iter().map(|t| t.0).collect();
        assert_eq!(got, ["user_id", "42", "GET", "api", "v1", "orders", "é", "ok"]);
    }

    #[test]
    fn positions_and_offsets() {
        assert_eq!(tokens("  a.b "), [("a".into(), 0, 2, 3), ("b".into(), 1, 4, 5)]);
        assert!(tokens(" -- ").is_empty());
    }
}
