"""Runs: a plan executing with progress, ETA, thresholds and a summary (``run.py``), the live
terminal view (``live.py``), the ``progressd run`` command (``command.py``) and small local
backends for the demo and tests (``backends.py``)."""

from __future__ import annotations

from progressd.runs.figures import Figures, ScenarioFigures, run_summary
from progressd.runs.plans import with_users
from progressd.runs.progress import RunProgress, ScenarioProgress
from progressd.runs.run import Run, RunStatus

__all__ = [
    "Figures",
    "Run",
    "RunProgress",
    "RunStatus",
    "ScenarioFigures",
    "ScenarioProgress",
    "run_summary",
    "with_users",
]
