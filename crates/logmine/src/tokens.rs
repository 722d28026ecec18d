//! Splitting a line into masked tokens, reusing one buffer from line to line.

use crate::hash::hash_bytes;
use crate::mask::{WILDCARD, mask_token};

/// The outcome of masking one token.
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
    /// Whether the token reads as a word; see [`is_word`].
    pub(crate) word: bool,
}

/// The masked tokens of the current line, stored back to back in one string.
#[derive(Debug, Default)]
pub(crate) struct TokenizedLine {
    text: String,
    tokens: Vec<Token>,
}

impl TokenizedLine {
    /// Splits `line` at ASCII whitespace and control characters and masks each token, replacing
    /// the previous line.
    ///
    /// Names of weekdays and months next to a masked number are masked as part of a timestamp.
    /// A run of equal masked tokens, a list of values as in `blk_<*> blk_<*> blk_<*>`, shrinks to
    /// one token, so that lists of any length share a template.
    pub(crate) fn tokenize(&mut self, line: &str) {
        self.text.clear();
        self.tokens.clear();
        let bytes = line.as_bytes();
        let mut date_names = 0usize;
        let mut at = 0;
        while at < bytes.len() {
            if is_separator(bytes[at]) {
                at += 1;
                continue;
            }
            let raw_start = at;
            let mut plain = true;
            while at < bytes.len() && !is_separator(bytes[at]) {
                plain &= !needs_masking(bytes[at]);
                at += 1;
            }
            // Separators are ASCII, so both ends are character boundaries.
            let raw = &line[raw_start..at];
            let start = self.text.len();
            let masked = if plain {
                self.text.push_str(raw);
                false
            } else {
                mask_token(raw, &mut self.text)
            };
            let token = &self.text[start..];
            let kind = if !masked {
                TokenKind::Constant
            } else if token == WILDCARD {
                TokenKind::Wildcard
            } else {
                TokenKind::Masked
            };
            let hash = hash_bytes(token.as_bytes());
            if kind != TokenKind::Constant && self.repeats_last(kind, hash, token) {
                self.text.truncate(start);
                continue;
            }
            date_names += usize::from(kind == TokenKind::Constant && is_date_name(token));
            self.tokens.push(Token {
                start: offset(start),
                end: offset(self.text.len()),
                hash,
                kind,
                word: kind != TokenKind::Wildcard && is_word(token),
            });
        }
        if date_names > 0 {
            self.mask_date_names();
            self.collapse_repeats();
        }
    }

    /// Returns whether a masked token equals the last token pushed.
    fn repeats_last(&self, kind: TokenKind, hash: u64, text: &str) -> bool {
        self.tokens
            .last()
            .is_some_and(|last| last.kind == kind && last.hash == hash && self.text(last) == text)
    }

    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub(crate) fn text(&self, token: &Token) -> &str {
        &self.text[token.start as usize..token.end as usize]
    }

    /// Masks names of weekdays and months that stand next to a masked number, as in
    /// `at Sun Jul  3 10:05:25 2005`: they belong to a timestamp.
    fn mask_date_names(&mut self) {
        for index in 0..self.tokens.len() {
            if !self.is_date_name(index) {
                continue;
            }
            let wildcard_at = |at: usize| {
                self.tokens
                    .get(at)
                    .is_some_and(|token| token.kind == TokenKind::Wildcard)
            };
            let before = index > 0 && wildcard_at(index - 1);
            let after =
                wildcard_at(index + 1) || (self.is_date_name(index + 1) && wildcard_at(index + 2));
            if before || after {
                self.replace_with_wildcard(index);
            }
        }
    }

    fn is_date_name(&self, index: usize) -> bool {
        self.tokens.get(index).is_some_and(|token| {
            token.kind == TokenKind::Constant && is_date_name(self.text(token))
        })
    }

    fn replace_with_wildcard(&mut self, index: usize) {
        let start = offset(self.text.len());
        self.text.push_str(WILDCARD);
        self.tokens[index] = Token {
            start,
            end: offset(self.text.len()),
            hash: hash_bytes(WILDCARD.as_bytes()),
            kind: TokenKind::Wildcard,
            word: false,
        };
    }

    /// Drops every masked token that repeats the token before it.
    fn collapse_repeats(&mut self) {
        let mut retained = 0;
        for index in 0..self.tokens.len() {
            let token = self.tokens[index];
            let repeat = retained > 0 && {
                let previous = &self.tokens[retained - 1];
                token.kind != TokenKind::Constant
                    && previous.kind == token.kind
                    && previous.hash == token.hash
                    && self.text(previous) == self.text(&token)
            };
            if !repeat {
                self.tokens[retained] = token;
                retained += 1;
            }
        }
        self.tokens.truncate(retained);
    }
}

#[cfg(test)]
impl TokenizedLine {
    /// Tokenizes `text` into a new line, for tests.
    pub(crate) fn of(text: &str) -> Self {
        let mut line = Self::default();
        line.tokenize(text);
        line
    }
}

