//! The online template miner: each line joins the most similar template or starts a new one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use crate::cluster::{Cluster, Fit};
use crate::config::{MinerConfig, Result};
use crate::hash::BuildFastHasher;
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
/// Each line is split at whitespace and masked (numbers, ids, addresses, paths and timestamps
/// become `<*>`), routed through a fixed-depth prefix tree by its token count and leading words,
/// and compared with the templates at that leaf. It joins the most similar one when the
/// similarity reaches `similarity_threshold`, turning the positions where it differs into
/// wildcards, or starts a new template. Unlike Drain, a line never joins a template where the
/// two hold different words at one position: `VM Paused` and `VM Resumed` stay two templates.
/// Memory is bounded by `max_templates` and `max_line_bytes`.
#[derive(Debug)]
pub struct Miner {
    config: MinerConfig,
    line: TokenizedLine,
    tree: PrefixTree,
    clusters: ClusterStore,
    slots: HashMap<TemplateId, u32, BuildFastHasher>,
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
        let slot = *self.slots.get(&id)?;
        Some(template_of(self.clusters.get(slot)))
    }

    /// Iterates over the stored templates from the most to the least recently matched.
    pub fn templates(&self) -> impl Iterator<Item = Template<'_>> {
        self.clusters.iter().map(template_of)
    }

    /// Adds a line given as bytes: invalid UTF-8 sequences become U+FFFD and the line is counted
    /// in [`MinerStats::lossy_lines`].
    ///
    /// A line longer than `max_line_bytes` is cut before decoding; a character split by the cut
    /// is dropped rather than counted as invalid.
    pub fn add_bytes(&mut self, line: &[u8]) -> Match<'_> {
        let cut = line.len() > self.config.max_line_bytes;
        let capped = &line[..line.len().min(self.config.max_line_bytes)];
        let text = match std::str::from_utf8(capped) {
            Ok(text) => Cow::Borrowed(text),
            Err(error) if cut && error.error_len().is_none() => {
                let whole = &capped[..error.valid_up_to()];
                Cow::Borrowed(std::str::from_utf8(whole).expect("valid up to the split character"))
            }
            Err(_) => {
                self.stats.lossy_lines += 1;
                String::from_utf8_lossy(capped)
            }
        };
        self.add_capped(&text, cut)
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
    // NOTE: the scan is linear in the clusters of the leaf. Lines that share their length and
    // leading words but differ everywhere else (one-token JSON lines, say) can gather thousands
    // of clusters in one leaf and slow every such line down.
    fn best_cluster(&self, leaf: NodeId) -> Option<u32> {
        let threshold = self.config.similarity_threshold;
        let length = self.line.tokens().len();
        let mut best: Option<(f64, usize, u32)> = None;
        for &slot in self.tree.clusters(leaf) {
            let cluster = self.clusters.get(slot);
            // A bound that never rejects a fit the exact comparison below would accept.
            let max_mismatches =
                ((1.0 - threshold) * cluster.constants() as f64).ceil() as usize + 1;
            let Some(fit) = cluster.fit(&self.line, max_mismatches) else {
                continue;
            };
            let score = similarity(fit, length);
            let better = best.is_none_or(|(best_score, best_wildcards, _)| {
                score > best_score || (score == best_score && fit.wildcards > best_wildcards)
            });
            if better {
                best = Some((score, fit.wildcards, slot));
            }
        }
        best.filter(|&(score, _, _)| score >= threshold)
            .map(|(_, _, slot)| slot)
    }

    fn make_room(&mut self) -> Option<TemplateId> {
        if self.clusters.len() < self.config.max_templates {
            return None;
        }
        let (slot, cluster) = self.clusters.pop_oldest()?;
        self.tree.detach(cluster.leaf, slot);
        self.slots.remove(&cluster.id);
        self.stats.templates_evicted += 1;
        Some(cluster.id)
    }

    fn create_cluster(&mut self) -> u32 {
        let id = TemplateId(self.next_id);
        self.next_id += 1;
        let leaf = self.tree.leaf_for_insert(&self.line);
        let slot = self.clusters.insert(Cluster::new(id, &self.line, leaf));
        self.tree.attach(leaf, slot);
        self.slots.insert(id, slot);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn miner() -> Miner {
        Miner::new(MinerConfig::default()).expect("default config is valid")
    }

    #[test]
    fn miner_groups_lines_that_differ_in_values() {
        let mut miner = miner();
        let first = miner
            .add("Received block blk_-1608999687919862906 of size 91178 from /10.250.10.6")
            .template_id;
        let second =
            miner.add("Received block blk_7503483334202473044 of size 233217 from /10.250.14.224");
        assert_eq!(second.template_id, first);
        assert!(!second.is_new);
        assert_eq!(second.count, 2);
        assert_eq!(
            second.template,
            "Received block blk_<*> of size <*> from /<*>"
        );
    }

    #[test]
    fn miner_widens_differing_values_into_wildcards() {
        let mut miner = miner();
        let first = miner.add("Starting job on host alpha.example.org now");
        assert!(first.is_new);
        let second = miner.add("Starting job on host beta.example.org now");
        assert!(second.template_changed);
        assert_eq!(second.template, "Starting job on host <*> now");
    }

    #[test]
    fn miner_keeps_different_words_apart() {
        let mut miner = miner();
        let resumed = miner
            .add("[instance: 1b2c3d4e-0000-4000-8000-000000000001] VM Resumed (Lifecycle Event)")
            .template_id;
        let started = miner
            .add("[instance: 1b2c3d4e-0000-4000-8000-000000000002] VM Started (Lifecycle Event)")
            .template_id;
        assert_ne!(resumed, started);
        assert_eq!(miner.template_count(), 2);
    }

    #[test]
    fn miner_separates_token_counts() {
        let mut miner = miner();
        let short = miner.add("connection closed").template_id;
        let long = miner.add("connection closed by peer").template_id;
        assert_ne!(short, long);
    }

    #[test]
    fn miner_evicts_least_recently_used_template() {
        let mut miner = Miner::new(MinerConfig {
            max_templates: 2,
            ..MinerConfig::default()
        })
        .expect("config is valid");
        let alpha = miner.add("alpha started").template_id;
        let beta = miner.add("beta stopped now").template_id;
        miner.add("alpha started");
        let gamma = miner.add("gamma restarted twice today");
        assert_eq!(gamma.evicted, Some(beta));
        assert_eq!(miner.template_count(), 2);
        assert!(miner.template(beta).is_none());
        assert!(miner.template(alpha).is_some());
        assert_eq!(miner.stats().templates_evicted, 1);
        let again = miner.add("beta stopped now");
        assert!(again.is_new);
        assert_ne!(again.template_id, beta);
    }

    #[test]
    fn miner_truncates_long_lines_at_char_boundary() {
        let mut miner = Miner::new(MinerConfig {
            max_line_bytes: 8,
            ..MinerConfig::default()
        })
        .expect("config is valid");
        let found = miner.add("abcdefgé and more");
        assert!(found.truncated);
        assert_eq!(found.template, "abcdefg");
        assert!(!miner.add("short").truncated);
        assert_eq!(miner.stats().truncated_lines, 1);
    }

    #[test]
    fn miner_accepts_invalid_utf8() {
        let mut miner = miner();
        let found = miner.add_bytes(b"read \xff\xfe bytes from \xc3");
        assert_eq!(found.template, "read \u{fffd}\u{fffd} bytes from \u{fffd}");
        assert_eq!(miner.stats().lossy_lines, 1);
        miner.add_bytes("valid line".as_bytes());
        assert_eq!(miner.stats().lossy_lines, 1);
    }

    #[test]
    fn miner_drops_character_split_by_cut() {
        let mut miner = Miner::new(MinerConfig {
            max_line_bytes: 6,
            ..MinerConfig::default()
        })
        .expect("config is valid");
        let found = miner.add_bytes("abcdeé more".as_bytes());
        assert!(found.truncated);
        assert_eq!(found.template, "abcde");
        assert_eq!(miner.stats().lossy_lines, 0);
    }

    #[test]
    fn miner_counts_bytes_cut_before_decoding() {
        let mut miner = Miner::new(MinerConfig {
            max_line_bytes: 4,
            ..MinerConfig::default()
        })
        .expect("config is valid");
        assert!(miner.add_bytes(b"abcdef").truncated);
        assert_eq!(miner.stats().truncated_lines, 1);
    }

    #[test]
    fn miner_gives_empty_lines_one_template() {
        let mut miner = miner();
        let first = miner.add("").template_id;
        let second = miner.add("   ");
        assert_eq!(second.template_id, first);
        assert_eq!(second.template, "");
    }

    #[test]
    fn templates_list_most_recent_first() {
        let mut miner = miner();
        let first = miner.add("disk full on volume").template_id;
        let second = miner.add("cache warmed").template_id;
        miner.add("disk full on volume");
        let ids: Vec<TemplateId> = miner.templates().map(|template| template.id).collect();
        assert_eq!(ids, [first, second]);
        assert_eq!(
            miner.template(first).map(|template| template.count),
            Some(2)
        );
    }

    #[test]
    fn miner_survives_random_bytes_within_bounds() {
        let mut miner = Miner::new(MinerConfig {
            max_templates: 50,
            max_line_bytes: 64,
            ..MinerConfig::default()
        })
        .expect("config is valid");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"ab01 :/.-_=x\xff\xc3\xa9\t[]";
        for _ in 0..20_000 {
            let length = (next() % 80) as usize;
            let line: Vec<u8> = (0..length)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            miner.add_bytes(&line);
            assert!(miner.template_count() <= 50);
        }
        assert_eq!(miner.stats().lines, 20_000);
        assert!(miner.stats().templates_evicted > 0);
        assert_eq!(miner.templates().count(), miner.template_count());
    }

    #[test]
    fn miner_rejects_invalid_config() {
        let config = MinerConfig {
            max_children: 0,
            ..MinerConfig::default()
        };
        assert!(Miner::new(config).is_err());
    }
}
