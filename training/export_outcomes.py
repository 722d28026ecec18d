"""Export the brain's logged decisions joined with their outcomes, as a training dataset.

Usage: python -m training.export_outcomes --out DATASET.jsonl [--nats-url URL]
       [--include-pending] [--timeout SECS]

Reads every message of the audit streams ARO_COMMANDS (`Command`, with the `Decision` that
chose it) and ARO_OUTCOMES (`Outcome`) through ordered consumers, which leave no state on the
server, and joins each command with the outcome that names its id. Writes one JSON object per
line for each joined command (ROW_FIELDS lists the keys), and prints what it could not join on
stderr. docs/learning-from-outcomes.md describes the dataset and its use.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from training.events import enum_name, load_events
from training.features import spec as feature_spec

COMMANDS_STREAM = "ARO_COMMANDS"
OUTCOMES_STREAM = "ARO_OUTCOMES"
COMMANDS_SUBJECTS = "aro.commands.>"
OUTCOMES_SUBJECTS = "aro.outcomes.>"

# Keys of each dataset row, in the order they are written.
ROW_FIELDS = (
    "command_id", "incident_id", "attempt", "workload", "instance", "node", "action",
    "action_index", "source", "model_version", "confidence", "features", "scores", "status",
    "message", "fault_observed_at", "issued_at", "verified_at", "time_to_recover_secs",
    "action_secs",
)
# Messages read between two progress lines.
PROGRESS_EVERY = 5_000


@dataclass
class Stored:
    """One message as JetStream stored it: the stream sequence, the time and the payload."""

    sequence: int
    stored_at: dt.datetime
    data: bytes


@dataclass
class Report:
    """Counts and ids of the messages that the join could not use, so that none is lost unseen."""

    commands: int = 0
    outcomes: int = 0
    rows: int = 0
    undecodable: list[str] = field(default_factory=list)
    duplicate_commands: list[str] = field(default_factory=list)
    duplicate_outcomes: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    orphan_outcomes: list[str] = field(default_factory=list)
    incident_mismatches: list[str] = field(default_factory=list)
    feature_length_mismatches: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Return the summary line, then one line per kind of problem with its ids."""
        lines = [
            f"read {self.commands} commands and {self.outcomes} outcomes, "
            f"wrote {self.rows} rows"
        ]
        problems = [
            ("undecodable messages", self.undecodable),
            ("duplicate commands (first kept)", self.duplicate_commands),
            ("duplicate outcomes (first kept)", self.duplicate_outcomes),
            ("commands without an outcome yet", self.pending),
            ("outcomes whose command is not in the stream", self.orphan_outcomes),
            ("outcomes whose incident id differs from their command's", self.incident_mismatches),
            (f"commands whose features are not {len(feature_spec())} long",
             self.feature_length_mismatches),
        ]
        for what, ids in problems:
            if ids:
                shown = ", ".join(ids[:10])
                if len(ids) > 10:
                    shown += f" and {len(ids) - 10} more"
                lines.append(f"{len(ids)} {what}: {shown}")
        return lines


def _time(message: Any, name: str) -> dt.datetime | None:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=dt.timezone.utc)


def _iso(time: dt.datetime | None) -> str | None:
    return None if time is None else time.isoformat().replace("+00:00", "Z")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 6)


def _decode(stored: list[Stored], parse: Callable[[bytes], Any], stream: str,
            report: Report) -> list[tuple[Any, Stored]]:
    decoded = []
    for message in stored:
        try:
            decoded.append((parse(message.data), message))
        except Exception as error:  # protobuf raises DecodeError and, for some inputs, others.
            report.undecodable.append(f"{stream}#{message.sequence} ({error})")
    return decoded


