use super::*;

fn injection(id: &str, kind: ChaosKind, remaining: u32) -> Injection {
    Injection {
        id: id.to_owned(),
        kind,
        workload: "web".to_owned(),
        instance: "web-1".to_owned(),
        generation: 1,
        injected_at: SystemTime::UNIX_EPOCH,
        remaining,
        file: None,
        active: false,
    }
}

fn current(generation: u64) -> impl Fn(&str, &str) -> TargetStatus {
    move |_, _| TargetStatus::Current { generation }
}

#[test]
fn kill_is_never_active() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Kill, 0), None);
    assert!(book.active(current(1)).is_empty());
}

#[test]
fn hang_stays_active_while_its_generation_is_current() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Hang, 0), None);
    assert_eq!(book.active(current(1)).len(), 1);
    assert!(book.active(current(2)).is_empty());
    assert!(
        book.active(current(1)).is_empty(),
        "an ended hang stays ended"
    );
}

#[test]
fn hang_ends_when_isolated() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Hang, 0), None);
    assert!(book.active(|_, _| TargetStatus::Isolated).is_empty());
}

#[test]
fn same_key_returns_the_first_injection() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Kill, 0), Some("key-a"));
    book.insert(injection("inj-2", ChaosKind::Kill, 0), Some("key-b"));
    assert_eq!(book.by_key("key-a").map(|i| i.id.as_str()), Some("inj-1"));
    assert_eq!(book.by_key("key-b").map(|i| i.id.as_str()), Some("inj-2"));
    assert!(book.by_key("key-c").is_none());
}

#[test]
fn empty_key_is_not_recorded() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Kill, 0), Some(""));
    assert!(book.by_key("").is_none());
}

#[test]
fn crash_loop_kills_the_next_restarts() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::CrashLoop, 2), None);
    let first = book.take_crash_loop_kill("web", "web-1", 2);
    assert_eq!(first.as_ref().map(|i| i.remaining), Some(1));
    assert_eq!(first.map(|i| i.generation), Some(2));
    let second = book.take_crash_loop_kill("web", "web-1", 3);
    assert_eq!(second.map(|i| i.remaining), Some(0));
    assert!(book.take_crash_loop_kill("web", "web-1", 4).is_none());
    assert!(book.active(current(4)).is_empty());
}

#[test]
fn crash_loop_spares_other_instances() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::CrashLoop, 2), None);
    assert!(book.take_crash_loop_kill("web", "web-2", 1).is_none());
}

#[test]
fn crash_loop_spares_the_same_generation() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::CrashLoop, 2), None);
    assert!(book.take_crash_loop_kill("web", "web-1", 1).is_none());
}

#[test]
fn crash_loop_ends_when_its_instance_is_replaced() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::CrashLoop, 2), None);
    assert!(book.active(|_, _| TargetStatus::Isolated).is_empty());
    assert!(book.take_crash_loop_kill("web", "web-1", 2).is_none());
}

#[test]
fn halt_all_ends_every_active_injection() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Hang, 0), None);
    book.insert(injection("inj-2", ChaosKind::CrashLoop, 2), None);
    book.insert(injection("inj-3", ChaosKind::Kill, 0), None);
    let halted = book.halt_all(current(1));
    let ids: Vec<&str> = halted.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["inj-1", "inj-2"]);
    assert!(book.active(current(1)).is_empty());
    assert!(book.take_crash_loop_kill("web", "web-1", 2).is_none());
}

#[test]
fn finished_hang_is_no_longer_current() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::Hang, 0), None);
    assert!(book.is_current("inj-1", TargetStatus::Current { generation: 1 }));
    assert!(!book.is_current("inj-1", TargetStatus::Current { generation: 2 }));
    assert!(book.finish("inj-1").is_some());
    assert!(book.finish("inj-1").is_none());
    assert!(!book.is_current("inj-1", TargetStatus::Current { generation: 1 }));
}

#[test]
fn history_is_bounded() {
    let mut book = ChaosBook::default();
    for n in 0..MAX_KEPT + 10 {
        book.insert(
            injection(&format!("inj-{n}"), ChaosKind::Kill, 0),
            Some(&format!("key-{n}")),
        );
    }
    assert_eq!(book.injections.len(), MAX_KEPT);
    assert!(book.by_key("key-0").is_none());
    assert!(book.by_key(&format!("key-{}", MAX_KEPT + 9)).is_some());
}

#[test]
fn hook_faults_end_with_their_generation() {
    for kind in [
        ChaosKind::StopHeartbeats,
        ChaosKind::GrowMemory,
        ChaosKind::CorruptData,
    ] {
        let mut book = ChaosBook::default();
        book.insert(injection("inj-1", kind, 0), None);
        assert_eq!(book.active(current(1)).len(), 1, "{kind:?}");
        assert!(book.active(current(2)).is_empty(), "{kind:?}");
    }
}

#[test]
fn log_storm_is_never_active() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::LogStorm, 0), None);
    assert!(book.active(current(1)).is_empty());
}

#[test]
fn corrupted_file_outlives_its_instance() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::CorruptFile, 0), None);
    assert_eq!(book.active(|_, _| TargetStatus::Gone).len(), 1);
    assert_eq!(book.active(current(5)).len(), 1);
}

#[test]
fn file_corruptions_end_newest_first() {
    let mut book = ChaosBook::default();
    book.insert(injection("inj-1", ChaosKind::CorruptFile, 0), None);
    book.insert(injection("inj-2", ChaosKind::Hang, 0), None);
    book.insert(injection("inj-3", ChaosKind::CorruptFile, 0), None);
    let ended = book.end_file_corruptions();
    let ids: Vec<&str> = ended.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["inj-3", "inj-1"]);
    let still: Vec<String> = book.active(current(1)).into_iter().map(|i| i.id).collect();
    assert_eq!(still, ["inj-2"]);
    assert!(book.end_file_corruptions().is_empty());
}

#[test]
fn memory_growth_reaches_the_limit_in_time() {
    assert_eq!(memory_growth(Some(256 << 20)), (16, 384));
    assert_eq!(memory_growth(Some(1 << 20)), (1, 2));
    assert_eq!(memory_growth(Some((1 << 30) + 1)), (65, 1538));
}

#[test]
fn memory_growth_without_limit_is_bounded() {
    assert_eq!(
        memory_growth(None),
        (UNLIMITED_GROWTH_MIB_PER_SEC, UNLIMITED_GROWTH_MAX_MIB)
    );
}
