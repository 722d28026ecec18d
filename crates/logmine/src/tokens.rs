//! Splitting a line into masked tokens, reusing one buffer from line to line.

use crate::hash::hash_bytes;
use crate::mask::{WILDCARD, mask_token};

/// What masking left of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Nothing was masked.
    Constant,
    /// Part of the token was masked, as in `blk_<*>`.
    Masked,
    /// The whole token was masked: it is exactly [`WILDCARD`].
    Wildcard,
}

/// One masked token: a range of [`TokenizedLine::text`] and its hash.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Token {
    start: u32,
    end: u32,
    pub(crate) hash: u64,
    pub(crate) kind: TokenKind,
}

/// The masked tokens of the current line, stored back to back in one string.
#[derive(Debug, Default)]
pub(crate) struct TokenizedLine {
    text: String,
    tokens: Vec<Token>,
}

impl TokenizedLine {
    /// Splits `line` at ASCII whitespace and masks each token, replacing the previous line.
    pub(crate) fn tokenize(&mut self, line: &str) {
        self.text.clear();
        self.tokens.clear();
        for raw in line.split_ascii_whitespace() {
            let start = self.text.len();
            let masked = mask_token(raw, &mut self.text);
            let token = &self.text[start..];
            let kind = if token == WILDCARD {
                TokenKind::Wildcard
            } else if masked {
                TokenKind::Masked
            } else {
                TokenKind::Constant
            };
            self.tokens.push(Token {
                start: offset(start),
                end: offset(self.text.len()),
                hash: hash_bytes(token.as_bytes()),
                kind,
            });
        }
    }

    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub(crate) fn text(&self, token: &Token) -> &str {
        &self.text[token.start as usize..token.end as usize]
    }
}

/// Converts a byte offset of the masked line; lines are capped far below 4 GiB by
/// `MinerConfig::max_line_bytes` validation, and masking never lengthens a line by more than
/// three bytes per byte.
fn offset(value: usize) -> u32 {
    u32::try_from(value).expect("masked line length is validated to fit in u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_masks_each_token() {
        let mut line = TokenizedLine::default();
        line.tokenize("Received block blk_-42  of size 67108864 from /10.0.0.1");
        let texts: Vec<&str> = line.tokens().iter().map(|token| line.text(token)).collect();
        assert_eq!(texts, ["Received", "block", "blk_<*>", "of", "size", "<*>", "from", "/<*>"]);
        assert_eq!(line.tokens()[0].kind, TokenKind::Constant);
        assert_eq!(line.tokens()[2].kind, TokenKind::Masked);
        assert_eq!(line.tokens()[5].kind, TokenKind::Wildcard);
    }

    #[test]
    fn tokenize_replaces_previous_line() {
        let mut line = TokenizedLine::default();
        line.tokenize("a b c");
        line.tokenize("d");
        assert_eq!(line.tokens().len(), 1);
        assert_eq!(line.text(&line.tokens()[0]), "d");
    }

    #[test]
    fn tokenize_accepts_empty_line() {
        let mut line = TokenizedLine::default();
        line.tokenize(" \t ");
        assert!(line.tokens().is_empty());
    }
}
