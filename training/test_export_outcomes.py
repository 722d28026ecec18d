"""The outcome exporter against a real nats-server that the test starts.

Run: .venv/bin/python -m unittest training.test_export_outcomes
The nats-server binary is `$ARO_NATS_SERVER`, else `.venv/bin/nats-server` (scripts/setup.sh).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import nats
from nats.js import api

from training.env import REPO_ROOT
from training.events import load_events
from training.export_outcomes import join
from training.features import features

NATS_SERVER = Path(os.environ.get("ARO_NATS_SERVER", REPO_ROOT / ".venv" / "bin" / "nats-server"))
T0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)

events = load_events()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class NatsServer:
    """A nats-server with JetStream on a free loopback port, storing in a temporary folder."""

    def __init__(self) -> None:
        if not NATS_SERVER.is_file():
            raise FileNotFoundError(
                f"{NATS_SERVER} is missing: run scripts/setup.sh or set ARO_NATS_SERVER"
            )
        self.dir = tempfile.TemporaryDirectory(prefix="aro-nats-")
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(NATS_SERVER), "-js", "-sd", self.dir.name, "-a", "127.0.0.1",
             "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nats-server did not listen on port {self.port} in 10 s")
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.dir.cleanup()


def timestamp(seconds: float):
    value = events.google_dot_protobuf_dot_timestamp__pb2.Timestamp()
    value.FromDatetime(T0 + dt.timedelta(seconds=seconds))
    return value


def target(workload: str, instance: str):
    return events.InstanceRef(workload=workload, instance=instance, generation=1, node="n1")


def command(incident: str, attempt: int, action: int, workload: str = "web",
            observation: dict | None = None, source: int = 1):
    decision = events.Decision(action=action, source=source, model_version="m1-s7",
                               confidence=0.8, reason="test")
    if observation is not None:
        decision.features.extend(features(observation))
        for index in range(7):
            decision.scores.add(action=index + 1, score=0.1 if index + 1 != action else 0.4)
    return events.Command(
        id=f"cmd-{incident}-a{attempt}", incident_id=incident, attempt=attempt,
        target=target(workload, "i1"), action=action, decision=decision,
        issued_at=timestamp(10 * attempt), fault_id=f"flt-{incident}",
        fault_observed_at=timestamp(0), fault_detected_at=timestamp(0.2),
    )


def outcome(cmd, status: int, verified_after: float | None, incident: str | None = None):
    result = events.Outcome(
        id=f"out-{cmd.id}", incident_id=incident or cmd.incident_id, command_id=cmd.id,
        target=cmd.target, action=cmd.action, status=status, message=f"status {status}",
        started_at=cmd.issued_at, attempt=cmd.attempt,
    )
    if verified_after is not None:
        result.verified_at.CopyFrom(timestamp(10 * cmd.attempt + verified_after))
    return result


CRASH = {"fault": "crash", "attempt": 1, "recent_exits": 1, "healthy_replicas": 2,
         "desired_replicas": 3, "exit_code": 1}
HANG = {"fault": "hang", "attempt": 1, "suspicion": 9.5, "healthy_replicas": 0,
        "desired_replicas": 1}

RESTART, REPLACE, ESCALATE = 2, 3, 7
RECOVERED, FAILED, NOOP = 1, 2, 5


async def publish_history(url: str) -> None:
    """Publish the commands and outcomes of four incidents and some faulty messages."""
    client = await nats.connect(url)
    js = client.jetstream()
    for name, subjects in (("ARO_COMMANDS", "aro.commands.>"), ("ARO_OUTCOMES", "aro.outcomes.>")):
        await js.add_stream(api.StreamConfig(
            name=name, subjects=[subjects], retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE, duplicate_window=600,
        ))

    async def send(subject: str, message) -> None:
        await js.publish(subject, message.SerializeToString(), headers={"Nats-Msg-Id": message.id})

    a1 = command("inc-a", 1, RESTART, observation=CRASH)
    a2 = command("inc-a", 2, REPLACE, source=3)
    b1 = command("inc-b", 1, ESCALATE, workload="api", observation=HANG, source=2)
    c1 = command("inc-c", 1, RESTART, observation=CRASH)
    d1 = command("inc-d", 1, RESTART, observation=CRASH)
    for cmd in (a1, a2, b1, c1, d1):
        await send(f"aro.commands.{cmd.target.workload}", cmd)
    await js.publish("aro.commands.web", b"\xff\xff not protobuf")

    await send("aro.outcomes.web", outcome(a1, FAILED, None))
    await send("aro.outcomes.web", outcome(a2, RECOVERED, 14.5))
    await send("aro.outcomes.api", outcome(b1, NOOP, None))
    await send("aro.outcomes.web", outcome(d1, RECOVERED, 3.0, incident="inc-other"))
    orphan = outcome(command("inc-gone", 1, RESTART), RECOVERED, 2.0)
    await send("aro.outcomes.web", orphan)
    # A second outcome for a1 after JetStream's duplicate window, under another message id.
    late = outcome(a1, RECOVERED, 30.0)
    late.id = "out-late"
    await send("aro.outcomes.web", late)
    await client.close()


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.server = NatsServer()
        asyncio.run(publish_history(cls.server.url))
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.dir.cleanup()

    def run_export(self, *extra: str) -> tuple[list[dict], str]:
        out = Path(self.dir.name) / f"dataset{len(extra)}.jsonl"
        result = subprocess.run(
            [sys.executable, "-m", "training.export_outcomes", "--nats-url", self.server.url,
             "--out", str(out), *extra],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        return rows, result.stderr

    def test_rows_join_commands_with_outcomes(self) -> None:
        rows, _ = self.run_export()
        by_id = {row["command_id"]: row for row in rows}
        self.assertEqual(sorted(by_id), ["cmd-inc-a-a1", "cmd-inc-a-a2", "cmd-inc-b-a1"])

        a1 = by_id["cmd-inc-a-a1"]
        self.assertEqual(a1["incident_id"], "inc-a")
        self.assertEqual(a1["action"], "restart")
        self.assertEqual(a1["action_index"], 1)
        self.assertEqual(a1["source"], "policy")
        self.assertEqual(a1["model_version"], "m1-s7")
        self.assertEqual(a1["status"], "failed")
        self.assertEqual(a1["features"], features(CRASH))
        self.assertEqual(len(a1["scores"]), 7)
        self.assertAlmostEqual(a1["scores"][1], 0.4, places=6)
        self.assertIsNone(a1["time_to_recover_secs"])
        self.assertIsNone(a1["verified_at"])
        # Without a verification, the action lasted until JetStream stored its outcome.
        self.assertIsNotNone(a1["action_secs"])

        a2 = by_id["cmd-inc-a-a2"]
        self.assertEqual(a2["source"], "ladder")
        self.assertEqual(a2["action"], "replace")
        self.assertIsNone(a2["features"])
        self.assertIsNone(a2["scores"])
        self.assertEqual(a2["status"], "recovered")
        self.assertEqual(a2["verified_at"], "2026-03-01T12:00:34.500000Z")
        self.assertEqual(a2["time_to_recover_secs"], 34.5)
        self.assertEqual(a2["action_secs"], 14.5)

        b1 = by_id["cmd-inc-b-a1"]
        self.assertEqual(b1["workload"], "api")
        self.assertEqual(b1["action"], "escalate")
        self.assertEqual(b1["source"], "rules")
        self.assertEqual(b1["status"], "noop")
        self.assertEqual(b1["features"], features(HANG))

    def test_report_names_what_was_not_joined(self) -> None:
        _, stderr = self.run_export()
        self.assertIn("read 6 commands and 6 outcomes, wrote 3 rows", stderr)
        self.assertIn("1 undecodable messages: ARO_COMMANDS#6", stderr)
        self.assertIn("1 duplicate outcomes (first kept): out-late", stderr)
        self.assertIn("1 commands without an outcome yet: cmd-inc-c-a1", stderr)
        self.assertIn("1 outcomes whose command is not in the stream: out-cmd-inc-gone-a1", stderr)
        self.assertIn("out-cmd-inc-d-a1 ('inc-other', command 'inc-d')", stderr)
        self.assertIn("ARO_COMMANDS: 6 messages, sequences 1 to 6", stderr)

    def test_pending_commands_are_written_on_request(self) -> None:
        rows, _ = self.run_export("--include-pending")
        by_id = {row["command_id"]: row for row in rows}
        self.assertEqual(len(rows), 5)
        self.assertIsNone(by_id["cmd-inc-c-a1"]["status"])
        self.assertIsNone(by_id["cmd-inc-d-a1"]["status"])

    def test_unreachable_server_fails_with_url(self) -> None:
        url = f"nats://127.0.0.1:{free_port()}"
        result = subprocess.run(
            [sys.executable, "-m", "training.export_outcomes", "--nats-url", url,
             "--out", str(Path(self.dir.name) / "none.jsonl"), "--timeout", "1"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn(f"export from {url} failed", result.stderr)
        self.assertFalse((Path(self.dir.name) / "none.jsonl").exists())


class JoinTest(unittest.TestCase):
    def test_empty_streams_give_no_rows(self) -> None:
        rows, report = join([], [])
        self.assertEqual(rows, [])
        self.assertEqual(report.lines(), ["read 0 commands and 0 outcomes, wrote 0 rows"])


if __name__ == "__main__":
    unittest.main()
