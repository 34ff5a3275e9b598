"""Step executors, one module per step kind."""

from __future__ import annotations

from progressd.steps.exec import (
    ExecHandle,
    ExecOutcome,
    ExecResult,
    ExecSpec,
    ExecStartError,
    start_exec,
)

__all__ = [
    "ExecHandle",
    "ExecOutcome",
    "ExecResult",
    "ExecSpec",
    "ExecStartError",
    "start_exec",
]
