"""Python classes for `proto/aro/v1/events.proto`, generated at run time with grpcio-tools.

Nothing generated is checked in, so the classes always follow the proto file of this
checkout. Needs `grpcio-tools` and `protobuf` from `training/requirements.txt`.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

PROTO_ROOT = Path(__file__).resolve().parent.parent / "proto"
EVENTS_PROTO = "aro/v1/events.proto"
MODULE_NAME = "aro_v1_events_pb2"


class ProtoError(RuntimeError):
    """The proto file did not compile."""


def load_events() -> ModuleType:
    """Compile `proto/aro/v1/events.proto` and import it; later calls return the same module."""
    if MODULE_NAME in sys.modules:
        return sys.modules[MODULE_NAME]
    from grpc_tools import protoc

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="aro-proto-") as out:
        status = protoc.main([
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={out}",
            str(PROTO_ROOT / EVENTS_PROTO),
        ])
        if status != 0:
            raise ProtoError(f"protoc failed with status {status} on {PROTO_ROOT / EVENTS_PROTO}")
        path = Path(out) / EVENTS_PROTO.replace(".proto", "_pb2.py")
        spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        # Registered before it runs, so a second call returns this module and does not add
        # the file to the descriptor pool twice.
        sys.modules[MODULE_NAME] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[MODULE_NAME]
            raise
    return module


def enum_name(enum: object, value: int, prefix: str) -> str:
    """Name of an enum value without its prefix, in lower case: ACTION_SCALE_OUT -> scale_out.

    Returns `unknown_<value>` for a value that this proto file does not define.
    """
    try:
        name = enum.Name(value)  # type: ignore[attr-defined]
    except ValueError:
        return f"unknown_{value}"
    return name.removeprefix(prefix).lower()
