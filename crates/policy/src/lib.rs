//! Recovery policy inputs, rule policy and the fault-and-recovery simulator.
//!
//! The brain turns a fault event into an [`Observation`], feeds [`Observation::features`] to
//! the ONNX policy model and falls back to [`rules::decide`]. The [`sim`] module is the
//! environment the model is trained in; the `aro-sim` binary serves it to Python over the
//! JSON-lines [`protocol`].

pub mod action;
pub mod evaluate;
pub mod fault;
pub mod features;
pub mod observation;
pub mod protocol;
pub mod rules;
pub mod sim;

pub use action::{Action, ActionSet, N_ACTIONS};
pub use fault::{FaultKind, N_FAULT_KINDS};
pub use features::{FEATURE_SCHEMA_VERSION, FEATURE_SPEC_JSON, N_FEATURES, feature_spec};
pub use observation::Observation;

/// Error raised when a name does not parse into one of the crate's enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown {what} {value:?}")]
    Unknown { what: &'static str, value: String },
}

/// Implements `Display` and `FromStr` for an enum with `ALL` and `as_str`, naming `$what` in
/// parse errors.
macro_rules! impl_names {
    ($type:ty, $what:literal) => {
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $type {
            type Err = $crate::ParseError;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str() == name)
                    .ok_or_else(|| $crate::ParseError::Unknown {
                        what: $what,
                        value: name.to_owned(),
                    })
            }
        }
    };
}
pub(crate) use impl_names;
