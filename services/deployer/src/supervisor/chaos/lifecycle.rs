//! Undoing faults on the process and container runtimes, adopting the injections of earlier
//! runs, and ending the active ones when the deployer stops.

use std::sync::Arc;

use aro_bus::InjectionStore;
use aro_proto::v1::ChaosKind;

use crate::backend::{InstanceKey, Runtime};
use crate::chaos;
use crate::domain::chaos::{Injection, State};
use crate::file_corruption;
use crate::injections;
use crate::supervisor::Supervisor;

impl<R: Runtime> Supervisor<R> {
    /// Takes the injections that [`injections::recover`] read and closed, opens fault
    /// injection, and starts looking for expired injections and recovered targets.
    pub fn adopt_injections(self: &Arc<Self>, store: InjectionStore, recovered: Vec<Injection>) {
        chaos::adopt(self, store, recovered, &self.tasks);
    }

    /// Undoes the effects of an injection on its active targets and files. Returns what was
    /// done, one sentence per target or file.
    pub(super) async fn undo_effects(&self, injection: &Injection) -> String {
        let mut sentences = Vec::new();
        if injection.kind == ChaosKind::CorruptFile {
            // Newest first, so that overlapping ranges end as they were.
            for file in injection.files.iter().rev() {
                let key = InstanceKey {
                    workload: file.workload.clone(),
                    instance: file.instance.clone(),
                    generation: file.generation,
                };
                let undone =
                    file_corruption::undo_through(&self.runtime, &key, &file.corruption).await;
                sentences.push(injections::undone_message(
                    &injection.id,
                    &file.corruption,
                    undone.map_err(|error| error.to_string()),
                ));
            }
        } else {
            for target in injection.targets.iter().filter(|t| t.active) {
                sentences.push(self.undo_target(injection, target).await);
            }
        }
        sentences.join("; ")
    }

    /// Ends every active injection when the deployer stops: puts back corrupted files,
    /// resumes hung and reconnects partitioned instances, resets hook faults and cancels
    /// pending crash-loop kills, each published as `reverted`.
    pub(in crate::supervisor) async fn end_injections_at_stop(&self) {
        chaos::end_all(self, State::Reverted, "the deployer stopped").await;
    }
}
