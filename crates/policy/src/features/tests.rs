use super::*;
use crate::action::ActionSet;

fn index_of(name: &str) -> usize {
    feature_spec()
        .names()
        .position(|candidate| candidate == name)
        .expect("feature is listed")
}

fn sample() -> Observation {
    Observation {
        fault: FaultKind::CrashLoop,
        recent_exits: 4,
        since_deploy_secs: Some(600.0),
        uptime_secs: Some(3.0),
        healthy_replicas: 1,
        desired_replicas: 3,
        attempt: 2,
        previous_action: Some(Action::Replace),
        previous_failed: true,
        tried: [Action::Replace].into_iter().collect(),
        incident_age_secs: 25.0,
        suspicion: 0.0,
        exit_code: Some(1),
        signal: None,
        oom_killed: false,
        node_peer_faults: 0,
        workload_peer_faults: 2,
        rollback_available: true,
    }
}

#[test]
fn embedded_spec_matches_constants() {
    let spec = FeatureSpec::parse(FEATURE_SPEC_JSON).expect("embedded spec parses");
    assert_eq!(spec.schema_version, FEATURE_SCHEMA_VERSION);
    assert_eq!(spec.features.len(), N_FEATURES);
    assert_eq!(sample().features().len(), spec.features.len());
}

#[test]
fn one_hot_names_follow_enum_order() {
    let names: Vec<&str> = feature_spec().names().collect();
    for kind in FaultKind::ALL {
        assert_eq!(names[kind.index()], format!("fault_{kind}"));
    }
    let previous = index_of("previous_observe");
    let tried = index_of("tried_observe");
    for action in Action::ALL {
        assert_eq!(
            names[previous + action.index()],
            format!("previous_{action}")
        );
        assert_eq!(names[tried + action.index()], format!("tried_{action}"));
    }
}

