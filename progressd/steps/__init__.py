"""Step executors, one module per step kind, and the per-scenario metrics they count into.

The runner runs ``think``, ``milestone`` and ``when:`` itself; the I/O kinds go through an
executor from this package (``runner/executors.py`` describes the seam)::

    Runner(plan, poller, executors={"http": HttpStepExecutor(client),
                                    "exec": ExecStepExecutor(),
                                    "external": ExternalStepExecutor(mailbox, loop.time)})
"""

from __future__ import annotations

from progressd.steps.exec import ExecStepExecutor
from progressd.steps.external import ExternalStepExecutor
from progressd.steps.http import DEFAULT_TIMEOUT_S, HttpStepExecutor, extract_path
from progressd.steps.leases import LeaseWaits
from progressd.steps.metrics import ERROR_CLASSES, ScenarioMetrics, StepMetrics
from progressd.steps.process import (
    ExecHandle,
    ExecOutcome,
    ExecResult,
    ExecSpec,
    ExecStartError,
    start_exec,
)

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "ERROR_CLASSES",
    "ExecHandle",
    "ExecOutcome",
    "ExecResult",
    "ExecSpec",
    "ExecStartError",
    "ExecStepExecutor",
    "ExternalStepExecutor",
    "HttpStepExecutor",
    "LeaseWaits",
    "ScenarioMetrics",
    "StepMetrics",
    "extract_path",
    "start_exec",
]
