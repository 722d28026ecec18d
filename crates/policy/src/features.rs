//! Input features of the policy model, as `models/features.json` specifies them.
//!
//! The file is the one definition of the feature vector: its order, every transform and every
//! constant in it. The crate embeds the file and interprets it, so the simulator that trains
//! the model and the brain that runs it compute the same vector from the same text.

use std::sync::LazyLock;

use serde::Deserialize;

use crate::action::Action;
use crate::fault::FaultKind;
use crate::observation::Observation;

/// Text of `models/features.json`, embedded at build time.
pub const FEATURE_SPEC_JSON: &str = include_str!("../../../models/features.json");

/// Version of the feature schema. The exported model carries the version it was trained on in
/// its `feature_schema_version` metadata, and the brain must refuse a model whose version
/// differs.
pub const FEATURE_SCHEMA_VERSION: u32 = 1;

/// Length of the feature vector.
pub const N_FEATURES: usize = 41;

/// Error raised when a feature specification is invalid.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("failed to parse the feature specification: {0}")]
    Json(#[from] serde_json::Error),
    #[error("feature specification has schema_version {found}, expected {expected}")]
    SchemaVersion { found: u32, expected: u32 },
    #[error("feature specification lists {found} features, expected {expected}")]
    Length { found: usize, expected: usize },
    #[error("feature {name:?} is listed twice")]
    DuplicateName { name: String },
    #[error("feature {name:?} has invalid {field} {value}: {reason}")]
    InvalidParameter {
        name: String,
        field: &'static str,
        value: f32,
        reason: &'static str,
    },
}

/// Result of parsing a feature specification.
pub type Result<T, E = SpecError> = std::result::Result<T, E>;

/// Parsed feature specification.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Version of the schema; see [`FEATURE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Summary of the transforms for readers of the file.
    pub description: String,
    /// Features in input order.
    pub features: Vec<Feature>,
}

/// One input feature.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// Name, unique within the specification.
    pub name: String,
    /// Meaning of the value, for readers of the file.
    pub description: String,
    /// Function from an [`Observation`] to the value.
    pub transform: Transform,
    /// Closed interval that the value lies in.
    pub range: [f32; 2],
}

/// Function from an observation to one feature value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// 1 when the observation's fault kind is `value`.
    FaultIs { value: FaultKind },
    /// 1 when the previous action is `value`.
    PreviousActionIs { value: Action },
    /// 1 when `value` was already taken in the incident.
    Tried { value: Action },
    /// `clamp((x - offset) / scale, 0, 1)`; 0 when unknown.
    Linear {
        source: Source,
        offset: f32,
        scale: f32,
    },
    /// `ln(1 + clamp(x, 0, max)) / ln(1 + max)`; 0 when unknown.
    Log { source: Source, max: f32 },
    /// 1 when the value is known.
    Known { source: Source },
    /// 1 when the value is known and not 0.
    Nonzero { source: Source },
    /// 1 when the value is known and 0.
    IsZero { source: Source },
    /// `clamp(numerator / denominator, 0, 1)`; 0 when either is unknown or the denominator is
    /// not positive.
    Ratio {
        numerator: Source,
        denominator: Source,
    },
    /// 1 when the value is known and one of `values`.
    OneOf { source: Source, values: Vec<i32> },
}

/// Numeric field of an [`Observation`] that a transform reads. Flags read as 0 or 1, and a
/// missing or NaN value reads as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    RecentExits,
    SinceDeploySecs,
    UptimeSecs,
    HealthyReplicas,
    DesiredReplicas,
    Attempt,
    PreviousFailed,
    IncidentAgeSecs,
    Suspicion,
    ExitCode,
    Signal,
    OomKilled,
    NodePeerFaults,
    WorkloadPeerFaults,
    RollbackAvailable,
}

impl Source {
    fn read(self, observation: &Observation) -> Option<f32> {
        let flag = |value: bool| Some(if value { 1.0 } else { 0.0 });
        // Counts and codes become f32 features; values past 2^24 lose precision but are
        // clipped far below that by every transform.
        let value = match self {
            Source::RecentExits => Some(observation.recent_exits as f32),
            Source::SinceDeploySecs => observation.since_deploy_secs,
            Source::UptimeSecs => observation.uptime_secs,
            Source::HealthyReplicas => Some(observation.healthy_replicas as f32),
            Source::DesiredReplicas => Some(observation.desired_replicas as f32),
            Source::Attempt => Some(observation.attempt as f32),
            Source::PreviousFailed => flag(observation.previous_failed),
            Source::IncidentAgeSecs => Some(observation.incident_age_secs),
            Source::Suspicion => Some(observation.suspicion),
            Source::ExitCode => observation.exit_code.map(|code| code as f32),
            Source::Signal => observation.signal.map(|signal| signal as f32),
            Source::OomKilled => flag(observation.oom_killed),
            Source::NodePeerFaults => Some(observation.node_peer_faults as f32),
            Source::WorkloadPeerFaults => Some(observation.workload_peer_faults as f32),
            Source::RollbackAvailable => flag(observation.rollback_available),
        };
        value.filter(|value| !value.is_nan())
    }
}

