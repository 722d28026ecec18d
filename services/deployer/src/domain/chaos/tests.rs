use std::time::Duration;

use super::*;

fn injection(id: &str, kind: ChaosKind, targets: &[(&str, u32)]) -> Injection {
    Injection::example(id, kind, targets)
}

fn one(id: &str, kind: ChaosKind, remaining: u32) -> Injection {
    Injection::example(id, kind, &[("web-1", remaining)])
}

fn current(generation: u64) -> impl Fn(&str, &str) -> TargetStatus {
    move |_, _| TargetStatus::Current { generation }
}

fn ids(injections: &[Injection]) -> Vec<&str> {
    injections.iter().map(|i| i.id.as_str()).collect()
}

const NOW: SystemTime = SystemTime::UNIX_EPOCH;

#[test]
fn kill_and_log_storm_complete_at_once() {
    for kind in [ChaosKind::Kill, ChaosKind::LogStorm] {
        let injection = one("inj-1", kind, 0);
        assert_eq!(injection.state, State::Completed, "{kind:?}");
        assert_eq!(injection.ended_at, Some(injection.injected_at));
        assert!(!revertible(kind));
    }
}

#[test]
fn hang_stays_active_while_its_generation_is_current() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-1", ChaosKind::Hang, 0));
    assert!(book.reconcile(current(1), NOW).is_empty());
    assert_eq!(ids(&book.active()), ["inj-1"]);

    let changes = book.reconcile(current(2), NOW);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].phase, Some("target-recovered"));
    assert_eq!(changes[0].injection.state, State::TargetRecovered);
    assert_eq!(changes[0].targets.len(), 1);
    assert!(book.active().is_empty());
    assert!(
        book.reconcile(current(1), NOW).is_empty(),
        "an ended hang stays ended"
    );
}

#[test]
fn one_recovered_target_leaves_the_others_active() {
    let mut book = ChaosBook::default();
    book.insert(injection(
        "inj-1",
        ChaosKind::Hang,
        &[("web-1", 0), ("web-2", 0)],
    ));
    let changes = book.reconcile(
        |_, instance| {
            if instance == "web-1" {
                TargetStatus::Isolated
            } else {
                TargetStatus::Current { generation: 1 }
            }
        },
        NOW,
    );
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].phase, Some("target-recovered"));
    assert_eq!(changes[0].injection.state, State::Active);
    assert_eq!(changes[0].targets[0].instance, "web-1");
    let active = book.active();
    assert_eq!(active.len(), 1);
    let still: Vec<bool> = active[0].targets.iter().map(|t| t.active).collect();
    assert_eq!(still, [false, true]);
}

#[test]
fn same_key_returns_the_first_injection() {
    let mut book = ChaosBook::default();
    let mut first = one("inj-1", ChaosKind::Kill, 0);
    first.idempotency_key = "key-a".to_owned();
    let mut second = one("inj-2", ChaosKind::Kill, 0);
    second.idempotency_key = "key-b".to_owned();
    book.insert(first);
    book.insert(second);
    assert_eq!(book.by_key("key-a").map(|i| i.id.as_str()), Some("inj-1"));
    assert_eq!(book.by_key("key-b").map(|i| i.id.as_str()), Some("inj-2"));
    assert!(book.by_key("key-c").is_none());
    assert!(book.by_key("").is_none());
}

#[test]
fn crash_loop_kills_the_next_restarts_then_completes() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-1", ChaosKind::CrashLoop, 2));
    let first = book.take_crash_loop_kill("web", "web-1", 2);
    assert_eq!(first.map(|kill| kill.remaining), Some(1));
    let changes = book.reconcile(current(2), NOW);
    assert_eq!(changes.len(), 1, "the kill is stored");
    assert_eq!(changes[0].phase, None);

    let second = book.take_crash_loop_kill("web", "web-1", 3);
    assert_eq!(second.map(|kill| kill.remaining), Some(0));
    assert!(book.take_crash_loop_kill("web", "web-1", 4).is_none());
    let changes = book.reconcile(current(4), NOW);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].phase, Some("completed"));
    assert_eq!(changes[0].injection.state, State::Completed);
    assert!(book.active().is_empty());
}

#[test]
fn crash_loop_spares_other_instances_and_the_same_generation() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-1", ChaosKind::CrashLoop, 2));
    assert!(book.take_crash_loop_kill("web", "web-2", 2).is_none());
    assert!(book.take_crash_loop_kill("web", "web-1", 1).is_none());
}

