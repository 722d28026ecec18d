//! The fixed-depth prefix tree that narrows the search for a line's cluster.
//!
//! The first level is keyed by the number of tokens, the next `prefix_depth` levels by the
//! leading tokens. A token that is not a plain unmasked word, or one that would give a node more
//! than `max_children` children, goes to the node's wildcard child instead. Leaves list the clusters
//! whose lines took that path.

use std::collections::HashMap;

use crate::hash::BuildFastHasher;
use crate::tokens::{Token, TokenKind, TokenizedLine};

/// Index of a node in the tree's arena.
pub(crate) type NodeId = u32;

#[derive(Debug)]
enum NodeKey {
    Length(u32),
    Token { hash: u64, text: Box<str> },
    Wildcard,
}

#[derive(Debug)]
struct Node {
    parent: Option<NodeId>,
    key: NodeKey,
    children: HashMap<u64, NodeId, BuildFastHasher>,
    wildcard: Option<NodeId>,
    clusters: Vec<u32>,
}

#[derive(Debug)]
pub(crate) struct PrefixTree {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    by_length: HashMap<u32, NodeId, BuildFastHasher>,
    depth: usize,
    max_children: usize,
}

impl PrefixTree {
    pub(crate) fn new(depth: usize, max_children: usize) -> Self {
        Self {
            nodes: Vec::new(),
            free: Vec::new(),
            by_length: HashMap::default(),
            depth,
            max_children,
        }
    }

    /// Finds the leaf that `line` belongs to, without changing the tree.
    pub(crate) fn find_leaf(&self, line: &TokenizedLine) -> Option<NodeId> {
        let tokens = line.tokens();
        let mut node = *self.by_length.get(&length_key(tokens.len()))?;
        for token in tokens.iter().take(self.depth) {
            let current = &self.nodes[node as usize];
            let child = routes_by_key(token)
                .then(|| self.child(current, token.hash, line.text(token)))
                .flatten();
            node = child.or(current.wildcard)?;
        }
        Some(node)
    }

    /// Finds the leaf for a new cluster made from `line`, creating the nodes on its path.
    pub(crate) fn leaf_for_insert(&mut self, line: &TokenizedLine) -> NodeId {
        let tokens = line.tokens();
        let length = length_key(tokens.len());
        let mut node = match self.by_length.get(&length) {
            Some(&node) => node,
            None => {
                let node = self.allocate(None, NodeKey::Length(length));
                self.by_length.insert(length, node);
                node
            }
        };
        for token in tokens.iter().take(self.depth) {
            let current = &self.nodes[node as usize];
            let text = line.text(token);
            let constant = routes_by_key(token);
            if let Some(child) = constant
                .then(|| self.child(current, token.hash, text))
                .flatten()
            {
                node = child;
                continue;
            }
            let room = current.children.len() < self.max_children
                && !current.children.contains_key(&token.hash);
            node = if constant && room {
                let key = NodeKey::Token {
                    hash: token.hash,
                    text: text.into(),
                };
                let child = self.allocate(Some(node), key);
                self.nodes[node as usize].children.insert(token.hash, child);
                child
            } else {
                self.wildcard_child(node)
            };
        }
        node
    }

    pub(crate) fn clusters(&self, leaf: NodeId) -> &[u32] {
        &self.nodes[leaf as usize].clusters
    }

    pub(crate) fn attach(&mut self, leaf: NodeId, slot: u32) {
        self.nodes[leaf as usize].clusters.push(slot);
    }

    /// Removes `slot` from `leaf`, then removes every node on the path that became empty.
    pub(crate) fn detach(&mut self, leaf: NodeId, slot: u32) {
        let clusters = &mut self.nodes[leaf as usize].clusters;
        if let Some(index) = clusters.iter().position(|&listed| listed == slot) {
            clusters.swap_remove(index);
        }
        let mut node = leaf;
        loop {
            let current = &self.nodes[node as usize];
            let empty = current.clusters.is_empty()
                && current.children.is_empty()
                && current.wildcard.is_none();
            if !empty {
                return;
            }
            let parent = current.parent;
            match (&current.key, parent) {
                (NodeKey::Length(length), _) => {
                    self.by_length.remove(length);
                }
                (NodeKey::Token { hash, .. }, Some(parent)) => {
                    let hash = *hash;
                    self.nodes[parent as usize].children.remove(&hash);
                }
                (NodeKey::Wildcard, Some(parent)) => self.nodes[parent as usize].wildcard = None,
                (_, None) => unreachable!("only length nodes have no parent"),
            }
            self.release(node);
            match parent {
                Some(parent) => node = parent,
                None => return,
            }
        }
    }