#[test]
fn sample_vector_has_expected_values() {
    let features = sample().features();
    let value = |name: &str| features[index_of(name)];
    assert_eq!(value("fault_crash_loop"), 1.0);
    assert_eq!(value("fault_crash"), 0.0);
    assert_eq!(value("recent_exits"), 0.4);
    let since_deploy = 600.0_f32.ln_1p() / 604_800.0_f32.ln_1p();
    assert!((value("since_deploy") - since_deploy).abs() < 1e-6);
    assert_eq!(value("since_deploy_known"), 1.0);
    assert!((value("healthy_fraction") - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!(value("no_healthy_replica"), 0.0);
    assert!((value("attempt") - 1.0 / 9.0).abs() < 1e-6);
    assert_eq!(value("previous_replace"), 1.0);
    assert_eq!(value("previous_restart"), 0.0);
    assert_eq!(value("previous_failed"), 1.0);
    assert_eq!(value("tried_replace"), 1.0);
    assert_eq!(value("tried_restart"), 0.0);
    assert_eq!(value("exit_code_nonzero"), 1.0);
    assert_eq!(value("killed_by_signal"), 0.0);
    assert_eq!(value("workload_peer_faults"), 0.4);
    assert_eq!(value("rollback_available"), 1.0);
}

#[test]
fn out_of_range_inputs_are_clipped() {
    let mut observation = sample();
    observation.recent_exits = 1_000;
    observation.since_deploy_secs = Some(1e12);
    observation.uptime_secs = Some(-5.0);
    observation.healthy_replicas = 9;
    observation.desired_replicas = 3;
    observation.attempt = 0;
    observation.incident_age_secs = f32::INFINITY;
    observation.suspicion = 1e9;
    let features = observation.features();
    let value = |name: &str| features[index_of(name)];
    assert_eq!(value("recent_exits"), 1.0);
    assert_eq!(value("since_deploy"), 1.0);
    assert_eq!(value("uptime"), 0.0);
    assert_eq!(value("healthy_fraction"), 1.0);
    assert_eq!(value("attempt"), 0.0);
    assert_eq!(value("incident_age"), 1.0);
    assert_eq!(value("suspicion"), 1.0);
}

#[test]
fn nan_inputs_count_as_unknown() {
    let mut observation = sample();
    observation.since_deploy_secs = Some(f32::NAN);
    observation.incident_age_secs = f32::NAN;
    observation.suspicion = f32::NAN;
    let features = observation.features();
    let value = |name: &str| features[index_of(name)];
    assert_eq!(value("since_deploy"), 0.0);
    assert_eq!(value("since_deploy_known"), 0.0);
    assert_eq!(value("incident_age"), 0.0);
    assert_eq!(value("suspicion"), 0.0);
}

#[test]
fn zero_desired_replicas_gives_zero_fraction() {
    let mut observation = sample();
    observation.healthy_replicas = 0;
    observation.desired_replicas = 0;
    let features = observation.features();
    assert_eq!(features[index_of("healthy_fraction")], 0.0);
    assert_eq!(features[index_of("no_healthy_replica")], 1.0);
}

#[test]
fn memory_fault_signals_are_flagged() {
    let mut observation = sample();
    for (signal, expected) in [(11, 1.0), (7, 1.0), (4, 1.0), (9, 0.0), (6, 0.0)] {
        observation.signal = Some(signal);
        let features = observation.features();
        assert_eq!(
            features[index_of("memory_fault_signal")],
            expected,
            "signal {signal}"
        );
        assert_eq!(
            features[index_of("killed_by_signal")],
            1.0,
            "signal {signal}"
        );
    }
}

/// Change of one observation field.
type Change = fn(&mut Observation);

#[test]
fn every_field_changes_the_vector() {
    let base = sample();
    let base_features = base.features();
    let changes: Vec<(&str, Change)> = vec![
        ("fault", |o| o.fault = FaultKind::Hang),
        ("recent_exits", |o| o.recent_exits = 1),
        ("since_deploy_secs", |o| o.since_deploy_secs = None),
        ("uptime_secs", |o| o.uptime_secs = Some(86_400.0)),
        ("healthy_replicas", |o| o.healthy_replicas = 0),
        ("desired_replicas", |o| o.desired_replicas = 5),
        ("attempt", |o| o.attempt = 4),
        ("previous_action", |o| {
            o.previous_action = Some(Action::Move)
        }),
        ("previous_failed", |o| o.previous_failed = false),
        ("tried", |o| o.tried = ActionSet::EMPTY),
        ("incident_age_secs", |o| o.incident_age_secs = 600.0),
        ("suspicion", |o| o.suspicion = 9.0),
        ("exit_code", |o| o.exit_code = Some(0)),
        ("signal", |o| o.signal = Some(9)),
        ("oom_killed", |o| o.oom_killed = true),
        ("node_peer_faults", |o| o.node_peer_faults = 2),
        ("workload_peer_faults", |o| o.workload_peer_faults = 0),
        ("rollback_available", |o| o.rollback_available = false),
    ];
    for (field, change) in changes {
        let mut observation = base.clone();
        change(&mut observation);
        assert_ne!(
            observation.features(),
            base_features,
            "field {field} is not used"
        );
    }
}

#[test]
fn values_stay_in_declared_ranges() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let wild = |rng: &mut rand_chacha::ChaCha8Rng| match rng.random_range(0..4) {
        0 => f32::NAN,
        1 => -rng.random::<f32>() * 1e6,
        2 => rng.random::<f32>() * 1e9,
        _ => f32::INFINITY,
    };
    for _ in 0..2_000 {
        let mut observation = sample();
        observation.fault = FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())];
        observation.recent_exits = rng.random();
        observation.since_deploy_secs = Some(wild(&mut rng));
        observation.uptime_secs = Some(wild(&mut rng));
        observation.healthy_replicas = rng.random();
        observation.desired_replicas = rng.random_range(0..4);
        observation.attempt = rng.random();
        observation.incident_age_secs = wild(&mut rng);
        observation.suspicion = wild(&mut rng);
        observation.exit_code = Some(rng.random());
        observation.signal = Some(rng.random_range(-3..40));
        for (value, feature) in observation.features().iter().zip(&feature_spec().features) {
            let [low, high] = feature.range;
            assert!(
                (low..=high).contains(value),
                "feature {} is {value} for {observation:?}",
                feature.name
            );
        }
    }
}

#[test]
fn parse_rejects_other_schema_version() {
    let json = FEATURE_SPEC_JSON.replacen("\"schema_version\": 1", "\"schema_version\": 2", 1);
    let err = FeatureSpec::parse(&json).expect_err("version 2 is not this schema");
    assert_eq!(
        err.to_string(),
        "feature specification has schema_version 2, expected 1"
    );
}

#[test]
fn parse_rejects_duplicate_name() {
    let json = FEATURE_SPEC_JSON.replacen(
        "\"name\": \"fault_crash_loop\"",
        "\"name\": \"fault_crash\"",
        1,
    );
    let err = FeatureSpec::parse(&json).expect_err("duplicate names are invalid");
    assert_eq!(err.to_string(), "feature \"fault_crash\" is listed twice");
}

#[test]
fn parse_rejects_zero_scale() {
    let json = FEATURE_SPEC_JSON.replacen("\"scale\": 10.0", "\"scale\": 0.0", 1);
    let err = FeatureSpec::parse(&json).expect_err("zero scale is invalid");
    assert_eq!(
        err.to_string(),
        "feature \"recent_exits\" has invalid scale 0: must be finite and positive"
    );
}

#[test]
fn parse_rejects_missing_feature() {
    let mut spec: serde_json::Value =
        serde_json::from_str(FEATURE_SPEC_JSON).expect("spec is JSON");
    spec["features"]
        .as_array_mut()
        .expect("features is a list")
        .pop();
    let err = FeatureSpec::parse(&spec.to_string()).expect_err("40 features are too few");
    assert_eq!(
        err.to_string(),
        "feature specification lists 40 features, expected 41"
    );
}