#[test]
fn crash_loop_ends_when_its_instance_is_replaced() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-1", ChaosKind::CrashLoop, 2));
    let changes = book.reconcile(|_, _| TargetStatus::Isolated, NOW);
    assert_eq!(changes[0].injection.state, State::TargetRecovered);
    assert!(book.take_crash_loop_kill("web", "web-1", 2).is_none());
}

#[test]
fn corrupted_file_outlives_its_instance() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-1", ChaosKind::CorruptFile, 0));
    assert!(book.reconcile(|_, _| TargetStatus::Gone, NOW).is_empty());
    assert_eq!(book.active().len(), 1);
}

#[test]
fn hook_faults_end_with_their_generation() {
    for kind in [
        ChaosKind::StopHeartbeats,
        ChaosKind::GrowMemory,
        ChaosKind::CorruptData,
        ChaosKind::Partition,
    ] {
        let mut book = ChaosBook::default();
        book.insert(one("inj-1", kind, 0));
        assert!(book.reconcile(current(1), NOW).is_empty(), "{kind:?}");
        assert_eq!(book.reconcile(current(2), NOW).len(), 1, "{kind:?}");
        assert!(book.active().is_empty(), "{kind:?}");
    }
}

#[test]
fn due_lists_active_injections_past_their_deadline() {
    let mut book = ChaosBook::default();
    let mut hang = one("inj-1", ChaosKind::Hang, 0);
    hang.expires_at = Some(NOW + Duration::from_secs(10));
    book.insert(hang);
    let mut ended = one("inj-2", ChaosKind::Hang, 0);
    ended.expires_at = Some(NOW);
    ended.end(State::Cancelled, NOW, "cancelled".to_owned());
    book.insert(ended);
    assert!(book.due(NOW + Duration::from_secs(9)).is_empty());
    assert_eq!(book.due(NOW + Duration::from_secs(10)), ["inj-1"]);
}

#[test]
fn list_filters_by_state_and_workload_newest_first() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-1", ChaosKind::Hang, 0));
    book.insert(one("inj-2", ChaosKind::Kill, 0));
    let mut db = one("inj-3", ChaosKind::Hang, 0);
    db.targets[0].workload = "db".to_owned();
    book.insert(db);
    assert_eq!(
        ids(&book.list(&ListFilter::default())),
        ["inj-3", "inj-2", "inj-1"]
    );
    let active = ListFilter {
        active_only: true,
        ..ListFilter::default()
    };
    assert_eq!(ids(&book.list(&active)), ["inj-3", "inj-1"]);
    let web = ListFilter {
        workload: "web".to_owned(),
        ..ListFilter::default()
    };
    assert_eq!(ids(&book.list(&web)), ["inj-2", "inj-1"]);
}

#[test]
fn history_is_bounded_but_keeps_active_injections() {
    let mut book = ChaosBook::default();
    book.insert(one("inj-active", ChaosKind::Hang, 0));
    let mut dropped = Vec::new();
    for n in 0..MAX_KEPT + 10 {
        let mut kill = one(&format!("inj-{n}"), ChaosKind::Kill, 0);
        kill.idempotency_key = format!("key-{n}");
        dropped.extend(book.insert(kill));
    }
    assert_eq!(book.injections.len(), MAX_KEPT);
    assert_eq!(dropped.len(), 11);
    assert_eq!(dropped[0], "inj-0");
    assert!(book.get("inj-active").is_some());
    assert!(book.by_key("key-0").is_none());
    assert!(book.by_key(&format!("key-{}", MAX_KEPT + 9)).is_some());
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

#[test]
fn params_get_their_defaults() {
    assert_eq!(
        resolve_params(ChaosKind::CrashLoop, Params::None),
        Ok(Params::CrashLoop {
            restarts: DEFAULT_CRASH_LOOP_COUNT
        })
    );
    assert_eq!(
        resolve_params(ChaosKind::LogStorm, Params::LogStorm { lines: 0 }),
        Ok(Params::LogStorm {
            lines: LOG_STORM_LINES
        })
    );
    assert_eq!(
        resolve_params(ChaosKind::Hang, Params::None),
        Ok(Params::None)
    );
}

#[test]
fn params_of_another_kind_are_rejected() {
    let error = resolve_params(ChaosKind::Hang, Params::CrashLoop { restarts: 1 })
        .expect_err("a hang takes no parameters");
    assert_eq!(error.0, "params.crash_loop");
    assert!(error.1.contains("CHAOS_KIND_HANG"), "{}", error.1);
    let error = resolve_params(ChaosKind::LogStorm, Params::LogStorm { lines: 2_000_000 })
        .expect_err("too many lines");
    assert_eq!(error.0, "params.log_storm.lines");
    assert!(error.1.contains("2000000"), "{}", error.1);
}
