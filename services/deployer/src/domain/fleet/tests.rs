use std::time::{Duration, SystemTime};

use super::*;
use crate::domain::workload_file;

fn fleet() -> Fleet {
    let text = r#"
[[workload]]
name = "web"
command = "python3"
replicas = 2
[workload.health]
tcp = "{port}"
"#;
    Fleet::new(workload_file::parse("test.toml", text).expect("valid workload file"))
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[test]
fn fresh_instances_get_sequential_ids() {
    let mut fleet = fleet();
    let first = fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    let second = fleet.add("web", 1, 4001, at(1)).expect("slot 1 is vacant");
    assert_eq!(first.id, "web-1");
    assert_eq!(second.id, "web-2");
    assert_eq!(first.generation, 1);
    assert_eq!(first.state, State::Starting);
    assert_eq!(fleet.vacant_slots("web"), Vec::<u32>::new());
}

#[test]
fn taken_slot_is_rejected() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    let error = fleet
        .add("web", 0, 4001, at(1))
        .expect_err("slot 0 is taken");
    assert!(matches!(error, FleetError::SlotTaken { slot: 0, .. }));
}

#[test]
fn slot_out_of_range_is_rejected() {
    let mut fleet = fleet();
    let error = fleet.add("web", 2, 4000, at(1)).expect_err("two replicas");
    assert!(matches!(error, FleetError::NoSuchSlot { slot: 2, .. }));
}

#[test]
fn unknown_workload_is_rejected() {
    let mut fleet = fleet();
    let error = fleet
        .add("db", 0, 4000, at(1))
        .expect_err("no such workload");
    assert_eq!(error, FleetError::UnknownWorkload("db".to_owned()));
}

#[test]
fn reserved_ids_are_not_reused() {
    let mut fleet = fleet();
    fleet.reserve_id("web", "web-7");
    fleet.reserve_id("web", "web-3");
    fleet.reserve_id("web", "other-9");
    let record = fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    assert_eq!(record.id, "web-8");
}

#[test]
fn restart_in_place_increments_generation() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.record_spawn("web", "web-1", 1, 100, "sha256:aa", at(1));
    fleet.mark_serving("web", "web-1", 1, at(2));
    let restarted = fleet
        .begin_restart("web", "web-1", at(5))
        .expect("web-1 exists");
    assert_eq!(restarted.id, "web-1");
    assert_eq!(restarted.generation, 2);
    assert_eq!(restarted.state, State::Starting);
    assert_eq!(restarted.port, 4000);
    assert_eq!(restarted.slot, 0);
    assert_eq!(restarted.pid, None);
    assert_eq!(restarted.started_at, at(5));
}

#[test]
fn exit_of_old_generation_leaves_new_one_alone() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet
        .begin_restart("web", "web-1", at(2))
        .expect("web-1 exists");
    assert_eq!(fleet.mark_exited("web", "web-1", 1, at(3)), None);
    let record = fleet.get("web", "web-1").expect("web-1 exists");
    assert_eq!(record.state, State::Starting);
}

#[test]
fn exit_stops_current_generation_once() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    let stopped = fleet.mark_exited("web", "web-1", 1, at(3));
    assert_eq!(stopped.map(|record| record.state), Some(State::Stopped));
    assert_eq!(fleet.mark_exited("web", "web-1", 1, at(4)), None);
}

#[test]
fn spawn_recorded_after_exit_keeps_stopped() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.mark_exited("web", "web-1", 1, at(2));
    let record = fleet
        .record_spawn("web", "web-1", 1, 100, "sha256:aa", at(2))
        .expect("generation 1 is current");
    assert_eq!(record.state, State::Stopped);
    assert_eq!(record.pid, Some(100));
    assert_eq!(record.artifact_digest, "sha256:aa");
}

#[test]
fn spawn_of_stale_generation_is_ignored() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet
        .begin_restart("web", "web-1", at(2))
        .expect("web-1 exists");
    assert_eq!(
        fleet.record_spawn("web", "web-1", 1, 100, "sha256:aa", at(2)),
        None
    );
}

#[test]
fn serving_only_follows_starting() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.mark_exited("web", "web-1", 1, at(2));
    assert_eq!(fleet.mark_serving("web", "web-1", 1, at(3)), None);
    fleet
        .begin_restart("web", "web-1", at(4))
        .expect("web-1 exists");
    let serving = fleet.mark_serving("web", "web-1", 2, at(5));
    assert_eq!(serving.map(|record| record.state), Some(State::Serving));
}

#[test]
fn isolation_frees_the_slot_for_a_fresh_instance() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.add("web", 1, 4001, at(1)).expect("slot 1 is vacant");
    let isolated = fleet.isolate("web", "web-1", at(2)).expect("web-1 exists");
    assert_eq!(isolated.state, State::Isolated);
    assert_eq!(fleet.vacant_slots("web"), [0]);
    let fresh = fleet.add("web", 0, 4002, at(3)).expect("slot 0 was freed");
    assert_eq!(fresh.id, "web-3");
    assert_eq!(fresh.slot, 0);
}

#[test]
fn isolated_instance_stays_isolated() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.isolate("web", "web-1", at(2)).expect("web-1 exists");
    assert_eq!(
        fleet.isolate("web", "web-1", at(3)),
        Err(FleetError::Isolated("web-1".to_owned()))
    );
    assert_eq!(
        fleet.begin_restart("web", "web-1", at(3)),
        Err(FleetError::Isolated("web-1".to_owned()))
    );
    assert_eq!(fleet.mark_exited("web", "web-1", 1, at(4)), None);
    let record = fleet.get("web", "web-1").expect("web-1 is kept");
    assert_eq!(record.state, State::Isolated);
}

#[test]
fn removing_an_isolated_instance_keeps_the_new_occupant() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.isolate("web", "web-1", at(2)).expect("web-1 exists");
    fleet.add("web", 0, 4002, at(3)).expect("slot 0 was freed");
    assert!(fleet.remove("web", "web-1").is_some());
    assert_eq!(fleet.vacant_slots("web"), [1]);
    assert!(fleet.get("web", "web-2").is_some());
}

#[test]
fn counts_by_state() {
    let mut fleet = fleet();
    fleet.add("web", 0, 4000, at(1)).expect("slot 0 is vacant");
    fleet.add("web", 1, 4001, at(1)).expect("slot 1 is vacant");
    fleet.mark_serving("web", "web-2", 1, at(2));
    assert_eq!(fleet.count("web", State::Starting), 1);
    assert_eq!(fleet.count("web", State::Serving), 1);
    assert_eq!(fleet.count("web", State::Stopped), 0);
}
