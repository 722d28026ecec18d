//! The online template miner: each line joins the most similar template or starts a new one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use crate::cluster::{Cluster, Fit};
use crate::config::{MinerConfig, Result};
use crate::hash::BuildPrehashed;
use crate::store::ClusterStore;
use crate::tokens::TokenizedLine;
use crate::tree::{NodeId, PrefixTree};

/// Identifier of a template, unique for the life of a [`Miner`]: ids of evicted templates are
/// never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateId(pub u64);

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T{}", self.0)
    }
}

/// The template a line was assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match<'a> {
    /// The template's identifier.
    pub template_id: TemplateId,
    /// The template text after this line: masked tokens separated by single spaces.
    pub template: &'a str,
    /// Whether this line created the template.
    pub is_new: bool,
    /// Whether this line turned constant tokens of an existing template into wildcards.
    pub template_changed: bool,
    /// Lines assigned to the template so far, this one included.
    pub count: u64,
    /// Whether the line was cut to `max_line_bytes` before mining.
    pub truncated: bool,
    /// The template evicted to make room for this one, when `max_templates` was reached.
    pub evicted: Option<TemplateId>,
}

/// A template as the miner stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template<'a> {
    /// The template's identifier.
    pub id: TemplateId,
    /// The template text.
    pub text: &'a str,
    /// Lines assigned to the template so far.
    pub count: u64,
}

/// Counters of a miner since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinerStats {
    /// Lines added.
    pub lines: u64,
    /// Lines cut to `max_line_bytes`.
    pub truncated_lines: u64,
    /// Lines given as bytes that were not valid UTF-8, mined with U+FFFD in place of the
    /// invalid sequences.
    pub lossy_lines: u64,
    /// Templates created.
    pub templates_created: u64,
    /// Templates evicted to stay within `max_templates`.
    pub templates_evicted: u64,
}

/// An online log-template miner of the Drain family.
///
/// Each line is masked, routed through a fixed-depth prefix tree by its token count and leading
/// tokens, and compared with the templates at that leaf. It joins the most similar one when the
/// similarity reaches `similarity_threshold` (turning the positions where it differs into
/// wildcards), or starts a new template. Memory is bounded by `max_templates` and
/// `max_line_bytes`.
#[derive(Debug)]
pub struct Miner {
    config: MinerConfig,
    line: TokenizedLine,
    tree: PrefixTree,
    clusters: ClusterStore,
    slots: HashMap<u64, u32, BuildPrehashed>,
    next_id: u64,
    stats: MinerStats,
}

impl Miner {
    /// Creates an empty miner.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError`](crate::ConfigError) when a field of `config` is out of range.
    pub fn new(config: MinerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            tree: PrefixTree::new(config.prefix_depth, config.max_children),
            config,
            line: TokenizedLine::default(),
            clusters: ClusterStore::new(),
            slots: HashMap::default(),
            next_id: 1,
            stats: MinerStats::default(),
        })
    }

    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// Number of templates currently stored.
    pub fn template_count(&self) -> usize {
        self.clusters.len()
    }

    /// Looks up a stored template by id; evicted templates are gone.
    pub fn template(&self, id: TemplateId) -> Option<Template<'_>> {
        let slot = *self.slots.get(&id.0)?;
        Some(template_of(self.clusters.get(slot)))
    }

    /// Iterates over the stored templates from the most to the least recently matched.
    pub fn templates(&self) -> impl Iterator<Item = Template<'_>> {
        self.clusters.iter().map(template_of)
    }

    /// Adds a line given as bytes: invalid UTF-8 sequences become U+FFFD and the line is counted
    /// in [`MinerStats::lossy_lines`].
    pub fn add_bytes(&mut self, line: &[u8]) -> Match<'_> {
        let capped = &line[..line.len().min(self.config.max_line_bytes)];
        let text = String::from_utf8_lossy(capped);
        if matches!(text, Cow::Owned(_)) {
            self.stats.lossy_lines += 1;
        }
        self.add_capped(&text, capped.len() < line.len())
    }

    /// Adds a line and returns the template it was assigned to.
    pub fn add(&mut self, line: &str) -> Match<'_> {
        self.add_capped(line, false)
    }

    /// Adds a line that the caller may already have cut (`cut`), counting the cut once.
    fn add_capped(&mut self, line: &str, cut: bool) -> Match<'_> {
        self.stats.lines += 1;
        let (line, cut_here) = truncate(line, self.config.max_line_bytes);
        let truncated = cut || cut_here;
        if truncated {
            self.stats.truncated_lines += 1;
        }
        self.line.tokenize(line);
        let best = self
            .tree
            .find_leaf(&self.line)
            .and_then(|leaf| self.best_cluster(leaf));
        let (slot, is_new, template_changed, evicted) = match best {
            Some(slot) => {
                let cluster = self.clusters.get_mut(slot);
                let changed = cluster.merge(&self.line);
                cluster.count += 1;
                self.clusters.touch(slot);
                (slot, false, changed, None)
            }
            None => {
                let evicted = self.make_room();
                let slot = self.create_cluster();
                (slot, true, false, evicted)
            }
        };
        let cluster = self.clusters.get(slot);
        Match {
            template_id: cluster.id,
            template: cluster.text(),
            is_new,
            template_changed,
            count: cluster.count,
            truncated,
            evicted,
        }
    }

    /// Picks the most similar cluster at `leaf`, preferring more wildcards on a tie, if it
    /// reaches the threshold.
    fn best_cluster(&self, leaf: NodeId) -> Option<u32> {
        let length = self.line.tokens().len();
        let mut best: Option<(f64, usize, u32)> = None;
        for &slot in self.tree.clusters(leaf) {
            let fit = self.clusters.get(slot).fit(&self.line);
            let score = similarity(fit, length);
            let better = best.is_none_or(|(best_score, best_wildcards, _)| {
                score > best_score || (score == best_score && fit.wildcards > best_wildcards)
            });
            if better {
                best = Some((score, fit.wildcards, slot));
            }
        }
        best.filter(|&(score, _, _)| score >= self.config.similarity_threshold)
            .map(|(_, _, slot)| slot)
    }

    fn make_room(&mut self) -> Option<TemplateId> {
        if self.clusters.len() < self.config.max_templates {
            return None;
        }
        let (slot, cluster) = self.clusters.pop_oldest()?;
        self.tree.detach(cluster.leaf, slot);
        self.slots.remove(&cluster.id.0);
        self.stats.templates_evicted += 1;
        Some(cluster.id)
    }

    fn create_cluster(&mut self) -> u32 {
        let id = TemplateId(self.next_id);
        self.next_id += 1;
        let leaf = self.tree.leaf_for_insert(&self.line);
        let slot = self.clusters.insert(Cluster::new(id, &self.line, leaf));
        self.tree.attach(leaf, slot);
        self.slots.insert(id.0, slot);
        self.stats.templates_created += 1;
        slot
    }
}

/// Similarity of a line to a template: the share of the template's constant positions that the
/// line repeats. A template made only of wildcards matches every line of its length.
fn similarity(fit: Fit, length: usize) -> f64 {
    let constants = length - fit.wildcards;
    if constants == 0 {
        return 1.0;
    }
    fit.matched as f64 / constants as f64
}

fn template_of(cluster: &Cluster) -> Template<'_> {
    Template {
        id: cluster.id,
        text: cluster.text(),
        count: cluster.count,
    }
}

/// Cuts `line` to at most `max` bytes at a character boundary.
fn truncate(line: &str, max: usize) -> (&str, bool) {
    if line.len() <= max {
        return (line, false);
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    (&line[..end], true)
}
