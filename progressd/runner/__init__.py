"""The runner: virtual users as workbook rows, driven by the poller's pollables, never by
tasks. See ``core.py`` for the design note and docs/poller.md for the poll model."""

from __future__ import annotations

from progressd.runner.context import RowContext
from progressd.runner.core import Runner, RunState
from progressd.runner.executors import (
    SUCCEEDED,
    ExecutorTable,
    StepCall,
    StepExecutor,
    StepOutcome,
)
from progressd.runner.guards import WAITABLE_ROOTS, GuardWaits
from progressd.runner.stats import RunnerStatistics

__all__ = [
    "SUCCEEDED",
    "WAITABLE_ROOTS",
    "ExecutorTable",
    "GuardWaits",
    "RowContext",
    "RunState",
    "Runner",
    "RunnerStatistics",
    "StepCall",
    "StepExecutor",
    "StepOutcome",
]
