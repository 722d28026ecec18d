//! JSON rendering of audited events for `aro audit -o json`.

use aro_proto::v1;
use aro_stack::audit::{AuditEvent, Audited};
use serde_json::{Value, json};

fn timestamp(value: Option<&prost_types::Timestamp>) -> Value {
    value.map_or(Value::Null, |t| json!(aro_proto::time::micros(Some(t))))
}

fn instance(reference: Option<&v1::InstanceRef>) -> Value {
    reference.map_or(Value::Null, |r| {
        json!({"workload": r.workload, "instance": r.instance, "generation": r.generation, "node": r.node})
    })
}

/// Renders one event as a JSON object; timestamps are microseconds since the Unix epoch.
pub(crate) fn to_json(audited: &Audited) -> Value {
    let body = match &audited.event {
        AuditEvent::Fault(f) => json!({
            "type": "fault", "id": f.id, "incident_id": f.incident_id, "kind": f.kind().as_str_name(),
            "target": instance(f.target.as_ref()), "observed_at_us": timestamp(f.observed_at.as_ref()),
            "detected_at_us": timestamp(f.detected_at.as_ref()), "healthy_replicas": f.healthy_replicas,
            "evidence": f.evidence.iter().map(|e| json!({"sense": e.sense, "summary": e.summary, "details": e.details})).collect::<Vec<_>>(),
        }),
        AuditEvent::Command(c) | AuditEvent::Decision(c) => {
            let decision = c.decision.clone().unwrap_or_default();
            let kind = if matches!(audited.event, AuditEvent::Decision(_)) {
                "decision"
            } else {
                "command"
            };
            json!({
                "type": kind, "mode": decision.mode().as_str_name(), "id": c.id, "incident_id": c.incident_id, "attempt": c.attempt,
                "action": c.action().as_str_name(), "target": instance(c.target.as_ref()),
                "issued_at_us": timestamp(c.issued_at.as_ref()),
                "decision": {
                    "source": decision.source().as_str_name(), "model_version": decision.model_version,
                    "confidence": decision.confidence, "reason": decision.reason,
                    "scores": decision.scores.iter().map(|s| json!({"action": s.action().as_str_name(), "score": s.score})).collect::<Vec<_>>(),
                    "guards": decision.guards.iter().map(|g| json!({"guard": g.guard, "allowed": g.allowed, "reason": g.reason})).collect::<Vec<_>>(),
                },
            })
        }
        AuditEvent::Outcome(o) => json!({
            "type": "outcome", "id": o.id, "incident_id": o.incident_id, "command_id": o.command_id,
            "attempt": o.attempt, "action": o.action().as_str_name(), "status": o.status().as_str_name(),
            "target": instance(o.target.as_ref()), "replacement": instance(o.replacement.as_ref()),
            "message": o.message, "started_at_us": timestamp(o.started_at.as_ref()),
            "isolated_at_us": timestamp(o.isolated_at.as_ref()), "replaced_at_us": timestamp(o.replaced_at.as_ref()),
            "verified_at_us": timestamp(o.verified_at.as_ref()),
        }),
        AuditEvent::Chaos(c) => json!({
            "type": "chaos", "id": c.id, "kind": c.kind().as_str_name(), "phase": c.phase,
            "targets": c.targets.iter().map(|t| instance(Some(t))).collect::<Vec<_>>(),
            "injected_at_us": timestamp(c.injected_at.as_ref()), "message": c.message,
        }),
        AuditEvent::Signal(s) => json!({
            "type": "signal", "id": s.id, "instance": instance(s.instance.as_ref()), "at_us": timestamp(s.at.as_ref()),
        }),
    };
    json!({"stream": audited.stream, "subject": audited.subject, "sequence": audited.stream_sequence, "event": body})
}
