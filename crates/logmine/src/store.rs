//! Storage of clusters in reusable slots, ordered from most to least recently used.

use crate::cluster::Cluster;

/// The end-of-list marker of the recency list.
const NONE: u32 = u32::MAX;

#[derive(Debug)]
struct Slot {
    cluster: Option<Cluster>,
    newer: u32,
    older: u32,
}

/// A slab of clusters with an intrusive doubly linked recency list, so that marking a cluster
/// used and evicting the least recently used one both take constant time.
#[derive(Debug)]
pub(crate) struct ClusterStore {
    slots: Vec<Slot>,
    free: Vec<u32>,
    newest: u32,
    oldest: u32,
    len: usize,
}

impl ClusterStore {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            newest: NONE,
            oldest: NONE,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `cluster` as the most recently used one and returns its slot.
    pub(crate) fn insert(&mut self, cluster: Cluster) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize].cluster = Some(cluster);
                slot
            }
            None => {
                self.slots.push(Slot {
                    cluster: Some(cluster),
                    newer: NONE,
                    older: NONE,
                });
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 - 1 clusters")
            }
        };
        self.push_newest(slot);
        self.len += 1;
        slot
    }

    pub(crate) fn get(&self, slot: u32) -> &Cluster {
        self.slots[slot as usize]
            .cluster
            .as_ref()
            .expect("a slot listed in the tree contains a cluster")
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> &mut Cluster {
        self.slots[slot as usize]
            .cluster
            .as_mut()
            .expect("a slot listed in the tree contains a cluster")
    }

    /// Marks the cluster in `slot` as the most recently used.
    pub(crate) fn touch(&mut self, slot: u32) {
        if self.newest != slot {
            self.unlink(slot);
            self.push_newest(slot);
        }
    }

    /// Removes the least recently used cluster and returns it with its former slot.
    pub(crate) fn pop_oldest(&mut self) -> Option<(u32, Cluster)> {
        let slot = self.oldest;
        if slot == NONE {
            return None;
        }
        self.unlink(slot);
        self.free.push(slot);
        self.len -= 1;
        let cluster = self.slots[slot as usize]
            .cluster
            .take()
            .expect("a linked slot contains a cluster");
        Some((slot, cluster))
    }

    /// Iterates over the clusters from the most to the least recently used.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Cluster> {
        let mut slot = self.newest;
        std::iter::from_fn(move || {
            if slot == NONE {
                return None;
            }
            let current = &self.slots[slot as usize];
            slot = current.older;
            current.cluster.as_ref()
        })
    }

    fn push_newest(&mut self, slot: u32) {
        let entry = &mut self.slots[slot as usize];
        entry.newer = NONE;
        entry.older = self.newest;
        if self.newest != NONE {
            self.slots[self.newest as usize].newer = slot;
        } else {
            self.oldest = slot;
        }
        self.newest = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Slot { newer, older, .. } = self.slots[slot as usize];
        if newer != NONE {
            self.slots[newer as usize].older = older;
        } else {
            self.newest = older;
        }
        if older != NONE {
            self.slots[older as usize].newer = newer;
        } else {
            self.oldest = newer;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::miner::TemplateId;
    use crate::tokens::TokenizedLine;

    fn cluster(id: u64) -> Cluster {
        Cluster::new(TemplateId(id), &TokenizedLine::default(), 0)
    }

    fn ids(store: &ClusterStore) -> Vec<u64> {
        store.iter().map(|cluster| cluster.id.0).collect()
    }

    #[test]
    fn store_orders_by_recency() {
        let mut store = ClusterStore::new();
        let first = store.insert(cluster(1));
        store.insert(cluster(2));
        store.insert(cluster(3));
        assert_eq!(ids(&store), [3, 2, 1]);
        store.touch(first);
        assert_eq!(ids(&store), [1, 3, 2]);
    }

    #[test]
    fn store_evicts_least_recently_used() {
        let mut store = ClusterStore::new();
        let first = store.insert(cluster(1));
        store.insert(cluster(2));
        store.touch(first);
        let (_, evicted) = store.pop_oldest().expect("the store contains two clusters");
        assert_eq!(evicted.id.0, 2);
        assert_eq!(store.len(), 1);
        let reused = store.insert(cluster(3));
        assert_eq!(store.get(reused).id.0, 3);
        assert_eq!(ids(&store), [3, 1]);
    }

    #[test]
    fn store_empties_completely() {
        let mut store = ClusterStore::new();
        store.insert(cluster(1));
        assert!(store.pop_oldest().is_some());
        assert!(store.pop_oldest().is_none());
        assert_eq!(store.len(), 0);
        assert!(ids(&store).is_empty());
    }
}
