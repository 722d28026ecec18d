use std::collections::HashMap;

use super::{InstanceKey, ids};

/// Open incident per instance id. Later faults about an instance join its open incident, so
/// a crash loop or a hang after a restart stays one incident with one trace.
#[derive(Debug, Default)]
pub(crate) struct IncidentBook {
    open: HashMap<InstanceKey, String>,
}

impl IncidentBook {
    /// Returns the id of the instance's open incident, opening one named after `generation`
    /// when none is open.
    pub(crate) fn join(&mut self, key: &InstanceKey, generation: u64) -> String {
        self.open
            .entry(key.clone())
            .or_insert_with(|| ids::incident_id(&key.instance, generation))
            .clone()
    }

    pub(crate) fn open_id(&self, key: &InstanceKey) -> Option<&str> {
        self.open.get(key).map(String::as_str)
    }

    /// Closes the instance's open incident and returns its id.
    pub(crate) fn close(&mut self, key: &InstanceKey) -> Option<String> {
        self.open.remove(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_fault_joins_open_incident() {
        let mut book = IncidentBook::default();
        let key = InstanceKey::new("web", "web-1");
        assert_eq!(book.join(&key, 1), "inc-web-1-g1");
        assert_eq!(book.join(&key, 2), "inc-web-1-g1");
    }

    #[test]
    fn fault_after_close_opens_new_incident() {
        let mut book = IncidentBook::default();
        let key = InstanceKey::new("web", "web-1");
        book.join(&key, 1);
        assert_eq!(book.close(&key).as_deref(), Some("inc-web-1-g1"));
        assert_eq!(book.join(&key, 3), "inc-web-1-g3");
    }
}