fn bit(condition: bool) -> f32 {
    if condition { 1.0 } else { 0.0 }
}

impl Transform {
    /// Computes this feature's value for `observation`.
    pub fn apply(&self, observation: &Observation) -> f32 {
        match self {
            Transform::FaultIs { value } => bit(observation.fault == *value),
            Transform::PreviousActionIs { value } => {
                bit(observation.previous_action == Some(*value))
            }
            Transform::Tried { value } => bit(observation.tried.contains(*value)),
            Transform::Linear {
                source,
                offset,
                scale,
            } => source
                .read(observation)
                .map_or(0.0, |x| ((x - offset) / scale).clamp(0.0, 1.0)),
            Transform::Log { source, max } => source
                .read(observation)
                .map_or(0.0, |x| x.clamp(0.0, *max).ln_1p() / max.ln_1p()),
            Transform::Known { source } => bit(source.read(observation).is_some()),
            Transform::Nonzero { source } => {
                bit(source.read(observation).is_some_and(|x| x != 0.0))
            }
            Transform::IsZero { source } => bit(source.read(observation) == Some(0.0)),
            Transform::Ratio {
                numerator,
                denominator,
            } => match (numerator.read(observation), denominator.read(observation)) {
                (Some(n), Some(d)) if d > 0.0 => (n / d).clamp(0.0, 1.0),
                _ => 0.0,
            },
            Transform::OneOf { source, values } => bit(source
                .read(observation)
                .is_some_and(|x| values.iter().any(|value| *value as f32 == x))),
        }
    }

    fn check(&self, name: &str) -> Result<()> {
        let invalid = |field, value, reason| SpecError::InvalidParameter {
            name: name.to_owned(),
            field,
            value,
            reason,
        };
        match self {
            Transform::Linear { scale, offset, .. } => {
                if !(scale.is_finite() && *scale > 0.0) {
                    return Err(invalid("scale", *scale, "must be finite and positive"));
                }
                if !offset.is_finite() {
                    return Err(invalid("offset", *offset, "must be finite"));
                }
            }
            Transform::Log { max, .. } if !(max.is_finite() && *max > 0.0) => {
                return Err(invalid("max", *max, "must be finite and positive"));
            }
            _ => {}
        }
        Ok(())
    }
}

impl FeatureSpec {
    /// Parses and checks a specification: the schema version, the length, unique names and
    /// transform parameters that give finite values.
    ///
    /// # Errors
    ///
    /// Returns a [`SpecError`] naming the first problem found.
    pub fn parse(json: &str) -> Result<FeatureSpec> {
        let spec: FeatureSpec = serde_json::from_str(json)?;
        if spec.schema_version != FEATURE_SCHEMA_VERSION {
            return Err(SpecError::SchemaVersion {
                found: spec.schema_version,
                expected: FEATURE_SCHEMA_VERSION,
            });
        }
        if spec.features.len() != N_FEATURES {
            return Err(SpecError::Length {
                found: spec.features.len(),
                expected: N_FEATURES,
            });
        }
        for (index, feature) in spec.features.iter().enumerate() {
            if spec.features[..index]
                .iter()
                .any(|earlier| earlier.name == feature.name)
            {
                return Err(SpecError::DuplicateName {
                    name: feature.name.clone(),
                });
            }
            let [low, high] = feature.range;
            if !(low.is_finite() && high.is_finite() && low <= high) {
                return Err(SpecError::InvalidParameter {
                    name: feature.name.clone(),
                    field: "range",
                    value: low,
                    reason: "must be a finite interval with low <= high",
                });
            }
            feature.transform.check(&feature.name)?;
        }
        Ok(spec)
    }

    /// Computes the feature vector of `observation`.
    pub fn vector(&self, observation: &Observation) -> [f32; N_FEATURES] {
        let mut vector = [0.0; N_FEATURES];
        for (value, feature) in vector.iter_mut().zip(&self.features) {
            *value = feature.transform.apply(observation);
        }
        vector
    }

    /// Feature names in input order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.features.iter().map(|feature| feature.name.as_str())
    }
}

static SPEC: LazyLock<FeatureSpec> = LazyLock::new(|| {
    FeatureSpec::parse(FEATURE_SPEC_JSON)
        .expect("embedded models/features.json is valid, as the crate's tests check")
});

/// Returns the embedded feature specification.
pub fn feature_spec() -> &'static FeatureSpec {
    &SPEC
}

impl Observation {
    /// Computes the model's input vector, as `models/features.json` specifies it.
    pub fn features(&self) -> [f32; N_FEATURES] {
        SPEC.vector(self)
    }
}

#[cfg(test)]
mod tests;