    /// Number of live nodes, for tests of pruning.
    #[cfg(test)]
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    fn child(&self, node: &Node, hash: u64, text: &str) -> Option<NodeId> {
        let child = *node.children.get(&hash)?;
        match &self.nodes[child as usize].key {
            NodeKey::Token { text: key, .. } if **key == *text => Some(child),
            _ => None,
        }
    }

    fn wildcard_child(&mut self, node: NodeId) -> NodeId {
        if let Some(child) = self.nodes[node as usize].wildcard {
            return child;
        }
        let child = self.allocate(Some(node), NodeKey::Wildcard);
        self.nodes[node as usize].wildcard = Some(child);
        child
    }

    fn allocate(&mut self, parent: Option<NodeId>, key: NodeKey) -> NodeId {
        let node = Node {
            parent,
            key,
            children: HashMap::default(),
            wildcard: None,
            clusters: Vec::new(),
        };
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = node;
            return id;
        }
        self.nodes.push(node);
        NodeId::try_from(self.nodes.len() - 1).expect("fewer than 2^32 tree nodes")
    }

    fn release(&mut self, node: NodeId) {
        let released = &mut self.nodes[node as usize];
        released.children = HashMap::default();
        released.clusters = Vec::new();
        released.key = NodeKey::Wildcard;
        released.parent = None;
        self.free.push(node);
    }
}

/// Returns whether a token keys its own child. Only unmasked words do: any other token (a masked
/// value, a dotted name, a token with inner punctuation) is too likely to be a variable, and
/// variables in the leading tokens would split one template over many leaves.
fn routes_by_key(token: &Token) -> bool {
    token.kind == TokenKind::Constant && token.word
}

fn length_key(length: usize) -> u32 {
    u32::try_from(length).expect("token count is bounded by the validated max_line_bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenized(text: &str) -> TokenizedLine {
        TokenizedLine::of(text)
    }

    #[test]
    fn tree_finds_inserted_path() {
        let mut tree = PrefixTree::new(2, 100);
        let line = tokenized("open file now");
        assert_eq!(tree.find_leaf(&line), None);
        let leaf = tree.leaf_for_insert(&line);
        assert_eq!(tree.find_leaf(&line), Some(leaf));
        assert_eq!(tree.find_leaf(&tokenized("open disk now")), None);
    }

    #[test]
    fn tree_routes_masked_tokens_to_wildcard() {
        let mut tree = PrefixTree::new(2, 100);
        let leaf = tree.leaf_for_insert(&tokenized("17 files open"));
        assert_eq!(tree.find_leaf(&tokenized("23 files open")), Some(leaf));
    }

    #[test]
    fn tree_routes_overflow_to_wildcard() {
        let mut tree = PrefixTree::new(1, 2);
        let first = tree.leaf_for_insert(&tokenized("a x"));
        let second = tree.leaf_for_insert(&tokenized("b x"));
        let third = tree.leaf_for_insert(&tokenized("c x"));
        let fourth = tree.leaf_for_insert(&tokenized("d x"));
        assert_ne!(first, second);
        assert_eq!(third, fourth);
        assert_eq!(tree.find_leaf(&tokenized("e x")), Some(third));
        assert_eq!(tree.find_leaf(&tokenized("a x")), Some(first));
    }

    #[test]
    fn detach_prunes_empty_path() {
        let mut tree = PrefixTree::new(2, 100);
        let remaining = tree.leaf_for_insert(&tokenized("open file now"));
        tree.attach(remaining, 0);
        let nodes = tree.node_count();
        let pruned = tree.leaf_for_insert(&tokenized("open disk now"));
        tree.attach(pruned, 1);
        tree.detach(pruned, 1);
        assert_eq!(tree.node_count(), nodes);
        assert_eq!(tree.find_leaf(&tokenized("open file now")), Some(remaining));
        tree.detach(remaining, 0);
        assert_eq!(tree.node_count(), 0);
    }
}