def join(commands: list[Stored], outcomes: list[Stored],
         include_pending: bool = False) -> tuple[list[dict[str, Any]], Report]:
    """Join commands with their outcomes by command id; return the rows and the report.

    Rows follow the commands' order in their stream. A command without an outcome is
    reported, and written with a null status when include_pending is set.
    """
    events = load_events()
    actions = feature_spec().actions
    n_features = len(feature_spec())
    report = Report(commands=len(commands), outcomes=len(outcomes))

    by_command: dict[str, tuple[Any, Stored]] = {}
    for outcome, stored in _decode(outcomes, events.Outcome.FromString, OUTCOMES_STREAM, report):
        if outcome.command_id in by_command:
            report.duplicate_outcomes.append(outcome.id or f"{OUTCOMES_STREAM}#{stored.sequence}")
            continue
        by_command[outcome.command_id] = (outcome, stored)

    rows = []
    seen: set[str] = set()
    for command, stored in _decode(commands, events.Command.FromString, COMMANDS_STREAM, report):
        if command.id in seen:
            report.duplicate_commands.append(command.id)
            continue
        seen.add(command.id)
        joined = by_command.get(command.id)
        if joined is not None and joined[0].incident_id != command.incident_id:
            report.incident_mismatches.append(
                f"{joined[0].id} ({joined[0].incident_id!r}, command {command.incident_id!r})"
            )
            joined = None
        if joined is None and command.id not in by_command:
            report.pending.append(command.id)
        if joined is None and not include_pending:
            continue
        decision = command.decision
        features = list(decision.features) or None
        if features is not None and len(features) != n_features:
            report.feature_length_mismatches.append(f"{command.id} ({len(features)})")
        action = enum_name(events.Action, command.action, "ACTION_")
        scores = None
        if decision.scores:
            by_action = {enum_name(events.Action, s.action, "ACTION_"): s.score
                         for s in decision.scores}
            scores = [by_action.get(name) for name in actions]
        target = command.target
        issued_at = _time(command, "issued_at") or stored.stored_at
        fault_observed_at = _time(command, "fault_observed_at")
        row: dict[str, Any] = {
            "command_id": command.id,
            "incident_id": command.incident_id,
            "attempt": command.attempt,
            "workload": target.workload,
            "instance": target.instance,
            "node": target.node,
            "action": action,
            "action_index": actions.index(action) if action in actions else None,
            "source": enum_name(events.DecisionSource, decision.source, "DECISION_SOURCE_"),
            "model_version": decision.model_version,
            "confidence": decision.confidence,
            "features": features,
            "scores": scores,
            "status": None,
            "message": None,
            "fault_observed_at": _iso(fault_observed_at),
            "issued_at": _iso(issued_at),
            "verified_at": None,
            "time_to_recover_secs": None,
            "action_secs": None,
        }
        if joined is not None:
            outcome, outcome_stored = joined
            status = enum_name(events.OutcomeStatus, outcome.status, "OUTCOME_STATUS_")
            verified_at = _time(outcome, "verified_at")
            row["status"] = status
            row["message"] = outcome.message
            row["verified_at"] = _iso(verified_at)
            if status == "recovered":
                row["time_to_recover_secs"] = _seconds(fault_observed_at, verified_at)
            # Without a verification, the outcome's storage time is when the action ended.
            row["action_secs"] = _seconds(issued_at, verified_at or outcome_stored.stored_at)
        rows.append(row)
    report.orphan_outcomes = [
        outcome.id for command_id, (outcome, _) in by_command.items() if command_id not in seen
    ]
    report.rows = len(rows)
    return rows, report


async def read_stream(js: Any, stream: str, subjects: str, timeout: float,
                      log: Callable[[str], None]) -> list[Stored]:
    """Read every message that the stream contains now, oldest first."""
    from nats.js import api

    info = await js.stream_info(stream)
    total, last = info.state.messages, info.state.last_seq
    log(f"{stream}: {total} messages, sequences {info.state.first_seq} to {last}")
    if total == 0:
        return []
    subscription = await js.subscribe(subjects, stream=stream, ordered_consumer=True,
                                      deliver_policy=api.DeliverPolicy.ALL)
    stored: list[Stored] = []
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=timeout)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"timed out after {timeout:g} s reading {stream} after "
                    f"{len(stored)} of {total} messages: is the server under load? "
                    "Raise --timeout"
                ) from None
            metadata = message.metadata
            stored.append(Stored(metadata.sequence.stream, metadata.timestamp, message.data))
            if len(stored) % PROGRESS_EVERY == 0:
                log(f"{stream}: read {len(stored)} of {total} messages")
            # Messages published during the export are left for the next one.
            if metadata.sequence.stream >= last or metadata.num_pending == 0:
                break
    finally:
        await subscription.unsubscribe()
    return stored


async def export(nats_url: str, out: Path, include_pending: bool, timeout: float,
                 log: Callable[[str], None]) -> Report:
    """Read both streams, join them and write the dataset to `out`."""
    import nats
    from nats.errors import NoServersError

    async def on_error(error: Exception) -> None:
        log(f"NATS client error: {error!r}")

    try:
        # One connection attempt and one retry: an export is rerun rather than kept waiting.
        connect = nats.connect(nats_url, connect_timeout=timeout, max_reconnect_attempts=1,
                               reconnect_time_wait=0.5, error_cb=on_error)
        client = await asyncio.wait_for(connect, timeout=3 * timeout)
    except (NoServersError, OSError, asyncio.TimeoutError) as error:
        message = f"failed to connect to the NATS server at {nats_url} ({error!r})"
        raise ConnectionError(message) from None
    try:
        js = client.jetstream()
        commands = await read_stream(js, COMMANDS_STREAM, COMMANDS_SUBJECTS, timeout, log)
        outcomes = await read_stream(js, OUTCOMES_STREAM, OUTCOMES_SUBJECTS, timeout, log)
    finally:
        await client.close()
    rows, report = join(commands, outcomes, include_pending)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w") as file:
        for row in rows:
            file.write(json.dumps(row) + "\n")
    tmp.replace(out)
    return report


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222",
                        help="URL of the NATS server with the ARO_COMMANDS and ARO_OUTCOMES "
                        "streams")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to write")
    parser.add_argument("--include-pending", action="store_true",
                        help="also write commands that have no outcome yet, with a null status")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server and for each message")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        report = asyncio.run(export(args.nats_url, args.out, args.include_pending,
                                    args.timeout, log))
    except Exception as error:
        log(f"export from {args.nats_url} failed: {error or repr(error)}")
        return 1
    for line in report.lines():
        log(line)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
