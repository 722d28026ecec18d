//! The confidence gate: the policy's choice is used only when the model is sure enough and its
//! input was in range. Otherwise the rule policy decides.

use aro_policy::{Action, ActionSet, N_ACTIONS, Observation};

/// Origin of a choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Policy,
    Rules,
    Ladder,
}

/// Chosen action with the reason for it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Choice {
    pub(crate) action: Action,
    pub(crate) source: Source,
    /// Probability the model gave the action, renormalised over the supported actions; 0 when
    /// the model was not used.
    pub(crate) confidence: f32,
    pub(crate) reason: String,
}

/// Chooses between the policy's scores and the rule policy.
///
/// `scores` are the model's action probabilities, or `None` when inference failed. Actions the
/// runtime does not support are masked out before the gate looks at the scores.
pub(crate) fn choose(
    observation: &Observation,
    features: &[f32],
    scores: Option<&[f32; N_ACTIONS]>,
    supported: ActionSet,
    min_confidence: f32,
) -> Choice {
    let rules = |reason: String| {
        let mut action = aro_policy::rules::decide(observation);
        if !supported.contains(action) {
            action = Action::Escalate;
        }
        Choice {
            action,
            source: Source::Rules,
            confidence: 0.0,
            reason,
        }
    };
    if let Some(index) = features.iter().position(|value| !value.is_finite()) {
        return rules(format!("feature {index} is not a finite number"));
    }
    let Some(scores) = scores else {
        return rules("the policy model gave no scores".to_owned());
    };
    if scores
        .iter()
        .any(|score| !score.is_finite() || *score < 0.0)
    {
        return rules("the policy model gave invalid scores".to_owned());
    }
    let total: f32 = supported.iter().map(|action| scores[action.index()]).sum();
    let best = supported
        .iter()
        .max_by(|a, b| scores[a.index()].total_cmp(&scores[b.index()]));
    let (Some(best), true) = (best, total > 0.0) else {
        return rules("no supported action has a score".to_owned());
    };
    let confidence = scores[best.index()] / total;
    if confidence < min_confidence {
        return rules(format!(
            "policy unsure: {} at {confidence:.2} is below the gate of {min_confidence:.2}",
            best.as_str()
        ));
    }
    Choice {
        action: best,
        source: Source::Policy,
        confidence,
        reason: format!(
            "policy chose {} with confidence {confidence:.2}",
            best.as_str()
        ),
    }
}

#[cfg(test)]
mod tests {
    use aro_policy::FaultKind;

    use super::*;

    fn supported() -> ActionSet {
        let mut set = ActionSet::EMPTY;
        for action in [
            Action::Observe,
            Action::Restart,
            Action::Replace,
            Action::Escalate,
        ] {
            set.insert(action);
        }
        set
    }

    fn scores(pairs: &[(Action, f32)]) -> [f32; N_ACTIONS] {
        let mut scores = [0.0; N_ACTIONS];
        for &(action, score) in pairs {
            scores[action.index()] = score;
        }
        scores
    }

    #[test]
    fn confident_policy_choice_stands() {
        let observation = Observation::new(FaultKind::Crash);
        let scores = scores(&[(Action::Replace, 0.9), (Action::Restart, 0.1)]);
        let choice = choose(&observation, &[0.0], Some(&scores), supported(), 0.5);
        assert_eq!(choice.action, Action::Replace);
        assert_eq!(choice.source, Source::Policy);
    }

    #[test]
    fn unsure_policy_falls_back_to_rules() {
        let observation = Observation::new(FaultKind::Crash);
        let scores = scores(&[
            (Action::Replace, 0.4),
            (Action::Restart, 0.35),
            (Action::Observe, 0.25),
        ]);
        let choice = choose(&observation, &[0.0], Some(&scores), supported(), 0.5);
        assert_eq!(choice.source, Source::Rules);
        assert!(choice.reason.contains("unsure"), "{}", choice.reason);
    }

    #[test]
    fn nan_feature_falls_back_to_rules() {
        let observation = Observation::new(FaultKind::Hang);
        let scores = scores(&[(Action::Replace, 1.0)]);
        let choice = choose(
            &observation,
            &[0.0, f32::NAN],
            Some(&scores),
            supported(),
            0.5,
        );
        assert_eq!(choice.source, Source::Rules);
        assert!(choice.reason.contains("feature 1"), "{}", choice.reason);
    }

    #[test]
    fn unsupported_actions_are_masked() {
        let observation = Observation::new(FaultKind::Crash);
        let scores = scores(&[(Action::Rollback, 0.7), (Action::Restart, 0.3)]);
        let choice = choose(&observation, &[0.0], Some(&scores), supported(), 0.5);
        assert_eq!(choice.action, Action::Restart);
        assert!((choice.confidence - 1.0).abs() < 1e-6);
    }

    #[test]
    fn missing_scores_fall_back_to_rules() {
        let observation = Observation::new(FaultKind::Crash);
        let choice = choose(&observation, &[0.0], None, supported(), 0.5);
        assert_eq!(choice.source, Source::Rules);
    }
}
