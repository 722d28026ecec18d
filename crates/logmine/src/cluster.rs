//! A cluster: the lines that share one template, and the template they share.

use crate::mask::WILDCARD;
use crate::miner::TemplateId;
use crate::tokens::{Token, TokenKind, TokenizedLine};
use crate::tree::NodeId;

/// One token of a template: a range of the template text, or a wildcard.
#[derive(Debug, Clone, Copy)]
struct TemplateToken {
    start: u32,
    end: u32,
    hash: u64,
    wildcard: bool,
    word: bool,
}

/// The fit of a line to a template of the same length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fit {
    /// Constant template tokens that the line repeats at the same position.
    pub(crate) matched: usize,
    /// Wildcard positions of the template.
    pub(crate) wildcards: usize,
}

#[derive(Debug)]
pub(crate) struct Cluster {
    pub(crate) id: TemplateId,
    pub(crate) count: u64,
    pub(crate) leaf: NodeId,
    text: String,
    tokens: Vec<TemplateToken>,
    wildcards: usize,
}

impl Cluster {
    /// Creates a cluster whose template is the masked `line`.
    pub(crate) fn new(id: TemplateId, line: &TokenizedLine, leaf: NodeId) -> Self {
        let mut text = String::new();
        let mut tokens = Vec::with_capacity(line.tokens().len());
        for token in line.tokens() {
            if !text.is_empty() {
                text.push(' ');
            }
            let start = text.len();
            text.push_str(line.text(token));
            tokens.push(TemplateToken {
                start: offset(start),
                end: offset(text.len()),
                hash: token.hash,
                wildcard: token.kind == TokenKind::Wildcard,
                word: token.word,
            });
        }
        let wildcards = tokens.iter().filter(|token| token.wildcard).count();
        Self {
            id,
            count: 1,
            leaf,
            text,
            tokens,
            wildcards,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Number of template positions that are not wildcards.
    pub(crate) fn constants(&self) -> usize {
        self.tokens.len() - self.wildcards
    }

    /// Compares `line`, which has as many tokens as the template, position by position.
    ///
    /// Returns `None` as soon as the line has a different word at a position where the template
    /// has a word, because two wordings are two events. Also returns `None` once more than
    /// `max_mismatches` constant positions differ.
    pub(crate) fn fit(&self, line: &TokenizedLine, max_mismatches: usize) -> Option<Fit> {
        let mut mismatches = 0;
        for (template, token) in self.tokens.iter().zip(line.tokens()) {
            if template.wildcard || self.same(template, token, line) {
                continue;
            }
            if template.word && token.word {
                return None;
            }
            mismatches += 1;
            if mismatches > max_mismatches {
                return None;
            }
        }
        Some(Fit {
            matched: self.constants() - mismatches,
            wildcards: self.wildcards,
        })
    }

    /// Turns every constant position where `line` differs into a wildcard.
    ///
    /// Returns whether the template changed.
    pub(crate) fn merge(&mut self, line: &TokenizedLine) -> bool {
        let widened: Vec<bool> = self
            .tokens
            .iter()
            .zip(line.tokens())
            .map(|(template, token)| !template.wildcard && !self.same(template, token, line))
            .collect();
        if !widened.contains(&true) {
            return false;
        }
        self.rebuild(&widened);
        true
    }

    /// Rewrites the text with the `widened` positions as wildcards.
    fn rebuild(&mut self, widened: &[bool]) {
        let mut text = String::with_capacity(self.text.len());
        for (index, token) in self.tokens.iter_mut().enumerate() {
            if !text.is_empty() {
                text.push(' ');
            }
            let start = text.len();
            if widened[index] || token.wildcard {
                text.push_str(WILDCARD);
                token.wildcard = true;
                token.word = false;
            } else {
                text.push_str(&self.text[token.start as usize..token.end as usize]);
            }
            token.start = offset(start);
            token.end = offset(text.len());
        }
        self.text = text;
        self.wildcards = self.tokens.iter().filter(|token| token.wildcard).count();
    }

    /// Returns whether the template token and the line token are the same text.
    fn same(&self, template: &TemplateToken, token: &Token, line: &TokenizedLine) -> bool {
        template.hash == token.hash && self.token_text(template) == line.text(token)
    }

    fn token_text(&self, token: &TemplateToken) -> &str {
        &self.text[token.start as usize..token.end as usize]
    }
}

fn offset(value: usize) -> u32 {
    u32::try_from(value).expect("template length is bounded by the validated max_line_bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenized(text: &str) -> TokenizedLine {
        TokenizedLine::of(text)
    }

    #[test]
    fn cluster_text_joins_masked_tokens() {
        let cluster = Cluster::new(TemplateId(1), &tokenized("got  7 items"), 0);
        assert_eq!(cluster.text(), "got <*> items");
    }

    #[test]
    fn fit_counts_matches_and_wildcards() {
        let cluster = Cluster::new(TemplateId(1), &tokenized("open file.txt 3 now"), 0);
        let fit = cluster.fit(&tokenized("open disk.img 9 now"), 4);
        assert_eq!(
            fit,
            Some(Fit {
                matched: 2,
                wildcards: 1
            })
        );
    }

    #[test]
    fn fit_rejects_different_words() {
        let cluster = Cluster::new(TemplateId(1), &tokenized("VM Resumed (Lifecycle Event)"), 0);
        assert_eq!(
            cluster.fit(&tokenized("VM Paused (Lifecycle Event)"), 4),
            None
        );
    }

    #[test]
    fn fit_stops_past_allowed_mismatches() {
        let cluster = Cluster::new(TemplateId(1), &tokenized("a.1 b.1 c.1 d"), 0);
        assert!(cluster.fit(&tokenized("a.x b.x c.1 d"), 2).is_some());
        assert_eq!(cluster.fit(&tokenized("a.x b.x c.x d"), 2), None);
    }

    #[test]
    fn merge_widens_differing_positions() {
        let mut cluster = Cluster::new(TemplateId(1), &tokenized("user alice logged in"), 0);
        assert!(cluster.merge(&tokenized("user bob logged in")));
        assert_eq!(cluster.text(), "user <*> logged in");
        assert!(!cluster.merge(&tokenized("user carol logged in")));
        let fit = cluster.fit(&tokenized("user dave logged in"), 0);
        assert_eq!(
            fit,
            Some(Fit {
                matched: 3,
                wildcards: 1
            })
        );
    }
}
