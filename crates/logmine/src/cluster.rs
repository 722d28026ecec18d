//! A cluster: the lines that share one template, and the template they share.

use crate::mask::WILDCARD;
use crate::miner::TemplateId;
use crate::tokens::{TokenKind, TokenizedLine};
use crate::tree::NodeId;

/// One token of a template: a range of the template text, or a wildcard.
#[derive(Debug, Clone, Copy)]
struct TemplateToken {
    start: u32,
    end: u32,
    hash: u64,
    wildcard: bool,
}

/// How well a line fits a template of the same length.
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
            });
        }
        Self {
            id,
            count: 1,
            leaf,
            text,
            tokens,
        }
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Compares `line`, which has as many tokens as the template, position by position.
    pub(crate) fn fit(&self, line: &TokenizedLine) -> Fit {
        let mut fit = Fit {
            matched: 0,
            wildcards: 0,
        };
        for (template, token) in self.tokens.iter().zip(line.tokens()) {
            if template.wildcard {
                fit.wildcards += 1;
            } else if template.hash == token.hash && self.token_text(template) == line.text(token)
            {
                fit.matched += 1;
            }
        }
        fit
    }

    /// Turns every constant position where `line` differs into a wildcard.
    ///
    /// Returns whether the template changed.
    pub(crate) fn merge(&mut self, line: &TokenizedLine) -> bool {
        let differs = |template: &TemplateToken, index: usize| {
            let token = &line.tokens()[index];
            !template.wildcard
                && (template.hash != token.hash || self.token_text(template) != line.text(token))
        };
        let first = self
            .tokens
            .iter()
            .enumerate()
            .position(|(index, template)| differs(template, index));
        let Some(first) = first else {
            return false;
        };
        let mut widened = vec![false; self.tokens.len()];
        for (index, template) in self.tokens.iter().enumerate().skip(first) {
            widened[index] = differs(template, index);
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
            } else {
                text.push_str(&self.text[token.start as usize..token.end as usize]);
            }
            token.start = offset(start);
            token.end = offset(text.len());
        }
        self.text = text;
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
        let mut line = TokenizedLine::default();
        line.tokenize(text);
        line
    }

    #[test]
    fn cluster_text_joins_masked_tokens() {
        let cluster = Cluster::new(TemplateId(1), &tokenized("got  7 items"), 0);
        assert_eq!(cluster.text(), "got <*> items");
    }

    #[test]
    fn fit_counts_matches_and_wildcards() {
        let cluster = Cluster::new(TemplateId(1), &tokenized("open file 3 now"), 0);
        let fit = cluster.fit(&tokenized("open disk 9 now"));
        assert_eq!(fit, Fit { matched: 2, wildcards: 1 });
    }

    #[test]
    fn merge_widens_differing_positions() {
        let mut cluster = Cluster::new(TemplateId(1), &tokenized("user alice logged in"), 0);
        assert!(cluster.merge(&tokenized("user bob logged in")));
        assert_eq!(cluster.text(), "user <*> logged in");
        assert!(!cluster.merge(&tokenized("user carol logged in")));
        assert_eq!(cluster.fit(&tokenized("user dave logged in")).matched, 3);
    }
}