/// Returns whether `token` reads as a word: after dropping enclosing punctuation (`(reserved)`,
/// `sent,`) and a key (`user=root`, `isOverlap:false`), only letters remain, possibly around
/// wildcards (`alt<*>`, `SOCKS<*>`).
///
/// Two different words at one position are taken for two different events rather than for two
/// values of a variable: masking already turned numbers, ids, addresses and paths into
/// wildcards, and what is left that differs is mostly wording.
pub(crate) fn is_word(token: &str) -> bool {
    let bytes = token.as_bytes();
    let mut start = 0;
    let mut end = bytes.len();
    while start < end && matches!(bytes[start], b'(' | b'[' | b'"' | b'\'') {
        start += 1;
    }
    while end > start && is_closing(bytes[end - 1]) {
        end -= 1;
    }
    if let Some(key_end) = bytes[start..end]
        .iter()
        .rposition(|&c| c == b'=' || c == b':')
    {
        start += key_end + 1;
    }
    while end > start && is_closing(bytes[end - 1]) {
        end -= 1;
    }

    let value = &bytes[start..end];
    let mut letters = false;
    let mut at = 0;
    while at < value.len() {
        if value[at..].starts_with(WILDCARD.as_bytes()) {
            at += WILDCARD.len();
        } else if value[at].is_ascii_alphabetic() {
            letters = true;
            at += 1;
        } else if value[at] >= 0x80 {
            // Cuts above fall on ASCII bytes, so `at` starts a character here.
            let c = token[start + at..]
                .chars()
                .next()
                .expect("at is inside the value");
            if !c.is_alphabetic() {
                return false;
            }
            letters = true;
            at += c.len_utf8();
        } else {
            return false;
        }
    }
    letters
}

fn is_closing(c: u8) -> bool {
    matches!(
        c,
        b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b']' | b'"' | b'\''
    )
}

/// Returns whether `c` ends a token: ASCII whitespace and the other ASCII control characters.
fn is_separator(c: u8) -> bool {
    c <= b' ' || c == 0x7f
}

/// Returns whether `c` can start something to mask: a digit or a path separator.
fn needs_masking(c: u8) -> bool {
    c.is_ascii_digit() || c == b'/' || c == b'\\'
}

/// Returns whether `token` is an English name of a weekday or month, abbreviated or in full, as
/// timestamps print them.
fn is_date_name(token: &str) -> bool {
    if !(3..=9).contains(&token.len()) || !token.starts_with(|c: char| c.is_ascii_uppercase()) {
        return false;
    }
    matches!(
        token,
        "Mon"
            | "Tue"
            | "Wed"
            | "Thu"
            | "Fri"
            | "Sat"
            | "Sun"
            | "Monday"
            | "Tuesday"
            | "Wednesday"
            | "Thursday"
            | "Friday"
            | "Saturday"
            | "Sunday"
            | "Jan"
            | "Feb"
            | "Mar"
            | "Apr"
            | "May"
            | "Jun"
            | "Jul"
            | "Aug"
            | "Sep"
            | "Oct"
            | "Nov"
            | "Dec"
            | "January"
            | "February"
            | "March"
            | "April"
            | "June"
            | "July"
            | "August"
            | "September"
            | "October"
            | "November"
            | "December"
            | "MON"
            | "TUE"
            | "WED"
            | "THU"
            | "FRI"
            | "SAT"
            | "SUN"
            | "JAN"
            | "FEB"
            | "MAR"
            | "APR"
            | "MAY"
            | "JUN"
            | "JUL"
            | "AUG"
            | "SEP"
            | "OCT"
            | "NOV"
            | "DEC"
    )
}

/// Converts a byte offset of the masked line; `MinerConfig::validate` caps line length so that
/// masked lines fit in `u32`.
fn offset(value: usize) -> u32 {
    u32::try_from(value).expect("masked line length is validated to fit in u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &TokenizedLine) -> Vec<&str> {
        line.tokens().iter().map(|token| line.text(token)).collect()
    }

    #[test]
    fn tokenize_masks_each_token() {
        let mut line = TokenizedLine::default();
        line.tokenize("Received block blk_-42  of size 67108864 from /10.0.0.1");
        assert_eq!(
            texts(&line),
            [
                "Received", "block", "blk_<*>", "of", "size", "<*>", "from", "/<*>"
            ]
        );
        assert_eq!(line.tokens()[0].kind, TokenKind::Constant);
        assert_eq!(line.tokens()[2].kind, TokenKind::Masked);
        assert_eq!(line.tokens()[5].kind, TokenKind::Wildcard);
    }

    #[test]
    fn tokenize_replaces_previous_line() {
        let mut line = TokenizedLine::default();
        line.tokenize("a b c");
        line.tokenize("d");
        assert_eq!(texts(&line), ["d"]);
    }

    #[test]
    fn tokenize_accepts_empty_line() {
        let mut line = TokenizedLine::default();
        line.tokenize(" \t ");
        assert!(line.tokens().is_empty());
    }

    #[test]
    fn tokenize_masks_date_names_in_timestamps() {
        let mut line = TokenizedLine::default();
        line.tokenize("connection at Sun Jul  3 10:05:25 2005 from May");
        assert_eq!(texts(&line), ["connection", "at", "<*>", "from", "May"]);
    }

    #[test]
    fn tokenize_collapses_lists_of_values() {
        let mut line = TokenizedLine::default();
        line.tokenize("delete blk_1 blk_2 blk_3 now 4 5 6");
        assert_eq!(texts(&line), ["delete", "blk_<*>", "now", "<*>"]);
    }

    #[test]
    fn words_allow_keys_punctuation_and_wildcards() {
        for word in [
            "sent,",
            "(reserved)",
            "user=root",
            "isOverlap:false,",
            "alt<*>",
            "Größe",
        ] {
            assert!(is_word(word), "{word} is a word");
        }
        for other in [
            "<*>",
            "mask=<*>",
            "com.android.phone",
            "ws=WorkSource{<*>},",
            "a_b",
            "x=",
        ] {
            assert!(!is_word(other), "{other} is not a word");
        }
    }
}
